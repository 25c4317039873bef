#!/usr/bin/env bash
# bench/sync_scale.sh [USERS] [GROUPS] [SECS] -- one initial sync at scale by
# 3 agents (slapd and the SCIM fixture from tests/fixtures, on loopback), and
# what it cost the cluster: the time to create every object, the fixture's
# request counts (a create answered 409 was redone after a rewind), and per
# agent the batches cancelled at the end of the write lease ("lease-expired"
# in the provisioning log), the "event loop was blocked" warnings, the
# elections it started, its role, the longest its event loop lagged (status
# loop.lag_max_ms: stalls under the 250 ms warning show here) and how its
# write lease was renewed (failover.lease_*).
# Defaults: 100,000 users, 1,000 groups, 600 s.
# Uses the build in CANOPY_BUILD_DIR (default <source>/build); with
# SYNC_SCALE_KEEP=DIR the agents' logs and provisioning logs are copied there.
set -u
src=$(cd "$(dirname "$0")/.." && pwd)
export CANOPY_SOURCE_DIR=$src CANOPY_BUILD_DIR=${CANOPY_BUILD_DIR:-$src/build}
source "$src/tests/fixtures/sync.sh"
users=${1:-100000} groups=${2:-1000} secs=${3:-600}
created() { curl -s "$SCIM_TEST_URL/stats" | json_get 'j.byStatus["201"] || 0'; }

sync_setup "$users" "$groups" || fail "setup"
t0=$(date +%s%N)
sync_start_cluster 3
end=$((SECONDS + secs))
until [ "$(created)" -ge $((users + groups)) ] 2>/dev/null; do
	[ $SECONDS -lt $end ] || fail "not every object created in $secs s: $(created) of $((users + groups))"
	sleep 0.5
done
t1=$(date +%s%N)
echo "created $((users + groups)) objects in $(((t1 - t0) / 1000000)) ms"
echo "fixture: $(curl -s "$SCIM_TEST_URL/stats")"
for i in 1 2 3; do
	if [ -n "${SYNC_SCALE_KEEP:-}" ]; then
		mkdir -p "$SYNC_SCALE_KEEP" &&
			cp "$FIXTURE_TMP/agent$i.log.tmp" "$SYNC_SCALE_KEEP/agent$i.log" &&
			cp "$FIXTURE_TMP/data$i/provisioning.log" "$SYNC_SCALE_KEEP/provisioning$i.log"
	fi
	echo "agent $i: lease-expired $(grep -c lease-expired "$FIXTURE_TMP/data$i/provisioning.log")," \
		"loop blocked $(grep -c 'event loop was blocked' "$FIXTURE_TMP/agent$i.log.tmp")," \
		"elections started $(grep -c 'election started' "$FIXTURE_TMP/agent$i.log.tmp")," \
		"$(json_eval "$(agent_status "$i")" 'j.role+", loop lag max "+j.loop.lag_max_ms+" ms, lease renewed by heartbeats "+j.failover.lease_heartbeat_renewals+", by barriers "+j.failover.lease_renewal_barriers')"
done
