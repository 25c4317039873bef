#!/usr/bin/env bash
# Storage damage is loud and safe (raft/storage.c, docs/operations.md "Storage
# damage"). On a data dir written by a real agent:
#   - one flipped byte in the last closed segment, a deleted last segment,
#     deleted metadata with a snapshot present, a truncated snapshot, a wiped
#     raft state with the canopy-state marker left: the agent refuses to start
#     (non-zero exit, one line naming the file and the remedy), promptly (no
#     raft_start hang), and nothing is moved aside as corrupt-*;
#   - a 2 MB tmpfs data dir: status says storage_full and the log says so;
#   - a data dir that fills up while running: storage_full, then ok again;
#   - the provisioning log on a full disk: errors counted and logged, no torn
#     line, entries resume once space is freed.
# Every tmpfs is unmounted on every exit path (lazy umount at exit).
source "$(dirname "$0")/../fixtures/sync.sh"
dir=$(fixture_tmpdir)

mount_tmpfs() { # DIR SIZE
	mkdir -p "$1"
	mount -t tmpfs -o size="$2" tmpfs "$1" || fail "cannot mount a tmpfs on $1 (needs root)"
	at_exit "umount -l '$1'"
}

status_is() { # ID JS-EXPR
	local st
	st=$(agent_status "$1" 2>/dev/null) || return 1
	[ "$(json_eval "$st" "$2")" = true ]
}

# ---- a real data dir with closed segments, a snapshot and the marker --------
sync_setup 20 0
SNAPSHOT_THRESHOLD=16 SNAPSHOT_TRAILING=8
export SNAPSHOT_THRESHOLD SNAPSHOT_TRAILING
agent_ports 1
sync_agent_config 1 "[\"1@${AGENT_RAFT[1]}\"]"
agent_start 1
wait_role 1 leader 10 || fail "single node did not lead"
users_are() { [ "$(scim_count Users)" = "$1" ]; }
wait_until 30 users_are 20 || fail "initial sync: $(scim_count Users) users"
# An idle leader appends nothing (its lease is renewed by heartbeats), so the
# log grows by changes: modify users one at a time until a few snapshots'
# worth of entries are committed, and stop mid-way between two snapshots
# (taken every 16 entries) so the last segment holds entries no snapshot
# covers.
commit_index() { json_eval "$(agent_status 1)" 'j.commit_index'; }
in_window() { status_is 1 'j.commit_index >= 45 && j.commit_index % 16 >= 5 && j.commit_index % 16 <= 11'; }
n=0
until in_window; do
	n=$((n + 1))
	[ "$n" -le 200 ] || fail "commit index did not reach 45 between two snapshots after 200 changes: $(agent_status 1)"
	before=$(commit_index)
	printf 'dn: uid=user%05d,ou=people,%s\nchangetype: modify\nreplace: sn\nsn: Grow%d\n\n' $((n % 20 + 1)) "$SLAPD_BASE" "$n" |
		slapd_ldapmodify >/dev/null || fail "ldapmodify"
	grew() { [ "$(commit_index)" -gt "$before" ]; }
	wait_until 20 grew || fail "change $n committed nothing: $(agent_status 1)"
	idle1() { status_is 1 'j.sync.state === "idle"'; }
	wait_until 20 idle1 || fail "change $n: not idle: $(agent_status 1)"
done
wait_until 5 status_is 1 'j.storage && j.storage.state === "ok"' || fail "storage not ok: $(agent_status 1)"
agent_stop 1 TERM
[ "$AGENT_RC" = 0 ] || fail "agent exited $AGENT_RC"
data=$dir/data1
ls "$data" | grep -q '^snapshot-.*\.meta$' || fail "no snapshot in $data: $(ls "$data")"
grep -q '^canopy-state 1 commit=' "$data/canopy-state" || fail "no canopy-state marker: $(ls "$data")"
cp -a "$data" "$dir/pristine"
pass "data dir with $(ls "$data" | grep -c -- '-0') closed segments, a snapshot and $(cut -d' ' -f3 "$data/canopy-state")"

restore() { rm -rf "$data"; cp -a "$dir/pristine" "$data"; }

