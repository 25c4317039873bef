/*
 * raft/peek.h -- reads (and the one write) of libraft 0.15's public-but-internal
 * struct raft.
 *
 * libraft 0.15 exposes `struct raft` but offers no getters for the current
 * term, the commit index or a leader's view of follower reachability. Every
 * such read lives here, in one small file, because it is tied to this
 * library version (docs/architecture.md, "Things learned about libraft 0.15"): a libraft upgrade is checked against this
 * file alone.
 */
#ifndef CANOPY_RAFT_PEEK_H
#define CANOPY_RAFT_PEEK_H

#include <errno.h>
#include <raft.h>
#include <stdbool.h>
#include <uv.h>

raft_term peek_term(const struct raft *r);
/* This server's id (raft_init's). */
raft_id peek_id(const struct raft *r);
/* Milliseconds on libraft's clock (its raft_io: libuv's loop time, or the
 * fixture's simulated time in tests). */
raft_time peek_now(const struct raft *r);
/* libraft's election timeout as set (raft_set_election_timeout: T' = T/3). */
unsigned peek_election_timeout(const struct raft *r);
/* A candidate started by a leadership transfer (it may disrupt the leader). */
bool peek_transferee(const struct raft *r);
/* A leader handing over (raft_transfer pending): libraft refuses new
 * entries then (src/client.c: raft_apply, raft_barrier), and the transferee's
 * election may disrupt this leader, so nothing renews the lease. */
bool peek_transferring(const struct raft *r);
/* A follower: when it last heard from its leader (libraft 0.15 resets
 * election_timer_start on every AppendEntries and snapshot from the current
 * leader: src/replication.c, src/recv_install_snapshot.c). */
raft_time peek_heard_at(const struct raft *r);
raft_index peek_commit_index(const struct raft *r);

/* Highest log index persisted on this node's disk. */
raft_index peek_last_stored(const struct raft *r);

/* The latest configuration (committed or not) this node knows. */
const struct raft_configuration *peek_configuration(const struct raft *r);

/*
 * For server i of r->configuration, as seen by this node: 1 reachable,
 * 0 not, -1 unknown (a follower does not track its peers). The leader uses
 * progress[i].recent_recv: a message received within the election timeout.
 */
int peek_reachable(const struct raft *r, unsigned i, raft_index *match_index);

/* The server a leader is catching up for promotion (0: none, or not leader). */
raft_id peek_promotee(const struct raft *r);

/*
 * Cancel a leader's pending promotion started by raft_assign(req, VOTER):
 * libraft 0.15 has no call for it, and while leader_state.promotee_id is set
 * every further change fails with RAFT_CANTCHANGE (src/membership.c,
 * membershipCanChangeConfiguration). This does what src/tick.c (tickLeader)
 * does when a promotee is unresponsive -- clear promotee_id and the catch-up
 * round fields, which membershipCanChangeConfiguration asserts are zero, and
 * drop leader_state.change -- except that req's callback is not called (the
 * caller owns it and reports the outcome). Later AppendEntries results from
 * that server are then ordinary replication results (src/replication.c only
 * counts catch-up rounds for the current promotee_id).
 * Returns 0, or -ENOENT when `req` is not a pending promotion of this leader
 * (e.g. it caught up and its configuration entry is being committed).
 */
int peek_cancel_promotion(struct raft *r, const struct raft_change *req);

