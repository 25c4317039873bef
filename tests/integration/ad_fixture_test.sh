#!/bin/bash
# tests/integration/ad_fixture_test.sh -- checks the Samba AD DC fixture
# (tests/fixtures/samba.sh) against a real Samba DC: the cached template,
# LDAPS with the fixture's CA (and a wrong CA refused), StartTLS, seeding
# 1,000 users + 10 groups + a 5,000-member group, paged counts, DirSync (full,
# then incremental after a modify, a delete, a move and member changes, with
# and without LDAP_DIRSYNC_INCREMENTAL_VALUES), what an ordinary account may
# do with DirSync, change notification, a second forest on another loopback
# address, a restart, and that samba dies with a SIGKILLed test shell.
# docs/active-directory.md explains the DirSync answers asserted here.
#
# run: CANOPY_SOURCE_DIR=<repo root> bash tests/integration/ad_fixture_test.sh

SRC=${CANOPY_SOURCE_DIR:-$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)}
# shellcheck source-path=SCRIPTDIR source=../fixtures/samba.sh
. "$SRC/tests/fixtures/samba.sh"

for b in samba samba-tool ldapsearch ldapadd ldapmodify ldapdelete ldbsearch ldbmodify openssl \
	flock setpriv iconv base64 od awk; do
	command -v "$b" >/dev/null || fail "$b not installed (scripts/install-deps.sh)"
done
[ "$(id -u)" = 0 ] || fail "needs root (the DC listens on ports 389/636)"

USERS=1000
NGROUPS=10
BIG=5000
ALL='(|(objectClass=user)(objectClass=group))'
ATTRS=(name mail member isDeleted userAccountControl)

# entry_with LINE < LDIF: prints the LDIF block (entry) that has the line LINE
entry_with() {
	awk -v want="$1" 'BEGIN { RS = ""; FS = "\n" }
		{ for (i = 1; i <= NF; i++) if ($i == want) { print; exit } }'
}
# guid_of DN LDIF-FILE: the base64 objectGUID of DN's entry in the file
guid_of() {
	entry_with "dn: $1" <"$2" | sed -n 's/^objectGUID:: //p'
}
entries() { grep -c '^dn: ' || true; }

# --- template and start ------------------------------------------------------
samba_template || fail "samba_template"
echo "info: template ($SAMBA_DEFAULT_REALM): ${SAMBA_TEMPLATE_MS} ms (cached: $SAMBA_TEMPLATE_CACHED) in $SAMBA_TEMPLATE"
[ -f "$SAMBA_TEMPLATE/.ready" ] || fail "template not marked ready"
tmpl=$SAMBA_TEMPLATE
t_template=$SAMBA_TEMPLATE_MS t_cached=$SAMBA_TEMPLATE_CACHED
samba_template || fail "samba_template (second call)"
[ "$SAMBA_TEMPLATE_CACHED" = 1 ] && [ "$SAMBA_TEMPLATE" = "$tmpl" ] || fail "second samba_template did not reuse $tmpl"
pass "template provisioned once, reused by the second call (${SAMBA_TEMPLATE_MS} ms)"

samba_start || fail "samba_start"
DC1=$SAMBA_INSTANCE
t_start=$SAMBA_START_MS
echo "info: DC start (copy + certificate + samba up on LDAPS): ${SAMBA_START_MS} ms on $SAMBA_IP"
for v in SAMBA_IP SAMBA_URL SAMBA_LDAP_URL SAMBA_CA SAMBA_BASE SAMBA_ADMIN_DN SAMBA_ADMIN_PW SAMBA_PW_FILE \
	SAMBA_REALM SAMBA_DOMAIN SAMBA_PID SAMBA_DIR SAMBA_LOG SAMBA_START_MS; do
	[ -n "${!v:-}" ] || fail "$v not set"
