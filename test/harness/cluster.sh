#!/usr/bin/env bash
# The embedded, throwaway PostgreSQL 15 server that the demo and the tests use.
#
#   cluster.sh install            build iceml and install it into a private copy
#                                 of the PostgreSQL tree (nothing system-wide)
#   cluster.sh start NAME [fresh] start cluster NAME (initdb first if needed,
#                                 or always with "fresh")
#   cluster.sh stop [NAME]        stop one cluster, or all of them
#   cluster.sh env NAME           print the PGHOST/PGPORT/... exports for NAME
#   cluster.sh psql [NAME]        psql into cluster NAME (default demo)
#   cluster.sh conninfo NAME      the libpq connection string of NAME's iceml
#                                 database (for iceml.add_node: scale-out tests
#                                 run a coordinator and node clusters side by
#                                 side, each on its own socket and port)
#
# ICEML_CPUS=LIST cluster.sh start NAME pins the server (and every backend and
# worker it forks) to those CPUs with taskset, e.g. one core per node in the
# scale-out benchmark.
#
# The server runs from a relocated copy of Debian's binaries: PostgreSQL finds
# its share and lib directories relative to its own executable, so iceml's
# files installed there are seen by this server only.  It listens on a Unix
# socket only.  Run as root, the server runs as the system user postgres.
set -euo pipefail

repo=$(cd "$(dirname "$0")/../.." && pwd)
pgbin_sys=$(pg_config --bindir 2>/dev/null || echo /usr/lib/postgresql/15/bin)
pkglib_sys=$(pg_config --pkglibdir 2>/dev/null || echo /usr/lib/postgresql/15/lib)
share_sys=$(pg_config --sharedir 2>/dev/null || echo /usr/share/postgresql/15)

# The OpenBLAS setting of the servers this harness starts (and of the
# engine's benchmarks).  Its core (kernels) needs none: the engine chooses
# it for the CPU whatever OPENBLAS_CORETYPE says (src/nn/blas.c; README,
# "Speed").  Idle OpenBLAS threads spin for 2^28 cycles by default, taking
# the core from the engine's own threads between sgemm calls; 2^4 lets
# them sleep (the engine keeps OpenBLAS at one thread, so this matters
# only to other OpenBLAS users in the process).
openblas_env() {
	export OPENBLAS_THREAD_TIMEOUT=${OPENBLAS_THREAD_TIMEOUT:-4}
}

as_server() {
	if [ "$(id -u)" -eq 0 ]; then runuser -u postgres -- "$@"; else "$@"; fi
}

# Where the private install tree and the clusters live: under the checkout,
# unless (as root) the server user cannot reach it there.
home=${ICEML_HOME:-$repo/.iceml}
if [ -z "${ICEML_HOME:-}" ] && [ "$(id -u)" -eq 0 ]; then
	mkdir -p "$home"
	if ! runuser -u postgres -- test -x "$home"; then
		home=/var/tmp/iceml-$(printf %s "$repo" | md5sum | cut -c1-12)
	fi
fi
mkdir -p "$home"
tree=$home/pg
pgbin=$tree$pgbin_sys

