#!/usr/bin/env bash
# bench/failover.sh [KILLS] [T] -- canopy's failover against bare libraft's, in one run.
#
#   bench/failover.sh            10 kills per part, election timeout T = 1000 ms
#   bench/failover.sh 5 300      (KILLS=5 T=300 in the environment works too)
#
# Five parts, one after the other on this machine, everything on loopback
# and free ports (bench/README.md says what each number means). Each has a
# SIGKILL (process crash) and a SIGSTOP (silent failure: frozen process)
# variant where noted; run it for T = 1000 and T = 300 (bench/failover-all.sh):
#   a. ceiling: 3 bench/bare_raft servers (bare libraft 0.15, pre-vote on,
#      heartbeat T/10); KILLS times SIGKILL the leader and time kill -> a
#      survivor prints "leader" (and "ready": its first barrier committed);
#      the killed one is restarted and must rejoin before the next round.
#      Then KILLS times SIGSTOP of the leader (SIGCONT after the new leader).
#   b. canopy: 3 canopy-agent processes syncing a real slapd into the SCIM
#      fixture while a generator changes a user's givenName every ~50 ms;
#      KILLS times SIGKILL the leader and time kill -> 'msg="acting as leader"'
#      in a survivor's log (its own timestamp) and kill -> the first write of
#      the new (node, term) in the SCIM audit log (the server's timestamp).
#      The killed agent is restarted and must be a caught-up follower again.
#      Then KILLS times SIGSTOP of the leader: stop -> first write of the new
#      term (the stopped agent is resumed and must catch up as a follower).
#   c. planned hand-over: KILLS times `canopyctl cluster transfer` on the
#      leader during the same changes; the export gap is the time between the
#      last audited write of the old term and the first of the new term.
# It prints min/median/p99/max of each, the ratio canopy/bare of the medians,
# and checks canopy's bound on the max: kill or stop -> first write <= T. It
# asserts nothing else: exit 0 when the run completed and the bound held,
# 3 when the bound did not hold,
# non-zero only when the run itself broke (a fixture did not start, no leader
# at all, time budget of 5 minutes exceeded).
#
# Env: CANOPY_BUILD_DIR (default <source>/build; needs canopy-agent, canopyctl
# and bench/bare_raft), BENCH_KEEP=DIR copies the raw data (per-round TSV,
# logs, audit log) there, BENCH_BUDGET_S (default 420) the time budget.

BENCH_SRC=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
export CANOPY_SOURCE_DIR=${CANOPY_SOURCE_DIR:-$(cd "$BENCH_SRC/.." && pwd)}
# shellcheck source=../tests/fixtures/sync.sh
source "$CANOPY_SOURCE_DIR/tests/fixtures/sync.sh"

for a in "$@"; do
	case $a in
	KILLS=*) KILLS=${a#KILLS=} ;;
	T=*) T=${a#T=} ;;
	*=*) echo "usage: $0 [KILLS] [T]" >&2; exit 2 ;;
	*) if [ -z "${_kills_arg:-}" ]; then KILLS=$a; _kills_arg=1; else T=$a; fi ;;
	esac
done
KILLS=${KILLS:-10}
T=${T:-1000}
[[ $KILLS =~ ^[1-9][0-9]*$ && $T =~ ^[1-9][0-9]+$ ]] || { echo "usage: $0 [KILLS] [T]  (positive integers, T >= 10 ms)" >&2; exit 2; }
HB=$((T / 10))
BUDGET_S=${BENCH_BUDGET_S:-420}
BARE=$CANOPY_BUILD_DIR/bench/bare_raft
for x in "$BARE" "$CANOPY_AGENT" "$CANOPYCTL"; do
	[ -x "$x" ] || { echo "failover.sh: $x not found: build first (cmake --build ...) or set CANOPY_BUILD_DIR" >&2; exit 2; }
done

