/*
 * sync/source/ldap_poll_cursor.c -- the polling source's cursor: the
 * modifyTimestamp second of each scope with the entries delivered at that
 * second, its text form, and GeneralizedTime (ldap_poll.h).
 */
#include <errno.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/xalloc.h"
#include "sync/source/ldap_poll.h"

#define CURSOR_VERSION "v1"

static const char *const scope_key[2] = {"users", "groups"};

/* ---- GeneralizedTime (RFC 4517 §3.3.13) ----------------------------------- */

/* Days from 1970-01-01 to y-m-d in the proleptic Gregorian calendar. */
static int64_t days_from_civil(int64_t y, unsigned m, unsigned d)
{
	y -= m <= 2;
	const int64_t era = (y >= 0 ? y : y - 399) / 400;
	const unsigned yoe = (unsigned)(y - era * 400);
	const unsigned doy = (153 * (m + (m > 2 ? -3 : 9)) + 2) / 5 + d - 1;
	const unsigned doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
	return era * 146097 + (int64_t)doe - 719468;
}

static void civil_from_days(int64_t z, int *y, unsigned *m, unsigned *d)
{
	z += 719468;
	const int64_t era = (z >= 0 ? z : z - 146096) / 146097;
	const unsigned doe = (unsigned)(z - era * 146097);
	const unsigned yoe = (doe - doe / 1460 + doe / 36524 - doe / 146096) / 365;
	const unsigned doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
	const unsigned mp = (5 * doy + 2) / 153;
	*d = doy - (153 * mp + 2) / 5 + 1;
	*m = mp < 10 ? mp + 3 : mp - 9;
	*y = (int)((int64_t)yoe + era * 400 + (*m <= 2));
}

static bool digits(const char *s, size_t n, unsigned *out)
{
	unsigned v = 0;

	for (size_t i = 0; i < n; i++) {
		if (s[i] < '0' || s[i] > '9')
			return false;
		v = v * 10 + (unsigned)(s[i] - '0');
	}
	*out = v;
	return true;
}

static bool leap(unsigned y)
{
	return (y % 4 == 0 && y % 100 != 0) || y % 400 == 0;
}

int ldap_poll_time_parse(const char *s, size_t len, int64_t *out)
{
	static const unsigned mdays[12] = {31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31};
	unsigned y, mo, d, h, mi = 0, sec = 0, oh = 0, om = 0;
	size_t i = 10;
	int sign = 0;

	if (len < 11 || !digits(s, 4, &y) || !digits(s + 4, 2, &mo) || !digits(s + 6, 2, &d) ||
	    !digits(s + 8, 2, &h))
		return -EINVAL;
	/* minutes and seconds are optional; a fraction belongs to the last unit given */
	if (i + 2 <= len && s[i] >= '0' && s[i] <= '9') {
		if (!digits(s + i, 2, &mi))
			return -EINVAL;
		i += 2;
		if (i + 2 <= len && s[i] >= '0' && s[i] <= '9') {
			if (!digits(s + i, 2, &sec))
				return -EINVAL;
			i += 2;
		}
	}
	if (i < len && (s[i] == '.' || s[i] == ',')) {
		size_t k = ++i;
		while (i < len && s[i] >= '0' && s[i] <= '9')
			i++;
		if (i == k) /* a fraction needs a digit */
			return -EINVAL;
	}
	if (i == len)
		return -EINVAL; /* local time (no Z, no offset) is not allowed in LDAP */
	if (s[i] == 'Z') {
		i++;
	} else if (s[i] == '+' || s[i] == '-') {
		sign = s[i] == '+' ? 1 : -1;
		if (i + 3 > len || !digits(s + i + 1, 2, &oh))
			return -EINVAL;
		i += 3;
		if (i + 2 <= len) {
			if (!digits(s + i, 2, &om))
				return -EINVAL;
			i += 2;
		}
	} else {
		return -EINVAL;
	}
	if (i != len)
		return -EINVAL;
	if (mo < 1 || mo > 12 || d < 1 || h > 23 || mi > 59 || sec > 60 || oh > 23 || om > 59)
		return -EINVAL;
	if (d > mdays[mo - 1] + (mo == 2 && leap(y)))
		return -EINVAL;
	if (sec == 60) /* a leap second: the last second of that minute */
		sec = 59;
	*out = days_from_civil(y, mo, d) * 86400 + h * 3600 + mi * 60 + sec - sign * (int64_t)(oh * 3600 + om * 60);
	return 0;
}

