#!/usr/bin/env bash
# Scale-out benchmark: predictions where the rows are (README "Scale-out").
#   BENCH shard_predict_rows_per_s_one_server  the rows in a plain table of one node
#                                              server, scored there by one backend
#   BENCH shard_predict_rows_per_s_1node       the same rows in a group sharded over
#                                              that node alone, scored from the coordinator
#   BENCH shard_predict_rows_per_s_2nodes      the same rows sharded over two nodes
#   BENCH shard_predict_scaling                2nodes / 1node (goal: at least 1.8)
#   BENCH shard_predict_coordinator_overhead_pct  1node against one_server
#   BENCH shard_predict_new_session_ms_2nodes  what the first statement of a new
#                                              session adds (connections to the
#                                              nodes, their backends loading the model)
# The reference CNN (statoil_cnn, seeded weights), ICEML_BENCH_SHARD_ROWS
# rows (400), in one session per configuration, best of the last 3 of 4
# runs.  Each node is an embedded cluster pinned to its own
# core with taskset (ICEML_CPUS); the coordinator (the bench cluster) is not
# pinned and only receives one number per row.  On a 2-core machine the
# coordinator and anything else running share those two cores: the load
# average is printed with the figures.  Needs PGHOST/PGPORT/PGUSER/PGDATABASE
# of the coordinator (make bench sets them).
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
top=$(cd "$here/../.." && pwd)
cluster=$top/test/harness/cluster.sh
rows=${ICEML_BENCH_SHARD_ROWS:-400}
ncpu=$(nproc)
psql() { command psql -X -q -v ON_ERROR_STOP=1 "$@"; }
nodepsql() { (eval "$("$cluster" env "$1")"; shift; command psql -X -q -v ON_ERROR_STOP=1 -d iceml "$@"); }

ICEML_CPUS=0 "$cluster" start bench_node_a fresh >/dev/null
ICEML_CPUS=$((1 % ncpu)) "$cluster" start bench_node_b fresh >/dev/null
trap '"$cluster" stop bench_node_a bench_node_b' EXIT
for n in bench_node_a bench_node_b; do
	nodepsql $n -c "SET client_min_messages = warning" -c "CREATE EXTENSION IF NOT EXISTS iceml"
done

psql -c "SET client_min_messages = warning" -c "CREATE EXTENSION IF NOT EXISTS iceml" \
	-c "CREATE EXTENSION IF NOT EXISTS postgres_fdw"
psql >/dev/null <<SQL
SET client_min_messages = warning;
SELECT iceml.drop_feature_group(g."table", true) FROM iceml.feature_groups g WHERE g.name IN ('sb1', 'sb2');
SELECT iceml.drop_node(n.name) FROM iceml.nodes n WHERE n.name IN ('a', 'b');
SELECT iceml.add_node('a', '$("$cluster" conninfo bench_node_a)');
SELECT iceml.add_node('b', '$("$cluster" conninfo bench_node_b)');
DROP TABLE IF EXISTS shard_bench_rows;
CREATE TABLE shard_bench_rows AS
SELECT 'c' || i AS id, s.band_1, s.band_2, s.inc_angle, s.is_iceberg
  FROM iceml.synthesize_statoil(50, 7) WITH ORDINALITY AS s(id0, band_1, band_2, inc_angle, is_iceberg, o),
       generate_series(0, ($rows - 1) / 50) k, LATERAL (SELECT k * 50 + s.o AS i) x
 WHERE i <= $rows;
SELECT iceml.create_feature_group('sb1', '[{"name":"id","type":"text"},{"name":"band_1","type":"real[]"},
    {"name":"band_2","type":"real[]"},{"name":"inc_angle","type":"real"},{"name":"is_iceberg","type":"smallint"}]',
    ARRAY['id'], validation => 'NONE', nodes => ARRAY['a']);
SELECT iceml.create_feature_group('sb2', '[{"name":"id","type":"text"},{"name":"band_1","type":"real[]"},
    {"name":"band_2","type":"real[]"},{"name":"inc_angle","type":"real"},{"name":"is_iceberg","type":"smallint"}]',
    ARRAY['id'], validation => 'NONE', nodes => ARRAY['a', 'b']);
INSERT INTO iceml_fs.sb1_1 SELECT * FROM shard_bench_rows;
INSERT INTO iceml_fs.sb2_1 SELECT * FROM shard_bench_rows;
ANALYZE iceml_fs.sb1_1;
ANALYZE iceml_fs.sb2_1;
INSERT INTO iceml.models (experiment, architecture, spec, parameters, channels, normalisation, metrics, lineage, weights, owner)
SELECT 'shardbench', 'statoil_cnn', a.spec, a.parameters, '{band_1,band_2,band_avg}', '{}', '{}', '{}',
       iceml._untrained_weights(a.spec::text, 1, '{-20,-27,-24}', '{3,1,2}'), current_user
  FROM iceml.architectures a WHERE a.name = 'statoil_cnn';
