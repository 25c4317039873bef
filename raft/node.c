/*
 * raft/node.c -- libraft server on the libuv loop (see node.h).
 */
#include "raft/node.h"
#include "raft/tcp_timeout.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>

#include "common/xalloc.h"
#include "raft/peek.h"
#include "raft/transport_tls.h"

raft_time node_now(struct node *n)
{
	return n->io.time(&n->io);
}

uint64_t node_wall_ms(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_REALTIME, &ts);
	return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

/* mkdir -p with mode 0700: the data dir holds the replicated state. */
static int make_dir(const char *path, char *errmsg, size_t errlen)
{
	char buf[1024];
	struct stat st;
	size_t i, len = strlen(path);

	if (len == 0 || len >= sizeof buf) {
		snprintf(errmsg, errlen, "data_dir %s: path empty or too long", path);
		return -EINVAL;
	}
	memcpy(buf, path, len + 1);
	for (i = 1; i <= len; i++) {
		if (buf[i] != '/' && buf[i] != '\0')
			continue;
		buf[i] = '\0';
		if (mkdir(buf, 0700) != 0 && errno != EEXIST) {
			snprintf(errmsg, errlen, "data_dir %s: cannot create %s: %s", path, buf,
				 strerror(errno));
			return -errno;
		}
		buf[i] = path[i];
	}
	/* mkdir leaves an existing directory as it was: one made by hand with
	 * the default umask (0755) would let every local user read the
	 * replicated state and the provisioning log. Owner-only, as a new one. */
	if (stat(path, &st) != 0) {
		snprintf(errmsg, errlen, "data_dir %s: %s", path, strerror(errno));
		return -errno;
	}
	if ((st.st_mode & 077) != 0 && chmod(path, st.st_mode & 0700) != 0) {
		snprintf(errmsg, errlen, "data_dir %s: mode %04o lets group or others in, and chmod 700 failed: %s",
			 path, (unsigned)(st.st_mode & 07777), strerror(errno));
		return -errno;
	}
	return 0;
}

/*
 * Storage, every loop iteration (cheap: the marker is rewritten at most once a
 * second on the thread pool, the disk looked at at most once a second). The
 * marker gets the commit index only as far as it is stored here too.
 */
static raft_index stored_commit(struct node *n)
{
	raft_index stored = peek_last_stored(&n->raft), commit = peek_commit_index(&n->raft);
	return commit < stored ? commit : stored;
}

static void storage_tick(struct node *n)
{
	raft_time now = node_now(n);

	if (raft_last_index(&n->raft) > peek_last_stored(&n->raft)) {
		if (n->unstored_since == 0)
			n->unstored_since = now;
	} else {
		n->unstored_since = 0;
	}
	storage_marker_note(&n->marker, stored_commit(n), peek_term(&n->raft), now);
	storage_health_update(&n->storage, n->data_dir, &n->marker,
			      n->unstored_since ? now - n->unstored_since : 0, n->io.errmsg, now,
			      &n->storage_checked);
}

/*
 * A candidate round that has not won after a draw in [T'/8, T'/3) is
 * retried through pre-vote (peek.h: peek_candidate_retry: split votes, lost
 * pre-votes) instead of after libraft's own [T', 2T'): detection (<= 2T')
 * plus a retry or two still fits in T. The draw differs per node and round,
 * so two candidates that split once rarely split again. Without pre-vote
 * (cluster.pre_vote: false) libraft's own retry stays: fast real-vote
 * retries by a node whose log is behind would keep resetting the others'
 * timers.
 */
static void vote_retry_tick(struct node *n)
{
	raft_time round = peek_candidate_round(&n->raft, NULL);
	unsigned rt = node_raft_timeout_ms(n->election_timeout_ms);

	if (round == 0) {
		n->vote_round = 0;
		return;
	}
	if (round != n->vote_round) {
		n->vote_round = round;
		n->vote_retry_ms = (unsigned)n->io.random(&n->io, (int)(rt / 8), (int)(rt / 3));
	}
	if (peek_candidate_retry(&n->raft, n->loop, n->vote_retry_ms) == 0)
		n->vote_retries++;
}

/*
 * libraft 0.15 bounds its in-memory log by entry counts only: it keeps every
 * entry since the last snapshot, and `trailing` entries before it once a
 * snapshot is taken (src/replication.c takeSnapshot, src/log.c
 * logSnapshot). What that costs depends on the entries: 2,500 entries of
 * an initial sync (batches of 256 objects) are 24 MB deflated and 75 MB in
 * format 1, a fifth of a node's RSS at a million objects
 * (docs/benchmarks.md). So the counts are
 * lowered while entries are large: from the average size of the entries
 * applied since the last look (at least LOG_BUDGET_WINDOW of them), half
 * the budget goes to the entries between snapshots and half to the
 * trailing ones, never more than configured and never fewer than
 * LOG_BUDGET_MIN_ENTRIES (a snapshot per entry would cost more than it
 * saves). A smaller trailing means a follower that far behind catches up
 * by snapshot install instead of entries (Raft dissertation §5.1).
 */
