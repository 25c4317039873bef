#!/usr/bin/env bash
# source.kind ldap-poll against a slapd WITHOUT syncprov (no RFC 4533): three
# agents poll every second with a full read every 3rd poll. The initial sync
# of 100 users + 10 groups makes the target equal the source; an add, a
# modify, a rename (modrdn) and a member change each arrive within about one
# poll interval (latencies printed); a delete arrives within one full-read
# period; two modifies of one entry within the same second both land, the
# second by a delta poll (the same-second set); a leader killed while changes
# flow loses nothing and creates nothing twice (SCIM audit log), and the
# target equals the source at the end.
source "$(dirname "$0")/../fixtures/sync.sh"
dir=$(fixture_tmpdir)

SLAPD_NO_SYNCPROV=1 sync_setup 100 10
# the directory really has no content synchronization
if ldapsearch -x -LLL -H "$SLAPD_URL" -D "$SLAPD_ADMIN_DN" -y "$SLAPD_PW_FILE" -b "$SLAPD_BASE" -E '!sync=ro' \
	'(uid=user00001)' dn >/dev/null 2>&1; then
	fail "slapd answered an RFC 4533 search: syncprov is loaded"
fi

SOURCE_KIND=ldap-poll
SOURCE_EXTRA="  poll_interval_s: 1
  poll_full_every: 3"
export SOURCE_KIND SOURCE_EXTRA
t0=$EPOCHREALTIME
sync_start_cluster 3
wait_until 15 ready_leader 1 2 3 || fail "no leader"
L=$(ready_leader 1 2 3)
all() { [ "$(scim_count Users)" = "$1" ] && [ "$(scim_count Groups)" = "$2" ]; }
wait_until 30 all 100 10 || fail "initial sync: $(scim_count Users) users, $(scim_count Groups) groups; $(agent_status "$L")"
wait_until 20 sync_compare || sync_compare || fail "target differs from source after the initial sync"
pass "initial sync of 100 users + 10 groups by ldap-poll (leader $L): target equals source ($(awk "BEGIN{printf \"%.2f\", $EPOCHREALTIME-$t0}") s)"

st=$(agent_status "$L")
readable=$(json_eval "$st" 'j.sync.cursor_readable')
[[ "$readable" == "users: modifyTimestamp "*"Z (+"*" at that second); groups: modifyTimestamp "* ]] ||
	fail "cursor_readable: $readable"
pass "cursor_readable: $readable"

