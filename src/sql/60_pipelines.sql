
-- ====================================================================
-- 60: pipelines (API.md section 6): iceml.run_pipeline() runs the
-- seed's steps -- ingest, validate, statistics, training_dataset,
-- train or tune, evaluate, deploy -- in a background worker
-- (src/jobs/pipeline.c), recording each step in iceml.pipeline_steps.
--
-- Users read the two catalogs through row-level security and write them
-- only through iceml.run_pipeline(), iceml.cancel() and the worker, which
-- write as the catalog owner.  The steps themselves run as the role that
-- called iceml.run_pipeline(): iceml._pipeline_step() is called by the
-- worker directly, not through SQL, and nobody may EXECUTE it.
-- ====================================================================

-- The catalog tables are in 41_pipeline_catalog.sql (iceml.progress reads them).

-- ---- the config ------------------------------------------------------------

CREATE FUNCTION iceml._pipeline_fault(path text, msg text, hint text DEFAULT NULL)
    RETURNS void
    LANGUAGE plpgsql IMMUTABLE
    SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
    RAISE EXCEPTION 'invalid pipeline config at %: %', path, msg
        USING ERRCODE = '22023',
              HINT = coalesce(hint, 'See "Pipelines" in README.md for the keys of each step.');
END
$$;
COMMENT ON FUNCTION iceml._pipeline_fault(text, text, text) IS
    'internal: raises 22023 naming the JSON path of a fault in a pipeline config';

-- refuses keys outside `allowed` in the object at `path`
CREATE FUNCTION iceml._pipeline_keys(obj jsonb, path text, allowed text[], required text[] DEFAULT '{}')
    RETURNS void
    LANGUAGE plpgsql IMMUTABLE
    SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    k text;
BEGIN
    IF jsonb_typeof(obj) IS DISTINCT FROM 'object' THEN
        PERFORM iceml._pipeline_fault(path, format('must be an object, not %s', coalesce(obj::text, 'null')));
    END IF;
    FOR k IN SELECT jsonb_object_keys(obj) ORDER BY 1 LOOP
        IF NOT k OPERATOR(pg_catalog.=) ANY (allowed) THEN
            PERFORM iceml._pipeline_fault(path || '.' || k, format('unknown key "%s"', k),
                format('Known keys here: %s.', array_to_string(allowed, ', ')));
        END IF;
    END LOOP;
    FOREACH k IN ARRAY required LOOP
        IF NOT obj ? k THEN
            PERFORM iceml._pipeline_fault(path || '.' || k, 'missing');
        END IF;
    END LOOP;
END
$$;
COMMENT ON FUNCTION iceml._pipeline_keys(jsonb, text, text[], text[]) IS
    'internal: refuses a config object with unknown or missing keys';

CREATE FUNCTION iceml._pipeline_type(v jsonb, path text, want text, lo numeric DEFAULT NULL, hi numeric DEFAULT NULL)
    RETURNS void
    LANGUAGE plpgsql IMMUTABLE
    SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    t text := jsonb_typeof(v);
