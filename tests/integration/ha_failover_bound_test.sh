#!/usr/bin/env bash
# Failover within one election timeout T, every time (T = 1000 ms here).
#
# 1. 3 agents, a change every 100 ms, 8 SIGKILLs of the leader: for each, kill
#    -> first target write of the new term (the SCIM server's own clock) must
#    be <= T; afterwards nothing is lost (target == source), no object was
#    created twice, and no write carries an older term after a newer term's
#    first write.
# 2. SIGSTOP of the leader: a new leader writes within T of the stop; the
#    paused leader writes nothing once the new leader has written, and,
#    resumed, nothing more (its lease ran out long ago).
source "$(dirname "$0")/../fixtures/sync.sh"
source "$(dirname "$0")/../fixtures/failover.sh"
dir=$(fixture_tmpdir)

T=1000
ELECTION_TIMEOUT_MS=$T
# The timeout path: the leader watch would catch every SIGKILL early
# (ha_crash_detect_test); here the bound must hold without it.
EARLY_ELECTION=false
sync_setup 100 2
sync_start_cluster 3
users_are() { [ "$(scim_count Users)" = "$1" ]; }
wait_until 60 users_are 100 || fail "initial sync: $(scim_count Users)"
wait_until 30 ready_leader 1 2 3 || fail "no leader"

failover_stream
failover_kill_rounds 8
[ "$FAILOVER_MAX" -le "$T" ] || fail "a failover took $FAILOVER_MAX ms > T = $T ms"
pass "8 SIGKILLs: kill -> first write <= T every time (max $FAILOVER_MAX ms)"

# 2. SIGSTOP: a silent failure.
wait_until 30 ready_leader 1 2 3 || fail "no leader before SIGSTOP"
L=$(ready_leader 1 2 3)
LT=$(failover_term_of "$L")
rest=(); for i in 1 2 3; do [ "$i" != "$L" ] && rest+=("$i"); done
k=$(now_ms)
kill -STOP "${AGENT_PID[$L]}"
newterm() { local n; n=$(ready_leader "${rest[@]}") && [ "$(failover_term_of "$n")" -gt "$LT" ]; }
wait_until 20 newterm || { kill -CONT "${AGENT_PID[$L]}"; fail "no new leader after SIGSTOP of $L"; }
N=$(ready_leader "${rest[@]}")
NT=$(failover_term_of "$N")
written() { failover_first_write_ms "$NT" >/dev/null; }
wait_until 20 written || { kill -CONT "${AGENT_PID[$L]}"; fail "the new leader wrote nothing"; }
ms=$(( $(failover_first_write_ms "$NT") - k ))
sleep_until=$(( $(now_ms) + 1500 )) # let the paused leader sit past its lease, then wake it
while [ "$(now_ms)" -lt "$sleep_until" ]; do sleep 0.1; done
kill -CONT "${AGENT_PID[$L]}"
follower() { [ "$(json_eval "$(agent_status "$L")" 'j.role')" = follower ]; }
wait_until 30 follower || fail "the resumed old leader $L did not become a follower"
woke=$(now_ms)
sleep_until=$(( woke + 1000 ))
while [ "$(now_ms)" -lt "$sleep_until" ]; do sleep 0.1; done
# A request the leader sent just before the stop may still reach the server
# after it: what matters is that no write of the old term lands once the new
# term has written (fencing), nor after the old leader wakes.
first_new=$(failover_first_write_ms "$NT")
late=$(node -e '
	const lines = require("fs").readFileSync(process.argv[1], "utf8").split("\n").filter(Boolean);
	console.log(lines.map(JSON.parse).filter(a => a.term === Number(process.argv[2]) && Date.parse(a.time) >= Number(process.argv[3])).length);' \
	"$SCIM_AUDIT" "$LT" "$first_new")
echo "SIGSTOP of $L: $N writes in term $NT after $ms ms; writes of the old term after the new term's first: $late"
[ "$ms" -le "$T" ] || fail "after SIGSTOP the new leader's first write took $ms ms > T"
[ "$late" = 0 ] || fail "the paused leader wrote $late times after the new leader's first write"
pass "SIGSTOP: new leader writes within T ($ms ms); the paused and resumed old leader writes nothing after it"

kill "$GEN_PID" 2>/dev/null
wait_until 60 sync_compare || sync_compare || fail "target differs from source after the failovers"
failover_audit_clean
pass "nothing lost, no duplicate create, no stale-term write"
