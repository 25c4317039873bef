#!/usr/bin/env bash
# chaos-tests/scenarios/follower-disk-full.sh [--long [SECS]] -- a follower's
# data dir fills up under a change stream (docs/operations.md "Full disk").
#
# Every agent's data dir is a tmpfs of 64 MiB (CHAOS_DISK_MB); snapshots are
# taken often (every 64 entries) so the full disk also meets a snapshot. Per
# round:
#   1. a follower F's tmpfs is filled to the last byte: F must say
#      storage_full in /v1/status; the other two are a majority, so the
#      leader must go on exporting (new writes in the SCIM audit);
#   2. with F still full, the leader is SIGKILLed: the one healthy survivor
#      needs F to store entries to commit anything, so the cluster may stall
#      here -- waiting, not losing: nothing may be written wrongly meanwhile;
#   3. F's space is given back and the killed agent restarted: F must say ok
#      again, a ready leader must follow, and F must catch up (its applied
#      index reaches the leader's commit index).
# The verdict (chaos-tests/check.sh) then wants nothing lost, duplicated or
# stale, the cursor never back, and equal digests on all three.
#
# Short mode: one round. Long mode: rounds until SECS are over. Env: CHAOS_T
# (election_timeout_ms, default 1000), CHAOS_RATE (default 20), CHAOS_DISK_MB.
# Needs root (mount).
source "$(dirname "$0")/../lib/scenario.sh"
scenario_init follower-disk-full "$@"

T=${CHAOS_T:-1000}
export ELECTION_TIMEOUT_MS=$T HEARTBEAT_MS=$((T / 10))
export SNAPSHOT_THRESHOLD=${SNAPSHOT_THRESHOLD:-64} SNAPSHOT_TRAILING=${SNAPSHOT_TRAILING:-32}
dir=$(fixture_tmpdir)
for i in 1 2 3; do
	mkdir -p "$dir/data$i"
	mount -t tmpfs -o size="${CHAOS_DISK_MB:-64}m" tmpfs "$dir/data$i" || fail "cannot mount a tmpfs on $dir/data$i (needs root)"
	at_exit "umount -l '$dir/data$i'"
done
chaos_cluster 3
chaos_workload_start "${CHAOS_RATE:-20}"
sleep 2

storage_of() { json_eval "$(agent_status "$1" 2>/dev/null || echo '{}')" 'j.storage ? j.storage.state : "?"'; }
writes() { node -e 'const fs=require("fs");console.log(fs.readFileSync(process.argv[1],"utf8").split("\n").filter(l=>l.includes("\"status\":20")).length)' "$SCIM_AUDIT"; }

round=0
full_round() {
	local L F O rest=() i w0 w1 st
	round=$((round + 1))
	wait_for 30 host_leader || { chaos_bad "round $round: no ready leader before filling a disk"; return 1; }
	L=$(host_leader)
	for i in 1 2 3; do [ "$i" != "$L" ] && rest+=("$i"); done
	F=${rest[0]} O=${rest[1]}

	# 1. F's disk full
	dd if=/dev/zero of="$dir/data$F/filler" bs=1M status=none 2>/dev/null
	say "round $round: filled agent $F's data dir ($(df -h --output=avail "$dir/data$F" | tail -1 | tr -d ' ') left); leader $L"
	_full() { [ "$(storage_of "$F")" = storage_full ]; }
	wait_for 15 _full || chaos_bad "round $round: agent $F's data dir is full but its storage state is $(storage_of "$F")"
	w0=$(writes)
	sleep 4
	w1=$(writes)
	say "round $round: with $F full: $((w1 - w0)) writes to the target in 4 s, leader $(host_leader || echo none)"
	[ "$w1" -gt "$w0" ] || chaos_bad "round $round: nothing exported for 4 s while only follower $F's disk was full"

	# 2. the leader killed while F cannot store
	host_kill "$L"
	chaos_down "$L"
	sleep 4
	say "round $round: killed leader $L with $F full; leader now: $(host_leader "$F" "$O" || echo none)"

	# 3. space back, the killed agent back
	rm -f "$dir/data$F/filler"
	host_start "$L"
	chaos_up "$L"
	_ok() { [ "$(storage_of "$F")" = ok ]; }
	wait_for 15 _ok || chaos_bad "round $round: agent $F's storage is $(storage_of "$F") 15 s after space came back"
	wait_for 30 host_leader || chaos_bad "round $round: no ready leader 30 s after space came back"
	_caught_up() {
		local l c a
		l=$(host_leader) || return 1
		c=$(json_eval "$(agent_status "$l")" 'j.commit_index')
		a=$(json_eval "$(agent_status "$F")" 'j.applied_index')
		[ "$a" -ge "$c" ]
	}
	wait_for 30 _caught_up || chaos_bad "round $round: agent $F did not catch up: $(agent_status "$F" | head -c 300)"
	st=$(agent_status "$F" 2>/dev/null)
	say "round $round: agent $F storage $(storage_of "$F"), applied $(json_eval "$st" 'j.applied_index'), leader $(host_leader || echo none)"
}

if [ "$CHAOS_LONG" = 1 ]; then
	while [ "$(chaos_elapsed_s)" -lt "$CHAOS_DURATION" ]; do full_round || break; sleep 2; done
else
	full_round
fi
chaos_verdict
