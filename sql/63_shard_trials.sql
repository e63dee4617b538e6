--
-- A study's trials on nodes (src/shard/remote_trial.c): what iceml.tune
-- checks before it places trials on nodes, and the node-side functions a
-- coordinator's trial worker calls, with their bad input.  The node is
-- another database of this server; trials that train on two node clusters,
-- cancel and a node stopped mid-study are in test/tap/81_shard_trials.pl.
--
\set SHOW_CONTEXT never
\set VERBOSITY terse
SELECT format('host=%s port=%s', current_setting('unix_socket_directories'),
              current_setting('port')) AS here, current_database() AS regdb \gset
SET client_min_messages = warning;
CREATE EXTENSION IF NOT EXISTS postgres_fdw;
DROP DATABASE IF EXISTS iceml_regress_trial_node;
DROP DATABASE IF EXISTS iceml_regress_trial_gone;
RESET client_min_messages;
CREATE DATABASE iceml_regress_trial_node;
CREATE DATABASE iceml_regress_trial_gone;
\c iceml_regress_trial_node
CREATE EXTENSION iceml;
\c iceml_regress_trial_gone
CREATE EXTENSION iceml;
\c :regdb
\set VERBOSITY terse
\set SHOW_CONTEXT never
SELECT iceml.add_node('tn', :'here' || ' dbname=iceml_regress_trial_node');
SELECT iceml.add_node('gone', :'here' || ' dbname=iceml_regress_trial_gone');
-- iceml removed from a node after it was added
\c iceml_regress_trial_gone
DROP EXTENSION iceml;
\c :regdb
\set VERBOSITY terse
\set SHOW_CONTEXT never

CREATE ROLE iceml_regress_trialist IN ROLE iceml_user;
SELECT iceml.create_feature_group('trialchips',
    '[{"name":"id","type":"text"},{"name":"band_1","type":"real[]"},{"name":"band_2","type":"real[]"},{"name":"inc_angle","type":"real"},{"name":"is_iceberg","type":"smallint"}]',
    ARRAY['id']) AS fg \gset
INSERT INTO iceml_fs.trialchips_1 SELECT * FROM iceml.synthesize_statoil(40, 3);
SELECT iceml.create_training_dataset('trialset', 'iceml_fs.trialchips_1', 'is_iceberg') AS td \gset
GRANT SELECT ON iceml_fs.trialchips_1, iceml_td.trialset_1 TO iceml_regress_trialist;
\set space '{"learning_rate": {"type": "DISCRETE", "values": [0.001, 0.002]}}'

-- ---- what tune checks: every fault before anything is queued ---------------
SET ROLE iceml_regress_trialist;
-- no USAGE on the node's foreign server: an administrator grants it
SELECT iceml.tune('tr', :'td', 'tiny_cnn', :'space', 'grid', hyperparams => '{"epochs": 1}', nodes => ARRAY['tn']);
RESET ROLE;
GRANT USAGE ON FOREIGN SERVER iceml_node_tn, iceml_node_gone TO iceml_regress_trialist;
SET ROLE iceml_regress_trialist;
SELECT iceml.tune('tr', :'td', 'tiny_cnn', :'space', 'grid', hyperparams => '{"epochs": 1}', nodes => ARRAY['nowhere']);
SELECT iceml.tune('tr', :'td', 'tiny_cnn', :'space', 'grid', hyperparams => '{"epochs": 1}', nodes => ARRAY[]::text[]);
SELECT iceml.tune('tr', :'td', 'tiny_cnn', :'space', 'grid', hyperparams => '{"epochs": 1}', nodes => ARRAY['tn', NULL]);
SELECT iceml.tune('tr', :'td', 'tiny_cnn', :'space', 'grid', hyperparams => '{"epochs": 1}', nodes => ARRAY['tn', 'tn']);
SELECT iceml.tune('tr', :'td', 'tiny_cnn', :'space', 'grid', hyperparams => '{"epochs": 1}', nodes => ARRAY[['tn'], ['tn']]);
-- a node where iceml is gone
SELECT iceml.tune('tr', :'td', 'tiny_cnn', :'space', 'grid', hyperparams => '{"epochs": 1}', nodes => ARRAY['tn', 'gone']);
RESET ROLE;
SELECT count(*) AS studies, (SELECT count(*) FROM iceml.runs) AS runs, (SELECT count(*) FROM iceml.remote_trials) AS placed
  FROM iceml.studies;

