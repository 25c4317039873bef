#!/usr/bin/env bash
# Raft over mutual TLS (raft/transport_tls.h), three real agents on loopback:
#  - certificates from `canopyctl certs`; a 3-node TLS cluster elects a leader,
#    syncs a directory into the SCIM server and says "transport": "tls";
#  - an agent whose certificate comes from another CA, names another node id,
#    or has expired cannot join, and both it and the members say why;
#  - a client holding a VALID member certificate replays the libraft 0.15
#    decoder crashers (96-byte AppendEntries with an entry of type 0, an
#    oversized entry count, a handshake address without NUL): the validator
#    drops each connection, the member stays up and the cluster keeps its leader;
#  - a forged entry from a client without a valid certificate is refused at
#    the TLS layer and never committed;
#  - SIGHUP rotation to new certificates of a new CA while the cluster works;
#  - without cluster.tls: "transport": "plain" and a warning at every start.
source "$(dirname "$0")/../fixtures/sync.sh"
dir=$(fixture_tmpdir)
CTL=$CANOPY_BUILD_DIR/canopyctl
RAFTCLIENT=$CANOPY_BUILD_DIR/tests/raft_wire_client
[ -x "$RAFTCLIENT" ] || fail "test client $RAFTCLIENT not built"

pki=$dir/pki
mkdir -p "$pki"
"$CTL" certs init-ca "$pki/ca" >/dev/null || fail "certs init-ca"
"$CTL" certs init-ca "$pki/other" >/dev/null || fail "certs init-ca (other CA)"
cp "$pki/ca/ca.pem" "$pki/ca.pem"
for i in 1 2 3 4 5 6; do
	"$CTL" certs issue --ca "$pki/ca" --node $i --address 127.0.0.1 --out "$pki/node$i" >/dev/null ||
		fail "certs issue node $i"
done
[ "$(stat -c %a "$pki/node1.key")" = 600 ] || fail "key file mode is $(stat -c %a "$pki/node1.key")"
[ "$(stat -c %a "$pki/ca/ca.key")" = 600 ] || fail "CA key file mode is not 600"
[ "$(openssl x509 -in "$pki/node2.pem" -noout -subject)" = "subject=CN = node-2" ] || fail "CN of node 2"
openssl verify -CAfile "$pki/ca.pem" "$pki/node2.pem" >/dev/null || fail "node 2's certificate does not verify"
pass "canopyctl certs: CA + 6 node certificates (CN node-<id>, keys 0600)"

# Node 4: certificate from another CA. Node 5: a valid certificate of node 6
# (CN node-6 claimed as id 5). Node 6 (below): expired.
"$CTL" certs issue --ca "$pki/other" --node 4 --address 127.0.0.1 --out "$pki/node4" >/dev/null
cp "$pki/node6.pem" "$pki/node5.pem"; cp "$pki/node6.key" "$pki/node5.key"
"$CTL" certs issue --ca "$pki/ca" --node 6 --address 127.0.0.1 --out "$pki/node6" --backdate 3 --days 1 >/dev/null
[ "$(openssl x509 -in "$pki/node6.pem" -noout -checkend 0 >/dev/null; echo $?)" = 1 ] || fail "node 6 cert not expired"

sync_setup 20 3
export CLUSTER_TLS_DIR=$pki
for i in 1 2 3 4 5 6; do agent_ports $i; done  # 4-6: the certificates that must not join
members="[\"1@${AGENT_RAFT[1]}\", \"2@${AGENT_RAFT[2]}\", \"3@${AGENT_RAFT[3]}\"]"
for i in 1 2 3; do sync_agent_config $i "$members"; done
for i in 1 2 3; do agent_start $i; done

wait_until 20 idle_leader 1 2 3 || fail "no idle leader in the TLS cluster"
leader=$(idle_leader 1 2 3)
wait_until 20 sync_compare || fail "SCIM store differs from the directory"
for i in 1 2 3; do
	[ "$(json_eval "$(agent_status $i)" 'j.transport')" = tls ] || fail "node $i transport: $(agent_status $i)"
done
grep -q 'raft transport is plain TCP' "$dir/agent1.log.tmp" && fail "TLS node warned about plain TCP"
pass "3-node TLS cluster: leader $leader, 20 users + 3 groups synced, status transport=tls"

# A change while on TLS goes through too.
slapd_ldapmodify <<LDIF >/dev/null || fail "ldapmodify"
dn: uid=user00001,ou=people,$SLAPD_BASE
changetype: modify
replace: sn
sn: OverTls
LDIF
wait_until 15 sync_compare || fail "change not synced over TLS"
pass "a directory change is exported through the TLS cluster"

