/*
 * agent/www/app.js -- fills the status page from GET /v1/status and
 * GET /v1/logs of the agent that served it, every REFRESH_MS.
 *
 * Rules (agent/www.h):
 * - Text from the API -- DNs, error messages, anything the directory or the
 *   target wrote -- only ever becomes text nodes (el(), textContent), never
 *   HTML: a DN like cn=<img src=x onerror=...> is shown as those characters.
 * - The page shows what the API says and computes nothing the agent
 *   computes: ages ("12 s ago") are the API's timestamps against this
 *   browser's clock, and the export rate is the difference of
 *   sync.exported_total between two answers when the status has no rate.
 * - Keys may be missing (an older agent) or new (a newer one): known keys
 *   get a label and a place, and every other key is still listed by its
 *   JSON name.
 */
"use strict";

const REFRESH_MS = 2000;
const LOG_LIMIT = 50;

/* ---- DOM helpers: text only ------------------------------------------ */

/* An element with attributes (className, data-*, ...) and children: strings
 * and numbers become text nodes, null/undefined are left out. */
function el(tag, attrs, ...children) {
	const e = document.createElement(tag);
	for (const [k, v] of Object.entries(attrs || {})) {
		if (v === undefined || v === null)
			continue;
		if (k === "className")
			e.className = v;
		else
			e.setAttribute(k, String(v));
	}
	for (const c of children) {
		if (c === undefined || c === null)
			continue;
		e.appendChild(c instanceof Node ? c : document.createTextNode(String(c)));
	}
	return e;
}

function has(o, k) {
	return o !== null && typeof o === "object" && Object.prototype.hasOwnProperty.call(o, k);
}

/* A JSON value as text: null as "-", objects as compact JSON. */
function show(v) {
	if (v === undefined || v === null)
		return "-";
	if (typeof v === "boolean")
		return v ? "yes" : "no";
	if (typeof v === "object")
		return JSON.stringify(v);
	return String(v);
}

/* "12 s ago" from an RFC 3339 time, by this browser's clock. */
function ago(iso) {
	if (typeof iso !== "string")
		return null;
	const t = Date.parse(iso);
	if (Number.isNaN(t))
		return null;
	return duration(Date.now() - t) + " ago";
}

function duration(ms) {
	const s = Math.max(0, Math.round(ms / 1000));
	if (s < 120)
		return s + " s";
	if (s < 7200)
		return Math.round(s / 60) + " min";
	if (s < 172800)
		return Math.round(s / 3600) + " h";
	return Math.round(s / 86400) + " d";
}

/* A member's status page, when its control address looks like HOST:PORT or
 * [V6]:PORT; anything else (it is replicated text) is shown, not linked. */
function memberPage(addr) {
	if (typeof addr !== "string" || !/^([A-Za-z0-9.-]+|\[[0-9A-Fa-f:.]+\]):[0-9]{1,5}$/.test(addr))
		return null;
	return location.protocol + "//" + addr + "/";
}

/*
 * A list of facts: rows [key, label, value, note, cls]. key is the JSON path
 * (data-key, what tests and operators look for); value is shown with show().
 */
function facts(dl, rows) {
	const out = [];
	for (const [key, label, value, note, cls] of rows) {
		const dd = el("dd", {"data-key": key, className: cls}, show(value));
		if (note)
			dd.appendChild(el("span", {className: "note"}, " (" + note + ")"));
		out.push(el("dt", {title: key}, label), dd);
	}
	dl.replaceChildren(...out);
}

/* Every scalar under `o` not in `known`, flattened to "a.b" paths. */
function rest(o, prefix, known, rows) {
	if (o === null || typeof o !== "object")
		return rows;
	for (const [k, v] of Object.entries(o)) {
		const path = prefix ? prefix + "." + k : k;
		if (known.has(path))
			continue;
		if (v !== null && typeof v === "object" && !Array.isArray(v))
			rest(v, path, known, rows);
		else
			rows.push([path, path, v]);
	}
	return rows;
}

/* ---- the sections ------------------------------------------------------ */

let previous = null; /* {at, exported} of the last answer: the export rate */

function renderHeader(st) {
	document.getElementById("cluster-name").textContent = has(st, "cluster") ? st.cluster : "";
	const leader = st.leader || {};
	const h = document.getElementById("headline");
	h.replaceChildren(
		"node ", el("strong", {"data-key": "node_id"}, show(st.node_id)),
		" is ", el("strong", {"data-key": "role", className: "role-" + st.role}, show(st.role)),
		"; leader ", el("strong", {id: "leader-id", "data-key": "leader.id"}, show(leader.id)),
		", term ", el("strong", {id: "term", "data-key": "term"}, show(st.term)));
	document.title = "canopy " + show(st.cluster) + ": node " + show(st.node_id) + " (" + show(st.role) + ")";
}

