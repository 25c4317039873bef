#!/usr/bin/env bash
# target.mode bulkupload (sync/target/entra_bulk.h) with three agents: the
# leader is killed (SIGKILL) while at least 20 of its operations were
# accepted (202) and not yet processed by the provisioning service -- in
# doubt. The new leader sends them again
# (keyed by externalId, so a second send updates, never duplicates), and all
# 300 users land once, nothing failed.
source "$(dirname "$0")/../fixtures/entra_bulk.sh"

slapd_start 300 0
graph_start
# processing 5 s after the 202: the leader dies while its operations wait
graph_bulk '{"delayMs": 5000}' >/dev/null
for i in 1 2 3; do agent_ports $i; done
members="[\"1@${AGENT_RAFT[1]}\", \"2@${AGENT_RAFT[2]}\", \"3@${AGENT_RAFT[3]}\"]"
for i in 1 2 3; do entra_bulk_config $i "$members"; done
for i in 1 2 3; do agent_start $i; done
ctl() { "$CANOPYCTL" --server "${AGENT_CTL[$1]}" "${@:2}"; }

wait_until 15 ready_leader 1 2 3 || fail "no leader"
L=$(ready_leader 1 2 3)
# at least 20 operations sent and waiting for processing
sent() { [ "$(graph_bulk | json_get "j.requests.some((r) => r.node === '$L') && j.pendingOperations >= 20")" = true ]; }
wait_secs 60 sent || fail "leader $L never had 20 operations waiting: $(graph_bulk | json_get 'j.pendingOperations')"
agent_stop "$L" KILL
in_doubt=$(graph_bulk | json_get 'j.pendingOperations')
graph_bulk >"$(fixture_tmpdir)/at_kill.json"
graph_token >/dev/null
[ "$(graph_req GET '/auditLogs/provisioning?$top=1000')" = 200 ] || fail "provisioning logs: $(graph_body)"
graph_body >"$(fixture_tmpdir)/logs_at_kill.json"
[ "$in_doubt" -ge 20 ] || fail "only $in_doubt operations in doubt at the kill"
rest=(); for i in 1 2 3; do [ "$i" != "$L" ] && rest+=("$i"); done
wait_until 15 ready_leader "${rest[@]}" || fail "no new leader after killing $L"
N=$(ready_leader "${rest[@]}")
echo "leader $L killed with $in_doubt operations accepted and not processed; new leader $N"

wait_secs 120 bulk_users_are 300 || fail "after the failover: $(graph_dump users | json_get 'j.length') of 300 users"
dups=$(graph_dump users | json_get 'j.length - new Set(j.map((u) => u.employeeId)).size')
[ "$dups" = 0 ] || fail "$dups users twice"
# every user the dead leader sent and the service had not processed at the
# kill (in doubt) was sent again by the new one
missed=$(graph_bulk | node -e '
	const fs = require("fs"), [L, N, atKill, logs] = process.argv.slice(1);
	const now = JSON.parse(fs.readFileSync(0, "utf8")).requests;
	const done = new Set(JSON.parse(fs.readFileSync(logs, "utf8")).value.map((e) => e.sourceIdentity.id));
	const byN = new Set(now.filter((r) => r.node === N).flatMap((r) => r.externalIds));
	const doubt = JSON.parse(fs.readFileSync(atKill, "utf8")).requests.filter((r) => r.node === L)
		.flatMap((r) => r.externalIds).filter((x) => !done.has(x));
	console.log(doubt.length + " " + doubt.filter((x) => !byN.has(x)).length);
' "$L" "$N" "$(fixture_tmpdir)/at_kill.json" "$(fixture_tmpdir)/logs_at_kill.json")
[ "${missed% *}" -ge 20 ] || fail "only ${missed% *} users in doubt by the logs at the kill"
[ "${missed#* }" = 0 ] || fail "${missed#* } of ${missed% *} users in doubt were not sent again by node $N"
done_waiting() { [ "$(graph_bulk | json_get 'j.pending')" = 0 ]; }
wait_secs 30 done_waiting || fail "the fixture still processes requests"
bulk_users_are 300 || fail "users changed after processing: $(graph_dump users | json_get 'j.length')"
[ "$(ctl "$N" failed --json | json_get 'j.failed.length')" = 0 ] || fail "failed objects: $(ctl "$N" failed --json)"
pass "leader $L killed with ${missed% *} users in doubt; node $N sent them again: 300 users, each once, nothing failed"
