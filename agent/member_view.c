/* agent/member_view.c -- a follower's copy of the leader's member view (see member_view.h). */
#include "agent/member_view.h"

#include <curl/curl.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "agent/agent.h"
#include "agent/http_body.h"
#include "common/xalloc.h"

/* One fetch on a worker. */
struct fetch {
	uv_work_t req;
	struct member_view *v;
	char url[320];
	long timeout_ms;
	long status; /* HTTP status; 0 when no answer */
	char *body;
};

struct member_view {
	struct agent *a;
	uv_timer_t tick;
	bool stopping, tick_closed;
	struct fetch *fetch; /* in flight, or NULL */
	/* the latest view taken */
	json_t *members;
	uint64_t leader, term;
	uint64_t at_ms; /* loop time it arrived */
};

static void set(json_t *o, const char *key, json_t *v)
{
	if (json_object_set_new(o, key, v) != 0)
		xoom("json_object_set_new");
}

int member_view_parse(const char *body, size_t len, uint64_t *leader, uint64_t *term, json_t **members,
		      json_t **health, char *errmsg, size_t errlen)
{
	json_error_t jerr;
	json_t *o, *m, *e;
	json_int_t l = 0, t = 0;
	size_t i;

	*members = NULL;
	if (health != NULL)
		*health = NULL;
	if (len > MEMBER_VIEW_MAX_BYTES) {
		snprintf(errmsg, errlen, "member view: %zu bytes, more than %d", len, MEMBER_VIEW_MAX_BYTES);
		return -EPROTO;
	}
	o = json_loadb(body, len, 0, &jerr);
	if (o == NULL) {
		snprintf(errmsg, errlen, "member view is not JSON: %s", jerr.text);
		return -EPROTO;
	}
	if (json_unpack_ex(o, &jerr, 0, "{s:I,s:I,s:o}", "leader", &l, "term", &t, "members", &m) != 0 ||
	    l <= 0 || t < 0 || !json_is_array(m) || json_array_size(m) > NODE_MAX_MEMBERS) {
		snprintf(errmsg, errlen, "member view: not {\"leader\", \"term\", \"members\": [...]}");
		json_decref(o);
		return -EPROTO;
	}
	json_array_foreach(m, i, e)
	{
		if (!json_is_object(e) || !json_is_integer(json_object_get(e, "id")) ||
		    json_integer_value(json_object_get(e, "id")) <= 0) {
			snprintf(errmsg, errlen, "member view: member %zu has no id", i);
			json_decref(o);
			return -EPROTO;
		}
	}
	*leader = (uint64_t)l;
	*term = (uint64_t)t;
	*members = json_incref(m);
	if (health != NULL && json_is_object(json_object_get(o, "health")))
		*health = json_incref(json_object_get(o, "health"));
	json_decref(o);
	return 0;
}

/* ------------------------------------------------------------------ worker */

static void fetch_run(uv_work_t *req)
{
	struct fetch *f = req->data;
	struct http_body b = {NULL, 0, MEMBER_VIEW_MAX_BYTES, false};
	CURL *c = xcheck(curl_easy_init());

	curl_easy_setopt(c, CURLOPT_URL, f->url);
	curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, http_body_write);
	curl_easy_setopt(c, CURLOPT_WRITEDATA, &b);
	curl_easy_setopt(c, CURLOPT_NOSIGNAL, 1L);
	curl_easy_setopt(c, CURLOPT_CONNECTTIMEOUT_MS, f->timeout_ms);
	curl_easy_setopt(c, CURLOPT_TIMEOUT_MS, f->timeout_ms);
	if (curl_easy_perform(c) == CURLE_OK) {
		curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &f->status);
		f->body = b.p;
		b.p = NULL;
	}
	free(b.p);
	curl_easy_cleanup(c);
}

/* --------------------------------------------------------------- loop side */

static void maybe_free(struct member_view *v)
{
	if (!v->stopping || !v->tick_closed || v->fetch != NULL)
		return;
	json_decref(v->members);
	free(v);
	curl_global_cleanup();
}

static void fetch_done(uv_work_t *req, int status)
{
	struct fetch *f = req->data;
	struct member_view *v = f->v;
	uint64_t leader, term;
	json_t *members, *health;
	char err[256];

	v->fetch = NULL;
	if (!v->stopping && status == 0 && f->status == 200 && f->body != NULL &&
	    member_view_parse(f->body, strlen(f->body), &leader, &term, &members, &health, err,
			      sizeof err) == 0) {
		json_decref(v->members);
		v->members = members;
		v->leader = leader;
		v->term = term;
		v->at_ms = uv_now(&v->a->loop);
		if (health != NULL && v->a->health != NULL)
			health_leader_seen(v->a->health, leader, term, health);
		json_decref(health);
	}
	free(f->body);
	free(f);
	maybe_free(v);
}

