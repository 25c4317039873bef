/*
 * sync/transform/expr_funcs.c -- the function table of mapping expressions
 * and the string, list and logic functions (Replace is in expr_regex.c,
 * FormatDateTime in expr_datetime.c, the conversions and binary values in
 * expr_binary.c). Each function is documented for users
 * in docs/mapping-expressions.md.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "sync/transform/expr_impl.h"

/* ---- String functions ---- */

static int x_lower(struct ectx *c, const struct node *n, const void *arg, const char *in, struct sbuf *b)
{
	(void)c, (void)n, (void)arg;
	ex_case_map(in, false, b);
	return 0;
}

static int x_upper(struct ectx *c, const struct node *n, const void *arg, const char *in, struct sbuf *b)
{
	(void)c, (void)n, (void)arg;
	ex_case_map(in, true, b);
	return 0;
}

static int f_tolower(struct ectx *c, const struct node *n, struct expr_value *out)
{
	return ex_map_arg(c, n, 0, x_lower, NULL, out);
}

static int f_toupper(struct ectx *c, const struct node *n, struct expr_value *out)
{
	return ex_map_arg(c, n, 0, x_upper, NULL, out);
}

static int x_trim(struct ectx *c, const struct node *n, const void *arg, const char *in, struct sbuf *b)
{
	(void)c, (void)n, (void)arg;
	size_t len = strlen(in), a = len, z = 0;
	for (size_t i = 0; i < len;) {
		uint32_t cp;
		size_t k = ex_utf8_next(in + i, len - i, &cp);
		if (!ex_is_space(cp)) {
			if (a == len)
				a = i;
			z = i + k;
		}
		i += k;
	}
	sb_addn(b, in + a, a < z ? z - a : 0);
	return 0;
}

static int f_trim(struct ectx *c, const struct node *n, struct expr_value *out)
{
	return ex_map_arg(c, n, 0, x_trim, NULL, out);
}

static int x_strip(struct ectx *c, const struct node *n, const void *arg, const char *in, struct sbuf *b)
{
	(void)c, (void)n, (void)arg;
	for (; *in; in++)
		if (*in != ' ')
			sb_addc(b, *in);
	return 0;
}

static int f_stripspaces(struct ectx *c, const struct node *n, struct expr_value *out)
{
	return ex_map_arg(c, n, 0, x_strip, NULL, out);
}

static int x_diacritics(struct ectx *c, const struct node *n, const void *arg, const char *in, struct sbuf *b)
{
	(void)c, (void)n, (void)arg;
	ex_strip_diacritics(in, b);
	return 0;
}

static int f_normalizediacritics(struct ectx *c, const struct node *n, struct expr_value *out)
{
	return ex_map_arg(c, n, 0, x_diacritics, NULL, out);
}

static int x_append(struct ectx *c, const struct node *n, const void *arg, const char *in, struct sbuf *b)
{
	(void)c, (void)n;
	sb_adds(b, in);
	sb_adds(b, arg);
	return 0;
}

static int f_append(struct ectx *c, const struct node *n, struct expr_value *out)
{
	char *suffix;
	int rc = ex_arg_str(c, n, 1, &suffix);
	if (!rc)
		rc = ex_map_arg(c, n, 0, x_append, suffix ? suffix : "", out);
	free(suffix);
	return rc;
}

static int f_join(struct ectx *c, const struct node *n, struct expr_value *out)
{
	char *sep;
	int rc = ex_arg_str(c, n, 0, &sep);
	struct sbuf b = {0};
	bool any = false;
	for (size_t i = 1; i < n->nargs && !rc; i++) {
		struct expr_value v;
		rc = ex_arg_val(c, n, i, &v);
		for (size_t k = 0; k < v.n; k++) {
			/* Microsoft's example Join(", ", "", [surname], [givenName])
			 * gives "Doe, John": an empty value adds no separator. */
			if (v.v[k][0] == '\0')
				continue;
			if (any && sep)
				sb_adds(&b, sep);
			sb_adds(&b, v.v[k]);
			any = true;
		}
		expr_value_free(&v);
	}
	free(sep);
	if (!rc && any)
		ex_vpush(out, sb_take(&b));
	else
		sb_free(&b);
	return rc;
}

