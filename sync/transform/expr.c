/*
 * sync/transform/expr.c -- parser and evaluator of mapping expressions.
 *
 * The text is parsed by recursive descent into a tree of nodes; evaluation
 * walks the tree. Every function of the table at the end has an arity checked
 * at parse time and an evaluator. Values are lists of strings (see expr.h);
 * the general rule, written down in docs/mapping-expressions.md, is that a
 * function taking "a string" applies to every value of a multi-valued source
 * and that null in gives null out, except where Entra documents otherwise.
 */
#include "sync/transform/expr.h"

#include <assert.h>
#include <errno.h>
#include <limits.h>
#include <regex.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#define ARGS_MANY UINT_MAX
#define BAD_CP UINT32_MAX /* u8_next: a byte that is not valid UTF-8 */

/*
 * Growable strings. The out-of-memory flag is sticky so that builders need
 * one check, at sb_take, instead of one per append.
 */

struct sbuf {
	char *p;
	size_t len, cap;
	bool oom;
};

static void sb_addn(struct sbuf *b, const char *s, size_t n)
{
	if (b->oom)
		return;
	if (b->len + n + 1 > b->cap) {
		size_t cap = b->cap ? b->cap : 32;
		while (cap < b->len + n + 1)
			cap *= 2;
		char *p = realloc(b->p, cap);
		if (!p) {
			b->oom = true;
			return;
		}
		b->p = p;
		b->cap = cap;
	}
	if (n)
		memcpy(b->p + b->len, s, n);
	b->len += n;
	b->p[b->len] = '\0';
}

static void sb_adds(struct sbuf *b, const char *s) { sb_addn(b, s, strlen(s)); }
static void sb_addc(struct sbuf *b, char c) { sb_addn(b, &c, 1); }

static void sb_free(struct sbuf *b)
{
	free(b->p);
	*b = (struct sbuf){0};
}

/* Hand the string over ("" if nothing was added); NULL when out of memory. */
static char *sb_take(struct sbuf *b)
{
	char *p = b->oom ? NULL : b->p;
	if (b->oom)
		free(b->p);
	else if (!p)
		p = strdup("");
	*b = (struct sbuf){0};
	return p;
}

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

/* Append `s`, which is owned; NULL stands for a failed allocation. */
static int vpush(struct expr_value *v, char *s)
{
	if (!s)
		return -ENOMEM;
	char **p = realloc(v->v, (v->n + 1) * sizeof *p);
	if (!p) {
		free(s);
		return -ENOMEM;
	}
	p[v->n++] = s;
	v->v = p;
	return 0;
}

static int vpush_n(struct expr_value *v, const char *s, size_t len)
{
	return vpush(v, strndup(s, len));
}

/* Move every string of `src` to the end of `dst`; `src` ends up null. */
static int vappend(struct expr_value *dst, struct expr_value *src)
{
	int rc = 0;
	size_t i = 0;
	for (; i < src->n && !rc; i++) {
		rc = vpush(dst, src->v[i]);
		src->v[i] = NULL;
	}
	for (; i < src->n; i++)
		free(src->v[i]);
	free(src->v);
	*src = (struct expr_value){0};
	return rc;
}

static int vpush_bool(struct expr_value *v, bool b)
{
	return vpush(v, strdup(b ? "True" : "False"));
}

/*
 * UTF-8. A "character" is a code point; a byte that is not valid UTF-8
 * counts as one character and is copied through unchanged, so that bad input
 * degrades instead of failing.
 */

static size_t u8_next(const char *str, size_t left, uint32_t *cp)
{
	const unsigned char *s = (const unsigned char *)str;
	size_t n;
	uint32_t c = s[0];

	if (c < 0x80) {
		*cp = c;
		return 1;
	}
	if (c >= 0xC2 && c <= 0xDF) {
		n = 2;
		c &= 0x1F;
	} else if (c >= 0xE0 && c <= 0xEF) {
		n = 3;
		c &= 0x0F;
	} else if (c >= 0xF0 && c <= 0xF4) {
		n = 4;
		c &= 0x07;
	} else {
		*cp = BAD_CP;
		return 1;
	}
	if (n > left) {
		*cp = BAD_CP;
		return 1;
	}
	for (size_t i = 1; i < n; i++) {
		if ((s[i] & 0xC0) != 0x80) {
			*cp = BAD_CP;
			return 1;
		}
		c = (c << 6) | (s[i] & 0x3F);
	}
	*cp = c;
	return n;
}

static void u8_put(struct sbuf *b, uint32_t c)
{
	char o[4];
	size_t n;

	if (c < 0x80) {
		o[0] = (char)c;
		n = 1;
	} else if (c < 0x800) {
		o[0] = (char)(0xC0 | (c >> 6));
		o[1] = (char)(0x80 | (c & 0x3F));
		n = 2;
	} else if (c < 0x10000) {
		o[0] = (char)(0xE0 | (c >> 12));
		o[1] = (char)(0x80 | ((c >> 6) & 0x3F));
		o[2] = (char)(0x80 | (c & 0x3F));
		n = 3;
	} else {
		o[0] = (char)(0xF0 | (c >> 18));
		o[1] = (char)(0x80 | ((c >> 12) & 0x3F));
		o[2] = (char)(0x80 | ((c >> 6) & 0x3F));
		o[3] = (char)(0x80 | (c & 0x3F));
		n = 4;
	}
	sb_addn(b, o, n);
}

/* Byte length of the first `k` characters of s[0..len) (all of it if shorter). */
static size_t u8_skip(const char *s, size_t len, long long k)
{
	size_t i = 0;
	uint32_t cp;
	for (; i < len && k > 0; k--)
		i += u8_next(s + i, len - i, &cp);
	return i;
}

static size_t u8_count(const char *s, size_t len)
{
	size_t i = 0, n = 0;
	uint32_t cp;
	for (; i < len; n++)
		i += u8_next(s + i, len - i, &cp);
	return n;
}

/* Invariant-culture case mapping for the scripts a directory is likely to
 * hold: ASCII, Latin-1, Latin Extended-A, basic Greek and Cyrillic. Each
 * mapping keeps one code point for one, so character positions survive it
 * (InStr's text compare relies on that). */
static uint32_t cp_lower(uint32_t c)
{
	if ((c >= 'A' && c <= 'Z') || (c >= 0xC0 && c <= 0xDE && c != 0xD7))
		return c + 32;
	if ((c >= 0x100 && c <= 0x12F) || (c >= 0x132 && c <= 0x137) ||
	    (c >= 0x14A && c <= 0x177))
		return c % 2 ? c : c + 1;
	if ((c >= 0x139 && c <= 0x148) || (c >= 0x179 && c <= 0x17E))
		return c % 2 ? c + 1 : c;
	if (c == 0x178)
		return 0xFF;
	if ((c >= 0x391 && c <= 0x3A9 && c != 0x3A2) || (c >= 0x410 && c <= 0x42F))
		return c + 32;
	if (c >= 0x400 && c <= 0x40F)
		return c + 80;
	return c;
}

static uint32_t cp_upper(uint32_t c)
{
	if ((c >= 'a' && c <= 'z') || (c >= 0xE0 && c <= 0xFE && c != 0xF7))
		return c - 32;
	if (c == 0xFF)
		return 0x178;
	if ((c >= 0x101 && c <= 0x12F) || (c >= 0x133 && c <= 0x137) ||
	    (c >= 0x14B && c <= 0x177))
		return c % 2 ? c - 1 : c;
	if ((c >= 0x13A && c <= 0x148) || (c >= 0x17A && c <= 0x17E))
		return c % 2 ? c : c - 1;
	if (c == 0x3C2) /* final sigma */
		return 0x3A3;
	if ((c >= 0x3B1 && c <= 0x3C9) || (c >= 0x430 && c <= 0x44F))
		return c - 32;
	if (c >= 0x450 && c <= 0x45F)
		return c - 80;
	return c;
}

static void case_map(const char *s, bool upper, struct sbuf *b)
{
	size_t len = strlen(s);
	for (size_t i = 0; i < len;) {
		uint32_t cp;
		size_t k = u8_next(s + i, len - i, &cp);
		if (cp == BAD_CP)
			sb_addn(b, s + i, k);
		else
			u8_put(b, upper ? cp_upper(cp) : cp_lower(cp));
		i += k;
	}
}

/* White space as .NET's String.Trim() sees it (Unicode White_Space). */
static bool cp_space(uint32_t c)
{
	return c == ' ' || (c >= 0x09 && c <= 0x0D) || c == 0x85 || c == 0xA0 ||
	       c == 0x1680 || (c >= 0x2000 && c <= 0x200A) || c == 0x2028 ||
	       c == 0x2029 || c == 0x202F || c == 0x205F || c == 0x3000;
}

/* Plain-ASCII spellings of U+00C0..U+017F; NULL keeps the character (the
 * multiplication and division signs are not letters). */
static const char *const fold_latin[192] = {
	/* C0 */ "A", "A", "A", "A", "A", "A", "AE", "C", "E", "E", "E", "E", "I", "I", "I", "I",
	/* D0 */ "D", "N", "O", "O", "O", "O", "O", NULL, "O", "U", "U", "U", "U", "Y", "TH", "ss",
	/* E0 */ "a", "a", "a", "a", "a", "a", "ae", "c", "e", "e", "e", "e", "i", "i", "i", "i",
	/* F0 */ "d", "n", "o", "o", "o", "o", "o", NULL, "o", "u", "u", "u", "u", "y", "th", "y",
	/* 100 */ "A", "a", "A", "a", "A", "a", "C", "c", "C", "c", "C", "c", "C", "c", "D", "d",
	/* 110 */ "D", "d", "E", "e", "E", "e", "E", "e", "E", "e", "E", "e", "G", "g", "G", "g",
	/* 120 */ "G", "g", "G", "g", "H", "h", "H", "h", "I", "i", "I", "i", "I", "i", "I", "i",
	/* 130 */ "I", "i", "IJ", "ij", "J", "j", "K", "k", "k", "L", "l", "L", "l", "L", "l", "L",
	/* 140 */ "l", "L", "l", "N", "n", "N", "n", "N", "n", "n", "N", "n", "O", "o", "O", "o",
	/* 150 */ "O", "o", "OE", "oe", "R", "r", "R", "r", "R", "r", "S", "s", "S", "s", "S", "s",
	/* 160 */ "S", "s", "T", "t", "T", "t", "T", "t", "U", "u", "U", "u", "U", "u", "U", "u",
	/* 170 */ "U", "u", "U", "u", "W", "w", "Y", "y", "Y", "Z", "z", "Z", "z", "Z", "z", "s",
};

