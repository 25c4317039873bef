#!/usr/bin/env node
// bench/stages.js -- where a change's time went, from scrapes of the agents'
// /metrics (canopy_export_stage_seconds, sync/engine/stages.h) before and
// after a stream: the changes exported in between (bench/run.sh, rows
// "2. latency by stage"). Give every agent's pair: whichever led (even if
// leadership moved during the stream) counted the changes it exported.
//
//   node stages.js BEFORE1.prom AFTER1.prom [BEFORE2.prom AFTER2.prom ...]
//
// Prints {"queue":{"n":N,"p50":..,"p99":..,"mean":..}, "plan":..., ...} in ms.
// p50 / p99 are the upper bounds of the histogram buckets they fall in (a
// histogram keeps no more); mean is exact (sum / count). A missing or empty
// file counts as zeros.
"use strict";
const fs = require("fs");

const files = process.argv.slice(2);
if (files.length < 2 || files.length % 2) {
	process.stderr.write("usage: node stages.js BEFORE.prom AFTER.prom [BEFORE.prom AFTER.prom ...]\n");
	process.exit(2);
}
function read(file) {
	const out = {}; // stage -> {buckets: [[le, cum]], sum, count}
	let text = "";
	try { text = fs.readFileSync(file, "utf8"); } catch { /* an agent that did not answer */ }
	for (const line of text.split("\n")) {
		const m = /^canopy_export_stage_seconds_(bucket|sum|count)\{stage="([a-z]+)"(?:,le="([^"]+)")?\} (\S+)$/.exec(line);
		if (!m) continue;
		const s = (out[m[2]] ??= {buckets: [], sum: 0, count: 0});
		if (m[1] === "bucket") s.buckets.push([m[3] === "+Inf" ? Infinity : Number(m[3]), Number(m[4])]);
		else s[m[1]] = Number(m[4]);
	}
	return out;
}
// per stage: the summed differences of every pair
const diff = {};
for (let i = 0; i < files.length; i += 2) {
	const a = read(files[i]), b = read(files[i + 1]);
	for (const [stage, B] of Object.entries(b)) {
		const A = a[stage] ?? {buckets: B.buckets.map(([le]) => [le, 0]), sum: 0, count: 0};
		const d = (diff[stage] ??= {buckets: B.buckets.map(([le]) => [le, 0]), sum: 0, count: 0});
		B.buckets.forEach(([, c], j) => { d.buckets[j][1] += c - (A.buckets[j]?.[1] ?? 0); });
		d.sum += B.sum - A.sum;
		d.count += B.count - A.count;
	}
}
const res = {};
for (const [stage, d] of Object.entries(diff)) {
	const n = d.count;
	if (n <= 0) { res[stage] = {n: 0}; continue; }
	const q = (p) => {
		const hit = d.buckets.find(([, c]) => c >= Math.ceil(p * n));
		return hit[0] === Infinity ? "inf" : +(hit[0] * 1000).toFixed(1);
	};
	res[stage] = {n, p50: q(0.5), p99: q(0.99), mean: +(d.sum * 1000 / n).toFixed(2)};
}
process.stdout.write(JSON.stringify(res) + "\n");
