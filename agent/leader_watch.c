/*
 * agent/leader_watch.c -- see leader_watch.h.
 */
#include "agent/leader_watch.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "agent/agent.h"
#include "agent/log.h"
#include "common/xalloc.h"
#include "raft/node.h"

/* One watch connection; freed when its handle is closed. */
struct lw_conn {
	uv_tcp_t tcp;
	uv_connect_t connect;
	uv_write_t write;
	struct leader_watch *w; /* NULL once detached (closing) */
	uint64_t leader_id, term;
	char req[128];
	char rbuf[64];
	size_t rlen;
	bool after_drop;        /* reconnecting after this leader's watch dropped */
};

static unsigned raft_timeout(struct leader_watch *w)
{
	return node_raft_timeout_ms(w->a->cfg.cluster.election_timeout_ms);
}

static void on_conn_closed(uv_handle_t *h)
{
	free(h->data);
}

static void conn_close(struct leader_watch *w)
{
	struct lw_conn *c = w->conn;
	if (c == NULL)
		return;
	w->conn = NULL;
	c->w = NULL;
	uv_close((uv_handle_t *)&c->tcp, on_conn_closed);
}

/* The leader `c` watched is gone (refused) or says it no longer leads. */
static void early_election(struct leader_watch *w, struct lw_conn *c, const char *why)
{
	struct agent *a = w->a;
	unsigned stagger;
	uint64_t now = node_now(&a->node);
	int rv;

	if (node_state(&a->node) != NODE_FOLLOWER || node_leader_id(&a->node) != c->leader_id ||
	    node_term(&a->node) != c->term || !node_is_voter(&a->node))
		return;
	if (w->fired_leader == c->leader_id && w->fired_term == c->term)
		return; /* one early election per leader and term: no flapping */
	w->fired_leader = c->leader_id;
	w->fired_term = c->term;
	stagger = (unsigned)(rand() % (int)(raft_timeout(w) / 10 + 1));
	rv = node_early_election(&a->node, stagger);
	if (rv == -EAGAIN)
		return;
	w->early_elections++;
	w->last_detect_ms = w->dropped_at ? now - w->dropped_at + stagger : stagger;
	w->last_at = now;
	log_info("leader is gone: early election", "leader=%llu term=%llu cause=%s stagger_ms=%u drop_ms=%llu",
		 (unsigned long long)c->leader_id, (unsigned long long)c->term, why, stagger,
		 (unsigned long long)(w->dropped_at ? now - w->dropped_at : 0));
}

static void reconnect(struct leader_watch *w, uint64_t leader_id, uint64_t term, bool after_drop);

static void on_alloc(uv_handle_t *h, size_t suggested, uv_buf_t *buf)
{
	struct lw_conn *c = h->data;
	(void)suggested;
	if (c->rlen >= sizeof c->rbuf - 1)
		c->rlen = 0; /* only the status line matters */
	*buf = uv_buf_init(c->rbuf + c->rlen, (unsigned)(sizeof c->rbuf - 1 - c->rlen));
}

static void on_read(uv_stream_t *s, ssize_t nread, const uv_buf_t *buf)
{
	struct lw_conn *c = s->data;
	struct leader_watch *w = c->w;
	uint64_t id = c->leader_id, term = c->term;
	(void)buf;

	if (w == NULL || nread == 0)
		return;
	if (nread > 0) {
		c->rlen += (size_t)nread;
		c->rbuf[c->rlen] = '\0';
		if (c->rlen < 12)
			return;
		if (strncmp(c->rbuf, "HTTP/1.1 409", 12) == 0 || strncmp(c->rbuf, "HTTP/1.0 409", 12) == 0) {
			early_election(w, c, "leader_says_not_leading");
			conn_close(w);
		} else {
			/* 503 (stopping, or too many watches) or an agent without
			 * this endpoint: never a reason to elect early */
			conn_close(w);
			w->retry_at = node_now(&w->a->node) + raft_timeout(w) / 4;
		}
		return;
	}
	/* EOF or reset: the leader may be gone -- or only this connection.
	 * Do not act on it; ask again at once (leader_watch.h). */
	w->drops_seen++;
	if (w->dropped_at == 0)
		w->dropped_at = node_now(&w->a->node);
	conn_close(w);
	reconnect(w, id, term, true);
}

