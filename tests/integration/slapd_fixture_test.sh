#!/bin/bash
# tests/integration/slapd_fixture_test.sh -- checks the private slapd fixture
# (tests/fixtures/slapd.sh + gen-ldif.sh) against a real slapd: seeding,
# operational attributes, UTF-8, syncprov (RFC 4533 refreshOnly + cookie),
# accesslog, stop/restart, and that slapd dies with a SIGKILLed test shell.
#
# run: CANOPY_SOURCE_DIR=<repo root> bash tests/integration/slapd_fixture_test.sh

SRC=${CANOPY_SOURCE_DIR:-$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)}
# shellcheck source-path=SCRIPTDIR source=../fixtures/slapd.sh
. "$SRC/tests/fixtures/slapd.sh"

for b in slapd slapadd ldapsearch ldapmodify setpriv base64; do
	command -v "$b" >/dev/null || fail "$b not installed"
done

USERS=1000
NGROUPS=50
PEOPLE="ou=people,dc=example,dc=com"

slapd_start $USERS $NGROUPS || fail "slapd_start $USERS $NGROUPS"
pass "slapd up on $SLAPD_URL (pid $SLAPD_PID) in ${SLAPD_START_MS} ms"
for v in SLAPD_PORT SLAPD_URL SLAPD_BASE SLAPD_ADMIN_DN SLAPD_ADMIN_PW SLAPD_PW_FILE SLAPD_PID SLAPD_DIR; do
	[ -n "${!v:-}" ] || fail "$v not set"
done
[ "$(stat -c %a "$SLAPD_PW_FILE")" = 600 ] || fail "password file mode is not 0600"
[ "$(cat "$SLAPD_PW_FILE")" = "$SLAPD_ADMIN_PW" ] || fail "password file content"
[ "$(cat /proc/"$SLAPD_PID"/comm 2>/dev/null)" = slapd ] || fail "SLAPD_PID $SLAPD_PID is not slapd"

# --- seeded content ----------------------------------------------------------
n=$(slapd_count '(objectClass=inetOrgPerson)') || fail "count users"
[ "$n" = $USERS ] || fail "inetOrgPerson count $n, want $USERS"
n=$(slapd_count '(objectClass=groupOfNames)') || fail "count groups"
[ "$n" = $NGROUPS ] || fail "groupOfNames count $n, want $NGROUPS"
n=$(slapd_count '(objectClass=organizationalUnit)') || fail "count OUs"
[ "$n" = 3 ] || fail "OU count $n, want 3 (people, groups, disabled)"
pass "$USERS users, $NGROUPS groups, 3 OUs"

out=$(slapd_search -b "uid=user00042,$PEOPLE" -s base entryUUID entryCSN mail) || fail "read user00042"
grep -Eq '^entryUUID: [0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$' <<<"$out" ||
	fail "no entryUUID on user00042: $out"
grep -Eq '^entryCSN: [0-9]{14}\.[0-9]{6}Z#[0-9a-f]{6}#[0-9a-f]{3}#[0-9a-f]{6}$' <<<"$out" ||
	fail "no entryCSN on user00042: $out"
grep -qx 'mail: user00042@example.com' <<<"$out" || fail "mail of user00042: $out"
pass "entryUUID and entryCSN come back as operational attributes"

n=$(slapd_search -b "cn=group0001,ou=groups,$SLAPD_BASE" -s base member | grep -c '^member: uid=user')
[ "$n" = 500 ] || fail "group0001 has $n members, want 500"
n=$(slapd_search -b "cn=group0002,ou=groups,$SLAPD_BASE" -s base member | grep -c '^member: ')
[ "$n" -ge 1 ] || fail "group0002 has no member"
pass "group0001 has 500 members"

want='Zoë Müller'
b64=$(slapd_search -b "uid=user00003,$PEOPLE" -s base cn | sed -n 's/^cn:: //p')
[ -n "$b64" ] || fail "cn of user00003 not base64 in LDIF output"
got=$(printf '%s' "$b64" | base64 -d) || fail "bad base64 '$b64'"
[ "$got" = "$want" ] || fail "cn of user00003 is '$got', want '$want'"
n=$(slapd_count "(&(cn=$want)(sn=Müller)(givenName=Zoë))") || fail "search by UTF-8 filter"
[ "$n" -ge 1 ] || fail "UTF-8 filter (cn=$want) matched nothing"
pass "non-ASCII name round-trips ('$got')"

# --- syncprov: RFC 4533 refreshOnly ------------------------------------------
ldap_sync() { # ldap_sync COOKIE FILTER: full (commented) ldapsearch output
	LDAPNOINIT=1 ldapsearch -x -o ldif-wrap=no -H "$SLAPD_URL" -D "$SLAPD_ADMIN_DN" -y "$SLAPD_PW_FILE" \
		-b "$SLAPD_BASE" -E "sync=ro${1:+/$1}" "$2" uid entryUUID
}
out=$(ldap_sync "" '(objectClass=inetOrgPerson)') || fail "sync=ro search failed: $out"
n=$(grep -c '^dn: ' <<<"$out")
[ "$n" = $USERS ] || fail "sync=ro returned $n entries, want $USERS"
grep -q '^control: 1.3.6.1.4.1.4203.1.9.1.3 ' <<<"$out" || fail "no Sync Done control in sync=ro result"
cookie=$(sed -n 's/^# cookie: //p' <<<"$out" | tail -n 1)
[[ $cookie == rid=*csn=* ]] || fail "no sync cookie in sync=ro result: $(tail -n 8 <<<"$out")"
pass "sync=ro refresh returned $n entries and cookie $cookie"

