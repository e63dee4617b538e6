#!/usr/bin/env bash
# Load test of iceml_predict: CLIENTS concurrent pgbench clients call
# iceml_predict (and, one call in ten, iceml.predict_table over the whole
# table) for SECONDS while another session switches the deployment every
# 0.2 s between two models and an augmented ensemble of both.  Checks: no
# client error, every answer is what one of the three deployments gives for
# that chip (never anything else), all three answered, and no client
# backend keeps growing although every switch frees and loads models: under
# load, no backend grows by more than 4 MB in each of two windows; then, in
# one session alone doing the same switches, not at all (to 64 kB) from its
# 60th switch to its 90th.
#
#   test/load/predict_load.sh [SECONDS [CLIENTS]]     default 60 s (at least 40; the
#                                                     clients run 15 s more), 16 clients
#
# Needs PGHOST/PGPORT/PGUSER (the harness cluster); uses database iceml_load.
# Prints TAP-like lines and a closing "load: P passed, F failed".
set -uo pipefail
secs=${1:-60}
clients=${2:-16}
# the memory check samples after two rounds of switches and, for each of
# its four samples, waits for the deployer to deploy the ensemble and for
# every client to answer under it: on two cores under 16 clients that takes
# 2-5 s a sample, the whole check 25-30 s: at least 40 s
[ "$secs" -ge 40 ] || secs=40
here=$(cd "$(dirname "$0")" && pwd)
db=iceml_load
passed=0 failed=0
check() { # check NAME CONDITION-EXIT-STATUS
	if [ "$2" -eq 0 ]; then passed=$((passed + 1)); echo "ok - $1"; else failed=$((failed + 1)); echo "not ok - $1"; fi
}
q() { psql -XAtq -v ON_ERROR_STOP=1 -d "$db" -c "$1"; }
# ask IN OUT SECS SQL...: run SQL in a psql coprocess (its input and output
# fds) and print its answers; fails if no end marker comes within SECS
ask() {
	local in=$1 out=$2 wait_s=$3 line=
	shift 3
	{ printf '%s;\n' "$@"; echo '\echo --end--'; } >&"$in"
	while read -r -t "$wait_s" line <&"$out"; do
		[ "$line" = --end-- ] && return 0
		echo "$line"
	done
	return 1
}
# deploy_sql K: the K-th switch of 'load': model 2, the ensemble, model 1
deploy_sql() {
	case $(($1 % 3)) in
		0) echo "SELECT iceml.deploy('load', $m2::bigint, tta => false)" ;;
		1) echo "SELECT iceml.deploy_ensemble('load', ARRAY[$m1, $m2]::bigint[], tta => true)" ;;
		*) echo "SELECT iceml.deploy('load', $m1::bigint, tta => false)" ;;
	esac
}

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
-- who answered, how and when: a memory sample waits until every client
-- has answered both ways under the deployment it holds
CREATE UNLOGGED TABLE load_answers (id int, p real, pid int DEFAULT pg_backend_pid(),
                                    batched bool DEFAULT false, at timestamptz DEFAULT statement_timestamp());
CREATE UNLOGGED TABLE load_warm (pid int);
CREATE VIEW load_two AS SELECT * FROM load_chips WHERE id <= 2;
SELECT iceml.deploy('load', (SELECT min(id) FROM iceml.models));
SQL
m1=$(q "SELECT min(id) FROM iceml.models")
m2=$(q "SELECT max(id) FROM iceml.models")
differ=$(q "SELECT count(*) FILTER (WHERE abs(p1 - p2) > 1e-4 AND abs(pe - p1) > 1e-4 AND abs(pe - p2) > 1e-4) FROM load_expected")
check "the three deployments answer differently on all 64 chips ($differ)" $([ "${differ:-0}" -eq 64 ] && echo 0 || echo 1)

