/*
 * sync/source/ad_cache.c -- the last known state of every user and group of
 * the domain, merged from DirSync answers, and the events it gives the engine
 * (worker thread).
 *
 * Why a cache: an incremental DirSync answer carries only the attributes
 * whose replication metadata changed (MS-ADTS 3.1.1.3.4.1.3;
 * docs/active-directory.md, "Incremental"), but the engine maps whole entries
 * and the scope filter needs attributes that did not change. So each answer
 * is merged here: a missing attribute is unchanged, one with no values is
 * removed, member;range=1-1 / ;range=0-0 add / remove one member.
 *
 * Members are kept by the member's objectGUID when the DN belongs to an
 * object of the cache, else by DN, so a renamed or moved member keeps its
 * place and is reported under its new DN.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "sync/source/ad_internal.h"

static void obj_free(void *v)
{
	struct ad_obj *o = v;

	for (size_t i = 0; i < o->n_attrs; i++) {
		for (size_t k = 0; k < o->attrs[i].n_values; k++)
			free(o->attrs[i].values[k]);
		free(o->attrs[i].values);
		free(o->attrs[i].name);
	}
	free(o->attrs);
	if (o->members_init)
		strmap_clear(&o->members);
	free(o->members.buckets);
	free(o->dn);
	free(o->dn_norm);
	free(o);
}

void ad__cache_init(struct ad_cache *c)
{
	memset(c, 0, sizeof *c);
	strmap_init(&c->by_guid, obj_free);
	strmap_init(&c->by_dn, NULL);
}

void ad__cache_clear(struct ad_cache *c)
{
	strmap_clear(&c->by_dn);
	strmap_clear(&c->by_guid);
	free(c->by_dn.buckets);
	free(c->by_guid.buckets);
	ad__cache_init(c);
}

static void xput(struct strmap *m, const char *k, void *v)
{
	if (strmap_put(m, k, v) != 0)
		xoom("strmap_put");
}

enum object_type ad__obj_kind(const struct object_attr *attrs, size_t n)
{
	bool user = false, group = false, computer = false;

	for (size_t i = 0; i < n; i++) {
		if (strcasecmp(attrs[i].name, "objectClass") != 0)
			continue;
		for (size_t k = 0; k < attrs[i].n_values; k++) {
			const char *v = attrs[i].values[k];
			user |= strcasecmp(v, "user") == 0;
			group |= strcasecmp(v, "group") == 0;
			/* computer is a subclass of user: machine accounts are
			 * not people (MS-ADSC computer class) */
			computer |= strcasecmp(v, "computer") == 0;
		}
	}
	return group ? OBJECT_GROUP : user && !computer ? OBJECT_USER : OBJECT_UNKNOWN;
}

bool ad__dn_under(const char *dn_norm, const char *base_norm)
{
	size_t d = strlen(dn_norm), b = strlen(base_norm);

	if (b == 0 || d < b)
		return false;
	return strcmp(dn_norm + d - b, base_norm) == 0 && (d == b || dn_norm[d - b - 1] == ',');
}

static bool in_scope(const struct ad_source *s, const struct ad_obj *o)
{
	const char *base = o->type == OBJECT_USER ? s->user_base : o->type == OBJECT_GROUP ? s->group_base : NULL;
	const struct ad_filter *f = o->type == OBJECT_USER ? s->user_filter : s->group_filter;

	if (o->deleted || base == NULL || o->dn_norm == NULL || !ad__dn_under(o->dn_norm, base))
		return false;
	return f == NULL || ad_filter_match(f, o->attrs, o->n_attrs);
}

static struct ad_obj *obj_get(struct ad_cache *c, const char *guid)
{
	struct ad_obj *o = strmap_get(&c->by_guid, guid);

	if (o != NULL)
		return o;
	o = xcalloc(1, sizeof *o);
	snprintf(o->guid, sizeof o->guid, "%s", guid);
	snprintf(o->anchor, sizeof o->anchor, "%s", guid);
	strmap_init(&o->members, free);
	o->members_init = true;
	xput(&c->by_guid, guid, o);
	return o;
}

