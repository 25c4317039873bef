#!/usr/bin/env bash
# chaos-tests/scenarios/leader-kill.sh [--long [SECS]] -- SIGKILL the leader,
# again and again: once during the initial sync, then under a steady change
# stream. Each killed agent is restarted and must rejoin before the next kill.
#
# Short mode: 1 kill during the initial sync + 3 under changes. Long mode:
# kills until SECS are over (or CHAOS_KILLS kills under changes, if set). Env: CHAOS_T
# (election_timeout_ms, default 1000), CHAOS_KILLS, CHAOS_RATE (changes a
# second, default 20), CHAOS_EARLY (early_election, default true: a crash is
# detected by the refused leader watch; false: by the election timeout).
#
# CHAOS_TARGET=entra: against the Graph fixture (entra-leader-kill.sh).
#
# Measured per kill (printed, and as a table at the end):
#   kill -> new leader        the survivor's own log line "acting as leader"
#                             (after its barrier) of a term above the old one
#   kill -> export resumed    the target's audit's first 2xx write of that term
#                             (the target's clock; same machine)
# Fails on the checker's verdict, an agent crash, a kill after which no new
# leader is ready within 10 s or nothing is written in its term within 15 s,
# or a killed agent that does not rejoin.
source "$(dirname "$0")/../lib/scenario.sh"
scenario_init "$([ "$CHAOS_TARGET" = entra ] && echo entra-leader-kill || echo leader-kill)" "$@"

T=${CHAOS_T:-1000}
export ELECTION_TIMEOUT_MS=$T HEARTBEAT_MS=${CHAOS_HB:-$((T / 10))}
export EARLY_ELECTION=${CHAOS_EARLY:-true}
CHAOS_USERS=${CHAOS_USERS:-1000}
CHAOS_WAIT_INITIAL=0 chaos_cluster 3
AUDIT=${SCIM_AUDIT:-}
[ "$CHAOS_TARGET" = entra ] && AUDIT=$GRAPH_AUDIT
dir=$(fixture_tmpdir)
ROUNDS=$dir/rounds.tsv
printf 'round\tphase\tkilled\told_term\tnew_leader\tnew_term\tkill_to_leader_ms\tkill_to_write_ms\n' >"$ROUNDS"

iso_ms() { date -u -d "$1" +%s%3N; }

