#!/usr/bin/env bash
# Entra ID at scale: 3 agents export slapd's users and 100 groups with nested
# membership (3-level chains of groups in groups, gen-ldif.sh NESTED) to the
# Graph fixture, no request budget. The leader is SIGKILLed during the
# initial sync (and restarted); everything lands and the end-to-end checker
# (chaos-tests/check.sh --target entra) passes: Graph equals the directory as
# mapped, no object created twice, no write of an older term after a newer
# term's first write. Then a modify, a disable, a delete and a membership
# change each arrive, and the checker passes again.
#
# Size: 2,000 users in CI (the whole run ~65 s on the shared 2-core machine);
# CANOPY_SCALE=1 for 5,000 (ENTRA_SCALE_USERS=N for any other), which needs
# more than ctest's 300 s: (cd build && CANOPY_SCALE=1 ctest --timeout 1200
# -R entra_scale -V). Prints the initial sync's wall time and objects a
# second ("figures:" line).
source "$(dirname "$0")/../fixtures/entra.sh"
dir=$(fixture_tmpdir)
CHAOS=$CANOPY_SOURCE_DIR/chaos-tests

N=${ENTRA_SCALE_USERS:-$([ "${CANOPY_SCALE:-}" = 1 ] && echo 5000 || echo 2000)}
G=100
slapd_start "$N" "$G" 1
graph_start
for i in 1 2 3; do agent_ports $i; done
members="[\"1@${AGENT_RAFT[1]}\", \"2@${AGENT_RAFT[2]}\", \"3@${AGENT_RAFT[3]}\"]"
# the in-doubt repair after the kill waits target.timeout_ms + T
export DELETE_THRESHOLD=100000 TARGET_TIMEOUT_MS=5000
for i in 1 2 3; do entra_config $i "$(entra_secret_auth)" "$members"; done
t0=$EPOCHREALTIME
for i in 1 2 3; do agent_start $i; done
wait_until 15 ready_leader 1 2 3 || fail "no leader"
L=$(ready_leader 1 2 3)
n_users() { graph_ctl GET stats | json_get 'j.users'; }
quarter() { [ "$(n_users)" -ge $((N / 4)) ]; }
wait_secs 120 quarter || fail "the initial sync did not get to $((N / 4)) users: $(n_users)"
agent_stop "$L" KILL
at_kill=$(n_users)
[ "$at_kill" -lt "$N" ] || fail "the initial sync was over before the kill ($at_kill users)"
rest=(); for i in 1 2 3; do [ "$i" != "$L" ] && rest+=("$i"); done
wait_until 15 ready_leader "${rest[@]}" || fail "no new leader after killing $L"
agent_start "$L"

all() { [ "$(n_users)" = "$N" ] && [ "$(graph_ctl GET stats | json_get 'j.groups')" = "$G" ]; }
wait_secs 600 all || fail "the initial sync did not finish: $(n_users) of $N users"
t1=$EPOCHREALTIME
wait_secs 120 entra_compare || fail "Graph differs from the source: $(entra_compare | head -n 8)"
secs=$(awk "BEGIN{printf \"%.1f\", $t1 - $t0}")
rate=$(awk "BEGIN{printf \"%.0f\", ($N + $G) / ($t1 - $t0)}")
echo "figures: $N users + $G groups (nested) with 3 agents, leader killed at $at_kill users: initial sync ${secs} s, $rate objects/s"

check() { # NAME: the checker's verdict line in $LAST, output printed
	local rc=0
	"$CHAOS/check.sh" --target entra --graph "$GRAPH_URL" --audit-url "$GRAPH_AUDIT" --ldap-url "$SLAPD_URL" \
		--bind-dn "$SLAPD_ADMIN_DN" --password-file "$SLAPD_PW_FILE" --config "$dir/agent1.yaml" --settle 120 \
		--status "${AGENT_CTL[1]}" "${AGENT_CTL[2]}" "${AGENT_CTL[3]}" >"$dir/check-$1.out" 2>&1 || rc=$?
	LAST=$(tail -n 1 "$dir/check-$1.out")
	sed "s/^/  [$1] /" "$dir/check-$1.out"
	[ "$rc" = 0 ] && [[ $LAST == "chaos: PASS lost=0 dup=0 stale=0 cursor_back=0 digest=equal "* ]]
}
check initial || fail "the checker after the initial sync: $LAST"
pass "initial sync of $N users and $G groups, leader $L killed at $at_kill users: $(entra_compare); $LAST"

# a modify, a disable, a delete and a membership change, each arriving
gone=$(graph_user_id user00009@example.com)
g3=$(graph_group_id group0003)
u10=$(graph_user_id user00010@example.com)
u2=$(graph_user_id user00002@example.com)
graph_members "$g3" | grep -qx "$u2" || fail "user00002 should start in group0003"
slapd_ldapmodify >/dev/null <<LDIF
dn: uid=user00005,ou=people,$SLAPD_BASE
changetype: modify
replace: givenName
givenName: Renamed

dn: uid=user00007,ou=people,$SLAPD_BASE
changetype: modify
add: employeeType
employeeType: disabled

dn: uid=user00009,ou=people,$SLAPD_BASE
changetype: delete

dn: cn=group0003,ou=groups,$SLAPD_BASE
changetype: modify
add: member
member: uid=user00010,ou=people,$SLAPD_BASE
-
delete: member
member: uid=user00002,ou=people,$SLAPD_BASE
LDIF
user_is() { graph_dump users | json_get "JSON.stringify((j.find(u=>u.mailNickname==='$1') || {})['$2'] ?? null)" | grep -qxF -- "$3"; }
wait_secs 60 user_is user00005 givenName '"Renamed"' || fail "the modify did not arrive"
wait_secs 30 user_is user00007 accountEnabled false || fail "the disable did not arrive"
no9() { [ -z "$(graph_user_id user00009@example.com)" ]; }
wait_secs 30 no9 || fail "the delete did not arrive"
graph_wait_audit "a.method === 'DELETE' && a.path === '/v1.0/users/$gone' && a.status === 204" 5
moved() { graph_members "$g3" | grep -qx "$u10" && ! graph_members "$g3" | grep -qx "$u2"; }
wait_secs 30 moved || fail "the membership change did not arrive: $(graph_members "$g3" | wc -l) members"
check changes || fail "the checker after the changes: $LAST"
pass "modify, disable, delete and membership change arrived: $LAST"
