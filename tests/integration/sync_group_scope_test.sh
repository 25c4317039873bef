#!/usr/bin/env bash
# Group-based scoping: with source.users.member_of, only (nested) members of
# that group are provisioned; adding a user to a nested group brings it in,
# removing one from the scope group deprovisions it; groups carry only
# in-scope members. Also across a restart (scope rebuilt from the state).
source "$(dirname "$0")/../fixtures/sync.sh"
dir=$(fixture_tmpdir)

sync_setup 50 2
slapd_ldapmodify <<LDIF >/dev/null || fail "seed scope groups"
dn: cn=scope-nested,ou=groups,$SLAPD_BASE
changetype: add
objectClass: groupOfNames
cn: scope-nested
member: uid=user00003,ou=people,$SLAPD_BASE

dn: cn=scope,ou=groups,$SLAPD_BASE
changetype: add
objectClass: groupOfNames
cn: scope
member: uid=user00001,ou=people,$SLAPD_BASE
member: uid=user00002,ou=people,$SLAPD_BASE
member: cn=scope-nested,ou=groups,$SLAPD_BASE
LDIF
USER_MEMBER_OF="cn=scope,ou=groups,$SLAPD_BASE"
export USER_MEMBER_OF
agent_ports 1
sync_agent_config 1 "[\"1@${AGENT_RAFT[1]}\"]"
agent_start 1

user_names() { scim_ctl GET store | json_get 'j.Users.map(u=>u.userName).sort().join(",")'; }
users_are() { [ "$(user_names)" = "$1" ]; }
wait_until 60 users_are "user00001,user00002,user00003" || fail "in-scope users: $(user_names); $(agent_status 1)"
groups_are() { [ "$(scim_count Groups)" = 4 ]; }
wait_until 30 groups_are || fail "groups: $(scim_count Groups)"
members_of() { scim_ctl GET store | json_get "(()=>{const g=j.Groups.find(g=>g.displayName==='$1');const byId={};for(const u of j.Users)byId[u.id]=u.userName;for(const x of j.Groups)byId[x.id]=x.displayName;return (g.members||[]).map(m=>byId[m.value]).sort().join(',')})()"; }
members_are() { [ "$(members_of "$1")" = "$2" ]; }
wait_until 20 members_are group0001 "user00001,user00002,user00003" || fail "group0001 members: $(members_of group0001)"
wait_until 20 members_are scope "scope-nested,user00001,user00002" || fail "scope members: $(members_of scope)"
pass "only (nested) members of cn=scope provisioned; groups carry only in-scope members"

slapd_ldapmodify <<LDIF >/dev/null
dn: cn=scope-nested,ou=groups,$SLAPD_BASE
changetype: modify
add: member
member: uid=user00010,ou=people,$SLAPD_BASE
LDIF
wait_until 20 users_are "user00001,user00002,user00003,user00010" || fail "user00010 not brought into scope: $(user_names)"
pass "added to the nested group: provisioned"

slapd_ldapmodify <<LDIF >/dev/null
dn: cn=scope,ou=groups,$SLAPD_BASE
changetype: modify
delete: member
member: uid=user00001,ou=people,$SLAPD_BASE
LDIF
wait_until 20 users_are "user00002,user00003,user00010" || fail "user00001 not deprovisioned: $(user_names)"
pass "removed from the scope group: deprovisioned"

# Neither change read all users again: the one that entered was read by its
# DN, the one that left was deleted from its record (a full read of the
# users would cost the same for 3 users in scope as for a million).
scope_logs() { agent_logs 1 | grep 'msg="scope change"'; }
[ "$(scope_logs | grep -c "read again by DN; full read: none")" -ge 2 ] ||
	fail "a scope change read more than the users that entered: $(scope_logs)"
scope_logs | grep -q 'full read: users' && fail "a scope change read all users: $(scope_logs)"
pass "scope changes read only the users that entered (by DN), none in full"

# A change to an out-of-scope user costs nothing; after a restart the scope
# comes back from the replicated state (no flapping). "Nothing" is checked
# once the restarted agent has had its chance: a later change of an in-scope
# user has been exported (changes go out in order), and it is the only write.
seq_before=$(scim_ctl GET audit | json_get 'j.length ? j[j.length-1].seq : 0')
slapd_ldapmodify <<LDIF >/dev/null
dn: uid=user00020,ou=people,$SLAPD_BASE
changetype: modify
replace: sn
sn: Outside
LDIF
agent_stop 1 TERM
agent_start 1
wait_role 1 leader 10 || fail "no leader after restart"
slapd_ldapmodify <<LDIF >/dev/null || fail "ldapmodify (the change after the restart)"
dn: uid=user00002,ou=people,$SLAPD_BASE
changetype: modify
replace: sn
sn: AfterRestart
LDIF
family_of() { scim_ctl GET store | json_get "(j.Users.find(u=>u.userName==='$1')||{name:{}}).name.familyName"; }
marker_exported() { [ "$(family_of user00002)" = AfterRestart ]; }
wait_until 30 marker_exported || fail "the in-scope change after the restart was not exported: $(agent_status 1)"
users_are "user00002,user00003,user00010" || fail "after restart: $(user_names)"
# (A batch whose write lease ran out on a loaded machine sends its write
# again: the same PUT twice is that, not a write of the out-of-scope change.)
writes=$(scim_ctl GET audit | json_get "j.filter(a=>a.seq>$seq_before && a.status<300).map(a=>a.method+' '+(a.userName||a.displayName||a.path)).filter((w,i,all)=>all.indexOf(w)===i).join('; ')")
[ "$writes" = "PUT user00002" ] || fail "expected only the write of user00002 since the out-of-scope change, saw: $writes"
pass "out-of-scope change and restart: no writes (the one write after them is the in-scope change), scope unchanged"
