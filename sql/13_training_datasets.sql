--
-- iceml training datasets: materialised, versioned tables with a
-- deterministic, label-stratified split column and their lineage
--
\set SHOW_CONTEXT never

SELECT iceml.create_feature_group('chips',
    '[{"name":"id","type":"text"},{"name":"band_1","type":"real[]"},{"name":"band_2","type":"real[]"},
      {"name":"inc_angle","type":"real"},{"name":"is_iceberg","type":"smallint"}]',
    ARRAY['id']);
-- 103 chips: 61 ships, 42 icebergs; 2 chips without a label are left out
INSERT INTO iceml_fs.chips_1
SELECT 'chip' || g, ARRAY[-g, -g]::real[], ARRAY[-g - 5, -g - 5]::real[], 30 + g % 15,
       CASE WHEN g > 103 THEN NULL WHEN g % 5 < 3 THEN 0 ELSE 1 END
  FROM generate_series(1, 105) g;

-- the default: all features but the label, 80/20, seed 42
SELECT iceml.create_training_dataset('icebergs', 'iceml_fs.chips_1', 'is_iceberg');
\d iceml_td.icebergs_1
SELECT split, is_iceberg, count(*) FROM iceml_td.icebergs_1 GROUP BY 1, 2 ORDER BY 1, 2;
SELECT name, version, "table", feature_group, feature_group_version,
       commit_id = (SELECT max(commit_id) FROM iceml.feature_group_commits
                     WHERE feature_group = 'iceml_fs.chips_1'::regclass) AS at_last_commit,
       seed, features, label, splits, row_counts, label_counts, owner = current_user::regrole AS owned_by_me
  FROM iceml.training_datasets ORDER BY name, version;

-- three splits, chosen features, another seed; every split's count per
-- label is within one row of exact
SELECT iceml.create_training_dataset('icebergs', 'iceml_fs.chips_1', 'is_iceberg',
    features => ARRAY['band_1', 'inc_angle'],
    splits => '{"train":0.7,"validation":0.15,"test":0.15}', seed => 7);
SELECT split, is_iceberg, count(*) FROM iceml_td.icebergs_2 GROUP BY 1, 2 ORDER BY 1, 2;
SELECT bool_and(abs(n - total * fraction) <= 1) AS within_one_row
  FROM (SELECT t.split, t.is_iceberg, count(*) AS n,
               sum(count(*)) OVER (PARTITION BY t.is_iceberg) AS total,
               ('{"train":0.7,"validation":0.15,"test":0.15}'::jsonb ->> t.split)::numeric AS fraction
          FROM iceml_td.icebergs_2 t GROUP BY 1, 2) s;
SELECT column_name FROM information_schema.columns
 WHERE table_schema = 'iceml_td' AND table_name = 'icebergs_2' ORDER BY ordinal_position;

-- deterministic: the same rows and seed give the same split ...
SELECT iceml.create_training_dataset('again', 'iceml_fs.chips_1', 'is_iceberg');
SELECT count(*) AS differences FROM (
    (SELECT id, split FROM iceml_td.icebergs_1 EXCEPT SELECT id, split FROM iceml_td.again_1)
    UNION ALL
    (SELECT id, split FROM iceml_td.again_1 EXCEPT SELECT id, split FROM iceml_td.icebergs_1)) d;
-- ... whatever the physical order of the rows ...
SELECT iceml.create_feature_group('chips', (SELECT features FROM iceml.feature_groups WHERE "table" = 'iceml_fs.chips_1'::regclass),
                                  ARRAY['id']);
INSERT INTO iceml_fs.chips_2 SELECT * FROM iceml_fs.chips_1 ORDER BY md5(id);
SELECT iceml.create_training_dataset('shuffled', 'iceml_fs.chips_2', 'is_iceberg');
SELECT count(*) AS differences FROM iceml_td.icebergs_1 a JOIN iceml_td.shuffled_1 b USING (id)
 WHERE a.split <> b.split;
-- ... and another seed another split
SELECT iceml.create_training_dataset('reseeded', 'iceml_fs.chips_1', 'is_iceberg', seed => 43);
SELECT count(*) > 0 AS differs FROM iceml_td.icebergs_1 a JOIN iceml_td.reseeded_1 b USING (id)
 WHERE a.split <> b.split;

-- versions: explicit, or the next one
SELECT iceml.create_training_dataset('icebergs', 'iceml_fs.chips_1', 'is_iceberg', version => 10);
SELECT iceml.create_training_dataset('icebergs', 'iceml_fs.chips_1', 'is_iceberg');

-- a feature group with training datasets is dropped only with cascade
SELECT iceml.drop_feature_group('iceml_fs.chips_2');
SELECT iceml.drop_feature_group('iceml_fs.chips_2', cascade => true);
SELECT to_regclass('iceml_td.shuffled_1') AS dataset_left,
       (SELECT count(*) FROM iceml.training_datasets WHERE name = 'shuffled') AS lineage_left;

