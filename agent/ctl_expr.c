/*
 * agent/ctl_expr.c -- `canopyctl expr`: evaluate a mapping expression on the
 * command line, with the same parser and evaluator the agent uses
 * (sync/transform/expr.h), so that an expression can be tried before it goes
 * into the configuration. Local: no agent is asked.
 *
 *     canopyctl expr EXPRESSION [--attr NAME=VALUE]... [--taken VALUE]...
 *                    [--now TIME] [--json]
 *     canopyctl expr [EXPRESSION] --object DN --config FILE [--json]
 *
 * --attr gives a source attribute (repeat a name for several values);
 * --taken names a value SelectUniqueValue must treat as already held in the
 * target; --now fixes Now() (RFC 3339). Output: one value per line, nothing
 * for null; with --json {"value": "..." | ["...", ...] | null}. Exit 0; 1
 * when the expression does not parse or cannot be evaluated (the message on
 * stderr starts with "column N:"); 2 for a bad command line. With --object
 * the attributes are read from the directory (below).
 */
#include "agent/config.h"
#include "agent/ctl.h"
#include "common/xalloc.h"
#include "sync/provlog.h"
#include "sync/source/ad.h"
#include "sync/source/ad_internal.h" /* ad__attr_values: AD values as the mappings see them */
#include "sync/source/ldap_probe.h"
#include "sync/transform/expr.h"
#include "sync/transform/mapping.h"

#include <jansson.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

/* Caps on what the command line may give: argv is bounded by the kernel
 * anyway, these keep the lookups linear scans. */
#define EXPR_CLI_MAX_ATTRS 1024

struct cli_attr {
	char *name;
	const char **values;
	size_t n;
};

struct cli {
	struct cli_attr *attrs;
	size_t n_attrs;
	const char **taken;
	size_t n_taken;
	char **owned; /* the values read by --object */
	size_t n_owned;
};

static int cli_lookup(void *ctx, const char *name, const char *const **values, size_t *n)
{
	struct cli *c = ctx;
	*n = 0;
	for (size_t i = 0; i < c->n_attrs; i++)
		if (strcasecmp(c->attrs[i].name, name) == 0) {
			*values = c->attrs[i].values;
			*n = c->attrs[i].n;
			break;
		}
	return 0;
}

/* SelectUniqueValue's target, played by --taken (exact match, like a
 * case-sensitive SCIM filter: RFC 7644 §3.4.2.2 leaves case to the
 * attribute's caseExact). */
static int cli_taken(void *ctx, const char *value, int *taken)
{
	struct cli *c = ctx;
	*taken = 0;
	for (size_t i = 0; i < c->n_taken; i++)
		if (strcmp(c->taken[i], value) == 0)
			*taken = 1;
	return 0;
}

static struct cli_attr *find_or_add(struct cli *c, const char *name, size_t len)
{
	for (size_t i = 0; i < c->n_attrs; i++)
		if (strlen(c->attrs[i].name) == len && strncasecmp(c->attrs[i].name, name, len) == 0)
			return &c->attrs[i];
	if (c->n_attrs >= EXPR_CLI_MAX_ATTRS)
		return NULL;
	c->attrs = xrealloc(c->attrs, (c->n_attrs + 1) * sizeof *c->attrs);
	c->attrs[c->n_attrs] = (struct cli_attr){.name = xstrndup(name, len)};
	return &c->attrs[c->n_attrs++];
}

static void push_value(struct cli_attr *a, const char *v)
{
	a->values = xrealloc(a->values, (a->n + 1) * sizeof *a->values);
	a->values[a->n++] = v;
}

