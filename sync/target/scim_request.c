/*
 * sync/target/scim_request.c -- building each step's request: the resource
 * bodies (RFC 7643), PATCH operations and filters (RFC 7644 §3.4.2, §3.5.2),
 * and bulk requests (RFC 7644 §3.7). The wire format per action is in
 * scim.h.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "sync/target/scim_internal.h"

static const char SCHEMA_PATCHOP[] = "urn:ietf:params:scim:api:messages:2.0:PatchOp";
static const char SCHEMA_BULKREQ[] = "urn:ietf:params:scim:api:messages:2.0:BulkRequest";

/* Percent-encode everything but RFC 3986 unreserved characters. */
static char *url_encode(const char *s)
{
	static const char hex[] = "0123456789ABCDEF";
	size_t n = strlen(s);
	char *out = xmalloc(3 * n + 1), *o = out;
	for (const unsigned char *p = (const unsigned char *)s; *p != '\0'; p++) {
		if ((*p >= 'A' && *p <= 'Z') || (*p >= 'a' && *p <= 'z') || (*p >= '0' && *p <= '9') || *p == '-' ||
		    *p == '.' || *p == '_' || *p == '~') {
			*o++ = (char)*p;
		} else {
			*o++ = '%';
			*o++ = hex[*p >> 4];
			*o++ = hex[*p & 15];
		}
	}
	*o = '\0';
	return out;
}

/* A filter comparison value (RFC 7644 §3.4.2.2: "Attribute values are JSON
 * strings"): the value JSON-encoded, quotes included, so `"` and `\` come out
 * backslash-escaped and control characters as \uXXXX. NULL: `v` is not
 * UTF-8 (jansson refuses it); out of memory aborts. */
static char *filter_value(const char *v)
{
	json_t *j = json_string(v);
	if (j == NULL)
		return NULL;
	char *s = xcheck(json_dumps(j, JSON_ENCODE_ANY));
	json_decref(j);
	return s;
}

static const char *endpoint(enum object_type type)
{
	return type == OBJECT_GROUP ? "/Groups" : "/Users";
}

/* The resource as written by PUT/POST: id and meta are the server's (RFC 7643
 * §3.1), externalId is the anchor (invariant 2) behind this agent's prefix
 * (scim.h, "Several domains"). */
static json_t *resource_copy(const struct sop *s, bool keep_members)
{
	const struct scim_op *op = s->op;
	json_t *c = xcheck(json_copy(op->resource)); /* shallow: values shared, keys ours */
	json_object_del(c, "id");
	json_object_del(c, "meta");
	if (!keep_members)
		json_object_del(c, "members");
	if (s->ext != NULL && json_object_set_new(c, "externalId", xcheck(json_string(s->ext))) != 0)
		xoom("json_object_set_new");
	return c;
}

/* `j` as compact text; takes the reference. */
static char *dump(json_t *j)
{
	char *s = xcheck(json_dumps(j, JSON_COMPACT));
	json_decref(j);
	return s;
}

static void append_new(json_t *array, json_t *v)
{
	if (json_array_append_new(array, xcheck(v)) != 0)
		xoom("json_array_append_new");
}

/* Group update: PATCH "replace" of every attribute but members (RFC 7644
 * §3.5.2.3), so that the membership, managed incrementally, is never wiped. */
static json_t *group_patch(const struct sop *s)
{
	json_t *res = resource_copy(s, false), *ops = xcheck(json_array()), *body, *val;
	const char *key;

	json_object_foreach(res, key, val)
	{
		if (strcmp(key, "schemas") == 0)
			continue;
		append_new(ops, json_pack("{s:s, s:s, s:O}", "op", "replace", "path", key, "value", val));
	}
	body = xcheck(json_pack("{s:[s], s:o}", "schemas", SCHEMA_PATCHOP, "Operations", ops));
	json_decref(res);
	return body;
}

/* The member changes still to make: after a read-back, only those that had
 * not landed; before, the operation's own lists. */
static json_t *members_add(const struct sop *s)
{
	return s->eff_add != NULL ? s->eff_add : s->op->add;
}

static json_t *members_rm(const struct sop *s)
{
	return s->eff_rm != NULL ? s->eff_rm : s->op->remove;
}

/* Is `id` among a group's "members" ([{"value": id}, ...])? */
static bool has_member(json_t *members, json_t *id)
{
	json_t *m;
	size_t j;
	json_array_foreach(members, j, m)
		if (json_equal(scim__attr(m, "value"), id))
			return true;
	return false;
}

