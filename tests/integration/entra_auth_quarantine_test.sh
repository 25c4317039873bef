#!/usr/bin/env bash
# Graph refusing the application quarantines the sync with a reason that
# names the request and Graph's error code, and the quarantine's probe ends
# it once access works again; nothing waiting is lost:
#  1. 403 Authorization_RequestDenied on every write (a permission revoked):
#     quarantined (target_unauthorized, "... 403 Authorization_RequestDenied");
#     the permission back: the change that waited lands.
#  2. the app's credential revoked (its secret replaced, every issued token
#     forgotten): the 401 gets one new token, which the token endpoint refuses:
#     quarantined; the secret registered again: the probe's new token works.
source "$(dirname "$0")/../fixtures/entra.sh"
dir=$(fixture_tmpdir)

slapd_start 20 2
graph_start
agent_ports 1
entra_config 1 "$(entra_secret_auth)"
agent_start 1
wait_secs 60 entra_compare || fail "initial sync: $(entra_compare | head -n 5)"

quarantine() { json_eval "$(agent_status 1)" 'JSON.stringify(j.sync.quarantine || null)'; }
quarantined_with() { # REGEX the detail must match
	[ "$(json_eval "$(agent_status 1)" "(q => !!q && q.reason === 'target_unauthorized' && /$1/.test(q.detail))(j.sync.quarantine)")" = true ]
}
not_quarantined() { [ "$(json_eval "$(agent_status 1)" '!j.sync.quarantine')" = true ]; }
change() { # UID TITLE
	slapd_ldapmodify >/dev/null <<EOF
dn: uid=$1,ou=people,$SLAPD_BASE
changetype: modify
replace: title
title: $2
EOF
}

# 1. 403 on writes
graph_fault '{"status":403,"methods":["POST","PATCH","DELETE"],"message":"Insufficient privileges to complete the operation."}'
change user00004 "while denied" || fail "ldapmodify"
wait_secs 30 quarantined_with 'PATCH .users.[^ ]+: 403 Authorization_RequestDenied' ||
	fail "no quarantine naming the 403: $(quarantine)"
# held, not failed: the refused operation waits for the probe
grep -q '"result":"error"' "$dir/data1/provisioning.log" &&
	fail "the refused update was recorded as failed: $(grep '"result":"error"' "$dir/data1/provisioning.log" | head -n 2)"
# the probe re-sends it: a second 403 shows the check runs
wait_secs 30 sh -c "[ \$(grep -c '\"status\":403' '$GRAPH_AUDIT') -ge 2 ]" || fail "no probe while denied"
graph_fault '{}'
wait_secs 60 not_quarantined || fail "still quarantined after the permission came back: $(quarantine)"
wait_secs 30 entra_compare || fail "the change made while denied did not land: $(entra_compare | head -n 5)"
pass "403: quarantined with the request and Graph's code; resumed by the probe, nothing lost"

# 2. the credential revoked
graph_ctl POST clients "{\"clientId\":\"$GRAPH_CLIENT_ID\",\"secret\":\"not-the-agents-$RANDOM\",\"replace\":true}" >/dev/null
graph_ctl POST token '{"revoke":true}' >/dev/null
change user00005 "while revoked" || fail "ldapmodify"
wait_secs 30 quarantined_with 'PATCH .users.[^ ]+: no token' ||
	fail "no quarantine naming the refused credential: $(quarantine)"
graph_ctl POST clients "{\"clientId\":\"$GRAPH_CLIENT_ID\",\"secret\":\"$(cat "$GRAPH_DIR/client.secret")\",\"replace\":true}" >/dev/null
wait_secs 90 not_quarantined || fail "still quarantined after the credential came back: $(quarantine)"
wait_secs 30 entra_compare || fail "the change made while revoked did not land: $(entra_compare | head -n 5)"
grep -q '"result":"error"' "$dir/data1/provisioning.log" &&
	fail "an operation failed: $(grep '"result":"error"' "$dir/data1/provisioning.log" | head -n 2)"
agent_stop 1
pass "revoked credential: quarantined naming the token endpoint's refusal; resumed once it was back, nothing lost"
