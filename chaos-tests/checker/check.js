#!/usr/bin/env node
// chaos-tests/checker/check.js -- the chaos suite's verdict (chaos-tests/check.sh
// runs it; the options and every check are described there).
"use strict";
const {spawnSync} = require("child_process");
const fs = require("fs");
const http = require("http");
const https = require("https");
const path = require("path");

const ROOT = path.resolve(__dirname, "../..");
const {compare, parseLdif} = require(path.join(ROOT, "tests/fixtures/compare.js"));
const {compareGraph} = require(path.join(ROOT, "tests/fixtures/graph_compare.js"));
const audit = require(path.join(ROOT, "tests/fixtures/audit.js"));

// --help: the usage comment at the top of chaos-tests/check.sh, exit 0
function help() {
	const lines = fs.readFileSync(require("path").join(__dirname, "..", "check.sh"), "utf8").split("\n");
	const out = [];
	for (const l of lines.slice(1)) { if (!l.startsWith("#")) break; out.push(l.replace(/^# ?/, "")); }
	process.stdout.write(out.join("\n") + "\n");
	process.exit(0);
}

function usage(msg) {
	if (msg) process.stderr.write(`check: ${msg}\n`);
	process.stderr.write(
		"usage: check.sh --ldap-url URL --bind-dn DN --password-file F --scim URL|STORE_FILE\n" +
		"                (or --target entra --graph URL|DUMP_FILE [--anchor-property P])\n" +
		"                --audit-url URL|FILE --cursor-log FILE --status URL|FILE [--status ...] [URL...]\n" +
		"                [--config AGENT_YAML] [--settle SEC] [--log WORKLOAD_LOG] [--inflight-ms N]\n" +
		"                [--users-base B] [--users-filter F] [--groups-base G] [--groups-filter F]\n");
	process.exit(2);
}

// ---------------------------------------------------------------- options
const o = {status: [], settle: 120, quietMs: 1000, target: "scim"};
{
	const argv = process.argv.slice(2);
	let inStatus = false;
	for (let i = 0; i < argv.length; i++) {
		const a = argv[i];
		const val = () => (i + 1 < argv.length ? argv[++i] : usage(`${a} needs a value`));
		if (!a.startsWith("--") && inStatus) { o.status.push(a); continue; }
		inStatus = false;
		switch (a) {
		case "--ldap-url": o.ldapUrl = val(); break;
		case "--bind-dn": o.bindDn = val(); break;
		case "--password-file": o.pwFile = val(); break;
		case "--scim": o.scim = val(); break;
		case "--target": o.target = val(); break;
		case "--graph": o.graph = val(); break;
		case "--anchor-property": o.anchorProperty = val(); break;
		case "--audit-url": o.audit = val(); break;
		case "--cursor-log": o.cursorLog = val(); break;
		case "--status": o.status.push(val()); inStatus = true; break;
		case "--config": case "--mapping": o.config = val(); break; // --mapping: what chaos-tests/lib/scenario.sh first called it
		case "--settle": o.settle = Number(val()); break;
		case "--quiet-ms": o.quietMs = Number(val()); break;
		case "--log": o.log = val(); break;
		case "--inflight-ms": o.inflightMs = Number(val()); break;
		case "--users-base": o.usersBase = val(); break;
		case "--users-filter": o.usersFilter = val(); break;
		case "--groups-base": o.groupsBase = val(); break;
		case "--groups-filter": o.groupsFilter = val(); break;
		case "-h": case "--help": help();
		default: usage(`unknown argument ${a}`);
		}
	}
}
if (o.target !== "scim" && o.target !== "entra") usage(`--target ${o.target}: scim or entra`);
if (o.target === "entra") o.scim = o.scim ?? o.graph ?? usage("--target entra needs --graph");
for (const k of ["ldapUrl", "bindDn", "pwFile", "scim", "audit"]) if (!o[k]) usage(`--${k.replace(/[A-Z]/g, (c) => "-" + c.toLowerCase()).replace("audit", "audit-url").replace("pw-file", "password-file")} is required`);
if (!o.status.length) usage("at least one --status");
if (!(o.settle >= 0)) usage("--settle: seconds");

// ---------------------------------------------------------------- agent config
// The agent's YAML, as far as the checker needs it. The SCIM fixture's
// lockfile has no YAML library, and these configs are plain (block mappings,
// one-line flow mappings and sequences, quoted scalars), so a small reader
// does; anything it cannot read it says so instead of guessing.
function parseFlow(s) {
	let i = 0;
	const ws = () => { while (i < s.length && /\s/.test(s[i])) i++; };
	function scalar(stop) {
		ws();
		if (s[i] === '"') {
			let j = i + 1, out = "";
			for (; j < s.length && s[j] !== '"'; j++) {
				if (s[j] === "\\") { j++; out += ({n: "\n", t: "\t", '"': '"', "\\": "\\"})[s[j]] ?? s[j]; } else out += s[j];
			}
			i = j + 1;
			return out;
		}
		if (s[i] === "'") {
			let j = i + 1, out = "";
			for (; j < s.length; j++) {
				if (s[j] === "'" && s[j + 1] === "'") { out += "'"; j++; } else if (s[j] === "'") break; else out += s[j];
			}
			i = j + 1;
			return out;
		}
		let j = i;
		while (j < s.length && !stop.includes(s[j])) j++;
		const v = s.slice(i, j).trim();
		i = j;
		return v;
	}
	function value(stop) {
		ws();
		if (s[i] === "{") {
			i++;
			const m = {};
			for (;;) {
				ws();
				if (s[i] === "}") { i++; return m; }
				const k = scalar(":");
				if (s[i] !== ":") throw new Error(`flow mapping: no ':' after ${k}`);
				i++;
				m[k] = value(",}");
				ws();
				if (s[i] === ",") i++;
			}
		}
		if (s[i] === "[") {
			i++;
			const a = [];
			for (;;) {
				ws();
				if (s[i] === "]") { i++; return a; }
				a.push(value(",]"));
				ws();
				if (s[i] === ",") i++;
			}
		}
		return scalar(stop);
	}
	const v = value("");
	return v;
}

function readAgentYaml(file) {
	const root = {};
	const stack = [{indent: -1, obj: root}];
	for (const raw of fs.readFileSync(file, "utf8").split("\n")) {
		const line = raw.replace(/\s+#.*$/, "").replace(/^#.*$/, "");
		if (!line.trim() || line.trim().startsWith("- ")) continue; // block sequences: not needed here
		const indent = line.search(/\S/);
		const m = /^\s*('[^']*'|"[^"]*"|[^:]+):(?:\s+(.*))?$/.exec(line);
		if (!m) continue;
		while (stack.length > 1 && stack[stack.length - 1].indent >= indent) stack.pop();
		const parent = stack[stack.length - 1].obj;
		const key = m[1].replace(/^['"]|['"]$/g, "").trim();
		const rest = (m[2] ?? "").trim();
		if (rest === "") {
			parent[key] = {};
			stack.push({indent, obj: parent[key]});
		} else {
			try { parent[key] = /^[{["']/.test(rest) ? parseFlow(rest) : rest; }
			catch (e) { throw new Error(`${file}: ${key}: ${e.message}`); }
		}
	}
	return root;
}

const cfg = o.config ? readAgentYaml(o.config) : {};
const src = cfg.source ?? {};
if (src.kind && src.kind !== "openldap") usage(`${o.config}: source.kind ${src.kind}: only openldap is compared`);
const scope = {
	usersBase: o.usersBase ?? src.users?.base ?? "ou=people,dc=example,dc=com",
	usersFilter: o.usersFilter ?? src.users?.filter ?? "(objectClass=inetOrgPerson)",
	groupsBase: o.groupsBase ?? src.groups?.base ?? "ou=groups,dc=example,dc=com",
	groupsFilter: o.groupsFilter ?? src.groups?.filter ?? "(objectClass=groupOfNames)",
	usersExclude: [].concat(src.users?.exclude ?? []),
	groupsExclude: [].concat(src.groups?.exclude ?? []),
};
if (src.users?.member_of) usage(`${o.config}: source.users.member_of: group-based scope is not compared by this checker`);
// compare.js checks tests/fixtures/sync.sh's mapping; say so when the
// agents map something else (what it does not know it cannot check).
const MAPPING = o.target === "entra" ? {user: {userPrincipalName: "[mail]", displayName: 'Join(" ", [givenName], [sn])',
	mailNickname: "[uid]", givenName: "[givenName]", surname: "[sn]", department: "[title]",
	accountEnabled: 'IIF([employeeType]="disabled", "False", "True")'}, group: {displayName: "[cn]", mailNickname: "[cn]"}} :
	{user: {userName: "[uid]", displayName: 'Join(" ", [givenName], [sn])', "name.givenName": "[givenName]",
	"name.familyName": "[sn]", 'emails[type eq "work"].value': "[mail]"}, group: {displayName: "[cn]"}};
if (cfg.mapping)
	for (const kind of ["user", "group"])
		for (const k of new Set([...Object.keys(MAPPING[kind]), ...Object.keys(cfg.mapping[kind] ?? {})]))
			if ((cfg.mapping[kind] ?? {})[k] !== MAPPING[kind][k])
				process.stderr.write(`check: warning: ${o.config}: mapping.${kind}.${k} is ` +
					`${JSON.stringify((cfg.mapping[kind] ?? {})[k] ?? null)}; the checker compares ` +
					`${JSON.stringify(MAPPING[kind][k] ?? null)} (tests/fixtures/${o.target === "entra" ? "graph_compare.js" : "compare.js"})\n`);
const deprovision = cfg.safety?.deprovision ?? "delete";
const T = Number(cfg.cluster?.election_timeout_ms ?? 1000);
const inflightMs = o.inflightMs ?? Number(cfg.target?.timeout_ms ?? 30000) + T;
// --target entra: the anchor property canopy writes, extension_{client id
// without dashes}_canopyAnchor (sync/target/entra.h), unless given.
let anchorProperty = o.anchorProperty ?? cfg.target?.anchor_property;
if (o.target === "entra" && !anchorProperty) {
	const id = String(cfg.target?.auth?.client_id ?? "").replace(/-/g, "").toLowerCase();
	if (!/^[0-9a-f]{32}$/.test(id)) usage("--target entra: give --anchor-property or a --config with target.auth.client_id");
	anchorProperty = `extension_${id}_canopyAnchor`;
}

// ---------------------------------------------------------------- I/O
const isUrl = (s) => /^https?:\/\//.test(s);
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));
function get(url, timeoutMs = 3000) {
	return new Promise((resolve, reject) => {
		const req = (url.startsWith("https:") ? https : http).get(url, {timeout: timeoutMs, rejectUnauthorized: false}, (res) => {
			let body = "";
			res.setEncoding("utf8");
			res.on("data", (d) => (body += d));
			res.on("end", () => (res.statusCode === 200 ? resolve(body) : reject(new Error(`${url}: HTTP ${res.statusCode}`))));
		});
		req.on("timeout", () => req.destroy(new Error(`${url}: timeout`)));
		req.on("error", (e) => reject(new Error(`${url}: ${e.code || e.message}`)));
	});
}
const statusUrl = (u) => {
	if (fs.existsSync(u)) return u; // a file holding one status answer
	if (!isUrl(u)) u = `http://${u}`;
	return /\/v1\/status$/.test(u) ? u : u.replace(/\/$/, "") + "/v1/status";
};
const statusSources = o.status.map(statusUrl);
async function statuses() {
	return Promise.all(statusSources.map(async (s) => {
		try {
			return {src: s, j: JSON.parse(isUrl(s) ? await get(s, 2000) : fs.readFileSync(s, "utf8"))};
		} catch (e) {
			return {src: s, error: e.message};
		}
	}));
}
async function readText(s, suffix) {
	if (isUrl(s)) {
		// a fixture's base URL (SCIM .../scim/v2, Graph .../v1.0): its control API
		const base = /\/(scim\/v2|v1\.0)\/?$/;
		const u = suffix && base.test(s) ? s.replace(base, suffix) : s;
		return get(u, 20000);
	}
	return fs.readFileSync(s, "utf8");
}

function ldapSearch(base, filter) {
	const r = spawnSync("ldapsearch", ["-x", "-LLL", "-o", "ldif-wrap=no", "-o", "nettimeout=5", "-H", o.ldapUrl,
		"-D", o.bindDn, "-y", o.pwFile, "-b", base, filter, "*", "entryUUID"],
		{encoding: "utf8", timeout: 30000, maxBuffer: 1 << 28});
	if (r.status === 32) return []; // the base itself is gone: nothing in scope
	if (r.status !== 0) throw new Error(`ldapsearch -b ${base} ${filter}: rc ${r.status}: ${(r.stderr || r.error?.message || "").trim()}`);
	return parseLdif(r.stdout);
}
const normDn = (dn) => dn.toLowerCase().replace(/\s*([,=])\s*/g, "$1");
const under = (dn, base) => { const d = normDn(dn), b = normDn(base); return d === b || d.endsWith("," + b); };
function sourceInScope() {
	const users = ldapSearch(scope.usersBase, scope.usersFilter).filter((e) => !scope.usersExclude.some((x) => under(e.dn[0], x)));
	const groups = ldapSearch(scope.groupsBase, scope.groupsFilter).filter((e) => !scope.groupsExclude.some((x) => under(e.dn[0], x)));
	return users.concat(groups);
}

// ---------------------------------------------------------------- settle
// Settled: every agent answers; one ready leader, its sync idle, no retry
// record, no staged delete and no in-doubt repair due (sync.repair_pending); every agent has applied at least what the
// leader had committed one poll earlier (an idle leader renews its lease by
// heartbeats now, but one that lost a renewal appends a barrier, so
// commit_index may still move while idle);
// and the leader's cursor, batch count and state digest have not changed for
// --quiet-ms (the source has nothing more to deliver).
function settledView(list) {
	const why = [];
	const bad = list.filter((s) => s.error);
	if (bad.length) why.push(...bad.map((s) => `no answer from ${s.src}: ${s.error}`));
	const ok = list.filter((s) => !s.error);
	const leaders = ok.filter((s) => s.j.role === "leader" && s.j.leader_ready);
	if (leaders.length !== 1) why.push(`${leaders.length} ready leaders`);
	const L = leaders[0]?.j;
	if (L) {
		if (L.sync?.state !== "idle") why.push(`leader ${L.node_id} sync ${L.sync?.state}${L.sync?.quarantine ? ` (${L.sync.quarantine.reason})` : ""}`);
		if (L.sync?.retrying) why.push(`${L.sync.retrying} changes in the retry set`);
		if (L.sync?.pending_deletes) why.push(`${L.sync.pending_deletes} staged deletes`);
		// objects an earlier leader may have written late: the in-doubt
		// repair (which may delete a create that landed late) is still due
		if (L.sync?.repair_pending) why.push(`${L.sync.repair_pending} in-doubt objects (repair due)`);
	}
	return {why, L, ok};
}

async function settle(deadline) {
	let prevCommit = null, quietSince = null, quietKey = null;
	for (;;) {
		const list = await statuses();
		const v = settledView(list);
		if (v.L) {
			const lagging = v.ok.filter((s) => prevCommit !== null && s.j.applied_index < prevCommit);
			if (prevCommit === null) v.why.push("first look");
			for (const s of lagging) v.why.push(`node ${s.j.node_id} applied ${s.j.applied_index} < ${prevCommit}`);
			const key = JSON.stringify([v.L.node_id, v.L.term, v.L.sync?.cursor, v.L.sync?.batches_total, v.L.state?.digest]);
			if (key !== quietKey) { quietKey = key; quietSince = Date.now(); }
			if (Date.now() - quietSince < o.quietMs) v.why.push("leader still changing");
			prevCommit = v.L.commit_index;
		} else {
			prevCommit = null;
		}
		if (!v.why.length) return {settled: true, view: v, list};
		if (Date.now() >= deadline) return {settled: false, view: v, list};
		await sleep(200);
	}
}

// ---------------------------------------------------------------- cursor
// The cursor of canopy's OpenLDAP source: "v1\nusers=<base64 cookie>\ngroups=
// <base64 cookie>\n" (sync/source/openldap_cursor.c); an RFC 4533 cookie from
// slapd's syncprov is "rid=NNN,csn=CSN[;CSN...]" and a CSN
// "YYYYmmddHHMMSS.uuuuuuZ#count#sid#mod" orders as text. Keys: session +
// sid. Anything else is opaque (compared for equality only).
function cursorParts(c) {
	if (c === null || c === undefined) return {};
	const m = /^v1\n((?:[a-z]+=[A-Za-z0-9+/=]*\n)*)$/.exec(c);
	if (!m) return null;
	const parts = {};
	for (const l of m[1].split("\n").filter(Boolean)) {
		const [session, b64] = [l.slice(0, l.indexOf("=")), l.slice(l.indexOf("=") + 1)];
		const cookie = Buffer.from(b64, "base64").toString("latin1");
		const csn = /(?:^|,)csn=([^,]*)/.exec(cookie);
		if (!csn) continue;
		for (const one of csn[1].split(";").filter(Boolean)) {
			const sid = one.split("#")[2] ?? "?";
			parts[`${session} sid ${sid}`] = one;
		}
	}
	return parts;
}

// Applied state is a function of the log index (committed entries never
// change; snapshots hold the state at their index), so the committed cursor,
// seen by any node at applied index i, is the cursor after entry i. Ordering
// every observation by applied index (the log's order, which is also term
// order) gives the cursor's history; it must never go back: no CSN of a
// session and server lower than one seen at a lower index (a cookie may go
// away: a full re-read of that session is pending); and two nodes at one
// index must agree.
function checkCursor(obs) {
	const problems = [];
	const byIndex = new Map();
	for (const x of obs) {
		if (x.applied_index === undefined || x.applied_index === null) continue;
		const c = x.cursor ?? null;
		if (!byIndex.has(x.applied_index)) byIndex.set(x.applied_index, new Map());
		const m = byIndex.get(x.applied_index);
		if (!m.has(c)) m.set(c, x);
	}
	const idx = [...byIndex.keys()].sort((a, b) => a - b);
	const max = new Map(); // key -> {csn, index}
	const seenOpaque = new Map(); // value -> index first seen
	let prevOpaque;
	for (const i of idx) {
		const m = byIndex.get(i);
		if (m.size > 1) {
			problems.push(`index ${i}: nodes disagree on the cursor: ` + [...m.values()].map((x) => `node ${x.node} ${JSON.stringify(x.cursor)}`).join(" vs "));
			continue;
		}
		const [c, x] = [...m][0];
		const parts = cursorParts(c);
		if (parts === null) {
			if (seenOpaque.has(c) && c !== prevOpaque)
				problems.push(`index ${i} (node ${x.node} term ${x.term}): cursor back to the value of index ${seenOpaque.get(c)}`);
			if (!seenOpaque.has(c)) seenOpaque.set(c, i);
			prevOpaque = c;
			continue;
		}
		// A session's cookie that is gone is not a step back: the engine drops
		// it when that session must be read again in full (an in-doubt repair,
		// a resync), so that a leader that fails mid-refresh leaves the full
		// read to the next one. Reading more than needed loses nothing; what
		// must never happen is a CSN lower than one committed before (checked
		// below, also when the cookie comes back).
		const back = [];
		for (const [k, csn] of Object.entries(parts)) {
			const was = max.get(k);
			if (was && csn < was.csn) back.push(`${k} csn ${csn} < ${was.csn} at index ${was.index}`);
			else if (!was || csn > was.csn) max.set(k, {csn, index: i});
		}
		if (back.length) problems.push(`index ${i} (node ${x.node} term ${x.term}): ${back.join("; ")}`);
	}
	return {problems, indexes: idx.length};
}

// ---------------------------------------------------------------- Graph audit
// The Graph fixture audits every request (tests/fixtures/graph/README.md,
// "Audit log"): writes only, in the SCIM audit's terms for audit.js. The
// object is the anchor; a create is POST /users or /groups answered 201; a
// member reference's DELETE removes a membership, not the group, so it gets
// a key of its own (the group does not stop existing for the dup count).
// A request inside a $batch has a line of its own, with the envelope's
// fencing headers; the envelope's line is not a write.
function graphWrites(rows) {
	const out = [];
	rows.forEach((r, i) => {
		if (!["POST", "PATCH", "PUT", "DELETE"].includes(r.method)) return;
		const p = String(r.path).split("?")[0];
		if (!/^\/v1\.0\/(users|groups)(\/|$)/.test(p)) return; // $batch envelope, token requests
		const whole = /^\/v1\.0\/(users|groups)(\/[^/]+)?$/.test(p);
		out.push({seq: i + 1, time: r.time, method: r.method, path: r.path, status: r.status, term: r.term ?? null,
			node: r.node ?? null, externalId: r.anchor ? (whole ? r.anchor : `${r.anchor} ${p.split("/").slice(4).join("/")}`) : undefined});
	});
	return out;
}

// ---------------------------------------------------------------- main
(async () => {
	const details = [];
	const detail = (s) => details.push(s);
	let inputErrors = 0; // an input that could not be read: FAIL, whatever the counts
	const deadline = Date.now() + o.settle * 1000;
	let st = await settle(deadline);
	if (!st.settled) detail(`did not settle within ${o.settle} s: ${st.view.why.join("; ")}`);

	// (1) target == source as mapped. A difference right after settling is
	// looked at again for up to 5 s more (a last change may still be on its
	// way from slapd); what remains is lost.
	let cmp, entries, store;
	const compareNow = async () => {
		entries = sourceInScope();
		if (o.target === "entra") {
			store = JSON.parse(await readText(o.scim, "/_test/dump"));
			cmp = compareGraph(entries, store, anchorProperty);
		} else {
			store = JSON.parse(await readText(o.scim, "/_test/store"));
			cmp = compare(entries, store, {deprovision});
		}
	};
	try {
		await compareNow();
		const again = Date.now() + 5000;
		while (cmp.problems.length && Date.now() < again) {
			await sleep(500);
			st = await settle(Math.min(again, Date.now() + 2000));
			await compareNow();
		}
	} catch (e) {
		detail(`cannot compare: ${e.message}`);
		inputErrors++;
		cmp = {problems: [], users: 0, groups: 0};
		entries = [];
	}
	const lostObjects = new Set(), dupObjects = new Set();
	for (const p of cmp.problems) {
		(p.kind === "duplicate" ? dupObjects : lostObjects).add(p.anchor ?? p.text);
	}
	// Name the workload's last op on each object that differs.
	let wl = [];
	if (o.log) wl = fs.readFileSync(o.log, "utf8").split("\n").filter(Boolean).map((l) => JSON.parse(l));
	const lastOp = (dn) => {
		if (!dn) return "";
		const n = normDn(dn);
		const r = [...wl].reverse().find((x) => normDn(x.dn) === n || (x.details?.new_dn && normDn(x.details.new_dn) === n));
		return r ? ` [last op: #${r.seq} ${r.op}${r.ok ? "" : " (failed)"} at ${r.time}]` : "";
	};
	for (const p of cmp.problems.slice(0, 30)) detail(`${p.kind === "duplicate" ? "dup" : "lost"}: ${p.text}${lastOp(p.dn)}`);
	if (cmp.problems.length > 30) detail(`... ${cmp.problems.length - 30} more differences`);

	// (2) the audit
	let an = {dup: [], stale: [], inflight: [], shared: []};
	try {
		let rows = audit.load(await readText(o.audit, "/_test/audit"));
		if (o.target === "entra") rows = graphWrites(rows);
		an = audit.analyze(rows, {inflightMs});
	} catch (e) {
		detail(`cannot read the audit ${o.audit}: ${e.message}`);
		inputErrors++;
	}
	for (const r of an.dup) detail(`dup: created again while it existed: ${audit.describe(r)}`);
	for (const l of an.stale)
		detail(`stale: ${audit.describe(l.r)}: ${l.afterMs} ms after term ${l.newerTerm}'s first write (seq ${l.newer.seq})` +
				(l.redone ? ` (redone by seq ${l.redone.seq}, but later than the ${inflightMs} ms a request can be in flight)` : ", and never written again by a newer term"));
	for (const s of an.shared) detail(`stale: term ${s.term} written by more than one node: ${s.nodes.join("+")}`);
	// For the record (stderr: the verdict stays one line on a PASS).
	const note = (s) => process.stderr.write(`check: note: ${s}\n`);
	if (an.inflight.length) {
		note(`${an.inflight.length} write(s) of an older term in flight at a term change, redone by the newer term (excused):`);
		for (const l of an.inflight.slice(0, 5))
			note(`  ${audit.describe(l.r)}: ${l.afterMs} ms after term ${l.newerTerm}'s first write; redone by seq ${l.redone.seq}`);
	}
	if (an.recreated?.length) note(`${an.recreated.length} object(s) created again after a DELETE (moved out of scope and back, or deleted and re-created)`);
	const dup = dupObjects.size + an.dup.length;
	const stale = an.stale.length + an.shared.length;

	// (3) the committed cursor
	const obs = [];
	if (o.cursorLog) {
		try {
			for (const l of fs.readFileSync(o.cursorLog, "utf8").split("\n")) {
				if (!l.trim()) continue;
				let x;
				try { x = JSON.parse(l); } catch { continue; } // a line cut by the kill
				if (!x.error) obs.push(x);
			}
		} catch (e) {
			detail(`cannot read the cursor log: ${e.message}`);
			inputErrors++;
		}
	}
	for (const s of st.list) if (!s.error) obs.push({node: s.j.node_id, term: s.j.term, applied_index: s.j.applied_index, cursor: s.j.sync?.cursor ?? null});
	const cur = checkCursor(obs);
	for (const p of cur.problems.slice(0, 20)) detail(`cursor_back: ${p}`);

	// (4) digests, from one settled look (again a few times: a follower may
	// be one entry behind)
	let digests;
	for (let tries = 0; ; tries++) {
		const list = tries === 0 ? st.list : await statuses();
		digests = list.map((s) => (s.error ? {src: s.src, d: null, why: s.error} : {src: s.src, node: s.j.node_id, d: s.j.state?.digest ?? null, applied: s.j.applied_index}));
		if (new Set(digests.map((x) => x.d)).size === 1 && digests[0].d !== null) break;
		if (tries >= 10) break;
		await sleep(300);
	}
	const digestEqual = new Set(digests.map((x) => x.d)).size === 1 && digests[0].d !== null;
	if (!digestEqual)
		detail(`digest: ${digests.map((x) => `node ${x.node ?? "?"} (${x.src}) ${x.d ?? "no answer: " + x.why}${x.applied !== undefined ? ` at applied ${x.applied}` : ""}`).join(", ")}`);

	const lost = lostObjects.size;
	const ops = wl.filter((x) => x.ok).length;
	const pass = st.settled && inputErrors === 0 && lost === 0 && dup === 0 && stale === 0 && cur.problems.length === 0 && digestEqual;
	for (const d of details) console.log(`  ${d}`);
	console.log(`chaos: ${pass ? "PASS" : "FAIL"} lost=${lost} dup=${dup} stale=${stale} cursor_back=${cur.problems.length} ` +
		`digest=${digestEqual ? "equal" : "differ"} objects=${entries.length} ops=${ops}`);
	process.exit(pass ? 0 : 1);
})().catch((e) => {
	console.log(`  check: ${e.stack || e.message}`);
	console.log("chaos: FAIL lost=0 dup=0 stale=0 cursor_back=0 digest=differ objects=0 ops=0");
	process.exit(1);
});
