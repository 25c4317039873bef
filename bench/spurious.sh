#!/usr/bin/env bash
# bench/spurious.sh [SECONDS] [RATE] -- spurious elections in a 3-agent cluster.
#
# Starts slapd, the SCIM fixture and 3 agents (T = ${T:-1000} ms), lets them run
# SECONDS (default 600) idle (RATE 0) or under RATE changes a second, then
# prints, per agent, elections started, times it was deposed while alive
# (failover.spurious_elections) and the final term. On loopback all must stay 0
# after the first election: a term above the first leader's means some
# follower missed its leader's heartbeats for T/3.
BENCH_SRC=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
export CANOPY_SOURCE_DIR=${CANOPY_SOURCE_DIR:-$(cd "$BENCH_SRC/.." && pwd)}
source "$CANOPY_SOURCE_DIR/tests/fixtures/sync.sh"
source "$CANOPY_SOURCE_DIR/tests/fixtures/failover.sh"
SECS=${1:-600} RATE=${2:-0}
ELECTION_TIMEOUT_MS=${T:-1000}
dir=$(fixture_tmpdir)
sync_setup 1000 10
sync_start_cluster 3
wait_until 60 ready_leader 1 2 3 || fail "no leader"
wait_until 120 idle_leader 1 2 3 || fail "initial sync did not finish"
term0=$(json_eval "$(agent_status 1)" 'j.term')
[ "$RATE" -gt 0 ] && failover_stream 1000 "$(awk "BEGIN{print 1/$RATE}")"
end=$((SECONDS + SECS))
while [ "$SECONDS" -lt "$end" ]; do sleep 5; done
echo "T=${ELECTION_TIMEOUT_MS} ms, ${SECS} s, ${RATE} changes/s; term at start of the run: $term0"
for i in 1 2 3; do
	json_eval "$(agent_status "$i")" '"agent '"$i"': role " + j.role + ", term " + j.term + ", elections " + j.failover.elections + ", spurious " + j.failover.spurious_elections + ", early elections " + j.failover.early_elections + ", vote retries " + j.failover.vote_retries + ", watch drops " + j.failover.watch_drops'
done
