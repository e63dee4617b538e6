
-- ====================================================================
-- 62: a study's trials on the nodes (README "Scale-out", "Trials on
-- nodes"; src/shard/remote_trial.c)
--
-- iceml.tune(..., nodes => ARRAY['n1', 'n2']) queues every trial on the
-- coordinator as usual and places it on a node (round robin), in
-- iceml.remote_trials.  The coordinator's worker that claims such a trial
-- does not train: connected to the node through the node's postgres_fdw
-- server and the run's role's user mapping, it sends the training dataset
-- (iceml.receive_trial_data there), queues the trial there
-- (iceml.run_trial: a run of the node's own workers, with the node's
-- cores), copies each epoch's metrics back, passes on cancel and ASHA's
-- stops, and at the end copies the model into the coordinator's catalog,
-- where deploy, ASHA and the study's best trial treat it as a local one.
-- Then the node forgets the trial (iceml.forget_trial): its run, model and
-- the dataset copy once no trial of it is left.
-- ====================================================================

CREATE TABLE iceml.remote_trials (
    run_id        bigint PRIMARY KEY REFERENCES iceml.runs (id) ON DELETE CASCADE,
    study_id      bigint NOT NULL REFERENCES iceml.studies (id) ON DELETE CASCADE,
    node          text NOT NULL,
    threads_share integer CHECK (threads_share OPERATOR(pg_catalog.>) 0),
    data_key      text NOT NULL CHECK (data_key OPERATOR(pg_catalog.~) '^trial_[0-9a-f]{32}$'),
    node_run      bigint,
    queued_at     timestamptz,
    forgotten_at  timestamptz
);
CREATE INDEX ON iceml.remote_trials (node);
COMMENT ON TABLE iceml.remote_trials IS
    'trials of studies placed on nodes (iceml.tune(..., nodes => ...)): the node, the run''s id there once queued, the share of the node''s threads, the name of the dataset''s copy there';
COMMENT ON COLUMN iceml.remote_trials.forgotten_at IS
    'when the node forgot the trial''s run there (its run, model and dataset copy); NULL while it may still be there: a trial whose node went away is forgotten when a trial of the same role is next placed on that node';
COMMENT ON COLUMN iceml.remote_trials.threads_share IS
    'the trial gets iceml.train_threads / threads_share of the node''s threads; NULL when the hyperparameters set "threads"';
SELECT pg_catalog.pg_extension_config_dump('iceml.remote_trials', '');
ALTER TABLE iceml.remote_trials ENABLE ROW LEVEL SECURITY;
-- as for run_metrics: the rows of the runs one may see
CREATE POLICY own_remote_trials ON iceml.remote_trials FOR SELECT
    USING (run_id OPERATOR(pg_catalog.=) ANY (ARRAY(SELECT id FROM iceml.runs)));
GRANT SELECT ON iceml.remote_trials TO iceml_reader;

-- ---- on the coordinator, called by iceml._tune -----------------------------

CREATE FUNCTION iceml._check_trial_nodes(nodes text[]) RETURNS void
    AS 'MODULE_PATHNAME', 'iceml_check_trial_nodes'
    LANGUAGE C VOLATILE PARALLEL UNSAFE;
COMMENT ON FUNCTION iceml._check_trial_nodes(text[]) IS
    'internal: refuses nodes for a study''s trials unless each exists, the caller may use its foreign server (USAGE), and, connected as the caller, iceml runs there at this version for a member of iceml_user';

CREATE FUNCTION iceml._place_trial(run_id bigint, study_id bigint, node text, threads_share integer,
                                   data_key text) RETURNS void
    LANGUAGE sql VOLATILE PARALLEL UNSAFE
    SET search_path = pg_catalog, pg_temp
BEGIN ATOMIC
    INSERT INTO iceml.remote_trials (run_id, study_id, node, threads_share, data_key)
    VALUES (_place_trial.run_id, _place_trial.study_id, _place_trial.node, _place_trial.threads_share,
            _place_trial.data_key);
END;
COMMENT ON FUNCTION iceml._place_trial(bigint, bigint, text, integer, text) IS
    'internal: places a queued trial on a node';

-- ---- on a node, called by a coordinator's trial worker ---------------------

