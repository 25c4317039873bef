#!/usr/bin/env bash
# members[].reachable follows one rule on every node: a member is unreachable
# once nothing was received from it for the election timeout T plus two
# heartbeats (raft/node.h, node_status), never before it was silent for T. Reading libraft's
# recent_recv flag (cleared every T') made healthy followers flicker, and a
# follower called a SIGKILLed leader reachable for as long as it still named
# it leader.
#   1. 3 agents, T = 1000 ms: 70 rounds of status from all three nodes never
#      show a live member unreachable; followers show the other follower from
#      the leader's view (agent/member_view.h).
#   2. SIGKILL of a follower: the leader calls it unreachable no earlier than
#      T after the kill and within T + two heartbeats (+ polling); the other
#      follower says so too, from the leader's view.
#   3. SIGKILL of the leader: the new leader and the remaining follower call it
#      unreachable, no earlier than T after the kill.
source "$(dirname "$0")/../fixtures/sync.sh"
dir=$(fixture_tmpdir)

T=1000 HB=83 # heartbeat: min(heartbeat_ms 100, T/3/4), raft/node.c node_heartbeat_ms
sync_setup 10 1
sync_start_cluster 3
wait_until 30 idle_leader 1 2 3 || fail "no idle leader"
L=$(idle_leader 1 2 3)
F=(); for i in 1 2 3; do [ "$i" != "$L" ] && F+=("$i"); done

# reach NODE MEMBER: what NODE's status says of MEMBER (true, false, null).
reach() {
	curl -sf --max-time 2 "http://${AGENT_CTL[$1]}/v1/status" |
		grep -oE "\{\"id\":$2,\"address\":\"[^\"]*\",\"role\":\"[a-z]*\",\"reachable\":(true|false|null)" |
		sed 's/.*"reachable"://'
}
now_ms() { local t=${EPOCHREALTIME/./}; echo $((t / 1000)); }

all_true() { for n in 1 2 3; do for m in 1 2 3; do [ "$(reach $n $m)" = true ] || return 1; done; done; }
wait_until 15 all_true || fail "not every member reachable on every node"

# 1. No flapping: 70 rounds, all three nodes read together each round.
falses=0 nulls=0 calls=0
for ((r = 0; r < 70; r++)); do
	pids=()
	for n in 1 2 3; do
		curl -sf --max-time 2 "http://${AGENT_CTL[$n]}/v1/status" >"$dir/st.$n" &
		pids+=($!)
	done
	wait "${pids[@]}" || fail "round $r: a status call failed"
	for n in 1 2 3; do
		calls=$((calls + 1))
		for m in 1 2 3; do
			v=$(grep -oE "\{\"id\":$m,\"address\":\"[^\"]*\",\"role\":\"[a-z]*\",\"reachable\":(true|false|null)" "$dir/st.$n" | sed 's/.*"reachable"://')
			case $v in
			true) ;;
			null) nulls=$((nulls + 1)) ;;
			*) fail "round $r: node $n shows live member $m reachable=$v: $(cat "$dir/st.$n")" ;;
			esac
		done
	done
	sleep 0.05
done
# A follower knows the other follower only from the leader's view, fetched
# every 250 ms and fresh for T + two heartbeats: unknown only when it is late.
((nulls * 20 <= calls * 3)) || fail "$nulls of $((calls * 3)) answers said unknown for a live member"
pass "$calls status calls (70 rounds x 3 nodes): no live member ever unreachable ($nulls unknown)"

# 2. A follower dies.
K=${F[0]} O=${F[1]}
t0=$(now_ms)
agent_stop "$K" KILL
gone_on_leader() { [ "$(reach "$L" "$K")" = false ]; }
until gone_on_leader; do
	(($(now_ms) - t0 < 10000)) || fail "killed follower $K still reachable on leader $L after 10 s"
	sleep 0.02
done
t1=$(now_ms)
took=$((t1 - t0))
echo "follower $K killed: unreachable on the leader after $took ms (T $T, heartbeat $HB)"
((took >= T)) || fail "killed follower $K shown unreachable after $took ms: before a full election timeout ($T ms)"
((took <= T + 2 * HB + 400)) || fail "killed follower $K shown unreachable only after $took ms (T + two heartbeats is $((T + 2 * HB)))"
[ "$(reach "$L" "$O")" = true ] || fail "the live follower $O shown unreachable on the leader"
gone_on_other() { [ "$(reach "$O" "$K")" = false ]; }
wait_until 5 gone_on_other || fail "follower $O does not show $K unreachable: $(agent_status "$O")"
t2=$(now_ms)
pass "killed follower: unreachable on the leader after $took ms (not before T), on follower $O after $((t2 - t0)) ms (the leader's view)"

agent_start "$K"
back() { [ "$(reach "$L" "$K")" = true ] && [ "$(reach "$O" "$K")" = true ] && [ "$(reach "$K" "$L")" = true ]; }
wait_until 20 back || fail "restarted follower $K not reachable again"

# 3. The leader dies.
t0=$(now_ms)
agent_stop "$L" KILL
wait_until 15 ready_leader "$K" "$O" || fail "no new leader after killing $L"
N=$(ready_leader "$K" "$O")
R=$K; [ "$R" = "$N" ] && R=$O
seen_false=() # node: ms after the kill it first said false
for n in "$N" "$R"; do
	until [ "$(reach "$n" "$L")" = false ]; do
		(($(now_ms) - t0 < 10000)) || fail "killed leader $L still not unreachable on node $n after 10 s: $(agent_status "$n")"
		sleep 0.02
	done
	took=$(($(now_ms) - t0))
	((took >= T)) || fail "node $n called the killed leader unreachable after $took ms: before T"
	seen_false+=("node $n after $took ms")
done
pass "killed leader $L: unreachable on new leader $N and follower $R (${seen_false[*]}), not before T"
