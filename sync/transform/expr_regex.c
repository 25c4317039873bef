/*
 * sync/transform/expr_regex.c -- regular expressions (PCRE2) and Replace.
 *
 * Entra's Replace takes .NET regular expressions. PCRE2 reads almost all of
 * that syntax the same way: named groups (?<n>...) (?'n'...), look-ahead and
 * look-behind, lazy and atomic forms, \d \w \s (also inside brackets), \p{..},
 * \uXXXX (PCRE2_ALT_BSUX), inline options (?imnsx). Patterns are compiled in
 * UTF mode with Unicode classes (PCRE2_UCP), as .NET matches them. Where the
 * two engines would read the same text differently, the pattern is refused
 * (rx_scan) rather than silently matching something else; the rest of what
 * differs is listed in docs/mapping-expressions.md.
 *
 * Group numbers follow .NET: unnamed groups first, then named ones (PCRE2
 * numbers them left to right; struct rx maps one to the other). The
 * replacement syntax ($1, ${name}, $&, $`, $', $+, $_, $$) is .NET's, expanded
 * here rather than by pcre2_substitute, whose syntax and numbering differ.
 *
 * Bounds: a pattern is at most RX_MAX_PATTERN bytes; PCRE2's compiled size
 * limit stops nested repetitions from growing; every match attempt is bounded
 * by RX_MATCH_LIMIT backtracking steps, RX_DEPTH_LIMIT nested backtracking
 * points and RX_HEAP_LIMIT KiB, so a catastrophic pattern fails the value with
 * a message instead of hanging the agent.
 */
#define PCRE2_CODE_UNIT_WIDTH 8

#include <errno.h>
#include <pcre2.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "sync/transform/expr_impl.h"

#define RX_MAX_PATTERN 1024     /* bytes */
#define RX_NEST_LIMIT 64        /* nested parentheses */
#define RX_MATCH_LIMIT 1000000  /* backtracking steps per match attempt (~10 ms) */
#define RX_DEPTH_LIMIT 100000   /* nested backtracking points */
#define RX_HEAP_LIMIT 16384     /* KiB of backtracking memory per match attempt */
#define RX_CACHE_MAX 16         /* computed patterns kept compiled, per call site */

#define RX_OPTIONS (PCRE2_UTF | PCRE2_UCP | PCRE2_MATCH_INVALID_UTF | PCRE2_ALT_BSUX | \
		    PCRE2_NEVER_BACKSLASH_C)

struct rx {
	pcre2_code *code;
	pcre2_match_context *mctx; /* the limits; read-only, shared by threads */
	char *pat;
	uint32_t *num;             /* [nnum]: .NET group number -> PCRE2 group number */
	uint32_t nnum;             /* groups + 1 (group 0 is the match) */
};

static int rx_err(char *err, size_t errlen, const char *fmt, ...) PRINTF(3, 4);
static int rx_err(char *err, size_t errlen, const char *fmt, ...)
{
	if (err && errlen) {
		va_list ap;
		va_start(ap, fmt);
		vsnprintf(err, errlen, fmt, ap);
		va_end(ap);
	}
	return -EINVAL;
}

void ex_rx_free(struct rx *rx)
{
	if (!rx)
		return;
	pcre2_code_free(rx->code);
	pcre2_match_context_free(rx->mctx);
	free(rx->pat);
	free(rx->num);
	free(rx);
}

/* ---- What PCRE2 would read differently: found before compiling ---- */

/* After a backslash: does this escape refer to a group by number? (\1, \g2,
 * \g{-1}, \k<1>) */
static bool num_escape(const char *e)
{
	if (*e >= '1' && *e <= '9')
		return true;
	if (*e != 'g' && *e != 'k')
		return false;
	e++;
	if (*e == '{' || *e == '<' || *e == '\'')
		e++;
	else if (e[-1] == 'k')
		return false;
	return ex_digit(*e) || *e == '-' || *e == '+';
}

/* A bracket expression at p[*i] == '['. .NET's class subtraction
 * [a-z-[aeiou]] reads in PCRE2 as a class followed by a literal ']'. */
