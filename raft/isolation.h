/*
 * raft/isolation.h -- cut one server off from every raft message, on demand
 * (and keep libraft's unaddressed messages from raft_uv).
 *
 * The crash drill (`canopyctl drill failover --mode crash`, agent/control_drill.c)
 * makes a live leader behave, for its peers, exactly like a dead one: nothing
 * it sends arrives, nothing sent to it is read. The cut is made at the one
 * point every message passes whatever the transport (libraft's TCP transport
 * or raft/transport_tls.h): the server's `struct raft_io`. isolation_wrap()
 * interposes on its `start` (to see every received message before libraft
 * does) and `send`; everything else -- disk, timers -- goes on, so the
 * isolated server keeps its log and its clock, steps down on its own when its
 * check-quorum fails (src/tick.c), and rejoins as a follower when the cut
 * ends (the new leader's higher term, Raft dissertation §3.3). With pre-vote
 * on, its own elections while cut off bump no term (§9.6), so its return
 * disturbs nobody.
 *
 * While isolated:
 *   - a received message is dropped the way libraft itself drops one while
 *     RAFT_UNAVAILABLE (src/recv.c, recvCb): the entries' batches and array,
 *     or an install-snapshot's configuration and data, are freed here;
 *   - a send is accepted and its callback runs on a later loop iteration with
 *     status 0 -- a message lost on the network, as a blackholed peer looks
 *     to raft_uv -- and never reaches the transport.
 * Messages already handed to the transport before the cut still go out.
 *
 * Always, cut or not: a message libraft 0.15 addresses to no one
 * (server_address NULL: a follower's answer to an append that completed
 * after it had been a candidate and had turned follower again without a
 * leader, src/replication.c appendFollowerCb) is not handed to raft_uv,
 * which would crash on it (src/uv_send.c uvClientInit, strlen), but called
 * back with RAFT_NOCONNECTION on a later loop iteration; `unaddressed`
 * counts them.
 */
#ifndef CANOPY_RAFT_ISOLATION_H
#define CANOPY_RAFT_ISOLATION_H

#include <raft.h>
#include <stdbool.h>
#include <stdint.h>
#include <uv.h>

#include "raft/acks.h"

struct isolation_send; /* a dropped send waiting for its callback */

#define ISOLATION_HEARD_MAX 64 /* servers whose last message is remembered */

struct isolation {
	struct raft_io *io;
	/* the wrapped io's own operations and libraft's receive callback */
	int (*start)(struct raft_io *io, unsigned msecs, raft_io_tick_cb tick, raft_io_recv_cb recv);
	int (*send)(struct raft_io *io, struct raft_io_send *req, const struct raft_message *message,
		    raft_io_send_cb cb);
	raft_io_recv_cb recv;
	uv_timer_t timer;       /* completes dropped sends */
	struct isolation_send *pending, **pending_tail;
	bool on;
	bool closed;
	/* figures for status */
	uint64_t dropped_in, dropped_out;
	uint64_t unaddressed;   /* sends without an address, never handed on */
	/* When each server was last heard from: every message libraft receives
	 * passes here (not the ones dropped while cut off). A follower's answers
	 * for its leader, the leader's heartbeats for a follower: the contact
	 * status shows per member (raft/node.h, node_status). */
	struct {
		uint64_t id;
		raft_time at; /* io->time() */
	} heard[ISOLATION_HEARD_MAX];
	/* Every request sent and answer received, counted for the lease
	 * renewed by heartbeats (raft/acks.h): messages handed on, not the
	 * ones dropped on the way in while cut off. */
	struct acks acks;
};

/*
 * Interpose on `io` (after raft_uv_init, before raft_init/raft_start: libraft
 * calls io->start from raft_start). At most one isolation per io; `io` and
 * `iso` must stay where they are until isolation_close(). Never fails.
 */
void isolation_wrap(struct isolation *iso, struct raft_io *io, uv_loop_t *loop);

/* Start (on = true) or end dropping every message in and out. */
void isolation_set(struct isolation *iso, bool on);

bool isolation_on(const struct isolation *iso);

/* When a message from server `id` was last received (io->time(), ms); 0
 * when none was since the wrap (or the server is not among the last
 * ISOLATION_HEARD_MAX that talked). */
raft_time isolation_heard_at(const struct isolation *iso, uint64_t id);

/*
 * Before raft_close(): runs the callback of every dropped send still
 * waiting (status RAFT_CANCELED, as raft_uv does for sends of a closing
 * io), ends the cut and closes the timer handle. The io keeps the wrappers,
 * which then only pass through.
 */
void isolation_close(struct isolation *iso);

#endif /* CANOPY_RAFT_ISOLATION_H */
