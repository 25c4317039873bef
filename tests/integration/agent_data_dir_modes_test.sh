#!/usr/bin/env bash
# The data dir is the agent's alone: under a umask of 022, a syncing agent
# leaves its data dir 0700 and every file in it (Raft log, snapshots,
# metadata, cluster id, provisioning.log) without group or other access --
# also when the data dir and the provisioning log were there before with
# 0755 / 0644 (made by hand, restored from a copy).
source "$(dirname "$0")/../fixtures/sync.sh"
dir=$(fixture_tmpdir)
umask 022

sync_setup 20 4
agent_ports 1
sync_agent_config 1 "[\"1@${AGENT_RAFT[1]}\"]"
mkdir -m 755 "$dir/data1"
install -m 644 /dev/null "$dir/data1/provisioning.log"
agent_start 1
wait_until 30 sync_compare || fail "target differs from the directory: $(tail -5 "$dir/agent1.log.tmp")"
# the marker that the log was written: an entry for a user created
wait_until 10 grep -q 'create' "$dir/data1/provisioning.log" || fail "no create in the provisioning log"

mode() { stat -c %a "$1"; }
[ "$(mode "$dir/data1")" = 700 ] || fail "data dir is $(mode "$dir/data1"), want 700"
[ "$(mode "$dir/data1/provisioning.log")" = 600 ] ||
	fail "provisioning.log is $(mode "$dir/data1/provisioning.log"), want 600"
open=$(find "$dir/data1" -perm /077 -printf '%m %p\n')
[ -z "$open" ] || fail "group or others may access: $open"
n=$(find "$dir/data1" | wc -l)
agent_stop 1 TERM
pass "data dir 700, provisioning.log 600, none of its $n entries open to group or others"
