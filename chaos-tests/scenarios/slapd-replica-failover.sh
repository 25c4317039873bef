#!/usr/bin/env bash
# chaos-tests/scenarios/slapd-replica-failover.sh [--long [SECS]] -- the
# agents read a directory that has a replica, and fail over between the two
# (source.url as a list: docs/configuration.md, source).
#
# A second slapd is a syncrepl consumer (refreshAndPersist) of the fixture's
# slapd, with its own syncprov overlay so that it serves RFC 4533 sessions
# too; entryUUIDs and CSNs are the provider's, so a cursor from one server is
# understood by the other. The agents get source.url: [primary (through the
# LDAP fault proxy), replica (on the bridge address, port 3891)]. The change
# stream writes to the primary all along. Faults:
#   primary   the agents' path to the primary refuses and resets every
#             connection (the proxy: reset_new 100, reset) for HOLD s; the
#             primary itself goes on and keeps feeding the replica: the
#             leader must fail over to the replica and keep exporting
#   replica   the replica stopped for HOLD s, the primary reachable again: an
#             agent reading the replica must go back to the primary; then
#             the replica starts again and catches up by itself
# Exports must go on during each fault (2xx writes in the SCIM audit). The
# verdict (chaos-tests/check.sh, against the primary) then wants nothing
# lost, duplicated or stale, the cursor never back (CSNs from two servers
# included), and equal digests.
#
# Short mode: each fault once, HOLD 10 s. Long mode: both until SECS are over.
# Env: CHAOS_T (election_timeout_ms, default 1000), CHAOS_RATE (default 20),
# CHAOS_HOLD (seconds).
source "$(dirname "$0")/../lib/scenario.sh"
scenario_init slapd-replica-failover "$@"

T=${CHAOS_T:-1000}
HOLD=${CHAOS_HOLD:-10}
export ELECTION_TIMEOUT_MS=$T HEARTBEAT_MS=$((T / 10))
dir=$(fixture_tmpdir)
REPLICA_DIR=$dir/replica
REPLICA_PID=""

replica_conf() {
	mkdir -p "$REPLICA_DIR/data"
	cat >"$REPLICA_DIR/slapd.conf" <<EOF
# a syncrepl consumer of the fixture's slapd, serving RFC 4533 itself
include /etc/ldap/schema/core.schema
include /etc/ldap/schema/cosine.schema
include /etc/ldap/schema/inetorgperson.schema
include /etc/ldap/schema/nis.schema
pidfile $REPLICA_DIR/slapd.pid
argsfile $REPLICA_DIR/slapd.args
modulepath /usr/lib/ldap
moduleload back_mdb
moduleload syncprov

database mdb
suffix "$SLAPD_BASE"
rootdn "$SLAPD_ADMIN_DN"
rootpw $SLAPD_ADMIN_PW
directory $REPLICA_DIR/data
dbnosync
maxsize 1073741824
index objectClass,entryUUID,entryCSN,uid,member eq
limits dn.exact="$SLAPD_ADMIN_DN" size=unlimited time=unlimited
syncrepl rid=001 provider=$SLAPD_URL type=refreshAndPersist retry="1 +" searchbase="$SLAPD_BASE"
  scope=sub schemachecking=off bindmethod=simple binddn="$SLAPD_ADMIN_DN" credentials=$SLAPD_ADMIN_PW
overlay syncprov
syncprov-checkpoint 100 10
syncprov-sessionlog 10000
EOF
}

replica_start() {
	REPLICA_LOCAL=${REPLICA_LOCAL:-ldap://127.0.0.1:$(free_port)/}
	REPLICA_URL=ldap://$CHAOS_BRIDGE_IP:3891/
	spawn replica "$REPLICA_DIR/slapd.log" slapd -d none -f "$REPLICA_DIR/slapd.conf" -h "$REPLICA_URL $REPLICA_LOCAL"
	REPLICA_PID=$SPAWNED_PID
	local port=${REPLICA_LOCAL##*:}
	wait_tcp "${port%/}" 10 || fail "the replica slapd did not start: $(tail -n 5 "$REPLICA_DIR/slapd.log")"
}

replica_stop() {
	kill -TERM "$REPLICA_PID" 2>/dev/null
	wait "$REPLICA_PID" 2>/dev/null
	REPLICA_PID=""
}

context_csn() { # URL
	ldapsearch -x -LLL -o ldif-wrap=no -o nettimeout=3 -H "$1" -D "$SLAPD_ADMIN_DN" -y "$SLAPD_PW_FILE" \
		-s base -b "$SLAPD_BASE" contextCSN 2>/dev/null | sed -n 's/^contextCSN: //p' | sort | tr '\n' ' '
}
replica_caught_up() { local p; p=$(context_csn "$SLAPD_URL"); [ -n "$p" ] && [ "$p" = "$(context_csn "$REPLICA_LOCAL")" ]; }

# The replica must exist before the agents start, and their source.url must
# list both: start it between hosts_setup and hosts_cluster (chaos_cluster
# calls both), and hand sync_agent_config a YAML list as the URL.
eval "_hosts_cluster_plain() $(declare -f hosts_cluster | tail -n +2)"
hosts_cluster() {
	replica_conf
	replica_start
	wait_for 30 replica_caught_up || fail "the replica did not catch up with the primary: $(tail -n 5 "$REPLICA_DIR/slapd.log")"
	say "replica up on $REPLICA_URL ($REPLICA_LOCAL), caught up: contextCSN $(context_csn "$REPLICA_LOCAL")"
	CHAOS_LDAP_URL="[\"$CHAOS_LDAP_URL\", \"$REPLICA_URL\"]"
	_hosts_cluster_plain "$@"
}

chaos_cluster 3
chaos_workload_start "${CHAOS_RATE:-20}"
sleep 3

ok_writes() { node -e 'console.log(require("fs").readFileSync(process.argv[1],"utf8").split("\n").filter(l=>/"status":20[0-9]/.test(l)).length)' "$SCIM_AUDIT"; }
leader_source() { json_eval "$(agent_status "$(host_leader || echo 1)" 2>/dev/null || echo '{}')" 'j.sync && j.sync.source ? (j.sync.source.connected ? "connected" : "not connected") + ": " + j.sync.source.message : "?"'; }

fault() { # primary|replica
	local name=$1 w0 w1
	wait_for 30 host_leader || chaos_bad "no ready leader before the $name fault"
	w0=$(ok_writes)
	case $name in
	primary)
		chaos_proxy ldap "reset_new 100" >/dev/null
		chaos_proxy ldap reset >/dev/null ;;
	replica) replica_stop ;;
	esac
	say "fault $name: started; leader $(host_leader || echo none)"
	sleep "$HOLD"
	w1=$(ok_writes)
	say "fault $name: $((w1 - w0)) writes to the target in $HOLD s; leader $(host_leader || echo none), its source: $(leader_source)"
	[ "$w1" -gt "$w0" ] || chaos_bad "fault $name: nothing exported for $HOLD s while the other server was there"
	case $name in
	primary) chaos_proxy ldap clear >/dev/null ;;
	replica)
		replica_start
		wait_for 30 replica_caught_up || chaos_bad "the restarted replica did not catch up" ;;
	esac
	wait_for 20 host_leader || chaos_bad "no ready leader 20 s after the $name fault"
	sleep 2
}

if [ "$CHAOS_LONG" = 1 ]; then
	while [ "$(chaos_elapsed_s)" -lt "$CHAOS_DURATION" ]; do fault primary; fault replica; done
else
	fault primary
	fault replica
fi
chaos_verdict
