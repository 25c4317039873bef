#!/usr/bin/env bash
# A misbehaving target: 5xx, 429 with Retry-After and slow answers during the
# initial sync -- the sync still converges. A wrong token quarantines the
# target with a reason shown in status; fixing the token file recovers
# without a restart.
source "$(dirname "$0")/../fixtures/sync.sh"
dir=$(fixture_tmpdir)

sync_setup 300 10
scim_fault '{"status":503,"count":40,"skip":20}'
agent_ports 1
sync_agent_config 1 "[\"1@${AGENT_RAFT[1]}\"]"
agent_start 1
sleep 1
scim_fault '{"status":429,"retryAfter":1,"count":10}'
sleep 1
scim_fault '{"delayMs":300,"count":20}'
users_are() { [ "$(scim_count Users)" = "$1" ]; }
wait_until 90 users_are 300 || fail "no convergence under faults: $(scim_count Users) users; $(agent_status 1)"
wait_until 60 sync_compare || sync_compare || fail "target differs from source after faults"
st=$(agent_status 1)
[ "$(json_eval "$st" 'j.sync.target.retries > 0')" = true ] || fail "no retries counted: $st"
pass "503/429/slow answers: converged, target equals source ($(json_eval "$st" 'j.sync.target.retries') retries)"

# The target's token is rotated; the agent still has the old one: quarantine
# with a reason, and no write gets through.
scim_set_token "rotated-$RANDOM$RANDOM"
slapd_ldapmodify <<LDIF >/dev/null
dn: uid=tokentest,ou=people,$SLAPD_BASE
changetype: add
objectClass: inetOrgPerson
uid: tokentest
cn: Token Test
sn: Test
LDIF
quarantined() { [ "$(json_eval "$(agent_status 1)" 'j.sync.state === "quarantined" && j.sync.target.quarantine_reason === "unauthorized"')" = true ]; }
wait_until 20 quarantined || fail "not quarantined: $(agent_status 1)"
out=$("$CANOPYCTL" --server "${AGENT_CTL[1]}" status) || fail "status"
grep -q "^sync .*quarantined" <<<"$out" || fail "canopyctl status does not show the quarantine: $out"
has_user() { [ "$(scim_ctl GET store | json_get "j.Users.some(u=>u.userName==='$1')")" = true ]; }
has_user tokentest && fail "user written despite the wrong token"
pass "wrong token: quarantined, reason unauthorized"

# The operator fixes the agent's token file: it recovers without a restart
# and the change that waited is written.
pid=${AGENT_PID[1]}
(umask 077; cat "$SCIM_TOKEN_FILE" >"$AGENT_TOKEN_FILE")
wait_until 90 has_user tokentest || fail "did not recover after the token was fixed: $(agent_status 1)"
[ "$(json_eval "$(agent_status 1)" 'j.sync.target.quarantined')" = false ] || fail "still quarantined"
kill -0 "$pid" || fail "agent restarted"
pass "token fixed: recovered without a restart, the waiting change was written"
