/*
 * sync/source/openldap.c -- OpenLDAP source: the loop side (openldap.h is the
 * contract, openldap_internal.h says how the files divide the work).
 *
 * Events reach the loop thread through a bounded ring and a uv_async; when
 * the ring is full the worker waits, so a slow consumer slows the reader
 * instead of buffering the directory in memory.
 */
#include <errno.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <unistd.h>

#include "sync/source/openldap_internal.h"

int openldap__fail(char *errmsg, size_t errlen, int rc, const char *fmt, ...)
{
	va_list ap;

	if (errmsg != NULL && errlen > 0) {
		va_start(ap, fmt);
		vsnprintf(errmsg, errlen, fmt, ap);
		va_end(ap);
	}
	return rc;
}

static void source_release(struct ldap_source *s)
{
	for (size_t i = 0; i < s->n_sess; i++) {
		ldap_sync_destroy(&s->sess[i].ls, 0); /* base, filter, attrs, cookie, ld */
		openldap__bv_clear(&s->sess[i].committed);
	}
	for (size_t i = 0; s->urls != NULL && i < s->n_urls; i++)
		free(s->urls[i]);
	free(s->urls);
	free(s->bind_dn);
	if (s->password != NULL)
		explicit_bzero(s->password, strlen(s->password));
	free(s->password);
	free(s->password_file);
	free(s->tls_ca);
	source_ring_free(&s->ring);
}

