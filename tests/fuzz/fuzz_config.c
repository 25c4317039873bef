/*
 * tests/fuzz/fuzz_config.c -- the YAML configuration loader on any input
 * (agent/config.c: the event pre-pass with its depth, alias and tag limits,
 * the document walk, every key's checks).
 */
#include <stddef.h>
#include <stdint.h>

#include "agent/config.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct config cfg;
	char err[512];

	if (config_load_buffer("fuzz.yaml", (const char *)data, size, &cfg, err, sizeof err) == 0)
		config_free(&cfg);
	return 0;
}