/* ---- Messages ---- */

#if defined(__GNUC__)
#define PRINTF(f, a) __attribute__((format(printf, f, a)))
#else
#define PRINTF(f, a)
#endif

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

static int parse_ll(const char *s, long long *out)
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

/* 1 for "True", 0 for "False" (any case), -1 for anything else. */
static int parse_bool(const char *s)
{
	if (strcasecmp(s, "true") == 0)
		return 1;
	if (strcasecmp(s, "false") == 0)
		return 0;
	return -1;
}

/*
 * Regular expressions. Patterns are written for .NET (that is what Entra
 * documents); they are translated to POSIX ERE for regcomp: named groups
 * (?<n>...) become plain groups whose number is remembered, \d \w \s become
 * bracket expressions, and what ERE cannot express (look-around, lazy
 * quantifiers, inline options, back-references) is refused at parse time
 * rather than silently matching something else.
 */

enum { GRP_PLAIN, GRP_NAMED, GRP_NONCAP };

struct rx {
	regex_t re;
	size_t nsub;       /* ERE groups */
	char **names;      /* [nsub]: name of ERE group i+1, or NULL */
	size_t *num;       /* [nnum]: .NET group number -> ERE group index */
	size_t nnum;
};

struct rxb { /* translation state */
	struct sbuf out;
	int *kind;         /* [ngrp] GRP_* of each ERE group */
	char **names;
	size_t ngrp;
	char *err;
	size_t errlen;
};

static int rx_err(struct rxb *t, const char *fmt, ...) PRINTF(2, 3);
static int rx_err(struct rxb *t, const char *fmt, ...)
{
	if (t->err && t->errlen) {
		va_list ap;
		va_start(ap, fmt);
		vsnprintf(t->err, t->errlen, fmt, ap);
		va_end(ap);
	}
	return -EINVAL;
}

static int rx_group(struct rxb *t, int kind, char *name)
{
	int *k = realloc(t->kind, (t->ngrp + 1) * sizeof *k);
	if (k)
		t->kind = k;
	char **nm = realloc(t->names, (t->ngrp + 1) * sizeof *nm);
	if (nm)
		t->names = nm;
	if (!k || !nm) {
		free(name);
		return -ENOMEM;
	}
	t->kind[t->ngrp] = kind;
	t->names[t->ngrp++] = name;
	return 0;
}

/* "(?<name>" or "(?'name'" at p (p points after "(?"); sets *len to what it
 * spans. Names are [A-Za-z_][A-Za-z0-9_]*. */
static char *rx_name(const char *p, size_t *len)
{
	char close = *p == '<' ? '>' : '\'';
	size_t i = 1;
	if (!(p[i] == '_' || (p[i] >= 'A' && p[i] <= 'Z') || (p[i] >= 'a' && p[i] <= 'z')))
		return NULL;
	while (p[i] == '_' || (p[i] >= 'A' && p[i] <= 'Z') ||
	       (p[i] >= 'a' && p[i] <= 'z') || (p[i] >= '0' && p[i] <= '9'))
		i++;
	if (p[i] != close)
		return NULL;
	*len = i + 1;
	return strndup(p + 1, i - 1);
}

/* A bracket expression starting at pat[*i] == '['. POSIX takes a
 * backslash in brackets literally and wants ']' first and '-' last, so the
 * items are collected and re-ordered. */
static int rx_bracket(struct rxb *t, const char *pat, size_t *i)
{
	struct sbuf items = {0};
	size_t j = *i + 1;
	bool neg = false, rb = false, dash = false, caret = false, first = true;

	if (pat[j] == '^') {
		neg = true;
		j++;
	}
	for (;; first = false) {
		char ch = pat[j];
		if (!ch) {
			sb_free(&items);
			return rx_err(t, "'[' at offset %zu is not closed", *i);
		}
		if (ch == ']' && !first)
			break;
		if (ch == ']') {
			rb = true;
			j++;
		} else if (ch == '\\') {
			char e = pat[j + 1];
			const char *cls = e == 'd' ? "0-9" : e == 'w' ? "[:alnum:]_" : e == 's' ? "[:space:]" : NULL;
			if (cls)
				sb_adds(&items, cls);
			else if (e == ']')
				rb = true;
			else if (e == '-')
				dash = true;
			else if (e == '^')
				caret = true;
			else if (e == 't' || e == 'n' || e == 'r')
				sb_addc(&items, e == 't' ? '\t' : e == 'n' ? '\n' : '\r');
			else if (!e || (e >= '0' && e <= '9') || (e >= 'A' && e <= 'Z') || (e >= 'a' && e <= 'z')) {
				sb_free(&items);
				return rx_err(t, "escape '\\%c' in brackets is not supported", e ? e : ' ');
			} else
				sb_addc(&items, e);
			j += 2;
		} else if (ch == '[' && pat[j + 1] == ':') {
			const char *end = strstr(pat + j, ":]");
			if (!end) {
				sb_free(&items);
				return rx_err(t, "'[:' at offset %zu is not closed", j);
			}
			sb_addn(&items, pat + j, (size_t)(end + 2 - (pat + j)));
			j = (size_t)(end + 2 - pat);
		} else if (ch == '-' && (first || pat[j + 1] == ']')) {
			dash = true;
			j++;
		} else {
			sb_addc(&items, ch);
			j++;
		}
	}
	if (!neg && !rb && !dash && items.len == 0 && caret) {
		sb_adds(&t->out, "\\^");
	} else {
		sb_adds(&t->out, neg ? "[^" : "[");
		if (rb)
			sb_addc(&t->out, ']');
		if (items.len)
			sb_addn(&t->out, items.p, items.len);
		if (caret)
			sb_addc(&t->out, '^');
		if (dash)
			sb_addc(&t->out, '-');
		sb_addc(&t->out, ']');
	}
	bool oom = items.oom;
	sb_free(&items);
	*i = j + 1;
	return oom ? -ENOMEM : 0;
}

static int rx_escape(struct rxb *t, char e)
{
	static const char *const cls[][2] = {
		{"d", "[0-9]"}, {"D", "[^0-9]"}, {"w", "[[:alnum:]_]"},
		{"W", "[^[:alnum:]_]"}, {"s", "[[:space:]]"}, {"S", "[^[:space:]]"},
		{"t", "\t"}, {"n", "\n"}, {"r", "\r"}, {"b", "\\b"}, {"B", "\\B"},
	};
	for (size_t k = 0; k < sizeof cls / sizeof cls[0]; k++)
		if (cls[k][0][0] == e) {
			sb_adds(&t->out, cls[k][1]);
			return 0;
		}
	if (!e)
		return rx_err(t, "pattern ends with a backslash");
	if ((e >= '0' && e <= '9') || (e >= 'A' && e <= 'Z') || (e >= 'a' && e <= 'z'))
		return rx_err(t, "escape '\\%c' is not supported", e);
	/* An escaped punctuation character is that character; ERE needs the
	 * backslash kept only before its own operators. */
	if (strchr(".[]()*+?{}|^$\\", e))
		sb_addc(&t->out, '\\');
	sb_addc(&t->out, e);
	return 0;
}

static int rx_translate(struct rxb *t, const char *pat)
{
	size_t i = 0;
	int rc = 0;

	while (pat[i] && !rc) {
		char c = pat[i];
		if (c == '\\') {
			rc = rx_escape(t, pat[i + 1]);
			i += pat[i + 1] ? 2 : 1;
		} else if (c == '[') {
			rc = rx_bracket(t, pat, &i);
		} else if (c == '(' && pat[i + 1] == '?') {
			const char *q = pat + i + 2;
			size_t len = 0;
			char *name = NULL;
			if (*q == ':') {
				rc = rx_group(t, GRP_NONCAP, NULL);
				len = 1;
			} else if ((*q == '<' || *q == '\'') && (name = rx_name(q, &len))) {
				rc = rx_group(t, GRP_NAMED, name);
			} else {
				return rx_err(t, "'(?%c' at offset %zu: only (?<name>...) and (?:...) groups are supported", *q ? *q : ' ', i);
			}
			sb_addc(&t->out, '(');
			i += 2 + len;
		} else if (c == '(') {
			rc = rx_group(t, GRP_PLAIN, NULL);
			sb_addc(&t->out, '(');
			i++;
		} else if ((c == '*' || c == '+' || c == '?' || c == '}') && pat[i + 1] == '?') {
			return rx_err(t, "lazy quantifier '%c?' at offset %zu is not supported", c, i);
		} else {
			sb_addc(&t->out, c);
			i++;
		}
	}
	if (!rc && t->out.oom)
		rc = -ENOMEM;
	return rc;
}

static void rx_free(struct rx *rx)
{
	if (!rx)
		return;
	regfree(&rx->re);
	for (size_t i = 0; i < rx->nsub; i++)
		free(rx->names[i]);
	free(rx->names);
	free(rx->num);
	free(rx);
}

/*
 * glibc's regcomp copies the subtree of every `+` and `{m,n}` (n copies), so
 * stacked quantifiers (`a++++`, found by tests/fuzz/fuzz_expr.c: 2 GB) and
 * nested repeated groups (`((a{100}){100}){100}`) grow exponentially. Refuse
 * a quantifier that follows another, a bound over RX_MAX_BOUND, and repeated
 * groups whose copies multiply past RX_MAX_COPIES. Works on the translated
 * POSIX ERE; an estimate from above (sibling groups multiply too).
 */
#define RX_MAX_BOUND 1000
#define RX_MAX_COPIES 1000