done
[ "$SAMBA_BASE" = "DC=canopy,DC=test" ] || fail "SAMBA_BASE is $SAMBA_BASE"
[ "$SAMBA_REALM/$SAMBA_DOMAIN" = CANOPY.TEST/CANOPY ] || fail "realm/domain $SAMBA_REALM/$SAMBA_DOMAIN"
[ "$SAMBA_URL" = "ldaps://$SAMBA_IP" ] || fail "SAMBA_URL $SAMBA_URL"
[ "$(stat -c %a "$SAMBA_PW_FILE")" = 600 ] || fail "password file mode is not 0600"
[ "$(cat "$SAMBA_PW_FILE")" = "$SAMBA_ADMIN_PW" ] || fail "password file content"
[ "$(tail -c 1 "$SAMBA_PW_FILE" | od -An -c | tr -d ' ')" != '\n' ] || fail "password file ends with a newline"
[ "$(cat /proc/"$SAMBA_PID"/comm 2>/dev/null)" = samba ] || fail "SAMBA_PID $SAMBA_PID is not samba"
case $SAMBA_DIR in "$(fixture_tmpdir)"/*) ;; *) fail "SAMBA_DIR $SAMBA_DIR not under fixture_tmpdir" ;; esac
pass "DC for $SAMBA_REALM up on $SAMBA_URL (pid $SAMBA_PID) in ${SAMBA_START_MS} ms"

# --- TLS ---------------------------------------------------------------------
out=$(samba_search -b "" -s base defaultNamingContext supportedControl) || fail "rootDSE over ldaps: $out"
grep -qx "defaultNamingContext: $SAMBA_BASE" <<<"$out" || fail "rootDSE: $out"
for oid in 1.2.840.113556.1.4.841 1.2.840.113556.1.4.528 1.2.840.113556.1.4.417; do
	grep -qx "supportedControl: $oid" <<<"$out" || fail "control $oid not in supportedControl"
done
pass "LDAPS verified with SAMBA_CA; rootDSE names $SAMBA_BASE and DirSync, notification, show-deleted"

out=$(_samba_ldap ldapsearch -x -ZZ -LLL -H "$SAMBA_LDAP_URL" -D "$SAMBA_ADMIN_DN" -y "$SAMBA_PW_FILE" \
	-b "" -s base defaultNamingContext 2>&1) || fail "StartTLS on $SAMBA_LDAP_URL: $out"
grep -q "defaultNamingContext: $SAMBA_BASE" <<<"$out" || fail "StartTLS rootDSE: $out"
pass "StartTLS on $SAMBA_LDAP_URL"

out=$(_samba_ldap ldapsearch -x -LLL -H "$SAMBA_URL" -D "$SAMBA_ADMIN_UPN" -y "$SAMBA_PW_FILE" \
	-b "" -s base dnsHostName 2>&1) || fail "simple bind as $SAMBA_ADMIN_UPN: $out"
grep -qx 'dnsHostName: dc1.canopy.test' <<<"$out" || fail "rootDSE as $SAMBA_ADMIN_UPN: $out"
pass "simple bind by UPN ($SAMBA_ADMIN_UPN)"

other="$(fixture_tmpdir)/other-ca"
mkdir -p "$other" && tls_ca "$other" ca || fail "making another CA"
rc=0
out=$(LDAPCONF=/dev/null LDAPTLS_CACERT="$other/ca.pem" LDAPTLS_REQCERT=demand timeout 20 ldapsearch -x \
	-H "$SAMBA_URL" -D "$SAMBA_ADMIN_DN" -y "$SAMBA_PW_FILE" -b "" -s base 1.1 2>&1) || rc=$?
[ "$rc" != 0 ] || fail "LDAPS accepted with a CA that did not sign the server certificate"
[ "$rc" != 124 ] || fail "LDAPS with a wrong CA hung"
pass "a wrong CA is refused (ldapsearch exit $rc)"

rc=0
out=$(LDAPCONF=/dev/null timeout 20 ldapsearch -x -H "$SAMBA_LDAP_URL" -D "$SAMBA_ADMIN_DN" \
	-y "$SAMBA_PW_FILE" -b "" -s base 1.1 2>&1) || rc=$?
[ "$rc" = 8 ] || fail "simple bind over plain ldap:// gave $rc, want 8 (strongAuthRequired): $out"
pass "a simple bind without TLS is refused (8, strong(er) authentication required)"

# --- seeding -----------------------------------------------------------------
samba_seed $USERS $NGROUPS || fail "samba_seed $USERS $NGROUPS"
echo "info: seed $USERS users + $NGROUPS groups (10 members each), one ldapadd over ldaps: ${SAMBA_SEED_MS} ms"
samba_seed_big_group big$BIG $BIG || fail "samba_seed_big_group"
echo "info: $BIG more users + one $BIG-member group: ${SAMBA_BIG_GROUP_MS} ms"
BIGDN="CN=big$BIG,$SAMBA_GROUPS"

n=$(samba_count '(objectClass=user)' "$SAMBA_PEOPLE") || fail "count users"
[ "$n" = $USERS ] || fail "users in $SAMBA_PEOPLE: $n, want $USERS"
n=$(samba_count '(objectClass=user)' "$SAMBA_BULK") || fail "count bulk users"
[ "$n" = $BIG ] || fail "users in $SAMBA_BULK: $n, want $BIG"
n=$(samba_count '(objectClass=group)' "$SAMBA_GROUPS") || fail "count groups"
[ "$n" = $((NGROUPS + 1)) ] || fail "groups in $SAMBA_GROUPS: $n, want $((NGROUPS + 1))"
n=$(samba_count "(&(objectClass=user)(userAccountControl=512)(mail=*))") || fail "count enabled users"
[ "$n" = $((USERS + BIG)) ] || fail "enabled users with mail: $n, want $((USERS + BIG))"
pass "paged counts: $USERS + $BIG users, $((NGROUPS + 1)) groups, all enabled (512)"

out=$(samba_search -b "CN=user00042,$SAMBA_PEOPLE" -s base '(objectClass=*)' sAMAccountName \
	userPrincipalName givenName sn displayName mail userAccountControl objectGUID) || fail "read user00042"
for want in "sAMAccountName: user00042" "userPrincipalName: user00042@canopy.test" "givenName: Grace" \
	"sn: Liskov" "displayName: Grace Liskov (user00042)" "mail: user00042@canopy.test" \
	"userAccountControl: 512"; do
	grep -qx "$want" <<<"$out" || fail "user00042 lacks '$want': $out"
done
n=$(samba_search -b "CN=group0005,$SAMBA_GROUPS" -s base '(objectClass=*)' member | grep -c '^member: ')
[ "$n" = 10 ] || fail "group0005 has $n members, want 10"
samba_search -b "CN=group0005,$SAMBA_GROUPS" -s base '(objectClass=*)' member |
	grep -qx "member: CN=user00043,$SAMBA_PEOPLE" || fail "user00043 is not in group0005"
n=$(samba_search -b "$BIGDN" -s base '(objectClass=*)' member | grep -c '^member: ')
[ "$n" = $BIG ] || fail "big group has $n members, want $BIG"
n=$(samba_search -b "$BIGDN" -s base '(objectClass=*)' 'member;range=0-999' | grep -c '^member;range=0-999: ')
[ "$n" = 1000 ] || fail "ranged retrieval member;range=0-999 gave $n values"
pass "user attributes as seeded; group0005 has 10 members; big$BIG has $BIG (ranged retrieval works too)"

# --- DirSync -----------------------------------------------------------------
out=$(samba_dirsync 0 "" "$ALL" name -b "$SAMBA_PEOPLE" 2>&1)
grep -q '^result: 50 ' <<<"$out" || fail "DirSync based on an OU: want 50: $(grep -E '^(result|text)' <<<"$out")"
pass "DirSync based on an OU is refused with 50 (insufficientAccessRights)"

full="$(fixture_tmpdir)/dirsync-full.ldif"
t0=$(_samba_ms)
samba_dirsync 0 "" "$ALL" "${ATTRS[@]}" >"$full" || fail "full DirSync: $(tail -n 5 "$full")"
t=$(($(_samba_ms) - t0))
n=$(entries <"$full")
[ "$n" -ge $((USERS + BIG + NGROUPS + 1)) ] || fail "full DirSync returned $n entries"
grep -qx '# DirSync control continueFlag=0' "$full" || fail "full DirSync: no continueFlag=0"
c0=$(samba_dirsync_cookie <"$full")
[[ $c0 == TVNEUw* ]] || fail "cookie does not start with MSDS: $c0"
g42=$(guid_of "CN=user00042,$SAMBA_PEOPLE" "$full")
g43=$(guid_of "CN=user00043,$SAMBA_PEOPLE" "$full")
[ -n "$g42" ] && [ -n "$g43" ] || fail "no objectGUID for user00042/43 in the full DirSync"
e=$(entry_with "dn: CN=user00042,$SAMBA_PEOPLE" <"$full")
grep -qx 'name: user00042' <<<"$e" && grep -q '^parentGUID:: ' <<<"$e" && grep -qx 'instanceType: 4' <<<"$e" ||
	fail "full DirSync entry of user00042: $e"
m=$(entry_with "dn: $BIGDN" <"$full" | grep -c '^member: ')
[ "$m" = $BIG ] || fail "full DirSync gave big$BIG $m members"
echo "info: full DirSync: $n entries in $t ms, one answer (no paging), cookie $((${#c0} * 3 / 4)) bytes"
pass "full DirSync from the root: $n entries, all $BIG members of big$BIG, cookie MSDS..., continueFlag 0"

out=$(samba_dirsync 0 "$c0" "$ALL" "${ATTRS[@]}") || fail "DirSync with an unchanged cookie: $out"
[ "$(entries <<<"$out")" = 0 ] || fail "DirSync with no change returned entries: $out"
pass "incremental DirSync with no change returns nothing"

samba_ldapmodify >/dev/null <<EOF || fail "modify user00042"
dn: CN=user00042,$SAMBA_PEOPLE
changetype: modify
replace: mail
mail: grace.new@canopy.test
EOF
samba_ldapdelete "CN=user00043,$SAMBA_PEOPLE" || fail "delete user00043"
inc="$(fixture_tmpdir)/dirsync-inc1.ldif"
samba_dirsync 0 "$c0" "$ALL" "${ATTRS[@]}" >"$inc" || fail "incremental DirSync: $(tail -n 5 "$inc")"
[ "$(entries <"$inc")" = 2 ] || fail "incremental DirSync after a modify and a delete: $(entries <"$inc") entries: $(cat "$inc")"
e=$(entry_with "dn: CN=user00042,$SAMBA_PEOPLE" <"$inc")
[ -n "$e" ] || fail "modified user00042 not returned: $(cat "$inc")"
grep -qx 'mail: grace.new@canopy.test' <<<"$e" || fail "user00042 without its new mail: $e"
grep -qx "objectGUID:: $g42" <<<"$e" || fail "user00042 without its objectGUID: $e"
grep -qx 'instanceType: 4' <<<"$e" || fail "user00042 without instanceType: $e"
grep -qE '^(name|parentGUID|userAccountControl|member):' <<<"$e" && fail "unchanged attributes came back: $e"
e=$(entry_with "objectGUID:: $g43" <"$inc")
[ -n "$e" ] || fail "no tombstone with user00043's objectGUID: $(cat "$inc")"
grep -qE '^dn: CN=user00043\\0ADEL:[0-9a-f-]{36},CN=Deleted Objects,DC=canopy,DC=test$' <<<"$e" ||
	fail "tombstone DN: $e"
grep -qx 'isDeleted: TRUE' <<<"$e" || fail "tombstone without isDeleted: $e"
grep -q '^parentGUID:: ' <<<"$e" || fail "tombstone without parentGUID (of Deleted Objects): $e"
grep -q "CN=group0005" "$inc" && fail "group0005 came back although only its member was deleted"
c1=$(samba_dirsync_cookie <"$inc")
[ -n "$c1" ] && [ "$c1" != "$c0" ] || fail "cookie did not advance"
pass "after a modify and a delete: user00042 with only mail (+objectGUID, instanceType), the tombstone under CN=Deleted Objects with isDeleted; group0005, which lost user00043, is not returned"

out=$(samba_dirsync 0 "$c0" "$ALL" sAMAccountName)
[ "$(entries <<<"$out")" = 0 ] || fail "asking sAMAccountName only: $(entries <<<"$out") entries: $out"
out=$(samba_dirsync 0 "$c0" "$ALL" isDeleted)
[ "$(entries <<<"$out")" = 1 ] && grep -q 'DEL:' <<<"$out" || fail "asking isDeleted only: $out"
pass "entries whose requested attributes did not change are left out, even the tombstone: ask for isDeleted"

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
out=$(samba_dirsync 0 "$c1" "$ALL" "${ATTRS[@]}")
e=$(entry_with "dn: CN=user00044,OU=Moved,$SAMBA_BASE" <<<"$out")
grep -qx 'name: user00044' <<<"$e" && grep -q '^parentGUID:: ' <<<"$e" || fail "moved user00044: $out"
out=$(samba_dirsync 0 "$c1" "$ALL" mail)
[ "$(entries <<<"$out")" = 0 ] || fail "a move is visible without asking name: $out"
pass "a move comes back as name + parentGUID (new parent), and only when name is asked for"

c2=$(samba_dirsync 0 "" "$ALL" 1.1 | samba_dirsync_cookie)
samba_ldapmodify >/dev/null <<EOF || fail "member add/delete on big$BIG"
dn: $BIGDN
changetype: modify
add: member
member: CN=user00001,$SAMBA_PEOPLE
-
delete: member
member: CN=bulk00002,$SAMBA_BULK
EOF
out=$(samba_dirsync 0x80000000 "$c2" "$ALL" "${ATTRS[@]}")
e=$(entry_with "dn: $BIGDN" <<<"$out")
[ "$(grep -c '^member;range=1-1: ' <<<"$e")" = 1 ] && grep -qx "member;range=1-1: CN=user00001,$SAMBA_PEOPLE" <<<"$e" ||
	fail "INCREMENTAL_VALUES: added member: $e"
[ "$(grep -c '^member;range=0-0: ' <<<"$e")" = 1 ] && grep -qx "member;range=0-0: CN=bulk00002,$SAMBA_BULK" <<<"$e" ||
	fail "INCREMENTAL_VALUES: removed member: $e"
grep -q '^member: ' <<<"$e" && fail "INCREMENTAL_VALUES: plain member values came back: $e"
n=$(samba_dirsync 0 "$c2" "$ALL" "${ATTRS[@]}" | entry_with "dn: $BIGDN" | grep -c '^member: ')
[ "$n" = $BIG ] || fail "without INCREMENTAL_VALUES: $n member values, want all $BIG"
pass "member changes on a $BIG-member group: with 0x80000000 only member;range=1-1 (added) and member;range=0-0 (removed); without it all $BIG values"

# --- an ordinary account ---------------------------------------------------------
svcpw='Sync.Pass.2024!'
svc=$(samba_add_account svc-dirsync "$svcpw") || fail "samba_add_account"
svcpwf="$(fixture_tmpdir)/svc.pw"
(umask 077 && printf '%s' "$svcpw" >"$svcpwf")
svc_dirsync() { # FLAGS COOKIE ATTRS..
	local f=$1 c=$2
	shift 2
	_samba_ldap ldapsearch -x -o ldif-wrap=no -H "$SAMBA_URL" -D "$svc" -y "$svcpwf" -b "$SAMBA_BASE" \
		-E "!dirSync=$f/0${c:+/$c}" "$ALL" "$@" 2>&1
}
out=$(svc_dirsync 0 "" name)
grep -q '^result: 50 ' <<<"$out" || fail "ordinary account, flags 0: want 50: $(grep -E '^(result|text)' <<<"$out")"
out=$(svc_dirsync 1 "$c0" "${ATTRS[@]}")
grep -q '^result: 0 ' <<<"$out" || fail "ordinary account, LDAP_DIRSYNC_OBJECT_SECURITY: $(grep -E '^(result|text)' <<<"$out")"
grep -qx "dn: CN=user00042,$SAMBA_PEOPLE" <<<"$out" || fail "ordinary account does not see the modify: $out"
grep -q 'DEL:' <<<"$out" && fail "ordinary account sees the tombstone without rights on CN=Deleted Objects"
samba_grant_deleted_objects "$svc" || fail "samba_grant_deleted_objects"
out=$(svc_dirsync 1 "$c0" "${ATTRS[@]}")
entry_with "objectGUID:: $g43" <<<"$out" | grep -qx 'isDeleted: TRUE' ||
	fail "ordinary account with list/read on CN=Deleted Objects does not see the tombstone: $out"
pass "ordinary account: flags 0 -> 50; OBJECT_SECURITY (1) works but misses deletions until it may list CN=Deleted Objects"

# --- change notification (1.2.840.113556.1.4.528) --------------------------------------
notif="$(fixture_tmpdir)/notify.out"
_samba_ldap timeout 60 ldapsearch -x -o ldif-wrap=no -H "$SAMBA_URL" -D "$SAMBA_ADMIN_DN" -y "$SAMBA_PW_FILE" \
	-b "$SAMBA_BASE" -s sub -E '!serverNotif' '(objectClass=*)' uSNChanged >"$notif" 2>&1 &
npid=$!
_FIXTURE_PIDS+=("$npid")
# The search is registered at some point after ldapsearch starts: change the
# entry until a notification arrives (each change is a new one).
got=""
for ((i = 1; i <= 40; i++)); do
	samba_ldapmodify >/dev/null <<EOF || fail "modify for notification"
dn: CN=user00045,$SAMBA_PEOPLE
changetype: modify
replace: description
description: notification $i
EOF
	sleep 0.5
	if grep -qx "dn: CN=user00045,$SAMBA_PEOPLE" "$notif"; then
		got=$i
		break
	fi
	kill -0 "$npid" 2>/dev/null || fail "notification search ended: $(cat "$notif")"
done
kill "$npid" 2>/dev/null
wait "$npid" 2>/dev/null
[ -n "$got" ] || fail "no change notification within 20 s: $(cat "$notif")"
rc=0
out=$(_samba_ldap timeout 20 ldapsearch -x -H "$SAMBA_URL" -D "$SAMBA_ADMIN_DN" -y "$SAMBA_PW_FILE" \
	-b "$SAMBA_BASE" -E '!serverNotif' '(objectClass=user)' 1.1 2>&1) || rc=$?
[ "$rc" = 53 ] || fail "notification with a filter other than (objectClass=*): $rc, want 53: $out"
pass "change notification on the root (subtree) delivers the changed entry (after $got change(s)); other filters: 53"

# --- a second forest -------------------------------------------------------------
samba_start auto FOREST2.TEST || fail "samba_start (second forest)"
DC2=$SAMBA_INSTANCE
echo "info: second forest: template ${SAMBA_TEMPLATE_MS} ms (cached: $SAMBA_TEMPLATE_CACHED), start ${SAMBA_START_MS} ms on $SAMBA_IP"
dc2_ip=$SAMBA_IP dc2_url=$SAMBA_URL dc2_pid=$SAMBA_PID
[ "$SAMBA_BASE" = "DC=forest2,DC=test" ] && [ "$SAMBA_DOMAIN" = FOREST2 ] || fail "DC2: $SAMBA_BASE $SAMBA_DOMAIN"
samba_use "$DC1" || fail "samba_use $DC1"
dc1_ip=$SAMBA_IP dc1_ca=$SAMBA_CA
[ "$dc1_ip" != "$dc2_ip" ] || fail "both DCs on $dc1_ip"
samba_search -b "" -s base defaultNamingContext | grep -qx 'defaultNamingContext: DC=canopy,DC=test' ||
	fail "DC1 does not answer after DC2 started"
n=$(samba_count '(objectClass=user)' "$SAMBA_PEOPLE")
[ "$n" = $((USERS - 2)) ] || fail "DC1 has $n users in $SAMBA_PEOPLE now, want $((USERS - 2)) (one deleted, one moved)"
samba_use "$DC2" || fail "samba_use $DC2"
samba_search -b "" -s base defaultNamingContext | grep -qx 'defaultNamingContext: DC=forest2,DC=test' ||
	fail "DC2 rootDSE"
n=$(samba_count '(sAMAccountName=user00042)')
[ "$n" = 0 ] || fail "DC2 has user00042"
rc=0
LDAPCONF=/dev/null LDAPTLS_CACERT="$dc1_ca" LDAPTLS_REQCERT=demand timeout 20 ldapsearch -x -H "$dc2_url" \
	-D "$SAMBA_ADMIN_DN" -y "$SAMBA_PW_FILE" -b "" -s base 1.1 >/dev/null 2>&1 || rc=$?
[ "$rc" != 0 ] || fail "DC2 accepted with DC1's CA"
pass "second forest FOREST2.TEST on $dc2_ip beside CANOPY.TEST on $dc1_ip: own base, own data, own CA"

samba_stop
kill -0 "$dc2_pid" 2>/dev/null && fail "DC2 pid $dc2_pid alive after samba_stop"
_samba_listening "$dc2_ip" 636 && fail "something still listens on $dc2_ip:636"
samba_use "$DC1"
samba_search -b "" -s base 1.1 >/dev/null || fail "DC1 stopped answering when DC2 stopped"
pass "samba_stop stopped DC2 only"

oldpid=$SAMBA_PID
samba_restart || fail "samba_restart"
[ "$SAMBA_PID" != "$oldpid" ] && ! kill -0 "$oldpid" 2>/dev/null || fail "samba_restart kept pid $oldpid"
[ "$SAMBA_IP" = "$dc1_ip" ] || fail "restarted on $SAMBA_IP"
out=$(samba_dirsync 0 "$c1" "$ALL" "${ATTRS[@]}") || fail "DirSync with an old cookie after a restart: $out"
grep -qx "dn: CN=user00044,OU=Moved,$SAMBA_BASE" <<<"$out" || fail "old cookie after restart: $out"
pass "samba_restart on $SAMBA_IP in ${SAMBA_START_MS} ms; a cookie from before the restart still works"

# --- samba dies with a SIGKILLed shell ---------------------------------------
sub="$(fixture_tmpdir)/sub"
mkdir -p "$sub/tmp"
# FIXTURE_TMP, not TMPDIR: the sub-shell reuses the template cache.
(FIXTURE_TMP="$sub/tmp" bash -c '
	. "$1/tests/fixtures/samba.sh"
	samba_start || exit 3
	echo "$SAMBA_PID $SAMBA_IP" >"$2/pid"
	kill -9 $$
' sub "$SRC" "$sub" 2>"$sub/stderr"
	exit $?) 2>/dev/null
rc=$?
[ "$rc" = 137 ] || fail "sub-shell exited $rc, not by SIGKILL: $(cat "$sub/stderr")"
read -r subpid subip <"$sub/pid" || fail "sub-shell wrote no pid"
alive() { # running and not a zombie
	local st
	st=$(sed 's/.*) //' /proc/"$1"/stat 2>/dev/null | cut -d' ' -f1)
	[ -n "$st" ] && [ "$st" != Z ] && [ "$st" != X ]
}
for ((i = 0; i < 100; i++)); do
	alive "$subpid" || break
	sleep 0.05
done
if alive "$subpid"; then
	kill -KILL "$subpid" 2>/dev/null
	fail "samba $subpid outlived its SIGKILLed shell by 5 s"
fi
pass "samba $subpid (on $subip) died within $((i * 50)) ms of its shell's SIGKILL"

pid=$SAMBA_PID
samba_stop
kill -0 "$pid" 2>/dev/null && fail "DC1 pid $pid alive after samba_stop"
_samba_listening "$dc1_ip" 636 && fail "something still listens on $dc1_ip:636"
pass "samba_stop left no process"

echo "info: timings: template provision ${t_template} ms (cached: $t_cached), DC start ${t_start} ms, seed $USERS users + $NGROUPS groups ${SAMBA_SEED_MS} ms, $BIG users + $BIG-member group ${SAMBA_BIG_GROUP_MS} ms"
pass "Samba AD DC fixture"
exit 0
