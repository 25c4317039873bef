/*
 * tests/unit/test_wire_check.c -- raft/wire_check.h against crafted messages:
 * the libraft 0.15 decoder findings are refused, well-formed messages (as
 * libraft 0.15's uv_encoding.c writes them) pass, and partial input asks for
 * more instead of reading past the buffer.
 */
#include <errno.h>
#include <raft.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "raft/wire_check.h"

static void put64(uint8_t *p, uint64_t v)
{
	for (int i = 0; i < 8; i++)
		p[i] = (uint8_t)(v >> (8 * i));
}

static void put32(uint8_t *p, uint32_t v)
{
	for (int i = 0; i < 4; i++)
		p[i] = (uint8_t)(v >> (8 * i));
}

/* An AppendEntries as uv_encoding.c writes it: n entries of `dlen` bytes. */
static size_t append_entries(uint8_t *b, uint64_t term, unsigned n, uint64_t announced, uint8_t type,
			     uint32_t dlen)
{
	size_t hlen = 48 + 16 * (size_t)n;
	memset(b, 0, 16 + hlen + (size_t)n * dlen);
	put64(b, RAFT_IO_APPEND_ENTRIES);
	put64(b + 8, hlen);
	put64(b + 16, term);
	put64(b + 48, announced);
	for (unsigned i = 0; i < n; i++) {
		uint8_t *e = b + 56 + 16 * i;
		put64(e, term);
		e[8] = type;
		put32(e + 12, dlen);
	}
	return 16 + hlen + (size_t)n * dlen;
}

static int check(const uint8_t *b, size_t n, size_t *len, char *why)
{
	return wire_check_message(b, n, len, why, 256);
}

static void valid_append_entries_pass(void **state)
{
	uint8_t b[512];
	char why[256];
	size_t len, n = append_entries(b, 3, 2, 2, RAFT_COMMAND, 16);
	(void)state;
	assert_int_equal(check(b, n, &len, why), WIRE_CHECK_COMPLETE);
	assert_int_equal(len, n);
	/* A heartbeat: no entries. */
	n = append_entries(b, 3, 0, 0, 0, 0);
	assert_int_equal(check(b, n, &len, why), WIRE_CHECK_COMPLETE);
	assert_int_equal(len, 64);
}

static void partial_input_asks_for_more(void **state)
{
	uint8_t b[512];
	char why[256];
	size_t len, n = append_entries(b, 3, 1, 1, RAFT_BARRIER, 8);
	(void)state;
	for (size_t i = 0; i < n; i++) {
		int rv = check(b, i, &len, why);
		assert_int_equal(rv, WIRE_CHECK_MORE);
		assert_true(len > i && len <= n);
	}
}

/* The 96-byte AppendEntries with one entry of type 0 that crashes 0.15. */
static void entry_type_zero_is_refused(void **state)
{
	uint8_t b[512];
	char why[256];
	size_t len, n = append_entries(b, 1, 1, 1, 0, 16);
	(void)state;
	assert_int_equal(n, 96);
	assert_int_equal(check(b, n, &len, why), -EBADMSG);
	assert_non_null(strstr(why, "type 0"));
	append_entries(b, 1, 1, 1, 4, 16);
	assert_int_equal(check(b, n, &len, why), -EBADMSG);
}

static void oversized_count_is_refused(void **state)
{
	uint8_t b[512];
	char why[256];
	size_t len, n = append_entries(b, 1, 1, (uint64_t)1 << 40, RAFT_COMMAND, 16);
	(void)state;
	assert_int_equal(check(b, n, &len, why), -EBADMSG);
	assert_non_null(strstr(why, "entries announced"));
	/* A count matching a header larger than the cap: refused from the preamble. */
	put64(b + 8, WIRE_CHECK_MAX_HEADER + 16);
	assert_int_equal(check(b, 16, &len, why), -EBADMSG);
	/* Header length 0 (uv_recv.c aborts) and a header of 2^63. */
	put64(b + 8, 0);
	assert_int_equal(check(b, 16, &len, why), -EBADMSG);
	put64(b + 8, (uint64_t)1 << 63);
	assert_int_equal(check(b, 16, &len, why), -EBADMSG);
}

