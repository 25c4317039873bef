/*
 * sync/source/ad_conn.c -- the AD source's session on its worker thread
 * (source_worker.h runs it): connect and bind to one DC (ldap_conn.h), run
 * DirSync rounds, wait for a change notification or the poll interval. On
 * failure the worker reports it and moves on to the next DC with backoff.
 */
#include <errno.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "sync/source/ad_internal.h"

/* Connect and bind one handle. On failure *out may hold a handle to unbind. */
static int conn_open(struct ad_source *s, const char *url, int slot, LDAP **out, char *msg, size_t len)
{
	return ldap_conn_open(&s->w, slot, url, &s->conn, out, msg, len);
}

/* The naming context root: the only base DirSync accepts. */
static int read_root(struct ad_source *s, const char *url, char *msg, size_t len)
{
	char *attrs[] = {"defaultNamingContext", NULL};
	LDAPMessage *res = NULL;
	struct timeval tv = {AD_OP_TIMEOUT_S, 0};
	struct berval **v = NULL;
	int rc = ldap_search_ext_s(s->ld, "", LDAP_SCOPE_BASE, "(objectClass=*)", attrs, 0, NULL, NULL, &tv, 1, &res);

	if (rc == LDAP_SUCCESS) {
		LDAPMessage *e = ldap_first_entry(s->ld, res);
		v = e ? ldap_get_values_len(s->ld, e, "defaultNamingContext") : NULL;
	}
	if (v == NULL || v[0] == NULL) {
		if (rc == LDAP_SUCCESS)
			snprintf(msg, len, "%s: the root DSE has no defaultNamingContext: not an Active Directory DC?", url);
		else
			ad__status_fmt(msg, len, url, ad__ldap_code(s->ld, rc), s->ld, "root DSE");
		s->w.problem = rc < 0 ? SOURCE_UNREACHABLE : SOURCE_FAILING;
		ldap_value_free_len(v);
		ldap_msgfree(res);
		return -EIO;
	}
	free(s->nc_root);
	s->nc_root = xstrndup(v[0]->bv_val, v[0]->bv_len);
	ldap_value_free_len(v);
	ldap_msgfree(res);
	return 0;
}

/* The wake-up search (LDAP_SERVER_NOTIFICATION_OID with show-deleted, so
 * deletions wake us too): filter exactly (objectClass=*), the only one a DC
 * accepts with it (docs/active-directory.md, "Change notification"). A DC
 * that refuses it leaves the source to poll. */
static void notify_start(struct ad_source *s)
{
	char *attrs[] = {LDAP_NO_ATTRS, NULL};
	LDAPControl n = {AD_OID_NOTIFY, {0, NULL}, 1}, d = {AD_OID_SHOW_DELETED, {0, NULL}, 1};
	LDAPControl *ctrls[] = {&n, &d, NULL};
	int id = -1;

	if (ldap_search_ext(s->nld, s->nc_root, LDAP_SCOPE_SUBTREE, "(objectClass=*)", attrs, 1, ctrls, NULL, NULL,
			    LDAP_NO_LIMIT, &id) != LDAP_SUCCESS)
		id = -1;
	s->notify_msgid = id;
}

/* Whether libldap has input: bytes on the socket, or data its TLS layer
 * decoded already (poll() on the socket cannot see that). */
static bool has_input(LDAP *ld, int fd)
{
	struct pollfd p = {.fd = fd, .events = POLLIN};
	Sockbuf *sb = NULL;

	if (ldap_get_option(ld, LDAP_OPT_SOCKBUF, &sb) == LDAP_OPT_SUCCESS && sb != NULL &&
	    ber_sockbuf_ctrl(sb, LBER_SB_OPT_DATA_READY, NULL) > 0)
		return true;
	return poll(&p, 1, 0) > 0;
}

/* Read what the notification search sent. Sets *woke on a change. Returns 0
 * or -ECONNRESET (the connection is gone). */
static int notify_drain(struct ad_source *s, bool *woke, const char *url, char *msg, size_t len)
{
	int fd = s->w.fds[1];

	while (s->notify_msgid >= 0 && has_input(s->nld, fd)) {
		LDAPMessage *res = NULL;
		struct timeval tv = {1, 0};
		int rc = ldap_result(s->nld, s->notify_msgid, LDAP_MSG_ONE, &tv, &res);
		if (rc < 0) {
			ad__status_fmt(msg, len, url, ad__ldap_code(s->nld, rc), s->nld, "change notification");
			s->w.problem = SOURCE_UNREACHABLE;
			return -ECONNRESET;
		}
		if (rc == LDAP_RES_SEARCH_ENTRY)
			*woke = true;
		else if (rc == LDAP_RES_SEARCH_RESULT)
			s->notify_msgid = -1; /* the DC ended it: poll until the next connection */
		ldap_msgfree(res);
		if (rc == 0)
			break;
	}
	return 0;
}

