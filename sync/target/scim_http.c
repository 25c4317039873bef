/*
 * sync/target/scim_http.c -- the transport: one libcurl easy handle per
 * request on the target's multi handle, driven by libuv (socket and timer
 * callbacks onto uv_poll_t and uv_timer_t, curl's docs/examples/multi-uv.c).
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "sync/target/scim_internal.h"
#include "sync/target/target_metrics.h"

static void on_closed(uv_handle_t *h);

static size_t on_write(char *data, size_t size, size_t nmemb, void *userp)
{
	struct req *r = userp;
	size_t n = size * nmemb;
	if (r->resp_len + n > RESP_MAX) {
		r->resp_too_big = true;
		return 0; /* CURLE_WRITE_ERROR */
	}
	if (r->resp_len + n + 1 > r->resp_cap) {
		size_t cap = r->resp_cap ? r->resp_cap : 4096;
		while (cap < r->resp_len + n + 1)
			cap *= 2;
		/* the cap above keeps this within reason (common/xalloc.h) */
		r->resp = xrealloc(r->resp, cap);
		r->resp_cap = cap;
	}
	memcpy(r->resp + r->resp_len, data, n);
	r->resp_len += n;
	r->resp[r->resp_len] = '\0';
	return n;
}

static struct curl_slist *headers(struct scim_target *t)
{
	char node[64], term[64], cluster[96], *auth = NULL;
	struct curl_slist *h = NULL;
	snprintf(node, sizeof node, "X-Canopy-Node: %llu", (unsigned long long)t->node_id);
	snprintf(term, sizeof term, "X-Canopy-Term: %llu", (unsigned long long)t->term);
	snprintf(cluster, sizeof cluster, "X-Canopy-Cluster: %s", t->cluster_id);
	if (t->token != NULL)
		auth = scim__concat("Authorization: Bearer ", t->token);
	const char *all[] = {
		"Accept: application/scim+json",
		"Content-Type: application/scim+json", /* RFC 7644 §3.1 */
		"Expect:", /* no 100-continue round trip before large bodies */
		node,
		term,
		t->cluster_id[0] ? cluster : NULL,
		auth,
	};
	for (size_t i = 0; i < sizeof all / sizeof all[0]; i++) {
		if (all[i] == NULL)
			continue;
		h = xcheck(curl_slist_append(h, all[i]));
	}
	if (t->if_match != NULL) { /* RFC 7232 §3.1, RFC 7644 §3.14 */
		char *im = scim__concat("If-Match: ", t->if_match);
		h = xcheck(curl_slist_append(h, im));
		free(im);
	}
	scim__wipe_free(auth);
	return h;
}

int scim__req_start(struct scim_target *t, enum req_kind kind, const char *method, char *path, char *body, bool fresh,
		    struct req **out)
{
	struct req *r = xcalloc(1, sizeof *r);
	char *url;
	int rc = -EIO;

	*out = NULL;
	r->t = t;
	r->kind = kind;
	r->path = path;
	r->body = body;
	list_init(&r->link);
	snprintf(r->method, sizeof r->method, "%s", method);
	url = scim__concat(t->url, path);
	r->token_used = xstrdup(t->token != NULL ? t->token : "");
	r->hdrs = headers(t);
	r->easy = xcheck(curl_easy_init());

