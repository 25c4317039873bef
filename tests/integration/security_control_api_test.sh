#!/usr/bin/env bash
# The control API refuses what it must (issue: anyone on the network could
# approve deletes, change membership, and a browser could drive it):
# every mutation needs "Authorization: Bearer <control token>", non-JSON
# POSTs, browser (Origin) requests and ambiguous framing are refused, slow
# header connections from one address cannot take it down, /v1/logs limits
# its read; canopyctl sends the token (--token-file, CANOPY_TOKEN_FILE) and
# keeps it across the redirect of a follower; a non-loopback control
# address without a token refuses to start.
source "$(dirname "$0")/../fixtures/agent.sh"
dir=$(fixture_tmpdir)

token=ctl-$RANDOM-$RANDOM-secret
(umask 077; printf '%s\n' "$token" >"$dir/control.token"; printf 'wrong-%s\n' "$token" >"$dir/wrong.token")
CONTROL="control:
  token_file: $dir/control.token"

agent_ports 1; agent_ports 2
members="[\"1@${AGENT_RAFT[1]}\", \"2@${AGENT_RAFT[2]}\"]"
agent_config 1 "$members" "$CONTROL"
agent_config 2 "$members" "$CONTROL"
agent_start 1; agent_start 2
for _ in $(seq 100); do l=$(ready_leader 1 2) && break; sleep 0.1; done
[ -n "${l:-}" ] || fail "no leader"
f=$((3 - l))
url="http://${AGENT_CTL[$l]}"

post() { # post PATH [CURL ARGS...]: prints the status code
	local path=$1; shift
	curl -s -o "$dir/body" -w '%{http_code}' --max-time 5 -X POST -H 'Content-Type: application/json' \
		--data '{}' "$@" "$url$path"
}
for ep in /v1/deletes/approve /v1/deletes/reject /v1/cluster/add /v1/cluster/remove /v1/cluster/transfer \
	/v1/cluster/abort /v1/resync /v1/health/report /v1/drill/transfer /v1/drill/crash; do
	code=$(post "$ep")
	[ "$code" = 401 ] || fail "POST $ep without a token answered $code: $(cat "$dir/body")"
	code=$(post "$ep" -H "Authorization: Bearer wrong-$token")
	[ "$code" = 401 ] || fail "POST $ep with a wrong token answered $code"
	code=$(post "$ep" -H "Authorization: Bearer ${token}x")
	[ "$code" = 401 ] || fail "POST $ep with a longer token answered $code"
	code=$(post "$ep" -H "Authorization: Basic $token")
	[ "$code" = 401 ] || fail "POST $ep with Basic answered $code"
	# with the token, a body that does not parse: refused after the check
	code=$(curl -s -o "$dir/body" -w '%{http_code}' --max-time 5 -X POST -H 'Content-Type: application/json' \
		-H "Authorization: Bearer $token" --data 'not json' "$url$ep")
	[ "$code" != 401 ] && [ "$code" != 000 ] || fail "POST $ep with the token answered $code"
done
curl -s -D - -o /dev/null -X POST -H 'Content-Type: application/json' --data '{}' "$url/v1/deletes/approve" |
	grep -qi '^WWW-Authenticate: Bearer' || fail "401 without WWW-Authenticate"
pass "every mutating endpoint refuses a missing or wrong token (401), takes the right one"

code=$(curl -s -o /dev/null -w '%{http_code}' -X POST -H "Authorization: Bearer $token" -H 'Content-Type: text/plain' \
	--data '{"id":2}' "$url/v1/cluster/remove")
[ "$code" = 415 ] || fail "text/plain answered $code"
code=$(curl -s -o /dev/null -w '%{http_code}' -X POST --data-urlencode 'id=2' "$url/v1/cluster/remove")
[ "$code" = 415 ] || fail "a form POST answered $code"
code=$(post /v1/cluster/transfer -H "Authorization: Bearer $token" -H 'Origin: http://evil.example')
[ "$code" = 403 ] || fail "Origin answered $code"
code=$(curl -s -o /dev/null -w '%{http_code}' -H 'Origin: http://evil.example' "$url/v1/status")
[ "$code" = 403 ] || fail "GET with Origin answered $code"
[ "$(json_eval "$(agent_status "$l")" 'j.members.length')" = 2 ] || fail "membership changed"
pass "text/plain and form POSTs refused (415), browser requests refused (403)"

