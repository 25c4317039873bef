#!/usr/bin/env bash
# The provisioning log rotates by size (log.provisioning_max_bytes) and keeps
# log.provisioning_keep rotated files: after several rotations there are no
# more than keep + 1 files, each 0600 and within the limit, every line valid
# JSON; nothing in the kept window is lost (each successful write the SCIM
# server audited after the oldest kept entry has its entry); canopyctl logs
# --since reads across the rotation boundaries. Bad values are refused at
# start (--check-config) with the key named.
source "$(dirname "$0")/../fixtures/sync.sh"
dir=$(fixture_tmpdir)

sync_setup 60 0
agent_ports 1
sync_agent_config 1 "[\"1@${AGENT_RAFT[1]}\"]"
cp "$dir/agent1.yaml" "$dir/base.yaml"

bad_key() { # bad_key YAML EXPECTED
	{ cat "$dir/base.yaml"; printf 'log:\n%s\n' "$1"; } >"$dir/bad.yaml"
	local out rc=0
	out=$("$CANOPY_AGENT" --check-config --config "$dir/bad.yaml" 2>&1) || rc=$?
	[ "$rc" -ne 0 ] || fail "--check-config accepted: $1"
	grep -qF -- "$2" <<<"$out" || fail "--check-config on \"$1\" does not say \"$2\": $out"
}
bad_key '  provisioning_max_bytes: 100' 'log.provisioning_max_bytes: 100 is out of range'
bad_key '  provisioning_max_bytes: 10MB' 'log.provisioning_max_bytes: expected an integer'
bad_key '  provisioning_keep: 0' 'log.provisioning_keep: 0 is out of range'
bad_key '  provisioning_keep: 101' 'log.provisioning_keep: 101 is out of range'
pass "bad log.provisioning_max_bytes / log.provisioning_keep are refused with the key named"

keep=3
max=16384
printf 'log:\n  provisioning_max_bytes: %s\n  provisioning_keep: %s\n' $max $keep >>"$dir/agent1.yaml"
"$CANOPY_AGENT" --check-config --config "$dir/agent1.yaml" >/dev/null 2>&1 || fail "--check-config refused the good keys"
agent_start 1
users_are() { [ "$(scim_count Users)" = "$1" ]; }
wait_until 60 users_are 60 || fail "initial sync: $(scim_count Users) users"
wait_until 30 idle_leader 1 || fail "not idle"

# More changes: every user's surname, twice (updates after the creates).
for round in 1 2; do
	for ((i = 1; i <= 60; i++)); do
		printf 'dn: uid=user%05d,ou=people,%s\nchangetype: modify\nreplace: sn\nsn: Round%s\n\n' "$i" "$SLAPD_BASE" "$round"
	done | slapd_ldapmodify >/dev/null || fail "ldapmodify, round $round"
	renamed() { [ "$(scim_ctl GET store | json_get "j.Users.filter(u=>u.name.familyName==='Round$1').length")" = 60 ]; }
	wait_secs 60 renamed "$round" || fail "round $round: not every surname exported"
done
wait_until 30 idle_leader 1 || fail "not idle after the updates"

log=$dir/data1/provisioning.log
files=("$log")
for ((k = 1; k <= keep; k++)); do files+=("$log.$k"); done
for f in "${files[@]}"; do [ -f "$f" ] || fail "$f missing: $(ls -l "$dir/data1")"; done
n_files=$(find "$dir/data1" -maxdepth 1 -name 'provisioning.log*' | wc -l)
[ "$n_files" -le $((keep + 1)) ] || fail "$n_files provisioning log files, more than keep+1: $(ls "$dir/data1")"
for f in "${files[@]}"; do
	[ "$(stat -c %a "$f")" = 600 ] || fail "$f has mode $(stat -c %a "$f")"
	[ "$(stat -c %s "$f")" -le $max ] || fail "$f is larger than $max bytes"
done
# every line of every file is one whole JSON object (none split by a rotation)
node -e '
const fs = require("fs");
for (const f of process.argv.slice(1))
	for (const l of fs.readFileSync(f, "utf8").split("\n").filter(Boolean)) {
		try { JSON.parse(l); } catch (e) { console.error(f + ": not JSON: " + l); process.exit(1); }
	}' "${files[@]}" || fail "a line that is not JSON"
total=$(cat "${files[@]}" | grep -c .)
[ "$total" -lt 360 ] || fail "nothing was dropped: $total entries kept (did it rotate away old files?)"
pass "rotated $n_files files (keep $keep, max $max bytes): each 0600, within the limit, whole JSON lines"

# The kept window: the oldest kept batch (cycle) may have lost its older
# entries to the rotation; every write the server audited after that batch's
# last entry belongs to a later batch, kept whole: each has its entry (by
# target id, one each).
node -e '
const fs = require("fs");
const [auditFile, ...files] = process.argv.slice(1);
const entries = files.flatMap(f => fs.readFileSync(f, "utf8").split("\n").filter(Boolean).map(l => JSON.parse(l)));
const c0 = Math.min(...entries.map(e => e.cycle));
const t1 = entries.filter(e => e.cycle === c0).map(e => e.time).sort().pop();
const audit = fs.readFileSync(auditFile, "utf8").split("\n").filter(Boolean).map(l => JSON.parse(l))
	.filter(a => a.status < 300 && a.method !== "GET" && a.time > t1);
const ok = {};
for (const e of entries) if (e.result === "ok" && e.target_id) ok[e.target_id] = (ok[e.target_id] || 0) + 1;
const need = {};
for (const a of audit) need[a.id] = (need[a.id] || 0) + 1;
const lost = Object.keys(need).filter(id => (ok[id] || 0) < need[id]);
if (audit.length < 50) { console.error("only " + audit.length + " audited writes after " + t1); process.exit(1); }
if (lost.length) { console.error("writes after " + t1 + " without their entry: " + lost.join(",")); process.exit(1); }
console.log(audit.length + " audited writes after " + t1 + " (the end of batch " + c0 + ")");' "$SCIM_AUDIT" "${files[@]}" >"$dir/window" || fail "entries lost in the kept window"
pass "nothing lost in the kept window: $(cat "$dir/window"), each logged"

# --since from an entry in the oldest kept file reads across every boundary.
since=$(sed -n 2p "$log.$keep" | json_get 'j.time')
want=$(node -e '
const fs = require("fs"); const s = process.argv[1];
console.log(process.argv.slice(2).flatMap(f => fs.readFileSync(f, "utf8").split("\n").filter(Boolean))
	.filter(l => JSON.parse(l).time >= s).length);' "$since" "${files[@]}")
out=$("$CANOPYCTL" --server "${AGENT_CTL[1]}" logs --since "$since" --limit 10000 --json) || fail "logs --since $since"
got=$(json_eval "$out" 'j.entries.length')
[ "$got" = "$want" ] || fail "logs --since $since: $got entries, the files hold $want from then on"
[ "$(json_eval "$out" 'j.entries.every((e,i,a)=>i===0||a[i-1].time<=e.time)')" = true ] || fail "entries out of order"
[ "$(json_eval "$out" "j.entries[0].time >= '$since'")" = true ] || fail "an entry older than --since"
[ "$(json_eval "$out" 'j.truncated')" = false ] || fail "marked truncated"
pass "logs --since $since reads across $((keep + 1)) files: $got entries, oldest first"
