/*
 * raft/node.h -- one canopy agent's libraft server on the libuv loop.
 *
 * Owns the raft instance, its disk I/O (raft_uv, files in data_dir) and its
 * TCP transport, wires the generic FSM (raft/fsm.h) to the state machine the
 * caller provides, and polls leadership every loop iteration
 * (raft/leader.h). It knows nothing about identities.
 *
 * Lifecycle: node_start() -> ... -> node_close(cb). node_close() may be
 * preceded by node_transfer() so that a leader hands over before it goes.
 */
#ifndef CANOPY_RAFT_NODE_H
#define CANOPY_RAFT_NODE_H

#include <raft.h>
#include <raft/uv.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <uv.h>

#include "raft/fsm.h"
#include "raft/isolation.h"
#include "raft/lock.h"
#include "raft/leader.h"
#include "raft/storage.h"
#include "raft/transport_tls.h"

struct node_member {
	uint64_t id;
	const char *address;
};

struct node_config {
	uint64_t id;
	const char *address;  /* raft address, HOST:PORT; also the bind address */
	const char *data_dir; /* created (0700) if missing */
	const struct node_member *members; /* bootstrap voters */
	unsigned n_members;
	unsigned election_timeout_ms;
	unsigned heartbeat_ms;
	bool pre_vote;
	unsigned snapshot_threshold; /* 0: libraft default */
	unsigned snapshot_trailing;  /* 0: libraft default */
	/* Bytes of entries libraft may keep in memory (0: the two counts
	 * alone). The counts above become upper bounds: the node lowers them
	 * while entries are large so that threshold + trailing entries fit
	 * (node.c, log_budget_tick). */
	size_t snapshot_log_bytes;
	bool never_bootstrap; /* do not bootstrap even when members lists this node:
			       * it waits to be added (`canopyctl cluster add`) */
	/* Mutual TLS between members (raft/transport_tls.h): all three set, or
	 * all NULL for libraft's plain TCP transport. With TLS an inbound peer
	 * must be in this node's configuration, be the server this leader is
	 * adding, or -- while this node is in no configuration yet (a new node
	 * waiting for `cluster add`) -- hold a certificate of the cluster CA. */
	const char *tls_ca, *tls_cert, *tls_key;
	/* The transport's lines and the peer-closed hint (see transport_tls.h). */
	void (*transport_log)(void *arg, int level, const char *msg, const char *peer,
			      const char *detail);
	void (*on_peer_closed)(void *arg, uint64_t id, bool inbound);
	void *transport_arg;
};

struct node;
typedef void (*node_close_cb)(struct node *n);
typedef void (*node_transfer_cb)(struct node *n, bool transferred);

/*
 * Outside raft/, set `data` and `on_leader_change` and read the rest through
 * the functions below: the fields are this module's (and libraft's).
 */
struct node {
	uv_loop_t *loop;
	struct raft raft;
	struct raft_io io;
	struct raft_uv_transport transport;
	struct raft_uv_transport tcp; /* plain: libraft's TCP transport, wrapped by `transport`
				       * (raft/tcp_timeout.h) */
	struct isolation isolation; /* the crash drill's cut (raft/isolation.h) */
	bool tls;               /* transport is raft/transport_tls.h, not raft_uv_tcp */
	struct fsm fsm;
	struct leader leader;
	uv_check_t check;       /* polls leadership after every loop iteration */
	uv_timer_t wake;        /* keeps leader_tick() running at least every T'/10 */
	bool bootstrapped;      /* this start created the cluster from members */
	bool closing;
	struct raft_transfer transfer;
	bool transferring;
	node_transfer_cb transfer_cb;
	node_close_cb close_cb;
	struct change_req *change; /* the membership change this leader runs, or NULL */
	bool was_member;        /* a configuration this node knew listed it */
	raft_time leader_seen_at; /* when a leader was last known (0: never) */
	raft_time started_at;
	raft_time close_started;
	unsigned election_timeout_ms; /* T, as configured */

	/* Leadership changes, after the barrier (see leader.h). */
	void (*on_leader_change)(struct node *n, bool leading);
	void *data;