# RFC 9112 §6.3: Content-Length and Transfer-Encoding together are refused and
# the connection closed, so a request smuggled behind it never runs.
host=${AGENT_CTL[$l]%:*} port=${AGENT_CTL[$l]##*:}
smuggle() {
	exec 3<>"/dev/tcp/$host/$port"
	printf 'POST /v1/cluster/transfer HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nAuthorization: Bearer %s\r\nContent-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\nPOST /v1/cluster/transfer HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nAuthorization: Bearer %s\r\nContent-Length: 2\r\n\r\n{}' "$token" "$token" >&3
	timeout 5 cat <&3
	exec 3<&-
}
# The server closes with the pipelined bytes unread, so the kernel may reset
# the connection before the 400 is read: try a few times to see it.
for _ in 1 2 3 4 5; do
	resp=$(smuggle 2>/dev/null || true)
	[ "$(grep -c '^HTTP/1.1' <<<"$resp")" -le 1 ] || fail "a request behind CL+TE was answered: $resp"
	grep -q '^HTTP/1.1 400' <<<"$resp" && break
	sleep 0.2
done
grep -q '^HTTP/1.1 400' <<<"$resp" || fail "CL+TE not refused with 400: $resp"
[ "$(ready_leader "$l")" = "$l" ] || fail "leadership moved: the smuggled transfer ran"
pass "Content-Length + Transfer-Encoding refused, nothing behind it runs"

# 70 slow-header connections from 127.0.0.2: another client still gets status.
cat >"$dir/slow.js" <<'JS'
const net = require('net');
const [host, port] = process.argv[2].split(':');
const socks = [];
for (let i = 0; i < 70; i++) {
  const s = net.connect({host, port: +port, localAddress: '127.0.0.2'});
  s.on('error', () => {});
  s.write('GET /v1/status HTTP/1.1\r\nHost: x\r\n');
  socks.push(s);
}
setInterval(() => socks.forEach(s => s.write('X-a: b\r\n')), 1000);
setTimeout(() => process.exit(0), 30000);
JS
spawn slowloris "$dir/slow.log" node "$dir/slow.js" "${AGENT_CTL[$l]}"
sleep 2
start=$(date +%s%N)
st=$(curl -sf --max-time 2 --interface 127.0.0.1 "$url/v1/status") || fail "status unanswered under 70 slow-header connections"
ms=$(( ($(date +%s%N) - start) / 1000000 ))
[ "$(json_eval "$st" 'j.node_id')" = "$l" ] || fail "status: $st"
kill "$SPAWNED_PID" 2>/dev/null || true
pass "70 slow-header connections from one address: status still answers (${ms} ms)"

start=$(date +%s%N)
code=$(curl -s -o "$dir/body" -w '%{http_code}' --max-time 5 "$url/v1/logs?limit=4000000000")
ms=$(( ($(date +%s%N) - start) / 1000000 ))
[ "$code" = 400 ] || fail "limit=4000000000 answered $code"
[ "$ms" -lt 1000 ] || fail "limit=4000000000 took $ms ms"
for bad in abc 0 -1 10001 ''; do
	code=$(curl -s -o /dev/null -w '%{http_code}' "$url/v1/logs?limit=$bad")
	[ "$code" = 400 ] || fail "limit=$bad answered $code"
done
code=$(curl -s -o "$dir/body" -w '%{http_code}' "$url/v1/logs?limit=10000")
[ "$code" = 200 ] || fail "limit=10000 answered $code"
pass "/v1/logs refuses a limit over 10000 at once ($ms ms)"

# canopyctl: without the token a clear 401; with --token-file or
# CANOPY_TOKEN_FILE it works, also through a follower's 307 to the leader.
if out=$("$CANOPYCTL" --server "${AGENT_CTL[$f]}" cluster transfer "$f" 2>&1); then fail "canopyctl without a token: $out"; fi
grep -q 'HTTP 401' <<<"$out" || fail "canopyctl without a token: $out"
if out=$("$CANOPYCTL" --server "${AGENT_CTL[$f]}" --token-file "$dir/wrong.token" cluster transfer "$f" 2>&1); then fail "canopyctl with a wrong token: $out"; fi
grep -q 'HTTP 401' <<<"$out" || fail "canopyctl with a wrong token: $out"
out=$("$CANOPYCTL" --server "${AGENT_CTL[$f]}" --token-file "$dir/control.token" cluster transfer "$f" 2>&1) ||
	fail "canopyctl --token-file through the follower: $out"
wait_role "$f" leader 10 || fail "transfer through the follower's redirect did not happen"
out=$(CANOPY_TOKEN_FILE=$dir/control.token "$CANOPYCTL" --server "${AGENT_CTL[$f]}" cluster transfer "$l" 2>&1) ||
	fail "CANOPY_TOKEN_FILE through the (new) follower: $out"
wait_role "$l" leader 10 || fail "transfer back did not happen"
grep -q -- '--token-file' <<<"$("$CANOPYCTL" --help)" || fail "--help does not mention --token-file" # all read: grep -q on a pipe would end canopyctl with SIGPIPE (pipefail)
pass "canopyctl --token-file / CANOPY_TOKEN_FILE, kept across the follower's 307"

# A non-loopback control address without a token refuses to start; with a
# token it starts. Loopback without a token starts with a warning.
agent_ports 3
AGENT_CTL[3]=0.0.0.0:$(free_port)
agent_config 3 "[\"3@${AGENT_RAFT[3]}\"]"
if out=$("$CANOPY_AGENT" --config "$dir/agent3.yaml" 2>&1); then fail "agent started on 0.0.0.0 without a token"; fi
grep -q 'control.token_file' <<<"$out" || fail "refusal does not name control.token_file: $out"
agent_ports 4
agent_config 4 "[\"4@${AGENT_RAFT[4]}\"]"
agent_start 4
wait_role 4 leader 10 || fail "loopback without a token did not start"
grep -q 'level=warn.*control.token_file' "$dir/agent4.log.tmp" || fail "no warning without a token"
code=$(curl -s -o /dev/null -w '%{http_code}' -X POST -H 'Content-Type: application/json' --data '{}' "http://${AGENT_CTL[4]}/v1/deletes/approve")
[ "$code" = 409 ] || fail "loopback without a token: approve answered $code"
pass "non-loopback without a token refused; loopback without one works, warned"
