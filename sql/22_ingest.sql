--
-- iceml.ingest_statoil: the streaming loader of the Kaggle Statoil layout.
--
-- The fixtures are iceml's own (test/data/make_fixtures.py): every record has
-- the real 5625 values per band.  pg_regress exports the checkout's absolute
-- path, so that the server (which reads the path form) finds them.
--
\getenv abs_srcdir PG_ABS_SRCDIR
\set small_json :abs_srcdir '/test/data/statoil_small.json'
\set small_jsonl :abs_srcdir '/test/data/statoil_small.jsonl'
\set bad_json :abs_srcdir '/test/data/statoil_bad.json'
\set bad_jsonl :abs_srcdir '/test/data/statoil_bad.jsonl'

-- SQLSTATE and message of a statement that fails, in one line
CREATE FUNCTION pg_temp.sqlstate_of(stmt text) RETURNS text
LANGUAGE plpgsql AS $$
BEGIN
    EXECUTE stmt;
    RETURN 'no error';
EXCEPTION WHEN OTHERS THEN
    RETURN SQLSTATE || ': ' || SQLERRM;
END
$$;

-- A feature group in the Statoil layout, with band_avg (computed by the
-- loader) and one expectation: incidence angles of at most 50 degrees.
SELECT iceml.create_feature_group('ingest_statoil',
    '[{"name":"id","type":"text"},
      {"name":"band_1","type":"real[]"},
      {"name":"band_2","type":"real[]"},
      {"name":"inc_angle","type":"real"},
      {"name":"is_iceberg","type":"smallint"},
      {"name":"band_avg","type":"real[]"}]',
    ARRAY['id'],
    expectations => '[{"name":"angle_range","features":["inc_angle"],
                       "rules":[{"name":"HAS_MAX","level":"ERROR","max":50}]}]') AS fg;

-- 1. A JSON array (the layout of train.json), from a server file.  The
--    positional form follows API.md: (feature_group, path, on_error).
SELECT * FROM iceml.ingest_statoil('iceml_fs.ingest_statoil_1', :'small_json');

-- every field arrives: "na" angles are NULL, values are the float4 of the
-- JSON numbers (-27 is an integer in JSON, -2.5e1 an exponent), band_avg is
-- (band_1 + band_2) / 2, unknown keys are ignored
SELECT id, inc_angle, is_iceberg,
       array_length(band_1, 1) AS n1, array_length(band_2, 1) AS n2,
       band_1[1:3] AS band_1_head, band_1[12:13] AS int_and_exponent,
       band_avg[1] = (band_1[1] + band_2[1]) / 2 AS avg_ok
  FROM iceml_fs.ingest_statoil_1 ORDER BY id;

-- one commit row for the whole call: the load is one statement
SELECT operation, rows_inserted FROM iceml.feature_group_commits
 WHERE feature_group = 'iceml_fs.ingest_statoil_1'::regclass ORDER BY commit_id;

-- the group's statistics flag is on (the default): statistics follow the load
SELECT feature, kind, count FROM iceml.feature_statistics
 WHERE feature_group = 'iceml_fs.ingest_statoil_1'::regclass
   AND feature IN ('id', 'band_1', 'inc_angle') ORDER BY feature, kind;

-- 2. JSON lines (as test.json would be: no is_iceberg), named arguments,
--    blank lines, CRLF and leading blanks are fine
SELECT * FROM iceml.ingest_statoil(feature_group => 'iceml_fs.ingest_statoil_1',
                                   path => :'small_jsonl');
SELECT id, inc_angle, is_iceberg, array_length(band_2, 1) AS n2
  FROM iceml_fs.ingest_statoil_1 WHERE id LIKE 'l%' ORDER BY id;

-- 3. The document form: the same text sent as a value (what a client does,
--    see README.md for the psql recipe); an empty input or array is no record
CREATE TABLE ingest_copy (LIKE iceml_fs.ingest_statoil_1);
ALTER TABLE ingest_copy ADD PRIMARY KEY (id);
SELECT * FROM iceml.ingest_statoil('ingest_copy', document => pg_read_file(:'small_json'));
SELECT * FROM iceml.ingest_statoil('ingest_copy', document => pg_read_file(:'small_jsonl'),
                                   on_error => 'quarantine');
