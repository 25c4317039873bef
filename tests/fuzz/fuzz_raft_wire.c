/*
 * tests/fuzz/fuzz_raft_wire.c -- the raft message validator (raft/wire_check.h)
 * as the TLS transport drives it: byte 0 picks how the rest is read.
 *   even: a handshake, then messages, from one stream (inbound connection);
 *   odd:  messages only.
 * The stream is fed the way transport_tls.c does: grow the available bytes to
 * what WIRE_CHECK_MORE asks for, consume what WIRE_CHECK_COMPLETE returns,
 * stop at the first -EBADMSG. The checks must never read past `avail` (ASan),
 * never ask for less than they have, never accept a length beyond the input.
 */
#include <errno.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "raft/wire_check.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	char why[256];
	size_t off = 1, len = 0;
	int rv;

	if (size == 0)
		return 0;
	if ((data[0] & 1) == 0) {
		uint64_t id;
		const char *addr;
		/* A copy of exactly the bytes there, so any over-read is caught. */
		uint8_t *copy = malloc(size - 1 ? size - 1 : 1);
		memcpy(copy, data + 1, size - 1);
		rv = wire_check_handshake(copy, size - 1, &len, &id, &addr, why, sizeof why);
		if (rv == WIRE_CHECK_COMPLETE) {
			if (len > size - 1 || id == 0 || strlen(addr) == 0 ||
			    (const uint8_t *)addr + strlen(addr) >= copy + len)
				abort();
			off += len;
		} else if (rv == WIRE_CHECK_MORE && len <= size - 1) {
			abort();
		}
		free(copy);
		if (rv != WIRE_CHECK_COMPLETE)
			return 0;
	}
	while (off < size) {
		size_t avail = size - off;
		uint8_t *copy = malloc(avail);
		memcpy(copy, data + off, avail);
		rv = wire_check_message(copy, avail, &len, why, sizeof why);
		free(copy);
		if (rv == WIRE_CHECK_MORE) {
			if (len <= avail)
				abort(); /* must ask for more than it has */
			return 0;
		}
		if (rv != WIRE_CHECK_COMPLETE)
			return 0;
		if (len == 0 || len > avail)
			abort();
		off += len;
	}
	return 0;
}
