/*
 * tests/fuzz/fuzz_recover_conf.c -- the decoder of a configuration read from a
 * data dir (raft/recover.h: recover_decode_configuration, over the bytes of a
 * RAFT_CHANGE entry or a snapshot's .meta, which storage_last_configuration
 * copies from disk). It must never read past the input (ASan), and what it
 * accepts must be a configuration libraft itself would hold: ids >= 1 and
 * distinct, non-empty addresses, a known role, and the same configuration
 * again after libraft's own encoder and a second decode.
 */
#include <raft.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "raft/recover.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct raft_configuration c, again;
	struct raft_buffer buf;
	char why[256];
	uint8_t *copy = malloc(size ? size : 1);
	unsigned i, j;

	memcpy(copy, data, size); /* exactly the bytes there: an over-read is caught */
	if (recover_decode_configuration(copy, size, &c, why, sizeof why) != 0) {
		if (c.n != 0 || why[0] == '\0')
			abort();
		free(copy);
		raft_configuration_close(&c);
		return 0;
	}
	if (c.n == 0)
		abort();
	for (i = 0; i < c.n; i++) {
		if (c.servers[i].id == 0 || c.servers[i].address[0] == '\0' ||
		    strlen(c.servers[i].address) >= size)
			abort();
		if (c.servers[i].role != RAFT_VOTER && c.servers[i].role != RAFT_STANDBY &&
		    c.servers[i].role != RAFT_SPARE)
			abort();
		for (j = 0; j < i; j++)
			if (c.servers[j].id == c.servers[i].id)
				abort();
	}
	if (raft_configuration_encode(&c, &buf) != 0)
		abort();
	if (recover_decode_configuration(buf.base, buf.len, &again, why, sizeof why) != 0 ||
	    again.n != c.n)
		abort();
	for (i = 0; i < c.n; i++)
		if (again.servers[i].id != c.servers[i].id || again.servers[i].role != c.servers[i].role ||
		    strcmp(again.servers[i].address, c.servers[i].address) != 0)
			abort();
	raft_free(buf.base);
	raft_configuration_close(&again);
	raft_configuration_close(&c);
	free(copy);
	return 0;
}
