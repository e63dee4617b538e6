-- iceml_predict, deployments, analysis and monitoring: the objects, what
-- each role may do (42501 otherwise), and inference logging through the
-- monitor worker (its rows are committed by the worker and seen here).
BEGIN;
SELECT plan(73);
SET client_min_messages = error;

-- ---- the objects ---------------------------------------------------------------
SELECT has_function('public', 'iceml_predict', ARRAY['text', 'real[]', 'real[]', 'real'], 'iceml_predict by name in the extension''s schema');
SELECT has_function('public', 'iceml_predict', ARRAY['bigint', 'real[]', 'real[]', 'real'], 'iceml_predict by model id');
SELECT volatility_is('public', 'iceml_predict', ARRAY['text', 'real[]', 'real[]', 'real'], 'stable', 'iceml_predict is STABLE');
SELECT is((SELECT proparallel FROM pg_proc WHERE oid = 'iceml_predict(text, real[], real[], real)'::regprocedure), 's',
          'iceml_predict is PARALLEL SAFE');
SELECT has_function('iceml', 'deploy', ARRAY['text', 'text', 'boolean']);
SELECT has_function('iceml', 'deploy', ARRAY['text', 'bigint', 'boolean']);
SELECT has_function('iceml', 'deploy_ensemble', ARRAY['text', 'bigint[]', 'boolean']);
SELECT has_function('iceml', 'predict_table', ARRAY['text', 'regclass', 'text', 'text', 'text', 'text']);
SELECT has_function('iceml', 'predict_batch', ARRAY['text', 'real[]', 'real[]', 'real[]']);
SELECT is((SELECT proparallel FROM pg_proc WHERE oid = 'iceml.predict_batch(text, real[], real[], real[])'::regprocedure), 's',
          'predict_batch is PARALLEL SAFE');
SELECT is((SELECT proparallel FROM pg_proc WHERE oid = 'iceml.predict_table(text, regclass, text, text, text, text)'::regprocedure), 'r',
          'predict_table is PARALLEL RESTRICTED (it reads the relation itself, with its own threads)');
SELECT has_table('iceml', 'deployment_members', 'the members of ensemble deployments');
SELECT has_function('iceml', 'evaluate', ARRAY['text', 'regclass', 'text']);
SELECT has_function('iceml', 'evaluate_slices', ARRAY['text', 'regclass', 'text', 'integer', 'text']);
SELECT has_function('iceml', 'what_if', ARRAY['text', 'real[]', 'real[]', 'real', 'jsonb']);
SELECT has_function('iceml', 'monitor', ARRAY['text', 'interval', 'double precision', 'integer']);
SELECT has_table('iceml', 'deployments', 'deployment history');
SELECT has_table('iceml', 'inference_log', 'inference log');
SELECT ok((SELECT bool_and(x::regclass::text = ANY (ARRAY['iceml.deployments', 'iceml.deployments_id_seq',
                                                         'iceml.inference_log', 'iceml.inference_log_id_seq']))
             FROM pg_extension e, unnest(e.extconfig) x WHERE e.extname = 'iceml'
              AND x::regclass::text ~ '^iceml\.(deployments|inference_log)'), 'catalog tables are dumped with pg_dump');
SELECT is((SELECT count(*)::int FROM pg_extension e, unnest(e.extconfig) x WHERE e.extname = 'iceml'
              AND x::regclass::text ~ '^iceml\.(deployments|inference_log)'), 4, 'all four registered');

-- ---- a dataset, a model, a deployment ----------------------------------------------
SELECT lives_ok($$SELECT iceml.create_feature_group('tap_pr', '[{"name":"id","type":"int"},{"name":"band_1","type":"real[]"},
    {"name":"band_2","type":"real[]"},{"name":"inc_angle","type":"real"},{"name":"is_iceberg","type":"smallint"}]', ARRAY['id'], validation => 'NONE')$$,
    'a feature group');
