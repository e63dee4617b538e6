--
-- iceml scale-out: nodes (postgres_fdw servers) and sharded feature groups.
-- The nodes here are two other databases of this same server (loopback);
-- test/tap/80_shard.pl runs a coordinator and two node clusters.
--
\set SHOW_CONTEXT never
\set VERBOSITY terse

-- where this server listens: the nodes' connection strings
SELECT format('host=%s port=%s', current_setting('unix_socket_directories'),
              current_setting('port')) AS here, current_database() AS regdb \gset
SET client_min_messages = warning;
DROP DATABASE IF EXISTS iceml_regress_node_a;
DROP DATABASE IF EXISTS iceml_regress_node_b;
RESET client_min_messages;
CREATE DATABASE iceml_regress_node_a;
CREATE DATABASE iceml_regress_node_b;
\c iceml_regress_node_a
CREATE EXTENSION iceml;
\c iceml_regress_node_b
CREATE EXTENSION iceml;
\c :regdb
\set VERBOSITY terse
\set SHOW_CONTEXT never

-- ---- nodes -----------------------------------------------------------
-- postgres_fdw must be installed first
SELECT iceml.add_node('a', :'here' || ' dbname=iceml_regress_node_a');
CREATE EXTENSION postgres_fdw;

-- bad arguments
SELECT iceml.add_node(NULL, 'dbname=x');
SELECT iceml.add_node('a', NULL);
SELECT iceml.add_node('Node-A', 'dbname=x');
SELECT iceml.add_node('a', 'this is not a conninfo');
SELECT iceml.add_node('a', 'dbname=x options=-cwork_mem=1MB');
SELECT iceml.add_node('a', 'dbname=x nosuchoption=1');
-- no server there
SELECT iceml.add_node('a', 'host=/nonexistent port=1 dbname=x');
-- a database without iceml
SELECT iceml.add_node('a', :'here' || ' dbname=postgres');
-- a role that is not an iceml_user there
CREATE ROLE iceml_regress_node_nobody LOGIN;
SELECT iceml.add_node('a', :'here' || ' dbname=iceml_regress_node_a user=iceml_regress_node_nobody');
-- another iceml version there
\c iceml_regress_node_a
UPDATE pg_extension SET extversion = '0.0.1' WHERE extname = 'iceml';
\c :regdb
\set VERBOSITY terse
\set SHOW_CONTEXT never
SELECT iceml.add_node('a', :'here' || ' dbname=iceml_regress_node_a');
\c iceml_regress_node_a
UPDATE pg_extension SET extversion = '0.1.0' WHERE extname = 'iceml';
\c :regdb
\set VERBOSITY terse
\set SHOW_CONTEXT never
-- nothing of the failed calls remains
SELECT count(*) AS servers FROM pg_foreign_server WHERE srvname LIKE 'iceml_node_%';

-- only iceml_admin adds and drops nodes
CREATE ROLE iceml_regress_shard_user IN ROLE iceml_user;
SET ROLE iceml_regress_shard_user;
SELECT iceml.add_node('a', :'here' || ' dbname=iceml_regress_node_a');
SELECT iceml.drop_node('a');
RESET ROLE;

SELECT iceml.add_node('a', :'here' || ' dbname=iceml_regress_node_a');
SELECT iceml.add_node('b', :'here' || ' dbname=iceml_regress_node_b user=postgres');
SELECT iceml.add_node('a', :'here' || ' dbname=iceml_regress_node_a');
SELECT name, server, dbname, iceml_version, shards FROM iceml.nodes ORDER BY name;
-- the server holds where, the user mapping who; iceml's catalogs neither
SELECT srvname, array(SELECT o FROM unnest(srvoptions) o WHERE o !~ '^(host|port)=') AS srvoptions
  FROM pg_foreign_server WHERE srvname LIKE 'iceml_node_%' ORDER BY 1;
SELECT srvname, umoptions FROM pg_user_mappings WHERE srvname LIKE 'iceml_node_%' ORDER BY 1;
-- a password goes into the user mapping (shown to its owner only)
SELECT iceml.add_node('c', :'here' || ' dbname=iceml_regress_node_b password=secret');
SELECT umoptions FROM pg_user_mappings WHERE srvname = 'iceml_node_c';
SELECT count(*) AS secrets_in_catalogs FROM iceml.shard_nodes n WHERE n::text LIKE '%secret%';
SELECT count(*) AS secrets_in_view FROM iceml.nodes n WHERE n::text LIKE '%secret%';
SELECT count(*) AS secrets_in_server FROM pg_foreign_server s WHERE s::text LIKE '%secret%';
SET ROLE iceml_regress_shard_user;
SELECT umoptions FROM pg_user_mappings WHERE srvname = 'iceml_node_c';
RESET ROLE;
SELECT iceml.drop_node('c');

