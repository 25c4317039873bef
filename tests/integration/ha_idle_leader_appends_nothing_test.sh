#!/usr/bin/env bash
# An idle leader keeps its write lease on heartbeat answers alone: its raft
# log does not grow while nothing changes (it used to append a renewal
# barrier every T'/3, about nine entries a second at T = 1 s, forever), and
# a change right after the idle stretch still goes out at once and commits.
source "$(dirname "$0")/../fixtures/sync.sh"
dir=$(fixture_tmpdir)

sync_setup 20 2
sync_start_cluster 3
users_are() { [ "$(scim_count Users)" = "$1" ]; }
wait_until 60 users_are 20 || fail "initial sync"
wait_until 30 idle_leader 1 2 3 || fail "no idle leader"
L=$(idle_leader 1 2 3)
st() { json_eval "$(agent_status "$L")" "$1"; }
renewals() { st 'j.failover.lease_heartbeat_renewals'; }

# Settle: the initial sync's last commits and the members' version records
# are in; the log then stays put while heartbeats renew the lease.
r=$(renewals)
[[ "$r" =~ ^[0-9]+$ ]] || fail "status has no failover.lease_heartbeat_renewals: $r"
log_still() { # the last index unchanged over 5 renewals
	local a b r0
	a=$(st 'j.last_index') r0=$(renewals)
	wait_until 10 renewed_since "$r0" 5 || return 1
	b=$(st 'j.last_index')
	[ "$a" = "$b" ]
}
renewed_since() { [ "$(renewals)" -ge $(($1 + $2)) ]; }
wait_until 30 log_still || fail "the idle leader's log kept growing: last_index $(st 'j.last_index')"

# The idle stretch: 30 heartbeat renewals (about 3 s at T = 1 s) -- the
# progress marker that the leader had every chance to append.
i0=$(st 'j.last_index') r0=$(renewals) b0=$(st 'j.failover.lease_renewal_barriers') term0=$(st 'j.term')
wait_until 30 renewed_since "$r0" 30 || fail "the lease was not renewed by heartbeats: $(renewals) renewals (from $r0)"
i1=$(st 'j.last_index') b1=$(st 'j.failover.lease_renewal_barriers')
[ "$(st 'j.role')/$(st 'j.term')/$(st 'j.leader_ready')" = "leader/$term0/true" ] ||
	fail "node $L is no longer the ready leader of term $term0: $(st 'j.role') term $(st 'j.term')"
[ "$i1" = "$i0" ] || fail "the idle leader's log grew from $i0 to $i1 over $(($(renewals) - r0)) heartbeat renewals ($((b1 - b0)) renewal barriers)"
[ "$b1" = "$b0" ] || fail "$((b1 - b0)) renewal barriers while idle"
pass "idle leader $L: last_index stayed $i0 over $(($(renewals) - r0)) heartbeat renewals, no barrier"

# And it may still write at once: a change goes out and commits.
slapd_ldapmodify <<LDIF >/dev/null
dn: uid=user00003,ou=people,$SLAPD_BASE
changetype: modify
replace: sn
sn: AfterIdle
LDIF
sn_is() { [ "$(scim_ctl GET store | json_get "(j.Users.find(u=>u.userName==='user00003')||{name:{}}).name.familyName")" = AfterIdle ]; }
wait_until 20 sn_is || fail "the change after the idle stretch did not reach the target"
grew() { [ "$(st 'j.commit_index')" -gt "$i0" ]; }
wait_until 10 grew || fail "the change's batch did not commit (commit_index $(st 'j.commit_index'))"
pass "a change after the idle stretch reached the target and committed (commit_index $(st 'j.commit_index'))"