-- The table that will hold a copy of a coordinator's training dataset,
-- iceml_td.<key>, owned by the caller (the node role); false when it is
-- there already (another trial of the same study).  The caller then fills
-- it by COPY in the same transaction, which holds the key's lock until it
-- commits, so forget_trial never drops a copy a trial is being queued on.
CREATE FUNCTION iceml._receive_trial_data(key text, columns jsonb) RETURNS boolean
    LANGUAGE plpgsql VOLATILE PARALLEL UNSAFE
    SET search_path = pg_catalog, pg_temp
AS $fn$
DECLARE
    v_rel  regclass;
    v_cols text;
BEGIN
    IF key IS NULL OR key !~ '^trial_[0-9a-f]{32}$' THEN
        RAISE EXCEPTION 'invalid trial data key %', coalesce(quote_literal(key), 'NULL')
            USING ERRCODE = '22023', HINT = 'A key is "trial_" and 32 hexadecimal digits.';
    END IF;
    IF columns IS NULL OR jsonb_typeof(columns) <> 'array' OR jsonb_array_length(columns) = 0
       OR EXISTS (SELECT FROM jsonb_array_elements(columns) c
                   WHERE jsonb_typeof(c) <> 'object' OR jsonb_typeof(c->'name') <> 'string'
                      OR jsonb_typeof(c->'type') <> 'string') THEN
        RAISE EXCEPTION 'columns must be a non-empty array of {"name", "type"} objects, not %',
                        coalesce(columns::text, 'NULL')
            USING ERRCODE = '22023';
    END IF;
    PERFORM pg_advisory_xact_lock(hashtextextended('iceml trial data ' || key, 0));
    v_rel := to_regclass(format('iceml_td.%I', key));
    IF v_rel IS NOT NULL THEN
        IF NOT EXISTS (SELECT FROM pg_class c WHERE c.oid = v_rel AND c.relowner = iceml._caller()) THEN
            RAISE EXCEPTION 'trial data % belongs to another role', v_rel USING ERRCODE = '42501';
        END IF;
        RETURN false;
    END IF;
    -- each type through regtype: a built-in type (training datasets hold
    -- nothing else), named as this server names it
    SELECT string_agg(c->>'type', ', ') INTO v_cols FROM jsonb_array_elements(columns) c
     WHERE (SELECT t.typnamespace FROM pg_type t WHERE t.oid = (c->>'type')::regtype)
           OPERATOR(pg_catalog.<>) 'pg_catalog'::regnamespace;
    IF v_cols IS NOT NULL THEN
        RAISE EXCEPTION 'trial data columns must have built-in types, not %', v_cols
            USING ERRCODE = '22023';
    END IF;
    SELECT string_agg(format('%I %s', c->>'name', (c->>'type')::regtype::text), ', ' ORDER BY o)
      INTO v_cols FROM jsonb_array_elements(columns) WITH ORDINALITY AS x(c, o);
    EXECUTE format('CREATE TABLE iceml_td.%I (%s)', key, v_cols);
    EXECUTE format('ALTER TABLE iceml_td.%I OWNER TO %s', key, iceml._caller());  -- regrole: quoted as needed
    RETURN true;
END
$fn$;
CREATE FUNCTION iceml.receive_trial_data(key text, columns jsonb) RETURNS boolean
    AS 'MODULE_PATHNAME', 'iceml_gate'
    LANGUAGE C VOLATILE;
COMMENT ON FUNCTION iceml.receive_trial_data(text, jsonb) IS
    'run on a node by a coordinator: creates iceml_td.<key> (owned by the caller) for a copy of a training dataset, true; false when it is there';
COMMENT ON FUNCTION iceml._receive_trial_data(text, jsonb) IS
    'internal: the implementation of iceml.receive_trial_data (run as the catalog owner)';

