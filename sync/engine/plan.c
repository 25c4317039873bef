/*
 * sync/engine/plan.c -- the planner: events and the replicated state in,
 * items out. Pure: no request, no entry, no log line (exec.c logs what the
 * planner decided, such as entries the mapping refused). So it can be run,
 * and tested, without a loop, a source or a target.
 *
 * What it decides, per object (docs/architecture.md, "The engine"):
 *   - an entry in scope: map it (sync/transform) and upsert it when its
 *     content hash changed or it has no target id yet;
 *   - an entry out of scope, a delete, or -- at the end of a refresh with a
 *     present phase (RFC 4533 §3.4) -- an exported object of that type that
 *     was not reported: deprovision it (delete, or disable);
 *   - after the upserts (plan_members): the member ids to add and remove.
 * A later change of the same object in the batch supersedes an earlier one
 * (batch_add).
 */
#define _GNU_SOURCE /* memmem */
#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "sync/engine/internal.h"
#include "sync/member_value.h"

/* ---- the planner's own state ----------------------------------------------------- */

static void free_groupset(void *v)
{
	struct strmap *m = v;

	strmap_clear(m);
	free(m);
}

void planner_init(struct planner *p, const struct engine_config *cfg, const struct state *st,
		  uint64_t *change_seq)
{
	memset(p, 0, sizeof *p);
	p->cfg = cfg;
	p->state = st;
	p->change_seq = change_seq;
	for (int i = 0; i < 3; i++) {
		strmap_init(&p->seen[i], NULL);
		strmap_init(&p->refresh_deletes[i], NULL);
	}
	strmap_init(&p->dn_index, free);
	strmap_init(&p->groups, NULL);
	strmap_init(&p->parents, free_groupset);
	strmap_init(&p->unresolved, free_groupset);
	strmap_init(&p->scope, NULL);
	strmap_init(&p->key_index, free);
	manager_init(p);
	p->scope_on = cfg->user_member_of != NULL && cfg->user_member_of[0] != '\0';
	p->by_key = cfg->member_value != NULL && cfg->member_value[0] != '\0' &&
		    strcasecmp(cfg->member_value, "dn") != 0;
}

void planner_clear(struct planner *p)
{
	for (int i = 0; i < 3; i++) {
		strmap_clear(&p->seen[i]);
		strmap_clear(&p->refresh_deletes[i]);
	}
	strmap_clear(&p->dn_index);
	strmap_clear(&p->key_index);
	strmap_clear(&p->unresolved);
	strmap_clear(&p->scope);
	strmap_clear(&p->groups);
	strmap_clear(&p->parents);
	manager_fini(p);
}

/* memberUid and the uid it names: RFC 2307 gives memberUid caseExactIA5Match
 * but uid (RFC 4519 §2.39) caseIgnoreMatch, and directories in the wild
 * disagree on the case of the two; a case-insensitive match never misses a
 * member the directory meant (docs/sources.md). */
void planner_member_norm(const struct planner *p, const char *value, char *out, size_t size)
{
	size_t o = 0;

	if (!p->by_key) {
		scope_dn_norm(value, out, size);
		return;
	}
	for (const char *c = value; *c && o + 1 < size; c++)
		out[o++] = (char)tolower((unsigned char)*c);
	out[o] = '\0';
}

const char *planner_member_ref(const struct planner *p, enum object_type type, const char *dn, const char *key)
{
	if (!p->by_key)
		return dn;
	return type == OBJECT_USER ? key : NULL; /* memberUid names users only */
}

void planner_index_key(struct planner *p, const char *anchor, const char *old_key, const char *key)
{
	char norm[DN_MAX];
	const char *had;

	if (!p->by_key)
		return;
	if (old_key != NULL) {
		planner_member_norm(p, old_key, norm, sizeof norm);
		/* only its own entry: another user may carry that value now */
		if ((had = strmap_get(&p->key_index, norm)) != NULL && strcmp(had, anchor) == 0)
			strmap_del(&p->key_index, norm);
	}
	if (key != NULL) {
		planner_member_norm(p, key, norm, sizeof norm);
		engine_map_put(&p->key_index, norm, xstrdup(anchor));
	}
}

/* The exported object a member value names (NULL: none). */
static const char *member_lookup(const struct planner *p, const char *value)
{
	char norm[DN_MAX];

	planner_member_norm(p, value, norm, sizeof norm);
	return strmap_get(p->by_key ? &p->key_index : &p->dn_index, norm);
}

/* A user's member_key from a source entry: the first value of the
 * member_value attribute, in server order. */
static const char *event_member_key(const struct planner *p, const struct source_event *ev)
{
	if (!p->by_key || ev->type == OBJECT_GROUP)
		return NULL;
	for (size_t i = 0; i < ev->n_attrs; i++)
		if (strcasecmp(ev->attrs[i].name, p->cfg->member_value) == 0 && ev->attrs[i].n_values > 0)
			return ev->attrs[i].values[0];
	return NULL;
}

void planner_index_unresolved(struct planner *p, const char *group, char *const *dns, size_t n)
{
	char norm[DN_MAX];

	for (size_t i = 0; i < n; i++) {
		struct strmap *g;
		planner_member_norm(p, dns[i], norm, sizeof norm);
		g = strmap_get(&p->unresolved, norm);
		if (g == NULL) {
			g = xmalloc(sizeof *g);
			strmap_init(g, NULL);
			engine_map_put(&p->unresolved, norm, g);
		}
		engine_map_put(g, group, (void *)1);
	}
}

