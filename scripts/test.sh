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
# the integration tests'); ASAN_CHAOS=1 includes it. Before them, each
# libFuzzer target runs briefly. The last line printed is ctest's summary.
#
#   scripts/test.sh              everything
#   scripts/test.sh -L unit      only tests with that ctest label (unit|integration|chaos)
#   SKIP_ASAN=1 scripts/test.sh  only the normal build
#   SKIP_FUZZ=1 scripts/test.sh  without the fuzzing run (tests/fuzz/run.sh)
#   ASAN_CHAOS=1 scripts/test.sh the chaos scenarios under the sanitizers too
set -euo pipefail
cd "$(dirname "$0")/.."

scripts/install-deps.sh
# installed now: status_page_test must run in Chromium, not skip
export CANOPY_REQUIRE_BROWSER=1

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
# The previous release that upgrade_rolling_test upgrades from is built once
# (not sanitized) and shared by both passes (tests/fixtures/previous_build.sh).
export CANOPY_PREVIOUS_CACHE=${CANOPY_PREVIOUS_CACHE:-$PWD/build/previous}
# libFuzzer targets (tests/fuzz): each runs FUZZ_SECONDS from its seed
# corpus; a crash, leak or sanitizer report fails the run. SKIP_FUZZ=1 skips.
# First, so that ctest's summary stays the last line.
if [ -z "${SKIP_FUZZ:-}" ] && [ $# -eq 0 ]; then
	echo "== fuzzing (${FUZZ_SECONDS:-20} s per target) =="
	FUZZ_JOBS=$jobs tests/fuzz/run.sh "${FUZZ_SECONDS:-20}" || rc=$?
fi
if [ -z "${SKIP_ASAN:-}" ]; then
	echo "== sanitizer build (ASan + UBSan) =="
	build build-asan -DCMAKE_BUILD_TYPE=Debug -DCANOPY_SANITIZE=ON
	asan_args=("$@")
	[ $# -eq 0 ] && [ -z "${ASAN_CHAOS:-}" ] && asan_args=(-LE chaos)
	(cd build-asan && ctest --output-on-failure -j "$jobs" "${asan_args[@]}") || rc=$?
fi
echo "== normal build =="
build build -DCMAKE_BUILD_TYPE=RelWithDebInfo
(cd build && ctest --output-on-failure -j "$jobs" "$@") || rc=$?
exit $rc
