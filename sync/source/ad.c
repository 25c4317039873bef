/*
 * sync/source/ad.c -- Active Directory source: the loop side and the source
 * port (ad.h is the contract, ad_internal.h says how the files divide the
 * work). Events reach the loop thread through a bounded ring and a uv_async;
 * when the ring is full the worker waits, so a slow target slows the reader.
 */
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "sync/source/ad_internal.h"

int ad__fail(char *errmsg, size_t errlen, int rc, const char *fmt, ...)
{
	va_list ap;

	if (errmsg != NULL && errlen > 0) {
		va_start(ap, fmt);
		vsnprintf(errmsg, errlen, fmt, ap);
		va_end(ap);
	}
	return rc;
}

bool ad__is_stopping(struct ad_source *s)
{
	bool v;

	pthread_mutex_lock(&s->lock);
	v = s->stopping;
	pthread_mutex_unlock(&s->lock);
	return v;
}

int ad__push(struct ad_source *s, struct source_event *ev)
{
	pthread_mutex_lock(&s->lock);
	while (source_ring_full(&s->ring) && !s->stopping)
		pthread_cond_wait(&s->not_full, &s->lock);
	if (s->stopping) {
		pthread_mutex_unlock(&s->lock);
		source_event_free(ev);
		return -ECANCELED;
	}
	source_ring_put(&s->ring, ev);
	pthread_mutex_unlock(&s->lock);
	uv_async_send(&s->async);
	return 0;
}

struct source_event *ad__ev_new(enum source_event_kind kind, enum object_type type)
{
	struct source_event *ev = xcalloc(1, sizeof *ev);

	ev->kind = kind;
	ev->type = type;
	return ev;
}

int ad__notice(struct ad_source *s, bool warning, const char *fmt, ...)
{
	struct source_event *ev = ad__ev_new(SOURCE_NOTICE, OBJECT_UNKNOWN);
	char buf[1024];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(buf, sizeof buf, fmt, ap);
	va_end(ap);
	ev->message = xstrdup(buf);
	ev->warning = warning;
	return ad__push(s, ev);
}

uint64_t ad__now_ms(void)
{
	struct timespec t;

	clock_gettime(CLOCK_MONOTONIC, &t);
	return (uint64_t)t.tv_sec * 1000 + (uint64_t)t.tv_nsec / 1000000;
}

static void source_release(struct ad_source *s)
{
	for (size_t i = 0; i < s->n_urls; i++)
		free(s->urls[i]);
	free(s->urls);
	free(s->bind_dn);
	if (s->password != NULL)
		explicit_bzero(s->password, strlen(s->password));
	free(s->password);
	free(s->password_file);
	free(s->user_base);
	free(s->group_base);
	ad_filter_free(s->user_filter);
	ad_filter_free(s->group_filter);
	free(s->tls_ca);
	for (size_t i = 0; s->attrs != NULL && s->attrs[i] != NULL; i++)
		free(s->attrs[i]);
	free(s->attrs);
	free(s->nc_root);
	free(s->cookie.bv_val);
	ad__cache_clear(&s->cache);
	source_ring_free(&s->ring);
}

static void on_closed(uv_handle_t *h)
{
	struct ad_source *s = h->data;
	void (*done)(void *) = s->done;
	void *data = s->done_data;

	source_release(s);
	close(s->wake_fd);
	pthread_cond_destroy(&s->not_full);
	pthread_mutex_destroy(&s->lock);
	free(s);
	if (done != NULL)
		done(data);
}

static void on_async(uv_async_t *a)
{
	struct ad_source *s = a->data;

	for (size_t n = 0; n < AD_DELIVER_BATCH; n++) {
		struct source_event *ev = NULL;
		bool stopping, exited;

		pthread_mutex_lock(&s->lock);
		stopping = s->stopping;
		exited = s->exited;
		if (!stopping && !s->paused && (ev = source_ring_take(&s->ring)) != NULL)
			pthread_cond_signal(&s->not_full);
		pthread_mutex_unlock(&s->lock);
		if (stopping) {
			if (exited && !s->closing) {
				s->closing = true;
				pthread_join(s->thread, NULL);
				uv_close((uv_handle_t *)&s->async, on_closed);
			}
			return;
		}
		if (ev == NULL)
			return;
		if (ev->kind == SOURCE_STATUS) {
			s->status.reported = true;
			s->status.connected = ev->connected;
			s->status.problem = ev->problem;
			snprintf(s->status.message, sizeof s->status.message, "%s", ev->message ? ev->message : "");
		}
		s->cb(s->data, ev); /* may stop or pause the run */
	}
	uv_async_send(&s->async);
}

/* ---- the port ---------------------------------------------------------------------- */

static struct ad_source *run_of(struct source_run *run)
{
	return (struct ad_source *)run;
}

