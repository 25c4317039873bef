#!/usr/bin/env bash
# Binary Active Directory attributes through mapping expressions, against a
# Samba AD DC: objectSid reaches the mappings as base64 (the DC's bytes, as
# ldapsearch prints them), StringFromSid gives the S-1-5-21-... that
# samba-tool reports, objectGUID is the anchor's GUID text and CGuid turns it
# back into the DC's bytes; ConvertToBase64 is UTF-16LE (iconv's answer).
# Checked for the initial DirSync, for a user added later (an incremental
# DirSync) and after a modify that does not send objectSid again (the
# source's cache keeps it). docs/mapping-expressions.md, "Binary values".
source "$(dirname "$0")/../fixtures/ad_sync.sh"

USERS=5
ad_sync_setup $USERS 1 2
E=urn:ietf:params:scim:schemas:extension:enterprise:2.0:User
AD_USER_MAPPING_EXTRA="    nickName: 'StringFromSid([objectSid])'
    title: '[objectSid]'
    userType: 'CGuid([objectGUID])'
    '$E:employeeNumber': 'StringFromGuid([objectGUID])'
    '$E:costCenter': 'ConvertToBase64([sAMAccountName])'"
agent_ports 1
ad_agent_config 1 "[\"1@${AGENT_RAFT[1]}\"]"
agent_start 1
wait_until 20 ready_leader 1 || fail "no leader: $(agent_logs 1 | tail -n 5)"

# what the DC says about NAME, independently of canopy
dc_sid() { samba-tool user show "$1" --attributes=objectSid -H "$SAMBA_DIR/private/sam.ldb" 2>/dev/null |
	sed -n 's/^objectSid: \(S-1-[0-9-]*\)$/\1/p'; }
dc_b64() { samba_search -b "CN=$1,$SAMBA_PEOPLE" -s base '(objectClass=*)' "$2" | sed -n "s/^$2:: //p"; }
utf16_b64() { printf %s "$1" | iconv -f UTF-8 -t UTF-16LE | base64 -w0; }
in_target() {
	ad_scim_user "$1" "u ? [u.nickName, u.title, u.userType, (u['$E'] || {}).employeeNumber,
		(u['$E'] || {}).costCenter].join(' ') : ''"
}

# check NAME: the target's user has exactly the values the DC gives
check() {
	local name=$1 g sid want
	g=$(ad_guid "CN=$name,$SAMBA_PEOPLE") && sid=$(dc_sid "$name") || fail "$name: no objectGUID/objectSid from the DC"
	[[ $sid =~ ^S-1-5-21-[0-9]+-[0-9]+-[0-9]+-[0-9]+$ ]] || fail "$name: samba-tool says objectSid $sid"
	want="$sid $(dc_b64 "$name" objectSid) $(dc_b64 "$name" objectGUID) $g $(utf16_b64 "$name")"
	wait_until 20 eval '[ "$(in_target "$g")" = "$want" ]' ||
		fail "$name in the target: \"$(in_target "$g")\", the DC says \"$want\""
	echo "info: $name: $want"
}
# every user either exported or failed (a mapping that cannot read the value
# fails the object): then no failure is allowed
settled() { [ $(($(scim_count Users) + $(json_eval "$(agent_status 1)" 'j.sync.failed'))) -ge $USERS ]; }
wait_until 60 settled || fail "initial sync: $(scim_count Users) users: $(agent_status 1)"
[ "$(json_eval "$(agent_status 1)" 'j.sync.failed')" = 0 ] ||
	fail "objects failed: $(curl -sf --max-time 5 "http://${AGENT_CTL[1]}/v1/failed")"
for k in 1 3 5; do check "$(printf 'user%05d' $k)"; done
pass "initial DirSync: StringFromSid([objectSid]) is samba-tool's SID, [objectSid] the DC's bytes in base64, CGuid([objectGUID]) the objectGUID bytes, StringFromGuid the anchor, ConvertToBase64 UTF-16LE"

samba_ldapadd >/dev/null <<LDIF || fail "add user09999"
dn: CN=user09999,$SAMBA_PEOPLE
objectClass: user
sAMAccountName: user09999
displayName: Late User
LDIF
check user09999
pass "a user added later (incremental DirSync): its SID and GUID in the target"

samba_ldapmodify >/dev/null <<LDIF || fail "modify user00003"
dn: CN=user00003,$SAMBA_PEOPLE
changetype: modify
replace: displayName
displayName: Renamed Three
LDIF
g3=$(ad_guid "CN=user00003,$SAMBA_PEOPLE")
wait_until 20 eval '[ "$(ad_scim_user "$g3" u.displayName)" = "Renamed Three" ]' || fail "modify of user00003 not in the target"
check user00003
pass "a modify that does not send objectSid again: the SID stays in the target"
