#!/usr/bin/env node
// bench/latency.js -- change latency from bench/change_gen's output and a SCIM
// fixture audit log (bench/run.sh, row 2).
//
//   node latency.js GEN_OUT AUDIT_JSONL
//
// For every modify in GEN_OUT ("I USERNAME SEND_MS ..."), the first successful
// PUT or PATCH of that user (audit "userName") whose audit "time" (the fixture
// wrote it when the write was done; CLOCK_REALTIME on this machine, like
// SEND_MS) is at or after SEND_MS. Latency = that time - SEND_MS.
// Prints {"n":N,"matched":M,"p50":..,"p99":..,"max":..,"modify_p50":..,
// "modify_p99":..,"rate":..} (ms; nearest rank; modify_*: send -> the LDAP
// response; rate: modifies/s actually sent).
"use strict";
const fs = require("fs");

const [genFile, auditFile] = process.argv.slice(2);
if (!auditFile) {
	process.stderr.write("usage: node latency.js GEN_OUT AUDIT_JSONL\n");
	process.exit(2);
}
const sends = fs.readFileSync(genFile, "utf8").split("\n").filter(Boolean)
	.map((l) => l.split(" ")).filter((f) => f.length >= 4 && /^\d+$/.test(f[2]) && f[4] !== "ldap-error")
	.map((f) => ({user: f[1], sent: Number(f[2]), done: Number(f[3])}));
const byUser = new Map();
for (const line of fs.readFileSync(auditFile, "utf8").split("\n")) {
	if (!line) continue;
	let e;
	try { e = JSON.parse(line); } catch { continue; }
	if (e.resourceType !== "User" || (e.method !== "PUT" && e.method !== "PATCH")) continue;
	if (!(e.status >= 200 && e.status < 300) || !e.userName) continue;
	const t = Date.parse(e.time);
	if (!byUser.has(e.userName)) byUser.set(e.userName, []);
	byUser.get(e.userName).push(t);
}
const lat = [];
for (const s of sends) {
	const ts = byUser.get(s.user);
	if (!ts) continue;
	const t = ts.find((x) => x >= s.sent); // audit lines are in time order
	if (t !== undefined) lat.push(t - s.sent);
}
// nearest-rank percentile of a sorted array, null when empty
const rank = (v, p) => (v.length ? v[Math.max(0, Math.ceil(p * v.length) - 1)] : null);
lat.sort((a, b) => a - b);
// the directory's own response time per modify (send -> LDAP response)
const mod = sends.map((s) => s.done - s.sent).sort((a, b) => a - b);
process.stdout.write(JSON.stringify({n: sends.length, matched: lat.length,
	p50: rank(lat, 0.5), p99: rank(lat, 0.99), max: lat.length ? lat[lat.length - 1] : null,
	modify_p50: rank(mod, 0.5), modify_p99: rank(mod, 0.99),
	// the rate the stream really had: a synchronous sender falls behind
	// when one modify (+ PUT) takes longer than 1/RATE
	rate: sends.length > 1 ? Math.round((sends.length - 1) * 1000 / Math.max(1, sends[sends.length - 1].sent - sends[0].sent)) : null}) + "\n");
