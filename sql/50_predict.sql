-- iceml_predict, its per-backend model cache, and deployments.
-- Models here are seeded, untrained nets (iceml._untrained_weights) so that
-- every number is reproducible; trained models and other sessions are in
-- test/tap/50_predict.pl.
SET client_min_messages = warning;
\set SHOW_CONTEXT never

-- a small labelled set: icebergs (odd ids) have a bright 9x9 centre
SELECT iceml.create_feature_group('pr_chips',
    '[{"name":"id","type":"int"},{"name":"band_1","type":"real[]"},{"name":"band_2","type":"real[]"},
      {"name":"inc_angle","type":"real"},{"name":"is_iceberg","type":"smallint"}]',
    ARRAY['id'], validation => 'NONE') IS NOT NULL AS created;
SELECT setseed(0.5);
INSERT INTO iceml_fs.pr_chips_1
SELECT i, (SELECT array_agg(CASE WHEN i % 2 = 1 AND (j - 1) / 75 BETWEEN 33 AND 41 AND (j - 1) % 75 BETWEEN 33 AND 41
                                 THEN -8 + random()::real * 4 ELSE -24 + random()::real * 3 END ORDER BY j)
             FROM generate_series(1, 5625) j),
          (SELECT array_agg(-29 + random()::real * 2 + (i % 5) ORDER BY j) FROM generate_series(1, 5625) j),
          (30 + i % 15)::real, (i % 2)::smallint
  FROM generate_series(1, 40) i;
SELECT iceml.create_training_dataset('pr', 'iceml_fs.pr_chips_1', 'is_iceberg', seed => 3);

-- a model row as the training worker writes it, with seeded weights
CREATE FUNCTION pr_model(experiment text, seed int, log_loss float8,
                         channels text[] DEFAULT '{band_1,band_2,band_avg}') RETURNS bigint
LANGUAGE sql AS $$
    INSERT INTO iceml.models (experiment, architecture, spec, parameters, channels, normalisation,
                              metrics, training_dataset, lineage, weights, owner)
    SELECT experiment, 'tiny_cnn', a.spec || jsonb_build_object('input', jsonb_build_array(cardinality(channels), 75, 75)),
           a.parameters, channels,
           '{"mean": [-20, -28, -24], "std": [4, 2, 3]}', jsonb_build_object('log_loss', log_loss, 'accuracy', 0.5),
           'iceml_td.pr_1', '{}',
           iceml._untrained_weights((a.spec || jsonb_build_object('input', jsonb_build_array(cardinality(channels), 75, 75)))::text,
                                    seed, ('{-20,-28,-24}'::real[])[1:cardinality(channels)],
                                    ('{4,2,3}'::real[])[1:cardinality(channels)]),
           current_user
      FROM iceml.architectures a WHERE a.name = 'tiny_cnn'
    RETURNING id
$$;
SELECT pr_model('iceberg', 1, 0.50) AS m1 \gset
SELECT pr_model('iceberg', 2, 0.40) AS m2 \gset
SELECT pr_model('iceberg', 3, 0.60) AS m3 \gset
SELECT pr_model('other', 4, 0.10) AS m_other \gset

-- ---- deploy: best_score (lowest validation log loss), the default --------
SELECT iceml.deploy('iceberg') = :m2 AS best_is_m2;
-- callable unqualified, with the default search_path
SHOW search_path;
SELECT id, round(iceml_predict('iceberg', band_1, band_2, inc_angle)::numeric, 4) AS p
  FROM iceml_fs.pr_chips_1 WHERE id <= 4 ORDER BY id;
-- the same answers by model id, and with inc_angle left out
SELECT count(*) FILTER (WHERE iceml_predict('iceberg', band_1, band_2, inc_angle)
                            = iceml_predict(:m2, band_1, band_2)) AS same, count(*) AS n
  FROM iceml_fs.pr_chips_1;
