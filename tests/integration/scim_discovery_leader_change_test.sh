#!/usr/bin/env bash
# Discovery runs again on each change of leader: three agents export to a
# SCIM server that supports PATCH; the server then stops supporting it (its
# /ServiceProviderConfig says so, PATCH answers 501) and leadership moves.
# The new leader reads the capabilities before writing: its status says
# patch false / patch_style put before any write, a member change after the
# move goes out as GET + PUT, and no PATCH reaches the server (not even one
# answered 501: canopy did not have to learn it the hard way).
source "$(dirname "$0")/../fixtures/sync.sh"
dir=$(fixture_tmpdir)

sync_setup 20 2
sync_start_cluster 3
users_are() { [ "$(scim_count Users)" = "$1" ]; }
wait_until 60 users_are 20 || fail "initial sync: $(scim_count Users) users"
wait_until 30 idle_leader 1 2 3 || fail "no idle leader"
old=$(idle_leader 1 2 3)
style_of() { json_eval "$(agent_status "$1")" 'j.sync.target && j.sync.target.capabilities ? j.sync.target.capabilities.patch_style : null'; }
[ "$(style_of "$old")" = standard ] || fail "leader $old: patch_style $(style_of "$old"), expected standard"
term0=$(json_eval "$(agent_status "$old")" 'j.term')
pass "leader $old discovered PATCH: patch_style standard"

scim_ctl POST caps '{"patch": false}' >/dev/null || fail "fixture caps switch"
mark=$(scim_ctl GET audit | json_get 'j.length ? j[j.length - 1].seq : 0')
transfer() { "$CANOPYCTL" --server "${AGENT_CTL[$old]}" cluster transfer; }
wait_until 10 transfer || fail "cluster transfer: $(transfer 2>&1)"
new_leader() {
	local i
	for i in 1 2 3; do
		[ "$(json_eval "$(agent_status "$i" 2>/dev/null || echo '{}')" "j.role === 'leader' && j.term > $term0 && j.sync.target && j.sync.target.capabilities && j.sync.target.capabilities.discovered")" = true ] &&
			{ echo "$i"; return 0; }
	done
	return 1
}
wait_until 30 new_leader || fail "no new leader with discovered capabilities"
new=$(new_leader)
caps=$(json_eval "$(agent_status "$new")" 'JSON.stringify(j.sync.target.capabilities)')
[ "$(json_eval "$(agent_status "$new")" 'const c=j.sync.target.capabilities; c.patch + "/" + c.patch_style')" = false/put ] ||
	fail "new leader $new: $caps"
pass "leader $old -> $new: discovered again before writing: $caps"

slapd_ldapmodify >/dev/null <<LDIF || fail "member change"
dn: cn=group0002,ou=groups,$SLAPD_BASE
changetype: modify
delete: member
member: uid=user00020,ou=people,$SLAPD_BASE
LDIF
wait_until 60 sync_compare || sync_compare || fail "target differs from source after the member change"
after=$(scim_ctl GET "audit?since=$mark")
n_patch=$(json_get 'j.filter(a => a.method === "PATCH").length' <<<"$after")
n_put=$(json_get 'j.filter(a => a.method === "PUT" && /^\/Groups\//.test(a.path) && a.status === 200).length' <<<"$after")
[ "$n_patch" = 0 ] || fail "$n_patch PATCH requests after the change of leader"
((n_put >= 1)) || fail "no group PUT for the member change"
pass "member change by the new leader: $n_put group PUT, no PATCH; target equals source"
