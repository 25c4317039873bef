#!/usr/bin/env bash
# The chaos suite's tools on loopback (no namespaces): chaos-tests/workload.sh,
# cursor-watch.sh and check.sh.
#
# 1. The same seed gives the same op stream (two dry runs, byte for byte); a
#    different seed another one.
# 2. slapd + SCIM + 3 agents; ~200 seeded ops (adds, modifies, renames, moves
#    in and out of scope, deletes, groups, memberships) with a SIGKILL of the
#    leader in the middle (restarted afterwards); cursor-watch polls all three
#    throughout. check.sh -> PASS.
# 3. check.sh FAILs on each planted fault, naming it and only it:
#    lost (a user deleted from the target behind canopy's back), dup (a second
#    create of an existing externalId in a copy of the audit: the fixture
#    itself answers a second POST with 409), stale (an old term's write after
#    the new term's, never redone), cursor_back (a cursor log whose cursor goes
#    back at a later index), digest (a fabricated status answer); stale also
#    for one term written by two nodes. And an old
#    term's write in flight at the change and redone by the new term is
#    excused (PASS).
source "$(dirname "$0")/../fixtures/sync.sh"
dir=$(fixture_tmpdir)
CHAOS=$CANOPY_SOURCE_DIR/chaos-tests
SEED=4242

# 1. reproducible stream
wl_dry() {
	rm -f "$2" # the workload appends to its log
	"$CHAOS/workload.sh" --seed "$1" --users-base "ou=people,dc=example,dc=com" --groups-base "ou=groups,dc=example,dc=com" \
		--ops 200 --log "$2" --dry-run 2>/dev/null
}
wl_dry $SEED "$dir/dry1.jsonl" && wl_dry $SEED "$dir/dry2.jsonl" && wl_dry $((SEED + 1)) "$dir/dry3.jsonl" || fail "workload --dry-run failed"
[ "$(wc -l <"$dir/dry1.jsonl")" = 200 ] || fail "dry run logged $(wc -l <"$dir/dry1.jsonl") ops, not 200"
cmp -s "$dir/dry1.jsonl" "$dir/dry2.jsonl" || fail "seed $SEED gave two different op streams: $(diff "$dir/dry1.jsonl" "$dir/dry2.jsonl" | head -5)"
cmp -s "$dir/dry1.jsonl" "$dir/dry3.jsonl" && fail "seeds $SEED and $((SEED + 1)) gave the same op stream"
kinds=$(node -e 'const k=new Set(require("fs").readFileSync(process.argv[1],"utf8").trim().split("\n").map(l=>JSON.parse(l).op));console.log([...k].sort().join(" "))' "$dir/dry1.jsonl")
for k in user_add user_modify user_rename user_move user_delete group_add group_delete member_add member_remove; do
	[[ " $kinds " == *" $k "* ]] || fail "200 ops of seed $SEED have no $k (kinds: $kinds)"
done
pass "same seed, same 200 ops; another seed, other ops; every kind of op drawn ($kinds)"

# 2. a run with a leader SIGKILL in the middle
sync_setup 20 3
sync_start_cluster 3
users_are() { [ "$(scim_count Users)" = "$1" ]; }
wait_until 60 users_are 20 || fail "initial sync: $(scim_count Users) users"
wait_until 30 idle_leader 1 2 3 || fail "no idle leader after the initial sync"

spawn cursorwatch "$dir/cursor-watch.log" "$CHAOS/cursor-watch.sh" --out "$dir/cursor.jsonl" \
	"${AGENT_CTL[1]}" "${AGENT_CTL[2]}" "http://${AGENT_CTL[3]}/v1/status"
WATCH_PID=$SPAWNED_PID
spawn workload "$dir/workload.out" "$CHAOS/workload.sh" --seed $SEED --ldap-url "$SLAPD_URL" --bind-dn "$SLAPD_ADMIN_DN" \
	--password-file "$SLAPD_PW_FILE" --users-base "ou=people,$SLAPD_BASE" --groups-base "ou=groups,$SLAPD_BASE" \
	--ops 200 --rate 40 --log "$dir/ops.jsonl"