const CLUSTER_KEYS = [
	["cluster", "cluster"], ["cluster_id", "cluster id"], ["leader.address", "leader raft address"],
	["leader_ready", "leader ready"], ["commit_index", "commit index"],
	["applied_index", "applied index"], ["last_index", "last index"], ["transport", "transport"],
	["bootstrap", "bootstrap"],
];

function get(o, path) {
	for (const k of path.split(".")) {
		if (!has(o, k))
			return undefined;
		o = o[k];
	}
	return o;
}

function renderCluster(st) {
	const rows = [];
	for (const [key, label] of CLUSTER_KEYS)
		if (get(st, key) !== undefined)
			rows.push([key, label, get(st, key)]);
	facts(document.getElementById("cluster"), rows);

	const known = new Set(["id", "address", "role", "reachable", "match_index", "control_address"]);
	const leaderId = st.leader ? st.leader.id : null;
	const body = document.querySelector("#members tbody");
	const trs = [];
	for (const m of Array.isArray(st.members) ? st.members : []) {
		const self = m.id === st.node_id;
		const page = memberPage(m.control_address);
		const link = page ? el("a", {href: page}, m.control_address) : show(m.control_address);
		const more = rest(m, "", known, []).map(([k, , v]) => k + "=" + show(v)).join(" ");
		const reach = has(m, "reachable") ? m.reachable : undefined;
		trs.push(el("tr", {"data-id": m.id, className: (m.id === leaderId ? "leader" : "") + (self ? " self" : "")},
			el("td", {className: "id"}, show(m.id), self ? el("span", {className: "note"}, " (this node)") : null),
			el("td", {className: "address"}, show(m.address)),
			el("td", {className: "role"}, show(m.role)),
			el("td", {className: "is-leader"}, m.id === leaderId ? "leader" : ""),
			el("td", {className: "reachable " + (reach === false ? "bad" : "")},
			   reach === undefined || reach === null ? (self ? "self" : "-") : show(reach)),
			el("td", {className: "match-index"}, show(m.match_index)),
			el("td", {className: "page"}, link),
			el("td", {className: "more"}, more)));
	}
	body.replaceChildren(...trs);
}

/* Known sync keys, in the order an operator reads them. */
const SYNC_KEYS = [
	["state", "state"], ["cursor_readable", "cursor"], ["cursor", "cursor (raw)"],
	["cursor_updated_at", "cursor updated"], ["exported_total", "exported"],
	["export_rate", "export rate"], ["last_export_at", "last export"],
	["export_lag_ms", "export lag (ms)"], ["queue_depth", "queue depth"],
	["retrying", "retrying"], ["failed", "failed"], ["pending_deletes", "pending deletes"],
	["errors_total", "errors"], ["skipped_total", "skipped"], ["batches_total", "batches"],
	["repair_pending", "repair pending"], ["source.connected", "source connected"],
	["source.message", "source"], ["target.quarantined", "target quarantined"],
	["target.requests", "target requests"], ["target.retries", "target retries"],
	["target.failures", "target failures"], ["target.quarantine_reason", "target quarantine"],
	["target.quarantine_detail", "target quarantine detail"],
];

function renderSync(st) {
	const s = st.sync || {};
	const now = Date.now();
	const rows = [];
	const known = new Set(["quarantine.reason", "quarantine.detail"]);
	for (const [key, label] of SYNC_KEYS) {
		const v = get(s, key);
		known.add(key);
		if (v === undefined)
			continue;
		let note = null, cls = null;
		if (v === null && key.startsWith("target.quarantine_"))
			continue;
		if (key === "cursor_updated_at" || key === "last_export_at")
			note = ago(v);
		if (key === "state")
			cls = "state-" + v;
		if (key === "cursor" || key === "cursor_readable")
			cls = "cursor";
		if ((key === "failed" || key === "retrying" || key === "pending_deletes") && v > 0)
			cls = "warn";
		if (key === "source.connected" && v === false)
			cls = "bad";
		if (key === "cursor" && has(s, "cursor_readable"))
			continue; /* shown readable above; still in canopyctl status --json */
		rows.push(["sync." + key, label, v, note, cls]);
	}
	/* No rate in the status: the difference of exported_total between two
	 * answers of this agent (a counter, like rate() in Prometheus). */
	if (!has(s, "export_rate") && typeof s.exported_total === "number") {
		let rate = null;
		if (previous && previous.node === st.node_id && now > previous.at && s.exported_total >= previous.exported)
			rate = ((s.exported_total - previous.exported) * 60000 / (now - previous.at)).toFixed(1) + " / min";
		rows.splice(rows.findIndex((r) => r[0] === "sync.exported_total") + 1, 0,
			["sync.export_rate_observed", "export rate", rate, "exported_total between two refreshes"]);
		previous = {at: now, exported: s.exported_total, node: st.node_id};
	}
	for (const [k, , v] of rest(s, "", known, []))
		rows.push(["sync." + k, k, v]);
	facts(document.getElementById("sync"), rows);

	const q = document.getElementById("quarantine");
	if (s.quarantine && s.quarantine.reason) {
		q.replaceChildren("Quarantined: ", el("strong", {"data-key": "sync.quarantine.reason"}, s.quarantine.reason),
			s.quarantine.detail ? " \u2014 " + s.quarantine.detail : "");
		q.hidden = false;
	} else {
		q.replaceChildren();
		q.hidden = true;
	}
}

