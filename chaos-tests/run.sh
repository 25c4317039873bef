#!/usr/bin/env bash
# chaos-tests/run.sh [--long [DURATION]] [SCENARIO...] -- run chaos scenarios
# one after the other and print each verdict (chaos-tests/README.md).
#
#   chaos-tests/run.sh                       every scenario, short mode (CI: ctest -L chaos)
#   chaos-tests/run.sh leader-kill partition two of them
#   chaos-tests/run.sh --long 1800 loss      one scenario for 30 minutes
#
# SCENARIO is a name in chaos-tests/scenarios/ (without .sh). Each run's
# output goes to CHAOS_LOG_DIR (default: a new directory under /tmp, printed);
# a failed scenario's temp dir is kept when CANOPY_KEEP_FAILED=1. Exit status:
# 0 when every scenario passed, 1 otherwise. Env for the scenarios: CHAOS_SEED
# (repeat a run), CHAOS_T (election timeout ms), CANOPY_BUILD_DIR (default
# <source>/build).
set -u
here=$(cd "$(dirname "$0")" && pwd)
export CANOPY_SOURCE_DIR=${CANOPY_SOURCE_DIR:-$(cd "$here/.." && pwd)}
export CANOPY_BUILD_DIR=${CANOPY_BUILD_DIR:-$CANOPY_SOURCE_DIR/build}
mode=()
while [ $# -gt 0 ]; do
	case $1 in
	--long)
		mode=(--long)
		if [[ ${2:-} =~ ^[0-9]+$ ]]; then mode+=("$2"); shift; fi
		shift ;;
	-h | --help) sed -n '2,/^set -u/p' "$0" | sed '$d; s/^# \{0,1\}//'; exit 0 ;;
	-*) echo "usage: $0 [--long [DURATION]] [SCENARIO...]" >&2; exit 2 ;;
	*) break ;;
	esac
done
# The order of the issue's priorities: the most important first.
all=(leader-kill leader-pause partition flap loss raft-faults scim-faults slapd-restart slapd-replica-failover
	follower-disk-full raft-segment-damage clock-jump clock-jump-retry late-create)
[ $# -gt 0 ] && all=("$@")
logs=${CHAOS_LOG_DIR:-$(mktemp -d /tmp/canopy-chaos-logs.XXXXXX)}
mkdir -p "$logs"
echo "chaos: logs in $logs"
failed=0
for s in "${all[@]}"; do
	script=$here/scenarios/$s.sh
	[ -f "$script" ] || { echo "verdict $s: FAIL no such scenario ($script)"; failed=1; continue; }
	t0=$SECONDS
	bash "$script" "${mode[@]+"${mode[@]}"}" >"$logs/$s.log" 2>&1
	rc=$?
	grep -E '^(chaos:|leader-kill figures)' "$logs/$s.log"
	v=$(grep -E '^verdict ' "$logs/$s.log" | tail -n1)
	[ -n "$v" ] || v="verdict $s: FAIL exit $rc before a verdict ($(grep -m1 '^FAIL:' "$logs/$s.log"))"
	echo "$v ($((SECONDS - t0)) s, log $logs/$s.log)"
	[ "$rc" = 0 ] || failed=1
done
exit "$failed"
