--
-- iceml.run_pipeline: the config is checked whole before anything is
-- recorded; each fault is SQLSTATE 22023 naming its JSON path.  (Workers
-- running pipelines are exercised by test/tap/60_pipelines.pl.)
--
SET client_min_messages = warning;
\set SHOW_CONTEXT never

-- a good config queues a run with its planned steps, defaults filled in;
-- rolled back, so no worker starts
BEGIN;
SELECT iceml.run_pipeline('reg_pipe', '{"feature_group": {"name": "reg_chips"},
    "ingest": {"synthetic": {"n": 20, "seed": 1}},
    "train": {"architecture": "tiny_cnn", "hyperparams": {"epochs": 1}}}') > 0 AS queued;
SELECT name, status, owner, cron_job, config->>'deploy' AS deploy, config->>'on_error' AS on_error,
       config->'evaluate' AS evaluate, config->'statistics' AS statistics
  FROM iceml.pipeline_runs;
SELECT s.ordinal, s.step, s.status FROM iceml.pipeline_steps s ORDER BY s.ordinal;
SELECT run IS NOT NULL AS listed, experiment, status, epoch, epochs FROM iceml.progress;
ROLLBACK;

-- tune instead of train, retrain_on_drift adds a first step, an existing
-- training dataset skips the steps before it
BEGIN;
SELECT iceml.run_pipeline('reg_tune', '{"training_dataset": {"table": "iceml_td.whatever_1"},
    "tune": {"architecture": "tiny_cnn", "search_space": {"learning_rate": {"type": "DOUBLE", "range": [0.001, 0.01]}}, "trials": 2},
    "retrain_on_drift": {"model": "reg_tune", "psi_threshold": 0.2, "min_samples": 500}, "deploy": "never"}') > 0 AS queued;
SELECT string_agg(s.step, ', ' ORDER BY s.ordinal) AS steps FROM iceml.pipeline_steps s;
ROLLBACK;

