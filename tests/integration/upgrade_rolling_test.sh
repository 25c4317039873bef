#!/usr/bin/env bash
# upgrade_rolling_test: a 3-agent cluster running the previous release
# (built from git history: tests/fixtures/previous_build.sh) is upgraded to
# this build with deploy/rolling-upgrade.sh while a stream of directory
# changes flows. Asserts:
#   - the export never stops for longer than one election timeout (the SCIM
#     fixture's audit log: the longest pause between successful writes while
#     the upgrade ran);
#   - nothing lost, nothing duplicated: the target equals the directory at
#     the end, no externalId created twice, no write of an older term after
#     a newer term's first;
#   - every member reports the new version, on every node (status version,
#     members[].version);
#   - format 2 (sync/state/state.h) stays off while any member runs the
#     previous release -- the old agent still applies everything the
#     upgraded leader writes -- and is written once the last one is upgraded.
source "$(dirname "$0")/../fixtures/sync.sh"
source "$(dirname "$0")/../fixtures/failover.sh"
source "$(dirname "$0")/../fixtures/previous_build.sh"

command -v jq >/dev/null || { echo "SKIP: jq is not installed (deploy/rolling-upgrade.sh needs it)"; exit 77; }

# The last release before versioned members and format gating.
PREVIOUS=${CANOPY_UPGRADE_FROM:-d76e34a001e6618a114f6edbd42bf722753a0835}
previous_build "$PREVIOUS"
echo "previous build: $("$PREVIOUS_AGENT" --version) (built in ${PREVIOUS_BUILD_S}s; 0 = cached)"
NEW_AGENT=$CANOPY_AGENT
NEW_VERSION=$("$NEW_AGENT" --version)
[ "$NEW_VERSION" != "$("$PREVIOUS_AGENT" --version)" ] || fail "the previous and the current build report the same version"

dir=$(fixture_tmpdir)
T=${ELECTION_TIMEOUT_MS:-1000}
sync_setup 50 5
CANOPY_AGENT=$PREVIOUS_AGENT sync_start_cluster 3
wait_secs 60 idle_leader 1 2 3 || fail "the previous release's cluster never became idle"
wait_secs 30 sync_compare || fail "initial sync incomplete"
# The script asks the leader for every member's control address; a
# follower's is known from its first health report to the leader (up to one
# health period after it learned the leader), so a fast sync can finish
# before that: wait for it as an operator would (or pass --control).
addresses_known() {
	local l
	l=$(idle_leader 1 2 3) &&
		[ "$(json_eval "$(agent_status "$l")" 'j.members.filter(m=>m.control_address).length')" = 3 ]
}
wait_secs 30 addresses_known || fail "the leader does not know every member's control address"
pass "3 agents of the previous release in sync"

# The stream: every 0.1 s one new user and one change of an existing one.
failover_stream 50 0.1 upg
stream_exported() { [ "$(scim_ctl GET store | json_get 'j.Users.filter(u=>u.userName.startsWith("upg")).length')" -ge 5 ]; }
wait_secs 30 stream_exported || fail "the stream is not exported"

# The restarts run here, in the test shell, so the new agents are this
# test's processes (spawn: they die with it): the script's restart command
# asks through a file and waits for the answer.
restart_cmd="echo {id} >'$dir/restart.req.tmp' && mv '$dir/restart.req.tmp' '$dir/restart.req' && \
until [ -e '$dir/restart.done.{id}' ]; do sleep 0.05; done"
leader_status() { local l; l=$(ready_leader 1 2 3) && agent_status "$l"; }
caught_up() { # ID: its applied_index within 10 of the leader's commit_index
	local s l
	l=$(leader_status) && s=$(agent_status "$1") &&
		[ $(( $(json_eval "$l" 'j.commit_index') - $(json_eval "$s" 'j.applied_index') )) -le 10 ]
}

start_ms=$(now_ms)
"$CANOPY_SOURCE_DIR/deploy/rolling-upgrade.sh" --server "${AGENT_CTL[1]}" --version "$NEW_VERSION" \
	--canopyctl "$CANOPY_BUILD_DIR/canopyctl" --restart-cmd "$restart_cmd" --timeout 60 >"$dir/rolling.log" 2>&1 &
ROLL_PID=$!
restarted=()
while kill -0 "$ROLL_PID" 2>/dev/null; do
	if [ -e "$dir/restart.req" ]; then
		id=$(cat "$dir/restart.req")
		rm -f "$dir/restart.req"
		if [ "${#restarted[@]}" -eq 2 ]; then
			# the last agent of the previous release: leadership moved to
			# an upgraded one, which must still write format 1 -- and the
			# old agent, a follower now, applies all of it
			L=$(leader_status) || fail "no ready leader before the last restart"
			[ "$(json_eval "$L" 'j.version && j.version.text')" = "$NEW_VERSION" ] ||
				fail "the leader before the last restart is not an upgraded agent"
			[ "$(json_eval "$L" 'j.format.writing')" = 1 ] ||
				fail "the upgraded leader writes format $(json_eval "$L" 'j.format.writing') while agent $id runs the previous release"
			[ "$(json_eval "$L" 'j.format.applied_by_version["2"]')" = 0 ] || fail "format 2 entries before the last restart"
			# the old agent's reports carry no version: tolerated, no record
			[ "$(json_eval "$L" "JSON.stringify(j.members.filter(m => m.id === $id).map(m => [m.version, m.max_format]))")" = '[[null,1]]' ] ||
				fail "agent $id (previous release) shows as $(json_eval "$L" "j.members.filter(m => m.id === $id)")"
			out=$("$CANOPY_BUILD_DIR/canopyctl" --server "${AGENT_CTL[$(json_eval "$L" 'j.node_id')]}" status)
			grep -q "^member $id runs an unrecorded version (max entry format 1)" <<<"$out" ||
				fail "canopyctl status does not name agent $id as on another build: $out"
			wait_until 10 caught_up "$id" || fail "agent $id (previous release) stopped applying the upgraded leader's entries"
			pass "before the last restart: leader $(json_eval "$L" 'j.node_id') (upgraded) writes format 1; agent $id (previous release) keeps up"
		fi
		agent_stop "$id"
		last_restart_ms=$(now_ms)
		CANOPY_AGENT=$NEW_AGENT agent_start "$id"
		restarted+=("$id")
		touch "$dir/restart.done.$id"
	fi
	sleep 0.05