static int rx_check_cost(struct rxb *t, const char *ere)
{
	unsigned long copies = 1;
	bool after_quant = false, after_group = false;
	size_t i = 0;

	while (ere[i]) {
		char c = ere[i];
		unsigned long factor = 1;
		bool quant = false;

		if (c == '\\' && ere[i + 1]) {
			i += 2;
			after_quant = after_group = false;
			continue;
		}
		if (c == '[') { /* a bracket expression: skip to its end */
			size_t j = i + 1;
			if (ere[j] == '^')
				j++;
			if (ere[j] == ']')
				j++;
			while (ere[j] && ere[j] != ']')
				j++;
			i = ere[j] ? j + 1 : j;
			after_quant = after_group = false;
			continue;
		}
		if (c == '*' || c == '?') {
			quant = true;
		} else if (c == '+') {
			quant = true;
			factor = 2;
		} else if (c == '{' && (ere[i + 1] >= '0' && ere[i + 1] <= '9')) {
			unsigned long lo = 0, hi = 0;
			size_t j = i + 1;
			while (ere[j] >= '0' && ere[j] <= '9' && lo <= RX_MAX_BOUND)
				lo = lo * 10 + (unsigned long)(ere[j++] - '0');
			hi = lo;
			if (ere[j] == ',') {
				j++;
				hi = 0;
				while (ere[j] >= '0' && ere[j] <= '9' && hi <= RX_MAX_BOUND)
					hi = hi * 10 + (unsigned long)(ere[j++] - '0');
				if (hi < lo)
					hi = lo;
			}
			if (lo > RX_MAX_BOUND || hi > RX_MAX_BOUND)
				return rx_err(t, "a repetition bound over %d is not supported", RX_MAX_BOUND);
			quant = true;
			factor = hi + 1;
			while (ere[j] && ere[j] != '}')
				j++;
			i = ere[j] ? j : j - 1;
		}
		if (quant) {
			if (after_quant)
				return rx_err(t, "a quantifier right after another one is not supported");
			if (after_group) {
				copies *= factor;
				if (copies > RX_MAX_COPIES)
					return rx_err(t, "repeated groups too large (over %d copies)", RX_MAX_COPIES);
			}
			after_quant = true;
			after_group = false;
		} else {
			after_quant = false;
			after_group = c == ')';
		}
		i++;
	}
	return 0;
}

/* Compile .NET-style `pat`. On error the message (without column) is in
 * err. */
static int rx_compile(const char *pat, struct rx **out, char *err, size_t errlen)
{
	struct rxb t = {.err = err, .errlen = errlen};
	struct rx *rx = NULL;
	int rc = rx_translate(&t, pat);

	*out = NULL;
	if (rc == -ENOMEM)
		rx_err(&t, "out of memory");
	if (rc)
		goto done;
	rc = rx_check_cost(&t, t.out.p ? t.out.p : "");
	if (rc)
		goto done;
	rx = calloc(1, sizeof *rx);
	if (!rx) {
		rx_err(&t, "out of memory");
		rc = -ENOMEM;
		goto done;
	}
	int rrc = regcomp(&rx->re, t.out.p ? t.out.p : "", REG_EXTENDED);
	if (rrc) {
		char buf[128];
		regerror(rrc, &rx->re, buf, sizeof buf);
		free(rx);
		rx = NULL;
		rc = rx_err(&t, "%s", buf);
		goto done;
	}
	/* regcomp counted the groups too; the two counts differ only if the
	 * translation is wrong. */
	assert(rx->re.re_nsub == t.ngrp);
	rx->nsub = t.ngrp;
	rx->names = t.names;
	t.names = NULL;
	rx->num = malloc((t.ngrp + 1) * sizeof *rx->num);
	if (!rx->num) {
		rx_free(rx);
		rx = NULL;
		rc = -ENOMEM;
		rx_err(&t, "out of memory");
		goto done;
	}
	/* .NET numbers the unnamed groups first, then the named ones. */
	rx->num[rx->nnum++] = 0;
	for (size_t g = 0; g < t.ngrp; g++)
		if (t.kind[g] == GRP_PLAIN)
			rx->num[rx->nnum++] = g + 1;
	for (size_t g = 0; g < t.ngrp; g++)
		if (t.kind[g] == GRP_NAMED)
			rx->num[rx->nnum++] = g + 1;
	*out = rx;
done:
	if (t.names)
		for (size_t g = 0; g < t.ngrp; g++)
			free(t.names[g]);
	free(t.names);
	free(t.kind);
	sb_free(&t.out);
	return rc;
}

/* ERE index of group `ref` (a .NET number or a name), or -1. */
static long rx_find(const struct rx *rx, const char *ref, size_t len)
{
	if (len && ref[0] >= '0' && ref[0] <= '9') {
		size_t n = 0;
		for (size_t i = 0; i < len; i++) {
			if (ref[i] < '0' || ref[i] > '9' || n > rx->nnum)
				return -1;
			n = n * 10 + (size_t)(ref[i] - '0');
		}
		return n < rx->nnum ? (long)rx->num[n] : -1;
	}
	for (size_t g = 0; g < rx->nsub; g++)
		if (rx->names[g] && strlen(rx->names[g]) == len && memcmp(rx->names[g], ref, len) == 0)
			return (long)g + 1;
	return -1;
}

/* Append the .NET replacement pattern `rep` for one match: $1, ${name},
 * ${1}, $0 and $& (the match), $$ (a dollar). A reference to a group that
 * does not exist is copied literally, as .NET does. */
static void rx_expand(const struct rx *rx, const char *rep, const char *base,
		      const regmatch_t *m, struct sbuf *b)
{
	for (const char *p = rep; *p;) {
		const char *ref = NULL;
		size_t len = 0, skip = 0;
		if (p[0] == '$' && p[1] == '$') {
			sb_addc(b, '$');
			p += 2;
			continue;
		}
		if (p[0] == '$' && p[1] == '&') {
			ref = "0";
			len = 1;
			skip = 2;
		} else if (p[0] == '$' && p[1] == '{') {
			const char *end = strchr(p + 2, '}');
			if (end) {
				ref = p + 2;
				len = (size_t)(end - ref);
				skip = len + 3;
			}
		} else if (p[0] == '$' && p[1] >= '0' && p[1] <= '9') {
			ref = p + 1;
			while (ref[len] >= '0' && ref[len] <= '9')
				len++;
			skip = len + 1;
		}
		long g = ref ? rx_find(rx, ref, len) : -1;
		if (g < 0) {
			sb_addc(b, *p++);
			continue;
		}
		if (m[g].rm_so >= 0)
			sb_addn(b, base + m[g].rm_so, (size_t)(m[g].rm_eo - m[g].rm_so));
		p += skip;
	}
}

/* Match rx in s[from..len) with offsets into s. REG_STARTEND (glibc, the
 * BSDs) lets the matcher see the text before `from`, so that ^ and \b after
 * a previous match behave as in .NET; elsewhere the suffix is matched as
 * "not at the beginning of a line". */
static int rx_exec(const struct rx *rx, const char *s, size_t from, size_t len, regmatch_t *m)
{
#ifdef REG_STARTEND
	m[0].rm_so = (regoff_t)from;
	m[0].rm_eo = (regoff_t)len;
	return regexec(&rx->re, s, rx->nsub + 1, m, REG_STARTEND);
#else
	(void)len;
	int rc = regexec(&rx->re, s + from, rx->nsub + 1, m, from ? REG_NOTBOL : 0);
	for (size_t i = 0; rc == 0 && i <= rx->nsub; i++)
		if (m[i].rm_so >= 0) {
			m[i].rm_so += (regoff_t)from;
			m[i].rm_eo += (regoff_t)from;
		}
	return rc;
#endif
}

/* Replace every match of rx in s, like .NET Regex.Replace: group 0 replaces
 * whole matches, group g > 0 only the span of that group in each match. */
static int rx_replace(const struct rx *rx, const char *s, long g, const char *rep,
		      struct sbuf *b)
{
	size_t len = strlen(s), p = 0;
	regmatch_t *m = calloc(rx->nsub + 1, sizeof *m);
	if (!m)
		return -ENOMEM;
	while (p <= len) {
		int rc = rx_exec(rx, s, p, len, m);
		if (rc == REG_NOMATCH)
			break;
		if (rc) {
			free(m);
			return -ENOMEM; /* REG_ESPACE is the only other result */
		}
		size_t so = (size_t)m[0].rm_so, eo = (size_t)m[0].rm_eo;
		if (g == 0) {
			sb_addn(b, s + p, so - p);
			rx_expand(rx, rep, s, m, b);
		} else if (m[g].rm_so < 0) { /* the group took no part: keep the match */
			sb_addn(b, s + p, eo - p);
		} else {
			sb_addn(b, s + p, (size_t)m[g].rm_so - p);
			rx_expand(rx, rep, s, m, b);
			sb_addn(b, s + m[g].rm_eo, eo - (size_t)m[g].rm_eo);
		}
		if (eo > so) {
			p = eo;
			continue;
		}
		/* An empty match: keep the next character and look after it. */
		if (so >= len) {
			p = len + 1;
			break;
		}
		uint32_t cp;
		size_t k = u8_next(s + so, len - so, &cp);
		sb_addn(b, s + so, k);
		p = so + k;
	}
	if (p <= len)
		sb_addn(b, s + p, len - p);
	free(m);
	return 0;
}

/* ---- The tree ---- */

enum nkind { N_STR, N_NUM, N_BOOL, N_ATTR, N_OMIT, N_CALL, N_EQ };

struct ectx;
struct node;
struct parser;

struct func {
	const char *name;
	unsigned min, max;   /* argument counts; max may be ARGS_MANY */
	unsigned intargs;    /* bit i: argument i is an integer (checked on literals) */
	int (*check)(struct parser *p, struct node *n);
	int (*eval)(struct ectx *c, const struct node *n, struct expr_value *out);
};

struct node {
	enum nkind kind;
	unsigned col;
	char *text;            /* literal value, attribute name */
	const struct func *fn; /* N_CALL */
	struct node **args;    /* N_CALL, N_EQ */
	size_t nargs;
	struct rx *rx;         /* Replace with a literal pattern, compiled at parse */
};

struct expr {
	struct node *root;
	char **attrs;
	size_t nattrs;
};

static void node_free(struct node *n)
{
	if (!n)
		return;
	for (size_t i = 0; i < n->nargs; i++)
		node_free(n->args[i]);
	free(n->args);
	free(n->text);
	rx_free(n->rx);
	free(n);
}

