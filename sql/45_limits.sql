-- Resource limits: settings that spend the machine's threads and memory or
-- decide what is logged about other roles' calls are a superuser's (42501
-- for anyone else); a search grid is counted before it is enumerated
-- (54000); a model above iceml.max_model_mb (54000) and a training run above
-- iceml.train_memory_mb (53200) are refused from the engine's memory plan,
-- before anything is allocated.
SET client_min_messages = warning;
\set SHOW_CONTEXT never

SELECT name, setting, unit, context FROM pg_settings WHERE name LIKE 'iceml.%' ORDER BY name;

-- ---- who may change what ------------------------------------------------------
CREATE ROLE lim_reader IN ROLE iceml_reader;
CREATE ROLE lim_user IN ROLE iceml_user;
\set VERBOSITY terse
SET ROLE lim_reader;
SET iceml.log_inferences = 1;
\echo :LAST_ERROR_SQLSTATE
SET iceml.predict_threads = 64;
\echo :LAST_ERROR_SQLSTATE
SET iceml.predict_cache_mb = 65536;
\echo :LAST_ERROR_SQLSTATE
SET iceml.predict_batch_threads = 64;
\echo :LAST_ERROR_SQLSTATE
SET ROLE lim_user;
SET iceml.train_threads = 64;
\echo :LAST_ERROR_SQLSTATE
SET iceml.max_model_mb = 1048576;
\echo :LAST_ERROR_SQLSTATE
SET iceml.train_memory_mb = 1048576;
\echo :LAST_ERROR_SQLSTATE
SELECT set_config('iceml.log_inferences', '1', false);
\echo :LAST_ERROR_SQLSTATE
-- nor for a role of its own
ALTER ROLE lim_user SET iceml.predict_threads = 64;
\echo :LAST_ERROR_SQLSTATE
-- what only concerns the role's own statement stays its own
SET iceml.ingest_parse_thread = off;
SHOW iceml.ingest_parse_thread;
RESET iceml.ingest_parse_thread;
RESET ROLE;
SHOW iceml.log_inferences;
SHOW iceml.predict_threads;
-- a superuser sets them, for a role too
ALTER ROLE lim_reader SET iceml.predict_threads = 2;
SELECT unnest(setconfig) AS setting FROM pg_db_role_setting WHERE setrole = 'lim_reader'::regrole;
ALTER ROLE lim_reader RESET ALL;

-- a training dataset to check arguments against
SELECT iceml.create_feature_group('lim_chips', '[{"name":"id","type":"int"},{"name":"band_1","type":"real[]"},{"name":"band_2","type":"real[]"},{"name":"is_iceberg","type":"smallint"}]', ARRAY['id'], validation => 'NONE');
INSERT INTO iceml_fs.lim_chips_1 SELECT i, array_fill(-20::real, ARRAY[5625]), array_fill(-25::real, ARRAY[5625]), (i % 2)::smallint
  FROM generate_series(1, 10) i;
SELECT iceml.create_training_dataset('lim', 'iceml_fs.lim_chips_1', 'is_iceberg');

-- ---- a grid is counted, not enumerated ---------------------------------------
\set VERBOSITY default
SELECT iceml.tune('lim', 'iceml_td.lim_1', 'tiny_cnn', '{"batch_size": {"type": "INTEGER", "range": [1, 3000000]}}', 'grid');
\echo :LAST_ERROR_SQLSTATE
SELECT iceml.tune('lim', 'iceml_td.lim_1', 'tiny_cnn', '{"batch_size": {"type": "INTEGER", "range": [1, 1e12]}}', 'grid');
\echo :LAST_ERROR_SQLSTATE
-- a product no number type could hold
SELECT iceml.tune('lim', 'iceml_td.lim_1', 'tiny_cnn', '{"seed": {"type": "INTEGER", "range": [0, 1e300]},
    "epochs": {"type": "INTEGER", "range": [1, 1e300]}, "batch_size": {"type": "INTEGER", "range": [1, 1e300]}}', 'grid');
\echo :LAST_ERROR_SQLSTATE
-- "points" and values count as many grid points as they give
SELECT iceml._grid_size('x', '{"type": "INTEGER", "range": [1, 1e12], "points": 5}') AS spread,
       iceml._grid_size('x', '{"type": "INTEGER", "range": [1, 3], "points": 10}') AS capped,
       (SELECT count(*) FROM iceml._grid_values('x', '{"type": "INTEGER", "range": [1, 3], "points": 10}')) AS enumerated,
       iceml._grid_size('x', '{"type": "DOUBLE", "range": [0.1, 1], "points": 4}') AS doubles,
       iceml._grid_size('x', '{"type": "CATEGORICAL", "values": ["a", "b"]}') AS categories;
SELECT count(*) AS studies FROM iceml.studies;

