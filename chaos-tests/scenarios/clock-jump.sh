#!/usr/bin/env bash
# chaos-tests/scenarios/clock-jump.sh [--long [SECS]] -- the wall clock of an
# agent jumps (an NTP step, a VM restored), under the change stream.
#
# Every agent runs under libfaketime (LD_PRELOAD) with its offset read from a
# file of its own (re-read every second); the monotonic clock is left alone
# (FAKETIME_DONT_FAKE_MONOTONIC=1), as on a real host whose wall clock is
# stepped. Timeouts, the lease and the hold must run on the monotonic clock,
# so nothing may change but timestamps: the leader's clock jumps +1 h, then
# -1 h (back to normal), then a follower's -10 min; each held for 5 s.
# What must hold: the verdict, no leader change caused by the jump (noted if
# one happens), and no write of an older term after a newer term's first.
#
# Short mode: the three jumps once. Long mode: repeated until SECS are over.
source "$(dirname "$0")/../lib/scenario.sh"
scenario_init clock-jump "$@"

LIBFAKETIME=${LIBFAKETIME:-$(ls /usr/lib/*/faketime/libfaketime.so.1 2>/dev/null | head -n1)}
[ -n "$LIBFAKETIME" ] || fail "libfaketime not found: scripts/install-deps.sh installs faketime"
T=${CHAOS_T:-1000}
export ELECTION_TIMEOUT_MS=$T HEARTBEAT_MS=$((T / 10))
dir=$(fixture_tmpdir)
for i in 1 2 3; do echo "+0" >"$dir/faketime$i"; done
CHAOS_AGENT_WRAP="env LD_PRELOAD=$LIBFAKETIME FAKETIME_TIMESTAMP_FILE=$dir/faketime@ID@ FAKETIME_CACHE_DURATION=1 FAKETIME_DONT_FAKE_MONOTONIC=1"
chaos_cluster 3
chaos_workload_start "${CHAOS_RATE:-20}"
sleep 2

jump() { # leader|follower OFFSET
	local who=$1 off=$2 L X i t0 t1
	wait_for 30 host_leader || { chaos_bad "no ready leader before the clock jump"; return 1; }
	L=$(host_leader)
	if [ "$who" = leader ]; then X=$L; else for i in 1 2 3; do [ "$i" != "$L" ] && { X=$i; break; }; done; fi
	t0=$(host_term "$L")
	echo "$off" >"$dir/faketime$X"
	sleep 5
	t1=$(host_term "$(host_leader || echo "$L")")
	say "clock of $who $X at $off: term $t0 -> $t1, leader $(host_leader || echo none), its time: $(json_eval "$(agent_status "$X" 2>/dev/null || echo '{}')" 'j.sync && j.sync.cursor_updated_at')"
	[ "$t0" = "$t1" ] || chaos_note "the clock jump of $who $X to $off changed the term ($t0 -> $t1)"
}

round() {
	jump leader +3600s
	jump leader +0
	jump follower -600s
	for i in 1 2 3; do echo "+0" >"$dir/faketime$i"; done
	sleep 2
}
if [ "$CHAOS_LONG" = 1 ]; then
	while [ "$(chaos_elapsed_s)" -lt "$CHAOS_DURATION" ]; do round; done
else
	round
fi
chaos_verdict
