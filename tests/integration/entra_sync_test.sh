#!/usr/bin/env bash
# target.kind entra (sync/target/entra.h) against the Graph fixture: slapd with
# 200 users and 10 groups (nested ones too), one agent with a client secret.
# The initial sync lands and equals the directory (every user, attribute and
# membership, compared on a dump of the fixture); a modify, a value removed, a disable, a
# delete and a membership change each arrive; tokens that expire every 4 s
# are refreshed before they do (no request is answered 401); and a
# certificate (JWT client assertion) works as well as the secret.
source "$(dirname "$0")/../fixtures/sync.sh"
source "$(dirname "$0")/../fixtures/entra.sh"
dir=$(fixture_tmpdir)

slapd_start 200 10 1
export GRAPH_TOKEN_TTL=4 GRAPH_CERT=1
graph_start
anchor=$(entra_anchor)

st_of() { json_eval "$(agent_status 1 2>/dev/null || echo '{}')" "$1"; }

agent_ports 1
secret_auth=$(entra_secret_auth)

# --check-config names what Graph needs and the mapping does not give.
entra_config 1 "$secret_auth"
sed '/^    mailNickname: "\[uid\]"/d' "$dir/agent1.yaml" >"$dir/bad.yaml"
out=$("$CANOPY_AGENT" --config "$dir/bad.yaml" --check-config 2>&1) && fail "--check-config accepted a user mapping without mailNickname"
echo "$out" | grep -q 'mapping.user.mailNickname is missing' || fail "unclear --check-config error: $out"
sed '/^  auth: /d' "$dir/agent1.yaml" >"$dir/bad.yaml"
out=$("$CANOPY_AGENT" --config "$dir/bad.yaml" --check-config 2>&1) && fail "--check-config accepted entra without target.auth"
echo "$out" | grep -q 'target.kind entra needs target.auth' || fail "unclear --check-config error: $out"
"$CANOPY_AGENT" --config "$dir/agent1.yaml" --check-config >/dev/null 2>&1 || fail "--check-config refused a good entra config"
pass "--check-config: entra needs target.auth and the names Graph requires"

agent_start 1
wait_secs 90 entra_compare || fail "initial sync incomplete: $(entra_compare | head -n 5); sync: $(st_of 'j.sync')"
pass "initial sync: $(entra_compare)"

n_users=$(graph_dump users | json_get 'j.length')
[ "$n_users" = 200 ] || fail "want 200 users in Graph, got $n_users"

slapd_ldapmodify <<LDIF
dn: uid=user00005,ou=people,$SLAPD_BASE
changetype: modify
replace: givenName
givenName: Renamed
-
replace: title
title: Chief Tester
LDIF
wait_secs 30 entra_compare || fail "modify did not arrive: $(entra_compare | head -n 5)"
[ "$(graph_user_id user00005@example.com)" != "" ] || fail "user00005 lost"
graph_dump users | json_get "j.find(u=>u.mailNickname==='user00005').displayName" | grep -q '^Renamed ' ||
	fail "user00005 was not renamed in Graph"
pass "modify arrived (displayName, givenName, department)"

slapd_ldapmodify <<LDIF
dn: uid=user00006,ou=people,$SLAPD_BASE
changetype: modify
delete: title
LDIF
wait_secs 30 entra_compare || fail "a value removed did not arrive: $(entra_compare | head -n 5)"
[ "$(graph_dump users | json_get "j.find(u=>u.mailNickname==='user00006').department ?? 'cleared'")" = cleared ] ||
	fail "user00006 kept its department"
pass "a value removed from the source is cleared in Graph (department null)"

slapd_ldapmodify <<LDIF
dn: uid=user00007,ou=people,$SLAPD_BASE
changetype: modify
add: employeeType
employeeType: disabled
LDIF
wait_secs 30 entra_compare || fail "disable did not arrive: $(entra_compare | head -n 5)"
[ "$(graph_dump users | json_get "j.find(u=>u.mailNickname==='user00007').accountEnabled")" = false ] ||
	fail "user00007 is still enabled"
