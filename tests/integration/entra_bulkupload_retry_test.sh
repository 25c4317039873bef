#!/usr/bin/env bash
# target.mode bulkupload (sync/target/entra_bulk.h), nothing lost when
# bulkUpload fails: 503s and a 429 with Retry-After re-send the whole
# request (the same users, no one left out), the 429's Retry-After is
# honoured, and every one of slapd's 120 users lands once with nothing
# failed. Then the provisioning logs are withheld (403, no AuditLog.Read.All):
# users count as accepted at the 202, a change still arrives, and the agent
# stops asking for the logs.
source "$(dirname "$0")/../fixtures/entra_bulk.sh"

slapd_start 120 0
graph_start
agent_ports 1
ctl() { "$CANOPYCTL" --server "${AGENT_CTL[1]}" "$@"; }
st_of() { json_eval "$(agent_status 1 2>/dev/null || echo '{}')" "$1"; }
# results_wait_ms far above the waits below: a change that arrives within
# them was not held for its verdict
entra_bulk_config 1 "" "" "  deprovision: disable" "  results_wait_ms: 120000"

# two 503s, then a 429 asking for 2 s, on the first bulkUpload requests
graph_fault '[{"status": 503, "count": 2, "match": "/bulkUpload"}, {"status": 429, "count": 1, "retryAfter": 2, "match": "/bulkUpload"}]'
agent_start 1
wait_secs 90 bulk_users_are 120 || fail "initial sync: $(graph_dump users | json_get 'j.length') of 120 users; sync: $(st_of 'j.sync')"
[ "$(graph_audit_count 'a.path.endsWith("/bulkUpload") && a.status === 503')" = 2 ] || fail "want 2 answers 503: $(graph_audit 'a.path.endsWith("/bulkUpload")' | head -n 5)"
[ "$(graph_audit_count 'a.path.endsWith("/bulkUpload") && a.status === 429')" = 1 ] || fail "want 1 answer 429"
# the request after the 429 waited for its Retry-After
gap=$(graph_audit 'a.path.endsWith("/bulkUpload")' | node -e '
	const ls = require("fs").readFileSync(0, "utf8").split("\n").filter(Boolean).map(JSON.parse);
	const i = ls.findIndex((a) => a.status === 429);
	console.log(i >= 0 && ls[i + 1] ? Date.parse(ls[i + 1].time) - Date.parse(ls[i].time) : -1);')
[ "$gap" -ge 1900 ] || fail "the request after the 429 came ${gap} ms later, want >= 2000 (Retry-After: 2)"
# the first request that got through carried users the refused ones had: all of them are there once
dups=$(graph_dump users | json_get 'j.length - new Set(j.map((u) => u.employeeId)).size')
[ "$dups" = 0 ] || fail "$dups users twice"
[ "$(ctl failed --json | json_get 'j.failed.length')" = 0 ] || fail "failed objects after retries: $(ctl failed --json)"
pass "503, 503, 429 (Retry-After 2 s, waited ${gap} ms): the refused requests sent again; 120 users once, nothing failed"

# --- the logs withheld: accepted at the 202 ------------------------------
graph_bulk '{"logs": false}' >/dev/null
u3=$(bulk_uuid_of user00003)
slapd_ldapmodify <<LDIF
dn: uid=user00003,ou=people,$SLAPD_BASE
changetype: modify
replace: givenName
givenName: Accepted
LDIF
wait_secs 30 bulk_field_is "$u3" 'u.givenName' Accepted || fail "modify did not arrive with the logs withheld"
graph_wait_audit 'a.path.startsWith("/v1.0/auditLogs/provisioning") && a.status === 403' 15
denied_at=$(graph_audit_count 'a.path.startsWith("/v1.0/auditLogs/provisioning") && !a.path.includes("$top=1")')
slapd_ldapmodify <<LDIF
dn: uid=user00004,ou=people,$SLAPD_BASE
changetype: modify
replace: givenName
givenName: AlsoAccepted
LDIF
u4=$(bulk_uuid_of user00004)
wait_secs 30 bulk_field_is "$u4" 'u.givenName' AlsoAccepted || fail "a second modify did not arrive"
now=$(graph_audit_count 'a.path.startsWith("/v1.0/auditLogs/provisioning") && !a.path.includes("$top=1")')
[ "$now" = "$denied_at" ] || fail "the agent asked for the logs again after a 403 ($denied_at -> $now)"
[ "$(ctl failed --json | json_get 'j.failed.length')" = 0 ] || fail "failed objects: $(ctl failed --json)"
pass "logs withheld (403): changes count as accepted at the 202 and arrive; the logs are not asked for again"
