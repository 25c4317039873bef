#!/usr/bin/env bash
# A one-node cluster bootstraps itself, leads, answers /v1/status, /metrics
# and canopyctl; SIGTERM stops it cleanly; after a restart its term and
# applied index come back from the data dir.
source "$(dirname "$0")/../fixtures/agent.sh"
dir=$(fixture_tmpdir)

agent_ports 1
agent_config 1 "[\"1@${AGENT_RAFT[1]}\"]"
agent_start 1
wait_role 1 leader 10 || { cat "$dir/agent1.log.tmp" >&2; fail "single node did not become a ready leader"; }
pass "one-node cluster bootstrapped and leads"

st=$(agent_status 1)
[ "$(json_eval "$st" 'j.node_id')" = 1 ] || fail "node_id: $st"
[ "$(json_eval "$st" 'j.cluster')" = test ] || fail "cluster: $st"
[ "$(json_eval "$st" 'j.leader.id')" = 1 ] || fail "leader.id: $st"
[ "$(json_eval "$st" 'j.leader.address')" = "${AGENT_RAFT[1]}" ] || fail "leader.address: $st"
[ "$(json_eval "$st" 'j.members.length===1 && j.members[0].role==="voter" && j.members[0].reachable===true')" = true ] || fail "members: $st"
[ "$(json_eval "$st" 'typeof j.sync.exported_total==="number" && "cursor" in j.sync && "pending_deletes" in j.sync && "last_export_at" in j.sync && "errors_total" in j.sync && typeof j.sync.state==="string"')" = true ] || fail "sync fields: $st"
term1=$(json_eval "$st" 'j.term')
[ "$term1" -ge 1 ] || fail "term $term1"
pass "status has the contract fields (term $term1)"

out=$("$CANOPYCTL" --server "${AGENT_CTL[1]}" status --json) || fail "canopyctl status --json failed"
[ "$(json_eval "$out" 'j.role')" = leader ] || fail "canopyctl --json role: $out"
out=$(CANOPY_SERVER=${AGENT_CTL[1]} "$CANOPYCTL" status) || fail "canopyctl status (CANOPY_SERVER) failed"
grep -q "^node .*1 (leader)" <<<"$out" || fail "readable status lacks the role: $out"
grep -q "^1 .*${AGENT_RAFT[1]} .*voter .*yes" <<<"$out" || fail "readable status lacks the member row: $out"
pass "canopyctl status, table and --json"

m=$(curl -sf "http://${AGENT_CTL[1]}/metrics") || fail "/metrics"
grep -q '^canopy_role{role="leader"} 1$' <<<"$m" || fail "metrics role: $m"
grep -q "^canopy_term $term1\$" <<<"$m" || fail "metrics term"
grep -q '^canopy_uptime_seconds ' <<<"$m" || fail "metrics uptime"
grep -q '^canopy_applied_index ' <<<"$m" || fail "metrics applied index"
pass "/metrics in Prometheus text"

code=$(curl -s -o /dev/null -w '%{http_code}' "http://${AGENT_CTL[1]}/v1/nope")
[ "$code" = 404 ] || fail "unknown endpoint answered $code"

sleep 0.5 # let a few lease renewals commit
applied1=$(json_eval "$(agent_status 1)" 'j.applied_index')
agent_stop 1 TERM
[ "$AGENT_RC" = 0 ] || fail "agent exited $AGENT_RC on SIGTERM"
grep -q 'msg=stopped' "$dir/agent1.log" || fail "no clean stop in log"
grep -q 'level=info node=1 msg=started' "$dir/agent1.log" || fail "log lines lack level/node fields"
pass "SIGTERM stops cleanly (exit 0)"

agent_start 1
wait_role 1 leader 10 || fail "restarted node did not lead"
st=$(agent_status 1)
term2=$(json_eval "$st" 'j.term')
applied2=$(json_eval "$st" 'j.applied_index')
[ "$term2" -ge "$term1" ] || fail "term went back: $term1 -> $term2"
[ "$applied2" -ge "$applied1" ] || fail "applied index went back: $applied1 -> $applied2"
grep -q 'bootstrapped=no' "$dir/agent1.log.tmp" || fail "restart bootstrapped again"
pass "restart from disk: term $term1 -> $term2, applied $applied1 -> $applied2"

# A second agent on the same control port fails with the address and cause.
agent_ports 2
AGENT_CTL[2]=${AGENT_CTL[1]}
agent_config 2 "[\"2@${AGENT_RAFT[2]}\"]"
if err=$("$CANOPY_AGENT" --config "$dir/agent2.yaml" 2>&1); then fail "agent started on a taken port"; fi
grep -q "${AGENT_CTL[1]}" <<<"$err" || fail "port clash error does not name the address: $err"
pass "port clash is a clear error"

# canopyctl against nothing: non-zero and one line.
port=$(free_port)
if err=$("$CANOPYCTL" --server 127.0.0.1:"$port" status 2>&1); then fail "canopyctl succeeded with no server"; fi
[ "$(wc -l <<<"$err")" = 1 ] || fail "canopyctl error is not one line: $err"
grep -q "cannot reach canopy agent at 127.0.0.1:$port" <<<"$err" || fail "canopyctl error: $err"
pass "canopyctl reports an unreachable agent in one line"

# A mapping expression that does not parse stops the agent at start, naming
# the file, line, rule and column.
cat >"$dir/badmap.yaml" <<YAML
node:
  id: 3
  raft_address: 127.0.0.1:$(free_port)
  control_address: 127.0.0.1:$(free_port)
  data_dir: $dir/data3
cluster:
  name: test
  members: ["3@127.0.0.1:1"]
source:
  kind: openldap
  url: ldap://127.0.0.1:1
  users: { base: "dc=example,dc=com" }
target:
  kind: scim
  url: http://127.0.0.1:1/scim/v2
mapping:
  user:
    userName: "Joinn(\" \", [uid])"
YAML
sed -i "s|3@127.0.0.1:1|3@$(grep raft_address "$dir/badmap.yaml" | awk '{print $2}')|" "$dir/badmap.yaml"
if err=$("$CANOPY_AGENT" --config "$dir/badmap.yaml" 2>&1); then fail "agent started with a bad mapping"; fi
grep -q "badmap.yaml: line 18: mapping.user.userName: column 1: unknown function 'Joinn'" <<<"$err" || fail "bad mapping error: $err"
pass "a bad mapping expression is refused at start with file, line, rule and column"
