
-- ====================================================================
-- 11: training datasets (API.md section 2)
--
-- iceml_td.<name>_<version>: the primary key columns of the feature group,
-- the chosen features, the label and a split column.  Rows with a NULL label
-- are left out.  The split is deterministic and stratified: within each label
-- value the rows are ordered by a hash of their primary key seeded with seed
-- (then by the key itself), and cut at round(n * cumulative fraction), the
-- splits taken as "train" first and then in name order.  The same rows and
-- seed give the same split whatever their physical order, and each split's
-- count per label is within one row of n * fraction.
-- ====================================================================

CREATE FUNCTION iceml._create_training_dataset(
    name          text,
    feature_group regclass,
    label         text,
    features      text[]  DEFAULT NULL,
    splits        jsonb   DEFAULT '{"train":0.8,"test":0.2}',
    seed          integer DEFAULT 42,
    version       integer DEFAULT NULL)
    RETURNS regclass
    LANGUAGE plpgsql VOLATILE PARALLEL UNSAFE
    SET search_path = pg_catalog, pg_temp
AS $fn$
DECLARE
    v_name    text := _create_training_dataset.name;
    v_version integer := _create_training_dataset.version;
    v_label   text := _create_training_dataset.label;
    v_splits  jsonb := _create_training_dataset.splits;
    fg        iceml.feature_groups;
    cols      text[];           -- all live columns of the feature group
    label_typ oid;
    chosen    text[];           -- primary key, features, label: the table's columns
    feats     text[];
    f         text;
    k         text;
    v         jsonb;
    total     numeric := 0;
    names     text[];
    cum       numeric := 0;
    cases     text := '';
    pkexpr    text;
    v_table   text;
    v_rel     regclass;
    i         integer;
    n_rows    bigint;
    v_counts  jsonb;
    v_lcounts jsonb;
