#!/usr/bin/env bash
# chaos-tests/scenarios/clock-jump-retry.sh [--long [SECS]] -- a change
# waits in the retry set while leadership moves between agents whose wall
# clocks disagree by an hour (an NTP step, a VM restored from a snapshot).
# clock-jump.sh steps clocks and watches leadership and fencing; this one
# aims at what is replicated in wall-clock time.
#
# Every agent runs under libfaketime (scripts/install-deps.sh) with its own
# offset file; only the wall clock (CLOCK_REALTIME, time(), gettimeofday)
# moves: FAKETIME_DONT_FAKE_MONOTONIC=1, since no real clock steps
# CLOCK_MONOTONIC, which the lease and libuv's timers use. The retry set's
# schedule is replicated wall-clock time (`r:` next try,
# sync/engine/retryset.c), so a change waiting for the target is what a
# clock step can strand. Per round, for an offset of +1 h and then -1 h:
#   1. the leader's clock is stepped to OFFSET; the target refuses (503) every
#      write of one user (user00001), whose givenName is then changed, so the
#      change goes to the retry set (target.max_attempts 2 here);
#   2. leadership is transferred (`canopyctl cluster transfer`) to an agent
#      with the right clock, resp. from it to an agent with the stepped
#      clock; the target takes writes again;
#   3. the change must reach the target within 20 s (the retry backoff starts
#      at 1 s); every clock is put right again.
# The verdict (chaos-tests/check.sh) wants nothing lost, duplicated or stale.
#
# Short mode: one round. Long mode: rounds until SECS are over.
# Env: CHAOS_T (election_timeout_ms, default 1000), CHAOS_RATE (default 20),
# CHAOS_CLOCK_STEP (seconds, default 3600).
source "$(dirname "$0")/../lib/scenario.sh"
scenario_init clock-jump-retry "$@"

T=${CHAOS_T:-1000}
STEP=${CHAOS_CLOCK_STEP:-3600}
export ELECTION_TIMEOUT_MS=$T HEARTBEAT_MS=$((T / 10)) TARGET_MAX_ATTEMPTS=2
dir=$(fixture_tmpdir)
# the thread-safe variant: the agent has worker threads
FAKETIME_LIB=${LIBFAKETIME:-$(ls /usr/lib/*/faketime/libfaketimeMT.so.1 2>/dev/null | head -n 1)}
[ -n "$FAKETIME_LIB" ] || fail "libfaketime is not installed (scripts/install-deps.sh)"
for i in 1 2 3; do echo "+0" >"$dir/clock$i"; done
# Re-read the offset file at most once a second (FAKETIME_CACHE_DURATION).
export CHAOS_AGENT_WRAP="env LD_PRELOAD=$FAKETIME_LIB FAKETIME_TIMESTAMP_FILE=$dir/clock@ID@ FAKETIME_CACHE_DURATION=1 FAKETIME_DONT_FAKE_MONOTONIC=1"
chaos_cluster 3
chaos_workload_start "${CHAOS_RATE:-20}"
sleep 2

ctl() { "$CANOPYCTL" --server "${AGENT_CTL[$(host_leader)]}" --token-file "$CHAOS_CONTROL_TOKEN" "$@"; }
status_of() { json_eval "$(agent_status "$1" 2>/dev/null || echo '{}')" "$2"; }
clock() { echo "$2" >"$dir/clock$1"; }
user1() { scim_ctl GET store | json_get 'j.Users.find((u) => u.userName === "user00001")'; }

round=0
jump_round() { # OFFSET (+S or -S): which way the leader's clock goes
	local off=$1 L N rest=() i uid given out k got
	round=$((round + 1))
	wait_for 30 host_leader || { chaos_bad "round $round: no ready leader"; return 1; }
	L=$(host_leader)
	for i in 1 2 3; do [ "$i" != "$L" ] && rest+=("$i"); done
	N=${rest[0]}
	uid=$(user1 | json_get 'j.id')
	[ -n "$uid" ] && [ "$uid" != undefined ] || { chaos_bad "round $round: user00001 is not in the target"; return 1; }

	# The leader L writes the retry record, N retries it after the transfer:
	# +S steps L's clock ahead (a record from the future), -S steps N's back
	# (it reads a record from its future).
	local writer=$L reader=$N
	if [ "${off:0:1}" = - ]; then clock "$N" "$off"; else clock "$L" "$off"; fi
	sleep 1.5 # the offset file is re-read within a second
	scim_fault "{\"status\":503,\"count\":-1,\"methods\":[\"PUT\",\"PATCH\"],\"match\":\"/Users/$uid\"}"
	given="Clock$round$RANDOM"
	printf 'dn: uid=user00001,ou=people,%s\nchangetype: modify\nreplace: givenName\ngivenName: %s\n\n' "$SLAPD_BASE" "$given" |
		ldapmodify -x -H "$SLAPD_URL" -D "$SLAPD_ADMIN_DN" -y "$SLAPD_PW_FILE" >/dev/null || chaos_bad "round $round: ldapmodify failed"
	_retrying() { [ "$(status_of "$L" 'j.sync.retrying')" -ge 1 ] 2>/dev/null; }
	wait_for 20 _retrying || chaos_bad "round $round: the refused change never reached the retry set: $(status_of "$L" 'j.sync')"
	out=$(ctl cluster transfer "$N" 2>&1) || chaos_bad "round $round: transfer to $N: $out"
	_moved() { [ "$(host_leader)" = "$N" ]; }
	wait_for 15 _moved || chaos_bad "round $round: $N is not the ready leader after the transfer (leader $(host_leader || echo none))"
	scim_fault '{}'
	k=$(now_ms)
	_arrived() { [ "$(user1 | json_get 'j.name && j.name.givenName')" = "$given" ]; }
	if wait_for 20 _arrived; then
		got="arrived after $(($(now_ms) - k)) ms"
	else
		got="NOT arrived after 20 s (retrying: $(status_of "$N" 'j.sync.retrying'))"
		chaos_bad "round $round: a change in the retry set, written by agent $writer with its clock at $(cat "$dir/clock$writer"), was not retried by agent $reader (clock $(cat "$dir/clock$reader")) within 20 s after the target took writes again"
	fi
	# evidence that the step took: the stepped agent's last provisioning log
	# entry (written while it led) carries its wall clock
	local stepped wall
	stepped=$([ "${off:0:1}" = - ] && echo "$N" || echo "$L")
	wall=$(tail -n 1 "$dir/data$stepped/provisioning.log" 2>/dev/null | sed -n 's/^{"time":"\([^"]*\)".*/\1/p')
	say "round $round: clock $off on agent $stepped (its last provisioning log entry: ${wall:-none}; real now $(date -u +%FT%TZ)); retry record written by $writer, leader now $N: the change $got"
	for i in 1 2 3; do clock "$i" "+0"; done
	sleep 1.5
}

if [ "$CHAOS_LONG" = 1 ]; then
	while [ "$(chaos_elapsed_s)" -lt "$CHAOS_DURATION" ]; do jump_round "+$STEP" || break; jump_round "-$STEP" || break; done
else
	jump_round "+$STEP" && jump_round "-$STEP"
fi
chaos_verdict