-- placed round robin, in the study's transaction: rolled back, nothing
-- remains; a node with unfinished trials is not dropped
BEGIN;
SET ROLE iceml_regress_trialist;
SELECT iceml.tune('tr', :'td', 'tiny_cnn', :'space', 'grid', parallel => 1,
                  hyperparams => '{"epochs": 1}', nodes => ARRAY['tn']) AS study \gset
SELECT r.trial, t.node, t.threads_share, t.node_run FROM iceml.remote_trials t JOIN iceml.runs r ON r.id = t.run_id
 WHERE t.study_id = :study ORDER BY r.id;
RESET ROLE;
SELECT iceml.drop_node('tn');
ROLLBACK;
SELECT count(*) AS studies, (SELECT count(*) FROM iceml.remote_trials) AS placed FROM iceml.studies;

-- ---- on a node: the functions a coordinator's trial worker calls ----------
\c iceml_regress_trial_node
\set VERBOSITY terse
\set SHOW_CONTEXT never
CREATE ROLE iceml_regress_noderole IN ROLE iceml_user;
CREATE ROLE iceml_regress_other IN ROLE iceml_user;
SELECT spec FROM iceml.architectures WHERE name = 'tiny_cnn' \gset
SET ROLE iceml_regress_noderole;
\set key 'trial_0123456789abcdef0123456789abcdef'
\set cols '[{"name": "id", "type": "text"}, {"name": "band_1", "type": "real[]"}, {"name": "band_2", "type": "real[]"}, {"name": "inc_angle", "type": "real"}, {"name": "is_iceberg", "type": "smallint"}, {"name": "split", "type": "text"}]'
SELECT iceml.receive_trial_data(:'key', :'cols') AS created;
SELECT iceml.receive_trial_data(:'key', :'cols') AS created_again;
SELECT relowner::regrole AS owner FROM pg_class WHERE oid = ('iceml_td.' || :'key')::regclass;
-- bad input
SELECT iceml.receive_trial_data('trial_xyz', :'cols');
SELECT iceml.receive_trial_data('pg_class', :'cols');
SELECT iceml.receive_trial_data(NULL, :'cols');
SELECT iceml.receive_trial_data('trial_00000000000000000000000000000001', '[]');
SELECT iceml.receive_trial_data('trial_00000000000000000000000000000001', '{"name": "id"}');
SELECT iceml.receive_trial_data('trial_00000000000000000000000000000001', '[{"name": "id", "type": "no_such_type"}]');
SELECT iceml.receive_trial_data('trial_00000000000000000000000000000001', '[{"name": "id", "type": "text; DROP TABLE x"}]');
SELECT iceml.receive_trial_data('trial_00000000000000000000000000000001', '[{"name": "id", "type": "iceml.shipped_models"}]');
SELECT count(*) AS copies FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
 WHERE n.nspname = 'iceml_td' AND c.relname LIKE 'trial_%';
-- another role's copy is not theirs to use
SET ROLE iceml_regress_other;
SELECT iceml.receive_trial_data(:'key', :'cols');
SELECT iceml.run_trial('tr', ('iceml_td.' || :'key')::regclass, 'tiny_cnn', :'spec',
                       '{"epochs": 1}', 'is_iceberg', 'test', 'x', '{"coordinator_run": 1}', 1);
SET ROLE iceml_regress_noderole;
-- run_trial: only on a copy, with its label and split, good hyperparameters
SELECT iceml.run_trial('tr', 'pg_class', 'tiny_cnn', :'spec',
                       '{"epochs": 1}', 'is_iceberg', 'test', 'x', '{"coordinator_run": 1}', 1);
SELECT iceml.run_trial('tr', ('iceml_td.' || :'key')::regclass, 'tiny_cnn', :'spec',
                       '{"epochs": 1}', 'nolabel', 'test', 'x', '{"coordinator_run": 1}', 1);
SELECT iceml.run_trial('tr', ('iceml_td.' || :'key')::regclass, 'tiny_cnn', :'spec',
                       '{"epochs": -1}', 'is_iceberg', 'test', 'x', '{"coordinator_run": 1}', 1);
SELECT iceml.run_trial('tr', ('iceml_td.' || :'key')::regclass, 'tiny_cnn', :'spec',
                       '[]', 'is_iceberg', 'test', 'x', '{"coordinator_run": 1}', 1);
