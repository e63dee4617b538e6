-- Studies: what iceml.tune() and iceml.ablation_study() queue, and every
-- argument they refuse.  Everything here is rolled back, so no worker ever
-- starts (test/tap/42_studies.pl runs real studies).  Uses the training
-- dataset iceml_td.tr_1 of 40_training.
SET client_min_messages = warning;
\set SHOW_CONTEXT never

-- A grid over an inline spec template: "$kernel" and "$pool" are filled in
-- per trial, learning_rate is a hyperparameter; 2 x 2 x 3 = 12 trials.
BEGIN;
SELECT iceml.tune('grid', 'iceml_td.tr_1',
    '{"input": [3, 75, 75], "layers": [
        {"type": "conv2d", "filters": 4, "kernel": "$kernel", "stride": 3, "activation": "relu", "name": "c1"},
        {"type": "maxpool", "size": "$pool", "stride": 2},
        {"type": "gap"}, {"type": "dense", "units": 1, "name": "out"}]}',
    '{"kernel": {"type": "DISCRETE", "values": [3, 5]},
      "pool": {"type": "INTEGER", "range": [2, 3]},
      "learning_rate": {"type": "DOUBLE", "range": [0.001, 0.1], "scale": "log", "points": 3}}',
    strategy => 'grid', parallel => 1) > 0 AS study_queued;
SELECT kind, architecture, strategy, trials, parallel, metric, status FROM iceml.studies;
SELECT trial, status, spec->'layers'->0->'kernel' AS kernel, spec->'layers'->1->'size' AS pool,
       hyperparams->'learning_rate' AS learning_rate
  FROM iceml.runs ORDER BY id;
ROLLBACK;

-- Random search: the same seed asks for the same trials, another seed for
-- others; values stay in their ranges, log-uniform where asked.
CREATE TEMP TABLE space AS SELECT '{"learning_rate": {"type": "DOUBLE", "range": [0.0001, 0.01], "scale": "log"},
      "batch_size": {"type": "DISCRETE", "values": [16, 32]},
      "epochs": {"type": "INTEGER", "range": [2, 4]}}'::jsonb AS s;
SELECT (SELECT array_agg(t) FROM iceml._search_trials(s, 'random', 20, 7) t)
     = (SELECT array_agg(t) FROM iceml._search_trials(s, 'random', 20, 7) t) AS same_seed_same_trials,
       (SELECT array_agg(t) FROM iceml._search_trials(s, 'random', 20, 7) t)
     = (SELECT array_agg(t) FROM iceml._search_trials(s, 'random', 20, 8) t) AS other_seed_same_trials
  FROM space;
SELECT min((t->>'learning_rate')::float8) >= 0.0001 AND max((t->>'learning_rate')::float8) <= 0.01 AS lr_in_range,
       -- log-uniform: about half the draws below the geometric middle 0.001
       count(*) FILTER (WHERE (t->>'learning_rate')::float8 < 0.001) BETWEEN 350 AND 650 AS lr_log_uniform,
       array_agg(DISTINCT t->'batch_size' ORDER BY t->'batch_size') AS batch_sizes,
       array_agg(DISTINCT t->'epochs' ORDER BY t->'epochs') AS epochs
  FROM space, iceml._search_trials(s, 'random', 1000, 1) t;

BEGIN;
SELECT iceml.tune('random', 'iceml_td.tr_1', 'tiny_cnn', s, trials => 4, hyperparams => '{"seed": 3}') > 0 AS study_queued
  FROM space;
SELECT count(*) AS trials, count(DISTINCT trial) AS distinct_trials,
       bool_and(hyperparams->>'seed' = '3') AS seed_kept,
       bool_and(architecture = 'tiny_cnn') AS named_architecture
  FROM iceml.runs;
ROLLBACK;

-- ASHA: trials sampled as for random search, each with the full budget
-- (epochs); the smallest rung is a study setting
BEGIN;
SELECT iceml.tune('asha', 'iceml_td.tr_1', 'tiny_cnn',
    '{"learning_rate": {"type": "DOUBLE", "range": [0.0001, 0.01], "scale": "log"}}',
    'asha', trials => 9, metric => 'val_acc', hyperparams => '{"epochs": 9, "asha_min_epochs": 1}') > 0 AS study_queued;
