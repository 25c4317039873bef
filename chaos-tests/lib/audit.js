#!/usr/bin/env node
// chaos-tests/lib/audit.js -- what the SCIM (or Graph) fixture's audit log says, for the
// scenarios (the full checker is chaos-tests/check.sh; this answers the
// questions a scenario asks while it runs, and stands in for the checker's
// audit part when it is absent).
//
//   node audit.js summary AUDIT            {"writes","terms","dup","stale","stale_objects"}
//   node audit.js first-write AUDIT TERM   time (ms) of TERM's first 2xx write; exit 1 if none
//   node audit.js term-after AUDIT TERM MS number of 2xx writes of TERM (or any
//                                          older term) audited at or after MS
//
// dup: an object created (POST 201) while it existed (by externalId, as in
// bench/failover-audit.js). stale: a 2xx write of an older term audited after
// a newer term's first 2xx write (fencing: a deposed leader must not write
// once its successor has). stale_objects: of those, the writes to an object
// the newer term had already written (the ones that could leave old content).
"use strict";
const fs = require("fs");
const [cmd, file, a1, a2] = process.argv.slice(2);
const rows = (fs.existsSync(file) ? fs.readFileSync(file, "utf8") : "").split("\n").filter(Boolean)
	.map((l) => JSON.parse(l)).sort((a, b) => a.seq - b.seq);
for (const r of rows) r.ms = Date.parse(r.time);
// a write answered 2xx (the Graph fixture audits reads too: not writes)
const ok = (r) => r.status !== null && r.status < 300 && r.method !== "GET";

if (cmd === "first-write") {
	const r = rows.find((x) => ok(x) && x.term === Number(a1));
	if (!r) process.exit(1);
	console.log(r.ms);
} else if (cmd === "term-after") {
	console.log(rows.filter((x) => ok(x) && x.term !== null && x.term <= Number(a1) && x.ms >= Number(a2)).length);
} else if (cmd === "summary") {
	const exists = new Map();
	let dup = 0, stale = 0, staleObjects = 0, max = -Infinity;
	const written = new Map(); // object -> highest term that wrote it
	const terms = new Set();
	const details = [];
	for (const r of rows) {
		if (!ok(r)) continue;
		if (r.term !== null) terms.add(r.term);
		const key = r.externalId || r.id || r.path;
		if (r.method === "POST" && r.status === 201 && r.externalId) {
			if (exists.get(r.externalId) === true) dup++;
			exists.set(r.externalId, true);
		} else if (r.method === "DELETE" && r.externalId) exists.set(r.externalId, false);
		if (r.term !== null) {
			if (r.term < max) {
				stale++;
				if ((written.get(key) ?? -Infinity) > r.term) staleObjects++;
				if (details.length < 5) details.push(`seq ${r.seq} node ${r.node} term ${r.term} ${r.method} ${r.path} at ${r.time} (term ${max} already wrote)`);
			}
			if (r.term > max) max = r.term;
			if ((written.get(key) ?? -Infinity) < r.term) written.set(key, r.term);
		}
	}
	console.log(JSON.stringify({writes: rows.filter(ok).length, terms: terms.size, dup, stale,
		stale_objects: staleObjects, details}));
} else {
	console.error("usage: audit.js summary|first-write|term-after AUDIT [TERM [MS]]");
	process.exit(2);
}
