#!/usr/bin/env bash
# A SCIM server without Bulk and without PATCH (its /ServiceProviderConfig
# says so; the SCIM fixture answers 501 to both) and with ETags: canopy reads
# that at start (discovery, docs/targets.md) and writes everything with PUT --
# the initial sync of 300 users and groups with members, then a member add and
# a member remove, each a GET of the group and a PUT of it with If-Match. The
# target ends equal to the source; the fixture's audit has no PATCH and no
# /Bulk; status shows the capabilities and patch_style "put".
source "$(dirname "$0")/../fixtures/sync.sh"
dir=$(fixture_tmpdir)

sync_setup 300 6
scim_ctl POST caps '{"bulk": false, "patch": false, "etag": true}' >/dev/null || fail "fixture caps switch"
[ "$(scim_req GET /ServiceProviderConfig >/dev/null; scim_body | json_get 'j.patch.supported + "/" + j.bulk.supported + "/" + j.etag.supported')" = false/false/true ] ||
	fail "fixture ServiceProviderConfig does not say no PATCH, no Bulk, ETags: $(scim_body)"
TARGET_BULK=true # asks for Bulk: the target's answer must win
agent_ports 1
sync_agent_config 1 "[\"1@${AGENT_RAFT[1]}\"]"
agent_start 1
st() { agent_status 1; }
synced() { [ "$(json_eval "$(st)" 'j.sync.state')" = idle ]; }
wait_until 120 synced || fail "initial sync did not finish: $(st)"
[ "$(scim_count Users)" = 300 ] || fail "expected 300 users, got $(scim_count Users)"
wait_until 30 sync_compare || sync_compare || fail "target differs from source after the initial sync"
caps=$(json_eval "$(st)" 'JSON.stringify(j.sync.target.capabilities)')
[ "$(json_eval "$(st)" 'const c=j.sync.target.capabilities; [c.discovered,c.patch,c.bulk,c.etag,c.patch_style].join("/")')" = true/false/false/true/put ] ||
	fail "capabilities: $caps"
pass "initial sync of 300 users + 6 groups through PUT; target equals source; capabilities $caps"

mark=$(scim_ctl GET audit | json_get 'j.length ? j[j.length - 1].seq : 0')
slapd_ldapmodify >/dev/null <<LDIF || fail "member changes"
dn: cn=group0002,ou=groups,$SLAPD_BASE
changetype: modify
add: member
member: uid=user00299,ou=people,$SLAPD_BASE
-
delete: member
member: uid=user00001,ou=people,$SLAPD_BASE
LDIF
wait_until 60 sync_compare || sync_compare || fail "target differs from source after the member add/remove"
puts=$(scim_ctl GET "audit?since=$mark" | json_get 'j.filter(a => a.method === "PUT" && /^\/Groups\//.test(a.path) && a.status === 200).length')
((puts >= 1)) || fail "no group PUT for the member change"
pass "member add + remove written as $puts group PUT(s); target equals source"

audit=$(scim_ctl GET audit)
n_patch=$(json_get 'j.filter(a => a.method === "PATCH").length' <<<"$audit")
n_bulk=$(json_get 'j.filter(a => a.bulk || /Bulk/.test(a.path)).length' <<<"$audit")
n_put=$(json_get 'j.filter(a => a.method === "PUT" && /^\/Groups\//.test(a.path)).length' <<<"$audit")
[ "$n_patch" = 0 ] || fail "$n_patch PATCH requests reached a server without PATCH"
[ "$n_bulk" = 0 ] || fail "$n_bulk Bulk requests reached a server without Bulk"
if_match=$(scim_ctl GET stats | json_get 'j.ifMatch ?? 0')
((if_match >= n_put)) || fail "group PUTs without If-Match: $if_match If-Match for $n_put PUTs"
pass "audit: no PATCH, no /Bulk; $n_put group PUTs, all with If-Match"
