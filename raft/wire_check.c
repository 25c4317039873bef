/*
 * raft/wire_check.c -- checks of libraft 0.15's wire format (see wire_check.h).
 *
 * Every read is bounds-checked against `avail` first; nothing here trusts a
 * length before comparing it with what is there.
 */
#include "raft/wire_check.h"

#include <errno.h>
#include <raft.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <string.h>

static uint64_t get64(const uint8_t *p)
{
	uint64_t v = 0;
	for (int i = 7; i >= 0; i--)
		v = (v << 8) | p[i];
	return v;
}

static uint32_t get32(const uint8_t *p)
{
	return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}

__attribute__((format(printf, 3, 4))) static int bad(char *why, size_t whylen, const char *fmt, ...)
{
	va_list ap;
	if (why != NULL && whylen > 0) {
		va_start(ap, fmt);
		vsnprintf(why, whylen, fmt, ap);
		va_end(ap);
	}
	return -EBADMSG;
}

const char *wire_check_type_name(uint64_t type)
{
	switch (type) {
	case RAFT_IO_APPEND_ENTRIES:
		return "AppendEntries";
	case RAFT_IO_APPEND_ENTRIES_RESULT:
		return "AppendEntriesResult";
	case RAFT_IO_REQUEST_VOTE:
		return "RequestVote";
	case RAFT_IO_REQUEST_VOTE_RESULT:
		return "RequestVoteResult";
	case RAFT_IO_INSTALL_SNAPSHOT:
		return "InstallSnapshot";
	case RAFT_IO_TIMEOUT_NOW:
		return "TimeoutNow";
	default:
		return "unknown";
	}
}

/* A NUL-terminated, non-empty, printable string within [p, p + max);
 * returns its length, or -1. */
static long printable_string(const uint8_t *p, size_t max)
{
	const uint8_t *nul = memchr(p, 0, max);
	size_t n;

	if (nul == NULL)
		return -1;
	n = (size_t)(nul - p);
	if (n == 0)
		return -1;
	for (size_t i = 0; i < n; i++)
		if (p[i] < 0x20 || p[i] > 0x7e)
			return -1;
	return (long)n;
}

int wire_check_handshake(const void *buf, size_t avail, size_t *len, uint64_t *id,
			 const char **address, char *why, size_t whylen)
{
	const uint8_t *p = buf;
	uint64_t protocol, alen;

	if (avail < 24) {
		*len = 24;
		return WIRE_CHECK_MORE;
	}
	protocol = get64(p);
	if (protocol != WIRE_CHECK_PROTOCOL)
		return bad(why, whylen, "handshake: protocol %llu, expected %d",
			   (unsigned long long)protocol, WIRE_CHECK_PROTOCOL);
	*id = get64(p + 8);
	if (*id == 0)
		return bad(why, whylen, "handshake: server id 0");
	alen = get64(p + 16);
	if (alen == 0 || alen > WIRE_CHECK_MAX_ADDRESS)
		return bad(why, whylen, "handshake: address length %llu (1..%u allowed)",
			   (unsigned long long)alen, WIRE_CHECK_MAX_ADDRESS);
	if (avail < 24 + alen) {
		*len = 24 + (size_t)alen;
		return WIRE_CHECK_MORE;
	}
	if (memchr(p + 24, 0, (size_t)alen) == NULL)
		return bad(why, whylen, "handshake: address of %llu bytes without a NUL",
			   (unsigned long long)alen);
	if (printable_string(p + 24, (size_t)alen) < 0)
		return bad(why, whylen, "handshake: address empty or not printable");
	*address = (const char *)(p + 24);
	*len = 24 + (size_t)alen;
	return WIRE_CHECK_COMPLETE;
}