static int index_record(void *ctx, const void *key, size_t klen, const void *val, size_t vlen)
{
	struct planner *p = ctx;
	struct object_record r;
	char anchor[KEY_MAX], norm[DN_MAX], err[64];

	if (!engine_key_anchor(key, klen, OBJECT_KEY_OBJECT, anchor, sizeof anchor))
		return 0;
	if (object_record_decode(val, vlen, &r, err, sizeof err) != 0)
		return 0;
	if (r.dn) {
		scope_dn_norm(r.dn, norm, sizeof norm);
		engine_map_put(&p->dn_index, norm, xstrdup(anchor));
	}
	if (r.type == OBJECT_USER && r.member_key)
		planner_index_key(p, anchor, NULL, r.member_key);
	if (r.type == OBJECT_GROUP && r.n_unresolved)
		planner_index_unresolved(p, anchor, r.unresolved, r.n_unresolved);
	if (r.type == OBJECT_GROUP) {
		engine_map_put(&p->groups, anchor, (void *)1);
		nested_index(p, anchor, &r);
	}
	manager_index(p, anchor, NULL, &r);
	object_record_free(&r);
	return 0;
}

void planner_load(struct planner *p)
{
	state_foreach(p->state, index_record, p);
	if (p->scope_on)
		scope_compute(p, NULL);
}

/* ---- source events ------------------------------------------------------------------ */

/* An upsert of mapped content (from a source entry or the retry set). */
static void plan_upsert(struct item *it, json_t *attrs, uint64_t hash)
{
	it->attrs = attrs;
	it->hash = hash;
	it->upsert_needed = !it->has_old || it->old.hash != it->hash || it->old.target_id == NULL;
}

static void note_skip(struct batch *b, const struct item *it)
{
	struct skip *k;

	b->skips = xrealloc(b->skips, (b->n_skips + 1) * sizeof *b->skips);
	k = &b->skips[b->n_skips++];
	k->anchor = xstrdup(it->anchor);
	k->dn = it->dn ? xstrdup(it->dn) : NULL;
	k->error = xstrdup(it->op.error);
	k->type = it->type;
	k->change = it->change;
}

static void plan_entry(struct planner *p, struct batch *b, struct source_event *ev)
{
	const struct engine_config *cfg = p->cfg;
	const struct mapping *m = ev->type == OBJECT_GROUP ? cfg->group_map : cfg->user_map;
	struct item *it;
	json_t *attrs = NULL;

	if (m == NULL)
		return;
	it = batch_add(p, b, IT_UPSERT, ev->type, ev->anchor);
	it->dn = ev->dn ? xstrdup(ev->dn) : NULL;
	if (mapping_apply(m, ev->anchor, ev->attrs, ev->n_attrs, &attrs, it->op.error, sizeof it->op.error) != 0 ||
	    (ev->type != OBJECT_GROUP && mapping_manager(m, ev->attrs, ev->n_attrs, &it->manager_dn, it->op.error,
							sizeof it->op.error) != 0)) {
		json_decref(attrs);
		attrs = NULL;
		/* An entry the mapping cannot map: recorded as a failed object
		 * (shown by status, retried on resync), never silently skipped. */
		it->failed = true;
		it->refused = true;
		note_skip(b, it);
		return;
	}
	if (ev->type == OBJECT_USER && cfg->disable_users)
		mapping_default_active(attrs);
	plan_upsert(it, attrs, mapping_hash(attrs));
	/* Now()/RandomString() rules: added to a creation only, after the hash
	 * (mapping.h, mapping_apply_creation). */
	if (it->upsert_needed && (!it->has_old || it->old.target_id == NULL) &&
	    mapping_apply_creation(m, ev->attrs, ev->n_attrs, attrs, it->op.error, sizeof it->op.error) != 0) {
		json_decref(it->attrs);
		it->attrs = NULL;
		it->upsert_needed = false;
		it->failed = true;
		it->refused = true;
		note_skip(b, it);
		return;
	}
	/* SelectUniqueValue rules: their candidates, asked about before the
	 * creation is written (unique.c) */
	if (it->upsert_needed && (!it->has_old || it->old.target_id == NULL) && mapping_has_unique(m)) {
		if (mapping_unique_candidates(m, ev->attrs, ev->n_attrs, &it->uniq, &it->n_uniq, it->op.error,
					      sizeof it->op.error) != 0) {
			json_decref(it->attrs);
			it->attrs = NULL;
			it->upsert_needed = false;
			it->failed = true;
			it->refused = true;
			note_skip(b, it);
			return;
		}
		it->uniq_pick = xmalloc((it->n_uniq ? it->n_uniq : 1) * sizeof *it->uniq_pick);
		unique_reset(it);
	}
	if (ev->type != OBJECT_GROUP) {
		const char *key = event_member_key(p, ev);
		it->member_key = key ? xstrdup(key) : NULL;
		return;
	}
	const char *ma = cfg->member_attr ? cfg->member_attr : "member";
	bool unique = member_value_is_unique_member(ma);
	for (size_t i = 0; i < ev->n_attrs; i++)
		if (strcasecmp(ev->attrs[i].name, ma) == 0) {
			engine_strv_free(it->member_dns, it->n_member_dns);
			it->member_dns = engine_strv_dup(ev->attrs[i].values, ev->attrs[i].n_values);
			it->n_member_dns = ev->attrs[i].n_values;
			/* uniqueMember: the DN without its unique identifier, which
			 * names the same entry (RFC 4517 §3.3.21) */
			for (size_t j = 0; unique && j < it->n_member_dns; j++)
				it->member_dns[j][member_value_dn_len(it->member_dns[j])] = '\0';
		}
}

/*
 * Deprovision `anchor`, reported gone by the scope of `type`. Only an object
 * of that type is touched: slapd's session log reports, to each session,
 * every entry changed since its cookie that it no longer matches -- so the
 * groups session names changed *users* as "deleted" (seen on resume and on
 * failover; before this check a new leader deleted users).
 */
