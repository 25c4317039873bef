#!/usr/bin/env bash
# /metrics from real agents is valid Prometheus text and follows the naming
# conventions (docs/operations.md, "Metrics"). 3 agents syncing from slapd
# into the SCIM server: the leader's scrape, taken while the initial sync
# runs and again once it is idle, and a follower's, go through Prometheus's
# own parser (python3-prometheus-client) and tests/fixtures/metrics_check.py:
# HELP/TYPE per family, counters in _total, no _ms but deprecated aliases,
# cumulative histogram buckets, build info, process start time; the leader
# has reachability and lag per peer, a follower none; the leader's latency
# histogram counts at least the writes the SCIM server's audit shows from it;
# a create the server refuses (400) is counted as an upsert error "refused".
source "$(dirname "$0")/../fixtures/sync.sh"
dir=$(fixture_tmpdir)
PY=${CANOPY_PYTHON:-/usr/bin/python3}
check() { "$PY" "$CANOPY_SOURCE_DIR/tests/fixtures/metrics_check.py" "$@"; }
"$PY" -c 'import prometheus_client.parser' || fail "python3-prometheus-client missing (scripts/install-deps.sh)"

sync_setup 300 30
# one create held on the wire: the first scrape is taken with the sync going
scim_fault '{"hold":true,"count":1,"methods":["POST"],"skip":20}'
sync_start_cluster 3
wait_until 30 ready_leader 1 2 3 || fail "no leader"
L=$(ready_leader 1 2 3)
peers=$(for i in 1 2 3; do [ "$i" != "$L" ] && echo -n "$i,"; done)
F=1; [ "$F" = "$L" ] && F=2

# while the initial sync writes: a scrape with a request on the wire
wait_until 30 eval '[ "$(scim_held)" -ge 1 ]' || fail "no create held"
[ "$(json_eval "$(agent_status "$L")" 'j.sync.state')" != idle ] || fail "the sync is idle with a create held"
curl -sf "http://${AGENT_CTL[$L]}/metrics" >"$dir/during.txt" || fail "leader /metrics"
out=$(check "$dir/during.txt" --peers "$peers") || fail "leader mid-sync: $out"
pass "the leader's scrape during the sync parses and follows the conventions ($out write requests so far)"
scim_fault '{}'
[ "$(scim_release)" -ge 1 ] || fail "nothing released"

wait_until 120 idle_leader "$L" || fail "the sync did not finish"
sync_compare || fail "the SCIM store differs from the directory"
writes=$(scim_ctl GET audit | json_get "j.filter(a => a.node === '$L').length")
[ "$writes" -gt 0 ] || fail "no write from the leader in the audit"
curl -sf "http://${AGENT_CTL[$L]}/metrics" >"$dir/leader.txt" || fail "leader /metrics"
out=$(check "$dir/leader.txt" --peers "$peers" --min-writes "$writes") || fail "leader: $out"
grep -q '^canopy_last_export_timestamp_seconds [1-9]' "$dir/leader.txt" || fail "no export time on the leader"
pass "the leader's scrape after the sync: $out write requests in the latency histogram, $writes writes in the audit"

wait_until 30 eval "curl -sf http://${AGENT_CTL[$F]}/metrics | grep -q '^canopy_role{role=\"follower\"} 1$'" ||
	fail "node $F is no follower"
curl -sf "http://${AGENT_CTL[$F]}/metrics" >"$dir/follower.txt" || fail "follower /metrics"
out=$(check "$dir/follower.txt" --no-peers) || fail "follower: $out"
pass "a follower's scrape parses and follows the conventions, without per-peer series"

# a refused create: counted by action and reason
scim_fault '{"status":400,"count":1,"methods":["POST"],"match":"/Users"}'
slapd_ldapmodify <<LDIF >/dev/null
dn: uid=refused,ou=people,$SLAPD_BASE
changetype: add
objectClass: inetOrgPerson
uid: refused
cn: Re Fused
givenName: Re
sn: Fused
mail: refused@example.com
LDIF
refused() { curl -sf "http://${AGENT_CTL[$L]}/metrics" | grep -q '^canopy_target_errors_total{op="upsert",reason="refused"} 1$'; }
wait_until 30 refused || fail "no refused upsert counted: $(curl -sf "http://${AGENT_CTL[$L]}/metrics" | grep errors_total)"
curl -sf "http://${AGENT_CTL[$L]}/metrics" >"$dir/refused.txt" || fail "leader /metrics"
out=$(check "$dir/refused.txt" --peers "$peers") || fail "leader after the refusal: $out"
grep -q '^canopy_errors_total 1$' "$dir/refused.txt" || fail "canopy_errors_total: $(grep '^canopy_errors_total' "$dir/refused.txt")"
pass "a create refused with 400: canopy_target_errors_total{op=\"upsert\",reason=\"refused\"} 1, and the scrape still valid"
