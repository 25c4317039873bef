#!/usr/bin/env bash
# deploy/local-cluster.sh -- run N canopy agents on loopback, each with its
# own data dir, as one Raft group. For demos, drills and development.
#
#   deploy/local-cluster.sh up N       start agents 1..N (default 3)
#   deploy/local-cluster.sh down       stop them (SIGTERM: the leader hands over first)
#   deploy/local-cluster.sh status [N] canopyctl status from node N (default: the first that answers)
#
# Environment:
#   CANOPY_LOCAL_DIR    where configs, data and logs go (default /tmp/canopy-local)
#   CANOPY_BIN          directory holding canopy-agent and canopyctl (default build/)
#   CANOPY_RAFT_PORT    first raft port (default 7001); node i uses +i-1
#   CANOPY_CTL_PORT     first control port (default 8001)
#   CANOPY_EXTRA_YAML   a file appended to every agent's config (source:, target:, mapping:, ...)
#   CANOPY_ELECTION_MS  cluster.election_timeout_ms (default 1000)
set -euo pipefail

here=$(cd "$(dirname "$0")/.." && pwd)
dir=${CANOPY_LOCAL_DIR:-/tmp/canopy-local}
bin=${CANOPY_BIN:-$here/build}
raft0=${CANOPY_RAFT_PORT:-7001}
ctl0=${CANOPY_CTL_PORT:-8001}

usage() {
	sed -n '2,16p' "$0" | sed 's/^# \{0,1\}//'
	exit "${1:-0}"
}

up() {
	local n=${1:-3} i members=""
	[ -x "$bin/canopy-agent" ] || { echo "local-cluster: $bin/canopy-agent not built (cmake -S . -B build && cmake --build build)" >&2; exit 1; }
	mkdir -p "$dir"
	for ((i = 1; i <= n; i++)); do
		members+="\"$i@127.0.0.1:$((raft0 + i - 1))\""
		[ "$i" -lt "$n" ] && members+=", "
	done
	for ((i = 1; i <= n; i++)); do
		if [ -f "$dir/agent$i.pid" ] && kill -0 "$(cat "$dir/agent$i.pid")" 2>/dev/null; then
			echo "agent $i already running (pid $(cat "$dir/agent$i.pid"))"
			continue
		fi
		mkdir -p "$dir/data$i"
		cat >"$dir/agent$i.yaml" <<YAML
node:
  id: $i
  raft_address: 127.0.0.1:$((raft0 + i - 1))
  control_address: 127.0.0.1:$((ctl0 + i - 1))
  data_dir: $dir/data$i
cluster:
  name: local
  members: [$members]
  election_timeout_ms: ${CANOPY_ELECTION_MS:-1000}
  heartbeat_ms: 100
YAML
		if [ -n "${CANOPY_EXTRA_YAML:-}" ]; then
			cat "$CANOPY_EXTRA_YAML" >>"$dir/agent$i.yaml"
		fi
		setsid "$bin/canopy-agent" --config "$dir/agent$i.yaml" >>"$dir/agent$i.log" 2>&1 </dev/null &
		echo $! >"$dir/agent$i.pid"
		echo "agent $i: pid $!, control 127.0.0.1:$((ctl0 + i - 1)), log $dir/agent$i.log"
	done
}

down() {
	local f pid
	for f in "$dir"/agent*.pid; do
		[ -e "$f" ] || continue
		pid=$(cat "$f")
		if kill -TERM "$pid" 2>/dev/null; then
			for _ in $(seq 1 50); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
			kill -KILL "$pid" 2>/dev/null || true
			echo "stopped $(basename "$f" .pid) (pid $pid)"
		fi
		rm -f "$f"
	done
}

status() {
	local i
	if [ -n "${1:-}" ]; then
		exec "$bin/canopyctl" --server "127.0.0.1:$((ctl0 + $1 - 1))" status
	fi
	for f in "$dir"/agent*.pid; do
		[ -e "$f" ] || continue
		i=$(basename "$f" .pid); i=${i#agent}
		if "$bin/canopyctl" --server "127.0.0.1:$((ctl0 + i - 1))" status 2>/dev/null; then
			return 0
		fi
	done
	echo "local-cluster: no agent answers (is it up? $dir)" >&2
	return 1
}

case "${1:-}" in
up) up "${2:-3}" ;;
down) down ;;
status) status "${2:-}" ;;
-h | --help | help) usage 0 ;;
*) usage 2 >&2 ;;
esac
