/* sync/transform/mapping.c -- see mapping.h. */
#include "sync/transform/mapping.h"

#include "common/xalloc.h"
#include "sync/text_json.h"

#include <errno.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "common/xalloc.h"
#include "sync/hash.h"
#include "sync/transform/expr.h"

/* A parsed SCIM path: [urn:]attr[ [filterAttr eq "value"] ][.sub] */
struct rule {
	char *path;      /* as written, for errors */
	int line;
	char *urn;       /* extension schema URN, or NULL */
	char *attr;
	char *filter_attr, *filter_value; /* or NULL */
	char *sub;       /* or NULL */
	struct expr *expr;
	bool reference;  /* the manager: its value is a DN the engine resolves */
	unsigned traits; /* expr_traits(): EXPR_VOLATILE, EXPR_REDACT */
};

struct mapping {
	enum object_type type;
	struct rule *rules;
	size_t n;
	const struct rule *manager; /* the reference rule (in rules), or NULL */
};

static void rule_free(struct rule *r)
{
	free(r->path);
	free(r->urn);
	free(r->attr);
	free(r->filter_attr);
	free(r->filter_value);
	free(r->sub);
	expr_free(r->expr);
}

void mapping_free(struct mapping *m)
{
	size_t i;
	if (m == NULL)
		return;
	for (i = 0; i < m->n; i++)
		rule_free(&m->rules[i]);
	free(m->rules);
	free(m);
}

/* Parse the path into r. Returns 0 or -EINVAL with the cause. */
static int parse_path(struct rule *r, const char *path, char *err, size_t errlen)
{
	const char *p = path, *colon, *end;
	size_t n;

	/* Extension attributes: "urn:...:Schema:attr" -- the URN is everything up
	 * to the last ':' (RFC 7644 §3.10). */
	if (strncasecmp(p, "urn:", 4) == 0) {
		colon = strrchr(p, ':');
		r->urn = xstrndup(p, (size_t)(colon - p));
		p = colon + 1;
	}
	n = strcspn(p, "[.");
	if (n == 0) {
		snprintf(err, errlen, "attribute path \"%s\" has no attribute name", path);
		return -EINVAL;
	}
	r->attr = xstrndup(p, n);
	p += n;
	if (*p == '[') {
		/* value filter: [attr eq "value"] -- the only operator a mapping needs */
		char fa[64], fv[256];
		int used = 0;
		if (sscanf(p, "[%63s eq \"%255[^\"]\"]%n", fa, fv, &used) != 2 || used == 0) {
			snprintf(err, errlen,
				 "attribute path \"%s\": expected a filter like [type eq \"work\"]",
				 path);
			return -EINVAL;
		}
		r->filter_attr = xstrdup(fa);
		r->filter_value = xstrdup(fv);
		p += used;
	}
	if (*p == '.') {
		p++;
		end = p + strlen(p);
		if (end == p || strpbrk(p, ".[]")) {
			snprintf(err, errlen, "attribute path \"%s\": bad sub-attribute", path);
			return -EINVAL;
		}
		r->sub = xstrdup(p);
		p = end;
	}
	if (*p != '\0') {
		snprintf(err, errlen, "attribute path \"%s\": unexpected \"%s\"", path, p);
		return -EINVAL;
	}
	if (r->filter_attr && r->sub == NULL) {
		snprintf(err, errlen, "attribute path \"%s\": a filtered path needs a sub-attribute, "
				      "e.g. .value", path);
		return -EINVAL;
	}
	return 0;
}

/* The enterprise extension's manager (RFC 7643 §4.3), written as
 * urn:...:enterprise:2.0:User:manager or ...:manager.value: a reference. */
static bool is_manager(const struct rule *r)
{
	return r->urn != NULL && strcasecmp(r->urn, SCIM_SCHEMA_ENTERPRISE) == 0 &&
	       strcasecmp(r->attr, "manager") == 0 && r->filter_attr == NULL &&
	       (r->sub == NULL || strcasecmp(r->sub, "value") == 0);
}

/* A reference rule: only users have a manager, and one rule sets it. */
static int check_reference(struct mapping *m, struct rule *r, char *err, size_t errlen)
{
	if (!is_manager(r)) {
		if (r->urn != NULL && strcasecmp(r->urn, SCIM_SCHEMA_ENTERPRISE) == 0 &&
		    strcasecmp(r->attr, "manager") == 0) {
			snprintf(err, errlen, "the manager is a reference: map it whole (%s:manager) to the "
					      "manager's DN", SCIM_SCHEMA_ENTERPRISE);
			return -EINVAL;
		}
		return 0;
	}
	if (m->type != OBJECT_USER) {
		snprintf(err, errlen, "only users have a manager");
		return -EINVAL;
	}
	if (m->manager != NULL) {
		snprintf(err, errlen, "the manager is mapped twice (also line %d)", m->manager->line);
		return -EINVAL;
	}
	r->reference = true;
	m->manager = r;
	return 0;
}

