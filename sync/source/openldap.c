/*
 * sync/source/openldap.c -- OpenLDAP source: start, and the API of
 * openldap.h over the shared worker (openldap.h is the contract,
 * openldap_internal.h says how the files divide the work).
 *
 * Events reach the loop thread through a bounded ring and a uv_async
 * (source_worker.h); when the ring is full the worker waits, so a slow
 * consumer slows the reader instead of buffering the directory in memory.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "sync/source/openldap_internal.h"

static void source_release(struct ldap_source *s)
{
	for (size_t i = 0; i < s->n_sess; i++) {
		ldap_sync_destroy(&s->sess[i].ls, 0); /* base, filter, attrs, cookie, ld */
		openldap__bv_clear(&s->sess[i].committed);
	}
	ldap_conn_config_free(&s->conn);
}

void openldap__release(void *impl)
{
	struct ldap_source *s = impl;

	source_release(s);
	free(s);
}

void ldap_source_stop(struct ldap_source *s, void (*done)(void *data), void *data)
{
	source_worker_stop(&s->w, done, data);
}

void ldap_source_refresh(struct ldap_source *s, enum object_type type)
{
	unsigned bits = 0;

	for (size_t i = 0; i < s->n_sess; i++)
		if (s->sess[i].type == type)
			bits |= 1u << i;
	source_worker_refresh(&s->w, bits);
}

void ldap_source_pause(struct ldap_source *s)
{
	source_worker_pause(&s->w);
}

void ldap_source_resume(struct ldap_source *s)
{
	source_worker_resume(&s->w);
}

size_t ldap_source_queue_peak(struct ldap_source *s)
{
	return source_worker_queue_peak(&s->w);
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
	x->slot = (int)s->n_sess;
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

static void config_copy(struct ldap_source *s, const struct ldap_source_config *cfg)
{
	source_worker_init(&s->w, cfg->urls, cfg->n_urls, cfg->queue_max, cfg->backoff_min_ms, cfg->backoff_max_ms);
	ldap_conn_config_copy(&s->conn, cfg->bind_dn, cfg->password, cfg->password_file, &cfg->tls, OP_TIMEOUT_S,
			      &cfg->sasl);
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
	config_copy(s, cfg);
	rc = openldap__cursor_decode(s, cursor, cursor_len, errmsg, errlen);
	if (rc != 0)
		goto err_after_alloc;
	rc = source_worker_start(&s->w, loop, &openldap__worker_ops, s, cb, data, errmsg, errlen);
	if (rc != 0)
		return rc; /* released by source_worker_start */
	*out = s;
	return 0;

err_after_alloc:
	source_worker_release(&s->w);
	source_release(s);
	free(s);
	return rc;
}
