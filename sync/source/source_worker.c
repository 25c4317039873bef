/*
 * sync/source/source_worker.c -- the worker thread, its reconnect loop and
 * the loop side every LDAP source shares (source_worker.h).
 */
#include <errno.h>
#include <poll.h>
#include <signal.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "common/xalloc.h"
#include "sync/source/source_worker.h"

int source_worker_fail(char *errmsg, size_t errlen, int rc, const char *fmt, ...)
{
	va_list ap;

	if (errmsg != NULL && errlen > 0) {
		va_start(ap, fmt);
		vsnprintf(errmsg, errlen, fmt, ap);
		va_end(ap);
	}
	return rc;
}

struct source_event *source_event_new(enum source_event_kind kind, enum object_type type)
{
	struct source_event *ev = xcalloc(1, sizeof *ev);

	ev->kind = kind;
	ev->type = type;
	return ev;
}

void source_worker_init(struct source_worker *w, const char *const *urls, size_t n_urls, size_t queue_max,
			unsigned backoff_min_ms, unsigned backoff_max_ms)
{
	w->urls = xcalloc(n_urls, sizeof *w->urls);
	w->n_urls = n_urls;
	for (size_t i = 0; i < n_urls; i++)
		w->urls[i] = xstrdup(urls[i]);
	w->backoff_min_ms = backoff_min_ms ? backoff_min_ms : SOURCE_WORKER_BACKOFF_MIN_DEFAULT;
	w->backoff_max_ms = backoff_max_ms ? backoff_max_ms : SOURCE_WORKER_BACKOFF_MAX_DEFAULT;
	if (w->backoff_max_ms < w->backoff_min_ms)
		w->backoff_max_ms = w->backoff_min_ms;
	for (int i = 0; i < SOURCE_WORKER_FDS; i++)
		w->fds[i] = -1;
	w->wake_fd = -1;
	source_ring_init(&w->ring, queue_max ? queue_max : SOURCE_WORKER_QUEUE_DEFAULT);
}

void source_worker_release(struct source_worker *w)
{
	for (size_t i = 0; w->urls != NULL && i < w->n_urls; i++)
		free(w->urls[i]);
	free(w->urls);
	w->urls = NULL;
	source_ring_free(&w->ring);
}

/* ---- the loop side ---------------------------------------------------------- */

static void on_closed(uv_handle_t *h)
{
	struct source_worker *w = h->data;
	void (*done)(void *) = w->done;
	void *data = w->done_data;

	close(w->wake_fd);
	pthread_cond_destroy(&w->not_full);
	pthread_mutex_destroy(&w->lock);
	source_worker_release(w);
	w->ops->release(w->impl); /* frees w */
	if (done != NULL)
		done(data);
}

static void finish(struct source_worker *w)
{
	if (w->closing)
		return;
	w->closing = true;
	/* the worker has set `exited`; its last act is one uv_async_send, so
	 * the join is short and no send can reach the handle after close */
	pthread_join(w->thread, NULL);
	uv_close((uv_handle_t *)&w->async, on_closed);
}

static void on_async(uv_async_t *a)
{
	struct source_worker *w = a->data;

	for (size_t n = 0; n < SOURCE_WORKER_DELIVER_BATCH; n++) {
		struct source_event *ev = NULL;
		bool stopping, exited;

		pthread_mutex_lock(&w->lock);
		stopping = w->stopping;
		exited = w->exited;
		if (!stopping && !w->paused && (ev = source_ring_take(&w->ring)) != NULL)
			pthread_cond_signal(&w->not_full);
		pthread_mutex_unlock(&w->lock);
		if (stopping) {
			if (exited)
				finish(w);
			return;
		}
		if (ev == NULL)
			return;
		if (ev->kind == SOURCE_STATUS) {
			w->status.reported = true;
			w->status.connected = ev->connected;
			w->status.problem = ev->problem;
			snprintf(w->status.message, sizeof w->status.message, "%s", ev->message ? ev->message : "");
		}
		w->cb(w->data, ev); /* may stop or pause the run */
	}
	uv_async_send(&w->async); /* more next iteration */
}

void source_worker_stop(struct source_worker *w, void (*done)(void *data), void *data)
{
	pthread_mutex_lock(&w->lock);
	w->stopping = true;
	w->done = done;
	w->done_data = data;
	/* break a worker blocked in ldap_result (a search, a bind): the socket
	 * reads EOF, libldap fails the call, the worker sees `stopping` */
	for (int i = 0; i < SOURCE_WORKER_FDS; i++)
		if (w->fds[i] >= 0)
			shutdown(w->fds[i], SHUT_RDWR);
	source_ring_clear(&w->ring);
	pthread_cond_broadcast(&w->not_full);
	pthread_mutex_unlock(&w->lock);
	(void)eventfd_write(w->wake_fd, 1);
}

void source_worker_pause(struct source_worker *w)
{
	pthread_mutex_lock(&w->lock);
	w->paused = true;
	pthread_mutex_unlock(&w->lock);
}

