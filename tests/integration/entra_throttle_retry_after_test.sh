#!/usr/bin/env bash
# The entra target honours 429 Retry-After (Microsoft Graph throttling
# guidance: the budget is the application's, per tenant): the first create
# is answered 429 with Retry-After: 2, and for those 2 s no request of the
# run goes out (two operations at a time: at most the one already on the wire
# is answered meanwhile); then every user lands, none recorded as failed.
source "$(dirname "$0")/../fixtures/entra.sh"
dir=$(fixture_tmpdir)

slapd_start 20 2
graph_start
agent_ports 1
entra_config 1 "$(entra_secret_auth)"
sed -i 's/^  kind: entra$/  kind: entra\n  max_in_flight: 2/' "$dir/agent1.yaml"
grep -q '^  max_in_flight: 2' "$dir/agent1.yaml" || fail "could not set target.max_in_flight"
graph_fault '{"status":429,"count":1,"retryAfter":2,"match":"/v1.0/users","methods":["POST"]}'
agent_start 1
wait_secs 60 entra_compare || fail "sync incomplete after throttling: $(entra_compare | head -n 5)"

n429=$(graph_audit_count "a.method === 'POST' && a.path === '/v1.0/users' && a.status === 429")
[ "$n429" = 1 ] || fail "want 1 create answered 429, got $n429"
# Requests answered within 1.9 s after the first 429 (Graph's, not the token
# endpoint's, nor a $batch envelope, whose requests have their own lines):
# only what was already on the wire may be.
early=$(graph_audit | node -e '
	const l = require("fs").readFileSync(0, "utf8").split("\n").filter(Boolean).map(JSON.parse)
		.filter((a) => a.path.startsWith("/v1.0/") && a.path !== "/v1.0/$batch"); // an envelope is not a request of its own
	const first = l.findIndex((a) => a.status === 429);
	const t0 = Date.parse(l[first].time);
	console.log(l.slice(first + 1).filter((a) => a.status !== 429 && Date.parse(a.time) - t0 < 1900).length);')
[ "$early" -le 1 ] || fail "$early requests went out within 1.9 s of a 429 with Retry-After: 2"
grep -q '"result":"error"' "$dir/data1/provisioning.log" && fail "an operation failed: $(grep '"result":"error"' "$dir/data1/provisioning.log" | head -n 2)"
agent_stop 1
pass "a create throttled (429, Retry-After: 2); $early request(s) answered in the 2 s after; all 20 users landed"
