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
 */
#ifndef CANOPY_SYNC_SOURCE_OPENLDAP_H
#define CANOPY_SYNC_SOURCE_OPENLDAP_H

#include <stddef.h>
#include <uv.h>

#include "sync/source/source.h"

struct ldap_source_config {
	const char *const *urls;  /* tried in order, failover to the next */
	size_t n_urls;
	const char *bind_dn;      /* NULL: anonymous */
	const char *password;     /* NULL: none */
	const char *user_base, *user_filter;
	const char *group_base, *group_filter;
	const char *const *attrs; /* attributes to request; NULL = all user attributes */
	size_t n_attrs;
	size_t queue_max;         /* bounded queue length (default 1024) */
	unsigned backoff_min_ms;  /* default 100 */
	unsigned backoff_max_ms;  /* default 30000 */
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

#endif /* CANOPY_SYNC_SOURCE_OPENLDAP_H */
