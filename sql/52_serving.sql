-- Test-time augmentation, ensemble deployments and batched scoring
-- (iceml.predict_table, iceml.predict_batch), on the chips and the seeded
-- models of 50_predict (pr_model).
SET client_min_messages = warning;
\set SHOW_CONTEXT never

-- the 8 flips and quarter turns of a chip, computed in SQL with what_if's
-- edits: identity, three quarter turns, two flips, and the two flips
-- turned a quarter (the transposes)
CREATE FUNCTION sv_view(b real[], ops jsonb) RETURNS real[] LANGUAGE plpgsql AS $$
DECLARE e jsonb;
BEGIN
    FOR e IN SELECT jsonb_array_elements(ops) LOOP
        b := iceml.edit_chip(b, e, NULL);
    END LOOP;
    RETURN b;
END $$;
CREATE TABLE sv_views (k int, ops jsonb);
INSERT INTO sv_views VALUES
    (1, '[]'), (2, '[{"op":"rotate","degrees":90}]'), (3, '[{"op":"rotate","degrees":180}]'),
    (4, '[{"op":"rotate","degrees":270}]'), (5, '[{"op":"flip","axis":"horizontal"}]'),
    (6, '[{"op":"flip","axis":"vertical"}]'),
    (7, '[{"op":"flip","axis":"horizontal"},{"op":"rotate","degrees":90}]'),
    (8, '[{"op":"flip","axis":"vertical"},{"op":"rotate","degrees":90}]');
-- the 8 are the 8 distinct images of a chip
SELECT count(DISTINCT sv_view(band_1, ops)) AS distinct_views FROM iceml_fs.pr_chips_1, sv_views WHERE id = 1;

-- an error as its SQLSTATE, message, detail and hint, with the model ids
-- of this run replaced by their names (ids depend on the tests before)
CREATE FUNCTION sv_try(q text, ids jsonb) RETURNS text LANGUAGE plpgsql AS $$
DECLARE msg text; det text; hnt text; k text; v text;
BEGIN
    EXECUTE q;
    RETURN 'ok';
EXCEPTION WHEN OTHERS THEN
    GET STACKED DIAGNOSTICS det = PG_EXCEPTION_DETAIL, hnt = PG_EXCEPTION_HINT;
    msg := SQLSTATE || ': ' || SQLERRM || coalesce(nullif(E'\nDETAIL: ' || det, E'\nDETAIL: '), '')
           || coalesce(nullif(E'\nHINT: ' || hnt, E'\nHINT: '), '');
    FOR k, v IN SELECT * FROM jsonb_each_text(ids) LOOP
        msg := regexp_replace(msg, '\m' || v || '\M', k, 'g');
    END LOOP;
    RETURN msg;
END $$;

-- ---- test-time augmentation -----------------------------------------------------
SELECT pr_model('tta', 11, 0.3) AS t1 \gset
SELECT pr_model('tta', 12, 0.2) AS t2 \gset
SELECT iceml.deploy('tta', :t1, tta => true) = :t1 AS deployed;
SELECT name, model_id = :t1 AS is_t1, strategy, tta, members FROM iceml.deployed_models WHERE name = 'tta';
-- the deployment's prediction is the mean of the model's predictions of the
-- 8 views (each view predicted alone, by model id: no augmentation)
CREATE TABLE sv_mean8 AS
SELECT c.id, avg(iceml_predict(:t1, sv_view(c.band_1, v.ops), sv_view(c.band_2, v.ops))::float8) AS mean8,
       count(DISTINCT iceml_predict(:t1, sv_view(c.band_1, v.ops), sv_view(c.band_2, v.ops))) AS distinct_predictions
  FROM iceml_fs.pr_chips_1 c, sv_views v WHERE c.id <= 6 GROUP BY c.id;
