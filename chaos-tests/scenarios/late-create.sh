#!/usr/bin/env bash
# chaos-tests/scenarios/late-create.sh [--long [SECS]] -- an in-doubt create
# whose object leaves the directory before the new leader repairs.
#
# The deterministic form of what `loss` found once (seed 1796005378: "extra in
# target" after a lease ran out with requests in flight):
#   1. the target holds the leader's POST of a new user (the fixture's "hold"
#      fault: a create on the wire), and the leader freezes (SIGSTOP), so its
#      batch never commits an object record -- only its intent (i:<anchor>);
#   2. a new leader takes over; the user is deleted in the directory;
#   3. the held POST lands: the target now has the user;
#   4. the new leader's in-doubt repair (docs/architecture.md, "Intents")
#      forgets the content of in-doubt objects *that have a record* and
#      refreshes: this one has none, and the directory no longer reports it,
#      so nothing ever deletes it.
# Round 2, the same for a delete (what `loss` found with seed 1796005379): the
# leader's DELETE of a user that left the scope (moved under ou=groups) lands
# while the leader freezes (its batch never commits); the user moves back into
# scope before a new leader starts, which finds it in scope and unchanged
# against its record, so it writes nothing. The repair must put it back.
# What must hold: once the repair is done, the target equals the directory
# (round 1: the user is gone; round 2: the user is there). Short and long
# mode are the same (both rounds once).
# Env: TARGET_TIMEOUT_MS (default 3000: the repair waits that + T).
source "$(dirname "$0")/../lib/scenario.sh"
scenario_init late-create "$@"

T=${CHAOS_T:-1000}
export ELECTION_TIMEOUT_MS=$T HEARTBEAT_MS=$((T / 10)) TARGET_TIMEOUT_MS=${TARGET_TIMEOUT_MS:-3000}
CHAOS_USERS=20 CHAOS_GROUPS=1 chaos_cluster 3
wait_for 30 idle_leader 1 2 3 || fail "no idle leader"
L=$(idle_leader 1 2 3)
rest=(); for i in 1 2 3; do [ "$i" != "$L" ] && rest+=("$i"); done
uid=latecreate1

scim_fault '{"hold":true,"count":1,"methods":["POST"],"match":"/Users"}'
slapd_ldapmodify >/dev/null <<LDIF || fail "ldapadd $uid"
dn: uid=$uid,ou=people,$SLAPD_BASE
changetype: add
objectClass: inetOrgPerson
uid: $uid
cn: $uid
sn: Late
givenName: Create
mail: $uid@example.com
LDIF
held() { [ "$(scim_held)" = 1 ]; }
wait_for 10 held || fail "the leader did not send the create"
host_pause "$L"
say "leader $L froze with the POST of $uid on the wire (held by the target)"
wait_for 15 host_leader "${rest[@]}" || fail "no new leader"
N=$(host_leader "${rest[@]}")
slapd_ldapmodify >/dev/null <<LDIF || fail "ldapdelete $uid"
dn: uid=$uid,ou=people,$SLAPD_BASE
changetype: delete
LDIF
say "$N leads (term $(host_term "$N")); $uid deleted in the directory"
[ "$(scim_release)" = 1 ] || fail "no held write to release"
in_target() { [ "$(scim_ctl GET store | json_get "j.Users.some(u=>u.userName==='$uid')")" = true ]; }
in_target && say "the held POST landed: $uid is in the target" || chaos_note "the held POST did not create $uid"
host_cont "$L"
# the repair is due TARGET_TIMEOUT_MS + T after the new leader took over
repaired() { agent_logs "$N" | grep -q 'repair' || "$CANOPYCTL" --server "${AGENT_CTL[$N]}" logs 2>/dev/null | grep -q in-doubt-repair; }
wait_for 30 repaired || chaos_note "no in-doubt repair seen in $N's logs"
sleep 3
if in_target; then
	chaos_bad "$uid, deleted in the directory while its create was in doubt, is still in the target after the new leader's repair"
fi

# round 2: a late delete of a user that came back
wait_for 30 idle_leader 1 2 3 || fail "no idle leader before round 2"
L=$(idle_leader 1 2 3)
rest=(); for i in 1 2 3; do [ "$i" != "$L" ] && rest+=("$i"); done
uid=user00002
has() { [ "$(scim_ctl GET store | json_get "j.Users.some(u=>u.userName==='$uid')")" = true ]; }
has || fail "$uid is not in the target before round 2"
scim_fault '{"hold":true,"count":1,"methods":["DELETE"],"match":"/Users"}'
slapd_ldapmodify >/dev/null <<LDIF || fail "modrdn $uid out of scope"
dn: uid=$uid,ou=people,$SLAPD_BASE
changetype: modrdn
newrdn: uid=$uid
deleteoldrdn: 1
newsuperior: ou=groups,$SLAPD_BASE
LDIF
wait_for 10 held || fail "the leader did not send the DELETE of $uid"
host_pause "$L"
# The DELETE lands at once and the user comes back before any new leader:
# the next leader finds it in scope and unchanged against its record.
[ "$(scim_release)" = 1 ] || fail "no held DELETE to release"
slapd_ldapmodify >/dev/null <<LDIF || fail "modrdn $uid back"
dn: uid=$uid,ou=groups,$SLAPD_BASE
changetype: modrdn
newrdn: uid=$uid
deleteoldrdn: 1
newsuperior: ou=people,$SLAPD_BASE
LDIF
has && chaos_note "the held DELETE did not remove $uid" || say "leader $L froze; its DELETE of $uid landed; $uid is back in scope"
wait_for 15 host_leader "${rest[@]}" || fail "no new leader (round 2)"
N=$(host_leader "${rest[@]}")
say "$N leads (term $(host_term "$N")); $uid in the target: $(has && echo yes || echo no)"
host_cont "$L"
sleep $(( (TARGET_TIMEOUT_MS + 2 * T) / 1000 + 5 ))
wait_for 30 idle_leader 1 2 3
has || chaos_bad "$uid, back in scope while its DELETE was in doubt, is missing from the target after the new leader's repair"
chaos_verdict
