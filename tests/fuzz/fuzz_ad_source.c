/*
 * tests/fuzz/fuzz_ad_source.c -- the Active Directory source's parsers
 * (sync/source/ad.h): byte 0 picks one; the rest is its input.
 *   0: an RFC 4515 filter (ad_filter_parse), then matched against a fixed entry
 *   1: the DirSync response control value (ad_dirsync_response_parse)
 *   2: the cursor blob (ad_cursor_decode), re-encoded and decoded again
 *   3: GUID formatting (ad_guid_format)
 *   4: an attribute value as the mappings get it (ad__attr_values): text
 *      unchanged, or base64 that decodes to the same bytes
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "sync/base64.h"
#include "sync/source/ad_internal.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static char *oc[] = {"top", "user"}, *uac[] = {"514"}, *mail[] = {"a@b.c"};
	static const struct object_attr attrs[] = {
		{"objectClass", oc, 2}, {"userAccountControl", uac, 1}, {"mail", mail, 1}};
	char err[256], guid[37];
	void *c = NULL, *blob;
	size_t n = 0, len;
	bool more;

	if (size < 1)
		return 0;
	switch (data[0] % 5) {
	case 0: {
		char *text = strndup((const char *)data + 1, size - 1);
		struct ad_filter *f = NULL;
		if (text != NULL && ad_filter_parse(text, &f, err, sizeof err) == 0)
			(void)ad_filter_match(f, attrs, 3);
		ad_filter_free(f);
		free(text);
		break;
	}
	case 1:
		if (ad_dirsync_response_parse(data + 1, size - 1, &more, &c, &n) == 0)
			free(c);
		break;
	case 2:
		if (ad_cursor_decode(data + 1, size - 1, &c, &n, err, sizeof err) == 0) {
			ad_cursor_encode(c, n, &blob, &len);
			free(c);
			if (ad_cursor_decode(blob, len, &c, &n, err, sizeof err) != 0)
				abort(); /* what we encode must decode */
			free(c);
			free(blob);
		}
		break;
	case 3:
		(void)ad_guid_format(data + 1, size - 1, guid);
		break;
	default: {
		struct berval bv = {(ber_len_t)(size - 1), (char *)data + 1}, *vals[] = {&bv, NULL};
		char **v = ad__attr_values("extensionAttribute1", 19, vals, 1);
		unsigned char *d = NULL;
		size_t dl = 0;
		if (!(strlen(v[0]) == size - 1 && memcmp(v[0], data + 1, size - 1) == 0) &&
		    (base64_decode(v[0], strlen(v[0]), &d, &dl) != 0 || dl != size - 1 || memcmp(d, data + 1, dl) != 0))
			abort(); /* a value must arrive whole, as text or as base64 */
		free(d);
		free(v[0]);
		free(v);
		break;
	}
	}
	return 0;
}