SELECT m.id, m.distinct_predictions,
       abs(iceml_predict('tta', c.band_1, c.band_2, c.inc_angle) - m.mean8) < 1e-6 AS tta_is_mean_of_views,
       abs(iceml_predict(:t1, c.band_1, c.band_2) - m.mean8) > 1e-4 AS differs_from_one_view
  FROM sv_mean8 m JOIN iceml_fs.pr_chips_1 c USING (id) ORDER BY m.id;
-- a chip that every flip and quarter turn leaves unchanged (a bright disc
-- in the centre) gives the same value with and without augmentation
SELECT ARRAY(SELECT (-24 + 12 * exp(-((i / 75 - 37) ^ 2 + (i % 75 - 37) ^ 2) / 40.0))::real
               FROM generate_series(0, 5624) i ORDER BY i) AS sym1,
       ARRAY(SELECT (-29 + 3 * exp(-((i / 75 - 37) ^ 2 + (i % 75 - 37) ^ 2) / 90.0))::real
               FROM generate_series(0, 5624) i ORDER BY i) AS sym2 \gset
SELECT count(DISTINCT sv_view(:'sym1', ops)) AS views_of_disc FROM sv_views;
SELECT abs(iceml_predict('tta', :'sym1', :'sym2') - iceml_predict(:t1, :'sym1', :'sym2')) < 1e-6 AS invariant_same;
-- cached like a single model: one load, then no catalog query
SELECT iceml.predict_cache_reset() >= 0 AS reset;
SELECT count(iceml_predict('tta', band_1, band_2)) FROM iceml_fs.pr_chips_1;
SELECT count(iceml_predict('tta', band_1, band_2)) FROM iceml_fs.pr_chips_1;
SELECT key, model_id = :t1 AS is_t1, members, tta, loads, checks FROM iceml.predict_cache() ORDER BY key;
-- evaluate and what_if see the augmented model
SELECT abs((iceml.evaluate('tta', 'iceml_td.pr_1')->>'log_loss')::float8
           - (iceml.binary_metrics(array_agg(p), array_agg(y))->>'log_loss')::float8) < 1e-9 AS evaluate_uses_tta
  FROM (SELECT iceml_predict('tta', band_1, band_2) AS p, is_iceberg::real AS y
          FROM iceml_td.pr_1 WHERE split = 'test') q;
SELECT (iceml.what_if('tta', band_1, band_2, inc_angle, '{"op":"rotate","degrees":90}')->>'before')::real
       = iceml_predict('tta', band_1, band_2) AS what_if_uses_tta,
       abs((iceml.what_if('tta', band_1, band_2, inc_angle, '{"op":"rotate","degrees":90}')->>'delta')::float8) < 1e-6
       AS a_quarter_turn_changes_nothing
  FROM iceml_fs.pr_chips_1 WHERE id = 1;
-- parallel workers load and augment the same way
CREATE TABLE sv_big AS SELECT g AS k, c.* FROM iceml_fs.pr_chips_1 c, generate_series(1, 2) g;
CREATE TABLE sv_serial AS SELECT k, id, iceml_predict('tta', band_1, band_2) AS p FROM sv_big;
SET parallel_setup_cost = 0;
SET parallel_tuple_cost = 0;
SET min_parallel_table_scan_size = 0;
SET max_parallel_workers_per_gather = 2;
SET force_parallel_mode = on;
CREATE TEMP TABLE sv_parallel AS SELECT k, id, iceml_predict('tta', band_1, band_2) AS p FROM sv_big;
RESET force_parallel_mode;
RESET max_parallel_workers_per_gather;
RESET min_parallel_table_scan_size;
RESET parallel_tuple_cost;
RESET parallel_setup_cost;
SELECT count(*) AS rows, count(*) FILTER (WHERE s.p = p.p) AS identical FROM sv_serial s JOIN sv_parallel p USING (k, id);
-- a later deploy keeps the setting unless it says otherwise
SELECT iceml.deploy('tta', :t2) = :t2 AS redeployed;
SELECT model_id = :t2 AS is_t2, tta FROM iceml.deployed_models WHERE name = 'tta';
SELECT iceml.deploy('tta', 'best_score', tta => false) = :t2 AS tta_off;
SELECT tta FROM iceml.deployed_models WHERE name = 'tta';
SELECT iceml_predict('tta', band_1, band_2) = iceml_predict(:t2, band_1, band_2) AS plain_again FROM iceml_fs.pr_chips_1 WHERE id = 1;
-- rollback restores the deployment before, option included
SELECT iceml.deploy('tta', 'rollback') = :t2 AS rolled_back;
SELECT model_id = :t2 AS is_t2, tta, strategy FROM iceml.deployed_models WHERE name = 'tta';