	CURL *e = r->easy;
	curl_easy_setopt(e, CURLOPT_URL, url);
	/* libcurl sends a request again by itself when a reused connection
	 * closes before any answer (lib/transfer.c, Curl_retry_request) -- for
	 * every method. A member PATCH "add" is not idempotent on every server,
	 * and that silent second send duplicated members (seen with the test
	 * server): such requests go on a connection of their own, and a lost
	 * answer is handled here (read back first, members_filter). */
	if (fresh)
		curl_easy_setopt(e, CURLOPT_FRESH_CONNECT, 1L);
	curl_easy_setopt(e, CURLOPT_PRIVATE, r);
	curl_easy_setopt(e, CURLOPT_ERRORBUFFER, r->errbuf);
	curl_easy_setopt(e, CURLOPT_NOSIGNAL, 1L);
	curl_easy_setopt(e, CURLOPT_WRITEFUNCTION, on_write);
	curl_easy_setopt(e, CURLOPT_WRITEDATA, r);
	curl_easy_setopt(e, CURLOPT_HTTPHEADER, r->hdrs);
	curl_easy_setopt(e, CURLOPT_TIMEOUT_MS, (long)t->cfg.timeout_ms);
	curl_easy_setopt(e, CURLOPT_CONNECTTIMEOUT_MS, (long)(t->cfg.timeout_ms < 10000 ? t->cfg.timeout_ms : 10000));
	curl_easy_setopt(e, CURLOPT_HTTP_VERSION, (long)CURL_HTTP_VERSION_2TLS);
	curl_easy_setopt(e, CURLOPT_PIPEWAIT, 1L); /* prefer a multiplexed h2 stream to a new connection */
	curl_easy_setopt(e, CURLOPT_TCP_KEEPALIVE, 1L);
	curl_easy_setopt(e, CURLOPT_USERAGENT, "canopy/" CANOPY_VERSION);
	curl_easy_setopt(e, CURLOPT_PROTOCOLS_STR, "http,https");
	if (http_tls_apply(t->cfg.tls, e) != CURLE_OK)
		goto err_after_alloc;
	if (strcmp(method, "GET") == 0) {
		curl_easy_setopt(e, CURLOPT_HTTPGET, 1L);
	} else {
		curl_easy_setopt(e, CURLOPT_CUSTOMREQUEST, method);
		if (body != NULL) {
			curl_easy_setopt(e, CURLOPT_POSTFIELDS, body);
			curl_easy_setopt(e, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)strlen(body));
		}
	}
	if (curl_multi_add_handle(t->multi, e) != CURLM_OK)
		goto err_after_alloc;
	free(url);
	list_insert(&t->wire, &r->link);
	t->n_wire++;
	r->t0 = uv_hrtime();
	if ((kind == R_OP || kind == R_BULK) && ++t->n_op_wire > t->stats.peak_requests_in_flight)
		t->stats.peak_requests_in_flight = t->n_op_wire;
	*out = r;
	return 0;
err_after_alloc:
	free(url);
	scim__req_free(r);
	return rc;
}

/* Take a request off the wire (its op, if any, is the caller's business). */
void scim__req_detach(struct req *r)
{
	struct scim_target *t = r->t;
	if (r->easy != NULL) {
		curl_multi_remove_handle(t->multi, r->easy);
		curl_easy_cleanup(r->easy);
		r->easy = NULL;
	}
	if (!list_empty(&r->link)) {
		list_remove(&r->link);
		t->n_wire--;
		if (r->kind == R_OP || r->kind == R_BULK)
			t->n_op_wire--;
	}
}

void scim__req_free(struct req *r)
{
	if (r == NULL)
		return;
	if (r->easy != NULL)
		curl_easy_cleanup(r->easy);
	curl_slist_free_all(r->hdrs);
	free(r->path);
	free(r->body);
	scim__wipe_free(r->token_used);
	free(r->resp);
	free(r->batch);
	free(r);
}

/* Which kind of request this is, for the latency histogram. */
static enum target_request_op request_op(const struct req *r)
{
	switch (r->kind) {
	case R_BULK:
		return TARGET_REQ_BULK;
	case R_SPC:
		return TARGET_REQ_CONFIG;
	case R_PROBE:
		return TARGET_REQ_PROBE;
	case R_RTYPES:
	case R_SCHEMAS:
		return TARGET_REQ_CONFIG;
	case R_OP:
		break;
	}
	switch (r->sop->step) {
	case ST_CREATE:
		return TARGET_REQ_CREATE;
	case ST_FIND_EXT:
	case ST_FIND_NAME:
	case ST_FIND_EMAIL:
	case ST_FIND_TAKEN:
		return TARGET_REQ_FIND;
	case ST_DELETE:
		return TARGET_REQ_DELETE;
	case ST_MEMBERS:
		return TARGET_REQ_MEMBERS;
	case ST_READ_MEMBERS:
	case ST_READ_OBJ:
		return TARGET_REQ_READ_MEMBERS;
	case ST_WRITE_OBJ:
	case ST_UPDATE:
		break;
	}
	return TARGET_REQ_UPDATE;
}

