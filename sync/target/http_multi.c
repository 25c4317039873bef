/*
 * sync/target/http_multi.c -- the HTTP engine: libcurl easy handles on one
 * multi handle, driven by libuv (socket and timer callbacks onto uv_poll_t
 * and uv_timer_t, curl's docs/examples/multi-uv.c). See http_multi.h.
 */
#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include "common/xalloc.h"
#include "sync/target/http_multi.h"

#ifndef CANOPY_VERSION
#define CANOPY_VERSION "dev"
#endif

struct hlink {
	struct hlink *prev, *next;
};

#define hcontainer(p, T, m) ((T *)(void *)((char *)(p)-offsetof(T, m)))

static void hl_init(struct hlink *h)
{
	h->prev = h->next = h;
}

static bool hl_empty(const struct hlink *h)
{
	return h->next == h;
}

static void hl_append(struct hlink *head, struct hlink *n)
{
	n->next = head;
	n->prev = head->prev;
	head->prev->next = n;
	head->prev = n;
}

static void hl_remove(struct hlink *n)
{
	n->prev->next = n->next;
	n->next->prev = n->prev;
	n->prev = n->next = n;
}

enum hstate {
	HS_WIRE,      /* on the multi handle, in m->wire */
	HS_CANCELLED, /* off the wire, in m->cancelled: the callback is due */
	HS_DONE,      /* the callback has run (or is running) */
};

struct http_req {
	struct hlink link; /* in m->wire or m->cancelled */
	struct http_multi *m;
	enum hstate state;
	CURL *easy;
	struct curl_slist *headers;
	http_done_cb cb;
	void *data;
	size_t max_body, cap;
	long ra_cap;
	struct http_answer a;
};

struct sock {
	uv_poll_t poll;
	struct hlink link; /* in m->socks */
	struct http_multi *m;
	curl_socket_t fd;
};

/* One http_multi_call() from another thread, on its stack. */
struct call {
	const struct http_request *rq;
	struct http_answer *out;
	int rc;
	bool done;
	pthread_cond_t cv;
	struct call *next;
};

struct http_multi {
	uv_loop_t *loop;
	CURLM *multi;
	uv_timer_t timer; /* CURLMOPT_TIMERFUNCTION */
	uv_timer_t kick;  /* 0 ms: cancelled requests' callbacks from a clean stack */
	uv_async_t async; /* http_multi_call: a call is queued */
	struct hlink socks, wire, cancelled;
	bool closing;
	unsigned open; /* uv handles whose close callback has not run */
	void (*done)(void *);
	void *done_data;

	pthread_mutex_t mu; /* the call queue, shared with other threads */
	struct call *calls_head, *calls_tail;
	bool calls_closed;
};

/* Request headers may carry a bearer token: wiped before they are freed. */
static void free_headers(struct curl_slist *h)
{
	for (struct curl_slist *l = h; l != NULL; l = l->next)
		explicit_bzero(l->data, strlen(l->data));
	curl_slist_free_all(h);
}

/* ---- Retry-After --------------------------------------------------------- */

long http_retry_after(const char *line, size_t n, long cap)
{
	char tmp[64], *end, *p;
	size_t k;
	long v;

	/* RFC 9110 §10.2.3: delay-seconds or an HTTP-date (Graph sends
	 * seconds; some SCIM servers send dates) */
	if (n <= 12 || strncasecmp(line, "Retry-After:", 12) != 0)
		return -1;
	k = n - 12 < sizeof tmp - 1 ? n - 12 : sizeof tmp - 1;
	memcpy(tmp, line + 12, k);
	tmp[k] = '\0';
	errno = 0;
	v = strtol(tmp, &end, 10);
	if (end != tmp) {
		if (v < 0 || errno != 0)
			return -1;
		return v > cap ? cap : v;
	}
	for (p = tmp; *p == ' ' || *p == '\t'; p++)
		;
	for (k = strlen(p); k > 0 && (p[k - 1] == '\r' || p[k - 1] == '\n' || p[k - 1] == ' '); k--)
		p[k - 1] = '\0';
	if (*p == '\0')
		return -1;
	time_t at = curl_getdate(p, NULL), now = time(NULL);
	if (at == (time_t)-1)
		return -1;
	if (at <= now)
		return 0;
	return at - now > cap ? cap : (long)(at - now);
}

