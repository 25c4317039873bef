#!/usr/bin/env bash
# bench/drill.sh [COUNT] [T] -- the operators' failover drill's figures
# (`canopyctl drill failover`, docs/operations.md "Failover drills").
#
#   bench/drill.sh            5 drills of each mode, election timeout T = 1000 ms
#   bench/drill.sh 5 300
#
# 3 canopy-agent processes sync a real slapd (100 users, 2 groups) into the
# SCIM fixture while a user's givenName changes every 100 ms; then
# `canopyctl drill failover --mode transfer --count COUNT` and `--mode crash
# --count COUNT`, printed as canopyctl prints them, plus, per drill, the
# first write of the new term in the SCIM audit (the server's clock) after
# the drill's start -- what first_export_ms predicts. At the end: no object
# created twice, no write of an older term after a newer one's first, and the
# target equal to the directory. Exit 0 when all of that held.
#
# Env: CANOPY_BUILD_DIR (default <source>/build), DRILL_MODES (default "transfer crash").
BENCH_SRC=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
export CANOPY_SOURCE_DIR=${CANOPY_SOURCE_DIR:-$(cd "$BENCH_SRC/.." && pwd)}
# shellcheck source=../tests/fixtures/drill.sh
source "$CANOPY_SOURCE_DIR/tests/fixtures/drill.sh"
# shellcheck source=../tests/fixtures/failover.sh
source "$CANOPY_SOURCE_DIR/tests/fixtures/failover.sh"
COUNT=${1:-5}
T=${2:-1000}
[[ $COUNT =~ ^[1-9][0-9]*$ && $T =~ ^[1-9][0-9]+$ ]] || { echo "usage: $0 [COUNT] [T]" >&2; exit 2; }
ELECTION_TIMEOUT_MS=$T
HEARTBEAT_MS=$((T / 10))
drill_cluster 100 2
dir=$(fixture_tmpdir)
failover_stream
sleep 2 # let the stream run before the first drill (a bench, not a test)
echo "bench/drill.sh: $COUNT drills per mode, T = $T ms, heartbeat $HEARTBEAT_MS ms, a change every 100 ms"
for mode in ${DRILL_MODES:-transfer crash}; do
	L=$(ready_leader 1 2 3) || fail "no leader before the $mode drills"
	echo
	echo "== canopyctl drill failover --mode $mode --count $COUNT"
	"$CANOPYCTL" --server "${AGENT_CTL[$L]}" --token-file "$DRILL_TOKEN_FILE" drill failover --mode "$mode" \
		--count "$COUNT" --json >"$dir/$mode.json" || fail "$mode drills failed"
	json_eval "$(cat "$dir/$mode.json")" 'j.drills.map((x, i) => "drill " + (i + 1) + ": " + x.old_leader + " -> " + x.new_leader + " term " + x.term + ": detected " + x.detected_ms + ", elected " + x.elected_ms + ", exporting " + x.first_export_ms).join("\n")
		+ "\nsummary min/median/max ms: detected " + ["min","median","max"].map(k => j.summary.detected_ms[k]).join("/") + ", elected " + ["min","median","max"].map(k => j.summary.elected_ms[k]).join("/") + ", exporting " + ["min","median","max"].map(k => j.summary.first_export_ms[k]).join("/")'
	sleep 1 # the new term's writes reach the audit
	node -e '
		const d = JSON.parse(require("fs").readFileSync(process.argv[1], "utf8")).drills;
		const a = require("fs").readFileSync(process.argv[2], "utf8").split("\n").filter(Boolean).map(JSON.parse);
		const v = d.map(x => { const w = a.find(e => e.term === x.term && e.status < 300); return w ? Date.parse(w.time) - x.started_at_ms : null; });
		const s = v.filter(x => x !== null).sort((p, q) => p - q);
		console.log("audit: first write of the new term after the start (ms): " + v.join(" ") +
			(s.length ? "  min/median/max " + s[0] + "/" + s[Math.floor((s.length - 1) / 2)] + "/" + s[s.length - 1] : ""));' \
		"$dir/$mode.json" "$SCIM_AUDIT"
done
echo
for i in 1 2 3; do
	echo "node $i: $(json_eval "$(agent_status $i)" '"role " + j.role + ", raft messages dropped while playing dead " + j.drill.raft_dropped_in + " in / " + j.drill.raft_dropped_out + " out, unaddressed messages not sent " + j.failover.unaddressed_messages')"
done
kill "$GEN_PID" 2>/dev/null
wait_until 60 sync_compare || sync_compare || fail "target differs from source after the drills"
failover_audit_clean
echo
echo "nothing lost, no duplicate create, no stale-term write"
