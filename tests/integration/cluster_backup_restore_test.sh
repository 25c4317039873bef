#!/usr/bin/env bash
# A backup of a follower's data dir taken while the cluster syncs (the
# follower stopped for the copy, the other two go on), restored after every
# node is lost: `canopy-agent --backup` refuses while the agent runs, copies
# and checks the data dir; the copy, put into an empty data dir and recovered
# as a one-node cluster (--recover-members), holds exactly the state digest
# the cluster had at the backup (started first without source and target, so
# nothing moves it), then, started with them, leads, catches up from the
# backup's replicated cursor with nothing lost and no object created twice.
# (The stream of changes pauses for the moment the reference digest is read:
# a digest read from a running node can be a few entries old.)
source "$(dirname "$0")/../fixtures/sync.sh"
source "$(dirname "$0")/../fixtures/failover.sh"
dir=$(fixture_tmpdir)

sync_setup 50 2
sync_start_cluster 3
users_are() { [ "$(scim_count Users)" = "$1" ]; }
wait_until 60 users_are 50 || fail "initial sync"
wait_secs 15 idle_leader 1 2 3 || fail "no idle leader"
L=$(idle_leader 1 2 3)
F=1; [ "$L" = 1 ] && F=2
# F leads once, so that its control address is in the replicated state
# ("n:F") as it will be when its restored copy leads: a digest covers every
# key, and a first leadership adds that one.
out=$("$CANOPYCTL" --server "${AGENT_CTL[$L]}" cluster transfer "$F" 2>&1) || fail "transfer to $F: $out"
wait_secs 15 idle_leader "$F" || fail "$F does not lead"
out=$("$CANOPYCTL" --server "${AGENT_CTL[$F]}" cluster transfer "$L" 2>&1) || fail "transfer to $L: $out"
wait_secs 15 idle_leader "$L" || fail "$L does not lead again"
failover_stream 50 0.1

rc=0; out=$("$CANOPY_AGENT" --config "$dir/agent$F.yaml" --backup "$dir/backup" 2>&1) || rc=$?
[ "$rc" = 1 ] && grep -q "in use by a running canopy-agent" <<<"$out" || fail "backup of a running agent: exit $rc: $out"
[ ! -e "$dir/backup" ] || fail "a refused backup left $dir/backup"

# The reference: every node at the same digest, nothing changing.
kill "$GEN_PID"; wait "$GEN_PID" 2>/dev/null
sync_ok() { sync_compare >/dev/null 2>&1; }
wait_secs 60 sync_ok || sync_compare || fail "target differs from source before the backup"
wait_secs 15 idle_leader 1 2 3 || fail "no idle leader before the backup"
digests() { local i; for i in 1 2 3; do json_eval "$(agent_status "$i")" 'j.state.digest'; done | sort -u; }
one_digest() { [ "$(digests | wc -l)" = 1 ]; }
wait_secs 30 one_digest || fail "digests differ: $(digests)"
at_backup=$(digests)
agent_status "$F" >"$dir/status-at-backup.json"
agent_stop "$F"
failover_stream 50 0.1
rc=0; out=$("$CANOPY_AGENT" --config "$dir/agent$F.yaml" --backup "$dir/backup" 2>&1) || rc=$?
[ "$rc" = 0 ] || fail "backup: exit $rc: $out"
pass "$out"
agent_start "$F"
writes=$(scim_writes)
more_writes() { [ "$(scim_writes)" -gt $((writes + 20)) ]; }
wait_secs 30 more_writes || fail "the stream stalled after the backup"
rejoined() { [ "$(json_eval "$(agent_status "$F")" "j.leader.id===$L")" = true ]; }
wait_secs 15 rejoined || fail "node $F did not rejoin after its backup"
kill "$GEN_PID"; wait "$GEN_PID" 2>/dev/null
wait_secs 60 sync_ok || sync_compare || fail "target differs from source before the loss"
pass "stream stopped; target equals source"

# Every node lost; restore the backup into an empty data dir and recover.
for i in 1 2 3; do agent_stop "$i" KILL; done
rm -rf "$dir/data$F" && mkdir -m 700 "$dir/data$F" && cp -a "$dir/backup/." "$dir/data$F/" || fail "restore"
rc=0; out=$("$CANOPY_AGENT" --config "$dir/agent$F.yaml" --recover-members "$F@${AGENT_RAFT[$F]}" --yes 2>&1) ||
	rc=$?
[ "$rc" = 0 ] || fail "recover the restored backup: exit $rc: $out"
# First without source and target: the state is the backup's, untouched.
mv "$dir/agent$F.yaml" "$dir/agent$F.sync.yaml"
agent_config "$F" "[\"$F@${AGENT_RAFT[$F]}\"]"
agent_start "$F"
wait_secs 15 ready_leader "$F" || fail "restored node does not lead: $(agent_status "$F")"
# As leader it soon drops the version records of the members it no longer
# has (agent/versions.c: 3 members -> 1): then every other key is the
# backup's. Before that tick its digest is the backup's exactly.
got=$(json_eval "$(agent_status "$F")" 'j.state.digest')
if [ "$got" != "$at_backup" ]; then
	pruned() { [ "$(json_eval "$(agent_status "$F")" 'j.format.records')" = 1 ]; }
	wait_secs 10 pruned || fail "restored digest $got (the backup had $at_backup) and the removed members' version records are still there: $(agent_status "$F")"
	b=$dir/status-at-backup.json
	want=$(json_get 'j.state.objects + " " + (j.state.keys - (j.format.records - 1)) + " " + j.sync.cursor.length + " " + j.sync.exported_objects' <"$b")
	have=$(json_eval "$(agent_status "$F")" 'j.state.objects + " " + j.state.keys + " " + j.sync.cursor.length + " " + j.sync.exported_objects')
	[ "$have" = "$want" ] || fail "restored state (objects keys cursor-length exported) $have, the backup had $want: $(agent_status "$F") // at the backup: $(cat "$b")"
	cur_ok() { [ "$(json_eval "$(agent_status "$F")" 'j.sync.cursor')" = "$(json_get 'j.sync.cursor' <"$b")" ]; }
	cur_ok || fail "restored cursor differs from the backup's"
	got="$got (the backup's $at_backup without the $(($(json_get 'j.format.records' <"$b") - 1)) removed members' version records)"
fi
pass "the restored backup leads alone with the state of the backup: digest $got"
agent_stop "$F"
mv "$dir/agent$F.sync.yaml" "$dir/agent$F.yaml"

agent_start "$F"
wait_secs 15 ready_leader "$F" || fail "restored node does not lead: $(agent_status "$F")"
wait_secs 60 sync_ok || sync_compare || fail "target differs from source after the restore"
failover_audit_clean
pass "restored node exported what changed since the backup: target equals source, no duplicate create"
