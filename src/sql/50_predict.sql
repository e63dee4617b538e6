-- 50: inference (iceml_predict), deployments.
--
-- A deployment name is an experiment name: iceml.deploy('iceberg') picks
-- among the models of experiment 'iceberg'.  The deployed model of a name is
-- the model of its latest row in iceml.deployments.  iceml_predict() keeps
-- deserialised models in a per-backend cache; the triggers below tell every
-- backend, when (and only when) the change commits, to look again
-- (src/serving/predict.c explains the protocol).

CREATE TABLE iceml.deployments (
    id            bigserial PRIMARY KEY,
    name          text NOT NULL CHECK (name OPERATOR(pg_catalog.<>) ''),
    -- A real foreign key: a model that a deployment names (now or in the
    -- history) cannot be deleted, and pg_dump, which loads extension
    -- configuration tables in foreign-key order, restores iceml.models
    -- before iceml.deployments (whose trigger checks the model).
    model_id      bigint NOT NULL REFERENCES iceml.models (id),
    from_model_id bigint,                   -- the model deployed before, NULL for the first
    strategy      text NOT NULL CHECK (strategy OPERATOR(pg_catalog.=) ANY
                  (ARRAY['best_score', 'most_recent', 'rollback', 'model_id', 'if_better', 'always', 'ensemble'])),
    -- on whose behalf iceml's code inserts the row; a restored row keeps its own
    deployed_by   name NOT NULL DEFAULT pg_get_userbyid(iceml._caller()),
    deployed_at   timestamptz NOT NULL DEFAULT pg_catalog.now(),
    -- test-time augmentation: the mean probability over the 8 flips and
    -- quarter turns of the chip
    tta           boolean NOT NULL DEFAULT false,
    -- an ensemble: its models in order (model_id is the first); NULL for a
    -- single model.  The prediction is the mean of the members'.
    members       bigint[] CHECK (members IS NULL OR
                                  (pg_catalog.cardinality(members) OPERATOR(pg_catalog.>=) 1
                                   AND members[1] OPERATOR(pg_catalog.=) model_id
                                   AND pg_catalog.array_position(members, NULL) IS NULL))
);
CREATE INDEX deployments_name_id ON iceml.deployments (name, id);
COMMENT ON TABLE iceml.deployments IS
    'deployment history: the latest row of a name is its deployed model (who, when, from, to, strategy)';
SELECT pg_catalog.pg_extension_config_dump('iceml.deployments', '');
SELECT pg_catalog.pg_extension_config_dump('iceml.deployments_id_seq', '');

-- The members of ensemble deployments, one row each, derived from
-- deployments.members by the trigger below: the foreign key keeps a member
-- from being deleted while any deployment (now or in the history) names it.
-- Not dumped: a restore re-derives it when it loads iceml.deployments.
CREATE TABLE iceml.deployment_members (
    deployment_id bigint NOT NULL REFERENCES iceml.deployments (id) ON DELETE CASCADE,
    member        integer NOT NULL CHECK (member OPERATOR(pg_catalog.>=) 1),
    model_id      bigint NOT NULL REFERENCES iceml.models (id),
    PRIMARY KEY (deployment_id, member),
    UNIQUE (deployment_id, model_id)
);
CREATE INDEX deployment_members_model ON iceml.deployment_members (model_id);
COMMENT ON TABLE iceml.deployment_members IS
    'the models of each ensemble deployment (from iceml.deployments.members): a member cannot be deleted while a deployment names it';

-- A deployment name belongs to the role that first deployed under it; only
-- that role (or a member of it) and iceml_admin deploy under it again, and
-- iceml.transfer_deployment() hands it to another role.
CREATE TABLE iceml.deployment_owners (
    name        text PRIMARY KEY,
    owner       name NOT NULL,
    since       timestamptz NOT NULL DEFAULT pg_catalog.now()
);
COMMENT ON TABLE iceml.deployment_owners IS
    'who owns each deployment name: the first role to deploy under it, or the role it was transferred to';
