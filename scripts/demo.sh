#!/usr/bin/env bash
# scripts/demo.sh -- see canopy work on one machine.
#
# Installs what is missing, builds, starts a private OpenLDAP (slapd) seeded
# with a sample directory (200 users, 10 groups), a local SCIM 2.0 server, and
# a 3-agent canopy cluster (deploy/local-cluster.sh) that syncs the one into
# the other; then shows the cluster status and what arrived in the target.
#
# Interactive: it keeps running until you press Enter (try
# `canopyctl status`, kill the leader, change the directory with ldapmodify).
# Not interactive (no terminal on stdin): it stops everything and exits.
#
# Ports: agents 7001-7003 (raft) and 8001-8003 (control); slapd and the SCIM
# server take free ports.
set -euo pipefail
here=$(cd "$(dirname "$0")/.." && pwd)
cd "$here"

scripts/install-deps.sh --demo
cmake -S . -B build -DCMAKE_BUILD_TYPE=RelWithDebInfo >/dev/null
cmake --build build -j "$(nproc)" >/dev/null
echo "demo: built build/canopy-agent and build/canopyctl"

export CANOPY_SOURCE_DIR=$here CANOPY_BUILD_DIR=$here/build
# shellcheck source=../tests/fixtures/sync.sh
source tests/fixtures/sync.sh
set +u
dir=$(fixture_tmpdir)

for p in 7001 7002 7003 8001 8002 8003; do
	if (exec 3<>/dev/tcp/127.0.0.1/$p) 2>/dev/null; then
		fail "port $p is in use (another canopy? deploy/local-cluster.sh down)"
	fi
done

slapd_start 200 10 nested 2>/dev/null
scim_start 2>/dev/null
echo "demo: slapd at $SLAPD_URL (base $SLAPD_BASE), SCIM server at $SCIM_URL"

# The agents' source/target/mapping: the same sections the tests use.
AGENT_RAFT[1]=x AGENT_CTL[1]=x
sync_agent_config 1 "[]"
sed -n '/^source:/,$p' "$dir/agent1.yaml" >"$dir/extra.yaml"
export CANOPY_LOCAL_DIR=$dir/cluster CANOPY_EXTRA_YAML=$dir/extra.yaml
at_exit "deploy/local-cluster.sh down >/dev/null 2>&1"
deploy/local-cluster.sh up 3

ready() { [ "$(scim_count Users)" = 200 ] && [ "$(scim_count Groups)" = 10 ]; }
if ! wait_until 60 ready; then
	deploy/local-cluster.sh status || true
	fail "the sample directory did not arrive in the SCIM server (logs: $CANOPY_LOCAL_DIR/agent*.log)"
fi
sleep 1
echo
echo "demo: the target holds $(scim_count Users) users and $(scim_count Groups) groups; cluster status:"
echo
deploy/local-cluster.sh status
echo
echo "demo: the latest provisioning-log entries, every node's merged:"
"$CANOPYCTL" --server 127.0.0.1:8001 logs --cluster --limit 3 || true

if [ -t 0 ]; then
	cat <<EOT

The cluster keeps running. Try, in another terminal:
  build/canopyctl status                      # any of 127.0.0.1:8001..8003
  kill -9 \$(cat $CANOPY_LOCAL_DIR/agent1.pid)  # then status again: another agent leads
  ldapmodify -x -H $SLAPD_URL -D $SLAPD_ADMIN_DN -y $SLAPD_PW_FILE   # change the directory
  curl -s http://127.0.0.1:$SCIM_PORT/_test/store | head -c 600   # what the target holds
Press Enter to stop everything.
EOT
	read -r _
fi
