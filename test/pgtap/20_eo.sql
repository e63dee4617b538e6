-- Earth-observation features: the SAR feature functions, the synthetic chips
-- and their picture.  Signatures, marks and privileges; the SQLSTATE of every
-- malformed input; and, when the three real records of
-- shared/data/statoil/train_subset_3records.json lie beside the checkout
-- (never copied into this repository), that the synthetic chips' statistics
-- cover the real ones.
BEGIN;
SELECT plan(36);

-- signatures and marks
SELECT has_function('iceml', 'band_avg', ARRAY['real[]', 'real[]']);
SELECT has_function('iceml', 'to_linear', ARRAY['real[]']);
SELECT has_function('iceml', 'to_db', ARRAY['real[]']);
SELECT has_function('iceml', 'standardize', ARRAY['real[]']);
SELECT has_function('iceml', 'lee_filter', ARRAY['real[]', 'integer']);
SELECT has_function('iceml', 'band_stats', ARRAY['real[]']);
SELECT has_function('iceml', 'synthesize_statoil', ARRAY['integer', 'integer']);
SELECT has_function('iceml', 'plot_chip', ARRAY['real[]']);
SELECT is((SELECT count(*) FROM pg_proc
            WHERE pronamespace = 'iceml'::regnamespace
              AND proname IN ('band_avg', 'to_linear', 'to_db', 'standardize', 'lee_filter',
                              'band_stats', 'synthesize_statoil', 'plot_chip')
              AND provolatile = 'i' AND proisstrict AND proparallel = 's'
              AND obj_description(oid, 'pg_proc') IS NOT NULL),
          8::bigint, 'all eight are IMMUTABLE STRICT PARALLEL SAFE and commented');
SELECT is(iceml.lee_filter(array_fill(1::real, ARRAY[25])), array_fill(1::real, ARRAY[25]),
          'lee_filter''s window defaults to 5');

-- privileges: the feature functions for readers, the generator for users
SELECT function_privs_are('iceml', 'band_avg', ARRAY['real[]', 'real[]'], 'iceml_reader', ARRAY['EXECUTE']);
SELECT function_privs_are('iceml', 'plot_chip', ARRAY['real[]'], 'iceml_reader', ARRAY['EXECUTE']);
SELECT function_privs_are('iceml', 'synthesize_statoil', ARRAY['integer', 'integer'], 'iceml_user', ARRAY['EXECUTE']);
SELECT function_privs_are('iceml', 'synthesize_statoil', ARRAY['integer', 'integer'], 'iceml_reader', '{}'::text[]);

-- SQLSTATEs of malformed input
SELECT throws_ok($$SELECT iceml.band_avg('{1,2}', '{1}')$$, '22023',
                 'band_avg: a has 2 elements but b has 1', 'lengths differ');
SELECT throws_ok($$SELECT iceml.band_avg('{1,NULL}', '{1,2}')$$, '22004',
                 'band_avg: a has a NULL element at index 2', 'NULL element');
SELECT throws_ok($$SELECT iceml.standardize('{1,NaN}')$$, '22023',
                 'standardize: band has a non-finite value (NaN) at index 2', 'NaN');
SELECT throws_ok($$SELECT iceml.band_stats('{Infinity}')$$, '22023', NULL, 'Infinity');
SELECT throws_ok($$SELECT iceml.to_db('{{1,2},{3,4}}')$$, '22023', NULL, '2-D array');
SELECT throws_ok($$SELECT iceml.to_linear('{}')$$, '22023', NULL, 'empty array');
SELECT throws_ok($$SELECT iceml.to_db('{1,0}')$$, '2201E', NULL, 'logarithm of zero');
SELECT throws_ok($$SELECT iceml.to_linear('{400}')$$, '22003', NULL, 'overflow of real');
SELECT throws_ok($$SELECT iceml.band_stats(array_fill(0::real, ARRAY[4096 * 4096 + 1]))$$, '54000', NULL,
                 'more than a 4096 x 4096 image');
