# shellcheck shell=bash
# chaos-tests/lib/scenario.sh -- what every scenario shares: modes, the change
# stream, the cursor watch, and the verdict. Source it from
# chaos-tests/scenarios/NAME.sh (it sources hosts.sh).
#
#   scenario_init NAME "$@"    parses [--long [SECS]]; sets CHAOS_LONG (0/1),
#                              CHAOS_DURATION (the long mode's seconds, default
#                              600) and CHAOS_SEED (env CHAOS_SEED, default: the
#                              time; printed, so a run can be repeated)
#   chaos_cluster [N]          hosts_setup + hosts_cluster N (default 3), waits
#                              for a ready leader; with CHAOS_WAIT_INITIAL=1 (the
#                              default) also for the initial sync
#   chaos_workload_start [RATE]  the change stream: chaos-tests/workload.sh when it
#                              is there, else a small generator of our own (user
#                              modifies, adds and deletes); RATE changes a second
#                              (default 10)
#   chaos_workload_stop
#   chaos_note TEXT            a line for the report (also printed at once)
#   chaos_bad TEXT             a finding that fails the scenario whatever the
#                              checker says
#   chaos_down I / chaos_up I  tell the crash check that the scenario stopped /
#                              started agent I on purpose
#   chaos_verdict              heals the network, waits for the cluster to
#                              settle, runs the checker, prints the verdict and
#                              exits 0 (PASS) or 1 (FAIL)
#
# The verdict is chaos-tests/check.sh's one line when the checker is there, or
# our own with the same fields otherwise (lost, dup, stale, digest, objects),
# followed by this suite's own line:
#   verdict NAME: PASS|FAIL crashes=N findings=N seed=S
# crashes: agents that died without the scenario killing them, or logged an
# assertion, a sanitizer report or a libraft abort.

# shellcheck source=hosts.sh
source "$(dirname "${BASH_SOURCE[0]}")/hosts.sh"

# The change streams delete a lot (a long run: thousands); delete protection
# would stage them and hold the sync (by design; tested in
# tests/integration/sync_delete_*). Here every delete must go through.
DELETE_THRESHOLD=${CHAOS_DELETE_THRESHOLD:-1000000}

CHAOS_NAME=""
CHAOS_LONG=0
CHAOS_DURATION=600
CHAOS_FINDINGS=()
CHAOS_NOTES=()
declare -A CHAOS_DOWN

scenario_init() {
	CHAOS_NAME=$1; shift
	while [ $# -gt 0 ]; do
		case $1 in
		--long)
			CHAOS_LONG=1
			if [[ ${2:-} =~ ^[0-9]+$ ]]; then CHAOS_DURATION=$2; shift; fi ;;
		-h | --help)
			sed -n '2,/^$/p' "$0" | sed 's/^# \{0,1\}//'
			exit 0 ;;
		*) echo "usage: $0 [--long [SECS]]" >&2; exit 2 ;;
		esac
		shift
	done
	CHAOS_SEED=${CHAOS_SEED:-$(date +%s)}
	RANDOM=$CHAOS_SEED
	CHAOS_T0=$(now_ms)
	echo "scenario $CHAOS_NAME: $([ "$CHAOS_LONG" = 1 ] && echo "long, ${CHAOS_DURATION} s" || echo short), seed $CHAOS_SEED" >&2
}

say() { echo "[$(printf '%6.1f' "$(awk -v a="$(now_ms)" -v b="$CHAOS_T0" 'BEGIN{print (a-b)/1000}')")s] $*" >&2; }
chaos_note() { CHAOS_NOTES+=("$*"); say "note: $*"; }
chaos_bad() { CHAOS_FINDINGS+=("$*"); say "FINDING: $*"; }
chaos_down() { CHAOS_DOWN[$1]=1; }
chaos_up() { CHAOS_DOWN[$1]=""; }

# The elapsed time of a scenario's fault phase: the long mode runs faults
# until CHAOS_DURATION is over.
chaos_elapsed_s() { echo $((($(now_ms) - CHAOS_T0) / 1000)); }