/* Whether the array of id strings `ids` holds `id`. */
static bool has_value(const json_t *ids, const json_t *id)
{
	json_t *v;
	size_t j;
	json_array_foreach(ids, j, v)
		if (json_equal(v, id))
			return true;
	return false;
}

/*
 * Read-back (ST_READ_MEMBERS answered): keep only the adds that are not
 * members yet and the removes that still are. A PATCH "add" of a value that is
 * present already is not idempotent on every server (RFC 7644 §3.5.2.1 leaves
 * duplicates to the service provider; some append them), so a PATCH that may
 * have landed -- a retry after a lost answer, or a re-run the engine asks
 * for -- is never sent blind.
 */
void scim__members_filter(struct sop *s, json_t *group)
{
	json_t *cur = scim__attr(group, "members"), *add = xcheck(json_array()), *rm = xcheck(json_array()), *v, *m;
	size_t i;

	json_array_foreach(s->op->add, i, v)
		if (!has_member(cur, v) && json_array_append(add, v) != 0)
			xoom("json_array_append");
	if (s->op->exact) {
		/* every member read back that is not wanted goes */
		json_array_foreach(cur, i, m)
			if ((v = scim__attr(m, "value")) != NULL && json_is_string(v) &&
			    !has_value(s->op->add, v) && json_array_append(rm, v) != 0)
				xoom("json_array_append");
	} else {
		json_array_foreach(s->op->remove, i, v)
			if (has_member(cur, v) && json_array_append(rm, v) != 0)
				xoom("json_array_append");
	}
	json_decref(s->eff_add);
	json_decref(s->eff_rm);
	s->eff_add = add;
	s->eff_rm = rm;
	s->add_pos = s->rm_pos = 0;
}

/* One chunk of SCIM_MEMBERS (RFC 7644 §3.5.2.1 add, §3.5.2.2 remove with a
 * value filter): at most members_per_patch member changes. */
static json_t *members_patch(struct sop *s)
{
	size_t max = s->t->cfg.members_per_patch, n = 0;
	json_t *add = members_add(s), *remove = members_rm(s);
	size_t n_add = add != NULL ? json_array_size(add) : 0;
	size_t n_rm = remove != NULL ? json_array_size(remove) : 0;
	json_t *ops = xcheck(json_array()), *vals = xcheck(json_array()), *out = NULL;

	s->chunk_add = s->chunk_rm = 0;
	while (s->add_pos + s->chunk_add < n_add && n < max) {
		json_t *id = json_array_get(add, s->add_pos + s->chunk_add++);
		append_new(vals, json_pack("{s:O}", "value", id));
		n++;
	}
	if (json_array_size(vals) > 0)
		append_new(ops, json_pack("{s:s, s:s, s:O}", "op", "add", "path", "members", "value", vals));
	if (s->t->rm_values) {
		/* value_remove: {"op":"remove","path":"members","value":[{"value":id}]}, the form
		 * of servers that take no value filter in a path (e.g. Entra's own
		 * examples); RFC 7644 §3.5.2.2 allows a value with a remove */
		json_t *rv = xcheck(json_array());
		while (s->rm_pos + s->chunk_rm < n_rm && n < max) {
			append_new(rv, json_pack("{s:O}", "value", json_array_get(remove, s->rm_pos + s->chunk_rm++)));
			n++;
		}
		if (json_array_size(rv) > 0)
			append_new(ops, json_pack("{s:s, s:s, s:O}", "op", "remove", "path", "members", "value", rv));
		json_decref(rv);
	}
	while (s->rm_pos + s->chunk_rm < n_rm && n < max) {
		const char *id = json_string_value(json_array_get(remove, s->rm_pos + s->chunk_rm++));
		char *fv = filter_value(id), *path;
		if (fv == NULL)
			goto out; /* not UTF-8: build() refuses the operation */
		path = scim__asprintf("members[value eq %s]", fv);
		free(fv);
		append_new(ops, json_pack("{s:s, s:s}", "op", "remove", "path", path));
		free(path);
		n++;
	}
	out = xcheck(json_pack("{s:[s], s:O}", "schemas", SCHEMA_PATCHOP, "Operations", ops));
out:
	json_decref(ops);
	json_decref(vals);
	return out;
}

/* The page size of list requests: the target's filter.maxResults, else 100
 * (RFC 7644 §3.4.2.4 leaves the default to the server; asking keeps it
 * known). */
