#!/usr/bin/env bash
# Outbound TLS and OAuth2 to the target (issue 8 "Outbound", issue 17 target.auth).
#   1. HTTPS SCIM verified against target.tls.ca (the system store stays in use)
#      syncs, with OAuth2 client credentials (client secret) instead of a
#      token file; SSL_CERT_FILE / CURL_CA_BUNDLE in the environment change
#      nothing;
#   2. tokens that expire every 3 s are refreshed before they expire: changes
#      over 12 s all land, no write is refused with 401 and skipped (at most a
#      stray 401 on a machine so busy that a request outlives its token, and
#      then it is re-sent), no quarantine, and the target equals the source;
#   3. a revoked client secret: quarantine target_unauthorized, with the token
#      endpoint's error (invalid_client); the secret never appears in the log;
#      the agent's fixed secret file recovers it without a restart;
#   4. a wrong target.tls.ca fails clearly: target_unreachable, the detail
#      names the host and the CA file.
source "$(dirname "$0")/../fixtures/sync.sh"
dir=$(fixture_tmpdir)

export SCIM_TLS=1 SCIM_OAUTH2=1 SCIM_OAUTH2_TTL=3
sync_setup 40 4
tls_ca "$SCIM_TLS_DIR" other
OTHER_CA=$SCIM_TLS_DIR/other.pem
SECRET1=$SCIM_OAUTH2_SECRET
AGENT_SECRET=$dir/agent-oauth2.secret
(umask 077 && printf '%s\n' "$SECRET1" >"$AGENT_SECRET")

st_of() { json_eval "$(agent_status "$1" 2>/dev/null || echo '{}')" "$2"; }
quarantine_is() { [ "$(st_of "$1" 'j.sync.quarantine && j.sync.quarantine.reason')" = "$2" ]; }
not_quarantined() { [ "$(st_of "$1" 'j.sync.quarantine === undefined && j.sync.state')" = idle ]; }
audit_401s() { scim_ctl GET audit | json_get 'j.filter(a=>a.status===401).length'; }

# 1. HTTPS + OAuth2 (client secret); the environment points curl/OpenSSL at another CA
agent_ports 1
sync_agent_config 1 "[\"1@${AGENT_RAFT[1]}\"]"
sed -i "s|^  token_file: .*|  auth: { kind: oauth2, token_url: \"$SCIM_TOKEN_URL\", client_id: $SCIM_OAUTH2_CLIENT_ID, client_secret_file: $AGENT_SECRET, scope: \"scim.write\" }\n  tls: { ca: $SCIM_CA }|" "$dir/agent1.yaml"
grep -q 'kind: oauth2' "$dir/agent1.yaml" || fail "could not configure target.auth"
export SSL_CERT_FILE=$OTHER_CA SSL_CERT_DIR=/nonexistent CURL_CA_BUNDLE=$OTHER_CA
agent_start 1 # the agent keeps this environment; the test's own curl must not
unset SSL_CERT_FILE SSL_CERT_DIR CURL_CA_BUNDLE
wait_until 30 sync_compare || fail "HTTPS + OAuth2 sync incomplete: $(st_of 1 'j.sync')"
grep -q 'level=warn.*target.url is http://' "$dir/agent1.log.tmp" && fail "warned about http:// on https://"
pass "HTTPS (target.tls.ca) + OAuth2 client credentials: initial sync complete"

# 2. 12 s of changes with 3 s tokens: refreshed before expiry, no failed write
issued0=$(scim_oauth2 | json_get 'j.issued')
for i in $(seq 1 24); do
	printf 'dn: uid=user%05d,ou=people,%s\nchangetype: modify\nreplace: sn\nsn: Refreshed%d\n' \
		$((i % 40 + 1)) "$SLAPD_BASE" "$i" | slapd_ldapmodify >/dev/null || fail "ldapmodify $i"
	sleep 0.5