SELECT pg_catalog.pg_extension_config_dump('iceml.deployment_owners', '');

-- the deployed model of each name, with its validation metrics (of an
-- ensemble: its first member's), whether it averages over test-time
-- augmentation, and an ensemble's members
CREATE VIEW iceml.deployed_models AS
SELECT DISTINCT ON (d.name) d.name, d.model_id, d.id AS deployment_id, d.strategy, d.deployed_by,
       d.deployed_at, m.architecture, m.metrics, m.training_dataset, (m.id IS NULL) AS model_missing,
       d.tta, d.members
  FROM iceml.deployments d
  LEFT JOIN iceml.models m ON m.id OPERATOR(pg_catalog.=) d.model_id
 ORDER BY d.name, d.id DESC;
COMMENT ON VIEW iceml.deployed_models IS 'the model deployed under each name now';

-- A deployment row names an existing model of that experiment; from_model_id
-- is filled in here, under a per-name lock so that concurrent deploys of one
-- name form a chain.
CREATE FUNCTION iceml._deployment_check() RETURNS trigger
    LANGUAGE plpgsql
    SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    exp text;
    caller regrole;
    name_owner name;
BEGIN
    PERFORM pg_advisory_xact_lock(hashtext('iceml.deployments'), hashtext(NEW.name));
    -- only the catalog owner inserts here (users deploy through iceml.deploy
    -- and training), on behalf of iceml._caller()
    caller := iceml._caller();
    SELECT o.owner INTO name_owner FROM iceml.deployment_owners o WHERE o.name = NEW.name;
    IF NOT FOUND THEN
        INSERT INTO iceml.deployment_owners (name, owner) VALUES (NEW.name, caller::text);
    ELSIF NOT (pg_has_role(caller::oid, name_owner, 'MEMBER')
               OR pg_has_role(caller::oid, 'iceml_admin', 'MEMBER')) THEN
        RAISE EXCEPTION 'deployment name "%" belongs to role "%"', NEW.name, name_owner
            USING ERRCODE = '42501',
                  DETAIL = format('Role "%s" may not deploy under it.', caller),
                  HINT = 'Deploy under an experiment name of your own, or have its owner or an iceml_admin call iceml.transfer_deployment().';
    END IF;
    SELECT m.experiment INTO exp FROM iceml.models m WHERE m.id = NEW.model_id;
    IF NOT FOUND THEN
        RAISE EXCEPTION 'model % does not exist', NEW.model_id USING ERRCODE = '42704';
    END IF;
    -- an ensemble's members may come from several experiments: its
    -- deployer must be able to read each (iceml._deploy_ensemble checks)
    IF NEW.members IS NULL AND exp <> NEW.name THEN
        RAISE EXCEPTION 'model % belongs to experiment "%", not "%"', NEW.model_id, exp, NEW.name
            USING ERRCODE = '22023',
                  HINT = 'A deployment name is an experiment name: deploy a model under its own experiment.';
    END IF;
    -- the row before this one by id, so that a restore (rows in the dump's
    -- physical order) records the same chain
    SELECT d.model_id INTO NEW.from_model_id FROM iceml.deployments d
     WHERE d.name = NEW.name AND d.id < NEW.id ORDER BY d.id DESC LIMIT 1;
    RETURN NEW;
END
$$;
COMMENT ON FUNCTION iceml._deployment_check() IS
    'trigger: a deployment names an existing model of its experiment; records the model it replaces';
CREATE TRIGGER deployment_check BEFORE INSERT ON iceml.deployments
    FOR EACH ROW EXECUTE FUNCTION iceml._deployment_check();

CREATE FUNCTION iceml._deployment_members() RETURNS trigger
    LANGUAGE plpgsql
    SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
    INSERT INTO iceml.deployment_members (deployment_id, member, model_id)
    SELECT NEW.id, u.k, u.id FROM unnest(NEW.members) WITH ORDINALITY u(id, k);
    RETURN NULL;
END
$$;
COMMENT ON FUNCTION iceml._deployment_members() IS
    'trigger: one iceml.deployment_members row per member of an ensemble deployment (a foreign key to its model)';
CREATE TRIGGER deployment_members AFTER INSERT ON iceml.deployments
    FOR EACH ROW WHEN (NEW.members IS NOT NULL) EXECUTE FUNCTION iceml._deployment_members();

CREATE FUNCTION iceml._predict_cache_invalidate() RETURNS trigger
    AS 'MODULE_PATHNAME', 'iceml_predict_cache_invalidate'
    LANGUAGE C VOLATILE PARALLEL UNSAFE;
COMMENT ON FUNCTION iceml._predict_cache_invalidate() IS
    'trigger: tells every backend''s iceml_predict cache to look again once this transaction commits';
CREATE TRIGGER deployments_invalidate AFTER INSERT OR UPDATE OR DELETE OR TRUNCATE ON iceml.deployments
    FOR EACH STATEMENT EXECUTE FUNCTION iceml._predict_cache_invalidate();
CREATE TRIGGER models_invalidate AFTER UPDATE OR DELETE OR TRUNCATE ON iceml.models
    FOR EACH STATEMENT EXECUTE FUNCTION iceml._predict_cache_invalidate();

-- tta: NULL keeps the setting of the name's current deployment (false for
-- the first); true or false sets it.
CREATE FUNCTION iceml._deploy(name text, strategy text DEFAULT 'best_score', tta boolean DEFAULT NULL)
    RETURNS bigint
    LANGUAGE plpgsql VOLATILE
    SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    cur record;
    prev record;
    chosen bigint;
    opt boolean;
