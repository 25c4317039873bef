/*
 * sync/state/state.h -- the replicated state: what another agent needs to
 * take over.
 *
 * Every node holds one `struct state`, changed only by applying committed
 * Raft entries (state_machine() plugs it into raft/fsm). It holds:
 *   - the source cursor: an opaque blob (RFC 4533 cookie, DirSync cookie);
 *   - the object table: key -> value, both opaque byte strings. The sync
 *     engine keys it by source anchor (entryUUID, objectGUID) and stores its
 *     encoded object record (target id, content hash, DN, type) as the value.
 *
 * Entries are batches of operations, applied atomically: a batch that sets
 * the cursor and records the objects the target acknowledged is one entry, so
 * the cursor can never be committed without the objects before it
 * (invariant 1, "no lost change").
 *
 * Wire formats (little endian), version 1:
 *   batch entry (type STATE_ENTRY_BATCH): repeated ops
 *     u8 STATE_OP_CURSOR, u32 len, bytes
 *     u8 STATE_OP_PUT,    u16 klen, key, u32 vlen, value
 *     u8 STATE_OP_DEL,    u16 klen, key
 *   snapshot: u32 cursor len, cursor, u64 count, count x (u16 klen, key, u32 vlen, value)
 *
 * Version 2 (docs/architecture.md, "Rolling upgrades: formats and gating"):
 *   batch entry: u8 encoding, then
 *     STATE_ENCODING_PLAIN:   the version 1 ops
 *     STATE_ENCODING_DEFLATE: u32 length of the ops, the ops as one zlib
 *                             stream (RFC 1950/1951); the length is at most
 *                             STATE_BATCH_RAW_MAX
 *   snapshot: unchanged, still framed as version 1 (STATE_SNAPSHOT_VERSION),
 *   so an older node can install a snapshot taken by a newer one.
 * A leader writes version 2 only when every member of the configuration
 * advertised it (format.h); an older node refuses it (raft/fsm.h) and would
 * stall.
 */
#ifndef CANOPY_SYNC_STATE_H
#define CANOPY_SYNC_STATE_H

#include <raft.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "raft/fsm.h"

#define STATE_VERSION 2          /* highest entry format this build understands */
#define STATE_SNAPSHOT_VERSION 1 /* the snapshot format: unchanged since version 1 */
#define STATE_BATCH_RAW_MAX (256u << 20) /* largest decompressed batch (bytes) */
#define STATE_DEFLATE_MIN 512    /* smaller batches are not worth compressing */
#define STATE_KEY_MAX 65535

enum { STATE_ENTRY_BATCH = 1 };
enum { STATE_OP_CURSOR = 1, STATE_OP_PUT = 2, STATE_OP_DEL = 3 };
enum { STATE_ENCODING_PLAIN = 0, STATE_ENCODING_DEFLATE = 1 }; /* version 2 */

/*
 * The key namespaces: every key is "<letter>:...", the letter saying whose
 * it is. state_count() counts the keys of one namespace.
 */
enum state_ns {
	STATE_NS_CLUSTER = 'c',        /* the cluster id (cluster.h) */
	STATE_NS_STAGED = 'd',         /* staged deletes (object.h) */
	STATE_NS_FAILED = 'f',         /* failed objects (retry.h) */
	STATE_NS_INTENT = 'i',         /* write intents (object.h) */
	STATE_NS_STAGED_MEMBER = 'm',  /* staged member removals (object.h) */
	STATE_NS_NODE = 'n',           /* a node's control address (agent/) */
	STATE_NS_OBJECT = 'o',         /* exported objects (object.h) */
	STATE_NS_QUARANTINE = 'q',     /* the leader's quarantine (the sync engine) */
	STATE_NS_RETRY = 'r',          /* the retry set (retry.h) */
	STATE_NS_SYNC = 's',           /* the cluster-wide sync figures (figures.h) */
	STATE_NS_VERSION = 'v',        /* versions members advertised (format.h) */
	STATE_NS_WINDOW = 'w',         /* deletes executed recently (the sync engine) */
	STATE_NS_CONFIG = 'g',         /* the replicated sync configuration (agent/replconf.h) */
};

