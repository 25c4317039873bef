/*
 * agent/control.c -- the control API (agent/http.c serves it):
 *
 *   GET  /                          the status page, GET /assets/...: its
 *                                   script and style (agent/www.c)
 *   GET  /v1/status                 this node's view: role, term, members,
 *                                   sync, storage, health (canopyctl status)
 *   GET  /v1/members                the leader's view of the members, for
 *                                   followers (agent/member_view.h)
 *   GET  /metrics                   the same figures for Prometheus
 *                                   (agent/metrics.c)
 *   GET  /v1/logs                   this node's provisioning log (?since,
 *                                   ?object, ?errors, ?limit)
 *   GET  /v1/leader/watch           a follower's watch of the leader
 *                                   (agent/leader_watch.c)
 *   GET  /v1/deletes, /v1/failed    what the sync holds back; POST /v1/resync,
 *                                   POST /v1/sync/resume (agent/control_sync.c)
 *   POST /v1/deletes/approve, /v1/deletes/reject
 *   POST /v1/cluster/add, /remove, /transfer, /abort
 *   POST /v1/health/report          a follower's probe results (agent/health.c)
 *   POST /v1/drill/transfer, /crash a failover drill (agent/control_drill.c)
 *
 * GETs are answered by every node, leader or not, from its own view
 * (docs/operations.md, "Contracts"); mutations go to the leader (a follower
 * redirects) and need the control token when one is configured. Field names
 * are a contract with canopyctl and with end-to-end checks: extend, never
 * rename.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include <jansson.h>
#include <openssl/crypto.h>

#include "agent/agent.h"
#include "agent/control.h"
#include "agent/log.h"
#include "agent/www.h"
#include "common/xalloc.h"
#include "raft/transport_tls.h"
#include "sync/provlog.h"
#include "sync/state/figures.h"
#include "sync/state/object.h"
#include "sync/state/retry.h"
#include "sync/text_json.h"

static const char *role_name(int role)
{
	switch (role) {
	case NODE_VOTER:
		return "voter";
	case NODE_STANDBY:
		return "standby";
	default:
		return "spare";
	}
}

/*
 * Out of memory aborts (common/xalloc.h), and jansson's NULL means out of
 * memory too wherever the strings are known UTF-8: names and words of
 * canopy's own, the configuration (libyaml reads UTF-8 only), DNs and ids of
 * the replicated records. Text from elsewhere -- a directory's or a
 * target's error message, cut to a buffer -- goes through text_json().
 */
static void set(json_t *o, const char *key, json_t *v)
{
	if (json_object_set_new(o, key, v) != 0)
		xoom("json_object_set_new");
}

json_t *control_time_or_null(time_t t)
{
	char buf[32];
	struct tm tm;
	if (t == 0)
		return json_null();
	gmtime_r(&t, &tm);
	strftime(buf, sizeof buf, "%Y-%m-%dT%H:%M:%SZ", &tm);
	return xcheck(json_string(buf));
}

/* The cursor is opaque bytes; RFC 4533 cookies are printable text, so show
 * them as is, and anything else as hex. */
static json_t *cursor_json(const struct state *s)
{
	size_t i, len;
	const unsigned char *c = state_cursor(s, &len);
	char *hex;
	json_t *j;

	if (c == NULL)
		return json_null();
	for (i = 0; i < len; i++)
		if ((c[i] < 0x20 && c[i] != '\n') || c[i] >= 0x7f)
			break;
	if (i == len)
		return xcheck(json_stringn((const char *)c, len));
	hex = xmalloc(len * 2 + 5); /* a cursor is at most a Raft entry (raft/wire_check.h) */
	strcpy(hex, "hex:");
	for (i = 0; i < len; i++)
		sprintf(hex + 4 + 2 * i, "%02x", c[i]);
	j = xcheck(json_string(hex));
	free(hex);
	return j;
}

struct engine_stats control_sync_stats(struct agent *a)
{
	struct engine_stats es;
	struct sync_figures f;
	memset(&es, 0, sizeof es);
	if (a->engine)
		engine_stats(a->engine, &es);
	else
		es.state = ENGINE_DISABLED;
	/* Staged deletes are replicated: every node knows how many. */
	es.pending_deletes = object_staged_count(&a->state);
	/* So are the totals and times ("s:sync", sync/state/figures.h): every
	 * node shows the leader's figures as of its applied index, not its own
	 * engine's counters (a follower's are zero). */
	control_sync_figures(a, &f);
	es.exported_total = f.ops;
	es.errors_total = f.errors;
	es.skipped_total = f.skipped;
	es.batches_total = f.batches;
	es.export_lag_ms = f.lag_ms;
	es.last_export_at = (time_t)(f.last_export_ms / 1000);
	return es;
}

/* sync.target.capabilities: what the target said it supports (discovery,
 * docs/targets.md) and the patch style in use; null until discovered. */
static json_t *target_caps_json(const struct target_caps *c)
{
	if (!c->known)
		return json_null();
	return xcheck(json_pack("{s:b,s:b,s:I,s:I,s:b,s:I,s:b,s:b,s:s,s:I,s:s}", "discovered", c->config_read,
				"bulk", c->bulk, "max_operations", (json_int_t)c->max_operations, "max_payload",
				(json_int_t)c->max_payload, "filter", c->filter, "max_results",
				(json_int_t)c->max_results, "patch", c->patch, "etag", c->etag, "patch_style",
				c->patch_style, "schema_attributes", (json_int_t)c->schema_attributes, "lookup",
				c->filter ? "filter" : "scan"));
}

void control_sync_figures(struct agent *a, struct sync_figures *out)
{
	(void)figures_get(&a->state, out); /* none yet: zeros */
}

/* "sync.cursor_readable": the source's description of the committed cursor
 * (sync/source/source.h, describe_cursor), or null. */
static json_t *cursor_readable_json(struct agent *a)
{
	char text[1024];

	if (a->engine == NULL || engine_describe_cursor(a->engine, text, sizeof text) != 0)
		return json_null();
	return text_json(text);
}

