/* agent/http_body.c -- see http_body.h. */
#include "agent/http_body.h"

#include <stdlib.h>
#include <string.h>

#include "common/xalloc.h"

size_t http_body_write(char *data, size_t size, size_t n, void *ctx)
{
	struct http_body *b = ctx;
	size_t add = size * n;

	if (b->len + add > b->max) {
		b->too_large = true;
		return 0;
	}
	b->p = xrealloc(b->p, b->len + add + 1);
	memcpy(b->p + b->len, data, add);
	b->len += add;
	b->p[b->len] = '\0';
	return add;
}
