/*
 * sync/target/entra.c -- the Entra ID target behind the target port
 * (target.h): a run's queue, its workers, cancel and stop. What one
 * operation sends is in entra_graph.c.
 */
#include <assert.h>
#include <ctype.h>
#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include "common/xalloc.h"
#include "sync/target/entra_internal.h"
#include "sync/target/target_metrics.h"

struct entra_target {
	struct target base;
	struct entra_cfg cfg;
};

/*
 * Threads of our own, not libuv's pool: an operation may wait out a
 * Retry-After of up to backoff_max_ms on its thread, and libraft's uv
 * backend prepares, finalizes and truncates segments on the libuv pool
 * (libraft src/raft/uv_prepare.c, uv_finalize.c, uv_truncate.c:
 * uv_queue_work), which must never queue behind those waits.
 */
struct entra_run {
	uv_loop_t *loop;
	const struct entra_cfg *cfg;
	struct entra_job *head, *tail;              /* waiting, FIFO (loop thread only) */
	struct entra_job *busy[ENTRA_MAX_WORKERS];  /* handed to a thread (loop thread only) */
	unsigned in_flight;
	uint64_t requests, retries, failures;
	uint64_t hold_until; /* see entra_internal.h */
	struct entra_budget budget;
	struct entra_batcher batcher;
	/* Quarantine (entra.h): the refused operations wait at the head of the
	 * queue; a probe re-sends the first of them. */
	bool quarantined;
	char q_detail[256];
	int64_t q_since_ms, q_next_ms, q_checked_ms; /* wall clock */
	char fail_method[8], fail_path[256];
	long fail_status;
	int64_t fail_at_ms;
	unsigned probe_ms;          /* the next wait between probes */
	bool probe_due;             /* the timer fired: pump hands out one operation */
	struct entra_job *probe;    /* that operation, on a thread */
	uv_timer_t probe_timer;
	struct http_multi *http; /* every request of the run (entra_internal.h) */
	char fence_node[32], fence_term[32], cluster[96];
	bool stopping;
	void (*done)(void *data);
	void *done_data;

	/* shared with the threads, under mu */
	pthread_mutex_t mu;
	pthread_cond_t cv;
	struct entra_job *work_head, *work_tail;  /* for a thread to take */
	struct entra_job *finished;               /* done, for the loop (LIFO) */
	unsigned threads;                         /* alive */
	bool quit;                                /* threads exit once the work is done */
	uv_async_t wake;                          /* a thread finished something */
};

int entra_anchor_property(const char *client_id, char *out, size_t outlen)
{
	char hex[33];
	size_t n = 0;

	if (client_id == NULL)
		return -EINVAL;
	for (const char *p = client_id; *p; p++) {
		if (*p == '-')
			continue;
		if (!isxdigit((unsigned char)*p) || n == 32)
			return -EINVAL;
		hex[n++] = (char)tolower((unsigned char)*p);
	}
	if (n != 32)
		return -EINVAL;
	hex[n] = '\0';
	if ((size_t)snprintf(out, outlen, "extension_%s_canopyAnchor", hex) >= outlen)
		return -EINVAL;
	return 0;
}

bool entra__cancelled(struct entra_job *j)
{
	return __atomic_load_n(&j->cancelled, __ATOMIC_ACQUIRE) != 0;
}

static struct entra_run *run_of(struct target_run *r)
{
	return (struct entra_run *)r;
}

static char **copy_ids(const char *const *ids, size_t n)
{
	char **out = n ? xcalloc(n, sizeof *out) : NULL;

	for (size_t i = 0; i < n; i++)
		out[i] = xstrdup(ids[i]);
	return out;
}

static void free_ids(char **ids, size_t n)
{
	for (size_t i = 0; i < n; i++)
		free(ids[i]);
	free(ids);
}

