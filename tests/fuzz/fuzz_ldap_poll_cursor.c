/*
 * tests/fuzz/fuzz_ldap_poll_cursor.c -- the polling source's cursor decoder
 * (ldap_poll_cursor_decode, ldap_poll_cursor_describe) on any blob: the
 * replicated cursor is whatever a leader committed. Either -EINVAL or a
 * cursor that encodes back to exactly the same bytes (one text per cursor).
 */
#include <assert.h>
#include <errno.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "sync/source/ldap_poll.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct ldap_poll_cursor c;
	char err[200], out[300], small[9];
	void *blob;
	size_t len;
	int rc;

	rc = ldap_poll_cursor_decode(&c, data, size, err, sizeof err);
	assert(rc == 0 || rc == -EINVAL);
	if (rc == 0 && size > 0) {
		ldap_poll_cursor_encode(&c, &blob, &len);
		assert(len == size && memcmp(blob, data, size) == 0);
		free(blob);
	}
	ldap_poll_cursor_free(&c);
	rc = ldap_poll_cursor_describe(data, size, out, sizeof out);
	assert(rc == 0 || rc == -EINVAL);
	assert(memchr(out, '\0', sizeof out) != NULL);
	rc = ldap_poll_cursor_describe(data, size, small, sizeof small);
	assert(rc == 0 || rc == -EINVAL);
	assert(memchr(small, '\0', sizeof small) != NULL);
	return 0;
}
