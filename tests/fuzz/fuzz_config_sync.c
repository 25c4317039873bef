/*
 * tests/fuzz/fuzz_config_sync.c -- the sync sections of a configuration on
 * any input (agent/config_sync.c): the input is split at its first NUL into
 * a node's file and a replicated text (as sent to POST /v1/config/apply or
 * read from g:cur); both are extracted, merged and diffed.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "agent/config_sync.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	const char *a = (const char *)data, *nul = memchr(data, 0, size);
	size_t alen = nul ? (size_t)(nul - a) : size;
	const char *b = nul ? nul + 1 : a;
	size_t blen = nul ? size - alen - 1 : size;
	char *x = NULL, *y = NULL, *m = NULL, err[512];
	bool has_node;
	json_t *d;

	if (config_sync_extract(a, alen, &x, &has_node, err, sizeof err) == 0 &&
	    config_sync_extract(b, blen, &y, NULL, err, sizeof err) == 0) {
		if (config_sync_merge(a, alen, y, strlen(y), &m, err, sizeof err) == 0)
			free(m);
		d = config_sync_diff(x, strlen(x), y, strlen(y), err, sizeof err);
		if (d != NULL) {
			char *s = config_sync_summary(d);
			(void)config_sync_needs_resync(d);
			free(s);
			json_decref(d);
		}
	}
	free(x);
	free(y);
	return 0;
}