/* configuration.c: configurationEncode (0.15). */
static int check_configuration(const uint8_t *p, size_t n, const char *what, char *why,
			       size_t whylen)
{
	size_t off = 9;
	uint64_t count;

	if (n < 9)
		return bad(why, whylen, "%s: configuration of %zu bytes", what, n);
	if (p[0] != 1)
		return bad(why, whylen, "%s: configuration format %u, expected 1", what, p[0]);
	count = get64(p + 1);
	if (count == 0 || count > WIRE_CHECK_MAX_SERVERS)
		return bad(why, whylen, "%s: configuration with %llu servers (1..%u allowed)", what,
			   (unsigned long long)count, WIRE_CHECK_MAX_SERVERS);
	for (uint64_t i = 0; i < count; i++) {
		uint64_t id;
		long alen;

		if (n - off < 8 + 2 + 1)
			return bad(why, whylen, "%s: configuration truncated in server %llu of %llu", what,
				   (unsigned long long)i + 1, (unsigned long long)count);
		id = get64(p + off);
		if (id == 0)
			return bad(why, whylen, "%s: configuration lists server id 0", what);
		/* Duplicates: raft_configuration_add refuses them, but only after
		 * half-building the configuration; cheap to refuse here (count is
		 * bounded). The ids seen so far are re-read from the buffer. */
		for (size_t o = 9; o < off;) {
			long l = printable_string(p + o + 8, n - o - 8);
			if (get64(p + o) == id)
				return bad(why, whylen, "%s: configuration lists server %llu twice", what,
					   (unsigned long long)id);
			o += 8 + (size_t)l + 1 + 1;
		}
		off += 8;
		alen = printable_string(p + off, n - off);
		if (alen < 0)
			return bad(why, whylen,
				   "%s: configuration server %llu: address empty, not printable or without NUL",
				   what, (unsigned long long)id);
		off += (size_t)alen + 1;
		if (off >= n)
			return bad(why, whylen, "%s: configuration server %llu: role missing", what,
				   (unsigned long long)id);
		if (p[off] != RAFT_STANDBY && p[off] != RAFT_VOTER && p[off] != RAFT_SPARE)
			return bad(why, whylen, "%s: configuration server %llu: role %u", what,
				   (unsigned long long)id, p[off]);
		off++;
	}
	if (n - off > 7)
		return bad(why, whylen, "%s: %zu bytes after the configuration", what, n - off);
	return 0;
}

int wire_check_configuration(const void *buf, size_t len, char *why, size_t whylen)
{
	return check_configuration(buf, len, "configuration", why, whylen);
}

/*
 * Everything but the payload of an AppendEntries: returns the payload length.
 * Header (uv_encoding.c): term, prev log index, prev log term, leader commit,
 * entry count, 16 bytes per entry (term, type, 3 unused, length u32). Its
 * length is 48 + 16 n: sizeofAppendEntries counts a leader id that
 * encodeAppendEntries never writes, so the last 8 bytes are unused.
 */
static int check_append_entries(const uint8_t *h, size_t hlen, size_t *payload, char *why,
				size_t whylen)
{
	uint64_t term, count, total = 0;

	if (hlen < 48 || (hlen - 48) % 16 != 0)
		return bad(why, whylen, "AppendEntries: header of %zu bytes (48 + 16 per entry expected)",
			   hlen);
	term = get64(h);
	if (term == 0)
		return bad(why, whylen, "AppendEntries: term 0");
	count = get64(h + 32);
	if (count != (hlen - 48) / 16)
		return bad(why, whylen, "AppendEntries: %llu entries announced, header has room for %zu",
			   (unsigned long long)count, (hlen - 48) / 16);
	if (count > WIRE_CHECK_MAX_ENTRIES)
		return bad(why, whylen, "AppendEntries: %llu entries (at most %u)",
			   (unsigned long long)count, WIRE_CHECK_MAX_ENTRIES);
	for (uint64_t i = 0; i < count; i++) {
		const uint8_t *e = h + 40 + 16 * i;
		uint64_t eterm = get64(e);
		uint8_t type = e[8];
		uint32_t elen = get32(e + 12);

		if (type != RAFT_COMMAND && type != RAFT_BARRIER && type != RAFT_CHANGE)
			return bad(why, whylen, "AppendEntries: entry %llu has type %u",
				   (unsigned long long)i, type);
		if (eterm == 0 || eterm > term)
			return bad(why, whylen, "AppendEntries: entry %llu has term %llu (message term %llu)",
				   (unsigned long long)i, (unsigned long long)eterm,
				   (unsigned long long)term);
		if (elen < 8 || elen % 8 != 0 || elen > WIRE_CHECK_MAX_ENTRY)
			return bad(why, whylen,
				   "AppendEntries: entry %llu has length %u (a multiple of 8 in 8..%u expected)",
				   (unsigned long long)i, elen, WIRE_CHECK_MAX_ENTRY);
		total += elen;
		if (total > WIRE_CHECK_MAX_ENTRIES_PAYLOAD)
			return bad(why, whylen, "AppendEntries: entries larger than %u bytes in all",
				   WIRE_CHECK_MAX_ENTRIES_PAYLOAD);
	}
	*payload = (size_t)total;
	return 0;
}

