-- The iceml demo, run by `make demo` (test/harness/demo.sh) in database
-- iceml of the embedded demo cluster.  psql variables from demo.sh:
--   ingest    the pipeline's "ingest" (synthetic chips, or a Kaggle file)
--   source    what that is, in words
--   pictures  the directory the SVG pictures are written to
\set QUIET on
\pset footer off
\pset null '-'
SET client_min_messages = notice;
\echo
\echo '== iceml: the Statoil/C-CORE ship-or-iceberg pipeline, inside PostgreSQL'
\echo '   data:' :source
CREATE EXTENSION IF NOT EXISTS iceml;
CREATE EXTENSION IF NOT EXISTS pg_cron;
SELECT iceml.version() AS "iceml";

-- the demo's own objects, re-created by name (nothing else is touched)
SET client_min_messages = warning;
SELECT iceml.unschedule_pipeline(s.name) FROM iceml.pipeline_schedules s WHERE s.name = 'demo_nightly' \g /dev/null
SELECT iceml.drop_feature_group(g."table", "cascade" => true)
  FROM iceml.feature_groups g WHERE g.name = 'demo_chips' \g /dev/null
SET client_min_messages = notice;

-- 1. the whole pipeline, as one call: a feature group with the seed's three
--    expectations (STRICT: bad records are quarantined, on_error says so),
--    ingest, validate, statistics, a training dataset, train, evaluate, deploy
\echo
\echo '== 1. run_pipeline(''demo''): ingest, validate, statistics, training_dataset, train, evaluate, deploy'
SELECT jsonb_build_object(
    'feature_group', jsonb_build_object('name', 'demo_chips', 'validation', 'STRICT', 'expectations', '[
        {"name": "band_size", "features": ["band_1", "band_2"], "rules": [{"name": "HAS_LENGTH", "level": "ERROR", "min": 5625, "max": 5625}]},
        {"name": "angle_range", "features": ["inc_angle"], "rules": [{"name": "HAS_MIN", "level": "ERROR", "min": 20}, {"name": "HAS_MAX", "level": "ERROR", "max": 50}]},
        {"name": "label_values", "features": ["is_iceberg"], "rules": [{"name": "IS_CONTAINED_IN", "level": "ERROR", "legal_values": [0, 1]}]}]'::jsonb),
    'ingest', :'ingest'::jsonb,
    'on_error', 'quarantine',
    'training_dataset', '{"splits": {"train": 0.7, "validation": 0.15, "test": 0.15}, "seed": 1}'::jsonb,
    'train', '{"architecture": "tiny_cnn", "hyperparams": {"epochs": 12, "batch_size": 32, "learning_rate": 0.003, "augment": true}}'::jsonb,
    -- this run's model answers under 'demo' (the tune below shows if_better)
    'deploy', 'always') AS config \gset
SELECT iceml.run_pipeline('demo', :'config') AS run \gset
\echo 'pipeline run' :run 'queued; the worker reports as it goes (iceml.wait):'
SELECT iceml.wait(:run) AS "pipeline status";
SELECT step, status, rows_in AS "rows in", "rows" AS "rows out",
       round(extract(epoch FROM finished - started)::numeric, 2) AS seconds,
       coalesce(sqlstate || ' ' || error, detail->>'reason', '') AS note
  FROM iceml.pipeline_steps WHERE run_id = :run ORDER BY ordinal;
SELECT (status = 'succeeded') AS ok, (SELECT detail->>'training_dataset' FROM iceml.pipeline_steps
                                       WHERE run_id = :run AND step = 'training_dataset') AS td
  FROM iceml.pipeline_runs WHERE id = :run \gset

\echo
\echo '== report'
\echo '-- rows ingested, validated, quarantined'
SELECT detail->>'read' AS "records read", detail->>'inserted' AS "rows inserted",
       detail->>'quarantined' AS quarantined, detail->>'feature_group' AS "feature group"
  FROM iceml.pipeline_steps WHERE run_id = :run AND step = 'ingest';
SELECT q->>'record_id' AS record, q->>'sqlstate' AS sqlstate, left(regexp_replace(q->>'reason', '^feature group "[^"]*" rejected a row: ', ''), 120) AS "why it was quarantined"
  FROM iceml.pipeline_steps s, jsonb_array_elements(s.detail->'quarantine_reasons') q
 WHERE s.run_id = :run AND s.step = 'validate';
\if :ok
\echo '-- the model on the test split (never seen in training)'
SELECT (detail->>'model_id')::bigint AS model, detail->>'n' AS chips, detail->>'log_loss' AS "log loss",
       detail->>'accuracy' AS accuracy, detail->>'roc_auc' AS "ROC AUC"
  FROM iceml.pipeline_steps WHERE run_id = :run AND step = 'evaluate';
SELECT model_id AS "deployed as 'demo'", strategy, deployed_at::timestamp(0) AS "deployed at"
  FROM iceml.deployed_models WHERE name = 'demo';

\echo
\echo '== 2. a small tune: the same pipeline on the same dataset, tune instead of train'
SELECT iceml.run_pipeline('demo', jsonb_build_object(
    'training_dataset', jsonb_build_object('table', :'td'),
    'tune', '{"architecture": "tiny_cnn", "strategy": "grid", "parallel": 2,
              "search_space": {"learning_rate": {"type": "DISCRETE", "values": [0.001, 0.003]},
                               "batch_size": {"type": "DISCRETE", "values": [16, 32]}},
              "hyperparams": {"epochs": 4}}'::jsonb,
    'deploy', 'if_better')) AS tune_run \gset
