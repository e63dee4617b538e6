
-- ====================================================================
-- 60: scale-out over postgres_fdw (README "Scale-out"; src/shard/shard.c)
--
-- A node is another PostgreSQL server (database) with iceml installed at
-- the same version: on the coordinator, a postgres_fdw foreign server
-- iceml_node_<name> and a user mapping for PUBLIC (the credentials live
-- there, never in iceml's catalogs), recorded in iceml.shard_nodes.
--
-- A sharded feature group is, on each of its nodes, a real feature group
-- iceml_fs.<name>_<version> (with its expectation triggers), and on the
-- coordinator a table of the same name partitioned by hash of the primary
-- key whose partitions iceml_fs.<name>_<version>_s<i> are foreign tables
-- over the nodes' groups, one shard per node (iceml.shards).
-- ====================================================================

CREATE TABLE iceml.shard_nodes (
    name          text PRIMARY KEY,
    server        name NOT NULL UNIQUE,
    iceml_version text NOT NULL,
    added         timestamptz NOT NULL DEFAULT pg_catalog.now(),
    added_by      regrole NOT NULL
);
COMMENT ON TABLE iceml.shard_nodes IS
    'the nodes of this coordinator (iceml.add_node): the postgres_fdw server of each, the iceml version found there';

CREATE TABLE iceml.shards (
    feature_group_id bigint NOT NULL REFERENCES iceml.feature_groups (id) ON DELETE CASCADE,
    shard            integer NOT NULL CHECK (shard OPERATOR(pg_catalog.>=) 0),
    shards           integer NOT NULL CHECK (shards OPERATOR(pg_catalog.>) shard),
    node             text NOT NULL REFERENCES iceml.shard_nodes (name),
    "partition"      regclass NOT NULL UNIQUE,
    remote_table     text NOT NULL,
    PRIMARY KEY (feature_group_id, shard)
);
COMMENT ON TABLE iceml.shards IS
    'the shards of sharded feature groups: hash remainder shard of modulus shards, its node, the foreign partition on the coordinator, the group''s table on the node';

SELECT pg_catalog.pg_extension_config_dump('iceml.shard_nodes', '');
SELECT pg_catalog.pg_extension_config_dump('iceml.shards', '');

ALTER TABLE iceml.shard_nodes ENABLE ROW LEVEL SECURITY;
CREATE POLICY shard_nodes_read ON iceml.shard_nodes FOR SELECT USING (true);
ALTER TABLE iceml.shards ENABLE ROW LEVEL SECURITY;
CREATE POLICY shards_read ON iceml.shards FOR SELECT USING (true);
GRANT SELECT ON iceml.shard_nodes, iceml.shards TO iceml_reader;

-- where each node is (never its credentials: those are in the user mapping)
CREATE VIEW iceml.nodes AS
SELECT n.name,
       n.server,
       (SELECT o.option_value FROM pg_catalog.pg_options_to_table(s.srvoptions) o
         WHERE o.option_name OPERATOR(pg_catalog.=) 'host') AS host,
       (SELECT o.option_value FROM pg_catalog.pg_options_to_table(s.srvoptions) o
         WHERE o.option_name OPERATOR(pg_catalog.=) 'port') AS port,
       (SELECT o.option_value FROM pg_catalog.pg_options_to_table(s.srvoptions) o
         WHERE o.option_name OPERATOR(pg_catalog.=) 'dbname') AS dbname,
       n.iceml_version,
       (SELECT pg_catalog.count(*) FROM iceml.shards sh
         WHERE sh.node OPERATOR(pg_catalog.=) n.name) AS shards,
       n.added,
       n.added_by
  FROM iceml.shard_nodes n
  LEFT JOIN pg_catalog.pg_foreign_server s ON s.srvname OPERATOR(pg_catalog.=) n.server;
COMMENT ON VIEW iceml.nodes IS
    'the nodes of this coordinator: name, postgres_fdw server, host, port, database, iceml version, shards placed there';
GRANT SELECT ON iceml.nodes TO iceml_reader;

-- --------------------------------------------------------------------
-- C helpers (src/shard/shard.c)
-- --------------------------------------------------------------------

CREATE FUNCTION iceml._node_conninfo(conninfo text) RETURNS TABLE (keyword text, value text)
    AS 'MODULE_PATHNAME', 'iceml_node_conninfo'
    LANGUAGE C IMMUTABLE STRICT PARALLEL SAFE;
COMMENT ON FUNCTION iceml._node_conninfo(text) IS
    'internal: the options a libpq connection string sets (22023 when it does not parse)';

CREATE FUNCTION iceml._node_exec(node text, sql text) RETURNS jsonb
    AS 'MODULE_PATHNAME', 'iceml_node_exec'
    LANGUAGE C VOLATILE STRICT PARALLEL UNSAFE;
COMMENT ON FUNCTION iceml._node_exec(text, text) IS
    'internal: runs one statement of iceml''s on a node in its remote transaction (committed with the local one); the first column (jsonb) of its first row';

CREATE FUNCTION iceml._hll_estimate(registers integer[]) RETURNS bigint
    AS 'MODULE_PATHNAME', 'iceml_hll_estimate'
    LANGUAGE C IMMUTABLE STRICT PARALLEL SAFE;
COMMENT ON FUNCTION iceml._hll_estimate(integer[]) IS
    'internal: the distinct count estimated from compute_statistics'' 1024 HyperLogLog registers';

-- run on the nodes by the coordinator (with the node role's own rights)
CREATE FUNCTION iceml.shard_statistics(feature_group regclass) RETURNS jsonb
    AS 'MODULE_PATHNAME', 'iceml_shard_statistics'
    LANGUAGE C VOLATILE PARALLEL UNSAFE;
COMMENT ON FUNCTION iceml.shard_statistics(regclass) IS
    'this server''s mergeable summary of a feature group for a coordinator: per feature and kind the counts, mean, sum of squared deviations, range and HyperLogLog registers';

CREATE FUNCTION iceml.shard_histogram(feature_group regclass, features text[], kinds text[],
                                      lo double precision[], hi double precision[])
    RETURNS TABLE (feature text, kind text, counts bigint[])
    AS 'MODULE_PATHNAME', 'iceml_shard_histogram'
    LANGUAGE C VOLATILE PARALLEL UNSAFE;
COMMENT ON FUNCTION iceml.shard_histogram(regclass, text[], text[], double precision[], double precision[]) IS
    'exact counts of this server''s finite values of a feature group in the 20 equal bins of [lo, hi], per feature and kind, for a coordinator''s merged histogram';
GRANT EXECUTE ON FUNCTION
    iceml.shard_statistics(regclass),
    iceml.shard_histogram(regclass, text[], text[], double precision[], double precision[])
    TO iceml_user;

-- --------------------------------------------------------------------
-- nodes
-- --------------------------------------------------------------------

CREATE FUNCTION iceml._add_node(name text, conninfo text) RETURNS text
    LANGUAGE plpgsql VOLATILE PARALLEL UNSAFE
    SET search_path = pg_catalog, pg_temp
AS $fn$
DECLARE
    v_name    text := _add_node.name;
    v_server  text;
    v_srv     text[] := ARRAY[]::text[];
    v_um      text[] := ARRAY[]::text[];
    v_pw      boolean := false;
    o         record;
    v_remote  jsonb;
    v_local   text;
BEGIN
    IF v_name IS NULL THEN
        RAISE EXCEPTION 'name must not be NULL' USING ERRCODE = '22023';
    END IF;
    IF _add_node.conninfo IS NULL THEN
        RAISE EXCEPTION 'conninfo must not be NULL' USING ERRCODE = '22023',
            HINT = 'For example ''host=node1.example port=5432 dbname=iceml user=iceml_node''.';
    END IF;
    PERFORM iceml._fs_check_name(v_name, 'node name');
    IF NOT EXISTS (SELECT FROM pg_extension e WHERE e.extname = 'postgres_fdw') THEN
        RAISE EXCEPTION 'extension "postgres_fdw" is not installed in this database'
            USING ERRCODE = '55000',
                  HINT = 'A superuser runs CREATE EXTENSION postgres_fdw here before nodes are added.';
    END IF;
    PERFORM pg_advisory_xact_lock(hashtextextended('iceml node ' || v_name, 0));
    IF EXISTS (SELECT FROM iceml.shard_nodes n WHERE n.name = v_name) THEN
        RAISE EXCEPTION 'node "%" already exists', v_name USING ERRCODE = '42710',
            HINT = 'Drop it first with iceml.drop_node, or choose another name.';
    END IF;
    v_server := 'iceml_node_' || v_name;
    IF EXISTS (SELECT FROM pg_foreign_server s WHERE s.srvname = v_server) THEN
        RAISE EXCEPTION 'foreign server "%" already exists', v_server USING ERRCODE = '42710',
            HINT = 'Choose another node name, or drop that server.';
    END IF;

    -- where the node is goes into the server, who connects into the mapping
    FOR o IN SELECT c.keyword, c.value FROM iceml._node_conninfo(_add_node.conninfo) c LOOP
        IF o.keyword IN ('user', 'password') THEN
            v_um := v_um || format('%I %L', o.keyword, o.value);
            v_pw := v_pw OR (o.keyword = 'password' AND o.value <> '');
        ELSIF o.keyword IN ('options', 'client_encoding', 'fallback_application_name',
                            'application_name', 'replication') THEN
            RAISE EXCEPTION 'conninfo option "%" cannot be set for a node', o.keyword
                USING ERRCODE = '22023',
                      DETAIL = 'iceml sets the options, encoding and application name of its connections to nodes.';
        ELSE
            v_srv := v_srv || format('%I %L', o.keyword, o.value);
        END IF;
    END LOOP;
    -- the node names itself in its errors; iceml's immutable functions may
    -- run there; shards are scanned in parallel (async append)
    v_srv := v_srv || format('options %L', '-c iceml.node_name=' || v_name)
                   || ARRAY['extensions ''iceml''', 'async_capable ''true''', 'batch_size ''100'''];
    IF NOT v_pw THEN
        -- no password: the node authenticates the connection itself (Unix
        -- socket peer, certificate, .pgpass of the server's OS user)
        v_um := v_um || 'password_required ''false'''::text;
    END IF;
    EXECUTE format('CREATE SERVER %I FOREIGN DATA WRAPPER postgres_fdw OPTIONS (%s)',
                   v_server, array_to_string(v_srv, ', '));
    EXECUTE format('CREATE USER MAPPING FOR PUBLIC SERVER %I%s', v_server,
                   CASE WHEN cardinality(v_um) > 0
                        THEN format(' OPTIONS (%s)', array_to_string(v_um, ', ')) ELSE '' END);

    -- the node: iceml at this version, a role that may create feature groups
    v_remote := iceml._node_exec(v_name,
        'SELECT pg_catalog.jsonb_build_object(''version'', (SELECT e.extversion FROM pg_catalog.pg_extension e'
        ' WHERE e.extname OPERATOR(pg_catalog.=) ''iceml''), ''user'', CURRENT_USER,'
        ' ''may'', pg_catalog.pg_has_role(''iceml_user'', ''MEMBER''))');
    SELECT e.extversion INTO v_local FROM pg_extension e WHERE e.extname = 'iceml';
    IF v_remote->>'version' IS NULL THEN
        RAISE EXCEPTION 'iceml is not installed on node "%"', v_name
            USING ERRCODE = '55000',
                  HINT = format('Run CREATE EXTENSION iceml (version %s) in the node''s database.', v_local);
    END IF;
    IF v_remote->>'version' <> v_local THEN
        RAISE EXCEPTION 'node "%" has iceml version %, this server %', v_name, v_remote->>'version', v_local
            USING ERRCODE = '55000',
                  HINT = 'Install the same iceml release on every node and run ALTER EXTENSION iceml UPDATE.';
    END IF;
    IF NOT (v_remote->>'may')::boolean THEN
        RAISE EXCEPTION 'role "%" on node "%" is not a member of iceml_user', v_remote->>'user', v_name
            USING ERRCODE = '42501',
                  HINT = 'GRANT iceml_user (or iceml_admin) to that role on the node.';
    END IF;

    INSERT INTO iceml.shard_nodes (name, server, iceml_version, added_by)
    VALUES (v_name, v_server, v_local, iceml._caller());
    RETURN v_name;
END
$fn$;
CREATE FUNCTION iceml.add_node(name text, conninfo text) RETURNS text
    AS 'MODULE_PATHNAME', 'iceml_gate'
    LANGUAGE C VOLATILE;
COMMENT ON FUNCTION iceml.add_node(text, text) IS
    'adds a node: a postgres_fdw server (where) and a user mapping for PUBLIC (who, with any password), after checking iceml at this version and a member of iceml_user there';

CREATE FUNCTION iceml._drop_node(name text) RETURNS void
    LANGUAGE plpgsql VOLATILE PARALLEL UNSAFE
    SET search_path = pg_catalog, pg_temp
AS $fn$
DECLARE
    v_node iceml.shard_nodes;
    v_used text;
BEGIN
    IF _drop_node.name IS NULL THEN
        RAISE EXCEPTION 'name must not be NULL' USING ERRCODE = '22023';
    END IF;
    SELECT * INTO v_node FROM iceml.shard_nodes n WHERE n.name = _drop_node.name FOR UPDATE;
    IF NOT FOUND THEN
        RAISE EXCEPTION 'node "%" does not exist', _drop_node.name USING ERRCODE = '42704',
            HINT = 'Nodes are listed in iceml.nodes.';
    END IF;
    SELECT string_agg(DISTINCT g."table"::text, ', ') INTO v_used
      FROM iceml.shards s JOIN iceml.feature_groups g ON g.id = s.feature_group_id
     WHERE s.node = v_node.name;
    IF v_used IS NOT NULL THEN
        RAISE EXCEPTION 'cannot drop node "%" because sharded feature groups have shards there', v_node.name
            USING ERRCODE = '2BP01',
                  DETAIL = format('Feature groups: %s.', v_used),
                  HINT = 'Drop those feature groups first.';
    END IF;
    -- trials placed there and not ended (src/sql/62_shard_trials.sql)
    SELECT string_agg(t.run_id::text, ', ' ORDER BY t.run_id) INTO v_used
      FROM iceml.remote_trials t JOIN iceml.runs r ON r.id = t.run_id
     WHERE t.node = v_node.name AND r.status IN ('queued', 'running');
    IF v_used IS NOT NULL THEN
        RAISE EXCEPTION 'cannot drop node "%" because trials of studies run there', v_node.name
            USING ERRCODE = '55006',
                  DETAIL = format('Trial runs: %s.', v_used),
                  HINT = 'Wait for them or cancel them with iceml.cancel first.';
    END IF;
    -- the models this coordinator copied there go too, if the node answers
    BEGIN
        PERFORM iceml._drop_node_models(v_node.name, NULL);
    EXCEPTION WHEN OTHERS THEN
        RAISE WARNING 'the model copies on node "%" were left there: %', v_node.name, SQLERRM
            USING HINT = 'Delete them from iceml.shipped_models on the node.';
    END;
    EXECUTE format('DROP USER MAPPING IF EXISTS FOR PUBLIC SERVER %I', v_node.server);
    EXECUTE format('DROP SERVER %I', v_node.server);
    DELETE FROM iceml.shard_nodes n WHERE n.name = v_node.name;
END
$fn$;
CREATE FUNCTION iceml.drop_node(name text) RETURNS void
    AS 'MODULE_PATHNAME', 'iceml_gate'
    LANGUAGE C VOLATILE;
COMMENT ON FUNCTION iceml.drop_node(text) IS
    'removes a node with no shards: its postgres_fdw server and user mapping';

GRANT EXECUTE ON FUNCTION iceml.add_node(text, text), iceml.drop_node(text) TO iceml_admin;

-- --------------------------------------------------------------------
-- sharded feature groups (called by _create_feature_group and
-- _drop_feature_group, as the catalog owner)
-- --------------------------------------------------------------------

-- the nodes of a new sharded group, one shard each
CREATE FUNCTION iceml._shard_placement(shards integer, nodes text[]) RETURNS text[]
    LANGUAGE plpgsql STABLE PARALLEL UNSAFE
    SET search_path = pg_catalog, pg_temp
AS $fn$
DECLARE
    v_n       integer;
    v_missing text;
    v_nodes   text[];
BEGIN
    SELECT count(*) INTO v_n FROM iceml.shard_nodes;
    IF nodes IS NOT NULL THEN
        IF cardinality(nodes) = 0 OR array_position(nodes, NULL) IS NOT NULL THEN
            RAISE EXCEPTION 'nodes must name at least one node and no NULL' USING ERRCODE = '22023';
        END IF;
        IF (SELECT count(DISTINCT x) FROM unnest(nodes) x) <> cardinality(nodes) THEN
            RAISE EXCEPTION 'nodes names a node twice' USING ERRCODE = '22023',
                DETAIL = 'A sharded feature group has one shard per node.';
        END IF;
        SELECT string_agg(x, ', ') INTO v_missing FROM unnest(nodes) x
         WHERE NOT EXISTS (SELECT FROM iceml.shard_nodes n WHERE n.name = x);
        IF v_missing IS NOT NULL THEN
            RAISE EXCEPTION 'node "%" does not exist', v_missing USING ERRCODE = '42704',
                HINT = 'Nodes are added by iceml.add_node and listed in iceml.nodes.';
        END IF;
        IF shards IS NOT NULL AND shards <> cardinality(nodes) THEN
            RAISE EXCEPTION 'shards => % does not match % nodes', shards, cardinality(nodes)
                USING ERRCODE = '22023', DETAIL = 'A sharded feature group has one shard per node.',
                      HINT = 'Give only nodes, or only shards.';
        END IF;
        RETURN nodes;
    END IF;
    IF shards < 1 OR shards > v_n THEN
        RAISE EXCEPTION 'invalid shards %', shards USING ERRCODE = '22023',
            DETAIL = format('A sharded feature group has one shard per node; %s node%s registered.',
                            v_n, CASE WHEN v_n = 1 THEN ' is' ELSE 's are' END),
            HINT = 'Add nodes with iceml.add_node, or ask for fewer shards.';
    END IF;
    SELECT array_agg(n.name ORDER BY n.name) INTO v_nodes
      FROM (SELECT n.name FROM iceml.shard_nodes n ORDER BY n.name LIMIT shards) n;
    RETURN v_nodes;
END
$fn$;

-- the coordinator's table: the group's columns, partitioned by hash of the
-- primary key (no primary key of its own: foreign partitions have no
-- indexes; each node's group has it, and a key always hashes to one node)
CREATE FUNCTION iceml._shard_parent(table_name text, columns text, primary_key text[]) RETURNS regclass
    LANGUAGE plpgsql VOLATILE PARALLEL UNSAFE
    SET search_path = pg_catalog, pg_temp
AS $fn$
DECLARE
    v_cols text := regexp_replace(columns, ', PRIMARY KEY \([^)]*\)$', '');
BEGIN
    IF v_cols = columns THEN
        RAISE EXCEPTION 'unexpected column list for a sharded feature group' USING ERRCODE = 'XX000';
    END IF;
    EXECUTE format('CREATE TABLE iceml_fs.%I (%s) PARTITION BY HASH (%s)', table_name, v_cols,
                   (SELECT string_agg(format('%I', k), ', ' ORDER BY i)
                      FROM unnest(primary_key) WITH ORDINALITY AS x(k, i)));
    RETURN format('iceml_fs.%I', table_name)::regclass;
END
$fn$;

-- the group on each node, a foreign partition over each
CREATE FUNCTION iceml._shard_create(feature_group_id bigint, nodes text[], features jsonb,
                                    expectations jsonb, validation text) RETURNS void
    LANGUAGE plpgsql VOLATILE PARALLEL UNSAFE
    SET search_path = pg_catalog, pg_temp
AS $fn$
DECLARE
    fg       iceml.feature_groups;
    v_n      integer := cardinality(nodes);
    v_table  text;
    v_remote jsonb;
    v_part   text;
BEGIN
    SELECT * INTO fg FROM iceml.feature_groups g WHERE g.id = _shard_create.feature_group_id;
    v_table := fg.name || '_' || fg.version;
    FOR i IN 0 .. v_n - 1 LOOP
        v_remote := iceml._node_exec(nodes[i + 1], format(
            'SELECT pg_catalog.to_jsonb(iceml.create_feature_group(%L, %L::pg_catalog.jsonb,'
            ' %L::pg_catalog.text[], %s, %L, %L::pg_catalog.jsonb, %L, %L)::pg_catalog.text)',
            fg.name, _shard_create.features, fg.primary_key, fg.version, fg.description,
            _shard_create.expectations, _shard_create.validation, fg.statistics));
        IF v_remote #>> '{}' IS DISTINCT FROM format('iceml_fs.%I', v_table) THEN
            RAISE EXCEPTION 'node "%" created %, not iceml_fs.%', nodes[i + 1], v_remote #>> '{}', v_table
                USING ERRCODE = 'XX000';
        END IF;
        v_part := format('iceml_fs.%I', v_table || '_s' || i);
        EXECUTE format('CREATE FOREIGN TABLE %s PARTITION OF %s FOR VALUES WITH (MODULUS %s, REMAINDER %s)'
                       ' SERVER %I OPTIONS (schema_name %L, table_name %L)',
                       v_part, fg."table", v_n, i, 'iceml_node_' || nodes[i + 1], 'iceml_fs', v_table);
        EXECUTE format('ALTER FOREIGN TABLE %s OWNER TO %s', v_part, iceml._caller());  -- regrole: quoted as needed
        INSERT INTO iceml.shards (feature_group_id, shard, shards, node, "partition", remote_table)
        VALUES (fg.id, i, v_n, nodes[i + 1], v_part::regclass, format('iceml_fs.%I', v_table));
    END LOOP;
END
$fn$;

-- a sharded group's groups on its nodes (nothing for another group)
CREATE FUNCTION iceml._shard_drop(feature_group_id bigint, "cascade" boolean) RETURNS void
    LANGUAGE plpgsql VOLATILE PARALLEL UNSAFE
    SET search_path = pg_catalog, pg_temp
AS $fn$
DECLARE
    s record;
BEGIN
    FOR s IN SELECT sh.node, sh.remote_table FROM iceml.shards sh
              WHERE sh.feature_group_id = _shard_drop.feature_group_id ORDER BY sh.shard
    LOOP
        -- a node rebuilt or restored without the group must not keep the
        -- coordinator's group alive: what is gone there is said, not fatal
        IF iceml._node_exec(s.node, format(
               'SELECT pg_catalog.to_jsonb(pg_catalog.count(iceml.drop_feature_group(g."table", %L)))
                  FROM iceml.feature_groups g
                 WHERE g."table" OPERATOR(pg_catalog.=) pg_catalog.to_regclass(%L)',
               _shard_drop."cascade", s.remote_table)) OPERATOR(pg_catalog.=) '0'::jsonb THEN
            RAISE WARNING 'feature group "%" was already gone on node "%"', s.remote_table, s.node
                USING DETAIL = 'The coordinator''s shard is dropped all the same.';
        END IF;
    END LOOP;
END
$fn$;

-- one statement on each node of a sharded group (nothing for another
-- group): sql is a format() string whose %L is the group's table there
CREATE FUNCTION iceml._shard_each(feature_group_id bigint, sql text) RETURNS void
    LANGUAGE plpgsql VOLATILE PARALLEL UNSAFE
    SET search_path = pg_catalog, pg_temp
AS $fn$
DECLARE
    s record;
BEGIN
    FOR s IN SELECT sh.node, sh.remote_table FROM iceml.shards sh
              WHERE sh.feature_group_id = _shard_each.feature_group_id ORDER BY sh.shard
    LOOP
        PERFORM iceml._node_exec(s.node, format(_shard_each.sql, s.remote_table));
    END LOOP;
END
$fn$;

-- compute_statistics of a sharded group: the nodes' states merged
CREATE FUNCTION iceml._shard_compute_statistics(feature_group regclass) RETURNS bigint
    LANGUAGE plpgsql VOLATILE PARALLEL UNSAFE
    SET search_path = pg_catalog, pg_temp
    SET extra_float_digits = 3      -- doubles pass through text and jsonb exactly
AS $fn$
DECLARE
    fg       iceml.feature_groups;
    s        record;
    v_states jsonb := '[]';
    v_hists  jsonb := '[]';
    v_merged jsonb;
    v_req    record;
    v_rows   bigint;
    v_now    timestamptz := clock_timestamp();
BEGIN
    SELECT * INTO fg FROM iceml.feature_groups g WHERE g."table" = _shard_compute_statistics.feature_group;
    FOR s IN SELECT sh.node, sh.remote_table FROM iceml.shards sh
              WHERE sh.feature_group_id = fg.id ORDER BY sh.shard
    LOOP
        v_states := v_states || jsonb_build_array(iceml._node_exec(s.node, format(
            'SELECT iceml.shard_statistics(%L::pg_catalog.regclass)', s.remote_table)));
    END LOOP;
    SELECT coalesce(sum((x->>'rows')::bigint), 0) INTO v_rows FROM jsonb_array_elements(v_states) x;

    -- moments: N = sum n, mean = sum(n mean) / N, M2 = sum(M2 + n (mean - M)^2)
    WITH f AS (
        SELECT t.ord, e->>'feature' AS feature, e->>'kind' AS kind, (e->>'numeric')::boolean AS numeric,
               (e->>'nonnull_rows')::bigint AS nn, (e->>'count')::bigint AS cnt,
               (e->>'nfinite')::bigint AS nfin, (e->>'mean')::float8 AS mean, (e->>'m2')::float8 AS m2,
               (e->>'min')::float8 AS mn, (e->>'max')::float8 AS mx, e->'hll' AS hll
          FROM jsonb_array_elements(v_states) x,
               jsonb_array_elements(x->'features') WITH ORDINALITY AS t(e, ord)),
    m AS (
        SELECT f.feature, f.kind, min(f.ord) AS ord, bool_and(f.numeric) AS numeric, sum(f.nn) AS nn,
               sum(f.cnt) AS cnt, sum(f.nfin) AS nfin, min(f.mn) AS mn, max(f.mx) AS mx,
               sum(f.nfin * f.mean) FILTER (WHERE f.nfin > 0) / nullif(sum(f.nfin), 0) AS mean
          FROM f GROUP BY f.feature, f.kind),
    mm AS (
        SELECT m.*,
               (SELECT sum(f.m2 + f.nfin * (f.mean - m.mean) ^ 2) FROM f
                 WHERE f.feature = m.feature AND f.kind = m.kind AND f.nfin > 0) AS m2,
               (SELECT array_agg(r.v ORDER BY r.i) FROM
                  (SELECT h.i, max(h.v::integer) AS v FROM f, jsonb_array_elements_text(f.hll) WITH ORDINALITY AS h(v, i)
                    WHERE f.feature = m.feature AND f.kind = m.kind GROUP BY h.i) r) AS hll
          FROM m)
    SELECT jsonb_agg(jsonb_build_object('feature', mm.feature, 'kind', mm.kind, 'numeric', mm.numeric,
                                        'nn', mm.nn, 'cnt', mm.cnt, 'nfin', mm.nfin, 'mean', mm.mean,
                                        'm2', mm.m2, 'mn', mm.mn, 'mx', mm.mx,
                                        'distinct', least(iceml._hll_estimate(mm.hll), mm.cnt))
                     ORDER BY mm.ord)
      INTO v_merged FROM mm;

    -- histograms: every node counts its values in the merged range's bins
    SELECT array_agg(e->>'feature' ORDER BY i) AS features, array_agg(e->>'kind' ORDER BY i) AS kinds,
           array_agg((e->>'mn')::float8 ORDER BY i) AS lo, array_agg((e->>'mx')::float8 ORDER BY i) AS hi
      INTO v_req
      FROM jsonb_array_elements(coalesce(v_merged, '[]')) WITH ORDINALITY AS x(e, i)
     WHERE (e->>'numeric')::boolean AND (e->>'nfin')::bigint > 0;
    IF v_req.features IS NOT NULL THEN
        FOR s IN SELECT sh.node, sh.remote_table FROM iceml.shards sh
                  WHERE sh.feature_group_id = fg.id ORDER BY sh.shard
        LOOP
            v_hists := v_hists || coalesce(iceml._node_exec(s.node, format(
                'SELECT pg_catalog.jsonb_agg(pg_catalog.jsonb_build_array(h.feature, h.kind, h.counts))'
                ' FROM iceml.shard_histogram(%L::pg_catalog.regclass, %L::pg_catalog.text[], %L::pg_catalog.text[],'
                ' %L::pg_catalog.float8[], %L::pg_catalog.float8[]) h',
                s.remote_table, v_req.features, v_req.kinds, v_req.lo, v_req.hi)), '[]');
        END LOOP;
    END IF;

    INSERT INTO iceml.feature_statistics
        (feature_group_id, feature_group, computed_at, commit_id, feature, kind, count, completeness,
         min, max, mean, stddev, approx_distinct, histogram)
    SELECT fg.id, fg."table", v_now, NULL, e->>'feature', e->>'kind', (e->>'cnt')::bigint,
           CASE WHEN v_rows > 0 THEN (e->>'nn')::float8 / v_rows END,
           CASE WHEN have THEN (e->>'mn')::float8 END,
           CASE WHEN have THEN (e->>'mx')::float8 END,
           CASE WHEN have THEN (e->>'mean')::float8 END,
           CASE WHEN have AND (e->>'nfin')::bigint > 1
                THEN sqrt((e->>'m2')::float8 / ((e->>'nfin')::bigint - 1)) END,
           (e->>'distinct')::bigint,
           CASE WHEN have THEN jsonb_build_object(
               'lo', (e->>'mn')::float8, 'hi', (e->>'mx')::float8,
               'counts', (SELECT to_jsonb(array_agg(c.total ORDER BY c.bin)) FROM
                            (SELECT b.bin, sum(b.n::bigint)::bigint AS total
                               FROM jsonb_array_elements(v_hists) h,
                                    jsonb_array_elements_text(h->2) WITH ORDINALITY AS b(n, bin)
                              WHERE h->>0 = e->>'feature' AND h->>1 = e->>'kind'
                              GROUP BY b.bin) c)) END
      FROM jsonb_array_elements(coalesce(v_merged, '[]')) WITH ORDINALITY AS x(e, i),
           LATERAL (SELECT (e->>'numeric')::boolean AND (e->>'nfin')::bigint > 0 AS have) hv
     ORDER BY i;
    RETURN v_rows;
END
$fn$;

COMMENT ON FUNCTION iceml._add_node(text, text) IS 'internal: the implementation of iceml.add_node (run as the catalog owner)';
COMMENT ON FUNCTION iceml._drop_node(text) IS 'internal: the implementation of iceml.drop_node (run as the catalog owner)';
COMMENT ON FUNCTION iceml._shard_placement(integer, text[]) IS
    'internal: the nodes of a new sharded group from shards or nodes (22023, 42704 on a bad request)';
COMMENT ON FUNCTION iceml._shard_parent(text, text, text[]) IS
    'internal: creates the coordinator''s table of a sharded group, partitioned by hash of the primary key';
COMMENT ON FUNCTION iceml._shard_create(bigint, text[], jsonb, jsonb, text) IS
    'internal: creates a sharded group''s feature group on each node and its foreign partition here';
COMMENT ON FUNCTION iceml._shard_drop(bigint, boolean) IS
    'internal: drops a sharded group''s feature groups on its nodes (nothing for another group)';
COMMENT ON FUNCTION iceml._shard_each(bigint, text) IS
    'internal: runs one statement (a format string of the node''s table) on each node of a sharded group';
COMMENT ON FUNCTION iceml._shard_compute_statistics(regclass) IS
    'internal: compute_statistics of a sharded group: the nodes'' summaries and histograms merged into iceml.feature_statistics';

-- --------------------------------------------------------------------
-- predictions where the rows are (src/shard/shard_predict.c)
--
-- iceml_predict over a sharded group is planned on the coordinator as
-- iceml.predict_model(model_id, content_hash, ...): IMMUTABLE, because a
-- content hash (SHA-256 of the serialised net and its channels) names
-- weights that never change, so postgres_fdw sends it to the nodes.  The
-- coordinator copies the model to each node first (iceml.receive_model
-- there); the copies are kept in iceml.shipped_models.
-- --------------------------------------------------------------------

CREATE TABLE iceml.shipped_models (
    content_hash text PRIMARY KEY CHECK (content_hash OPERATOR(pg_catalog.~) '^[0-9a-f]{64}$'),
    model_id     bigint NOT NULL,           -- the sender's id of the model
    channels     text[] NOT NULL,
    weights      bytea NOT NULL,
    bytes        bigint NOT NULL,
    received_at  timestamptz NOT NULL DEFAULT pg_catalog.now(),
    received_by  regrole NOT NULL
);
COMMENT ON TABLE iceml.shipped_models IS
    'models a coordinator copied to this server (a node) to predict where the rows are, by content hash (SHA-256 of the serialised net and its channels)';
SELECT pg_catalog.pg_extension_config_dump('iceml.shipped_models', '');
ALTER TABLE iceml.shipped_models ENABLE ROW LEVEL SECURITY;
CREATE POLICY shipped_models_read ON iceml.shipped_models FOR SELECT USING (true);
-- who may see which copy: everyone the hash (never the weights: those are
-- read by iceml_admin and by iceml's own functions)
GRANT SELECT (content_hash, model_id, channels, bytes, received_at, received_by)
    ON iceml.shipped_models TO iceml_reader;
GRANT SELECT ON iceml.shipped_models TO iceml_admin;

CREATE FUNCTION iceml._model_content_hash(weights bytea, channels text[], model_id bigint DEFAULT 0) RETURNS text
    AS 'MODULE_PATHNAME', 'iceml_model_content_hash'
    LANGUAGE C IMMUTABLE STRICT PARALLEL SAFE;
COMMENT ON FUNCTION iceml._model_content_hash(bytea, text[], bigint) IS
    'internal: the content hash of a serialised model (SHA-256 of the net, a zero byte and its channels), after checking that it loads (model_id names it in errors)';

CREATE FUNCTION iceml.predict_model(model_id bigint, content_hash bytea, band_1 real[], band_2 real[],
                                    inc_angle real DEFAULT NULL)
    RETURNS real
    AS 'MODULE_PATHNAME', 'iceml_predict_model'
    LANGUAGE C IMMUTABLE PARALLEL SAFE COST 100000;
COMMENT ON FUNCTION iceml.predict_model(bigint, bytea, real[], real[], real) IS
    'iceml_predict by a model''s content: the model of that content hash (the 32 bytes of its SHA-256) (a copy in iceml.shipped_models, or this server''s model model_id when its content matches); what iceml_predict over a sharded feature group is planned as, so that it runs on the nodes';

CREATE FUNCTION iceml._receive_model(model_id bigint, content_hash text, weights bytea, channels text[])
    RETURNS text
    LANGUAGE plpgsql VOLATILE PARALLEL UNSAFE
    SET search_path = pg_catalog, pg_temp
AS $fn$
DECLARE
    v_hash text;
BEGIN
    IF model_id IS NULL OR content_hash IS NULL OR weights IS NULL OR channels IS NULL THEN
        RAISE EXCEPTION 'receive_model arguments must not be NULL' USING ERRCODE = '22004';
    END IF;
    v_hash := iceml._model_content_hash(weights, channels, model_id);
    IF v_hash <> content_hash THEN
        RAISE EXCEPTION 'model % does not have content hash %', model_id, content_hash
            USING ERRCODE = '22023',
                  DETAIL = format('Its weights and channels hash to %s.', v_hash),
                  HINT = 'The copy was damaged or is not the model named; nothing was stored.';
    END IF;
    INSERT INTO iceml.shipped_models (content_hash, model_id, channels, weights, bytes, received_by)
    VALUES (v_hash, _receive_model.model_id, _receive_model.channels, _receive_model.weights,
            octet_length(_receive_model.weights), iceml._caller())
    ON CONFLICT ON CONSTRAINT shipped_models_pkey DO NOTHING;
    RETURN v_hash;
END
$fn$;
CREATE FUNCTION iceml.receive_model(model_id bigint, content_hash text, weights bytea, channels text[])
    RETURNS text
    AS 'MODULE_PATHNAME', 'iceml_gate'
    LANGUAGE C VOLATILE;
COMMENT ON FUNCTION iceml.receive_model(bigint, text, bytea, text[]) IS
    'stores a coordinator''s model on this node under its content hash, after checking that the weights and channels hash to it and load; returns the hash';
COMMENT ON FUNCTION iceml._receive_model(bigint, text, bytea, text[]) IS
    'internal: the implementation of iceml.receive_model (run as the catalog owner)';

REVOKE ALL ON FUNCTION iceml.predict_model(bigint, bytea, real[], real[], real) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION iceml.predict_model(bigint, bytea, real[], real[], real) TO iceml_reader;
-- a node's role (an iceml_user) receives the coordinator's models; a copy
-- is checked against its content hash, so no one can plant other weights
-- under a hash
GRANT EXECUTE ON FUNCTION iceml.receive_model(bigint, text, bytea, text[]) TO iceml_user;

-- --------------------------------------------------------------------
-- removing copies (README "Scale-out": copies): a coordinator removes the
-- copies of models that no deployment names any more when it ships a new
-- one, in iceml.cleanup_shipped_models, and all its copies in drop_node
-- --------------------------------------------------------------------

-- on a node: the caller's copies (those it received) of these hashes, or all
CREATE FUNCTION iceml._drop_shipped_models(content_hashes text[]) RETURNS bigint
    LANGUAGE plpgsql VOLATILE PARALLEL UNSAFE
    SET search_path = pg_catalog, pg_temp
AS $fn$
DECLARE
    n bigint;
BEGIN
    DELETE FROM iceml.shipped_models s
     WHERE s.received_by::oid = iceml._caller()
       AND (content_hashes IS NULL OR s.content_hash = ANY (content_hashes));
    GET DIAGNOSTICS n = ROW_COUNT;
    RETURN n;
END
$fn$;
CREATE FUNCTION iceml.drop_shipped_models(content_hashes text[]) RETURNS bigint
    AS 'MODULE_PATHNAME', 'iceml_gate'
    LANGUAGE C VOLATILE;
COMMENT ON FUNCTION iceml.drop_shipped_models(text[]) IS
    'run on a node by a coordinator: removes the copies the calling role received (iceml.receive_model) with these content hashes, or all of them for NULL; returns how many';
COMMENT ON FUNCTION iceml._drop_shipped_models(text[]) IS
    'internal: the implementation of iceml.drop_shipped_models (run as the catalog owner)';
GRANT EXECUTE ON FUNCTION iceml.drop_shipped_models(text[]) TO iceml_user;

-- on the coordinator: the content of models deployed once and no longer
-- (not the current model or a member of the current ensemble of any name)
CREATE FUNCTION iceml._retired_model_hashes() RETURNS text[]
    LANGUAGE sql STABLE PARALLEL SAFE
    SET search_path = pg_catalog, pg_temp
BEGIN ATOMIC
    WITH current AS (
        SELECT DISTINCT ON (d.name) d.model_id, d.members FROM iceml.deployments d ORDER BY d.name, d.id DESC),
    current_ids AS (
        SELECT pg_catalog.unnest(COALESCE(c.members, ARRAY[c.model_id])) AS id FROM current c),
    ever_ids AS (
        SELECT d.model_id AS id FROM iceml.deployments d
        UNION SELECT pg_catalog.unnest(d.members) FROM iceml.deployments d WHERE d.members IS NOT NULL),
    hashes AS (
        SELECT iceml._model_content_hash(m.weights, m.channels, m.id) AS h,
               m.id IN (SELECT current_ids.id FROM current_ids) AS is_current
          FROM iceml.models m WHERE m.id IN (SELECT ever_ids.id FROM ever_ids))
    SELECT pg_catalog.array_agg(DISTINCT r.h ORDER BY r.h) FROM hashes r
     WHERE NOT r.is_current AND r.h NOT IN (SELECT c.h FROM hashes c WHERE c.is_current);
END;
COMMENT ON FUNCTION iceml._retired_model_hashes() IS
    'internal: content hashes of models deployed once and no longer named by any deployment (their copies on nodes are not needed)';

CREATE FUNCTION iceml._drop_node_models(node text, content_hashes text[]) RETURNS bigint
    AS 'MODULE_PATHNAME', 'iceml_drop_node_models'
    LANGUAGE C VOLATILE PARALLEL UNSAFE;
COMMENT ON FUNCTION iceml._drop_node_models(text, text[]) IS
    'internal: removes this coordinator''s copies of these content hashes (all for NULL) from a node, committed there at once';

CREATE FUNCTION iceml._cleanup_shipped_models(node text DEFAULT NULL) RETURNS bigint
    LANGUAGE plpgsql VOLATILE PARALLEL UNSAFE
    SET search_path = pg_catalog, pg_temp
AS $fn$
DECLARE
    v_retired text[] := iceml._retired_model_hashes();
    v_n       bigint := 0;
    n         record;
BEGIN
    IF node IS NOT NULL AND NOT EXISTS (SELECT FROM iceml.shard_nodes x WHERE x.name = node) THEN
        RAISE EXCEPTION 'node "%" does not exist', node USING ERRCODE = '42704',
            HINT = 'Nodes are listed in iceml.nodes.';
    END IF;
    IF v_retired IS NULL THEN
        RETURN 0;
    END IF;
    FOR n IN SELECT x.name FROM iceml.shard_nodes x
              WHERE _cleanup_shipped_models.node IS NULL OR x.name = _cleanup_shipped_models.node
              ORDER BY x.name LOOP
        -- a node that does not answer keeps its copies until the next time
        BEGIN
            v_n := v_n + iceml._drop_node_models(n.name, v_retired);
        EXCEPTION WHEN OTHERS THEN
            RAISE WARNING 'the copies on node "%" were left there: %', n.name, SQLERRM;
        END;
    END LOOP;
    RETURN v_n;
END
$fn$;
CREATE FUNCTION iceml.cleanup_shipped_models(node text DEFAULT NULL) RETURNS bigint
    AS 'MODULE_PATHNAME', 'iceml_gate'
    LANGUAGE C VOLATILE;
COMMENT ON FUNCTION iceml.cleanup_shipped_models(text) IS
    'removes from the nodes (or one node) the copies of models that no deployment here names any more; returns how many';
COMMENT ON FUNCTION iceml._cleanup_shipped_models(text) IS
    'internal: the implementation of iceml.cleanup_shipped_models (run as the catalog owner)';
GRANT EXECUTE ON FUNCTION iceml.cleanup_shipped_models(text) TO iceml_admin;
