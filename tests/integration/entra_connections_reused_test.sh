#!/usr/bin/env bash
# The Entra target's requests share their connections: every request of a
# run goes through one HTTP engine whose libcurl multi handle keeps its
# connections (sync/target/http_multi.h), so the initial sync of 150 users
# in 3 groups -- hundreds of Graph requests from up to 8 operation threads,
# most of them inside $batch envelopes -- opens about one connection per
# thread, not one per request sent (a blocking easy handle per request
# would). The Graph fixture counts the requests on the wire (an envelope
# is one) and the TCP connections that carried them (/_test/stats).
source "$(dirname "$0")/../fixtures/entra.sh"
dir=$(fixture_tmpdir)

slapd_start 150 3
graph_start
agent_ports 1
entra_config 1 "$(entra_secret_auth)"
agent_start 1
wait_secs 120 entra_compare || fail "initial sync incomplete: $(entra_compare | head -n 5)"

read -r wire connections < <(graph_ctl GET stats | node -e '
	const s = JSON.parse(require("fs").readFileSync(0, "utf8"));
	console.log(s.requests, s.connections);')
all=$(graph_audit_count "a.path.startsWith('/v1.0/') && a.path !== '/v1.0/\$batch'")
echo "$all Graph requests, $wire on the wire (envelopes counted once), over $connections connections"
[ "$all" -ge 150 ] || fail "$all Graph requests for 150 users (want >= 150: the sync did not run through Graph)"
# max_in_flight (8) threads, each on a connection of the engine's cache
# (max_in_flight + 2 kept); a few more if the server closes an idle one
[ "$connections" -ge 1 ] && [ "$connections" -le 16 ] ||
	fail "$connections connections for $wire requests on the wire (want 1..16: connections reused)"
[ $((connections * 2)) -le "$wire" ] ||
	fail "$connections connections for $wire requests on the wire (want at most one per two requests)"
agent_stop 1
pass "$all Graph requests ($wire on the wire) over $connections connections (kept alive and reused)"
