#!/usr/bin/env bash
# The status page is served by the agent itself, from files embedded in the
# binary (agent/www/, agent/www.h): GET / and its /assets/ without a token
# (reads are open, like /v1/status) even when mutations need one; every
# answer carries Content-Security-Policy (default-src 'self', so no inline
# script), X-Content-Type-Options: nosniff and Cache-Control: no-store; HEAD
# answers the headers without a body; an asset that is not embedded is 404,
# a POST 405; the bytes served are agent/www/'s files. What a browser shows
# is status_page_test's (headless Chromium).
source "$(dirname "$0")/../fixtures/agent.sh"
dir=$(fixture_tmpdir)

token=ctl-$RANDOM-$RANDOM
(umask 077; printf '%s\n' "$token" >"$dir/control.token")
agent_ports 1
agent_config 1 "[\"1@${AGENT_RAFT[1]}\"]" "control:
  token_file: $dir/control.token"
agent_start 1
wait_role 1 leader 10 || fail "single node did not become a ready leader"
url="http://${AGENT_CTL[1]}"
www=$CANOPY_SOURCE_DIR/agent/www

# get METHOD PATH: status code; headers in $dir/h, body in $dir/b
get() {
	curl -s --path-as-is --max-time 5 -X "$1" -D "$dir/h" -o "$dir/b" -w '%{http_code}' "$url$2"
}
header() { grep -i "^$1:" "$dir/h" | head -1 | cut -d: -f2- | tr -d '\r' | sed 's/^ *//'; }
security_headers() { # security_headers WHAT
	local csp
	csp=$(header Content-Security-Policy)
	grep -q "default-src 'self'" <<<"$csp" || fail "$1: Content-Security-Policy is \"$csp\""
	! grep -q "unsafe-inline\|unsafe-eval" <<<"$csp" || fail "$1: the policy allows inline script: $csp"
	[ "$(header X-Content-Type-Options)" = nosniff ] || fail "$1: X-Content-Type-Options: $(header X-Content-Type-Options)"
	[ "$(header Cache-Control)" = no-store ] || fail "$1: Cache-Control: $(header Cache-Control)"
}

for f in /:index.html:text/html /assets/app.js:app.js:text/javascript /assets/style.css:style.css:text/css; do
	IFS=: read -r path file type <<<"$f"
	code=$(get GET "$path")
	[ "$code" = 200 ] || fail "GET $path without a token answered $code: $(cat "$dir/b")"
	cmp -s "$dir/b" "$www/$file" || fail "GET $path is not agent/www/$file"
	[ "$(header Content-Type)" = "$type; charset=utf-8" ] || fail "GET $path: Content-Type $(header Content-Type)"
	security_headers "GET $path"
	# curl -I writes the headers as its output: the body's size is size_download
	code=$(curl -s --max-time 5 -I -D "$dir/h" -o /dev/null -w '%{http_code} %{size_download}' "$url$path")
	[ "$code" = "200 0" ] || fail "HEAD $path answered $code (status, body bytes)"
	[ "$(header Content-Length)" = "$(stat -c %s "$www/$file")" ] || fail "HEAD $path: Content-Length $(header Content-Length)"
	security_headers "HEAD $path"
done
pass "GET and HEAD of /, /assets/app.js, /assets/style.css: the embedded files, no token, security headers"

# The page's script is a file: no inline <script> body, no inline handlers.
grep -q '<script src="/assets/app.js"' "$www/index.html" || fail "index.html does not load app.js"
! grep -Eiq '<script>|<script [^>]*>[^<]|\son[a-z]+=' "$www/index.html" || fail "index.html has inline script"
# app.js writes text only: never innerHTML, outerHTML, insertAdjacentHTML or document.write.
! grep -Eq 'innerHTML|outerHTML|insertAdjacentHTML|document\.write' "$www/app.js" ||
	fail "app.js writes HTML: $(grep -En 'innerHTML|outerHTML|insertAdjacentHTML|document\.write' "$www/app.js")"
pass "index.html has no inline script; app.js never writes HTML"

for path in /assets/nope.js /assets/ /assets/../agent.c; do
	code=$(get GET "$path")
	[ "$code" = 404 ] || fail "GET $path answered $code, not 404"
	security_headers "GET $path"
	code=$(curl -s --path-as-is --max-time 5 -I -o /dev/null -w '%{http_code}' "$url$path")
	[ "$code" = 404 ] || fail "HEAD $path answered $code, not 404"
done
code=$(curl -s --max-time 5 -o /dev/null -w '%{http_code}' -X POST -H 'Content-Type: application/json' \
	-H "Authorization: Bearer $token" --data '{}' "$url/")
[ "$code" = 405 ] || fail "POST / answered $code, not 405"
pass "unknown /assets are 404 (GET and HEAD), a POST to / is 405"

# Same data as the API: the page's own requests are the API's GETs, which
# answer a same-origin fetch (no Origin header) and still refuse a request
# from another site's page (Origin: http_check_head).
code=$(curl -s --max-time 5 -o /dev/null -w '%{http_code}' -H 'Origin: http://evil.example' "$url/v1/status")
[ "$code" = 403 ] || fail "a cross-site GET /v1/status answered $code, not 403"
code=$(get GET "/v1/status")
[ "$code" = 200 ] || fail "GET /v1/status answered $code"
pass "the API the page reads still refuses cross-site requests"
