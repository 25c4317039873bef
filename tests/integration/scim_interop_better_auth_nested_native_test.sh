#!/usr/bin/env bash
# Better Auth's SCIM plugin refuses a group as a group member; with the
# default target.nested_groups (native) canopy still gets every user
# membership in, isolates each refused nested group as a failed member and
# names the setting in its log (docs/targets.md, "Interop matrix").
# slapd: 100 users, 6 groups, group0002 > group0003 > group0004 nested.
source "$(dirname "$0")/../fixtures/interop.sh"
dir=$(fixture_tmpdir)

slapd_start 100 6 nested
interop_start better-auth
agent_ports 1
sync_agent_config 1 "[\"1@${AGENT_RAFT[1]}\"]"
agent_start 1
_failed_is() { [ "$(json_eval "$(agent_status 1)" 'j.sync.failed')" = "$1" ]; }
wait_secs 60 _failed_is 2 || fail "expected 2 failed members: $(json_eval "$(agent_status 1)" 'JSON.stringify(j.sync)')"
# The users of every group are in: the target equals the directory with the
# nested references left out.
wait_secs 20 interop_compare --nested skip || interop_compare --nested skip ||
	fail "the user memberships differ from the directory"
"$CANOPYCTL" --server "${AGENT_CTL[1]}" failed --json >"$dir/failed.json" || fail "canopyctl failed"
got=$(json_get 'j.failed.map(f => f.type + " " + f.change + " " + f.dn.split(",")[0] + " in " + f.group.split(",")[0] + " " + f.http_status).sort().join("; ")' <"$dir/failed.json")
want="member add cn=group0003 in cn=group0002 400; member add cn=group0004 in cn=group0003 400"
[ "$got" = "$want" ] || fail "failed list: $got"
[ "$(agent_logs 1 | grep 'msg="the target does not take groups as group members"' | grep -c 'target.nested_groups: flatten')" = 2 ] ||
	fail "expected one hint per group naming the setting: $(agent_logs 1 | grep -c 'does not take groups')"
pass "native against Better Auth: every user membership in, the 2 nested references failed and listed, one hint per group"
