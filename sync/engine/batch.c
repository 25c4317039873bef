/*
 * sync/engine/batch.c -- items and batches, and the small helpers every part
 * of the engine uses to read the replicated state.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "sync/engine/internal.h"

/* ---- reading the state ------------------------------------------------------ */

bool engine_record(const struct state *st, char prefix, const char *anchor, struct object_record *r)
{
	char key[KEY_MAX], err[128];
	const void *v;
	size_t vlen, klen = object_key(prefix, anchor, key, sizeof key);

	if (!state_get(st, key, klen, &v, &vlen))
		return false;
	return object_record_decode(v, vlen, r, err, sizeof err) == 0;
}

bool engine_retry_record(const struct state *st, char prefix, const char *anchor, struct retry_record *r)
{
	char key[KEY_MAX], err[128];
	const void *v;
	size_t vlen, klen = object_key(prefix, anchor, key, sizeof key);

	if (!state_get(st, key, klen, &v, &vlen))
		return false;
	return retry_record_decode(v, vlen, r, err, sizeof err) == 0;
}

bool engine_has_key(const struct state *st, char prefix, const char *anchor)
{
	char key[KEY_MAX];
	const void *v;
	size_t vlen, klen = object_key(prefix, anchor, key, sizeof key);

	return state_get(st, key, klen, &v, &vlen);
}

bool engine_key_anchor(const void *key, size_t klen, char prefix, char *buf, size_t size)
{
	const char *k = key;

	if (klen < 3 || klen >= size || k[0] != prefix || k[1] != ':')
		return false;
	memcpy(buf, k + 2, klen - 2);
	buf[klen - 2] = '\0';
	return true;
}

uint64_t engine_staged_count(const struct state *st)
{
	return object_staged_count(st);
}

uint64_t engine_object_count(const struct state *st)
{
	return state_count(st, STATE_NS_OBJECT);
}

void engine_map_put(struct strmap *m, const char *key, void *value)
{
	(void)strmap_put(m, key, value); /* aborts on out of memory (xalloc.h) */
}

/* ---- string vectors (NULL-terminated, with their count) -------------------- */

char **engine_strv_dup(char *const *v, size_t n)
{
	char **d = xcalloc(n + 1, sizeof *d);

	for (size_t i = 0; i < n; i++)
		d[i] = xstrdup(v[i]);
	return d;
}

void engine_strv_free(char **v, size_t n)
{
	if (v == NULL)
		return;
	for (size_t i = 0; i < n; i++)
		free(v[i]);
	free(v);
}

void engine_strv_push(char ***v, size_t *n, const char *s)
{
	char **nv = xrealloc(*v, (*n + 2) * sizeof **v);

	nv[*n] = xstrdup(s);
	nv[*n + 1] = NULL;
	*v = nv;
	(*n)++;
}

void engine_strv_remove(char **v, size_t *n, const char *s)
{
	for (size_t i = 0; i < *n; i++)
		if (strcmp(v[i], s) == 0) {
			free(v[i]);
			v[i] = v[--*n];
			v[*n] = NULL;
			return;
		}
}

bool engine_strv_has(char *const *v, size_t n, const char *s)
{
	for (size_t i = 0; i < n; i++)
		if (strcmp(v[i], s) == 0)
			return true;
	return false;
}

/* ---- items and batches ------------------------------------------------------- */

void batch_item_clear_members(struct item *it)
{
	engine_strv_free(it->add_ids, it->n_add_ids);
	engine_strv_free(it->rm_ids, it->n_rm_ids);
	engine_strv_free(it->add_anchors, it->n_add_anchors);
	engine_strv_free(it->rm_anchors, it->n_rm_anchors);
	engine_strv_free(it->add_new, it->n_add_new);
	engine_strv_free(it->refused_now, it->n_refused_now);
	engine_strv_free(it->nested_skipped, it->n_nested_skipped);
	bisect_free(it);
	it->add_ids = it->rm_ids = it->add_anchors = it->rm_anchors = NULL;
	it->add_new = it->refused_now = it->nested_skipped = NULL;
	it->n_add_ids = it->n_rm_ids = it->n_add_anchors = it->n_rm_anchors = 0;
	it->n_add_new = it->n_refused_now = it->n_nested_skipped = 0;
	it->members_planned = false;
	it->members_exact = false;
}

