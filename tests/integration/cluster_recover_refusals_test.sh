#!/usr/bin/env bash
# `canopy-agent --recover-members` refuses, writing nothing: while the agent
# runs on the data dir (its lock, naming the pid), with a member list that
# leaves this node out or gives it another address, on a data dir with no
# log, and --yes alone. (Without --yes it shows the plan and writes nothing:
# cluster_recover_majority_lost_test.sh.)
source "$(dirname "$0")/../fixtures/agent.sh"
dir=$(fixture_tmpdir)

agent_ports 1
agent_ports 2
CLUSTER_BOOTSTRAP=true agent_config 1 "[\"1@${AGENT_RAFT[1]}\"]"
agent_config 2 "[\"1@${AGENT_RAFT[1]}\"]"
agent_start 1
wait_role 1 leader 15 || fail "node 1 does not lead: $(agent_logs 1)"
last=$(json_eval "$(agent_status 1)" 'j.last_index')
files() { (cd "$dir/data1" && ls); }
before=$(files)

recover() { rc=0; out=$("$CANOPY_AGENT" --config "$dir/agent$1.yaml" "${@:2}" 2>&1) || rc=$?; }

recover 1 --recover-members "1@${AGENT_RAFT[1]}" --yes
[ "$rc" = 1 ] || fail "with the agent running: exit $rc, expected 1: $out"
grep -q "is in use by a running canopy-agent (pid ${AGENT_PID[1]}): stop it first" <<<"$out" ||
	fail "with the agent running: $out"
[ "$(files)" = "$before" ] || fail "with the agent running, the data dir changed: $(files)"
[ "$(json_eval "$(agent_status 1)" 'j.role')" = leader ] || fail "the running agent was disturbed"
pass "refused while the agent runs: $out"

# A second agent on the same data dir is refused the same way.
cp "$dir/agent1.yaml" "$dir/agent1b.yaml"
sed -i "s/${AGENT_RAFT[1]}/127.0.0.1:$(free_port)/; s/control_address: .*/control_address: 127.0.0.1:$(free_port)/" "$dir/agent1b.yaml"
rc=0; out=$(timeout 20 "$CANOPY_AGENT" --config "$dir/agent1b.yaml" 2>&1) || rc=$?
[ "$rc" = 1 ] && grep -q "in use by a running canopy-agent" <<<"$out" || fail "second agent on the data dir: exit $rc: $out"
pass "a second agent on the same data dir is refused"

agent_stop 1
[ "$AGENT_RC" = 0 ] || fail "node 1 stopped with $AGENT_RC"
before=$(cd "$dir/data1" && find . -type f ! -name canopy.lock -print0 | sort -z | xargs -0 sha256sum)
unchanged() { [ "$(cd "$dir/data1" && find . -type f ! -name canopy.lock -print0 | sort -z | xargs -0 sha256sum)" = "$before" ]; }

recover 1 --recover-members "2@${AGENT_RAFT[2]}" --yes
[ "$rc" = 2 ] && grep -q "does not list this node" <<<"$out" || fail "list without this node: exit $rc: $out"
recover 1 --recover-members "1@127.0.0.1:1" --yes
[ "$rc" = 2 ] && grep -q "listens on node.raft_address ${AGENT_RAFT[1]}" <<<"$out" || fail "wrong address: exit $rc: $out"
recover 1 --recover-members "1@${AGENT_RAFT[1]},1@${AGENT_RAFT[2]}" --yes
[ "$rc" = 2 ] && grep -q "listed twice" <<<"$out" || fail "duplicate id: exit $rc: $out"
recover 1 --recover-members "x@y" --yes
[ "$rc" = 2 ] || fail "bad member: exit $rc: $out"
recover 1 --yes
[ "$rc" = 2 ] && grep -q -- "--yes goes with --recover-members" <<<"$out" || fail "--yes alone: exit $rc: $out"
unchanged || fail "a refused recovery changed the data dir"
pass "bad member lists refused with exit 2, data dir unchanged"

mkdir -p "$dir/data2"
recover 2 --recover-members "2@${AGENT_RAFT[2]}" --yes
[ "$rc" = 1 ] && grep -q "holds no raft log: there is nothing to recover" <<<"$out" || fail "empty data dir: exit $rc: $out"
pass "an empty data dir is refused"

# And the node still starts as it was: nothing was written.
agent_start 1
wait_role 1 leader 15 || fail "node 1 does not lead after the refusals"
[ "$(json_eval "$(agent_status 1)" 'j.last_index')" -gt "$last" ] || fail "node 1 restarted below its log"
