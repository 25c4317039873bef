/*
 * raft/fsm.h -- a generic libraft state machine for versioned, opaque entries.
 *
 * raft/ knows nothing about identities. What canopy replicates (the cursor,
 * the object table, staged deletes, configuration) is implemented in
 * sync/state/ as a `struct fsm_machine`; this module adapts it to libraft's
 * `struct raft_fsm` and owns the framing that every log entry and snapshot
 * carries:
 *
 *     offset size  field
 *     0      4     magic "CNPY"
 *     4      2     format version (little endian)
 *     6      2     entry type     (little endian, meaning owned by the machine)
 *     8      4     payload length (little endian)
 *     12     4     reserved, zero (libraft already checksums log segments
 *                  and snapshot files on disk, so no CRC of our own)
 *     16     n     payload
 *
 * Why a version on every entry: during a rolling upgrade a cluster runs mixed
 * versions, and a node must refuse an entry it does not understand rather than
 * misapply it (docs/architecture.md, "The replicated state"). A refused entry
 * makes fsm apply fail; libraft 0.15 then leaves last_applied where it was
 * and retries later, so the node stalls visibly (its applied_index stops in
 * /v1/status) instead of diverging. Upgrading the binary resumes it.
 */
#ifndef CANOPY_RAFT_FSM_H
#define CANOPY_RAFT_FSM_H

#include <raft.h>
#include <stddef.h>
#include <stdint.h>

#define FSM_HEADER_SIZE 16

/* Errors the framing layer reports (negative, distinct from errno values). */
enum {
	FSM_EBADMAGIC = -1001, /* not a canopy entry */
	FSM_ETRUNCATED = -1002, /* shorter than its header says */
	FSM_ERESERVED = -1003, /* reserved bits set: a format we do not know */
	FSM_EVERSION = -1004,  /* written by a newer canopy: refused */
};

/*
 * The replicated state machine proper, implemented outside raft/.
 *
 * apply:    apply one entry; `version` is at most `max_version`. Must be
 *           deterministic: every node applies the same entries in the same
 *           order and must reach the same state. May set *result (passed to
 *           the raft_apply callback on the node that proposed the entry).
 *           Returns 0, or a negative code to refuse the entry.
 * snapshot: serialize the whole state into one malloc'd buffer (never fails:
 *           out of memory aborts, common/xalloc.h).
 * freeze, encode, thaw (optional, all three or none): the same snapshot off
 *           the event loop. Serializing a large table takes long -- 0.4 s at
 *           100,000 objects, 8 s at a million on 2 cores -- and on the loop it
 *           stops heartbeats: the write lease runs out and the followers elect
 *           another leader. With these, libraft takes the snapshot in three
 *           steps (raft_fsm version 3, raft.h; src/replication.c
 *           takeSnapshot): `freeze` on the loop fixes the state as it is now,
 *           cheaply, and returns the payload's exact size; `encode` writes
 *           that payload into `buf` on a libuv worker thread while the loop
 *           goes on applying entries, so it may read only what freeze fixed;
 *           `thaw` on the loop, once the snapshot is written or abandoned,
 *           releases what freeze kept. At most one freeze at a time
 *           (libraft takes one snapshot at a time).
 * restore:  replace the whole state with a snapshot's payload.
 * errmsg:   where apply/restore describe a refusal (for the log).
 *
 * max_version is the newest entry format the machine applies; snapshots are
 * framed with snapshot_version (0: max_version), which may be older: a
 * machine whose entry format grew but whose snapshot format did not keeps
 * its snapshots readable by older nodes (a leader sends them to followers
 * that fell behind, whatever version those run).
 */
struct fsm_machine {
	void *data;
	uint16_t max_version;
	uint16_t snapshot_version;
	int (*apply)(void *data, uint16_t type, uint16_t version, const void *payload, size_t len,
		     void **result, char *errmsg, size_t errlen);
	void (*snapshot)(void *data, void **buf, size_t *len);
	int (*restore)(void *data, uint16_t version, const void *payload, size_t len, char *errmsg,
		       size_t errlen);
	void (*freeze)(void *data, size_t *len);
	void (*encode)(void *data, void *buf, size_t len);
	void (*thaw)(void *data);
};

/* Statistics of the adapter, for /metrics and tests. */
struct fsm_stats {
	uint64_t applied;       /* entries applied */
	uint64_t applied_bytes; /* their bytes, framing included: what libraft's log holds for them */
	uint64_t refused;       /* entries refused (version, framing, machine error) */
	uint64_t snapshots;     /* snapshots taken */
	uint64_t snapshot_encode_ms; /* the latest snapshot's encoding (off the loop when async) */
	uint64_t restores;      /* snapshots restored */
	char last_error[256];   /* why the last entry was refused */
};

struct fsm {
	struct raft_fsm raft;   /* hand &fsm->raft to raft_init() */
	struct fsm_machine *machine;
	struct fsm_stats stats;
	uint64_t encode_ns; /* the running snapshot's encoding, set by the worker */
};

/* Wire `f` to `machine`. Never fails. Snapshots are taken on the loop
 * (raft_fsm version 1) until fsm_snapshot_off_loop. */
void fsm_init(struct fsm *f, struct fsm_machine *machine);

/* Take snapshots off the event loop (raft_fsm version 3, before raft_init):
 * the raft_io must implement async_work, as raft_uv does (libraft's test
 * fixture does not). Returns 0, or -ENOTSUP when the machine has no
 * freeze/encode/thaw. */
int fsm_snapshot_off_loop(struct fsm *f);

/* The whole snapshot libraft would write, taken now on this thread (every
 * step in turn) and joined into one raft_malloc'd buffer `out`, as restore
 * receives it: for tests and tools without libraft's disk I/O. */
void fsm_snapshot_now(struct fsm *f, struct raft_buffer *out);

/*
 * Frame `payload` as an entry of `type`/`version` into `out`, allocated with
 * raft_malloc() as raft_apply() requires. Returns 0, or -EFBIG when the
 * payload does not fit the header's 32-bit length (out of memory aborts).
 */
int fsm_encode(uint16_t type, uint16_t version, const void *payload, size_t len,
	       struct raft_buffer *out);

/*
 * Check the framing of `buf` and return its fields. Returns 0 or one of the
 * FSM_E* codes; `max_version` is the highest version the caller understands.
 */
int fsm_decode(const struct raft_buffer *buf, uint16_t max_version, uint16_t *type,
	       uint16_t *version, const void **payload, size_t *len);

/*
 * What libraft's loader does with a snapshot the FSM took in several
 * buffers (the snapshot callback gives the header and the machine's payload
 * separately, to spare a copy): concatenate bufs[0..n) into one
 * raft_malloc'd buffer `out` -- what restore receives after a restart or an
 * install -- and free them and the array. For tests and tools that hand a
 * snapshot to restore without libraft's disk I/O in between.
 */
void fsm_snapshot_join(struct raft_buffer *bufs, unsigned n, struct raft_buffer *out);

/* Human-readable text for an FSM_E* code (or strerror for errno values). */
const char *fsm_strerror(int rv);

#endif /* CANOPY_RAFT_FSM_H */
