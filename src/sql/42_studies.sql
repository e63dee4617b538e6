
-- 42: studies: hyperparameter tuning (grid, random, ASHA) and ablation
-- (leave one component out).  A study is a row of iceml.studies plus one
-- queued run per trial; the training workers run the trials, at most
-- `parallel` of them at once, and the last trial to end records the study's
-- best run and model.

-- ---- search spaces ---------------------------------------------------------

-- A uniform number in [0, 1) from (seed, trial, name): deterministic, so a
-- random search with the same seed asks for the same trials.
CREATE FUNCTION iceml._uniform(seed bigint, trial integer, name text) RETURNS double precision
    LANGUAGE sql IMMUTABLE STRICT PARALLEL SAFE
    SET search_path = pg_catalog, pg_temp
    RETURN ('x' || substr(md5(seed::text || ':' || trial::text || ':' || name), 1, 12))::bit(48)::bigint
           / 281474976710656.0;
COMMENT ON FUNCTION iceml._uniform(bigint, integer, text) IS
    'a deterministic uniform number in [0, 1) for a seed, a trial and a parameter name';

-- Checks a search space in Maggy's shape and returns it unchanged; each fault
-- is 22023 with the JSON path of the fault.
CREATE FUNCTION iceml._check_search_space(search_space jsonb) RETURNS jsonb
    LANGUAGE plpgsql IMMUTABLE
    SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    p record;
    k text;
    t text;
    r jsonb;
    v jsonb;
    path text;
BEGIN
    IF search_space IS NULL OR jsonb_typeof(search_space) <> 'object' OR search_space = '{}' THEN
        RAISE EXCEPTION 'search space must be a non-empty JSON object, not %', coalesce(search_space::text, 'NULL')
            USING ERRCODE = '22023',
                  HINT = 'For example {"learning_rate": {"type": "DOUBLE", "range": [1e-4, 1e-2], "scale": "log"}, "kernel": {"type": "DISCRETE", "values": [3, 4]}}.';
    END IF;
    FOR p IN SELECT e.key, e.value FROM jsonb_each(search_space) e ORDER BY e.key LOOP
        path := format('search_space.%s', p.key);
        IF p.key !~ '^[a-z_][a-z0-9_]{0,62}$' THEN
            RAISE EXCEPTION 'invalid search space parameter name "%"', p.key
                USING ERRCODE = '22023', HINT = 'Use lower-case letters, digits and underscores.';
        END IF;
        IF jsonb_typeof(p.value) <> 'object' THEN
            RAISE EXCEPTION '%: expected an object with "type", not %', path, p.value USING ERRCODE = '22023';
        END IF;
        FOR k IN SELECT jsonb_object_keys(p.value) LOOP
            IF NOT k IN ('type', 'range', 'values', 'scale', 'points') THEN
                RAISE EXCEPTION '%: unknown key "%"', path, k
                    USING ERRCODE = '22023', HINT = 'A parameter has "type" and "range" or "values", optionally "scale" and "points".';
            END IF;
        END LOOP;
        t := p.value->>'type';
        IF t IS NULL OR NOT t IN ('DOUBLE', 'INTEGER', 'DISCRETE', 'CATEGORICAL') THEN
            RAISE EXCEPTION '%.type: unknown parameter type %', path, coalesce(p.value->'type', 'null')
                USING ERRCODE = '22023', HINT = 'Use DOUBLE, INTEGER, DISCRETE or CATEGORICAL.';
        END IF;
        IF t IN ('DOUBLE', 'INTEGER') THEN
            r := p.value->'range';
            IF r IS NULL OR jsonb_typeof(r) <> 'array' OR jsonb_array_length(r) <> 2
               OR jsonb_typeof(r->0) <> 'number' OR jsonb_typeof(r->1) <> 'number' THEN
                RAISE EXCEPTION '%.range: a % parameter needs "range": [min, max], not %', path, t, coalesce(r::text, 'nothing')
                    USING ERRCODE = '22023';
            END IF;
            IF (r->>0)::numeric > (r->>1)::numeric THEN
                RAISE EXCEPTION '%.range: min % is greater than max %', path, r->0, r->1 USING ERRCODE = '22023';
            END IF;
            IF t = 'INTEGER' AND ((r->>0)::numeric <> trunc((r->>0)::numeric) OR (r->>1)::numeric <> trunc((r->>1)::numeric)) THEN
                RAISE EXCEPTION '%.range: an INTEGER range needs whole numbers, not %', path, r USING ERRCODE = '22023';
            END IF;
            IF p.value ? 'values' THEN
                RAISE EXCEPTION '%: a % parameter has a "range", not "values"', path, t USING ERRCODE = '22023';
            END IF;
            IF coalesce(p.value->>'scale', 'linear') NOT IN ('linear', 'log') THEN
                RAISE EXCEPTION '%.scale: unknown scale %', path, p.value->'scale'
                    USING ERRCODE = '22023', HINT = 'Use "linear" or "log".';
            END IF;
            IF p.value->>'scale' = 'log' AND (r->>0)::numeric <= 0 THEN
                RAISE EXCEPTION '%.range: a log scale needs a range above 0, not %', path, r USING ERRCODE = '22023';
            END IF;
            IF p.value ? 'points' AND (jsonb_typeof(p.value->'points') <> 'number'
                                       OR (p.value->>'points')::numeric <> trunc((p.value->>'points')::numeric)
                                       OR (p.value->>'points')::numeric NOT BETWEEN 2 AND 100) THEN
                RAISE EXCEPTION '%.points: expected a whole number between 2 and 100, not %', path, p.value->'points'
                    USING ERRCODE = '22023';
            END IF;
        ELSE
            r := p.value->'values';
            IF r IS NULL OR jsonb_typeof(r) <> 'array' OR jsonb_array_length(r) = 0 THEN
                RAISE EXCEPTION '%.values: a % parameter needs a non-empty "values" array, not %', path, t, coalesce(r::text, 'nothing')
                    USING ERRCODE = '22023';
            END IF;
            IF p.value ?| ARRAY['range', 'scale', 'points'] THEN
                RAISE EXCEPTION '%: a % parameter has "values" only', path, t USING ERRCODE = '22023';
            END IF;
            IF t = 'DISCRETE' THEN
                FOR v IN SELECT jsonb_array_elements(r) LOOP
                    IF jsonb_typeof(v) <> 'number' THEN
                        RAISE EXCEPTION '%.values: DISCRETE values are numbers, not %', path, v
                            USING ERRCODE = '22023', HINT = 'Use CATEGORICAL for other values.';
                    END IF;
                END LOOP;
            END IF;
        END IF;
    END LOOP;
    RETURN search_space;
