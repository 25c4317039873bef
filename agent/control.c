/*
 * agent/control.c -- the control API: GET /v1/status, GET /metrics.
 *
 * Answered by every node, leader or not, from its own view (DESIGN.md,
 * "Contracts"). Field names are a contract with canopyctl and with
 * end-to-end checks: extend, never rename.
 */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <jansson.h>

#include "agent/agent.h"

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

static json_t *time_or_null(time_t t)
{
	char buf[32];
	struct tm tm;
	if (t == 0)
		return json_null();
	gmtime_r(&t, &tm);
	strftime(buf, sizeof buf, "%Y-%m-%dT%H:%M:%SZ", &tm);
	return json_string(buf);
}

/* The cursor is opaque bytes; RFC 4533 cookies are printable text, so show
 * them as is, and anything else as hex. */
static json_t *cursor_json(const struct state *s)
{
	const unsigned char *c = s->cursor;
	size_t i;
	char *hex;
	json_t *j;

	if (c == NULL)
		return json_null();
	for (i = 0; i < s->cursor_len; i++)
		if (c[i] < 0x20 || c[i] >= 0x7f)
			break;
	if (i == s->cursor_len)
		return json_stringn((const char *)c, s->cursor_len);
	hex = malloc(s->cursor_len * 2 + 5);
	if (hex == NULL)
		return json_null();
	strcpy(hex, "hex:");
	for (i = 0; i < s->cursor_len; i++)
		sprintf(hex + 4 + 2 * i, "%02x", c[i]);
	j = json_string(hex);
	free(hex);
	return j;
}

static json_t *status_json(struct agent *a)
{
	struct node_status st;
	json_t *o, *members, *leader;
	char digest[17];
	unsigned i;

	node_status(&a->node, &st);
	members = json_array();
	for (i = 0; i < st.n_members; i++) {
		const struct node_member_status *m = &st.members[i];
		json_t *jm = json_pack("{s:I,s:s,s:s}", "id", (json_int_t)m->id, "address",
				       m->address, "role", role_name(m->role));
		json_object_set_new(jm, "reachable",
				    m->reachable < 0 ? json_null() : json_boolean(m->reachable));
		if (st.state[0] == 'l' && m->id != a->cfg.node.id)
			json_object_set_new(jm, "match_index", json_integer((json_int_t)m->match_index));
		json_array_append_new(members, jm);
	}
	if (st.leader_id != 0)
		leader = json_pack("{s:I,s:s}", "id", (json_int_t)st.leader_id, "address",
				   st.leader_address);
	else
		leader = json_pack("{s:n,s:n}", "id", "address");
	snprintf(digest, sizeof digest, "%016llx", (unsigned long long)state_digest(&a->state));

	o = json_pack("{s:I,s:s,s:s,s:I,s:o,s:I,s:I,s:I,s:o,s:b,s:I}",
		      "node_id", (json_int_t)a->cfg.node.id,
		      "cluster", a->cfg.cluster.name,
		      "role", st.state,
		      "term", (json_int_t)st.term,
		      "leader", leader,
		      "commit_index", (json_int_t)st.commit_index,
		      "applied_index", (json_int_t)st.applied_index,
		      "last_index", (json_int_t)st.last_index,
		      "members", members,
		      "leader_ready", st.ready,
		      "uptime_seconds", (json_int_t)(time(NULL) - a->started_wall));
	json_object_set_new(o, "sync",
			    json_pack("{s:s,s:o,s:I,s:I,s:o,s:I}",
				      "state", a->sync.state ? a->sync.state : "disabled",
				      "cursor", cursor_json(&a->state),
				      "exported_total", (json_int_t)a->sync.exported_total,
				      "errors_total", (json_int_t)a->sync.errors_total,
				      "last_export_at", time_or_null(a->sync.last_export_at),
				      "pending_deletes", (json_int_t)a->sync.pending_deletes));
	json_object_set_new(o, "state",
			    json_pack("{s:I,s:s}", "objects", (json_int_t)a->state.count,
				      "digest", digest));
	return o;
}

/* Append printf output to a growing buffer. */
struct text {
	char *buf;
	size_t len, cap;
};

