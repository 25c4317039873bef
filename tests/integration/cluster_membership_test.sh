#!/usr/bin/env bash
# Three agents form one Raft group: every node reports the same leader and
# term; `canopyctl cluster transfer` moves leadership; a 4th and 5th agent
# join with `cluster add` (from any node: followers redirect to the leader)
# and become voters; `cluster remove` takes one out; SIGTERM on the leader
# hands leadership over before exit.
source "$(dirname "$0")/../fixtures/agent.sh"
dir=$(fixture_tmpdir)

for i in 1 2 3 4 5; do agent_ports $i; done
members="[\"1@${AGENT_RAFT[1]}\", \"2@${AGENT_RAFT[2]}\", \"3@${AGENT_RAFT[3]}\"]"
for i in 1 2 3 4 5; do agent_config $i "$members"; done
for i in 1 2 3; do agent_start $i; done

leader_of() { json_eval "$(agent_status "$1")" 'j.leader.id'; }
one_ready_leader() {
	local i n=0 st
	for i in "$@"; do
		st=$(agent_status "$i") || return 1
		[ "$(json_eval "$st" 'j.role==="leader" && j.leader_ready')" = true ] && n=$((n + 1))
	done
	[ "$n" = 1 ]
}
same_view() { # every node names the same leader and term
	local i l t st first=""
	for i in "$@"; do
		st=$(agent_status "$i") || return 1
		l=$(json_eval "$st" 'j.leader.id + "/" + j.term')
		[ -z "$first" ] && first=$l
		[ "$l" = "$first" ] && [ "${l%%/*}" != null ] && [ "${l%%/*}" != 0 ] || return 1
	done
}

wait_until 15 one_ready_leader 1 2 3 || fail "no single ready leader among 3 agents"
wait_until 5 same_view 1 2 3 || fail "nodes disagree on leader/term"
leader=$(leader_of 1)
pass "3 agents: one leader (node $leader), same leader and term on every node"

# Status from a follower lists all members.
f=$(( leader % 3 + 1 ))
out=$("$CANOPYCTL" --server "${AGENT_CTL[$f]}" status --json)
[ "$(json_eval "$out" 'j.members.length')" = 3 ] || fail "follower's members: $out"
[ "$(json_eval "$out" 'j.role')" = follower ] || fail "node $f role: $out"
pass "status from follower $f shows 3 voters"

# Transfer to a named node, asked on a follower (redirected to the leader).
target=$(( leader % 3 + 1 ))
other=$(( target % 3 + 1 )); [ "$other" = "$leader" ] && other=$(( other % 3 + 1 ))
out=$(agent_ctl "$other" cluster transfer "$target") || fail "cluster transfer: $out"
wait_until 5 same_view 1 2 3 || fail "views differ after transfer"
[ "$(leader_of 1)" = "$target" ] || fail "leader after transfer is $(leader_of 1), wanted $target"
pass "cluster transfer $target (asked on follower $other): $out"

# Grow to 5 after the leadership change, asking a follower each time.
for i in 4 5; do
	agent_start $i
	agent_wait_up $i || fail "agent $i did not start"
	f=$(( $(leader_of 1) % 3 + 1 ))
	out=$(agent_ctl "$f" cluster add "$i@${AGENT_RAFT[$i]}") || fail "cluster add $i: $out"
done
voters() { json_eval "$(agent_status "$1")" 'j.members.filter(m=>m.role==="voter").length'; }
five_voters() { [ "$(voters 1)" = 5 ] && [ "$(voters 5)" = 5 ]; }
wait_until 40 five_voters || fail "not 5 voters: $(agent_status 1)"
wait_until 5 same_view 1 2 3 4 5 || fail "5 nodes disagree"
pass "nodes 4 and 5 joined as voters"

# Remove a follower.
l=$(leader_of 1); victim=1; [ "$l" = 1 ] && victim=2
out=$("$CANOPYCTL" --server "${AGENT_CTL[$l]}" cluster remove "$victim") || fail "cluster remove: $out"
four() { [ "$(json_eval "$(agent_status "$l")" 'j.members.length')" = 4 ]; }
wait_until 5 four || fail "member not removed: $(agent_status "$l")"
pass "cluster remove $victim"

# Bad input: a clear error, exit non-zero.
if out=$("$CANOPYCTL" --server "${AGENT_CTL[$l]}" cluster add "nonsense" 2>&1); then fail "bad add accepted"; fi
grep -q "ID@HOST:PORT\|@" <<<"$out" || fail "bad add error unclear: $out"

# SIGTERM on the leader: another node leads without waiting an election timeout.
rest=(); for i in 1 2 3 4 5; do [ "$i" != "$victim" ] && [ "$i" != "$l" ] && rest+=("$i"); done
t0=$EPOCHREALTIME
agent_stop "$l" TERM
[ "$AGENT_RC" = 0 ] || fail "leader exit code $AGENT_RC"
wait_until 5 one_ready_leader "${rest[@]}" || fail "no leader after hand-over"
ms=$(awk "BEGIN{printf \"%d\", ($EPOCHREALTIME-$t0)*1000}")
grep -q "leadership handed over" "$dir/agent$l.log" || fail "leader did not hand over: $(tail -5 "$dir/agent$l.log")"
pass "SIGTERM on leader $l: handed over, new leader ready ${ms} ms after the signal"
