/*
 * sync/source/ad_internal.h -- the AD source's private types, shared by its
 * files (ad.h is the contract).
 *
 * Threads: the worker thread, the loop side and what they share are
 * source_worker.h's (the same as the OpenLDAP source's); the worker owns the
 * LDAP handles and the cache.
 *
 * The files:
 *   ad.c          start and the port (the rest of the loop side: source_worker.c)
 *   ad_conn.c     the worker's session: connections, wake-ups, rounds
 *   ad_dirsync.c  the DirSync control, the cursor, reading entries
 *   ad_cache.c    the per-object cache: merge, scope, events
 *   ad_filter.c   RFC 4515 filters on merged entries
 *   ad_reconcile.c the anchor comparison (deletions the account cannot see)
 *   ad_range.c    ranged retrieval of multi-valued attributes (member;range=)
 * Names shared between them carry the ad__ prefix.
 */
#ifndef CANOPY_SYNC_SOURCE_AD_INTERNAL_H
#define CANOPY_SYNC_SOURCE_AD_INTERNAL_H

#include <pthread.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <lber.h>
#include <ldap.h>
#include <uv.h>

#include "common/xalloc.h"
#include "sync/source/ad.h"
#include "sync/source/ldap_conn.h"
#include "sync/source/source_worker.h"
#include "sync/strmap.h"

#define AD_OP_TIMEOUT_S 60
#define AD_DEBOUNCE_MS 50

#define AD_OID_DIRSYNC "1.2.840.113556.1.4.841"      /* LDAP_SERVER_DIRSYNC_OID */
#define AD_OID_NOTIFY "1.2.840.113556.1.4.528"       /* LDAP_SERVER_NOTIFICATION_OID */
#define AD_OID_SHOW_DELETED "1.2.840.113556.1.4.417" /* LDAP_SERVER_SHOW_DELETED_OID */
#define AD_DIRSYNC_OBJECT_SECURITY 0x1u
#define AD_DIRSYNC_INCREMENTAL_VALUES 0x80000000u

/* What the DC said about one object in one DirSync answer (or a base read). */
struct ad_entry {
	char *dn;
	char guid[37];        /* objectGUID */
	char cguid[37];       /* mS-DS-ConsistencyGuid, or "" */
	bool deleted;         /* isDeleted TRUE: a tombstone */
	bool member_full;     /* `member` came as the whole set */
	struct object_attr *attrs; /* other attributes; n_values 0: removed */
	size_t n_attrs;
	char **member_add, **member_del, **member_set; /* DNs */
	size_t n_add, n_del, n_set;
	char **partial;       /* base reads: descriptions that came as a range
			       * not ending in "*" ("member;range=0-1499") */
	size_t n_partial;
};

void ad__entry_free(struct ad_entry *e);

/* One user or group (or other object DirSync returned) as last known. */
struct ad_obj {
	char guid[37];
	char anchor[37];
	char *dn;
	char *dn_norm;
	bool deleted;
	bool in_scope;           /* reported in scope (SOURCE_ENTRY) last */
	enum object_type type;   /* from objectClass */
	struct object_attr *attrs;
	size_t n_attrs;
	struct strmap members;   /* key: member GUID, or "dn:"+normalized DN; value: DN (owned) or NULL */
	bool members_init;
	uint64_t round;          /* the last round that touched it */
};

struct ad_cache {
	struct strmap by_guid;   /* guid -> struct ad_obj (owned) */
	struct strmap by_dn;     /* normalized DN -> struct ad_obj (borrowed) */
	bool warm;               /* filled by a silent read, not from the events we sent */
	uint64_t round;
};

struct ad_source {
	struct source_worker w;          /* first: a source_run is an ad_source (source_worker.h) */