	/* Counters for /metrics. */
	uint64_t elections;     /* times this node became candidate */
	uint64_t spurious_elections; /* times this node was deposed while alive and not handing over */
	uint64_t vote_retries;  /* candidate rounds retried early (peek_candidate_retry) */
	raft_time vote_round;   /* start of the candidate round vote_retry_ms was drawn for */
	unsigned vote_retry_ms;
	raft_time candidate_at, candidate_leader_seen_at;
	raft_time heard_at;     /* follower: when the leader was last heard from */
	bool transferee;        /* this candidacy came from a leadership transfer */
	unsigned heartbeat_ms;  /* libraft's heartbeat, node_heartbeat_ms() */
	raft_time leading_since; /* when this node last became leader (libraft's state) */
	struct {
		raft_time at;          /* when this node last won an election (0: never) */
		raft_time detected_ms; /* the old leader last heard of -> candidate */
		raft_time elected_ms;  /* candidate -> leader */
		uint64_t candidate_wall_ms, won_wall_ms; /* the same two moments, epoch ms */
	} failover;
	uint64_t candidate_wall_ms; /* CLOCK_REALTIME when candidate_at was taken */
	uint64_t leader_changes;/* times the known leader id changed */
	int last_state;
	uint64_t last_leader_id;

	/* Storage (raft/storage.h): what the start-up check found, the
	 * canopy-state marker, and the health shown in status. */
	char data_dir[1024];
	int lock_fd;            /* <data_dir>/canopy.lock, held while the node lives (lock.h) */
	struct storage_info storage_info;
	struct storage_marker marker;
	struct storage_health storage;
	uint64_t storage_checked; /* when the disk was last looked at (ms) */
	raft_time unstored_since; /* appended entries not yet on disk since (0: none) */

	/* The in-memory log's budget (node_config.snapshot_log_bytes): the
	 * configured counts, the ones set now, and the fsm's applied figures
	 * when they were last set. */
	size_t log_budget;
	unsigned cfg_threshold, cfg_trailing, cur_threshold, cur_trailing;
	uint64_t sized_applied, sized_bytes;
};

/*
 * Initialize and start the raft server. Bootstraps a new cluster from
 * cfg->members when this node is one of them and its data dir is empty
 * (RAFT_CANTBOOTSTRAP from libraft means "already bootstrapped": restart from
 * disk). The data dir is locked first (raft/lock.h: -EBUSY while another
 * process holds it), then checked (storage_inspect): a damaged file or
 * missing committed state is refused with -EBADMSG / -ENODATA, naming the
 * file and the remedy. Returns 0, or a negative code with the cause in errmsg; on failure
 * everything started so far is undone and `n` needs no closing.
 */
int node_start(struct node *n, uv_loop_t *loop, const struct node_config *cfg,
	       struct fsm_machine *machine, char *errmsg, size_t errlen);

/* Stop raft and release everything; `cb` runs once all handles are closed. */
void node_close(struct node *n, node_close_cb cb);

/*
 * Hand leadership to `id` (0: let libraft pick an up-to-date voter).
 * Returns 0 and calls cb when done (transferred tells whether another node
 * now leads), or a raft error code (RAFT_NOTLEADER, RAFT_NOTFOUND when there is
 * no other voter, RAFT_BADID) without calling cb.
 */
int node_transfer(struct node *n, uint64_t id, node_transfer_cb cb);

/*
 * Propose one entry (a buffer from fsm_encode / state_batch_encode; ownership
 * passes to libraft on success). `cb` runs once on the loop: status 0 when
 * the entry is committed and applied on this node, RAFT_LEADERSHIPLOST /
 * RAFT_NOTLEADER / ... otherwise. A committed entry renews the write lease
 * from the time it was proposed (leader.h). Returns 0, or a raft error code
 * without calling cb (the buffer then stays the caller's).
 */
typedef void (*node_apply_cb)(void *arg, int status);
int node_apply(struct node *n, struct raft_buffer *buf, node_apply_cb cb, void *arg);

/*
 * Membership changes (Raft dissertation ch. 4, one server at a time).
 * node_add: raft_add (as spare), then raft_assign(RAFT_VOTER) -- libraft
 * catches the new server up before promoting it, so the cluster never counts
 * an empty log in its quorum. node_remove: raft_remove. Leader only.
 * Returns 0 and calls cb(arg, status, errmsg) once, or a raft error code.
 */
typedef void (*node_change_cb)(void *arg, int status, const char *errmsg);
int node_add(struct node *n, uint64_t id, const char *address, node_change_cb cb, void *arg);
int node_remove(struct node *n, uint64_t id, node_change_cb cb, void *arg);

