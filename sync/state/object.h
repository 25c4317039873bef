/*
 * sync/state/object.h -- records of the replicated object table.
 *
 * The state machine (state.h) stores opaque keys and values; this module
 * gives them meaning. Keys are namespaced by a one-letter prefix so that
 * several tables share one replicated map (and one snapshot, one digest):
 *   "o:" + anchor   an exported object (struct object_record)
 *   "d:" + anchor   a staged delete awaiting approval (value: the record)
 *   "i:" + anchor   an intent: a batch is about to write this object to the
 *                   target (value: the term); removed by the batch's commit
 *   "m:" + group anchor + "#" + member anchor
 *                   a staged member removal awaiting approval (value: the
 *                   member's record), counted with the staged deletes
 *
 * Values are versioned JSON ({"v":1,...}): readable in a debugger, and a
 * newer canopy can add fields that an older one ignores. A record of an
 * unknown higher version fails to decode rather than being misread.
 */
#ifndef CANOPY_SYNC_STATE_OBJECT_H
#define CANOPY_SYNC_STATE_OBJECT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "sync/object.h"
#include "sync/state/state.h"

#define OBJECT_RECORD_VERSION 1

/* The key prefixes (namespaces of state.h). */
#define OBJECT_KEY_OBJECT ((char)STATE_NS_OBJECT)
#define OBJECT_KEY_STAGED ((char)STATE_NS_STAGED)
#define OBJECT_KEY_INTENT ((char)STATE_NS_INTENT)
#define OBJECT_KEY_STAGED_MEMBER ((char)STATE_NS_STAGED_MEMBER)

/* Deletes and member removals staged by delete protection, awaiting an
 * operator ("d:" and "m:" keys): what status calls pending_deletes. */
uint64_t object_staged_count(const struct state *s);

struct object_record {
	enum object_type type;
	char *target_id;   /* the SCIM id */
	uint64_t hash;     /* content hash of the mapped resource (members excluded) */
	char *dn;          /* source DN when exported */
	char **members;    /* groups: member anchors as exported */
	size_t n_members;
	char **unresolved; /* groups: member DNs not (yet) exported */
	size_t n_unresolved;
	char *manager_dn;  /* users: the manager's DN as the source gave it (mapping.h,
			    * reference-valued attributes), or NULL: no manager */
	char *manager;     /* users: the anchor of the manager set in the target, or
			    * NULL: none set (no manager, or manager_dn not exported yet) */
	char *member_key;  /* users, when source.groups.member_value names an attribute
			    * (memberUid-style groups, docs/sources.md): the user's value of
			    * it as exported, which groups' member values are matched
			    * against; kept here so that a new leader rebuilds the index
			    * from the replicated state alone. Written only when set */
	bool members_in_doubt; /* groups: an earlier leader may have changed the target's
				* members after its last commit (the in-doubt repair sets
				* it): `members` may not be what the target holds, so the
				* next member write reads the target's and makes it exact */
	char **refused;    /* groups: member anchors whose add or removal the target
			    * refused (sync/engine/bisect.c); each one has a failed-member
			    * record "f:<group>#<member>" (retry.h). A refused add is not in
			    * `members`, a refused removal still is. Written only when set */
	size_t n_refused;
	/* groups, target.nested_groups: flatten (sync/engine/nested.c): the
	 * members in the source, resolved -- `members` then lists the users in
	 * the target, nested ones included. Written when `flat` */
	bool flat;
	char **direct_users; /* anchors of the users that are direct members */
	size_t n_direct_users;
	char **nested;       /* anchors of the groups that are direct members */
	size_t n_nested;
};

/* Build the key "<prefix>:<anchor>" into buf; returns its length. */
size_t object_key(char prefix, const char *anchor, char *buf, size_t size);

/* The record as versioned JSON: *buf is malloc'd, *len its length. Always
 * returns 0 (out of memory aborts, common/xalloc.h; int only for callers
 * written when it could fail). */
int object_record_encode(const struct object_record *r, char **buf, size_t *len);
/* Returns 0, or -EPROTO with errmsg (not JSON, not a record, a newer version). */
int object_record_decode(const void *buf, size_t len, struct object_record *r, char *errmsg,
			 size_t errlen);
void object_record_free(struct object_record *r);

/*
 * The target id of an encoded record, without decoding the rest of it: a
 * group batch's member phase looks up one per member (16,000 for 160 groups
 * of 100), and a full decode of each held the event loop ~60 ms. Returns 1
 * with *id malloc'd, 0 when the record has no id, -EPROTO when it is not a
 * record. On whatever object_record_encode() wrote, *id is the record's
 * target_id (tests/fuzz/fuzz_fsm.c checks it on every record it decodes,
 * encoded again); other bytes are read safely but not validated past the id.
 */
int object_record_target_id(const void *buf, size_t len, char **id);

/* Deep copy (out of memory aborts). */
void object_record_copy(struct object_record *dst, const struct object_record *src);

#endif /* CANOPY_SYNC_STATE_OBJECT_H */
