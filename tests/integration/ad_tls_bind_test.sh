#!/usr/bin/env bash
# The Active Directory source against a Samba AD DC: TLS, the bind account,
# polling and the anchor comparison, one single-node agent per case:
#   1. ldap:// + source.tls { ca }: StartTLS, then bind and sync (without
#      source.tls the DC refuses the simple bind: source_unauthorized);
#   2. a URL whose address the DC's certificate does not carry
#      (ldaps://[::ffff:IP], the same DC through an IPv4-mapped address):
#      refused, quarantine source_unreachable, the detail (status, health,
#      log) names the address and says it does not match the certificate;
#   3. an ordinary domain user as bind account: users and groups sync through
#      DirSync with OBJECT_SECURITY, and the start-up log says what it cannot
#      see (deleted objects);
#   4. source.notify false: no change-notification search; a change arrives
#      by the DirSync of source.poll_s, and the log says so;
#   5. source.reconcile_s: the ordinary account sees no tombstone (a later
#      change arrives, the deleted user stays), then the anchor comparison
#      reports the deleted user and nothing else is deleted;
#   6. a user deleted while no agent ran is deleted when the agent starts
#      again from its cursor (its first read is a refresh for such an
#      account: its cache never held the user, so no comparison could).
source "$(dirname "$0")/../fixtures/ad_sync.sh"
dir=$(fixture_tmpdir)

USERS=20 NGROUPS=2
ad_sync_setup $USERS $NGROUPS 0
SVC_PW='Svc.Pw-4711x'
SVC_DN=$(samba_add_account canopysvc "$SVC_PW") || fail "add canopysvc"
SVC_PW_FILE=$dir/svc.pw
(umask 077 && printf '%s' "$SVC_PW" >"$SVC_PW_FILE")
NGROUPS_ALL=$((NGROUPS + 1)) # samba_seed's groups and ad_sync_setup's CN=big

st_of() { json_eval "$(agent_status "$1" 2>/dev/null || echo '{}')" "$2"; }
quarantine_is() { [ "$(st_of "$1" 'j.sync.quarantine && j.sync.quarantine.reason')" = "$2" ]; }
health_says() { st_of "$1" '(j.health||{source:{}}).source.detail' | grep -qF "$2"; }
logged() { agent_logs "$1" | grep -qF "$2"; }
# established connections to the DC's LDAPS port (only agents connect to it)
dc_conns() { ss -tn state established dst "$SAMBA_IP:636" | tail -n +2 | wc -l; }
synced() { [ "$(scim_count Users)" = "$1" ] && [ "$(scim_count Groups)" = "$NGROUPS_ALL" ]; }
# one_agent ID [KEY=VALUE for the source section]...: a one-node cluster
one_agent() {
	local id=$1 kv
	shift
	agent_ports "$id"
	ad_agent_config "$id" "[\"$id@${AGENT_RAFT[$id]}\"]"
	for kv in "$@"; do
		case $kv in
		url=*) sed -i "0,/^  url: /s|^  url: .*|  url: ${kv#url=}|" "$dir/agent$id.yaml" ;;
		tls=) sed -i '/^  tls: /d' "$dir/agent$id.yaml" ;;
		svc=) sed -i -e "s|^  bind_dn: .*|  bind_dn: \"$SVC_DN\"|" \
			-e "s|^  password_file: .*|  password_file: $SVC_PW_FILE|" "$dir/agent$id.yaml" ;;
		poll_s=*) sed -i "s|^  poll_s: .*|  poll_s: ${kv#poll_s=}|" "$dir/agent$id.yaml" ;;
		*) sed -i "/^  poll_s: /a\\  ${kv%%=*}: ${kv#*=}" "$dir/agent$id.yaml" ;;
		esac
	done
	agent_start "$id"
}

