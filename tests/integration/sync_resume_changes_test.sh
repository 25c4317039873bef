#!/usr/bin/env bash
# Resume from the cursor with changes made while the agent was down: only the
# changed objects are written, and nothing is deleted. (Regression: slapd's
# session log tells the groups session that changed *users* "no longer
# match"; the engine once took those as user deletes.)
source "$(dirname "$0")/../fixtures/sync.sh"
dir=$(fixture_tmpdir)

sync_setup 20 2
agent_ports 1
sync_agent_config 1 "[\"1@${AGENT_RAFT[1]}\"]"
agent_start 1
users_are() { [ "$(scim_count Users)" = "$1" ]; }
wait_until 30 users_are 20 || fail "initial sync"
idle() { [ "$(json_eval "$(agent_status 1)" 'j.sync.state')" = idle ]; }
wait_until 20 idle || fail "not idle"
agent_stop 1 TERM
since=$(scim_ctl GET audit | json_get 'j.length ? j[j.length-1].seq : 0')

for i in 5 6 7; do printf 'dn: uid=user%05d,ou=people,%s\nchangetype: modify\nreplace: sn\nsn: Changed%d\n\n' "$i" "$SLAPD_BASE" "$i"; done |
	slapd_ldapmodify >/dev/null || fail "ldapmodify"
agent_start 1
wait_role 1 leader 10 || fail "no leader"
wait_until 30 idle || fail "not idle after resume"
wait_until 20 sync_compare || sync_compare || fail "target differs from source after resume"
deletes=$(scim_ctl GET audit | json_get "j.filter(a=>a.seq>$since && a.method==='DELETE').length")
[ "$deletes" = 0 ] || fail "$deletes DELETE requests on resume"
puts=$(scim_ctl GET audit | json_get "j.filter(a=>a.seq>$since && a.status<300).map(a=>a.userName||a.displayName).sort().join(',')")
[ "$puts" = "user00005,user00006,user00007" ] || fail "writes on resume: $puts (want only the 3 changed users)"
pass "resume wrote exactly the 3 changed users, deleted nothing"