# refuses WHAT PATTERN: the agent must exit non-zero within 15 s (124 = a hang)
# with one line matching PATTERN and the remedy, and leave no corrupt-* file.
refuses() {
	local what=$1 pattern=$2 out rc=0 t0=$SECONDS
	out=$(timeout 15 "$CANOPY_AGENT" --config "$dir/agent1.yaml" 2>&1 >/dev/null) || rc=$?
	[ "$rc" != 124 ] || fail "$what: the agent hung (still running after 15 s): $out"
	[ "$rc" != 0 ] || fail "$what: the agent started and exited 0: $out"
	out=$(grep '^canopy-agent: ' <<<"$out") || fail "$what: no error line: $out"
	[ "$(grep -c . <<<"$out")" = 1 ] || fail "$what: not a one-line error: $out"
	grep -q "$pattern" <<<"$out" || fail "$what: error does not say '$pattern': $out"
	grep -q 'canopyctl cluster remove ID' <<<"$out" || fail "$what: error lacks the remedy: $out"
	! ls "$data" | grep -q '^corrupt-' || fail "$what: a segment was moved aside: $(ls "$data")"
	pass "$what: refused in $((SECONDS - t0)) s: ${out:0:200}..."
}

last_closed() { ls "$data" | grep -E '^[0-9]{16}-[0-9]{16}$' | sort | tail -1; }

# 1. one flipped byte in the middle of the last closed segment
seg=$(last_closed)
size=$(stat -c %s "$data/$seg")
off=$((size / 2))
byte=$(od -An -tu1 -j "$off" -N1 "$data/$seg" | tr -d ' ')
printf "\\$(printf %03o $(((byte ^ 1) & 255)))" | dd of="$data/$seg" bs=1 seek="$off" conv=notrunc status=none
refuses "flipped byte in $seg" "$seg is damaged"

# 2. the last segment deleted
restore
seg=$(last_closed)
rm "$data/$seg"
refuses "deleted $seg" "are missing"

# 3. metadata deleted, snapshot present
restore
rm -f "$data/metadata1" "$data/metadata2"
refuses "deleted metadata" "metadata1 and metadata2 are missing"

# 4. the newest snapshot truncated (libraft would spin in its LZ4 loop)
restore
snap=$(ls "$data" | grep -E '^snapshot-[0-9]+-[0-9]+-[0-9]+$' | sort -t- -k3,3n | tail -1)
truncate -s -9 "$data/$snap"
refuses "truncated $snap" "$snap is damaged (truncated"

# 5. raft state wiped, the marker left behind
restore
find "$data" -mindepth 1 ! -name canopy-state -delete
refuses "wiped raft state" "no raft files"

# The intact copy still starts, at the same commit index or later.
restore
want=$(sed -E 's/.* commit=([0-9]+) .*/\1/' "$data/canopy-state")
agent_start 1
wait_role 1 leader 10 || fail "intact data dir did not start"
wait_until 10 status_is 1 "j.commit_index >= $want && j.storage.state === 'ok'" || fail "restart lost state: $(agent_status 1)"
agent_stop 1 TERM
pass "intact data dir restarts at commit >= $want"
unset SNAPSHOT_THRESHOLD SNAPSHOT_TRAILING

# ---- a 2 MB tmpfs: libraft cannot preallocate a segment ---------------------
agent_ports 2
agent_config 2 "[\"2@${AGENT_RAFT[2]}\"]"
mount_tmpfs "$dir/data2" 2m
agent_start 2
wait_until 15 status_is 2 'j.storage.state === "storage_full"' || fail "2 MB data dir: not storage_full: $(agent_status 2)"
st=$(agent_status 2)
[ "$(json_eval "$st" 'j.role === "leader" && j.leader_ready === false')" = true ] || fail "2 MB: expected a leader that is not ready: $st"
wait_until 5 grep -q 'msg="storage cannot be written" state=storage_full' "$dir/agent2.log.tmp" || fail "2 MB: nothing in the log"
pass "2 MB tmpfs: status storage_full ($(json_eval "$st" 'j.storage.detail')) and logged"
agent_stop 2 TERM

