/*
 * sync/target/scim_answer.c -- what an answer means: usable or not (RFC 7644
 * shapes), the target's fault or the object's, the next step of the
 * operation, and the results of a bulk request.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "sync/target/scim_internal.h"
#include "sync/target/scim_test.h"

/* "scimType: detail" from a SCIM error body (RFC 7644 §3.12), else a
 * printable prefix of the raw body. */
static void error_detail(const struct req *r, const struct reply *rep, char *out, size_t len)
{
	out[0] = '\0';
	if (rep->json != NULL) {
		const char *detail = json_string_value(scim__attr(rep->json, "detail"));
		const char *type = json_string_value(scim__attr(rep->json, "scimType"));
		if (detail != NULL || type != NULL) {
			snprintf(out, len, "%s%s%s", type != NULL ? type : "", type != NULL && detail != NULL ? ": " : "",
				 detail != NULL ? detail : "");
			return;
		}
	}
	size_t n = r->resp_len < 200 ? r->resp_len : 200, o = 0;
	for (size_t i = 0; i < n && o + 1 < len; i++) {
		char c = r->resp[i];
		out[o++] = (c >= 0x20 && c < 0x7f) ? c : ' ';
	}
	out[o] = '\0';
}

/*
 * A member PATCH refused: is it about a value it carries? RFC 7644 §3.12
 * gives 400 with scimType invalidValue ("a required value was missing, or
 * the value specified was not compatible"), noTarget (the path matched
 * nothing: a member to remove that is not there) or invalidSyntax; servers
 * that send no scimType at all are common, and a 400 without one is taken the
 * same way. PATCH is atomic (§3.5.2: "if any operation fails ... the entire
 * request fails"), so a subset of the values may pass: the engine bisects.
 * Not about values: 409 (a conflict that may clear, the retry set), 404 (the
 * group is gone, group_gone), 413 (too large: members_per_patch) and other
 * 4xx. Also says which values of earlier chunks landed, so that only the rest
 * are sent again (none known after a read-back: its lists are filtered).
 */
static void members_refused(struct sop *s, const struct reply *rep)
{
	struct scim_op *op = s->op;
	const char *type = rep->json != NULL ? json_string_value(scim__attr(rep->json, "scimType")) : NULL;

	op->values_refused = rep->http == 400 &&
			     (type == NULL || strcmp(type, "invalidValue") == 0 || strcmp(type, "noTarget") == 0 ||
			      strcmp(type, "invalidSyntax") == 0);
	op->add_done = s->eff_add == NULL && s->eff_rm == NULL ? s->add_pos : 0;
	op->rm_done = s->eff_add == NULL && s->eff_rm == NULL ? s->rm_pos : 0;
}

/* "METHOD PATH: HTTP 503: scimType: detail" or "METHOD PATH: <curl error>" */
void scim__describe(const struct req *r, const struct reply *rep, char *out, size_t len)
{
	char d[320];
	if (rep->rc != CURLE_OK) {
		char why[CURL_ERROR_SIZE + 600];
		http_tls_explain(r->t ? r->t->cfg.tls : NULL, r->t ? r->t->url : "", rep->rc, r->errbuf, why, sizeof why);
		snprintf(out, len, "%s %s: %s", r->method, r->path, why);
		return;
	}
	error_detail(r, rep, d, sizeof d);
	snprintf(out, len, "%s %s: HTTP %ld%s%s", r->method, r->path, rep->http, d[0] ? ": " : "", d);
}

static int curl_errno(CURLcode rc)
{
	switch (rc) {
	case CURLE_OPERATION_TIMEDOUT:
		return -ETIMEDOUT;
	case CURLE_COULDNT_CONNECT:
		return -ECONNREFUSED;
	case CURLE_COULDNT_RESOLVE_HOST:
		return -EHOSTUNREACH;
	default:
		return -EIO;
	}
}

