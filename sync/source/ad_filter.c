/*
 * sync/source/ad_filter.c -- RFC 4515 search filters evaluated on a merged
 * entry. DirSync applies its filter to the object as it is now and cannot
 * base its search below the naming context root (docs/active-directory.md,
 * "Request"), so the AD source asks only by objectClass and applies
 * users.filter / groups.filter itself. No library offers filter evaluation
 * outside a server (libldap only encodes filters), hence this small one.
 */
#include <ctype.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "common/xalloc.h"
#include "sync/source/ad.h"

#define FILTER_DEPTH_MAX 32
#define FILTER_LEN_MAX 4096
#define OID_BIT_AND "1.2.840.113556.1.4.803" /* LDAP_MATCHING_RULE_BIT_AND (MS-ADTS 3.1.1.3.4.4) */
#define OID_BIT_OR "1.2.840.113556.1.4.804"  /* LDAP_MATCHING_RULE_BIT_OR */

enum ad_filter_op { F_AND, F_OR, F_NOT, F_EQ, F_PRESENT, F_SUB, F_GE, F_LE, F_BITAND, F_BITOR };

struct ad_filter {
	enum ad_filter_op op;
	char *attr;
	char *value;   /* F_EQ, F_GE, F_LE, F_BIT*: the unescaped value */
	char **parts;  /* F_SUB: initial (may be ""), any..., final (may be "") */
	size_t n_parts;
	struct ad_filter **kids;
	size_t n_kids;
};

struct parser {
	const char *s;
	size_t i;
	char *err;
	size_t errlen;
};

static int perr(struct parser *p, const char *why)
{
	snprintf(p->err, p->errlen, "filter: %s at offset %zu", why, p->i);
	return -EINVAL;
}

void ad_filter_free(struct ad_filter *f)
{
	if (f == NULL)
		return;
	for (size_t i = 0; i < f->n_kids; i++)
		ad_filter_free(f->kids[i]);
	for (size_t i = 0; i < f->n_parts; i++)
		free(f->parts[i]);
	free(f->kids);
	free(f->parts);
	free(f->attr);
	free(f->value);
	free(f);
}

static int hexval(char c)
{
	if (c >= '0' && c <= '9')
		return c - '0';
	c = (char)tolower((unsigned char)c);
	return c >= 'a' && c <= 'f' ? c - 'a' + 10 : -1;
}

/* An assertion value up to `end` (exclusive): \XX escapes (RFC 4515 §3). */
static int unescape(struct parser *p, size_t from, size_t end, char **out)
{
	char *v = xmalloc(end - from + 1);
	size_t o = 0;

	for (size_t i = from; i < end; i++) {
		if (p->s[i] != '\\') {
			v[o++] = p->s[i];
			continue;
		}
		int h = i + 2 < end ? hexval(p->s[i + 1]) : -1, l = h >= 0 ? hexval(p->s[i + 2]) : -1;
		if (h < 0 || l < 0) {
			free(v);
			p->i = i;
			return perr(p, "bad \\XX escape");
		}
		v[o++] = (char)(h << 4 | l);
		i += 2;
	}
	v[o] = '\0';
	*out = v;
	return 0;
}

static int parse_one(struct parser *p, int depth, struct ad_filter **out);

static int parse_list(struct parser *p, int depth, struct ad_filter *f)
{
	while (p->s[p->i] == '(') {
		struct ad_filter *k;
		int rc = parse_one(p, depth + 1, &k);
		if (rc != 0)
			return rc;
		f->kids = xrealloc(f->kids, (f->n_kids + 1) * sizeof *f->kids);
		f->kids[f->n_kids++] = k;
	}
	if (f->n_kids == 0)
		return perr(p, "empty & or | list");
	return 0;
}

