#!/usr/bin/env bash
# Integration test of the SCIM 2.0 server fixture (tests/fixtures/scim.sh):
# the real SCIMMY-based server must behave as the other integration tests
# expect (filters by index, uniqueness, PATCH, Bulk, bearer token re-read,
# audit with X-Canopy-Node/Term, fault switches) and must never outlive its
# test, even when the test shell is SIGKILLed.
# shellcheck disable=SC2034 # SCIM_HEADERS is read by scim_req (scim.sh)
ROOT=${CANOPY_SOURCE_DIR:-$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)}
# shellcheck source=../fixtures/scim.sh
. "$ROOT/tests/fixtures/scim.sh"

expect() { # expect ACTUAL WANTED WHAT
	[ "$1" = "$2" ] || fail "$3: got '$1', want '$2'${4:+ ($4)}"
}
body() { scim_body | json_get "$1"; }
enc() { node -e 'process.stdout.write(encodeURIComponent(process.argv[1]))' -- "$1"; }
U=urn:ietf:params:scim:schemas:core:2.0:User
G=urn:ietf:params:scim:schemas:core:2.0:Group
E=urn:ietf:params:scim:schemas:extension:enterprise:2.0:User
user_json() { # userName externalId
	printf '{"schemas":["%s","%s"],"userName":"%s","externalId":"%s","name":{"givenName":"%s"},"emails":[{"value":"%s@example.test","type":"work","primary":true}],"%s":{"employeeNumber":"42","department":"eng"}}' \
		"$U" "$E" "$1" "$2" "$1" "$1" "$E"
}

scim_start "first-token"
if [ -z "$SCIM_PID" ] || ! kill -0 "$SCIM_PID"; then fail "server not running"; fi
[ "$(stat -c %a "$SCIM_TOKEN_FILE")" = 600 ] || fail "token file mode is not 0600"
pass "server up on $SCIM_URL (pid $SCIM_PID)"

# --- ServiceProviderConfig -------------------------------------------------
code=$(scim_req GET /ServiceProviderConfig)
expect "$code" 200 "GET /ServiceProviderConfig"
expect "$(body 'j.bulk.supported && j.patch.supported && j.filter.supported')" true "bulk+patch+filter supported" "$(scim_body)"
expect "$(body 'j.bulk.maxOperations >= 100')" true "bulk.maxOperations"
expect "$(body 'j.authenticationSchemes[0].type')" oauthbearertoken "auth scheme"
code=$(scim_req GET /ResourceTypes)
expect "$(body 'j.Resources.map(r => r.name + ":" + (r.schemaExtensions||[]).map(e => e.schema).join()).sort().join(" ")')" \
	"Group: User:$E" "resource types"
pass "ServiceProviderConfig: bulk, patch, filter; Users (enterprise ext) and Groups"

# --- create and look up ----------------------------------------------------
SCIM_HEADERS=(-H "X-Canopy-Node: node-a" -H "X-Canopy-Term: 7")
code=$(scim_req POST /Users "$(user_json alice ext-alice)")
expect "$code" 201 "POST alice" "$(scim_body)"
ALICE=$(body 'j.id')
expect "$(body 'j.userName + " " + j.externalId + " " + j["'"$E"'"].employeeNumber')" "alice ext-alice 42" "alice as created"
expect "$(body 'j.meta.location.endsWith("/scim/v2/Users/" + j.id)')" true "meta.location"
SCIM_HEADERS=()
code=$(scim_req POST /Users "$(user_json bob ext-bob)")
expect "$code" 201 "POST bob" "$(scim_body)"
BOB=$(body 'j.id')

before=$(scim_ctl GET stats)
code=$(scim_req GET "/Users?filter=externalId%20eq%20%22ext-alice%22")
expect "$code" 200 "filter externalId"
expect "$(body 'j.totalResults + " " + j.Resources[0].id')" "1 $ALICE" "externalId eq lookup"
code=$(scim_req GET "/Users?filter=userName%20eq%20%22ALICE%22")
expect "$(body 'j.totalResults + " " + j.Resources[0].id')" "1 $ALICE" "userName eq lookup (caseExact=false)"
code=$(scim_req GET "/Users?filter=externalId%20eq%20%22EXT-ALICE%22")
expect "$(body 'j.totalResults')" 0 "externalId is caseExact"
after=$(scim_ctl GET stats)
expect "$(echo "[$before,$after]" | json_get '(j[1].indexedLookups - j[0].indexedLookups) + " " + (j[1].scans - j[0].scans)')" \
	"3 0" "eq lookups answered from the index, no scan"