static int x_left(struct ectx *c, const struct node *n, const void *arg, const char *in, struct sbuf *b)
{
	(void)c, (void)n;
	long long k = *(const long long *)arg;
	size_t len = strlen(in);
	sb_addn(b, in, k < 0 ? len : ex_utf8_skip(in, len, k));
	return 0;
}

static int f_left(struct ectx *c, const struct node *n, struct expr_value *out)
{
	long long k;
	int rc = ex_arg_int(c, n, 1, "NumChars", &k);
	if (!rc)
		rc = ex_map_arg(c, n, 0, x_left, &k, out);
	if (!rc && out->n == 0) /* Entra: "If string is null, return empty string" */
		ex_vpush_str(out, "");
	return rc;
}

static int x_mid(struct ectx *c, const struct node *n, const void *arg, const char *in, struct sbuf *b)
{
	(void)c, (void)n;
	const long long *sl = arg;
	size_t len = strlen(in);
	size_t a = ex_utf8_skip(in, len, sl[0] - 1);
	sb_addn(b, in + a, ex_utf8_skip(in + a, len - a, sl[1]));
	return 0;
}

static int f_mid(struct ectx *c, const struct node *n, struct expr_value *out)
{
	long long sl[2];
	int rc = ex_arg_int(c, n, 1, "start", &sl[0]);
	if (!rc)
		rc = ex_arg_int(c, n, 2, "length", &sl[1]);
	if (rc)
		return rc;
	if (sl[0] < 1)
		return ex_efail(c, n, "start must be 1 or more (positions are 1-based), got %lld", sl[0]);
	if (sl[1] < 0)
		return ex_efail(c, n, "length must not be negative, got %lld", sl[1]);
	return ex_map_arg(c, n, 0, x_mid, sl, out);
}

struct instr {
	const char *needle; /* lower-cased already for a text compare */
	long long start;
	bool text;
};

static int x_instr(struct ectx *c, const struct node *n, const void *arg, const char *in, struct sbuf *b)
{
	(void)c, (void)n;
	const struct instr *a = arg;
	struct sbuf low = {0};
	long long pos = 0;
	if (a->text) {
		ex_case_map(in, false, &low);
		in = low.p ? low.p : "";
	}
	size_t len = strlen(in);
	size_t off = ex_utf8_skip(in, len, a->start - 1);
	if ((long long)ex_utf8_count(in, len) + 1 >= a->start) {
		const char *hit = strstr(in + off, a->needle);
		if (hit)
			pos = (long long)ex_utf8_count(in, (size_t)(hit - in)) + 1;
	}
	sb_free(&low);
	char num[32];
	snprintf(num, sizeof num, "%lld", pos);
	sb_adds(b, num);
	return 0;
}

static int f_instr(struct ectx *c, const struct node *n, struct expr_value *out)
{
	struct instr a = {.start = 1};
	char *needle = NULL, *cmp = NULL;
	struct sbuf low = {0};
	int rc = ex_arg_str(c, n, 1, &needle);
	if (!rc && ex_given(n, 2))
		rc = ex_arg_int(c, n, 2, "start", &a.start);
	if (!rc && ex_given(n, 3))
		rc = ex_arg_str(c, n, 3, &cmp);
	if (rc)
		goto out;
	if (a.start < 1) {
		rc = ex_efail(c, n, "start must be 1 or more (positions are 1-based), got %lld", a.start);
		goto out;
	}
	if (cmp && (strcasecmp(cmp, "vbTextCompare") == 0 || strcmp(cmp, "1") == 0)) {
		a.text = true;
	} else if (cmp && strcasecmp(cmp, "vbBinaryCompare") != 0 && strcmp(cmp, "0") != 0) {
		rc = ex_efail(c, n, "compareType must be vbBinaryCompare or vbTextCompare, got \"%s\"", cmp);
		goto out;
	}
	a.needle = needle ? needle : "";
	if (a.text) {
		ex_case_map(a.needle, false, &low);
		a.needle = low.p ? low.p : "";
	}
	rc = ex_map_arg(c, n, 0, x_instr, &a, out);
out:
	sb_free(&low);
	free(needle);
	free(cmp);
	return rc;
}

