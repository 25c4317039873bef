#!/usr/bin/env node
// chaos-tests/checker/workload.js -- the chaos suite's seeded directory
// workload (chaos-tests/workload.sh runs it; see there for the options).
//
// The op stream depends on the seed only: it is drawn from a model of what
// the workload itself made, assuming every op succeeds. An op the server
// refuses (slapd down during a fault) is logged as failed and the stream goes
// on unchanged, so later ops on that object may fail too; the checker never
// relies on this log for what to expect, it reads the directory as it is.
//
// Objects: users uid=<P>u<N> (inetOrgPerson) and groups cn=<P>g<N>
// (groupOfNames), P = "c" + the seed, N from one counter; a rename takes a
// fresh N, so no DN is used twice and a member value never names two
// objects. Containers: the users base B, ou=staff,B (in scope, a move inside
// scope) and the out-of-scope base (--out-base, default ou=chaos-out under
// B's parent), created by the first ops if missing.
//
// slapd here runs without the refint overlay, so a rename, move or delete
// leaves member values naming the old DN; the workload does what refint
// would (the ops' "fixups"): it rewrites or removes the member values in the
// same ldapmodify run. A group never loses its last member (groupOfNames
// needs one): that one is replaced by the bind DN, which names nothing in
// scope.
"use strict";
const {spawn} = require("child_process");
const fs = require("fs");

