
-- ====================================================================
-- 10: the feature store (API.md sections 1 and 2)
--
-- A feature group is a real table iceml_fs.<name>_<version>, owned by the
-- role that created it, registered in iceml.feature_groups.  Triggers in C
-- (src/featurestore/featurestore.c, src/featurestore/expectations.c) enforce its expectations for
-- INSERT, UPDATE and COPY and record one iceml.feature_group_commits row per
-- writing statement, and the findings of rules that did not block the write
-- in iceml.validations.  Training datasets are materialised tables
-- iceml_td.<name>_<version> with a split column, recorded with their lineage
-- in iceml.training_datasets.
-- ====================================================================

CREATE TABLE iceml.feature_groups (
    id           bigserial PRIMARY KEY,
    name         text NOT NULL,
    version      integer NOT NULL CHECK (version OPERATOR(pg_catalog.>) 0),
    "table"      regclass NOT NULL UNIQUE,
    primary_key  text[] NOT NULL,
    features     jsonb NOT NULL,
    expectations jsonb NOT NULL DEFAULT '[]',
    validation   text NOT NULL DEFAULT 'STRICT'
        CHECK (validation OPERATOR(pg_catalog.=) ANY (ARRAY['STRICT', 'WARNING', 'ALL', 'NONE'])),
    statistics   boolean NOT NULL DEFAULT true,
    description  text,
    owner        regrole NOT NULL DEFAULT (CURRENT_USER)::regrole,
    created      timestamptz NOT NULL DEFAULT pg_catalog.now(),
    UNIQUE (name, version)
);
COMMENT ON TABLE iceml.feature_groups IS
    'iceml feature groups: one row per version, with its table, primary key, features, expectations and validation mode';

CREATE TABLE iceml.feature_group_commits (
    commit_id        bigserial PRIMARY KEY,
    feature_group_id bigint NOT NULL REFERENCES iceml.feature_groups (id) ON DELETE CASCADE,
    feature_group    regclass NOT NULL,
    operation        text NOT NULL,
    rows_inserted    bigint NOT NULL DEFAULT 0,
    rows_updated     bigint NOT NULL DEFAULT 0,
    rows_deleted     bigint NOT NULL DEFAULT 0,
    committed_at     timestamptz NOT NULL DEFAULT pg_catalog.clock_timestamp(),
    committed_by     name NOT NULL
);
CREATE INDEX ON iceml.feature_group_commits (feature_group_id, commit_id);
COMMENT ON TABLE iceml.feature_group_commits IS
    'one row per statement that wrote to a feature group (INSERT, UPDATE, DELETE, COPY), kept by its statement triggers';

CREATE TABLE iceml.validations (
    id               bigserial PRIMARY KEY,
    feature_group_id bigint NOT NULL REFERENCES iceml.feature_groups (id) ON DELETE CASCADE,
    feature_group    regclass NOT NULL,
    commit_id        bigint REFERENCES iceml.feature_group_commits (commit_id) ON DELETE CASCADE,
    expectation      text NOT NULL,
    rule             text NOT NULL,
    feature          text NOT NULL,
    level            text NOT NULL,
    validation       text NOT NULL,
    status           text NOT NULL,
    failing_rows     bigint NOT NULL,
    failing_keys     text[],
    observed         text,
    validated_at     timestamptz NOT NULL DEFAULT pg_catalog.clock_timestamp()
);
CREATE INDEX ON iceml.validations (feature_group_id, commit_id);
COMMENT ON TABLE iceml.validations IS
    'findings of expectations that failed without blocking the write (WARNING level, or validation modes WARNING and ALL): rows failing, the first keys, the first or observed value';

CREATE TABLE iceml.feature_statistics (
    id               bigserial PRIMARY KEY,
    feature_group_id bigint NOT NULL REFERENCES iceml.feature_groups (id) ON DELETE CASCADE,
    feature_group    regclass NOT NULL,
    computed_at      timestamptz NOT NULL DEFAULT pg_catalog.clock_timestamp(),
    commit_id        bigint,
    feature          text NOT NULL,
    kind             text NOT NULL
        CHECK (kind OPERATOR(pg_catalog.=) ANY (ARRAY['value', 'elements', 'row_means'])),
    count            bigint NOT NULL,
    completeness     double precision,
    min              double precision,
    max              double precision,
    mean             double precision,
    stddev           double precision,
    approx_distinct  bigint,
    histogram        jsonb
);
CREATE INDEX ON iceml.feature_statistics (feature_group_id, computed_at);
COMMENT ON TABLE iceml.feature_statistics IS
    'per-feature summaries by iceml.compute_statistics: count, completeness, min, max, mean, stddev, approximate distinct count and a 20-bin equal-width histogram {lo, hi, counts}';