-- every malformed config, with its SQLSTATE; nothing is recorded
\set VERBOSITY terse
SELECT iceml.run_pipeline('Bad Name', '{"feature_group": {"name": "x"}, "train": {}}');
\echo :LAST_ERROR_SQLSTATE
SELECT iceml.run_pipeline(NULL, '{}');
\echo :LAST_ERROR_SQLSTATE
SELECT iceml.run_pipeline('p', NULL);
\echo :LAST_ERROR_SQLSTATE
SELECT iceml.run_pipeline('p', '[1, 2]');
\echo :LAST_ERROR_SQLSTATE
SELECT iceml.run_pipeline('p', '{}');
\echo :LAST_ERROR_SQLSTATE
SELECT iceml.run_pipeline('p', '{"feature_group": {"name": "x"}, "train": {}, "schedule": "daily"}');
\echo :LAST_ERROR_SQLSTATE
SELECT iceml.run_pipeline('p', '{"feature_group": {"name": "x"}}');
\echo :LAST_ERROR_SQLSTATE
SELECT iceml.run_pipeline('p', '{"feature_group": {"name": "x"}, "train": {}, "tune": {"search_space": {}}}');
\echo :LAST_ERROR_SQLSTATE
SELECT iceml.run_pipeline('p', '{"feature_group": "x", "train": {}}');
\echo :LAST_ERROR_SQLSTATE
SELECT iceml.run_pipeline('p', '{"feature_group": {}, "train": {}}');
\echo :LAST_ERROR_SQLSTATE
SELECT iceml.run_pipeline('p', '{"feature_group": {"name": "x", "table": "iceml_fs.x_1"}, "train": {}}');
\echo :LAST_ERROR_SQLSTATE
SELECT iceml.run_pipeline('p', '{"feature_group": {"name": "X-1"}, "train": {}}');
\echo :LAST_ERROR_SQLSTATE
SELECT iceml.run_pipeline('p', '{"feature_group": {"table": "iceml_fs.x_1", "validation": "STRICT"}, "train": {}}');
\echo :LAST_ERROR_SQLSTATE
SELECT iceml.run_pipeline('p', '{"feature_group": {"name": "x", "validation": "SOMETIMES"}, "train": {}}');
\echo :LAST_ERROR_SQLSTATE
SELECT iceml.run_pipeline('p', '{"feature_group": {"name": "x", "expectations": {}}, "train": {}}');
\echo :LAST_ERROR_SQLSTATE
SELECT iceml.run_pipeline('p', '{"feature_group": {"name": "x", "colour": "blue"}, "train": {}}');
\echo :LAST_ERROR_SQLSTATE
SELECT iceml.run_pipeline('p', '{"feature_group": {"name": "x", "statistics": "yes"}, "train": {}}');
\echo :LAST_ERROR_SQLSTATE
SELECT iceml.run_pipeline('p', '{"ingest": {"synthetic": {"n": 10}}, "training_dataset": {"table": "iceml_td.t_1"}, "train": {}}');
\echo :LAST_ERROR_SQLSTATE
SELECT iceml.run_pipeline('p', '{"feature_group": {"name": "x"}, "ingest": {}, "train": {}}');
\echo :LAST_ERROR_SQLSTATE
SELECT iceml.run_pipeline('p', '{"feature_group": {"name": "x"}, "ingest": {"path": "/a", "document": "[]"}, "train": {}}');
\echo :LAST_ERROR_SQLSTATE
SELECT iceml.run_pipeline('p', '{"feature_group": {"name": "x"}, "ingest": {"url": "http://x"}, "train": {}}');
\echo :LAST_ERROR_SQLSTATE
SELECT iceml.run_pipeline('p', '{"feature_group": {"name": "x"}, "ingest": {"synthetic": {}}, "train": {}}');
\echo :LAST_ERROR_SQLSTATE
SELECT iceml.run_pipeline('p', '{"feature_group": {"name": "x"}, "ingest": {"synthetic": {"n": 0}}, "train": {}}');
\echo :LAST_ERROR_SQLSTATE
SELECT iceml.run_pipeline('p', '{"feature_group": {"name": "x"}, "ingest": {"synthetic": {"n": 2.5}}, "train": {}}');
\echo :LAST_ERROR_SQLSTATE
SELECT iceml.run_pipeline('p', '{"feature_group": {"name": "x"}, "ingest": {"synthetic": {"n": "2000"}}, "train": {}}');
\echo :LAST_ERROR_SQLSTATE
SELECT iceml.run_pipeline('p', '{"feature_group": {"name": "x"}, "ingest": {"synthetic": {"n": 10, "seed": -1}}, "train": {}}');
\echo :LAST_ERROR_SQLSTATE
SELECT iceml.run_pipeline('p', '{"feature_group": {"name": "x"}, "ingest": {"synthetic": {"n": 10, "bad": 1000}}, "train": {}}');
\echo :LAST_ERROR_SQLSTATE
SELECT iceml.run_pipeline('p', '{"feature_group": {"name": "x"}, "ingest": {"synthetic": {"n": 10, "size": 75}}, "train": {}}');
\echo :LAST_ERROR_SQLSTATE
SELECT iceml.run_pipeline('p', '{"feature_group": {"name": "x"}, "ingest": {"path": 42}, "train": {}}');
\echo :LAST_ERROR_SQLSTATE
SELECT iceml.run_pipeline('p', '{"feature_group": {"name": "x"}, "on_error": "ignore", "train": {}}');
\echo :LAST_ERROR_SQLSTATE
SELECT iceml.run_pipeline('p', '{"feature_group": {"name": "x"}, "statistics": 1, "train": {}}');
\echo :LAST_ERROR_SQLSTATE
SELECT iceml.run_pipeline('p', '{"feature_group": {"name": "x"}, "training_dataset": {"splits": [0.8, 0.2]}, "train": {}}');
\echo :LAST_ERROR_SQLSTATE
SELECT iceml.run_pipeline('p', '{"feature_group": {"name": "x"}, "training_dataset": {"seed": "one"}, "train": {}}');
\echo :LAST_ERROR_SQLSTATE
SELECT iceml.run_pipeline('p', '{"feature_group": {"name": "x"}, "training_dataset": {"label": 1}, "train": {}}');
\echo :LAST_ERROR_SQLSTATE
SELECT iceml.run_pipeline('p', '{"feature_group": {"name": "x"}, "training_dataset": {"name": "Big"}, "train": {}}');
\echo :LAST_ERROR_SQLSTATE
SELECT iceml.run_pipeline('p', '{"feature_group": {"name": "x"}, "training_dataset": {"shuffle": true}, "train": {}}');
\echo :LAST_ERROR_SQLSTATE
SELECT iceml.run_pipeline('p', '{"training_dataset": {"table": "iceml_td.t_1", "seed": 1}, "train": {}}');
\echo :LAST_ERROR_SQLSTATE
SELECT iceml.run_pipeline('p', '{"training_dataset": {"table": 7}, "train": {}}');
\echo :LAST_ERROR_SQLSTATE
SELECT iceml.run_pipeline('p', '{"feature_group": {"name": "x"}, "train": []}');
\echo :LAST_ERROR_SQLSTATE
SELECT iceml.run_pipeline('p', '{"feature_group": {"name": "x"}, "train": {"model": "tiny_cnn"}}');
\echo :LAST_ERROR_SQLSTATE
SELECT iceml.run_pipeline('p', '{"feature_group": {"name": "x"}, "train": {"architecture": 3}}');
\echo :LAST_ERROR_SQLSTATE
SELECT iceml.run_pipeline('p', '{"feature_group": {"name": "x"}, "train": {"hyperparams": {"epochs": "five"}}}');
\echo :LAST_ERROR_SQLSTATE
SELECT iceml.run_pipeline('p', '{"feature_group": {"name": "x"}, "train": {"hyperparams": {"epoch": 5}}}');
\echo :LAST_ERROR_SQLSTATE
SELECT iceml.run_pipeline('p', '{"feature_group": {"name": "x"}, "train": {"hyperparams": {"deploy": "always"}}}');
\echo :LAST_ERROR_SQLSTATE
SELECT iceml.run_pipeline('p', '{"feature_group": {"name": "x"}, "train": {"hyperparams": {"learning_rate": "fast"}}}');
\echo :LAST_ERROR_SQLSTATE
SELECT iceml.run_pipeline('p', '{"feature_group": {"name": "x"}, "train": {"hyperparams": {"augment": 1}}}');
\echo :LAST_ERROR_SQLSTATE
SELECT iceml.run_pipeline('p', '{"feature_group": {"name": "x"}, "train": {"hyperparams": {"channels": "band_1"}}}');
\echo :LAST_ERROR_SQLSTATE
SELECT iceml.run_pipeline('p', '{"feature_group": {"name": "x"}, "train": {"hyperparams": []}}');
\echo :LAST_ERROR_SQLSTATE
-- the hyperparameters iceml.train knows, checked by the same parser
SELECT iceml.run_pipeline('p', '{"feature_group": {"name": "x"}, "train": {"hyperparams": {"lr_schedule": "linear"}}}');
\echo :LAST_ERROR_SQLSTATE
SELECT iceml.run_pipeline('p', '{"feature_group": {"name": "x"}, "train": {"hyperparams": {"epochs": 4, "warmup_epochs": 6}}}');
\echo :LAST_ERROR_SQLSTATE
SELECT iceml.run_pipeline('p', '{"feature_group": {"name": "x"}, "train": {"hyperparams": {"asha_min_epochs": 2}}}');
\echo :LAST_ERROR_SQLSTATE
SELECT iceml.run_pipeline('p', '{"feature_group": {"name": "x"}, "tune": {}}');
\echo :LAST_ERROR_SQLSTATE
SELECT iceml.run_pipeline('p', '{"feature_group": {"name": "x"}, "tune": {"search_space": []}}');
\echo :LAST_ERROR_SQLSTATE
SELECT iceml.run_pipeline('p', '{"feature_group": {"name": "x"}, "tune": {"search_space": {}, "strategy": "bayes"}}');
\echo :LAST_ERROR_SQLSTATE
SELECT iceml.run_pipeline('p', '{"feature_group": {"name": "x"}, "tune": {"search_space": {}, "trials": 0}}');
\echo :LAST_ERROR_SQLSTATE
SELECT iceml.run_pipeline('p', '{"feature_group": {"name": "x"}, "tune": {"search_space": {}, "parallel": 100}}');
\echo :LAST_ERROR_SQLSTATE
SELECT iceml.run_pipeline('p', '{"feature_group": {"name": "x"}, "tune": {"search_space": {}, "metric": "f1"}}');
\echo :LAST_ERROR_SQLSTATE
SELECT iceml.run_pipeline('p', '{"feature_group": {"name": "x"}, "tune": {"search_space": {}, "hyperparams": {"asha_min_epochs": 0.5}}}');
\echo :LAST_ERROR_SQLSTATE
SELECT iceml.run_pipeline('p', '{"feature_group": {"name": "x"}, "tune": {"search_space": {}, "nodes": "n1"}}');
\echo :LAST_ERROR_SQLSTATE
SELECT iceml.run_pipeline('p', '{"feature_group": {"name": "x"}, "tune": {"search_space": {}, "nodes": []}}');
\echo :LAST_ERROR_SQLSTATE
SELECT iceml.run_pipeline('p', '{"feature_group": {"name": "x"}, "tune": {"search_space": {}, "nodes": ["n1", 2]}}');
\echo :LAST_ERROR_SQLSTATE
SELECT iceml.run_pipeline('p', '{"feature_group": {"name": "x"}, "train": {}, "evaluate": {"split": 1}}');
\echo :LAST_ERROR_SQLSTATE
SELECT iceml.run_pipeline('p', '{"feature_group": {"name": "x"}, "train": {}, "evaluate": {"metric": "auc"}}');
\echo :LAST_ERROR_SQLSTATE
SELECT iceml.run_pipeline('p', '{"feature_group": {"name": "x"}, "train": {}, "deploy": "sometimes"}');
\echo :LAST_ERROR_SQLSTATE
SELECT iceml.run_pipeline('p', '{"feature_group": {"name": "x"}, "train": {}, "deploy": true}');
\echo :LAST_ERROR_SQLSTATE
SELECT iceml.run_pipeline('p', '{"feature_group": {"name": "x"}, "train": {}, "retrain_on_drift": {}}');
\echo :LAST_ERROR_SQLSTATE
SELECT iceml.run_pipeline('p', '{"feature_group": {"name": "x"}, "train": {}, "retrain_on_drift": {"model": "m", "psi_threshold": 0}}');
\echo :LAST_ERROR_SQLSTATE
SELECT iceml.run_pipeline('p', '{"feature_group": {"name": "x"}, "train": {}, "retrain_on_drift": {"model": "m", "min_samples": 0}}');
\echo :LAST_ERROR_SQLSTATE
SELECT iceml.run_pipeline('p', '{"feature_group": {"name": "x"}, "train": {}, "retrain_on_drift": {"model": "m", "since": "yesterday-ish"}}');
\echo :LAST_ERROR_SQLSTATE
SELECT iceml.run_pipeline('p', '{"feature_group": {"name": "x"}, "train": {}, "retrain_on_drift": {"model": "m", "every": 2}}');
\echo :LAST_ERROR_SQLSTATE
SELECT count(*) AS runs_recorded FROM iceml.pipeline_runs;

