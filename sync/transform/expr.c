/*
 * sync/transform/expr.c -- parser and evaluation core of mapping expressions.
 *
 * The text is parsed by recursive descent into a tree of nodes; evaluation
 * walks the tree. Every function of the table (expr_funcs.c) has an arity
 * checked at parse time and an evaluator. Values are lists of strings (see
 * expr.h); the general rule, written down in docs/mapping-expressions.md, is
 * that a function taking "a string" applies to every value of a multi-valued
 * source and that null in gives null out, except where Entra documents
 * otherwise. expr_impl.h lists the other files.
 */
#include "sync/transform/expr.h"

#include <errno.h>
#include <limits.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "sync/transform/expr_impl.h"

/* ---- Value lists ---- */

void expr_value_free(struct expr_value *v)
{
	if (!v)
		return;
	for (size_t i = 0; i < v->n; i++)
		free(v->v[i]);
	free(v->v);
	v->v = NULL;
	v->n = 0;
}

void ex_vpush(struct expr_value *v, char *s)
{
	v->v = xrealloc(v->v, (v->n + 1) * sizeof *v->v);
	v->v[v->n++] = s;
}

void ex_vpush_str(struct expr_value *v, const char *s) { ex_vpush(v, xstrdup(s)); }

void ex_vpush_n(struct expr_value *v, const char *s, size_t len)
{
	ex_vpush(v, xstrndup(s, len));
}

void ex_vpush_bool(struct expr_value *v, bool b) { ex_vpush_str(v, b ? "True" : "False"); }

void ex_vappend(struct expr_value *dst, struct expr_value *src)
{
	for (size_t i = 0; i < src->n; i++)
		ex_vpush(dst, src->v[i]);
	free(src->v);
	*src = (struct expr_value){0};
}

/* ---- Messages ---- */

static void vmsg(char *err, size_t errlen, unsigned col, const char *fname,
		 const char *fmt, va_list ap)
{
	if (!err || !errlen)
		return;
	int k = fname ? snprintf(err, errlen, "column %u: %s: ", col, fname)
		      : snprintf(err, errlen, "column %u: ", col);
	if (k >= 0 && (size_t)k < errlen)
		vsnprintf(err + k, errlen - (size_t)k, fmt, ap);
}

/* 1-based column of byte `pos`, counted in characters. */
static unsigned column(const char *s, size_t pos)
{
	unsigned col = 1;
	for (size_t i = 0; i < pos; i++)
		if (((unsigned char)s[i] & 0xC0) != 0x80)
			col++;
	return col;
}

int ex_parse_ll(const char *s, long long *out)
{
	while (*s == ' ' || *s == '\t')
		s++;
	if (!*s)
		return -EINVAL;
	char *end;
	errno = 0;
	long long v = strtoll(s, &end, 10);
	if (errno || end == s)
		return -EINVAL;
	while (*end == ' ' || *end == '\t')
		end++;
	if (*end)
		return -EINVAL;
	*out = v;
	return 0;
}

int ex_parse_bool(const char *s)
{
	if (strcasecmp(s, "true") == 0)
		return 1;
	if (strcasecmp(s, "false") == 0)
		return 0;
	return -1;
}

/* ---- The tree ---- */

static void node_free(struct node *n)
{
	if (!n)
		return;
	for (size_t i = 0; i < n->nargs; i++)
		node_free(n->args[i]);
	free(n->args);
	free(n->text);
	ex_rx_free(n->rx);
	ex_rxcache_free(n->rxc);
	free(n);
}

struct expr {
	struct node *root;
	char **attrs;
	size_t nattrs;
	unsigned traits;
};

/* ---- Parser ---- */

int ex_perr_col(struct parser *p, unsigned col, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	vmsg(p->err, p->errlen, col, NULL, fmt, ap);
	va_end(ap);
	return -EINVAL;
}

#define perr(p, pos, ...) ex_perr_col((p), column((p)->s, (pos)), __VA_ARGS__)

static void skip_ws(struct parser *p)
{
	while (p->s[p->pos] == ' ' || p->s[p->pos] == '\t' || p->s[p->pos] == '\n' ||
	       p->s[p->pos] == '\r')
		p->pos++;
}

