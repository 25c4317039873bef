/*
 * sync/source/ldap_poll.c -- the polling LDAP source (ldap_poll.h): its
 * worker's session (connect, poll, wait), the polls themselves over
 * ldap_read.h's paged search, and the source port.
 *
 * The worker thread, the ring, the reconnect loop and pause/resume/status/
 * stop are source_worker.h's; connections and binds are ldap_conn.h's.
 */
#include <errno.h>
#include <poll.h>
#include <sys/socket.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include "common/xalloc.h"
#include "sync/base64.h"
#include "sync/hash.h"
#include "sync/source/ad.h"
#include "sync/source/ldap_conn.h"
#include "sync/source/ldap_poll.h"
#include "sync/source/ldap_read.h"
#include "sync/source/source_worker.h"

#define OP_TIMEOUT_S 30      /* the bind; each search request has ldap_read.c's own */
#define FILTER_MAX 4096

struct ldap_poll {
	struct source_worker w; /* first: a source_run is a struct ldap_poll (source_worker.h) */

	/* configuration, copied */
	struct ldap_conn_config conn;
	char *base[2], *filter[2]; /* [0] users, [1] groups; base[1] NULL: no groups */
	char *anchor_attr;
	char **attrs;              /* what each search requests, NULL-terminated */
	unsigned interval_s, full_every;

	/* worker only */
	LDAP *ld;
	struct ldap_poll_cursor cur; /* what the events delivered so far add up to */
	bool need_full[2];           /* the next poll of that scope reads it in full */
	unsigned long polls;         /* polls done by this run (poll_full_every counts them) */
};

/* ---- entries ------------------------------------------------------------------ */

/* The anchor as text. entryUUID in lower case as slapd writes it and as the
 * openldap source sends it (RFC 4530 §2), so switching between the two kinds
 * keeps every object's identity; objectGUID as the GUID text the ad source
 * uses (ad_guid_format); any other value that is not printable ASCII as
 * base64 (sync/base64.h), the form binary attributes take everywhere. */
static char *anchor_text(const char *attr, const struct berval *v)
{
	char g[37];
	bool printable = v->bv_len > 0;

	if (strcasecmp(attr, "objectGUID") == 0 && ad_guid_format(v->bv_val, v->bv_len, g) == 0)
		return xstrdup(g);
	for (size_t i = 0; i < v->bv_len && printable; i++)
		printable = v->bv_val[i] > ' ' && v->bv_val[i] <= '~';
	if (!printable)
		return base64_encode(v->bv_val, v->bv_len);
	char *a = xstrndup(v->bv_val, v->bv_len);
	if (strcasecmp(attr, "entryUUID") == 0)
		for (char *p = a; *p; p++)
			if (*p >= 'A' && *p <= 'F')
				*p = (char)(*p - 'A' + 'a');
	return a;
}

static struct source_event *make_entry(void *ctx, LDAP *ld, LDAPMessage *msg, enum object_type type)
{
	struct ldap_poll *s = ctx;
	struct berval **v = ldap_get_values_len(ld, msg, s->anchor_attr);
	struct source_event *ev = NULL;
	char *dn;

	if (v != NULL && v[0] != NULL && v[0]->bv_len > 0) {
		char *a = anchor_text(s->anchor_attr, v[0]);
		if (strlen(a) <= LDAP_POLL_ANCHOR_MAX) {
			ev = source_event_new(SOURCE_ENTRY, type);
			ev->anchor = a;
			if ((dn = ldap_get_dn(ld, msg)) != NULL) {
				ev->dn = xstrdup(dn);
				ldap_memfree(dn);
			}
			ldap_read_attrs(ld, msg, ev);
		} else {
			free(a); /* no cursor could name it: as an entry without an anchor */
		}
	}
	ldap_value_free_len(v);
	return ev;
}

/* The entry's modifyTimestamp in seconds, or -1 (none, or not GeneralizedTime). */
static int64_t entry_ts(const struct source_event *ev)
{
	int64_t ts;

	for (size_t i = 0; i < ev->n_attrs; i++)
		if (strcasecmp(ev->attrs[i].name, "modifyTimestamp") == 0 && ev->attrs[i].n_values == 1 &&
		    ldap_poll_time_parse(ev->attrs[i].values[0], strlen(ev->attrs[i].values[0]), &ts) == 0)
			return ts;
	return -1;
}

/* What was delivered: the DN and every attribute with its values, in the
 * server's order (one server answers one entry the same way twice). */
