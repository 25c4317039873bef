#!/usr/bin/env bash
# chaos-tests/scenarios/leader-pause.sh [--long [SECS]] -- SIGSTOP the leader
# for longer than the election timeout, under a change stream, then SIGCONT it.
#
# A frozen process is the failure a lease exists for: it holds connections,
# its requests may be half sent, and when it wakes it still believes it leads
# until it hears otherwise. Per round: stop the leader for 3 T; a new leader
# must be ready; the SCIM audit must then show no 2xx write of the old term
# (or an older one) audited after the new term's first write, nor after the
# old leader was woken; the woken agent must become a follower.
#
# Short mode: 2 rounds. Long mode: rounds until SECS are over. Env: CHAOS_T
# (election_timeout_ms, default 1000), CHAOS_PAUSE_MS (default 3 T).
source "$(dirname "$0")/../lib/scenario.sh"
scenario_init leader-pause "$@"

T=${CHAOS_T:-1000}
PAUSE_MS=${CHAOS_PAUSE_MS:-$((3 * T))}
export ELECTION_TIMEOUT_MS=$T HEARTBEAT_MS=$((T / 10))
chaos_cluster 3
chaos_workload_start "${CHAOS_RATE:-20}"
sleep 1

round=0
pause_round() {
	local L LT rest=() i k NL NT first late woke late_woke
	round=$((round + 1))
	wait_for 30 host_leader || { chaos_bad "round $round: no ready leader before the pause"; return 1; }
	L=$(host_leader)
	LT=$(host_term "$L")
	for i in 1 2 3; do [ "$i" != "$L" ] && rest+=("$i"); done
	k=$(now_ms)
	host_pause "$L"
	_new() { local n; n=$(host_leader "${rest[@]}") && [ "$(host_term "$n")" -gt "$LT" ]; }
	if ! wait_for 15 _new; then
		host_cont "$L"
		chaos_bad "round $round: no new leader 15 s after SIGSTOP of $L"
		return 1
	fi
	NL=$(host_leader "${rest[@]}")
	NT=$(host_term "$NL")
	_wrote() { node "$CHAOS_DIR/lib/audit.js" first-write "$SCIM_AUDIT" "$NT"; }
	wait_for 15 _wrote || chaos_bad "round $round: the new leader $NL wrote nothing in term $NT"
	first=$(_wrote)
	while [ $(($(now_ms) - k)) -lt "$PAUSE_MS" ]; do sleep 0.05; done
	host_cont "$L"
	woke=$(now_ms)
	_follows() { [ "$(json_eval "$(agent_status "$L")" 'j.role')" = follower ]; }
	wait_for 15 _follows || chaos_bad "round $round: the woken old leader $L is not a follower 15 s later"
	sleep 1
	late=$(node "$CHAOS_DIR/lib/audit.js" term-after "$SCIM_AUDIT" "$LT" "${first:-$woke}")
	late_woke=$(node "$CHAOS_DIR/lib/audit.js" term-after "$SCIM_AUDIT" "$LT" "$woke")
	say "round $round: paused $L (term $LT) for $PAUSE_MS ms -> $NL leads term $NT; new term's first write after $((${first:-$k} - k)) ms; old-term writes after it: $late, after the wake-up: $late_woke"
	[ "$late" = 0 ] || chaos_bad "round $round: $late writes of term <= $LT after term $NT's first write"
	[ "$late_woke" = 0 ] || chaos_bad "round $round: the woken leader $L wrote $late_woke times after SIGCONT"
}

if [ "$CHAOS_LONG" = 1 ]; then
	while [ "$(chaos_elapsed_s)" -lt "$CHAOS_DURATION" ]; do pause_round || break; sleep 2; done
else
	pause_round && sleep 2 && pause_round
fi
chaos_verdict
