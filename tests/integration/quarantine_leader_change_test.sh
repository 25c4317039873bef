#!/usr/bin/env bash
# A change of leader does not end a quarantine whose cause remains: the new
# leader keeps the replicated reason until it has heard from its own target,
# so every node goes on showing the same reason and the same "since", and no
# node logs "sync quarantine cleared" in between.
source "$(dirname "$0")/../fixtures/sync.sh"
dir=$(fixture_tmpdir)

sync_setup 5 1
sync_start_cluster 3
users_are() { [ "$(scim_count Users)" = "$1" ]; }
wait_until 60 users_are 5 || fail "initial sync: $(scim_count Users) users"
wait_until 30 idle_leader 1 2 3 || fail "no idle leader"

scim_set_token "rotated-$RANDOM$RANDOM"
printf 'dn: uid=user00001,ou=people,%s\nchangetype: modify\nreplace: sn\nsn: Waiting\n\n' "$SLAPD_BASE" |
	slapd_ldapmodify >/dev/null || fail "ldapmodify"
quarantined() { [ "$(json_eval "$(agent_status "$1")" 'j.sync.quarantine && j.sync.quarantine.reason === "target_unauthorized" && j.sync.quarantine.since !== null')" = true ]; }
for i in 1 2 3; do wait_until 30 quarantined "$i" || fail "node $i not quarantined: $(agent_status "$i")"; done
since_of() { json_eval "$(agent_status "$1")" 'j.sync.quarantine ? j.sync.quarantine.since : null'; }
# (a leader that has just taken over shows no quarantine until its own target answered)
has_since() { [ "$(since_of 1)" != null ]; }
wait_until 10 has_since || fail "node 1 shows no since: $(agent_status 1)"
since=$(since_of 1)
# the health hand-over may be moving leadership: wait for a ready leader
leader_now() { local i l; for ((i = 0; i < 200; i++)); do l=$(ready_leader 1 2 3) && { echo "$l"; return 0; }; sleep 0.05; done; return 1; }
old=$(leader_now) || fail "no leader"
term0=$(json_eval "$(agent_status "$old")" 'j.term')

# Leadership moves (here on purpose; the health hand-over may move it too).
t0=$(date +%s%3N)
transfer() { "$CANOPYCTL" --server "${AGENT_CTL[$(leader_now)]}" cluster transfer; }
wait_until 10 transfer || fail "cluster transfer: $(transfer 2>&1)"
# progress marker: a leader of a later term checked the target itself, after the transfer
checked_by_new() {
	local l
	l=$(leader_now) || return 1
	[ "$(json_eval "$(agent_status "$l")" "j.term > $term0 && j.sync.quarantine && Date.parse(j.sync.quarantine.last_request.time) > $t0")" = true ]
}
wait_until 30 checked_by_new || fail "no new leader checked the target"
for i in 1 2 3; do
	got=$(json_eval "$(agent_status "$i")" 'j.sync.quarantine.reason + " " + j.sync.quarantine.since')
	[ "$got" = "target_unauthorized $since" ] || fail "node $i after the change of leader: $got (was since $since)"
done
for i in 1 2 3; do
	! agent_logs "$i" | grep -q 'msg="sync quarantine cleared"' || fail "node $i logged the quarantine cleared: $(agent_logs "$i" | grep quarantine)"
done
pass "leader $old (term $term0) -> $(leader_now) (a later term): still target_unauthorized since $since on every node, never cleared in between"