--
-- Malformed arguments (SQLSTATE 22023 unless said otherwise)
--
SELECT iceml.create_training_dataset(NULL, 'iceml_fs.chips_1', 'is_iceberg');
SELECT iceml.create_training_dataset('Icebergs', 'iceml_fs.chips_1', 'is_iceberg');
SELECT iceml.create_training_dataset('td', NULL, 'is_iceberg');
SELECT iceml.create_training_dataset('td', 'pg_class', 'is_iceberg');
SELECT iceml.create_training_dataset('td', 'iceml_fs.chips_1', NULL);
SELECT iceml.create_training_dataset('td', 'iceml_fs.chips_1', 'label');
SELECT iceml.create_training_dataset('td', 'iceml_fs.chips_1', 'band_1');
SELECT iceml.create_training_dataset('td', 'iceml_fs.chips_1', 'is_iceberg', features => ARRAY[]::text[]);
SELECT iceml.create_training_dataset('td', 'iceml_fs.chips_1', 'is_iceberg', features => ARRAY['band_1', 'band_3']);
SELECT iceml.create_training_dataset('td', 'iceml_fs.chips_1', 'is_iceberg', features => ARRAY['band_1', NULL]);
SELECT iceml.create_training_dataset('td', 'iceml_fs.chips_1', 'is_iceberg', features => ARRAY['band_1', 'is_iceberg']);
SELECT iceml.create_training_dataset('td', 'iceml_fs.chips_1', 'is_iceberg', features => ARRAY['band_1', 'band_1']);
SELECT iceml.create_training_dataset('td', 'iceml_fs.chips_1', 'is_iceberg', splits => NULL);
SELECT iceml.create_training_dataset('td', 'iceml_fs.chips_1', 'is_iceberg', splits => '[0.8, 0.2]');
SELECT iceml.create_training_dataset('td', 'iceml_fs.chips_1', 'is_iceberg', splits => '{"fit":0.8,"test":0.2}');
SELECT iceml.create_training_dataset('td', 'iceml_fs.chips_1', 'is_iceberg', splits => '{"train":0.8,"test":0.3}');
SELECT iceml.create_training_dataset('td', 'iceml_fs.chips_1', 'is_iceberg', splits => '{"train":1.2,"test":-0.2}');
SELECT iceml.create_training_dataset('td', 'iceml_fs.chips_1', 'is_iceberg', splits => '{"train":1,"test":0}');
SELECT iceml.create_training_dataset('td', 'iceml_fs.chips_1', 'is_iceberg', splits => '{"train":"0.8","test":0.2}');
SELECT iceml.create_training_dataset('td', 'iceml_fs.chips_1', 'is_iceberg', splits => '{"train":0.8,"":0.2}');
SELECT iceml.create_training_dataset('td', 'iceml_fs.chips_1', 'is_iceberg', seed => NULL);
SELECT iceml.create_training_dataset('td', 'iceml_fs.chips_1', 'is_iceberg', version => -1);
SELECT iceml.create_training_dataset('icebergs', 'iceml_fs.chips_1', 'is_iceberg', version => 1);
SELECT iceml.create_feature_group('nothing', '[{"name":"id","type":"text"},{"name":"y","type":"smallint"}]', ARRAY['id']);
SELECT iceml.create_training_dataset('td', 'iceml_fs.nothing_1', 'y');
INSERT INTO iceml_fs.nothing_1 VALUES ('unlabelled', NULL);
SELECT iceml.create_training_dataset('td', 'iceml_fs.nothing_1', 'y');
SELECT iceml.create_feature_group('splitty', '[{"name":"id","type":"text"},{"name":"split","type":"text"},{"name":"y","type":"smallint"}]', ARRAY['id']);
INSERT INTO iceml_fs.splitty_1 VALUES ('a', 'x', 1);
SELECT iceml.create_training_dataset('td', 'iceml_fs.splitty_1', 'y');
SELECT count(*) AS nothing_created FROM iceml.training_datasets WHERE name = 'td';
SELECT iceml.drop_feature_group('iceml_fs.nothing_1');
SELECT iceml.drop_feature_group('iceml_fs.splitty_1');

-- ---- a role whose name needs quoting works as any other ------------------
-- (owners are set and stored by name, never by the quoted identifier)
SET client_min_messages = warning;
DROP ROLE IF EXISTS "Ice Analyst";
CREATE ROLE "Ice Analyst" IN ROLE iceml_user;
GRANT USAGE, CREATE ON SCHEMA public TO "Ice Analyst";
SET ROLE "Ice Analyst";
SELECT iceml.create_feature_group('quoted_owner', '[{"name":"id","type":"text"},{"name":"y","type":"smallint"}]', ARRAY['id']);
INSERT INTO iceml_fs.quoted_owner_1 SELECT 'r' || i, i % 2 FROM generate_series(1, 20) i;
SELECT iceml.create_training_dataset('quoted_owner', 'iceml_fs.quoted_owner_1', 'y');
SELECT iceml.create_architecture('quoted_owner_net', '{"input": [3, 75, 75], "layers": [{"type": "flatten"}, {"type": "dense", "units": 1}]}') IS NOT NULL AS created;
SELECT c.relname, c.relowner::regrole FROM pg_class c
 WHERE c.relname IN ('quoted_owner_1') AND c.relnamespace IN ('iceml_fs'::regnamespace, 'iceml_td'::regnamespace)
 ORDER BY c.relnamespace::regnamespace::text;
SELECT name, owner FROM iceml.architectures WHERE name = 'quoted_owner_net';
SELECT iceml.drop_feature_group('iceml_fs.quoted_owner_1', "cascade" => true);
RESET ROLE;
DELETE FROM iceml.architectures WHERE name = 'quoted_owner_net';
REVOKE USAGE, CREATE ON SCHEMA public FROM "Ice Analyst";
DROP ROLE "Ice Analyst";
