#!/usr/bin/env bash
# The manager reference (RFC 7643 §4.3): a user's `manager` DN in slapd becomes
# the enterprise extension's manager {value: <the manager's id in the target>}.
# Set at the initial sync; filled in once a manager created later exists (also
# when it comes in the same batch after its report); changed; kept across a
# rename of the manager (old and new DN); removed from the reports (PATCH)
# when the manager is deleted or leaves the scope; a DN that names no exported
# user is left out and logged once, and costs no retry.
source "$(dirname "$0")/../fixtures/sync.sh"

sync_setup 12 2
P="ou=people,$SLAPD_BASE"
slapd_ldapmodify <<LDIF >/dev/null || fail "seed managers"
dn: uid=user00002,$P
changetype: modify
add: manager
manager: uid=user00001,$P

dn: uid=user00006,$P
changetype: modify
add: manager
manager: uid=user00005,$P

dn: uid=user00003,$P
changetype: modify
add: manager
manager: cn=someone,ou=partners,dc=elsewhere,dc=org

dn: uid=user00004,$P
changetype: modify
add: manager
manager: uid=late,$P

dn: uid=user00007,$P
changetype: modify
add: manager
manager: uid=user00008,$P
LDIF
MAP_MANAGER=1
export MAP_MANAGER
agent_ports 1
sync_agent_config 1 "[\"1@${AGENT_RAFT[1]}\"]"
agent_start 1

# manager_of USERNAME: its manager's userName ("-": none; sync.sh, scim_manager_of)
manager_of() { scim_manager_of userName "$1"; }
manager_is() { [ "$(manager_of "$1")" = "$2" ]; }
id_of() { scim_ctl GET store | json_get "(j.Users.find(u=>u.userName==='$1')||{}).id"; }
waiting_logged() { agent_logs 1 | grep 'a manager is not exported' | grep -c "$1" || true; }

wait_secs 30 manager_is user00002 user00001 || fail "initial sync: user00002's manager: $(manager_of user00002); $(agent_status 1)"
wait_secs 10 manager_is user00006 user00005 || fail "user00006's manager: $(manager_of user00006)"
wait_secs 10 manager_is user00007 user00008 || fail "user00007's manager: $(manager_of user00007)"
manager_is user00004 - || fail "user00004's manager should wait for uid=late: $(manager_of user00004)"
manager_is user00003 - || fail "user00003's manager is outside the directory: $(manager_of user00003)"
manager_is user00001 - || fail "user00001 has no manager: $(manager_of user00001)"
pass "initial sync: managers set to the managers' target ids; unknown ones left out"

# Created after its report, in a later batch.
slapd_ldapmodify <<LDIF >/dev/null || fail "add uid=late"
dn: uid=late,$P
changetype: add
objectClass: inetOrgPerson
uid: late
cn: Late Boss
sn: Boss
LDIF
wait_secs 20 manager_is user00004 late || fail "user00004's manager once uid=late exists: $(manager_of user00004)"
pass "a manager created after its report: the reference is filled in"

# The report first, its manager right after (one ldapmodify). Whether both
# land in one batch depends on timing (the engine starts a batch as soon as an
# event waits); test_engine's a_manager_later_in_the_batch_is_set_after_the_upserts
# pins the one-batch case down.
slapd_ldapmodify <<LDIF >/dev/null || fail "add newrep + newboss"
dn: uid=newrep,$P
changetype: add
objectClass: inetOrgPerson
uid: newrep
cn: New Report
sn: Report
manager: uid=newboss,$P

dn: uid=newboss,$P
changetype: add
objectClass: inetOrgPerson
uid: newboss
cn: New Boss
sn: Boss
LDIF
wait_secs 20 manager_is newrep newboss || fail "newrep's manager: $(manager_of newrep)"
pass "a manager added right after its report: the reference is filled in"

# The manager changes.
slapd_ldapmodify <<LDIF >/dev/null || fail "change user00002's manager"
dn: uid=user00002,$P
changetype: modify
replace: manager
manager: uid=user00005,$P
LDIF
wait_secs 20 manager_is user00002 user00005 || fail "user00002's new manager: $(manager_of user00002)"
pass "a changed manager is written"