/* How the character at pos reads in a message. */
static int found_len(const char *s, size_t pos)
{
	uint32_t cp;
	return (int)ex_utf8_next(s + pos, strlen(s + pos), &cp);
}

static struct node *node_new(enum nkind kind, unsigned col)
{
	struct node *n = xcalloc(1, sizeof *n);
	n->kind = kind;
	n->col = col;
	return n;
}

static struct node *leaf(struct parser *p, enum nkind kind, size_t start, char *text)
{
	struct node *n = node_new(kind, column(p->s, start));
	n->text = text;
	return n;
}

static int parse_string(struct parser *p, struct node **out)
{
	size_t start = p->pos++;
	struct sbuf b = {0};

	for (;;) {
		char c = p->s[p->pos];
		if (!c) {
			sb_free(&b);
			return perr(p, start, "unterminated string literal, expected a closing '\"'");
		}
		p->pos++;
		if (c == '"')
			break;
		/* Only \" and \\ are escapes: DNs ("CN=Smith\, John") and regular
		 * expressions ("\d+") keep their backslashes. */
		if (c == '\\' && (p->s[p->pos] == '"' || p->s[p->pos] == '\\'))
			c = p->s[p->pos++];
		sb_addc(&b, c);
	}
	*out = leaf(p, N_STR, start, sb_take(&b));
	return 0;
}

static int parse_attr(struct parser *p, struct node **out)
{
	size_t start = p->pos++;
	const char *s = p->s;
	size_t i = p->pos;

	while (s[i] && s[i] != ']' && s[i] != '[' && s[i] != '"' && s[i] != '\n')
		i++;
	if (s[i] != ']')
		return perr(p, s[i] ? i : start, "%s, expected ']' to close the attribute reference",
			    s[i] ? "unexpected character in attribute name" : "unterminated attribute reference");
	size_t a = p->pos, z = i;
	while (a < z && (s[a] == ' ' || s[a] == '\t'))
		a++;
	while (z > a && (s[z - 1] == ' ' || s[z - 1] == '\t'))
		z--;
	if (a == z)
		return perr(p, start, "empty attribute name in '[]'");
	p->pos = i + 1;
	*out = leaf(p, N_ATTR, start, xstrndup(s + a, z - a));
	return 0;
}

static int parse_number(struct parser *p, struct node **out)
{
	size_t start = p->pos, i = p->pos;
	if (p->s[i] == '-')
		i++;
	while (ex_digit(p->s[i]))
		i++;
	if (p->s[i] == '.' && ex_digit(p->s[i + 1]))
		for (i++; ex_digit(p->s[i]); i++)
			;
	if (ex_ident_char(p->s[i]))
		return perr(p, i, "unexpected '%c' in number", p->s[i]);
	p->pos = i;
	*out = leaf(p, N_NUM, start, xstrndup(p->s + start, i - start));
	return 0;
}

/* &Hhex: VBA's hexadecimal literal (Entra's BitAnd example writes
 * BitAnd(&HF, &HF7)). Unlike VBA, &HFFFF is 65535, not -1: the value is
 * read as a positive 63-bit number. */
static int parse_hex(struct parser *p, struct node **out)
{
	size_t start = p->pos, i = p->pos + 2;
	unsigned long long v = 0;
	if (ex_hexval(p->s[i]) < 0)
		return perr(p, i, "expected hexadecimal digits after '&H'");
	for (; ex_hexval(p->s[i]) >= 0; i++) {
		if (v > (unsigned long long)LLONG_MAX >> 4)
			return perr(p, start, "hexadecimal number too large (more than 63 bits)");
		v = v << 4 | (unsigned)ex_hexval(p->s[i]);
	}
	if (ex_ident_char(p->s[i]))
		return perr(p, i, "unexpected '%c' in hexadecimal number", p->s[i]);
	char num[32];
	snprintf(num, sizeof num, "%llu", v);
	p->pos = i;
	*out = leaf(p, N_NUM, start, xstrdup(num));
	return 0;
}

static int parse_expr(struct parser *p, unsigned depth, struct node **out);