/* ---- a request's callbacks from libcurl ------------------------------------ */

static size_t on_body(char *data, size_t size, size_t nmemb, void *userp)
{
	struct http_req *r = userp;
	size_t n = size * nmemb;

	if (r->a.len + n > r->max_body) {
		r->a.too_big = true;
		return 0; /* CURLE_WRITE_ERROR */
	}
	if (r->a.len + n + 1 > r->cap) {
		size_t cap = r->cap ? r->cap : 4096;
		while (cap < r->a.len + n + 1)
			cap *= 2;
		r->a.body = xrealloc(r->a.body, cap); /* max_body keeps this within reason */
		r->cap = cap;
	}
	memcpy(r->a.body + r->a.len, data, n);
	r->a.len += n;
	r->a.body[r->a.len] = '\0';
	return n;
}

void http_answer_header(struct http_answer *a, const char *data, size_t n, long retry_after_max_s)
{
	long v;

	if (n > 5 && strncmp(data, "HTTP/", 5) == 0) {
		/* a new response (after a 100 Continue, say): its headers count */
		a->retry_after_s = -1;
		a->location[0] = '\0';
		return;
	}
	if ((v = http_retry_after(data, n, retry_after_max_s)) >= 0)
		a->retry_after_s = v;
	if (n > 9 && strncasecmp(data, "Location:", 9) == 0) {
		size_t i = 9, e = n;
		while (i < e && (data[i] == ' ' || data[i] == '\t'))
			i++;
		while (e > i && (data[e - 1] == '\r' || data[e - 1] == '\n' || data[e - 1] == ' '))
			e--;
		if (e - i < sizeof a->location) {
			memcpy(a->location, data + i, e - i);
			a->location[e - i] = '\0';
		}
	}
}

static size_t on_header(char *data, size_t size, size_t nmemb, void *userp)
{
	struct http_req *r = userp;

	http_answer_header(&r->a, data, size * nmemb, r->ra_cap);
	return size * nmemb;
}

/* ---- requests ---------------------------------------------------------------- */

int http_multi_start(struct http_multi *m, const struct http_request *rq, http_done_cb cb, void *data,
		     struct http_req **out, char *errmsg, size_t errlen)
{
	struct http_req *r;
	CURL *e;

	*out = NULL;
	if (m->closing) {
		free_headers(rq->headers);
		snprintf(errmsg, errlen, "%s %s: the HTTP engine is closing", rq->method, rq->url);
		return -ESHUTDOWN;
	}
	r = xcalloc(1, sizeof *r);
	r->m = m;
	r->cb = cb;
	r->data = data;
	r->headers = rq->headers;
	r->max_body = rq->max_body;
	r->ra_cap = rq->retry_after_max_s;
	r->a.retry_after_s = -1;
	hl_init(&r->link);
	e = r->easy = xcheck(curl_easy_init());
	curl_easy_setopt(e, CURLOPT_URL, rq->url);
	if (rq->fresh)
		curl_easy_setopt(e, CURLOPT_FRESH_CONNECT, 1L);
	curl_easy_setopt(e, CURLOPT_PRIVATE, r);
	curl_easy_setopt(e, CURLOPT_ERRORBUFFER, r->a.err);
	curl_easy_setopt(e, CURLOPT_NOSIGNAL, 1L);
	curl_easy_setopt(e, CURLOPT_WRITEFUNCTION, on_body);
	curl_easy_setopt(e, CURLOPT_WRITEDATA, r);
	curl_easy_setopt(e, CURLOPT_HEADERFUNCTION, on_header);
	curl_easy_setopt(e, CURLOPT_HEADERDATA, r);
	curl_easy_setopt(e, CURLOPT_HTTPHEADER, r->headers);
	curl_easy_setopt(e, CURLOPT_TIMEOUT_MS, (long)rq->timeout_ms);
	if (rq->connect_timeout_ms > 0)
		curl_easy_setopt(e, CURLOPT_CONNECTTIMEOUT_MS, (long)rq->connect_timeout_ms);
	else if (rq->timeout_ms > 0)
		curl_easy_setopt(e, CURLOPT_CONNECTTIMEOUT_MS, (long)(rq->timeout_ms < 10000 ? rq->timeout_ms : 10000));
	curl_easy_setopt(e, CURLOPT_HTTP_VERSION, (long)CURL_HTTP_VERSION_2TLS);
	curl_easy_setopt(e, CURLOPT_PIPEWAIT, 1L); /* prefer a multiplexed h2 stream to a new connection */
	curl_easy_setopt(e, CURLOPT_TCP_KEEPALIVE, 1L);
	curl_easy_setopt(e, CURLOPT_USERAGENT, "canopy/" CANOPY_VERSION);
	curl_easy_setopt(e, CURLOPT_PROTOCOLS_STR, "http,https");
	if (http_tls_apply(rq->tls, e) != CURLE_OK) {
		snprintf(errmsg, errlen, "%s %s: cannot set up TLS", rq->method, rq->url);
		http_req_free(r);
		return -EINVAL;
	}
	if (strcmp(rq->method, "GET") == 0) {
		curl_easy_setopt(e, CURLOPT_HTTPGET, 1L);
	} else {
		curl_easy_setopt(e, CURLOPT_CUSTOMREQUEST, rq->method);
		if (rq->body != NULL) {
			curl_easy_setopt(e, CURLOPT_POSTFIELDS, rq->body);
			curl_easy_setopt(e, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)strlen(rq->body));
		}
	}
	if (curl_multi_add_handle(m->multi, e) != CURLM_OK) {
		snprintf(errmsg, errlen, "%s %s: libcurl refused the request", rq->method, rq->url);
		http_req_free(r);
		return -EIO;
	}
	r->state = HS_WIRE;
	hl_append(&m->wire, &r->link);
	*out = r;
	return 0;
}