code=$(scim_req GET "/Users?filter=emails%5Btype%20eq%20%22work%22%5D&count=1&sortBy=userName")
expect "$code" 200 "scan filter + paging"
expect "$(body 'j.totalResults + " " + j.itemsPerPage + " " + j.Resources[0].userName')" "2 1 alice" "scan filter, count=1"
# a userName with a quote and a backslash (SCIMMY's own filter parser rejects \")
code=$(scim_req POST /Users "{\"schemas\":[\"$U\"],\"userName\":\"o\\\"brien\\\\x\"}")
expect "$code" 201 "POST o\"brien\\x" "$(scim_body)"
OBRIEN=$(body 'j.id')
expect "$(body 'j.userName')" 'o"brien\x' "userName with quote and backslash"
code=$(scim_req GET "/Users?filter=$(enc 'userName eq "O\"BRIEN\\x"')")
expect "$code" 200 "filter with escapes" "$(scim_body)"
expect "$(body 'j.totalResults + " " + j.Resources[0].id')" "1 $OBRIEN" "userName eq with JSON escapes"
scim_req DELETE "/Users/$OBRIEN" >/dev/null
pass "create user with externalId; indexed externalId/userName eq lookups (escapes too); paging"

# --- uniqueness --------------------------------------------------------------
code=$(scim_req POST /Users "$(user_json Alice ext-other)")
expect "$code" 409 "duplicate userName (other case)" "$(scim_body)"
expect "$(body 'j.scimType + " " + j.status')" "uniqueness 409" "duplicate userName error body"
code=$(scim_req POST /Users "$(user_json carol ext-alice)")
expect "$code" 409 "duplicate externalId" "$(scim_body)"
expect "$(body 'j.scimType')" uniqueness "duplicate externalId scimType"
code=$(scim_req PUT "/Users/$BOB" "$(user_json ALICE ext-bob)")
expect "$code" 409 "PUT to a taken userName" "$(scim_body)"
code=$(scim_req PATCH "/Users/$BOB" '{"schemas":["urn:ietf:params:scim:api:messages:2.0:PatchOp"],"Operations":[{"op":"replace","path":"externalId","value":"ext-alice"}]}')
expect "$code" 409 "PATCH to a taken externalId" "$(scim_body)"
code=$(scim_req POST /Groups "{\"schemas\":[\"$G\"],\"displayName\":\"x\",\"externalId\":\"ext-alice\"}")
expect "$code" 201 "externalId is unique per resource type only" "$(scim_body)"
scim_req DELETE "/Groups/$(body j.id)" >/dev/null
pass "409 uniqueness on userName (case-insensitive) and externalId, POST/PUT/PATCH"

# --- PATCH user ----------------------------------------------------------------
code=$(scim_req PATCH "/Users/$ALICE" '{"schemas":["urn:ietf:params:scim:api:messages:2.0:PatchOp"],"Operations":[{"op":"replace","path":"displayName","value":"Alice A."},{"op":"replace","path":"active","value":false},{"op":"replace","path":"'"$E"':department","value":"ops"}]}')
expect "$code" 200 "PATCH alice" "$(scim_body)"
expect "$(body 'j.displayName + " " + j.active + " " + j["'"$E"'"].department + " " + j.userName')" "Alice A. false ops alice" "patched alice"
code=$(scim_req GET "/Users/$ALICE")
expect "$(body 'j.displayName + " " + j.active')" "Alice A. false" "PATCH persisted"
pass "PATCH user (core and enterprise attributes)"

# --- groups ------------------------------------------------------------------
code=$(scim_req POST /Groups "{\"schemas\":[\"$G\"],\"displayName\":\"Staff\",\"externalId\":\"ext-staff\"}")
expect "$code" 201 "POST group" "$(scim_body)"
STAFF=$(body 'j.id')
code=$(scim_req PATCH "/Groups/$STAFF" '{"schemas":["urn:ietf:params:scim:api:messages:2.0:PatchOp"],"Operations":[{"op":"add","path":"members","value":[{"value":"'"$ALICE"'"},{"value":"'"$BOB"'"}]}]}')
expect "$code" 200 "PATCH add members" "$(scim_body)"
expect "$(body 'j.members.map(m => m.value).sort().join()')" "$(printf '%s\n' "$ALICE" "$BOB" | sort | paste -sd,)" "members after add"
code=$(scim_req PATCH "/Groups/$STAFF" '{"schemas":["urn:ietf:params:scim:api:messages:2.0:PatchOp"],"Operations":[{"op":"remove","path":"members[value eq \"'"$BOB"'\"]"}]}')
[ "$code" = 200 ] || [ "$code" = 204 ] || fail "PATCH remove member: $code $(scim_body)"
code=$(scim_req GET "/Groups/$STAFF")
expect "$(body 'j.members.map(m => m.value).join()')" "$ALICE" "members after remove"
code=$(scim_req GET "/Groups?filter=displayName%20eq%20%22staff%22")
expect "$(body 'j.totalResults + " " + j.Resources[0].id')" "1 $STAFF" "group displayName eq lookup"
pass "group create, PATCH add/remove member, displayName lookup"

# --- Bulk ----------------------------------------------------------------------
SCIM_HEADERS=(-H "X-Canopy-Node: node-b" -H "X-Canopy-Term: 8")
code=$(scim_req POST /Bulk '{"schemas":["urn:ietf:params:scim:api:messages:2.0:BulkRequest"],"Operations":[
 {"method":"POST","path":"/Users","bulkId":"c","data":'"$(user_json carol ext-carol)"'},
 {"method":"POST","path":"/Users","bulkId":"d","data":'"$(user_json dave ext-dave)"'},
 {"method":"PATCH","path":"/Groups/'"$STAFF"'","data":{"schemas":["urn:ietf:params:scim:api:messages:2.0:PatchOp"],"Operations":[{"op":"add","path":"members","value":[{"value":"bulkId:d"}]}]}},
 {"method":"POST","path":"/Users","bulkId":"e","data":'"$(user_json erin ext-alice)"'}]}')
