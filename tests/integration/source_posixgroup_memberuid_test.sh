#!/usr/bin/env bash
# RFC 2307 groups: posixGroup entries whose memberUid values are user names
# (source.groups.member_attribute: memberUid, member_value: uid). Three
# agents: every group lands with every member; memberUid adds and removals
# arrive; a memberUid naming no user yet resolves when that user appears --
# after a failover, so the new leader rebuilt the uid index and the waiting
# groups from the replicated state; a user renamed together with the group's
# memberUid value (modrdn, then the group, as smbldap-tools do) keeps its
# membership and its SCIM id.
source "$(dirname "$0")/../fixtures/sync.sh"
dir=$(fixture_tmpdir)
export LC_ALL=C

GEN_LDIF_SHAPE=posix
export GEN_LDIF_SHAPE
sync_setup 20 3
[ -n "${SLAPD_URL:-}" ] || fail "slapd did not start"
GROUP_FILTER="(objectClass=posixGroup)" GROUP_MEMBER_ATTRIBUTE=memberUid GROUP_MEMBER_VALUE=uid
export GROUP_FILTER GROUP_MEMBER_ATTRIBUTE GROUP_MEMBER_VALUE
sync_start_cluster 3
wait_until 15 ready_leader 1 2 3 || fail "no leader"

members_of() { scim_ctl GET store | json_get "(()=>{const g=j.Groups.find(g=>g.displayName==='$1');if(!g)return 'no-group';const byId={};for(const u of j.Users)byId[u.id]=u.userName;return (g.members||[]).map(m=>byId[m.value]||'?').sort().join(',')})()"; }
members_are() { [ "$(members_of "$1")" = "$2" ]; }
users() { local s="" i; for i in "$@"; do s+="${s:+,}$(printf 'user%05d' "$i")"; done; echo "$s"; }
gmod() { # GROUP, then ldapmodify lines for it
	local g=$1; shift
	printf 'dn: cn=%s,ou=groups,%s\nchangetype: modify\n%s\n' "$g" "$SLAPD_BASE" "$(printf '%s\n' "$@")" | slapd_ldapmodify >/dev/null
}

# gen-ldif: group0001 has users 1..20, group0002 the odd ones, group0003 the even ones
wait_until 60 members_are group0001 "$(users $(seq 1 20))" || fail "group0001: $(members_of group0001); $(agent_status 1)"
wait_until 20 members_are group0002 "$(users $(seq 1 2 19))" || fail "group0002: $(members_of group0002)"
wait_until 20 members_are group0003 "$(users $(seq 2 2 20))" || fail "group0003: $(members_of group0003)"
pass "posixGroups land with every memberUid resolved to its user"

gmod group0002 "add: memberUid" "memberUid: user00002" || fail "add memberUid"
wait_until 20 members_are group0002 "$(users 1 2 $(seq 3 2 19))" || fail "memberUid add: $(members_of group0002)"
gmod group0002 "delete: memberUid" "memberUid: user00001" || fail "delete memberUid"
wait_until 20 members_are group0002 "$(users 2 $(seq 3 2 19))" || fail "memberUid removal: $(members_of group0002)"
pass "memberUid add and removal arrive"

# A memberUid naming no user (yet): the group waits for it. The add of
# user00001 in the same change is the marker that the group was planned.
gmod group0003 "add: memberUid" "memberUid: latecomer" "memberUid: user00001" || fail "add latecomer"
wait_until 20 members_are group0003 "$(users 1 $(seq 2 2 20))" || fail "group0003 with latecomer pending: $(members_of group0003)"
pass "a memberUid naming no user leaves the other members as they are"

# Failover: the new leader knows the uids and the waiting group only from
# the replicated state.
L=$(ready_leader 1 2 3)
agent_stop "$L" KILL
rest=(); for i in 1 2 3; do [ "$i" != "$L" ] && rest+=("$i"); done
wait_until 15 ready_leader "${rest[@]}" || fail "no new leader after killing $L"
slapd_ldapmodify <<LDIF >/dev/null || fail "add latecomer"
dn: uid=latecomer,ou=people,$SLAPD_BASE
changetype: add
objectClass: inetOrgPerson
objectClass: posixAccount
uid: latecomer
cn: Late Comer
sn: Comer
givenName: Late
uidNumber: 10999
gidNumber: 20000
homeDirectory: /home/latecomer
LDIF
wait_until 30 members_are group0003 "latecomer,$(users 1 $(seq 2 2 20))" || fail "latecomer not resolved on the new leader: $(members_of group0003); $(agent_status "${rest[0]}")"
gmod group0002 "add: memberUid" "memberUid: user00004" || fail "add memberUid after failover"
wait_until 20 members_are group0002 "$(users 2 $(seq 3 2 19) 4 | tr ',' '\n' | sort | paste -sd,)" || fail "memberUid add after failover: $(members_of group0002)"
pass "after a failover: a waiting memberUid resolves when its user appears, and uids still resolve"

# Rename user00006 -> renamed06 and the group's value with it (two changes,
# as smbldap-usermod -r does). The user keeps its SCIM id; the group lists it.
id_of() { scim_ctl GET store | json_get "(j.Users.find(u=>u.userName==='$1')||{}).id||'none'"; }
old_id=$(id_of user00006)
[ "$old_id" != none ] || fail "user00006 not exported"
slapd_ldapmodify <<LDIF >/dev/null || fail "modrdn user00006"
dn: uid=user00006,ou=people,$SLAPD_BASE
changetype: modrdn
newrdn: uid=renamed06
deleteoldrdn: 1
LDIF
gmod group0003 "delete: memberUid" "memberUid: user00006" "-" "add: memberUid" "memberUid: renamed06" || fail "rename in group0003"
want3=$(echo "latecomer,renamed06,$(users 1 $(seq 2 2 20))" | tr ',' '\n' | grep -vx user00006 | sort | paste -sd,)
wait_until 30 members_are group0003 "$want3" || fail "renamed member: $(members_of group0003), want $want3"
[ "$(id_of renamed06)" = "$old_id" ] || fail "renamed user has id $(id_of renamed06), was $old_id"
pass "a user renamed with its memberUid keeps the membership and its id"

# A group that still names the old uid (group0001): user00006 names nobody,
# and the renamed user has left it (docs/sources.md, "Renames"); its next
# change keeps it so.
wait_until 20 members_are group0001 "$(users $(seq 1 5) $(seq 7 20))" || fail "group0001 still names user00006 and keeps the renamed user: $(members_of group0001)"
gmod group0001 "delete: memberUid" "memberUid: user00020" || fail "edit group0001"
wait_until 20 members_are group0001 "$(users $(seq 1 5) $(seq 7 19))" || fail "group0001 after its change: $(members_of group0001)"
pass "a group still naming the old uid drops the renamed user at once, and after its next change"
