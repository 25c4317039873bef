/*
 * sync/source/ad_conn.c -- the AD source's worker thread: connect and bind
 * to one DC (TLS through ldap_tls.h, the password file re-read before every
 * bind), run DirSync rounds, wait for a change notification or the poll
 * interval, and on failure report it and move on to the next DC with backoff.
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
#include "sync/source/ad_internal.h"

static void set_options(LDAP *ld)
{
	const int v3 = LDAP_VERSION3, idle = 60, probes = 3, interval = 10;
	struct timeval net = {AD_NETWORK_TIMEOUT_S, 0}, op = {AD_OP_TIMEOUT_S, 0};

	ldap_set_option(ld, LDAP_OPT_PROTOCOL_VERSION, &v3);
	/* a subtree search from the domain root returns continuation
	 * references (CN=Configuration): never chase them */
	ldap_set_option(ld, LDAP_OPT_REFERRALS, LDAP_OPT_OFF);
	ldap_set_option(ld, LDAP_OPT_NETWORK_TIMEOUT, &net);
	ldap_set_option(ld, LDAP_OPT_TIMEOUT, &op);
	/* the notification connection is silent for hours: notice a DC that vanished */
	ldap_set_option(ld, LDAP_OPT_X_KEEPALIVE_IDLE, &idle);
	ldap_set_option(ld, LDAP_OPT_X_KEEPALIVE_PROBES, &probes);
	ldap_set_option(ld, LDAP_OPT_X_KEEPALIVE_INTERVAL, &interval);
}

static int publish_fd(struct ad_source *s, LDAP *ld, int slot)
{
	int fd = -1, rc = 0;

	ldap_get_option(ld, LDAP_OPT_DESC, &fd);
	pthread_mutex_lock(&s->lock);
	if (s->stopping)
		rc = -ECANCELED;
	else
		s->fds[slot] = fd;
	pthread_mutex_unlock(&s->lock);
	return rc;
}

/* Connect and bind one handle. On failure *out may hold a handle to unbind. */
static int conn_open(struct ad_source *s, const char *url, int slot, LDAP **out, char *msg, size_t len)
{
	const struct ldap_tls_config tls = {.starttls = s->starttls, .ca_file = s->tls_ca};
	int rc = ldap_initialize(out, url);

	s->problem = SOURCE_UNREACHABLE;
	if (rc != LDAP_SUCCESS) {
		ad__status_fmt(msg, len, url, rc, NULL, "initialize");
		return -EINVAL;
	}
	set_options(*out);
	if (ldap_tls_prepare(*out, url, &tls, msg, len) != 0)
		return -EIO;
	rc = ldap_connect(*out);
	if (rc != LDAP_SUCCESS) {
		/* a certificate failure reads "Can't contact LDAP server": say
		 * what is wrong with the certificate (name or IP mismatch, CA) */
		if (!ldap_tls_explain(url, &tls, AD_NETWORK_TIMEOUT_S * 1000, msg, len))
			ad__status_fmt(msg, len, url, rc, *out, "connect");
		return -ECONNREFUSED;
	}
	if (ldap_tls_start(*out, url, &tls, msg, len) != LDAP_SUCCESS)
		return -ECONNREFUSED;
	rc = publish_fd(s, *out, slot);
	if (rc != 0 || s->bind_dn == NULL)
		return rc;
	char *fresh = NULL, why[256];
	if (s->password_file != NULL && secret_read(s->password_file, &fresh, why, sizeof why) != 0) {
		snprintf(msg, len, "%s: cannot bind as %s: bind password: %s", url, s->bind_dn, why);
		s->problem = SOURCE_UNAUTHORIZED;
		return -EACCES;
	}
	const char *pw = fresh != NULL ? fresh : s->password;
	struct berval cred = {pw ? strlen(pw) : 0, (char *)pw};
	rc = ldap_sasl_bind_s(*out, s->bind_dn, LDAP_SASL_SIMPLE, &cred, NULL, NULL, NULL);
	secret_free(fresh);
	if (rc != LDAP_SUCCESS) {
		int code = ad__ldap_code(*out, rc);
		ad__status_fmt(msg, len, url, code, *out, "bind");
		/* RFC 4511 §4.2.2: the DC refused these credentials (a simple
		 * bind without TLS is "strong auth required" on a default DC) */
		if (code == LDAP_INVALID_CREDENTIALS || code == LDAP_INAPPROPRIATE_AUTH ||
		    code == LDAP_INSUFFICIENT_ACCESS || code == LDAP_UNWILLING_TO_PERFORM ||
		    code == LDAP_STRONG_AUTH_REQUIRED || code == LDAP_CONFIDENTIALITY_REQUIRED)
			s->problem = SOURCE_UNAUTHORIZED;
		return -EACCES;
	}
	return 0;
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
		s->problem = rc < 0 ? SOURCE_UNREACHABLE : SOURCE_FAILING;
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
	int fd = s->fds[1];

	while (s->notify_msgid >= 0 && has_input(s->nld, fd)) {
		LDAPMessage *res = NULL;
		struct timeval tv = {1, 0};
		int rc = ldap_result(s->nld, s->notify_msgid, LDAP_MSG_ONE, &tv, &res);
		if (rc < 0) {
			ad__status_fmt(msg, len, url, ad__ldap_code(s->nld, rc), s->nld, "change notification");
			s->problem = SOURCE_UNREACHABLE;
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

static void wake_drain(struct ad_source *s)
{
	eventfd_t v;

	(void)eventfd_read(s->wake_fd, &v);
}

static bool take_refresh(struct ad_source *s)
{
	bool r;

	pthread_mutex_lock(&s->lock);
	r = s->refresh_req;
	s->refresh_req = false;
	pthread_mutex_unlock(&s->lock);
	return r;
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
	if (rc != 0 && rc != -ECANCELED && s->problem == SOURCE_PROBLEM_NONE)
		s->problem = SOURCE_FAILING;
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
		struct pollfd p[2] = {{.fd = s->wake_fd, .events = POLLIN}, {.fd = s->fds[1], .events = POLLIN}};
		uint64_t t = ad__now_ms();
		bool woke = false;
		int rc;

		if (ad__is_stopping(s))
			return -ECANCELED;
		*why = WAKE_REFRESH;
		if (take_refresh(s))
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
			struct pollfd w = {.fd = s->wake_fd, .events = POLLIN};
			if (poll(&w, 1, AD_DEBOUNCE_MS) > 0)
				wake_drain(s);
			if ((rc = notify_drain(s, &woke, url, msg, len)) != 0)
				return rc;
			return 0;
		}
		if (poll(p, s->notify_msgid >= 0 ? 2 : 1, (int)(deadline - t)) < 0 && errno != EINTR) {
			snprintf(msg, len, "%s: poll: %s", url, strerror(errno));
			return -errno;
		}
		if (p[0].revents != 0)
			wake_drain(s);
	}
}

static int status(struct ad_source *s, bool connected, const char *msg)
{
	struct source_event *ev;

	if (s->status_sent && s->last_connected == connected && strcmp(s->last_msg, msg) == 0)
		return 0;
	ev = ad__ev_new(SOURCE_STATUS, OBJECT_UNKNOWN);
	ev->message = xstrdup(msg);
	ev->connected = connected;
	ev->problem = connected ? SOURCE_PROBLEM_NONE
			: s->problem != SOURCE_PROBLEM_NONE ? s->problem : SOURCE_UNREACHABLE;
	s->status_sent = true;
	s->last_connected = connected;
	snprintf(s->last_msg, sizeof s->last_msg, "%s", msg);
	return ad__push(s, ev);
}

static void disconnect(struct ad_source *s)
{
	pthread_mutex_lock(&s->lock);
	s->fds[0] = s->fds[1] = -1;
	pthread_mutex_unlock(&s->lock);
	if (s->ld != NULL)
		ldap_unbind_ext(s->ld, NULL, NULL);
	if (s->nld != NULL)
		ldap_unbind_ext(s->nld, NULL, NULL);
	s->ld = s->nld = NULL;
	s->notify_msgid = -1;
}

static bool backoff_wait(struct ad_source *s, unsigned failures, unsigned *seed)
{
	uint64_t d = s->backoff_min_ms;
	struct pollfd p = {.fd = s->wake_fd, .events = POLLIN};

	for (unsigned i = 0; i < failures && d < s->backoff_max_ms; i++)
		d *= 2;
	if (d > s->backoff_max_ms)
		d = s->backoff_max_ms;
	d = d / 2 + (uint64_t)rand_r(seed) % (d / 2 + 1); /* equal jitter */
	if (poll(&p, 1, (int)d) > 0)
		wake_drain(s);
	return ad__is_stopping(s);
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
				  "(source.reconcile_s)", url, s->bind_dn ? s->bind_dn : "the anonymous bind",
				  s->reconcile_ms / 1000);
	return ad__notice(s, true, "%s: %s is not an administrator: DirSync runs with OBJECT_SECURITY and returns "
			  "only what this account may read, and no deleted objects (tombstones) unless it may list "
			  "CN=Deleted Objects; source.reconcile_s is 0, so deletions may be missed",
			  url, s->bind_dn ? s->bind_dn : "the anonymous bind");
}