static int scan_class(const char *p, size_t *i, char *err, size_t errlen)
{
	size_t j = *i + 1;
	if (p[j] == '^')
		j++;
	if (p[j] == ']') /* a ']' first is literal */
		j++;
	while (p[j] && p[j] != ']') {
		if (p[j] == '\\') {
			j += p[j + 1] ? 2 : 1;
			continue;
		}
		if (p[j] == '[' && p[j + 1] == ':') { /* [:alpha:] */
			const char *end = strstr(p + j + 2, ":]");
			if (end) {
				j = (size_t)(end - p) + 2;
				continue;
			}
		}
		if (p[j] == '-' && p[j + 1] == '[')
			return rx_err(err, errlen, "character class subtraction '-[' at offset %zu is not supported",
				      ex_utf8_count(p, j));
		j++;
	}
	*i = p[j] ? j + 1 : j;
	return 0;
}

/* Refuse .NET syntax PCRE2 would misread; set *numref when the pattern
 * refers to a group by number. A light scan, not a parser: it may only
 * refuse more than needed, never pass what it looks for. */
static int rx_scan(const char *p, bool *numref, char *err, size_t errlen)
{
	size_t i = 0;
	*numref = false;
	while (p[i]) {
		if (p[i] == '\\') {
			if (p[i + 1] == 'Q') { /* \Q...\E quotes */
				const char *end = strstr(p + i + 2, "\\E");
				i = end ? (size_t)(end - p) + 2 : strlen(p);
				continue;
			}
			if (num_escape(p + i + 1))
				*numref = true;
			i += p[i + 1] ? 2 : 1;
			continue;
		}
		if (p[i] == '[') {
			int rc = scan_class(p, &i, err, errlen);
			if (rc)
				return rc;
			continue;
		}
		if (p[i] == '(' && p[i + 1] == '?') {
			const char *q = p + i + 2;
			if (*q == '#') { /* (?# comment ) */
				const char *end = strchr(q, ')');
				i = end ? (size_t)(end - p) + 1 : strlen(p);
				continue;
			}
			if (ex_digit(*q) || ((*q == '+' || *q == '-') && ex_digit(q[1])) ||
			    (*q == '(' && (ex_digit(q[1]) || q[1] == '+' || q[1] == '-')))
				*numref = true; /* (?1) (?-1) (?(1)yes|no) */
			if ((*q == '<' || *q == '\'') && q[1] != '=' && q[1] != '!') {
				size_t k = 1;
				while (ex_ident_char(q[k]))
					k++;
				if (q[k] == '-')
					return rx_err(err, errlen, "balancing group '(?%c%.*s' at offset %zu is not supported",
						      *q, (int)k, q + 1, ex_utf8_count(p, i));
			}
		}
		i++;
	}
	return 0;
}

/* ---- Compiling ---- */

/* .NET group numbering: 0, the unnamed groups in order, then the named ones. */
static void rx_numbering(struct rx *rx)
{
	uint32_t ncap = 0, nnames = 0, esize = 0;
	PCRE2_SPTR table = NULL;
	pcre2_pattern_info(rx->code, PCRE2_INFO_CAPTURECOUNT, &ncap);
	pcre2_pattern_info(rx->code, PCRE2_INFO_NAMECOUNT, &nnames);
	pcre2_pattern_info(rx->code, PCRE2_INFO_NAMEENTRYSIZE, &esize);
	pcre2_pattern_info(rx->code, PCRE2_INFO_NAMETABLE, &table);
	bool *named = xcalloc(ncap + 1, sizeof *named);
	for (uint32_t i = 0; i < nnames; i++) {
		uint32_t g = ((uint32_t)table[i * esize] << 8) | table[i * esize + 1];
		if (g <= ncap)
			named[g] = true;
	}
	rx->num = xmalloc((ncap + 1) * sizeof *rx->num);
	rx->num[rx->nnum++] = 0;
	for (uint32_t g = 1; g <= ncap; g++)
		if (!named[g])
			rx->num[rx->nnum++] = g;
	for (uint32_t g = 1; g <= ncap; g++)
		if (named[g])
			rx->num[rx->nnum++] = g;
	free(named);
}

