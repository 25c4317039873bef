/*
 * bench/bare_raft.c -- a bare libraft 0.15 server: the ceiling for failover.
 *
 *   bare_raft ID DATA_DIR ELECTION_TIMEOUT_MS ADDR1 ADDR2 ... ADDRn
 *
 * Server ID (1..n) listens on ADDR<ID> (host:port); the n addresses are the
 * bootstrap voters 1..n (RAFT_CANTBOOTSTRAP on a restart: already
 * bootstrapped). raft_uv + raft_uv_tcp with libraft's defaults (as
 * canopy-agent uses them: default connect-retry delay, segment and snapshot
 * settings), pre-vote on, election timeout T from argv and heartbeat T/10.
 * The FSM does nothing (it counts applied entries).
 *
 * libraft 0.15 has no state callback, so raft_state() is polled on every loop
 * iteration (uv_check), plus a T/10 timer so that a poll is never long due.
 * Lines on stdout, flushed one by one, times in ms since the epoch
 * (CLOCK_REALTIME), so a script can compare them with its own clock:
 *
 *   started ID at MS
 *   leader ID term TERM at MS     raft_state() became RAFT_LEADER
 *   ready ID term TERM at MS      the first raft_barrier of that term committed
 *                                 (what an application such as canopy waits
 *                                 for before it acts as leader)
 *   follower ID term TERM at MS   it stopped being leader
 *   follows ID leader L term TERM at MS
 *                                 it learned of leader L (another server) in
 *                                 TERM: e.g. a restarted server has rejoined
 *
 * SIGPIPE is ignored (a killed peer would otherwise kill the survivors on
 * their next write to it). SIGTERM/SIGINT: raft_close, then exit 0.
 */
#include <raft.h>
#include <raft/uv.h>
#include <uv.h>

#include <errno.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>

#define MAX_SERVERS 9

struct server {
	uv_loop_t loop;
	struct raft_uv_transport transport;
	struct raft_io io;
	struct raft_fsm fsm;
	struct raft raft;
	uv_check_t check;
	uv_timer_t wake;
	uv_signal_t sigterm;
	uv_signal_t sigint;
	struct raft_barrier barrier;
	bool barrier_pending;
	uint64_t applied;
	raft_id id;
	int last_state;
	raft_term leader_term;
	raft_id followed;      /* the other leader last reported by "follows" */
	raft_term followed_term;
	bool closing;
};

static unsigned long long now_ms(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_REALTIME, &ts);
	return (unsigned long long)ts.tv_sec * 1000ULL + (unsigned long long)ts.tv_nsec / 1000000ULL;
}

/* ---- the trivial FSM ---------------------------------------------------- */

static int fsm_apply(struct raft_fsm *fsm, const struct raft_buffer *buf, void **result)
{
	struct server *s = fsm->data;
	(void)buf;
	s->applied++;
	*result = NULL;
	return 0;
}

static int fsm_snapshot(struct raft_fsm *fsm, struct raft_buffer *bufs[], unsigned *n_bufs)
{
	struct server *s = fsm->data;
	struct raft_buffer *b = raft_malloc(sizeof *b);

	if (b == NULL)
		return RAFT_NOMEM;
	b->len = sizeof s->applied;
	b->base = raft_malloc(b->len);
	if (b->base == NULL) {
		raft_free(b);
		return RAFT_NOMEM;
	}
	memcpy(b->base, &s->applied, sizeof s->applied);
	*bufs = b;
	*n_bufs = 1;
	return 0;
}

static int fsm_restore(struct raft_fsm *fsm, struct raft_buffer *buf)
{
	struct server *s = fsm->data;
	if (buf->len == sizeof s->applied)
		memcpy(&s->applied, buf->base, sizeof s->applied);
	raft_free(buf->base);
	return 0;
}

/* ---- leadership polling --------------------------------------------------- */

