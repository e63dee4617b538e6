#!/usr/bin/env bash
# `make bench`: every benchmark prints one line per figure,
#   BENCH <name> <value> <unit>
# Engine benchmarks run as plain C programs; SQL benchmarks against a fresh
# embedded cluster named bench.
set -euo pipefail
repo=$(cd "$(dirname "$0")/../.." && pwd)
cd "$repo"
h=test/harness
# python3-torch: the PyTorch side of the engine and quality benchmarks
"$h/deps.sh" python3-torch
if [ -f test/bench/Makefile ]; then
	make -s -C test/bench engine quality
fi
if compgen -G "test/bench/*.sh" >/dev/null; then
	"$h/cluster.sh" install
	"$h/cluster.sh" start bench fresh
	eval "$("$h/cluster.sh" env bench)"
	trap '"$h/cluster.sh" stop bench' EXIT
	for b in test/bench/*.sh; do "$b"; done
fi