static void job_free(struct entra_job *j)
{
	free(j->anchor);
	free(j->target_id);
	json_decref(j->attrs);
	free(j->attr);
	free(j->value);
	free_ids(j->add, j->n_add);
	free_ids(j->remove, j->n_remove);
	free(j);
}

/* Hand the result to the engine (loop thread). */
static void complete(struct entra_run *r, struct entra_job *j, int status)
{
	struct target_op *top = j->top;
	target_done_cb cb = j->cb;

	j->top = NULL;
	if (status != 0) {
		j->status = status;
		j->permanent = false;
		snprintf(j->error, sizeof j->error, "cancelled (leadership or lease lost, or stopping)");
	}
	top->status = j->status;
	top->permanent = j->status != 0 && j->permanent;
	snprintf(top->result_id, sizeof top->result_id, "%s", j->result_id);
	top->created = j->created;
	top->matched = j->matched;
	top->http_status = j->http_status;
	top->attempts = j->attempts;
	top->duration_ms = j->duration_ms;
	snprintf(top->error, sizeof top->error, "%s", j->status != 0 ? j->error : "");
	top->values_refused = top->permanent && j->values_refused;
	top->n_add_done = j->n_add_done;
	top->n_remove_done = j->n_remove_done;
	top->taken = j->status == 0 && j->taken;
	if (j->status != 0 && j->status != -ECANCELED)
		r->failures++;
	target_metrics_error(top->action, top->status);
	cb(top);
}

static void finish_stop(struct entra_run *r);
static void pump(struct entra_run *r);

#define PROBE_MIN_MS 1000
#define PROBE_MAX_MS 60000

