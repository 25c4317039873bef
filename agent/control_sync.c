/*
 * agent/control_sync.c -- the control API's view of what the sync holds back:
 *
 *   GET  /v1/deletes        what delete protection staged: deletes ("d:") and
 *                           group member removals ("m:", "type": "member")
 *   GET  /v1/failed         the failed objects ("f:") and the retry set ("r:")
 *   POST /v1/resync         {"failed": true} or {"dn": "..."}: retry now (leader)
 *   POST /v1/provision      {"dn": "...", "dry_run": bool}: one object now (leader;
 *                           sync/engine.h, engine_provision)
 *   GET  /v1/plan[?details=1]  what a full sync would do, writing nothing (any
 *                           node: engine_plan)
 *   POST /v1/sync/resume    quarantined: check the target now, the retry set due now
 *                           (leader; sync/engine.h, engine_resume)
 *
 * Everything listed is read from the replicated state, so every node answers
 * the GETs alike; the POST goes to the leader (a follower redirects).
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <jansson.h>

#include "agent/agent.h"
#include "agent/control.h"
#include "common/xalloc.h"
#include "sync/state/object.h"
#include "sync/state/retry.h"
#include "sync/text_json.h"

#define LIST_MAX 10000 /* entries per answer; "truncated" says when there are more */

struct list_ctx {
	const struct state *state;
	json_t *deletes, *failed, *retrying;
	size_t n;
};

/* The DN of an exported object, or NULL (malloc'd). */
static char *dn_of(const struct state *st, const char *anchor)
{
	char key[700], err[64], *dn = NULL;
	const void *v;
	size_t vlen, klen = object_key(OBJECT_KEY_OBJECT, anchor, key, sizeof key);
	struct object_record r;

	if (state_get(st, key, klen, &v, &vlen) && object_record_decode(v, vlen, &r, err, sizeof err) == 0) {
		dn = r.dn ? xstrdup(r.dn) : NULL;
		object_record_free(&r);
	}
	return dn;
}

static void anchor_of(const void *key, size_t klen, char *out, size_t size)
{
	size_t n = klen - 2 < size - 1 ? klen - 2 : size - 1;
	memcpy(out, (const char *)key + 2, n);
	out[n] = '\0';
}

/*
 * The strings listed are UTF-8: DNs and ids of decoded records (they were
 * JSON), anchors (ASCII), canopy's own words. So jansson's NULL is out of
 * memory.
 */
static void append(json_t *list, json_t *o)
{
	if (json_array_append_new(list, xcheck(o)) != 0)
		xoom("json_array_append_new");
}

static int list_one(void *ctx, const void *key, size_t klen, const void *val, size_t vlen)
{
	struct list_ctx *c = ctx;
	char prefix = klen > 2 ? ((const char *)key)[0] : 0, anchor[600], err[128];

	if (klen < 3 || ((const char *)key)[1] != ':')
		return 0;
	if (prefix == OBJECT_KEY_STAGED_MEMBER && c->deletes != NULL) {
		/* "m:<group>#<member>": a held member removal; value: the member */
		struct object_record r;
		char *hash, *gdn;
		if (c->n++ >= LIST_MAX || object_record_decode(val, vlen, &r, err, sizeof err) != 0)
			return 0;
		anchor_of(key, klen, anchor, sizeof anchor);
		hash = strchr(anchor, '#');
		if (hash != NULL)
			*hash = '\0';
		gdn = dn_of(c->state, anchor);
		append(c->deletes, json_pack("{s:s,s:s,s:s?,s:s?,s:s?}", "anchor", hash ? hash + 1 : anchor, "type",
					     "member", "dn", r.dn, "group", gdn, "target_id", r.target_id));
		free(gdn);
		object_record_free(&r);
	} else if (prefix == OBJECT_KEY_STAGED && c->deletes != NULL) {
		struct object_record r;
		if (c->n++ >= LIST_MAX || object_record_decode(val, vlen, &r, err, sizeof err) != 0)
			return 0;
		anchor_of(key, klen, anchor, sizeof anchor);
		append(c->deletes, json_pack("{s:s,s:s,s:s?,s:s?}", "anchor", anchor, "type", object_type_name(r.type),
					     "dn", r.dn, "target_id", r.target_id));
		object_record_free(&r);
	} else if ((prefix == OBJECT_KEY_FAILED || prefix == OBJECT_KEY_RETRY) && c->failed != NULL) {
		struct retry_record r;
		if (c->n++ >= LIST_MAX || retry_record_decode(val, vlen, &r, err, sizeof err) != 0)
			return 0;
		anchor_of(key, klen, anchor, sizeof anchor);
		json_t *e = xcheck(json_pack("{s:s,s:s,s:s,s:s?,s:I,s:I,s:I,s:I,s:s?}", "anchor", anchor, "type",
					     object_type_name(r.type), "kind", retry_kind_name(r.kind), "dn", r.dn,
					     "attempts", (json_int_t)r.attempts, "first_failed_ms",
					     (json_int_t)r.first_at_ms, "next_try_ms", (json_int_t)r.next_at_ms,
					     "http_status", (json_int_t)r.http_status, "error", r.error));
		if (r.member != NULL) {
			/* a failed member "<group>#<member>" (sync/engine/bisect.c),
			 * shaped like a staged member removal in /v1/deletes: the
			 * member's anchor and DN, the group's DN and anchor */
			char *hash = strchr(anchor, '#');
			if (hash != NULL)
				*hash = '\0';
			if (json_object_set_new(e, "type", xcheck(json_string("member"))) != 0 ||
			    json_object_set_new(e, "anchor", xcheck(json_string(r.member))) != 0 ||
			    json_object_set_new(e, "dn", r.member_dn ? xcheck(json_string(r.member_dn)) : json_null()) != 0 ||
			    json_object_set_new(e, "group", r.dn ? xcheck(json_string(r.dn)) : json_null()) != 0 ||
			    json_object_set_new(e, "group_anchor", xcheck(json_string(anchor))) != 0 ||
			    json_object_set_new(e, "change", xcheck(json_string(r.member_remove ? "remove" : "add"))) != 0)
				xoom("json_object_set_new");
		}
		append(prefix == OBJECT_KEY_FAILED ? c->failed : c->retrying, e);
		retry_record_free(&r);
	}
	return 0;
}


