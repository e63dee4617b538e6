#!/usr/bin/env bash
# BENCH read_arrays_rows_per_s, band_avg_rows_per_s, band_avg_sql_rows_per_s,
# synth_chips_per_s: the SAR feature functions against the cost of just
# reading the bands, and against the same average written in plain SQL, over
# a train.json-sized table (1604 rows, two real[5625] bands) filled from
# iceml.synthesize_statoil.  Each figure is the median of 3 runs, timed with
# clock_timestamp() inside the server.
# Needs PGHOST/PGPORT/PGUSER/PGDATABASE (make bench sets them).
set -euo pipefail
psql() { command psql -X -q -v ON_ERROR_STOP=1 "$@"; }

psql -c "SET client_min_messages = warning" -c "CREATE EXTENSION IF NOT EXISTS iceml"
psql <<'SQL'
SET client_min_messages = warning;
DROP TABLE IF EXISTS public.bench_eo;
CREATE TABLE public.bench_eo AS SELECT * FROM iceml.synthesize_statoil(1604, 42);
VACUUM ANALYZE public.bench_eo;
CREATE OR REPLACE FUNCTION public.bench_eo_rate(q text, nrows int) RETURNS double precision
LANGUAGE plpgsql AS $$
DECLARE t0 timestamptz; secs double precision[] := '{}';
BEGIN
    EXECUTE q;                                  -- warm the cache
    FOR i IN 1..3 LOOP
        t0 := clock_timestamp();
        EXECUTE q;
        secs := secs || extract(epoch FROM clock_timestamp() - t0)::double precision;
    END LOOP;
    RETURN nrows / (SELECT percentile_cont(0.5) WITHIN GROUP (ORDER BY s) FROM unnest(secs) s);
END $$;
SQL

rate() { psql -tA -c "SELECT round(public.bench_eo_rate(\$q\$$1\$q\$, $2)::numeric)"; }

read=$(rate "SELECT sum(array_length(band_1, 1) + array_length(band_2, 1)) FROM public.bench_eo" 1604)
avg=$(rate "SELECT sum(array_length(iceml.band_avg(band_1, band_2), 1)) FROM public.bench_eo" 1604)
sql=$(rate "SELECT sum(array_length((SELECT array_agg((x + y) / 2 ORDER BY o) FROM unnest(band_1, band_2) WITH ORDINALITY AS u(x, y, o)), 1)) FROM public.bench_eo" 1604)
synth=$(rate "SELECT sum(array_length(band_1, 1)) FROM iceml.synthesize_statoil(1604, 7)" 1604)

echo "BENCH read_arrays_rows_per_s $read rows/s"
echo "BENCH band_avg_rows_per_s $avg rows/s"
echo "BENCH band_avg_sql_rows_per_s $sql rows/s"
echo "BENCH synth_chips_per_s $synth chips/s"
psql -c "DROP TABLE public.bench_eo" -c "DROP FUNCTION public.bench_eo_rate(text, int)"
