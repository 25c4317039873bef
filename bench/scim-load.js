#!/usr/bin/env node
// bench/scim-load.js -- the write ceiling of bench/run.sh (row 1): the SCIM
// fixture's ingest rate for the same resources canopy wrote, with no agent.
//
//   node scim-load.js SCIM_URL TOKEN_FILE STORE_JSON CONCURRENCY IDS_OUT
//
// STORE_JSON is the fixture's GET /_test/store after canopy's initial sync
// ({Users: [...], Groups: [...]}): each resource is POSTed again (id and meta
// dropped, as a client sends it) to SCIM_URL, a fresh fixture, over
// CONCURRENCY keep-alive connections with at most CONCURRENCY requests in
// flight (canopy's target.max_in_flight), users first, then groups with their
// members renamed to the new user ids (canopy too writes a group after its
// members). IDS_OUT gets "userName id" lines (bench/change_gen's IDS_FILE).
// Prints {"objects":N,"ms":MS,"per_s":R,"errors":E} on stdout.
"use strict";
const fs = require("fs");
const http = require("http");
const https = require("https");

const [url, tokenFile, storeFile, concArg, idsOut] = process.argv.slice(2);
if (!idsOut) {
	process.stderr.write("usage: node scim-load.js SCIM_URL TOKEN_FILE STORE_JSON CONCURRENCY IDS_OUT\n");
	process.exit(2);
}
const token = fs.readFileSync(tokenFile, "utf8").trim();
const store = JSON.parse(fs.readFileSync(storeFile, "utf8"));
const conc = Math.max(1, parseInt(concArg, 10) || 8);
const base = new URL(url);
const mod = base.protocol === "https:" ? https : http;
const agent = new mod.Agent({keepAlive: true, maxSockets: conc});

function strip(r) {
	const o = {...r};
	delete o.id;
	delete o.meta;
	return o;
}

function post(path, body) {
	const data = Buffer.from(JSON.stringify(body));
	return new Promise((resolve) => {
		const req = mod.request({agent, method: "POST", hostname: base.hostname, port: base.port,
			path: base.pathname.replace(/\/$/, "") + path,
			headers: {"Authorization": `Bearer ${token}`, "Content-Type": "application/scim+json",
				"Accept": "application/scim+json", "Content-Length": data.length}}, (res) => {
			let s = "";
			res.setEncoding("utf8");
			res.on("data", (d) => (s += d));
			res.on("end", () => {
				let j = null;
				try { j = JSON.parse(s); } catch { /* an error page */ }
				resolve({status: res.statusCode, body: j});
			});
		});
		req.on("error", (e) => resolve({status: 0, body: {error: String(e)}}));
		req.end(data);
	});
}

// Runs fn over items with at most `conc` at a time.
async function pool(items, fn) {
	let next = 0;
	const worker = async () => {
		while (next < items.length) {
			const i = next++;
			await fn(items[i], i);
		}
	};
	await Promise.all(Array.from({length: Math.min(conc, items.length)}, worker));
}

(async () => {
	const users = store.Users ?? [], groups = store.Groups ?? [];
	const newId = new Map(); // old id -> new id
	const ids = [];
	let errors = 0;
	const t0 = Date.now();
	await pool(users, async (u) => {
		const r = await post("/Users", strip(u));
		if (r.status !== 201 || !r.body?.id) { errors++; return; }
		newId.set(u.id, r.body.id);
		ids.push(`${u.userName} ${r.body.id}`);
	});
	await pool(groups, async (g) => {
		const b = strip(g);
		if (Array.isArray(b.members))
			b.members = b.members.map((m) => ({...m, value: newId.get(m.value) ?? m.value}));
		const r = await post("/Groups", b);
		if (r.status !== 201) errors++;
	});
	const ms = Math.max(1, Date.now() - t0);
	fs.writeFileSync(idsOut, ids.join("\n") + "\n");
	const n = users.length + groups.length;
	process.stdout.write(JSON.stringify({objects: n, ms, per_s: +(n * 1000 / ms).toFixed(1), errors}) + "\n");
	agent.destroy();
})();
