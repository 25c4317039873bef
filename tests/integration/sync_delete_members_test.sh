#!/usr/bin/env bash
# Group member removals count against delete protection like deletes (same
# threshold, same window). Threshold 10; 25 members removed from one group at
# once: exactly 10 are removed in the target, 15 are held (staged), the sync
# reads quarantined (delete_threshold), `deletes list` names each held member
# and its group; approve removes them, and the target equals the source.
source "$(dirname "$0")/../fixtures/sync.sh"
dir=$(fixture_tmpdir)

DELETE_THRESHOLD=10
sync_setup 300 3
agent_ports 1
sync_agent_config 1 "[\"1@${AGENT_RAFT[1]}\"]"
agent_start 1
synced() { [ "$(json_eval "$(agent_status 1)" 'j.sync.state')" = idle ]; }
wait_until 60 synced || fail "initial sync did not finish"
wait_until 30 sync_compare || sync_compare || fail "initial sync: target differs"

members_in_target() { scim_ctl GET store | json_get "(j.Groups.find(g => g.displayName === 'group0002').members || []).length"; }
before=$(members_in_target)
{
	printf 'dn: cn=group0002,ou=groups,%s\nchangetype: modify\ndelete: member\n' "$SLAPD_BASE"
	for i in $(seq 1 2 49); do printf 'member: uid=user%05d,ou=people,%s\n' "$i" "$SLAPD_BASE"; done
	printf '\n'
} | slapd_ldapmodify >/dev/null || fail "remove 25 members"
staged() { [ "$(json_eval "$(agent_status 1)" 'j.sync.pending_deletes')" = "$1" ]; }
wait_until 30 staged 15 || fail "expected 15 staged member removals: $(json_eval "$(agent_status 1)" 'JSON.stringify(j.sync)')"
[ "$(members_in_target)" = $((before - 10)) ] || fail "expected exactly 10 removals in the target: $before -> $(members_in_target)"
st=$(agent_status 1)
[ "$(json_eval "$st" 'j.sync.state + " " + (j.sync.quarantine||{}).reason')" = "quarantined delete_threshold" ] ||
	fail "not quarantined (delete_threshold): $(json_eval "$st" 'JSON.stringify(j.sync)')"
"$CANOPYCTL" --server "${AGENT_CTL[1]}" deletes list --json >"$dir/list.json" || fail "deletes list"
[ "$(json_get 'j.deletes.filter(d => d.type === "member" && /^cn=group0002,/.test(d.group) && /^uid=user000[0-4]\d,/.test(d.dn)).length' <"$dir/list.json")" = 15 ] ||
	fail "deletes list does not name the 15 held members: $(json_get 'j.deletes.slice(0, 2)' <"$dir/list.json")"
agent_logs 1 | grep >/dev/null 'msg="delete threshold reached: group member removals staged' || fail "no log line: $(agent_logs 1 | grep -i threshold)"
pass "25 member removals, threshold 10: 10 removed, 15 held, listed, quarantined, logged"

out=$("$CANOPYCTL" --server "${AGENT_CTL[1]}" deletes approve) || fail "approve: $out"
wait_until 30 staged 0 || fail "still staged after approve"
gone() { [ "$(members_in_target)" = $((before - 25)) ]; }
wait_until 30 gone || fail "after approve: $(members_in_target) members, expected $((before - 25))"
wait_until 30 synced || fail "not idle after approval: $(json_eval "$(agent_status 1)" 'JSON.stringify(j.sync)')"
wait_until 30 sync_compare || sync_compare || fail "target differs from source after approval"
pass "approve: the held member removals ran; target equals source"
