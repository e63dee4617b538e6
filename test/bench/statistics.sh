#!/usr/bin/env bash
# BENCH compute_statistics_ms: iceml.compute_statistics over a
# train.json-sized feature group (1604 rows, two real[5625] bands, inc_angle,
# is_iceberg): one scan, 18 million band elements summarised.  Median of 3.
# Needs PGHOST/PGPORT/PGUSER/PGDATABASE (make bench sets them).
set -euo pipefail
psql() { command psql -X -q -v ON_ERROR_STOP=1 "$@"; }

psql -c "SET client_min_messages = warning" -c "CREATE EXTENSION IF NOT EXISTS iceml"
psql <<'SQL'
SET client_min_messages = warning;
SELECT iceml.create_feature_group('bench_stats',
  '[{"name":"id","type":"text"},{"name":"band_1","type":"real[]"},{"name":"band_2","type":"real[]"},
    {"name":"inc_angle","type":"real"},{"name":"is_iceberg","type":"smallint"}]',
  ARRAY['id']) \gset
INSERT INTO iceml_fs.bench_stats_1
SELECT 'chip' || g,
       (SELECT array_agg((-45 * random())::real) FROM generate_series(1, 5625) WHERE g > 0),
       (SELECT array_agg((-45 * random())::real) FROM generate_series(1, 5625) WHERE g > 0),
       (30 + 15 * random())::real, (g % 2)::smallint
  FROM generate_series(1, 1604) g;
SQL
ms=$(psql -tA <<'SQL'
CREATE FUNCTION pg_temp.ms() RETURNS double precision LANGUAGE plpgsql AS $$
DECLARE t0 timestamptz;
BEGIN
    t0 := clock_timestamp();
    PERFORM iceml.compute_statistics('iceml_fs.bench_stats_1');
    RETURN extract(epoch FROM clock_timestamp() - t0) * 1000;
END $$;
SELECT round(percentile_cont(0.5) WITHIN GROUP (ORDER BY pg_temp.ms())::numeric, 1)
  FROM generate_series(1, 3);
SQL
)
echo "BENCH compute_statistics_ms $(echo "$ms" | tail -1) ms"
psql -c "SELECT iceml.drop_feature_group('iceml_fs.bench_stats_1')" >/dev/null