# 1. StartTLS on ldap://
one_agent 1 "url=$SAMBA_LDAP_URL"
wait_until 30 synced $USERS || fail "StartTLS: $(scim_count Users) users, $(scim_count Groups) groups: $(st_of 1 'j.sync')"
st_of 1 'j.sync.source.message' | grep -qF "$SAMBA_LDAP_URL: connected" || fail "StartTLS status: $(st_of 1 'j.sync.source')"
agent_stop 1
# the same without source.tls: this DC refuses a simple bind in clear text
scim_reset
one_agent 2 "url=$SAMBA_LDAP_URL" tls=
wait_until 20 quarantine_is 2 source_unauthorized || fail "ldap:// without tls: $(st_of 2 'j.sync')"
[ "$(scim_count Users)" = 0 ] || fail "something was written by an agent the DC refused"
agent_stop 2
pass "ldap:// + source.tls: StartTLS, bind and sync ($USERS users); without source.tls the DC refuses the bind"

# 2. an address the certificate does not carry
MAPPED="::ffff:$SAMBA_IP"
one_agent 3 "url=ldaps://[$MAPPED]"
wait_until 20 quarantine_is 3 source_unreachable || fail "mismatch: quarantine $(st_of 3 'j.sync')"
detail=$(st_of 3 'j.sync.quarantine.detail')
echo "$detail"
want="the address $MAPPED does not match the server certificate"
[[ $detail == *"$want"* ]] || fail "mismatch detail: $detail"
[[ $detail == *"IP:$SAMBA_IP"* ]] || fail "the detail does not say whom the certificate is for: $detail"
wait_until 15 health_says 3 "$want" || fail "health detail: $(st_of 3 'j.health.source')"
logged 3 "$want" || fail "the log does not say why"
[ "$(scim_count Users)" = 0 ] || fail "something was written through a mismatched certificate"
agent_stop 3
pass "certificate mismatch: source_unreachable, \"$detail\""

# 3. an ordinary domain user
one_agent 4 svc= reconcile_s=0
wait_until 30 synced $USERS || fail "ordinary account: $(scim_count Users) users, $(scim_count Groups) groups: $(st_of 4 'j.sync')"
want1=$(printf 'user%05d,' $(seq 1 10) | sed 's/,$//')
[ "$(ad_scim_group group0001 'names.sort().join()')" = "$want1" ] ||
	fail "group0001 members: $(ad_scim_group group0001 'names.sort().join()')"
wait_until 10 logged 4 "$SVC_DN is not an administrator: DirSync runs with OBJECT_SECURITY" ||
	fail "no word of the account's limits: $(agent_logs 4 | grep -i source | tail -5)"
logged 4 "source.reconcile_s is 0, so deletions may be missed" || fail "reconcile off not said"
wait_until 10 eval '[ "$(dc_conns)" = 2 ]' || fail "notify on: $(dc_conns) connections to the DC, want 2 (DirSync + notification)"
agent_stop 4
pass "ordinary account: $USERS users and $NGROUPS_ALL groups with members via OBJECT_SECURITY; the log says it cannot see deleted objects"

# 4. no change notifications: the poll
scim_reset
one_agent 5 notify=false poll_s=3
wait_until 30 synced $USERS || fail "notify false: initial sync: $(st_of 5 'j.sync')"
st_of 5 'j.sync.source.message' | grep -qF "change notification off (source.notify)" ||
	fail "status does not say notifications are off: $(st_of 5 'j.sync.source')"
wait_until 10 eval '[ "$(dc_conns)" = 1 ]' || fail "notify false: $(dc_conns) connections to the DC, want 1 (DirSync only)"
g7=$(ad_guid "CN=user00007,$SAMBA_PEOPLE")
printf 'dn: CN=user00007,%s\nchangetype: modify\nreplace: mail\nmail: polled@canopy.test\n' "$SAMBA_PEOPLE" |
	samba_ldapmodify >/dev/null || fail "modify user00007"
wait_until 10 eval '[ "$(ad_scim_user "$g7" "u.emails[0].value")" = polled@canopy.test ]' ||
	fail "the change did not arrive within poll_s: $(ad_scim_user "$g7" 'JSON.stringify(u)')"
