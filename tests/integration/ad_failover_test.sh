#!/usr/bin/env bash
# Failover with the Active Directory source: three agents, a Samba AD DC.
# After the initial sync, 200 users are added and 300 modified at once; the
# leader is SIGKILLed while it writes them. The new leader starts from the
# replicated DirSync cookie (its cache is empty: it reads the domain once,
# silently, then continues from the cookie): every change is in the target,
# no object is created twice, no older term writes after a newer one, and
# the new leader writes only users of the change set (it did not re-export
# the directory). source.url lists a dead DC first: every agent moves on to
# the live one.
source "$(dirname "$0")/../fixtures/ad_sync.sh"

USERS=1000 NGROUPS=10 BIG=100 NEW=200 MOD=300
ad_sync_setup $USERS $NGROUPS $BIG
AD_EXTRA_URL=ldaps://127.0.0.1:1 # nothing listens there
for i in 1 2 3; do agent_ports $i; done
members="[\"1@${AGENT_RAFT[1]}\", \"2@${AGENT_RAFT[2]}\", \"3@${AGENT_RAFT[3]}\"]"
for i in 1 2 3; do ad_agent_config $i "$members"; done
for i in 1 2 3; do agent_start $i; done

wait_until 20 ready_leader 1 2 3 || fail "no leader"
L=$(ready_leader 1 2 3)
all() { [ "$(scim_count Users)" = "$1" ] && [ "$(scim_count Groups)" = $((NGROUPS + 1)) ]; }
wait_until 60 all $USERS || fail "initial sync: $(scim_count Users) users: $(agent_status "$L")"
wait_until 30 idle_leader "$L" >/dev/null || fail "leader $L not idle after the initial sync"
pass "initial sync by leader $L: $USERS users, $((NGROUPS + 1)) groups"

scim_fault '{"delayMs":20,"count":-1}' # keep the leader busy long enough to kill into
ldif="$(fixture_tmpdir)/changes.ldif"
{
	for ((i = USERS + 1; i <= USERS + NEW; i++)); do
		printf 'dn: CN=user%05d,%s\nchangetype: add\nobjectClass: user\nsAMAccountName: user%05d\n' "$i" "$SAMBA_PEOPLE" "$i"
		printf 'givenName: New\nsn: User%d\ndisplayName: New User %d\nmail: user%05d@canopy.test\nuserAccountControl: 512\n\n' "$i" "$i" "$i"
	done
	for ((i = 1; i <= MOD; i++)); do
		printf 'dn: CN=user%05d,%s\nchangetype: modify\nreplace: displayName\ndisplayName: Failover %d\n\n' "$i" "$SAMBA_PEOPLE" "$i"
	done
} >"$ldif"
before=$(scim_ctl GET audit | json_get 'j.length')
samba_ldapmodify -f "$ldif" >/dev/null || fail "add $NEW users, modify $MOD"
started() { [ "$(scim_ctl GET audit | json_get "j.slice($before).filter(a => a.status < 300).length")" -ge 20 ]; }
wait_until 30 started || fail "the leader did not start writing the changes"
agent_stop "$L" KILL
rest=(); for i in 1 2 3; do [ "$i" != "$L" ] && rest+=("$i"); done
done_at_kill=$(scim_ctl GET audit | json_get "j.slice($before).filter(a => a.status < 300).length")
wait_until 20 ready_leader "${rest[@]}" || fail "no new leader after killing $L"
N=$(ready_leader "${rest[@]}")
pass "leader $L killed after $done_at_kill of the $((NEW + MOD)) writes; node $N leads"
scim_fault '{}'

final() {
	all $((USERS + NEW)) &&
		[ "$(scim_ctl GET store | json_get "j.Users.filter(u => /^Failover /.test(u.displayName)).length")" = $MOD ]
}
wait_until 90 final || fail "after failover: $(scim_count Users) users, $(scim_ctl GET store | json_get "j.Users.filter(u => /^Failover /.test(u.displayName)).length") modified: $(agent_status "$N")"
failover_audit_clean
n=$(scim_ctl GET store | json_get "j.Users.filter(u => u.userName === 'user01100' && u.name.familyName === 'User1100').length")
[ "$n" = 1 ] || fail "user01100 in the target: $n"
pass "new leader $N finished from the replicated cookie: $NEW new users, $MOD modified, no duplicate create, no older-term write"

term=$(json_eval "$(agent_status "$N")" 'j.term')
others=$(scim_ctl GET audit | json_get "j.filter(a => a.status < 300 && a.term === $term && a.resourceType === 'User' &&
	!(/^user(01[0-9]{3}|00[0-2][0-9]{2}|00300)$/.test(a.userName))).map(a => a.userName).slice(0, 5).join(',')")
[ -z "$others" ] || fail "the new leader wrote users outside the change set (re-exported?): $others"
new_writes=$(scim_ctl GET audit | json_get "j.filter(a => a.status < 300 && a.term === $term).length")
pass "the new leader (term $term) wrote $new_writes times, only users of the change set: it resumed, it did not re-export"