static void item_free(struct item *it)
{
	free(it->anchor);
	free(it->dn);
	json_decref(it->attrs);
	engine_strv_free(it->member_dns, it->n_member_dns);
	object_record_free(&it->old);
	object_record_free(&it->rec);
	batch_item_clear_members(it);
	engine_strv_free(it->held, it->n_held);
	engine_strv_free(it->drop, it->n_drop);
	free(it->manager_dn);
	free(it->member_key);
	free(it->put_manager);
	free(it->put_manager_id);
	manager_clear(it);
	unique_free(it);
	free(it);
}

/* Drop what an item planned, keeping its identity and the record it started from. */
static void item_reset(struct item *it)
{
	free(it->dn);
	json_decref(it->attrs);
	engine_strv_free(it->member_dns, it->n_member_dns);
	object_record_free(&it->rec);
	batch_item_clear_members(it);
	engine_strv_free(it->held, it->n_held);
	engine_strv_free(it->drop, it->n_drop);
	it->drop = NULL;
	it->n_drop = 0;
	free(it->manager_dn);
	free(it->put_manager);
	free(it->put_manager_id);
	free(it->member_key);
	it->manager_dn = it->put_manager = it->put_manager_id = it->member_key = NULL;
	manager_clear(it);
	unique_free(it);
	it->dn = NULL;
	it->attrs = NULL;
	it->member_dns = it->held = NULL;
	it->n_member_dns = it->n_held = 0;
	it->write_rec = it->upsert_needed = it->failed = it->cancelled = false;
	it->retry = it->refused = it->noop = it->flat = false;
	memset(&it->op, 0, sizeof it->op);
}

void batch_item_noop(struct item *it)
{
	it->failed = true;
	it->noop = true;
}

json_t *engine_json_text(const char *s)
{
	json_t *v = s ? json_string(s) : NULL;

	return v ? v : json_null();
}

struct batch *batch_new(enum batch_kind kind, uint64_t cycle)
{
	struct batch *b = xcalloc(1, sizeof *b);

	strmap_init(&b->by_anchor, NULL);
	b->kind = kind;
	b->cycle = cycle;
	return b;
}

void batch_free(struct batch *b)
{
	if (b == NULL)
		return;
	if (b->prov != NULL)
		provision_batch_done(b); /* reads the items: before they go */
	for (size_t i = 0; i < b->n; i++)
		item_free(b->items[i]);
	free(b->items);
	for (size_t i = 0; i < b->n_skips; i++) {
		free(b->skips[i].anchor);
		free(b->skips[i].dn);
		free(b->skips[i].error);
	}
	free(b->skips);
	strmap_clear(&b->by_anchor);
	free(b->cursor);
	free(b->ev_received_ns);
	engine_strv_free(b->pre_intents, b->n_pre_intents);
	free(b);
}

struct item *batch_add(struct planner *p, struct batch *b, enum item_kind kind, enum object_type type,
		       const char *anchor)
{
	struct item *it = strmap_get(&b->by_anchor, anchor);

	if (it != NULL) {
		/* A later event for the same object supersedes the earlier one. */
		item_reset(it);
	} else {
		if (b->n == b->cap) {
			b->cap = b->cap ? b->cap * 2 : 64;
			b->items = xrealloc(b->items, b->cap * sizeof *b->items);
		}
		it = xcalloc(1, sizeof *it);
		it->anchor = xstrdup(anchor);
		engine_map_put(&b->by_anchor, it->anchor, it);
		b->items[b->n++] = it;
		it->has_old = engine_record(p->state, OBJECT_KEY_OBJECT, anchor, &it->old);
	}
	it->kind = kind;
	it->type = type;
	it->change = ++*p->change_seq;
	return it;
}

uint64_t batch_stage_done(struct batch *b, enum export_stage s, uint64_t since)
{
	uint64_t now = uv_hrtime();

	if (since != 0 && now >= since)
		export_stage_observe(s, now - since, b->n_ev);
	return now;
}