END
$$;
COMMENT ON FUNCTION iceml._check_search_space(jsonb) IS
    'refuses a malformed search space with the JSON path of the fault';

-- The value of one parameter for random search: u in [0, 1).
CREATE FUNCTION iceml._sample_parameter(param jsonb, u double precision) RETURNS jsonb
    LANGUAGE plpgsql IMMUTABLE STRICT
    SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    lo double precision;
    hi double precision;
BEGIN
    CASE param->>'type'
    WHEN 'DOUBLE' THEN
        lo := (param->'range'->>0)::float8;
        hi := (param->'range'->>1)::float8;
        IF param->>'scale' = 'log' THEN
            RETURN to_jsonb(exp(ln(lo) + u * (ln(hi) - ln(lo))));
        END IF;
        RETURN to_jsonb(lo + u * (hi - lo));
    WHEN 'INTEGER' THEN
        lo := (param->'range'->>0)::float8;
        hi := (param->'range'->>1)::float8;
        RETURN to_jsonb(least(hi, lo + floor(u * (hi - lo + 1)))::bigint);
    ELSE
        RETURN param->'values'->(floor(u * jsonb_array_length(param->'values'))::int);
    END CASE;
END
$$;
COMMENT ON FUNCTION iceml._sample_parameter(jsonb, double precision) IS
    'one value of a search space parameter for a uniform number u';

-- How many grid points one parameter has, by arithmetic (an INTEGER range
-- of a trillion values is counted, not enumerated); the same count as
-- iceml._grid_values gives.
CREATE FUNCTION iceml._grid_size(name text, param jsonb) RETURNS numeric
    LANGUAGE plpgsql IMMUTABLE STRICT
    SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    width numeric;
