-- iceml.ingest_statoil: privileges, SQLSTATEs, counts and exact values
BEGIN;
SELECT plan(30);

-- pgTAP keeps its state in temporary tables: let the roles below use them
GRANT ALL ON ALL TABLES IN SCHEMA pg_temp TO PUBLIC;
GRANT ALL ON ALL SEQUENCES IN SCHEMA pg_temp TO PUBLIC;

\set small `pwd`/test/data/statoil_small.json
\set small_lines `pwd`/test/data/statoil_small.jsonl
\set bad `pwd`/test/data/statoil_bad.json
-- what a client would send: the files' text (read here, as the superuser)
SELECT pg_read_file(:'small_lines') AS lines_doc, pg_read_file(:'bad') AS bad_doc \gset

-- the SQL surface
SELECT has_function('iceml', 'ingest_statoil', ARRAY['regclass', 'text', 'text', 'text']);
SELECT function_returns('iceml', 'ingest_statoil', ARRAY['regclass', 'text', 'text', 'text'], 'setof record');
SELECT volatility_is('iceml', 'ingest_statoil', ARRAY['regclass', 'text', 'text', 'text'], 'volatile');
SELECT function_privs_are('iceml', 'ingest_statoil', ARRAY['regclass', 'text', 'text', 'text'],
                          'iceml_user', ARRAY['EXECUTE'], 'iceml_user may ingest');
SELECT function_privs_are('iceml', 'ingest_statoil', ARRAY['regclass', 'text', 'text', 'text'],
                          'iceml_reader', '{}'::text[], 'iceml_reader may not ingest');
SELECT has_table('iceml', 'quarantine', 'iceml.quarantine exists');
SELECT columns_are('iceml', 'quarantine', ARRAY['id', 'feature_group', 'record_number', 'record_id',
    'raw', 'raw_truncated', 'raw_bytes', 'reason', 'sqlstate', 'quarantined_at', 'role']);

-- roles: an ordinary user, one who may read server files, one with nothing
CREATE ROLE tap_ingest_user;
GRANT iceml_user TO tap_ingest_user;
CREATE ROLE tap_ingest_files;
GRANT iceml_user, pg_read_server_files TO tap_ingest_files;
CREATE ROLE tap_ingest_other;
GRANT iceml_user TO tap_ingest_other;

SET ROLE tap_ingest_user;
DO $$ BEGIN PERFORM iceml.create_feature_group('tap_ingest',
    '[{"name":"id","type":"text"},{"name":"band_1","type":"real[]"},{"name":"band_2","type":"real[]"},
      {"name":"inc_angle","type":"real"},{"name":"is_iceberg","type":"smallint"},{"name":"band_avg","type":"real[]"}]',
    ARRAY['id'],
    expectations => '[{"name":"angle_range","features":["inc_angle"],"rules":[{"name":"HAS_MAX","level":"ERROR","max":50}]}]');
END $$;
RESET ROLE;

-- the path form is for superusers and pg_read_server_files only
SET ROLE tap_ingest_user;
SELECT throws_ok(format($$SELECT * FROM iceml.ingest_statoil('iceml_fs.tap_ingest_1', %L)$$, :'small'),
                 '42501', NULL, 'an ordinary user cannot read a server file');
-- the document form serves the same user (the text comes from the client)
SELECT results_eq(format($$SELECT * FROM iceml.ingest_statoil('iceml_fs.tap_ingest_1', document => %L)$$,
                         :'lines_doc'),
                  $$VALUES (3::bigint, 3::bigint, 0::bigint)$$,
                  'an ordinary user ingests a document into the group it owns');
RESET ROLE;

GRANT SELECT, INSERT ON iceml_fs.tap_ingest_1 TO tap_ingest_files;
SET ROLE tap_ingest_files;
SELECT results_eq(format($$SELECT * FROM iceml.ingest_statoil('iceml_fs.tap_ingest_1', %L)$$, :'small'),
                  $$VALUES (4::bigint, 4::bigint, 0::bigint)$$,
                  'a member of pg_read_server_files ingests a server file');
RESET ROLE;

-- INSERT on the target is needed, as for COPY FROM
SET ROLE tap_ingest_other;
SELECT throws_ok($$SELECT * FROM iceml.ingest_statoil('iceml_fs.tap_ingest_1', document => '[]')$$,
                 '42501', NULL, 'no INSERT privilege on the feature group, no ingestion');
RESET ROLE;

-- exact values: every value is the float4 of its JSON number, read
-- independently by PostgreSQL's own JSON parser
CREATE TEMP TABLE tap_expected AS
SELECT r->>'id' AS id,
       ARRAY(SELECT pg_catalog.jsonb_array_elements_text(r->'band_1')::real) AS band_1,
       ARRAY(SELECT pg_catalog.jsonb_array_elements_text(r->'band_2')::real) AS band_2,
       CASE WHEN r->>'inc_angle' = 'na' THEN NULL ELSE (r->>'inc_angle')::real END AS inc_angle,
       (r->>'is_iceberg')::smallint AS is_iceberg
  FROM pg_catalog.jsonb_array_elements(pg_read_file(:'small')::jsonb) AS r;