SCIM_HEADERS=()
expect "$code" 200 "POST /Bulk" "$(scim_body)"
expect "$(body 'j.schemas[0]')" urn:ietf:params:scim:api:messages:2.0:BulkResponse "bulk response schema"
expect "$(body 'j.Operations.map(o => o.method + ":" + (o.bulkId||"") + ":" + o.status).join(" ")')" \
	"POST:c:201 POST:d:201 PATCH::200 POST:e:409" "bulk statuses"
DAVE=$(body 'j.Operations[1].location.split("/").pop()')
code=$(scim_req GET "/Users?filter=userName%20eq%20%22carol%22")
expect "$(body 'j.totalResults')" 1 "carol created by bulk"
code=$(scim_req GET "/Groups/$STAFF")
expect "$(body 'j.members.map(m => m.value).sort().join()')" "$(printf '%s\n' "$ALICE" "$DAVE" | sort | paste -sd,)" "bulkId:d resolved in group PATCH"
code=$(scim_req POST /Bulk '{"schemas":["urn:ietf:params:scim:api:messages:2.0:BulkRequest"],"Operations":[
 {"method":"POST","path":"/Groups","bulkId":"g1","data":{"displayName":"Circ1","externalId":"ext-c1","members":[{"value":"bulkId:g2","type":"Group"}]}},
 {"method":"POST","path":"/Groups","bulkId":"g2","data":{"displayName":"Circ2","members":[{"value":"bulkId:g1","type":"Group"}]}}]}')
expect "$code" 200 "circular bulk" "$(scim_body)"
expect "$(body 'j.Operations.map(o => o.status).join()')" "201,201" "circular bulk statuses" "$(scim_body)"
C1=$(body 'j.Operations[0].location.split("/").pop()')
C2=$(body 'j.Operations[1].location.split("/").pop()')
code=$(scim_req GET "/Groups?filter=displayName%20sw%20%22Circ%22")
expect "$(body 'j.Resources.map(g => g.displayName + "->" + g.members.map(m => m.value)).sort().join(" ")')" \
	"Circ1->$C2 Circ2->$C1" "circular bulkId references resolved without duplicates"
