#!/usr/bin/env bash
# The provisioning log names an update's modified attributes, old -> new,
# and canopyctl logs shows them; a create lists none.
source "$(dirname "$0")/../fixtures/sync.sh"
dir=$(fixture_tmpdir)

sync_setup 5 1
agent_ports 1
sync_agent_config 1 "[\"1@${AGENT_RAFT[1]}\"]"
agent_start 1
users_are() { [ "$(scim_count Users)" = "$1" ]; }
wait_until 60 users_are 5 || fail "initial sync: $(scim_count Users) users"
wait_until 30 idle_leader 1 || fail "not idle"

dn="uid=user00002,ou=people,$SLAPD_BASE"
old_sn=$(scim_ctl GET store | json_get "j.Users.find(u=>u.userName==='user00002').name.familyName")
printf 'dn: %s\nchangetype: modify\nreplace: sn\nsn: Renamed\n\n' "$dn" | slapd_ldapmodify >/dev/null
updated() { [ "$("$CANOPYCTL" --server "${AGENT_CTL[1]}" logs --object "$dn" --json | json_get 'j.entries.some(e=>e.action==="update" && e.result==="ok")')" = true ]; }
wait_until 30 updated || fail "no update logged for $dn"
out=$("$CANOPYCTL" --server "${AGENT_CTL[1]}" logs --object "$dn" --json) || fail "logs --json"
mod=$(json_get 'JSON.stringify(j.entries.find(e=>e.action==="update").modified)' <<<"$out")
[ "$(json_get 'j.entries.find(e=>e.action==="create").modified === undefined' <<<"$out")" = true ] || fail "a create lists modified attributes: $out"
has_change() { # has_change ATTR-TEST OLD NEW
	[ "$(json_eval "$mod" "j.some(m => $1 && JSON.stringify(m.old).includes('$2') && JSON.stringify(m.new).includes('$3'))")" = true ]
}
has_change "m.attr==='name.familyName'" "$old_sn" Renamed || fail "modified lacks the surname $old_sn -> Renamed: $mod"
has_change "m.attr==='displayName'" "$old_sn" Renamed || fail "modified lacks displayName: $mod"
[ "$(json_eval "$mod" "j.some(m => m.attr==='userName')")" = false ] || fail "an unchanged attribute is listed: $mod"
txt=$("$CANOPYCTL" --server "${AGENT_CTL[1]}" logs --object "$dn") || fail "logs"
grep -qE "^    displayName: \".*$old_sn\" -> \".*Renamed\"$" <<<"$txt" || fail "the table does not show the change: $txt"
pass "update of $dn: modified attributes old -> new in the provisioning log and canopyctl logs"
