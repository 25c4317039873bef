#!/usr/bin/env bash
# In-doubt repair (docs/architecture.md, fencing by intents): a leader freezes (SIGSTOP) right
# after sending a write that the network delivers late -- after the new
# leader wrote a newer value. The late write would leave the target stale;
# the new leader finds the frozen leader's intent in the replicated state
# and, once that write has surely landed, rewrites the object.
source "$(dirname "$0")/../fixtures/sync.sh"
dir=$(fixture_tmpdir)

# The frozen leader's requests time out after 4 s: the new leader repairs
# once that has passed (+ T), so a write held 3 s lands before the repair.
TARGET_TIMEOUT_MS=4000
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

# The next PUT is held 3 s by the "network" (the SCIM fixture), then applied.
scim_fault '{"delayMs":3000,"count":1,"methods":["PUT"]}'
t0=$EPOCHREALTIME
modify Old
sent() { [ "$(scim_ctl GET stats | json_get 'j.faulted')" -ge 1 ]; }
wait_until 5 sent || fail "the leader did not send the write"
kill -STOP "${AGENT_PID[$L]}"
at_exit "kill -CONT ${AGENT_PID[$L]} 2>/dev/null"

wait_until 10 ready_leader "${rest[@]}" || fail "no new leader"
N=$(ready_leader "${rest[@]}")
modify New
newer() { [ "$(sn_of)" = New ]; }
wait_until 10 newer || fail "the new leader did not write the newer value"
t_new=$EPOCHREALTIME
# The frozen leader's write lands now (3 s after it was sent) ...
stale() { [ "$(sn_of)" = Old ]; }
if wait_until 5 stale; then
	pass "the late write of the frozen leader landed after the new leader's write (target stale: Old)"
	# ... and the new leader repairs it.
	wait_until 15 newer || fail "stale object not repaired: sn=$(sn_of); $("$CANOPYCTL" --server "${AGENT_CTL[$N]}" logs | tail -3)"
	"$CANOPYCTL" --server "${AGENT_CTL[$N]}" logs | grep -q in-doubt-repair || fail "no in-doubt-repair in the provisioning log"
	pass "new leader $N repaired the object from the intent (sn=New)"
else
	echo "note: the new leader wrote after the late write ($(awk "BEGIN{printf \"%d\", ($t_new-$t0)*1000}") ms); nothing stale to repair this time" >&2
	"$CANOPYCTL" --server "${AGENT_CTL[$N]}" logs | grep -q in-doubt-repair || fail "no in-doubt-repair in the provisioning log"
fi
kill -CONT "${AGENT_PID[$L]}"
wait_until 30 sync_compare || sync_compare || fail "target differs from source"
pass "target equals source"