/* Compile .NET-style `pat`. On error the message (without column) is in err. */
static int rx_compile(const char *pat, struct rx **out, char *err, size_t errlen)
{
	size_t len = strlen(pat);
	bool numref;
	int ec;
	PCRE2_SIZE off;

	*out = NULL;
	if (len > RX_MAX_PATTERN)
		return rx_err(err, errlen, "pattern of %zu bytes, over the limit of %d", len, RX_MAX_PATTERN);
	int rc = rx_scan(pat, &numref, err, errlen);
	if (rc)
		return rc;
	pcre2_compile_context *cc = xcheck(pcre2_compile_context_create(NULL));
	pcre2_set_max_pattern_length(cc, RX_MAX_PATTERN);
	pcre2_set_parens_nest_limit(cc, RX_NEST_LIMIT);
	pcre2_set_newline(cc, PCRE2_NEWLINE_LF); /* .NET: '.', '$' and (?m) know only \n */
	pcre2_code *code = pcre2_compile((PCRE2_SPTR)pat, len, RX_OPTIONS, &ec, &off, cc);
	pcre2_compile_context_free(cc);
	if (!code) {
		char msg[160];
		if (ec == PCRE2_ERROR_HEAP_FAILED)
			xoom("pcre2_compile");
		pcre2_get_error_message(ec, (PCRE2_UCHAR *)msg, sizeof msg);
		return rx_err(err, errlen, "%s at offset %zu", msg, ex_utf8_count(pat, off < len ? off : len));
	}

	struct rx *rx = xcalloc(1, sizeof *rx);
	rx->code = code;
	rx->pat = xstrdup(pat);
	rx_numbering(rx);
	if (numref)
		for (uint32_t k = 0; k < rx->nnum; k++)
			if (rx->num[k] != k) {
				ex_rx_free(rx);
				return rx_err(err, errlen, "a group is referred to by number in a pattern where a named "
					      "group comes before an unnamed one, which .NET and PCRE2 number differently; "
					      "refer to it by name (\\k<name>)");
			}
	rx->mctx = xcheck(pcre2_match_context_create(NULL));
	pcre2_set_match_limit(rx->mctx, RX_MATCH_LIMIT);
	pcre2_set_depth_limit(rx->mctx, RX_DEPTH_LIMIT);
	pcre2_set_heap_limit(rx->mctx, RX_HEAP_LIMIT);
	*out = rx;
	return 0;
}

/* PCRE2 number of group `ref` (a .NET number or a name), or -1. */
static long rx_find(const struct rx *rx, const char *ref, size_t len)
{
	if (len && ex_digit(ref[0])) {
		size_t n = 0;
		for (size_t i = 0; i < len; i++) {
			if (!ex_digit(ref[i]) || n > rx->nnum)
				return -1;
			n = n * 10 + (size_t)(ref[i] - '0');
		}
		return n < rx->nnum ? (long)rx->num[n] : -1;
	}
	char name[64];
	if (len == 0 || len >= sizeof name)
		return -1;
	memcpy(name, ref, len);
	name[len] = '\0';
	int g = pcre2_substring_number_from_name(rx->code, (PCRE2_SPTR)name);
	return g > 0 ? g : -1;
}

/* ---- Matching ---- */

/* Match from byte `from` of s (len bytes; the text before `from` is seen by
 * look-behind, ^ and \b). 1 match, 0 none, -EINVAL with err set. */
static int rx_match(const struct rx *rx, const char *s, size_t len, size_t from,
		    pcre2_match_data *md, char *err, size_t errlen)
{
	int rc = pcre2_match(rx->code, (PCRE2_SPTR)s, len, from, 0, md, rx->mctx);
	if (rc >= 0)
		return 1;
	switch (rc) {
	case PCRE2_ERROR_NOMATCH:
		return 0;
	case PCRE2_ERROR_NOMEMORY:
		xoom("pcre2_match");
	case PCRE2_ERROR_MATCHLIMIT:
		return rx_err(err, errlen, "matching gave up after %d backtracking steps on a value of %zu "
			      "characters (catastrophic backtracking: make the pattern more specific)",
			      RX_MATCH_LIMIT, ex_utf8_count(s, len));
	case PCRE2_ERROR_DEPTHLIMIT:
		return rx_err(err, errlen, "matching gave up: backtracking nested deeper than %d on a value "
			      "of %zu characters", RX_DEPTH_LIMIT, ex_utf8_count(s, len));
	case PCRE2_ERROR_HEAPLIMIT:
		return rx_err(err, errlen, "matching gave up: it needs more than %d KiB on a value of %zu "
			      "characters", RX_HEAP_LIMIT, ex_utf8_count(s, len));
	default: {
		char msg[160];
		pcre2_get_error_message(rc, (PCRE2_UCHAR *)msg, sizeof msg);
		return rx_err(err, errlen, "matching failed: %s", msg);
	}
	}
}