static void on_written(uv_write_t *req, int status)
{
	(void)req;
	(void)status; /* a failed write shows up as a read error or EOF */
}

static void on_connect(uv_connect_t *req, int status)
{
	struct lw_conn *c = req->data;
	struct leader_watch *w = c->w;
	uv_buf_t b;

	if (w == NULL)
		return;
	if (status == UV_ECONNREFUSED) {
		/* Nothing listens at the leader's control address: its process
		 * is gone (a leader stops writing before closing it). */
		early_election(w, c, "connection_refused");
		conn_close(w);
		w->retry_at = node_now(&w->a->node) + raft_timeout(w) / 4;
		return;
	}
	if (status != 0) { /* timeout, unreachable: a silent failure keeps the timeout */
		conn_close(w);
		w->retry_at = node_now(&w->a->node) + raft_timeout(w) / 4;
		return;
	}
	if (c->after_drop) {
		w->drops_alive++;
		w->dropped_at = 0;
	}
	b = uv_buf_init(c->req, (unsigned)strlen(c->req));
	c->write.data = c;
	if (uv_write(&c->write, (uv_stream_t *)&c->tcp, &b, 1, on_written) != 0 ||
	    uv_read_start((uv_stream_t *)&c->tcp, on_alloc, on_read) != 0) {
		conn_close(w);
		w->retry_at = node_now(&w->a->node) + raft_timeout(w) / 4;
	}
}

/* "HOST:PORT" or "[V6]:PORT", numeric (control addresses are). */
static int parse_addr(const char *s, size_t len, struct sockaddr_storage *ss)
{
	char host[128];
	const char *colon;
	size_t hl;
	int port;

	if (len == 0 || len >= 200)
		return -EINVAL;
	colon = NULL;
	for (size_t i = len; i > 0; i--)
		if (s[i - 1] == ':') {
			colon = s + i - 1;
			break;
		}
	if (colon == NULL)
		return -EINVAL;
	port = atoi(colon + 1);
	if (s[0] == '[') {
		hl = (size_t)(colon - s);
		if (hl < 2 || s[hl - 1] != ']' || hl - 2 >= sizeof host)
			return -EINVAL;
		memcpy(host, s + 1, hl - 2);
		host[hl - 2] = '\0';
		return uv_ip6_addr(host, port, (struct sockaddr_in6 *)ss) == 0 ? 0 : -EINVAL;
	}
	hl = (size_t)(colon - s);
	if (hl >= sizeof host)
		return -EINVAL;
	memcpy(host, s, hl);
	host[hl] = '\0';
	return uv_ip4_addr(host, port, (struct sockaddr_in *)ss) == 0 ? 0 : -EINVAL;
}

static void reconnect(struct leader_watch *w, uint64_t leader_id, uint64_t term, bool after_drop)
{
	struct agent *a = w->a;
	struct sockaddr_storage ss;
	struct lw_conn *c;
	char key[32];
	const void *v;
	size_t vlen, klen;

	klen = (size_t)snprintf(key, sizeof key, "n:%llu", (unsigned long long)leader_id);
	char addr[256];

	if (!state_get(&a->state, key, klen, &v, &vlen) || vlen >= sizeof addr)
		return; /* not published yet: the next tick tries again */
	memcpy(addr, v, vlen);
	addr[vlen] = '\0';
	if (parse_addr(addr, vlen, &ss) != 0)
		return;
	c = xcalloc(1, sizeof *c);
	c->w = w;
	c->leader_id = leader_id;
	c->term = term;
	c->after_drop = after_drop;
	snprintf(c->req, sizeof c->req,
		 "GET /v1/leader/watch?from=%llu HTTP/1.1\r\nHost: canopy\r\n\r\n",
		 (unsigned long long)a->cfg.node.id);
	uv_tcp_init(&a->loop, &c->tcp);
	c->tcp.data = c;
	uv_tcp_nodelay(&c->tcp, 1);
	c->connect.data = c;
	w->conn = c;
	if (uv_tcp_connect(&c->connect, &c->tcp, (struct sockaddr *)&ss, on_connect) != 0) {
		conn_close(w);
		w->retry_at = node_now(&a->node) + raft_timeout(w) / 4;
	}
}