SELECT throws_ok($$SELECT iceml.lee_filter('{1,2,3}')$$, '22023', NULL, 'non-square image');
SELECT throws_ok($$SELECT iceml.lee_filter(array_fill(0::real, ARRAY[25]), 2)$$, '22023', NULL, 'even window');
SELECT throws_ok($$SELECT iceml.lee_filter(array_fill(0::real, ARRAY[25]), -1)$$, '22023', NULL, 'window < 1');
SELECT throws_ok($$SELECT iceml.lee_filter(array_fill(0::real, ARRAY[25]), 7)$$, '22023', NULL, 'window > side');
SELECT throws_ok($$SELECT iceml.synthesize_statoil(-5)$$, '22023', NULL, 'negative n');
SELECT throws_ok($$SELECT iceml.synthesize_statoil(1000001)$$, '22023', NULL, 'absurd n');
SELECT throws_ok($$SELECT iceml.plot_chip('{1,2}')$$, '22023', NULL, 'plot of a non-square band');

-- the real records, read by PostgreSQL's JSON parser, against 500 synthetic chips
\set real `f=../shared/data/statoil/train_subset_3records.json; if [ -r "$f" ]; then d=$(mktemp -d /tmp/iceml-real-XXXXXX); cp "$f" "$d/train3.json"; chmod 755 "$d"; chmod 644 "$d/train3.json"; echo "$d/train3.json"; fi`
SELECT :'real' <> '' AS have_real \gset

\if :have_real
CREATE TEMP TABLE tap_chips AS
SELECT 'real' AS src, r->>'id' AS id, (r->>'is_iceberg')::int AS is_iceberg,
       ARRAY(SELECT pg_catalog.jsonb_array_elements_text(r->'band_1')::real) AS band_1,
       ARRAY(SELECT pg_catalog.jsonb_array_elements_text(r->'band_2')::real) AS band_2
  FROM pg_catalog.jsonb_array_elements(pg_read_file(:'real')::jsonb) AS r
UNION ALL
SELECT 'synthetic', id, is_iceberg, band_1, band_2 FROM iceml.synthesize_statoil(500, 11);

-- per chip: whole-chip mean/std/max per band (as the data README tabulates)
CREATE TEMP TABLE tap_stats AS
SELECT src, id, is_iceberg, s1.mean AS mean1, s1.stddev AS std1, s1.max AS max1,
       s2.mean AS mean2, s2.stddev AS std2, s2.max AS max2
  FROM tap_chips, iceml.band_stats(band_1) s1, iceml.band_stats(band_2) s2;

-- each real value lies within the synthetic 1st .. 99th percentiles
CREATE TEMP TABLE tap_within AS
SELECT f, bool_and(v BETWEEN lo AND hi) AS ok
  FROM (SELECT f, percentile_cont(0.01) WITHIN GROUP (ORDER BY v) AS lo,
               percentile_cont(0.99) WITHIN GROUP (ORDER BY v) AS hi
          FROM tap_stats, LATERAL (VALUES ('mean1', mean1), ('std1', std1), ('max1', max1),
                                          ('mean2', mean2), ('std2', std2), ('max2', max2)) AS x(f, v)
         WHERE src = 'synthetic' GROUP BY f) AS syn
  JOIN (SELECT f, v
          FROM tap_stats, LATERAL (VALUES ('mean1', mean1), ('std1', std1), ('max1', max1),
                                          ('mean2', mean2), ('std2', std2), ('max2', max2)) AS x(f, v)
         WHERE src = 'real') AS rl USING (f)
 GROUP BY f;
SELECT ok(ok, format('real %s lies within the synthetic 1-99%% range', f))
  FROM tap_within ORDER BY f;
\else
SELECT skip('the real records are not beside the checkout', 6);
\endif

SELECT * FROM finish();
ROLLBACK;