static void put_group(struct sbuf *b, const char *s, const PCRE2_SIZE *ov, long g)
{
	if (g >= 0 && ov[2 * g] != PCRE2_UNSET && ov[2 * g + 1] > ov[2 * g])
		sb_addn(b, s + ov[2 * g], ov[2 * g + 1] - ov[2 * g]);
}

/* Append the .NET replacement pattern `rep` for one match of s (len bytes):
 * $1 and ${1} (.NET numbers), ${name}, $0 and $& (the match), $` (the text
 * before it), $' (after it), $+ (the last group), $_ (all of s), $$ (a
 * dollar). A reference to a group that does not exist is copied literally,
 * as .NET does. */
static void rx_expand(const struct rx *rx, const char *rep, const char *s, size_t len,
		      const PCRE2_SIZE *ov, struct sbuf *b)
{
	for (const char *p = rep; *p;) {
		const char *ref = NULL;
		size_t rlen = 0, skip = 2;
		long g = -1;

		if (p[0] != '$') {
			const char *d = strchr(p, '$');
			size_t n = d ? (size_t)(d - p) : strlen(p);
			sb_addn(b, p, n);
			p += n;
			continue;
		}
		switch (p[1]) {
		case '$':
			sb_addc(b, '$');
			p += 2;
			continue;
		case '`':
			sb_addn(b, s, ov[0]);
			p += 2;
			continue;
		case '\'':
			sb_addn(b, s + ov[1], len - ov[1]);
			p += 2;
			continue;
		case '_':
			sb_addn(b, s, len);
			p += 2;
			continue;
		case '&':
			g = 0;
			break;
		case '+':
			if (rx->nnum > 1)
				put_group(b, s, ov, (long)rx->num[rx->nnum - 1]);
			p += 2;
			continue;
		case '{': {
			const char *end = strchr(p + 2, '}');
			if (end) {
				ref = p + 2;
				rlen = (size_t)(end - ref);
				skip = rlen + 3;
			}
			break;
		}
		default:
			if (ex_digit(p[1])) {
				ref = p + 1;
				while (ex_digit(ref[rlen]))
					rlen++;
				skip = rlen + 1;
			}
		}
		if (ref)
			g = rx_find(rx, ref, rlen);
		if (g < 0) {
			sb_addc(b, *p++);
			continue;
		}
		put_group(b, s, ov, g);
		p += skip;
	}
}

/* Replace every match of rx in s, like .NET Regex.Replace: group 0 replaces
 * whole matches, group g > 0 only the span of that group in each match (a
 * match whose group took no part, or lies outside it in a look-around, is
 * kept). 0, or -EINVAL with err set. */
static int rx_replace(const struct rx *rx, const char *s, long g, const char *rep,
		      struct sbuf *b, char *err, size_t errlen)
{
	size_t len = strlen(s), p = 0;
	pcre2_match_data *md = xcheck(pcre2_match_data_create_from_pattern(rx->code, NULL));
	int rc = 0;

