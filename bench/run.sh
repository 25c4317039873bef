#!/usr/bin/env bash
# bench/run.sh [--quick] -- canopy's figures as ratios against ceilings
# measured in the same run, on this machine (bench/README.md, "run.sh").
#
#   bench/run.sh --quick   2,000 users + 20 groups, changes at 10/s and 100/s,
#                          5 failover kills: 2 to 2.5 minutes on 2 cores
#   bench/run.sh           10k, 100k and 150k users (+1 % groups), changes at
#                          10, 100, 500 and 1000/s, 10 kills: 40 to 60 minutes
#
# It builds canopy in Release mode into its own build dir, then per size
# starts slapd (seeded), the SCIM fixture and 3 agents on loopback and times:
#   1. initial sync: objects/s from agent start to the target holding
#      everything; ceilings: ldapsearch of the same entries to /dev/null (read)
#      and bench/scim-load.js POSTing the same resources into a second fixture
#      at canopy's concurrency (write); ratio = canopy / min(read, write)
#   4. memory and disk after the initial sync: VmHWM of the leader and a
#      follower, the leader's data dir; references: slapd's VmHWM and its
#      data (mdb) size for the same entries
#   5. raft commit path: batches committed/s and objects per batch
# then, per table size (quick: 100k; full: 10k, 100k and 1M objects):
#   6. the object table alone: bench/fill_fsm fills a one-voter node through
#      the apply path, snapshots and restarts it: RSS bytes per object (ref:
#      the record bytes themselves, as the snapshot holds them), snapshot
#      size on disk, time to take and write it, restart from it
# on the first size also:
#   2. change latency: bench/change_gen at each rate for RATE_S seconds, each
#      modify to another user; send -> the fixture's audit "time" of the write;
#      ceiling: change_gen doing the modify and then one PUT itself; and
#      where the time went on the leader, stage by stage (bench/stages.js
#      over its canopy_export_stage_seconds before and after the stream)
# and then, with everything above stopped:
#   3. failover: bench/failover.sh KILLS 1000 (bare libraft is the ceiling)
# It prints one markdown table on stdout and saves it, with the raw figures as
# JSON, to bench/results/<date>-<host>.md and .json. It asserts no speed:
# exit 0 when every row got figures, 1 when the run broke.
#
# Env: BENCH_BUILD_DIR (default <source>/build-bench; BENCH_NO_BUILD=1 uses it
# as it is), BENCH_SIZES ("USERS:GROUPS ..."), BENCH_RATES ("10 100"),
# BENCH_RATE_S (10), BENCH_KILLS (5 quick, 10 full), BENCH_TABLES (object
# table sizes of rows 6, "" for none), BENCH_RESULTS (the results dir),
# BENCH_KEEP=DIR copies the raw data there at exit.

BENCH_SRC=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
SRC=$(cd "$BENCH_SRC/.." && pwd)
MODE=full
for a in "$@"; do
	case $a in
	--quick) MODE=quick ;;
	-h | --help) sed -n '2,/^$/s/^# \{0,1\}//p' "${BASH_SOURCE[0]}"; exit 0 ;;
	*) echo "usage: $0 [--quick]" >&2; exit 2 ;;
	esac
done
if [ "$MODE" = quick ]; then
	SIZES=${BENCH_SIZES:-2000:20} RATES=${BENCH_RATES:-10 100} KILLS=${BENCH_KILLS:-5}
	TABLES=${BENCH_TABLES-100000}
else
	SIZES=${BENCH_SIZES:-10000:100 100000:1000 150000:1500} RATES=${BENCH_RATES:-10 100 500 1000} KILLS=${BENCH_KILLS:-10}
	TABLES=${BENCH_TABLES-10000 100000 1000000}
fi
RATE_S=${BENCH_RATE_S:-10}
BUILD=${BENCH_BUILD_DIR:-$SRC/build-bench}
RESULTS=${BENCH_RESULTS:-$BENCH_SRC/results}

say() { echo "[$(printf '%3d' "$SECONDS")s] $*" >&2; }

