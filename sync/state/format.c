/* sync/state/format.c -- advertised versions and the format gate (see format.h). */
#include "sync/state/format.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>

size_t format_key(uint64_t id, char *out, size_t len)
{
	return (size_t)snprintf(out, len, "%c:%llu", FORMAT_KEY_PREFIX, (unsigned long long)id);
}

int format_record_parse(const void *val, size_t vlen, struct format_record *out, char *errmsg,
			size_t errlen)
{
	const char *p = val, *end = p + vlen;
	unsigned long f = 0;
	size_t digits = 0, tlen, i;

	/* the format number: decimal, 1..65535 (no strtoul: the value is not
	 * NUL-terminated and may hold anything) */
	while (p < end && *p >= '0' && *p <= '9' && digits < 6) {
		f = f * 10 + (unsigned long)(*p++ - '0');
		digits++;
	}
	if (digits == 0 || f == 0 || f > UINT16_MAX || (p < end && *p != ' ')) {
		snprintf(errmsg, errlen, "version record: no format number in 1..65535 at its start");
		return -EINVAL;
	}
	if (p < end)
		p++; /* the space */
	tlen = (size_t)(end - p);
	if (tlen > FORMAT_TEXT_MAX) {
		snprintf(errmsg, errlen, "version record: text of %zu bytes, over %d", tlen,
			 FORMAT_TEXT_MAX);
		return -EINVAL;
	}
	for (i = 0; i < tlen; i++)
		if ((unsigned char)p[i] < 0x20 || p[i] == 0x7f) {
			snprintf(errmsg, errlen, "version record: control character at offset %zu",
				 i + (size_t)(p - (const char *)val));
			return -EINVAL;
		}
	out->max_format = (uint16_t)f;
	memcpy(out->text, p, tlen);
	out->text[tlen] = '\0';
	return 0;
}

bool format_record_get(const struct state *s, uint64_t id, struct format_record *out)
{
	char key[32], err[128];
	const void *v;
	size_t vlen, klen = format_key(id, key, sizeof key);

	if (!state_get(s, key, klen, &v, &vlen))
		return false;
	return format_record_parse(v, vlen, out, err, sizeof err) == 0;
}

bool format_record_equal(const struct state *s, uint64_t id, const struct format_record *r)
{
	struct format_record have;

	return format_record_get(s, id, &have) && have.max_format == r->max_format &&
	       strcmp(have.text, r->text) == 0;
}

void format_record_put(struct state_batch *b, uint64_t id, const struct format_record *r)
{
	char key[32], val[16 + FORMAT_TEXT_MAX];
	size_t klen = format_key(id, key, sizeof key);
	int vlen = snprintf(val, sizeof val, "%u %.*s", (unsigned)r->max_format, FORMAT_TEXT_MAX,
			    r->text);

	state_batch_put(b, key, klen, val, (size_t)vlen);
}

uint16_t format_member_max(const struct state *s, uint64_t id)
{
	struct format_record r;

	return format_record_get(s, id, &r) ? r.max_format : 1;
}

bool state_format_supported(const struct state *s, const uint64_t *ids, unsigned n,
			    uint16_t format)
{
	unsigned i;

	if (format <= 1)
		return true;
	for (i = 0; i < n; i++)
		if (format_member_max(s, ids[i]) < format)
			return false;
	return true;
}

uint16_t state_format_writable(const struct state *s, const uint64_t *ids, unsigned n,
			       uint16_t own_max)
{
	uint16_t f;

	for (f = own_max; f > 1; f--)
		if (state_format_supported(s, ids, n, f))
			return f;
	return 1;
}