static void entries_free(struct ad_entry *e, size_t n)
{
	for (size_t i = 0; i < n; i++)
		ad__entry_free(&e[i]);
	free(e);
}

/* One DirSync round and its events; *n_entries: how many objects the DC
 * reported changed. */
static int run_round(struct ad_source *s, bool full, size_t *n_entries, const char *url, char *msg, size_t len)
{
	struct ad_entry *e = NULL;
	size_t n = 0;
	struct berval next = {0, NULL};
	int rc;

	*n_entries = 0;
	if (full || s->cookie.bv_val == NULL) {
		ad__cache_clear(&s->cache);
		rc = ad__dirsync(s, NULL, &e, &n, &next, url, msg, len);
		if (rc == 0)
			rc = ad__cache_apply(s, e, n, true, false, &next, url, msg, len);
	} else {
		if (s->cache.by_guid.count == 0 && !s->cache.warm) {
			/* a new run with a cookie: this leader's cache is empty;
			 * read the domain once, silently, then go on from the
			 * cookie (replays after it are harmless: whole entries) */
			rc = ad__dirsync(s, NULL, &e, &n, &next, url, msg, len);
			if (rc == 0 && (s->flags & AD_DIRSYNC_OBJECT_SECURITY) && s->reconcile_ms > 0) {
				/* This account reads no tombstones: a deletion
				 * made while no leader read, or found by a
				 * reconcile whose deletes were not committed,
				 * is in no cookie's answer. Report this read as
				 * a refresh with present_phase instead: the
				 * engine deletes what it exported that the DC
				 * no longer has (unchanged objects cost no
				 * request). Its cookie is as good as the old. */
				rc = ad__cache_apply(s, e, n, true, false, &next, url, msg, len);
				goto done;
			}
			if (rc == 0)
				rc = ad__cache_apply(s, e, n, false, true, NULL, url, msg, len);
			entries_free(e, n);
			e = NULL;
			n = 0;
			if (rc != 0) {
				free(next.bv_val);
				return rc;
			}
		}
		rc = ad__dirsync(s, &s->cookie, &e, &n, &next, url, msg, len);
		if (rc == 0)
			rc = ad__cache_apply(s, e, n, false, false, &next, url, msg, len);
		*n_entries = n;
	}
done:
	entries_free(e, n);
	if (rc == 0 && next.bv_val != NULL) {
		free(s->cookie.bv_val);
		s->cookie = next;
	} else {
		free(next.bv_val);
	}
	if (rc != 0 && rc != -ECANCELED && s->w.problem == SOURCE_PROBLEM_NONE)
		s->w.problem = SOURCE_FAILING;
	return rc;
}

/* What ended a wait. */
enum wake { WAKE_START, WAKE_POLL, WAKE_NOTIFICATION, WAKE_REFRESH, WAKE_RECONCILE };

/* Wait for a notification, a refresh request, stop, the poll interval or
 * the next reconcile. Returns 0 with *why, or a negative errno. */
static int wait_change(struct ad_source *s, enum wake *why, const char *url, char *msg, size_t len)
{
	uint64_t deadline = ad__now_ms() + s->poll_ms;

	if (s->reconcile_ms > 0 && s->reconcile_at < deadline)
		deadline = s->reconcile_at;
	for (;;) {
		struct pollfd p[2] = {{.fd = s->w.wake_fd, .events = POLLIN}, {.fd = s->w.fds[1], .events = POLLIN}};
		uint64_t t = ad__now_ms();
		bool woke = false;
		int rc;

		if (ad__is_stopping(s))
			return -ECANCELED;
		*why = WAKE_REFRESH;
		if (source_worker_take_refresh(&s->w) != 0)
			return 0;
		*why = s->reconcile_ms > 0 && t >= s->reconcile_at ? WAKE_RECONCILE : WAKE_POLL;
		if (t >= deadline)
			return 0;
		*why = WAKE_NOTIFICATION;
		if (s->notify_msgid >= 0 && (rc = notify_drain(s, &woke, url, msg, len)) != 0)
			return rc;
		if (woke) {
			/* a burst of changes comes as a burst of notifications:
			 * let it settle, then one DirSync reads them all */
			struct pollfd w = {.fd = s->w.wake_fd, .events = POLLIN};
			if (poll(&w, 1, AD_DEBOUNCE_MS) > 0)
				source_worker_wake_drain(&s->w);
			if ((rc = notify_drain(s, &woke, url, msg, len)) != 0)
				return rc;
			return 0;
		}
		if (poll(p, s->notify_msgid >= 0 ? 2 : 1, (int)(deadline - t)) < 0 && errno != EINTR) {
			snprintf(msg, len, "%s: poll: %s", url, strerror(errno));
			return -errno;
		}
		if (p[0].revents != 0)
			source_worker_wake_drain(&s->w);
	}
}

