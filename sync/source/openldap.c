/*
 * sync/source/openldap.c -- OpenLDAP source: two RFC 4533 refreshAndPersist
 * sessions driven by libldap's ldap_sync_* client on one worker thread.
 *
 * Threads. The loop thread owns struct ldap_source and its uv handle; the
 * worker owns the LDAP handles and the ldap_sync_t state of both sessions.
 * They share only the event ring, the stop flag and the published socket
 * descriptors, all under `lock`.
 *
 * What libldap 2.5 and slapd 2.5 (syncprov + sessionlog) do, checked by
 * experiment, and how it shaped this file:
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
 */
#include <errno.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include <lber.h>
#include <ldap.h>
#include <uv.h>

#include "sync/source/openldap.h"
#include "sync/secret.h"

#define QUEUE_DEFAULT 1024
#define BACKOFF_MIN_DEFAULT 100
#define BACKOFF_MAX_DEFAULT 30000
#define DELIVER_BATCH 256    /* events per loop iteration: do not starve the loop */
#define NETWORK_TIMEOUT_S 3  /* connect(); the one wait stop() cannot cut short */
#define OP_TIMEOUT_S 30      /* synchronous operations (bind) */
#define MSG_MAX 512
#define CURSOR_VERSION "v1"

struct ldap_source;

/* One RFC 4533 session: one scope, one connection, one cookie. */
struct session {
	struct ldap_source *src;
	enum object_type type;
	const char *key;          /* "users" / "groups": cursor keys, messages */
	ldap_sync_t ls;           /* base, filter, attrs and ls_cookie are libldap-allocated */
	int fd;                   /* socket, published for stop(); written under src->lock */
	struct berval committed;  /* the cookie cursors carry, see the top comment */
	bool full;                /* this refresh started without a cookie */
	bool saw_present;         /* the server used the present phase (§3.4.1) */
	bool refreshing;          /* between REFRESH_BEGIN and REFRESH_END */
	bool refresh_done;        /* refreshDone seen in this refresh */
	bool ended;               /* searchResultDone: the server ended the search */
	int err;                  /* first failure inside a callback; later ones are skipped */
};

struct ldap_source {
	uv_loop_t *loop;
	uv_async_t async;
	ldap_source_event_cb cb;
	void *data;

	/* configuration, copied */
	char **urls;
	size_t n_urls;
	char *bind_dn;
	char *password;
	char *password_file;
	bool starttls;   /* source.tls: StartTLS on ldap:// */
	char *tls_ca;    /* source.tls.ca, or NULL: the system store */
	size_t queue_max;
	enum source_problem problem; /* worker only: why the last attempt failed */
	unsigned backoff_min_ms, backoff_max_ms;

	struct session sess[2];
	size_t n_sess;

	pthread_t thread;
	int wake_fd; /* eventfd: wakes the worker's poll() and backoff sleep */

	/* shared with the worker, under lock */
	pthread_mutex_t lock;
	pthread_cond_t not_full;
	struct source_event **ring;
	size_t head, len, peak;
	bool stopping, exited;
	bool refresh_req[2];     /* ldap_source_refresh() asked for this session */

	/* loop thread only */
	bool paused, closing;
	void (*done)(void *data);
	void *done_data;

	/* worker only */
	size_t url_idx;
	bool status_sent, last_connected;
	char last_msg[MSG_MAX];
};

static int fail(char *errmsg, size_t errlen, int rc, const char *fmt, ...)
	__attribute__((format(printf, 4, 5)));

static int fail(char *errmsg, size_t errlen, int rc, const char *fmt, ...)
{
	va_list ap;

	if (errmsg != NULL && errlen > 0) {
		va_start(ap, fmt);
		vsnprintf(errmsg, errlen, fmt, ap);
		va_end(ap);
	}
	return rc;
}

/* ---- berval and base64 helpers ------------------------------------------- */

static bool bv_eq(const struct berval *a, const struct berval *b)
{
	if (a->bv_val == NULL || b->bv_val == NULL)
		return a->bv_val == b->bv_val;
	return a->bv_len == b->bv_len && memcmp(a->bv_val, b->bv_val, a->bv_len) == 0;
}

static void bv_clear(struct berval *bv)
{
	ber_memfree(bv->bv_val);
	bv->bv_val = NULL;
	bv->bv_len = 0;
}

/* dst := copy of src (libldap allocator, as ls_cookie needs). */
static int bv_copy(struct berval *dst, const struct berval *src)
{
	if (src->bv_val == NULL) {
		bv_clear(dst);
		return 0;
	}
	return ber_bvreplace(dst, src) == NULL ? -ENOMEM : 0;
}

