/*
 * sync/source/openldap_conn.c -- the worker thread: connect and bind both
 * sessions (StartTLS, a password file re-read before every bind), run them,
 * and on failure report it and reconnect with backoff to the next URL.
 */
#include <errno.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <time.h>

#include "sync/secret.h"
#include "sync/source/openldap_internal.h"

#define REFRESH_ASKED 1 /* persist()'s "reconnect now, no error" */

void openldap__status_fmt(char *msg, size_t len, const char *url, int err, LDAP *ld, const char *what)
{
	char *diag = NULL;

	if (ld != NULL)
		ldap_get_option(ld, LDAP_OPT_DIAGNOSTIC_MESSAGE, &diag);
	snprintf(msg, len, "%s: %s (%s%s%s)", url, ldap_err2string(err), what,
		 diag && *diag ? ": " : "", diag ? diag : "");
	ldap_memfree(diag);
}

/* The result code behind a libldap failure: rc itself, or for -1 the
 * handle's own code (e.g. LDAP_SERVER_DOWN). */
int openldap__ldap_code(LDAP *ld, int rc)
{
	int err = rc;

	if (rc < 0 && ld != NULL)
		ldap_get_option(ld, LDAP_OPT_RESULT_CODE, &err);
	return err;
}

static void set_options(LDAP *ld)
{
	const int v3 = LDAP_VERSION3, idle = 60, probes = 3, interval = 10;
	struct timeval net = {NETWORK_TIMEOUT_S, 0}, op = {OP_TIMEOUT_S, 0};

	ldap_set_option(ld, LDAP_OPT_PROTOCOL_VERSION, &v3); /* libldap defaults to v2 */
	ldap_set_option(ld, LDAP_OPT_REFERRALS, LDAP_OPT_OFF);
	ldap_set_option(ld, LDAP_OPT_NETWORK_TIMEOUT, &net);
	ldap_set_option(ld, LDAP_OPT_TIMEOUT, &op);
	/* a persist phase is silent for hours: notice a peer that vanished */
	ldap_set_option(ld, LDAP_OPT_X_KEEPALIVE_IDLE, &idle);
	ldap_set_option(ld, LDAP_OPT_X_KEEPALIVE_PROBES, &probes);
	ldap_set_option(ld, LDAP_OPT_X_KEEPALIVE_INTERVAL, &interval);
}

/* Make the socket known to stop(), unless stop() already ran. */
static int publish_fd(struct ldap_session *x)
{
	struct ldap_source *s = x->src;
	int fd = -1, rc = 0;

	ldap_get_option(x->ls.ls_ld, LDAP_OPT_DESC, &fd);
	pthread_mutex_lock(&s->lock);
	if (s->stopping)
		rc = -ECANCELED;
	else
		x->fd = fd;
	pthread_mutex_unlock(&s->lock);
	return rc;
}

/* Connect and bind one session. On failure the handle stays in ls_ld for
 * session_disconnect to release. */
