#!/usr/bin/env bash
# A single-node leader that is syncing stops cleanly on SIGTERM: exit code 0,
# and (under the ASan build, ASAN_OPTIONS=detect_leaks=1) no double free or
# leak. libraft 0.15 used to free a pending request twice on this path.
# Refused starts (config error, port in use, bad data dir) exit 1 with a
# message and, under ASan, without a leak report.
source "$(dirname "$0")/../fixtures/sync.sh"
dir=$(fixture_tmpdir)

sync_setup 20 2
agent_ports 1
CLUSTER_BOOTSTRAP=true sync_agent_config 1 "[\"1@${AGENT_RAFT[1]}\"]"
for run in 1 2 3; do
	agent_start 1
	wait_until 20 idle_leader 1 || { agent_logs 1 >&2; fail "run $run: the single node did not reach idle"; }
	agent_stop 1 TERM
	[ "$AGENT_RC" = 0 ] || { tail -50 "$dir/agent1.log" >&2; fail "run $run: SIGTERM of a syncing single-node leader exited $AGENT_RC"; }
	! grep -q 'ERROR: AddressSanitizer\|LeakSanitizer' "$dir/agent1.log" || { tail -60 "$dir/agent1.log" >&2; fail "run $run: sanitizer report"; }
done
pass "SIGTERM of a syncing single-node leader exits 0, three runs"

# Refused starts: each exits 1 (78 for a configuration error) with one clear
# line and no sanitizer report.
refused() {
	local what=$1 cfg=$2 pattern=$3 want=${4:-1} out rc=0
	out=$("$CANOPY_AGENT" --config "$cfg" 2>&1) || rc=$?
	[ "$rc" = "$want" ] || fail "$what: exit $rc, want $want: $out"
	grep -q -- "$pattern" <<<"$out" || fail "$what: error does not say \"$pattern\": $out"
	! grep -q 'AddressSanitizer\|LeakSanitizer' <<<"$out" || fail "$what: sanitizer report: $out"
}
sed 's/^  heartbeat_ms:.*/  heartbeat_ms: fast/' "$dir/agent1.yaml" >"$dir/bad-config.yaml"
refused "config error" "$dir/bad-config.yaml" "heartbeat_ms" 78

# the control port taken
python3 -c 'import socket,sys,time; s=socket.socket(); s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1); h,p=sys.argv[1].rsplit(":",1); s.bind((h,int(p))); s.listen(); time.sleep(30)' "${AGENT_CTL[1]}" &
holder=$!
at_exit "kill $holder 2>/dev/null"
wait_tcp "${AGENT_CTL[1]##*:}" 5 || fail "could not hold the control port"
refused "control port in use" "$dir/agent1.yaml" "${AGENT_CTL[1]}"
kill $holder 2>/dev/null; wait $holder 2>/dev/null

# a data dir that cannot be used (a file where the directory should be)
: >"$dir/not-a-dir"
sed "s#^  data_dir:.*#  data_dir: $dir/not-a-dir#" "$dir/agent1.yaml" >"$dir/bad-data.yaml"
refused "bad data dir" "$dir/bad-data.yaml" "not-a-dir"
pass "refused starts exit 1 with a clear error and no sanitizer report"
