#!/usr/bin/env bash
# tests/fuzz/run.sh [SECONDS] -- build the libFuzzer targets with clang and run
# each for SECONDS (default 20) from its seed corpus (tests/fuzz/corpus/NAME,
# read only: new inputs go to a scratch copy). Exits non-zero when a target
# crashes, leaks or trips a sanitizer; the reproducer is left in
# build-fuzz/crashes/. Environment: FUZZ_BUILD_DIR (default build-fuzz),
# FUZZ_TARGETS (names, default all), FUZZ_JOBS (targets at once, default 1).
set -euo pipefail
cd "$(dirname "$0")/../.."
secs=${1:-20}
build=${FUZZ_BUILD_DIR:-build-fuzz}
jobs=${FUZZ_JOBS:-1}

CC=${CC:-clang} cmake -S . -B "$build" -DCANOPY_FUZZ=ON -DCMAKE_BUILD_TYPE=Debug >/dev/null
targets=${FUZZ_TARGETS:-$(ls tests/fuzz/fuzz_*.c | sed 's#.*/fuzz_\(.*\)\.c#\1#')}
# shellcheck disable=SC2086
cmake --build "$build" -j "$(nproc 2>/dev/null || echo 2)" --target $(printf 'fuzz_%s ' $targets) >/dev/null

mkdir -p "$build/crashes" "$build/logs"
export ASAN_OPTIONS=${ASAN_OPTIONS:-detect_leaks=1}
export UBSAN_OPTIONS=${UBSAN_OPTIONS:-print_stacktrace=1:halt_on_error=1}

run_one() {
	local t=$1 work="$build/corpus/$1" log="$build/logs/$1.log"
	mkdir -p "$work"
	local dict=()
	[ -f "tests/fuzz/$t.dict" ] && dict=(-dict="tests/fuzz/$t.dict") # names and operators of a language
	"$build/tests/fuzz/fuzz_$t" "${dict[@]}" -max_total_time="$secs" -timeout=10 -rss_limit_mb=2048 \
		-print_final_stats=1 -artifact_prefix="$build/crashes/$t-" \
		"$work" "tests/fuzz/corpus/$t" >"$log" 2>&1
}

rc=0
pids=()
names=()
for t in $targets; do
	run_one "$t" &
	pids+=($!)
	names+=("$t")
	if [ "${#pids[@]}" -ge "$jobs" ]; then
		if ! wait "${pids[0]}"; then rc=1; echo "fuzz_${names[0]}: FAILED (see $build/logs/${names[0]}.log)"; fi
		pids=("${pids[@]:1}")
		names=("${names[@]:1}")
	fi
done
for i in "${!pids[@]}"; do
	if ! wait "${pids[$i]}"; then rc=1; echo "fuzz_${names[$i]}: FAILED (see $build/logs/${names[$i]}.log)"; fi
done
for t in $targets; do
	log="$build/logs/$t.log"
	stats=$(grep -E '^#[0-9]+.*(DONE|cov:)' "$log" | tail -1 || true)
	execs=$(grep -E 'stat::number_of_executed_units' "$log" | awk '{print $2}' || true)
	speed=$(grep -E 'stat::average_exec_per_sec' "$log" | awk '{print $2}' || true)
	echo "fuzz_$t: ${execs:-?} execs, ${speed:-?}/s, ${stats#*cov: }" | sed 's/ ft:.*//;s/, cov/, cov/'
done
exit $rc