static uint64_t entry_hash(const struct source_event *ev)
{
	uint64_t h = hash_bytes(HASH_SEED, ev->dn ? ev->dn : "", ev->dn ? strlen(ev->dn) + 1 : 1);

	for (size_t i = 0; i < ev->n_attrs; i++) {
		h = hash_bytes(h, ev->attrs[i].name, strlen(ev->attrs[i].name) + 1);
		for (size_t k = 0; k < ev->attrs[i].n_values; k++)
			h = hash_bytes(h, ev->attrs[i].values[k], strlen(ev->attrs[i].values[k]) + 1);
		h = hash_bytes(h, "\n", 1);
	}
	return h;
}

struct read_item {
	struct source_event *ev;
	int64_t ts;
	size_t idx;
};

static int item_cmp(const void *a, const void *b)
{
	const struct read_item *x = a, *y = b;

	if (x->ts != y->ts)
		return x->ts < y->ts ? -1 : 1;
	return x->idx < y->idx ? -1 : x->idx > y->idx; /* stable: the server's order */
}

/* ---- one poll ----------------------------------------------------------------- */

static const char *scope_name(int i)
{
	return i == 0 ? "users" : "groups";
}

static int push_cursor(struct ldap_poll *s, struct source_event *ev)
{
	ldap_poll_cursor_encode(&s->cur, &ev->cursor, &ev->cursor_len);
	return source_worker_push(&s->w, ev);
}

/* Read scope i (in full, or what changed since its cursor second) into
 * *items, sorted by modifyTimestamp. */
static int read_changes(struct ldap_poll *s, int i, bool full, const char *url, struct read_item **items, size_t *n,
			char *msg, size_t len)
{
	const char *f = s->filter[i];
	char filter[FILTER_MAX], ts[16], err[400];
	struct source_event **evs = NULL;
	size_t nev = 0;
	int rc;

	if (full) {
		snprintf(filter, sizeof filter, "%s", f);
	} else {
		ldap_poll_time_format(s->cur.scope[i].ts, ts);
		/* RFC 4515 §3: a filter nests as (&(f)(g)); the scope filter has its parentheses */
		if (snprintf(filter, sizeof filter, "(&%s(modifyTimestamp>=%s))", f, ts) >= (int)sizeof filter)
			return source_worker_fail(msg, len, -EINVAL, "source.%s.filter: too long", scope_name(i));
	}
	rc = ldap_read_scope(s->ld, s->base[i], filter, s->attrs, i == 0 ? OBJECT_USER : OBJECT_GROUP, make_entry, s,
			     &evs, &nev, err, sizeof err);
	if (rc != 0) {
		int code = ldap_conn_code(s->ld, -1);
		snprintf(msg, len, "%s: %s search: %s", url, scope_name(i), err);
		source_worker_note(&s->w, i == 0 ? "users search" : "groups search", code);
		s->w.problem = rc == -ECONNRESET || code == LDAP_SERVER_DOWN ? SOURCE_UNREACHABLE : SOURCE_FAILING;
		for (size_t k = 0; k < nev; k++)
			source_event_free(evs[k]);
		free(evs);
		return rc;
	}
	*items = xcalloc(nev ? nev : 1, sizeof **items);
	for (size_t k = 0; k < nev; k++)
		(*items)[k] = (struct read_item){evs[k], entry_ts(evs[k]), k};
	free(evs);
	qsort(*items, nev, sizeof **items, item_cmp);
	*n = nev;
	return 0;
}

/*
 * A full read of scope i: a refresh with present_phase (source.h), every
 * entry reported, the cursor only at its end (an abandoned refresh resumes
 * from the one before). A delta poll: the changed entries in modifyTimestamp
 * order, each second's last one carrying the cursor (an event with a cursor
 * must cover every event before it: an earlier second is complete once a
 * later one starts, in sorted order).
 */