out=$(mktemp); err=$(mktemp)
# the clients and the deployer run 15 s longer than the samples are
# scheduled: a sample on a machine this busy sometimes takes seconds longer
# than the ones before it, and must still find every client there
tail=15
tb=$SECONDS
pgbench -n -c "$clients" -j 2 -T "$((secs + tail))" -f "$here/predict.pgbench@9" -f "$here/predict_table.pgbench@1" "$db" >"$out" 2>"$err" &
bench=$!
# the deployer: switch models every 0.2 s while the clients run; while the
# file $hold exists it holds the ensemble (memory is sampled in that state,
# the largest, so that a sample shows what stays, not what is deployed)
hold=$(mktemp -u)
(
	end=$((SECONDS + secs + tail - 1))
	k=0
	# one session for all the deploys (a new one costs most of a second
	# on a machine this busy)
	coproc DEP { psql -XAtq -d "$db" 2>>"$err.deploy"; }
	while [ $SECONDS -lt $end ]; do
		if [ -e "$hold" ]; then k=1; fi
		ask "${DEP[1]}" "${DEP[0]}" 60 "$(deploy_sql $k)" >/dev/null ||
			{ echo "deploy failed: the deployer's session ended" >>"$err.deploy"; break; }
		# the ensemble is deployed: if a sample waits for it, say so and hold it
		if [ $((k % 3)) -eq 1 ] && [ -e "$hold" ]; then
			# when it was deployed (by the server's clock), for the sample
			ask "${DEP[1]}" "${DEP[0]}" 60 "SELECT extract(epoch FROM clock_timestamp())" >"$hold.on"
			while [ -e "$hold" ] && [ $SECONDS -lt $end ]; do sleep 0.1; done
		fi
		k=$((k + 1))
		sleep 0.2
	done
	eval "exec ${DEP[1]}>&-"
	wait "$DEP_PID"
) &
deployer=$!
rss() { # per-backend private RSS (kB) of the warmed-up clients' backends
	for p in $pids; do
		awk -v p="$p" '/^RssAnon/ { print p, $2 }' "/proc/$p/status" 2>/dev/null
	done | sort
}
[ -n "${ICEML_LOAD_DEBUG:-}" ] && set -x
# the clients connect first (slowly on a loaded machine) and warm up (see
# predict.pgbench): sample the backends once all have, and again one second
# before the end
# sample: hold the ensemble (wait until the deployer says it is deployed),
# wait until every client has answered under it both one chip at a time and
# in a batch (the state of a client's models is then the same in every
# sample: the ensemble's nets and their batch workspace), read /proc (no
# query: a new session on a machine this busy takes a second to answer)
sample() {
	rm -f "$hold.on"; touch "$hold"
	local t=$SECONDS at=
	while [ ! -s "$hold.on" ] && [ $((SECONDS - t)) -lt 10 ]; do sleep 0.1; done
	at=$(cat "$hold.on" 2>/dev/null)
	while [ -n "$at" ] && [ $((SECONDS - t)) -lt 20 ] &&
		[ "$(q "SELECT count(*) FROM (SELECT pid FROM load_answers WHERE at > to_timestamp($at)
		                              GROUP BY pid HAVING bool_or(batched) AND bool_or(NOT batched)) s")" -lt "$npids" ]; do
		sleep 0.2
	done
	rss; rm -f "$hold" "$hold.on"
}
while [ "$(q 'SELECT count(*) FROM load_warm')" -lt "$clients" ] && [ $((SECONDS - tb)) -lt $((secs - 2)) ]; do sleep 0.1; done
# the clients' backends, as each one recorded itself once warm
pids=$(q "SELECT pid FROM load_warm")
npids=$(echo "$pids" | grep -c .)
# and they give way to the deployer and the sampling: 16 busy backends on
# two cores otherwise leave a new session seconds before its first answer
# (they still compete: the deploys run while they predict)
renice -n 10 -p $pids >/dev/null 2>&1 || true
# malloc settles after a backend has freed and loaded each deployment
# twice (test/load shows it flat from then on): two rounds of switches first
n0=$(q "SELECT count(*) FROM iceml.deployments WHERE name = 'load'")
while [ "$(q "SELECT count(*) FROM iceml.deployments WHERE name = 'load'")" -lt $((n0 + 6)) ] && [ $((SECONDS - tb)) -lt $((secs / 2)) ]; do sleep 0.1; done
ts=$SECONDS; rss1=$(sample); d=$((SECONDS - ts))
# a second sample at once: glibc's malloc raises its mmap threshold after
# large frees, so a backend's first rounds of model loads move to the heap
# at a pace that depends on the machine's load; what is measured is the
# growth after that, over two windows that end (with the last sample)
# before SECONDS are over: a leak grows a backend in every window, a
# one-time allocation (malloc moving a size to its heap, OpenBLAS touching
# more of its buffer for a larger sgemm) in one window only.  A sample
# takes as long as the longest one so far, plus 2 s
ts=$SECONDS; rssm=$(sample); d=$(( SECONDS - ts > d ? SECONDS - ts : d ))
gap=$(( (tb + secs - 2 - SECONDS - 2 * (d + 2)) / 2 ))
sleep $(( gap > 0 ? gap : 0 ))
ts=$SECONDS; rssq=$(sample); d=$(( SECONDS - ts > d ? SECONDS - ts : d ))
gap=$(( tb + secs - 2 - SECONDS - (d + 2) ))
sleep $(( gap > 0 ? gap : 0 )); rss2=$(sample)
wait "$bench"; rc=$?
wait "$deployer"