WL_PID=$SPAWNED_PID
ops_logged() { [ "$(wc -l <"$dir/ops.jsonl" 2>/dev/null || echo 0)" -ge "$1" ]; }
wait_until 30 ops_logged 90 || fail "the workload did not get to op 90"
L=$(ready_leader 1 2 3) || fail "no leader in the middle of the workload"
LT=$(json_eval "$(agent_status "$L")" 'j.term')
agent_stop "$L" KILL
rest=(); for i in 1 2 3; do [ "$i" != "$L" ] && rest+=("$i"); done
newterm() { local n; n=$(ready_leader "${rest[@]}") && [ "$(json_eval "$(agent_status "$n")" 'j.term')" -gt "$LT" ]; }
wait_until 20 newterm || fail "no new leader after SIGKILL of $L"
echo "killed leader $L (term $LT) at op $(wc -l <"$dir/ops.jsonl"); new leader $(ready_leader "${rest[@]}")"
agent_start "$L"
wait "$WL_PID" || fail "workload exited $?"
rejoined() { [ "$(json_eval "$(agent_status "$L")" 'j.role')" = follower ]; }
wait_until 30 rejoined || fail "restarted agent $L did not rejoin"
applied=$(node -e 'console.log(require("fs").readFileSync(process.argv[1],"utf8").trim().split("\n").map(JSON.parse).filter(r=>r.ok).length)' "$dir/ops.jsonl")
[ "$applied" -ge 190 ] || fail "only $applied of 200 workload ops applied: $(grep -m3 '"ok":false' "$dir/ops.jsonl")"

# check: prints its output, leaves the last line in $LAST and the rc in $RC
check() {
	local name=$1; shift
	RC=0
	"$CHAOS/check.sh" --ldap-url "$SLAPD_URL" --bind-dn "$SLAPD_ADMIN_DN" --password-file "$SLAPD_PW_FILE" \
		--config "$dir/agent1.yaml" --log "$dir/ops.jsonl" --settle 60 "$@" >"$dir/check-$name.out" 2>&1 || RC=$?
	LAST=$(tail -n 1 "$dir/check-$name.out")
	sed "s/^/  [$name] /" "$dir/check-$name.out"
}
STATUS=(--status "${AGENT_CTL[1]}" "${AGENT_CTL[2]}" "${AGENT_CTL[3]}")
REAL=(--scim "$SCIM_URL" --audit-url "$SCIM_TEST_URL/audit" --cursor-log "$dir/cursor.jsonl")

check run "${REAL[@]}" "${STATUS[@]}"
kill -TERM "$WATCH_PID"
[ "$RC" = 0 ] && [[ $LAST == "chaos: PASS lost=0 dup=0 stale=0 cursor_back=0 digest=equal objects="* ]] ||
	fail "the checker did not pass a clean run (rc $RC): $LAST"
[[ $LAST == *" ops=$applied" ]] || fail "ops= is not the $applied applied ops: $LAST"
lines=$(wc -l <"$dir/cursor.jsonl")
idx=$(node -e 'console.log(new Set(require("fs").readFileSync(process.argv[1],"utf8").trim().split("\n").map(JSON.parse).filter(x=>!x.error).map(x=>x.applied_index)).size)' "$dir/cursor.jsonl")
[ "$idx" -ge 50 ] || fail "the cursor log saw only $idx distinct applied indexes in $lines answers"
pass "200 ops with a leader SIGKILL: $LAST ($lines status answers, $idx applied indexes watched)"

# 3. planted faults. Each copy is taken now, while the cluster is settled.
scim_ctl GET audit >"$dir/audit.json"
cp "$dir/cursor.jsonl" "$dir/cursor-copy.jsonl"
expect_fail() { # NAME FIELD: FAIL, FIELD > 0 (or differ), every other count 0
	local name=$1 field=$2 f v
	[ "$RC" = 1 ] || fail "$name: the checker exited $RC, not 1: $LAST"
	[[ $LAST == "chaos: FAIL "* ]] || fail "$name: not a FAIL line: $LAST"
	for f in lost dup stale cursor_back; do
		v=$(sed -n "s/.* $f=\([0-9]*\).*/\1/p" <<<"$LAST")
		if [ "$f" = "$field" ]; then [ "$v" -gt 0 ] || fail "$name: $f=$v: $LAST"
		else [ "$v" = 0 ] || fail "$name: $f=$v too: $LAST"; fi
	done
	if [ "$field" = digest ]; then [[ $LAST == *" digest=differ "* ]] || fail "$name: $LAST"
	else [[ $LAST == *" digest=equal "* ]] || fail "$name: digest differs too: $LAST"; fi
	pass "$name: $LAST"
}
FILES=(--scim "$SCIM_URL" --cursor-log "$dir/cursor-copy.jsonl")

# dup: a second create of an object that exists, by the current term's leader
node -e '
	const a = JSON.parse(require("fs").readFileSync(process.argv[1], "utf8"));
	const last = a.filter((r) => r.term != null).pop();
	const made = a.find((r) => r.method === "POST" && r.status === 201 && r.resourceType === "User");
	a.push({...made, seq: a.length + 1, time: new Date().toISOString(), term: last.term, node: last.node, id: "planted-dup"});
	console.log(JSON.stringify(a));' "$dir/audit.json" >"$dir/audit-dup.json"
check dup "${FILES[@]}" --audit-url "$dir/audit-dup.json" "${STATUS[@]}"
expect_fail "planted duplicate create" dup

