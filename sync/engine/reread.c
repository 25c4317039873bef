/*
 * sync/engine/reread.c -- reading a few objects again by DN instead of the
 * whole directory.
 *
 * Two things used to cost a full read of a scope, whatever their size: the
 * in-doubt repair after a failover (repair.c: a handful of objects whose
 * content hashes were forgotten) and a change of group-based scoping (a few
 * users entering or leaving the scope of `users.member_of`). A full refresh
 * of a million entries for three objects makes a failover's tail and a
 * group edit grow with the directory. Here they are read by DN with the
 * source's read_entry (on a uv worker: it blocks) and planned as a batch of
 * their own (session_pump -> reread_take); users that leave the scope need
 * no read at all: their deletes are planned from their records.
 *
 * Anything the reads cannot settle falls back to the full refresh of that
 * scope (reread_full), whose present phase tells a delete from a rename:
 * for the repair an entry gone, renamed or out of scope under its DN; for
 * both a read error, more than REREAD_MAX objects, or a source that cannot
 * read one entry.
 *
 * Order: a read's result is older than any change the source delivers after
 * it. So a result is dropped when a change for the object waits in the queue
 * or is in the batch, or when the object was written since: for the repair
 * its hash is no longer 0 (the repair batch zeroed it) or a retry or failed
 * record holds it; for a scope change it has a record now (exported by a
 * later change) or a retry or failed record. That later change brings the
 * object up to date -- for the repair in full, its hash being 0.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "sync/engine/internal.h"

#define REREAD_MAX 256

struct reread_job {
	uv_work_t work;
	struct session *s;  /* s->open held while out */
	enum reread_why why;
	char **dns;
	char **anchors;     /* REREAD_REPAIR: the anchor each DN must still name */
	enum object_type *types;
	size_t n;
	struct source_event **evs; /* filled by the worker */
	int rv;
	char err[256];
};

static const char *why_msg(enum reread_why why)
{
	return why == REREAD_REPAIR ? "in-doubt repair" : "scope change";
}

static void job_free(struct reread_job *j)
{
	for (size_t i = 0; i < j->n; i++) {
		free(j->dns[i]);
		free(j->anchors[i]);
		if (j->evs[i])
			source_event_free(j->evs[i]);
	}
	free(j->dns);
	free(j->anchors);
	free(j->types);
	free(j->evs);
	free(j);
}

void reread_full(struct session *s, bool users, bool groups)
{
	struct engine *e = s->e;

	if (s->src == NULL || s->stopping)
		return;
	if (users)
		e->source->refresh(s->src, OBJECT_USER);
	if (groups)
		e->source->refresh(s->src, OBJECT_GROUP);
}

static void on_read(uv_work_t *w)
{
	struct reread_job *j = w->data;
	struct engine *e = j->s->e;
	char rule[256];

	for (size_t i = 0; i < j->n && j->rv == 0; i++)
		j->rv = e->source->read_entry(e->source, j->dns[i], (const char *const *)e->attrs, e->n_attrs,
					      &j->evs[i], rule, sizeof rule, j->err, sizeof j->err);
}

static void keep(struct session *s, enum reread_why why, struct source_event *ev)
{
	s->reread = xrealloc(s->reread, (s->n_reread + 1) * sizeof *s->reread);
	s->reread[s->n_reread].ev = ev;
	s->reread[s->n_reread].why = why;
	s->n_reread++;
}