static bool given(const struct node *n, size_t i)
{
	return i < n->nargs && n->args[i]->kind != N_OMIT;
}

static bool literal(const struct node *n)
{
	return n->kind == N_STR || n->kind == N_NUM || n->kind == N_BOOL;
}

/* ---- Parser ---- */

struct parser {
	const char *s;
	size_t pos;
	char *err;
	size_t errlen;
};

static const struct func *func_find(const char *name, size_t len);

static int perr_col(struct parser *p, unsigned col, const char *fmt, ...) PRINTF(3, 4);
static int perr_col(struct parser *p, unsigned col, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	vmsg(p->err, p->errlen, col, NULL, fmt, ap);
	va_end(ap);
	return -EINVAL;
}

#define perr(p, pos, ...) perr_col((p), column((p)->s, (pos)), __VA_ARGS__)

static int oom(struct parser *p)
{
	perr(p, p->pos, "out of memory");
	return -ENOMEM;
}

static void skip_ws(struct parser *p)
{
	while (p->s[p->pos] == ' ' || p->s[p->pos] == '\t' || p->s[p->pos] == '\n' ||
	       p->s[p->pos] == '\r')
		p->pos++;
}

static bool ident_start(char c)
{
	return c == '_' || (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z');
}

static bool ident_char(char c)
{
	return ident_start(c) || (c >= '0' && c <= '9');
}

static bool digit(char c) { return c >= '0' && c <= '9'; }

static char toupper_ascii(char c) { return c >= 'a' && c <= 'z' ? (char)(c - 32) : c; }

/* How the character at pos reads in a message. */
static int found_len(const char *s, size_t pos)
{
	uint32_t cp;
	return (int)u8_next(s + pos, strlen(s + pos), &cp);
}

static struct node *node_new(enum nkind kind, unsigned col)
{
	struct node *n = calloc(1, sizeof *n);
	if (n) {
		n->kind = kind;
		n->col = col;
	}
	return n;
}

static int leaf(struct parser *p, enum nkind kind, size_t start, char *text,
		struct node **out)
{
	struct node *n = text ? node_new(kind, column(p->s, start)) : NULL;
	if (!n) {
		free(text);
		return oom(p);
	}
	n->text = text;
	*out = n;
	return 0;
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
	return leaf(p, N_STR, start, sb_take(&b), out);
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
	return leaf(p, N_ATTR, start, strndup(s + a, z - a), out);
}

static int parse_number(struct parser *p, struct node **out)
{
	size_t start = p->pos, i = p->pos;
	if (p->s[i] == '-')
		i++;
	while (digit(p->s[i]))
		i++;
	if (p->s[i] == '.' && digit(p->s[i + 1]))
		for (i++; digit(p->s[i]); i++)
			;
	if (ident_char(p->s[i]))
		return perr(p, i, "unexpected '%c' in number", p->s[i]);
	p->pos = i;
	return leaf(p, N_NUM, start, strndup(p->s + start, i - start), out);
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
		return perr_col(p, n->col, "%s expects %s, got %zu", f->name, want, n->nargs);
	}
	for (size_t i = 0; i < n->nargs; i++) {
		const struct node *a = n->args[i];
		long long v;
		if (i < 32 && (f->intargs & (1u << i)) && literal(a) && parse_ll(a->text, &v))
			return perr_col(p, a->col, "%s: argument %zu must be an integer, got \"%s\"",
					f->name, i + 1, a->text);
	}
	return f->check ? f->check(p, n) : 0;
}

static int push_arg(struct parser *p, struct node *n, struct node *a)
{
	struct node **v = realloc(n->args, (n->nargs + 1) * sizeof *v);
	if (!v) {
		node_free(a);
		return oom(p);
	}
	v[n->nargs++] = a;
	n->args = v;
	return 0;
}

/* Name(arg, ...): the name is s[start..start+len), p->pos is at '('. */
static int parse_call(struct parser *p, size_t start, size_t len, unsigned depth,
		      struct node **out)
{
	const struct func *f = func_find(p->s + start, len);
	if (!f)
		return perr(p, start, "unknown function '%.*s'", (int)len, p->s + start);
	if (depth >= EXPR_MAX_DEPTH)
		return perr(p, start, "expression nested too deeply (more than %d levels)", EXPR_MAX_DEPTH);
	struct node *n = node_new(N_CALL, column(p->s, start));
	if (!n)
		return oom(p);
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
			if (c == ',' || c == ')') {
				a = node_new(N_OMIT, column(p->s, p->pos));
				rc = a ? 0 : oom(p);
			} else if (!c) {
				rc = perr(p, p->pos, "missing ')' to close %s( at column %u", f->name, n->col);
			} else {
				rc = parse_expr(p, depth + 1, &a);
			}
			if (rc || (rc = push_arg(p, n, a)))
				break;
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
	};
	size_t start = p->pos;
	while (ident_char(p->s[p->pos]))
		p->pos++;
	size_t len = p->pos - start;
	size_t after = p->pos;
	skip_ws(p);
	if (p->s[p->pos] == '(')
		return parse_call(p, start, len, depth, out);
	p->pos = after;
	for (size_t i = 0; i < sizeof words / sizeof words[0]; i++)
		if (strlen(words[i][0]) == len && strncasecmp(p->s + start, words[i][0], len) == 0)
			return leaf(p, i < 2 ? N_BOOL : N_STR, start, strdup(words[i][1]), out);
	if (func_find(p->s + start, len))
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
	if (digit(c) || (c == '-' && digit(p->s[p->pos + 1])))
		return parse_number(p, out);
	if (ident_start(c))
		return parse_word(p, depth, out);
	if (!c)
		return perr(p, p->pos, "expected a value (\"text\", [attribute], number or Function(...)), found the end of the expression");
	return perr(p, p->pos, "expected a value (\"text\", [attribute], number or Function(...)), found '%.*s'",
		    found_len(p->s, p->pos), p->s + p->pos);
}

/* term [ '=' term ] */
static int parse_expr(struct parser *p, unsigned depth, struct node **out)
{
	struct node *l = NULL, *r = NULL, *n;
	int rc = parse_term(p, depth, &l);
	if (rc)
		return rc;
	skip_ws(p);
	if (p->s[p->pos] != '=') {
		*out = l;
		return 0;
	}
	size_t eq = p->pos++;
	if (depth + 1 >= EXPR_MAX_DEPTH) {
		node_free(l);
		return perr(p, eq, "expression nested too deeply (more than %d levels)", EXPR_MAX_DEPTH);
	}
	rc = parse_term(p, depth + 1, &r);
	if (rc) {
		node_free(l);
		return rc;
	}
	n = node_new(N_EQ, column(p->s, eq));
	struct node **args = malloc(2 * sizeof *args);
	if (!n || !args) {
		free(n);
		free(args);
		node_free(l);
		node_free(r);
		return oom(p);
	}
	args[0] = l;
	args[1] = r;
	n->args = args;
	n->nargs = 2;
	*out = n;
	return 0;
}

static int collect_attrs(struct expr *e, const struct node *n)
{
	if (n->kind == N_ATTR) {
		for (size_t i = 0; i < e->nattrs; i++)
			if (strcasecmp(e->attrs[i], n->text) == 0)
				return 0;
		char **v = realloc(e->attrs, (e->nattrs + 1) * sizeof *v);
		if (!v)
			return -ENOMEM;
		e->attrs = v;
		if (!(v[e->nattrs] = strdup(n->text)))
			return -ENOMEM;
		e->nattrs++;
	}
	for (size_t i = 0; i < n->nargs; i++) {
		int rc = collect_attrs(e, n->args[i]);
		if (rc)
			return rc;
	}
	return 0;
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
	struct expr *e = calloc(1, sizeof *e);
	if (!e)
		return oom(&p);
	int rc = parse_expr(&p, 0, &e->root);
	if (!rc) {
		skip_ws(&p);
		if (p.s[p.pos])
			rc = perr(&p, p.pos, "expected the end of the expression, found '%.*s'",
				  found_len(p.s, p.pos), p.s + p.pos);
	}
	if (!rc && collect_attrs(e, e->root))
		rc = oom(&p);
	if (rc) {
		expr_free(e);
		return rc;
	}
	*out = e;
	return 0;
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

struct ectx {
	expr_lookup_fn lookup;
	void *ctx;
	char *err;
	size_t errlen;
};

static int efail(struct ectx *c, const struct node *n, const char *fmt, ...) PRINTF(3, 4);
static int efail(struct ectx *c, const struct node *n, const char *fmt, ...)
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
	for (size_t i = 0; i < nv && !rc; i++)
		if (vals[i]) /* a NULL entry is no value */
			rc = vpush(out, strdup(vals[i]));
	return rc;
}

static int eval_eq(struct ectx *c, const struct node *n, struct expr_value *out)
{
	struct expr_value a = {0}, b = {0};
	int rc = eval(c, n->args[0], &a);
	if (!rc)
		rc = eval(c, n->args[1], &b);
	if (!rc) {
		bool eq = a.n == b.n;
		for (size_t i = 0; eq && i < a.n; i++)
			eq = strcmp(a.v[i], b.v[i]) == 0;
		rc = vpush_bool(out, eq);
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
		rc = vpush(out, strdup(n->text));
		break;
	case N_OMIT:
		break;
	case N_ATTR:
		rc = eval_attr(c, n, out);
		break;
	case N_EQ:
		rc = eval_eq(c, n, out);
		break;
	case N_CALL:
		rc = n->fn->eval(c, n, out);
		break;
	}
	if (rc)
		expr_value_free(out);
	return rc;
}

static int arg_val(struct ectx *c, const struct node *n, size_t i, struct expr_value *out)
{
	*out = (struct expr_value){0};
	return i < n->nargs ? eval(c, n->args[i], out) : 0;
}

/* Argument i where one string is expected: its first value, NULL if null. */
static int arg_str(struct ectx *c, const struct node *n, size_t i, char **out)
{
	struct expr_value v;
	int rc = arg_val(c, n, i, &v);
	*out = NULL;
	if (!rc && v.n) {
		*out = v.v[0];
		v.v[0] = NULL;
	}
	expr_value_free(&v);
	return rc;
}