static int f_split(struct ectx *c, const struct node *n, struct expr_value *out)
{
	struct expr_value src;
	char *d;
	int rc = ex_arg_str(c, n, 1, &d);
	if (!rc)
		rc = ex_arg_val(c, n, 0, &src);
	if (rc) {
		free(d);
		return rc;
	}
	for (size_t k = 0; k < src.n; k++) {
		const char *s = src.v[k], *hit;
		if (d && *d)
			for (; (hit = strstr(s, d)); s = hit + strlen(d))
				ex_vpush_n(out, s, (size_t)(hit - s));
		ex_vpush_str(out, s);
	}
	expr_value_free(&src);
	free(d);
	return 0;
}

/* Is the character at s (k bytes) one of the characters of set? */
static bool in_set(const char *s, size_t k, const char *set)
{
	size_t len = strlen(set);
	for (size_t i = 0; i < len;) {
		uint32_t cp;
		size_t m = ex_utf8_next(set + i, len - i, &cp);
		if (m == k && memcmp(set + i, s, k) == 0)
			return true;
		i += m;
	}
	return false;
}

struct word {
	long long num;
	const char *delims;
};

static int x_word(struct ectx *c, const struct node *n, const void *arg, const char *in, struct sbuf *b)
{
	(void)c, (void)n;
	const struct word *w = arg;
	size_t len = strlen(in), start = 0;
	long long seen = 0;
	bool inword = false;
	for (size_t i = 0; i <= len;) {
		uint32_t cp;
		size_t k = i < len ? ex_utf8_next(in + i, len - i, &cp) : 0;
		bool delim = i == len || in_set(in + i, k, w->delims);
		if (!delim && !inword) {
			inword = true;
			start = i;
		} else if (delim && inword) {
			inword = false;
			if (++seen == w->num) {
				sb_addn(b, in + start, i - start);
				return 0;
			}
		}
		if (i == len)
			break;
		i += k;
	}
	sb_adds(b, ""); /* Entra: fewer words than WordNumber gives "" */
	return 0;
}

static int f_word(struct ectx *c, const struct node *n, struct expr_value *out)
{
	struct word w;
	char *d;
	int rc = ex_arg_int(c, n, 1, "WordNumber", &w.num);
	if (rc || (rc = ex_arg_str(c, n, 2, &d)))
		return rc;
	w.delims = d ? d : "";
	rc = ex_map_arg(c, n, 0, x_word, &w, out);
	free(d);
	if (!rc && out->n == 0) /* Entra: "If string is null, returns empty string" */
		ex_vpush_str(out, "");
	return rc;
}

/* The value of RDN number *arg (1-based) of DN `in`, unescaped (RFC 4514:
 * "\," "\2C" ...). A multi-valued RDN (cn=a+uid=b) yields all of it after
 * the first '='. */
static int x_dncomp(struct ectx *c, const struct node *n, const void *arg, const char *in, struct sbuf *b)
{
	(void)c, (void)n;
	long long want = *(const long long *)arg, rdn = 1;
	const char *p = in;

	while (rdn < want && *p) { /* skip to the start of RDN `want` */
		if (*p == '\\' && p[1])
			p++;
		else if (*p == ',')
			rdn++;
		p++;
	}
	if (rdn < want)
		return 1;
	while (*p && *p != '=' && *p != ',') /* the attribute type */
		p += *p == '\\' && p[1] ? 2 : 1;
	if (*p != '=')
		return 1;
	for (p++; *p == ' '; p++)
		;
	size_t keep = 0; /* length without unescaped trailing spaces */
	while (*p && *p != ',') {
		char ch = *p++;
		if (ch == '\\' && ex_hexval(p[0]) >= 0 && ex_hexval(p[1]) >= 0) {
			ch = (char)(ex_hexval(p[0]) * 16 + ex_hexval(p[1]));
			p += 2;
		} else if (ch == '\\' && *p) {
			ch = *p++;
		} else if (ch == ' ') {
			sb_addc(b, ch);
			continue;
		}
		sb_addc(b, ch);
		keep = b->len;
	}
	if (b->p)
		b->p[b->len = keep] = '\0';
	return 0;
}

