-- iceml.evaluate, iceml.evaluate_slices and iceml.what_if on the models and
-- the training dataset of 50_predict (deployed under 'iceberg': model m1).
SET client_min_messages = warning;
\set SHOW_CONTEXT never
SELECT model_id AS m1 FROM iceml.deployed_models WHERE name = 'iceberg' \gset

-- ---- evaluate: the engine's metrics, checked against the same metrics
-- computed independently in SQL from the predictions -----------------------
SELECT jsonb_pretty(iceml.evaluate('iceberg', 'iceml_td.pr_1') - 'model_id'
       || jsonb_build_object('log_loss', round((iceml.evaluate('iceberg', 'iceml_td.pr_1')->>'log_loss')::numeric, 6),
                             'roc_auc', round((iceml.evaluate('iceberg', 'iceml_td.pr_1')->>'roc_auc')::numeric, 6)))
       AS evaluation;
WITH p AS (SELECT iceml_predict('iceberg', band_1, band_2, inc_angle)::float8 AS p, is_iceberg AS y
             FROM iceml_td.pr_1 WHERE split = 'test'),
     c AS (SELECT count(*) FILTER (WHERE p >= 0.5 AND y = 1) AS tp, count(*) FILTER (WHERE p >= 0.5 AND y = 0) AS fp,
                  count(*) FILTER (WHERE p < 0.5 AND y = 0) AS tn, count(*) FILTER (WHERE p < 0.5 AND y = 1) AS fn,
                  count(*) AS n,
                  avg(CASE WHEN y = 1 THEN -ln(greatest(least(p, 1 - 1e-7), 1e-7))
                           ELSE -ln(1 - greatest(least(p, 1 - 1e-7), 1e-7)) END) AS log_loss
             FROM p),
     r AS (SELECT y, rank() OVER (ORDER BY p) + (count(*) OVER (PARTITION BY p) - 1) / 2.0 AS rk FROM p),
     auc AS (SELECT (sum(rk) FILTER (WHERE y = 1) - count(*) FILTER (WHERE y = 1) * (count(*) FILTER (WHERE y = 1) + 1) / 2.0)
                    / (count(*) FILTER (WHERE y = 1) * count(*) FILTER (WHERE y = 0)) AS auc FROM r),
     sql AS (SELECT c.*, (tp + tn)::float8 / n AS accuracy,
                    CASE WHEN tp + fp > 0 THEN tp::float8 / (tp + fp) ELSE 0 END AS precision,
                    CASE WHEN tp + fn > 0 THEN tp::float8 / (tp + fn) ELSE 0 END AS recall, auc.auc
               FROM c, auc),
     e AS (SELECT iceml.evaluate('iceberg', 'iceml_td.pr_1') AS m)
SELECT (m->>'n')::bigint = n AS n_ok,
       abs((m->>'log_loss')::float8 - log_loss) < 1e-6 AS log_loss_ok,
       abs((m->>'accuracy')::float8 - accuracy) < 1e-9 AS accuracy_ok,
       abs((m->>'precision')::float8 - precision) < 1e-9 AS precision_ok,
       abs((m->>'recall')::float8 - recall) < 1e-9 AS recall_ok,
       abs((m->>'f1')::float8 - CASE WHEN precision + recall > 0 THEN 2 * precision * recall / (precision + recall) ELSE 0 END) < 1e-9 AS f1_ok,
       abs((m->>'roc_auc')::float8 - auc::float8) < 1e-9 AS auc_ok,
       m->'confusion' = jsonb_build_object('tp', tp, 'fp', fp, 'tn', tn, 'fn', fn) AS confusion_ok
  FROM sql, e;
-- another split
SELECT (iceml.evaluate('iceberg', 'iceml_td.pr_1', 'train')->>'n')::int AS n_train;
-- by id: the same model, deployed or not, gives the same figures
SELECT iceml.evaluate(:m1, 'iceml_td.pr_1') - 'model_id' - 'model'
       = iceml.evaluate('iceberg', 'iceml_td.pr_1') - 'model_id' - 'model' AS by_id_same,
       (iceml.evaluate(:m1, 'iceml_td.pr_1')->>'model_id')::bigint = :m1 AS names_model;

