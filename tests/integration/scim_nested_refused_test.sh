#!/usr/bin/env bash
# A SCIM server that refuses groups as group members (400 invalidValue "One
# or more Group members are invalid" for the whole request, as a
# PostgreSQL-backed server does): 300 users, 6 groups of 25 users nested in a
# chain (chainK has chainK+1 as a member).
#   native  every user membership of every group is in the target; the 5
#           nested references are recorded as failed members (status, `canopyctl
#           failed`, provisioning log), the operator is told once per group,
#           nothing else failed
#   flatten (fresh target) each group's members are its transitive users
#           (chain1: 150); a user removed deep in the chain leaves every ancestor
#   skip    (fresh target) user members only; the nested references logged
#           once per group, also after the group changes
source "$(dirname "$0")/../fixtures/sync.sh"
dir=$(fixture_tmpdir)

sync_setup 300 0
{
	for k in 1 2 3 4 5 6; do
		printf 'dn: cn=chain%d,ou=groups,%s\nchangetype: add\nobjectClass: groupOfNames\ncn: chain%d\n' "$k" "$SLAPD_BASE" "$k"
		for ((u = (k - 1) * 25 + 1; u <= k * 25; u++)); do printf 'member: uid=user%05d,ou=people,%s\n' "$u" "$SLAPD_BASE"; done
		((k < 6)) && printf 'member: cn=chain%d,ou=groups,%s\n' $((k + 1)) "$SLAPD_BASE"
		printf '\n'
	done
} | slapd_ldapmodify >/dev/null || fail "add the chain of groups"
refuse_nested() { scim_ctl POST refuse '{"nestedGroups": true}' >/dev/null || fail "fixture refusal switch"; }

# userNames of group chainK's members in the target, sorted, space-separated
members_of() {
	scim_ctl GET store | json_get "(() => { const g = j.Groups.find(g => g.displayName === 'chain$1'); if (!g) return 'no-group';
		const byId = new Map(j.Users.map(u => [u.id, u.userName])), gs = new Set(j.Groups.map(g => g.id));
		return (g.members || []).map(m => gs.has(m.value) ? 'group:' + m.value : byId.get(m.value) || '?').sort().join(' '); })()"
}
users_range() { local a=$1 b=$2 u out=""; for ((u = a; u <= b; u++)); do out+="$(printf 'user%05d' "$u") "; done; echo "${out% }"; }
failed_is() { [ "$(json_eval "$(agent_status "$1")" 'j.sync.failed')" = "$2" ]; }
idle() { [ "$(json_eval "$(agent_status "$1")" 'j.sync.state')" = idle ]; }
refusals() { scim_ctl GET audit | json_get 'j.filter(a => a.status === 400).length'; }

start_mode() { # ID MODE
	agent_ports "$1"
	TARGET_NESTED_GROUPS=$2 sync_agent_config "$1" "[\"$1@${AGENT_RAFT[$1]}\"]"
	agent_start "$1"
	wait_until 90 idle "$1" || fail "$2: initial sync did not finish: $(json_eval "$(agent_status "$1")" 'JSON.stringify(j.sync)')"
}

# ---- native ---------------------------------------------------------------
refuse_nested
start_mode 1 native
wait_until 30 failed_is 1 5 || fail "native: expected 5 failed members: $(json_eval "$(agent_status 1)" 'JSON.stringify(j.sync)')"
for k in 1 2 3 4 5 6; do
	want=$(users_range $(((k - 1) * 25 + 1)) $((k * 25)))
	[ "$(members_of $k)" = "$want" ] || fail "native: chain$k has $(members_of $k)"
done
"$CANOPYCTL" --server "${AGENT_CTL[1]}" failed --json >"$dir/failed.json" || fail "canopyctl failed"
got=$(json_get 'j.failed.map(f => f.type + " " + f.change + " " + f.dn.split(",")[0] + " in " + f.group.split(",")[0] + " " + f.http_status).sort().join("; ")' <"$dir/failed.json")
want="member add cn=chain2 in cn=chain1 400; member add cn=chain3 in cn=chain2 400; member add cn=chain4 in cn=chain3 400; member add cn=chain5 in cn=chain4 400; member add cn=chain6 in cn=chain5 400"
[ "$got" = "$want" ] || fail "native: failed list: $got"
[ "$(json_get 'j.failed.length + j.retrying.length' <"$dir/failed.json")" = 5 ] || fail "native: something else failed: $(cat "$dir/failed.json")"
[ "$(grep -c '"action":"member-add".*"result":"error"' "$dir/data1/provisioning.log")" = 5 ] ||
	fail "native: expected 5 refused member-add lines in the provisioning log: $(grep member-add "$dir/data1/provisioning.log")"
