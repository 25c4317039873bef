#!/usr/bin/env bash
# The openldap source (any RFC 4533 server) against 389 Directory Server's
# content synchronization plugin, three agents: the initial sync of 200 users
# and 10 groups; then add, modify, member add/remove, rename (modrdn), move
# out of scope and delete each reach the target; the leader is killed with
# SIGKILL during a stream of changes (adds, modifies, deletes, renames, moves
# out of scope, member adds) and another agent finishes it: the
# target equals the directory as mapped (anchors: nsUniqueId, see 389ds.sh)
# and the SCIM audit log has no object created twice.
# Skipped (77) when 389-ds-base is missing, unless CANOPY_REQUIRE_389DS is set.
source "$(dirname "$0")/../fixtures/sync.sh"
source "$(dirname "$0")/../fixtures/389ds.sh"
ds389_skip_if_missing
dir=$(fixture_tmpdir)

ds389_start 200 10
scim_start
pass "389 DS up in ${DS389_START_MS} ms (dscreate ${DS389_CREATE_MS} ms)"

users_are() { [ "$(scim_count Users)" = "$1" ]; }
groups_are() { [ "$(scim_count Groups)" = "$1" ]; }

sync_start_cluster 3
wait_until 15 ready_leader 1 2 3 || fail "no leader"
L=$(ready_leader 1 2 3)
wait_until 60 users_are 200 || fail "initial sync: $(scim_count Users) users; $(agent_status "$L")"
wait_until 30 groups_are 10 || fail "initial sync: $(scim_count Groups) groups"
wait_until 30 ds389_compare || ds389_compare || fail "target differs from 389 DS after the initial sync"
st=$(agent_status "$L")
[ "$(json_eval "$st" 'j.sync.cursor !== null')" = true ] || fail "no cursor committed: $st"
# 389 DS's cookie, read for people: "users: changenumber N (389 DS host:port); groups: ..."
[ "$(json_eval "$st" '/^users: changenumber \d+ \(389 DS localhost:\d+\); groups: changenumber \d+/.test(j.sync.cursor_readable)')" = true ] ||
	fail "cursor_readable: $(json_eval "$st" 'j.sync.cursor_readable')"
pass "initial sync from 389 DS: 200 users + 10 groups, target equals source (leader $L)"

# --- live changes ------------------------------------------------------------
has_user() { [ "$(scim_ctl GET store | json_get "j.Users.some(u=>u.userName==='$1')")" = true ]; }
no_user() { [ "$(scim_ctl GET store | json_get "j.Users.some(u=>u.userName==='$1')")" = false ]; }
display_is() { [ "$(scim_ctl GET store | json_get "(j.Users.find(u=>u.userName==='$1')||{}).displayName")" = "$2" ]; }
member_of() {
	scim_ctl GET store | json_get "(()=>{const u=j.Users.find(u=>u.userName==='$2');const g=j.Groups.find(g=>g.displayName==='$1');return !!(u&&g&&(g.members||[]).some(m=>m.value===u.id));})()"
}
is_member() { [ "$(member_of "$1" "$2")" = true ]; }
not_member() { [ "$(member_of "$1" "$2")" = false ]; }
P="ou=people,$DS389_BASE"

slapd_ldapmodify <<LDIF >/dev/null || fail "add"
dn: uid=newbie,$P
changetype: add
objectClass: inetOrgPerson
uid: newbie
cn: New Bie
givenName: New
sn: Bie
mail: newbie@example.com
LDIF
wait_until 20 has_user newbie || fail "add did not reach the target"
slapd_ldapmodify <<LDIF >/dev/null || fail "modify"
dn: uid=newbie,$P
changetype: modify
replace: sn
sn: Changed
LDIF
wait_until 20 display_is newbie "New Changed" || fail "modify did not reach the target"
slapd_ldapmodify <<LDIF >/dev/null || fail "member add"
dn: cn=group0010,ou=groups,$DS389_BASE
changetype: modify
add: member
member: uid=newbie,$P
LDIF
wait_until 20 is_member group0010 newbie || fail "member add did not reach the target"
slapd_ldapmodify <<LDIF >/dev/null || fail "member remove"
dn: cn=group0010,ou=groups,$DS389_BASE
changetype: modify
delete: member
member: uid=newbie,$P
LDIF
wait_until 20 not_member group0010 newbie || fail "member remove did not reach the target"
id_before=$(scim_ctl GET store | json_get "j.Users.find(u=>u.userName==='newbie').id")
slapd_ldapmodify <<LDIF >/dev/null || fail "modrdn"
dn: uid=newbie,$P
changetype: modrdn
newrdn: uid=renamed
deleteoldrdn: 1
LDIF
wait_until 20 has_user renamed || fail "rename did not reach the target"
[ "$(scim_ctl GET store | json_get "j.Users.find(u=>u.userName==='renamed').id")" = "$id_before" ] ||
	fail "rename created a new object"