-- ---- ensembles ----------------------------------------------------------------------
SELECT pr_model('ens', 21, 0.30) AS e1 \gset
SELECT pr_model('ens', 22, 0.25) AS e2 \gset
SELECT pr_model('ens_other_experiment', 23, 0.35) AS e3 \gset
SELECT iceml.deploy_ensemble('ens', ARRAY[:e1, :e2, :e3]) AS dep \gset
SELECT name, model_id = :e1 AS first_member, strategy, tta, members = ARRAY[:e1, :e2, :e3]::bigint[] AS members_in_order,
       deployment_id = :dep AS returns_deployment
  FROM iceml.deployed_models WHERE name = 'ens';
SELECT member, model_id - :e1 AS model FROM iceml.deployment_members WHERE deployment_id = :dep ORDER BY member;
-- the mean of the members' probabilities
SELECT count(*) AS n,
       count(*) FILTER (WHERE abs(iceml_predict('ens', band_1, band_2)
                                  - (iceml_predict(:e1, band_1, band_2)::float8 + iceml_predict(:e2, band_1, band_2)
                                     + iceml_predict(:e3, band_1, band_2)) / 3) < 1e-6) AS mean_of_members,
       count(*) FILTER (WHERE iceml_predict('ens', band_1, band_2) <> iceml_predict(:e1, band_1, band_2)) AS not_the_first
  FROM iceml_fs.pr_chips_1;
SELECT key, members, tta FROM iceml.predict_cache() WHERE key = 'ens';
-- with test-time augmentation: the mean over members and views
SELECT iceml.deploy_ensemble('ens', ARRAY[:e1, :e2], tta => true) > :dep AS redeployed;
SELECT abs(iceml_predict('ens', c.band_1, c.band_2)
           - (SELECT avg(iceml_predict(e.id, sv_view(c.band_1, v.ops), sv_view(c.band_2, v.ops))::float8)
                FROM sv_views v, unnest(ARRAY[:e1, :e2]::bigint[]) e(id))) < 1e-6 AS mean_over_members_and_views
  FROM iceml_fs.pr_chips_1 c WHERE c.id IN (1, 2) ORDER BY c.id;
SELECT jsonb_build_object('e1', :e1, 'e2', :e2, 'e3', :e3) AS ids \gset
-- a member cannot be deleted while a deployment names it (now or in the history)
SELECT sv_try(format('DELETE FROM iceml.models WHERE id = %s', :e3), :'ids');
-- rollback to the three-model ensemble, without augmentation
SELECT iceml.deploy('ens', 'rollback') = :e1 AS rolled_back;
SELECT strategy, tta, members = ARRAY[:e1, :e2, :e3]::bigint[] AS three_members FROM iceml.deployed_models WHERE name = 'ens';
-- an ensemble's evaluation is the ensemble's
SELECT abs((iceml.evaluate('ens', 'iceml_td.pr_1')->>'log_loss')::float8
           - (iceml.binary_metrics(array_agg(p), array_agg(y))->>'log_loss')::float8) < 1e-9 AS evaluate_uses_ensemble
  FROM (SELECT ((iceml_predict(:e1, band_1, band_2)::float8 + iceml_predict(:e2, band_1, band_2)
                 + iceml_predict(:e3, band_1, band_2)) / 3)::real AS p, is_iceberg::real AS y
          FROM iceml_td.pr_1 WHERE split = 'test') q;
