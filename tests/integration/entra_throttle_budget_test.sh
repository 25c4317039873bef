#!/usr/bin/env bash
# With Graph's budget at 50 requests a second and target.max_requests_per_s
# 50, the initial sync of 1000 users (about 2,100 requests; 500 under ASan) keeps to the
# budget: fewer than 1 % of the requests are answered 429. Then one user is
# changed twice while its update is being throttled (429 with Retry-After on
# its PATCH): the retried first update keeps its place, so the second value
# is the one left in Graph. The throughput (requests a second over the
# steady part, against the budget) is printed, never asserted:
# bench/entra-budget.sh draws the curve from it (BUDGET, AGENT_RPS below).
source "$(dirname "$0")/../fixtures/entra.sh"
dir=$(fixture_tmpdir)

# ASan makes the engine slow enough for its event loop to stall past the
# write lease, and each stall runs the batch again at the budget's pace:
# fewer users there (still over 1,000 requests).
if build_sanitized; then users=500 min=1000; else users=1000 min=2000; fi
slapd_start "$users" 4
# BUDGET (the fixture's) and AGENT_RPS (target.max_requests_per_s, default
# the budget) draw other points of the curve (bench/run.sh).
export GRAPH_RPS=${BUDGET:-50} GRAPH_BURST=${BUDGET:-50}
export ENTRA_MAX_RPS=${AGENT_RPS:-$GRAPH_RPS}
graph_start
agent_ports 1
entra_config 1 "$(entra_secret_auth)"
grep -q "^  max_requests_per_s: $ENTRA_MAX_RPS\$" "$dir/agent1.yaml" || fail "could not set target.max_requests_per_s"
# Enough operations in flight that the budget, not the answers' latency,
# sets the pace (docs/entra.md: max_in_flight >= rate x latency).
sed -i 's/^  kind: entra$/  kind: entra\n  max_in_flight: 16/' "$dir/agent1.yaml"
grep -q '^  max_in_flight: 16' "$dir/agent1.yaml" || fail "could not set target.max_in_flight"
agent_start 1
wait_secs 240 entra_compare || fail "sync incomplete under a budget: $(entra_compare | head -n 5)"

# The curve: requests a second over the middle 80 % of the requests.
read -r total n429 rate < <(graph_audit | node -e '
	const l = require("fs").readFileSync(0, "utf8").split("\n").filter(Boolean).map(JSON.parse)
		.filter((a) => a.path.startsWith("/v1.0/") && !a.path.startsWith("/v1.0/$batch"));
	const t = l.map((a) => Date.parse(a.time)).sort((x, y) => x - y);
	const lo = Math.floor(t.length * 0.1), hi = Math.floor(t.length * 0.9);
	const rate = (hi - lo) / ((t[hi] - t[lo]) / 1000);
	console.log(l.length, l.filter((a) => a.status === 429).length, rate.toFixed(1));')
echo "budget $GRAPH_RPS/s: $total requests, $n429 answered 429, $rate requests/s over the steady part"
[ "$total" -ge "$min" ] || fail "only $total requests: the run is too small to measure"
[ $((n429 * 100)) -lt "$total" ] || fail "$n429 of $total requests answered 429 (want < 1 %)"
grep -q '"result":"error"' "$dir/data1/provisioning.log" &&
	fail "an operation failed: $(grep '"result":"error"' "$dir/data1/provisioning.log" | head -n 2)"

# Order per object: user00007's update is throttled three times (429,
# Retry-After: 1) while its second change arrives.
uid=$(graph_user_id user00007@example.com)
[ -n "$uid" ] || fail "user00007 not in Graph"
graph_fault "{\"status\":429,\"count\":3,\"retryAfter\":1,\"match\":\"/v1.0/users/$uid\",\"methods\":[\"PATCH\"]}"
slapd_ldapmodify >/dev/null <<EOF || fail "ldapmodify"
dn: uid=user00007,ou=people,$SLAPD_BASE
changetype: modify
replace: title
title: first
EOF
graph_wait_audit "a.method === 'PATCH' && a.path === '/v1.0/users/$uid' && a.status === 429" 60
slapd_ldapmodify >/dev/null <<EOF || fail "ldapmodify"
dn: uid=user00007,ou=people,$SLAPD_BASE
changetype: modify
replace: title
title: second
EOF
deadline=$((SECONDS + 60))
until [ "$(graph_audit_count "a.method === 'PATCH' && a.path === '/v1.0/users/$uid' && a.status === 204")" -ge 2 ]; do
	[ "$SECONDS" -lt "$deadline" ] || fail "the two updates of user00007 did not both land"
	sleep 0.2
done
wait_secs 30 entra_compare || fail "after two changes: $(entra_compare | head -n 5)"
dept=$(graph_dump users | json_get "j.find((u) => u.id === '$uid').department")
[ "$dept" = second ] || fail "user00007's department is '$dept', want 'second' (an update overtook a later one)"
throttled=$(graph_audit_count "a.method === 'PATCH' && a.path === '/v1.0/users/$uid' && a.status === 429")
agent_stop 1
pass "budget $GRAPH_RPS/s: $n429 of $total requests answered 429 ($rate requests/s steady); an update retried $throttled times kept its place"
