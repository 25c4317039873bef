#!/usr/bin/env bash
# Every member's version, on every node: each agent advertises its build in
# its health reports and the leader records it in the replicated state, so
# status members[].version / .max_format are the same everywhere; once every
# member supports format 2 the leader writes it and every node applies it; a
# member added shows up too, and a removed member's record goes with it.
source "$(dirname "$0")/../fixtures/sync.sh"
CANOPYCTL=$CANOPY_BUILD_DIR/canopyctl
VERSION=$("$CANOPY_AGENT" --version)
VERSION_JSON=$(node -e 'console.log(JSON.stringify(process.argv[1]))' "$VERSION")

sync_setup 20 2
sync_start_cluster 3
wait_secs 60 idle_leader 1 2 3 || fail "no idle leader"

# all_show N ID...: every node ID... shows N members, each at this build
# with max_format 2, N version records, and format 2 supported
all_show() {
	local n=$1 i s
	shift
	for i in "$@"; do
		s=$(agent_status "$i") || return 1
		[ "$(json_eval "$s" "j.version.text === $VERSION_JSON && j.version.max_format === 2 &&
			j.members.length === $n && j.format.records === $n && j.format.supported === 2 &&
			j.members.every(m => m.version === $VERSION_JSON && m.max_format === 2)")" = true ] || return 1
	done
}
wait_secs 20 all_show 3 1 2 3 || fail "not every node shows every member's version: $(agent_status 1)"
pass "every node shows 3 members at \"$VERSION\", max_format 2"

# A change in the directory: its entries are format 2 on every node.
slapd_ldapmodify <<LDIF >/dev/null
dn: uid=user00001,ou=people,$SLAPD_BASE
changetype: modify
replace: givenName
givenName: Versioned
LDIF
format2() {
	local i
	for i in 1 2 3; do
		[ "$(json_eval "$(agent_status "$i")" 'j.format.applied_by_version["2"] > 0')" = true ] || return 1
	done
}
wait_secs 20 format2 || fail "no format 2 entry applied everywhere: $(agent_status 1)"
L=$(idle_leader 1 2 3) || L=$(ready_leader 1 2 3) || fail "no leader"
[ "$(json_eval "$(agent_status "$L")" 'j.format.writing')" = 2 ] || fail "leader $L: $(agent_status "$L")"
# status computes format.writing when asked; the leader logs it on its next
# versions tick (VERSIONS_TICK_MS, agent/versions.c): wait for the line.
logged_format2() { agent_logs "$L" | grep -Eq 'msg="(writing entries in format|entry format changed: every member supports it)" format=2'; }
wait_secs 10 logged_format2 || fail "leader $L did not log its format"
out=$("$CANOPYCTL" --server "${AGENT_CTL[$L]}" status)
grep -qxF "version   $VERSION; entry format 2 supported by every member, writing 2" <<<"$out" ||
	fail "canopyctl status: $out"
! grep -q "^member .* runs" <<<"$out" || fail "canopyctl status names a member on another build: $out"
wait_secs 20 sync_compare || fail "the change was not exported"
pass "leader $L writes format 2; every node applied format 2 entries"

# A member that reports without a version -- what the previous release
# sends, e.g. once put back on it -- counts as format 1 again, at once. The
# follower is stopped and the report sent on its behalf, so that no report
# of its own races with it; started again, it is back at format 2.
F=1; [ "$F" = "$L" ] && F=2
agent_stop "$F"
curl -sf --max-time 5 -H 'Content-Type: application/json' \
	-d "{\"id\":$F,\"source\":{\"state\":\"ok\",\"detail\":\"\",\"age_ms\":0},\"target\":{\"state\":\"ok\",\"detail\":\"\",\"age_ms\":0}}" \
	"http://${AGENT_CTL[$L]}/v1/health/report" >/dev/null || fail "versionless report refused"
back_to_1() {
	local i s
	for i in 1 2 3; do
		[ "$i" = "$F" ] && continue
		s=$(agent_status "$i") || return 1
		[ "$(json_eval "$s" "j.format.supported === 1 && j.format.records === 2 &&
			JSON.stringify(j.members.filter(m => m.id === $F).map(m => [m.version, m.max_format])) === '[[null,1]]'")" = true ] || return 1
	done
	[ "$(json_eval "$(agent_status "$L")" 'j.format.writing')" = 1 ]
}
wait_secs 10 back_to_1 || fail "member $F reported no version but still counts as format 2: $(agent_status "$L")"
pass "member $F reported without a version: format 1 again on every node"
agent_start "$F"
wait_secs 30 all_show 3 1 2 3 || fail "member $F not back at format 2: $(agent_status "$L")"
pass "member $F restarted on this build: format 2 again"

# A 4th member: recorded once it reports.
agent_ports 4
members="[\"1@${AGENT_RAFT[1]}\", \"2@${AGENT_RAFT[2]}\", \"3@${AGENT_RAFT[3]}\"]"
sync_agent_config 4 "$members"
agent_start 4
agent_wait_up 4 || fail "agent 4 does not listen"
out=$(agent_ctl "$L" cluster add "4@${AGENT_RAFT[4]}") || fail "cluster add 4: $out"
wait_secs 40 all_show 4 1 2 3 4 || fail "member 4's version not shown everywhere: $(agent_status 1)"
pass "member 4 added: every node shows its version"

# Removed: its record goes too, on every node.
out=$(agent_ctl "$L" cluster remove 4) || fail "cluster remove 4: $out"
wait_secs 20 all_show 3 1 2 3 || fail "member 4's record not removed: $(agent_status "$L")"
pass "member 4 removed: 3 version records left on every node"