check "pgbench ran without errors (exit $rc)" $(( rc != 0 || $(grep -ciE 'error|abort' "$err") != 0 ))
[ $rc -eq 0 ] || head -5 "$err"
check "the deployer's deploys all succeeded" $([ -s "$err.deploy" ] && echo 1 || echo 0)
tps=$(sed -nE 's/^tps = ([0-9.]+).*/\1/p' "$out" | head -1)
n=$(q "SELECT count(*) FROM load_answers")
switches=$(q "SELECT count(*) - 1 FROM iceml.deployments WHERE name = 'load'")
echo "# $n answers from $clients clients in $((secs + tail)) s ($tps tps), $switches deployment switches"
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
# memory under load: per backend, the growth over the two windows between
# the last three samples (and, shown, from warm-up to the second).  A leak
# grows a backend in both; a backend's heap keeps a freed block of up to a
# few MB that malloc did not give back (2.7 MB here) in one
# sample and not the next, so only more than 4 MB in each window counts.
# The exact check is the one-session one below.
maxgrowth() { join <(echo "$1") <(echo "$2") | awk 'BEGIN { m = 0 } { d = $3 - $2; if (d > m) m = d } END { print m + 0 }'; }
early=$(maxgrowth "$rss1" "$rssm")
g1=$(maxgrowth "$rssm" "$rssq")
g2=$(maxgrowth "$rssq" "$rss2")
both=$(join <(join <(echo "$rssm") <(echo "$rssq")) <(echo "$rss2") |
	awk 'BEGIN { m = 0 } { a = $3 - $2; b = $4 - $3; d = (a < b ? a : b); if (d > m) m = d } END { print m + 0 }')
nb=$(join <(join <(echo "$rssm") <(echo "$rssq")) <(echo "$rss2") | wc -l)
echo "# backends sampled: $(echo "$rss1" | grep -c .) after warm-up, $(echo "$rssm" | grep -c .), $(echo "$rssq" | grep -c .), $(echo "$rss2" | grep -c .); in all of the last three: $nb"
echo "# backend private memory (RssAnon: RSS without shared buffers), $nb backends: largest growth ${early} kB from warm-up to half way, ${g1} kB from there to three quarters, ${g2} kB from there to the end"
check "backend memory flat (no backend grew more than 4096 kB in both of the last two windows: at most ${both} kB in both)" $([ "$nb" -ge $((clients / 2)) ] && [ "$both" -le 4096 ] && echo 0 || echo 1)

# the same switches in one session, alone: a backend's memory is then the
# same after every round (no other session decides which deployment it
# loads or when), so growth from the second round to the third is a leak,
# however small.  A round: 30 switches through the three deployments, each
# followed by the 64 chips one at a time and in a batch
coproc ONE { psql -XAtq -d "$db" 2>>"$err.one"; }
round() {
	local k
	for k in $(seq 0 29); do
		ask "${ONE[1]}" "${ONE[0]}" 120 "$(deploy_sql $k)" \
			"SELECT count(iceml_predict('load', band_1, band_2, inc_angle)) FROM load_chips" \
			"SELECT count(probability) FROM iceml.predict_table('load', 'load_chips')" >/dev/null || return 1
	done
}
onepid=$(ask "${ONE[1]}" "${ONE[0]}" 60 "SELECT pg_backend_pid()")
rss_one() { awk '/^RssAnon/ { print $2 }' "/proc/$onepid/status" 2>/dev/null; }
r1= r2= r3=
round && r1=$(rss_one) && round && r2=$(rss_one) && round && r3=$(rss_one)
eval "exec ${ONE[1]}>&-"; wait "$ONE_PID"
echo "# one session alone, 90 switches: private memory ${r1:-?} kB after 30, ${r2:-?} kB after 60, ${r3:-?} kB after 90"
# (64 kB: a page or two malloc touches late; a leak of one 3x75x75 input
# buffer a switch shows as 2 MB)
check "one session's memory flat over switches (growth from 60 to 90 switches: $(( ${r3:-0} - ${r2:-0} )) kB, at most 64)" \
	$([ -n "$r3" ] && [ ! -s "$err.one" ] && [ "$r3" -le $(( ${r2:-0} + 64 )) ] && echo 0 || echo 1)
[ -s "$err.one" ] && head -3 "$err.one"

rm -f "$out" "$err" "$err.deploy" "$err.one"
[ -n "${ICEML_LOAD_KEEP:-}" ] || psql -XAtq -d postgres -c "DROP DATABASE $db" >/dev/null 2>&1 || true
echo "load: $passed passed, $failed failed"
[ "$failed" -eq 0 ]