chaos_cluster() {
	local n=${1:-3} i urls=()
	hosts_setup "$n"
	hosts_cluster "$n"
	wait_for 30 host_leader || fail "no ready leader 30 s after start"
	if [ "${CHAOS_WAIT_INITIAL:-1}" = 1 ]; then
		_initial() { [ "$(chaos_target_count Users)" = "${CHAOS_USERS:-200}" ] && [ "$(chaos_target_count Groups)" = "${CHAOS_GROUPS:-10}" ]; }
		wait_for 90 _initial || fail "initial sync did not finish: $(chaos_target_count Users) users"
		say "initial sync done: $(chaos_target_count Users) users, $(chaos_target_count Groups) groups, leader $(host_leader)"
	fi
	CHAOS_CURSOR_LOG=$(fixture_tmpdir)/cursor.log
	if [ -x "$CHAOS_DIR/cursor-watch.sh" ]; then
		for ((i = 1; i <= n; i++)); do urls+=("http://${AGENT_CTL[$i]}/v1/status"); done
		spawn cursor-watch "$(fixture_tmpdir)/cursor-watch.log" "$CHAOS_DIR/cursor-watch.sh" --out "$CHAOS_CURSOR_LOG" "${urls[@]}"
		CURSOR_WATCH_PID=$SPAWNED_PID
	fi
}

CHAOS_WORKLOAD_LOG=""
chaos_workload_start() {
	local rate=${1:-10} dur=$((CHAOS_LONG ? CHAOS_DURATION + 600 : 3600))
	CHAOS_WORKLOAD_LOG=$(fixture_tmpdir)/workload.jsonl
	if [ -x "$CHAOS_DIR/workload.sh" ]; then
		spawn workload "$(fixture_tmpdir)/workload.out" "$CHAOS_DIR/workload.sh" --seed "$CHAOS_SEED" \
			--ldap-url "$SLAPD_URL" --bind-dn "$SLAPD_ADMIN_DN" --password-file "$SLAPD_PW_FILE" \
			--users-base "ou=people,$SLAPD_BASE" --groups-base "ou=groups,$SLAPD_BASE" \
			--duration "$dur" --rate "$rate" --log "$CHAOS_WORKLOAD_LOG"
	else
		export SLAPD_URL SLAPD_ADMIN_DN SLAPD_PW_FILE SLAPD_BASE CHAOS_SEED CHAOS_WORKLOAD_LOG
		export CHAOS_RATE=$rate CHAOS_USERS=${CHAOS_USERS:-200}
		spawn workload "$(fixture_tmpdir)/workload.out" bash "$CHAOS_DIR/lib/stream.sh"
	fi
	WORKLOAD_PID=$SPAWNED_PID
	say "change stream started ($rate/s)"
}

chaos_workload_stop() {
	[ -n "${WORKLOAD_PID:-}" ] || return 0
	kill -TERM "$WORKLOAD_PID" 2>/dev/null
	wait "$WORKLOAD_PID" 2>/dev/null
	WORKLOAD_PID=""
	say "change stream stopped: $(wc -l <"$CHAOS_WORKLOAD_LOG" 2>/dev/null || echo 0) changes"
}

# Agents that died without the scenario stopping them, or logged a crash.
_chaos_crashes() {
	local i n=0 logs
	for ((i = 1; i <= CHAOS_HOSTS; i++)); do
		if [ "${CHAOS_DOWN[$i]:-}" != 1 ] && ! host_running "$i"; then
			chaos_bad "agent $i died without being killed: $(agent_logs "$i" | tail -n 5 | tr '\n' ' ')"
			n=$((n + 1))
		fi
		logs=$(agent_logs "$i" | grep -E 'Assertion|AddressSanitizer|runtime error|Segmentation|raft_.*abort|level=fatal|out of memory' | head -n 3)
		if [ -n "$logs" ]; then
			chaos_bad "agent $i logged a crash: $logs"
			n=$((n + 1))
		fi
	done
	echo "$n"
}

# All running agents applied the same state (equal digests, one leader).
_chaos_digests_equal() {
	local i d first=""
	for ((i = 1; i <= CHAOS_HOSTS; i++)); do
		[ "${CHAOS_DOWN[$i]:-}" = 1 ] && continue
		# The digest only: an idle leader may still append a barrier (a
		# renewal missed under load), so applied indexes are not compared.
		d=$(json_eval "$(agent_status "$i")" 'j.state.digest') || return 1
		[ -z "$first" ] && first=$d
		[ "$d" = "$first" ] || return 1
	done
	host_leader >/dev/null
}

