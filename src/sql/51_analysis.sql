-- 51: analysis of deployed models: iceml.evaluate, iceml.evaluate_slices,
-- iceml.what_if.  They run as the caller (who needs SELECT on the training
-- dataset) and predict through iceml_predict, so they see exactly what
-- applications see.

CREATE FUNCTION iceml.binary_metrics(prob real[], label real[], threshold float8 DEFAULT 0.5)
    RETURNS jsonb
    AS 'MODULE_PATHNAME', 'iceml_metrics'
    LANGUAGE C IMMUTABLE STRICT PARALLEL SAFE;
COMMENT ON FUNCTION iceml.binary_metrics(real[], real[], float8) IS
    'n, log_loss, accuracy, precision, recall, f1, roc_auc and confusion of probabilities against 0/1 labels, computed by the engine as training computes them';

-- The label of a training dataset, after checking it is one and has the
-- columns iceml_predict needs.
CREATE FUNCTION iceml.dataset_columns(training_dataset regclass, split text, OUT label text, OUT angle text)
    LANGUAGE plpgsql STABLE
    SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    counts jsonb;
BEGIN
    SELECT t.label, t.row_counts INTO label, counts FROM iceml.training_datasets t
     WHERE t."table" = dataset_columns.training_dataset;
    IF NOT FOUND THEN
        RAISE EXCEPTION '% is not a training dataset', training_dataset
            USING ERRCODE = '22023', HINT = 'Training datasets are listed in iceml.training_datasets.';
    END IF;
    IF (SELECT count(*) FROM pg_attribute a WHERE a.attrelid = training_dataset AND NOT a.attisdropped
           AND a.attname IN ('band_1', 'band_2') AND a.atttypid = 'real[]'::regtype) <> 2 THEN
        RAISE EXCEPTION 'training dataset % has no real[] columns band_1 and band_2', training_dataset
            USING ERRCODE = '22023';
    END IF;
    IF split IS NULL OR NOT counts ? split THEN
        RAISE EXCEPTION 'training dataset % has no split "%"', training_dataset, split
            USING ERRCODE = '22023',
                  HINT = 'Its splits are: ' || (SELECT string_agg(k, ', ' ORDER BY k) FROM jsonb_object_keys(counts) k) || '.';
    END IF;
    angle := CASE WHEN EXISTS (SELECT FROM pg_attribute a WHERE a.attrelid = training_dataset AND NOT a.attisdropped
                                  AND a.attname = 'inc_angle' AND a.atttypid = 'real'::regtype)
                  THEN 'inc_angle' ELSE 'NULL::real' END;
END
$$;
COMMENT ON FUNCTION iceml.dataset_columns(regclass, text) IS
    'checks that a table is a training dataset with band_1, band_2 and the split; its label and angle column';

CREATE FUNCTION iceml.deployed_model(name text) RETURNS bigint
    LANGUAGE plpgsql STABLE
    SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    id bigint;
BEGIN
    SELECT d.model_id INTO id FROM iceml.deployments d WHERE d.name = deployed_model.name
     ORDER BY d.id DESC LIMIT 1;
    IF id IS NULL THEN
        RAISE EXCEPTION 'no model is deployed under the name "%"', name
            USING ERRCODE = '42704', HINT = format('Deploy one with iceml.deploy(%L).', name);
    END IF;
    RETURN id;
END
$$;
COMMENT ON FUNCTION iceml.deployed_model(text) IS 'the id of the model deployed under a name (42704 when none)';

-- The probabilities and labels of a split, in the table's order: model is a
-- deployment's name (text: as it serves) or a model id (bigint).
CREATE FUNCTION iceml.split_predictions(model anyelement, training_dataset regclass, split text DEFAULT 'test',
                                        OUT probabilities real[], OUT labels real[])
    LANGUAGE plpgsql STABLE
    SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    ds record;
BEGIN
    IF pg_typeof(model) NOT IN ('text'::regtype, 'bigint'::regtype, 'integer'::regtype) THEN
        RAISE EXCEPTION 'a model is named by its deployment (text) or its id (bigint), not by a value of type %', pg_typeof(model)
            USING ERRCODE = '42804', HINT = 'Cast the argument: ''name''::text or 42::bigint.';
    END IF;
    SELECT * INTO ds FROM iceml.dataset_columns(training_dataset, split);
    EXECUTE format('SELECT array_agg(@extschema@.iceml_predict($1, band_1, band_2, %s) ORDER BY ctid), array_agg(%I::real ORDER BY ctid)'
                   '  FROM %s WHERE split OPERATOR(pg_catalog.=) $2', ds.angle, ds.label, training_dataset)
       INTO probabilities, labels USING model, split;
    IF probabilities IS NULL THEN
        RAISE EXCEPTION 'split "%" of training dataset % has no rows', split, training_dataset USING ERRCODE = '22023';
    END IF;