SELECT count(*) AS rows_equal FROM ingest_copy c JOIN iceml_fs.ingest_statoil_1 f USING (id)
 WHERE c.band_1 = f.band_1 AND c.band_2 = f.band_2 AND c.band_avg = f.band_avg
   AND c.inc_angle IS NOT DISTINCT FROM f.inc_angle
   AND c.is_iceberg IS NOT DISTINCT FROM f.is_iceberg;
SELECT * FROM iceml.ingest_statoil('ingest_copy', document => '');
SELECT * FROM iceml.ingest_statoil('ingest_copy', document => ' [ ] ');

-- the client recipe of README.md, run as an ordinary iceml user: psql reads
-- the file on the client (\lo_import) and the server gets it as one text
-- value (lo_get); no server file access is needed
CREATE ROLE ingest_regress_user;
GRANT iceml_user TO ingest_regress_user;
CREATE TABLE ingest_client (id text PRIMARY KEY, band_1 real[], band_2 real[],
                            inc_angle real, is_iceberg smallint);
ALTER TABLE ingest_client OWNER TO ingest_regress_user;
SET ROLE ingest_regress_user;
\lo_import :small_jsonl
SELECT * FROM iceml.ingest_statoil('ingest_client',
    document => convert_from(lo_get(:LASTOID), 'UTF8'));
SELECT lo_unlink(:LASTOID);
SELECT id, inc_angle, is_iceberg FROM ingest_client ORDER BY id;
RESET ROLE;
DROP TABLE ingest_client;
DROP ROLE ingest_regress_user;

-- a plain table with only the required columns: the others are not filled
CREATE TABLE ingest_minimal (id varchar(16) PRIMARY KEY, band_1 real[], band_2 real[]);
SELECT * FROM iceml.ingest_statoil('ingest_minimal', :'small_json');
SELECT id, array_length(band_1, 1) AS n1 FROM ingest_minimal ORDER BY id;

-- 4. Quarantine: the bad records are kept whole, the others go in, and the
--    counts add up (read = inserted + quarantined).  statoil_bad.json holds
--    a string in a band, a band that is not an array, a band of 5624 values,
--    NaN, -Infinity, an id twice in the file, a bad inc_angle, the id of a
--    row already loaded, an angle the expectation refuses, invalid JSON in
--    the middle, a label of 2 and a last record cut off by the end of file.
SELECT * FROM iceml.ingest_statoil('iceml_fs.ingest_statoil_1', :'bad_json', 'quarantine');
SELECT record_number, record_id, reason, sqlstate, raw_truncated,
       raw_bytes = octet_length(raw) AS raw_whole
  FROM iceml.quarantine
 WHERE feature_group = 'iceml_fs.ingest_statoil_1'::regclass ORDER BY record_number;
SELECT id FROM iceml_fs.ingest_statoil_1 WHERE id LIKE 'b%' ORDER BY id;
-- the quarantined text is the record as it was in the input
SELECT raw FROM iceml.quarantine
 WHERE feature_group = 'iceml_fs.ingest_statoil_1'::regclass AND raw_bytes < 100
 ORDER BY record_number;
SELECT (raw::jsonb)->>'inc_angle' AS angle FROM iceml.quarantine
 WHERE feature_group = 'iceml_fs.ingest_statoil_1'::regclass AND record_id = 'b010';

-- JSON lines: a line that ends inside its record, a record that is a number
SELECT * FROM iceml.ingest_statoil('ingest_copy', :'bad_jsonl', 'quarantine');
SELECT record_number, record_id, raw, reason FROM iceml.quarantine
 WHERE feature_group = 'ingest_copy'::regclass ORDER BY record_number;

-- records that are not objects, or miss their fields
SELECT * FROM iceml.ingest_statoil('ingest_copy',
    document => '[1, "two", null, true, {"id": 5}, {"band_1": []}, {"id": "a", "band_1": {}}]',
    on_error => 'quarantine');
SELECT record_number, record_id, raw, reason FROM iceml.quarantine
 WHERE feature_group = 'ingest_copy'::regclass AND record_number < 7 AND raw_bytes < 40
 ORDER BY id DESC LIMIT 7;