/*
 * Abort the membership change this leader is running (`canopyctl cluster
 * abort`): an add whose new server has not been promoted yet is cancelled and
 * the spare it added is removed again; cb(arg, status, errmsg) runs once that
 * removal is committed (the add's own callback then reports RAFT_CANCELED).
 * Returns 0, or without calling cb: -ENOENT (no change running), -EBUSY (the
 * change is a removal, or a promotion already being committed: it cannot be
 * taken back), or a raft error code; errmsg says which.
 */
int node_abort_change(struct node *n, node_change_cb cb, void *arg, char *errmsg, size_t errlen);

/* The id of the server the running change adds (0: none, or a removal). */
uint64_t node_change_adding(struct node *n);

/*
 * Whether this node is still a member: 1 while the latest configuration it
 * knows lists it, 0 before it was ever in one (a new node waiting for
 * `cluster add`), -1 once it was and no longer is (it applied a
 * configuration that removed it).
 */
int node_membership(struct node *n);

/* Milliseconds since this node last knew a leader (since start if never). */
raft_time node_leaderless_ms(struct node *n);

/* ---- state and control, for the agent --------------------------------- */

/* The raft role of this node. */
enum node_state { NODE_FOLLOWER, NODE_CANDIDATE, NODE_LEADER, NODE_UNAVAILABLE };
#define NODE_STATES 4

/* "follower" | "candidate" | "leader" | "unavailable": status "role" and
 * the canopy_role metric (a contract: never renamed). */
const char *node_state_name(enum node_state s);

enum node_state node_state(struct node *n);

/* The leader this node knows (0: none) and the current term. */
uint64_t node_leader_id(struct node *n);
uint64_t node_term(struct node *n);

/* Whether this node is a voter of the latest configuration it knows. */
bool node_is_voter(struct node *n);

/* Leader whose post-election barrier committed (raft/leader.h). */
bool node_leader_ready(struct node *n);

/* A ready leader within its write lease: may write to the target now
 * (leader_may_write). */
bool node_may_write(struct node *n);

/* T, the failover bound (cluster.election_timeout_ms), as configured. */
unsigned node_election_timeout_ms(const struct node *n);

/* End the write lease until a fresh commit (leader_suspend) when this node
 * is a ready leader; returns whether it was. */
bool node_lease_suspend(struct node *n);

/* Never write again (leader_stop): a node that is shutting down. */
void node_stop_writing(struct node *n);

/*
 * The crash drill (raft/isolation.h): drop every raft message in and out
 * (on = true) or stop dropping. Disk and timers go on: a leader steps down on
 * its own once it misses a quorum, and rejoins as a follower when the cut
 * ends. node_isolated() tells whether the cut is on; node_isolation_stats()
 * how many messages it dropped since start.
 */
void node_isolate(struct node *n, bool on);
bool node_isolated(const struct node *n);
void node_isolation_stats(const struct node *n, uint64_t *dropped_in, uint64_t *dropped_out);
/* Messages libraft addressed to no one and that were not sent (isolation.h). */
uint64_t node_unaddressed_messages(const struct node *n);

/* A leadership transfer (node_transfer) is in progress. */
bool node_transferring(const struct node *n);

/* The running transfer's callback will not be called (a second signal
 * stops at once instead of waiting for the hand-over). */
void node_transfer_cancel_cb(struct node *n);

/* Early election (agent/leader_watch.h, raft/peek.h peek_early_election):
 * this follower forgets its leader and elects in `stagger_ms`. Returns 0,
 * -EAGAIN (not a follower that knows a leader) or -ENOENT (the election
 * starts at the next regular tick). */
int node_early_election(struct node *n, unsigned stagger_ms);

/* Figures for status and /metrics. */
struct node_stats {
	uint64_t elections;          /* times this node became candidate */
	uint64_t spurious_elections; /* deposed while alive and not handing over */
	uint64_t vote_retries;       /* candidate rounds retried early */
	uint64_t leader_changes;     /* times the known leader id changed */
	uint64_t became_leader;      /* barriers committed after an election */
	unsigned last_barrier_ms;    /* latency of the latest establishing barrier */
	uint64_t lease_heartbeat_renewals; /* lease renewed by heartbeat answers (raft/acks.h) */
	uint64_t lease_renewal_barriers;   /* barriers appended to renew the lease */
	uint64_t fsm_applied, fsm_refused;
	struct {
		raft_time at;          /* when this node last won an election (0: never) */
		raft_time detected_ms; /* the old leader last heard of -> candidate */
		raft_time elected_ms;  /* candidate -> leader */
		/* when it became candidate and won, in ms since the epoch
		 * (CLOCK_REALTIME, read when this node noticed): comparable
		 * with another node's times (`canopyctl drill failover`) */
		uint64_t candidate_wall_ms, won_wall_ms;
	} failover;
};
void node_stats(const struct node *n, struct node_stats *out);

