#!/usr/bin/env bash
# deploy/rolling-upgrade.sh -- upgrade a canopy cluster one agent at a time,
# without stopping the sync (docs/operations.md, "Rolling upgrades").
#
#   deploy/rolling-upgrade.sh --server HOST:PORT --version TEXT [options]
#
# For each agent -- the followers first, the leader last, after handing its
# leadership to an upgraded voter with `canopyctl cluster transfer` -- run the
# restart command (which stops the agent and starts it on the new build),
# wait until it answers again, reports the new version, is a member with the
# leader's entries applied (applied_index within --max-lag of the leader's
# commit_index) and the leader has recorded its version, then go on. Any step
# that does not complete within --timeout aborts the upgrade with the reason;
# the agents already upgraded stay upgraded (a mixed cluster is safe: the
# leader writes the newer entry format only once every member supports it).
#
# Options:
#   -s, --server HOST:PORT   any agent's control address (default: $CANOPY_SERVER)
#   --version TEXT           what the upgraded agents must report: the new
#                            build's `canopy-agent --version` line
#   --version-from BINARY    read TEXT from `BINARY --version` instead
#   --restart-cmd CMD        restarts one agent on the new build; {id}, {host}
#                            (of its control address) and {control} (its control
#                            address) are replaced. Run with bash -c. Default:
#                            ssh {host} sudo systemctl restart canopy-agent
#   --control ID=HOST:PORT   an agent's control address when the cluster does not
#                            know it (repeatable)
#   --canopyctl PATH         the canopyctl to use (default: canopyctl in PATH)
#   -t, --token-file FILE    the control token (cluster transfer needs it when
#                            the agents have one; default: $CANOPY_TOKEN_FILE)
#   --timeout SECS           for each step (default 120)
#   --max-lag N              entries an agent may trail the leader by and count
#                            as caught up (default 10)
#   --dry-run                print the order and the commands, change nothing
#   -h, --help               this help
#
# While it runs it polls every agent's /v1/status (every 100 ms plus the time
# the polls take) and at the end prints the export gap it measured: the
# longest stretch during which no agent was a ready leader able to export
# (sync state refreshing, syncing or idle), to the precision of the sampling
# (it says how often it sampled). The target's own record is more precise.
# Exit status: 0 when every agent runs TEXT, 1 when a step failed, 2 for a
# usage error. Needs bash, curl and jq.
set -uo pipefail

server=${CANOPY_SERVER:-}
version=
restart_cmd='ssh {host} sudo systemctl restart canopy-agent'
canopyctl=canopyctl
token_file=${CANOPY_TOKEN_FILE:-}
timeout=120
max_lag=10
dry_run=0
declare -A ctl=()

usage() {
	sed -n '2,/^set -uo/p' "$0" | sed '$d' | sed 's/^# \{0,1\}//'
	exit "${1:-0}"
}
die() { echo "rolling-upgrade: $*" >&2; exit 2; }
abort() {
	echo "rolling-upgrade: ABORTED: $*" >&2
	gap_report
	exit 1
}
say() { printf '%s %s\n' "$(date -u +%H:%M:%S.%3N)" "$*"; }
now_ms() { local t=${EPOCHREALTIME/./}; echo $((t / 1000)); }

while [ $# -gt 0 ]; do
	case $1 in
	-s | --server) server=${2:?}; shift ;;
	--version) version=${2:?}; shift ;;
	--version-from) version=$("${2:?}" --version) || die "cannot run $2 --version"; shift ;;
	--restart-cmd) restart_cmd=${2:?}; shift ;;
	--control)
		[[ ${2:-} =~ ^([0-9]+)=(.+:[0-9]+)$ ]] || die "--control wants ID=HOST:PORT, not \"${2:-}\""
		ctl[${BASH_REMATCH[1]}]=${BASH_REMATCH[2]}
		shift ;;
	--canopyctl) canopyctl=${2:?}; shift ;;
	-t | --token-file) token_file=${2:?}; shift ;;
	--timeout) timeout=${2:?}; shift ;;
	--max-lag) max_lag=${2:?}; shift ;;
	--dry-run) dry_run=1 ;;
	-h | --help) usage 0 ;;
	*) echo "rolling-upgrade: unknown argument \"$1\"" >&2; usage 2 ;;
	esac
	shift
