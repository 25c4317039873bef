#!/usr/bin/env bash
# Secrets never reach a log: a 3-node syncing cluster with known secret
# values (the bind password, the SCIM token, the control token) runs, moves
# its leadership and exports; then no agent log line and no provisioning log
# line contains any of them. Followers report their health to the leader
# with the control token (POST /v1/health/report).
source "$(dirname "$0")/../fixtures/sync.sh"
dir=$(fixture_tmpdir)

sync_setup 30 3
ctl_token=ctl-$RANDOM$RANDOM-secret-value
(umask 077; printf '%s\n' "$ctl_token" >"$dir/control.token")
agent_ports 1; agent_ports 2; agent_ports 3
members="[\"1@${AGENT_RAFT[1]}\", \"2@${AGENT_RAFT[2]}\", \"3@${AGENT_RAFT[3]}\"]"
for i in 1 2 3; do
	sync_agent_config $i "$members"
	printf 'control:\n  token_file: %s\n' "$dir/control.token" >>"$dir/agent$i.yaml"
done
for i in 1 2 3; do agent_start $i; done
wait_until 30 idle_leader 1 2 3 || fail "no idle leader"
l=$(idle_leader 1 2 3)
wait_until 20 sync_compare || fail "target differs from the directory"
# a change, a hand-over, a refused request with a wrong token
slapd_ldapmodify <<LDIF >/dev/null
dn: uid=user1,ou=people,$SLAPD_BASE
changetype: modify
replace: sn
sn: Changed
LDIF
wait_until 20 sync_compare || fail "change not exported"
CANOPY_TOKEN_FILE=$dir/control.token "$CANOPYCTL" --server "${AGENT_CTL[$l]}" cluster transfer >/dev/null ||
	fail "transfer"
curl -s -o /dev/null -X POST -H 'Content-Type: application/json' -H "Authorization: Bearer x$ctl_token" \
	--data '{}' "http://${AGENT_CTL[$l]}/v1/deletes/approve"
sleep 6 # one health round: followers report to the leader with the token
wait_until 30 idle_leader 1 2 3 || fail "no idle leader after the transfer"
l=$(idle_leader 1 2 3)
f=$(( l % 3 + 1 ))
wait_until 15 bash -c "curl -sf 'http://${AGENT_CTL[$f]}/v1/status' | grep -q '\"cluster_health\":{\"source\":\"ok\"'" ||
	fail "follower $f has no verdict from the leader: its report was refused? $(agent_status "$f")"
for i in 1 2 3; do
	! grep -q 'health/report.*401\|HTTP 401' "$dir/agent$i.log.tmp" || fail "agent $i: a 401 was logged"
done
for i in 1 2 3; do agent_stop $i TERM; done

bind_pw=$(tr -d '\r\n' <"$SLAPD_PW_FILE")
scim_token=$(tr -d '\r\n' <"$SCIM_TOKEN_FILE")
[ -n "$bind_pw" ] && [ -n "$scim_token" ] || fail "fixture secrets are empty"
logs=("$dir"/agent*.log "$dir"/data*/provisioning.log)
lines=$(cat "${logs[@]}" | wc -l)
[ "$lines" -gt 20 ] || fail "too few log lines to judge ($lines)"
for secret in "$bind_pw" "$scim_token" "$ctl_token"; do
	if grep -F -l -- "$secret" "${logs[@]}"; then fail "a secret value is in a log (above)"; fi
done
pass "no secret in $lines agent and provisioning log lines"
