#!/usr/bin/env bash
# The documentation stands alone and points only at what exists: no file in
# docs/, README.md, CONTRIBUTING.md or man/ cites a file outside the
# repository (DESIGN.md, ../shared, a developer machine's /work/ or /home/
# path); every relative markdown link, and every repository path written in
# backticks (a `dir/...` under one of the repository's top-level directories,
# with an extension or a trailing '/', globs allowed in the last part) or
# named in a man page, exists. Fails naming the file, the line and the
# missing target. A self-check first: the same scan over planted bad lines
# must find each of them, so that a scan that finds nothing cannot pass.
source "$(dirname "$0")/../fixtures/lib.sh"
dir=$(fixture_tmpdir)
src=$CANOPY_SOURCE_DIR

cat >"$dir/scan.js" <<'JS'
// node scan.js ROOT FILE...: prints "FILE:LINE: problem" for each problem.
const fs = require("fs"), path = require("path");
const root = process.argv[2];
const tops = new Set(fs.readdirSync(root).filter((n) => !/^build/.test(n) && n !== ".git" &&
	fs.statSync(path.join(root, n)).isDirectory()));
const outside = [[/DESIGN\.md/, "cites DESIGN.md, a file outside the repository"],
	[/\.\.\/shared\b/, "cites ../shared, outside the repository"],
	[/(^|[^\w.])\/(work|home)\//, "cites a path on a developer's machine"]];
function exists(rel, base) {
	for (const b of [root, base]) {
		const p = path.join(b, rel);
		if (!rel.includes("*")) {
			if (fs.existsSync(p)) return true;
			continue;
		}
		const d = path.dirname(p), last = path.basename(p);
		if (d.includes("*") || !fs.existsSync(d)) continue;
		const re = new RegExp("^" + last.replace(/[.+?^${}()|[\]\\]/g, "\\$&").replace(/\*/g, ".*") + "$");
		if (fs.readdirSync(d).some((n) => re.test(n))) return true;
	}
	return false;
}
// A repository path: relative, under a top-level directory of the repository,
// with an extension or a trailing '/'.
function repoPath(t) {
	if (!/^[A-Za-z0-9_.*-]+(\/[A-Za-z0-9_.*-]+)*\/?$/.test(t) || !t.includes("/")) return false;
	if (!tops.has(t.split("/")[0])) return false;
	return t.endsWith("/") || /\.[A-Za-z0-9]+$/.test(t);
}
let problems = 0;
for (const file of process.argv.slice(3)) {
	const rel = path.relative(root, file), base = path.dirname(file);
	const man = /\.[0-9]$/.test(file);
	let fence = false;
	fs.readFileSync(file, "utf8").split("\n").forEach((line, i) => {
		const at = `${rel}:${i + 1}:`;
		const say = (what) => { console.log(`${at} ${what}`); problems++; };
		for (const [re, why] of outside) if (re.test(line)) say(why);
		if (man) {
			const text = line.replace(/\\-/g, "-").replace(/\\f[BIRP]/g, "");
			for (const m of text.matchAll(/(?:^|[\s("])([A-Za-z0-9_.-]+\/[A-Za-z0-9_.\/*-]+)/g))
				if (repoPath(m[1].replace(/[.,;:]+$/, "")) && !exists(m[1].replace(/[.,;:]+$/, ""), base))
					say(`names ${m[1].replace(/[.,;:]+$/, "")}, which does not exist`);
			return;
		}
		if (/^\s*(```|~~~)/.test(line)) { fence = !fence; return; }
		if (fence) return;
		for (const m of line.matchAll(/\]\(([^)\s]+)\)/g)) {
			const t = m[1];
			if (/^[a-z][a-z0-9+.-]*:/i.test(t) || t.startsWith("#")) continue;
			const p = decodeURIComponent(t.split("#")[0]);
			if (!fs.existsSync(path.join(base, p))) say(`links to ${t}, which does not exist`);
		}
		for (const m of line.matchAll(/`([^`\s]+)`/g))
			if (repoPath(m[1]) && !exists(m[1], base)) say(`names \`${m[1]}\`, which does not exist`);
	});
}
process.exit(problems ? 1 : 0);
JS

# Self-check: every planted problem is found, and a good line passes.
mkdir -p "$dir/fake/docs" "$dir/fake/tests"
touch "$dir/fake/tests/real_test.sh"
cat >"$dir/fake/docs/bad.md" <<'MD'
See DESIGN.md for the contracts.
Shared notes in ../shared/notes.md.
Logs in /work/main/build.
A [broken link](missing.md) and a [good one](bad.md#top), [web](https://example.org/x.md).
Run `tests/missing_test.sh`, or `tests/real_test.sh`, `tests/real_*.sh`, `tests/`, `docs/nothing/`.
Not repository paths: `src/uv_segment.c`, `/etc/canopy/agent.yaml`, `GET /v1/status`, `a/b`.
```
`tests/in_a_fence.sh` is code, not a reference
```
MD
printf '.TH X 8\nSee\n.IR docs/gone.md .\nAnd docs/bad.md.\n' >"$dir/fake/docs/page.8"
rc=0; node "$dir/scan.js" "$dir/fake" "$dir/fake/docs/bad.md" "$dir/fake/docs/page.8" >"$dir/self.txt" || rc=$?
expect="docs/bad.md:1: cites DESIGN.md, a file outside the repository
docs/bad.md:2: cites ../shared, outside the repository
docs/bad.md:3: cites a path on a developer's machine
docs/bad.md:4: links to missing.md, which does not exist
docs/bad.md:5: names \`tests/missing_test.sh\`, which does not exist
docs/bad.md:5: names \`docs/nothing/\`, which does not exist
docs/page.8:3: names docs/gone.md, which does not exist"
[ "$rc" = 1 ] && [ "$(cat "$dir/self.txt")" = "$expect" ] ||
	fail "the scan does not find what was planted (exit $rc):
$(diff <(echo "$expect") "$dir/self.txt")"
pass "self-check: the scan finds each planted problem and nothing else"

files=()
while IFS= read -r -d '' f; do files+=("$f"); done < <(
	find "$src/docs" -type f -name '*.md' -print0; find "$src/man" -type f -name '*.[0-9]' -print0; printf '%s\0' "$src/README.md" "$src/CONTRIBUTING.md")
[ "${#files[@]}" -ge 12 ] || fail "only ${#files[@]} files to scan"
rc=0; out=$(node "$dir/scan.js" "$src" "${files[@]}") || rc=$?
[ "$rc" = 0 ] || fail "documentation problems:
$out"
pass "${#files[@]} files: no outside citation, every link and repository path exists"
