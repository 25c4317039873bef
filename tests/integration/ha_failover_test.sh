#!/usr/bin/env bash
# Three agents sync one directory. Exactly one exports. The leader is killed
# with SIGKILL during the initial sync of 5,000 users: another agent takes
# over and finishes; the target equals the source; the SCIM audit log shows
# no object created twice and no write of an older term after a newer term's
# first write. A follower stopped while changes flow catches up (by snapshot
# install: the log is truncated) and ends with the leader's state digest.
source "$(dirname "$0")/../fixtures/sync.sh"
dir=$(fixture_tmpdir)

SNAPSHOT_THRESHOLD=64 SNAPSHOT_TRAILING=16
export SNAPSHOT_THRESHOLD SNAPSHOT_TRAILING
sync_setup 5000 20
scim_fault '{"delayMs":2,"count":-1}' # keep the initial sync long enough to kill into
for i in 1 2 3; do agent_ports $i; done
members="[\"1@${AGENT_RAFT[1]}\", \"2@${AGENT_RAFT[2]}\", \"3@${AGENT_RAFT[3]}\"]"
for i in 1 2 3; do sync_agent_config $i "$members"; done
for i in 1 2 3; do agent_start $i; done

wait_until 15 ready_leader 1 2 3 || fail "no leader"
L=$(ready_leader 1 2 3)
some() { [ "$(scim_count Users)" -ge 1000 ]; }
wait_until 60 some || fail "initial sync did not progress: $(agent_status "$L")"
nodes=$(scim_ctl GET audit | json_get '[...new Set(j.filter(a=>a.status<300).map(a=>a.node))].join(",")')
[ "$nodes" = "$L" ] || fail "writes came from nodes $nodes, only leader $L should export"
pass "one leader (node $L) exports; $(scim_count Users) users so far"

t0=$EPOCHREALTIME
agent_stop "$L" KILL
rest=(); for i in 1 2 3; do [ "$i" != "$L" ] && rest+=("$i"); done
wait_until 15 ready_leader "${rest[@]}" || fail "no new leader after killing $L"
N=$(ready_leader "${rest[@]}")
t1=$EPOCHREALTIME
echo "kill -> new ready leader: $(awk "BEGIN{printf \"%d\", ($t1-$t0)*1000}") ms (observed by polling)"
scim_fault '{}'
all() { [ "$(scim_count Users)" = 5000 ] && [ "$(scim_count Groups)" = 20 ]; }
wait_until 120 all || fail "new leader $N did not finish: $(scim_count Users) users; $(agent_status "$N")"
wait_until 60 sync_compare || sync_compare || fail "target differs from source after failover"
pass "node $N took over and finished: target equals source"

# The audit log: no object created twice; terms never go back.
check=$(scim_ctl GET audit | json_get '(()=>{
  const w=j.filter(a=>a.status<300).sort((a,b)=>a.seq-b.seq); const created={}; let dup=0, back=0, max=0; const byTerm={};
  for (const a of w) {
    if (a.method==="POST" && a.status===201) { if (created[a.externalId]) dup++; created[a.externalId]=1; }
    if (a.term < max) back++; if (a.term > max) max = a.term;
    (byTerm[a.term] = byTerm[a.term] || new Set()).add(a.node);
  }
  const shared = Object.values(byTerm).filter(s=>s.size>1).length;
  return dup + " " + back + " " + shared + " " + Object.keys(byTerm).join("/");
})()')
read -r dup back shared terms <<<"$check"
[ "$dup" = 0 ] || fail "$dup objects created twice"
[ "$back" = 0 ] || fail "$back writes of an older term after a newer term's first write"
[ "$shared" = 0 ] || fail "a term has writes from more than one node"
pass "audit: no duplicate create, terms monotonic, one writer per term (terms $terms)"

# The killed node comes back and catches up.
agent_start "$L"
same_digest() {
	local d1 d2 d3
	d1=$(json_eval "$(agent_status 1)" 'j.state.digest + "/" + j.applied_index') || return 1
	d2=$(json_eval "$(agent_status 2)" 'j.state.digest') || return 1
	d3=$(json_eval "$(agent_status 3)" 'j.state.digest') || return 1
	[ "${d1%/*}" = "$d2" ] && [ "$d2" = "$d3" ]
}
# Whoever leads now: on a loaded machine (the sanitizer build) a leader busy
# with 5,000 users can miss its quorum's answers for T/3, step down and hand
# over (the audit above shows that stays safe); the test follows the leader.
idle() { local l; l=$(ready_leader 1 2 3) && [ "$(json_eval "$(agent_status "$l")" 'j.sync.state')" = idle ]; }
wait_until 30 idle || fail "no idle leader: $(for i in 1 2 3; do agent_status "$i" | cut -c1-200; done)"
N=$(ready_leader 1 2 3)
wait_until 30 same_digest || fail "digests differ after restart of $L"
pass "restarted node $L has the leader's state digest"

# A follower misses a stream of changes, then catches up by snapshot.
F=1; [ "$F" = "$N" ] && F=2
agent_stop "$F" TERM
for i in $(seq 1 400); do printf 'dn: uid=user%05d,ou=people,%s\nchangetype: modify\nreplace: title\ntitle: t%d\n\n' "$i" "$SLAPD_BASE" "$i"; done | slapd_ldapmodify >/dev/null
for i in $(seq 1 200); do printf 'dn: uid=user%05d,ou=people,%s\nchangetype: modify\nreplace: sn\nsn: Renamed%d\n\n' "$i" "$SLAPD_BASE" "$i"; done | slapd_ldapmodify >/dev/null
wait_until 60 sync_compare || fail "changes did not reach the target"
agent_start "$F"
wait_until 30 same_digest || fail "follower $F did not catch up: $(agent_status "$F")"
ls "$dir/data$F" | grep -q '^snapshot-' || fail "follower $F has no snapshot file (log not truncated?)"
pass "follower $F caught up after 600 changes (snapshot on disk) with the leader's digest"