#define LOG_BUDGET_WINDOW 32
#define LOG_BUDGET_MIN_ENTRIES 16

static unsigned budget_entries(size_t half, uint64_t avg, unsigned configured)
{
	uint64_t fit = avg ? half / avg : configured;

	if (fit < LOG_BUDGET_MIN_ENTRIES)
		fit = LOG_BUDGET_MIN_ENTRIES;
	return fit < configured ? (unsigned)fit : configured;
}

static void log_budget_tick(struct node *n)
{
	uint64_t entries = n->fsm.stats.applied - n->sized_applied, avg;
	unsigned thr, tr;

	if (n->log_budget == 0 || entries < LOG_BUDGET_WINDOW)
		return;
	avg = (n->fsm.stats.applied_bytes - n->sized_bytes) / entries;
	n->sized_applied = n->fsm.stats.applied;
	n->sized_bytes = n->fsm.stats.applied_bytes;
	thr = budget_entries(n->log_budget / 2, avg, n->cfg_threshold);
	tr = budget_entries(n->log_budget / 2, avg, n->cfg_trailing);
	if (thr != n->cur_threshold)
		raft_set_snapshot_threshold(&n->raft, n->cur_threshold = thr);
	if (tr != n->cur_trailing)
		raft_set_snapshot_trailing(&n->raft, n->cur_trailing = tr);
}

static void on_check(uv_check_t *h)
{
	struct node *n = h->data;
	int state;
	raft_id id;
	const char *addr;

	if (n->closing)
		return;
	log_budget_tick(n);
	state = raft_state(&n->raft);
	if (state == RAFT_CANDIDATE && n->last_state != RAFT_CANDIDATE) {
		n->elections++;
		/* the leader was last heard of at leader_seen_at: detection */
		n->candidate_at = node_now(n);
		n->candidate_wall_ms = node_wall_ms();
		n->candidate_leader_seen_at = n->heard_at;
		n->transferee = peek_transferee(&n->raft);
	}
	/* Won: no write before any earlier leader's lease has surely ended
	 * (leader.h: leader_hold). Not after a transfer: the old leader
	 * suspended its lease before handing over (node_transfer). */
	if (state == RAFT_LEADER && n->last_state != RAFT_LEADER) {
		raft_time h = n->heard_at > n->started_at ? n->heard_at : n->started_at;
		n->leading_since = node_now(n);
		leader_hold(&n->leader, n->transferee ? 0 : h + leader_lease_length(&n->leader));
	}
	/* Before becoming candidate resets it; never backwards: an early
	 * election (peek_early_election) moves libraft's timer start back. */
	if (state == RAFT_FOLLOWER && peek_heard_at(&n->raft) > n->heard_at)
		n->heard_at = peek_heard_at(&n->raft);
	if (state == RAFT_LEADER && n->last_state != RAFT_LEADER && n->candidate_at != 0) {
		n->failover.detected_ms = n->candidate_leader_seen_at
						  ? n->candidate_at - n->candidate_leader_seen_at
						  : 0;
		n->failover.elected_ms = node_now(n) - n->candidate_at;
		n->failover.at = node_now(n);
		n->failover.candidate_wall_ms = n->candidate_wall_ms;
		n->failover.won_wall_ms = node_wall_ms();
		n->candidate_at = 0;
	}
	/* Deposed while alive and not handing over: whoever started that
	 * election did not hear from this leader in time (a spurious election). */
	if (n->last_state == RAFT_LEADER && state != RAFT_LEADER && !n->transferring && !n->closing)
		n->spurious_elections++;
	n->last_state = state;
	raft_leader(&n->raft, &id, &addr);
	if (id != 0)
		n->leader_seen_at = node_now(n);
	if (!n->was_member && node_membership(n) == 1)
		n->was_member = true;
	if (id != 0 && id != n->last_leader_id) {
		if (n->last_leader_id != 0)
			n->leader_changes++;
		n->last_leader_id = id;
	}
	vote_retry_tick(n);
	leader_tick(&n->leader);
	storage_tick(n);
}

/* The check handle runs only when the loop iterates; this timer makes sure it
 * does at least every T'/10 (T' = T/3, libraft's own timeout) so lease renewal never waits on unrelated I/O. */
static void on_wake(uv_timer_t *t)
{
	(void)t;
}

static void on_leader_change(struct leader *l, bool leading)
{
	struct node *n = l->data;
	if (n->on_leader_change)
		n->on_leader_change(n, leading);
}

/*
 * T (cluster.election_timeout_ms) is canopy's failover bound: a leader that
 * stops is replaced -- and the new leader has exported -- within T. libraft
 * 0.15 draws each follower's timeout uniformly in [T', 2T') of the timeout it
 * is given (src/election.c, election__reset_timer), so handing it T itself
 * made failovers take 1.2-2 T. It gets T' = T/3: followers time out in
 * [T/3, 2T/3) after the last heartbeat, which leaves T/3 for pre-vote, vote,
 * the barrier, the new leader's source session and its first batch (with
 * T' = 2T/5 a loaded machine went over T in 1 of 8 kills). The write lease (leader.c) is
 * computed from the same T', which keeps fencing sound: docs/architecture.md
 * ("Failover bound") has the inequality.
 */