static const char B64[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

static size_t b64_encode(const unsigned char *in, size_t n, char *out)
{
	size_t o = 0;

	for (size_t i = 0; i < n; i += 3) {
		uint32_t t = (uint32_t)in[i] << 16;
		if (i + 1 < n)
			t |= (uint32_t)in[i + 1] << 8;
		if (i + 2 < n)
			t |= in[i + 2];
		out[o++] = B64[t >> 18];
		out[o++] = B64[(t >> 12) & 63];
		out[o++] = i + 1 < n ? B64[(t >> 6) & 63] : '=';
		out[o++] = i + 2 < n ? B64[t & 63] : '=';
	}
	return o;
}

static int b64_value(char c)
{
	const char *p = c ? strchr(B64, c) : NULL;
	return p ? (int)(p - B64) : -1;
}

/* Strict: whole quads, padding only at the end. Returns bytes or -1. */
static long b64_decode(const char *in, size_t n, unsigned char *out)
{
	size_t o = 0;

	if (n % 4 != 0)
		return -1;
	for (size_t i = 0; i < n; i += 4) {
		int v[4], pad = 0;
		for (int k = 0; k < 4; k++) {
			v[k] = b64_value(in[i + k]);
			if (in[i + k] == '=' && i + 4 == n && k >= 2)
				pad++, v[k] = 0;
			else if (v[k] < 0 || pad)
				return -1;
		}
		uint32_t t = (uint32_t)v[0] << 18 | (uint32_t)v[1] << 12 | (uint32_t)v[2] << 6 | (uint32_t)v[3];
		out[o++] = t >> 16;
		if (pad < 2)
			out[o++] = (t >> 8) & 255;
		if (pad < 1)
			out[o++] = t & 255;
	}
	return (long)o;
}

/* ---- the cursor blob: "v1\nusers=<b64>\ngroups=<b64>\n" ------------------- */

static int cursor_encode(struct ldap_source *s, void **out, size_t *out_len)
{
	size_t cap = sizeof CURSOR_VERSION + 1, n = 0;
	char *buf;

	for (size_t i = 0; i < s->n_sess; i++)
		cap += strlen(s->sess[i].key) + 3 + (s->sess[i].committed.bv_len + 2) / 3 * 4;
	buf = malloc(cap);
	if (buf == NULL)
		return -ENOMEM;
	n += (size_t)sprintf(buf, "%s\n", CURSOR_VERSION);
	for (size_t i = 0; i < s->n_sess; i++) {
		const struct session *x = &s->sess[i];
		n += (size_t)sprintf(buf + n, "%s=", x->key);
		n += b64_encode((const unsigned char *)x->committed.bv_val, x->committed.bv_len, buf + n);
		buf[n++] = '\n';
	}
	*out = buf;
	*out_len = n;
	return 0;
}

static struct session *session_by_key(struct ldap_source *s, const char *key, size_t n)
{
	for (size_t i = 0; i < s->n_sess; i++)
		if (strlen(s->sess[i].key) == n && memcmp(s->sess[i].key, key, n) == 0)
			return &s->sess[i];
	return NULL;
}

/* One "key=base64" line into its session's cookie. A "groups" line is
 * accepted and ignored when the group scope is not configured. */
static int cursor_line(struct ldap_source *s, const char *p, size_t n, unsigned *seen,
		       char *errmsg, size_t errlen)
{
	const char *eq = memchr(p, '=', n);
	int klen = eq ? (int)(eq - p) : 0;
	unsigned bit = 0;
	struct session *x;
	unsigned char *raw;
	long len;

	if (eq == NULL)
		return fail(errmsg, errlen, -EINVAL, "cursor: line \"%.*s\" is not key=value",
			    (int)(n > 40 ? 40 : n), p);
	if (klen == 5 && memcmp(p, "users", 5) == 0)
		bit = 1;
	else if (klen == 6 && memcmp(p, "groups", 6) == 0)
		bit = 2;
	else
		return fail(errmsg, errlen, -EINVAL, "cursor: unknown key \"%.*s\"", klen > 40 ? 40 : klen, p);
	if (*seen & bit)
		return fail(errmsg, errlen, -EINVAL, "cursor: key %.*s repeated", klen, p);
	*seen |= bit;
	x = session_by_key(s, p, (size_t)klen);
	raw = malloc(n);
	if (raw == NULL)
		return fail(errmsg, errlen, -ENOMEM, "cursor: out of memory");
	len = b64_decode(eq + 1, n - (size_t)(eq + 1 - p), raw);
	if (len < 0) {
		free(raw);
		return fail(errmsg, errlen, -EINVAL, "cursor: the %.*s cookie is not base64", (int)(eq - p), p);
	}
	if (x != NULL && len > 0) {
		struct berval bv = {(ber_len_t)len, (char *)raw};
		if (bv_copy(&x->committed, &bv) != 0 || bv_copy(&x->ls.ls_cookie, &bv) != 0) {
			free(raw);
			return fail(errmsg, errlen, -ENOMEM, "cursor: out of memory");
		}
	}
	free(raw);
	return 0;
}

static int cursor_decode(struct ldap_source *s, const void *blob, size_t len, char *errmsg, size_t errlen)
{
	const char *p = blob, *end = p + len;
	const size_t vlen = strlen(CURSOR_VERSION);
	unsigned seen = 0;

	if (blob == NULL || len == 0)
		return 0; /* from scratch: full refresh of every scope */
	if (len < vlen + 1 || memcmp(p, CURSOR_VERSION "\n", vlen + 1) != 0)
		return fail(errmsg, errlen, -EINVAL,
			    "cursor: not an OpenLDAP source cursor (no \"" CURSOR_VERSION "\" header)");
	if (memchr(p, '\0', len) != NULL || end[-1] != '\n')
		return fail(errmsg, errlen, -EINVAL, "cursor: malformed (NUL byte or no final newline)");
	for (p += vlen + 1; p < end;) {
		const char *nl = memchr(p, '\n', (size_t)(end - p));
		int rc = cursor_line(s, p, (size_t)(nl - p), &seen, errmsg, errlen);
		if (rc != 0)
			return rc;
		p = nl + 1;
	}
	return 0;
}

/* ---- the event ring (worker -> loop) --------------------------------------- */

static bool is_stopping(struct ldap_source *s)
{
	bool v;

	pthread_mutex_lock(&s->lock);
	v = s->stopping;
	pthread_mutex_unlock(&s->lock);
	return v;
}

/* Hand an event to the loop thread; waits while the ring is full (the
 * back-pressure that keeps memory bounded). Takes ownership of ev. */
static int push(struct ldap_source *s, struct source_event *ev)
{
	pthread_mutex_lock(&s->lock);
	while (s->len == s->queue_max && !s->stopping)
		pthread_cond_wait(&s->not_full, &s->lock);
	if (s->stopping) {
		pthread_mutex_unlock(&s->lock);
		source_event_free(ev);
		return -ECANCELED;
	}
	s->ring[(s->head + s->len) % s->queue_max] = ev;
	s->len++;
	if (s->len > s->peak)
		s->peak = s->len;
	pthread_mutex_unlock(&s->lock);
	uv_async_send(&s->async);
	return 0;
}

static struct source_event *ev_new(enum source_event_kind kind, enum object_type type)
{
	struct source_event *ev = calloc(1, sizeof *ev);

	if (ev != NULL) {
		ev->kind = kind;
		ev->type = type;
	}
	return ev;
}

/* ---- events from the sync callbacks (worker) ------------------------------- */

static int uuid_text(const struct berval *u, char **out)
{
	const unsigned char *b = (const unsigned char *)u->bv_val;

	/* syncUUID is an OCTET STRING (SIZE(16)) (RFC 4533 §2.1) */
	if (u->bv_len != 16)
		return -EPROTO;
	*out = malloc(37);
	if (*out == NULL)
		return -ENOMEM;
	snprintf(*out, 37, "%02x%02x%02x%02x-%02x%02x-%02x%02x-%02x%02x-%02x%02x%02x%02x%02x%02x",
		 b[0], b[1], b[2], b[3], b[4], b[5], b[6], b[7], b[8], b[9], b[10], b[11], b[12],
		 b[13], b[14], b[15]);
	return 0;
}

static int attr_add(LDAP *ld, LDAPMessage *msg, const char *name, struct source_event *ev, size_t *cap)
{
	struct berval **vals = ldap_get_values_len(ld, msg, name);
	size_t n = vals ? (size_t)ldap_count_values_len(vals) : 0;
	struct object_attr *at;
	int rc = -ENOMEM;

	if (ev->n_attrs == *cap) {
		size_t c = *cap ? *cap * 2 : 16;
		struct object_attr *a = realloc(ev->attrs, c * sizeof *a);
		if (a == NULL)
			goto out;
		ev->attrs = a;
		*cap = c;
	}
	at = &ev->attrs[ev->n_attrs++];
	memset(at, 0, sizeof *at);
	at->name = strdup(name);
	at->values = calloc(n ? n : 1, sizeof *at->values);
	if (at->name == NULL || at->values == NULL)
		goto out;
	for (size_t i = 0; i < n; i++) {
		/* binary values are not expected (object.h): NUL-terminated copies */
		at->values[i] = strndup(vals[i]->bv_val, vals[i]->bv_len);
		if (at->values[i] == NULL)
			goto out;
		at->n_values++;
	}
	rc = 0;
out:
	ldap_value_free_len(vals);
	return rc;
}

static int entry_attrs(LDAP *ld, LDAPMessage *msg, struct source_event *ev)
{
	BerElement *ber = NULL;
	size_t cap = 0;
	int rc = 0;

	for (char *a = ldap_first_attribute(ld, msg, &ber); a != NULL; a = ldap_next_attribute(ld, msg, ber)) {
		rc = attr_add(ld, msg, a, ev, &cap);
		ldap_memfree(a);
		if (rc != 0)
			break;
	}
	ber_free(ber, 0);
	return rc;
}

static int entry_dn(LDAP *ld, LDAPMessage *msg, struct source_event *ev)
{
	char *dn = ldap_get_dn(ld, msg);

	if (dn == NULL)
		return 0; /* only informative for PRESENT / DELETE */
	ev->dn = strdup(dn);
	ldap_memfree(dn);
	return ev->dn ? 0 : -ENOMEM;
}

static int attach_blob(struct ldap_source *s, struct source_event *ev)
{
	return cursor_encode(s, &ev->cursor, &ev->cursor_len);
}

/* In the persist phase every new cookie goes with the event it came with:
 * the cursor is valid once that event is handled (source.h). */
static int attach_if_new(struct session *x, struct source_event *ev)
{
	int rc;

	if (x->refreshing || bv_eq(&x->ls.ls_cookie, &x->committed))
		return 0;
	rc = bv_copy(&x->committed, &x->ls.ls_cookie);
	return rc ? rc : attach_blob(x->src, ev);
}

static int emit_entry(struct session *x, LDAPMessage *msg, struct berval *uuid, ldap_sync_refresh_t phase)
{
	LDAP *ld = x->ls.ls_ld;
	enum source_event_kind kind;
	struct source_event *ev;
	int rc;

	switch (phase) {
	case LDAP_SYNC_CAPI_PRESENT:
		kind = SOURCE_PRESENT;
		x->saw_present = true;
		break;
	case LDAP_SYNC_CAPI_DELETE:
		kind = SOURCE_DELETE;
		break;
	case LDAP_SYNC_CAPI_ADD:
	case LDAP_SYNC_CAPI_MODIFY:
		kind = SOURCE_ENTRY;
		break;
	default:
		return -EPROTO;
	}
	ev = ev_new(kind, x->type);
	if (ev == NULL)
		return -ENOMEM;
	rc = uuid_text(uuid, &ev->anchor);
	if (rc == 0)
		rc = entry_dn(ld, msg, ev);
	if (rc == 0 && kind == SOURCE_ENTRY)
		rc = entry_attrs(ld, msg, ev);
	if (rc == 0)
		rc = attach_if_new(x, ev);
	if (rc != 0) {
		source_event_free(ev);
		return rc;
	}
	return push(x->src, ev);
}

/* A syncIdSet (RFC 4533 §2.5): one event per UUID; a cookie that came with
 * the set goes on the last one. */
static int emit_ids(struct session *x, BerVarray uuids, enum source_event_kind kind)
{
	for (size_t i = 0; uuids != NULL && uuids[i].bv_val != NULL; i++) {
		struct source_event *ev = ev_new(kind, x->type);
		int rc = ev ? uuid_text(&uuids[i], &ev->anchor) : -ENOMEM;
		if (rc == 0 && uuids[i + 1].bv_val == NULL)
			rc = attach_if_new(x, ev);
		if (rc == 0)
			rc = push(x->src, ev);
		else
			source_event_free(ev);
		if (rc != 0)
			return rc;
	}
	return 0;
}

static int emit_refresh_end(struct session *x)
{
	struct source_event *ev = ev_new(SOURCE_REFRESH_END, x->type);
	int rc;

	if (ev == NULL)
		return -ENOMEM;
	x->refreshing = false;
	x->refresh_done = true;
	ev->present_phase = x->full || x->saw_present;
	rc = bv_copy(&x->committed, &x->ls.ls_cookie);
	if (rc == 0)
		rc = attach_blob(x->src, ev);
	if (rc != 0) {
		source_event_free(ev);
		return rc;
	}
	return push(x->src, ev);
}

/* libldap folds a final refreshPresent and a final refreshDelete into
 * LDAP_SYNC_CAPI_DONE; the syncInfo choice tag tells them apart (§2.5). */
static bool final_was_present(LDAP *ld, LDAPMessage *msg)
{
	char *oid = NULL;
	struct berval *data = NULL;
	bool present = false;

	if (ldap_parse_intermediate(ld, msg, &oid, &data, NULL, 0) == LDAP_SUCCESS && data != NULL) {
		BerElement *ber = ber_init(data);
		ber_len_t len;
		if (ber != NULL) {
			present = ber_peek_tag(ber, &len) == LDAP_TAG_SYNC_REFRESH_PRESENT;
			ber_free(ber, 1);
		}
	}
	if (data != NULL)
		ber_bvfree(data);
	ldap_memfree(oid);
	return present;
}

static int on_entry(ldap_sync_t *ls, LDAPMessage *msg, struct berval *uuid, ldap_sync_refresh_t phase)
{
	struct session *x = ls->ls_private;

	if (x->err == 0)
		x->err = emit_entry(x, msg, uuid, phase);
	return LDAP_SUCCESS;
}

static int on_reference(ldap_sync_t *ls, LDAPMessage *msg)
{
	/* referrals are not followed: the scope is one server's naming context */
	return LDAP_SUCCESS;
}

static int on_intermediate(ldap_sync_t *ls, LDAPMessage *msg, BerVarray uuids, ldap_sync_refresh_t phase)
{
	struct session *x = ls->ls_private;

	if (x->err != 0)
		return LDAP_SUCCESS;
	switch (phase) {
	case LDAP_SYNC_CAPI_PRESENTS_IDSET:
		x->saw_present = true;
		x->err = emit_ids(x, uuids, SOURCE_PRESENT);
		break;
	case LDAP_SYNC_CAPI_DELETES_IDSET:
		x->err = emit_ids(x, uuids, SOURCE_DELETE);
		break;
	case LDAP_SYNC_CAPI_PRESENTS:
		/* refreshPresent with refreshDone FALSE: a present phase ended
		 * and a delete phase follows (§3.4.1, §3.4.2) */
		x->saw_present = true;
		break;
	case LDAP_SYNC_CAPI_DONE:
		if (final_was_present(ls->ls_ld, msg))
			x->saw_present = true;
		x->err = emit_refresh_end(x);
		break;
	default:
		break;
	}
	return LDAP_SUCCESS;
}

static int on_result(ldap_sync_t *ls, LDAPMessage *msg, int refresh_deletes)
{
	struct session *x = ls->ls_private;

	/* in refreshAndPersist only the server ends the search (§3.4) */
	x->ended = true;
	return LDAP_SUCCESS;
}

/* ---- connections (worker) ---------------------------------------------------- */

static void status_fmt(char *msg, size_t len, const char *url, int err, LDAP *ld, const char *what)
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
static int ldap_code(LDAP *ld, int rc)
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
static int publish_fd(struct session *x)
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
static int session_connect(struct session *x, const char *url, char *msg, size_t len)
{
	struct ldap_source *s = x->src;
	int rc = ldap_initialize(&x->ls.ls_ld, url);

	if (rc != LDAP_SUCCESS) {
		status_fmt(msg, len, url, rc, NULL, "initialize");
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
			status_fmt(msg, len, url, rc, x->ls.ls_ld, "connect");
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
		int code = ldap_code(x->ls.ls_ld, rc);
		status_fmt(msg, len, url, code, x->ls.ls_ld, "bind");
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

/* Drop the connection; the session resumes from its committed cookie
 * (should that copy fail, ls_cookie keeps a cookie at least as new, which
 * the server treats the same way). */
static void session_disconnect(struct session *x)
{
	struct ldap_source *s = x->src;

	pthread_mutex_lock(&s->lock);
	x->fd = -1;
	pthread_mutex_unlock(&s->lock);
	if (x->ls.ls_ld != NULL)
		ldap_unbind_ext(x->ls.ls_ld, NULL, NULL);
	x->ls.ls_ld = NULL;
	x->refreshing = false;
	(void)bv_copy(&x->ls.ls_cookie, &x->committed);
}

static void session_drop_cookie(struct session *x)
{
	/* e-syncRefreshRequired (§3.4.2 / §4.1): the cookie is useless now;
	 * forget it everywhere so no cursor brings it back */
	bv_clear(&x->ls.ls_cookie);
	bv_clear(&x->committed);
}

/* Turn the state after a libldap call into 0 or an error with a message. */
static int session_check(struct session *x, int rc, const char *url, char *msg, size_t len)
{
	char what[64];

	snprintf(what, sizeof what, "%s search", x->key);
	if (x->err != 0) {
		snprintf(msg, len, "%s: %s (%s)", url, strerror(-x->err), what);
		x->src->problem = SOURCE_FAILING;
		return x->err;
	}
	if (rc != LDAP_SUCCESS) {
		int code = ldap_code(x->ls.ls_ld, rc);
		status_fmt(msg, len, url, code, x->ls.ls_ld, what);
		x->src->problem = rc < 0 ? SOURCE_UNREACHABLE
			      : code == LDAP_INSUFFICIENT_ACCESS ? SOURCE_UNAUTHORIZED : SOURCE_FAILING;
		return rc < 0 ? -ECONNRESET : -EIO;
	}
	if (x->ended) {
		snprintf(msg, len, "%s: the server ended the %s", url, what);
		x->src->problem = SOURCE_UNREACHABLE;
		return -EIO;
	}
	return 0;
}

static int emit_begin(struct session *x)
{
	struct source_event *ev = ev_new(SOURCE_REFRESH_BEGIN, x->type);

	return ev ? push(x->src, ev) : -ENOMEM;
}

/* The refresh phase (§3.4): runs entirely inside ldap_sync_init. */
static int session_refresh(struct session *x, const char *url, char *msg, size_t len)
{
	for (;;) {
		int rc;

		x->full = x->ls.ls_cookie.bv_val == NULL;
		x->saw_present = x->refresh_done = x->ended = false;
		x->err = 0;
		x->refreshing = true;
		rc = emit_begin(x);
		if (rc != 0)
			return rc;
		rc = ldap_sync_init(&x->ls, LDAP_SYNC_REFRESH_AND_PERSIST);
		if (rc == LDAP_SYNC_REFRESH_REQUIRED && x->err == 0 && !x->full) {
			session_drop_cookie(x);
			continue;
		}
		rc = session_check(x, rc, url, msg, len);
		if (rc == 0 && !x->refresh_done) {
			snprintf(msg, len, "%s: the %s search ended without refreshDone", url, x->key);
			rc = -EPROTO;
		}
		return rc;
	}
}

static int emit_cursor_if_new(struct session *x)
{
	struct source_event *ev;
	int rc;

	if (x->refreshing || bv_eq(&x->ls.ls_cookie, &x->committed))
		return 0;
	ev = ev_new(SOURCE_CURSOR, x->type);
	if (ev == NULL)
		return -ENOMEM;
	rc = attach_if_new(x, ev);
	if (rc != 0) {
		source_event_free(ev);
		return rc;
	}
	return push(x->src, ev);
}

/* Whether libldap has input for this session: bytes (or EOF / an error) on
 * the socket, or data a layer of its Sockbuf decoded already (TLS), which
 * poll() on the socket cannot see. */
static bool has_input(struct session *x)
{
	struct pollfd p = {.fd = x->fd, .events = POLLIN};
	Sockbuf *sb = NULL;

	if (ldap_get_option(x->ls.ls_ld, LDAP_OPT_SOCKBUF, &sb) == LDAP_OPT_SUCCESS && sb != NULL &&
	    ber_sockbuf_ctrl(sb, LBER_SB_OPT_DATA_READY, NULL) > 0)
		return true;
	return poll(&p, 1, 0) > 0;
}

/*
 * Persist phase (§3.4): handle every message that has arrived. ldap_sync_poll
 * is called blocking (ls_timeout -1) and only when there is input: with a
 * zero timeout libldap 2.5 may read a message off the socket and still
 * return "nothing" (its wait4msg checks the clock before handing over what
 * it read), and the socket would then never wake poll() for it again.
 */
static int session_drain(struct session *x, const char *url, char *msg, size_t len)
{
	for (;;) {
		int rc;

		if (is_stopping(x->src))
			return -ECANCELED;
		if (!has_input(x))
			return 0;
		rc = ldap_sync_poll(&x->ls);
		if (rc == LDAP_SYNC_REFRESH_REQUIRED && x->err == 0) {
			session_drop_cookie(x);
			rc = session_refresh(x, url, msg, len);
			if (rc != 0)
				return rc;
			continue;
		}
		rc = session_check(x, rc, url, msg, len);
		if (rc == 0)
			rc = emit_cursor_if_new(x);
		if (rc != 0)
			return rc;
	}
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
			session_drop_cookie(&s->sess[i]);
			any = true;
		}
	pthread_mutex_unlock(&s->lock);
	return any;
}

#define REFRESH_ASKED 1 /* persist()'s "reconnect now, no error" */

static int persist(struct ldap_source *s, const char *url, char *msg, size_t len)
{
	struct pollfd p[3];

	for (;;) {
		size_t n = 1;

		if (take_refresh_request(s))
			return REFRESH_ASKED;
		for (size_t i = 0; i < s->n_sess; i++) {
			int rc = session_drain(&s->sess[i], url, msg, len);
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
	ev = ev_new(SOURCE_STATUS, OBJECT_UNKNOWN);
	if (ev == NULL || (ev->message = strdup(msg)) == NULL) {
		source_event_free(ev);
		return -ENOMEM;
	}
	ev->connected = connected;
	ev->problem = problem != SOURCE_PROBLEM_NONE || connected ? problem : SOURCE_UNREACHABLE;
	s->status_sent = true;
	s->last_connected = connected;
	snprintf(s->last_msg, sizeof s->last_msg, "%s", msg);
	return push(s, ev);
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
	return is_stopping(s);
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

	while (!is_stopping(s)) {
		const char *url = s->urls[s->url_idx];
		int rc;

		snprintf(msg, sizeof msg, "%s: disconnected", url); /* failures say more */
		s->problem = SOURCE_UNREACHABLE;
		rc = connect_all(s, url, msg, sizeof msg);

		for (size_t i = 0; i < s->n_sess && rc == 0; i++)
			rc = session_refresh(&s->sess[i], url, msg, sizeof msg);
		if (rc == 0) {
			failures = 0;
			rc = persist(s, url, msg, sizeof msg);
		}
		for (size_t i = 0; i < s->n_sess; i++)
			session_disconnect(&s->sess[i]);
		if (is_stopping(s))
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

/* ---- loop side ---------------------------------------------------------------- */

static void source_release(struct ldap_source *s)
{
	for (size_t i = 0; i < s->n_sess; i++) {
		ldap_sync_destroy(&s->sess[i].ls, 0); /* base, filter, attrs, cookie, ld */
		bv_clear(&s->sess[i].committed);
	}
	for (size_t i = 0; s->urls != NULL && i < s->n_urls; i++)
		free(s->urls[i]);
	free(s->urls);
	free(s->bind_dn);
	if (s->password != NULL)
		explicit_bzero(s->password, strlen(s->password));
	free(s->password);
	free(s->password_file);
	free(s->tls_ca);
	if (s->ring != NULL)
		for (size_t i = 0; i < s->len; i++)
			source_event_free(s->ring[(s->head + i) % s->queue_max]);
	free(s->ring);
}

static void on_closed(uv_handle_t *h)
{
	struct ldap_source *s = h->data;
	void (*done)(void *) = s->done;
	void *data = s->done_data;

	source_release(s);
	close(s->wake_fd);
	pthread_cond_destroy(&s->not_full);
	pthread_mutex_destroy(&s->lock);
	free(s);
	if (done != NULL)
		done(data);
}

static void finish(struct ldap_source *s)
{
	if (s->closing)
		return;
	s->closing = true;
	/* the worker has set `exited`; its last act is one uv_async_send, so
	 * the join is short and no send can reach the handle after close */
	pthread_join(s->thread, NULL);
	uv_close((uv_handle_t *)&s->async, on_closed);
}

static void on_async(uv_async_t *a)
{
	struct ldap_source *s = a->data;

	for (size_t n = 0; n < DELIVER_BATCH; n++) {
		struct source_event *ev = NULL;
		bool stopping, exited;

		pthread_mutex_lock(&s->lock);
		stopping = s->stopping;
		exited = s->exited;
		if (!stopping && !s->paused && s->len > 0) {
			ev = s->ring[s->head];
			s->head = (s->head + 1) % s->queue_max;
			s->len--;
			pthread_cond_signal(&s->not_full);
		}
		pthread_mutex_unlock(&s->lock);
		if (stopping) {
			if (exited)
				finish(s);
			return;
		}
		if (ev == NULL)
			return;
		s->cb(s->data, ev); /* may call ldap_source_stop or _pause */
	}
	uv_async_send(&s->async); /* more next iteration */
}

void ldap_source_stop(struct ldap_source *s, void (*done)(void *data), void *data)
{
	pthread_mutex_lock(&s->lock);
	s->stopping = true;
	s->done = done;
	s->done_data = data;
	/* break a worker blocked in ldap_result (refresh, bind): the socket
	 * reads EOF, libldap fails the call, the worker sees `stopping` */
	for (size_t i = 0; i < s->n_sess; i++)
		if (s->sess[i].fd >= 0)
			shutdown(s->sess[i].fd, SHUT_RDWR);
	for (; s->len > 0; s->len--) {
		source_event_free(s->ring[s->head]);
		s->head = (s->head + 1) % s->queue_max;
	}
	pthread_cond_broadcast(&s->not_full);
	pthread_mutex_unlock(&s->lock);
	(void)eventfd_write(s->wake_fd, 1);
}

void ldap_source_refresh(struct ldap_source *s, enum object_type type)
{
	pthread_mutex_lock(&s->lock);
	for (size_t i = 0; i < s->n_sess; i++)
		if (s->sess[i].type == type)
			s->refresh_req[i] = true;
	pthread_mutex_unlock(&s->lock);
	(void)eventfd_write(s->wake_fd, 1);
}

void ldap_source_pause(struct ldap_source *s)
{
	pthread_mutex_lock(&s->lock);
	s->paused = true;
	pthread_mutex_unlock(&s->lock);
}

void ldap_source_resume(struct ldap_source *s)
{
	pthread_mutex_lock(&s->lock);
	s->paused = false;
	pthread_mutex_unlock(&s->lock);
	uv_async_send(&s->async);
}

size_t ldap_source_queue_peak(struct ldap_source *s)
{
	size_t v;

	pthread_mutex_lock(&s->lock);
	v = s->peak;
	pthread_mutex_unlock(&s->lock);
	return v;
}

/* ---- start ------------------------------------------------------------------- */

static int config_check(const struct ldap_source_config *cfg, char *errmsg, size_t errlen)
{
	if (cfg->urls == NULL || cfg->n_urls == 0)
		return fail(errmsg, errlen, -EINVAL, "source: no LDAP URL configured");
	for (size_t i = 0; i < cfg->n_urls; i++)
		if (cfg->urls[i] == NULL || !ldap_is_ldap_url(cfg->urls[i]))
			return fail(errmsg, errlen, -EINVAL, "source.url: \"%s\" is not an LDAP URL",
				    cfg->urls[i] ? cfg->urls[i] : "(null)");
	if (cfg->user_base == NULL || cfg->user_base[0] == '\0')
		return fail(errmsg, errlen, -EINVAL, "source.users.base is empty");
	if (cfg->n_attrs > 0 && cfg->attrs == NULL)
		return fail(errmsg, errlen, -EINVAL, "source: n_attrs without attrs");
	return 0;
}

static char **attrs_copy(const struct ldap_source_config *cfg)
{
	static const char *const all[] = {"*"}; /* all user attributes */
	const char *const *src = cfg->attrs ? cfg->attrs : all;
	size_t n = cfg->attrs ? cfg->n_attrs : 1;
	char **a = ber_memcalloc(n + 1, sizeof *a);

	for (size_t i = 0; a != NULL && i < n; i++) {
		a[i] = ber_strdup(src[i]);
		if (a[i] == NULL) {
			ber_memvfree((void **)a);
			return NULL;
		}
	}
	return a;
}

static int session_init(struct ldap_source *s, struct session *x, enum object_type type,
			const char *base, const char *filter, const struct ldap_source_config *cfg)
{
	ldap_sync_initialize(&x->ls); /* scope subtree */
	x->src = s;
	x->type = type;
	x->key = type == OBJECT_USER ? "users" : "groups";
	x->fd = -1;
	x->ls.ls_base = ber_strdup(base);
	x->ls.ls_filter = ber_strdup(filter && *filter ? filter : "(objectClass=*)");
	x->ls.ls_attrs = attrs_copy(cfg);
	x->ls.ls_sizelimit = LDAP_NO_LIMIT;
	x->ls.ls_timelimit = 0;
	x->ls.ls_timeout = -1; /* ldap_sync_poll blocks, but runs only on input */
	x->ls.ls_search_entry = on_entry;
	x->ls.ls_search_reference = on_reference;
	x->ls.ls_intermediate = on_intermediate;
	x->ls.ls_search_result = on_result;
	x->ls.ls_private = x;
	s->n_sess++;
	if (x->ls.ls_base == NULL || x->ls.ls_filter == NULL || x->ls.ls_attrs == NULL)
		return -ENOMEM;
	return 0;
}

static int config_copy(struct ldap_source *s, const struct ldap_source_config *cfg)
{
	int rc;

	s->urls = calloc(cfg->n_urls, sizeof *s->urls);
	if (s->urls == NULL)
		return -ENOMEM;
	s->n_urls = cfg->n_urls;
	for (size_t i = 0; i < cfg->n_urls; i++)
		if ((s->urls[i] = strdup(cfg->urls[i])) == NULL)
			return -ENOMEM;
	if (cfg->bind_dn && (s->bind_dn = strdup(cfg->bind_dn)) == NULL)
		return -ENOMEM;
	if (cfg->password && (s->password = strdup(cfg->password)) == NULL)
		return -ENOMEM;
	if (cfg->password_file && (s->password_file = strdup(cfg->password_file)) == NULL)
		return -ENOMEM;
	s->starttls = cfg->tls.starttls;
	if (cfg->tls.ca_file && cfg->tls.ca_file[0] && (s->tls_ca = strdup(cfg->tls.ca_file)) == NULL)
		return -ENOMEM;
	s->queue_max = cfg->queue_max ? cfg->queue_max : QUEUE_DEFAULT;
	s->backoff_min_ms = cfg->backoff_min_ms ? cfg->backoff_min_ms : BACKOFF_MIN_DEFAULT;
	s->backoff_max_ms = cfg->backoff_max_ms ? cfg->backoff_max_ms : BACKOFF_MAX_DEFAULT;
	if (s->backoff_max_ms < s->backoff_min_ms)
		s->backoff_max_ms = s->backoff_min_ms;
	s->ring = calloc(s->queue_max, sizeof *s->ring);
	if (s->ring == NULL)
		return -ENOMEM;
	rc = session_init(s, &s->sess[0], OBJECT_USER, cfg->user_base, cfg->user_filter, cfg);
	if (rc == 0 && cfg->group_base != NULL && cfg->group_base[0] != '\0')
		rc = session_init(s, &s->sess[1], OBJECT_GROUP, cfg->group_base, cfg->group_filter, cfg);
	return rc;
}

/* The worker runs with every signal blocked: the process's handlers belong
 * to the loop thread, and a write to a closed socket then fails with EPIPE
 * instead of raising SIGPIPE. */
static int worker_spawn(struct ldap_source *s)
{
	sigset_t all, old;
	int rc;

	sigfillset(&all);
	pthread_sigmask(SIG_SETMASK, &all, &old);
	rc = pthread_create(&s->thread, NULL, worker_main, s);
	pthread_sigmask(SIG_SETMASK, &old, NULL);
	return -rc;
}

int ldap_source_start(struct ldap_source **out, uv_loop_t *loop,
		      const struct ldap_source_config *cfg, const void *cursor, size_t cursor_len,
		      ldap_source_event_cb cb, void *data, char *errmsg, size_t errlen)
{
	struct ldap_source *s;
	int rc;

	if (out == NULL || loop == NULL || cfg == NULL || cb == NULL)
		return fail(errmsg, errlen, -EINVAL, "source: missing argument");
	rc = config_check(cfg, errmsg, errlen);
	if (rc != 0)
		return rc;
	s = calloc(1, sizeof *s);
	if (s == NULL)
		return fail(errmsg, errlen, -ENOMEM, "source: out of memory");
	s->loop = loop;
	s->cb = cb;
	s->data = data;
	rc = config_copy(s, cfg);
	if (rc != 0) {
		fail(errmsg, errlen, rc, "source: out of memory");
		goto err_after_alloc;
	}
	rc = cursor_decode(s, cursor, cursor_len, errmsg, errlen);
	if (rc != 0)
		goto err_after_alloc;
	s->wake_fd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
	if (s->wake_fd < 0) {
		rc = fail(errmsg, errlen, -errno, "source: eventfd: %s", strerror(errno));
		goto err_after_alloc;
	}
	rc = -pthread_mutex_init(&s->lock, NULL);
	if (rc != 0) {
		fail(errmsg, errlen, rc, "source: mutex: %s", strerror(-rc));
		goto err_after_eventfd;
	}
	rc = -pthread_cond_init(&s->not_full, NULL);
	if (rc != 0) {
		fail(errmsg, errlen, rc, "source: condvar: %s", strerror(-rc));
		goto err_after_mutex;
	}
	rc = uv_async_init(loop, &s->async, on_async);
	if (rc != 0) {
		fail(errmsg, errlen, rc, "source: uv_async_init: %s", uv_strerror(rc));
		goto err_after_cond;
	}
	s->async.data = s;
	rc = worker_spawn(s);
	if (rc != 0) {
		fail(errmsg, errlen, rc, "source: worker thread: %s", strerror(-rc));
		goto err_after_async;
	}
	*out = s;
	return 0;

err_after_async:
	/* the handle is closed on the loop; on_closed frees the rest (done
	 * is NULL, so nothing is called back) */
	uv_close((uv_handle_t *)&s->async, on_closed);
	return rc;
err_after_cond:
	pthread_cond_destroy(&s->not_full);
err_after_mutex:
	pthread_mutex_destroy(&s->lock);
err_after_eventfd:
	close(s->wake_fd);
err_after_alloc:
	source_release(s);
	free(s);
	return rc;
}