static json_t *sync_json(struct agent *a)
{
	struct engine_stats es = control_sync_stats(a);
	struct sync_figures f;
	uint64_t now_ms = (uint64_t)node_wall_ms();
	json_t *o;

	o = xcheck(json_pack("{s:s,s:o,s:I,s:I,s:o,s:I,s:I,s:I}",
			     "state", engine_state_name(es.state),
			     "cursor", cursor_json(&a->state),
			     "exported_total", (json_int_t)es.exported_total,
			     "errors_total", (json_int_t)es.errors_total,
			     "last_export_at", control_time_or_null(es.last_export_at),
			     "pending_deletes", (json_int_t)es.pending_deletes,
			     "skipped_total", (json_int_t)es.skipped_total,
			     "batches_total", (json_int_t)es.batches_total));
	set(o, "export_lag_ms", xcheck(json_integer((json_int_t)es.export_lag_ms)));
	/* replicated: every node shows the same retry set and failed objects */
	set(o, "retrying", xcheck(json_integer((json_int_t)state_count(&a->state, STATE_NS_RETRY))));
	set(o, "failed", xcheck(json_integer((json_int_t)state_count(&a->state, STATE_NS_FAILED))));
	/* the leader's own: objects an earlier leader may have written after
	 * its last commit, still to be rewritten by the in-doubt repair
	 * (docs/architecture.md, "Intents"; due target.timeout_ms + T after the
	 * change of leader). null on other nodes. */
	set(o, "repair_pending", node_state(&a->node) != NODE_LEADER
					 ? json_null() : xcheck(json_integer((json_int_t)es.repair_pending)));
	if (es.quarantine_reason[0])
		set(o, "quarantine", control_quarantine_json(&es));
	/* Replicated too (figures.h): objects written, the export rate over the
	 * last minute, when the cursor last moved by the leader's clock; ages
	 * and the rate are taken at this node's clock. */
	control_sync_figures(a, &f);
	set(o, "exported_objects", xcheck(json_integer((json_int_t)f.objects)));
	set(o, "export_rate", xcheck(json_real(figures_rate(&f, now_ms))));
	set(o, "last_export_at_ms", f.last_export_ms ? xcheck(json_integer((json_int_t)f.last_export_ms)) : json_null());
	set(o, "cursor_readable", cursor_readable_json(a));
	/* before the figures existed (an older leader): when this node saw it change */
	set(o, "cursor_updated_at", f.cursor_at_ms ? control_time_or_null((time_t)(f.cursor_at_ms / 1000))
						   : control_time_or_null(a->cursor_seen_at));
	set(o, "cursor_age_ms", f.cursor_at_ms == 0 ? json_null()
			      : xcheck(json_integer((json_int_t)(now_ms > f.cursor_at_ms ? now_ms - f.cursor_at_ms : 0))));
	if (a->engine && a->engine != NULL && es.state != ENGINE_STANDBY) {
		set(o, "source",
		    xcheck(json_pack("{s:b,s:o}", "connected", es.source_connected,
				     "message", text_json(es.source_message))));
		set(o, "target",
		    xcheck(json_pack("{s:b,s:s?,s:o?,s:I,s:I,s:I}", "quarantined",
				     es.target.quarantined, "quarantine_reason",
				     es.target.quarantined ? es.target.quarantine_reason : NULL,
				     "quarantine_detail",
				     es.target.quarantined ? text_json(es.target.quarantine_detail) : NULL,
				     "requests", (json_int_t)es.target.requests, "retries",
				     (json_int_t)es.target.retries, "failures",
				     (json_int_t)es.target.failures)));
		set(json_object_get(o, "target"), "capabilities", target_caps_json(&es.target.caps));
	}
	return o;
}

/* How bad a storage state is: ok < error < storage_full. */
static int storage_rank(enum storage_state s)
{
	return s == STORAGE_FULL ? 2 : s == STORAGE_ERROR ? 1 : 0;
}

/* The raft data dir's state (raft/storage.h) and the provisioning log's,
 * the worse of the two. */
enum storage_state control_storage_overall(const struct node_status *st, const struct provlog_health *ph)
{
	enum storage_state p = ph->last_errno == ENOSPC ? STORAGE_FULL : STORAGE_ERROR;
	return ph->failing && storage_rank(p) > storage_rank(st->storage_state) ? p : st->storage_state;
}

/*
 * "storage": the raft data dir's health (raft/storage.h) and the provisioning
 * log's write errors; state is the worse of the two (storage_full | error | ok).
 */
static json_t *storage_json(const struct node_status *st)
{
	struct provlog_health ph;
	char detail[1200];

	provlog_health(&ph);
	snprintf(detail, sizeof detail, "%s", st->storage_detail);
	if (ph.failing)
		snprintf(detail + strlen(detail), sizeof detail - strlen(detail), "%s%s: %s",
			 detail[0] ? "; " : "", ph.path, strerror(ph.last_errno));
	return xcheck(json_pack("{s:s,s:o,s:{s:I,s:I,s:b}}", "state",
				storage_state_name(control_storage_overall(st, &ph)), "detail", text_json(detail),
				"provisioning_log", "write_errors", (json_int_t)ph.write_errors, "reopens",
				(json_int_t)ph.reopens, "failing", ph.failing));
}

/* The failover bound T and how libraft is set for it (raft/node.c), and this
 * node's last election won: how long it took to notice the old leader was
 * gone, and to win. */
