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

static void disconnect(void *impl)
{
	struct ldap_source *s = impl;

	source_worker_unpublish(&s->w);
	for (size_t i = 0; i < s->n_sess; i++)
		session_disconnect(&s->sess[i]);
}

const struct source_worker_ops openldap__worker_ops = {
	.session = session,
	.disconnect = disconnect,
	.release = openldap__release,
};