static void handle_resync(struct agent *a, const struct http_request *req, struct http_reply *reply)
{
	char dn[2048];
	bool failed = false;
	int rv;
	size_t n = 0;
	char err[600];

	if (a->engine == NULL) {
		http_reply_error(reply, 409, "sync is not configured on this node");
		return;
	}
	if (control_parse_resync_body(req->body, req->body_len, dn, sizeof dn, &failed, err, sizeof err) != 0) {
		http_reply_error(reply, 400, "%s", err);
		return;
	}
	if (control_redirect_to_leader(a, req, reply))
		return;
	rv = engine_resync(a->engine, dn[0] ? dn : NULL, failed, &n, err, sizeof err);
	if (rv == -ENOENT) {
		http_reply_error(reply, 404, "%s", err);
		return;
	}
	if (rv != 0) {
		http_reply_error(reply, 409, "%s", err);
		return;
	}
	control_reply_json(reply, 202, json_pack("{s:s,s:I}", "result", "resync started", "objects", (json_int_t)n));
}

int control_parse_resync_body(const char *body, size_t len, char *dn, size_t dn_len, bool *failed,
			      char *errmsg, size_t errlen)
{
	json_error_t jerr;
	json_t *o;
	const char *d = NULL;
	int f = 0, rc = 0;

	dn[0] = '\0';
	*failed = false;
	o = json_loadb(len ? body : "{}", len ? len : 2, 0, &jerr);
	if (o == NULL || json_unpack_ex(o, &jerr, JSON_STRICT, "{s?s,s?b}", "dn", &d, "failed", &f) != 0) {
		snprintf(errmsg, errlen, "bad request body: %s (expected {\"dn\": \"...\"} or {\"failed\": true})",
			 jerr.text);
		rc = -EINVAL;
	} else if ((d == NULL) == !f) {
		snprintf(errmsg, errlen, "say what to resync: {\"dn\": \"...\"} or {\"failed\": true}");
		rc = -EINVAL;
	} else if (d != NULL && (d[0] == '\0' || strlen(d) >= dn_len)) {
		snprintf(errmsg, errlen, "\"dn\" is empty or too long");
		rc = -EINVAL;
	} else {
		if (d != NULL)
			snprintf(dn, dn_len, "%s", d);
		*failed = f != 0;
	}
	json_decref(o);
	return rc;
}

int control_parse_provision_body(const char *body, size_t len, char *dn, size_t dn_len, bool *dry_run,
				 char *errmsg, size_t errlen)
{
	json_error_t jerr;
	json_t *o;
	const char *d = NULL;
	int dr = 0, rc = 0;

	dn[0] = '\0';
	*dry_run = false;
	o = json_loadb(len ? body : "{}", len ? len : 2, 0, &jerr);
	if (o == NULL || json_unpack_ex(o, &jerr, JSON_STRICT, "{s:s,s?b}", "dn", &d, "dry_run", &dr) != 0) {
		snprintf(errmsg, errlen, "bad request body: %s (expected {\"dn\": \"...\", \"dry_run\": false})",
			 jerr.text);
		rc = -EINVAL;
	} else if (d[0] == '\0' || strlen(d) >= dn_len) {
		snprintf(errmsg, errlen, "\"dn\" is empty or too long");
		rc = -EINVAL;
	} else {
		snprintf(dn, dn_len, "%s", d);
		*dry_run = dr != 0;
	}
	json_decref(o);
	return rc;
}