void plan_delete(struct planner *p, struct batch *b, const char *anchor, enum object_type type)
{
	struct item *it;
	struct object_record old;

	if (engine_record(p->state, OBJECT_KEY_OBJECT, anchor, &old)) {
		bool other = old.type != type;
		object_record_free(&old);
		if (other)
			return;
	} else {
		/* Not exported (never in scope, or already gone): nothing to do,
		 * unless an upsert earlier in this batch created it. */
		it = strmap_get(&b->by_anchor, anchor);
		if (it == NULL || it->type != type)
			return;
	}
	it = batch_add(p, b, IT_DELETE, OBJECT_UNKNOWN, anchor);
	if (!it->has_old)
		return;
	it->type = it->old.type;
	it->dn = it->old.dn ? xstrdup(it->old.dn) : NULL;
	if (it->type == OBJECT_USER && p->cfg->disable_users)
		it->kind = IT_DISABLE;
	if (it->kind == IT_DISABLE && it->old.hash == 0)
		batch_item_noop(it); /* disabled already: nothing to do, nothing to commit */
}

struct absent_ctx {
	struct planner *p;
	enum object_type type;
};

/*
 * The exported objects of the refreshed type that the refresh did not
 * report, found without decoding every record: decoding them all took 350 ms
 * of the loop at 100,000 objects (3.5 s at a million), long enough to lose
 * the write lease at the end of every refresh. plan_delete reads the record
 * of each one found and drops those of the other type, so finding too many
 * is harmless and finding too few is not:
 *   - users: every unreported object (the groups among them are the few
 *     that plan_delete drops);
 *   - groups: the unreported ones of the planner's index of exported groups
 *     (p->groups: built from the state by planner_load, kept by every export
 *     and delete of this session, rebuilt when a commit fails).
 */
static int find_absent(void *ctx, const void *key, size_t klen, const void *val, size_t vlen)
{
	struct absent_ctx *a = ctx;
	char anchor[KEY_MAX];

	(void)val;
	(void)vlen;
	if (!engine_key_anchor(key, klen, OBJECT_KEY_OBJECT, anchor, sizeof anchor))
		return 0;
	if (!strmap_has(&a->p->seen[a->type], anchor))
		engine_map_put(&a->p->refresh_deletes[a->type], anchor, (void *)1);
	return 0;
}

static int find_absent_group(void *ctx, const char *anchor, void *v)
{
	struct absent_ctx *a = ctx;

	(void)v;
	if (!strmap_has(&a->p->seen[OBJECT_GROUP], anchor))
		engine_map_put(&a->p->refresh_deletes[OBJECT_GROUP], anchor, (void *)1);
	return 0;
}

struct delete_ctx {
	struct planner *p;
	struct batch *b;
	enum object_type type;
};

static int plan_one_delete(void *ctx, const char *anchor, void *v)
{
	struct delete_ctx *d = ctx;

	plan_delete(d->p, d->b, anchor, d->type);
	return 0;
}

/* End of a refresh: explicit deletes plus, after a present phase, every
 * exported object of that type the refresh did not mention (RFC 4533 §3.4). */
static void plan_refresh_end(struct planner *p, struct batch *b, struct source_event *ev)
{
	struct absent_ctx a = {p, ev->type};
	struct delete_ctx d = {p, b, ev->type};

	if (ev->present_phase && ev->type == OBJECT_GROUP)
		strmap_foreach(&p->groups, find_absent_group, &a);
	else if (ev->present_phase)
		state_foreach(p->state, find_absent, &a);
	strmap_foreach(&p->refresh_deletes[ev->type], plan_one_delete, &d);
	strmap_clear(&p->refresh_deletes[ev->type]);
	strmap_clear(&p->seen[ev->type]);
	p->refreshing[ev->type] = false;
}

static void take_cursor(struct batch *b, struct source_event *ev)
{
	if (ev->cursor == NULL)
		return;
	free(b->cursor);
	b->cursor = ev->cursor;
	b->cursor_len = ev->cursor_len;
	ev->cursor = NULL;
}

/* An unchanged entry still present in a refresh: the scope may have changed
 * under it (an exclusion, group-based scoping). */
static bool present_out_of_scope(struct planner *p, enum object_type t, const char *anchor)
{
	const struct engine_config *cfg = p->cfg;
	struct object_record r;
	bool out = false;

	if ((cfg->n_user_exclude + cfg->n_group_exclude > 0 || p->scope_on) &&
	    engine_record(p->state, OBJECT_KEY_OBJECT, anchor, &r)) {
		out = t == OBJECT_USER ? !scope_has_user(p, r.dn, r.member_key) : !scope_has(p, t, r.dn);
		object_record_free(&r);
	}
	return out;
}

