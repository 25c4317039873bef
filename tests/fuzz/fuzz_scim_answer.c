/*
 * tests/fuzz/fuzz_scim_answer.c -- what the SCIM target does with an answer
 * (sync/target/scim_answer.c through scim_test_answer): JSON parsing, the RFC 7644
 * shape checks, the log description, list matching, group member filtering.
 * Input: byte 0 = the step, bytes 1-2 = the status code, the rest = the body.
 */
#include <stdint.h>

#include "sync/target/scim_test.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static const long statuses[] = {200, 201, 204, 301, 307, 400, 401, 404, 409, 429, 500, 503};
	long http;

	if (size < 3)
		return 0;
	http = statuses[data[1] % (sizeof statuses / sizeof statuses[0])];
	if (data[2] & 0x80)
		http = 100 + (long)(((unsigned)data[1] << 8 | data[2]) % 500);
	scim_test_answer(data[0], http, (const char *)data + 3, size - 3);
	return 0;
}
