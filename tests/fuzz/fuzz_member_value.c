/*
 * tests/fuzz/fuzz_member_value.c -- splitting a uniqueMember value into its
 * DN and the optional unique identifier (sync/member_value.h,
 * member_value_dn_len; RFC 4517 §3.3.21). The input is the value. The DN
 * part is never longer than the value; when something is cut, it is exactly
 * a '#', a quoted run of 0/1 and "B", the DN before it is not empty, and
 * the '#' is not escaped (an even run of backslashes before it).
 */
#include <assert.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "sync/member_value.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	char *v = strndup((const char *)data, size);
	size_t n, dn, bs;

	if (v == NULL)
		return 0;
	n = strlen(v);
	dn = member_value_dn_len(v);
	assert(dn <= n);
	if (dn < n) {
		assert(dn > 0 && n - dn >= 4);
		assert(v[dn] == '#' && v[dn + 1] == '\'' && v[n - 2] == '\'' && v[n - 1] == 'B');
		for (size_t i = dn + 2; i < n - 2; i++)
			assert(v[i] == '0' || v[i] == '1');
		for (bs = 0; bs < dn && v[dn - 1 - bs] == '\\'; bs++)
			;
		assert(bs % 2 == 0);
	}
	free(v);
	return 0;
}
