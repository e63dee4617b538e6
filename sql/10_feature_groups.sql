--
-- iceml feature groups: versioned tables, their catalog and commit history
--
\set SHOW_CONTEXT never

-- The Statoil feature group, with the original pipeline's expectations (id
-- complete, is_iceberg an Integral between 0 and 1) and the bands' shape.
SELECT iceml.create_feature_group(
    name         => 'statoil',
    features     => '[{"name":"id","type":"text"},
                      {"name":"band_1","type":"real[]"},
                      {"name":"band_2","type":"real[]"},
                      {"name":"inc_angle","type":"real"},
                      {"name":"is_iceberg","type":"smallint"}]',
    primary_key  => ARRAY['id'],
    description  => 'Statoil/C-CORE SAR chips, 75x75 in dB',
    expectations => '[{"name":"id_complete","features":["id"],
                       "rules":[{"name":"HAS_COMPLETENESS","level":"ERROR"}]},
                      {"name":"label_is_binary","features":["is_iceberg"],
                       "rules":[{"name":"HAS_MIN","level":"ERROR","min":0},
                                {"name":"HAS_MAX","level":"ERROR","max":1},
                                {"name":"HAS_DATATYPE","level":"ERROR","accepted_type":"Integral"}]},
                      {"name":"bands_shape","features":["band_1","band_2"],
                       "rules":[{"name":"HAS_LENGTH","level":"ERROR","value":5625},
                                {"name":"IS_FINITE","level":"ERROR"}]}]');

-- a real table, with a primary key and the four iceml triggers
\d+ iceml_fs.statoil_1

-- the catalog
SELECT name, version, "table", primary_key, features, validation, statistics, description,
       owner = current_user::regrole AS owned_by_me,
       jsonb_array_length(expectations) AS expectations
  FROM iceml.feature_groups ORDER BY name, version;

-- versions of one name coexist; version => NULL takes the next one
SELECT iceml.create_feature_group('statoil', '[{"name":"id","type":"text"},{"name":"x","type":"real"}]', ARRAY['id']);
SELECT iceml.create_feature_group('statoil', '[{"name":"id","type":"text"},{"name":"x","type":"real"}]', ARRAY['id'], version => 7);
SELECT iceml.create_feature_group('statoil', '[{"name":"id","type":"text"},{"name":"x","type":"real"}]', ARRAY['id']);
SELECT name, version, "table" FROM iceml.feature_groups WHERE name = 'statoil' ORDER BY version;

-- types go through PostgreSQL's parser and are written back canonically;
-- a composite primary key
SELECT iceml.create_feature_group('typed',
    '[{"name":"scene","type":"varchar(12)"},{"name":"chip","type":"int"},
      {"name":"t","type":"timestamp with time zone"},{"name":"w","type":"DOUBLE PRECISION"},
      {"name":"ok","type":"bool"},{"name":"tags","type":"text[]"},{"name":"amount","type":"numeric(8,2)"}]',
    ARRAY['scene', 'chip']);
SELECT features FROM iceml.feature_groups WHERE name = 'typed';

-- one commit row per writing statement: INSERT, UPDATE, DELETE and COPY
INSERT INTO iceml_fs.statoil_1
SELECT 'chip' || g, array_fill((-20 - g)::real, ARRAY[5625]), array_fill((-25 - g)::real, ARRAY[5625]),
       30 + g, (g % 2)::smallint
  FROM generate_series(1, 4) g;
UPDATE iceml_fs.statoil_1 SET inc_angle = 40 WHERE id IN ('chip1', 'chip2');
DELETE FROM iceml_fs.statoil_1 WHERE id = 'chip4';
INSERT INTO iceml_fs.statoil_1 (id, band_1, band_2, is_iceberg)
SELECT 'late' || g, array_fill(-21::real, ARRAY[5625]), array_fill(-26::real, ARRAY[5625]), 1
  FROM generate_series(1, 2) g;
-- statements that change nothing leave no commit, nor do rolled-back ones
DELETE FROM iceml_fs.statoil_1 WHERE id = 'nothing';
BEGIN;
INSERT INTO iceml_fs.statoil_1 (id, band_1, band_2, is_iceberg)
VALUES ('gone', array_fill(-21::real, ARRAY[5625]), array_fill(-26::real, ARRAY[5625]), 0);
ROLLBACK;
SELECT operation, rows_inserted, rows_updated, rows_deleted, committed_by = current_user AS by_me
  FROM iceml.feature_group_commits
 WHERE feature_group = 'iceml_fs.statoil_1'::regclass ORDER BY commit_id;
-- INSERT ... ON CONFLICT DO UPDATE fires the insert and the update triggers:
-- one commit row for the rows inserted, one for the rows updated
INSERT INTO iceml_fs.statoil_1 (id, band_1, band_2, is_iceberg)
SELECT id, array_fill(-22::real, ARRAY[5625]), array_fill(-27::real, ARRAY[5625]), 0
  FROM (VALUES ('chip1'), ('new1')) v(id)
    ON CONFLICT (id) DO UPDATE SET is_iceberg = EXCLUDED.is_iceberg;
