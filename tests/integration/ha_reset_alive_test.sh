#!/usr/bin/env bash
# Connection resets while the leader lives do not elect anyone early.
#
# Early election (agent/leader_watch.h) acts only on a *refused* connection or
# a 409 from the leader, never on a drop: a reset can come from the network
# while the leader is alive. 3 agents, T = 1000 ms, early election on, a
# change every 100 ms. 30 times, every connection to the leader's control
# and raft ports is destroyed (`ss -K`: both ends see a reset, as when a
# middlebox or a conntrack flush kills them). Then: the followers saw the
# drops and found the leader alive each time; no early election; the leader
# suspended its write lease on the closed watches; the term did not change;
# nothing lost, no duplicate create, no stale-term write.
source "$(dirname "$0")/../fixtures/sync.sh"
source "$(dirname "$0")/../fixtures/failover.sh"
dir=$(fixture_tmpdir)


T=1000
ELECTION_TIMEOUT_MS=$T
sync_setup 100 2
sync_start_cluster 3
users_are() { [ "$(scim_count Users)" = "$1" ]; }
wait_until 60 users_are 100 || fail "initial sync: $(scim_count Users)"
wait_until 30 ready_leader 1 2 3 || fail "no leader"
L=$(ready_leader 1 2 3)
LT=$(failover_term_of "$L")
rest=(); for i in 1 2 3; do [ "$i" != "$L" ] && rest+=("$i"); done

# every follower's watch is up before the first reset
watching() { local i; for i in "${rest[@]}"; do
	[ "$(json_eval "$(agent_status "$i")" 'j.failover.watch_drops')" = 0 ] || return 1; done
	[ "$(json_eval "$(agent_status "$L")" 'j.failover.lease_suspensions')" = 0 ]; }
watching || fail "watch drops before any reset"

failover_stream
ctl_port=${AGENT_CTL[$L]##*:}
raft_port=${AGENT_RAFT[$L]##*:}
for ((r = 1; r <= 30; r++)); do
	ss -K "( sport = :$ctl_port or dport = :$ctl_port or sport = :$raft_port or dport = :$raft_port )" >/dev/null 2>&1
	# the next round once a follower has its watch back (a progress marker)
	drops() { local i s=0; for i in "${rest[@]}"; do
		s=$((s + $(json_eval "$(agent_status "$i")" 'j.failover.watch_drops_leader_alive'))); done; echo $s; }
	back() { [ "$(drops)" -ge "$r" ]; }
	wait_until 10 back || fail "round $r: the followers did not find the live leader again ($(drops) drops seen alive)"
	# ... and once the leader's raft links are back too: both followers
	# apply past what it had committed (a change every 100 ms: there is
	# always more). Resets back to back, every few ms, keep the leader from
	# hearing a majority for an election timeout: it steps down, rightly,
	# and the followers elect early on its "not leading"; not this case.
	ci=$(json_eval "$(agent_status "$L")" 'j.commit_index')
	applied_past() { local i; for i in "${rest[@]}"; do
		[ "$(json_eval "$(agent_status "$i")" "j.applied_index > $ci")" = true ] || return 1; done; }
	wait_until 10 applied_past || fail "round $r: the followers did not apply past index $ci again"
done
kill "$GEN_PID" 2>/dev/null

early=0; seen=0
for i in "${rest[@]}"; do
	st=$(agent_status "$i")
	early=$((early + $(json_eval "$st" 'j.failover.early_elections')))
	seen=$((seen + $(json_eval "$st" 'j.failover.watch_drops')))
done
susp=$(json_eval "$(agent_status "$L")" 'j.failover.lease_suspensions')
echo "30 resets: followers saw $seen watch drops, $(drops) with the leader alive; early elections $early; leader lease suspensions $susp"
[ "$early" = 0 ] || fail "$early early elections while the leader was alive"
[ "$susp" -ge 1 ] || fail "the leader never suspended its lease on a closed watch"
[ "$(failover_term_of "$L")" = "$LT" ] && [ "$(ready_leader 1 2 3)" = "$L" ] ||
	fail "leadership changed: leader $(ready_leader 1 2 3) term $(failover_term_of "$L") (was $L, term $LT)"
pass "30 connection resets with the leader alive: no early election, the leader kept term $LT"

wait_until 60 sync_compare || sync_compare || fail "target differs from source after the resets"
failover_audit_clean
pass "nothing lost, no duplicate create, no stale-term write"
