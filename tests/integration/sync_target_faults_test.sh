#!/usr/bin/env bash
# A misbehaving target: 5xx, 429 with Retry-After and slow answers during the
# initial sync -- the sync still converges, every refused write is retried
# (none given up, none created twice) and a 429's Retry-After is honoured. A
# wrong token quarantines the target with a reason shown in status; fixing
# the token file recovers without a restart.
source "$(dirname "$0")/../fixtures/sync.sh"
dir=$(fixture_tmpdir)

# No write gives up within this test: each fault below is retried by the
# target client itself (none goes to the retry set).
TARGET_MAX_ATTEMPTS=100
sync_setup 300 10
# One sequence of faults on writes (health probes are GETs and never take
# one): 20 writes pass, then 40 answered 503, then 10 answered 429 with
# Retry-After: 1, then 20 answered slowly (300 ms) -- each switch until its
# count is used up, then the next.
W='"methods":["POST","PUT","PATCH","DELETE"]'
scim_fault "[{\"status\":503,\"count\":40,\"skip\":20,$W},{\"status\":429,\"retryAfter\":1,\"count\":10,$W},{\"delayMs\":300,\"count\":20,$W}]"
agent_ports 1
sync_agent_config 1 "[\"1@${AGENT_RAFT[1]}\"]"
agent_start 1
faulted() { scim_ctl GET stats | json_get 'j.faulted'; }
all_faults_used() { [ "$(faulted)" = 70 ]; }
wait_until 90 all_faults_used || fail "the sync stopped before it met every fault: $(faulted) of 70; $(agent_status 1)"
[ "$(scim_ctl GET faults)" = null ] || fail "faults left: $(scim_ctl GET faults)"
users_are() { [ "$(scim_count Users)" = "$1" ]; }
wait_until 90 users_are 300 || fail "no convergence under faults: $(scim_count Users) users; $(agent_status 1)"
wait_until 60 sync_compare || sync_compare || fail "target differs from source after faults"
synced() { [ "$(json_eval "$(agent_status 1)" 'j.sync.state')" = idle ]; }
wait_until 30 synced || fail "not idle: $(agent_status 1)"

scim_ctl GET audit >"$dir/audit.json"
audit() { json_get "$1" <"$dir/audit.json"; }
[ "$(audit 'j.filter(a=>a.fault && a.status===503).length')" = 40 ] || fail "the target did not answer 40 writes with 503"
[ "$(audit 'j.filter(a=>a.fault && a.status===429).length')" = 10 ] || fail "the target did not answer 10 writes with 429"
dups=$(audit '(()=>{const n={};for(const a of j)if(a.method==="POST"&&a.status===201)n[a.resourceType+a.externalId]=(n[a.resourceType+a.externalId]||0)+1;return Object.keys(n).filter(k=>n[k]>1).length})()')
[ "$dups" = 0 ] || fail "$dups objects were created twice"
creates=$(audit 'j.filter(a=>a.method==="POST" && a.status===201 && a.resourceType==="User").length')
st=$(agent_status 1)
retries=$(json_eval "$st" 'j.sync.target.retries')
# A batch whose write lease ran out (a loop stalled on a loaded machine)
# cancels its requests in flight and runs again (docs/architecture.md,
# fencing): a cancelled create may still land (then found, not created
# again) and a cancelled request's 503 is not counted. Exact otherwise.
cancels=$(curl -sf "http://${AGENT_CTL[1]}/metrics" | awk '$1 == "canopy_lease_cancels_total" {print $2}')
if [ "${cancels:-0}" = 0 ]; then
	[ "$creates" = 300 ] || fail "expected 300 user creates, one per user: $creates"
	[ "$retries" = 50 ] || fail "expected exactly 50 retries (40 x 503, 10 x 429): $(json_eval "$st" 'JSON.stringify(j.sync.target)')"
else
	echo "note: $cancels batches lost their write lease (a loaded machine): cancelled requests allowed for" >&2
	[ "$creates" -le 300 ] && [ "$creates" -ge $((300 - 8 * cancels)) ] || fail "user creates: $creates ($cancels lease cancels)"
	[ "$retries" -le 50 ] && [ "$retries" -ge $((50 - 8 * cancels)) ] || fail "retries: $retries ($cancels lease cancels)"
fi
[ "$(audit 'j.filter(a=>a.method==="POST" && a.status===201 && a.resourceType==="Group").length')" -le 10 ] ||
	fail "more than 10 group creates"
[ "$(json_eval "$st" 'j.sync.target.failures + "," + j.sync.retrying + "," + j.sync.failed')" = "0,0,0" ] ||
	fail "a write was given up: $(json_eval "$st" 'JSON.stringify(j.sync)')"