-- band_avg is (band_1 + band_2) / 2, computed inside exactly as training does:
-- a model that takes band_avg in all three channels gives what one fed
-- band_avg three times gives
SELECT pr_model('avg', 7, 0.3, '{band_avg,band_avg,band_avg}') AS m_avg \gset
SELECT pr_model('avg', 7, 0.3, '{band_1,band_1,band_1}') AS m_b1 \gset
SELECT count(*) FILTER (WHERE iceml_predict(:m_avg, band_1, band_2)
                            = iceml_predict(:m_b1, (SELECT array_agg((a + b) / 2::real ORDER BY k)
                                                      FROM unnest(band_1, band_2) WITH ORDINALITY AS u(a, b, k)), band_2)) AS same
  FROM iceml_fs.pr_chips_1;

-- ---- the cache: warm calls neither load nor query the catalog --------------
SELECT iceml.predict_cache_reset() >= 0 AS reset;
SELECT count(iceml_predict('iceberg', band_1, band_2)) FROM iceml_fs.pr_chips_1;
SELECT key, model_id = :m2 AS is_m2, loads, checks FROM iceml.predict_cache() ORDER BY key;
SELECT count(iceml_predict('iceberg', band_1, band_2)) FROM iceml_fs.pr_chips_1;
SELECT count(iceml_predict('iceberg', band_1, band_2)) FROM iceml_fs.pr_chips_1;
SELECT key, loads, checks FROM iceml.predict_cache() ORDER BY key;

-- ---- other strategies, and the history --------------------------------------
SELECT iceml.deploy('iceberg', 'most_recent') = :m3 AS most_recent_is_m3;
-- the next statement uses the new model (one check, one load)
SELECT round(iceml_predict('iceberg', band_1, band_2)::numeric, 4) =
       round(iceml_predict(:m3, band_1, band_2)::numeric, 4) AS uses_m3
  FROM iceml_fs.pr_chips_1 WHERE id = 1;
SELECT iceml.deploy('iceberg', :m1) = :m1 AS explicit_m1;
SELECT iceml.deploy('iceberg', 'rollback') = :m3 AS rolled_back_to_m3;
SELECT iceml.deploy('iceberg', 'rollback') = :m1 AS and_forth_to_m1;
SELECT iceml.deploy('iceberg', :m1) = :m1 AS unchanged;
SELECT name, model_id - :m1 AS model, from_model_id - :m1 AS from_model, strategy,
       deployed_by = current_user AS by_me, deployed_at <= now() AS dated
  FROM iceml.deployments ORDER BY id;
SELECT name, model_id - :m1 AS model, strategy, model_missing FROM iceml.deployed_models ORDER BY name;

-- a rolled-back deploy changes nothing, not even in this backend's cache
SELECT iceml_predict('iceberg', band_1, band_2) AS before FROM iceml_fs.pr_chips_1 WHERE id = 1 \gset
BEGIN;
SELECT iceml.deploy('iceberg', :m2) = :m2 AS deployed_in_tx;
SELECT iceml_predict('iceberg', band_1, band_2) = iceml_predict(:m2, band_1, band_2) AS tx_sees_its_deploy
  FROM iceml_fs.pr_chips_1 WHERE id = 1;
ROLLBACK;
SELECT iceml_predict('iceberg', band_1, band_2) = :'before'::real AS unchanged_after_rollback
  FROM iceml_fs.pr_chips_1 WHERE id = 1;
SELECT key, model_id = :m1 AS is_m1 FROM iceml.predict_cache() WHERE key = 'iceberg';
SELECT count(*) AS deployments FROM iceml.deployments;

