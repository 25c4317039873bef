/*
 * sync/source/openldap_port.c -- the OpenLDAP source behind the source port
 * (source.h): each run is one ldap_source (openldap.h); pause, resume,
 * status and stop are the shared worker's (source_worker.h).
 */
#include <stdlib.h>

#include "common/xalloc.h"
#include "sync/source/openldap_internal.h"

static int p_start(struct source *src, uv_loop_t *loop, const void *cursor, size_t cursor_len,
		   const char *const *attrs, size_t n_attrs, source_event_cb cb, void *data, struct source_run **out,
		   char *errmsg, size_t errlen)
{
	struct ldap_source_config cfg = *(const struct ldap_source_config *)src->impl;
	struct ldap_source *ls = NULL;
	int rv;

	cfg.attrs = attrs;
	cfg.n_attrs = n_attrs;
	rv = ldap_source_start(&ls, loop, &cfg, cursor, cursor_len, cb, data, errmsg, errlen);
	*out = rv == 0 ? (struct source_run *)ls : NULL;
	return rv;
}

static void p_refresh(struct source_run *run, enum object_type type)
{
	ldap_source_refresh((struct ldap_source *)run, type);
}

static int p_describe_cursor(const struct source *src, const void *cursor, size_t cursor_len, char *out,
			     size_t outlen)
{
	(void)src;
	return openldap_cursor_describe(cursor, cursor_len, out, outlen);
}

struct source *openldap_source_new(const struct ldap_source_config *cfg)
{
	struct source *src = xcalloc(1, sizeof *src);
	struct ldap_source_config *copy = xmalloc(sizeof *copy);

	*copy = *cfg;
	source_worker_port(src, "openldap", copy);
	src->start = p_start;
	src->refresh = p_refresh;
	src->describe_cursor = p_describe_cursor;
	return src;
}
