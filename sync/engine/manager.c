/*
 * sync/engine/manager.c -- the manager reference (RFC 7643 §4.3): a user's
 * manager, a DN in the directory, becomes the manager's target id in the
 * target. The planner part is pure, like plan.c; exec.c sends what it plans.
 *
 * The way a group's members are resolved (plan.c), for one reference:
 *   DN --dn_index--> anchor of an exported user --its record--> target id.
 * A user's record keeps the manager's DN as the source gave it (manager_dn)
 * and the anchor of the manager set in the target (manager), so that
 *   - an upsert writes the manager with the user when its id is known
 *     (exec_upserts: PUT replaces the whole user, RFC 7644 §3.5.1);
 *   - a manager created later in the batch, or in a later batch, is filled
 *     in afterwards: users whose manager_dn is not resolved wait in
 *     mgr_waiting, keyed by that DN, and get a PATCH once a user with that
 *     DN is exported (nothing is lost: the DN is in the record);
 *   - a manager deleted (or gone out of scope and deleted) is removed from
 *     its reports with a PATCH "remove" before it goes; the reports are found
 *     through `reports` (manager anchor -> users), not by a scan;
 *   - a renamed manager keeps its anchor and target id: reports that still
 *     carry its old DN keep pointing at it, and its new DN resolves to the
 *     same anchor (no request);
 *   - a DN that names no exported user (outside the domain, out of scope,
 *     not a user) leaves the manager out: logged once, when the user starts
 *     waiting for it, never retried in a loop.
 * Both indexes are hints rebuilt from the state by planner_load(); an item
 * made from them plans from its own committed record.
 */
#include <stdlib.h>
#include <string.h>

#include "sync/engine/internal.h"

static bool str_eq(const char *a, const char *b)
{
	return a == b || (a != NULL && b != NULL && strcmp(a, b) == 0);
}

static bool dn_eq(const char *a, const char *b)
{
	char na[DN_MAX], nb[DN_MAX];

	if (a == NULL || b == NULL)
		return a == b;
	scope_dn_norm(a, na, sizeof na);
	scope_dn_norm(b, nb, sizeof nb);
	return strcmp(na, nb) == 0;
}

/* ---- the indexes ------------------------------------------------------------------- */

static void set_add(struct strmap *index, const char *key, const char *anchor)
{
	struct strmap *set = strmap_get(index, key);

	if (set == NULL) {
		set = xmalloc(sizeof *set);
		strmap_init(set, NULL);
		engine_map_put(index, key, set);
	}
	engine_map_put(set, anchor, (void *)1);
}

static void set_del(struct strmap *index, const char *key, const char *anchor)
{
	struct strmap *set = strmap_get(index, key);

	if (set == NULL)
		return;
	strmap_del(set, anchor);
	if (set->count == 0)
		strmap_del(index, key); /* the index frees the set */
}

static void index_one(struct planner *p, const char *anchor, const struct object_record *r, bool add)
{
	char norm[DN_MAX];

	if (r == NULL || r->type != OBJECT_USER)
		return;
	if (r->manager != NULL) {
		if (add)
			set_add(&p->reports, r->manager, anchor);
		else
			set_del(&p->reports, r->manager, anchor);
	} else if (r->manager_dn != NULL) {
		scope_dn_norm(r->manager_dn, norm, sizeof norm);
		if (add)
			set_add(&p->mgr_waiting, norm, anchor);
		else
			set_del(&p->mgr_waiting, norm, anchor);
	}
}

void manager_index(struct planner *p, const char *anchor, const struct object_record *old,
		   const struct object_record *rec)
{
	index_one(p, anchor, old, false);
	index_one(p, anchor, rec, true);
}

/* ---- resolution ---------------------------------------------------------------------- */

/* The target id of an exported user: from this batch, else the state
 * (xstrdup'd; NULL: not exported, not a user, or deleted in this batch). A
 * staged delete still exists in the target: it stays a valid manager until
 * an operator approves (the approval's batch clears its reports). */
static char *user_id(struct planner *p, struct batch *b, const char *anchor)
{
	struct item *it = strmap_get(&b->by_anchor, anchor);
	struct object_record r;
	char *id = NULL;

	if (it != NULL && it->kind == IT_DELETE)
		return NULL;
	if (it != NULL && it->kind == IT_UPSERT && it->rec.target_id != NULL)
		return it->type == OBJECT_USER ? xstrdup(it->rec.target_id) : NULL;
	if (it != NULL && it->kind == IT_UPSERT && it->type != OBJECT_USER)
		return NULL;
	if (!engine_record(p->state, OBJECT_KEY_OBJECT, anchor, &r))
		return NULL;
	if (r.type == OBJECT_USER && r.target_id != NULL)
		id = xstrdup(r.target_id);
	object_record_free(&r);
	return id;
}

