#!/usr/bin/env bash
# canopyctl provision and plan with the Active Directory source: its
# on-demand reads (plain LDAP, no DirSync) see the objects exactly as the
# DirSync export did -- same anchor (objectGUID), same mapped content, same
# group members -- so after the initial export the plan is all unchanged and
# a dry-run provision of an exported user matches its record with nothing to
# do. A user the target refused is created by provision (HTTP 201); an object
# that is neither user nor group names the rule.
source "$(dirname "$0")/../fixtures/ad_sync.sh"
dir=$(fixture_tmpdir)

ad_sync_setup 30 2 20
agent_ports 1
ad_agent_config 1 "[\"1@${AGENT_RAFT[1]}\"]"
agent_start 1
all() { [ "$(scim_count Users)" = 30 ] && [ "$(scim_count Groups)" = 3 ] && [ "$(ad_scim_group big 'names.length')" = 20 ]; }
wait_until 120 all || fail "initial sync: $(scim_count Users) users, $(scim_count Groups) groups"
wait_until 30 idle_leader 1 || fail "not idle"
ctl() { "$CANOPYCTL" --server "${AGENT_CTL[1]}" "$@"; }
counts() { json_eval "$1" '["create","update","delete","unchanged","refused"].map(k=>k+"="+j[k]).join(" ")'; }

out=$(ctl plan --details --json) || fail "plan: $out"
[ "$(counts "$out")" = "create=0 update=0 delete=0 unchanged=33 refused=0" ] || fail "plan after the initial export: $out"
pass "plan after the initial DirSync export: 33 unchanged (30 users, 3 groups with their members)"

dn="CN=user00007,$SAMBA_PEOPLE"
g7=$(ad_guid "$dn")
out=$(ctl provision "$dn" --dry-run --json) || fail "provision --dry-run: $out"
[ "$(json_eval "$out" 'j.steps.map(s=>s.step+"="+s.result).join(",") + " " + j.action')" = \
	"read=found,scope=in_scope,map=mapped,match=record,action=none,write=dry_run none" ] || fail "dry run of user00007: $out"
[ "$(json_eval "$out" 'j.steps[0].anchor + " " + j.steps[3].content')" = "$g7 unchanged" ] || fail "anchor or content: $out"
pass "provision --dry-run of an exported user: anchor $g7 (objectGUID), content unchanged, nothing to do"

out=$(ctl provision "$SAMBA_PEOPLE" --json) || fail "provision of the OU: $out"
[ "$(json_eval "$out" 'j.steps[1].result + " " + j.action')" = "out_of_scope none" ] || fail "the OU: $out"
json_eval "$out" 'j.steps[1].rule' | grep -q "neither a user nor a group" || fail "the OU's rule: $(json_eval "$out" 'j.steps[1].rule')"
pass "an OU: out of scope, neither a user nor a group"

# A new user whose create the target refuses (400): a failed object; then
# provision creates it.
scim_fault '{"status":400,"methods":["POST"],"match":"/Users"}'
dn="CN=late1,$SAMBA_PEOPLE"
printf 'dn: %s\nobjectClass: user\nsAMAccountName: late1\nuserPrincipalName: late1@%s\ngivenName: Late\nsn: One\nmail: late1@%s\nuserAccountControl: 512\n\n' \
	"$dn" "$SAMBA_DNS_DOMAIN" "$SAMBA_DNS_DOMAIN" | samba_ldapadd >/dev/null || fail "add late1"
refused() { ctl failed --json | json_get "j.failed.some(f=>f.dn==='$dn')" | grep -qx true; }
wait_until 30 refused || fail "late1 not a failed object: $(ctl failed --json)"
scim_fault '{}'
out=$(ctl provision "$dn" --json) || fail "provision late1: $out"
[ "$(json_eval "$out" 'j.action + " " + j.target_status')" = "create 201" ] || fail "provision late1: $out"
[ "$(scim_ctl GET audit | json_get "j.filter(a=>a.method==='POST' && a.status<300 && a.userName==='late1').length")" = 1 ] ||
	fail "late1 created $(scim_ctl GET audit | json_get "j.filter(a=>a.method==='POST' && a.status<300 && a.userName==='late1').length") times"
out=$(ctl plan --json) || fail "plan: $out"
[ "$(counts "$out")" = "create=0 update=0 delete=0 unchanged=34 refused=0" ] || fail "plan after the provision: $out"
pass "a user the target refused: provision created it (HTTP 201), and the plan is all unchanged again"
