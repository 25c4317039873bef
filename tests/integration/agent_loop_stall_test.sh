#!/usr/bin/env bash
# A blocked event loop is seen (agent/loop_watch.h): a node whose loop could
# not run for longer than a quarter of the election timeout counts a stall,
# reports it in status (loop.stalls, loop.lag_max_ms) and /metrics
# (canopy_loop_stalls_total, canopy_loop_lag_max_ms), and logs it once at
# warn with how long. The stall is made with SIGSTOP (the loop cannot tell a
# stopped process from a callback that held it); an ordinary idle node counts
# none.
source "$(dirname "$0")/../fixtures/sync.sh" # wait_until

ELECTION_TIMEOUT_MS=1000
agent_ports 1
agent_config 1 "[\"1@${AGENT_RAFT[1]}\"]"
agent_start 1
wait_role 1 leader 10 || fail "single node did not become a ready leader"
st() { json_eval "$(agent_status 1)" "$1"; }
[ "$(st 'j.loop.stall_threshold_ms')" = 250 ] || fail "stall threshold: $(st 'JSON.stringify(j.loop)')"
[ "$(st 'j.loop.stalls')" = 0 ] || fail "an idle node counted stalls: $(st 'JSON.stringify(j.loop)')"
pass "an idle node: no stall, threshold a quarter of the election timeout (250 ms)"

# the fault itself: the process cannot run for 700 ms
kill -STOP "${AGENT_PID[1]}"
sleep 0.7
kill -CONT "${AGENT_PID[1]}"
wait_until 10 eval '[ "$(st "j.loop.stalls >= 1 && j.loop.lag_max_ms >= 600")" = true ]' ||
	fail "the stopped loop was not seen: $(st 'JSON.stringify(j.loop)')"
m=$(curl -sf "http://${AGENT_CTL[1]}/metrics") || fail "/metrics"
grep -q '^canopy_loop_stalls_total [1-9]' <<<"$m" || fail "metrics: $(grep canopy_loop <<<"$m")"
grep -Eq '^canopy_loop_lag_max_ms ([6-9][0-9]{2}|[0-9]{4,})$' <<<"$m" || fail "metrics: $(grep canopy_loop <<<"$m")"
line=$(agent_logs 1 | grep 'msg="the event loop was blocked' | head -n1)
[[ $line =~ blocked_ms=([0-9]+) ]] && [ "${BASH_REMATCH[1]}" -ge 600 ] || fail "log: $line"
pass "a 700 ms stop: counted, lag_max_ms $(st 'j.loop.lag_max_ms'), in /metrics, and logged: $line"