-- A trial of a coordinator's study as a run of this server's workers, on
-- a dataset copy of the caller's; it never deploys.  At each epoch of
-- gates (an ASHA study's rungs) it waits for the coordinator's decision:
-- iceml.release_trial lets it go on, iceml.cancel stops it.

-- the gates of trials running here: where each waits, whether the
-- coordinator released it, and the session of the caller that follows it
-- (the trial fails if that session is gone while it waits).  Not dumped:
-- it only matters while a trial runs, and a run found running at a
-- restore is failed as an orphan.
CREATE TABLE iceml.trial_gates (
    run_id   bigint NOT NULL REFERENCES iceml.runs (id) ON DELETE CASCADE,
    epoch    integer NOT NULL CHECK (epoch OPERATOR(pg_catalog.>) 0),
    follower integer NOT NULL,
    follower_start timestamptz NOT NULL,
    released boolean NOT NULL DEFAULT false,
    PRIMARY KEY (run_id, epoch)
);
COMMENT ON TABLE iceml.trial_gates IS
    'on a node: the epochs at which a coordinator''s trial waits for the coordinator''s ASHA decision (iceml.release_trial goes on, iceml.cancel stops), and the coordinator''s session that follows it (its process id and start)';
ALTER TABLE iceml.trial_gates ENABLE ROW LEVEL SECURITY;
CREATE POLICY own_trial_gates ON iceml.trial_gates FOR SELECT
    USING (run_id OPERATOR(pg_catalog.=) ANY (ARRAY(SELECT id FROM iceml.runs)));
GRANT SELECT ON iceml.trial_gates TO iceml_reader;

CREATE FUNCTION iceml._run_trial(experiment text, training_data regclass, architecture text, spec jsonb,
                                hyperparams jsonb, label text, val_split text, trial text, lineage jsonb,
                                threads_share integer, gates integer[] DEFAULT NULL) RETURNS bigint
    AS 'MODULE_PATHNAME', 'iceml_run_trial_impl'
    LANGUAGE C VOLATILE;
CREATE FUNCTION iceml.run_trial(experiment text, training_data regclass, architecture text, spec jsonb,
                               hyperparams jsonb, label text, val_split text, trial text, lineage jsonb,
                               threads_share integer, gates integer[] DEFAULT NULL) RETURNS bigint
    AS 'MODULE_PATHNAME', 'iceml_gate'
    LANGUAGE C VOLATILE;
COMMENT ON FUNCTION iceml.run_trial(text, regclass, text, jsonb, jsonb, text, text, text, jsonb, integer, integer[]) IS
    'run on a node by a coordinator: queues one trial of its study as a run of this server''s workers on a dataset copy of iceml.receive_trial_data; returns the run id here';
COMMENT ON FUNCTION iceml._run_trial(text, regclass, text, jsonb, jsonb, text, text, text, jsonb, integer, integer[]) IS
    'internal: the implementation of iceml.run_trial (run as the catalog owner)';

-- A finished trial's run and model here, and the dataset copy once no
-- other trial uses it.
CREATE FUNCTION iceml._forget_trial(run_id bigint) RETURNS boolean
    LANGUAGE plpgsql VOLATILE PARALLEL UNSAFE
    SET search_path = pg_catalog, pg_temp
AS $fn$
DECLARE
    r      record;
    v_key  text;
BEGIN
    SELECT x.id, x.status, x.training_dataset, c.relname, n.nspname INTO r
      FROM iceml.runs x
      LEFT JOIN pg_class c ON c.oid = x.training_dataset
      LEFT JOIN pg_namespace n ON n.oid = c.relnamespace
     WHERE x.id = _forget_trial.run_id AND x.role = iceml._caller() AND x.lineage ? 'coordinator_run';
    IF NOT FOUND THEN
        RAISE EXCEPTION 'iceml trial run % does not exist', coalesce(_forget_trial.run_id::text, 'NULL')
            USING ERRCODE = '42704', HINT = 'Only the role that queued a trial with iceml.run_trial forgets it.';
    END IF;
    IF r.status IN ('queued', 'running') THEN
        RAISE EXCEPTION 'iceml trial run % is still %', r.id, r.status
            USING ERRCODE = '55000', HINT = 'Cancel it first with iceml.cancel.';
    END IF;
    v_key := r.relname;
    IF v_key IS NOT NULL THEN
        PERFORM pg_advisory_xact_lock(hashtextextended('iceml trial data ' || v_key, 0));
    END IF;
    DELETE FROM iceml.models m WHERE m.run_id = r.id;
    DELETE FROM iceml.runs x WHERE x.id = r.id;
    IF r.nspname = 'iceml_td' AND v_key ~ '^trial_[0-9a-f]{32}$'
       AND NOT EXISTS (SELECT FROM iceml.runs x WHERE x.training_dataset = r.training_dataset) THEN
        EXECUTE format('DROP TABLE iceml_td.%I', v_key);
        RETURN true;
    END IF;
    RETURN false;
END
$fn$;
CREATE FUNCTION iceml.forget_trial(run_id bigint) RETURNS boolean
    AS 'MODULE_PATHNAME', 'iceml_gate'
    LANGUAGE C VOLATILE;
COMMENT ON FUNCTION iceml.forget_trial(bigint) IS
    'run on a node by a coordinator: deletes a finished trial''s run and model here, and drops its dataset copy when no other trial uses it (true then)';
COMMENT ON FUNCTION iceml._forget_trial(bigint) IS
    'internal: the implementation of iceml.forget_trial (run as the catalog owner)';

-- the coordinator's decision at a gate: go on (false: no such gate of the
-- caller's running trial)
CREATE FUNCTION iceml._release_trial(run_id bigint, epoch integer) RETURNS boolean
    LANGUAGE plpgsql VOLATILE PARALLEL UNSAFE
    SET search_path = pg_catalog, pg_temp
AS $fn$
BEGIN
    UPDATE iceml.trial_gates g SET released = true
      FROM iceml.runs x
     WHERE g.run_id OPERATOR(pg_catalog.=) _release_trial.run_id AND g.epoch OPERATOR(pg_catalog.=) _release_trial.epoch
       AND x.id OPERATOR(pg_catalog.=) g.run_id AND x.role OPERATOR(pg_catalog.=) iceml._caller();
    RETURN FOUND;
END
$fn$;
CREATE FUNCTION iceml.release_trial(run_id bigint, epoch integer) RETURNS boolean
    AS 'MODULE_PATHNAME', 'iceml_gate'
    LANGUAGE C VOLATILE STRICT;
COMMENT ON FUNCTION iceml.release_trial(bigint, integer) IS
    'run on a node by a coordinator: the trial waiting at this epoch''s gate (an ASHA rung) goes on; false when the caller has no such gate';
COMMENT ON FUNCTION iceml._release_trial(bigint, integer) IS
    'internal: the implementation of iceml.release_trial (run as the catalog owner)';

-- a coordinator's new session takes over following a trial (a resumed
-- one): its gates wait for this session; false when the caller has no
-- such trial here
CREATE FUNCTION iceml._adopt_trial(run_id bigint) RETURNS boolean
    LANGUAGE plpgsql VOLATILE PARALLEL UNSAFE
    SET search_path = pg_catalog, pg_temp
