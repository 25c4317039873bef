#!/usr/bin/env bash
# Integration test of the Microsoft Graph fixture (tests/fixtures/graph.sh):
# the look-alike must behave as Microsoft documents Graph v1.0 and the
# identity platform's client credentials flow (tests/fixtures/graph/README.md
# names the pages), since the Entra ID target is tested against it: tokens by
# secret and by a certificate assertion signed with openssl, token expiry,
# users (create, duplicate UPN, PATCH, DELETE, $filter/$select/paging), a
# security group with a nested group, $ref add/remove, $batch with dependsOn
# and a failed dependency, 429 + Retry-After over budget (inside and outside
# a batch), fault injection, the audit log, persistence across a restart.
ROOT=${CANOPY_SOURCE_DIR:-$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)}
# shellcheck source=../fixtures/graph.sh
. "$ROOT/tests/fixtures/graph.sh"

expect() { # expect ACTUAL WANTED WHAT [DETAIL]
	[ "$1" = "$2" ] || fail "$3: got '$1', want '$2'${4:+ ($4)}"
}
body() { graph_body | json_get "$1"; }
audit_map() { # audit_map FILTER MAP: the MAP of the audit lines passing FILTER, comma-joined
	graph_audit "$1" | node -e '
		const f = (0, eval)("(a) => (" + process.argv[1] + ")");
		const ls = require("fs").readFileSync(0, "utf8").split("\n").filter(Boolean);
		console.log(ls.map((l) => f(JSON.parse(l))).join());
	' "$2"
}
enc() { node -e 'process.stdout.write(encodeURIComponent(process.argv[1]))' -- "$1"; }
user_json() { # upn nickname [immutableId]
	printf '{"accountEnabled":true,"displayName":"%s","mailNickname":"%s","userPrincipalName":"%s","passwordProfile":{"forceChangePasswordNextSignIn":true,"password":"xWwvJ]6NMw+bWH-d"}%s}' \
		"$2" "$2" "$1" "${3:+,\"onPremisesImmutableId\":\"$3\"}"
}
ref() { printf '{"@odata.id":"https://graph.microsoft.com/v1.0/directoryObjects/%s"}' "$1"; }

GRAPH_CERT=1 graph_start
kill -0 "$GRAPH_PID" 2>/dev/null || fail "server not running"
pass "Graph fixture up on $GRAPH_URL (token endpoint $GRAPH_TOKEN_URL)"

# --- client credentials: secret ------------------------------------------
S=$(enc "$GRAPH_SCOPE")
C=$(enc "$GRAPH_CLIENT_ID")
code=$(graph_token_req "grant_type=client_credentials&client_id=$C&client_secret=wrong&scope=$S")
expect "$code" 401 "token with a wrong secret"
expect "$(body 'j.error + " " + j.error_codes[0]')" "invalid_client 7000215" "wrong secret error" "$(graph_body)"
code=$(graph_token_req "grant_type=client_credentials&client_id=$C&client_secret=$(enc "$GRAPH_CLIENT_SECRET")&scope=$(enc https://graph.microsoft.com/User.Read)")
expect "$code" 400 "token with a scope that is not /.default"
expect "$(body 'j.error')" invalid_scope "bad scope error"
code=$(graph_token_req "grant_type=client_credentials&client_id=$C&client_secret=$(enc "$GRAPH_CLIENT_SECRET")&scope=$S")
expect "$code" 200 "token by secret" "$(graph_body)"
expect "$(body 'j.token_type + " " + j.expires_in + " " + (j.access_token.length > 20)')" "Bearer 3600 true" "token answer" "$(graph_body)"
SECRET_TOKEN=$(body 'j.access_token')
pass "client credentials with a secret: token; wrong secret 401 invalid_client; bad scope 400 invalid_scope"