CREATE TABLE iceml.training_datasets (
    id                    bigserial PRIMARY KEY,
    name                  text NOT NULL,
    version               integer NOT NULL CHECK (version OPERATOR(pg_catalog.>) 0),
    "table"               regclass NOT NULL UNIQUE,
    feature_group_id      bigint NOT NULL REFERENCES iceml.feature_groups (id),
    feature_group         regclass NOT NULL,
    feature_group_version integer NOT NULL,
    commit_id             bigint,
    seed                  integer NOT NULL,
    features              text[] NOT NULL,
    label                 text NOT NULL,
    splits                jsonb NOT NULL,
    row_counts            jsonb NOT NULL,
    label_counts          jsonb NOT NULL,
    created               timestamptz NOT NULL DEFAULT pg_catalog.now(),
    owner                 regrole NOT NULL DEFAULT (CURRENT_USER)::regrole,
    UNIQUE (name, version)
);
COMMENT ON TABLE iceml.training_datasets IS
    'training datasets with their lineage: feature group, its version and last commit, seed, features, label, splits and the rows of each';

-- pg_dump keeps the catalog rows
SELECT pg_catalog.pg_extension_config_dump('iceml.feature_groups', '');
SELECT pg_catalog.pg_extension_config_dump('iceml.feature_groups_id_seq', '');
SELECT pg_catalog.pg_extension_config_dump('iceml.feature_group_commits', '');
SELECT pg_catalog.pg_extension_config_dump('iceml.feature_group_commits_commit_id_seq', '');
SELECT pg_catalog.pg_extension_config_dump('iceml.validations', '');
SELECT pg_catalog.pg_extension_config_dump('iceml.validations_id_seq', '');
SELECT pg_catalog.pg_extension_config_dump('iceml.feature_statistics', '');
SELECT pg_catalog.pg_extension_config_dump('iceml.feature_statistics_id_seq', '');
SELECT pg_catalog.pg_extension_config_dump('iceml.training_datasets', '');
SELECT pg_catalog.pg_extension_config_dump('iceml.training_datasets_id_seq', '');

-- Who sees what: catalog metadata (groups, commits, statistics, datasets) is
-- readable by every iceml role; validations (they name failing keys) only by
-- the group's owner and iceml_admin.  Nobody but the catalog owner writes
-- these tables: groups and datasets are written by the functions below,
-- which run their implementations as the catalog owner (src/catalog.c,
-- iceml_gate); commits, validations and statistics by iceml's C code, also
-- as the catalog owner.
ALTER TABLE iceml.feature_groups ENABLE ROW LEVEL SECURITY;
CREATE POLICY feature_groups_read ON iceml.feature_groups FOR SELECT USING (true);

ALTER TABLE iceml.training_datasets ENABLE ROW LEVEL SECURITY;
CREATE POLICY training_datasets_read ON iceml.training_datasets FOR SELECT USING (true);

ALTER TABLE iceml.validations ENABLE ROW LEVEL SECURITY;
CREATE POLICY validations_owner ON iceml.validations FOR SELECT
    USING (pg_catalog.pg_has_role('iceml_admin', 'MEMBER')
           OR EXISTS (SELECT FROM iceml.feature_groups fg
                      WHERE fg.id OPERATOR(pg_catalog.=) feature_group_id
                        AND pg_catalog.pg_has_role(fg.owner::pg_catalog.oid, 'MEMBER')));

GRANT SELECT ON iceml.feature_groups, iceml.feature_group_commits, iceml.feature_statistics,
                iceml.training_datasets, iceml.validations TO iceml_reader;

-- --------------------------------------------------------------------
-- C helpers (internal: names start with an underscore)
-- --------------------------------------------------------------------

