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

// late writes of an older term
const firstOfTerm = new Map();
for (const r of rows) if (r.term != null && !firstOfTerm.has(r.term)) firstOfTerm.set(r.term, r);
let maxTerm = -Infinity;
const late = [];
for (const r of rows) {
	if (r.term == null) continue;
	if (r.term < maxTerm) {
		const newer = firstOfTerm.get(maxTerm);
		late.push(`seq ${r.seq} node ${r.node} term ${r.term} ${r.method} ${r.path} status ${r.status} at ${r.time}: ` +
			`${r.ms - newer.ms} ms after term ${maxTerm}'s first write (seq ${newer.seq})`);
	}
	if (r.term > maxTerm) maxTerm = r.term;
}
out.push(`writes of an older term after a newer term's first write: ${late.length}`);
for (const l of late.slice(0, 10)) out.push(`  ${l}`);
if (late.length > 10) out.push(`  ... ${late.length - 10} more`);

const nodesOfTerm = new Map();
for (const r of rows) {
	if (r.term == null) continue;
	if (!nodesOfTerm.has(r.term)) nodesOfTerm.set(r.term, new Set());
	nodesOfTerm.get(r.term).add(r.node);
}
const shared = [...nodesOfTerm].filter(([, s]) => s.size > 1).map(([t, s]) => `${t}: ${[...s].join("+")}`);
out.push(`terms written by more than one node: ${shared.length ? shared.join(", ") : "none"}`);
// Object lifecycle by externalId: a create of an object that exists is a
// duplicate; a create after a DELETE is a re-creation. The bench deletes
// nothing in the directory, so every DELETE here is one canopy should not
// have made.
const exists = new Map();
let dupCreates = 0, recreated = 0;
const deletes = [];
for (const r of rows) {
	if (!ok(r) || !r.externalId) continue;
	if (r.method === "POST" && r.status === 201) {
		if (exists.get(r.externalId) === true) dupCreates++;
		else if (exists.get(r.externalId) === false) recreated++;
		exists.set(r.externalId, true);
	} else if (r.method === "DELETE") {
		exists.set(r.externalId, false);
		deletes.push(r);
	}
}
out.push(`objects created while they existed (duplicates): ${dupCreates}`);
const delTerms = {};
for (const r of deletes) delTerms[r.term] = (delTerms[r.term] ?? 0) + 1;
out.push(`DELETEs (the bench deletes nothing in the directory, so all are wrong): ${deletes.length}` +
	(deletes.length ? ` -- per term: ${Object.entries(delTerms).map(([t, n]) => `${t}:${n}`).join(" ")}` : ""));
out.push(`objects created again after such a DELETE (on their next change): ${recreated}; ` +
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