SELECT operation, rows_inserted, rows_updated FROM iceml.feature_group_commits
 WHERE feature_group = 'iceml_fs.statoil_1'::regclass ORDER BY commit_id DESC LIMIT 2;
-- COPY is one statement, hence one commit
COPY iceml_fs.typed_1 (scene, chip, t, w, ok, tags, amount) FROM stdin;
S1	1	2017-01-01 10:00:00+00	0.5	t	{a,b}	12.50
S1	2	2017-01-01 10:00:01+00	0.25	f	{}	3
S2	1	\N	\N	\N	\N	\N
\.
SELECT operation, rows_inserted FROM iceml.feature_group_commits
 WHERE feature_group = 'iceml_fs.typed_1'::regclass ORDER BY commit_id;

-- Roles: an iceml_user creates and owns feature groups; another user cannot
-- write to them until granted; iceml_reader reads the catalog but cannot
-- create feature groups.
CREATE ROLE iceml_regress_alice IN ROLE iceml_user;
CREATE ROLE iceml_regress_bob IN ROLE iceml_user;
CREATE ROLE iceml_regress_reader IN ROLE iceml_reader;
SET ROLE iceml_regress_alice;
SELECT iceml.create_feature_group('alice_chips', '[{"name":"id","type":"text"},{"name":"x","type":"real"}]', ARRAY['id'],
    expectations => '[{"name":"x_min","features":["x"],"rules":[{"name":"HAS_MIN","min":0}]}]');
INSERT INTO iceml_fs.alice_chips_1 VALUES ('a', 1);
RESET ROLE;
SELECT tableowner FROM pg_tables WHERE schemaname = 'iceml_fs' AND tablename = 'alice_chips_1';
SET ROLE iceml_regress_bob;
INSERT INTO iceml_fs.alice_chips_1 VALUES ('b', 2);
SELECT iceml.set_validation('iceml_fs.alice_chips_1', 'NONE');
SELECT iceml.drop_feature_group('iceml_fs.alice_chips_1');
RESET ROLE;
SET ROLE iceml_regress_reader;
SELECT iceml.create_feature_group('reader_chips', '[{"name":"id","type":"text"}]', ARRAY['id']);
SELECT name, version FROM iceml.feature_groups WHERE name = 'alice_chips';
SELECT count(*) > 0 AS reader_sees_commits FROM iceml.feature_group_commits;
RESET ROLE;
-- granted INSERT, bob writes through the same checks, and is named in the commit
SET ROLE iceml_regress_alice;
GRANT INSERT ON iceml_fs.alice_chips_1 TO iceml_regress_bob;
RESET ROLE;
SET ROLE iceml_regress_bob;
INSERT INTO iceml_fs.alice_chips_1 VALUES ('b', 2);
INSERT INTO iceml_fs.alice_chips_1 VALUES ('c', -1);
RESET ROLE;
SELECT committed_by, rows_inserted FROM iceml.feature_group_commits
 WHERE feature_group = 'iceml_fs.alice_chips_1'::regclass ORDER BY commit_id;

-- drop_feature_group removes the table and its catalog rows
SET ROLE iceml_regress_alice;
SELECT iceml.drop_feature_group('iceml_fs.alice_chips_1');
RESET ROLE;
SELECT to_regclass('iceml_fs.alice_chips_1') AS table_left,
       (SELECT count(*) FROM iceml.feature_groups WHERE name = 'alice_chips') AS catalog_rows_left;
DROP ROLE iceml_regress_alice, iceml_regress_bob, iceml_regress_reader;

-- pg_dump keeps the catalog rows: every catalog table and sequence is a
-- configuration table of the extension
SELECT c.relname
  FROM pg_extension e, unnest(e.extconfig) AS x(oid) JOIN pg_class c ON c.oid = x.oid
 WHERE e.extname = 'iceml' AND c.relname ~ '^(feature|validations|training)'
 ORDER BY 1;

