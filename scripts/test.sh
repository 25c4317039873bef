#!/usr/bin/env bash
# scripts/test.sh -- install what is missing, build, and run every test.
#
# Two builds: build/ (RelWithDebInfo) and build-asan/ (AddressSanitizer +
# UndefinedBehaviorSanitizer). Both run the suite through ctest: unit tests
# (cmocka) and integration tests against real slapd, a real SCIM server, a
# Samba AD DC and real agent processes; the normal build also runs the chaos
# scenarios' short modes (label chaos, chaos-tests/: ~7 minutes of faults on
# agents in network namespaces). Under the sanitizers the chaos label is left
# out by default to keep CI within its 30 minutes (the agents' code paths are
# the integration tests'); ASAN_CHAOS=1 includes it. So is the label fixture:
# tests of the test fixtures alone (Samba, slapd, the Node servers), which run
# no canopy C code for the sanitizers to check, and the label heavy: large or
# long tests whose C code paths smaller tests run under the sanitizers too
# (tests/CMakeLists.txt names them). Before them, each libFuzzer
# target runs briefly. build-release/ is compiled (no tests) with
# CMAKE_BUILD_TYPE=Release: -O3 finds warnings (-Wmaybe-uninitialized, ...)
# that -O2 and -O0 do not, and -Werror makes them fail CI; it and the normal
# build compile at nice 19 while the ASan tests run. ctest starts the longest
# tests first (COST, tests/CMakeLists.txt). The last line printed is ctest's
# summary.
#
#   scripts/test.sh              everything
#   scripts/test.sh -L unit      only tests with that ctest label (unit|integration|chaos)
#   SKIP_ASAN=1 scripts/test.sh  only the normal build
#   SKIP_FUZZ=1 scripts/test.sh  without the fuzzing run (tests/fuzz/run.sh)
#   ASAN_CHAOS=1 scripts/test.sh the chaos scenarios under the sanitizers too
#   SKIP_RELEASE=1 scripts/test.sh  without the Release compile
set -euo pipefail
cd "$(dirname "$0")/.."

scripts/install-deps.sh
# installed now: status_page_test must run in Chromium, not skip
export CANOPY_REQUIRE_BROWSER=1
# and source_389ds_test against 389 Directory Server (389-ds-base)
export CANOPY_REQUIRE_389DS=1

jobs=$(nproc 2>/dev/null || echo 2)

build() {
	local dir=$1; shift
	cmake -S . -B "$dir" "$@" >/dev/null
	cmake --build "$dir" -j "$jobs"
}

# Leak checking needs ptrace-free LSan; report UBSan findings with a stack.
export ASAN_OPTIONS=${ASAN_OPTIONS:-detect_leaks=1:abort_on_error=1}
export UBSAN_OPTIONS=${UBSAN_OPTIONS:-print_stacktrace=1:halt_on_error=1}

rc=0
# Each phase header says when it starts (seconds since this script started),
# so that a CI log shows where the 30 minutes go.
t0=$SECONDS
phase() { echo "== $* [at $((SECONDS - t0)) s] =="; }
# The previous release that upgrade_rolling_test upgrades from is built once
# (not sanitized) and shared by both passes (tests/fixtures/previous_build.sh).
export CANOPY_PREVIOUS_CACHE=${CANOPY_PREVIOUS_CACHE:-$PWD/build/previous}
# libFuzzer targets (tests/fuzz): each runs FUZZ_SECONDS from its seed
# corpus; a crash, leak or sanitizer report fails the run. SKIP_FUZZ=1 skips.
# First, so that ctest's summary stays the last line.
if [ -z "${SKIP_FUZZ:-}" ] && [ $# -eq 0 ]; then
	phase "fuzzing (${FUZZ_SECONDS:-20} s per target)"
	FUZZ_JOBS=$jobs tests/fuzz/run.sh "${FUZZ_SECONDS:-20}" || rc=$?
fi
# The Release compile and the normal build run at nice 19 while the ASan
# tests run: those wait on timeouts, servers and the network much of the
# time, and at nice 19 the compilers only take the CPU the tests leave idle
# (the scheduler weighs nice 19 about 1/70 of nice 0), so a test's timing is
# as without them and the builds cost little wall time. Their output goes to
# build-logs/ and is shown when one fails.
mkdir -p build-logs
rm -f build-logs/release.failed build-logs/times
bg_builds() {
	renice -n "$1" -p "$BASHPID" >/dev/null # before any compiler starts: they inherit it
	shift
	# The product only (agent, canopyctl, every module; the bench tools):
	# the tests' own C is compiled by the two builds that run it.
	local t=$SECONDS
	if [ -z "${SKIP_RELEASE:-}" ] && [ $# -eq 0 ]; then
		build build-release -DCMAKE_BUILD_TYPE=Release -DCANOPY_TESTS=OFF >build-logs/release.log 2>&1 ||
			: >build-logs/release.failed
		echo "Release $((SECONDS - t)) s" >build-logs/times
		t=$SECONDS
	fi
	build build -DCMAKE_BUILD_TYPE=RelWithDebInfo >build-logs/normal.log 2>&1 &&
		echo "normal $((SECONDS - t)) s, done at $((SECONDS - t0)) s" >>build-logs/times
}
if [ -z "${SKIP_ASAN:-}" ]; then
	phase "sanitizer build (ASan + UBSan)"
	build build-asan -DCMAKE_BUILD_TYPE=Debug -DCANOPY_SANITIZE=ON
	phase "ASan tests; Release compile (-O3, -Werror; no tests) and normal build at nice 19 meanwhile"
	bg_builds 19 "$@" &
	bg_pid=$!
	asan_args=("$@")
	if [ $# -eq 0 ]; then
		asan_args=(-LE 'chaos|fixture|heavy')
		[ -n "${ASAN_CHAOS:-}" ] && asan_args=(-LE 'fixture|heavy')
	fi
	(cd build-asan && ctest --output-on-failure -j "$jobs" "${asan_args[@]}") || rc=$?
else
	phase "Release compile (-O3, -Werror; no tests) and normal build"
	bg_builds 0 "$@" &
	bg_pid=$!
fi
bg_rc=0
wait "$bg_pid" || bg_rc=$?
if [ -e build-logs/release.failed ]; then
	cat build-logs/release.log
	echo "== Release compile FAILED (build-logs/release.log) =="
	rc=1
fi
if [ "$bg_rc" -ne 0 ]; then
	cat build-logs/normal.log
	echo "== normal build FAILED (build-logs/normal.log) =="
	exit 1
fi
phase "normal tests (builds: $(cat build-logs/times 2>/dev/null | tr '\n' ' '))"
(cd build && ctest --output-on-failure -j "$jobs" "$@") || rc=$?
exit $rc
