#!/usr/bin/env bash
# The leader's status says which members answer, steadily: libraft clears
# its per-follower "heard from" flag every election timeout, and reading
# that flag alone showed live followers as unreachable about one poll in
# four. 3 agents: 30 polls of the leader's status all show every member
# reachable; a killed follower turns unreachable (after T plus two heartbeats,
# raft/node.h node_status),
# the other stays reachable.
source "$(dirname "$0")/../fixtures/sync.sh"
dir=$(fixture_tmpdir)

sync_setup 10 1
sync_start_cluster 3
wait_until 30 ready_leader 1 2 3 || fail "no leader"
L=$(ready_leader 1 2 3)
reach() { json_eval "$(agent_status "$L")" 'j.members.map(m => m.id + "=" + m.reachable).join(" ")'; }
wait_until 10 eval '[ "$(reach)" = "1=true 2=true 3=true" ]' || fail "not every member reachable: $(reach)"
for ((i = 1; i <= 30; i++)); do
	r=$(reach)
	[ "$r" = "1=true 2=true 3=true" ] || fail "poll $i: a live member shown unreachable: $r"
	sleep 0.07
done
pass "30 polls of the leader's status: every live member reachable"

F=1; [ "$F" = "$L" ] && F=2
O=3; [ "$O" = "$L" ] && O=2; [ "$O" = "$F" ] && O=3
agent_stop "$F" KILL
gone() { reach | grep -q "$F=false"; }
wait_until 10 gone || fail "killed member $F still reachable: $(reach)"
reach | grep -q "$O=true" || fail "the live member $O shown unreachable: $(reach)"
pass "a killed follower turns unreachable, the other stays reachable"