static int f_dncomponent(struct ectx *c, const struct node *n, struct expr_value *out)
{
	long long k;
	int rc = ex_arg_int(c, n, 0, "ComponentNumber", &k);
	if (!rc && k < 1)
		rc = ex_efail(c, n, "ComponentNumber must be 1 or more, got %lld", k);
	return rc ? rc : ex_map_arg(c, n, 1, x_dncomp, &k, out);
}

/* ---- Lists, logic, conversions ---- */

static int f_item(struct ectx *c, const struct node *n, struct expr_value *out)
{
	long long i;
	struct expr_value v;
	int rc = ex_arg_int(c, n, 1, "index", &i);
	if (rc || (rc = ex_arg_val(c, n, 0, &v)))
		return rc;
	if (i >= 1 && (unsigned long long)i <= v.n) {
		ex_vpush(out, v.v[i - 1]);
		v.v[i - 1] = NULL;
	}
	expr_value_free(&v);
	return rc;
}

static int f_count(struct ectx *c, const struct node *n, struct expr_value *out)
{
	struct expr_value v;
	int rc = ex_arg_val(c, n, 0, &v);
	if (!rc) {
		char num[32];
		snprintf(num, sizeof num, "%zu", v.n);
		ex_vpush_str(out, num);
	}
	expr_value_free(&v);
	return rc;
}

static int f_cstr(struct ectx *c, const struct node *n, struct expr_value *out)
{
	return ex_arg_val(c, n, 0, out);
}

struct dup {
	const char *s;
	size_t i;
};

static int dup_cmp(const void *a, const void *b)
{
	const struct dup *x = a, *y = b;
	int r = strcmp(x->s, y->s);
	return r ? r : (x->i > y->i) - (x->i < y->i);
}

/* Sorting keeps this O(n log n): a group's member list can be long. */
static int f_removeduplicates(struct ectx *c, const struct node *n, struct expr_value *out)
{
	struct expr_value v;
	int rc = ex_arg_val(c, n, 0, &v);
	if (rc || v.n < 2) {
		*out = v;
		return rc;
	}
	struct dup *d = xmalloc(v.n * sizeof *d);
	for (size_t i = 0; i < v.n; i++)
		d[i] = (struct dup){v.v[i], i};
	qsort(d, v.n, sizeof *d, dup_cmp);
	/* In each run of equal strings the first entry is the earliest
	 * occurrence: it stays, the others go. */
	for (size_t i = 1, first = 0; i < v.n; i++) {
		if (strcmp(d[i].s, d[first].s) != 0) {
			first = i;
			continue;
		}
		free(v.v[d[i].i]);
		v.v[d[i].i] = NULL;
	}
	free(d);
	size_t k = 0;
	for (size_t i = 0; i < v.n; i++)
		if (v.v[i])
			v.v[k++] = v.v[i];
	v.n = k;
	*out = v;
	return 0;
}

static int f_switch(struct ectx *c, const struct node *n, struct expr_value *out)
{
	struct expr_value src;
	int rc = ex_arg_val(c, n, 0, &src);
	if (!rc && src.n == 0)
		rc = ex_arg_val(c, n, 1, out);
	for (size_t k = 0; k < src.n && !rc; k++) {
		size_t pick = 1;
		for (size_t i = 2; i + 1 < n->nargs && !rc && pick == 1; i += 2) {
			char *key;
			rc = ex_arg_str(c, n, i, &key);
			if (!rc && key && strcmp(key, src.v[k]) == 0)
				pick = i + 1;
			free(key);
		}
		struct expr_value r;
		if (!rc && !(rc = ex_arg_val(c, n, pick, &r)))
			ex_vappend(out, &r);
	}
	expr_value_free(&src);
	return rc;
}