/* libcurl errors no retry can fix */
static bool curl_permanent(CURLcode rc)
{
	return rc == CURLE_URL_MALFORMAT || rc == CURLE_UNSUPPORTED_PROTOCOL || rc == CURLE_BAD_FUNCTION_ARGUMENT ||
	       rc == CURLE_OUT_OF_MEMORY || rc == CURLE_WRITE_ERROR;
}

/* Resources of a list response (RFC 7644 §3.4.2) whose externalId is `ext`
 * (exact: caseExact, RFC 7643 §3.1) -- or, with ext NULL, that have none. */
static json_t *pick(json_t *list, const char *ext, size_t *n_out, size_t *n_other)
{
	json_t *res = scim__attr(list, "Resources"), *v, *first = NULL;
	size_t i;
	*n_out = *n_other = 0;
	json_array_foreach(res, i, v)
	{
		if (json_string_value(scim__attr(v, "id")) == NULL)
			continue;
		const char *e = json_string_value(scim__attr(v, "externalId"));
		bool ok = ext != NULL ? (e != NULL && strcmp(e, ext) == 0) : (e == NULL || e[0] == '\0');
		if (!ok) {
			(*n_other)++;
			continue;
		}
		if ((*n_out)++ == 0)
			first = v;
	}
	return first;
}

/*
 * With an external_id_prefix (scim.h, "Several domains"), the soft match
 * adopts only this domain's objects: one found by name whose externalId does
 * not start with the prefix -- another domain's, or one made by hand without
 * externalId -- is refused for good and left untouched, and the error names
 * both objects. Returns true when s was failed so.
 */
static bool refuse_foreign(struct sop *s, json_t *list)
{
	const char *prefix = s->t->cfg.external_id_prefix;
	size_t plen = strlen(prefix), i;
	json_t *v;

	if (plen == 0)
		return false;
	json_array_foreach(scim__attr(list, "Resources"), i, v)
	{
		const char *id = json_string_value(scim__attr(v, "id"));
		const char *e = json_string_value(scim__attr(v, "externalId"));
		if (id == NULL || (e != NULL && strncmp(e, prefix, plen) == 0))
			continue;
		const char *attr = s->op->type == OBJECT_GROUP ? "displayName" : "userName";
		const char *name = json_string_value(json_object_get(s->op->resource, attr));
		s->op->refused = true;
		scim__fail(s, -EEXIST,
			   "upsert %s: %s \"%s\" is taken in the target by id %s (externalId %s%s%s), which is not "
			   "this agent's (external_id_prefix \"%s\"): not adopted, left unchanged",
			   s->ext, attr, name != NULL ? name : "", id, e != NULL && e[0] ? "\"" : "",
			   e != NULL && e[0] ? e : "none", e != NULL && e[0] ? "\"" : "", prefix);
		return true;
	}
	return false;
}

/* Does `obj` hold `value` in the attribute path `path` ([urn:]attr[.sub],
 * scim.h SCIM_TAKEN)? For the scan of a target without filtering; values
 * compare case-insensitively, as userName does (RFC 7643 §4.1.1). */
static bool holds(const json_t *obj, const char *path, const char *value)
{
	char buf[512], *attr = buf, *sub;
	const char *colon;
	json_t *v, *el;
	size_t i;

	snprintf(buf, sizeof buf, "%s", path);
	if (strncasecmp(buf, "urn:", 4) == 0 && (colon = strrchr(path, ':')) != NULL) {
		buf[colon - path] = '\0';
		obj = scim__attr(obj, buf);
		attr = buf + (colon - path) + 1;
	}
	if ((sub = strchr(attr, '.')) != NULL)
		*sub++ = '\0';
	v = scim__attr(obj, attr);
	if (sub == NULL)
		return json_is_string(v) && strcasecmp(json_string_value(v), value) == 0;
	if (json_is_object(v))
		return holds(v, sub, value);
	json_array_foreach(v, i, el)
		if (holds(el, sub, value))
			return true;
	return false;
}

/* SCIM_TAKEN: an object of this page holds the value and is not the one
 * carrying our externalId (an object of ours may keep its own value). */
