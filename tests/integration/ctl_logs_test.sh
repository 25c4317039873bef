#!/usr/bin/env bash
# canopyctl logs: --since keeps every entry of the second it names (entries
# carry milliseconds), takes RFC 3339 with an offset and ages (10m, 2h, 30s);
# a bad --limit or --since exits non-zero with a clear error before any
# request; an answer cut by the limit says so on stderr.
source "$(dirname "$0")/../fixtures/agent.sh"
dir=$(fixture_tmpdir)

agent_ports 1
agent_config 1 "[\"1@${AGENT_RAFT[1]}\"]"
agent_start 1
wait_role 1 leader 10 || { cat "$dir/agent1.log.tmp" >&2; fail "single node did not become a ready leader"; }

# The agent has no source or target here: the entries are written the way
# sync/provlog.c writes them (one JSON line each, in time order).
entry() { # entry TIME ANCHOR
	printf '{"time":"%s","cycle":1,"change":1,"node":1,"term":1,"anchor":"%s","dn":"uid=%s,ou=people,dc=x","type":"user","action":"update","result":"ok","http_status":200,"duration_ms":1.0}\n' "$1" "$2" "$2"
}
iso_ago() { date -u -d "@$(($(date +%s) - $1))" +%Y-%m-%dT%H:%M:%S.000Z; }
log=$dir/data1/provisioning.log
{
	entry 2026-11-24T12:00:04.900Z before
	entry 2026-11-24T12:00:05.000Z at0
	entry 2026-11-24T12:00:05.250Z at250
	entry 2026-11-24T12:00:05.999Z at999
	entry 2026-11-24T12:00:06.100Z after
	entry "$(iso_ago 7200)" two-hours-ago
	entry "$(iso_ago 5)" seconds-ago
} >>"$log"

anchors() { json_eval "$1" 'j.entries.map(e=>e.anchor).join(",")'; }

out=$("$CANOPYCTL" --server "${AGENT_CTL[1]}" logs --since 2026-11-24T12:00:05Z --json) || fail "logs --since"
[ "$(anchors "$out")" = at0,at250,at999,after,two-hours-ago,seconds-ago ] || fail "--since at a second boundary: $(anchors "$out")"
out=$("$CANOPYCTL" --server "${AGENT_CTL[1]}" logs --since 2026-11-24T13:00:05+01:00 --json) || fail "logs --since +01:00"
[ "$(anchors "$out")" = at0,at250,at999,after,two-hours-ago,seconds-ago ] || fail "--since with an offset: $(anchors "$out")"
out=$("$CANOPYCTL" --server "${AGENT_CTL[1]}" logs --since 2026-11-24T12:00:05.250Z --json) || fail "logs --since .250"
[ "$(anchors "$out")" = at250,at999,after,two-hours-ago,seconds-ago ] || fail "--since with milliseconds: $(anchors "$out")"
out=$("$CANOPYCTL" --server "${AGENT_CTL[1]}" logs --since 2026-11-24T12:00:05Z) || fail "logs --since (table)"
grep -q ' at0 ' <<<"$out" || fail "the table lacks the entry at .000: $out"
pass "--since keeps every entry of the second it names (Z, offset, milliseconds)"

out=$("$CANOPYCTL" --server "${AGENT_CTL[1]}" logs --since 10m --json) || fail "logs --since 10m"
[ "$(anchors "$out")" = seconds-ago ] || fail "--since 10m: $(anchors "$out")"
out=$("$CANOPYCTL" --server "${AGENT_CTL[1]}" logs --since 3h --json) || fail "logs --since 3h"
[ "$(anchors "$out")" = two-hours-ago,seconds-ago ] || fail "--since 3h: $(anchors "$out")"
out=$("$CANOPYCTL" --server "${AGENT_CTL[1]}" logs --since 3600s --json) || fail "logs --since 3600s"
[ "$(anchors "$out")" = seconds-ago ] || fail "--since 3600s: $(anchors "$out")"
pass "--since takes ages (10m, 3h, 3600s)"

bad() { # bad EXPECTED-TEXT ARGS...: exits non-zero, says EXPECTED-TEXT, prints nothing on stdout
	local want=$1 rc=0 o e
	shift
	o=$("$CANOPYCTL" --server "${AGENT_CTL[1]}" logs "$@" 2>"$dir/err") || rc=$?
	e=$(cat "$dir/err")
	[ "$rc" -ne 0 ] || fail "canopyctl logs $* exited 0"
	[ -z "$o" ] || fail "canopyctl logs $* printed: $o"
	grep -qF -- "$want" <<<"$e" || fail "canopyctl logs $*: stderr lacks \"$want\": $e"
}
bad '--limit is a number' --limit abc
bad '--limit is a number' --limit -5
bad '--limit is a number' --limit 0
bad '--limit is a number' --limit 12x
bad '--since is an RFC 3339 time' --since garbage
bad '--since is an RFC 3339 time' --since 10x
bad '--since is an RFC 3339 time' --since 2026-11-24
bad '--since is an RFC 3339 time' --since 2026-13-01T00:00:00Z
code=$(curl -s -o /dev/null -w '%{http_code}' "http://${AGENT_CTL[1]}/v1/logs?since=garbage")
[ "$code" = 400 ] || fail "GET /v1/logs?since=garbage answered $code"
pass "bad --limit and --since exit non-zero with a clear error (and the API answers 400)"

out=$("$CANOPYCTL" --server "${AGENT_CTL[1]}" logs --limit 2 --json 2>"$dir/err") || fail "logs --limit 2"
[ "$(anchors "$out")" = two-hours-ago,seconds-ago ] || fail "--limit 2: $(anchors "$out")"
[ "$(json_eval "$out" 'j.truncated')" = true ] || fail "--limit 2: not marked truncated: $out"
grep -q 'older ones were left out by the limit' "$dir/err" || fail "no truncation notice: $(cat "$dir/err")"
out=$("$CANOPYCTL" --server "${AGENT_CTL[1]}" logs --limit 7 2>"$dir/err") || fail "logs --limit 7"
[ "$(grep -c . <<<"$out")" = 7 ] || fail "--limit 7 showed: $out"
[ ! -s "$dir/err" ] || fail "a notice although nothing was left out: $(cat "$dir/err")"
"$CANOPYCTL" --server "${AGENT_CTL[1]}" logs --limit 6 >/dev/null 2>"$dir/err" || fail "logs --limit 6"
grep -q 'newest 6 matching entries' "$dir/err" || fail "no truncation notice at --limit 6: $(cat "$dir/err")"
pass "an answer cut by --limit says so on stderr; a complete one does not"
