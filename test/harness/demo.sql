-- The iceml demo, run by `make demo` against the embedded cluster.
\pset footer off
\echo '== iceml: machine learning on Earth-observation data, inside PostgreSQL'
DROP EXTENSION IF EXISTS iceml CASCADE;
CREATE EXTENSION iceml;
SELECT iceml.version();
