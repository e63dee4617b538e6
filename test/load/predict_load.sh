#!/usr/bin/env bash
# Load test of iceml_predict: CLIENTS concurrent pgbench clients call
# iceml_predict (and, one call in ten, iceml.predict_table over the whole
# table) for SECONDS while another session switches the deployment every
# 0.2 s between two models and an augmented ensemble of both.  Checks: no
# client error, every answer is what one of the three deployments gives for
# that chip (never anything else), all three answered, and no client
# backend keeps growing (RSS at half way, three quarters and the end)
# although every switch frees and loads models.
#
#   test/load/predict_load.sh [SECONDS [CLIENTS]]     default 60 s (at least 24), 16 clients
#
# Needs PGHOST/PGPORT/PGUSER (the harness cluster); uses database iceml_load.
# Prints TAP-like lines and a closing "load: P passed, F failed".
set -uo pipefail
secs=${1:-60}
clients=${2:-16}
# the memory check samples after two rounds of switches and holds the
# ensemble 1.5 s for each of its four samples: at least 24 s
[ "$secs" -ge 24 ] || secs=24
here=$(cd "$(dirname "$0")" && pwd)
db=iceml_load
passed=0 failed=0
check() { # check NAME CONDITION-EXIT-STATUS
	if [ "$2" -eq 0 ]; then passed=$((passed + 1)); echo "ok - $1"; else failed=$((failed + 1)); echo "not ok - $1"; fi
}
q() { psql -XAtq -v ON_ERROR_STOP=1 -d "$db" -c "$1"; }

psql -XAtq -d postgres -c "DROP DATABASE IF EXISTS $db" -c "CREATE DATABASE $db" >/dev/null
psql -XAtq -v ON_ERROR_STOP=1 -d "$db" >/dev/null <<'SQL'
SET client_min_messages = warning;
CREATE EXTENSION iceml;
SELECT setseed(0.7);
CREATE TABLE load_chips AS
SELECT i AS id,
       (SELECT array_agg((-22 + random() * 4 + CASE WHEN i % 2 = 1 AND j % 75 BETWEEN 32 AND 42 AND j / 75 BETWEEN 32 AND 42 THEN 10 ELSE 0 END)::real ORDER BY j)
          FROM generate_series(0, 5624) j) AS band_1,
       (SELECT array_agg((-28 + random() * 3)::real ORDER BY j) FROM generate_series(0, 5624) j) AS band_2,
       (30 + i % 15)::real AS inc_angle
  FROM generate_series(1, 64) i;
ALTER TABLE load_chips ADD PRIMARY KEY (id);
-- two models of experiment 'load' (seeded weights: no training needed)
INSERT INTO iceml.models (experiment, architecture, spec, parameters, channels, normalisation, metrics, lineage, weights, owner)
SELECT 'load', 'tiny_cnn', a.spec, a.parameters, '{band_1,band_2,band_avg}', '{}', jsonb_build_object('log_loss', 0.5 + s / 10.0), '{}',
       iceml._untrained_weights(a.spec::text, s, '{-20,-27,-24}', '{3,1,2}'), current_user
  FROM iceml.architectures a, generate_series(1, 2) s WHERE a.name = 'tiny_cnn';
-- the third deployment: both models, over the 8 flips and quarter turns
SELECT iceml.deploy_ensemble('load_ensemble', ARRAY(SELECT id FROM iceml.models ORDER BY id), tta => true);
CREATE TABLE load_expected AS
SELECT c.id, iceml_predict(m1.id, c.band_1, c.band_2) AS p1, iceml_predict(m2.id, c.band_1, c.band_2) AS p2,
       iceml_predict('load_ensemble', c.band_1, c.band_2) AS pe
  FROM load_chips c, (SELECT min(id) AS id FROM iceml.models) m1, (SELECT max(id) AS id FROM iceml.models) m2;
