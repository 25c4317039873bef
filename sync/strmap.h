/*
 * sync/strmap.h -- a string-keyed hash map for the engine's in-memory
 * indexes (DN -> anchor, anchors seen during a refresh, ...).
 *
 * C has no standard map with deletion; this one is small and local. Keys are
 * copied; values are borrowed pointers (or small integers cast).
 */
#ifndef CANOPY_SYNC_STRMAP_H
#define CANOPY_SYNC_STRMAP_H

#include <stddef.h>

struct strmap_entry;

struct strmap {
	struct strmap_entry **buckets;
	size_t n_buckets, count;
	void (*free_value)(void *value); /* optional: called on replace/delete/clear */
};

void strmap_init(struct strmap *m, void (*free_value)(void *value));
void strmap_clear(struct strmap *m); /* remove all; the map stays usable */
/* Replaces (and frees) an existing value. Always returns 0: out of memory
 * aborts (common/xalloc.h), so a failed insert can never read as "absent".
 * (It stays int so that callers written when it could fail still build.) */
int strmap_put(struct strmap *m, const char *key, void *value);
void *strmap_get(const struct strmap *m, const char *key);
int strmap_has(const struct strmap *m, const char *key);
void strmap_del(struct strmap *m, const char *key);
/* Visit all entries; stops when cb returns non-zero. */
int strmap_foreach(const struct strmap *m, int (*cb)(void *ctx, const char *key, void *value),
		   void *ctx);

#endif /* CANOPY_SYNC_STRMAP_H */