static void on_read_done(uv_work_t *w, int status)
{
	struct reread_job *j = w->data;
	struct session *s = j->s;
	bool full[3] = {false, false, false};
	char detail[600];
	size_t kept = 0;

	if (s->stopping || status != 0)
		goto out;
	if (j->rv < 0) {
		full[OBJECT_USER] = true;
		full[OBJECT_GROUP] = j->why == REREAD_REPAIR;
	}
	for (size_t i = 0; i < j->n && j->rv == 0; i++) {
		struct source_event *ev = j->evs[i];
		enum object_type t = j->types[i];
		bool taken = ev != NULL && ev->kind == SOURCE_ENTRY && ev->type == t && ev->anchor != NULL;
		if (j->why == REREAD_REPAIR && (!taken || strcmp(ev->anchor, j->anchors[i]) != 0)) {
			/* gone, renamed (the DN names another entry or none) or out
			 * of its scope: only a full read of its scope tells */
			full[t] = true;
			continue;
		}
		if (!taken)
			continue; /* a member DN that names no user in the users' scope: nothing enters */
		keep(s, j->why, ev);
		j->evs[i] = NULL;
		kept++;
	}
	snprintf(detail, sizeof detail, "%zu of %zu objects read again by DN; full read: %s%s%s", kept, j->n,
		 full[OBJECT_USER] && full[OBJECT_GROUP] ? "users and groups"
		 : full[OBJECT_USER]			? "users"
		 : full[OBJECT_GROUP]			? "groups"
							: "none",
		 j->rv < 0 ? " (reading by DN failed: " : "", j->rv < 0 ? j->err : "");
	if (j->rv < 0)
		strncat(detail, ")", sizeof detail - strlen(detail) - 1);
	engine_log(s->e, j->rv < 0 ? L_WARN : L_INFO, why_msg(j->why), detail);
	reread_full(s, full[OBJECT_USER], full[OBJECT_GROUP]);
	session_pump(s);
out:
	job_free(j);
	session_release(s);
}

void reread_start(struct session *s, enum reread_why why, const char *const *dns, const char *const *anchors,
		  const enum object_type *types, size_t n)
{
	struct engine *e = s->e;
	struct reread_job *j;
	char detail[200];

	if (n == 0)
		return;
	if (e->source->read_entry == NULL || n > REREAD_MAX || s->src == NULL) {
		snprintf(detail, sizeof detail, "%zu objects to read again; full read: %s (%s)", n,
			 why == REREAD_REPAIR ? "users and groups" : "users",
			 n > REREAD_MAX ? "more than are read one by one" : "this source cannot read one entry");
		engine_log(e, L_INFO, why_msg(why), detail);
		reread_full(s, true, why == REREAD_REPAIR);
		return;
	}
	j = xcalloc(1, sizeof *j);
	j->s = s;
	j->why = why;
	j->dns = xcalloc(n, sizeof *j->dns);
	j->anchors = xcalloc(n, sizeof *j->anchors);
	j->types = xcalloc(n, sizeof *j->types);
	j->evs = xcalloc(n, sizeof *j->evs);
	for (size_t i = 0; i < n; i++) {
		j->dns[i] = xstrdup(dns[i]);
		j->anchors[i] = anchors != NULL && anchors[i] != NULL ? xstrdup(anchors[i]) : NULL;
		j->types[i] = types[i];
	}
	j->n = n;
	j->work.data = j;
	if (uv_queue_work(e->loop, &j->work, on_read, on_read_done) != 0) {
		job_free(j);
		reread_full(s, true, why == REREAD_REPAIR);
		return;
	}
	s->open++;
}

void reread_leaving(struct session *s, const char *anchor)
{
	s->leaving = xrealloc(s->leaving, (s->n_leaving + 1) * sizeof *s->leaving);
	s->leaving[s->n_leaving++] = xstrdup(anchor);
}

/* Has the object been written since the read was asked for? (see the top) */
static bool stale(struct session *s, struct batch *b, const struct strmap *queued, const struct reread *r)
{
	const struct state *st = s->e->state;
	const char *anchor = r->ev->anchor;
	struct object_record rec;
	bool written;

	if (strmap_has(queued, anchor) || strmap_has(&b->by_anchor, anchor) ||
	    engine_has_key(st, OBJECT_KEY_RETRY, anchor) || engine_has_key(st, OBJECT_KEY_FAILED, anchor))
		return true;
	if (!engine_record(st, OBJECT_KEY_OBJECT, anchor, &rec))
		return r->why == REREAD_REPAIR; /* the repair's object was deleted since */
	written = r->why == REREAD_SCOPE || rec.hash != 0;
	object_record_free(&rec);
	return written;
}

