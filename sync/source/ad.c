/*
 * sync/source/ad.c -- Active Directory source: the loop side and the source
 * port (ad.h is the contract, ad_internal.h says how the files divide the
 * work). The worker thread, the delivery of events and the rest of the port
 * are source_worker.c's.
 */
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "sync/source/ad_internal.h"

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

void ad__source_release(struct ad_source *s)
{
	ldap_conn_config_free(&s->conn);
	free(s->user_base);
	free(s->group_base);
	ad_filter_free(s->user_filter);
	ad_filter_free(s->group_filter);
	for (size_t i = 0; s->attrs != NULL && s->attrs[i] != NULL; i++)
		free(s->attrs[i]);
	free(s->attrs);
	free(s->nc_root);
	free(s->cookie.bv_val);
	ad__cache_clear(&s->cache);
}

/* source_worker_ops.release: the worker has exited */
void ad__release(void *impl)
{
	struct ad_source *s = impl;

	ad__source_release(s);
	free(s);
}

/* ---- the port ---------------------------------------------------------------------- */

static struct ad_source *run_of(struct source_run *run)
{
	return (struct ad_source *)run;
}

/* DirSync cannot refresh one type alone: a full answer has one cookie for
 * both. So both types are read again, each as a refresh with present_phase;
 * unchanged objects cost the engine no target request. */
static void p_refresh(struct source_run *run, enum object_type type)
{
	struct ad_source *s = run_of(run);

	(void)type;
	source_worker_refresh(&s->w, 1);
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
char **ad__request_attrs(const struct ad_source *s, const char *const *attrs, size_t n_attrs)
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

int ad__config_copy(struct ad_source *s, const struct ad_source_config *cfg, char *errmsg, size_t errlen)
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
	ldap_conn_config_copy(&s->conn, cfg->bind_dn, cfg->password, cfg->password_file, &cfg->tls, AD_OP_TIMEOUT_S,
			      &cfg->sasl);
	s->user_base = ad__dn_norm(cfg->user_base);
	s->group_base = cfg->group_base && cfg->group_base[0] ? ad__dn_norm(cfg->group_base) : NULL;
	s->poll_ms = (cfg->poll_s ? cfg->poll_s : AD_POLL_DEFAULT_S) * 1000u;
	source_worker_init(&s->w, cfg->urls, cfg->n_urls, cfg->queue_max, cfg->backoff_min_ms, cfg->backoff_max_ms);
	s->notify = !cfg->no_notify;
	s->reconcile_ms = cfg->reconcile_s * 1000u;
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
	s->notify_msgid = -1;
	ad__cache_init(&s->cache);
	rc = ad__config_copy(s, cfg, errmsg, errlen);
	if (rc != 0)
		goto err_after_alloc;
	rc = ad_cursor_decode(cursor, cursor_len, &cookie, &cookie_len, errmsg, errlen);
	if (rc != 0)
		goto err_after_config;
	s->cookie.bv_val = cookie;
	s->cookie.bv_len = cookie_len;
	s->attrs = ad__request_attrs(s, attrs, n_attrs);
	rc = source_worker_start(&s->w, loop, &ad__worker_ops, s, cb, data, errmsg, errlen);
	if (rc != 0)
		return rc; /* released by source_worker_start */
	*out = (struct source_run *)s;
	return 0;

err_after_config:
	source_worker_release(&s->w);
err_after_alloc:
	ad__source_release(s);
	free(s);
	return rc;
}

static int p_describe_cursor(const struct source *src, const void *cursor, size_t cursor_len, char *out,
			     size_t outlen)
{
	(void)src;
	return ad_cursor_describe(cursor, cursor_len, out, outlen);
}

struct source *ad_source_new(const struct ad_source_config *cfg)
{
	struct source *src = xcalloc(1, sizeof *src);
	struct ad_source_config *copy = xmalloc(sizeof *copy);

	*copy = *cfg;
	source_worker_port(src, "ad", copy);
	src->member_links = true; /* members kept by objectGUID (ad_cache.c) */
	src->start = p_start;
	src->refresh = p_refresh;
	src->describe_cursor = p_describe_cursor;
	src->read_entry = ad__read_entry;
	src->read_scope = ad__read_scope;
	return src;
}
