#!/usr/bin/env bash
# `canopyctl drill failover --mode crash` (agent/control_drill.c,
# raft/isolation.h) while changes stream in:
#
# 3 agents + slapd + SCIM, a user's givenName changes every 100 ms. Two crash
# drills: each time the leader plays dead (no raft message in or out, its
# lease suspended, its leader watches answered 409) for 2 T and then rejoins.
# The JSON names a new leader each time with 0 <= detected <= elected <=
# first_export < 2 T; the SCIM audit shows no object created twice and no
# write of an older term after a newer term's first write (the dead-playing
# leader never wrote after its successor did); the old leaders rejoined as
# followers; and the target equals the directory at the end.
source "$(dirname "$0")/../fixtures/drill.sh"
source "$(dirname "$0")/../fixtures/failover.sh"

T=1000
ELECTION_TIMEOUT_MS=$T
drill_cluster 100 2
L=$DRILL_LEADER

failover_stream
writes_before=$(scim_writes)
more_writes() { [ "$(scim_writes)" -gt "$((writes_before + 5))" ]; }
wait_until 30 more_writes || fail "the change stream is not exported"

out=$("$CANOPYCTL" --server "${AGENT_CTL[$L]}" --token-file "$DRILL_TOKEN_FILE" drill failover --mode crash \
	--count 2 --json) || fail "crash drill failed: $out"
echo "$out"
check=$(json_eval "$out" '(() => {
	const T = '"$T"', d = j.drills, bad = [];
	if (!Array.isArray(d) || d.length !== 2) return "drills: " + JSON.stringify(d);
	d.forEach((x, i) => {
		if (x.mode !== "crash") bad.push(i + ": mode " + x.mode);
		if (x.new_leader === x.old_leader) bad.push(i + ": same leader");
		if (!(x.term > x.old_term)) bad.push(i + ": term " + x.old_term + " -> " + x.term);
		if (!(x.down_ms >= T)) bad.push(i + ": down_ms " + x.down_ms);
		if (!(x.detected_ms >= 0 && x.detected_ms <= x.elected_ms && x.elected_ms <= x.first_export_ms
		      && x.first_export_ms > 0 && x.first_export_ms < 2 * T))
			bad.push(i + ": timings " + [x.detected_ms, x.elected_ms, x.first_export_ms]);
	});
	if (j.summary.count !== 2 || j.summary.mode !== "crash") bad.push("summary " + JSON.stringify(j.summary));
	return bad.join("; ") || "ok";
})()')
[ "$check" = ok ] || fail "crash drill --json: $check"
pass "2 crash drills: $(json_eval "$out" 'j.drills.map(x => x.old_leader + "->" + x.new_leader + ": detected " + x.detected_ms + ", elected " + x.elected_ms + ", exporting " + x.first_export_ms + " ms").join("; ")')"

# Each old leader dropped raft messages while it played dead, and follows now.
for id in $(json_eval "$out" 'j.drills.map(x => x.old_leader).join(" ")'); do
	st=$(agent_status "$id")
	[ "$(json_eval "$st" 'j.drill.crashed === false && j.drill.raft_dropped_in > 0 && j.drill.raft_dropped_out > 0')" = true ] ||
		fail "node $id: drill state $(json_eval "$st" 'JSON.stringify(j.drill)')"
	grep -q 'msg="failover drill: rejoining the cluster"' <(agent_logs "$id") || fail "node $id did not log its rejoin"
done
new=$(json_eval "$out" 'j.drills[1].new_leader')
follows() { [ "$(json_eval "$(agent_status "$1")" 'j.role + " " + j.leader.id')" = "follower $new" ]; }
for i in 1 2 3; do
	[ "$i" = "$new" ] || wait_until 10 follows "$i" || fail "node $i does not follow $new: $(agent_status "$i")"
done
pass "the old leaders rejoined as followers of node $new"

# Changes still flow, then stop the stream and compare.
writes_before=$(scim_writes)
wait_until 30 more_writes || fail "no export after the drills"
kill "$GEN_PID" 2>/dev/null
wait_until 60 sync_compare || sync_compare || fail "target differs from source after the drills"
failover_audit_clean
pass "nothing lost, no duplicate create, no stale-term write"
