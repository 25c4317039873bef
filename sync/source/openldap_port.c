/*
 * sync/source/openldap_port.c -- the OpenLDAP source behind the source port
 * (source.h): each run is one ldap_source (openldap.h); pause, resume,
 * status and stop are the shared worker's (source_worker.h).
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/xalloc.h"
#include "sync/source/ldap_read.h"
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

/* ---- reads outside a run (source.h: read_entry, read_scope) ------------------ */

/* The anchor is the entry's entryUUID, the same value RFC 4533 sends as
 * syncUUID (RFC 4530 §2: the UUID's string form, lower case as slapd writes
 * it), so an entry read here and one from the sync stream are one object. */
static struct source_event *make_entry(void *ctx, LDAP *ld, LDAPMessage *msg, enum object_type type)
{
	struct berval **uuid = ldap_get_values_len(ld, msg, "entryUUID");
	struct source_event *ev = NULL;
	char *dn;

	(void)ctx;
	if (uuid != NULL && uuid[0] != NULL && uuid[0]->bv_len == 36) {
		ev = source_event_new(SOURCE_ENTRY, type);
		ev->anchor = xstrndup(uuid[0]->bv_val, uuid[0]->bv_len);
		for (char *p = ev->anchor; *p; p++)
			if (*p >= 'A' && *p <= 'F')
				*p = (char)(*p - 'A' + 'a');
		if ((dn = ldap_get_dn(ld, msg)) != NULL) {
			ev->dn = xstrdup(dn);
			ldap_memfree(dn);
		}
		ldap_read_attrs(ld, msg, ev);
	}
	ldap_value_free_len(uuid);
	return ev;
}

static int read_open(const struct ldap_source_config *cfg, LDAP **ld, char *errmsg, size_t errlen)
{
	struct ldap_conn_config conn;
	int rv;

	ldap_conn_config_copy(&conn, cfg->bind_dn, cfg->password, cfg->password_file, &cfg->tls, OP_TIMEOUT_S,
			      &cfg->sasl);
	rv = ldap_read_open(cfg->urls, cfg->n_urls, &conn, ld, errmsg, errlen);
	ldap_conn_config_free(&conn);
	return rv;
}

/* Is `dn` in the scope of base + filter? 1 yes (*ev: the entry), 0 no (why
 * in `why`), or a negative errno. */
static int scope_test(LDAP *ld, const char *dn, const char *key, const char *base, const char *filter, char **attrs,
		      enum object_type type, struct source_event **ev, char *why, size_t why_len, char *errmsg,
		      size_t errlen)
{
	const char *f = filter && *filter ? filter : "(objectClass=*)";
	bool exists;
	int rc;

	if (base == NULL || base[0] == '\0') {
		snprintf(why, why_len, "%s: not configured", key);
		return 0;
	}
	if (!ldap_read_under(dn, base)) {
		snprintf(why, why_len, "%s: not under %s.base %s", key, key, base);
		return 0;
	}
	rc = ldap_read_one(ld, dn, f, attrs, type, make_entry, NULL, ev, &exists, errmsg, errlen);
	if (rc == 0)
		snprintf(why, why_len, "%s: under %s.base %s but not matching %s.filter %s", key, key, base, key, f);
	else if (rc == 1)
		snprintf(why, why_len, "%s: under %s.base %s and matching %s.filter %s", key, key, base, key, f);
	return rc;
}

static int p_read_entry(struct source *src, const char *dn, const char *const *attrs, size_t n_attrs,
			struct source_event **out, char *rule, size_t rule_len, char *errmsg, size_t errlen)
{
	const struct ldap_source_config *cfg = src->impl;
	char **al = ldap_read_attr_list(attrs, n_attrs, "entryUUID");
	char why_u[600], why_g[600];
	bool exists = false;
	LDAP *ld = NULL;
	int rc;

	*out = NULL;
	rule[0] = '\0';
	rc = read_open(cfg, &ld, errmsg, errlen);
	if (rc != 0)
		goto out;
	rc = ldap_read_one(ld, dn, NULL, al, OBJECT_UNKNOWN, make_entry, NULL, out, &exists, errmsg, errlen);
	if (rc <= 0) {
		if (rc == 0)
			snprintf(rule, rule_len, "the directory has no entry %s", dn);
		goto out;
	}
	struct source_event *typed = NULL;
	rc = scope_test(ld, dn, "users", cfg->user_base, cfg->user_filter, al, OBJECT_USER, &typed, why_u,
			sizeof why_u, errmsg, errlen);
	if (rc == 0)
		rc = scope_test(ld, dn, "groups", cfg->group_base, cfg->group_filter, al, OBJECT_GROUP, &typed,
				why_g, sizeof why_g, errmsg, errlen);
	if (rc < 0)
		goto out;
	if (typed != NULL) {
		source_event_free(*out);
		*out = typed;
		snprintf(rule, rule_len, "%s", typed->type == OBJECT_USER ? why_u : why_g);
	} else {
		snprintf(rule, rule_len, "%s; %s", why_u, why_g);
	}
	rc = 0;
out:
	if (rc < 0) {
		source_event_free(*out);
		*out = NULL;
	}
	if (ld != NULL)
		ldap_unbind_ext(ld, NULL, NULL);
	free(al);
	return rc;
}

static int p_read_scope(struct source *src, enum object_type type, const char *const *attrs, size_t n_attrs,
			struct source_event ***out, size_t *n_out, char *errmsg, size_t errlen)
{
	const struct ldap_source_config *cfg = src->impl;
	const char *base = type == OBJECT_GROUP ? cfg->group_base : cfg->user_base;
	const char *filter = type == OBJECT_GROUP ? cfg->group_filter : cfg->user_filter;
	char **al;
	LDAP *ld = NULL;
	int rc;

	*out = NULL;
	*n_out = 0;
	if (base == NULL || base[0] == '\0')
		return 0;
	rc = read_open(cfg, &ld, errmsg, errlen);
	if (rc != 0) {
		if (ld != NULL)
			ldap_unbind_ext(ld, NULL, NULL);
		return rc;
	}
	al = ldap_read_attr_list(attrs, n_attrs, "entryUUID");
	rc = ldap_read_scope(ld, base, filter, al, type, make_entry, NULL, out, n_out, errmsg, errlen);
	free(al);
	ldap_unbind_ext(ld, NULL, NULL);
	return rc;
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
	src->read_entry = p_read_entry;
	src->read_scope = p_read_scope;
	return src;
}