# acting_after TERM NODES...: "NODE TERM MS" of the first "acting as leader"
# of a term above TERM in those nodes' logs.
acting_after() {
	local term=$1 i line best=""; shift
	for i in "$@"; do
		while IFS= read -r line; do
			if [[ $line =~ ^time=([^ ]+)\ .*node=([0-9]+)\ msg=\"acting\ as\ leader\"\ term=([0-9]+) ]] &&
				[ "${BASH_REMATCH[3]}" -gt "$term" ]; then
				best="${BASH_REMATCH[2]} ${BASH_REMATCH[3]} $(iso_ms "${BASH_REMATCH[1]}")"
				break
			fi
		done < <(grep -h 'msg="acting as leader"' "$dir/agent$i.log.tmp" 2>/dev/null)
		[ -n "$best" ] && { echo "$best"; return 0; }
	done
	return 1
}

# Every user and group of the directory is in the target (the counts).
_complete() { [ "$(chaos_target_count Users)" = "$CHAOS_USERS" ] && [ "$(chaos_target_count Groups)" = "${CHAOS_GROUPS:-10}" ]; }

round=0
kill_leader() { # PHASE
	local phase=$1 L LT rest=() i k NL NT LMS WMS
	round=$((round + 1))
	wait_for 30 host_leader || { chaos_bad "round $round: no ready leader before the kill"; return 1; }
	L=$(host_leader)
	LT=$(host_term "$L")
	for i in 1 2 3; do [ "$i" != "$L" ] && rest+=("$i"); done
	k=$(now_ms)
	host_kill "$L"
	chaos_down "$L"
	_new() { acting_after "$LT" "${rest[@]}"; }
	if ! wait_for 10 _new; then
		chaos_bad "round $round ($phase): no new leader 10 s after killing $L (term $LT)"
		return 1
	fi
	read -r NL NT LMS <<<"$(_new)"
	_wrote() { node "$CHAOS_DIR/lib/audit.js" first-write "$AUDIT" "$NT"; }
	if wait_for 15 _wrote; then
		WMS=$(_wrote)
	elif [ "$phase" = initial ] && _complete; then
		# the killed leader landed the whole initial sync before it died
		# (a fast target: Graph's $batch): nothing was left to write
		chaos_note "round $round ($phase): the initial sync was complete before the kill; the new leader $NL had nothing to write"
		WMS=""
	else
		chaos_bad "round $round ($phase): the new leader $NL wrote nothing in term $NT within 15 s"
		WMS=""
	fi
	printf '%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n' "$round" "$phase" "$L" "$LT" "$NL" "$NT" $((LMS - k)) "${WMS:+$((WMS - k))}" >>"$ROUNDS"
	say "round $round ($phase): killed $L (term $LT) -> $NL leads term $NT after $((LMS - k)) ms, writes after ${WMS:+$((WMS - k))} ms"
	host_start "$L"
	chaos_up "$L"
	_rejoined() { [ "$(json_eval "$(agent_status "$L")" 'j.role')" = follower ]; }
	wait_for 30 _rejoined || chaos_bad "round $round: the restarted agent $L did not rejoin as a follower"
}

# 1. during the initial sync
_some() { local n; n=$(chaos_target_count Users) && [ "$n" -ge 1 ]; }
wait_for 60 _some || fail "the initial sync wrote nothing in 60 s"
n=$(chaos_target_count Users)
if [ "$n" -lt "$CHAOS_USERS" ]; then
	kill_leader initial
	say "killed during the initial sync at $n of $CHAOS_USERS users"
else
	chaos_note "the initial sync was done before the first kill could land ($n users)"
fi
wait_for 120 _complete || chaos_bad "initial sync did not finish after the kill: $(chaos_target_count Users) users"

# 2. under a steady change stream
chaos_workload_start "${CHAOS_RATE:-20}"
sleep 1
if [ "$CHAOS_LONG" = 1 ]; then
	kills=$((round + ${CHAOS_KILLS:-1000000}))
	while [ "$round" -lt "$kills" ] && [ "$(chaos_elapsed_s)" -lt "$CHAOS_DURATION" ]; do
		kill_leader steady || break
		sleep 1
	done
else
	for ((r = 0; r < ${CHAOS_KILLS:-3}; r++)); do
		kill_leader steady || break
		sleep 1
	done
fi
sleep 2

# The figures, over the rounds under the change stream.
stats() { sort -n | awk '{v[NR]=$1} END {if (!NR) {print "n=0"; exit} m = NR%2 ? v[(NR+1)/2] : (v[NR/2]+v[NR/2+1])/2; printf "n=%d min=%d median=%d max=%d\n", NR, v[1], m, v[NR]}'; }
say "T=$T ms, early_election=$EARLY_ELECTION, heartbeat $HEARTBEAT_MS ms"
say "kill -> new leader (ms, steady): $(awk -F'\t' '$2=="steady" {print $7}' "$ROUNDS" | stats)"
say "kill -> export resumed (ms, steady): $(awk -F'\t' '$2=="steady" && $8!="" {print $8}' "$ROUNDS" | stats)"
echo "leader-kill figures T=$T early_election=$EARLY_ELECTION: new leader $(awk -F'\t' '$2=="steady" {print $7}' "$ROUNDS" | stats); export resumed $(awk -F'\t' '$2=="steady" && $8!="" {print $8}' "$ROUNDS" | stats)"
[ -n "${CHAOS_KEEP_ROUNDS:-}" ] && cp "$ROUNDS" "$CHAOS_KEEP_ROUNDS"
chaos_verdict