END
$$;
COMMENT ON FUNCTION iceml.split_predictions(anyelement, regclass, text) IS
    'the probabilities a deployment (text) or a model (bigint) gives the rows of a split of a training dataset, and their labels, in the same order';

CREATE FUNCTION iceml.evaluate(model text, training_dataset regclass, split text DEFAULT 'test')
    RETURNS jsonb
    LANGUAGE sql STABLE
    SET search_path = pg_catalog, pg_temp
    RETURN (SELECT iceml.binary_metrics(p.probabilities, p.labels, 0.5)
                   || jsonb_build_object('model', model, 'model_id', iceml.deployed_model(model),
                                         'training_dataset', training_dataset::text, 'split', split)
              FROM iceml.split_predictions(model, training_dataset, split) p);
COMMENT ON FUNCTION iceml.evaluate(text, regclass, text) IS
    'metrics of the model deployed under a name (as it serves: an ensemble, test-time augmentation) on a split of a training dataset: n, log_loss, accuracy, precision, recall, f1, roc_auc, confusion (threshold 0.5)';

-- One model by id, deployed or not: what a pipeline compares before it
-- deploys, and what a user checks before deploy().
CREATE FUNCTION iceml.evaluate(model_id bigint, training_dataset regclass, split text DEFAULT 'test')
    RETURNS jsonb
    LANGUAGE sql STABLE
    SET search_path = pg_catalog, pg_temp
    RETURN (SELECT iceml.binary_metrics(p.probabilities, p.labels, 0.5)
                   || jsonb_build_object('model_id', model_id, 'training_dataset', training_dataset::text, 'split', split)
              FROM iceml.split_predictions(model_id, training_dataset, split) p);
COMMENT ON FUNCTION iceml.evaluate(bigint, regclass, text) IS
    'metrics of model model_id on a split of a training dataset: n, log_loss, accuracy, precision, recall, f1, roc_auc, confusion (threshold 0.5)';

CREATE FUNCTION iceml.evaluate_slices(model text, training_dataset regclass, feature text, bins int DEFAULT 4,
                                      split text DEFAULT 'test')
    RETURNS TABLE (slice text, n bigint, log_loss float8, accuracy float8, positive_rate float8,
                   predicted_positive_rate float8)
    LANGUAGE plpgsql STABLE
    SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    ds record;
    ftype regtype;
    fexpr text;
    numeric_feature boolean;
    edges float8[];
    flabel text;
