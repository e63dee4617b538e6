-- Mutation fuzzing of the expectation-document parser (src/featurestore/expectations.c).
--
-- That parser walks PostgreSQL's Jsonb and resolves types, collations,
-- regular expressions and input functions in the server, so it cannot be
-- linked into a libFuzzer binary the way the plain-C parsers are (see
-- test/fuzz/).  It is fuzzed here instead, in the server it runs in:
-- seeded random mutations of valid documents (values of every JSON type
-- and extreme numbers put anywhere, keys deleted and added, names swapped)
-- go through iceml.add_expectation(), and every accepted document then
-- checks random rows.  Whatever the document, the answer must be acceptance
-- or a clean error of the documented kinds (22023 naming the JSON path of the
-- fault; 22P02/22003/2201B/42704 for values that do not fit the feature's
-- type), never an internal error and never a crash (pg_prove would see the
-- connection die).  The seed makes a failure reproducible.
BEGIN;
SELECT plan(6);
SET client_min_messages = error;
SELECT setseed(0.1414);

SELECT iceml.create_feature_group('fuzz_exp',
    '[{"name":"id","type":"text"},{"name":"band","type":"real[]"},{"name":"angle","type":"real"},
      {"name":"label","type":"smallint"},{"name":"n","type":"bigint"},{"name":"flag","type":"boolean"},
      {"name":"day","type":"date"},{"name":"x","type":"double precision"},{"name":"code","type":"varchar(5)"},
      {"name":"nums","type":"numeric[]"}]', ARRAY['id'], validation => 'STRICT', statistics => false);

-- the words the parser knows, so that mutations reach past the first check
CREATE TEMP TABLE fuzz_words AS SELECT unnest(ARRAY[
    'name', 'features', 'rules', 'level', 'min', 'max', 'value', 'accepted_type', 'legal_values',
    'pattern', 'description', 'HAS_MIN', 'HAS_MAX', 'HAS_DATATYPE', 'HAS_COMPLETENESS',
    'IS_CONTAINED_IN', 'HAS_PATTERN', 'HAS_LENGTH', 'IS_FINITE', 'HAS_MEAN', 'HAS_STDDEV',
    'HAS_UNIQUENESS', 'ERROR', 'WARNING', 'Integral', 'Fractional', 'String', 'Boolean', 'Array',
    'id', 'band', 'angle', 'label', 'n', 'flag', 'day', 'x', 'code', 'nums', '^[a-z]+$', '(', '[[:alpha:]',
    '2020-01-01', 'error', '', 'ünïcödé', 'a.b', '"quoted"']) AS w;

CREATE FUNCTION pg_temp.word() RETURNS text LANGUAGE sql VOLATILE AS
$$SELECT w FROM fuzz_words ORDER BY random() LIMIT 1$$;

CREATE FUNCTION pg_temp.rnd_value(depth int) RETURNS jsonb LANGUAGE plpgsql VOLATILE AS $$
DECLARE
    k int := floor(random() * 16);
BEGIN
    IF depth <= 0 AND k >= 12 THEN
        k := k - 8;
    END IF;
    RETURN CASE k
        WHEN 0 THEN 'null'::jsonb
        WHEN 1 THEN to_jsonb(random() < 0.5)
        WHEN 2 THEN to_jsonb((ARRAY[0, -1, 1, 2, 32767, 2147483648, -9223372036854775808])[1 + floor(random() * 7)::int])
        WHEN 3 THEN (ARRAY['1e308', '-1e308', '1e-320', '0.5', '-0', '1e1000', '123456789012345678901234567890'])[1 + floor(random() * 7)::int]::jsonb
        WHEN 4 THEN to_jsonb(pg_temp.word())
        WHEN 5 THEN to_jsonb(pg_temp.word())
        WHEN 6 THEN to_jsonb(repeat(pg_temp.word(), 1 + floor(random() * 300)::int))
        WHEN 7 THEN to_jsonb(random() * 200 - 100)
        WHEN 8 THEN '""'::jsonb
        WHEN 9 THEN '[]'::jsonb
        WHEN 10 THEN '{}'::jsonb
        WHEN 11 THEN to_jsonb(floor(random() * 10)::int)
        WHEN 12 THEN jsonb_build_array(pg_temp.rnd_value(depth - 1), pg_temp.rnd_value(depth - 1))
        WHEN 13 THEN jsonb_build_object(pg_temp.word(), pg_temp.rnd_value(depth - 1))
        WHEN 14 THEN jsonb_build_array(pg_temp.rnd_value(depth - 1))
        ELSE jsonb_build_object(pg_temp.word(), pg_temp.rnd_value(depth - 1), pg_temp.word(), pg_temp.rnd_value(depth - 1))
    END;
