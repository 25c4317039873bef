#!/usr/bin/env bash
# wait_until SECS CMD (tests/fixtures/lib.sh, with sync.sh) gives up after SECS seconds of
# wall-clock time however long each poll of CMD takes, and not before: it
# used to count 50 ms polls (SECS * 20 of them), so a poll of 1 s stretched
# a 2 s limit to 42 s, and every limit stretched on a loaded machine.
ROOT=${CANOPY_SOURCE_DIR:-$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)}
# shellcheck source=../fixtures/sync.sh
. "$ROOT/tests/fixtures/sync.sh"

dir=$(fixture_tmpdir)
slow_no() { echo x >>"$dir/polls"; sleep 1; return 1; }
t0=$SECONDS
if wait_until 2 slow_no; then fail "wait_until succeeded on a command that always fails"; fi
took=$((SECONDS - t0)) polls=$(grep -c . "$dir/polls")
# 1 s polls over a 2 s limit: polls start near 0, 1 and 2 s, then it
# gives up, about 3 s in. The old count would have run 40 polls (42 s).
[ "$took" -lt 15 ] || fail "wait_until 2 with 1 s polls took $took s ($polls polls): the limit is not wall-clock"
[ "$polls" -ge 2 ] || fail "wait_until 2 gave up after $polls poll(s) of 1 s, in $took s: before its limit"
pass "wait_until 2 with 1 s polls gave up after $took s and $polls polls"

: >"$dir/polls"
third_time() { echo x >>"$dir/polls"; [ "$(grep -c . "$dir/polls")" -ge 3 ]; }
wait_until 5 third_time || fail "wait_until did not return when the command succeeded"
[ "$(grep -c . "$dir/polls")" = 3 ] || fail "wait_until polled $(grep -c . "$dir/polls") times for a command that succeeds on the 3rd"
pass "wait_until returns at the first success"

t0=$SECONDS
wait_secs 1 false && fail "wait_secs succeeded on false"
[ $((SECONDS - t0)) -lt 10 ] || fail "wait_secs 1 false took $((SECONDS - t0)) s"
pass "wait_secs is the same"