if [ "${BENCH_NO_BUILD:-}" != 1 ]; then
	say "building canopy (Release) in $BUILD"
	mkdir -p "$BUILD"
	if ! { cmake -S "$SRC" -B "$BUILD" -DCMAKE_BUILD_TYPE=Release -DCANOPY_TESTS=OFF &&
		cmake --build "$BUILD" -j2 --target canopy-agent canopyctl bare_raft change_gen fill_fsm; } >"$BUILD/bench-build.log" 2>&1; then
		tail -n 30 "$BUILD/bench-build.log" >&2
		echo "run.sh: the build failed (log: $BUILD/bench-build.log)" >&2
		exit 1
	fi
fi
export CANOPY_SOURCE_DIR=$SRC CANOPY_BUILD_DIR=$BUILD
# shellcheck source=../tests/fixtures/sync.sh
source "$SRC/tests/fixtures/sync.sh"
GEN=$BUILD/bench/change_gen
FILL=$BUILD/bench/fill_fsm
for x in "$CANOPY_AGENT" "$CANOPYCTL" "$GEN" "$BUILD/bench/bare_raft" "$FILL"; do
	[ -x "$x" ] || fail "$x not found"
done

dir=$(fixture_tmpdir)
RAW=$dir/raw.tsv # key<TAB>value, turned into the JSON at the end
: >"$RAW"
ROWS=$dir/rows.md
: >"$ROWS"
if [ -n "${BENCH_KEEP:-}" ]; then
	mkdir -p "$BENCH_KEEP"
	at_exit "cp -r '$dir/.' '$BENCH_KEEP/' 2>/dev/null"
fi

now_ms() { local t=${EPOCHREALTIME/./}; echo $((t / 1000)); }
raw() { printf '%s\t%s\n' "$1" "$2" >>"$RAW"; }
calc() { awk "BEGIN { printf \"%.${2:-2}f\", $1 }"; }
ratio() { # A B: A/B, or - when either is missing or B is 0
	case "$1$2" in *-* | "") echo -; return ;; esac
	awk -v a="$1" -v b="$2" 'BEGIN { if (b + 0 == 0) print "-"; else printf "%.2f", a / b }'
}
row() { printf '| %s | %s | %s | %s |\n' "$1" "$2" "$3" "$4" >>"$ROWS"; }
wait_for() { # SECS CMD...: every 100 ms for SECS of wall time
	local end=$(($(now_ms) + $1 * 1000)); shift
	until "$@" >/dev/null 2>&1; do
		[ "$(now_ms)" -lt "$end" ] || return 1
		sleep 0.1
	done
}
# cpu_ms PID: the CPU time (user + system) the process has used, in ms
cpu_ms() { awk -v hz="$(getconf CLK_TCK)" '{ print int(($14 + $15) * 1000 / hz) }' "/proc/$1/stat" 2>/dev/null || echo 0; }
vm_kb() { awk -v k="$2:" '$1 == k { print $2 }' "/proc/$1/status"; }
leader_of() { # prints the id of the ready leader
	local i
	for i in 1 2 3; do
		[ "$(json_eval "$(agent_status "$i" 2>/dev/null || echo '{}')" 'j.role==="leader" && j.leader_ready===true')" = true ] &&
			{ echo "$i"; return 0; }
	done
	return 1
}
status_of() { json_eval "$(agent_status "$1")" "$2"; }
# Creations the fixture answered (its in-memory counters: grepping an audit log
# of 100k lines every 100 ms took a quarter of a core from the run measured).
created_count() { curl -sS "${_SCIM_CURL[@]+"${_SCIM_CURL[@]}"}" "$SCIM_TEST_URL/stats" | grep -o '"201":[0-9]*' | cut -d: -f2; }
all_created() { local n; n=$(created_count); [ "${n:-0}" -ge "$1" ]; }
matched() { [ "$(json_eval "$(node "$BENCH_SRC/latency.js" "$1" "$2")" 'j.matched===j.n')" = true ]; }
sync_idle() { [ "$(status_of "$1" 'j.sync.state')" = idle ]; }
last_audit_ms() { # time of the last audit entry, ms since the epoch
	local t
	t=$(tail -n 1 "$SCIM_AUDIT" | sed -n 's/.*"time":"\([^"]*\)".*/\1/p')
	date -u -d "$t" +%s%3N
}