/*
 * Early election (agent/leader_watch.h): this follower has confirmed that
 * its current leader's process is gone. libraft 0.15 has no call to start
 * an election now, so this writes its follower state directly:
 *   - forgets the current leader (follower_state.current_leader), so this
 *     node grants (pre-)votes to others: src/recv_request_vote.c rejects
 *     every RequestVote, pre-vote included, while current_leader.id != 0
 *     (Raft dissertation §4.2.3); the address is freed as src/convert.c
 *     (convertClear) does;
 *   - moves election_timer_start back so that electionTimerExpired()
 *     (src/election.c: now - election_timer_start >=
 *     randomized_election_timeout) becomes true `stagger_ms` from now; an
 *     AppendEntries from a leader in the meantime resets
 *     election_timer_start (src/replication.c) and so cancels it;
 *   - re-arms raft_uv's tick timer (src/uv.c uvStart: a uv_timer whose data
 *     is io->impl, repeating every heartbeat) to fire in stagger_ms + 1, so
 *     tickFollower (src/tick.c) converts to candidate -- with pre-vote, as
 *     configured -- without waiting up to a heartbeat for the next tick.
 * Returns 0, -EAGAIN when this node is not a follower that knows a leader,
 * or -ENOENT when the tick timer was not found (the election then starts
 * at the next regular tick).
 */
int peek_early_election(struct raft *r, uv_loop_t *loop, unsigned stagger_ms);

/*
 * Candidate retry. libraft 0.15 gives a candidate round that fails a whole
 * new randomized timeout in [T', 2T') before the next (src/tick.c
 * tickCandidate), which, on top of detection (<= 2T'), is over canopy's
 * failover bound T. Rounds fail in two ordinary ways:
 *   - a split vote: two followers time out within a message delay of each
 *     other, both pass pre-vote (a pre-candidate has no leader, so it grants
 *     the other's pre-vote: src/recv_request_vote.c), both bump the term and
 *     vote for themselves, and neither wins; libraft 0.15 then retries with a
 *     real vote straight away (tickCandidate calls electionStart with
 *     in_pre_vote still false; later libraft versions reset it to
 *     r->pre_vote first);
 *   - a lost pre-vote: raft_uv's cached connection to a peer that restarted
 *     is dead, and the first message written to it is lost (the peer never
 *     sees the request; libraft reconnects after the write fails).
 *
 * This lets a candidate retry sooner, and only through pre-vote: when `r` is
 * a candidate (pre-vote enabled, not a leadership transferee) whose current
 * round started at least `retry_ms` ago, it sets candidate_state.in_pre_vote
 * (what later libraft does in tickCandidate), expires the election timer
 * (randomized_election_timeout = 0) and re-arms raft_uv's tick timer (as
 * peek_early_election) so that the next tick starts a new pre-vote round. A
 * pre-vote neither bumps anyone's term nor resets anyone's election timer
 * (src/election.c electionVote), so a candidate whose log is behind cannot
 * hold back one whose log is ahead by retrying often -- the livelock that
 * makes fast retries with real votes wrong (Raft dissertation §9.6) -- and a
 * node cut off from the majority only sends a few more small messages. A
 * real vote granted late, in the pre-vote round, counts as a pre-vote
 * grant, which it implies.
 * `loop` may be NULL (no tick re-arm: libraft's in-memory fixture).
 * Returns 0 when it started a new round, -EAGAIN when there is nothing to do.
 */
int peek_candidate_retry(struct raft *r, uv_loop_t *loop, unsigned retry_ms);

/* A candidate's current round: when it started (election_timer_start; 0: not
 * a candidate). `vote_term`, when not NULL, gets the term of a real-vote
 * round (0 in pre-vote). */
raft_time peek_candidate_round(const struct raft *r, raft_term *vote_term);

/*
 * The snapshot side of the log (struct raft_log, src/log.c): the index the
 * last snapshot covers (0: none), and whether one is being written (taken
 * by the FSM, raft_io snapshot_put not done yet: src/replication.c
 * takeSnapshot keeps it in r->snapshot.pending until the put's callback).
 */
raft_index peek_snapshot_index(const struct raft *r);
bool peek_snapshot_pending(const struct raft *r);

/*
 * The in-memory log cache: how many entries it holds and the bytes of their
 * payloads. libraft 0.15 keeps every entry since the last snapshot plus
 * `trailing` before it in memory (src/log.c logSnapshot), so this is what
 * the snapshot settings cost in RSS.
 */
void peek_log_cache(const struct raft *r, size_t *n_entries, size_t *bytes);

#endif /* CANOPY_RAFT_PEEK_H */