void plan_event(struct planner *p, struct batch *b, struct source_event *ev)
{
	enum object_type t = ev->type == OBJECT_GROUP ? OBJECT_GROUP : OBJECT_USER;

	switch (ev->kind) {
	case SOURCE_ENTRY:
		/* out of scope: deprovision if exported */
		if (t == OBJECT_USER ? !scope_has_user(p, ev->dn, event_member_key(p, ev)) : !scope_has(p, t, ev->dn)) {
			if (p->refreshing[t])
				engine_map_put(&p->refresh_deletes[t], ev->anchor, (void *)1);
			else
				plan_delete(p, b, ev->anchor, t);
			break;
		}
		if (p->refreshing[t])
			engine_map_put(&p->seen[t], ev->anchor, (void *)1);
		plan_entry(p, b, ev);
		break;
	case SOURCE_PRESENT:
		if (p->refreshing[t])
			engine_map_put(present_out_of_scope(p, t, ev->anchor) ? &p->refresh_deletes[t] : &p->seen[t],
				       ev->anchor, (void *)1);
		break;
	case SOURCE_DELETE:
		if (p->refreshing[t])
			engine_map_put(&p->refresh_deletes[t], ev->anchor, (void *)1);
		else
			plan_delete(p, b, ev->anchor, t);
		break;
	case SOURCE_REFRESH_BEGIN:
		/* A new refresh abandons an unfinished one (source.h). */
		p->refreshing[t] = true;
		strmap_clear(&p->seen[t]);
		strmap_clear(&p->refresh_deletes[t]);
		break;
	case SOURCE_REFRESH_END:
		plan_refresh_end(p, b, ev);
		break;
	case SOURCE_CURSOR:
	case SOURCE_NOTICE: /* logged when it arrived (session.c), never queued */
	case SOURCE_STATUS: /* noted when it arrived (session.c) */
		break;
	}
	take_cursor(b, ev);
}

/*
 * canopyctl provision (provision.c): the object read now, planned like a
 * persist-phase change whether a refresh runs or not -- an operator waits
 * for the write, which a refresh would hold until its end. During a refresh
 * the entry still counts as reported (seen), so the refresh's present phase
 * does not take it for gone (not for a dry run: nothing is planned for real).
 */
void plan_provision(struct planner *p, struct batch *b, struct source_event *ev, bool dry_run)
{
	enum object_type t = ev->type == OBJECT_GROUP ? OBJECT_GROUP : OBJECT_USER;

	if (ev->kind != SOURCE_ENTRY || !scope_has(p, t, ev->dn)) {
		plan_delete(p, b, ev->anchor, t);
		return;
	}
	if (p->refreshing[t] && !dry_run)
		engine_map_put(&p->seen[t], ev->anchor, (void *)1);
	plan_entry(p, b, ev);
}

bool plan_members_differ(struct planner *p, const struct item *it)
{
	struct strmap want;
	char norm[DN_MAX];
	size_t n_want = 0, i;
	bool differ = false;

	if (it->type != OBJECT_GROUP || !it->has_old)
		return false;
	strmap_init(&want, NULL);
	for (i = 0; i < it->n_member_dns; i++) {
		const char *anchor;
		scope_dn_norm(it->member_dns[i], norm, sizeof norm);
		anchor = strmap_get(&p->dn_index, norm);
		if (anchor && strcmp(anchor, it->anchor) != 0 && !strmap_has(&want, anchor)) {
			engine_map_put(&want, anchor, (void *)1);
			n_want++;
		}
	}
	/* as target_id_of: a listed member no longer exported costs no request */
	size_t kept = 0;
	for (i = 0; i < it->old.n_members && !differ; i++) {
		if (strmap_has(&want, it->old.members[i]))
			kept++;
		else
			differ = engine_has_key(p->state, OBJECT_KEY_OBJECT, it->old.members[i]);
	}
	differ = differ || kept != n_want;
	strmap_clear(&want);
	return differ;
}

/* ---- group members ----------------------------------------------------------------- */

/* The target id of an exported object: from this batch, else the state
 * (xstrdup'd; NULL: not exported, or on its way out). */
static char *target_id_of(struct planner *p, struct batch *b, const char *anchor)
{
	struct item *it = strmap_get(&b->by_anchor, anchor);
	char key[KEY_MAX], *id;
	const void *v;
	size_t vlen, klen;

	if (it && it->kind == IT_UPSERT && !it->failed && it->rec.target_id)
		return xstrdup(it->rec.target_id);
	if (it && (it->kind == IT_DELETE || it->kind == IT_STAGE))
		return NULL;
	/* only the id: one lookup per member of every group in the batch */
	klen = object_key(OBJECT_KEY_OBJECT, anchor, key, sizeof key);
	if (!state_get(p->state, key, klen, &v, &vlen))
		return NULL;
	return object_record_target_id(v, vlen, &id) == 1 ? id : NULL;
}

/* Is the exported object `anchor` a group? This batch's item, else the index. */
bool plan_is_group(const struct planner *p, const struct batch *b, const char *anchor)
{
	const struct item *it = strmap_get(&b->by_anchor, anchor);

	if (it != NULL && it->type != OBJECT_UNKNOWN)
		return it->type == OBJECT_GROUP;
	return strmap_has(&p->groups, anchor);
}

void plan_direct_free(struct plan_direct *d)
{
	engine_strv_free(d->users, d->n_users);
	engine_strv_free(d->groups, d->n_groups);
	engine_strv_free(d->group_dns, d->n_group_dns);
	engine_strv_free(d->unresolved, d->n_unresolved);
	memset(d, 0, sizeof *d);
}

void plan_resolve(struct planner *p, struct batch *b, const struct item *it, char *const *dns, size_t n_dns,
		  struct plan_direct *d)
{
	struct strmap seen;

	memset(d, 0, sizeof *d);
	strmap_init(&seen, NULL);
	for (size_t i = 0; i < n_dns; i++) {
		const char *anchor = member_lookup(p, dns[i]);
		const struct item *m = anchor ? strmap_get(&b->by_anchor, anchor) : NULL;
		if (m != NULL && !m->failed && !m->cancelled && (m->kind == IT_DELETE || m->kind == IT_STAGE))
			anchor = NULL; /* on its way out of the target: the value waits for whatever takes it next */
		if (anchor == NULL) {
			engine_strv_push(&d->unresolved, &d->n_unresolved, dns[i]);
			continue;
		}
		if (strcmp(anchor, it->anchor) == 0 || strmap_has(&seen, anchor))
			continue;
		strmap_put(&seen, anchor, (void *)1);
		if (plan_is_group(p, b, anchor)) {
			engine_strv_push(&d->groups, &d->n_groups, anchor);
			engine_strv_push(&d->group_dns, &d->n_group_dns, dns[i]);
		} else {
			engine_strv_push(&d->users, &d->n_users, anchor);
		}
	}
	strmap_clear(&seen);
}