scim_req DELETE "/Groups/$C1" >/dev/null
scim_req DELETE "/Groups/$C2" >/dev/null
pass "Bulk: two creates, bulkId reference, per-operation 409, circular references"

# --- DELETE ----------------------------------------------------------------------
code=$(scim_req DELETE "/Users/$BOB")
expect "$code" 204 "DELETE bob"
code=$(scim_req GET "/Users/$BOB")
expect "$code" 404 "GET deleted bob"
code=$(scim_req DELETE "/Users/$BOB")
expect "$code" 404 "DELETE bob again"
code=$(scim_req DELETE "/Users/$DAVE")
code=$(scim_req GET "/Groups/$STAFF")
expect "$(body '(j.members||[]).map(m => m.value).join()')" "$ALICE" "deleted user left the group"
pass "DELETE 204 then 404; deleted user leaves groups"

# --- bearer token ------------------------------------------------------------------
code=$(SCIM_TOKEN=wrong scim_req GET /Users)
expect "$code" 401 "wrong token"
expect "$(body 'j.schemas[0] + " " + j.status')" "urn:ietf:params:scim:api:messages:2.0:Error 401" "401 body"
code=$(curl -s -o /dev/null -w '%{http_code}' "$SCIM_URL/Users")
expect "$code" 401 "no token"
code=$(SCIM_TOKEN=wrong scim_req POST /Users "$(user_json mallory ext-mallory)")
expect "$code" 401 "write with wrong token"
scim_set_token "second-token"
code=$(SCIM_TOKEN=first-token scim_req GET /Users)
expect "$code" 401 "old token after the file was rewritten"
code=$(scim_req GET /Users)
expect "$code" 200 "new token from the rewritten file"
code=$(scim_req GET "/Users?filter=userName%20eq%20%22mallory%22")
expect "$(body 'j.totalResults')" 0 "unauthorized write did nothing"
pass "401 without the right token; rewriting the token file takes effect at once"

# --- audit ---------------------------------------------------------------------------
audit=$(scim_ctl GET audit)
a=$(echo "$audit" | json_get 'j.find(e => e.method === "POST" && e.userName === "alice" && e.status === 201)')
expect "$(echo "$a" | json_get '[e => e.node, e => typeof e.term + e.term, e => e.resourceType, e => e.id, e => e.externalId, e => e.path].map(f => f(j)).join(" ")')" \
	"node-a number7 User $ALICE ext-alice /Users" "audit of alice's POST"
expect "$(echo "$audit" | json_get 'j.filter(e => e.userName === "bob" && e.status === 201)[0].node')" null "audit without headers: node null"
expect "$(echo "$audit" | json_get 'j.filter(e => e.bulk && e.node).map(e => e.method + ":" + (e.userName ?? e.displayName ?? e.id) + ":" + e.status + ":" + e.node + ":" + e.term).join(" ")')" \
	"POST:carol:201:node-b:8 POST:dave:201:node-b:8 PATCH:Staff:200:node-b:8 POST:erin:409:node-b:8" "one audit entry per bulk operation"
expect "$(echo "$audit" | json_get 'j.filter(e => e.method === "DELETE" && e.id === "'"$BOB"'").map(e => e.status + ":" + e.userName).join(" ")')" \
	"204:bob 404:null" "audit of DELETEs"
expect "$(echo "$audit" | json_get 'j.filter(e => e.userName === "mallory").map(e => e.status).join()')" 401 "rejected write audited with its status"
expect "$(echo "$audit" | json_get 'j.some(e => e.method === "GET")')" false "reads are not audited"
expect "$(wc -l <"$SCIM_AUDIT")" "$(echo "$audit" | json_get 'j.length')" "audit file has one line per entry"
expect "$(tail -n 1 "$SCIM_AUDIT" | json_get 'j.seq')" "$(echo "$audit" | json_get 'j[j.length-1].seq')" "audit file matches"
pass "audit: every write, one per bulk op, X-Canopy-Node/Term recorded"