-- ---- evaluate_slices ---------------------------------------------------------
-- by incidence angle (equal-frequency bins), checked against SQL
SELECT slice, n, round(log_loss::numeric, 4) AS log_loss, round(accuracy::numeric, 3) AS accuracy,
       round(positive_rate::numeric, 3) AS positive_rate, round(predicted_positive_rate::numeric, 3) AS predicted_positive_rate
  FROM iceml.evaluate_slices('iceberg', 'iceml_td.pr_1', 'inc_angle', bins => 2, split => 'train');
SELECT percentile_cont(0.5) WITHIN GROUP (ORDER BY inc_angle) AS median_angle,
       count(*) FILTER (WHERE inc_angle < percentile_cont) AS below
  FROM iceml_td.pr_1, (SELECT percentile_cont(0.5) WITHIN GROUP (ORDER BY inc_angle) FROM iceml_td.pr_1 WHERE split = 'train') q
 WHERE split = 'train' GROUP BY percentile_cont;
-- the slices add up to the whole split
SELECT sum(n) AS n, round(sum(n * log_loss)::numeric / sum(n), 6)
       = round((iceml.evaluate('iceberg', 'iceml_td.pr_1', 'train')->>'log_loss')::numeric, 6) AS log_loss_adds_up
  FROM iceml.evaluate_slices('iceberg', 'iceml_td.pr_1', 'inc_angle', 3, 'train');
-- an array feature is sliced by each row's mean; one bin is the whole split
SELECT slice, n FROM iceml.evaluate_slices('iceberg', 'iceml_td.pr_1', 'band_2', 2, 'train');
SELECT slice, n, positive_rate FROM iceml.evaluate_slices('iceberg', 'iceml_td.pr_1', 'id', 1, 'test') LIMIT 2;

-- ---- what_if -------------------------------------------------------------------
SELECT band_1 AS b1, band_2 AS b2, inc_angle AS a FROM iceml_fs.pr_chips_1 WHERE id = 1 \gset
SELECT jsonb_pretty(r - '{before,after,delta,model_id}'::text[] || jsonb_build_object(
           'model_id_is_m1', r->>'model_id' = :'m1', 'before', round((r->>'before')::numeric, 4),
           'after', round((r->>'after')::numeric, 4), 'delta', round((r->>'delta')::numeric, 4),
           'steps', jsonb_build_array(jsonb_set(r->'steps'->0, '{prediction}', to_jsonb(round((r->'steps'->0->>'prediction')::numeric, 4))))))
  FROM iceml.what_if('iceberg', :'b1', :'b2', :'a', '{"op": "gain", "db": 3, "band": "band_1"}') r;