static int64_t wall_ms(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_REALTIME, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static void on_probe_timer(uv_timer_t *h)
{
	struct entra_run *r = h->data;

	r->q_next_ms = 0;
	if (r->stopping || !r->quarantined || r->probe != NULL)
		return;
	if (r->head == NULL) {
		/* nothing refused is left (cancelled): the next operation is
		 * the check */
		r->quarantined = false;
		return;
	}
	r->probe_due = true;
	pump(r);
}

static void arm_probe(struct entra_run *r)
{
	uv_timer_start(&r->probe_timer, on_probe_timer, r->probe_ms, 0);
	r->q_next_ms = wall_ms() + r->probe_ms;
	r->probe_ms = r->probe_ms >= PROBE_MAX_MS / 2 ? PROBE_MAX_MS : r->probe_ms * 2;
}

/*
 * Graph refused the application (j->denied): quarantine, and put j back at
 * the head of the queue, outputs cleared, so that it runs again -- first,
 * in its place -- once a probe gets through. Operations on the wire at the
 * same time are on other objects (the engine has one operation an object
 * out at a time), so their order among themselves does not matter.
 */
static void hold_denied(struct entra_run *r, struct entra_job *j, bool probe)
{
	snprintf(r->fail_method, sizeof r->fail_method, "%s", j->denied_method);
	snprintf(r->fail_path, sizeof r->fail_path, "%s", j->denied_path);
	r->fail_status = j->http_status;
	r->fail_at_ms = wall_ms();
	if (probe)
		r->q_checked_ms = r->fail_at_ms;
	snprintf(r->q_detail, sizeof r->q_detail, "%.255s", j->error);
	if (!r->quarantined) {
		r->quarantined = true;
		r->q_since_ms = r->fail_at_ms;
		r->q_checked_ms = 0;
		r->probe_ms = PROBE_MIN_MS;
	}
	j->status = 0;
	j->permanent = j->created = j->matched = j->values_refused = j->denied = false;
	j->result_id[0] = j->error[0] = '\0';
	j->http_status = 0;
	j->n_add_done = j->n_remove_done = 0;
	j->attempts = j->retries = 0; /* counted into the run's already */
	__atomic_store_n(&j->cancelled, 0, __ATOMIC_RELEASE);
	j->next = r->head;
	r->head = j;
	if (r->tail == NULL)
		r->tail = j;
	if (r->probe == NULL && !uv_is_active((uv_handle_t *)&r->probe_timer))
		arm_probe(r);
}

static void *thread_main(void *arg)
{
	struct entra_run *r = arg;

	pthread_mutex_lock(&r->mu);
	for (;;) {
		struct entra_job *j;
		while (r->work_head == NULL && !r->quit)
			pthread_cond_wait(&r->cv, &r->mu);
		if (r->work_head == NULL)
			break; /* quit, nothing left */
		j = r->work_head;
		r->work_head = j->next;
		if (r->work_head == NULL)
			r->work_tail = NULL;
		j->next = NULL;
		pthread_mutex_unlock(&r->mu);
		pthread_mutex_lock(&r->batcher.mu);
		r->batcher.active++;
		pthread_mutex_unlock(&r->batcher.mu);
		entra__exec(j);
		pthread_mutex_lock(&r->batcher.mu);
		r->batcher.active--;
		pthread_cond_broadcast(&r->batcher.cv); /* a sender waiting for us stops counting on us */
		pthread_mutex_unlock(&r->batcher.mu);
		pthread_mutex_lock(&r->mu);
		j->next = r->finished;
		r->finished = j;
		uv_async_send(&r->wake);
	}
	r->threads--;
	/* the last touch of r: the loop frees it once threads is 0 */
	uv_async_send(&r->wake);
	pthread_mutex_unlock(&r->mu);
	return NULL;
}

static void after_work(struct entra_run *r, struct entra_job *j)
{
	bool probe = j == r->probe;

	for (unsigned i = 0; i < ENTRA_MAX_WORKERS; i++)
		if (r->busy[i] == j)
			r->busy[i] = NULL;
	r->in_flight--;
	r->requests += j->attempts;
	r->retries += j->retries;
	if (probe)
		r->probe = NULL;
	if (j->top != NULL && j->denied && !r->stopping) {
		hold_denied(r, j, probe);
		return;
	}
	if (probe && j->top != NULL && r->quarantined) {
		/* the refused operation got through: Graph takes us again */
		r->quarantined = false;
		r->q_detail[0] = '\0';
		r->q_since_ms = r->q_next_ms = r->q_checked_ms = 0;
		uv_timer_stop(&r->probe_timer);
	} else if (probe && r->quarantined && !uv_is_active((uv_handle_t *)&r->probe_timer)) {
		arm_probe(r); /* the probe was cancelled: another one later */
	}
	if (j->top != NULL)
		complete(r, j, 0);
	job_free(j);
}

static void on_wake(uv_async_t *h)
{
	struct entra_run *r = h->data;
	struct entra_job *list, *rev = NULL;
	unsigned threads;

	pthread_mutex_lock(&r->mu);
	list = r->finished;
	r->finished = NULL;
	threads = r->threads;
	pthread_mutex_unlock(&r->mu);
	while (list != NULL) { /* back to completion order */
		struct entra_job *next = list->next;
		list->next = rev;
		rev = list;
		list = next;
	}
	while (rev != NULL) {
		struct entra_job *next = rev->next;
		after_work(r, rev);
		rev = next;
	}
	if (r->stopping) {
		if (r->in_flight == 0 && threads == 0)
			finish_stop(r);
		return;
	}
	pump(r);
}

static void pump(struct entra_run *r)
{
	while (r->head != NULL && r->in_flight < r->cfg->max_in_flight) {
		struct entra_job *j = r->head;
		unsigned slot = 0;

		if (r->quarantined) {
			/* held: one operation goes, as the probe, when its time is due */
			if (!r->probe_due || r->probe != NULL)
				break;
			r->probe_due = false;
			r->probe = j;
		}

		r->head = j->next;
		if (r->head == NULL)
			r->tail = NULL;
		j->next = NULL;
		while (r->busy[slot] != NULL)
			slot++;
		assert(slot < ENTRA_MAX_WORKERS); /* in_flight < max_in_flight <= ENTRA_MAX_WORKERS */
		r->busy[slot] = j;
		r->in_flight++;
		memcpy(j->fence_node, r->fence_node, sizeof j->fence_node);
		memcpy(j->fence_term, r->fence_term, sizeof j->fence_term);
		memcpy(j->cluster, r->cluster, sizeof j->cluster);
		pthread_mutex_lock(&r->mu);
		if (r->work_tail)
			r->work_tail->next = j;
		else
			r->work_head = j;
		r->work_tail = j;
		pthread_cond_signal(&r->cv);
		pthread_mutex_unlock(&r->mu);
	}
}

static int e_start(struct target *t, uv_loop_t *loop, struct target_run **out, char *errmsg, size_t errlen)
{
	struct entra_target *et = t->impl;
	struct entra_run *r;

	if (et->cfg.auth == NULL) {
		snprintf(errmsg, errlen, "entra target %s: target.auth (OAuth2 client credentials) is required",
			 et->cfg.url);
		return -EINVAL;
	}
	if (et->cfg.anchor_property == NULL) {
		snprintf(errmsg, errlen,
			 "entra target %s: target.auth.client_id is not an application (client) id of 32 hex "
			 "digits, so the anchor property extension_{id}_canopyAnchor cannot be named",
			 et->cfg.url);
		return -EINVAL;
	}
	if (strncasecmp(et->cfg.url, "http://", 7) != 0 && strncasecmp(et->cfg.url, "https://", 8) != 0) {
		snprintf(errmsg, errlen, "entra target: url %s is not http:// or https://", et->cfg.url);
		return -EINVAL;
	}
	r = xcalloc(1, sizeof *r);
	r->loop = loop;
	r->cfg = &et->cfg;
	snprintf(r->fence_node, sizeof r->fence_node, "0");
	snprintf(r->fence_term, sizeof r->fence_term, "0");
	pthread_mutex_init(&r->mu, NULL);
	pthread_cond_init(&r->cv, NULL);
	pthread_mutex_init(&r->budget.mu, NULL);
	entra__budget_init(&r->budget, et->cfg.max_requests_per_s);
	pthread_mutex_init(&r->batcher.mu, NULL);
	pthread_cond_init(&r->batcher.cv, NULL);
	char why[256];
	/* keep-alive: a connection for each thread and two spare */
	int rc = http_multi_new(loop, et->cfg.max_in_flight + 2, &r->http, why, sizeof why);
	if (rc != 0) {
		snprintf(errmsg, errlen, "entra target %s: %s", et->cfg.url, why);
		goto err_after_alloc;
	}
	rc = uv_async_init(loop, &r->wake, on_wake);
	if (rc != 0) {
		snprintf(errmsg, errlen, "entra target %s: %s", et->cfg.url, uv_strerror(rc));
		goto err_after_http;
	}
	r->wake.data = r;
	uv_timer_init(loop, &r->probe_timer);
	r->probe_timer.data = r;
	for (unsigned i = 0; i < et->cfg.max_in_flight; i++) {
		pthread_attr_t attr;
		pthread_t th;
		pthread_attr_init(&attr);
		pthread_attr_setdetachstate(&attr, PTHREAD_CREATE_DETACHED);
		pthread_mutex_lock(&r->mu);
		rc = pthread_create(&th, &attr, thread_main, r);
		if (rc == 0)
			r->threads++;
		pthread_mutex_unlock(&r->mu);
		pthread_attr_destroy(&attr);
		if (rc != 0) {
			snprintf(errmsg, errlen, "entra target %s: cannot start a thread: %s", et->cfg.url,
				 strerror(rc));
			rc = -rc;
			goto err_after_threads;
		}
	}
	*out = (struct target_run *)r;
	return 0;

err_after_threads:
	/* the threads started exit at once; the loop frees r when they have */
	r->stopping = true;
	pthread_mutex_lock(&r->mu);
	r->quit = true;
	pthread_cond_broadcast(&r->cv);
	pthread_mutex_unlock(&r->mu);
	uv_async_send(&r->wake);
	return rc;
err_after_http:
	http_multi_close(r->http, NULL, NULL); /* frees itself from the loop */
err_after_alloc:
	pthread_cond_destroy(&r->batcher.cv);
	pthread_mutex_destroy(&r->batcher.mu);
	pthread_mutex_destroy(&r->budget.mu);
	pthread_cond_destroy(&r->cv);
	pthread_mutex_destroy(&r->mu);
	free(r);
	return rc;
}

static void e_set_fence(struct target_run *run, uint64_t node_id, uint64_t term, const char *cluster_id)
{
	struct entra_run *r = run_of(run);

	snprintf(r->fence_node, sizeof r->fence_node, "%llu", (unsigned long long)node_id);
	snprintf(r->fence_term, sizeof r->fence_term, "%llu", (unsigned long long)term);
	snprintf(r->cluster, sizeof r->cluster, "%s", cluster_id != NULL ? cluster_id : "");
}

static int e_submit(struct target_run *run, struct target_op *op, target_done_cb cb)
{
	struct entra_run *r = run_of(run);
	struct entra_job *j;

	if (r->stopping)
		return -ESHUTDOWN;
	if (op->type != OBJECT_USER && op->type != OBJECT_GROUP)
		return -EINVAL;
	switch (op->action) {
	case TARGET_UPSERT:
		if (!json_is_object(op->attrs) || op->anchor == NULL)
			return -EINVAL;
		break;
	case TARGET_DISABLE:
	case TARGET_DELETE:
		if (op->target_id == NULL && op->anchor == NULL)
			return -EINVAL;
		break;
	case TARGET_MEMBERS:
		if (op->target_id == NULL || op->type != OBJECT_GROUP)
			return -EINVAL;
		for (size_t i = 0; i < op->n_add; i++)
			if (op->add[i] == NULL)
				return -EINVAL;
		for (size_t i = 0; i < op->n_remove; i++)
			if (op->remove[i] == NULL)
				return -EINVAL;
		break;
	case TARGET_MANAGER:
		if (op->target_id == NULL)
			return -EINVAL;
		break;
	case TARGET_TAKEN:
		if (op->attr == NULL || op->attr[0] == '\0' || op->value == NULL)
			return -EINVAL;
		break;
	default:
		return -EINVAL;
	}
	op->status = 0;
	op->permanent = op->created = op->matched = op->values_refused = op->taken = false;
	op->result_id[0] = op->error[0] = '\0';
	op->http_status = 0;
	op->attempts = 0;
	op->duration_ms = 0;
	op->n_add_done = op->n_remove_done = 0;

	j = xcalloc(1, sizeof *j);
	j->run = r;
	j->cfg = r->cfg;
	j->hold_until = &r->hold_until;
	j->budget = &r->budget;
	j->batcher = &r->batcher;
	j->http = r->http;
	j->top = op;
	j->cb = cb;
	j->action = op->action;
	j->type = op->type;
	j->anchor = op->anchor ? xstrdup(op->anchor) : NULL;
	j->target_id = op->target_id ? xstrdup(op->target_id) : NULL;
	/* a copy: the engine's resource is shared, and the worker runs off the loop */
	j->attrs = op->attrs ? xcheck(json_deep_copy(op->attrs)) : NULL;
	j->add = copy_ids(op->add, op->n_add);
	j->n_add = op->n_add;
	j->remove = copy_ids(op->remove, op->n_remove);
	j->n_remove = op->n_remove;
	j->verify = op->verify;
	j->exact = op->exact;
	j->attr = op->attr ? xstrdup(op->attr) : NULL;
	j->value = op->value ? xstrdup(op->value) : NULL;
	if (r->tail)
		r->tail->next = j;
	else
		r->head = j;
	r->tail = j;
	pump(r);
	return 0;
}

static void e_cancel_all(struct target_run *run)
{
	struct entra_run *r = run_of(run);
	struct entra_job *queued = r->head, *busy[ENTRA_MAX_WORKERS];
	unsigned n_busy = 0;

	/* Detach first: what the callbacks submit is not cancelled. */
	r->head = r->tail = NULL;
	for (unsigned i = 0; i < ENTRA_MAX_WORKERS; i++) {
		struct entra_job *j = r->busy[i];
		if (j != NULL && j->top != NULL) {
			__atomic_store_n(&j->cancelled, 1, __ATOMIC_RELEASE);
			busy[n_busy++] = j;
		}
	}
	for (unsigned i = 0; i < n_busy; i++)
		complete(r, busy[i], -ECANCELED); /* the worker's result is dropped */
	while (queued != NULL) {
		struct entra_job *next = queued->next;
		complete(r, queued, -ECANCELED);
		job_free(queued);
		queued = next;
	}
}

static void e_stats(struct target_run *run, struct target_stats *out)
{
	struct entra_run *r = run_of(run);
	unsigned queued = 0;

	memset(out, 0, sizeof *out);
	for (struct entra_job *j = r->head; j != NULL; j = j->next)
		queued++;
	out->requests = r->requests;
	out->retries = r->retries;
	out->failures = r->failures;
	out->in_flight = r->in_flight;
	out->queued = queued;
	if (r->quarantined) {
		out->quarantined = true;
		out->problem = TARGET_UNAUTHORIZED;
		snprintf(out->quarantine_reason, sizeof out->quarantine_reason, "unauthorized");
		snprintf(out->quarantine_detail, sizeof out->quarantine_detail, "%s", r->q_detail);
		out->next_retry_at_ms = r->q_next_ms;
		out->checked_at_ms = r->q_checked_ms;
	}
	if (r->fail_at_ms != 0) {
		snprintf(out->last_fail_method, sizeof out->last_fail_method, "%s", r->fail_method);
		snprintf(out->last_fail_path, sizeof out->last_fail_path, "%s", r->fail_path);
		out->last_fail_status = r->fail_status;
		out->last_fail_at_ms = r->fail_at_ms;
	}
	out->caps.known = true;
	out->caps.filter = true;
	out->caps.patch = true;
	out->caps.max_operations = ENTRA_BIND_MAX;
}

static void on_wake_closed(uv_handle_t *h)
{
	struct entra_run *r = h->data;
	void (*done)(void *) = r->done;
	void *data = r->done_data;

	pthread_cond_destroy(&r->batcher.cv);
	pthread_mutex_destroy(&r->batcher.mu);
	pthread_mutex_destroy(&r->budget.mu);
	pthread_cond_destroy(&r->cv);
	pthread_mutex_destroy(&r->mu);
	free(r);
	if (done != NULL)
		done(data);
}

static void on_timer_closed(uv_handle_t *h)
{
	struct entra_run *r = h->data;

	uv_close((uv_handle_t *)&r->wake, on_wake_closed);
}

static void on_http_closed(void *data)
{
	struct entra_run *r = data;

	uv_close((uv_handle_t *)&r->probe_timer, on_timer_closed);
}

/* Every thread has exited and every job is back: release (loop thread). */
static void finish_stop(struct entra_run *r)
{
	/* no thread is left to call into the engine */
	http_multi_close(r->http, on_http_closed, r);
}

static bool e_retry_now(struct target_run *run)
{
	struct entra_run *r = run_of(run);

	if (!r->quarantined || r->stopping)
		return false;
	if (r->probe == NULL) {
		uv_timer_stop(&r->probe_timer);
		r->probe_ms = PROBE_MIN_MS;
		on_probe_timer(&r->probe_timer);
	}
	return true;
}

static void e_stop(struct target_run *run, void (*done)(void *data), void *data)
{
	struct entra_run *r = run_of(run);

	e_cancel_all(run);
	r->stopping = true;
	r->done = done;
	r->done_data = data;
	/* The threads finish what they hold (its result is dropped) and exit;
	 * on_wake ends the stop once all are gone, never from inside this call.
	 * Their requests on the wire are cancelled: no thread waits out a
	 * timeout for an answer nobody reads. */
	http_multi_cancel_all(r->http);
	pthread_mutex_lock(&r->mu);
	r->quit = true;
	pthread_cond_broadcast(&r->cv);
	pthread_mutex_unlock(&r->mu);
	uv_async_send(&r->wake);
}

static void e_close(struct target *t)
{
	struct entra_target *et = t->impl;

	free(et->cfg.url);
	free(et->cfg.anchor_property);
	for (size_t i = 0; i < et->cfg.n_user_attrs; i++)
		free(et->cfg.user_attrs[i]);
	for (size_t i = 0; i < et->cfg.n_group_attrs; i++)
		free(et->cfg.group_attrs[i]);
	free(et->cfg.user_attrs);
	free(et->cfg.group_attrs);
	free(et);
}

struct target *entra_target_new(const struct entra_config *cfg)
{
	struct entra_target *et = xcalloc(1, sizeof *et);
	char prop[128];
	size_t n;

	et->cfg.url = xstrdup(cfg->url != NULL ? cfg->url : "");
	n = strlen(et->cfg.url);
	while (n > 0 && et->cfg.url[n - 1] == '/')
		et->cfg.url[--n] = '\0';
	et->cfg.auth = cfg->auth;
	et->cfg.tls = cfg->tls;
	et->cfg.user_attrs = copy_ids(cfg->user_attrs, cfg->n_user_attrs);
	et->cfg.n_user_attrs = cfg->n_user_attrs;
	et->cfg.group_attrs = copy_ids(cfg->group_attrs, cfg->n_group_attrs);
	et->cfg.n_group_attrs = cfg->n_group_attrs;
	if (cfg->anchor_property != NULL && cfg->anchor_property[0])
		et->cfg.anchor_property = xstrdup(cfg->anchor_property);
	else if (entra_anchor_property(cfg->client_id, prop, sizeof prop) == 0)
		et->cfg.anchor_property = xstrdup(prop);
	/* else NULL: start() says the client id is no application id */
	et->cfg.max_in_flight = cfg->max_in_flight ? cfg->max_in_flight : 16;
	if (et->cfg.max_in_flight > ENTRA_MAX_WORKERS)
		et->cfg.max_in_flight = ENTRA_MAX_WORKERS;
	et->cfg.max_attempts = cfg->max_attempts ? cfg->max_attempts : 6;
	et->cfg.backoff_min_ms = cfg->backoff_min_ms ? cfg->backoff_min_ms : 200;
	et->cfg.backoff_max_ms = cfg->backoff_max_ms ? cfg->backoff_max_ms : 30000;
	et->cfg.timeout_ms = cfg->timeout_ms ? cfg->timeout_ms : 30000;
	et->cfg.max_requests_per_s = cfg->max_requests_per_s > 0 ? cfg->max_requests_per_s : ENTRA_DEFAULT_RPS;
	et->base.impl = et;
	et->base.name = "entra";
	et->base.request_timeout_ms = et->cfg.timeout_ms;
	et->base.checks_taken = true; /* TARGET_TAKEN: a filtered GET (entra_graph.c) */
	et->base.start = e_start;
	et->base.set_fence = e_set_fence;
	et->base.submit = e_submit;
	et->base.cancel_all = e_cancel_all;
	et->base.stats = e_stats;
	et->base.retry_now = e_retry_now;
	et->base.stop = e_stop;
	et->base.close = e_close;
	return &et->base;
}
