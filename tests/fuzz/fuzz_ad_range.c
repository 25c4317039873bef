/*
 * tests/fuzz/fuzz_ad_range.c -- the range option of an attribute description
 * (sync/source/ad.h: ad_range_parse, ad_range_next), as a DC names a partial
 * multi-valued attribute ("member;range=0-1499"). The input is the
 * description; what ad_range_next asks for next must parse, start right
 * after the answer's high bound and ask for the rest ("*").
 */
#include <assert.h>
#include <errno.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "sync/source/ad.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	char *desc = strndup((const char *)data, size), next[300];
	size_t blen, nlen;
	uint32_t lo, hi, nlo, nhi;
	bool last, nlast;

	if (desc == NULL)
		return 0;
	int rc = ad_range_parse(desc, &blen, &lo, &hi, &last);
	assert(rc == 1 || rc == 0 || rc == -EINVAL);
	if (rc == 1) {
		assert(blen > 0 && blen < strlen(desc));
		assert(last || hi >= lo);
	}
	if (ad_range_next(desc, next, sizeof next) == 1) {
		assert(rc == 1 && !last);
		assert(ad_range_parse(next, &nlen, &nlo, &nhi, &nlast) == 1);
		assert(nlast && nlo == hi + 1 && nlen == blen && strncmp(next, desc, blen) == 0);
	}
	free(desc);
	return 0;
}