SELECT setseed(0.25);
INSERT INTO iceml_fs.tap_pr_1
SELECT i, (SELECT array_agg(-22 + random()::real * 3 + CASE WHEN i % 2 = 1 AND j % 75 BETWEEN 30 AND 40 AND j / 75 BETWEEN 30 AND 40 THEN 12 ELSE 0 END ORDER BY j)
             FROM generate_series(0, 5624) j),
          (SELECT array_agg(-28 + random()::real * 2 ORDER BY j) FROM generate_series(0, 5624) j),
          (30 + i % 16)::real, (i % 2)::smallint
  FROM generate_series(1, 60) i;
SELECT lives_ok($$SELECT iceml.create_training_dataset('tap_pr', 'iceml_fs.tap_pr_1', 'is_iceberg')$$, 'a training dataset');
SELECT lives_ok($$SELECT iceml.compute_statistics('iceml_fs.tap_pr_1')$$, 'its statistics');
INSERT INTO iceml.models (experiment, architecture, spec, parameters, channels, normalisation, metrics, training_dataset, lineage, weights, owner)
SELECT 'tap_ice', 'tiny_cnn', a.spec, a.parameters, '{band_1,band_2,band_avg}', '{}', '{"log_loss": 0.5}', 'iceml_td.tap_pr_1', '{}',
       iceml._untrained_weights(a.spec::text, 11, '{-20,-27,-24}', '{3,1,2}'), 'postgres'
  FROM iceml.architectures a WHERE a.name = 'tiny_cnn';
SELECT ok(iceml.deploy('tap_ice') > 0, 'the model is deployed');
-- a second, worse model for iceml_user to deploy below
INSERT INTO iceml.models (experiment, architecture, spec, parameters, channels, normalisation, metrics, training_dataset, lineage, weights, owner)
SELECT 'tap_ice', 'tiny_cnn', a.spec, a.parameters, '{band_1,band_2,band_avg}', '{}', '{"log_loss": 0.6}', 'iceml_td.tap_pr_1', '{}',
       iceml._untrained_weights(a.spec::text, 12, '{-20,-27,-24}', '{3,1,2}'), 'postgres'
  FROM iceml.architectures a WHERE a.name = 'tiny_cnn';

-- ---- roles ---------------------------------------------------------------------------
CREATE ROLE tap_pr_reader IN ROLE iceml_reader;
CREATE ROLE tap_pr_user IN ROLE iceml_user;
GRANT SELECT ON iceml_td.tap_pr_1 TO tap_pr_reader;
SET ROLE tap_pr_reader;
SELECT ok((SELECT count(iceml_predict('tap_ice', band_1, band_2, inc_angle)) FROM iceml_td.tap_pr_1) = 60,
          'iceml_reader calls iceml_predict');
SELECT ok((iceml.evaluate('tap_ice', 'iceml_td.tap_pr_1')->>'n')::int > 0, 'iceml_reader evaluates');
SELECT ok((SELECT count(*) FROM iceml.evaluate_slices('tap_ice', 'iceml_td.tap_pr_1', 'inc_angle')) > 0, 'iceml_reader slices');
SELECT ok((SELECT iceml.what_if('tap_ice', band_1, band_2, inc_angle, '{"op":"rotate","degrees":180}') ? 'after'
             FROM iceml_td.tap_pr_1 WHERE id = 1), 'iceml_reader asks what if');
SELECT ok((SELECT count(*) FROM iceml.model_summaries m WHERE m.experiment = 'tap_ice' AND m.metrics IS NOT NULL) = 2
          AND (SELECT count(*) FROM (SELECT * FROM iceml.run_summaries) r) >= 0
          AND (SELECT count(*) FROM (SELECT * FROM iceml.model_summaries) m) >= 2
          AND (SELECT count(*) FROM iceml.deployments) >= 1,
          'iceml_reader reads model, run and deployment metadata (SELECT * of the summaries)');