/* The member ids to add and remove so that the group's members in the target
 * become `desired` (anchors, no duplicates; `want` holds them as a set), and
 * the record after the change (add_anchors). */
void plan_member_diff(struct planner *p, struct batch *b, struct item *it, char **desired, size_t n_desired,
		      const struct strmap *want)
{
	char **keep = NULL, *id;
	size_t n_keep = 0, i;
	struct strmap had; /* it->rec.members as a set */

	/* Members in doubt (an earlier leader's uncommitted member writes may
	 * have landed): the record says nothing sure about the target, so send
	 * every member and let the target drop the others (exec.c). */
	bool exact = it->has_old && it->old.members_in_doubt;

	strmap_init(&had, NULL);
	for (i = 0; i < it->rec.n_members && !exact; i++)
		strmap_put(&had, it->rec.members[i], (void *)1);
	batch_item_clear_members(it);
	it->members_planned = true;
	it->members_exact = exact;
	for (i = 0; i < n_desired; i++) {
		if (strmap_has(&had, desired[i]))
			continue;
		if ((id = target_id_of(p, b, desired[i])) == NULL)
			continue; /* not exported (failed or out of scope): not a member yet */
		engine_strv_push(&it->add_ids, &it->n_add_ids, id);
		engine_strv_push(&it->add_anchors, &it->n_add_anchors, desired[i]);
		free(id);
	}
	for (i = 0; i < it->rec.n_members; i++) {
		if (strmap_has(want, it->rec.members[i]))
			continue;
		/* no id: the member object is gone from the target, and with it
		 * its membership */
		if ((id = target_id_of(p, b, it->rec.members[i])) == NULL)
			continue;
		engine_strv_push(&it->rm_ids, &it->n_rm_ids, id);
		engine_strv_push(&it->rm_anchors, &it->n_rm_anchors, it->rec.members[i]);
		free(id);
	}
	/* The record after the change is done: desired members that have ids. */
	for (i = 0; i < it->rec.n_members && !exact; i++) /* exact: all are in add_anchors */
		if (strmap_has(want, it->rec.members[i]))
			engine_strv_push(&keep, &n_keep, it->rec.members[i]);
	for (i = 0; i < it->n_add_anchors; i++)
		engine_strv_push(&keep, &n_keep, it->add_anchors[i]);
	it->add_new = it->add_anchors; /* still matching add_ids */
	it->n_add_new = it->n_add_anchors;
	it->add_anchors = keep;
	it->n_add_anchors = n_keep;
	strmap_clear(&had);
}

/* A group's desired members from `dns`, and the changes against its record:
 * replace -- the DNs are the whole membership (an upsert); otherwise they
 * only add to what is exported (a group waiting for members). Member groups
 * are members too, unless target.nested_groups is skip (then they are noted
 * in nested_skipped, for the log); flatten plans in nested.c.
 *
 * Linear in the group's size: `desired` and the record's members are also
 * kept in hash sets. This runs on the event loop, and a quadratic membership
 * diff of a 5,000-member group (tens of millions of strcmp) stalled the loop
 * long enough for the followers to elect someone else. */
static void plan_group_members(struct planner *p, struct batch *b, struct item *it, char *const *dns,
			       size_t n_dns, bool replace)
{
	bool skip = p->cfg->nested_groups == ENGINE_NESTED_SKIP;
	struct plan_direct d;
	char **desired = NULL;
	size_t n_desired = 0, i;
	struct strmap want; /* desired, as a set */

	plan_resolve(p, b, it, dns, n_dns, &d);
	strmap_init(&want, NULL);
	for (i = 0; i < d.n_users; i++) {
		engine_strv_push(&desired, &n_desired, d.users[i]);
		strmap_put(&want, d.users[i], (void *)1);
	}
	for (i = 0; i < d.n_groups && !skip; i++) {
		engine_strv_push(&desired, &n_desired, d.groups[i]);
		strmap_put(&want, d.groups[i], (void *)1);
	}
	if (!replace) /* keep what is exported (but what it names no more), add what resolved now */
		for (i = 0; i < it->rec.n_members; i++)
			if (!strmap_has(&want, it->rec.members[i]) &&
			    !engine_strv_has(it->drop, it->n_drop, it->rec.members[i])) {
				engine_strv_push(&desired, &n_desired, it->rec.members[i]);
				strmap_put(&want, it->rec.members[i], (void *)1);
			}
	plan_member_diff(p, b, it, desired, n_desired, &want);
	for (i = 0; i < d.n_groups && skip; i++)
		engine_strv_push(&it->nested_skipped, &it->n_nested_skipped, d.group_dns[i]);
	engine_strv_free(it->rec.unresolved, it->rec.n_unresolved);
	it->rec.unresolved = d.unresolved;
	it->rec.n_unresolved = d.n_unresolved;
	d.unresolved = NULL;
	d.n_unresolved = 0;
	plan_direct_free(&d);
	engine_strv_free(desired, n_desired);
	strmap_clear(&want);
}

struct waiting_ctx {
	struct planner *p;
	struct batch *b;
};

/* A group outside the batch that waits for a member exported now. */
static int add_waiting_group(void *ctx, const char *group, void *v)
{
	struct waiting_ctx *w = ctx;
	struct item *it;

	if (strmap_has(&w->b->by_anchor, group))
		return 0; /* in the batch already: handled with its own members */
	it = batch_add(w->p, w->b, IT_MEMBERS, OBJECT_GROUP, group);
	if (!it->has_old) {
		batch_item_noop(it);
		return 0;
	}
	it->dn = it->old.dn ? xstrdup(it->old.dn) : NULL;
	object_record_copy(&it->rec, &it->old);
	return 0;
}

