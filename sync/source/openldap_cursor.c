/*
 * sync/source/openldap_cursor.c -- the cursor blob: "v1\nusers=<base64
 * cookie>\ngroups=<base64 cookie>\n", the committed cookies of both sessions
 * (only the cookie of a complete refresh or of a persist-phase change goes
 * into a cursor, see openldap.h).
 */
#include <errno.h>
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
