/*
 * raft/leader.h -- when may this node act as leader?
 *
 * libraft 0.15 has no state-change callback, so leadership is polled: the
 * owner calls leader_tick() on every loop iteration (node.c does it from a
 * uv_check handle, as dqlite does; unit tests call it between fixture steps).
 *
 * Being raft leader is not enough to export:
 *
 * 1. Barrier first. libraft 0.15 does not append a no-op entry when a node
 *    wins an election, and entries of earlier terms are only committed
 *    indirectly through an entry of the current term (Raft dissertation
 *    §3.6.2). Until such an entry commits, the new leader's state machine may
 *    lack committed entries -- the cursor could be stale. So after winning,
 *    the tracker commits a raft_barrier and only then reports "leading"
 *    (docs/architecture.md: mandatory).
 *
 * 2. Lease (Raft dissertation §6.4.1). When an entry that the leader started
 *    at time s commits, a majority heard from this leader at or after s; in
 *    0.15 such a follower refuses votes until its own election timer expires,
 *    at least T after that (T here is libraft's timeout, T' in the docs). No
 *    other leader can exist before s + T. The node may therefore write to
 *    the target until s + T * (1 - margin) of its latest committed entry.
 *    The sync engine's commits renew it (leader_note_commit()), and so do
 *    heartbeats: with `acks` set, an answer from a majority to requests sent
 *    at or after s proves the same as a commit started at s (raft/acks.h),
 *    so an idle leader keeps its lease without appending anything. A
 *    renewal barrier goes out only when neither renewed it for 0.6 T (or,
 *    without `acks`, every T/3). A follower
 *    that votes early (agent/leader_watch.h) breaks the "refuses votes"
 *    basis; leader_hold() makes the new leader wait the lease out instead.
 *
 * Times are raft_time milliseconds on libraft's clock (peek_now()), so the same code runs
 * on the real libuv clock and on raft_fixture's simulated one.
 */
#ifndef CANOPY_RAFT_LEADER_H
#define CANOPY_RAFT_LEADER_H

#include <raft.h>
#include <stdbool.h>
#include <stdint.h>

#include "raft/acks.h"

enum leader_phase {
	LEADER_NONE,    /* not leader (or leadership lost) */
	LEADER_BARRIER, /* won an election, waiting for the barrier to commit */
	LEADER_READY,   /* barrier committed in this term: may act as leader */
};

struct leader_barrier; /* an outstanding barrier request */

struct leader {
	struct raft *raft;
	enum leader_phase phase;
	raft_term term;          /* term of the leadership held or being established */
	unsigned margin_pct;     /* lease safety margin, percent of T (default 20) */
	raft_time lease_start;   /* start time s of the latest committed entry */
	raft_time last_renew;    /* when the last renewal barrier was started */
	raft_time won_at;        /* when this term's leadership was observed */
	struct leader_barrier *pending;
	/* leader_suspend(): the lease counts only commits started after it. */
	uint64_t epoch;          /* bumped by every suspension */
	uint64_t lease_epoch;    /* epoch of the commit lease_start came from */
	raft_time suspended_at;
	bool stopped;            /* leader_stop(): never write again */
	const struct acks *acks; /* answers to heartbeats (raft/acks.h), or NULL:
				  * only commits renew the lease */
	raft_time not_before;    /* leader_hold(): no write before this time */

	/* Called when the node starts (leading=true, after the barrier) or stops
	 * (false) acting as leader. Runs inside leader_tick() or a raft callback. */
	void (*on_change)(struct leader *l, bool leading);
	void *data;

	/* Counters for /metrics. */
	uint64_t became_leader;     /* barriers committed after an election */
	uint64_t lost_leadership;   /* READY -> NONE transitions */
	uint64_t barrier_failures;  /* barriers that failed (leadership lost, I/O) */
	unsigned last_barrier_ms;   /* latency of the latest establishing barrier */
	uint64_t renewal_barriers;  /* barriers started to renew the lease (log entries) */
	uint64_t heartbeat_renewals; /* lease renewed by heartbeat answers */
};

/* Set up a tracker for `r`. Never fails. */
void leader_init(struct leader *l, struct raft *r);

/*
 * Forget any outstanding barrier (its callback becomes a no-op). Call before
 * the tracker's memory goes away; raft_close() will still complete the
 * request and free it.
 */
void leader_close(struct leader *l);

/* Poll raft's state; start or renew barriers; fire on_change. */
void leader_tick(struct leader *l);

/* True once the barrier of the current term committed and we are still leader. */
bool leader_ready(struct leader *l);

/* True when leader_ready() and the lease holds right now: writes may go out. */
bool leader_may_write(struct leader *l);

/* The time after which no write may be on the wire (0 when not leading). */
raft_time leader_lease_deadline(const struct leader *l);

/* An entry started at `started` (peek_now() when raft_apply was called)
 * has committed in this term: extend the lease. */
void leader_note_commit(struct leader *l, raft_term term, raft_time started);

/*
 * End the current lease at once: leader_may_write() is false (and the
 * engine's watchdog cancels in-flight requests) until an entry started
 * after this call commits; a renewal barrier is started right away. Used
 * when a follower's leader watch closes (agent/leader_watch.h): that
 * follower may be about to vote early, so the lease argument (Raft
 * dissertation §6.4.1) must restart from a commit it no longer can be part
 * of unless it heard from this leader again.
 */
void leader_suspend(struct leader *l);

/*
 * No write before `until`, whatever the lease says (leader_may_write() is
 * false until then). The owner calls it when this node wins an election,
 * with the time any earlier leader's lease has surely ended: the previous
 * leader's lease ran to s + T'(1 - margin), s being when it started its
 * latest committed entry; this node, elected, holds every committed entry
 * (Raft dissertation §3.6), so it received that entry at or after s, and so
 * at or before it last heard from that leader -- h. Waiting until
 * h + T'(1 - margin) (leader_lease_length()) needs no vote to have waited
 * for a follower timer, which is what makes early elections
 * (agent/leader_watch.h) safe even when the old leader is alive behind a
 * firewall that refuses connections. After an election by timeout, h + T'
 * has passed already: no cost.
 */
void leader_hold(struct leader *l, raft_time until);

/* T'(1 - margin): how long a commit keeps the lease. */
raft_time leader_lease_length(const struct leader *l);

/* Never write again (shutdown: the control listener is about to close, and
 * a follower reads a refused watch connection as "the leader is gone"). */
void leader_stop(struct leader *l);

#endif /* CANOPY_RAFT_LEADER_H */