-- every edit in turn; each step gives the prediction after it
SELECT s->'change'->>'op' AS op, round((s->>'prediction')::numeric, 4) AS prediction, s->>'note' AS note
  FROM jsonb_array_elements(iceml.what_if('iceberg', :'b1', :'b2', :'a', '[
        {"op": "gain", "db": -3},
        {"op": "blank", "band": "band_2"},
        {"op": "flip", "axis": "horizontal"},
        {"op": "flip", "axis": "vertical"},
        {"op": "rotate", "degrees": 90},
        {"op": "inc_angle", "to": 44}]')->'steps') s;
-- edits are exact: two horizontal flips, four quarter turns and a 0 dB gain change nothing
SELECT (r->>'before')::real = (r->>'after')::real AS unchanged
  FROM iceml.what_if('iceberg', :'b1', :'b2', :'a', '[{"op":"flip","axis":"horizontal"},{"op":"flip","axis":"horizontal"},
        {"op":"rotate","degrees":90},{"op":"rotate","degrees":90},{"op":"rotate","degrees":180},{"op":"gain","db":0}]') r;
-- on a 2x2 image [[1,2],[3,4]]: a quarter turn clockwise gives [[3,1],[4,2]]
SELECT (iceml.edit_chip(ARRAY[1,2,3,4]::real[], '{"op":"rotate","degrees":90}', NULL)) AS rot90,
       (iceml.edit_chip(ARRAY[1,2,3,4]::real[], '{"op":"flip","axis":"horizontal"}', NULL)) AS fliph,
       (iceml.edit_chip(ARRAY[1,2,3,4]::real[], '{"op":"flip","axis":"vertical"}', NULL)) AS flipv;
-- another angle darkens (larger angle) the clutter by 0.55 dB per degree; bright pixels stay
SELECT round((SELECT percentile_cont(0.5) WITHIN GROUP (ORDER BY v) FROM unnest(iceml.edit_chip(:'b1', '{"op":"inc_angle","to":41}', 31)) v)::numeric
           - (SELECT percentile_cont(0.5) WITHIN GROUP (ORDER BY v) FROM unnest(:'b1'::real[]) v)::numeric, 1) AS median_shift_db,
       round(((iceml.edit_chip(:'b1', '{"op":"inc_angle","to":41}', 31))[37 * 75 + 38] - (:'b1'::real[])[37 * 75 + 38])::numeric, 1) AS centre_shift_db;

-- ---- malformed input -------------------------------------------------------------
SELECT iceml.evaluate('nobody', 'iceml_td.pr_1');
SELECT iceml.evaluate('iceberg', 'iceml_fs.pr_chips_1');
SELECT iceml.evaluate('iceberg', 'iceml_td.pr_1', 'validation');
SELECT iceml.evaluate(-1, 'iceml_td.pr_1');
SELECT iceml.evaluate(:m1, 'iceml_td.pr_1', 'validation');
SELECT iceml.split_predictions(1.5, 'iceml_td.pr_1');
\echo :LAST_ERROR_SQLSTATE
SELECT array_length(probabilities, 1) = 8 AND labels = ARRAY(SELECT is_iceberg::real FROM iceml_td.pr_1 WHERE split = 'test' ORDER BY ctid) AS split_predictions_ok
  FROM iceml.split_predictions(:m1, 'iceml_td.pr_1');
SELECT * FROM iceml.evaluate_slices('iceberg', 'iceml_td.pr_1', 'no_column');
SELECT * FROM iceml.evaluate_slices('iceberg', 'iceml_td.pr_1', 'inc_angle', 0);
SELECT iceml.what_if('iceberg', :'b1', :'b2', :'a', '[]');
SELECT iceml.what_if('iceberg', :'b1', :'b2', :'a', '{"op": "zoom"}');
SELECT iceml.what_if('iceberg', :'b1', :'b2', :'a', '{"op": "gain", "db": "loud"}');
SELECT iceml.what_if('iceberg', :'b1', :'b2', :'a', '{"op": "gain", "db": 3, "band": "band_3"}');
SELECT iceml.what_if('iceberg', :'b1', :'b2', :'a', '{"op": "blank"}');
SELECT iceml.what_if('iceberg', :'b1', :'b2', :'a', '{"op": "flip", "axis": "diagonal"}');
SELECT iceml.what_if('iceberg', :'b1', :'b2', :'a', '{"op": "rotate", "degrees": 45}');
SELECT iceml.what_if('iceberg', :'b1', :'b2', :'a', '{"op": "inc_angle", "to": 100}');
SELECT iceml.what_if('iceberg', :'b1', :'b2', NULL, '{"op": "inc_angle", "to": 40}');
SELECT iceml.what_if('iceberg', '{1,2}', :'b2', :'a', '{"op": "gain", "db": 1}');
SELECT iceml.what_if('nobody', :'b1', :'b2', :'a', '{"op": "gain", "db": 1}');
-- the utilities behind them, callable on their own
SELECT iceml.binary_metrics('{0.9,0.2,0.7,0.4}', '{1,0,1,1}')->>'accuracy' AS accuracy;
SELECT iceml.binary_metrics('{0.9,0.2}', '{1}');
SELECT iceml.edit_chip('{1,2,3,4}', '{"op":"gain","db":3}', NULL) AS gained;
SELECT iceml.edit_chip('{1,2,3,4}', '{"op":"rotate","degrees":45}', NULL);
SELECT iceml.edit_chip('{1,2,3,4}', '{"op":"inc_angle","to":40}', NULL);
SELECT iceml.edit_chip(NULL, '{"op":"flip","axis":"vertical"}', NULL);
SELECT iceml.deployed_model('nobody');
