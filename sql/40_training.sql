-- Architectures and the checks iceml.train() makes before it queues a run.
-- (Workers themselves are exercised by test/tap/40_training.pl.)
SET client_min_messages = warning;
\set SHOW_CONTEXT never
SELECT name, parameters, builtin FROM iceml.architectures ORDER BY name;
SELECT jsonb_array_length(spec->'layers') AS layers, spec->'layers'->0 AS first_layer
  FROM iceml.architectures WHERE name = 'statoil_cnn';

SELECT iceml.create_architecture('two_convs', '{"input": [3, 75, 75], "layers": [
    {"type": "conv2d", "filters": 8, "kernel": 5, "stride": 2, "activation": "relu", "group": "conv"},
    {"type": "maxpool", "size": 2}, {"type": "gap"}, {"type": "dense", "units": 1}]}');
SELECT iceml.create_architecture('two_convs', '{"input": [3, 75, 75], "layers": [{"type": "flatten"}, {"type": "dense", "units": 1}]}');
SELECT iceml.create_architecture('Bad', '{}');
-- the engine names the layer and the shapes that do not fit
SELECT iceml.create_architecture('too_deep', '{"input": [3, 8, 8], "layers": [
    {"type": "conv2d", "filters": 8, "kernel": 3, "name": "c1"},
    {"type": "maxpool", "size": 7, "name": "p1"}, {"type": "flatten"}, {"type": "dense", "units": 1}]}');
SELECT iceml.create_architecture('odd', '{"input": [3, 75, 75], "layers": [{"type": "conv3d"}]}');
SELECT iceml.create_architecture('odd', '{"input": [3, 75, 75], "layers": [{"type": "flatten"}, {"type": "dense", "units": 2}]}');
-- side inputs: the incidence angle joined to the flat features (value and
-- missing indicator: 2 more inputs to the dense layer after it)
SELECT iceml.create_architecture('with_angle', '{"input": [3, 75, 75], "layers": [
    {"type": "conv2d", "filters": 8, "kernel": 5, "stride": 2, "activation": "relu"},
    {"type": "gap"}, {"type": "side", "name": "angle", "inputs": ["inc_angle"]}, {"type": "dense", "units": 1}]}');
SELECT spec->'layers'->2 AS side_layer FROM iceml.architectures WHERE name = 'with_angle';
SELECT iceml.create_architecture('odd', '{"input": [3, 75, 75], "layers": [{"type": "gap"}, {"type": "side", "inputs": ["wind_speed"]}, {"type": "dense", "units": 1}]}');
SELECT iceml.create_architecture('odd', '{"input": [3, 75, 75], "layers": [{"type": "side", "inputs": ["inc_angle"]}, {"type": "gap"}, {"type": "dense", "units": 1}]}');
SELECT iceml.create_architecture('odd', '{"input": [3, 75, 75], "layers": [{"type": "gap"}, {"type": "side", "inputs": []}, {"type": "dense", "units": 1}]}');
SELECT iceml.create_architecture('odd', '{"input": [3, 75, 75], "layers": [{"type": "gap"}, {"type": "side", "inputs": ["inc_angle", "inc_angle"]}, {"type": "dense", "units": 1}]}');

-- a training dataset to check arguments against
SELECT iceml.create_feature_group('tr_chips', '[{"name":"id","type":"int"},{"name":"band_1","type":"real[]"},{"name":"band_2","type":"real[]"},{"name":"is_iceberg","type":"smallint"}]', ARRAY['id'], validation => 'NONE');
INSERT INTO iceml_fs.tr_chips_1 SELECT i, array_fill(-20::real, ARRAY[5625]), array_fill(-25::real, ARRAY[5625]), (i % 2)::smallint
  FROM generate_series(1, 10) i;
SELECT iceml.create_training_dataset('tr', 'iceml_fs.tr_chips_1', 'is_iceberg');