static bool taken_in(const struct sop *s, const json_t *list)
{
	json_t *v;
	size_t i;

	json_array_foreach(scim__attr(list, "Resources"), i, v)
	{
		const char *e = json_string_value(scim__attr(v, "externalId"));
		if (s->ext != NULL && e != NULL && strcmp(e, s->ext) == 0)
			continue;
		if (!s->t->caps.filter && !holds(v, s->op->taken_attr, s->op->taken_value))
			continue;
		return true;
	}
	return false;
}

static void adopt_id(struct sop *s, const char *id)
{
	snprintf(s->id, sizeof s->id, "%s", id);
	s->found = true;
	s->page = 0;
	scim__next_step(s, s->op->action == SCIM_DELETE ? ST_DELETE : ST_UPDATE);
}

/* A user's first email value (RFC 7643 §4.1.2 "emails"), or NULL. */
static const char *first_email(json_t *resource)
{
	json_t *e = json_array_get(scim__attr(resource, "emails"), 0);
	const char *v = json_string_value(scim__attr(e, "value"));
	return v != NULL && v[0] != '\0' ? v : NULL;
}

static void adopt(struct sop *s, json_t *obj)
{
	adopt_id(s, json_string_value(scim__attr(obj, "id")));
}

#define MAX_PAGES 10000 /* a listing longer than this many pages is not read to its end */

/* A list answer (RFC 7644 §3.4.2) that has more after it: move s to the
 * next page (RFC 7644 §3.4.2.4: startIndex is 1-based; itemsPerPage may be
 * smaller than the count asked for, so the next start is this one plus what
 * came) and return true. */
static bool next_page(struct sop *s, const json_t *list)
{
	size_t start = s->page > 0 ? s->page : 1;
	size_t got = json_array_size(scim__attr(list, "Resources"));
	json_int_t total = json_integer_value(scim__attr(list, "totalResults"));

	if (got == 0 || total <= 0 || start - 1 + got >= (size_t)total || (start - 1) / got >= MAX_PAGES)
		return false;
	s->page = start + got;
	s->t->stats.pages++;
	s->hops = 0; /* pages are progress, not churn */
	scim__next_step(s, s->step);
	return true;
}

/* Without PATCH (auto style): a 501 to a PATCH says so even where the
 * ServiceProviderConfig did not (RFC 7644 §3.5.2: "501 (Not Implemented)"):
 * switch to put and send the step again that way. */
static bool patch_refused(struct sop *s, const struct req *r, const struct reply *rep)
{
	struct scim_target *t = s->t;

	if (rep->http != 501 || strcmp(r->method, "PATCH") != 0 || t->cfg.patch_style != SCIM_PATCH_AUTO ||
	    t->style == SCIM_PATCH_PUT)
		return false;
	t->caps.patch = false;
	scim__choose_style(t);
	scim__log(t, 2, "the target does not implement PATCH: writing whole resources (PUT) from now on",
		  "%s %s: HTTP 501", r->method, r->path);
	s->tries = 0;
	scim__next_step(s, s->step);
	return true;
}

/* A member removal path refused as such (auto style): the server takes no
 * value filter in a PATCH path (RFC 7644 §3.12 invalidPath / invalidFilter);
 * send removals as a value list from now on, and this chunk again. */
static bool remove_path_refused(struct sop *s, const struct reply *rep)
{
	struct scim_target *t = s->t;
	const char *type = rep->json != NULL ? json_string_value(scim__attr(rep->json, "scimType")) : NULL;

	if (rep->http != 400 || s->chunk_rm == 0 || t->rm_values || t->cfg.patch_style != SCIM_PATCH_AUTO ||
	    type == NULL || (strcmp(type, "invalidPath") != 0 && strcmp(type, "invalidFilter") != 0))
		return false;
	t->rm_values = true;
	scim__choose_style(t);
	scim__log(t, 2, "the target refuses member removal paths: removing members by value from now on",
		  "PATCH %s: HTTP 400 %s", s->path, type);
	s->tries = 0;
	scim__next_step(s, ST_MEMBERS);
	return true;
}

