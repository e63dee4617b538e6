--
-- iceml feature statistics: one pass over a feature group, per feature
-- count, completeness, min, max, mean, stddev, approximate distinct count and
-- a 20-bin equal-width histogram; array features over all their elements and
-- over the per-row means
--
\set SHOW_CONTEXT never

SELECT iceml.create_feature_group('stats',
    '[{"name":"id","type":"integer"},{"name":"band","type":"real[]"},{"name":"angle","type":"double precision"},
      {"name":"label","type":"smallint"},{"name":"site","type":"text"}]',
    ARRAY['id']);
INSERT INTO iceml_fs.stats_1
SELECT g, ARRAY[-g, -2 * g, -3 * g, -4 * g]::real[],
       CASE WHEN g % 5 = 0 THEN NULL ELSE 30 + g END,
       (g % 2)::smallint,
       CASE WHEN g % 3 = 0 THEN 'north' ELSE 'south' END
  FROM generate_series(1, 40) g;
-- a NaN element counts as a value but not in the moments or the histogram
INSERT INTO iceml_fs.stats_1 VALUES (41, '{NaN,-1,-2,-3}', 35, 1, NULL);

SELECT iceml.compute_statistics('iceml_fs.stats_1') AS rows_summarised;

SELECT feature, kind, count, round(completeness::numeric, 4) AS completeness,
       round(min::numeric, 4) AS min, round(max::numeric, 4) AS max,
       round(mean::numeric, 4) AS mean, round(stddev::numeric, 4) AS stddev,
       approx_distinct, histogram
  FROM iceml.feature_statistics
 WHERE feature_group = 'iceml_fs.stats_1'::regclass
 ORDER BY feature, kind;

-- the same figures computed independently in SQL
WITH s AS (SELECT * FROM iceml.feature_statistics WHERE feature_group = 'iceml_fs.stats_1'::regclass),
     a AS (SELECT count(angle) AS n, min(angle) AS lo, max(angle) AS hi, avg(angle) AS mean,
                  stddev(angle) AS sd, count(DISTINCT angle) AS nd,
                  count(angle)::float8 / count(*) AS completeness
             FROM iceml_fs.stats_1),
     e AS (SELECT count(x) AS n, min(x) FILTER (WHERE x <> 'NaN') AS lo, max(x) FILTER (WHERE x <> 'NaN') AS hi,
                  avg(x) FILTER (WHERE x <> 'NaN') AS mean, stddev(x) FILTER (WHERE x <> 'NaN') AS sd
             FROM iceml_fs.stats_1, unnest(band) AS x),
     m AS (SELECT avg(rm) AS mean, stddev(rm) AS sd, count(rm) AS n
             FROM (SELECT (SELECT avg(x) FROM unnest(band) x WHERE x <> 'NaN') AS rm FROM iceml_fs.stats_1) r)
SELECT (SELECT s.count = a.n AND abs(s.min - a.lo) < 1e-9 AND abs(s.max - a.hi) < 1e-9
               AND abs(s.mean - a.mean) < 1e-9 AND abs(s.stddev - a.sd) < 1e-9
               AND abs(s.completeness - a.completeness) < 1e-9 AND s.approx_distinct = a.nd
          FROM s, a WHERE s.feature = 'angle') AS angle_matches,
       (SELECT s.count = e.n AND abs(s.min - e.lo) < 1e-6 AND abs(s.max - e.hi) < 1e-6
               AND abs(s.mean - e.mean) < 1e-6 AND abs(s.stddev - e.sd) < 1e-6
          FROM s, e WHERE s.feature = 'band' AND s.kind = 'elements') AS elements_match,
       (SELECT s.count = m.n AND abs(s.mean - m.mean) < 1e-6 AND abs(s.stddev - m.sd) < 1e-6
          FROM s, m WHERE s.feature = 'band' AND s.kind = 'row_means') AS row_means_match,
       (SELECT bool_and((SELECT sum(c::bigint) FROM jsonb_array_elements_text(s.histogram->'counts') c)
                        = CASE WHEN s.feature = 'band' AND s.kind = 'elements' THEN s.count - 1 ELSE s.count END)
          FROM s WHERE s.histogram IS NOT NULL) AS histograms_sum_to_finite_values;

-- the histogram bins agree with width_bucket over [min, max] (exact below
-- 4096 values)
SELECT s.histogram->'counts' = (
         SELECT jsonb_agg(coalesce(b.n, 0) ORDER BY k)
           FROM generate_series(1, 20) k
           LEFT JOIN (SELECT least(width_bucket(angle, s.min, s.max, 20), 20) AS k, count(*) AS n
                        FROM iceml_fs.stats_1 WHERE angle IS NOT NULL GROUP BY 1) b USING (k)) AS angle_bins_exact
  FROM iceml.feature_statistics s
 WHERE s.feature_group = 'iceml_fs.stats_1'::regclass AND s.feature = 'angle';

-- statistics are kept per run, with the commit they summarise
SELECT iceml.compute_statistics('iceml_fs.stats_1') AS rows_summarised;
SELECT count(DISTINCT computed_at) AS runs, count(*) AS rows_of_statistics,
       bool_and(commit_id = (SELECT max(commit_id) FROM iceml.feature_group_commits
                              WHERE feature_group = 'iceml_fs.stats_1'::regclass)) AS at_last_commit
  FROM iceml.feature_statistics WHERE feature_group = 'iceml_fs.stats_1'::regclass;

-- an empty feature group summarises zero rows
SELECT iceml.create_feature_group('empty', '[{"name":"id","type":"text"},{"name":"x","type":"real"}]', ARRAY['id']);
SELECT iceml.compute_statistics('iceml_fs.empty_1') AS rows_summarised;
SELECT feature, count, completeness, min, histogram FROM iceml.feature_statistics
 WHERE feature_group = 'iceml_fs.empty_1'::regclass ORDER BY feature;

-- malformed arguments
SELECT iceml.compute_statistics(NULL);
SELECT iceml.compute_statistics('pg_class');
CREATE ROLE iceml_regress_stranger IN ROLE iceml_user;
SET ROLE iceml_regress_stranger;
SELECT iceml.compute_statistics('iceml_fs.stats_1');
RESET ROLE;
-- a table with row-level security in force for the caller: its statistics
-- would publish rows the caller cannot see
GRANT SELECT ON iceml_fs.stats_1 TO iceml_regress_stranger;
ALTER TABLE iceml_fs.stats_1 ENABLE ROW LEVEL SECURITY;
CREATE POLICY one_row ON iceml_fs.stats_1 FOR SELECT USING (false);
SET ROLE iceml_regress_stranger;
SELECT iceml.compute_statistics('iceml_fs.stats_1');
RESET ROLE;
DROP POLICY one_row ON iceml_fs.stats_1;
ALTER TABLE iceml_fs.stats_1 DISABLE ROW LEVEL SECURITY;
REVOKE SELECT ON iceml_fs.stats_1 FROM iceml_regress_stranger;
DROP ROLE iceml_regress_stranger;
SELECT iceml.drop_feature_group('iceml_fs.empty_1');