# --- client credentials: certificate assertion (RS256, x5t#S256) ---------
graph_token_cert >/dev/null
CERT_TOKEN=$GRAPH_TOKEN
[ "$CERT_TOKEN" != "$SECRET_TOKEN" ] || fail "two tokens are the same"
form_with() { # form for an assertion with claim overrides
	printf 'grant_type=client_credentials&client_id=%s&scope=%s&client_assertion_type=%s&client_assertion=%s' \
		"$C" "$S" "$(enc urn:ietf:params:oauth:client-assertion-type:jwt-bearer)" "$(graph_assertion "$1")"
}
code=$(graph_token_req "$(form_with '{"aud":"https://login.microsoftonline.com/common/oauth2/v2.0/token"}')")
expect "$code" 401 "assertion with a foreign aud"
now=$(date +%s)
code=$(graph_token_req "$(form_with "{\"exp\":$((now - 3600)),\"nbf\":$((now - 7200))}")")
expect "$code" 401 "expired assertion"
expect "$(body 'j.error_codes[0]')" 700024 "expired assertion error code" "$(graph_body)"
code=$(graph_token_req "$(form_with '{"iss":"someone-else"}')")
expect "$code" 401 "assertion with iss != client_id"
jwt=$(graph_assertion)
other=$(graph_assertion)
tampered="${jwt%.*}.${other##*.}" # a real signature, over other claims
code=$(graph_token_req "grant_type=client_credentials&client_id=$C&scope=$S&client_assertion_type=$(enc urn:ietf:params:oauth:client-assertion-type:jwt-bearer)&client_assertion=$tampered")
expect "$code" 401 "assertion with a broken signature"
expect "$(body 'j.error_codes[0]')" 700027 "broken signature error code"
code=$(graph_token_req "grant_type=client_credentials&client_id=$C&scope=$S&client_assertion_type=$(enc urn:ietf:params:oauth:client-assertion-type:jwt-bearer)&client_assertion=$jwt")
expect "$code" 200 "valid assertion" "$(graph_body)"
code=$(graph_token_req "grant_type=client_credentials&client_id=$C&scope=$S&client_assertion_type=$(enc urn:ietf:params:oauth:client-assertion-type:jwt-bearer)&client_assertion=$jwt")
expect "$code" 401 "replayed assertion (same jti)"
# the older x5t (SHA-1 thumbprint) header works too
x5t=$(openssl x509 -in "$GRAPH_CLIENT_CERT" -outform DER | openssl dgst -sha1 -binary | openssl base64 -A | tr '+/' '-_' | tr -d '=')
code=$(graph_token_req "$(form_with "{\"header\":{\"x5t#S256\":null,\"x5t\":\"$x5t\"}}")")
expect "$code" 200 "assertion with x5t (SHA-1)" "$(graph_body)"
expect "$(graph_ctl GET token | json_get 'j.byClientAuth.secret + " " + j.byClientAuth.assertion')" "1 3" "token counters"
pass "client credentials with a certificate assertion: RS256 + x5t#S256 or x5t; foreign aud, expired, wrong iss, bad signature, replayed jti refused"

# --- bearer token checks ---------------------------------------------------
GRAPH_TOKEN=""
code=$(graph_req GET /users)
expect "$code" 401 "no token"
expect "$(body 'j.error.code')" InvalidAuthenticationToken "no token error code"
GRAPH_TOKEN=not-a-token
expect "$(graph_req GET /users)" 401 "unknown token"
GRAPH_TOKEN=$CERT_TOKEN
code=$(graph_req GET /users)
expect "$code" 200 "GET /users with a token"
expect "$(body 'j.value.length + " " + j["@odata.context"]')" "0 $GRAPH_URL/\$metadata#users" "empty user list"
pass "bearer tokens: none or unknown 401 InvalidAuthenticationToken"

# --- users -------------------------------------------------------------------
code=$(graph_req POST /users "$(user_json adele@contoso.test adele aW1tLTE=)")
expect "$code" 201 "create user" "$(graph_body)"
ADELE=$(body 'j.id')
[[ $ADELE =~ ^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$ ]] || fail "user id $ADELE is not a GUID"
expect "$(body 'j["@odata.context"] + " " + j.userPrincipalName + " " + ("passwordProfile" in j)')" \
	"$GRAPH_URL/\$metadata#users/\$entity adele@contoso.test false" "create answer" "$(graph_body)"
expect "$(graph_header request-id | wc -c)" 37 "request-id header"
expect "$(curl -sS -o /dev/null -D - -H "Authorization: Bearer $GRAPH_TOKEN" -H 'client-request-id: 0f1e2d3c-aaaa-4bbb-8ccc-123456789abc' "$GRAPH_URL/users/nobody@contoso.test" |
	tr -d '\r' | sed -n 's/^client-request-id: //Ip')" 0f1e2d3c-aaaa-4bbb-8ccc-123456789abc "client-request-id echoed"
code=$(graph_req POST /users "$(user_json ADELE@contoso.test adele2)")
expect "$code" 400 "duplicate UPN (case differs)"
expect "$(body 'j.error.code + "|" + j.error.message')" \
	"Request_BadRequest|Another object with the same value for property userPrincipalName already exists." "duplicate UPN error" "$(graph_body)"
expect "$(body 'typeof j.error.innerError.date + " " + j.error.innerError["request-id"].length + " " + typeof j.error.innerError["client-request-id"]')" \
	"string 36 string" "error innerError" "$(graph_body)"
code=$(graph_req POST /users '{"accountEnabled":true,"displayName":"x","mailNickname":"x","userPrincipalName":"x@contoso.test"}')
expect "$code" 400 "create without passwordProfile"
expect "$(body 'j.error.message')" "Invalid value specified for property 'passwordProfile' of resource 'User'." "missing property message"
expect "$(graph_req PATCH "/users/$ADELE" '{"displayName":"Adele V","department":"Sales"}')" 204 "PATCH user"
[ ! -s "$GRAPH_BODY_FILE" ] || fail "PATCH 204 has a body: $(graph_body)"
expect "$(graph_req GET "/users/$ADELE?\$select=displayName,department,onPremisesImmutableId")" 200 "GET user \$select"
expect "$(body 'Object.keys(j).sort().join() + " " + j.displayName + " " + j.department + " " + j.onPremisesImmutableId')" \
	"@odata.context,department,displayName,id,onPremisesImmutableId Adele V Sales aW1tLTE=" "selected user" "$(graph_body)"
expect "$(graph_req GET /users/adele@contoso.test)" 200 "GET user by UPN"
expect "$(body 'j.id')" "$ADELE" "user by UPN"
for i in 1 2 3 4 5; do
	expect "$(graph_req POST /users "$(user_json "u$i@contoso.test" "u$i" "imm-$i")")" 201 "create u$i"
done
U3=$(graph_dump users | json_get 'j.find(u => u.mailNickname === "u3").id')
expect "$(graph_req GET "/users?\$filter=$(enc "onPremisesImmutableId eq 'imm-4'")")" 200 "filter on onPremisesImmutableId"
expect "$(body 'j.value.map(u => u.userPrincipalName).join()')" u4@contoso.test "filter onPremisesImmutableId"
expect "$(graph_req GET "/users?\$filter=$(enc "userPrincipalName eq 'U2@CONTOSO.TEST' or displayName eq 'u5'")&\$select=id,mailNickname")" 200 "filter with or"
expect "$(body 'j.value.map(u => u.mailNickname).sort().join()')" u2,u5 "filter UPN or displayName"
expect "$(graph_req GET "/users?\$filter=$(enc "jobTitle eq 'x'")")" 400 "filter on an unsupported property"
expect "$(body 'j.error.code')" Request_UnsupportedQuery "unsupported filter code"
# paging: 6 users, $top=4 -> 4 + nextLink, then 2 and no nextLink
expect "$(graph_req GET "/users?\$top=4&\$select=userPrincipalName")" 200 "page 1"
expect "$(body 'j.value.length')" 4 "page 1 size"
next=$(body 'j["@odata.nextLink"]')
[[ $next == "$GRAPH_URL/users?"*'%24skiptoken='* ]] || fail "nextLink: $next"
expect "$(graph_req GET "${next#"$GRAPH_URL"}")" 200 "page 2"
expect "$(body 'j.value.length + " " + ("@odata.nextLink" in j) + " " + Object.keys(j.value[0]).sort().join()')" \
	"2 false id,userPrincipalName" "page 2 (keeps \$select, ends)"
expect "$(graph_req DELETE "/users/$U3")" 204 "DELETE user"
expect "$(graph_req GET "/users/$U3")" 404 "GET deleted user"
expect "$(body 'j.error.code')" Request_ResourceNotFound "deleted user error code"
expect "$(graph_req DELETE "/users/$U3")" 404 "DELETE deleted user"
pass "users: GUID ids, 201 create, duplicate UPN 400, required fields, PATCH 204, \$select, by UPN, \$filter eq/or, paging with nextLink, DELETE 204 then 404"

# --- groups: security group, nested group, $ref add/remove, @odata.bind ---
U1=$(graph_user_id U1@Contoso.test)
U2=$(graph_user_id u2@contoso.test)
[ -n "$U1" ] && [ -n "$U2" ] && [ "$U1" != "$U2" ] || fail "graph_user_id: '$U1' '$U2'"
expect "$(graph_user_id nobody@contoso.test)" "" "graph_user_id of nobody"
code=$(graph_req POST /groups '{"displayName":"Eng","mailEnabled":false,"mailNickname":"eng","securityEnabled":true}')
expect "$code" 201 "create group" "$(graph_body)"
ENG=$(body 'j.id')
code=$(graph_req POST /groups "{\"displayName\":\"Staff\",\"mailEnabled\":false,\"mailNickname\":\"staff\",\"securityEnabled\":true,\"members@odata.bind\":[\"https://graph.microsoft.com/v1.0/users/$ADELE\",\"https://graph.microsoft.com/v1.0/groups/$ENG\"]}")
expect "$code" 201 "create group with members@odata.bind (a user and a nested group)" "$(graph_body)"
STAFF=$(body 'j.id')
expect "$(graph_req POST "/groups/$ENG/members/\$ref" "$(ref "$U1")")" 204 "add member by \$ref"
expect "$(graph_req POST "/groups/$ENG/members/\$ref" "$(ref "$U1")")" 400 "add the same member again"
expect "$(body 'j.error.message')" "One or more added object references already exist for the following modified properties: 'members'." "duplicate member message"
expect "$(graph_req PATCH "/groups/$ENG" "{\"members@odata.bind\":[\"https://graph.microsoft.com/v1.0/directoryObjects/$U2\"]}")" 204 "PATCH members@odata.bind"
many=$(node -e 'console.log(JSON.stringify({"members@odata.bind": Array.from({length: 21}, (_, i) => "https://graph.microsoft.com/v1.0/directoryObjects/" + process.argv[1])}))' "$U2")
expect "$(graph_req PATCH "/groups/$ENG" "$many")" 400 "21 references in one members@odata.bind"
expect "$(graph_req GET "/groups/$STAFF/members")" 200 "list members"
expect "$(body 'j.value.map(m => m["@odata.type"]).sort().join()')" "#microsoft.graph.group,#microsoft.graph.user" "nested group member" "$(graph_body)"
expect "$(graph_req GET "/groups/$ENG/members?\$top=1")" 200 "list members page 1"
expect "$(body 'j.value.length + " " + ("@odata.nextLink" in j)')" "1 true" "member paging"
expect "$(graph_req DELETE "/groups/$ENG/members/$U1/\$ref")" 204 "remove member"
expect "$(graph_req DELETE "/groups/$ENG/members/$U1/\$ref")" 404 "remove a non-member"
expect "$(graph_dump members | json_get "j['$ENG'].join() + ' ' + j['$STAFF'].join()")" "$U2 $ADELE,$ENG" "members in the dump"
expect "$(graph_members "$STAFF" | tr '\n' ' ')" "$ADELE $ENG " "graph_members"
expect "$(graph_group_id Staff)" "$STAFF" "graph_group_id"
expect "$(graph_req GET "/groups?\$filter=$(enc "displayName eq 'eng'")")" 200 "filter groups"
expect "$(body 'j.value.map(g => g.id + g.securityEnabled + g.mailEnabled).join()')" "${ENG}truefalse" "group by displayName"
pass "groups: security group, members@odata.bind on create and PATCH (20 max), nested group, \$ref add 204 / duplicate 400, remove 204 / non-member 404, member paging"

# --- $batch ----------------------------------------------------------------
batch=$(cat <<JSON
{"requests":[
 {"id":"1","method":"POST","url":"/users","headers":{"Content-Type":"application/json"},"body":$(user_json b1@contoso.test b1)},
 {"id":"2","method":"POST","url":"/users","headers":{"Content-Type":"application/json"},"body":$(user_json adele@contoso.test dup)},
 {"id":"3","dependsOn":["1"],"method":"PATCH","url":"/users/b1@contoso.test","headers":{"Content-Type":"application/json"},"body":{"jobTitle":"batched"}},
 {"id":"4","dependsOn":["2"],"method":"POST","url":"/groups/$ENG/members/\$ref","headers":{"Content-Type":"application/json"},"body":$(ref "$U1")},
 {"id":"5","method":"GET","url":"/users/b1@contoso.test?\$select=jobTitle"}
]}
JSON
)
code=$(graph_req POST '/$batch' "$batch")
expect "$code" 200 "\$batch" "$(graph_body)"
expect "$(body 'j.responses.map(r => r.id + ":" + r.status).join()')" "1:201,2:400,3:204,4:424,5:200" "batch statuses" "$(graph_body)"
expect "$(body 'j.responses[4].body.jobTitle')" batched "dependsOn ran 3 before 5"
expect "$(body 'j.responses[1].body.error.message')" "Another object with the same value for property userPrincipalName already exists." "batch inner error body"
expect "$(graph_dump members | json_get "j['$ENG'].includes('$U1')")" false "the failed dependency's request did not run"
BATCH_ID=$(graph_header request-id)
graph_wait_audit "a.requestId === '$BATCH_ID'" 5
expect "$(graph_audit_count "a.batch === '$BATCH_ID'")" 5 "graph_audit_count of the batch's lines"
expect "$(audit_map "a.batch === '$BATCH_ID'" 'a.batchRequest + ":" + a.status')" "1:201,2:400,3:204,4:424,5:200" "audit lines of the batch"
expect "$(audit_map "a.requestId === '$BATCH_ID'" 'a.method + " " + a.path + " " + a.status + " " + (a.batch === null) + " " + a.client + " " + (typeof a.ms)')" \
	"POST /v1.0/\$batch 200 true $GRAPH_CLIENT_ID number" "audit line of the batch envelope"
too_many=$(node -e 'console.log(JSON.stringify({requests: Array.from({length: 21}, (_, i) => ({id: String(i + 1), method: "GET", url: "/users?$top=1"}))}))')
expect "$(graph_req POST '/$batch' "$too_many")" 400 "\$batch of 21 requests"
dup_ids='{"requests":[{"id":"1","method":"GET","url":"/users"},{"id":"1","method":"GET","url":"/groups"}]}'
expect "$(graph_req POST '/$batch' "$dup_ids")" 400 "\$batch with a repeated id"
no_ct="{\"requests\":[{\"id\":\"1\",\"method\":\"PATCH\",\"url\":\"/users/$U1\",\"body\":{\"jobTitle\":\"x\"}}]}"
expect "$(graph_req POST '/$batch' "$no_ct")" 400 "\$batch request with a body and no Content-Type"
pass "\$batch: per-request status and body, dependsOn order, 424 after a failed dependency, 20 max, unique ids, audit per request with the batch id"

# --- request budget: 429 + Retry-After, outside and inside a batch ---------
graph_budget 1 3
codes=""
for i in 1 2 3 4; do codes+="$(graph_req GET "/users?\$top=1") "; done
expect "$codes" "200 200 200 429 " "4 requests against a budget of 3"
ra=$(graph_header Retry-After)
[[ $ra =~ ^[1-9][0-9]*$ ]] || fail "429 Retry-After is '$ra'"
expect "$(body 'j.error.code')" TooManyRequests "429 error code" "$(graph_body)"
graph_budget 1 2
get3='{"requests":[{"id":"a","method":"GET","url":"/users?$top=1"},{"id":"b","method":"GET","url":"/users?$top=1"},{"id":"c","method":"GET","url":"/users?$top=1"}]}'
expect "$(graph_req POST '/$batch' "$get3")" 200 "batch over budget answers 200"
expect "$(body 'j.responses.map(r => r.status).join() + " " + (Number(j.responses[2].headers["Retry-After"]) >= 1) + " " + j.responses[2].body.error.code')" \
	"200,200,429 true TooManyRequests" "every request of a batch counts against the budget" "$(graph_body)"
expect "$(audit_map 'a.status === 429' 'a.retryAfter >= 1')" "true,true" "throttled requests in the audit with retryAfter"
graph_budget 0
pass "budget: 429 TooManyRequests with Retry-After ($ra s) when over; each request of a \$batch counts, throttled alone"

# --- fault injection ---------------------------------------------------------
graph_fault '{"status":503,"count":2,"retryAfter":1,"match":"/users"}'
codes=$(graph_req GET /users)
expect "$(graph_header Retry-After) $(body 'j.error.code')" "1 serviceNotAvailable" "injected 503's Retry-After and error code"
for i in 2 3; do codes+=" $(graph_req GET /users)"; done
expect "$codes" "503 503 200" "2 injected 503 then through"
expect "$(graph_req GET /groups)" 200 "fault does not match /groups"
graph_fault '{"status":429,"count":1,"retryAfter":1,"match":"/groups","inBatch":true}'
expect "$(graph_req GET /groups)" 200 "an inBatch fault does not match a request alone"
expect "$(graph_req POST '/$batch' '{"requests":[{"id":"1","method":"GET","url":"/groups"},{"id":"2","method":"GET","url":"/groups"}]}')" 200 "batch with an inBatch fault"
expect "$(body 'j.responses.map(r => r.status).join()')" "429,200" "an inBatch fault hits the first matching request inside a batch" "$(graph_body)"
graph_fault '{}'
pass "faults: the next N matching requests fail with the given status (inBatch: only inside a \$batch)"

# --- token expiry -------------------------------------------------------------
graph_ctl POST token '{"ttl":3}' >/dev/null
graph_token >/dev/null
expect "$(graph_body | json_get 'j.expires_in')" 3 "token lifetime set by the control API"
expect "$(graph_req GET /users)" 200 "fresh short-lived token"
deadline=$((SECONDS + 15))
while code=$(graph_req GET /users) && [ "$code" = 200 ]; do
	[ $SECONDS -lt $deadline ] || fail "a 3 s token still works after 15 s"
	sleep 0.2
done
expect "$code" 401 "expired token"
expect "$(body 'j.error.code + "|" + j.error.message')" "InvalidAuthenticationToken|Lifetime validation failed, the token is expired." "expired token error"
expect "$(graph_ctl GET token | json_get 'j.expiredUsed >= 1')" true "expired use counted"
graph_ctl POST token '{"ttl":3600}' >/dev/null
graph_token >/dev/null
pass "tokens expire: 401 InvalidAuthenticationToken after the lifetime"

# --- app registrations through the control API --------------------------------
graph_ctl POST clients '{"clientId":"second-app","secret":"s2-secret"}' >/dev/null
expect "$(graph_token_req "grant_type=client_credentials&client_id=second-app&client_secret=s2-secret&scope=$S")" 200 "token for an app registered by the control API"
SECOND=$(body 'j.access_token')
expect "$(graph_token_req "grant_type=client_credentials&client_id=third-app&client_secret=s2-secret&scope=$S")" 400 "token for an unknown app"
expect "$(body 'j.error + " " + j.error_codes[0]')" "unauthorized_client 700016" "unknown app error"
keep=$GRAPH_TOKEN
GRAPH_TOKEN=$SECOND
expect "$(graph_req GET /groups)" 200 "second app's token"
GRAPH_TOKEN=$keep
expect "$(audit_map "a.path === '/v1.0/groups' && a.status === 200" 'a.client' | tr ',' '\n' | tail -n 1)" second-app "audit names the token's client"
pass "control API registers an app secret; unknown app 400 unauthorized_client; the audit names each token's client"

# --- persistence across a restart --------------------------------------------
before=$(graph_dump)
old_pid=$GRAPH_PID
graph_restart
[ "$GRAPH_PID" != "$old_pid" ] || fail "restart kept the pid"
expect "$(graph_dump)" "$before" "directory after restart"
expect "$(graph_req GET "/users/$ADELE?\$select=department")" 200 "token and user survive the restart"
expect "$(body 'j.department')" Sales "user after restart"
expect "$(graph_req GET "/groups/$STAFF/members")" 200 "members after restart"
expect "$(body 'j.value.length')" 2 "members after restart"
expect "$(graph_req POST /users "$(user_json adele@contoso.test again)")" 400 "UPN uniqueness after restart"
graph_reset
expect "$(graph_dump | json_get 'j.users.length + j.groups.length')" 0 "reset empties the directory"
pass "persistence: users, groups, members and tokens survive a restart; reset empties"

# --- the audit log -------------------------------------------------------------
expect "$(audit_map 'a.path.endsWith("/oauth2/v2.0/token") && a.status === 200' 'a.client')" \
	"$(printf '%s,' "$GRAPH_CLIENT_ID" "$GRAPH_CLIENT_ID" "$GRAPH_CLIENT_ID" "$GRAPH_CLIENT_ID" "$GRAPH_CLIENT_ID" "$GRAPH_CLIENT_ID" second-app | sed 's/,$//')" \
	"token requests audited with the client id"
expect "$(audit_map 'true' '["time","method","path","status","batch","batchRequest","client","ms"].every(k => k in a)')" \
	"$(audit_map 'true' 'true')" "every audit line has every field"
expect "$(audit_map 'a.path.startsWith("/_test")' 'a')" "" "control requests are not audited"
pass "audit: one line per request, with time, method, path, status, batch, batchRequest, client, ms"

# --- HTTPS ------------------------------------------------------------------------
graph_stop
GRAPH_TLS=1 graph_start
[[ $GRAPH_URL == https://* && $GRAPH_TOKEN_URL == https://* ]] || fail "GRAPH_TLS=1 gives $GRAPH_URL"
graph_token >/dev/null
expect "$(graph_req GET /users)" 200 "GET /users over HTTPS"
expect "$(curl -s -o /dev/null -w '%{http_code}' "$GRAPH_URL/users" 2>/dev/null)" 000 "HTTPS without the test CA"
pass "HTTPS with the private CA (GRAPH_TLS=1)"
