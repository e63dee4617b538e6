
-- 41: architectures, iceml.train(), iceml.wait(), iceml.cancel(),
-- iceml.resume() and iceml.progress.

-- ---- engine access ---------------------------------------------------------

CREATE FUNCTION iceml._spec_info(spec jsonb, OUT spec jsonb, OUT parameters bigint, OUT channels integer,
                                 OUT forward_flops double precision)
    AS 'MODULE_PATHNAME', 'iceml_spec_info'
    LANGUAGE C STABLE STRICT PARALLEL SAFE;
COMMENT ON FUNCTION iceml._spec_info(jsonb) IS
    'the engine''s canonical form of an architecture spec, its parameter count, input channels and floating-point operations per image forward; refuses an invalid spec';

-- Resource limits (src/limits.c): iceml.max_model_mb for the model of a
-- spec and, with a batch size, iceml.train_memory_mb for training it on so
-- many images; from the engine's memory plan, before anything is allocated.
CREATE FUNCTION iceml._check_limits(name text, spec jsonb, batch_size integer, images bigint)
    RETURNS void
    AS 'MODULE_PATHNAME', 'iceml_check_limits'
    LANGUAGE C STABLE PARALLEL SAFE;
COMMENT ON FUNCTION iceml._check_limits(text, jsonb, integer, bigint) IS
    'refuses a spec whose model exceeds iceml.max_model_mb (54000) or whose training with batch_size on images images exceeds iceml.train_memory_mb (53200)';

CREATE FUNCTION iceml._max_train_threads() RETURNS integer
    AS 'MODULE_PATHNAME', 'iceml_max_train_threads'
    LANGUAGE C STABLE PARALLEL SAFE;
COMMENT ON FUNCTION iceml._max_train_threads() IS
    'the most threads a run may ask for: the server''s processors (at most 64), or iceml.train_threads if higher';

CREATE FUNCTION iceml._builtin_spec(name text) RETURNS jsonb
    AS 'MODULE_PATHNAME', 'iceml_builtin_spec'
    LANGUAGE C IMMUTABLE STRICT PARALLEL SAFE;
COMMENT ON FUNCTION iceml._builtin_spec(text) IS 'a built-in architecture spec of the engine';

INSERT INTO iceml.architectures (name, spec, parameters, builtin)
SELECT 'statoil_cnn', i.spec, i.parameters, true
  FROM iceml._spec_info(iceml._builtin_spec('statoil_cnn')) i;

-- the recipe's network (README): batch norm and global average pooling
INSERT INTO iceml.architectures (name, spec, parameters, builtin)
SELECT 'recipe_cnn', i.spec, i.parameters, true
  FROM iceml._spec_info(iceml._builtin_spec('recipe_cnn')) i;

-- a few thousand parameters, seconds per epoch: for tests and demos
INSERT INTO iceml.architectures (name, spec, parameters, builtin)
SELECT 'tiny_cnn', i.spec, i.parameters, true
  FROM iceml._spec_info('{"input": [3, 75, 75], "layers": [
        {"type": "conv2d", "filters": 16, "kernel": 3, "stride": 2, "activation": "relu", "group": "conv", "name": "conv1"},
        {"type": "maxpool", "size": 2, "stride": 2, "group": "maxpool", "name": "pool1"},
        {"type": "conv2d", "filters": 32, "kernel": 3, "activation": "relu", "group": "conv", "name": "conv2"},
        {"type": "maxpool", "size": 2, "stride": 2, "group": "maxpool", "name": "pool2"},
        {"type": "dropout", "rate": 0.1, "group": "dropout", "name": "drop1"},
        {"type": "gap"},
        {"type": "dense", "units": 16, "activation": "relu", "group": "dense", "name": "fc1"},
        {"type": "dense", "units": 1, "activation": "sigmoid", "name": "out"}]}') i;

SELECT pg_catalog.pg_extension_config_dump('iceml.architectures', 'WHERE NOT builtin');

-- users add architectures through iceml.create_architecture(); the trigger
-- has the engine check the spec
CREATE FUNCTION iceml._architecture_check() RETURNS trigger
    LANGUAGE plpgsql
    SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    info record;
BEGIN
    SELECT * INTO info FROM iceml._spec_info(NEW.spec);
    NEW.spec := info.spec;
    NEW.parameters := info.parameters;
    NEW.builtin := false;
    -- owner and created_at are as inserted: iceml._create_architecture
    -- names the caller, and a row restored by pg_restore keeps its own
    RETURN NEW;
