/*
 * sync/engine/lastwrite.h -- what this node last wrote for an object.
 *
 * The provisioning log names an update's modified attributes (old -> new),
 * and `canopyctl plan` names what a change would modify; both need the
 * attributes as last written. The replicated state keeps only a content
 * hash per object (a million objects' attributes would not fit in a few
 * hundred bytes each), so each node keeps the attributes of the objects it
 * wrote most recently, here, locally, and trusts an entry only while the
 * replicated record still has the hash it was written with (another leader
 * may have written since).
 *
 * Bounded: at most `cap` objects; the one written longest ago goes first,
 * one at a time. (It used to be emptied all at once when full: freeing
 * 20,000 deep-copied resources in one turn of the event loop took 250 ms,
 * long enough for the write lease to run out with requests in flight.)
 */
#ifndef CANOPY_SYNC_ENGINE_LASTWRITE_H
#define CANOPY_SYNC_ENGINE_LASTWRITE_H

#include <jansson.h>
#include <stddef.h>
#include <stdint.h>

#include "sync/strmap.h"

struct lastwrite_slot;

struct lastwrite {
	struct strmap map;           /* anchor -> struct lastwrite_entry */
	struct lastwrite_slot *ring; /* the puts in order, oldest at `head` */
	size_t cap, head, n;
	uint64_t seq;                /* of the latest put */
};

struct lastwrite_entry {
	uint64_t hash;  /* the content hash it was written with */
	json_t *attrs;  /* owned */
	uint64_t seq;   /* its put: an older slot in the ring naming it is stale */
};

void lastwrite_init(struct lastwrite *w, size_t cap);
void lastwrite_close(struct lastwrite *w);

/* Remember a deep copy of `attrs` as written with `hash` (out of memory
 * aborts, common/xalloc.h). When `cap` objects are held, the object put
 * longest ago is forgotten. */
void lastwrite_put(struct lastwrite *w, const char *anchor, uint64_t hash, const json_t *attrs);

/* The attributes written for `anchor` with `hash`, or NULL (not known, or
 * written with another hash). Borrowed until the next put or del. */
const json_t *lastwrite_get(const struct lastwrite *w, const char *anchor, uint64_t hash);

/* Forget `anchor` (deleted, or written without attributes). */
void lastwrite_del(struct lastwrite *w, const char *anchor);

/* Objects held. */
size_t lastwrite_count(const struct lastwrite *w);

#endif /* CANOPY_SYNC_ENGINE_LASTWRITE_H */