--
-- Malformed arguments, each refused with its own error (SQLSTATE 22023
-- unless said otherwise) and nothing created
--
SELECT iceml.create_feature_group(NULL, '[{"name":"id","type":"text"}]', ARRAY['id']);
SELECT iceml.create_feature_group('Statoil', '[{"name":"id","type":"text"}]', ARRAY['id']);
SELECT iceml.create_feature_group('1chips', '[{"name":"id","type":"text"}]', ARRAY['id']);
SELECT iceml.create_feature_group('chips; DROP TABLE x', '[{"name":"id","type":"text"}]', ARRAY['id']);
SELECT iceml.create_feature_group(repeat('a', 49), '[{"name":"id","type":"text"}]', ARRAY['id']);
SELECT iceml.create_feature_group('chips', NULL, ARRAY['id']);
SELECT iceml.create_feature_group('chips', '{"name":"id","type":"text"}', ARRAY['id']);
SELECT iceml.create_feature_group('chips', '[]', ARRAY['id']);
SELECT iceml.create_feature_group('chips', '["id"]', ARRAY['id']);
SELECT iceml.create_feature_group('chips', '[{"type":"text"}]', ARRAY['id']);
SELECT iceml.create_feature_group('chips', '[{"name":"id","type":"text"},{"name":"Band 1","type":"real[]"}]', ARRAY['id']);
SELECT iceml.create_feature_group('chips', '[{"name":"id","type":"text"},{"name":"x\"); DROP TABLE y; --","type":"real"}]', ARRAY['id']);
SELECT iceml.create_feature_group('chips', '[{"name":"id","type":"text"},{"name":"ctid","type":"real"}]', ARRAY['id']);
SELECT iceml.create_feature_group('chips', '[{"name":"id","type":"text"},{"name":"id","type":"real"}]', ARRAY['id']);
SELECT iceml.create_feature_group('chips', '[{"name":"id","type":"text"},{"name":"x"}]', ARRAY['id']);
SELECT iceml.create_feature_group('chips', '[{"name":"id","type":"text"},{"name":"x","type":"flaot"}]', ARRAY['id']);
SELECT iceml.create_feature_group('chips', '[{"name":"id","type":"text"},{"name":"x","type":"real); DROP TABLE y; --"}]', ARRAY['id']);
SELECT iceml.create_feature_group('chips', '[{"name":"id","type":"text"},{"name":"x","type":"int int"}]', ARRAY['id']);
SELECT iceml.create_feature_group('chips', '[{"name":"id","type":"text"},{"name":"x","type":"point"}]', ARRAY['id']);
SELECT iceml.create_feature_group('chips', '[{"name":"id","type":"text"},{"name":"x","type":"json"}]', ARRAY['id']);
SELECT iceml.create_feature_group('chips', '[{"name":"id","type":"text"},{"name":"x","type":"real","unit":"dB"}]', ARRAY['id']);
SELECT iceml.create_feature_group('chips', '[{"name":"id","type":"text"}]', NULL);
SELECT iceml.create_feature_group('chips', '[{"name":"id","type":"text"}]', ARRAY[]::text[]);
SELECT iceml.create_feature_group('chips', '[{"name":"id","type":"text"}]', ARRAY['key']);
SELECT iceml.create_feature_group('chips', '[{"name":"id","type":"text"}]', ARRAY['id', 'id']);
SELECT iceml.create_feature_group('chips', '[{"name":"id","type":"text"}]', ARRAY['id', NULL]);
SELECT iceml.create_feature_group('chips', '[{"name":"id","type":"text"},{"name":"b","type":"real[]"}]', ARRAY['b']);
SELECT iceml.create_feature_group('chips', '[{"name":"id","type":"text"}]', ARRAY['id'], version => 0);
SELECT iceml.create_feature_group('statoil', '[{"name":"id","type":"text"}]', ARRAY['id'], version => 1);
-- the largest version: the next create without a version says so clearly
SELECT iceml.create_feature_group('maxver', '[{"name":"id","type":"text"}]', ARRAY['id'], version => 2147483647);
SELECT iceml.create_feature_group('maxver', '[{"name":"id","type":"text"}]', ARRAY['id']);
SELECT iceml.drop_feature_group('iceml_fs.maxver_2147483647');
SELECT iceml.create_feature_group('chips', '[{"name":"id","type":"text"}]', ARRAY['id'], validation => 'LOOSE');
SELECT iceml.create_feature_group('chips', '[{"name":"id","type":"text"}]', ARRAY['id'], validation => NULL);
SELECT iceml.create_feature_group('chips', '[{"name":"id","type":"text"}]', ARRAY['id'], statistics => NULL);
SELECT count(*) AS nothing_created FROM pg_tables WHERE schemaname = 'iceml_fs' AND tablename LIKE 'chips%';
SELECT iceml.drop_feature_group(NULL);
SELECT iceml.drop_feature_group('pg_class');
SELECT iceml.drop_feature_group('iceml_fs.statoil_2', NULL);
SELECT iceml.set_validation('iceml_fs.statoil_2', 'LOOSE');
SELECT iceml.set_validation(NULL, 'STRICT');
SELECT iceml.drop_expectation('iceml_fs.statoil_1', 'no_such_expectation');
SELECT iceml.drop_expectation('iceml_fs.statoil_1', NULL);
SELECT iceml.add_expectation('iceml_fs.statoil_1', NULL);
SELECT iceml.add_expectation('pg_class', '{"name":"x","features":["relname"],"rules":[{"name":"IS_FINITE"}]}');

-- clean up the versions made above
SELECT iceml.drop_feature_group(fg."table") FROM iceml.feature_groups fg
 WHERE fg.name IN ('typed') OR (fg.name = 'statoil' AND fg.version > 1);