BEGIN
    CASE param->>'type'
    WHEN 'INTEGER' THEN
        width := (param->'range'->>1)::numeric - (param->'range'->>0)::numeric + 1;
        -- "points" spread over the range: distinct after rounding, so no
        -- more than the range holds
        RETURN CASE WHEN param ? 'points' THEN least((param->>'points')::numeric, width) ELSE width END;
    WHEN 'DOUBLE' THEN
        IF NOT param ? 'points' THEN
            RAISE EXCEPTION 'grid search cannot enumerate DOUBLE parameter "%"', name
                USING ERRCODE = '22023',
                      HINT = 'Give it "points": n (n values spread over its range), or make it DISCRETE.';
        END IF;
        RETURN (param->>'points')::numeric;
    ELSE
        RETURN jsonb_array_length(param->'values');
    END CASE;
END
$$;
COMMENT ON FUNCTION iceml._grid_size(text, jsonb) IS 'the number of grid points of one search space parameter, computed without enumerating them';

-- The grid points of one parameter.
CREATE FUNCTION iceml._grid_values(name text, param jsonb) RETURNS SETOF jsonb
    LANGUAGE plpgsql IMMUTABLE STRICT
    SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    lo double precision;
    hi double precision;
    k integer;
BEGIN
    CASE param->>'type'
    WHEN 'INTEGER' THEN
        lo := (param->'range'->>0)::float8;
        hi := (param->'range'->>1)::float8;
        IF param ? 'points' THEN
            k := (param->>'points')::int;
            RETURN QUERY SELECT DISTINCT to_jsonb(round(lo + (hi - lo) * i / (k - 1))::bigint)
                           FROM generate_series(0, k - 1) i;
        ELSE
            RETURN QUERY SELECT to_jsonb(i) FROM generate_series((param->'range'->>0)::numeric,
                                                                 (param->'range'->>1)::numeric) i;
        END IF;
    WHEN 'DOUBLE' THEN
        IF NOT param ? 'points' THEN
            RAISE EXCEPTION 'grid search cannot enumerate DOUBLE parameter "%"', name
                USING ERRCODE = '22023',
                      HINT = 'Give it "points": n (n values spread over its range), or make it DISCRETE.';
        END IF;
        lo := (param->'range'->>0)::float8;
        hi := (param->'range'->>1)::float8;
        k := (param->>'points')::int;
        IF param->>'scale' = 'log' THEN
            RETURN QUERY SELECT to_jsonb(CASE i WHEN 0 THEN lo WHEN k - 1 THEN hi
                                             ELSE exp(ln(lo) + (ln(hi) - ln(lo)) * i / (k - 1)) END)
                           FROM generate_series(0, k - 1) i;
        ELSE
            RETURN QUERY SELECT to_jsonb(CASE i WHEN k - 1 THEN hi ELSE lo + (hi - lo) * i / (k - 1) END)
                           FROM generate_series(0, k - 1) i;
        END IF;
    ELSE
        RETURN QUERY SELECT v FROM jsonb_array_elements(param->'values') v;
    END CASE;
END
$$;
COMMENT ON FUNCTION iceml._grid_values(text, jsonb) IS 'the grid points of one search space parameter';

-- The trials of a search: one JSON object of parameter values each.
CREATE FUNCTION iceml._search_trials(search_space jsonb, strategy text, trials integer, seed bigint)
    RETURNS SETOF jsonb
    LANGUAGE plpgsql STABLE
    SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    max_grid constant integer := 256;
    points numeric := 1;
    sizes text[] := '{}';
    n numeric;
    p record;
    configs jsonb[] := ARRAY['{}'::jsonb];
    next jsonb[];
    c jsonb;
    v jsonb;