# ---- agents that must not join. Each is configured as a 4th voter of its
# own (members 1, 2, 3 and itself), so it campaigns and connects to the
# members by itself: the members must refuse it, and both sides say why.
refused_in_logs() { # PATTERN NODE...: some node's log has PATTERN
	local p=$1 i; shift
	for i in "$@"; do
		grep -q -- "$p" "$dir/agent$i.log.tmp" "$dir/agent$i.log" 2>/dev/null && return 0
	done
	return 1
}
# Node 7: a valid certificate, but not a member.
"$CTL" certs issue --ca "$pki/ca" --node 7 --address 127.0.0.1 --out "$pki/node7" >/dev/null
agent_ports 7
for i in 4 5 6 7; do
	agent_config $i "[\"1@${AGENT_RAFT[1]}\", \"2@${AGENT_RAFT[2]}\", \"3@${AGENT_RAFT[3]}\", \"$i@${AGENT_RAFT[$i]}\"]"
	agent_start $i
done
# Other CA: refused in the TLS handshake ("not issued by cluster.tls.ca"); node 4 hears the alert.
wait_until 20 refused_in_logs "not issued by cluster.tls.ca" 1 2 3 ||
	fail "no member logged the other-CA refusal"
wait_until 20 refused_in_logs "unknown ca" 4 || fail "node 4 does not say why: $(tail -3 "$dir/agent4.log.tmp")"
pass "certificate from another CA: refused; a member and node 4 both log why"
# Wrong id: CN node-6 claimed as server 5.
wait_until 20 refused_in_logs "certificate CN node-6 does not match server id 5" 1 2 3 ||
	fail "no member logged the wrong-id refusal"
wait_until 20 refused_in_logs "certificate CN node-6 does not match server id 5" 5 ||
	fail "node 5 does not say why: $(tail -3 "$dir/agent5.log.tmp")"
pass "certificate of another node id: refused; a member and node 5 both log why"
# Expired.
wait_until 20 refused_in_logs "certificate has expired" 1 2 3 || fail "no member logged the expired certificate"
wait_until 20 refused_in_logs "certificate expired" 6 || fail "node 6 does not say why: $(tail -3 "$dir/agent6.log.tmp")"
refused_in_logs "this node's certificate will be refused" 6 || fail "node 6 did not warn at start"
pass "expired certificate: refused; a member and node 6 log why (node 6 also warned at start)"
# Not a member.
wait_until 20 refused_in_logs "server 7 is not in the cluster configuration" 7 ||
	fail "node 7 does not say why: $(tail -3 "$dir/agent7.log.tmp")"
pass "valid certificate of a non-member (id 7): refused, node 7 logs why"
for i in 4 5 6 7; do
	[ "$(json_eval "$(agent_status $i)" 'j.role')" = leader ] && fail "node $i leads"
	[ "$(json_eval "$(agent_status $i)" 'j.leader.id')" = 0 ] || [ "$(json_eval "$(agent_status $i)" 'j.leader.id')" = null ] ||
		fail "node $i knows a leader: $(agent_status $i)"
done
for i in 4 5 6 7; do agent_stop $i; done
wait_until 20 idle_leader 1 2 3 >/dev/null || fail "cluster lost its leader during the refused joins"
leader=$(idle_leader 1 2 3)

# ---- the validator: a client with a VALID member certificate (node 3's).
follower=$(( leader % 3 + 1 ))
target=${AGENT_RAFT[$follower]}
before_term=$(json_eval "$(agent_status $leader)" 'j.term')
for case in append-type0 oversized-count handshake-no-nul bad-length; do
	out=$("$RAFTCLIENT" --ca "$pki/ca.pem" --cert "$pki/node3.pem" --key "$pki/node3.key" \
		--id 3 --address "${AGENT_RAFT[3]}" --connect "$target" --case $case 2>&1)
	rc=$?
	# The member accepted the TLS session and dropped the connection after
	# the bad message (exit 0 = "dropped").
	[ $rc = 0 ] || fail "case $case (exit $rc): $out"
	kill -0 "${AGENT_PID[$follower]}" || fail "node $follower died on case $case"
done
wait_until 5 refused_in_logs "entry 0 has type 0" $follower || fail "type-0 entry not logged"
refused_in_logs "1099511627776 entries announced" $follower || fail "oversized count not logged"
refused_in_logs "without a NUL" $follower || fail "handshake without NUL not logged"
refused_in_logs "RequestVote: header of 8 bytes" $follower || fail "short RequestVote not logged"
st=$(agent_status $follower)
[ "$(json_eval "$st" 'j.transport_stats.malformed >= 3')" = true ] || fail "malformed counter: $st"
wait_until 10 idle_leader 1 2 3 >/dev/null || fail "cluster lost its leader during the replays"
[ "$(idle_leader 1 2 3)" = "$leader" ] || fail "leadership moved during the replays"
pass "validator: 96-byte type-0 AppendEntries, oversized count, no-NUL handshake, bad lengths dropped; node $follower up, leader $leader kept (term $before_term -> $(json_eval "$(agent_status $leader)" 'j.term'))"