static unsigned page_size(const struct scim_target *t)
{
	unsigned m = t->caps.filter_max_results;
	return m > 0 && m < 1000 ? m : m >= 1000 ? 1000 : 100;
}

/* "/Users?filter=<attr eq "v">&attributes=id,externalId&startIndex=i&count=n"
 * (RFC 7644 §3.4.2.2, §3.4.2.5: only what the match needs, never a big
 * group's members; §3.4.2.4 paging). Without filter support (scim.h,
 * "Discovery"): the listing itself, page by page, matched here. */
static char *filter_path(const struct sop *s, const char *attr, const char *value)
{
	const struct scim_target *t = s->t;
	size_t start = s->page > 0 ? s->page : 1;
	char *fv, *f, *enc, *path;

	if (!t->caps.filter)
		return scim__asprintf("%s?attributes=id,externalId&startIndex=%zu&count=%u", endpoint(s->op->type),
				      start, page_size(t));
	fv = filter_value(value);
	if (fv == NULL)
		return NULL; /* not UTF-8: build() refuses the operation */
	f = scim__asprintf("%s eq %s", attr, fv);
	enc = url_encode(f);
	path = scim__asprintf("%s?filter=%s&attributes=id,externalId&startIndex=%zu&count=%u", endpoint(s->op->type),
			      enc, start, page_size(t));
	free(fv);
	free(f);
	free(enc);
	return path;
}

/* SCIM_TAKEN: like filter_path, with the attribute asked about among the
 * attributes returned: without filtering, the scan compares it here. */
static char *taken_path(const struct sop *s)
{
	const struct scim_op *op = s->op;
	char *path, *enc;

	if (s->t->caps.filter)
		return filter_path(s, op->taken_attr, op->taken_value);
	enc = url_encode(op->taken_attr);
	path = scim__asprintf("%s?attributes=id,externalId,%s&startIndex=%zu&count=%u", endpoint(op->type), enc,
			      s->page > 0 ? s->page : 1, page_size(s->t));
	free(enc);
	return path;
}

static char *id_path(enum object_type type, const char *id)
{
	char *enc = url_encode(id), *path = scim__asprintf("%s/%s", endpoint(type), enc);

	free(enc);
	return path;
}

/* ---- read, change, write back (patch_style put / members_replace) ---------- */

/* Does s's step go through ST_READ_OBJ / ST_WRITE_OBJ with this target's
 * patch style? put: everything PATCH would do (a group update, member
 * changes, a disable, a manager change); members_replace: member changes.
 * And an update with `keep` (scim.h), whatever the style. */
bool scim__rmw(const struct sop *s)
{
	enum scim_patch_style st = s->t->style;
	const struct scim_op *op = s->op;

	if (op->action == SCIM_MEMBERS)
		return st == SCIM_PATCH_PUT || st == SCIM_PATCH_MEMBERS_REPLACE;
	if (op->action == SCIM_UPSERT && op->keep && !op->patch)
		return true; /* what `resource` leaves out stays: read it first */
	if (op->action == SCIM_UPSERT && st == SCIM_PATCH_PUT)
		return op->type == OBJECT_GROUP || op->patch;
	return false;
}

/* RFC 7644 §3.5.2 operations on a resource read back, for servers without
 * PATCH: "replace"/"add" set the path, "remove" drops it. Paths are a
 * top-level attribute or "<schema URN>:<attribute>" (the manager), all
 * canopy sends. */
static void apply_patch_ops(json_t *obj, const json_t *ops)
{
	const json_t *o;
	size_t i;

	json_array_foreach(ops, i, o)
	{
		const char *kind = json_string_value(json_object_get(o, "op"));
		const char *path = json_string_value(json_object_get(o, "path"));
		json_t *val = json_object_get(o, "value"), *parent = obj;
		const char *leaf = path;
		char urn[512];

		if (kind == NULL || path == NULL)
			continue;
		const char *colon = strrchr(path, ':');
		if (strncasecmp(path, "urn:", 4) == 0 && colon != NULL && (size_t)(colon - path) < sizeof urn) {
			snprintf(urn, sizeof urn, "%.*s", (int)(colon - path), path);
			leaf = colon + 1;
			parent = json_object_get(obj, urn);
			if (!json_is_object(parent)) {
				if (strcasecmp(kind, "remove") == 0)
					continue;
				parent = xcheck(json_object());
				if (json_object_set_new(obj, urn, parent) != 0)
					xoom("json_object_set_new");
			}
			json_t *schemas = json_object_get(obj, "schemas");
			bool listed = false;
			const json_t *v;
			size_t j;
			json_array_foreach(schemas, j, v)
				listed |= json_is_string(v) && strcasecmp(json_string_value(v), urn) == 0;
			if (!listed && json_is_array(schemas) && strcasecmp(kind, "remove") != 0)
				append_new(schemas, json_string(urn));
		}
		if (strcasecmp(kind, "remove") == 0)
			json_object_del(parent, leaf);
		else if (val != NULL && json_object_set(parent, leaf, val) != 0)
			xoom("json_object_set");
	}
}

