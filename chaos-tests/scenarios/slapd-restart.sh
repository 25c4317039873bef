#!/usr/bin/env bash
# chaos-tests/scenarios/slapd-restart.sh [--long [SECS]] -- the directory goes
# away and comes back while changes are being made:
#
#   restart   slapd stopped and started at once (same port, same data)
#   outage    slapd down for 10 s (every agent's health check fails: no
#             hand-over, the leader quarantines source_unreachable), then up
#   stall     slapd's connections stalled in the proxy for 5 s (a hung
#             server: connected, nothing answers), then reset
# The change stream (an LDAP client itself) is stopped before each fault and
# started again after it, with another seed: changes made while slapd is up
# must all arrive, and the RFC 4533 session must resume from the replicated
# cursor, not lose what changed around the restart.
#
# Short mode: each once. Long mode: all of them until SECS are over.
source "$(dirname "$0")/../lib/scenario.sh"
scenario_init slapd-restart "$@"

T=${CHAOS_T:-1000}
export ELECTION_TIMEOUT_MS=$T HEARTBEAT_MS=$((T / 10))
chaos_cluster 3
seed0=$CHAOS_SEED
stream_n=0
stream() {
	stream_n=$((stream_n + 1))
	CHAOS_SEED=$((seed0 + stream_n)) chaos_workload_start "${CHAOS_RATE:-20}"
	cat "$CHAOS_WORKLOAD_LOG" >>"$(fixture_tmpdir)/workload-all.jsonl" 2>/dev/null
}
stream
sleep 3

fault() {
	local name=$1
	chaos_workload_stop
	say "slapd fault $name"
	case $name in
	restart) slapd_restart || chaos_bad "slapd did not restart" ;;
	outage)
		slapd_stop
		sleep 10
		slapd_restart || chaos_bad "slapd did not restart" ;;
	stall)
		chaos_proxy ldap "stall on" >/dev/null
		sleep 5
		chaos_proxy ldap reset >/dev/null
		chaos_proxy ldap "stall off" >/dev/null ;;
	esac
	wait_for 20 host_leader || chaos_bad "no ready leader 20 s after the slapd $name"
	stream
	sleep 4
	local st
	st=$(json_eval "$(agent_status "$(host_leader || echo 1)")" 'j.sync.state + (j.sync.quarantine ? " " + j.sync.quarantine.reason : "")')
	say "after slapd $name: leader $(host_leader) sync $st"
}

if [ "$CHAOS_LONG" = 1 ]; then
	while [ "$(chaos_elapsed_s)" -lt "$CHAOS_DURATION" ]; do fault restart; fault outage; fault stall; done
else
	fault restart
	fault outage
	fault stall
fi
chaos_verdict