static json_t *failover_json(struct agent *a)
{
	unsigned t = a->cfg.cluster.election_timeout_ms;
	struct node_stats ns;
	json_t *o;

	node_stats(&a->node, &ns);
	o = xcheck(json_pack("{s:I,s:I,s:I,s:I,s:I}", "bound_ms", (json_int_t)t, "raft_timeout_ms",
			     (json_int_t)node_raft_timeout_ms(t), "heartbeat_ms",
			     (json_int_t)node_heartbeat_ms(t, a->cfg.cluster.heartbeat_ms), "elections",
			     (json_int_t)ns.elections, "spurious_elections", (json_int_t)ns.spurious_elections));
	set(o, "vote_retries", xcheck(json_integer((json_int_t)ns.vote_retries)));
	set(o, "early_elections", xcheck(json_integer((json_int_t)a->leader_watch.early_elections)));
	set(o, "watch_drops", xcheck(json_integer((json_int_t)a->leader_watch.drops_seen)));
	set(o, "watch_drops_leader_alive", xcheck(json_integer((json_int_t)a->leader_watch.drops_alive)));
	set(o, "lease_suspensions", xcheck(json_integer((json_int_t)a->leader_watch.suspensions)));
	/* how this node's write leases were renewed while it led: by heartbeat
	 * answers (no log entry) or by a barrier entry (raft/leader.h) */
	set(o, "lease_heartbeat_renewals", xcheck(json_integer((json_int_t)ns.lease_heartbeat_renewals)));
	set(o, "lease_renewal_barriers", xcheck(json_integer((json_int_t)ns.lease_renewal_barriers)));
	/* answers libraft 0.15 addressed to no one after quick elections, not
	 * sent (raft/isolation.h) */
	set(o, "unaddressed_messages", xcheck(json_integer((json_int_t)node_unaddressed_messages(&a->node))));
	if (a->leader_watch.last_at != 0)
		set(o, "last_early",
		    xcheck(json_pack("{s:I,s:I}", "detected_ms", (json_int_t)a->leader_watch.last_detect_ms, "ago_ms",
				     (json_int_t)(node_now(&a->node) - a->leader_watch.last_at))));
	/* For `canopyctl drill failover`: the latest election this node won and
	 * the first moment it could export afterwards, in epoch ms so that two
	 * nodes' times compare (agent/control_drill.c). */
	set(o, "last_candidate_at_ms",
	    ns.failover.at ? xcheck(json_integer((json_int_t)ns.failover.candidate_wall_ms)) : json_null());
	set(o, "last_elected_at_ms",
	    ns.failover.at ? xcheck(json_integer((json_int_t)ns.failover.won_wall_ms)) : json_null());
	set(o, "last_first_export_at_ms",
	    a->drill.export_at ? xcheck(json_integer((json_int_t)a->drill.export_wall_ms)) : json_null());
	set(o, "last_first_export_term",
	    a->drill.export_at ? xcheck(json_integer((json_int_t)a->drill.lead_term)) : json_null());
	if (ns.failover.at != 0)
		set(o, "last",
		    xcheck(json_pack("{s:I,s:I,s:I}", "detected_ms", (json_int_t)ns.failover.detected_ms, "elected_ms",
				     (json_int_t)ns.failover.elected_ms, "ago_ms",
				     (json_int_t)(node_now(&a->node) - ns.failover.at))));
	return o;
}

/* A member's control address as it published it ("n:<id>" in the
 * replicated state: every node that led), else -- on the leader -- as its
 * latest health report said; null when neither: canopyctl drill watches
 * every member. */
static json_t *control_address_json(struct agent *a, uint64_t id)
{
	char key[32], addr[256];
	const void *v;
	size_t vlen, klen = (size_t)snprintf(key, sizeof key, "n:%llu", (unsigned long long)id);

	if (state_get(&a->state, key, klen, &v, &vlen) && vlen > 0 && vlen < sizeof addr) {
		memcpy(addr, v, vlen);
		addr[vlen] = '\0';
		return text_json(addr);
	}
	if (a->health && health_peer_address(a->health, id, addr, sizeof addr))
		return text_json(addr);
	return json_null();
}

/*
 * A member's figures beyond the contract's (docs/operations.md, "Reading
 * status"): whether it leads, when this node last heard from it, how far its
 * log is behind (the leader's match index), its source and target health.
 * On a follower, what only the leader knows comes from the leader's latest
 * view (agent/member_view.h) while it is fresh, marked by "view".
 */
static void member_json(struct agent *a, const struct node_status *st, const struct node_member_status *m, json_t *jm)
{
	bool self = m->id == a->cfg.node.id;

	set(jm, "is_leader", json_boolean(st->leader_id != 0 && m->id == st->leader_id));
	set(jm, "last_contact_ms",
	    m->last_contact_ms < 0 ? json_null() : xcheck(json_integer((json_int_t)m->last_contact_ms)));
	if (st->state == NODE_LEADER && !self) {
		set(jm, "match_index", xcheck(json_integer((json_int_t)m->match_index)));
		set(jm, "lag", xcheck(json_integer(
				       (json_int_t)(st->last_index > m->match_index ? st->last_index - m->match_index : 0))));
	}
	set(jm, "health", a->health ? health_member_json(a->health, m->id) : json_null());
	set(jm, "view", xcheck(json_string(st->state == NODE_LEADER || self || m->id == st->leader_id ? "own" : "none")));
	if (st->state != NODE_LEADER && !self)
		member_view_apply(a->member_view, st, m, jm);
}

static json_t *members_json(struct agent *a, const struct node_status *st)
{
	json_t *members = xcheck(json_array());
	unsigned i;

	for (i = 0; i < st->n_members; i++) {
		const struct node_member_status *m = &st->members[i];
		json_t *jm = xcheck(json_pack("{s:I,s:s,s:s}", "id", (json_int_t)m->id, "address",
					      m->address, "role", role_name(m->role)));
		set(jm, "reachable", m->reachable < 0 ? json_null() : json_boolean(m->reachable));
		set(jm, "control_address", control_address_json(a, m->id));
		versions_member_json(a, m->id, jm);
		member_json(a, st, m, jm);
		if (json_array_append_new(members, jm) != 0)
			xoom("json_array_append_new");
	}
	return members;
}

/* GET /v1/members: the leader's view of the members, fetched by followers
 * (agent/member_view.h); 409 from a node that does not lead. */
