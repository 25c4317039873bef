/*
 * agent/http_body.h -- collect an HTTP answer's body with libcurl easy
 * (canopyctl, the health reports, the removed-member check): one
 * CURLOPT_WRITEFUNCTION for all of them.
 */
#ifndef CANOPY_AGENT_HTTP_BODY_H
#define CANOPY_AGENT_HTTP_BODY_H

#include <stdbool.h>
#include <stddef.h>

struct http_body {
	char *p;    /* NUL-terminated once anything arrived; the caller frees it */
	size_t len;
	size_t max; /* refuse (end the transfer) beyond this many bytes: the size
		     * comes from the network, so every caller sets one */
	bool too_large; /* set when the answer went past `max` */
};

/* CURLOPT_WRITEFUNCTION with CURLOPT_WRITEDATA = struct http_body *. Returns
 * size * n, or 0 (libcurl then fails with CURLE_WRITE_ERROR) when the body
 * would pass `max` (too_large is then set). Out of memory aborts
 * (common/xalloc.h). */
size_t http_body_write(char *data, size_t size, size_t n, void *ctx);

#endif /* CANOPY_AGENT_HTTP_BODY_H */
