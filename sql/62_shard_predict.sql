--
-- The shippable form of iceml_predict (src/shard/shipped_model.c): predict_model
-- by a model's content hash, and receive_model, which a coordinator calls
-- on its nodes.  Queries over sharded groups, the EXPLAIN of their remote
-- SQL and the copies on the nodes are in test/tap/80_shard.pl.
--
SET client_min_messages = warning;
\set SHOW_CONTEXT never
\set VERBOSITY terse
CREATE ROLE sp_reader IN ROLE iceml_reader;

-- two seeded models of tiny_cnn
CREATE FUNCTION sp_model(seed int) RETURNS bigint LANGUAGE sql AS $$
    INSERT INTO iceml.models (id, experiment, architecture, spec, parameters, channels, normalisation,
                              metrics, training_dataset, lineage, weights, owner)
    SELECT 910000 + seed, 'sp', 'tiny_cnn', a.spec, a.parameters, '{band_1,band_2,band_avg}',
           '{"mean": [-20, -28, -24], "std": [4, 2, 3]}', '{"log_loss": 0.5}', NULL, '{}',
           iceml._untrained_weights(a.spec::text, seed, '{-20,-28,-24}', '{4,2,3}'), current_user
      FROM iceml.architectures a WHERE a.name = 'tiny_cnn'
    RETURNING id
$$;
SELECT sp_model(1) AS m1 \gset
SELECT sp_model(2) AS m2 \gset
SELECT decode(iceml._model_content_hash(weights, channels), 'hex') AS h1 FROM iceml.models WHERE id = :m1 \gset
SELECT decode(iceml._model_content_hash(weights, channels), 'hex') AS h2 FROM iceml.models WHERE id = :m2 \gset
-- the hash is SHA-256 of the net and its channels: 64 hex digits, one per content
SELECT length(iceml._model_content_hash(weights, channels)) AS hex_digits FROM iceml.models WHERE id = :m1;
SELECT :'h1' <> :'h2' AS contents_differ;
CREATE TEMP TABLE sp_chips AS SELECT * FROM iceml.synthesize_statoil(8, 21);
GRANT SELECT ON sp_chips TO sp_reader;
\set nohash '\\x' '0000000000000000000000000000000000000000000000000000000000000000'

-- on the server that has the model, predict_model is iceml_predict by id
SELECT count(*) FILTER (WHERE iceml.predict_model(:m1, :'h1', band_1, band_2, inc_angle)
                              = iceml_predict(:m1, band_1, band_2, inc_angle)) AS same, count(*) AS n
  FROM sp_chips;
SELECT provolatile, proparallel FROM pg_proc WHERE oid = 'iceml.predict_model'::regproc;
-- NULL model or bands give NULL, as iceml_predict
SELECT iceml.predict_model(NULL, :'h1', band_1, band_2) IS NULL AS null_id,
       iceml.predict_model(:m1, NULL, band_1, band_2) IS NULL AS null_hash,
       iceml.predict_model(:m1, :'h1', NULL, band_2) IS NULL AS null_band
  FROM sp_chips LIMIT 1;

-- errors: a hash that is not 32 bytes, a content no model here has, a
-- model id whose weights are other than the hash says, a bad angle or band
SELECT iceml.predict_model(:m1, '\x0102', band_1, band_2) FROM sp_chips LIMIT 1;
SELECT iceml.predict_model(999999, :'nohash', band_1, band_2) FROM sp_chips LIMIT 1;
SELECT iceml.predict_model(:m1, :'nohash', band_1, band_2) FROM sp_chips LIMIT 1;
SELECT iceml.predict_model(:m1, :'h1', band_1, band_2, 95) FROM sp_chips LIMIT 1;
SELECT iceml.predict_model(:m1, :'h1', band_1[1:100], band_2) FROM sp_chips LIMIT 1;
\set VERBOSITY default
SELECT iceml.predict_model(:m1, :'nohash', band_1, band_2) FROM sp_chips LIMIT 1;
\set VERBOSITY terse

-- ---- receive_model: what a node stores --------------------------------------
-- a copy under its content hash, checked, once
SELECT iceml.receive_model(:m2, encode(:'h2', 'hex'), weights, channels) = encode(:'h2', 'hex') AS received
  FROM iceml.models WHERE id = :m2;
SELECT iceml.receive_model(:m2, encode(:'h2', 'hex'), weights, channels) = encode(:'h2', 'hex') AS again
  FROM iceml.models WHERE id = :m2;
SELECT model_id = :m2 AS same_id, bytes = (SELECT octet_length(weights) FROM iceml.models WHERE id = :m2) AS same_bytes,
       channels, received_by
  FROM iceml.shipped_models;
-- the copy answers for its hash even under another id (the id only names it in errors)
DELETE FROM iceml.models WHERE id = :m2;
SELECT count(*) FILTER (WHERE iceml.predict_model(424242, :'h2', band_1, band_2) IS NOT NULL) AS from_the_copy
  FROM sp_chips;
-- refused: weights that do not hash to the name given, a blob that is not a
-- net, channels iceml_predict cannot build, NULLs; nothing stored
SELECT iceml.receive_model(:m1, repeat('ab', 32), weights, channels) FROM iceml.models WHERE id = :m1;
SELECT iceml.receive_model(:m1, 'ab', '\x00010203', '{band_1}');
SELECT iceml.receive_model(:m1, repeat('cd', 32), weights, '{band_1,band_2,hh}')
  FROM iceml.models WHERE id = :m1;
SELECT iceml.receive_model(:m1, NULL, weights, channels) FROM iceml.models WHERE id = :m1;
SELECT count(*) AS copies FROM iceml.shipped_models;

-- who may do what: readers predict by content and see which copies there
-- are, never their weights; only iceml_user members receive
SET ROLE sp_reader;
SELECT count(*) FILTER (WHERE iceml.predict_model(:m1, :'h1', band_1, band_2) IS NOT NULL) AS reader_predicts
  FROM sp_chips;
SELECT count(*) AS reader_sees FROM iceml.shipped_models;
SELECT weights FROM iceml.shipped_models;
SELECT iceml.receive_model(1, encode(:'h1', 'hex'), '\x00', '{band_1}');
RESET ROLE;

-- the planner rewrite applies to queries over sharded groups only: here a
-- plain table keeps iceml_predict as it is
SELECT iceml.deploy('sp', :m1) = :m1 AS deployed;
EXPLAIN (VERBOSE, COSTS OFF) SELECT iceml_predict('sp', band_1, band_2) FROM sp_chips;
SHOW iceml.shard_predict;

DROP TABLE sp_chips;
DELETE FROM iceml.shipped_models;
DROP FUNCTION sp_model(int);
DROP OWNED BY sp_reader;
DROP ROLE sp_reader;
