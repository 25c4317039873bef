#!/usr/bin/env bash
# Started by a service manager with Type=notify (NOTIFY_SOCKET, WATCHDOG_USEC
# set), the agent sends READY=1 once its control API answers, WATCHDOG=1
# every half WATCHDOG_USEC from its event loop, and STOPPING=1 on SIGTERM
# (sd_notify(3)); a watchdog meant for another process (WATCHDOG_PID) is
# not pinged.
source "$(dirname "$0")/../fixtures/agent.sh"
source "$(dirname "$0")/../fixtures/sync.sh" # wait_until
dir=$(fixture_tmpdir)

sock=$dir/notify.sock
spawn notify "$dir/notify.out" "$CANOPY_BUILD_DIR/tests/notify_listen" "$sock"
wait_until 10 grep -q '^listening$' "$dir/notify.out" || fail "notify_listen did not bind $sock"

agent_ports 1
CLUSTER_BOOTSTRAP=true agent_config 1 "[\"1@${AGENT_RAFT[1]}\"]"
NOTIFY_SOCKET=$sock WATCHDOG_USEC=400000 agent_start 1
wait_until 20 grep -q '^READY=1' "$dir/notify.out" || fail "no READY=1: $(cat "$dir/notify.out")"
# READY means the control API answers: ask it right away, no retry
curl -sf "http://${AGENT_CTL[1]}/v1/status" >/dev/null || fail "READY=1 sent before the control API answers"
[ "$(sed -n 2p "$dir/notify.out" | cut -d'|' -f1)" = READY=1 ] ||
	fail "the first notice is not READY=1: $(cat "$dir/notify.out")"
pass "READY=1 first, and the control API answers then"

pings() { [ "$(grep -c '^WATCHDOG=1$' "$dir/notify.out")" -ge "$1" ]; }
wait_until 10 pings 5 || fail "fewer than 5 WATCHDOG=1 in 10 s at WATCHDOG_USEC=400000: $(cat "$dir/notify.out")"
grep -q 'service manager watchdog.*interval_ms=400 ping_ms=200' "$dir/agent1.log.tmp" ||
	fail "the agent did not log its watchdog interval: $(grep watchdog "$dir/agent1.log.tmp")"
pass "WATCHDOG=1 every 200 ms"

agent_stop 1 TERM
[ "$AGENT_RC" = 0 ] || fail "exit code $AGENT_RC after SIGTERM"
grep -q '^STOPPING=1$' "$dir/notify.out" || fail "no STOPPING=1 on SIGTERM: $(cat "$dir/notify.out")"
pass "STOPPING=1 on SIGTERM, exit 0"

# WATCHDOG_PID of another process: READY=1 still, but no pings
: >"$dir/notify.out"
NOTIFY_SOCKET=$sock WATCHDOG_USEC=100000 WATCHDOG_PID=1 agent_start 1
wait_until 20 grep -q '^READY=1' "$dir/notify.out" || fail "no READY=1 on the second start"
# The marker that a ping would have come: the watchdog is decided right
# after READY=1, before the loop runs, and its first ping is due at once --
# libuv runs due timers before it polls, so by the time the loop answers a
# status request, a watchdog set up would have pinged.
curl -sf "http://${AGENT_CTL[1]}/v1/status" >/dev/null || fail "no status on the second start"
! grep -q '^WATCHDOG=1$' "$dir/notify.out" || fail "pinged a watchdog meant for pid 1"
! grep -q 'service manager watchdog' "$dir/agent1.log.tmp" || fail "set up a watchdog meant for pid 1"
agent_stop 1 TERM
pass "no ping for a watchdog of another process (WATCHDOG_PID)"
