\echo Use "CREATE EXTENSION iceml" to load this file. \quit

-- iceml install script, assembled by the Makefile from sql/install/*.sql in
-- name order.  00 creates the schemas and roles every later part relies on.

CREATE SCHEMA iceml;
COMMENT ON SCHEMA iceml IS 'iceml management API and catalog';
-- feature group tables (iceml_fs.<name>_<version>) and training datasets
-- (iceml_td.<name>_<version>) live in schemas of their own
CREATE SCHEMA iceml_fs;
COMMENT ON SCHEMA iceml_fs IS 'iceml feature group tables';
CREATE SCHEMA iceml_td;
COMMENT ON SCHEMA iceml_td IS 'iceml training dataset tables';

-- Roles are cluster-wide: created once, kept by DROP EXTENSION (other
-- databases may use them).  iceml_admin > iceml_user > iceml_reader.
DO $roles$
BEGIN
    IF NOT EXISTS (SELECT FROM pg_catalog.pg_roles WHERE rolname OPERATOR(pg_catalog.=) 'iceml_reader') THEN
        CREATE ROLE iceml_reader NOLOGIN;
    END IF;
    IF NOT EXISTS (SELECT FROM pg_catalog.pg_roles WHERE rolname OPERATOR(pg_catalog.=) 'iceml_user') THEN
        CREATE ROLE iceml_user NOLOGIN;
    END IF;
    IF NOT EXISTS (SELECT FROM pg_catalog.pg_roles WHERE rolname OPERATOR(pg_catalog.=) 'iceml_admin') THEN
        CREATE ROLE iceml_admin NOLOGIN;
    END IF;
END
$roles$;
GRANT iceml_reader TO iceml_user;
GRANT iceml_user TO iceml_admin;

REVOKE ALL ON SCHEMA iceml, iceml_fs, iceml_td FROM PUBLIC;
GRANT USAGE ON SCHEMA iceml, iceml_fs, iceml_td TO iceml_reader;
-- iceml_user creates feature groups and training datasets through iceml's
-- functions, which create the tables as the calling role
GRANT CREATE ON SCHEMA iceml_fs, iceml_td TO iceml_user;

CREATE FUNCTION iceml.version() RETURNS text
    AS 'MODULE_PATHNAME', 'iceml_version'
    LANGUAGE C IMMUTABLE STRICT PARALLEL SAFE;
COMMENT ON FUNCTION iceml.version() IS
    'iceml library version with the linked OpenBLAS and json-c builds';
GRANT EXECUTE ON FUNCTION iceml.version() TO iceml_reader;