static void handle_members(struct agent *a, struct http_reply *reply)
{
	struct node_status st;

	node_status(&a->node, &st);
	if (st.state != NODE_LEADER) {
		http_reply_error(reply, 409, "node %llu does not lead (it is %s); ask the leader",
				 (unsigned long long)a->cfg.node.id, node_state_name(st.state));
		return;
	}
	control_reply_json(reply, 200,
			   json_pack("{s:I,s:I,s:o,s:o}", "leader", (json_int_t)a->cfg.node.id, "term",
				     (json_int_t)st.term, "members", members_json(a, &st), "health",
				     a->health ? health_view_json(a->health) : json_null()));
}

static json_t *status_json(struct agent *a)
{
	struct node_status st;
	json_t *o, *members, *leader;
	char digest[17];

	struct tls_transport_stats ts;

	node_status(&a->node, &st);
	members = members_json(a, &st);
	if (st.leader_id != 0)
		leader = xcheck(json_pack("{s:I,s:s}", "id", (json_int_t)st.leader_id, "address",
					  st.leader_address));
	else
		leader = xcheck(json_pack("{s:n,s:n}", "id", "address"));
	snprintf(digest, sizeof digest, "%016llx", (unsigned long long)state_digest(&a->state));

	o = xcheck(json_pack("{s:I,s:s,s:s,s:I,s:o,s:I,s:I,s:I,s:o,s:b,s:I}",
			     "node_id", (json_int_t)a->cfg.node.id,
			     "cluster", a->cfg.cluster.name,
			     "role", node_state_name(st.state),
			     "term", (json_int_t)st.term,
			     "leader", leader,
			     "commit_index", (json_int_t)st.commit_index,
			     "applied_index", (json_int_t)st.applied_index,
			     "last_index", (json_int_t)st.last_index,
			     "members", members,
			     "leader_ready", st.ready,
			     "uptime_seconds", (json_int_t)(time(NULL) - a->started_wall)));
	set(o, "cluster_id", identity_cluster_id(a) ? xcheck(json_string(identity_cluster_id(a))) : json_null());
	set(o, "bootstrap", xcheck(json_string(agent_bootstrap_name(agent_bootstrap_mode(a)))));
	/* this build, and the entry formats (agent/versions.h) */
	set(o, "version", versions_json());
	set(o, "format", versions_format_json(a));
	/* How members talk (raft/transport_tls.h): "tls" or "plain". */
	set(o, "transport", xcheck(json_string(node_transport(&a->node))));
	if (node_tls_stats(&a->node, &ts))
		set(o, "transport_stats",
		    xcheck(json_pack("{s:I, s:I, s:I, s:I, s:I, s:i}", "accepted", (json_int_t)ts.accepted,
				     "connected", (json_int_t)ts.connected, "refused", (json_int_t)ts.refused,
				     "malformed", (json_int_t)ts.malformed, "reloads", (json_int_t)ts.reloads,
				     "open", (int)ts.open)));
	set(o, "sync", sync_json(a));
	set(o, "failover", failover_json(a));
	set(o, "drill", control_drill_json(a));
	set(o, "config", replconf_status_json(a));
	set(o, "storage", storage_json(&st));
	/* this node's event loop (agent/loop_watch.h) */
	set(o, "loop", xcheck(json_pack("{s:I,s:I,s:I}", "lag_max_ms", (json_int_t)a->loop_watch.lag_max_ms,
					"stalls", (json_int_t)a->loop_watch.stalls, "stall_threshold_ms",
					(json_int_t)a->loop_watch.stall_ms)));
	if (a->health) {
		set(o, "health", health_json(a->health));
		set(o, "cluster_health", health_cluster_json(a->health));
	}
	set(o, "state",
	    xcheck(json_pack("{s:I,s:I,s:I,s:s}", "objects", (json_int_t)state_count(&a->state, STATE_NS_OBJECT),
			     "staged_deletes", (json_int_t)object_staged_count(&a->state), "keys",
			     (json_int_t)state_keys(&a->state), "digest", digest)));
	return o;
}

void control_reply_json(struct http_reply *reply, unsigned status, json_t *o)
{
	reply->body = xcheck(json_dumps(xcheck(o), JSON_COMPACT));
	json_decref(o);
	reply->status = status;
	reply->content_type = "application/json";
	reply->body_len = strlen(reply->body);
}

/*
 * Mutations go to the leader. A follower answers 307 with the leader's
 * control address (published in the replicated state as "n:<id>"), so
 * canopyctl follows it; when that is unknown, 503 names the leader.
 */
static bool redirect_to_leader(struct agent *a, const struct http_request *req,
			       struct http_reply *reply)
{
	struct node_status st;
	char key[32];
	const void *v;
	size_t vlen, klen;

	node_status(&a->node, &st);
	if (st.ready)
		return false;
	if (st.leader_id == 0 || st.leader_id == a->cfg.node.id) {
		http_reply_error(reply, 503, "no leader right now (this node is %s); retry shortly",
				 node_state_name(st.state));
		return true;
	}
	klen = (size_t)snprintf(key, sizeof key, "n:%llu", (unsigned long long)st.leader_id);
	if (state_get(&a->state, key, klen, &v, &vlen) && vlen < 200) {
		snprintf(reply->location, sizeof reply->location, "http://%.*s%s", (int)vlen,
			 (const char *)v, req->path);
		http_reply_error(reply, 307, "not the leader; the leader is node %llu at %.*s",
				 (unsigned long long)st.leader_id, (int)vlen, (const char *)v);
		return true;
	}
	http_reply_error(reply, 503, "not the leader; the leader is node %llu (raft %s)",
			 (unsigned long long)st.leader_id, st.leader_address);
	return true;
}

bool control_redirect_to_leader(struct agent *a, const struct http_request *req, struct http_reply *reply)
{
	return redirect_to_leader(a, req, reply);
}

static void handle_deletes(struct agent *a, const struct http_request *req,
			   struct http_reply *reply, bool approve)
{
	char err[256];
	uint64_t n = object_staged_count(&a->state);
	int rv;

