/* sync/text_json.c -- see text_json.h. */
#include "sync/text_json.h"

#include <stdlib.h>
#include <string.h>

#include "common/xalloc.h"

/* Length of the valid UTF-8 sequence at s (at most `left` bytes), or 0 when
 * s[0] does not start one (RFC 3629 §4: no overlongs, no surrogates, nothing
 * above U+10FFFF; NUL is refused as jansson refuses it). */
static size_t seq_len(const unsigned char *s, size_t left)
{
	unsigned char c = s[0], lo = 0x80, hi = 0xBF;
	size_t n, i;

	if (c == 0)
		return 0;
	if (c < 0x80)
		return 1;
	if (c >= 0xC2 && c <= 0xDF)
		n = 2;
	else if (c >= 0xE0 && c <= 0xEF)
		n = 3;
	else if (c >= 0xF0 && c <= 0xF4)
		n = 4;
	else
		return 0;
	if (c == 0xE0)
		lo = 0xA0;
	else if (c == 0xED)
		hi = 0x9F;
	else if (c == 0xF0)
		lo = 0x90;
	else if (c == 0xF4)
		hi = 0x8F;
	if (n > left || s[1] < lo || s[1] > hi)
		return 0;
	for (i = 2; i < n; i++)
		if ((s[i] & 0xC0) != 0x80)
			return 0;
	return n;
}

bool text_is_utf8(const char *s, size_t len)
{
	const unsigned char *p = (const unsigned char *)s;
	size_t i = 0, n;

	while (i < len) {
		n = seq_len(p + i, len - i);
		if (n == 0)
			return false;
		i += n;
	}
	return true;
}

json_t *text_json(const char *s)
{
	const unsigned char *p = (const unsigned char *)s;
	size_t len = strlen(s), i = 0, o = 0, n;
	char *clean;
	json_t *j;

	if (text_is_utf8(s, len))
		return xcheck(json_stringn(s, len)); /* valid: NULL is out of memory */
	clean = xmalloc(3 * len + 1); /* each bad byte becomes 3 bytes */
	while (i < len) {
		n = seq_len(p + i, len - i);
		if (n == 0) {
			memcpy(clean + o, "\xEF\xBF\xBD", 3);
			o += 3;
			i++;
			continue;
		}
		memcpy(clean + o, s + i, n);
		o += n;
		i += n;
	}
	j = xcheck(json_stringn(clean, o));
	free(clean);
	return j;
}

json_t *text_json_or_null(const char *s)
{
	return s != NULL ? text_json(s) : json_null();
}