/* attr=value, attr=*, attr=a*b*c, attr>=v, attr<=v, attr~=v, attr:OID:=v */
static int parse_item(struct parser *p, struct ad_filter *f)
{
	size_t a = p->i, close, eq;
	const char *s = p->s;
	int rc;

	while (s[p->i] && s[p->i] != '=' && s[p->i] != '(' && s[p->i] != ')')
		p->i++;
	if (s[p->i] != '=')
		return perr(p, "expected attr=value");
	eq = p->i;
	for (close = eq + 1; s[close] && s[close] != ')' && s[close] != '('; close++)
		;
	if (s[close] != ')')
		return perr(p, "expected ')'");
	size_t aend = eq;
	f->op = F_EQ;
	if (aend > a && (s[aend - 1] == '>' || s[aend - 1] == '<' || s[aend - 1] == '~')) {
		f->op = s[aend - 1] == '>' ? F_GE : s[aend - 1] == '<' ? F_LE : F_EQ;
		aend--;
	} else if (aend > a && s[aend - 1] == ':') {
		/* extensible match: attr:OID: */
		const char *colon = memchr(s + a, ':', aend - a);
		size_t olen = aend - 1 - (size_t)(colon - s) - 1;
		if (colon == NULL || colon == s + aend - 1)
			return perr(p, "expected attr:rule:=value");
		if (olen == strlen(OID_BIT_AND) && strncmp(colon + 1, OID_BIT_AND, olen) == 0)
			f->op = F_BITAND;
		else if (olen == strlen(OID_BIT_OR) && strncmp(colon + 1, OID_BIT_OR, olen) == 0)
			f->op = F_BITOR;
		else
			return perr(p, "only the matching rules " OID_BIT_AND " and " OID_BIT_OR " are supported");
		aend = (size_t)(colon - s);
	}
	if (aend == a)
		return perr(p, "empty attribute name");
	for (size_t i = a; i < aend; i++)
		if (!isalnum((unsigned char)s[i]) && s[i] != '-' && s[i] != '.' && s[i] != ';')
			return perr(p, "bad character in attribute name");
	f->attr = xstrndup(s + a, aend - a);
	p->i = eq + 1;
	if (f->op == F_EQ && close == eq + 2 && s[eq + 1] == '*' && s[eq - 1] != '~') {
		f->op = F_PRESENT;
	} else if (f->op == F_EQ && memchr(s + eq + 1, '*', close - eq - 1) != NULL) {
		size_t from = eq + 1;
		f->op = F_SUB;
		for (size_t i = eq + 1; i <= close; i++) {
			if (i < close && s[i] != '*')
				continue;
			f->parts = xrealloc(f->parts, (f->n_parts + 1) * sizeof *f->parts);
			rc = unescape(p, from, i, &f->parts[f->n_parts]);
			if (rc != 0)
				return rc;
			f->n_parts++;
			from = i + 1;
		}
	} else {
		rc = unescape(p, eq + 1, close, &f->value);
		if (rc != 0)
			return rc;
		if ((f->op == F_BITAND || f->op == F_BITOR) && (f->value[0] == '\0' ||
								 strspn(f->value, "0123456789") != strlen(f->value)))
			return perr(p, "a bit rule needs a decimal value");
	}
	p->i = close;
	return 0;
}

static int parse_one(struct parser *p, int depth, struct ad_filter **out)
{
	struct ad_filter *f;
	int rc;

	if (depth > FILTER_DEPTH_MAX)
		return perr(p, "nested too deep");
	if (p->s[p->i] != '(')
		return perr(p, "expected '('");
	p->i++;
	f = xcalloc(1, sizeof *f);
	switch (p->s[p->i]) {
	case '&':
	case '|':
		f->op = p->s[p->i] == '&' ? F_AND : F_OR;
		p->i++;
		rc = parse_list(p, depth, f);
		break;
	case '!':
		f->op = F_NOT;
		p->i++;
		f->kids = xcalloc(1, sizeof *f->kids);
		rc = parse_one(p, depth + 1, &f->kids[0]);
		if (rc == 0)
			f->n_kids = 1;
		break;
	default:
		rc = parse_item(p, f);
		break;
	}
	if (rc == 0 && p->s[p->i] != ')')
		rc = perr(p, "expected ')'");
	if (rc != 0) {
		ad_filter_free(f);
		return rc;
	}
	p->i++;
	*out = f;
	return 0;
}