	if (strcmp(req->method, "POST") != 0) {
		http_reply_error(reply, 405, "%s %s: use POST", req->method, req->path);
		return;
	}
	if (a->engine == NULL) {
		http_reply_error(reply, 409, "sync is not configured on this node");
		return;
	}
	if (redirect_to_leader(a, req, reply))
		return;
	rv = engine_deletes_decide(a->engine, approve, err, sizeof err);
	if (rv == -ENOENT) {
		control_reply_json(reply, 200, json_pack("{s:s,s:i}", "result", "nothing staged", "deletes", 0));
		return;
	}
	if (rv != 0) {
		http_reply_error(reply, 409, "%s", err);
		return;
	}
	log_info(approve ? "staged deletes approved by an operator" : "staged deletes rejected by an operator",
		 "deletes=%llu", (unsigned long long)n);
	control_reply_json(reply, 202, json_pack("{s:s,s:I}", "result", approve ? "approved" : "rejected",
					 "deletes", (json_int_t)n));
}

/*
 * GET /v1/logs reads the provisioning log on a libuv worker thread: the file
 * can be large (the issue measured 133 MB read in 11.8 s on the loop, and the
 * leader lost its leadership meanwhile). provlog_read() reads from the file's
 * end and stops after `limit` matches.
 */
struct logs_job {
	uv_work_t work;
	struct http_pending *p;
	uint64_t node_id;
	char path[1100];
	char *object;
	struct provlog_query q;
	json_t *entries;
	bool truncated;
};

static void logs_job_free(struct logs_job *j)
{
	free(j->object);
	free(j);
}

static void logs_work(uv_work_t *w)
{
	struct logs_job *j = w->data;
	j->entries = provlog_read(j->path, &j->q, &j->truncated);
}

static void logs_done(uv_work_t *w, int status)
{
	struct logs_job *j = w->data;
	struct http_reply reply;

	memset(&reply, 0, sizeof reply);
	if (status != 0) { /* the work was cancelled: the loop is closing */
		json_decref(j->entries);
		http_reply_error(&reply, 500, "cannot read the provisioning log");
	} else {
		/* truncated: older matches were left out by the limit */
		control_reply_json(&reply, 200, json_pack("{s:I,s:o,s:b,s:I}", "node_id", (json_int_t)j->node_id,
							  "entries", j->entries, "truncated", j->truncated,
							  "limit", (json_int_t)j->q.limit));
	}
	http_finish(j->p, &reply);
	logs_job_free(j);
}

static void handle_logs(struct agent *a, const struct http_request *req, struct http_reply *reply)
{
	const char *errors = http_request_arg(req, "errors"), *limit = http_request_arg(req, "limit");
	const char *since = http_request_arg(req, "since"), *object = http_request_arg(req, "object");
	struct logs_job *j;
	int64_t since_us = 0;
	unsigned n;

	if (control_parse_limit(limit, &n) != 0) {
		http_reply_error(reply, 400, "limit: expected a number from 1 to %u", CONTROL_LOGS_MAX_LIMIT);
		return;
	}
	if (since != NULL && provlog_parse_time(since, &since_us) != 0) {
		http_reply_error(reply, 400, "since: expected an RFC 3339 time such as 2026-11-24T17:13:03Z");
		return;
	}
	j = xcalloc(1, sizeof *j);
	j->object = object ? xstrdup(object) : NULL;
	j->node_id = a->cfg.node.id;
	j->q.has_since = since != NULL;
	j->q.since_us = since_us;
	j->q.object = j->object;
	j->q.errors_only = errors && strcmp(errors, "0") != 0 && strcmp(errors, "false") != 0;
	j->q.limit = n;
	snprintf(j->path, sizeof j->path, "%s/provisioning.log", a->cfg.node.data_dir);
	j->work.data = j;
	j->p = http_defer(req);
	if (uv_queue_work(&a->loop, &j->work, logs_work, logs_done) != 0) {
		http_undefer(req);
		logs_job_free(j);
		http_reply_error(reply, 500, "cannot start reading the provisioning log");
	}
}

/*
 * A membership change being waited for. libraft may take long (catching a
 * new server up, in rounds of up to 5 s): the operator gets an answer within
 * CHANGE_ANSWER_MS either way -- "done", the failure, or "in progress" --
 * and the change goes on in the background.
 */
#define CHANGE_ANSWER_MS 15000

/* POST /v1/cluster/<op> */
enum cluster_op { CLUSTER_ADD, CLUSTER_REMOVE, CLUSTER_TRANSFER, CLUSTER_ABORT };

static const char *const cluster_ops[] = {"add", "remove", "transfer", "abort"};

static const char *cluster_op_name(enum cluster_op op)
{
	return cluster_ops[op];
}

/* "add" ... "abort" (the path's last part); false for anything else. */
static bool cluster_op_parse(const char *s, enum cluster_op *out)
{
	for (size_t i = 0; i < sizeof cluster_ops / sizeof cluster_ops[0]; i++)
		if (strcmp(s, cluster_ops[i]) == 0) {
			*out = (enum cluster_op)i;
			return true;
		}
	return false;
}

struct change_wait {
	struct http_pending *p; /* NULL once answered */
	uv_timer_t timer;
	bool change_done, timer_closed;
	enum cluster_op op;
};

static void change_wait_release(struct change_wait *w)
{
	if (w->change_done && w->timer_closed)
		free(w);
}

static void on_change_timer_closed(uv_handle_t *h)
{
	struct change_wait *w = h->data;
	w->timer_closed = true;
	change_wait_release(w);
}

static void on_change_slow(uv_timer_t *t)
{
	struct change_wait *w = t->data;
	struct http_reply reply;

	memset(&reply, 0, sizeof reply);
	control_reply_json(&reply, 202,
		   json_pack("{s:s,s:s}", "result", "in progress", "detail",
			     "the change was accepted and is still running (a new server is caught "
			     "up before it votes); see canopyctl status"));
	http_finish(w->p, &reply);
	w->p = NULL;
	uv_close((uv_handle_t *)&w->timer, on_change_timer_closed);
}

