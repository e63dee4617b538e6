-- 52: inference monitoring.  iceml_predict() samples calls at
-- iceml.log_inferences into shared memory; the "iceml monitor" background
-- worker writes them here (src/serving/monitor.c).  iceml.monitor() summarises them
-- and measures the drift of the inputs against the training data.

CREATE TABLE iceml.inference_log (
    id            bigserial PRIMARY KEY,
    logged_at     timestamptz NOT NULL,     -- when the call ran
    name          text,                     -- deployment name; NULL for calls by model id
    model_id      bigint NOT NULL,
    deployment_id bigint,
    role          name,                     -- the calling role
    latency_ms    real NOT NULL,            -- inside iceml_predict: checks, cache, inference
    prediction    real NOT NULL,
    inc_angle     real,
    band_1_mean   real NOT NULL,            -- input summaries (dB)
    band_1_max    real NOT NULL,
    band_2_mean   real NOT NULL,
    band_2_max    real NOT NULL
);
CREATE INDEX inference_log_name_time ON iceml.inference_log (name, logged_at);
CREATE INDEX inference_log_model_time ON iceml.inference_log (model_id, logged_at);
COMMENT ON TABLE iceml.inference_log IS
    'sampled iceml_predict calls (iceml.log_inferences): model, time, latency, prediction and input summaries, written by the iceml monitor worker';
SELECT pg_catalog.pg_extension_config_dump('iceml.inference_log', '');
SELECT pg_catalog.pg_extension_config_dump('iceml.inference_log_id_seq', '');

CREATE FUNCTION iceml.inference_log_status(
    OUT preloaded boolean, OUT pending integer, OUT logged bigint, OUT flushed bigint,
    OUT dropped bigint, OUT worker_running boolean)
    RETURNS record
    AS 'MODULE_PATHNAME', 'iceml_inference_log_status'
    LANGUAGE C VOLATILE STRICT PARALLEL SAFE;
COMMENT ON FUNCTION iceml.inference_log_status() IS
    'inference logging: whether iceml is preloaded, records of this database waiting in shared memory, and the server-wide logged/flushed/dropped counts';

-- Population stability index of values against a reference given as inner
-- bin edges and the expected fraction of each of the cardinality(edges)+1
-- bins; fractions are floored at 1e-4 so empty bins stay finite.
CREATE FUNCTION iceml.psi(actual float8[], edges float8[], expected float8[])
    RETURNS float8
    LANGUAGE sql IMMUTABLE STRICT PARALLEL SAFE
    SET search_path = pg_catalog, pg_temp
AS $$
    WITH a AS (SELECT width_bucket(v, edges) AS b, count(*)::float8 / cardinality(actual) AS f
                 FROM unnest(actual) v GROUP BY 1)
    SELECT sum((greatest(coalesce(a.f, 0), 1e-4) - greatest(e.f, 1e-4))
               * ln(greatest(coalesce(a.f, 0), 1e-4) / greatest(e.f, 1e-4)))
      FROM unnest(expected) WITH ORDINALITY e(f, k)
      LEFT JOIN a ON a.b = e.k - 1
$$;
COMMENT ON FUNCTION iceml.psi(float8[], float8[], float8[]) IS
    'population stability index of values against reference bins (inner edges, expected fractions)';

-- Reference bins of one summary: a 20-bin histogram of iceml.feature_statistics
-- when there is one (row_means of a band, the values of inc_angle), else ten
-- equal-frequency bins of the training split.
CREATE FUNCTION iceml.drift_reference(training_dataset regclass, summary text,
                                       OUT edges float8[], OUT expected float8[], OUT mean float8, OUT source text)
    LANGUAGE plpgsql STABLE
    SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    fg regclass;
    h jsonb;
    feat text := split_part(summary, '_', 1) || CASE WHEN summary LIKE 'band%' THEN '_' || split_part(summary, '_', 2) ELSE '_angle' END;
    knd text := CASE WHEN summary LIKE '%_mean' THEN 'row_means' ELSE 'value' END;
    lo float8;
    hi float8;
    total float8;
    expr text;
    vals float8[];
