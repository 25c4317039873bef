#!/usr/bin/env bash
# chaos-tests/scenarios/raft-segment-damage.sh [--long [SECS]] -- a follower
# crashes and its raft log is damaged before it restarts, under a change
# stream (docs/operations.md "Storage damage").
#
#   torn     SIGKILL of a follower F, then the last bytes written to its
#            newest open segment zeroed (a write torn by the crash). libraft
#            accepts a torn last write (nothing after it was acknowledged);
#            canopy's marker (canopy-state) may know that the lost entries
#            were committed, and then the agent must refuse to start. Either
#            is right; a start that then diverges is not (the verdict's digest
#            and cursor checks).
#   flipped  SIGKILL of a follower F, one flipped byte in the middle of its
#            last closed segment: F must refuse to start (exit non-zero, one
#            line naming the segment "is damaged").
# A refusing agent is replaced as the docs say: `canopyctl cluster remove F`,
# its data dir moved aside, started with cluster.bootstrap: false, `canopyctl
# cluster add F@ADDRESS`; it must become a voter again and catch up. The
# verdict (chaos-tests/check.sh) then wants nothing lost, duplicated or stale
# and equal digests on all three.
#
# Short mode: torn, then flipped. Long mode: both until SECS are over.
# Env: CHAOS_T (election_timeout_ms, default 1000), CHAOS_RATE (default 20).
source "$(dirname "$0")/../lib/scenario.sh"
scenario_init raft-segment-damage "$@"

T=${CHAOS_T:-1000}
export ELECTION_TIMEOUT_MS=$T HEARTBEAT_MS=$((T / 10))
dir=$(fixture_tmpdir)
chaos_cluster 3
chaos_workload_start "${CHAOS_RATE:-20}"
sleep 3

ctl() { "$CANOPYCTL" --server "${AGENT_CTL[$(host_leader)]}" --token-file "$CHAOS_CONTROL_TOKEN" "$@"; }
status_of() { json_eval "$(agent_status "$1" 2>/dev/null || echo '{}')" "$2"; }

# zero_tail FILE: zero the last 64 bytes written (before the preallocated
# all-zero tail); prints what it did.
zero_tail() {
	node -e '
		const fs = require("fs"), f = process.argv[1];
		const b = fs.readFileSync(f);
		let end = b.length;
		while (end > 0 && b[end - 1] === 0) end--;
		if (end === 0) { console.log("empty"); process.exit(1); }
		const from = Math.max(8, end - 64); // keep the format version word
		const fd = fs.openSync(f, "r+");
		fs.writeSync(fd, Buffer.alloc(end - from), 0, end - from, from);
		fs.closeSync(fd);
		console.log(`zeroed bytes ${from}..${end} of ${end} written`);' "$1"
}

# flip_middle FILE
flip_middle() {
	local size off byte
	size=$(stat -c %s "$1")
	off=$((size / 2))
	byte=$(od -An -tu1 -j "$off" -N1 "$1" | tr -d ' ')
	printf "\\$(printf %03o $(((byte ^ 1) & 255)))" | dd of="$1" bs=1 seek="$off" conv=notrunc status=none
	echo "flipped byte $off of $size"
}

# start_or_refuse F: starts F (in this shell, never in $(...): the agent
# dies with the shell that spawned it); RES="started" if it is still up 5 s
# later, "refused (exit N): LINE" if it exited, LINE its last error line.
start_or_refuse() {
	local f=$1
	host_start "$f"
	if ! agent_wait_exit "$f" 5; then
		RES=started
		return 0
	fi
	RES="refused (exit $AGENT_RC): $(grep -h '^canopy-agent: ' "$dir/agent$f.log" | tail -n 1)"
}