const struct http_answer *http_req_answer(const struct http_req *r)
{
	return &r->a;
}

char *http_answer_take_body(struct http_req *r)
{
	char *b = r->a.body;

	r->a.body = NULL;
	r->cap = 0;
	return b;
}

/* Off the multi handle; the easy handle is gone, the answer stays. */
static void unwire(struct http_req *r)
{
	if (r->easy != NULL) {
		curl_multi_remove_handle(r->m->multi, r->easy);
		curl_easy_cleanup(r->easy);
		r->easy = NULL;
	}
	hl_remove(&r->link);
}

static void mark_cancelled(struct http_req *r)
{
	r->a.cc = CURLE_ABORTED_BY_CALLBACK;
	r->a.cancelled = true;
	r->a.status = 0;
	snprintf(r->a.err, sizeof r->a.err, "cancelled");
}

static void on_kick(uv_timer_t *h)
{
	struct http_multi *m = h->data;

	while (!hl_empty(&m->cancelled)) {
		struct http_req *r = hcontainer(m->cancelled.next, struct http_req, link);
		hl_remove(&r->link);
		r->state = HS_DONE;
		r->cb(r, r->data); /* may free r */
	}
}

void http_req_cancel(struct http_req *r)
{
	struct http_multi *m = r->m;

	if (r->state != HS_WIRE)
		return;
	unwire(r);
	mark_cancelled(r);
	r->state = HS_CANCELLED;
	hl_append(&m->cancelled, &r->link);
	if (!m->closing)
		uv_timer_start(&m->kick, on_kick, 0, 0);
}

void http_req_free(struct http_req *r)
{
	if (r == NULL)
		return;
	/* on the wire: the engine is open; else r->m may be gone (closed) */
	if (r->easy != NULL)
		unwire(r);
	else
		hl_remove(&r->link);
	free_headers(r->headers);
	free(r->a.body);
	free(r);
}

void http_multi_cancel_all(struct http_multi *m)
{
	while (!hl_empty(&m->wire))
		http_req_cancel(hcontainer(m->wire.next, struct http_req, link));
}

/* ---- the loop side -------------------------------------------------------------- */

static void finished(struct http_req *r, CURLcode cc)
{
	curl_easy_getinfo(r->easy, CURLINFO_RESPONSE_CODE, &r->a.status);
	if (curl_easy_getinfo(r->easy, CURLINFO_NUM_CONNECTS, &r->a.connects) != CURLE_OK)
		r->a.connects = 0;
	r->a.cc = cc;
	if (cc == CURLE_OK)
		r->a.err[0] = '\0';
	else if (r->a.err[0] == '\0')
		snprintf(r->a.err, sizeof r->a.err, "%s", curl_easy_strerror(cc));
	unwire(r);
	r->state = HS_DONE;
	r->cb(r, r->data); /* may free r, start requests, close the engine */
}