static int add_attr(struct cli *c, const char *arg, FILE *err)
{
	const char *eq = strchr(arg, '=');
	if (!eq || eq == arg) {
		fprintf(err, "canopyctl: expr: --attr takes NAME=VALUE, not \"%s\"\n", arg);
		return -1;
	}
	size_t len = (size_t)(eq - arg);
	struct cli_attr *a = NULL;
	for (size_t i = 0; i < c->n_attrs && !a; i++)
		if (strlen(c->attrs[i].name) == len && strncasecmp(c->attrs[i].name, arg, len) == 0)
			a = &c->attrs[i];
	if (!a) {
		if (c->n_attrs >= EXPR_CLI_MAX_ATTRS) {
			fprintf(err, "canopyctl: expr: more than %d attributes\n", EXPR_CLI_MAX_ATTRS);
			return -1;
		}
		c->attrs = xrealloc(c->attrs, (c->n_attrs + 1) * sizeof *c->attrs);
		a = &c->attrs[c->n_attrs++];
		*a = (struct cli_attr){.name = xstrndup(arg, len)};
	}
	a->values = xrealloc(a->values, (a->n + 1) * sizeof *a->values);
	a->values[a->n++] = eq + 1;
	return 0;
}

static void cli_free(struct cli *c)
{
	for (size_t i = 0; i < c->n_attrs; i++) {
		free(c->attrs[i].name);
		free(c->attrs[i].values);
	}
	free(c->attrs);
	free(c->taken);
	for (size_t i = 0; i < c->n_owned; i++)
		free(c->owned[i]);
	free(c->owned);
}

static void expr_usage(FILE *f)
{
	fprintf(f, "usage: canopyctl expr EXPRESSION [--attr NAME=VALUE]... [--taken VALUE]... [--now TIME] [--json]\n"
		   "       canopyctl expr [EXPRESSION] --object DN --config FILE [--json]\n");
}

/* ---- --object DN --config FILE: one entry of the configured source ----
 *
 * canopyctl reads the agent's configuration and binds to the directory
 * itself, as the agent's health probe does (sync/source/ldap_probe.h): no
 * running agent is needed, and nothing is written anywhere. The entry's
 * values reach the expression as they reach the agent's mappings: text as
 * it is; from Active Directory, binary attributes as base64 and
 * objectGUID as GUID text (docs/active-directory.md, "Binary attributes").
 * Not done here: AD's ranged retrieval of very long multi-valued
 * attributes (member), which the source does.
 */

struct object_read {
	struct cli *c;
	bool ad;
	char *anchor;
};

static void keep(struct cli *c, struct cli_attr *a, char *v)
{
	c->owned = xrealloc(c->owned, (c->n_owned + 1) * sizeof *c->owned);
	c->owned[c->n_owned++] = v;
	push_value(a, v);
}

static void read_entry(void *ctx, LDAP *ld, LDAPMessage *e)
{
	struct object_read *r = ctx;
	BerElement *ber = NULL;
	for (char *name = ldap_first_attribute(ld, e, &ber); name; name = ldap_next_attribute(ld, e, ber)) {
		struct berval **vals = ldap_get_values_len(ld, e, name);
		size_t nv = (size_t)ldap_count_values_len(vals);
		struct cli_attr *a = find_or_add(r->c, name, strlen(name));
		if (r->ad && strcasecmp(name, "objectGUID") == 0 && nv == 1) {
			char g[37];
			if (ad_guid_format(vals[0]->bv_val, vals[0]->bv_len, g) == 0) {
				if (a)
					keep(r->c, a, xstrdup(g));
				free(r->anchor);
				r->anchor = xstrdup(g);
			}
		} else if (r->ad && nv > 0) {
			char **v = ad__attr_values(name, strlen(name), vals, nv);
			for (size_t i = 0; i < nv; i++)
				if (a)
					keep(r->c, a, v[i]);
				else
					free(v[i]);
			free(v);
		} else {
			for (size_t i = 0; i < nv; i++)
				if (a)
					keep(r->c, a, xstrndup(vals[i]->bv_val, vals[i]->bv_len));
			if (!r->ad && strcasecmp(name, "entryUUID") == 0 && nv > 0) {
				free(r->anchor);
				r->anchor = xstrndup(vals[0]->bv_val, vals[0]->bv_len);
			}
		}
		ldap_value_free_len(vals);
		ldap_memfree(name);
	}
	ber_free(ber, 0);
}

struct names {
	char **v;
	size_t n;
};

static void add_name(void *ctx, const char *name)
{
	struct names *l = ctx;
	l->v = xrealloc(l->v, (l->n + 2) * sizeof *l->v);
	l->v[l->n++] = xstrdup(name);
	l->v[l->n] = NULL;
}