dir=$(fixture_tmpdir)
mkdir -p "$dir/bare"
RAW=$dir/rounds.tsv
printf 'part\tround\tmetric\tms\tnote\n' >"$RAW"
NOTES=()
note() { NOTES+=("$*"); echo "note: $*" >&2; }
say() { echo "[$(printf '%3d' "$SECONDS")s] $*" >&2; }
record() { printf '%s\t%s\t%s\t%s\t%s\n' "$1" "$2" "$3" "$4" "${5:-}" >>"$RAW"; }

if [ -n "${BENCH_KEEP:-}" ]; then
	mkdir -p "$BENCH_KEEP"
	at_exit "cp -r '$dir/.' '$BENCH_KEEP/' 2>/dev/null"
fi

now_ms() { local t=${EPOCHREALTIME/./}; echo $((t / 1000)); }
iso_ms() { date -u -d "$1" +%s%3N; }
# wait_for SECS CMD...: polls CMD every 50 ms until it succeeds or SECS of wall
# time passed (wait_until counts polls, which is much longer when CMD is slow)
wait_for() {
	local secs=$1 end; shift
	end=$(($(now_ms) + secs * 1000))
	while :; do
		"$@" >/dev/null 2>&1 && return 0
		[ "$(now_ms)" -lt "$end" ] || return 1
		sleep 0.05
	done
}

over_budget() { [ "$SECONDS" -ge "$BUDGET_S" ]; }
forget_pid() {
	local p keep=()
	for p in "${_FIXTURE_PIDS[@]+"${_FIXTURE_PIDS[@]}"}"; do [ "$p" = "$1" ] || keep+=("$p"); done
	_FIXTURE_PIDS=("${keep[@]+"${keep[@]}"}")
}

# ---------------------------------------------------------------- a. ceiling
declare -A B_ADDR B_PID B_OUT B_GEN
for i in 1 2 3; do B_ADDR[$i]=127.0.0.1:$(free_port); B_GEN[$i]=0; done

bare_start() {
	local i=$1
	B_GEN[$i]=$((B_GEN[$i] + 1))
	B_OUT[$i]=$dir/bare/out$i.${B_GEN[$i]}
	spawn "bare$i" "${B_OUT[$i]}" "$BARE" "$i" "$dir/bare/data$i" "$T" "${B_ADDR[1]}" "${B_ADDR[2]}" "${B_ADDR[3]}" 2>/dev/null
	B_PID[$i]=$SPAWNED_PID
}

# bare_wait PATTERN SECS FILES...: the first line matching the extended regex
# PATTERN in any of FILES (polled every 10 ms); fails after SECS.
bare_wait() {
	local pat=$1 secs=$2 i line; shift 2
	for ((i = 0; i < secs * 100; i++)); do
		line=$(grep -h -m1 -E "$pat" "$@" 2>/dev/null | head -n1)
		[ -n "$line" ] && { echo "$line"; return 0; }
		sleep 0.01
	done
	return 1
}

bare_term_of_leader() { # prints "ID TERM" of the newest leader line over all current outputs
	grep -h -E '^leader ' "${B_OUT[1]}" "${B_OUT[2]}" "${B_OUT[3]}" 2>/dev/null | sort -k4,4n | tail -n1 | awk '{print $2, $4}'
}

say "a. ceiling: 3 bare libraft servers, T=$T ms, heartbeat $HB ms, pre-vote on"
for i in 1 2 3; do bare_start "$i"; done
bare_wait '^leader ' 20 "${B_OUT[1]}" "${B_OUT[2]}" "${B_OUT[3]}" >/dev/null || fail "bare libraft: no leader within 20 s"
read -r BL BT <<<"$(bare_term_of_leader)"
for i in 1 2 3; do
	[ "$i" = "$BL" ] && continue
	bare_wait "^follows $i leader $BL term $BT " 10 "${B_OUT[$i]}" >/dev/null || fail "bare server $i does not follow leader $BL"