static void drain(struct http_multi *m)
{
	CURLMsg *msg;
	int left;

	while (!m->closing && (msg = curl_multi_info_read(m->multi, &left)) != NULL) {
		struct http_req *r = NULL;
		if (msg->msg != CURLMSG_DONE)
			continue;
		curl_easy_getinfo(msg->easy_handle, CURLINFO_PRIVATE, (char **)&r);
		finished(r, msg->data.result);
	}
}

static void on_poll(uv_poll_t *h, int status, int events)
{
	struct sock *k = h->data;
	struct http_multi *m = k->m;
	int flags = 0, running;

	if (status < 0)
		flags = CURL_CSELECT_ERR;
	if (events & UV_READABLE)
		flags |= CURL_CSELECT_IN;
	if (events & UV_WRITABLE)
		flags |= CURL_CSELECT_OUT;
	curl_multi_socket_action(m->multi, k->fd, flags, &running); /* may close k */
	drain(m);
}

static void on_closed(uv_handle_t *h);

static void close_handle(struct http_multi *m, uv_handle_t *h)
{
	m->open++;
	uv_close(h, on_closed);
}

static void sock_close(struct sock *k)
{
	hl_remove(&k->link);
	uv_poll_stop(&k->poll);
	close_handle(k->m, (uv_handle_t *)&k->poll);
}

static void on_closed(uv_handle_t *h)
{
	struct http_multi *m;

	if (h->type == UV_POLL) {
		struct sock *k = h->data;
		m = k->m;
		free(k);
	} else {
		m = h->data;
	}
	if (--m->open == 0 && m->closing) {
		void (*done)(void *) = m->done;
		void *data = m->done_data;
		pthread_mutex_destroy(&m->mu);
		free(m);
		curl_global_cleanup();
		if (done != NULL)
			done(data);
	}
}

static int on_curl_socket(CURL *e, curl_socket_t fd, int what, void *userp, void *socketp)
{
	struct http_multi *m = userp;
	struct sock *k = socketp;
	int ev = 0;

	(void)e;
	if (what == CURL_POLL_REMOVE) {
		if (k != NULL) {
			curl_multi_assign(m->multi, fd, NULL);
			sock_close(k);
		}
		return 0;
	}
	if (k == NULL) {
		k = xcalloc(1, sizeof *k);
		if (uv_poll_init_socket(m->loop, &k->poll, fd) != 0) {
			free(k);
			return -1;
		}
		k->m = m;
		k->fd = fd;
		k->poll.data = k;
		hl_append(&m->socks, &k->link);
		curl_multi_assign(m->multi, fd, k);
	}
	if (what & CURL_POLL_IN)
		ev |= UV_READABLE;
	if (what & CURL_POLL_OUT)
		ev |= UV_WRITABLE;
	uv_poll_start(&k->poll, ev, on_poll);
	return 0;
}

static void on_curl_timeout(uv_timer_t *h)
{
	struct http_multi *m = h->data;
	int running;
	long ms = -1;

	curl_multi_socket_action(m->multi, CURL_SOCKET_TIMEOUT, 0, &running);
	/* libcurl calls the timer function only when its deadline *changes*.
	 * Before curl 8.4 (curl PR #11938) it rounds the remaining time down to
	 * whole ms, and uv timers count from the loop's cached time, so this
	 * timer can fire a little before libcurl's deadline: then libcurl does
	 * nothing and never asks again, and the transfer stalls until some
	 * other event. Re-arm from what libcurl still waits for. */
	if (!m->closing && !uv_is_active((uv_handle_t *)&m->timer) && curl_multi_timeout(m->multi, &ms) == CURLM_OK &&
	    ms >= 0)
		uv_timer_start(&m->timer, on_curl_timeout, ms > 0 ? (uint64_t)ms : 1, 0);
	drain(m);
}

static int on_curl_timer(CURLM *multi, long timeout_ms, void *userp)
{
	struct http_multi *m = userp;

	(void)multi;
	if (timeout_ms < 0)
		uv_timer_stop(&m->timer);
	else /* 0: on the next loop iteration, never from inside libcurl */
		uv_timer_start(&m->timer, on_curl_timeout, (uint64_t)timeout_ms, 0);
	return 0;
}

