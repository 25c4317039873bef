#!/usr/bin/env bash
# A leader whose directory bind fails hands leadership over (issue 7, item 2).
# Three agents; agent 1 has a wrong password file. Every agent checks its own
# source and target (followers too) and shows it in status; made leader with
# `cluster transfer 1`, agent 1 hands leadership to an agent whose source
# works within a few seconds, and a change made in slapd reaches the target.
# Fixing agent 1's password file turns its health ok without a restart. The
# wrong password never appears in any log.
source "$(dirname "$0")/../fixtures/sync.sh"
dir=$(fixture_tmpdir)

sync_setup 50 5
for i in 1 2 3; do agent_ports $i; done
members="[\"1@${AGENT_RAFT[1]}\", \"2@${AGENT_RAFT[2]}\", \"3@${AGENT_RAFT[3]}\"]"
for i in 1 2 3; do sync_agent_config $i "$members"; done
BAD_PW=not-the-admin-password-7f3a91
# Each agent its own password file (an operator's copy); agent 1's is wrong.
for i in 1 2 3; do
	(umask 077; cat "$SLAPD_PW_FILE" >"$dir/agent$i-ldap.secret")
	sed -i "s|password_file: .*|password_file: $dir/agent$i-ldap.secret|" "$dir/agent$i.yaml"
	grep -q "password_file: $dir/agent$i-ldap.secret" "$dir/agent$i.yaml" || fail "could not give agent $i its own password file"
done
PW1=$dir/agent1-ldap.secret
(umask 077; printf '%s' "$BAD_PW" >"$PW1")
for i in 1 2 3; do agent_start $i; done

st_of() { json_eval "$(agent_status "$1" 2>/dev/null || echo '{}')" "$2"; }
metric_of() { curl -sf --max-time 5 "http://${AGENT_CTL[$1]}/metrics" | awk -v m="$2" '$1==m{print $2}'; }
health_is() { [ "$(st_of "$1" "(j.health||{source:{}}).source.state")" = "$2" ]; }
leader_is_not_1() { L=$(idle_leader 2 3) && [ -n "$L" ] && [ "$(st_of 1 'j.role')" != leader ]; }

# Every node knows its own health; the bad one says why.
wait_until 20 health_is 1 unauthorized || fail "agent 1 health.source: $(st_of 1 'j.health')"
for i in 2 3; do wait_until 20 health_is $i ok || fail "agent $i health.source: $(st_of $i 'j.health')"; done
[ "$(st_of 1 'j.health.target.state')" = ok ] || fail "agent 1 health.target: $(st_of 1 'j.health.target')"
st_of 1 'j.health.source.detail' | grep -qi 'credentials' || fail "agent 1 detail: $(st_of 1 'j.health.source.detail')"
[ "$(metric_of 1 canopy_source_up)" = 0 ] && [ "$(metric_of 2 canopy_source_up)" = 1 ] &&
	[ "$(metric_of 1 canopy_target_up)" = 1 ] || fail "canopy_source_up/canopy_target_up gauges wrong"
pass "each agent reports its own health: 1 source unauthorized ($(st_of 1 'j.health.source.detail')), 2 and 3 ok"

# Whoever leads first, the leader ends up a node whose source works.
wait_until 30 leader_is_not_1 || fail "no idle leader among 2 and 3: 1=$(agent_status 1) 2=$(agent_status 2)"
wait_until 20 sync_compare || fail "initial sync incomplete"
pass "initial sync done by leader $L"

# Make agent 1 leader: it must hand over by itself, within a few seconds.
before=$(metric_of 1 canopy_became_leader_total)
t0=$EPOCHREALTIME
out=$("$CANOPYCTL" --server "${AGENT_CTL[$L]}" cluster transfer 1) || fail "cluster transfer 1: $out"
led_1() { [ "$(metric_of 1 canopy_became_leader_total)" -gt "$before" ]; }
wait_until 10 led_1 || fail "agent 1 never became leader: $out"
wait_until 15 leader_is_not_1 || fail "agent 1 kept leadership: 1=$(agent_status 1)"
t1=$EPOCHREALTIME
ms=$(awk "BEGIN{printf \"%d\", ($t1-$t0)*1000}")
bad_for=$(grep -o 'msg="leadership handed over[^"]*".*bad_for_ms=[0-9]*' "$dir/agent1.log.tmp" | tail -n 1 | grep -o 'bad_for_ms=[0-9]*')
echo "transfer to agent 1 -> idle leader $L elsewhere: $ms ms (observed by polling); agent 1 logged $bad_for"
[ "$ms" -lt 8000 ] || fail "hand-over took $ms ms"
[ "$(metric_of 1 canopy_health_handovers_total)" -ge 1 ] || fail "agent 1 counted no health hand-over"
grep -q 'level=warn.*msg="this leader cannot use its source or target' "$dir/agent1.log.tmp" ||
	fail "agent 1 did not log why it hands over"
