#!/usr/bin/env bash
# A quarantine says what an operator needs on every node: reason, since, the
# last failing request (401 from the target) and when the leader checks
# again (next_retry_at, in the future). `canopyctl resume` (asked of a
# follower: redirected to the leader) checks now: while the token is still
# wrong it exits 1 saying it is still quarantined, with the same reason; once
# the token file is fixed it leaves the quarantine at once -- before
# next_retry_at -- and the change that waited is exported.
source "$(dirname "$0")/../fixtures/sync.sh"
dir=$(fixture_tmpdir)

sync_setup 5 1
sync_start_cluster 3
users_are() { [ "$(scim_count Users)" = "$1" ]; }
wait_until 60 users_are 5 || fail "initial sync: $(scim_count Users) users"
wait_until 30 idle_leader 1 2 3 || fail "no idle leader"
leader=$(idle_leader 1 2 3)
follower=$((leader % 3 + 1))
# Leadership may move while quarantined (health hand-over): ask whoever leads.
cur_leader() { local i l; for ((i = 0; i < 200; i++)); do l=$(ready_leader 1 2 3) && { echo "$l"; return 0; }; sleep 0.05; done; return 1; }

out=$("$CANOPYCTL" --server "${AGENT_CTL[$follower]}" resume 2>&1) || fail "resume when not quarantined exited non-zero: $out"
grep -q "not quarantined" <<<"$out" || fail "resume when not quarantined: $out"

# The target's token is rotated; the agents keep the old one.
scim_set_token "rotated-$RANDOM$RANDOM"
slapd_ldapmodify <<LDIF >/dev/null || fail "ldapadd"
dn: uid=tokentest,ou=people,$SLAPD_BASE
changetype: add
objectClass: inetOrgPerson
uid: tokentest
cn: Token Test
sn: Test
LDIF
shows_quarantine() { # ID: reason, since, a 401, next retry in the future
	[ "$(json_eval "$(agent_status "$1")" '(q => q && q.reason === "target_unauthorized" && Date.parse(q.since) > 0 &&
		q.last_request && q.last_request.status === 401 && q.last_request.method &&
		Date.parse(q.last_request.time) > 0 && Date.parse(q.next_retry_at) > Date.now())(j.sync.quarantine)')" = true ]
}
for i in 1 2 3; do
	wait_until 30 shows_quarantine "$i" || fail "node $i: $(json_eval "$(agent_status "$i")" 'JSON.stringify(j.sync.quarantine)')"
done
since=$(json_eval "$(agent_status "$follower")" 'j.sync.quarantine.since')
txt=$("$CANOPYCTL" --server "${AGENT_CTL[$follower]}" status) || fail "status"
grep -q "^sync .*quarantined (target_unauthorized)" <<<"$txt" || fail "status text lacks the reason: $txt"
grep -q "since $since" <<<"$txt" || fail "status text lacks since $since: $txt"
grep -qE "last request [A-Z]+ /[^ ]* -> HTTP 401 at " <<<"$txt" || fail "status text lacks the last request: $txt"
grep -q "next retry at " <<<"$txt" || fail "status text lacks the next retry: $txt"
pass "every node shows target_unauthorized since $since, the last request's 401 and a next retry in the future"

# resume while the token is still wrong: a check is made, it stays quarantined
before=$(date +%s%3N)
rc=0
"$CANOPYCTL" --server "${AGENT_CTL[$follower]}" resume >"$dir/out" 2>"$dir/err" || rc=$?
[ "$rc" = 1 ] || fail "resume while broken exited $rc: $(cat "$dir/out" "$dir/err")"
grep -q "still quarantined (target_unauthorized" "$dir/err" || fail "resume while broken: $(cat "$dir/err")"
checked() { [ "$(json_eval "$(agent_status "$(cur_leader)")" "(q => Date.parse(q.checked_at) >= $before && Date.parse(q.last_request.time) >= $before && q.last_request.status === 401)(j.sync.quarantine)")" = true ]; }
wait_until 5 checked ||
	fail "resume made no check: $(json_eval "$(agent_status "$leader")" 'JSON.stringify(j.sync.quarantine)')"
for i in 1 2 3; do
	[ "$(json_eval "$(agent_status "$i")" 'j.sync.quarantine.reason + " " + j.sync.quarantine.since')" = "target_unauthorized $since" ] ||
		fail "node $i: the quarantine changed: $(json_eval "$(agent_status "$i")" 'JSON.stringify(j.sync.quarantine)')"
done
pass "resume while the token is wrong: checked now (a 401), exit 1, still target_unauthorized since $since"

# Let the next check be a few seconds away, fix the token file, resume.
far() { [ "$(json_eval "$(agent_status "$(cur_leader)")" 'Date.parse(j.sync.quarantine.next_retry_at) - Date.now() >= 2500')" = true ]; }
wait_secs 20 far || fail "next_retry_at stays close: $(json_eval "$(agent_status "$(cur_leader)")" 'JSON.stringify(j.sync.quarantine)')"
leader=$(cur_leader) || fail "no leader"
next=$(json_eval "$(agent_status "$leader")" 'Date.parse(j.sync.quarantine.next_retry_at)')
(umask 077; cat "$SCIM_TOKEN_FILE" >"$AGENT_TOKEN_FILE")
out=$("$CANOPYCTL" --server "${AGENT_CTL[$leader]}" resume 2>&1) || fail "resume after the fix: $out"
left=$(date +%s%3N)
grep -q "sync resumed" <<<"$out" || fail "resume after the fix: $out"
[ "$left" -lt "$next" ] || fail "left the quarantine at $left, not before next_retry_at $next"
has_user() { [ "$(scim_ctl GET store | json_get "j.Users.some(u=>u.userName==='$1')")" = true ]; }
wait_until 30 has_user tokentest || fail "the waiting change was not exported: $(agent_status "$leader")"
for i in 1 2 3; do
	cleared() { [ "$(json_eval "$(agent_status "$1")" 'j.sync.quarantine === undefined')" = true ]; }
	wait_until 10 cleared "$i" || fail "node $i still shows a quarantine"
done
pass "token fixed + resume: left the quarantine $((next - left)) ms before next_retry_at, exported, cleared on every node"
