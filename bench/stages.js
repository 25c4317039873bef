#!/usr/bin/env node
// bench/stages.js -- where a change's time went on the leader, from two
// scrapes of its /metrics (canopy_export_stage_seconds, sync/engine/stages.h):
// the changes exported between them (bench/run.sh, rows "2. latency by stage").
//
//   node stages.js BEFORE.prom AFTER.prom
//
// Prints {"queue":{"n":N,"p50":..,"p99":..,"mean":..}, "plan":..., ...} in ms.
// p50 / p99 are the upper bounds of the histogram buckets they fall in (a
// histogram keeps no more); mean is exact (sum / count).
"use strict";
const fs = require("fs");

const [beforeFile, afterFile] = process.argv.slice(2);
if (!afterFile) {
	process.stderr.write("usage: node stages.js BEFORE.prom AFTER.prom\n");
	process.exit(2);
}
function read(file) {
	const out = {}; // stage -> {buckets: [[le, cum]], sum, count}
	for (const line of fs.readFileSync(file, "utf8").split("\n")) {
		const m = /^canopy_export_stage_seconds_(bucket|sum|count)\{stage="([a-z]+)"(?:,le="([^"]+)")?\} (\S+)$/.exec(line);
		if (!m) continue;
		const s = (out[m[2]] ??= {buckets: [], sum: 0, count: 0});
		if (m[1] === "bucket") s.buckets.push([m[3] === "+Inf" ? Infinity : Number(m[3]), Number(m[4])]);
		else s[m[1]] = Number(m[4]);
	}
	return out;
}
const a = read(beforeFile), b = read(afterFile);
const res = {};
for (const [stage, B] of Object.entries(b)) {
	const A = a[stage] ?? {buckets: B.buckets.map(([le]) => [le, 0]), sum: 0, count: 0};
	const n = B.count - A.count;
	if (n <= 0) { res[stage] = {n: 0}; continue; }
	const cum = B.buckets.map(([le, c], i) => [le, c - (A.buckets[i]?.[1] ?? 0)]);
	const q = (p) => {
		const want = Math.ceil(p * n);
		const hit = cum.find(([, c]) => c >= want);
		return hit[0] === Infinity ? "inf" : +(hit[0] * 1000).toFixed(1);
	};
	res[stage] = {n, p50: q(0.5), p99: q(0.99), mean: +((B.sum - A.sum) * 1000 / n).toFixed(2)};
}
process.stdout.write(JSON.stringify(res) + "\n");