static void entry_lengths_are_checked(void **state)
{
	uint8_t b[512];
	char why[256];
	size_t len, n;
	(void)state;
	n = append_entries(b, 1, 2, 2, RAFT_COMMAND, 12); /* not a multiple of 8 */
	assert_int_equal(check(b, n, &len, why), -EBADMSG);
	n = append_entries(b, 1, 1, 1, RAFT_COMMAND, 0);
	assert_int_equal(check(b, n, &len, why), -EBADMSG);
	n = append_entries(b, 1, 1, 1, RAFT_COMMAND, 8);
	put32(b + 56 + 12, WIRE_CHECK_MAX_ENTRY + 8);
	assert_int_equal(check(b, n, &len, why), -EBADMSG);
	/* Entry term above the message's term, and term 0. */
	n = append_entries(b, 2, 1, 1, RAFT_COMMAND, 8);
	put64(b + 56, 3);
	assert_int_equal(check(b, n, &len, why), -EBADMSG);
	put64(b + 56, 0);
	assert_int_equal(check(b, n, &len, why), -EBADMSG);
}

/* A configuration as configuration.c encodes it. */
static size_t configuration(uint8_t *p, unsigned n, bool nul)
{
	size_t off = 9;
	p[0] = 1;
	put64(p + 1, n);
	for (unsigned i = 0; i < n; i++) {
		put64(p + off, i + 1);
		off += 8;
		off += (size_t)sprintf((char *)p + off, "127.0.0.1:700%u", i + 1);
		if (nul)
			p[off++] = 0;
		p[off++] = RAFT_VOTER;
	}
	while (off % 8)
		p[off++] = 0;
	return off;
}

static void change_entry_configuration_is_checked(void **state)
{
	uint8_t b[1024], conf[256];
	char why[256];
	size_t len, clen = configuration(conf, 3, true), n;
	(void)state;
	n = append_entries(b, 1, 1, 1, RAFT_CHANGE, (uint32_t)clen);
	memcpy(b + 16 + 64, conf, clen);
	assert_int_equal(check(b, n, &len, why), WIRE_CHECK_COMPLETE);
	/* Addresses without NUL: the server count walks past the entry. */
	clen = configuration(conf, 3, false);
	n = append_entries(b, 1, 1, 1, RAFT_CHANGE, (uint32_t)clen);
	memcpy(b + 16 + 64, conf, clen);
	assert_int_equal(check(b, n, &len, why), -EBADMSG);
	/* A server count far beyond the data. */
	clen = configuration(conf, 1, true);
	put64(conf + 1, 1000);
	n = append_entries(b, 1, 1, 1, RAFT_CHANGE, (uint32_t)clen);
	memcpy(b + 16 + 64, conf, clen);
	assert_int_equal(check(b, n, &len, why), -EBADMSG);
	/* Duplicate id. */
	clen = configuration(conf, 2, true);
	put64(conf + 9 + 8 + strlen("127.0.0.1:7001") + 2, 1);
	n = append_entries(b, 1, 1, 1, RAFT_CHANGE, (uint32_t)clen);
	memcpy(b + 16 + 64, conf, clen);
	assert_int_equal(check(b, n, &len, why), -EBADMSG);
	assert_non_null(strstr(why, "twice"));
}

static void install_snapshot_is_checked(void **state)
{
	uint8_t b[1024], conf[256];
	char why[256];
	size_t len, clen = configuration(conf, 2, true), hlen = 56 + clen;
	(void)state;
	memset(b, 0, sizeof b);
	put64(b, RAFT_IO_INSTALL_SNAPSHOT);
	put64(b + 8, hlen);
	put64(b + 16, 2);       /* term */
	put64(b + 16 + 32, clen);
	memcpy(b + 16 + 40, conf, clen);
	put64(b + 16 + 40 + clen, 32); /* data length */
	assert_int_equal(check(b, 16 + hlen + 32, &len, why), WIRE_CHECK_COMPLETE);
	assert_int_equal(len, 16 + hlen + 32);
	put64(b + 16 + 32, clen + 8); /* configuration longer than the header */
	assert_int_equal(check(b, 16 + hlen + 32, &len, why), -EBADMSG);
	put64(b + 16 + 32, clen);
	put64(b + 16 + 40 + clen, (uint64_t)WIRE_CHECK_MAX_SNAPSHOT + 1);
	assert_int_equal(check(b, 16 + hlen, &len, why), -EBADMSG);
}

