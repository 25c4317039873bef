#!/usr/bin/env bash
# Group-based scoping (source.users.member_of) with RFC 2307 groups: the
# scope group is a posixGroup whose memberUid values name users by uid.
# Users not exported yet are in scope by their uid alone (the group cannot
# give their DN): only the scope group's users are provisioned; a memberUid
# added brings its user in, one removed deprovisions it.
source "$(dirname "$0")/../fixtures/sync.sh"
dir=$(fixture_tmpdir)
export LC_ALL=C

GEN_LDIF_SHAPE=posix
export GEN_LDIF_SHAPE
sync_setup 12 3
[ -n "${SLAPD_URL:-}" ] || fail "slapd did not start"
GROUP_FILTER="(objectClass=posixGroup)" GROUP_MEMBER_ATTRIBUTE=memberUid GROUP_MEMBER_VALUE=uid
USER_MEMBER_OF="cn=group0002,ou=groups,$SLAPD_BASE"
export GROUP_FILTER GROUP_MEMBER_ATTRIBUTE GROUP_MEMBER_VALUE USER_MEMBER_OF
agent_ports 1
sync_agent_config 1 "[\"1@${AGENT_RAFT[1]}\"]"
agent_start 1

users() { local i; for i in "$@"; do printf 'user%05d\n' "$i"; done | sort | paste -sd,; }
user_names() { scim_ctl GET store | json_get 'j.Users.map(u=>u.userName).sort().join(",")'; }
users_are() { [ "$(user_names)" = "$1" ]; }
members_of() { scim_ctl GET store | json_get "(()=>{const g=j.Groups.find(g=>g.displayName==='$1');if(!g)return 'no-group';const byId={};for(const u of j.Users)byId[u.id]=u.userName;return (g.members||[]).map(m=>byId[m.value]||'?').sort().join(',')})()"; }
members_are() { [ "$(members_of "$1")" = "$2" ]; }
gmod() { # GROUP, then ldapmodify lines for it
	local g=$1; shift
	printf 'dn: cn=%s,ou=groups,%s\nchangetype: modify\n%s\n' "$g" "$SLAPD_BASE" "$(printf '%s\n' "$@")" | slapd_ldapmodify >/dev/null
}

# gen-ldif: group0002 has the odd users, group0003 the even ones
wait_until 60 users_are "$(users $(seq 1 2 11))" || fail "in-scope users: $(user_names); $(agent_status 1)"
wait_until 20 members_are group0002 "$(users $(seq 1 2 11))" || fail "group0002: $(members_of group0002)"
wait_until 20 members_are group0003 "" || fail "group0003 lists out-of-scope users: $(members_of group0003)"
pass "only the users the scope group's memberUid values name are provisioned"

gmod group0002 "add: memberUid" "memberUid: user00004" || fail "add memberUid"
wait_until 30 users_are "$(users $(seq 1 2 11) 4)" || fail "user00004 not brought into scope: $(user_names)"
wait_until 20 members_are group0003 "user00004" || fail "group0003 after user00004 entered: $(members_of group0003)"
pass "a memberUid added to the scope group brings its user in"

gmod group0002 "delete: memberUid" "memberUid: user00001" || fail "delete memberUid"
wait_until 30 users_are "$(users $(seq 3 2 11) 4)" || fail "user00001 not deprovisioned: $(user_names)"
pass "a memberUid removed from the scope group deprovisions its user"
