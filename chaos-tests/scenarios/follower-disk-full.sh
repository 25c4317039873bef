#!/usr/bin/env bash
# chaos-tests/scenarios/follower-disk-full.sh [--long [SECS]] -- a node's data
# dir fills up while the change stream goes on, then space comes back.
#
# Every agent's data dir is its own 64 MiB tmpfs. A filler file takes all but
# ~1 MiB of it, less than libraft's 8 MiB segment preallocation, so the next
# segment cannot be created (docs/operations.md, "Full disk"):
#   follower   a follower's disk is full for HOLD s: the leader (and the
#              majority) go on exporting; the follower says storage_full
#   leader     the leader's disk is full for HOLD s: its appends stall; the
#              cluster must go on (a hand-over or an election) or at least lose
#              nothing
# then the filler is removed and every node must report storage ok and catch
# up. HOLD: 15 s short, 60 s long; long mode repeats until SECS are over.
source "$(dirname "$0")/../lib/scenario.sh"
scenario_init follower-disk-full "$@"

T=${CHAOS_T:-1000}
export ELECTION_TIMEOUT_MS=$T HEARTBEAT_MS=$((T / 10))
# Small segments fill the disk sooner; snapshots keep the log short.
export SNAPSHOT_THRESHOLD=${SNAPSHOT_THRESHOLD:-256} SNAPSHOT_TRAILING=${SNAPSHOT_TRAILING:-64}
HOLD=$([ "$CHAOS_LONG" = 1 ] && echo 60 || echo 15)
dir=$(fixture_tmpdir)
for i in 1 2 3; do
	mkdir -p "$dir/data$i"
	mount -t tmpfs -o size=64m tmpfs "$dir/data$i" || fail "cannot mount a tmpfs on $dir/data$i"
	# lazy: an agent that still holds a file open must not keep the mount
	at_exit "umount -l '$dir/data$i'"
done
chaos_cluster 3
chaos_workload_start "${CHAOS_RATE:-20}"
sleep 2

storage_state() { json_eval "$(agent_status "$1" 2>/dev/null || echo '{}')" 'j.storage ? j.storage.state : "?"'; }
fill() { # ID: leave ~1 MiB
	local free
	free=$(df --output=avail -B1 "$dir/data$1" | tail -n1)
	fallocate -l $((free - 1048576)) "$dir/data$1/filler" 2>/dev/null ||
		dd if=/dev/zero of="$dir/data$1/filler" bs=1M count=$((free / 1048576 - 1)) 2>/dev/null
}

full_round() { # follower|leader
	local kind=$1 L X i st writes0 writes1 t0
	wait_for 30 host_leader || { chaos_bad "no ready leader before the $kind's disk fills"; return 1; }
	L=$(host_leader)
	if [ "$kind" = leader ]; then X=$L; else for i in 1 2 3; do [ "$i" != "$L" ] && { X=$i; break; }; done; fi
	t0=$(host_term "$L")
	fill "$X"
	say "disk of $kind $X full ($(df -h --output=avail "$dir/data$X" | tail -n1 | tr -d ' ') free)"
	writes0=$(json_eval "$(node "$CHAOS_DIR/lib/audit.js" summary "$SCIM_AUDIT")" 'j.writes')
	sleep "$HOLD"
	writes1=$(json_eval "$(node "$CHAOS_DIR/lib/audit.js" summary "$SCIM_AUDIT")" 'j.writes')
	st=$(storage_state "$X")
	say "$kind $X after ${HOLD}s full: storage $st, leader $(host_leader || echo none) (term $t0 -> $(host_term "$(host_leader || echo "$L")")), target writes $writes0 -> $writes1"
	[ "$writes1" -gt "$writes0" ] || chaos_bad "nothing was exported during the $HOLD s the $kind's disk was full"
	[ "$kind" = follower ] && [ "$st" != storage_full ] && chaos_note "the full follower $X reports storage '$st', not storage_full"
	rm -f "$dir/data$X/filler"
	_ok() { [ "$(storage_state "$X")" = ok ]; }
	wait_for 20 _ok || chaos_bad "$kind $X: storage not ok 20 s after space came back ($(storage_state "$X"))"
	wait_for 20 host_leader || chaos_bad "no ready leader 20 s after space came back"
}

if [ "$CHAOS_LONG" = 1 ]; then
	while [ "$(chaos_elapsed_s)" -lt "$CHAOS_DURATION" ]; do full_round follower; full_round leader; done
else
	full_round follower
	full_round leader
fi
chaos_verdict