static int check_switch(struct parser *p, struct node *n)
{
	if (n->nargs % 2)
		return ex_perr_col(p, n->col, "Switch expects source, defaultValue, then key/value pairs: "
				"got %zu arguments, a key has no value", n->nargs);
	return 0;
}

/* A condition: null reads as False; anything but True/False is an error. */
static int arg_bool(struct ectx *c, const struct node *n, size_t i, const char *what, bool *out)
{
	char *s;
	int rc = ex_arg_str(c, n, i, &s);
	if (rc)
		return rc;
	int b = s ? ex_parse_bool(s) : 0;
	if (b < 0)
		rc = ex_efail(c, n, "%s is not True or False: \"%s\"", what, s);
	free(s);
	*out = b > 0;
	return rc;
}

static int f_iif(struct ectx *c, const struct node *n, struct expr_value *out)
{
	bool b;
	int rc = arg_bool(c, n, 0, "condition", &b);
	return rc ? rc : ex_arg_val(c, n, b ? 1 : 2, out);
}

static int f_not(struct ectx *c, const struct node *n, struct expr_value *out)
{
	bool b;
	int rc = arg_bool(c, n, 0, "value", &b);
	if (!rc)
		ex_vpush_bool(out, !b);
	return rc;
}

static int f_cbool(struct ectx *c, const struct node *n, struct expr_value *out)
{
	char *s;
	long long v;
	int rc = ex_arg_str(c, n, 0, &s);
	if (rc)
		return rc;
	int b = s ? ex_parse_bool(s) : 0;
	if (b < 0 && ex_parse_ll(s, &v) == 0)
		b = v != 0;
	if (b < 0)
		rc = ex_efail(c, n, "\"%s\" is neither True/False nor a number", s);
	else
		ex_vpush_bool(out, b);
	free(s);
	return rc;
}

enum { P_NULL, P_NULLOREMPTY, P_PRESENT };

static int presence(struct ectx *c, const struct node *n, int what, struct expr_value *out)
{
	struct expr_value v;
	int rc = ex_arg_val(c, n, 0, &v);
	if (rc)
		return rc;
	bool empty = true;
	for (size_t i = 0; i < v.n && empty; i++)
		empty = v.v[i][0] == '\0';
	bool r = what == P_NULL ? v.n == 0 : what == P_NULLOREMPTY ? empty : !empty;
	expr_value_free(&v);
	ex_vpush_bool(out, r);
	return 0;
}

static int f_isnull(struct ectx *c, const struct node *n, struct expr_value *out)
{
	return presence(c, n, P_NULL, out);
}

static int f_isnullorempty(struct ectx *c, const struct node *n, struct expr_value *out)
{
	return presence(c, n, P_NULLOREMPTY, out);
}

static int f_ispresent(struct ectx *c, const struct node *n, struct expr_value *out)
{
	return presence(c, n, P_PRESENT, out);
}

static int f_coalesce(struct ectx *c, const struct node *n, struct expr_value *out)
{
	int rc = 0;
	for (size_t i = 0; i < n->nargs && !rc && out->n == 0; i++) {
		expr_value_free(out);
		rc = ex_arg_val(c, n, i, out);
	}
	return rc;
}

static int f_bitand(struct ectx *c, const struct node *n, struct expr_value *out)
{
	long long a, b;
	int rc = ex_arg_int(c, n, 0, "value1", &a);
	if (rc || (rc = ex_arg_int(c, n, 1, "value2", &b)))
		return rc;
	char num[32];
	snprintf(num, sizeof num, "%lld", a & b);
	ex_vpush_str(out, num);
	return 0;
}

