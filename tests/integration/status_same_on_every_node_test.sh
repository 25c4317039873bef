#!/usr/bin/env bash
# Every node reports the same cluster-wide sync figures: they come from the
# replicated state ("s:sync", written by the leader into each batch's commit),
# not from each node's own engine -- a follower used to say exported_total 0
# and last_export_at null. 3 agents; a change every ~100 ms for ~10 s while
# the status of all three is read over and over: whenever two nodes answer at
# the same applied_index, their replicated figures are identical. After the
# stream, all three reach the same applied index and agree, the followers
# show what was exported (non-zero, a last export time, a readable cursor),
# and the export rate and cursor age are there.
source "$(dirname "$0")/../fixtures/sync.sh"
dir=$(fixture_tmpdir)

sync_setup 20 2
sync_start_cluster 3
wait_until 30 idle_leader 1 2 3 || fail "no idle leader"
L=$(idle_leader 1 2 3)
F=(); for i in 1 2 3; do [ "$i" != "$L" ] && F+=("$i"); done

# The replicated figures.
FIELDS='["exported_total","exported_objects","errors_total","last_export_at","last_export_at_ms","cursor","cursor_readable","cursor_updated_at","pending_deletes","retrying","failed","batches_total","skipped_total","export_lag_ms"]'
# The stream: one change every ~100 ms for ~10 s, in the background.
(
	for ((n = 0; n < 100; n++)); do
		u=$(printf 'user%05d' $((n % 20 + 1)))
		slapd_ldapmodify >/dev/null 2>&1 <<LDIF
dn: uid=$u,ou=people,$SLAPD_BASE
changetype: modify
replace: sn
sn: Stream$n
LDIF
		sleep 0.1
	done
	touch "$dir/stream.done"
) &
stream=$!
at_exit "kill $stream 2>/dev/null"

# While it runs: the status of all three, read together, over and over.
# Afterwards every two answers given at the same applied index -- same node
# or not, same round or not -- must carry the same figures.
mkdir -p "$dir/snaps"
rounds=0
while [ ! -e "$dir/stream.done" ]; do
	pids=()
	for i in 1 2 3; do
		curl -sf --max-time 2 "http://${AGENT_CTL[$i]}/v1/status" >"$dir/snaps/$rounds.$i.json" &
		pids+=($!)
	done
	wait "${pids[@]}" 2>/dev/null || true
	rounds=$((rounds + 1))
	((rounds < 5000)) || fail "the change stream did not end"
done
wait "$stream" 2>/dev/null || true
verdict=$(node -e '
const fs = require("fs"), d = process.argv[1], F = JSON.parse(process.argv[2]);
const by = {}; let pairs = 0, nodes = 0, bad = null;
for (const f of fs.readdirSync(d)) {
  let j; try { j = JSON.parse(fs.readFileSync(d + "/" + f, "utf8")); } catch (e) { continue; }
  const fig = JSON.stringify(F.map(k => j.sync[k])), at = j.applied_index;
  (by[at] = by[at] || []).push({node: j.node_id, fig});
}
for (const [at, l] of Object.entries(by)) {
  if (new Set(l.map(x => x.node)).size > 1) nodes++;
  for (const x of l) for (const y of l) if (x !== y) { pairs++; if (x.fig !== y.fig && !bad) bad = "applied index " + at + ": node " + x.node + " says " + x.fig + ", node " + y.node + " says " + y.fig; }
}
console.log(bad ? "BAD " + bad : pairs + " " + nodes + " " + Object.keys(by).length);
' "$dir/snaps" "$FIELDS")
case $verdict in BAD*) fail "${verdict#BAD }" ;; esac
read -r pairs cross indexes <<<"$verdict"
[ "$cross" -ge 3 ] || fail "only $cross applied indexes were read on more than one node ($rounds rounds, $indexes indexes)"
pass "$rounds rounds during the stream: $indexes applied indexes, $cross of them read on two or three nodes, $pairs pairs of answers at the same index: same figures"

