-- The privilege matrix: every function of the extension and every catalog
-- table, for each of iceml's roles and for a login role with none of them.
-- A function is executable by the lowest role named below and the roles
-- above it, by nobody when it is internal (its name starts with "_": no
-- exception); users
-- never write catalog tables (iceml writes them as their owner), except
-- clearing their own quarantined records.
BEGIN;
SELECT plan(14);
SET client_min_messages = error;

CREATE TEMP TABLE expected_fn (fn text PRIMARY KEY, lowest text NOT NULL);
INSERT INTO expected_fn VALUES
    ('iceml_predict(text,real[],real[],real)', 'iceml_reader'),
    ('iceml_predict(bigint,real[],real[],real)', 'iceml_reader'),
    ('iceml.version()', 'iceml_reader'),
    ('iceml.band_avg(real[],real[])', 'iceml_reader'),
    ('iceml.to_linear(real[])', 'iceml_reader'),
    ('iceml.to_db(real[])', 'iceml_reader'),
    ('iceml.standardize(real[])', 'iceml_reader'),
    ('iceml.lee_filter(real[],integer)', 'iceml_reader'),
    ('iceml.band_stats(real[])', 'iceml_reader'),
    ('iceml.plot_chip(real[])', 'iceml_reader'),
    ('iceml.svg_text(text)', 'iceml_reader'),
    ('iceml.plot_xy(text,text,text,jsonb,jsonb)', 'iceml_reader'),
    ('iceml.plot_learning_curve(bigint)', 'iceml_reader'),
    ('iceml.plot_roc(text,regclass,text)', 'iceml_reader'),
    ('iceml.plot_study(bigint)', 'iceml_reader'),
    ('iceml.plot_pipeline(bigint)', 'iceml_reader'),
    ('iceml.wait(bigint,interval)', 'iceml_reader'),
    ('iceml.predict_cache()', 'iceml_reader'),
    ('iceml.predict_cache_reset()', 'iceml_reader'),
    ('iceml.evaluate(text,regclass,text)', 'iceml_reader'),
    ('iceml.evaluate(bigint,regclass,text)', 'iceml_reader'),
    ('iceml.split_predictions(anyelement,regclass,text)', 'iceml_reader'),
    ('iceml.evaluate_slices(text,regclass,text,integer,text)', 'iceml_reader'),
    ('iceml.what_if(text,real[],real[],real,jsonb)', 'iceml_reader'),
    ('iceml.create_feature_group(text,jsonb,text[],integer,text,jsonb,text,boolean,integer,text[])', 'iceml_user'),
    ('iceml.add_node(text,text)', 'iceml_admin'),
    ('iceml.drop_node(text)', 'iceml_admin'),
    ('iceml.shard_statistics(regclass)', 'iceml_user'),
    ('iceml.receive_model(bigint,text,bytea,text[])', 'iceml_user'),
    ('iceml.receive_trial_data(text,jsonb)', 'iceml_user'),
    ('iceml.run_trial(text,regclass,text,jsonb,jsonb,text,text,text,jsonb,integer,integer[])', 'iceml_user'),
    ('iceml.release_trial(bigint,integer)', 'iceml_user'),
    ('iceml.adopt_trial(bigint)', 'iceml_user'),
    ('iceml.forget_trial(bigint)', 'iceml_user'),
    ('iceml.drop_shipped_models(text[])', 'iceml_user'),
    ('iceml.cleanup_shipped_models(text)', 'iceml_admin'),
    ('iceml.hand_over_inferences(bigint)', 'iceml_user'),
    ('iceml.collect_inferences(text)', 'iceml_user'),
    ('iceml.predict_model(bigint,bytea,real[],real[],real)', 'iceml_reader'),
    ('iceml.shard_histogram(regclass,text[],text[],double precision[],double precision[])', 'iceml_user'),
    ('iceml.drop_feature_group(regclass,boolean)', 'iceml_user'),
    ('iceml.add_expectation(regclass,jsonb)', 'iceml_user'),
    ('iceml.drop_expectation(regclass,text)', 'iceml_user'),
    ('iceml.set_validation(regclass,text)', 'iceml_user'),
    ('iceml.compute_statistics(regclass)', 'iceml_user'),
    ('iceml.create_training_dataset(text,regclass,text,text[],jsonb,integer,integer)', 'iceml_user'),
    ('iceml.ingest_statoil(regclass,text,text,text)', 'iceml_user'),
    ('iceml.synthesize_statoil(integer,integer)', 'iceml_user'),
    ('iceml.create_architecture(text,jsonb)', 'iceml_user'),
    ('iceml.train(text,regclass,text,jsonb)', 'iceml_user'),
    ('iceml.cancel(bigint)', 'iceml_user'),
    ('iceml.resume(bigint)', 'iceml_user'),
    ('iceml.tune(text,regclass,text,jsonb,text,integer,integer,text,jsonb,text[])', 'iceml_user'),
    ('iceml.ablation_study(text,regclass,text,jsonb,jsonb,integer)', 'iceml_user'),
    ('iceml.deploy(text,text,boolean)', 'iceml_user'),
    ('iceml.deploy(text,bigint,boolean)', 'iceml_user'),
    ('iceml.deploy_ensemble(text,bigint[],boolean)', 'iceml_user'),
    ('iceml.predict_table(text,regclass,text,text,text,text)', 'iceml_reader'),
    ('iceml.predict_table(bigint,regclass,text,text,text,text)', 'iceml_reader'),
    ('iceml.predict_batch(text,real[],real[],real[])', 'iceml_reader'),
    ('iceml.predict_batch(bigint,real[],real[],real[])', 'iceml_reader'),
    ('iceml.transfer_deployment(text,regrole)', 'iceml_user'),
    ('iceml.monitor(text,interval,double precision,integer)', 'iceml_user'),
    ('iceml.run_pipeline(text,jsonb)', 'iceml_user'),
    ('iceml.schedule_pipeline(text,text,jsonb)', 'iceml_user'),
    ('iceml.unschedule_pipeline(text)', 'iceml_user'),
    ('iceml.run_scheduled_pipeline(text)', 'iceml_user'),
    ('iceml.inference_log_status()', 'iceml_user'),
    ('iceml.binary_metrics(real[],real[],double precision)', 'iceml_reader'),
    ('iceml.dataset_columns(regclass,text)', 'iceml_reader'),
    ('iceml.deployed_model(text)', 'iceml_reader'),
    ('iceml.edit_chip(real[],jsonb,real)', 'iceml_reader'),
    ('iceml.psi(double precision[],double precision[],double precision[])', 'iceml_user'),
    ('iceml.drift_reference(regclass,text)', 'iceml_user');