END
$$;
COMMENT ON FUNCTION iceml._architecture_check() IS
    'checks a new architecture''s spec with the engine and records its parameter count and owner';
CREATE TRIGGER architecture_check BEFORE INSERT OR UPDATE ON iceml.architectures
    FOR EACH ROW EXECUTE FUNCTION iceml._architecture_check();

CREATE FUNCTION iceml._create_architecture(name text, spec jsonb) RETURNS bigint
    LANGUAGE plpgsql VOLATILE STRICT
    SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    info record;
BEGIN
    IF name !~ '^[a-z][a-z0-9_]{0,62}$' THEN
        RAISE EXCEPTION 'invalid architecture name "%"', name
            USING ERRCODE = '22023',
                  HINT = 'Use lower-case letters, digits and underscores, starting with a letter.';
    END IF;
    IF EXISTS (SELECT FROM iceml.architectures a WHERE a.name = _create_architecture.name) THEN
        RAISE EXCEPTION 'architecture "%" already exists', name USING ERRCODE = '42710';
    END IF;
    INSERT INTO iceml.architectures AS a (name, spec, owner)
    VALUES (_create_architecture.name, _create_architecture.spec, pg_get_userbyid(iceml._caller()))
    RETURNING a.parameters INTO info;
    -- checked here, not by the trigger, so that a restore keeps what it has
    PERFORM iceml._check_limits(_create_architecture.name, _create_architecture.spec, NULL, NULL);
    RETURN info.parameters;
END
$$;
CREATE FUNCTION iceml.create_architecture(name text, spec jsonb) RETURNS bigint
    AS 'MODULE_PATHNAME', 'iceml_gate'
    LANGUAGE C VOLATILE STRICT;
COMMENT ON FUNCTION iceml.create_architecture(text, jsonb) IS
    'checks an architecture spec with the engine and registers it by name; returns its parameter count';

-- ---- runs ------------------------------------------------------------------

CREATE FUNCTION iceml._insert_study(kind text, experiment text, training_dataset regclass,
                                    architecture text, strategy text, search_space jsonb,
                                    components jsonb, trials integer, parallel integer,
                                    metric text, hyperparams jsonb)
    RETURNS bigint
    AS 'MODULE_PATHNAME', 'iceml_insert_study'
    LANGUAGE C VOLATILE;
COMMENT ON FUNCTION iceml._insert_study(text, text, regclass, text, text, jsonb, jsonb, integer, integer, text, jsonb) IS
    'records a study as the catalog owner, on behalf of the calling role; internal to iceml.tune and iceml.ablation_study';

CREATE FUNCTION iceml._maintain() RETURNS integer
    AS 'MODULE_PATHNAME', 'iceml_maintain'
    LANGUAGE C VOLATILE;
COMMENT ON FUNCTION iceml._maintain() IS
    'marks runs whose worker died as failed and starts queued runs that have room; returns how many runs were marked';

CREATE FUNCTION iceml._xmin_is_current(xid) RETURNS boolean
    AS 'MODULE_PATHNAME', 'iceml_xmin_is_current'
    LANGUAGE C STABLE STRICT PARALLEL RESTRICTED;
COMMENT ON FUNCTION iceml._xmin_is_current(xid) IS
    'whether a row version was written by the current transaction';

-- What a run needs to know about its training dataset.
CREATE FUNCTION iceml._dataset_info(training_dataset regclass,
                                    OUT label text, OUT val_split text, OUT lineage jsonb)
    LANGUAGE plpgsql STABLE STRICT
    SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    td record;
BEGIN
    SELECT * INTO td FROM iceml.training_datasets t WHERE t."table" = training_dataset;
    IF NOT FOUND THEN
        RAISE EXCEPTION 'relation % is not an iceml training dataset', training_dataset
            USING ERRCODE = '22023',
                  HINT = 'Create one with iceml.create_training_dataset(); iceml.training_datasets lists them.';
    END IF;
    IF NOT td.splits ? 'train' THEN
        RAISE EXCEPTION 'training dataset % has no "train" split', training_dataset
            USING ERRCODE = '22023';
    END IF;
    label := td.label;
    val_split := CASE WHEN td.splits ? 'validation' THEN 'validation'
                      WHEN td.splits ? 'test' THEN 'test' END;
    lineage := jsonb_build_object('training_dataset', training_dataset::text,
                                  'name', td.name, 'version', td.version,
                                  'feature_group', td.feature_group::text,
                                  'feature_group_version', td.feature_group_version,
                                  'commit_id', td.commit_id, 'splits', td.splits, 'seed', td.seed,
                                  'label', td.label, 'features', to_jsonb(td.features));
