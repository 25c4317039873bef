#!/usr/bin/env bash
# chaos-tests/check.sh --target entra on loopback: slapd, the Graph fixture
# and 3 agents (target.kind entra), the leader SIGKILLed during the initial
# sync and restarted. The checker passes the real run (Graph equals the
# directory, no duplicate create, no stale-term write in the fixture's audit
# of X-Canopy-Term / -Node and anchors), and FAILs on each planted fault,
# naming it: lost (a user deleted from Graph behind canopy's back), dup (a
# second POST /users 201 of an existing anchor in a copy of the audit),
# stale (an older term's write after the newer term's first write, never
# redone). The scenario using it is chaos-tests/scenarios/entra-leader-kill.sh.
source "$(dirname "$0")/../fixtures/entra.sh"
dir=$(fixture_tmpdir)
CHAOS=$CANOPY_SOURCE_DIR/chaos-tests

slapd_start 150 6 1
export GRAPH_RPS=60 GRAPH_BURST=20 # an initial sync long enough to kill into
graph_start
for i in 1 2 3; do agent_ports $i; done
members="[\"1@${AGENT_RAFT[1]}\", \"2@${AGENT_RAFT[2]}\", \"3@${AGENT_RAFT[3]}\"]"
for i in 1 2 3; do entra_config $i "$(entra_secret_auth)" "$members"; done
for i in 1 2 3; do agent_start $i; done
wait_until 15 ready_leader 1 2 3 || fail "no leader"
L=$(ready_leader 1 2 3)
LT=$(json_eval "$(agent_status "$L")" 'j.term')
n_users() { graph_ctl GET stats | json_get 'j.users'; }
some() { [ "$(n_users)" -ge 20 ]; }
wait_secs 60 some || fail "the initial sync did not start: $(n_users) users"
agent_stop "$L" KILL
at_kill=$(n_users)
[ "$at_kill" -lt 150 ] || fail "the initial sync was over before the kill ($at_kill users)"
rest=(); for i in 1 2 3; do [ "$i" != "$L" ] && rest+=("$i"); done
newterm() { local n; n=$(ready_leader "${rest[@]}") && [ "$(json_eval "$(agent_status "$n")" 'j.term')" -gt "$LT" ]; }
wait_until 20 newterm || fail "no new leader after SIGKILL of $L"
agent_start "$L"
graph_budget 0 0

check() { # NAME ARGS...: output printed, last line in $LAST, rc in $RC
	local name=$1; shift
	RC=0
	"$CHAOS/check.sh" --target entra --ldap-url "$SLAPD_URL" --bind-dn "$SLAPD_ADMIN_DN" \
		--password-file "$SLAPD_PW_FILE" --config "$dir/agent1.yaml" --settle 90 \
		--status "${AGENT_CTL[1]}" "${AGENT_CTL[2]}" "${AGENT_CTL[3]}" "$@" >"$dir/check-$name.out" 2>&1 || RC=$?
	LAST=$(tail -n 1 "$dir/check-$name.out")
	sed "s/^/  [$name] /" "$dir/check-$name.out"
}
check run --graph "$GRAPH_URL" --audit-url "$GRAPH_AUDIT"
[ "$RC" = 0 ] && [[ $LAST == "chaos: PASS lost=0 dup=0 stale=0 cursor_back=0 digest=equal objects=156 "* ]] ||
	fail "the checker did not pass a clean run (rc $RC): $LAST"
terms=$(node -e 'const t=new Set(require("fs").readFileSync(process.argv[1],"utf8").trim().split("\n").map(JSON.parse).filter(a=>a.term!==null&&a.method!=="GET").map(a=>a.term));console.log(t.size)' "$GRAPH_AUDIT")
[ "$terms" -ge 2 ] || fail "the audit shows writes of $terms term(s): the kill did not land during the initial sync"
pass "leader $L killed during the initial sync, writes of $terms terms: $LAST"

expect_fail() { # NAME FIELD: FAIL with FIELD > 0, the other counts 0
	local name=$1 field=$2 f v
	[ "$RC" = 1 ] && [[ $LAST == "chaos: FAIL "* ]] || fail "$name: not a FAIL (rc $RC): $LAST"
	for f in lost dup stale; do
		v=$(sed -n "s/.* $f=\([0-9]*\).*/\1/p" <<<"$LAST")
		if [ "$f" = "$field" ]; then [ "$v" -gt 0 ] || fail "$name: $f=$v: $LAST"
		else [ "$v" = 0 ] || fail "$name: $f=$v, only $field should count: $LAST"; fi
	done
	pass "$name: $LAST"
}

# dup: a copy of the audit with a user's create (POST /users 201) again at the end
plant() { # JS over the audit rows `a` (an array), printed back as JSON lines
	node -e 'const fs=require("fs");const a=fs.readFileSync(process.argv[1],"utf8").trim().split("\n").map(JSON.parse);
		(0,eval)(process.argv[2]);for(const r of a)console.log(JSON.stringify(r))' "$GRAPH_AUDIT" "$1"
}
plant 'const c=a.find(r=>r.method==="POST"&&r.path==="/v1.0/users"&&r.status===201&&r.term!==null);
	const last=a.filter(r=>r.term!==null).reduce((x,y)=>(y.term>=x.term?y:x));
	a.push({...c,time:new Date().toISOString(),term:last.term,node:last.node})' >"$dir/audit-dup.jsonl"
check dup --graph "$GRAPH_URL" --audit-url "$dir/audit-dup.jsonl"
expect_fail "planted duplicate create" dup

# stale: after the newest term's writes, a write of an older term to an
# object nobody writes again
plant 'const w=a.filter(r=>r.term!==null&&r.method!=="GET"&&r.status<300);const max=Math.max(...w.map(r=>r.term));
	const old=w.find(r=>r.term<max);if(!old)throw new Error("no write of an older term");
	a.push({...old,method:"PATCH",path:"/v1.0/users/planted",time:new Date(Date.now()+120000).toISOString(),anchor:"planted-stale"})' >"$dir/audit-stale.jsonl" ||
	fail "cannot plant a stale write"
check stale --graph "$GRAPH_URL" --audit-url "$dir/audit-stale.jsonl"
expect_fail "planted stale-term write" stale

# lost: a user deleted from Graph behind canopy's back (no X-Canopy-Term:
# not judged as a write of canopy's)
graph_token >/dev/null
victim=$(graph_user_id user00007@example.com)
[ -n "$victim" ] || fail "no user00007 in Graph"
st=$(graph_req DELETE "/users/$victim")
[ "$st" = 204 ] || fail "DELETE user00007: HTTP $st"
check lost --graph "$GRAPH_URL" --audit-url "$GRAPH_AUDIT" --settle 20
expect_fail "a user deleted behind canopy's back" lost
grep -q "missing uid=user00007," "$dir/check-lost.out" || fail "the checker does not name user00007: $(cat "$dir/check-lost.out")"