	/* configuration, copied */
	struct ldap_conn_config conn;   /* credentials, TLS (owned copies: ldap_conn.h) */
	char *user_base, *group_base;   /* normalized (lowercase) */
	struct ad_filter *user_filter, *group_filter;
	unsigned poll_ms;
	bool notify;                     /* run the change-notification search */
	unsigned reconcile_ms;           /* 0: no anchor comparison */
	char **attrs;                    /* requested from DirSync (NULL-terminated) */

	/* worker only */
	LDAP *ld, *nld;                  /* DirSync and notification connections */
	int notify_msgid;                /* -1: no notification search running */
	char *nc_root;                   /* defaultNamingContext */
	unsigned flags;                  /* DirSync flags */
	struct berval cookie;            /* the latest cookie (malloc'd) */
	struct ad_cache cache;
	size_t last_url;
	bool ever_connected;
	bool told_object_security;       /* the limit of a non-admin account was logged */
	uint64_t reconcile_at;           /* monotonic ms of the next anchor comparison */
};

/* ---- ad.c ----------------------------------------------------------------------- */

/* source_worker_ops.release: free the source (the worker has exited) */
void ad__release(void *impl);
/* Free what the source owns (not the struct, not the worker's parts). */
void ad__source_release(struct ad_source *s);
/* The configuration into s (filters parsed, bases normalized, the worker's
 * parts made: source_worker_release frees them). Returns 0 or -EINVAL with
 * errmsg. */
int ad__config_copy(struct ad_source *s, const struct ad_source_config *cfg, char *errmsg, size_t errlen);
/* The attributes to request: the engine's, the filters', the source's own
 * (NULL-terminated, malloc'd; ad__source_release frees s->attrs). */
char **ad__request_attrs(const struct ad_source *s, const char *const *attrs, size_t n_attrs);
#define ad__fail source_worker_fail /* fill errmsg, return rc */
static inline bool ad__is_stopping(struct ad_source *s)
{
	return source_worker_stopping(&s->w);
}
/* Hand an event to the loop (waits while the ring is full). Takes ownership.
 * Returns 0 or -ECANCELED. */