static int check_args(struct parser *p, struct node *n)
{
	const struct func *f = n->fn;
	if (n->nargs < f->min || n->nargs > f->max) {
		char want[64];
		if (f->min == f->max)
			snprintf(want, sizeof want, "%u argument%s", f->min, f->min == 1 ? "" : "s");
		else if (f->max == ARGS_MANY)
			snprintf(want, sizeof want, "at least %u arguments", f->min);
		else
			snprintf(want, sizeof want, "%u to %u arguments", f->min, f->max);
		return ex_perr_col(p, n->col, "%s expects %s, got %zu", f->name, want, n->nargs);
	}
	for (size_t i = 0; i < n->nargs; i++) {
		const struct node *a = n->args[i];
		long long v;
		if (i < 32 && (f->intargs & (1u << i)) && ex_literal(a) && ex_parse_ll(a->text, &v))
			return ex_perr_col(p, a->col, "%s: argument %zu must be an integer, got \"%s\"",
					   f->name, i + 1, a->text);
	}
	return f->check ? f->check(p, n) : 0;
}

static void push_arg(struct node *n, struct node *a)
{
	n->args = xrealloc(n->args, (n->nargs + 1) * sizeof *n->args);
	n->args[n->nargs++] = a;
}

/* Name(arg, ...): the name is s[start..start+len), p->pos is at '('. */
static int parse_call(struct parser *p, size_t start, size_t len, unsigned depth,
		      struct node **out)
{
	const struct func *f = ex_func_find(p->s + start, len);
	if (!f)
		return perr(p, start, "unknown function '%.*s'", (int)len, p->s + start);
	if (depth >= EXPR_MAX_DEPTH)
		return perr(p, start, "expression nested too deeply (more than %d levels)", EXPR_MAX_DEPTH);
	struct node *n = node_new(N_CALL, column(p->s, start));
	n->fn = f;
	p->pos++; /* '(' */
	skip_ws(p);
	int rc = 0;
	if (p->s[p->pos] == ')') {
		p->pos++;
	} else {
		for (;;) {
			struct node *a = NULL;
			skip_ws(p);
			char c = p->s[p->pos];
			if (c == ',' || c == ')')
				a = node_new(N_OMIT, column(p->s, p->pos));
			else if (!c)
				rc = perr(p, p->pos, "missing ')' to close %s( at column %u", f->name, n->col);
			else
				rc = parse_expr(p, depth + 1, &a);
			if (rc)
				break;
			push_arg(n, a);
			skip_ws(p);
			c = p->s[p->pos];
			if (c == ',') {
				p->pos++;
			} else if (c == ')') {
				p->pos++;
				break;
			} else if (!c) {
				rc = perr(p, p->pos, "missing ')' to close %s( at column %u", f->name, n->col);
				break;
			} else {
				rc = perr(p, p->pos, "expected ',' or ')' after argument %zu of %s, found '%.*s'",
					  n->nargs, f->name, found_len(p->s, p->pos), p->s + p->pos);
				break;
			}
		}
	}
	if (!rc)
		rc = check_args(p, n);
	if (rc) {
		node_free(n);
		return rc;
	}
	*out = n;
	return 0;
}

static int parse_word(struct parser *p, unsigned depth, struct node **out)
{
	static const char *const words[][2] = {
		{"true", "True"}, {"false", "False"},
		{"vbBinaryCompare", "vbBinaryCompare"}, {"vbTextCompare", "vbTextCompare"},
		/* ConvertFromBase64's Encoding, bare as Entra writes it */
		{"Unicode", "Unicode"}, {"ASCII", "ASCII"}, {"UTF8", "UTF8"},
	};
	size_t start = p->pos;
	while (ex_ident_char(p->s[p->pos]))
		p->pos++;
	size_t len = p->pos - start;
	size_t after = p->pos;
	skip_ws(p);
	if (p->s[p->pos] == '(')
		return parse_call(p, start, len, depth, out);
	p->pos = after;
	for (size_t i = 0; i < sizeof words / sizeof words[0]; i++)
		if (strlen(words[i][0]) == len && strncasecmp(p->s + start, words[i][0], len) == 0) {
			*out = leaf(p, i < 2 ? N_BOOL : N_STR, start, xstrdup(words[i][1]));
			return 0;
		}
	if (ex_func_find(p->s + start, len))
		return perr(p, after, "expected '(' after function name '%.*s'", (int)len, p->s + start);
	return perr(p, start, "unknown name '%.*s' (an attribute is written [%.*s], a string \"%.*s\")",
		    (int)len, p->s + start, (int)len, p->s + start, (int)len, p->s + start);
}