unsigned node_raft_timeout_ms(unsigned t)
{
	unsigned rt = t / 3;
	return rt < 20 ? 20 : rt;
}

/* Heartbeats at most every T'/4: a follower misses four before it times out. */
unsigned node_heartbeat_ms(unsigned t, unsigned configured)
{
	unsigned cap = node_raft_timeout_ms(t) / 4;
	return configured < cap ? configured : cap;
}

static int bootstrap(struct node *n, const struct node_config *cfg, char *errmsg, size_t errlen)
{
	struct raft_configuration conf;
	bool member = false;
	unsigned i;
	int rv;

	for (i = 0; i < cfg->n_members; i++)
		if (cfg->members[i].id == cfg->id)
			member = true;
	if (!member || cfg->never_bootstrap)
		return 0; /* joins an existing cluster through `canopyctl cluster add` */

	raft_configuration_init(&conf);
	for (i = 0; i < cfg->n_members; i++) {
		rv = raft_configuration_add(&conf, cfg->members[i].id, cfg->members[i].address,
					    RAFT_VOTER);
		if (rv != 0) {
			snprintf(errmsg, errlen, "cluster.members: member %llu@%s: %s",
				 (unsigned long long)cfg->members[i].id, cfg->members[i].address,
				 raft_strerror(rv));
			raft_configuration_close(&conf);
			return -EINVAL;
		}
	}
	rv = raft_bootstrap(&n->raft, &conf);
	raft_configuration_close(&conf);
	if (rv == RAFT_CANTBOOTSTRAP)
		return 0; /* already bootstrapped: restart from the data dir */
	if (rv != 0) {
		snprintf(errmsg, errlen, "bootstrap in %s: %s", cfg->data_dir, raft_errmsg(&n->raft));
		return -EIO;
	}
	n->bootstrapped = true;
	return 0;
}

/* Who may open a raft connection to this node (transport_tls.h: peer_allowed). */
static bool peer_allowed(void *arg, uint64_t id)
{
	struct node *n = arg;
	const struct raft_configuration *conf = peek_configuration(&n->raft);
	unsigned i;

	/* In no configuration yet: a new node waiting for `cluster add` must
	 * hear the leader that adds it; the certificate still proves the peer
	 * is node-<id> of this cluster's CA. */
	if (conf->n == 0)
		return true;
	for (i = 0; i < conf->n; i++)
		if (conf->servers[i].id == id)
			return true;
	return node_change_adding(n) == id;
}

/*
 * How long a raft connection may hold unacknowledged data before the kernel
 * drops it (raft/tcp_timeout.h): one election timeout T. A connection that
 * made no progress for T is worth nothing to the cluster (followers have
 * timed out meanwhile), and a new one starts with a fresh retransmission
 * timer; much shorter would drop connections during brief loss that TCP
 * would have carried through (a new connection's SYN waits 1 s to be
 * retransmitted, RFC 6298 §2.1).
 */
static unsigned tcp_user_timeout_ms(const struct node_config *cfg)
{
	return cfg->election_timeout_ms;
}

static int transport_init(struct node *n, uv_loop_t *loop, const struct node_config *cfg,
			  char *errmsg, size_t errlen)
{
	struct tls_transport_config tc;
	int rv;

	if (cfg->tls_ca == NULL) {
		rv = raft_uv_tcp_init(&n->tcp, loop);
		if (rv != 0) {
			snprintf(errmsg, errlen, "raft transport: %s", raft_strerror(rv));
			return -EIO;
		}
		tcp_timeout_wrap(&n->transport, &n->tcp, tcp_user_timeout_ms(cfg));
		return 0;
	}
	memset(&tc, 0, sizeof tc);
	tc.ca_file = cfg->tls_ca;
	tc.cert_file = cfg->tls_cert;
	tc.key_file = cfg->tls_key;
	tc.peer_allowed = peer_allowed;
	tc.peer_allowed_arg = n;
	tc.on_peer_closed = cfg->on_peer_closed;
	tc.on_peer_closed_arg = cfg->transport_arg;
	tc.tcp_user_timeout_ms = tcp_user_timeout_ms(cfg);
	tc.log = cfg->transport_log;
	tc.log_arg = cfg->transport_arg;
	rv = tls_transport_init(&n->transport, loop, &tc, errmsg, errlen);
	if (rv == 0)
		n->tls = true;
	return rv;
}

static void transport_free(struct node *n)
{
	if (n->tls) {
		tls_transport_free(&n->transport);
	} else {
		tcp_timeout_close(&n->transport);
		raft_uv_tcp_close(&n->tcp);
	}
}

const char *node_transport(const struct node *n)
{
	return n->tls ? "tls" : "plain";
}

int node_tls_reload(struct node *n, char *errmsg, size_t errlen, char *warning, size_t warnlen)
{
	int rv;

	warning[0] = '\0';
	if (!n->tls) {
		snprintf(errmsg, errlen, "cluster.tls is not configured");
		return -ENOTSUP;
	}
	rv = tls_transport_reload(&n->transport, errmsg, errlen);
	if (rv == 0 && tls_transport_check_identity(&n->transport, peek_id(&n->raft), warning, warnlen) == 0)
		warning[0] = '\0';
	return rv;
}