static int session(struct ad_source *s, const char *url, char *msg, size_t len)
{
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
	if (s->ever_connected && s->last_url != s->url_idx && s->cookie.bv_val != NULL)
		/* DCs keep their own USNs: another DC's cookie falls back to
		 * its up-to-dateness vector and may report changes again,
		 * which is harmless (every report is a whole entry) */
		snprintf(msg, len, "%s: connected (DirSync on %s; another DC than the cookie's: changes may be read "
			 "again)%s", url, s->nc_root, how);
	else
		snprintf(msg, len, "%s: connected (DirSync on %s)%s", url, s->nc_root, how);
	s->ever_connected = true;
	s->last_url = s->url_idx;
	if ((rc = status(s, true, msg)) != 0)
		return rc;
	if (s->reconcile_ms > 0 && s->reconcile_at == 0)
		s->reconcile_at = ad__now_ms() + s->reconcile_ms;
	if (take_refresh(s))
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

static void *worker_main(void *arg)
{
	struct ad_source *s = arg;
	unsigned failures = 0, seed = (unsigned)time(NULL) ^ (unsigned)(uintptr_t)s;
	char msg[AD_MSG_MAX];

	while (!ad__is_stopping(s)) {
		const char *url = s->urls[s->url_idx];
		int rc;

		snprintf(msg, sizeof msg, "%s: disconnected", url);
		s->problem = SOURCE_PROBLEM_NONE;
		rc = session(s, url, msg, sizeof msg);
		disconnect(s);
		if (ad__is_stopping(s) || rc == -ECANCELED)
			break;
		if (s->status_sent && s->last_connected)
			failures = 0; /* it worked for a while: start the backoff over */
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

/* With every signal blocked: the handlers belong to the loop thread, and a
 * write to a closed socket fails with EPIPE instead of raising SIGPIPE. */
int ad__worker_spawn(struct ad_source *s)
{
	sigset_t all, old;
	int rc;

	sigfillset(&all);
	pthread_sigmask(SIG_SETMASK, &all, &old);
	rc = pthread_create(&s->thread, NULL, worker_main, s);
	pthread_sigmask(SIG_SETMASK, &old, NULL);
	return -rc;
}
