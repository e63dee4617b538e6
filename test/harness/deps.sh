#!/usr/bin/env bash
# Install the Debian packages iceml needs, but only those that are missing.
# Extra packages for benchmarks can be named as arguments.
set -euo pipefail

pkgs=(make gcc clang postgresql-15 postgresql-server-dev-15 libpq-dev libopenblas-dev libjson-c-dev
      postgresql-15-pgtap libtap-parser-sourcehandler-pgtap-perl postgresql-15-cron chromium "$@")

missing=()
for p in "${pkgs[@]}"; do
	dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || missing+=("$p")
done
[ ${#missing[@]} -eq 0 ] && exit 0

echo "iceml: installing Debian packages: ${missing[*]}"
sudo=()
if [ "$(id -u)" -ne 0 ]; then
	command -v sudo >/dev/null || {
		echo "iceml: run as root: apt-get install ${missing[*]}" >&2; exit 1; }
	sudo=(sudo)
fi
export DEBIAN_FRONTEND=noninteractive
"${sudo[@]}" apt-get update -qq
"${sudo[@]}" apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