newdn="uid=newuser1,$PEOPLE"
slapd_ldapmodify >/dev/null <<EOF || fail "ldapmodify add"
dn: $newdn
changetype: add
objectClass: inetOrgPerson
uid: newuser1
cn: New User
sn: User
mail: newuser1@example.com
EOF
n=$(slapd_count '(objectClass=inetOrgPerson)')
[ "$n" = $((USERS + 1)) ] || fail "after add: $n users, want $((USERS + 1))"
out=$(ldap_sync "$cookie" '(objectClass=inetOrgPerson)') || fail "sync=ro with cookie failed: $out"
grep -qx "dn: $newdn" <<<"$out" || fail "sync=ro with cookie does not return the new user: $out"
n=$(grep -c '^dn: ' <<<"$out")
[ "$n" -lt $USERS ] || fail "sync=ro with cookie returned $n entries: not incremental"
cookie2=$(sed -n 's/^# cookie: //p' <<<"$out" | tail -n 1)
if [ -z "$cookie2" ] || [ "$cookie2" = "$cookie" ]; then
	fail "cookie did not advance ($cookie -> $cookie2)"
fi
pass "added user is visible; incremental sync=ro from the cookie returns $n entry(ies), cookie $cookie2"

n=$(slapd_count "(&(objectClass=auditAdd)(reqDN=$newdn)(reqResult=0))" "$SLAPD_ACCESSLOG_BASE") ||
	fail "search accesslog"
[ "$n" = 1 ] || fail "accesslog has $n auditAdd entries for $newdn, want 1"
n=$(LDAPNOINIT=1 ldapsearch -x -LLL -H "$SLAPD_URL" -b "$SLAPD_ACCESSLOG_BASE" '(objectClass=*)' 1.1 2>/dev/null | grep -c '^dn:')
[ "$n" = 0 ] || fail "anonymous can read $n accesslog entries"
pass "accesslog recorded the add (admin-only)"

# --- restart keeps data; stop leaves nothing ---------------------------------
oldport=$SLAPD_PORT
slapd_restart || fail "slapd_restart"
n=$(slapd_count '(objectClass=inetOrgPerson)')
[ "$n" = $((USERS + 1)) ] || fail "after restart: $n users, want $((USERS + 1))"
pass "slapd_restart kept the data (port $oldport -> $SLAPD_PORT)"

pid=$SLAPD_PID url=$SLAPD_URL
slapd_stop
kill -0 "$pid" 2>/dev/null && fail "slapd pid $pid still alive after slapd_stop"
LDAPNOINIT=1 ldapsearch -x -H "$url" -b "" -s base -o nettimeout=1 1.1 >/dev/null 2>&1 &&
	fail "something still answers on $url after slapd_stop"
pass "slapd_stop left no process"

# --- pdeathsig: slapd dies with a SIGKILLed shell ----------------------------
fixture_tmpdir >/dev/null # sets FIXTURE_TMP in this shell (see slapd.sh)
sub="$(fixture_tmpdir)/sub"
mkdir -p "$sub"
# (...) 2>/dev/null: keeps bash's "Killed" job message out of the test output.
(TMPDIR=$sub bash -c '
	. "$1/tests/fixtures/slapd.sh"
	slapd_start 10 2 || exit 3
	echo "$SLAPD_PID" >"$2/pid"
	kill -9 $$
' sub "$SRC" "$sub" 2>"$sub/stderr"
	exit $?) 2>/dev/null
rc=$?
[ "$rc" = 137 ] || fail "sub-shell exited $rc, not by SIGKILL: $(cat "$sub/stderr")"
[ -s "$sub/pid" ] || fail "sub-shell wrote no pid"
subpid=$(cat "$sub/pid")
alive() { # running and not a zombie
	local st
	st=$(sed 's/.*) //' /proc/"$1"/stat 2>/dev/null | cut -d' ' -f1)
	[ -n "$st" ] && [ "$st" != Z ] && [ "$st" != X ]
}
for ((i = 0; i < 40; i++)); do
	alive "$subpid" || break
	sleep 0.05
done
if alive "$subpid"; then
	kill -KILL "$subpid" 2>/dev/null
	fail "slapd $subpid outlived its SIGKILLed shell by 2 s"
fi
pass "slapd $subpid died within $((i * 50)) ms of its shell's SIGKILL"

# --- timing, for information ---------------------------------------------------
slapd_start 10000 50 || fail "slapd_start 10000 50"
n=$(slapd_count '(objectClass=inetOrgPerson)')
[ "$n" = 10000 ] || fail "10k instance has $n users"
echo "info: 10000 users + 50 groups: gen-ldif + slapadd + startup = ${SLAPD_START_MS} ms"
slapd_stop

pass "slapd fixture"
exit 0