static int poll_scope(struct ldap_poll *s, int i, bool full, const char *url, char *msg, size_t len)
{
	enum object_type type = i == 0 ? OBJECT_USER : OBJECT_GROUP;
	struct ldap_poll_scope_cursor *c = &s->cur.scope[i];
	struct read_item *it = NULL;
	size_t n = 0, k = 0;
	bool dirty = false;
	int rc;

	rc = read_changes(s, i, full, url, &it, &n, msg, len);
	if (rc != 0)
		return rc;
	if (full && (rc = source_worker_push(&s->w, source_event_new(SOURCE_REFRESH_BEGIN, type))) != 0)
		goto out;
	for (k = 0; k < n; k++) {
		struct source_event *ev = it[k].ev;
		bool group_end = k + 1 == n || it[k + 1].ts != it[k].ts;
		bool deliver = full;

		it[k].ev = NULL;
		if (it[k].ts >= 0) {
			if (ldap_poll_take(c, it[k].ts, ev->anchor, entry_hash(ev)))
				deliver = dirty = true;
		} else {
			deliver = true; /* no usable modifyTimestamp: the cursor cannot count it */
		}
		if (!deliver) {
			source_event_free(ev);
			if (!full && group_end && dirty) {
				rc = push_cursor(s, source_event_new(SOURCE_CURSOR, type));
				dirty = false;
			}
		} else if (!full && group_end && dirty) {
			rc = push_cursor(s, ev);
			dirty = false;
		} else {
			rc = source_worker_push(&s->w, ev);
		}
		if (rc != 0)
			goto out;
	}
	if (full) {
		struct source_event *end = source_event_new(SOURCE_REFRESH_END, type);
		if (c->ts < 0)
			c->ts = 0; /* read in full, and empty: from now on, what changed since 1970 */
		end->present_phase = true;
		if ((rc = push_cursor(s, end)) != 0)
			goto out;
		/* said in the log: deletes are found only here (docs/sources.md) */
		struct source_event *note = source_event_new(SOURCE_NOTICE, OBJECT_UNKNOWN);
		char text[160];
		snprintf(text, sizeof text, "ldap-poll: full read of %s done (poll %lu): %zu entries", scope_name(i),
			 s->polls, n);
		note->message = xstrdup(text);
		rc = source_worker_push(&s->w, note);
	}
out:
	for (; k < n; k++)
		source_event_free(it[k].ev);
	free(it);
	return rc;
}

/* One poll of every scope. */
static int poll_once(struct ldap_poll *s, const char *url, char *msg, size_t len)
{
	unsigned bits = source_worker_take_refresh(&s->w);
	bool periodic;
	int rc;

	s->polls++;
	periodic = s->full_every <= 1 || s->polls % s->full_every == 0;
	for (int i = 0; i < 2; i++) {
		if (s->base[i] == NULL)
			continue;
		if (bits & (1u << i))
			s->need_full[i] = true;
		bool full = periodic || s->need_full[i] || s->cur.scope[i].ts < 0;
		/* a full read that fails is tried again in full on the next connection */
		s->need_full[i] = full;
		rc = poll_scope(s, i, full, url, msg, len);
		if (rc != 0)
			return rc;
		if (full)
			s->need_full[i] = false;
	}
	return 0;
}

static uint64_t now_ms(void)
{
	struct timespec t;

	clock_gettime(CLOCK_MONOTONIC, &t);
	return (uint64_t)t.tv_sec * 1000 + (uint64_t)t.tv_nsec / 1000000;
}

/* Has the server closed the connection (EOF, or an error on the socket)?
 * Bytes waiting are not that: with TLS 1.3 they can be a session ticket
 * (RFC 8446 §4.6.1) libldap has not read yet, and a Notice of Disconnection
 * (RFC 4511 §4.4.1) is followed by the close itself. */
static bool peer_closed(int fd, short revents)
{
	char c;

	if (revents & (POLLHUP | POLLERR))
		return true;
	return recv(fd, &c, 1, MSG_PEEK | MSG_DONTWAIT) == 0;
}

/* Wait out the poll interval; a refresh request or stop() ends it early
 * (both write the wake eventfd). SOURCE_WORKER_AGAIN when the server closed
 * the idle connection (slapd's idletimeout, a restart): reconnect at once,
 * which is no failure. */
static int wait_interval(struct ldap_poll *s, const char *url, char *msg, size_t len)
{
	uint64_t deadline = now_ms() + (uint64_t)s->interval_s * 1000;
	bool watch = s->w.fds[0] >= 0;

	for (;;) {
		uint64_t t = now_ms();
		struct pollfd p[2] = {{.fd = s->w.wake_fd, .events = POLLIN}, {.fd = s->w.fds[0], .events = POLLIN}};
		if (source_worker_stopping(&s->w))
			return -ECANCELED;
		if (t >= deadline)
			return 0;
		if (poll(p, watch ? 2 : 1, (int)(deadline - t)) < 0 && errno != EINTR) {
			snprintf(msg, len, "%s: poll: %s", url, strerror(errno));
			return -errno;
		}
		if (p[0].revents != 0) {
			source_worker_wake_drain(&s->w);
			pthread_mutex_lock(&s->w.lock);
			bool asked = s->w.refresh_req != 0;
			pthread_mutex_unlock(&s->w.lock);
			if (asked)
				return 0;
		}
		if (watch && p[1].revents != 0) {
			if (peer_closed(p[1].fd, p[1].revents))
				return SOURCE_WORKER_AGAIN;
			watch = false; /* bytes for libldap: the next search reads them; do not spin */
		}
	}
}

