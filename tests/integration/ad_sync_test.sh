#!/usr/bin/env bash
# The Active Directory source end to end: a Samba AD DC (LDAPS, its CA
# verified), three agents with source.kind ad, the SCIM server. The initial
# DirSync exports 1,000 users and 11 groups (one with 1,000 members). Then
# each change appears in the target, exactly: a modify, a rename (the member
# keeps its groups and can be added under its new DN), a move out of scope
# (deleted, and gone from its groups), a disable (userAccountControl 514 ->
# active false), a delete (gone from Users and from its group, which the DC
# does not report), and member add/remove on the 1,000-member group (no full
# re-read). poll_s is 30, so a change in the target within seconds came by
# change notification; the latency (change -> SCIM audit time) is printed.
source "$(dirname "$0")/../fixtures/ad_sync.sh"

# Under the sanitizers (build-asan, 2-3x slower) the point is memory errors,
# not scale: 1,000 and 1,000 there.
if build_sanitized; then scale=1000; else scale=5000; fi
USERS=${AD_USERS:-$scale} NGROUPS=10 BIG=${AD_BIG:-$scale}
ad_sync_setup $USERS $NGROUPS $BIG
for i in 1 2 3; do agent_ports $i; done
members="[\"1@${AGENT_RAFT[1]}\", \"2@${AGENT_RAFT[2]}\", \"3@${AGENT_RAFT[3]}\"]"
for i in 1 2 3; do ad_agent_config $i "$members"; done
for i in 1 2 3; do agent_start $i; done

wait_until 20 ready_leader 1 2 3 || fail "no leader"
L=$(ready_leader 1 2 3)
all() { [ "$(scim_count Users)" = $USERS ] && [ "$(scim_count Groups)" = $((NGROUPS + 1)) ] &&
	[ "$(ad_scim_group big 'names.length')" = $BIG ]; }
wait_until 120 all || fail "initial sync: $(scim_count Users) users, $(scim_count Groups) groups, big has $(ad_scim_group big 'names.length'): $(agent_status "$L")"
g42=$(ad_guid "CN=user00042,$SAMBA_PEOPLE")
[[ $g42 =~ ^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$ ]] || fail "guid of user00042: $g42"
[ "$(ad_scim_user "$g42" '[u.userName, u.name.familyName, u.emails[0].value, u.active].join(" ")')" = \
	"user00042 Liskov user00042@canopy.test true" ] || fail "user00042 in the target: $(ad_scim_user "$g42" 'JSON.stringify(u)')"
want5=$(printf 'user%05d,' $(seq 41 50) | sed 's/,$//')
wait_until 20 eval '[ "$(ad_scim_group group0005 "names.sort().join()")" = "$want5" ]' ||
	fail "group0005 members: $(ad_scim_group group0005 'names.sort().join(",")')"
# (on a loaded host the leader may change during the initial sync: then no
# object was created twice and no older term wrote after a newer one)
failover_audit_clean
nodes=$(scim_ctl GET audit | json_get '[...new Set(j.filter(a=>a.status<300).map(a=>a.node))].join(",")')
pass "initial DirSync: $USERS users (externalId = objectGUID, e.g. $g42), $((NGROUPS + 1)) groups, big with $BIG members, written by node(s) $nodes"

