-- iceml feature store: feature groups, expectations, commits, statistics,
-- training datasets, privileges
BEGIN;
SELECT plan(44);
SET client_min_messages = error;

-- functions and catalog
SELECT has_function('iceml', 'create_feature_group',
    ARRAY['text', 'jsonb', 'text[]', 'integer', 'text', 'jsonb', 'text', 'boolean', 'integer', 'text[]']);
SELECT has_function('iceml', 'create_training_dataset',
    ARRAY['text', 'regclass', 'text', 'text[]', 'jsonb', 'integer', 'integer']);
SELECT has_function('iceml', 'compute_statistics', ARRAY['regclass']);
SELECT has_table('iceml', 'feature_groups', 'catalog iceml.feature_groups');
SELECT has_table('iceml', 'feature_group_commits', 'catalog iceml.feature_group_commits');
SELECT has_table('iceml', 'validations', 'catalog iceml.validations');
SELECT has_table('iceml', 'feature_statistics', 'catalog iceml.feature_statistics');
SELECT has_table('iceml', 'training_datasets', 'catalog iceml.training_datasets');
SELECT set_eq(
    $$SELECT x::regclass::text FROM pg_extension e, unnest(e.extconfig) x WHERE e.extname = 'iceml'
       AND x::regclass::text ~ '^iceml\.(feature|validations|training)'$$,
    ARRAY['iceml.feature_groups', 'iceml.feature_groups_id_seq', 'iceml.feature_group_commits',
          'iceml.feature_group_commits_commit_id_seq', 'iceml.validations', 'iceml.validations_id_seq',
          'iceml.feature_statistics', 'iceml.feature_statistics_id_seq', 'iceml.training_datasets',
          'iceml.training_datasets_id_seq'],
    'every catalog table and sequence is registered with pg_extension_config_dump');

-- versions
SELECT is(iceml.create_feature_group('tap', '[{"name":"id","type":"text"},{"name":"band","type":"real[]"},{"name":"angle","type":"real"},{"name":"label","type":"smallint"}]',
          ARRAY['id'], expectations => '[{"name":"label_is_binary","features":["label"],"rules":[{"name":"HAS_MIN","min":0},{"name":"HAS_MAX","max":1}]},
                                          {"name":"band_ok","features":["band"],"rules":[{"name":"IS_FINITE"},{"name":"HAS_LENGTH","value":3}]}]')::text,
          'iceml_fs.tap_1', 'first version is tap_1');
SELECT is(iceml.create_feature_group('tap', '[{"name":"id","type":"text"}]', ARRAY['id'])::text,
          'iceml_fs.tap_2', 'version => NULL takes the next version');
SELECT is(iceml.create_feature_group('tap', '[{"name":"id","type":"text"}]', ARRAY['id'], version => 5)::text,
          'iceml_fs.tap_5', 'an explicit version');
SELECT throws_ok($$SELECT iceml.create_feature_group('tap', '[{"name":"id","type":"text"}]', ARRAY['id'], version => 2)$$,
                 '42P07', NULL, 'an existing (name, version) is refused');
SELECT results_eq($$SELECT version FROM iceml.feature_groups WHERE name = 'tap' ORDER BY version$$,
                  ARRAY[1, 2, 5], 'versions coexist');
SELECT throws_ok($$SELECT iceml.create_feature_group('tap', '[{"name":"id","type":"text; drop table x"}]', ARRAY['id'])$$,
                 '22023', NULL, 'a type with SQL in it is refused with 22023');
SELECT throws_ok($$SELECT iceml.create_feature_group('Tap', '[{"name":"id","type":"text"}]', ARRAY['id'])$$,
                 '22023', NULL, 'an unsafe name is refused with 22023');
SELECT throws_ok($$SELECT iceml.create_feature_group('tapx', '[{"name":"id","type":"text"}]', ARRAY['id'],
                   expectations => '[{"name":"e","features":["id"],"rules":[{"name":"HAS_MIN","min":0}]}]')$$,
                 '22023', 'invalid expectation at $[0].rules[0]: rule HAS_MIN does not fit feature "id" of type text (HAS_MIN needs a numeric feature or an array of numbers, see $[0].features[0])',
                 'a malformed expectation is refused with 22023 and its path');

-- row rules block with 23514, nothing of the statement written
INSERT INTO iceml_fs.tap_1 SELECT 'r' || g, ARRAY[g, -g, g * 2]::real[], 30 + g % 10, (g % 3 = 0)::int
  FROM generate_series(1, 300) g;
SELECT throws_ok($$INSERT INTO iceml_fs.tap_1 VALUES ('x1', '{1,2,3}', 30, 0), ('x2', '{1,NaN,3}', 30, 0)$$,
                 '23514', 'feature group "tap_1" rejected a row: expectation "band_ok" rule IS_FINITE failed on feature "band" at element 2 (value NaN) for id = ''x2''',
                 'a failed row rule raises 23514 naming group, expectation, rule, feature, element, value and key');