static void req_done(struct req *r, CURLcode rc)
{
	struct scim_target *t = r->t;
	struct reply rep = {.rc = rc};
	curl_off_t ra = -1;

	long connects = 0;
	curl_easy_getinfo(r->easy, CURLINFO_RESPONSE_CODE, &rep.http);
	if (curl_easy_getinfo(r->easy, CURLINFO_NUM_CONNECTS, &connects) == CURLE_OK && connects > 0)
		t->stats.connects += (uint64_t)connects;
	/* parses delta-seconds and HTTP-dates (RFC 7231 §7.1.3) */
	if (curl_easy_getinfo(r->easy, CURLINFO_RETRY_AFTER, &ra) == CURLE_OK && ra > 0)
		rep.retry_after_s = ra > 86400 ? 86400 : (long)ra;
	if (rc == CURLE_OK && r->resp_len > 0)
		rep.json = json_loadb(r->resp, r->resp_len, 0, NULL);
	scim__req_detach(r);
	t->stats.requests++;
	/* what counts against the target; a 4xx about one object does not */
	if (rc != CURLE_OK || rep.http >= 500 || rep.http == 401 || rep.http == 403 || rep.http == 429) {
		snprintf(t->stats.last_fail_method, sizeof t->stats.last_fail_method, "%s", r->method);
		scim__copy_str(t->stats.last_fail_path, sizeof t->stats.last_fail_path, r->path ? r->path : "");
		t->stats.last_fail_status = rc == CURLE_OK ? rep.http : 0;
		t->stats.last_fail_at_ms = scim__wall_ms();
	}
	target_metrics_request(request_op(r), (double)(uv_hrtime() - r->t0) / 1e9);
	switch (r->kind) {
	case R_OP:
		scim__detach(r->sop);
		scim__op_reply(r, &rep, true);
		break;
	case R_BULK:
		scim__bulk_done(r, &rep);
		break;
	case R_SPC:
		scim__spc_done(t, r, &rep);
		break;
	case R_PROBE:
		scim__probe_done(t, r, &rep);
		break;
	case R_RTYPES:
	case R_SCHEMAS:
		scim__disc_done(t, r, &rep);
		break;
	}
	json_decref(rep.json);
	scim__req_free(r);
	scim__pump(t);
}

static void check_done(struct scim_target *t)
{
	CURLMsg *m;
	int left;
	/* A callback run from req_done may stop the target: the multi handle
	 * stays valid (it is cleaned up from the kick timer), but nothing more
	 * is to be processed. */
	while (!t->stopping && (m = curl_multi_info_read(t->multi, &left)) != NULL) {
		if (m->msg != CURLMSG_DONE)
			continue;
		struct req *r = NULL;
		CURLcode rc = m->data.result;
		curl_easy_getinfo(m->easy_handle, CURLINFO_PRIVATE, (char **)&r);
		req_done(r, rc);
	}
}

static void on_poll(uv_poll_t *h, int status, int events)
{
	struct sock *k = h->data;
	struct scim_target *t = k->t;
	int flags = 0, running;
	if (status < 0)
		flags = CURL_CSELECT_ERR;
	if (events & UV_READABLE)
		flags |= CURL_CSELECT_IN;
	if (events & UV_WRITABLE)
		flags |= CURL_CSELECT_OUT;
	curl_multi_socket_action(t->multi, k->fd, flags, &running); /* may close k */
	check_done(t);
}

static void close_handle(struct scim_target *t, uv_handle_t *h)
{
	t->closing++;
	uv_close(h, on_closed);
}

static void sock_close(struct sock *k)
{
	list_remove(&k->link);
	uv_poll_stop(&k->poll);
	close_handle(k->t, (uv_handle_t *)&k->poll);
}

static void on_closed(uv_handle_t *h)
{
	struct scim_target *t;
	if (h->type == UV_POLL) {
		struct sock *k = h->data;
		t = k->t;
		free(k);
	} else {
		t = h->data;
	}
	if (--t->closing == 0 && t->finalized)
		scim__release(t);
}

