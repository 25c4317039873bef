/*
 * agent/member_watch.c -- notice removal from the cluster (see member_watch.h).
 */
#include "agent/member_watch.h"

#include <curl/curl.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "agent/agent.h"
#include "agent/http_body.h"
#include "agent/log.h"
#include "common/xalloc.h"


/* One GET /v1/status; returns the parsed object or NULL. Worker thread. */
static json_t *get_status(const char *addr)
{
	char url[300];
	struct http_body b = {NULL, 0, 1 << 20, false}; /* a status is small; anything else is not ours */
	CURL *c = xcheck(curl_easy_init()); /* fails only for lack of memory */
	long code = 0;
	json_t *o = NULL;

	snprintf(url, sizeof url, "http://%s/v1/status", addr);
	curl_easy_setopt(c, CURLOPT_URL, url);
	curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, http_body_write);
	curl_easy_setopt(c, CURLOPT_WRITEDATA, &b);
	curl_easy_setopt(c, CURLOPT_CONNECTTIMEOUT_MS, 1000L);
	curl_easy_setopt(c, CURLOPT_TIMEOUT_MS, 2000L);
	curl_easy_setopt(c, CURLOPT_NOSIGNAL, 1L);
	if (curl_easy_perform(c) == CURLE_OK &&
	    curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &code) == CURLE_OK && code == 200 && b.p)
		o = json_loads(b.p, 0, NULL);
	curl_easy_cleanup(c);
	free(b.p);
	return o;
}

/* Worker thread: ask each known node; the first ready leader decides. */
static void ask(uv_work_t *w)
{
	struct agent *a = w->data;
	struct member_watch *m = &a->member_watch;
	unsigned i;
	size_t k;
	json_t *st, *mem;
	const char *role;

	m->verdict = 0;
	for (i = 0; i < m->n_addr && m->verdict == 0; i++) {
		st = get_status(m->addr[i]);
		if (st == NULL)
			continue;
		/* A ready leader, or a follower of a known leader: a view of the
		 * configuration the cluster is working with. */
		role = json_string_value(json_object_get(st, "role"));
		if (role &&
		    ((strcmp(role, node_state_name(NODE_LEADER)) == 0 && json_is_true(json_object_get(st, "leader_ready"))) ||
		     (strcmp(role, node_state_name(NODE_FOLLOWER)) == 0 &&
		      json_integer_value(json_object_get(json_object_get(st, "leader"), "id")) != 0))) {
			m->verdict = -1;
			json_array_foreach(json_object_get(st, "members"), k, mem)
			{
				if ((uint64_t)json_integer_value(json_object_get(mem, "id")) == m->self)
					m->verdict = 1;
			}
			m->leader_id = (uint64_t)json_integer_value(json_object_get(st, "node_id"));
			snprintf(m->leader_addr, sizeof m->leader_addr, "%s", m->addr[i]);
		}
		json_decref(st);
	}
}

static void removed(struct agent *a, const char *how)
{
	log_warn("this node is no longer a member of the cluster; stopping", "node=%llu how=%s",
		 (unsigned long long)a->cfg.node.id, how);
	agent_shutdown(a, 0, NULL);
}

static bool still_leaderless(struct agent *a)
{
	return node_state(&a->node) != NODE_LEADER &&
	       node_leaderless_ms(&a->node) >=
		       (raft_time)MEMBER_WATCH_LEADERLESS * a->cfg.cluster.election_timeout_ms;
}

static void on_asked(uv_work_t *w, int status)
{
	struct agent *a = w->data;
	struct member_watch *m = &a->member_watch;
	char how[400];

	m->asking = false;
	if (status != 0 || a->stopping || m->verdict >= 0)
		return;
	/* Only while this node still hears from no leader: a leader that
	 * answered before a new configuration reached it must not count. */
	if (!still_leaderless(a) || node_membership(&a->node) != 1)
		return;
	snprintf(how, sizeof how, "node-%llu-at-%s-does-not-list-it",
		 (unsigned long long)m->leader_id, m->leader_addr);
	removed(a, how);
}

/* The control addresses of the other members this node knows of (published
 * as "n:<id>" by each node that led; looked up by id, not by a table scan). */
static void collect(struct agent *a, struct member_watch *m)
{
	struct node_status st;
	char key[32];
	const void *v;
	size_t vlen, klen;
	unsigned i;

	node_status(&a->node, &st);
	for (i = 0; i < st.n_members && m->n_addr < MEMBER_WATCH_MAX_ASK; i++) {
		if (st.members[i].id == m->self)
			continue;
		klen = (size_t)snprintf(key, sizeof key, "n:%llu", (unsigned long long)st.members[i].id);
		if (!state_get(&a->state, key, klen, &v, &vlen) || vlen == 0 || vlen >= sizeof m->addr[0])
			continue;
		memcpy(m->addr[m->n_addr], v, vlen);
		m->addr[m->n_addr][vlen] = '\0';
		m->n_addr++;
	}
}

static void on_tick(uv_timer_t *t)
{
	struct agent *a = t->data;
	struct member_watch *m = &a->member_watch;
	raft_time now = node_now(&a->node);
	int membership;

	if (a->stopping || m->asking || node_state(&a->node) == NODE_LEADER)
		return;
	membership = node_membership(&a->node);
	if (membership < 0) {
		removed(a, "applied-a-configuration-without-it");
		return;
	}
	if (membership == 0 || !still_leaderless(a) ||
	    now - m->last_ask < a->cfg.cluster.election_timeout_ms)
		return;
	m->last_ask = now;
	m->self = a->cfg.node.id;
	m->n_addr = 0;
	collect(a, m);
	if (m->n_addr == 0)
		return; /* knows no control address: cannot ask anyone */
	m->asking = true;
	m->work.data = a;
	if (uv_queue_work(&a->loop, &m->work, ask, on_asked) != 0)
		m->asking = false;
}

void member_watch_start(struct agent *a)
{
	struct member_watch *m = &a->member_watch;
	unsigned every = a->cfg.cluster.election_timeout_ms / 2;

	curl_global_init(CURL_GLOBAL_DEFAULT); /* before any worker thread uses libcurl */
	uv_timer_init(&a->loop, &m->timer);
	m->timer.data = a;
	uv_timer_start(&m->timer, on_tick, every, every);
}

void member_watch_close(struct agent *a)
{
	uv_close((uv_handle_t *)&a->member_watch.timer, NULL);
}
