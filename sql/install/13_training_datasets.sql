
-- 13: training datasets: deterministic, stratified, versioned splits of a
-- feature group (or any table with a primary key), with lineage.

CREATE TABLE iceml.training_datasets (
    name          text NOT NULL CHECK (name OPERATOR(pg_catalog.~) '^[a-z][a-z0-9_]{0,40}$'),
    version       integer NOT NULL CHECK (version OPERATOR(pg_catalog.>) 0),
    relation      regclass NOT NULL UNIQUE,        -- iceml_td.<name>_<version>
    feature_group regclass NOT NULL,               -- where the rows came from
    primary_key   text[] NOT NULL,
    label         text NOT NULL,
    features      text[] NOT NULL,
    splits        jsonb NOT NULL,                  -- fractions by split name
    seed          integer NOT NULL,
    row_counts    jsonb NOT NULL,                  -- {"train": {"0": n, "1": n}, ...}
    source_rows   bigint NOT NULL,
    owner         name NOT NULL DEFAULT CURRENT_USER,
    created_at    timestamptz NOT NULL DEFAULT pg_catalog.now(),
    PRIMARY KEY (name, version)
);
COMMENT ON TABLE iceml.training_datasets IS
    'training datasets with their lineage: source feature group, primary key, label, features, split fractions, seed, rows per split and label';
SELECT pg_catalog.pg_extension_config_dump('iceml.training_datasets', '');

ALTER TABLE iceml.training_datasets ENABLE ROW LEVEL SECURITY;
CREATE POLICY read_training_datasets ON iceml.training_datasets FOR SELECT USING (true);
CREATE POLICY own_training_datasets ON iceml.training_datasets FOR INSERT
    WITH CHECK (owner OPERATOR(pg_catalog.=) CURRENT_USER);
CREATE POLICY drop_own_training_datasets ON iceml.training_datasets FOR DELETE
    USING (owner OPERATOR(pg_catalog.=) CURRENT_USER OR pg_catalog.pg_has_role('iceml_admin', 'MEMBER'));
GRANT SELECT ON iceml.training_datasets TO iceml_reader;
GRANT INSERT, DELETE ON iceml.training_datasets TO iceml_user;

CREATE FUNCTION iceml.create_training_dataset(
    name          text,
    feature_group regclass,
    label         text,
    features      text[] DEFAULT NULL,
    splits        jsonb  DEFAULT '{"train": 0.8, "test": 0.2}',
    seed          int    DEFAULT 42,
    version       int    DEFAULT NULL)
    RETURNS regclass
    LANGUAGE plpgsql VOLATILE
    SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    cols text[];
    pk text[];
    feats text[];
    f text;
    k text;
    total numeric := 0;
    v int := version;
    tbl text;
    rel regclass;
    split_names text[];
    bounds text := '';
    cum numeric := 0;
    n bigint;
    counts jsonb;
