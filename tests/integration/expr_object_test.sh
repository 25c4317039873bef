#!/usr/bin/env bash
# `canopyctl expr --object DN --config FILE` reads one entry with the agent
# configuration's source settings (no agent running) and evaluates an
# expression over it, or, without an expression, the configured mapping of
# the entry's type: the resource the agent would write, with the entry's
# entryUUID as externalId. A missing entry fails with exit 1, naming the DN;
# --object without --config is a usage error (2).
source "$(dirname "$0")/../fixtures/sync.sh"
dir=$(fixture_tmpdir)

E=urn:ietf:params:scim:schemas:extension:enterprise:2.0:User
USER_MAPPING_EXTRA="    nickName: 'PCase(Join(\" \", [sn], [givenName]))'
    '$E:employeeNumber': 'RandomString(8,2,2,2,2)'"
sync_setup 3 1
agent_ports 1
sync_agent_config 1 "[\"1@${AGENT_RAFT[1]}\"]"
cfg=$dir/agent1.yaml
[ -f "$cfg" ] || fail "no agent config at $cfg"
dn="uid=user00001,ou=people,$SLAPD_BASE"
ldap() { slapd_search -b "$dn" -s base '(objectClass=*)' "$1" | sed -n "s/^$1: //p"; }
given=$(ldap givenName) sn=$(ldap sn) uuid=$(ldap entryUUID)
[ -n "$given" ] && [ -n "$sn" ] && [ -n "$uuid" ] || fail "slapd has no givenName/sn/entryUUID for $dn"

# an expression over the entry
out=$("$CANOPYCTL" expr 'ToUpper(Join(", ", [sn], [givenName]))' --object "$dn" --config "$cfg" --json) ||
	fail "expr --object exited $?"
[ "$(json_eval "$out" j.value)" = "$(tr a-z A-Z <<<"$sn, $given")" ] || fail "expr --object: $out, slapd: $sn, $given"
pass "an expression over $dn: $out"

# the configured mapping of a user
out=$("$CANOPYCTL" expr --object "$dn" --config "$cfg" --json) || fail "expr --object (mapping) exited $?"
[ "$(json_eval "$out" 'j.type + " " + j.resource.userName + " " + j.resource.externalId')" = "user user00001 $uuid" ] ||
	fail "the mapped user: $out (entryUUID $uuid)"
[ "$(json_eval "$out" 'j.resource.displayName')" = "$given $sn" ] || fail "displayName: $out"
[ "$(json_eval "$out" "j.resource['$E'].employeeNumber.length")" = 8 ] ||
	fail "the creation-only RandomString is not in the resource a creation would send: $out"
pass "the mapped user: $(json_eval "$out" 'JSON.stringify(j.resource)')"

# a group: the group mapping
gdn=$(slapd_search -b "ou=groups,$SLAPD_BASE" '(objectClass=groupOfNames)' dn | sed -n 's/^dn: //p' | head -n1)
out=$("$CANOPYCTL" expr --object "$gdn" --config "$cfg" --json) || fail "expr --object $gdn exited $?"
[ "$(json_eval "$out" 'j.type')" = group ] && [ "$(json_eval "$out" 'j.resource.displayName')" = "$(sed 's/^cn=\([^,]*\),.*/\1/' <<<"$gdn")" ] ||
	fail "the mapped group: $out"
pass "the mapped group $gdn"

# errors
rc=0
out=$("$CANOPYCTL" expr '[sn]' --object "uid=nobody,ou=people,$SLAPD_BASE" --config "$cfg" 2>&1) || rc=$?
[ $rc = 1 ] || fail "a missing entry: exit $rc, not 1: $out"
grep -q "uid=nobody,ou=people,$SLAPD_BASE" <<<"$out" || fail "a missing entry: the message does not name it: $out"
"$CANOPYCTL" expr '[sn]' --object "$dn" >/dev/null 2>&1
[ $? = 2 ] || fail "--object without --config is not a usage error"
pass "a missing entry exits 1 naming it; --object without --config exits 2"