BEGIN
    PERFORM iceml.deployed_model(model);
    SELECT * INTO ds FROM iceml.dataset_columns(training_dataset, split);
    IF bins IS NULL OR bins < 1 OR bins > 100 THEN
        RAISE EXCEPTION 'bins must be between 1 and 100, not %', bins USING ERRCODE = '22023';
    END IF;
    SELECT a.atttypid INTO ftype FROM pg_attribute a
     WHERE a.attrelid = training_dataset AND a.attname = feature AND a.attnum > 0 AND NOT a.attisdropped;
    IF ftype IS NULL OR feature = 'split' THEN
        RAISE EXCEPTION 'training dataset % has no feature "%"', training_dataset, feature
            USING ERRCODE = '42703';
    END IF;
    -- numbers: equal-frequency bins; arrays of numbers: bins of each row's mean;
    -- anything else: one slice per value
    IF ftype IN ('smallint'::regtype, 'integer', 'bigint', 'real', 'double precision', 'numeric') THEN
        fexpr := format('%I::float8', feature);
        flabel := feature;
        numeric_feature := true;
    ELSIF ftype IN ('real[]'::regtype, 'double precision[]', 'integer[]', 'smallint[]', 'numeric[]') THEN
        fexpr := format('(SELECT avg(v)::float8 FROM unnest(%I) v)', feature);
        flabel := format('mean(%s)', feature);
        numeric_feature := true;
    ELSE
        fexpr := format('%I::text', feature);
        flabel := feature;
        numeric_feature := false;
    END IF;

    -- one query: predictions, then (for numbers) equal-frequency edges, then
    -- the engine's metrics per slice
    RETURN QUERY EXECUTE format($q$
        WITH d AS (SELECT @extschema@.iceml_predict($1, band_1, band_2, %1$s) AS p, %2$I::real AS y, %3$s AS f
                     FROM %4$s WHERE split OPERATOR(pg_catalog.=) $2),
             e AS (SELECT array_agg(DISTINCT q.x ORDER BY q.x) AS edges
                     FROM (SELECT percentile_cont(k::float8 / $3) WITHIN GROUP (ORDER BY d.f::float8) AS x
                             FROM generate_series(1, $3 - 1) k, d
                            WHERE %5$L AND d.f IS NOT NULL GROUP BY k) q),
             s AS (SELECT d.p, d.y, d.f,
                          CASE WHEN d.f IS NULL THEN NULL
                               WHEN NOT %5$L THEN d.f::text
                               WHEN e.edges IS NULL THEN '0'
                               ELSE width_bucket(d.f::float8, e.edges)::text END AS b
                     FROM d, e),
             g AS (SELECT s.b, iceml.binary_metrics(array_agg(s.p), array_agg(s.y), 0.5) AS m,
                          avg(s.y)::float8 AS pos, avg((s.p >= 0.5)::int)::float8 AS ppos
                     FROM s GROUP BY s.b)
        SELECT CASE WHEN g.b IS NULL THEN format('%%s is NULL', $4)
                    WHEN NOT %5$L THEN format('%%s = %%s', $4, g.b)
                    WHEN e.edges IS NULL THEN format('%%s: all', $4)
                    WHEN g.b::int = 0 THEN format('%%s < %%s', $4, round(e.edges[1]::numeric, 3))
                    WHEN g.b::int = cardinality(e.edges) THEN format('%%s >= %%s', $4, round(e.edges[g.b::int]::numeric, 3))
                    ELSE format('%%s in [%%s, %%s)', $4, round(e.edges[g.b::int]::numeric, 3),
                                round(e.edges[g.b::int + 1]::numeric, 3)) END,
               (g.m->>'n')::bigint, (g.m->>'log_loss')::float8, (g.m->>'accuracy')::float8, g.pos, g.ppos
          FROM g, e
         ORDER BY g.b IS NULL, CASE WHEN %5$L THEN lpad(g.b, 4, '0') ELSE g.b END
    $q$, ds.angle, ds.label, fexpr, training_dataset, numeric_feature)
    USING model, split, bins, flabel;
END
$$;
COMMENT ON FUNCTION iceml.evaluate_slices(text, regclass, text, int, text) IS
    'metrics of the deployed model per slice of a feature: equal-frequency bins of a number (of each row''s mean for an array), one slice per value otherwise, NULL apart';

-- what_if: the prediction before and after edits of one chip.
--
-- changes: one edit object or an array of them, applied in order:
--   {"op": "gain", "db": 3, "band": "band_1"}   add dB to a band ("band_1", "band_2", "both": the default)
--   {"op": "blank", "band": "band_2"}            set a band to its background level (the median of its
--                                                 10-pixel border, where targets rarely are)
--   {"op": "flip", "axis": "horizontal"}         mirror left-right ("vertical": top-bottom)
--   {"op": "rotate", "degrees": 90}              rotate clockwise by 90, 180 or 270 degrees
--   {"op": "inc_angle", "to": 42}                re-render the sea clutter as seen at another incidence
--                                                 angle: clutter falls about 0.55 dB per degree (the slope
--                                                 of the synthetic generator, src/eo/synth.c); each pixel's
--                                                 clutter share (background power / pixel power, at most 1)
--                                                 is scaled, so speckle is kept and bright targets stay
CREATE FUNCTION iceml.edit_chip(band real[], edit jsonb, angle real)
    RETURNS real[]
    LANGUAGE plpgsql IMMUTABLE
    SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    n int := cardinality(band);
    w int := round(sqrt(n))::int;
    op text := edit->>'op';
    bg float8;
    g float8;
    deg int;