bool node_tls(const struct node *n)
{
	return n->tls;
}

bool node_tls_stats(struct node *n, struct tls_transport_stats *out)
{
	if (!n->tls)
		return false;
	tls_transport_stats(&n->transport, out);
	return true;
}

int node_tls_check_identity(struct node *n, char *errmsg, size_t errlen)
{
	return n->tls ? tls_transport_check_identity(&n->transport, peek_id(&n->raft), errmsg, errlen) : 0;
}

static void on_start_failed_closed(struct raft *r)
{
	(void)r;
}

int node_start(struct node *n, uv_loop_t *loop, const struct node_config *cfg,
	       struct fsm_machine *machine, char *errmsg, size_t errlen)
{
	int rv;

	memset(n, 0, sizeof *n);
	n->loop = loop;
	n->lock_fd = -1;
	rv = make_dir(cfg->data_dir, errmsg, errlen);
	if (rv != 0)
		return rv;
	/* One process per data dir (lock.h), before anything is read. */
	rv = lock_acquire(cfg->data_dir, errmsg, errlen);
	if (rv < 0)
		return rv;
	n->lock_fd = rv;
	/* Before libraft reads anything: it would move a damaged segment aside
	 * and start with less, or spin on a truncated snapshot (storage.h). */
	rv = storage_inspect(cfg->data_dir, &n->storage_info, errmsg, errlen);
	if (rv != 0)
		goto err_after_lock;
	rv = storage_marker_init(&n->marker, loop, cfg->data_dir, errmsg, errlen);
	if (rv != 0)
		goto err_after_lock;
	snprintf(n->data_dir, sizeof n->data_dir, "%s", cfg->data_dir);

	rv = transport_init(n, loop, cfg, errmsg, errlen);
	if (rv != 0)
		goto err_after_lock;
	rv = raft_uv_init(&n->io, loop, cfg->data_dir, &n->transport);
	if (rv != 0) {
		/* e.g. a data dir on overlayfs: libraft needs kernel AIO */
		snprintf(errmsg, errlen, "raft storage in %s: %s", cfg->data_dir, n->io.errmsg);
		goto err_after_transport;
	}
	/* raft_uv in 0.15 implements async_work (src/uv_work.c) but leaves
	 * io->version at 1, and raft_init refuses an fsm with snapshot_async
	 * unless io->version > 1 (src/raft.c ioFsmVersionCheck). The method is
	 * there: say so, and snapshots are encoded off the loop (raft/fsm.h). */
	if (n->io.version < 2 && n->io.async_work != NULL)
		n->io.version = 2;
	/* Before raft_init: libraft calls io->start from raft_start. */
	isolation_wrap(&n->isolation, &n->io, loop);
	fsm_init(&n->fsm, machine);
	if (n->io.async_work != NULL)
		(void)fsm_snapshot_off_loop(&n->fsm); /* -ENOTSUP: a machine without freeze, on the loop */
	rv = raft_init(&n->raft, &n->io, &n->fsm.raft, cfg->id, cfg->address);
	if (rv != 0) {
		snprintf(errmsg, errlen, "raft init: %s", raft_errmsg(&n->raft));
		goto err_after_io;
	}
	n->raft.data = n;
	raft_set_election_timeout(&n->raft, node_raft_timeout_ms(cfg->election_timeout_ms));
	raft_set_heartbeat_timeout(&n->raft, node_heartbeat_ms(cfg->election_timeout_ms, cfg->heartbeat_ms));
	n->heartbeat_ms = node_heartbeat_ms(cfg->election_timeout_ms, cfg->heartbeat_ms);
	raft_set_pre_vote(&n->raft, cfg->pre_vote);
	if (cfg->snapshot_threshold)
		raft_set_snapshot_threshold(&n->raft, cfg->snapshot_threshold);
	if (cfg->snapshot_trailing)
		raft_set_snapshot_trailing(&n->raft, cfg->snapshot_trailing);
	n->log_budget = cfg->snapshot_log_bytes;
	/* libraft 0.15's defaults (src/raft.c) when not configured */
	n->cfg_threshold = n->cur_threshold = cfg->snapshot_threshold ? cfg->snapshot_threshold : 1024;
	n->cfg_trailing = n->cur_trailing = cfg->snapshot_trailing ? cfg->snapshot_trailing : 2048;

	rv = bootstrap(n, cfg, errmsg, errlen);
	if (rv != 0)
		goto err_after_raft;
	rv = raft_start(&n->raft);
	if (rv != 0) {
		/* libraft leaves the cause in one of two places, or in neither
		 * (e.g. its listen() failing): say the most specific one. */
		const char *why = raft_errmsg(&n->raft);
		if (why == NULL || why[0] == '\0')
			why = n->io.errmsg;
		if (why == NULL || why[0] == '\0')
			why = raft_strerror(rv);
		snprintf(errmsg, errlen, "raft start (raft_address %s, data dir %s): %s%s",
			 cfg->address, cfg->data_dir, why,
			 rv == RAFT_IOERR ? " (is raft_address already in use?)" : "");
		goto err_after_raft;
	}