END
$$;

-- one random mutation somewhere in doc
CREATE FUNCTION pg_temp.mutate(doc jsonb) RETURNS jsonb LANGUAGE plpgsql VOLATILE AS $$
DECLARE
    p text[];
    v jsonb;
    k int := floor(random() * 6);
BEGIN
    WITH RECURSIVE t(path, v) AS (
        SELECT ARRAY[]::text[], doc
        UNION ALL
        SELECT t.path || x.k, x.e
          FROM t, LATERAL (
                SELECT key, value FROM jsonb_each(CASE WHEN jsonb_typeof(t.v) = 'object' THEN t.v ELSE '{}' END)
                UNION ALL
                SELECT (o - 1)::text, value
                  FROM jsonb_array_elements(CASE WHEN jsonb_typeof(t.v) = 'array' THEN t.v ELSE '[]' END)
                       WITH ORDINALITY a(value, o)) x(k, e))
    SELECT path, t.v INTO p, v FROM t ORDER BY random() LIMIT 1;
    IF cardinality(p) = 0 THEN
        RETURN CASE WHEN k < 2 THEN pg_temp.rnd_value(2) ELSE doc END;
    END IF;
    RETURN CASE k
        WHEN 0 THEN doc #- p
        WHEN 1 THEN jsonb_set(doc, p, pg_temp.rnd_value(2))
        WHEN 2 THEN jsonb_set(doc, p, to_jsonb(pg_temp.word()))
        WHEN 3 THEN CASE WHEN jsonb_typeof(v) = 'object' THEN jsonb_set(doc, p, v || jsonb_build_object(pg_temp.word(), pg_temp.rnd_value(1)))
                         WHEN jsonb_typeof(v) = 'array' THEN jsonb_set(doc, p, v || jsonb_build_array(pg_temp.rnd_value(1)))
                         ELSE jsonb_set(doc, p, pg_temp.rnd_value(1)) END
        WHEN 4 THEN jsonb_set(doc, p, jsonb_build_array(v, v))
        ELSE jsonb_set(doc, p, pg_temp.rnd_value(0))
    END;
END
$$;

CREATE TEMP TABLE fuzz_seeds (doc jsonb);
INSERT INTO fuzz_seeds VALUES
 ('{"name":"e1","features":["label","n"],"rules":[{"name":"HAS_MIN","level":"ERROR","min":0},{"name":"HAS_MAX","level":"WARNING","max":1},{"name":"HAS_DATATYPE","accepted_type":"Integral"}]}'),
 ('{"name":"e2","features":["band"],"rules":[{"name":"IS_FINITE"},{"name":"HAS_LENGTH","value":3},{"name":"HAS_MIN","min":-50},{"name":"HAS_MEAN","min":-40,"max":0}]}'),
 ('{"name":"e3","features":["id","code"],"rules":[{"name":"HAS_PATTERN","pattern":"^[a-z0-9]+$"},{"name":"HAS_LENGTH","min":1,"max":5},{"name":"HAS_UNIQUENESS","min":1}]}'),
 ('{"name":"e4","features":["angle","x"],"rules":[{"name":"HAS_COMPLETENESS","min":0.5},{"name":"HAS_STDDEV","max":10},{"name":"IS_CONTAINED_IN","legal_values":[1.5,2,3e0]}]}'),
 ('{"name":"e5","features":["flag"],"rules":[{"name":"HAS_COMPLETENESS","level":"ERROR"},{"name":"IS_CONTAINED_IN","legal_values":[true]}]}'),
 ('{"name":"e7","features":["day"],"rules":[{"name":"IS_CONTAINED_IN","legal_values":["2020-01-01","2020-01-02"]},{"name":"HAS_COMPLETENESS","min":0.9}]}'),
 ('{"name":"e6","description":"d","features":["nums"],"rules":[{"name":"HAS_DATATYPE","accepted_type":"Array"},{"name":"HAS_MIN","min":-1e300},{"name":"HAS_LENGTH","min":0,"max":2}]}');

CREATE TEMP TABLE fuzz_outcome (i int, what text, doc jsonb, sqlstate text, message text);