/* The answer to a step that was not a transient failure or 401/403. */
static void step_reply(struct sop *s, const struct req *r, const struct reply *rep)
{
	struct scim_op *op = s->op;
	long h = rep->http;
	size_t n, other;

	switch (s->step) {
	case ST_UPDATE:
		if (is2xx(h)) {
			snprintf(op->result_id, sizeof op->result_id, "%s", s->id);
			op->matched = s->found;
			scim__finish(s, 0);
			return;
		}
		if (h == 404 && op->patch) { /* nothing left to patch (e.g. to disable) */
			scim__finish(s, 0);
			return;
		}
		if (h == 404) { /* vanished in the target: create it again */
			s->id[0] = '\0';
			s->found = false;
			scim__next_step(s, ST_CREATE);
			return;
		}
		break;
	case ST_CREATE:
		if (is2xx(h)) {
			const char *id = json_string_value(scim__attr(rep->json, "id"));
			if (id == NULL || strlen(id) >= sizeof op->result_id) {
				scim__fail(s, -EPROTO, "%s %s: HTTP %ld without a usable \"id\" in the answer", r->method,
					   r->path, h);
				return;
			}
			snprintf(op->result_id, sizeof op->result_id, "%s", id);
			op->created = true;
			scim__finish(s, 0);
			return;
		}
		if (h == 409) { /* RFC 7644 §3.3: uniqueness -- it exists: find it */
			scim__next_step(s, op->anchor != NULL ? ST_FIND_EXT : ST_FIND_NAME);
			return;
		}
		break;
	case ST_FIND_EXT:
		if (is2xx(h)) {
			json_t *obj = pick(rep->json, s->ext, &n, &other);
			if (obj != NULL)
				adopt(s, obj);
			else if (next_page(s, rep->json))
				return;
			else if (op->action == SCIM_DELETE)
				scim__finish(s, 0); /* nothing carries this anchor: already gone */
			else {
				s->page = 0;
				scim__next_step(s, ST_FIND_NAME);
			}
			return;
		}
		break;
	case ST_FIND_NAME:
		if (is2xx(h)) {
			json_t *obj;
			/* Our own anchor, found by name: a server whose externalId
			 * filter finds nothing (docs/targets.md, "Interop matrix"). */
			if (s->ext != NULL && (obj = pick(rep->json, s->ext, &n, &other)) != NULL) {
				adopt(s, obj);
				return;
			}
			/* Soft match: adopt an object only if no other anchor owns it. */
			if (refuse_foreign(s, rep->json))
				return;
			obj = pick(rep->json, NULL, &n, &other);
			if (s->name_n == 0 && obj != NULL)
				snprintf(s->name_id, sizeof s->name_id, "%s", json_string_value(scim__attr(obj, "id")));
			s->name_n += n;
			s->name_other += other;
			if (s->name_n <= 1 && next_page(s, rep->json))
				return;
			n = s->name_n;
			other = s->name_other;
			if (n == 1) {
				adopt_id(s, s->name_id);
			} else if (n > 1) {
				scim__fail(s, -EPROTO, "upsert %s: %s: %zu objects without externalId match; refusing to "
						 "guess", op->anchor, r->path, n);
			} else if (other > 0) {
				scim__fail(s, -EEXIST, "upsert %s: %s: the name is taken by an object with another "
						 "externalId", op->anchor, r->path);
			} else if (op->type == OBJECT_USER && s->ext != NULL && first_email(op->resource) != NULL) {
				scim__next_step(s, ST_FIND_EMAIL);
			} else {
				scim__fail(s, -EPROTO, "upsert %s: the target reports a conflict (409) but neither "
						 "externalId nor name finds the object", op->anchor);
			}
			return;
		}
		break;
	case ST_FIND_EMAIL:
		/* A server that keys users by email and reads every filter as
		 * "email is" (BoxyHQ Polis): only an object that carries our
		 * anchor is adopted, never a soft match. */
		if (is2xx(h)) {
			json_t *obj = pick(rep->json, s->ext, &n, &other);
			if (obj != NULL)
				adopt(s, obj);
			else
				scim__fail(s, -EPROTO, "upsert %s: the target reports a conflict (409) but neither "
						 "externalId, name nor email finds the object", op->anchor);
			return;
		}
		break;
	case ST_FIND_TAKEN:
		if (is2xx(h)) {
			if (taken_in(s, rep->json))
				op->taken = true;
			else if (next_page(s, rep->json))
				return;
			scim__finish(s, 0);
			return;
		}
		break;
	case ST_DELETE:
		if (is2xx(h) || h == 404) { /* 404: already gone -- the goal is reached */
			snprintf(op->result_id, sizeof op->result_id, "%s", s->id);
			scim__finish(s, 0);
			return;
		}
		break;
	case ST_READ_MEMBERS:
		if (is2xx(h)) {
			scim__members_filter(s, rep->json);
			scim__next_step(s, ST_MEMBERS);
			return;
		}
		if (h == 404)
			goto group_gone;
		break;
	case ST_MEMBERS:
		if (is2xx(h)) {
			s->add_pos += s->chunk_add;
			s->rm_pos += s->chunk_rm;
			s->hops = 0; /* chunks are progress, not churn */
			scim__next_step(s, ST_MEMBERS);
			return;
		}
		if (h == 404)
			goto group_gone;
		if (patch_refused(s, r, rep) || remove_path_refused(s, rep))
			return;
		members_refused(s, rep);
		break;
	case ST_READ_OBJ:
		if (is2xx(h) && json_is_object(rep->json)) {
			const char *v = json_string_value(scim__attr(json_object_get(rep->json, "meta"), "version"));
			json_decref(s->obj);
			s->obj = json_incref(rep->json);
			snprintf(s->etag, sizeof s->etag, "%s", v != NULL && strlen(v) < sizeof s->etag ? v : "");
			scim__next_step(s, ST_WRITE_OBJ);
			return;
		}
		if (h == 404)
			goto gone;
		break;
	case ST_WRITE_OBJ:
		if (is2xx(h)) {
			snprintf(op->result_id, sizeof op->result_id, "%s", s->id);
			op->matched = s->found;
			scim__finish(s, 0);
			return;
		}
		if (h == 412) { /* RFC 7232 §4.2: changed since we read it: read again */
			json_decref(s->obj);
			s->obj = NULL;
			s->tries = 0;
			scim__next_step(s, ST_READ_OBJ);
			return;
		}
		if (h == 404)
			goto gone;
		if (op->action == SCIM_MEMBERS)
			members_refused(s, rep);
		break;
	}
	if ((s->step == ST_UPDATE) && patch_refused(s, r, rep))
		return;
	scim__fail_http(s, r, rep);
	return;
gone: /* read-change-write of an object the target no longer has */
	if (op->action == SCIM_MEMBERS)
		goto group_gone;
	if (op->patch) { /* nothing left to patch (e.g. to disable) */
		scim__finish(s, 0);
		return;
	}
	s->id[0] = '\0'; /* vanished: create it again */
	s->found = false;
	scim__next_step(s, ST_CREATE);
	return;
group_gone: { /* SCIM_MEMBERS on a group the target no longer has */
	char detail[1024];
	scim__describe(r, rep, detail, sizeof detail);
	scim__fail(s, -ENOENT, "%s", detail);
}
}