-- 5. Abort (the default): the first bad record fails the call, naming the
--    record (numbered from 0) and its id; nothing is inserted
SELECT count(*) AS rows_before FROM iceml_fs.ingest_statoil_1;
SELECT * FROM iceml.ingest_statoil('iceml_fs.ingest_statoil_1', :'bad_json');
SELECT * FROM iceml.ingest_statoil('ingest_copy', :'bad_jsonl');
-- record 0 of statoil_bad.json is good, record 1 is not: the table stays empty
TRUNCATE ingest_copy;
SELECT * FROM iceml.ingest_statoil('ingest_copy', :'bad_json');
SELECT count(*) AS rows_after_abort FROM ingest_copy;
-- an expectation failure, raised by the feature group's trigger, names the
-- record in its context (the record re-sent from the quarantine)
SELECT * FROM iceml.ingest_statoil('iceml_fs.ingest_statoil_1',
    document => (SELECT raw FROM iceml.quarantine WHERE record_id = 'b010'));
-- a duplicate of an existing row
SELECT * FROM iceml.ingest_statoil('iceml_fs.ingest_statoil_1', :'small_json');
SELECT count(*) AS rows_after FROM iceml_fs.ingest_statoil_1;

-- each bad record on its own, with its SQLSTATE
SELECT r.n, pg_temp.sqlstate_of(format(
         'SELECT * FROM iceml.ingest_statoil(%L, document => %L)',
         'iceml_fs.ingest_statoil_1', r.raw)) AS error
  FROM (SELECT record_number AS n, raw FROM iceml.quarantine
         WHERE feature_group = 'iceml_fs.ingest_statoil_1'::regclass) r
 ORDER BY r.n;

-- the same without the parse thread (iceml.ingest_parse_thread = off: the
-- backend parses on demand): the same records, the same outcome
SET iceml.ingest_parse_thread = off;
TRUNCATE ingest_copy;
SELECT * FROM iceml.ingest_statoil('ingest_copy', :'small_json');
SELECT * FROM iceml.ingest_statoil('ingest_copy', :'bad_json', 'quarantine');
SELECT record_number, record_id, sqlstate FROM iceml.quarantine
 WHERE feature_group = 'ingest_copy'::regclass AND record_number > 7 ORDER BY id DESC LIMIT 5;
SELECT * FROM iceml.ingest_statoil('ingest_copy', document => '[{"id":"x"}] junk', on_error => 'quarantine');
RESET iceml.ingest_parse_thread;

-- 6. Inputs whose structure is broken end the call in both modes
SELECT * FROM iceml.ingest_statoil('ingest_copy', document => '[{"id":"x"}', on_error => 'quarantine');
SELECT * FROM iceml.ingest_statoil('ingest_copy', document => '[{"id":"x"}] junk', on_error => 'quarantine');
SELECT * FROM iceml.ingest_statoil('ingest_copy', document => '[{"id":"x"} {"id":"y"}]', on_error => 'quarantine');
SELECT * FROM iceml.ingest_statoil('ingest_copy', document => '[{"id":"x"},]', on_error => 'quarantine');
-- a record that never ends (one enormous string, or a line or value of
-- bytes that are not JSON) is refused after 16 MB, in both layouts and
-- both modes, instead of being read or skipped forever
SELECT * FROM iceml.ingest_statoil('ingest_copy',
    document => '{"id":"' || repeat('x', 17 * 1024 * 1024) || '"}');
SELECT * FROM iceml.ingest_statoil('ingest_copy',
    document => '[{"id":"' || repeat('x', 17 * 1024 * 1024) || '"}]', on_error => 'quarantine');
SELECT * FROM iceml.ingest_statoil('ingest_copy',
    document => '{"id":' || repeat('1', 17 * 1024 * 1024), on_error => 'quarantine');
SELECT * FROM iceml.ingest_statoil('ingest_copy',
    document => '[{' || repeat(' "a" : 1, ', 2 * 1024 * 1024), on_error => 'quarantine');
SET iceml.ingest_parse_thread = off;
SELECT * FROM iceml.ingest_statoil('ingest_copy',
    document => '{"id":"' || repeat('x', 17 * 1024 * 1024) || '"}', on_error => 'quarantine');
RESET iceml.ingest_parse_thread;