# After the stream: the leader is idle, every node applied the same index,
# and every node says the same.
last() { [ "$(json_eval "$(agent_status "$L")" "j.sync.state")" = idle ] && json_eval "$(scim_ctl GET store)" 'j.Users.some(u => u.name && u.name.familyName === "Stream99")' | grep -q true; }
wait_until 30 last || fail "the last change was not exported: $(agent_status "$L")"
# The followers may still be applying the last entries (and an idle leader
# that missed a lease renewal appends a barrier), so the three are read
# together until they answer at the same applied index.
read_all() {
	local i pids=()
	for i in 1 2 3; do
		curl -sf --max-time 2 "http://${AGENT_CTL[$i]}/v1/status" >"$dir/final.$i.json" &
		pids+=($!)
	done
	wait "${pids[@]}" || return 1
	node -e '
const fs = require("fs"), d = process.argv[1], F = JSON.parse(process.argv[2]);
const s = [1, 2, 3].map(i => JSON.parse(fs.readFileSync(d + "/final." + i + ".json", "utf8")));
if (s[0].applied_index !== s[1].applied_index || s[1].applied_index !== s[2].applied_index) process.exit(1);
for (const j of s) fs.writeFileSync(d + "/final." + j.node_id, j.applied_index + " " + JSON.stringify(F.map(k => j.sync[k])) + "\n");
' "$dir" "$FIELDS"
}
wait_secs 20 read_all || fail "the nodes were never read at the same applied index"
cmp -s "$dir/final.1" "$dir/final.2" && cmp -s "$dir/final.2" "$dir/final.3" ||
	fail "after the stream the figures differ: $(cat "$dir/final.1") / $(cat "$dir/final.2") / $(cat "$dir/final.3")"
pass "after the stream, at applied index $(cut -d' ' -f1 "$dir/final.1"), all three nodes say the same"

for i in "${F[@]}"; do
	st=$(agent_status "$i")
	[ "$(json_eval "$st" 'j.role')" = follower ] || fail "node $i is not a follower any more: $st"
	[ "$(json_eval "$st" 'j.sync.exported_total >= 100 && j.sync.exported_objects >= 100 && j.sync.exported_objects <= j.sync.exported_total')" = true ] ||
		fail "follower $i: exported_total/exported_objects: $(json_eval "$st" 'JSON.stringify(j.sync)')"
	[ "$(json_eval "$st" 'typeof j.sync.last_export_at === "string" && j.sync.last_export_at_ms > 0')" = true ] ||
		fail "follower $i: no last export: $(json_eval "$st" 'JSON.stringify(j.sync)')"
	[ "$(json_eval "$st" 'typeof j.sync.export_rate === "number" && j.sync.export_rate > 0')" = true ] ||
		fail "follower $i: no export rate over the last minute: $(json_eval "$st" 'j.sync.export_rate')"
	[ "$(json_eval "$st" 'typeof j.sync.cursor_age_ms === "number" && j.sync.cursor_age_ms >= 0 && j.sync.cursor_age_ms < 60000')" = true ] ||
		fail "follower $i: cursor age: $(json_eval "$st" 'j.sync.cursor_age_ms')"
	json_eval "$st" 'j.sync.cursor_readable' | grep -Eq '^users: csn [0-9]{14}\.[0-9]{6}Z#[0-9a-f]{6}#[0-9a-f]{3}#[0-9a-f]{6} \([0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9:]{8}Z, sid [0-9a-f]{3}\)' ||
		fail "follower $i: cursor_readable: $(json_eval "$st" 'j.sync.cursor_readable')"
	[ "$(json_eval "$st" 'j.sync.repair_pending === null && !("source" in j.sync)')" = true ] ||
		fail "follower $i shows leader-only figures as its own: $(json_eval "$st" 'JSON.stringify(j.sync)')"
done
pass "followers show what was exported: $(json_eval "$(agent_status "${F[0]}")" '"exported_total " + j.sync.exported_total + ", objects " + j.sync.exported_objects + ", rate " + j.sync.export_rate.toFixed(2) + "/s, cursor " + j.sync.cursor_readable')"

# /metrics: the replicated last export time on a follower, equal to the leader's.
ts() { curl -sf "http://${AGENT_CTL[$1]}/metrics" | awk '$1 == "canopy_last_export_timestamp_seconds" {print $2}'; }
tl=$(ts "$L") tf=$(ts "${F[0]}")
[ -n "$tl" ] && [ "$tl" != 0 ] && [ "$tl" = "$tf" ] || fail "canopy_last_export_timestamp_seconds: leader $tl, follower $tf"
m=$(curl -sf "http://${AGENT_CTL[${F[0]}]}/metrics")
grep -q '^canopy_exported_objects_total [1-9]' <<<"$m" || fail "no canopy_exported_objects_total on a follower"
grep -q '^canopy_cursor_age_seconds [0-9]' <<<"$m" || fail "no canopy_cursor_age_seconds on a follower"
pass "metrics: canopy_last_export_timestamp_seconds $tf on leader and follower"