SELECT iceml.deploy('shardbench', 'most_recent');
SQL
# one server: the same rows and model on node a's server, one backend
psql -At -c "COPY (SELECT * FROM shard_bench_rows) TO STDOUT" | nodepsql bench_node_a \
	-c "DROP TABLE IF EXISTS shard_bench_rows" \
	-c "CREATE TABLE shard_bench_rows (id text PRIMARY KEY, band_1 real[], band_2 real[], inc_angle real, is_iceberg smallint)" \
	-c "COPY shard_bench_rows FROM STDIN"
psql -At -c "COPY (SELECT id, experiment, architecture, spec, parameters, channels, normalisation, metrics, lineage, weights, owner FROM iceml.models WHERE experiment = 'shardbench') TO STDOUT" \
	| nodepsql bench_node_a -c "COPY iceml.models (id, experiment, architecture, spec, parameters, channels, normalisation, metrics, lineage, weights, owner) FROM STDIN"
nodepsql bench_node_a -c "SET client_min_messages = warning" -c "SELECT iceml.deploy('shardbench', 'most_recent')" -c "ANALYZE shard_bench_rows" >/dev/null

# One session per configuration, as a BI tool or a pipeline keeps one: the
# statement four times with psql's timing; rows per second of the best of
# the last three (warm: the session's connections to the nodes are open and
# the nodes' backends hold the model), and the first run's extra time (a
# new session: connections, the nodes' backends loading the model).
score='SELECT count(p) FROM (SELECT id, iceml_predict($$shardbench$$, band_1, band_2, inc_angle) AS p FROM %s) s'
session() {
	printf '\\timing on\n\\o /dev/null\n%s\n' "$@"
}
times() { grep '^Time:' | awk '{ print $2 }'; }
one() { session "SET max_parallel_workers_per_gather = 0;" "$(printf "$score;" shard_bench_rows)" \
	"$(printf "$score;" shard_bench_rows)" "$(printf "$score;" shard_bench_rows)" "$(printf "$score;" shard_bench_rows)" \
	| nodepsql bench_node_a | times | tail -4; }
sharded() { local q; q=$(printf "$score;" "iceml_fs.$1"); session "$q" "$q" "$q" "$q" | psql | times; }
warm() { tail -3 | sort -g | head -1; }
# the plans run where they should
psql -At -c "EXPLAIN (VERBOSE, COSTS OFF) $(printf "$score" iceml_fs.sb2_1)" | grep -c 'Remote SQL: SELECT id, min(iceml.predict_model' | grep -qx 2 \
	|| { echo "shard_predict: the 2-node plan does not predict on the nodes" >&2; exit 1; }
# ship the model and warm the caches once
psql -c "$(printf "$score" iceml_fs.sb2_1)" >/dev/null
t_one=$(one); t_1=$(sharded sb1_1); t_2=$(sharded sb2_1)
ms_one=$(echo "$t_one" | warm); ms_1=$(echo "$t_1" | warm); ms_2=$(echo "$t_2" | warm)
r_one=$(echo "$rows * 1000 / $ms_one" | bc -l)
r_1=$(echo "$rows * 1000 / $ms_1" | bc -l)
r_2=$(echo "$rows * 1000 / $ms_2" | bc -l)
cold_2=$(echo "$(echo "$t_2" | head -1) - $ms_2" | bc -l)
printf 'BENCH shard_predict_rows_per_s_one_server %.1f rows/s\n' "$r_one"
printf 'BENCH shard_predict_rows_per_s_1node %.1f rows/s\n' "$r_1"
printf 'BENCH shard_predict_rows_per_s_2nodes %.1f rows/s\n' "$r_2"
printf 'BENCH shard_predict_scaling %.2f x\n' "$(echo "$r_2 / $r_1" | bc -l)"
printf 'BENCH shard_predict_coordinator_overhead_pct %.1f %%\n' "$(echo "(1 - $r_1 / $r_one) * 100" | bc -l)"
printf 'BENCH shard_predict_new_session_ms_2nodes %.1f ms\n' "$cold_2"
echo "shard_predict: $rows rows, statoil_cnn; nodes pinned to CPUs 0 and $((1 % ncpu)) of $ncpu; load average $(cut -d' ' -f1-3 /proc/loadavg)"
psql >/dev/null <<'SQL'
SET client_min_messages = warning;
SELECT iceml.drop_feature_group(g."table", true) FROM iceml.feature_groups g WHERE g.name IN ('sb1', 'sb2');
SELECT iceml.drop_node(n.name) FROM iceml.nodes n WHERE n.name IN ('a', 'b');
DROP TABLE shard_bench_rows;
SQL
