#!/usr/bin/env bash
# Fencing by lease: a leader cut off from its followers (SIGSTOP) while its
# requests hang on a slow target cancels them when its write lease runs out
# -- well before the answers come and before any other node could lead --
# and the change still reaches the target once the cluster is whole again.
source "$(dirname "$0")/../fixtures/sync.sh"
dir=$(fixture_tmpdir)

sync_setup 50 2
sync_start_cluster 3
users_are() { [ "$(scim_count Users)" = "$1" ]; }
wait_until 60 users_are 50 || fail "initial sync"
wait_until 30 idle_leader 1 2 3 || fail "no idle leader"
L=$(idle_leader 1 2 3)
followers=(); for i in 1 2 3; do [ "$i" != "$L" ] && followers+=("${AGENT_PID[$i]}"); done

scim_fault '{"delayMs":5000,"count":-1}'
slapd_ldapmodify <<LDIF >/dev/null
dn: uid=user00001,ou=people,$SLAPD_BASE
changetype: modify
replace: sn
sn: Fenced
LDIF
sleep 0.3 # the PUT is on the wire now, its answer 5 s away
kill -STOP "${followers[@]}"
t0=$EPOCHREALTIME
at_exit "kill -CONT ${followers[*]} 2>/dev/null"
lease_expired() { "$CANOPYCTL" --server "${AGENT_CTL[$L]}" logs | grep -q lease-expired; }
wait_until 4 lease_expired || { kill -CONT "${followers[@]}"; fail "leader $L did not cancel at lease expiry: $("$CANOPYCTL" --server "${AGENT_CTL[$L]}" logs | tail -3)"; }
ms=$(awk "BEGIN{printf \"%d\", ($EPOCHREALTIME-$t0)*1000}")
[ "$ms" -lt 4500 ] || fail "cancelled only after ${ms} ms"
pass "lease expiry cancelled the in-flight requests ${ms} ms after the followers stopped (answers were 5 s away)"
grep -q '^canopy_lease_cancels_total [1-9]' <<<"$(curl -s "http://${AGENT_CTL[$L]}/metrics")" || fail "metric not counted"

kill -CONT "${followers[@]}"
scim_fault '{}'
sn_is() { [ "$(scim_ctl GET store | json_get "(j.Users.find(u=>u.userName==='user00001')||{name:{}}).name.familyName")" = Fenced ]; }
wait_until 30 sn_is || fail "the change did not reach the target after the cluster healed"
wait_until 30 sync_compare || sync_compare || fail "target differs from source"
pass "after healing, the change reached the target; target equals source"
