#!/usr/bin/env bash
# Outbound TLS to the directory (issue 8, "Outbound"): source.tls.ca.
#   1. ldaps:// verified against a private CA syncs, and LDAPTLS_REQCERT=never /
#      LDAPTLS_CACERT in the agent's environment change nothing;
#   2. ldap:// + source.tls runs StartTLS (RFC 4513 §3) before the bind and syncs;
#   3. a wrong CA fails with a clear error, even with LDAPTLS_REQCERT=never in
#      the environment: sync.quarantine.reason source_unreachable, the detail
#      (status, health and log) names the CA file and says "not trusted";
#   4. the same for StartTLS;
#   5. ldap:// with a bind password and no source.tls, and http:// with a bearer
#      token, are warned about at start;
#   6. a URL whose address the certificate does not carry (the same slapd
#      through the IPv4-mapped address [::ffff:127.0.0.1]), over ldaps:// and
#      StartTLS: source_unreachable, the detail names the address and says it
#      does not match the certificate.
source "$(dirname "$0")/../fixtures/sync.sh"
dir=$(fixture_tmpdir)

export SLAPD_TLS=1 SLAPD_DEBUG=stats
sync_setup 30 3
tls_ca "$SLAPD_TLS_DIR" other # a CA that did not sign slapd's certificate
OTHER_CA=$SLAPD_TLS_DIR/other.pem

st_of() { json_eval "$(agent_status "$1" 2>/dev/null || echo '{}')" "$2"; }
# one_agent ID URL [CA]: a one-node cluster syncing from URL, with source.tls.ca CA
one_agent() {
	local id=$1 url=$2 ca=${3:-}
	agent_ports "$id"
	sync_agent_config "$id" "[\"$id@${AGENT_RAFT[$id]}\"]"
	sed -i "s|^  url: ldap.*|  url: $url|" "$dir/agent$id.yaml"
	[ -n "$ca" ] && sed -i "/^source:/a\\  tls: { ca: $ca }" "$dir/agent$id.yaml"
	grep -qF "url: $url" "$dir/agent$id.yaml" || fail "agent $id: could not set source.url"
	agent_start "$id"
}
health_source() { st_of "$1" "(j.health||{source:{}}).source.$2"; }
health_ok() { [ "$(health_source "$1" state)" = ok ]; }
health_says() { health_source "$1" detail | grep -q "$2"; }
# refused_with ID URL CA TEXT: agent ID is quarantined source_unreachable and
# the detail (left in $detail) says TEXT; then it is stopped
refused_with() {
	local id=$1
	one_agent "$id" "$2" "$3"
	wait_until 20 quarantine_is "$id" source_unreachable || fail "agent $id ($2): quarantine $(st_of "$id" 'j.sync')"
	detail=$(st_of "$id" 'j.sync.quarantine.detail')
	case "$detail" in *"$4"*) ;; *) fail "agent $id ($2): the detail does not say \"$4\": $detail" ;; esac
	agent_stop "$id"
}
quarantine_is() { [ "$(st_of "$1" 'j.sync.quarantine && j.sync.quarantine.reason')" = "$2" ]; }

# 5 first: today's plain setup (ldap:// + password, http:// + token) is warned about
one_agent 9 "$SLAPD_URL"
wait_until 20 sync_compare || fail "plain sync incomplete"
agent_stop 9
grep -q 'level=warn.*source.url is ldap:// without source.tls' "$dir/agent9.log" ||
	fail "no warning for ldap:// + password: $(grep level=warn "$dir/agent9.log")"
grep -q 'level=warn.*target.url is http://' "$dir/agent9.log" || fail "no warning for http:// + token"
pass "ldap:// + bind password and http:// + bearer token are warned about at start"

# 1. ldaps:// with the private CA; the environment tries to weaken or redirect verification
scim_reset
export LDAPTLS_REQCERT=never LDAPTLS_CACERT=$OTHER_CA LDAPCONF=/dev/null
one_agent 1 "$SLAPD_LDAPS_URL" "$SLAPD_CA"
wait_until 30 sync_compare || fail "ldaps:// sync incomplete: $(st_of 1 'j.sync')"
printf 'dn: uid=user00001,ou=people,%s\nchangetype: modify\nreplace: sn\nsn: OverTLS\n' "$SLAPD_BASE" |
	slapd_ldapmodify >/dev/null || fail "ldapmodify"