done
[ -n "$server" ] || die "--server HOST:PORT (or CANOPY_SERVER) is needed"
[ -n "$version" ] || die "--version TEXT or --version-from BINARY is needed"
[[ $timeout =~ ^[0-9]+$ && $max_lag =~ ^[0-9]+$ ]] || die "--timeout and --max-lag are numbers"
for tool in curl jq; do
	command -v "$tool" >/dev/null || die "$tool is needed"
done

status_of() { curl -sf --max-time 2 "http://$1/v1/status"; }

ctl_run() {
	local args=(--server "$1")
	shift
	[ -n "$token_file" ] && args+=(--token-file "$token_file")
	"$canopyctl" "${args[@]}" "$@"
}

# The leader's status (following the leader id any agent names); sets
# LEADER_ID, LEADER_CTL and LEADER_STATUS, or fails.
find_leader() {
	local s id a
	for a in "$server" "${ctl[@]}"; do
		s=$(status_of "$a") || continue
		id=$(jq -r '.leader.id // empty' <<<"$s")
		[ -n "$id" ] || continue
		if [ "$(jq -r '.node_id' <<<"$s")" = "$id" ]; then
			LEADER_ID=$id LEADER_STATUS=$s
		else
			a=${ctl[$id]:-$(jq -r --argjson id "$id" '.members[] | select(.id == $id) | .control_address // empty' <<<"$s")}
			[ -n "$a" ] || continue
			s=$(status_of "$a") || continue
			[ "$(jq -r '.role + (.leader_ready|tostring)' <<<"$s")" = leadertrue ] || continue
			LEADER_ID=$id LEADER_STATUS=$s
		fi
		[ "$(jq -r '.leader_ready' <<<"$LEADER_STATUS")" = true ] && return 0
	done
	return 1
}

# wait_for SECS WHAT CMD...: polls CMD every 200 ms; aborts naming WHAT.
wait_for() {
	local secs=$1 what=$2 end
	shift 2
	end=$((SECONDS + secs))
	until "$@"; do
		((SECONDS < end)) || abort "$what: not within ${secs}s"
		sleep 0.2
	done
}

# ---- the export gap, sampled in the background ------------------------------

gap_file=$(mktemp "${TMPDIR:-/tmp}/rolling-upgrade.XXXXXX")
gap_pid=
cleanup() {
	[ -n "$gap_pid" ] && kill "$gap_pid" 2>/dev/null && wait "$gap_pid" 2>/dev/null
	rm -f "$gap_file"
}
trap cleanup EXIT

# One line per sample into $gap_file: "<ms> 1" when some agent was a ready
# leader able to export, "<ms> 0" otherwise.
gap_sampler() {
	local urls=() a ok
	for a in "${ctl[@]}"; do urls+=("http://$a/v1/status"); done
	while :; do
		# one curl for every agent (its answers are JSON texts one after
		# the other, which jq -s reads as a list): cheap enough for 10 Hz
		ok=$(curl -sf --max-time 0.5 "${urls[@]}" 2>/dev/null |
			jq -s '[.[] | select(.role == "leader" and .leader_ready == true and
				(.sync.state == "refreshing" or .sync.state == "syncing" or .sync.state == "idle"))] | length > 0' 2>/dev/null)
		echo "$(now_ms) $([ "$ok" = true ] && echo 1 || echo 0)" >>"$gap_file"
		sleep 0.1
	done
}

# Prints the longest stretch without an exporting leader, from the samples.
gap_report() {
	[ -s "$gap_file" ] || return 0
	awk '
		{ if ($2 == 1) { if (down) { g = $1 - since; if (g > max) max = g; down = 0 } last_up = $1 }
		  else if (!down) { down = 1; since = (last_up ? last_up : $1) }
		  if (!n) first = $1; n++ }
		END { if (down) { g = $1 - since; if (g > max) max = g }
		      printf "export gap: longest stretch without a ready, exporting leader: %d ms (%d samples, one every %d ms)\n",
			max, n, (n > 1 ? ($1 - first) / (n - 1) : 0) }' "$gap_file"
}

# ---- plan --------------------------------------------------------------------