/* This start created the cluster from cluster.members (bootstrapped). */
bool node_bootstrapped(const struct node *n);

/* What the start-up storage check found worth saying ("" when nothing). */
const char *node_storage_warning(const struct node *n);

/* The data dir's health (raft/storage.h), as last evaluated. */
const struct storage_health *node_storage(const struct node *n);

/* ---- read-only views (raft/peek.c reads libraft 0.15 internals) -------- */

enum node_role_code { NODE_VOTER, NODE_STANDBY, NODE_SPARE };

struct node_member_status {
	uint64_t id;
	char address[256];
	int role;          /* enum node_role_code */
	/* 1 yes, 0 no, -1 unknown: see node_status() for the rule */
	int reachable;
	int64_t last_contact_ms; /* since this node last received a message from it;
				  * 0 for itself, -1 never (since this process started) */
	uint64_t match_index; /* leader only; 0 when unknown */
};

#define NODE_MAX_MEMBERS 32

struct node_status {
	enum node_state state;
	bool ready;        /* leader whose barrier committed */
	uint64_t term;
	uint64_t leader_id;
	char leader_address[256];
	uint64_t commit_index;
	uint64_t applied_index;
	uint64_t last_index;
	unsigned n_members;
	struct node_member_status members[NODE_MAX_MEMBERS];
	enum storage_state storage_state; /* storage_state_name(): "ok" | "storage_full" | "error" */
	char storage_detail[512];
};

/*
 * This node's view. members[].reachable, by one rule: a member is
 * unreachable once this node has received nothing from it for the election
 * timeout T plus two heartbeat intervals, and never before. Its last message
 * may have come up to a heartbeat interval before it stopped (two when
 * libraft's tick, src/tick.c and raft_uv's timer, ran late), so it is never
 * called unreachable before it has been silent for a whole T. (Reading
 * libraft's recent_recv flag, cleared every T' by src/tick.c, made healthy
 * followers flicker.)
 *   - the leader: every member (it hears each one's answers to its
 *     heartbeats); a member not heard from since this node became leader
 *     counts from then;
 *   - a follower: the leader (its heartbeats); another member is reachable
 *     while it is heard from (during an election), unknown (-1) otherwise --
 *     only the leader knows (agent/member_view.h fetches its view).
 */
void node_status(struct node *n, struct node_status *out);

/* The silence after which a member is unreachable: T + two heartbeats. */
unsigned node_unreachable_after_ms(const struct node *n);

/* libraft's own election timeout T' and heartbeat for the failover bound T
 * (see node.c): T' = T/3, heartbeat at most T'/4. */
unsigned node_raft_timeout_ms(unsigned t);
unsigned node_heartbeat_ms(unsigned t, unsigned configured);

/* "tls" or "plain" (status "transport"). */
const char *node_transport(const struct node *n);

/* Whether members talk mutual TLS (cluster.tls). */
bool node_tls(const struct node *n);

/* The TLS transport's figures; false (out untouched) without TLS. */
bool node_tls_stats(struct node *n, struct tls_transport_stats *out);

/* Whether peers will accept this node's certificate (CN node-<id>, issued
 * by the cluster CA): 0, or -EKEYREJECTED with the reason in errmsg; 0
 * without TLS. */
int node_tls_check_identity(struct node *n, char *errmsg, size_t errlen);

/*
 * SIGHUP: re-read the TLS CA, certificate and key (tls_transport_reload) for
 * new connections. Returns 0, -ENOTSUP without TLS, or a negative errno with
 * errmsg naming the file; the old files stay in use on failure. On success a
 * certificate peers will refuse (wrong CN, expired, other CA) is reported in
 * `warning` (empty otherwise).
 */
int node_tls_reload(struct node *n, char *errmsg, size_t errlen, char *warning, size_t warnlen);

/* Milliseconds on raft's clock (libuv's loop time). */
raft_time node_now(struct node *n);

/* Milliseconds since the epoch (CLOCK_REALTIME), read now. */
uint64_t node_wall_ms(void);

#endif /* CANOPY_RAFT_NODE_H */