BEGIN
    IF band IS NULL OR edit IS NULL THEN
        RAISE EXCEPTION 'edit_chip: band and edit must not be NULL' USING ERRCODE = '22004';
    END IF;
    IF w * w <> n THEN
        RAISE EXCEPTION 'what_if: a band must be a square image, not % values', n USING ERRCODE = '22023';
    END IF;
    -- the parameters each op reads (iceml.what_if checks them first, naming the change)
    IF (op = 'gain' AND (jsonb_typeof(edit->'db') IS DISTINCT FROM 'number' OR abs((edit->>'db')::float8) > 60))
       OR (op = 'flip' AND NOT coalesce(edit->>'axis', '') IN ('horizontal', 'vertical'))
       OR (op = 'rotate' AND NOT coalesce(edit->>'degrees', '') IN ('90', '180', '270'))
       OR (op = 'inc_angle' AND (jsonb_typeof(edit->'to') IS DISTINCT FROM 'number'
                                 OR (edit->>'to')::float8 NOT BETWEEN 0 AND 90 OR angle IS NULL)) THEN
        RAISE EXCEPTION 'edit_chip: invalid edit %', edit
            USING ERRCODE = '22023',
                  HINT = 'gain: "db" in [-60, 60]; flip: "axis" horizontal or vertical; rotate: "degrees" 90, 180 or 270; inc_angle: "to" in [0, 90] and the chip''s angle.';
    END IF;
    IF op IN ('blank', 'inc_angle') THEN
        SELECT percentile_cont(0.5) WITHIN GROUP (ORDER BY v) INTO bg
          FROM unnest(band) WITH ORDINALITY u(v, i)
         WHERE (i - 1) / w < 10 OR (i - 1) / w >= w - 10 OR (i - 1) % w < 10 OR (i - 1) % w >= w - 10;
    END IF;
    CASE op
    WHEN 'gain' THEN
        RETURN ARRAY(SELECT (v + (edit->>'db')::float8)::real FROM unnest(band) WITH ORDINALITY u(v, i) ORDER BY i);
    WHEN 'blank' THEN
        RETURN array_fill(bg::real, ARRAY[n]);
    WHEN 'flip' THEN
        RETURN ARRAY(SELECT band[CASE WHEN edit->>'axis' = 'vertical' THEN (w - 1 - (i / w)) * w + i % w
                                      ELSE (i / w) * w + (w - 1 - i % w) END + 1]
                       FROM generate_series(0, n - 1) i ORDER BY i);
    WHEN 'rotate' THEN
        deg := (edit->>'degrees')::int;
        -- clockwise: out[r][c] = in[w-1-c][r] for 90
        RETURN ARRAY(SELECT band[CASE deg WHEN 90 THEN (w - 1 - i % w) * w + i / w
                                          WHEN 180 THEN (w - 1 - i / w) * w + (w - 1 - i % w)
                                          ELSE (i % w) * w + (w - 1 - i / w) END + 1]
                       FROM generate_series(0, n - 1) i ORDER BY i);
    WHEN 'inc_angle' THEN
        g := power(10, -0.055 * ((edit->>'to')::float8 - angle));
        RETURN ARRAY(SELECT (10 * log(p * (c * g + (1 - c))))::real
                       FROM (SELECT power(10, v / 10.0) AS p,
                                    least(1.0, power(10, bg / 10.0) / power(10, v / 10.0)) AS c, i
                               FROM unnest(band) WITH ORDINALITY u(v, i)) q ORDER BY i);
    END CASE;
    RAISE EXCEPTION 'what_if: unknown op %', op USING ERRCODE = '22023';
END
$$;
COMMENT ON FUNCTION iceml.edit_chip(real[], jsonb, real) IS
    'one band after one what_if edit: gain, blank, flip, rotate, or inc_angle (with the chip''s angle)';

CREATE FUNCTION iceml.what_if(model text, band_1 real[], band_2 real[], inc_angle real, changes jsonb)
    RETURNS jsonb
    LANGUAGE plpgsql STABLE
    SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    mid bigint := iceml.deployed_model(model);
    edits jsonb;
    e jsonb;
    k int := 0;
    b1 real[] := band_1;
    b2 real[] := band_2;
    angle real := inc_angle;
    before real;
    p real;
    steps jsonb := '[]';
    band text;
    note text;