SELECT is((SELECT count(*) FROM iceml_fs.tap_1 WHERE id IN ('x1', 'x2')), 0::bigint, 'nothing of the blocked statement is written');
SELECT throws_ok($$UPDATE iceml_fs.tap_1 SET label = 2 WHERE id = 'r1'$$, '23514', NULL, 'UPDATE is checked too');

-- commits
UPDATE iceml_fs.tap_1 SET angle = angle + 1 WHERE label = 1;
DELETE FROM iceml_fs.tap_1 WHERE id IN ('r1', 'r2');
SELECT results_eq(
    $$SELECT operation, rows_inserted, rows_updated, rows_deleted FROM iceml.feature_group_commits
       WHERE feature_group = 'iceml_fs.tap_1'::regclass ORDER BY commit_id$$,
    $$VALUES ('INSERT', 300::bigint, 0::bigint, 0::bigint), ('UPDATE', 0, 100, 0), ('DELETE', 0, 0, 2)$$,
    'one commit row per writing statement with its row counts');

-- statistics against values computed independently in SQL
SELECT is(iceml.compute_statistics('iceml_fs.tap_1'), 298::bigint, 'compute_statistics returns the rows summarised');
SELECT ok((SELECT abs(s.mean - a.m) < 1e-9 AND abs(s.stddev - a.sd) < 1e-9 AND s.min = a.lo AND s.max = a.hi AND s.count = a.n
             FROM iceml.feature_statistics s,
                  (SELECT avg(angle) m, stddev(angle) sd, min(angle) lo, max(angle) hi, count(angle) n FROM iceml_fs.tap_1) a
            WHERE s.feature_group = 'iceml_fs.tap_1'::regclass AND s.feature = 'angle'),
          'scalar statistics match SQL');
SELECT ok((SELECT abs(s.mean - a.m) < 1e-6 AND abs(s.stddev - a.sd) < 1e-6 AND s.min = a.lo AND s.max = a.hi AND s.count = a.n
             FROM iceml.feature_statistics s,
                  (SELECT avg(x) m, stddev(x) sd, min(x) lo, max(x) hi, count(x) n FROM iceml_fs.tap_1, unnest(band) x) a
            WHERE s.feature_group = 'iceml_fs.tap_1'::regclass AND s.feature = 'band' AND s.kind = 'elements'),
          'array element statistics match SQL');
SELECT ok((SELECT abs(s.mean - a.m) < 1e-6 AND abs(s.stddev - a.sd) < 1e-6
             FROM iceml.feature_statistics s,
                  (SELECT avg(rm) m, stddev(rm) sd FROM (SELECT (SELECT avg(x) FROM unnest(band) x) rm FROM iceml_fs.tap_1) r) a
            WHERE s.feature_group = 'iceml_fs.tap_1'::regclass AND s.feature = 'band' AND s.kind = 'row_means'),
          'row-mean statistics match SQL');
SELECT ok((SELECT abs(s.approx_distinct - a.nd) <= 0.05 * a.nd
             FROM iceml.feature_statistics s, (SELECT count(DISTINCT x) nd FROM iceml_fs.tap_1, unnest(band) x) a
            WHERE s.feature_group = 'iceml_fs.tap_1'::regclass AND s.feature = 'band' AND s.kind = 'elements'),
          'approximate distinct count within 5%');
SELECT is((SELECT histogram->'counts' FROM iceml.feature_statistics
            WHERE feature_group = 'iceml_fs.tap_1'::regclass AND feature = 'label'),
          (SELECT jsonb_build_array(count(*) FILTER (WHERE label = 0), 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,
                                    count(*) FILTER (WHERE label = 1)) FROM iceml_fs.tap_1),
          'the 20-bin histogram of the label');
SELECT is((SELECT sum(c::bigint) FROM iceml.feature_statistics s, jsonb_array_elements_text(s.histogram->'counts') c
            WHERE s.feature_group = 'iceml_fs.tap_1'::regclass AND s.feature = 'band' AND s.kind = 'elements'),
          894::numeric, 'histogram counts sum to the values summarised');

-- training datasets: determinism and stratification
SELECT is(iceml.create_training_dataset('tap_td', 'iceml_fs.tap_1', 'label')::text, 'iceml_td.tap_td_1', 'training dataset tap_td_1');
SELECT is(iceml.create_training_dataset('tap_td', 'iceml_fs.tap_1', 'label')::text, 'iceml_td.tap_td_2', 'training dataset tap_td_2');
SELECT bag_eq('SELECT id, split FROM iceml_td.tap_td_1', 'SELECT id, split FROM iceml_td.tap_td_2',
              'same seed and rows: the same split');