static int check_install_snapshot(const uint8_t *h, size_t hlen, size_t *payload, char *why,
				  size_t whylen)
{
	uint64_t clen, dlen;
	int rv;

	/* Header (uv_encoding.c): term, last index, last term, configuration
	 * index, configuration length, configuration, data length; 56 + the
	 * configuration long (as with AppendEntries, sizeofInstallSnapshot
	 * counts a leader id that is never written: 8 unused bytes at the end). */
	if (hlen < 56 + 9)
		return bad(why, whylen, "InstallSnapshot: header of %zu bytes", hlen);
	clen = get64(h + 32);
	if (clen != hlen - 56)
		return bad(why, whylen,
			   "InstallSnapshot: configuration of %llu bytes in a header of %zu bytes",
			   (unsigned long long)clen, hlen);
	rv = check_configuration(h + 40, (size_t)clen, "InstallSnapshot", why, whylen);
	if (rv != 0)
		return rv;
	dlen = get64(h + 40 + clen);
	if (dlen == 0 || dlen > WIRE_CHECK_MAX_SNAPSHOT)
		return bad(why, whylen, "InstallSnapshot: snapshot of %llu bytes (1..%u allowed)",
			   (unsigned long long)dlen, WIRE_CHECK_MAX_SNAPSHOT);
	*payload = (size_t)dlen;
	return 0;
}

/* The header of a message of `type`; sets the payload length that follows. */
static int check_header(uint64_t type, const uint8_t *h, size_t hlen, size_t *payload, char *why,
			size_t whylen)
{
	*payload = 0;
	switch (type) {
	case RAFT_IO_APPEND_ENTRIES:
		return check_append_entries(h, hlen, payload, why, whylen);
	case RAFT_IO_APPEND_ENTRIES_RESULT:
	case RAFT_IO_TIMEOUT_NOW:
		if (hlen != 24)
			return bad(why, whylen, "%s: header of %zu bytes (24 expected)",
				   wire_check_type_name(type), hlen);
		return 0;
	case RAFT_IO_REQUEST_VOTE:
		if (hlen != 32 && hlen != 40)
			return bad(why, whylen, "RequestVote: header of %zu bytes (32 or 40 expected)", hlen);
		if (get64(h + 8) == 0)
			return bad(why, whylen, "RequestVote: candidate id 0");
		return 0;
	case RAFT_IO_REQUEST_VOTE_RESULT:
		if (hlen != 16 && hlen != 24)
			return bad(why, whylen,
				   "RequestVoteResult: header of %zu bytes (16 or 24 expected)", hlen);
		return 0;
	case RAFT_IO_INSTALL_SNAPSHOT:
		return check_install_snapshot(h, hlen, payload, why, whylen);
	default:
		return bad(why, whylen, "message type %llu unknown", (unsigned long long)type);
	}
}

/* The payload of an AppendEntries: the configuration in each RAFT_CHANGE entry. */
static int check_entries_payload(const uint8_t *h, const uint8_t *payload, char *why,
				 size_t whylen)
{
	uint64_t count = get64(h + 32);
	size_t off = 0;
	char what[64];

	for (uint64_t i = 0; i < count; i++) {
		const uint8_t *e = h + 40 + 16 * i;
		uint32_t elen = get32(e + 12);
		if (e[8] == RAFT_CHANGE) {
			snprintf(what, sizeof what, "AppendEntries: entry %llu", (unsigned long long)i);
			int rv = check_configuration(payload + off, elen, what, why, whylen);
			if (rv != 0)
				return rv;
		}
		off += elen;
	}
	return 0;
}

int wire_check_message(const void *buf, size_t avail, size_t *len, char *why, size_t whylen)
{
	const uint8_t *p = buf;
	uint64_t type, hlen;
	size_t payload;
	int rv;

	if (avail < 16) {
		*len = 16;
		return WIRE_CHECK_MORE;
	}
	type = get64(p);
	hlen = get64(p + 8);
	if (type < RAFT_IO_APPEND_ENTRIES || type > RAFT_IO_TIMEOUT_NOW)
		return bad(why, whylen, "message type %llu unknown", (unsigned long long)type);
	if (hlen == 0 || hlen > WIRE_CHECK_MAX_HEADER)
		return bad(why, whylen, "%s: header length %llu (1..%u allowed)", wire_check_type_name(type),
			   (unsigned long long)hlen, WIRE_CHECK_MAX_HEADER);
	if (avail < 16 + hlen) {
		*len = 16 + (size_t)hlen;
		return WIRE_CHECK_MORE;
	}
	rv = check_header(type, p + 16, (size_t)hlen, &payload, why, whylen);
	if (rv != 0)
		return rv;
	if (avail < 16 + hlen + payload) {
		*len = 16 + (size_t)hlen + payload;
		return WIRE_CHECK_MORE;
	}
	if (type == RAFT_IO_APPEND_ENTRIES) {
		rv = check_entries_payload(p + 16, p + 16 + hlen, why, whylen);
		if (rv != 0)
			return rv;
	}
	*len = 16 + (size_t)hlen + payload;
	return WIRE_CHECK_COMPLETE;
}
