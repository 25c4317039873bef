/*
 * sync/source/openldap.h -- OpenLDAP source: RFC 4533 content
 * synchronization with libldap's ldap_sync_* client.
 *
 * Two sessions, one per scope (users, groups), each refreshAndPersist with its
 * own cookie; the cursor encodes both. LDAP work runs on one worker thread
 * (libldap calls block); events reach the loop thread through a bounded queue
 * and a uv_async: when the queue is full the worker waits, so a slow target
 * slows the reader instead of buffering the directory in memory.
 *
 * Connection loss: reconnect with exponential backoff (with jitter) and move
 * to the next URL of source.url. e-syncRefreshRequired (the cookie is too old
 * for the server's session log): drop that session's cookie and refresh in
 * full, reported as a refresh with present_phase so deletions are found.
 *
 * Event order per scope: SOURCE_REFRESH_BEGIN, the refresh's ENTRY / PRESENT
 * / DELETE events, SOURCE_REFRESH_END, then persist-phase events. A new
 * SOURCE_REFRESH_BEGIN for a scope whose refresh has not ended (connection
 * lost mid-refresh, e-syncRefreshRequired) abandons that refresh: the new
 * one starts from the last cursor that was attached to an event, so what
 * the abandoned refresh reported must not count towards present_phase.
 * SOURCE_DELETE may name an anchor the consumer never saw (slapd's session
 * log is not filtered by scope exactly): ignore those.
 *
 * Cursors: only the cookie of a *complete* refresh (refreshDone) or of a
 * persist-phase change is put into a cursor; cookies the server sends in the
 * middle of a refresh are not (restarting from one could skip deletions a
 * present phase would have revealed). The blob is text:
 * "v1\nusers=<base64 cookie>\ngroups=<base64 cookie>\n" (an empty value:
 * no cookie yet, i.e. a full refresh of that scope on the next start).
 */
#ifndef CANOPY_SYNC_SOURCE_OPENLDAP_H
#define CANOPY_SYNC_SOURCE_OPENLDAP_H

#include <stddef.h>
#include <uv.h>

#include "sync/source/ldap_tls.h"
#include "sync/source/source_sasl.h"
#include "sync/source/source.h"

struct ldap_source_config {
	const char *const *urls;  /* tried in order, failover to the next */
	size_t n_urls;
	const char *bind_dn;      /* NULL: anonymous */
	const char *password;     /* NULL: none */
	const char *password_file; /* when set, re-read before every bind (sync/secret.h), so a
				    * fixed password file takes effect without a restart */
	struct source_sasl_config sasl; /* mech not NONE: a SASL bind instead (source_sasl.h) */
	const char *user_base, *user_filter;
	const char *group_base, *group_filter;
	const char *const *attrs; /* attributes to request; NULL = all user attributes */
	size_t n_attrs;
	size_t queue_max;         /* bounded queue length (default 1024) */
	unsigned backoff_min_ms;  /* default 100 */
	unsigned backoff_max_ms;  /* default 30000 */
	struct ldap_tls_config tls; /* source.tls: CA and StartTLS (sync/source/ldap_tls.h) */
};

struct ldap_source; /* opaque */

/* Called on the loop thread for every event, in order. The callee owns `ev`
 * (free with source_event_free). */
typedef void (*ldap_source_event_cb)(void *data, struct source_event *ev);

/*
 * Start reading from `cursor` (NULL / 0: from scratch, i.e. full refresh).
 * Returns 0 or a negative code with the cause in errmsg (bad config, thread
 * creation). Connection errors are not start errors: they are retried and
 * reported as SOURCE_STATUS events.
 */
int ldap_source_start(struct ldap_source **out, uv_loop_t *loop,
		      const struct ldap_source_config *cfg, const void *cursor, size_t cursor_len,
		      ldap_source_event_cb cb, void *data, char *errmsg, size_t errlen);

/*
 * Stop at once (leadership lost, shutdown): the worker abandons its
 * connections; queued events are dropped without callbacks. `done` runs on the
 * loop when the thread has exited and all memory is released.
 */
void ldap_source_stop(struct ldap_source *s, void (*done)(void *data), void *data);

/*
 * Flow control for consumers that finish events asynchronously (loop thread
 * only). While paused no event is delivered: the queue fills up to queue_max
 * and then the worker stops reading from the directory. resume delivers the
 * queued events from the next loop iteration on. Both are idempotent.
 */
/*
 * Read every entry of `type`'s scope again: that session drops its cookie
 * and refreshes in full (a refresh with present_phase), while the other keeps
 * its cookie. For when the scope changed in a way the directory cannot tell
 * us (group-based scoping: a user entered the scope because a group changed,
 * and its attributes are needed). Loop thread only.
 */
void ldap_source_refresh(struct ldap_source *s, enum object_type type);

void ldap_source_pause(struct ldap_source *s);
void ldap_source_resume(struct ldap_source *s);

/* The largest number of events the queue has held at once since start (for
 * tests and metrics; any thread). Never more than queue_max. */
size_t ldap_source_queue_peak(struct ldap_source *s);

/*
 * The OpenLDAP source behind the source port (source.h), for the engine.
 * `cfg` is copied; its strings and arrays are borrowed and must outlive the
 * source. cfg->attrs is ignored: the engine names the attributes at each
 * start. Never fails (out of memory aborts, common/xalloc.h); a bad
 * configuration is reported by start().
 */
struct source *openldap_source_new(const struct ldap_source_config *cfg);

/*
 * The cursor blob for people (status sync.cursor_readable): for each session
 * ("users", "groups") the CSNs of its RFC 4533 cookie with their time and
 * server id, e.g. "users: csn 20261130043512.123456Z#000000#001#000000
 * (2026-11-30T04:35:12Z, sid 001)". A pure function of the blob (no source
 * needed). Returns 0 with the text in out (cut to outlen), or -EINVAL when
 * the blob is not an OpenLDAP source cursor (or longer than
 * OPENLDAP_CURSOR_DESCRIBE_MAX).
 */
#define OPENLDAP_CURSOR_DESCRIBE_MAX (1u << 20)
int openldap_cursor_describe(const void *blob, size_t len, char *out, size_t outlen);

#endif /* CANOPY_SYNC_SOURCE_OPENLDAP_H */
