#!/usr/bin/env bash
# Studies in background workers:
#   BENCH tune_parallel_s            two statoil_cnn trials (2 epochs each, one thread
#                                    each) with parallel => 2: first start to last end
#   BENCH tune_sequential_s          the same two trials with parallel => 1
#   BENCH tune_parallel_speedup      the two compared
#   BENCH tune_sequential_2threads_s the two trials one after another, two threads each
#                                    (what parallel trials compete with on 2 cores)
#   BENCH worker_train_gflops        statoil_cnn training throughput inside a worker
#                                    (3 x forward FLOPs per image, two threads)
#   BENCH random_epochs / asha_epochs        epochs trained by a 27-trial random search
#                                    and by ASHA over the same 27 configurations of a
#                                    small CNN (9-epoch budget, rungs at 1 and 3 epochs)
#   BENCH asha_epoch_savings_pct     the epochs ASHA did not train
#   BENCH random_best_val_log_loss / asha_best_val_log_loss  the best trial of each,
#   BENCH random_best_val_acc / asha_best_val_acc            and its accuracy
# Needs PGHOST/PGPORT/PGUSER/PGDATABASE (make bench sets them).
set -euo pipefail
psql() { command psql -X -q -v ON_ERROR_STOP=1 -tA "$@"; }

psql -c "SET client_min_messages = warning" -c "CREATE EXTENSION IF NOT EXISTS iceml"
# 1200 chips: the project's synthetic SAR chips when the generator is
# installed, otherwise chips made in SQL with a bright centre whose level
# overlaps between the classes
psql >/dev/null <<'SQL'
SET client_min_messages = warning;
SELECT iceml.create_feature_group('bench_tune',
  '[{"name":"id","type":"text"},{"name":"band_1","type":"real[]"},{"name":"band_2","type":"real[]"},
    {"name":"is_iceberg","type":"smallint"}]', ARRAY['id'], validation => 'NONE');
DO $$
BEGIN
    IF to_regproc('iceml.synthesize_statoil') IS NOT NULL THEN
        EXECUTE 'INSERT INTO iceml_fs.bench_tune_1
                 SELECT id, band_1, band_2, is_iceberg FROM iceml.synthesize_statoil(1200, 7)';
    ELSE
        PERFORM setseed(0.7);
        INSERT INTO iceml_fs.bench_tune_1
        SELECT 'chip' || i,
               (SELECT array_agg(CASE WHEN (j - 1) / 75 BETWEEN 32 AND 42 AND (j - 1) % 75 BETWEEN 32 AND 42
                                      THEN -22 + (i % 2) * 3 + ((i * 7919) % 101) * 0.06 + random()::real * 4
                                      ELSE -26 + random()::real * 6 END)
                  FROM generate_series(1, 5625) j),
               (SELECT array_agg(-30 + random()::real * 4 + 0 * j)
                  FROM generate_series(1, 5625) j),
               (i % 2)::smallint
          FROM generate_series(1, 1200) i;
    END IF;
END $$;
SELECT iceml.create_training_dataset('bench_tune', 'iceml_fs.bench_tune_1', 'is_iceberg', seed => 1);
-- 34k parameters, 25x cheaper than statoil_cnn, about 90% on these chips
SELECT iceml.create_architecture('bench_small_cnn', '{"input": [3, 75, 75], "layers": [
    {"type": "conv2d", "filters": 16, "kernel": 5, "stride": 2, "activation": "relu"},
    {"type": "maxpool", "size": 2},
    {"type": "conv2d", "filters": 32, "kernel": 3, "activation": "relu"},
    {"type": "maxpool", "size": 2},
    {"type": "conv2d", "filters": 32, "kernel": 3, "activation": "relu"},
    {"type": "maxpool", "size": 2},
    {"type": "flatten"},
    {"type": "dense", "units": 64, "activation": "relu"},
    {"type": "dense", "units": 1, "activation": "sigmoid"}]}');
SQL

# run a study to its end; print its id
study() {
	local id
	id=$(psql -c "$1" | tail -1)
	[ "$(psql -c "SELECT iceml.wait($id, '1800 s')")" = succeeded ] || {
		echo "tune.sh: study $id did not succeed" >&2
		psql -c "SELECT run, status, error FROM iceml.study_trials WHERE study = $id" >&2
		exit 1
	}
	echo "$id"
}
# seconds from the first trial's start to the last trial's end
wall() {
	psql -c "SELECT round(extract(epoch FROM max(finished_at) - min(started_at))::numeric, 2)
	           FROM iceml.runs WHERE study_id = $1"
}
two_trials() {
	study "SELECT iceml.tune('bench_par', 'iceml_td.bench_tune_1', 'statoil_cnn',
	         '{\"learning_rate\": {\"type\": \"DISCRETE\", \"values\": [0.001, 0.002]}}', 'grid',
	         parallel => $1, hyperparams => '{\"epochs\": 2, \"batch_size\": 32, \"threads\": $2, \"deploy\": \"never\"}')"
}

