#!/usr/bin/env bash
# A 3-node cluster loses 2 nodes for good (SIGKILL, data dirs deleted). The
# survivor cannot elect a leader; changes made in the directory meanwhile are
# not exported. The operator stops it, runs `canopy-agent --recover-members`
# (shown first without --yes: nothing written), starts it: it elects itself,
# resumes from the replicated cursor and exports the pending changes -- the
# target equals the source and the audit shows no object created twice. A
# fresh node 4 is then added with `canopyctl cluster add` and ends with the
# same state digest. Snapshots are taken every 8 entries, so the survivor's
# configuration comes from a snapshot and node 4 is caught up with one.
# (The refusals, agent running / no --yes / a list
# without this node, are in cluster_recover_refusals_test.sh.)
source "$(dirname "$0")/../fixtures/sync.sh"
source "$(dirname "$0")/../fixtures/failover.sh"
dir=$(fixture_tmpdir)
SNAPSHOT_THRESHOLD=8 SNAPSHOT_TRAILING=2

sync_setup 50 2
for i in 1 2 3 4; do agent_ports $i; done
members="[\"1@${AGENT_RAFT[1]}\", \"2@${AGENT_RAFT[2]}\", \"3@${AGENT_RAFT[3]}\"]"
for i in 1 2 3; do sync_agent_config $i "$members"; done
for i in 1 2 3; do agent_start $i; done
users_are() { [ "$(scim_count Users)" = "$1" ]; }
wait_until 60 users_are 50 || fail "initial sync: $(scim_count Users) users"
wait_until 15 idle_leader 1 2 3 || fail "no idle leader"
L=$(idle_leader 1 2 3)
S=1; [ "$L" = 1 ] && S=2       # the survivor: a follower
lost=(); for i in 1 2 3; do [ "$i" != "$S" ] && lost+=("$i"); done
same_digest() {
	local a b
	a=$(json_eval "$(agent_status "$1")" 'j.state.digest+"/"+j.applied_index') || return 1
	b=$(json_eval "$(agent_status "$2")" 'j.state.digest+"/"+j.applied_index') || return 1
	[ "${a%/*}" = "${b%/*}" ]
}
wait_secs 15 same_digest "$S" "$L" || fail "survivor $S never caught up with leader $L"
pass "3 nodes synced 50 users; leader $L, survivor $S"

# Two hosts gone for good.
for i in "${lost[@]}"; do agent_stop "$i" KILL; rm -rf "$dir/data$i"; done

# Changes in the directory the stuck survivor must not lose.
{
	for i in 51 52 53 54 55; do
		printf 'dn: uid=user%05d,ou=people,%s\nchangetype: add\nobjectClass: inetOrgPerson\nuid: user%05d\ncn: New %d\nsn: Recovered%d\ngivenName: New\nmail: user%05d@canopy.test\n\n' \
			"$i" "$SLAPD_BASE" "$i" "$i" "$i" "$i"
	done
	for i in 1 2 3 4 5; do
		printf 'dn: uid=user%05d,ou=people,%s\nchangetype: modify\nreplace: sn\nsn: AfterLoss%d\n\n' "$i" "$SLAPD_BASE" "$i"
	done
} >"$dir/changes.ldif"
slapd_ldapmodify -f "$dir/changes.ldif" >/dev/null || fail "ldapmodify"
writes_before=$(scim_writes)

# Stuck: no leader, and it keeps trying (a positive marker that it had its
# chance): candidate rounds retried through pre-vote, none won.
r0=$(json_eval "$(agent_status "$S")" 'j.failover.vote_retries')
stuck() { [ "$(json_eval "$(agent_status "$S")" "j.leader.id===null && j.role!=='leader' && j.failover.vote_retries>=$r0+10")" = true ]; }
wait_secs 30 stuck || fail "survivor not stuck as expected: $(agent_status "$S")"
[ "$(scim_writes)" = "$writes_before" ] || fail "a write happened without a majority"
pass "survivor $S is stuck without a leader (10 more candidate rounds, no write)"

agent_stop "$S"
conf="$dir/agent$S.yaml"
self="$S@${AGENT_RAFT[$S]}"