static int session_connect(struct ldap_session *x, const char *url, char *msg, size_t len)
{
	struct ldap_source *s = x->src;
	int rc = ldap_initialize(&x->ls.ls_ld, url);

	if (rc != LDAP_SUCCESS) {
		openldap__status_fmt(msg, len, url, rc, NULL, "initialize");
		return -EINVAL;
	}
	set_options(x->ls.ls_ld);
	const struct ldap_tls_config tls = {.starttls = s->starttls, .ca_file = s->tls_ca};
	if (ldap_tls_prepare(x->ls.ls_ld, url, &tls, msg, len) != 0) {
		s->problem = SOURCE_UNREACHABLE;
		return -EIO;
	}
	rc = ldap_connect(x->ls.ls_ld);
	if (rc != LDAP_SUCCESS) {
		/* an ldaps:// certificate failure reads "Can't contact LDAP server"
		 * here: look at the certificate and say what is wrong with it */
		if (!ldap_tls_explain(url, &tls, NETWORK_TIMEOUT_S * 1000, msg, len))
			openldap__status_fmt(msg, len, url, rc, x->ls.ls_ld, "connect");
		s->problem = SOURCE_UNREACHABLE;
		return -ECONNREFUSED;
	}
	rc = ldap_tls_start(x->ls.ls_ld, url, &tls, msg, len);
	if (rc != LDAP_SUCCESS) {
		s->problem = SOURCE_UNREACHABLE;
		return -ECONNREFUSED;
	}
	rc = publish_fd(x);
	if (rc != 0 || s->bind_dn == NULL)
		return rc; /* no bind_dn: anonymous, a password alone means nothing */
	char *fresh = NULL, why[256];
	if (s->password_file != NULL) {
		/* Re-read on every bind: fixing the file takes effect without a
		 * restart, under the same checks as at start-up. */
		rc = secret_read(s->password_file, &fresh, why, sizeof why);
		if (rc != 0) {
			snprintf(msg, len, "%s: cannot bind as %s: bind password: %s", url, s->bind_dn, why);
			s->problem = SOURCE_UNAUTHORIZED;
			return -EACCES;
		}
	}
	const char *pw = fresh != NULL ? fresh : s->password;
	struct berval cred = {pw ? strlen(pw) : 0, (char *)pw};
	rc = ldap_sasl_bind_s(x->ls.ls_ld, s->bind_dn, LDAP_SASL_SIMPLE, &cred, NULL, NULL, NULL);
	secret_free(fresh);
	if (rc != LDAP_SUCCESS) {
		int code = openldap__ldap_code(x->ls.ls_ld, rc);
		openldap__status_fmt(msg, len, url, code, x->ls.ls_ld, "bind");
		/* RFC 4511 §4.2.2 / appendix A: the server refused these credentials */
		s->problem = code == LDAP_INVALID_CREDENTIALS || code == LDAP_INAPPROPRIATE_AUTH ||
					     code == LDAP_INSUFFICIENT_ACCESS || code == LDAP_UNWILLING_TO_PERFORM ||
					     code == LDAP_STRONG_AUTH_REQUIRED || code == LDAP_CONFIDENTIALITY_REQUIRED
				     ? SOURCE_UNAUTHORIZED
				     : SOURCE_UNREACHABLE;
		return -EACCES;
	}
	return 0;
}

/* Drop the connection; the session resumes from its committed cookie. */
static void session_disconnect(struct ldap_session *x)
{
	struct ldap_source *s = x->src;

	pthread_mutex_lock(&s->lock);
	x->fd = -1;
	pthread_mutex_unlock(&s->lock);
	if (x->ls.ls_ld != NULL)
		ldap_unbind_ext(x->ls.ls_ld, NULL, NULL);
	x->ls.ls_ld = NULL;
	x->refreshing = false;
	openldap__bv_copy(&x->ls.ls_cookie, &x->committed);
}

static void wake_drain(struct ldap_source *s)
{
	eventfd_t v;

	(void)eventfd_read(s->wake_fd, &v);
}

/* A full refresh was asked for (ldap_source_refresh): drop that session's
 * cookie and end the persist phase; the worker reconnects at once. */
static bool take_refresh_request(struct ldap_source *s)
{
	bool any = false;

	pthread_mutex_lock(&s->lock);
	for (size_t i = 0; i < s->n_sess; i++)
		if (s->refresh_req[i]) {
			s->refresh_req[i] = false;
			openldap__session_drop_cookie(&s->sess[i]);
			any = true;
		}
	pthread_mutex_unlock(&s->lock);
	return any;
}

static int persist(struct ldap_source *s, const char *url, char *msg, size_t len)
{
	struct pollfd p[3];

	for (;;) {
		size_t n = 1;

		if (take_refresh_request(s))
			return REFRESH_ASKED;
		for (size_t i = 0; i < s->n_sess; i++) {
			int rc = openldap__session_drain(&s->sess[i], url, msg, len);
			if (rc != 0)
				return rc;
		}
		p[0] = (struct pollfd){.fd = s->wake_fd, .events = POLLIN};
		for (size_t i = 0; i < s->n_sess; i++)
			p[n++] = (struct pollfd){.fd = s->sess[i].fd, .events = POLLIN};
		if (poll(p, n, -1) < 0 && errno != EINTR) {
			snprintf(msg, len, "%s: poll: %s", url, strerror(errno));
			return -errno;
		}
		if (p[0].revents != 0)
			wake_drain(s);
	}
}

