#!/usr/bin/env bash
# Delete protection is exact while agents run: deletes made faster than a
# batch, after a (rolling) restart, are counted together before any request
# leaves. Threshold 100, 150 users deleted at once with one ldapmodify: exactly
# 100 DELETEs go out, 50 are staged (safety.on_threshold: stage_excess, the
# default), the sync reads quarantined (delete_threshold) and says so in the
# log; while anything is staged, later deletes are staged too; approve runs
# them, and approved deletes do not count against the window.
source "$(dirname "$0")/../fixtures/sync.sh"
dir=$(fixture_tmpdir)

DELETE_THRESHOLD=100
sync_setup 400 2
agent_ports 1
sync_agent_config 1 "[\"1@${AGENT_RAFT[1]}\"]"
agent_start 1
users_are() { [ "$(scim_count Users)" = "$1" ]; }
wait_until 60 users_are 400 || fail "initial sync: $(scim_count Users)"
synced() { [ "$(json_eval "$(agent_status 1)" 'j.sync.state')" = idle ]; }
wait_until 30 synced || fail "not idle"

# A rolling restart first (the case where all deletes used to run).
agent_stop 1 TERM
agent_start 1
wait_until 30 synced || fail "not idle after restart"

deletes() { scim_ctl GET audit | json_get 'j.filter(a=>a.method==="DELETE" && a.status < 300).length'; }
before=$(deletes)
for i in $(seq 1 150); do printf 'dn: uid=user%05d,ou=people,%s\nchangetype: delete\n\n' "$i" "$SLAPD_BASE"; done |
	slapd_ldapmodify >/dev/null || fail "ldapmodify delete"
staged() { [ "$(json_eval "$(agent_status 1)" 'j.sync.pending_deletes')" = "$1" ]; }
wait_until 30 staged 50 || fail "expected 50 staged: $(json_eval "$(agent_status 1)" 'JSON.stringify(j.sync)')"
wait_until 30 users_are 300 || fail "expected exactly 100 deleted: $(scim_count Users) users left"
[ $(($(deletes) - before)) = 100 ] || fail "expected 100 DELETE requests, saw $(($(deletes) - before))"
st=$(agent_status 1)
[ "$(json_eval "$st" 'j.sync.state + " " + (j.sync.quarantine||{}).reason')" = "quarantined delete_threshold" ] ||
	fail "not quarantined (delete_threshold): $(json_eval "$st" 'JSON.stringify(j.sync)')"
agent_logs 1 | grep >/dev/null 'msg="delete threshold reached' ||
	fail "the log does not say what was staged: $(agent_logs 1 | grep -i delete | tail -3)"
pass "150 fast deletes, threshold 100: 100 executed, 50 staged, quarantined, logged"

# While deletes are staged, a later one is staged too (deletes stay in order).
printf 'dn: uid=user00151,ou=people,%s\nchangetype: delete\n\n' "$SLAPD_BASE" | slapd_ldapmodify >/dev/null
wait_until 30 staged 51 || fail "a later delete was not staged: $(json_eval "$(agent_status 1)" 'j.sync.pending_deletes')"
users_are 300 || fail "a delete ran while others were staged: $(scim_count Users)"
pass "while staged, later deletes are staged too"

# The window is replicated state: a restart does not forget the 100 deletes.
agent_stop 1 TERM
agent_start 1
wait_until 30 staged 51 || fail "staged deletes lost across restart"
# agent_ctl: status shows the staged deletes (replicated state) before the
# restarted node is a ready leader again, and until then it answers 503 to
# a mutation.
out=$(agent_ctl 1 deletes approve) || fail "approve: $out"
wait_until 60 users_are 249 || fail "after approve: $(scim_count Users) users"
wait_until 10 staged 0 || fail "pending deletes remain"
wait_until 30 synced || fail "not idle after approval: $(json_eval "$(agent_status 1)" 'JSON.stringify(j.sync)')"
wait_until 30 sync_compare || sync_compare || fail "target differs from source after approval"
pass "approve: 51 deleted, quarantine cleared, target equals source"

# 100 deletes ran in the window (approved ones do not count): one more is staged.
printf 'dn: uid=user00152,ou=people,%s\nchangetype: delete\n\n' "$SLAPD_BASE" | slapd_ldapmodify >/dev/null
wait_until 30 staged 1 || fail "the window forgot the executed deletes: $(json_eval "$(agent_status 1)" 'JSON.stringify(j.sync)')"
pass "the delete window counts executed deletes across a restart"
