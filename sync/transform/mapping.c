/* sync/transform/mapping.c -- see mapping.h. */
#include "sync/transform/mapping.h"

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
};

struct mapping {
	enum object_type type;
	struct rule *rules;
	size_t n;
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

static char *dupn(const char *s, size_t n)
{
	char *d = malloc(n + 1);
	if (d) {
		memcpy(d, s, n);
		d[n] = '\0';
	}
	return d;
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
		r->urn = dupn(p, (size_t)(colon - p));
		p = colon + 1;
	}
	n = strcspn(p, "[.");
	if (n == 0) {
		snprintf(err, errlen, "attribute path \"%s\" has no attribute name", path);
		return -EINVAL;
	}
	r->attr = dupn(p, n);
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
		r->filter_attr = strdup(fa);
		r->filter_value = strdup(fv);
		p += used;
	}
	if (*p == '.') {
		p++;
		end = p + strlen(p);
		if (end == p || strpbrk(p, ".[]")) {
			snprintf(err, errlen, "attribute path \"%s\": bad sub-attribute", path);
			return -EINVAL;
		}
		r->sub = strdup(p);
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

int mapping_compile(struct mapping **out, enum object_type type, const char *what,
		    const struct mapping_rule_text *rules, size_t n, char *errmsg, size_t errlen)
{
	struct mapping *m = calloc(1, sizeof *m);
	char err[512];
	size_t i;
	int rv;

	if (m == NULL || (m->rules = calloc(n ? n : 1, sizeof *m->rules)) == NULL) {
		free(m);
		return -ENOMEM;
	}
	m->type = type;
	for (i = 0; i < n; i++, m->n++) {
		struct rule *r = &m->rules[i];
		r->path = strdup(rules[i].path);
		r->line = rules[i].line;
		rv = parse_path(r, rules[i].path, err, sizeof err);
		if (rv == 0)
			rv = expr_parse(rules[i].expr, &r->expr, err, sizeof err);
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

static json_t *scalar(const struct rule *r, const char *v)
{
	if (strcasecmp(r->sub ? r->sub : r->attr, "active") == 0 ||
	    strcasecmp(r->sub ? r->sub : r->attr, "primary") == 0) {
		if (strcasecmp(v, "true") == 0)
			return json_true();
		if (strcasecmp(v, "false") == 0)
			return json_false();
	}
	return json_string(v);
}

static json_t *value_json(const struct rule *r, const struct expr_value *v)
{
	json_t *a;
	size_t i;
	if (v->n == 1 || r->filter_attr)
		return scalar(r, v->v[0]);
	a = json_array();
	for (i = 0; i < v->n; i++)
		json_array_append_new(a, scalar(r, v->v[i]));
	return a;
}

/* Get or create a JSON object member. */
static json_t *child(json_t *parent, const char *key)
{
	json_t *c = json_object_get(parent, key);
	if (!json_is_object(c)) {
		c = json_object();
		json_object_set_new(parent, key, c);
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
			arr = json_array();
			json_object_set_new(base, r->attr, arr);
		}
		json_array_foreach(arr, i, e)
		{
			const char *fv = json_string_value(json_object_get(e, r->filter_attr));
			if (fv && strcmp(fv, r->filter_value) == 0)
				el = e;
		}
		if (el == NULL) {
			el = json_pack("{s:s}", r->filter_attr, r->filter_value);
			/* The first element of a multi-valued attribute is the primary one. */
			if (json_array_size(arr) == 0)
				json_object_set_new(el, "primary", json_true());
			json_array_append_new(arr, el);
		}
		json_object_set_new(el, r->sub, val);
	} else if (r->sub) {
		json_object_set_new(child(base, r->attr), r->sub, val);
	} else {
		json_object_set_new(base, r->attr, val);
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

	res = json_object();
	schemas = json_array();
	json_array_append_new(schemas, json_string(m->type == OBJECT_GROUP ? SCIM_SCHEMA_GROUP
									  : SCIM_SCHEMA_USER));
	json_object_set_new(res, "schemas", schemas);
	json_object_set_new(res, "externalId", json_string(anchor));
	for (i = 0; i < m->n; i++) {
		const struct rule *r = &m->rules[i];
		rv = expr_eval(r->expr, lookup, &ctx, &v, err, sizeof err);
		if (rv != 0) {
			snprintf(errmsg, errlen, "mapping %s (line %d): %s", r->path, r->line, err);
			json_decref(res);
			return rv;
		}
		if (v.n > 0) {
			place(res, r, value_json(r, &v));
			if (r->urn && strcasecmp(r->urn, SCIM_SCHEMA_ENTERPRISE) == 0)
				enterprise = true;
		}
		expr_value_free(&v);
	}
	if (enterprise)
		json_array_append_new(schemas, json_string(SCIM_SCHEMA_ENTERPRISE));
	*out = res;
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
	char *s = json_dumps(resource, JSON_COMPACT | JSON_SORT_KEYS);
	uint64_t h;
	if (s == NULL)
		return 0;
	h = hash_str(s);
	free(s);
	return h;
}
