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
SECS=${1:-600} RATE=${2:-0}
ELECTION_TIMEOUT_MS=${T:-1000}
dir=$(fixture_tmpdir)
sync_setup 1000 10
sync_start_cluster 3
wait_until 60 ready_leader 1 2 3 || fail "no leader"
wait_until 120 idle_leader 1 2 3 || fail "initial sync did not finish"
term0=$(json_eval "$(agent_status 1)" 'j.term')
if [ "$RATE" -gt 0 ]; then
	export SLAPD_URL SLAPD_ADMIN_DN SLAPD_PW_FILE SLAPD_BASE RATE
	spawn gen "$dir/gen.log" bash -c '
		exec ldapmodify -x -c -H "$SLAPD_URL" -D "$SLAPD_ADMIN_DN" -y "$SLAPD_PW_FILE" < <(
			i=0
			while :; do
				i=$((i + 1))
				printf "dn: uid=user%05d,ou=people,%s\nchangetype: modify\nreplace: givenName\ngivenName: S%d\n\n" \
					$(( (i % 1000) + 1 )) "$SLAPD_BASE" "$i"
				sleep "$(awk "BEGIN{print 1/$RATE}")"
			done)'
fi
end=$((SECONDS + SECS))
while [ "$SECONDS" -lt "$end" ]; do sleep 5; done
echo "T=${ELECTION_TIMEOUT_MS} ms, ${SECS} s, ${RATE} changes/s; term at start of the run: $term0"
for i in 1 2 3; do
	json_eval "$(agent_status "$i")" '"agent '"$i"': role " + j.role + ", term " + j.term + ", elections " + j.failover.elections + ", spurious " + j.failover.spurious_elections'
done