/* The group's members after the change: what was read, less the removals,
 * plus the additions not there yet (exact: the additions alone). */
static json_t *new_members(const struct sop *s)
{
	json_t *cur = scim__attr(s->obj, "members"), *out = xcheck(json_array()), *m, *v;
	size_t i;

	if (!s->op->exact) {
		json_array_foreach(cur, i, m)
		{
			v = scim__attr(m, "value");
			if (json_is_string(v) && s->op->remove != NULL && has_value(s->op->remove, v))
				continue;
			if (json_array_append(out, m) != 0)
				xoom("json_array_append");
		}
	}
	json_array_foreach(s->op->add, i, v)
		if (!has_member(out, v))
			append_new(out, json_pack("{s:O}", "value", v));
	return out;
}

/* Remove every attribute of obj named `name`, ignoring case. */
static void del_ci(json_t *obj, const char *name)
{
	const char *k;
	json_t *v;
	void *tmp;

	json_object_foreach_safe(obj, tmp, k, v)
		if (strcasecmp(k, name) == 0)
			json_object_del(obj, k);
}

/* The body of ST_WRITE_OBJ: the resource read, changed as the operation
 * says (PUT), or the members "replace" (members_replace). */
static json_t *write_body(struct sop *s, const char **method)
{
	const struct scim_op *op = s->op;
	json_t *obj = xcheck(json_deep_copy(s->obj)), *key_val;
	const char *key;

	if (op->action == SCIM_MEMBERS && s->t->style == SCIM_PATCH_MEMBERS_REPLACE) {
		json_t *members = new_members(s), *ops;
		json_decref(obj);
		*method = "PATCH";
		if (json_array_size(members) == 0) /* "replace" with [] is refused by some: remove all */
			ops = json_pack("[{s:s, s:s}]", "op", "remove", "path", "members");
		else
			ops = json_pack("[{s:s, s:s, s:O}]", "op", "replace", "path", "members", "value", members);
		json_decref(members);
		return xcheck(json_pack("{s:[s], s:o}", "schemas", SCHEMA_PATCHOP, "Operations", xcheck(ops)));
	}
	*method = "PUT";
	del_ci(obj, "meta"); /* the server's (RFC 7643 §3.1) */
	if (op->action == SCIM_MEMBERS) {
		json_t *members = new_members(s);
		del_ci(obj, "members");
		if (json_object_set_new(obj, "members", members) != 0)
			xoom("json_object_set_new");
	} else if (op->patch && op->patch_ops != NULL) {
		apply_patch_ops(obj, op->patch_ops);
	} else {
		/* the new content over what was read; members, id, meta stay */
		json_t *res = resource_copy(s, false);
		json_object_foreach(res, key, key_val)
		{
			if (strcmp(key, "schemas") == 0 && op->patch)
				continue;
			del_ci(obj, key); /* the server may spell it otherwise (RFC 7643 §2.1) */
			if (json_object_set(obj, key, key_val) != 0)
				xoom("json_object_set");
		}
		json_decref(res);
	}
	return obj;
}

/* The request of s's current step: method, path below the base URL (owned)
 * and body (owned, or NULL). Returns 0; 1 when nothing is left to send
 * (SCIM_MEMBERS done); or -EPROTO / -EINVAL with op->error set (nothing to
 * match a conflict on; a value jansson refuses). */
