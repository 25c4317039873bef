#!/usr/bin/env bash
# The chaos suite's hosts and fault proxy do what the scenarios rely on
# (chaos-tests/lib/hosts.sh, chaos-tests/proxy/faultproxy.c):
#   1. a run killed with SIGKILL leaves its namespaces, bridge, record and temp
#      dir behind; the next run's setup removes them, and leaves a live run's
#      alone;
#   2. an agent namespace reaches the target through the proxy on the bridge;
#      `delay` delays, `stall` holds, `reset_new` resets, `clear` restores;
#   3. host_partition drops traffic between two namespaces, hosts_heal
#      restores it; host_loss 100 drops everything between agents.
# Needs root, iproute2 and nftables (scripts/install-deps.sh).
source "$(dirname "$0")/../../chaos-tests/lib/hosts.sh"
dir=$(fixture_tmpdir)

# 1. a dead run's leftovers
cat >"$dir/victim.sh" <<EOF
FIXTURE_TMP=\$(mktemp -d /tmp/canopy-test.XXXXXX)
source "$CANOPY_SOURCE_DIR/chaos-tests/lib/hosts.sh"
hosts_setup 2
echo "\$CHAOS_ID \$FIXTURE_TMP" >"$dir/victim.id"
sleep 600
EOF
setsid bash "$dir/victim.sh" >"$dir/victim.log" 2>&1 &
victim=$!
wait_until 30 test -s "$dir/victim.id" || fail "the victim run did not set up: $(tail -n 5 "$dir/victim.log")"
read -r vid vtmp <"$dir/victim.id"
kill -KILL -- -"$victim"
wait "$victim" 2>/dev/null
ip netns list | grep -q "^$vid-h1" || fail "the killed run's namespace $vid-h1 is not there (nothing to test)"
[ -f "$CHAOS_REG/$vid" ] || fail "the killed run has no record in $CHAOS_REG"
pass "a SIGKILLed run leaves $vid-h1, its bridge and its record"

hosts_setup 2
ip netns list | grep -q "^$vid-" && fail "the dead run's namespaces are still there: $(ip netns list | grep "^$vid-")"
ip link show "${vid}br" >/dev/null 2>&1 && fail "the dead run's bridge ${vid}br is still there"
[ -e "$CHAOS_REG/$vid" ] && fail "the dead run's record is still there"
[ -d "$vtmp" ] && fail "the dead run's temp dir $vtmp is still there"
[ -f "$CHAOS_REG/$CHAOS_ID" ] || fail "this run has no record"
pass "the next setup removed the dead run's namespaces, bridge, record and temp dir"

# 2. the proxy, from an agent's namespace
get() { # prints "HTTP_CODE SECONDS" of GET ServiceProviderConfig from host 1
	ip netns exec "$CHAOS_ID-h1" curl -s -o /dev/null -m "${1:-5}" -w '%{http_code} %{time_total}' \
		-H "Authorization: Bearer $SCIM_TOKEN" "$CHAOS_SCIM_URL/ServiceProviderConfig"
}
read -r code t <<<"$(get)"
[ "$code" = 200 ] || fail "host 1 cannot reach the target through the proxy: $code"
chaos_proxy scim "delay 400" >/dev/null || fail "proxy refused delay"
read -r code t <<<"$(get)"
[ "$code" = 200 ] && awk -v t="$t" 'BEGIN{exit !(t >= 0.8)}' || fail "delay 400: $code after $t s (want 200 after >= 0.8 s: 400 ms each way)"
pass "delay 400: answered after $t s"
chaos_proxy scim clear >/dev/null
chaos_proxy scim "stall on" >/dev/null
read -r code t <<<"$(get 2)"
[ "$code" = 000 ] || fail "stall: answered $code"
chaos_proxy scim "stall off" >/dev/null
chaos_proxy scim "reset_new 100" >/dev/null
rc=0; ip netns exec "$CHAOS_ID-h1" curl -s -o /dev/null -m 5 "$CHAOS_SCIM_URL/ServiceProviderConfig" || rc=$?
[ "$rc" = 56 ] || [ "$rc" = 52 ] || [ "$rc" = 7 ] || fail "reset_new 100: curl exit $rc (want a reset)"
chaos_proxy scim clear >/dev/null
read -r code t <<<"$(get)"
[ "$code" = 200 ] || fail "after clear: $code"
stats=$(chaos_proxy scim stats)
[[ $stats == *resets=* ]] || fail "stats: $stats"
pass "stall holds, reset_new resets, clear restores ($stats)"

# 3. partitions and loss between namespaces
# something that listens in each namespace: a proxy on port 9000 (no ping here)
for i in 1 2; do
	spawn "listener$i" "$dir/listener$i.log" ip netns exec "$CHAOS_ID-h$i" "$FAULTPROXY" \
		--listen "${CHAOS_IP[$i]}:9000" --to "$CHAOS_BRIDGE_IP:8080"
done
reach() { ip netns exec "$CHAOS_ID-h$1" timeout 2 bash -c "exec 3<>/dev/tcp/${CHAOS_IP[$2]}/9000" 2>/dev/null; }
wait_until 10 reach 1 2
reach 1 2 || fail "host 1 cannot reach host 2"
host_partition 1 2
reach 1 2 && fail "host 1 reaches host 2 across the partition"
reach 2 1 && fail "host 2 reaches host 1 across the partition"
read -r code t <<<"$(get)"
[ "$code" = 200 ] || fail "a partition between agents must leave the target reachable: $code"
hosts_heal
reach 1 2 || fail "host 1 cannot reach host 2 after healing"
host_loss 1 100
reach 1 2 && fail "host 1 reaches host 2 through 100 % loss"
hosts_heal
host_isolate 1
read -r code t <<<"$(get 2)"
[ "$code" = 000 ] || fail "an isolated host reaches the target: $code"
hosts_heal
reach 1 2 || fail "host 1 cannot reach host 2 after healing"
pass "partition, loss and isolation drop what they should, heal restores"