static int arg_int(struct ectx *c, const struct node *n, size_t i, const char *what,
		   long long *out)
{
	char *s;
	int rc = arg_str(c, n, i, &s);
	if (rc)
		return rc;
	if (!s)
		return efail(c, n, "%s is null", what);
	if (parse_ll(s, out))
		rc = efail(c, n, "%s is not an integer: \"%s\"", what, s);
	free(s);
	return rc;
}

/* One-string transformation applied to each value by map_arg. Returns 0,
 * 1 to drop the value (no result for it), or a negative code. */
typedef int (*xform_fn)(struct ectx *c, const struct node *n, const void *arg,
			const char *in, struct sbuf *out);

/* Entra's functions take one string; here they apply to every value of
 * argument `i`, so a multi-valued attribute stays multi-valued and null
 * stays null. */
static int map_arg(struct ectx *c, const struct node *n, size_t i, xform_fn f,
		   const void *arg, struct expr_value *out)
{
	struct expr_value src;
	int rc = arg_val(c, n, i, &src);
	for (size_t k = 0; k < src.n && !rc; k++) {
		struct sbuf b = {0};
		rc = f(c, n, arg, src.v[k], &b);
		if (rc == 0)
			rc = vpush(out, sb_take(&b));
		else
			sb_free(&b);
		if (rc > 0)
			rc = 0;
	}
	expr_value_free(&src);
	return rc;
}

/* ---- String functions ---- */

static int x_lower(struct ectx *c, const struct node *n, const void *arg, const char *in, struct sbuf *b)
{
	(void)c, (void)n, (void)arg;
	case_map(in, false, b);
	return 0;
}

static int x_upper(struct ectx *c, const struct node *n, const void *arg, const char *in, struct sbuf *b)
{
	(void)c, (void)n, (void)arg;
	case_map(in, true, b);
	return 0;
}

static int f_tolower(struct ectx *c, const struct node *n, struct expr_value *out)
{
	return map_arg(c, n, 0, x_lower, NULL, out);
}

static int f_toupper(struct ectx *c, const struct node *n, struct expr_value *out)
{
	return map_arg(c, n, 0, x_upper, NULL, out);
}