static int parse_term(struct parser *p, unsigned depth, struct node **out)
{
	skip_ws(p);
	char c = p->s[p->pos];
	if (c == '"')
		return parse_string(p, out);
	if (c == '[')
		return parse_attr(p, out);
	if (ex_digit(c) || (c == '-' && ex_digit(p->s[p->pos + 1])))
		return parse_number(p, out);
	if (c == '&' && (p->s[p->pos + 1] == 'H' || p->s[p->pos + 1] == 'h'))
		return parse_hex(p, out);
	if (ex_ident_start(c))
		return parse_word(p, depth, out);
	if (!c)
		return perr(p, p->pos, "expected a value (\"text\", [attribute], number or Function(...)), found the end of the expression");
	return perr(p, p->pos, "expected a value (\"text\", [attribute], number or Function(...)), found '%.*s'",
		    found_len(p->s, p->pos), p->s + p->pos);
}

/* The comparison operator at p->pos (Entra's IIF documents = <> > >= < <=):
 * its length, 0 if there is none. */
static size_t cmp_op(const char *s, enum cmpop *op)
{
	static const struct {
		const char *text;
		enum cmpop op;
	} ops[] = {{"<>", CMP_NE}, {"<=", CMP_LE}, {">=", CMP_GE}, {"=", CMP_EQ}, {"<", CMP_LT}, {">", CMP_GT}};
	for (size_t i = 0; i < sizeof ops / sizeof ops[0]; i++)
		if (strncmp(s, ops[i].text, strlen(ops[i].text)) == 0) {
			*op = ops[i].op;
			return strlen(ops[i].text);
		}
	return 0;
}

/* term [ op term ] */
static int parse_expr(struct parser *p, unsigned depth, struct node **out)
{
	struct node *l = NULL, *r = NULL, *n;
	enum cmpop op = CMP_EQ;
	int rc = parse_term(p, depth, &l);
	if (rc)
		return rc;
	skip_ws(p);
	size_t oplen = cmp_op(p->s + p->pos, &op);
	if (oplen == 0) {
		*out = l;
		return 0;
	}
	size_t eq = p->pos;
	p->pos += oplen;
	if (depth + 1 >= EXPR_MAX_DEPTH) {
		node_free(l);
		return perr(p, eq, "expression nested too deeply (more than %d levels)", EXPR_MAX_DEPTH);
	}
	rc = parse_term(p, depth + 1, &r);
	if (rc) {
		node_free(l);
		return rc;
	}
	n = node_new(N_CMP, column(p->s, eq));
	n->op = op;
	n->args = xmalloc(2 * sizeof *n->args);
	n->args[0] = l;
	n->args[1] = r;
	n->nargs = 2;
	*out = n;
	return 0;
}

/* SelectUniqueValue chooses the value of a whole mapping (Entra: "must be
 * at the top-level and can't be nested"); the traits of every call. */
static int collect_traits(struct parser *p, struct expr *e, const struct node *n, bool top)
{
	if (n->kind == N_CALL) {
		if ((n->fn->traits & EXPR_UNIQUE) && !top)
			return ex_perr_col(p, n->col, "%s must be the whole expression, not inside another "
					   "function or comparison", n->fn->name);
		e->traits |= n->fn->traits;
	}
	for (size_t i = 0; i < n->nargs; i++) {
		int rc = collect_traits(p, e, n->args[i], false);
		if (rc)
			return rc;
	}
	return 0;
}

