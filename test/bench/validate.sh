#!/usr/bin/env bash
# BENCH validate_overhead_pct: what the feature group's expectation triggers
# add to a train.json-sized load (1604 rows: id text, band_1/band_2
# real[5625], inc_angle real, is_iceberg smallint) with rules on every
# element (HAS_MIN, HAS_MAX, IS_FINITE, HAS_LENGTH on both bands) plus label
# and id rules, against the same INSERT ... SELECT into an identical table
# without iceml triggers.  Median of 5 alternating runs each.
# Needs PGHOST/PGPORT/PGUSER/PGDATABASE (make bench sets them).
set -euo pipefail
psql() { command psql -X -q -v ON_ERROR_STOP=1 "$@"; }

psql -c "SET client_min_messages = warning" -c "CREATE EXTENSION IF NOT EXISTS iceml"
psql <<'SQL'
SET client_min_messages = warning;
DROP TABLE IF EXISTS bench_src, bench_plain;
-- synthetic chips in dB, -45..0, generated in plain SQL
CREATE TABLE bench_src AS
SELECT 'chip' || g AS id,
       (SELECT array_agg((-45 * random())::real) FROM generate_series(1, 5625) WHERE g > 0) AS band_1,
       (SELECT array_agg((-45 * random())::real) FROM generate_series(1, 5625) WHERE g > 0) AS band_2,
       (30 + 15 * random())::real AS inc_angle,
       (g % 2)::smallint AS is_iceberg
  FROM generate_series(1, 1604) g;
CREATE TABLE bench_plain (id text PRIMARY KEY, band_1 real[], band_2 real[],
                          inc_angle real, is_iceberg smallint);
SELECT iceml.create_feature_group('bench',
  '[{"name":"id","type":"text"},{"name":"band_1","type":"real[]"},{"name":"band_2","type":"real[]"},
    {"name":"inc_angle","type":"real"},{"name":"is_iceberg","type":"smallint"}]',
  ARRAY['id'],
  expectations => '[
    {"name":"id_complete","features":["id"],"rules":[{"name":"HAS_COMPLETENESS","level":"ERROR"}]},
    {"name":"label_is_binary","features":["is_iceberg"],"rules":[
       {"name":"HAS_MIN","level":"ERROR","min":0},{"name":"HAS_MAX","level":"ERROR","max":1},
       {"name":"HAS_DATATYPE","level":"ERROR","accepted_type":"Integral"}]},
    {"name":"bands","features":["band_1","band_2"],"rules":[
       {"name":"HAS_LENGTH","value":5625},{"name":"IS_FINITE"},
       {"name":"HAS_MIN","min":-60},{"name":"HAS_MAX","max":20}]}]') \gset
ANALYZE bench_src;
SQL

times=$(psql -tA <<'SQL'
CREATE FUNCTION pg_temp.ms(sql text) RETURNS double precision LANGUAGE plpgsql AS $$
DECLARE t0 timestamptz;
BEGIN
    t0 := clock_timestamp();
    EXECUTE sql;
    RETURN extract(epoch FROM clock_timestamp() - t0) * 1000;
END $$;
CREATE TEMP TABLE runs (kind text, ms double precision);
SELECT pg_temp.ms('INSERT INTO bench_plain SELECT * FROM bench_src');   -- warm-up
TRUNCATE bench_plain;
\o /dev/null
SELECT pg_temp.ms('INSERT INTO bench_plain SELECT * FROM bench_src') \gset
\o
DO $$
BEGIN
    FOR i IN 1..5 LOOP
        TRUNCATE bench_plain;
        TRUNCATE iceml_fs.bench_1;
        INSERT INTO runs SELECT 'plain', pg_temp.ms('INSERT INTO bench_plain SELECT * FROM bench_src');
        INSERT INTO runs SELECT 'iceml', pg_temp.ms('INSERT INTO iceml_fs.bench_1 SELECT * FROM bench_src');
    END LOOP;
END $$;
SELECT round(percentile_cont(0.5) WITHIN GROUP (ORDER BY ms) FILTER (WHERE kind = 'plain')::numeric, 1),
       round(percentile_cont(0.5) WITHIN GROUP (ORDER BY ms) FILTER (WHERE kind = 'iceml')::numeric, 1)
  FROM runs;
SQL
)
times=$(echo "$times" | tail -1)
plain=${times%|*}
iceml=${times#*|}
echo "BENCH validate_plain_insert_ms $plain ms"
echo "BENCH validate_iceml_insert_ms $iceml ms"
echo "BENCH validate_overhead_pct $(awk -v a="$plain" -v b="$iceml" 'BEGIN { printf "%.1f", (b - a) * 100 / a }') pct"
psql -c "DROP TABLE bench_src, bench_plain" -c "SELECT iceml.drop_feature_group('iceml_fs.bench_1')" >/dev/null
