#!/usr/bin/env bash
# In-doubt repair (docs/architecture.md, fencing by intents): a leader freezes (SIGSTOP) right
# after sending a write that the network delivers late -- after the new
# leader wrote a newer value. The late write leaves the target stale; the new
# leader finds the frozen leader's intent in the replicated state and, once
# that write has surely landed, reads the object again by its DN (not the
# whole directory) and rewrites it.
#
# Deterministic: the SCIM fixture holds the frozen leader's write ("hold"
# fault) until the test releases it, which it does only once the new
# leader's newer value is in the target -- so the stale write always lands
# after it, and the repair is always asserted.
source "$(dirname "$0")/../fixtures/sync.sh"
dir=$(fixture_tmpdir)

# The frozen leader's requests time out after 8 s: the new leader repairs
# once that has passed (+ T) after it took over. The held write is released
# as soon as the new leader's write is in, seconds before that.
TARGET_TIMEOUT_MS=8000
sync_setup 20 1
sync_start_cluster 3
users_are() { [ "$(scim_count Users)" = "$1" ]; }
wait_until 60 users_are 20 || fail "initial sync"
wait_until 30 idle_leader 1 2 3 || fail "no idle leader"
L=$(idle_leader 1 2 3)
rest=(); for i in 1 2 3; do [ "$i" != "$L" ] && rest+=("$i"); done

sn_of() { scim_ctl GET store | json_get "(j.Users.find(u=>u.userName==='user00001')||{name:{}}).name.familyName"; }
modify() {
	slapd_ldapmodify <<LDIF >/dev/null
dn: uid=user00001,ou=people,$SLAPD_BASE
changetype: modify
replace: sn
sn: $1
LDIF
}
repaired_in_log() { "$CANOPYCTL" --server "${AGENT_CTL[$1]}" logs | grep -q in-doubt-repair; }

# The next PUT of user00001 is held by the "network" (the SCIM fixture).
id=$(scim_ctl GET store | json_get "j.Users.find(u=>u.userName==='user00001').id")
scim_fault "{\"hold\":true,\"count\":1,\"methods\":[\"PUT\"],\"match\":\"/Users/$id\"}"
modify Old
held() { [ "$(scim_held)" = 1 ]; }
wait_until 10 held || fail "the leader did not send the write"
kill -STOP "${AGENT_PID[$L]}"
at_exit "kill -CONT ${AGENT_PID[$L]} 2>/dev/null"
[ "$(sn_of)" != Old ] || fail "the held write landed before it was released"

wait_until 10 ready_leader "${rest[@]}" || fail "no new leader"
N=$(ready_leader "${rest[@]}")
modify New
newer() { [ "$(sn_of)" = New ]; }
wait_until 10 newer || fail "the new leader did not write the newer value"
repaired_in_log "$N" && fail "the new leader repaired before the late write could land (raise TARGET_TIMEOUT_MS)"
pending() { json_eval "$(agent_status "$1")" 'j.sync.repair_pending'; }
[ "$(pending "$N")" -ge 1 ] || fail "status sync.repair_pending before the repair: $(pending "$N")"

# The frozen leader's write lands now, after the new leader's.
[ "$(scim_release)" = 1 ] || fail "no held write to release"
[ "$(sn_of)" = Old ] || fail "the late write did not leave the target stale: sn=$(sn_of)"
pass "the late write of the frozen leader landed after the new leader's write (target stale: Old)"

# ... and the new leader repairs it, from the intent the frozen leader left.
# 60 s: the repair took 8.7 s of the old 20 here in a normal build (a
# CANOPY_WAIT_LOG run); the 20 counted polls of a node each, far longer.
wait_until 60 newer || fail "stale object not repaired: sn=$(sn_of); $("$CANOPYCTL" --server "${AGENT_CTL[$N]}" logs | tail -3)"
repaired_in_log "$N" || fail "no in-doubt-repair in the provisioning log of the new leader $N"
[ "$(pending "$N")" = 0 ] || fail "status sync.repair_pending after the repair: $(pending "$N")"
for i in "${rest[@]}"; do
	[ "$i" = "$N" ] || [ "$(pending "$i")" = null ] || fail "node $i (follower): sync.repair_pending $(pending "$i")"
done
# It read that one object again by its DN, not the whole directory.
agent_logs "$N" | grep 'in-doubt repair' | grep -q 'objects read again by DN; full read: none' ||
	fail "the repair did not read the object by DN: $(agent_logs "$N" | grep 'in-doubt repair')"
pass "new leader $N repaired the object from the intent (sn=New), reading it by DN; status sync.repair_pending went from >= 1 to 0"
kill -CONT "${AGENT_PID[$L]}"
wait_until 30 sync_compare || sync_compare || fail "target differs from source"
pass "target equals source"