CREATE FUNCTION iceml._fs_check_name(name text, what text) RETURNS void
    AS 'MODULE_PATHNAME', 'iceml_fs_check_name'
    LANGUAGE C IMMUTABLE STRICT PARALLEL SAFE;
COMMENT ON FUNCTION iceml._fs_check_name(text, text) IS
    'internal: refuses (22023) a name that is not 1 to 48 lower-case letters, digits or underscores';

CREATE FUNCTION iceml._fs_table_ddl(features jsonb, primary_key text[]) RETURNS text
    AS 'MODULE_PATHNAME', 'iceml_fs_table_ddl'
    LANGUAGE C STABLE STRICT PARALLEL UNSAFE;
COMMENT ON FUNCTION iceml._fs_table_ddl(jsonb, text[]) IS
    'internal: checks a features document and primary key, returns the column list of the feature group table';

CREATE FUNCTION iceml._fs_check_expectations(features jsonb, expectations jsonb) RETURNS void
    AS 'MODULE_PATHNAME', 'iceml_fs_check_expectations'
    LANGUAGE C STABLE STRICT PARALLEL UNSAFE;
COMMENT ON FUNCTION iceml._fs_check_expectations(jsonb, jsonb) IS
    'internal: refuses (22023, with the JSON path) an expectations document that does not fit the features';

CREATE FUNCTION iceml._fs_check_expectation(feature_group regclass, existing jsonb, expectation jsonb)
    RETURNS void
    AS 'MODULE_PATHNAME', 'iceml_fs_check_expectation'
    LANGUAGE C STABLE STRICT PARALLEL UNSAFE;
COMMENT ON FUNCTION iceml._fs_check_expectation(regclass, jsonb, jsonb) IS
    'internal: refuses (22023, with the JSON path) one more expectation for a feature group table';

CREATE FUNCTION iceml._fs_row_trigger() RETURNS trigger
    AS 'MODULE_PATHNAME', 'iceml_fs_row_trigger'
    LANGUAGE C VOLATILE PARALLEL UNSAFE;
COMMENT ON FUNCTION iceml._fs_row_trigger() IS
    'internal: BEFORE INSERT OR UPDATE row trigger of feature groups, enforcing the row rules';

CREATE FUNCTION iceml._fs_statement_trigger() RETURNS trigger
    AS 'MODULE_PATHNAME', 'iceml_fs_statement_trigger'
    LANGUAGE C VOLATILE PARALLEL UNSAFE;
COMMENT ON FUNCTION iceml._fs_statement_trigger() IS
    'internal: AFTER statement trigger of feature groups: batch rules, commit row, validations';

-- the catalog row of a feature group; with for_write, the caller must own it
CREATE FUNCTION iceml._fs_group(feature_group regclass, for_write boolean)
    RETURNS iceml.feature_groups
    LANGUAGE plpgsql STABLE PARALLEL SAFE
    SET search_path = pg_catalog, pg_temp
AS $fn$
DECLARE
    fg iceml.feature_groups;
BEGIN
    IF feature_group IS NULL THEN
        RAISE EXCEPTION 'feature_group must not be NULL' USING ERRCODE = '22023';
    END IF;
    SELECT * INTO fg FROM iceml.feature_groups g WHERE g."table" = feature_group;
    IF NOT FOUND THEN
        RAISE EXCEPTION 'relation "%" is not a feature group', feature_group
            USING ERRCODE = '22023',
                  HINT = 'Feature groups are created by iceml.create_feature_group and listed in iceml.feature_groups.';
    END IF;
    IF for_write AND NOT pg_has_role(iceml._caller(), (SELECT c.relowner FROM pg_class c WHERE c.oid = feature_group), 'MEMBER')
       AND NOT pg_has_role(iceml._caller(), 'iceml_admin', 'MEMBER') THEN
        RAISE EXCEPTION 'must be owner of feature group "%"', feature_group
            USING ERRCODE = '42501';
    END IF;
    RETURN fg;
END
$fn$;
COMMENT ON FUNCTION iceml._fs_group(regclass, boolean) IS
    'internal: the catalog row of a feature group (22023 when it is none; 42501 for a write by a non-owner)';

