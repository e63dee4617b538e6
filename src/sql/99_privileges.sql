
-- 99: nothing in schema iceml is callable by PUBLIC; each part above grants
-- what each role needs.  iceml_predict (in the extension's schema) likewise.
REVOKE ALL ON ALL FUNCTIONS IN SCHEMA iceml FROM PUBLIC;
REVOKE ALL ON ALL TABLES IN SCHEMA iceml FROM PUBLIC;
REVOKE ALL ON ALL SEQUENCES IN SCHEMA iceml FROM PUBLIC;
