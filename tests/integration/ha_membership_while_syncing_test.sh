#!/usr/bin/env bash
# Membership changes while changes flow: a 4th and a 5th agent join, one
# member is removed, leadership is transferred; every change still reaches
# the target and all members end with the same state digest. The longest gap
# between two target writes during the changes is printed (a figure, not an
# assertion).
source "$(dirname "$0")/../fixtures/sync.sh"
dir=$(fixture_tmpdir)

sync_setup 200 2
for i in 1 2 3 4 5; do agent_ports $i; done
members="[\"1@${AGENT_RAFT[1]}\", \"2@${AGENT_RAFT[2]}\", \"3@${AGENT_RAFT[3]}\"]"
for i in 1 2 3 4 5; do sync_agent_config $i "$members"; done
for i in 1 2 3; do agent_start $i; done
users_are() { [ "$(scim_count Users)" = "$1" ]; }
wait_until 60 users_are 200 || fail "initial sync"
wait_until 15 ready_leader 1 2 3 || fail "no leader"

# A steady stream of changes: user00001..user00100 get a new surname, one every 50 ms.
cat >"$dir/changes.sh" <<SH
for i in \$(seq 1 100); do
	printf 'dn: uid=user%05d,ou=people,$SLAPD_BASE\nchangetype: modify\nreplace: sn\nsn: Wave%d\n\n' "\$i" "\$i" |
		ldapmodify -x -H "$SLAPD_URL" -D "$SLAPD_ADMIN_DN" -y "$SLAPD_PW_FILE" >/dev/null
	sleep 0.05
done
SH
since=$(scim_ctl GET audit | json_get 'j.length ? j[j.length-1].seq : 0')
spawn changes "$dir/changes.log" bash "$dir/changes.sh"
changer=$SPAWNED_PID

# Each new agent serves before it is added (`cluster add` probes its raft
# port and refuses an agent that is not up yet), and a 503 (no leader for a
# moment, e.g. after the previous change) is asked again: the slow polls of
# the old json helpers used to give the agent that time by accident.
for i in 4 5; do
	agent_start $i
	agent_wait_up $i || fail "agent $i did not start"
	wait_until 15 ready_leader 1 2 3 4 5 || fail "no leader while adding $i"
	L=$(ready_leader 1 2 3 4 5) || fail "no leader while adding $i"
	out=$(agent_ctl "$L" cluster add "$i@${AGENT_RAFT[$i]}") || fail "cluster add $i: $out"
done
wait_until 15 ready_leader 1 2 3 4 5 || fail "no leader"
L=$(ready_leader 1 2 3 4 5) || fail "no leader"
victim=1; [ "$L" = 1 ] && victim=2
out=$(agent_ctl "$L" cluster remove "$victim") || fail "cluster remove: $out"
out=$(agent_ctl "$L" cluster transfer) || fail "cluster transfer: $out"
pass "added 4 and 5, removed $victim, transferred leadership ($out) while changes flowed"

wait "$changer" || fail "the change stream failed: $(cat "$dir/changes.log")"
sync_ok() { sync_compare >/dev/null 2>&1; }
wait_until 60 sync_ok || sync_compare || fail "target differs from source"
rest=(); for i in 1 2 3 4 5; do [ "$i" != "$victim" ] && rest+=("$i"); done
same_digest() {
	local first="" d i
	for i in "${rest[@]}"; do
		d=$(json_eval "$(agent_status "$i")" 'j.state.digest') || return 1
		[ -z "$first" ] && first=$d
		[ "$d" = "$first" ] || return 1
	done
}
wait_until 30 same_digest || fail "members' digests differ"
voters=$(json_eval "$(agent_status "${rest[0]}")" 'j.members.filter(m=>m.role==="voter").length')
[ "$voters" = 4 ] || fail "expected 4 voters, got $voters"
gap=$(scim_ctl GET audit | json_get "(()=>{const w=j.filter(a=>a.seq>$since&&a.status<300).map(a=>Date.parse(a.time)).sort((x,y)=>x-y);let g=0;for(let i=1;i<w.length;i++)g=Math.max(g,w[i]-w[i-1]);return g+' ms over '+w.length+' writes'})()")
pass "4 voters with equal digests; target equals source; longest gap between target writes: $gap"
