#!/usr/bin/env bash
# Deleting 600 users (threshold 500) stages the deletes and deletes nothing
# until an operator approves; `canopyctl deletes approve` then deletes them.
# Also: a small number of deletes goes through, and reject keeps objects.
source "$(dirname "$0")/../fixtures/sync.sh"
dir=$(fixture_tmpdir)

DELETE_THRESHOLD=500
sync_setup 1000 5
agent_ports 1
sync_agent_config 1 "[\"1@${AGENT_RAFT[1]}\"]"
agent_start 1
users_are() { [ "$(scim_count Users)" = "$1" ]; }
wait_until 60 users_are 1000 || fail "initial sync: $(scim_count Users)"
synced() { [ "$(json_eval "$(agent_status 1)" 'j.sync.state')" = idle ]; }
wait_until 30 synced || fail "not idle"

# 600 deletes while the agent is down: the refresh on restart finds them all
# at once (RFC 4533 refresh with the cookie), one cycle of 600 > 500.
agent_stop 1 TERM
for i in $(seq 1 600); do printf 'dn: uid=user%05d,ou=people,%s\nchangetype: delete\n\n' "$i" "$SLAPD_BASE"; done |
	slapd_ldapmodify >/dev/null || fail "ldapmodify delete"
[ "$(slapd_count '(objectClass=inetOrgPerson)')" = 400 ] || fail "directory does not have 400 users"
deletes_before=$(scim_ctl GET audit | json_get 'j.filter(a=>a.method==="DELETE").length')
agent_start 1
staged() { [ "$(json_eval "$(agent_status 1)" 'j.sync.pending_deletes')" = 600 ]; }
wait_until 30 staged || fail "deletes not staged: $(agent_status 1)"
sleep 1
[ "$(scim_count Users)" = 1000 ] || fail "something was deleted: $(scim_count Users) users"
[ "$(scim_ctl GET audit | json_get 'j.filter(a=>a.method==="DELETE").length')" = "$deletes_before" ] || fail "DELETE requests were sent"
out=$("$CANOPYCTL" --server "${AGENT_CTL[1]}" status) || fail "status"
grep -q "pending deletes 600" <<<"$out" || fail "status does not show the pending deletes: $out"
pass "600 deletes staged, nothing deleted, status shows them"

# The staged deletes survive a restart (they are replicated state).
agent_stop 1 TERM
agent_start 1
wait_until 15 staged || fail "staged deletes lost across restart: $(agent_status 1)"
pass "staged deletes survive a restart"

out=$("$CANOPYCTL" --server "${AGENT_CTL[1]}" deletes approve) || fail "approve: $out"
wait_until 60 users_are 400 || fail "after approve: $(scim_count Users) users"
none() { [ "$(json_eval "$(agent_status 1)" 'j.sync.pending_deletes')" = 0 ]; }
wait_until 10 none || fail "pending deletes remain"
wait_until 30 sync_compare || sync_compare || fail "target differs from source after approval"
pass "approve: 600 deleted, target equals source ($out)"

# A few deletes are under the threshold: they go through at once.
for i in 601 602; do printf 'dn: uid=user%05d,ou=people,%s\nchangetype: delete\n\n' "$i" "$SLAPD_BASE"; done | slapd_ldapmodify >/dev/null
wait_until 20 users_are 398 || fail "small delete did not go through: $(scim_count Users)"
pass "deletes under the threshold go through"

# Nothing staged: approve says so and succeeds.
out=$("$CANOPYCTL" --server "${AGENT_CTL[1]}" deletes approve) || fail "approve with nothing staged failed: $out"
grep -q "nothing staged" <<<"$out" || fail "approve with nothing staged: $out"