static int status(struct ldap_source *s, bool connected, const char *msg)
{
	enum source_problem problem = connected ? SOURCE_PROBLEM_NONE : s->problem;
	struct source_event *ev;

	/* report changes only: a server that stays down is one event */
	if (s->status_sent && s->last_connected == connected && strcmp(s->last_msg, msg) == 0)
		return 0;
	ev = openldap__ev_new(SOURCE_STATUS, OBJECT_UNKNOWN);
	ev->message = xstrdup(msg);
	ev->connected = connected;
	ev->problem = problem != SOURCE_PROBLEM_NONE || connected ? problem : SOURCE_UNREACHABLE;
	s->status_sent = true;
	s->last_connected = connected;
	snprintf(s->last_msg, sizeof s->last_msg, "%s", msg);
	return openldap__push(s, ev);
}

/* Sleep for the backoff delay unless stop() comes first. "Equal jitter":
 * half fixed, half random, so agents that lost the same server do not all
 * come back at once. Returns true when stopping. */
static bool backoff_wait(struct ldap_source *s, unsigned failures, unsigned *seed)
{
	uint64_t d = s->backoff_min_ms;
	struct pollfd p = {.fd = s->wake_fd, .events = POLLIN};

	for (unsigned i = 0; i < failures && d < s->backoff_max_ms; i++)
		d *= 2;
	if (d > s->backoff_max_ms)
		d = s->backoff_max_ms;
	d = d / 2 + (uint64_t)rand_r(seed) % (d / 2 + 1);
	if (poll(&p, 1, (int)d) > 0)
		wake_drain(s);
	return openldap__is_stopping(s);
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
	return status(s, true, msg);
}

static void *worker_main(void *arg)
{
	struct ldap_source *s = arg;
	unsigned failures = 0, seed = (unsigned)time(NULL) ^ (unsigned)(uintptr_t)s;
	char msg[MSG_MAX];

	while (!openldap__is_stopping(s)) {
		const char *url = s->urls[s->url_idx];
		int rc;

		snprintf(msg, sizeof msg, "%s: disconnected", url); /* failures say more */
		s->problem = SOURCE_UNREACHABLE;
		rc = connect_all(s, url, msg, sizeof msg);

		for (size_t i = 0; i < s->n_sess && rc == 0; i++)
			rc = openldap__session_refresh(&s->sess[i], url, msg, sizeof msg);
		if (rc == 0) {
			failures = 0;
			rc = persist(s, url, msg, sizeof msg);
		}
		for (size_t i = 0; i < s->n_sess; i++)
			session_disconnect(&s->sess[i]);
		if (openldap__is_stopping(s))
			break;
		if (rc == REFRESH_ASKED)
			continue; /* same URL, at once: not a failure */
		status(s, false, msg);
		if (backoff_wait(s, failures++, &seed))
			break;
		s->url_idx = (s->url_idx + 1) % s->n_urls;
	}
	pthread_mutex_lock(&s->lock);
	s->exited = true;
	pthread_mutex_unlock(&s->lock);
	uv_async_send(&s->async);
	return NULL;
}

/* The worker runs with every signal blocked: the process's handlers belong
 * to the loop thread, and a write to a closed socket then fails with EPIPE
 * instead of raising SIGPIPE. */
int openldap__worker_spawn(struct ldap_source *s)
{
	sigset_t all, old;
	int rc;

	sigfillset(&all);
	pthread_sigmask(SIG_SETMASK, &all, &old);
	rc = pthread_create(&s->thread, NULL, worker_main, s);
	pthread_sigmask(SIG_SETMASK, &old, NULL);
	return -rc;
}
