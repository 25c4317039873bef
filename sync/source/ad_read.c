/*
 * sync/source/ad_read.c -- the AD source's on-demand reads (source.h:
 * read_entry and read_scope, for canopyctl provision and plan): plain LDAP
 * reads on a connection of their own, no DirSync, no cache. An entry is
 * turned into the event the DirSync path would send for it (ad_cache.c):
 * the anchor is mS-DS-ConsistencyGuid when set, else objectGUID; objectGUID
 * is also an attribute, as GUID text; a group's members are their DNs.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "sync/source/ad_internal.h"
#include "sync/source/ldap_read.h"

/* A source of our own, configured like the runs, connected to the first DC
 * that takes us. */
static int read_open(struct source *src, const char *const *attrs, size_t n_attrs, struct ad_source **out,
		     const char **url, char *errmsg, size_t errlen)
{
	const struct ad_source_config *cfg = src->impl;
	struct ad_source *s = xcalloc(1, sizeof *s);
	int rc;

	s->notify_msgid = -1;
	ad__cache_init(&s->cache);
	rc = ad__config_copy(s, cfg, errmsg, errlen);
	if (rc != 0)
		goto err_after_alloc;
	s->attrs = ad__request_attrs(s, attrs, n_attrs);
	rc = ldap_read_open(cfg->urls, cfg->n_urls, &s->conn, &s->ld, errmsg, errlen);
	if (rc != 0)
		goto err_after_config;
	*url = cfg->urls[0];
	*out = s;
	return 0;

err_after_config:
	source_worker_release(&s->w);
err_after_alloc:
	ad__source_release(s);
	free(s);
	return rc;
}

static void read_close(struct ad_source *s)
{
	if (s->ld != NULL)
		ldap_unbind_ext(s->ld, NULL, NULL);
	s->ld = NULL;
	source_worker_release(&s->w);
	ad__source_release(s);
	free(s);
}

static void attr_copy(struct object_attr *dst, const char *name, char *const *values, size_t n)
{
	dst->name = xstrdup(name);
	dst->values = xcalloc(n ? n : 1, sizeof *dst->values);
	for (size_t i = 0; i < n; i++)
		dst->values[i] = xstrdup(values[i]);
	dst->n_values = n;
}

/* The event of an entry (type: its kind, decided by the caller). */
static struct source_event *entry_event(const struct ad_entry *e, enum object_type type)
{
	struct source_event *ev = source_event_new(SOURCE_ENTRY, type);
	char *guid[1] = {(char *)e->guid};
	size_t k = 0;

	ev->anchor = xstrdup(e->cguid[0] ? e->cguid : e->guid);
	ev->dn = xstrdup(e->dn);
	ev->attrs = xcalloc(e->n_attrs + 2, sizeof *ev->attrs);
	for (size_t i = 0; i < e->n_attrs; i++)
		if (e->attrs[i].n_values > 0)
			attr_copy(&ev->attrs[k++], e->attrs[i].name, e->attrs[i].values, e->attrs[i].n_values);
	attr_copy(&ev->attrs[k++], "objectGUID", guid, 1);
	if (type == OBJECT_GROUP)
		attr_copy(&ev->attrs[k++], "member", e->member_set, e->n_set);
	ev->n_attrs = k;
	return ev;
}

/* In the scope of its kind: under the base, matching the filter (as
 * ad_cache.c decides it). `why` says which rule decided. */