CREATE FUNCTION iceml._fs_validation_mode(validation text) RETURNS text
    LANGUAGE plpgsql IMMUTABLE PARALLEL SAFE
    SET search_path = pg_catalog, pg_temp
AS $fn$
BEGIN
    IF upper(validation) IN ('STRICT', 'WARNING', 'ALL', 'NONE') THEN
        RETURN upper(validation);
    END IF;
    RAISE EXCEPTION 'unknown validation mode %', CASE WHEN validation IS NULL THEN 'NULL' ELSE format('"%s"', validation) END
        USING ERRCODE = '22023',
              HINT = 'Use STRICT (every rule must pass), WARNING (ERROR-level rules must pass), ALL (always write, record findings) or NONE (check nothing).';
END
$fn$;
COMMENT ON FUNCTION iceml._fs_validation_mode(text) IS
    'internal: the canonical validation mode, or 22023';

-- --------------------------------------------------------------------
-- feature groups
-- --------------------------------------------------------------------

CREATE FUNCTION iceml._create_feature_group(
    name         text,
    features     jsonb,
    primary_key  text[],
    version      integer DEFAULT NULL,
    description  text    DEFAULT NULL,
    expectations jsonb   DEFAULT '[]',
    validation   text    DEFAULT 'STRICT',
    statistics   boolean DEFAULT true,
    shards       integer DEFAULT NULL,
    nodes        text[]  DEFAULT NULL)
    RETURNS regclass
    LANGUAGE plpgsql VOLATILE PARALLEL UNSAFE
    SET search_path = pg_catalog, pg_temp
AS $fn$
DECLARE
    v_name     text := _create_feature_group.name;
    v_version  integer := _create_feature_group.version;
    v_expect   jsonb := coalesce(_create_feature_group.expectations, '[]');
    v_mode     text;
    v_cols     text;
    v_table    text;
    v_rel      regclass;
    v_features jsonb;
    v_nodes    text[];          -- a sharded group's nodes (src/sql/60_shard.sql)
    v_id       bigint;