SELECT is((SELECT count(*) FROM tap_expected e JOIN iceml_fs.tap_ingest_1 f USING (id)
            WHERE f.band_1 = e.band_1 AND f.band_2 = e.band_2
              AND f.inc_angle IS NOT DISTINCT FROM e.inc_angle
              AND f.is_iceberg IS NOT DISTINCT FROM e.is_iceberg), 4::bigint,
          'all 4 records equal their JSON, value for value');
SELECT is((SELECT count(*) FROM iceml_fs.tap_ingest_1
            WHERE band_avg = ARRAY(SELECT (a + b) / 2::real FROM unnest(band_1, band_2) AS u(a, b))),
          7::bigint, 'band_avg is (band_1 + band_2) / 2 on every row');
SELECT is((SELECT count(*) FROM iceml.feature_group_commits
            WHERE feature_group = 'iceml_fs.tap_ingest_1'::regclass), 2::bigint,
          'one commit row per call');

-- SQLSTATEs of abort mode
SELECT throws_ok($$SELECT * FROM iceml.ingest_statoil('iceml_fs.tap_ingest_1', document => '[{"id":"x","band_1":[1]}]')$$,
                 '22P02', NULL, 'a short band: 22P02');
SELECT throws_ok($$SELECT * FROM iceml.ingest_statoil('iceml_fs.tap_ingest_1', document => '[{"id":"x"')$$,
                 '22P02', NULL, 'truncated JSON: 22P02');
SELECT throws_ok($$SELECT * FROM iceml.ingest_statoil('iceml_fs.tap_ingest_1', document => '[1]')$$,
                 '22P02', 'invalid Statoil record 0 (no id): the record is a JSON number, not an object',
                 'a record that is not an object: 22P02, naming the record');
SELECT throws_ok(format($$SELECT * FROM iceml.ingest_statoil('iceml_fs.tap_ingest_1', %L)$$, :'small'),
                 '23505', NULL, 'a row already in the group: 23505');
-- the first record of the fixture, under new ids
SELECT substr(pg_read_file(:'small'), 2, strpos(pg_read_file(:'small'), '},{"id":"s0001"') - 1) AS rec0 \gset
SELECT throws_ok(format($$SELECT * FROM iceml.ingest_statoil('iceml_fs.tap_ingest_1', document => %L)$$,
                        format('[%s,%s]', replace(:'rec0', 's0000', 't0000'), replace(:'rec0', 's0000', 't0000'))),
                 '23505', NULL, 'an id twice in the input: 23505');
SELECT throws_ok(format($$SELECT * FROM iceml.ingest_statoil('iceml_fs.tap_ingest_1', document => %L)$$,
                        replace(replace(:'rec0', 's0000', 't0001'), '"inc_angle":39.2345', '"inc_angle":70')),
                 '23514', NULL, 'an expectation failure: 23514');
SELECT throws_ok($$SELECT * FROM iceml.ingest_statoil('iceml_fs.tap_ingest_1', document => '[]', on_error => 'ignore')$$,
                 '22023', NULL, 'unknown on_error: 22023');
SELECT throws_ok($$SELECT * FROM iceml.ingest_statoil('iceml_fs.tap_ingest_1')$$,
                 '22023', NULL, 'neither path nor document: 22023');
SELECT throws_ok($$SELECT * FROM iceml.ingest_statoil('iceml_fs.tap_ingest_1', path => '/x', document => '[]')$$,
                 '22023', NULL, 'both path and document: 22023');
SELECT is((SELECT count(*) FROM iceml_fs.tap_ingest_1), 7::bigint, 'failed calls inserted nothing');

-- quarantine: the counts add up, and each role sees its own records
SET ROLE tap_ingest_user;
SELECT results_eq(format($$SELECT read, inserted, quarantined, read = inserted + quarantined
                            FROM iceml.ingest_statoil('iceml_fs.tap_ingest_1', document => %L, on_error => 'quarantine')$$,
                         :'bad_doc'),
                  $$VALUES (15::bigint, 3::bigint, 12::bigint, true)$$,
                  'quarantine: 15 read = 3 inserted + 12 quarantined');
SELECT is((SELECT count(*) FROM iceml.quarantine WHERE feature_group = 'iceml_fs.tap_ingest_1'::regclass),
          12::bigint, 'the user sees its 12 quarantined records');
SELECT is((SELECT array_agg(DISTINCT sqlstate ORDER BY sqlstate) FROM iceml.quarantine
            WHERE feature_group = 'iceml_fs.tap_ingest_1'::regclass),
          ARRAY['22P02', '23505', '23514'], 'bad JSON, duplicates and expectation failures are quarantined');
SELECT is((SELECT count(*) FROM iceml.quarantine
            WHERE feature_group = 'iceml_fs.tap_ingest_1'::regclass AND role = 'tap_ingest_user'::regrole),
          12::bigint, 'quarantined records carry the role that loaded them');
RESET ROLE;
SET ROLE tap_ingest_other;
SELECT is((SELECT count(*) FROM iceml.quarantine), 0::bigint, 'another user sees none of them');
RESET ROLE;
SELECT is((SELECT count(*) FROM iceml_fs.tap_ingest_1), 10::bigint, 'the 3 good records went in');

SELECT * FROM finish();
ROLLBACK;
