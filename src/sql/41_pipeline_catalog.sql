
-- 41 (pipelines' catalog): pipeline runs and their steps, created before
-- iceml.progress and iceml.wait, which show them; the rest is in
-- 60_pipelines.sql.

CREATE TABLE iceml.pipeline_runs (
    id               bigint PRIMARY KEY DEFAULT pg_catalog.nextval('iceml.job_id_seq'),
    name             text NOT NULL,
    config           jsonb NOT NULL,            -- as checked, defaults filled in
    status           text NOT NULL DEFAULT 'queued'
                     CHECK (status OPERATOR(pg_catalog.=) ANY (ARRAY['queued', 'running', 'succeeded', 'failed', 'cancelled'])),
    created          timestamptz NOT NULL DEFAULT pg_catalog.now(),
    started          timestamptz,
    finished         timestamptz,
    owner            name NOT NULL,
    cron_job         bigint,                    -- the pg_cron job that started it
    role             regrole NOT NULL,          -- runs the steps: the caller's current role
    login            regrole NOT NULL,          -- connects: the caller's session user
    database         oid NOT NULL,
    worker_pid       integer,
    worker_start     timestamptz,
    cancel_requested boolean NOT NULL DEFAULT false,
    error            text,
    repeat_seconds   integer                    -- see iceml.schedules
);
CREATE INDEX ON iceml.pipeline_runs (name, id);
CREATE INDEX ON iceml.pipeline_runs (cron_job) WHERE cron_job IS NOT NULL;
CREATE INDEX ON iceml.pipeline_runs (status) WHERE status OPERATOR(pg_catalog.=) ANY (ARRAY['queued', 'running']);
COMMENT ON TABLE iceml.pipeline_runs IS
    'pipeline runs: one per iceml.run_pipeline() call or scheduled run; ids shared with runs and studies';

CREATE TABLE iceml.pipeline_steps (
    run_id   bigint NOT NULL REFERENCES iceml.pipeline_runs (id) ON DELETE CASCADE,
    ordinal  integer NOT NULL,
    step     text NOT NULL,
    status   text NOT NULL DEFAULT 'pending'
             CHECK (status OPERATOR(pg_catalog.=) ANY (ARRAY['pending', 'running', 'succeeded', 'skipped', 'failed', 'cancelled'])),
    started  timestamptz,
    finished timestamptz,
    rows_in  bigint,
    "rows"   bigint,                            -- rows out
    detail   jsonb NOT NULL DEFAULT '{}',       -- objects created, decisions, figures
    sqlstate text,
    error    text,
    PRIMARY KEY (run_id, ordinal),
    UNIQUE (run_id, step)
);
COMMENT ON TABLE iceml.pipeline_steps IS
    'the steps of each pipeline run in order: status, times, rows in and out, what each created or decided, and the SQLSTATE and message of a failure';

SELECT pg_catalog.pg_extension_config_dump('iceml.pipeline_runs', '');
SELECT pg_catalog.pg_extension_config_dump('iceml.pipeline_steps', '');

ALTER TABLE iceml.pipeline_runs ENABLE ROW LEVEL SECURITY;
ALTER TABLE iceml.pipeline_steps ENABLE ROW LEVEL SECURITY;
CREATE POLICY own_pipeline_runs ON iceml.pipeline_runs FOR SELECT
    USING (owner OPERATOR(pg_catalog.=) CURRENT_USER
           OR pg_catalog.pg_has_role('iceml_admin', 'MEMBER'));
CREATE POLICY own_pipeline_steps ON iceml.pipeline_steps FOR SELECT
    USING (run_id OPERATOR(pg_catalog.=) ANY (ARRAY(SELECT id FROM iceml.pipeline_runs)));
GRANT SELECT ON iceml.pipeline_runs, iceml.pipeline_steps TO iceml_reader;

