-- iceml foundation: schemas, roles, privileges, GUCs, the version smoke test
BEGIN;
SELECT plan(18);

SELECT has_schema('iceml');
SELECT has_schema('iceml_fs');
SELECT has_schema('iceml_td');

SELECT has_role('iceml_admin');
SELECT has_role('iceml_user');
SELECT has_role('iceml_reader');
SELECT is_member_of('iceml_user', 'iceml_admin');
SELECT is_member_of('iceml_reader', 'iceml_user');

SELECT has_function('iceml', 'version', '{}'::name[]);
SELECT volatility_is('iceml', 'version', '{}'::name[], 'immutable');
SELECT matches(iceml.version(), '^iceml [0-9.]+ \(OpenBLAS ', 'version() names the linked OpenBLAS');
SELECT matches(iceml.version(), '; kernels (generic|avx2|avx512)[ ,].*OpenBLAS core [A-Za-z0-9]+',
               'version() names the engine''s kernel set and OpenBLAS core');

CREATE ROLE tap_nobody;
SELECT schema_privs_are('iceml', 'tap_nobody', '{}'::text[], 'PUBLIC has no access to schema iceml');
SELECT schema_privs_are('iceml', 'iceml_reader', ARRAY['USAGE'], 'iceml_reader may use schema iceml');
SELECT function_privs_are('iceml', 'version', '{}'::name[], 'tap_nobody', '{}'::text[],
                          'PUBLIC cannot execute iceml functions');

SELECT throws_ok($$SET iceml.train_threads = 0$$, '22023', NULL, 'iceml.train_threads refuses 0');
SELECT throws_ok($$SET iceml.log_inferences = 2$$, '22023', NULL, 'iceml.log_inferences refuses 2');
SELECT throws_ok($$SET iceml.typo = 1$$, '42602', NULL, 'the iceml. prefix is reserved');

SELECT * FROM finish();
ROLLBACK;