DO $$ BEGIN
    PERFORM iceml.create_feature_group('tap', '[{"name":"id","type":"text"},{"name":"band","type":"real[]"},{"name":"angle","type":"real"},{"name":"label","type":"smallint"}]',
                                       ARRAY['id'], version => 9);
END $$;
INSERT INTO iceml_fs.tap_9 SELECT * FROM iceml_fs.tap_1 ORDER BY md5(id || 'shuffle');
SELECT isnt((SELECT array_agg(id) FROM (SELECT id FROM iceml_fs.tap_9 LIMIT 20) a),
            (SELECT array_agg(id) FROM (SELECT id FROM iceml_fs.tap_1 LIMIT 20) b), 'the copy is physically shuffled');
DO $$ BEGIN PERFORM iceml.create_training_dataset('tap_shuffled', 'iceml_fs.tap_9', 'label'); END $$;
SELECT bag_eq('SELECT id, split FROM iceml_td.tap_td_1', 'SELECT id, split FROM iceml_td.tap_shuffled_1',
              'shuffled physical order: the same split');
SELECT ok((SELECT bool_and(abs(n - total * CASE split WHEN 'train' THEN 0.8 ELSE 0.2 END) <= 1)
             FROM (SELECT split, label, count(*) n, sum(count(*)) OVER (PARTITION BY label) total
                     FROM iceml_td.tap_td_1 GROUP BY 1, 2) s),
          'stratified: each split within one row of exact for every label');
SELECT is((SELECT row_counts FROM iceml.training_datasets WHERE "table" = 'iceml_td.tap_td_1'::regclass),
          (SELECT jsonb_object_agg(split, n) FROM (SELECT split, count(*) n FROM iceml_td.tap_td_1 GROUP BY 1) s),
          'lineage records the row counts per split');
SELECT is((SELECT commit_id FROM iceml.training_datasets WHERE "table" = 'iceml_td.tap_td_1'::regclass),
          (SELECT max(commit_id) FROM iceml.feature_group_commits WHERE feature_group = 'iceml_fs.tap_1'::regclass),
          'lineage records the last commit of the feature group');
SELECT throws_ok($$SELECT iceml.create_training_dataset('tap_bad', 'iceml_fs.tap_1', 'label', splits => '{"train":0.5,"test":0.4}')$$,
                 '22023', NULL, 'splits that do not sum to 1 are refused');

-- drop and cascade
SELECT throws_ok($$SELECT iceml.drop_feature_group('iceml_fs.tap_1')$$, '2BP01', NULL,
                 'a feature group with training datasets is not dropped without cascade');
SELECT lives_ok($$SELECT iceml.drop_feature_group('iceml_fs.tap_1', cascade => true)$$, 'cascade drops it');
SELECT ok(to_regclass('iceml_td.tap_td_1') IS NULL AND to_regclass('iceml_fs.tap_1') IS NULL
          AND NOT EXISTS (SELECT FROM iceml.training_datasets WHERE name = 'tap_td')
          AND NOT EXISTS (SELECT FROM iceml.feature_group_commits WHERE feature_group_id NOT IN (SELECT id FROM iceml.feature_groups)),
          'tables, datasets and catalog rows are gone');

-- privileges
CREATE ROLE tap_owner IN ROLE iceml_user;
CREATE ROLE tap_other IN ROLE iceml_user;
CREATE ROLE tap_reader IN ROLE iceml_reader;
SET ROLE tap_owner;
DO $$ BEGIN PERFORM iceml.create_feature_group('tap_owned', '[{"name":"id","type":"text"}]', ARRAY['id']); END $$;
RESET ROLE;
SET ROLE tap_other;
SELECT throws_ok($$INSERT INTO iceml_fs.tap_owned_1 VALUES ('x')$$, '42501', NULL,
                 'a role without rights on a group cannot write to it');
SELECT throws_ok($$SELECT iceml.add_expectation('iceml_fs.tap_owned_1', '{"name":"e","features":["id"],"rules":[{"name":"HAS_COMPLETENESS"}]}')$$,
                 '42501', NULL, 'nor change its expectations');
RESET ROLE;
SET ROLE tap_reader;
SELECT throws_ok($$SELECT iceml.create_feature_group('tap_reader', '[{"name":"id","type":"text"}]', ARRAY['id'])$$,
                 '42501', NULL, 'iceml_reader cannot create a feature group');
SELECT ok((SELECT count(*) FROM iceml.feature_groups WHERE name = 'tap_owned') = 1, 'iceml_reader reads the catalog');
RESET ROLE;

SELECT * FROM finish();
ROLLBACK;