/*
 * SelectUniqueValue asks the target whether each candidate is taken: the
 * engine does, at creation only (mapping_unique_candidates); a target that
 * cannot answer refuses the mapping when the configuration loads
 * (mapping_has_unique). Now() and RandomString() change at every evaluation:
 * such a rule is applied at creation only (mapping_apply_creation). Neither
 * can be a reference, whose DN must be the same at every evaluation.
 */
static int check_traits(struct rule *r, char *err, size_t errlen)
{
	r->traits = expr_traits(r->expr);
	if (r->reference && (r->traits & EXPR_UNIQUE)) {
		snprintf(err, errlen, "the manager cannot use SelectUniqueValue: its value is a DN, not a "
				      "value chosen in the target");
		return -EINVAL;
	}
	if (r->reference && (r->traits & EXPR_VOLATILE)) {
		snprintf(err, errlen, "the manager cannot use Now() or RandomString(): its value must be the "
				      "same DN at every evaluation");
		return -EINVAL;
	}
	return 0;
}

/*
 * An evaluation error of a rule that calls Redact() may quote the value
 * ("CDate: \"s3cret\" is not a date"), and the message goes to the failed
 * objects in status and to the provisioning log: keep "column N: Function: "
 * and mask the rest.
 */
static void redact_error(const struct rule *r, char *err, size_t errlen)
{
	if (!(r->traits & EXPR_REDACT))
		return;
	char *p = strstr(err, ": ");
	if (p != NULL && (p = strstr(p + 2, ": ")) != NULL)
		p += 2;
	else
		p = err;
	snprintf(p, errlen - (size_t)(p - err), "%s (the rule calls Redact(): details not shown)", MAPPING_REDACTED);
}

int mapping_compile(struct mapping **out, enum object_type type, const char *what,
		    const struct mapping_rule_text *rules, size_t n, char *errmsg, size_t errlen)
{
	struct mapping *m = xcalloc(1, sizeof *m);
	char err[512];
	size_t i;
	int rv;

	m->rules = xcalloc(n, sizeof *m->rules);
	m->type = type;
	for (i = 0; i < n; i++, m->n++) {
		struct rule *r = &m->rules[i];
		r->path = xstrdup(rules[i].path);
		r->line = rules[i].line;
		rv = parse_path(r, rules[i].path, err, sizeof err);
		if (rv == 0)
			rv = check_reference(m, r, err, sizeof err);
		if (rv == 0)
			rv = expr_parse(rules[i].expr, &r->expr, err, sizeof err);
		if (rv == 0)
			rv = check_traits(r, err, sizeof err);
		if (rv != 0) {
			snprintf(errmsg, errlen, "line %d: %s.%s: %s", rules[i].line, what,
				 rules[i].path, err);
			m->n++;
			mapping_free(m);
			return rv;
		}
	}
	*out = m;
	return 0;
}

void mapping_attributes(const struct mapping *m, void (*cb)(void *ctx, const char *name),
			void *ctx)
{
	size_t i;
	for (i = 0; i < m->n; i++)
		expr_attributes(m->rules[i].expr, cb, ctx);
}

struct lookup_ctx {
	const struct object_attr *attrs;
	size_t n;
};

static int lookup(void *ctx, const char *name, const char *const **values, size_t *n)
{
	struct lookup_ctx *l = ctx;
	size_t i;
	for (i = 0; i < l->n; i++)
		if (strcasecmp(l->attrs[i].name, name) == 0) {
			*values = (const char *const *)l->attrs[i].values;
			*n = l->attrs[i].n_values;
			return 0;
		}
	*n = 0;
	return 0;
}

/*
 * A value that is not valid UTF-8 (a binary attribute) cannot be a JSON
 * string: it is left out (NULL), as it always was. Every other NULL from
 * jansson is out of memory. Keys (attribute names, filter values) come from
 * the configuration, which libyaml only reads as UTF-8.
 */
static json_t *scalar(const struct rule *r, const char *v)
{
	if (strcasecmp(r->sub ? r->sub : r->attr, "active") == 0 ||
	    strcasecmp(r->sub ? r->sub : r->attr, "primary") == 0) {
		if (strcasecmp(v, "true") == 0)
			return json_true();
		if (strcasecmp(v, "false") == 0)
			return json_false();
	}
	if (!text_is_utf8(v, strlen(v)))
		return NULL;
	return xcheck(json_string(v));
}