has_sn() { scim_ctl GET store | json_get 'j.Users.filter(u=>u.userName==="user00001")[0].name.familyName' | grep -qx OverTLS; }
wait_until 15 has_sn || fail "a change over ldaps:// did not arrive"
wait_until 15 sync_compare || fail "target differs after a change over ldaps://"
wait_until 15 health_ok 1 || fail "health probe over ldaps:// not ok: $(st_of 1 'j.health.source')"
grep -q 'level=warn.*source.url is ldap://' "$dir/agent1.log.tmp" && fail "warned about ldap:// on an ldaps:// source"
agent_stop 1
pass "ldaps:// verified against source.tls.ca syncs (LDAPTLS_* in the environment ignored)"

# 2. StartTLS on ldap://
scim_reset
one_agent 2 "$SLAPD_URL" "$SLAPD_CA"
wait_until 30 sync_compare || fail "StartTLS sync incomplete: $(st_of 2 'j.sync')"
grep -q 'oid=1.3.6.1.4.1.1466.20037' "$SLAPD_LOG" || fail "slapd saw no StartTLS request"
grep -q 'level=warn.*source.url is ldap://' "$dir/agent2.log.tmp" && fail "warned about clear text with StartTLS"
agent_stop 2
pass "ldap:// + source.tls: StartTLS, then bind and sync"

# 3. ldaps:// with the wrong CA, LDAPTLS_REQCERT=never still in the environment
scim_reset
export LDAPTLS_CACERT=$SLAPD_CA # even pointing libldap's environment at the right CA must not matter
one_agent 3 "$SLAPD_LDAPS_URL" "$OTHER_CA"
wait_until 20 quarantine_is 3 source_unreachable || fail "wrong CA: quarantine $(st_of 3 'j.sync')"
detail=$(st_of 3 'j.sync.quarantine.detail')
echo "$detail"
case "$detail" in *"not trusted by $OTHER_CA"*) ;; *) fail "detail does not name the CA: $detail" ;; esac
case "$detail" in *"unknown error code"*) fail "unclear detail: $detail" ;; esac
wait_until 15 health_says 3 "not trusted by $OTHER_CA" || fail "health probe detail: $(st_of 3 'j.health.source')"
grep -q "not trusted by $OTHER_CA" "$dir/agent3.log.tmp" || fail "the log does not say why"
[ "$(scim_count Users)" = 0 ] || fail "something was written with an untrusted directory"
agent_stop 3
pass "wrong CA for ldaps://: source_unreachable, \"$detail\""

# 4. StartTLS with the wrong CA
refused_with 4 "$SLAPD_URL" "$OTHER_CA" "not trusted by $OTHER_CA"
pass "wrong CA for StartTLS: \"$detail\""
unset LDAPTLS_REQCERT LDAPTLS_CACERT LDAPCONF

# 6. the certificate does not carry the address of the URL
MAPPED=::ffff:127.0.0.1
scim_reset
one_agent 5 "ldaps://[$MAPPED]:$SLAPD_LDAPS_PORT/" "$SLAPD_CA"
wait_until 20 quarantine_is 5 source_unreachable || fail "mismatch: quarantine $(st_of 5 'j.sync')"
mdetail=$(st_of 5 'j.sync.quarantine.detail')
want="the address $MAPPED does not match the server certificate"
case "$mdetail" in *"$want"*"it is for IP:127.0.0.1"*) ;; *) fail "mismatch detail: $mdetail" ;; esac
wait_until 15 health_says 5 "$want" || fail "mismatch: health detail $(st_of 5 'j.health.source')"
grep -qF "$want" "$dir/agent5.log.tmp" || fail "mismatch: the log does not say why"
[ "$(scim_count Users)" = 0 ] || fail "something was written through a mismatched certificate"
agent_stop 5
refused_with 6 "ldap://[$MAPPED]:$SLAPD_PORT/" "$SLAPD_CA" "$want"
pass "address not in the certificate (ldaps:// and StartTLS): source_unreachable, \"$mdetail\""