BEGIN
    IF name IS NULL OR name !~ '^[a-z][a-z0-9_]{0,40}$' THEN
        RAISE EXCEPTION 'invalid training dataset name "%"', name
            USING ERRCODE = '22023',
                  HINT = 'Use up to 41 lower-case letters, digits and underscores, starting with a letter.';
    END IF;
    IF feature_group IS NULL OR label IS NULL OR seed IS NULL THEN
        RAISE EXCEPTION 'feature_group, label and seed must not be NULL' USING ERRCODE = '22023';
    END IF;
    SELECT array_agg(a.attname::text ORDER BY a.attnum) INTO cols
      FROM pg_attribute a
     WHERE a.attrelid = feature_group AND a.attnum > 0 AND NOT a.attisdropped;
    IF NOT label = ANY (cols) THEN
        RAISE EXCEPTION 'label "%" is not a column of %', label, feature_group
            USING ERRCODE = '42703', HINT = 'Columns: ' || array_to_string(cols, ', ') || '.';
    END IF;
    IF label = 'split' THEN
        RAISE EXCEPTION 'the label cannot be named "split": training datasets add a "split" column'
            USING ERRCODE = '22023';
    END IF;
    SELECT array_agg(a.attname::text ORDER BY array_position(i.indkey::int2[], a.attnum)) INTO pk
      FROM pg_index i JOIN pg_attribute a ON a.attrelid = i.indrelid AND a.attnum = ANY (i.indkey)
     WHERE i.indrelid = feature_group AND i.indisprimary;
    IF pk IS NULL THEN
        RAISE EXCEPTION '% has no primary key', feature_group
            USING ERRCODE = '22023',
                  DETAIL = 'Splits are decided by a seeded hash of each row''s primary key, so that they do not depend on row order.';
    END IF;
    feats := coalesce(features, array_remove(cols, label));
    IF cardinality(feats) = 0 THEN
        RAISE EXCEPTION 'no features to copy' USING ERRCODE = '22023';
    END IF;
    FOREACH f IN ARRAY feats LOOP
        IF NOT f = ANY (cols) THEN
            RAISE EXCEPTION 'feature "%" is not a column of %', f, feature_group
                USING ERRCODE = '42703', HINT = 'Columns: ' || array_to_string(cols, ', ') || '.';
        END IF;
        IF f = label OR f = 'split' THEN
            RAISE EXCEPTION 'feature "%" cannot be copied as a feature', f USING ERRCODE = '22023',
                HINT = 'The label is copied by itself; "split" is added by the training dataset.';
        END IF;
    END LOOP;
    -- the primary key travels with the rows, for lineage and evaluation by key
    FOREACH f IN ARRAY pk LOOP
        IF NOT f = ANY (feats) THEN
            feats := f || feats;
        END IF;
    END LOOP;

    IF splits IS NULL OR jsonb_typeof(splits) <> 'object' THEN
        RAISE EXCEPTION 'splits must be a JSON object of fractions, like {"train": 0.8, "test": 0.2}'
            USING ERRCODE = '22023';
    END IF;
    FOR k IN SELECT jsonb_object_keys(splits) LOOP
        IF k !~ '^[a-z][a-z0-9_]{0,30}$' THEN
            RAISE EXCEPTION 'invalid split name "%"', k USING ERRCODE = '22023';
        END IF;
        IF jsonb_typeof(splits->k) <> 'number' OR (splits->>k)::numeric <= 0 THEN
            RAISE EXCEPTION 'split "%" must have a positive fraction, not %', k, splits->k
                USING ERRCODE = '22023';
        END IF;
        total := total + (splits->>k)::numeric;
    END LOOP;
    IF NOT splits ? 'train' THEN
        RAISE EXCEPTION 'splits must include "train"' USING ERRCODE = '22023';
    END IF;
    IF abs(total - 1) > 1e-9 THEN
        RAISE EXCEPTION 'split fractions sum to %, not 1', total USING ERRCODE = '22023';
    END IF;

    IF v IS NULL THEN
        SELECT coalesce(max(t.version), 0) + 1 INTO v FROM iceml.training_datasets t WHERE t.name = create_training_dataset.name;
    ELSIF v < 1 THEN
        RAISE EXCEPTION 'version must be positive, not %', v USING ERRCODE = '22023';
    ELSIF EXISTS (SELECT FROM iceml.training_datasets t WHERE t.name = create_training_dataset.name AND t.version = v) THEN
        RAISE EXCEPTION 'training dataset "%" version % already exists', name, v USING ERRCODE = '42710';
    END IF;
    EXECUTE format('SELECT count(*) FROM %s', feature_group) INTO n;
    IF n = 0 THEN
        RAISE EXCEPTION '% is empty', feature_group USING ERRCODE = '22023';
    END IF;

    -- stratified: within each label, rows ordered by a seeded hash of the
    -- primary key are cut at the cumulative fractions (splits in name order)
    split_names := ARRAY(SELECT jsonb_object_keys(splits) ORDER BY 1);
    FOREACH k IN ARRAY split_names LOOP
        cum := cum + (splits->>k)::numeric;
        bounds := bounds || format(' WHEN r.k < round(%s * r.n) THEN %L', cum, k);
    END LOOP;
    tbl := format('%I.%I', 'iceml_td', name || '_' || v);
    EXECUTE format(
        'CREATE TABLE %s AS
         SELECT %s, r.%I, CASE %s ELSE %L END AS split
           FROM (SELECT s.*,
                        row_number() OVER (PARTITION BY s.%I ORDER BY md5(%L || row(%s)::text)) - 1 AS k,
                        count(*) OVER (PARTITION BY s.%I) AS n
                   FROM %s s) r',
        tbl,
        (SELECT string_agg(format('r.%I', c), ', ') FROM unnest(feats) c),
        label, bounds, split_names[cardinality(split_names)],
        label, seed::text || ':',
        (SELECT string_agg(format('s.%I', c), ', ') FROM unnest(pk) c),
        label, feature_group);
    rel := tbl::regclass;
    EXECUTE format('ALTER TABLE %s ADD PRIMARY KEY (%s)', rel,
                   (SELECT string_agg(format('%I', c), ', ') FROM unnest(pk) c));
    EXECUTE format('CREATE INDEX ON %s (split)', rel);
    EXECUTE format('SELECT jsonb_object_agg(split, c) FROM (SELECT split, jsonb_object_agg(coalesce(l::text, ''null''), n) AS c
                      FROM (SELECT split, %I AS l, count(*) AS n FROM %s GROUP BY 1, 2) x GROUP BY split) y',
                   label, rel) INTO counts;

    INSERT INTO iceml.training_datasets (name, version, relation, feature_group, primary_key, label,
                                         features, splits, seed, row_counts, source_rows)
    VALUES (name, v, rel, feature_group, pk, label, array_remove(feats, label), splits, seed, counts, n);
    RETURN rel;
END
$$;
COMMENT ON FUNCTION iceml.create_training_dataset(text, regclass, text, text[], jsonb, int, int) IS
    'materialises a versioned training dataset iceml_td.<name>_<version> with a deterministic, label-stratified split column, and records its lineage';
GRANT EXECUTE ON FUNCTION iceml.create_training_dataset(text, regclass, text, text[], jsonb, int, int) TO iceml_user;