chaos_verdict() {
	local line rc crashes dir i status_urls=() ok=PASS
	dir=$(fixture_tmpdir)
	chaos_workload_stop
	hosts_heal 2>/dev/null
	for i in "${!CHAOS_PROXY_CTL[@]}"; do chaos_proxy "$i" clear >/dev/null; done
	if [ "$CHAOS_TARGET" = entra ]; then graph_fault '{}' >/dev/null 2>&1; else scim_fault '{}' 2>/dev/null; fi
	for ((i = 1; i <= CHAOS_HOSTS; i++)); do
		[ "${CHAOS_DOWN[$i]:-}" = 1 ] && continue
		host_running "$i" && kill -CONT "${AGENT_PID[$i]}" 2>/dev/null
		status_urls+=("http://${AGENT_CTL[$i]}/v1/status")
	done
	local target
	if [ "$CHAOS_TARGET" = entra ]; then
		target=(--target entra --graph "$GRAPH_URL" --audit-url "$GRAPH_AUDIT")
	else
		target=(--scim "$SCIM_URL" --audit-url "$SCIM_AUDIT")
	fi
	if [ -x "$CHAOS_DIR/check.sh" ] || [ "$CHAOS_TARGET" = entra ]; then
		line=$("$CHAOS_DIR/check.sh" --ldap-url "$SLAPD_URL" --bind-dn "$SLAPD_ADMIN_DN" \
			--password-file "$SLAPD_PW_FILE" "${target[@]}" \
			--cursor-log "$CHAOS_CURSOR_LOG" --status "${status_urls[@]}" \
			--config "$dir/agent1.yaml" ${CHAOS_WORKLOAD_LOG:+--log "$CHAOS_WORKLOAD_LOG"} 2>"$dir/check.err")
		rc=$?
		[ -n "${CURSOR_WATCH_PID:-}" ] && kill -TERM "$CURSOR_WATCH_PID" 2>/dev/null
		# the checker's notes (excused in-flight writes, ...) for the record
		sed 's/^/  checker: /' "$dir/check.err" >&2
		[ -n "$line" ] || line="chaos: FAIL checker printed nothing ($(tail -n 3 "$dir/check.err" | tr '\n' ' '))"
	else
		line=$(_chaos_own_check)
		rc=$?
	fi
	echo "$line"
	[ "$rc" = 0 ] || ok=FAIL
	crashes=$(_chaos_crashes)
	[ "$crashes" = 0 ] || ok=FAIL
	[ ${#CHAOS_FINDINGS[@]} = 0 ] || ok=FAIL
	local n
	for n in "${CHAOS_NOTES[@]+"${CHAOS_NOTES[@]}"}"; do echo "  note: $n"; done
	for n in "${CHAOS_FINDINGS[@]+"${CHAOS_FINDINGS[@]}"}"; do echo "  finding: $n"; done
	echo "verdict $CHAOS_NAME: $ok crashes=$crashes findings=${#CHAOS_FINDINGS[@]} seed=$CHAOS_SEED $([ "$CHAOS_LONG" = 1 ] && echo long || echo short) $(chaos_elapsed_s)s"
	[ "$ok" = PASS ] && exit 0
	exit 1
}

# Our own check, until chaos-tests/check.sh is there: wait (up to 120 s) for
# the target to equal the directory and every agent to hold the same state,
# then read the SCIM audit.
_chaos_own_check() {
	local dir lost=0 digest=equal objects audit i
	dir=$(fixture_tmpdir)
	if ! wait_for 120 sync_compare; then
		sync_compare >"$dir/compare.out" 2>&1
		lost=$(grep -c . "$dir/compare.out")
		say "target differs from source: $(head -n 5 "$dir/compare.out" | tr '\n' ';')"
	fi
	if ! wait_for 30 _chaos_digests_equal; then
		digest=differ
		for ((i = 1; i <= CHAOS_HOSTS; i++)); do
			say "agent $i: $(json_eval "$(agent_status "$i" 2>/dev/null || echo '{}')" '[j.role, j.term, j.applied_index, j.state && j.state.digest, j.state && j.state.keys].join(" ")')"
		done
	fi
	objects=$(($(scim_count Users) + $(scim_count Groups)))
	audit=$(node "$CHAOS_DIR/lib/audit.js" summary "$SCIM_AUDIT")
	local dup stale
	dup=$(json_eval "$audit" 'j.dup')
	stale=$(json_eval "$audit" 'j.stale')
	local verdict=PASS
	[ "$lost" = 0 ] && [ "$dup" = 0 ] && [ "$stale" = 0 ] && [ "$digest" = equal ] || verdict=FAIL
	echo "chaos: $verdict lost=$lost dup=$dup stale=$stale cursor_back=n/a digest=$digest objects=$objects writes=$(json_eval "$audit" 'j.writes') terms=$(json_eval "$audit" 'j.terms') (own check)"
	[ "$verdict" = PASS ]
}
