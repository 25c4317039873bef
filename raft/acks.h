/*
 * raft/acks.h -- which of this leader's messages each follower is known to
 * have received: the write lease renewed by heartbeats, without log entries.
 *
 * The lease (raft/leader.h, Raft dissertation §6.4.1) rests on one fact: a
 * majority reset their election timers at or after a time s, and in libraft
 * 0.15 a follower refuses votes and pre-votes until its own timer expires
 * (src/recv_request_vote.c). A committed entry proves it for the time the
 * entry was started. So does an answer to a heartbeat: a follower resets its
 * election timer on every AppendEntries (and InstallSnapshot) of the current
 * leader's term (src/recv_append_entries.c, src/recv_install_snapshot.c) and
 * answers each with at most one AppendEntriesResult carrying its term. An
 * idle leader that counted only commits had to append a barrier every T'/3 to
 * keep its lease, about nine entries a second at T = 1 s, forever.
 *
 * Answers carry no request id, so they are matched by counting, per follower
 * and term: the k-th answer of the term proves the follower processed one of
 * the first k or later requests -- k distinct requests answered means the
 * latest of them is at least the k-th -- so it reset its timer at or after
 * the k-th request's send time. Lost requests, lost answers and answers out
 * of order only make that time earlier than the truth (conservative).
 *
 * The owner feeds it every message sent and received (raft/isolation.c sees
 * both at the raft_io) and asks acks_at() for a follower.
 */
#ifndef CANOPY_RAFT_ACKS_H
#define CANOPY_RAFT_ACKS_H

#include <raft.h>
#include <stdint.h>

#define ACKS_PEERS 16   /* followers tracked (more: the oldest slot is reused) */
#define ACKS_WINDOW 64  /* requests in flight per follower whose send time is kept */

struct acks_peer {
	uint64_t id;               /* 0: free slot */
	raft_term term;            /* the term the counts below belong to */
	uint64_t sent, answered;   /* requests sent, answers received, in `term` */
	raft_time send_at[ACKS_WINDOW]; /* send time of request i, at [i % ACKS_WINDOW] */
	raft_time acked;           /* latest send time known processed (0: none) */
};

struct acks {
	struct acks_peer peer[ACKS_PEERS];
};

void acks_init(struct acks *a);

/* A message handed to the transport at `now` (io->time()). Counts
 * AppendEntries and InstallSnapshot, the requests a follower answers with an
 * AppendEntriesResult. */
void acks_sent(struct acks *a, const struct raft_message *m, raft_time now);

/* A message received: an AppendEntriesResult in the term of the requests
 * counts as the answer to the next one. */
void acks_received(struct acks *a, const struct raft_message *m);

/* The latest time t such that follower `id` is known to have reset its
 * election timer at or after t in `term`; 0 when there is no such proof. */
raft_time acks_at(const struct acks *a, uint64_t id, raft_term term);

#endif /* CANOPY_RAFT_ACKS_H */