BEGIN
    IF strategy = 'grid' THEN
        -- the size first, by arithmetic: nothing is enumerated before it is
        -- known to fit (a product above 10^30 is not carried further, so
        -- numeric cannot overflow whatever the ranges)
        FOR p IN SELECT e.key, e.value FROM jsonb_each(search_space) e ORDER BY e.key LOOP
            n := iceml._grid_size(p.key, p.value);
            sizes := sizes || format('%s %s', p.key,
                                     CASE WHEN n >= 1e15 THEN pg_catalog.btrim(pg_catalog.to_char(n, '9.99EEEE')) ELSE n::text END);
            points := least(points * least(n, 1e31), 1e31);
        END LOOP;
        IF points > max_grid THEN
            RAISE EXCEPTION 'the grid has % points, more than the % a study may have',
                            CASE WHEN points > 1e30 THEN 'more than 10^30' ELSE points::text END, max_grid
                USING ERRCODE = '54000',
                      DETAIL = format('Grid points per parameter: %s.', array_to_string(sizes, ', ')),
                      HINT = 'Use fewer values or "points", or strategy => ''random'' or ''asha'' with a number of trials.';
        END IF;
        FOR p IN SELECT e.key, e.value FROM jsonb_each(search_space) e ORDER BY e.key LOOP
            next := '{}';
            FOREACH c IN ARRAY configs LOOP
                FOR v IN SELECT g FROM iceml._grid_values(p.key, p.value) g LOOP
                    next := next || (c || jsonb_build_object(p.key, v));
                END LOOP;
            END LOOP;
            configs := next;
        END LOOP;
        RETURN QUERY SELECT unnest(configs);
    ELSE
        FOR i IN 1 .. trials LOOP
            RETURN NEXT (SELECT jsonb_object_agg(e.key, iceml._sample_parameter(e.value, iceml._uniform(seed, i, e.key)))
                           FROM jsonb_each(search_space) e);
        END LOOP;
    END IF;
END
$$;
COMMENT ON FUNCTION iceml._search_trials(jsonb, text, integer, bigint) IS
    'the parameter values of each trial of a grid, random or ASHA search';

-- An architecture by name, or an inline spec (JSON text starting with "{"),
-- which may hold "$name" placeholders for a search.
CREATE FUNCTION iceml._study_spec(architecture text, OUT name text, OUT spec jsonb)
    LANGUAGE plpgsql STABLE
    SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
    IF architecture IS NULL THEN
        RAISE EXCEPTION 'architecture must not be NULL' USING ERRCODE = '22023';
    END IF;
    IF ltrim(architecture) LIKE '{%' THEN
        BEGIN
            spec := architecture::jsonb;
        EXCEPTION WHEN invalid_text_representation THEN
            RAISE EXCEPTION 'architecture is neither a name nor a valid JSON spec: %', SQLERRM
                USING ERRCODE = '22023';
        END;
        name := 'inline';
    ELSE
        name := architecture;
        spec := iceml._architecture_spec(architecture);
    END IF;
END
$$;
COMMENT ON FUNCTION iceml._study_spec(text) IS
    'the spec of a named architecture or of an inline JSON spec (template)';

-- Replaces each "$name" string of a spec by the trial's value.
CREATE FUNCTION iceml._fill_template(spec jsonb, config jsonb) RETURNS jsonb
    LANGUAGE plpgsql IMMUTABLE STRICT
    SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    s text := spec::text;
    p record;
    left_over text;
BEGIN
    FOR p IN SELECT e.key, e.value FROM jsonb_each(config) e LOOP
        s := replace(s, to_jsonb('$' || p.key)::text, p.value::text);
    END LOOP;
    left_over := substring(s FROM '"\$([A-Za-z_][A-Za-z0-9_]*)"');
    IF left_over IS NOT NULL THEN
        RAISE EXCEPTION 'the architecture spec uses "$%", which is not in the search space', left_over
            USING ERRCODE = '22023',
                  HINT = 'Add it to search_space, or write its value in the spec.';
    END IF;
    RETURN s::jsonb;
END
$$;
COMMENT ON FUNCTION iceml._fill_template(jsonb, jsonb) IS
    'an architecture spec with its "$name" placeholders replaced by a trial''s values';

-- src/jobs/studies.c holds the one table of study metrics and their names
CREATE FUNCTION iceml._study_metric(metric text) RETURNS text
    AS 'MODULE_PATHNAME', 'iceml_study_metric'
    LANGUAGE C IMMUTABLE PARALLEL SAFE;
COMMENT ON FUNCTION iceml._study_metric(text) IS 'the canonical name of a study metric';

