/*
 * sync/source/source_worker.h -- what every LDAP source shares: one worker
 * thread that reads the directory (libldap calls block) and a loop side that
 * delivers its events, with the reconnect-with-backoff loop between them and
 * the source-port operations that only touch the shared state.
 *
 * A source embeds a struct source_worker as the FIRST member of its own
 * struct (so a struct source_run * of the port is both), fills a small
 * operations table in the manner of libraft's struct raft_io, and the worker
 * module runs it:
 *
 *   worker thread:  while not stopping:
 *                       ops->session(impl, url)     connect, bind, run until failure
 *                       ops->disconnect(impl)       drop the connections
 *                       report the failure (SOURCE_STATUS, changes only), back off
 *                       with equal jitter, move on to the next URL of source.url
 *   loop thread:    events from the bounded ring (event_ring.h) through a
 *                   uv_async, at most SOURCE_WORKER_DELIVER_BATCH per loop
 *                   iteration; pause/resume; stop; once the worker has exited,
 *                   ops->release(impl) frees the source
 *
 * Threads. The loop thread owns the uv handle and the fields marked "loop";
 * the worker owns those marked "worker" and everything of the source's own
 * that talks LDAP. They share the ring, the stop flag, the refresh requests
 * and the published socket descriptors, under `lock`. The worker runs with
 * every signal blocked: the process's handlers belong to the loop thread, and
 * a write to a closed socket fails with EPIPE instead of raising SIGPIPE.
 */
#ifndef CANOPY_SYNC_SOURCE_SOURCE_WORKER_H
#define CANOPY_SYNC_SOURCE_SOURCE_WORKER_H

#include <pthread.h>
#include <stdbool.h>
#include <stddef.h>

#include <uv.h>

#include "sync/source/event_ring.h"
#include "sync/source/source.h"

#define SOURCE_WORKER_QUEUE_DEFAULT 1024
#define SOURCE_WORKER_BACKOFF_MIN_DEFAULT 100
#define SOURCE_WORKER_BACKOFF_MAX_DEFAULT 30000
#define SOURCE_WORKER_DELIVER_BATCH 256 /* events per loop iteration: do not starve the loop */
#define SOURCE_WORKER_FDS 2             /* sockets stop() can break (one per connection) */
#define SOURCE_WORKER_MSG_MAX 512

/* ops->session's "reconnect to the same URL at once, no failure" (a full
 * refresh was asked for and the session ended its connections for it). */
#define SOURCE_WORKER_AGAIN 1

struct source_worker_ops {
	/*
	 * Worker thread. Connect to `url`, bind, report it with
	 * source_worker_status(w, true, ...), and read until something fails
	 * or stop() is called. Returns a negative errno with `msg` saying why
	 * (and w->problem set, SOURCE_PROBLEM_NONE counting as unreachable),
	 * -ECANCELED when stopping, or SOURCE_WORKER_AGAIN.
	 */
	int (*session)(void *impl, const char *url, char *msg, size_t len);
	/* Worker thread, after every session: drop its connections. */
	void (*disconnect)(void *impl);
	/* Loop thread, once: the worker has exited (or never started) and the
	 * shared parts are released; free the source's own parts and itself. */
	void (*release)(void *impl);
};

struct source_worker {
	uv_loop_t *loop;
	uv_async_t async;
	source_event_cb cb;
	void *data;
	const struct source_worker_ops *ops;
	void *impl;

	/* configuration, copied by source_worker_init */
	char **urls;
	size_t n_urls;
	unsigned backoff_min_ms, backoff_max_ms;

	pthread_t thread;
	int wake_fd; /* eventfd: wakes the worker's poll() and its backoff sleep */

	/* shared, under lock */
	pthread_mutex_t lock;
	pthread_cond_t not_full;
	struct source_ring ring; /* worker -> loop */
	bool stopping, exited;
	unsigned refresh_req;         /* source_worker_refresh() bits, for the source */
	int fds[SOURCE_WORKER_FDS];   /* published sockets, for stop() */

	/* loop only */
	bool paused, closing;
	void (*done)(void *data);
	void *done_data;
	struct source_status status; /* what the SOURCE_STATUS events said */