/* ---- calls from other threads ------------------------------------------------------ */

static void call_finish(struct http_multi *m, struct call *c)
{
	pthread_mutex_lock(&m->mu);
	c->done = true;
	pthread_cond_signal(&c->cv);
	pthread_mutex_unlock(&m->mu);
}

static void on_call_done(struct http_req *r, void *data)
{
	struct call *c = data;
	struct http_multi *m = r->m;

	*c->out = r->a;
	c->out->body = http_answer_take_body(r);
	c->rc = 0;
	http_req_free(r);
	call_finish(m, c);
}

static void on_async(uv_async_t *h)
{
	struct http_multi *m = h->data;
	struct call *list;

	pthread_mutex_lock(&m->mu);
	list = m->calls_head;
	m->calls_head = m->calls_tail = NULL;
	pthread_mutex_unlock(&m->mu);
	while (list != NULL) {
		struct call *c = list, *next = c->next;
		struct http_req *r;
		char why[256];
		struct http_request rq = *c->rq;

		rq.headers = c->rq->headers; /* taken over by the start below */
		c->rc = http_multi_start(m, &rq, on_call_done, c, &r, why, sizeof why);
		if (c->rc != 0) {
			memset(c->out, 0, sizeof *c->out);
			c->out->cc = CURLE_FAILED_INIT;
			c->out->retry_after_s = -1;
			c->out->cancelled = c->rc == -ESHUTDOWN;
			snprintf(c->out->err, sizeof c->out->err, "%s", why);
			call_finish(m, c);
		}
		list = next;
	}
}

int http_multi_call(struct http_multi *m, const struct http_request *rq, struct http_answer *out)
{
	struct call c = {.rq = rq, .out = out};

	pthread_cond_init(&c.cv, NULL);
	pthread_mutex_lock(&m->mu);
	if (m->calls_closed) {
		pthread_mutex_unlock(&m->mu);
		pthread_cond_destroy(&c.cv);
		free_headers(rq->headers);
		memset(out, 0, sizeof *out);
		out->cc = CURLE_ABORTED_BY_CALLBACK;
		out->cancelled = true;
		out->retry_after_s = -1;
		snprintf(out->err, sizeof out->err, "cancelled");
		return -ESHUTDOWN;
	}
	if (m->calls_tail)
		m->calls_tail->next = &c;
	else
		m->calls_head = &c;
	m->calls_tail = &c;
	uv_async_send(&m->async);
	while (!c.done)
		pthread_cond_wait(&c.cv, &m->mu);
	pthread_mutex_unlock(&m->mu);
	pthread_cond_destroy(&c.cv);
	return c.rc;
}

/* ---- one request on a private loop ---------------------------------------------------- */

static void on_perform_done(struct http_req *r, void *data)
{
	*(int *)data = 1;
	/* an answer from a timer callback (a timeout, a refused URL) comes
	 * before this iteration's poll, which would block on the engine's
	 * uv_async_t forever: uv_run returns without polling */
	uv_stop(r->m->loop);
}

static void on_perform_closed(void *data)
{
	*(int *)data = 1;
}

int http_perform(const struct http_request *rq, struct http_answer *out, char *errmsg, size_t errlen)
{
	uv_loop_t loop;
	struct http_multi *m;
	struct http_req *r;
	int done = 0, closed = 0, rc;

	memset(out, 0, sizeof *out);
	out->cc = CURLE_FAILED_INIT;
	out->retry_after_s = -1;
	rc = uv_loop_init(&loop);
	if (rc != 0) {
		free_headers(rq->headers);
		snprintf(errmsg, errlen, "%s %s: %s", rq->method, rq->url, uv_strerror(rc));
		return rc;
	}
	rc = http_multi_new(&loop, 1, &m, errmsg, errlen);
	if (rc != 0) {
		free_headers(rq->headers);
		goto err_after_loop;
	}
	rc = http_multi_start(m, rq, on_perform_done, &done, &r, errmsg, errlen);
	if (rc == 0) {
		while (!done) /* the request's timeout ends it */
			uv_run(&loop, UV_RUN_ONCE);
		*out = r->a;
		out->body = http_answer_take_body(r);
		http_req_free(r);
	}
	http_multi_close(m, on_perform_closed, &closed);
	while (!closed)
		uv_run(&loop, UV_RUN_ONCE);
err_after_loop:
	uv_loop_close(&loop);
	return rc;
}

