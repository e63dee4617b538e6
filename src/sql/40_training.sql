
-- 40: training runs, studies and models.
--
-- Users never write these tables directly: iceml.train(), iceml.tune(),
-- iceml.cancel() and the background workers write them as the extension's
-- owner, after checking what the calling role may do.  Users read them
-- through row-level security: each role sees its own runs, iceml_admin all.

-- runs, studies and pipeline runs share one id space, so that iceml.wait()
-- and iceml.cancel() take any of them
-- architectures by name; specs are checked by the engine
CREATE TABLE iceml.architectures (
    name       text PRIMARY KEY CHECK (name OPERATOR(pg_catalog.~) '^[a-z][a-z0-9_]{0,62}$'),
    spec       jsonb NOT NULL,
    parameters bigint NOT NULL,
    builtin    boolean NOT NULL DEFAULT false,
    owner      name NOT NULL DEFAULT CURRENT_USER,
    created_at timestamptz NOT NULL DEFAULT pg_catalog.now()
);
COMMENT ON TABLE iceml.architectures IS 'CNN architectures by name: the built-ins statoil_cnn, recipe_cnn and tiny_cnn, and those of iceml.create_architecture()';

CREATE SEQUENCE iceml.job_id_seq;
COMMENT ON SEQUENCE iceml.job_id_seq IS 'ids of runs, studies and pipeline runs';

CREATE TABLE iceml.studies (
    id               bigint PRIMARY KEY DEFAULT pg_catalog.nextval('iceml.job_id_seq'),
    kind             text NOT NULL CHECK (kind OPERATOR(pg_catalog.=) ANY (ARRAY['tune', 'ablation'])),
    experiment       text NOT NULL,
    training_dataset regclass NOT NULL,
    architecture     text NOT NULL,
    strategy         text,
    search_space     jsonb,
    components       jsonb,
    trials           integer NOT NULL,
    parallel         integer NOT NULL,
    metric           text NOT NULL,
    hyperparams      jsonb NOT NULL DEFAULT '{}',
    status           text NOT NULL DEFAULT 'running'
                     CHECK (status OPERATOR(pg_catalog.=) ANY (ARRAY['running', 'succeeded', 'failed', 'cancelled'])),
    best_run         bigint,
    best_model       bigint,
    owner            name NOT NULL,
    created_at       timestamptz NOT NULL DEFAULT pg_catalog.now(),
    finished_at      timestamptz
);
COMMENT ON TABLE iceml.studies IS 'hyperparameter tuning and ablation studies; one run per trial';

CREATE TABLE iceml.runs (
    id               bigint PRIMARY KEY DEFAULT pg_catalog.nextval('iceml.job_id_seq'),
    experiment       text NOT NULL,
    study_id         bigint REFERENCES iceml.studies (id) ON DELETE CASCADE,
    trial            text,                      -- within a study: the trial's label
    training_dataset regclass NOT NULL,
    architecture     text NOT NULL,
    spec             jsonb NOT NULL,            -- the architecture as trained
    hyperparams      jsonb NOT NULL,            -- as given, with defaults filled in
    status           text NOT NULL DEFAULT 'queued'
                     CHECK (status OPERATOR(pg_catalog.=) ANY (ARRAY['queued', 'running', 'succeeded', 'failed', 'cancelled', 'stopped'])),
    label            text NOT NULL,             -- the dataset's label column
    val_split        text,                      -- 'validation', else 'test', else none
    channels         text[] NOT NULL,           -- input channels in order
    lineage          jsonb NOT NULL,            -- dataset, feature group, versions, commit
    owner            name NOT NULL,
    role             regrole NOT NULL,          -- reads the data: the caller's current role
    login            regrole NOT NULL,          -- connects: the caller's session user
    database         oid NOT NULL,
    created_at       timestamptz NOT NULL DEFAULT pg_catalog.now(),
    started_at       timestamptz,
    finished_at      timestamptz,
    worker_pid       integer,
    worker_start     timestamptz,               -- with worker_pid: tells a live worker from a reused pid
    epoch            integer NOT NULL DEFAULT 0,
    epochs           integer NOT NULL,
    best_epoch       integer,
    cancel_requested boolean NOT NULL DEFAULT false,
    error            text,
    model_id         bigint
);
CREATE INDEX ON iceml.runs (study_id);
CREATE INDEX ON iceml.runs (status) WHERE status OPERATOR(pg_catalog.=) ANY (ARRAY['queued', 'running']);
COMMENT ON TABLE iceml.runs IS 'training runs: one per iceml.train() call or study trial';

CREATE TABLE iceml.run_metrics (
    run_id      bigint NOT NULL REFERENCES iceml.runs (id) ON DELETE CASCADE,
    epoch       integer NOT NULL,
    train_loss  double precision,
    train_acc   double precision,
    val_loss    double precision,
    val_acc     double precision,
    val_auc     double precision,
    seconds     double precision,
    recorded_at timestamptz NOT NULL DEFAULT pg_catalog.now(),
    PRIMARY KEY (run_id, epoch)
);
COMMENT ON TABLE iceml.run_metrics IS 'one row per epoch of a run, committed as the epoch ends';
COMMENT ON COLUMN iceml.run_metrics.train_acc IS 'accuracy at the end of the epoch on the first 256 training images, in inference mode';
COMMENT ON COLUMN iceml.run_metrics.seconds IS 'wall time of the epoch: training, the accuracy and validation passes, the checkpoint';

