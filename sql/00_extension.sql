--
-- iceml: the extension installs, reports the libraries it is linked with,
-- sets up its roles and GUCs, and drops cleanly.
--
CREATE EXTENSION iceml;

-- the library version, with the OpenBLAS and json-c builds it really links
SELECT iceml.version() ~ '^iceml 0\.1\.0 \(OpenBLAS [0-9.]+ .*; json-c [0-9.]+\)$' AS version_ok;

-- schemas: the API and catalog, feature groups, training datasets
SELECT nspname FROM pg_namespace WHERE nspname LIKE 'iceml%' ORDER BY 1;

-- roles: iceml_admin > iceml_user > iceml_reader
SELECT rolname, rolcanlogin FROM pg_roles WHERE rolname IN ('iceml_admin', 'iceml_user', 'iceml_reader') ORDER BY 1;
SELECT pg_has_role('iceml_admin', 'iceml_user', 'MEMBER') AS admin_is_user,
       pg_has_role('iceml_user', 'iceml_reader', 'MEMBER') AS user_is_reader,
       pg_has_role('iceml_reader', 'iceml_user', 'MEMBER') AS reader_is_user;

-- GUCs live under the reserved prefix iceml.
SELECT name, setting, context, min_val, max_val
  FROM pg_settings WHERE name LIKE 'iceml.%' ORDER BY 1;

-- bad settings are refused
SET iceml.train_threads = 0;
SET iceml.log_inferences = 1.5;
SET iceml.max_workers = 2;
SET iceml.no_such_setting = 1;

-- PUBLIC cannot call into iceml; iceml_reader can
CREATE ROLE iceml_regress_nobody;
SET ROLE iceml_regress_nobody;
SELECT iceml.version();
RESET ROLE;
SET ROLE iceml_reader;
SELECT iceml.version() IS NOT NULL AS reader_can_call;
RESET ROLE;
DROP ROLE iceml_regress_nobody;

-- DROP EXTENSION removes everything it created (the roles are cluster-wide
-- and stay), and the extension can be created again
DROP EXTENSION iceml;
SELECT count(*) AS schemas_left FROM pg_namespace WHERE nspname LIKE 'iceml%';
SELECT count(*) AS functions_left FROM pg_proc
 WHERE proname LIKE 'iceml%' OR pronamespace::regnamespace::text LIKE 'iceml%';
SELECT count(*) AS roles_kept FROM pg_roles WHERE rolname IN ('iceml_admin', 'iceml_user', 'iceml_reader');
CREATE EXTENSION iceml;
SELECT iceml.version() IS NOT NULL AS recreated;