/* ---- objects created anew ------------------------------------------------------------ */

struct recreated_ctx {
	struct planner *p;
	struct batch *b;
	struct strmap *again; /* anchor -> its upsert item */
};

static bool names_one_of(const struct strmap *again, const void *val, size_t vlen);

/* A group record that lists objects created anew: they are members again. */
static int readd_to_group(void *ctx, const void *key, size_t klen, const void *val, size_t vlen)
{
	struct recreated_ctx *c = ctx;
	char anchor[KEY_MAX], err[64];
	struct object_record r;

	if (!engine_key_anchor(key, klen, OBJECT_KEY_OBJECT, anchor, sizeof anchor) ||
	    !names_one_of(c->again, val, vlen) || object_record_decode(val, vlen, &r, err, sizeof err) != 0)
		return 0;
	for (size_t i = 0; r.type == OBJECT_GROUP && i < r.n_members; i++) {
		struct item *m = strmap_get(c->again, r.members[i]), *g;
		if (m == NULL)
			continue;
		if ((g = strmap_get(&c->b->by_anchor, anchor)) == NULL) {
			g = batch_add(c->p, c->b, IT_MEMBERS, OBJECT_GROUP, anchor);
			if (!g->has_old) {
				batch_item_noop(g);
				continue;
			}
			g->dn = g->old.dn ? xstrdup(g->old.dn) : NULL;
			object_record_copy(&g->rec, &g->old);
		}
		if (g->failed || g->cancelled || g->type != OBJECT_GROUP)
			continue;
		/* not a member in the target any more: planned as a new one */
		engine_strv_remove(g->rec.members, &g->rec.n_members, m->anchor);
		const char *ref = planner_member_ref(c->p, m->type, m->dn, m->member_key);
		if (g->kind == IT_MEMBERS && ref) /* its DN (or key) resolves to the new id */
			engine_strv_push(&g->rec.unresolved, &g->rec.n_unresolved, ref);
	}
	object_record_free(&r);
	return 0;
}

/* Whether a record's bytes mention one of the anchors (a cheap filter before
 * decoding every record of the state). */
struct mention_ctx {
	const void *val;
	size_t vlen;
	bool *hit;
};

static int mentions(void *ctx, const char *anchor, void *v)
{
	const struct mention_ctx *c = ctx;

	(void)v;
	if (memmem(c->val, c->vlen, anchor, strlen(anchor)) != NULL) {
		*c->hit = true;
		return 1;
	}
	return 0;
}

static bool names_one_of(const struct strmap *again, const void *val, size_t vlen)
{
	bool hit = false;
	struct mention_ctx c = {val, vlen, &hit};

	strmap_foreach(again, mentions, &c);
	return hit;
}

/* Objects the target created anew although they had been exported (gone from
 * the target: an update answered 404 -- e.g. a DELETE that landed while its
 * batch never committed, the chaos scenario late-create, round 2). The
 * target dropped them from every group when they went (RFC 7643 §4.2: a
 * group's members are resources that exist), but the groups' records still
 * list them: without this, those memberships were lost until each group
 * changed. Rare, so a scan of the state is fine. */
static void plan_recreated_members(struct planner *p, struct batch *b)
{
	struct strmap again;
	struct recreated_ctx c = {p, b, &again};

	strmap_init(&again, NULL);
	for (size_t i = 0; i < b->n; i++) {
		struct item *it = b->items[i];
		if (it->kind == IT_UPSERT && !it->failed && !it->cancelled && it->upsert_needed && it->op.created &&
		    it->has_old && it->old.target_id != NULL)
			strmap_put(&again, it->anchor, it);
	}
	if (again.count > 0)
		state_foreach(p->state, readd_to_group, &c);
	strmap_clear(&again);
}

/* ---- members renamed away, or gone ---------------------------------------------------- */

/* A group names its members by a value -- a DN, or with member_value a user
 * attribute such as uid -- and a member is whatever that value names now
 * (RFC 4519 §2.17: member holds distinguished names; RFC 2307 memberUid holds
 * names). Two changes of a member leave the group's value naming nothing
 * while the group itself does not change (no referential integrity: 389 DS's
 * plugin is off by default, OpenLDAP's refint overlay is optional):
 *   - renamed or moved within the scope: it is no longer a member -- removed
 *     from the group in the target;
 *   - deleted, or out of the scope (deleted in the target): the target drops
 *     the membership with the object (RFC 7643 §4.2), and the record must
 *     too -- else an object that comes back under that value (moved out of
 *     scope and back, created anew) looks like a member already and is never
 *     added (sync_member_renamed_away_test; chaos late-create, round 2).
 * Either way the group's record keeps the old value as an unresolved member:
 * whatever takes that name later is a member. A directory with referential
 * integrity rewrites the group too; that change replans the group in full (an
 * upsert) and puts the member back if it was meant. */
struct away_ctx {
	struct planner *p;
	struct batch *b;
	struct strmap *away; /* anchor -> its old reference (borrowed from its item) */
};