static void p_stop(struct source_run *run, void (*done)(void *data), void *data)
{
	struct ad_source *s = run_of(run);

	pthread_mutex_lock(&s->lock);
	s->stopping = true;
	s->done = done;
	s->done_data = data;
	/* break a worker blocked in ldap_result: the socket reads EOF */
	for (int i = 0; i < 2; i++)
		if (s->fds[i] >= 0)
			shutdown(s->fds[i], SHUT_RDWR);
	source_ring_clear(&s->ring);
	pthread_cond_broadcast(&s->not_full);
	pthread_mutex_unlock(&s->lock);
	(void)eventfd_write(s->wake_fd, 1);
}

/* DirSync cannot refresh one type alone: a full answer has one cookie for
 * both. So both types are read again, each as a refresh with present_phase;
 * unchanged objects cost the engine no target request. */
static void p_refresh(struct source_run *run, enum object_type type)
{
	struct ad_source *s = run_of(run);

	(void)type;
	pthread_mutex_lock(&s->lock);
	s->refresh_req = true;
	pthread_mutex_unlock(&s->lock);
	(void)eventfd_write(s->wake_fd, 1);
}

static void p_pause(struct source_run *run)
{
	struct ad_source *s = run_of(run);

	pthread_mutex_lock(&s->lock);
	s->paused = true;
	pthread_mutex_unlock(&s->lock);
}

static void p_resume(struct source_run *run)
{
	struct ad_source *s = run_of(run);

	pthread_mutex_lock(&s->lock);
	s->paused = false;
	pthread_mutex_unlock(&s->lock);
	uv_async_send(&s->async);
}

static void p_status(struct source_run *run, struct source_status *out)
{
	struct ad_source *s = run_of(run);

	*out = s->status;
	pthread_mutex_lock(&s->lock);
	out->queue_peak = s->ring.peak;
	pthread_mutex_unlock(&s->lock);
}

static void attr_push(char ***v, size_t *n, const char *name)
{
	for (size_t i = 0; i < *n; i++)
		if (strcasecmp((*v)[i], name) == 0)
			return;
	*v = xrealloc(*v, (*n + 2) * sizeof **v);
	(*v)[(*n)++] = xstrdup(name);
	(*v)[*n] = NULL;
}

struct attr_acc {
	char **v;
	size_t n;
};

static void filter_attr(void *ctx, const char *name)
{
	struct attr_acc *a = ctx;
	attr_push(&a->v, &a->n, name);
}

/* What DirSync must return: the engine's attributes, the filters', and what
 * the source itself reads. `name` and isDeleted make moves and deletions
 * visible at all (docs/active-directory.md, "What comes back"). */
static char **request_attrs(const struct ad_source *s, const char *const *attrs, size_t n_attrs)
{
	static const char *const own[] = {"objectGUID", "mS-DS-ConsistencyGuid", "objectClass", "name",
					   "isDeleted", "userAccountControl", "member"};
	struct attr_acc a = {NULL, 0};

	for (size_t i = 0; i < sizeof own / sizeof own[0]; i++)
		attr_push(&a.v, &a.n, own[i]);
	if (attrs == NULL)
		attr_push(&a.v, &a.n, "*");
	for (size_t i = 0; attrs != NULL && i < n_attrs; i++)
		attr_push(&a.v, &a.n, attrs[i]);
	if (s->user_filter)
		ad_filter_attributes(s->user_filter, filter_attr, &a);
	if (s->group_filter)
		ad_filter_attributes(s->group_filter, filter_attr, &a);
	return a.v;
}

