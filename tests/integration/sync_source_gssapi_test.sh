#!/usr/bin/env bash
# source.sasl GSSAPI on the OpenLDAP source: slapd accepts Kerberos binds for
# ldap/127.0.0.1 (its keys in a keytab, KRB5_KTNAME), the realm's KDC is a
# Samba AD DC (SAMBA_KDC=1) that holds both accounts, canopysvc (the agent)
# and slapdsvc (slapd's service principal). The agent's config has no
# bind_dn and no password_file.
#  1. the agent syncs over RFC 4533 with a GSSAPI bind (slapd logs the bind
#     as uid=canopysvc,cn=gssapi,cn=auth, mech GSSAPI) and a persist-phase
#     change arrives over the SASL-sealed connection;
#  2. over TLS (ldaps://) the bind negotiates no SASL layer (maxssf=0: TLS
#     protects the session; Active Directory refuses a second layer);
#  3. a stale keytab is quarantine source_unauthorized with the cause.
source "$(dirname "$0")/../fixtures/sync.sh"
source "$(dirname "$0")/../fixtures/samba.sh"

USERS=30 GROUPS_N=3
export SAMBA_KDC=1
samba_start || fail "samba_start"
dir=$(fixture_tmpdir)
PRINCIPAL="canopysvc@$SAMBA_REALM"
samba_add_account canopysvc 'Cn1.Keytab-Only42' >/dev/null || fail "add canopysvc"
samba_add_account slapdsvc 'Cn1.Slapd-Service42' >/dev/null || fail "add slapdsvc"
samba_spn_add ldap/127.0.0.1 slapdsvc || fail "spn ldap/127.0.0.1"
samba_keytab "ldap/127.0.0.1@$SAMBA_REALM" "$dir/slapd.keytab" || fail "slapd's keytab"
samba_keytab "$PRINCIPAL" "$dir/canopy.keytab" || fail "the agent's keytab"
samba_krb5_conf 127.0.0.1 || fail "krb5.conf"
export KRB5_CONFIG=$SAMBA_KRB5_CONF

KRB5_KTNAME=$dir/slapd.keytab SLAPD_SASL_HOST=127.0.0.1 SLAPD_TLS=1 SLAPD_DEBUG=stats sync_setup $USERS $GROUPS_N
agent_ports 1
SOURCE_SASL="{ mech: GSSAPI, keytab: $dir/canopy.keytab, principal: \"$PRINCIPAL\" }" \
	sync_agent_config 1 "[\"1@${AGENT_RAFT[1]}\"]"
grep -qE 'bind_dn|password_file' "$dir/agent1.yaml" && fail "the config must carry no password"
agent_start 1

st_of() { json_eval "$(agent_status "$1" 2>/dev/null || echo '{}')" "$2"; }
wait_until 20 ready_leader 1 || fail "no leader"
wait_until 60 eval '[ "$(scim_count Users)" = $USERS ] && [ "$(scim_count Groups)" = $GROUPS_N ]' ||
	fail "GSSAPI sync: $(scim_count Users) users: $(st_of 1 'JSON.stringify(j.sync)')"
sync_compare
binds=$(grep -c 'BIND dn="uid=canopysvc,cn=gssapi,cn=auth" mech=GSSAPI' "$SLAPD_LOG")
[ "$binds" -ge 2 ] || fail "slapd saw $binds GSSAPI binds of canopysvc (want both sessions): $(grep BIND "$SLAPD_LOG" | tail -3)"
pass "RFC 4533 sync with a Kerberos bind from the keytab: $USERS users, $GROUPS_N groups; slapd: $(grep -m1 'mech=GSSAPI' "$SLAPD_LOG" | grep -o 'BIND dn=.*')"

slapd_ldapmodify >/dev/null <<EOF || fail "modify user00003"
dn: uid=user00003,ou=people,$SLAPD_BASE
changetype: modify
replace: sn
sn: Kerberized
EOF
wait_until 20 eval '[ "$(scim_ctl GET store | json_get "j.Users.find(u => u.userName === \"user00003\").name.familyName")" = Kerberized ]' ||
	fail "a persist-phase change did not arrive"
sync_compare
pass "a persist-phase change arrives over the SASL-sealed connection"

# 2. the same agent on ldaps://
agent_stop 1
[ "$AGENT_RC" = 0 ] || fail "agent exited $AGENT_RC after SIGTERM"
sed -i "s|^  url: $SLAPD_URL\$|  url: $SLAPD_LDAPS_URL\n  tls: { ca: $SLAPD_CA }|" "$dir/agent1.yaml"
grep -qF "url: $SLAPD_LDAPS_URL" "$dir/agent1.yaml" || fail "config not switched to ldaps: $(grep url "$dir/agent1.yaml")"
agent_start 1
tls_binds() { grep -c 'BIND dn="uid=canopysvc,cn=gssapi,cn=auth" mech=GSSAPI bind_ssf=0 ssf=' "$SLAPD_LOG"; }
wait_until 20 eval '[ "$(tls_binds)" -ge 2 ]' || fail "no GSSAPI bind without a SASL layer over TLS: $(grep 'mech=GSSAPI' "$SLAPD_LOG" | tail -2)"
wait_until 20 eval '[ "$(st_of 1 j.sync.source.connected)" = true ]' || fail "ldaps: $(st_of 1 'JSON.stringify(j.sync)')"
pass "over ldaps:// the bind adds no SASL layer: slapd: $(grep 'mech=GSSAPI bind_ssf=0' "$SLAPD_LOG" | tail -1 | grep -o 'BIND dn=.*')"

_samba_tool_local user setpassword canopysvc --newpassword='Cn1.Rotated-Key43' >/dev/null || fail "setpassword"
agent_stop 1
[ "$AGENT_RC" = 0 ] || fail "agent exited $AGENT_RC after SIGTERM"
agent_start 1
quarantined() { [ "$(st_of 1 'j.sync.quarantine && j.sync.quarantine.reason')" = source_unauthorized ]; }
wait_until 30 quarantined || fail "stale keytab: $(st_of 1 'JSON.stringify(j.sync)')"
detail=$(st_of 1 'j.sync.quarantine.detail')
for want in "$SLAPD_LDAPS_URL" "$PRINCIPAL" "keytab $dir/canopy.keytab" "Preauthentication failed"; do
	[[ $detail == *"$want"* ]] || fail "quarantine detail lacks \"$want\": $detail"
done
pass "a stale keytab: quarantine source_unauthorized: $detail"
agent_stop 1
[ "$AGENT_RC" = 0 ] || fail "agent exited $AGENT_RC after SIGTERM"
