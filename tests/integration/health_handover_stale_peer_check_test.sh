#!/usr/bin/env bash
# A leader that cannot use its target hands leadership only to a voter whose
# own target check is newer than the leader's failure (agent/health_pick.h),
# never on the strength of a check made before the fault.
#
# Three agents share one token. Right after a follower's target check said
# ok (and was reported to the leader), the target's token is rotated and a
# change is made, so the leader's sync meets the 401 at once: the leader's
# failure begins while that follower's latest report still says ok -- made
# before the fault, and its next check is ~5 s away. The old rule (any ok
# report at most 15 s old) handed leadership to it (the quarantine_resume_test
# flake). Now the leader asks for a newer check, every voter's says
# unauthorized, and the leader stays, quarantined (target_unauthorized), with
# no hand-over and no new term.
source "$(dirname "$0")/../fixtures/sync.sh"
dir=$(fixture_tmpdir)

sync_setup 5 1
sync_start_cluster 3
users_are() { [ "$(scim_count Users)" = "$1" ]; }
wait_until 60 users_are 5 || fail "initial sync: $(scim_count Users) users"
wait_until 30 idle_leader 1 2 3 || fail "no idle leader"
leader=$(idle_leader 1 2 3)
term=$(json_eval "$(agent_status "$leader")" 'j.term')
followers=$(for i in 1 2 3; do [ "$i" != "$leader" ] && echo "$i"; done)
st_of() { json_eval "$(agent_status "$1" 2>/dev/null || echo '{}')" "$2"; }
metric_of() { curl -sf --max-time 5 "http://${AGENT_CTL[$1]}/metrics" | awk -v m="$2" '$1==m{print $2}'; }
log_of() { agent_logs "$1"; }
now_ms() { local t=${EPOCHREALTIME/./}; echo $((t / 1000)); }

# The leader holds an ok report from every voter: there is someone to hand
# over to, as far as the reports' age goes.
voters_ok() { [ "$(st_of "$leader" '(j.cluster_health.voters||[]).filter(v=>v.target==="ok").length')" = 3 ]; }
wait_until 20 voters_ok || fail "leader $leader lacks ok reports: $(st_of "$leader" 'j.cluster_health')"

# A follower whose target check (reported with it) is a moment old: its
# next periodic check is ~5 s (HEALTH_PROBE_MS) after checked_ms.
just_checked() {
	local i age
	for i in $followers; do
		age=$(st_of "$i" '(t => t.state === "ok" && t.age_ms !== null && t.age_ms < 400 ? t.age_ms : "no")(j.health.target)')
		[ "$age" != no ] && [ -n "$age" ] && { peer=$i; checked_ms=$(($(now_ms) - age)); return 0; }
	done
	return 1
}
wait_until 20 just_checked || fail "no follower checked its target: $(for i in $followers; do st_of "$i" 'j.health.target'; done)"

# The token is rotated for every agent, and a change makes the leader's sync write.
peer_fails_before=$(log_of "$peer" | grep -c 'msg="target check failed"' || true)
episodes_before=$(log_of "$leader" | grep -c 'msg="this leader cannot use its source or target' || true)
scim_set_token "rotated-$RANDOM$RANDOM"
slapd_ldapmodify <<LDIF >/dev/null || fail "ldapadd"
dn: uid=stalecheck,ou=people,$SLAPD_BASE
changetype: add
objectClass: inetOrgPerson
uid: stalecheck
cn: Stale Check
sn: Check
LDIF

# The leader finds its target unusable and looks for a voter to hand over to.
episode() { [ "$(log_of "$leader" | grep -c 'msg="this leader cannot use its source or target')" -gt "$episodes_before" ]; }
wait_until 30 episode || fail "leader $leader never found its target unusable: $(st_of "$leader" 'j.sync')"
log_ms() { date -d "$(grep -o '^time=[^ ]*' | tail -n 1 | cut -d= -f2)" +%s%3N; }
began=$(log_of "$leader" | grep 'msg="this leader cannot use its source or target' | log_ms)
# The case under test: the leader decided to hand over before follower
# $peer's next periodic check, so that check's ok report from before the
# fault could still be its latest.
[ "$((began - checked_ms))" -lt 4800 ] ||
	fail "the leader's failure began $((began - checked_ms)) ms after follower $peer's check: not the case under test"
# The leader waits for a newer check, and asks for it: follower $peer
# checks again at once, before its period is over.
peer_failed() { [ "$(log_of "$peer" | grep -c 'msg="target check failed"')" -gt "$peer_fails_before" ]; }
wait_until 20 peer_failed || fail "follower $peer never found the rotated token: $(st_of "$peer" 'j.health')"
peer_at=$(log_of "$peer" | grep 'msg="target check failed"' | log_ms)
[ "$((peer_at - checked_ms))" -lt 4500 ] ||
	fail "follower $peer checked again only $((peer_at - checked_ms)) ms after its ok check: not asked by the leader"
pass "leader $leader's failure began $((began - checked_ms)) ms after follower $peer's ok check (period 5000 ms); asked, $peer checked again after $((peer_at - checked_ms)) ms: unauthorized"

# Every voter has now said unauthorized to the leader (or leadership moved).
settled() {
	[ "$(st_of "$leader" 'j.role !== "leader" || j.cluster_health.target === "unavailable"')" = true ]
}
wait_until 20 settled || fail "leader $leader: no verdict: $(st_of "$leader" 'j.cluster_health')"
if log_of "$leader" | grep -q 'msg="handing leadership over"'; then
	fail "leader $leader handed over on a check older than its failure: $(log_of "$leader" | grep -E 'handing leadership over|handed over' | head -n 2)"
fi
[ "$(metric_of "$leader" canopy_health_handovers_total)" = 0 ] ||
	fail "canopy_health_handovers_total on $leader: $(metric_of "$leader" canopy_health_handovers_total)"
[ "$(st_of "$leader" 'j.role + " " + j.term')" = "leader $term" ] ||
	fail "leader $leader (term $term) now: $(st_of "$leader" 'j.role + " term " + j.term')"
log_of "$leader" | grep -q 'level=warn.*msg="no other voter reports a working source and target; staying leader' ||
	fail "leader $leader did not say it stays"
pass "no hand-over: $leader still leads in term $term, cluster_health.target unavailable"

quarantined() { [ "$(st_of "$leader" '(j.sync.quarantine||{}).reason')" = target_unauthorized ]; }
wait_until 20 quarantined || fail "leader $leader not quarantined: $(st_of "$leader" 'j.sync')"
[ "$(st_of "$leader" 'j.role + " " + j.term')" = "leader $term" ] ||
	fail "leader $leader (term $term) now: $(st_of "$leader" 'j.role + " term " + j.term')"
pass "leader $leader stayed and is quarantined (target_unauthorized), as a lone agent would be"
