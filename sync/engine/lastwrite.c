/*
 * sync/engine/lastwrite.c -- what this node last wrote for an object (see
 * lastwrite.h).
 *
 * A hash map of entries plus a ring of (anchor, seq) in put order. A put
 * appends to the ring; when the ring is full its oldest slot is dropped
 * first, and the entry it names is freed only if that slot is the entry's
 * latest put (a re-put leaves a stale slot behind). So each put frees at
 * most one entry: the cost of a put does not depend on how full the cache
 * is, and no turn of the event loop frees thousands of resources.
 */
#include <assert.h>
#include <stdlib.h>
#include <string.h>

#include "common/xalloc.h"
#include "sync/engine/lastwrite.h"

struct lastwrite_slot {
	char *anchor;
	uint64_t seq;
};

static void entry_free(void *v)
{
	struct lastwrite_entry *x = v;

	json_decref(x->attrs);
	free(x);
}

void lastwrite_init(struct lastwrite *w, size_t cap)
{
	assert(cap > 0);
	memset(w, 0, sizeof *w);
	strmap_init(&w->map, entry_free);
	w->cap = cap;
	w->ring = xcalloc(cap, sizeof *w->ring);
}

void lastwrite_close(struct lastwrite *w)
{
	for (size_t i = 0; i < w->n; i++)
		free(w->ring[(w->head + i) % w->cap].anchor);
	free(w->ring);
	strmap_clear(&w->map);
	memset(w, 0, sizeof *w);
}

/* Drop the oldest slot, and its entry if the slot is that entry's latest put. */
static void drop_oldest(struct lastwrite *w)
{
	struct lastwrite_slot *sl = &w->ring[w->head];
	const struct lastwrite_entry *x = strmap_get(&w->map, sl->anchor);

	if (x != NULL && x->seq == sl->seq)
		strmap_del(&w->map, sl->anchor);
	free(sl->anchor);
	sl->anchor = NULL;
	w->head = (w->head + 1) % w->cap;
	w->n--;
}

void lastwrite_put(struct lastwrite *w, const char *anchor, uint64_t hash, const json_t *attrs)
{
	struct lastwrite_entry *x = xmalloc(sizeof *x);

	x->hash = hash;
	x->attrs = xcheck(json_deep_copy(attrs));
	x->seq = ++w->seq;
	(void)strmap_put(&w->map, anchor, x); /* frees the entry it replaces */
	if (w->n == w->cap)
		drop_oldest(w);
	w->ring[(w->head + w->n) % w->cap] = (struct lastwrite_slot){xstrdup(anchor), x->seq};
	w->n++;
}

const json_t *lastwrite_get(const struct lastwrite *w, const char *anchor, uint64_t hash)
{
	const struct lastwrite_entry *x = strmap_get(&w->map, anchor);

	return x != NULL && x->hash == hash ? x->attrs : NULL;
}

void lastwrite_del(struct lastwrite *w, const char *anchor)
{
	/* its slot stays in the ring, stale: dropped in turn */
	strmap_del(&w->map, anchor);
}

size_t lastwrite_count(const struct lastwrite *w)
{
	return w->map.count;
}