done
wait_until 20 sync_compare || fail "target differs from the source after the token refreshes"
issued=$(( $(scim_oauth2 | json_get 'j.issued') - issued0 ))
n401=$(audit_401s)
expired=$(scim_oauth2 | json_get 'j.expiredUsed')
echo "tokens issued during 12 s of changes: $issued; audited 401s: $n401; expired tokens presented: $expired"
[ "$issued" -ge 3 ] || fail "only $issued tokens fetched in 12 s with a 3 s lifetime"
[ "$n401" -le 2 ] || fail "$n401 writes were refused with 401"
# (not errors_total: it also counts a slow disk's restarted batches)
for k in failed retrying target.failures; do
	[ "$(st_of 1 "j.sync.$k")" = 0 ] || fail "sync.$k: $(st_of 1 'j.sync')"
done
grep -q 'msg="sync quarantined"' "$dir/agent1.log.tmp" && fail "quarantined while tokens were refreshed: $(grep 'sync quarantined' "$dir/agent1.log.tmp")"
[ "$(st_of 1 'j.health.target.state')" = ok ] || fail "target health (probe through OAuth2): $(st_of 1 'j.health.target')"
pass "tokens refreshed before expiry ($issued in 12 s): no 401, target equals source"

# 3. the secret is revoked at the token endpoint (and the tokens issued with it)
scim_oauth2_set_secret "s3cr3t-rotated-$RANDOM$RANDOM"
scim_oauth2 '{"revoke":true}' >/dev/null
printf 'dn: uid=user00001,ou=people,%s\nchangetype: modify\nreplace: sn\nsn: AfterRevoke\n' "$SLAPD_BASE" | slapd_ldapmodify >/dev/null
wait_until 20 quarantine_is 1 target_unauthorized || fail "revoked secret: $(st_of 1 'j.sync')"
detail=$(st_of 1 'j.sync.quarantine.detail')
echo "$detail"
case "$detail" in *invalid_client*) ;; *) fail "detail lacks the endpoint's error: $detail" ;; esac
wait_until 10 grep -q 'msg="sync quarantined".*invalid_client' "$dir/agent1.log.tmp" || fail "the log does not say why"
pass "revoked client secret: quarantine target_unauthorized ($detail)"
# the operator puts the new secret into the agent's file: recovers without a restart
(umask 077 && printf '%s\n' "$SCIM_OAUTH2_SECRET" >"$AGENT_SECRET.new" && mv -f "$AGENT_SECRET.new" "$AGENT_SECRET")
wait_until 60 not_quarantined 1 || fail "not recovered with the new secret: $(st_of 1 'j.sync')"
wait_until 20 sync_compare || fail "the change made while quarantined did not arrive"
agent_stop 1
for s in "$SECRET1" "$SCIM_OAUTH2_SECRET"; do
	grep -qF -- "$s" "$dir/agent1.log" "$dir"/data1/provisioning.log && fail "a client secret appears in a log"
done
pass "the fixed secret file ends the quarantine without a restart; no secret in any log"

# 4. wrong target.tls.ca (a bearer token this time: the SCIM requests themselves fail)
scim_reset
agent_ports 2
sync_agent_config 2 "[\"2@${AGENT_RAFT[2]}\"]"
sed -i "/^target:/a\\  tls: { ca: $OTHER_CA }" "$dir/agent2.yaml"
export SSL_CERT_FILE=$SCIM_CA # the environment must not add the right CA either
agent_start 2
unset SSL_CERT_FILE
wait_until 30 quarantine_is 2 target_unreachable || fail "wrong target CA: $(st_of 2 'j.sync')"
detail=$(st_of 2 'j.sync.quarantine.detail')
echo "$detail"
case "$detail" in *"server certificate for 127.0.0.1 not trusted by $OTHER_CA"*) ;; *) fail "unclear detail: $detail" ;; esac
health_target_says() { st_of 2 '(j.health||{target:{}}).target.detail' | grep -q "$1"; }
wait_until 15 health_target_says "not trusted by $OTHER_CA" ||
	fail "health probe detail: $(st_of 2 'j.health.target')"
[ "$(scim_count Users)" = 0 ] || fail "writes reached a target that is not trusted"
agent_stop 2
pass "wrong target.tls.ca: target_unreachable ($detail)"