CREATE UNLOGGED TABLE load_answers (id int, p real);
CREATE UNLOGGED TABLE load_warm (pid int);
CREATE VIEW load_two AS SELECT * FROM load_chips WHERE id <= 2;
SELECT iceml.deploy('load', (SELECT min(id) FROM iceml.models));
SQL
m1=$(q "SELECT min(id) FROM iceml.models")
m2=$(q "SELECT max(id) FROM iceml.models")
differ=$(q "SELECT count(*) FILTER (WHERE abs(p1 - p2) > 1e-4 AND abs(pe - p1) > 1e-4 AND abs(pe - p2) > 1e-4) FROM load_expected")
check "the three deployments answer differently on all 64 chips ($differ)" $([ "${differ:-0}" -eq 64 ] && echo 0 || echo 1)

out=$(mktemp); err=$(mktemp)
pgbench -n -c "$clients" -j 2 -T "$secs" -f "$here/predict.pgbench@9" -f "$here/predict_table.pgbench@1" "$db" >"$out" 2>"$err" &
bench=$!
# the deployer: switch models every 0.2 s while the clients run; while the
# file $hold exists it holds the ensemble (memory is sampled in that state,
# the largest, so that a sample shows what stays, not what is deployed)
hold=$(mktemp -u)
(
	end=$((SECONDS + secs - 1))
	k=0
	while [ $SECONDS -lt $end ]; do
		if [ -e "$hold" ]; then k=1; fi
		case $((k % 3)) in
			0) sql="SELECT iceml.deploy('load', $m2::bigint, tta => false)" ;;
			1) sql="SELECT iceml.deploy_ensemble('load', ARRAY[$m1, $m2]::bigint[], tta => true)" ;;
			*) sql="SELECT iceml.deploy('load', $m1::bigint, tta => false)" ;;
		esac
		q "$sql" >/dev/null 2>>"$err.deploy" || echo "deploy failed" >>"$err.deploy"
		while [ -e "$hold" ] && [ $SECONDS -lt $end ]; do sleep 0.1; done
		k=$((k + 1))
		sleep 0.2
	done
) &
deployer=$!
rss() { # per-backend private RSS (kB) of the pgbench clients' backends
	for p in $(q "SELECT pid FROM pg_stat_activity WHERE application_name = 'pgbench' AND datname = '$db'"); do
		awk -v p="$p" '/^RssAnon/ { print p, $2 }' "/proc/$p/status" 2>/dev/null
	done | sort
}
[ -n "${ICEML_LOAD_DEBUG:-}" ] && set -x
# the clients connect first (slowly on a loaded machine) and warm up (see
# predict.pgbench): sample the backends once all have, and again one second
# before the end
# sample: hold the ensemble, let every client serve a few calls under it
sample() { touch "$hold"; sleep 1.5; rss; rm -f "$hold"; }
t0=$SECONDS
while [ "$(q 'SELECT count(*) FROM load_warm')" -lt "$clients" ] && [ $((SECONDS - t0)) -lt $((secs - 2)) ]; do sleep 0.1; done
# malloc settles after a backend has freed and loaded each deployment
# twice (test/load shows it flat from then on): two rounds of switches first
n0=$(q "SELECT count(*) FROM iceml.deployments WHERE name = 'load'")
while [ "$(q "SELECT count(*) FROM iceml.deployments WHERE name = 'load'")" -lt $((n0 + 6)) ] && [ $((SECONDS - t0)) -lt $((secs / 2)) ]; do sleep 0.1; done
rss1=$(sample)
# a second sample half way to the end: glibc's malloc raises its mmap
# threshold after large frees, so a backend's first rounds of model loads
# move to the heap at a pace that depends on the machine's load; what is
# measured is the growth over the second half of the run, after that
# and a third at three quarters: a leak grows a backend in every window, a
# one-time allocation (malloc moving a size to its heap, OpenBLAS touching
# more of its buffer for a larger sgemm) in one window only
# (the last one ends about 3 s before the clients do: each takes 1.5 s and more)
left=$(( (secs - (SECONDS - t0) - 8) / 2 ))
sleep $(( left > 0 ? left : 0 )); rssm=$(sample)
left=$(( (secs - (SECONDS - t0) - 6) / 2 ))
sleep $(( left > 0 ? left : 0 )); rssq=$(sample)
left=$(( secs - (SECONDS - t0) - 6 ))
sleep $(( left > 0 ? left : 0 )); rss2=$(sample)
wait "$bench"; rc=$?
wait "$deployer"