static void drop_away(struct away_ctx *c, const char *anchor, const struct object_record *r)
{
	struct item *g = strmap_get(&c->b->by_anchor, anchor);

	/* In the batch as an upsert: planned from the source's values, which
	 * say everything; on its way out or failed: nothing to fix. */
	if (g != NULL && (g->kind != IT_MEMBERS || g->failed || g->cancelled || g->member_decision))
		return;
	for (size_t i = 0; i < r->n_members + r->n_direct_users + r->n_nested; i++) {
		const char *m = i < r->n_members ? r->members[i]
				: i < r->n_members + r->n_direct_users ? r->direct_users[i - r->n_members]
								      : r->nested[i - r->n_members - r->n_direct_users];
		const char *old_ref = strmap_get(c->away, m);
		if (old_ref == NULL)
			continue;
		if (g == NULL) {
			g = batch_add(c->p, c->b, IT_MEMBERS, OBJECT_GROUP, anchor);
			if (!g->has_old) {
				batch_item_noop(g);
				return;
			}
			g->dn = g->old.dn ? xstrdup(g->old.dn) : NULL;
			object_record_copy(&g->rec, &g->old);
		}
		if (!engine_strv_has(g->drop, g->n_drop, m))
			engine_strv_push(&g->drop, &g->n_drop, m);
		if (!engine_strv_has(g->rec.unresolved, g->rec.n_unresolved, old_ref)) {
			engine_strv_push(&g->rec.unresolved, &g->rec.n_unresolved, old_ref);
			planner_index_unresolved(c->p, anchor, (char *const *)&old_ref, 1);
		}
	}
}

/* Only the exported groups' records, each looked at only if its bytes
 * mention one of the anchors: a batch that renames or deletes members costs
 * a pass over the groups, not over every object. */
static int scan_group(void *ctx, const char *anchor, void *v)
{
	struct away_ctx *c = ctx;
	char key[KEY_MAX], err[64];
	const void *val;
	size_t vlen, klen = object_key(OBJECT_KEY_OBJECT, anchor, key, sizeof key);
	struct object_record r;

	(void)v;
	if (strmap_has(c->away, anchor) || !state_get(c->p->state, key, klen, &val, &vlen) ||
	    !names_one_of(c->away, val, vlen) || object_record_decode(val, vlen, &r, err, sizeof err) != 0)
		return 0;
	if (r.type == OBJECT_GROUP)
		drop_away(c, anchor, &r);
	object_record_free(&r);
	return 0;
}

/* Runs after finish_upserts moved the DN (and key) indexes to the new names,
 * so an old reference resolves to nothing -- or to whatever took it in this
 * batch. */
static void plan_members_away(struct planner *p, struct batch *b)
{
	struct strmap away;
	struct away_ctx c = {p, b, &away};
	char was[DN_MAX], now[DN_MAX];

	strmap_init(&away, NULL);
	for (size_t i = 0; i < b->n; i++) {
		struct item *it = b->items[i];
		const char *old_ref, *ref;
		if ((it->kind != IT_UPSERT && it->kind != IT_DELETE) || it->failed || it->cancelled || !it->has_old)
			continue;
		old_ref = planner_member_ref(p, it->old.type, it->old.dn, it->old.member_key);
		if (old_ref == NULL)
			continue;
		if (it->kind == IT_UPSERT) {
			if (p->member_links)
				continue; /* the groups name it by its new DN already */
			ref = planner_member_ref(p, it->type, it->dn, it->member_key);
			planner_member_norm(p, old_ref, was, sizeof was);
			if (ref != NULL) {
				planner_member_norm(p, ref, now, sizeof now);
				if (strcmp(was, now) == 0)
					continue;
			}
		}
		strmap_put(&away, it->anchor, (void *)old_ref);
	}
	if (away.count > 0)
		strmap_foreach(&p->groups, scan_group, &c);
	strmap_clear(&away);
}

void plan_members(struct planner *p, struct batch *b)
{
	struct waiting_ctx w = {p, b};
	char norm[DN_MAX];
	size_t i, n;

	plan_recreated_members(p, b);
	plan_members_away(p, b);
	n = b->n;
	for (i = 0; i < n; i++) {
		struct item *it = b->items[i];
		struct strmap *g;
		const char *ref = planner_member_ref(p, it->type, it->dn, it->member_key);
		if (it->kind != IT_UPSERT || it->failed || it->cancelled || !ref)
			continue;
		planner_member_norm(p, ref, norm, sizeof norm);
		if ((g = strmap_get(&p->unresolved, norm)) != NULL)
			strmap_foreach(g, add_waiting_group, &w);
	}
	if (p->cfg->nested_groups == ENGINE_NESTED_FLATTEN) {
		nested_plan_flatten(p, b);
		plan_managers(p, b);
		return;
	}
	for (i = 0; i < b->n; i++) {
		struct item *it = b->items[i];
		if (it->type != OBJECT_GROUP || it->failed || it->cancelled || it->member_decision)
			continue;
		if (it->kind == IT_UPSERT)
			plan_group_members(p, b, it, it->member_dns, it->n_member_dns, true);
		else if (it->kind == IT_MEMBERS)
			plan_group_members(p, b, it, it->rec.unresolved, it->rec.n_unresolved, false);
	}
	plan_managers(p, b);
}

/* ---- the retry set --------------------------------------------------------------- */

struct due_ctx {
	struct planner *p;
	struct batch *b;
	uint64_t now;
	size_t max;
	char **stale;
	size_t n_stale, max_stale;
};