DO $fuzz$
DECLARE
    doc jsonb;
    st text;
    msg text;
    fg regclass := 'iceml_fs.fuzz_exp_1';
    rows_st text[];
    rows_msg text[];
BEGIN
    FOR i IN 1 .. 4000 LOOP
        rows_st := '{}';
        rows_msg := '{}';
        SELECT s.doc INTO doc FROM fuzz_seeds s ORDER BY random() LIMIT 1;
        FOR m IN 1 .. 1 + floor(random() * 3)::int LOOP
            doc := pg_temp.mutate(doc);
        END LOOP;
        BEGIN
            PERFORM iceml.add_expectation(fg, doc);
            -- accepted: rows of random values go through its rules
            FOR r IN 1 .. 3 LOOP
                BEGIN
                    INSERT INTO iceml_fs.fuzz_exp_1
                    SELECT 'r' || i || '_' || r,
                           CASE WHEN random() < 0.2 THEN NULL
                                ELSE (SELECT array_agg(CASE WHEN random() < 0.05 THEN 'NaN'::real ELSE (random() * 100 - 50)::real END)
                                        FROM generate_series(1, floor(random() * 5)::int)) END,
                           CASE WHEN random() < 0.2 THEN NULL WHEN random() < 0.1 THEN 'Infinity'::real ELSE random()::real * 90 END,
                           floor(random() * 3)::smallint, floor(random() * 1e6)::bigint, random() < 0.5,
                           date '2020-01-01' + floor(random() * 3)::int, random() * 10,
                           substr(md5(random()::text), 1, floor(random() * 6)::int),
                           ARRAY[round((random() * 4 - 2)::numeric, 3)];
                    rows_st := rows_st || '00000'::text;
                    rows_msg := rows_msg || NULL::text;
                EXCEPTION WHEN OTHERS THEN
                    GET STACKED DIAGNOSTICS st = RETURNED_SQLSTATE, msg = MESSAGE_TEXT;
                    rows_st := rows_st || st;
                    rows_msg := rows_msg || msg;
                END;
            END LOOP;
            RAISE EXCEPTION 'undo' USING ERRCODE = 'IC001';
        EXCEPTION WHEN OTHERS THEN
            GET STACKED DIAGNOSTICS st = RETURNED_SQLSTATE, msg = MESSAGE_TEXT;
            INSERT INTO fuzz_outcome VALUES (i, 'document', doc,
                CASE st WHEN 'IC001' THEN 'accepted' ELSE st END, msg);
        END;
        -- (the rows' outcomes outlive the undone subtransaction in arrays)
        INSERT INTO fuzz_outcome SELECT i, 'row', doc, u.st, u.msg
          FROM unnest(rows_st, rows_msg) u(st, msg);
    END LOOP;
END
$fuzz$;

SELECT is((SELECT count(*) FROM fuzz_outcome WHERE what = 'document'), 4000::bigint,
          'every mutated document got an answer');
SELECT is_empty($$SELECT i, doc, sqlstate, message FROM fuzz_outcome
                   WHERE sqlstate LIKE 'XX%' OR sqlstate LIKE '58%'$$,
                'no document and no row leads to an internal error');
SELECT is_empty($$SELECT i, doc, sqlstate, message FROM fuzz_outcome
                   WHERE what = 'document' AND sqlstate NOT IN ('accepted', '22023', '22P02', '22003', '22007', '22008', '2201B', '42704')$$,
                'a refused document fails with one of the documented SQLSTATEs');
SELECT is_empty($$SELECT i, doc, message FROM fuzz_outcome
                   WHERE what = 'document' AND sqlstate = '22023'
                     AND message !~ '^invalid (expectation|feature) at \$|must not be NULL|already'$$,
                'a 22023 refusal names the JSON path of the fault');
SELECT is_empty($$SELECT i, doc, sqlstate, message FROM fuzz_outcome
                   WHERE what = 'row' AND sqlstate NOT IN ('00000', '23514', '23505')$$,
                'rows checked by an accepted document pass or are blocked with 23514');
-- the mutations reach both answers: some documents pass, most are refused
SELECT ok((SELECT count(*) FILTER (WHERE sqlstate = 'accepted') BETWEEN 100 AND 3900
               AND count(*) FILTER (WHERE sqlstate = '23514') > 0
             FROM fuzz_outcome),
          'mutated documents are sometimes accepted, mostly refused, and some rows are blocked');

SELECT * FROM finish();
ROLLBACK;