done
wait "$ROLL_PID" || { cat "$dir/rolling.log"; fail "rolling-upgrade.sh failed"; }
end_ms=$(now_ms)
cat "$dir/rolling.log"
[ "${#restarted[@]}" -eq 3 ] || fail "restarted ${restarted[*]}: not every agent"
grep -q '^export gap: ' "$dir/rolling.log" || fail "rolling-upgrade.sh printed no export gap"
pass "rolling-upgrade.sh restarted ${restarted[*]} in $((end_ms - start_ms)) ms"

# The export gap on the target's clock: the longest pause between successful
# canopy writes while the upgrade ran (the stream writes every 0.1 s).
gap=$(node -e '
	const rows = require("fs").readFileSync(process.argv[1], "utf8").split("\n").filter(Boolean).map(JSON.parse)
		.filter((a) => a.term != null && a.status !== null && a.status < 300)
		.map((a) => Date.parse(a.time)).filter((t) => t >= Number(process.argv[2]) && t <= Number(process.argv[3]));
	let max = 0;
	for (let i = 1; i < rows.length; i++) max = Math.max(max, rows[i] - rows[i - 1]);
	console.log(rows.length + " " + max);' "$SCIM_AUDIT" "$start_ms" "$end_ms")
read -r writes gap_ms <<<"$gap"
echo "export during the upgrade: $writes writes, longest pause ${gap_ms} ms (election timeout $T ms)"
[ "$writes" -gt 20 ] || fail "only $writes writes during the upgrade: the stream did not flow"
[ "$gap_ms" -le "$T" ] || fail "export paused ${gap_ms} ms, longer than one election timeout ($T ms)"
pass "no export pause longer than one election timeout"

# Format 2 after the last upgrade, on every node.
format2() {
	local i s
	for i in 1 2 3; do
		s=$(agent_status "$i") || return 1
		[ "$(json_eval "$s" 'j.format.supported === 2 && j.format.applied_by_version["2"] > 0')" = true ] || return 1
	done
}
wait_secs 30 format2 || fail "format 2 not written after every agent was upgraded: $(agent_status 1)"
L=$(ready_leader 1 2 3) || fail "no leader at the end"
# The leader writes format 2 as soon as the records allow it; it logs the
# change on its next versions tick (VERSIONS_TICK_MS, agent/versions.c), so
# the entries can be applied everywhere before the line is written.
logged_format2() { agent_logs "$L" | grep 'entry format changed' | grep -q 'format=2'; }
wait_secs 10 logged_format2 || fail "leader $L did not log the change to format 2"
on_ms=$(agent_logs "$L" | grep 'entry format changed' | grep 'format=2' | tail -n 1 |
	sed -n 's/^time=\([^ ]*\) .*/\1/p' | xargs -r -I{} node -e 'console.log(Date.parse(process.argv[1]))' {})
[ -n "$on_ms" ] || fail "leader $L did not log the change to format 2"
[ "$on_ms" -ge "$last_restart_ms" ] || fail "format 2 turned on at $on_ms, before the last agent restarted ($last_restart_ms)"
pass "format 2 on $((on_ms - last_restart_ms)) ms after the last agent restarted, applied on every node"

# Every member's version, as every node knows it.
NEW_VERSION_JSON=$(node -e 'console.log(JSON.stringify(process.argv[1]))' "$NEW_VERSION")
versions_new() {
	local i s
	for i in 1 2 3; do
		s=$(agent_status "$i") || return 1
		[ "$(json_eval "$s" "j.version.text === $NEW_VERSION_JSON && j.members.length === 3 &&
			j.members.every(m => m.version === $NEW_VERSION_JSON && m.max_format === 2)")" = true ] || return 1
	done
}
wait_secs 20 versions_new || fail "not every node shows every member at \"$NEW_VERSION\": $(agent_status 1)"
pass "every node shows every member at \"$NEW_VERSION\", max_format 2"

# Nothing lost, nothing duplicated.
kill "$GEN_PID" 2>/dev/null
wait "$GEN_PID" 2>/dev/null
wait_secs 60 sync_compare || { sync_compare; fail "the target differs from the directory after the upgrade"; }
failover_audit_clean
for i in 1 2 3; do
	agent_logs "$i" | grep -q 'upgrade this node' && fail "agent $i refused an entry it did not understand"
done
pass "target equals the directory; no duplicate create; no stale write; no entry refused"