pass "agent 1 led, found its source unusable and handed leadership to agent $L in $ms ms"

# The sync goes on under the new leader.
slapd_ldapmodify <<LDIF >/dev/null
dn: uid=user00003,ou=people,$SLAPD_BASE
changetype: modify
replace: sn
sn: AfterHandOver
LDIF
sn_of3() { [ "$(scim_ctl GET store | json_get "(j.Users.find(u=>u.userName==='user00003')||{name:{}}).name.familyName")" = AfterHandOver ]; }
wait_until 15 sn_of3 || fail "change did not reach the target after the hand-over: $(agent_status "$L")"
wait_until 15 sync_compare || fail "target differs from source"
pass "a change made in slapd reached the target through leader $L"

# No transfer loop: agent 1 did not come back, the cluster verdict is ok everywhere.
cl() { [ "$(st_of "$1" '(j.cluster_health||{}).source')" = ok ]; }
for i in 1 2 3; do
	wait_until 15 cl $i || fail "agent $i cluster_health: $(st_of $i 'j.cluster_health')"
done
[ "$(st_of 1 'j.role')" = follower ] || fail "agent 1 role: $(st_of 1 'j.role')"
health_is 1 unauthorized || fail "agent 1 health after hand-over: $(st_of 1 'j.health')"
"$CANOPYCTL" --server "${AGENT_CTL[1]}" status | grep -q '^health    source unauthorized, target ok' ||
	fail "canopyctl status: $("$CANOPYCTL" --server "${AGENT_CTL[1]}" status)"
pass "agent 1 stays follower with health.source unauthorized; cluster_health.source ok on every node"

# Fix the password file: agent 1 recovers without a restart.
pid1=${AGENT_PID[1]}
(umask 077; cat "$SLAPD_PW_FILE" >"$PW1.new") && mv "$PW1.new" "$PW1"
wait_until 15 health_is 1 ok || fail "agent 1 health after the fix: $(st_of 1 'j.health')"
kill -0 "$pid1" || fail "agent 1 is not running"
grep -q 'msg="source check ok"' "$dir/agent1.log.tmp" || fail "agent 1 did not log its recovery"
pass "fixed password file: agent 1 health.source ok, same process ($pid1)"

# The leader's password file goes wrong while it leads (its sync session is
# bound already and notices nothing): its own probes see it, and it hands
# over within a few seconds; the sync goes on.
old_L=$L
(umask 077; printf '%s' "$BAD_PW" >"$dir/agent$L-ldap.secret.new") && mv "$dir/agent$L-ldap.secret.new" "$dir/agent$L-ldap.secret"
t0=$EPOCHREALTIME
moved() { L=$(idle_leader 1 2 3) && [ "$L" != "$old_L" ]; }
wait_until 20 moved || fail "leader $old_L kept leadership with a wrong password file: $(agent_status "$old_L")"
t1=$EPOCHREALTIME
ms=$(awk "BEGIN{printf \"%d\", ($t1-$t0)*1000}")
echo "password file of leader $old_L broken -> idle leader $L: $ms ms (probe period 5 s, confirmation 1 s)"
[ "$ms" -lt 10000 ] || fail "hand-over took $ms ms"
slapd_ldapmodify <<LDIF >/dev/null
dn: uid=user00004,ou=people,$SLAPD_BASE
changetype: modify
replace: sn
sn: AfterSecondHandOver
LDIF
wait_until 15 sync_compare || fail "target differs from source after the second hand-over"
pass "leader $old_L's password file broke: leader $L took over in $ms ms; the sync goes on"

# Secrets stay secret.
if grep -rl -- "$BAD_PW" "$dir"/agent*.log* >/dev/null 2>&1; then fail "the password appears in a log"; fi
if grep -rl -- "$(cat "$SLAPD_PW_FILE")" "$dir"/agent*.log* >/dev/null 2>&1; then fail "the password appears in a log"; fi
pass "no password in any agent log"

# Every agent stops cleanly (a probe may be on a worker thread at that moment).
for i in 1 2 3; do
	agent_stop $i
	[ "$AGENT_RC" = 0 ] || fail "agent $i exited with $AGENT_RC"
done
if grep -l 'AddressSanitizer\|LeakSanitizer\|runtime error' "$dir"/agent*.log; then fail "sanitizer report in an agent log"; fi
pass "all agents stopped cleanly"
