
-- ====================================================================
-- 63: calls predicted on the nodes, logged for monitoring as on one
-- server (README "Scale-out": monitoring).
--
-- On a node, iceml.predict_model samples its calls as iceml_predict does
-- (the node's iceml.log_inferences) into the node's iceml.inference_log,
-- under the coordinator's model id, with no name, as the node role.  The
-- coordinator collects them (iceml.collect_inferences, which
-- iceml.monitor calls first) into its own iceml.inference_log under the
-- deployment that served that model then.  Exactly once without two-phase
-- commit: the coordinator keeps, per node, the last record id it has
-- (iceml.node_inference_marks, written with the records); each collection
-- asks the node for the records after it and lets it delete those up to it.
-- ====================================================================

CREATE TABLE iceml.node_inference_marks (
    node         text PRIMARY KEY,
    last_id      bigint NOT NULL,
    collected_at timestamptz NOT NULL DEFAULT pg_catalog.now()
);
COMMENT ON TABLE iceml.node_inference_marks IS
    'per node, the id (in the node''s iceml.inference_log) of the last logged call collected here';
SELECT pg_catalog.pg_extension_config_dump('iceml.node_inference_marks', '');
ALTER TABLE iceml.node_inference_marks ENABLE ROW LEVEL SECURITY;
CREATE POLICY node_inference_marks_read ON iceml.node_inference_marks FOR SELECT USING (true);
GRANT SELECT ON iceml.node_inference_marks TO iceml_reader;

-- on a node: the caller's logged calls after id `after` (at most 50000),
-- deleting those up to it (the coordinator has them)
CREATE FUNCTION iceml._hand_over_inferences(after bigint) RETURNS jsonb
    LANGUAGE plpgsql VOLATILE PARALLEL UNSAFE
    SET search_path = pg_catalog, pg_temp
AS $fn$
DECLARE
    v_role name := (SELECT r.rolname FROM pg_roles r WHERE r.oid = iceml._caller());
BEGIN
    IF after IS NULL OR after < 0 THEN
        RAISE EXCEPTION 'after must be a record id >= 0, not %', coalesce(after::text, 'NULL')
            USING ERRCODE = '22023';
    END IF;
    DELETE FROM iceml.inference_log l
     WHERE l.id <= after AND l.role = v_role AND l.name IS NULL AND l.deployment_id IS NULL;
    RETURN (SELECT coalesce(jsonb_agg(to_jsonb(l) ORDER BY l.id), '[]')
              FROM (SELECT * FROM iceml.inference_log l
                     WHERE l.id > after AND l.role = v_role AND l.name IS NULL AND l.deployment_id IS NULL
                     ORDER BY l.id LIMIT 50000) l);
END
$fn$;
CREATE FUNCTION iceml.hand_over_inferences(after bigint) RETURNS jsonb
    AS 'MODULE_PATHNAME', 'iceml_gate'
    LANGUAGE C VOLATILE;
COMMENT ON FUNCTION iceml.hand_over_inferences(bigint) IS
    'run on a node by a coordinator: the calls the calling role predicted here by model content (iceml.predict_model) logged after record id after, at most 50000, as jsonb; deletes those up to it';
COMMENT ON FUNCTION iceml._hand_over_inferences(bigint) IS
    'internal: the implementation of iceml.hand_over_inferences (run as the catalog owner)';
GRANT EXECUTE ON FUNCTION iceml.hand_over_inferences(bigint) TO iceml_user;

CREATE FUNCTION iceml._node_call(node text, sql text, arg text) RETURNS text
    AS 'MODULE_PATHNAME', 'iceml_node_call'
    LANGUAGE C VOLATILE PARALLEL UNSAFE;
COMMENT ON FUNCTION iceml._node_call(text, text, text) IS
    'internal: one statement with one text parameter on a node, committed there at once; the first column of its first row';

-- on the coordinator: the nodes' logged calls into iceml.inference_log
CREATE FUNCTION iceml._collect_inferences(node text DEFAULT NULL) RETURNS bigint
    LANGUAGE plpgsql VOLATILE PARALLEL UNSAFE
    SET search_path = pg_catalog, pg_temp
AS $fn$
DECLARE
    n       record;
    v_mark  bigint;
    v_rows  jsonb;
    v_total bigint := 0;
BEGIN
    IF node IS NOT NULL AND NOT EXISTS (SELECT FROM iceml.shard_nodes x WHERE x.name = node) THEN
        RAISE EXCEPTION 'node "%" does not exist', node USING ERRCODE = '42704',
            HINT = 'Nodes are listed in iceml.nodes.';
    END IF;
    FOR n IN SELECT x.name FROM iceml.shard_nodes x
              WHERE _collect_inferences.node IS NULL OR x.name = _collect_inferences.node
              ORDER BY x.name LOOP
        -- one collection per node at a time
        PERFORM pg_advisory_xact_lock(hashtextextended('iceml node inferences ' || n.name, 0));
        SELECT m.last_id INTO v_mark FROM iceml.node_inference_marks m WHERE m.node = n.name;
        LOOP
            v_rows := iceml._node_call(n.name, 'SELECT iceml.hand_over_inferences($1::pg_catalog.int8)',
                                       coalesce(v_mark, 0)::text)::jsonb;
            EXIT WHEN jsonb_array_length(v_rows) = 0;
            INSERT INTO iceml.inference_log (logged_at, name, model_id, deployment_id, role, latency_ms, prediction,
                                             inc_angle, band_1_mean, band_1_max, band_2_mean, band_2_max)
            SELECT (r->>'logged_at')::timestamptz, d.name, (r->>'model_id')::bigint, d.id, r->>'role',
                   (r->>'latency_ms')::real, (r->>'prediction')::real, (r->>'inc_angle')::real,
                   (r->>'band_1_mean')::real, (r->>'band_1_max')::real, (r->>'band_2_mean')::real,
                   (r->>'band_2_max')::real
              FROM jsonb_array_elements(v_rows) r
              -- the deployment that served the model then (the latest one
              -- naming it, if the clocks disagree)
              LEFT JOIN LATERAL (
                  SELECT x.id, x.name FROM iceml.deployments x
                   WHERE x.model_id = (r->>'model_id')::bigint
                   ORDER BY x.deployed_at <= (r->>'logged_at')::timestamptz DESC, x.id DESC LIMIT 1) d ON true;
            v_total := v_total + jsonb_array_length(v_rows);
            v_mark := (SELECT max((r->>'id')::bigint) FROM jsonb_array_elements(v_rows) r);
            INSERT INTO iceml.node_inference_marks AS m (node, last_id) VALUES (n.name, v_mark)
            ON CONFLICT ON CONSTRAINT node_inference_marks_pkey
            DO UPDATE SET last_id = EXCLUDED.last_id, collected_at = pg_catalog.now();
            EXIT WHEN jsonb_array_length(v_rows) < 50000;
        END LOOP;
    END LOOP;
    RETURN v_total;
END
$fn$;
CREATE FUNCTION iceml.collect_inferences(node text DEFAULT NULL) RETURNS bigint
    AS 'MODULE_PATHNAME', 'iceml_gate'
    LANGUAGE C VOLATILE;
COMMENT ON FUNCTION iceml.collect_inferences(text) IS
    'collects the calls predicted on the nodes (or one node) and logged there into iceml.inference_log here, under the deployment that served them; iceml.monitor calls it first; returns how many';
COMMENT ON FUNCTION iceml._collect_inferences(text) IS
    'internal: the implementation of iceml.collect_inferences (run as the catalog owner)';
GRANT EXECUTE ON FUNCTION iceml.collect_inferences(text) TO iceml_user;