CREATE TEMP TABLE fns AS
SELECT p.oid, p.oid::regprocedure::text AS fn, p.proname::text AS name
  FROM pg_depend d JOIN pg_proc p ON p.oid = d.objid
 WHERE d.classid = 'pg_proc'::regclass AND d.refclassid = 'pg_extension'::regclass
   AND d.refobjid = (SELECT oid FROM pg_extension WHERE extname = 'iceml') AND d.deptype = 'e';

DROP ROLE IF EXISTS tap_priv_login;
CREATE ROLE tap_priv_login LOGIN;
CREATE TEMP TABLE roles (r text, rank int);
INSERT INTO roles VALUES ('tap_priv_login', 0), ('iceml_reader', 1), ('iceml_user', 2), ('iceml_admin', 3);

SELECT is((SELECT string_agg(e.fn, ', ') FROM expected_fn e WHERE NOT EXISTS (SELECT FROM fns f WHERE f.fn = e.fn)),
          NULL, 'every function of the matrix exists');
SELECT is((SELECT string_agg(f.fn, ', ') FROM fns f
            WHERE NOT EXISTS (SELECT FROM expected_fn e WHERE e.fn = f.fn) AND f.name NOT LIKE '\_%'),
          NULL, 'every public function of the extension is in the matrix');
SELECT is((SELECT string_agg(f.fn || ' by ' || ro.r, ', ' ORDER BY f.fn, ro.rank)
             FROM fns f JOIN expected_fn e USING (fn) CROSS JOIN roles ro
            WHERE has_function_privilege(ro.r, f.oid, 'EXECUTE')
                  IS DISTINCT FROM (ro.rank >= (SELECT rank FROM roles WHERE r = e.lowest))),
          NULL, 'each function is executable by exactly its roles (iceml_reader < iceml_user < iceml_admin; none for a plain login role)');
SELECT is((SELECT string_agg(f.fn || ' by ' || ro.r, ', ' ORDER BY f.fn, ro.rank)
             FROM fns f CROSS JOIN roles ro
            WHERE f.name LIKE '\_%' AND NOT EXISTS (SELECT FROM expected_fn e WHERE e.fn = f.fn)
              AND has_function_privilege(ro.r, f.oid, 'EXECUTE')),
          NULL, 'no role executes an internal function (implementations of gates, queue, studies, deployment)');
SELECT is((SELECT count(*)::int FROM fns f JOIN pg_proc p ON p.oid = f.oid
            WHERE p.prosecdef), 0, 'no SECURITY DEFINER function: gates switch user in C, with a pinned search_path');