static bool entry_in_scope(const struct ad_source *s, const struct ad_entry *e, enum object_type kind,
			   const struct ad_source_config *cfg, char *why, size_t len)
{
	const char *key = kind == OBJECT_GROUP ? "groups" : "users";
	const char *base = kind == OBJECT_GROUP ? s->group_base : s->user_base;
	const char *shown = kind == OBJECT_GROUP ? cfg->group_base : cfg->user_base;
	const struct ad_filter *f = kind == OBJECT_GROUP ? s->group_filter : s->user_filter;
	const char *ftext = kind == OBJECT_GROUP ? cfg->group_filter : cfg->user_filter;
	struct source_event *probe;
	bool match;
	char *norm;

	if (kind == OBJECT_UNKNOWN) {
		snprintf(why, len, "neither a user nor a group (objectClass; computers are not users)");
		return false;
	}
	if (e->deleted) {
		snprintf(why, len, "deleted (a tombstone)");
		return false;
	}
	if (base == NULL) {
		snprintf(why, len, "%s: not configured", key);
		return false;
	}
	norm = ad__dn_norm(e->dn);
	match = ad__dn_under(norm, base);
	free(norm);
	if (!match) {
		snprintf(why, len, "%s: not under %s.base %s", key, key, shown);
		return false;
	}
	/* the filter sees what the cache would hold: the event's attributes */
	probe = entry_event(e, kind);
	match = f == NULL || ad_filter_match(f, probe->attrs, probe->n_attrs);
	source_event_free(probe);
	snprintf(why, len, "%s: under %s.base %s and %s %s.filter %s", key, key, shown, match ? "matching" : "not matching",
		 key, ftext && *ftext ? ftext : "(none: every one)");
	return match;
}

static enum object_type entry_kind(const struct ad_entry *e)
{
	return ad__obj_kind(e->attrs, e->n_attrs);
}

int ad__read_entry(struct source *src, const char *dn, const char *const *attrs, size_t n_attrs,
		   struct source_event **out, char *rule, size_t rule_len, char *errmsg, size_t errlen)
{
	const struct ad_source_config *cfg = src->impl;
	struct ad_source *s = NULL;
	struct ad_entry *e = NULL;
	const char *url = NULL;
	enum object_type kind;
	int rc;

	*out = NULL;
	rule[0] = '\0';
	rc = read_open(src, attrs, n_attrs, &s, &url, errmsg, errlen);
	if (rc != 0)
		return rc;
	rc = ad__read_object(s, dn, &e, url, errmsg, errlen);
	if (rc == 0 && e == NULL) {
		snprintf(rule, rule_len, "the directory has no entry %s", dn);
	} else if (rc == 0) {
		kind = entry_kind(e);
		bool in = entry_in_scope(s, e, kind, cfg, rule, rule_len);
		*out = entry_event(e, in ? kind : OBJECT_UNKNOWN);
	}
	if (e != NULL) {
		ad__entry_free(e);
		free(e);
	}
	read_close(s);
	return rc;
}

int ad__read_scope(struct source *src, enum object_type type, const char *const *attrs, size_t n_attrs,
		   struct source_event ***out, size_t *n_out, char *errmsg, size_t errlen)
{
	const struct ad_source_config *cfg = src->impl;
	const char *base = type == OBJECT_GROUP ? cfg->group_base : cfg->user_base;
	struct ad_source *s = NULL;
	struct ad_entry *e = NULL;
	const char *url = NULL;
	size_t n = 0, cap = 0;
	char why[64];
	int rc;

	*out = NULL;
	*n_out = 0;
	if (base == NULL || base[0] == '\0')
		return 0;
	rc = read_open(src, attrs, n_attrs, &s, &url, errmsg, errlen);
	if (rc != 0)
		return rc;
	rc = ad__read_paged(s, base, &e, &n, SOURCE_READ_SCOPE_MAX, url, errmsg, errlen);
	for (size_t i = 0; i < n; i++) {
		if (rc == 0 && entry_kind(&e[i]) == type && entry_in_scope(s, &e[i], type, cfg, why, sizeof why)) {
			if (*n_out == cap) {
				cap = cap ? cap * 2 : 256;
				*out = xrealloc(*out, cap * sizeof **out);
			}
			(*out)[(*n_out)++] = entry_event(&e[i], type);
		}
		ad__entry_free(&e[i]);
	}
	free(e);
	read_close(s);
	if (rc != 0) {
		for (size_t i = 0; i < *n_out; i++)
			source_event_free((*out)[i]);
		free(*out);
		*out = NULL;
		*n_out = 0;
	}
	return rc;
}
