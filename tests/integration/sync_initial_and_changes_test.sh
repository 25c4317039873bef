#!/usr/bin/env bash
# 1,000 users and 50 groups (nested, one of 500 members) are provisioned and
# the target then equals the source as mapped; add, modify, rename, move out
# of scope, delete and group member add/remove made while the agent runs
# reach the target. The latency of each is printed (not asserted: a
# benchmark, not a test).
source "$(dirname "$0")/../fixtures/sync.sh"
dir=$(fixture_tmpdir)

sync_setup 1000 50 nested
agent_ports 1
sync_agent_config 1 "[\"1@${AGENT_RAFT[1]}\"]"
t0=$EPOCHREALTIME
agent_start 1
users_are() { [ "$(scim_count Users)" = "$1" ]; }
groups_are() { [ "$(scim_count Groups)" = "$1" ]; }
wait_until 60 users_are 1000 || { tail -20 "$dir/agent1.log.tmp" >&2; fail "initial sync: $(scim_count Users) users in the target"; }
wait_until 30 groups_are 50 || fail "initial sync: $(scim_count Groups) groups"
wait_until 30 sync_compare || sync_compare || fail "target differs from source after the initial sync"
t1=$EPOCHREALTIME
pass "initial sync of 1000 users + 50 groups: target equals source ($(awk "BEGIN{printf \"%.2f\", $t1-$t0}") s)"

st=$(agent_status 1)
[ "$(json_eval "$st" 'j.sync.cursor !== null')" = true ] || fail "no cursor committed: $st"
[ "$(json_eval "$st" 'j.state.objects')" = 1050 ] || fail "object table: $(json_eval "$st" 'j.state.objects')"
[ "$(json_eval "$st" 'j.sync.exported_total >= 1050')" = true ] || fail "exported_total: $st"

# --- live changes, each timed from the LDAP write to the SCIM store ------------
lat=()
measure() { # measure NAME CHECK-CMD... (after the change was made)
	local name=$1 start=$2; shift 2
	wait_until 20 "$@" || fail "$name did not reach the target"
	lat+=("$name $(awk "BEGIN{printf \"%d\", ($EPOCHREALTIME-$start)*1000}")")
}
display_is() { [ "$(scim_ctl GET store | json_get "(j.Users.find(u=>u.userName==='$1')||{}).displayName")" = "$2" ]; }
has_user() { [ "$(scim_ctl GET store | json_get "j.Users.some(u=>u.userName==='$1')")" = true ]; }
no_user() { [ "$(scim_ctl GET store | json_get "j.Users.some(u=>u.userName==='$1')")" = false ]; }
member_of() { # member_of GROUP UID -> true/false
	scim_ctl GET store | json_get "(()=>{const u=j.Users.find(u=>u.userName==='$2');const g=j.Groups.find(g=>g.displayName==='$1');return !!(u&&g&&(g.members||[]).some(m=>m.value===u.id));})()"
}
is_member() { [ "$(member_of "$1" "$2")" = true ]; }
not_member() { [ "$(member_of "$1" "$2")" = false ]; }

s=$EPOCHREALTIME
slapd_ldapmodify <<LDIF >/dev/null
dn: uid=newbie,ou=people,$SLAPD_BASE
changetype: add
objectClass: inetOrgPerson
uid: newbie
cn: New Bie
givenName: New
sn: Bie
mail: newbie@example.com
LDIF
measure add "$s" has_user newbie

s=$EPOCHREALTIME
slapd_ldapmodify <<LDIF >/dev/null
dn: uid=newbie,ou=people,$SLAPD_BASE
changetype: modify
replace: sn
sn: Changed
LDIF
measure modify "$s" display_is newbie "New Changed"

s=$EPOCHREALTIME
slapd_ldapmodify <<LDIF >/dev/null
dn: cn=group0010,ou=groups,$SLAPD_BASE
changetype: modify
add: member
member: uid=newbie,ou=people,$SLAPD_BASE
LDIF
measure member-add "$s" is_member group0010 newbie

s=$EPOCHREALTIME
slapd_ldapmodify <<LDIF >/dev/null
dn: cn=group0010,ou=groups,$SLAPD_BASE
changetype: modify
delete: member
member: uid=newbie,ou=people,$SLAPD_BASE
LDIF
measure member-remove "$s" not_member group0010 newbie

# rename: the RDN (uid) changes, and with it userName; the object is the same.
id_before=$(scim_ctl GET store | json_get "j.Users.find(u=>u.userName==='newbie').id")
s=$EPOCHREALTIME
slapd_ldapmodify <<LDIF >/dev/null
dn: uid=newbie,ou=people,$SLAPD_BASE
changetype: modrdn
newrdn: uid=renamed
deleteoldrdn: 1
LDIF
measure rename "$s" has_user renamed
[ "$(scim_ctl GET store | json_get "j.Users.find(u=>u.userName==='renamed').id")" = "$id_before" ] || fail "rename created a new object"

s=$EPOCHREALTIME
slapd_ldapmodify <<LDIF >/dev/null
dn: uid=renamed,ou=people,$SLAPD_BASE
changetype: modrdn
newrdn: uid=renamed
deleteoldrdn: 1
newsuperior: ou=disabled,$SLAPD_BASE
LDIF
measure move-out-of-scope "$s" no_user renamed

s=$EPOCHREALTIME
slapd_ldapmodify <<LDIF >/dev/null
dn: uid=user00007,ou=people,$SLAPD_BASE
changetype: delete
LDIF
measure delete "$s" no_user user00007

printf 'latency (ms, LDAP write -> visible in SCIM store, 50 ms polling):'
printf ' %s;' "${lat[@]}"; echo
wait_until 20 sync_compare || sync_compare || fail "target differs from source after the changes"
pass "live changes reached the target; target equals source"

# The provisioning log has the changes.
out=$("$CANOPYCTL" --server "${AGENT_CTL[1]}" logs --object "uid=user00007,ou=people,$SLAPD_BASE") || fail "canopyctl logs"
grep -q "delete .*user .*ok" <<<"$out" || fail "provisioning log lacks the delete: $out"
pass "canopyctl logs --object shows the delete"