/* The HTTP status of an engine report's failure. */
static unsigned report_http_status(int status)
{
	switch (status) {
	case -EINVAL:
		return 400;
	case -ENOTSUP:
		return 501;
	case -EAGAIN:
	case -EBUSY:
		return 409;
	case -ECANCELED:
		return 503;
	default:
		return 502; /* the source could not be read */
	}
}

/* A provision or plan answered by the engine (engine_report_cb). */
static void on_report(void *data, int status, json_t *report, const char *errmsg)
{
	struct http_pending *p = data;
	struct http_reply reply;

	memset(&reply, 0, sizeof reply);
	if (status != 0) {
		http_reply_error(&reply, report_http_status(status), "%s", errmsg);
	} else {
		/* A DN the directory does not have, with nothing exported under
		 * it: nothing to provision, an error for the operator (404). */
		json_t *first = json_array_get(json_object_get(report, "steps"), 0);
		const char *rs = json_string_value(json_object_get(first, "result"));
		const char *act = json_string_value(json_object_get(report, "action"));
		json_t *steps = json_object_get(report, "steps");
		json_t *last = json_array_get(steps, json_array_size(steps) - 1);
		const char *wr = json_string_value(json_object_get(last, "result"));
		const char *dn = json_string_value(json_object_get(report, "dn"));
		if (rs != NULL && strcmp(rs, "not_found") == 0 && act != NULL && strcmp(act, "none") == 0) {
			json_object_set_new(report, "error",
					    json_sprintf("the directory has no entry %s, and nothing is exported under it",
							 dn));
			control_reply_json(&reply, 404, report);
		} else if (wr != NULL && (strcmp(wr, "retry") == 0 || strcmp(wr, "failed") == 0)) {
			/* the target did not take it: not a success (the report
			 * stays in the body, with the error) */
			const char *why = json_string_value(json_object_get(last, "error"));
			json_object_set_new(report, "error",
					    json_sprintf("%s %s: the target did not take it (%s); %s", act ? act : "write",
							 dn, why ? why : "no detail",
							 strcmp(wr, "retry") == 0 ? "it is in the retry set"
										  : "it is a failed object"));
			control_reply_json(&reply, 502, report);
		} else {
			control_reply_json(&reply, 200, report);
		}
	}
	http_finish(p, &reply);
}

static void handle_provision(struct agent *a, const struct http_request *req, struct http_reply *reply)
{
	char dn[2048], err[600];
	bool dry_run = false;
	struct http_pending *p;
	int rv;

	if (a->engine == NULL) {
		http_reply_error(reply, 409, "sync is not configured on this node");
		return;
	}
	if (control_parse_provision_body(req->body, req->body_len, dn, sizeof dn, &dry_run, err, sizeof err) != 0) {
		http_reply_error(reply, 400, "%s", err);
		return;
	}
	if (control_redirect_to_leader(a, req, reply))
		return;
	p = http_defer(req);
	rv = engine_provision(a->engine, dn, dry_run, on_report, p, err, sizeof err);
	if (rv != 0) {
		http_undefer(req); /* frees the ticket */
		http_reply_error(reply, report_http_status(rv), "%s", err);
	}
}

static void handle_plan(struct agent *a, const struct http_request *req, struct http_reply *reply)
{
	const char *d = http_request_arg(req, "details");
	struct http_pending *p;
	char err[600];
	int rv;

	if (a->engine == NULL) {
		http_reply_error(reply, 409, "sync is not configured on this node");
		return;
	}
	p = http_defer(req);
	rv = engine_plan(a->engine, d != NULL && strcmp(d, "0") != 0, on_report, p, err, sizeof err);
	if (rv != 0) {
		http_undefer(req);
		http_reply_error(reply, report_http_status(rv), "%s", err);
	}
}

/* RFC 3339 UTC with milliseconds (what the provisioning log writes), or null. */
static json_t *time_ms_json(int64_t ms)
{
	char buf[40];
	struct tm tm;
	time_t t = (time_t)(ms / 1000);
	size_t n;

	if (ms <= 0)
		return json_null();
	gmtime_r(&t, &tm);
	n = strftime(buf, sizeof buf, "%Y-%m-%dT%H:%M:%S", &tm);
	snprintf(buf + n, sizeof buf - n, ".%03dZ", (int)(ms % 1000));
	return xcheck(json_string(buf));
}

