#!/usr/bin/env bash
# 389 DS resumes a content synchronization session from a cookie whose next
# changes its retro changelog has trimmed by sending what is left, without
# e-syncRefreshRequired (the quirk in sync/source/openldap_sync.c). The agent
# is stopped, a modify, a delete and an add are made, the changelog forgets
# the first two (2 s max age, trimmed every second) and the agent comes back:
# it must see from the root DSE's firstchangenumber that its cookie is too
# old and refresh in full, so the modify and the delete reach the target too.
# Skipped (77) when 389-ds-base is missing, unless CANOPY_REQUIRE_389DS is set.
source "$(dirname "$0")/../fixtures/sync.sh"
source "$(dirname "$0")/../fixtures/389ds.sh"
ds389_skip_if_missing

DS389_CHANGELOG_MAXAGE=2s DS389_CHANGELOG_TRIM_S=1 ds389_start 50 3
scim_start
agent_ports 1
sync_agent_config 1 "[\"1@${AGENT_RAFT[1]}\"]"
agent_start 1
users_are() { [ "$(scim_count Users)" = "$1" ]; }
wait_until 60 users_are 50 || fail "initial sync: $(scim_count Users) users"
wait_until 30 ds389_compare || ds389_compare || fail "target differs from 389 DS after the initial sync"
idle() { [ "$(json_eval "$(agent_status 1)" 'j.sync.state')" = idle ]; }
wait_until 30 idle || fail "agent not idle: $(agent_status 1)"
seen=$(ds389_root_number lastchangenumber)
[ -n "$seen" ] || fail "the root DSE has no lastchangenumber (retro changelog off?)"
agent_stop 1 TERM
pass "initial sync done; agent stopped with the changelog at change $seen"

P="ou=people,$DS389_BASE"
slapd_ldapmodify <<LDIF >/dev/null || fail "changes"
dn: uid=user00001,$P
changetype: modify
replace: sn
sn: Trimmed

dn: uid=user00002,$P
changetype: delete

dn: uid=afterwards,$P
changetype: add
objectClass: inetOrgPerson
uid: afterwards
cn: After Wards
givenName: After
sn: Wards
LDIF
# The positive marker: the changelog no longer holds the change after the
# agent's cookie (it keeps the newest change only).
trimmed() { local f; f=$(ds389_root_number firstchangenumber) && [ -n "$f" ] && [ "$f" -gt $((seen + 1)) ]; }
wait_secs 30 trimmed || fail "the changelog was not trimmed: firstchangenumber $(ds389_root_number firstchangenumber)"
pass "changelog trimmed: it starts at $(ds389_root_number firstchangenumber), the agent's cookie is at $seen"

agent_start 1
has_user() { [ "$(scim_ctl GET store | json_get "j.Users.some(u=>u.userName==='$1')")" = true ]; }
wait_until 30 has_user afterwards || fail "the add after the trimmed changes did not arrive"
wait_until 30 ds389_compare || ds389_compare ||
	fail "target differs from 389 DS: changes trimmed from the changelog were lost"
pass "the modify and the delete the changelog forgot reached the target (full refresh)"
