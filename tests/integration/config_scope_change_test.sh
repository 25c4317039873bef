#!/usr/bin/env bash
# A configuration change of the scope is a resync with delete protection:
# narrowing source.users.filter so that 30 of 100 users leave the scope
# (safety.delete_threshold 10, on_threshold stop) stages their deletes and
# executes none -- status shows them pending, quarantined (delete_threshold)
# -- until `deletes approve`; widening it again (`config rollback 1`)
# creates them again, and the audit log has no duplicate create (no object
# created twice without a delete in between, no 409).
source "$(dirname "$0")/../fixtures/sync.sh"
dir=$(fixture_tmpdir)

DELETE_THRESHOLD=10
ON_THRESHOLD=stop
sync_setup 100 0
agent_ports 1
sync_agent_config 1 "[\"1@${AGENT_RAFT[1]}\"]"
agent_start 1
users_are() { [ "$(scim_count Users)" = "$1" ]; }
wait_until 60 users_are 100 || fail "initial sync: $(scim_count Users) users"
status_is() { [ "$(json_eval "$(agent_status 1)" "$1")" = "$2" ]; }
wait_until 30 status_is 'j.sync.state + " " + j.config.version' "idle 1" || fail "not idle with version 1: $(agent_status 1)"
ctl() { "$CANOPYCTL" --server "${AGENT_CTL[1]}" "$@"; }

# user00070 .. user00099 leave the scope
narrow='(\&(objectClass=inetOrgPerson)(!(|(uid=user0007*)(uid=user0008*)(uid=user0009*))))'
sed "s#filter: \"(objectClass=inetOrgPerson)\"#filter: \"$narrow\"#" "$dir/agent1.yaml" >"$dir/narrow.yaml"
grep -q 'uid=user0009' "$dir/narrow.yaml" || fail "test setup: the filter was not rewritten"
[ "$(slapd_count '(&(objectClass=inetOrgPerson)(!(|(uid=user0007*)(uid=user0008*)(uid=user0009*))))')" = 70 ] ||
	fail "test setup: the narrow filter does not select 70 users"
deletes_before=$(scim_ctl GET audit | json_get 'j.filter(a=>a.method==="DELETE").length')
out=$(ctl config apply "$dir/narrow.yaml") || fail "apply: $out"
grep -q '^~ source.users.filter: ' <<<"$out" || fail "apply does not show the filter change: $out"
grep -q 'read again in full' <<<"$out" || fail "apply does not say it resyncs: $out"
# The positive marker: the refresh ran and delete protection staged all 30
# (with on_threshold: stop it stages every delete of the batch or none).
wait_until 60 status_is 'j.sync.pending_deletes' 30 || fail "deletes not staged: $(agent_status 1)"
status_is 'j.sync.state + " " + (j.sync.quarantine||{}).reason' "quarantined delete_threshold" ||
	fail "staged deletes must read quarantined: $(json_eval "$(agent_status 1)" 'JSON.stringify(j.sync)')"
users_are 100 || fail "users were deleted before approval: $(scim_count Users)"
[ "$(scim_ctl GET audit | json_get 'j.filter(a=>a.method==="DELETE").length')" = "$deletes_before" ] ||
	fail "DELETE requests were sent before approval"
ctl deletes list --json >"$dir/deletes.json" || fail "deletes list"
json_get 'j.deletes.length===30 && j.deletes.every(d=>/^uid=user000[789]\d,/.test(d.dn))' <"$dir/deletes.json" | grep -q true ||
	fail "the staged deletes are not the 30 users out of scope: $(json_get 'j.deletes.map(d=>d.dn).join(" ")' <"$dir/deletes.json")"
pass "narrowed scope: 30 deletes staged, none executed, quarantined (delete_threshold)"

out=$(ctl deletes approve) || fail "approve: $out"
wait_until 60 users_are 70 || fail "after approve: $(scim_count Users) users"
wait_until 30 status_is 'j.sync.pending_deletes + " " + j.sync.state' "0 idle" || fail "not idle after approve: $(agent_status 1)"
scim_ctl GET store | json_get 'j.Users.every(u=>!/^user000[789]\d$/.test(u.userName))' | grep -q true ||
	fail "a user out of scope is still in the target"
pass "approve: the 30 users out of scope deleted"

out=$(ctl config rollback 1) || fail "rollback: $out"
grep -q '^~ source.users.filter: ' <<<"$out" || fail "rollback does not show the filter change: $out"
wait_until 60 users_are 100 || fail "widened scope: $(scim_count Users) users"
wait_until 30 status_is 'j.sync.state + " " + j.config.version' "idle 3" || fail "not idle with version 3: $(agent_status 1)"
dups=$(scim_ctl GET audit | json_get '(()=>{const c={};for(const a of j){if(a.status>=300)continue;
	if(a.method==="POST")c[a.externalId]=(c[a.externalId]||0)+1;
	if(a.method==="DELETE")c[a.externalId]=(c[a.externalId]||0)-1;}
	return Object.entries(c).filter(([k,v])=>v!==1).map(([k,v])=>k+":"+v).join(" ")})()')
[ -z "$dups" ] || fail "duplicate creates (externalId:creates-deletes): $dups"
[ "$(scim_ctl GET audit | json_get 'j.filter(a=>a.status===409).length')" = 0 ] || fail "the target answered 409"
[ "$(scim_ctl GET store | json_get 'new Set(j.Users.map(u=>u.userName)).size')" = 100 ] || fail "userNames are not unique"
wait_until 30 sync_compare || sync_compare || fail "target differs from source after widening"
pass "widened scope: the 30 users created again, no duplicate create, target equals source"