static int on_curl_socket(CURL *e, curl_socket_t fd, int what, void *userp, void *socketp)
{
	struct scim_target *t = userp;
	struct sock *k = socketp;
	(void)e;
	if (what == CURL_POLL_REMOVE) {
		if (k != NULL) {
			curl_multi_assign(t->multi, fd, NULL);
			sock_close(k);
		}
		return 0;
	}
	if (k == NULL) {
		k = xcalloc(1, sizeof *k);
		if (uv_poll_init_socket(t->loop, &k->poll, fd) != 0) {
			free(k);
			return -1;
		}
		k->t = t;
		k->fd = fd;
		k->poll.data = k;
		list_insert(&t->socks, &k->link);
		curl_multi_assign(t->multi, fd, k);
	}
	int ev = 0;
	if (what & CURL_POLL_IN)
		ev |= UV_READABLE;
	if (what & CURL_POLL_OUT)
		ev |= UV_WRITABLE;
	uv_poll_start(&k->poll, ev, on_poll);
	return 0;
}

static void on_curl_timeout(uv_timer_t *h)
{
	struct scim_target *t = h->data;
	int running;
	long ms = -1;
	curl_multi_socket_action(t->multi, CURL_SOCKET_TIMEOUT, 0, &running);
	/* libcurl calls the timer function only when its deadline *changes*.
	 * Before curl 8.4 (curl PR #11938) it rounds the remaining time down to
	 * whole ms, and uv timers count from the loop's cached time, so this
	 * timer can fire a little before libcurl's deadline: then libcurl does
	 * nothing and never asks again, and the transfer stalls until some
	 * other event. Re-arm from what libcurl still waits for. */
	if (!t->stopping && !uv_is_active((uv_handle_t *)&t->curl_timer) &&
	    curl_multi_timeout(t->multi, &ms) == CURLM_OK && ms >= 0)
		uv_timer_start(&t->curl_timer, on_curl_timeout, ms > 0 ? (uint64_t)ms : 1, 0);
	check_done(t);
}

static int on_curl_timer(CURLM *m, long timeout_ms, void *userp)
{
	struct scim_target *t = userp;
	(void)m;
	if (timeout_ms < 0)
		uv_timer_stop(&t->curl_timer);
	else /* 0: on the next loop iteration, never from inside libcurl */
		uv_timer_start(&t->curl_timer, on_curl_timeout, (uint64_t)timeout_ms, 0);
	return 0;
}

void scim__finalize(struct scim_target *t)
{
	t->finalized = true;
	/* libcurl must not call back into handles we are closing */
	curl_multi_setopt(t->multi, CURLMOPT_SOCKETFUNCTION, NULL);
	curl_multi_setopt(t->multi, CURLMOPT_TIMERFUNCTION, NULL);
	/* stop polling while the descriptors are still open, then let libcurl
	 * close its cached connections */
	while (!list_empty(&t->socks)) {
		struct sock *k = container_of(t->socks.next, struct sock, link);
		curl_multi_assign(t->multi, k->fd, NULL);
		sock_close(k);
	}
	curl_multi_cleanup(t->multi);
	t->multi = NULL;
	close_handle(t, (uv_handle_t *)&t->curl_timer);
	close_handle(t, (uv_handle_t *)&t->retry_timer);
	close_handle(t, (uv_handle_t *)&t->probe_timer);
	close_handle(t, (uv_handle_t *)&t->kick_timer);
	close_handle(t, (uv_handle_t *)&t->auth_timer);
}

int scim__transport_init(struct scim_target *t)
{
	if (curl_global_init(CURL_GLOBAL_DEFAULT) != CURLE_OK)
		return -EIO;
	t->multi = xcheck(curl_multi_init());
	curl_multi_setopt(t->multi, CURLMOPT_SOCKETFUNCTION, on_curl_socket);
	curl_multi_setopt(t->multi, CURLMOPT_SOCKETDATA, t);
	curl_multi_setopt(t->multi, CURLMOPT_TIMERFUNCTION, on_curl_timer);
	curl_multi_setopt(t->multi, CURLMOPT_TIMERDATA, t);
	/* keep-alive: enough cached connections for a full window of requests */
	curl_multi_setopt(t->multi, CURLMOPT_MAXCONNECTS, (long)t->cfg.max_in_flight + 2);
	curl_multi_setopt(t->multi, CURLMOPT_PIPELINING, (long)CURLPIPE_MULTIPLEX);
	return 0;
}