json_t *control_quarantine_json(const struct engine_stats *es)
{
	const struct engine_quarantine_info *qi = &es->quarantine;
	json_t *o = xcheck(json_pack("{s:s,s:o,s:o,s:o,s:o}", "reason", es->quarantine_reason, "detail",
				     text_json(es->quarantine_detail), "since", time_ms_json(qi->since_ms),
				     "next_retry_at", time_ms_json(qi->next_retry_at_ms), "checked_at",
				     time_ms_json(qi->checked_at_ms)));
	json_t *last;

	if (strcmp(qi->side, "target") == 0)
		last = json_pack("{s:s,s:s,s:o,s:I,s:o}", "side", "target", "method", qi->method, "path",
				 text_json(qi->path), "status", (json_int_t)qi->status, "time",
				 time_ms_json(qi->at_ms));
	else if (strcmp(qi->side, "source") == 0)
		last = json_pack("{s:s,s:s,s:I,s:o}", "side", "source", "operation", qi->method, "result_code",
				 (json_int_t)qi->status, "time", time_ms_json(qi->at_ms));
	else
		last = json_null();
	if (json_object_set_new(o, "last_request", xcheck(last)) != 0)
		xoom("json_object_set_new");
	return o;
}

/*
 * The answer says what was asked, not how it ended: the check of the target
 * is asynchronous. canopyctl resume then watches sync.quarantine: gone, or
 * checked_at at or after "resumed_at" with the quarantine still there.
 */
static void handle_resume(struct agent *a, const struct http_request *req, struct http_reply *reply)
{
	char reason[64], err[600];
	struct timespec ts;
	int rv;

	if (a->engine == NULL) {
		http_reply_error(reply, 409, "sync is not configured on this node");
		return;
	}
	if (control_redirect_to_leader(a, req, reply))
		return;
	clock_gettime(CLOCK_REALTIME, &ts);
	rv = engine_resume(a->engine, reason, sizeof reason, err, sizeof err);
	if (rv == -EALREADY) {
		control_reply_json(reply, 200, json_pack("{s:s}", "result", "not quarantined"));
		return;
	}
	if (rv != 0) {
		http_reply_error(reply, 409, "%s", err);
		return;
	}
	control_reply_json(reply, 202, json_pack("{s:s,s:s,s:I,s:o}", "result", "resume started", "reason", reason,
						 "node_id", (json_int_t)a->cfg.node.id, "resumed_at",
						 time_ms_json((int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000)));
}

bool control_sync_handle(struct agent *a, const struct http_request *req, struct http_reply *reply)
{
	struct list_ctx c = {.state = &a->state};
	json_t *o;

	if (strcmp(req->path, "/v1/deletes") == 0 || strcmp(req->path, "/v1/failed") == 0) {
		if (strcmp(req->method, "GET") != 0) {
			http_reply_error(reply, 405, "%s %s: use GET", req->method, req->path);
			return true;
		}
		if (strcmp(req->path, "/v1/deletes") == 0) {
			c.deletes = xcheck(json_array());
		} else {
			c.failed = xcheck(json_array());
			c.retrying = xcheck(json_array());
		}
		state_foreach(&a->state, list_one, &c);
		o = xcheck(c.deletes != NULL ? json_pack("{s:o}", "deletes", c.deletes)
					     : json_pack("{s:o,s:o}", "failed", c.failed, "retrying", c.retrying));
		if (json_object_set_new(o, "truncated", json_boolean(c.n > LIST_MAX)) != 0)
			xoom("json_object_set_new");
		control_reply_json(reply, 200, o);
		return true;
	}
	if (strcmp(req->path, "/v1/sync/resume") == 0) {
		if (strcmp(req->method, "POST") != 0)
			http_reply_error(reply, 405, "%s %s: use POST", req->method, req->path);
		else
			handle_resume(a, req, reply);
		return true;
	}
	if (strcmp(req->path, "/v1/resync") == 0) {
		if (strcmp(req->method, "POST") != 0)
			http_reply_error(reply, 405, "%s %s: use POST", req->method, req->path);
		else
			handle_resync(a, req, reply);
		return true;
	}
	if (strcmp(req->path, "/v1/provision") == 0) {
		if (strcmp(req->method, "POST") != 0)
			http_reply_error(reply, 405, "%s %s: use POST", req->method, req->path);
		else
			handle_provision(a, req, reply);
		return true;
	}
	if (strcmp(req->path, "/v1/plan") == 0) {
		if (strcmp(req->method, "GET") != 0)
			http_reply_error(reply, 405, "%s %s: use GET", req->method, req->path);
		else
			handle_plan(a, req, reply);
		return true;
	}
	return false;
}
