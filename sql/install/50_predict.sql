-- 50: inference (iceml_predict), deployments.
--
-- A deployment name is an experiment name: iceml.deploy('iceberg') picks
-- among the models of experiment 'iceberg'.  The deployed model of a name is
-- the model of its latest row in iceml.deployments.  iceml_predict() keeps
-- deserialised models in a per-backend cache; the triggers below tell every
-- backend, when (and only when) the change commits, to look again
-- (src/predict.c explains the protocol).

CREATE TABLE iceml.deployments (
    id            bigserial PRIMARY KEY,
    name          text NOT NULL CHECK (name OPERATOR(pg_catalog.<>) ''),
    model_id      bigint NOT NULL,          -- no foreign key: a deleted model makes predict say so
    from_model_id bigint,                   -- the model deployed before, NULL for the first
    strategy      text NOT NULL CHECK (strategy OPERATOR(pg_catalog.=) ANY
                  (ARRAY['best_score', 'most_recent', 'rollback', 'model_id', 'if_better', 'always'])),
    deployed_by   name NOT NULL DEFAULT CURRENT_USER,
    deployed_at   timestamptz NOT NULL DEFAULT pg_catalog.now()
);
CREATE INDEX deployments_name_id ON iceml.deployments (name, id);
COMMENT ON TABLE iceml.deployments IS
    'deployment history: the latest row of a name is its deployed model (who, when, from, to, strategy)';
SELECT pg_catalog.pg_extension_config_dump('iceml.deployments', '');
SELECT pg_catalog.pg_extension_config_dump('iceml.deployments_id_seq', '');

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

-- the deployed model of each name, with its validation metrics
CREATE VIEW iceml.deployed_models AS
SELECT DISTINCT ON (d.name) d.name, d.model_id, d.id AS deployment_id, d.strategy, d.deployed_by,
       d.deployed_at, m.architecture, m.metrics, m.training_dataset, (m.id IS NULL) AS model_missing
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
    NEW.deployed_by := caller::text;
    SELECT m.experiment INTO exp FROM iceml.models m WHERE m.id = NEW.model_id;
    IF NOT FOUND THEN
        RAISE EXCEPTION 'model % does not exist', NEW.model_id USING ERRCODE = '42704';
    END IF;
    IF exp <> NEW.name THEN
        RAISE EXCEPTION 'model % belongs to experiment "%", not "%"', NEW.model_id, exp, NEW.name
            USING ERRCODE = '22023',
                  HINT = 'A deployment name is an experiment name: deploy a model under its own experiment.';
    END IF;
    SELECT d.model_id INTO NEW.from_model_id FROM iceml.deployments d
     WHERE d.name = NEW.name ORDER BY d.id DESC LIMIT 1;
    RETURN NEW;
END
$$;
COMMENT ON FUNCTION iceml._deployment_check() IS
    'trigger: a deployment names an existing model of its experiment; records the model it replaces';
CREATE TRIGGER deployment_check BEFORE INSERT ON iceml.deployments
    FOR EACH ROW EXECUTE FUNCTION iceml._deployment_check();

CREATE FUNCTION iceml._predict_cache_invalidate() RETURNS trigger
    AS 'MODULE_PATHNAME', 'iceml_predict_cache_invalidate'
    LANGUAGE C VOLATILE PARALLEL UNSAFE;
COMMENT ON FUNCTION iceml._predict_cache_invalidate() IS
    'trigger: tells every backend''s iceml_predict cache to look again once this transaction commits';
CREATE TRIGGER deployments_invalidate AFTER INSERT OR UPDATE OR DELETE OR TRUNCATE ON iceml.deployments
    FOR EACH STATEMENT EXECUTE FUNCTION iceml._predict_cache_invalidate();
CREATE TRIGGER models_invalidate AFTER UPDATE OR DELETE OR TRUNCATE ON iceml.models
    FOR EACH STATEMENT EXECUTE FUNCTION iceml._predict_cache_invalidate();