SELECT iceml.run_trial('tr', ('iceml_td.' || :'key')::regclass, 'tiny_cnn', :'spec',
                       '{"epochs": 1}', 'is_iceberg', 'test', 'x', '{"coordinator_run": 1}', 0);
SELECT iceml.run_trial('tr', NULL, 'tiny_cnn', :'spec',
                       '{"epochs": 1}', 'is_iceberg', 'test', 'x', '{"coordinator_run": 1}', 1);
-- a trial queued in a transaction that rolls back: nothing; its
-- hyperparameters: the node's thread share, never deployed
BEGIN;
SELECT iceml.run_trial('tr', ('iceml_td.' || :'key')::regclass, 'tiny_cnn', :'spec',
                       '{"epochs": 1}', 'is_iceberg', 'test', 'x', '{"coordinator_run": 1}', 1) AS node_run \gset
SELECT status, epochs, hyperparams->>'deploy' AS deploy,
       (hyperparams->>'threads')::int = current_setting('iceml.train_threads')::int AS node_threads,
       label, val_split, channels, lineage->>'coordinator_run' AS coordinator_run
  FROM iceml.runs WHERE id = :node_run;
-- still queued: not forgotten
SELECT iceml.forget_trial(:node_run);
ROLLBACK;
-- gates (an ASHA study's rungs): the trial waits there for its coordinator,
-- this session, until released; only the trial's role releases it
BEGIN;
SELECT iceml.run_trial('tr', ('iceml_td.' || :'key')::regclass, 'tiny_cnn', :'spec',
                       '{"epochs": 9}', 'is_iceberg', 'test', 'x', '{"coordinator_run": 1}', 1, '{1,3}') AS gated_run \gset
SELECT epoch, follower = pg_backend_pid() AS follower_is_caller, released FROM iceml.trial_gates
 WHERE run_id = :gated_run ORDER BY epoch;
SET ROLE iceml_regress_other;
SELECT iceml.release_trial(:gated_run, 1) AS others_release, iceml.adopt_trial(:gated_run) AS others_adopt;
SET ROLE iceml_regress_noderole;
SELECT iceml.release_trial(:gated_run, 1) AS released, iceml.release_trial(:gated_run, 2) AS no_gate_at_2;
SELECT epoch, released FROM iceml.trial_gates WHERE run_id = :gated_run ORDER BY epoch;
-- a resumed trial's new follower takes its gates over (here: from a
-- session that is gone)
RESET ROLE;
UPDATE iceml.trial_gates SET follower = 0 WHERE run_id = :gated_run;
SET ROLE iceml_regress_noderole;
SELECT iceml.adopt_trial(:gated_run) AS adopted, iceml.adopt_trial(424242) AS no_such_trial;
SELECT count(*) FILTER (WHERE follower = pg_backend_pid()) AS gates_followed_here FROM iceml.trial_gates WHERE run_id = :gated_run;
ROLLBACK;
SELECT count(*) AS runs, (SELECT count(*) FROM iceml.trial_gates) AS gates FROM iceml.runs;
-- gates must be epochs before the last; nothing is queued otherwise
SELECT iceml.run_trial('tr', ('iceml_td.' || :'key')::regclass, 'tiny_cnn', :'spec',
                       '{"epochs": 3}', 'is_iceberg', 'test', 'x', '{"coordinator_run": 1}', 1, '{3}');
SELECT iceml.run_trial('tr', ('iceml_td.' || :'key')::regclass, 'tiny_cnn', :'spec',
                       '{"epochs": 3}', 'is_iceberg', 'test', 'x', '{"coordinator_run": 1}', 1, '{1,NULL}');
SELECT iceml.run_trial('tr', ('iceml_td.' || :'key')::regclass, 'tiny_cnn', :'spec',
                       '{"epochs": 3}', 'is_iceberg', 'test', 'x', '{"coordinator_run": 1}', 1, '{{1},{2}}');
SELECT count(*) AS runs FROM iceml.runs;
-- a trial whose coordinator's session goes away while it waits at a gate
-- fails (it would otherwise hold a worker for ever)
INSERT INTO iceml_td.:"key"
SELECT 'c' || o, s.band_1, s.band_2, s.inc_angle, s.is_iceberg, CASE WHEN o % 4 = 0 THEN 'test' ELSE 'train' END
  FROM iceml.synthesize_statoil(32, 3) WITH ORDINALITY s(id, band_1, band_2, inc_angle, is_iceberg, o);
