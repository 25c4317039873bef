/*
 * sync/source/openldap_conn.c -- the OpenLDAP source's session on its worker
 * thread (source_worker.h runs it): connect and bind both RFC 4533 sessions
 * (ldap_conn.h), refresh them and wait in the persist phase. On failure the
 * worker reports it and reconnects with backoff to the next URL.
 */
#include <errno.h>
#include <poll.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

#include "sync/source/openldap_internal.h"

/* Connect and bind one session. On failure the handle stays in ls_ld for
 * session_disconnect to release. */
static int session_connect(struct ldap_session *x, const char *url, char *msg, size_t len)
{
	struct ldap_source *s = x->src;

	return ldap_conn_open(&s->w, x->slot, url, &s->conn, &x->ls.ls_ld, msg, len);
}

/* Drop the connection; the session resumes from its committed cookie. */
static void session_disconnect(struct ldap_session *x)
{
	if (x->ls.ls_ld != NULL)
		ldap_unbind_ext(x->ls.ls_ld, NULL, NULL);
	x->ls.ls_ld = NULL;
	x->refreshing = false;
	openldap__bv_copy(&x->ls.ls_cookie, &x->committed);
}

/* A full refresh was asked for (ldap_source_refresh): drop that session's
 * cookie and end the persist phase; the worker reconnects at once. */
static bool take_refresh_request(struct ldap_source *s)
{
	unsigned bits = source_worker_take_refresh(&s->w);

	for (size_t i = 0; i < s->n_sess; i++)
		if (bits & (1u << i))
			openldap__session_drop_cookie(&s->sess[i]);
	return bits != 0;
}

static int persist(struct ldap_source *s, const char *url, char *msg, size_t len)
{
	struct pollfd p[3];

	for (;;) {
		size_t n = 1;

		if (take_refresh_request(s))
			return SOURCE_WORKER_AGAIN;
		for (size_t i = 0; i < s->n_sess; i++) {
			int rc = openldap__session_drain(&s->sess[i], url, msg, len);
			if (rc != 0)
				return rc;
		}
		p[0] = (struct pollfd){.fd = s->w.wake_fd, .events = POLLIN};
		for (size_t i = 0; i < s->n_sess; i++)
			p[n++] = (struct pollfd){.fd = s->w.fds[s->sess[i].slot], .events = POLLIN};
		if (poll(p, n, -1) < 0 && errno != EINTR) {
			snprintf(msg, len, "%s: poll: %s", url, strerror(errno));
			return -errno;
		}
		if (p[0].revents != 0)
			source_worker_wake_drain(&s->w);
	}
}

/* Connect and bind both sessions to url; on success report it. */
static int connect_all(struct ldap_source *s, const char *url, char *msg, size_t len)
{
	int rc = 0;

	for (size_t i = 0; i < s->n_sess && rc == 0; i++)
		rc = session_connect(&s->sess[i], url, msg, len);
	if (rc != 0)
		return rc;
	snprintf(msg, len, "%s: connected", url);
	return source_worker_status(&s->w, true, msg);
}

static int session(void *impl, const char *url, char *msg, size_t len)
{
	struct ldap_source *s = impl;
	int rc = connect_all(s, url, msg, len);

	for (size_t i = 0; i < s->n_sess && rc == 0; i++)
		rc = openldap__session_refresh(&s->sess[i], url, msg, len);
	if (rc != 0)
		return rc;
	source_worker_healthy(&s->w); /* refreshed: the next failure backs off from the start */
	return persist(s, url, msg, len);
}

uint64_t openldap__mono_ms(void)
{
	struct timespec t;

	clock_gettime(CLOCK_MONOTONIC, &t);
	return (uint64_t)t.tv_sec * 1000 + (uint64_t)t.tv_nsec / 1000000;
}

/*
 * slapd 2.5's syncprov can deadlock when a connection is closed just after it
 * was sent e-syncRefreshRequired. The write that found the persistent
 * search's base gone (syncprov_matchops: "findbase failed") sends the result
 * while holding the overlay's op-list lock and then takes the search
 * connection's mutex to drop the search; closing that connection takes its
 * mutex and then, abandoning the search, the overlay's lock. A close that
 * lands between the two waits forever, and so does every later write and
 * sync search of the server (seen with slapd 2.5.13: the modify, both
 * abandons and the next search blocked in syncprov, threads' stacks taken
 * with gdb). Our reaction to the result -- a full refresh on the same
 * connection, and when the base is still gone, a disconnect -- takes well
 * under a millisecond, so it can land there whenever that server thread is
 * preempted. The slapd thread needs microseconds once it runs again: close
 * no sooner than OPENLDAP_CLOSE_GRACE_MS after such a result.
 */
#define OPENLDAP_CLOSE_GRACE_MS 250

static void close_grace(struct ldap_source *s)
{
	uint64_t last = 0, now = openldap__mono_ms();
	struct pollfd p = {.fd = s->w.wake_fd, .events = POLLIN};

	for (size_t i = 0; i < s->n_sess; i++)
		if (s->sess[i].refresh_required_ms > last)
			last = s->sess[i].refresh_required_ms;
	if (last == 0 || now >= last + OPENLDAP_CLOSE_GRACE_MS)
		return;
	/* stop() wakes this early: a stop must stay prompt */
	(void)poll(&p, 1, (int)(last + OPENLDAP_CLOSE_GRACE_MS - now));
}

static void disconnect(void *impl)
{
	struct ldap_source *s = impl;

	close_grace(s);
	source_worker_unpublish(&s->w);
	for (size_t i = 0; i < s->n_sess; i++)
		session_disconnect(&s->sess[i]);
}

const struct source_worker_ops openldap__worker_ops = {
	.session = session,
	.disconnect = disconnect,
	.release = openldap__release,
};