SELECT iceml.wait(:tune_run) AS "tuning pipeline";
SELECT (detail->>'study')::bigint AS study FROM iceml.pipeline_steps WHERE run_id = :tune_run AND step = 'tune' \gset
\echo '-- the study''s trials, best first'
SELECT trial, status, round(val_log_loss::numeric, 4) AS "val log loss", round(val_acc::numeric, 3) AS "val acc",
       CASE WHEN best THEN '<- best' ELSE '' END AS " "
  FROM iceml.study_trials WHERE study = :study ORDER BY val_log_loss NULLS LAST;
SELECT step, status, coalesce(detail->>'reason', '') AS note FROM iceml.pipeline_steps
 WHERE run_id = :tune_run AND step = 'deploy';

\echo
\echo '== 3. an ablation study: what each part of tiny_cnn is worth'
SELECT iceml.ablation_study('demo', :'td', 'tiny_cnn',
    '{"layer_groups": ["dropout", "dense"], "features": ["band_2"]}', '{"epochs": 4, "batch_size": 32}') AS ablation \gset
SELECT iceml.wait(:ablation) AS "ablation study";
SELECT kind, coalesce(component, '(all of it)') AS "left out", status, round(value::numeric, 4) AS "val log loss",
       round(delta::numeric, 4) AS "change", round(accuracy::numeric, 3) AS "val acc"
  FROM iceml.ablation_results WHERE study = :ablation ORDER BY kind = 'baseline' DESC, component;

\echo
\echo '== 4. predictions in SQL: iceml_predict on five test chips'
SELECT id, is_iceberg AS "truth", round(iceml_predict('demo', band_1, band_2)::numeric, 3) AS "P(iceberg)",
       CASE WHEN iceml_predict('demo', band_1, band_2) >= 0.5 THEN 'iceberg' ELSE 'ship' END AS "called"
  FROM :td WHERE split = 'test' ORDER BY id LIMIT 5;
\echo '-- what if the first of them were 3 dB brighter in band_1, or turned by 90 degrees?'
SELECT jsonb_pretty(iceml.what_if('demo', band_1, band_2, inc_angle,
         '[{"op": "gain", "db": 3, "band": "band_1"}, {"op": "rotate", "degrees": 90}]')) AS "what if"
  FROM :td WHERE split = 'test' ORDER BY id LIMIT 1;

\echo
\echo '== 5. monitoring: every call logged, then the monitor''s verdict on the calls since the pipeline began'
SET iceml.log_inferences = 1;
SELECT count(iceml_predict('demo', band_1, band_2, inc_angle)) AS "calls logged" FROM :td WHERE split <> 'train';
SET iceml.log_inferences = 0;
DO $$ BEGIN
    FOR i IN 1 .. 100 LOOP
        EXIT WHEN (SELECT pending FROM iceml.inference_log_status()) = 0;
        PERFORM pg_sleep(0.1);
    END LOOP;
END $$;
SELECT m->>'calls' AS calls, coalesce(m->>'drift', 'no verdict') AS drift, coalesce(m->>'drift_reason', '') AS reason,
       (SELECT string_agg(k || ' ' || (v->>'psi'), ', ' ORDER BY k) FROM jsonb_each(m->'inputs') e(k, v)) AS "PSI per input"
  FROM iceml.monitor('demo', since => clock_timestamp() - (SELECT created FROM iceml.pipeline_runs WHERE id = :run)) m;

\echo
\echo '== 6. pictures (SVG), written to' :pictures
\pset tuples_only on
\pset format unaligned
\set file :pictures '/learning_curve.svg'
\o :file
SELECT iceml.plot_learning_curve((SELECT (detail->>'run')::bigint FROM iceml.pipeline_steps WHERE run_id = :run AND step = 'train'));
SELECT count(DISTINCT is_iceberg) = 2 AS both_classes FROM :td WHERE split = 'test' \gset
\if :both_classes
\set file :pictures '/roc.svg'
\o :file
SELECT iceml.plot_roc('demo', :'td', 'test');
\else
\echo '(no ROC curve: the test split holds chips of one class only)'
\endif
\set file :pictures '/study.svg'
\o :file
SELECT iceml.plot_study(:study);
\set file :pictures '/ablation.svg'
\o :file
SELECT iceml.plot_study(:ablation);
\set file :pictures '/pipeline.svg'
\o :file
SELECT iceml.plot_pipeline(:run);
\set file :pictures '/chip.svg'
\o :file
SELECT iceml.plot_chip(band_1) FROM :td WHERE split = 'test' ORDER BY id LIMIT 1;
\o
\pset tuples_only off
\pset format aligned
\echo 'learning_curve.svg  roc.svg  study.svg  ablation.svg  pipeline.svg  chip.svg'
\else
\echo
\echo 'The pipeline did not succeed (see its steps above): no model to tune, ablate, predict with or draw.'
\pset tuples_only on
\pset format unaligned
\set file :pictures '/pipeline.svg'
\o :file
SELECT iceml.plot_pipeline(:run);
\o
\pset tuples_only off
\pset format aligned
\echo 'The picture of the pipeline run is in' :pictures '/pipeline.svg'
\endif

\echo
\echo '== 7. a schedule on pg_cron: every night at 03:00, retraining only when the monitor sees drift'
SELECT iceml.schedule_pipeline('demo_nightly', '0 3 * * *', :'config'::jsonb || '{"retrain_on_drift": {"model": "demo", "psi_threshold": 0.2, "min_samples": 500}}') AS cron_job \gset
SELECT name, schedule, cron_job AS "pg_cron job", owner, coalesce(last_status, 'not run yet') AS "last run"
  FROM iceml.pipeline_schedules;
SELECT jobid AS "pg_cron job", schedule, database, username, command FROM cron.job WHERE jobid = :cron_job;
