/*
 * sync/source/ad_internal.h -- the AD source's private types, shared by its
 * files (ad.h is the contract).
 *
 * Threads: the loop thread owns struct ad_source and its uv handle; the
 * worker owns the LDAP handles and the cache. They share the event ring, the
 * stop flag, the refresh request and the published socket descriptors, all
 * under `lock` (the same split as the OpenLDAP source).
 *
 * The files:
 *   ad.c          the loop side: start, stop, delivery, flow control, the port
 *   ad_conn.c     the worker: connections, binds, failover, wake-ups, rounds
 *   ad_dirsync.c  the DirSync control, the cursor, reading entries
 *   ad_cache.c    the per-object cache: merge, scope, events
 *   ad_filter.c   RFC 4515 filters on merged entries
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
#include "sync/source/event_ring.h"
#include "sync/strmap.h"

#define AD_QUEUE_DEFAULT 1024
#define AD_BACKOFF_MIN_DEFAULT 100
#define AD_BACKOFF_MAX_DEFAULT 30000
#define AD_DELIVER_BATCH 256
#define AD_NETWORK_TIMEOUT_S 3
#define AD_OP_TIMEOUT_S 60
#define AD_DEBOUNCE_MS 50
#define AD_MSG_MAX 512

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
	uv_loop_t *loop;
	uv_async_t async;
	source_event_cb cb;
	void *data;

	/* configuration, copied */
	char **urls;
	size_t n_urls;
	char *bind_dn, *password, *password_file;
	char *user_base, *group_base;   /* normalized (lowercase) */
	struct ad_filter *user_filter, *group_filter;
	bool starttls;
	char *tls_ca;
	unsigned poll_ms;
	size_t queue_max;
	unsigned backoff_min_ms, backoff_max_ms;
	char **attrs;                    /* requested from DirSync (NULL-terminated) */

	pthread_t thread;
	int wake_fd;

	/* shared, under lock */
	pthread_mutex_t lock;
	pthread_cond_t not_full;
	struct source_ring ring;         /* worker -> loop (event_ring.h) */
	bool stopping, exited, refresh_req;
	int fds[2];                      /* published sockets, for stop() */

	/* loop thread only */
	bool paused, closing;
	void (*done)(void *data);
	void *done_data;
	struct source_status status;

	/* worker only */
	LDAP *ld, *nld;                  /* DirSync and notification connections */
	int notify_msgid;                /* -1: no notification search running */
	char *nc_root;                   /* defaultNamingContext */
	unsigned flags;                  /* DirSync flags */
	struct berval cookie;            /* the latest cookie (malloc'd) */
	struct ad_cache cache;
	size_t url_idx, last_url;
	bool ever_connected;
	enum source_problem problem;
	bool status_sent, last_connected;
	char last_msg[AD_MSG_MAX];
};

/* ---- ad.c ----------------------------------------------------------------------- */

int ad__fail(char *errmsg, size_t errlen, int rc, const char *fmt, ...) __attribute__((format(printf, 4, 5)));
bool ad__is_stopping(struct ad_source *s);
/* Hand an event to the loop (waits while the ring is full). Takes ownership.
 * Returns 0 or -ECANCELED. */
int ad__push(struct ad_source *s, struct source_event *ev);
struct source_event *ad__ev_new(enum source_event_kind kind, enum object_type type);

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
void ad__status_fmt(char *msg, size_t len, const char *url, int err, LDAP *ld, const char *what);
int ad__ldap_code(LDAP *ld, int rc);

/* ---- ad_cache.c ----------------------------------------------------------------- */

void ad__cache_init(struct ad_cache *c);
void ad__cache_clear(struct ad_cache *c);
/* Merge the entries of one answer into the cache and report what changed
 * (full: a refresh of both types with present_phase). The round's cookie
 * goes on the last event. `silent`: fill the cache only. Returns 0 or
 * -ECANCELED (stopping) or a negative errno of a base read. */
int ad__cache_apply(struct ad_source *s, struct ad_entry *e, size_t n, bool full, bool silent,
		    const struct berval *cookie, const char *url, char *msg, size_t len);
/* Pure scope decision, for the unit tests too. */
enum object_type ad__obj_kind(const struct object_attr *attrs, size_t n);
bool ad__dn_under(const char *dn_norm, const char *base_norm);

/* ---- ad_conn.c ------------------------------------------------------------------ */

int ad__worker_spawn(struct ad_source *s);

#endif /* CANOPY_SYNC_SOURCE_AD_INTERNAL_H */