/* IgnoreFlowIfNullOrEmpty(expression): Entra drops the attribute from the
 * request when the expression is null or empty. A mapping leaves an
 * attribute with no value out of the resource (mapping.h), so this is null
 * for null and for empty strings, the values otherwise. */
static int f_ignoreflow(struct ectx *c, const struct node *n, struct expr_value *out)
{
	int rc = ex_arg_val(c, n, 0, out);
	bool empty = true;
	for (size_t i = 0; !rc && i < out->n && empty; i++)
		empty = out->v[i][0] == '\0';
	if (empty)
		expr_value_free(out);
	return rc;
}

/* IsString(expression): every value here is a string (binary values are
 * base64 text), so True unless the expression is null. */
static int f_isstring(struct ectx *c, const struct node *n, struct expr_value *out)
{
	struct expr_value v;
	int rc = ex_arg_val(c, n, 0, &v);
	if (!rc)
		ex_vpush_bool(out, v.n > 0);
	expr_value_free(&v);
	return rc;
}

static int x_pcase(struct ectx *c, const struct node *n, const void *arg, const char *in, struct sbuf *b)
{
	(void)c, (void)n;
	ex_title_case(in, arg, b);
	return 0;
}

static int f_pcase(struct ectx *c, const struct node *n, struct expr_value *out)
{
	char *seps = NULL;
	int rc = ex_given(n, 1) ? ex_arg_str(c, n, 1, &seps) : 0;
	if (!rc)
		rc = ex_map_arg(c, n, 0, x_pcase, seps, out);
	free(seps);
	return rc;
}

/* Redact(value) is its value: what it changes is where the value may be
 * shown (EXPR_REDACT: the mapping masks the attribute as "[Redact]" in the
 * provisioning log). */
static int f_redact(struct ectx *c, const struct node *n, struct expr_value *out)
{
	return ex_arg_val(c, n, 0, out);
}

/* SelectUniqueValue(rule1, rule2, ...): the first candidate the target does
 * not hold yet. A rule with no value is skipped; a multi-valued rule offers
 * its first value. Every candidate held: an error naming them (Entra
 * escrows the object; canopy records it as failed). */
static int f_selectunique(struct ectx *c, const struct node *n, struct expr_value *out)
{
	struct sbuf tried = {0};
	int rc = 0;
	if (!c->taken)
		return ex_efail(c, n, "no target to ask which values are taken");
	for (size_t i = 0; i < n->nargs && !rc; i++) {
		char *cand;
		int taken = 0;
		rc = ex_arg_str(c, n, i, &cand);
		if (rc || !cand || !*cand) {
			free(cand);
			continue;
		}
		rc = c->taken(c->taken_ctx, cand, &taken);
		if (rc) {
			ex_efail(c, n, "asking the target whether \"%s\" is taken failed (error %d)", cand, rc);
		} else if (!taken) {
			ex_vpush(out, cand);
			sb_free(&tried);
			return 0;
		} else {
			if (tried.len)
				sb_adds(&tried, ", ");
			sb_addc(&tried, '"');
			sb_adds(&tried, cand);
			sb_addc(&tried, '"');
		}
		free(cand);
	}
	if (!rc)
		rc = ex_efail(c, n, "every candidate is taken in the target: %s", tried.len ? tried.p : "(none had a value)");
	sb_free(&tried);
	return rc;
}

/* Functions of Entra's own applications, refused when the configuration
 * loads: their input is Entra's appRoleAssignments object, which no
 * directory canopy reads has. */
static int check_entra_only(struct parser *p, struct node *n)
{
	return ex_perr_col(p, n->col, "%s() is not supported: it reads Entra's [appRoleAssignments] object "
			   "(app roles of an Entra enterprise application), which an LDAP or Active Directory "
			   "source does not have; map a group membership or an attribute instead",
			   n->fn->name);
}

static int f_entra_only(struct ectx *c, const struct node *n, struct expr_value *out)
{
	(void)out;
	return ex_efail(c, n, "not supported"); /* check_entra_only refuses it first */
}

/* ---- The function table ---- */

