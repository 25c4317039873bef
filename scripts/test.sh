#!/usr/bin/env bash
# scripts/test.sh -- install what is missing, build, and run every test.
#
# Two builds: build/ (RelWithDebInfo) and build-asan/ (AddressSanitizer +
# UndefinedBehaviorSanitizer). Both run the whole suite through ctest: unit
# tests (cmocka) and integration tests against real slapd, a real SCIM
# server and real agent processes. Before them, each libFuzzer target runs
# briefly. The last line printed is ctest's summary.
#
#   scripts/test.sh              everything
#   scripts/test.sh -L unit      only tests with that ctest label (unit|integration)
#   SKIP_ASAN=1 scripts/test.sh  only the normal build
#   SKIP_FUZZ=1 scripts/test.sh  without the fuzzing run (tests/fuzz/run.sh)
set -euo pipefail
cd "$(dirname "$0")/.."

scripts/install-deps.sh

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
	(cd build-asan && ctest --output-on-failure -j "$jobs" "$@") || rc=$?
fi
echo "== normal build =="
build build -DCMAKE_BUILD_TYPE=RelWithDebInfo
(cd build && ctest --output-on-failure -j "$jobs" "$@") || rc=$?
exit $rc