CREATE FUNCTION iceml._check_parallel(parallel integer) RETURNS void
    LANGUAGE plpgsql STABLE
    SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    budget integer := least(current_setting('iceml.max_workers')::int,
                            current_setting('max_worker_processes')::int);
BEGIN
    IF parallel IS NULL OR parallel < 1 OR parallel > budget THEN
        RAISE EXCEPTION 'parallel must be between 1 and the worker budget %, not %', budget, coalesce(parallel::text, 'NULL')
            USING ERRCODE = '22023',
                  HINT = 'Trials run in background workers: at most iceml.max_workers (and max_worker_processes) at once.';
    END IF;
END
$$;
COMMENT ON FUNCTION iceml._check_parallel(integer) IS 'refuses a parallel degree above the worker budget';

-- ---- tuning ----------------------------------------------------------------

-- Trials that run side by side share the cores meant for one training run:
-- unless the caller chose "threads", each of `parallel` trials gets
-- iceml.train_threads / parallel of them (at least one), so a study does not
-- oversubscribe the machine.
CREATE FUNCTION iceml._share_threads(hp jsonb, parallel integer) RETURNS jsonb
    LANGUAGE sql STABLE
    SET search_path = pg_catalog, pg_temp
AS $$
    SELECT CASE WHEN jsonb_typeof(hp) = 'object' AND NOT hp ? 'threads'
                THEN hp || jsonb_build_object('threads',
                                              greatest(1, current_setting('iceml.train_threads')::int / greatest(parallel, 1)))
                ELSE hp END
$$;
COMMENT ON FUNCTION iceml._share_threads(jsonb, integer) IS
    'gives each of parallel trials its share of iceml.train_threads unless the hyperparameters set threads';

CREATE FUNCTION iceml._tune(experiment text, training_dataset regclass, architecture text,
                           search_space jsonb, strategy text DEFAULT 'random', trials integer DEFAULT 10,
                           parallel integer DEFAULT 2, metric text DEFAULT 'val_log_loss',
                           hyperparams jsonb DEFAULT '{}', nodes text[] DEFAULT NULL)
    RETURNS bigint
    LANGUAGE plpgsql VOLATILE
    SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    hp jsonb := coalesce(hyperparams, '{}');
    arch record;
    known constant text[] := iceml._tunable_hyperparameters();
    study bigint;
    config jsonb;
    trial_hp jsonb;
    hp_part jsonb;
    k text;
    configs jsonb[];
    seed bigint;
    min_epochs integer;
    run bigint;
    -- trials on nodes (src/sql/62_shard_trials.sql)
    node_share integer;
    data_key text;
