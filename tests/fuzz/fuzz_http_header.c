/*
 * tests/fuzz/fuzz_http_header.c -- what the HTTP engine reads from a
 * response's header lines (sync/target/http_multi.c): Retry-After
 * (delay-seconds or an HTTP-date) and Location, from any bytes, cut into
 * lines at '\n' as libcurl hands them over.
 */
#include <stdint.h>
#include <string.h>

#include "sync/target/http_multi.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct http_answer a;
	const char *p = (const char *)data, *end = p + size;

	memset(&a, 0, sizeof a);
	a.retry_after_s = -1;
	while (p < end) {
		const char *nl = memchr(p, '\n', (size_t)(end - p));
		size_t n = nl != NULL ? (size_t)(nl - p) + 1 : (size_t)(end - p);
		http_answer_header(&a, p, n, 3600);
		p += n;
	}
	(void)http_retry_after((const char *)data, size, 86400);
	return 0;
}