static void answer_all(struct leader_watch *w, unsigned status, const char *msg)
{
	while (w->n_watches > 0) {
		struct http_reply r;
		memset(&r, 0, sizeof r);
		http_reply_error(&r, status, "%s", msg);
		http_finish(w->watches[--w->n_watches], &r);
	}
}

static void on_tick(uv_timer_t *t)
{
	struct leader_watch *w = t->data;
	struct agent *a = w->a;
	enum node_state state;
	uint64_t id;

	if (a->stopping)
		return;
	state = node_state(&a->node);

	/* Leader side: 409 to every watch once this node no longer leads --
	 * or plays dead in a crash drill (agent/control_drill.c), so that its
	 * followers see what a crash shows them; a watch its follower closed
	 * suspends the lease (leader_watch.h). */
	if (state != NODE_LEADER || node_isolated(&a->node)) {
		answer_all(w, 409, "this node no longer leads");
	} else {
		for (unsigned i = 0; i < w->n_watches;) {
			if (http_pending_peer_closed(w->watches[i])) {
				struct http_reply rep;
				memset(&rep, 0, sizeof rep);
				http_reply_error(&rep, 503, "closed");
				http_finish(w->watches[i], &rep);
				w->watches[i] = w->watches[--w->n_watches];
				if (node_lease_suspend(&a->node))
					w->suspensions++;
			} else {
				i++;
			}
		}
	}

	/* Follower side: watch the leader raft knows -- where enabled
	 * (cluster.early_election, on by default with pre-vote; see
	 * leader_watch.h and docs/architecture.md, "Failover bound"). */
	if (!w->follow)
		return;
	id = node_leader_id(&a->node);
	if (state != NODE_FOLLOWER || id == 0 || id == a->cfg.node.id || !node_is_voter(&a->node)) {
		if (state != NODE_FOLLOWER || id != 0)
			conn_close(w);
		return;
	}
	if (w->conn != NULL && w->conn->leader_id == id) {
		w->conn->term = node_term(&a->node);
		return;
	}
	conn_close(w);
	w->dropped_at = 0;
	if (node_now(&a->node) < w->retry_at)
		return;
	reconnect(w, id, node_term(&a->node), false);
}

void leader_watch_start(struct agent *a)
{
	struct leader_watch *w = &a->leader_watch;
	unsigned every = node_raft_timeout_ms(a->cfg.cluster.election_timeout_ms) / 10;

	memset(w, 0, sizeof *w);
	w->a = a;
	/* cluster.early_election (default on); needs pre-vote, which keeps a
	 * flapping leader's followers from bumping terms. */
	w->follow = a->cfg.cluster.early_election && a->cfg.cluster.pre_vote;
	srand((unsigned)(a->cfg.node.id * 2654435761u) ^ (unsigned)uv_hrtime());
	uv_timer_init(&a->loop, &w->timer);
	w->timer.data = w;
	uv_timer_start(&w->timer, on_tick, 0, every ? every : 1);
	w->started = true;
}

void leader_watch_close(struct agent *a)
{
	struct leader_watch *w = &a->leader_watch;
	if (!w->started)
		return;
	w->started = false;
	conn_close(w);
	answer_all(w, 409, "stopping"); /* detached by http_close: only frees */
	uv_close((uv_handle_t *)&w->timer, NULL);
}

void leader_watch_handle(struct agent *a, const struct http_request *req, struct http_reply *reply)
{
	struct leader_watch *w = &a->leader_watch;
	struct http_pending *p;

	if (node_state(&a->node) != NODE_LEADER || node_isolated(&a->node)) {
		http_reply_error(reply, 409, "this node does not lead");
		return;
	}
	if (!w->started || w->n_watches >= LEADER_WATCH_MAX) {
		http_reply_error(reply, 503, "too many leader watches");
		return;
	}
	p = http_defer(req);
	w->watches[w->n_watches++] = p;
}