BEGIN
    PERFORM iceml._maintain();
    IF strategy IS NULL OR NOT strategy IN ('grid', 'random', 'asha') THEN
        RAISE EXCEPTION 'unknown search strategy "%"', strategy
            USING ERRCODE = '22023', HINT = 'Use grid, random or asha.';
    END IF;
    IF strategy <> 'grid' AND (trials IS NULL OR trials < 1 OR trials > 1000) THEN
        RAISE EXCEPTION 'trials must be between 1 and 1000, not %', coalesce(trials::text, 'NULL')
            USING ERRCODE = '22023';
    END IF;
    PERFORM iceml._check_parallel(parallel);
    metric := iceml._study_metric(metric);
    IF jsonb_typeof(hp) <> 'object' THEN
        RAISE EXCEPTION 'hyperparams must be a JSON object, not %', jsonb_typeof(hp) USING ERRCODE = '22023';
    END IF;
    -- ASHA's smallest budget is a study setting, not a trial's hyperparameter
    min_epochs := coalesce((hp->>'asha_min_epochs')::int, 1);
    IF hp ? 'asha_min_epochs' AND (strategy <> 'asha' OR min_epochs < 1) THEN
        RAISE EXCEPTION 'hyperparameter "asha_min_epochs" must be a whole number >= 1, for strategy asha only, not %', hp->'asha_min_epochs'
            USING ERRCODE = '22023';
    END IF;
    hp := hp - 'asha_min_epochs';
    -- trials on nodes: checked as the caller; each node shares its own
    -- threads among the trials it runs at once (unless "threads" is given)
    IF nodes IS NOT NULL THEN
        PERFORM iceml._check_trial_nodes(nodes);
        node_share := CASE WHEN hp ? 'threads' THEN NULL
                           ELSE ceil(parallel::numeric / cardinality(nodes))::int END;
        data_key := 'trial_' || md5(gen_random_uuid()::text);
    END IF;
    hp := iceml._share_threads(hp, parallel);
    PERFORM iceml._check_search_space(search_space);
    arch := iceml._study_spec(architecture);
    -- every parameter goes somewhere: a "$name" in the spec or a hyperparameter
    FOR k IN SELECT jsonb_object_keys(search_space) LOOP
        IF NOT (k = ANY (known) OR strpos(arch.spec::text, to_jsonb('$' || k)::text) > 0) THEN
            RAISE EXCEPTION 'search space parameter "%" is used neither in the architecture spec nor as a hyperparameter', k
                USING ERRCODE = '22023',
                      HINT = 'Write "$' || k || '" where it belongs in an inline spec, or tune one of: ' || array_to_string(known, ', ') || '.';
        END IF;
    END LOOP;
    seed := coalesce((hp->>'seed')::bigint, 42);

    configs := ARRAY(SELECT c FROM iceml._search_trials(search_space, strategy, trials, seed) c);
    study := iceml._insert_study('tune', experiment, training_dataset, arch.name, strategy, search_space, NULL,
                                 cardinality(configs), parallel, metric,
                                 hp || CASE WHEN strategy = 'asha' THEN jsonb_build_object('asha_min_epochs', min_epochs)
                                            ELSE '{}' END);
    -- workers for the first `parallel` trials at commit; each worker that
    -- ends starts the next queued trial
    FOR i IN 1 .. cardinality(configs) LOOP
        config := configs[i];
        hp_part := (SELECT coalesce(jsonb_object_agg(e.key, e.value), '{}') FROM jsonb_each(config) e WHERE e.key = ANY (known));
        trial_hp := hp || hp_part;
        run := iceml._queue_run(experiment, training_dataset, arch.name,
                                iceml._fill_template(arch.spec, config), trial_hp, study,
                                config::text, i <= parallel);
        IF nodes IS NOT NULL THEN
            -- round robin over the nodes (src/sql/62_shard_trials.sql)
            PERFORM iceml._place_trial(run, study, nodes[1 + (i - 1) % cardinality(nodes)], node_share, data_key);
        END IF;
    END LOOP;
    RETURN study;
END
$$;
CREATE FUNCTION iceml.tune(experiment text, training_dataset regclass, architecture text,
                           search_space jsonb, strategy text DEFAULT 'random', trials integer DEFAULT 10,
                           parallel integer DEFAULT 2, metric text DEFAULT 'val_log_loss',
                           hyperparams jsonb DEFAULT '{}', nodes text[] DEFAULT NULL)
    RETURNS bigint
    AS 'MODULE_PATHNAME', 'iceml_gate'
    LANGUAGE C VOLATILE;
COMMENT ON FUNCTION iceml.tune(text, regclass, text, jsonb, text, integer, integer, text, jsonb, text[]) IS
    'a hyperparameter search (grid, random or asha) as a study of training runs, at most parallel at once (on the nodes named, round robin, when nodes is given); returns the study id';

-- ---- ablation --------------------------------------------------------------

CREATE FUNCTION iceml._ablation_study(experiment text, training_dataset regclass, architecture text,
                                     components jsonb, hyperparams jsonb DEFAULT '{}', parallel integer DEFAULT 2)
    RETURNS bigint
    LANGUAGE plpgsql VOLATILE
    SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    arch record;
    hp jsonb;
    study bigint;
    k text;
    c text;
    spec jsonb;
    channels jsonb;
    trials text[] := ARRAY['baseline'];
    specs jsonb[];
    hps jsonb[];
    run bigint;
    n integer;
    part record;