static void fixed_size_headers_are_exact(void **state)
{
	static const struct {
		uint64_t type, hlen;
		int ok;
	} cases[] = {
		{RAFT_IO_REQUEST_VOTE, 32, 1},        {RAFT_IO_REQUEST_VOTE, 40, 1},
		{RAFT_IO_REQUEST_VOTE, 8, 0},         {RAFT_IO_REQUEST_VOTE, 48, 0},
		{RAFT_IO_REQUEST_VOTE_RESULT, 16, 1}, {RAFT_IO_REQUEST_VOTE_RESULT, 24, 1},
		{RAFT_IO_REQUEST_VOTE_RESULT, 8, 0},  {RAFT_IO_APPEND_ENTRIES_RESULT, 24, 1},
		{RAFT_IO_APPEND_ENTRIES_RESULT, 16, 0}, {RAFT_IO_TIMEOUT_NOW, 24, 1},
		{RAFT_IO_TIMEOUT_NOW, 8, 0},          {0, 24, 0},
		{7, 24, 0},                           {(uint64_t)-1, 24, 0},
	};
	uint8_t b[128];
	char why[256];
	size_t len;
	(void)state;
	for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
		memset(b, 0, sizeof b);
		put64(b, cases[i].type);
		put64(b + 8, cases[i].hlen);
		put64(b + 16, 1);
		put64(b + 24, 1); /* candidate id */
		int rv = check(b, 16 + cases[i].hlen, &len, why);
		assert_int_equal(rv, cases[i].ok ? WIRE_CHECK_COMPLETE : -EBADMSG);
	}
	/* RequestVote from candidate 0. */
	put64(b, RAFT_IO_REQUEST_VOTE);
	put64(b + 8, 40);
	put64(b + 24, 0);
	assert_int_equal(check(b, 56, &len, why), -EBADMSG);
}

static void handshake(void **state)
{
	uint8_t b[128];
	char why[256];
	size_t len;
	uint64_t id;
	const char *addr;
	(void)state;
	memset(b, 0, sizeof b);
	put64(b, 1);
	put64(b + 8, 2);
	put64(b + 16, 16);
	strcpy((char *)b + 24, "127.0.0.1:7002");
	assert_int_equal(wire_check_handshake(b, 30, &len, &id, &addr, why, sizeof why), WIRE_CHECK_MORE);
	assert_int_equal(len, 40);
	assert_int_equal(wire_check_handshake(b, 40, &len, &id, &addr, why, sizeof why), WIRE_CHECK_COMPLETE);
	assert_int_equal(id, 2);
	assert_string_equal(addr, "127.0.0.1:7002");
	/* No NUL in the address: libraft 0.15 would strcpy past it. */
	memset(b + 24, 'A', 16);
	assert_int_equal(wire_check_handshake(b, 40, &len, &id, &addr, why, sizeof why), -EBADMSG);
	assert_non_null(strstr(why, "without a NUL"));
	/* Protocol, id 0, huge address length, empty address. */
	strcpy((char *)b + 24, "127.0.0.1:7002");
	put64(b, 2);
	assert_int_equal(wire_check_handshake(b, 40, &len, &id, &addr, why, sizeof why), -EBADMSG);
	put64(b, 1);
	put64(b + 8, 0);
	assert_int_equal(wire_check_handshake(b, 40, &len, &id, &addr, why, sizeof why), -EBADMSG);
	put64(b + 8, 2);
	put64(b + 16, (uint64_t)1 << 62);
	assert_int_equal(wire_check_handshake(b, 40, &len, &id, &addr, why, sizeof why), -EBADMSG);
	put64(b + 16, 16);
	b[24] = 0;
	assert_int_equal(wire_check_handshake(b, 40, &len, &id, &addr, why, sizeof why), -EBADMSG);
	b[24] = '\n';
	assert_int_equal(wire_check_handshake(b, 40, &len, &id, &addr, why, sizeof why), -EBADMSG);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(valid_append_entries_pass),
		cmocka_unit_test(partial_input_asks_for_more),
		cmocka_unit_test(entry_type_zero_is_refused),
		cmocka_unit_test(oversized_count_is_refused),
		cmocka_unit_test(entry_lengths_are_checked),
		cmocka_unit_test(change_entry_configuration_is_checked),
		cmocka_unit_test(install_snapshot_is_checked),
		cmocka_unit_test(fixed_size_headers_are_exact),
		cmocka_unit_test(handshake),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