static inline int ad__push(struct ad_source *s, struct source_event *ev)
{
	return source_worker_push(&s->w, ev);
}
static inline struct source_event *ad__ev_new(enum source_event_kind kind, enum object_type type)
{
	return source_event_new(kind, type);
}
/* A SOURCE_NOTICE for the operator's log. Returns 0 or -ECANCELED. */
int ad__notice(struct ad_source *s, bool warning, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
uint64_t ad__now_ms(void);

/* ---- ad_dirsync.c --------------------------------------------------------------- */

char *ad__dn_norm(const char *dn);

/*
 * The values of attribute `name` (`name_len` bytes) as the mappings get them
 * (docs/active-directory.md, "Binary attributes"): mS-DS-ConsistencyGuid as
 * GUID text when 16 bytes; the known binary attributes (objectSid, ...) and
 * any attribute with a value that is not text (a NUL byte, invalid UTF-8) as
 * base64, every value; the rest as they are. An array of nv strings (at least
 * one slot), malloc'd.
 */
char **ad__attr_values(const char *name, size_t name_len, struct berval **vals, size_t nv);

/* One DirSync exchange (all its pages) from `cookie` (NULL: full). Fills the
 * entries and the new cookie. Returns 0 or a negative errno with msg and
 * s->problem set. */
int ad__dirsync(struct ad_source *s, const struct berval *cookie, struct ad_entry **out, size_t *n_out,
		struct berval *new_cookie, const char *url, char *msg, size_t len);
/* Read one object by DN (base search, no DirSync): all requested attributes.
 * Returns 0 and *out (NULL: not found), or a negative errno. */
int ad__read_object(struct ad_source *s, const char *dn, struct ad_entry **out, const char *url, char *msg,
		    size_t len);
static inline void ad__status_fmt(char *msg, size_t len, const char *url, int err, LDAP *ld, const char *what)
{
	ldap_conn_status_fmt(msg, len, url, err, ld, what);
}
static inline int ad__ldap_code(LDAP *ld, int rc)
{
	return ldap_conn_code(ld, rc);
}

/* ---- ad_cache.c ----------------------------------------------------------------- */

void ad__cache_init(struct ad_cache *c);
void ad__cache_clear(struct ad_cache *c);
/* Merge the entries of one answer into the cache and report what changed
 * (full: a refresh of both types with present_phase). The round's cookie
 * goes on the last event. `silent`: fill the cache only. Returns 0 or
 * -ECANCELED (stopping) or a negative errno of a base read. */
int ad__cache_apply(struct ad_source *s, struct ad_entry *e, size_t n, bool full, bool silent,
		    const struct berval *cookie, const char *url, char *msg, size_t len);
/* Report the objects whose GUIDs are listed as deleted through the normal
 * delete path (SOURCE_DELETE, and their groups again without them), and
 * forget them. No cursor moves. Returns 0 or -ECANCELED. */
int ad__cache_gone(struct ad_source *s, char *const *guids, size_t n);
/* Whether the object is one this source reported in scope last. */
bool ad__obj_reported(const struct ad_obj *o);
/* Pure scope decision, for the unit tests too. */
enum object_type ad__obj_kind(const struct object_attr *attrs, size_t n);
bool ad__dn_under(const char *dn_norm, const char *base_norm);

/* Every user and group under `base` (RFC 2696 paged search, plain reads as
 * ad__read_object: ranges completed), appended to *out / *n, at most `max`
 * in all (-EFBIG). A base that does not exist is empty. Returns 0 or a
 * negative errno with msg set. */
int ad__read_paged(struct ad_source *s, const char *base, struct ad_entry **out, size_t *n, size_t max,
		   const char *url, char *msg, size_t len);

/* ---- ad_read.c: the port's on-demand reads (source.h) ----------------------------- */

int ad__read_entry(struct source *src, const char *dn, const char *const *attrs, size_t n_attrs,
		   struct source_event **out, char *rule, size_t rule_len, char *errmsg, size_t errlen);
int ad__read_scope(struct source *src, enum object_type type, const char *const *attrs, size_t n_attrs,
		   struct source_event ***out, size_t *n_out, char *errmsg, size_t errlen);

/* ---- ad_reconcile.c -------------------------------------------------------------- */

/* Enumerate the objectGUIDs under users.base and groups.base (RFC 2696 paged
 * search) and report cached objects the DC no longer has as deleted. Returns
 * 0 or a negative errno with msg and s->problem set. */
int ad__reconcile(struct ad_source *s, const char *url, char *msg, size_t len);

/* ---- ad_range.c ------------------------------------------------------------------ */

/* After a base read (not DirSync): fetch the rest of every attribute that
 * came as a range (attr;range=0-1499), appending the values to e. Returns 0
 * or a negative errno with msg set. */
int ad__read_ranges(struct ad_source *s, const char *dn, struct ad_entry *e, const char *url, char *msg,
		    size_t len);
/* The loop of ad__read_ranges, over any way to read one range (a fake DC in
 * the unit tests): fetch reads `want` of dn and returns 0 with the answer's
 * description in *got (malloc'd; NULL: no such attribute) and its values
 * (malloc'd array of malloc'd strings), or a negative errno with msg set.
 * Each answer must start where it was asked to (no hole, no repeat), or
 * -EPROTO. */
typedef int (*ad__range_fetch_fn)(void *ctx, const char *dn, const char *want, char **got, char ***values,
				  size_t *n_values, char *msg, size_t len);
int ad__ranges_follow(struct ad_entry *e, const char *dn, ad__range_fetch_fn fetch, void *ctx, char *msg,
		      size_t len);

/* ---- ad_conn.c ------------------------------------------------------------------ */

/* The worker's side of the source (source_worker.h). */
extern const struct source_worker_ops ad__worker_ops;

#endif /* CANOPY_SYNC_SOURCE_AD_INTERNAL_H */
