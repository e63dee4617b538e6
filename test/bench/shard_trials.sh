#!/usr/bin/env bash
# Trials on nodes (README "Scale-out": trials on nodes):
#   BENCH shard_trials_local_s       a study of 4 statoil_cnn trials (2 epochs of
#                                    ICEML_BENCH_TRIAL_CHIPS chips, 256; one thread
#                                    each) with parallel => 2, trained on the
#                                    coordinator: tune to the study's end
#   BENCH shard_trials_2nodes_s      the same study with nodes => ARRAY['a', 'b']:
#                                    one trial per node at a time, each node an
#                                    embedded cluster pinned to its own core
#   BENCH shard_trials_overhead_pct  2nodes against local.  On one machine both
#                                    train on the same cores, so this is what
#                                    placing trials costs (the dataset copied to
#                                    each node, the polling), not a speed-up; on
#                                    separate machines each node adds its cores.
# The load average is printed with the figures.  Needs PGHOST/PGPORT/PGUSER/
# PGDATABASE of the coordinator (make bench sets them).
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
top=$(cd "$here/../.." && pwd)
cluster=$top/test/harness/cluster.sh
chips=${ICEML_BENCH_TRIAL_CHIPS:-256}
ncpu=$(nproc)
psql() { command psql -X -q -v ON_ERROR_STOP=1 -tA "$@"; }
nodepsql() { (eval "$("$cluster" env "$1")"; shift; command psql -X -q -v ON_ERROR_STOP=1 -d iceml "$@"); }

ICEML_CPUS=0 "$cluster" start bench_trial_a fresh >/dev/null
ICEML_CPUS=$((1 % ncpu)) "$cluster" start bench_trial_b fresh >/dev/null
trap '"$cluster" stop bench_trial_a bench_trial_b' EXIT
for n in bench_trial_a bench_trial_b; do
	nodepsql $n -c "SET client_min_messages = warning" -c "CREATE EXTENSION IF NOT EXISTS iceml"
done

psql -c "SET client_min_messages = warning" -c "CREATE EXTENSION IF NOT EXISTS iceml" \
	-c "CREATE EXTENSION IF NOT EXISTS postgres_fdw"
psql >/dev/null <<SQL
SET client_min_messages = warning;
SELECT iceml.drop_feature_group(g."table", true) FROM iceml.feature_groups g WHERE g.name = 'stb';
SELECT iceml.drop_node(n.name) FROM iceml.nodes n WHERE n.name IN ('ta', 'tb');
SELECT iceml.add_node('ta', '$("$cluster" conninfo bench_trial_a)');
SELECT iceml.add_node('tb', '$("$cluster" conninfo bench_trial_b)');
SELECT iceml.create_feature_group('stb', '[{"name":"id","type":"text"},{"name":"band_1","type":"real[]"},
    {"name":"band_2","type":"real[]"},{"name":"inc_angle","type":"real"},{"name":"is_iceberg","type":"smallint"}]',
    ARRAY['id'], validation => 'NONE', statistics => false);
INSERT INTO iceml_fs.stb_1 SELECT * FROM iceml.synthesize_statoil($chips, 11);
SELECT iceml.create_training_dataset('stb', 'iceml_fs.stb_1', 'is_iceberg', seed => 1);
SQL

# seconds from tune to the study's end
study() {
	local t0 t1 id status
	t0=$(date +%s.%N)
	id=$(psql -c "SELECT iceml.tune('stb', 'iceml_td.stb_1', 'statoil_cnn',
	        '{\"learning_rate\": {\"type\": \"DISCRETE\", \"values\": [0.0005, 0.001, 0.002, 0.004]}}',
	        'grid', parallel => 2, hyperparams => '{\"epochs\": 2, \"threads\": 1, \"deploy\": \"never\"}' $1)")
	status=$(psql -c "SET client_min_messages = warning" -c "SELECT iceml.wait($id, '1 hour')")
	t1=$(date +%s.%N)
	[ "$status" = succeeded ] || { echo "shard_trials: study $id $status" >&2; exit 1; }
	echo "$t1 - $t0" | bc -l
}
local_s=$(study "")
nodes_s=$(study ", nodes => ARRAY['ta', 'tb']")
placed=$(psql -c "SELECT string_agg(DISTINCT node, ',' ORDER BY node) FROM iceml.remote_trials t JOIN iceml.runs r ON r.id = t.run_id
                  WHERE r.experiment = 'stb' AND r.status = 'succeeded'")
[ "$placed" = "ta,tb" ] || { echo "shard_trials: trials did not run on both nodes ($placed)" >&2; exit 1; }
printf 'BENCH shard_trials_local_s %.1f s\n' "$local_s"
printf 'BENCH shard_trials_2nodes_s %.1f s\n' "$nodes_s"
printf 'BENCH shard_trials_overhead_pct %.1f %%\n' "$(echo "($nodes_s / $local_s - 1) * 100" | bc -l)"
echo "shard_trials: 4 statoil_cnn trials x 2 epochs of $chips chips, parallel 2, 1 thread each; nodes pinned to CPUs 0 and $((1 % ncpu)) of $ncpu; load average $(cut -d' ' -f1-3 /proc/loadavg)"
psql >/dev/null <<'SQL'
SET client_min_messages = warning;
SELECT iceml.drop_feature_group(g."table", true) FROM iceml.feature_groups g WHERE g.name = 'stb';
SELECT iceml.drop_node(n.name) FROM iceml.nodes n WHERE n.name IN ('ta', 'tb');
SQL