# --- live changes, each timed from the LDAP write to the SCIM store -----------
lat=()
measure() { # measure NAME START SECS CHECK-CMD...
	local name=$1 start=$2 secs=$3; shift 3
	wait_until "$secs" "$@" || fail "$name did not reach the target within $secs s"
	lat+=("$name $(awk "BEGIN{printf \"%d\", ($EPOCHREALTIME-$start)*1000}")")
}
display_is() { [ "$(scim_ctl GET store | json_get "(j.Users.find(u=>u.userName==='$1')||{}).displayName")" = "$2" ]; }
has_user() { [ "$(scim_ctl GET store | json_get "j.Users.some(u=>u.userName==='$1')")" = true ]; }
no_user() { [ "$(scim_ctl GET store | json_get "j.Users.some(u=>u.userName==='$1')")" = false ]; }
is_member() { # is_member GROUP UID
	[ "$(scim_ctl GET store | json_get "(()=>{const u=j.Users.find(u=>u.userName==='$2');const g=j.Groups.find(g=>g.displayName==='$1');return !!(u&&g&&(g.members||[]).some(m=>m.value===u.id));})()")" = true ]
}
# One poll interval (1 s), a full read of 110 entries that may come first,
# and the SCIM write: 3 s. A delete: one full-read period (3 polls) more.
ONE=3 FULL=6

s=$EPOCHREALTIME
slapd_ldapmodify <<LDIF >/dev/null
dn: uid=newbie,ou=people,$SLAPD_BASE
changetype: add
objectClass: inetOrgPerson
uid: newbie
cn: New Bie
givenName: New
sn: Bie
mail: newbie@example.com
LDIF
measure add "$s" $ONE has_user newbie

s=$EPOCHREALTIME
printf 'dn: uid=newbie,ou=people,%s\nchangetype: modify\nreplace: sn\nsn: Changed\n' "$SLAPD_BASE" | slapd_ldapmodify >/dev/null
measure modify "$s" $ONE display_is newbie "New Changed"

id_before=$(scim_ctl GET store | json_get "j.Users.find(u=>u.userName==='newbie').id")
s=$EPOCHREALTIME
printf 'dn: uid=newbie,ou=people,%s\nchangetype: modrdn\nnewrdn: uid=renamed\ndeleteoldrdn: 1\n' "$SLAPD_BASE" |
	slapd_ldapmodify >/dev/null
measure rename "$s" $ONE has_user renamed
[ "$(scim_ctl GET store | json_get "j.Users.find(u=>u.userName==='renamed').id")" = "$id_before" ] ||
	fail "the rename created a new object"

s=$EPOCHREALTIME
printf 'dn: cn=group0003,ou=groups,%s\nchangetype: modify\nadd: member\nmember: uid=renamed,ou=people,%s\n' \
	"$SLAPD_BASE" "$SLAPD_BASE" | slapd_ldapmodify >/dev/null
measure member-add "$s" $ONE is_member group0003 renamed

s=$EPOCHREALTIME
printf 'dn: uid=user00007,ou=people,%s\nchangetype: delete\n' "$SLAPD_BASE" | slapd_ldapmodify >/dev/null
measure delete "$s" $FULL no_user user00007

printf 'latency (ms, LDAP write -> visible in SCIM store; poll 1 s, full read every 3rd):'
printf ' %s;' "${lat[@]}"; echo
pass "add, modify, rename, member change within ${ONE} s; delete within ${FULL} s"

# --- two modifies of one entry within one second --------------------------------
# The first is written at the start of a second and must be delivered while
# that second lasts; the second is then written in the same second (checked on
# modifyTimestamp) and must arrive by a delta poll: no full read (which would
# repair a missed change) may come between the two. Attempts where the timing
# does not fit are retried; at least one must fit.
mts() { slapd_search -b "uid=user00042,ou=people,$SLAPD_BASE" -s base modifyTimestamp | sed -n 's/^modifyTimestamp: //p'; }
full_reads() { agent_logs "$L" | grep -c "ldap-poll: full read of users" || true; }
# curl + grep, not node: each check must take well under the second it races
sn_is() { scim_ctl GET store | grep -qF "\"familyName\":\"$1\""; }
fitted=0
for try in $(seq 1 30); do
	# wait for the start of a second
	while :; do
		f=${EPOCHREALTIME#*.}
		[ "${f:0:1}" = 0 ] && break
		sleep 0.02
	done
	sec=$(date -u +%Y%m%d%H%M%S)
	n0=$(full_reads)
	printf 'dn: uid=user00042,ou=people,%s\nchangetype: modify\nreplace: sn\nsn: First%d\n' "$SLAPD_BASE" "$try" |
		slapd_ldapmodify >/dev/null
	wait_until $ONE sn_is "First$try" || fail "try $try: the first modify did not arrive"
	printf 'dn: uid=user00042,ou=people,%s\nchangetype: modify\nreplace: sn\nsn: Second%d\n' "$SLAPD_BASE" "$try" |
		slapd_ldapmodify >/dev/null
	m=$(mts)
	if [ "${m:0:14}" != "$sec" ]; then
		wait_until $FULL sn_is "Second$try" || fail "try $try: the second modify never arrived"
		continue # the second modify fell into the next second: not this case
	fi
	wait_until $ONE sn_is "Second$try" ||
		fail "try $try: the second modify within second $sec did not arrive by the next poll"
	if [ "$(full_reads)" = "$n0" ]; then
		fitted=$((fitted + 1))
		[ "$fitted" -ge 2 ] && break
	fi
done
[ "$fitted" -ge 1 ] || fail "no try had both modifies in one second with the first delivered in between"
pass "two modifies in one second both landed by delta polls ($fitted of $try tries fitted)"

# --- the leader is killed while changes flow ------------------------------------
for i in $(seq 1 30); do
	printf 'dn: uid=late%02d,ou=people,%s\nchangetype: add\nobjectClass: inetOrgPerson\nuid: late%02d\ncn: L %d\ngivenName: Late\nsn: N%d\n\n' \
		"$i" "$SLAPD_BASE" "$i" "$i" "$i"
done | slapd_ldapmodify >/dev/null
some() { [ "$(scim_count Users)" -gt 100 ]; }
wait_until 10 some || fail "the new users did not start to arrive"
agent_stop "$L" KILL
for i in $(seq 1 20); do
	printf 'dn: uid=user%05d,ou=people,%s\nchangetype: modify\nreplace: title\ntitle: after-kill\n\n' "$i" "$SLAPD_BASE"
done | slapd_ldapmodify >/dev/null
rest=(); for i in 1 2 3; do [ "$i" != "$L" ] && rest+=("$i"); done
wait_until 15 ready_leader "${rest[@]}" || fail "no new leader after killing $L"
N=$(ready_leader "${rest[@]}")
wait_until 30 all 130 10 || fail "after the kill: $(scim_count Users) users; $(agent_status "$N")"
wait_until 30 sync_compare || sync_compare || fail "target differs from source after the leader kill"
dup=$(scim_ctl GET audit | json_get '(()=>{const c={};let d=0;for(const a of j.filter(a=>a.method==="POST"&&a.status===201)){if(c[a.externalId])d++;c[a.externalId]=1;}return d;})()')
[ "$dup" = 0 ] || fail "$dup objects created twice"
pass "leader $L killed, node $N finished: target equals source, no duplicate create"
