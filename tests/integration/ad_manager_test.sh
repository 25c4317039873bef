#!/usr/bin/env bash
# The manager reference against Active Directory (a Samba AD DC): `manager`
# is a linked attribute there, so a rename of the manager is rewritten by the
# DC on its reports without a change of theirs. The reports keep pointing at
# the manager's target id through the rename, and lose it when it is deleted.
source "$(dirname "$0")/../fixtures/ad_sync.sh"

ad_sync_setup 6 1 1
samba_ldapmodify >/dev/null <<EOF2 || fail "seed managers"
dn: CN=user00002,$SAMBA_PEOPLE
changetype: modify
add: manager
manager: CN=user00001,$SAMBA_PEOPLE

dn: CN=user00003,$SAMBA_PEOPLE
changetype: modify
add: manager
manager: CN=user00001,$SAMBA_PEOPLE
EOF2
MAP_MANAGER=1
export MAP_MANAGER
agent_ports 1
ad_agent_config 1 "[\"1@${AGENT_RAFT[1]}\"]"
agent_start 1

g1=$(ad_guid "CN=user00001,$SAMBA_PEOPLE")
g2=$(ad_guid "CN=user00002,$SAMBA_PEOPLE")
g3=$(ad_guid "CN=user00003,$SAMBA_PEOPLE")
# manager_of ANCHOR: its manager's externalId ("-": none; sync.sh, scim_manager_of)
manager_of() { scim_manager_of externalId "$1"; }
manager_is() { [ "$(manager_of "$1")" = "$2" ]; }

wait_secs 90 manager_is "$g2" "$g1" || fail "initial sync: user00002's manager: $(manager_of "$g2"); $(agent_status 1)"
manager_is "$g3" "$g1" || fail "user00003's manager: $(manager_of "$g3")"
pass "initial DirSync: the manager DN resolved to the manager's target id"

samba_ldapmodify >/dev/null <<EOF2 || fail "rename user00001"
dn: CN=user00001,$SAMBA_PEOPLE
changetype: modrdn
newrdn: CN=boss00001
deleteoldrdn: 1
EOF2
samba_ldapmodify >/dev/null <<EOF2 || fail "modify user00002"
dn: CN=user00002,$SAMBA_PEOPLE
changetype: modify
replace: displayName
displayName: After the rename
EOF2
shown() { [ "$(ad_scim_user "$g2" u.displayName)" = "After the rename" ]; }
wait_secs 30 shown || fail "user00002's change after the rename not exported"
manager_is "$g2" "$g1" || fail "user00002 lost its renamed manager: $(manager_of "$g2")"
manager_is "$g3" "$g1" || fail "user00003 lost its renamed manager: $(manager_of "$g3")"
pass "a renamed manager: its reports keep pointing at it"

samba_ldapdelete "CN=boss00001,$SAMBA_PEOPLE" >/dev/null || fail "delete the manager"
wait_secs 30 manager_is "$g2" - || fail "user00002 keeps the deleted manager: $(manager_of "$g2")"
wait_secs 10 manager_is "$g3" - || fail "user00003 keeps the deleted manager: $(manager_of "$g3")"
pass "a deleted manager is removed from its reports"