static int build(struct sop *s, const char **method, char **path, json_t **body)
{
	struct scim_op *op = s->op;
	*method = "GET";
	*path = NULL;
	*body = NULL;
	switch (s->step) {
	case ST_UPDATE:
		*path = id_path(op->type, s->id);
		*method = op->type == OBJECT_GROUP || op->patch ? "PATCH" : "PUT";
		if (op->patch && op->patch_ops != NULL)
			*body = xcheck(json_pack("{s:[s], s:O}", "schemas", SCHEMA_PATCHOP, "Operations",
						 op->patch_ops));
		else
			*body = op->type == OBJECT_GROUP || op->patch ? group_patch(s) : resource_copy(s, false);
		break;
	case ST_CREATE:
		*method = "POST";
		*path = xstrdup(endpoint(op->type));
		*body = resource_copy(s, true); /* a group's initial members ride along */
		break;
	case ST_FIND_EXT:
		*path = filter_path(s, "externalId", s->ext);
		break;
	case ST_FIND_NAME: {
		const char *attr = op->type == OBJECT_GROUP ? "displayName" : "userName";
		const char *name = json_string_value(json_object_get(op->resource, attr));
		if (name == NULL) {
			snprintf(op->error, sizeof op->error,
				 "upsert %s: the target reports a conflict, no object has this externalId, and the "
				 "resource has no %s to match on", op->anchor, attr);
			return -EPROTO;
		}
		if (!s->t->caps.filter) {
			op->refused = true; /* for good, until the object or the target changes */
			snprintf(op->error, sizeof op->error,
				 "upsert %s: the target reports a conflict and no object carries this externalId; "
				 "matching by %s is refused: the target does not support filtering "
				 "(ServiceProviderConfig filter.supported false)", op->anchor, attr);
			return -EPROTO;
		}
		*path = filter_path(s, attr, name);
		break;
	}
	case ST_FIND_EMAIL: {
		/* the user's first email (scim_answer.c asks only when there is one) */
		json_t *e = json_array_get(scim__attr(op->resource, "emails"), 0);
		*path = filter_path(s, "emails.value", json_string_value(scim__attr(e, "value")));
		break;
	}
	case ST_FIND_TAKEN:
		*path = taken_path(s);
		break;
	case ST_DELETE:
		*method = "DELETE";
		*path = id_path(op->type, s->id);
		break;
	case ST_READ_MEMBERS: {
		char *base = id_path(op->type, s->id);
		*path = scim__asprintf("%s?attributes=members", base);
		free(base);
		break;
	}
	case ST_READ_OBJ:
		*path = id_path(op->type, s->id);
		break;
	case ST_WRITE_OBJ:
		*path = id_path(op->type, s->id);
		*body = write_body(s, method);
		break;
	case ST_MEMBERS: {
		size_t n_add = members_add(s) != NULL ? json_array_size(members_add(s)) : 0;
		size_t n_rm = members_rm(s) != NULL ? json_array_size(members_rm(s)) : 0;
		if (s->add_pos >= n_add && s->rm_pos >= n_rm)
			return 1;
		*method = "PATCH";
		*path = id_path(op->type, s->id);
		*body = members_patch(s);
		break;
	}
	}
	bool needs_body = strcmp(*method, "GET") != 0 && strcmp(*method, "DELETE") != 0;
	if (*path == NULL || (needs_body && *body == NULL)) {
		free(*path);
		json_decref(*body);
		*path = NULL;
		*body = NULL;
		snprintf(op->error, sizeof op->error, "%s: cannot build the request: a value is not UTF-8",
			 scim__op_name(op->action));
		return -EINVAL;
	}
	return 0;
}

/* s is about to go out with this request (path: owned copy kept for messages) */
static void sending(struct sop *s, const char *method, char *path)
{
	free(s->path);
	s->path = path;
	s->method = method;
	s->tries++;
	s->op->attempts++;
}

static void attach(struct req *r, struct sop *s)
{
	s->req = r;
	s->where = W_WIRE;
	r->t->n_ops_wire++;
}

void scim__detach(struct sop *s)
{
	s->req = NULL;
	s->where = W_NONE;
	s->t->n_ops_wire--;
}

/* Send the request of s's current step on its own. */
void scim__start_step(struct sop *s)
{
	struct scim_target *t = s->t;
	const char *method;
	char *path, *text;
	json_t *body;
	struct req *r;
	int rc;

	/* without PATCH (or without add/remove on members), what PATCH would do
	 * is a read, a change and a write back (scim.h, "Discovery") */
	if ((s->step == ST_UPDATE || s->step == ST_MEMBERS || s->step == ST_READ_MEMBERS) && scim__rmw(s))
		s->step = ST_READ_OBJ;
	rc = build(s, &method, &path, &body);
	if (rc == 1) {
		snprintf(s->op->result_id, sizeof s->op->result_id, "%s", s->id);
		scim__finish(s, 0);
		return;
	}
	if (rc < 0) {
		scim__finish(s, rc);
		return;
	}
	text = body != NULL ? dump(body) : NULL;
	sending(s, method, xstrdup(path));
	t->if_match = s->step == ST_WRITE_OBJ && t->caps.etag && s->etag[0] != '\0' ? s->etag : NULL;
	rc = scim__req_start(t, R_OP, method, path, text, s->step == ST_MEMBERS || s->step == ST_WRITE_OBJ, &r);
	t->if_match = NULL;
	if (rc != 0) {
		scim__fail(s, rc, "%s %s: cannot start the request: %s", method, s->path, strerror(-rc));
		return;
	}
	r->sop = s;
	attach(r, s);
}