static void barrier_cb(struct raft_barrier *req, int status)
{
	struct server *s = req->data;
	s->barrier_pending = false;
	if (status == 0 && !s->closing && raft_state(&s->raft) == RAFT_LEADER &&
	    s->raft.current_term == s->leader_term) {
		printf("ready %llu term %llu at %llu\n", (unsigned long long)s->id,
		       (unsigned long long)s->leader_term, now_ms());
		fflush(stdout);
	}
}

static void poll_state(struct server *s)
{
	int state;

	if (s->closing)
		return;
	state = raft_state(&s->raft);
	if (state == RAFT_LEADER &&
	    (s->last_state != RAFT_LEADER || s->raft.current_term != s->leader_term)) {
		s->leader_term = s->raft.current_term;
		printf("leader %llu term %llu at %llu\n", (unsigned long long)s->id,
		       (unsigned long long)s->leader_term, now_ms());
		fflush(stdout);
		if (!s->barrier_pending) {
			s->barrier.data = s;
			if (raft_barrier(&s->raft, &s->barrier, barrier_cb) == 0)
				s->barrier_pending = true;
		}
	} else if (state != RAFT_LEADER && s->last_state == RAFT_LEADER) {
		printf("follower %llu term %llu at %llu\n", (unsigned long long)s->id,
		       (unsigned long long)s->raft.current_term, now_ms());
		fflush(stdout);
	}
	s->last_state = state;
	if (state == RAFT_FOLLOWER) {
		raft_id lid;
		const char *laddr;
		raft_leader(&s->raft, &lid, &laddr);
		if (lid != 0 && lid != s->id &&
		    (lid != s->followed || s->raft.current_term != s->followed_term)) {
			s->followed = lid;
			s->followed_term = s->raft.current_term;
			printf("follows %llu leader %llu term %llu at %llu\n",
			       (unsigned long long)s->id, (unsigned long long)lid,
			       (unsigned long long)s->followed_term, now_ms());
		}
	}
}

static void on_check(uv_check_t *h)
{
	poll_state(h->data);
}

static void on_wake(uv_timer_t *t)
{
	poll_state(t->data);
}

/* ---- shutdown --------------------------------------------------------------- */

static void on_raft_closed(struct raft *r)
{
	struct server *s = r->data;
	uv_close((uv_handle_t *)&s->check, NULL);
	uv_close((uv_handle_t *)&s->wake, NULL);
	uv_close((uv_handle_t *)&s->sigterm, NULL);
	uv_close((uv_handle_t *)&s->sigint, NULL);
}

static void on_signal(uv_signal_t *h, int signum)
{
	struct server *s = h->data;
	(void)signum;
	if (s->closing)
		return;
	s->closing = true;
	uv_timer_stop(&s->wake);
	uv_check_stop(&s->check);
	raft_close(&s->raft, on_raft_closed);
}

/* ---- main ------------------------------------------------------------------- */

static int make_dir(const char *path)
{
	char buf[1024];
	size_t i, len = strlen(path);

	if (len == 0 || len >= sizeof buf)
		return -1;
	memcpy(buf, path, len + 1);
	for (i = 1; i <= len; i++) {
		if (buf[i] != '/' && buf[i] != '\0')
			continue;
		buf[i] = '\0';
		if (mkdir(buf, 0700) != 0 && errno != EEXIST)
			return -1;
		buf[i] = path[i];
	}
	return 0;
}

static int usage(void)
{
	fprintf(stderr, "usage: bare_raft ID DATA_DIR ELECTION_TIMEOUT_MS ADDR1 ADDR2 ... (ID in 1..n)\n");
	return 2;
}