CREATE FUNCTION iceml._deploy(name text, strategy text DEFAULT 'best_score')
    RETURNS bigint
    LANGUAGE plpgsql VOLATILE
    SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    cur record;
    chosen bigint;
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
    SELECT d.model_id, d.from_model_id INTO cur FROM iceml.deployments d
     WHERE d.name = _deploy.name ORDER BY d.id DESC LIMIT 1;

    IF _deploy.strategy = 'best_score' THEN
        -- the lowest validation log loss; ties to the newer model
        SELECT m.id INTO chosen FROM iceml.models m WHERE m.experiment = _deploy.name
         ORDER BY (m.metrics->>'log_loss')::float8 NULLS LAST, m.id DESC LIMIT 1;
    ELSIF _deploy.strategy = 'most_recent' THEN
        SELECT m.id INTO chosen FROM iceml.models m WHERE m.experiment = _deploy.name
         ORDER BY m.created_at DESC, m.id DESC LIMIT 1;
    ELSE
        -- like "kubectl rollout undo": back to the model the current one replaced
        IF cur.from_model_id IS NULL THEN
            RAISE EXCEPTION 'nothing to roll back to under the name "%"', _deploy.name
                USING ERRCODE = '55000',
                      DETAIL = CASE WHEN cur.model_id IS NULL THEN 'Nothing was ever deployed under this name.'
                                    ELSE format('Model %s is the first one deployed under this name.', cur.model_id) END;
        END IF;
        chosen := cur.from_model_id;
    END IF;
    IF chosen IS NULL THEN
        RAISE EXCEPTION 'experiment "%" has no models to deploy', _deploy.name
            USING ERRCODE = '42704', HINT = 'Train one with iceml.train(''' || _deploy.name || ''', ...).';
    END IF;
    IF chosen = cur.model_id THEN
        RAISE NOTICE 'model % is already deployed under the name "%"', chosen, _deploy.name;
        RETURN chosen;
    END IF;
    INSERT INTO iceml.deployments (name, model_id, strategy) VALUES (_deploy.name, chosen, _deploy.strategy);
    RETURN chosen;
END
$$;
CREATE FUNCTION iceml.deploy(name text, strategy text DEFAULT 'best_score')
    RETURNS bigint
    AS 'MODULE_PATHNAME', 'iceml_gate'
    LANGUAGE C VOLATILE;
COMMENT ON FUNCTION iceml.deploy(text, text) IS
    'deploys a model of the experiment under its name: best_score (lowest validation log loss), most_recent, or rollback (to the model the current one replaced); returns the model id';

CREATE FUNCTION iceml._deploy(name text, model_id bigint)
    RETURNS bigint
    LANGUAGE plpgsql VOLATILE
    SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
    IF _deploy.name IS NULL OR _deploy.model_id IS NULL THEN
        RAISE EXCEPTION 'deployment name and model id must not be NULL' USING ERRCODE = '22023';
    END IF;
    INSERT INTO iceml.deployments (name, model_id, strategy) VALUES (_deploy.name, _deploy.model_id, 'model_id');
    RETURN _deploy.model_id;
END
$$;
CREATE FUNCTION iceml.deploy(name text, model_id bigint)
    RETURNS bigint
    AS 'MODULE_PATHNAME', 'iceml_gate'
    LANGUAGE C VOLATILE;
COMMENT ON FUNCTION iceml.deploy(text, bigint) IS
    'deploys model model_id (a model of experiment name) under that name; returns the model id';

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

-- Called by the training worker (src/train.c, FinishRun) as the catalog
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
    SELECT d.model_id, (m.metrics->>'log_loss')::float8 AS loss, m.id IS NOT NULL AS present INTO cur
      FROM iceml.deployments d LEFT JOIN iceml.models m ON m.id = d.model_id
     WHERE d.name = r.experiment ORDER BY d.id DESC LIMIT 1;
    IF r.mode = 'always' OR cur.model_id IS NULL OR NOT cur.present
       OR (r.loss IS NOT NULL AND (cur.loss IS NULL OR r.loss < cur.loss)) THEN
        INSERT INTO iceml.deployments (name, model_id, strategy, deployed_by)
        VALUES (r.experiment, r.model_id, r.mode, r.owner);
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

CREATE FUNCTION iceml.predict_cache(
    OUT key text, OUT deployment_id bigint, OUT model_id bigint, OUT bytes bigint,
    OUT loads bigint, OUT checks bigint, OUT evictions bigint)
    RETURNS SETOF record
    AS 'MODULE_PATHNAME', 'iceml_predict_cache'
    LANGUAGE C VOLATILE STRICT PARALLEL RESTRICTED;
COMMENT ON FUNCTION iceml.predict_cache() IS
    'this backend''s iceml_predict cache: one row per cached model, with the backend''s load, check and eviction counts';
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
GRANT SELECT ON iceml.deployments, iceml.deployed_models TO iceml_reader;
-- iceml_user deploys (iceml.deploy inserts as the caller; the trigger checks the row)
GRANT EXECUTE ON FUNCTION iceml.deploy(text, text), iceml.deploy(text, bigint),
    iceml.transfer_deployment(text, regrole) TO iceml_user;
GRANT SELECT ON iceml.deployment_owners TO iceml_reader;