static json_t *value_json(const struct rule *r, const struct expr_value *v)
{
	json_t *a, *one;
	size_t i;
	if (v->n == 1 || r->filter_attr)
		return scalar(r, v->v[0]);
	a = xcheck(json_array());
	for (i = 0; i < v->n; i++)
		if ((one = scalar(r, v->v[i])) != NULL && json_array_append_new(a, one) != 0)
			xoom("json_array_append_new");
	return a;
}

static void set(json_t *o, const char *key, json_t *val)
{
	if (json_object_set_new(o, key, val) != 0)
		xoom("json_object_set_new");
}

/* Get or create a JSON object member. */
static json_t *child(json_t *parent, const char *key)
{
	json_t *c = json_object_get(parent, key);
	if (!json_is_object(c)) {
		c = xcheck(json_object());
		set(parent, key, c);
	}
	return c;
}

static void place(json_t *res, const struct rule *r, json_t *val)
{
	json_t *base = r->urn ? child(res, r->urn) : res;

	if (r->filter_attr) {
		json_t *arr = json_object_get(base, r->attr), *el = NULL, *e;
		size_t i;
		if (!json_is_array(arr)) {
			arr = xcheck(json_array());
			set(base, r->attr, arr);
		}
		json_array_foreach(arr, i, e)
		{
			const char *fv = json_string_value(json_object_get(e, r->filter_attr));
			if (fv && strcmp(fv, r->filter_value) == 0)
				el = e;
		}
		if (el == NULL) {
			el = xcheck(json_pack("{s:s}", r->filter_attr, r->filter_value));
			/* The first element of a multi-valued attribute is the primary one. */
			if (json_array_size(arr) == 0)
				set(el, "primary", json_true());
			if (json_array_append_new(arr, el) != 0)
				xoom("json_array_append_new");
		}
		set(el, r->sub, val);
	} else if (r->sub) {
		set(child(base, r->attr), r->sub, val);
	} else {
		set(base, r->attr, val);
	}
}

int mapping_apply(const struct mapping *m, const char *anchor, const struct object_attr *attrs,
		  size_t n_attrs, json_t **out, char *errmsg, size_t errlen)
{
	struct lookup_ctx ctx = {attrs, n_attrs};
	json_t *res, *schemas;
	struct expr_value v;
	char err[512];
	size_t i;
	bool enterprise = false;
	int rv;

	res = xcheck(json_object());
	schemas = xcheck(json_array());
	if (json_array_append_new(schemas, xcheck(json_string(m->type == OBJECT_GROUP ? SCIM_SCHEMA_GROUP
											 : SCIM_SCHEMA_USER))) != 0)
		xoom("json_array_append_new");
	set(res, "schemas", schemas);
	/* the anchor (entryUUID, objectGUID as text) is ASCII */
	set(res, "externalId", xcheck(json_string(anchor)));
	for (i = 0; i < m->n; i++) {
		const struct rule *r = &m->rules[i];
		if (r->reference)
			continue; /* resolved by the engine: mapping_manager() */
		if (r->traits & (EXPR_VOLATILE | EXPR_UNIQUE))
			continue; /* at creation only: mapping_apply_creation(), mapping_unique_*() */
		rv = expr_eval(r->expr, lookup, &ctx, &v, err, sizeof err);
		if (rv != 0) {
			redact_error(r, err, sizeof err);
			snprintf(errmsg, errlen, "mapping %s (line %d): %s", r->path, r->line, err);
			json_decref(res);
			return rv;
		}
		json_t *val = v.n > 0 ? value_json(r, &v) : NULL;
		if (val != NULL) {
			place(res, r, val);
			if (r->urn && strcasecmp(r->urn, SCIM_SCHEMA_ENTERPRISE) == 0)
				enterprise = true;
		}
		expr_value_free(&v);
	}
	if (enterprise && json_array_append_new(schemas, xcheck(json_string(SCIM_SCHEMA_ENTERPRISE))) != 0)
		xoom("json_array_append_new");
	*out = res;
	return 0;
}