static int session(void *impl, const char *url, char *msg, size_t len)
{
	struct ldap_poll *s = impl;
	int rc = ldap_conn_open(&s->w, 0, url, &s->conn, &s->ld, msg, len);

	if (rc != 0)
		return rc;
	snprintf(msg, len, "%s: connected (polling every %us, a full read every %u polls)", url, s->interval_s,
		 s->full_every);
	if ((rc = source_worker_status(&s->w, true, msg)) != 0)
		return rc;
	for (;;) {
		if ((rc = poll_once(s, url, msg, len)) != 0)
			return rc;
		source_worker_healthy(&s->w);
		if ((rc = wait_interval(s, url, msg, len)) != 0)
			return rc;
	}
}

static void disconnect(void *impl)
{
	struct ldap_poll *s = impl;

	source_worker_unpublish(&s->w);
	if (s->ld != NULL)
		ldap_unbind_ext(s->ld, NULL, NULL);
	s->ld = NULL;
}

static void poll_free(struct ldap_poll *s)
{
	for (int i = 0; i < 2; i++) {
		free(s->base[i]);
		free(s->filter[i]);
	}
	free(s->anchor_attr);
	for (char **a = s->attrs; a && *a; a++)
		free(*a);
	free(s->attrs);
	ldap_poll_cursor_free(&s->cur);
	ldap_conn_config_free(&s->conn);
	free(s);
}

static void release(void *impl)
{
	poll_free(impl);
}

static const struct source_worker_ops poll_worker_ops = {
	.session = session,
	.disconnect = disconnect,
	.release = release,
};

/* ---- the source port -------------------------------------------------------------- */

static const char *anchor_of(const struct ldap_poll_config *cfg)
{
	return cfg->anchor_attribute && *cfg->anchor_attribute ? cfg->anchor_attribute : LDAP_POLL_ANCHOR_DEFAULT;
}

/* The attributes every search requests: the mapped ones (NULL: all user
 * attributes, "*") plus the anchor and the two timestamps, which are
 * operational (RFC 4512 §3.4) and come only when named. */
static char **attr_list(const struct ldap_poll_config *cfg, const char *const *attrs, size_t n_attrs)
{
	size_t n = attrs ? n_attrs : 1, k = 0;
	char **a = xcalloc(n + 4, sizeof *a);

	if (attrs == NULL)
		a[k++] = xstrdup("*");
	else
		for (size_t i = 0; i < n_attrs; i++)
			a[k++] = xstrdup(attrs[i]);
	a[k++] = xstrdup(anchor_of(cfg));
	a[k++] = xstrdup("modifyTimestamp");
	a[k++] = xstrdup("createTimestamp");
	return a;
}

static char *filter_copy(const char *f, const char *dflt)
{
	return xstrdup(f && *f ? f : dflt);
}

static int config_check(const struct ldap_poll_config *cfg, char *errmsg, size_t errlen)
{
	if (cfg->urls == NULL || cfg->n_urls == 0)
		return source_worker_fail(errmsg, errlen, -EINVAL, "source: no LDAP URL configured");
	for (size_t i = 0; i < cfg->n_urls; i++)
		if (cfg->urls[i] == NULL || !ldap_is_ldap_url(cfg->urls[i]))
			return source_worker_fail(errmsg, errlen, -EINVAL, "source.url: \"%s\" is not an LDAP URL",
						  cfg->urls[i] ? cfg->urls[i] : "(null)");
	if (cfg->user_base == NULL || cfg->user_base[0] == '\0')
		return source_worker_fail(errmsg, errlen, -EINVAL, "source.users.base is empty");
	const char *f[2] = {cfg->user_filter, cfg->group_filter};
	for (int i = 0; i < 2; i++)
		if (f[i] != NULL && f[i][0] != '\0' && f[i][0] != '(')
			return source_worker_fail(errmsg, errlen, -EINVAL,
						  "source.%s.filter: \"%s\" must be in parentheses (RFC 4515)",
						  scope_name(i), f[i]);
	return 0;
}

