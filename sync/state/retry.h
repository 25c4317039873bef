/*
 * sync/state/retry.h -- the replicated retry set and failed-objects list.
 *
 * A change that the target did not take is never dropped: before the cursor
 * moves past it, the batch's commit records what was to be done under
 *   "r:" + anchor   retry set: a retryable failure (network, timeout, 5xx,
 *                   429, 401/403, 404, 408, 409, an unusable answer); retried
 *                   with backoff by whichever node leads
 *   "f:" + anchor   failed objects: a permanent refusal of this one object
 *                   (another 4xx) or a source entry the mapping cannot map;
 *                   shown by status, retried only on `canopyctl resync`
 *   "f:" + group anchor + "#" + member anchor
 *                   a failed member: the target refused this one value of a
 *                   group's membership (sync/engine/bisect.c isolated it) while
 *                   the group's other members went through. Kind RETRY_REREAD
 *                   with `member` set: an older canopy that finds one resyncs
 *                   it by re-reading the groups, which is what it needs
 * in the same Raft entry that advances the cursor (docs/architecture.md,
 * "No lost change"). A later change of the same object supersedes the record
 * (and removes it when it goes through), so the target always ends with the
 * newest content, in order per object.
 *
 * The record holds everything needed to redo the change without the source:
 * the kind, the mapped resource and its hash, a group's member DNs, the DN.
 * Values are versioned JSON like object records (object.h).
 */
#ifndef CANOPY_SYNC_STATE_RETRY_H
#define CANOPY_SYNC_STATE_RETRY_H

#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "sync/object.h"
#include "sync/state/state.h"

#define RETRY_RECORD_VERSION 1

#define OBJECT_KEY_RETRY ((char)STATE_NS_RETRY)
#define OBJECT_KEY_FAILED ((char)STATE_NS_FAILED)

enum retry_kind {
	RETRY_UPSERT = 1, /* create/update `resource`; groups then their members */
	RETRY_DELETE,     /* delete in the target, then forget the object */
	RETRY_DISABLE,    /* PATCH active=false (safety.deprovision: disable) */
	RETRY_REREAD,     /* nothing to write from here: re-read the entry from the
			   * source (e.g. the mapping refused it) */
};

const char *retry_kind_name(enum retry_kind k);

struct retry_record {
	enum retry_kind kind;
	enum object_type type;
	char *dn;              /* or NULL */
	json_t *resource;      /* RETRY_UPSERT: the mapped resource (owned) */
	uint64_t hash;         /* its content hash */
	char **member_dns;     /* RETRY_UPSERT of a group: the source's member DNs */
	size_t n_member_dns;
	char *manager_dn;      /* RETRY_UPSERT of a user: the manager's DN (or NULL) */
	char *member_key;      /* RETRY_UPSERT of a user: its member_key (object.h), or NULL */
	unsigned attempts;     /* failed tries so far */
	uint64_t first_at_ms;  /* unix ms of the first failure */
	uint64_t next_at_ms;   /* unix ms: not before (retry set) */
	long http_status;      /* of the last failure (0: no answer) */
	char *error;           /* the last failure, as logged */
	char *member;          /* a failed member ("f:<group>#<member>"): the member's anchor
				* (NULL: the record is about the object itself) */
	char *member_dn;       /* ... its DN (or NULL) */
	bool member_remove;    /* ... the refused change was its removal (else its add) */
};

/* *buf is malloc'd JSON. Always returns 0 (out of memory aborts,
 * common/xalloc.h; int only for callers written when it could fail). */
int retry_record_encode(const struct retry_record *r, char **buf, size_t *len);
/* Returns 0, -EPROTO (malformed, with errmsg) or -ENOTSUP (newer version). */
int retry_record_decode(const void *buf, size_t len, struct retry_record *r, char *errmsg, size_t errlen);
void retry_record_free(struct retry_record *r);

/* Backoff before try number `attempts` + 1: 1 s doubling to max_ms, with
 * +-20 % jitter from `rnd` so that many objects that failed together do not
 * come back together. */
uint64_t retry_backoff_ms(unsigned attempts, uint64_t max_ms, uint64_t rnd);

#endif /* CANOPY_SYNC_STATE_RETRY_H */
