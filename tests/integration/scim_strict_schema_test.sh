#!/usr/bin/env bash
# target.strict_schema: the mapping writes "title", which the SCIM server's
# /Schemas does not list (the fixture hides it). strict_schema: true -> the
# leader's discovery quarantines the target ("schema_mismatch") with a message
# naming the attribute and the schema, and nothing is written; once the server
# lists it again, the quarantine probe reads /Schemas again and the sync goes
# on. strict_schema: false -> one warning in the log, the sync goes on.
source "$(dirname "$0")/../fixtures/sync.sh"
dir=$(fixture_tmpdir)
USER_SCHEMA=urn:ietf:params:scim:schemas:core:2.0:User

sync_setup 20 0
scim_ctl POST caps '{"hideAttrs": ["title"]}' >/dev/null || fail "fixture caps switch"
scim_req GET /Schemas >/dev/null
[ "$(scim_body | json_get "j.Resources.find(s => s.id === '$USER_SCHEMA').attributes.some(a => a.name === 'title')")" = false ] ||
	fail "the fixture still lists title"
USER_MAPPING_EXTRA='    title: "[title]"'
TARGET_STRICT_SCHEMA=true
agent_ports 1
sync_agent_config 1 "[\"1@${AGENT_RAFT[1]}\"]"
agent_start 1
st() { agent_status 1; }
quarantined() { [ "$(json_eval "$(st)" 'j.sync.target && j.sync.target.quarantine_reason')" = schema_mismatch ]; }
wait_until 60 quarantined || fail "strict: no schema_mismatch quarantine: $(json_eval "$(st)" 'JSON.stringify(j.sync)')"
detail=$(json_eval "$(st)" 'j.sync.target.quarantine_detail')
grep -q 'mapping.user attribute "title"' <<<"$detail" && grep -q "$USER_SCHEMA" <<<"$detail" ||
	fail "the quarantine does not name the attribute and the schema: $detail"
wait_until 30 eval '[ "$(json_eval "$(st)" "j.sync.quarantine && j.sync.quarantine.reason")" = target_schema_mismatch ]' ||
	fail "sync.quarantine.reason is not target_schema_mismatch: $(json_eval "$(st)" 'JSON.stringify(j.sync)')"
[ "$(scim_count Users)" = 0 ] || fail "users written despite the schema mismatch: $(scim_count Users)"
agent_logs 1 | grep 'schema lacks a mapped attribute' | grep -q 'title' || fail "no log line naming title"
pass "strict: quarantined, detail: $detail"

scim_ctl POST caps '{"hideAttrs": []}' >/dev/null
synced() { [ "$(json_eval "$(st)" 'j.sync.state')" = idle ] && [ "$(scim_count Users)" = 20 ]; }
wait_until 90 synced || fail "strict: the sync did not resume once the schema lists title: $(json_eval "$(st)" 'JSON.stringify(j.sync)')"
pass "strict: the schema fixed, the probe read it again and the 20 users went through"

agent_stop 1
rm -rf "$dir/data1"
scim_reset
scim_ctl POST caps '{"hideAttrs": ["title"]}' >/dev/null
TARGET_STRICT_SCHEMA=false
sync_agent_config 1 "[\"1@${AGENT_RAFT[1]}\"]"
before=$(agent_logs 1 | grep -c 'schema lacks a mapped attribute')
agent_start 1
synced() { [ "$(json_eval "$(st)" 'j.sync.state')" = idle ] && [ "$(scim_count Users)" = 20 ]; }
wait_until 90 synced || fail "non-strict: the sync did not finish: $(json_eval "$(st)" 'JSON.stringify(j.sync)')"
[ "$(json_eval "$(st)" 'j.sync.target.quarantined')" = false ] || fail "non-strict: quarantined"
n=$(( $(agent_logs 1 | grep 'schema lacks a mapped attribute' | grep -c 'title') - before ))
[ "$n" = 1 ] || fail "non-strict: expected one warning naming title, got $n"
pass "non-strict: one warning, 20 users synced"