-- each bad argument is refused (22023) naming the field; nothing is queued
\set VERBOSITY terse
SELECT iceml.train('e', 'iceml_td.tr_1', 'no_such_net');
\echo :LAST_ERROR_SQLSTATE
SELECT iceml.train('e', 'iceml_fs.tr_chips_1', 'tiny_cnn');
\echo :LAST_ERROR_SQLSTATE
SELECT iceml.train('', 'iceml_td.tr_1', 'tiny_cnn');
\echo :LAST_ERROR_SQLSTATE
SELECT iceml.train('e', 'iceml_td.tr_1', 'tiny_cnn', '{"epochs": 0}');
\echo :LAST_ERROR_SQLSTATE
SELECT iceml.train('e', 'iceml_td.tr_1', 'tiny_cnn', '{"epochs": 2.5}');
\echo :LAST_ERROR_SQLSTATE
SELECT iceml.train('e', 'iceml_td.tr_1', 'tiny_cnn', '{"batch_size": 0}');
\echo :LAST_ERROR_SQLSTATE
SELECT iceml.train('e', 'iceml_td.tr_1', 'tiny_cnn', '{"learning_rate": 0}');
\echo :LAST_ERROR_SQLSTATE
SELECT iceml.train('e', 'iceml_td.tr_1', 'tiny_cnn', '{"learning_rate": "fast"}');
\echo :LAST_ERROR_SQLSTATE
SELECT iceml.train('e', 'iceml_td.tr_1', 'tiny_cnn', '{"optimizer": "rmsprop"}');
\echo :LAST_ERROR_SQLSTATE
SELECT iceml.train('e', 'iceml_td.tr_1', 'tiny_cnn', '{"channels": ["band_1", "band_3", "band_avg"]}');
\echo :LAST_ERROR_SQLSTATE
SELECT iceml.train('e', 'iceml_td.tr_1', 'tiny_cnn', '{"channels": ["band_1", "band_2"]}');
\echo :LAST_ERROR_SQLSTATE
SELECT iceml.train('e', 'iceml_td.tr_1', 'tiny_cnn', '{"channels": [null, "band_1", "band_2"]}');
\echo :LAST_ERROR_SQLSTATE
SELECT iceml.train('e', 'iceml_td.tr_1', 'tiny_cnn', '{"channels": ["band_1", "band_1", "band_2"]}');
\echo :LAST_ERROR_SQLSTATE
SELECT iceml.train('e', 'iceml_td.tr_1', 'tiny_cnn', '{"epoch": 3}');
\echo :LAST_ERROR_SQLSTATE
SELECT iceml.train('e', 'iceml_td.tr_1', 'tiny_cnn', '{"augment": "yes"}');
\echo :LAST_ERROR_SQLSTATE
SELECT iceml.train('e', 'iceml_td.tr_1', 'tiny_cnn', '{"init": "kaiming"}');
\echo :LAST_ERROR_SQLSTATE
SELECT iceml.train('e', 'iceml_td.tr_1', 'tiny_cnn', '{"lr_schedule": "linear"}');
\echo :LAST_ERROR_SQLSTATE
SELECT iceml.train('e', 'iceml_td.tr_1', 'tiny_cnn', '{"epochs": 5, "warmup_epochs": 6}');
\echo :LAST_ERROR_SQLSTATE
SELECT iceml.train('e', 'iceml_td.tr_1', 'tiny_cnn', '{"lr_step_gamma": 0}');
\echo :LAST_ERROR_SQLSTATE
SELECT iceml.train('e', 'iceml_td.tr_1', 'tiny_cnn', '{"lr_step_epochs": 0}');
\echo :LAST_ERROR_SQLSTATE
SELECT iceml.train('e', 'iceml_td.tr_1', 'tiny_cnn', '[1]');
\echo :LAST_ERROR_SQLSTATE
SELECT iceml.train('e', 'iceml_td.tr_1', 'tiny_cnn', '"fast"');
\echo :LAST_ERROR_SQLSTATE
SELECT iceml.train('e', 'iceml_td.tr_1', 'tiny_cnn', '{"deploy": "sometimes"}');
\echo :LAST_ERROR_SQLSTATE
SELECT iceml.train('e', 'iceml_td.tr_1', 'tiny_cnn', '{"momentum": 1}');
\echo :LAST_ERROR_SQLSTATE
SELECT iceml.train('e', 'iceml_td.tr_1', 'tiny_cnn', '{"seed": -1}');
\echo :LAST_ERROR_SQLSTATE
SELECT iceml.train('e', 'iceml_td.tr_1', 'tiny_cnn', '{"channels": []}');
\echo :LAST_ERROR_SQLSTATE
-- the hint names the range (verbose errors from here)
\set VERBOSITY default
SELECT iceml.train('e', 'iceml_td.tr_1', 'tiny_cnn', '{"weight_decay": 2}');
SELECT iceml.train('e', 'iceml_td.tr_1', 'tiny_cnn', '{"lr_schedule": "linear"}');
\set VERBOSITY terse
-- an architecture with the angle needs a real column inc_angle
SELECT iceml.train('e', 'iceml_td.tr_1', 'with_angle');
\echo :LAST_ERROR_SQLSTATE
SELECT count(*) AS runs_queued FROM iceml.runs;

-- unknown ids, and runs that cannot be resumed
SELECT iceml.wait(424242);
\echo :LAST_ERROR_SQLSTATE
-- an experiment name is a deployment name: at most 63 bytes
SELECT iceml.train(repeat('e', 62) || 'é', 'iceml_td.tr_1', 'tiny_cnn', '{"epochs": 1}');
\echo :LAST_ERROR_SQLSTATE
SELECT iceml.cancel(424242);
\echo :LAST_ERROR_SQLSTATE
SELECT iceml.resume(424242);
\echo :LAST_ERROR_SQLSTATE
-- wait in the transaction that queued the run would never return
BEGIN;
SELECT iceml.train('e', 'iceml_td.tr_1', 'tiny_cnn', '{"epochs": 1}') AS run \gset
SELECT iceml.wait(:run);
\echo :LAST_ERROR_SQLSTATE
ROLLBACK;
BEGIN ISOLATION LEVEL REPEATABLE READ;
SELECT iceml.wait(1);
\echo :LAST_ERROR_SQLSTATE
ROLLBACK;
\set VERBOSITY default