BEGIN
    before := @extschema@.iceml_predict(model, b1, b2, angle);
    IF before IS NULL THEN
        RAISE EXCEPTION 'what_if: band_1 and band_2 must not be NULL' USING ERRCODE = '22004';
    END IF;
    edits := CASE jsonb_typeof(changes) WHEN 'object' THEN jsonb_build_array(changes) WHEN 'array' THEN changes END;
    IF edits IS NULL OR jsonb_array_length(edits) = 0 THEN
        RAISE EXCEPTION 'what_if: changes must be an edit object or a non-empty array of them, not %', coalesce(changes::text, 'NULL')
            USING ERRCODE = '22023',
                  HINT = 'For example {"op": "gain", "db": 3, "band": "band_1"}; ops: gain, blank, flip, rotate, inc_angle.';
    END IF;
    FOR e IN SELECT x FROM jsonb_array_elements(edits) x LOOP
        k := k + 1;
        note := NULL;
        IF jsonb_typeof(e) <> 'object' OR NOT e ? 'op' THEN
            RAISE EXCEPTION 'what_if: change % is not an object with "op": %', k, e USING ERRCODE = '22023';
        END IF;
        band := coalesce(e->>'band', 'both');
        IF e->>'op' IN ('gain', 'blank') AND NOT band IN ('band_1', 'band_2', 'both') THEN
            RAISE EXCEPTION 'what_if: change %: "band" must be "band_1", "band_2" or "both", not "%"', k, band USING ERRCODE = '22023';
        END IF;
        CASE e->>'op'
        WHEN 'gain' THEN
            IF jsonb_typeof(e->'db') <> 'number' OR abs((e->>'db')::float8) > 60 THEN
                RAISE EXCEPTION 'what_if: change %: "db" must be a number between -60 and 60, not %', k, coalesce(e->'db', 'null')
                    USING ERRCODE = '22023';
            END IF;
        WHEN 'blank' THEN
            IF band = 'both' AND NOT e ? 'band' THEN
                RAISE EXCEPTION 'what_if: change %: "blank" needs "band"', k USING ERRCODE = '22023';
            END IF;
            note := 'set to the median of its 10-pixel border';
        WHEN 'flip' THEN
            IF NOT coalesce(e->>'axis', '') IN ('horizontal', 'vertical') THEN
                RAISE EXCEPTION 'what_if: change %: "axis" must be "horizontal" or "vertical", not %', k, coalesce(e->'axis', 'null')
                    USING ERRCODE = '22023';
            END IF;
            band := 'both';
        WHEN 'rotate' THEN
            IF NOT coalesce(e->>'degrees', '') IN ('90', '180', '270') THEN
                RAISE EXCEPTION 'what_if: change %: "degrees" must be 90, 180 or 270, not %', k, coalesce(e->'degrees', 'null')
                    USING ERRCODE = '22023';
            END IF;
            band := 'both';
        WHEN 'inc_angle' THEN
            IF jsonb_typeof(e->'to') <> 'number' OR (e->>'to')::float8 NOT BETWEEN 0 AND 90 THEN
                RAISE EXCEPTION 'what_if: change %: "to" must be an angle between 0 and 90 degrees, not %', k, coalesce(e->'to', 'null')
                    USING ERRCODE = '22023';
            END IF;
            IF angle IS NULL THEN
                RAISE EXCEPTION 'what_if: change %: another incidence angle needs the chip''s inc_angle', k
                    USING ERRCODE = '22023';
            END IF;
            band := 'both';
            note := format('sea clutter re-rendered for %s degrees instead of %s: %s dB (0.55 dB per degree)',
                           e->>'to', angle, round((-0.55 * ((e->>'to')::float8 - angle))::numeric, 2));
        ELSE
            RAISE EXCEPTION 'what_if: change %: unknown op "%"', k, e->>'op'
                USING ERRCODE = '22023', HINT = 'Ops: gain, blank, flip, rotate, inc_angle.';
        END CASE;
        IF band IN ('band_1', 'both') THEN
            b1 := iceml.edit_chip(b1, e, angle);
        END IF;
        IF band IN ('band_2', 'both') THEN
            b2 := iceml.edit_chip(b2, e, angle);
        END IF;
        IF e->>'op' = 'inc_angle' THEN
            angle := (e->>'to')::real;
        END IF;
        p := @extschema@.iceml_predict(model, b1, b2, angle);
        steps := steps || jsonb_build_array(jsonb_build_object('change', e, 'prediction', p)
                       || CASE WHEN note IS NULL THEN '{}'::jsonb ELSE jsonb_build_object('note', note) END);
    END LOOP;
    RETURN jsonb_build_object('model', model, 'model_id', mid, 'before', before, 'after', p,
                              'delta', p - before, 'steps', steps);
END
$$;
COMMENT ON FUNCTION iceml.what_if(text, real[], real[], real, jsonb) IS
    'the deployed model''s prediction for a chip before and after edits: gain in dB, a band blanked to its background, flips, rotations, another incidence angle';

GRANT EXECUTE ON FUNCTION iceml.binary_metrics(real[], real[], float8), iceml.dataset_columns(regclass, text),
    iceml.deployed_model(text), iceml.split_predictions(anyelement, regclass, text),
    iceml.evaluate(text, regclass, text), iceml.evaluate(bigint, regclass, text),
    iceml.evaluate_slices(text, regclass, text, int, text), iceml.edit_chip(real[], jsonb, real),
    iceml.what_if(text, real[], real[], real, jsonb) TO iceml_reader;
