#!/usr/bin/env bash
# Scale-out benchmark: predictions where the rows are (README "Scale-out").
#   BENCH shard_predict_rows_per_s_one_server  the rows in a plain table of one node
#                                              server, scored there by one backend
#   BENCH shard_predict_rows_per_s_1node       the same rows in a group sharded over
#                                              that node alone, scored from the coordinator
#   BENCH shard_predict_rows_per_s_2nodes      the same rows sharded over two nodes
#   BENCH shard_predict_scaling                2nodes / 1node, the median of the
#                                              rounds' own ratios (goal: at least 1.8)
#   BENCH shard_predict_coordinator_overhead_pct  1node against one_server
#   BENCH shard_predict_machine_ceiling        the peer: the engine alone scoring
#                                              on both cores at once against one
#                                              (two pinned processes, before and
#                                              after the rounds, the mean): what
#                                              two nodes could reach here
#   BENCH shard_predict_machine_ceiling_even   the same two processes, counted as
#                                              an even split counts: twice the
#                                              slower one's images/s against one
#                                              (a sharded statement waits for its
#                                              slower node)
#   BENCH shard_predict_scaling_of_ceiling     scaling / machine_ceiling
#   BENCH shard_predict_scaling_of_ceiling_even  scaling / machine_ceiling_even
#   BENCH shard_predict_new_session_ms_2nodes  what the first statement of a new
#                                              session adds (connections to the
#                                              nodes, their backends loading the model)
# The reference CNN (statoil_cnn, seeded weights), ICEML_BENCH_SHARD_ROWS
# rows (400), one session per configuration, the three taking turns
# (ICEML_BENCH_SHARD_ROUNDS rounds, 6, after a warming one): the medians of
# the rounds (see below).  Each node is an embedded cluster pinned to its own
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