-- ---- sharded feature groups ------------------------------------------
\set features '[{"name":"id","type":"text"},{"name":"angle","type":"real"},{"name":"v","type":"real[]"},{"name":"tag","type":"text"}]'
\set rules '[{"name":"angle_max","features":["angle"],"rules":[{"name":"HAS_MAX","level":"ERROR","max":60}]}]'
SELECT iceml.create_feature_group('sharded', :'features', ARRAY['id'], shards => 0);
SELECT iceml.create_feature_group('sharded', :'features', ARRAY['id'], shards => 3);
SELECT iceml.create_feature_group('sharded', :'features', ARRAY['id'], nodes => ARRAY['a', 'nope']);
SELECT iceml.create_feature_group('sharded', :'features', ARRAY['id'], nodes => ARRAY['a', 'a']);
SELECT iceml.create_feature_group('sharded', :'features', ARRAY['id'], nodes => ARRAY[]::text[]);
SELECT iceml.create_feature_group('sharded', :'features', ARRAY['id'], shards => 1, nodes => ARRAY['a', 'b']);
-- a node that already has the group: nothing is created anywhere
\c iceml_regress_node_b
SELECT iceml.create_feature_group('sharded', '[{"name":"id","type":"text"}]', ARRAY['id']);
\c :regdb
\set VERBOSITY terse
\set SHOW_CONTEXT never
SELECT iceml.create_feature_group('sharded', :'features', ARRAY['id'], shards => 2);
SELECT count(*) FROM iceml.feature_groups WHERE name = 'sharded';
\c iceml_regress_node_a
SELECT count(*) AS groups_on_a FROM iceml.feature_groups WHERE name = 'sharded';
SELECT iceml.drop_feature_group('iceml_fs.sharded_1');
\c iceml_regress_node_b
SELECT iceml.drop_feature_group('iceml_fs.sharded_1');
\c :regdb
\set VERBOSITY terse
\set SHOW_CONTEXT never

-- created by an iceml_user, over both nodes
SET ROLE iceml_regress_shard_user;
SELECT iceml.create_feature_group('sharded', :'features', ARRAY['id'], expectations => :'rules',
                                  shards => 2);
\d iceml_fs.sharded_1
SELECT s.shard, s.shards, s.node, s."partition", s.remote_table FROM iceml.shards s
  JOIN iceml.feature_groups g ON g.id = s.feature_group_id WHERE g.name = 'sharded' ORDER BY s.shard;
SELECT c.relname, pg_get_userbyid(c.relowner) AS owner FROM pg_class c
 WHERE c.relname LIKE 'sharded_1%' ORDER BY 1;
-- every row goes to the node its key hashes to
INSERT INTO iceml_fs.sharded_1
SELECT 'c' || g, g % 50, ARRAY[g, g * 0.5, g % 7]::real[], 't' || (g % 5) FROM generate_series(1, 200) g;
COPY iceml_fs.sharded_1 FROM stdin;
copy1	10	{1,2,3}	tx
copy2	20	{4,5,6}	ty
\.
SELECT s.node, count(*) FROM iceml_fs.sharded_1 t JOIN iceml.shards s ON s."partition" = t.tableoid
 GROUP BY s.node ORDER BY s.node;
-- a row refused by its node's expectations is refused, the node named;
-- nothing of the statement is written on either node
INSERT INTO iceml_fs.sharded_1 VALUES ('ok1', 1, '{1}', 'x'), ('bad', 100, '{1}', 'x'), ('ok2', 2, '{1}', 'x');
COPY iceml_fs.sharded_1 FROM stdin;
ok3	1	{1}	x
bad	100	{1}	x
\.
SELECT count(*) FROM iceml_fs.sharded_1;
-- expectation changes on the coordinator reach every node's group
SELECT jsonb_array_length(iceml.add_expectation('iceml_fs.sharded_1',
    '{"name":"tag_short","features":["tag"],"rules":[{"name":"HAS_LENGTH","level":"ERROR","max":3}]}'));
INSERT INTO iceml_fs.sharded_1 VALUES ('long1', 1, '{1}', 'toolong'), ('long2', 1, '{1}', 'toolong'),
                                      ('long3', 1, '{1}', 'toolong'), ('long4', 1, '{1}', 'toolong');
