#!/usr/bin/env bash
# The status page in a real browser (headless Chromium through chromedriver,
# tests/fixtures/status_page.py): 3 syncing agents, slapd and the SCIM
# server. A follower's page shows the leader id and term and the sync state
# that its /v1/status says, and every member with its role; its link opens
# the leader's page, which shows an exported entry of the provisioning log,
# a refusal by the target highlighted, and a DN made of HTML
# (cn=<img src=x onerror=alert(1)>) as text; after SIGKILL of the leader,
# the follower's page -- open all along, never reloaded -- shows the new
# leader and term, and the dead leader's page says it cannot reach its
# agent.
#
# Skips (77) when chromium, chromedriver or python3-selenium is missing,
# unless CANOPY_REQUIRE_BROWSER is set (scripts/test.sh sets it: CI installs
# them). CANOPY_PAGE_SCREENSHOT=FILE keeps a screenshot of the leader's page
# (docs/status-page.png is one).
source "$(dirname "$0")/../fixtures/sync.sh"
dir=$(fixture_tmpdir)

missing=()
[ -x /usr/bin/chromium ] || missing+=(chromium)
[ -x /usr/bin/chromedriver ] || missing+=(chromium-driver)
/usr/bin/python3 -c 'import selenium' 2>/dev/null || missing+=(python3-selenium)
if [ ${#missing[@]} -gt 0 ]; then
	[ -z "${CANOPY_REQUIRE_BROWSER:-}" ] ||
		fail "CANOPY_REQUIRE_BROWSER is set but ${missing[*]} is not installed (scripts/install-deps.sh)"
	echo "SKIP: ${missing[*]} not installed (apt-get install chromium chromium-driver python3-selenium)"
	exit 77
fi

sync_setup 5 1
sync_start_cluster 3
for _ in $(seq 200); do l=$(idle_leader 1 2 3) && break; sleep 0.1; done
[ -n "${l:-}" ] || fail "no idle leader after the initial sync"
users_are() { [ "$(scim_count Users)" = "$1" ]; }
wait_secs 60 users_are 5 || fail "initial sync: $(scim_count Users) users"

# The target refuses one user for good (400): an "error" entry.
scim_fault '{"status":400,"methods":["POST"],"count":1}'
slapd_ldapmodify <<LDIF >/dev/null || fail "add refused"
dn: uid=refused,ou=people,$SLAPD_BASE
changetype: add
objectClass: inetOrgPerson
uid: refused
cn: refused
sn: Refused
givenName: Test
LDIF
failed() { [ "$(json_eval "$(agent_status "$l")" 'j.sync.failed')" -ge 1 ]; }
wait_secs 30 failed || fail "the refused user is not failed: $(json_eval "$(agent_status "$l")" 'JSON.stringify(j.sync)')"
scim_fault '{}'

# A DN made of HTML. slapd never hands one out raw (its DNs escape < > =
# as \3C \3E \3D, RFC 4514 §2.4), a directory that escapes with a
# backslash (cn=\<img ...\>) does; so the entry is written to the leader's
# provisioning log the way sync/provlog.c writes one (as ctl_logs_test
# does), with the target's answer quoting HTML as its error.
xss='cn=<img src=x onerror=alert(1)>,ou=people,dc=example,dc=com'
printf '{"time":"%s","cycle":1,"change":1,"node":%d,"term":1,"anchor":"xss","dn":"%s","type":"user","action":"create","result":"error","http_status":400,"duration_ms":1.0,"error":"400 from POST /Users: <script>alert(2)</script>"}\n' \
	"$(date -u +%Y-%m-%dT%H:%M:%S.000Z)" "$l" "$xss" >>"$dir/data$l/provisioning.log"

f=$(( l % 3 + 1 ))
pass "leader $l, watching from follower $f"
/usr/bin/python3 "$CANOPY_SOURCE_DIR/tests/fixtures/status_page.py" --page "http://${AGENT_CTL[$f]}/" \
	--leader-pid "${AGENT_PID[$l]}" --exported "uid=user00001,ou=people,$SLAPD_BASE" \
	--error "uid=refused,ou=people,$SLAPD_BASE" --xss "$xss" \
	${CANOPY_PAGE_SCREENSHOT:+--screenshot "$CANOPY_PAGE_SCREENSHOT"} || fail "the page in Chromium (above)"
agent_stop "$l" KILL