# --- store view ----------------------------------------------------------------------
expect "$(scim_ctl GET store | json_get 'j.Users.map(u => u.userName).sort().join() + " " + j.Groups.map(g => g.displayName).join()')" \
	"alice,carol Staff" "/_test/store"
pass "/_test/store"

# --- faults --------------------------------------------------------------------------
scim_fault '{"status":503,"count":2}'
c1=$(scim_req GET /Users); c2=$(scim_req GET /Users); c3=$(scim_req GET /Users)
expect "$c1 $c2 $c3" "503 503 200" "503 count 2"
scim_fault '{"status":429,"retryAfter":2,"count":1}'
hdrs=$(curl -s -D - -o /dev/null -H "Authorization: Bearer $SCIM_TOKEN" "$SCIM_URL/Users")
echo "$hdrs" | head -n 1 | grep -q ' 429' || fail "429 fault: $hdrs"
echo "$hdrs" | tr -d '\r' | grep -qix 'retry-after: 2' || fail "429 without Retry-After: $hdrs"
expect "$(scim_req GET /Users)" 200 "after the 429"
scim_fault '{"delayMs":500,"count":1}'
t0=$(date +%s%N); code=$(scim_req GET /Users); t1=$(date +%s%N)
expect "$code" 200 "slow answer"
ms=$(( (t1 - t0) / 1000000 ))
[ "$ms" -ge 500 ] || fail "delayMs 500 answered in ${ms} ms"
t0=$(date +%s%N); scim_req GET /Users >/dev/null; t1=$(date +%s%N)
[ $(( (t1 - t0) / 1000000 )) -lt 400 ] || fail "delay did not stop after count"
scim_fault '{"status":500,"count":-1,"methods":["POST"]}'
expect "$(scim_req GET /Users) $(scim_req POST /Users "$(user_json x1 ext-x1)") $(scim_req POST /Users "$(user_json x1 ext-x1)")" \
	"200 500 500" "count -1 with a method filter"
scim_fault '{}'
expect "$(scim_req POST /Users "$(user_json x1 ext-x1)")" 201 "faults cleared"
expect "$(scim_ctl GET stats | json_get 'j.faulted + " " + (j.byMethod.GET > 10)')" "6 true" "stats"
pass "faults: 503 x2 then success; 429 + Retry-After; delay ${ms} ms; cleared"

# --- reset ---------------------------------------------------------------------------
scim_reset
expect "$(scim_ctl GET store | json_get 'j.Users.length + j.Groups.length')" 0 "store after reset"
expect "$(scim_ctl GET audit | json_get 'j.length')" 0 "audit after reset"
expect "$(scim_req POST /Users "$(user_json alice ext-alice)")" 201 "alice again after reset"
pass "reset"

# --- stop ------------------------------------------------------------------------------
pid=$SCIM_PID
scim_stop
kill -0 "$pid" 2>/dev/null && fail "server pid $pid still alive after scim_stop"
pass "scim_stop: pid $pid gone"

# --- the server dies with a SIGKILLed test shell -----------------------------------------
fixture_tmpdir >/dev/null # in this shell, so that $(fixture_tmpdir) is the same dir
pidfile="$(fixture_tmpdir)/orphan.pid"
(TMPDIR="$(fixture_tmpdir)" bash -c '
	. "$1/tests/fixtures/scim.sh"
	scim_start >/dev/null 2>&1
	echo "$SCIM_PID" >"$2"
	kill -9 $$
' _ "$ROOT" "$pidfile"
	true # keeps this subshell (not the test shell) as the one that reports the kill
) 2>/dev/null
orphan=$(cat "$pidfile" 2>/dev/null) || true
[ -n "$orphan" ] || fail "inner shell did not start a server"
for ((i = 0; i < 40; i++)); do
	kill -0 "$orphan" 2>/dev/null || break
	sleep 0.05
done
if kill -0 "$orphan" 2>/dev/null; then
	kill -KILL "$orphan" 2>/dev/null
	fail "server $orphan outlived its SIGKILLed shell by 2 s"
fi
pass "server died with its SIGKILLed shell"

echo "scim fixture: all checks passed"
