-- Training datasets: deterministic, label-stratified, versioned splits.
SET client_min_messages = warning;
\set SHOW_CONTEXT never
CREATE TABLE public.td_source (id int PRIMARY KEY, x real, band_1 real[], label smallint);
INSERT INTO public.td_source
SELECT i, i::real / 10, ARRAY[i, -i]::real[], (i % 3 = 0)::int::smallint FROM generate_series(1, 300) i;

SELECT iceml.create_training_dataset('td', 'public.td_source', 'label',
                                     splits => '{"train": 0.7, "validation": 0.1, "test": 0.2}');
-- per split and label: within one row of the exact fractions (100 positives, 200 negatives)
SELECT split, label, count(*) FROM iceml_td.td_1 GROUP BY 1, 2 ORDER BY 1, 2;
SELECT name, version, relation, feature_group, primary_key, label, features, seed, row_counts, source_rows
  FROM iceml.training_datasets;

-- the same seed gives the same split whatever the physical row order
CREATE TABLE public.td_shuffled (LIKE public.td_source INCLUDING ALL);
INSERT INTO public.td_shuffled SELECT * FROM public.td_source ORDER BY md5(id::text);
SELECT iceml.create_training_dataset('td_shuffled', 'public.td_shuffled', 'label',
                                     splits => '{"train": 0.7, "validation": 0.1, "test": 0.2}');
SELECT count(*) AS rows_split_differently
  FROM iceml_td.td_1 a JOIN iceml_td.td_shuffled_1 b USING (id) WHERE a.split <> b.split;
-- the next version with another seed differs
SELECT iceml.create_training_dataset('td', 'public.td_source', 'label', features => ARRAY['x'], seed => 7);
SELECT count(*) > 0 AS other_seed_other_split
  FROM iceml_td.td_1 a JOIN iceml_td.td_2 b USING (id) WHERE a.split <> b.split;
SELECT attname FROM pg_attribute WHERE attrelid = 'iceml_td.td_2'::regclass AND attnum > 0 ORDER BY attnum;

-- every malformed argument
SELECT iceml.create_training_dataset('Bad Name', 'public.td_source', 'label');
\echo :LAST_ERROR_SQLSTATE
SELECT iceml.create_training_dataset('td', 'public.td_source', 'nope');
\echo :LAST_ERROR_SQLSTATE
SELECT iceml.create_training_dataset('td', 'public.td_source', 'label', features => ARRAY['x', 'nope']);
\echo :LAST_ERROR_SQLSTATE
SELECT iceml.create_training_dataset('td', 'public.td_source', 'label', splits => '{"train": 0.7, "test": 0.2}');
\echo :LAST_ERROR_SQLSTATE
SELECT iceml.create_training_dataset('td', 'public.td_source', 'label', splits => '{"test": 1}');
\echo :LAST_ERROR_SQLSTATE
SELECT iceml.create_training_dataset('td', 'public.td_source', 'label', splits => '{"train": 1.2, "test": -0.2}');
\echo :LAST_ERROR_SQLSTATE
SELECT iceml.create_training_dataset('td', 'public.td_source', 'label', splits => '[0.8, 0.2]');
\echo :LAST_ERROR_SQLSTATE
SELECT iceml.create_training_dataset('td', 'public.td_source', 'label', version => 1);
\echo :LAST_ERROR_SQLSTATE
CREATE TABLE public.td_nokey (id int, label int);
SELECT iceml.create_training_dataset('td', 'public.td_nokey', 'label');
\echo :LAST_ERROR_SQLSTATE
CREATE TABLE public.td_empty (id int PRIMARY KEY, label int);
SELECT iceml.create_training_dataset('td', 'public.td_empty', 'label');
\echo :LAST_ERROR_SQLSTATE