check "pgbench ran without errors (exit $rc)" $(( rc != 0 || $(grep -ciE 'error|abort' "$err") != 0 ))
[ $rc -eq 0 ] || head -5 "$err"
check "the deployer's deploys all succeeded" $([ -s "$err.deploy" ] && echo 1 || echo 0)
tps=$(sed -nE 's/^tps = ([0-9.]+).*/\1/p' "$out" | head -1)
n=$(q "SELECT count(*) FROM load_answers")
switches=$(q "SELECT count(*) - 1 FROM iceml.deployments WHERE name = 'load'")
echo "# $n answers from $clients clients in $secs s ($tps tps), $switches deployment switches"
check "answers were given" $([ "${n:-0}" -gt 0 ] && echo 0 || echo 1)
# (an ensemble's batched answers may differ from its per-row ones in the
# last bits of float rounding; the three deployments differ by far more)
near="abs(a.p - e.p1) < 1e-6 OR abs(a.p - e.p2) < 1e-6 OR abs(a.p - e.pe) < 1e-6"
bad=$(q "SELECT count(*) FROM load_answers a JOIN load_expected e USING (id) WHERE a.p IS NULL OR NOT ($near)")
check "every answer is one of the three deployments' ($bad others)" $([ "${bad:-1}" -eq 0 ] && echo 0 || echo 1)
all3=$(q "SELECT (count(*) FILTER (WHERE a.p = e.p1) > 0 AND count(*) FILTER (WHERE a.p = e.p2) > 0
                  AND count(*) FILTER (WHERE abs(a.p - e.pe) < 1e-6) > 0)::int
            FROM load_answers a JOIN load_expected e USING (id)")
check "the two models and the ensemble all answered while the deployment switched" $([ "$all3" = 1 ] && echo 0 || echo 1)
# memory: per backend, the growth from half way to three quarters and from
# there to the end (and, shown, from warm-up to half way).  A leak grows a
# backend in both windows: one that grew more than 2 MB in each is leaking
# (as sensitive to a steady leak as 4 MB over the whole second half, and
# blind to a single step)
maxgrowth() { join <(echo "$1") <(echo "$2") | awk 'BEGIN { m = 0 } { d = $3 - $2; if (d > m) m = d } END { print m + 0 }'; }
early=$(maxgrowth "$rss1" "$rssm")
g1=$(maxgrowth "$rssm" "$rssq")
g2=$(maxgrowth "$rssq" "$rss2")
both=$(join <(join <(echo "$rssm") <(echo "$rssq")) <(echo "$rss2") |
	awk 'BEGIN { m = 0 } { a = $3 - $2; b = $4 - $3; d = (a < b ? a : b); if (d > m) m = d } END { print m + 0 }')
nb=$(join <(join <(echo "$rssm") <(echo "$rssq")) <(echo "$rss2") | wc -l)
echo "# backends sampled: $(echo "$rss1" | grep -c .) after warm-up, $(echo "$rssm" | grep -c .), $(echo "$rssq" | grep -c .), $(echo "$rss2" | grep -c .); in all of the last three: $nb"
echo "# backend private memory (RssAnon: RSS without shared buffers), $nb backends: largest growth ${early} kB from warm-up to half way, ${g1} kB from there to three quarters, ${g2} kB from there to the end"
check "backend memory flat (no backend grew more than 2048 kB in both of the last two windows: at most ${both} kB in both)" $([ "$nb" -ge $((clients / 2)) ] && [ "$both" -le 2048 ] && echo 0 || echo 1)

rm -f "$out" "$err" "$err.deploy"
psql -XAtq -d postgres -c "DROP DATABASE $db" >/dev/null 2>&1 || true
echo "load: $passed passed, $failed failed"
[ "$failed" -eq 0 ]
