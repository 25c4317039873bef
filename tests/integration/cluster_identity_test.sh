#!/usr/bin/env bash
# A cluster has an identity, and a lone node bootstraps only when told:
#  - two one-node clusters syncing into the same target (a stray second
#    writer) carry two different X-Canopy-Cluster ids in the target's audit,
#    each the cluster_id its node reports and keeps in DATA_DIR/cluster-id;
#  - the old-style lone config (no cluster.bootstrap) still bootstraps but is
#    warned about and shows "bootstrap": "implicit";
#  - cluster.bootstrap: false never bootstraps; the node joins with
#    `cluster add` and takes the cluster's id;
#  - a node given another cluster's data dir refuses (exit 1, naming both
#    ids) and never exports.
source "$(dirname "$0")/../fixtures/sync.sh"
dir=$(fixture_tmpdir)

sync_setup 10 1
for i in 1 2 3 4; do agent_ports $i; done
CLUSTER_BOOTSTRAP=true sync_agent_config 1 "[\"1@${AGENT_RAFT[1]}\"]"
sync_agent_config 2 "[\"2@${AGENT_RAFT[2]}\"]"            # the stray: old-style lone config
CLUSTER_BOOTSTRAP=false agent_config 3 "[\"3@${AGENT_RAFT[3]}\"]"
sync_agent_config 4 "[\"1@${AGENT_RAFT[1]}\"]"            # joins cluster 1 later
st() { json_eval "$(agent_status "$1")" "$2"; }
log_has() { grep -qs -- "$2" "$dir/agent$1.log" "$dir/agent$1.log.tmp"; }

agent_start 1
users_are() { [ "$(scim_count Users)" = "$1" ]; }
wait_until 30 users_are 10 || fail "initial sync of cluster 1"
id1=$(st 1 j.cluster_id)
[[ "$id1" =~ ^[0-9a-f]{32}$ ]] || fail "node 1 cluster_id: $id1"
[ "$(st 1 j.bootstrap)" = explicit ] || fail "node 1 bootstrap: $(st 1 j.bootstrap)"
log_has 1 "lists only this node" && fail "node 1 (bootstrap: true) was warned"
pass "cluster 1 (bootstrap: true) synced, id $id1"

# The stray: same target, its own one-node cluster.
agent_start 2
wait_role 2 leader 10 || fail "stray node 2 did not lead"
log_has 2 'level=warn.*cluster.members lists only this node and cluster.bootstrap is not set' ||
	fail "no warning for the implicit bootstrap: $(head -3 "$dir/agent2.log.tmp")"
[ "$(st 2 j.bootstrap)" = implicit ] || fail "node 2 bootstrap: $(st 2 j.bootstrap)"
id2=$(st 2 j.cluster_id)
[[ "$id2" =~ ^[0-9a-f]{32}$ ]] && [ "$id2" != "$id1" ] || fail "node 2 cluster_id: $id2 (node 1: $id1)"
stray_wrote() { [ "$(scim_ctl GET audit | json_get "j.filter(a=>a.cluster==='$id2').length")" -gt 0 ]; }
wait_until 30 stray_wrote || fail "no write of cluster $id2 in the audit"
pass "stray node 2: warned, bootstrap implicit, id $id2"

ids=$(scim_ctl GET audit | json_get '[...new Set(j.map(a=>a.cluster))].sort().join(",")')
want=$(printf '%s\n' "$id1" "$id2" | sort | paste -sd,)
[ "$ids" = "$want" ] || fail "audit cluster ids: $ids (want $want: every write carries its cluster id)"
for i in 1 2; do
	f=$dir/data$i/cluster-id
	[ "$(cat "$f")" = "$(st $i j.cluster_id)" ] || fail "$f: $(cat "$f")"
	[ "$(stat -c %a "$f")" = 600 ] || fail "$f mode $(stat -c %a "$f")"
done
pass "the audit shows the two writers' cluster ids; each node keeps its id in DATA_DIR/cluster-id (0600)"
agent_stop 2 TERM

# bootstrap: false never bootstraps: it waits, then joins cluster 1.
agent_start 3
waited() { [ "$(st 3 j.uptime_seconds)" -ge 3 ]; }
wait_until 15 waited || fail "node 3 not up"
[ "$(st 3 j.role)" != leader ] && [ "$(st 3 j.last_index)" = 0 ] && [ "$(st 3 j.cluster_id)" = null ] ||
	fail "node 3 (bootstrap: false) bootstrapped: $(agent_status 3)"
[ "$(st 3 j.bootstrap)" = never ] || fail "node 3 bootstrap: $(st 3 j.bootstrap)"
out=$("$CANOPYCTL" --server "${AGENT_CTL[1]}" cluster add "3@${AGENT_RAFT[3]}" 2>&1) || fail "add 3: $out"
has_id1() { [ "$(st 3 j.cluster_id)" = "$id1" ] && [ "$(cat "$dir/data3/cluster-id")" = "$id1" ]; }
wait_until 10 has_id1 || fail "node 3 did not take cluster 1's id: $(st 3 j.cluster_id)"
pass "bootstrap: false waited (3 s, no log entry), then joined cluster 1 and took its id"

# A node with another cluster's data dir: node 4 joins cluster 1, stops, and
# comes back with the stray's data dir.
agent_start 4
wait_until 10 agent_status 4 || fail "agent 4 did not start"
out=$("$CANOPYCTL" --server "${AGENT_CTL[1]}" cluster add "4@${AGENT_RAFT[4]}" 2>&1) || fail "add 4: $out"
four_has_id1() { [ "$(st 4 j.cluster_id)" = "$id1" ]; }
wait_until 10 four_has_id1 || fail "node 4 did not take cluster 1's id"
agent_stop 4 TERM
mv "$dir/data4" "$dir/data4.own"
cp -a "$dir/data2" "$dir/data4"
since=$(scim_ctl GET audit | json_get 'j.length ? j[j.length-1].seq : 0')
agent_start 4
# A new term makes the leader re-commit the id (logs that agree on index and
# term up to the first id entry cannot show the difference before that).
wait_until 10 agent_status 4 || fail "agent 4 did not restart"
out=$("$CANOPYCTL" --server "${AGENT_CTL[1]}" cluster transfer 3 2>&1) || fail "transfer to 3: $out"
agent_wait_exit 4 20 || fail "node 4 with the stray's data dir still runs: $(agent_status 4)"
[ "$AGENT_RC" != 0 ] || fail "node 4 exited 0"
grep -q "data dir belongs to cluster $id2, peers are cluster $id1: move the data dir aside and rejoin with canopyctl cluster add" \
	"$dir/agent4.log" || fail "node 4 did not say why: $(tail -3 "$dir/agent4.log")"
grep -q "acting as leader" <(sed -n '/msg=started/,$p' "$dir/agent4.log" | tail -n +2) && fail "node 4 led"
n4=$(scim_ctl GET audit | json_get "j.filter(a=>a.seq>$since && a.node==='4').length")
[ "$n4" = 0 ] || fail "node 4 wrote $n4 times to the target"
pass "node 4 with cluster $id2's data dir refused (exit $AGENT_RC) and never exported"