# ---- a data dir that fills up while running, then gets space back -----------
agent_ports 3
agent_config 3 "[\"3@${AGENT_RAFT[3]}\"]"
mount_tmpfs "$dir/data3" 48m
agent_start 3
wait_role 3 leader 10 || fail "48 MB node did not lead"
wait_until 5 status_is 3 'j.storage.state === "ok"' || fail "48 MB: storage not ok: $(agent_status 3)"
dd if=/dev/zero of="$dir/data3/filler" bs=1M status=none 2>/dev/null || true
wait_until 10 status_is 3 'j.storage.state === "storage_full"' || fail "filled: not storage_full: $(agent_status 3)"
wait_until 5 grep -q 'msg="storage cannot be written" state=storage_full' "$dir/agent3.log.tmp" || fail "filled: nothing in the log"
rm "$dir/data3/filler"
wait_until 10 status_is 3 'j.storage.state === "ok"' || fail "space freed: storage not ok again: $(agent_status 3)"
wait_until 5 grep -q 'msg="storage ok again"' "$dir/agent3.log.tmp" || fail "space freed: not logged"
[ "$(grep -c 'msg="storage cannot be written"' "$dir/agent3.log.tmp")" = 1 ] || fail "storage error logged more than once"
pass "full data dir: storage_full in status and log once, ok again after space was freed"
agent_stop 3 TERM

# ---- the provisioning log on a full disk ----------------------------------
scim_ctl POST reset >/dev/null || fail "SCIM fixture reset" # a new cluster, an empty target
agent_ports 4
sync_agent_config 4 "[\"4@${AGENT_RAFT[4]}\"]"
mount_tmpfs "$dir/data4" 48m
agent_start 4
wait_until 30 users_are 20 || fail "initial sync"
idle() { status_is 4 'j.sync.state === "idle"'; }
wait_until 20 idle || fail "not idle"
plog=$dir/data4/provisioning.log
[ -s "$plog" ] || fail "no provisioning log"
# Fill the file system; the provisioning log's last page still takes a few
# lines, then a line is cut short, then nothing fits. libraft's open segments
# are preallocated, so raft keeps committing.
dd if=/dev/zero of="$dir/data4/filler" bs=4k status=none 2>/dev/null || true
for i in $(seq 1 20); do
	printf 'dn: uid=user%05d,ou=people,%s\nchangetype: modify\nreplace: sn\nsn: Full%d\n\n' "$i" "$SLAPD_BASE" "$i"
done | slapd_ldapmodify >/dev/null || fail "ldapmodify"
wait_until 30 sync_compare || sync_compare || fail "target differs from source while the disk is full"
wait_until 10 status_is 4 'j.storage.provisioning_log.write_errors > 0 && j.storage.provisioning_log.failing === true' ||
	fail "provisioning log errors not counted: $(agent_status 4)"
errors=$(json_eval "$(agent_status 4)" 'j.storage.provisioning_log.write_errors')
wait_until 5 grep -q 'msg="provisioning log cannot be written" state=storage_full' "$dir/agent4.log.tmp" || fail "provisioning log errors not logged"
[ "$(grep -c 'msg="provisioning log cannot be written"' "$dir/agent4.log.tmp")" = 1 ] || fail "provisioning log error logged more than once"
node -e 'const l=require("fs").readFileSync(process.argv[1],"utf8").split("\n");l.pop();
for(const [i,s] of l.entries()){try{JSON.parse(s)}catch(e){console.error("torn line "+(i+1)+": "+s.slice(0,80));process.exit(1)}}' "$plog" ||
	fail "torn line in the provisioning log"
pass "full disk: $errors provisioning log entries counted as lost, logged once, no torn line"

rm "$dir/data4/filler"
printf 'dn: uid=user00001,ou=people,%s\nchangetype: modify\nreplace: sn\nsn: Resumed\n\n' "$SLAPD_BASE" |
	slapd_ldapmodify >/dev/null || fail "ldapmodify"
resumed() { tail -n 5 "$plog" | grep -q '"dn":"uid=user00001,ou=people'; }
wait_until 30 resumed || fail "provisioning log did not resume after space was freed: $(tail -n 2 "$plog")"
wait_until 5 grep -q 'msg="provisioning log written again"' "$dir/agent4.log.tmp" || fail "recovery not logged"
wait_until 5 status_is 4 'j.storage.provisioning_log.failing === false && j.storage.provisioning_log.reopens >= 1' ||
	fail "status still failing: $(agent_status 4)"
pass "provisioning log reopened and written again once space returned"