BEGIN
    IF _deploy.name IS NULL OR _deploy.name = '' THEN
        RAISE EXCEPTION 'deployment name must be a non-empty experiment name' USING ERRCODE = '22023';
    END IF;
    IF _deploy.strategy IS NULL OR NOT _deploy.strategy IN ('best_score', 'most_recent', 'rollback') THEN
        RAISE EXCEPTION 'unknown deployment strategy "%"', _deploy.strategy
            USING ERRCODE = '22023',
                  HINT = 'Use best_score, most_recent or rollback, or give a model id.';
    END IF;
    PERFORM pg_advisory_xact_lock(hashtext('iceml.deployments'), hashtext(_deploy.name));
    SELECT d.id, d.model_id, d.from_model_id, d.tta, d.members INTO cur FROM iceml.deployments d
     WHERE d.name = _deploy.name ORDER BY d.id DESC LIMIT 1;
    opt := coalesce(_deploy.tta, cur.tta, false);

    IF _deploy.strategy = 'best_score' THEN
        -- the lowest validation log loss; ties to the newer model
        SELECT m.id INTO chosen FROM iceml.models m WHERE m.experiment = _deploy.name
         ORDER BY (m.metrics->>'log_loss')::float8 NULLS LAST, m.id DESC LIMIT 1;
    ELSIF _deploy.strategy = 'most_recent' THEN
        SELECT m.id INTO chosen FROM iceml.models m WHERE m.experiment = _deploy.name
         ORDER BY m.created_at DESC, m.id DESC LIMIT 1;
    ELSE
        -- like "kubectl rollout undo": back to the deployment the current
        -- one replaced, as it was (its model or ensemble, and its tta unless
        -- tta is given)
        IF cur.from_model_id IS NULL THEN
            RAISE EXCEPTION 'nothing to roll back to under the name "%"', _deploy.name
                USING ERRCODE = '55000',
                      DETAIL = CASE WHEN cur.model_id IS NULL THEN 'Nothing was ever deployed under this name.'
                                    ELSE format('Model %s is the first one deployed under this name.', cur.model_id) END;
        END IF;
        SELECT d.model_id, d.tta, d.members INTO prev FROM iceml.deployments d
         WHERE d.name = _deploy.name AND d.id < cur.id ORDER BY d.id DESC LIMIT 1;
        opt := coalesce(_deploy.tta, prev.tta);
        IF prev.model_id = cur.model_id AND prev.members IS NOT DISTINCT FROM cur.members AND opt = cur.tta THEN
            RAISE NOTICE 'model % is already deployed under the name "%"', prev.model_id, _deploy.name;
            RETURN prev.model_id;
        END IF;
        INSERT INTO iceml.deployments (name, model_id, strategy, tta, members)
        VALUES (_deploy.name, prev.model_id, 'rollback', opt, prev.members);
        RETURN prev.model_id;
    END IF;
    IF chosen IS NULL THEN
        RAISE EXCEPTION 'experiment "%" has no models to deploy', _deploy.name
            USING ERRCODE = '42704', HINT = 'Train one with iceml.train(''' || _deploy.name || ''', ...).';
    END IF;
    IF chosen = cur.model_id AND cur.members IS NULL AND opt = cur.tta THEN
        RAISE NOTICE 'model % is already deployed under the name "%"', chosen, _deploy.name;
        RETURN chosen;
    END IF;
    INSERT INTO iceml.deployments (name, model_id, strategy, tta)
    VALUES (_deploy.name, chosen, _deploy.strategy, opt);
    RETURN chosen;
END
$$;
CREATE FUNCTION iceml.deploy(name text, strategy text DEFAULT 'best_score', tta boolean DEFAULT NULL)
    RETURNS bigint
    AS 'MODULE_PATHNAME', 'iceml_gate'
    LANGUAGE C VOLATILE;
COMMENT ON FUNCTION iceml.deploy(text, text, boolean) IS
    'deploys a model of the experiment under its name: best_score (lowest validation log loss), most_recent, or rollback (to the deployment the current one replaced); tta => true averages each prediction over the 8 flips and quarter turns of the chip (NULL: as the current deployment); returns the model id';

CREATE FUNCTION iceml._deploy(name text, model_id bigint, tta boolean DEFAULT NULL)
    RETURNS bigint
    LANGUAGE plpgsql VOLATILE
    SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    cur_tta boolean;
BEGIN
    IF _deploy.name IS NULL OR _deploy.model_id IS NULL THEN
        RAISE EXCEPTION 'deployment name and model id must not be NULL' USING ERRCODE = '22023';
    END IF;
    PERFORM pg_advisory_xact_lock(hashtext('iceml.deployments'), hashtext(_deploy.name));
    SELECT d.tta INTO cur_tta FROM iceml.deployments d WHERE d.name = _deploy.name ORDER BY d.id DESC LIMIT 1;
    INSERT INTO iceml.deployments (name, model_id, strategy, tta)
    VALUES (_deploy.name, _deploy.model_id, 'model_id', coalesce(_deploy.tta, cur_tta, false));
    RETURN _deploy.model_id;
END
$$;
CREATE FUNCTION iceml.deploy(name text, model_id bigint, tta boolean DEFAULT NULL)
    RETURNS bigint
    AS 'MODULE_PATHNAME', 'iceml_gate'
    LANGUAGE C VOLATILE;
COMMENT ON FUNCTION iceml.deploy(text, bigint, boolean) IS
    'deploys model model_id (a model of experiment name) under that name, with test-time augmentation when tta (NULL: as the current deployment); returns the model id';

-- An ensemble: the mean probability of several models.  Each member must
-- be readable by the deployer (its own model, or any as iceml_admin), all
-- must take the same input (channels, image shape, side inputs), and the
-- name is owned as any deployment name is.  Members may come from several
-- experiments (e.g. a study's top trials, or several architectures).
CREATE FUNCTION iceml._deploy_ensemble(name text, model_ids bigint[], tta boolean DEFAULT NULL)
    RETURNS bigint
    LANGUAGE plpgsql VOLATILE
    SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    m record;
    lead record;
    cur_tta boolean;
    dep bigint;
BEGIN
    IF _deploy_ensemble.name IS NULL OR _deploy_ensemble.name = '' THEN
        RAISE EXCEPTION 'deployment name must be a non-empty name' USING ERRCODE = '22023';
    END IF;
    IF model_ids IS NULL OR cardinality(model_ids) = 0 OR array_ndims(model_ids) <> 1 THEN
        RAISE EXCEPTION 'deploy_ensemble: model_ids must be a non-empty list of model ids, not %', coalesce(model_ids::text, 'NULL')
            USING ERRCODE = '22023',
                  HINT = 'For example ARRAY(SELECT model FROM iceml.study_trials WHERE study = 42 ORDER BY val_log_loss LIMIT 3).';
    END IF;
    IF cardinality(model_ids) > 16 THEN
        RAISE EXCEPTION 'deploy_ensemble: an ensemble of % models is more than 16', cardinality(model_ids)
            USING ERRCODE = '54000', DETAIL = 'Each prediction runs every member; iceml keeps at most 16 per deployment.';
    END IF;
    FOR m IN SELECT u.id, u.k, x.id AS found, x.owner, x.channels, x.spec->'input' AS input,
                    jsonb_path_query_array(x.spec, '$.layers[*] ? (@.type == "side").inputs') AS side
               FROM unnest(model_ids) WITH ORDINALITY u(id, k)
               LEFT JOIN iceml.models x ON x.id = u.id
              ORDER BY u.k LOOP
        IF m.id IS NULL THEN
            RAISE EXCEPTION 'deploy_ensemble: element % of model_ids is NULL', m.k USING ERRCODE = '22004';
        END IF;
        IF array_position(model_ids, m.id) < m.k THEN
            RAISE EXCEPTION 'deploy_ensemble: model % appears twice in model_ids (elements % and %)',
                            m.id, array_position(model_ids, m.id), m.k
                USING ERRCODE = '22023', HINT = 'Each model is a member once.';
        END IF;
        IF m.found IS NULL THEN
            RAISE EXCEPTION 'deploy_ensemble: model % does not exist', m.id USING ERRCODE = '42704';
        END IF;
        IF NOT coalesce(iceml._caller_may_see((SELECT r.oid FROM pg_roles r WHERE r.rolname = m.owner)), false) THEN
            RAISE EXCEPTION 'deploy_ensemble: model % belongs to role "%"', m.id, m.owner
                USING ERRCODE = '42501',
                      DETAIL = format('Role "%s" may not read it, so may not deploy it.', iceml._caller()),
                      HINT = 'An ensemble is made of your own models (or any, as an iceml_admin).';
        END IF;
        IF m.k = 1 THEN
            lead := m;
        ELSIF m.channels IS DISTINCT FROM lead.channels OR m.input IS DISTINCT FROM lead.input
              OR m.side IS DISTINCT FROM lead.side THEN
            RAISE EXCEPTION 'deploy_ensemble: model % takes channels %, input % and side inputs %, but model % takes %, % and %',
                            m.id, m.channels, m.input, m.side, lead.id, lead.channels, lead.input, lead.side
                USING ERRCODE = '22023', HINT = 'The members of an ensemble must take the same input.';
        END IF;
    END LOOP;
    PERFORM pg_advisory_xact_lock(hashtext('iceml.deployments'), hashtext(_deploy_ensemble.name));
    SELECT d.tta INTO cur_tta FROM iceml.deployments d WHERE d.name = _deploy_ensemble.name ORDER BY d.id DESC LIMIT 1;
    INSERT INTO iceml.deployments (name, model_id, strategy, tta, members)
    VALUES (_deploy_ensemble.name, model_ids[1], 'ensemble', coalesce(_deploy_ensemble.tta, cur_tta, false), model_ids)
    RETURNING id INTO dep;
    RETURN dep;
END
$$;
CREATE FUNCTION iceml.deploy_ensemble(name text, model_ids bigint[], tta boolean DEFAULT NULL)
    RETURNS bigint
    AS 'MODULE_PATHNAME', 'iceml_gate'
    LANGUAGE C VOLATILE;
COMMENT ON FUNCTION iceml.deploy_ensemble(text, bigint[], boolean) IS
    'deploys an ensemble under a name: predictions are the mean probability of the models (your own, with the same input), with test-time augmentation when tta (NULL: as the current deployment); returns the deployment id';

CREATE FUNCTION iceml._transfer_deployment(name text, new_owner regrole)
    RETURNS text
    LANGUAGE plpgsql VOLATILE
    SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    cur name;
BEGIN
    IF _transfer_deployment.name IS NULL OR new_owner IS NULL THEN
        RAISE EXCEPTION 'deployment name and new owner must not be NULL' USING ERRCODE = '22023';
    END IF;
    PERFORM pg_advisory_xact_lock(hashtext('iceml.deployments'), hashtext(_transfer_deployment.name));
    SELECT o.owner INTO cur FROM iceml.deployment_owners o WHERE o.name = _transfer_deployment.name;
    IF NOT FOUND THEN
        RAISE EXCEPTION 'nothing was ever deployed under the name "%"', _transfer_deployment.name
            USING ERRCODE = '42704';
    END IF;
    IF NOT (pg_has_role(iceml._caller()::oid, cur, 'MEMBER')
            OR pg_has_role(iceml._caller()::oid, 'iceml_admin', 'MEMBER')) THEN
        RAISE EXCEPTION 'deployment name "%" belongs to role "%"', _transfer_deployment.name, cur
            USING ERRCODE = '42501', HINT = 'Only its owner or an iceml_admin may transfer it.';
    END IF;
    IF NOT pg_has_role(new_owner::oid, 'iceml_user', 'MEMBER') THEN
        RAISE EXCEPTION 'role "%" is not a member of iceml_user', new_owner
            USING ERRCODE = '22023', HINT = 'A deployment name goes to a role that may deploy.';
    END IF;
    UPDATE iceml.deployment_owners o SET owner = new_owner::text, since = now()
     WHERE o.name = _transfer_deployment.name;
    RETURN new_owner::text;
END
$$;
CREATE FUNCTION iceml.transfer_deployment(name text, new_owner regrole)
    RETURNS text
    AS 'MODULE_PATHNAME', 'iceml_gate'
    LANGUAGE C VOLATILE;
COMMENT ON FUNCTION iceml.transfer_deployment(text, regrole) IS
    'hands a deployment name to another role (its owner or iceml_admin only); returns the new owner';

-- Called by the training worker (src/jobs/train.c, FinishRun) as the catalog
-- owner, in the transaction that stores the model: hyperparameter "deploy"
-- is if_better (the default: deploy when nothing is deployed or the new
-- model's validation log loss is lower), always, or never.
CREATE FUNCTION iceml._deploy_if_better(run_id bigint, study_best boolean DEFAULT false)
    RETURNS bigint
    LANGUAGE plpgsql VOLATILE
    SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    r record;
    cur record;
BEGIN
    SELECT x.experiment, x.model_id, x.owner, coalesce(x.hyperparams->>'deploy', 'if_better') AS mode,
           (m.metrics->>'log_loss')::float8 AS loss, x.study_id
      INTO r
      FROM iceml.runs x JOIN iceml.models m ON m.id = x.model_id
     WHERE x.id = _deploy_if_better.run_id;
    -- a study's trials do not deploy one by one: the study offers its best
    -- trial when it ends
    IF NOT FOUND OR r.mode = 'never' OR (r.study_id IS NOT NULL AND NOT study_best) THEN
        RETURN NULL;
    END IF;
    PERFORM pg_advisory_xact_lock(hashtext('iceml.deployments'), hashtext(r.experiment));
    -- an ensemble is beaten by a model that beats each of its members; the
    -- new deployment keeps the current one's test-time augmentation
    SELECT d.model_id, d.tta,
           CASE WHEN d.members IS NULL THEN (m.metrics->>'log_loss')::float8
                ELSE (SELECT min((x.metrics->>'log_loss')::float8) FROM iceml.models x
                       WHERE x.id = ANY (d.members)) END AS loss,
           m.id IS NOT NULL AS present INTO cur
      FROM iceml.deployments d LEFT JOIN iceml.models m ON m.id = d.model_id
     WHERE d.name = r.experiment ORDER BY d.id DESC LIMIT 1;
    IF r.mode = 'always' OR cur.model_id IS NULL OR NOT cur.present
       OR (r.loss IS NOT NULL AND (cur.loss IS NULL OR r.loss < cur.loss)) THEN
        INSERT INTO iceml.deployments (name, model_id, strategy, deployed_by, tta)
        VALUES (r.experiment, r.model_id, r.mode, r.owner, coalesce(cur.tta, false));
        RETURN r.model_id;
    END IF;
    RETURN NULL;
END
$$;
COMMENT ON FUNCTION iceml._deploy_if_better(bigint, boolean) IS
    'after a run stored its model (or a study chose its best trial): deploys it as hyperparameter "deploy" says (if_better, always, never)';

-- iceml_predict lives in the extension's schema (public with a plain CREATE
-- EXTENSION iceml), so that it is callable unqualified with the default
-- search_path.
CREATE FUNCTION @extschema@.iceml_predict(model text, band_1 real[], band_2 real[], inc_angle real DEFAULT NULL)
    RETURNS real
    AS 'MODULE_PATHNAME', 'iceml_predict_name'
    LANGUAGE C STABLE PARALLEL SAFE COST 100000;
COMMENT ON FUNCTION @extschema@.iceml_predict(text, real[], real[], real) IS
    'probability that a 75x75 two-band SAR chip is an iceberg, by the model deployed under that name (NULL bands give NULL)';
CREATE FUNCTION @extschema@.iceml_predict(model_id bigint, band_1 real[], band_2 real[], inc_angle real DEFAULT NULL)
    RETURNS real
    AS 'MODULE_PATHNAME', 'iceml_predict_id'
    LANGUAGE C STABLE PARALLEL SAFE COST 100000;
COMMENT ON FUNCTION @extschema@.iceml_predict(bigint, real[], real[], real) IS
    'probability that a 75x75 two-band SAR chip is an iceberg, by model model_id (NULL bands give NULL)';

-- Batched scoring (src/serving/predict_batch.c): the rows of a relation, read as
-- the caller, or chips sent as two-dimensional arrays, scored in the
-- engine's batches.  Same values as iceml_predict, up to float rounding.
CREATE FUNCTION iceml.predict_table(model text, relation regclass, key text DEFAULT NULL,
                                    band_1 text DEFAULT 'band_1', band_2 text DEFAULT 'band_2',
                                    inc_angle text DEFAULT NULL)
    RETURNS TABLE (key text, probability real)
    AS 'MODULE_PATHNAME', 'iceml_predict_table_name'
    LANGUAGE C STABLE PARALLEL RESTRICTED COST 100000 ROWS 1000;
COMMENT ON FUNCTION iceml.predict_table(text, regclass, text, text, text, text) IS
    'the key and probability of every row of a relation (read as the caller) by the model deployed under a name, scored in batches; key NULL: the single-column primary key';
CREATE FUNCTION iceml.predict_table(model_id bigint, relation regclass, key text DEFAULT NULL,
                                    band_1 text DEFAULT 'band_1', band_2 text DEFAULT 'band_2',
                                    inc_angle text DEFAULT NULL)
    RETURNS TABLE (key text, probability real)
    AS 'MODULE_PATHNAME', 'iceml_predict_table_id'
    LANGUAGE C STABLE PARALLEL RESTRICTED COST 100000 ROWS 1000;
COMMENT ON FUNCTION iceml.predict_table(bigint, regclass, text, text, text, text) IS
    'the key and probability of every row of a relation (read as the caller) by model model_id, scored in batches';
CREATE FUNCTION iceml.predict_batch(model text, band_1 real[], band_2 real[], inc_angle real[] DEFAULT NULL)
    RETURNS real[]
    AS 'MODULE_PATHNAME', 'iceml_predict_batch_name'
    LANGUAGE C STABLE PARALLEL SAFE COST 1000000;
COMMENT ON FUNCTION iceml.predict_batch(text, real[], real[], real[]) IS
    'probabilities of n chips given as n x 5625 arrays of each band (array_agg of the rows'' bands), by the model deployed under a name, in one batch';
CREATE FUNCTION iceml.predict_batch(model_id bigint, band_1 real[], band_2 real[], inc_angle real[] DEFAULT NULL)
    RETURNS real[]
    AS 'MODULE_PATHNAME', 'iceml_predict_batch_id'
    LANGUAGE C STABLE PARALLEL SAFE COST 1000000;
COMMENT ON FUNCTION iceml.predict_batch(bigint, real[], real[], real[]) IS
    'probabilities of n chips given as n x 5625 arrays of each band, by model model_id, in one batch';

CREATE FUNCTION iceml.predict_cache(
    OUT key text, OUT deployment_id bigint, OUT model_id bigint, OUT bytes bigint,
    OUT loads bigint, OUT checks bigint, OUT evictions bigint, OUT members integer, OUT tta boolean)
    RETURNS SETOF record
    AS 'MODULE_PATHNAME', 'iceml_predict_cache'
    LANGUAGE C VOLATILE STRICT PARALLEL RESTRICTED;
COMMENT ON FUNCTION iceml.predict_cache() IS
    'this backend''s iceml_predict cache: one row per cached model or ensemble (members, tta), with the backend''s load, check and eviction counts';
CREATE FUNCTION iceml.predict_cache_reset() RETURNS integer
    AS 'MODULE_PATHNAME', 'iceml_predict_cache_reset'
    LANGUAGE C VOLATILE STRICT PARALLEL RESTRICTED;
COMMENT ON FUNCTION iceml.predict_cache_reset() IS
    'frees this backend''s cached models and zeroes its counters; returns how many models were freed';

CREATE FUNCTION iceml._untrained_weights(spec text, seed bigint, mean real[], std real[])
    RETURNS bytea
    AS 'MODULE_PATHNAME', 'iceml_untrained_weights'
    LANGUAGE C IMMUTABLE STRICT PARALLEL SAFE;
COMMENT ON FUNCTION iceml._untrained_weights(text, bigint, real[], real[]) IS
    'a serialised net with seeded initial weights and the given per-channel normalisation (tests and demos)';

REVOKE ALL ON FUNCTION @extschema@.iceml_predict(text, real[], real[], real) FROM PUBLIC;
REVOKE ALL ON FUNCTION @extschema@.iceml_predict(bigint, real[], real[], real) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION @extschema@.iceml_predict(text, real[], real[], real) TO iceml_reader;
GRANT EXECUTE ON FUNCTION @extschema@.iceml_predict(bigint, real[], real[], real) TO iceml_reader;
GRANT EXECUTE ON FUNCTION iceml.predict_cache(), iceml.predict_cache_reset() TO iceml_reader;
GRANT EXECUTE ON FUNCTION iceml.predict_table(text, regclass, text, text, text, text),
    iceml.predict_table(bigint, regclass, text, text, text, text),
    iceml.predict_batch(text, real[], real[], real[]), iceml.predict_batch(bigint, real[], real[], real[]) TO iceml_reader;
GRANT SELECT ON iceml.deployments, iceml.deployed_models TO iceml_reader;
-- iceml_user deploys (iceml.deploy inserts as the caller; the trigger checks the row)
GRANT EXECUTE ON FUNCTION iceml.deploy(text, text, boolean), iceml.deploy(text, bigint, boolean),
    iceml.deploy_ensemble(text, bigint[], boolean), iceml.transfer_deployment(text, regrole) TO iceml_user;
GRANT SELECT ON iceml.deployment_owners, iceml.deployment_members TO iceml_reader;
