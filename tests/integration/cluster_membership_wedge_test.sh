#!/usr/bin/env bash
# Membership changes cannot wedge:
#  - `cluster add` of an agent that is not running fails at once with a clear
#    error and changes nothing; the next add and remove work right away;
#  - an add stuck in its promotion (the new agent hangs: SIGSTOP) is undone
#    by `cluster abort`; once resumed, that agent can be added at once;
#  - `cluster remove` of a server still being promoted aborts that add;
#  - a removed voter notices, logs it and exits 0.
source "$(dirname "$0")/../fixtures/agent.sh"
dir=$(fixture_tmpdir)

for i in 1 2 3 4 5 6; do agent_ports $i; done
members="[\"1@${AGENT_RAFT[1]}\", \"2@${AGENT_RAFT[2]}\", \"3@${AGENT_RAFT[3]}\"]"
for i in 1 2 3 4 5 6; do agent_config $i "$members"; done
for i in 1 2 3; do agent_start $i; done

leader=""
find_leader() { leader=$(ready_leader 1 2 3 4 5 6); }
wait_until 15 find_leader || fail "no ready leader"
find_leader
ctl() { "$CANOPYCTL" --server "${AGENT_CTL[$leader]}" "$@"; }
member_ids() { json_eval "$(agent_status "$leader")" 'j.members.map(m=>m.id).sort().join(",")'; }
members_are() { [ "$(member_ids)" = "$1" ]; }
pass "3 agents, leader $leader"

# 1. Add of an agent that is not running: a clear error at once, nothing changed.
t0=$EPOCHREALTIME
if out=$(ctl cluster add "4@${AGENT_RAFT[4]}" 2>&1); then fail "add of a stopped agent succeeded: $out"; fi
ms=$(awk "BEGIN{printf \"%d\", ($EPOCHREALTIME-$t0)*1000}")
grep -q "nothing answers on ${AGENT_RAFT[4]}" <<<"$out" || fail "unclear error: $out"
[ "$ms" -lt 5000 ] || fail "add took $ms ms to fail"
members_are 1,2,3 || fail "members changed: $(member_ids)"
pass "add of a stopped agent: error in $ms ms ($out), members unchanged"

# ... and the next add and remove work at once.
agent_start 5
wait_until 10 agent_status 5 || fail "agent 5 did not start"
out=$(ctl cluster add "5@${AGENT_RAFT[5]}" 2>&1) || fail "add 5 after the failed add: $out"
members_are 1,2,3,5 || fail "members after add 5: $(member_ids)"
out=$(ctl cluster remove 5 2>&1) || fail "remove 5: $out"
members_are 1,2,3 || fail "members after remove 5: $(member_ids)"
agent_wait_exit 5 15 || fail "removed node 5 still runs"
[ "$AGENT_RC" = 0 ] || fail "removed node 5 exit code $AGENT_RC"
grep -q "no longer a member of the cluster" "$dir/agent5.log" || fail "node 5 did not say why it stopped"
pass "add 5 and remove 5 right after; node 5 exited 0 by itself"

# 2. An add stuck in its promotion: cluster abort.
agent_start 4
wait_until 10 agent_status 4 || fail "agent 4 did not start"
kill -STOP "${AGENT_PID[4]}"
at_exit "kill -CONT ${AGENT_PID[4]} 2>/dev/null"
ctl cluster add "4@${AGENT_RAFT[4]}" >"$dir/add4.out" 2>&1 &
addpid=$!
wait_until 10 members_are 1,2,3,4 || fail "4 was not added as spare: $(member_ids)"
if out=$(ctl cluster remove 2 2>&1); then fail "a second change ran during the promotion: $out"; fi
out=$(ctl cluster abort 2>&1) || fail "cluster abort: $out"
grep -q aborted <<<"$out" || fail "abort answer: $out"
members_are 1,2,3 || fail "members after abort: $(member_ids)"
rc=0; wait "$addpid" || rc=$?
[ "$rc" != 0 ] || fail "the aborted add reported success: $(cat "$dir/add4.out")"
grep -q "aborted by the operator" "$dir/add4.out" || fail "aborted add said: $(cat "$dir/add4.out")"
pass "abort undid the stuck add ($(cat "$dir/add4.out"))"
# Node 4 never heard of its add while stopped: resumed, it is a new node
# waiting to be added, and adding it now works at once.
kill -CONT "${AGENT_PID[4]}"
wait_until 10 agent_status 4 || fail "node 4 does not answer after SIGCONT"
out=$(ctl cluster add "4@${AGENT_RAFT[4]}" 2>&1) || fail "add 4 after the abort: $out"
voter4() { [ "$(json_eval "$(agent_status "$leader")" 'j.members.filter(m=>m.id===4&&m.role==="voter").length')" = 1 ]; }
wait_until 10 voter4 || fail "4 is not a voter: $(agent_status "$leader")"
pass "node 4 resumed and added again: voter"

# 3. Remove of a server that is still being promoted aborts its add.
agent_start 6
wait_until 10 agent_status 6 || fail "agent 6 did not start"
kill -STOP "${AGENT_PID[6]}"
at_exit "kill -CONT ${AGENT_PID[6]} 2>/dev/null"
ctl cluster add "6@${AGENT_RAFT[6]}" >"$dir/add6.out" 2>&1 &
addpid=$!
wait_until 10 members_are 1,2,3,4,6 || fail "6 was not added as spare: $(member_ids)"
out=$(ctl cluster remove 6 2>&1) || fail "remove of a pending promotee: $out"
members_are 1,2,3,4 || fail "members after remove 6: $(member_ids)"
wait "$addpid" || true
kill -CONT "${AGENT_PID[6]}"
pass "remove 6 during its promotion: done ($out)"

# 4. A removed voter notices and exits 0.
victim=1; [ "$leader" = 1 ] && victim=2
out=$(ctl cluster remove "$victim" 2>&1) || fail "remove $victim: $out"
agent_wait_exit "$victim" 20 || fail "removed voter $victim still runs: $(agent_status "$victim")"
[ "$AGENT_RC" = 0 ] || fail "removed voter exit code $AGENT_RC"
grep -q "no longer a member of the cluster" "$dir/agent$victim.log" || fail "node $victim did not log its removal"
pass "removed voter $victim logged its removal and exited 0"
