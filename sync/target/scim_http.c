/*
 * sync/target/scim_http.c -- the transport: each SCIM request (struct req)
 * on the target's HTTP engine (http_multi.h), with the SCIM headers; the
 * answer goes to the step, bulk or discovery code that asked.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "sync/target/scim_internal.h"
#include "sync/target/target_metrics.h"

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

static void req_done(struct http_req *h, void *data);

int scim__req_start(struct scim_target *t, enum req_kind kind, const char *method, char *path, char *body, bool fresh,
		    struct req **out)
{
	struct req *r = xcalloc(1, sizeof *r);
	char *url, why[256];
	int rc;

	*out = NULL;
	r->t = t;
	r->kind = kind;
	r->path = path;
	r->body = body;
	list_init(&r->link);
	snprintf(r->method, sizeof r->method, "%s", method);
	url = scim__concat(t->url, path);
	r->token_used = xstrdup(t->token != NULL ? t->token : "");
	struct http_request rq = {
		.method = method,
		.url = url,
		.headers = headers(t),
		.body = body,
		.timeout_ms = t->cfg.timeout_ms,
		.tls = t->cfg.tls,
		.max_body = RESP_MAX,
		.retry_after_max_s = 86400,
		/* libcurl sends a request again by itself when a reused
		 * connection closes before any answer (lib/transfer.c,
		 * Curl_retry_request) -- for every method. A member PATCH "add"
		 * is not idempotent on every server, and that silent second
		 * send duplicated members (seen with the test server): such
		 * requests go on a connection of their own, and a lost answer
		 * is handled here (read back first, members_filter). */
		.fresh = fresh,
	};
	rc = http_multi_start(t->http, &rq, req_done, r, &r->http, why, sizeof why);
	free(url);
	if (rc != 0) {
		scim__req_free(r);
		return -EIO;
	}
	list_insert(&t->wire, &r->link);
	t->n_wire++;
	r->t0 = uv_hrtime();
	if ((kind == R_OP || kind == R_BULK) && ++t->n_op_wire > t->stats.peak_requests_in_flight)
		t->stats.peak_requests_in_flight = t->n_op_wire;
	*out = r;
	return 0;
}

/* Take a request off the wire (its op, if any, is the caller's business). */
void scim__req_detach(struct req *r)
{
	struct scim_target *t = r->t;
	http_req_free(r->http);
	r->http = NULL;
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
	http_req_free(r->http);
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

static void req_done(struct http_req *h, void *data)
{
	struct req *r = data;
	struct scim_target *t = r->t;
	const struct http_answer *a = http_req_answer(h);
	struct reply rep = {.rc = a->cc, .http = a->status};

	if (a->connects > 0)
		t->stats.connects += (uint64_t)a->connects;
	/* delta-seconds and HTTP-dates (RFC 9110 §10.2.3); 0 here: none */
	if (a->retry_after_s > 0)
		rep.retry_after_s = a->retry_after_s;
	r->resp_too_big = a->too_big;
	if (a->cc != CURLE_OK)
		scim__copy_str(r->errbuf, sizeof r->errbuf, a->err);
	r->resp_len = a->len;
	r->resp = http_answer_take_body(h);
	if (rep.rc == CURLE_OK && r->resp_len > 0)
		rep.json = json_loadb(r->resp, r->resp_len, 0, NULL);
	scim__req_detach(r);
	t->stats.requests++;
	/* what counts against the target; a 4xx about one object does not */
	if (rep.rc != CURLE_OK || rep.http >= 500 || rep.http == 401 || rep.http == 403 || rep.http == 429) {
		snprintf(t->stats.last_fail_method, sizeof t->stats.last_fail_method, "%s", r->method);
		scim__copy_str(t->stats.last_fail_path, sizeof t->stats.last_fail_path, r->path ? r->path : "");
		t->stats.last_fail_status = rep.rc == CURLE_OK ? rep.http : 0;
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

static void on_closed(uv_handle_t *h)
{
	struct scim_target *t = h->data;
	if (--t->closing == 0 && t->finalized)
		scim__release(t);
}

static void on_http_closed(void *data)
{
	struct scim_target *t = data;
	if (--t->closing == 0 && t->finalized)
		scim__release(t);
}

static void close_handle(struct scim_target *t, uv_handle_t *h)
{
	t->closing++;
	uv_close(h, on_closed);
}

void scim__finalize(struct scim_target *t)
{
	t->finalized = true;
	t->closing++;
	http_multi_close(t->http, on_http_closed, t);
	t->http = NULL;
	close_handle(t, (uv_handle_t *)&t->retry_timer);
	close_handle(t, (uv_handle_t *)&t->probe_timer);
	close_handle(t, (uv_handle_t *)&t->kick_timer);
	close_handle(t, (uv_handle_t *)&t->auth_timer);
}

int scim__transport_init(struct scim_target *t)
{
	char why[256];
	/* keep-alive: enough cached connections for a full window of requests */
	return http_multi_new(t->loop, t->cfg.max_in_flight + 2, &t->http, why, sizeof why);
}