lat=() mlat=() mtgt=()
# record ANCHOR T0 WHAT [member]: change -> first audit write of ANCHOR
record() {
	local w
	w=$(ad_audit_ms "$1" "$2") || return 0
	set -- "$1" "$2" "$3" "${4:-}" $w
	lat+=($(($5 - $2)))
	[ "$4" = member ] && mlat+=($(($5 - $2))) && mtgt+=("$6")
	echo "info: $3: change -> SCIM write $(($5 - $2)) ms (of which the SCIM server's own time $6 ms)"
}
# change ANCHOR WHAT EXPR-on-target [member]: run the LDIF on stdin, wait for
# the write of ANCHOR in the audit file (not by polling the SCIM server, which
# would slow it down: GET /_test/store of 5,000 users takes it ~100 ms), then
# for EXPR, and record the latency
change() {
	local anchor=$1 what=$2 expr=$3 t0
	t0=$(now_ms)
	samba_ldapmodify >/dev/null || fail "$what: ldapmodify"
	[ -z "$anchor" ] || wait_until 20 ad_audit_ms "$anchor" "$t0" >/dev/null || fail "$what: no write of $anchor within 20 s"
	wait_until 20 eval "$expr" || fail "$what: not in the target within 20 s"
	[ -z "$anchor" ] || record "$anchor" "$t0" "$what" "${4:-}"
}
is() { [ "$(ad_scim_user "$1" "$2")" = "$3" ]; }
isg() { [ "$(ad_scim_group "$1" "$2")" = "$3" ]; }

change "$g42" "modify mail + givenName" "is $g42 '[u.emails[0].value, u.name.givenName].join(\" \")' 'grace@new.test Gracie'" <<EOF
dn: CN=user00042,$SAMBA_PEOPLE
changetype: modify
replace: mail
mail: grace@new.test
-
replace: givenName
givenName: Gracie
EOF
is "$g42" 'u.name.familyName + " " + u.userName' "Liskov user00042" || fail "modify lost the unchanged attributes: $(ad_scim_user "$g42" 'JSON.stringify(u)')"
pass "modify: mail and givenName changed, the attributes DirSync did not send kept"

for k in 51 52 53 54 55; do
	gk=$(ad_guid "CN=user000$k,$SAMBA_PEOPLE")
	change "$gk" "modify displayName of user000$k" "is $gk u.displayName 'Renamed $k'" <<EOF
dn: CN=user000$k,$SAMBA_PEOPLE
changetype: modify
replace: displayName
displayName: Renamed $k
EOF
done
pass "five more modifies, each in the target"

g43=$(ad_guid "CN=user00043,$SAMBA_PEOPLE")
samba_ldapmodify >/dev/null <<EOF || fail "rename user00043"
dn: CN=user00043,$SAMBA_PEOPLE
changetype: modrdn
newrdn: CN=user00043-renamed
deleteoldrdn: 1
EOF
change "" "add the renamed user to group0001" "isg group0001 'names.includes(\"user00043\")' true" <<EOF
dn: CN=group0001,$SAMBA_GROUPS
changetype: modify
add: member
member: CN=user00043-renamed,$SAMBA_PEOPLE
EOF
isg group0005 'names.includes("user00043")' true || fail "renamed user00043 left group0005"
is "$g43" u.userName user00043 || fail "renamed user00043: $(ad_scim_user "$g43" 'JSON.stringify(u)')"
pass "rename: user00043 keeps its anchor and group0005, and is added to group0001 under its new DN"

g44=$(ad_guid "CN=user00044,$SAMBA_PEOPLE")
t0=$(now_ms)
samba_ldapmodify >/dev/null <<EOF || fail "move user00044"
dn: OU=Moved,$SAMBA_BASE
changetype: add
objectClass: organizationalUnit

dn: CN=user00044,$SAMBA_PEOPLE
changetype: modrdn
newrdn: CN=user00044
deleteoldrdn: 1
newsuperior: OU=Moved,$SAMBA_BASE
EOF
gone44() { is "$g44" 'u === undefined' true && isg group0005 'names.includes("user00044")' false; }
wait_until 20 gone44 || fail "user00044 moved out of scope is still in the target: $(ad_scim_user "$g44" 'JSON.stringify(u)')"
record "$g44" "$t0" "move out of scope"
pass "move out of scope: user00044 deleted in the target and gone from group0005"

g45=$(ad_guid "CN=user00045,$SAMBA_PEOPLE")
change "$g45" "disable (UAC 514)" "is $g45 u.active false" <<EOF
dn: CN=user00045,$SAMBA_PEOPLE
changetype: modify
replace: userAccountControl
userAccountControl: 514
EOF
pass "disable: userAccountControl 514 -> active false"