BEGIN
    IF NOT EXISTS (SELECT FROM pg_class c WHERE c.oid OPERATOR(pg_catalog.=) training_dataset) THEN
        RAISE EXCEPTION 'training dataset % does not exist', training_dataset::oid
            USING ERRCODE = '42P01',
                  HINT = 'It was dropped after the model was trained; drift is measured against the training split or the statistics of its feature group.';
    END IF;
    SELECT t.feature_group INTO fg FROM iceml.training_datasets t WHERE t."table" = training_dataset;
    IF summary <> 'band_1_max' AND summary <> 'band_2_max' THEN
        SELECT s.histogram, s.mean INTO h, mean FROM iceml.feature_statistics s
         WHERE s.feature_group = fg AND s.feature = feat AND s.kind = knd AND s.histogram IS NOT NULL
         ORDER BY s.computed_at DESC, s.id DESC LIMIT 1;
    END IF;
    IF h IS NOT NULL AND jsonb_array_length(h->'counts') > 1 AND (h->>'hi')::float8 > (h->>'lo')::float8 THEN
        lo := (h->>'lo')::float8;
        hi := (h->>'hi')::float8;
        SELECT sum(c::float8) INTO total FROM jsonb_array_elements_text(h->'counts') c;
        edges := ARRAY(SELECT lo + k * (hi - lo) / jsonb_array_length(h->'counts')
                         FROM generate_series(1, jsonb_array_length(h->'counts') - 1) k ORDER BY k);
        expected := ARRAY(SELECT c::float8 / total FROM jsonb_array_elements_text(h->'counts') WITH ORDINALITY x(c, k) ORDER BY k);
        source := format('iceml.feature_statistics (%s of %s in %s)', knd, feat, fg);
        RETURN;
    END IF;
    expr := CASE summary
        WHEN 'band_1_mean' THEN '(SELECT avg(x) FROM unnest(band_1) x)'
        WHEN 'band_2_mean' THEN '(SELECT avg(x) FROM unnest(band_2) x)'
        WHEN 'band_1_max' THEN '(SELECT max(x) FROM unnest(band_1) x)'
        WHEN 'band_2_max' THEN '(SELECT max(x) FROM unnest(band_2) x)'
        ELSE 'inc_angle' END;
    IF summary = 'inc_angle' AND NOT EXISTS (SELECT FROM pg_attribute a WHERE a.attrelid = training_dataset
                                                AND a.attname = 'inc_angle' AND NOT a.attisdropped) THEN
        RETURN;
    END IF;
    EXECUTE format('SELECT array_agg(v::real::float8 ORDER BY v) FROM (SELECT %s AS v FROM %s WHERE split OPERATOR(pg_catalog.=) ''train'') q WHERE v IS NOT NULL',
                   expr, training_dataset) INTO vals;
    IF vals IS NULL THEN
        RETURN;
    END IF;
    -- ten equal-width bins over the training range, as the statistics'
    -- histograms (equal-frequency edges of a near-constant summary would
    -- sit closer together than float4 rounding of the logged values)
    lo := vals[1];
    hi := vals[cardinality(vals)];
    IF hi <= lo THEN
        hi := lo + greatest(abs(lo) * 1e-3, 1e-3);
    END IF;
    edges := ARRAY(SELECT lo + k * (hi - lo) / 10 FROM generate_series(1, 9) k ORDER BY k);
    expected := ARRAY(SELECT coalesce(c, 0)::float8 / cardinality(vals)
                        FROM generate_series(0, cardinality(edges)) b
                        LEFT JOIN (SELECT width_bucket(v, edges) AS b, count(*) AS c FROM unnest(vals) v GROUP BY 1) q USING (b)
                       ORDER BY b);
    SELECT avg(v) INTO mean FROM unnest(vals) v;
    source := format('training split of %s', training_dataset);