find_leader || abort "no ready leader answers (asked $server)"
members=$(jq -r '.members[] | select(.role == "voter" or .role == "standby" or .role == "spare") | .id' <<<"$LEADER_STATUS")
for id in $members; do
	[ -n "${ctl[$id]:-}" ] && continue
	a=$(jq -r --argjson id "$id" '.members[] | select(.id == $id) | .control_address // empty' <<<"$LEADER_STATUS")
	[ -n "$a" ] || abort "the control address of agent $id is not known to the cluster: pass --control $id=HOST:PORT"
	ctl[$id]=$a
done
order=()
for id in $members; do [ "$id" != "$LEADER_ID" ] && order+=("$id"); done
order+=("$LEADER_ID")

say "upgrading ${#order[@]} agents to \"$version\"; leader $LEADER_ID; order: ${order[*]}"
for id in "${order[@]}"; do
	v=$(jq -r --argjson id "$id" '.members[] | select(.id == $id) | .version // "(not recorded)"' <<<"$LEADER_STATUS")
	say "  agent $id at ${ctl[$id]}: $v"
done
if [ "$dry_run" = 1 ]; then
	for id in "${order[@]}"; do
		c=${restart_cmd//\{id\}/$id}; c=${c//\{control\}/${ctl[$id]}}; c=${c//\{host\}/${ctl[$id]%:*}}
		say "would run: $c"
	done
	exit 0
fi

gap_sampler &
gap_pid=$!

# ---- one agent at a time -----------------------------------------------------

agent_is_new() {
	local s
	s=$(status_of "${ctl[$1]}") || return 1
	[ "$(jq -r '.version.text // empty' <<<"$s")" = "$version" ]
}

agent_caught_up() {
	local s applied commit
	find_leader || return 1
	s=$(status_of "${ctl[$1]}") || return 1
	# a member again, following (or leading) with a leader it knows
	[ "$(jq -r '.leader.id // empty' <<<"$s")" = "$LEADER_ID" ] || return 1
	applied=$(jq -r '.applied_index' <<<"$s")
	commit=$(jq -r '.commit_index' <<<"$LEADER_STATUS")
	[ $((commit - applied)) -le "$max_lag" ] || return 1
	# and the leader recorded the version it runs now (status members[]);
	# a leader on a build older than versioned members records nothing
	[ "$(jq -r --argjson id "$1" --arg v "$version" \
		'.members[] | select(.id == $id) | if has("version") then .version == $v else true end' <<<"$LEADER_STATUS")" = true ]
}

leader_elsewhere() {
	find_leader && [ "$LEADER_ID" != "$1" ]
}

n=0
for id in "${order[@]}"; do
	n=$((n + 1))
	if agent_is_new "$id" && agent_caught_up "$id"; then
		say "[$n/${#order[@]}] agent $id already runs \"$version\": skipped"
		continue
	fi
	find_leader || abort "no ready leader before upgrading agent $id"
	if [ "$LEADER_ID" = "$id" ]; then
		say "[$n/${#order[@]}] agent $id leads: handing leadership over"
		out=$(ctl_run "${ctl[$id]}" cluster transfer 2>&1) || abort "cluster transfer from agent $id: $out"
		wait_for "$timeout" "a ready leader other than agent $id" leader_elsewhere "$id"
		say "[$n/${#order[@]}] agent $LEADER_ID leads now"
	fi
	c=${restart_cmd//\{id\}/$id}; c=${c//\{control\}/${ctl[$id]}}; c=${c//\{host\}/${ctl[$id]%:*}}
	say "[$n/${#order[@]}] restarting agent $id: $c"
	t0=$(now_ms)
	rc=0
	out=$(bash -c "$c" 2>&1) || rc=$?
	[ "$rc" = 0 ] || abort "restart command for agent $id failed (exit $rc)${out:+: $out}"
	wait_for "$timeout" "agent $id answering with version \"$version\"" agent_is_new "$id"
	wait_for "$timeout" "agent $id caught up with leader (within $max_lag entries) and its version recorded" agent_caught_up "$id"
	say "[$n/${#order[@]}] agent $id upgraded and caught up in $(($(now_ms) - t0)) ms (leader $LEADER_ID writes format $(jq -r '.format.writing // "?"' <<<"$LEADER_STATUS"))"
done

find_leader || abort "no ready leader after the upgrade"
say "done: every agent runs \"$version\"; leader $LEADER_ID writes entry format $(jq -r '.format.writing // "?"' <<<"$LEADER_STATUS")"
gap_report
