#!/usr/bin/env bash
# A user that already exists in Entra with the same userPrincipalName (400
# ObjectConflict on create): adopted when it carries no anchor (one object,
# the same id, now with canopy's anchor), refused for good when it carries
# another one (it stays as it was, and the provisioning log says why); never
# a second user.
source "$(dirname "$0")/../fixtures/entra.sh"
dir=$(fixture_tmpdir)

slapd_start 5 1
graph_start
anchor=$(entra_anchor)
graph_token >/dev/null
st=$(graph_req POST /users '{"accountEnabled":true,"displayName":"Made by hand","mailNickname":"user00001","userPrincipalName":"user00001@example.com","passwordProfile":{"password":"Xy12345678!"}}')
[ "$st" = 201 ] || fail "cannot seed user00001: $st $(graph_body)"
mine=$(graph_body | json_get 'j.id')
st=$(graph_req POST /users "{\"accountEnabled\":true,\"displayName\":\"Someone else's\",\"mailNickname\":\"user00002\",\"userPrincipalName\":\"user00002@example.com\",\"passwordProfile\":{\"password\":\"Xy12345678!\"},\"$anchor\":\"another-domain\"}")
[ "$st" = 201 ] || fail "cannot seed user00002: $st $(graph_body)"
theirs=$(graph_body | json_get 'j.id')

agent_ports 1
entra_config 1 "$(entra_secret_auth)"
agent_start 1
wait_until 30 grep -q 'user00002.*"result":"error".*not adopted' "$dir/data1/provisioning.log" ||
	fail "no refusal for user00002 in the provisioning log"
ours() { graph_dump users | json_get "j.filter(u=>u['$anchor'] && u['$anchor'] !== 'another-domain').length"; }
wait_secs 30 eval '[ "$(ours)" = 4 ]' ||
	fail "the other users did not land: $(graph_dump users | json_get 'j.length') users"

[ "$(graph_dump users | json_get 'j.length')" = 5 ] || fail "want 5 users (no duplicate), got $(graph_dump users | json_get 'j.length')"
[ "$(graph_user_id user00001@example.com)" = "$mine" ] || fail "user00001 is not the seeded object any more"
got=$(graph_dump users | json_get "j.find(u=>u.id==='$mine')['$anchor']")
[ -n "$got" ] && [ "$got" != another-domain ] && [ "$got" != undefined ] || fail "user00001 was not given our anchor: $got"
[ "$(graph_dump users | json_get "j.find(u=>u.id==='$mine').displayName")" != "Made by hand" ] || fail "user00001 was adopted but not updated"
[ "$(graph_dump users | json_get "j.find(u=>u.id==='$theirs')['$anchor']")" = another-domain ] || fail "user00002's anchor was overwritten"
[ "$(graph_dump users | json_get "j.find(u=>u.id==='$theirs').displayName")" = "Someone else's" ] || fail "user00002 was changed"
agent_stop 1
pass "user00001 (no anchor) adopted as $mine; user00002 (another anchor) refused and left alone; 5 users"