static void on_change_done(void *arg, int status, const char *errmsg)
{
	struct change_wait *w = arg;
	struct http_reply reply;

	if (w->p != NULL) {
		memset(&reply, 0, sizeof reply);
		if (status == 0)
			control_reply_json(&reply, 200,
				   json_pack("{s:s}", "result", w->op == CLUSTER_ABORT ? "aborted" : "done"));
		else
			http_reply_error(&reply, 409, "%s failed: %s", cluster_op_name(w->op), errmsg);
		http_finish(w->p, &reply);
		w->p = NULL;
		uv_close((uv_handle_t *)&w->timer, on_change_timer_closed);
	} else if (status != 0) {
		log_warn("membership change failed after the operator was answered", "change=%s error=\"%s\"",
			 cluster_op_name(w->op), errmsg);
	}
	w->change_done = true;
	change_wait_release(w);
}

/* Wait for a change whose request is deferred already (p). */
static struct change_wait *change_wait_start(struct agent *a, struct http_pending *p, enum cluster_op op)
{
	struct change_wait *w = xcalloc(1, sizeof *w);
	w->p = p;
	w->op = op;
	uv_timer_init(&a->loop, &w->timer);
	w->timer.data = w;
	uv_timer_start(&w->timer, on_change_slow, CHANGE_ANSWER_MS, 0);
	return w;
}

static struct change_wait *change_wait_new(struct agent *a, const struct http_request *req, enum cluster_op op)
{
	return change_wait_start(a, http_defer(req), op);
}

/* The change did not start: take the deferral back and free the waiter. */
static void change_wait_cancel(struct change_wait *w, const struct http_request *req)
{
	http_undefer(req);
	w->p = NULL;
	w->change_done = true;
	uv_close((uv_handle_t *)&w->timer, on_change_timer_closed);
}

static void on_transfer_done(struct node *n, bool transferred)
{
	struct agent *a = n->data;
	struct node_status st;
	struct http_reply reply;

	if (a->transfer_pending == NULL)
		return;
	memset(&reply, 0, sizeof reply);
	node_status(n, &st);
	/* libraft calls back as soon as this node stepped down, sometimes before
	 * the new leader is known here: leadership did move. */
	if (node_state(n) != NODE_LEADER)
		transferred = true;
	if (transferred)
		control_reply_json(&reply, 200, json_pack("{s:s,s:I,s:I}", "result", "transferred", "leader",
						  (json_int_t)st.leader_id, "term", (json_int_t)st.term));
	else
		http_reply_error(&reply, 409, "leadership transfer did not complete (leader is %llu)",
				 (unsigned long long)st.leader_id);
	http_finish(a->transfer_pending, &reply);
	a->transfer_pending = NULL;
	if (!transferred && a->engine && node_leader_ready(n))
		identity_resume(a); /* still leading: resume exporting */
}

/*
 * `cluster add` first checks that something answers a TCP connect on the new
 * member's raft address within ADD_PROBE_MS. Without it libraft adds the
 * server as spare and then tries to catch it up (rounds of up to 5 s), and
 * while a promotion is pending every other change fails with
 * RAFT_CANTCHANGE: an add of an agent that is not running wedged membership.
 */
#define ADD_PROBE_MS 1000

struct add_probe {
	struct agent *a;
	struct http_pending *p;
	struct config_member m;
	char host[256], port[16];
	uv_getaddrinfo_t gai;
	uv_tcp_t tcp;
	uv_connect_t conn;
	uv_timer_t timer;
	bool answered;  /* the probe's outcome is decided */
	bool tcp_open;  /* tcp was initialized (and must be closed) */
	unsigned refs;  /* callbacks still to come: getaddrinfo, connect, handle closes */
};

static void probe_release(struct add_probe *pr)
{
	if (--pr->refs == 0)
		free(pr);
}

static void on_probe_handle_closed(uv_handle_t *h)
{
	probe_release(h->data);
}

static void probe_close_tcp(struct add_probe *pr)
{
	if (pr->tcp_open && !uv_is_closing((uv_handle_t *)&pr->tcp))
		uv_close((uv_handle_t *)&pr->tcp, on_probe_handle_closed);
}

static void on_add_started(struct add_probe *pr)
{
	struct agent *a = pr->a;
	struct change_wait *w;
	struct http_reply reply;
	int rv;

	memset(&reply, 0, sizeof reply);
	if (node_state(&a->node) != NODE_LEADER) {
		http_reply_error(&reply, 409, "add: this node stopped leading while checking %s; retry",
				 pr->m.address);
		http_finish(pr->p, &reply);
		return;
	}
	w = change_wait_start(a, pr->p, CLUSTER_ADD);
	rv = node_add(&a->node, pr->m.id, pr->m.address, on_change_done, w);
	if (rv != 0) {
		http_reply_error(&reply, 409, "add: %s", raft_strerror(rv));
		http_finish(w->p, &reply);
		w->p = NULL;
		w->change_done = true;
		uv_close((uv_handle_t *)&w->timer, on_change_timer_closed);
	}
}

/* Decide once: ok (start the add) or a 4xx naming the address. */
static void probe_answer(struct add_probe *pr, bool ok, const char *why)
{
	struct http_reply reply;

	if (pr->answered)
		return;
	pr->answered = true;
	uv_close((uv_handle_t *)&pr->timer, on_probe_handle_closed);
	if (ok) {
		on_add_started(pr);
		return;
	}
	memset(&reply, 0, sizeof reply);
	http_reply_error(&reply, 422,
			 "add %llu@%s: nothing answers on %s (%s); start the new agent first "
			 "(nothing was changed)",
			 (unsigned long long)pr->m.id, pr->m.address, pr->m.address, why);
	http_finish(pr->p, &reply);
}

static void on_probe_connected(uv_connect_t *c, int status)
{
	struct add_probe *pr = c->data;

	probe_answer(pr, status == 0, status == 0 ? "" : uv_strerror(status));
	probe_close_tcp(pr); /* nothing is sent: the connect was the question */
	probe_release(pr);   /* the connect callback */
}