int ad_filter_parse(const char *text, struct ad_filter **out, char *errmsg, size_t errlen)
{
	struct parser p = {text, 0, errmsg, errlen};
	char dummy[8];
	int rc;

	if (errmsg == NULL)
		p.err = dummy, p.errlen = sizeof dummy;
	*out = NULL;
	if (text == NULL || strlen(text) > FILTER_LEN_MAX)
		return perr(&p, "missing or longer than 4096 bytes");
	rc = parse_one(&p, 0, out);
	if (rc == 0 && text[p.i] != '\0') {
		ad_filter_free(*out);
		*out = NULL;
		return perr(&p, "text after the filter");
	}
	return rc;
}

static const struct object_attr *find(const struct object_attr *a, size_t n, const char *name)
{
	for (size_t i = 0; i < n; i++)
		if (strcasecmp(a[i].name, name) == 0)
			return &a[i];
	return NULL;
}

static bool parse_int(const char *s, long long *v)
{
	char *end;

	if (*s == '\0')
		return false;
	errno = 0;
	*v = strtoll(s, &end, 10);
	return errno == 0 && *end == '\0';
}

/* Case-insensitive substring search from `from`; returns the position after
 * the match or NULL. */
static const char *ci_find(const char *hay, const char *needle)
{
	size_t n = strlen(needle);

	for (; *hay; hay++)
		if (strncasecmp(hay, needle, n) == 0)
			return hay + n;
	return n == 0 ? hay : NULL;
}

static bool sub_match(const struct ad_filter *f, const char *v)
{
	size_t vl = strlen(v), fl = strlen(f->parts[f->n_parts - 1]);
	const char *p = v;

	if (strncasecmp(v, f->parts[0], strlen(f->parts[0])) != 0)
		return false;
	p += strlen(f->parts[0]);
	for (size_t i = 1; i + 1 < f->n_parts; i++)
		if ((p = ci_find(p, f->parts[i])) == NULL)
			return false;
	return (size_t)(p - v) + fl <= vl && strcasecmp(v + vl - fl, f->parts[f->n_parts - 1]) == 0;
}

static bool value_match(const struct ad_filter *f, const char *v)
{
	long long a, b;

	switch (f->op) {
	case F_EQ:
		return strcasecmp(v, f->value) == 0;
	case F_SUB:
		return sub_match(f, v);
	case F_GE:
	case F_LE:
		if (parse_int(v, &a) && parse_int(f->value, &b))
			return f->op == F_GE ? a >= b : a <= b;
		return f->op == F_GE ? strcasecmp(v, f->value) >= 0 : strcasecmp(v, f->value) <= 0;
	case F_BITAND:
	case F_BITOR:
		if (!parse_int(v, &a) || !parse_int(f->value, &b))
			return false;
		/* AD stores flags as signed 32-bit values (userAccountControl,
		 * groupType): compare the bits as unsigned 32-bit */
		return f->op == F_BITAND ? ((unsigned)a & (unsigned)b) == (unsigned)b : ((unsigned)a & (unsigned)b) != 0;
	default:
		return false;
	}
}

bool ad_filter_match(const struct ad_filter *f, const struct object_attr *attrs, size_t n_attrs)
{
	const struct object_attr *a;

	switch (f->op) {
	case F_AND:
		for (size_t i = 0; i < f->n_kids; i++)
			if (!ad_filter_match(f->kids[i], attrs, n_attrs))
				return false;
		return true;
	case F_OR:
		for (size_t i = 0; i < f->n_kids; i++)
			if (ad_filter_match(f->kids[i], attrs, n_attrs))
				return true;
		return false;
	case F_NOT:
		return !ad_filter_match(f->kids[0], attrs, n_attrs);
	case F_PRESENT:
		a = find(attrs, n_attrs, f->attr);
		return a != NULL && a->n_values > 0;
	default:
		a = find(attrs, n_attrs, f->attr);
		for (size_t i = 0; a != NULL && i < a->n_values; i++)
			if (value_match(f, a->values[i]))
				return true;
		return false;
	}
}

void ad_filter_attributes(const struct ad_filter *f, void (*cb)(void *ctx, const char *name), void *ctx)
{
	if (f->attr != NULL)
		cb(ctx, f->attr);
	for (size_t i = 0; i < f->n_kids; i++)
		ad_filter_attributes(f->kids[i], cb, ctx);
}