BEGIN
    IF v_name IS NULL THEN
        RAISE EXCEPTION 'name must not be NULL' USING ERRCODE = '22023';
    END IF;
    PERFORM iceml._fs_check_name(v_name, 'feature group name');
    IF _create_feature_group.features IS NULL THEN
        RAISE EXCEPTION 'features must not be NULL' USING ERRCODE = '22023',
            HINT = 'For example [{"name":"id","type":"text"},{"name":"band_1","type":"real[]"}].';
    END IF;
    IF _create_feature_group.primary_key IS NULL THEN
        RAISE EXCEPTION 'primary_key must not be NULL' USING ERRCODE = '22023',
            HINT = 'For example primary_key => ARRAY[''id''].';
    END IF;
    IF v_version IS NOT NULL AND v_version < 1 THEN
        RAISE EXCEPTION 'invalid version %', v_version USING ERRCODE = '22023',
            DETAIL = 'A version is a positive integer; NULL takes the next one.';
    END IF;
    IF _create_feature_group.statistics IS NULL THEN
        RAISE EXCEPTION 'statistics must not be NULL' USING ERRCODE = '22023';
    END IF;
    v_mode := iceml._fs_validation_mode(_create_feature_group.validation);
    v_cols := iceml._fs_table_ddl(_create_feature_group.features, _create_feature_group.primary_key);
    PERFORM iceml._fs_check_expectations(_create_feature_group.features, v_expect);

    -- one creator at a time per name: versions are taken in order
    PERFORM pg_advisory_xact_lock(hashtextextended('iceml feature group ' || v_name, 0));
    IF v_version IS NULL THEN
        SELECT coalesce(max(g.version), 0) INTO v_version
          FROM iceml.feature_groups g WHERE g.name = v_name;
        IF v_version = 2147483647 THEN
            RAISE EXCEPTION 'feature group "%" has no next version: version % is the largest', v_name, v_version
                USING ERRCODE = '22003', HINT = 'Give an unused version explicitly.';
        END IF;
        v_version := v_version + 1;
    ELSIF EXISTS (SELECT FROM iceml.feature_groups g
                   WHERE g.name = v_name AND g.version = v_version) THEN
        RAISE EXCEPTION 'feature group "%" version % already exists', v_name, v_version
            USING ERRCODE = '42P07',
                  HINT = 'Omit version to create the next one.';
    END IF;
    v_table := v_name || '_' || v_version;
    IF to_regclass(format('iceml_fs.%I', v_table)) IS NOT NULL THEN
        RAISE EXCEPTION 'relation "iceml_fs.%" already exists', v_table
            USING ERRCODE = '42P07';
    END IF;

    IF _create_feature_group.shards IS NOT NULL OR _create_feature_group.nodes IS NOT NULL THEN
        -- sharded: the rows live on the nodes (60_shard.sql)
        v_nodes := iceml._shard_placement(_create_feature_group.shards, _create_feature_group.nodes);
        v_rel := iceml._shard_parent(v_table, v_cols, _create_feature_group.primary_key);
    ELSE
    EXECUTE format('CREATE TABLE iceml_fs.%I (%s)', v_table, v_cols);
    v_rel := format('iceml_fs.%I', v_table)::regclass;
    -- row rules; named to fire after any other BEFORE ROW trigger
    EXECUTE format('CREATE TRIGGER zz_iceml_expectations BEFORE INSERT OR UPDATE ON %s'
                   ' FOR EACH ROW EXECUTE FUNCTION iceml._fs_row_trigger()', v_rel);
    -- batch rules, commits, validations (transition tables: one event each)
    EXECUTE format('CREATE TRIGGER iceml_commit_insert AFTER INSERT ON %s'
                   ' REFERENCING NEW TABLE AS iceml_new'
                   ' FOR EACH STATEMENT EXECUTE FUNCTION iceml._fs_statement_trigger()', v_rel);
    EXECUTE format('CREATE TRIGGER iceml_commit_update AFTER UPDATE ON %s'
                   ' REFERENCING OLD TABLE AS iceml_old NEW TABLE AS iceml_new'
                   ' FOR EACH STATEMENT EXECUTE FUNCTION iceml._fs_statement_trigger()', v_rel);
    EXECUTE format('CREATE TRIGGER iceml_commit_delete AFTER DELETE ON %s'
                   ' REFERENCING OLD TABLE AS iceml_old'
                   ' FOR EACH STATEMENT EXECUTE FUNCTION iceml._fs_statement_trigger()', v_rel);
    END IF;
    IF _create_feature_group.description IS NOT NULL THEN
        EXECUTE format('COMMENT ON TABLE %s IS %L', v_rel, _create_feature_group.description);
    END IF;
    -- created by the catalog owner (users cannot create tables in iceml_fs,
    -- so nobody can squat a name), then handed to the caller
    EXECUTE format('ALTER TABLE %s OWNER TO %s', v_rel, iceml._caller());  -- regrole: quoted as needed

    SELECT jsonb_agg(jsonb_build_object('name', a.attname::text,
                                        'type', format_type(a.atttypid, a.atttypmod))
                     ORDER BY a.attnum)
      INTO v_features
      FROM pg_attribute a
     WHERE a.attrelid = v_rel AND a.attnum > 0 AND NOT a.attisdropped;

    INSERT INTO iceml.feature_groups
        (name, version, "table", primary_key, features, expectations, validation,
         statistics, description, owner)
    VALUES (v_name, v_version, v_rel, _create_feature_group.primary_key, v_features, v_expect,
            v_mode, _create_feature_group.statistics, _create_feature_group.description,
            iceml._caller())
    RETURNING id INTO v_id;
    IF v_nodes IS NOT NULL THEN
        PERFORM iceml._shard_create(v_id, v_nodes, _create_feature_group.features, v_expect, v_mode);
    END IF;
    RETURN v_rel;
END
$fn$;
CREATE FUNCTION iceml.create_feature_group(
    name         text,
    features     jsonb,
    primary_key  text[],
    version      integer DEFAULT NULL,
    description  text    DEFAULT NULL,
    expectations jsonb   DEFAULT '[]',
    validation   text    DEFAULT 'STRICT',
    statistics   boolean DEFAULT true,
    shards       integer DEFAULT NULL,
    nodes        text[]  DEFAULT NULL)
    RETURNS regclass
    AS 'MODULE_PATHNAME', 'iceml_gate'
    LANGUAGE C VOLATILE;