-- a trained model replaces an ensemble only when it beats every member
-- (iceml._deploy_if_better compares with the best member's loss)
SELECT min((metrics->>'log_loss')::float8) AS best_member_loss FROM iceml.models WHERE id IN (:e1, :e2, :e3);

-- ---- ensemble errors -----------------------------------------------------------------
\set VERBOSITY default
SELECT iceml.deploy_ensemble('ens', ARRAY[]::bigint[]);
SELECT iceml.deploy_ensemble('ens', NULL);
SELECT sv_try(format('SELECT iceml.deploy_ensemble(''ens'', ARRAY[%s, NULL])', :e1), :'ids');
SELECT sv_try(format('SELECT iceml.deploy_ensemble(''ens'', ARRAY[%s, %s, %s])', :e1, :e2, :e1), :'ids');
SELECT sv_try(format('SELECT iceml.deploy_ensemble(''ens'', ARRAY[%s, 424242])', :e1), :'ids');
SELECT sv_try(format('SELECT iceml.deploy_ensemble(''ens'', ARRAY(SELECT %s + g FROM generate_series(0, 16) g))', :e1), :'ids');
-- members must take the same input
SELECT pr_model('ens', 24, 0.3, '{band_1,band_2}') AS e_two \gset
SELECT sv_try(format('SELECT iceml.deploy_ensemble(''ens'', ARRAY[%s, %s])', :e1, :e_two), :'ids'::jsonb || jsonb_build_object('e_two', :e_two));
SELECT iceml.deploy_ensemble('', ARRAY[:e1]);
-- nothing was written by the refused calls
SELECT count(*) AS ens_deployments FROM iceml.deployments WHERE name = 'ens';
-- someone else's model: 42501; the name's owner rules hold as for deploy
DROP ROLE IF EXISTS sv_alice;
DROP ROLE IF EXISTS sv_bob;
CREATE ROLE sv_alice IN ROLE iceml_user;
CREATE ROLE sv_bob IN ROLE iceml_user;
SELECT pr_model('sv_a', 31, 0.3) AS a1 \gset
SELECT pr_model('sv_a', 32, 0.3) AS a2 \gset
SELECT pr_model('sv_b', 33, 0.3) AS b1 \gset
UPDATE iceml.models SET owner = 'sv_alice' WHERE id IN (:a1, :a2);
UPDATE iceml.models SET owner = 'sv_bob' WHERE id = :b1;
SET ROLE sv_alice;
SELECT iceml.deploy_ensemble('sv_a', ARRAY[:a1, :a2]) > 0 AS alice_deploys_her_own;
SELECT sv_try(format('SELECT iceml.deploy_ensemble(''sv_a'', ARRAY[%s, %s])', :a1, :b1), jsonb_build_object('a1', :a1, 'b1', :b1));
RESET ROLE;
SET ROLE sv_bob;
SELECT sv_try(format('SELECT iceml.deploy_ensemble(''sv_a'', ARRAY[%s])', :b1), jsonb_build_object('b1', :b1));
-- every role predicts with it
SELECT iceml_predict('sv_a', :'sym1', :'sym2') > 0 AS bob_predicts;
RESET ROLE;
\set VERBOSITY terse

-- ---- batched scoring: iceml.predict_table ---------------------------------------------
-- every row, the same values as iceml_predict row by row
SELECT iceml.deploy('iceberg', 'best_score') > 0 AS deployed;
SELECT count(*) AS n, count(*) FILTER (WHERE t.probability = iceml_predict('iceberg', c.band_1, c.band_2)) AS same
  FROM iceml.predict_table('iceberg', 'iceml_fs.pr_chips_1') t JOIN iceml_fs.pr_chips_1 c ON c.id::text = t.key;
-- the engine's 32-image workspace, made by the first batched call, is counted
-- in the cache (per-row calls, even augmented, keep the one-image one)
SELECT iceml.predict_cache_reset() >= 0 AS reset;
SELECT count(iceml_predict('iceberg', band_1, band_2)) FROM iceml_fs.pr_chips_1;
SELECT bytes AS per_row_bytes FROM iceml.predict_cache() WHERE key = 'iceberg' \gset
SELECT count(*) FROM iceml.predict_table('iceberg', 'iceml_fs.pr_chips_1');
SELECT bytes > :per_row_bytes + 1000000 AS batch_workspace_counted FROM iceml.predict_cache() WHERE key = 'iceberg';
-- by model id, and for augmented ensembles
SELECT count(*) FILTER (WHERE t.probability = iceml_predict(:e2, c.band_1, c.band_2)) AS same_by_id
  FROM iceml.predict_table(:e2, 'iceml_fs.pr_chips_1') t JOIN iceml_fs.pr_chips_1 c ON c.id::text = t.key;
SELECT iceml.deploy_ensemble('ens', ARRAY[:e1, :e2, :e3], tta => true) > 0 AS augmented_ensemble;
SELECT count(*) FILTER (WHERE abs(t.probability - iceml_predict('ens', c.band_1, c.band_2)) < 1e-6) AS same_ensemble
  FROM iceml.predict_table('ens', 'iceml_fs.pr_chips_1') t JOIN iceml_fs.pr_chips_1 c ON c.id::text = t.key;
-- a view, with the key and bands named; a NULL band gives a NULL probability
CREATE VIEW sv_renamed AS
SELECT 'chip-' || id AS chip, band_1 AS hh, CASE WHEN id <> 3 THEN band_2 END AS hv, inc_angle AS angle
  FROM iceml_fs.pr_chips_1 WHERE id <= 5;
SELECT t.key, t.probability IS NULL AS null_probability,
       t.probability IS NOT DISTINCT FROM iceml_predict('iceberg', v.hh, v.hv) AS same
  FROM iceml.predict_table('iceberg', 'sv_renamed', key => 'chip', band_1 => 'hh', band_2 => 'hv', inc_angle => 'angle') t
  JOIN sv_renamed v ON v.chip = t.key ORDER BY t.key;
-- more rows than one engine chunk, in a parallel-capable table: all scored once
SELECT count(*) AS rows, count(DISTINCT key) AS keys, count(probability) AS scored
  FROM iceml.predict_table('iceberg', 'sv_big', key => 'id');

-- a relation that itself predicts with other models, with a cache too small
-- for all of them: the batch's model stays loaded (pinned) while they load
SET iceml.predict_cache_mb = 1;
CREATE VIEW sv_predicting AS
SELECT id, band_1, band_2 FROM iceml_fs.pr_chips_1
 WHERE iceml_predict(:t1, band_1, band_2) >= 0 AND iceml_predict(:t2, band_1, band_2) >= 0;
SELECT count(*) AS n, count(*) FILTER (WHERE abs(t.probability - iceml_predict('ens', c.band_1, c.band_2)) < 1e-6) AS same
  FROM iceml.predict_table('ens', 'sv_predicting', key => 'id') t JOIN iceml_fs.pr_chips_1 c ON c.id::text = t.key;
SELECT max(evictions) > 0 AS evicted_others FROM iceml.predict_cache();
RESET iceml.predict_cache_mb;
DROP VIEW sv_predicting;

-- ---- batched scoring: iceml.predict_batch ----------------------------------------------
SELECT iceml.predict_batch('iceberg', array_agg(band_1 ORDER BY id), array_agg(band_2 ORDER BY id),
                           array_agg(inc_angle ORDER BY id))
       = ARRAY(SELECT iceml_predict('iceberg', band_1, band_2) FROM iceml_fs.pr_chips_1 WHERE id <= 7 ORDER BY id) AS same
  FROM iceml_fs.pr_chips_1 WHERE id <= 7;
SELECT array_length(iceml.predict_batch(:e1, array_agg(band_1), array_agg(band_2)), 1) AS n FROM iceml_fs.pr_chips_1;
SELECT iceml.predict_batch('iceberg', NULL, band_2) IS NULL AS null_gives_null FROM iceml_fs.pr_chips_1 WHERE id = 1;

-- ---- batched scoring errors --------------------------------------------------------------
\set VERBOSITY default
SELECT * FROM iceml.predict_table('iceberg', 'sv_renamed');
SELECT * FROM iceml.predict_table('iceberg', 'iceml_fs.pr_chips_1', key => 'no_such_column');
SELECT * FROM iceml.predict_table('iceberg', 'sv_renamed', key => 'chip');
SELECT * FROM iceml.predict_table('iceberg', 'sv_renamed', key => 'chip', band_1 => 'angle', band_2 => 'hv');
SELECT * FROM iceml.predict_table('iceberg', 'iceml_fs.pr_chips_1', inc_angle => 'band_1');
SELECT * FROM iceml.predict_table('iceberg', NULL);
SELECT * FROM iceml.predict_table(NULL::text, 'iceml_fs.pr_chips_1');
SELECT * FROM iceml.predict_table('iceberg', 'iceml_fs.pr_chips_1', band_1 => NULL);
SELECT * FROM iceml.predict_table('nobody', 'iceml_fs.pr_chips_1');
-- a bad row names its key
CREATE TABLE sv_bad AS SELECT id, band_1, band_2 FROM iceml_fs.pr_chips_1 WHERE id <= 3;
UPDATE sv_bad SET band_1 = band_1[1:100] WHERE id = 2;
ALTER TABLE sv_bad ADD PRIMARY KEY (id);
\set SHOW_CONTEXT errors
SELECT * FROM iceml.predict_table('iceberg', 'sv_bad');
\set SHOW_CONTEXT never
-- the relation is read as the caller: no SELECT privilege, no scores
SET ROLE sv_bob;
SELECT sv_try('SELECT * FROM iceml.predict_table(''iceberg'', ''sv_bad'')', '{}');
RESET ROLE;
UPDATE sv_bad b SET band_1 = c.band_1 FROM iceml_fs.pr_chips_1 c WHERE c.id = b.id AND b.id = 2;
GRANT SELECT ON sv_bad TO sv_bob;
SET ROLE sv_bob;
SELECT count(probability) AS bob_scores FROM iceml.predict_table('iceberg', 'sv_bad');
RESET ROLE;
SELECT iceml.predict_batch('iceberg', band_1, band_2) FROM iceml_fs.pr_chips_1 WHERE id = 1;
SELECT iceml.predict_batch('iceberg', ARRAY[band_1, band_1], ARRAY[band_2]) FROM iceml_fs.pr_chips_1 WHERE id = 1;
SELECT iceml.predict_batch('iceberg', ARRAY[band_1[1:5624] || 'NaN'::real], ARRAY[band_2]) FROM iceml_fs.pr_chips_1 WHERE id = 1;
SELECT iceml.predict_batch('iceberg', ARRAY[band_1], ARRAY[band_2], ARRAY[30, 31]::real[]) FROM iceml_fs.pr_chips_1 WHERE id = 1;
SELECT iceml.predict_batch('iceberg', ARRAY[band_1], ARRAY[band_2], ARRAY[120]::real[]) FROM iceml_fs.pr_chips_1 WHERE id = 1;
\set VERBOSITY terse

DROP TABLE sv_bad, sv_big, sv_serial, sv_mean8, sv_views;
DROP FUNCTION sv_try(text, jsonb), sv_view(real[], jsonb);
DROP VIEW sv_renamed;
DROP OWNED BY sv_alice, sv_bob;
DROP ROLE sv_alice;
DROP ROLE sv_bob;
