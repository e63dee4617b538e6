
-- ====================================================================
-- 61: pictures (API.md section 6) as self-contained SVG text: a title,
-- axes with tick labels, a legend; readable by a browser or a BI tool as
-- they are (write one to a file with psql -At, see README).  They read as
-- the caller: row-level security decides which runs, studies and
-- pipelines can be drawn.
-- ====================================================================

-- text for SVG: the five XML specials escaped
CREATE FUNCTION iceml.svg_text(t text) RETURNS text
    LANGUAGE sql IMMUTABLE STRICT PARALLEL SAFE
    SET search_path = pg_catalog, pg_temp
AS $$
    SELECT replace(replace(replace(replace(replace(t, '&', '&amp;'), '<', '&lt;'), '>', '&gt;'), '"', '&quot;'), '''', '&#39;')
$$;
COMMENT ON FUNCTION iceml.svg_text(text) IS 'text escaped for SVG/XML (& < > " '')';

-- An x-y chart.  series: [{"name", "points": [[x, y], ...], "style": "line" |
-- "points" | "dashed", "colour"}]; options: "x_range"/"y_range" [lo, hi],
-- "x_labels" [[label, x], ...] (categorical ticks), "diagonal" (a dashed
-- chance line from corner to corner), "highlight" {"x", "y", "label"},
-- "note" (a line under the title), "x_integer" (x ticks on whole numbers only).
CREATE FUNCTION iceml.plot_xy(title text, x_label text, y_label text, series jsonb, options jsonb DEFAULT '{}')
    RETURNS text
    LANGUAGE plpgsql IMMUTABLE PARALLEL SAFE
    SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    w constant int := 760;
    ml constant int := 72;      -- left margin: y tick labels and axis title
    mr constant int := 200;     -- right: the legend
    mt constant int := 64;      -- top: title and note
    -- bottom: x tick labels and axis title; slanted category labels need more
    mb constant int := CASE WHEN options ? 'x_labels' THEN 130 ELSE 60 END;
    h constant int := 380 + mb;
    pw constant int := w - ml - mr;
    ph constant int := h - mt - mb;
    palette constant text[] := ARRAY['#1f77b4', '#ff7f0e', '#2ca02c', '#d62728', '#9467bd', '#8c564b', '#e377c2', '#17becf'];
    opt jsonb := coalesce(options, '{}');
    lo float8[] := ARRAY[NULL, NULL]::float8[];
    hi float8[] := ARRAY[NULL, NULL]::float8[];
    step float8[] := ARRAY[NULL, NULL]::float8[];
    dec int[] := ARRAY[0, 0];
    out text;
    s jsonb;
    p jsonb;
    i int;
    a int;
    span float8;
    raw float8;
    mag float8;
    f float8;
    v float8;
    px float8;
    py float8;
    pts text;
    colour text;
    style text;
    ly int;
    n int := 0;
BEGIN
    IF series IS NULL OR jsonb_typeof(series) <> 'array' THEN
        RAISE EXCEPTION 'plot_xy: series must be a JSON array of {"name", "points"}' USING ERRCODE = '22023';
    END IF;
    -- data ranges, unless given
    SELECT ARRAY[min((q->>0)::float8), min((q->>1)::float8)], ARRAY[max((q->>0)::float8), max((q->>1)::float8)]
      INTO lo, hi
      FROM jsonb_array_elements(series) e, jsonb_array_elements(coalesce(e->'points', '[]')) q
     WHERE jsonb_typeof(q->0) = 'number' AND jsonb_typeof(q->1) = 'number';
    IF opt ? 'x_range' THEN lo[1] := (opt #>> '{x_range,0}')::float8; hi[1] := (opt #>> '{x_range,1}')::float8; END IF;
    IF opt ? 'y_range' THEN lo[2] := (opt #>> '{y_range,0}')::float8; hi[2] := (opt #>> '{y_range,1}')::float8; END IF;
    IF opt ? 'highlight' THEN
        lo[2] := least(lo[2], (opt #>> '{highlight,y}')::float8); hi[2] := greatest(hi[2], (opt #>> '{highlight,y}')::float8);
    END IF;
    FOR a IN 1 .. 2 LOOP
        lo[a] := coalesce(lo[a], 0);
        hi[a] := coalesce(hi[a], 1);
        IF hi[a] - lo[a] < 1e-12 THEN
            lo[a] := lo[a] - greatest(abs(lo[a]) * 0.1, 0.5);
            hi[a] := hi[a] + greatest(abs(hi[a]) * 0.1, 0.5);
        END IF;
        -- data ranges get a little room, so that no marker sits on the frame
        IF NOT (a = 1 AND opt ? 'x_range') AND NOT (a = 2 AND opt ? 'y_range') THEN
            span := hi[a] - lo[a];
            lo[a] := lo[a] - span * 0.04;
            hi[a] := hi[a] + span * 0.04;
        END IF;
        -- a "nice" step of 1, 2 or 5 times a power of ten, about five ticks
        span := hi[a] - lo[a];
        raw := span / 5;
        mag := power(10, floor(log(raw)));
        f := raw / mag;
        step[a] := mag * CASE WHEN f < 1.5 THEN 1 WHEN f < 3 THEN 2 WHEN f < 7 THEN 5 ELSE 10 END;
        IF a = 1 AND coalesce((opt->>'x_integer')::boolean, false) THEN
            step[a] := greatest(step[a], 1);    -- epochs: no ticks between whole numbers
        END IF;
        IF NOT (a = 1 AND opt ? 'x_range') AND NOT (a = 2 AND opt ? 'y_range') THEN
            lo[a] := floor(lo[a] / step[a] + 1e-9) * step[a];
            hi[a] := ceil(hi[a] / step[a] - 1e-9) * step[a];
        END IF;
        dec[a] := greatest(0, -floor(log(step[a]) + 1e-9))::int;
    END LOOP;

    out := format('<svg xmlns="http://www.w3.org/2000/svg" width="%s" height="%s" viewBox="0 0 %s %s" font-family="DejaVu Sans, Arial, sans-serif" font-size="12">',
                  w, h, w, h)
        || format('<title>%s</title>', iceml.svg_text(title))
        || format('<rect x="0" y="0" width="%s" height="%s" fill="#ffffff"/>', w, h)
        || format('<text x="%s" y="26" text-anchor="middle" font-size="16" font-weight="bold" fill="#222222">%s</text>',
                  ml + pw / 2, iceml.svg_text(title));
    IF opt ? 'note' THEN
        out := out || format('<text x="%s" y="46" text-anchor="middle" font-size="12" fill="#555555">%s</text>',
                             ml + pw / 2, iceml.svg_text(opt->>'note'));
    END IF;
    out := out || format('<rect x="%s" y="%s" width="%s" height="%s" fill="#fafafa" stroke="#333333" stroke-width="1"/>',
                         ml, mt, pw, ph);
    -- x ticks: categorical labels, or the nice steps
    IF opt ? 'x_labels' THEN
        FOR p IN SELECT x FROM jsonb_array_elements(opt->'x_labels') x LOOP
            px := ml + ((p->>1)::float8 - lo[1]) / (hi[1] - lo[1]) * pw;
            out := out || format('<line x1="%s" y1="%s" x2="%s" y2="%s" stroke="#333333"/>', round(px::numeric, 1), mt + ph, round(px::numeric, 1), mt + ph + 5)
                       || format('<text x="%s" y="%s" text-anchor="end" font-size="10" fill="#333333" transform="rotate(-30 %s %s)">%s</text>',
                                 round(px::numeric, 1), mt + ph + 16, round(px::numeric, 1), mt + ph + 16, iceml.svg_text(left(p->>0, 24)));
        END LOOP;
    ELSE
        v := lo[1];
        WHILE v <= hi[1] + step[1] * 1e-6 LOOP
            px := ml + (v - lo[1]) / (hi[1] - lo[1]) * pw;
            out := out || format('<line x1="%s" y1="%s" x2="%s" y2="%s" stroke="#e0e0e0"/>', round(px::numeric, 1), mt, round(px::numeric, 1), mt + ph)
                       || format('<line x1="%s" y1="%s" x2="%s" y2="%s" stroke="#333333"/>', round(px::numeric, 1), mt + ph, round(px::numeric, 1), mt + ph + 5)
                       || format('<text x="%s" y="%s" text-anchor="middle" fill="#333333">%s</text>',
                                 round(px::numeric, 1), mt + ph + 19, round(v::numeric, dec[1]));
            v := v + step[1];
        END LOOP;
    END IF;
    v := lo[2];
    WHILE v <= hi[2] + step[2] * 1e-6 LOOP
        py := mt + ph - (v - lo[2]) / (hi[2] - lo[2]) * ph;
        out := out || format('<line x1="%s" y1="%s" x2="%s" y2="%s" stroke="#e0e0e0"/>', ml, round(py::numeric, 1), ml + pw, round(py::numeric, 1))
                   || format('<line x1="%s" y1="%s" x2="%s" y2="%s" stroke="#333333"/>', ml - 5, round(py::numeric, 1), ml, round(py::numeric, 1))
                   || format('<text x="%s" y="%s" text-anchor="end" fill="#333333">%s</text>',
                             ml - 8, round(py::numeric + 4, 1), round(v::numeric, dec[2]));
        v := v + step[2];
    END LOOP;
    out := out || format('<text x="%s" y="%s" text-anchor="middle" font-size="13" fill="#222222">%s</text>',
                         ml + pw / 2, h - 10, iceml.svg_text(x_label))
               || format('<text x="18" y="%s" text-anchor="middle" font-size="13" fill="#222222" transform="rotate(-90 18 %s)">%s</text>',
                         mt + ph / 2, mt + ph / 2, iceml.svg_text(y_label));

    -- the data, clipped to the plot area
    -- (the clip leaves room for markers on the frame)
    out := out || format('<clipPath id="plot-area"><rect x="%s" y="%s" width="%s" height="%s"/></clipPath><g clip-path="url(#plot-area)">',
                         ml - 12, mt - 12, pw + 24, ph + 24);
    IF coalesce((opt->>'diagonal')::boolean, false) THEN
        out := out || format('<line x1="%s" y1="%s" x2="%s" y2="%s" stroke="#999999" stroke-dasharray="6 4" stroke-width="1.5"/>',
                             ml, mt + ph, ml + pw, mt);
    END IF;
    i := 0;
    FOR s IN SELECT e FROM jsonb_array_elements(series) e LOOP
        i := i + 1;
        colour := coalesce(s->>'colour', palette[(i - 1) % cardinality(palette) + 1]);
        style := coalesce(s->>'style', 'line');
        pts := '';
        n := 0;
        FOR p IN SELECT q FROM jsonb_array_elements(coalesce(s->'points', '[]')) q
                  WHERE jsonb_typeof(q->0) = 'number' AND jsonb_typeof(q->1) = 'number' LOOP
            px := ml + ((p->>0)::float8 - lo[1]) / (hi[1] - lo[1]) * pw;
            py := mt + ph - ((p->>1)::float8 - lo[2]) / (hi[2] - lo[2]) * ph;
            pts := pts || round(px::numeric, 1) || ',' || round(py::numeric, 1) || ' ';
            n := n + 1;
            IF style = 'points' OR (style <> 'dashed' AND jsonb_array_length(s->'points') <= 40) THEN
                out := out || format('<circle cx="%s" cy="%s" r="%s" fill="%s" stroke="#ffffff" stroke-width="1"/>',
                                     round(px::numeric, 1), round(py::numeric, 1), CASE WHEN style = 'points' THEN 5 ELSE 3 END, colour);
            END IF;
        END LOOP;
        IF style <> 'points' AND n > 1 THEN
            out := out || format('<polyline points="%s" fill="none" stroke="%s" stroke-width="2"%s/>',
                                 rtrim(pts), colour, CASE WHEN style = 'dashed' THEN ' stroke-dasharray="7 4"' ELSE '' END);
        END IF;
    END LOOP;
    IF opt ? 'highlight' THEN
        px := ml + ((opt #>> '{highlight,x}')::float8 - lo[1]) / (hi[1] - lo[1]) * pw;
        py := mt + ph - ((opt #>> '{highlight,y}')::float8 - lo[2]) / (hi[2] - lo[2]) * ph;
        out := out || format('<circle cx="%s" cy="%s" r="10" fill="none" stroke="#d62728" stroke-width="2.5"/>',
                             round(px::numeric, 1), round(py::numeric, 1));
    END IF;
    out := out || '</g>';

    -- the legend
    ly := mt + 8;
    out := out || format('<text x="%s" y="%s" font-size="12" font-weight="bold" fill="#222222">legend</text>', ml + pw + 18, ly + 4);
    i := 0;
    FOR s IN SELECT e FROM jsonb_array_elements(series) e LOOP
        i := i + 1;
        ly := ly + 22;
        colour := coalesce(s->>'colour', palette[(i - 1) % cardinality(palette) + 1]);
        style := coalesce(s->>'style', 'line');
        IF style = 'points' THEN
            out := out || format('<circle cx="%s" cy="%s" r="5" fill="%s"/>', ml + pw + 30, ly, colour);
        ELSE
            out := out || format('<line x1="%s" y1="%s" x2="%s" y2="%s" stroke="%s" stroke-width="2.5"%s/>',
                                 ml + pw + 18, ly, ml + pw + 42, ly, colour,
                                 CASE WHEN style = 'dashed' THEN ' stroke-dasharray="7 4"' ELSE '' END);
        END IF;
        out := out || format('<text x="%s" y="%s" fill="#222222">%s</text>', ml + pw + 50, ly + 4, iceml.svg_text(left(coalesce(s->>'name', ''), 22)));
    END LOOP;
    IF coalesce((opt->>'diagonal')::boolean, false) THEN
        ly := ly + 22;
        out := out || format('<line x1="%s" y1="%s" x2="%s" y2="%s" stroke="#999999" stroke-width="1.5" stroke-dasharray="6 4"/>', ml + pw + 18, ly, ml + pw + 42, ly)
                   || format('<text x="%s" y="%s" fill="#222222">chance</text>', ml + pw + 50, ly + 4);
    END IF;
    IF opt ? 'highlight' THEN
        ly := ly + 22;
        out := out || format('<circle cx="%s" cy="%s" r="7" fill="none" stroke="#d62728" stroke-width="2.5"/>', ml + pw + 30, ly)
                   || format('<text x="%s" y="%s" fill="#222222">%s</text>', ml + pw + 50, ly + 4,
                             iceml.svg_text(left(coalesce(opt #>> '{highlight,label}', 'best'), 22)));
    END IF;
    RETURN out || '</svg>';
END
$$;
COMMENT ON FUNCTION iceml.plot_xy(text, text, text, jsonb, jsonb) IS
    'an SVG x-y chart with title, axes, ticks and legend from series [{"name", "points": [[x, y], ...], "style": "line" | "points" | "dashed"}]; the other plot_ functions draw with it';

-- ---- learning curve ----------------------------------------------------------

CREATE FUNCTION iceml.plot_learning_curve(run_id bigint) RETURNS text
    LANGUAGE plpgsql STABLE STRICT
    SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    r record;
    m record;
BEGIN
    SELECT x.id, x.experiment, x.architecture, x.status, x.best_epoch, x.epochs, x.trial INTO r
      FROM iceml.runs x WHERE x.id OPERATOR(pg_catalog.=) run_id;
    IF NOT FOUND THEN
        RAISE EXCEPTION 'iceml run % does not exist', run_id
            USING ERRCODE = '42704', HINT = 'iceml.progress lists the runs you can see.';
    END IF;
    SELECT jsonb_agg(jsonb_build_array(x.epoch, x.train_loss) ORDER BY x.epoch) AS train_loss,
           jsonb_agg(jsonb_build_array(x.epoch, x.val_loss) ORDER BY x.epoch) FILTER (WHERE x.val_loss IS NOT NULL) AS val_loss,
           jsonb_agg(jsonb_build_array(x.epoch, x.val_acc) ORDER BY x.epoch) FILTER (WHERE x.val_acc IS NOT NULL) AS val_acc,
           count(*) AS n,
           (SELECT y.val_loss FROM iceml.run_metrics y WHERE y.run_id OPERATOR(pg_catalog.=) r.id
                AND y.epoch OPERATOR(pg_catalog.=) r.best_epoch) AS best_loss
      INTO m
      FROM iceml.run_metrics x WHERE x.run_id OPERATOR(pg_catalog.=) r.id;
    IF m.n = 0 THEN
        RAISE EXCEPTION 'iceml run % has no epoch recorded yet (it is %)', run_id, r.status
            USING ERRCODE = '55000', HINT = 'Each epoch is committed as it ends: draw it again after the first.';
    END IF;
    RETURN iceml.plot_xy(format('Learning curve of run %s (%s)', r.id, r.experiment),
        'epoch', 'loss / accuracy',
        jsonb_build_array(jsonb_build_object('name', 'training loss', 'points', m.train_loss),
                          jsonb_build_object('name', 'validation loss', 'points', coalesce(m.val_loss, '[]')),
                          jsonb_build_object('name', 'validation accuracy', 'points', coalesce(m.val_acc, '[]'), 'style', 'dashed')),
        jsonb_build_object('x_integer', true,
                           'note', format('%s, %s of %s epochs, %s', r.architecture, m.n, r.epochs, r.status)
                                   || CASE WHEN r.trial IS NOT NULL THEN ', trial ' || left(r.trial, 40) ELSE '' END,
                           'x_range', jsonb_build_array(CASE WHEN m.n OPERATOR(pg_catalog.>) 1 THEN 1 ELSE 0 END, greatest(m.n, 2)))
        || CASE WHEN m.best_loss IS NOT NULL
                THEN jsonb_build_object('highlight', jsonb_build_object('x', r.best_epoch, 'y', m.best_loss,
                                                                        'label', format('kept: epoch %s', r.best_epoch)))
                ELSE '{}' END);
END
$$;
COMMENT ON FUNCTION iceml.plot_learning_curve(bigint) IS
    'an SVG picture of a run''s training and validation loss and validation accuracy per epoch, the kept epoch marked';

-- ---- ROC curve ---------------------------------------------------------------

CREATE FUNCTION iceml.plot_roc(model text, training_dataset regclass, split text DEFAULT 'test') RETURNS text
    LANGUAGE plpgsql STABLE STRICT
    SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    mid bigint;
    pts jsonb;
    auc float8;
    npos bigint;
    nneg bigint;
BEGIN
    IF NOT EXISTS (SELECT FROM iceml.training_datasets t WHERE t."table" OPERATOR(pg_catalog.=) training_dataset) THEN
        RAISE EXCEPTION 'relation % is not a training dataset', training_dataset
            USING ERRCODE = '22023', HINT = 'iceml.training_datasets lists them.';
    END IF;
    SELECT d.model_id INTO mid FROM iceml.deployed_models d WHERE d.name OPERATOR(pg_catalog.=) model;
    IF mid IS NULL THEN
        RAISE EXCEPTION 'no model is deployed under the name "%"', model
            USING ERRCODE = '42704', HINT = format('Deploy one with iceml.deploy(%L).', model);
    END IF;
    -- one point per distinct score, from the highest down
    WITH d AS (SELECT u.p::float8 AS p, (u.y > 0.5) AS y
                 FROM iceml.split_predictions(model, training_dataset, split) sp, unnest(sp.probabilities, sp.labels) AS u(p, y)),
         c AS (SELECT count(*) FILTER (WHERE d.y) AS pos, count(*) FILTER (WHERE NOT d.y) AS neg FROM d),
         g AS (SELECT d.p, count(*) FILTER (WHERE d.y) AS tp, count(*) FILTER (WHERE NOT d.y) AS fp FROM d GROUP BY d.p),
         r AS (SELECT g.p, sum(g.tp) OVER (ORDER BY g.p DESC) AS tp, sum(g.fp) OVER (ORDER BY g.p DESC) AS fp FROM g),
         q AS (SELECT 0::float8 AS fpr, 0::float8 AS tpr, 1 AS o UNION ALL
               SELECT r.fp / NULLIF(c.neg, 0), r.tp / NULLIF(c.pos, 0), 2 FROM r, c),
         s AS (SELECT q.fpr, q.tpr, lag(q.fpr) OVER w AS fpr0, lag(q.tpr) OVER w AS tpr0
                 FROM q WINDOW w AS (ORDER BY q.o, q.fpr, q.tpr))
    SELECT (SELECT jsonb_agg(jsonb_build_array(round(q.fpr::numeric, 4), round(q.tpr::numeric, 4)) ORDER BY q.fpr, q.tpr) FROM q),
           (SELECT sum((s.fpr - s.fpr0) * (s.tpr + s.tpr0) / 2) FROM s WHERE s.fpr0 IS NOT NULL),
           (SELECT c.pos FROM c), (SELECT c.neg FROM c)
      INTO pts, auc, npos, nneg;
    IF coalesce(npos, 0) = 0 OR coalesce(nneg, 0) = 0 THEN
        RAISE EXCEPTION 'split "%" of training dataset % has % positive and % negative rows: a ROC curve needs both',
                        split, training_dataset, coalesce(npos, 0), coalesce(nneg, 0)
            USING ERRCODE = '22023';
    END IF;
    RETURN iceml.plot_xy(format('ROC curve of "%s" (model %s)', model, mid),
        'false positive rate', 'true positive rate',
        jsonb_build_array(jsonb_build_object('name', format('model %s, AUC %s', mid, round(auc::numeric, 3)), 'points', pts)),
        jsonb_build_object('note', format('split "%s" of %s: %s icebergs, %s ships', split, training_dataset, npos, nneg),
                           'x_range', '[0, 1]'::jsonb, 'y_range', '[0, 1]'::jsonb, 'diagonal', true));
END
$$;
COMMENT ON FUNCTION iceml.plot_roc(text, regclass, text) IS
    'an SVG ROC curve of the model deployed under a name on a split of a training dataset, with its AUC and the chance line';

-- ---- study -------------------------------------------------------------------

CREATE FUNCTION iceml.plot_study(study_id bigint) RETURNS text
    LANGUAGE plpgsql STABLE STRICT
    SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    st record;
    mkey text;
    mname text;
    trials jsonb;
    params text[];
    prm text;
    numeric_param boolean;
    pts jsonb;
    labels jsonb;
    best record;
    panels text := '';
    npanel int := 0;
    y_off int := 0;
    svg text;
    n_ok int;
    n_all int;
BEGIN
    SELECT s.* INTO st FROM iceml.studies s WHERE s.id OPERATOR(pg_catalog.=) study_id;
    IF NOT FOUND THEN
        RAISE EXCEPTION 'iceml study % does not exist', study_id
            USING ERRCODE = '42704', HINT = 'iceml.studies lists the studies you can see.';
    END IF;
    mkey := CASE st.metric WHEN 'val_acc' THEN 'accuracy' WHEN 'val_auc' THEN 'roc_auc' ELSE 'log_loss' END;
    mname := CASE st.metric WHEN 'val_acc' THEN 'validation accuracy' WHEN 'val_auc' THEN 'validation ROC AUC'
                            ELSE 'validation log loss' END;
    SELECT coalesce(jsonb_agg(jsonb_build_object('run', r.id, 'trial', r.trial,
               'params', CASE WHEN st.kind OPERATOR(pg_catalog.=) 'tune' AND r.trial OPERATOR(pg_catalog.~) '^\{' THEN r.trial::jsonb ELSE '{}' END,
               'value', (m.metrics OPERATOR(pg_catalog.->>) mkey)::float8, 'best', r.id OPERATOR(pg_catalog.=) st.best_run)), '[]')
      INTO trials
      FROM iceml.runs r LEFT JOIN iceml.models m ON m.id OPERATOR(pg_catalog.=) r.model_id
     WHERE r.study_id OPERATOR(pg_catalog.=) st.id;
    SELECT count(*) FILTER (WHERE value IS NOT NULL), count(*) INTO n_ok, n_all FROM jsonb_to_recordset(trials) AS t(run bigint, trial text, params jsonb, value float8, best boolean);
    IF n_ok = 0 THEN
        RAISE EXCEPTION 'iceml study % has no trial with a model yet (% trials, study %)', study_id, n_all, st.status
            USING ERRCODE = '55000', HINT = 'Draw it again when trials have ended: iceml.wait(' || study_id || ').';
    END IF;
    SELECT * INTO best FROM jsonb_to_recordset(trials) AS t(run bigint, trial text, params jsonb, value float8, best boolean) WHERE t.best
     UNION ALL SELECT * FROM (SELECT * FROM jsonb_to_recordset(trials) AS t(run bigint, trial text, params jsonb, value float8, best boolean) WHERE t.value IS NOT NULL
                               ORDER BY CASE WHEN mkey = 'log_loss' THEN t.value ELSE -t.value END LIMIT 1) q
     LIMIT 1;

    IF st.kind OPERATOR(pg_catalog.=) 'tune' THEN
        params := ARRAY(SELECT k FROM jsonb_object_keys(st.search_space) k ORDER BY k);
    ELSE
        params := ARRAY['trial'];
    END IF;
    -- one panel per searched parameter (an ablation study: one panel of its trials)
    FOREACH prm IN ARRAY params LOOP
        npanel := npanel + 1;
        IF prm = 'trial' THEN
            numeric_param := false;
            SELECT jsonb_agg(jsonb_build_array(x.trial, x.k - 1) ORDER BY x.k) INTO labels
              FROM (SELECT t.trial, row_number() OVER (ORDER BY t.trial = 'baseline' DESC, t.trial) AS k
                      FROM jsonb_to_recordset(trials) AS t(run bigint, trial text, params jsonb, value float8, best boolean)) x;
            SELECT jsonb_agg(jsonb_build_array(x.k - 1, t.value)) INTO pts
              FROM jsonb_to_recordset(trials) AS t(run bigint, trial text, params jsonb, value float8, best boolean)
              JOIN (SELECT t2.run, row_number() OVER (ORDER BY t2.trial = 'baseline' DESC, t2.trial) AS k FROM jsonb_to_recordset(trials) AS t2(run bigint, trial text, params jsonb, value float8, best boolean)) x
                ON x.run = t.run
             WHERE t.value IS NOT NULL;
        ELSE
            numeric_param := NOT EXISTS (SELECT FROM jsonb_to_recordset(trials) AS t(run bigint, trial text, params jsonb, value float8, best boolean)
                                          WHERE t.params ? prm AND jsonb_typeof(t.params->prm) <> 'number');
            IF numeric_param THEN
                labels := NULL;
                SELECT jsonb_agg(jsonb_build_array((t.params->>prm)::float8, t.value)) INTO pts
                  FROM jsonb_to_recordset(trials) AS t(run bigint, trial text, params jsonb, value float8, best boolean) WHERE t.value IS NOT NULL AND t.params ? prm;
            ELSE
                SELECT jsonb_agg(jsonb_build_array(x.v, x.k - 1) ORDER BY x.k) INTO labels
                  FROM (SELECT v, row_number() OVER (ORDER BY v) AS k
                          FROM (SELECT DISTINCT t.params->>prm AS v FROM jsonb_to_recordset(trials) AS t(run bigint, trial text, params jsonb, value float8, best boolean) WHERE t.params ? prm) d) x;
                SELECT jsonb_agg(jsonb_build_array((SELECT (l->>1)::float8 FROM jsonb_array_elements(labels) l WHERE l->>0 = t.params->>prm), t.value))
                  INTO pts FROM jsonb_to_recordset(trials) AS t(run bigint, trial text, params jsonb, value float8, best boolean) WHERE t.value IS NOT NULL AND t.params ? prm;
            END IF;
        END IF;
        svg := iceml.plot_xy(
            CASE WHEN prm = 'trial' THEN format('Ablation study %s (%s): %s by trial', st.id, st.experiment, mname)
                 ELSE format('Study %s (%s): %s against %s', st.id, st.experiment, mname, prm) END,
            CASE WHEN prm = 'trial' THEN 'trial (the component left out)' ELSE prm END, mname,
            jsonb_build_array(jsonb_build_object('name', format('%s of %s trials', n_ok, n_all), 'points', coalesce(pts, '[]'), 'style', 'points')),
            jsonb_build_object('note', format('%s, %s, %s', CASE WHEN st.kind = 'tune' THEN st.strategy || ' search' ELSE 'each trial leaves one part out' END,
                                              st.architecture, st.status))
            || CASE WHEN labels IS NOT NULL
                    THEN jsonb_build_object('x_labels', labels, 'x_range', jsonb_build_array(-0.5, jsonb_array_length(labels) - 0.5))
                    ELSE '{}' END
            || CASE WHEN best.run IS NOT NULL AND best.value IS NOT NULL THEN jsonb_build_object('highlight', jsonb_build_object(
                    'x', CASE WHEN prm = 'trial' THEN (SELECT (l->>1)::float8 FROM jsonb_array_elements(labels) l WHERE l->>0 = best.trial)
                              WHEN numeric_param THEN (best.params->>prm)::float8
                              ELSE (SELECT (l->>1)::float8 FROM jsonb_array_elements(labels) l WHERE l->>0 = best.params->>prm) END,
                    'y', best.value, 'label', format('best: run %s', best.run))) ELSE '{}' END);
        -- panels stacked: each is a nested <svg> placed below the previous one
        panels := panels || regexp_replace(svg, '^<svg ', format('<svg x="0" y="%s" ', y_off));
        y_off := y_off + (substring(svg FROM '^<svg [^>]*height="(\d+)"'))::int;
    END LOOP;
    IF npanel = 1 THEN
        RETURN svg;
    END IF;
    RETURN format('<svg xmlns="http://www.w3.org/2000/svg" width="760" height="%s" viewBox="0 0 760 %s">', y_off, y_off)
        || format('<title>Study %s</title>', st.id) || panels || '</svg>';
END
$$;
COMMENT ON FUNCTION iceml.plot_study(bigint) IS
    'an SVG picture of a study: each trial''s metric against each searched hyperparameter (one panel per parameter; an ablation study by trial), the best trial marked';

-- ---- pipeline run ------------------------------------------------------------

CREATE FUNCTION iceml.plot_pipeline(run_id bigint) RETURNS text
    LANGUAGE plpgsql STABLE STRICT
    SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    pr record;
    s record;
    h record;
    runs bigint[];
    colours constant jsonb := '{"succeeded": "#2ca02c", "failed": "#d62728", "running": "#1f77b4", "skipped": "#f5b7c5",
                                "pending": "#dddddd", "cancelled": "#ff7f0e", "queued": "#bbbbbb"}';
    w constant int := 900;
    row_h constant int := 34;
    top constant int := 92;
    gx constant int := 170;     -- the grid of runs (tree view)
    cell constant int := 22;
    bx int;                     -- the timeline of this run
    bw int;
    h_px int;
    t0 timestamptz;
    total float8;
    step float8;
    mag float8;
    f float8;
    v float8;
    x0 float8;
    x1 float8;
    y int;
    i int;
    k int;
    ncols int;
    out text;
    legend_y int;
    status_text text;
BEGIN
    SELECT p.* INTO pr FROM iceml.pipeline_runs p WHERE p.id OPERATOR(pg_catalog.=) run_id;
    IF NOT FOUND THEN
        RAISE EXCEPTION 'iceml pipeline run % does not exist', run_id
            USING ERRCODE = '42704', HINT = 'iceml.pipeline_runs lists the pipeline runs you can see.';
    END IF;
    -- this run and up to seven before it of the same pipeline, oldest first
    runs := ARRAY(SELECT q.id FROM (SELECT p.id FROM iceml.pipeline_runs p
                                     WHERE p.name OPERATOR(pg_catalog.=) pr.name AND p.id OPERATOR(pg_catalog.<=) pr.id
                                     ORDER BY p.id DESC LIMIT 8) q ORDER BY q.id);
    ncols := cardinality(runs);
    bx := gx + ncols * cell + 40;
    bw := w - bx - 190;
    SELECT count(*) INTO k FROM iceml.pipeline_steps x WHERE x.run_id OPERATOR(pg_catalog.=) pr.id;
    h_px := top + k * row_h + 96;
    t0 := coalesce(pr.started, pr.created);
    SELECT greatest(extract(epoch FROM coalesce(max(x.finished), max(x.started), now()) - t0)::float8, 0.001) INTO total
      FROM iceml.pipeline_steps x WHERE x.run_id OPERATOR(pg_catalog.=) pr.id;
    mag := power(10, floor(log(total / 5)));
    f := total / 5 / mag;
    step := mag * CASE WHEN f < 1.5 THEN 1 WHEN f < 3 THEN 2 WHEN f < 7 THEN 5 ELSE 10 END;
    total := ceil(total / step - 1e-9) * step;

    status_text := pr.status || CASE WHEN pr.finished IS NOT NULL AND pr.started IS NOT NULL
                                     THEN format(' in %s s', round(extract(epoch FROM pr.finished - pr.started)::numeric, 1)) ELSE '' END;
    out := format('<svg xmlns="http://www.w3.org/2000/svg" width="%s" height="%s" viewBox="0 0 %s %s" font-family="DejaVu Sans, Arial, sans-serif" font-size="12">',
                  w, h_px, w, h_px)
        || format('<title>Pipeline %s run %s</title>', iceml.svg_text(pr.name), pr.id)
        || format('<rect x="0" y="0" width="%s" height="%s" fill="#ffffff"/>', w, h_px)
        || format('<text x="%s" y="26" text-anchor="middle" font-size="16" font-weight="bold" fill="#222222">Pipeline "%s", run %s: %s</text>',
                  w / 2, iceml.svg_text(pr.name), pr.id, iceml.svg_text(status_text))
        || format('<text x="%s" y="46" text-anchor="middle" fill="#555555">%s</text>', w / 2,
                  iceml.svg_text(format('by %s, started %s%s', pr.owner, to_char(t0 AT TIME ZONE 'UTC', 'YYYY-MM-DD HH24:MI:SS "UTC"'),
                                        CASE WHEN pr.cron_job IS NOT NULL THEN format(', pg_cron job %s', pr.cron_job) ELSE '' END)))
        -- column headings
        || format('<text x="%s" y="%s" text-anchor="middle" font-size="11" fill="#555555">runs</text>', gx + ncols * cell / 2, top - 22)
        || format('<text x="%s" y="%s" text-anchor="middle" font-size="11" fill="#555555">time since the run started (s)</text>', bx + bw / 2, top - 22);
    -- the run ids over the grid's columns
    FOR i IN 1 .. ncols LOOP
        out := out || format('<text x="%s" y="%s" text-anchor="middle" font-size="9" fill="%s">%s</text>',
                             gx + (i - 1) * cell + cell / 2, top - 6,
                             CASE WHEN runs[i] = pr.id THEN '#000000' ELSE '#888888' END, runs[i]);
    END LOOP;
    -- the time axis
    v := 0;
    WHILE v <= total + step * 1e-6 LOOP
        x0 := bx + v / total * bw;
        out := out || format('<line x1="%s" y1="%s" x2="%s" y2="%s" stroke="#e6e6e6"/>', round(x0::numeric, 1), top, round(x0::numeric, 1), top + k * row_h)
                   || format('<text x="%s" y="%s" text-anchor="middle" font-size="10" fill="#333333">%s</text>',
                             round(x0::numeric, 1), top + k * row_h + 16, round(v::numeric, greatest(0, -floor(log(step) + 1e-9))::int));
        v := v + step;
    END LOOP;
    out := out || format('<line x1="%s" y1="%s" x2="%s" y2="%s" stroke="#333333"/>', bx, top + k * row_h, bx + bw, top + k * row_h);

    i := 0;
    FOR s IN SELECT x.* FROM iceml.pipeline_steps x WHERE x.run_id OPERATOR(pg_catalog.=) pr.id ORDER BY x.ordinal LOOP
        i := i + 1;
        y := top + (i - 1) * row_h;
        IF i % 2 = 0 THEN
            out := out || format('<rect x="10" y="%s" width="%s" height="%s" fill="#f7f7f7"/>', y, w - 20, row_h);
        END IF;
        -- the task tree: a connector from the previous step, the step's name
        out := out || format('<circle cx="24" cy="%s" r="5" fill="%s" stroke="#555555"/>', y + row_h / 2, colours->>s.status)
                   || CASE WHEN i > 1 THEN format('<line x1="24" y1="%s" x2="24" y2="%s" stroke="#888888"/>', y - row_h / 2 + 5, y + row_h / 2 - 5) ELSE '' END
                   || format('<text x="38" y="%s" fill="#222222">%s</text>', y + row_h / 2 + 4, iceml.svg_text(s.step));
        -- this step in each run of the grid
        FOR k IN 1 .. ncols LOOP
            SELECT x.status INTO h FROM iceml.pipeline_steps x
             WHERE x.run_id OPERATOR(pg_catalog.=) runs[k] AND x.step OPERATOR(pg_catalog.=) s.step;
            out := out || format('<rect x="%s" y="%s" width="%s" height="%s" rx="3" fill="%s" stroke="%s" stroke-width="%s"><title>run %s: %s %s</title></rect>',
                                 gx + (k - 1) * cell + 3, y + (row_h - cell + 6) / 2, cell - 6, cell - 6,
                                 coalesce(colours->>h.status, '#ffffff'),
                                 CASE WHEN runs[k] = pr.id THEN '#000000' ELSE '#999999' END,
                                 CASE WHEN runs[k] = pr.id THEN 2 ELSE 1 END,
                                 runs[k], iceml.svg_text(s.step), coalesce(h.status, 'absent'));
        END LOOP;
        -- the bar: when the step ran, how long, what it did
        IF s.started IS NOT NULL THEN
            x0 := bx + greatest(extract(epoch FROM s.started - t0)::float8, 0) / total * bw;
            x1 := bx + least(extract(epoch FROM coalesce(s.finished, now()) - t0)::float8 / total, 1) * bw;
            out := out || format('<rect x="%s" y="%s" width="%s" height="%s" rx="2" fill="%s"/>',
                                 round(x0::numeric, 1), y + 7, round(greatest(x1 - x0, 2)::numeric, 1), row_h - 14, colours->>s.status);
        END IF;
        out := out || format('<text x="%s" y="%s" font-size="11" fill="#333333">%s</text>', bx + bw + 10, y + row_h / 2 + 4,
                             iceml.svg_text(left(s.status
                                 || CASE WHEN s.started IS NOT NULL AND s.finished IS NOT NULL AND s.status <> 'skipped'
                                         THEN format(' %s s', round(extract(epoch FROM s.finished - s.started)::numeric, 2)) ELSE '' END
                                 || CASE WHEN s."rows" IS NOT NULL THEN format(', %s rows', s."rows") ELSE '' END
                                 || CASE WHEN s.sqlstate IS NOT NULL THEN ' ' || s.sqlstate ELSE '' END, 30)));
    END LOOP;

    -- the legend: the status colours
    legend_y := top + i * row_h + 40;
    k := 0;
    FOR s IN SELECT e.key, e.value #>> '{}' AS colour
               FROM jsonb_each(colours) e
              ORDER BY array_position(ARRAY['succeeded', 'running', 'skipped', 'failed', 'cancelled', 'pending', 'queued'], e.key) LOOP
        out := out || format('<rect x="%s" y="%s" width="14" height="14" rx="3" fill="%s" stroke="#999999"/>', 40 + k * 120, legend_y - 11, s.colour)
                   || format('<text x="%s" y="%s" fill="#222222">%s</text>', 60 + k * 120, legend_y, s.key);
        k := k + 1;
    END LOOP;
    out := out || format('<rect x="%s" y="%s" width="14" height="14" rx="3" fill="#ffffff" stroke="#999999"/>', 40, legend_y + 13)
               || format('<text x="%s" y="%s" fill="#222222">not a step of that run</text>', 60, legend_y + 24);
    RETURN out || '</svg>';
END
$$;
COMMENT ON FUNCTION iceml.plot_pipeline(bigint) IS
    'an SVG picture of a pipeline run as a task tree: its steps in order with status colours, the same steps in up to seven earlier runs of the pipeline (a tree view), and a timeline of when each step ran, how long and with how many rows';

GRANT EXECUTE ON FUNCTION iceml.svg_text(text), iceml.plot_xy(text, text, text, jsonb, jsonb),
    iceml.plot_learning_curve(bigint), iceml.plot_roc(text, regclass, text), iceml.plot_study(bigint),
    iceml.plot_pipeline(bigint) TO iceml_reader;
