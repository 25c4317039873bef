#!/usr/bin/env bash
# Integration test of the Graph fixture's API-driven inbound provisioning
# (tests/fixtures/graph/bulkupload.js): bulkUpload refuses a content type
# other than application/scim+json, a body that is no BulkRequest, more than
# 50 operations and a method other than POST; answers 202 with no body and a
# Location; processes the operations later (create, then update and disable
# by externalId = employeeId); the provisioning logs report each operation in
# Graph's provisioningObjectSummary shape, filtered by jobId, with a failure
# for an operation refused by the fault switch; the logs can be withheld
# (403), the upload refused (403), and 429 past 40 requests a second.
ROOT=${CANOPY_SOURCE_DIR:-$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)}
# shellcheck source=../fixtures/graph.sh
. "$ROOT/tests/fixtures/graph.sh"

expect() { # expect ACTUAL WANTED WHAT [DETAIL]
	[ "$1" = "$2" ] || fail "$3: got '$1', want '$2'${4:+ ($4)}"
}
body() { graph_body | json_get "$1"; }
SP=5b1e0c2a-0000-4000-8000-00000000b01c
JOB="API2AAD.0c2a5b1e0000400080000000b01c.00000000-0000-0000-0000-000000000000"
op() { # op BULKID EXTID USERNAME ACTIVE
	printf '{"method":"POST","bulkId":"%s","path":"/Users","data":{"schemas":["urn:ietf:params:scim:schemas:core:2.0:User","urn:ietf:params:scim:schemas:extension:enterprise:2.0:User"],"externalId":"%s","userName":"%s","name":{"givenName":"G %s","familyName":"F"},"active":%s,"urn:ietf:params:scim:schemas:extension:enterprise:2.0:User":{"department":"D"}}}' \
		"$1" "$2" "$3" "$2" "$4"
}
bulk() { # bulk OP... -> a BulkRequest
	local IFS=,
	printf '{"schemas":["urn:ietf:params:scim:api:messages:2.0:BulkRequest"],"Operations":[%s],"failOnErrors":null}' "$*"
}
logs() { # logs FILTER_JS: the provisioning log entries of the job passing the filter, as JSON
	local code
	code=$(graph_req GET "/auditLogs/provisioning?\$filter=$(node -e 'process.stdout.write(encodeURIComponent(process.argv[1]))' "jobId eq '$JOB'")&\$top=1000")
	[ "$code" = 200 ] || fail "provisioning logs: HTTP $code: $(graph_body)"
	graph_body | json_get "j.value.filter((e) => ($1))"
}
wait_logs() { # wait_logs N: until the job has N log entries
	local deadline=$((SECONDS + 20))
	until [ "$(logs true | json_get 'j.length')" -ge "$1" ]; do
		[ "$SECONDS" -lt "$deadline" ] || fail "fewer than $1 provisioning log entries after 20 s: $(graph_bulk)"
		sleep 0.1
	done
}

graph_start
graph_token >/dev/null
pass "Graph fixture up on $GRAPH_URL"

# --- refusals ------------------------------------------------------------
code=$(graph_bulk_upload "$SP" "$JOB" "$(bulk "$(op b1 e1 a@x.test true)")" application/json)
expect "$code" 400 "bulkUpload with Content-Type application/json" "$(graph_body)"
body 'j.error.message' | grep -q "Invalid Data Format" || fail "400 without 'Invalid Data Format': $(graph_body)"
code=$(graph_bulk_upload "$SP" "$JOB" '{"Operations":[]}')
expect "$code" 400 "bulkUpload without the BulkRequest schema"
code=$(graph_bulk_upload "$SP" "$JOB" "$(bulk "$(op b1 e1 a@x.test true | sed 's/"POST"/"DELETE"/')")")
expect "$code" 400 "bulkUpload with method DELETE" "$(graph_body)"
ops=()
for i in $(seq 1 51); do ops+=("$(op "b$i" "e$i" "u$i@x.test" true)"); done
code=$(graph_bulk_upload "$SP" "$JOB" "$(bulk "${ops[@]}")")
expect "$code" 413 "bulkUpload with 51 operations" "$(graph_body)"
expect "$(graph_dump users | json_get 'j.length')" 0 "users after refused requests"
pass "bulkUpload refuses application/json, a body without the BulkRequest schema, DELETE, 51 operations"

# --- 50 operations: 202, processed later --------------------------------
graph_bulk '{"fail": {"e7": {"errorCode": "AzureActiveDirectoryInvalidValue", "reason": "department is not valid", "count": 1}}}' >/dev/null
code=$(graph_bulk_upload "$SP" "$JOB" "$(bulk "${ops[@]:0:50}")")
expect "$code" 202 "bulkUpload with 50 operations" "$(graph_body)"
expect "$(graph_body)" "" "202 body"
graph_header Location | grep -q "/auditLogs/provisioning" || fail "no Location to the provisioning logs: $(cat "$GRAPH_HEADERS_FILE")"
wait_logs 50
expect "$(graph_dump users | json_get 'j.length')" 49 "users created (one refused)"
expect "$(graph_dump users | json_get 'j.filter((u) => u.employeeId === "e3" && u.userPrincipalName === "u3@x.test" && u.accountEnabled === true && u.department === "D" && u.givenName === "G e3").length')" 1 "user e3 as mapped"
e=$(logs 'e.sourceIdentity.id === "e7"')
expect "$(json_get 'j.length + " " + j[0].provisioningStatusInfo.status + " " + j[0].statusInfo.status + " " + j[0].provisioningStatusInfo.errorInformation.errorCode' <<<"$e")" \
	"1 failure failure AzureActiveDirectoryInvalidValue" "log of the refused operation" "$e"
