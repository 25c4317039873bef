#!/usr/bin/env bash
# deploy/rolling-upgrade.sh on a cluster of this build: --dry-run plans the
# leader last and changes nothing; agents already on the wanted version are
# skipped; a restart command that fails, or an agent that never reports the
# wanted version, aborts at once with the reason (exit 1) and restarts
# nothing more; usage errors exit 2.
source "$(dirname "$0")/../fixtures/sync.sh"
SCRIPT=$CANOPY_SOURCE_DIR/deploy/rolling-upgrade.sh
VERSION=$("$CANOPY_AGENT" --version)
dir=$(fixture_tmpdir)
command -v jq >/dev/null || { echo "SKIP: jq is not installed"; exit 77; }

sync_setup 10 1
sync_start_cluster 3
wait_secs 60 idle_leader 1 2 3 || fail "no idle leader"
L=$(idle_leader 1 2 3)
# every member's version recorded, so the script can tell who is done
recorded() { [ "$(json_eval "$(agent_status "$L")" 'j.format.records')" = 3 ]; }
wait_secs 20 recorded || fail "versions not recorded: $(agent_status "$L")"
pids="${AGENT_PID[1]} ${AGENT_PID[2]} ${AGENT_PID[3]}"
run() { # ARGS...: runs the script; RC, OUT (stdout + stderr)
	RC=0
	OUT=$("$SCRIPT" --server "${AGENT_CTL[1]}" --canopyctl "$CANOPY_BUILD_DIR/canopyctl" "$@" 2>&1) || RC=$?
}

run --version "canopy-agent 9.9.9" --restart-cmd "echo restart {id} >>'$dir/restarts'" --dry-run
[ "$RC" = 0 ] || fail "dry run: exit $RC: $OUT"
[ "$(grep -c '^.* would run: echo restart' <<<"$OUT")" = 3 ] || fail "dry run: not 3 commands: $OUT"
[ "$(grep 'would run:' <<<"$OUT" | tail -n 1 | sed -n 's/.*restart \([0-9]*\) .*/\1/p')" = "$L" ] ||
	fail "dry run: the leader ($L) is not last: $OUT"
[ ! -e "$dir/restarts" ] || fail "dry run ran a command"
pass "dry run: 3 agents, leader $L last, nothing run"

run --version "$VERSION" --restart-cmd "echo restart {id} >>'$dir/restarts'"
[ "$RC" = 0 ] || fail "already upgraded: exit $RC: $OUT"
[ "$(grep -c 'already runs' <<<"$OUT")" = 3 ] || fail "not every agent skipped: $OUT"
[ ! -e "$dir/restarts" ] || fail "an agent on the wanted version was restarted: $(cat "$dir/restarts")"
grep -q '^export gap: ' <<<"$OUT" || fail "no export gap printed: $OUT"
pass "every agent already on \"$VERSION\": skipped, nothing restarted"

run --version "canopy-agent 9.9.9" --restart-cmd "echo restart {id} >>'$dir/restarts'; exit 3"
[ "$RC" = 1 ] || fail "failing restart command: exit $RC: $OUT"
grep -q 'ABORTED: restart command for agent [0-9]* failed (exit 3)' <<<"$OUT" || fail "no clear reason: $OUT"
[ "$(wc -l <"$dir/restarts")" = 1 ] || fail "went on after a failed step: $(cat "$dir/restarts")"
[ "$(cut -d' ' -f2 "$dir/restarts")" != "$L" ] || fail "started with the leader"
pass "a failing restart command aborts after the first agent: $(grep ABORTED <<<"$OUT")"

rm -f "$dir/restarts"
run --version "canopy-agent 9.9.9" --restart-cmd "echo restart {id} >>'$dir/restarts'" --timeout 2
[ "$RC" = 1 ] || fail "never the wanted version: exit $RC: $OUT"
grep -q 'ABORTED: agent [0-9]* answering with version "canopy-agent 9.9.9": not within 2s' <<<"$OUT" ||
	fail "no clear reason: $OUT"
[ "$(wc -l <"$dir/restarts")" = 1 ] || fail "went on after a failed step: $(cat "$dir/restarts")"
pass "an agent that does not come back on the version aborts: $(grep ABORTED <<<"$OUT")"

run --restart-cmd true
[ "$RC" = 2 ] || fail "no --version: exit $RC: $OUT"
run --version x --bogus
[ "$RC" = 2 ] || fail "unknown option: exit $RC: $OUT"
[ "${AGENT_PID[1]} ${AGENT_PID[2]} ${AGENT_PID[3]}" = "$pids" ] && kill -0 ${pids} || fail "an agent was restarted or died"
[ "$(idle_leader 1 2 3)" = "$L" ] || fail "leadership moved"
pass "usage errors exit 2; agents untouched, leader $L still leads"