SELECT strategy, trials, metric, hyperparams FROM iceml.studies;
SELECT count(*) AS trials, min(epochs) AS epochs, bool_and(NOT hyperparams ? 'asha_min_epochs') AS rung_not_a_hyperparam
  FROM iceml.runs;
ROLLBACK;

-- Ablation: a baseline and one trial per layer group, named layer and input
-- channel left out.  Leaving out "out" leaves no 1-unit output layer: that
-- trial is failed from the start, with the engine's reason.
BEGIN;
SELECT iceml.ablation_study('ablate', 'iceml_td.tr_1', 'tiny_cnn',
    '{"layer_groups": ["dropout", "maxpool"], "layers": ["fc1", "out"], "features": ["band_2"]}') > 0 AS study_queued;
SELECT kind, trials, parallel, status FROM iceml.studies;
SELECT kind, component, status, error FROM iceml.ablation_results ORDER BY run;
SELECT r.trial, jsonb_array_length(r.spec->'layers') AS layers, r.spec->'input' AS input, r.channels,
       r.hyperparams->>'deploy' AS deploy
  FROM iceml.runs r ORDER BY r.id;
ROLLBACK;

-- ---- refused -----------------------------------------------------------
\set VERBOSITY terse
SELECT iceml.tune('e', 'iceml_td.tr_1', 'tiny_cnn', NULL);
\echo :LAST_ERROR_SQLSTATE
SELECT iceml.tune('e', 'iceml_td.tr_1', 'tiny_cnn', '{}');
SELECT iceml.tune('e', 'iceml_td.tr_1', 'tiny_cnn', '[1, 2]');
SELECT iceml.tune('e', 'iceml_td.tr_1', 'tiny_cnn', '{"learning_rate": 0.1}');
SELECT iceml.tune('e', 'iceml_td.tr_1', 'tiny_cnn', '{"learning_rate": {"range": [0.1, 1]}}');
SELECT iceml.tune('e', 'iceml_td.tr_1', 'tiny_cnn', '{"learning_rate": {"type": "FLOAT", "range": [0.1, 1]}}');
SELECT iceml.tune('e', 'iceml_td.tr_1', 'tiny_cnn', '{"learning_rate": {"type": "DOUBLE"}}');
SELECT iceml.tune('e', 'iceml_td.tr_1', 'tiny_cnn', '{"learning_rate": {"type": "DOUBLE", "range": [0.1]}}');
SELECT iceml.tune('e', 'iceml_td.tr_1', 'tiny_cnn', '{"learning_rate": {"type": "DOUBLE", "range": [0.1, 0.01]}}');
\echo :LAST_ERROR_SQLSTATE
SELECT iceml.tune('e', 'iceml_td.tr_1', 'tiny_cnn', '{"learning_rate": {"type": "DOUBLE", "range": [0, 0.01], "scale": "log"}}');
SELECT iceml.tune('e', 'iceml_td.tr_1', 'tiny_cnn', '{"learning_rate": {"type": "DOUBLE", "range": [0.001, 0.01], "scale": "ln"}}');
SELECT iceml.tune('e', 'iceml_td.tr_1', 'tiny_cnn', '{"epochs": {"type": "INTEGER", "range": [1.5, 4]}}');
SELECT iceml.tune('e', 'iceml_td.tr_1', 'tiny_cnn', '{"batch_size": {"type": "DISCRETE", "values": []}}');
SELECT iceml.tune('e', 'iceml_td.tr_1', 'tiny_cnn', '{"batch_size": {"type": "DISCRETE", "values": ["16"]}}');
SELECT iceml.tune('e', 'iceml_td.tr_1', 'tiny_cnn', '{"batch_size": {"type": "DISCRETE", "values": [16], "range": [1, 2]}}');
SELECT iceml.tune('e', 'iceml_td.tr_1', 'tiny_cnn', '{"batch_size": {"type": "DISCRETE", "values": [16], "step": 2}}');
SELECT iceml.tune('e', 'iceml_td.tr_1', 'tiny_cnn', '{"Batch": {"type": "DISCRETE", "values": [16]}}');
-- a parameter must go somewhere, and every placeholder must be searched
SELECT iceml.tune('e', 'iceml_td.tr_1', 'tiny_cnn', '{"kernel": {"type": "DISCRETE", "values": [3, 5]}}');
SELECT iceml.tune('e', 'iceml_td.tr_1', '{"input": [3, 75, 75], "layers": [
        {"type": "conv2d", "filters": 4, "kernel": "$kernel", "stride": 3}, {"type": "gap"}, {"type": "dense", "units": 1}]}',
    '{"learning_rate": {"type": "DOUBLE", "range": [0.001, 0.01]}}');