-- ---- model size: iceml.max_model_mb (1 GB by default) ------------------------
-- 1.07e9 parameters (4.3 GB as floats, about 17 GB to train)
\set huge '{"input": [1, 128, 128], "layers": [{"type": "flatten"}, {"type": "dense", "units": 65536}, {"type": "dense", "units": 1}]}'
SELECT iceml.create_architecture('huge', :'huge');
\echo :LAST_ERROR_SQLSTATE
SELECT count(*) AS huge_registered FROM iceml.architectures WHERE name = 'huge';
-- an inline spec of a study: the trial that does not fit stops the study
SELECT iceml.tune('lim', 'iceml_td.lim_1', '{"input": [3, 75, 75], "layers": [{"type": "flatten"},
    {"type": "dense", "units": "$units"}, {"type": "dense", "units": 1}]}',
    '{"units": {"type": "DISCRETE", "values": [8, 65536]}}', 'grid');
\echo :LAST_ERROR_SQLSTATE
-- a superuser may allow it; training it is another matter
SET iceml.max_model_mb = '8GB';
SELECT iceml.create_architecture('huge', :'huge') AS parameters;
SELECT iceml.train('lim', 'iceml_td.lim_1', 'huge', '{"channels": ["band_1"]}');
\echo :LAST_ERROR_SQLSTATE
RESET iceml.max_model_mb;
-- the registered architecture is above the limit again: train refuses it
SELECT iceml.train('lim', 'iceml_td.lim_1', 'huge', '{"channels": ["band_1"]}');
\echo :LAST_ERROR_SQLSTATE

-- ---- training memory: iceml.train_memory_mb (4 GB by default) ----------------
-- the batch size decides: statoil_cnn trains with batches of 32 in about
-- 325 MB (mostly activations and their gradients: its 3x3 convolutions run
-- by Winograd without im2col matrices, and conv1's output gradient is made
-- a few planes at a time), and 4096 images a batch would need 26 GB
SELECT iceml.train('lim', 'iceml_td.lim_1', 'statoil_cnn', '{"batch_size": 4096}');
\echo :LAST_ERROR_SQLSTATE
SET iceml.train_memory_mb = 64;
SELECT iceml.train('lim', 'iceml_td.lim_1', 'statoil_cnn', '{"batch_size": 32}');
\echo :LAST_ERROR_SQLSTATE
RESET iceml.train_memory_mb;
SELECT count(*) AS runs FROM iceml.runs;
SELECT count(*) AS studies FROM iceml.studies;

-- ---- threads a run may ask for: the server's processors, or iceml.train_threads
SET iceml.train_threads = 64;
SELECT iceml._max_train_threads();
\set VERBOSITY terse
SELECT iceml.train('lim', 'iceml_td.lim_1', 'tiny_cnn', '{"threads": 65}');
\echo :LAST_ERROR_SQLSTATE
RESET iceml.train_threads;

-- ---- a long forward pass stops for a cancel or a timeout -------------------
-- 60 convolutions at 75x75: about 6 GFLOP a chip; the engine asks between
-- layers whether to stop, and the statement ends with the timeout's own error
SELECT jsonb_build_object('input', '[2, 75, 75]'::jsonb, 'layers',
         (SELECT jsonb_agg('{"type": "conv2d", "filters": 32, "kernel": 3, "padding": "same", "activation": "relu"}'::jsonb)
            FROM generate_series(1, 60)) || '[{"type": "gap"}, {"type": "dense", "units": 1}]'::jsonb) AS deep \gset
-- (an id of its own: the model ids of later files stay as they are)
INSERT INTO iceml.models (id, experiment, architecture, spec, parameters, channels, normalisation, metrics,
                          training_dataset, lineage, weights, owner)
SELECT 990001, 'lim_deep', 'inline', i.spec, i.parameters, '{band_1,band_2}', '{"mean": [-20, -25], "std": [1, 1]}', '{}',
       'iceml_td.lim_1', '{}', iceml._untrained_weights(:'deep', 1, '{-20,-25}', '{1,1}'), current_user
  FROM iceml._spec_info(:'deep') i
RETURNING id AS deep_model, parameters \gset
SET statement_timeout = '20ms';
SELECT iceml_predict(:deep_model, band_1, band_2) FROM iceml_fs.lim_chips_1 WHERE id = 1;
\echo :LAST_ERROR_SQLSTATE
RESET statement_timeout;
SELECT iceml_predict(:deep_model, band_1, band_2) BETWEEN 0 AND 1 AS predicts FROM iceml_fs.lim_chips_1 WHERE id = 1;
DELETE FROM iceml.models WHERE id = :deep_model;
DELETE FROM iceml.architectures WHERE name = 'huge';

DROP ROLE lim_reader;
DROP ROLE lim_user;