static void collect_attrs(struct expr *e, const struct node *n)
{
	if (n->kind == N_ATTR) {
		for (size_t i = 0; i < e->nattrs; i++)
			if (strcasecmp(e->attrs[i], n->text) == 0)
				return;
		e->attrs = xrealloc(e->attrs, (e->nattrs + 1) * sizeof *e->attrs);
		e->attrs[e->nattrs++] = xstrdup(n->text);
	}
	for (size_t i = 0; i < n->nargs; i++)
		collect_attrs(e, n->args[i]);
}

void expr_free(struct expr *e)
{
	if (!e)
		return;
	node_free(e->root);
	for (size_t i = 0; i < e->nattrs; i++)
		free(e->attrs[i]);
	free(e->attrs);
	free(e);
}

int expr_parse(const char *text, struct expr **out, char *errmsg, size_t errlen)
{
	struct parser p = {.s = text, .err = errmsg, .errlen = errlen};
	if (errmsg && errlen)
		errmsg[0] = '\0';
	if (!out) {
		p.s = "";
		return perr(&p, 0, "no place to store the parsed expression");
	}
	*out = NULL;
	if (!text) {
		p.s = "";
		return perr(&p, 0, "no expression");
	}
	struct expr *e = xcalloc(1, sizeof *e);
	int rc = parse_expr(&p, 0, &e->root);
	if (!rc) {
		skip_ws(&p);
		if (p.s[p.pos])
			rc = perr(&p, p.pos, "expected the end of the expression, found '%.*s'",
				  found_len(p.s, p.pos), p.s + p.pos);
	}
	if (!rc)
		rc = collect_traits(&p, e, e->root, true);
	if (rc) {
		expr_free(e);
		return rc;
	}
	collect_attrs(e, e->root);
	*out = e;
	return 0;
}

unsigned expr_traits(const struct expr *e)
{
	return e ? e->traits : 0;
}

int expr_attributes(const struct expr *e, void (*cb)(void *ctx, const char *name), void *ctx)
{
	if (!e || !cb)
		return -EINVAL;
	for (size_t i = 0; i < e->nattrs; i++)
		cb(ctx, e->attrs[i]);
	return 0;
}

/* ---- Evaluation core ---- */

int ex_efail(struct ectx *c, const struct node *n, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	vmsg(c->err, c->errlen, n->col, n->fn ? n->fn->name : NULL, fmt, ap);
	va_end(ap);
	return -EINVAL;
}

static int eval(struct ectx *c, const struct node *n, struct expr_value *out);

static int eval_attr(struct ectx *c, const struct node *n, struct expr_value *out)
{
	const char *const *vals = NULL;
	size_t nv = 0;
	if (!c->lookup)
		return 0;
	int rc = c->lookup(c->ctx, n->text, &vals, &nv);
	if (rc) {
		if (c->err && c->errlen)
			snprintf(c->err, c->errlen, "column %u: [%s]: attribute lookup failed (error %d)",
				 n->col, n->text, rc);
		return rc < 0 ? rc : -EIO;
	}
	for (size_t i = 0; i < nv; i++)
		if (vals[i]) /* a NULL entry is no value */
			ex_vpush_str(out, vals[i]);
	return 0;
}

/* A number for an ordering comparison: a decimal integer or fraction. */
static bool cmp_number(const char *s, double *out)
{
	char *end;
	while (*s == ' ')
		s++;
	if (!*s || !(ex_digit(*s) || *s == '-' || *s == '+' || *s == '.'))
		return false;
	*out = strtod(s, &end);
	while (*end == ' ')
		end++;
	return *end == '\0';
}

/* = and <> compare the whole lists; the orderings compare the first values,
 * as numbers when both read as numbers (DateDiff(...) > 5), else as strings
 * (ordinal, like .NET's String.CompareOrdinal), and are False with a null. */