# Without --yes: the plan is shown, nothing is written.
sum() { (cd "$dir/data$S" && find . -type f ! -name canopy.lock -print0 | sort -z | xargs -0 sha256sum); }
before=$(sum)
rc=0; out=$("$CANOPY_AGENT" --config "$conf" --recover-members "$self" 2>&1) || rc=$?
[ "$rc" = 1 ] || fail "without --yes: exit $rc, expected 1: $out"
grep -q "not recovering without --yes" <<<"$out" || fail "without --yes: $out"
for i in 1 2 3; do
	grep -q "^configuration .*$i@${AGENT_RAFT[$i]} (voter)" <<<"$out" || fail "current configuration not shown ($i): $out"
done
grep -q "^new  *$self (voter)" <<<"$out" || fail "new configuration not shown: $out"
grep -q "^log .*snapshot at [1-9]" <<<"$out" || fail "no snapshot in the survivor's data dir: $out"
[ "$(sum)" = "$before" ] || fail "without --yes the data dir changed"
pass "without --yes: the plan is shown and the data dir is unchanged"

rc=0; out=$("$CANOPY_AGENT" --config "$conf" --recover-members "$self" --yes 2>&1) || rc=$?
[ "$rc" = 0 ] || fail "recovery: exit $rc: $out"
grep -q "^recovered " <<<"$out" || fail "recovery said: $out"
grep -q 'level=warn .*msg="recovering from a lost majority' <<<"$out" || fail "recovery not logged loudly: $out"
echo "$out" | sed 's/^/  | /'

agent_start "$S"
wait_secs 15 ready_leader "$S" || fail "the recovered node does not lead: $(agent_status "$S")"
voters=$(json_eval "$(agent_status "$S")" 'j.members.map(m=>m.id+":"+m.role).join(",")')
[ "$voters" = "$S:voter" ] || fail "members after recovery: $voters"
agent_logs "$S" | grep 'level=warn .*msg="first start after a recovery from a lost majority' |
	grep -q "old_members=1,2,3 new_members=$S " || fail "the first start does not say it was recovered"
[ ! -e "$dir/data$S/canopy-recovered" ] || fail "the recovery note was not consumed at start"
sync_ok() { sync_compare >/dev/null 2>&1; }
wait_secs 60 sync_ok || sync_compare || fail "target differs from source after recovery"
users_are 55 || fail "$(scim_count Users) users, expected 55"
failover_audit_clean
pass "recovered node $S leads alone, exported the pending changes (55 users), no duplicate create"

# libraft names a snapshot by the term of its last entry and takes the one
# with the highest term for the newest; the recovery entry must not carry a
# term below the entries before it (libraft's own raft_recover writes 1), or
# a snapshot taken there ranks below older ones and a joining node is sent a
# stale one (it then waits out the 30 s install timeout).
terms_by_index() {
	ls "$dir/data$S" | sed -n 's/^snapshot-\([0-9]*\)-\([0-9]*\)-[0-9]*\.meta$/\2 \1/p' | sort -n | awk '{print $2}'
}
t=$(terms_by_index | paste -sd' ')
[ -n "$t" ] || fail "no snapshot in the recovered node's data dir"
[ "$(terms_by_index)" = "$(terms_by_index | sort -n)" ] || fail "snapshot terms go down as indexes go up: $t"
pass "the recovered node's snapshots rank by index too (terms $t)"

# A fresh node joins the new cluster.
CLUSTER_BOOTSTRAP=false sync_agent_config 4 "[\"$self\"]"
agent_start 4
wait_tcp "${AGENT_CTL[4]##*:}" 10 || fail "node 4 did not start: $(agent_logs 4)"
out=$("$CANOPYCTL" --server "${AGENT_CTL[$S]}" cluster add "4@${AGENT_RAFT[4]}" 2>&1) || fail "cluster add 4: $out"
wait_secs 30 same_digest "$S" 4 || fail "node 4 did not catch up: $(agent_status 4)"
voters=$(json_eval "$(agent_status "$S")" 'j.members.filter(m=>m.role==="voter").map(m=>m.id).sort().join(",")')
[ "$voters" = "$(printf '%s\n' "$S" 4 | sort | paste -sd,)" ] || fail "voters after add: $voters"
pass "node 4 added as a voter and has the same state digest as $S"