g46=$(ad_guid "CN=user00046,$SAMBA_PEOPLE")
t0=$(now_ms)
samba_ldapdelete "CN=user00046,$SAMBA_PEOPLE" || fail "delete user00046"
gone46() { is "$g46" 'u === undefined' true && isg group0005 'names.includes("user00046")' false; }
wait_until 20 gone46 || fail "deleted user00046: $(ad_scim_user "$g46" 'JSON.stringify(u)'), group0005: $(ad_scim_group group0005 'names.join(",")')"
record "$g46" "$t0" "delete"
want5=$(printf 'user%05d,' 41 42 43 45 47 48 49 50 | sed 's/,$//')
isg group0005 'names.sort().join(",")' "$want5" || fail "group0005 after the delete: $(ad_scim_group group0005 'names.sort().join(",")')"
pass "delete: user00046 gone from Users and from group0005 (which the DC did not report)"

gbig=$(ad_guid "CN=big,$SAMBA_GROUPS")
n_before=$(scim_ctl GET audit | json_get 'j.length')
# has "LENGTH BOOL..." N...: big has LENGTH members and userN is in it or not
has() { isg big "[names.length, $(printf 'names.includes("user%05d"),' "${@:2}")].join(\" \")" "$1"; }
member() { # add|delete N: the LDIF of one member change on big
	printf 'dn: CN=big,%s\nchangetype: modify\n%s: member\nmember: CN=user%05d,%s\n' "$SAMBA_GROUPS" "$1" "$2" "$SAMBA_PEOPLE"
}
# (user00044 moved out and user00046 was deleted before: BIG - 2 members)
n=$((BIG - 2))
for k in 1 2 3 4 5; do
	n=$((n - 1))
	change "$gbig" "big: remove user0000$k" "has '$n false' $k" member < <(member delete $k)
done
for k in 2 4; do
	n=$((n + 1))
	change "$gbig" "big: add user0000$k back" "has '$n true' $k" member < <(member add $k)
done
has "$n false false false" 1 3 5 || fail "big: $(ad_scim_group big 'names.length') members after the single changes"
samba_ldapmodify >/dev/null <<EOF || fail "remove user00006 + user00007 at once"
dn: CN=big,$SAMBA_GROUPS
changetype: modify
delete: member
member: CN=user00006,$SAMBA_PEOPLE
member: CN=user00007,$SAMBA_PEOPLE
EOF
wait_until 20 has "$((n - 2)) false false true true" 6 7 2 4 ||
	fail "big after the member changes: $(ad_scim_group big '[names.length, names.includes("user00006"), names.includes("user00007")].join(" ")')"
pass "member adds/removes on the $BIG-member group: exactly those members changed in the target"

# the agent never re-read the big group (which would show as a PUT of the
# whole member list): only PATCHes of big (a retried PATCH after a lost
# commit is allowed: it is idempotent)
other=$(scim_ctl GET audit | json_get "j.slice($n_before).filter(a => a.status < 300 && !(a.method === 'PATCH' && a.externalId === '$gbig')).map(a => a.method + ' ' + a.path).join(', ')")
[ -z "$other" ] || fail "member changes on big wrote more than PATCHes of big: $other"

dist() { # NAME VALUES...: min median max
	local s n
	s=$(printf '%s\n' "${@:2}" | sort -n) n=$(($# - 1))
	echo "info: $1 over $n changes (ms): min $(head -n1 <<<"$s") median $(sed -n "$(((n + 1) / 2))p" <<<"$s") max $(tail -n1 <<<"$s") (all: $(tr '\n' ' ' <<<"$s"))"
}
dist "member change on big -> target" "${mlat[@]}"
dist "of which the SCIM server's own PATCH time" "${mtgt[@]}"
dist "change -> target, every kind" "${lat[@]}"
[ "${#lat[@]}" -ge 15 ] || fail "only ${#lat[@]} latencies measured"
pass "Active Directory source: initial sync and every change kind in the target"
