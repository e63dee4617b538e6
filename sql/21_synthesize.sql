--
-- iceml.synthesize_statoil(n, seed): synthetic chips in the Statoil/C-CORE
-- layout.  Shape, determinism, then the statistics that make the chips a
-- fair stand-in for the real records: class balance, missing angles,
-- background level and texture, and that no single number separates ships
-- from icebergs well.
--
\set VERBOSITY default

CREATE TEMP TABLE syn AS SELECT * FROM iceml.synthesize_statoil(2000, 7);

-- the layout of train.json
SELECT count(*) AS chips, count(DISTINCT id) AS distinct_ids,
       bool_and(id ~ '^[0-9a-f]{8}$') AS ids_like_kaggle,
       bool_and(array_length(band_1, 1) = 5625 AND array_length(band_2, 1) = 5625) AS bands_75x75,
       min(inc_angle) >= 30 AND max(inc_angle) <= 46 AS angles_30_46
  FROM syn;

-- deterministic: the same seed gives the same chips, another seed others,
-- and the first k chips do not depend on n
SELECT (SELECT array_agg(md5(band_1::text || band_2::text) ORDER BY id) FROM iceml.synthesize_statoil(5, 7))
     = (SELECT array_agg(md5(band_1::text || band_2::text) ORDER BY id) FROM syn WHERE id IN
           (SELECT id FROM iceml.synthesize_statoil(5, 7))) AS same_seed_same_chips;
SELECT count(*) AS chips_in_common
  FROM iceml.synthesize_statoil(50, 7) a JOIN iceml.synthesize_statoil(50, 8) b
       ON a.band_1 = b.band_1;
SELECT (SELECT array_agg(id || md5(band_1::text) ORDER BY ord) FROM iceml.synthesize_statoil(3, 7) WITH ORDINALITY AS t(id, band_1, band_2, inc_angle, is_iceberg, ord))
     = (SELECT array_agg(id || md5(band_1::text) ORDER BY ord) FROM iceml.synthesize_statoil(300, 7) WITH ORDINALITY AS t(id, band_1, band_2, inc_angle, is_iceberg, ord) WHERE ord <= 3)
       AS first_3_independent_of_n;
SELECT count(*) AS zero_chips FROM iceml.synthesize_statoil(0);

-- class balance as train.json (46.9% icebergs), within +-3 points
SELECT avg(is_iceberg) BETWEEN 0.44 AND 0.50 AS balance_ok FROM syn;

-- inc_angle is missing for ships only, about 16% of them (133 of 851)
SELECT count(*) FILTER (WHERE inc_angle IS NULL AND is_iceberg = 1) AS icebergs_without_angle,
       avg((inc_angle IS NULL)::int) FILTER (WHERE is_iceberg = 0) BETWEEN 0.12 AND 0.20
           AS ships_without_angle_about_16pct
  FROM syn;

-- the sea background: the 5-pixel frame of each chip
CREATE TEMP TABLE frame AS
SELECT s.id, s.inc_angle, s.is_iceberg, avg(p.b1) AS m1, stddev_pop(p.b1) AS s1,
       avg(p.b2) AS m2, stddev_pop(p.b2) AS s2
  FROM syn s, unnest(s.band_1, s.band_2) WITH ORDINALITY AS p(b1, b2, o)
 WHERE (o - 1) / 75 NOT BETWEEN 5 AND 69 OR (o - 1) % 75 NOT BETWEEN 5 AND 69
 GROUP BY s.id, s.inc_angle, s.is_iceberg;
-- levels and spread in the range of the real records (band_1 about -28 .. -18
-- dB, band_2 about -30 .. -25 dB, 2 .. 3.5 dB of speckle)
SELECT round(avg(m1)) BETWEEN -26 AND -18 AS band_1_level_ok,
       round(avg(m2)) BETWEEN -32 AND -24 AS band_2_level_ok,
       avg(s1) BETWEEN 1.5 AND 4 AS band_1_spread_ok,
       avg(s2) BETWEEN 1.5 AND 4 AS band_2_spread_ok,
       avg((m2 < m1)::int) > 0.99 AS band_2_darker,
       avg(s2) < avg(s1) AS band_2_lower_contrast
  FROM frame;
-- darker at higher incidence angle
SELECT corr(m1, inc_angle) < -0.3 AS band_1_darker_at_high_angle,
       corr(m2, inc_angle) < -0.3 AS band_2_darker_at_high_angle
  FROM frame;
-- spatially correlated, not white: lag-1 autocorrelation along the top rows
SELECT avg(r) > 0.1 AS background_correlated
  FROM (SELECT s.id, corr(p.b1, q.b1) AS r
          FROM (SELECT * FROM syn LIMIT 200) s,
               unnest(s.band_1) WITH ORDINALITY AS p(b1, o),
               unnest(s.band_1) WITH ORDINALITY AS q(b1, o2)
         WHERE o <= 375 AND o2 = o + 1 AND o % 75 <> 0
         GROUP BY s.id) AS a;

-- no single number tells the classes apart well: the best threshold rule on
-- the brightest pixel, the chip mean, and the HH/HV ratio of the maxima
-- (max band_1 - max band_2 in dB) is right less than 80% of the time
CREATE TEMP TABLE feat AS
SELECT s.is_iceberg,
       (SELECT max(x) FROM unnest(s.band_1) x) AS max_hh,
       (SELECT avg(x) FROM unnest(s.band_1) x) AS mean_hh,
       (SELECT max(x) FROM unnest(s.band_1) x) - (SELECT max(x) FROM unnest(s.band_2) x) AS hh_hv_ratio
  FROM syn s;
CREATE FUNCTION pg_temp.best_rule(f text) RETURNS float8 LANGUAGE plpgsql AS $$
DECLARE acc float8;
BEGIN
    -- every cut point along the sorted feature; either side may be icebergs
    EXECUTE format($q$
        SELECT max(greatest(a, 1 - a)) FROM (
            SELECT (sum(1 - is_iceberg) OVER w + (tot - sum(is_iceberg) OVER w))::float8 / n AS a
              FROM feat, (SELECT count(*) AS n, sum(is_iceberg) AS tot FROM feat) t
            WINDOW w AS (ORDER BY %I ROWS UNBOUNDED PRECEDING)) r$q$, f) INTO acc;
    RETURN acc;
END $$;
SELECT f AS feature, pg_temp.best_rule(f) < 0.80 AS weak
  FROM unnest(ARRAY['max_hh', 'mean_hh', 'hh_hv_ratio']) AS f ORDER BY 1;

-- iceml_user may call it, iceml_reader not
SET ROLE iceml_user;
SELECT count(*) AS user_can FROM iceml.synthesize_statoil(1);
RESET ROLE;
SET ROLE iceml_reader;
SELECT count(*) FROM iceml.synthesize_statoil(1);
RESET ROLE;

-- malformed input
SELECT count(*) FROM iceml.synthesize_statoil(-1);
SELECT count(*) FROM iceml.synthesize_statoil(2000000, 3);
SELECT count(*) AS null_n_no_rows FROM iceml.synthesize_statoil(NULL);