static void disconnect(void *impl)
{
	struct ad_source *s = impl;

	source_worker_unpublish(&s->w);
	if (s->ld != NULL)
		ldap_unbind_ext(s->ld, NULL, NULL);
	if (s->nld != NULL)
		ldap_unbind_ext(s->nld, NULL, NULL);
	s->ld = s->nld = NULL;
	s->notify_msgid = -1;
}

/* Once per run, after the first round: what an account that is not an
 * administrator cannot see (docs/active-directory.md, "Bind rights"). */
static int tell_object_security(struct ad_source *s, const char *url)
{
	if (s->told_object_security || !(s->flags & AD_DIRSYNC_OBJECT_SECURITY))
		return 0;
	s->told_object_security = true;
	if (s->reconcile_ms > 0)
		return ad__notice(s, true, "%s: %s is not an administrator: DirSync runs with OBJECT_SECURITY and "
				  "returns only what this account may read, and no deleted objects (tombstones) unless it "
				  "may list CN=Deleted Objects; deletions are found by comparing anchors every %u s "
				  "(source.reconcile_s)", url, s->conn.bind_dn ? s->conn.bind_dn : "the anonymous bind",
				  s->reconcile_ms / 1000);
	return ad__notice(s, true, "%s: %s is not an administrator: DirSync runs with OBJECT_SECURITY and returns "
			  "only what this account may read, and no deleted objects (tombstones) unless it may list "
			  "CN=Deleted Objects; source.reconcile_s is 0, so deletions may be missed",
			  url, s->conn.bind_dn ? s->conn.bind_dn : "the anonymous bind");
}

static int session(void *impl, const char *url, char *msg, size_t len)
{
	struct ad_source *s = impl;
	enum wake why = WAKE_START;
	size_t n = 0;
	int rc;

	if ((rc = conn_open(s, url, 0, &s->ld, msg, len)) != 0 || (rc = read_root(s, url, msg, len)) != 0)
		return rc;
	/* source.notify false: no second connection, DirSync every poll_s */
	if (s->notify) {
		if ((rc = conn_open(s, url, 1, &s->nld, msg, len)) != 0)
			return rc;
		notify_start(s);
	}
	const char *how = !s->notify ? "; change notification off (source.notify), polling"
			  : s->notify_msgid < 0 ? "; no change notification, polling" : "";
	if (s->ever_connected && s->last_url != s->w.url_idx && s->cookie.bv_val != NULL)
		/* DCs keep their own USNs: another DC's cookie falls back to
		 * its up-to-dateness vector and may report changes again,
		 * which is harmless (every report is a whole entry) */
		snprintf(msg, len, "%s: connected (DirSync on %s; another DC than the cookie's: changes may be read "
			 "again)%s", url, s->nc_root, how);
	else
		snprintf(msg, len, "%s: connected (DirSync on %s)%s", url, s->nc_root, how);
	s->ever_connected = true;
	s->last_url = s->w.url_idx;
	if ((rc = source_worker_status(&s->w, true, msg)) != 0)
		return rc;
	source_worker_healthy(&s->w); /* it works: the next failure backs off from the start */
	if (s->reconcile_ms > 0 && s->reconcile_at == 0)
		s->reconcile_at = ad__now_ms() + s->reconcile_ms;
	if (source_worker_take_refresh(&s->w) != 0)
		why = WAKE_REFRESH;
	for (;;) {
		if (why == WAKE_RECONCILE) {
			/* a DirSync first, so the cache holds everything
			 * that changed before the listing starts */
			rc = run_round(s, false, &n, url, msg, len);
			if (rc == 0)
				rc = ad__reconcile(s, url, msg, len);
			s->reconcile_at = ad__now_ms() + s->reconcile_ms;
		} else {
			rc = run_round(s, why == WAKE_REFRESH, &n, url, msg, len);
			if (rc == 0 && why == WAKE_POLL && n > 0)
				/* notifications normally bring changes at once:
				 * these came only by the poll */
				rc = ad__notice(s, false, "%s: the DirSync of the poll interval (source.poll_s) found %zu "
						"changed objects%s", url, n,
						s->notify ? " no change notification had announced"
							  : " (change notification off: source.notify)");
		}
		if (rc == 0)
			rc = tell_object_security(s, url);
		if (rc != 0)
			return rc;
		rc = wait_change(s, &why, url, msg, len);
		if (rc != 0)
			return rc;
		if (s->notify && s->notify_msgid < 0 && s->nld != NULL)
			notify_start(s);
	}
}

const struct source_worker_ops ad__worker_ops = {
	.session = session,
	.disconnect = disconnect,
	.release = ad__release,
};