static void obj_set_dn(struct ad_cache *c, struct ad_obj *o, const char *dn)
{
	if (o->dn_norm != NULL && strmap_get(&c->by_dn, o->dn_norm) == o)
		strmap_del(&c->by_dn, o->dn_norm);
	free(o->dn);
	free(o->dn_norm);
	o->dn = xstrdup(dn);
	o->dn_norm = ad__dn_norm(dn);
	xput(&c->by_dn, o->dn_norm, o);
}

/* Replace one attribute (no values: remove it). */
static void obj_set_attr(struct ad_obj *o, const char *name, char **values, size_t n)
{
	size_t i;

	for (i = 0; i < o->n_attrs; i++)
		if (strcasecmp(o->attrs[i].name, name) == 0)
			break;
	if (i < o->n_attrs) {
		for (size_t k = 0; k < o->attrs[i].n_values; k++)
			free(o->attrs[i].values[k]);
		free(o->attrs[i].values);
		free(o->attrs[i].name);
		o->attrs[i] = o->attrs[--o->n_attrs];
	}
	if (n == 0)
		return;
	o->attrs = xrealloc(o->attrs, (o->n_attrs + 1) * sizeof *o->attrs);
	struct object_attr *a = &o->attrs[o->n_attrs++];
	a->name = xstrdup(name);
	a->values = xcalloc(n, sizeof *a->values);
	for (size_t k = 0; k < n; k++)
		a->values[k] = xstrdup(values[k]);
	a->n_values = n;
}

/* The member key of a DN: "g:<guid>" when the DN is an object we know. */
static char *member_key(struct ad_cache *c, const char *dn)
{
	char *norm = ad__dn_norm(dn), *key;
	struct ad_obj *m = strmap_get(&c->by_dn, norm);

	if (m != NULL) {
		key = xmalloc(strlen(m->guid) + 3);
		sprintf(key, "g:%s", m->guid);
	} else {
		key = xmalloc(strlen(norm) + 3);
		sprintf(key, "d:%s", norm);
	}
	free(norm);
	return key;
}

static void member_add(struct ad_cache *c, struct ad_obj *g, const char *dn)
{
	char *k = member_key(c, dn);
	xput(&g->members, k, xstrdup(dn));
	free(k);
}

static void member_del(struct ad_cache *c, struct ad_obj *g, const char *dn)
{
	char *k = member_key(c, dn), *norm = ad__dn_norm(dn), *dk = xmalloc(strlen(norm) + 3);

	sprintf(dk, "d:%s", norm);
	strmap_del(&g->members, k);
	strmap_del(&g->members, dk); /* in case it was kept by DN before its object was known */
	free(k);
	free(norm);
	free(dk);
}

static void obj_merge(struct ad_cache *c, struct ad_obj *o, const struct ad_entry *e)
{
	char *gv[1] = {o->guid};

	for (size_t i = 0; i < e->n_attrs; i++)
		obj_set_attr(o, e->attrs[i].name, e->attrs[i].values, e->attrs[i].n_values);
	obj_set_attr(o, "objectGUID", gv, 1); /* as text, for mappings */
	if (e->member_full) {
		strmap_clear(&o->members);
		for (size_t i = 0; i < e->n_set; i++)
			member_add(c, o, e->member_set[i]);
	}
	for (size_t i = 0; i < e->n_del; i++)
		member_del(c, o, e->member_del[i]);
	for (size_t i = 0; i < e->n_add; i++)
		member_add(c, o, e->member_add[i]);
	o->type = ad__obj_kind(o->attrs, o->n_attrs);
}

struct dn_list {
	struct ad_cache *c;
	char **v;
	size_t n;
};

static int member_dn(void *ctx, const char *key, void *val)
{
	struct dn_list *l = ctx;
	const char *dn = val;

	if (key[0] == 'g') {
		struct ad_obj *m = strmap_get(&l->c->by_guid, key + 2);
		if (m == NULL || m->deleted || m->dn == NULL)
			return 0; /* gone: not a member any more */
		dn = m->dn;
	}
	l->v = xrealloc(l->v, (l->n + 1) * sizeof *l->v);
	l->v[l->n++] = xstrdup(dn);
	return 0;
}

static struct source_event *entry_event(struct ad_cache *c, const struct ad_obj *o)
{
	struct source_event *ev = ad__ev_new(SOURCE_ENTRY, o->type);
	size_t n = o->n_attrs;