	leader_init(&n->leader, &n->raft);
	n->leader.acks = &n->isolation.acks; /* heartbeats renew the lease */
	n->leader.data = n;
	n->leader.on_change = on_leader_change;
	uv_check_init(loop, &n->check);
	n->check.data = n;
	uv_check_start(&n->check, on_check);
	uv_timer_init(loop, &n->wake);
	n->wake.data = n;
	uv_timer_start(&n->wake, on_wake, node_raft_timeout_ms(cfg->election_timeout_ms) / 10,
		       node_raft_timeout_ms(cfg->election_timeout_ms) / 10);
	n->started_at = node_now(n);
	n->election_timeout_ms = cfg->election_timeout_ms;
	return 0;

err_after_raft:
	/* raft_init succeeded: raft_close is the only way to release it, and it
	 * completes on the loop. Run the loop until it has. */
	n->closing = true;
	isolation_close(&n->isolation);
	raft_close(&n->raft, on_start_failed_closed);
	uv_run(loop, UV_RUN_DEFAULT);
	raft_uv_close(&n->io);
	transport_free(n);
	rv = -EIO;
	goto err_after_lock;
err_after_io:
	isolation_close(&n->isolation);
	uv_run(loop, UV_RUN_NOWAIT); /* the isolation's timer handle closes */
	raft_uv_close(&n->io);
err_after_transport:
	transport_free(n);
	rv = -EIO;
err_after_lock:
	lock_release(n->lock_fd);
	n->lock_fd = -1;
	return rv;
}

/* libuv runs close callbacks in the order uv_close() was called, so when the
 * wake timer's runs, the check handle is closed too. */
static void on_handles_closed(uv_handle_t *h)
{
	struct node *n = h->data;
	raft_uv_close(&n->io);
	transport_free(n);
	lock_release(n->lock_fd); /* libraft has written its last byte */
	n->lock_fd = -1;
	if (n->close_cb)
		n->close_cb(n);
}

static void on_raft_closed(struct raft *r)
{
	struct node *n = r->data;
	uv_close((uv_handle_t *)&n->check, NULL);
	uv_close((uv_handle_t *)&n->wake, on_handles_closed);
}

/*
 * libraft 0.15 can leave a closed log segment with a truncated last batch
 * when raft_close() runs while an append is still being written; on the next
 * start the loader then moves the whole segment aside as "corrupt-*" and
 * committed entries are gone. So close only once every appended entry is on
 * disk (bounded: give up waiting after 2 s, e.g. if the disk hangs).
 */
static void close_when_stored(uv_timer_t *t)
{
	struct node *n = t->data;
	if (peek_last_stored(&n->raft) < raft_last_index(&n->raft) &&
	    node_now(n) - n->close_started < 2000) {
		uv_timer_start(&n->wake, close_when_stored, 5, 0);
		return;
	}
	uv_timer_stop(&n->wake);
	/* Clean shutdown: record how far this node got (storage.h). */
	storage_marker_note(&n->marker, stored_commit(n), peek_term(&n->raft), node_now(n));
	storage_marker_flush(&n->marker);
	isolation_close(&n->isolation); /* dropped sends called back before raft goes */
	raft_close(&n->raft, on_raft_closed);
}

void node_close(struct node *n, node_close_cb cb)
{
	if (n->closing)
		return;
	n->closing = true; /* stops leader_tick: no new barriers */
	n->close_cb = cb;
	n->close_started = node_now(n);
	leader_close(&n->leader);
	uv_timer_stop(&n->wake);
	close_when_stored(&n->wake);
}

static void on_transfer(struct raft_transfer *req)
{
	struct node *n = req->data;
	raft_id id;
	const char *addr;

	n->transferring = false;
	raft_leader(&n->raft, &id, &addr);
	if (n->transfer_cb)
		n->transfer_cb(n, id != 0 && id != peek_id(&n->raft));
}

int node_transfer(struct node *n, uint64_t id, node_transfer_cb cb)
{
	int rv;

	if (n->transferring)
		return RAFT_BUSY;
	n->transfer.data = n;
	n->transfer_cb = cb;
	/* The new leader writes at once (no leader_hold after a transfer):
	 * this one stops now; a failed transfer renews with a fresh commit. */
	leader_suspend(&n->leader);
	rv = raft_transfer(&n->raft, &n->transfer, id, on_transfer);
	if (rv == 0)
		n->transferring = true;
	return rv;
}

void node_isolate(struct node *n, bool on)
{
	if (!n->closing)
		isolation_set(&n->isolation, on);
}

bool node_isolated(const struct node *n)
{
	return isolation_on(&n->isolation);
}

void node_isolation_stats(const struct node *n, uint64_t *dropped_in, uint64_t *dropped_out)
{
	*dropped_in = n->isolation.dropped_in;
	*dropped_out = n->isolation.dropped_out;
}

uint64_t node_unaddressed_messages(const struct node *n)
{
	return n->isolation.unaddressed;
}

