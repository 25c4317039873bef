/*
 * sync/source/openldap_internal.h -- the OpenLDAP source's private types,
 * shared by its files (openldap.h is the contract): two RFC 4533
 * refreshAndPersist sessions driven by libldap's ldap_sync_* client on one
 * worker thread.
 *
 * Threads: the worker thread, the loop side and what they share are
 * source_worker.h's; the worker owns the LDAP handles and the ldap_sync_t
 * state of both sessions.
 *
 * What libldap 2.5 and slapd 2.5 (syncprov + sessionlog) do, checked by
 * experiment, and how it shaped these files:
 *  - ldap_sync_init(LDAP_SYNC_REFRESH_AND_PERSIST) sends the search and
 *    returns only at refreshDone or on an error: the whole refresh phase, its
 *    callbacks included, runs inside it (polling ldap_result every 100 ms,
 *    forever if the server says nothing). So stop() breaks a blocked worker
 *    by shutdown() of the published sockets, and back-pressure is the
 *    callbacks blocking on the full ring.
 *  - A refresh without a cookie ends with a refreshDelete syncInfo although
 *    it transferred the full content, so "present phase" means: no cookie at
 *    the start, or the server sent refreshPresent / present syncIdSets.
 *  - libldap reports the final refreshPresent and refreshDelete both as
 *    LDAP_SYNC_CAPI_DONE; which one it was is read back from the syncInfo
 *    value's tag (decoding only, RFC 4533 §2.5).
 *  - Cookies arrive in the middle of a refresh (a syncIdSet of deletes
 *    carries "delcsn="), but only the refreshDone cookie stands for a
 *    complete refresh, so only that one and persist-phase cookies go into a
 *    cursor (`committed`); a reconnect resumes from `committed`.
 *  - A newcookie syncInfo reaches no callback: the cookie change is noticed
 *    after ldap_sync_poll returns and reported as SOURCE_CURSOR. slapd sends
 *    one to every persistent search for each write outside its scope.
 *  - ldap_sync_poll with a zero timeout can read a message and report
 *    nothing (see session_drain), so it is called blocking, on input only.
 *
 * 389 Directory Server's content synchronization plugin (2.3) speaks the
 * same protocol with other details (docs/sources-389ds.md): the syncUUID is
 * the nsUniqueId, the cookie "host:port#binddn:base:filter#changenumber",
 * deletes on resume come as a syncIdSet, every persist-phase change carries
 * its cookie. One quirk needs handling here: resumed from a cookie whose
 * next change its retro changelog trimmed, it sends no
 * e-syncRefreshRequired (openldap_sync.c, drop_cookie_past_changelog).
 *
 * The files:
 *   openldap.c         start, and the API of openldap.h over source_worker.h
 *   openldap_conn.c    the worker's session: connections (ldap_conn.h), persist
 *   openldap_sync.c    RFC 4533 on a connection: the ldap_sync_* callbacks into events
 *   openldap_cursor.c  the cursor blob (both sessions' cookies)
 *   openldap_port.c    the source port (source.h) over all of it
 * Names shared between them carry the openldap__ prefix.
 */
#ifndef CANOPY_SYNC_SOURCE_OPENLDAP_INTERNAL_H
#define CANOPY_SYNC_SOURCE_OPENLDAP_INTERNAL_H

#include <pthread.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <lber.h>
#include <ldap.h>
#include <uv.h>

#include "common/xalloc.h"
#include "sync/source/ldap_conn.h"
#include "sync/source/source_worker.h"
#include "sync/source/openldap.h"

#define OP_TIMEOUT_S 30      /* synchronous operations (bind) */
#define CURSOR_VERSION "v1"