function renderNode(st) {
	const skip = new Set(["node_id", "cluster", "role", "term", "leader", "members", "sync",
		...CLUSTER_KEYS.map((k) => k[0])]);
	const rows = [];
	if (typeof st.uptime_seconds === "number")
		rows.push(["uptime_seconds", "uptime", duration(st.uptime_seconds * 1000)]);
	skip.add("uptime_seconds");
	for (const [k, v] of Object.entries(st)) {
		if (skip.has(k))
			continue;
		if (v !== null && typeof v === "object" && !Array.isArray(v))
			rest(v, k, new Set(), rows);
		else
			rows.push([k, k, v]);
	}
	facts(document.getElementById("node"), rows);
}

function renderLogs(st, logs) {
	const leader = st && st.leader ? st.leader : {};
	const note = document.getElementById("logs-note");
	const parts = ["Node " + show(logs.node_id) + "'s log, newest first (each node logs what it did while leading)"];
	if (logs.truncated)
		parts.push("; the newest " + show(logs.limit) + " entries");
	note.replaceChildren(parts.join(""));
	if (st && leader.id && leader.id !== st.node_id) {
		const m = (st.members || []).find((x) => x.id === leader.id);
		const page = m ? memberPage(m.control_address) : null;
		if (page)
			note.append(". The leader's: ", el("a", {href: page, id: "leader-page"}, "node " + leader.id));
	}
	const trs = [];
	/* /v1/logs lists the newest `limit` entries oldest first (as canopyctl
	 * logs prints them); a live page wants the newest on top */
	const entries = Array.isArray(logs.entries) ? logs.entries.slice().reverse() : [];
	for (const e of entries) {
		const r = typeof e.result === "string" ? e.result : "";
		trs.push(el("tr", {className: "result-" + r, "data-result": r},
			el("td", {className: "time"}, show(e.time)),
			el("td", {className: "node"}, show(e.node)),
			el("td", {className: "term"}, show(e.term)),
			el("td", {className: "dn", title: has(e, "anchor") ? "anchor " + e.anchor : null}, show(e.dn)),
			el("td", {className: "type"}, show(e.type)),
			el("td", {className: "action"}, show(e.action)),
			el("td", {className: "result"}, show(e.result)),
			el("td", {className: "http"}, show(e.http_status)),
			el("td", {className: "ms"}, typeof e.duration_ms === "number" ? e.duration_ms.toFixed(1) : "-"),
			el("td", {className: "error"}, has(e, "error") ? show(e.error) : "")));
	}
	if (trs.length === 0)
		trs.push(el("tr", {className: "empty"}, el("td", {colspan: 10}, "no entries")));
	document.querySelector("#logs tbody").replaceChildren(...trs);
}

/* ---- the refresh loop ---------------------------------------------------- */

async function getJSON(path) {
	const r = await fetch(path, {cache: "no-store", headers: {"Accept": "application/json"}});
	const body = await r.json().catch(() => null);
	if (!r.ok)
		throw new Error(path + ": HTTP " + r.status + (body && body.error ? ": " + body.error : ""));
	if (body === null)
		throw new Error(path + ": not JSON");
	return body;
}

let lastOk = null;
let refreshes = 0;

async function refresh() {
	const conn = document.getElementById("conn");
	try {
		const [st, logs] = await Promise.all([getJSON("/v1/status"),
			getJSON("/v1/logs?limit=" + LOG_LIMIT).catch((e) => ({error: e}))]);
		renderHeader(st);
		renderCluster(st);
		renderSync(st);
		renderNode(st);
		if (logs.error)
			document.getElementById("logs-note").textContent = "cannot read the log: " + logs.error.message;
		else
			renderLogs(st, logs);
		lastOk = new Date();
		refreshes++;
		conn.className = "conn ok";
		conn.replaceChildren("live: updated " + lastOk.toLocaleTimeString() + " (every " + REFRESH_MS / 1000 + " s)");
		conn.setAttribute("data-refreshes", String(refreshes));
		document.body.setAttribute("data-stale", "false");
	} catch (e) {
		/* Keep the last figures on screen, marked stale. */
		conn.className = "conn stale";
		conn.replaceChildren("cannot reach this agent (" + e.message + ")" +
			(lastOk ? "; figures below are from " + lastOk.toLocaleTimeString() : ""));
		document.body.setAttribute("data-stale", "true");
	} finally {
		setTimeout(refresh, REFRESH_MS);
	}
}

document.addEventListener("DOMContentLoaded", refresh);
