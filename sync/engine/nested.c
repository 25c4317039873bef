/*
 * sync/engine/nested.c -- target.nested_groups: flatten.
 *
 * Some SCIM servers take only users as group members (a group as a member
 * is refused with 400 invalidValue; docs/targets.md). With flatten, a group's
 * members in the target are its transitive users: its direct users and the
 * users of every group nested in it, at any depth. The planner computes them
 * from the replicated group records alone, so that any leader plans the same:
 * each group's record keeps its direct members as the source has them --
 * users (`direct_users`) and groups (`nested`) -- next to `members`, the
 * users it has in the target (object.h).
 *
 * Incremental: a change of one group (its users, its nested groups, its
 * deletion) changes the transitive users of every group above it. The
 * parents index (group -> the groups it is a direct member of, built from the
 * records) finds them; each is planned again as an IT_MEMBERS item, and only
 * the difference against its record goes out. Member removals so planned are
 * member removals like any other: counted against delete protection
 * (protect.c), held as "m:" keys past the threshold.
 *
 * Cycles (a group nested in itself through others -- LDAP does not forbid
 * it) are harmless: each walk visits a group once.
 */
#include <stdlib.h>
#include <string.h>

#include "sync/engine/internal.h"

static void add_parent(struct planner *p, const char *child, const char *parent)
{
	struct strmap *set = strmap_get(&p->parents, child);

	if (set == NULL) {
		set = xmalloc(sizeof *set);
		strmap_init(set, NULL);
		engine_map_put(&p->parents, child, set);
	}
	if (!strmap_has(set, parent))
		engine_map_put(set, parent, (void *)1);
}

void nested_index(struct planner *p, const char *anchor, const struct object_record *r)
{
	if (p->cfg->nested_groups != ENGINE_NESTED_FLATTEN)
		return;
	if (r->flat) {
		for (size_t i = 0; i < r->n_nested; i++)
			add_parent(p, r->nested[i], anchor);
		return;
	}
	/* A record written before flatten: its group members are nested, but
	 * which members are groups is not known yet while the records are read
	 * (in hash order): every member is indexed. A superset costs nothing
	 * but memory -- only groups are ever looked up -- and lasts until the
	 * group's next change writes its record with `nested`. */
	for (size_t i = 0; i < r->n_members; i++)
		add_parent(p, r->members[i], anchor);
}

struct flat {
	struct planner *p;
	struct batch *b;
	struct strmap records; /* anchor -> struct object_record * of groups outside the batch */
};

static void record_free(void *v)
{
	object_record_free(v);
	free(v);
}

/* Split a record written before flatten into direct users and groups. */
static void derive_direct(struct flat *f, struct object_record *r)
{
	if (r->flat)
		return;
	r->flat = true;
	for (size_t i = 0; i < r->n_members; i++) {
		if (plan_is_group(f->p, f->b, r->members[i]))
			engine_strv_push(&r->nested, &r->n_nested, r->members[i]);
		else
			engine_strv_push(&r->direct_users, &r->n_direct_users, r->members[i]);
	}
}

/* The direct members of group `anchor`: its flat item in the batch, else its
 * record (NULL: no such group). */
static const struct object_record *direct_of(struct flat *f, const char *anchor)
{
	struct item *it = strmap_get(&f->b->by_anchor, anchor);
	struct object_record *r;

	if (it != NULL && it->flat)
		return &it->rec;
	if (it != NULL && (it->kind == IT_DELETE || it->kind == IT_STAGE))
		return NULL; /* on its way out: its users go with it */
	if ((r = strmap_get(&f->records, anchor)) != NULL)
		return r;
	r = xcalloc(1, sizeof *r);
	if (!engine_record(f->p->state, OBJECT_KEY_OBJECT, anchor, r) || r->type != OBJECT_GROUP) {
		object_record_free(r);
		free(r);
		return NULL;
	}
	derive_direct(f, r);
	engine_map_put(&f->records, anchor, r);
	return r;
}

/* Take the direct members for a group item: from `dns` (an upsert: the
 * whole list from the source), or from its record plus what resolves now of
 * its unresolved DNs (a group waiting for members, a retry, an ancestor). */
static void direct_from(struct flat *f, struct item *it, char *const *dns, size_t n_dns, bool replace)
{
	struct plan_direct d;
	struct object_record *r = &it->rec;

	if (!replace) {
		derive_direct(f, r);
		for (size_t i = 0; i < it->n_drop; i++) { /* renamed away (plan.c) */
			engine_strv_remove(r->direct_users, &r->n_direct_users, it->drop[i]);
			engine_strv_remove(r->nested, &r->n_nested, it->drop[i]);
		}
		dns = r->unresolved;
		n_dns = r->n_unresolved;
	}
	plan_resolve(f->p, f->b, it, dns, n_dns, &d);
	if (replace) {
		engine_strv_free(r->direct_users, r->n_direct_users);
		engine_strv_free(r->nested, r->n_nested);
		r->direct_users = d.users;
		r->n_direct_users = d.n_users;
		r->nested = d.groups;
		r->n_nested = d.n_groups;
		d.users = d.groups = NULL;
		d.n_users = d.n_groups = 0;
	} else {
		for (size_t i = 0; i < d.n_users; i++)
			if (!engine_strv_has(r->direct_users, r->n_direct_users, d.users[i]))
				engine_strv_push(&r->direct_users, &r->n_direct_users, d.users[i]);
		for (size_t i = 0; i < d.n_groups; i++)
			if (!engine_strv_has(r->nested, r->n_nested, d.groups[i]))
				engine_strv_push(&r->nested, &r->n_nested, d.groups[i]);
	}
	engine_strv_free(r->unresolved, r->n_unresolved);
	r->unresolved = d.unresolved;
	r->n_unresolved = d.n_unresolved;
	d.unresolved = NULL;
	d.n_unresolved = 0;
	plan_direct_free(&d);
	r->flat = true;
	it->flat = true;
	for (size_t i = 0; i < r->n_nested; i++)
		add_parent(f->p, r->nested[i], it->anchor);
}

