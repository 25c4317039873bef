/*
 * sync/replog/replog.h -- the replicated-log port: how the engine commits
 * and when it may write.
 *
 * The engine never talks to Raft. It proposes entries built with
 * sync/state/state.h (state_batch) and learns, through this table, what the
 * leadership allows: whether this node leads (after its barrier), whether
 * the write lease holds right now, the term its writes are fenced with, and
 * the failover bound that paces in-doubt repair. sync/replog/raft_replog.c
 * implements it over raft/node.h and raft/leader.h; tests implement it over
 * a bare struct state. The table follows libraft's struct raft_io: function
 * pointers plus `impl`. Loop thread only.
 *
 * docs/architecture.md, "Leadership" and "Write lease", say why each of
 * these exists; the engine's rules built on them:
 *   - nothing leaves for the target unless may_write() (fencing: one
 *     exporter at a time);
 *   - a batch's changes and the cursor past them are one entry (no lost
 *     change): propose() succeeds for the whole entry or not at all.
 */
#ifndef CANOPY_SYNC_REPLOG_REPLOG_H
#define CANOPY_SYNC_REPLOG_REPLOG_H

#include <stdbool.h>
#include <stdint.h>

#include "sync/state/state.h"

/* The entry committed and was applied on this node (status 0), or it will
 * never be (status != 0: leadership lost, I/O error, ...). */
typedef void (*replog_done_cb)(void *arg, int status);

struct replog {
	void *impl;

	/* The term this node leads in (0 when it does not). Writes carry it. */
	uint64_t (*term)(struct replog *l);

	/* This node leads and its post-election barrier committed: the state
	 * holds every committed entry. */
	bool (*ready)(struct replog *l);

	/* ready() and the write lease holds right now: requests may go out. */
	bool (*may_write)(struct replog *l);

	/*
	 * Propose `b` as one entry (b stays the caller's: close it after).
	 * Returns 0 and cb(arg, status) runs once, later, on the loop; or a
	 * non-zero code without calling cb (not leader, an entry that cannot be
	 * encoded). A committed entry renews the lease.
	 */
	int (*propose)(struct replog *l, struct state_batch *b, replog_done_cb cb, void *arg);

	/* T, the failover bound (cluster.election_timeout_ms): a new leader
	 * exports within it. */
	unsigned (*failover_ms)(struct replog *l);

	/* How often the engine checks the lease while requests are out: well
	 * inside the lease's safety margin. */
	unsigned (*lease_check_ms)(struct replog *l);

	/* Release the adapter (the log itself belongs to its owner). */
	void (*close)(struct replog *l);
};

#endif /* CANOPY_SYNC_REPLOG_REPLOG_H */