int main(int argc, char *argv[])
{
	static struct server s; /* large; zeroed */
	struct raft_configuration conf;
	const char *dir;
	char *end;
	unsigned long id, timeout;
	int n, i, rv;

	if (argc < 5)
		return usage();
	id = strtoul(argv[1], &end, 10);
	if (*end != '\0' || id == 0)
		return usage();
	dir = argv[2];
	timeout = strtoul(argv[3], &end, 10);
	if (*end != '\0' || timeout < 10)
		return usage();
	n = argc - 4;
	if (n > MAX_SERVERS || id > (unsigned long)n)
		return usage();
	if (make_dir(dir) != 0) {
		fprintf(stderr, "bare_raft: cannot create %s: %s\n", dir, strerror(errno));
		return 1;
	}

	setvbuf(stdout, NULL, _IOLBF, 0);
	/* libraft writes to peers' sockets: a dead peer must be an error code,
	 * not SIGPIPE (canopy-agent ignores it too). */
	signal(SIGPIPE, SIG_IGN);
	s.id = id;
	uv_loop_init(&s.loop);
	rv = raft_uv_tcp_init(&s.transport, &s.loop);
	if (rv != 0) {
		fprintf(stderr, "bare_raft: raft_uv_tcp_init: %s\n", raft_strerror(rv));
		return 1;
	}
	rv = raft_uv_init(&s.io, &s.loop, dir, &s.transport);
	if (rv != 0) {
		fprintf(stderr, "bare_raft: raft_uv_init(%s): %s\n", dir, s.io.errmsg);
		return 1;
	}
	s.fsm.version = 1;
	s.fsm.data = &s;
	s.fsm.apply = fsm_apply;
	s.fsm.snapshot = fsm_snapshot;
	s.fsm.restore = fsm_restore;
	rv = raft_init(&s.raft, &s.io, &s.fsm, id, argv[3 + id]);
	if (rv != 0) {
		fprintf(stderr, "bare_raft: raft_init: %s\n", raft_errmsg(&s.raft));
		return 1;
	}
	s.raft.data = &s;
	raft_set_election_timeout(&s.raft, (unsigned)timeout);
	raft_set_heartbeat_timeout(&s.raft, (unsigned)(timeout / 10));
	raft_set_pre_vote(&s.raft, true);

	raft_configuration_init(&conf);
	for (i = 0; i < n; i++) {
		rv = raft_configuration_add(&conf, (raft_id)(i + 1), argv[4 + i], RAFT_VOTER);
		if (rv != 0) {
			fprintf(stderr, "bare_raft: member %d@%s: %s\n", i + 1, argv[4 + i],
				raft_strerror(rv));
			return 1;
		}
	}
	rv = raft_bootstrap(&s.raft, &conf);
	raft_configuration_close(&conf);
	if (rv != 0 && rv != RAFT_CANTBOOTSTRAP) {
		fprintf(stderr, "bare_raft: bootstrap: %s\n", raft_errmsg(&s.raft));
		return 1;
	}
	rv = raft_start(&s.raft);
	if (rv != 0) {
		fprintf(stderr, "bare_raft: raft_start (%s): %s\n", argv[3 + id],
			raft_errmsg(&s.raft));
		return 1;
	}

	uv_check_init(&s.loop, &s.check);
	s.check.data = &s;
	uv_check_start(&s.check, on_check);
	uv_timer_init(&s.loop, &s.wake);
	s.wake.data = &s;
	uv_timer_start(&s.wake, on_wake, timeout / 10, timeout / 10);
	uv_signal_init(&s.loop, &s.sigterm);
	s.sigterm.data = &s;
	uv_signal_start(&s.sigterm, on_signal, SIGTERM);
	uv_signal_init(&s.loop, &s.sigint);
	s.sigint.data = &s;
	uv_signal_start(&s.sigint, on_signal, SIGINT);

	printf("started %lu at %llu\n", id, now_ms());
	uv_run(&s.loop, UV_RUN_DEFAULT);

	raft_uv_close(&s.io);
	raft_uv_tcp_close(&s.transport);
	uv_run(&s.loop, UV_RUN_DEFAULT);
	uv_loop_close(&s.loop);
	return 0;
}
