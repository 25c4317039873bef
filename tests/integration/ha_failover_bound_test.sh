#!/usr/bin/env bash
# Failover within one election timeout T, every time (T = 1000 ms here).
#
# 1. 3 agents, a change every 100 ms, 8 SIGKILLs of the leader: for each, kill
#    -> first target write of the new term (the SCIM server's own clock) must
#    be <= T; afterwards nothing is lost (target == source), no object was
#    created twice, and no write carries an older term after a newer term's
#    first write.
# 2. SIGSTOP of the leader: a new leader writes within T of the stop; the
#    paused leader, resumed, writes nothing more (its lease ran out long ago).
source "$(dirname "$0")/../fixtures/sync.sh"
dir=$(fixture_tmpdir)

T=1000
ELECTION_TIMEOUT_MS=$T
sync_setup 100 2
sync_start_cluster 3
users_are() { [ "$(scim_count Users)" = "$1" ]; }
wait_until 60 users_are 100 || fail "initial sync: $(scim_count Users)"
wait_until 30 ready_leader 1 2 3 || fail "no leader"

now_ms() { local t=${EPOCHREALTIME/./}; echo $((t / 1000)); }
export SLAPD_URL SLAPD_ADMIN_DN SLAPD_PW_FILE SLAPD_BASE
spawn gen "$dir/gen.log" bash -c '
	exec ldapmodify -x -c -H "$SLAPD_URL" -D "$SLAPD_ADMIN_DN" -y "$SLAPD_PW_FILE" < <(
		i=0
		while :; do
			i=$((i + 1))
			printf "dn: uid=user%05d,ou=people,%s\nchangetype: modify\nreplace: givenName\ngivenName: Bound%d\n\n" \
				$(( (i % 100) + 1 )) "$SLAPD_BASE" "$i"
			sleep 0.1
		done)'
GEN_PID=$SPAWNED_PID

# first write of a term after kill time K (ms), in the audit file (one JSON per line)
first_write_ms() { # TERM -> ms of the first audited write of that term, or fail
	node -e '
		const lines = require("fs").readFileSync(process.argv[1], "utf8").split("\n").filter(Boolean);
		for (const l of lines) { const a = JSON.parse(l); if (a.term === Number(process.argv[2]) && a.status < 300) { console.log(Date.parse(a.time)); process.exit(0); } }
		process.exit(1);' "$SCIM_AUDIT" "$1"
}
term_of() { json_eval "$(agent_status "$1")" 'j.term'; }

worst=0 all=""
for r in 1 2 3 4 5 6 7 8; do
	wait_until 30 ready_leader 1 2 3 || fail "round $r: no leader"
	L=$(ready_leader 1 2 3)
	LT=$(term_of "$L")
	rest=(); for i in 1 2 3; do [ "$i" != "$L" ] && rest+=("$i"); done
	k=$(now_ms)
	agent_stop "$L" KILL
	newterm() { local n; n=$(ready_leader "${rest[@]}") && [ "$(term_of "$n")" -gt "$LT" ]; }
	wait_until 20 newterm || fail "round $r: no new leader after killing $L"
	N=$(ready_leader "${rest[@]}")
	NT=$(term_of "$N")
	written() { first_write_ms "$NT" >/dev/null; }
	wait_until 20 written || fail "round $r: the new leader $N (term $NT) wrote nothing"
	ms=$(( $(first_write_ms "$NT") - k ))
	all+="$ms "
	[ "$ms" -gt "$worst" ] && worst=$ms
	fo=$(json_eval "$(agent_status "$N")" '"detected " + j.failover.last.detected_ms + " ms, elected " + j.failover.last.elected_ms + " ms"')
	echo "round $r: killed $L (term $LT) -> $N writes in term $NT after $ms ms ($fo)"
	agent_start "$L"
	caught() { [ "$(json_eval "$(agent_status "$L")" 'j.role')" = follower ]; }
	wait_until 30 caught || fail "round $r: restarted agent $L did not rejoin"
done
echo "kill -> first write of the new term (ms): $all(max $worst, bound T = $T)"
[ "$worst" -le "$T" ] || fail "a failover took $worst ms > T = $T ms"
pass "8 SIGKILLs: kill -> first write <= T every time (max $worst ms)"

# 2. SIGSTOP: a silent failure.
wait_until 30 ready_leader 1 2 3 || fail "no leader before SIGSTOP"
L=$(ready_leader 1 2 3)
LT=$(term_of "$L")
rest=(); for i in 1 2 3; do [ "$i" != "$L" ] && rest+=("$i"); done
k=$(now_ms)
kill -STOP "${AGENT_PID[$L]}"
newterm() { local n; n=$(ready_leader "${rest[@]}") && [ "$(term_of "$n")" -gt "$LT" ]; }
wait_until 20 newterm || { kill -CONT "${AGENT_PID[$L]}"; fail "no new leader after SIGSTOP of $L"; }
N=$(ready_leader "${rest[@]}")
NT=$(term_of "$N")
written() { first_write_ms "$NT" >/dev/null; }
wait_until 20 written || { kill -CONT "${AGENT_PID[$L]}"; fail "the new leader wrote nothing"; }
ms=$(( $(first_write_ms "$NT") - k ))
sleep_until=$(( $(now_ms) + 1500 )) # let the paused leader sit past its lease, then wake it
while [ "$(now_ms)" -lt "$sleep_until" ]; do sleep 0.1; done
kill -CONT "${AGENT_PID[$L]}"
follower() { [ "$(json_eval "$(agent_status "$L")" 'j.role')" = follower ]; }
wait_until 30 follower || fail "the resumed old leader $L did not become a follower"
woke=$(now_ms)
sleep_until=$(( woke + 1000 ))
while [ "$(now_ms)" -lt "$sleep_until" ]; do sleep 0.1; done
late=$(node -e '
	const lines = require("fs").readFileSync(process.argv[1], "utf8").split("\n").filter(Boolean);
	console.log(lines.map(JSON.parse).filter(a => a.term === Number(process.argv[2]) && Date.parse(a.time) >= Number(process.argv[3])).length);' \
	"$SCIM_AUDIT" "$LT" "$((k + 1))")
echo "SIGSTOP of $L: $N writes in term $NT after $ms ms; writes of the old term after the stop: $late"
[ "$ms" -le "$T" ] || fail "after SIGSTOP the new leader's first write took $ms ms > T"
[ "$late" = 0 ] || fail "the paused leader wrote $late times after it was stopped"
pass "SIGSTOP: new leader writes within T ($ms ms); the resumed old leader writes nothing"

kill "$GEN_PID" 2>/dev/null
wait_until 60 sync_compare || sync_compare || fail "target differs from source after the failovers"
check=$(node -e '
	const w = require("fs").readFileSync(process.argv[1], "utf8").split("\n").filter(Boolean).map(JSON.parse)
		.filter(a => a.status < 300).sort((a, b) => a.seq - b.seq);
	const created = {}; let dup = 0, back = 0, max = 0;
	for (const a of w) {
		if (a.method === "POST" && a.status === 201) { if (created[a.externalId]) dup++; created[a.externalId] = 1; }
		if (a.term < max) back++; if (a.term > max) max = a.term;
	}
	console.log(dup + " " + back);' "$SCIM_AUDIT")
[ "$check" = "0 0" ] || fail "audit: duplicate creates / older-term writes after a newer term: $check"
pass "nothing lost, no duplicate create, no stale-term write"