static void on_closed(uv_handle_t *h)
{
	struct ldap_source *s = h->data;
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

static void finish(struct ldap_source *s)
{
	if (s->closing)
		return;
	s->closing = true;
	/* the worker has set `exited`; its last act is one uv_async_send, so
	 * the join is short and no send can reach the handle after close */
	pthread_join(s->thread, NULL);
	uv_close((uv_handle_t *)&s->async, on_closed);
}

static void on_async(uv_async_t *a)
{
	struct ldap_source *s = a->data;

	for (size_t n = 0; n < DELIVER_BATCH; n++) {
		struct source_event *ev = NULL;
		bool stopping, exited;

		pthread_mutex_lock(&s->lock);
		stopping = s->stopping;
		exited = s->exited;
		if (!stopping && !s->paused && (ev = source_ring_take(&s->ring)) != NULL)
			pthread_cond_signal(&s->not_full);
		pthread_mutex_unlock(&s->lock);
		if (stopping) {
			if (exited)
				finish(s);
			return;
		}
		if (ev == NULL)
			return;
		s->cb(s->data, ev); /* may call ldap_source_stop or _pause */
	}
	uv_async_send(&s->async); /* more next iteration */
}

void ldap_source_stop(struct ldap_source *s, void (*done)(void *data), void *data)
{
	pthread_mutex_lock(&s->lock);
	s->stopping = true;
	s->done = done;
	s->done_data = data;
	/* break a worker blocked in ldap_result (refresh, bind): the socket
	 * reads EOF, libldap fails the call, the worker sees `stopping` */
	for (size_t i = 0; i < s->n_sess; i++)
		if (s->sess[i].fd >= 0)
			shutdown(s->sess[i].fd, SHUT_RDWR);
	source_ring_clear(&s->ring);
	pthread_cond_broadcast(&s->not_full);
	pthread_mutex_unlock(&s->lock);
	(void)eventfd_write(s->wake_fd, 1);
}

void ldap_source_refresh(struct ldap_source *s, enum object_type type)
{
	pthread_mutex_lock(&s->lock);
	for (size_t i = 0; i < s->n_sess; i++)
		if (s->sess[i].type == type)
			s->refresh_req[i] = true;
	pthread_mutex_unlock(&s->lock);
	(void)eventfd_write(s->wake_fd, 1);
}

void ldap_source_pause(struct ldap_source *s)
{
	pthread_mutex_lock(&s->lock);
	s->paused = true;
	pthread_mutex_unlock(&s->lock);
}

void ldap_source_resume(struct ldap_source *s)
{
	pthread_mutex_lock(&s->lock);
	s->paused = false;
	pthread_mutex_unlock(&s->lock);
	uv_async_send(&s->async);
}

size_t ldap_source_queue_peak(struct ldap_source *s)
{
	size_t v;

	pthread_mutex_lock(&s->lock);
	v = s->ring.peak;
	pthread_mutex_unlock(&s->lock);
	return v;
}

static int config_check(const struct ldap_source_config *cfg, char *errmsg, size_t errlen)
{
	if (cfg->urls == NULL || cfg->n_urls == 0)
		return openldap__fail(errmsg, errlen, -EINVAL, "source: no LDAP URL configured");
	for (size_t i = 0; i < cfg->n_urls; i++)
		if (cfg->urls[i] == NULL || !ldap_is_ldap_url(cfg->urls[i]))
			return openldap__fail(errmsg, errlen, -EINVAL, "source.url: \"%s\" is not an LDAP URL",
					      cfg->urls[i] ? cfg->urls[i] : "(null)");
	if (cfg->user_base == NULL || cfg->user_base[0] == '\0')
		return openldap__fail(errmsg, errlen, -EINVAL, "source.users.base is empty");
	if (cfg->n_attrs > 0 && cfg->attrs == NULL)
		return openldap__fail(errmsg, errlen, -EINVAL, "source: n_attrs without attrs");
	return 0;
}

/* The attribute list in libldap's allocator, as ldap_sync_destroy frees it. */
static char **attrs_copy(const struct ldap_source_config *cfg)
{
	static const char *const all[] = {"*"}; /* all user attributes */
	const char *const *src = cfg->attrs ? cfg->attrs : all;
	size_t n = cfg->attrs ? cfg->n_attrs : 1;
	char **a = xcheck(ber_memcalloc(n + 1, sizeof *a));

	for (size_t i = 0; i < n; i++)
		a[i] = xcheck(ber_strdup(src[i]));
	return a;
}

static void session_init(struct ldap_source *s, struct ldap_session *x, enum object_type type,
			 const char *base, const char *filter, const struct ldap_source_config *cfg)
{
	ldap_sync_initialize(&x->ls); /* scope subtree */
	x->src = s;
	x->type = type;
	x->key = type == OBJECT_USER ? "users" : "groups";
	x->fd = -1;
	x->ls.ls_base = xcheck(ber_strdup(base));
	x->ls.ls_filter = xcheck(ber_strdup(filter && *filter ? filter : "(objectClass=*)"));
	x->ls.ls_attrs = attrs_copy(cfg);
	x->ls.ls_sizelimit = LDAP_NO_LIMIT;
	x->ls.ls_timelimit = 0;
	x->ls.ls_timeout = -1; /* ldap_sync_poll blocks, but runs only on input */
	x->ls.ls_search_entry = openldap__on_entry;
	x->ls.ls_search_reference = openldap__on_reference;
	x->ls.ls_intermediate = openldap__on_intermediate;
	x->ls.ls_search_result = openldap__on_result;
	x->ls.ls_private = x;
	s->n_sess++;
}

static char *dup_or_null(const char *v)
{
	return v != NULL && v[0] != '\0' ? xstrdup(v) : NULL;
}

static void config_copy(struct ldap_source *s, const struct ldap_source_config *cfg)
{
	s->urls = xcalloc(cfg->n_urls, sizeof *s->urls);
	s->n_urls = cfg->n_urls;
	for (size_t i = 0; i < cfg->n_urls; i++)
		s->urls[i] = xstrdup(cfg->urls[i]);
	s->bind_dn = cfg->bind_dn ? xstrdup(cfg->bind_dn) : NULL;
	s->password = cfg->password ? xstrdup(cfg->password) : NULL;
	s->password_file = cfg->password_file ? xstrdup(cfg->password_file) : NULL;
	s->starttls = cfg->tls.starttls;
	s->tls_ca = dup_or_null(cfg->tls.ca_file);
	s->queue_max = cfg->queue_max ? cfg->queue_max : QUEUE_DEFAULT;
	s->backoff_min_ms = cfg->backoff_min_ms ? cfg->backoff_min_ms : BACKOFF_MIN_DEFAULT;
	s->backoff_max_ms = cfg->backoff_max_ms ? cfg->backoff_max_ms : BACKOFF_MAX_DEFAULT;
	if (s->backoff_max_ms < s->backoff_min_ms)
		s->backoff_max_ms = s->backoff_min_ms;
	source_ring_init(&s->ring, s->queue_max);
	session_init(s, &s->sess[0], OBJECT_USER, cfg->user_base, cfg->user_filter, cfg);
	if (cfg->group_base != NULL && cfg->group_base[0] != '\0')
		session_init(s, &s->sess[1], OBJECT_GROUP, cfg->group_base, cfg->group_filter, cfg);
}

int ldap_source_start(struct ldap_source **out, uv_loop_t *loop,
		      const struct ldap_source_config *cfg, const void *cursor, size_t cursor_len,
		      ldap_source_event_cb cb, void *data, char *errmsg, size_t errlen)
{
	struct ldap_source *s;
	int rc;

	if (out == NULL || loop == NULL || cfg == NULL || cb == NULL)
		return openldap__fail(errmsg, errlen, -EINVAL, "source: missing argument");
	rc = config_check(cfg, errmsg, errlen);
	if (rc != 0)
		return rc;
	s = xcalloc(1, sizeof *s);
	s->loop = loop;
	s->cb = cb;
	s->data = data;
	config_copy(s, cfg);
	rc = openldap__cursor_decode(s, cursor, cursor_len, errmsg, errlen);
	if (rc != 0)
		goto err_after_alloc;
	s->wake_fd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
	if (s->wake_fd < 0) {
		rc = openldap__fail(errmsg, errlen, -errno, "source: eventfd: %s", strerror(errno));
		goto err_after_alloc;
	}
	rc = -pthread_mutex_init(&s->lock, NULL);
	if (rc != 0) {
		openldap__fail(errmsg, errlen, rc, "source: mutex: %s", strerror(-rc));
		goto err_after_eventfd;
	}
	rc = -pthread_cond_init(&s->not_full, NULL);
	if (rc != 0) {
		openldap__fail(errmsg, errlen, rc, "source: condvar: %s", strerror(-rc));
		goto err_after_mutex;
	}
	rc = uv_async_init(loop, &s->async, on_async);
	if (rc != 0) {
		openldap__fail(errmsg, errlen, rc, "source: uv_async_init: %s", uv_strerror(rc));
		goto err_after_cond;
	}
	s->async.data = s;
	rc = openldap__worker_spawn(s);
	if (rc != 0) {
		openldap__fail(errmsg, errlen, rc, "source: worker thread: %s", strerror(-rc));
		goto err_after_async;
	}
	*out = s;
	return 0;

err_after_async:
	/* the handle is closed on the loop; on_closed frees the rest (done
	 * is NULL, so nothing is called back) */
	uv_close((uv_handle_t *)&s->async, on_closed);
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