bool node_transferring(const struct node *n)
{
	return n->transferring;
}

void node_transfer_cancel_cb(struct node *n)
{
	n->transfer_cb = NULL;
}

const char *node_state_name(enum node_state s)
{
	switch (s) {
	case NODE_LEADER:
		return "leader";
	case NODE_FOLLOWER:
		return "follower";
	case NODE_CANDIDATE:
		return "candidate";
	default:
		return "unavailable";
	}
}

enum node_state node_state(struct node *n)
{
	switch (raft_state(&n->raft)) {
	case RAFT_LEADER:
		return NODE_LEADER;
	case RAFT_FOLLOWER:
		return NODE_FOLLOWER;
	case RAFT_CANDIDATE:
		return NODE_CANDIDATE;
	default:
		return NODE_UNAVAILABLE;
	}
}

uint64_t node_leader_id(struct node *n)
{
	raft_id id;
	const char *addr;

	raft_leader(&n->raft, &id, &addr);
	return id;
}

uint64_t node_term(struct node *n)
{
	return peek_term(&n->raft);
}

bool node_is_voter(struct node *n)
{
	const struct raft_configuration *conf = peek_configuration(&n->raft);
	raft_id self = peek_id(&n->raft);
	unsigned i;

	for (i = 0; i < conf->n; i++)
		if (conf->servers[i].id == self)
			return conf->servers[i].role == RAFT_VOTER;
	return false;
}

bool node_leader_ready(struct node *n)
{
	return leader_ready(&n->leader);
}

bool node_may_write(struct node *n)
{
	return leader_may_write(&n->leader);
}

unsigned node_election_timeout_ms(const struct node *n)
{
	return n->election_timeout_ms;
}

bool node_lease_suspend(struct node *n)
{
	if (!leader_ready(&n->leader))
		return false;
	leader_suspend(&n->leader);
	return true;
}

void node_stop_writing(struct node *n)
{
	leader_stop(&n->leader);
}

int node_early_election(struct node *n, unsigned stagger_ms)
{
	return peek_early_election(&n->raft, n->loop, stagger_ms);
}

void node_stats(const struct node *n, struct node_stats *out)
{
	memset(out, 0, sizeof *out);
	out->elections = n->elections;
	out->spurious_elections = n->spurious_elections;
	out->vote_retries = n->vote_retries;
	out->leader_changes = n->leader_changes;
	out->became_leader = n->leader.became_leader;
	out->last_barrier_ms = n->leader.last_barrier_ms;
	out->lease_heartbeat_renewals = n->leader.heartbeat_renewals;
	out->lease_renewal_barriers = n->leader.renewal_barriers;
	out->fsm_applied = n->fsm.stats.applied;
	out->fsm_refused = n->fsm.stats.refused;
	out->failover.at = n->failover.at;
	out->failover.detected_ms = n->failover.detected_ms;
	out->failover.elected_ms = n->failover.elected_ms;
	out->failover.candidate_wall_ms = n->failover.candidate_wall_ms;
	out->failover.won_wall_ms = n->failover.won_wall_ms;
}

bool node_bootstrapped(const struct node *n)
{
	return n->bootstrapped;
}

const char *node_storage_warning(const struct node *n)
{
	return n->storage_info.warning;
}

const struct storage_health *node_storage(const struct node *n)
{
	return &n->storage;
}

unsigned node_unreachable_after_ms(const struct node *n)
{
	return n->election_timeout_ms + 2 * n->heartbeat_ms;
}

/* The rule of node.h (node_status): contact from what raft/isolation.c saw
 * arrive. */
static void member_contact(struct node *n, raft_id id, raft_id leader, struct node_member_status *m)
{
	raft_time now = node_now(n), heard = isolation_heard_at(&n->isolation, id), since;
	unsigned limit = node_unreachable_after_ms(n);
	bool leading = raft_state(&n->raft) == RAFT_LEADER;

	if (id == peek_id(&n->raft)) {
		m->reachable = 1;
		m->last_contact_ms = 0;
		return;
	}
	m->last_contact_ms = heard ? (int64_t)(now > heard ? now - heard : 0) : -1;
	if (leading || id == leader) {
		/* silence counted from the last message, or from when this node
		 * could first expect one (it became leader, or it started) */
		since = heard;
		if (leading && n->leading_since > since)
			since = n->leading_since;
		if (since == 0)
			since = n->started_at;
		m->reachable = now - since <= limit ? 1 : 0;
		return;
	}
	m->reachable = heard != 0 && now - heard <= limit ? 1 : -1;
}