slapd_ldapmodify <<LDIF >/dev/null || fail "move"
dn: uid=renamed,$P
changetype: modrdn
newrdn: uid=renamed
deleteoldrdn: 1
newsuperior: ou=disabled,$DS389_BASE
LDIF
wait_until 20 no_user renamed || fail "move out of scope did not reach the target"
slapd_ldapmodify <<LDIF >/dev/null || fail "delete"
dn: uid=user00007,$P
changetype: delete
LDIF
wait_until 20 no_user user00007 || fail "delete did not reach the target"
wait_until 20 ds389_compare || ds389_compare || fail "target differs from 389 DS after the changes"
pass "add, modify, member add/remove, rename, move out of scope, delete reached the target"

# --- a leader SIGKILL during a stream of changes ------------------------------
L=$(ready_leader 1 2 3) || fail "no ready leader before the stream"
writes_before=$(scim_writes)
{
	for i in $(seq 1 60); do
		printf 'dn: uid=stream%03d,%s\nchangetype: add\nobjectClass: inetOrgPerson\nuid: stream%03d\ncn: S %d\ngivenName: S\nsn: N%d\nmail: stream%03d@example.com\n\n' \
			"$i" "$P" "$i" "$i" "$i" "$i"
		printf 'dn: uid=user%05d,%s\nchangetype: modify\nreplace: sn\nsn: Streamed%d\n\n' "$((i + 10))" "$P" "$i"
		[ $((i % 10)) = 0 ] && printf 'dn: uid=user%05d,%s\nchangetype: delete\n\n' "$((i + 100))" "$P"
		[ $((i % 20)) = 0 ] && printf 'dn: uid=user%05d,%s\nchangetype: modrdn\nnewrdn: uid=user%05d\ndeleteoldrdn: 1\nnewsuperior: ou=disabled,%s\n\n' \
			"$((180 + i / 20))" "$P" "$((180 + i / 20))" "$DS389_BASE"
		[ $((i % 20)) = 5 ] && printf 'dn: uid=user%05d,%s\nchangetype: modrdn\nnewrdn: uid=moved%03d\ndeleteoldrdn: 1\n\n' \
			"$((190 + i / 20))" "$P" "$i"
		[ $((i % 15)) = 0 ] && printf 'dn: cn=group0003,ou=groups,%s\nchangetype: modify\nadd: member\nmember: uid=stream%03d,%s\n\n' \
			"$DS389_BASE" "$i" "$P"
	done
} >"$dir/stream.ldif"
# Slow the target down so the kill lands inside the stream, not after it.
scim_fault '{"delayMs":150,"count":-1}'
slapd_ldapmodify -c -f "$dir/stream.ldif" >"$dir/stream.out" 2>&1 &
writer=$!
some() { [ "$(scim_writes)" -ge $((writes_before + 20)) ]; }
wait_until 30 some || fail "the stream did not start to reach the target"
agent_stop "$L" KILL
killed_at=$(($(scim_writes) - writes_before))
[ "$killed_at" -lt 100 ] || fail "the leader was killed after $killed_at stream writes (of about 140): not during the stream"
rest=(); for i in 1 2 3; do [ "$i" != "$L" ] && rest+=("$i"); done
wait_until 15 ready_leader "${rest[@]}" || fail "no new leader after killing $L"
N=$(ready_leader "${rest[@]}")
scim_fault '{}'
wait "$writer" || fail "ldapmodify of the stream failed: $(tail -3 "$dir/stream.out")"
pass "leader $L killed after $killed_at stream writes (of about 140); node $N leads"
[ "$(ds389_search -b "$P" '(uid=stream060)' 1.1 | grep -c '^dn:')" = 1 ] || fail "the stream did not reach 389 DS"
wait_until 60 ds389_compare || ds389_compare || fail "target differs from 389 DS after the failover"
wait_until 20 has_user stream060 || fail "stream060 missing"
pass "node $N finished the stream: target equals source"

dup=$(scim_ctl GET audit | json_get '(()=>{const c={};let d=0;
  for (const a of j.filter(a=>a.status<300&&a.method==="POST"&&a.status===201)) { if (c[a.externalId]) d++; c[a.externalId]=1; }
  return d;})()')
[ "$dup" = 0 ] || fail "$dup objects created twice in the audit log"
pass "audit: no object created twice"
