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

USERS=1000 NGROUPS=10 BIG=1000
ad_sync_setup $USERS $NGROUPS $BIG
for i in 1 2 3; do agent_ports $i; done
members="[\"1@${AGENT_RAFT[1]}\", \"2@${AGENT_RAFT[2]}\", \"3@${AGENT_RAFT[3]}\"]"
for i in 1 2 3; do ad_agent_config $i "$members"; done
for i in 1 2 3; do agent_start $i; done

wait_until 20 ready_leader 1 2 3 || fail "no leader"
L=$(ready_leader 1 2 3)
all() { [ "$(scim_count Users)" = $USERS ] && [ "$(scim_count Groups)" = $((NGROUPS + 1)) ] &&
	[ "$(ad_scim_group big 'names.length')" = $BIG ]; }
wait_until 60 all || fail "initial sync: $(scim_count Users) users, $(scim_count Groups) groups, big has $(ad_scim_group big 'names.length'): $(agent_status "$L")"
g42=$(ad_guid "CN=user00042,$SAMBA_PEOPLE")
[[ $g42 =~ ^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$ ]] || fail "guid of user00042: $g42"
[ "$(ad_scim_user "$g42" '[u.userName, u.name.familyName, u.emails[0].value, u.active].join(" ")')" = \
	"user00042 Liskov user00042@canopy.test true" ] || fail "user00042 in the target: $(ad_scim_user "$g42" 'JSON.stringify(u)')"
want5=$(printf 'user%05d,' $(seq 41 50) | sed 's/,$//')
wait_until 20 eval '[ "$(ad_scim_group group0005 "names.sort().join()")" = "$want5" ]' ||
	fail "group0005 members: $(ad_scim_group group0005 'names.sort().join(",")')"
nodes=$(scim_ctl GET audit | json_get '[...new Set(j.filter(a=>a.status<300).map(a=>a.node))].join(",")')
[ "$nodes" = "$L" ] || fail "writes came from nodes $nodes, only leader $L should export"
pass "initial DirSync: $USERS users (externalId = objectGUID, e.g. $g42), $((NGROUPS + 1)) groups, big with $BIG members, from leader $L only"

lat=()
# change DN-or-anchor EXPR-on-target: run the LDIF on stdin, wait for EXPR,
# record change -> first audit write of ANCHOR
change() {
	local anchor=$1 what=$2 expr=$3 t0 t1
	t0=$(now_ms)
	samba_ldapmodify >/dev/null || fail "$what: ldapmodify"
	wait_until 20 eval "$expr" || fail "$what: not in the target within 20 s"
	if [ -n "$anchor" ] && t1=$(ad_audit_ms "$anchor" "$t0"); then
		lat+=($((t1 - t0)))
		echo "info: $what: change -> SCIM write $((t1 - t0)) ms"
	fi
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
t1=$(ad_audit_ms "$g44" "$t0") && lat+=($((t1 - t0))) && echo "info: move out of scope: change -> SCIM write $((t1 - t0)) ms"
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
t1=$(ad_audit_ms "$g46" "$t0") && lat+=($((t1 - t0))) && echo "info: delete: change -> SCIM write $((t1 - t0)) ms"
want5=$(printf 'user%05d,' 41 42 43 45 47 48 49 50 | sed 's/,$//')
isg group0005 'names.sort().join(",")' "$want5" || fail "group0005 after the delete: $(ad_scim_group group0005 'names.sort().join(",")')"
pass "delete: user00046 gone from Users and from group0005 (which the DC did not report)"

gbig=$(ad_guid "CN=big,$SAMBA_GROUPS")
n_before=$(scim_ctl GET audit | json_get 'j.length')
# (user00044 moved out and user00046 was deleted before: BIG - 2 members)
change "$gbig" "big: remove user00001 + user00002" \
	"isg big '[names.length, names.includes(\"user00001\"), names.includes(\"user00002\")].join(\" \")' '$((BIG - 4)) false false'" <<EOF
dn: CN=big,$SAMBA_GROUPS
changetype: modify
delete: member
member: CN=user00001,$SAMBA_PEOPLE
member: CN=user00002,$SAMBA_PEOPLE
EOF
samba_ldapmodify >/dev/null <<EOF || fail "re-add user00002"
dn: CN=big,$SAMBA_GROUPS
changetype: modify
add: member
member: CN=user00002,$SAMBA_PEOPLE
EOF
wait_until 20 isg big '[names.length, names.includes("user00001"), names.includes("user00002")].join(" ")' "$((BIG - 3)) false true" ||
	fail "big after the member changes: $(ad_scim_group big '[names.length, names.includes("user00001"), names.includes("user00002")].join(" ")')"
pass "member add/remove on the $BIG-member group: exactly those members changed in the target"

# the leader's DirSync requests: the agent never re-read the big group
writes=$(scim_ctl GET audit | json_get "j.slice($n_before).filter(a => a.status < 300).length")
[ "$writes" -le 6 ] || fail "member changes on big cost $writes writes"

sorted=$(printf '%s\n' "${lat[@]}" | sort -n)
n=${#lat[@]}
echo "info: change -> target latency over $n changes (ms): min $(head -n1 <<<"$sorted") median $(sed -n "$(((n + 1) / 2))p" <<<"$sorted") max $(tail -n1 <<<"$sorted") (all: $(tr '\n' ' ' <<<"$sorted"))"
[ "$n" -ge 8 ] || fail "only $n latencies measured"
pass "Active Directory source: initial sync and every change kind in the target"