static void on_probe_resolved(uv_getaddrinfo_t *g, int status, struct addrinfo *res)
{
	struct add_probe *pr = g->data;
	int rv;

	if (pr->answered)
		goto out; /* timed out meanwhile */
	if (status != 0 || res == NULL) {
		probe_answer(pr, false, status != 0 ? uv_strerror(status) : "no address");
		goto out;
	}
	rv = uv_tcp_init(&pr->a->loop, &pr->tcp);
	if (rv != 0) {
		probe_answer(pr, false, uv_strerror(rv));
		goto out;
	}
	pr->tcp.data = pr;
	pr->conn.data = pr;
	pr->tcp_open = true;
	pr->refs++; /* the tcp handle's close */
	rv = uv_tcp_connect(&pr->conn, &pr->tcp, res->ai_addr, on_probe_connected);
	if (rv != 0) {
		probe_answer(pr, false, uv_strerror(rv));
		probe_close_tcp(pr);
		goto out;
	}
	pr->refs++; /* the connect callback */
out:
	if (res)
		uv_freeaddrinfo(res);
	probe_release(pr); /* the getaddrinfo callback */
}

static void on_probe_timeout(uv_timer_t *t)
{
	struct add_probe *pr = t->data;

	probe_answer(pr, false, "no answer within 1 s");
	/* Closing the socket cancels the connect; its callback then finds the
	 * probe answered. */
	probe_close_tcp(pr);
}

/* HOST:PORT or [V6]:PORT into host and port. */
static int split_hostport(const char *addr, char *host, size_t hlen, char *port, size_t plen)
{
	const char *colon = strrchr(addr, ':');
	size_t n;

	if (colon == NULL || colon[1] == '\0')
		return -EINVAL;
	n = (size_t)(colon - addr);
	if (n >= 2 && addr[0] == '[' && addr[n - 1] == ']') {
		addr++;
		n -= 2;
	}
	if (n == 0 || n >= hlen || strlen(colon + 1) >= plen)
		return -EINVAL;
	memcpy(host, addr, n);
	host[n] = '\0';
	snprintf(port, plen, "%s", colon + 1);
	return 0;
}

/* Start the probe; the request is answered from its callbacks. */
static int add_probe_start(struct agent *a, const struct http_request *req,
			   const struct config_member *m, char *errmsg, size_t errlen)
{
	struct add_probe *pr = xcalloc(1, sizeof *pr);
	struct addrinfo hints;
	int rv;

	pr->a = a;
	pr->m = *m;
	if (split_hostport(m->address, pr->host, sizeof pr->host, pr->port, sizeof pr->port) != 0) {
		snprintf(errmsg, errlen, "%s: not HOST:PORT", m->address);
		free(pr);
		return -EINVAL;
	}
	memset(&hints, 0, sizeof hints);
	hints.ai_family = AF_UNSPEC;
	hints.ai_socktype = SOCK_STREAM;
	pr->gai.data = pr;
	rv = uv_getaddrinfo(&a->loop, &pr->gai, on_probe_resolved, pr->host, pr->port, &hints);
	if (rv != 0) {
		snprintf(errmsg, errlen, "%s: %s", m->address, uv_strerror(rv));
		free(pr);
		return -EIO;
	}
	pr->refs = 2; /* getaddrinfo callback + timer close */
	uv_timer_init(&a->loop, &pr->timer);
	pr->timer.data = pr;
	uv_timer_start(&pr->timer, on_probe_timeout, ADD_PROBE_MS, 0);
	pr->p = http_defer(req);
	return 0;
}

/* POST /v1/cluster/{add,remove,transfer,abort} with a JSON body. */
static void handle_cluster(struct agent *a, const struct http_request *req,
			   struct http_reply *reply, enum cluster_op op)
{
	const char *what = cluster_op_name(op);
	int64_t id = 0;
	char member[300];
	struct config_member m;
	struct change_wait *w = NULL;
	char err[512];
	int rv;

	if (strcmp(req->method, "POST") != 0) {
		http_reply_error(reply, 405, "%s %s: use POST", req->method, req->path);
		return;
	}
	if (control_parse_cluster_body(req->body, req->body_len, &id, member, sizeof member, err,
				       sizeof err) != 0) {
		http_reply_error(reply, 400, "bad request body: %s", err);
		return;
	}
	if (redirect_to_leader(a, req, reply))
		goto out;
	if (op == CLUSTER_ADD) {
		if (member[0] == '\0' || config_parse_member(member, &m, err, sizeof err) != 0) {
			http_reply_error(reply, 400, "add: %s", member[0] ? err : "\"member\": \"ID@HOST:PORT\" is required");
			goto out;
		}
		/* Answered from the probe's callbacks: 422 when nothing answers,
		 * else the add's outcome as below. */
		if (add_probe_start(a, req, &m, err, sizeof err) != 0)
			http_reply_error(reply, 400, "add: %s", err);
		goto out;
	} else if (op == CLUSTER_ABORT ||
		   (op == CLUSTER_REMOVE && id > 0 && node_change_adding(&a->node) == (uint64_t)id)) {
		/* Abort the add in progress (removing a server that is still
		 * being promoted is that same abort: it removes the spare). */
		w = change_wait_new(a, req, op);
		rv = node_abort_change(&a->node, on_change_done, w, err, sizeof err);
		if (rv != 0) {
			change_wait_cancel(w, req);
			http_reply_error(reply, 409, "%s: %s", what, err);
		}
		goto out;
	} else if (op == CLUSTER_REMOVE) {
		if (id <= 0) {
			http_reply_error(reply, 400, "remove: \"id\" (a positive integer) is required");
			goto out;
		}
		w = change_wait_new(a, req, op);
		rv = node_remove(&a->node, (uint64_t)id, on_change_done, w);
	} else {
		if (a->transfer_pending) {
			http_reply_error(reply, 409, "a leadership transfer is already in progress");
			goto out;
		}
		if (a->engine)
			engine_follow(a->engine); /* stop exporting before handing over */
		rv = node_transfer(&a->node, (uint64_t)(id < 0 ? 0 : id), on_transfer_done);
		if (rv == 0)
			a->transfer_pending = http_defer(req);
		else if (a->engine && node_leader_ready(&a->node))
			identity_resume(a); /* nothing changed: keep exporting */
	}
	if (rv != 0) { /* not started: answer now */
		if (w != NULL)
			change_wait_cancel(w, req);
		else
			http_undefer(req);
		http_reply_error(reply, 409, "%s: %s", what, raft_strerror(rv));
	}
out:
	return;
}

