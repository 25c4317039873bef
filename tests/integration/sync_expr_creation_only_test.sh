#!/usr/bin/env bash
# Mapping rules that change at every evaluation -- RandomString(), Now(), Guid() --
# are applied when the object is created and never again: the first pass
# writes them, later passes over unchanged entries write nothing (the content
# hash leaves them out), and an update caused by another attribute leaves
# them out of the request. A rule wrapped in Redact() reaches the target
# unchanged, but the provisioning log lists its change as "[Redact]" and
# never its values. docs/mapping-expressions.md, "Values that change at every
# evaluation" and "Redact".
source "$(dirname "$0")/../fixtures/sync.sh"

E=urn:ietf:params:scim:schemas:extension:enterprise:2.0:User
USER_MAPPING_EXTRA="    nickName: 'Redact(RandomString(12,2,2,2,2))'
    '$E:employeeNumber': 'Now()'
    '$E:costCenter': 'Guid()'
    title: 'Redact(Join(\" \", \"title of\", [sn]))'"
sync_setup 5 1
agent_ports 1
sync_agent_config 1 "[\"1@${AGENT_RAFT[1]}\"]"
agent_start 1
users_are() { [ "$(scim_count Users)" = "$1" ]; }
wait_until 60 users_are 5 || fail "initial sync: $(scim_count Users) users"
wait_until 30 idle_leader 1 || fail "not idle"

user() { scim_ctl GET store | json_get "JSON.stringify((u => u ? [u.nickName, (u['$E'] || {}).employeeNumber, u.title, u.name.familyName, (u['$E'] || {}).costCenter] : null)(j.Users.find(u => u.userName === '$1')))"; }
first=$(user user00002)
nick=$(json_eval "$first" 'j[0]') && when=$(json_eval "$first" 'j[1]')
[[ $nick =~ ^.{12}$ ]] || fail "created without a 12-character RandomString nickName: $first"
[[ $when =~ ^[0-9]{1,2}/[0-9]{1,2}/[0-9]{4}\ [0-9]{1,2}:[0-9]{2}:[0-9]{2}\ [AP]M$ ]] || fail "created without Now() in M/d/yyyy h:mm:ss tt: $first"
[ "$(json_eval "$first" 'j[2]')" = "title of $(json_eval "$first" 'j[3]')" ] || fail "Redact changed the value sent: $first"
[[ $(json_eval "$first" 'j[4]') =~ ^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$ ]] ||
	fail "created without a lower-case Guid() costCenter: $first"
pass "created with RandomString, Now(), Guid() and a redacted title: $first"

# an entry event whose mapped content is the same writes nothing, though
# Now() has moved on: user00003 changes an unmapped attribute; the marker
# that its event went through is the update of user00004, changed after it
writes=$(scim_writes)
printf 'dn: uid=user00003,ou=people,%s\nchangetype: modify\nreplace: description\ndescription: touched\n\n' "$SLAPD_BASE" |
	slapd_ldapmodify >/dev/null
printf 'dn: uid=user00004,ou=people,%s\nchangetype: modify\nreplace: sn\nsn: Marker\n\n' "$SLAPD_BASE" |
	slapd_ldapmodify >/dev/null
marked() { [ "$(json_eval "$(user user00004)" 'j[3]')" = Marker ]; }
wait_until 30 marked || fail "user00004's change did not reach the target"
wait_until 30 idle_leader 1 || fail "not idle"
[ "$(scim_writes)" = $((writes + 1)) ] ||
	fail "$(($(scim_writes) - writes)) writes for one changed user: an unchanged entry was rewritten"
pass "an entry whose mapped content did not change is not rewritten (Now(), RandomString() and Guid() left out of its hash)"

# an update caused by another attribute: the creation-only values stay
dn="uid=user00002,ou=people,$SLAPD_BASE"
printf 'dn: %s\nchangetype: modify\nreplace: sn\nsn: Renamed\n\n' "$dn" | slapd_ldapmodify >/dev/null
updated() { [ "$("$CANOPYCTL" --server "${AGENT_CTL[1]}" logs --object "$dn" --json | json_get 'j.entries.some(e=>e.action==="update" && e.result==="ok")')" = true ]; }
wait_until 30 updated || fail "no update logged for $dn"
after=$(user user00002)
[ "$(json_eval "$after" 'j[3]')" = Renamed ] && [ "$(json_eval "$after" 'j[2]')" = "title of Renamed" ] ||
	fail "the update did not reach the target: $after"
# SCIM PUT replaces the resource: the target drops what the update leaves
# out (RFC 7644 §3.5.1 lets a server clear it), so the value is the first one
# or none, never a new one
[ "$(json_eval "[$first,$after]" 'j[1][0] === null || j[1][0] === j[0][0]')" = true ] ||
	fail "the update wrote a new RandomString: $first, then $after"
[ "$(json_eval "[$first,$after]" 'j[1][1] === null || j[1][1] === j[0][1]')" = true ] ||
	fail "the update wrote a new Now(): $first, then $after"
[ "$(json_eval "[$first,$after]" 'j[1][4] === null || j[1][4] === undefined || j[1][4] === j[0][4]')" = true ] ||
	fail "the update wrote a new Guid(): $first, then $after"
pass "an update of sn sends no new RandomString, Now() or Guid(): $after"

# the provisioning log: the title's change is listed, its values are not
out=$("$CANOPYCTL" --server "${AGENT_CTL[1]}" logs --object "$dn" --json) || fail "logs --json"
mod=$(json_get 'JSON.stringify(j.entries.find(e=>e.action==="update").modified)' <<<"$out")
[ "$(json_eval "$mod" "j.some(m => m.attr==='title' && m.old==='[Redact]' && m.new==='[Redact]')")" = true ] ||
	fail "the redacted title's change is not listed as [Redact]: $mod"
[ "$(json_eval "$mod" "j.some(m => m.attr==='name.familyName' && m.new==='Renamed')")" = true ] ||
	fail "the surname's change is not listed: $mod"
! grep -q "title of" <<<"$out" || fail "the provisioning log shows the redacted value: $out"
pass "provisioning log: title [Redact] -> [Redact], the surname in clear"