	/* worker only */
	enum source_problem problem;  /* why the current session failed */
	size_t url_idx;               /* the URL being tried */
	unsigned failures;            /* consecutive failed sessions: the backoff */
	bool status_sent, last_connected;
	char last_msg[SOURCE_WORKER_MSG_MAX];
	char fail_op[16];             /* the operation of the current session's failure */
	int fail_code;                /* ... and its LDAP result code */

	/* shared, under lock: the last failed attempt (struct source_status) */
	int64_t checked_at_ms, next_retry_at_ms;
	char last_op[16];
	int last_code;
};

/* ---- set-up and the loop side ------------------------------------------------ */

/* Copy the URLs and the backoff bounds (0: the defaults) and make the ring
 * (queue_max 0: the default). Never fails (out of memory aborts). */
void source_worker_init(struct source_worker *w, const char *const *urls, size_t n_urls, size_t queue_max,
			unsigned backoff_min_ms, unsigned backoff_max_ms);
/* Free what source_worker_init made; for a source whose start fails before
 * source_worker_start. */
void source_worker_release(struct source_worker *w);

/*
 * Start the worker thread on ops/impl, delivering events to cb(data, ev) on
 * `loop`. Returns 0, or a negative errno with errmsg filled; on failure the
 * source is released (source_worker_release, then ops->release), perhaps
 * only on the next loop iteration: the caller touches it no more.
 */
int source_worker_start(struct source_worker *w, uv_loop_t *loop, const struct source_worker_ops *ops, void *impl,
			source_event_cb cb, void *data, char *errmsg, size_t errlen);

/* Loop thread. Stop at once: shut the published sockets down (a worker
 * blocked in ldap_result reads EOF), drop queued events without callbacks;
 * `done` runs on the loop once the thread has exited and all is released. */
void source_worker_stop(struct source_worker *w, void (*done)(void *data), void *data);
void source_worker_pause(struct source_worker *w);
void source_worker_resume(struct source_worker *w);
/* Ask the worker for a full refresh: `bits` say of what (the source's own
 * meaning); the worker takes them with source_worker_take_refresh. */
void source_worker_refresh(struct source_worker *w, unsigned bits);
/* The most events the ring held at once (any thread). */
size_t source_worker_queue_peak(struct source_worker *w);

/*
 * Fill the source port's pause, resume, status, stop and close operations
 * for a source whose runs start with a struct source_worker (close frees
 * `impl`, the configuration copy, and the table). The caller sets start and
 * refresh.
 */
void source_worker_port(struct source *src, const char *name, void *impl);

/* ---- the worker side -------------------------------------------------------- */

bool source_worker_stopping(struct source_worker *w);
/* Hand an event to the loop; waits while the ring is full (the back-pressure
 * that keeps memory bounded). Takes ownership. Returns 0 or -ECANCELED. */
int source_worker_push(struct source_worker *w, struct source_event *ev);
/* Report the connection: a SOURCE_STATUS event, unless it says what the last
 * one said (a server that stays down is one event). Returns as _push. */
int source_worker_status(struct source_worker *w, bool connected, const char *msg);
/* The session works: the next failure backs off from the shortest delay. */
void source_worker_healthy(struct source_worker *w);
/* Worker side: the current session fails at directory operation `what`
 * ("bind", "connect", "users search", ...) with LDAP result code `code`
 * (status last_op / last_code once the session ends). */
void source_worker_note(struct source_worker *w, const char *what, int code);
/* Make a socket known to stop() in `slot`, unless stop() already ran
 * (-ECANCELED); source_worker_unpublish forgets them all. */
int source_worker_publish_fd(struct source_worker *w, int slot, int fd);
void source_worker_unpublish(struct source_worker *w);
/* The refresh bits asked for since the last call (and clears them). */
unsigned source_worker_take_refresh(struct source_worker *w);
/* Consume the eventfd's wake-ups (after poll() saw it readable). */
void source_worker_wake_drain(struct source_worker *w);

/* Fill errmsg (if given) and return rc. */
int source_worker_fail(char *errmsg, size_t errlen, int rc, const char *fmt, ...) __attribute__((format(printf, 4, 5)));

struct source_event *source_event_new(enum source_event_kind kind, enum object_type type);

#endif /* CANOPY_SYNC_SOURCE_SOURCE_WORKER_H */