SELECT throws_ok($$SELECT weights FROM iceml.models$$, '42501', NULL, 'iceml_reader cannot read weights');
SELECT throws_ok($$SELECT iceml.deploy('tap_ice', 'most_recent')$$, '42501', NULL, 'iceml_reader cannot deploy');
SELECT throws_ok($$SELECT iceml.deploy_ensemble('tap_ice', ARRAY(SELECT id FROM iceml.model_summaries))$$, '42501', NULL,
                 'iceml_reader cannot deploy an ensemble');
SELECT is((SELECT count(probability)::int FROM iceml.predict_table('tap_ice', 'iceml_td.tap_pr_1', key => 'id')), 60,
          'iceml_reader scores a table it may read');
SELECT is((SELECT array_length(iceml.predict_batch('tap_ice', array_agg(band_1), array_agg(band_2)), 1) FROM iceml_td.tap_pr_1), 60,
          'iceml_reader scores a batch');
SELECT throws_ok($$SELECT * FROM iceml.predict_table('tap_ice', 'iceml_fs.tap_pr_1')$$, '42501', NULL,
                 'iceml_reader cannot score a table it may not read');
SELECT throws_ok($$INSERT INTO iceml.deployments (name, model_id, strategy) SELECT 'tap_ice', id, 'model_id' FROM iceml.models LIMIT 1$$,
                 '42501', NULL, 'iceml_reader cannot write deployments');
SELECT throws_ok($$SELECT iceml.train('tap_ice', 'iceml_td.tap_pr_1', 'tiny_cnn')$$, '42501', NULL, 'iceml_reader cannot train');
SELECT throws_ok($$SELECT iceml._untrained_weights('{}', 1, '{}', '{}')$$, '42501', NULL, 'iceml_reader cannot make models');
SELECT throws_ok($$SELECT count(*) FROM iceml.inference_log$$, '42501', NULL, 'iceml_reader cannot read the inference log');
SELECT throws_ok($$SELECT iceml.monitor('tap_ice')$$, '42501', NULL, 'iceml_reader cannot monitor');
RESET ROLE;
-- a deployment name belongs to the role that first deployed under it
CREATE ROLE tap_pr_other IN ROLE iceml_user;
SET ROLE tap_pr_user;
SELECT throws_ok($$SELECT iceml.deploy('tap_ice', 'most_recent')$$, '42501',
                 'deployment name "tap_ice" belongs to role "postgres"', 'iceml_user cannot take over a name it does not own');
RESET ROLE;
SELECT is(iceml.transfer_deployment('tap_ice', 'tap_pr_user'), 'tap_pr_user', 'its owner hands the name over');
SET ROLE tap_pr_other;
SELECT throws_ok($$SELECT iceml.deploy('tap_ice', 'most_recent')$$, '42501', NULL, 'another iceml_user still cannot');
SELECT throws_ok($$SELECT iceml.transfer_deployment('tap_ice', 'tap_pr_other')$$, '42501', NULL, 'nor take the name');
RESET ROLE;
SET ROLE tap_pr_user;
SELECT is(iceml.deploy('tap_ice', 'most_recent'), (SELECT max(id) FROM iceml.model_summaries WHERE experiment = 'tap_ice'),
          'iceml_user deploys');
SELECT is((SELECT deployed_by::text FROM iceml.deployments ORDER BY id DESC LIMIT 1), 'tap_pr_user', 'as itself');
SELECT throws_ok($$INSERT INTO iceml.deployments (name, model_id, strategy, deployed_by) VALUES ('tap_ice', 1, 'model_id', 'someone')$$,
                 '42501', NULL, 'iceml_user cannot write who deployed');
SELECT throws_ok($$DELETE FROM iceml.deployments$$, '42501', NULL, 'iceml_user cannot rewrite the history');
RESET ROLE;

