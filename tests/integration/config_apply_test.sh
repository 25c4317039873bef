#!/usr/bin/env bash
# The replicated sync configuration on 3 agents: the first leader seeds it
# from its file; `canopyctl config apply` of a mapping change (sent to a
# follower, which redirects) is shown as a diff, committed once, taken by
# every node (`config show` alike, "configuration applied" logged) and the
# existing users are written again with the new mapping; `config history`
# lists the versions; an invalid file is refused with the very message of
# canopy-agent --check-config and commits nothing; an unchanged one is
# refused; `config rollback 1` brings the old values back; after SIGKILL of
# the leader the new leader exports with the applied configuration, not
# its own file's.
source "$(dirname "$0")/../fixtures/sync.sh"
dir=$(fixture_tmpdir)

sync_setup 20 2
sync_start_cluster 3
users_are() { [ "$(scim_count Users)" = "$1" ]; }
wait_until 60 users_are 20 || fail "initial sync: $(scim_count Users) users"
leader=
find_leader() { leader=$(idle_leader 1 2 3); }
wait_until 30 find_leader || fail "no idle leader"
version_is() { # version_is N: every node runs replicated version N
	local i
	for i in 1 2 3; do
		[ "$(json_eval "$(agent_status $i)" 'j.config.version')" = "$1" ] || return 1
	done
}
wait_until 20 version_is 1 || fail "the replicated configuration was not seeded on every node"
agent_logs "$leader" | grep -q 'msg="seeding the replicated configuration from this node' ||
	fail "the seeding leader did not log it"
pass "version 1 seeded by the first leader (node $leader), taken by every node"

ctl() { local id=$1; shift; "$CANOPYCTL" --server "${AGENT_CTL[$id]}" "$@"; }
display_of() { scim_ctl GET store | json_get "(j.Users.find(u=>u.userName==='$1')||{}).displayName"; }
old_display() { # every user's displayName is "givenName sn"
	scim_ctl GET store | json_get 'j.Users.length===20 && j.Users.every(u=>u.displayName===u.name.givenName+" "+u.name.familyName)' | grep -q true
}
old_display || fail "displayName before the change: $(display_of user00003)"

# A mapping change: displayName becomes "sn, givenName". Sent to a follower.
follower=$(( leader % 3 + 1 ))
sed 's|^    displayName: "Join(\\" \\", \[givenName\], \[sn\])"|    displayName: "Join(\\", \\", [sn], [givenName])"|' \
	"$dir/agent$follower.yaml" >"$dir/new.yaml"
grep -q 'Join(\\", \\", \[sn\]' "$dir/new.yaml" || fail "test setup: the mapping line was not rewritten"
out=$(ctl "$follower" config apply "$dir/new.yaml" --dry-run) || fail "dry run: $out"
grep -q '^~ mapping.user.displayName: ' <<<"$out" || fail "dry run shows no diff of mapping.user.displayName: $out"
[ "$(wc -l <<<"$out")" = 2 ] || fail "dry run: one changed key and one result line expected: $out"
ctl "$follower" config apply "$dir/new.yaml" --dry-run --json >"$dir/dry.json" || fail "dry run --json"
json_get 'j.dry_run===true && j.from_version===1 && j.version===2 && j.resync===true && j.changes.length===1 &&
	j.changes[0].key==="mapping.user.displayName" && j.changes[0].change==="changed" &&
	j.changes[0].old==="Join(\" \", [givenName], [sn])" && j.changes[0].new==="Join(\", \", [sn], [givenName])"' <"$dir/dry.json" |
	grep -q true || fail "dry run --json: $(cat "$dir/dry.json")"
version_is 1 || fail "a dry run committed something"
out=$(ctl "$follower" config apply "$dir/new.yaml") || fail "apply: $out"
grep -q '^~ mapping.user.displayName: "Join(\\" \\", \[givenName\], \[sn\])" -> "Join(\\", \\", \[sn\], \[givenName\])"$' <<<"$out" ||
	fail "apply does not show the change: $out"
grep -q '^committed as version 2' <<<"$out" || fail "apply does not say the version: $out"
wait_until 20 version_is 2 || fail "not every node runs version 2"
ctl 1 config show --json | json_get 'j.yaml' >"$dir/show1" || fail "config show 1"
for i in 2 3; do
	ctl $i config show --json | json_get 'j.yaml' >"$dir/show$i" || fail "config show $i"
	cmp -s "$dir/show1" "$dir/show$i" || fail "config show differs between node 1 and node $i"
done
grep -q 'Join(\\", \\", \[sn\], \[givenName\])' "$dir/show1" || fail "config show lacks the new mapping: $(cat "$dir/show1")"
! grep -q 'password_file\|token_file\|data_dir\|raft_address' "$dir/show1" || fail "node-local keys replicated: $(cat "$dir/show1")"
for i in 1 2 3; do
	agent_logs $i | grep -q 'msg="configuration applied" version=2 origin='"$leader"' changed_keys=mapping.user.displayName' ||
		fail "node $i did not log the applied configuration"