-- ---- parallel query: workers load the model themselves, same answers ------
CREATE TABLE pr_big AS SELECT g AS k, c.* FROM iceml_fs.pr_chips_1 c, generate_series(1, 3) g;
CREATE TABLE pr_serial AS SELECT k, id, iceml_predict('iceberg', band_1, band_2, inc_angle) AS p FROM pr_big;
SET parallel_setup_cost = 0;
SET parallel_tuple_cost = 0;
SET min_parallel_table_scan_size = 0;
SET max_parallel_workers_per_gather = 2;
SET force_parallel_mode = on;
EXPLAIN (COSTS OFF) SELECT k, id, iceml_predict('iceberg', band_1, band_2, inc_angle) FROM pr_big;
CREATE TEMP TABLE pr_parallel AS
SELECT k, id, iceml_predict('iceberg', band_1, band_2, inc_angle) AS p FROM pr_big;
RESET force_parallel_mode;
RESET max_parallel_workers_per_gather;
RESET min_parallel_table_scan_size;
RESET parallel_tuple_cost;
RESET parallel_setup_cost;
SELECT count(*) AS rows, count(*) FILTER (WHERE s.p = p.p) AS identical
  FROM pr_serial s JOIN pr_parallel p USING (k, id);

-- ---- NULLs: a NULL band or model gives NULL (as STRICT would) ---------------
SELECT iceml_predict('iceberg', NULL, band_2) IS NULL AS null_band,
       iceml_predict(NULL::text, band_1, band_2) IS NULL AS null_model
  FROM iceml_fs.pr_chips_1 WHERE id = 1;

-- ---- malformed input ----------------------------------------------------------
\set VERBOSITY default
SELECT iceml_predict('iceberg', '{1,2,3}', band_2) FROM iceml_fs.pr_chips_1 WHERE id = 1;
SELECT iceml_predict('iceberg', band_1, band_2[1:5624]) FROM iceml_fs.pr_chips_1 WHERE id = 1;
SELECT iceml_predict('iceberg', array_fill(0::real, ARRAY[75, 75]), band_2) FROM iceml_fs.pr_chips_1 WHERE id = 1;
SELECT iceml_predict('iceberg', band_1[1:99] || NULL::real || band_1[101:5625], band_2) FROM iceml_fs.pr_chips_1 WHERE id = 1;
SELECT iceml_predict('iceberg', band_1, band_2[1:4] || 'NaN'::real || band_2[6:5625]) FROM iceml_fs.pr_chips_1 WHERE id = 1;
SELECT iceml_predict('iceberg', band_1, band_2[1:4] || '-Infinity'::real || band_2[6:5625]) FROM iceml_fs.pr_chips_1 WHERE id = 1;
SELECT iceml_predict('iceberg', band_1, band_2, 'NaN') FROM iceml_fs.pr_chips_1 WHERE id = 1;
SELECT iceml_predict('iceberg', band_1, band_2, 120) FROM iceml_fs.pr_chips_1 WHERE id = 1;
SELECT iceml_predict('no_such_name', band_1, band_2) FROM iceml_fs.pr_chips_1 WHERE id = 1;
SELECT iceml_predict(424242, band_1, band_2) FROM iceml_fs.pr_chips_1 WHERE id = 1;
-- a model that needs a channel iceml_predict cannot build
SELECT pr_model('lee', 8, 0.3, '{band_1,band_2,band_1_lee}') AS m_lee \gset
SELECT iceml_predict(:m_lee, band_1, band_2) FROM iceml_fs.pr_chips_1 WHERE id = 1;
-- a model that a deployment names cannot be deleted (a foreign key: the
-- deployment history refers to it, and pg_dump restores models first)
SELECT iceml.deploy('other', :m_other) = :m_other AS deployed_other;
SELECT round(iceml_predict('other', band_1, band_2)::numeric, 4) > 0 AS cached FROM iceml_fs.pr_chips_1 WHERE id = 1;
DELETE FROM iceml.models WHERE id = :m_other;
SELECT round(iceml_predict('other', band_1, band_2)::numeric, 4) > 0 AS still_served FROM iceml_fs.pr_chips_1 WHERE id = 1;
SELECT name, model_missing FROM iceml.deployed_models ORDER BY name;
-- a deleted model: a clear error, never a stale answer from the cache
SELECT pr_model('gone', 9, 0.3) AS m_gone \gset
SELECT round(iceml_predict(:m_gone, band_1, band_2)::numeric, 4) > 0 AS cached FROM iceml_fs.pr_chips_1 WHERE id = 1;
DELETE FROM iceml.models WHERE id = :m_gone;
SELECT iceml_predict(:m_gone, band_1, band_2) FROM iceml_fs.pr_chips_1 WHERE id = 1;