# One session per configuration, as a BI tool or a pipeline keeps one, all
# three open at once and taking turns: a round runs the statement once in
# each (one server, 1 node, 2 nodes), ROUNDS rounds (6) after a first one
# that warms them (the sessions' connections to the nodes, the nodes'
# backends loading the model; what that adds is reported apart).  This
# machine's speed drifts by a quarter within minutes, so the figures are
# the medians of the rounds, and the ratios the medians of each round's own
# ratio: configurations measured minutes apart would compare two machines.
score='SELECT count(p) FROM (SELECT id, iceml_predict($$shardbench$$, band_1, band_2, inc_angle) AS p FROM %s) s'
rounds=${ICEML_BENCH_SHARD_ROUNDS:-6}
median() { sort -g | awk '{ v[NR] = $1 } END { print (NR % 2 ? v[(NR + 1) / 2] : (v[NR / 2] + v[NR / 2 + 1]) / 2) }'; }
# the machine's own ceiling: images/s of the engine on one thread pinned
# to the nodes' first core, then on both cores at once (a virtual
# machine's second core is not always as fast as its first): the sum of the
# two, and twice the slower (what an even split of the rows can reach)
export OPENBLAS_THREAD_TIMEOUT=${OPENBLAS_THREAD_TIMEOUT:-4}
cc -std=gnu11 -O3 -I"$top/include" -I"$top/src/nn" -o /tmp/iceml_shard_engine \
	"$here/predict_engine.c" "$top"/src/nn/*.c "$top/src/eo/synth.c" -lopenblas -ljson-c -lm -lpthread
ceiling() {
	local one both
	one=$(taskset -c 0 /tmp/iceml_shard_engine batch 1 | awk '{ print $3 }')
	(taskset -c 0 /tmp/iceml_shard_engine batch 1 & taskset -c $((1 % ncpu)) /tmp/iceml_shard_engine batch 1; wait) |
		awk -v one="$one" '{ s += $3; m = (NR == 1 || $3 < m) ? $3 : m } END { print s / one, 2 * m / one }'
}
read -r ceil1 even1 < <(ceiling)
# the plans run where they should
psql -At -c "EXPLAIN (VERBOSE, COSTS OFF) $(printf "$score" iceml_fs.sb2_1)" | grep -c 'Remote SQL: SELECT id, min(iceml.predict_model' | grep -qx 2 \
	|| { echo "shard_predict: the 2-node plan does not predict on the nodes" >&2; exit 1; }
# ship the model and warm the nodes' caches once
psql -c "$(printf "$score" iceml_fs.sb2_1)" >/dev/null
# (bash warns that a coproc exists when it starts the next: it works)
{ coproc S_ONE { nodepsql bench_node_a -At 2>&1; }; } 2>/dev/null
{ coproc S_1 { psql -At 2>&1; }; } 2>/dev/null
{ coproc S_2 { psql -At 2>&1; }; } 2>/dev/null
# run SQL in a session (its input and output fds); print psql's time (ms)
timed() {
	local in=$1 out=$2 sql=$3 line= t=
	printf '\\timing on\n\\o /dev/null\n%s;\n\\o\n\\timing off\n\\echo done\n' "$sql" >&"$in"
	while read -r -t 300 line <&"$out"; do
		case $line in
			Time:*) t=${line#Time: }; t=${t%% ms*} ;;
			done) break ;;
			*ERROR*) echo "shard_predict: $line" >&2 ;;
		esac
	done
	[ -n "$t" ] || { echo "shard_predict: no time from a session" >&2; exit 1; }
	echo "$t"
}
printf 'SET max_parallel_workers_per_gather = 0;\n' >&"${S_ONE[1]}"
q_one=$(printf "$score" shard_bench_rows); q_1=$(printf "$score" iceml_fs.sb1_1); q_2=$(printf "$score" iceml_fs.sb2_1)
# the warming round (the 2-node session's time is kept: what a new session adds)
timed "${S_ONE[1]}" "${S_ONE[0]}" "$q_one" >/dev/null
timed "${S_1[1]}" "${S_1[0]}" "$q_1" >/dev/null
first_2=$(timed "${S_2[1]}" "${S_2[0]}" "$q_2")
t_one= t_1= t_2= ratio= over=
for k in $(seq 1 "$rounds"); do
	a=$(timed "${S_ONE[1]}" "${S_ONE[0]}" "$q_one")
	b=$(timed "${S_1[1]}" "${S_1[0]}" "$q_1")
	c=$(timed "${S_2[1]}" "${S_2[0]}" "$q_2")
	t_one+="$a"$'\n'; t_1+="$b"$'\n'; t_2+="$c"$'\n'
	ratio+="$(echo "$b / $c" | bc -l)"$'\n'; over+="$(echo "(1 - $a / $b) * 100" | bc -l)"$'\n'
done
eval "exec ${S_ONE[1]}>&- ${S_1[1]}>&- ${S_2[1]}>&-"
wait
read -r ceil2 even2 < <(ceiling)
ceil=$(echo "($ceil1 + $ceil2) / 2" | bc -l)
even=$(echo "($even1 + $even2) / 2" | bc -l)
ms_one=$(echo -n "$t_one" | median); ms_1=$(echo -n "$t_1" | median); ms_2=$(echo -n "$t_2" | median)
r_one=$(echo "$rows * 1000 / $ms_one" | bc -l)
r_1=$(echo "$rows * 1000 / $ms_1" | bc -l)
r_2=$(echo "$rows * 1000 / $ms_2" | bc -l)
cold_2=$(echo "$first_2 - $ms_2" | bc -l)
scaling=$(echo -n "$ratio" | median)
printf 'BENCH shard_predict_rows_per_s_one_server %.1f rows/s\n' "$r_one"
printf 'BENCH shard_predict_rows_per_s_1node %.1f rows/s\n' "$r_1"
printf 'BENCH shard_predict_rows_per_s_2nodes %.1f rows/s\n' "$r_2"
printf 'BENCH shard_predict_scaling %.2f x\n' "$scaling"
printf 'BENCH shard_predict_machine_ceiling %.2f x\n' "$ceil"
printf 'BENCH shard_predict_machine_ceiling_even %.2f x\n' "$even"
printf 'BENCH shard_predict_scaling_of_ceiling %.2f\n' "$(echo "$scaling / $ceil" | bc -l)"
printf 'BENCH shard_predict_scaling_of_ceiling_even %.2f\n' "$(echo "$scaling / $even" | bc -l)"
printf 'BENCH shard_predict_coordinator_overhead_pct %.1f %%\n' "$(echo -n "$over" | median)"
printf 'BENCH shard_predict_new_session_ms_2nodes %.1f ms\n' "$cold_2"
printf 'shard_predict: machine ceiling %.2fx before the rounds, %.2fx after (even split: %.2fx, %.2fx)\n' "$ceil1" "$ceil2" "$even1" "$even2"
echo "shard_predict: round by round, 1 node / 2 nodes: $(echo $(echo -n "$ratio" | awk '{ printf "%.2f\n", $1 }'))"
echo "shard_predict: $rows rows, $rounds rounds, statoil_cnn; nodes pinned to CPUs 0 and $((1 % ncpu)) of $ncpu; load average $(cut -d' ' -f1-3 /proc/loadavg)"
psql >/dev/null <<'SQL'
SET client_min_messages = warning;
SELECT iceml.drop_feature_group(g."table", true) FROM iceml.feature_groups g WHERE g.name IN ('sb1', 'sb2');
SELECT iceml.drop_node(n.name) FROM iceml.nodes n WHERE n.name IN ('a', 'b');
DROP TABLE shard_bench_rows;
SQL