static int eval_cmp(struct ectx *c, const struct node *n, struct expr_value *out)
{
	struct expr_value a = {0}, b = {0};
	int rc = eval(c, n->args[0], &a);
	if (!rc)
		rc = eval(c, n->args[1], &b);
	if (!rc) {
		bool r;
		if (n->op == CMP_EQ || n->op == CMP_NE) {
			bool eq = a.n == b.n;
			for (size_t i = 0; eq && i < a.n; i++)
				eq = strcmp(a.v[i], b.v[i]) == 0;
			r = n->op == CMP_EQ ? eq : !eq;
		} else if (a.n == 0 || b.n == 0) {
			r = false;
		} else {
			double x, y;
			int k;
			if (cmp_number(a.v[0], &x) && cmp_number(b.v[0], &y))
				k = (x > y) - (x < y);
			else
				k = strcmp(a.v[0], b.v[0]);
			r = n->op == CMP_LT ? k < 0 : n->op == CMP_LE ? k <= 0 : n->op == CMP_GT ? k > 0 : k >= 0;
		}
		ex_vpush_bool(out, r);
	}
	expr_value_free(&a);
	expr_value_free(&b);
	return rc;
}

static int eval(struct ectx *c, const struct node *n, struct expr_value *out)
{
	int rc = 0;
	*out = (struct expr_value){0};
	switch (n->kind) {
	case N_STR:
	case N_NUM:
	case N_BOOL:
		ex_vpush_str(out, n->text);
		break;
	case N_OMIT:
		break;
	case N_ATTR:
		rc = eval_attr(c, n, out);
		break;
	case N_CMP:
		rc = eval_cmp(c, n, out);
		break;
	case N_CALL:
		rc = n->fn->eval(c, n, out);
		break;
	}
	if (rc)
		expr_value_free(out);
	return rc;
}

int ex_arg_val(struct ectx *c, const struct node *n, size_t i, struct expr_value *out)
{
	*out = (struct expr_value){0};
	return i < n->nargs ? eval(c, n->args[i], out) : 0;
}

int ex_arg_str(struct ectx *c, const struct node *n, size_t i, char **out)
{
	struct expr_value v;
	int rc = ex_arg_val(c, n, i, &v);
	*out = NULL;
	if (!rc && v.n) {
		*out = v.v[0];
		v.v[0] = NULL;
	}
	expr_value_free(&v);
	return rc;
}

int ex_arg_int(struct ectx *c, const struct node *n, size_t i, const char *what, long long *out)
{
	char *s;
	int rc = ex_arg_str(c, n, i, &s);
	if (rc)
		return rc;
	if (!s)
		return ex_efail(c, n, "%s is null", what);
	if (ex_parse_ll(s, out))
		rc = ex_efail(c, n, "%s is not an integer: \"%s\"", what, s);
	free(s);
	return rc;
}

int ex_map_arg(struct ectx *c, const struct node *n, size_t i, xform_fn f,
	       const void *arg, struct expr_value *out)
{
	struct expr_value src;
	int rc = ex_arg_val(c, n, i, &src);
	for (size_t k = 0; k < src.n && !rc; k++) {
		struct sbuf b = {0};
		rc = f(c, n, arg, src.v[k], &b);
		if (rc == 0)
			ex_vpush(out, sb_take(&b));
		else
			sb_free(&b);
		if (rc > 0)
			rc = 0;
	}
	expr_value_free(&src);
	return rc;
}

int expr_eval(const struct expr *e, expr_lookup_fn lookup, void *ctx,
	      struct expr_value *out, char *errmsg, size_t errlen)
{
	struct expr_env env = {.lookup = lookup, .lookup_ctx = ctx};
	return expr_eval_env(e, &env, out, errmsg, errlen);
}

int expr_eval_env(const struct expr *e, const struct expr_env *env, struct expr_value *out,
		  char *errmsg, size_t errlen)
{
	struct ectx c = {.lookup = env ? env->lookup : NULL, .ctx = env ? env->lookup_ctx : NULL,
			 .taken = env ? env->taken : NULL, .taken_ctx = env ? env->taken_ctx : NULL,
			 .now = env ? env->now : 0, .err = errmsg, .errlen = errlen};
	if (errmsg && errlen)
		errmsg[0] = '\0';
	if (!out || !e) {
		if (errmsg && errlen)
			snprintf(errmsg, errlen, "column 1: no expression or no output");
		if (out)
			*out = (struct expr_value){0};
		return -EINVAL;
	}
	int rc = eval(&c, e->root, out);
	if (rc && errmsg && errlen && !errmsg[0])
		snprintf(errmsg, errlen, "column %u: evaluation failed", e->root->col);
	return rc;
}
