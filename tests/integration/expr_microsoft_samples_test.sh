#!/usr/bin/env bash
# Every sample input and output of Microsoft's function reference for
# attribute-mapping expressions (tests/fixtures/expr-samples.json, one row per
# sample, naming the section of Microsoft's page it comes from) gives the
# documented value through `canopyctl expr --json`: the same parser and
# evaluator as the agent's mappings. Random values (RandomString, Guid) are checked
# against the documented rules instead, and refused functions must fail to
# parse with the documented message and exit 1. Then every row of Microsoft's
# NormalizeDiacritics table (tests/fixtures/expr-diacritics.tsv).
# docs/mapping-expressions.md has the function reference and the deviations.
source "$(dirname "$0")/../fixtures/lib.sh"

node - "$CANOPYCTL" "$CANOPY_SOURCE_DIR/tests/fixtures/expr-samples.json" <<'JS' || fail "Microsoft's samples (the lines above)"
const { spawnSync } = require('child_process');
const [ctl, file] = process.argv.slice(2);
const { samples } = JSON.parse(require('fs').readFileSync(file, 'utf8'));
let bad = 0;
for (const s of samples) {
	const args = ['expr', s.expr, '--json'];
	for (const [name, v] of Object.entries(s.attrs || {}))
		for (const one of [].concat(v)) args.push('--attr', `${name}=${one}`);
	for (const t of s.taken || []) args.push('--taken', t);
	if (s.now) args.push('--now', s.now);
	const r = spawnSync(ctl, args, { encoding: 'utf8' });
	const where = `${s.section}: ${s.expr}`;
	let why = null;
	if ('error' in s) {
		if (r.status !== 1 || !r.stderr.startsWith(`canopyctl: expr: ${s.error}`))
			why = `want exit 1 and "${s.error}...", got exit ${r.status}: ${r.stderr.trim()}`;
	} else if (r.status !== 0) {
		why = `exit ${r.status}: ${r.stderr.trim()}`;
	} else {
		const got = JSON.parse(r.stdout).value;
		if ('match' in s) {
			if (typeof got !== 'string' || !new RegExp(s.match).test(got))
				why = `${JSON.stringify(got)} does not match ${s.match}`;
		} else if (JSON.stringify(got) !== JSON.stringify(s.value)) {
			why = `got ${JSON.stringify(got)}, want ${JSON.stringify(s.value)}`;
		}
	}
	if (why) {
		bad++;
		console.log(`FAIL ${where}: ${why}`);
	}
}
console.log(`${samples.length - bad} of ${samples.length} samples as documented`);
process.exit(bad ? 1 : 0);
JS
pass "Microsoft's samples"

# RandomString is random: two evaluations differ (a constant would pass the
# pattern check above)
a=$("$CANOPYCTL" expr 'RandomString(20,2,2,2,2)') && b=$("$CANOPYCTL" expr 'RandomString(20,2,2,2,2)') ||
	fail "RandomString failed"
[ ${#a} = 20 ] && [ "$a" != "$b" ] || fail "RandomString(20,...) twice: \"$a\", \"$b\""
pass "RandomString differs between evaluations"

# Guid() likewise: a new GUID at every evaluation
a=$("$CANOPYCTL" expr 'Guid()') && b=$("$CANOPYCTL" expr 'Guid()') || fail "Guid() failed"
[ ${#a} = 36 ] && [ "$a" != "$b" ] || fail "Guid() twice: \"$a\", \"$b\""
pass "Guid() differs between evaluations"

# Microsoft's NormalizeDiacritics table, one row per character
n=0
while IFS=$'\t' read -r in want; do
	case $in in '#'* | '') continue ;; esac
	got=$("$CANOPYCTL" expr 'NormalizeDiacritics([x])' --attr "x=$in") || fail "NormalizeDiacritics(\"$in\") failed"
	[ "$got" = "$want" ] || fail "NormalizeDiacritics(\"$in\") = \"$got\", Microsoft's table says \"$want\""
	n=$((n + 1))
done <"$CANOPY_SOURCE_DIR/tests/fixtures/expr-diacritics.tsv"
[ $n -gt 200 ] || fail "only $n rows read from expr-diacritics.tsv"
pass "NormalizeDiacritics: the $n characters of Microsoft's table"