char *manager_resolve(struct planner *p, struct batch *b, const struct item *it, const char *dn, char **id)
{
	char norm[DN_MAX];
	const char *a;

	*id = NULL;
	if (dn == NULL)
		return NULL;
	scope_dn_norm(dn, norm, sizeof norm);
	a = strmap_get(&p->dn_index, norm);
	if (a != NULL && strcmp(a, it->anchor) != 0 && (*id = user_id(p, b, a)) != NULL)
		return xstrdup(a);
	/* A DN that no longer names anyone but is the one the manager was set
	 * from: the manager was renamed (same anchor, same target id) and this
	 * entry still carries the old DN (no referential integrity in the
	 * directory). It still means that user. */
	if (it->has_old && it->old.manager != NULL && dn_eq(it->old.manager_dn, dn) &&
	    strcmp(it->old.manager, it->anchor) != 0 && (*id = user_id(p, b, it->old.manager)) != NULL)
		return xstrdup(it->old.manager);
	return NULL;
}

/* ---- planning ------------------------------------------------------------------------- */

/* A user outside the batch whose manager may change now. */
static void add_report(struct planner *p, struct batch *b, const char *anchor)
{
	struct item *it;

	if (strmap_has(&b->by_anchor, anchor))
		return; /* in the batch already: planned with its own change */
	it = batch_add(p, b, IT_MEMBERS, OBJECT_USER, anchor);
	if (!it->has_old || it->old.type != OBJECT_USER) {
		batch_item_noop(it);
		return;
	}
	it->dn = it->old.dn ? xstrdup(it->old.dn) : NULL;
	object_record_copy(&it->rec, &it->old);
}

struct reports_ctx {
	struct planner *p;
	struct batch *b;
};

static int add_one_report(void *ctx, const char *anchor, void *v)
{
	struct reports_ctx *c = ctx;

	(void)v;
	add_report(c->p, c->b, anchor); /* touches the batch, not the index walked */
	return 0;
}

static void add_reports(struct planner *p, struct batch *b, const struct strmap *set)
{
	struct reports_ctx c = {p, b};

	if (set != NULL)
		strmap_foreach(set, add_one_report, &c);
}

/* One user's manager after its upsert (or as recorded): what to send. */
static void plan_one(struct planner *p, struct batch *b, struct item *it)
{
	const char *want = it->kind == IT_UPSERT ? it->manager_dn : it->rec.manager_dn;
	char *id, *a = manager_resolve(p, b, it, want, &id);

	if (!str_eq(want, it->rec.manager_dn)) {
		free(it->rec.manager_dn);
		it->rec.manager_dn = want ? xstrdup(want) : NULL;
		it->write_rec = true;
	}
	/* Newly waiting (not waiting for this DN already): said once. */
	it->manager_waiting = want != NULL && a == NULL &&
			      !(it->has_old && it->old.manager == NULL && dn_eq(it->old.manager_dn, want));
	if (str_eq(a, it->rec.manager) || it->rec.target_id == NULL) {
		free(a);
		free(id);
		return;
	}
	it->manager_planned = true;
	it->manager_set = a;
	it->manager_id = id;
}

void plan_managers(struct planner *p, struct batch *b)
{
	char norm[DN_MAX];
	size_t i, n = b->n;

	for (i = 0; i < n; i++) {
		struct item *it = b->items[i];
		if (it->failed || it->cancelled)
			continue;
		if (it->kind == IT_UPSERT && it->type == OBJECT_USER && it->dn) {
			/* users waiting for this DN as their manager */
			scope_dn_norm(it->dn, norm, sizeof norm);
			add_reports(p, b, strmap_get(&p->mgr_waiting, norm));
		} else if (it->kind == IT_DELETE && it->type == OBJECT_USER) {
			/* its reports lose their manager before it goes */
			add_reports(p, b, strmap_get(&p->reports, it->anchor));
		}
	}
	for (i = 0; i < b->n; i++) {
		struct item *it = b->items[i];
		manager_clear(it);
		if (it->type != OBJECT_USER || it->failed || it->cancelled ||
		    (it->kind != IT_UPSERT && it->kind != IT_MEMBERS))
			continue;
		plan_one(p, b, it);
	}
}

void manager_clear(struct item *it)
{
	free(it->manager_set);
	free(it->manager_id);
	it->manager_set = it->manager_id = NULL;
	it->manager_planned = it->manager_waiting = false;
}

static void free_set(void *v)
{
	struct strmap *m = v;

	strmap_clear(m);
	free(m);
}

void manager_init(struct planner *p)
{
	strmap_init(&p->mgr_waiting, free_set);
	strmap_init(&p->reports, free_set);
}

void manager_fini(struct planner *p)
{
	strmap_clear(&p->mgr_waiting);
	strmap_clear(&p->reports);
}