END
$$;
COMMENT ON FUNCTION iceml._dataset_info(regclass) IS
    'label column, validation split and lineage of a training dataset';

-- Hyperparameters with their defaults filled in; every fault is 22023
-- naming the key and the value.  src/jobs/hyperparams.c holds the one table of
-- hyperparameters, their ranges and defaults; the worker parses a run's
-- hyperparameters with it too.
CREATE FUNCTION iceml._resolve_hyperparams(hyperparams jsonb, training_dataset regclass)
    RETURNS jsonb
    AS 'MODULE_PATHNAME', 'iceml_resolve_hyperparams'
    LANGUAGE C STABLE PARALLEL SAFE;
COMMENT ON FUNCTION iceml._resolve_hyperparams(jsonb, regclass) IS
    'checks training hyperparameters against a training dataset and fills in their defaults';

CREATE FUNCTION iceml._tunable_hyperparameters() RETURNS text[]
    AS 'MODULE_PATHNAME', 'iceml_tunable_hyperparameters'
    LANGUAGE C IMMUTABLE PARALLEL SAFE;
COMMENT ON FUNCTION iceml._tunable_hyperparameters() IS
    'the hyperparameters a search space may set';

-- Queue one run after checking everything a worker would trip over (the
-- dataset, hyperparameters, spec, memory limits, channels); its worker
-- starts at commit when launch is true.  Internal to iceml.train and studies.
CREATE FUNCTION iceml._queue_run(experiment text, training_dataset regclass, architecture text,
                                 spec jsonb, hyperparams jsonb, study_id bigint, trial text,
                                 launch boolean)
    RETURNS bigint
    AS 'MODULE_PATHNAME', 'iceml_queue_run'
    LANGUAGE C VOLATILE;
COMMENT ON FUNCTION iceml._queue_run(text, regclass, text, jsonb, jsonb, bigint, text, boolean) IS
    'checks and queues one training run on behalf of the calling role; internal to iceml.train and studies';

CREATE FUNCTION iceml._architecture_spec(architecture text) RETURNS jsonb
    AS 'MODULE_PATHNAME', 'iceml_architecture_spec'
    LANGUAGE C STABLE;
COMMENT ON FUNCTION iceml._architecture_spec(text) IS 'the spec of a named architecture, or a clear error';

-- iceml.train's implementation, in C (src/jobs/runs.c): the architecture by
-- name, then the same checks and queueing as every trial (_queue_run)
CREATE FUNCTION iceml._train(experiment text, training_dataset regclass,
                            architecture text DEFAULT 'statoil_cnn', hyperparams jsonb DEFAULT '{}')
    RETURNS bigint
    AS 'MODULE_PATHNAME', 'iceml_train_impl'
    LANGUAGE C VOLATILE;
CREATE FUNCTION iceml.train(experiment text, training_dataset regclass,
                            architecture text DEFAULT 'statoil_cnn', hyperparams jsonb DEFAULT '{}')
    RETURNS bigint
    AS 'MODULE_PATHNAME', 'iceml_gate'
    LANGUAGE C VOLATILE;
COMMENT ON FUNCTION iceml.train(text, regclass, text, jsonb) IS
    'queues a training run and returns its id at once; a background worker trains it, as the calling role, after the transaction commits';

CREATE FUNCTION iceml.cancel(run_id bigint) RETURNS boolean
    AS 'MODULE_PATHNAME', 'iceml_cancel_job'
    LANGUAGE C VOLATILE STRICT;
COMMENT ON FUNCTION iceml.cancel(bigint) IS
    'cancels a run (within one batch) or all unfinished trials of a study; false when it had already ended';

CREATE FUNCTION iceml.resume(run_id bigint) RETURNS bigint
    AS 'MODULE_PATHNAME', 'iceml_resume_run'
    LANGUAGE C VOLATILE STRICT;
COMMENT ON FUNCTION iceml.resume(bigint) IS
    'queues a failed or cancelled run again; it continues after its last checkpointed epoch';

-- ---- watching --------------------------------------------------------------

