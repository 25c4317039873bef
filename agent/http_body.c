/* agent/http_body.c -- see http_body.h. */
#include "agent/http_body.h"

#include <stdlib.h>
#include <string.h>

size_t http_body_write(char *data, size_t size, size_t n, void *ctx)
{
	struct http_body *b = ctx;
	size_t add = size * n;
	char *p;

	if (b->max != 0 && b->len + add > b->max)
		return 0;
	p = realloc(b->p, b->len + add + 1);
	if (p == NULL)
		return 0;
	memcpy(p + b->len, data, add);
	b->p = p;
	b->len += add;
	b->p[b->len] = '\0';
	return add;
}
