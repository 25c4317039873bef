#!/usr/bin/env bash
# Three agents export to Entra (the Graph fixture). The leader is killed with
# SIGKILL during the initial sync of 400 users: another agent takes over and
# finishes, and the directory in Graph equals the source -- no user or group
# missing, none twice (graph_compare.js fails on two objects with one anchor
# and on objects without one), every membership in place.
source "$(dirname "$0")/../fixtures/entra.sh"
dir=$(fixture_tmpdir)

slapd_start 400 10 1
export GRAPH_RPS=150 GRAPH_BURST=50 # keep the initial sync long enough to kill into
graph_start
for i in 1 2 3; do agent_ports $i; done
members="[\"1@${AGENT_RAFT[1]}\", \"2@${AGENT_RAFT[2]}\", \"3@${AGENT_RAFT[3]}\"]"
for i in 1 2 3; do entra_config $i "$(entra_secret_auth)" "$members"; done
for i in 1 2 3; do agent_start $i; done

wait_until 15 ready_leader 1 2 3 || fail "no leader"
L=$(ready_leader 1 2 3)
n_users() { graph_ctl GET stats | json_get 'j.users'; }
some() { [ "$(n_users)" -ge 100 ]; }
wait_secs 60 some || fail "initial sync did not progress: $(n_users) users"
at_kill=$(n_users)
[ "$at_kill" -lt 400 ] || fail "the initial sync was over before the kill ($at_kill users)"

t0=$EPOCHREALTIME
agent_stop "$L" KILL
rest=(); for i in 1 2 3; do [ "$i" != "$L" ] && rest+=("$i"); done
wait_until 15 ready_leader "${rest[@]}" || fail "no new leader after killing $L"
N=$(ready_leader "${rest[@]}")
t1=$EPOCHREALTIME
echo "kill -> new ready leader: $(awk "BEGIN{printf \"%d\", ($t1-$t0)*1000}") ms (observed by polling)"
graph_budget 0 0
wait_secs 120 entra_compare || fail "Graph differs from the source after failover: $(entra_compare | head -n 8)"
pass "leader $L killed at $at_kill of 400 users; node $N finished: $(entra_compare)"
