#!/usr/bin/env bash
# SelectUniqueValue in a mapping, against the Graph fixture (target.kind
# entra): when a user is created Graph is asked about each candidate in order
# (GET /users?$filter=userPrincipalName eq '...', a quote in the value
# doubled) and the first one no other object holds is written; an update
# never asks again and keeps it (no null is sent for it, nor for a Guid()
# written at creation: both are creation-only properties); every candidate
# held -> the user is not created but recorded as a failed object naming the
# rule, the property and the candidates, and once a candidate is freed,
# `canopyctl resync DN` creates it. The SCIM side is
# sync_select_unique_value_test.sh; docs/mapping-expressions.md,
# "SelectUniqueValue".
source "$(dirname "$0")/../fixtures/entra.sh"
dir=$(fixture_tmpdir)

slapd_start 4 0
# a user whose candidates carry a quote: OData doubles it in a literal
slapd_ldapmodify <<LDIF >/dev/null || fail "cannot add o'neil"
dn: uid=o'neil,ou=people,$SLAPD_BASE
changetype: add
objectClass: inetOrgPerson
uid: o'neil
cn: Pat O'Neil
givenName: Pat
sn: O'Neil
mail: o'neil@example.com
LDIF
graph_start
anchor=$(entra_anchor)
graph_token >/dev/null
# held in Graph by objects that are not ours (made by hand, no anchor):
# user00002 gets its third candidate, user00003 has none left, o'neil its second
seed() {
	local st
	st=$(graph_req POST /users "{\"accountEnabled\":true,\"displayName\":\"by hand\",\"mailNickname\":\"hand\",\"userPrincipalName\":\"$1\",\"passwordProfile\":{\"password\":\"Xy12345678!\"}}")
	[ "$st" = 201 ] || fail "seeding $1: HTTP $st $(graph_body)"
	graph_body | json_get 'j.id'
}
for upn in user00002@example.com user00002.2@example.com user00003@example.com user00003.3@example.com \
	"o'neil@example.com"; do
	seed "$upn" >/dev/null
done
held=$(seed user00003.2@example.com)

agent_ports 1
entra_config 1 "$(entra_secret_auth)"
rule='    userPrincipalName: '\''SelectUniqueValue([mail], Join("@", Join(".", [uid], "2"), "example.com"), Join("@", Join(".", [uid], "3"), "example.com"))'\'
cfg=$(<"$dir/agent1.yaml")
[[ $cfg == *'    userPrincipalName: "[mail]"'* ]] || fail "entra_config's mapping changed: no userPrincipalName: \"[mail]\""
printf '%s\n' "${cfg/    userPrincipalName: \"\[mail\]\"/$rule$'\n'    employeeId: \"Guid()\"}" >"$dir/agent1.yaml"
"$CANOPY_AGENT" --config "$dir/agent1.yaml" --check-config >/dev/null 2>&1 ||
	fail "--check-config refused SelectUniqueValue with target.kind entra: $("$CANOPY_AGENT" --config "$dir/agent1.yaml" --check-config 2>&1)"
agent_start 1
ctl() { "$CANOPYCTL" --server "${AGENT_CTL[1]}" "$@"; }
ours() { graph_dump users | json_get "JSON.stringify(j.filter(u=>u['$anchor']).map(u=>u.userPrincipalName).sort())"; }
landed() { [ "$(ours)" = "[\"o'neil.2@example.com\",\"user00001@example.com\",\"user00002.3@example.com\",\"user00004@example.com\"]" ]; }
wait_until 60 landed || fail "initial sync: Graph has $(ours) of ours"
# the questions were Graph $filter reads, the quote doubled
graph_audit_count "a.method === 'GET' && decodeURIComponent(a.path).includes(\"userPrincipalName eq 'o''neil@example.com'\")" |
	grep -qvx 0 || fail "no \$filter read with the quote doubled: $(graph_audit "a.method === 'GET'" | head -n 5)"
pass "new users got their first free candidate: $(ours)"

dn3="uid=user00003,ou=people,$SLAPD_BASE"
failed() { ctl failed --json | json_get "JSON.stringify(j.failed.find(f=>f.dn==='$dn3') || null)"; }
listed() { [ "$(failed)" != null ]; }
wait_until 30 listed || fail "user00003 is not a failed object: $(ctl failed --json)"
err=$(failed)
for want in "SelectUniqueValue" "userPrincipalName" \
	'\"user00003@example.com\", \"user00003.2@example.com\", \"user00003.3@example.com\"'; do
	grep -qF -- "$want" <<<"$err" || fail "the failure does not name $want: $err"
done
[ "$(graph_dump users | json_get 'j.length')" = 10 ] ||
	fail "$(graph_dump users | json_get 'j.length') users in Graph, want 10: user00003 was written anyway"
logged() { ctl logs --object "$dn3" --json | json_get 'j.entries.some(e=>e.action==="create" && e.result==="error")' | grep -qx true; }
wait_until 10 logged || fail "no failed create in the provisioning log: $(ctl logs --object "$dn3" --json)"
pass "every candidate taken: not created, listed as failed: $err"

guid_of() { graph_dump users | json_get "(j.find(u=>u.userPrincipalName==='$1') || {}).employeeId"; }
guid2=$(guid_of user00002.3@example.com)
[[ $guid2 =~ ^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$ ]] ||
	fail "user00002.3@ was not created with a Guid() employeeId: $guid2"
# an update does not choose again: user00002 keeps user00002.3@ (and its GUID)
slapd_ldapmodify <<LDIF >/dev/null
dn: uid=user00002,ou=people,$SLAPD_BASE
changetype: modify
replace: sn
sn: Renamed
LDIF
renamed() { graph_dump users | json_get "(j.find(u=>u.userPrincipalName==='user00002.3@example.com') || {}).surname" | grep -qx Renamed; }
wait_until 30 renamed ||
	fail "the update of user00002 did not keep user00002.3@: $(graph_dump users | json_get "JSON.stringify(j.filter(u=>u['$anchor']).map(u=>[u.userPrincipalName,u.surname]))")"
[ "$(guid_of user00002.3@example.com)" = "$guid2" ] ||
	fail "the update of user00002 changed or cleared its Guid() employeeId: $guid2 -> $(guid_of user00002.3@example.com)"
pass "an update of user00002 keeps the userPrincipalName chosen at creation and its employeeId $guid2"

# free a candidate; resync creates the user with it
st=$(graph_req DELETE "/users/$held")
[ "$st" = 204 ] || fail "DELETE user00003.2@: HTTP $st $(graph_body)"
ctl resync "$dn3" >/dev/null || fail "canopyctl resync $dn3"
created() { graph_dump users | json_get "j.some(u=>u.userPrincipalName==='user00003.2@example.com' && u['$anchor'])" | grep -qx true; }
wait_until 30 created || fail "after resync user00003 was not created as user00003.2@: $(ours)"
gone() { [ "$(failed)" = null ]; }
wait_until 10 gone || fail "user00003 still listed as failed: $(failed)"
pass "after freeing user00003.2@, canopyctl resync created it: $(ours)"