void ldap_poll_time_format(int64_t ts, char out[16])
{
	int64_t days = ts >= 0 ? ts / 86400 : (ts - 86399) / 86400;
	int64_t rem = ts - days * 86400;
	unsigned m, d;
	int y;

	civil_from_days(days, &y, &m, &d);
	/* the modulos only tell the compiler the widths; the values already fit */
	snprintf(out, 16, "%04d%02u%02u%02u%02u%02uZ", (y % 10000 + 10000) % 10000, m % 100, d % 100,
		 (unsigned)(rem / 3600) % 100, (unsigned)(rem / 60 % 60) % 100, (unsigned)(rem % 60) % 100);
}

/* ---- the cursor and the same-second rule -------------------------------------- */

void ldap_poll_cursor_init(struct ldap_poll_cursor *c)
{
	memset(c, 0, sizeof *c);
	c->scope[0].ts = c->scope[1].ts = -1;
}

static void scope_clear(struct ldap_poll_scope_cursor *s)
{
	for (size_t i = 0; i < s->n_seen; i++)
		free(s->seen[i].anchor);
	s->n_seen = 0;
}

void ldap_poll_cursor_free(struct ldap_poll_cursor *c)
{
	for (int i = 0; i < 2; i++) {
		scope_clear(&c->scope[i]);
		free(c->scope[i].seen);
	}
	ldap_poll_cursor_init(c);
}

static struct ldap_poll_seen *seen_find(struct ldap_poll_scope_cursor *s, const char *anchor)
{
	/* a linear scan: the set holds what changed within one second */
	for (size_t i = 0; i < s->n_seen; i++)
		if (strcmp(s->seen[i].anchor, anchor) == 0)
			return &s->seen[i];
	return NULL;
}

static void seen_add(struct ldap_poll_scope_cursor *s, const char *anchor, uint64_t hash)
{
	if (s->n_seen == s->cap) {
		s->cap = s->cap ? s->cap * 2 : 8;
		s->seen = xrealloc(s->seen, s->cap * sizeof *s->seen);
	}
	s->seen[s->n_seen].anchor = xstrdup(anchor);
	s->seen[s->n_seen++].hash = hash;
}

bool ldap_poll_take(struct ldap_poll_scope_cursor *c, int64_t ts, const char *anchor, uint64_t hash)
{
	struct ldap_poll_seen *e;

	if (ts < c->ts)
		return true; /* older than the cursor: only a full read gets these */
	if (ts > c->ts) {
		scope_clear(c);
		c->ts = ts;
		seen_add(c, anchor, hash);
		return true;
	}
	e = seen_find(c, anchor);
	if (e == NULL) {
		seen_add(c, anchor, hash);
		return true;
	}
	if (e->hash == hash)
		return false; /* read again by >=, delivered already */
	e->hash = hash; /* changed again within the cursor's second */
	return true;
}

/* ---- text form ------------------------------------------------------------- */

struct buf {
	char *p;
	size_t len, cap;
};