void node_status(struct node *n, struct node_status *out)
{
	struct raft *r = &n->raft;
	const struct raft_configuration *conf;
	raft_id id;
	const char *addr;
	unsigned i;

	memset(out, 0, sizeof *out);
	out->state = node_state(n);
	out->ready = leader_ready(&n->leader);
	out->term = peek_term(r);
	raft_leader(r, &id, &addr);
	out->leader_id = id;
	if (addr)
		snprintf(out->leader_address, sizeof out->leader_address, "%s", addr);
	out->commit_index = peek_commit_index(r);
	out->applied_index = raft_last_applied(r);
	out->last_index = raft_last_index(r);
	conf = peek_configuration(r);
	for (i = 0; i < conf->n && i < NODE_MAX_MEMBERS; i++) {
		const struct raft_server *s = &conf->servers[i];
		struct node_member_status *m = &out->members[i];
		raft_index match;
		m->id = s->id;
		snprintf(m->address, sizeof m->address, "%s", s->address);
		m->role = s->role == RAFT_VOTER ? NODE_VOTER
			  : s->role == RAFT_STANDBY ? NODE_STANDBY
						     : NODE_SPARE;
		(void)peek_reachable(r, i, &match);
		m->match_index = match;
		member_contact(n, s->id, id, m);
	}
	out->n_members = i;
	out->storage_state = n->storage.state;
	snprintf(out->storage_detail, sizeof out->storage_detail, "%s", n->storage.detail);
}

struct apply_req {
	struct raft_apply req;
	struct node *n;
	raft_term term;
	raft_time started;
	node_apply_cb cb;
	void *arg;
};

static void on_applied(struct raft_apply *req, int status, void *result)
{
	struct apply_req *a = req->data;
	(void)result;
	if (status == 0)
		leader_note_commit(&a->n->leader, a->term, a->started);
	a->cb(a->arg, status);
	free(a);
}

int node_apply(struct node *n, struct raft_buffer *buf, node_apply_cb cb, void *arg)
{
	struct apply_req *a = xcalloc(1, sizeof *a);
	int rv;

	a->n = n;
	a->term = peek_term(&n->raft);
	a->started = node_now(n);
	a->cb = cb;
	a->arg = arg;
	a->req.data = a;
	rv = raft_apply(&n->raft, &a->req, buf, 1, on_applied);
	if (rv != 0)
		free(a);
	return rv;
}

/*
 * How long a promotion is retried while the new server does not answer its
 * catch-up rounds (libraft gives up on a round after
 * max_catch_up_round_duration, 5 s by default, with RAFT_NOCONNECTION). After
 * that the add is undone: the spare is removed again, so a failed add leaves
 * the configuration as it was and the next change can run.
 */
#define PROMOTE_TRY_MS 30000

struct change_req {
	struct raft_change req;
	struct node *n;
	uint64_t id;
	bool promote;     /* after raft_add: assign the voter role */
	bool promoting;   /* raft_assign in flight, or waiting to be retried */
	bool undoing;     /* the add is being undone: raft_remove of the spare in flight */
	bool abort_asked; /* `cluster abort` while raft_add was being committed */
	raft_time promote_started;
	uv_timer_t timer;
	node_change_cb cb;
	void *arg;
	node_change_cb abort_cb; /* the operator's abort waiting for the undo, or NULL */
	void *abort_arg;
	int undo_status;  /* what cb reports once the add is undone */
	int undo_rv;      /* raft_remove's immediate failure, reported from the timer */
	char undo_why[128];
};

static void on_changed(struct raft_change *req, int status);

static void on_change_timer_closed(uv_handle_t *h)
{
	free(h->data);
}

static void change_done(struct change_req *c, int status, const char *err)
{
	if (c->n->change == c)
		c->n->change = NULL;
	c->cb(c->arg, status, err);
	c->timer.data = c;
	uv_close((uv_handle_t *)&c->timer, on_change_timer_closed);
}

/* The spare is out again (status 0) or could not be removed: tell whoever
 * aborted, then the add's own waiter. */
static void undo_done(struct change_req *c, int status)
{
	char err[384];

	if (c->abort_cb)
		c->abort_cb(c->abort_arg, status, status == 0 ? "" : raft_strerror(status));
	if (status == 0)
		snprintf(err, sizeof err, "%s; the spare %llu was removed again, the configuration is as before",
			 c->undo_why, (unsigned long long)c->id);
	else
		snprintf(err, sizeof err,
			 "%s; removing the spare %llu failed (%s): run canopyctl cluster remove %llu",
			 c->undo_why, (unsigned long long)c->id, raft_strerror(status),
			 (unsigned long long)c->id);
	change_done(c, c->undo_status, err);
}

static void on_undo_failed(uv_timer_t *t)
{
	struct change_req *c = t->data;
	undo_done(c, c->undo_rv);
}

/*
 * Take back an add that will not complete: remove the spare it added (one
 * server at a time, Raft dissertation §4.1 -- this is an ordinary removal,
 * allowed because the add's configuration entry is committed and no
 * promotion is pending any more).
 */
static void undo_add(struct change_req *c, int status, const char *why)
{
	int rv;

	uv_timer_stop(&c->timer);
	c->promote = c->promoting = false;
	c->undoing = true;
	c->undo_status = status;
	snprintf(c->undo_why, sizeof c->undo_why, "%s", why);
	rv = raft_remove(&c->n->raft, &c->req, c->id, on_changed);
	if (rv != 0) { /* report from the loop, never from inside the caller */
		c->undo_rv = rv;
		uv_timer_start(&c->timer, on_undo_failed, 0, 0);
	}
}