/* Plan one object of the retry set back into a batch, as it was meant. */
static int plan_due(void *ctx, const char *anchor, void *v)
{
	struct due_ctx *d = ctx;
	struct retry_record r;
	struct item *it;

	if ((uint64_t)(uintptr_t)v > d->now || strmap_has(&d->b->by_anchor, anchor))
		return 0;
	if (d->b->n >= d->max)
		return 1;
	if (!engine_retry_record(d->p->state, OBJECT_KEY_RETRY, anchor, &r)) {
		/* its "r:" is gone (a resync, a newer change) */
		if (d->n_stale < d->max_stale)
			d->stale[d->n_stale++] = xstrdup(anchor);
		return 0;
	}
	switch (r.kind) {
	case RETRY_UPSERT:
		if (r.resource == NULL) { /* a group's members or a user's manager only */
			it = batch_add(d->p, d->b, IT_MEMBERS, r.type == OBJECT_USER ? OBJECT_USER : OBJECT_GROUP,
				       anchor);
			if (!it->has_old) {
				batch_item_noop(it); /* nothing exported to fix: drop it */
				break;
			}
			it->dn = it->old.dn ? xstrdup(it->old.dn) : NULL;
			object_record_copy(&it->rec, &it->old);
			break;
		}
		it = batch_add(d->p, d->b, IT_UPSERT, r.type, anchor);
		it->dn = r.dn ? xstrdup(r.dn) : NULL;
		plan_upsert(it, json_incref(r.resource), r.hash);
		it->member_dns = r.member_dns;
		it->n_member_dns = r.n_member_dns;
		r.member_dns = NULL;
		r.n_member_dns = 0;
		it->manager_dn = r.manager_dn;
		r.manager_dn = NULL;
		it->member_key = r.member_key;
		r.member_key = NULL;
		break;
	case RETRY_DELETE:
	case RETRY_DISABLE:
		it = batch_add(d->p, d->b, r.kind == RETRY_DELETE ? IT_DELETE : IT_DISABLE, r.type, anchor);
		if (!it->has_old) {
			batch_item_noop(it); /* not exported any more: nothing to do */
			break;
		}
		it->type = it->old.type;
		it->dn = it->old.dn ? xstrdup(it->old.dn) : NULL;
		break;
	case RETRY_REREAD:
		break;
	}
	retry_record_free(&r);
	return 0;
}

size_t plan_retries(struct planner *p, struct batch *b, const struct strmap *due, uint64_t now, size_t max,
		    char **stale, size_t max_stale)
{
	struct due_ctx d = {.p = p, .b = b, .now = now, .max = max, .stale = stale, .max_stale = max_stale};

	strmap_foreach(due, plan_due, &d);
	return d.n_stale;
}

/* ---- decisions on staged deletes -------------------------------------------------- */

struct decision_ctx {
	struct planner *p;
	struct batch *b;
	bool approve;
};

/* A staged member removal ("m:<group>#<member>"): approve removes the member
 * from the group in the target; reject keeps it. One item per group. */
static void plan_staged_member(struct decision_ctx *c, const char *both)
{
	char group[KEY_MAX], *member, *id;
	struct item *it;

	snprintf(group, sizeof group, "%s", both);
	member = strchr(group, '#');
	if (member == NULL)
		return;
	*member++ = '\0';
	it = strmap_get(&c->b->by_anchor, group);
	if (it == NULL) {
		it = batch_add(c->p, c->b, IT_MEMBERS, OBJECT_GROUP, group);
		it->member_decision = true;
		if (!it->has_old) {
			batch_item_noop(it); /* the group is gone: only the key is dropped */
		} else {
			it->dn = it->old.dn ? xstrdup(it->old.dn) : NULL;
			object_record_copy(&it->rec, &it->old);
			it->members_planned = true;
			it->add_anchors = engine_strv_dup(it->rec.members, it->rec.n_members);
			it->n_add_anchors = it->rec.n_members;
		}
	}
	engine_strv_push(&it->held, &it->n_held, member);
	if (!c->approve || it->failed || !it->member_decision)
		return; /* reject: it stays a member */
	if ((id = target_id_of(c->p, c->b, member)) != NULL) {
		engine_strv_push(&it->rm_ids, &it->n_rm_ids, id);
		engine_strv_push(&it->rm_anchors, &it->n_rm_anchors, member);
	}
	free(id);
	engine_strv_remove(it->add_anchors, &it->n_add_anchors, member);
}

static int plan_staged(void *ctx, const void *key, size_t klen, const void *val, size_t vlen)
{
	struct decision_ctx *c = ctx;
	char anchor[KEY_MAX], err[64];
	struct item *it;

	if (engine_key_anchor(key, klen, OBJECT_KEY_STAGED_MEMBER, anchor, sizeof anchor)) {
		plan_staged_member(c, anchor);
		return 0;
	}
	if (!engine_key_anchor(key, klen, OBJECT_KEY_STAGED, anchor, sizeof anchor))
		return 0;
	it = batch_add(c->p, c->b, c->approve ? IT_DELETE : IT_UNSTAGE, OBJECT_UNKNOWN, anchor);
	if (!it->has_old) /* the staged record carries what the object table had */
		it->has_old = object_record_decode(val, vlen, &it->old, err, sizeof err) == 0;
	if (it->has_old) {
		it->type = it->old.type;
		it->dn = it->old.dn ? xstrdup(it->old.dn) : NULL;
		if (it->kind == IT_DELETE && it->type == OBJECT_USER && c->p->cfg->disable_users)
			it->kind = IT_DISABLE;
	}
	return 0;
}

void plan_decision(struct planner *p, struct batch *b, bool approve)
{
	struct decision_ctx c = {p, b, approve};

	state_foreach(p->state, plan_staged, &c);
}

/* ---- in-doubt repair ------------------------------------------------------------------ */

static int plan_one_repair(void *ctx, const char *anchor, void *v)
{
	struct waiting_ctx *w = ctx;

	/* v: 1 + the type its intent named (repair.c) */
	batch_add(w->p, w->b, IT_REPAIR, (enum object_type)((uintptr_t)v - 1), anchor);
	return 0;
}

void plan_repair(struct planner *p, struct batch *b, const struct strmap *in_doubt)
{
	struct waiting_ctx w = {p, b};

	strmap_foreach(in_doubt, plan_one_repair, &w);
}
