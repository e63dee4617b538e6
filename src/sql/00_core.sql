\echo Use "CREATE EXTENSION iceml" to load this file. \quit

-- iceml install script, assembled by the Makefile from src/sql/*.sql in
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
-- Nobody but the catalog owner creates tables there: iceml's functions create
-- them and hand them to the caller, so no user can squat a name

CREATE FUNCTION iceml.version() RETURNS text
    AS 'MODULE_PATHNAME', 'iceml_version'
    LANGUAGE C IMMUTABLE STRICT PARALLEL SAFE;
COMMENT ON FUNCTION iceml.version() IS
    'iceml library version with the linked OpenBLAS and json-c builds';
GRANT EXECUTE ON FUNCTION iceml.version() TO iceml_reader;

-- ---- running as the catalog owner, on behalf of the caller (src/catalog.c)
-- The SQL functions that write iceml's catalogs are gates: C functions that
-- run the implementation iceml._<name> as the catalog owner with search_path
-- pinned to pg_catalog, pg_temp.  These three serve the implementations
-- only: like every other iceml._ function, no iceml role may execute them.
CREATE FUNCTION iceml._caller() RETURNS regrole
    AS 'MODULE_PATHNAME', 'iceml_caller'
    LANGUAGE C STABLE PARALLEL RESTRICTED;
COMMENT ON FUNCTION iceml._caller() IS
    'internal: the role on whose behalf iceml works (the caller of the outermost gate)';
CREATE FUNCTION iceml._caller_may_see(owner oid) RETURNS boolean
    AS 'MODULE_PATHNAME', 'iceml_caller_may_see'
    LANGUAGE C STABLE STRICT PARALLEL RESTRICTED;
COMMENT ON FUNCTION iceml._caller_may_see(oid) IS
    'internal: whether the caller may see catalog rows of that owner (the owner, its members, iceml_admin)';
CREATE FUNCTION iceml._as_caller(sql text) RETURNS jsonb
    AS 'MODULE_PATHNAME', 'iceml_as_caller'
    LANGUAGE C VOLATILE STRICT PARALLEL UNSAFE;
COMMENT ON FUNCTION iceml._as_caller(text) IS
    'internal: runs one statement of iceml''s as the calling role; returns the first column (jsonb) of its first row, or the number of rows it processed';
