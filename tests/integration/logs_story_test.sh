#!/usr/bin/env bash
# The agents' logs tell the story, once per transition, at the right level,
# in log.format json (one object per line, parsed here by node):
#   an election (the leader is killed: a candidate, one "leader known" per
#   survivor for the new term, "acting as leader" on the winner);
#   a quarantine (the SCIM server is stopped longer than the retry budget,
#   then brought back: one warn "sync quarantined" naming the reason, one info
#   "sync quarantine cleared", however many probes and retries ran meanwhile);
#   a membership change (node 4 is added and promoted, the dead node removed:
#   one line each on every node that saw it).
source "$(dirname "$0")/../fixtures/sync.sh"
dir=$(fixture_tmpdir)

TARGET_MAX_ATTEMPTS=2 TARGET_TIMEOUT_MS=1000
sync_setup 20 2
for i in 1 2 3 4; do agent_ports $i; done
members="[\"1@${AGENT_RAFT[1]}\", \"2@${AGENT_RAFT[2]}\", \"3@${AGENT_RAFT[3]}\"]"
for i in 1 2 3 4; do
	sync_agent_config $i "$members" # 4 is not listed: it waits to be added
	printf 'log:\n  format: json\n' >>"$dir/agent$i.yaml"
done
for i in 1 2 3; do agent_start $i; done

users_are() { [ "$(scim_count Users)" = "$1" ]; }
wait_until 60 users_are 20 || fail "initial sync: $(scim_count Users) users"
wait_until 30 idle_leader 1 2 3 || fail "no idle leader"
L=$(idle_leader 1 2 3)

# lines ID MSG [FILTER-JS]: how many of node ID's lines have this msg (and
# pass FILTER, a JS expression over the object o). Fails when a line is not
# a JSON object or names another node.
lines() {
	agent_logs "$1" >"$dir/log$1.json"
	node -e '
		const fs = require("fs");
		const [file, id, msg, filter] = process.argv.slice(1);
		const f = new Function("o", "return (" + (filter || "true") + ");");
		let n = 0;
		for (const line of fs.readFileSync(file, "utf8").split("\n")) {
			if (line === "") continue;
			let o;
			try { o = JSON.parse(line); } catch (e) { console.error("not JSON: " + line); process.exit(2); }
			if (o.node !== Number(id) || typeof o.time !== "string" || !/^(debug|info|warn|error)$/.test(o.level)) {
				console.error("bad line: " + line); process.exit(2);
			}
			if (o.msg === msg && f(o)) n++;
		}
		console.log(n);' "$dir/log$1.json" "$1" "$2" "${3:-}"
}
once() { # once ID MSG FILTER WHAT
	local n
	n=$(lines "$1" "$2" "$3") || fail "node $1's log is not one JSON object per line"
	[ "$n" = 1 ] || fail "$4: node $1 logged \"$2\" ($3) $n times: $(grep -F "\"$2\"" "$dir/log$1.json")"
}
has() { [ "$(lines "$1" "$2" "${3:-}")" -ge 1 ]; }

t=$(json_eval "$(agent_status "$L")" 'j.term')
for i in 1 2 3; do once $i "leader known" "o.level==='info' && o.leader===$L && o.term===$t" "leader $L of term $t"; done
once "$L" "acting as leader" "o.level==='info' && o.term===$t" "leadership gained"
pass "JSON lines by node; each node logged leader $L of term $t once; $L logged acting as leader once"

# --- an election ---------------------------------------------------------
agent_stop "$L" KILL
rest=(); for i in 1 2 3; do [ "$i" != "$L" ] && rest+=("$i"); done
wait_until 20 idle_leader "${rest[@]}" || fail "no new idle leader after killing $L"
N=$(idle_leader "${rest[@]}")
O=${rest[0]}; [ "$O" = "$N" ] && O=${rest[1]}
t2=$(json_eval "$(agent_status "$N")" 'j.term')
has "$N" "election started: this node is a candidate" "o.level==='info' && o.term<=$t2" ||
	fail "the winner $N did not log its candidacy: $(grep candidate "$dir/log$N.json")"
for i in "$N" "$O"; do once "$i" "leader known" "o.level==='info' && o.leader===$N && o.term===$t2" "new leader $N of term $t2"; done
once "$N" "acting as leader" "o.level==='info' && o.term===$t2" "leadership gained after the election"
pass "election after killing $L: $N candidate, leader $N of term $t2 logged once by each survivor"

# --- a quarantine ----------------------------------------------------------
# The SCIM target quarantines itself after 16 failed requests of its last
# 20 (sync/target/scim_internal.h): 10 changes of 2 attempts each.
outage_ms=$(($(date +%s%N) / 1000000))
scim_stop
for i in $(seq 1 10); do
	printf 'dn: uid=user%05d,ou=people,%s\nchangetype: modify\nreplace: sn\nsn: Outage\n\n' "$i" "$SLAPD_BASE"