COMMENT ON FUNCTION iceml.create_feature_group(text, jsonb, text[], integer, text, jsonb, text, boolean, integer, text[]) IS
    'creates the feature group table iceml_fs.<name>_<version>, owned by the caller, with triggers enforcing its expectations; with shards or nodes, a table partitioned by hash of the primary key over feature groups on the nodes';

CREATE FUNCTION iceml._drop_feature_group(feature_group regclass, "cascade" boolean DEFAULT false)
    RETURNS void
    LANGUAGE plpgsql VOLATILE PARALLEL UNSAFE
    SET search_path = pg_catalog, pg_temp
AS $fn$
DECLARE
    fg   iceml.feature_groups;
    deps text;
    td   record;
BEGIN
    fg := iceml._fs_group(feature_group, true);
    IF _drop_feature_group."cascade" IS NULL THEN
        RAISE EXCEPTION 'cascade must not be NULL' USING ERRCODE = '22023';
    END IF;
    SELECT string_agg(t."table"::text, ', ' ORDER BY t.id) INTO deps
      FROM iceml.training_datasets t WHERE t.feature_group_id = fg.id;
    IF deps IS NOT NULL AND NOT _drop_feature_group."cascade" THEN
        RAISE EXCEPTION 'cannot drop feature group "%" because training datasets depend on it', feature_group
            USING ERRCODE = '2BP01',
                  DETAIL = format('Training datasets built from it: %s.', deps),
                  HINT = 'Use cascade => true to drop the training datasets too.';
    END IF;
    FOR td IN SELECT t.id, t."table" FROM iceml.training_datasets t
               WHERE t.feature_group_id = fg.id ORDER BY t.id
    LOOP
        DELETE FROM iceml.training_datasets t WHERE t.id = td.id;
        EXECUTE format('DROP TABLE IF EXISTS %s', td."table");
    END LOOP;
    PERFORM iceml._shard_drop(fg.id, _drop_feature_group."cascade");  -- a sharded group's node groups
    DELETE FROM iceml.feature_groups g WHERE g.id = fg.id;
    EXECUTE format('DROP TABLE %s', feature_group);
END
$fn$;
CREATE FUNCTION iceml.drop_feature_group(feature_group regclass, "cascade" boolean DEFAULT false)
    RETURNS void
    AS 'MODULE_PATHNAME', 'iceml_gate'
    LANGUAGE C VOLATILE;
COMMENT ON FUNCTION iceml.drop_feature_group(regclass, boolean) IS
    'drops a feature group table and its catalog rows; with cascade => true also the training datasets built from it';

CREATE FUNCTION iceml._add_expectation(feature_group regclass, expectation jsonb)
    RETURNS jsonb
    LANGUAGE plpgsql VOLATILE PARALLEL UNSAFE
    SET search_path = pg_catalog, pg_temp
AS $fn$
DECLARE
    fg  iceml.feature_groups;
    doc jsonb;
BEGIN
    fg := iceml._fs_group(feature_group, true);
    IF expectation IS NULL THEN
        RAISE EXCEPTION 'expectation must not be NULL' USING ERRCODE = '22023';
    END IF;
    SELECT g.expectations INTO doc FROM iceml.feature_groups g WHERE g.id = fg.id FOR UPDATE;
    PERFORM iceml._fs_check_expectation(feature_group, doc, expectation);
    UPDATE iceml.feature_groups g SET expectations = doc || jsonb_build_array(expectation)
     WHERE g.id = fg.id
    RETURNING g.expectations INTO doc;
    PERFORM iceml._shard_each(fg.id, format(   -- a sharded group's node groups too
        'SELECT pg_catalog.to_jsonb(iceml.add_expectation(%%L::pg_catalog.regclass, %L::pg_catalog.jsonb))', expectation));
    RETURN doc;
END
$fn$;
CREATE FUNCTION iceml.add_expectation(feature_group regclass, expectation jsonb)
    RETURNS jsonb
    AS 'MODULE_PATHNAME', 'iceml_gate'
    LANGUAGE C VOLATILE;
COMMENT ON FUNCTION iceml.add_expectation(regclass, jsonb) IS
    'adds one expectation to a feature group (checked against its features); returns the new expectations document';

