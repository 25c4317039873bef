/* sync/source/event_ring.c -- see event_ring.h. */
#include "sync/source/event_ring.h"

#include <assert.h>
#include <stdlib.h>

#include "common/xalloc.h"

void source_ring_init(struct source_ring *r, size_t cap)
{
	assert(cap > 0);
	r->ev = xcalloc(cap, sizeof *r->ev);
	r->cap = cap;
	r->head = r->len = r->peak = 0;
}

void source_ring_clear(struct source_ring *r)
{
	struct source_event *ev;

	while ((ev = source_ring_take(r)) != NULL)
		source_event_free(ev);
}

void source_ring_free(struct source_ring *r)
{
	if (r->ev == NULL)
		return;
	source_ring_clear(r);
	free(r->ev);
	r->ev = NULL;
}

bool source_ring_full(const struct source_ring *r)
{
	return r->len == r->cap;
}

void source_ring_put(struct source_ring *r, struct source_event *ev)
{
	assert(r->len < r->cap);
	r->ev[(r->head + r->len) % r->cap] = ev;
	r->len++;
	if (r->len > r->peak)
		r->peak = r->len;
}

struct source_event *source_ring_take(struct source_ring *r)
{
	struct source_event *ev;

	if (r->len == 0)
		return NULL;
	ev = r->ev[r->head];
	r->head = (r->head + 1) % r->cap;
	r->len--;
	return ev;
}