bool scim__bulkable(const struct sop *s)
{
	if (s->step == ST_UPDATE && scim__rmw(s))
		return false; /* a read first: alone */
	return s->step == ST_CREATE || s->step == ST_UPDATE || s->step == ST_DELETE;
}

bool scim__bulk_on(const struct scim_target *t)
{
	return t->cfg.bulk && t->stats.bulk_supported && !t->bulk_off;
}

/* s's current step as one BulkRequest operation; bulkId "op<i>" (required
 * for POST, §3.7) lets us find its result. */
static char *bulk_entry(struct sop *s, size_t i, const char **method, char **path)
{
	json_t *body, *e;

	if (build(s, method, path, &body) != 0)
		return NULL; /* the single path will report it */
	e = xcheck(json_pack("{s:s, s:s}", "method", *method, "path", *path));
	if (strcmp(*method, "POST") == 0 && json_object_set_new(e, "bulkId", xcheck(json_sprintf("op%zu", i))) != 0)
		xoom("json_object_set_new");
	if (body != NULL && json_object_set_new(e, "data", body) != 0)
		xoom("json_object_set_new");
	return dump(e);
}

static char *bulk_body(char **parts, size_t n)
{
	size_t len = strlen(SCHEMA_BULKREQ) + 64;
	for (size_t i = 0; i < n; i++)
		len += strlen(parts[i]) + 1;
	char *body = xmalloc(len), *p = body;

	p += sprintf(p, "{\"schemas\":[\"%s\"],\"Operations\":[", SCHEMA_BULKREQ);
	for (size_t i = 0; i < n; i++)
		p += sprintf(p, "%s%s", i ? "," : "", parts[i]);
	strcpy(p, "]}");
	return body;
}

/* Put the head of the ready queue, and whatever bulkable operations follow
 * it, into one POST /Bulk (within the target's maxOperations and
 * maxPayloadSize). A lone operation goes out on its own. */
void scim__start_bulk(struct scim_target *t)
{
	size_t max = t->cfg.bulk_max_operations, bytes = 128, n = 0;
	size_t limit = t->bulk_max_payload > 0 ? t->bulk_max_payload : 1048576;
	if (t->bulk_max_ops > 0 && t->bulk_max_ops < max)
		max = t->bulk_max_ops;
	struct sop **batch = xcalloc(max, sizeof *batch);
	char **parts = xcalloc(max, sizeof *parts);
	struct req *r = NULL;

	for (struct link *l = t->ready.next, *nx; l != &t->ready && n < max; l = nx) {
		nx = l->next;
		struct sop *s = container_of(l, struct sop, link);
		const char *method;
		char *path, *part;
		if (!scim__bulkable(s) || (part = bulk_entry(s, n, &method, &path)) == NULL)
			continue;
		if (bytes + strlen(part) + 1 > limit && n > 0) {
			free(part);
			free(path);
			break;
		}
		bytes += strlen(part) + 1;
		list_remove(&s->link);
		s->where = W_NONE;
		s->method = method;
		free(s->path);
		s->path = path;
		batch[n] = s;
		parts[n++] = part;
	}
	if (n < 2)
		goto single;
	if (scim__req_start(t, R_BULK, "POST", xstrdup("/Bulk"), bulk_body(parts, n), false, &r) != 0)
		goto single;
	r->batch = batch;
	r->n_batch = n;
	for (size_t i = 0; i < n; i++) {
		batch[i]->tries++;
		batch[i]->op->attempts++;
		attach(r, batch[i]);
		free(parts[i]);
	}
	free(parts);
	t->stats.bulk_requests++;
	return;
single:
	/* put them back in order and send the head by itself */
	while (n > 0) {
		free(parts[--n]);
		scim__ready_push(t, batch[n], true);
	}
	free(parts);
	free(batch);
	struct sop *head = container_of(t->ready.next, struct sop, link);
	list_remove(&head->link);
	head->where = W_NONE;
	scim__start_step(head);
}