	ev->anchor = xstrdup(o->anchor);
	ev->dn = xstrdup(o->dn);
	ev->attrs = xcalloc(n + 1, sizeof *ev->attrs);
	for (size_t i = 0; i < n; i++) {
		ev->attrs[i].name = xstrdup(o->attrs[i].name);
		ev->attrs[i].values = xcalloc(o->attrs[i].n_values, sizeof(char *));
		for (size_t k = 0; k < o->attrs[i].n_values; k++)
			ev->attrs[i].values[k] = xstrdup(o->attrs[i].values[k]);
		ev->attrs[i].n_values = o->attrs[i].n_values;
	}
	ev->n_attrs = n;
	if (o->type == OBJECT_GROUP) {
		struct dn_list l = {c, NULL, 0};
		strmap_foreach(&o->members, member_dn, &l);
		ev->attrs[n].name = xstrdup("member");
		ev->attrs[n].values = l.v ? l.v : xcalloc(1, sizeof(char *));
		ev->attrs[n].n_values = l.n;
		ev->n_attrs++;
	}
	return ev;
}

static struct source_event *delete_event(const struct ad_obj *o, enum object_type type)
{
	struct source_event *ev = ad__ev_new(SOURCE_DELETE, type);

	ev->anchor = xstrdup(o->anchor);
	ev->dn = o->dn ? xstrdup(o->dn) : NULL;
	return ev;
}

/* Events of a round wait here so the cursor can go on the last one. */
struct outbox {
	struct ad_source *s;
	struct source_event *held;
	int rc;
};

static void emit(struct outbox *b, struct source_event *ev)
{
	if (b->held != NULL && b->rc == 0)
		b->rc = ad__push(b->s, b->held);
	else if (b->held != NULL)
		source_event_free(b->held);
	b->held = ev;
}

static int flush(struct outbox *b, const struct berval *cookie, bool cookie_changed)
{
	if (b->held == NULL && cookie_changed)
		b->held = ad__ev_new(SOURCE_CURSOR, OBJECT_UNKNOWN);
	if (b->held != NULL && cookie_changed)
		ad_cursor_encode(cookie->bv_val, cookie->bv_len, &b->held->cursor, &b->held->cursor_len);
	emit(b, NULL);
	return b->rc;
}

struct scan {
	struct ad_source *s;
	struct outbox *b;
	enum object_type type;
	const char *drop;      /* member_scan: the key of a deleted object */
	const char *drop_dn;   /* ... and its DN key */
	bool found, all;
};

/* A full round: every object of `type` in scope. */
static int full_one(void *ctx, const char *key, void *val)
{
	struct scan *x = ctx;
	struct ad_obj *o = val;

	(void)key;
	if (o->type != x->type)
		return 0;
	o->in_scope = in_scope(x->s, o);
	if (o->in_scope && x->b != NULL)
		emit(x->b, entry_event(&x->s->cache, o));
	return 0;
}

/* A deleted object leaves every group: the DC drops the links without
 * reporting the groups (docs/active-directory.md, "A deleted user's group
 * memberships"), so the groups that had it are reported again here. */
static int member_scan(void *ctx, const char *key, void *val)
{
	struct scan *x = ctx;
	struct ad_obj *g = val;

	(void)key;
	if (g->type != OBJECT_GROUP || g->deleted)
		return 0;
	bool had = strmap_has(&g->members, x->drop) || (x->drop_dn && strmap_has(&g->members, x->drop_dn));
	if (had) {
		strmap_del(&g->members, x->drop);
		if (x->drop_dn)
			strmap_del(&g->members, x->drop_dn);
		x->found = true;
	}
	if ((had || x->all) && g->in_scope && g->round != x->s->cache.round) {
		g->round = x->s->cache.round; /* once per round */
		emit(x->b, entry_event(&x->s->cache, g));
	}
	return 0;
}