BEGIN
    PERFORM iceml._maintain();
    PERFORM iceml._check_parallel(parallel);
    IF components IS NULL OR jsonb_typeof(components) <> 'object' OR components = '{}' THEN
        RAISE EXCEPTION 'components must be a non-empty JSON object, not %', coalesce(components::text, 'NULL')
            USING ERRCODE = '22023',
                  HINT = 'For example {"layer_groups": ["conv", "dropout"], "layers": ["fc2"], "features": ["band_2"]}.';
    END IF;
    FOR k IN SELECT jsonb_object_keys(components) LOOP
        IF NOT k IN ('layer_groups', 'layers', 'features') THEN
            RAISE EXCEPTION 'components.%: unknown kind of component', k
                USING ERRCODE = '22023', HINT = 'Use layer_groups, layers and features.';
        END IF;
        IF jsonb_typeof(components->k) <> 'array' OR jsonb_array_length(components->k) = 0
           OR EXISTS (SELECT FROM jsonb_array_elements(components->k) e WHERE jsonb_typeof(e) <> 'string') THEN
            RAISE EXCEPTION 'components.%: expected a non-empty array of names, not %', k, components->k
                USING ERRCODE = '22023';
        END IF;
    END LOOP;
    arch := iceml._study_spec(architecture);
    -- an ablated model is for comparison only: no trial deploys
    hp := iceml._resolve_hyperparams(iceml._share_threads(coalesce(hyperparams, '{}'), parallel) || '{"deploy": "never"}',
                                     training_dataset);
    channels := hp->'channels';

    -- the baseline, then one trial per component left out
    specs := ARRAY[arch.spec];
    hps := ARRAY[hp];
    -- layer groups (the "group" key) and single layers ("name"): the spec without them
    FOR part IN SELECT * FROM (VALUES ('layer_groups', 'group', 'layer_group', 'layer group'),
                                      ('layers', 'name', 'layer', 'layer named')) v(kind, key, label, noun) LOOP
        FOR c IN SELECT jsonb_array_elements_text(components->part.kind) LOOP
            IF NOT EXISTS (SELECT FROM jsonb_array_elements(arch.spec->'layers') l WHERE l->>part.key = c) THEN
                RAISE EXCEPTION 'components.%: architecture "%" has no % "%"', part.kind, arch.name, part.noun, c
                    USING ERRCODE = '22023',
                          HINT = format('Its %ss: %s.', replace(part.noun, ' named', ''),
                                        coalesce((SELECT string_agg(DISTINCT l->>part.key, ', ')
                                                    FROM jsonb_array_elements(arch.spec->'layers') l), '(none)'));
            END IF;
            trials := trials || (part.label || ':' || c);
            specs := specs || jsonb_set(arch.spec, '{layers}',
                                        coalesce((SELECT jsonb_agg(l ORDER BY o)
                                                    FROM jsonb_array_elements(arch.spec->'layers') WITH ORDINALITY x(l, o)
                                                   WHERE (l->>part.key) IS DISTINCT FROM c), '[]'));
            hps := hps || hp;
        END LOOP;
    END LOOP;
    FOR c IN SELECT jsonb_array_elements_text(components->'features') LOOP
        IF NOT channels ? c THEN
            RAISE EXCEPTION 'components.features: "%" is not an input channel of this study', c
                USING ERRCODE = '22023', DETAIL = format('The channels are %s.', channels),
                      HINT = 'Set "channels" in hyperparams.';
        END IF;
        IF jsonb_array_length(channels) = 1 THEN
            RAISE EXCEPTION 'components.features: cannot leave out "%", the only input channel', c USING ERRCODE = '22023';
        END IF;
        trials := trials || ('feature:' || c);
        specs := specs || jsonb_set(arch.spec, '{input,0}', to_jsonb((arch.spec->'input'->>0)::int - 1));
        hps := hps || jsonb_set(hp, '{channels}', channels - c);
    END LOOP;

    n := cardinality(trials);
    study := iceml._insert_study('ablation', experiment, training_dataset, arch.name, NULL, NULL, components,
                                 n, parallel, 'val_log_loss', coalesce(hyperparams, '{}'));
    FOR i IN 1 .. n LOOP
        BEGIN
            run := iceml._queue_run(experiment, training_dataset, arch.name, specs[i], hps[i], study, trials[i],
                                    i <= parallel);
        EXCEPTION WHEN invalid_parameter_value THEN
            IF i = 1 THEN
                RAISE;          -- the baseline itself must be valid
            END IF;
            -- leaving this component out breaks the architecture: a trial
            -- that is failed from the start, with the engine's reason
            PERFORM iceml._record_invalid_trial(study, trials[i], specs[i], hps[i], SQLERRM);
        END;
    END LOOP;
    RETURN study;
