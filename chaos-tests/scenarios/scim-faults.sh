#!/usr/bin/env bash
# chaos-tests/scenarios/scim-faults.sh [--long [SECS]] -- the SCIM target
# misbehaves under the change stream, on the network (the faultproxy between
# the agents and the target) and in its answers (the fixture's fault
# injection, POST /_test/faults):
#
#   delay     200 ms delay + 300 ms jitter on every chunk
#   resets    5 % of chunks reset their connection (mid-request), 20 % of new
#             connections reset at once
#   stall     every byte held for 2 T + 3 s (longer than a lease), then released:
#             requests written before the stall land late
#   slow      the link throttled to 4 KiB/s
#   5xx       every write answered 503 for 20 requests, then 500 for 10
#   429       15 writes answered 429 with Retry-After: 1
#   drop      10 writes: the connection closed after the write was done (the
#             answer is lost: the agent cannot know it landed)
# Each fault is held for a few seconds (short) or longer (long mode), then
# cleared before the next. What must hold: the verdict (the retry set carries
# every change the target did not take; nothing lost, nothing created twice).
# Leadership should not move (every node sees the same target), so any write
# of an older term after a newer term's first write is still a finding.
source "$(dirname "$0")/../lib/scenario.sh"
scenario_init scim-faults "$@"

T=${CHAOS_T:-1000}
export ELECTION_TIMEOUT_MS=$T HEARTBEAT_MS=$((T / 10))
export TARGET_TIMEOUT_MS=${TARGET_TIMEOUT_MS:-5000}
chaos_cluster 3
chaos_workload_start "${CHAOS_RATE:-20}"
sleep 1
HOLD=$([ "$CHAOS_LONG" = 1 ] && echo 30 || echo 4)

fault() { # NAME then the commands; cleared after HOLD seconds
	local name=$1 t0; shift
	t0=$(host_term "$(host_leader || echo 1)")
	say "fault $name on"
	"$@"
	sleep "$HOLD"
	chaos_proxy scim clear >/dev/null
	scim_fault '{}'
	sleep 2
	say "fault $name off (term $t0 -> $(host_term "$(host_leader || echo 1)"), proxy: $(chaos_proxy scim stats))"
}
p() { local c; for c in "$@"; do chaos_proxy scim "$c" >/dev/null || chaos_bad "proxy refused: $c"; done; }

all_faults() {
	fault delay p "delay 200" "jitter 300"
	fault resets p "reset_mid 5" "reset_new 20"
	fault stall eval 'p "stall on"; sleep $(( (2 * T) / 1000 + 3 ))'
	fault slow p "rate 4096"
	fault 5xx scim_fault '[{"status":503,"count":20,"methods":["POST","PUT","PATCH","DELETE"]},{"status":500,"count":10,"methods":["POST","PUT","PATCH","DELETE"]}]'
	fault 429 scim_fault '{"status":429,"retryAfter":1,"count":15,"methods":["POST","PUT","PATCH","DELETE"]}'
	fault drop scim_fault '{"drop":true,"after":true,"count":10,"methods":["POST","PUT","PATCH","DELETE"]}'
}

if [ "$CHAOS_LONG" = 1 ]; then
	while [ "$(chaos_elapsed_s)" -lt "$CHAOS_DURATION" ]; do all_faults; done
else
	all_faults
fi
chaos_verdict
