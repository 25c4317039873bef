#!/usr/bin/env bash
# groupOfUniqueNames: uniqueMember values are DNs with an optional unique
# identifier after them ("DN#'0101'B", RFC 4517 §3.3.21), set with
# source.groups.member_attribute: uniqueMember. Every member lands,
# including those whose value carries the suffix; adds and removals of
# values with and without it arrive.
source "$(dirname "$0")/../fixtures/sync.sh"
dir=$(fixture_tmpdir)
export LC_ALL=C

GEN_LDIF_SHAPE=unique
export GEN_LDIF_SHAPE
sync_setup 12 3
[ -n "${SLAPD_URL:-}" ] || fail "slapd did not start"
GROUP_FILTER="(objectClass=groupOfUniqueNames)" GROUP_MEMBER_ATTRIBUTE=uniqueMember
export GROUP_FILTER GROUP_MEMBER_ATTRIBUTE
agent_ports 1
sync_agent_config 1 "[\"1@${AGENT_RAFT[1]}\"]"
agent_start 1

members_of() { scim_ctl GET store | json_get "(()=>{const g=j.Groups.find(g=>g.displayName==='$1');if(!g)return 'no-group';const byId={};for(const u of j.Users)byId[u.id]=u.userName;return (g.members||[]).map(m=>byId[m.value]||'?').sort().join(',')})()"; }
members_are() { [ "$(members_of "$1")" = "$2" ]; }
users() { local i; for i in "$@"; do printf 'user%05d\n' "$i"; done | sort | paste -sd,; }
gmod() { # GROUP, then ldapmodify lines for it
	local g=$1; shift
	printf 'dn: cn=%s,ou=groups,%s\nchangetype: modify\n%s\n' "$g" "$SLAPD_BASE" "$(printf '%s\n' "$@")" | slapd_ldapmodify >/dev/null
}
P="ou=people,$SLAPD_BASE"

# the directory really holds the suffixed values (the fixture is what we think)
slapd_search -b "cn=group0001,ou=groups,$SLAPD_BASE" uniqueMember | grep -qxF "uniqueMember: uid=user00002,$P#'0101'B" ||
	fail "fixture: no suffixed uniqueMember in group0001"

# gen-ldif: group0001 has users 1..12, group0002 1,3,..,11, group0003 2,4,..,12;
# every value naming user00002 ends in #'0101'B
wait_until 60 members_are group0001 "$(users $(seq 1 12))" || fail "group0001: $(members_of group0001); $(agent_status 1)"
wait_until 20 members_are group0002 "$(users $(seq 1 2 11))" || fail "group0002: $(members_of group0002)"
wait_until 20 members_are group0003 "$(users $(seq 2 2 12))" || fail "group0003: $(members_of group0003)"
pass "groupOfUniqueNames land with every member, suffixed values included"

gmod group0002 "add: uniqueMember" "uniqueMember: uid=user00004,$P#'1'B" "uniqueMember: uid=user00006,$P" || fail "add uniqueMember"
wait_until 20 members_are group0002 "$(users $(seq 1 2 11) 4 6)" || fail "uniqueMember add: $(members_of group0002)"
gmod group0003 "delete: uniqueMember" "uniqueMember: uid=user00002,$P#'0101'B" || fail "delete suffixed uniqueMember"
wait_until 20 members_are group0003 "$(users $(seq 4 2 12))" || fail "suffixed uniqueMember removal: $(members_of group0003)"
gmod group0002 "delete: uniqueMember" "uniqueMember: uid=user00001,$P" || fail "delete uniqueMember"
wait_until 20 members_are group0002 "$(users $(seq 3 2 11) 4 6)" || fail "uniqueMember removal: $(members_of group0002)"
pass "uniqueMember adds and removals arrive, with and without the suffix"

# The same user named with and without a unique identifier is one member.
gmod group0003 "add: uniqueMember" "uniqueMember: uid=user00004,$P#'0'B" || fail "add second value for user00004"
gmod group0003 "add: uniqueMember" "uniqueMember: uid=user00001,$P" || fail "add marker"
wait_until 20 members_are group0003 "$(users 1 $(seq 4 2 12))" || fail "duplicate by suffix: $(members_of group0003)"
pass "one user named with and without the suffix is one member"
