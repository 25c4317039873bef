#!/usr/bin/env bash
# chaos-tests/scenarios/raft-faults.sh [--long [SECS]] -- faults on the raft
# connections between the agents, through a fault proxy in front of each
# agent's raft port (lib/hosts.sh, CHAOS_RAFT_PROXY), under the change stream:
#
#   delay     every raft message to every agent delayed 0.03 T + up to 0.06 T
#             jitter: slower commits, no election is expected (noted if one
#             happens)
#   one-way   nothing reaches the leader for 3 T while it still reaches its
#             followers (its heartbeats keep them from electing): it cannot
#             commit, so its lease runs out and it must step down; a new
#             leader must follow, and the old term must not write after the
#             new term's first write
#   resets    2 % of raft chunks reset their connection, for 6 s (short)
#   slow      everything to one follower throttled to 16 KiB/s for 6 s (it
#             lags), then released: it must catch up (equal digests)
#
# Short mode: each once. Long mode: repeated until SECS are over.
source "$(dirname "$0")/../lib/scenario.sh"
scenario_init raft-faults "$@"

T=${CHAOS_T:-1000}
export ELECTION_TIMEOUT_MS=$T HEARTBEAT_MS=$((T / 10))
CHAOS_RAFT_PROXY=1 chaos_cluster 3
chaos_workload_start "${CHAOS_RATE:-20}"
sleep 2
HOLD=$([ "$CHAOS_LONG" = 1 ] && echo 30 || echo 6)

raft_all() { local j; for j in 1 2 3; do chaos_proxy "raft$j" "$@" >/dev/null || chaos_bad "raft proxy $j refused: $*"; done; }
leader_or_none() { host_leader || echo none; }

round() {
	local L LT NL NT first late j
	wait_for 30 host_leader || { chaos_bad "no ready leader"; return 1; }
	L=$(host_leader); LT=$(host_term "$L")
	say "delay on (leader $L term $LT)"
	raft_all "delay $((T * 3 / 100))"
	raft_all "jitter $((T * 6 / 100))"
	sleep "$HOLD"
	raft_all clear
	wait_for 15 host_leader || chaos_bad "no ready leader after the raft delay"
	[ "$(host_term "$(leader_or_none)")" = "$LT" ] || chaos_note "raft delay of 0.03 T + 0.06 T jitter changed the term $LT -> $(host_term "$(leader_or_none)")"

	wait_for 30 host_leader || { chaos_bad "no ready leader before one-way"; return 1; }
	L=$(host_leader); LT=$(host_term "$L")
	say "one-way: nothing reaches leader $L (term $LT) for $((3 * T)) ms"
	chaos_proxy "raft$L" "stall on" >/dev/null
	sleep "$(awk -v t="$T" 'BEGIN{print 3 * t / 1000}')"
	chaos_proxy "raft$L" reset >/dev/null
	chaos_proxy "raft$L" "stall off" >/dev/null
	_moved() { local n; n=$(host_leader) && [ "$(host_term "$n")" -gt "$LT" ]; }
	if wait_for 15 _moved; then
		NL=$(host_leader); NT=$(host_term "$NL")
		first=$(node "$CHAOS_DIR/lib/audit.js" first-write "$SCIM_AUDIT" "$NT")
		late=$(node "$CHAOS_DIR/lib/audit.js" term-after "$SCIM_AUDIT" "$LT" "${first:-0}")
		say "one-way: $NL leads term $NT; writes of term <= $LT after its first write: $late"
		[ -z "$first" ] || [ "$late" = 0 ] || chaos_bad "one-way: $late writes of term <= $LT after term $NT's first write"
	else
		chaos_note "one-way: still term $LT 15 s after the stall (leader $(leader_or_none))"
	fi

	say "resets on"
	raft_all "reset_mid 2"
	sleep "$HOLD"
	raft_all clear
	wait_for 15 host_leader || chaos_bad "no ready leader after raft resets"

	L=$(leader_or_none)
	for j in 1 2 3; do [ "$j" != "$L" ] && break; done
	say "slow: everything to follower $j at 16 KiB/s"
	chaos_proxy "raft$j" "rate 16384" >/dev/null
	sleep "$HOLD"
	say "slow: proxy raft$j: $(chaos_proxy "raft$j" stats)"
	say "slow: follower $j applied $(json_eval "$(agent_status "$j")" 'j.applied_index'), leader $(json_eval "$(agent_status "$(leader_or_none)" 2>/dev/null || echo '{}')" 'j.commit_index')"
	chaos_proxy "raft$j" clear >/dev/null
	wait_for 15 host_leader || chaos_bad "no ready leader after the slow link"
}

if [ "$CHAOS_LONG" = 1 ]; then
	while [ "$(chaos_elapsed_s)" -lt "$CHAOS_DURATION" ]; do round || break; done
else
	round
fi
chaos_verdict
