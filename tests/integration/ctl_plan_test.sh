#!/usr/bin/env bash
# canopyctl plan [--details]: what a full sync would do, writing nothing.
# After the initial sync every object is unchanged. Then, with the leader
# stopped (the remaining node has no quorum, so nothing exports), 3 users are
# modified, 2 added, 2 deleted and 1 removed from a group in slapd: the
# remaining follower's plan says create 2, update 4 (3 users, 1 group's
# members; the deleted users' memberships cost no request: the target drops
# them with the users), delete 2 -- from the replicated table and a fresh read
# of the directory -- --details names each, and the target sees no request.
# Once the leader is back the sync does just that, and the plan is all
# unchanged again.
source "$(dirname "$0")/../fixtures/sync.sh"
dir=$(fixture_tmpdir)
base=dc=example,dc=com

sync_setup 20 2
agent_ports 1
agent_ports 2
members="[\"1@${AGENT_RAFT[1]}\", \"2@${AGENT_RAFT[2]}\"]"
sync_agent_config 1 "$members"
sync_agent_config 2 "$members"
agent_start 1
agent_start 2
users_are() { [ "$(scim_count Users)" = "$1" ]; }
groups_full() { [ "$(scim_ctl GET store | json_get 'j.Groups.map(g=>(g.members||[]).length).join()')" = 20,20 ]; }
wait_until 30 users_are 20 || fail "initial sync: $(scim_count Users) users"
wait_until 30 groups_full || fail "initial sync: group members $(scim_ctl GET store | json_get 'j.Groups.map(g=>(g.members||[]).length).join()')"
wait_until 20 idle_leader 1 2 || fail "no idle leader"
leader=$(idle_leader 1 2)
other=$((3 - leader))
ctl() { local n=$1; shift; "$CANOPYCTL" --server "${AGENT_CTL[$n]}" "$@"; }
counts() { json_eval "$1" '["create","update","delete","unchanged"].map(k=>k+"="+j[k]).join(" ")'; }

# the follower has applied the whole initial sync
applied() { [ "$(json_eval "$(agent_status "$other")" 'j.applied_index >= '"$(json_eval "$(agent_status "$leader")" 'j.commit_index')")" = true ]; }
wait_until 10 applied || fail "follower $other behind"
for n in "$leader" "$other"; do
	out=$(ctl "$n" plan --json) || fail "plan on node $n: $out"
	[ "$(counts "$out")" = "create=0 update=0 delete=0 unchanged=22" ] || fail "plan on node $n after the initial sync: $out"
done
pass "after the initial sync the plan is all unchanged (leader and follower)"

# SIGKILL, not TERM: a TERM hands leadership to the other node first, which
# could still export for the rest of its lease.
agent_stop "$leader" KILL
role() { json_eval "$(agent_status "$other")" 'j.role'; }
[ "$(role)" != leader ] || fail "node $other leads without a quorum"
mark=$(scim_ctl GET audit | json_get 'j.length ? j[j.length-1].seq : 0')
{
	for i in 3 4 5; do printf 'dn: uid=user%05d,ou=people,%s\nchangetype: modify\nreplace: sn\nsn: Changed%d\n\n' "$i" "$base" "$i"; done
	for n in new1 new2; do printf 'dn: uid=%s,ou=people,%s\nchangetype: add\nobjectClass: inetOrgPerson\nuid: %s\ncn: %s\nsn: New\n\n' "$n" "$base" "$n" "$n"; done
	for i in 17 18; do printf 'dn: uid=user%05d,ou=people,%s\nchangetype: delete\n\n' "$i" "$base"; done
	printf 'dn: cn=group0002,ou=groups,%s\nchangetype: modify\ndelete: member\nmember: uid=user00006,ou=people,%s\n\n' "$base" "$base"
} | slapd_ldapmodify >/dev/null || fail "ldapmodify"

out=$(ctl "$other" plan --json) || fail "plan: $out"
[ "$(counts "$out")" = "create=2 update=4 delete=2 unchanged=16" ] || fail "plan after the changes: $out"
[ "$(json_eval "$out" 'j.details === undefined')" = true ] || fail "details without --details: $out"
out=$(ctl "$other" plan --details --json) || fail "plan --details: $out"
list=$(json_eval "$out" 'j.details.map(d=>d.action+":"+d.type+":"+d.dn.split(",")[0]+(d.changes&&d.changes.length?":"+d.changes.join("+"):"")).sort().join(" ")')
[ "$list" = "create:user:uid=new1 create:user:uid=new2 delete:user:uid=user00017 delete:user:uid=user00018 update:group:cn=group0002:members update:user:uid=user00003:content update:user:uid=user00004:content update:user:uid=user00005:content" ] ||
	fail "plan --details: $list"
text=$(ctl "$other" plan --details) || fail "plan --details (text)"
grep -q '^create 2, update 4, delete 2, unchanged 16' <<<"$text" || fail "plan text: $text"
grep -q 'delete .*user  *uid=user00018,ou=people' <<<"$text" || fail "plan text lacks the delete: $text"
# Both plans have answered: anything they wrote would be in the audit log.
[ "$(scim_ctl GET audit | json_get "j.filter(a=>a.seq>$mark).length")" = 0 ] || fail "plan wrote to the target"
pass "plan on the follower: create 2, update 4 (3 users, 1 group's members), delete 2, unchanged 16; --details lists them; no request to the target"

agent_start "$leader"
wait_until 30 idle_leader 1 2 || fail "no idle leader after restart"
writes() { scim_ctl GET audit | json_get "j.filter(a=>a.seq>$mark && a.status<300 && a.path.startsWith('/$1')).length"; }
synced() { [ "$(writes Users)" = 7 ] && [ "$(writes Groups)" = 1 ]; }
wait_until 30 synced || fail "the sync did not make the 8 writes the plan announced: $(scim_ctl GET audit | json_get "j.filter(a=>a.seq>$mark)")"
wait_until 20 sync_compare || sync_compare || fail "target differs from the source"
n=$(idle_leader 1 2)
out=$(ctl "$n" plan --json) || fail "plan after the sync: $out"
[ "$(counts "$out")" = "create=0 update=0 delete=0 unchanged=22" ] || fail "plan after the sync: $(ctl "$n" plan --details --json) / $(agent_status "$n")"
pass "the sync then made the 8 writes the plan announced (7 users, 1 group); the plan is all unchanged again"