	while (p <= len) {
		rc = rx_match(rx, s, len, p, md, err, errlen);
		if (rc <= 0)
			break;
		rc = 0;
		const PCRE2_SIZE *ov = pcre2_get_ovector_pointer(md);
		size_t so = ov[0] < p ? p : ov[0], eo = ov[1] < so ? so : ov[1];
		if (g == 0) {
			sb_addn(b, s + p, so - p);
			rx_expand(rx, rep, s, len, ov, b);
		} else if (ov[2 * g] == PCRE2_UNSET || ov[2 * g] < so || ov[2 * g + 1] > eo ||
			   ov[2 * g + 1] < ov[2 * g]) {
			sb_addn(b, s + p, eo - p);
		} else {
			sb_addn(b, s + p, ov[2 * g] - p);
			rx_expand(rx, rep, s, len, ov, b);
			sb_addn(b, s + ov[2 * g + 1], eo - ov[2 * g + 1]);
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
		size_t k = ex_utf8_next(s + so, len - so, &cp);
		sb_addn(b, s + so, k);
		p = so + k;
	}
	if (!rc && p <= len)
		sb_addn(b, s + p, len - p);
	pcre2_match_data_free(md);
	return rc;
}

/* ---- Patterns computed at run time ---- */

/* The patterns one Replace call site has compiled, kept until the
 * expression is freed: an attribute that holds a pattern usually holds the
 * same few. Entries are never replaced, so a pointer taken under the lock
 * stays valid without it. */
struct rxcache {
	pthread_mutex_t mu;
	size_t n;
	struct rx *rx[RX_CACHE_MAX];
};

static struct rxcache *rxcache_new(void)
{
	struct rxcache *rc = xcalloc(1, sizeof *rc);
	pthread_mutex_init(&rc->mu, NULL);
	return rc;
}

void ex_rxcache_free(struct rxcache *rc)
{
	if (!rc)
		return;
	for (size_t i = 0; i < rc->n; i++)
		ex_rx_free(rc->rx[i]);
	pthread_mutex_destroy(&rc->mu);
	free(rc);
}

static struct rx *rxcache_find(struct rxcache *rc, const char *pat)
{
	for (size_t i = 0; i < rc->n; i++)
		if (strcmp(rc->rx[i]->pat, pat) == 0)
			return rc->rx[i];
	return NULL;
}

/* The compiled form of `pat`; *own when the caller must free it (the cache
 * is full). */
static int rxcache_get(struct rxcache *rc, const char *pat, struct rx **out, bool *own,
		       char *err, size_t errlen)
{
	struct rx *rx, *mine;
	*own = false;
	pthread_mutex_lock(&rc->mu);
	rx = rxcache_find(rc, pat);
	pthread_mutex_unlock(&rc->mu);
	if (rx) {
		*out = rx;
		return 0;
	}
	int r = rx_compile(pat, &mine, err, errlen); /* outside the lock */
	if (r)
		return r;
	pthread_mutex_lock(&rc->mu);
	rx = rxcache_find(rc, pat); /* another thread may have been first */
	if (!rx && rc->n < RX_CACHE_MAX)
		rc->rx[rc->n++] = rx = mine;
	pthread_mutex_unlock(&rc->mu);
	if (!rx) {
		rx = mine;
		*own = true;
	} else if (rx != mine) {
		ex_rx_free(mine);
	}
	*out = rx;
	return 0;
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

/* "\"pattern\"" for a message, shortened when long. */
static void quote_pat(const char *pat, char *buf, size_t len)
{
	size_t n = strlen(pat);
	if (n <= 60)
		snprintf(buf, len, "\"%s\"", pat);
	else
		snprintf(buf, len, "\"%.*s...\"", (int)ex_utf8_skip(pat, n, 57), pat);
}

static int x_replace(struct ectx *c, const struct node *n, const void *arg, const char *in, struct sbuf *b)
{
	const struct repl *r = arg;
	if (r->rx) {
		char buf[200], q[80];
		if (rx_replace(r->rx, in, r->group, r->rep, b, buf, sizeof buf) == 0)
			return 0;
		quote_pat(r->rx->pat, q, sizeof q);
		return ex_efail(c, n, "regexPattern %s: %s", q, buf);
	}
	if (r->tmpl)
		str_replace(r->rep, r->old, in, b);
	else
		str_replace(in, r->old, r->rep, b);
	return 0;
}

int ex_check_replace(struct parser *p, struct node *n)
{
	bool old = ex_given(n, 1), re = ex_given(n, 2), grp = ex_given(n, 3), rep = ex_given(n, 4),
	     rattr = ex_given(n, 5), tmpl = ex_given(n, 6);
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
		return ex_perr_col(p, n->col, "Replace: %s", why);
	if (!re)
		return 0;
	const struct node *pat = n->args[2];
	if (!ex_literal(pat)) { /* computed: compiled at evaluation, then kept */
		n->rxc = rxcache_new();
		return 0;
	}

	char buf[200];
	if (rx_compile(pat->text, &n->rx, buf, sizeof buf))
		return ex_perr_col(p, pat->col, "Replace: regexPattern: %s", buf);
	if (grp && ex_literal(n->args[3]) &&
	    rx_find(n->rx, n->args[3]->text, strlen(n->args[3]->text)) < 0)
		return ex_perr_col(p, n->args[3]->col, "Replace: regexGroupName \"%s\" is not a group of the pattern",
				   n->args[3]->text);
	return 0;
}

/* Regex form with replacementAttributeName: the source when it has a value,
 * else group `g` of the first match in each value of the other attribute.
 * An empty string is no value: Microsoft's example 5 gives telephoneNumber
 * = "" and expects the mobile number. */
static int replace_fallback(struct ectx *c, const struct node *n, const struct rx *rx,
			    long g, struct expr_value *src, struct expr_value *out)
{
	bool value = false;
	for (size_t i = 0; i < src->n && !value; i++)
		value = src->v[i][0] != '\0';
	if (value) {
		ex_vappend(out, src);
		return 0;
	}
	struct expr_value alt;
	int rc = ex_arg_val(c, n, 5, &alt);
	pcre2_match_data *md = rc ? NULL : xcheck(pcre2_match_data_create_from_pattern(rx->code, NULL));
	for (size_t k = 0; k < alt.n && !rc; k++) {
		char buf[200], q[80];
		const char *s = alt.v[k];
		int m = rx_match(rx, s, strlen(s), 0, md, buf, sizeof buf);
		const PCRE2_SIZE *ov = pcre2_get_ovector_pointer(md);
		if (m > 0 && ov[2 * g] != PCRE2_UNSET && ov[2 * g + 1] >= ov[2 * g]) {
			ex_vpush_n(out, s + ov[2 * g], ov[2 * g + 1] - ov[2 * g]);
		} else if (m < 0) {
			quote_pat(rx->pat, q, sizeof q);
			rc = ex_efail(c, n, "regexPattern %s: %s", q, buf);
		}
	}
	pcre2_match_data_free(md);
	expr_value_free(&alt);
	return rc;
}

int ex_f_replace(struct ectx *c, const struct node *n, struct expr_value *out)
{
	struct repl r = {0};
	struct rx *own = NULL;
	char *old = NULL, *rep = NULL, *pat = NULL, *grp = NULL;
	struct expr_value src = {0};
	int rc = 0;

	if (ex_given(n, 1)) { /* oldValue form */
		r.tmpl = ex_given(n, 6);
		if ((rc = ex_arg_str(c, n, 1, &old)) || (rc = ex_arg_str(c, n, r.tmpl ? 6 : 4, &rep)))
			goto out;
		if (!old || !*old) {
			rc = ex_efail(c, n, "oldValue is empty");
			goto out;
		}
		r.old = old;
		r.rep = rep ? rep : "";
		rc = ex_map_arg(c, n, 0, x_replace, &r, out);
		goto out;
	}
	r.rx = n->rx;
	if (!r.rx) { /* a pattern computed at run time */
		char buf[200];
		struct rx *rx;
		bool mine;
		if ((rc = ex_arg_str(c, n, 2, &pat)))
			goto out;
		if (!pat) {
			rc = ex_efail(c, n, "regexPattern is null");
			goto out;
		}
		if (rxcache_get(n->rxc, pat, &rx, &mine, buf, sizeof buf)) {
			rc = ex_efail(c, n, "regexPattern: %s", buf);
			goto out;
		}
		r.rx = rx;
		if (mine)
			own = rx;
	}
	if (ex_given(n, 3)) {
		if ((rc = ex_arg_str(c, n, 3, &grp)))
			goto out;
		r.group = grp ? rx_find(r.rx, grp, strlen(grp)) : -1;
		if (r.group < 0) {
			rc = ex_efail(c, n, "regexGroupName \"%s\" is not a group of the pattern", grp ? grp : "");
			goto out;
		}
	}
	if (ex_given(n, 5)) {
		if (!(rc = ex_arg_val(c, n, 0, &src)))
			rc = replace_fallback(c, n, r.rx, r.group, &src, out);
		goto out;
	}
	if ((rc = ex_arg_str(c, n, 4, &rep)))
		goto out;
	r.rep = rep ? rep : "";
	rc = ex_map_arg(c, n, 0, x_replace, &r, out);
out:
	expr_value_free(&src);
	ex_rx_free(own);
	free(old);
	free(rep);
	free(pat);
	free(grp);
	return rc;
}
