#!/usr/bin/env bash
# SelectUniqueValue in a mapping, against the SCIM target: when a user is
# created the target is asked about each candidate in order and the first one
# no other object holds is written; an update never asks again and keeps it
# (the target keeps what the update leaves out); every candidate held ->
# the user is not created but recorded as a failed object naming the
# attribute and the candidates, and once a candidate is freed,
# `canopyctl resync DN` creates it. docs/mapping-expressions.md,
# "SelectUniqueValue".
source "$(dirname "$0")/../fixtures/sync.sh"
base=dc=example,dc=com

USER_NAME_RULE="'SelectUniqueValue([uid], Join(\".\", [uid], \"2\"), Join(\".\", [uid], \"3\"))'"
sync_setup 4 0
# held in the target by objects that are not ours (made by hand, no
# externalId): user00002 keeps its third candidate, user00003 has none left
seed() {
	local code
	code=$(scim_req POST /Users "{\"schemas\":[\"urn:ietf:params:scim:schemas:core:2.0:User\"],\"userName\":\"$1\"}")
	[ "$code" = 201 ] || fail "seeding $1: HTTP $code $(scim_body)"
	json_get j.id <"$SCIM_BODY_FILE"
}
seed user00002 >/dev/null
seed user00002.2 >/dev/null
seed user00003 >/dev/null
held=$(seed user00003.2)
seed user00003.3 >/dev/null
agent_ports 1
sync_agent_config 1 "[\"1@${AGENT_RAFT[1]}\"]"
agent_start 1
ctl() { "$CANOPYCTL" --server "${AGENT_CTL[1]}" "$@"; }
ours() { scim_ctl GET store | json_get "JSON.stringify(j.Users.filter(u=>u.externalId).map(u=>u.userName).sort())"; }
three() { [ "$(ours)" = '["user00001","user00002.3","user00004"]' ]; }
wait_until 60 three || fail "initial sync: the target has $(ours) of ours"
pass "new users got their first free candidate: $(ours)"

dn3="uid=user00003,ou=people,$base"
failed() { ctl failed --json | json_get "JSON.stringify(j.failed.find(f=>f.dn==='$dn3') || null)"; }
listed() { [ "$(failed)" != null ]; }
wait_until 30 listed || fail "user00003 is not a failed object: $(ctl failed --json)"
err=$(failed)
for want in "SelectUniqueValue" "userName" '\"user00003\", \"user00003.2\", \"user00003.3\"'; do
	grep -qF -- "$want" <<<"$err" || fail "the failure does not name $want: $err"
done
[ "$(scim_count Users)" = 8 ] || fail "$(scim_count Users) users in the target: user00003 was written anyway"
logged() { ctl logs --object "$dn3" --json | json_get 'j.entries.some(e=>e.action==="create" && e.result==="error")' | grep -qx true; }
wait_until 10 logged || fail "no failed create in the provisioning log: $(ctl logs --object "$dn3" --json)"
pass "every candidate taken: not created, listed as failed: $err"

# an update does not choose again: user00002 keeps user00002.3
printf 'dn: uid=user00002,ou=people,%s\nchangetype: modify\nreplace: sn\nsn: Renamed\n\n' "$base" | slapd_ldapmodify >/dev/null
renamed() { scim_ctl GET store | json_get "j.Users.find(u=>u.userName==='user00002.3').name.familyName" | grep -qx Renamed; }
wait_until 30 renamed || fail "the update of user00002 did not keep user00002.3: $(scim_ctl GET store | json_get 'JSON.stringify(j.Users.map(u=>[u.userName,u.externalId,u.name]))')"
pass "an update of user00002 keeps the userName chosen at creation"

# free a candidate; resync creates the user with it
code=$(scim_req DELETE "/Users/$held")
[ "$code" = 204 ] || fail "DELETE user00003.2: HTTP $code"
ctl resync "$dn3" >/dev/null || fail "canopyctl resync $dn3"
created() { scim_ctl GET store | json_get "j.Users.some(u=>u.userName==='user00003.2' && u.externalId)" | grep -qx true; }
wait_until 30 created || fail "after resync user00003 was not created as user00003.2: $(ours)"
gone() { [ "$(failed)" = null ]; }
wait_until 10 gone || fail "user00003 still listed as failed: $(failed)"
pass "after freeing user00003.2, canopyctl resync created it: $(ours)"