/* Is `dn` at or below `base`? (case-insensitive suffix on an RDN boundary) */
static bool under(const char *dn, const char *base)
{
	size_t n = strlen(dn), b = strlen(base);
	return b > 0 && n >= b && strcasecmp(dn + n - b, base) == 0 && (n == b || dn[n - b - 1] == ',');
}

/* Read `dn` with the configuration's source; fills c's attributes. With no
 * expression, also compiles the mapping of the entry's type (a DN below the
 * groups base is a group, anything else a user) into *m. Returns 0 or 1
 * with the cause on err. */
static int read_object(struct cli *c, const char *dn, const char *config_path, const struct expr *e,
		       struct mapping **m, enum object_type *type, char **anchor, FILE *err)
{
	struct config *cfg = xcalloc(1, sizeof *cfg);
	struct names attrs = {0};
	char msg[1024];
	const char *urls[CONFIG_MAX_URLS];
	int rc = 1;

	if (config_load(config_path, cfg, msg, sizeof msg) != 0) {
		fprintf(err, "canopyctl: expr: %s\n", msg);
		goto err_after_config;
	}
	if (!cfg->source.present) {
		fprintf(err, "canopyctl: expr: %s has no source to read %s from\n", config_path, dn);
		goto err_after_config;
	}
	*type = cfg->source.groups.base[0] && under(dn, cfg->source.groups.base) &&
			!(under(dn, cfg->source.users.base) && strlen(cfg->source.users.base) > strlen(cfg->source.groups.base))
		? OBJECT_GROUP : OBJECT_USER;
	if (e) {
		expr_attributes(e, add_name, &attrs);
	} else {
		const struct config_mapping *cm = *type == OBJECT_GROUP ? cfg->mapping.group : cfg->mapping.user;
		unsigned n = *type == OBJECT_GROUP ? cfg->mapping.n_group : cfg->mapping.n_user;
		struct mapping_rule_text rules[CONFIG_MAX_MAPPINGS];
		for (unsigned i = 0; i < n; i++)
			rules[i] = (struct mapping_rule_text){cm[i].attr, cm[i].expr, cm[i].line};
		if (mapping_compile(m, *type, *type == OBJECT_GROUP ? "mapping.group" : "mapping.user", rules, n, msg,
				    sizeof msg) != 0) {
			fprintf(err, "canopyctl: expr: %s: %s\n", config_path, msg);
			goto err_after_names;
		}
		mapping_attributes(*m, add_name, &attrs);
	}
	add_name(&attrs, cfg->source.kind == CONFIG_SOURCE_AD		   ? "objectGUID"
			  : cfg->source.kind == CONFIG_SOURCE_LDAP_POLL ? cfg->source.anchor_attribute
								  : "entryUUID"); /* the anchor */
	for (unsigned i = 0; i < cfg->source.n_urls && i < CONFIG_MAX_URLS; i++)
		urls[i] = cfg->source.urls[i];
	struct ldap_probe_config pc = {
		.urls = urls, .n_urls = cfg->source.n_urls, .base = cfg->source.users.base,
		.bind_dn = cfg->source.bind_dn[0] ? cfg->source.bind_dn : NULL, .password = cfg->source.password,
		.timeout_ms = 5000,
		.tls = {.starttls = cfg->source.tls, .ca_file = cfg->source.tls_ca[0] ? cfg->source.tls_ca : NULL},
		.sasl = {.mech = cfg->source.sasl.mech == CONFIG_SASL_GSSAPI ? SOURCE_SASL_GSSAPI : SOURCE_SASL_NONE,
			 .keytab = cfg->source.sasl.keytab, .principal = cfg->source.sasl.principal},
	};
	struct object_read r = {.c = c, .ad = cfg->source.kind == CONFIG_SOURCE_AD};
	struct ldap_probe_entry pe = {.dn = dn, .attrs = attrs.v, .entry = read_entry, .ctx = &r};
	if (ldap_probe_read(&pc, &pe, msg, sizeof msg) != LDAP_PROBE_OK) {
		fprintf(err, "canopyctl: expr: reading %s: %s\n", dn, msg);
		free(r.anchor);
		goto err_after_names;
	}
	*anchor = r.anchor;
	rc = 0;
err_after_names:
	for (size_t i = 0; i < attrs.n; i++)
		free(attrs.v[i]);
	free(attrs.v);
err_after_config:
	config_free(cfg);
	free(cfg);
	return rc;
}

