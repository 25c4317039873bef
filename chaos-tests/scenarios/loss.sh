#!/usr/bin/env bash
# chaos-tests/scenarios/loss.sh [--long [SECS]] -- random packet loss between
# the agents (nftables `numgen random mod 100 < P drop` in every agent's
# namespace, both directions; slapd and the target are not affected) under the
# change stream. Loss delays heartbeats and appends (TCP retransmits), so
# elections may come and go; the verdict must hold, and once the loss stops a
# leader must be ready and the cluster settle.
#
# Short mode: 10 % for 10 s, then 30 % for 10 s. Long mode: 5, 10, 20, 30, 40 %
# for 30 s each, repeated until SECS are over.
source "$(dirname "$0")/../lib/scenario.sh"
scenario_init loss "$@"

T=${CHAOS_T:-1000}
export ELECTION_TIMEOUT_MS=$T HEARTBEAT_MS=$((T / 10))
chaos_cluster 3
chaos_workload_start "${CHAOS_RATE:-20}"
sleep 1

elections() { # summed over the nodes: elections started, spurious ones
	local i e=0 s=0 st
	for i in 1 2 3; do
		st=$(agent_status "$i" 2>/dev/null) || continue
		e=$((e + $(json_eval "$st" 'j.failover && j.failover.elections || 0')))
		s=$((s + $(json_eval "$st" 'j.failover && j.failover.spurious_elections || 0')))
	done
	echo "$e elections ($s spurious)"
}
loss_phase() {
	local pct=$1 secs=$2 i t0
	t0=$(host_term "$(host_leader || echo 1)")
	say "before $pct % loss: $(elections)"
	for i in 1 2 3; do host_loss "$i" "$pct"; done
	sleep "$secs"
	hosts_heal
	local healed=$(now_ms)
	wait_for 20 host_leader || chaos_bad "no ready leader 20 s after $pct % loss stopped"
	local ready_ms=$(($(now_ms) - healed))
	chaos_note "$pct % loss between the agents for ${secs}s: term $t0 -> $(host_term "$(host_leader)"), now $(elections) counted on the nodes; a ready leader ${ready_ms} ms after the loss stopped"
}

if [ "$CHAOS_LONG" = 1 ]; then
	while [ "$(chaos_elapsed_s)" -lt "$CHAOS_DURATION" ]; do
		for p in 5 10 20 30 40; do loss_phase "$p" 30; done
	done
else
	loss_phase 10 10
	loss_phase 30 10
fi
chaos_verdict
