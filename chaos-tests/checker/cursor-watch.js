#!/usr/bin/env node
// chaos-tests/checker/cursor-watch.js -- chaos-tests/cursor-watch.sh runs it.
// One Node process polls every agent (curl per poll would cost a process
// each, 60 a second for three agents, on machines with two cores).
"use strict";
const fs = require("fs");
const http = require("http");
const https = require("https");

// --help: the usage comment at the top of chaos-tests/cursor-watch.sh, exit 0
function help() {
	const lines = fs.readFileSync(require("path").join(__dirname, "..", "cursor-watch.sh"), "utf8").split("\n");
	const out = [];
	for (const l of lines.slice(1)) { if (!l.startsWith("#")) break; out.push(l.replace(/^# ?/, "")); }
	process.stdout.write(out.join("\n") + "\n");
	process.exit(0);
}

function usage(msg) {
	if (msg) process.stderr.write(`cursor-watch: ${msg}\n`);
	process.stderr.write("usage: cursor-watch.sh --out FILE [--interval-ms N] URL...\n");
	process.exit(2);
}
let out = null, interval = 50;
const urls = [];
const argv = process.argv.slice(2);
for (let i = 0; i < argv.length; i++) {
	if (argv[i] === "-h" || argv[i] === "--help") help();
	else if (argv[i] === "--out") out = argv[++i];
	else if (argv[i] === "--interval-ms") interval = Number(argv[++i]);
	else if (argv[i].startsWith("-")) usage(`unknown argument ${argv[i]}`);
	else urls.push(argv[i]);
}
if (!out || !urls.length || !(interval > 0)) usage();
const statusUrl = (u) => {
	if (!/^https?:\/\//.test(u)) u = `http://${u}`;
	return /\/v1\/status$/.test(u) ? u : u.replace(/\/$/, "") + "/v1/status";
};
const fd = fs.openSync(out, "a");
const line = (o) => fs.writeSync(fd, JSON.stringify(o) + "\n");

function poll(url) {
	const busy = poll.busy ?? (poll.busy = new Set());
	if (busy.has(url)) return; // the previous answer is still coming
	busy.add(url);
	const time = new Date().toISOString();
	const done = (o) => { busy.delete(url); line({time, url, ...o}); };
	const req = (url.startsWith("https:") ? https : http).get(url, {timeout: 1000, rejectUnauthorized: false}, (res) => {
		let body = "";
		res.setEncoding("utf8");
		res.on("data", (d) => (body += d));
		res.on("end", () => {
			try {
				const j = JSON.parse(body);
				done({node: j.node_id, role: j.role, term: j.term, commit_index: j.commit_index,
					applied_index: j.applied_index, leader_ready: j.leader_ready,
					cursor: j.sync?.cursor ?? null, sync_state: j.sync?.state ?? null,
					digest: j.state?.digest ?? null, objects: j.state?.objects ?? null});
			} catch (e) {
				done({error: `HTTP ${res.statusCode}: not a status answer (${e.message})`});
			}
		});
	});
	req.on("timeout", () => req.destroy(new Error("timeout")));
	req.on("error", (e) => done({error: e.code || e.message}));
}
const targets = urls.map(statusUrl);
const timer = setInterval(() => targets.forEach(poll), interval);
targets.forEach(poll);
const quit = () => { clearInterval(timer); fs.closeSync(fd); process.exit(0); };
process.on("SIGTERM", quit);
process.on("SIGINT", quit);