-- ---- inference logging: in shared memory, flushed by the monitor worker ---------
-- (a statement's snapshot is taken before it waits: flushed() and the count
-- that should see the flushed rows are separate statements)
CREATE FUNCTION pg_temp.flushed() RETURNS boolean LANGUAGE plpgsql AS $$
BEGIN
    FOR i IN 1..150 LOOP
        IF (SELECT pending FROM iceml.inference_log_status()) = 0 THEN RETURN true; END IF;
        PERFORM pg_sleep(0.1);
    END LOOP;
    RETURN false;
END $$;
-- rows flushed by earlier runs of this file were committed by the worker
DELETE FROM iceml.inference_log WHERE name = 'tap_ice';
SELECT is((SELECT preloaded AND worker_running FROM iceml.inference_log_status()), true, 'iceml is preloaded and its monitor worker runs');
SET iceml.log_inferences = 0;
SELECT ok((SELECT count(iceml_predict('tap_ice', band_1, band_2, inc_angle)) FROM iceml_td.tap_pr_1) = 60, 'calls at rate 0');
SELECT is((SELECT pending FROM iceml.inference_log_status()), 0, 'rate 0 logs nothing');
SET iceml.log_inferences = 1;
SELECT ok((SELECT count(iceml_predict('tap_ice', band_1, band_2, inc_angle)) FROM iceml_td.tap_pr_1 WHERE split = 'train') > 0,
          'calls at rate 1');
SET iceml.log_inferences = 0;
SELECT ok(pg_temp.flushed(), 'the worker flushes them');
SELECT is((SELECT count(*)::int FROM iceml.inference_log WHERE name = 'tap_ice'),
          (SELECT count(*)::int FROM iceml_td.tap_pr_1 WHERE split = 'train'), 'every call logged at rate 1');
SELECT is((SELECT count(*)::int FROM iceml_td.tap_pr_1 t
            WHERE t.split = 'train' AND EXISTS (
                  SELECT FROM iceml.inference_log l
                   WHERE l.name = 'tap_ice' AND abs(l.band_1_mean - (SELECT avg(x) FROM unnest(t.band_1) x)) < 1e-4
                     AND abs(l.band_2_mean - (SELECT avg(x) FROM unnest(t.band_2) x)) < 1e-4
                     AND l.band_1_max = (SELECT max(x) FROM unnest(t.band_1) x) AND l.band_2_max = (SELECT max(x) FROM unnest(t.band_2) x)
                     AND l.inc_angle = t.inc_angle AND l.latency_ms > 0 AND l.role = 'postgres'
                     AND l.model_id = iceml.deployed_model('tap_ice')
                     AND l.prediction = iceml_predict('tap_ice', t.band_1, t.band_2))), 48,
          'each row: model, latency, prediction and the input summaries');
SELECT is((iceml.monitor('tap_ice', min_samples => 40)->>'drift')::boolean, false, 'the training data itself does not drift');
SELECT is(jsonb_typeof(iceml.monitor('tap_ice')->'drift'), 'null', 'below min_samples (100) calls: no drift verdict');
SELECT matches(iceml.monitor('tap_ice')->>'drift_reason', '^48 logged calls .* fewer than min_samples 100', 'and the reason says why');
SELECT throws_ok($$SELECT iceml.monitor('tap_ice', min_samples => 0)$$, '22023', NULL, 'min_samples must be positive');
SET iceml.log_inferences = 1;
-- parallel workers log too (they never write: the worker does)
SET LOCAL parallel_setup_cost = 0;
SET LOCAL parallel_tuple_cost = 0;
SET LOCAL min_parallel_table_scan_size = 0;
SET LOCAL force_parallel_mode = on;
SELECT ok((SELECT count(iceml_predict('tap_ice', band_1, band_2, inc_angle)) FROM iceml_td.tap_pr_1 WHERE split = 'test') > 0,
          'calls in a parallel worker');
