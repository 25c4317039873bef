#!/usr/bin/env bash
# The entra target honours 429 Retry-After (Microsoft Graph throttling
# guidance): the first creates are answered 429 with Retry-After: 2, and no
# create goes out again before those 2 s have passed; then every user lands,
# none is recorded as failed.
source "$(dirname "$0")/../fixtures/entra.sh"
dir=$(fixture_tmpdir)

slapd_start 20 2
graph_start
agent_ports 1
entra_config 1 "$(entra_secret_auth)"
graph_fault '{"status":429,"count":3,"retryAfter":2,"match":"/v1.0/users","methods":["POST"]}'
agent_start 1
wait_secs 60 entra_compare || fail "sync incomplete after throttling: $(entra_compare | head -n 5)"

n429=$(graph_audit_count "a.method === 'POST' && a.path === '/v1.0/users' && a.status === 429")
[ "$n429" = 3 ] || fail "want 3 creates answered 429, got $n429"
# The earliest create sent after the first 429, in ms after it.
gap=$(graph_audit | node -e '
	const l = require("fs").readFileSync(0, "utf8").split("\n").filter(Boolean).map(JSON.parse)
		.filter((a) => a.method === "POST" && a.path === "/v1.0/users");
	const first = l.findIndex((a) => a.status === 429);
	const t0 = Date.parse(l[first].time);
	const next = l.slice(first + 1).find((a) => a.status !== 429);
	console.log(Date.parse(next.time) - t0);')
[ "$gap" -ge 1900 ] || fail "a create went out ${gap} ms after a 429 with Retry-After: 2"
grep -q '"result":"error"' "$dir/data1/provisioning.log" && fail "an operation failed: $(grep '"result":"error"' "$dir/data1/provisioning.log" | head -n 2)"
agent_stop 1
pass "3 creates throttled (429, Retry-After: 2); the next create waited ${gap} ms; all 20 users landed"