bool control_token_ok(const char *token, const char *authorization)
{
	const char *p = authorization;
	size_t tlen, plen;
	bool same;

	if (token == NULL || p == NULL || strncasecmp(p, "Bearer", 6) != 0 || (p[6] != ' ' && p[6] != '\t'))
		return false;
	p += 6;
	while (*p == ' ' || *p == '\t')
		p++;
	plen = strlen(p);
	while (plen > 0 && (p[plen - 1] == ' ' || p[plen - 1] == '\t'))
		plen--;
	tlen = strlen(token);
	/* Compare as many bytes either way, so the time says nothing about
	 * where a wrong token differs (only, at most, its length). */
	same = CRYPTO_memcmp(plen == tlen ? p : token, token, tlen) == 0;
	return same && plen == tlen;
}

int control_parse_limit(const char *text, unsigned *out)
{
	unsigned long v = 0;
	const char *p;

	if (text == NULL) {
		*out = CONTROL_LOGS_DEFAULT_LIMIT;
		return 0;
	}
	if (*text == '\0')
		return -EINVAL;
	for (p = text; *p; p++) {
		if (*p < '0' || *p > '9')
			return -EINVAL;
		v = v * 10 + (unsigned long)(*p - '0');
		if (v > CONTROL_LOGS_MAX_LIMIT)
			return -EINVAL;
	}
	if (v == 0)
		return -EINVAL;
	*out = (unsigned)v;
	return 0;
}

int control_parse_cluster_body(const char *body, size_t len, int64_t *id, char *member, size_t member_len,
			       char *errmsg, size_t errlen)
{
	json_error_t jerr;
	json_t *o;
	json_int_t jid = 0;
	const char *m = NULL;
	int rc = 0;

	member[0] = '\0';
	*id = 0;
	o = json_loadb(len ? body : "{}", len ? len : 2, 0, &jerr);
	if (o == NULL || json_unpack_ex(o, &jerr, 0, "{s?I,s?s}", "id", &jid, "member", &m) != 0) {
		snprintf(errmsg, errlen, "%s", jerr.text);
		rc = -EINVAL;
	} else if (m != NULL && strlen(m) >= member_len) {
		snprintf(errmsg, errlen, "\"member\" is too long");
		rc = -EINVAL;
	} else {
		*id = (int64_t)jid;
		if (m != NULL)
			snprintf(member, member_len, "%s", m);
	}
	json_decref(o);
	return rc;
}

/* Mutations are every method but GET (all are POSTs under /v1/). */
static bool authorized(struct agent *a, const struct http_request *req, struct http_reply *reply)
{
	if (strcmp(req->method, "GET") == 0 || strcmp(req->method, "HEAD") == 0)
		return true;
	if (a->cfg.control.token == NULL) /* loopback only: warned at start */
		return true;
	if (control_token_ok(a->cfg.control.token, req->authorization))
		return true;
	http_reply_error(reply, 401, "%s %s needs \"Authorization: Bearer <token>\" with the token of "
				     "control.token_file (canopyctl --token-file FILE)",
			 req->method, req->path);
	reply->www_authenticate = "Bearer realm=\"canopy\"";
	return false;
}

void control_handle(void *data, const struct http_request *req, struct http_reply *reply)
{
	struct agent *a = data;
	enum cluster_op op;

	a->http_requests++;
	if (!authorized(a, req, reply))
		return;
	if (strcmp(req->path, "/v1/status") == 0) {
		if (strcmp(req->method, "GET") != 0) {
			http_reply_error(reply, 405, "%s %s: use GET", req->method, req->path);
			return;
		}
		control_reply_json(reply, 200, status_json(a));
		return;
	}
	if (strcmp(req->path, "/v1/members") == 0 && strcmp(req->method, "GET") == 0) {
		handle_members(a, reply);
		return;
	}
	if (www_handle(req, reply))
		return;
	if (strcmp(req->path, "/v1/leader/watch") == 0) {
		if (strcmp(req->method, "GET") != 0) {
			http_reply_error(reply, 405, "%s %s: use GET", req->method, req->path);
			return;
		}
		leader_watch_handle(a, req, reply);
		return;
	}
	if (strcmp(req->path, "/metrics") == 0) {
		reply->body = metrics_text(a, &reply->body_len);
		reply->status = 200;
		reply->content_type = "text/plain; version=0.0.4";
		return;
	}
	if (control_config_handle(a, req, reply))
		return;
	if (control_sync_handle(a, req, reply))
		return;
	if (control_drill_handle(a, req, reply))
		return;
	if (strcmp(req->path, "/v1/deletes/approve") == 0) {
		handle_deletes(a, req, reply, true);
		return;
	}
	if (strcmp(req->path, "/v1/deletes/reject") == 0) {
		handle_deletes(a, req, reply, false);
		return;
	}
	if (strncmp(req->path, "/v1/cluster/", 12) == 0 && cluster_op_parse(req->path + 12, &op)) {
		handle_cluster(a, req, reply, op);
		return;
	}
	if (strcmp(req->path, "/v1/health/report") == 0 && a->health) {
		health_handle_report(a->health, req, reply);
		return;
	}
	if (strcmp(req->path, "/v1/logs") == 0 && strcmp(req->method, "GET") == 0) {
		handle_logs(a, req, reply);
		return;
	}
	http_reply_error(reply, 404, "no such endpoint: %s %s", req->method, req->path);
}
