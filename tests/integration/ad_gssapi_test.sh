#!/usr/bin/env bash
# source.sasl GSSAPI: an agent given a keytab instead of a password binds to
# a real Samba AD DC with Kerberos and syncs. The DC runs its KDC
# (SAMBA_KDC=1); the agent's account canopysvc has its keys exported to a
# keytab; the DC's account gets the SPN ldap/<its address>, the name the
# agent asks a ticket for (it names the DC as source.url does); the agent's
# MIT krb5 finds the KDC through a private krb5.conf (KRB5_CONFIG), no DNS.
# The config has no bind_dn and no password_file: without the Kerberos bind
# the DC would refuse DirSync to the anonymous agent.
#  1. the GSSAPI-bound agent exports every user, and a later change (the
#     notification and DirSync connections stay bound, with SASL's security
#     layer on ldap://); its health probe binds the same way;
#  2. a stale keytab (the account's password changed after the export) is a
#     clear error: quarantine source_unauthorized, the detail naming the
#     principal, the keytab and the KDC's answer;
#  3. a keytab exported again is used at the next bind, without a restart.
source "$(dirname "$0")/../fixtures/ad_sync.sh"

USERS=20
export SAMBA_KDC=1
samba_start || fail "samba_start"
samba_seed $USERS 2 || fail "samba_seed"
scim_start
dir=$(fixture_tmpdir)

PRINCIPAL="canopysvc@$SAMBA_REALM"
svc_dn=$(samba_add_account canopysvc 'Cn1.Keytab-Only42') || fail "add canopysvc"
samba_grant_get_changes "$svc_dn" || fail "grant get-changes to canopysvc"
samba_spn_add "ldap/$SAMBA_IP" 'DC1$' || fail "spn ldap/$SAMBA_IP"
samba_keytab "$PRINCIPAL" "$dir/canopy.keytab" || fail "export the keytab"
samba_krb5_conf || fail "krb5.conf"
export KRB5_CONFIG=$SAMBA_KRB5_CONF # the agent's environment: MIT krb5 reads it
(umask 077 && cat "$SCIM_TOKEN_FILE" >"$dir/agent-token")

agent_ports 1
agent_config 1 "[\"1@${AGENT_RAFT[1]}\"]" "$(
	cat <<YAML
source:
  kind: ad
  url: ldap://$SAMBA_IP
  sasl: { mech: GSSAPI, keytab: $dir/canopy.keytab, principal: "$PRINCIPAL" }
  poll_s: 30
  users:  { base: "$SAMBA_PEOPLE" }
  groups: { base: "$SAMBA_GROUPS" }
target:
  kind: scim
  url: $SCIM_URL
  token_file: $dir/agent-token
mapping:
  user:
    userName: "[sAMAccountName]"
    displayName: "[displayName]"
  group:
    displayName: "[sAMAccountName]"
YAML
)"
grep -qE 'bind_dn|password_file' "$dir/agent1.yaml" && fail "the config must carry no password"
agent_start 1

st_of() { json_eval "$(agent_status "$1" 2>/dev/null || echo '{}')" "$2"; }
wait_until 20 ready_leader 1 || fail "no leader"
wait_until 60 eval '[ "$(scim_count Users)" = $USERS ]' ||
	fail "GSSAPI sync: $(scim_count Users) users in the target: $(st_of 1 'JSON.stringify(j.sync)')"
msg=$(st_of 1 'j.sync.source.message')
[[ $msg == *"connected (DirSync on $SAMBA_BASE)"* ]] || fail "source message: $msg"
pass "bound with Kerberos from the keytab (no bind_dn, no password_file): $USERS users exported; source says: $msg"

# set_display USER VALUE: a change in the directory
set_display() {
	printf 'dn: CN=%s,%s\nchangetype: modify\nreplace: displayName\ndisplayName: %s\n' "$1" "$SAMBA_PEOPLE" "$2" |
		samba_ldapmodify >/dev/null || fail "modify $1"
}
g7=$(ad_guid "CN=user00007,$SAMBA_PEOPLE")
set_display user00007 "Kerberos Seven"
wait_until 20 eval '[ "$(ad_scim_user "$g7" u.displayName)" = "Kerberos Seven" ]' ||
	fail "a change did not arrive over the GSSAPI-bound connections: $(ad_scim_user "$g7" 'JSON.stringify(u)')"
pass "a change arrives over the bound connections (notification + DirSync, SASL-sealed on ldap://)"

probe() { agent_logs 1 | grep 'source check ok' | grep -F "bound as $PRINCIPAL (SASL GSSAPI)"; }
wait_until 20 probe >/dev/null || fail "health probe: $(agent_logs 1 | grep 'source check' | tail -2)"
pass "the health probe binds with GSSAPI too: $(probe | head -1 | grep -o 'detail=.*')"

# 2. the account's password changes: the exported keys are stale.
samba_tool_out=$(_samba_tool_local user setpassword canopysvc --newpassword='Cn1.Rotated-Key43' 2>&1) ||
	fail "setpassword: $samba_tool_out"
agent_stop 1
[ "$AGENT_RC" = 0 ] || fail "agent exited $AGENT_RC after SIGTERM: $(agent_logs 1 | tail -5)"
agent_start 1 # a new leadership: the source binds again, with the stale keytab
quarantined() { [ "$(st_of 1 'j.sync.quarantine && j.sync.quarantine.reason')" = source_unauthorized ]; }
wait_until 30 quarantined || fail "stale keytab: $(st_of 1 'JSON.stringify(j.sync)')"
detail=$(st_of 1 'j.sync.quarantine.detail')
for want in "$PRINCIPAL" "keytab $dir/canopy.keytab" "Preauthentication failed"; do
	[[ $detail == *"$want"* ]] || fail "quarantine detail lacks \"$want\": $detail"
done
pass "a stale keytab: quarantine source_unauthorized: $detail"

# 3. the keytab exported again: the source's next bind reads it (backoff up to 30 s)
samba_keytab "$PRINCIPAL" "$dir/canopy.keytab" || fail "export the keytab again"
set_display user00008 "Kerberos Eight"
g8=$(ad_guid "CN=user00008,$SAMBA_PEOPLE")
wait_until 45 eval '[ "$(ad_scim_user "$g8" u.displayName)" = "Kerberos Eight" ]' ||
	fail "after the new keytab: $(st_of 1 'JSON.stringify(j.sync)')"
[ "$(st_of 1 'j.sync.quarantine ? j.sync.quarantine.reason : "none"')" = none ] ||
	fail "still quarantined: $(st_of 1 'JSON.stringify(j.sync.quarantine)')"
pass "the keytab exported again is read at the next bind: quarantine cleared, changes flow, no restart"
agent_stop 1
[ "$AGENT_RC" = 0 ] || fail "agent exited $AGENT_RC after SIGTERM: $(agent_logs 1 | tail -5)"