END
$$;
CREATE FUNCTION iceml.ablation_study(experiment text, training_dataset regclass, architecture text,
                                     components jsonb, hyperparams jsonb DEFAULT '{}', parallel integer DEFAULT 2)
    RETURNS bigint
    AS 'MODULE_PATHNAME', 'iceml_gate'
    LANGUAGE C VOLATILE;
COMMENT ON FUNCTION iceml.ablation_study(text, regclass, text, jsonb, jsonb, integer) IS
    'a baseline and one training run per left-out layer group, layer or input channel, at most parallel at once; returns the study id';

CREATE FUNCTION iceml._record_invalid_trial(study bigint, trial text, spec jsonb, hyperparams jsonb, error text)
    RETURNS bigint
    AS 'MODULE_PATHNAME', 'iceml_record_invalid_trial'
    LANGUAGE C VOLATILE STRICT;
COMMENT ON FUNCTION iceml._record_invalid_trial(bigint, text, jsonb, jsonb, text) IS
    'records a study trial whose architecture the engine refused, as failed with the reason; internal to iceml.ablation_study';

CREATE VIEW iceml.ablation_results WITH (security_invoker = true) AS
SELECT s.id AS study,
       s.experiment,
       split_part(r.trial, ':', 1) AS kind,
       CASE WHEN r.trial = 'baseline' THEN NULL ELSE substr(r.trial, strpos(r.trial, ':') + 1) END AS component,
       r.id AS run,
       r.status,
       s.metric,
       (m.metrics->>'log_loss')::float8 AS value,
       (m.metrics->>'log_loss')::float8 - (bm.metrics->>'log_loss')::float8 AS delta,
       (m.metrics->>'accuracy')::float8 AS accuracy,
       (m.metrics->>'accuracy')::float8 - (bm.metrics->>'accuracy')::float8 AS accuracy_delta,
       (m.metrics->>'roc_auc')::float8 AS auc,
       (m.metrics->>'roc_auc')::float8 - (bm.metrics->>'roc_auc')::float8 AS auc_delta,
       r.error
  FROM iceml.studies s
  JOIN iceml.runs r ON r.study_id = s.id
  LEFT JOIN iceml.models m ON m.id = r.model_id
  LEFT JOIN iceml.runs br ON br.study_id = s.id AND br.trial = 'baseline'
  LEFT JOIN iceml.models bm ON bm.id = br.model_id
 WHERE s.kind = 'ablation';
COMMENT ON VIEW iceml.ablation_results IS
    'each trial of an ablation study: the left-out component, its validation log loss (the study metric), accuracy and AUC, and their deltas from the baseline (positive log loss delta: worse without it)';

-- the trials of every study, with the parameters each was given and how it did
CREATE VIEW iceml.study_trials WITH (security_invoker = true) AS
SELECT s.id AS study, s.kind, s.strategy, r.id AS run, r.trial, r.status,
       (SELECT max(x.epoch) FROM iceml.run_metrics x WHERE x.run_id = r.id) AS epochs_run,
       (m.metrics->>'log_loss')::float8 AS val_log_loss,
       (m.metrics->>'accuracy')::float8 AS val_acc,
       (m.metrics->>'roc_auc')::float8 AS val_auc,
       r.id = s.best_run AS best, r.model_id AS model, r.error
  FROM iceml.studies s
  JOIN iceml.runs r ON r.study_id = s.id
  LEFT JOIN iceml.models m ON m.id = r.model_id;
COMMENT ON VIEW iceml.study_trials IS
    'each trial of each study you can see: its parameters, status, epochs run, validation metrics and whether it is the best';

GRANT SELECT ON iceml.ablation_results, iceml.study_trials TO iceml_reader;
GRANT EXECUTE ON FUNCTION iceml.tune(text, regclass, text, jsonb, text, integer, integer, text, jsonb, text[]),
    iceml.ablation_study(text, regclass, text, jsonb, jsonb, integer)
    TO iceml_user;