/* The transitive users of `root`, each once (a walk that visits every
 * group once: cycles end). */
static void closure(struct flat *f, const char *root, char ***desired, size_t *n_desired, struct strmap *want)
{
	struct strmap visited;
	char **stack = NULL;
	size_t n_stack = 0;

	strmap_init(&visited, NULL);
	engine_strv_push(&stack, &n_stack, root);
	while (n_stack > 0) {
		char *g = stack[--n_stack];
		const struct object_record *r;
		stack[n_stack] = NULL;
		if (!strmap_has(&visited, g) && (r = direct_of(f, g)) != NULL) {
			engine_map_put(&visited, g, (void *)1);
			for (size_t i = 0; i < r->n_direct_users; i++)
				if (!strmap_has(want, r->direct_users[i])) {
					engine_map_put(want, r->direct_users[i], (void *)1);
					engine_strv_push(desired, n_desired, r->direct_users[i]);
				}
			for (size_t i = 0; i < r->n_nested; i++)
				if (!strmap_has(&visited, r->nested[i]))
					engine_strv_push(&stack, &n_stack, r->nested[i]);
		}
		free(g);
	}
	free(stack);
	strmap_clear(&visited);
}

struct ancestors {
	struct strmap *seen;
	char ***queue;
	size_t *n_queue;
};

static int enqueue_parent(void *ctx, const char *parent, void *v)
{
	struct ancestors *a = ctx;

	(void)v;
	if (!strmap_has(a->seen, parent)) {
		engine_map_put(a->seen, parent, (void *)1);
		engine_strv_push(a->queue, a->n_queue, parent);
	}
	return 0;
}

static bool plannable(const struct item *it)
{
	return it->type == OBJECT_GROUP && !it->failed && !it->cancelled && !it->member_decision &&
	       (it->kind == IT_UPSERT || it->kind == IT_MEMBERS);
}

void nested_plan_flatten(struct planner *p, struct batch *b)
{
	struct flat f = {.p = p, .b = b};
	struct strmap seen;
	char **queue = NULL;
	size_t n_queue = 0, n = b->n, i;
	struct ancestors a = {&seen, &queue, &n_queue};

	strmap_init(&f.records, record_free);
	strmap_init(&seen, NULL);
	/* 1. the batch's groups: their direct members */
	for (i = 0; i < n; i++) {
		struct item *it = b->items[i];
		if (plannable(it))
			direct_from(&f, it, it->member_dns, it->n_member_dns, it->kind == IT_UPSERT);
	}
	/* 2. every group above a changed or deleted one */
	for (i = 0; i < n; i++) {
		struct item *it = b->items[i];
		if (it->type == OBJECT_GROUP && (plannable(it) || it->kind == IT_DELETE)) {
			struct strmap *parents = strmap_get(&p->parents, it->anchor);
			engine_map_put(&seen, it->anchor, (void *)1);
			if (parents != NULL)
				strmap_foreach(parents, enqueue_parent, &a);
		}
	}
	for (i = 0; i < n_queue; i++) {
		struct strmap *parents;
		struct item *it = strmap_get(&b->by_anchor, queue[i]);
		if (it == NULL) {
			it = batch_add(p, b, IT_MEMBERS, OBJECT_GROUP, queue[i]);
			if (!it->has_old || it->old.type != OBJECT_GROUP) {
				batch_item_noop(it); /* gone: nothing to fix */
				continue;
			}
			it->dn = it->old.dn ? xstrdup(it->old.dn) : NULL;
			object_record_copy(&it->rec, &it->old);
			direct_from(&f, it, NULL, 0, false);
		}
		if ((parents = strmap_get(&p->parents, queue[i])) != NULL)
			strmap_foreach(parents, enqueue_parent, &a);
	}
	/* 3. each one's transitive users, against what the target has */
	for (i = 0; i < b->n; i++) {
		struct item *it = b->items[i];
		char **desired = NULL;
		size_t n_desired = 0;
		struct strmap want;
		if (!plannable(it) || !it->flat)
			continue;
		strmap_init(&want, NULL);
		closure(&f, it->anchor, &desired, &n_desired, &want);
		plan_member_diff(p, b, it, desired, n_desired, &want);
		engine_strv_free(desired, n_desired);
		strmap_clear(&want);
	}
	engine_strv_free(queue, n_queue);
	strmap_clear(&seen);
	strmap_clear(&f.records);
}