CREATE FUNCTION iceml._drop_expectation(feature_group regclass, name text)
    RETURNS jsonb
    LANGUAGE plpgsql VOLATILE PARALLEL UNSAFE
    SET search_path = pg_catalog, pg_temp
AS $fn$
DECLARE
    fg  iceml.feature_groups;
    doc jsonb;
BEGIN
    fg := iceml._fs_group(feature_group, true);
    IF _drop_expectation.name IS NULL THEN
        RAISE EXCEPTION 'name must not be NULL' USING ERRCODE = '22023';
    END IF;
    SELECT g.expectations INTO doc FROM iceml.feature_groups g WHERE g.id = fg.id FOR UPDATE;
    IF NOT EXISTS (SELECT FROM jsonb_array_elements(doc) e WHERE e->>'name' = _drop_expectation.name) THEN
        RAISE EXCEPTION 'feature group "%" has no expectation named "%"', feature_group, _drop_expectation.name
            USING ERRCODE = '22023';
    END IF;
    UPDATE iceml.feature_groups g
       SET expectations = (SELECT coalesce(jsonb_agg(e ORDER BY i), '[]')
                             FROM jsonb_array_elements(doc) WITH ORDINALITY AS x(e, i)
                            WHERE e->>'name' IS DISTINCT FROM _drop_expectation.name)
     WHERE g.id = fg.id
    RETURNING g.expectations INTO doc;
    PERFORM iceml._shard_each(fg.id, format(   -- a sharded group's node groups too
        'SELECT pg_catalog.to_jsonb(iceml.drop_expectation(%%L::pg_catalog.regclass, %L))', _drop_expectation.name));
    RETURN doc;
END
$fn$;
CREATE FUNCTION iceml.drop_expectation(feature_group regclass, name text)
    RETURNS jsonb
    AS 'MODULE_PATHNAME', 'iceml_gate'
    LANGUAGE C VOLATILE;
COMMENT ON FUNCTION iceml.drop_expectation(regclass, text) IS
    'removes the named expectation from a feature group; returns the new expectations document';

CREATE FUNCTION iceml._set_validation(feature_group regclass, validation text)
    RETURNS text
    LANGUAGE plpgsql VOLATILE PARALLEL UNSAFE
    SET search_path = pg_catalog, pg_temp
AS $fn$
DECLARE
    fg   iceml.feature_groups;
    mode text;
BEGIN
    fg := iceml._fs_group(feature_group, true);
    mode := iceml._fs_validation_mode(_set_validation.validation);
    UPDATE iceml.feature_groups g SET validation = mode WHERE g.id = fg.id;
    PERFORM iceml._shard_each(fg.id, format(   -- a sharded group's node groups too
        'SELECT pg_catalog.to_jsonb(iceml.set_validation(%%L::pg_catalog.regclass, %L))', mode));
    RETURN mode;
END
$fn$;
CREATE FUNCTION iceml.set_validation(feature_group regclass, validation text)
    RETURNS text
    AS 'MODULE_PATHNAME', 'iceml_gate'
    LANGUAGE C VOLATILE;
COMMENT ON FUNCTION iceml.set_validation(regclass, text) IS
    'sets the validation mode of a feature group (STRICT, WARNING, ALL or NONE); returns it';

GRANT EXECUTE ON FUNCTION
    iceml.create_feature_group(text, jsonb, text[], integer, text, jsonb, text, boolean, integer, text[]),
    iceml.drop_feature_group(regclass, boolean),
    iceml.add_expectation(regclass, jsonb),
    iceml.drop_expectation(regclass, text),
    iceml.set_validation(regclass, text)
    TO iceml_user;

-- --------------------------------------------------------------------
-- statistics
-- --------------------------------------------------------------------

CREATE FUNCTION iceml.compute_statistics(feature_group regclass) RETURNS bigint
    AS 'MODULE_PATHNAME', 'iceml_compute_statistics'
    LANGUAGE C VOLATILE PARALLEL UNSAFE;
COMMENT ON FUNCTION iceml.compute_statistics(regclass) IS
    'summarises a feature group in one pass into iceml.feature_statistics (count, completeness, min, max, mean, stddev, approximate distinct, 20-bin histogram; arrays over elements and row means); returns the rows read';
GRANT EXECUTE ON FUNCTION iceml.compute_statistics(regclass) TO iceml_user;