-- A plain view read as the caller (security_invoker: the runs' row-level
-- security applies); it moves no queue.
CREATE VIEW iceml.progress WITH (security_invoker = true) AS
    SELECT r.id AS run, r.experiment, r.study_id AS study, r.trial, r.status, r.epoch, r.epochs,
           round(100.0 * r.epoch / r.epochs, 1) AS percent,
           CASE WHEN r.started_at IS NOT NULL THEN coalesce(r.finished_at, now()) - r.started_at END AS elapsed,
           CASE WHEN r.status = 'running' AND r.epoch > 0
                THEN (now() - r.started_at) / r.epoch * (r.epochs - r.epoch) END AS eta,
           m.train_loss, m.val_loss, m.val_acc,
           CASE WHEN r.status = 'running' THEN r.worker_pid END AS worker_pid, r.model_id AS model, r.error
      FROM iceml.runs r
      LEFT JOIN LATERAL (SELECT x.train_loss, x.val_loss, x.val_acc FROM iceml.run_metrics x
                          WHERE x.run_id = r.id ORDER BY x.epoch DESC LIMIT 1) m ON true
    UNION ALL
    -- pipeline runs: the step under way as the trial, steps ended of all as epochs
    SELECT p.id, p.name, NULL::bigint, cur.step, p.status, done.n::int, done.total::int,
           round(100.0 * done.n / greatest(done.total, 1), 1),
           CASE WHEN p.started IS NOT NULL THEN coalesce(p.finished, now()) - p.started END,
           NULL::interval, NULL::float8, NULL::float8, NULL::float8,
           CASE WHEN p.status = 'running' THEN p.worker_pid END,
           (SELECT (s.detail->>'model_id')::bigint FROM iceml.pipeline_steps s
             WHERE s.run_id = p.id AND s.step IN ('train', 'tune')), p.error
      FROM iceml.pipeline_runs p
      LEFT JOIN LATERAL (SELECT count(*) FILTER (WHERE s.status NOT IN ('pending', 'running')) AS n, count(*) AS total
                           FROM iceml.pipeline_steps s WHERE s.run_id = p.id) done ON true
      LEFT JOIN LATERAL (SELECT s.step FROM iceml.pipeline_steps s
                          WHERE s.run_id = p.id AND s.status = 'running' ORDER BY s.ordinal LIMIT 1) cur ON true
     ORDER BY 1;
COMMENT ON VIEW iceml.progress IS
    'runs and pipeline runs you can see (for a pipeline: its current step as trial, steps ended as epoch), with epoch, percent done, elapsed time, estimated time left, the last losses and the worker''s pid';

CREATE FUNCTION iceml._wait(run_id bigint, timeout interval DEFAULT NULL) RETURNS text
    LANGUAGE plpgsql VOLATILE
    SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    deadline timestamptz := clock_timestamp() + timeout;
    reported integer := 0;
    finished bigint[] := '{}';
    steps_done integer[] := '{}';
    st text;
    own boolean;
    m record;
    t record;
    polls integer := 0;