bool reread_take(struct session *s, struct batch *b)
{
	struct strmap queued;
	size_t before = b->n;

	if (s->n_reread == 0 && s->n_leaving == 0)
		return false;
	strmap_init(&queued, NULL);
	for (const struct qnode *q = s->head; q != NULL; q = q->next)
		if (q->ev->anchor != NULL)
			strmap_put(&queued, q->ev->anchor, (void *)1);
	/* users out of the scope now: their deletes (plan_event would plan the
	 * same for an entry out of scope); a change waiting in the queue plans
	 * it itself */
	for (size_t i = 0; i < s->n_leaving; i++) {
		if (!strmap_has(&queued, s->leaving[i]) && !strmap_has(&b->by_anchor, s->leaving[i]) &&
		    engine_has_key(s->e->state, OBJECT_KEY_OBJECT, s->leaving[i]))
			plan_delete(&s->plan, b, s->leaving[i], OBJECT_USER);
		free(s->leaving[i]);
	}
	for (size_t i = 0; i < s->n_reread; i++) {
		struct reread *r = &s->reread[i];
		if (!stale(s, b, &queued, r))
			plan_event(&s->plan, b, r->ev);
		source_event_free(r->ev);
	}
	free(s->leaving);
	free(s->reread);
	s->leaving = NULL;
	s->reread = NULL;
	s->n_leaving = s->n_reread = 0;
	strmap_clear(&queued);
	return b->n > before;
}

void reread_clear(struct session *s)
{
	for (size_t i = 0; i < s->n_reread; i++)
		source_event_free(s->reread[i].ev);
	for (size_t i = 0; i < s->n_leaving; i++)
		free(s->leaving[i]);
	free(s->reread);
	free(s->leaving);
	s->reread = NULL;
	s->leaving = NULL;
	s->n_reread = s->n_leaving = 0;
}

/* ---- group-based scoping ------------------------------------------------------------ */

struct scope_diff {
	struct session *s;
	const struct strmap *other;
	const char **dns; /* entering: DNs not exported yet */
	size_t n_dns;
	bool by_key;      /* entering by a memberUid-style key alone: no DN to read */
};

static int entering(void *ctx, const char *key, void *v)
{
	struct scope_diff *d = ctx;

	(void)v;
	if (strmap_has(d->other, key))
		return 0;
	if (key[0] == '=') { /* a user named by its key, never exported: its DN is not known */
		d->by_key = true;
		return 1;
	}
	if (strmap_has(&d->s->plan.dn_index, key))
		return 0; /* exported already */
	if (d->n_dns == REREAD_MAX + 1)
		return 1; /* too many: reread_start reads in full */
	d->dns = xrealloc(d->dns, (d->n_dns + 1) * sizeof *d->dns);
	d->dns[d->n_dns++] = key; /* normalized: a DN all the same (scope_dn_norm) */
	return 0;
}

static int leaving(void *ctx, const char *key, void *v)
{
	struct scope_diff *d = ctx;
	struct planner *p = &d->s->plan;
	struct object_record r;
	const char *anchor;

	(void)v;
	if (strmap_has(d->other, key))
		return 0;
	anchor = key[0] == '=' ? strmap_get(&p->key_index, key + 1) : strmap_get(&p->dn_index, key);
	if (anchor == NULL || !engine_record(p->state, OBJECT_KEY_OBJECT, anchor, &r))
		return 0;
	/* still in by its other name (its DN or its key) */
	if (r.type == OBJECT_USER && !scope_has_user(p, r.dn, r.member_key))
		reread_leaving(d->s, anchor);
	object_record_free(&r);
	return 0;
}

void reread_scope(struct session *s, const struct strmap *before)
{
	struct scope_diff d = {.s = s, .other = before};
	enum object_type *types;

	strmap_foreach(&s->plan.scope, entering, &d);
	if (d.by_key) {
		engine_log(s->e, L_INFO, "scope change",
			   "a user enters the scope by its member value alone (its DN is not known); full read: users");
		free(d.dns);
		reread_full(s, true, false);
		return;
	}
	d.other = &s->plan.scope;
	strmap_foreach(before, leaving, &d);
	types = xcalloc(d.n_dns ? d.n_dns : 1, sizeof *types);
	for (size_t i = 0; i < d.n_dns; i++)
		types[i] = OBJECT_USER;
	reread_start(s, REREAD_SCOPE, d.dns, NULL, types, d.n_dns);
	free(types);
	free(d.dns);
	if (d.n_dns == 0)
		session_pump(s); /* the deletes of users that left, if any */
}