SELECT iceml.set_validation('iceml_fs.sharded_1', 'warning');
SELECT jsonb_array_length(iceml.drop_expectation('iceml_fs.sharded_1', 'tag_short'));
SELECT iceml.add_expectation('iceml_fs.sharded_1', '{"name":"bad"}');
RESET ROLE;
\c iceml_regress_node_b
SELECT validation, expectations->-1->>'name' AS last_expectation FROM iceml.feature_groups WHERE name = 'sharded';
\c :regdb
SET ROLE iceml_regress_shard_user;
SELECT iceml.set_validation('iceml_fs.sharded_1', 'STRICT');
RESET ROLE;
\c iceml_regress_node_a
SELECT count(*) AS rows_on_a FROM iceml_fs.sharded_1;
SELECT pg_get_userbyid(relowner) AS owner_on_a FROM pg_class WHERE relname = 'sharded_1';
SELECT expectations->0->>'name' AS expectation_on_a FROM iceml.feature_groups WHERE name = 'sharded';
\c :regdb
\set VERBOSITY terse
\set SHOW_CONTEXT never

-- statistics merged from the nodes equal one server's over the same rows
SELECT iceml.create_feature_group('unsharded', :'features', ARRAY['id']);
INSERT INTO iceml_fs.unsharded_1 SELECT * FROM iceml_fs.sharded_1;
SET ROLE iceml_regress_shard_user;
SELECT iceml.compute_statistics('iceml_fs.sharded_1');
RESET ROLE;
SELECT iceml.compute_statistics('iceml_fs.unsharded_1');
SELECT a.feature, a.kind, a.count, a.count = b.count AS count_eq,
       a.completeness = b.completeness AS completeness_eq,
       a.min IS NOT DISTINCT FROM b.min AND a.max IS NOT DISTINCT FROM b.max AS range_eq,
       abs(a.mean - b.mean) <= 1e-12 * greatest(abs(b.mean), 1) AS mean_eq,
       abs(a.stddev - b.stddev) <= 1e-12 * greatest(b.stddev, 1) AS stddev_eq,
       a.approx_distinct = b.approx_distinct AS distinct_eq,
       a.histogram->'counts' IS NOT DISTINCT FROM b.histogram->'counts' AS histogram_eq,
       (a.histogram->>'lo')::float8 IS NOT DISTINCT FROM (b.histogram->>'lo')::float8
       AND (a.histogram->>'hi')::float8 IS NOT DISTINCT FROM (b.histogram->>'hi')::float8 AS bounds_eq,
       a.commit_id IS NULL AS no_commit
  FROM iceml.feature_statistics a
  JOIN iceml.feature_statistics b USING (feature, kind)
 WHERE a.feature_group = 'iceml_fs.sharded_1'::regclass AND b.feature_group = 'iceml_fs.unsharded_1'::regclass
 ORDER BY a.id;
-- the nodes' summaries are for iceml roles that may read the group
SELECT iceml.shard_statistics('iceml_fs.sharded_1');
SELECT iceml.shard_statistics('pg_class');
SELECT * FROM iceml.shard_histogram('iceml_fs.unsharded_1', ARRAY['tag'], ARRAY['value'], '{0}', '{1}');
SELECT * FROM iceml.shard_histogram('iceml_fs.unsharded_1', ARRAY['angle'], ARRAY['value', 'value'], '{0}', '{1}');
SELECT * FROM iceml.shard_histogram('iceml_fs.unsharded_1', ARRAY['angle'], ARRAY['value'], '{0}', '{49}');

-- a node with shards is not dropped; dropping the group drops the nodes' groups
SELECT iceml.drop_node('a');
SELECT iceml.drop_node('nope');
-- node b lost its group (rebuilt, restored without it): the coordinator's
-- group still drops, with a warning naming the node
\c iceml_regress_node_b
SELECT iceml.drop_feature_group('iceml_fs.sharded_1', cascade => true);
\c :regdb
\set VERBOSITY terse
\set SHOW_CONTEXT never
SET ROLE iceml_regress_shard_user;
SELECT iceml.drop_feature_group('iceml_fs.sharded_1');
RESET ROLE;
SELECT count(*) AS foreign_tables FROM pg_foreign_table;
\c iceml_regress_node_a
SELECT count(*) AS groups_on_a FROM iceml.feature_groups WHERE name = 'sharded';
\c :regdb
\set VERBOSITY terse
\set SHOW_CONTEXT never
SELECT iceml.drop_node('a');
SELECT iceml.drop_node('b');
SELECT * FROM iceml.nodes;
SELECT count(*) AS servers FROM pg_foreign_server WHERE srvname LIKE 'iceml_node_%';

SELECT iceml.drop_feature_group('iceml_fs.unsharded_1');
DROP ROLE iceml_regress_shard_user;
DROP ROLE iceml_regress_node_nobody;
SET client_min_messages = warning;
DROP DATABASE iceml_regress_node_a;
DROP DATABASE iceml_regress_node_b;