/* SelectUniqueValue rules, as at a creation: the first candidate --taken
 * does not name (sync/engine/unique.c asks the target instead). */
static int place_unique(const struct mapping *m, const struct object_attr *oa, struct cli *c, json_t *res,
			char *msg, size_t len)
{
	struct mapping_unique *u = NULL;
	size_t n = 0;
	int rc = mapping_unique_candidates(m, oa, c->n_attrs, &u, &n, msg, len);

	for (size_t k = 0; rc == 0 && k < n; k++) {
		size_t i;
		int taken = 1;
		for (i = 0; i < u[k].n_cand && taken; i++)
			cli_taken(c, u[k].cand[i], &taken);
		if (taken) {
			snprintf(msg, len, "%s: SelectUniqueValue: every candidate for %s is taken (--taken)", u[k].where,
				 u[k].attr);
			rc = -EINVAL;
		} else {
			mapping_unique_place(m, &u[k], u[k].cand[i - 1], res);
		}
	}
	mapping_unique_free(u, n);
	return rc;
}

static int print_mapped(const struct mapping *m, enum object_type type, const char *dn, const char *anchor,
			struct cli *c, bool json, FILE *out, FILE *err)
{
	struct object_attr *oa = xcalloc(c->n_attrs + 1, sizeof *oa);
	char msg[1024];
	char *manager = NULL;
	json_t *res = NULL;
	int rc = 1;
	for (size_t i = 0; i < c->n_attrs; i++)
		oa[i] = (struct object_attr){c->attrs[i].name, (char **)c->attrs[i].values, c->attrs[i].n};
	if (mapping_apply(m, anchor ? anchor : "", oa, c->n_attrs, &res, msg, sizeof msg) != 0 ||
	    mapping_apply_creation(m, oa, c->n_attrs, res, msg, sizeof msg) != 0 ||
	    (type == OBJECT_USER && mapping_manager(m, oa, c->n_attrs, &manager, msg, sizeof msg) != 0)) {
		fprintf(err, "canopyctl: expr: %s: %s\n", dn, msg);
		goto out;
	}
	if (place_unique(m, oa, c, res, msg, sizeof msg) != 0) {
		fprintf(err, "canopyctl: expr: %s: %s\n", dn, msg);
		goto out;
	}
	json_t *o = xcheck(json_pack("{s:s,s:s,s:O}", "dn", dn, "type", object_type_name(type), "resource", res));
	if (mapping_has_manager(m))
		json_object_set_new(o, "manager_dn", manager ? xcheck(json_string(manager)) : json_null());
	char *d = xcheck(json_dumps(json ? o : res, json ? JSON_COMPACT : JSON_INDENT(2) | JSON_SORT_KEYS));
	fprintf(out, "%s\n", d);
	free(d);
	json_decref(o);
	rc = 0;
out:
	json_decref(res);
	free(manager);
	free(oa);
	return rc;
}

static int print_value(const struct expr_value *v, bool json, FILE *out, FILE *err)
{
	if (!json) {
		for (size_t i = 0; i < v->n; i++)
			fprintf(out, "%s\n", v->v[i]);
		return 0;
	}
	json_t *val;
	if (v->n == 0) {
		val = json_null();
	} else if (v->n == 1) {
		val = json_string(v->v[0]);
	} else {
		val = xcheck(json_array());
		for (size_t i = 0; i < v->n && val; i++) {
			json_t *s = json_string(v->v[i]);
			if (!s || json_array_append_new(val, s)) {
				json_decref(val);
				val = NULL;
			}
		}
	}
	if (!val) { /* jansson takes only UTF-8: a binary value */
		fprintf(err, "canopyctl: expr: the value is not valid UTF-8 (binary): it cannot be printed as JSON\n");
		return -1;
	}
	json_t *o = xcheck(json_object());
	json_object_set_new(o, "value", val);
	char *d = xcheck(json_dumps(o, JSON_COMPACT | JSON_ENSURE_ASCII));
	fprintf(out, "%s\n", d);
	free(d);
	json_decref(o);
	return 0;
}

