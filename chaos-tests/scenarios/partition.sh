#!/usr/bin/env bash
# chaos-tests/scenarios/partition.sh [--long [SECS]] -- the leader alone in a
# minority partition while the change stream goes on.
#
# Round kinds, alternating:
#   peers     the leader loses its peers but still reaches slapd and the
#             target (the link between two sites breaks): the danger case,
#             since it could go on writing. Its lease must run out before the
#             majority's new leader writes.
#   isolated  the leader loses everything (its host's link is cut in nftables).
# Per round: a new leader must be ready in the majority and write; while the
# partition holds (5 s short, 20 s long; CHAOS_HOLD_S), no 2xx write of the old term may be
# audited after the new term's first write; after healing, the old leader
# must become a follower.
#
# Short mode: one round of each. Long mode: rounds until SECS are over.
source "$(dirname "$0")/../lib/scenario.sh"
scenario_init partition "$@"

T=${CHAOS_T:-1000}
HOLD_S=${CHAOS_HOLD_S:-$([ "$CHAOS_LONG" = 1 ] && echo 20 || echo 5)}
export ELECTION_TIMEOUT_MS=$T HEARTBEAT_MS=$((T / 10))
chaos_cluster 3
chaos_workload_start "${CHAOS_RATE:-20}"
sleep 1

round=0
partition_round() {
	local kind=$1 L LT rest=() i k NL NT first late
	round=$((round + 1))
	wait_for 30 host_leader || { chaos_bad "round $round: no ready leader before the partition"; return 1; }
	L=$(host_leader)
	LT=$(host_term "$L")
	for i in 1 2 3; do [ "$i" != "$L" ] && rest+=("$i"); done
	k=$(now_ms)
	case $kind in
	peers) host_partition "$L" "${rest[*]}" ;;
	isolated) host_isolate "$L" ;;
	esac
	_new() { local n; n=$(host_leader "${rest[@]}") && [ "$(host_term "$n")" -gt "$LT" ]; }
	if ! wait_for 15 _new; then
		hosts_heal
		chaos_bad "round $round ($kind): no new leader in the majority 15 s after cutting off $L"
		return 1
	fi
	NL=$(host_leader "${rest[@]}")
	NT=$(host_term "$NL")
	_wrote() { node "$CHAOS_DIR/lib/audit.js" first-write "$SCIM_AUDIT" "$NT"; }
	wait_for 15 _wrote || chaos_bad "round $round ($kind): the new leader $NL wrote nothing in term $NT"
	first=$(_wrote)
	sleep "$HOLD_S"
	late=$(node "$CHAOS_DIR/lib/audit.js" term-after "$SCIM_AUDIT" "$LT" "${first:-$k}")
	hosts_heal
	_follows() { [ "$(json_eval "$(agent_status "$L")" 'j.role')" = follower ]; }
	wait_for 20 _follows || chaos_bad "round $round ($kind): the old leader $L is no follower 20 s after healing"
	say "round $round ($kind): cut off $L (term $LT) for ${HOLD_S}s -> $NL leads term $NT, first write after $((${first:-$k} - k)) ms; old-term writes after it: $late"
	[ "$late" = 0 ] || chaos_bad "round $round ($kind): $late writes of term <= $LT after term $NT's first write (the cut-off leader kept writing)"
}

if [ "$CHAOS_LONG" = 1 ]; then
	while [ "$(chaos_elapsed_s)" -lt "$CHAOS_DURATION" ]; do
		partition_round peers || break; sleep 2
		partition_round isolated || break; sleep 2
	done
else
	partition_round peers && sleep 2 && partition_round isolated
fi
chaos_verdict