int mapping_apply_creation(const struct mapping *m, const struct object_attr *attrs, size_t n_attrs,
			   json_t *resource, char *errmsg, size_t errlen)
{
	struct lookup_ctx ctx = {attrs, n_attrs};
	struct expr_value v;
	char err[512];

	for (size_t i = 0; m != NULL && i < m->n; i++) {
		const struct rule *r = &m->rules[i];
		if (!(r->traits & EXPR_VOLATILE) || (r->traits & EXPR_UNIQUE) || r->reference)
			continue;
		int rv = expr_eval(r->expr, lookup, &ctx, &v, err, sizeof err);
		if (rv != 0) {
			redact_error(r, err, sizeof err);
			snprintf(errmsg, errlen, "mapping %s (line %d): %s", r->path, r->line, err);
			return rv;
		}
		json_t *val = v.n > 0 ? value_json(r, &v) : NULL;
		if (val != NULL)
			place(resource, r, val);
		if (val != NULL && r->urn && strcasecmp(r->urn, SCIM_SCHEMA_ENTERPRISE) == 0) {
			json_t *schemas = json_object_get(resource, "schemas");
			bool has = false;
			size_t k;
			json_t *sv;
			json_array_foreach(schemas, k, sv)
				has = has || (json_string_value(sv) && strcmp(json_string_value(sv), SCIM_SCHEMA_ENTERPRISE) == 0);
			if (!has && json_is_array(schemas) &&
			    json_array_append_new(schemas, xcheck(json_string(SCIM_SCHEMA_ENTERPRISE))) != 0)
				xoom("json_array_append_new");
		}
		expr_value_free(&v);
	}
	return 0;
}

bool mapping_creation_only(const struct mapping *m, const char *path)
{
	for (size_t i = 0; m != NULL && path != NULL && i < m->n; i++)
		if (strcmp(m->rules[i].path, path) == 0 && !m->rules[i].reference)
			return (m->rules[i].traits & (EXPR_VOLATILE | EXPR_UNIQUE)) != 0;
	return false;
}

bool mapping_has_unique(const struct mapping *m)
{
	for (size_t i = 0; m != NULL && i < m->n; i++)
		if (m->rules[i].traits & EXPR_UNIQUE)
			return true;
	return false;
}

/* SelectUniqueValue's question, asked without a target: every candidate is
 * noted and said taken, so the evaluation walks them all, in order, skipping
 * the empty ones exactly as it would with a target (expr_funcs.c). */
struct collect {
	char **v;
	size_t n;
};

static int collect_taken(void *ctx, const char *value, int *taken)
{
	struct collect *c = ctx;

	c->v = xrealloc(c->v, (c->n + 1) * sizeof *c->v);
	c->v[c->n++] = xstrdup(value);
	*taken = 1;
	return 0;
}

/* The attribute path the target is asked about: [urn:]attr[.sub]; a value
 * filter (emails[type eq "work"].value) asks about the sub-attribute of any
 * element, which is what a uniqueness constraint covers. */
static char *unique_attr(const struct rule *r)
{
	size_t len = (r->urn ? strlen(r->urn) + 1 : 0) + strlen(r->attr) + (r->sub ? strlen(r->sub) + 1 : 0) + 1;
	char *p = xmalloc(len);

	snprintf(p, len, "%s%s%s%s%s", r->urn ? r->urn : "", r->urn ? ":" : "", r->attr, r->sub ? "." : "",
		 r->sub ? r->sub : "");
	return p;
}

int mapping_unique_candidates(const struct mapping *m, const struct object_attr *attrs, size_t n_attrs,
			      struct mapping_unique **out, size_t *n_out, char *errmsg, size_t errlen)
{
	struct lookup_ctx ctx = {attrs, n_attrs};
	struct mapping_unique *u = NULL;
	size_t n = 0;
	char err[512];

	for (size_t i = 0; m != NULL && i < m->n; i++) {
		const struct rule *r = &m->rules[i];
		struct collect c = {0};
		struct expr_env env = {.lookup = lookup, .lookup_ctx = &ctx, .taken = collect_taken, .taken_ctx = &c};
		struct expr_value v = {0};
		if (!(r->traits & EXPR_UNIQUE))
			continue;
		int rv = expr_eval_env(r->expr, &env, &v, err, sizeof err);
		expr_value_free(&v);
		/* every candidate said taken: -EINVAL "every candidate is taken"
		 * is the expected end; any other failure is the rule's own */
		if (c.n == 0 && rv != 0) {
			redact_error(r, err, sizeof err);
			snprintf(errmsg, errlen, "mapping %s (line %d): %s", r->path, r->line, err);
			mapping_unique_free(u, n);
			return rv;
		}
		u = xrealloc(u, (n + 1) * sizeof *u);
		u[n].rule = i;
		u[n].attr = unique_attr(r);
		u[n].cand = c.v;
		u[n].n_cand = c.n;
		snprintf(u[n].where, sizeof u[n].where, "mapping %s (line %d)", r->path, r->line);
		u[n].redact = (r->traits & EXPR_REDACT) != 0;
		n++;
	}
	*out = u;
	*n_out = n;
	return 0;
}