/* One RFC 4533 session: one scope, one connection, one cookie. */
struct ldap_session {
	struct ldap_source *src;
	enum object_type type;
	const char *key;          /* "users" / "groups": cursor keys, messages */
	ldap_sync_t ls;           /* base, filter, attrs and ls_cookie are libldap-allocated */
	int slot;                 /* its socket's slot in src->w.fds (published for stop()) */
	struct berval committed;  /* the cookie cursors carry, see the top comment */
	bool full;                /* this refresh started without a cookie */
	bool saw_present;         /* the server used the present phase (§3.4.1) */
	bool refreshing;          /* between REFRESH_BEGIN and REFRESH_END */
	bool refresh_done;        /* refreshDone seen in this refresh */
	bool ended;               /* searchResultDone: the server ended the search */
	int err;                  /* first failure inside a callback; later ones are skipped */
	uint64_t refresh_required_ms; /* CLOCK_MONOTONIC ms of the last e-syncRefreshRequired; 0: none */
};

struct ldap_source {
	struct source_worker w;  /* first: a source_run is an ldap_source (source_worker.h) */

	/* configuration, copied */
	struct ldap_conn_config conn; /* credentials, source.tls (owned copies: ldap_conn.h) */

	struct ldap_session sess[2]; /* worker only; refresh bit (1u << i) asks sess[i] for a full refresh */
	size_t n_sess;
};

/* ---- openldap.c ------------------------------------------------------------ */

/* Fill errmsg (if given) and return rc. */
#define openldap__fail source_worker_fail

/* ---- openldap_cursor.c: the cursor blob and cookies ------------------------- */

bool openldap__bv_eq(const struct berval *a, const struct berval *b);
void openldap__bv_clear(struct berval *bv);
/* dst := copy of src (libldap allocator, as ls_cookie needs). */
void openldap__bv_copy(struct berval *dst, const struct berval *src);
/* "v1\nusers=<b64>\ngroups=<b64>\n" from the committed cookies (malloc'd). */
void openldap__cursor_encode(struct ldap_source *s, void **out, size_t *out_len);
/* The cookies of a cursor into the sessions. Returns 0 or -EINVAL with errmsg. */
int openldap__cursor_decode(struct ldap_source *s, const void *blob, size_t len, char *errmsg, size_t errlen);

/* ---- openldap_sync.c: RFC 4533 on one connection (worker) -------------------- */

static inline bool openldap__is_stopping(struct ldap_source *s)
{
	return source_worker_stopping(&s->w);
}
/* Hand an event to the loop thread (waits while the ring is full). Takes
 * ownership of ev. Returns 0 or -ECANCELED (stopping). */
static inline int openldap__push(struct ldap_source *s, struct source_event *ev)
{
	return source_worker_push(&s->w, ev);
}
/* The ldap_sync_t callbacks. */
int openldap__on_entry(ldap_sync_t *ls, LDAPMessage *msg, struct berval *uuid, ldap_sync_refresh_t phase);
int openldap__on_reference(ldap_sync_t *ls, LDAPMessage *msg);
int openldap__on_intermediate(ldap_sync_t *ls, LDAPMessage *msg, BerVarray uuids, ldap_sync_refresh_t phase);
int openldap__on_result(ldap_sync_t *ls, LDAPMessage *msg, int refresh_deletes);
void openldap__session_drop_cookie(struct ldap_session *x);
/* CLOCK_MONOTONIC in ms. */
uint64_t openldap__mono_ms(void);
/* The refresh phase (§3.4); the persist phase's waiting messages. Return 0 or
 * a negative errno with msg filled. */
int openldap__session_refresh(struct ldap_session *x, const char *url, char *msg, size_t len);
int openldap__session_drain(struct ldap_session *x, const char *url, char *msg, size_t len);

/* ---- openldap_conn.c: connections and the worker --------------------------------- */

/* The worker's side of the source (source_worker.h). */
extern const struct source_worker_ops openldap__worker_ops;
/* source_worker_ops.release: free the source (the worker has exited) */
void openldap__release(void *impl);

#endif /* CANOPY_SYNC_SOURCE_OPENLDAP_INTERNAL_H */