int ctl_expr(int argc, char **argv, FILE *out, FILE *err)
{
	struct cli c = {0};
	const char *text = NULL, *now = NULL, *object = NULL, *config = NULL;
	bool json = false;
	int rc = 2;

	for (int i = 1; i < argc; i++) {
		const char *a = argv[i];
		bool needs = strcmp(a, "--attr") == 0 || strcmp(a, "--taken") == 0 || strcmp(a, "--now") == 0 ||
			     strcmp(a, "--object") == 0 || strcmp(a, "--config") == 0;
		if (needs && i + 1 == argc) {
			fprintf(err, "canopyctl: expr: %s needs a value\n", a);
			goto out;
		}
		if (strcmp(a, "--json") == 0 || strcmp(a, "-j") == 0) {
			json = true;
		} else if (strcmp(a, "--help") == 0 || strcmp(a, "-h") == 0) {
			expr_usage(out);
			rc = 0;
			goto out;
		} else if (strcmp(a, "--attr") == 0) {
			if (add_attr(&c, argv[++i], err))
				goto out;
		} else if (strcmp(a, "--taken") == 0) {
			c.taken = xrealloc(c.taken, (c.n_taken + 1) * sizeof *c.taken);
			c.taken[c.n_taken++] = argv[++i];
		} else if (strcmp(a, "--now") == 0) {
			now = argv[++i];
		} else if (strcmp(a, "--object") == 0) {
			object = argv[++i];
		} else if (strcmp(a, "--config") == 0) {
			config = argv[++i];
		} else if (strcmp(a, "--") == 0 && i + 1 < argc && !text) {
			text = argv[++i];
		} else if (a[0] == '-' && a[1] == '-') {
			fprintf(err, "canopyctl: expr: unknown option %s\n", a);
			expr_usage(err);
			goto out;
		} else if (!text) {
			text = a; /* "-1" is an expression, not an option */
		} else {
			fprintf(err, "canopyctl: expr: unexpected argument \"%s\" (quote the expression as one argument)\n", a);
			goto out;
		}
	}
	if (!text && !object) {
		expr_usage(err);
		goto out;
	}
	if (!!object != !!config) {
		fprintf(err, "canopyctl: expr: --object DN and --config FILE go together (the entry is read with the "
			     "configuration's source settings)\n");
		goto out;
	}
	struct expr_env env = {.lookup = cli_lookup, .lookup_ctx = &c, .taken = cli_taken, .taken_ctx = &c};
	if (now) {
		int64_t us;
		if (provlog_parse_time(now, &us)) {
			fprintf(err, "canopyctl: expr: --now takes an RFC 3339 time (2021-07-02T15:33:38Z), not \"%s\"\n", now);
			goto out;
		}
		env.now = us / 1000000;
		if (env.now == 0) /* 0 means "read the clock": the epoch itself is 1 s off */
			env.now = 1;
	}
	struct expr *e = NULL;
	struct expr_value v = {0};
	char msg[1024];
	rc = 1;
	if (text && expr_parse(text, &e, msg, sizeof msg)) {
		fprintf(err, "canopyctl: expr: %s\n", msg);
		goto out;
	}
	if (object) {
		struct mapping *m = NULL;
		enum object_type type;
		char *anchor = NULL;
		int r = read_object(&c, object, config, e, &m, &type, &anchor, err);
		if (r == 0 && !e)
			rc = print_mapped(m, type, object, anchor, &c, json, out, err);
		mapping_free(m);
		free(anchor);
		if (r != 0 || !e)
			goto out_after_parse;
	}
	if (expr_eval_env(e, &env, &v, msg, sizeof msg)) {
		fprintf(err, "canopyctl: expr: %s\n", msg);
	} else if (print_value(&v, json, out, err) == 0) {
		rc = 0;
	}
	expr_value_free(&v);
out_after_parse:
	expr_free(e);
out:
	cli_free(&c);
	return rc;
}