# replace F: the docs' remedy for a node that refuses to start.
replace() {
	local f=$1 out
	wait_for 30 host_leader || { chaos_bad "replace $f: no ready leader"; return 1; }
	out=$(ctl cluster remove "$f" 2>&1) || { chaos_bad "replace $f: cluster remove: $out"; return 1; }
	_gone() { [ "$(status_of "$(host_leader)" "j.members.some(m => m.id === $f)")" = false ]; }
	wait_for 15 _gone || chaos_bad "replace $f: still a member after cluster remove"
	mv "$dir/data$f" "$dir/data$f.damaged.$round"
	grep -q '^  bootstrap: false' "$dir/agent$f.yaml" || sed -i '/^cluster:/a\  bootstrap: false' "$dir/agent$f.yaml"
	host_start "$f"
	out=$(ctl cluster add "$f@${AGENT_RAFT[$f]}" 2>&1) || { chaos_bad "replace $f: cluster add: $out"; return 1; }
	_voter() { [ "$(status_of "$(host_leader)" "j.members.some(m => m.id === $f && m.role === 'voter')")" = true ]; }
	wait_for 60 _voter || { chaos_bad "replace $f: not a voter 60 s after cluster add"; return 1; }
	say "round $round: agent $f replaced (removed, data dir moved aside, added again): voter"
}

caught_up() {
	local f=$1 l c
	l=$(host_leader) || return 1
	c=$(status_of "$l" 'j.commit_index')
	[ "$(status_of "$f" 'j.applied_index')" -ge "$c" ]
}

round=0
damage_round() { # torn|flipped
	local kind=$1 L F seg what
	round=$((round + 1))
	wait_for 30 host_leader || { chaos_bad "round $round: no ready leader"; return 1; }
	L=$(host_leader)
	F=$((L % 3 + 1))
	host_kill "$F"
	chaos_down "$F"
	case $kind in
	torn)
		seg=$(ls "$dir/data$F" | grep -E '^open-[0-9]+$' | sort -t- -k2 -n | while read -r s; do
			[ -n "$(tr -d '\0' <"$dir/data$F/$s" | head -c 1)" ] && echo "$s"; done | tail -n 1)
		[ -n "$seg" ] || { chaos_bad "round $round: agent $F has no open segment with data: $(ls "$dir/data$F")"; return 1; }
		what=$(zero_tail "$dir/data$F/$seg") ;;
	flipped)
		seg=$(ls "$dir/data$F" | grep -E '^[0-9]{16}-[0-9]{16}$' | sort | tail -n 1)
		if [ -z "$seg" ]; then
			# no closed segment yet: a restart closes the open ones
			host_start "$F"; sleep 2; host_kill "$F"
			seg=$(ls "$dir/data$F" | grep -E '^[0-9]{16}-[0-9]{16}$' | sort | tail -n 1)
		fi
		[ -n "$seg" ] || { chaos_bad "round $round: agent $F has no closed segment: $(ls "$dir/data$F")"; return 1; }
		what=$(flip_middle "$dir/data$F/$seg") ;;
	esac
	sleep 1 # changes go on without F
	start_or_refuse "$F"
	say "round $round ($kind): agent $F killed, $seg: $what; restart: $RES"
	case $kind:$RES in
	torn:started) ;;
	*:refused*"$seg is damaged"* | torn:refused*"commit index"* | torn:refused*"damaged"*) replace "$F" || return 1 ;;
	flipped:started)
		chaos_bad "round $round: agent $F started on a closed segment with a flipped byte ($seg)"
		return 1 ;;
	*) chaos_bad "round $round: agent $F: unexpected restart outcome: $RES"; replace "$F" || return 1 ;;
	esac
	chaos_up "$F"
	wait_for 30 caught_up "$F" || chaos_bad "round $round: agent $F did not catch up: applied $(status_of "$F" 'j.applied_index')"
	say "round $round: agent $F applied $(status_of "$F" 'j.applied_index'), leader $(host_leader || echo none)"
}

if [ "$CHAOS_LONG" = 1 ]; then
	while [ "$(chaos_elapsed_s)" -lt "$CHAOS_DURATION" ]; do damage_round torn || break; sleep 2; damage_round flipped || break; sleep 2; done
else
	damage_round torn && sleep 2 && damage_round flipped
fi
chaos_verdict
