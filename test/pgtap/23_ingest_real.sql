-- iceml.ingest_statoil reads the real Kaggle format exactly: the three real
-- records of shared/data/statoil/train_subset_3records.json (never copied
-- into this repository).  Runs when ../shared/ lies beside the checkout, as
-- in CI; skips otherwise.  The file goes to the server by its path (copied
-- first to a place the server's user can read), and the expected values come
-- from PostgreSQL's own JSON parser, independently of json-c.
BEGIN;
SELECT plan(8);

\set real `f=../shared/data/statoil/train_subset_3records.json; if [ -r "$f" ]; then d=$(mktemp -d /tmp/iceml-real-XXXXXX); cp "$f" "$d/train3.json"; chmod 755 "$d"; chmod 644 "$d/train3.json"; echo "$d/train3.json"; fi`
SELECT :'real' <> '' AS have_real \gset

\if :have_real
CREATE TABLE tap_real (id text PRIMARY KEY, band_1 real[], band_2 real[], inc_angle real,
                       is_iceberg smallint, band_avg real[]);
SELECT results_eq(format($$SELECT * FROM iceml.ingest_statoil('tap_real', %L)$$, :'real'),
                  $$VALUES (3::bigint, 3::bigint, 0::bigint)$$,
                  'the three real records load');

CREATE TEMP TABLE tap_real_expected AS
SELECT r->>'id' AS id,
       ARRAY(SELECT pg_catalog.jsonb_array_elements_text(r->'band_1')::real) AS band_1,
       ARRAY(SELECT pg_catalog.jsonb_array_elements_text(r->'band_2')::real) AS band_2,
       (r->>'inc_angle')::real AS inc_angle,
       (r->>'is_iceberg')::smallint AS is_iceberg
  FROM pg_catalog.jsonb_array_elements(pg_read_file(:'real')::jsonb) AS r;

SELECT results_eq($$SELECT id, is_iceberg, inc_angle FROM tap_real ORDER BY id$$,
                  $$VALUES ('3aac67cd', 1::smallint, 44.624::real), ('93a797d3', 1::smallint, 35.7025::real),
                           ('dfd5f913', 0::smallint, 43.9239::real)$$,
                  'ids, labels and angles as in the data README');
SELECT results_eq($$SELECT id, is_iceberg, inc_angle FROM tap_real ORDER BY id$$,
                  $$SELECT id, is_iceberg, inc_angle FROM tap_real_expected ORDER BY id$$,
                  'ids, labels and angles as PostgreSQL''s JSON parser reads them');
SELECT is((SELECT count(*) FROM tap_real_expected
            WHERE array_length(band_1, 1) = 5625 AND array_length(band_2, 1) = 5625), 3::bigint,
          'the independent reading has 5625 values per band');
SELECT is((SELECT count(*) FROM tap_real r JOIN tap_real_expected e USING (id)
            WHERE r.band_1 = e.band_1), 3::bigint,
          'every band_1 value is the float4 of its JSON number');
SELECT is((SELECT count(*) FROM tap_real r JOIN tap_real_expected e USING (id)
            WHERE r.band_2 = e.band_2), 3::bigint,
          'every band_2 value is the float4 of its JSON number');
SELECT is((SELECT round(avg(v)::numeric, 2) FROM tap_real, unnest(band_1) v WHERE id = 'dfd5f913'),
          -27.91, 'band_1 of dfd5f913 has the mean of the data README');
SELECT is((SELECT count(*) FROM tap_real
            WHERE band_avg = ARRAY(SELECT (a + b) / 2::real FROM unnest(band_1, band_2) AS u(a, b))),
          3::bigint, 'band_avg on the real records');
\else
SELECT skip('../shared/data/statoil/train_subset_3records.json is not beside the checkout', 8);
\endif

SELECT * FROM finish();
ROLLBACK;
\if :have_real
\set cleanup `rm -rf "$(dirname :'real')"`
\endif