-- deploy errors
SELECT iceml.deploy('iceberg', 'best');
SELECT iceml.deploy('', 'best_score');
SELECT iceml.deploy('nothing_here');
SELECT iceml.deploy('nothing_here', 'rollback');
SELECT iceml.deploy('other', 'rollback');
SELECT iceml.deploy('iceberg', :m_avg);
SELECT iceml.deploy('iceberg', 424242);
SELECT iceml.deploy('iceberg', NULL::bigint);
-- the SQLSTATEs
DO $$
DECLARE
    calls text[] := ARRAY[
        $c$SELECT iceml_predict('iceberg', '{1,2,3}', '{1,2,3}')$c$,
        $c$SELECT iceml_predict('iceberg', array_fill(NULL::real, ARRAY[5625]), array_fill(0::real, ARRAY[5625]))$c$,
        $c$SELECT iceml_predict('iceberg', array_fill('NaN'::real, ARRAY[5625]), array_fill(0::real, ARRAY[5625]))$c$,
        $c$SELECT iceml_predict('no_such_name', '{1}', '{1}')$c$,
        $c$SELECT iceml.deploy('iceberg', 'best')$c$,
        $c$SELECT iceml.deploy('nothing_here')$c$,
        $c$SELECT iceml.deploy('nothing_here', 'rollback')$c$,
        $c$SELECT iceml.deploy('iceberg', 424242)$c$];
    c text;
BEGIN
    FOREACH c IN ARRAY calls LOOP
        BEGIN
            EXECUTE c;
            RAISE WARNING 'no error: %', c;
        EXCEPTION WHEN OTHERS THEN
            RAISE WARNING '% %', SQLSTATE, c;
        END;
    END LOOP;
END
$$;

-- side inputs: a net that takes the angle gets iceml_predict's inc_angle
-- (NULL: a missing angle; these weights have no angle standardisation, so
-- 0 and 1 degrees are the values 0 and 1), one that names another side
-- input is refused
CREATE FUNCTION pr_side_model(experiment text, side text) RETURNS bigint
LANGUAGE sql AS $$
    INSERT INTO iceml.models (experiment, architecture, spec, parameters, channels, normalisation,
                              metrics, training_dataset, lineage, weights, owner)
    SELECT experiment, 'side_net', s.spec, 7, '{band_1,band_2,band_avg}',
           '{"mean": [-20, -28, -24], "std": [4, 2, 3]}', '{"log_loss": 0.5}', 'iceml_td.pr_1', '{}',
           iceml._untrained_weights(s.spec::text, 5, '{-20,-28,-24}', '{4,2,3}'), current_user
      FROM (SELECT jsonb_build_object('input', '[3, 75, 75]'::jsonb, 'layers', jsonb_build_array(
                '{"type": "gap"}'::jsonb, jsonb_build_object('type', 'side', 'inputs', jsonb_build_array(side)),
                '{"type": "dense", "units": 1}'::jsonb)) AS spec) s
    RETURNING id
$$;
SELECT pr_side_model('angle', 'inc_angle') AS m_angle \gset
SELECT count(DISTINCT round(iceml_predict(:m_angle, band_1, band_2, a)::numeric, 6)) AS distinct_predictions,
       bool_and(iceml_predict(:m_angle, band_1, band_2, a) IS NOT DISTINCT FROM iceml_predict(:m_angle, band_1, band_2, a)) AS repeatable
  FROM iceml_fs.pr_chips_1, (VALUES (NULL::real), (0), (1)) v(a) WHERE id = 1;
SELECT pr_side_model('wind', 'wind_speed') AS m_wind \gset
SELECT iceml_predict(:m_wind, band_1, band_2, 40) FROM iceml_fs.pr_chips_1 WHERE id = 1;
