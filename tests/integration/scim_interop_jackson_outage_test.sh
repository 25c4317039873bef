#!/usr/bin/env bash
# A target without ServiceProviderConfig leaves quarantine once it is back.
# BoxyHQ Polis Directory Sync answers 404 there (RFC 7644 §4 wants it); the
# target's quarantine probe asked only there, so after any outage canopy
# stayed quarantined against Polis for good. Polis (on its SQLite storage) is
# stopped for longer than every retry budget while users change: the agent
# quarantines the target; Polis restarts on the same storage; the probe falls
# back to GET /Users?count=1, the agent leaves quarantine and every change
# made during the outage is in Polis (docs/targets.md, "Interop matrix").
source "$(dirname "$0")/../fixtures/interop.sh"

TARGET_MAX_ATTEMPTS=2 TARGET_TIMEOUT_MS=2000
slapd_start 20 2
interop_start jackson
agent_ports 1
sync_agent_config 1 "[\"1@${AGENT_RAFT[1]}\"]"
agent_start 1
_count_is() { [ "$(interop_count "$1")" = "$2" ]; }
wait_secs 40 _count_is Users 20 || fail "initial sync: $(interop_count Users) users (want 20)"
wait_secs 20 interop_compare || interop_compare || fail "the target differs from the source after the initial sync"

interop_stop
for i in 3 4 5 6 7; do
	printf 'dn: uid=user%05d,ou=people,%s\nchangetype: modify\nreplace: sn\nsn: Outage-%s\n\n' "$i" "$SLAPD_BASE" "$i" |
		slapd_ldapmodify >/dev/null || fail "ldapmodify user $i"
done
_sync() { json_eval "$(agent_status 1)" "j.sync.state + ' ' + ((j.sync.quarantine||{}).reason||'')"; }
_quarantined() { [ "$(_sync)" = "quarantined target_unreachable" ]; }
wait_secs 60 _quarantined || fail "the agent did not quarantine the stopped target: $(_sync)"
pass "Polis stopped: the agent quarantined the target ($(_sync))"

interop_restart
_delivered() {
	local i
	for i in 3 4 5 6 7; do
		[ "$(interop_user_field "$(printf 'user%05d' "$i")" 'u.name.familyName')" = "Outage-$i" ] || return 1
	done
}
wait_secs 60 _delivered ||
	fail "changes made during the outage are missing after Polis came back: sync $(_sync), $(json_eval "$(agent_status 1)" 'JSON.stringify(j.sync.quarantine)')"
_left() { [ "$(json_eval "$(agent_status 1)" 'j.sync.state')" != quarantined ]; }
wait_secs 20 _left || fail "still quarantined: $(_sync)"
wait_secs 20 interop_compare || interop_compare || fail "the target differs from the source after the outage"
pass "Polis back on the same storage: the agent left quarantine, every change made during the outage is there, target equals source"