e=$(logs 'e.sourceIdentity.id === "e3"')
expect "$(json_get '[j[0].provisioningAction, j[0].provisioningStatusInfo.status, j[0].jobId, !!j[0].cycleId, !!j[0].changeId, j[0].targetIdentity.id.length > 0, j[0].provisioningSteps.length > 0, !!Date.parse(j[0].activityDateTime)].join(" ")' <<<"$e")" \
	"create success $JOB true true true true true" "log of a created user" "$e"
pass "50 operations: 202 without a body, a Location; processed later: 49 users, 1 failure in the logs"

# --- update, disable, the refused one again (the fault was for once) ------
code=$(graph_bulk_upload "$SP" "$JOB" "$(bulk "$(op c1 e3 u3@x.test false)" "$(op c2 e7 u7@x.test true)" "$(op c3 e4 u4-new@x.test true)")")
expect "$code" 202 "second bulkUpload"
wait_logs 53
expect "$(graph_dump users | json_get 'j.filter((u) => u.employeeId === "e3")[0].accountEnabled')" false "e3 disabled"
expect "$(graph_dump users | json_get 'j.filter((u) => u.employeeId === "e4")[0].userPrincipalName')" u4-new@x.test "e4 renamed"
expect "$(graph_dump users | json_get 'j.length')" 50 "users after the retry of e7"
expect "$(logs 'e.sourceIdentity.id === "e3"' | json_get 'j.map((e) => e.provisioningAction).join()')" create,disable "e3's actions"
expect "$(logs 'e.sourceIdentity.id === "e7"' | json_get 'j.map((e) => e.provisioningStatusInfo.status).join()')" failure,success "e7's results"
pass "by externalId: active false disables, a new userName renames, the refused user is created on retry"

# --- filters, paging ----------------------------------------------------
code=$(graph_req GET "/auditLogs/provisioning?\$filter=$(node -e 'process.stdout.write(encodeURIComponent(process.argv[1]))' "jobId eq 'other'")")
expect "$code/$(body 'j.value.length')" 200/0 "logs of another job"
code=$(graph_req GET "/auditLogs/provisioning?\$top=20")
expect "$code/$(body 'j.value.length')/$(body '!!j["@odata.nextLink"]')" 200/20/true "a first page of 20"
next=$(body 'j["@odata.nextLink"]')
code=$(graph_req GET "${next#"$GRAPH_URL"}")
expect "$code/$(body 'j.value.length')" 200/20 "the next page"
code=$(graph_req GET "/auditLogs/provisioning?\$filter=$(node -e 'process.stdout.write(encodeURIComponent(process.argv[1]))' "activityDateTime ge 2999-01-01T00:00:00Z")")
expect "$code/$(body 'j.value.length')" 200/0 "logs after 2999"
pass "the logs: \$filter on jobId and activityDateTime, \$top and @odata.nextLink"

# --- withheld logs, refused upload, the rate limit ----------------------
graph_bulk '{"logs": false}' >/dev/null
code=$(graph_req GET "/auditLogs/provisioning")
expect "$code/$(body 'j.error.code')" 403/Authorization_RequestDenied "logs without AuditLog.Read.All"
graph_bulk '{"logs": true, "denyUpload": true}' >/dev/null
code=$(graph_bulk_upload "$SP" "$JOB" "$(bulk "$(op d1 e1 u1@x.test true)")")
expect "$code/$(body 'j.error.code')" 403/Authorization_RequestDenied "upload without SynchronizationData-User.Upload"
body 'j.error.message' | grep -q SynchronizationData-User.Upload || fail "403 does not name the permission: $(graph_body)"
# 40 a second is the documented limit; a test machine cannot be relied on to
# send 41 within a second, so the bucket is made smaller for the check.
expect "$(graph_bulk | json_get 'j.rps')" 40 "the documented rate"
graph_bulk '{"denyUpload": false, "rps": 2}' >/dev/null
n429=0 ra=""
for i in $(seq 1 8); do
	code=$(graph_bulk_upload "$SP" "$JOB" "$(bulk "$(op "r$i" e1 u1@x.test true)")")
	if [ "$code" = 429 ]; then
		n429=$((n429 + 1))
		ra=$(graph_header Retry-After)
	fi
done
[ "$n429" -gt 0 ] || fail "8 bulkUploads in a burst at 2 a second: no 429"
expect "$ra" 1 "Retry-After of a 429"
expect "$(graph_audit_count 'a.path.endsWith("/bulkUpload") && a.status === 202 && a.operations === 50 && a.contentType === "application/scim+json"')" 1 "audit of the 50-operation request"
pass "logs 403 when withheld, upload 403 without the permission, 429 ($n429 of 8) past the rate (40 a second by default), audit has operations and content type"

graph_reset
expect "$(graph_bulk | json_get 'j.requests.length + " " + j.logs')" "0 0" "bulk state after reset"
pass "reset clears the bulk requests and logs"