par=$(two_trials 2 1)
seq=$(two_trials 1 1)
seq2=$(two_trials 1 2)
tpar=$(wall "$par")
tseq=$(wall "$seq")
tseq2=$(wall "$seq2")
echo "BENCH tune_parallel_s $tpar s"
echo "BENCH tune_sequential_s $tseq s"
awk -v a="$tseq" -v b="$tpar" 'BEGIN { printf "BENCH tune_parallel_speedup %.2f x\n", a / b }'
echo "BENCH tune_sequential_2threads_s $tseq2 s"
# images trained per second in the two-thread trials, from their own epoch
# times (the validation pass and the catalog writes included)
psql <<SQL | sed 's/^/BENCH worker_train_gflops /; s/$/ GFLOP\/s/'
SELECT round((3 * i.forward_flops * count(*) FILTER (WHERE d.split = 'train')
              * (SELECT count(*) FROM iceml.run_metrics m JOIN iceml.runs r ON r.id = m.run_id WHERE r.study_id = $seq2)
              / (SELECT sum(extract(epoch FROM r.finished_at - r.started_at)) FROM iceml.runs r WHERE r.study_id = $seq2)
              / 1e9)::numeric, 1)
  FROM iceml_td.bench_tune_1 d, iceml.architectures a, iceml._spec_info(a.spec) i
 WHERE a.name = 'statoil_cnn'
 GROUP BY i.forward_flops
SQL

# ASHA against random search over the same 27 configurations (same seed)
space='{"learning_rate": {"type": "DOUBLE", "range": [0.0001, 0.03], "scale": "log"},
        "batch_size": {"type": "DISCRETE", "values": [16, 32, 64]}}'
hp='{"epochs": 9, "seed": 11, "deploy": "never"'
rnd=$(study "SELECT iceml.tune('bench_random', 'iceml_td.bench_tune_1', 'bench_small_cnn', '$space', 'random',
               trials => 27, parallel => 2, hyperparams => '$hp}')")
asha=$(study "SELECT iceml.tune('bench_asha', 'iceml_td.bench_tune_1', 'bench_small_cnn', '$space', 'asha',
                trials => 27, parallel => 2, hyperparams => '$hp, \"asha_min_epochs\": 1}')")
epochs() {
	psql -c "SELECT count(*) FROM iceml.run_metrics m JOIN iceml.runs r ON r.id = m.run_id WHERE r.study_id = $1"
}
best() {
	psql -c "SELECT round((m.metrics->>'$2')::numeric, 4) FROM iceml.studies s JOIN iceml.models m ON m.id = s.best_model
	          WHERE s.id = $1"
}
er=$(epochs "$rnd")
ea=$(epochs "$asha")
same=$(psql -c "SELECT (SELECT array_agg(trial ORDER BY trial) FROM iceml.runs WHERE study_id = $rnd)
                     = (SELECT array_agg(trial ORDER BY trial) FROM iceml.runs WHERE study_id = $asha)")
[ "$same" = t ] || echo "tune.sh: random and ASHA trials differ in their configurations" >&2
echo "BENCH random_epochs $er epochs"
echo "BENCH asha_epochs $ea epochs"
awk -v r="$er" -v a="$ea" 'BEGIN { printf "BENCH asha_epoch_savings_pct %.1f pct\n", (r - a) * 100 / r }'
echo "BENCH random_best_val_log_loss $(best "$rnd" log_loss) loss"
echo "BENCH asha_best_val_log_loss $(best "$asha" log_loss) loss"
echo "BENCH random_best_val_acc $(best "$rnd" accuracy) fraction"
echo "BENCH asha_best_val_acc $(best "$asha" accuracy) fraction"
echo "BENCH random_study_s $(wall "$rnd") s"
echo "BENCH asha_study_s $(wall "$asha") s"

psql -c "SET client_min_messages = warning" \
     -c "DELETE FROM iceml.studies WHERE experiment LIKE 'bench\_%'" \
     -c "DELETE FROM iceml.deployments WHERE name LIKE 'bench\_%'" \
     -c "DELETE FROM iceml.models WHERE experiment LIKE 'bench\_%'" \
     -c "DELETE FROM iceml.architectures WHERE name = 'bench_small_cnn'" \
     -c "SELECT iceml.drop_feature_group('iceml_fs.bench_tune_1', cascade => true)" >/dev/null
