/*
 * raft/wire_check.h -- validation of libraft 0.15's wire format before libraft
 * decodes it.
 *
 * libraft 0.15 trusts what arrives on its connections. Found by replaying
 * crafted messages against a member:
 *  - an AppendEntries of 96 bytes carrying one entry of type 0 crashes the
 *    server (segfault inside libraft; uv_encoding.c decodes the entry type
 *    without checking it in 0.15);
 *  - an entry count that does not match the header length makes
 *    uvDecodeBatchHeader (uv_encoding.c) read entry headers past the end of the
 *    header buffer, and a huge count allocates and reads far past it;
 *  - a handshake address without a NUL is handed to the accept callback as a
 *    C string (uv_tcp_listen.c: uvTcpIncomingReadCbAddress) and over-read by
 *    strcpy in uv_recv.c: uvServerInit;
 *  - RequestVote/RequestVoteResult/InstallSnapshot headers shorter than what
 *    decodeRequestVote & co. read are over-read (they never check the length);
 *  - a configuration (InstallSnapshot header, RAFT_CHANGE entry) is decoded by
 *    configurationDecode, which trusts its server count and lengths;
 *  - entries whose length is not a multiple of 8 are sliced with padding by
 *    uvDecodeEntriesBatch while the payload length counts them without it, so
 *    later entries point past the payload.
 *
 * The TLS transport (raft/transport_tls.h) therefore runs every byte that
 * comes from the network through these checks and hands libraft only whole
 * messages that passed; anything else drops the connection. The checks are
 * pure functions over a buffer (no allocation, no global state), so they are
 * unit-tested with crafted messages (tests/unit/test_wire_check.c) and fuzzed
 * (tests/fuzz/fuzz_raft_wire.c).
 *
 * Wire format (libraft 0.15, all integers little endian):
 *   handshake (uv_tcp_connect.c: encodeHandshake), once per connection:
 *     u64 protocol (1) | u64 server id | u64 address length L | L bytes:
 *     the address, NUL-terminated, zero-padded to a multiple of 8
 *   message (uv_encoding.c: uvEncodeMessage), repeated:
 *     u64 type (RAFT_IO_*) | u64 header length H | H bytes header | payload
 *   payload: AppendEntries: the entries' data, back to back (each padded to 8
 *   by its producer); InstallSnapshot: the snapshot data; others: none.
 */
#ifndef CANOPY_RAFT_WIRE_CHECK_H
#define CANOPY_RAFT_WIRE_CHECK_H

#include <stddef.h>
#include <stdint.h>

/* uv_tcp.h: UV__TCP_HANDSHAKE_PROTOCOL */
#define WIRE_CHECK_PROTOCOL 1

/* Bounds. Generous for canopy (addresses < 256 bytes, a few thousand log
 * entries at most between snapshots, entries of at most a few MB), tight
 * enough that a hostile length cannot make the transport or libraft allocate
 * without limit. */
#define WIRE_CHECK_MAX_ADDRESS 1024u                       /* handshake address buffer */
#define WIRE_CHECK_MAX_ENTRIES 65536u                      /* entries in one AppendEntries */
#define WIRE_CHECK_MAX_HEADER (48u + 16u * WIRE_CHECK_MAX_ENTRIES) /* one message header */
#define WIRE_CHECK_MAX_ENTRY (64u * 1024 * 1024)           /* one entry's data */
#define WIRE_CHECK_MAX_ENTRIES_PAYLOAD (256u * 1024 * 1024) /* all entries of one message */
#define WIRE_CHECK_MAX_SNAPSHOT (1024u * 1024 * 1024)      /* InstallSnapshot data */
#define WIRE_CHECK_MAX_SERVERS 1024u                       /* servers in one configuration */

/* Return values of wire_check_handshake() and wire_check_message(), besides
 * -EBADMSG (malformed: drop the connection). */
enum {
	WIRE_CHECK_COMPLETE = 0, /* *len bytes at buf form one valid unit */
	WIRE_CHECK_MORE = 1,     /* at least *len bytes are needed to decide */
};

/*
 * The connection handshake at the start of `buf` (avail bytes so far).
 * WIRE_CHECK_MORE: read until *len bytes are there and call again.
 * WIRE_CHECK_COMPLETE: the handshake is the first *len bytes; *id is the
 * claimed server id (>= 1) and *address points into buf at the NUL-terminated
 * address (non-empty, printable ASCII). -EBADMSG: `why` says what is wrong
 * (wrong protocol, id 0, address length 0 or above WIRE_CHECK_MAX_ADDRESS, no
 * NUL, control characters).
 */
int wire_check_handshake(const void *buf, size_t avail, size_t *len, uint64_t *id,
			 const char **address, char *why, size_t whylen);

/*
 * The message at the start of `buf` (avail bytes so far). Same convention:
 * WIRE_CHECK_MORE with the number of bytes needed to go further (the
 * preamble, then preamble + header, then the whole message), or
 * WIRE_CHECK_COMPLETE with the whole message's length in *len once every part
 * of it was checked:
 *   - type is one of RAFT_IO_APPEND_ENTRIES .. RAFT_IO_TIMEOUT_NOW;
 *   - the header length is exactly what that type's decoder reads
 *     (RequestVote 32 or 40, RequestVoteResult 16 or 24, AppendEntriesResult
 *     24, TimeoutNow 24, AppendEntries 48 + 16 per entry with the count in the
 *     header matching, InstallSnapshot 56 + its configuration);
 *   - AppendEntries: at most WIRE_CHECK_MAX_ENTRIES entries, each of type
 *     RAFT_COMMAND, RAFT_BARRIER or RAFT_CHANGE, with a term in 1..the
 *     message's term, a length in 8..WIRE_CHECK_MAX_ENTRY that is a multiple
 *     of 8, the lengths adding up to at most WIRE_CHECK_MAX_ENTRIES_PAYLOAD;
 *     a RAFT_CHANGE entry's data is a valid configuration;
 *   - InstallSnapshot: a valid configuration, snapshot data of
 *     1..WIRE_CHECK_MAX_SNAPSHOT bytes;
 *   - RequestVote: a candidate id >= 1.
 * A valid configuration (configuration.c: configurationEncode): format byte 1,
 * 1..WIRE_CHECK_MAX_SERVERS servers, each an id >= 1 (no duplicates), a
 * non-empty NUL-terminated printable address, a role of RAFT_STANDBY,
 * RAFT_VOTER or RAFT_SPARE; then at most 7 bytes of padding.
 * -EBADMSG: `why` names the message type and what is wrong.
 */
int wire_check_message(const void *buf, size_t avail, size_t *len, char *why, size_t whylen);

/*
 * One encoded configuration (src/configuration.c: configurationEncode): the
 * rules above for a RAFT_CHANGE entry -- format 1, 1..WIRE_CHECK_MAX_SERVERS
 * servers with distinct ids >= 1, printable NUL-terminated addresses, a known
 * role, at most 7 bytes of padding after. Returns 0, or -EBADMSG with why.
 * A buffer it accepts decodes without further checks (raft/recover.h).
 */
int wire_check_configuration(const void *buf, size_t len, char *why, size_t whylen);

/* The name of a RAFT_IO_* message type ("AppendEntries", ...), "unknown" otherwise. */
const char *wire_check_type_name(uint64_t type);

#endif /* CANOPY_RAFT_WIRE_CHECK_H */