static int p_start(struct source *src, uv_loop_t *loop, const void *cursor, size_t cursor_len,
		   const char *const *attrs, size_t n_attrs, source_event_cb cb, void *data, struct source_run **out,
		   char *errmsg, size_t errlen)
{
	const struct ldap_poll_config *cfg = src->impl;
	struct ldap_poll *s;
	int rc;

	*out = NULL;
	if ((rc = config_check(cfg, errmsg, errlen)) != 0)
		return rc;
	s = xcalloc(1, sizeof *s);
	source_worker_init(&s->w, cfg->urls, cfg->n_urls, cfg->queue_max, cfg->backoff_min_ms, cfg->backoff_max_ms);
	ldap_conn_config_copy(&s->conn, cfg->bind_dn, cfg->password, cfg->password_file, &cfg->tls, OP_TIMEOUT_S,
			      &cfg->sasl);
	s->base[0] = xstrdup(cfg->user_base);
	s->filter[0] = filter_copy(cfg->user_filter, "(objectClass=*)");
	if (cfg->group_base != NULL && cfg->group_base[0] != '\0') {
		s->base[1] = xstrdup(cfg->group_base);
		s->filter[1] = filter_copy(cfg->group_filter, "(objectClass=*)");
	}
	s->anchor_attr = xstrdup(anchor_of(cfg));
	s->attrs = attr_list(cfg, attrs, n_attrs);
	s->interval_s = cfg->poll_interval_s ? cfg->poll_interval_s : LDAP_POLL_INTERVAL_DEFAULT_S;
	s->full_every = cfg->full_every ? cfg->full_every : LDAP_POLL_FULL_EVERY_DEFAULT;
	rc = ldap_poll_cursor_decode(&s->cur, cursor, cursor_len, errmsg, errlen);
	if (rc != 0)
		goto err_after_alloc;
	rc = source_worker_start(&s->w, loop, &poll_worker_ops, s, cb, data, errmsg, errlen);
	if (rc != 0)
		return rc; /* released by source_worker_start */
	*out = (struct source_run *)s;
	return 0;

err_after_alloc:
	source_worker_release(&s->w);
	poll_free(s);
	return rc;
}

/* The next poll reads that scope in full, and comes now. */
static void p_refresh(struct source_run *run, enum object_type type)
{
	source_worker_refresh((struct source_worker *)run, type == OBJECT_GROUP ? 2u : 1u);
}

static int p_describe_cursor(const struct source *src, const void *cursor, size_t cursor_len, char *out,
			     size_t outlen)
{
	(void)src;
	return ldap_poll_cursor_describe(cursor, cursor_len, out, outlen);
}

/* canopyctl plan: a scope read now, on a connection of its own (source.h). */
static int p_read_scope(struct source *src, enum object_type type, const char *const *attrs, size_t n_attrs,
			struct source_event ***out, size_t *n_out, char *errmsg, size_t errlen)
{
	const struct ldap_poll_config *cfg = src->impl;
	const char *base = type == OBJECT_GROUP ? cfg->group_base : cfg->user_base;
	const char *filter = type == OBJECT_GROUP ? cfg->group_filter : cfg->user_filter;
	struct ldap_poll ctx = {.anchor_attr = (char *)anchor_of(cfg)};
	struct ldap_conn_config conn;
	LDAP *ld = NULL;
	char **al;
	int rc;

	*out = NULL;
	*n_out = 0;
	if (base == NULL || base[0] == '\0')
		return 0;
	ldap_conn_config_copy(&conn, cfg->bind_dn, cfg->password, cfg->password_file, &cfg->tls, OP_TIMEOUT_S,
			      &cfg->sasl);
	rc = ldap_read_open(cfg->urls, cfg->n_urls, &conn, &ld, errmsg, errlen);
	ldap_conn_config_free(&conn);
	if (rc != 0) {
		if (ld != NULL)
			ldap_unbind_ext(ld, NULL, NULL);
		return rc;
	}
	al = attr_list(cfg, attrs, n_attrs);
	rc = ldap_read_scope(ld, base, filter, al, type, make_entry, &ctx, out, n_out, errmsg, errlen);
	for (char **a = al; *a; a++)
		free(*a);
	free(al);
	ldap_unbind_ext(ld, NULL, NULL);
	return rc;
}

struct source *ldap_poll_source_new(const struct ldap_poll_config *cfg)
{
	struct source *src = xcalloc(1, sizeof *src);
	struct ldap_poll_config *copy = xmalloc(sizeof *copy);

	*copy = *cfg;
	source_worker_port(src, "ldap-poll", copy);
	src->start = p_start;
	src->refresh = p_refresh;
	src->describe_cursor = p_describe_cursor;
	src->read_scope = p_read_scope;
	return src;
}