SELECT iceml.tune('e', 'iceml_td.tr_1', '{"input": [3, 75, 75], "layers": [',
    '{"learning_rate": {"type": "DOUBLE", "range": [0.001, 0.01]}}');
-- a trial whose architecture does not fit stops the whole study before it starts
SELECT iceml.tune('e', 'iceml_td.tr_1', '{"input": [3, 75, 75], "layers": [
        {"type": "conv2d", "filters": 4, "kernel": "$kernel", "stride": 3}, {"type": "gap"}, {"type": "dense", "units": 1}]}',
    '{"kernel": {"type": "DISCRETE", "values": [3, 99]}}', 'grid');
\echo :LAST_ERROR_SQLSTATE
-- strategies, trials, parallel, metric
SELECT iceml.tune('e', 'iceml_td.tr_1', 'tiny_cnn', '{"learning_rate": {"type": "DOUBLE", "range": [0.001, 0.01]}}', 'bayes');
SELECT iceml.tune('e', 'iceml_td.tr_1', 'tiny_cnn', '{"learning_rate": {"type": "DOUBLE", "range": [0.001, 0.01]}}', 'grid');
SELECT iceml.tune('e', 'iceml_td.tr_1', 'tiny_cnn', '{"batch_size": {"type": "INTEGER", "range": [1, 100]},
    "epochs": {"type": "INTEGER", "range": [1, 3]}}', 'grid');
SELECT iceml.tune('e', 'iceml_td.tr_1', 'tiny_cnn', '{"learning_rate": {"type": "DOUBLE", "range": [0.001, 0.01]}}', trials => 0);
SELECT iceml.tune('e', 'iceml_td.tr_1', 'tiny_cnn', '{"learning_rate": {"type": "DOUBLE", "range": [0.001, 0.01]}}', parallel => 0);
SELECT iceml.tune('e', 'iceml_td.tr_1', 'tiny_cnn', '{"learning_rate": {"type": "DOUBLE", "range": [0.001, 0.01]}}', parallel => 99);
SELECT iceml.tune('e', 'iceml_td.tr_1', 'tiny_cnn', '{"learning_rate": {"type": "DOUBLE", "range": [0.001, 0.01]}}', metric => 'f2');
SELECT iceml.tune('e', 'iceml_td.tr_1', 'tiny_cnn', '{"learning_rate": {"type": "DOUBLE", "range": [0.001, 0.01]}}',
    hyperparams => '{"asha_min_epochs": 2}');
SELECT iceml.tune('e', 'iceml_td.tr_1', 'no_such_net', '{"learning_rate": {"type": "DOUBLE", "range": [0.001, 0.01]}}');
SELECT iceml.tune('e', 'iceml_td.tr_1', 'tiny_cnn', '{"batch_size": {"type": "DISCRETE", "values": [0, 16]}}', 'grid');
\echo :LAST_ERROR_SQLSTATE
-- ablation components
SELECT iceml.ablation_study('e', 'iceml_td.tr_1', 'tiny_cnn', '{}');
SELECT iceml.ablation_study('e', 'iceml_td.tr_1', 'tiny_cnn', '{"groups": ["conv"]}');
SELECT iceml.ablation_study('e', 'iceml_td.tr_1', 'tiny_cnn', '{"layer_groups": "conv"}');
SELECT iceml.ablation_study('e', 'iceml_td.tr_1', 'tiny_cnn', '{"layer_groups": ["attention"]}');
SELECT iceml.ablation_study('e', 'iceml_td.tr_1', 'tiny_cnn', '{"layers": ["conv9"]}');
SELECT iceml.ablation_study('e', 'iceml_td.tr_1', 'tiny_cnn', '{"features": ["inc_angle"]}');
SELECT iceml.ablation_study('e', 'iceml_td.tr_1', 'tiny_cnn', '{"features": ["band_1"]}', parallel => 99);
\echo :LAST_ERROR_SQLSTATE
SELECT count(*) AS studies_left, (SELECT count(*) FROM iceml.runs) AS runs_left FROM iceml.studies;