done
BARE_LEADER=() BARE_READY=()
for ((r = 1; r <= KILLS; r++)); do
	over_budget && { note "time budget reached in part a after $((r - 1)) rounds"; break; }
	read -r BL BT <<<"$(bare_term_of_leader)"
	rest=()
	for i in 1 2 3; do [ "$i" != "$BL" ] && rest+=("${B_OUT[$i]}"); done
	pid=${B_PID[$BL]}
	tk=$(now_ms)
	kill -KILL "$pid"
	wait "$pid" 2>/dev/null
	forget_pid "$pid"
	# the first leader line of a later term on a survivor
	line=""
	for ((w = 0; w < 2000; w++)); do
		line=$(grep -h -E '^leader ' "${rest[@]}" 2>/dev/null | awk -v t="$BT" '$4 > t' | sort -k6,6n | head -n1)
		[ -n "$line" ] && break
		sleep 0.01
	done
	[ -n "$line" ] || fail "bare libraft: no new leader 20 s after killing $BL (round $r)"
	read -r _ NL _ NT _ NMS <<<"$line"
	BARE_LEADER+=($((NMS - tk)))
	record bare "$r" kill_to_leader $((NMS - tk)) "killed $BL term $BT -> $NL term $NT"
	if rl=$(bare_wait "^ready $NL term $NT " 5 "${rest[@]}"); then
		read -r _ _ _ _ _ RMS <<<"$rl"
		BARE_READY+=($((RMS - tk)))
		record bare "$r" kill_to_ready $((RMS - tk))
	fi
	say "  bare round $r: killed $BL (term $BT) -> leader $NL term $NT after $((NMS - tk)) ms"
	bare_start "$BL"
	for i in 1 2 3; do
		[ "$i" = "$NL" ] && continue
		bare_wait "^follows $i leader $NL term $NT " 15 "${B_OUT[$i]}" >/dev/null ||
			fail "bare server $i does not follow the new leader $NL (round $r)"
	done
	sleep 0.3
done
# SIGSTOP: the leader freezes; the survivors elect by timeout.
BARE_STOP=()
for ((r = 1; r <= KILLS; r++)); do
	over_budget && { note "time budget reached in part a (SIGSTOP) after $((r - 1)) rounds"; break; }
	read -r BL BT <<<"$(bare_term_of_leader)"
	rest=()
	for i in 1 2 3; do [ "$i" != "$BL" ] && rest+=("${B_OUT[$i]}"); done
	tk=$(now_ms)
	kill -STOP "${B_PID[$BL]}"
	line=""
	for ((w = 0; w < 2000; w++)); do
		line=$(grep -h -E '^leader ' "${rest[@]}" 2>/dev/null | awk -v t="$BT" '$4 > t' | sort -k6,6n | head -n1)
		[ -n "$line" ] && break
		sleep 0.01
	done
	kill -CONT "${B_PID[$BL]}"
	[ -n "$line" ] || fail "bare libraft: no new leader 20 s after stopping $BL (round $r)"
	read -r _ NL _ NT _ NMS <<<"$line"
	BARE_STOP+=($((NMS - tk)))
	record bare "$r" stop_to_leader $((NMS - tk)) "stopped $BL term $BT -> $NL term $NT"
	say "  bare SIGSTOP round $r: stopped $BL (term $BT) -> leader $NL term $NT after $((NMS - tk)) ms"
	bare_wait "^follows $BL leader $NL term $NT " 15 "${B_OUT[$BL]}" >/dev/null ||
		note "bare server $BL does not follow the new leader $NL after SIGCONT (round $r)"
	sleep 0.3
done
for i in 1 2 3; do kill -TERM "${B_PID[$i]}" 2>/dev/null; done
for i in 1 2 3; do wait "${B_PID[$i]}" 2>/dev/null; forget_pid "${B_PID[$i]}"; done

