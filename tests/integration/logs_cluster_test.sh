#!/usr/bin/env bash
# canopyctl logs --cluster: each node's provisioning log holds what that node
# did while it led; --cluster merges every member's log by time, each line
# labelled with its node, with the same --since / --limit / --json meaning as
# one node's; a member that does not answer is named on stderr and the
# command still succeeds; it fails when the node asked does not answer.
source "$(dirname "$0")/../fixtures/sync.sh"
dir=$(fixture_tmpdir)

sync_setup 10 1
sync_start_cluster 3
users_are() { [ "$(scim_count Users)" = "$1" ]; }
wait_until 60 users_are 10 || fail "initial sync: $(scim_count Users) users"
wait_until 30 idle_leader 1 2 3 || fail "no idle leader"
first=$(idle_leader 1 2 3)
next=$((first % 3 + 1))
out=$("$CANOPYCTL" --server "${AGENT_CTL[$first]}" cluster transfer "$next" 2>&1) || fail "transfer to $next: $out"
wait_until 30 idle_leader "$next" || fail "node $next did not lead"
for i in 1 2 3; do
	printf 'dn: uid=user%05d,ou=people,%s\nchangetype: modify\nreplace: sn\nsn: Later\n\n' "$i" "$SLAPD_BASE"
done | slapd_ldapmodify >/dev/null || fail "ldapmodify"
renamed() { [ "$(scim_ctl GET store | json_get "j.Users.filter(u=>u.name.familyName==='Later').length")" = 3 ]; }
wait_secs 30 renamed || fail "the updates were not exported by node $next"
third=$((next % 3 + 1))
[ "$third" != "$first" ] || third=$((third % 3 + 1))

one() { "$CANOPYCTL" --server "${AGENT_CTL[$1]}" logs --limit 10000 --json | json_get 'j.entries.length'; }
n_first=$(one "$first") n_next=$(one "$next") n_third=$(one "$third")
[ "$n_first" -gt 0 ] && [ "$n_next" -gt 0 ] || fail "expected entries on both leaders: $n_first on $first, $n_next on $next"
[ "$n_third" = 0 ] || fail "node $third never led but logged $n_third entries"

# asked a follower that never led: the union of every member's log
out=$("$CANOPYCTL" --server "${AGENT_CTL[$third]}" logs --cluster --limit 10000 --json) || fail "logs --cluster"
[ "$(json_eval "$out" 'j.entries.length')" = $((n_first + n_next)) ] || fail "--cluster: $(json_eval "$out" 'j.entries.length') entries, the nodes hold $n_first + $n_next"
[ "$(json_eval "$out" 'j.entries.every((e,i,a)=>i===0||a[i-1].time<=e.time)')" = true ] || fail "not sorted by time"
[ "$(json_eval "$out" "j.entries.filter(e=>e.node===$first).length")" = "$n_first" ] || fail "node $first's entries not labelled"
[ "$(json_eval "$out" "j.entries.filter(e=>e.node===$next).length")" = "$n_next" ] || fail "node $next's entries not labelled"
[ "$(json_eval "$out" 'j.nodes.length===3 && j.nodes.every(n=>n.answered) && j.truncated===false')" = true ] || fail "nodes: $out"
txt=$("$CANOPYCTL" --server "${AGENT_CTL[$third]}" logs --cluster --limit 10000) || fail "logs --cluster (table)"
grep -q "^node $first .* create " <<<"$txt" || fail "no line labelled node $first: $txt"
grep -q "^node $next .* update .*uid=user00001," <<<"$txt" || fail "no update labelled node $next: $txt"
[ "$(grep -c '^node ' <<<"$txt")" = $((n_first + n_next)) ] || fail "the table has $(grep -c '^node ' <<<"$txt") lines"
pass "logs --cluster from node $third (never led): $n_first entries of node $first and $n_next of node $next, merged by time, labelled"

# --since: only node $next's updates and later; --limit cuts the union
since=$(json_eval "$out" "j.entries.find(e=>e.node===$next && e.action==='update').time")
want=$(json_eval "$out" "j.entries.filter(e=>e.time>='$since').length")
s_out=$("$CANOPYCTL" --server "${AGENT_CTL[$third]}" logs --cluster --since "$since" --json) || fail "--since"
[ "$(json_eval "$s_out" 'j.entries.length')" = "$want" ] || fail "--since $since: $(json_eval "$s_out" 'j.entries.length') entries, want $want"
l_out=$("$CANOPYCTL" --server "${AGENT_CTL[$third]}" logs --cluster --limit 3 --json 2>"$dir/err") || fail "--limit 3"
[ "$(json_eval "$l_out" 'j.entries.length + "/" + j.truncated')" = 3/true ] || fail "--limit 3: $l_out"
[ "$(json_eval "$l_out" 'j.entries.map(e=>e.time).join()')" = "$(json_eval "$out" 'j.entries.slice(-3).map(e=>e.time).join()')" ] ||
	fail "--limit 3 is not the newest 3 of the union"
grep -q 'older ones were left out by the limit' "$dir/err" || fail "no truncation notice: $(cat "$dir/err")"
pass "--since and --limit apply to the union (newest N, truncation notice)"

# a member that does not answer: named on stderr, the rest shown, exit 0
agent_stop "$first"
out=$("$CANOPYCTL" --server "${AGENT_CTL[$third]}" logs --cluster --limit 10000 --json 2>"$dir/err") || fail "--cluster with node $first down exited non-zero: $(cat "$dir/err")"
grep -q "warning: node $first at ${AGENT_CTL[$first]} did not answer" "$dir/err" || fail "no warning naming node $first: $(cat "$dir/err")"
[ "$(json_eval "$out" 'j.entries.length')" = "$n_next" ] || fail "with node $first down: $(json_eval "$out" 'j.entries.length') entries"
[ "$(json_eval "$out" "j.nodes.find(n=>n.node_id===$first).answered")" = false ] || fail "node $first marked as answered"
pass "a member down is named on stderr; the others' entries are shown, exit 0"

agent_stop "$third"
rc=0
"$CANOPYCTL" --server "${AGENT_CTL[$third]}" logs --cluster >/dev/null 2>"$dir/err" || rc=$?
[ "$rc" -ne 0 ] || fail "--cluster exited 0 when the node asked is down"
grep -q "cannot reach canopy agent" "$dir/err" || fail "no cause on stderr: $(cat "$dir/err")"
rc=0
"$CANOPYCTL" --server "${AGENT_CTL[$next]}" status --cluster >/dev/null 2>&1 || rc=$?
[ "$rc" = 2 ] || fail "status --cluster exited $rc, not 2"
pass "no answer at all exits non-zero; --cluster on another command is refused"
