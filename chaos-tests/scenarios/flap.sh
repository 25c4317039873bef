#!/usr/bin/env bash
# chaos-tests/scenarios/flap.sh [--long [SECS]] -- the leader's link flaps
# (down, up, down, ...) under the change stream: down for 0.3-1.5 T, up for
# 1-2 s, so some outages are shorter than an election and some longer. The
# cluster may change leaders any number of times; what must hold is the
# verdict (nothing lost or duplicated, no stale-term write) and that a leader
# is ready again soon after the flapping stops.
#
# Short mode: the current leader's link flaps 8 times. Long mode: a new
# leader's link flaps 8 times, again and again, until SECS are over.
source "$(dirname "$0")/../lib/scenario.sh"
scenario_init flap "$@"

T=${CHAOS_T:-1000}
export ELECTION_TIMEOUT_MS=$T HEARTBEAT_MS=$((T / 10))
chaos_cluster 3
chaos_workload_start "${CHAOS_RATE:-20}"
sleep 1

flap_round() {
	local L k link
	wait_for 30 host_leader || { chaos_bad "no ready leader before flapping"; return 1; }
	L=$(host_leader)
	link=${CHAOS_ID}v$L
	say "flapping the link of leader $L (term $(host_term "$L"))"
	for ((k = 0; k < 8; k++)); do
		ip link set "$link" down
		sleep "$(awk -v t="$T" -v r=$((RANDOM % 100)) 'BEGIN{printf "%.3f", t * (0.3 + 1.2 * r / 100) / 1000}')"
		ip link set "$link" up
		sleep "$(awk -v r=$((RANDOM % 100)) 'BEGIN{printf "%.3f", 1 + r / 100}')"
	done
	wait_for 15 host_leader || chaos_bad "no ready leader 15 s after the flapping stopped"
	say "after flapping: leader $(host_leader) term $(host_term "$(host_leader)")"
}

if [ "$CHAOS_LONG" = 1 ]; then
	while [ "$(chaos_elapsed_s)" -lt "$CHAOS_DURATION" ]; do flap_round || break; sleep 3; done
else
	flap_round
fi
chaos_verdict