void source_worker_resume(struct source_worker *w)
{
	pthread_mutex_lock(&w->lock);
	w->paused = false;
	pthread_mutex_unlock(&w->lock);
	uv_async_send(&w->async);
}

void source_worker_refresh(struct source_worker *w, unsigned bits)
{
	pthread_mutex_lock(&w->lock);
	w->refresh_req |= bits;
	pthread_mutex_unlock(&w->lock);
	(void)eventfd_write(w->wake_fd, 1);
}

size_t source_worker_queue_peak(struct source_worker *w)
{
	size_t v;

	pthread_mutex_lock(&w->lock);
	v = w->ring.peak;
	pthread_mutex_unlock(&w->lock);
	return v;
}

/* ---- the source port ----------------------------------------------------------- */

static struct source_worker *run_of(struct source_run *run)
{
	return (struct source_worker *)run;
}

static void p_stop(struct source_run *run, void (*done)(void *data), void *data)
{
	source_worker_stop(run_of(run), done, data);
}

static void p_pause(struct source_run *run)
{
	source_worker_pause(run_of(run));
}

static void p_resume(struct source_run *run)
{
	source_worker_resume(run_of(run));
}

static void p_status(struct source_run *run, struct source_status *out)
{
	struct source_worker *w = run_of(run);

	*out = w->status;
	out->queue_peak = source_worker_queue_peak(w);
	pthread_mutex_lock(&w->lock);
	out->checked_at_ms = w->checked_at_ms;
	out->next_retry_at_ms = w->next_retry_at_ms;
	snprintf(out->last_op, sizeof out->last_op, "%s", w->last_op);
	out->last_code = w->last_code;
	pthread_mutex_unlock(&w->lock);
}

/* Wake the backoff sleep (backoff_wait): the next attempt starts now. */
static void p_retry_now(struct source_run *run)
{
	struct source_worker *w = run_of(run);
	(void)eventfd_write(w->wake_fd, 1);
}

static void p_close(struct source *src)
{
	free(src->impl);
	free(src);
}

void source_worker_port(struct source *src, const char *name, void *impl)
{
	src->impl = impl;
	src->name = name;
	src->pause = p_pause;
	src->resume = p_resume;
	src->status = p_status;
	src->retry_now = p_retry_now;
	src->stop = p_stop;
	src->close = p_close;
}

/* ---- the worker side ------------------------------------------------------------ */

bool source_worker_stopping(struct source_worker *w)
{
	bool v;

	pthread_mutex_lock(&w->lock);
	v = w->stopping;
	pthread_mutex_unlock(&w->lock);
	return v;
}

int source_worker_push(struct source_worker *w, struct source_event *ev)
{
	pthread_mutex_lock(&w->lock);
	while (source_ring_full(&w->ring) && !w->stopping)
		pthread_cond_wait(&w->not_full, &w->lock);
	if (w->stopping) {
		pthread_mutex_unlock(&w->lock);
		source_event_free(ev);
		return -ECANCELED;
	}
	source_ring_put(&w->ring, ev);
	pthread_mutex_unlock(&w->lock);
	uv_async_send(&w->async);
	return 0;
}

int source_worker_status(struct source_worker *w, bool connected, const char *msg)
{
	struct source_event *ev;

	/* report changes only: a server that stays down is one event */
	if (w->status_sent && w->last_connected == connected && strcmp(w->last_msg, msg) == 0)
		return 0;
	ev = source_event_new(SOURCE_STATUS, OBJECT_UNKNOWN);
	ev->message = xstrdup(msg);
	ev->connected = connected;
	ev->problem = connected ? SOURCE_PROBLEM_NONE
			: w->problem != SOURCE_PROBLEM_NONE ? w->problem : SOURCE_UNREACHABLE;
	w->status_sent = true;
	w->last_connected = connected;
	snprintf(w->last_msg, sizeof w->last_msg, "%s", msg);
	return source_worker_push(w, ev);
}

void source_worker_note(struct source_worker *w, const char *what, int code)
{
	snprintf(w->fail_op, sizeof w->fail_op, "%s", what);
	w->fail_code = code;
}

void source_worker_healthy(struct source_worker *w)
{
	w->failures = 0;
}

int source_worker_publish_fd(struct source_worker *w, int slot, int fd)
{
	int rc = 0;

	pthread_mutex_lock(&w->lock);
	if (w->stopping)
		rc = -ECANCELED;
	else
		w->fds[slot] = fd;
	pthread_mutex_unlock(&w->lock);
	return rc;
}

void source_worker_unpublish(struct source_worker *w)
{
	pthread_mutex_lock(&w->lock);
	for (int i = 0; i < SOURCE_WORKER_FDS; i++)
		w->fds[i] = -1;
	pthread_mutex_unlock(&w->lock);
}

unsigned source_worker_take_refresh(struct source_worker *w)
{
	unsigned bits;

	pthread_mutex_lock(&w->lock);
	bits = w->refresh_req;
	w->refresh_req = 0;
	pthread_mutex_unlock(&w->lock);
	return bits;
}

