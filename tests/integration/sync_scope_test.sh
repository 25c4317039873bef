#!/usr/bin/env bash
# Scope and deprovisioning: users under an excluded subtree are not
# provisioned; a user moved into it is deprovisioned -- with
# safety.deprovision=disable that means active=false, not a delete -- and
# enabled again when moved back; a deleted user is disabled too. The initial
# sync goes through SCIM Bulk (target.bulk: true).
source "$(dirname "$0")/../fixtures/sync.sh"
dir=$(fixture_tmpdir)

sync_setup 100 3
slapd_ldapmodify <<LDIF >/dev/null || fail "seed contractors"
dn: ou=contractors,ou=people,$SLAPD_BASE
changetype: add
objectClass: organizationalUnit
ou: contractors

dn: uid=c1,ou=contractors,ou=people,$SLAPD_BASE
changetype: add
objectClass: inetOrgPerson
uid: c1
cn: C One
sn: One
LDIF
USER_EXCLUDE="[\"ou=contractors,ou=people,$SLAPD_BASE\"]" DEPROVISION=disable TARGET_BULK=true
export USER_EXCLUDE DEPROVISION TARGET_BULK
agent_ports 1
sync_agent_config 1 "[\"1@${AGENT_RAFT[1]}\"]"
agent_start 1
users_are() { [ "$(scim_count Users)" = "$1" ]; }
wait_until 60 users_are 100 || fail "initial sync: $(scim_count Users) users (want 100: c1 is excluded)"
active_of() { scim_ctl GET store | json_get "(j.Users.find(u=>u.userName==='$1')||{active:'absent'}).active"; }
[ "$(active_of c1)" = absent ] || fail "excluded user c1 was provisioned"
bulk=$(scim_ctl GET audit | json_get 'j.filter(a=>a.bulk).length')
[ "$bulk" -gt 0 ] || fail "no write went through /Bulk"
pass "excluded subtree not provisioned; initial sync used Bulk ($bulk operations)"

slapd_ldapmodify <<LDIF >/dev/null
dn: uid=user00005,ou=people,$SLAPD_BASE
changetype: modrdn
newrdn: uid=user00005
deleteoldrdn: 1
newsuperior: ou=contractors,ou=people,$SLAPD_BASE
LDIF
is_active() { [ "$(active_of "$1")" = "$2" ]; }
wait_until 20 is_active user00005 false || fail "user moved out of scope not disabled: active=$(active_of user00005)"
users_are 100 || fail "disable deleted the user"
pass "moved into the excluded subtree: disabled (active=false), not deleted"

slapd_ldapmodify <<LDIF >/dev/null
dn: uid=user00005,ou=contractors,ou=people,$SLAPD_BASE
changetype: modrdn
newrdn: uid=user00005
deleteoldrdn: 1
newsuperior: ou=people,$SLAPD_BASE
LDIF
wait_until 20 is_active user00005 true || fail "user back in scope not enabled: active=$(active_of user00005)"
pass "moved back into scope: enabled again"

slapd_ldapmodify <<LDIF >/dev/null
dn: uid=user00006,ou=people,$SLAPD_BASE
changetype: delete
LDIF
wait_until 20 is_active user00006 false || fail "deleted user not disabled: active=$(active_of user00006)"
out=$("$CANOPYCTL" --server "${AGENT_CTL[1]}" logs --object "uid=user00006,ou=people,$SLAPD_BASE")
grep -q "disable .*ok" <<<"$out" || fail "provisioning log lacks the disable: $out"
pass "deleted user disabled (deprovision=disable), logged"