static void buf_printf(struct buf *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void buf_printf(struct buf *b, const char *fmt, ...)
{
	va_list ap;
	int n;

	for (;;) {
		va_start(ap, fmt);
		n = vsnprintf(b->p + b->len, b->cap - b->len, fmt, ap);
		va_end(ap);
		if (n >= 0 && (size_t)n < b->cap - b->len)
			break;
		b->cap = b->cap * 2 + (size_t)n + 64;
		b->p = xrealloc(b->p, b->cap);
	}
	b->len += (size_t)n;
}

void ldap_poll_cursor_encode(const struct ldap_poll_cursor *c, void **out, size_t *out_len)
{
	struct buf b = {xmalloc(256), 0, 256};

	b.p[0] = '\0';
	buf_printf(&b, "%s\n", CURSOR_VERSION);
	for (int i = 0; i < 2; i++) {
		const struct ldap_poll_scope_cursor *s = &c->scope[i];
		char ts[16];
		if (s->ts < 0) {
			buf_printf(&b, "%s - 0\n", scope_key[i]);
			continue;
		}
		ldap_poll_time_format(s->ts, ts);
		buf_printf(&b, "%s %s %zu\n", scope_key[i], ts, s->n_seen);
		for (size_t k = 0; k < s->n_seen; k++)
			buf_printf(&b, "%016" PRIx64 " %s\n", s->seen[k].hash, s->seen[k].anchor);
	}
	*out = b.p;
	*out_len = b.len;
}

static int dfail(struct ldap_poll_cursor *c, char *errmsg, size_t errlen, const char *fmt, ...)
	__attribute__((format(printf, 4, 5)));
static int dfail(struct ldap_poll_cursor *c, char *errmsg, size_t errlen, const char *fmt, ...)
{
	va_list ap;

	ldap_poll_cursor_free(c);
	if (errmsg != NULL && errlen > 0) {
		int n = snprintf(errmsg, errlen, "ldap-poll cursor: ");
		va_start(ap, fmt);
		if (n >= 0 && (size_t)n < errlen)
			vsnprintf(errmsg + n, errlen - (size_t)n, fmt, ap);
		va_end(ap);
	}
	return -EINVAL;
}

/* The next line of [*p, end) without its '\n' (which must be there). */
static bool next_line(const char **p, const char *end, const char **line, size_t *len)
{
	const char *nl = memchr(*p, '\n', (size_t)(end - *p));

	if (nl == NULL)
		return false;
	*line = *p;
	*len = (size_t)(nl - *p);
	*p = nl + 1;
	return true;
}

static bool anchor_ok(const char *a, size_t n)
{
	if (n == 0 || n > LDAP_POLL_ANCHOR_MAX)
		return false;
	for (size_t i = 0; i < n; i++)
		if (a[i] <= ' ' || a[i] > '~')
			return false;
	return true;
}

static int hex16(const char *s, uint64_t *out)
{
	uint64_t v = 0;

	for (int i = 0; i < 16; i++) {
		char ch = s[i];
		unsigned d;
		if (ch >= '0' && ch <= '9')
			d = (unsigned)(ch - '0');
		else if (ch >= 'a' && ch <= 'f')
			d = (unsigned)(ch - 'a' + 10);
		else
			return -EINVAL; /* lower case only: one text per cursor */
		v = v << 4 | d;
	}
	*out = v;
	return 0;
}

/* "<key> <ts|-> <n>" of scope i. */
static int scope_header(const char *line, size_t len, int i, int64_t *ts, size_t *n)
{
	size_t kl = strlen(scope_key[i]), k;
	unsigned long long v = 0;

	if (len < kl + 4 || memcmp(line, scope_key[i], kl) != 0 || line[kl] != ' ')
		return -EINVAL;
	line += kl + 1;
	len -= kl + 1;
	if (line[0] == '-' && line[1] == ' ') {
		*ts = -1;
		k = 2;
	} else {
		char canon[16];
		if (len < 17 || line[15] != ' ' || ldap_poll_time_parse(line, 15, ts) != 0 || *ts < 0)
			return -EINVAL;
		/* only the form encode writes: one text per cursor (no fraction, offset or leap second) */
		ldap_poll_time_format(*ts, canon);
		if (memcmp(line, canon, 15) != 0)
			return -EINVAL;
		k = 16;
	}
	if (k >= len || (line[k] == '0' && k + 1 != len))
		return -EINVAL; /* no number, or a leading zero */
	for (; k < len; k++) {
		if (line[k] < '0' || line[k] > '9' || v > LDAP_POLL_CURSOR_MAX)
			return -EINVAL;
		v = v * 10 + (unsigned)(line[k] - '0');
	}
	if (v > LDAP_POLL_CURSOR_MAX / 18 || (*ts < 0 && v != 0))
		return -EINVAL; /* more entries than the blob can hold; a set without a second */
	*n = (size_t)v;
	return 0;
}

int ldap_poll_cursor_decode(struct ldap_poll_cursor *c, const void *blob, size_t len, char *errmsg, size_t errlen)
{
	const char *p = blob, *end = p + len, *line;
	size_t ll;

	ldap_poll_cursor_init(c);
	if (blob == NULL || len == 0)
		return 0;
	if (len > LDAP_POLL_CURSOR_MAX)
		return dfail(c, errmsg, errlen, "%zu bytes, more than %u", len, LDAP_POLL_CURSOR_MAX);
	if (!next_line(&p, end, &line, &ll) || ll != strlen(CURSOR_VERSION) || memcmp(line, CURSOR_VERSION, ll) != 0)
		return dfail(c, errmsg, errlen, "not a version " CURSOR_VERSION " cursor of source.kind ldap-poll");
	for (int i = 0; i < 2; i++) {
		struct ldap_poll_scope_cursor *s = &c->scope[i];
		size_t n;
		if (!next_line(&p, end, &line, &ll) || scope_header(line, ll, i, &s->ts, &n) != 0)
			return dfail(c, errmsg, errlen, "bad or missing \"%s\" line", scope_key[i]);
		for (size_t k = 0; k < n; k++) {
			uint64_t h;
			char a[LDAP_POLL_ANCHOR_MAX + 1];
			if (!next_line(&p, end, &line, &ll) || ll < 18 || line[16] != ' ' || hex16(line, &h) != 0 ||
			    !anchor_ok(line + 17, ll - 17))
				return dfail(c, errmsg, errlen, "%s: bad entry %zu of %zu", scope_key[i], k + 1, n);
			memcpy(a, line + 17, ll - 17);
			a[ll - 17] = '\0';
			if (seen_find(s, a) != NULL)
				return dfail(c, errmsg, errlen, "%s: anchor %s twice", scope_key[i], a);
			seen_add(s, a, h);
		}
	}
	if (p != end)
		return dfail(c, errmsg, errlen, "trailing bytes");
	return 0;
}

int ldap_poll_cursor_describe(const void *blob, size_t len, char *out, size_t outlen)
{
	struct ldap_poll_cursor c;
	size_t o = 0;

	if (outlen > 0)
		out[0] = '\0';
	if (blob == NULL || len == 0 || ldap_poll_cursor_decode(&c, blob, len, NULL, 0) != 0)
		return -EINVAL;
	for (int i = 0; i < 2 && outlen > 0; i++) {
		const struct ldap_poll_scope_cursor *s = &c.scope[i];
		char ts[16];
		int n;
		if (s->ts < 0) {
			n = snprintf(out + o, outlen - o, "%s%s: not read yet", i ? "; " : "", scope_key[i]);
		} else {
			ldap_poll_time_format(s->ts, ts);
			n = snprintf(out + o, outlen - o, "%s%s: modifyTimestamp %s (+%zu entr%s at that second)",
				     i ? "; " : "", scope_key[i], ts, s->n_seen, s->n_seen == 1 ? "y" : "ies");
		}
		if (n < 0 || (size_t)n >= outlen - o)
			break; /* cut: snprintf left it NUL-terminated */
		o += (size_t)n;
	}
	ldap_poll_cursor_free(&c);
	return 0;
}
