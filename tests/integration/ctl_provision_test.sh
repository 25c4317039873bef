#!/usr/bin/env bash
# canopyctl provision DN [--dry-run]: one object through the pipeline now.
# A user the target refused (so the agent has not exported it): --dry-run
# shows every step (read, scope, map, match, action) and writes nothing;
# provision, asked of a follower (307 to the leader), creates it (HTTP 201)
# and commits its object record, so a later change is an update and never a
# second create. One the target refuses exits non-zero. An out-of-scope DN names the rule that left it out; a DN
# the directory lacks is an error that says so, unless it was exported: then
# provision deprovisions it, through delete protection.
source "$(dirname "$0")/../fixtures/sync.sh"
dir=$(fixture_tmpdir)
base=dc=example,dc=com

DELETE_THRESHOLD=0 # every delete is staged: a deprovision waits for the operator
USER_EXCLUDE="[\"ou=contractors,ou=people,$base\"]"
sync_setup 10 0
sync_start_cluster 3
users_are() { [ "$(scim_count Users)" = "$1" ]; }
wait_until 30 users_are 10 || fail "initial sync: $(scim_count Users) users"
wait_until 20 idle_leader 1 2 3 || fail "no idle leader"
leader=$(idle_leader 1 2 3)
follower=$((leader % 3 + 1))
ctl() { local n=$1; shift; "$CANOPYCTL" --server "${AGENT_CTL[$n]}" "$@"; }
audit_since() { scim_ctl GET audit | json_get "j.filter(a=>a.seq>$1 && ($2)).length"; }

# The target refuses the new user's create for good (400): a failed object,
# not exported.
scim_fault '{"status":400,"methods":["POST"],"match":"/Users"}'
printf 'dn: uid=late1,ou=people,%s\nchangetype: add\nobjectClass: inetOrgPerson\nuid: late1\ncn: Late One\nsn: One\ngivenName: Late\nmail: late1@example.com\n\n' "$base" |
	slapd_ldapmodify >/dev/null || fail "ldapadd late1"
refused() { ctl "$leader" failed --json | json_get "j.failed.some(f=>f.dn==='uid=late1,ou=people,$base')" | grep -qx true; }
wait_until 20 refused || fail "late1 was not recorded as a failed object: $(ctl "$leader" failed --json)"
# Provision while the target still refuses it: the answer says so, exit 1.
rc=0
ctl "$leader" provision "uid=late1,ou=people,$base" >"$dir/out" 2>"$dir/err" || rc=$?
[ "$rc" -ne 0 ] || fail "provision refused by the target exited 0: $(cat "$dir/out")"
grep -q "create uid=late1,ou=people,$base: the target did not take it (.*400.*); it is a failed object" "$dir/err" ||
	fail "refused provision: stderr says: $(cat "$dir/err")"
pass "a provision the target refuses (400) exits $rc: $(cat "$dir/err")"
scim_fault '{}'
mark=$(scim_ctl GET audit | json_get 'j.length ? j[j.length-1].seq : 0')

out=$(ctl "$leader" provision "uid=late1,ou=people,$base" --dry-run --json) || fail "provision --dry-run: $out"
steps=$(json_eval "$out" 'j.steps.map(s=>s.step+"="+s.result).join(",")')
[ "$steps" = "read=found,scope=in_scope,map=mapped,match=none,action=create,write=dry_run" ] || fail "dry-run steps: $steps"
[ "$(json_eval "$out" 'j.action + " " + j.target_status + " " + j.dn')" = "create null uid=late1,ou=people,$base" ] ||
	fail "dry-run answer: $out"
[ "$(json_eval "$out" 'j.steps[0].attributes.uid[0] + " " + j.steps[2].object.userName + " " + j.steps[2].object.displayName')" = "late1 late1 Late One" ] ||
	fail "dry-run read/map: $out"
json_eval "$out" 'j.steps[1].rule' | grep -q "users.base ou=people,$base and matching users.filter" ||
	fail "dry-run scope rule: $(json_eval "$out" 'j.steps[1].rule')"
text=$(ctl "$leader" provision "uid=late1,ou=people,$base" --dry-run) || fail "provision --dry-run (text)"
grep -q '^  action  create' <<<"$text" || fail "dry-run text lacks the action: $text"
# The dry run has answered: anything it wrote would be in the audit log now.
[ "$(audit_since "$mark" true)" = 0 ] || fail "--dry-run wrote to the target: $(scim_ctl GET audit)"
users_are 10 || fail "--dry-run created a user"
pass "--dry-run shows read, scope (rule), mapped object, match, action, and writes nothing"

out=$(ctl "$follower" provision "uid=late1,ou=people,$base" --json) || fail "provision via follower $follower: $out"
[ "$(json_eval "$out" 'j.action + " " + j.target_status')" = "create 201" ] || fail "provision answer: $out"
[ "$(json_eval "$out" 'j.steps[j.steps.length-1].step + "=" + j.steps[j.steps.length-1].result')" = write=done ] ||
	fail "provision write step: $out"