BEGIN
    IF want OPERATOR(pg_catalog.=) 'integer' THEN
        IF t IS DISTINCT FROM 'number' OR (v #>> '{}')::numeric OPERATOR(pg_catalog.<>) trunc((v #>> '{}')::numeric)
           OR (lo IS NOT NULL AND (v #>> '{}')::numeric OPERATOR(pg_catalog.<) lo)
           OR (hi IS NOT NULL AND (v #>> '{}')::numeric OPERATOR(pg_catalog.>) hi) THEN
            PERFORM iceml._pipeline_fault(path, format('must be an integer between %s and %s, not %s', lo, hi, coalesce(v::text, 'null')));
        END IF;
    ELSIF want OPERATOR(pg_catalog.=) 'number' THEN
        IF t IS DISTINCT FROM 'number'
           OR (lo IS NOT NULL AND (v #>> '{}')::numeric OPERATOR(pg_catalog.<=) lo)
           OR (hi IS NOT NULL AND (v #>> '{}')::numeric OPERATOR(pg_catalog.>) hi) THEN
            PERFORM iceml._pipeline_fault(path, format('must be a number%s, not %s',
                CASE WHEN lo IS NOT NULL THEN format(' above %s', lo) ELSE '' END
                || CASE WHEN hi IS NOT NULL THEN format(' up to %s', hi) ELSE '' END, coalesce(v::text, 'null')));
        END IF;
    ELSIF want OPERATOR(pg_catalog.=) 'name' THEN
        IF t IS DISTINCT FROM 'string' OR (v #>> '{}') OPERATOR(pg_catalog.!~) '^[a-z][a-z0-9_]{0,39}$' THEN
            PERFORM iceml._pipeline_fault(path, format('must be a name of lower-case letters, digits and underscores (at most 40, starting with a letter), not %s', coalesce(v::text, 'null')));
        END IF;
    ELSIF t IS DISTINCT FROM want THEN
        PERFORM iceml._pipeline_fault(path, format('must be a%s %s, not %s',
            CASE WHEN want OPERATOR(pg_catalog.=) ANY (ARRAY['array', 'object']) THEN 'n' ELSE '' END,
            want, coalesce(v::text, 'null')));
    END IF;
END
$$;
COMMENT ON FUNCTION iceml._pipeline_type(jsonb, text, text, numeric, numeric) IS
    'internal: refuses a config value of the wrong JSON type or out of range';

CREATE FUNCTION iceml._pipeline_hyperparams(hp jsonb, path text, tune boolean)
    RETURNS void
    LANGUAGE plpgsql STABLE
    SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    k text;
    msg text;
    hint text;
BEGIN
    IF jsonb_typeof(hp) IS DISTINCT FROM 'object' THEN
        PERFORM iceml._pipeline_fault(path, format('must be an object, not %s', coalesce(hp::text, 'null')));
    END IF;
    -- the pipeline's "deploy" step decides deployment; ASHA's rung belongs to a search
    IF hp ? 'deploy' THEN
        PERFORM iceml._pipeline_fault(path || '.deploy', 'set by the pipeline''s "deploy" key, not as a hyperparameter',
            'Use "deploy": "if_better", "always" or "never" at the top of the config.');
    END IF;
    IF hp ? 'asha_min_epochs' THEN
        IF NOT tune THEN
            PERFORM iceml._pipeline_fault(path || '.asha_min_epochs', 'only a "tune" step has ASHA rungs');
        END IF;
        PERFORM iceml._pipeline_type(hp->'asha_min_epochs', path || '.asha_min_epochs', 'integer', 1, 1000000);
    END IF;
    -- each key alone, so that a fault names its path; then all together
    -- (a limit that depends on another key, e.g. warmup_epochs on epochs)
    FOR k IN SELECT jsonb_object_keys(hp - 'asha_min_epochs') ORDER BY 1 LOOP
        BEGIN
            PERFORM iceml._resolve_hyperparams(jsonb_build_object(k, hp->k), NULL);
        EXCEPTION WHEN invalid_parameter_value THEN
            GET STACKED DIAGNOSTICS msg = MESSAGE_TEXT, hint = PG_EXCEPTION_HINT;
            PERFORM iceml._pipeline_fault(path || '.' || k, msg, nullif(hint, ''));
        END;
    END LOOP;
    BEGIN
        PERFORM iceml._resolve_hyperparams(hp - 'asha_min_epochs', NULL);
    EXCEPTION WHEN invalid_parameter_value THEN
        GET STACKED DIAGNOSTICS msg = MESSAGE_TEXT, hint = PG_EXCEPTION_HINT;
        PERFORM iceml._pipeline_fault(path, msg, nullif(hint, ''));
    END;
END
$$;
COMMENT ON FUNCTION iceml._pipeline_hyperparams(jsonb, text, boolean) IS
    'internal: refuses hyperparameters in a pipeline config that iceml.train would refuse (the same C parser), naming the JSON path';

-- The whole config, checked before any work: returns it with defaults filled in.
CREATE FUNCTION iceml._pipeline_check(name text, config jsonb)
    RETURNS jsonb
    LANGUAGE plpgsql STABLE
    SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    c jsonb := config;
    fg jsonb;
    ing jsonb;
    td jsonb;
    tr jsonb;
    dr jsonb;
    src text[];
BEGIN
    IF name IS NULL OR name OPERATOR(pg_catalog.!~) '^[a-z][a-z0-9_]{0,39}$' THEN
        RAISE EXCEPTION 'invalid pipeline name %', coalesce(quote_literal(name), 'NULL')
            USING ERRCODE = '22023',
                  DETAIL = 'The name is also the experiment, deployment and training dataset name.',
                  HINT = 'Use at most 40 lower-case letters, digits and underscores, starting with a letter.';
    END IF;
    PERFORM iceml._pipeline_keys(c, '$',
        ARRAY['feature_group', 'ingest', 'on_error', 'statistics', 'training_dataset', 'train', 'tune',
              'evaluate', 'deploy', 'retrain_on_drift']);

    -- feature_group: an existing table, or a group by name (created when missing)
    IF c ? 'feature_group' THEN
        fg := c->'feature_group';
        PERFORM iceml._pipeline_keys(fg, '$.feature_group',
            ARRAY['name', 'table', 'features', 'primary_key', 'expectations', 'validation', 'statistics', 'description']);
        IF (fg ? 'name') OPERATOR(pg_catalog.=) (fg ? 'table') THEN
            PERFORM iceml._pipeline_fault('$.feature_group', 'give exactly one of "name" (a group, created when missing) and "table" (an existing feature group table)');
        END IF;
        IF fg ? 'table' THEN
            PERFORM iceml._pipeline_type(fg->'table', '$.feature_group.table', 'string');
            IF (fg ?| ARRAY['features', 'primary_key', 'expectations', 'validation', 'statistics', 'description']) THEN
                PERFORM iceml._pipeline_fault('$.feature_group', 'an existing "table" takes no other keys');
            END IF;
        ELSE
            PERFORM iceml._pipeline_type(fg->'name', '$.feature_group.name', 'name');
        END IF;
        IF fg ? 'features' THEN PERFORM iceml._pipeline_type(fg->'features', '$.feature_group.features', 'array'); END IF;
        IF fg ? 'primary_key' THEN PERFORM iceml._pipeline_type(fg->'primary_key', '$.feature_group.primary_key', 'array'); END IF;
        IF fg ? 'expectations' THEN PERFORM iceml._pipeline_type(fg->'expectations', '$.feature_group.expectations', 'array'); END IF;
        IF fg ? 'validation' THEN
            PERFORM iceml._pipeline_type(fg->'validation', '$.feature_group.validation', 'string');
            -- the mode as create_feature_group reads it, the fault at its path
            DECLARE
                msg text;
                hint text;
            BEGIN
                PERFORM iceml._fs_validation_mode(fg->>'validation');
            EXCEPTION WHEN invalid_parameter_value THEN
                GET STACKED DIAGNOSTICS msg = MESSAGE_TEXT, hint = PG_EXCEPTION_HINT;
                PERFORM iceml._pipeline_fault('$.feature_group.validation', msg, hint);
            END;
        END IF;
        IF fg ? 'statistics' THEN PERFORM iceml._pipeline_type(fg->'statistics', '$.feature_group.statistics', 'boolean'); END IF;
        IF fg ? 'description' THEN PERFORM iceml._pipeline_type(fg->'description', '$.feature_group.description', 'string'); END IF;
    END IF;

    IF c ? 'ingest' THEN
        ing := c->'ingest';
        IF NOT c ? 'feature_group' THEN
            PERFORM iceml._pipeline_fault('$.ingest', 'needs "feature_group" to load into');
        END IF;
        PERFORM iceml._pipeline_keys(ing, '$.ingest', ARRAY['synthetic', 'path', 'document']);
        src := ARRAY(SELECT jsonb_object_keys(ing));
        IF cardinality(src) OPERATOR(pg_catalog.<>) 1 THEN
            PERFORM iceml._pipeline_fault('$.ingest', 'give exactly one of "synthetic", "path" and "document"');
        END IF;
        IF ing ? 'synthetic' THEN
            PERFORM iceml._pipeline_keys(ing->'synthetic', '$.ingest.synthetic', ARRAY['n', 'seed', 'bad'], ARRAY['n']);
            PERFORM iceml._pipeline_type(ing #> '{synthetic,n}', '$.ingest.synthetic.n', 'integer', 1, 1000000);
            IF ing->'synthetic' ? 'seed' THEN
                PERFORM iceml._pipeline_type(ing #> '{synthetic,seed}', '$.ingest.synthetic.seed', 'integer', 0, 2147483647);
            END IF;
            IF ing->'synthetic' ? 'bad' THEN
                PERFORM iceml._pipeline_type(ing #> '{synthetic,bad}', '$.ingest.synthetic.bad', 'integer', 0, 100);
            END IF;
        ELSE
            PERFORM iceml._pipeline_type(ing->src[1], '$.ingest.' || src[1], 'string');
        END IF;
    END IF;

    IF c ? 'on_error' THEN
        IF jsonb_typeof(c->'on_error') IS DISTINCT FROM 'string' OR NOT c->>'on_error' IN ('abort', 'quarantine') THEN
            PERFORM iceml._pipeline_fault('$.on_error', format('must be "abort" or "quarantine", not %s', c->'on_error'));
        END IF;
    END IF;
    IF c ? 'statistics' THEN PERFORM iceml._pipeline_type(c->'statistics', '$.statistics', 'boolean'); END IF;

    td := coalesce(c->'training_dataset', '{}');
    PERFORM iceml._pipeline_keys(td, '$.training_dataset', ARRAY['name', 'table', 'label', 'features', 'splits', 'seed']);
    IF td ? 'table' THEN
        PERFORM iceml._pipeline_type(td->'table', '$.training_dataset.table', 'string');
        IF c ?| ARRAY['feature_group', 'ingest'] THEN
            PERFORM iceml._pipeline_fault('$.training_dataset.table', 'an existing training dataset skips the steps before it: leave out "feature_group" and "ingest"');
        END IF;
        IF td ?| ARRAY['name', 'label', 'features', 'splits', 'seed'] THEN
            PERFORM iceml._pipeline_fault('$.training_dataset', 'an existing "table" takes no other keys');
        END IF;
    ELSIF NOT c ? 'feature_group' THEN
        PERFORM iceml._pipeline_fault('$', 'needs "feature_group" or "training_dataset": {"table": ...}',
            'Name a feature group to build a training dataset from, or an existing training dataset.');
    END IF;
    IF td ? 'name' THEN PERFORM iceml._pipeline_type(td->'name', '$.training_dataset.name', 'name'); END IF;
    IF td ? 'label' THEN PERFORM iceml._pipeline_type(td->'label', '$.training_dataset.label', 'string'); END IF;
    IF td ? 'features' THEN PERFORM iceml._pipeline_type(td->'features', '$.training_dataset.features', 'array'); END IF;
    IF td ? 'splits' THEN PERFORM iceml._pipeline_type(td->'splits', '$.training_dataset.splits', 'object'); END IF;
    IF td ? 'seed' THEN PERFORM iceml._pipeline_type(td->'seed', '$.training_dataset.seed', 'integer', -2147483648, 2147483647); END IF;

    IF c ? 'train' AND c ? 'tune' THEN
        PERFORM iceml._pipeline_fault('$', 'give "train" or "tune", not both');
    END IF;
    IF c ? 'train' THEN
        tr := c->'train';
        PERFORM iceml._pipeline_keys(tr, '$.train', ARRAY['architecture', 'hyperparams']);
        IF tr ? 'architecture' THEN PERFORM iceml._pipeline_type(tr->'architecture', '$.train.architecture', 'string'); END IF;
        IF tr ? 'hyperparams' THEN PERFORM iceml._pipeline_hyperparams(tr->'hyperparams', '$.train.hyperparams', false); END IF;
    ELSIF c ? 'tune' THEN
        tr := c->'tune';
        PERFORM iceml._pipeline_keys(tr, '$.tune',
            ARRAY['architecture', 'search_space', 'strategy', 'trials', 'parallel', 'metric', 'hyperparams', 'nodes'],
            ARRAY['search_space']);
        IF tr ? 'architecture' THEN PERFORM iceml._pipeline_type(tr->'architecture', '$.tune.architecture', 'string'); END IF;
        PERFORM iceml._pipeline_type(tr->'search_space', '$.tune.search_space', 'object');
        IF tr ? 'strategy' AND (jsonb_typeof(tr->'strategy') IS DISTINCT FROM 'string' OR NOT tr->>'strategy' IN ('grid', 'random', 'asha')) THEN
            PERFORM iceml._pipeline_fault('$.tune.strategy', format('must be "grid", "random" or "asha", not %s', tr->'strategy'));
        END IF;
        IF tr ? 'trials' THEN PERFORM iceml._pipeline_type(tr->'trials', '$.tune.trials', 'integer', 1, 1000); END IF;
        IF tr ? 'parallel' THEN PERFORM iceml._pipeline_type(tr->'parallel', '$.tune.parallel', 'integer', 1, 64); END IF;
        IF tr ? 'metric' AND (jsonb_typeof(tr->'metric') IS DISTINCT FROM 'string' OR NOT tr->>'metric' IN ('val_log_loss', 'val_acc', 'val_auc')) THEN
            PERFORM iceml._pipeline_fault('$.tune.metric', format('must be "val_log_loss", "val_acc" or "val_auc", not %s', tr->'metric'));
        END IF;
        IF tr ? 'hyperparams' THEN PERFORM iceml._pipeline_hyperparams(tr->'hyperparams', '$.tune.hyperparams', true); END IF;
        -- the nodes themselves are checked when the step runs (tune's own
        -- errors): a schedule may name a node added, or taken down, later
        IF tr ? 'nodes' THEN
            PERFORM iceml._pipeline_type(tr->'nodes', '$.tune.nodes', 'array');
            IF jsonb_array_length(tr->'nodes') OPERATOR(pg_catalog.=) 0
               OR EXISTS (SELECT FROM jsonb_array_elements(tr->'nodes') e WHERE jsonb_typeof(e) IS DISTINCT FROM 'string') THEN
                PERFORM iceml._pipeline_fault('$.tune.nodes', format('must be a non-empty array of node names, not %s', tr->'nodes'),
                    'Name nodes of iceml.nodes, for example ["n1", "n2"].');
            END IF;
        END IF;
    ELSE
        PERFORM iceml._pipeline_fault('$', 'needs "train" or "tune"',
            'For example "train": {"architecture": "tiny_cnn", "hyperparams": {"epochs": 5}}.');
    END IF;

    IF c ? 'evaluate' THEN
        PERFORM iceml._pipeline_keys(c->'evaluate', '$.evaluate', ARRAY['split']);
        IF c->'evaluate' ? 'split' THEN PERFORM iceml._pipeline_type(c #> '{evaluate,split}', '$.evaluate.split', 'string'); END IF;
    END IF;
    IF c ? 'deploy' AND (jsonb_typeof(c->'deploy') IS DISTINCT FROM 'string' OR NOT c->>'deploy' IN ('if_better', 'always', 'never')) THEN
        PERFORM iceml._pipeline_fault('$.deploy', format('must be "if_better", "always" or "never", not %s', c->'deploy'));
    END IF;

    IF c ? 'retrain_on_drift' THEN
        dr := c->'retrain_on_drift';
        PERFORM iceml._pipeline_keys(dr, '$.retrain_on_drift', ARRAY['model', 'psi_threshold', 'min_samples', 'since'], ARRAY['model']);
        PERFORM iceml._pipeline_type(dr->'model', '$.retrain_on_drift.model', 'string');
        IF dr ? 'psi_threshold' THEN PERFORM iceml._pipeline_type(dr->'psi_threshold', '$.retrain_on_drift.psi_threshold', 'number', 0); END IF;
        IF dr ? 'min_samples' THEN PERFORM iceml._pipeline_type(dr->'min_samples', '$.retrain_on_drift.min_samples', 'integer', 1, 100000000); END IF;
        IF dr ? 'since' THEN
            PERFORM iceml._pipeline_type(dr->'since', '$.retrain_on_drift.since', 'string');
            BEGIN
                PERFORM (dr->>'since')::interval;
            EXCEPTION WHEN invalid_datetime_format OR datetime_field_overflow OR interval_field_overflow THEN
                PERFORM iceml._pipeline_fault('$.retrain_on_drift.since', format('not an interval: %s', dr->'since'));
            END;
        END IF;
    END IF;

    -- defaults
    RETURN c || jsonb_build_object(
        'on_error', coalesce(c->>'on_error', 'abort'),
        'deploy', coalesce(c->>'deploy', 'if_better'),
        'statistics', coalesce((c->>'statistics')::boolean, true),
        'evaluate', coalesce(c->'evaluate', '{}') || jsonb_build_object('split', coalesce(c #>> '{evaluate,split}', 'test')));
END
$$;
COMMENT ON FUNCTION iceml._pipeline_check(text, jsonb) IS
    'internal: checks a pipeline name and config whole (22023 naming the JSON path of a fault) and fills in defaults';

-- the steps a config runs, in order
CREATE FUNCTION iceml._pipeline_plan(config jsonb) RETURNS text[]
    LANGUAGE sql IMMUTABLE
    SET search_path = pg_catalog, pg_temp
AS $$
    SELECT CASE WHEN config ? 'retrain_on_drift' THEN ARRAY['drift_check'] ELSE '{}'::text[] END
        || ARRAY['ingest', 'validate', 'statistics', 'training_dataset',
                 CASE WHEN config ? 'tune' THEN 'tune' ELSE 'train' END, 'evaluate', 'deploy']
$$;
COMMENT ON FUNCTION iceml._pipeline_plan(jsonb) IS 'internal: the steps of a pipeline config, in order';

-- ---- the steps ---------------------------------------------------------------

-- One step of pipeline run `run_id`.  Called by the worker (src/jobs/pipeline.c)
-- as the role that started the pipeline, in a transaction of its own.
-- `state` carries what earlier steps made (feature_group, training_dataset,
-- model_id, ...).  Returns {"status", "rows_in", "rows", "detail", "state",
-- and "wait" (a run or study id the worker waits for after committing)}.
CREATE FUNCTION iceml._pipeline_step(run_id bigint, step text, name text, config jsonb, state jsonb)
    RETURNS jsonb
    LANGUAGE plpgsql VOLATILE
    SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    st jsonb := state;
    fgc jsonb := config->'feature_group';
    rel regclass;
    fgrow record;
    tdrow record;
    created boolean := false;
    n bigint;
    nbad int;
    inserted bigint;
    res record;
    doc text;
    fp text;
    prev record;
    commit_before bigint;
    commit_after bigint;
    v jsonb;
    td regclass;
    tdname text;
    splits jsonb;
    seed int;
    label text;
    feats text[];
    arch text;
    hp jsonb;
    id bigint;
    mode text;
    cur record;
    cur_metrics jsonb;
    mon jsonb;
    retrain boolean;
BEGIN
    IF step OPERATOR(pg_catalog.=) 'drift_check' THEN
        v := config->'retrain_on_drift';
        mon := iceml.monitor(v->>'model', coalesce(v->>'since', '1 day')::interval,
                             coalesce((v->>'psi_threshold')::float8, 0.2), coalesce((v->>'min_samples')::int, 100));
        IF mon->'deployed_model_id' IS NULL OR jsonb_typeof(mon->'deployed_model_id') OPERATOR(pg_catalog.=) 'null' THEN
            retrain := true;
            v := jsonb_build_object('decision', 'train', 'reason', format('no model is deployed under "%s" yet', v->>'model'));
        ELSIF jsonb_typeof(mon->'drift') OPERATOR(pg_catalog.=) 'null' THEN
            retrain := false;
            v := jsonb_build_object('decision', 'skip', 'reason', mon->>'drift_reason');
        ELSIF (mon->>'drift')::boolean THEN
            retrain := true;
            v := jsonb_build_object('decision', 'train', 'reason', 'the monitor reports drift: a PSI above the threshold');
        ELSE
            retrain := false;
            v := jsonb_build_object('decision', 'skip', 'reason', 'no input''s PSI is above the threshold');
        END IF;
        v := v || jsonb_build_object('calls', mon->'calls', 'psi_threshold', mon->'psi_threshold',
                                     'drift', mon->'drift',
                                     'psi', (SELECT jsonb_object_agg(k, x->'psi') FROM jsonb_each(coalesce(mon->'inputs', '{}')) AS e(k, x)));
        RETURN jsonb_build_object('status', 'succeeded', 'rows_in', mon->'calls', 'detail', v,
                                  'state', st || jsonb_build_object('retrain', retrain));
    END IF;

    IF step OPERATOR(pg_catalog.=) 'ingest' THEN
        IF fgc IS NULL THEN
            RETURN jsonb_build_object('status', 'skipped', 'detail', jsonb_build_object('reason', 'the config names a training dataset'), 'state', st);
        END IF;
        IF fgc ? 'table' THEN
            rel := (fgc->>'table')::regclass;
            SELECT * INTO fgrow FROM iceml.feature_groups g WHERE g."table" OPERATOR(pg_catalog.=) rel;
            IF NOT FOUND THEN
                RAISE EXCEPTION 'relation % is not a feature group', rel USING ERRCODE = '22023',
                    HINT = 'iceml.feature_groups lists the feature groups.';
            END IF;
        ELSE
            SELECT * INTO fgrow FROM iceml.feature_groups g WHERE g.name OPERATOR(pg_catalog.=) (fgc->>'name')
             ORDER BY g.version DESC LIMIT 1;
            IF FOUND THEN
                rel := fgrow."table";
            ELSE
                rel := iceml.create_feature_group(fgc->>'name',
                    coalesce(fgc->'features', '[{"name":"id","type":"text"},{"name":"band_1","type":"real[]"},{"name":"band_2","type":"real[]"},{"name":"inc_angle","type":"real"},{"name":"is_iceberg","type":"smallint"}]'),
                    CASE WHEN fgc ? 'primary_key' THEN ARRAY(SELECT jsonb_array_elements_text(fgc->'primary_key')) ELSE ARRAY['id'] END,
                    description => fgc->>'description',
                    expectations => coalesce(fgc->'expectations', '[]'),
                    validation => coalesce(fgc->>'validation', 'STRICT'),
                    statistics => coalesce((fgc->>'statistics')::boolean, true));
                created := true;
                SELECT * INTO fgrow FROM iceml.feature_groups g WHERE g."table" OPERATOR(pg_catalog.=) rel;
            END IF;
        END IF;
        st := st || jsonb_build_object('feature_group', rel::text);
        SELECT max(c.commit_id) INTO commit_before FROM iceml.feature_group_commits c
         WHERE c.feature_group_id OPERATOR(pg_catalog.=) fgrow.id;
        st := st || jsonb_build_object('commit_before', commit_before, 'ingest_started', clock_timestamp());
        IF NOT config ? 'ingest' THEN
            RETURN jsonb_build_object('status', 'skipped',
                'detail', jsonb_build_object('reason', 'no "ingest": the feature group is used as it is',
                                             'feature_group', rel::text, 'created', created), 'state', st);
        END IF;
        v := config->'ingest';
        IF v ? 'synthetic' THEN
            n := (v #>> '{synthetic,n}')::bigint;
            seed := coalesce((v #>> '{synthetic,seed}')::int, 0);
            nbad := coalesce((v #>> '{synthetic,bad}')::int, 0);
            -- rows already there (same seed: same ids) are not inserted again
            EXECUTE format('INSERT INTO %s AS t (id, band_1, band_2, inc_angle, is_iceberg)'
                           ' SELECT s.id, s.band_1, s.band_2, s.inc_angle, s.is_iceberg'
                           '   FROM iceml.synthesize_statoil($1, $2) s'
                           '  WHERE NOT EXISTS (SELECT 1 FROM %s x WHERE x.id OPERATOR(pg_catalog.=) s.id)', rel, rel)
                USING n::int, seed;
            GET DIAGNOSTICS inserted = ROW_COUNT;
            res := ROW(n, inserted, 0::bigint);
            IF nbad OPERATOR(pg_catalog.>) 0 THEN
                -- deliberately bad records, through the loader: a short band,
                -- a missing band, and an incidence angle of 99 degrees
                SELECT '[' || string_agg(CASE i % 3
                    WHEN 0 THEN jsonb_build_object('id', format('bad_%s_%s', seed, i), 'band_1', to_jsonb(s.band_1[1:100]),
                                                   'band_2', to_jsonb(s.band_2), 'inc_angle', s.inc_angle, 'is_iceberg', s.is_iceberg)
                    WHEN 1 THEN jsonb_build_object('id', format('bad_%s_%s', seed, i), 'band_1', to_jsonb(s.band_1),
                                                   'inc_angle', s.inc_angle, 'is_iceberg', s.is_iceberg)
                    ELSE jsonb_build_object('id', format('bad_%s_%s', seed, i), 'band_1', to_jsonb(s.band_1),
                                            'band_2', to_jsonb(s.band_2), 'inc_angle', 99, 'is_iceberg', s.is_iceberg) END::text,
                    ',' ORDER BY i) || ']'
                  INTO doc
                  FROM (SELECT g.*, row_number() OVER () - 1 AS i
                          FROM iceml.synthesize_statoil(nbad, seed + 1000003) g) s;
                SELECT * INTO prev FROM iceml.ingest_statoil(rel, document => doc, on_error => config->>'on_error');
                res := ROW(n + prev.read, inserted + prev.inserted, prev.quarantined);
            END IF;
            st := st || jsonb_build_object('read', res.f1, 'inserted', res.f2, 'quarantined', res.f3);
            RETURN jsonb_build_object('status', 'succeeded', 'rows_in', res.f1, 'rows', res.f2,
                'detail', jsonb_build_object('source', v, 'feature_group', rel::text, 'created', created,
                                             'read', res.f1, 'inserted', res.f2, 'quarantined', res.f3,
                                             'already_there', n - inserted),
                'state', st);
        END IF;
        -- a file or a document: skipped when the same source went into the
        -- same group before and the group has not changed since
        IF v ? 'document' THEN
            fp := 'document md5 ' || md5(v->>'document');
        ELSE
            BEGIN
                SELECT format('path %s size %s modified %s', v->>'path', f.size, f.modification) INTO fp
                  FROM pg_stat_file(v->>'path') f;
            EXCEPTION WHEN insufficient_privilege OR undefined_file THEN
                fp := NULL;
            END;
        END IF;
        IF fp IS NOT NULL THEN
            SELECT s.run_id AS run, s.detail INTO prev
              FROM iceml.pipeline_steps s JOIN iceml.pipeline_runs r ON r.id OPERATOR(pg_catalog.=) s.run_id
             WHERE s.step OPERATOR(pg_catalog.=) 'ingest' AND s.status OPERATOR(pg_catalog.=) 'succeeded'
               AND s.detail->>'fingerprint' OPERATOR(pg_catalog.=) fp
               AND (s.detail->>'feature_group_id')::bigint OPERATOR(pg_catalog.=) fgrow.id
               AND NOT EXISTS (SELECT 1 FROM iceml.feature_group_commits c
                                WHERE c.feature_group_id OPERATOR(pg_catalog.=) fgrow.id
                                  AND c.commit_id OPERATOR(pg_catalog.>) coalesce((s.detail->>'commit_after')::bigint, 0)
                                  AND c.rows_inserted + c.rows_updated + c.rows_deleted OPERATOR(pg_catalog.>) 0)
             ORDER BY s.run_id DESC LIMIT 1;
            IF FOUND THEN
                RETURN jsonb_build_object('status', 'skipped', 'rows_in', 0, 'rows', 0,
                    'detail', jsonb_build_object('reason', format('pipeline run %s loaded the same source and the feature group has not changed since', prev.run),
                                                 'feature_group', rel::text, 'fingerprint', fp, 'commit_after', commit_before,
                                                 'feature_group_id', fgrow.id),
                    'state', st);
            END IF;
        END IF;
        IF v ? 'document' THEN
            SELECT * INTO res FROM iceml.ingest_statoil(rel, document => v->>'document', on_error => config->>'on_error');
        ELSE
            SELECT * INTO res FROM iceml.ingest_statoil(rel, path => v->>'path', on_error => config->>'on_error');
        END IF;
        SELECT max(c.commit_id) INTO commit_after FROM iceml.feature_group_commits c
         WHERE c.feature_group_id OPERATOR(pg_catalog.=) fgrow.id;
        st := st || jsonb_build_object('read', res.read, 'inserted', res.inserted, 'quarantined', res.quarantined);
        RETURN jsonb_build_object('status', 'succeeded', 'rows_in', res.read, 'rows', res.inserted,
            'detail', jsonb_build_object('source', CASE WHEN v ? 'path' THEN v ELSE jsonb_build_object('document', format('%s bytes', octet_length(v->>'document'))) END,
                                         'feature_group', rel::text, 'created', created, 'read', res.read,
                                         'inserted', res.inserted, 'quarantined', res.quarantined,
                                         'fingerprint', fp, 'commit_after', commit_after, 'feature_group_id', fgrow.id),
            'state', st);
    END IF;

    IF step OPERATOR(pg_catalog.=) 'validate' THEN
        IF st->'read' IS NULL THEN
            RETURN jsonb_build_object('status', 'skipped', 'detail', jsonb_build_object('reason', 'nothing was ingested'), 'state', st);
        END IF;
        rel := (st->>'feature_group')::regclass;
        SELECT g.validation, jsonb_array_length(g.expectations) AS n INTO fgrow FROM iceml.feature_groups g WHERE g."table" OPERATOR(pg_catalog.=) rel;
        v := jsonb_build_object('feature_group', rel::text, 'validation', fgrow.validation, 'expectations', fgrow.n,
            'checked', st->'read', 'passed', st->'inserted', 'quarantined', st->'quarantined',
            'on_error', config->>'on_error',
            'quarantine_reasons', coalesce((SELECT jsonb_agg(jsonb_build_object('record_id', q.record_id, 'sqlstate', q.sqlstate, 'reason', left(q.reason, 200)) ORDER BY q.id)
                                  FROM (SELECT * FROM iceml.quarantine q WHERE q.feature_group OPERATOR(pg_catalog.=) rel
                                          AND q.quarantined_at OPERATOR(pg_catalog.>=) (st->>'ingest_started')::timestamptz
                                        ORDER BY q.id LIMIT 10) q), '[]'),
            'findings', coalesce((SELECT jsonb_agg(jsonb_build_object('expectation', x.expectation, 'rule', x.rule, 'feature', x.feature,
                                                                      'status', x.status, 'failing_rows', x.failing_rows) ORDER BY x.id)
                                  FROM iceml.validations x WHERE x.feature_group OPERATOR(pg_catalog.=) rel
                                   AND x.commit_id OPERATOR(pg_catalog.>) coalesce((st->>'commit_before')::bigint, 0)), '[]'));
        RETURN jsonb_build_object('status', 'succeeded', 'rows_in', st->'read', 'rows', st->'inserted', 'detail', v, 'state', st);
    END IF;

    IF step OPERATOR(pg_catalog.=) 'statistics' THEN
        IF st->'feature_group' IS NULL OR NOT (config->>'statistics')::boolean THEN
            RETURN jsonb_build_object('status', 'skipped', 'detail', jsonb_build_object('reason',
                CASE WHEN st->'feature_group' IS NULL THEN 'the config names a training dataset' ELSE '"statistics": false' END), 'state', st);
        END IF;
        rel := (st->>'feature_group')::regclass;
        -- current when no statement changed a row since they were computed
        SELECT (SELECT max(s.commit_id) FROM iceml.feature_statistics s WHERE s.feature_group OPERATOR(pg_catalog.=) rel) AS stats_commit
          INTO prev;
        IF prev.stats_commit IS NOT NULL AND NOT EXISTS (
               SELECT 1 FROM iceml.feature_group_commits c
                WHERE c.feature_group OPERATOR(pg_catalog.=) rel AND c.commit_id OPERATOR(pg_catalog.>) prev.stats_commit
                  AND c.rows_inserted + c.rows_updated + c.rows_deleted OPERATOR(pg_catalog.>) 0) THEN
            RETURN jsonb_build_object('status', 'skipped', 'detail', jsonb_build_object('reason', format('the statistics are current: no row changed since commit %s', prev.stats_commit),
                                      'feature_group', rel::text), 'state', st);
        END IF;
        n := iceml.compute_statistics(rel);
        RETURN jsonb_build_object('status', 'succeeded', 'rows_in', n, 'rows', n,
            'detail', jsonb_build_object('feature_group', rel::text, 'features',
                (SELECT count(DISTINCT s.feature) FROM iceml.feature_statistics s WHERE s.feature_group OPERATOR(pg_catalog.=) rel)),
            'state', st);
    END IF;

    IF step OPERATOR(pg_catalog.=) 'training_dataset' THEN
        v := coalesce(config->'training_dataset', '{}');
        IF v ? 'table' THEN
            td := (v->>'table')::regclass;
            SELECT * INTO tdrow FROM iceml.training_datasets t WHERE t."table" OPERATOR(pg_catalog.=) td;
            IF NOT FOUND THEN
                RAISE EXCEPTION 'relation % is not a training dataset', td USING ERRCODE = '22023',
                    HINT = 'iceml.training_datasets lists the training datasets.';
            END IF;
            RETURN jsonb_build_object('status', 'skipped', 'rows', (SELECT sum(x::bigint) FROM jsonb_each_text(tdrow.row_counts) e(k, x)),
                'detail', jsonb_build_object('reason', 'given in the config', 'training_dataset', td::text),
                'state', st || jsonb_build_object('training_dataset', td::text));
        END IF;
        rel := (st->>'feature_group')::regclass;
        tdname := coalesce(v->>'name', name);
        splits := coalesce(v->'splits', '{"train": 0.7, "validation": 0.15, "test": 0.15}');
        seed := coalesce((v->>'seed')::int, 42);
        label := coalesce(v->>'label', 'is_iceberg');
        feats := CASE WHEN v ? 'features' THEN ARRAY(SELECT jsonb_array_elements_text(v->'features')) END;
        -- the latest version is reused when it was made from the group as it is now
        SELECT t.* INTO tdrow FROM iceml.training_datasets t WHERE t.name OPERATOR(pg_catalog.=) tdname
         ORDER BY t.version DESC LIMIT 1;
        IF tdrow.id IS NOT NULL AND tdrow.feature_group OPERATOR(pg_catalog.=) rel
           AND NOT EXISTS (SELECT 1 FROM iceml.feature_group_commits c
                            WHERE c.feature_group OPERATOR(pg_catalog.=) rel
                              AND c.commit_id OPERATOR(pg_catalog.>) coalesce(tdrow.commit_id, 0)
                              AND c.rows_inserted + c.rows_updated + c.rows_deleted OPERATOR(pg_catalog.>) 0)
           AND tdrow.seed OPERATOR(pg_catalog.=) seed
           AND tdrow.label OPERATOR(pg_catalog.=) label AND tdrow.splits OPERATOR(pg_catalog.=) splits
           AND (feats IS NULL OR tdrow.features OPERATOR(pg_catalog.=) feats) THEN
            RETURN jsonb_build_object('status', 'succeeded', 'rows', (SELECT sum(x::bigint) FROM jsonb_each_text(tdrow.row_counts) e(k, x)),
                'detail', jsonb_build_object('training_dataset', tdrow."table"::text, 'reused', true,
                                             'reason', format('version %s was made from the feature group as it is now: no row changed since', tdrow.version),
                                             'row_counts', tdrow.row_counts),
                'state', st || jsonb_build_object('training_dataset', tdrow."table"::text));
        END IF;
        EXECUTE format('SELECT pg_catalog.count(*) FROM %s', rel) INTO n;
        td := iceml.create_training_dataset(tdname, rel, label, feats, splits, seed);
        SELECT t.* INTO tdrow FROM iceml.training_datasets t WHERE t."table" OPERATOR(pg_catalog.=) td;
        RETURN jsonb_build_object('status', 'succeeded', 'rows_in', n,
            'rows', (SELECT sum(x::bigint) FROM jsonb_each_text(tdrow.row_counts) e(k, x)),
            'detail', jsonb_build_object('training_dataset', td::text, 'reused', false, 'row_counts', tdrow.row_counts,
                                         'label_counts', tdrow.label_counts, 'created', jsonb_build_array(td::text)),
            'state', st || jsonb_build_object('training_dataset', td::text));
    END IF;

    IF step OPERATOR(pg_catalog.=) ANY (ARRAY['train', 'tune']) THEN
        IF st ? 'retrain' AND NOT (st->>'retrain')::boolean THEN
            RETURN jsonb_build_object('status', 'skipped', 'detail', jsonb_build_object('reason', 'drift_check decided not to retrain'), 'state', st);
        END IF;
        td := (st->>'training_dataset')::regclass;
        v := config->step;
        arch := coalesce(v->>'architecture', 'statoil_cnn');
        -- the pipeline's deploy step decides what is deployed
        hp := coalesce(v->'hyperparams', '{}') || '{"deploy": "never"}';
        IF step OPERATOR(pg_catalog.=) 'train' THEN
            -- the same training on the same dataset: its model is reused
            SELECT s.run_id AS run, (s.detail->>'model_id')::bigint AS model_id, (s.detail->>'run')::bigint AS trained_by INTO prev
              FROM iceml.pipeline_steps s JOIN iceml.pipeline_runs r ON r.id OPERATOR(pg_catalog.=) s.run_id
             WHERE r.name OPERATOR(pg_catalog.=) _pipeline_step.name AND s.step OPERATOR(pg_catalog.=) 'train'
               AND s.status OPERATOR(pg_catalog.=) 'succeeded'
               AND s.detail->>'training_dataset' OPERATOR(pg_catalog.=) td::text
               AND s.detail->>'architecture' OPERATOR(pg_catalog.=) arch
               AND s.detail->'hyperparams' OPERATOR(pg_catalog.=) hp
               -- the same dataset, not one re-created under its name
               AND EXISTS (SELECT 1 FROM iceml.models m WHERE m.id OPERATOR(pg_catalog.=) (s.detail->>'model_id')::bigint
                              AND m.training_dataset OPERATOR(pg_catalog.=) td)
             ORDER BY s.run_id DESC LIMIT 1;
            IF FOUND THEN
                RETURN jsonb_build_object('status', 'succeeded',
                    'detail', jsonb_build_object('training_dataset', td::text, 'architecture', arch, 'hyperparams', hp,
                                                 'model_id', prev.model_id, 'run', prev.trained_by, 'reused', true,
                                                 'reason', format('pipeline run %s trained the same on the same dataset', prev.run)),
                    'state', st || jsonb_build_object('model_id', prev.model_id));
            END IF;
            id := iceml.train(name, td, arch, hp);
        ELSE
            id := iceml.tune(name, td, arch, v->'search_space', coalesce(v->>'strategy', 'random'),
                             coalesce((v->>'trials')::int, 4), coalesce((v->>'parallel')::int, 2),
                             coalesce(v->>'metric', 'val_log_loss'), hp,
                             (SELECT pg_catalog.array_agg(e ORDER BY o) FROM jsonb_array_elements_text(v->'nodes') WITH ORDINALITY x(e, o)));
        END IF;
        RETURN jsonb_build_object('status', 'running', 'wait', id,
            'detail', jsonb_build_object('training_dataset', td::text, 'architecture', arch, 'hyperparams', hp,
                                         CASE WHEN step OPERATOR(pg_catalog.=) 'train' THEN 'run' ELSE 'study' END, id)
                      || CASE WHEN v ? 'nodes' THEN jsonb_build_object('nodes', v->'nodes') ELSE '{}' END,
            'state', st);
    END IF;

    IF step OPERATOR(pg_catalog.=) 'evaluate' THEN
        IF st->'model_id' IS NULL THEN
            RETURN jsonb_build_object('status', 'skipped', 'detail', jsonb_build_object('reason', 'no model was trained'), 'state', st);
        END IF;
        td := (st->>'training_dataset')::regclass;
        -- as the caller, on the model by id (deploy compares what is deployed)
        v := iceml.evaluate((st->>'model_id')::bigint, td, config #>> '{evaluate,split}');
        RETURN jsonb_build_object('status', 'succeeded', 'rows_in', v->'n', 'rows', v->'n',
            'detail', v || jsonb_build_object('training_dataset', td::text), 'state', st || jsonb_build_object('metrics', v));
    END IF;

    IF step OPERATOR(pg_catalog.=) 'deploy' THEN
        mode := config->>'deploy';
        IF st->'model_id' IS NULL OR mode OPERATOR(pg_catalog.=) 'never' THEN
            RETURN jsonb_build_object('status', 'skipped', 'detail', jsonb_build_object('mode', mode, 'reason',
                CASE WHEN st->'model_id' IS NULL THEN 'no model was trained' ELSE '"deploy": "never"' END), 'state', st);
        END IF;
        id := (st->>'model_id')::bigint;
        SELECT d.model_id, d.model_missing, d.members INTO cur FROM iceml.deployed_models d WHERE d.name OPERATOR(pg_catalog.=) _pipeline_step.name;
        IF cur.model_id OPERATOR(pg_catalog.=) id THEN
            RETURN jsonb_build_object('status', 'skipped', 'detail', jsonb_build_object('mode', mode, 'model_id', id,
                'reason', format('model %s is already deployed under "%s"', id, name)), 'state', st);
        END IF;
        IF mode OPERATOR(pg_catalog.=) 'if_better' AND cur.model_id IS NOT NULL AND NOT cur.model_missing
           AND st->'metrics' IS NOT NULL THEN
            -- both on the same split of the same dataset; the deployment as it
            -- serves (an ensemble's members, test-time augmentation)
            cur_metrics := iceml.evaluate(name, (st->>'training_dataset')::regclass, config #>> '{evaluate,split}');
            IF (cur_metrics->>'log_loss')::numeric OPERATOR(pg_catalog.<=) (st #>> '{metrics,log_loss}')::numeric THEN
                RETURN jsonb_build_object('status', 'skipped', 'detail', jsonb_build_object('mode', mode, 'model_id', id,
                    'deployed_model_id', cur.model_id, 'log_loss', st #> '{metrics,log_loss}', 'deployed_log_loss', cur_metrics->'log_loss',
                    'reason', format('what is deployed under "%s" (model %s%s) is at least as good on the %s split', name, cur.model_id,
                        CASE WHEN cur.members IS NOT NULL THEN format(', an ensemble of %s', pg_catalog.cardinality(cur.members)) ELSE '' END,
                        config #>> '{evaluate,split}')),
                    'state', st);
            END IF;
        END IF;
        PERFORM iceml.deploy(name, id);
        RETURN jsonb_build_object('status', 'succeeded', 'rows', 1, 'detail', jsonb_build_object('mode', mode, 'model_id', id,
            'replaced', cur.model_id, 'deployed_log_loss', cur_metrics->'log_loss', 'log_loss', st #> '{metrics,log_loss}', 'name', name),
            'state', st || jsonb_build_object('deployed', id));
    END IF;
    RAISE EXCEPTION 'unknown pipeline step "%"', step USING ERRCODE = 'XX000';
END
$$;
COMMENT ON FUNCTION iceml._pipeline_step(bigint, text, text, jsonb, jsonb) IS
    'internal: runs one step of a pipeline as the role that started it; called by the pipeline worker only';

-- ---- the API -------------------------------------------------------------------

CREATE FUNCTION iceml.run_pipeline(name text, config jsonb) RETURNS bigint
    AS 'MODULE_PATHNAME', 'iceml_run_pipeline'
    LANGUAGE C VOLATILE;
COMMENT ON FUNCTION iceml.run_pipeline(text, jsonb) IS
    'checks a pipeline config whole and queues a pipeline run; a background worker runs its steps, as the calling role, after the transaction commits; returns the run id at once';

GRANT EXECUTE ON FUNCTION iceml.run_pipeline(text, jsonb) TO iceml_user;

-- ---- schedules on pg_cron ---------------------------------------------------------

-- One row per scheduled pipeline: the pg_cron job (in this database, as its
-- owner) runs SELECT iceml.run_scheduled_pipeline(name), which queues a run
-- of this config.  pg_cron before 1.5 schedules by the minute only: an
-- 'N seconds' schedule is then a per-minute job whose run repeats every N
-- seconds within its minute (repeat_seconds).
CREATE TABLE iceml.schedules (
    id             bigserial PRIMARY KEY,
    name           text NOT NULL,
    owner          name NOT NULL,
    role           regrole NOT NULL,        -- runs the pipeline: by name in a dump
    database       oid NOT NULL,
    schedule       text NOT NULL,
    config         jsonb NOT NULL,
    cron_job       bigint NOT NULL,
    repeat_seconds integer,
    created        timestamptz NOT NULL DEFAULT pg_catalog.now(),
    UNIQUE (database, owner, name)
);
COMMENT ON TABLE iceml.schedules IS
    'pipelines scheduled with iceml.schedule_pipeline(): name, schedule, config and the pg_cron job that runs them';
SELECT pg_catalog.pg_extension_config_dump('iceml.schedules', '');
SELECT pg_catalog.pg_extension_config_dump('iceml.schedules_id_seq', '');
ALTER TABLE iceml.schedules ENABLE ROW LEVEL SECURITY;
CREATE POLICY own_schedules ON iceml.schedules FOR SELECT
    USING (owner OPERATOR(pg_catalog.=) CURRENT_USER
           OR pg_catalog.pg_has_role('iceml_admin', 'MEMBER'));
GRANT SELECT ON iceml.schedules TO iceml_reader;

CREATE VIEW iceml.pipeline_schedules WITH (security_invoker = true) AS
SELECT s.name, s.schedule, s.cron_job, s.owner, s.config, s.created,
       last.id AS last_run, last.status AS last_status, last.started AS last_started,
       last.finished AS last_finished, coalesce(n.runs, 0) AS runs
  FROM iceml.schedules s
  LEFT JOIN LATERAL (SELECT p.id, p.status, p.started, p.finished FROM iceml.pipeline_runs p
                      WHERE p.cron_job OPERATOR(pg_catalog.=) s.cron_job
                        AND p.owner OPERATOR(pg_catalog.=) s.owner
                      ORDER BY p.id DESC LIMIT 1) last ON true
  LEFT JOIN LATERAL (SELECT pg_catalog.count(*) AS runs FROM iceml.pipeline_runs p
                      WHERE p.cron_job OPERATOR(pg_catalog.=) s.cron_job
                        AND p.owner OPERATOR(pg_catalog.=) s.owner) n ON true
 WHERE s.database OPERATOR(pg_catalog.=) (SELECT d.oid FROM pg_catalog.pg_database d
                                           WHERE d.datname OPERATOR(pg_catalog.=) pg_catalog.current_database());
COMMENT ON VIEW iceml.pipeline_schedules IS
    'your scheduled pipelines in this database with their pg_cron job, last run and its status';
GRANT SELECT ON iceml.pipeline_schedules TO iceml_reader;

CREATE FUNCTION iceml.schedule_pipeline(name text, schedule text, config jsonb) RETURNS bigint
    AS 'MODULE_PATHNAME', 'iceml_schedule_pipeline'
    LANGUAGE C VOLATILE;
COMMENT ON FUNCTION iceml.schedule_pipeline(text, text, jsonb) IS
    'checks a pipeline config and schedules it with pg_cron (cron syntax or ''N seconds''), in this database as the calling role; a schedule of the same name is replaced; returns the pg_cron job id';

CREATE FUNCTION iceml.unschedule_pipeline(name text) RETURNS boolean
    AS 'MODULE_PATHNAME', 'iceml_unschedule_pipeline'
    LANGUAGE C VOLATILE;
COMMENT ON FUNCTION iceml.unschedule_pipeline(text) IS
    'removes your schedule of that name and its pg_cron job; false when there was none';

CREATE FUNCTION iceml.run_scheduled_pipeline(name text) RETURNS bigint
    AS 'MODULE_PATHNAME', 'iceml_run_scheduled_pipeline'
    LANGUAGE C VOLATILE;
COMMENT ON FUNCTION iceml.run_scheduled_pipeline(text) IS
    'what the pg_cron job of a schedule runs: queues a run of your scheduled pipeline of that name, recorded with its cron job id';

GRANT EXECUTE ON FUNCTION iceml.schedule_pipeline(text, text, jsonb), iceml.unschedule_pipeline(text),
    iceml.run_scheduled_pipeline(text) TO iceml_user;
