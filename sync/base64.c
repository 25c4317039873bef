/*
 * sync/base64.c -- RFC 4648 §4 base64, strict on input (sync/base64.h).
 */
#include "sync/base64.h"

#include <errno.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "common/xalloc.h"

static const char B64[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

char *base64_encode(const void *bytes, size_t n)
{
	const unsigned char *in = bytes;
	char *out = xmalloc((n + 2) / 3 * 4 + 1), *o = out;

	for (size_t i = 0; i < n; i += 3) {
		uint32_t t = (uint32_t)in[i] << 16;
		if (i + 1 < n)
			t |= (uint32_t)in[i + 1] << 8;
		if (i + 2 < n)
			t |= in[i + 2];
		*o++ = B64[t >> 18];
		*o++ = B64[(t >> 12) & 63];
		*o++ = i + 1 < n ? B64[(t >> 6) & 63] : '=';
		*o++ = i + 2 < n ? B64[t & 63] : '=';
	}
	*o = '\0';
	return out;
}

static int b64v(char c)
{
	const char *p = c ? strchr(B64, c) : NULL;
	return p ? (int)(p - B64) : -1;
}

int base64_decode(const char *text, size_t len, unsigned char **out, size_t *out_len)
{
	size_t pad = 0, o = 0;
	unsigned char *buf;

	*out = NULL;
	*out_len = 0;
	if (len % 4 != 0)
		return -EINVAL;
	if (len >= 1 && text[len - 1] == '=')
		pad = len >= 2 && text[len - 2] == '=' ? 2 : 1;
	buf = xmalloc(len / 4 * 3 + 1);
	for (size_t i = 0; i < len; i += 4) {
		int v[4];
		bool last = i + 4 == len;
		for (int k = 0; k < 4; k++) {
			bool padded = last && k >= 4 - (int)pad;
			v[k] = padded ? 0 : b64v(text[i + k]);
			if (v[k] < 0)
				goto bad;
		}
		uint32_t t = (uint32_t)v[0] << 18 | (uint32_t)v[1] << 12 | (uint32_t)v[2] << 6 | (uint32_t)v[3];
		/* the bits below the last byte must be zero: "QR==" is not "QQ==" */
		if (last && ((pad == 2 && (t & 0xffff)) || (pad == 1 && (t & 0xff))))
			goto bad;
		buf[o++] = (unsigned char)(t >> 16);
		if (!last || pad < 2)
			buf[o++] = (unsigned char)(t >> 8);
		if (!last || pad < 1)
			buf[o++] = (unsigned char)t;
	}
	buf[o] = '\0';
	*out = buf;
	*out_len = o;
	return 0;
bad:
	free(buf);
	return -EINVAL;
}