# ---------------------------------------------------------------- b. canopy
say "b. canopy: slapd + SCIM fixture + 3 agents, T=$T ms, heartbeat $HB ms"
ELECTION_TIMEOUT_MS=$T HEARTBEAT_MS=$HB
export ELECTION_TIMEOUT_MS HEARTBEAT_MS
sync_setup 100 10 || fail "slapd/SCIM fixture did not start"
for i in 1 2 3; do agent_ports $i; done
members="[\"1@${AGENT_RAFT[1]}\", \"2@${AGENT_RAFT[2]}\", \"3@${AGENT_RAFT[3]}\"]"
for i in 1 2 3; do sync_agent_config $i "$members"; done
for i in 1 2 3; do agent_start $i; done
alog() { echo "$dir/agent$1.log.tmp"; }

bench_leader() { # prints "ID TERM" of a ready leader among the given nodes
	local i st
	for i in "$@"; do
		st=$(agent_status "$i" 2>/dev/null) || continue
		st=$(json_eval "$st" 'j.role==="leader" && j.leader_ready===true ? j.term : ""') || continue
		[ -n "$st" ] && { echo "$i $st"; return 0; }
	done
	return 1
}
wait_for 30 bench_leader 1 2 3 || fail "canopy: no ready leader within 30 s"
all_users() { [ "$(scim_count Users)" = 100 ] && [ "$(scim_count Groups)" = 10 ]; }
wait_for 60 all_users || fail "canopy: initial sync did not finish: $(scim_count Users) users"
say "  initial sync done ($(scim_count Users) users, $(scim_count Groups) groups)"

# The change generator: one ldapmodify reading LDIF from a loop, so each change
# costs no process start; it dies with this shell (pdeathsig), the loop then of
# SIGPIPE. Each change's send time goes to gen.times.
GEN_TIMES=$dir/gen.times
: >"$GEN_TIMES"
export SLAPD_URL SLAPD_ADMIN_DN SLAPD_PW_FILE SLAPD_BASE GEN_TIMES
spawn gen "$dir/gen.log" bash -c '
	exec ldapmodify -x -c -H "$SLAPD_URL" -D "$SLAPD_ADMIN_DN" -y "$SLAPD_PW_FILE" < <(
		i=0
		while :; do
			i=$((i + 1))
			printf "dn: uid=user%05d,ou=people,%s\nchangetype: modify\nreplace: givenName\ngivenName: Bench%d\n\n" \
				$(( (i % 100) + 1 )) "$SLAPD_BASE" "$i"
			printf "%s %d\n" "$EPOCHREALTIME" "$i" >>"$GEN_TIMES"
			sleep 0.05
		done)'
GEN_PID=$SPAWNED_PID