// --help: the usage comment at the top of chaos-tests/workload.sh, exit 0
function help() {
	const lines = fs.readFileSync(require("path").join(__dirname, "..", "workload.sh"), "utf8").split("\n");
	const out = [];
	for (const l of lines.slice(1)) { if (!l.startsWith("#")) break; out.push(l.replace(/^# ?/, "")); }
	process.stdout.write(out.join("\n") + "\n");
	process.exit(0);
}

function usage(msg) {
	if (msg) process.stderr.write(`workload: ${msg}\n`);
	process.stderr.write(
		"usage: workload.sh --seed S --ldap-url URL --bind-dn DN --password-file F --users-base B\n" +
		"                   --groups-base G (--ops N | --duration SEC) [--rate PER_SEC] --log FILE\n" +
		"                   [--out-base DN] [--dry-run]\n");
	process.exit(2);
}

const o = {rate: 20, ops: null, duration: null, dryRun: false, outBase: null};
const argv = process.argv.slice(2);
for (let i = 0; i < argv.length; i++) {
	const a = argv[i];
	const val = () => (i + 1 < argv.length ? argv[++i] : usage(`${a} needs a value`));
	switch (a) {
	case "--seed": o.seed = val(); break;
	case "--ldap-url": o.url = val(); break;
	case "--bind-dn": o.bindDn = val(); break;
	case "--password-file": o.pwFile = val(); break;
	case "--users-base": o.usersBase = val(); break;
	case "--groups-base": o.groupsBase = val(); break;
	case "--out-base": o.outBase = val(); break;
	case "--ops": o.ops = Number(val()); break;
	case "--duration": o.duration = Number(val()); break;
	case "--rate": o.rate = Number(val()); break;
	case "--log": o.log = val(); break;
	case "--dry-run": o.dryRun = true; break;
	case "-h": case "--help": help();
	default: usage(`unknown argument ${a}`);
	}
}
if (o.seed === undefined || !o.usersBase || !o.groupsBase || !o.log) usage("--seed, --users-base, --groups-base and --log are required");
if (!o.dryRun && (!o.url || !o.bindDn || !o.pwFile)) usage("--ldap-url, --bind-dn and --password-file are required");
if ((o.ops === null) === (o.duration === null)) usage("exactly one of --ops N and --duration SEC");
if (o.ops !== null && !(Number.isInteger(o.ops) && o.ops >= 0)) usage("--ops: a whole number");
if (o.duration !== null && !(o.duration > 0)) usage("--duration: seconds > 0");
if (!(o.rate > 0)) usage("--rate: ops per second > 0");
const parentOf = (dn) => dn.slice(dn.indexOf(",") + 1);
o.outBase = o.outBase ?? `ou=chaos-out,${parentOf(o.usersBase)}`;

// ---------------------------------------------------------------- PRNG
// mulberry32 over a 32-bit FNV-1a hash of the seed text: same seed, same
// stream, on every machine and Node version.
let h = 0x811c9dc5;
for (const c of Buffer.from(String(o.seed))) h = Math.imul(h ^ c, 0x01000193) >>> 0;
let state = h;
function rnd() {
	state = (state + 0x6d2b79f5) >>> 0;
	let t = state;
	t = Math.imul(t ^ (t >>> 15), t | 1);
	t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
	return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
}
const pick = (arr) => arr[Math.floor(rnd() * arr.length)];
const chance = (p) => rnd() < p;

// ---------------------------------------------------------------- model
const P = "c" + String(o.seed).replace(/[^A-Za-z0-9]/g, "");
const STAFF = `ou=staff,${o.usersBase}`;
const CONTAINERS = [o.usersBase, STAFF, o.outBase];
const GIVEN = ["Ada", "Brian", "Chloé", "Dmitri", "Eve", "Fatima", "Grace", "Håkon", "Ines", "José", "Kai", "Łucja", "Mei", "太郎"];
const SUR = ["Archer", "Brown", "Çelik", "Dubois", "Evans", "Fischer", "García", "Hughes", "Ivanov", "Jansen", "Müller", "山田"];
const TITLES = ["Engineer", "Manager", "Analyst", "Director", "Intern"];
let counter = 0;
const users = new Map(); // dn -> {uid, container, givenName, sn, mail}
const groups = new Map(); // dn -> {cn, members: [dn]}
const userDn = (uid, c) => `uid=${uid},${c}`;

function safe(v) { return /^[\x01-\x09\x0b\x0c\x0e-\x1f\x21-\x39\x3b\x3d-\x7f][\x01-\x09\x0b\x0c\x0e-\x7f]*$/.test(v) && !/ $/.test(v); }
const attr = (k, v) => (safe(v) ? `${k}: ${v}\n` : `${k}:: ${Buffer.from(v, "utf8").toString("base64")}\n`);

// Member fixups (what refint would do) when DN `from` becomes `to` (null: gone).
function fixups(from, to) {
	const ldif = [], touched = [];
	for (const [gdn, g] of groups) {
		if (!g.members.includes(from)) continue;
		touched.push(gdn);
		let rec = `dn: ${gdn}\nchangetype: modify\n`;
		if (to) {
			rec += `add: member\nmember: ${to}\n-\ndelete: member\nmember: ${from}\n-\n`;
			g.members = g.members.map((m) => (m === from ? to : m));
		} else if (g.members.length > 1) {
			rec += `delete: member\nmember: ${from}\n-\n`;
			g.members = g.members.filter((m) => m !== from);
		} else {
			rec += `replace: member\nmember: ${o.bindDn ?? "cn=admin"}\n-\n`;
			g.members = [o.bindDn ?? "cn=admin"];
		}
		ldif.push(rec);
	}
	return {ldif, touched};
}

function newUserAttrs() {
	return {givenName: pick(GIVEN), sn: pick(SUR), title: pick(TITLES)};
}

const WEIGHTS = [
	["user_add", 20], ["user_modify", 25], ["user_rename", 6], ["user_move", 10], ["user_delete", 6],
	["group_add", 5], ["group_delete", 3], ["group_rename", 2], ["member_add", 13], ["member_remove", 10],
];
const TOTAL = WEIGHTS.reduce((s, [, w]) => s + w, 0);

// Plans the next op against the model and applies it to the model.
// Returns {op, dn, details, ldif}.
let setupDone = 0;
function nextOp(forcedKind) {
	// the containers first (ou=staff and the out-of-scope base), "already
	// exists" counts as done
	if (setupDone < 2 && !forcedKind) {
		const dn = [STAFF, o.outBase][setupDone++];
		const ou = /^ou=([^,]+)/.exec(dn)[1];
		return {op: "ensure_ou", dn, details: {}, ldif: `dn: ${dn}\nchangetype: add\nobjectClass: organizationalUnit\nou: ${ou}\n`};
	}
	let kind = forcedKind;
	if (kind) { /* a fallback */ }
	else if (users.size < 5) kind = "user_add";
	else if (groups.size < 1) kind = "group_add";
	else {
		let r = rnd() * TOTAL;
		for (const [k, w] of WEIGHTS) { if ((r -= w) < 0) { kind = k; break; } }
	}
	const userList = [...users.keys()];
	const groupList = [...groups.keys()];
	switch (kind) {
	case "user_add": {
		const uid = `${P}u${++counter}`;
		const c = chance(0.8) ? o.usersBase : chance(0.6) ? STAFF : o.outBase;
		const a = newUserAttrs();
		const dn = userDn(uid, c);
		users.set(dn, {uid, container: c, ...a});
		const mail = `${uid}@example.com`;
		return {op: kind, dn, details: {...a, mail}, ldif:
			`dn: ${dn}\nchangetype: add\nobjectClass: inetOrgPerson\nuid: ${uid}\n` +
			attr("cn", `${a.givenName} ${a.sn}`) + attr("sn", a.sn) + attr("givenName", a.givenName) +
			`mail: ${mail}\ntitle: ${a.title}\n`};
	}
	case "user_modify": {
		const dn = pick(userList), u = users.get(dn);
		const mods = {};
		if (chance(0.6)) mods.givenName = pick(GIVEN) + (chance(0.3) ? ` ${counter}` : "");
		if (chance(0.4)) mods.sn = pick(SUR);
		if (chance(0.25)) mods.mail = `${u.uid}.${++counter}@example.com`;
		if (chance(0.2) || !Object.keys(mods).length) mods.title = pick(TITLES) + " " + (++counter); // unmapped: no write expected
		let ldif = `dn: ${dn}\nchangetype: modify\n`;
		for (const [k, v] of Object.entries(mods)) ldif += `replace: ${k}\n` + attr(k, v) + "-\n";
		Object.assign(u, mods);
		return {op: kind, dn, details: mods, ldif};
	}
	case "user_rename": {
		const dn = pick(userList), u = users.get(dn);
		const uid = `${P}u${++counter}`;
		const to = userDn(uid, u.container);
		users.delete(dn);
		users.set(to, {...u, uid});
		const f = fixups(dn, to);
		return {op: kind, dn, details: {new_dn: to, fixups: f.touched}, ldif:
			[`dn: ${dn}\nchangetype: modrdn\nnewrdn: uid=${uid}\ndeleteoldrdn: 1\n`, ...f.ldif].join("\n")};
	}
	case "user_move": {
		const dn = pick(userList), u = users.get(dn);
		const c = pick(CONTAINERS.filter((x) => x !== u.container));
		const to = userDn(u.uid, c);
		users.delete(dn);
		users.set(to, {...u, container: c});
		const f = fixups(dn, to);
		return {op: kind, dn, details: {new_dn: to, from: u.container, to: c, fixups: f.touched}, ldif:
			[`dn: ${dn}\nchangetype: modrdn\nnewrdn: uid=${u.uid}\ndeleteoldrdn: 1\nnewsuperior: ${c}\n`, ...f.ldif].join("\n")};
	}
	case "user_delete": {
		const dn = pick(userList);
		users.delete(dn);
		const f = fixups(dn, null);
		return {op: kind, dn, details: {fixups: f.touched}, ldif: [...f.ldif, `dn: ${dn}\nchangetype: delete\n`].join("\n")};
	}
	case "group_add": {
		const cn = `${P}g${++counter}`;
		const dn = `cn=${cn},${o.groupsBase}`;
		const n = 1 + Math.floor(rnd() * Math.min(4, userList.length));
		const members = [];
		while (members.length < n) { const m = pick(userList); if (!members.includes(m)) members.push(m); }
		groups.set(dn, {cn, members});
		return {op: kind, dn, details: {members}, ldif:
			`dn: ${dn}\nchangetype: add\nobjectClass: groupOfNames\ncn: ${cn}\n` + members.map((m) => `member: ${m}\n`).join("")};
	}
	case "group_delete": {
		if (groupList.length < 2) return nextOpOf("group_add");
		const dn = pick(groupList);
		groups.delete(dn);
		return {op: kind, dn, details: {}, ldif: `dn: ${dn}\nchangetype: delete\n`};
	}
	case "group_rename": {
		const dn = pick(groupList), g = groups.get(dn);
		const cn = `${P}g${++counter}`;
		const to = `cn=${cn},${o.groupsBase}`;
		groups.delete(dn);
		groups.set(to, {...g, cn});
		return {op: kind, dn, details: {new_dn: to}, ldif: `dn: ${dn}\nchangetype: modrdn\nnewrdn: cn=${cn}\ndeleteoldrdn: 1\n`};
	}
	case "member_add": {
		const dn = pick(groupList), g = groups.get(dn);
		const cand = userList.filter((u) => !g.members.includes(u));
		if (!cand.length) return nextOpOf("user_modify");
		const m = pick(cand);
		g.members.push(m);
		return {op: kind, dn, details: {member: m}, ldif: `dn: ${dn}\nchangetype: modify\nadd: member\nmember: ${m}\n-\n`};
	}
	case "member_remove": {
		const cand = groupList.filter((d) => groups.get(d).members.length > 1);
		if (!cand.length) return nextOpOf("member_add");
		const dn = pick(cand), g = groups.get(dn);
		const m = pick(g.members);
		g.members = g.members.filter((x) => x !== m);
		return {op: kind, dn, details: {member: m}, ldif: `dn: ${dn}\nchangetype: modify\ndelete: member\nmember: ${m}\n-\n`};
	}
	}
	throw new Error(`no op ${kind}`);
}
// A fallback (the drawn op has nothing to work on) is decided by the model,
// so the stream stays a function of the seed.
const nextOpOf = (kind) => nextOp(kind);

// ---------------------------------------------------------------- run
// Asynchronous, so that SIGTERM/SIGINT (a scenario stopping the stream) are
// handled: the op on its way finishes and is logged, then the workload ends.
const sleep = (ms) => new Promise((r) => setTimeout(r, Math.max(0, ms)));
function ldapmodify(ldif) {
	return new Promise((resolve) => {
		const c = spawn("ldapmodify", ["-x", "-H", o.url, "-D", o.bindDn, "-y", o.pwFile, "-o", "nettimeout=3"]);
		current = c;
		let out = "", timedOut = false;
		c.stdout.on("data", (d) => (out += d));
		c.stderr.on("data", (d) => (out += d));
		c.stdin.on("error", () => {}); // EPIPE: it exited before reading (no server)
		const timer = setTimeout(() => { timedOut = true; c.kill("SIGKILL"); }, 8000);
		c.on("error", (e) => { clearTimeout(timer); resolve({rc: null, out: e.message}); });
		c.on("close", (code) => {
			clearTimeout(timer);
			current = null;
			// killed: code null
			resolve({rc: code, out: timedOut ? "timeout (8 s)" : code === null ? "stopped by SIGTERM (outcome unknown)" : out});
		});
		c.stdin.end(ldif);
	});
}

let stop = false, current = null;
const halt = () => { stop = true; if (current) current.kill("SIGKILL"); };
process.on("SIGTERM", halt);
process.on("SIGINT", halt);

(async () => {
	const logFd = fs.openSync(o.log, "a"); // appended: a scenario may run several streams into one log
	const t0 = Date.now();
	let seq = 0, okN = 0, failN = 0, due = t0;
	for (;;) {
		if (stop) break;
		if (o.ops !== null && seq >= o.ops) break;
		if (o.duration !== null && !o.dryRun && Date.now() - t0 >= o.duration * 1000) break;
		if (o.duration !== null && o.dryRun && seq >= Math.round(o.duration * o.rate)) break;
		const op = nextOp();
		seq++;
		const rec = {seq, time: null, op: op.op, dn: op.dn, details: op.details, ok: null, rc: null, result: "dry-run"};
		if (!o.dryRun) {
			// Evenly paced; an op that took longer (slapd down or paused)
			// delays the next one, but no burst follows to catch up.
			await sleep(due - Date.now());
			due = Math.max(due + 1000 / o.rate, Date.now());
			rec.time = new Date().toISOString();
			const r = await ldapmodify(op.ldif);
			rec.rc = r.rc;
			rec.ok = r.rc === 0 || (op.op === "ensure_ou" && r.rc === 68);
			const lines = r.out.trim().split("\n").filter((l) => l && !/^(adding|modifying|deleting|renaming|moving) /.test(l));
			rec.result = rec.ok ? "success" : lines.join(" | ").slice(0, 300) || `rc ${r.rc}`;
			if (rec.ok) okN++; else failN++;
		}
		fs.writeSync(logFd, JSON.stringify(rec) + "\n");
	}
	fs.closeSync(logFd);
	process.stderr.write(`workload: seed ${o.seed}: ${seq} ops` + (o.dryRun ? " (dry run)\n" :
		`, ${okN} applied, ${failN} failed, ${((Date.now() - t0) / 1000).toFixed(1)} s${stop ? " (stopped)" : ""}\n`));
	process.exit(0);
})();