# The manager is renamed: same entryUUID, same target id. user00002 gets the
# new DN (as referential integrity would write it); user00006 keeps the old
# one and changes something else -- its PUT must still carry the manager.
boss_id=$(id_of user00005)
slapd_ldapmodify <<LDIF >/dev/null || fail "rename user00005"
dn: uid=user00005,$P
changetype: modrdn
newrdn: uid=boss5
deleteoldrdn: 1
LDIF
renamed() { [ "$(id_of boss5)" = "$boss_id" ]; }
wait_secs 20 renamed || fail "uid=boss5 not the same target user: $(id_of boss5) vs $boss_id"
slapd_ldapmodify <<LDIF >/dev/null || fail "update the reports after the rename"
dn: uid=user00002,$P
changetype: modify
replace: manager
manager: uid=boss5,$P

dn: uid=user00006,$P
changetype: modify
replace: sn
sn: AfterRename
LDIF
family_of() { scim_ctl GET store | json_get "(j.Users.find(u=>u.userName==='$1')||{name:{}}).name.familyName"; }
renamed_marker() { [ "$(family_of user00006)" = AfterRename ]; }
wait_secs 20 renamed_marker || fail "user00006's change after the rename was not exported"
manager_is user00006 boss5 || fail "user00006 (old DN) lost its renamed manager: $(manager_of user00006)"
manager_is user00002 boss5 || fail "user00002 (new DN) lost its renamed manager: $(manager_of user00002)"
pass "a renamed manager: reports with its old and its new DN keep pointing at it"

# The manager is deleted: its reports lose the reference with a PATCH remove.
# After a restart: the reports are found through what the state recorded.
agent_stop 1 TERM
agent_start 1
wait_role 1 leader 10 || fail "no leader after restart"
seq_before=$(scim_ctl GET audit | json_get 'j.length ? j[j.length-1].seq : 0')
slapd_ldapmodify <<LDIF >/dev/null || fail "delete uid=boss5"
dn: uid=boss5,$P
changetype: delete
LDIF
wait_secs 20 manager_is user00002 - || fail "user00002 still has the deleted manager: $(manager_of user00002)"
wait_secs 20 manager_is user00006 - || fail "user00006 still has the deleted manager: $(manager_of user00006)"
patches=$(scim_ctl GET audit | json_get "j.filter(a=>a.seq>$seq_before && a.method==='PATCH' && a.status<300).length")
[ "$patches" -ge 2 ] || fail "expected PATCHes removing the manager, saw $patches writes: $(scim_ctl GET audit | json_get "j.filter(a=>a.seq>$seq_before).map(a=>a.method+' '+a.path).join('; ')")"
pass "a deleted manager is removed from its reports (PATCH), found through the state after a restart"

# The manager leaves the scope (moved out of ou=people): deprovisioned, and
# removed from its report.
slapd_ldapmodify <<LDIF >/dev/null || fail "move user00008 out of scope"
dn: uid=user00008,$P
changetype: modrdn
newrdn: uid=user00008
deleteoldrdn: 1
newsuperior: ou=disabled,$SLAPD_BASE
LDIF
gone() { [ "$(manager_of user00008)" = no-user ]; }
wait_secs 20 gone || fail "user00008 not deprovisioned"
wait_secs 20 manager_is user00007 - || fail "user00007 still has the out-of-scope manager: $(manager_of user00007)"
pass "a manager out of scope is removed from its report"

# The unknown manager: logged once, however often the user changes; never in
# the retry set or the failed objects.
for sn in One Two; do
	slapd_ldapmodify <<LDIF >/dev/null || fail "modify user00003"
dn: uid=user00003,$P
changetype: modify
replace: sn
sn: $sn
LDIF
	marker() { [ "$(family_of user00003)" = "$sn" ]; }
	wait_secs 20 marker || fail "user00003's change $sn not exported"
done
[ "$(waiting_logged 'cn=someone,ou=partners')" = 1 ] || fail "expected one log line for the unknown manager, saw: $(agent_logs 1 | grep 'a manager is not exported')"
st=$(agent_status 1)
[ "$(json_eval "$st" 'JSON.stringify([j.sync.retrying, j.sync.failed])')" = "[0,0]" ] ||
	fail "no retries or failed objects expected: $st"
manager_is user00003 - || fail "user00003: $(manager_of user00003)"
pass "a manager outside the directory: left out, logged once, no retry"