BEGIN
    IF v_name IS NULL THEN
        RAISE EXCEPTION 'name must not be NULL' USING ERRCODE = '22023';
    END IF;
    PERFORM iceml._fs_check_name(v_name, 'training dataset name');
    fg := iceml._fs_group(_create_training_dataset.feature_group, false);
    IF v_version IS NOT NULL AND v_version < 1 THEN
        RAISE EXCEPTION 'invalid version %', v_version USING ERRCODE = '22023',
            DETAIL = 'A version is a positive integer; NULL takes the next one.';
    END IF;
    IF _create_training_dataset.seed IS NULL THEN
        RAISE EXCEPTION 'seed must not be NULL' USING ERRCODE = '22023';
    END IF;

    SELECT array_agg(a.attname::text ORDER BY a.attnum) INTO cols
      FROM pg_attribute a
     WHERE a.attrelid = fg."table" AND a.attnum > 0 AND NOT a.attisdropped;

    -- the label: a scalar column
    IF v_label IS NULL THEN
        RAISE EXCEPTION 'label must not be NULL' USING ERRCODE = '22023';
    END IF;
    IF NOT v_label = ANY (cols) THEN
        RAISE EXCEPTION 'label "%" is not a feature of feature group "%"', v_label, fg."table"
            USING ERRCODE = '22023',
                  DETAIL = format('Its features are %s.', array_to_string(cols, ', '));
    END IF;
    SELECT a.atttypid INTO label_typ FROM pg_attribute a
     WHERE a.attrelid = fg."table" AND a.attname = v_label;
    IF EXISTS (SELECT FROM pg_type ty WHERE ty.oid = label_typ AND ty.typcategory = 'A') THEN
        RAISE EXCEPTION 'label "%" is an array feature', v_label USING ERRCODE = '22023',
            HINT = 'A label is a scalar feature such as is_iceberg.';
    END IF;

    -- the features: all but the label, or the given ones
    IF _create_training_dataset.features IS NULL THEN
        feats := array_remove(cols, v_label);
    ELSE
        feats := _create_training_dataset.features;
        IF cardinality(feats) = 0 THEN
            RAISE EXCEPTION 'features must name at least one feature' USING ERRCODE = '22023',
                HINT = 'Pass NULL for all features but the label.';
        END IF;
        FOR i IN 1 .. cardinality(feats) LOOP
            f := feats[i];
            IF f IS NULL THEN
                RAISE EXCEPTION 'features[%] is NULL', i USING ERRCODE = '22023';
            END IF;
            IF NOT f = ANY (cols) THEN
                RAISE EXCEPTION 'features[%] "%" is not a feature of feature group "%"',
                    i, f, fg."table"
                    USING ERRCODE = '22023',
                          DETAIL = format('Its features are %s.', array_to_string(cols, ', '));
            END IF;
            IF f = v_label THEN
                RAISE EXCEPTION 'features[%] "%" is the label', i, f USING ERRCODE = '22023',
                    HINT = 'The label is added to the training dataset by itself.';
            END IF;
            IF array_position(feats, f) < i THEN
                RAISE EXCEPTION 'features[%] "%" is listed twice', i, f USING ERRCODE = '22023';
            END IF;
        END LOOP;
    END IF;
    -- the primary key first (lineage back to the feature group), then the features
    chosen := fg.primary_key;
    FOREACH f IN ARRAY feats LOOP
        IF NOT f = ANY (chosen) THEN
            chosen := chosen || f;
        END IF;
    END LOOP;
    IF 'split' = ANY (chosen) OR v_label = 'split' THEN
        RAISE EXCEPTION 'feature "split" collides with the split column of a training dataset'
            USING ERRCODE = '22023', HINT = 'Leave it out of features.';
    END IF;

    -- the splits: {"train": fraction, ...}, positive fractions summing to 1
    IF v_splits IS NULL OR jsonb_typeof(v_splits) <> 'object' THEN
        RAISE EXCEPTION 'splits must be a JSON object of split names and fractions'
            USING ERRCODE = '22023', HINT = 'For example {"train":0.8,"test":0.2}.';
    END IF;
    IF NOT v_splits ? 'train' THEN
        RAISE EXCEPTION 'splits must have a "train" split' USING ERRCODE = '22023',
            DETAIL = format('Splits given: %s.', v_splits);
    END IF;
    FOR k, v IN SELECT e.key, e.value FROM jsonb_each(v_splits) e LOOP
        IF length(k) = 0 OR length(k) > 63 THEN
            RAISE EXCEPTION 'invalid split name "%"', k USING ERRCODE = '22023',
                DETAIL = 'A split name has 1 to 63 characters.';
        END IF;
        IF jsonb_typeof(v) <> 'number' OR (v::text)::numeric <= 0 THEN
            RAISE EXCEPTION 'split "%" has fraction %, not a positive number', k, v
                USING ERRCODE = '22023';
        END IF;
        total := total + (v::text)::numeric;
    END LOOP;
    IF abs(total - 1) > 1e-9 THEN
        RAISE EXCEPTION 'split fractions sum to %, not 1', total USING ERRCODE = '22023',
            DETAIL = format('Splits given: %s.', v_splits);
    END IF;
    SELECT array_agg(e.key ORDER BY e.key <> 'train', e.key) INTO names FROM jsonb_each(v_splits) e;

    -- at least one labelled row
    -- the caller's reads of the feature group run as the caller
    n_rows := (iceml._as_caller(format('SELECT pg_catalog.to_jsonb(pg_catalog.count(*)) FROM (SELECT FROM %s t LIMIT 1) x', fg."table")))::bigint;
    IF n_rows = 0 THEN
        RAISE EXCEPTION 'feature group "%" is empty', fg."table"
            USING ERRCODE = '22023', HINT = 'Ingest rows into it first.';
    END IF;
    n_rows := (iceml._as_caller(format('SELECT pg_catalog.to_jsonb(pg_catalog.count(*)) FROM (SELECT FROM %s t WHERE t.%I IS NOT NULL LIMIT 1) x',
                                      fg."table", v_label)))::bigint;
    IF n_rows = 0 THEN
        RAISE EXCEPTION 'feature group "%" has no rows with a label "%"', fg."table", v_label
            USING ERRCODE = '22023', DETAIL = 'Rows whose label is NULL are left out of a training dataset.';
    END IF;

    -- ranks within each label by the seeded hash of the primary key
    IF cardinality(fg.primary_key) = 1 THEN
        pkexpr := format('t.%I::text', fg.primary_key[1]);
    ELSE
        pkexpr := format('ROW(%s)::text',
                         (SELECT string_agg(format('t.%I', c), ', ' ORDER BY o)
                            FROM unnest(fg.primary_key) WITH ORDINALITY AS u(c, o)));
    END IF;
    FOR i IN 1 .. cardinality(names) - 1 LOOP
        cum := cum + (v_splits ->> names[i])::numeric;
        cases := cases || format(' WHEN r.iceml_rank < floor(r.iceml_n * %s + 0.5) THEN %L', cum, names[i]);
    END LOOP;

    PERFORM pg_advisory_xact_lock(hashtextextended('iceml training dataset ' || v_name, 0));
    IF v_version IS NULL THEN
        SELECT coalesce(max(t.version), 0) INTO v_version
          FROM iceml.training_datasets t WHERE t.name = v_name;
        IF v_version = 2147483647 THEN
            RAISE EXCEPTION 'training dataset "%" has no next version: version % is the largest', v_name, v_version
                USING ERRCODE = '22003', HINT = 'Give an unused version explicitly.';
        END IF;
        v_version := v_version + 1;
    ELSIF EXISTS (SELECT FROM iceml.training_datasets t
                   WHERE t.name = v_name AND t.version = v_version) THEN
        RAISE EXCEPTION 'training dataset "%" version % already exists', v_name, v_version
            USING ERRCODE = '42P07', HINT = 'Omit version to create the next one.';
    END IF;
    v_table := v_name || '_' || v_version;
    IF to_regclass(format('iceml_td.%I', v_table)) IS NOT NULL THEN
        RAISE EXCEPTION 'relation "iceml_td.%" already exists', v_table USING ERRCODE = '42P07';
    END IF;

    -- The table is created by the catalog owner (nobody else creates tables
    -- in iceml_td) with the columns of the feature group, handed to the
    -- caller, and filled by the caller: the feature group is read with the
    -- caller's privileges and row-level security, never the owner's.
    EXECUTE format('CREATE TABLE iceml_td.%I (%s, split text NOT NULL, PRIMARY KEY (%s))', v_table,
                   (SELECT string_agg(format('%I %s', c, format_type(a.atttypid, a.atttypmod)), ', ' ORDER BY o)
                      FROM unnest(chosen || v_label) WITH ORDINALITY AS u(c, o)
                      JOIN pg_attribute a ON a.attrelid = fg."table" AND a.attname = u.c),
                   (SELECT string_agg(format('%I', c), ', ' ORDER BY o)
                      FROM unnest(fg.primary_key) WITH ORDINALITY AS u(c, o)));
    v_rel := format('iceml_td.%I', v_table)::regclass;
    EXECUTE format('ALTER TABLE %s OWNER TO %s', v_rel, iceml._caller());  -- regrole: quoted as needed
    PERFORM iceml._as_caller(format(
        'INSERT INTO %s'
        ' SELECT %s, %s AS split FROM ('
        '   SELECT t.*, (pg_catalog.row_number() OVER w OPERATOR(pg_catalog.-) 1) AS iceml_rank,'
        '          pg_catalog.count(*) OVER (PARTITION BY t.%I) AS iceml_n'
        '     FROM %s t WHERE t.%I IS NOT NULL'
        '   WINDOW w AS (PARTITION BY t.%I ORDER BY pg_catalog.hashtextextended(%s, %s), %s)) r',
        v_rel,
        (SELECT string_agg(format('r.%I', c), ', ' ORDER BY o)
           FROM unnest(chosen || v_label) WITH ORDINALITY AS u(c, o)),
        CASE WHEN cases = '' THEN quote_literal(names[1])
             ELSE format('CASE%s ELSE %L END', cases, names[cardinality(names)]) END,
        v_label, fg."table", v_label, v_label, pkexpr, _create_training_dataset.seed, pkexpr));
    EXECUTE format('COMMENT ON TABLE %s IS %L', v_rel,
                   format('iceml training dataset %s version %s from feature group %s (label %s, seed %s)',
                          v_name, v_version, fg."table", v_label, _create_training_dataset.seed));

    v_counts := iceml._as_caller(format(
        'SELECT pg_catalog.jsonb_object_agg(s.split, s.n) FROM'
        ' (SELECT split, pg_catalog.count(*) AS n FROM %s GROUP BY split) s', v_rel));
    v_lcounts := iceml._as_caller(format(
        'SELECT pg_catalog.jsonb_object_agg(s.split, s.labels) FROM'
        ' (SELECT l.split, pg_catalog.jsonb_object_agg(l.label, l.n) AS labels FROM'
        '   (SELECT split, %I::pg_catalog.text AS label, pg_catalog.count(*) AS n FROM %s GROUP BY 1, 2) l'
        '  GROUP BY l.split) s', v_label, v_rel));
    -- a split with no rows at all still appears, with 0
    FOREACH k IN ARRAY names LOOP
        IF NOT v_counts ? k THEN
            v_counts := v_counts || jsonb_build_object(k, 0);
        END IF;
    END LOOP;

    INSERT INTO iceml.training_datasets
        (name, version, "table", feature_group_id, feature_group, feature_group_version,
         commit_id, seed, features, label, splits, row_counts, label_counts, owner)
    VALUES (v_name, v_version, v_rel, fg.id, fg."table", fg.version,
            (SELECT max(c.commit_id) FROM iceml.feature_group_commits c
              WHERE c.feature_group_id = fg.id),
            _create_training_dataset.seed, chosen, v_label, v_splits, v_counts, v_lcounts,
            iceml._caller());
    RETURN v_rel;
END
$fn$;
CREATE FUNCTION iceml.create_training_dataset(
    name          text,
    feature_group regclass,
    label         text,
    features      text[]  DEFAULT NULL,
    splits        jsonb   DEFAULT '{"train":0.8,"test":0.2}',
    seed          integer DEFAULT 42,
    version       integer DEFAULT NULL)
    RETURNS regclass
    AS 'MODULE_PATHNAME', 'iceml_gate'
    LANGUAGE C VOLATILE;
COMMENT ON FUNCTION iceml.create_training_dataset(text, regclass, text, text[], jsonb, integer, integer) IS
    'materialises iceml_td.<name>_<version> from a feature group with a deterministic, label-stratified split column, recorded in iceml.training_datasets';

GRANT EXECUTE ON FUNCTION
    iceml.create_training_dataset(text, regclass, text, text[], jsonb, integer, integer)
    TO iceml_user;
