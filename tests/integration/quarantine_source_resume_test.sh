#!/usr/bin/env bash
# A source quarantine names the directory operation that failed and its LDAP
# result code, and when the source tries again (its reconnect backoff, up to
# 30 s); once the directory is back, `canopyctl resume` cuts the backoff
# short: the sync leaves the quarantine before next_retry_at and the change
# made meanwhile is exported.
source "$(dirname "$0")/../fixtures/sync.sh"
dir=$(fixture_tmpdir)

sync_setup 3 0
agent_ports 1
sync_agent_config 1 "[\"1@${AGENT_RAFT[1]}\"]"
agent_start 1
users_are() { [ "$(scim_count Users)" = "$1" ]; }
wait_until 60 users_are 3 || fail "initial sync: $(scim_count Users) users"
wait_until 30 idle_leader 1 || fail "not idle"

slapd_stop
source_down() {
	[ "$(json_eval "$(agent_status 1)" '(q => q && q.reason === "source_unreachable" && Date.parse(q.since) > 0 &&
		q.last_request && q.last_request.side === "source" && typeof q.last_request.operation === "string" &&
		q.last_request.result_code !== 0 && Date.parse(q.next_retry_at) > Date.now())(j.sync.quarantine)')" = true ]
}
wait_until 30 source_down || fail "no source quarantine with its details: $(json_eval "$(agent_status 1)" 'JSON.stringify(j.sync.quarantine)')"
q=$(json_eval "$(agent_status 1)" 'JSON.stringify(j.sync.quarantine)')
txt=$("$CANOPYCTL" --server "${AGENT_CTL[1]}" status) || fail "status"
grep -qE "last request LDAP [a-z]+ -> result code -?[0-9]+ at " <<<"$txt" || fail "status text lacks the LDAP operation: $txt"
pass "source down: source_unreachable with the LDAP operation and result code, next retry in the future: $q"

# Let the backoff grow to a few seconds, bring the directory back with a
# change made while the agent could not see it, and resume.
far() { [ "$(json_eval "$(agent_status 1)" 'Date.parse(j.sync.quarantine.next_retry_at) - Date.now() >= 3000')" = true ]; }
wait_secs 40 far || fail "the backoff stays short: $(json_eval "$(agent_status 1)" 'JSON.stringify(j.sync.quarantine)')"
next=$(json_eval "$(agent_status 1)" 'Date.parse(j.sync.quarantine.next_retry_at)')
slapd_restart
printf 'dn: uid=user00001,ou=people,%s\nchangetype: modify\nreplace: sn\nsn: WhileAway\n\n' "$SLAPD_BASE" |
	slapd_ldapmodify >/dev/null || fail "ldapmodify"
[ "$(date +%s%3N)" -lt "$next" ] || fail "the directory took too long to come back: nothing left to show"
out=$("$CANOPYCTL" --server "${AGENT_CTL[1]}" resume 2>&1) || fail "resume: $out"
left=$(date +%s%3N)
grep -q "sync resumed" <<<"$out" || fail "resume: $out"
[ "$left" -lt "$next" ] || fail "left the quarantine at $left, not before next_retry_at $next"
renamed() { [ "$(scim_ctl GET store | json_get "j.Users.some(u=>u.name.familyName==='WhileAway')")" = true ]; }
wait_until 30 renamed || fail "the change made while away was not exported"
pass "directory back + resume: left the quarantine $((next - left)) ms before next_retry_at; the change was exported"
