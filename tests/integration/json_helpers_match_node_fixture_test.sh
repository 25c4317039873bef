#!/usr/bin/env bash
# json_get and json_eval (tests/fixtures/lib.sh), now answered by one
# evaluator per test shell (tests/fixtures/json-eval.js), print exactly what
# the node -e one-liners they replace printed, and fail where those failed:
# same stdout, same exit status, an error on stderr exactly when those
# wrote one. The one-liners are kept below, verbatim, as the reference.
ROOT=${CANOPY_SOURCE_DIR:-$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)}
# shellcheck source=../fixtures/scim.sh
. "$ROOT/tests/fixtures/scim.sh" # as the tests that use json_get
command -v node >/dev/null 2>&1 || { echo "node is not installed"; exit 77; }

ref_json_get() {
	node -e '
		let s = "";
		process.stdin.setEncoding("utf8");
		process.stdin.on("data", (d) => (s += d));
		process.stdin.on("end", () => {
			const j = s.trim() === "" ? undefined : JSON.parse(s);
			const r = (0, eval)("(j) => (" + process.argv[1] + ")")(j);
			process.stdout.write(typeof r === "string" ? r + "\n" : JSON.stringify(r) + "\n");
		});
	' "$1"
}
ref_json_eval() {
	node -e 'const j=JSON.parse(process.argv[1]);const v=eval(process.argv[2]);console.log(typeof v==="object"?JSON.stringify(v):String(v));' "$1" "$2"
}

dir=$(fixture_tmpdir)
cases=0
# same WHAT: the two runs' stdout (with the status appended, as $(...) keeps
# it) are equal, and both or neither wrote to stderr.
same() {
	local what=$1 want got
	want=$(cat "$dir/ref.out"; echo "status $(cat "$dir/ref.rc")")
	got=$(cat "$dir/new.out"; echo "status $(cat "$dir/new.rc")")
	[ "$got" = "$want" ] || fail "$what: got [$got], node -e printed [$want]"
	if [ -s "$dir/ref.err" ] && [ ! -s "$dir/new.err" ]; then fail "$what: no error on stderr (node -e: $(head -c 300 "$dir/ref.err"))"; fi
	if [ ! -s "$dir/ref.err" ] && [ -s "$dir/new.err" ]; then fail "$what: stderr [$(cat "$dir/new.err")], node -e wrote none"; fi
	cases=$((cases + 1))
}
check_get() { # INPUT EXPR
	printf '%s' "$1" | ref_json_get "$2" >"$dir/ref.out" 2>"$dir/ref.err"
	echo $? >"$dir/ref.rc"
	printf '%s' "$1" | json_get "$2" >"$dir/new.out" 2>"$dir/new.err"
	echo $? >"$dir/new.rc"
	same "json_get '$2' <<< '${1:0:60}'"
}
check_eval() { # JSON EXPR
	ref_json_eval "$1" "$2" >"$dir/ref.out" 2>"$dir/ref.err"
	echo $? >"$dir/ref.rc"
	json_eval "$1" "$2" >"$dir/new.out" 2>"$dir/new.err"
	echo $? >"$dir/new.rc"
	same "json_eval '${1:0:60}' '$2'"
}

J='{"a":{"b":[1,2,3]},"s":"x y\n z","u":"é€😀","n":null,"t":true,"bs":"a\\b","pct":"%s %%","crlf":"a\r\nb"}'
for e in 'j.a' 'j.a.b' 'j.a.b.length' 'j.s' 'j.u' 'j.n' 'j.t' 'j.missing' 'j.bs' 'j.pct' 'j.crlf' \
	'j.a.b.map((x) => x * 2).join("\n")' 'Object.keys(j).sort()' '"  lead and trail  "' 'j.s + "\n\n"' \
	'undefined' 'null' '() => 1' '1n' 'typeof require' 'console.log("printed first") || 5' \
	'j.nope.x' '(' '(() => { throw "a string" })()' 'JSON.parse("{")'; do
	check_get "$J" "$e"
done
pass "json_get: strings raw, the rest JSON, errors ($cases cases)"

n=$cases
big=$(node -e 'const u = []; for (let i = 0; i < 3000; i++) u.push({id: "id" + i, userName: "user" + i, emails: [{value: "u" + i + "@example.test"}]}); console.log(JSON.stringify({Users: u}))')
for input in '' '   ' $'\n\n' 'not json' '[1,2' '"str"' '42' 'null' $'{"a":1}\r\n' $'{"bad":"\xff\xfe"}' "$big"; do
	check_get "$input" 'j === undefined ? "undefined j" : Array.isArray(j) ? j.length : j && j.Users ? j.Users[2999].userName : j'
done
pass "json_get input: blank is undefined, bad JSON fails, invalid UTF-8 and $((${#big} / 1024)) KiB as node reads them ($((cases - n)) cases)"

n=$cases
for e in 'j.a' 'j.s' 'j.u' 'j.n' 'j.missing' 'j.pct' 'j.nope.x' 'const x = j.a; x.b.length' 'var k = 3; k * 2' \
	'let q = 1; q' 'if (j.t) { "yes" } else { "no" }' 'j.t && j.a.b.length === 3' '[j.t, j.n].join(" ")' \
	'Symbol("q")' 'typeof v' 'this === globalThis' '(' 'throw new Error("oops")' '1n' '({a: 1n})' \
	'console.log("printed"), 7'; do
	check_eval "$J" "$e"
done
check_eval '{bad' 'j'
check_eval '' 'j'
pass "json_eval: statements, objects as JSON, the rest String(v), errors ($((cases - n)) cases)"

# The forms the tests use them in.
st='{"role":"leader","leader_ready":true,"term":3}'
[ "$(json_eval "$st" 'j.term')" = 3 ] || fail "json_eval in \$(...)"
json_eval "$st" 'j.role === "leader"' | grep -qx true || fail "json_eval | grep -q"
if echo '{}' | json_get 'j.a.b' >/dev/null 2>&1; then fail "json_get of a missing path succeeded"; fi
out=$(echo '{}' | json_get 'j.a.b' 2>/dev/null) && fail "json_get ... || fail did not fail"
[ -z "$out" ] || fail "json_get printed [$out] on an exception"
pass "\$(...), | grep -q and || fail see what they saw"
