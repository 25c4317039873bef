#!/usr/bin/env node
// bench/failover-audit.js -- what the SCIM fixture's audit log says about a
// failover run (bench/failover.sh calls it; it prints findings, asserts nothing).
//
//   node failover-audit.js AUDIT.jsonl "OLD:NEW OLD:NEW ..." "OLD:NEW ..."
//
// The second argument lists the term changes made by killing the leader, the
// third those made by `canopyctl cluster transfer`. Printed:
//   - writes by method and status (status null: the connection closed before
//     the server answered, e.g. a request cancelled by a node losing leadership)
//   - late writes: a write of an older term audited after the first write of a
//     newer term (fencing: must not happen), with how late
//   - terms written by more than one node; objects created (201) while they
//     existed; DELETEs (the bench deletes nothing, so each one is wrong) and
//     objects created again after them
//   - per term change: the old term's writes audited after the change began to
//     show (its last write) and the new term's repeats: updates (PUT/PATCH) in
//     the new term's first 2 s of an object the old term updated in its last 4 s (the
//     bench changes each user only every ~5 s, so these are re-done writes of
//     changes the old leader had sent but not committed -- idempotent by design)
"use strict";
const fs = require("fs");

const [file, killArg = "", xferArg = ""] = process.argv.slice(2);
const rows = fs.readFileSync(file, "utf8").split("\n").filter(Boolean).map((l) => JSON.parse(l));
rows.sort((a, b) => a.seq - b.seq);
for (const r of rows) r.ms = Date.parse(r.time);
const ok = (r) => r.status !== null && r.status < 300;

const out = [];
const by = {};
for (const r of rows) {
	const k = `${r.method} ${r.status}`;
	by[k] = (by[k] ?? 0) + 1;
}
out.push(`${rows.length} writes audited: ` + Object.entries(by).sort().map(([k, v]) => `${k} x${v}`).join(", "));

// late writes, shared terms and duplicate creates: tests/fixtures/audit.js
const {analyze, describe} = require("../tests/fixtures/audit.js");
const an = analyze(rows);
out.push(`writes of an older term after a newer term's first write: ${an.late.length}`);
for (const l of an.late.slice(0, 10))
	out.push(`  ${describe(l.r)}: ${l.afterMs} ms after term ${l.newerTerm}'s first write (seq ${l.newer.seq})`);
if (an.late.length > 10) out.push(`  ... ${an.late.length - 10} more`);
out.push(`terms written by more than one node: ${an.shared.length ? an.shared.map((s) => `${s.term}: ${s.nodes.join("+")}`).join(", ") : "none"}`);
// The bench deletes nothing in the directory, so every DELETE here is one
// canopy should not have made, and every re-creation follows such a DELETE.
const deletes = rows.filter((r) => ok(r) && r.externalId && r.method === "DELETE");
const exists = new Map();
for (const r of rows) {
	if (!ok(r) || !r.externalId) continue;
	if (r.method === "POST" && r.status === 201) exists.set(r.externalId, true);
	else if (r.method === "DELETE") exists.set(r.externalId, false);
}
out.push(`objects created while they existed (duplicates): ${an.dup.length}`);
const delTerms = {};
for (const r of deletes) delTerms[r.term] = (delTerms[r.term] ?? 0) + 1;
out.push(`DELETEs (the bench deletes nothing in the directory, so all are wrong): ${deletes.length}` +
	(deletes.length ? ` -- per term: ${Object.entries(delTerms).map(([t, n]) => `${t}:${n}`).join(" ")}` : ""));
out.push(`objects created again after such a DELETE (on their next change): ${an.recreated.length}; ` +
	`deleted and not re-created at the end: ${[...exists.values()].filter((v) => v === false).length}`);
const bad = rows.filter((r) => !ok(r));
if (bad.length) {
	out.push(`writes not answered 2xx: ${bad.length}`);
	for (const r of bad.slice(0, 10))
		out.push(`  seq ${r.seq} node ${r.node} term ${r.term} ${r.method} ${r.path} status ${r.status}${r.fault ? " (injected fault)" : ""} at ${r.time}`);
}

function changes(arg, label) {
	const pairs = arg.trim() ? arg.trim().split(/\s+/).map((p) => p.split(":").map(Number)) : [];
	const repeats = [];
	for (const [oldT, newT] of pairs) {
		const o = rows.filter((r) => r.term === oldT);
		const n = rows.filter((r) => r.term === newT);
		if (!o.length || !n.length) continue;
		const lastOld = o[o.length - 1].ms, firstNew = n[0].ms;
		const upd = (r) => ok(r) && (r.method === "PUT" || r.method === "PATCH");
		const recent = new Set(o.filter((r) => upd(r) && r.ms >= lastOld - 4000).map((r) => r.externalId));
		const rep = n.filter((r) => upd(r) && r.ms <= firstNew + 2000 && recent.has(r.externalId));
		repeats.push(rep.length);
	}
	if (pairs.length)
		out.push(`${label}: re-done writes per term change (heuristic, see header): ${repeats.join(" ")}` +
			` (total ${repeats.reduce((a, b) => a + b, 0)})`);
}
changes(killArg, "after a kill");
changes(xferArg, "after a transfer");
console.log(out.join("\n"));
