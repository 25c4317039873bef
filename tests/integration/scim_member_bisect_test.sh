#!/usr/bin/env bash
# A target that refuses some values of a group's member PATCH (400
# invalidValue for the whole request, RFC 7644 §3.5.2) costs only those
# values: a group of 64 users where the SCIM fixture refuses 2 member ids ends
# with the 62 others in the target; the 2 are recorded as failed members
# (group + member, status, detail) in `canopyctl failed`, counted by
# sync.failed and written to the provisioning log; the member PATCHes stay
# within the bisection's bound; once the fixture takes them again,
# `canopyctl resync --failed` adds the 2.
source "$(dirname "$0")/../fixtures/sync.sh"
dir=$(fixture_tmpdir)

sync_setup 64 0
agent_ports 1
sync_agent_config 1 "[\"1@${AGENT_RAFT[1]}\"]"
agent_start 1
st() { agent_status 1; }
synced() { [ "$(json_eval "$(st)" 'j.sync.state')" = idle ]; }
wait_until 60 synced || fail "initial sync did not finish"
[ "$(scim_count Users)" = 64 ] || fail "expected 64 users, got $(scim_count Users)"

id_of() { scim_ctl GET store | json_get "j.Users.find(u => u.userName === '$1').id"; }
bad1=$(id_of user00010) bad2=$(id_of user00050)
scim_ctl POST refuse "{\"memberIds\": [\"$bad1\", \"$bad2\"]}" >/dev/null || fail "fixture refusal switch"
mark=$(scim_ctl GET audit | json_get 'j.length ? j[j.length - 1].seq : 0')

{
	printf 'dn: cn=big,ou=groups,%s\nchangetype: add\nobjectClass: groupOfNames\ncn: big\n' "$SLAPD_BASE"
	for i in $(seq 1 64); do printf 'member: uid=user%05d,ou=people,%s\n' "$i" "$SLAPD_BASE"; done
	printf '\n'
} | slapd_ldapmodify >/dev/null || fail "add group big"

members() { scim_ctl GET store | json_get "(j.Groups.find(g => g.displayName === 'big') || {members: []}).members?.length ?? 0"; }
failed_is() { [ "$(json_eval "$(st)" 'j.sync.failed')" = "$1" ]; }
wait_until 60 failed_is 2 || fail "expected 2 failed members: $(json_eval "$(st)" 'JSON.stringify(j.sync)')"
wait_until 30 synced || fail "not idle"
[ "$(members)" = 62 ] || fail "expected 62 members in the target, got $(members)"
has_bad=$(scim_ctl GET store | json_get "(j.Groups.find(g => g.displayName === 'big').members || []).some(m => m.value === '$bad1' || m.value === '$bad2')")
[ "$has_bad" = false ] || fail "a refused member is in the target"
pass "64 members, 2 refused: 62 present, sync.failed = 2"

# The record of the group lists what the target has: nothing more to send.
"$CANOPYCTL" --server "${AGENT_CTL[1]}" failed --json >"$dir/failed.json" || fail "canopyctl failed"
[ "$(json_get 'j.failed.filter(f => f.type === "member" && /^cn=big,ou=groups,/.test(f.group) && f.change === "add" && f.http_status === 400 && /invalidValue: One or more Group members are invalid/.test(f.error)).map(f => f.dn).sort().join(" ")' <"$dir/failed.json")" = \
	"uid=user00010,ou=people,$SLAPD_BASE uid=user00050,ou=people,$SLAPD_BASE" ] ||
	fail "failed list does not name the 2 refused members of big: $(cat "$dir/failed.json")"
[ "$(json_get 'j.failed.length' <"$dir/failed.json")" = 2 ] || fail "something else failed: $(cat "$dir/failed.json")"
log="$dir/data1/provisioning.log"
for u in user00010 user00050; do
	grep '"action":"member-add"' "$log" | grep '"result":"error"' | grep "uid=$u,ou=people" | grep -q 'of group cn=big,ou=groups' ||
		fail "provisioning log has no refused member-add of $u: $(grep member-add "$log" | head -3)"
done
pass "failed members listed with group, member, status and detail; provisioning log names them"

# Bound (sync/engine/bisect.c): 1 + 2 k ceil(log2 n) PATCHes for k refused
# values among n: 1 + 2 * 2 * 6 = 25 for 2 of 64.
patches=$(scim_ctl GET "audit?since=$mark" | json_get 'j.filter(a => a.method === "PATCH" && /^\/Groups\//.test(a.path)).length')
refused=$(scim_ctl GET "audit?since=$mark" | json_get 'j.filter(a => a.method === "PATCH" && /^\/Groups\//.test(a.path) && a.status === 400).length')
echo "member PATCHes: $patches ($refused refused)"
((patches <= 25)) || fail "$patches member PATCHes, more than the bound 25"
((refused >= 2)) || fail "the fixture refused only $refused PATCHes: the refusal switch did not bite"
pass "$patches member PATCHes (bound 25)"

scim_ctl POST refuse '{}' >/dev/null
out=$("$CANOPYCTL" --server "${AGENT_CTL[1]}" resync --failed) || fail "resync --failed: $out"
all() { [ "$(members)" = 64 ]; }
wait_until 60 all || fail "after resync: $(members) members, expected 64"
wait_until 30 failed_is 0 || fail "still failed after resync: $(json_eval "$(st)" 'j.sync.failed')"
wait_until 30 synced || fail "not idle after resync"
wait_until 30 sync_compare || sync_compare || fail "target differs from source after resync"
pass "resync --failed: the 2 members added, nothing failed, target equals source"
