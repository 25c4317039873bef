/*
 * sync/source/event_ring.h -- the bounded ring that carries a source's events
 * from its worker thread to the loop thread.
 *
 * Every source reads its directory on a worker thread and delivers events on
 * the loop (source.h); the ring between them is bounded so that a slow
 * target slows the reader instead of buffering the directory in memory. The
 * ring itself does no locking: its owner holds its own mutex around every
 * call, waits on its own condition variable while source_ring_full(), and
 * wakes the loop (uv_async) after a put -- those stay with the source,
 * which knows its stop flag.
 */
#ifndef CANOPY_SYNC_SOURCE_EVENT_RING_H
#define CANOPY_SYNC_SOURCE_EVENT_RING_H

#include <stdbool.h>
#include <stddef.h>

#include "sync/source/source.h"

struct source_ring {
	struct source_event **ev;
	size_t cap, head, len;
	size_t peak; /* the most events it held at once (metrics, tests) */
};

/* An empty ring of `cap` (> 0) events. Allocation failure aborts (xalloc.h). */
void source_ring_init(struct source_ring *r, size_t cap);
/* Free every event still in the ring, and the ring. */
void source_ring_free(struct source_ring *r);

bool source_ring_full(const struct source_ring *r);
/* Append `ev` (the ring owns it then); the caller checked !full. */
void source_ring_put(struct source_ring *r, struct source_event *ev);
/* The oldest event (the caller owns it then), or NULL when empty. */
struct source_event *source_ring_take(struct source_ring *r);
/* Free every event in the ring; it stays usable. */
void source_ring_clear(struct source_ring *r);

#endif /* CANOPY_SYNC_SOURCE_EVENT_RING_H */