[ "$(audit_since "$mark" "a.method==='POST' && a.status<300 && a.userName==='late1'")" = 1 ] ||
	fail "want exactly one create of late1: $(scim_ctl GET audit)"
pass "provision through a follower (307 to leader $leader) created the user: HTTP 201"

out=$(ctl "$leader" provision "uid=late1,ou=people,$base" --dry-run --json) || fail "second dry run: $out"
[ "$(json_eval "$out" 'j.steps.find(s=>s.step==="match").result + " " + j.action')" = "record none" ] ||
	fail "the object record was not committed: $out"
refused && fail "late1 is still a failed object"
# A later change goes through the normal sync: an update, not a second create.
printf 'dn: uid=late1,ou=people,%s\nchangetype: modify\nreplace: sn\nsn: Later\n\n' "$base" | slapd_ldapmodify >/dev/null ||
	fail "ldapmodify late1"
updated() { [ "$(audit_since "$mark" "a.status<300 && a.userName==='late1' && a.method!=='POST'")" -ge 1 ]; }
wait_until 20 updated || fail "the change of late1 was not exported: $(scim_ctl GET audit)"
[ "$(audit_since "$mark" "a.method==='POST' && a.userName==='late1'")" = 1 ] || fail "late1 created twice: $(scim_ctl GET audit)"
[ "$(scim_ctl GET store | json_get "j.Users.filter(u=>u.userName==='late1').length")" = 1 ] || fail "late1 twice in the target"
pass "the replicated record exists: a later change is an update, never a second create"

out=$(ctl "$leader" provision "ou=people,$base" --json) || fail "provision of an out-of-scope DN: $out"
[ "$(json_eval "$out" 'j.steps[1].step + "=" + j.steps[1].result + " " + j.action')" = "scope=out_of_scope none" ] ||
	fail "out of scope: $out"
json_eval "$out" 'j.steps[1].rule' | grep -q "not matching users.filter (objectClass=inetOrgPerson); groups: not under groups.base" ||
	fail "out-of-scope rule: $(json_eval "$out" 'j.steps[1].rule')"
printf 'dn: ou=contractors,ou=people,%s\nchangetype: add\nobjectClass: organizationalUnit\nou: contractors\n\ndn: uid=c1,ou=contractors,ou=people,%s\nchangetype: add\nobjectClass: inetOrgPerson\nuid: c1\ncn: C One\nsn: One\n\n' "$base" "$base" |
	slapd_ldapmodify >/dev/null || fail "ldapadd contractors"
out=$(ctl "$leader" provision "uid=c1,ou=contractors,ou=people,$base" --json) || fail "provision of an excluded DN: $out"
[ "$(json_eval "$out" 'j.steps[1].result + " " + j.steps[1].rule + " " + j.action')" = "out_of_scope under source.users.exclude none" ] ||
	fail "excluded DN: $out"
pass "an out-of-scope DN names the rule that left it out (base and filter; users.exclude)"

rc=0
ctl "$leader" provision "uid=nobody,ou=people,$base" >"$dir/out" 2>"$dir/err" || rc=$?
[ "$rc" -ne 0 ] || fail "provision of a missing DN exited 0: $(cat "$dir/out")"
grep -q "no entry uid=nobody,ou=people,$base" "$dir/err" || fail "missing DN: stderr says: $(cat "$dir/err")"
[ "$(wc -l <"$dir/err")" = 1 ] || fail "missing DN: not a one-line error: $(cat "$dir/err")"
pass "a DN the directory lacks: exit $rc, \"$(cat "$dir/err")\""

# A user gone from the directory: the export staged its delete (threshold 0);
# provision says delete and goes through the same protection.
printf 'dn: uid=user00010,ou=people,%s\nchangetype: delete\n\n' "$base" | slapd_ldapmodify >/dev/null || fail "ldapdelete"
staged() { ctl "$leader" deletes list --json | json_get "j.deletes.some(d=>d.dn==='uid=user00010,ou=people,$base')" | grep -qx true; }
wait_until 20 staged || fail "the delete of user00010 was not staged: $(ctl "$leader" deletes list --json)"
out=$(ctl "$leader" provision "uid=user00010,ou=people,$base" --dry-run --json) || fail "dry run of a deleted DN: $out"
[ "$(json_eval "$out" 'j.steps.map(s=>s.step+"="+s.result).join(",") + " " + j.action')" = "read=not_found,match=record,action=delete,write=dry_run delete" ] ||
	fail "dry run of a deleted DN: $out"
out=$(ctl "$leader" provision "uid=user00010,ou=people,$base" --json) || fail "provision of a deleted DN: $out"
[ "$(json_eval "$out" 'j.steps[j.steps.length-1].result')" = staged ] || fail "provision of a deleted DN: $out"
[ "$(scim_ctl GET audit | json_get "j.filter(a=>a.method==='DELETE').length")" = 0 ] || fail "a delete went through protection"
pass "a DN gone from the directory: provision plans its delete, and delete protection stages it"
