/*
 * agent/ctl_expr.c -- `canopyctl expr`: evaluate a mapping expression on the
 * command line, with the same parser and evaluator the agent uses
 * (sync/transform/expr.h), so that an expression can be tried before it goes
 * into the configuration. Local: no agent is asked.
 *
 *     canopyctl expr EXPRESSION [--attr NAME=VALUE]... [--taken VALUE]...
 *                    [--now TIME] [--json]
 *
 * --attr gives a source attribute (repeat a name for several values);
 * --taken names a value SelectUniqueValue must treat as already held in the
 * target; --now fixes Now() (RFC 3339). Output: one value per line, nothing
 * for null; with --json {"value": "..." | ["...", ...] | null}. Exit 0; 1
 * when the expression does not parse or cannot be evaluated (the message on
 * stderr starts with "column N:"); 2 for a bad command line.
 */
#include "agent/ctl.h"
#include "common/xalloc.h"
#include "sync/provlog.h"
#include "sync/transform/expr.h"

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
}

static void expr_usage(FILE *f)
{
	fprintf(f, "usage: canopyctl expr EXPRESSION [--attr NAME=VALUE]... [--taken VALUE]... [--now TIME] [--json]\n");
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
	const char *text = NULL, *now = NULL;
	bool json = false;
	int rc = 2;

	for (int i = 1; i < argc; i++) {
		const char *a = argv[i];
		bool needs = strcmp(a, "--attr") == 0 || strcmp(a, "--taken") == 0 || strcmp(a, "--now") == 0;
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
	if (!text) {
		expr_usage(err);
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
	if (expr_parse(text, &e, msg, sizeof msg)) {
		fprintf(err, "canopyctl: expr: %s\n", msg);
		goto out;
	}
	if (expr_eval_env(e, &env, &v, msg, sizeof msg)) {
		fprintf(err, "canopyctl: expr: %s\n", msg);
	} else if (print_value(&v, json, out, err) == 0) {
		rc = 0;
	}
	expr_value_free(&v);
	expr_free(e);
out:
	cli_free(&c);
	return rc;
}
