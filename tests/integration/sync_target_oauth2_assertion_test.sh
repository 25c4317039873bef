#!/usr/bin/env bash
# target.auth with a certificate (issue 17): the agent authenticates to the
# token endpoint with an RFC 7523 JWT client assertion (RS256, x5t#S256 naming
# the registered certificate) instead of a secret, and syncs with the tokens.
# A key readable by others is refused at start.
source "$(dirname "$0")/../fixtures/sync.sh"
dir=$(fixture_tmpdir)

export SCIM_OAUTH2=1 SCIM_OAUTH2_CERT=1
sync_setup 20 2
st_of() { json_eval "$(agent_status "$1" 2>/dev/null || echo '{}')" "$2"; }

agent_ports 1
sync_agent_config 1 "[\"1@${AGENT_RAFT[1]}\"]"
sed -i "s|^  token_file: .*|  auth: { kind: oauth2, token_url: \"$SCIM_TOKEN_URL\", client_id: $SCIM_OAUTH2_CLIENT_ID, client_cert: $SCIM_OAUTH2_CLIENT_CERT, client_key: $SCIM_OAUTH2_CLIENT_KEY }|" "$dir/agent1.yaml"
grep -q 'client_cert:' "$dir/agent1.yaml" || fail "could not configure target.auth"

chmod 644 "$SCIM_OAUTH2_CLIENT_KEY"
out=$("$CANOPY_AGENT" --config "$dir/agent1.yaml" 2>&1) && fail "started with a world-readable key"
echo "$out" | grep -q 'client_key.*readable by group or others' || fail "unclear refusal: $out"
chmod 600 "$SCIM_OAUTH2_CLIENT_KEY"
pass "a client key readable by others is refused: $(echo "$out" | tail -n 1)"

agent_start 1
wait_until 30 sync_compare || fail "sync with a client assertion incomplete: $(st_of 1 'j.sync')"
n=$(scim_oauth2 | json_get 'j.byClientAuth.assertion')
[ "$n" -ge 1 ] || fail "no token was issued for an assertion: $(scim_oauth2)"
[ "$(scim_oauth2 | json_get 'j.refused')" = 0 ] || fail "the token endpoint refused an assertion: $(scim_oauth2)"
wait_until 10 grep -q 'level=warn.*target.auth.token_url is http://' "$dir/agent1.log.tmp" || fail "no warning for an http:// token_url"
agent_stop 1
pass "JWT client assertion (RS256, x5t#S256): $n token(s) issued, target equals source"