static int x_trim(struct ectx *c, const struct node *n, const void *arg, const char *in, struct sbuf *b)
{
	(void)c, (void)n, (void)arg;
	size_t len = strlen(in), a = len, z = 0;
	for (size_t i = 0; i < len;) {
		uint32_t cp;
		size_t k = u8_next(in + i, len - i, &cp);
		if (!cp_space(cp)) {
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
	return map_arg(c, n, 0, x_trim, NULL, out);
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
	return map_arg(c, n, 0, x_strip, NULL, out);
}

static int x_diacritics(struct ectx *c, const struct node *n, const void *arg, const char *in, struct sbuf *b)
{
	(void)c, (void)n, (void)arg;
	size_t len = strlen(in);
	for (size_t i = 0; i < len;) {
		uint32_t cp;
		size_t k = u8_next(in + i, len - i, &cp);
		if (cp >= 0xC0 && cp <= 0x17F && fold_latin[cp - 0xC0])
			sb_adds(b, fold_latin[cp - 0xC0]);
		else if (!(cp >= 0x300 && cp <= 0x36F)) /* combining marks: dropped */
			sb_addn(b, in + i, k);
		i += k;
	}
	return 0;
}

static int f_normalizediacritics(struct ectx *c, const struct node *n, struct expr_value *out)
{
	return map_arg(c, n, 0, x_diacritics, NULL, out);
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
	int rc = arg_str(c, n, 1, &suffix);
	if (!rc)
		rc = map_arg(c, n, 0, x_append, suffix ? suffix : "", out);
	free(suffix);
	return rc;
}

static int f_join(struct ectx *c, const struct node *n, struct expr_value *out)
{
	char *sep;
	int rc = arg_str(c, n, 0, &sep);
	struct sbuf b = {0};
	bool any = false;
	for (size_t i = 1; i < n->nargs && !rc; i++) {
		struct expr_value v;
		rc = arg_val(c, n, i, &v);
		for (size_t k = 0; k < v.n; k++) {
			if (any && sep)
				sb_adds(&b, sep);
			sb_adds(&b, v.v[k]);
			any = true;
		}
		expr_value_free(&v);
	}
	free(sep);
	if (!rc && any)
		return vpush(out, sb_take(&b));
	sb_free(&b);
	return rc;
}

static int x_left(struct ectx *c, const struct node *n, const void *arg, const char *in, struct sbuf *b)
{
	(void)c, (void)n;
	long long k = *(const long long *)arg;
	size_t len = strlen(in);
	sb_addn(b, in, k < 0 ? len : u8_skip(in, len, k));
	return 0;
}

static int f_left(struct ectx *c, const struct node *n, struct expr_value *out)
{
	long long k;
	int rc = arg_int(c, n, 1, "NumChars", &k);
	if (!rc)
		rc = map_arg(c, n, 0, x_left, &k, out);
	if (!rc && out->n == 0) /* Entra: "If string is null, return empty string" */
		rc = vpush(out, strdup(""));
	return rc;
}

static int x_mid(struct ectx *c, const struct node *n, const void *arg, const char *in, struct sbuf *b)
{
	(void)c, (void)n;
	const long long *sl = arg;
	size_t len = strlen(in);
	size_t a = u8_skip(in, len, sl[0] - 1);
	sb_addn(b, in + a, u8_skip(in + a, len - a, sl[1]));
	return 0;
}

static int f_mid(struct ectx *c, const struct node *n, struct expr_value *out)
{
	long long sl[2];
	int rc = arg_int(c, n, 1, "start", &sl[0]);
	if (!rc)
		rc = arg_int(c, n, 2, "length", &sl[1]);
	if (rc)
		return rc;
	if (sl[0] < 1)
		return efail(c, n, "start must be 1 or more (positions are 1-based), got %lld", sl[0]);
	if (sl[1] < 0)
		return efail(c, n, "length must not be negative, got %lld", sl[1]);
	return map_arg(c, n, 0, x_mid, sl, out);
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
		case_map(in, false, &low);
		if (low.oom) {
			sb_free(&low);
			return -ENOMEM;
		}
		in = low.p ? low.p : "";
	}
	size_t len = strlen(in);
	size_t off = u8_skip(in, len, a->start - 1);
	if ((long long)u8_count(in, len) + 1 >= a->start) {
		const char *hit = strstr(in + off, a->needle);
		if (hit)
			pos = (long long)u8_count(in, (size_t)(hit - in)) + 1;
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
	int rc = arg_str(c, n, 1, &needle);
	if (!rc && given(n, 2))
		rc = arg_int(c, n, 2, "start", &a.start);
	if (!rc && given(n, 3))
		rc = arg_str(c, n, 3, &cmp);
	if (rc)
		goto out;
	if (a.start < 1) {
		rc = efail(c, n, "start must be 1 or more (positions are 1-based), got %lld", a.start);
		goto out;
	}
	if (cmp && (strcasecmp(cmp, "vbTextCompare") == 0 || strcmp(cmp, "1") == 0)) {
		a.text = true;
	} else if (cmp && strcasecmp(cmp, "vbBinaryCompare") != 0 && strcmp(cmp, "0") != 0) {
		rc = efail(c, n, "compareType must be vbBinaryCompare or vbTextCompare, got \"%s\"", cmp);
		goto out;
	}
	a.needle = needle ? needle : "";
	if (a.text) {
		case_map(a.needle, false, &low);
		if (low.oom) {
			rc = -ENOMEM;
			goto out;
		}
		a.needle = low.p ? low.p : "";
	}
	rc = map_arg(c, n, 0, x_instr, &a, out);
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
	int rc = arg_str(c, n, 1, &d);
	if (!rc)
		rc = arg_val(c, n, 0, &src);
	if (rc) {
		free(d);
		return rc;
	}
	for (size_t k = 0; k < src.n && !rc; k++) {
		const char *s = src.v[k], *hit;
		if (d && *d)
			for (; !rc && (hit = strstr(s, d)); s = hit + strlen(d))
				rc = vpush_n(out, s, (size_t)(hit - s));
		if (!rc)
			rc = vpush(out, strdup(s));
	}
	expr_value_free(&src);
	free(d);
	return rc;
}

/* Is the character at s (k bytes) one of the characters of set? */
static bool in_set(const char *s, size_t k, const char *set)
{
	size_t len = strlen(set);
	for (size_t i = 0; i < len;) {
		uint32_t cp;
		size_t m = u8_next(set + i, len - i, &cp);
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
		size_t k = i < len ? u8_next(in + i, len - i, &cp) : 0;
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
	int rc = arg_int(c, n, 1, "WordNumber", &w.num);
	if (rc || (rc = arg_str(c, n, 2, &d)))
		return rc;
	w.delims = d ? d : "";
	rc = map_arg(c, n, 0, x_word, &w, out);
	free(d);
	if (!rc && out->n == 0) /* Entra: "If string is null, returns empty string" */
		rc = vpush(out, strdup(""));
	return rc;
}

static int hexval(char c)
{
	if (c >= '0' && c <= '9')
		return c - '0';
	if (c >= 'a' && c <= 'f')
		return c - 'a' + 10;
	if (c >= 'A' && c <= 'F')
		return c - 'A' + 10;
	return -1;
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
		if (ch == '\\' && hexval(p[0]) >= 0 && hexval(p[1]) >= 0) {
			ch = (char)(hexval(p[0]) * 16 + hexval(p[1]));
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
	if (!b->oom && b->p)
		b->p[b->len = keep] = '\0';
	return 0;
}

static int f_dncomponent(struct ectx *c, const struct node *n, struct expr_value *out)
{
	long long k;
	int rc = arg_int(c, n, 0, "ComponentNumber", &k);
	if (!rc && k < 1)
		rc = efail(c, n, "ComponentNumber must be 1 or more, got %lld", k);
	return rc ? rc : map_arg(c, n, 1, x_dncomp, &k, out);
}

/* ---- Replace ---- */

struct repl {
	const char *old, *rep; /* oldValue form; rep is the template when tmpl */
	bool tmpl;
	const struct rx *rx;   /* regex form */
	long group;
};

/* Replace every `old` (non-empty) in s by rep. */
static void str_replace(const char *s, const char *old, const char *rep, struct sbuf *b)
{
	size_t ol = strlen(old);
	for (const char *hit; (hit = strstr(s, old)); s = hit + ol) {
		sb_addn(b, s, (size_t)(hit - s));
		sb_adds(b, rep);
	}
	sb_adds(b, s);
}

static int x_replace(struct ectx *c, const struct node *n, const void *arg, const char *in, struct sbuf *b)
{
	(void)c, (void)n;
	const struct repl *r = arg;
	if (r->rx)
		return rx_replace(r->rx, in, r->group, r->rep, b);
	if (r->tmpl)
		str_replace(r->rep, r->old, in, b);
	else
		str_replace(in, r->old, r->rep, b);
	return 0;
}

static int check_replace(struct parser *p, struct node *n)
{
	bool old = given(n, 1), re = given(n, 2), grp = given(n, 3), rep = given(n, 4),
	     rattr = given(n, 5), tmpl = given(n, 6);
	const char *why = NULL;

	if (old && re)
		why = "give oldValue (argument 2) or regexPattern (argument 3), not both";
	else if (!old && !re)
		why = "needs oldValue (argument 2) or regexPattern (argument 3)";
	else if (old && (grp || rattr))
		why = "regexGroupName and replacementAttributeName go with regexPattern, not oldValue";
	else if (old && rep == tmpl)
		why = "oldValue needs either replacementValue (argument 5) or template (argument 7)";
	else if (re && tmpl)
		why = "template goes with oldValue, not regexPattern";
	else if (re && rattr && (!grp || rep))
		why = "replacementAttributeName needs regexGroupName and no replacementValue";
	else if (re && !rattr && !rep)
		why = "regexPattern needs replacementValue, or regexGroupName with replacementAttributeName";
	if (why)
		return perr_col(p, n->col, "Replace: %s", why);
	if (!re || n->args[2]->kind != N_STR)
		return 0;

	char buf[160];
	const struct node *pat = n->args[2];
	int rc = rx_compile(pat->text, &n->rx, buf, sizeof buf);
	if (rc == -ENOMEM)
		return oom(p);
	if (rc)
		return perr_col(p, pat->col, "Replace: regexPattern: %s", buf);
	if (grp && literal(n->args[3]) &&
	    rx_find(n->rx, n->args[3]->text, strlen(n->args[3]->text)) < 0)
		return perr_col(p, n->args[3]->col, "Replace: regexGroupName \"%s\" is not a group of the pattern",
				n->args[3]->text);
	return 0;
}

/* Regex form with replacementAttributeName: the source when it has a value,
 * else group `g` of the first match in each value of the other attribute. */
static int replace_fallback(struct ectx *c, const struct node *n, const struct rx *rx,
			    long g, struct expr_value *src, struct expr_value *out)
{
	if (src->n)
		return vappend(out, src);
	struct expr_value alt;
	int rc = arg_val(c, n, 5, &alt);
	regmatch_t *m = rc ? NULL : calloc(rx->nsub + 1, sizeof *m);
	if (!rc && !m)
		rc = -ENOMEM;
	for (size_t k = 0; k < alt.n && !rc; k++) {
		int x = rx_exec(rx, alt.v[k], 0, strlen(alt.v[k]), m);
		if (x == 0 && m[g].rm_so >= 0)
			rc = vpush_n(out, alt.v[k] + m[g].rm_so, (size_t)(m[g].rm_eo - m[g].rm_so));
		else if (x != 0 && x != REG_NOMATCH)
			rc = -ENOMEM;
	}
	free(m);
	expr_value_free(&alt);
	return rc;
}

static int f_replace(struct ectx *c, const struct node *n, struct expr_value *out)
{
	struct repl r = {0};
	struct rx *own = NULL;
	char *old = NULL, *rep = NULL, *pat = NULL, *grp = NULL;
	struct expr_value src = {0};
	int rc = 0;

	if (given(n, 1)) { /* oldValue form */
		r.tmpl = given(n, 6);
		if ((rc = arg_str(c, n, 1, &old)) || (rc = arg_str(c, n, r.tmpl ? 6 : 4, &rep)))
			goto out;
		if (!old || !*old) {
			rc = efail(c, n, "oldValue is empty");
			goto out;
		}
		r.old = old;
		r.rep = rep ? rep : "";
		rc = map_arg(c, n, 0, x_replace, &r, out);
		goto out;
	}
	r.rx = n->rx;
	if (!r.rx) { /* a pattern computed at run time */
		char buf[160];
		if ((rc = arg_str(c, n, 2, &pat)))
			goto out;
		if (!pat) {
			rc = efail(c, n, "regexPattern is null");
			goto out;
		}
		rc = rx_compile(pat, &own, buf, sizeof buf);
		if (rc) {
			if (rc != -ENOMEM)
				rc = efail(c, n, "regexPattern: %s", buf);
			goto out;
		}
		r.rx = own;
	}
	if (given(n, 3)) {
		if ((rc = arg_str(c, n, 3, &grp)))
			goto out;
		r.group = grp ? rx_find(r.rx, grp, strlen(grp)) : -1;
		if (r.group < 0) {
			rc = efail(c, n, "regexGroupName \"%s\" is not a group of the pattern", grp ? grp : "");
			goto out;
		}
	}
	if (given(n, 5)) {
		if (!(rc = arg_val(c, n, 0, &src)))
			rc = replace_fallback(c, n, r.rx, r.group, &src, out);
		goto out;
	}
	if ((rc = arg_str(c, n, 4, &rep)))
		goto out;
	r.rep = rep ? rep : "";
	rc = map_arg(c, n, 0, x_replace, &r, out);
out:
	expr_value_free(&src);
	rx_free(own);
	free(old);
	free(rep);
	free(pat);
	free(grp);
	return rc;
}

/* ---- Lists, logic, conversions ---- */

static int f_item(struct ectx *c, const struct node *n, struct expr_value *out)
{
	long long i;
	struct expr_value v;
	int rc = arg_int(c, n, 1, "index", &i);
	if (rc || (rc = arg_val(c, n, 0, &v)))
		return rc;
	if (i >= 1 && (unsigned long long)i <= v.n) {
		rc = vpush(out, v.v[i - 1]);
		v.v[i - 1] = NULL;
	}
	expr_value_free(&v);
	return rc;
}

static int f_count(struct ectx *c, const struct node *n, struct expr_value *out)
{
	struct expr_value v;
	int rc = arg_val(c, n, 0, &v);
	if (!rc) {
		char num[32];
		snprintf(num, sizeof num, "%zu", v.n);
		rc = vpush(out, strdup(num));
	}
	expr_value_free(&v);
	return rc;
}

static int f_cstr(struct ectx *c, const struct node *n, struct expr_value *out)
{
	return arg_val(c, n, 0, out);
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
	int rc = arg_val(c, n, 0, &v);
	if (rc || v.n < 2) {
		*out = v;
		return rc;
	}
	struct dup *d = malloc(v.n * sizeof *d);
	if (!d) {
		expr_value_free(&v);
		return -ENOMEM;
	}
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
	int rc = arg_val(c, n, 0, &src);
	if (!rc && src.n == 0)
		rc = arg_val(c, n, 1, out);
	for (size_t k = 0; k < src.n && !rc; k++) {
		size_t pick = 1;
		for (size_t i = 2; i + 1 < n->nargs && !rc && pick == 1; i += 2) {
			char *key;
			rc = arg_str(c, n, i, &key);
			if (!rc && key && strcmp(key, src.v[k]) == 0)
				pick = i + 1;
			free(key);
		}
		struct expr_value r;
		if (!rc && !(rc = arg_val(c, n, pick, &r)))
			rc = vappend(out, &r);
	}
	expr_value_free(&src);
	return rc;
}

static int check_switch(struct parser *p, struct node *n)
{
	if (n->nargs % 2)
		return perr_col(p, n->col, "Switch expects source, defaultValue, then key/value pairs: "
				"got %zu arguments, a key has no value", n->nargs);
	return 0;
}

/* A condition: null reads as False; anything but True/False is an error. */
static int arg_bool(struct ectx *c, const struct node *n, size_t i, const char *what, bool *out)
{
	char *s;
	int rc = arg_str(c, n, i, &s);
	if (rc)
		return rc;
	int b = s ? parse_bool(s) : 0;
	if (b < 0)
		rc = efail(c, n, "%s is not True or False: \"%s\"", what, s);
	free(s);
	*out = b > 0;
	return rc;
}

static int f_iif(struct ectx *c, const struct node *n, struct expr_value *out)
{
	bool b;
	int rc = arg_bool(c, n, 0, "condition", &b);
	return rc ? rc : arg_val(c, n, b ? 1 : 2, out);
}

static int f_not(struct ectx *c, const struct node *n, struct expr_value *out)
{
	bool b;
	int rc = arg_bool(c, n, 0, "value", &b);
	return rc ? rc : vpush_bool(out, !b);
}

static int f_cbool(struct ectx *c, const struct node *n, struct expr_value *out)
{
	char *s;
	long long v;
	int rc = arg_str(c, n, 0, &s);
	if (rc)
		return rc;
	int b = s ? parse_bool(s) : 0;
	if (b < 0 && parse_ll(s, &v) == 0)
		b = v != 0;
	rc = b < 0 ? efail(c, n, "\"%s\" is neither True/False nor a number", s) : vpush_bool(out, b);
	free(s);
	return rc;
}

enum { P_NULL, P_NULLOREMPTY, P_PRESENT };

static int presence(struct ectx *c, const struct node *n, int what, struct expr_value *out)
{
	struct expr_value v;
	int rc = arg_val(c, n, 0, &v);
	if (rc)
		return rc;
	bool empty = true;
	for (size_t i = 0; i < v.n && empty; i++)
		empty = v.v[i][0] == '\0';
	bool r = what == P_NULL ? v.n == 0 : what == P_NULLOREMPTY ? empty : !empty;
	expr_value_free(&v);
	return vpush_bool(out, r);
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
		rc = arg_val(c, n, i, out);
	}
	return rc;
}

static int f_bitand(struct ectx *c, const struct node *n, struct expr_value *out)
{
	long long a, b;
	int rc = arg_int(c, n, 0, "value1", &a);
	if (rc || (rc = arg_int(c, n, 1, "value2", &b)))
		return rc;
	char num[32];
	snprintf(num, sizeof num, "%lld", a & b);
	return vpush(out, strdup(num));
}

/* ---- FormatDateTime: .NET custom date/time format strings ---- */

static const char *const month_names[12] = {
	"January", "February", "March", "April", "May", "June", "July",
	"August", "September", "October", "November", "December",
};
static const char *const day_names[7] = {
	"Sunday", "Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday",
};

struct dt {
	int year, mon, day, hour, min, sec;
	long frac;     /* 100 ns ticks, 0..9999999 */
	int off;       /* minutes east of UTC, when has_off */
	bool has_off;
	int pm;        /* -1 none, 0 AM, 1 PM */
	bool h12;
};

/* One token of a format: a specifier letter repeated `count` times, or
 * literal text (ch == 0). */
struct ftok {
	char ch;
	int count;
	const char *lit;
	size_t litlen;
};

/* Read the token at f; returns its length in the format, 0 at the end, or
 * -1 with *why set for a format .NET would reject or this does not support. */
static int ftok_next(const char *f, struct ftok *t, const char **why)
{
	static const char spec[] = "yMdHhmsfFtzK";
	static const int maxcount[] = {5, 4, 4, 2, 2, 2, 2, 7, 7, 2, 3, 1};
	size_t i = 0;

	*t = (struct ftok){0};
	if (!f[0])
		return 0;
	if (f[0] == '%' && f[1] && strchr(spec, f[1]))
		i = 1; /* "%d": one specifier on its own */
	const char *s = strchr(spec, f[i]);
	if (f[i] && s) {
		int k = 0;
		while (f[i + (size_t)k] == f[i])
			k++;
		if (k > maxcount[s - spec]) {
			*why = "a specifier is repeated more often than .NET allows";
			return -1;
		}
		t->ch = f[i];
		t->count = k;
		return (int)i + k;
	}
	if (f[0] == 'g') {
		*why = "the era specifier 'g' is not supported";
		return -1;
	}
	if (f[0] == '\'' || f[0] == '"') {
		const char *end = strchr(f + 1, f[0]);
		if (!end) {
			*why = "a quoted literal is not closed";
			return -1;
		}
		t->lit = f + 1;
		t->litlen = (size_t)(end - f - 1);
		return (int)(end - f) + 1;
	}
	if (f[0] == '\\' && f[1]) {
		t->lit = f + 1;
		t->litlen = 1;
		return 2;
	}
	t->lit = f;
	t->litlen = 1;
	return 1;
}

/* Exactly `min`..`max` digits. */
static bool read_num(const char **s, int min, int max, int *out)
{
	int v = 0, k = 0;
	while (k < max && digit((*s)[k]))
		v = v * 10 + ((*s)[k++] - '0');
	if (k < min)
		return false;
	*s += k;
	*out = v;
	return true;
}

/* A name from `names` (or its 3-letter abbreviation), any case. */
static bool read_name(const char **s, const char *const *names, int n, bool full, int *out)
{
	for (int i = 0; i < n; i++) {
		size_t len = full ? strlen(names[i]) : 3;
		if (strncasecmp(*s, names[i], len) == 0) {
			*s += len;
			*out = i;
			return true;
		}
	}
	return false;
}

/* "+hh", "+hh:mm", "Z" */
static bool read_offset(const char **s, bool colon_mm, struct dt *d)
{
	int h, m = 0;
	if (**s == 'Z') {
		(*s)++;
		d->has_off = true;
		d->off = 0;
		return true;
	}
	if (**s != '+' && **s != '-')
		return false;
	int sign = **s == '-' ? -1 : 1;
	const char *p = *s + 1;
	if (!read_num(&p, 1, 2, &h))
		return false;
	if (colon_mm && !(*p == ':' && (p++, read_num(&p, 2, 2, &m))))
		return false;
	*s = p;
	d->has_off = true;
	d->off = sign * (h * 60 + m);
	return true;
}

static bool parse_tok(const char **s, const struct ftok *t, struct dt *d)
{
	int v, n = t->count;
	switch (t->ch) {
	case 'y':
		if (n <= 2) {
			if (!read_num(s, n, 2, &v))
				return false;
			d->year = v < 50 ? 2000 + v : 1900 + v; /* .NET's 2049 cut-off */
			return true;
		}
		return read_num(s, n < 4 ? 4 : n, n < 4 ? 4 : n, &d->year);
	case 'M':
		if (n >= 3) {
			if (!read_name(s, month_names, 12, n == 4, &v))
				return false;
			d->mon = v + 1;
			return true;
		}
		return read_num(s, n, 2, &d->mon);
	case 'd':
		if (n >= 3) /* a day name carries nothing the date does not */
			return read_name(s, day_names, 7, n == 4, &v);
		return read_num(s, n, 2, &d->day);
	case 'H':
		return read_num(s, n, 2, &d->hour);
	case 'h':
		d->h12 = true;
		return read_num(s, n, 2, &d->hour);
	case 'm':
		return read_num(s, n, 2, &d->min);
	case 's':
		return read_num(s, n, 2, &d->sec);
	case 'f':
	case 'F': {
		/* Any 1..7 digits whatever the count (0..7 for F): directory
		 * servers vary in the precision they write. */
		int k = 0;
		long f = 0;
		while (k < 7 && digit((*s)[k]))
			f = f * 10 + ((*s)[k++] - '0');
		if (k == 0 && t->ch == 'f')
			return false;
		for (int i = k; i < 7; i++)
			f *= 10;
		*s += k;
		d->frac = f;
		return true;
	}
	case 't':
		if (toupper_ascii((*s)[0]) != 'A' && toupper_ascii((*s)[0]) != 'P')
			return false;
		d->pm = toupper_ascii((*s)[0]) == 'P';
		if (n == 2 && toupper_ascii((*s)[1]) != 'M')
			return false;
		*s += n;
		return true;
	case 'z':
		return read_offset(s, n == 3, d);
	case 'K':
		if (**s == 'Z' || **s == '+' || **s == '-')
			return read_offset(s, true, d);
		return true;
	}
	return false;
}

static bool leap(int y) { return (y % 4 == 0 && y % 100 != 0) || y % 400 == 0; }

static int days_in(int y, int m)
{
	static const int dim[12] = {31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31};
	return m == 2 && leap(y) ? 29 : dim[m - 1];
}

/* Days since 1970-01-01 of a proleptic Gregorian date (H. Hinnant's
 * algorithm, exact for every year). */
static long long days_from_civil(long long y, int m, int d)
{
	y -= m <= 2;
	long long era = (y >= 0 ? y : y - 399) / 400;
	long long yoe = y - era * 400;
	long long doy = (153 * (m > 2 ? m - 3 : m + 9) + 2) / 5 + d - 1;
	long long doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
	return era * 146097 + doe - 719468;
}

static void civil_from_days(long long z, struct dt *d)
{
	z += 719468;
	long long era = (z >= 0 ? z : z - 146096) / 146097;
	long long doe = z - era * 146097;
	long long yoe = (doe - doe / 1460 + doe / 36524 - doe / 146096) / 365;
	long long doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
	long long mp = (5 * doy + 2) / 153;
	d->day = (int)(doy - (153 * mp + 2) / 5 + 1);
	d->mon = (int)(mp < 10 ? mp + 3 : mp - 9);
	d->year = (int)(yoe + era * 400 + (d->mon <= 2));
}

static int weekday(const struct dt *d) /* 0 = Sunday */
{
	long long z = days_from_civil(d->year, d->mon, d->day);
	return (int)(z >= -4 ? (z + 4) % 7 : (z + 5) % 7 + 6);
}

/* .NET reads a one-letter format as a standard format ("d" = short date),
 * which this does not implement: refuse rather than read it as custom. */
static int fmt_check(const char *f, const char **why)
{
	struct ftok t;
	int k;
	if (f[0] && !f[1] && (ident_start(f[0]))) {
		*why = "one-letter (standard) formats are not supported, write a custom format such as \"yyyy-MM-dd\"";
		return -1;
	}
	for (; (k = ftok_next(f, &t, why)) > 0; f += k)
		;
	return k;
}

static int dt_parse(const char *s, const char *fmt, struct dt *d, char *why, size_t whylen)
{
	const char *f = fmt, *bad = "invalid format";
	*d = (struct dt){.year = 1, .mon = 1, .day = 1, .pm = -1};
	for (;;) {
		struct ftok t, next;
		int k = ftok_next(f, &t, &bad);
		if (k < 0) {
			snprintf(why, whylen, "%s", bad);
			return -1;
		}
		if (k == 0)
			break;
		if (!t.ch && t.litlen == 1 && t.lit[0] == '.' && *s != '.') {
			/* "ss.fZ" also reads "...ssZ": a missing fraction is
			 * allowed, with its separator (.NET allows it for F). */
			int k2 = ftok_next(f + k, &next, &bad);
			if (k2 > 0 && (next.ch == 'f' || next.ch == 'F')) {
				f += k + k2;
				continue;
			}
		}
		bool ok = t.ch ? parse_tok(&s, &t, d) : strncmp(s, t.lit, t.litlen) == 0;
		if (!ok) {
			snprintf(why, whylen, "expected '%.*s' at \"%s\"", t.ch ? k : (int)t.litlen,
				 t.ch ? f : t.lit, s);
			return -1;
		}
		if (!t.ch)
			s += t.litlen;
		f += k;
	}
	if (*s) {
		snprintf(why, whylen, "unexpected \"%s\" after the end of the format", s);
		return -1;
	}
	if (d->h12 && d->hour >= 1 && d->hour <= 12)
		d->hour = d->hour % 12 + (d->pm == 1 ? 12 : 0);
	else if (d->h12)
		d->hour = 99;
	const char *range = d->year < 1 ? "year" : d->mon < 1 || d->mon > 12 ? "month"
		: d->day < 1 || d->day > days_in(d->year, d->mon) ? "day"
		: d->hour > 23 ? "hour" : d->min > 59 ? "minute" : d->sec > 59 ? "second" : NULL;
	if (range) {
		snprintf(why, whylen, "%s out of range", range);
		return -1;
	}
	if (d->has_off && d->off) { /* to UTC */
		long long m = days_from_civil(d->year, d->mon, d->day) * 1440 + d->hour * 60 + d->min - d->off;
		long long z = m >= 0 ? m / 1440 : -((-m + 1439) / 1440);
		m -= z * 1440;
		civil_from_days(z, d);
		d->hour = (int)(m / 60);
		d->min = (int)(m % 60);
		if (d->year < 1 || d->year > 9999) {
			snprintf(why, whylen, "year out of range in UTC");
			return -1;
		}
	}
	return 0;
}

static void put_num(struct sbuf *b, int width, long v)
{
	char num[32];
	snprintf(num, sizeof num, "%0*ld", width, v);
	sb_adds(b, num);
}

/* Write d (UTC) with format fmt, already checked by fmt_check. */
static void dt_format(const struct dt *d, const char *fmt, struct sbuf *b)
{
	struct ftok t;
	const char *bad = "invalid format";
	int k;
	for (; (k = ftok_next(fmt, &t, &bad)) > 0; fmt += k) {
		int n = t.count;
		char frac[8];
		switch (t.ch) {
		case 0:
			sb_addn(b, t.lit, t.litlen);
			break;
		case 'y':
			put_num(b, n, n <= 2 ? d->year % 100 : d->year);
			break;
		case 'M':
			if (n >= 3)
				sb_addn(b, month_names[d->mon - 1], n == 3 ? 3 : strlen(month_names[d->mon - 1]));
			else
				put_num(b, n, d->mon);
			break;
		case 'd':
			if (n >= 3)
				sb_addn(b, day_names[weekday(d)], n == 3 ? 3 : strlen(day_names[weekday(d)]));
			else
				put_num(b, n, d->day);
			break;
		case 'H':
			put_num(b, n, d->hour);
			break;
		case 'h':
			put_num(b, n, d->hour % 12 ? d->hour % 12 : 12);
			break;
		case 'm':
			put_num(b, n, d->min);
			break;
		case 's':
			put_num(b, n, d->sec);
			break;
		case 'f':
		case 'F':
			snprintf(frac, sizeof frac, "%07ld", d->frac);
			if (t.ch == 'F')
				while (n > 0 && frac[n - 1] == '0')
					n--;
			sb_addn(b, frac, (size_t)n);
			/* .NET drops the separator of an empty F fraction */
			if (n == 0 && b->len && b->p[b->len - 1] == '.')
				b->p[--b->len] = '\0';
			break;
		case 't':
			sb_addn(b, d->hour < 12 ? "AM" : "PM", (size_t)n);
			break;
		case 'z':
			sb_adds(b, n == 1 ? "+0" : n == 2 ? "+00" : "+00:00");
			break;
		case 'K':
			sb_addc(b, 'Z');
			break;
		}
	}
}

enum { DTS_LEAD = 1, DTS_TRAIL = 2 };

struct fdt {
	const char *in, *out;
	int styles;
};

static int x_fdt(struct ectx *c, const struct node *n, const void *arg, const char *in, struct sbuf *b)
{
	const struct fdt *a = arg;
	const char *s = in, *e = in + strlen(in);
	char why[200];
	struct dt d;
	if (a->styles & DTS_LEAD)
		while (s < e && (*s == ' ' || *s == '\t'))
			s++;
	if (a->styles & DTS_TRAIL)
		while (e > s && (e[-1] == ' ' || e[-1] == '\t'))
			e--;
	char *v = strndup(s, (size_t)(e - s));
	if (!v)
		return -ENOMEM;
	int rc = 0;
	if (dt_parse(v, a->in, &d, why, sizeof why))
		rc = efail(c, n, "\"%s\" does not match inputFormat \"%s\": %s", in, a->in, why);
	else
		dt_format(&d, a->out, b);
	free(v);
	return rc;
}

static int styles_parse(const char *s, int *out)
{
	static const struct { const char *name; int flags; } names[] = {
		{"None", 0}, {"AllowLeadingWhite", DTS_LEAD}, {"AllowTrailingWhite", DTS_TRAIL},
		{"AllowWhiteSpaces", DTS_LEAD | DTS_TRAIL}, {"AllowInnerWhite", 0},
		{"NoCurrentDateDefault", 0}, {"AdjustToUniversal", 0}, {"AssumeLocal", 0},
		{"AssumeUniversal", 0}, {"RoundtripKind", 0},
	};
	*out = 0;
	while (*s) {
		while (*s == ' ' || *s == ',' || *s == '|')
			s++;
		size_t len = 0;
		while (s[len] && s[len] != ' ' && s[len] != ',' && s[len] != '|')
			len++;
		if (!len)
			break;
		size_t i = 0;
		for (; i < sizeof names / sizeof names[0]; i++)
			if (strlen(names[i].name) == len && strncasecmp(s, names[i].name, len) == 0)
				break;
		if (i == sizeof names / sizeof names[0])
			return -1;
		*out |= names[i].flags;
		s += len;
	}
	return 0;
}

/* FormatDateTime(source, dateTimeStyles, inputFormat, outputFormat), or the
 * older FormatDateTime(source, inputFormat, outputFormat). */
static int f_formatdatetime(struct ectx *c, const struct node *n, struct expr_value *out)
{
	size_t fi = n->nargs == 4 ? 2 : 1;
	char *styles = NULL, *in = NULL, *outf = NULL;
	const char *bad = "invalid format";
	struct fdt a = {0};
	int rc = 0;

	if ((fi == 2 && (rc = arg_str(c, n, 1, &styles))) || (rc = arg_str(c, n, fi, &in)) ||
	    (rc = arg_str(c, n, fi + 1, &outf)))
		goto out;
	if (styles && styles_parse(styles, &a.styles))
		rc = efail(c, n, "unknown dateTimeStyles \"%s\"", styles);
	else if (!in || !outf)
		rc = efail(c, n, "%s is null", !in ? "inputFormat" : "outputFormat");
	else if (fmt_check(in, &bad))
		rc = efail(c, n, "inputFormat \"%s\": %s", in, bad);
	else if (fmt_check(outf, &bad))
		rc = efail(c, n, "outputFormat \"%s\": %s", outf, bad);
	if (rc)
		goto out;
	a.in = in;
	a.out = outf;
	rc = map_arg(c, n, 0, x_fdt, &a, out);
out:
	free(styles);
	free(in);
	free(outf);
	return rc;
}

/* Formats and styles given as literals are checked when the configuration
 * is loaded, not at the first user. */
static int check_fdt(struct parser *p, struct node *n)
{
	size_t fi = n->nargs == 4 ? 2 : 1;
	const char *bad = "invalid format";
	int st;
	if (fi == 2 && literal(n->args[1]) && styles_parse(n->args[1]->text, &st))
		return perr_col(p, n->args[1]->col, "FormatDateTime: unknown dateTimeStyles \"%s\"",
				n->args[1]->text);
	for (size_t i = fi; i < fi + 2; i++)
		if (literal(n->args[i]) && fmt_check(n->args[i]->text, &bad))
			return perr_col(p, n->args[i]->col, "FormatDateTime: %s \"%s\": %s",
					i == fi ? "inputFormat" : "outputFormat", n->args[i]->text, bad);
	return 0;
}

/* ---- The function table and the entry points ---- */

#define INT(i) (1u << (i))

static const struct func funcs[] = {
	{"Append", 2, 2, 0, NULL, f_append},
	{"BitAnd", 2, 2, INT(0) | INT(1), NULL, f_bitand},
	{"CBool", 1, 1, 0, NULL, f_cbool},
	{"Coalesce", 1, ARGS_MANY, 0, NULL, f_coalesce},
	{"Count", 1, 1, 0, NULL, f_count},
	{"CStr", 1, 1, 0, NULL, f_cstr},
	{"DNComponent", 2, 2, INT(0), NULL, f_dncomponent},
	{"FormatDateTime", 3, 4, 0, check_fdt, f_formatdatetime},
	{"IIF", 3, 3, 0, NULL, f_iif},
	{"InStr", 2, 4, INT(2), NULL, f_instr},
	{"IsNull", 1, 1, 0, NULL, f_isnull},
	{"IsNullOrEmpty", 1, 1, 0, NULL, f_isnullorempty},
	{"IsPresent", 1, 1, 0, NULL, f_ispresent},
	{"Item", 2, 2, INT(1), NULL, f_item},
	{"Join", 2, ARGS_MANY, 0, NULL, f_join},
	{"Left", 2, 2, INT(1), NULL, f_left},
	{"Mid", 3, 3, INT(1) | INT(2), NULL, f_mid},
	{"NormalizeDiacritics", 1, 1, 0, NULL, f_normalizediacritics},
	{"Not", 1, 1, 0, NULL, f_not},
	{"RemoveDuplicates", 1, 1, 0, NULL, f_removeduplicates},
	{"Replace", 5, 7, 0, check_replace, f_replace},
	{"Split", 2, 2, 0, NULL, f_split},
	{"StripSpaces", 1, 1, 0, NULL, f_stripspaces},
	{"Switch", 4, ARGS_MANY, 0, check_switch, f_switch},
	{"ToLower", 1, 2, 0, NULL, f_tolower},
	{"ToUpper", 1, 2, 0, NULL, f_toupper},
	{"Trim", 1, 1, 0, NULL, f_trim},
	{"Word", 3, 3, INT(1), NULL, f_word},
};

static const struct func *func_find(const char *name, size_t len)
{
	for (size_t i = 0; i < sizeof funcs / sizeof funcs[0]; i++)
		if (strlen(funcs[i].name) == len && strncasecmp(funcs[i].name, name, len) == 0)
			return &funcs[i];
	return NULL;
}

int expr_eval(const struct expr *e, expr_lookup_fn lookup, void *ctx,
	      struct expr_value *out, char *errmsg, size_t errlen)
{
	struct ectx c = {.lookup = lookup, .ctx = ctx, .err = errmsg, .errlen = errlen};
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
		snprintf(errmsg, errlen, "column %u: %s", e->root->col,
			 rc == -ENOMEM ? "out of memory" : "evaluation failed");
	return rc;
}