# stale: a write of the first term after the newest term began, never redone
node -e '
	const a = JSON.parse(require("fs").readFileSync(process.argv[1], "utf8"));
	const old = a.find((r) => r.term != null && r.method === "PUT");
	a.push({...old, seq: a.length + 1, time: new Date().toISOString(), status: 200});
	console.log(JSON.stringify(a));' "$dir/audit.json" >"$dir/audit-stale.json"
check stale "${FILES[@]}" --audit-url "$dir/audit-stale.json" "${STATUS[@]}"
expect_fail "planted stale-term write" stale

# stale too: the newest term written by a second node (one leader per term)
node -e '
	const a = JSON.parse(require("fs").readFileSync(process.argv[1], "utf8"));
	const last = a.filter((r) => r.term != null).pop();
	a.push({...last, seq: a.length + 1, time: new Date().toISOString(), node: last.node + "x"});
	console.log(JSON.stringify(a));' "$dir/audit.json" >"$dir/audit-2nodes.json"
check twonodes "${FILES[@]}" --audit-url "$dir/audit-2nodes.json" "${STATUS[@]}"
expect_fail "one term written by two nodes" stale

# excused: an old term's write audited 10 ms after the newest term's first
# write (in flight at the change), then redone by the newest term
node -e '
	const a = JSON.parse(require("fs").readFileSync(process.argv[1], "utf8")); // written as JSON lines
	const w = a.filter((r) => r.term != null);
	const newest = Math.max(...w.map((r) => r.term));
	const first = w.find((r) => r.term === newest);
	const old = w.find((r) => r.term < newest && r.method === "PUT");
	const t = (ms) => new Date(Date.parse(first.time) + ms).toISOString();
	a.push({...old, seq: a.length + 1, time: t(10)});
	a.push({...old, seq: a.length + 2, time: t(20), term: newest, node: first.node});
	console.log(a.map((r) => JSON.stringify(r)).join("\n"));' "$dir/audit.json" >"$dir/audit-inflight.jsonl"
check inflight "${FILES[@]}" --audit-url "$dir/audit-inflight.jsonl" "${STATUS[@]}"
[ "$RC" = 0 ] || fail "an in-flight write redone by the new term was not excused: $LAST"
pass "in flight at the term change and redone: excused ($LAST)"

# cursor_back: the cursor of an early index seen again at a later one
node -e '
	const fs = require("fs");
	const obs = fs.readFileSync(process.argv[1], "utf8").trim().split("\n").map(JSON.parse).filter((x) => !x.error && x.cursor);
	const top = obs.reduce((m, x) => (x.applied_index > m.applied_index ? x : m));
	const early = obs.find((x) => x.cursor !== top.cursor);
	fs.appendFileSync(process.argv[1], JSON.stringify({...top, time: new Date().toISOString(),
		applied_index: top.applied_index + 1, commit_index: top.applied_index + 1, cursor: early.cursor}) + "\n");' \
	"$dir/cursor-copy.jsonl"
check cursor --scim "$SCIM_URL" --audit-url "$dir/audit.json" --cursor-log "$dir/cursor-copy.jsonl" "${STATUS[@]}"
expect_fail "planted cursor regression" cursor_back
cp "$dir/cursor.jsonl" "$dir/cursor-copy.jsonl"

# digest: one agent's answer with another digest (at its own applied index)
F=$(ready_leader 1 2 3)
for i in 1 2 3; do [ "$i" != "$F" ] && { O=$i; break; }; done
agent_status "$O" | node -e '
	let s = ""; process.stdin.on("data", (d) => (s += d)).on("end", () => {
		const j = JSON.parse(s); j.state.digest = "00000000deadbeef"; j.applied_index += 1000000; console.log(JSON.stringify(j)); });' \
	>"$dir/status-fake.json"
FAKE=(--status); for i in 1 2 3; do if [ "$i" = "$O" ]; then FAKE+=("$dir/status-fake.json"); else FAKE+=("${AGENT_CTL[$i]}"); fi; done
check digest "${FILES[@]}" --audit-url "$dir/audit.json" "${FAKE[@]}"
expect_fail "fabricated status with another digest" digest

# lost: a user deleted from the target behind canopy's back (no event in the
# source, so canopy has no reason to write it again)
victim=$(scim_ctl GET store | json_get 'j.Users.find((u) => /^c4242u/.test(u.userName)).id')
[ "$(scim_req DELETE "/Users/$victim")" = 204 ] || fail "could not delete user $victim from the target"
check lost "${REAL[@]}" "${STATUS[@]}"
expect_fail "a change lost in the target" lost
grep -q "lost: missing in target: uid=c4242u" "$dir/check-lost.out" || fail "the lost object is not named"