RESET force_parallel_mode;
SET iceml.log_inferences = 0;
SELECT ok(pg_temp.flushed(), 'flushed');
SELECT is((SELECT count(*)::int FROM iceml.inference_log WHERE name = 'tap_ice'),
          (SELECT count(*)::int FROM iceml_td.tap_pr_1), 'and are logged');
SET iceml.log_inferences = 1;
-- +6 dB on band_1: its mean and max drift, band_2 does not
SELECT ok((SELECT count(iceml_predict('tap_ice', ARRAY(SELECT x + 6 FROM unnest(band_1) x)::real[], band_2, inc_angle))
             FROM iceml_td.tap_pr_1, generate_series(1, 3)) = 180, 'brighter chips');
SET iceml.log_inferences = 0;
SELECT ok(pg_temp.flushed(), 'flushed');
SELECT ok((SELECT (m->>'drift')::boolean AND (m->'inputs'->'band_1_mean'->>'drift')::boolean
                  AND (m->'inputs'->'band_1_max'->>'drift')::boolean AND NOT (m->'inputs'->'band_2_mean'->>'drift')::boolean
                  AND (m->>'calls')::int = 240
             FROM iceml.monitor('tap_ice') m), 'monitor flags band_1 and not band_2');
-- batched scoring logs each row it scores, and an augmented ensemble's
-- rows carry the ensemble's probability
SELECT ok(iceml.deploy_ensemble('tap_ice', ARRAY(SELECT id FROM iceml.models WHERE experiment = 'tap_ice' ORDER BY id), tta => true) > 0,
          'an augmented ensemble of the two models');
SET iceml.log_inferences = 1;
SELECT is((SELECT count(probability)::int FROM iceml.predict_table('tap_ice', 'iceml_td.tap_pr_1')), 60, 'predict_table scores the dataset');
SET iceml.log_inferences = 0;
SELECT ok(pg_temp.flushed(), 'flushed');
SELECT is((SELECT count(*)::int FROM iceml.inference_log l JOIN iceml_td.tap_pr_1 t ON l.name = 'tap_ice'
             AND l.deployment_id = (SELECT deployment_id FROM iceml.deployed_models WHERE name = 'tap_ice')
             AND l.band_1_max = (SELECT max(x) FROM unnest(t.band_1) x) AND l.inc_angle = t.inc_angle
             AND abs(l.prediction - iceml_predict('tap_ice', t.band_1, t.band_2)) < 1e-6), 60,
          'every row logged under the ensemble''s deployment with its prediction');
SELECT ok((SELECT (m->>'calls')::int = 300 AND (m->>'deployed_tta')::boolean
                  AND m->'deployed_members' = (SELECT to_jsonb(members) FROM iceml.deployed_models WHERE name = 'tap_ice')
             FROM iceml.monitor('tap_ice') m), 'monitor counts them and shows the deployment''s augmentation and members');
-- the training dataset dropped after training: no reference, said so, no error
SELECT lives_ok($$DROP TABLE iceml_td.tap_pr_1$$, 'the training dataset is dropped');
SELECT ok((SELECT m->'drift' = 'null'::jsonb AND m->'inputs' = '{}'::jsonb
                  AND m->>'drift_reason' ~ '^the training dataset of model \d+ \(relation oid \d+\) was dropped'
                  AND (m->>'calls')::int = 300
             FROM iceml.monitor('tap_ice') m), 'monitor reports the latency and calls and why there is no drift verdict');
SELECT throws_ok(format('SELECT * FROM iceml.drift_reference(%s::oid::regclass, %L)',
                        (SELECT training_dataset::oid FROM iceml.models WHERE experiment = 'tap_ice' LIMIT 1), 'band_1_mean'),
                 '42P01', NULL, 'drift_reference of a dropped dataset: 42P01');
SELECT * FROM finish();
ROLLBACK;