SELECT is((SELECT string_agg(f.fn, ', ') FROM fns f JOIN pg_proc p ON p.oid = f.oid
            WHERE p.prolang = (SELECT oid FROM pg_language WHERE lanname = 'plpgsql')
              AND NOT coalesce(p.proconfig @> ARRAY['search_path=pg_catalog, pg_temp'], false)),
          NULL, 'every plpgsql function runs under search_path = pg_catalog, pg_temp');

-- gates: the C function iceml_gate runs iceml._<name> with the same argument
-- types; the declarations are written twice (the API and the implementation)
-- and must say the same: names, defaults, result, set-returning
SELECT is((SELECT string_agg(g.oid::regprocedure::text, ', ' ORDER BY 1)
             FROM pg_proc g JOIN pg_namespace n ON n.oid = g.pronamespace
            WHERE g.prolang = (SELECT oid FROM pg_language WHERE lanname = 'c') AND g.prosrc = 'iceml_gate'
              AND NOT EXISTS (SELECT FROM pg_proc i
                               WHERE i.pronamespace = g.pronamespace AND i.proname = '_' || g.proname
                                 AND i.proargtypes = g.proargtypes AND i.prorettype = g.prorettype
                                 AND i.proretset = g.proretset
                                 AND i.proargnames IS NOT DISTINCT FROM g.proargnames
                                 AND i.proargmodes IS NOT DISTINCT FROM g.proargmodes
                                 AND pg_get_expr(i.proargdefaults, 0) IS NOT DISTINCT FROM pg_get_expr(g.proargdefaults, 0))),
          NULL, 'every gate has its implementation with the same arguments, names, defaults and result');
SELECT ok((SELECT count(*) >= 10 FROM pg_proc WHERE prosrc = 'iceml_gate'), 'and there are gates');

-- tables: users read (through row-level security) and never write
CREATE TEMP TABLE cat AS
SELECT c.oid, c.oid::regclass::text AS t, c.relkind
  FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
 WHERE n.nspname = 'iceml' AND c.relkind IN ('r', 'v', 'p');
SELECT is((SELECT string_agg(c.t || ' ' || w || ' by ' || ro.r, ', ' ORDER BY c.t, w, ro.rank)
             FROM cat c CROSS JOIN roles ro CROSS JOIN unnest(ARRAY['INSERT', 'UPDATE', 'TRUNCATE', 'REFERENCES', 'TRIGGER']) w
            WHERE has_table_privilege(ro.r, c.oid, w)),
          NULL, 'no role inserts, updates or truncates a catalog table or view');
SELECT is((SELECT string_agg(c.t || ' by ' || ro.r, ', ' ORDER BY c.t, ro.rank)
             FROM cat c CROSS JOIN roles ro
            WHERE has_table_privilege(ro.r, c.oid, 'DELETE') AND c.t <> 'iceml.quarantine'),
          NULL, 'no role deletes catalog rows (but its own quarantined records)');
SELECT is((SELECT string_agg(c.t, ', ' ORDER BY c.t) FROM cat c
            WHERE has_table_privilege('tap_priv_login', c.oid, 'SELECT')),
          NULL, 'a login role with no iceml role reads nothing');
SELECT is((SELECT string_agg(c.t, ', ' ORDER BY c.t) FROM cat c
            WHERE has_table_privilege('iceml_reader', c.oid, 'SELECT')
              AND c.t IN ('iceml.models', 'iceml.checkpoints', 'iceml.inference_log', 'iceml.quarantine')),
          NULL, 'iceml_reader reads no weights, checkpoints, inference log or quarantined records');
SELECT is((SELECT string_agg(s.nspname || ' by ' || ro.r, ', ') FROM pg_namespace s CROSS JOIN roles ro
            WHERE s.nspname IN ('iceml', 'iceml_fs', 'iceml_td') AND has_schema_privilege(ro.r, s.oid, 'CREATE')),
          NULL, 'no role creates objects in iceml, iceml_fs or iceml_td (no name squatting)');
SELECT is((SELECT string_agg(c.oid::regclass::text || ' by ' || ro.r, ', ') FROM pg_class c
             JOIN pg_namespace n ON n.oid = c.relnamespace CROSS JOIN roles ro
            WHERE n.nspname = 'iceml' AND c.relkind = 'S' AND has_sequence_privilege(ro.r, c.oid, 'USAGE')),
          NULL, 'no role draws from iceml''s sequences');

SELECT * FROM finish();
ROLLBACK;