AS $fn$
BEGIN
    PERFORM FROM iceml.runs x
     WHERE x.id OPERATOR(pg_catalog.=) _adopt_trial.run_id AND x.role OPERATOR(pg_catalog.=) iceml._caller()
       AND x.lineage ? 'coordinator_run';
    IF NOT FOUND THEN
        RETURN false;
    END IF;
    UPDATE iceml.trial_gates g
       SET follower = pg_catalog.pg_backend_pid(),
           follower_start = (SELECT a.backend_start FROM pg_catalog.pg_stat_activity a
                              WHERE a.pid OPERATOR(pg_catalog.=) pg_catalog.pg_backend_pid())
     WHERE g.run_id OPERATOR(pg_catalog.=) _adopt_trial.run_id;
    RETURN true;
END
$fn$;
CREATE FUNCTION iceml.adopt_trial(run_id bigint) RETURNS boolean
    AS 'MODULE_PATHNAME', 'iceml_gate'
    LANGUAGE C VOLATILE STRICT;
COMMENT ON FUNCTION iceml.adopt_trial(bigint) IS
    'run on a node by a coordinator resuming a trial there: its gates (ASHA rungs) wait for the calling session from now on; false when the caller has no such trial';
COMMENT ON FUNCTION iceml._adopt_trial(bigint) IS
    'internal: the implementation of iceml.adopt_trial (run as the catalog owner)';

-- a node's role (an iceml_user) receives and runs a coordinator's trials
GRANT EXECUTE ON FUNCTION iceml.receive_trial_data(text, jsonb),
    iceml.run_trial(text, regclass, text, jsonb, jsonb, text, text, text, jsonb, integer, integer[]),
    iceml.forget_trial(bigint), iceml.release_trial(bigint, integer), iceml.adopt_trial(bigint)
    TO iceml_user;
