#!/usr/bin/env bash
# `canopyctl drill failover` (agent/ctl_drill.c, agent/control_drill.c), the
# transfer mode and the refusals:
#
# 3 agents + slapd + SCIM, a control token. `drill failover --mode transfer
# --count 3 --json` gives {"drills": [...], "summary": {...}}: 3 drills, each
# to a new leader with a newer term, 0 <= detected <= elected <= first_export,
# first_export > 0 and < 3 T (a transfer's candidate can win within the
# millisecond); the summary's min <= median <= max. Without the token the
# drill is refused (exit 1, naming control.token_file) and leadership does not
# move; with one of the 3 agents down it is refused (exit 1) naming the
# unreachable node, and leadership does not move.
source "$(dirname "$0")/../fixtures/drill.sh"

T=1000
ELECTION_TIMEOUT_MS=$T
drill_cluster 20 2
L=$DRILL_LEADER
F=$(( L % 3 + 1 ))

# No token: refused, nothing moves.
term0=$(json_eval "$(agent_status "$L")" 'j.term')
if out=$("$CANOPYCTL" --server "${AGENT_CTL[$F]}" drill failover 2>&1); then
	fail "drill without the token succeeded: $out"
fi
grep -q 'control.token_file' <<<"$out" || fail "refusal without a token does not say why: $out"
[ "$(json_eval "$(agent_status "$L")" 'j.role + " " + j.term')" = "leader $term0" ] || fail "leadership moved without a token"
pass "without the token: refused ($out)"

# Three transfers, asked of a follower (it redirects to the leader).
out=$("$CANOPYCTL" --server "${AGENT_CTL[$F]}" --token-file "$DRILL_TOKEN_FILE" drill failover --mode transfer \
	--count 3 --json) || fail "drill failed: $out"
echo "$out"
check=$(json_eval "$out" '(() => {
	const T = '"$T"', d = j.drills, s = j.summary, bad = [];
	if (!Array.isArray(d) || d.length !== 3) return "drills: " + JSON.stringify(d);
	d.forEach((x, i) => {
		for (const k of ["mode", "old_leader", "new_leader", "elected_ms", "first_export_ms", "detected_ms"])
			if (!(k in x)) bad.push(i + ": no " + k);
		if (x.mode !== "transfer") bad.push(i + ": mode " + x.mode);
		if (x.new_leader === x.old_leader) bad.push(i + ": same leader " + x.new_leader);
		if (!(x.term > x.old_term)) bad.push(i + ": term " + x.old_term + " -> " + x.term);
		if (i > 0 && x.old_leader !== d[i - 1].new_leader) bad.push(i + ": old leader is not the last new one");
		if (!(x.detected_ms >= 0 && x.detected_ms <= x.elected_ms && x.first_export_ms > 0 && x.elected_ms <= x.first_export_ms
		      && x.first_export_ms < 3 * T)) bad.push(i + ": timings " + [x.detected_ms, x.elected_ms, x.first_export_ms]);
	});
	for (const k of ["detected_ms", "elected_ms", "first_export_ms"]) {
		const v = s && s[k];
		if (!v || !(v.min <= v.median && v.median <= v.max)) bad.push("summary " + k + ": " + JSON.stringify(v));
	}
	if (!s || s.count !== 3 || s.mode !== "transfer") bad.push("summary: " + JSON.stringify(s));
	return bad.join("; ") || "ok";
})()')
[ "$check" = ok ] || fail "drill --json: $check"
pass "3 transfer drills: $(json_eval "$out" '"first_export_ms min " + j.summary.first_export_ms.min + " median " + j.summary.first_export_ms.median + " max " + j.summary.first_export_ms.max')"

# Human output: per drill and min/median/max.
out=$("$CANOPYCTL" --server "${AGENT_CTL[$F]}" --token-file "$DRILL_TOKEN_FILE" drill failover) || fail "drill failed: $out"
echo "$out"
grep -q '^drill 1/1 transfer: leader .* detected .* elected .* exporting' <<<"$out" || fail "no per-drill line: $out"
grep -qE '^  exporting +[0-9]+ +[0-9]+ +[0-9]+' <<<"$out" || fail "no min/median/max: $out"

# One of the three down: refused, naming it; leadership does not move.
wait_until 30 ready_leader 1 2 3 || fail "no leader after the drills"
L=$(ready_leader 1 2 3)
D=$(( L % 3 + 1 ))
agent_stop "$D" KILL
down_seen() { [ "$(json_eval "$(agent_status "$L")" 'j.members.find(m => m.id === '"$D"').reachable')" = false ]; }
wait_until 10 down_seen || fail "the leader does not see node $D down"
term0=$(json_eval "$(agent_status "$L")" 'j.term')
if out=$("$CANOPYCTL" --server "${AGENT_CTL[$L]}" --token-file "$DRILL_TOKEN_FILE" drill failover --mode crash 2>&1); then
	fail "drill with node $D down succeeded: $out"
fi
grep -q "drill refused: .*node $D is not reachable" <<<"$out" || fail "refusal does not name node $D: $out"
[ "$(json_eval "$(agent_status "$L")" 'j.role + " " + j.term + " " + j.drill.crashed')" = "leader $term0 false" ] ||
	fail "leadership moved although the drill was refused"
pass "with node $D down: refused ($out)"