static void promote(uv_timer_t *t)
{
	struct change_req *c = t->data;
	char err[256];
	int rv;

	c->promoting = true;
	rv = raft_assign(&c->n->raft, &c->req, c->id, RAFT_VOTER, on_changed);
	if (rv != 0) {
		snprintf(err, sizeof err, "promote %llu to voter: %s", (unsigned long long)c->id,
			 raft_errmsg(&c->n->raft));
		change_done(c, rv, err);
	}
}

static void on_changed(struct raft_change *req, int status)
{
	struct change_req *c = req->data;
	char err[256] = "";

	if (c->undoing) {
		undo_done(c, status);
		return;
	}
	if (status == 0 && c->promote) {
		/* Added as spare; now catch it up and make it a voter. */
		c->promote = false;
		if (c->abort_asked) {
			undo_add(c, RAFT_CANCELED, "aborted by the operator");
			return;
		}
		c->promote_started = node_now(c->n);
		promote(&c->timer);
		return;
	}
	if (c->promoting && status == RAFT_NOCONNECTION) {
		/* The new agent may still be starting: it is a spare already, so
		 * the cluster is unaffected; try the promotion again shortly, for
		 * a while, then undo the add. */
		if (node_now(c->n) - c->promote_started < PROMOTE_TRY_MS) {
			uv_timer_start(&c->timer, promote, 200, 0);
			return;
		}
		snprintf(err, sizeof err, "promote to voter: server %llu did not catch up within %d s",
			 (unsigned long long)c->id, PROMOTE_TRY_MS / 1000);
		undo_add(c, status, err);
		return;
	}
	if (status != 0)
		snprintf(err, sizeof err, "%s%s", c->promoting ? "promote to voter: " : "",
			 raft_strerror(status));
	change_done(c, status, err);
}

static struct change_req *change_new(struct node *n, uint64_t id, node_change_cb cb, void *arg)
{
	struct change_req *c = xcalloc(1, sizeof *c);
	c->n = n;
	c->id = id;
	c->cb = cb;
	c->arg = arg;
	c->req.data = c;
	uv_timer_init(n->loop, &c->timer);
	c->timer.data = c;
	return c;
}

int node_add(struct node *n, uint64_t id, const char *address, node_change_cb cb, void *arg)
{
	struct change_req *c = change_new(n, id, cb, arg);
	int rv;

	c->promote = true;
	rv = raft_add(&n->raft, &c->req, id, address, on_changed);
	if (rv != 0)
		uv_close((uv_handle_t *)&c->timer, on_change_timer_closed);
	else
		n->change = c;
	return rv;
}

int node_remove(struct node *n, uint64_t id, node_change_cb cb, void *arg)
{
	struct change_req *c = change_new(n, id, cb, arg);
	int rv;

	rv = raft_remove(&n->raft, &c->req, id, on_changed);
	if (rv != 0)
		uv_close((uv_handle_t *)&c->timer, on_change_timer_closed);
	else
		n->change = c;
	return rv;
}

uint64_t node_change_adding(struct node *n)
{
	struct change_req *c = n->change;
	return c && (c->promote || c->promoting) && !c->undoing ? c->id : 0;
}

int node_abort_change(struct node *n, node_change_cb cb, void *arg, char *errmsg, size_t errlen)
{
	struct change_req *c = n->change;

	if (c == NULL) {
		snprintf(errmsg, errlen, "no membership change is in progress on this leader");
		return -ENOENT;
	}
	if (c->undoing || c->abort_asked) {
		snprintf(errmsg, errlen, "the add of server %llu is already being undone",
			 (unsigned long long)c->id);
		return -EBUSY;
	}
	if (!c->promote && !c->promoting) {
		snprintf(errmsg, errlen,
			 "the removal of server %llu is being committed; it cannot be taken back",
			 (unsigned long long)c->id);
		return -EBUSY;
	}
	if (c->promote) {
		/* raft_add's entry is on its way: undo as soon as it commits. */
		c->abort_asked = true;
		c->abort_cb = cb;
		c->abort_arg = arg;
		return 0;
	}
	/* Promoting: either waiting to retry, or libraft is catching the new
	 * server up (promotee_id set; see peek_cancel_promotion). */
	if (!uv_is_active((uv_handle_t *)&c->timer) && peek_cancel_promotion(&n->raft, &c->req) != 0) {
		snprintf(errmsg, errlen,
			 "server %llu caught up and its promotion to voter is being committed; "
			 "remove it once that is done",
			 (unsigned long long)c->id);
		return -EBUSY;
	}
	c->abort_cb = cb;
	c->abort_arg = arg;
	undo_add(c, RAFT_CANCELED, "aborted by the operator");
	return 0;
}

int node_membership(struct node *n)
{
	const struct raft_configuration *conf = peek_configuration(&n->raft);
	unsigned i;

	for (i = 0; i < conf->n; i++)
		if (conf->servers[i].id == peek_id(&n->raft))
			return 1;
	return n->was_member ? -1 : 0;
}

raft_time node_leaderless_ms(struct node *n)
{
	raft_time since = n->leader_seen_at ? n->leader_seen_at : n->started_at;
	return node_now(n) - since;
}