# ceiling_scim_start: a second SCIM fixture (same server.js) for the write
# ceilings; CEIL_URL, CEIL_AUDIT, CEIL_PID.
ceiling_scim_start() {
	local port i
	mkdir -p "$dir/ceil"
	CEIL_AUDIT=$dir/ceil/audit.jsonl
	: >"$CEIL_AUDIT"
	port=$(free_port)
	spawn scim-ceiling "$dir/ceil/server.log" node "$SCIM_FIXTURE_DIR/server.js" --port "$port" \
		--token-file "$SCIM_TOKEN_FILE" --audit "$CEIL_AUDIT"
	CEIL_PID=$SPAWNED_PID
	for ((i = 0; i < 200; i++)); do
		grep -qx "listening $port" "$dir/ceil/server.log" 2>/dev/null && break
		sleep 0.05
	done
	grep -qx "listening $port" "$dir/ceil/server.log" || fail "ceiling SCIM server did not start: $(tail -n 5 "$dir/ceil/server.log")"
	CEIL_URL=http://127.0.0.1:$port/scim/v2
}

stop_pid() {
	local p=$1 keep=() q
	kill -TERM "$p" 2>/dev/null
	wait "$p" 2>/dev/null
	for q in "${_FIXTURE_PIDS[@]+"${_FIXTURE_PIDS[@]}"}"; do [ "$q" = "$p" ] || keep+=("$q"); done
	_FIXTURE_PIDS=("${keep[@]+"${keep[@]}"}")
}

teardown() {
	local i
	for i in 1 2 3; do [ -n "${AGENT_PID[$i]:-}" ] && { agent_stop "$i"; stop_pid "${AGENT_PID[$i]}"; }; done
	[ -n "${CEIL_PID:-}" ] && { stop_pid "$CEIL_PID"; CEIL_PID=""; }
	scim_stop
	slapd_stop
	rm -rf "$dir"/data1 "$dir"/data2 "$dir"/data3 "$dir/agent-token"
}

