#!/usr/bin/env bash
# target.kind entra, target.mode bulkupload (sync/target/entra_bulk.h):
# API-driven inbound provisioning against the Graph fixture's bulkUpload and
# provisioning logs (tests/fixtures/graph/bulkupload.js). --check-config
# refuses groups and deletes in this mode; slapd's 200 users land through
# BulkRequests of at most 50 operations sent as application/scim+json; a
# modify, a disable and a user leaving the directory (disabled: there is no
# delete) arrive; one user the provisioning service refuses (the fixture's
# fault switch) is a failed object in `canopyctl failed --json` with
# Microsoft's errorCode and reason, and `canopyctl resync --failed` provisions
# it once the fault is cleared.
source "$(dirname "$0")/../fixtures/entra_bulk.sh"
dir=$(fixture_tmpdir)

slapd_start 200 0
graph_start
agent_ports 1
ctl() { "$CANOPYCTL" --server "${AGENT_CTL[1]}" "$@"; }
st_of() { json_eval "$(agent_status 1 2>/dev/null || echo '{}')" "$1"; }
SP=$BULK_SP
JOB=$BULK_JOB
bulk_config() { # bulk_config FILE [SOURCE_EXTRA] [SAFETY_EXTRA]
	if [ $# -ge 3 ]; then
		entra_bulk_config 1 "" "${2:-}" "$3" "  results_wait_ms: 30000"
	else
		entra_bulk_config 1 "" "${2:-}" "  deprovision: disable" "  results_wait_ms: 30000"
	fi
	[ "$1" = "$dir/agent1.yaml" ] || mv "$dir/agent1.yaml" "$1"
}

# --- --check-config: users only, no deletes ------------------------------
bulk_config "$dir/groups.yaml" "  groups: { base: \"ou=groups,$SLAPD_BASE\", filter: \"(objectClass=groupOfNames)\" }"
out=$("$CANOPY_AGENT" --config "$dir/groups.yaml" --check-config 2>&1) && fail "--check-config accepted groups in bulkupload mode"
grep -q 'target.mode bulkupload provisions users only' <<<"$out" || fail "unclear refusal of groups: $out"
bulk_config "$dir/delete.yaml" "" ""
out=$("$CANOPY_AGENT" --config "$dir/delete.yaml" --check-config 2>&1) && fail "--check-config accepted deprovision delete in bulkupload mode"
grep -q 'cannot delete users.*safety.deprovision: disable' <<<"$out" || fail "unclear refusal of deletes: $out"
bulk_config "$dir/agent1.yaml"
sed '/^  job_id: /d' "$dir/agent1.yaml" >"$dir/nojob.yaml"
out=$("$CANOPY_AGENT" --config "$dir/nojob.yaml" --check-config 2>&1) && fail "--check-config accepted bulkupload without job_id"
grep -q 'target.mode bulkupload needs target.job_id' <<<"$out" || fail "unclear refusal without job_id: $out"
sed 's/^    title: "\[title\]"/    "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User:manager": "[manager]"/' "$dir/agent1.yaml" >"$dir/manager.yaml"
out=$("$CANOPY_AGENT" --config "$dir/manager.yaml" --check-config 2>&1) && fail "--check-config accepted a manager rule in bulkupload mode"
grep -q 'managers are not written in this mode' <<<"$out" || fail "unclear refusal of the manager: $out"
"$CANOPY_AGENT" --config "$dir/agent1.yaml" --check-config >/dev/null 2>&1 ||
	fail "--check-config refused a good bulkupload config: $("$CANOPY_AGENT" --config "$dir/agent1.yaml" --check-config 2>&1)"
pass "--check-config: bulkupload refuses groups, deprovision delete, a manager rule, a missing job_id; accepts users with disable"

# --- the initial sync, with one user the provisioning service refuses -----
bad=$(bulk_uuid_of user00013)
[ -n "$bad" ] || fail "no entryUUID for user00013"
graph_bulk "{\"fail\": {\"$bad\": {\"errorCode\": \"AzureActiveDirectoryInvalidValue\", \"reason\": \"The value of department is not valid\"}}}" >/dev/null
agent_start 1
n_users() { graph_dump users | json_get 'j.length'; }
wait_secs 90 bulk_users_are 199 || fail "initial sync: $(n_users) users in Entra, want 199; sync: $(st_of 'j.sync')"
refused() { ctl failed --json | json_get "j.failed.some((f) => JSON.stringify(f).includes('AzureActiveDirectoryInvalidValue') && JSON.stringify(f).includes('user00013'))" | grep -qx true; }
wait_secs 30 refused || fail "user00013 is not a failed object with Microsoft's error: $(ctl failed --json)"
ctl failed --json | json_get 'JSON.stringify(j.failed)' | grep -q 'The value of department is not valid' ||
	fail "the failed object lacks the reason: $(ctl failed --json)"
[ "$(bulk_user_of "$(bulk_uuid_of user00005)" 'u.userPrincipalName + " " + u.givenName + " " + u.accountEnabled')" = "user00005@example.com $(ldapsearch -x -LLL -H "$SLAPD_URL" -D "$SLAPD_ADMIN_DN" -y "$SLAPD_PW_FILE" -b "uid=user00005,ou=people,$SLAPD_BASE" -s base givenName | sed -n 's/^givenName: //p') true" ] ||
	fail "user00005 as mapped: $(bulk_user_of "$(bulk_uuid_of user00005)" 'JSON.stringify(u)')"
pass "initial sync: 199 users provisioned; user00013, refused by the provisioning service, is a failed object: $(ctl failed --json | json_get 'j.failed[0].error')"

# every request: <= 50 operations, application/scim+json, 202
reqs=$(graph_audit_count 'a.path.endsWith("/bulkUpload")')
big=$(graph_audit_count 'a.path.endsWith("/bulkUpload") && !(a.operations <= 50)')
ct=$(graph_audit_count 'a.path.endsWith("/bulkUpload") && a.contentType !== "application/scim+json"')
ok=$(graph_audit_count 'a.path.endsWith("/bulkUpload") && a.status === 202')
expect_path=$(graph_audit_count "a.path === '/v1.0/servicePrincipals/$SP/synchronization/jobs/$JOB/bulkUpload'")
[ "$reqs" -ge 4 ] || fail "200 users in $reqs bulkUpload requests: want at least 4 (50 each at most)"
[ "$big$ct" = 00 ] || fail "$big requests over 50 operations, $ct not application/scim+json: $(graph_audit 'a.path.endsWith("/bulkUpload")')"
[ "$ok" = "$reqs" ] && [ "$expect_path" = "$reqs" ] || fail "bulkUpload answers / paths: $(graph_audit 'a.path.endsWith("/bulkUpload")' | head -n 3)"
[ "$(graph_audit_count 'a.path.startsWith("/v1.0/users") || a.path.startsWith("/v1.0/groups")')" = 0 ] ||
	fail "bulkupload mode used the users / groups API: $(graph_audit 'a.path.startsWith("/v1.0/users")' | head -n 3)"
pass "$reqs bulkUpload requests, all 202, each <= 50 operations as application/scim+json; no Graph users API"

# --- a modify, a disable, a user gone from the directory ------------------
slapd_ldapmodify <<LDIF
dn: uid=user00005,ou=people,$SLAPD_BASE
changetype: modify
replace: givenName
givenName: Renamed
LDIF
u5=$(bulk_uuid_of user00005)
wait_secs 30 bulk_field_is "$u5" 'u.givenName' Renamed || fail "modify did not arrive: $(bulk_user_of "$u5" 'JSON.stringify(u)')"
pass "modify arrived (givenName Renamed)"

slapd_ldapmodify <<LDIF
dn: uid=user00007,ou=people,$SLAPD_BASE
changetype: modify
add: employeeType
employeeType: disabled
LDIF
u7=$(bulk_uuid_of user00007)
wait_secs 30 bulk_field_is "$u7" 'u.accountEnabled' false || fail "disable did not arrive: $(bulk_user_of "$u7" 'JSON.stringify(u)')"
pass "disable arrived (active false -> accountEnabled false)"

u9=$(bulk_uuid_of user00009)
slapd_ldapmodify <<LDIF
dn: uid=user00009,ou=people,$SLAPD_BASE
changetype: delete
LDIF
wait_secs 30 bulk_field_is "$u9" 'u.accountEnabled' false || fail "user00009 left the directory but is not disabled: $(bulk_user_of "$u9" 'JSON.stringify(u)')"
[ "$(n_users)" = 199 ] || fail "a user left the directory: $(n_users) users in Entra, want 199 (disabled, not deleted)"
pass "a user gone from the directory is disabled, not deleted (bulkUpload has no delete)"

# --- resync --failed once the provisioning service takes the user ---------
ctl resync --failed >/dev/null 2>&1 || true
# still refused: it stays a failed object (the resync had its chance: a new log entry)
sent_again() { [ "$(graph_bulk | json_get "j.requests.filter((r) => r.externalIds.includes('$bad')).length")" -ge 2 ]; }
failures_logged() { # the provisioning service refused user00013 twice
	graph_token >/dev/null && [ "$(graph_req GET '/auditLogs/provisioning?$top=1000')" = 200 ] &&
		[ "$(graph_body | json_get "j.value.filter((e) => e.sourceIdentity.id === '$bad' && e.provisioningStatusInfo.status === 'failure').length")" -ge 2 ]
}
wait_secs 30 sent_again ||
	fail "resync --failed did not send user00013 again: $(graph_bulk | json_get 'j.requests.length')"
wait_secs 30 failures_logged || fail "no second refusal of user00013 in the provisioning logs"
wait_secs 30 refused || fail "user00013 refused again is no longer a failed object: $(ctl failed --json)"
[ "$(bulk_user_of "$bad" '"there"')" = none ] || fail "user00013 exists while refused"
graph_bulk "{\"fail\": {\"$bad\": null}}" >/dev/null
out=$(ctl resync --failed 2>&1) || fail "resync --failed: $out"
wait_secs 30 bulk_field_is "$bad" 'u.userPrincipalName' user00013@example.com ||
	fail "resync --failed did not provision user00013: $(ctl failed --json)"
gone() { ! refused; }
wait_secs 30 gone || fail "user00013 is still a failed object: $(ctl failed --json)"
[ "$(n_users)" = 200 ] || fail "$(n_users) users in Entra after the resync, want 200"
pass "resync --failed: refused again while the fault holds; provisioned once it is cleared; nothing failed"