#define INT(i) (1u << (i))

static const struct func funcs[] = {
	{"Append", 2, 2, 0, NULL, f_append, 0},
	{"AppRoleAssignmentsComplex", 1, 1, 0, check_entra_only, f_entra_only, 0},
	{"BitAnd", 2, 2, INT(0) | INT(1), NULL, f_bitand, 0},
	{"CBool", 1, 1, 0, NULL, f_cbool, 0},
	{"Coalesce", 1, ARGS_MANY, 0, NULL, f_coalesce, 0},
	{"Count", 1, 1, 0, NULL, f_count, 0},
	{"CStr", 1, 1, 0, NULL, f_cstr, 0},
	{"DNComponent", 2, 2, INT(0), NULL, f_dncomponent, 0},
	{"FormatDateTime", 3, 4, 0, ex_check_fdt, ex_f_formatdatetime, 0},
	{"IgnoreFlowIfNullOrEmpty", 1, 1, 0, NULL, f_ignoreflow, 0},
	{"IIF", 3, 3, 0, NULL, f_iif, 0},
	{"InStr", 2, 4, INT(2), NULL, f_instr, 0},
	{"IsNull", 1, 1, 0, NULL, f_isnull, 0},
	{"IsNullOrEmpty", 1, 1, 0, NULL, f_isnullorempty, 0},
	{"IsPresent", 1, 1, 0, NULL, f_ispresent, 0},
	{"IsString", 1, 1, 0, NULL, f_isstring, 0},
	{"Item", 2, 2, INT(1), NULL, f_item, 0},
	{"Join", 2, ARGS_MANY, 0, NULL, f_join, 0},
	{"Left", 2, 2, INT(1), NULL, f_left, 0},
	{"Mid", 3, 3, INT(1) | INT(2), NULL, f_mid, 0},
	{"NormalizeDiacritics", 1, 1, 0, NULL, f_normalizediacritics, 0},
	{"Not", 1, 1, 0, NULL, f_not, 0},
	{"PCase", 1, 2, 0, NULL, f_pcase, 0},
	{"Redact", 1, 1, 0, NULL, f_redact, EXPR_REDACT},
	{"RemoveDuplicates", 1, 1, 0, NULL, f_removeduplicates, 0},
	{"Replace", 5, 7, 0, ex_check_replace, ex_f_replace, 0},
	{"SelectUniqueValue", 2, ARGS_MANY, 0, NULL, f_selectunique, EXPR_UNIQUE},
	{"SingleAppRoleAssignment", 1, 1, 0, check_entra_only, f_entra_only, 0},
	{"Split", 2, 2, 0, NULL, f_split, 0},
	{"StripSpaces", 1, 1, 0, NULL, f_stripspaces, 0},
	{"Switch", 4, ARGS_MANY, 0, check_switch, f_switch, 0},
	{"ToLower", 1, 2, 0, NULL, f_tolower, 0},
	{"ToUpper", 1, 2, 0, NULL, f_toupper, 0},
	{"Trim", 1, 1, 0, NULL, f_trim, 0},
	{"Word", 3, 3, INT(1), NULL, f_word, 0},
};

const struct func *ex_func_find(const char *name, size_t len)
{
	for (size_t i = 0; i < sizeof funcs / sizeof funcs[0]; i++)
		if (strlen(funcs[i].name) == len && strncasecmp(funcs[i].name, name, len) == 0)
			return &funcs[i];
	static const struct {
		const struct func *t;
		const size_t *n;
	} more[] = {
		{ex_binary_funcs, &ex_n_binary_funcs},
		{ex_date_funcs, &ex_n_date_funcs},
		{ex_random_funcs, &ex_n_random_funcs},
	};
	for (size_t k = 0; k < sizeof more / sizeof more[0]; k++)
		for (size_t i = 0; i < *more[k].n; i++)
			if (strlen(more[k].t[i].name) == len && strncasecmp(more[k].t[i].name, name, len) == 0)
				return &more[k].t[i];
	return NULL;
}
