/*
 * agent/leader_watch.h -- a crashed leader is detected in milliseconds.
 *
 * When the leader's process dies but its host lives (crash, OOM kill,
 * SIGKILL, restart), the kernel closes its sockets and refuses new
 * connections to its ports. Every voter keeps one long-lived request open
 * to the current leader's control address ("n:<id>" in the replicated
 * state): GET /v1/leader/watch, which the leader defers and never answers
 * while it leads (409 when it stops). On EOF or reset the follower does not
 * act on the drop itself -- a reset can come from the network while the
 * leader lives -- but reconnects at once, and only a *refused* connection
 * (nothing listens there: the process is gone; a leader stops writing for
 * good before it closes its listener, leader_stop()) or a 409 (it says it
 * no longer leads) starts an early election: this node forgets the leader
 * and its election timer fires after a random stagger of 0..T'/10 (Raft
 * dissertation §3.4: randomized timeouts so votes do not split), with
 * pre-vote (raft/peek.h peek_early_election). Silent failures (SIGSTOP,
 * partition, power loss) keep the election timeout. At most one early
 * election per leader and term (a leader that restarts quickly cannot make
 * the cluster flap). See docs/architecture.md, "Failover bound".
 *
 * On by default (cluster.early_election; it needs cluster.pre_vote). Safe
 * even when a refusal lies (a firewall that refuses connections to a live
 * leader): the new leader writes only after the old leader's lease has
 * surely run out (raft/leader.h, leader_hold), 0.8 T' after it last heard
 * from it. Measured (ha_crash_detect_test, T = 1000 ms, 8 SIGKILLs): kill ->
 * first write 199-279 ms, against 420-800 ms by the timeout.
 *
 * Leader side: the deferred watch requests; answered 409 when this node
 * stops leading. A watch whose follower closed it suspends the write lease
 * until a fresh commit (leader_suspend(), defence in depth).
 */
#ifndef CANOPY_AGENT_LEADER_WATCH_H
#define CANOPY_AGENT_LEADER_WATCH_H

#include <stdbool.h>
#include <stdint.h>
#include <uv.h>

#include "agent/http.h"

#define LEADER_WATCH_MAX 32 /* deferred watch requests a leader keeps */

struct agent;
struct lw_conn;

struct leader_watch {
	struct agent *a;
	uv_timer_t timer;         /* every T'/10: follow the leader, check watches */
	bool started;
	bool follow;              /* follower side on (cluster.early_election) */
	struct lw_conn *conn;     /* follower: the watch to the current leader */
	uint64_t retry_at;        /* follower: no new connection before (raft time) */
	uint64_t fired_leader, fired_term; /* the early election already made */
	uint64_t dropped_at;      /* follower: when the watch dropped (0: it did not) */
	/* leader: deferred watch requests */
	struct http_pending *watches[LEADER_WATCH_MAX];
	unsigned n_watches;
	/* figures for status and metrics */
	uint64_t early_elections;
	uint64_t drops_seen;      /* watch drops this follower saw */
	uint64_t drops_alive;     /* ... after which the leader answered again */
	uint64_t suspensions;     /* leader: lease suspended by a closed watch */
	uint64_t last_detect_ms;  /* drop -> candidate of the last early election */
	uint64_t last_at;         /* when (raft time; 0: never) */
};

void leader_watch_start(struct agent *a);
void leader_watch_close(struct agent *a);

/* GET /v1/leader/watch (unauthenticated, like every GET). */
void leader_watch_handle(struct agent *a, const struct http_request *req, struct http_reply *reply);

#endif /* CANOPY_AGENT_LEADER_WATCH_H */