/*
 * Is this answer unusable for s's step? A 3xx (we never follow redirects:
 * a bearer token must not travel to another origin), or a 2xx whose body is
 * not what RFC 7644 promises: not JSON (an HTML error page of a proxy), not an
 * object, a create without a string "id" (§3.3), a list without a
 * "Resources" array (§3.4.2), an "id" of the wrong type. Fills why (if given).
 */
static bool unusable_answer(const struct sop *s, const struct req *r, const struct reply *rep, char *why,
			    size_t len)
{
	const char *problem = NULL;
	json_t *j = rep->json, *id;

	if (rep->rc != CURLE_OK)
		return false;
	if (rep->http >= 300 && rep->http < 400)
		problem = "a redirect (not followed)";
	else if (!is2xx(rep->http) || r->kind != R_OP)
		return false;
	else if (r->resp_len > 0 && j == NULL)
		problem = "the body is not JSON";
	else if (j != NULL && !json_is_object(j))
		problem = "the body is not a JSON object";
	else if (s->step == ST_CREATE && (!json_is_string(id = scim__attr(j, "id")) ||
					  json_string_length(id) == 0 || json_string_length(id) >= 128))
		problem = "a create answered without a usable \"id\"";
	else if ((s->step == ST_UPDATE || s->step == ST_CREATE) && j != NULL &&
		 (id = scim__attr(j, "id")) != NULL && !json_is_string(id))
		problem = "\"id\" is not a string";
	else if ((s->step == ST_FIND_EXT || s->step == ST_FIND_NAME || s->step == ST_FIND_EMAIL ||
		  s->step == ST_FIND_TAKEN) &&
		 (j == NULL || !json_is_array(scim__attr(j, "Resources"))) &&
		 json_integer_value(scim__attr(j, "totalResults")) != 0)
		problem = "a list answer without a \"Resources\" array";
	else if ((s->step == ST_FIND_EXT || s->step == ST_FIND_NAME || s->step == ST_FIND_EMAIL ||
		  s->step == ST_FIND_TAKEN) && j == NULL)
		problem = "a list answer without a body";
	else if (s->step == ST_READ_MEMBERS && (j == NULL || (scim__attr(j, "members") != NULL &&
							     !json_is_array(scim__attr(j, "members")))))
		problem = "a group without a \"members\" array";
	if (problem != NULL && why != NULL)
		snprintf(why, len, "%s", problem);
	return problem != NULL;
}

