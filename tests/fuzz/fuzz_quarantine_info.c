/*
 * tests/fuzz/fuzz_quarantine_info.c -- the quarantine's details as another
 * node replicated them ("q:info", sync/engine/quarantine.c,
 * engine_quarantine_info_decode): any bytes decode to 0 with terminated
 * strings, or to -EINVAL with everything zeroed.
 */
#include <assert.h>
#include <stdint.h>
#include <string.h>

#include "sync/engine.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct engine_quarantine_info qi;
	int rc = engine_quarantine_info_decode(data, size, &qi);

	if (rc == 0) {
		assert(memchr(qi.side, '\0', sizeof qi.side) != NULL);
		assert(memchr(qi.method, '\0', sizeof qi.method) != NULL);
		assert(memchr(qi.path, '\0', sizeof qi.path) != NULL);
	} else {
		assert(qi.since_ms == 0 && qi.side[0] == '\0' && qi.path[0] == '\0');
	}
	return 0;
}