-- users write the catalogs only through iceml
DROP ROLE IF EXISTS reg_pipe_user;
CREATE ROLE reg_pipe_user IN ROLE iceml_user;
SET ROLE reg_pipe_user;
INSERT INTO iceml.pipeline_runs (name, config, owner, role, login, database) VALUES ('x', '{}', 'postgres', 10, 10, 1);
\echo :LAST_ERROR_SQLSTATE
UPDATE iceml.pipeline_steps SET status = 'succeeded';
\echo :LAST_ERROR_SQLSTATE
SELECT iceml._pipeline_check('x', '{}');
\echo :LAST_ERROR_SQLSTATE
RESET ROLE;
SET ROLE iceml_reader;
SELECT iceml.run_pipeline('p', '{"feature_group": {"name": "x"}, "train": {}}');
\echo :LAST_ERROR_SQLSTATE
RESET ROLE;
DROP ROLE reg_pipe_user;

-- schedules: a bad config or schedule is refused first; then pg_cron must
-- be usable here (it keeps its jobs in cron.database_name, 'iceml' on the
-- embedded cluster: schedules are exercised by test/tap/61_schedules.pl)
SELECT iceml.schedule_pipeline('p', '* * * * *', '{"train": {}}');
\echo :LAST_ERROR_SQLSTATE
SELECT iceml.schedule_pipeline('p', '0 seconds', '{"feature_group": {"name": "x"}, "train": {}}');
\echo :LAST_ERROR_SQLSTATE
SELECT iceml.schedule_pipeline('p', '60 seconds', '{"feature_group": {"name": "x"}, "train": {}}');
\echo :LAST_ERROR_SQLSTATE
SELECT iceml.schedule_pipeline('p', NULL, '{"feature_group": {"name": "x"}, "train": {}}');
\echo :LAST_ERROR_SQLSTATE
-- (the regression database's name varies: shown as <db>)
CREATE FUNCTION pg_temp.error_of(stmt text) RETURNS text LANGUAGE plpgsql AS $$
DECLARE
    h text;
BEGIN
    EXECUTE stmt;
    RETURN 'no error';
EXCEPTION WHEN OTHERS THEN
    GET STACKED DIAGNOSTICS h = PG_EXCEPTION_HINT;
    RETURN replace(SQLSTATE || ': ' || SQLERRM || E'\nHINT: ' || h, current_database(), '<db>');
END
$$;
SELECT pg_temp.error_of($$SELECT iceml.schedule_pipeline('p', '30 seconds', '{"feature_group": {"name": "x"}, "train": {}}')$$);
SELECT pg_temp.error_of($$SELECT iceml.unschedule_pipeline('p')$$);
\set VERBOSITY default
SELECT iceml.run_scheduled_pipeline('p');
\echo :LAST_ERROR_SQLSTATE
SELECT count(*) AS schedules FROM iceml.pipeline_schedules;