done | slapd_ldapmodify >/dev/null
quarantined() { [ "$(json_eval "$(agent_status "$N")" 'j.sync.state')" = quarantined ]; }
wait_secs 60 quarantined || fail "not quarantined with the target down: $(json_eval "$(agent_status "$N")" 'JSON.stringify(j.sync)')"
# Positive markers that the agent kept trying meanwhile: the health probe saw
# the target down, and another change came while quarantined.
wait_secs 30 has "$N" "target check failed" "o.level==='warn'" || fail "no target check failure logged"
printf 'dn: uid=user00011,ou=people,%s\nchangetype: modify\nreplace: sn\nsn: Outage\n\n' "$SLAPD_BASE" | slapd_ldapmodify >/dev/null
checked_since() { [ "$(json_eval "$(agent_status "$N")" "Date.parse(j.health.target.checked_at) > $1")" = true ]; }
since_ms=$(($(date +%s) * 1000 + 1000))
wait_secs 30 checked_since "$since_ms" || fail "the target was not probed again while quarantined: $(agent_status "$N")"
scim_restart
# The leader may hand over to a node whose own probe works first
# (agent/health.c): the quarantine ends under whoever leads then.
total() { local i n=0; for i in "$N" "$O"; do n=$((n + $(lines "$i" "$@"))); done; echo "$n"; }
cleared() { [ "$(total "sync quarantine cleared")" -ge 1 ]; }
wait_secs 90 cleared || fail "quarantine not cleared after the target came back: $(agent_status "$N")"
sn_is() { [ "$(scim_ctl GET store | json_get "(j.Users.find(u=>u.userName==='$1')||{name:{}}).name.familyName")" = Outage ]; }
wait_secs 60 sn_is user00011 && wait_secs 30 sn_is user00001 || fail "the changes made during the outage did not arrive"
# The quarantine is logged where the replicated reason changes: one entry
# and one end per change of what status shows, whichever node led. A leader
# that cannot reach the target may hand over to one whose probe worked a
# moment ago (agent/health.c); the new leader enters it again: one more line
# per leadership, never one per failed request (20 here) or per probe.
entered=$(total "sync quarantined" "o.level==='warn' && /^target_unreachable: ./.test(o.detail)")
all_entered=$(total "sync quarantined")
ended=$(total "sync quarantine cleared" "o.level==='info' && o.detail==='target_unreachable'")
leaderships=$(total "acting as leader" "Date.parse(o.time) >= $outage_ms")
[ "$entered" -ge 1 ] && [ "$entered" = "$all_entered" ] || fail "quarantine entries: $entered of $all_entered name the reason and detail"
[ "$entered" -le $((1 + leaderships)) ] || fail "$entered quarantine entries for $leaderships leaderships during the outage"
[ "$ended" -ge 1 ] && [ "$ended" -le "$entered" ] || fail "$entered quarantine entries but $ended ends: $(grep -h 'quarantine' "$dir/log$N.json" "$dir/log$O.json")"
fails() { lines "$1" "target check failed" "o.level==='warn'"; }
backs() { lines "$1" "target check ok" "o.level==='info' && o.was==='unreachable'"; }
for i in "$N" "$O"; do
	f=$(fails "$i")
	[ "$f" -le 1 ] || fail "node $i logged the target failure $f times"
	same_backs() { [ "$(backs "$i")" = "$f" ]; }
	wait_secs 30 same_backs || fail "node $i: $f target failures but $(backs "$i") recoveries logged"
done
[ "$(fails "$N")" = 1 ] || fail "the leader $N did not log its target failure"
pass "quarantine: each entry (warn, reason and detail) and end (info) logged once, by the leader that changed it"

# --- a membership change -----------------------------------------------------
agent_start 4
wait_tcp "${AGENT_RAFT[4]##*:}" 10 || fail "agent 4 does not listen"
out=$("$CANOPYCTL" --server "${AGENT_CTL[$O]}" cluster add "4@${AGENT_RAFT[4]}" 2>&1) || fail "cluster add 4: $out"
voter4() { [ "$(json_eval "$(agent_status "$N")" 'j.members.some(m=>m.id===4 && m.role==="voter")')" = true ]; }
wait_secs 40 voter4 || fail "4 is not a voter: $(agent_status "$N")"
out=$("$CANOPYCTL" --server "${AGENT_CTL[$N]}" cluster remove "$L" 2>&1) || fail "cluster remove $L: $out"
gone() { [ "$(json_eval "$(agent_status "$1")" "j.members.some(m=>m.id===$L)")" = false ]; }
wait_secs 20 gone "$N" && wait_secs 20 gone "$O" && wait_secs 20 gone 4 || fail "$L still listed"
for i in "$N" "$O"; do
	once "$i" "member added" "o.level==='info' && o.member===4 && o.role==='spare'" "node 4 added"
	once "$i" "member promoted" "o.level==='info' && o.member===4 && o.from==='spare' && o.to==='voter'" "node 4 promoted"
done
for i in "$N" "$O" 4; do once "$i" "member removed" "o.level==='info' && o.member===$L" "node $L removed"; done
pass "membership: 4 added and promoted, $L removed, one line each on every node that saw it"
