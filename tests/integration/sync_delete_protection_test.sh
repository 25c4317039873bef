#!/usr/bin/env bash
# Deleting 600 users (threshold 500, safety.on_threshold: stop) stages every
# delete and deletes nothing until an operator approves (checked after a
# later change has been exported, so the engine had its chance); the sync reads
# quarantined (delete_threshold), `deletes list` and `logs --errors` show them;
# `canopyctl deletes approve` then deletes them. Also: a small number of
# deletes goes through. (Streamed deletes and the excess mode:
# sync_delete_stream_test.)
source "$(dirname "$0")/../fixtures/sync.sh"
dir=$(fixture_tmpdir)

DELETE_THRESHOLD=500
ON_THRESHOLD=stop
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
# Nothing may be deleted -- checked once the engine has had its chance: a
# change made after the deletes comes in a later batch (changes are exported
# in order), so once it is in the target, whatever the batch of the deletes
# and the ones after it were going to send has been sent.
slapd_ldapmodify <<LDIF >/dev/null || fail "ldapmodify (the change after the deletes)"
dn: uid=user00900,ou=people,$SLAPD_BASE
changetype: modify
replace: sn
sn: AfterStaging
LDIF
family_of() { scim_ctl GET store | json_get "(j.Users.find(u=>u.userName==='$1')||{name:{}}).name.familyName"; }
marker_exported() { [ "$(family_of user00900)" = AfterStaging ]; }
wait_until 30 marker_exported || fail "the change made after the deletes was not exported: $(agent_status 1)"
[ "$(scim_count Users)" = 1000 ] || fail "something was deleted: $(scim_count Users) users"
[ "$(scim_ctl GET audit | json_get 'j.filter(a=>a.method==="DELETE").length')" = "$deletes_before" ] || fail "DELETE requests were sent"
[ "$(json_eval "$(agent_status 1)" 'j.sync.pending_deletes')" = 600 ] || fail "the staged deletes changed: $(agent_status 1)"
out=$("$CANOPYCTL" --server "${AGENT_CTL[1]}" status) || fail "status"
grep -q "pending deletes 600" <<<"$out" || fail "status does not show the pending deletes: $out"
st=$(agent_status 1)
[ "$(json_eval "$st" 'j.sync.state + " " + (j.sync.quarantine||{}).reason')" = "quarantined delete_threshold" ] ||
	fail "held deletes must read quarantined (delete_threshold): $(json_eval "$st" 'JSON.stringify(j.sync)')"
"$CANOPYCTL" --server "${AGENT_CTL[1]}" deletes list --json >"$dir/deletes.json" || fail "deletes list"
[ "$(json_get 'j.deletes.length' <"$dir/deletes.json")" = 600 ] || fail "deletes list does not list 600"
json_get 'j.deletes.every(d => /^uid=user\d+,ou=people,/.test(d.dn) && d.type === "user" && d.target_id)' <"$dir/deletes.json" |
	grep -q true || fail "deletes list entries lack dn/type/target_id: $(json_get 'j.deletes[0]' <"$dir/deletes.json")"
out=$("$CANOPYCTL" --server "${AGENT_CTL[1]}" deletes list) || fail "deletes list (text)"
grep -q "^600 staged deletes" <<<"$out" || fail "deletes list text: $(head -3 <<<"$out")"
held=$("$CANOPYCTL" --server "${AGENT_CTL[1]}" logs --errors --limit 1000 --json |
	json_get 'j.entries.filter(e => e.result === "held" && e.action === "staged-delete").length') || fail "logs --errors"
[ "$held" = 600 ] || fail "logs --errors does not show the 600 held deletes (shows $held)"
agent_logs 1 | grep >/dev/null 'msg="delete threshold reached' || fail "no log line for the staged deletes"
pass "600 deletes staged, nothing deleted; quarantined, listed, logged"

# The staged deletes survive a restart (they are replicated state).
agent_stop 1 TERM
agent_start 1
wait_until 15 staged || fail "staged deletes lost across restart: $(agent_status 1)"
pass "staged deletes survive a restart"

# agent_ctl: status shows the staged deletes (replicated state) before the
# restarted node is a ready leader again, and until then it answers 503 to
# a mutation.
out=$(agent_ctl 1 deletes approve) || fail "approve: $out"
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
