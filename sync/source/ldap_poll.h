/*
 * sync/source/ldap_poll.h -- the polling LDAP source (source.kind ldap-poll):
 * for any LDAPv3 directory, including those without content synchronization
 * (RFC 4533).
 *
 * Every poll interval the worker reads, per scope (users, groups), the
 * entries changed since the cursor: a subtree search by pages (RFC 2696) of
 * (&(<scope filter>)(modifyTimestamp>=<cursor second>)) requesting the mapped
 * attributes plus the anchor attribute, modifyTimestamp and createTimestamp.
 * The answers are sorted by modifyTimestamp and delivered as SOURCE_ENTRY in
 * that order, so a cursor attached to an event covers everything before it.
 *
 * The cursor, per scope: the highest modifyTimestamp delivered, to the
 * second (GeneralizedTime, RFC 4517 §3.3.13), plus the set of entries already
 * delivered at exactly that second, each as anchor + a hash of what was
 * delivered. ">=" reads the cursor's second again because an entry may change
 * later within that second, after the poll read it; the set keeps the entries
 * already delivered from being delivered twice. The hash keeps a *second*
 * change of one entry within that second from being taken for the first
 * (the timestamp alone cannot tell them apart).
 *
 * Deletes: a search of changed entries cannot see a deleted one. Every
 * poll_full_every-th poll (and the first one when a scope has no cursor) is a
 * full read of the scope, reported as a refresh with present_phase (source.h):
 * the engine deletes what was not reported. Renames (modrdn) change
 * modifyTimestamp under the same anchor and arrive as modifies. A full read
 * also repairs any change a delta poll missed (a write whose timestamp was
 * taken before a poll that did not yet see it committed).
 *
 * The cursor blob is text (version first, decoded strictly):
 *   v1\n
 *   users <YYYYMMDDHHMMSSZ or -> <n>\n        n entries follow
 *   <16 hex digits hash> <anchor>\n           (n times)
 *   groups <...> <n>\n
 *   ...
 * "-" is a scope that has never been read in full: its next poll is a full
 * read.
 */
#ifndef CANOPY_SYNC_SOURCE_LDAP_POLL_H
#define CANOPY_SYNC_SOURCE_LDAP_POLL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "sync/source/ldap_tls.h"
#include "sync/source/source.h"
#include "sync/source/source_sasl.h"

#define LDAP_POLL_INTERVAL_DEFAULT_S 60
#define LDAP_POLL_FULL_EVERY_DEFAULT 10
#define LDAP_POLL_ANCHOR_DEFAULT "entryUUID"
/* The largest cursor blob decoded (a set of a million anchors fits). */
#define LDAP_POLL_CURSOR_MAX (64u << 20)
/* The longest anchor kept in a cursor (a GUID or UUID is 36 characters). */
#define LDAP_POLL_ANCHOR_MAX 256

struct ldap_poll_config {
	const char *const *urls; /* tried in order, failover to the next */
	size_t n_urls;
	const char *bind_dn, *password, *password_file; /* as struct ldap_source_config */
	struct source_sasl_config sasl;
	struct ldap_tls_config tls;
	const char *user_base, *user_filter;
	const char *group_base, *group_filter; /* group_base NULL: no groups */
	const char *anchor_attribute; /* NULL: entryUUID */
	unsigned poll_interval_s;     /* 0: LDAP_POLL_INTERVAL_DEFAULT_S */
	unsigned full_every;          /* 0: LDAP_POLL_FULL_EVERY_DEFAULT; 1: every poll is full */
	size_t queue_max;
	unsigned backoff_min_ms, backoff_max_ms;
};

/* The source port over a copy of cfg (its strings are borrowed and must
 * outlive the source). Never fails; a bad configuration is start()'s error. */
struct source *ldap_poll_source_new(const struct ldap_poll_config *cfg);

/* ---- the cursor: exposed for the unit tests and the fuzz target ------------ */

/* One entry delivered at the cursor's second. */
struct ldap_poll_seen {
	char *anchor;
	uint64_t hash;
};

/* One scope's cursor. ts -1: never read in full. */
struct ldap_poll_scope_cursor {
	int64_t ts; /* seconds since the epoch, UTC */
	struct ldap_poll_seen *seen;
	size_t n_seen, cap;
};

struct ldap_poll_cursor {
	struct ldap_poll_scope_cursor scope[2]; /* [0] users, [1] groups */
};

void ldap_poll_cursor_init(struct ldap_poll_cursor *c);
void ldap_poll_cursor_free(struct ldap_poll_cursor *c);
/* The blob described above (malloc'd). */
void ldap_poll_cursor_encode(const struct ldap_poll_cursor *c, void **out, size_t *out_len);
/* Strict: anything but exactly the format above (sorted hex, timestamps that
 * are real dates, no duplicate anchor, at most LDAP_POLL_CURSOR_MAX bytes) is
 * -EINVAL with errmsg; c is then empty. len 0 / blob NULL: an empty cursor. */
int ldap_poll_cursor_decode(struct ldap_poll_cursor *c, const void *blob, size_t len, char *errmsg, size_t errlen);
/* "users: modifyTimestamp 20261130054400Z (+3 entries at that second);
 * groups: ..." (a scope never read: "not read yet"). 0, or -EINVAL when the
 * blob is not such a cursor. */
int ldap_poll_cursor_describe(const void *blob, size_t len, char *out, size_t outlen);

/*
 * The same-second rule. An entry of this scope with modifyTimestamp `ts`
 * (seconds) and content hash `hash` was read: should it be delivered?
 * false when it was delivered already (ts is the cursor's second and the
 * set has this anchor with this hash). When it is to be delivered, the
 * cursor moves: a later second replaces ts and empties the set; the cursor's
 * second adds (or updates) the anchor in the set; an earlier second (a full
 * read, which is not sorted) leaves the cursor as it is.
 */
bool ldap_poll_take(struct ldap_poll_scope_cursor *c, int64_t ts, const char *anchor, uint64_t hash);

/* GeneralizedTime (RFC 4517 §3.3.13: YYYYMMDDHH[MM[SS]][(.|,)fraction]
 * (Z|(+|-)HH[MM])) into seconds since the epoch, UTC, the fraction dropped.
 * 0, or -EINVAL. */
int ldap_poll_time_parse(const char *s, size_t len, int64_t *out);
/* ts as "YYYYMMDDHHMMSSZ" (16 bytes with the NUL). */
void ldap_poll_time_format(int64_t ts, char out[16]);

#endif /* CANOPY_SYNC_SOURCE_LDAP_POLL_H */