-- the latest checkpoint of a run: weights, optimiser and RNG state, for iceml.resume()
CREATE TABLE iceml.checkpoints (
    run_id   bigint PRIMARY KEY REFERENCES iceml.runs (id) ON DELETE CASCADE,
    epoch    integer NOT NULL,
    state    bytea NOT NULL,                    -- weights, optimiser and RNG state
    best_state bytea,                           -- the model of the best epoch so far
    saved_at timestamptz NOT NULL DEFAULT pg_catalog.now()
);
COMMENT ON TABLE iceml.checkpoints IS 'the latest checkpoint of each run, for iceml.resume()';

CREATE SEQUENCE iceml.model_id_seq;
CREATE TABLE iceml.models (
    id               bigint PRIMARY KEY DEFAULT pg_catalog.nextval('iceml.model_id_seq'),
    run_id           bigint UNIQUE REFERENCES iceml.runs (id) ON DELETE SET NULL,
    experiment       text NOT NULL,
    architecture     text NOT NULL,
    spec             jsonb NOT NULL,
    parameters       bigint NOT NULL,
    channels         text[] NOT NULL,
    normalisation    jsonb NOT NULL,            -- per channel mean and std of the training split
    metrics          jsonb NOT NULL,            -- validation metrics of the kept epoch
    training_dataset regclass,
    lineage          jsonb NOT NULL,            -- training dataset, its version, feature group, commit
    weights          bytea NOT NULL,            -- the engine's serialised model
    owner            name NOT NULL,
    created_at       timestamptz NOT NULL DEFAULT pg_catalog.now()
);
COMMENT ON TABLE iceml.models IS 'trained models with their weights, normalisation, metrics and lineage';

SELECT pg_catalog.pg_extension_config_dump('iceml.studies', '');
SELECT pg_catalog.pg_extension_config_dump('iceml.runs', '');
SELECT pg_catalog.pg_extension_config_dump('iceml.run_metrics', '');
SELECT pg_catalog.pg_extension_config_dump('iceml.checkpoints', '');
SELECT pg_catalog.pg_extension_config_dump('iceml.models', '');
SELECT pg_catalog.pg_extension_config_dump('iceml.job_id_seq', '');
SELECT pg_catalog.pg_extension_config_dump('iceml.model_id_seq', '');

-- each role sees its own runs, studies and models; iceml_admin sees all
ALTER TABLE iceml.studies ENABLE ROW LEVEL SECURITY;
ALTER TABLE iceml.runs ENABLE ROW LEVEL SECURITY;
ALTER TABLE iceml.run_metrics ENABLE ROW LEVEL SECURITY;
ALTER TABLE iceml.checkpoints ENABLE ROW LEVEL SECURITY;
ALTER TABLE iceml.models ENABLE ROW LEVEL SECURITY;
CREATE POLICY own_studies ON iceml.studies FOR SELECT
    USING (owner OPERATOR(pg_catalog.=) CURRENT_USER
           OR pg_catalog.pg_has_role('iceml_admin', 'MEMBER'));
CREATE POLICY own_runs ON iceml.runs FOR SELECT
    USING (owner OPERATOR(pg_catalog.=) CURRENT_USER
           OR pg_catalog.pg_has_role('iceml_admin', 'MEMBER'));
CREATE POLICY own_run_metrics ON iceml.run_metrics FOR SELECT
    USING (run_id OPERATOR(pg_catalog.=) ANY (ARRAY(SELECT id FROM iceml.runs)));
CREATE POLICY own_checkpoints ON iceml.checkpoints FOR SELECT
    USING (run_id OPERATOR(pg_catalog.=) ANY (ARRAY(SELECT id FROM iceml.runs)));
-- The model-sharing rule: a model's weights and normalisation are read by
-- its owner and iceml_admin only; everyone with an iceml role sees every
-- model's metadata in iceml.model_summaries and predicts with a model
-- deployed under a name (iceml_predict by name, or by the id of a deployed
-- model).
CREATE POLICY own_models ON iceml.models FOR SELECT
    USING (owner OPERATOR(pg_catalog.=) CURRENT_USER
           OR pg_catalog.pg_has_role('iceml_admin', 'MEMBER'));

GRANT SELECT ON iceml.studies, iceml.runs, iceml.run_metrics TO iceml_reader;
GRANT SELECT ON iceml.models, iceml.checkpoints TO iceml_user;

-- Metadata for readers and BI tools: every model and run, no weights, no
-- normalisation, no checkpoints; SELECT * works for every iceml role.
-- (Views without security_invoker read as their owner, the catalog owner.)
CREATE VIEW iceml.model_summaries AS
SELECT m.id, m.run_id, m.experiment, m.architecture, m.parameters, m.channels, m.metrics,
       m.training_dataset, m.lineage, m.owner, m.created_at
  FROM iceml.models m;
COMMENT ON VIEW iceml.model_summaries IS
    'every model''s metadata (architecture, channels, validation metrics, lineage, owner), without weights or normalisation';
CREATE VIEW iceml.run_summaries AS
SELECT r.id, r.experiment, r.study_id, r.trial, r.training_dataset, r.architecture, r.hyperparams,
       r.status, r.owner, r.created_at, r.started_at, r.finished_at, r.epoch, r.epochs,
       r.best_epoch, r.model_id
  FROM iceml.runs r;
COMMENT ON VIEW iceml.run_summaries IS
    'every run''s metadata (experiment, status, timings, epochs, model), without errors, workers or weights';
GRANT SELECT ON iceml.model_summaries, iceml.run_summaries TO iceml_reader;
