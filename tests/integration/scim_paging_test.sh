#!/usr/bin/env bash
# Paging (RFC 7644 §3.4.2.4) up to the target's maxResults: a SCIM server
# that pages at 100 and supports no filtering (its ServiceProviderConfig says
# so: filter.supported false, maxResults 100). A fresh agent meets 150 users
# the target already has (an earlier cluster made them): every create is
# answered 409, and the lookup by externalId -- a scan of the listing without
# a filter -- must read past the first page to find 50 of them. All 150 are
# adopted: no duplicate, nothing failed, target equals source; the agent said
# once that the target cannot filter; status shows lookup "scan".
source "$(dirname "$0")/../fixtures/sync.sh"
dir=$(fixture_tmpdir)

sync_setup 150 0
agent_ports 1
sync_agent_config 1 "[\"1@${AGENT_RAFT[1]}\"]"
agent_start 1
st() { agent_status 1; }
synced() { [ "$(json_eval "$(st)" 'j.sync.state')" = idle ]; }
wait_until 120 synced || fail "first sync did not finish"
[ "$(scim_count Users)" = 150 ] || fail "expected 150 users, got $(scim_count Users)"
agent_stop 1
rm -rf "$dir/data1" # a new cluster: it knows none of the target's ids
pass "150 users in the target, the agent's state wiped"

scim_ctl POST caps '{"filter": false, "maxResults": 100}' >/dev/null || fail "fixture caps switch"
scim_req GET "/Users?filter=userName%20eq%20%22user00001%22" >/dev/null
[ "$(scim_body | json_get 'j.scimType')" = invalidFilter ] || fail "the fixture still filters: $(scim_body)"
mark=$(scim_ctl GET audit | json_get 'j.length ? j[j.length - 1].seq : 0')
refused0=$(scim_ctl GET stats | json_get 'j.filterRefused ?? 0') # the check above
agent_start 1
wait_until 180 synced || fail "sync against the paging server did not finish: $(json_eval "$(st)" 'JSON.stringify(j.sync)')"
[ "$(scim_count Users)" = 150 ] || fail "expected 150 users (no duplicates), got $(scim_count Users)"
[ "$(json_eval "$(st)" 'j.sync.failed')" = 0 ] || fail "objects failed: $(json_eval "$(st)" 'JSON.stringify(j.sync)')"
conflicts=$(scim_ctl GET "audit?since=$mark" | json_get 'j.filter(a => a.method === "POST" && a.status === 409).length')
adopted=$(scim_ctl GET "audit?since=$mark" | json_get 'new Set(j.filter(a => a.method === "PUT" && /^\/Users\//.test(a.path) && a.status === 200).map(a => a.id)).size')
[ "$conflicts" = 150 ] || fail "expected 150 conflicts (every user exists), got $conflicts"
[ "$adopted" = 150 ] || fail "expected all 150 users adopted and updated, got $adopted"
paged=$(scim_ctl GET stats | json_get 'j.pagedReads ?? 0')
refused=$(($(scim_ctl GET stats | json_get 'j.filterRefused ?? 0') - refused0))
((paged >= 50)) || fail "expected a page beyond the first for each of the 50 users past the first page, got $paged paged reads"
[ "$refused" = 0 ] || fail "canopy sent $refused filters to a server that said it has none"
wait_until 30 sync_compare || sync_compare || fail "target differs from source"
pass "150 conflicts, 150 adopted through $paged reads of pages past the first; no filter sent; target equals source"

c=$(json_eval "$(st)" 'const c=j.sync.target.capabilities; [c.filter,c.max_results,c.lookup].join("/")')
[ "$c" = false/100/scan ] || fail "capabilities: $(json_eval "$(st)" 'JSON.stringify(j.sync.target.capabilities)')"
n=$(agent_logs 1 | grep -c 'the target does not support filtering')
[ "$n" = 1 ] || fail "expected one log line about filtering, got $n"
pass "status: filter false, max_results 100, lookup scan; said once in the log"