/* The answer to one operation's request (single, or its part of a bulk).
 * count: record it in the health window (a bulk request counts once). */
void scim__op_reply(struct req *r, const struct reply *rep, bool count)
{
	struct scim_target *t = r->t;
	struct sop *s = r->sop;
	struct scim_op *op = s->op;
	char detail[1024];

	op->http_status = rep->rc == CURLE_OK ? rep->http : 0;
	bool net = rep->rc != CURLE_OK, server = !net && rep->http >= 500;
	scim__describe(r, rep, detail, sizeof detail);

	char bad[256];
	bool garbage = (net && rep->rc == CURLE_WRITE_ERROR && r->resp_too_big) ||
		       (!net && !server && unusable_answer(s, r, rep, bad, sizeof bad));
	if (garbage) {
		/* An answer we cannot use is the target's failure, not the object's:
		 * it counts against the target's health (quarantine) and is retried;
		 * the engine keeps the object in its retry set if it stays so. */
		if (net)
			snprintf(bad, sizeof bad, "the answer is larger than %u bytes", RESP_MAX);
		snprintf(detail, sizeof detail, "%s %s: HTTP %ld: unusable answer: %s", r->method, r->path, rep->http,
			 bad);
		net = false;
		server = true;
	}
	if (count)
		scim__health(t, net ? H_NET : server ? H_SERVER : H_OK, detail);
	if (!net && !server && rep->http != 429 && rep->http != 401 && rep->http != 403) {
		t->probe_ms = t->cfg.probe_min_ms;
		if (!t->spc_known && !t->spc_on_wire && !t->stopping)
			scim__fetch_spc(t); /* the fetch at start failed: the target answers now */
	}
	if (!garbage && net && curl_permanent(rep->rc)) {
		scim__fail(s, -EIO, "%s", detail);
		return;
	}
	if (!net && (rep->http == 401 || rep->http == 403)) {
		/* Not the operation's fault: put it back, unpaid. If the token file
		 * has changed since this request left, just try again with it;
		 * otherwise stop everything until a probe gets through. */
		s->tries--;
		scim__ready_push(t, s, true);
		if (scim__auth_rejected(t, r, detail))
			return;
		scim__reread_token(t);
		bool same = strcmp(r->token_used, t->token != NULL ? t->token : "") == 0;
		if (same)
			scim__quarantine(t, "unauthorized", detail);
		return;
	}
	if (net || server || rep->http == 429) {
		if (s->tries >= t->cfg.max_attempts) {
			scim__fail(s, garbage ? -EBADMSG : net ? curl_errno(rep->rc) : -EIO, "%s (after %u attempts)", detail,
				   s->tries);
			return;
		}
		/* A member PATCH whose answer was lost may have landed: read the
		 * group back before sending it again (members_filter). */
		if (s->step == ST_MEMBERS) {
			s->step = ST_READ_MEMBERS;
			s->tries = 0;
		}
		/* a write-back goes from a fresh read: what was read may be stale */
		if (s->step == ST_WRITE_OBJ) {
			json_decref(s->obj);
			s->obj = NULL;
			s->step = ST_READ_OBJ;
		}
		uint64_t ms = scim__backoff_ms(t, s->tries);
		/* RFC 7231 §7.1.3 (RFC 6585 §4 for 429): honour Retry-After, capped */
		if ((rep->http == 429 || rep->http == 503) && rep->retry_after_s > 0) {
			ms = (uint64_t)rep->retry_after_s * 1000;
			if (ms > t->cfg.backoff_max_ms)
				ms = t->cfg.backoff_max_ms;
		}
		t->stats.retries++;
		scim__copy_str(op->error, sizeof op->error, detail); /* what we are retrying, for the curious */
		scim__delay(s, ms);
		return;
	}
	step_reply(s, r, rep);
}