void source_worker_wake_drain(struct source_worker *w)
{
	eventfd_t v;

	(void)eventfd_read(w->wake_fd, &v);
}

/* Sleep for the backoff delay unless stop() comes first. "Equal jitter":
 * half fixed, half random, so agents that lost the same server do not all
 * come back at once. Returns true when stopping. */
static bool backoff_wait(struct source_worker *w, unsigned failures, unsigned *seed)
{
	uint64_t d = w->backoff_min_ms;
	struct pollfd p = {.fd = w->wake_fd, .events = POLLIN};
	struct timespec now;
	int64_t now_ms;

	for (unsigned i = 0; i < failures && d < w->backoff_max_ms; i++)
		d *= 2;
	if (d > w->backoff_max_ms)
		d = w->backoff_max_ms;
	d = d / 2 + (uint64_t)rand_r(seed) % (d / 2 + 1);
	/* what status shows of this failure: when, what, and the next try */
	clock_gettime(CLOCK_REALTIME, &now);
	now_ms = (int64_t)now.tv_sec * 1000 + now.tv_nsec / 1000000;
	pthread_mutex_lock(&w->lock);
	w->checked_at_ms = now_ms;
	w->next_retry_at_ms = now_ms + (int64_t)d;
	snprintf(w->last_op, sizeof w->last_op, "%s", w->fail_op);
	w->last_code = w->fail_code;
	pthread_mutex_unlock(&w->lock);
	if (poll(&p, 1, (int)d) > 0)
		source_worker_wake_drain(w);
	return source_worker_stopping(w);
}

static void *worker_main(void *arg)
{
	struct source_worker *w = arg;
	unsigned seed = (unsigned)time(NULL) ^ (unsigned)(uintptr_t)w;
	char msg[SOURCE_WORKER_MSG_MAX];

	while (!source_worker_stopping(w)) {
		const char *url = w->urls[w->url_idx];
		int rc;

		snprintf(msg, sizeof msg, "%s: disconnected", url); /* failures say more */
		w->problem = SOURCE_PROBLEM_NONE;
		w->fail_op[0] = '\0';
		w->fail_code = 0;
		rc = w->ops->session(w->impl, url, msg, sizeof msg);
		w->ops->disconnect(w->impl);
		if (source_worker_stopping(w) || rc == -ECANCELED)
			break;
		if (rc == SOURCE_WORKER_AGAIN)
			continue; /* same URL, at once: not a failure */
		source_worker_status(w, false, msg);
		if (backoff_wait(w, w->failures++, &seed))
			break;
		w->url_idx = (w->url_idx + 1) % w->n_urls;
	}
	pthread_mutex_lock(&w->lock);
	w->exited = true;
	pthread_mutex_unlock(&w->lock);
	uv_async_send(&w->async);
	return NULL;
}

static int spawn(struct source_worker *w)
{
	sigset_t all, old;
	int rc;

	sigfillset(&all);
	pthread_sigmask(SIG_SETMASK, &all, &old);
	rc = pthread_create(&w->thread, NULL, worker_main, w);
	pthread_sigmask(SIG_SETMASK, &old, NULL);
	return -rc;
}

int source_worker_start(struct source_worker *w, uv_loop_t *loop, const struct source_worker_ops *ops, void *impl,
			source_event_cb cb, void *data, char *errmsg, size_t errlen)
{
	int rc;

	w->loop = loop;
	w->ops = ops;
	w->impl = impl;
	w->cb = cb;
	w->data = data;
	w->wake_fd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
	if (w->wake_fd < 0) {
		rc = source_worker_fail(errmsg, errlen, -errno, "source: eventfd: %s", strerror(errno));
		goto err_after_init;
	}
	rc = -pthread_mutex_init(&w->lock, NULL);
	if (rc != 0) {
		source_worker_fail(errmsg, errlen, rc, "source: mutex: %s", strerror(-rc));
		goto err_after_eventfd;
	}
	rc = -pthread_cond_init(&w->not_full, NULL);
	if (rc != 0) {
		source_worker_fail(errmsg, errlen, rc, "source: condvar: %s", strerror(-rc));
		goto err_after_mutex;
	}
	rc = uv_async_init(loop, &w->async, on_async);
	if (rc != 0) {
		source_worker_fail(errmsg, errlen, rc, "source: uv_async_init: %s", uv_strerror(rc));
		goto err_after_cond;
	}
	w->async.data = w;
	rc = spawn(w);
	if (rc != 0) {
		source_worker_fail(errmsg, errlen, rc, "source: worker thread: %s", strerror(-rc));
		goto err_after_async;
	}
	return 0;

err_after_async:
	/* the handle is closed on the loop; on_closed frees the rest (done
	 * is NULL, so nothing is called back) */
	uv_close((uv_handle_t *)&w->async, on_closed);
	return rc;
err_after_cond:
	pthread_cond_destroy(&w->not_full);
err_after_mutex:
	pthread_mutex_destroy(&w->lock);
err_after_eventfd:
	close(w->wake_fd);
err_after_init:
	source_worker_release(w);
	ops->release(impl);
	return rc;
}