cluster_vars() {
	name=$1
	base=$home/$name
	data=$base/data
	sock=$base/run
	# sun_path holds 107 bytes; keep the socket path well inside that
	if [ ${#sock} -gt 80 ]; then
		sock=/tmp/iceml-$(printf %s "$base" | md5sum | cut -c1-12)
	fi
	# one port per checkout and cluster, so that several checkouts can run
	# their clusters side by side (the port names the socket and the shared
	# memory key even on a socket-only server)
	port=$((50000 + $(printf %s "$base" | cksum | cut -d' ' -f1) % 10000))
}

cmd_install() {
	cd "$repo"
	make -s ICEML_STRICT=1 >/dev/null
	rm -rf "$tree"
	make -s install DESTDIR="$tree" >/dev/null
	mkdir -p "$pgbin" "$tree$pkglib_sys" "$tree$share_sys/extension"
	# executables must be real copies (PostgreSQL resolves symlinks to find
	# its installation); libraries and share files can be links
	for f in postgres initdb pg_ctl; do cp "$pgbin_sys/$f" "$pgbin/"; done
	for f in "$pkglib_sys"/*; do
		[ -e "$tree$pkglib_sys/$(basename "$f")" ] || ln -s "$f" "$tree$pkglib_sys/"
	done
	for f in "$share_sys"/*; do
		[ "$(basename "$f")" = extension ] && continue
		ln -s "$f" "$tree$share_sys/"
	done
	for f in "$share_sys"/extension/*; do
		case $(basename "$f") in iceml.control|iceml--*) continue ;; esac
		ln -s "$f" "$tree$share_sys/extension/"
	done
	chmod -R a+rX "$tree"
}

running() { [ -f "$data/postmaster.pid" ] && as_server "$pgbin/pg_ctl" -D "$data" status >/dev/null 2>&1; }

cmd_start() {
	cluster_vars "$1"
	[ -x "$pgbin/postgres" ] || { echo "iceml: run '$0 install' first" >&2; exit 1; }
	if running; then as_server "$pgbin/pg_ctl" -D "$data" -m fast -w stop >/dev/null; fi
	if [ "${2:-}" = fresh ]; then rm -rf "$base"; fi
	mkdir -p "$base" "$sock"
	if [ ! -f "$data/PG_VERSION" ]; then
		[ "$(id -u)" -eq 0 ] && chown postgres "$base" "$sock"
		as_server "$pgbin/initdb" -D "$data" -U postgres --auth=trust -E UTF8 \
			--locale=C.UTF-8 -N >"$base/initdb.log" 2>&1 \
			|| { cat "$base/initdb.log" >&2; exit 1; }
		cat >>"$data/postgresql.conf" <<CONF

# iceml embedded cluster ($name): throwaway, socket-only, fast
listen_addresses = ''
unix_socket_directories = '$sock'
port = $port
shared_preload_libraries = 'pg_cron,iceml'
cron.database_name = 'iceml'
# pg_cron connects to run a job: the server listens on the socket only
cron.host = '$sock'
max_worker_processes = 24
max_parallel_workers = 8
shared_buffers = 512MB
fsync = off
synchronous_commit = off
full_page_writes = off
log_line_prefix = '%m [%p] %q%u@%d '
lc_messages = 'C'
CONF
	fi
	# clusters made before pg_cron was pointed at the socket
	grep -q "^cron.host" "$data/postgresql.conf" \
		|| printf "cron.host = '%s'\n" "$sock" >>"$data/postgresql.conf"
	[ "$(id -u)" -eq 0 ] && chown postgres "$sock"
	openblas_env
	local pin=()
	[ -n "${ICEML_CPUS:-}" ] && pin=(taskset -c "$ICEML_CPUS")
	as_server "${pin[@]}" "$pgbin/pg_ctl" -D "$data" -l "$base/postgres.log" -w -t 60 start >/dev/null \
		|| { tail -20 "$base/postgres.log" >&2; exit 1; }
	PGHOST=$sock PGPORT=$port "$pgbin_sys/psql" -X -q -U postgres -d postgres -tAc \
		"SELECT 1 FROM pg_database WHERE datname = 'iceml'" | grep -q 1 \
		|| PGHOST=$sock PGPORT=$port "$pgbin_sys/psql" -X -q -U postgres -d postgres \
			-c "CREATE DATABASE iceml"
	cmd_env "$1" >"$base/env"
}

cmd_stop() {
	local names=("$@")
	[ ${#names[@]} -gt 0 ] || names=(test demo)
	for n in "${names[@]}"; do
		cluster_vars "$n"
		if running; then as_server "$pgbin/pg_ctl" -D "$data" -m fast -w stop >/dev/null; fi
	done
}

cmd_env() {
	cluster_vars "$1"
	echo "export PGHOST='$sock' PGPORT=$port PGUSER=postgres PGDATABASE=iceml"
	echo "export ICEML_CLUSTER_LOG='$base/postgres.log' ICEML_CLUSTER_DATA='$data'"
	echo "export ICEML_PGBIN='$pgbin'"
}

cmd_conninfo() {
	cluster_vars "$1"
	echo "host=$sock port=$port dbname=iceml user=postgres"
}

cmd_psql() {
	cluster_vars "${1:-demo}"
	running || cmd_start "${1:-demo}"
	exec env PGHOST="$sock" PGPORT=$port PGUSER=postgres psql -d iceml
}

sub=${1:-}; shift || true
case $sub in
	install) cmd_install ;;
	start) cmd_start "$@" ;;
	stop) cmd_stop "$@" ;;
	env) cmd_env "$@" ;;
	psql) cmd_psql "$@" ;;
	conninfo) cmd_conninfo "$@" ;;
	*) sed -n '2,20p' "$0" >&2; exit 2 ;;
esac