/* The result of batch[i] in a BulkResponse (§3.7.3): same position when the
 * server answered every operation, else by bulkId (POST). */
static json_t *bulk_result(json_t *results, size_t i, size_t n, const struct sop *s)
{
	char want[32];
	json_t *res = json_array_size(results) == n ? json_array_get(results, i) : NULL;
	const char *m = json_string_value(json_object_get(res, "method"));
	if (res != NULL && m != NULL && strcasecmp(m, s->method) == 0)
		return res;
	if (strcmp(s->method, "POST") != 0)
		return NULL;
	snprintf(want, sizeof want, "op%zu", i);
	size_t k;
	json_array_foreach(results, k, res)
	{
		const char *b = json_string_value(json_object_get(res, "bulkId"));
		if (b != NULL && strcmp(b, want) == 0)
			return res;
	}
	return NULL;
}

/* One operation's result as if it had been answered on its own: status
 * (a string in RFC 7644's examples, a number elsewhere), the error
 * "response", or {"id": last segment of "location"} on success. */
static void bulk_one(const json_t *res, struct reply *one)
{
	json_t *st = json_object_get(res, "status");
	one->http = json_is_string(st) ? strtol(json_string_value(st), NULL, 10) : (long)json_integer_value(st);
	one->retry_after_s = 0;
	if (!is2xx(one->http)) {
		one->json = json_incref(json_object_get(res, "response"));
		return;
	}
	const char *loc = json_string_value(json_object_get(res, "location"));
	const char *slash = loc != NULL ? strrchr(loc, '/') : NULL;
	one->json = slash != NULL && slash[1] != '\0' ? json_pack("{s:s}", "id", slash + 1) : NULL;
}

