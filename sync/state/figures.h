/*
 * sync/state/figures.h -- the cluster-wide sync figures: one replicated
 * record, "s:sync", that every node reads the same.
 *
 * Why replicated: /v1/status must say the same on every node (a follower
 * used to show exported_total 0 and last_export_at null: those were the
 * leader's own counters). The leader adds this record to the commit of
 * every batch (sync/engine/commit.c) with the running totals and the
 * timestamps, taken from its clock when it builds the entry; applying it is
 * a plain PUT, so every node holds the same bytes at the same applied index,
 * and a new leader continues the totals from the record it finds. An older
 * canopy applies the PUT as an opaque key of an unknown namespace (state.c
 * keeps every key), so a rolling upgrade is safe in either order.
 *
 * The value is versioned JSON, like the object records (object.h):
 *   {"v":1,"objects":N,"ops":N,"errors":N,"skipped":N,"batches":N,"lag_ms":MS,
 *    "last_export_ms":MS,"cursor_at_ms":MS,"recent":[[SECOND,N],...]}
 * "recent" holds objects written per FIGURES_BUCKET_S-second bucket over
 * the last FIGURES_RATE_WINDOW_S seconds (at most FIGURES_BUCKETS buckets),
 * for the export rate. Unknown fields are ignored; a higher version fails to
 * decode (read as "no figures") rather than being misread.
 */
#ifndef CANOPY_SYNC_STATE_FIGURES_H
#define CANOPY_SYNC_STATE_FIGURES_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "sync/state/state.h"

#define FIGURES_VERSION 1
#define FIGURES_KEY "s:sync"
#define FIGURES_RATE_WINDOW_S 60
#define FIGURES_BUCKET_S 10
#define FIGURES_BUCKETS (FIGURES_RATE_WINDOW_S / FIGURES_BUCKET_S + 1)
#define FIGURES_VALUE_MAX 4096 /* a longer value is not ours: refused before parsing */

struct sync_figures {
	uint64_t objects;        /* objects written to the target (one per object per batch) */
	uint64_t ops;            /* target writes acknowledged (upserts, member and manager
				  * PATCHes, deletes, disables): what exported_total counted */
	uint64_t errors;         /* target operations that failed, unmappable entries, batches
				  * that had to start over */
	uint64_t skipped;        /* source entries the mapping could not map (in errors too) */
	uint64_t batches;        /* batch commits that carried the record */
	uint64_t lag_ms;         /* latest batch: its oldest event reaching the engine -> its
				  * commit proposed */
	uint64_t last_export_ms; /* unix ms of the latest acknowledged write; 0: never */
	uint64_t cursor_at_ms;   /* unix ms when the cursor last moved; 0: never */
	unsigned n_recent;
	struct {
		uint64_t second; /* unix seconds, a multiple of FIGURES_BUCKET_S */
		uint64_t objects;
	} recent[FIGURES_BUCKETS];
};

/* The record in `s` into *out; false (and *out zeroed) when there is none or
 * it does not decode. */
bool figures_get(const struct state *s, struct sync_figures *out);

/* Parse a value; 0, or -EPROTO with errmsg (too long, not JSON, not a
 * record, a newer version, a field of the wrong type). */
int figures_decode(const void *buf, size_t len, struct sync_figures *out, char *errmsg, size_t errlen);

/* Encode into a malloc'd buffer (out of memory aborts: common/xalloc.h). */
void figures_encode(const struct sync_figures *f, char **buf, size_t *len);

/* Put the record into an entry being built. */
void figures_put(struct state_batch *b, const struct sync_figures *f);

/*
 * Add one batch's outcome at time now_ms (unix ms): objects written, target
 * writes acknowledged, errors; cursor_moved when the entry moves the cursor.
 * Buckets older than the rate window are dropped.
 */
void figures_add(struct sync_figures *f, uint64_t now_ms, uint64_t objects, uint64_t ops, uint64_t errors,
		 bool cursor_moved);

/* Objects written per second over the FIGURES_RATE_WINDOW_S seconds before
 * now_ms (by whole buckets: a bucket counts when it started inside the
 * window). 0 when idle for a minute. */
double figures_rate(const struct sync_figures *f, uint64_t now_ms);

#endif /* CANOPY_SYNC_STATE_FIGURES_H */