[ "$(agent_logs 1 | grep -c 'msg="the target does not take groups as group members"')" = 5 ] ||
	fail "native: expected one hint per group: $(agent_logs 1 | grep -c 'does not take groups')"
agent_logs 1 | grep 'does not take groups' | grep -q 'target.nested_groups: flatten' || fail "native: the hint does not name the setting"
pass "native: every user membership present (6 x 25), the 5 nested references failed and listed, one hint per group"
agent_stop 1

# ---- flatten ----------------------------------------------------------------
scim_reset
refuse_nested
start_mode 2 flatten
for k in 1 2 3 4 5 6; do
	want=$(users_range $(((k - 1) * 25 + 1)) 150)
	[ "$(members_of $k)" = "$want" ] || fail "flatten: chain$k has $(members_of $k | wc -w) members: $(members_of $k | cut -c1-200)"
done
failed_is 2 0 || fail "flatten: failed: $(json_eval "$(agent_status 2)" 'j.sync.failed')"
[ "$(refusals)" = 0 ] || fail "flatten: the target refused $(refusals) requests"
pass "flatten: each group has its transitive users (chain1: $(members_of 1 | wc -w)), nothing refused"

printf 'dn: cn=chain6,ou=groups,%s\nchangetype: modify\ndelete: member\nmember: uid=user00140,ou=people,%s\n\n' "$SLAPD_BASE" "$SLAPD_BASE" |
	slapd_ldapmodify >/dev/null || fail "remove user00140 from chain6"
gone_everywhere() {
	local k
	for k in 1 2 3 4 5 6; do
		[ "$(members_of $k)" = "$(users_range $(((k - 1) * 25 + 1)) 150 | sed 's/ user00140//')" ] || return 1
	done
}
wait_until 30 gone_everywhere || fail "flatten: user00140 still in: $(for k in 1 2 3 4 5 6; do members_of $k | grep -q user00140 && echo chain$k; done)"
wait_until 30 idle 2 || fail "flatten: not idle"
failed_is 2 0 || fail "flatten: something failed after the removal"
pass "flatten: a user removed from chain6 left all 6 groups (chain1: $(members_of 1 | wc -w))"
agent_stop 2
printf 'dn: cn=chain6,ou=groups,%s\nchangetype: modify\nadd: member\nmember: uid=user00140,ou=people,%s\n\n' "$SLAPD_BASE" "$SLAPD_BASE" |
	slapd_ldapmodify >/dev/null || fail "put user00140 back into chain6"

# ---- skip -------------------------------------------------------------------
scim_reset
refuse_nested
start_mode 3 skip
for k in 1 2 3 4 5 6; do
	[ "$(members_of $k)" = "$(users_range $(((k - 1) * 25 + 1)) $((k * 25)))" ] || fail "skip: chain$k has $(members_of $k)"
done
failed_is 3 0 || fail "skip: failed: $(json_eval "$(agent_status 3)" 'j.sync.failed')"
[ "$(refusals)" = 0 ] || fail "skip: the target refused $(refusals) requests"
told() { agent_logs 3 | grep 'msg="nested groups left out"' | grep -c "group cn=chain$1,"; }
for k in 1 2 3 4 5; do [ "$(told $k)" = 1 ] || fail "skip: chain$k's nested reference logged $(told $k) times"; done
[ "$(told 6)" = 0 ] || fail "skip: chain6 has no nested group but was logged"
printf 'dn: cn=chain2,ou=groups,%s\nchangetype: modify\ndelete: member\nmember: uid=user00030,ou=people,%s\n\n' "$SLAPD_BASE" "$SLAPD_BASE" |
	slapd_ldapmodify >/dev/null || fail "remove user00030 from chain2"
left() { [ "$(members_of 2)" = "$(users_range 26 50 | sed 's/user00030 //')" ]; }
wait_until 30 left || fail "skip: chain2 after the change: $(members_of 2)"
wait_until 30 idle 3 || fail "skip: not idle"
[ "$(told 2)" = 1 ] || fail "skip: chain2's nested reference logged $(told 2) times after a change"
pass "skip: user members only, each nested reference logged once per group"