static void put(struct text *t, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void put(struct text *t, const char *fmt, ...)
{
	va_list ap;
	int n;

	for (;;) {
		if (t->buf) {
			va_start(ap, fmt);
			n = vsnprintf(t->buf + t->len, t->cap - t->len, fmt, ap);
			va_end(ap);
			if (n >= 0 && (size_t)n < t->cap - t->len) {
				t->len += (size_t)n;
				return;
			}
		}
		t->cap = t->cap ? t->cap * 2 : 4096;
		char *b = realloc(t->buf, t->cap);
		if (b == NULL)
			return;
		t->buf = b;
	}
}

static void metric(struct text *t, const char *name, const char *type, const char *help,
		   unsigned long long v)
{
	put(t, "# HELP %s %s\n# TYPE %s %s\n%s %llu\n", name, help, name, type, name, v);
}

static char *metrics_text(struct agent *a, size_t *len)
{
	struct node_status st;
	struct text t = {0};
	static const char *const roles[] = {"leader", "follower", "candidate", "unavailable"};
	unsigned i;

	node_status(&a->node, &st);
	put(&t, "# HELP canopy_role 1 for the role this node has now.\n# TYPE canopy_role gauge\n");
	for (i = 0; i < 4; i++)
		put(&t, "canopy_role{role=\"%s\"} %d\n", roles[i], strcmp(st.state, roles[i]) == 0);
	metric(&t, "canopy_term", "gauge", "Current Raft term.", st.term);
	metric(&t, "canopy_commit_index", "gauge", "Highest log index known committed.",
	       st.commit_index);
	metric(&t, "canopy_applied_index", "gauge", "Highest log index applied to the state.",
	       st.applied_index);
	metric(&t, "canopy_leader_ready", "gauge",
	       "1 when this node is leader and its post-election barrier committed.", st.ready);
	metric(&t, "canopy_uptime_seconds", "counter", "Seconds since the agent started.",
	       (unsigned long long)(time(NULL) - a->started_wall));
	metric(&t, "canopy_elections_total", "counter", "Times this node became candidate.",
	       a->node.elections);
	metric(&t, "canopy_leader_changes_total", "counter", "Times the known leader changed.",
	       a->node.leader_changes);
	metric(&t, "canopy_became_leader_total", "counter",
	       "Times this node became leader (barrier committed).", a->node.leader.became_leader);
	metric(&t, "canopy_barrier_latency_ms", "gauge",
	       "Latency of the latest post-election barrier.", a->node.leader.last_barrier_ms);
	metric(&t, "canopy_fsm_applied_total", "counter", "Entries applied to the state machine.",
	       a->node.fsm.stats.applied);
	metric(&t, "canopy_fsm_refused_total", "counter",
	       "Entries refused (unknown version or malformed).", a->node.fsm.stats.refused);
	metric(&t, "canopy_objects", "gauge", "Objects in the replicated object table.",
	       a->state.count);
	metric(&t, "canopy_exported_total", "counter", "Target writes acknowledged.",
	       a->sync.exported_total);
	metric(&t, "canopy_errors_total", "counter", "Target operations that failed.",
	       a->sync.errors_total);
	metric(&t, "canopy_pending_deletes", "gauge", "Deletes staged awaiting approval.",
	       a->sync.pending_deletes);
	metric(&t, "canopy_control_requests_total", "counter", "Control API requests served.",
	       a->http_requests);
	*len = t.len;
	return t.buf;
}

void control_handle(void *data, const struct http_request *req, struct http_reply *reply)
{
	struct agent *a = data;
	json_t *o;

	a->http_requests++;
	if (strcmp(req->path, "/v1/status") == 0) {
		if (strcmp(req->method, "GET") != 0) {
			http_reply_error(reply, 405, "%s %s: use GET", req->method, req->path);
			return;
		}
		o = status_json(a);
		reply->body = json_dumps(o, JSON_COMPACT);
		json_decref(o);
		reply->status = 200;
		reply->content_type = "application/json";
		reply->body_len = reply->body ? strlen(reply->body) : 0;
		return;
	}
	if (strcmp(req->path, "/metrics") == 0) {
		reply->body = metrics_text(a, &reply->body_len);
		reply->status = 200;
		reply->content_type = "text/plain; version=0.0.4";
		return;
	}
	http_reply_error(reply, 404, "no such endpoint: %s %s", req->method, req->path);
}
