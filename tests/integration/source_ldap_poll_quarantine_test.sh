#!/usr/bin/env bash
# source.kind ldap-poll reports its connection as the other sources do: a
# refused bind is quarantine source_unauthorized and nothing is written; a
# fixed password file is read at the next bind and the sync starts; the
# directory going away (which also closes the connection the poll waits on)
# is source_unreachable, and once it is back a change made then arrives.
source "$(dirname "$0")/../fixtures/sync.sh"
dir=$(fixture_tmpdir)

SLAPD_NO_SYNCPROV=1 sync_setup 5 1
bad=$dir/agent-ldap-pw
(umask 077; printf 'not-the-password' >"$bad")
SOURCE_KIND=ldap-poll
SOURCE_EXTRA="  poll_interval_s: 1
  poll_full_every: 3"
export SOURCE_KIND SOURCE_EXTRA
agent_ports 1
SLAPD_PW_FILE=$bad sync_agent_config 1 "[\"1@${AGENT_RAFT[1]}\"]"
agent_start 1
quarantine_is() { [ "$(json_eval "$(agent_status 1)" 'j.sync.quarantine && j.sync.quarantine.reason')" = "$1" ]; }
wait_until 20 quarantine_is source_unauthorized ||
	fail "wrong password: $(json_eval "$(agent_status 1)" 'JSON.stringify(j.sync)')"
[ "$(scim_count Users)" = 0 ] || fail "something was written with a refused bind"
pass "refused bind: quarantine source_unauthorized, nothing written"

cat "$SLAPD_PW_FILE" >"$bad"
"$CANOPYCTL" --server "${AGENT_CTL[1]}" resume >/dev/null 2>&1 || true
users_are() { [ "$(scim_count Users)" = "$1" ]; }
wait_until 40 users_are 5 || fail "after the password was fixed: $(scim_count Users) users; $(agent_status 1)"
wait_until 20 sync_compare || sync_compare || fail "target differs from source"
pass "password file fixed: read at the next bind, the sync ran"

slapd_stop
wait_until 20 quarantine_is source_unreachable ||
	fail "directory down: $(json_eval "$(agent_status 1)" 'JSON.stringify(j.sync)')"
pass "directory down: quarantine source_unreachable"
slapd_restart
"$CANOPYCTL" --server "${AGENT_CTL[1]}" resume >/dev/null 2>&1 || true
printf 'dn: uid=user00002,ou=people,%s\nchangetype: modify\nreplace: sn\nsn: Back\n' "$SLAPD_BASE" | slapd_ldapmodify >/dev/null
back() { [ "$(scim_ctl GET store | json_get "(j.Users.find(u=>u.userName==='user00002')||{}).name.familyName")" = Back ]; }
wait_until 40 back || fail "the change after the directory came back did not arrive: $(agent_status 1)"
not_quarantined() { [ "$(json_eval "$(agent_status 1)" '!j.sync.quarantine')" = true ]; }
wait_until 10 not_quarantined || fail "still in quarantine: $(json_eval "$(agent_status 1)" 'JSON.stringify(j.sync.quarantine)')"
pass "directory back: the change arrived, quarantine left"
