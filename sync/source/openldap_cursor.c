/*
 * sync/source/openldap_cursor.c -- the cursor blob: "v1\nusers=<base64
 * cookie>\ngroups=<base64 cookie>\n", the committed cookies of both sessions
 * (only the cookie of a complete refresh or of a persist-phase change goes
 * into a cursor, see openldap.h).
 */
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "sync/source/openldap_internal.h"

static const char B64[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

bool openldap__bv_eq(const struct berval *a, const struct berval *b)
{
	if (a->bv_val == NULL || b->bv_val == NULL)
		return a->bv_val == b->bv_val;
	return a->bv_len == b->bv_len && memcmp(a->bv_val, b->bv_val, a->bv_len) == 0;
}

void openldap__bv_clear(struct berval *bv)
{
	ber_memfree(bv->bv_val);
	bv->bv_val = NULL;
	bv->bv_len = 0;
}

void openldap__bv_copy(struct berval *dst, const struct berval *src)
{
	if (src->bv_val == NULL)
		openldap__bv_clear(dst);
	else
		xcheck(ber_bvreplace(dst, src));
}

static size_t b64_encode(const unsigned char *in, size_t n, char *out)
{
	size_t o = 0;

	for (size_t i = 0; i < n; i += 3) {
		uint32_t t = (uint32_t)in[i] << 16;
		if (i + 1 < n)
			t |= (uint32_t)in[i + 1] << 8;
		if (i + 2 < n)
			t |= in[i + 2];
		out[o++] = B64[t >> 18];
		out[o++] = B64[(t >> 12) & 63];
		out[o++] = i + 1 < n ? B64[(t >> 6) & 63] : '=';
		out[o++] = i + 2 < n ? B64[t & 63] : '=';
	}
	return o;
}

static int b64_value(char c)
{
	const char *p = c ? strchr(B64, c) : NULL;
	return p ? (int)(p - B64) : -1;
}

/* Strict: whole quads, padding only at the end. Returns bytes or -1. */
static long b64_decode(const char *in, size_t n, unsigned char *out)
{
	size_t o = 0;

	if (n % 4 != 0)
		return -1;
	for (size_t i = 0; i < n; i += 4) {
		int v[4], pad = 0;
		for (int k = 0; k < 4; k++) {
			v[k] = b64_value(in[i + k]);
			if (in[i + k] == '=' && i + 4 == n && k >= 2)
				pad++, v[k] = 0;
			else if (v[k] < 0 || pad)
				return -1;
		}
		uint32_t t = (uint32_t)v[0] << 18 | (uint32_t)v[1] << 12 | (uint32_t)v[2] << 6 | (uint32_t)v[3];
		out[o++] = t >> 16;
		if (pad < 2)
			out[o++] = (t >> 8) & 255;
		if (pad < 1)
			out[o++] = t & 255;
	}
	return (long)o;
}

void openldap__cursor_encode(struct ldap_source *s, void **out, size_t *out_len)
{
	size_t cap = sizeof CURSOR_VERSION + 1, n = 0;
	char *buf;

	for (size_t i = 0; i < s->n_sess; i++)
		cap += strlen(s->sess[i].key) + 3 + (s->sess[i].committed.bv_len + 2) / 3 * 4;
	buf = xmalloc(cap);
	n += (size_t)sprintf(buf, "%s\n", CURSOR_VERSION);
	for (size_t i = 0; i < s->n_sess; i++) {
		const struct ldap_session *x = &s->sess[i];
		n += (size_t)sprintf(buf + n, "%s=", x->key);
		n += b64_encode((const unsigned char *)x->committed.bv_val, x->committed.bv_len, buf + n);
		buf[n++] = '\n';
	}
	*out = buf;
	*out_len = n;
}

static struct ldap_session *session_by_key(struct ldap_source *s, const char *key, size_t n)
{
	for (size_t i = 0; i < s->n_sess; i++)
		if (strlen(s->sess[i].key) == n && memcmp(s->sess[i].key, key, n) == 0)
			return &s->sess[i];
	return NULL;
}

/* One "key=base64" line into its session's cookie. A "groups" line is
 * accepted and ignored when the group scope is not configured. */
static int cursor_line(struct ldap_source *s, const char *p, size_t n, unsigned *seen,
		       char *errmsg, size_t errlen)
{
	const char *eq = memchr(p, '=', n);
	int klen = eq ? (int)(eq - p) : 0;
	unsigned bit = 0;
	struct ldap_session *x;
	unsigned char *raw;
	long len;

	if (eq == NULL)
		return openldap__fail(errmsg, errlen, -EINVAL, "cursor: line \"%.*s\" is not key=value",
				      (int)(n > 40 ? 40 : n), p);
	if (klen == 5 && memcmp(p, "users", 5) == 0)
		bit = 1;
	else if (klen == 6 && memcmp(p, "groups", 6) == 0)
		bit = 2;
	else
		return openldap__fail(errmsg, errlen, -EINVAL, "cursor: unknown key \"%.*s\"", klen > 40 ? 40 : klen, p);
	if (*seen & bit)
		return openldap__fail(errmsg, errlen, -EINVAL, "cursor: key %.*s repeated", klen, p);
	*seen |= bit;
	x = session_by_key(s, p, (size_t)klen);
	raw = xmalloc(n);
	len = b64_decode(eq + 1, n - (size_t)(eq + 1 - p), raw);
	if (len < 0) {
		free(raw);
		return openldap__fail(errmsg, errlen, -EINVAL, "cursor: the %.*s cookie is not base64", (int)(eq - p), p);
	}
	if (x != NULL && len > 0) {
		struct berval bv = {(ber_len_t)len, (char *)raw};
		openldap__bv_copy(&x->committed, &bv);
		openldap__bv_copy(&x->ls.ls_cookie, &bv);
	}
	free(raw);
	return 0;
}

int openldap__cursor_decode(struct ldap_source *s, const void *blob, size_t len, char *errmsg, size_t errlen)
{
	const char *p = blob, *end = p + len;
	const size_t vlen = strlen(CURSOR_VERSION);
	unsigned seen = 0;

	if (blob == NULL || len == 0)
		return 0; /* from scratch: full refresh of every scope */
	if (len < vlen + 1 || memcmp(p, CURSOR_VERSION "\n", vlen + 1) != 0)
		return openldap__fail(errmsg, errlen, -EINVAL,
				      "cursor: not an OpenLDAP source cursor (no \"" CURSOR_VERSION "\" header)");
	if (memchr(p, '\0', len) != NULL || end[-1] != '\n')
		return openldap__fail(errmsg, errlen, -EINVAL, "cursor: malformed (NUL byte or no final newline)");
	for (p += vlen + 1; p < end;) {
		const char *nl = memchr(p, '\n', (size_t)(end - p));
		int rc = cursor_line(s, p, (size_t)(nl - p), &seen, errmsg, errlen);
		if (rc != 0)
			return rc;
		p = nl + 1;
	}
	return 0;
}

/* ---- the cursor for people (status sync.cursor_readable) ------------------ */

/* Append to out (always NUL-terminated; cut when full). */
static void put(char *out, size_t len, size_t *at, const char *fmt, ...) __attribute__((format(printf, 4, 5)));
static void put(char *out, size_t len, size_t *at, const char *fmt, ...)
{
	va_list ap;
	int n;

	if (*at >= len)
		return;
	va_start(ap, fmt);
	n = vsnprintf(out + *at, len - *at, fmt, ap);
	va_end(ap);
	if (n > 0)
		*at = *at + (size_t)n < len ? *at + (size_t)n : len - 1;
}

static bool all_digits(const char *p, size_t n)
{
	for (size_t i = 0; i < n; i++)
		if (p[i] < '0' || p[i] > '9')
			return false;
	return true;
}

/*
 * One CSN, "YYYYmmddHHMMSS.ffffffZ#cccccc#sid#mmmmmm" (OpenLDAP's change
 * sequence number: time, count, server id, modification; see slapd's
 * ldap_sync/syncprov documentation and RFC 4533 §3.5: the cookie's content is
 * the server's own). Anything else is shown as is, quoted.
 */
static void describe_csn(const char *c, size_t n, char *out, size_t len, size_t *at)
{
	const char *h1 = memchr(c, '#', n), *h2, *h3;

	for (size_t i = 0; i < n; i++)
		if ((unsigned char)c[i] < 0x21 || (unsigned char)c[i] > 0x7e) {
			put(out, len, at, "csn (%zu bytes, not text)", n);
			return;
		}
	h2 = h1 ? memchr(h1 + 1, '#', n - (size_t)(h1 + 1 - c)) : NULL;
	h3 = h2 ? memchr(h2 + 1, '#', n - (size_t)(h2 + 1 - c)) : NULL;
	if (h3 == NULL || h1 - c < 15 || !all_digits(c, 14) || h3 - h2 - 1 < 1 || h3 - h2 - 1 > 8) {
		put(out, len, at, "csn \"%.*s\"", (int)(n > 80 ? 80 : n), c);
		return;
	}
	put(out, len, at, "csn %.*s (%.4s-%.2s-%.2sT%.2s:%.2s:%.2sZ, sid %.*s)", (int)n, c, c, c + 4, c + 6,
	    c + 8, c + 10, c + 12, (int)(h3 - h2 - 1), h2 + 1);
}

/* An RFC 4533 cookie as OpenLDAP writes it, "rid=001,sid=001,csn=A;B":
 * every CSN described; a cookie without one is quoted. */
static void describe_cookie(const unsigned char *raw, size_t n, char *out, size_t len, size_t *at)
{
	const char *c = (const char *)raw, *end = c + n, *csn = NULL;
	unsigned k = 0;

	if (n == 0) {
		put(out, len, at, "none yet");
		return;
	}
	for (const char *p = c; p + 4 <= end; p++)
		if ((p == c || p[-1] == ',') && memcmp(p, "csn=", 4) == 0) {
			csn = p + 4;
			break;
		}
	if (csn == NULL) {
		put(out, len, at, "no csn (%zu bytes)", n);
		return;
	}
	while (csn < end) {
		const char *stop = csn;
		while (stop < end && *stop != ';' && *stop != ',')
			stop++;
		if (stop > csn) {
			put(out, len, at, "%s", k++ ? ", " : "");
			describe_csn(csn, (size_t)(stop - csn), out, len, at);
		}
		if (stop == end || *stop == ',')
			break;
		csn = stop + 1;
	}
	if (k == 0)
		put(out, len, at, "empty csn");
}

int openldap_cursor_describe(const void *blob, size_t len, char *out, size_t outlen)
{
	const char *p = blob, *end = p + len;
	const size_t vlen = strlen(CURSOR_VERSION);
	size_t at = 0;
	unsigned lines = 0;

	if (outlen == 0)
		return -EINVAL;
	out[0] = '\0';
	if (blob == NULL || len == 0 || len > OPENLDAP_CURSOR_DESCRIBE_MAX)
		return -EINVAL;
	if (len < vlen + 1 || memcmp(p, CURSOR_VERSION "\n", vlen + 1) != 0 || end[-1] != '\n' ||
	    memchr(p, '\0', len) != NULL)
		return -EINVAL;
	for (p += vlen + 1; p < end;) {
		const char *nl = memchr(p, '\n', (size_t)(end - p));
		const char *eq = memchr(p, '=', (size_t)(nl - p));
		unsigned char *raw;
		long n;

		if (eq == NULL || eq == p)
			return -EINVAL;
		raw = xmalloc((size_t)(nl - eq) + 1);
		n = b64_decode(eq + 1, (size_t)(nl - eq - 1), raw);
		if (n < 0) {
			free(raw);
			out[0] = '\0';
			return -EINVAL;
		}
		put(out, outlen, &at, "%s%.*s: ", lines++ ? "; " : "", (int)(eq - p > 20 ? 20 : eq - p), p);
		describe_cookie(raw, (size_t)n, out, outlen, &at);
		free(raw);
		p = nl + 1;
	}
	if (lines == 0)
		put(out, outlen, &at, "no cookie yet");
	return 0;
}