# ---- a forged entry without a valid certificate: refused in TLS.
for creds in "other" "none"; do
	if [ $creds = other ]; then
		args=(--cert "$pki/node4.pem" --key "$pki/node4.key")
	else
		args=()
	fi
	out=$("$RAFTCLIENT" --ca "$pki/ca.pem" "${args[@]}" --id 4 --address 127.0.0.1:1 \
		--connect "$target" --case forged-entry --expect-refused 2>&1) ||
		fail "forged entry ($creds certificate) was not refused: $out"
done
sleep_until_applied() { [ "$(json_eval "$(agent_status $follower)" "j.applied_index === j.commit_index")" = true ]; }
wait_until 5 sleep_until_applied || true
curl -sf "http://${AGENT_CTL[$leader]}/v1/status" >/dev/null || fail "leader down"
grep -rq "forged-by-stranger" "$dir"/data1 "$dir"/data2 "$dir"/data3 2>/dev/null && fail "forged entry reached a log"
pass "forged entry without a valid certificate (other CA, none): refused in the TLS handshake"

# ---- rotation: a new CA; first trust both, then only the new one.
"$CTL" certs init-ca "$pki/ca2" >/dev/null
cat "$pki/ca/ca.pem" "$pki/ca2/ca.pem" >"$pki/ca.pem.new" && mv "$pki/ca.pem.new" "$pki/ca.pem"
reloaded() { local i; for i in 1 2 3; do [ "$(json_eval "$(agent_status $i)" 'j.transport_stats.reloads')" -ge "$1" ] || return 1; done; }
hup_all() { local i; for i in 1 2 3; do kill -HUP "${AGENT_PID[$i]}"; done; wait_until 10 reloaded "$1" || fail "not every node reloaded ($1)"; }
hup_all 1  # trust old + new CA
for i in 1 2 3; do
	"$CTL" certs issue --ca "$pki/ca2" --node $i --address 127.0.0.1 --out "$pki/node$i" >/dev/null
done
hup_all 2  # new certificates
cp "$pki/ca2/ca.pem" "$pki/ca.pem"
hup_all 3  # trust only the new CA
# Cut the established sessions: restart one follower; it must rejoin with new certs only.
f=$(( $(idle_leader 1 2 3) % 3 + 1 ))
agent_stop $f
agent_start $f
wait_until 20 idle_leader 1 2 3 >/dev/null || fail "no idle leader after the rotation"
caught_up() { local l c; l=$(idle_leader 1 2 3) || return 1; c=$(json_eval "$(agent_status $l)" 'j.commit_index'); wait_until 5 applied_at_least $f "$c"; }
applied_at_least() { [ "$(json_eval "$(agent_status $1)" 'j.applied_index')" -ge "$2" ]; }
slapd_ldapmodify <<LDIF >/dev/null || fail "ldapmodify"
dn: uid=user00002,ou=people,$SLAPD_BASE
changetype: modify
replace: sn
sn: AfterRotation
LDIF
wait_until 20 sync_compare || fail "change after rotation not synced"
wait_until 20 caught_up || fail "restarted node $f did not catch up with the new certificates"
for i in 1 2 3; do grep -q "cluster TLS files reloaded" "$dir/agent$i.log.tmp" "$dir/agent$i.log" 2>/dev/null || fail "node $i: no reload line"; done
pass "rotation to a new CA by SIGHUP: cluster kept working, node $f restarted on the new certificates and caught up"

# ---- plain TCP: warning at every start, status says plain.
for i in 1 2 3; do agent_stop $i; done
unset CLUSTER_TLS_DIR
for i in 1 2 3; do sync_agent_config $i "$members"; done
for run in 1 2; do
	for i in 1 2 3; do agent_start $i; done
	wait_until 20 idle_leader 1 2 3 >/dev/null || fail "plain cluster (run $run) has no leader"
	for i in 1 2 3; do
		[ "$(json_eval "$(agent_status $i)" 'j.transport')" = plain ] || fail "node $i not plain"
		[ "$(grep -c 'raft transport is plain TCP' "$dir/agent$i.log.tmp")" = 1 ] || fail "node $i: no plain-TCP warning on start $run"
	done
	for i in 1 2 3; do agent_stop $i; done
done
pass "without cluster.tls: transport=plain, a warning at each of 2 starts"

# Sanitizer builds: no agent reported a memory error or leak along the way.
if grep -l "ERROR: AddressSanitizer\|ERROR: LeakSanitizer\|runtime error:" "$dir"/agent*.log 2>/dev/null; then
	fail "a sanitizer reported an error (see the agent logs above)"
fi
pass "no sanitizer reports in the agents' logs"