SELECT iceml.run_trial('tr', ('iceml_td.' || :'key')::regclass, 'tiny_cnn', :'spec',
                       '{"epochs": 3, "batch_size": 8}', 'is_iceberg', 'test', 'x', '{"coordinator_run": 1}', 1, '{1}') AS orphan_run \gset
\c iceml_regress_trial_node
\set VERBOSITY terse
\set SHOW_CONTEXT never
SET ROLE iceml_regress_noderole;
SET client_min_messages = warning;
SELECT iceml.wait(:orphan_run, '120 s') AS orphan_status;
RESET client_min_messages;
SELECT error, (SELECT max(epoch) FROM iceml.run_metrics m WHERE m.run_id = r.id) AS epochs_run
  FROM iceml.runs r WHERE id = :orphan_run;
SELECT iceml.forget_trial(:orphan_run) AS copy_dropped;
-- forget_trial: unknown runs, others' runs
SELECT iceml.forget_trial(424242);
SELECT iceml.forget_trial(NULL);
-- ---- model copies: a role removes only the copies it received --------------
RESET ROLE;
INSERT INTO iceml.models (experiment, architecture, spec, parameters, channels, normalisation,
                          metrics, training_dataset, lineage, weights, owner)
SELECT 'sp', 'tiny_cnn', a.spec, a.parameters, '{band_1,band_2,band_avg}',
       '{"mean": [-20, -28, -24], "std": [4, 2, 3]}', '{"log_loss": 0.5}', NULL, '{}',
       iceml._untrained_weights(a.spec::text, 1, '{-20,-28,-24}', '{4,2,3}'), current_user
  FROM iceml.architectures a WHERE a.name = 'tiny_cnn'
RETURNING id AS model, iceml._model_content_hash(weights, channels) AS hash \gset
CREATE TEMP TABLE copy AS SELECT weights, channels FROM iceml.models WHERE id = :model;
GRANT SELECT ON copy TO PUBLIC;
SET ROLE iceml_regress_noderole;
SELECT iceml.receive_model(:model, :'hash', weights, channels) = :'hash' AS received FROM copy;
SET ROLE iceml_regress_other;
SELECT iceml.drop_shipped_models(NULL) AS others_removed;
SET ROLE iceml_regress_noderole;
SELECT iceml.drop_shipped_models(ARRAY['0000000000000000000000000000000000000000000000000000000000000000']) AS none_removed;
SELECT iceml.drop_shipped_models(ARRAY[:'hash']) AS removed;
SELECT count(*) AS copies FROM iceml.shipped_models;
-- hand_over_inferences: from a record id >= 0
SELECT iceml.hand_over_inferences(-1);
SELECT iceml.hand_over_inferences(NULL);
SELECT iceml.hand_over_inferences(0) AS nothing_logged;
RESET ROLE;
DELETE FROM iceml.models;
DROP TABLE copy;
DROP ROLE iceml_regress_noderole;
DROP ROLE iceml_regress_other;

\c :regdb
\set VERBOSITY terse
\set SHOW_CONTEXT never
-- collect_inferences: a node that exists; one without iceml is named
SELECT iceml.collect_inferences('nowhere');
SELECT iceml.collect_inferences('tn') AS collected;
SELECT iceml.collect_inferences('gone');
SELECT count(*) AS marks FROM iceml.node_inference_marks;
-- cleanup_shipped_models: iceml_admin's, for a node that exists
SELECT iceml.cleanup_shipped_models('nowhere');
SET ROLE iceml_regress_trialist;
SELECT iceml.cleanup_shipped_models();
RESET ROLE;
SELECT iceml.cleanup_shipped_models('tn') AS removed;
SELECT iceml.drop_node('tn');
-- a node that cannot drop the copies (iceml is gone there) is dropped with a warning
SELECT iceml.drop_node('gone');
SELECT iceml.drop_feature_group(:'fg', cascade => true);
DROP ROLE iceml_regress_trialist;
SET client_min_messages = warning;
DROP DATABASE iceml_regress_trial_node WITH (FORCE);
DROP DATABASE iceml_regress_trial_gone WITH (FORCE);