wait_until 5 logged 5 "the DirSync of the poll interval (source.poll_s) found 1 changed objects (change notification off" ||
	fail "the change did not come by the poll: $(agent_logs 5 | grep -F 'msg=source' | tail -3)"
agent_stop 5
pass "source.notify false: one connection, the change arrived by the poll (poll_s 3)"

# 5. deletions an ordinary account cannot see: the anchor comparison
scim_reset
one_agent 6 svc= reconcile_s=8
wait_until 30 synced $USERS || fail "reconcile agent: initial sync: $(st_of 6 'j.sync')"
wait_until 20 logged 6 "reconcile: " || fail "no reconcile ran: $(agent_logs 6 | grep -F 'msg=source' | tail -3)"
logged 6 "no longer on the DC," && fail "the first reconcile found deletions: $(agent_logs 6 | grep -F reconcile)"
g5=$(ad_guid "CN=user00005,$SAMBA_PEOPLE")
g6=$(ad_guid "CN=user00006,$SAMBA_PEOPLE")
samba_ldapdelete "CN=user00005,$SAMBA_PEOPLE" || fail "delete user00005"
printf 'dn: CN=user00006,%s\nchangetype: modify\nreplace: mail\nmail: after-delete@canopy.test\n' "$SAMBA_PEOPLE" |
	samba_ldapmodify >/dev/null || fail "modify user00006"
wait_until 5 eval '[ "$(ad_scim_user "$g6" "u.emails[0].value")" = after-delete@canopy.test ]' ||
	fail "the change after the delete did not arrive"
[ "$(ad_scim_user "$g5" 'u !== undefined')" = true ] ||
	fail "user00005 was deleted before a reconcile: this account saw the tombstone, the test shows nothing"
t0=$(now_ms)
wait_until 20 eval '[ "$(ad_scim_user "$g5" "u === undefined")" = true ]' || fail "user00005 still in the target"
echo "info: delete -> gone from the target in $(($(now_ms) - t0)) ms after the next change arrived (reconcile_s 8)"
logged 6 "1 no longer on the DC, reported deleted: CN=user00005,$SAMBA_PEOPLE" ||
	fail "reconcile log: $(agent_logs 6 | grep -F reconcile)"
synced $((USERS - 1)) || fail "after the reconcile: $(scim_count Users) users, $(scim_count Groups) groups"
want1=$(printf 'user%05d,' 1 2 3 4 6 7 8 9 10 | sed 's/,$//')
wait_until 10 eval '[ "$(ad_scim_group group0001 "names.sort().join()")" = "$want1" ]' ||
	fail "group0001 after the reconcile: $(ad_scim_group group0001 'names.sort().join()')"
deletes=$(scim_ctl GET audit | json_get 'j.filter(a => a.method === "DELETE" && a.status < 300).length')
[ "$deletes" = 1 ] || fail "$deletes DELETE requests, want 1"
agent_stop 6
pass "reconcile: the ordinary account missed the tombstone; the anchor comparison deleted user00005 alone (and its membership)"

# 6. deleted while no agent ran: the restarted agent's first read is a refresh
agent_stop 6
g8=$(ad_guid "CN=user00008,$SAMBA_PEOPLE")
samba_ldapdelete "CN=user00008,$SAMBA_PEOPLE" || fail "delete user00008"
t0=$(now_ms)
agent_start 6
wait_until 30 eval '[ "$(ad_scim_user "$g8" "u === undefined")" = true ]' || fail "user00008 still in the target after the restart"
echo "info: restart -> user00008 gone in $(($(now_ms) - t0)) ms (reconcile_s 8)"
synced $((USERS - 2)) || fail "after the restart: $(scim_count Users) users, $(scim_count Groups) groups"
deletes=$(scim_ctl GET audit | json_get 'j.filter(a => a.method === "DELETE" && a.status < 300).length')
[ "$deletes" = 2 ] || fail "$deletes DELETE requests, want 2"
agent_stop 6
pass "deleted while no agent ran: gone after the restart from the cursor, nothing else deleted"