void scim__bulk_done(struct req *r, const struct reply *rep)
{
	struct scim_target *t = r->t;
	size_t n = r->n_batch;
	char detail[1024];
	for (size_t i = 0; i < n; i++)
		scim__detach(r->batch[i]);
	bool net = rep->rc != CURLE_OK, server = !net && rep->http >= 500;
	scim__describe(r, rep, detail, sizeof detail);
	scim__health(t, net ? H_NET : server ? H_SERVER : H_OK, detail);

	json_t *results = !net && is2xx(rep->http) ? json_object_get(rep->json, "Operations") : NULL;
	bool transient = net || server || rep->http == 429 || rep->http == 401 || rep->http == 403;
	if (rep->http == 501 || (!transient && !json_is_array(results))) {
		/* The target will not take this bulk (too large, not implemented,
		 * an answer we cannot read): from now on, one request each. */
		t->bulk_off = true;
		for (size_t i = n; i-- > 0;) {
			r->batch[i]->tries--;
			scim__ready_push(t, r->batch[i], true);
		}
		return;
	}
	uint64_t gen = t->cancel_gen;
	for (size_t i = 0; i < n; i++) {
		struct sop *s = r->batch[i];
		if (t->stopping || t->cancel_gen != gen) { /* a callback cancelled */
			scim__fail(s, -ECANCELED, "%s: cancelled", scim__op_name(s->op->action));
			continue;
		}
		struct req sub = {.t = t, .kind = R_OP, .sop = s, .path = s->path, .token_used = r->token_used};
		struct reply one = *rep;
		snprintf(sub.method, sizeof sub.method, "%s", s->method);
		if (!json_is_array(results)) { /* the whole request failed */
			one.json = json_incref(rep->json);
			scim__copy_str(sub.errbuf, sizeof sub.errbuf, r->errbuf);
		} else {
			json_t *res = bulk_result(results, i, n, s);
			if (res != NULL) {
				bulk_one(res, &one);
			} else { /* unanswered: retry it as if the connection had failed */
				one.rc = CURLE_GOT_NOTHING;
				one.json = NULL;
				snprintf(sub.errbuf, sizeof sub.errbuf, "no result for it in the bulk response");
			}
		}
		scim__op_reply(&sub, &one, false);
		json_decref(one.json);
	}
}

int scim_test_answer(unsigned step, long http, const char *body, size_t len)
{
	struct scim_op op;
	struct sop s;
	struct req r;
	struct reply rep;
	char why[256], detail[1024], path[] = "/Users?filter=externalId%20eq%20%22x%22";
	size_t n, other;
	bool bad;

	memset(&op, 0, sizeof op);
	memset(&s, 0, sizeof s);
	memset(&r, 0, sizeof r);
	memset(&rep, 0, sizeof rep);
	op.add = xcheck(json_pack("[s,s]", "a", "b"));
	op.remove = xcheck(json_pack("[s]", "c"));
	s.op = &op;
	s.step = (enum step)(step % (ST_FIND_TAKEN + 1));
	r.kind = R_OP;
	r.sop = &s;
	snprintf(r.method, sizeof r.method, "GET");
	r.path = path;
	r.resp = (char *)body;
	r.resp_len = len;
	rep.rc = CURLE_OK;
	rep.http = http;
	rep.json = len > 0 ? json_loadb(body, len, 0, NULL) : NULL;
	bad = unusable_answer(&s, &r, &rep, why, sizeof why);
	scim__describe(&r, &rep, detail, sizeof detail);
	if (!bad && is2xx(http)) {
		pick(rep.json, "x", &n, &other);
		pick(rep.json, NULL, &n, &other);
		if (s.step == ST_READ_MEMBERS)
			(void)scim__members_filter(&s, rep.json);
		if (s.step == ST_FIND_TAKEN) { /* the scan's comparison, on every resource */
			static const char *const paths[] = {
				"userName", "emails.value", "name.givenName",
				"urn:ietf:params:scim:schemas:extension:enterprise:2.0:User:employeeNumber"};
			json_t *v;
			size_t i;
			json_array_foreach(scim__attr(rep.json, "Resources"), i, v)
				for (size_t k = 0; k < sizeof paths / sizeof *paths; k++)
					(void)holds(v, paths[k], "x");
		}
	}
	json_decref(s.eff_add);
	json_decref(s.eff_rm);
	json_decref(rep.json);
	json_decref(op.add);
	json_decref(op.remove);
	return !bad;
}