# audit helpers: the audit file has one JSON object per line, in seq order
audit_first() { # NODE TERM: first write of that node in that term
	grep -E "\"term\":$2[,}]" "$SCIM_AUDIT" | grep -m1 "\"node\":\"$1\""
}
audit_last_term() { # TERM: last write of that term
	grep -E "\"term\":$1[,}]" "$SCIM_AUDIT" | tail -n1
}
audit_time() { [[ $1 =~ \"time\":\"([^\"]+)\" ]] && iso_ms "${BASH_REMATCH[1]}"; }
audit_field() { [[ $1 =~ \"$2\":(\"[^\"]*\"|[^,}]*) ]] && echo "${BASH_REMATCH[1]}"; }

# acting_after TERM SECS NODES...: waits for msg="acting as leader" with a term
# above TERM in the given nodes' logs; prints "NODE TERM MS BARRIER_MS".
acting_after() {
	local term=$1 secs=$2 i line; shift 2
	local files=()
	for i in "$@"; do files+=("$(alog "$i")"); done
	for ((i = 0; i < secs * 100; i++)); do
		while IFS= read -r line; do
			if [[ $line =~ ^time=([^ ]+)\ .*node=([0-9]+)\ msg=\"acting\ as\ leader\"\ term=([0-9]+).*barrier_ms=([0-9]+) ]] &&
				[ "${BASH_REMATCH[3]}" -gt "$term" ]; then
				echo "${BASH_REMATCH[2]} ${BASH_REMATCH[3]} $(iso_ms "${BASH_REMATCH[1]}") ${BASH_REMATCH[4]}"
				return 0
			fi
		done < <(grep -h 'msg="acting as leader"' "${files[@]}" 2>/dev/null)
		sleep 0.01
	done
	return 1
}

wait_audit_first() { # NODE TERM SECS: prints the line
	local i line
	for ((i = 0; i < $3 * 100; i++)); do
		line=$(audit_first "$1" "$2") && [ -n "$line" ] && { echo "$line"; return 0; }
		sleep 0.01
	done
	return 1
}

caught_up() { # ID INDEX: ID is a follower that applied INDEX
	local s
	s=$(agent_status "$1") || return 1
	[ "$(json_eval "$s" 'j.role === "follower" && j.applied_index >= '"$2")" = true ]
}
commit_index() { json_eval "$(agent_status "$1")" 'j.commit_index'; }

# let changes flow into the target first
wait_for 10 test -s "$GEN_TIMES" || fail "change generator did not start: $(tail -n 5 "$dir/gen.log")"
read -r CL CT <<<"$(bench_leader 1 2 3)"
[ -n "$CT" ] || fail "canopy: no ready leader"
wait_audit_first "$CL" "$CT" 10 >/dev/null || fail "canopy: no write of leader $CL in term $CT after changes started"
sleep 0.5

C_LEADER=() C_ELECTED=() C_BARRIER=() C_WRITE=() C_RESUME=()
KILL_ROUNDS=()
for ((r = 1; r <= KILLS; r++)); do
	over_budget && { note "time budget reached in part b after $((r - 1)) rounds"; break; }
	wait_for 20 bench_leader 1 2 3 || fail "canopy: no ready leader before round $r"
	read -r CL CT <<<"$(bench_leader 1 2 3)"
	[ -n "$CT" ] || fail "canopy: no ready leader before round $r"
	rest=()
	for i in 1 2 3; do [ "$i" != "$CL" ] && rest+=("$i"); done
	tk=$(now_ms)
	agent_stop "$CL" KILL
	forget_pid "${AGENT_PID[$CL]}"
	if ! act=$(acting_after "$CT" 20 "${rest[@]}"); then
		note "canopy round $r: no survivor acted as leader within 20 s of killing $CL (term $CT)"
		record canopy "$r" kill_to_ready_leader "" "no leader"
		agent_start "$CL"
		wait_for 30 bench_leader 1 2 3 || fail "canopy: cluster has no leader any more"
		continue
	fi
	read -r NL NT AMS BMS <<<"$act"
	C_LEADER+=($((AMS - tk)))
	C_BARRIER+=("$BMS")
	C_ELECTED+=($((AMS - BMS - tk)))
	record canopy "$r" kill_to_ready_leader $((AMS - tk)) "killed $CL term $CT -> $NL term $NT barrier_ms $BMS"
	msg="  canopy round $r: killed $CL (term $CT) -> $NL acting as leader in term $NT after $((AMS - tk)) ms (barrier $BMS ms)"
	if fw=$(wait_audit_first "$NL" "$NT" 10); then
		WMS=$(audit_time "$fw")
		C_WRITE+=($((WMS - tk)))
		C_RESUME+=($((WMS - AMS)))
		record canopy "$r" kill_to_first_write $((WMS - tk)) "seq $(audit_field "$fw" seq) status $(audit_field "$fw" status)"
		msg+=", first write after $((WMS - tk)) ms"
	else
		note "canopy round $r: new leader $NL wrote nothing in term $NT within 10 s"
		record canopy "$r" kill_to_first_write "" "none in 10 s"
	fi
	KILL_ROUNDS+=("$CT:$NT")
	say "$msg"
	agent_start "$CL"
	ci=$(commit_index "$NL") || ci=0
	wait_for 20 caught_up "$CL" "$ci" ||
		note "canopy round $r: restarted agent $CL is not a follower that applied index $ci after 20 s: $(agent_status "$CL" | cut -c1-300)"
	sleep 0.3
done

# SIGSTOP: a frozen leader (no socket closes): the timeout path.
S_WRITE=()
for ((r = 1; r <= KILLS; r++)); do
	over_budget && { note "time budget reached in part b (SIGSTOP) after $((r - 1)) rounds"; break; }
	wait_for 20 bench_leader 1 2 3 || fail "canopy: no ready leader before SIGSTOP round $r"
	read -r CL CT <<<"$(bench_leader 1 2 3)"
	[ -n "$CT" ] || fail "canopy: no ready leader before SIGSTOP round $r"
	rest=()
	for i in 1 2 3; do [ "$i" != "$CL" ] && rest+=("$i"); done
	tk=$(now_ms)
	kill -STOP "${AGENT_PID[$CL]}"
	if act=$(acting_after "$CT" 20 "${rest[@]}"); then
		read -r NL NT AMS BMS <<<"$act"
		if fw=$(wait_audit_first "$NL" "$NT" 10); then
			WMS=$(audit_time "$fw")
			S_WRITE+=($((WMS - tk)))
			record canopy "$r" stop_to_first_write $((WMS - tk)) "stopped $CL term $CT -> $NL term $NT"
			say "  canopy SIGSTOP round $r: stopped $CL (term $CT) -> $NL first write in term $NT after $((WMS - tk)) ms"
		else
			note "canopy SIGSTOP round $r: new leader $NL wrote nothing in term $NT within 10 s"
		fi
		KILL_ROUNDS+=("$CT:$NT")
	else
		note "canopy SIGSTOP round $r: no survivor acted as leader within 20 s of stopping $CL (term $CT)"
	fi
	kill -CONT "${AGENT_PID[$CL]}"
	ci=$(commit_index "${NL:-${rest[0]}}") || ci=0
	wait_for 20 caught_up "$CL" "$ci" ||
		note "canopy SIGSTOP round $r: resumed agent $CL is not a follower that applied index $ci after 20 s"
	sleep 0.3
done

# ---------------------------------------------------------------- c. hand-over
say "c. planned hand-over: canopyctl cluster transfer"
X_GAP=() X_ACT=() X_WRITE=()
XFER_ROUNDS=()
for ((r = 1; r <= KILLS; r++)); do
	over_budget && { note "time budget reached in part c after $((r - 1)) rounds"; break; }
	wait_for 20 bench_leader 1 2 3 || fail "canopy: no ready leader before transfer $r"
	read -r CL CT <<<"$(bench_leader 1 2 3)"
	[ -n "$CT" ] || fail "canopy: no ready leader before transfer $r"
	t0=$(now_ms)
	out=$("$CANOPYCTL" --server "${AGENT_CTL[$CL]}" cluster transfer --json 2>&1)
	rc=$?
	t1=$(now_ms)
	[ "$rc" = 0 ] || note "transfer $r: canopyctl exited $rc after $((t1 - t0)) ms: $out"
	if ! act=$(acting_after "$CT" 20 1 2 3); then
		note "transfer $r: nobody acted as leader in a term after $CT within 20 s"
		continue
	fi
	read -r NL NT AMS BMS <<<"$act"
	X_ACT+=($((AMS - t0)))
	record transfer "$r" request_to_ready_leader $((AMS - t0)) "$CL term $CT -> $NL term $NT; canopyctl ${rc}/$((t1 - t0)) ms"
	if fw=$(wait_audit_first "$NL" "$NT" 10); then
		WMS=$(audit_time "$fw")
		X_WRITE+=($((WMS - t0)))
		lw=$(audit_last_term "$CT")
		if [ -n "$lw" ]; then
			LMS=$(audit_time "$lw")
			X_GAP+=($((WMS - LMS)))
			record transfer "$r" export_gap $((WMS - LMS)) "last old seq $(audit_field "$lw" seq) first new seq $(audit_field "$fw" seq)"
			say "  transfer $r: $CL (term $CT) -> $NL (term $NT): acting after $((AMS - t0)) ms, export gap $((WMS - LMS)) ms"
		else
			note "transfer $r: no write at all in term $CT"
		fi
		record transfer "$r" request_to_first_write $((WMS - t0))
	else
		note "transfer $r: new leader $NL wrote nothing in term $NT within 10 s"
	fi
	XFER_ROUNDS+=("$CT:$NT")
	sleep 0.5
done

# ---------------------------------------------------------------- consistency
kill -TERM "$GEN_PID" 2>/dev/null
wait "$GEN_PID" 2>/dev/null
forget_pid "$GEN_PID"
NCHANGES=$(wc -l <"$GEN_TIMES")
if wait_for 20 sync_compare; then CONVERGED=yes; else CONVERGED=no; note "the SCIM store does not equal the directory 20 s after the changes stopped"; fi
END_USERS=$(scim_count Users 2>/dev/null || echo "?")
AUDIT_REPORT=$(node "$BENCH_SRC/failover-audit.js" "$SCIM_AUDIT" "${KILL_ROUNDS[*]:-}" "${XFER_ROUNDS[*]:-}" 2>&1) ||
	note "audit analysis failed: $AUDIT_REPORT"

# ---------------------------------------------------------------- report
stats() { # prints "n min median p99 max" of the arguments (integers); p99 is
	# the nearest-rank 99th percentile (with fewer than 100 values, the max)
	[ $# -gt 0 ] || { echo "0 - - - -"; return; }
	printf '%s\n' "$@" | sort -n | awk '{v[NR]=$1} END {m = NR%2 ? v[(NR+1)/2] : (v[NR/2]+v[NR/2+1])/2; k = int(0.99*NR); if (k < 0.99*NR) k++; printf "%d %d %d %d %d\n", NR, v[1], m, v[k], v[NR]}'
}
median() { read -r _ _ m _ _ <<<"$(stats "$@")"; echo "$m"; }
maxof() { read -r _ _ _ _ x <<<"$(stats "$@")"; echo "$x"; }
row() { # LABEL values...
	local label=$1; shift
	read -r n mn md p99 mx <<<"$(stats "$@")"
	printf '| %-62s | %3s | %6s | %6s | %6s | %6s |\n' "$label" "$n" "$mn" "$md" "$p99" "$mx"
}
ratio() { [ "$2" != - ] && [ "$2" -gt 0 ] 2>/dev/null && awk -v a="$1" -v b="$2" 'BEGIN{printf "%.2f", a/b}' || echo -; }
count_over() { local lim=$1 c=0 v; shift; for v in "$@"; do [ "$v" -gt "$lim" ] && c=$((c + 1)); done; echo "$c"; }

{
	echo
	echo "failover bench: $(date -u '+%Y-%m-%d %H:%M UTC'), $(nproc) cores, T=$T ms, heartbeat $HB ms, pre-vote on, KILLS=$KILLS"
	echo "command: bench/failover.sh $KILLS $T   (wall time ${SECONDS} s)"
	echo
	printf '| %-62s | %3s | %6s | %6s | %6s | %6s |\n' "ms (wall clock)" n min median p99 max
	printf '|%s|%s|%s|%s|%s|%s|\n' "$(printf -- '-%.0s' {1..64})" ----- -------- -------- -------- --------
	row "ceiling: bare libraft kill -> new leader" "${BARE_LEADER[@]}"
	row "ceiling: bare libraft kill -> its first barrier committed" "${BARE_READY[@]}"
	row "ceiling: bare libraft SIGSTOP -> new leader" "${BARE_STOP[@]}"
	row "canopy: kill -> new ready leader (\"acting as leader\")" "${C_LEADER[@]}"
	row "canopy: kill -> elected (acting as leader - barrier_ms)" "${C_ELECTED[@]}"
	row "canopy: barrier_ms (elected -> barrier committed)" "${C_BARRIER[@]}"
	row "canopy: kill -> first SCIM write of the new term" "${C_WRITE[@]}"
	row "canopy: ready leader -> first SCIM write (export resumed)" "${C_RESUME[@]}"
	row "canopy: SIGSTOP -> first SCIM write of the new term" "${S_WRITE[@]}"
	row "transfer: export gap (last old-term -> first new-term write)" "${X_GAP[@]}"
	row "transfer: request -> new ready leader" "${X_ACT[@]}"
	row "transfer: request -> first new-term write" "${X_WRITE[@]}"
	echo
	mb=$(median "${BARE_LEADER[@]}")
	mbr=$(median "${BARE_READY[@]}")
	mc=$(median "${C_LEADER[@]}")
	me=$(median "${C_ELECTED[@]}")
	mw=$(median "${C_WRITE[@]}")
	echo "ratios (medians of this run):"
	echo "  canopy kill->ready leader / bare kill->leader        = $mc / $mb = $(ratio "$mc" "$mb")   (aim: <= 1.10)"
	echo "  canopy kill->elected / bare kill->leader             = $me / $mb = $(ratio "$me" "$mb")"
	echo "  canopy kill->ready leader / bare kill->barrier       = $mc / $mbr = $(ratio "$mc" "$mbr")"
	echo "  canopy kill->first write / bare kill->leader         = $mw / $mb = $(ratio "$mw" "$mb")"
	echo "bound T = $T ms, checked on the max:"
	echo "  kill -> first write: max $(maxof "${C_WRITE[@]}") ms, $(count_over "$T" "${C_WRITE[@]}") of ${#C_WRITE[@]} rounds over T (bare libraft kill -> leader: $(count_over "$T" "${BARE_LEADER[@]}") of ${#BARE_LEADER[@]} over T)"
	echo "  SIGSTOP -> first write: max $(maxof "${S_WRITE[@]}") ms, $(count_over "$T" "${S_WRITE[@]}") of ${#S_WRITE[@]} rounds over T (bare libraft SIGSTOP -> leader: $(count_over "$T" "${BARE_STOP[@]}") of ${#BARE_STOP[@]} over T)"
	echo "aims (issue), per round:"
	echo "  process crash: kill -> first write < 200 ms: $(count_over 199 "${C_WRITE[@]}") of ${#C_WRITE[@]} rounds at or over"
	echo "  export resumed <= 250 ms after the ready leader: ${#C_RESUME[@]} rounds, $(count_over 250 "${C_RESUME[@]}") over"
	echo "  transfer export gap < 100 ms: ${#X_GAP[@]} rounds, $(count_over 99 "${X_GAP[@]}") at or over 100 ms"
	echo "changes made: $NCHANGES (one every ~50 ms); target equals source 20 s after they stopped: $CONVERGED ($END_USERS of 100 users in the target)"
	echo "audit log:"
	printf '%s\n' "$AUDIT_REPORT" | sed 's/^/  /'
	if [ ${#NOTES[@]} -gt 0 ]; then
		echo "notes:"
		printf '  %s\n' "${NOTES[@]}"
	fi
} | tee "$dir/summary.txt"

over_budget && { echo "failover.sh: over the time budget of $BUDGET_S s" >&2; exit 1; }
[ "$(count_over "$T" "${C_WRITE[@]}" "${S_WRITE[@]}")" = 0 ] || { echo "failover.sh: a failover took longer than T = $T ms" >&2; exit 3; }
exit 0