/* The leader's control address from the replicated "n:<id>" record. */
static bool leader_address(struct agent *a, uint64_t id, char *out, size_t len)
{
	char key[32];
	const void *val;
	size_t vlen, klen = (size_t)snprintf(key, sizeof key, "n:%llu", (unsigned long long)id);

	if (!state_get(&a->state, key, klen, &val, &vlen) || vlen == 0 || vlen >= len)
		return false;
	memcpy(out, val, vlen);
	out[vlen] = '\0';
	return true;
}

static void on_tick(uv_timer_t *t)
{
	struct member_view *v = t->data;
	struct agent *a = v->a;
	struct node_status st;
	struct fetch *f;
	char addr[256];
	int rv;

	if (v->stopping || v->fetch != NULL)
		return;
	node_status(&a->node, &st);
	if (st.state != NODE_FOLLOWER || st.leader_id == 0 || st.leader_id == a->cfg.node.id ||
	    !leader_address(a, st.leader_id, addr, sizeof addr))
		return;
	f = xcalloc(1, sizeof *f);
	f->v = v;
	snprintf(f->url, sizeof f->url, "http://%s/v1/members", addr);
	/* never longer than the view stays fresh */
	f->timeout_ms = (long)node_unreachable_after_ms(&a->node);
	f->req.data = f;
	rv = uv_queue_work(&a->loop, &f->req, fetch_run, fetch_done);
	if (rv != 0) {
		free(f);
		return;
	}
	v->fetch = f;
}

int member_view_start(struct member_view **out, struct agent *a, char *errmsg, size_t errlen)
{
	struct member_view *v;
	int rv;

	if (curl_global_init(CURL_GLOBAL_DEFAULT) != CURLE_OK) {
		snprintf(errmsg, errlen, "member view: cannot initialise libcurl");
		return -EIO;
	}
	v = xcalloc(1, sizeof *v);
	v->a = a;
	rv = uv_timer_init(&a->loop, &v->tick);
	if (rv != 0) {
		snprintf(errmsg, errlen, "member view: timer: %s", uv_strerror(rv));
		goto err_after_alloc;
	}
	v->tick.data = v;
	uv_timer_start(&v->tick, on_tick, MEMBER_VIEW_PERIOD_MS, MEMBER_VIEW_PERIOD_MS);
	*out = v;
	return 0;

err_after_alloc:
	free(v);
	curl_global_cleanup();
	return rv;
}

static void on_tick_closed(uv_handle_t *h)
{
	struct member_view *v = h->data;

	v->tick_closed = true;
	maybe_free(v);
}

void member_view_stop(struct member_view *v)
{
	if (v == NULL || v->stopping)
		return;
	v->stopping = true;
	uv_close((uv_handle_t *)&v->tick, on_tick_closed);
}

void member_view_apply(struct member_view *v, const struct node_status *st, const struct node_member_status *m,
		       json_t *jm)
{
	static const char *const copied[] = {"match_index", "lag", "health"};
	uint64_t age;
	json_t *e = NULL, *x, *lc;
	size_t i;

	if (v == NULL || v->members == NULL || st->leader_id == 0 || v->leader != st->leader_id)
		return;
	age = uv_now(&v->a->loop) - v->at_ms;
	if (age > node_unreachable_after_ms(&v->a->node))
		return; /* stale: what this node knows itself stands */
	json_array_foreach(v->members, i, x)
	{
		if ((uint64_t)json_integer_value(json_object_get(x, "id")) == m->id)
			e = x;
	}
	if (e == NULL)
		return;
	if (m->id == st->leader_id) {
		/* this node hears the leader itself: only its health is the leader's word */
		x = json_object_get(e, "health");
		if (json_is_object(x))
			set(jm, "health", xcheck(json_deep_copy(x)));
		return;
	}
	x = json_object_get(e, "reachable");
	if (json_is_boolean(x))
		set(jm, "reachable", json_incref(x));
	lc = json_object_get(e, "last_contact_ms");
	if (json_is_integer(lc) && json_integer_value(lc) >= 0)
		set(jm, "last_contact_ms", xcheck(json_integer(json_integer_value(lc) + (json_int_t)age)));
	for (i = 0; i < sizeof copied / sizeof copied[0]; i++) {
		x = json_object_get(e, copied[i]);
		if (x != NULL && (json_is_integer(x) || json_is_object(x)))
			set(jm, copied[i], xcheck(json_deep_copy(x)));
	}
	set(jm, "view", xcheck(json_string("leader")));
	set(jm, "view_age_ms", xcheck(json_integer((json_int_t)age)));
}