pass "40 x 503, 10 x 429, 20 slow answers: $retries retries, none given up, $creates user creates, none twice; target equals source"

# Retry-After, on one write alone (in the sync above, queues and backoff
# after earlier failures delay retries anyway): a write answered 429 with
# Retry-After: 2 is sent again no sooner -- without it, a first retry waits
# at most 200 ms.
lease_cancels() { curl -sf "http://${AGENT_CTL[1]}/metrics" | awk '$1 == "canopy_lease_cancels_total" {print $2}'; }
cancels=$(lease_cancels)
seq_before=$(scim_ctl GET audit | json_get 'j.length ? j[j.length-1].seq : 0')
id=$(scim_ctl GET store | json_get "j.Users.find(u=>u.userName==='user00007').id")
scim_fault "{\"status\":429,\"retryAfter\":2,\"count\":1,\"match\":\"/Users/$id\",$W}"
slapd_ldapmodify <<LDIF >/dev/null || fail "ldapmodify"
dn: uid=user00007,ou=people,$SLAPD_BASE
changetype: modify
replace: sn
sn: RetryAfter
LDIF
family_of() { scim_ctl GET store | json_get "(j.Users.find(u=>u.userName==='$1')||{name:{}}).name.familyName"; }
retried() { [ "$(family_of user00007)" = RetryAfter ]; }
wait_until 30 retried || fail "the write answered 429 was not retried: $(agent_status 1)"
tries=$(scim_ctl GET audit | json_get "j.filter(a=>a.seq>$seq_before && a.path==='/Users/$id').map(a=>a.status+'@'+Date.parse(a.time))")
gap=$(json_eval "$tries" 'j.length===2 && j[0].startsWith("429@") && j[1].startsWith("200@") ? Number(j[1].split("@")[1]) - Number(j[0].split("@")[1]) : "tries: " + j.join(" ")')
if [ "$(lease_cancels)" != "$cancels" ]; then
	echo "note: the write lease ran out meanwhile (a loaded machine): the batch ran again, gap not measured ($gap)" >&2
else
	[ "$gap" -ge 1950 ] 2>/dev/null || fail "the retry after a 429 with Retry-After: 2 came after $gap ms"
fi
pass "429 with Retry-After: 2: retried once, $gap ms later"

# The target's token is rotated; the agent still has the old one: quarantine
# with a reason, and no write gets through.
seq_before=$(scim_ctl GET audit | json_get 'j.length ? j[j.length-1].seq : 0')
scim_set_token "rotated-$RANDOM$RANDOM"
slapd_ldapmodify <<LDIF >/dev/null
dn: uid=tokentest,ou=people,$SLAPD_BASE
changetype: add
objectClass: inetOrgPerson
uid: tokentest
cn: Token Test
sn: Test
LDIF
quarantined() { [ "$(json_eval "$(agent_status 1)" 'j.sync.state === "quarantined" && j.sync.target.quarantine_reason === "unauthorized"')" = true ]; }
wait_until 20 quarantined || fail "not quarantined: $(agent_status 1)"
out=$("$CANOPYCTL" --server "${AGENT_CTL[1]}" status) || fail "status"
grep -q "^sync .*quarantined" <<<"$out" || fail "canopyctl status does not show the quarantine: $out"
has_user() { [ "$(scim_ctl GET store | json_get "j.Users.some(u=>u.userName==='$1')")" = true ]; }
has_user tokentest && fail "user written despite the wrong token"
# the write was tried and refused (the quarantine's cause), not merely not sent yet
[ "$(scim_ctl GET audit | json_get "(()=>{const t=j.filter(a=>a.seq>$seq_before && a.userName==='tokentest');return t.length>0 && t.every(a=>a.method==='POST' && a.status===401)})()")" = true ] ||
	fail "expected the POST of tokentest answered 401: $(scim_ctl GET audit | json_get "j.filter(a=>a.seq>$seq_before)")"
pass "wrong token: quarantined, reason unauthorized; the write was refused, nothing written"

# The operator fixes the agent's token file: it recovers without a restart
# and the change that waited is written.
pid=${AGENT_PID[1]}
(umask 077; cat "$SCIM_TOKEN_FILE" >"$AGENT_TOKEN_FILE")
wait_until 90 has_user tokentest || fail "did not recover after the token was fixed: $(agent_status 1)"
[ "$(json_eval "$(agent_status 1)" 'j.sync.target.quarantined')" = false ] || fail "still quarantined"
kill -0 "$pid" || fail "agent restarted"
pass "token fixed: recovered without a restart, the waiting change was written"
