#!/usr/bin/env bash
# A member renamed while its groups keep the old DN (a directory without
# referential integrity: 389 DS by default, OpenLDAP without the refint
# overlay) is no longer a member: the old DN names nothing. The renamed user
# leaves those groups in the target at once -- not at the group's next change --
# keeps its SCIM id, and an entry that later takes the old DN becomes the
# member. A rename that rewrites the group's value too (as refint does) keeps
# the membership. TARGET_NESTED_GROUPS picks native (default) or flatten
# (sync_member_renamed_away_flatten_test.sh), where the renamed user also leaves
# every group above.
source "$(dirname "$0")/../fixtures/sync.sh"
dir=$(fixture_tmpdir)
export LC_ALL=C
mode=${TARGET_NESTED_GROUPS:-native}
export TARGET_NESTED_GROUPS=$mode

# gen-ldif, 20 users, 3 groups: group0001 has users 1..20, group0002 the odd
# ones and (nested) group0003, group0003 the even ones.
sync_setup 20 3 1
sync_start_cluster 1
wait_until 15 ready_leader 1 || fail "no leader"

cmp_args=()
[ "$mode" = flatten ] && cmp_args=(--nested flatten)
compare() {
	sync_source_ldif "$dir/ldap.ldif" && scim_ctl GET store >"$dir/store.json" &&
		node "$CANOPY_SOURCE_DIR/tests/fixtures/compare.js" "${cmp_args[@]}" "$dir/ldap.ldif" "$dir/store.json"
}
members_of() { scim_ctl GET store | json_get "(()=>{const g=j.Groups.find(g=>g.displayName==='$1');if(!g)return 'no-group';const byId={};for(const r of j.Users.concat(j.Groups))byId[r.id]=r.userName||r.displayName;return (g.members||[]).map(m=>byId[m.value]||'?').sort().join(',')})()"; }
has_member() { members_of "$1" | tr ',' '\n' | grep -qx "$2"; }
lacks_member() { ! has_member "$@"; }
id_of() { scim_ctl GET store | json_get "(j.Users.find(u=>u.userName==='$1')||{}).id||'none'"; }
P="ou=people,$SLAPD_BASE"

wait_until 60 compare >/dev/null || { compare; fail "initial sync: target differs; $(agent_status 1)"; }
has_member group0002 user00003 || fail "group0002 lacks user00003 at start: $(members_of group0002)"
pass "initial sync ($mode): groups equal the directory"

# --- renamed away: the groups keep uid=user00003 ---------------------------
id3=$(id_of user00003)
slapd_ldapmodify <<LDIF >/dev/null || fail "modrdn user00003"
dn: uid=user00003,$P
changetype: modrdn
newrdn: uid=renamed03
deleteoldrdn: 1
LDIF
wait_until 20 lacks_member group0002 renamed03 || fail "renamed03 still in group0002: $(members_of group0002)"
wait_until 20 lacks_member group0001 renamed03 || fail "renamed03 still in group0001: $(members_of group0001)"
[ "$(id_of renamed03)" = "$id3" ] || fail "the renamed user has id $(id_of renamed03), was $id3"
compare || fail "target differs after the rename"
pass "a user renamed while its groups keep the old DN leaves them at once (same id)"

# --- the old DN taken by a new entry: it is the member now -------------------
slapd_ldapmodify <<LDIF >/dev/null || fail "add uid=user00003"
dn: uid=user00003,$P
changetype: add
objectClass: inetOrgPerson
uid: user00003
cn: New Three
givenName: New
sn: Three
mail: new3@example.com
LDIF
wait_until 20 has_member group0002 user00003 || fail "the new user00003 is not in group0002: $(members_of group0002)"
wait_until 20 has_member group0001 user00003 || fail "the new user00003 is not in group0001: $(members_of group0001)"
[ "$(id_of user00003)" != "$id3" ] || fail "the new entry took the renamed user's id"
lacks_member group0002 renamed03 || fail "renamed03 came back to group0002"
compare || fail "target differs after the old DN was taken"
pass "an entry that takes the old DN becomes the member"

# --- refint-style: the rename and the group's new value together -------------
slapd_ldapmodify <<LDIF >/dev/null || fail "modrdn user00005 + group0002"
dn: uid=user00005,$P
changetype: modrdn
newrdn: uid=renamed05
deleteoldrdn: 1

dn: cn=group0002,ou=groups,$SLAPD_BASE
changetype: modify
delete: member
member: uid=user00005,$P
-
add: member
member: uid=renamed05,$P
LDIF
wait_until 20 lacks_member group0001 renamed05 || fail "renamed05 still in group0001: $(members_of group0001)"
wait_until 20 has_member group0002 renamed05 || fail "renamed05 not in group0002: $(members_of group0002)"
wait_until 10 compare >/dev/null || { compare; fail "target differs after a rename with its group value"; }
pass "a rename whose group value follows keeps that membership, and leaves the group that kept the old DN"

# --- moved out of scope and back: deleted, then created anew -----------------
# (the groups keep uid=user00009 all along: no referential integrity)
slapd_ldapmodify <<LDIF >/dev/null || fail "move user00009 out of scope"
dn: uid=user00009,$P
changetype: modrdn
newrdn: uid=user00009
deleteoldrdn: 1
newsuperior: ou=disabled,$SLAPD_BASE
LDIF
gone() { [ "$(id_of user00009)" = none ]; }
wait_until 20 gone || fail "user00009 moved out of scope is still in the target"
slapd_ldapmodify <<LDIF >/dev/null || fail "move user00009 back"
dn: uid=user00009,ou=disabled,$SLAPD_BASE
changetype: modrdn
newrdn: uid=user00009
deleteoldrdn: 1
newsuperior: $P
LDIF
wait_until 20 has_member group0002 user00009 || fail "user00009, back in scope, is not in group0002 again: $(members_of group0002)"
wait_until 20 has_member group0001 user00009 || fail "user00009, back in scope, is not in group0001 again: $(members_of group0001)"
wait_until 10 compare >/dev/null || { compare; fail "target differs after a move out of scope and back"; }
pass "a member moved out of scope and back is a member again (created anew, its groups unchanged)"
