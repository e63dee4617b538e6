#!/usr/bin/env bash
# Ingest benchmarks of iceml.ingest_statoil (src/ingest/ingest.c):
#   (best of 3 runs for each loader)
#   BENCH ingest_mb_per_s         a train.json-sized file (1604 synthetic
#   BENCH ingest_records_per_s    records, ~210 MB, a JSON array) loaded from
#                                 its server path into an empty table
#   BENCH ingest_python_mb_per_s  the same file with Python's json module and
#                                 a psycopg2 COPY (test/bench/ingest_python.py)
#   BENCH ingest_speedup_x        the ratio of the two (target: at least 2)
#   BENCH ingest_peak_rss_mb      the backend's peak RSS (VmHWM) while
#                                 ingesting a ~2 GB JSON-lines file into a
#                                 temporary table (target: < 200 MB)
#   BENCH ingest_peak_rss_shared_table_mb  the same into an unlogged table:
#                                 VmHWM then also counts the shared buffers
#                                 the load touched (at most shared_buffers)
#                                 ICEML_BENCH_SKIP_2GB=1 skips both (disk)
# The target table is (id text PRIMARY KEY, band_1 real[], band_2 real[],
# inc_angle real, is_iceberg smallint) for both loaders.  Generated files live
# in a temporary directory the server can read, removed at the end.
# Needs PGHOST/PGPORT/PGUSER/PGDATABASE of a superuser (make bench sets them).
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
py=/usr/bin/python3
psql() { command psql -X -q -v ON_ERROR_STOP=1 "$@"; }

"$py" -c 'import psycopg2' 2>/dev/null || "$here/../harness/deps.sh" python3-psycopg2

tmp=$(mktemp -d /tmp/iceml-bench-ingest-XXXXXX)
chmod 755 "$tmp"
trap 'rm -rf "$tmp"' EXIT

psql -c "SET client_min_messages = warning" -c "DROP EXTENSION IF EXISTS iceml CASCADE" -c "CREATE EXTENSION iceml"
table_ddl="(id text PRIMARY KEY, band_1 real[], band_2 real[], inc_angle real, is_iceberg smallint)"
psql -c "SET client_min_messages = warning" \
     -c "DROP TABLE IF EXISTS bench_ingest, bench_ingest_py, bench_ingest_big" \
     -c "CREATE TABLE bench_ingest $table_ddl" -c "CREATE TABLE bench_ingest_py $table_ddl"

# 1. train.json-sized
train=$tmp/train.json
"$py" "$here/ingest_python.py" generate "$train" 1604
chmod 644 "$train"
bytes=$(stat -c %s "$train")
# best of 3 runs each, into an emptied table: the machine may be shared
best=
for run in 1 2 3; do
	out=$(psql -At <<SQL
TRUNCATE bench_ingest;
SELECT extract(epoch FROM clock_timestamp()) AS t0 \gset
SELECT inserted FROM iceml.ingest_statoil('bench_ingest', '$train') \gset
SELECT :inserted, extract(epoch FROM clock_timestamp()) - :t0;
SQL
)
	rows=${out%%|*}
	secs=${out##*|}
	[ "$rows" -eq 1604 ] || { echo "ingest.sh: expected 1604 rows, got $rows" >&2; exit 1; }
	echo "ingest.sh: ingest_statoil run $run: $secs s" >&2
	best=$(awk -v a="$best" -v b="$secs" 'BEGIN { print (a == "" || b < a) ? b : a }')
done
ingest=$(awk -v b="$bytes" -v s="$best" 'BEGIN { printf "%.1f", b / 1e6 / s }')
echo "BENCH ingest_mb_per_s $ingest MB/s"
awk -v s="$best" 'BEGIN { printf "BENCH ingest_records_per_s %.0f records/s\n", 1604 / s }'

pybest=0
for run in 1 2 3; do
	psql -c "TRUNCATE bench_ingest_py"
	rate=$("$py" "$here/ingest_python.py" load "$train" bench_ingest_py 2>/dev/null | awk '{ print $3 }')
	echo "ingest.sh: python run $run: $rate MB/s" >&2
	pybest=$(awk -v a="$pybest" -v b="$rate" 'BEGIN { print (b > a) ? b : a }')
done
echo "BENCH ingest_python_mb_per_s $pybest MB/s"
awk -v a="$ingest" -v b="$pybest" 'BEGIN { printf "BENCH ingest_speedup_x %.2f x\n", a / b }'
rm -f "$train"
psql -c "DROP TABLE bench_ingest, bench_ingest_py"

# 2. peak memory on a ~2 GB file
if [ "${ICEML_BENCH_SKIP_2GB:-0}" = 1 ]; then
	echo "ingest.sh: ICEML_BENCH_SKIP_2GB=1, ingest_peak_rss_mb skipped" >&2
	exit 0
fi
big=$tmp/big.jsonl
"$py" "$here/ingest_python.py" generate "$big" 16000 lines
chmod 644 "$big"
# VmHWM of a fresh backend that runs one ingest_statoil into a new table of
# the given kind; prints kB
peak_kb() {
	psql -At <<SQL | awk '{ print $2 }'
CREATE $1 TABLE bench_ingest_big $table_ddl;
SELECT pg_backend_pid() AS pid \gset
SELECT read FROM iceml.ingest_statoil('bench_ingest_big', '$big') \gset
\set status \`grep VmHWM /proc/:pid/status\`
SELECT :'status';
DROP TABLE bench_ingest_big;
SQL
}
# The loader's own memory: into a temporary table, whose pages go to the
# backend's local buffers (temp_buffers, 8 MB by default) and not to shared
# buffers, which VmHWM would count as they are touched (up to shared_buffers)
kb=$(peak_kb TEMP)
echo "ingest.sh: $(stat -c %s "$big") bytes, 16000 records, VmHWM $kb kB (temporary table)" >&2
awk -v k="$kb" 'BEGIN { printf "BENCH ingest_peak_rss_mb %.1f MB\n", k / 1024 }'
# The same into an ordinary (unlogged, to spare the disk the WAL) table: the
# shared buffers the load touches are counted too
kb=$(peak_kb UNLOGGED)
echo "ingest.sh: VmHWM $kb kB (unlogged table; shared_buffers = $(psql -At -c 'SHOW shared_buffers'))" >&2
awk -v k="$kb" 'BEGIN { printf "BENCH ingest_peak_rss_shared_table_mb %.1f MB\n", k / 1024 }'