/* ---- the engine ------------------------------------------------------------------------ */

int http_multi_new(uv_loop_t *loop, unsigned max_connects, struct http_multi **out, char *errmsg, size_t errlen)
{
	struct http_multi *m;
	int rc;

	*out = NULL;
	if (curl_global_init(CURL_GLOBAL_DEFAULT) != CURLE_OK) {
		snprintf(errmsg, errlen, "http engine: libcurl cannot be initialised");
		return -EIO;
	}
	m = xcalloc(1, sizeof *m);
	m->loop = loop;
	hl_init(&m->socks);
	hl_init(&m->wire);
	hl_init(&m->cancelled);
	rc = uv_async_init(loop, &m->async, on_async);
	if (rc != 0) {
		snprintf(errmsg, errlen, "http engine: %s", uv_strerror(rc));
		goto err_after_alloc;
	}
	m->async.data = m;
	pthread_mutex_init(&m->mu, NULL);
	uv_timer_init(loop, &m->timer);
	m->timer.data = m;
	uv_timer_init(loop, &m->kick);
	m->kick.data = m;
	m->multi = xcheck(curl_multi_init());
	curl_multi_setopt(m->multi, CURLMOPT_SOCKETFUNCTION, on_curl_socket);
	curl_multi_setopt(m->multi, CURLMOPT_SOCKETDATA, m);
	curl_multi_setopt(m->multi, CURLMOPT_TIMERFUNCTION, on_curl_timer);
	curl_multi_setopt(m->multi, CURLMOPT_TIMERDATA, m);
	/* keep-alive: enough cached connections for a full window of requests */
	curl_multi_setopt(m->multi, CURLMOPT_MAXCONNECTS, (long)max_connects);
	curl_multi_setopt(m->multi, CURLMOPT_PIPELINING, (long)CURLPIPE_MULTIPLEX);
	*out = m;
	return 0;

err_after_alloc:
	free(m);
	curl_global_cleanup();
	return rc;
}

void http_multi_close(struct http_multi *m, void (*done)(void *data), void *data)
{
	struct call *calls;

	if (m->closing)
		return;
	m->closing = true;
	m->done = done;
	m->done_data = data;
	/* calls not started yet: none will be */
	pthread_mutex_lock(&m->mu);
	m->calls_closed = true;
	calls = m->calls_head;
	m->calls_head = m->calls_tail = NULL;
	pthread_mutex_unlock(&m->mu);
	while (calls != NULL) {
		struct call *next = calls->next;
		free_headers(calls->rq->headers);
		memset(calls->out, 0, sizeof *calls->out);
		calls->out->cc = CURLE_ABORTED_BY_CALLBACK;
		calls->out->cancelled = true;
		calls->out->retry_after_s = -1;
		snprintf(calls->out->err, sizeof calls->out->err, "cancelled");
		calls->rc = -ESHUTDOWN;
		call_finish(m, calls);
		calls = next;
	}
	/* requests in flight: completed now, cancelled */
	while (!hl_empty(&m->wire)) {
		struct http_req *r = hcontainer(m->wire.next, struct http_req, link);
		unwire(r);
		mark_cancelled(r);
		r->state = HS_CANCELLED;
		hl_append(&m->cancelled, &r->link);
	}
	on_kick(&m->kick);
	/* libcurl must not call back into handles we are closing */
	curl_multi_setopt(m->multi, CURLMOPT_SOCKETFUNCTION, NULL);
	curl_multi_setopt(m->multi, CURLMOPT_TIMERFUNCTION, NULL);
	/* stop polling while the descriptors are still open, then let libcurl
	 * close its cached connections */
	while (!hl_empty(&m->socks)) {
		struct sock *k = hcontainer(m->socks.next, struct sock, link);
		curl_multi_assign(m->multi, k->fd, NULL);
		sock_close(k);
	}
	curl_multi_cleanup(m->multi);
	m->multi = NULL;
	close_handle(m, (uv_handle_t *)&m->timer);
	close_handle(m, (uv_handle_t *)&m->kick);
	close_handle(m, (uv_handle_t *)&m->async);
}
