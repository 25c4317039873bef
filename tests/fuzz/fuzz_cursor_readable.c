/*
 * tests/fuzz/fuzz_cursor_readable.c -- the cursor for people (status
 * sync.cursor_readable): openldap_cursor_describe and ad_cursor_describe on
 * any blob (the replicated cursor is whatever a leader committed). Both must
 * return 0 or -EINVAL, and always leave a NUL-terminated string within the
 * buffer -- also a small one.
 */
#include <assert.h>
#include <errno.h>
#include <stdint.h>
#include <string.h>

#include "sync/source/ad.h"
#include "sync/source/openldap.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	char out[300], small[9];
	int rc;

	rc = openldap_cursor_describe(data, size, out, sizeof out);
	assert(rc == 0 || rc == -EINVAL);
	assert(memchr(out, '\0', sizeof out) != NULL);
	rc = openldap_cursor_describe(data, size, small, sizeof small);
	assert(rc == 0 || rc == -EINVAL);
	assert(memchr(small, '\0', sizeof small) != NULL);
	rc = ad_cursor_describe(data, size, out, sizeof out);
	assert(rc == 0 || rc == -EINVAL);
	assert(memchr(out, '\0', sizeof out) != NULL);
	rc = ad_cursor_describe(data, size, small, sizeof small);
	assert(rc == 0 || rc == -EINVAL);
	return 0;
}