pass "disable arrived (accountEnabled false)"

gone=$(graph_user_id user00009@example.com)
[ -n "$gone" ] || fail "user00009 was never created"
slapd_ldapmodify <<LDIF
dn: uid=user00009,ou=people,$SLAPD_BASE
changetype: delete
LDIF
wait_secs 30 entra_compare || fail "delete did not arrive: $(entra_compare | head -n 5)"
[ -z "$(graph_user_id user00009@example.com)" ] || fail "user00009 is still in Graph"
graph_wait_audit "a.method === 'DELETE' && a.path === '/v1.0/users/$gone' && a.status === 204" 5
pass "delete arrived (DELETE /users/$gone)"

g3=$(graph_group_id group0003)
u10=$(graph_user_id user00010@example.com)
u2=$(graph_user_id user00002@example.com)
graph_members "$g3" | grep -qx "$u2" || fail "user00002 should start in group0003"
slapd_ldapmodify <<LDIF
dn: cn=group0003,ou=groups,$SLAPD_BASE
changetype: modify
add: member
member: uid=user00010,ou=people,$SLAPD_BASE
-
delete: member
member: uid=user00002,ou=people,$SLAPD_BASE
LDIF
wait_secs 30 entra_compare || fail "membership change did not arrive: $(entra_compare | head -n 5)"
graph_members "$g3" | grep -qx "$u10" || fail "user00010 was not added to group0003"
graph_members "$g3" | grep -qx "$u2" && fail "user00002 is still in group0003"
pass "membership change arrived (one added, one removed)"

# Tokens live 4 s: keep changing a user, each change arriving, until the
# agent has fetched several; none may have been used expired.
for ((round = 1; round <= 60; round++)); do
	[ "$(graph_ctl GET stats | json_get 'j.tokensIssued')" -ge 4 ] && break
	slapd_ldapmodify >/dev/null <<LDIF
dn: uid=user00012,ou=people,$SLAPD_BASE
changetype: modify
replace: title
title: Round $round
LDIF
	wait_secs 30 entra_compare || fail "change of round $round did not arrive: $(entra_compare | head -n 5)"
done
issued=$(graph_ctl GET stats | json_get 'j.tokensIssued')
expired=$(graph_ctl GET stats | json_get 'j.expiredUsed')
n401=$(graph_audit_count "a.status === 401 && a.path.startsWith('/v1.0/')")
[ "$expired" = 0 ] && [ "$n401" = 0 ] || fail "expired tokens used: $expired, requests answered 401: $n401"
[ "$issued" -ge 4 ] || fail "only $issued token(s) issued with a 4 s lifetime: no refresh happened"
pass "4 s tokens: $issued fetched over $round rounds of changes, none used expired, no 401"

# The same agent with a certificate instead of the secret.
agent_stop 1
entra_config 1 "{ kind: oauth2, token_url: \"$GRAPH_TOKEN_URL\", client_id: $GRAPH_CLIENT_ID, client_cert: $GRAPH_CLIENT_CERT, client_key: $GRAPH_CLIENT_KEY, scope: \"$GRAPH_SCOPE\" }"
before=$(graph_ctl GET stats | json_get 'j.byClientAuth.assertion')
agent_start 1
slapd_ldapmodify <<LDIF
dn: uid=user00011,ou=people,$SLAPD_BASE
changetype: modify
replace: sn
sn: Certified
LDIF
wait_secs 30 entra_compare || fail "change with a client assertion did not arrive: $(entra_compare | head -n 5)"
graph_dump users | json_get "j.find(u=>u.mailNickname==='user00011').surname" | grep -qx Certified ||
	fail "user00011 surname not written"
after=$(graph_ctl GET stats | json_get 'j.byClientAuth.assertion')
[ "$after" -gt "$before" ] || fail "no token was issued for a client assertion ($before -> $after)"
agent_stop 1
pass "client certificate (JWT assertion): $((after - before)) token(s), change arrived"