struct state_slot;

/* Read it through the functions below; the fields are the state machine's. */
struct state {
	struct state_slot **buckets;
	size_t n_buckets;
	size_t count;            /* keys in the table */
	size_t snap_bytes;       /* bytes the table's slots take in a snapshot */
	void *cursor;            /* NULL when never set */
	size_t cursor_len;
	uint64_t digest;         /* order-independent digest of the table, kept incrementally */
	/* Keys counted by their first byte: read through state_count(). */
	uint64_t by_prefix[256];
	/* Entries applied, by format version (status "format"), and how many
	 * of the version 2 ones were compressed. Local to this node. */
	uint64_t applied_by_version[STATE_VERSION + 1];
	uint64_t applied_deflated;
	struct fsm_machine machine;
	/* A snapshot being encoded off the loop (fsm.h, freeze/encode/thaw):
	 * the slots as they were at the freeze, and the cursor then. While
	 * frozen, a slot replaced or deleted is not freed but kept in
	 * `graveyard` until the thaw: the worker may still be reading it. */
	bool frozen;
	struct state_slot **frozen_slots;
	size_t n_frozen;
	void *frozen_cursor;
	size_t frozen_cursor_len;
	struct state_slot **graveyard;
	size_t n_graveyard, cap_graveyard;
};

/* Set up an empty state (out of memory aborts: common/xalloc.h). */
void state_init(struct state *s);
void state_close(struct state *s);

/* How many keys of namespace `ns` the table holds. */
uint64_t state_count(const struct state *s, enum state_ns ns);

/* How many keys the table holds, all namespaces together. */
size_t state_keys(const struct state *s);

/* The replicated source cursor, borrowed until the next apply; NULL (and
 * *len 0) when none was committed yet. */
const void *state_cursor(const struct state *s, size_t *len);

/* The fsm_machine to give to fsm_init(). */
struct fsm_machine *state_machine(struct state *s);

/* Look up `key`; returns true and borrows the value, or false. */
bool state_get(const struct state *s, const void *key, size_t klen, const void **val, size_t *vlen);

/*
 * Visit every key (all namespaces), in no particular order. Stops early and returns the
 * callback's value when it is non-zero.
 */
int state_foreach(const struct state *s,
		  int (*cb)(void *ctx, const void *key, size_t klen, const void *val, size_t vlen),
		  void *ctx);

/*
 * A digest of the object table and cursor that is equal on two nodes exactly
 * when (with overwhelming probability) they hold the same state. Shown by the
 * status API so operators and tests can compare nodes.
 */
uint64_t state_digest(const struct state *s);

/* ---- Building entries (on the leader) ---------------------------------- */

struct state_batch {
	unsigned char *buf;
	size_t len, cap;
	unsigned n_ops;
	int error; /* -EINVAL once a key or value was too long; reported by encode */
};

void state_batch_init(struct state_batch *b);
void state_batch_cursor(struct state_batch *b, const void *cursor, size_t len);
void state_batch_put(struct state_batch *b, const void *key, size_t klen, const void *val,
		     size_t vlen);
void state_batch_del(struct state_batch *b, const void *key, size_t klen);
/* Frame the batch into a raft_malloc'd buffer for raft_apply(), in format
 * version 1, which every canopy understands. Returns 0, -EINVAL when a key
 * was longer than STATE_KEY_MAX (or a value or cursor longer than 4 GB), or
 * -EFBIG when the whole batch is (fsm_encode). */
int state_batch_encode(struct state_batch *b, struct raft_buffer *out);

/* The same in format `version` (1 or 2, see above): version 2 deflates a
 * batch of STATE_DEFLATE_MIN bytes or more when that makes it smaller.
 * Only for a version every member supports (format.h). -EINVAL for a
 * version this build does not write. */
int state_batch_encode_version(struct state_batch *b, uint16_t version, struct raft_buffer *out);
void state_batch_close(struct state_batch *b);

#endif /* CANOPY_SYNC_STATE_H */
