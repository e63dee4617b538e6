
-- ====================================================================
-- 20: loading Earth-observation data (API.md section 3): the streaming
-- Statoil/C-CORE JSON loader (src/ingest/ingest.c) and its quarantine.
-- ====================================================================

CREATE TABLE iceml.quarantine (
    id             bigserial PRIMARY KEY,
    feature_group  regclass NOT NULL,
    record_number  bigint NOT NULL,
    record_id      text,
    raw            text NOT NULL,
    raw_truncated  boolean NOT NULL DEFAULT false,
    raw_bytes      bigint NOT NULL,
    reason         text NOT NULL,
    sqlstate       text NOT NULL,
    quarantined_at timestamptz NOT NULL DEFAULT pg_catalog.clock_timestamp(),
    role           regrole NOT NULL DEFAULT (CURRENT_USER)::regrole
);
CREATE INDEX ON iceml.quarantine (feature_group, record_number);
COMMENT ON TABLE iceml.quarantine IS
    'records refused by iceml.ingest_statoil(on_error => ''quarantine''): the record number in the input (from 0), its id when known, its raw JSON text (the first 1 MiB; raw_truncated when longer or not valid text), why and the SQLSTATE it would have raised';
COMMENT ON COLUMN iceml.quarantine.record_number IS 'position of the record in the input, counting from 0';
COMMENT ON COLUMN iceml.quarantine.raw IS 'the record as it appeared in the input, up to 1 MiB';
COMMENT ON COLUMN iceml.quarantine.raw_bytes IS 'size of the whole raw record in bytes';

SELECT pg_catalog.pg_extension_config_dump('iceml.quarantine', '');
SELECT pg_catalog.pg_extension_config_dump('iceml.quarantine_id_seq', '');

-- A role sees and clears only the records it quarantined (iceml_admin all);
-- only iceml.ingest_statoil writes them (as the catalog owner).
ALTER TABLE iceml.quarantine ENABLE ROW LEVEL SECURITY;
CREATE POLICY quarantine_read ON iceml.quarantine FOR SELECT
    USING (pg_catalog.pg_has_role(role::pg_catalog.oid, 'MEMBER')
           OR pg_catalog.pg_has_role('iceml_admin', 'MEMBER'));
CREATE POLICY quarantine_clear ON iceml.quarantine FOR DELETE
    USING (pg_catalog.pg_has_role(role::pg_catalog.oid, 'MEMBER')
           OR pg_catalog.pg_has_role('iceml_admin', 'MEMBER'));
GRANT SELECT, DELETE ON iceml.quarantine TO iceml_user;

-- One function for both forms of API.md (a server file, or a document sent
-- by the client): two overloads with the same argument types cannot coexist,
-- so path and document are both optional and exactly one must be given.
-- Positional calls keep API.md's order (feature_group, path, on_error).
CREATE FUNCTION iceml.ingest_statoil(
    feature_group regclass,
    path          text DEFAULT NULL,
    on_error      text DEFAULT 'abort',
    document      text DEFAULT NULL)
    RETURNS TABLE (read bigint, inserted bigint, quarantined bigint)
    AS 'MODULE_PATHNAME', 'iceml_ingest_statoil'
    LANGUAGE C VOLATILE PARALLEL UNSAFE;
COMMENT ON FUNCTION iceml.ingest_statoil(regclass, text, text, text) IS
    'loads Kaggle Statoil/C-CORE records (a JSON array or JSON lines) from a server file (path, superuser or pg_read_server_files) or from text sent by the client (document) into a feature group, streaming, in one COPY statement; on_error abort or quarantine';
GRANT EXECUTE ON FUNCTION iceml.ingest_statoil(regclass, text, text, text) TO iceml_user;
