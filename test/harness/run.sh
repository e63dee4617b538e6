#!/usr/bin/env bash
# The whole iceml test suite: installs what is missing, builds, installs into
# the private tree, starts a fresh embedded cluster and runs every runner:
#   1. engine unit tests under AddressSanitizer + UBSan   (test/unit)
#   2. pg_regress                                          (sql/, expected/)
#   3. pgTAP with pg_prove                                 (test/pgtap/*.sql)
#   4. TAP tests with prove (restarts, killed workers)     (test/tap/*.pl)
#   4b. load tests, short form (about a minute)            (test/load/*.sh)
#   4c. libFuzzer targets, short run (10 s each)           (test/fuzz)
#   5. engine learning checks, optimised build             (test/unit learn)
# Each prints its own closing line; the last line sums them up.  Exit status
# is non-zero when anything failed.
set -uo pipefail
repo=$(cd "$(dirname "$0")/../.." && pwd)
cd "$repo"
h=test/harness

"$h/deps.sh" || exit 1
echo "== build and install (private tree, -Wall -Wextra -Werror)"
"$h/cluster.sh" install || exit 1
"$h/cluster.sh" start test fresh || exit 1
eval "$("$h/cluster.sh" env test)"
trap '"$h/cluster.sh" stop test' EXIT

passed=0 failed=0 status=0
tally() { passed=$((passed + $1)); failed=$((failed + $2)); [ "$2" -eq 0 ] || status=1; }

if [ -f test/unit/Makefile ]; then
	echo "== engine unit tests (ASan + UBSan)"
	out=$(make -s -C test/unit check 2>&1); rc=$?
	echo "$out" | tail -40
	line=$(echo "$out" | grep -E '^unit: [0-9]+ passed, [0-9]+ failed' | tail -1)
	p=$(echo "$line" | sed -E 's/unit: ([0-9]+) passed.*/\1/'); f=$(echo "$line" | sed -E 's/.*passed, ([0-9]+) failed.*/\1/')
	[ -n "$line" ] || { p=0; f=1; }
	[ $rc -eq 0 ] || [ "$f" -gt 0 ] || f=1
	tally "$p" "$f"
fi

echo "== pg_regress"
out=$(make -s installcheck 2>&1); rc=$?
echo "$out" | grep -vE '^(echo|\+\+\+|===)' | tail -60
# pg_regress closes with "All N tests passed." or "M of N tests failed."
n=$(echo "$out" | sed -nE 's/.*All ([0-9]+) tests passed.*/\1/p')
nf=0
if [ -z "$n" ]; then
	n=$(echo "$out" | sed -nE 's/.* ([0-9]+) of ([0-9]+) tests failed.*/\2/p'); n=${n:-1}
	nf=$(echo "$out" | sed -nE 's/.* ([0-9]+) of ([0-9]+) tests failed.*/\1/p'); nf=${nf:-1}
fi
[ $rc -eq 0 ] || [ "$nf" -gt 0 ] || nf=1
[ -f regression.diffs ] && [ $rc -ne 0 ] && head -200 regression.diffs
tally $((n - nf)) "$nf"

echo "== pgTAP (pg_prove)"
psql -X -q -d postgres -c "SET client_min_messages = warning" -c "DROP DATABASE IF EXISTS iceml_tap" -c "CREATE DATABASE iceml_tap"
psql -X -q -d iceml_tap -c "CREATE EXTENSION pgtap" -c "CREATE EXTENSION iceml"
if compgen -G "test/pgtap/*.sql" >/dev/null; then
	out=$(pg_prove -d iceml_tap test/pgtap/*.sql 2>&1); rc=$?
	echo "$out" | tail -30
	tests=$(echo "$out" | sed -nE 's/^Files=[0-9]+, Tests=([0-9]+),.*/\1/p')
	bad=$(echo "$out" | sed -nE 's/.*Failed ([0-9]+)\/[0-9]+ subtests.*/\1/p' | awk '{s += $1} END {print s + 0}')
	tests=${tests:-0}; bad=${bad:-0}
	[ $rc -eq 0 ] || [ "$bad" -gt 0 ] || bad=1
	tally $((tests - bad)) "$bad"
fi

if compgen -G "test/tap/*.pl" >/dev/null; then
	echo "== TAP (prove)"
	out=$(ICEML_CLUSTER=test prove test/tap/*.pl 2>&1); rc=$?
	echo "$out" | tail -30
	tests=$(echo "$out" | sed -nE 's/^Files=[0-9]+, Tests=([0-9]+),.*/\1/p'); tests=${tests:-0}
	[ $rc -eq 0 ] && tally "$tests" 0 || tally 0 1
fi

if compgen -G "test/load/*.sh" >/dev/null; then
	echo "== load tests (short form)"
	for l in test/load/*.sh; do
		out=$("$l" 8 2>&1); rc=$?
		echo "$out" | grep -v '^NOTICE' | tail -12
		line=$(echo "$out" | grep -E '^load: [0-9]+ passed, [0-9]+ failed' | tail -1)
		p=$(echo "$line" | sed -E 's/load: ([0-9]+) passed.*/\1/'); f=$(echo "$line" | sed -E 's/.*passed, ([0-9]+) failed.*/\1/')
		[ -n "$line" ] || { p=0; f=1; }
		[ $rc -eq 0 ] || [ "$f" -gt 0 ] || f=1
		tally "$p" "$f"
	done
fi

if [ -f test/fuzz/Makefile ]; then
	echo "== fuzzing, short run (libFuzzer, ASan + UBSan, ${ICEML_FUZZ_SECONDS:-10} s per target)"
	out=$(make -s -C test/fuzz fuzz FUZZ_SECONDS="${ICEML_FUZZ_SECONDS:-10}" 2>&1); rc=$?
	echo "$out" | tail -20
	line=$(echo "$out" | grep -E '^fuzz: [0-9]+ passed, [0-9]+ failed' | tail -1)
	p=$(echo "$line" | sed -E 's/fuzz: ([0-9]+) passed.*/\1/'); f=$(echo "$line" | sed -E 's/.*passed, ([0-9]+) failed.*/\1/')
	[ -n "$line" ] || { p=0; f=1; }
	[ $rc -eq 0 ] || [ "$f" -gt 0 ] || f=1
	tally "$p" "$f"
fi

if [ -f test/unit/Makefile ] && grep -q '^learn:' test/unit/Makefile; then
	echo "== engine learning checks (optimised)"
	out=$(make -s -C test/unit learn 2>&1); rc=$?
	echo "$out" | tail -20
	line=$(echo "$out" | grep -E '^(unit|learn): [0-9]+ passed, [0-9]+ failed' | tail -1)
	p=$(echo "$line" | sed -E 's/^[a-z]+: ([0-9]+) passed.*/\1/'); f=$(echo "$line" | sed -E 's/.*passed, ([0-9]+) failed.*/\1/')
	[ -n "$line" ] || { p=0; f=1; }
	[ $rc -eq 0 ] || [ "$f" -gt 0 ] || f=1
	tally "$p" "$f"
fi

echo "iceml: $passed passed, $failed failed"
exit $status