BEGIN
    IF current_setting('transaction_isolation') <> 'read committed' THEN
        RAISE EXCEPTION 'iceml.wait() cannot see progress in a % transaction', current_setting('transaction_isolation')
            USING ERRCODE = '25001', HINT = 'Call it in a READ COMMITTED transaction.';
    END IF;
    LOOP
        IF polls % 25 = 0 THEN
            PERFORM iceml._maintain();
        END IF;
        polls := polls + 1;
        -- the gate runs this as the catalog owner: only what the caller may see
        SELECT r.status, iceml._xmin_is_current(r.xmin) INTO st, own FROM iceml.runs r
         WHERE r.id = run_id AND iceml._caller_may_see(r.role);
        IF FOUND THEN
            IF own AND st = 'queued' THEN
                RAISE EXCEPTION 'iceml run % was queued in this transaction and starts only when it commits', run_id
                    USING ERRCODE = '55000', HINT = 'COMMIT, then call iceml.wait().';
            END IF;
            FOR m IN SELECT x.* FROM iceml.run_metrics x
                      WHERE x.run_id = _wait.run_id AND x.epoch > reported ORDER BY x.epoch LOOP
                RAISE NOTICE 'run %: epoch %: train_loss %, val_loss %, val_acc %', run_id, m.epoch,
                    round(m.train_loss::numeric, 4), round(m.val_loss::numeric, 4), round(m.val_acc::numeric, 4);
                reported := m.epoch;
            END LOOP;
        ELSIF EXISTS (SELECT FROM iceml.pipeline_runs p WHERE p.id = run_id AND iceml._caller_may_see(p.role)) THEN
            -- a pipeline run: a NOTICE as each step ends, and the epochs of its training run
            SELECT p.status, iceml._xmin_is_current(p.xmin) INTO st, own FROM iceml.pipeline_runs p WHERE p.id = run_id;
            IF own AND st = 'queued' THEN
                RAISE EXCEPTION 'iceml pipeline run % was queued in this transaction and starts only when it commits', run_id
                    USING ERRCODE = '55000', HINT = 'COMMIT, then call iceml.wait().';
            END IF;
            FOR t IN SELECT s.ordinal, s.step, s.status, s."rows", s.error, s.detail->>'reason' AS reason,
                            CASE WHEN NOT coalesce((s.detail->>'reused')::boolean, false)
                                 THEN (s.detail->>'run')::bigint END AS train_run
                       FROM iceml.pipeline_steps s
                      WHERE s.run_id = _wait.run_id AND s.status <> 'pending'
                        AND NOT s.ordinal = ANY (steps_done) ORDER BY s.ordinal LOOP
                IF t.train_run IS NOT NULL THEN
                    FOR m IN SELECT x.*, r.epochs, date_trunc('second', (x.recorded_at - r.started_at) / x.epoch * (r.epochs - x.epoch)) AS eta
                               FROM iceml.run_metrics x JOIN iceml.runs r ON r.id = x.run_id
                              WHERE x.run_id = t.train_run AND x.epoch > reported ORDER BY x.epoch LOOP
                        RAISE NOTICE 'pipeline %: train (run %): epoch %/%: train_loss %, val_loss %, val_acc %, eta %',
                            run_id, t.train_run, m.epoch, m.epochs, round(m.train_loss::numeric, 4),
                            round(m.val_loss::numeric, 4), round(m.val_acc::numeric, 4), m.eta;
                        reported := m.epoch;
                    END LOOP;
                END IF;
                CONTINUE WHEN t.status = 'running';
                RAISE NOTICE 'pipeline %: step % %', run_id, t.step, t.status
                    || CASE WHEN t."rows" IS NOT NULL THEN format(' (%s rows)', t."rows") ELSE '' END
                    || coalesce(': ' || t.error, ': ' || t.reason, '');
                steps_done := steps_done || t.ordinal;
            END LOOP;
        ELSE
            SELECT s.status, iceml._xmin_is_current(s.xmin) INTO st, own FROM iceml.studies s
             WHERE s.id = run_id AND coalesce(iceml._caller_may_see(pg_catalog.to_regrole(s.owner)), false);
            IF NOT FOUND THEN
                RAISE EXCEPTION 'iceml run or study % does not exist', run_id
                    USING ERRCODE = '42704',
                          HINT = 'iceml.progress lists the runs you can see; other roles'' runs are visible to iceml_admin only.';
            END IF;
            IF own THEN
                RAISE EXCEPTION 'iceml study % was created in this transaction and starts only when it commits', run_id
                    USING ERRCODE = '55000', HINT = 'COMMIT, then call iceml.wait().';
            END IF;
            FOR t IN SELECT r.id, r.trial, r.status, r.best_epoch FROM iceml.runs r
                      WHERE r.study_id = _wait.run_id AND r.status NOT IN ('queued', 'running')
                        AND NOT r.id = ANY (finished) ORDER BY r.finished_at, r.id LOOP
                RAISE NOTICE 'study %: trial % (run %) %', run_id, t.trial, t.id, t.status;
                finished := finished || t.id;
            END LOOP;
        END IF;
        IF st NOT IN ('queued', 'running') OR clock_timestamp() >= deadline THEN
            RETURN st;
        END IF;
        PERFORM pg_sleep(0.2);
    END LOOP;
END
$$;
CREATE FUNCTION iceml.wait(run_id bigint, timeout interval DEFAULT NULL) RETURNS text
    AS 'MODULE_PATHNAME', 'iceml_gate'
    LANGUAGE C VOLATILE;
COMMENT ON FUNCTION iceml.wait(bigint, interval) IS
    'waits for a run or study to end (or the timeout to pass) and returns its status; reports epochs and trials as NOTICEs';

-- ---- privileges ------------------------------------------------------------

GRANT SELECT ON iceml.architectures TO iceml_reader;
GRANT EXECUTE ON FUNCTION iceml.wait(bigint, interval) TO iceml_reader;
GRANT SELECT ON iceml.progress TO iceml_reader;
GRANT EXECUTE ON FUNCTION iceml.train(text, regclass, text, jsonb), iceml.cancel(bigint),
    iceml.resume(bigint), iceml.create_architecture(text, jsonb)
    TO iceml_user;
