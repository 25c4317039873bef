#!/usr/bin/env bash
# canopy adopts its own objects in BoxyHQ Polis after a 409, although Polis
# reads every filter as "email is" / "displayName is" and so finds nothing by
# externalId (nor a user by userName). Agent 1 provisions 20 users and 2
# groups into Polis (SQLite storage) and stops; a user changes; agent 2, a new
# cluster with an empty data dir, exports the same directory again: every
# create is answered 409 "already exists", and canopy must find each object
# (users by email, groups by displayName) carrying its own externalId, adopt
# it and update it -- no duplicate, nothing stuck in the retry set
# (docs/targets.md, "Interop matrix").
source "$(dirname "$0")/../fixtures/interop.sh"

slapd_start 20 2
interop_start jackson
agent_ports 1
sync_agent_config 1 "[\"1@${AGENT_RAFT[1]}\"]"
agent_start 1
_count_is() { [ "$(interop_count "$1")" = "$2" ]; }
wait_secs 40 _count_is Users 20 || fail "initial sync: $(interop_count Users) users (want 20)"
wait_secs 20 interop_compare || interop_compare || fail "the target differs from the source after the initial sync"
agent_stop 1

printf 'dn: uid=user00005,ou=people,%s\nchangetype: modify\nreplace: sn\nsn: Adopted\n\n' "$SLAPD_BASE" |
	slapd_ldapmodify >/dev/null || fail "ldapmodify"
agent_ports 2
sync_agent_config 2 "[\"2@${AGENT_RAFT[2]}\"]"
agent_start 2
_idle() {
	[ "$(json_eval "$(agent_status 2)" 'j.sync.state === "idle" && j.sync.cursor !== null && j.state.objects === 22')" = true ]
}
wait_secs 60 _idle || fail "agent 2 did not finish its export: $(json_eval "$(agent_status 2)" 'JSON.stringify(j.sync)')"
st=$(agent_status 2)
[ "$(json_eval "$st" 'j.sync.failed')" = 0 ] || fail "failed objects: $("$CANOPYCTL" --server "${AGENT_CTL[2]}" failed --json)"
[ "$(json_eval "$st" 'j.sync.retrying || 0')" = 0 ] || fail "objects in the retry set: $(json_eval "$st" 'JSON.stringify(j.sync)')"
[ "$(interop_user_field user00005 'u.name.familyName')" = Adopted ] ||
	fail "the change made between the agents did not reach the adopted user: $(interop_user_field user00005 'u.name.familyName')"
_count_is Users 20 && _count_is Groups 2 || fail "duplicates: $(interop_count Users) users, $(interop_count Groups) groups"
wait_secs 20 interop_compare || interop_compare || fail "the target differs from the source after the adoption"
n=$(grep -c '"result":"ok"' "$(fixture_tmpdir)/data2/provisioning.log")
pass "a new cluster adopted Polis's 20 users and 2 groups after 409s (by email / displayName), updated them, no duplicate ($n ok lines)"