MAX_IN_FLIGHT=8 # target.max_in_flight's default (docs/configuration.md)
FIRST_SIZE=1
for size in $SIZES; do
	N=${size%%:*} G=${size##*:}
	OBJ=$((N + G))
	say "size $N users + $G groups"
	sync_setup "$N" "$G" || fail "slapd / SCIM fixture did not start"

	# -- 1a. read ceiling: the same entries and attributes canopy reads, best of 3
	best=""
	for _ in 1 2 3; do
		t0=$(now_ms)
		ldapsearch -x -LLL -o ldif-wrap=no -H "$SLAPD_URL" -D "$SLAPD_ADMIN_DN" -y "$SLAPD_PW_FILE" \
			-b "ou=people,$SLAPD_BASE" '(objectClass=inetOrgPerson)' '*' entryUUID entryCSN >/dev/null &&
			ldapsearch -x -LLL -o ldif-wrap=no -H "$SLAPD_URL" -D "$SLAPD_ADMIN_DN" -y "$SLAPD_PW_FILE" \
				-b "ou=groups,$SLAPD_BASE" '(objectClass=groupOfNames)' '*' entryUUID entryCSN >/dev/null ||
			fail "ldapsearch failed"
		t=$(($(now_ms) - t0))
		[ -z "$best" ] || [ "$t" -lt "$best" ] && best=$t
	done
	[ "$best" -gt 0 ] || best=1
	READ_RATE=$(calc "$OBJ * 1000 / $best" 0)
	raw "size.$N.read_ms" "$best"

	# -- 1. canopy: 3 agents from start until the target holds everything
	say "  initial sync by 3 agents"
	t0=$(now_ms)
	fx0=$(cpu_ms "$SCIM_PID")
	sync_start_cluster 3
	limit=$((OBJ / 20 > 600 ? OBJ / 20 : 600)) # 20 objects/s would be a broken sync
	wait_for "$limit" all_created "$OBJ" || fail "initial sync of $OBJ objects did not finish in $limit s: $(created_count) created"
	fx1=$(cpu_ms "$SCIM_PID")
	wait_for 60 leader_of || fail "no ready leader"
	L=$(leader_of)
	wait_for 120 sync_idle "$L" || fail "the leader's sync did not go idle"
	t_end=$(last_audit_ms)
	SYNC_MS=$((t_end - t0))
	[ "$SYNC_MS" -gt 0 ] || SYNC_MS=1
	# how busy the target was: a CPU-bound target at ~100 % is the limit,
	# whatever feeds it (the ceiling's row below says the same of scim-load.js)
	FX_BUSY=$(calc "($fx1 - $fx0) * 100 / $SYNC_MS" 0)
	raw "size.$N.fixture_busy_pct" "$FX_BUSY"
	CANOPY_RATE=$(calc "$OBJ * 1000 / $SYNC_MS" 0)
	say "  synced $OBJ objects in $SYNC_MS ms ($CANOPY_RATE/s)"
	[ "$(scim_count Users)" = "$N" ] || fail "the target holds $(scim_count Users) users, not $N"
	raw "size.$N.sync_ms" "$SYNC_MS"
	raw "size.$N.objects" "$OBJ"

	# -- 1c. where the sync's time went, batch by batch: the stage histogram
	# (sync/engine/stages.h) of every agent since it started; for an initial
	# sync `target` and `commit` are per batch, `queue` is how long the
	# directory's entries waited for their batch
	pairs=()
	for i in 1 2 3; do
		: >"$dir/metrics.sync$N.$i.before"
		curl -sf "http://${AGENT_CTL[$i]}/metrics" >"$dir/metrics.sync$N.$i.after" || : >"$dir/metrics.sync$N.$i.after"
		pairs+=("$dir/metrics.sync$N.$i.before" "$dir/metrics.sync$N.$i.after")
	done
	SYNC_STAGES=$(node "$BENCH_SRC/stages.js" "${pairs[@]}" 2>/dev/null || echo '{}')
	raw "size.$N.stages" "$SYNC_STAGES"

	# -- 5. the raft commit path, from the replicated sync figures
	st=$(agent_status "$L")
	BATCHES=$(json_eval "$st" 'j.sync.batches_total')
	EXPORTED=$(json_eval "$st" 'j.sync.exported_objects')
	raw "size.$N.batches_total" "$BATCHES"
	raw "size.$N.exported_objects" "$EXPORTED"

	# -- 4. memory and disk after the initial sync
	F=$((L % 3 + 1))
	LHWM=$(vm_kb "${AGENT_PID[$L]}" VmHWM) FHWM=$(vm_kb "${AGENT_PID[$F]}" VmHWM)
	SHWM=$(vm_kb "$SLAPD_PID" VmHWM)
	# allocated blocks, not apparent sizes: mdb files are sparse (maxsize 1 GiB)
	LDISK=$(du -s -B1 "$dir/data$L" | cut -f1) SDISK=$(du -s -B1 "$SLAPD_DIR/data" | cut -f1)
	raw "size.$N.leader_vmhwm_kb" "$LHWM"
	raw "size.$N.follower_vmhwm_kb" "$FHWM"
	raw "size.$N.slapd_vmhwm_kb" "$SHWM"
	raw "size.$N.leader_data_bytes" "$LDISK"
	raw "size.$N.slapd_data_bytes" "$SDISK"

	# -- 1b. write ceiling: the same resources into a fresh fixture
	say "  write ceiling: scim-load.js, $MAX_IN_FLIGHT in flight"
	scim_ctl GET store >"$dir/store.json" || fail "cannot read the SCIM store"
	ceiling_scim_start
	# best of 2 (the second on a warm server, emptied first): a ceiling is the
	# best this machine did; the ids of the last run are the ones stored
	WRITE_RATE=0 CEIL_BUSY=-
	for try in 1 2; do
		[ "$try" = 1 ] || curl -sSf -X POST "${CEIL_URL%/scim/v2}/_test/reset" >/dev/null || fail "cannot reset the ceiling fixture"
		cx0=$(cpu_ms "$CEIL_PID")
		load=$(node "$BENCH_SRC/scim-load.js" "$CEIL_URL" "$SCIM_TOKEN_FILE" "$dir/store.json" "$MAX_IN_FLIGHT" "$dir/ceil/ids") ||
			fail "scim-load.js failed: $load"
		[ "$(json_eval "$load" 'j.errors')" = 0 ] || fail "scim-load.js: $load"
		raw "size.$N.write_ceiling_ms.$try" "$(json_eval "$load" 'j.ms')"
		r=$(json_eval "$load" 'Math.round(j.per_s)')
		cb=$(calc "($(cpu_ms "$CEIL_PID") - $cx0) * 100 / $(json_eval "$load" 'Math.max(1, j.ms)')" 0)
		raw "size.$N.write_ceiling_busy_pct.$try" "$cb"
		[ "$r" -gt "$WRITE_RATE" ] && { WRITE_RATE=$r; CEIL_BUSY=$cb; }
	done

	MINC=$(awk -v a="$READ_RATE" -v b="$WRITE_RATE" 'BEGIN { print (a < b ? a : b) }')
	row "1. initial sync, $N users + $G groups (objects/s; ceiling min(read $READ_RATE, write $WRITE_RATE))" \
		"$CANOPY_RATE" "$MINC" "$(ratio "$CANOPY_RATE" "$MINC")"
	row "4. leader peak RSS after sync, $OBJ objects (MiB; ref: slapd's)" \
		"$(calc "$LHWM / 1024" 1)" "$(calc "$SHWM / 1024" 1)" "$(ratio "$LHWM" "$SHWM")"
	row "4. follower peak RSS after sync (MiB; ref: slapd's)" \
		"$(calc "$FHWM / 1024" 1)" "$(calc "$SHWM / 1024" 1)" "$(ratio "$FHWM" "$SHWM")"
	row "4. leader data dir, bytes per object ($(calc "$LDISK / 1048576" 1) MiB on disk; ref: slapd's mdb)" \
		"$(calc "$LDISK / $OBJ" 0)" "$(calc "$SDISK / $OBJ" 0)" "$(ratio "$LDISK" "$SDISK")"
	row "1. initial sync, $N users: the SCIM fixture's CPU busy (%; ceiling: during the best scim-load.js run)" \
		"$FX_BUSY" "${CEIL_BUSY:--}" "$(ratio "$FX_BUSY" "${CEIL_BUSY:--}")"
	for stg in plan intent target commit; do
		row "1. initial sync by stage, $N users: $stg, p50 / p99 / mean (ms per object, on the leaders)" \
			"$(json_eval "$SYNC_STAGES" "j.$stg?.n ? j.$stg.p50 + ' / ' + j.$stg.p99 + ' / ' + j.$stg.mean : '-'")" - -
	done
	if [ "${BATCHES:-0}" -gt 0 ] 2>/dev/null; then
		row "5. raft commit path: batches committed/s during the sync" "$(calc "$BATCHES * 1000 / $SYNC_MS" 1)" - -
		row "5. raft commit path: objects per batch ($EXPORTED objects, $BATCHES batches)" "$(calc "$EXPORTED / $BATCHES" 1)" - -
	else
		row "5. raft commit path: batches committed/s" - - -
		row "5. raft commit path: objects per batch" - - -
	fi

	# -- 2. change latency, on the first size only
	if [ "$FIRST_SIZE" = 1 ]; then
		off=1
		for rate in $RATES; do
			total=$((rate * RATE_S))
			[ $((off + total - 1)) -le "$N" ] || off=1
			say "  change latency at $rate/s for $RATE_S s (users $off..)"
			for i in 1 2 3; do # every agent: leadership may move during the stream
				curl -sf "http://${AGENT_CTL[$i]}/metrics" >"$dir/metrics.$rate.$i.before" || : >"$dir/metrics.$rate.$i.before"
			done
			"$GEN" "$SLAPD_URL" "$SLAPD_ADMIN_DN" "$SLAPD_PW_FILE" "$SLAPD_BASE" "$rate" "$RATE_S" "$off" "$N" "r$rate" \
				>"$dir/gen.$rate" 2>"$dir/gen.$rate.err" || fail "change_gen at $rate/s failed: $(tail -n 3 "$dir/gen.$rate" "$dir/gen.$rate.err")"
			wait_for 60 matched "$dir/gen.$rate" "$SCIM_AUDIT" || say "  not every change reached the target in 60 s"
			lat=$(node "$BENCH_SRC/latency.js" "$dir/gen.$rate" "$SCIM_AUDIT")
			# where the time went on the leader (sync/engine/stages.h), once committed
			L=$(leader_of || echo "$L")
			wait_for 30 sync_idle "$L" || true
			pairs=()
			for i in 1 2 3; do
				curl -sf "http://${AGENT_CTL[$i]}/metrics" >"$dir/metrics.$rate.$i.after" || : >"$dir/metrics.$rate.$i.after"
				pairs+=("$dir/metrics.$rate.$i.before" "$dir/metrics.$rate.$i.after")
			done
			stg=$(node "$BENCH_SRC/stages.js" "${pairs[@]}" 2>/dev/null || echo '{}')
			raw "stages.$rate" "$stg"
			# the ceiling: modify + one PUT by the generator itself, into the ceiling fixture
			cs=$RATE_S
			[ "$MODE" = quick ] && [ "$cs" -gt 5 ] && cs=5
			"$GEN" "$SLAPD_URL" "$SLAPD_ADMIN_DN" "$SLAPD_PW_FILE" "$SLAPD_BASE" "$rate" "$cs" "$off" "$N" "c$rate" \
				"$CEIL_URL" "$SCIM_TOKEN_FILE" "$dir/ceil/ids" >"$dir/ceil.$rate" 2>"$dir/ceil.$rate.err" ||
				fail "change_gen (ceiling) at $rate/s failed: $(tail -n 3 "$dir/ceil.$rate" "$dir/ceil.$rate.err")"
			clat=$(node "$BENCH_SRC/latency.js" "$dir/ceil.$rate" "$CEIL_AUDIT")
			off=$((off + total))
			raw "latency.$rate" "$lat"
			raw "latency_ceiling.$rate" "$clat"
			for p in p50 p99 max; do
				a=$(json_eval "$lat" "j.$p ?? '-'") b=$(json_eval "$clat" "j.$p ?? '-'")
				row "2. change latency at $rate/s, $p (ms; $(json_eval "$lat" 'j.matched')/$(json_eval "$lat" 'j.n') changes seen; sent at $(json_eval "$lat" 'j.rate')/s, ceiling at $(json_eval "$clat" 'j.rate')/s)" "$a" "$b" "$(ratio "$a" "$b")"
			done
			for st in queue plan intent target commit total; do
				row "2. latency by stage at $rate/s: $st, p50 / p99 / mean (ms, on the leaders; $(json_eval "$stg" "j.$st?.n ?? 0") changes)" \
					"$(json_eval "$stg" "j.$st?.n ? j.$st.p50 + ' / ' + j.$st.p99 + ' / ' + j.$st.mean : '-'")" - -
			done
			# let the next stream start on an idle leader
			L=$(leader_of || echo "$L")
			wait_for 60 sync_idle "$L" || true
		done
		FIRST_SIZE=0
	fi
	teardown
done

# -- 6. the object table alone, through the apply path (bench/fill_fsm)
for T in $TABLES; do
	say "object table: bench/fill_fsm --objects $T"
	if ! ft=$("$FILL" --objects "$T" 2>"$dir/fill.$T.err"); then
		say "fill_fsm --objects $T failed: $(tail -n 3 "$dir/fill.$T.err")"
		row "6. object table, $T objects: bench/fill_fsm failed" - - -
		continue
	fi
	raw "table.$T" "$ft"
	f() { json_eval "$ft" "$1"; }
	REC=$(f 'Math.round(j.snapshot_bytes / j.objects)')
	row "6. object table, $T objects: RSS bytes per object after the fill (ref: record bytes per object)" \
		"$(f 'Math.round(j.rss_bytes_per_object)')" "$REC" "$(ratio "$(f 'j.rss_bytes_per_object')" "$REC")"
	row "6. object table, $T objects: peak RSS during fill + snapshot (MiB)" "$(calc "$(f 'j.fill_hwm_kb') / 1024" 1)" - -
	row "6. object table, $T objects: data dir bytes per object (ref: record bytes per object)" \
		"$(f 'Math.round(j.data_dir_bytes_per_object)')" "$REC" "$(ratio "$(f 'j.data_dir_bytes_per_object')" "$REC")"
	row "6. object table, $T objects: snapshot taken and written (ms; $(calc "$(f 'j.snapshot_bytes') / 1048576" 1) MiB before compression)" \
		"$(f 'Math.round(j.snapshot_taken_ms)')" - -
	row "6. object table, $T objects: restart from the snapshot, start -> restored (ms; $(f 'Math.round(j.restart_start_cpu_ms)') ms of CPU; RSS $(calc "$(f 'j.restart_rss_kb') / 1024" 1) MiB after)" \
		"$(f 'Math.round(j.restart_start_ms)')" - -
done

# -- 3. failover: bench/failover.sh with everything above stopped
say "failover: bench/failover.sh $KILLS 1000"
mkdir -p "$dir/failover"
env -u FIXTURE_TMP CANOPY_BUILD_DIR="$BUILD" BENCH_KEEP="$dir/failover" \
	bash "$BENCH_SRC/failover.sh" "$KILLS" 1000 >"$dir/failover.out" 2>"$dir/failover.err"
frc=$?
raw failover.exit "$frc"
med() { # METRIC PART: median of rounds.tsv's values
	awk -F'\t' -v m="$1" -v p="$2" '$1 == p && $3 == m && $4 != "" { print $4 }' "$dir/failover/rounds.tsv" 2>/dev/null |
		sort -n | awk '{ v[NR] = $1 } END { if (NR == 0) print "-"; else print (NR % 2 ? v[(NR + 1) / 2] : (v[NR / 2] + v[NR / 2 + 1]) / 2) }'
}
mx() { awk -F'\t' -v m="$1" -v p="$2" '$1 == p && $3 == m && $4 != "" { print $4 }' "$dir/failover/rounds.tsv" 2>/dev/null | sort -n | tail -n 1; }
BL=$(med kill_to_leader bare) BR=$(med kill_to_ready bare)
CR=$(med kill_to_ready_leader canopy) CW=$(med kill_to_first_write canopy)
raw failover.bare_kill_to_leader_median "$BL"
raw failover.bare_kill_to_ready_median "$BR"
raw failover.canopy_kill_to_ready_leader_median "$CR"
raw failover.canopy_kill_to_first_write_median "$CW"
raw failover.canopy_kill_to_first_write_max "$(mx kill_to_first_write canopy)"
row "3. failover, kill -> new ready leader, median of $KILLS (ms; ceiling: bare libraft kill -> leader)" "$CR" "$BL" "$(ratio "$CR" "$BL")"
row "3. failover, kill -> new ready leader, median (ms; ceiling: bare libraft kill -> barrier)" "$CR" "$BR" "$(ratio "$CR" "$BR")"
row "3. failover, kill -> first SCIM write, median (ms; ceiling: bare libraft kill -> leader)" "$CW" "$BL" "$(ratio "$CW" "$BL")"
row "3. failover, kill -> first SCIM write, max (ms; bound: T = 1000)" "$(mx kill_to_first_write canopy)" 1000 "$(ratio "$(mx kill_to_first_write canopy)" 1000)"
[ "$frc" = 0 ] || [ "$frc" = 3 ] || say "failover.sh exited $frc: $(tail -n 5 "$dir/failover.err")"

# -- the table
HOST=$(hostname -s 2>/dev/null || hostname)
STAMP=$(date -u +%Y%m%d-%H%M)
mkdir -p "$RESULTS"
OUT_MD=$RESULTS/$STAMP-$HOST.md OUT_JSON=$RESULTS/$STAMP-$HOST.json
{
	echo "canopy bench ($MODE): $(date -u '+%Y-%m-%d %H:%M UTC'), $HOST, $(nproc) cores, Release build, 3 agents on loopback, T = 1000 ms"
	echo "command: bench/run.sh$([ "$MODE" = quick ] && echo " --quick")   (wall time ${SECONDS} s)"
	echo
	echo "| what | canopy | ceiling | ratio |"
	echo "|---|---:|---:|---:|"
	sort -s -k2,2n "$ROWS" # by row number, in the order measured within one
	echo
	echo "ratio = canopy / ceiling. Rows 1: higher is better (1.00 = as fast as the slower of reading and writing alone)."
	echo "Rows 2 and 3: lower is better (1.00 = canopy adds nothing). Rows 4 and 6: a reference, not a limit. Rows 5: no ceiling."
} >"$dir/table.md"
node -e '
	const fs = require("fs");
	const o = {};
	for (const l of fs.readFileSync(process.argv[1], "utf8").split("\n").filter(Boolean)) {
		const i = l.indexOf("\t"), k = l.slice(0, i), v = l.slice(i + 1);
		let x; try { x = JSON.parse(v); } catch { x = v; }
		o[k] = x;
	}
	o.mode = process.argv[2]; o.host = process.argv[3]; o.date = new Date().toISOString();
	fs.writeFileSync(process.argv[4], JSON.stringify(o, null, 1) + "\n");
' "$RAW" "$MODE" "$HOST" "$OUT_JSON"
cp "$dir/table.md" "$OUT_MD"
cat "$dir/table.md"
say "saved $OUT_MD and $OUT_JSON"
exit 0
