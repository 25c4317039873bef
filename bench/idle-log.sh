#!/usr/bin/env bash
# bench/idle-log.sh [SECONDS] -- how fast an idle cluster's raft log grows.
#
# Starts slapd (20 users), the SCIM fixture and 3 agents (T = ${T:-1000} ms),
# waits for the initial sync and an idle leader, then samples the leader's
# last_index, SECONDS (default 60) apart, and prints the growth scaled to an
# idle hour, with the lease renewals by heartbeat and by barrier meanwhile
# (status failover.lease_heartbeat_renewals / lease_renewal_barriers;
# docs/architecture.md, "Write lease"). An idle leader renews its lease on
# heartbeat answers and appends nothing: 0 entries per idle hour.
BENCH_SRC=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
export CANOPY_SOURCE_DIR=${CANOPY_SOURCE_DIR:-$(cd "$BENCH_SRC/.." && pwd)}
source "$CANOPY_SOURCE_DIR/tests/fixtures/sync.sh"
SECS=${1:-60}
ELECTION_TIMEOUT_MS=${T:-1000}
dir=$(fixture_tmpdir)
sync_setup 20 2
sync_start_cluster 3
users_are() { [ "$(scim_count Users)" = "$1" ]; }
wait_until 60 users_are 20 || fail "initial sync"
wait_until 30 idle_leader 1 2 3 || fail "no idle leader"
L=$(idle_leader 1 2 3)
st() { json_eval "$(agent_status "$L")" "$1"; }
sleep 10 # let the members' version records and the last commits land
a=$(st 'j.last_index') h0=$(st 'j.failover.lease_heartbeat_renewals ?? 0') b0=$(st 'j.failover.lease_renewal_barriers ?? 0')
t0=$SECONDS
sleep "$SECS" # the idle stretch itself
b=$(st 'j.last_index') h1=$(st 'j.failover.lease_heartbeat_renewals ?? 0') b1=$(st 'j.failover.lease_renewal_barriers ?? 0')
t=$((SECONDS - t0))
echo "T=${ELECTION_TIMEOUT_MS} ms; idle leader $L (term $(st 'j.term')): last_index $a -> $b over $t s" \
	"= $(((b - a) * 3600 / t)) entries per idle hour; lease renewals meanwhile: $((h1 - h0)) by heartbeat, $((b1 - b0)) by barrier"
