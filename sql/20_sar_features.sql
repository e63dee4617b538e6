--
-- SAR feature functions (API.md section 3): band_avg, to_linear, to_db,
-- standardize, lee_filter, band_stats.  Each result is checked against an
-- independent computation in plain SQL over unnest, then every malformed
-- input shows its error.
--
\set VERBOSITY default

-- two 75 x 75 bands with a smooth pattern, as a chip would be
CREATE TEMP TABLE chip AS
SELECT array_agg((-25 + 5 * sin(i / 40.0) + (i % 7) * 0.5)::real ORDER BY i) AS b1,
       array_agg((-30 + 3 * cos(i / 90.0) - (i % 5) * 0.25)::real ORDER BY i) AS b2
  FROM generate_series(0, 5624) AS i;

-- band_avg: known values, then element by element against (a + b) / 2
SELECT iceml.band_avg('{1,2,3}', '{3,4,-5}') AS avg_small;
-- halves are added, so values near the float maximum do not overflow
SELECT iceml.band_avg('{3e38,-3e38,3e38}', '{3e38,3e38,-3e38}') AS avg_near_max;
SELECT array_length(iceml.band_avg(b1, b2), 1) AS len,
       bool_and(abs(avg_c - (x1 + x2) / 2) < 1e-5) AS same_as_sql
  FROM chip,
       unnest(b1, b2, iceml.band_avg(b1, b2)) AS u(x1, x2, avg_c)
 GROUP BY 1;

-- to_linear / to_db: known values and the round trip on a whole band
SELECT iceml.to_linear('{-10,0,10,20}') AS linear,
       iceml.to_db('{0.01,0.1,1,1000}') AS db;
SELECT max(abs(r - x)) < 1e-4 AS round_trip_ok,
       bool_and(abs(l - power(10, x / 10.0)) <= 1e-6 * power(10, x / 10.0)) AS linear_as_sql
  FROM chip, unnest(b1, iceml.to_db(iceml.to_linear(b1)), iceml.to_linear(b1)) AS u(x, r, l);

-- standardize: mean 0 and population stddev 1; a constant band becomes zeros
SELECT round(avg(z)::numeric, 5) AS mean, round(stddev_pop(z)::numeric, 5) AS stddev
  FROM chip, unnest(iceml.standardize(b1)) AS z;
SELECT iceml.standardize('{1,2,3}') AS small, iceml.standardize('{4,4,4}') AS constant;

-- band_stats: the same as min/max/avg/stddev_pop over unnest
SELECT * FROM iceml.band_stats('{1,2,3,4}');
SELECT s.min = m.mn AS min_ok, s.max = m.mx AS max_ok,
       abs(s.mean - m.av) < 1e-9 AS mean_ok, abs(s.stddev - m.sd) < 1e-9 AS stddev_ok
  FROM chip, iceml.band_stats(b1) AS s,
       LATERAL (SELECT min(x) AS mn, max(x) AS mx, avg(x) AS av, stddev_pop(x) AS sd
                  FROM unnest(b1) AS x) AS m;
SELECT * FROM iceml.band_stats('{-7.5}');

-- lee_filter: a constant image is returned as is; window 1 is the identity
SELECT iceml.lee_filter(array_fill(-12.5::real, ARRAY[49]), 5) = array_fill(-12.5::real, ARRAY[49]) AS constant_kept;
SELECT iceml.lee_filter('{1,5,2,8,3,7,4,6,9}', 1) AS window_1;
-- a 3 x 3 image with window 3 (clipped at the edges), rounded
SELECT array_agg(round(x::numeric, 4) ORDER BY o) AS lee_3x3
  FROM unnest(iceml.lee_filter('{1,5,2,8,3,7,4,6,9}', 3)) WITH ORDINALITY AS u(x, o);
-- the 75 x 75 band against the same filter written in SQL: local mean and
-- population variance over the clipped window, noise = mean local variance
WITH px AS (
    SELECT (o - 1) / 75 AS r, (o - 1) % 75 AS c, x::float8 AS x
      FROM chip, unnest(b1) WITH ORDINALITY AS u(x, o)),
loc AS (
    SELECT p.r, p.c, p.x, avg(q.x) AS m, var_pop(q.x) AS v
      FROM px p JOIN px q ON q.r BETWEEN p.r - 2 AND p.r + 2
                         AND q.c BETWEEN p.c - 2 AND p.c + 2
     GROUP BY p.r, p.c, p.x),
ref AS (
    SELECT r, c, m + CASE WHEN v > s2 THEN (v - s2) / v ELSE 0 END * (x - m) AS y
      FROM loc, (SELECT avg(v) AS s2 FROM loc) AS n)
SELECT max(abs(ref.y - f.y)) < 1e-3 AS lee_as_sql
  FROM ref
  JOIN (SELECT (o - 1) / 75 AS r, (o - 1) % 75 AS c, y
          FROM chip, unnest(iceml.lee_filter(b1, 5)) WITH ORDINALITY AS u(y, o)) AS f
    USING (r, c);
-- speckle is reduced: the filtered band varies less than the band
SELECT (SELECT stddev FROM iceml.band_stats(iceml.lee_filter(b1)))
       < (SELECT stddev FROM iceml.band_stats(b1)) AS smoother
  FROM chip;

-- the functions are IMMUTABLE STRICT PARALLEL SAFE, and NULL in gives NULL out
SELECT p.oid::regprocedure AS function, provolatile, proisstrict, proparallel
  FROM pg_proc p
 WHERE pronamespace = 'iceml'::regnamespace
   AND proname IN ('band_avg', 'to_linear', 'to_db', 'standardize', 'lee_filter', 'band_stats')
 ORDER BY 1::text;
SELECT iceml.band_avg(NULL, '{1}') IS NULL AS null_in_null_out;

-- iceml_reader may call them
SET ROLE iceml_reader;
SELECT iceml.band_avg('{2}', '{4}') AS reader_avg;
RESET ROLE;

-- malformed input: each shows its error
SELECT iceml.band_avg(b1, b1[1:5624]) FROM chip;           -- lengths differ
SELECT iceml.band_avg('{1,2}', '{3,NULL}');                -- NULL element
SELECT iceml.band_avg('{1,NaN}', '{3,4}');                 -- NaN
SELECT iceml.standardize('{1,2,Infinity}');                -- Infinity
SELECT iceml.band_stats('{-Infinity}');                    -- -Infinity
SELECT iceml.to_db('{{1,2},{3,4}}');                       -- 2-D array
SELECT iceml.to_linear('{}');                              -- empty array
SELECT iceml.to_db('{1,0.5,0}');                           -- log of zero
SELECT iceml.to_db('{-1}');                                -- log of a negative
SELECT iceml.to_linear('{10,400}');                        -- overflow
SELECT iceml.band_avg('[0:1]={1,NULL}', '{1,2}');          -- index is the SQL subscript
SELECT iceml.lee_filter(b1[1:5624]) FROM chip;             -- not a square image
SELECT iceml.lee_filter(b1, 4) FROM chip;                  -- even window
SELECT iceml.lee_filter(b1, 0) FROM chip;                  -- window < 1
SELECT iceml.lee_filter(b1, 77) FROM chip;                 -- window larger than the image
SELECT iceml.lee_filter('{1,2,3,4}', 3);                   -- 3 > 2
SELECT iceml.band_stats(array_fill(0::real, ARRAY[4097 * 4096]));  -- too long