END
$$;
COMMENT ON FUNCTION iceml.drift_reference(regclass, text) IS
    'reference bins of an input summary for drift: iceml.feature_statistics histograms, else the training split';

CREATE FUNCTION iceml.monitor(name text, since interval DEFAULT '1 day', psi_threshold float8 DEFAULT 0.2,
                              min_samples integer DEFAULT 100)
    RETURNS jsonb
    LANGUAGE plpgsql VOLATILE       -- collects the nodes' logged calls first
    SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    s record;
    td regclass;
    ref record;
    summary text;
    vals float8[];
    inputs jsonb := '{}';
    drift boolean := false;
    psi float8;
    result jsonb;
    deployed bigint;
    dep_tta boolean;
    dep_members bigint[];
BEGIN
    IF monitor.name IS NULL OR since IS NULL OR psi_threshold IS NULL OR psi_threshold <= 0 THEN
        RAISE EXCEPTION 'monitor: name, since and a positive psi_threshold are required' USING ERRCODE = '22023';
    END IF;
    IF min_samples IS NULL OR min_samples < 1 THEN
        RAISE EXCEPTION 'monitor: min_samples must be a positive number of calls, not %', coalesce(min_samples::text, 'NULL')
            USING ERRCODE = '22023';
    END IF;
    -- scale-out hook (src/sql/63_shard_monitor.sql): calls predicted on
    -- the nodes are collected here first; a node that does not answer is
    -- left for the next time, with a warning
    IF EXISTS (SELECT FROM iceml.shard_nodes) AND current_setting('transaction_read_only') = 'off' THEN
        BEGIN
            PERFORM iceml.collect_inferences();
        EXCEPTION WHEN OTHERS THEN
            RAISE WARNING 'monitor: the calls logged on the nodes were not collected: %', SQLERRM;
        END;
    END IF;
    SELECT d.model_id, d.tta, d.members INTO deployed, dep_tta, dep_members
      FROM iceml.deployments d WHERE d.name = monitor.name ORDER BY d.id DESC LIMIT 1;
    -- the calls under the name, and calls by id of that experiment's models
    SELECT count(*) AS calls, min(l.logged_at) AS first, max(l.logged_at) AS last,
           percentile_cont(0.5) WITHIN GROUP (ORDER BY l.latency_ms) AS p50,
           percentile_cont(0.9) WITHIN GROUP (ORDER BY l.latency_ms) AS p90,
           percentile_cont(0.99) WITHIN GROUP (ORDER BY l.latency_ms) AS p99,
           max(l.latency_ms) AS lmax,
           avg(l.prediction) AS pmean, avg((l.prediction >= 0.5)::int) AS prate,
           array_agg(l.band_1_mean::float8) AS b1m, array_agg(l.band_1_max::float8) AS b1x,
           array_agg(l.band_2_mean::float8) AS b2m, array_agg(l.band_2_max::float8) AS b2x,
           array_agg(l.inc_angle::float8) FILTER (WHERE l.inc_angle IS NOT NULL) AS ang
      INTO s
      FROM iceml.inference_log l
     WHERE l.logged_at >= now() - since
       AND (l.name = monitor.name
            OR (l.name IS NULL AND l.model_id IN (SELECT m.id FROM iceml.models m WHERE m.experiment = monitor.name)));
    result := jsonb_build_object('name', monitor.name, 'since', since::text, 'calls', s.calls,
                                 'deployed_model_id', deployed, 'psi_threshold', psi_threshold,
                                 'min_samples', min_samples);
    -- how the deployed predictions are made: test-time augmentation, an
    -- ensemble's members (the drift reference is its first member's data)
    IF deployed IS NOT NULL THEN
        result := result || jsonb_build_object('deployed_tta', dep_tta, 'deployed_members', dep_members);
    END IF;
    -- ten bins of a handful of calls make a PSI of noise: below min_samples
    -- calls the monitor gives no verdict (the figures are still shown)
    IF s.calls < min_samples THEN
        result := result || jsonb_build_object('drift_reason',
            format('%s logged calls since %s ago, fewer than min_samples %s: too few for a drift verdict', s.calls, since, min_samples));
    END IF;
    IF s.calls = 0 THEN
        RETURN result || jsonb_build_object('drift', NULL, 'inputs', '{}'::jsonb);
    END IF;
    result := result || jsonb_build_object(
        'first_call', s.first, 'last_call', s.last,
        'models', (SELECT jsonb_object_agg(q.model_id::text, q.n) FROM (
                      SELECT l.model_id, count(*) AS n FROM iceml.inference_log l
                       WHERE l.logged_at >= now() - since
                         AND (l.name = monitor.name OR (l.name IS NULL AND l.model_id IN
                              (SELECT m.id FROM iceml.models m WHERE m.experiment = monitor.name)))
                       GROUP BY 1) q),
        'latency_ms', jsonb_build_object('p50', s.p50, 'p90', s.p90, 'p99', s.p99, 'max', s.lmax),
        'prediction', jsonb_build_object('mean', s.pmean, 'positive_rate', s.prate));

    -- drift against the training data of the deployed model (else the latest logged one)
    SELECT m.training_dataset INTO td FROM iceml.models m
     WHERE m.id = coalesce(deployed, (SELECT l.model_id FROM iceml.inference_log l WHERE l.name = monitor.name
                                       ORDER BY l.logged_at DESC LIMIT 1));
    IF td IS NOT NULL AND NOT EXISTS (SELECT FROM pg_class c WHERE c.oid OPERATOR(pg_catalog.=) td) THEN
        result := result || jsonb_build_object('training_dataset', NULL,
            'drift_reason', format('the training dataset of model %s (relation oid %s) was dropped: there is no reference to measure drift against',
                                   coalesce(deployed::text, 'logged last'), td::oid));
        RETURN result || jsonb_build_object('drift', NULL, 'inputs', inputs);
    END IF;
    IF td IS NOT NULL THEN
        FOREACH summary IN ARRAY ARRAY['band_1_mean', 'band_1_max', 'band_2_mean', 'band_2_max', 'inc_angle'] LOOP
            vals := CASE summary WHEN 'band_1_mean' THEN s.b1m WHEN 'band_1_max' THEN s.b1x
                                 WHEN 'band_2_mean' THEN s.b2m WHEN 'band_2_max' THEN s.b2x ELSE s.ang END;
            CONTINUE WHEN vals IS NULL;
            SELECT * INTO ref FROM iceml.drift_reference(td, summary);
            CONTINUE WHEN ref.expected IS NULL;
            psi := iceml.psi(vals, ref.edges, ref.expected);
            drift := drift OR psi > psi_threshold;
            inputs := inputs || jsonb_build_object(summary, jsonb_build_object(
                'psi', round(psi::numeric, 4), 'mean', (SELECT avg(v) FROM unnest(vals) v),
                'reference_mean', ref.mean, 'reference', ref.source,
                'drift', CASE WHEN s.calls >= min_samples THEN psi > psi_threshold END));
        END LOOP;
        result := result || jsonb_build_object('training_dataset', td::text);
    END IF;
    RETURN result || jsonb_build_object('drift', CASE WHEN s.calls >= min_samples THEN drift END, 'inputs', inputs);
END
$$;
COMMENT ON FUNCTION iceml.monitor(text, interval, float8, integer) IS
    'logged calls of a deployment since an interval ago: counts, latency percentiles, prediction rate, and the population stability index of each input summary against the training data, with drift = any PSI above psi_threshold (0.2), or null with drift_reason below min_samples (100) calls';

GRANT SELECT ON iceml.inference_log TO iceml_user;
GRANT EXECUTE ON FUNCTION iceml.inference_log_status(), iceml.psi(float8[], float8[], float8[]),
    iceml.drift_reference(regclass, text), iceml.monitor(text, interval, float8, integer) TO iceml_user;