done
new_display() { # every user's displayName is "sn, givenName"
	scim_ctl GET store | json_get 'j.Users.length===20 && j.Users.every(u=>u.displayName===u.name.familyName+", "+u.name.givenName)' | grep -q true
}
wait_until 60 new_display || fail "existing users were not written with the new mapping: $(display_of user00003)"
pass "apply: diff shown, version 2 on every node, existing users rewritten ($(display_of user00003))"

out=$(ctl 1 config history) || fail "history"
[ "$(grep -c '^[12] ' <<<"$out")" = 2 ] || fail "history does not list 2 versions: $out"
grep -q '^2 .*mapping.user.displayName changed' <<<"$out" || fail "history lacks the summary: $out"
pass "history lists 2 versions"

# An invalid file: the same message as canopy-agent --check-config.
sed 's|^    displayName: .*|    displayName: "Join(\\" \\", [givenName]"|' "$dir/agent$follower.yaml" >"$dir/bad.yaml"
want=$("$CANOPY_AGENT" --config "$dir/bad.yaml" --check-config 2>&1) && fail "--check-config accepted the bad file"
want=${want#canopy-agent: }
[ -n "$want" ] || fail "no --check-config message"
if got=$(ctl 1 config apply "$dir/bad.yaml" 2>&1); then fail "an invalid file was applied: $got"; fi
grep -qF -- "$want" <<<"$got" || fail "apply's error differs from --check-config's: '$got' vs '$want'"
if got=$(ctl 1 config apply "$dir/new.yaml" 2>&1); then fail "an unchanged file was applied: $got"; fi
grep -q 'nothing changed' <<<"$got" || fail "unchanged apply: $got"
version_is 2 || fail "a refused apply committed something"
pass "invalid and unchanged files refused, nothing committed ($want)"

out=$(ctl "$follower" config rollback 1) || fail "rollback: $out"
grep -q '^committed as version 3' <<<"$out" || fail "rollback: $out"
wait_until 20 version_is 3 || fail "not every node runs version 3"
wait_until 60 old_display || fail "rollback 1 did not bring the old values back: $(display_of user00003)"
pass "rollback 1: version 3, values back ($(display_of user00003))"

# The new mapping again, then SIGKILL of the leader: the next leader's file
# still has the old mapping, the replicated configuration the new one.
out=$(ctl "$follower" config rollback 2) || fail "rollback 2: $out"
wait_until 20 version_is 4 || fail "not every node runs version 4"
wait_until 60 new_display || fail "version 4 not exported"
find_leader2() { leader=$(idle_leader 1 2 3); }
wait_until 30 find_leader2 || fail "no idle leader before the kill"
old=$leader
agent_stop "$old" KILL
others=$(for i in 1 2 3; do [ $i != "$old" ] && echo $i; done)
new_leader() { leader=$(ready_leader $others); }
wait_until 20 new_leader || fail "no new leader after the kill"
! grep -q 'Join(\\", \\"' "$dir/agent$leader.yaml" || fail "test setup: the new leader's file has the new mapping"
slapd_ldapmodify <<LDIF >/dev/null || fail "ldapmodify"
dn: uid=user00007,ou=people,$SLAPD_BASE
changetype: modify
replace: sn
sn: AfterFailover
LDIF
after() { scim_ctl GET store | json_get "(u=>u.displayName==='AfterFailover, '+u.name.givenName)(j.Users.find(u=>u.userName==='user00007'))" | grep -q true; }
wait_until 30 after || fail "the new leader (node $leader) did not export with the applied mapping: $(display_of user00007)"
pass "after SIGKILL of node $old, node $leader exports with the replicated mapping ($(display_of user00007))"

# The killed node comes back with its own file (the old mapping): it warns,
# naming the differing key, and runs the replicated configuration.
agent_start "$old"
wait_until 30 version_is 4 || fail "node $old does not run version 4 after its restart: $(agent_status "$old")"
[ "$(json_eval "$(agent_status "$old")" 'j.config.file_differs')" = true ] || fail "status does not say node $old's file differs"
wait_until 10 grep -q "msg=\"this node's file differs from the replicated configuration.* version=4 keys=mapping.user.displayName\$" "$dir/agent$old.log.tmp" ||
	fail "node $old did not warn about its file: $(grep -i 'differs' "$dir/agent$old.log.tmp")"
grep -q 'msg="sync engine rebuilt with the replicated configuration" version=4' "$dir/agent$old.log.tmp" ||
	fail "node $old did not rebuild its engine with version 4"
pass "node $old restarted with its own file: warns (keys=mapping.user.displayName), runs version 4"
