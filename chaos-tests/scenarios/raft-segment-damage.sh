#!/usr/bin/env bash
# chaos-tests/scenarios/raft-segment-damage.sh [--long [SECS]] -- a node
# crashes (SIGKILL) and its newest raft segment is damaged before it restarts,
# while the change stream goes on:
#
#   tear       the newest segment zeroed from a random byte to the end of its
#              data, its size kept (what a crash mid-write leaves in a
#              preallocated open segment: libraft and raft/storage.c accept a
#              torn *last* batch; a log now below the commit index recorded in
#              canopy-state is refused)
#   truncate   the newest segment cut short at a random byte (a file system
#              repair); refused
#   flip       one byte flipped inside the newest segment's entries
#
# Either the node starts (and catches up from the leader) or it refuses to
# start with exit code 1 and one "storage:" line naming the file
# (docs/operations.md, "Storage damage"). Anything else is a finding: a crash
# (signal, abort), a hang, or a node that starts and then disagrees with the
# others. A refused node is taken out of the crash check; the remaining two
# keep the cluster and the verdict must hold. A refused node is then repaired
# the first documented way: its data dir restored from the copy taken while it
# was stopped (before the damage), and it must start and follow again.
#
# Short mode: tear, truncate, flip, each on a follower. Long mode: repeated
# until SECS are over.
source "$(dirname "$0")/../lib/scenario.sh"
scenario_init raft-segment-damage "$@"

T=${CHAOS_T:-1000}
export ELECTION_TIMEOUT_MS=$T HEARTBEAT_MS=$((T / 10))
chaos_cluster 3
chaos_workload_start "${CHAOS_RATE:-20}"
sleep 3
dir=$(fixture_tmpdir)

newest_segment() { # DATA_DIR: the newest segment file that holds entries
	local f
	# open segments (open-N) are newest; of those, the last one with data
	f=$(ls -1t "$1" 2>/dev/null | grep -E '^open-[0-9]+$' | while read -r s; do
		[ "$(tr -d '\0' <"$1/$s" | head -c 64 | wc -c)" -gt 8 ] && { echo "$s"; break; }
	done)
	[ -z "$f" ] && f=$(ls -1 "$1" 2>/dev/null | grep -E '^[0-9]{16}-[0-9]{16}$' | sort | tail -n1)
	echo "$f"
}

damage_round() { # truncate|flip
	local kind=$1 L X i seg size used cut rc
	wait_for 30 host_leader || { chaos_bad "no ready leader before the damage"; return 1; }
	L=$(host_leader)
	for i in 1 2 3; do [ "$i" != "$L" ] && [ "${CHAOS_DOWN[$i]:-}" != 1 ] && { X=$i; break; }; done
	[ -n "${X:-}" ] || { chaos_note "no follower left to damage"; return 0; }
	host_kill "$X"
	chaos_down "$X"
	rm -rf "$dir/backup$X"
	cp -a "$dir/data$X" "$dir/backup$X"
	seg=$(newest_segment "$dir/data$X")
	[ -n "$seg" ] || { chaos_bad "no segment in $dir/data$X"; return 1; }
	size=$(stat -c %s "$dir/data$X/$seg")
	# bytes in use: up to the last non-zero byte (open segments are preallocated with zeros)
	used=$(node -e 'const b=require("fs").readFileSync(process.argv[1]);let n=b.length;while(n>0&&b[n-1]===0)n--;console.log(n)' "$dir/data$X/$seg")
	[ "$used" -gt 16 ] || used=$size
	cut=$((8 + RANDOM % (used - 8)))
	case $kind in
	tear) dd if=/dev/zero of="$dir/data$X/$seg" bs=1 seek="$cut" count=$((used - cut)) conv=notrunc 2>/dev/null ;;
	truncate) truncate -s "$cut" "$dir/data$X/$seg" ;;
	flip) printf '\xa5' | dd of="$dir/data$X/$seg" bs=1 seek="$cut" conv=notrunc 2>/dev/null ;;
	esac
	say "$kind: follower $X's $seg ($used of $size bytes used) at byte $cut"
	host_start "$X"
	sleep 5
	if host_running "$X"; then
		chaos_up "$X"
		_caught() { [ "$(json_eval "$(agent_status "$X")" 'j.role')" = follower ]; }
		wait_for 30 _caught || chaos_bad "$kind: damaged follower $X runs but is no follower 35 s later"
		say "$kind: follower $X started again and follows"
	else
		rc=0
		wait "${AGENT_PID[$X]}" 2>/dev/null || rc=$?
		local why
		why=$(agent_logs "$X" | grep -E 'storage' | tail -n1)
		if [ "$rc" = 1 ] && [ -n "$why" ]; then
			say "$kind: follower $X refuses to start, as documented: $why"
			rm -rf "$dir/data$X"
			mv "$dir/backup$X" "$dir/data$X"
			host_start "$X"
			chaos_up "$X"
			_back() { [ "$(json_eval "$(agent_status "$X")" 'j.role')" = follower ]; }
			wait_for 30 _back || chaos_bad "$kind: follower $X, its data dir restored, is no follower 30 s later"
			say "$kind: follower $X restored from its copy and follows"
		else
			chaos_bad "$kind: follower $X exited with $rc after the damage: $(agent_logs "$X" | tail -n 3 | tr '\n' ' ')"
		fi
	fi
}

if [ "$CHAOS_LONG" = 1 ]; then
	while [ "$(chaos_elapsed_s)" -lt "$CHAOS_DURATION" ]; do
		damage_round tear
		damage_round truncate
		damage_round flip
	done
else
	damage_round tear
	damage_round truncate
	damage_round flip
fi
chaos_verdict
