#!/usr/bin/env bash
# run.sh SECONDS TARGET... - run each libFuzzer target for SECONDS seconds on
# its corpus (test/fuzz/corpus/<target>, read only) plus a work corpus, and
# print one FUZZ line per target and the "fuzz: N passed, M failed" summary.
set -uo pipefail
cd "$(dirname "$0")"
secs=$1; shift
passed=0 failed=0
mkdir -p work/artifacts
for t in "$@"; do
	mkdir -p "work/$t"
	opts=(-max_total_time="$secs" -print_final_stats=1 -timeout=20
	      -rss_limit_mb=3072 -artifact_prefix="work/artifacts/$t-")
	[ -f "$t.options" ] && read -r -a extra < "$t.options" && opts+=("${extra[@]}")
	log=work/$t.log
	# one job, one core: the machine is shared
	ASAN_OPTIONS=allocator_may_return_null=1:detect_leaks=1 OPENBLAS_NUM_THREADS=1 \
		"./fuzz_$t" "${opts[@]}" "work/$t" "corpus/$t" >"$log" 2>&1
	rc=$?
	runs=$(sed -nE 's/^stat::number_of_executed_units: *([0-9]+).*/\1/p' "$log" | tail -1)
	last=$(grep -E '^#[0-9]+' "$log" | grep -E 'cov: ' | tail -1)
	cov=$(echo "$last" | sed -nE 's/.* cov: ([0-9]+).*/\1/p')
	ft=$(echo "$last" | sed -nE 's/.* ft: ([0-9]+).*/\1/p')
	corp=$(echo "$last" | sed -nE 's/.* corp: ([0-9]+).*/\1/p')
	if [ $rc -eq 0 ]; then
		status=ok; passed=$((passed + 1))
	else
		status=crash; failed=$((failed + 1))
		grep -E 'ERROR|SUMMARY|runtime error|Test unit written' "$log" | head -8
	fi
	echo "FUZZ $t runs=${runs:-0} cov=${cov:-0} ft=${ft:-0} corpus=${corp:-0} seconds=$secs status=$status"
done
echo "fuzz: $passed passed, $failed failed"
[ $failed -eq 0 ]