void mapping_unique_place(const struct mapping *m, const struct mapping_unique *u, const char *value,
			  json_t *resource)
{
	const struct rule *r = &m->rules[u->rule];

	place(resource, r, scalar(r, value));
	if (r->urn && strcasecmp(r->urn, SCIM_SCHEMA_ENTERPRISE) == 0) {
		json_t *schemas = json_object_get(resource, "schemas"), *sv;
		bool has = false;
		size_t k;
		json_array_foreach(schemas, k, sv)
			has = has || (json_string_value(sv) && strcmp(json_string_value(sv), SCIM_SCHEMA_ENTERPRISE) == 0);
		if (!has && json_is_array(schemas) &&
		    json_array_append_new(schemas, xcheck(json_string(SCIM_SCHEMA_ENTERPRISE))) != 0)
			xoom("json_array_append_new");
	}
}

void mapping_unique_free(struct mapping_unique *u, size_t n)
{
	for (size_t i = 0; i < n; i++) {
		free(u[i].attr);
		for (size_t j = 0; j < u[i].n_cand; j++)
			free(u[i].cand[j]);
		free(u[i].cand);
	}
	free(u);
}

/* The name provlog_modified() gives rule r's attribute (sync/provlog.h):
 * members of objects joined by '.', an extension under its URN, a
 * multi-valued attribute (the filtered form) as a whole. */
static void modified_name(const struct rule *r, char *buf, size_t len)
{
	snprintf(buf, len, "%s%s%s%s%s", r->urn ? r->urn : "", r->urn ? "." : "", r->attr,
		 r->sub && !r->filter_attr ? "." : "", r->sub && !r->filter_attr ? r->sub : "");
}

/* Is `name` the attribute of rule r, or an object that contains it (a
 * whole "name" added holds "name.givenName")? */
static bool covers(const char *name, const char *rule_name)
{
	size_t n = strlen(name);
	return strncmp(name, rule_name, n) == 0 && (rule_name[n] == '\0' || rule_name[n] == '.');
}

void mapping_redact_modified(const struct mapping *m, json_t *modified)
{
	size_t i;
	json_t *e;
	char rn[512];

	json_array_foreach(modified, i, e)
	{
		const char *name = json_string_value(json_object_get(e, "attr"));
		for (size_t k = 0; name && m != NULL && k < m->n; k++) {
			const struct rule *r = &m->rules[k];
			if (!(r->traits & EXPR_REDACT))
				continue;
			modified_name(r, rn, sizeof rn);
			if (!covers(name, rn))
				continue;
			if (!json_is_null(json_object_get(e, "old")))
				set(e, "old", xcheck(json_string(MAPPING_REDACTED)));
			if (!json_is_null(json_object_get(e, "new")))
				set(e, "new", xcheck(json_string(MAPPING_REDACTED)));
			break;
		}
	}
}

bool mapping_has_manager(const struct mapping *m)
{
	return m != NULL && m->manager != NULL;
}

int mapping_manager(const struct mapping *m, const struct object_attr *attrs, size_t n_attrs, char **dn,
		    char *errmsg, size_t errlen)
{
	struct lookup_ctx ctx = {attrs, n_attrs};
	struct expr_value v;
	char err[512];
	int rv;

	*dn = NULL;
	if (m == NULL || m->manager == NULL)
		return 0;
	rv = expr_eval(m->manager->expr, lookup, &ctx, &v, err, sizeof err);
	if (rv != 0) {
		snprintf(errmsg, errlen, "mapping %s (line %d): %s", m->manager->path, m->manager->line, err);
		return rv;
	}
	/* A user has one manager (single-valued, RFC 7643 §4.3): the first
	 * value; an empty one is none. */
	if (v.n > 0 && v.v[0][0] != '\0')
		*dn = xstrdup(v.v[0]);
	expr_value_free(&v);
	return 0;
}

void mapping_default_active(json_t *resource)
{
	if (json_object_get(resource, "active") == NULL &&
	    json_object_set_new(resource, "active", json_true()) != 0)
		xoom("json_object_set_new");
}

uint64_t mapping_hash(const json_t *resource)
{
	char *s = xcheck(json_dumps(resource, JSON_COMPACT | JSON_SORT_KEYS));
	uint64_t h;
	h = hash_str(s);
	free(s);
	return h;
}