static int config_copy(struct ad_source *s, const struct ad_source_config *cfg, char *errmsg, size_t errlen)
{
	char why[256];
	int rc;

	if (cfg->urls == NULL || cfg->n_urls == 0)
		return ad__fail(errmsg, errlen, -EINVAL, "source: no LDAP URL configured");
	for (size_t i = 0; i < cfg->n_urls; i++)
		if (cfg->urls[i] == NULL || !ldap_is_ldap_url(cfg->urls[i]))
			return ad__fail(errmsg, errlen, -EINVAL, "source.url: \"%s\" is not an LDAP URL",
					cfg->urls[i] ? cfg->urls[i] : "(null)");
	if (cfg->user_base == NULL || cfg->user_base[0] == '\0')
		return ad__fail(errmsg, errlen, -EINVAL, "source.users.base is empty");
	if (cfg->user_filter != NULL && cfg->user_filter[0] != '\0' &&
	    (rc = ad_filter_parse(cfg->user_filter, &s->user_filter, why, sizeof why)) != 0)
		return ad__fail(errmsg, errlen, rc, "source.users.filter %s: %s", cfg->user_filter, why);
	if (cfg->group_filter != NULL && cfg->group_filter[0] != '\0' &&
	    (rc = ad_filter_parse(cfg->group_filter, &s->group_filter, why, sizeof why)) != 0)
		return ad__fail(errmsg, errlen, rc, "source.groups.filter %s: %s", cfg->group_filter, why);
	s->urls = xcalloc(cfg->n_urls, sizeof *s->urls);
	s->n_urls = cfg->n_urls;
	for (size_t i = 0; i < cfg->n_urls; i++)
		s->urls[i] = xstrdup(cfg->urls[i]);
	s->bind_dn = cfg->bind_dn ? xstrdup(cfg->bind_dn) : NULL;
	s->password = cfg->password ? xstrdup(cfg->password) : NULL;
	s->password_file = cfg->password_file ? xstrdup(cfg->password_file) : NULL;
	s->user_base = ad__dn_norm(cfg->user_base);
	s->group_base = cfg->group_base && cfg->group_base[0] ? ad__dn_norm(cfg->group_base) : NULL;
	s->starttls = cfg->tls.starttls;
	s->tls_ca = cfg->tls.ca_file && cfg->tls.ca_file[0] ? xstrdup(cfg->tls.ca_file) : NULL;
	s->poll_ms = (cfg->poll_s ? cfg->poll_s : AD_POLL_DEFAULT_S) * 1000u;
	s->notify = !cfg->no_notify;
	s->reconcile_ms = cfg->reconcile_s * 1000u;
	s->queue_max = cfg->queue_max ? cfg->queue_max : AD_QUEUE_DEFAULT;
	s->backoff_min_ms = cfg->backoff_min_ms ? cfg->backoff_min_ms : AD_BACKOFF_MIN_DEFAULT;
	s->backoff_max_ms = cfg->backoff_max_ms ? cfg->backoff_max_ms : AD_BACKOFF_MAX_DEFAULT;
	if (s->backoff_max_ms < s->backoff_min_ms)
		s->backoff_max_ms = s->backoff_min_ms;
	return 0;
}

static int p_start(struct source *src, uv_loop_t *loop, const void *cursor, size_t cursor_len,
		   const char *const *attrs, size_t n_attrs, source_event_cb cb, void *data, struct source_run **out,
		   char *errmsg, size_t errlen)
{
	const struct ad_source_config *cfg = src->impl;
	struct ad_source *s = xcalloc(1, sizeof *s);
	void *cookie = NULL;
	size_t cookie_len = 0;
	int rc;

	*out = NULL;
	s->loop = loop;
	s->cb = cb;
	s->data = data;
	s->fds[0] = s->fds[1] = -1;
	s->notify_msgid = -1;
	ad__cache_init(&s->cache);
	rc = config_copy(s, cfg, errmsg, errlen);
	if (rc != 0)
		goto err_after_alloc;
	rc = ad_cursor_decode(cursor, cursor_len, &cookie, &cookie_len, errmsg, errlen);
	if (rc != 0)
		goto err_after_alloc;
	s->cookie.bv_val = cookie;
	s->cookie.bv_len = cookie_len;
	s->attrs = request_attrs(s, attrs, n_attrs);
	source_ring_init(&s->ring, s->queue_max);
	s->wake_fd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
	if (s->wake_fd < 0) {
		rc = ad__fail(errmsg, errlen, -errno, "source: eventfd: %s", strerror(errno));
		goto err_after_alloc;
	}
	rc = -pthread_mutex_init(&s->lock, NULL);
	if (rc != 0) {
		ad__fail(errmsg, errlen, rc, "source: mutex: %s", strerror(-rc));
		goto err_after_eventfd;
	}
	rc = -pthread_cond_init(&s->not_full, NULL);
	if (rc != 0) {
		ad__fail(errmsg, errlen, rc, "source: condvar: %s", strerror(-rc));
		goto err_after_mutex;
	}
	rc = uv_async_init(loop, &s->async, on_async);
	if (rc != 0) {
		ad__fail(errmsg, errlen, rc, "source: uv_async_init: %s", uv_strerror(rc));
		goto err_after_cond;
	}
	s->async.data = s;
	rc = ad__worker_spawn(s);
	if (rc != 0) {
		ad__fail(errmsg, errlen, rc, "source: worker thread: %s", strerror(-rc));
		goto err_after_async;
	}
	*out = (struct source_run *)s;
	return 0;

err_after_async:
	uv_close((uv_handle_t *)&s->async, on_closed); /* frees the rest; done is NULL */
	return rc;
err_after_cond:
	pthread_cond_destroy(&s->not_full);
err_after_mutex:
	pthread_mutex_destroy(&s->lock);
err_after_eventfd:
	close(s->wake_fd);
err_after_alloc:
	source_release(s);
	free(s);
	return rc;
}

static void p_close(struct source *src)
{
	free(src->impl);
	free(src);
}

struct source *ad_source_new(const struct ad_source_config *cfg)
{
	struct source *src = xcalloc(1, sizeof *src);
	struct ad_source_config *copy = xmalloc(sizeof *copy);

	*copy = *cfg;
	src->impl = copy;
	src->name = "ad";
	src->start = p_start;
	src->refresh = p_refresh;
	src->pause = p_pause;
	src->resume = p_resume;
	src->status = p_status;
	src->stop = p_stop;
	src->close = p_close;
	return src;
}