static void drop_member_everywhere(struct ad_source *s, struct outbox *b, struct ad_obj *o, bool *regroup_all)
{
	char key[48], *dk = NULL;
	struct scan x = {s, b, OBJECT_GROUP, key, NULL, false, false};

	snprintf(key, sizeof key, "g:%s", o->guid);
	if (o->dn_norm != NULL) {
		dk = xmalloc(strlen(o->dn_norm) + 3);
		sprintf(dk, "d:%s", o->dn_norm);
		x.drop_dn = dk;
	}
	strmap_foreach(&s->cache.by_guid, member_scan, &x);
	free(dk);
	/* Filled by a silent read on this leader: the DC had already dropped
	 * the links, so no cached group shows the member the engine may still
	 * have. Report every group once (unchanged ones cost no request). */
	if (!x.found && s->cache.warm)
		*regroup_all = true;
}

static int regroup_every(struct ad_source *s, struct outbox *b)
{
	struct scan x = {s, b, OBJECT_GROUP, "", NULL, false, true};

	strmap_foreach(&s->cache.by_guid, member_scan, &x);
	return 0;
}

/* The events of one incremental round for one type's touched objects. */
static void round_events(struct ad_source *s, struct outbox *b, struct ad_obj **t, size_t n, enum object_type type,
			 bool *regroup_all)
{
	for (size_t i = 0; i < n; i++) {
		struct ad_obj *o = t[i];
		bool now;

		if ((o->type == OBJECT_UNKNOWN ? OBJECT_USER : o->type) != type)
			continue;
		if (o->deleted) {
			if (o->type == OBJECT_UNKNOWN) { /* a tombstone we never saw alive */
				emit(b, delete_event(o, OBJECT_USER));
				emit(b, delete_event(o, OBJECT_GROUP));
			} else {
				emit(b, delete_event(o, o->type));
			}
			o->in_scope = false;
			drop_member_everywhere(s, b, o, regroup_all);
			continue;
		}
		if (o->type == OBJECT_UNKNOWN)
			continue;
		now = in_scope(s, o);
		/* out of scope: a SOURCE_DELETE even when we never reported it
		 * (a new leader does not know what the last one reported; the
		 * engine ignores anchors it never exported, source.h) */
		emit(b, now ? entry_event(&s->cache, o) : delete_event(o, o->type));
		o->in_scope = now;
	}
}

bool ad__obj_reported(const struct ad_obj *o)
{
	return o->in_scope && !o->deleted && (o->type == OBJECT_USER || o->type == OBJECT_GROUP);
}

int ad__cache_gone(struct ad_source *s, char *const *guids, size_t n)
{
	struct ad_cache *c = &s->cache;
	struct outbox b = {s, NULL, 0};
	bool regroup_all = false;
	int rc;

	c->round++;
	/* users before groups, as in a round: the groups reported again below
	 * no longer list them */
	for (int pass = 0; pass < 2; pass++)
		for (size_t i = 0; i < n; i++) {
			struct ad_obj *o = strmap_get(&c->by_guid, guids[i]);
			if (o == NULL || o->deleted || (o->type == OBJECT_GROUP) != (pass == 1))
				continue;
			emit(&b, delete_event(o, o->type));
			o->in_scope = false;
			o->deleted = true;
			drop_member_everywhere(s, &b, o, &regroup_all);
			if (o->dn_norm != NULL && strmap_get(&c->by_dn, o->dn_norm) == o)
				strmap_del(&c->by_dn, o->dn_norm);
		}
	c->round++;
	if (regroup_all)
		regroup_every(s, &b);
	rc = flush(&b, NULL, false);
	for (size_t i = 0; i < n; i++) {
		struct ad_obj *o = strmap_get(&c->by_guid, guids[i]);
		if (o != NULL && o->deleted)
			strmap_del(&c->by_guid, guids[i]);
	}
	if (b.held != NULL)
		source_event_free(b.held);
	return rc;
}

static bool has_attr(const struct ad_entry *e, const char *name)
{
	for (size_t i = 0; i < e->n_attrs; i++)
		if (strcasecmp(e->attrs[i].name, name) == 0)
			return true;
	return false;
}

static int remove_deleted(void *ctx, const char *key, void *val)
{
	struct ad_obj ***v = ctx;
	struct ad_obj *o = val;

	(void)key;
	if (o->deleted) {
		**v = o;
		(*v)++;
	}
	return 0;
}

