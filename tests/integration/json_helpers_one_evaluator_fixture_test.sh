#!/usr/bin/env bash
# json_get and json_eval (tests/fixtures/lib.sh) start one node process per
# test shell, not one per call: the first call starts the evaluator
# (tests/fixtures/json-eval.js) even from concurrent subshells, later calls
# only connect to it. It is not a job of the test shell ($! and a bare
# `wait` stay the test's), it never outlives the shell (stopped by the exit
# trap; gone soon after a SIGKILL of the shell too), and a call that finds
# it dead still answers (node per call).
ROOT=${CANOPY_SOURCE_DIR:-$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)}
# shellcheck source=../fixtures/lib.sh
. "$ROOT/tests/fixtures/lib.sh"
command -v node >/dev/null 2>&1 || { echo "node is not installed"; exit 77; }

dir=$(fixture_tmpdir)
# A node that counts its starts: first in the PATH of the shells below.
mkdir -p "$dir/bin"
cat >"$dir/bin/node" <<EOF
#!/bin/sh
printf '%.80s\n' "\$(echo "\$*" | tr '\n' ' ')" >>"$dir/node-starts"
exec $(command -v node) "\$@"
EOF
chmod +x "$dir/bin/node"
starts() { grep -c . "$dir/node-starts" 2>/dev/null || echo 0; }

# The shell under test: TMPDIR puts its temp dir inside ours.
cat >"$dir/shell.sh" <<'EOF'
. "$CANOPY_SOURCE_DIR/tests/fixtures/scim.sh" # as the tests that use json_get
echo "tmp $FIXTURE_TMP"
# The first calls: 8 concurrent subshells (pipelines inside $(...)).
for i in 1 2 3 4 5 6 7 8; do
	(r=$(echo "{\"i\":$i}" | json_get 'j.i') && [ "$r" = "$i" ] || echo "BAD concurrent call $i: [$r]") &
done
wait
for ((i = 0; i < 30; i++)); do
	[ "$(json_eval "{\"i\":$i}" 'j.i + 1')" = $((i + 1)) ] || echo "BAD json_eval $i"
	[ "$(printf '[%s]' "$i" | json_get 'j[0]')" = "$i" ] || echo "BAD json_get $i"
done
sleep 60 &
bg=$!
json_eval '{}' '1' >/dev/null # in this shell, not a subshell
[ "$!" = "$bg" ] || echo "BAD \$! is $!, not $bg"
jobs -rp >"$FIXTURE_TMP/jobs" # running ones: the sleep alone
[ "$(grep -c . "$FIXTURE_TMP/jobs")" = 1 ] || echo "BAD jobs: $(tr '\n' ' ' <"$FIXTURE_TMP/jobs")"
kill "$bg"
wait
echo "calls done"
[ "${1:-}" = hang ] && exec sleep 300
if [ "${1:-}" = kill-server ]; then
	pkill -KILL -f "json-eval.js serve $FIXTURE_TMP/" || echo "BAD no server to kill"
	sleep 0.2
	[ "$(echo '{"a":[5]}' | json_get 'j.a[0]')" = 5 ] || echo "BAD json_get after the server died"
	[ "$(json_eval '{"a":[6]}' 'j.a[0]')" = 6 ] || echo "BAD json_eval after the server died"
	if echo '{}' | json_get 'j.x.y' 2>/dev/null; then echo "BAD no error after the server died"; fi
	echo "fallback done"
fi
EOF

server_of() { pgrep -f "json-eval.js serve $1/" || true; }
gone() { # PID: no such process, or a zombie (its adopter reaps it)
	local s
	s=$(ps -o stat= -p "$1" 2>/dev/null)
	[ -z "$s" ] || [ "${s:0:1}" = Z ]
}
run_shell() { # MODE: runs the shell, fails the test on a BAD line
	PATH="$dir/bin:$PATH" TMPDIR=$dir bash "$dir/shell.sh" "$@" >"$dir/shell.out" 2>&1 || fail "shell.sh $*: $(cat "$dir/shell.out")"
	! grep BAD "$dir/shell.out" || fail "shell.sh $*: $(cat "$dir/shell.out")"
	shell_tmp=$(sed -n 's/^tmp //p' "$dir/shell.out")
}

: >"$dir/node-starts"
run_shell
[ "$(starts)" = 1 ] || fail "69 calls started node $(starts) times, want 1 (the evaluator): $(cat "$dir/node-starts")"
grep -q '^.*json-eval.js serve ' "$dir/node-starts" || fail "the one node started is not the evaluator: $(cat "$dir/node-starts")"
pass "69 calls, 8 of them concurrent first calls from subshells: one node process, the evaluator; \$! and wait untouched"
[ -z "$(server_of "$shell_tmp")" ] || fail "the evaluator outlived its shell: pid $(server_of "$shell_tmp")"
pass "the exit trap stopped it"

: >"$dir/node-starts"
PATH="$dir/bin:$PATH" TMPDIR=$dir spawn shell "$dir/shell.out" bash "$dir/shell.sh" hang
shell_pid=$SPAWNED_PID
wait_until 60 grep -qx "calls done" "$dir/shell.out" || fail "shell.sh hang: $(cat "$dir/shell.out")"
shell_tmp=$(sed -n 's/^tmp //p' "$dir/shell.out")
server=$(server_of "$shell_tmp")
[ -n "$server" ] || fail "no evaluator while its shell lives"
kill -KILL "$shell_pid"
wait "$shell_pid" 2>/dev/null
forget_pid "$shell_pid"
wait_until 10 gone "$server" || fail "the evaluator (pid $server) outlived its SIGKILLed shell by 10 s"
pass "a SIGKILLed shell's evaluator exits by itself"

: >"$dir/node-starts"
run_shell kill-server
grep -qx "fallback done" "$dir/shell.out" || fail "shell.sh kill-server: $(cat "$dir/shell.out")"
[ "$(grep -c 'json-eval.js get\|json-eval.js eval' "$dir/node-starts")" -ge 3 ] ||
	fail "after the evaluator died, calls did not run node themselves: $(cat "$dir/node-starts")"
pass "with the evaluator dead, calls run node themselves and answer the same"