-- 6b. A JSON-lines document "null" is a bad record (a JSON null), not a
--     truncated one
DELETE FROM iceml.quarantine WHERE feature_group = 'ingest_copy'::regclass;
SELECT * FROM iceml.ingest_statoil('ingest_copy', document => 'null');
SELECT * FROM iceml.ingest_statoil('ingest_copy', document => E'null\n[]\n1', on_error => 'quarantine');
SELECT record_number, reason, sqlstate FROM iceml.quarantine
 WHERE feature_group = 'ingest_copy'::regclass ORDER BY record_number;
DELETE FROM iceml.quarantine WHERE feature_group = 'ingest_copy'::regclass;

-- 6c. Lone UTF-16 surrogates: json-c would turn both \ud800 and \udc00
--     into U+FFFD, so that two different ids collide; they are refused
--     (a pair is a character like any other, and an escaped backslash
--     followed by "ud800" is no escape: those two records fail only for their
--     missing bands)
SELECT * FROM iceml.ingest_statoil('ingest_copy', document => '{"id":"a\ud800"}');
SELECT * FROM iceml.ingest_statoil('ingest_copy', document => '[{"id":"a\udc00b"}]');
SELECT * FROM iceml.ingest_statoil('ingest_copy', document => '{"id":"\ud800\ud800\udc00"}');
SELECT * FROM iceml.ingest_statoil('ingest_copy',
    document => E'{"id":"s\\ud800"}\n{"id":"s\\udc00"}\n{"id":"s\\\\ud800"}\n{"id":"s\\ud83d\\ude00"}',
    on_error => 'quarantine');
SELECT record_number, reason, sqlstate FROM iceml.quarantine
 WHERE feature_group = 'ingest_copy'::regclass ORDER BY record_number;

-- 7. Bad arguments and targets
SELECT * FROM iceml.ingest_statoil('ingest_copy', document => '[]', on_error => 'skip');
SELECT * FROM iceml.ingest_statoil('ingest_copy');
SELECT * FROM iceml.ingest_statoil('ingest_copy', path => '/nonexistent/train.json', document => '[]');
SELECT * FROM iceml.ingest_statoil(NULL, document => '[]');
SELECT * FROM iceml.ingest_statoil('ingest_copy', '/nonexistent/train.json');
SELECT * FROM iceml.ingest_statoil('ingest_copy', '/');
-- devices (and FIFOs, sockets: test/tap/45_ingest_stop.pl) never end: refused
SELECT * FROM iceml.ingest_statoil('ingest_copy', '/dev/zero');
SELECT * FROM iceml.ingest_statoil('ingest_copy', '/dev/null', on_error => 'quarantine');
CREATE TABLE ingest_no_band_2 (id text, band_1 real[]);
SELECT * FROM iceml.ingest_statoil('ingest_no_band_2', document => '[]');
CREATE TABLE ingest_float8 (id text, band_1 real[], band_2 double precision[]);
SELECT * FROM iceml.ingest_statoil('ingest_float8', document => '[]');
CREATE TABLE ingest_label_text (id text, band_1 real[], band_2 real[], is_iceberg text);
SELECT * FROM iceml.ingest_statoil('ingest_label_text', document => '[]');
CREATE VIEW ingest_view AS SELECT * FROM ingest_copy;
SELECT * FROM iceml.ingest_statoil('ingest_view', document => '[]');
-- row-level security is refused, as COPY FROM refuses it
CREATE ROLE ingest_regress_owner;
GRANT iceml_user TO ingest_regress_owner;
CREATE TABLE ingest_rls (id text, band_1 real[], band_2 real[]);
ALTER TABLE ingest_rls OWNER TO ingest_regress_owner;
ALTER TABLE ingest_rls ENABLE ROW LEVEL SECURITY;
ALTER TABLE ingest_rls FORCE ROW LEVEL SECURITY;
SET ROLE ingest_regress_owner;
SELECT * FROM iceml.ingest_statoil('ingest_rls', document => '[]');
RESET ROLE;

DROP TABLE ingest_copy, ingest_minimal, ingest_no_band_2, ingest_float8,
           ingest_label_text, ingest_rls CASCADE;
DROP ROLE ingest_regress_owner;