int ad__cache_apply(struct ad_source *s, struct ad_entry *e, size_t n, bool full, bool silent,
		    const struct berval *cookie, const char *url, char *msg, size_t len)
{
	struct ad_cache *c = &s->cache;
	struct ad_obj **touched = xcalloc(n ? n : 1, sizeof *touched);
	size_t nt = 0;
	struct outbox b = {s, NULL, 0};
	bool regroup_all = false;
	int rc = 0;

	c->round++;
	/* 1: identities and locations first, so member DNs resolve to objects
	 * that come later in the same answer */
	for (size_t i = 0; i < n; i++) {
		struct ad_obj *o = strmap_get(&c->by_guid, e[i].guid);
		if (o == NULL && !full && !e[i].deleted && !has_attr(&e[i], "objectClass") && e[i].dn[0]) {
			/* a change to an object this cache never saw (it holds
			 * only what DirSync said since the last full read):
			 * read the whole object */
			struct ad_entry *whole = NULL;
			rc = ad__read_object(s, e[i].dn, &whole, url, msg, len);
			if (rc != 0)
				goto out;
			if (whole != NULL) {
				struct ad_obj *w = obj_get(c, whole->guid);
				obj_set_dn(c, w, whole->dn);
				obj_merge(c, w, whole);
				ad__entry_free(whole);
				free(whole);
			}
		}
		o = obj_get(c, e[i].guid);
		if (e[i].cguid[0] != '\0')
			snprintf(o->anchor, sizeof o->anchor, "%s", e[i].cguid);
		if (e[i].deleted) {
			o->deleted = true;
			if (o->dn_norm != NULL && strmap_get(&c->by_dn, o->dn_norm) == o)
				strmap_del(&c->by_dn, o->dn_norm);
		} else if (e[i].dn[0] != '\0') {
			o->deleted = false;
			obj_set_dn(c, o, e[i].dn);
		}
		if (o->round != c->round) {
			o->round = c->round;
			touched[nt++] = o;
		}
	}
	/* 2: attributes and members */
	for (size_t i = 0; i < n; i++)
		if (!e[i].deleted)
			obj_merge(c, strmap_get(&c->by_guid, e[i].guid), &e[i]);
	c->round++; /* member_scan's once-per-round mark starts fresh */
	if (silent) {
		struct scan x = {s, NULL, OBJECT_USER, NULL, NULL, false, false};
		strmap_foreach(&c->by_guid, full_one, &x);
		x.type = OBJECT_GROUP;
		strmap_foreach(&c->by_guid, full_one, &x);
		c->warm = true;
	} else if (full) {
		/* 3a: a refresh of each type with present_phase (source.h) */
		enum object_type types[] = {OBJECT_USER, OBJECT_GROUP};
		for (int t = 0; t < (s->group_base ? 2 : 1); t++) {
			struct scan x = {s, &b, types[t], NULL, NULL, false, false};
			emit(&b, ad__ev_new(SOURCE_REFRESH_BEGIN, types[t]));
			strmap_foreach(&c->by_guid, full_one, &x);
			struct source_event *end = ad__ev_new(SOURCE_REFRESH_END, types[t]);
			end->present_phase = true;
			emit(&b, end);
		}
		c->warm = false;
	} else {
		/* 3b: users before groups, so new members exist when their
		 * groups are planned */
		round_events(s, &b, touched, nt, OBJECT_USER, &regroup_all);
		round_events(s, &b, touched, nt, OBJECT_GROUP, &regroup_all);
		if (regroup_all)
			regroup_every(s, &b);
	}
	if (!silent) {
		bool changed = cookie != NULL && cookie->bv_val != NULL &&
			       (s->cookie.bv_val == NULL || s->cookie.bv_len != cookie->bv_len ||
				memcmp(s->cookie.bv_val, cookie->bv_val, cookie->bv_len) != 0);
		rc = flush(&b, cookie, changed || full);
	}
	/* tombstones have been reported: forget them */
	{
		struct ad_obj **dead = xcalloc(c->by_guid.count + 1, sizeof *dead), **p = dead;
		strmap_foreach(&c->by_guid, remove_deleted, &p);
		for (struct ad_obj **q = dead; q < p; q++) {
			char guid[37];
			memcpy(guid, (*q)->guid, sizeof guid); /* the key dies with the value */
			strmap_del(&c->by_guid, guid);
		}
		free(dead);
	}
out:
	if (b.held != NULL)
		source_event_free(b.held);
	free(touched);
	return rc;
}
