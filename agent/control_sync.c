/*
 * agent/control_sync.c -- the control API's view of what the sync holds back:
 *
 *   GET  /v1/deletes        the deletes staged by delete protection ("d:")
 *   GET  /v1/failed         the failed objects ("f:") and the retry set ("r:")
 *   POST /v1/resync         {"failed": true} or {"dn": "..."}: retry now (leader)
 *
 * Everything listed is read from the replicated state, so every node answers
 * the GETs alike; the POST goes to the leader (a follower redirects).
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "agent/agent.h"
#include "sync/state/object.h"
#include "sync/state/retry.h"

#define LIST_MAX 10000 /* entries per answer; "truncated" says when there are more */

struct list_ctx {
	json_t *deletes, *failed, *retrying;
	size_t n;
};

static void anchor_of(const void *key, size_t klen, char *out, size_t size)
{
	size_t n = klen - 2 < size - 1 ? klen - 2 : size - 1;
	memcpy(out, (const char *)key + 2, n);
	out[n] = '\0';
}

static int list_one(void *ctx, const void *key, size_t klen, const void *val, size_t vlen)
{
	struct list_ctx *c = ctx;
	char prefix = klen > 2 ? ((const char *)key)[0] : 0, anchor[600], err[128];

	if (klen < 3 || ((const char *)key)[1] != ':')
		return 0;
	if (prefix == OBJECT_KEY_STAGED && c->deletes != NULL) {
		struct object_record r;
		if (c->n++ >= LIST_MAX || object_record_decode(val, vlen, &r, err, sizeof err) != 0)
			return 0;
		anchor_of(key, klen, anchor, sizeof anchor);
		json_array_append_new(c->deletes, json_pack("{s:s,s:s,s:s?,s:s?}", "anchor", anchor, "type",
							    object_type_name(r.type), "dn", r.dn, "target_id",
							    r.target_id));
		object_record_free(&r);
	} else if ((prefix == OBJECT_KEY_FAILED || prefix == OBJECT_KEY_RETRY) && c->failed != NULL) {
		struct retry_record r;
		if (c->n++ >= LIST_MAX || retry_record_decode(val, vlen, &r, err, sizeof err) != 0)
			return 0;
		anchor_of(key, klen, anchor, sizeof anchor);
		json_array_append_new(prefix == OBJECT_KEY_FAILED ? c->failed : c->retrying,
				      json_pack("{s:s,s:s,s:s,s:s?,s:I,s:I,s:I,s:I,s:s?}", "anchor", anchor, "type",
						object_type_name(r.type), "kind", retry_kind_name(r.kind), "dn", r.dn,
						"attempts", (json_int_t)r.attempts, "first_failed_ms",
						(json_int_t)r.first_at_ms, "next_try_ms", (json_int_t)r.next_at_ms,
						"http_status", (json_int_t)r.http_status, "error", r.error));
		retry_record_free(&r);
	}
	return 0;
}

static void reply_json(struct http_reply *reply, unsigned status, json_t *o)
{
	reply->body = json_dumps(o, JSON_COMPACT);
	json_decref(o);
	reply->status = status;
	reply->content_type = "application/json";
	reply->body_len = reply->body ? strlen(reply->body) : 0;
}

static void handle_resync(struct agent *a, const struct http_request *req, struct http_reply *reply)
{
	json_error_t jerr;
	json_t *body;
	const char *dn = NULL;
	int failed = 0, rv;
	size_t n = 0;
	char err[600];

	if (a->engine == NULL) {
		http_reply_error(reply, 409, "sync is not configured on this node");
		return;
	}
	body = json_loadb(req->body_len ? req->body : "{}", req->body_len ? req->body_len : 2, 0, &jerr);
	if (body == NULL || json_unpack_ex(body, &jerr, JSON_STRICT, "{s?s,s?b}", "dn", &dn, "failed", &failed) != 0) {
		http_reply_error(reply, 400, "bad request body: %s (expected {\"dn\": \"...\"} or {\"failed\": true})",
				 jerr.text);
		json_decref(body);
		return;
	}
	if ((dn == NULL) == !failed) {
		http_reply_error(reply, 400, "say what to resync: {\"dn\": \"...\"} or {\"failed\": true}");
		json_decref(body);
		return;
	}
	if (control_redirect_to_leader(a, req, reply)) {
		json_decref(body);
		return;
	}
	rv = engine_resync(a->engine, dn, failed != 0, &n, err, sizeof err);
	json_decref(body);
	if (rv == -ENOENT) {
		http_reply_error(reply, 404, "%s", err);
		return;
	}
	if (rv != 0) {
		http_reply_error(reply, 409, "%s", err);
		return;
	}
	reply_json(reply, 202, json_pack("{s:s,s:I}", "result", "resync started", "objects", (json_int_t)n));
}

bool control_sync_handle(struct agent *a, const struct http_request *req, struct http_reply *reply)
{
	struct list_ctx c = {0};
	json_t *o;

	if (strcmp(req->path, "/v1/deletes") == 0 || strcmp(req->path, "/v1/failed") == 0) {
		if (strcmp(req->method, "GET") != 0) {
			http_reply_error(reply, 405, "%s %s: use GET", req->method, req->path);
			return true;
		}
		if (strcmp(req->path, "/v1/deletes") == 0) {
			c.deletes = json_array();
		} else {
			c.failed = json_array();
			c.retrying = json_array();
		}
		state_foreach(&a->state, list_one, &c);
		o = c.deletes != NULL ? json_pack("{s:o}", "deletes", c.deletes)
				      : json_pack("{s:o,s:o}", "failed", c.failed, "retrying", c.retrying);
		json_object_set_new(o, "truncated", json_boolean(c.n > LIST_MAX));
		reply_json(reply, 200, o);
		return true;
	}
	if (strcmp(req->path, "/v1/resync") == 0) {
		if (strcmp(req->method, "POST") != 0)
			http_reply_error(reply, 405, "%s %s: use POST", req->method, req->path);
		else
			handle_resync(a, req, reply);
		return true;
	}
	return false;
}
