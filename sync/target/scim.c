/*
 * sync/target/scim.c -- SCIM 2.0 target over libcurl's multi interface driven
 * by libuv (the pattern of curl's docs/examples/multi-uv.c). See scim.h for
 * the contract; this comment is about how it is built.
 *
 * One libcurl multi handle per target. CURLMOPT_SOCKETFUNCTION maps every
 * socket libcurl wants watched onto a uv_poll_t, CURLMOPT_TIMERFUNCTION onto
 * one uv_timer_t, and both call curl_multi_socket_action() and then drain
 * CURLMSG_DONE messages. Connections stay in the multi handle's cache, so
 * they are reused across requests (keep-alive; HTTP/2 multiplexing when the
 * server offers h2 through ALPN).
 *
 * An operation (struct scim_op) is driven by a small state machine (struct
 * sop, "step"): each step is one HTTP request; its answer picks the next step
 * (404 on update -> create, 409 on create -> lookup -> update, ...). A sop is
 * always in exactly one place: the ready queue, the delayed list (waiting for
 * a retry), or on the wire (sop->req). Everything runs on the loop thread;
 * user callbacks are only ever called from loop callbacks or from
 * scim_cancel_all()/scim_target_stop(), never from inside a libcurl callback
 * and never from scim_submit().
 *
 * Retries wait on one shared uv_timer_t armed for the earliest due sop, so no
 * per-operation uv handle has to be closed (asynchronously) before a sop can
 * be freed.
 */
#include "sync/target/scim.h"
#include "sync/secret.h"

#include <curl/curl.h>
#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

#ifndef CANOPY_VERSION
#define CANOPY_VERSION "dev"
#endif

#define HEALTH_WINDOW 20      /* last completed requests looked at ... */
#define HEALTH_FAILURES 16    /* ... and how many failures quarantine */
#define MAX_HOPS 8            /* step changes per operation before giving up */
#define RESP_MAX (256u << 20) /* a response larger than this is refused */

static const char SCHEMA_PATCHOP[] = "urn:ietf:params:scim:api:messages:2.0:PatchOp";

/* ------------------------------------------------------------------ lists */

struct link {
	struct link *prev, *next;
};

#define container_of(p, T, m) ((T *)(void *)((char *)(p)-offsetof(T, m)))

static void list_init(struct link *h)
{
	h->prev = h->next = h;
}

static bool list_empty(const struct link *h)
{
	return h->next == h;
}

/* Insert n before pos (pos == head: at the tail). */
static void list_insert(struct link *pos, struct link *n)
{
	n->next = pos;
	n->prev = pos->prev;
	pos->prev->next = n;
	pos->prev = n;
}

static void list_remove(struct link *n)
{
	n->prev->next = n->next;
	n->next->prev = n->prev;
	n->prev = n->next = n;
}

/* Append all of `from` to the tail of `to`; `from` is left empty. */
static void list_splice(struct link *from, struct link *to)
{
	if (list_empty(from))
		return;
	from->next->prev = to->prev;
	to->prev->next = from->next;
	from->prev->next = to;
	to->prev = from->prev;
	list_init(from);
}

/* ------------------------------------------------------------------ types */

enum step {
	ST_UPDATE,    /* users: PUT /Users/{id}; groups: PATCH replace (members untouched) */
	ST_CREATE,    /* POST /Users | /Groups */
	ST_FIND_EXT,  /* GET ?filter=externalId eq "anchor" */
	ST_FIND_NAME, /* GET ?filter=userName eq / displayName eq (soft match) */
	ST_DELETE,    /* DELETE /{ep}/{id} */
	ST_MEMBERS,   /* PATCH /Groups/{id}: one chunk of member adds/removes */
	ST_READ_MEMBERS, /* GET /Groups/{id}?attributes=members: what landed already */
};

enum where { W_NONE, W_READY, W_DELAYED, W_WIRE };

enum req_kind { R_OP, R_BULK, R_SPC, R_PROBE };

/* health window entries */
enum { H_OK = 0, H_NET = 1, H_SERVER = 2 };

struct scim_target;

struct sop {
	struct link link; /* in ready or delayed */
	struct scim_target *t;
	struct scim_op *op;
	scim_done_cb cb;
	enum where where;
	enum step step;
	char id[128];      /* target id the current step works on */
	bool found;        /* id came from a lookup */
	unsigned tries;    /* requests sent for the current step */
	unsigned hops;     /* step changes so far */
	size_t add_pos, rm_pos;     /* SCIM_MEMBERS progress */
	size_t chunk_add, chunk_rm; /* what the request on the wire carries */
	json_t *eff_add, *eff_rm;   /* SCIM_MEMBERS after a read-back: what is still to do
				     * (owned); NULL: op->add / op->remove as given */
	uint64_t due;      /* W_DELAYED: uv_now() when to retry */
	uint64_t t0;       /* uv_hrtime() at submit */
	struct req *req;   /* W_WIRE */
	const char *method; /* of the current step's request, for messages */
	char *path;         /* idem, below the base URL */
};

struct req {
	struct link link; /* in t->wire */
	struct scim_target *t;
	struct sop *sop; /* R_OP */
	struct sop **batch; /* R_BULK: the operations, in request order */
	size_t n_batch;
	enum req_kind kind;
	CURL *easy;
	struct curl_slist *hdrs;
	char method[8];
	char *path; /* below the base URL, for messages */
	char *body;
	char *token_used;
	char *resp;
	size_t resp_len, resp_cap;
	bool resp_too_big;
	char errbuf[CURL_ERROR_SIZE];
};

struct sock {
	uv_poll_t poll;
	struct link link; /* in t->socks */
	struct scim_target *t;
	curl_socket_t fd;
};

struct scim_target {
	uv_loop_t *loop;
	CURLM *multi;
	uv_timer_t curl_timer;  /* CURLMOPT_TIMERFUNCTION */
	uv_timer_t retry_timer; /* earliest due sop in `delayed` */
	uv_timer_t probe_timer; /* quarantine probe */
	uv_timer_t kick_timer;  /* 0 ms: pump from a clean stack / finalize on stop */
	uv_timer_t auth_timer;  /* OAuth2: refresh the token before it expires */
	struct oauth2 *auth;    /* cfg.auth, borrowed; NULL: bearer token file or none */
	struct oauth2_req *auth_req; /* a token fetch in flight */
	bool auth_wait;         /* no usable token: hold new requests */
	bool auth_from_401;     /* the current token was fetched because of a 401/403 */
	bool auth_pending_401, auth_pending_probe; /* why the fetch in flight was started */
	uint64_t auth_due;      /* uv_hrtime() in ms when the current token is due for renewal (the
				 * clock itself, not the loop's cached time: an iteration may be long) */
	struct link socks, ready, delayed, wire;
	unsigned n_wire;     /* requests on the wire, internal ones included */
	unsigned n_op_wire;  /* ... of which for operations (single or bulk) */
	unsigned n_ops_wire; /* operations with a request on the wire */
	unsigned n_pending;  /* operations submitted and not yet completed */
	uint64_t cancel_gen; /* bumped by scim_cancel_all */
	bool bulk_off;       /* the target refused a bulk request: no more */
	unsigned bulk_max_ops;   /* from ServiceProviderConfig (0: unknown) */
	size_t bulk_max_payload; /* idem */
	struct scim_config cfg;
	char *url, *token_file, *token;
	uint64_t node_id, term;
	char cluster_id[64]; /* X-Canopy-Cluster; "" until scim_set_cluster */
	uint64_t rng;
	uint8_t health[HEALTH_WINDOW];
	unsigned health_n, health_i;
	unsigned probe_ms;
	bool probe_on_wire;
	bool spc_known, spc_on_wire; /* ServiceProviderConfig read / being fetched */
	struct scim_stats stats;
	bool stopping, finalized;
	unsigned closing; /* uv handles whose close callback has not run */
	void (*done)(void *);
	void *done_data;
};

struct reply {
	CURLcode rc;
	long http;
	long retry_after_s;
	json_t *json; /* parsed body, or NULL */
};

/* ------------------------------------------------------------------ small helpers */

static int errf(char *buf, size_t len, int rc, const char *fmt, ...) __attribute__((format(printf, 4, 5)));
static int errf(char *buf, size_t len, int rc, const char *fmt, ...)
{
	if (buf != NULL && len > 0) {
		va_list ap;
		va_start(ap, fmt);
		vsnprintf(buf, len, fmt, ap);
		va_end(ap);
	}
	return rc;
}

/* strlcpy: truncating copy, always terminated */
static void copy_str(char *dst, size_t size, const char *src)
{
	size_t n = strnlen(src, size - 1);
	memcpy(dst, src, n);
	dst[n] = '\0';
}

static void wipe_free(char *s)
{
	if (s == NULL)
		return;
	volatile char *p = s;
	while (*p != '\0')
		*p++ = '\0';
	free(s);
}

static char *concat(const char *a, const char *b)
{
	size_t la = strlen(a), lb = strlen(b);
	char *s = malloc(la + lb + 1);
	if (s != NULL) {
		memcpy(s, a, la);
		memcpy(s + la, b, lb + 1);
	}
	return s;
}

static char *xasprintf(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static char *xasprintf(const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	int n = vsnprintf(NULL, 0, fmt, ap);
	va_end(ap);
	if (n < 0)
		return NULL;
	char *s = malloc((size_t)n + 1);
	if (s == NULL)
		return NULL;
	va_start(ap, fmt);
	vsnprintf(s, (size_t)n + 1, fmt, ap);
	va_end(ap);
	return s;
}

static uint64_t rnd(struct scim_target *t)
{
	/* xorshift64*: jitter only, no need for anything stronger */
	uint64_t x = t->rng;
	x ^= x >> 12;
	x ^= x << 25;
	x ^= x >> 27;
	t->rng = x;
	return x * 0x2545F4914F6CDD1DULL;
}

/* Percent-encode everything but RFC 3986 unreserved characters. */
static char *url_encode(const char *s)
{
	static const char hex[] = "0123456789ABCDEF";
	size_t n = strlen(s);
	char *out = malloc(3 * n + 1), *o = out;
	if (out == NULL)
		return NULL;
	for (const unsigned char *p = (const unsigned char *)s; *p != '\0'; p++) {
		if ((*p >= 'A' && *p <= 'Z') || (*p >= 'a' && *p <= 'z') || (*p >= '0' && *p <= '9') || *p == '-' ||
		    *p == '.' || *p == '_' || *p == '~') {
			*o++ = (char)*p;
		} else {
			*o++ = '%';
			*o++ = hex[*p >> 4];
			*o++ = hex[*p & 15];
		}
	}
	*o = '\0';
	return out;
}

/* A filter comparison value (RFC 7644 §3.4.2.2: "Attribute values are JSON
 * strings"): the value JSON-encoded, quotes included, so `"` and `\` come out
 * backslash-escaped and control characters as \uXXXX. */
static char *filter_value(const char *v)
{
	json_t *j = json_string(v);
	if (j == NULL)
		return NULL;
	char *s = json_dumps(j, JSON_ENCODE_ANY);
	json_decref(j);
	return s;
}

static const char *endpoint(enum object_type type)
{
	return type == OBJECT_GROUP ? "/Groups" : "/Users";
}

static const char *op_name(enum scim_action a)
{
	return a == SCIM_UPSERT ? "upsert" : a == SCIM_DELETE ? "delete" : "members";
}

/* Read a bearer token file: its content, surrounding whitespace trimmed.
 * A blocking read of a small local file on the loop thread: cheap, and rare
 * (start, a 401, a quarantine probe). */
static int read_token(const char *file, char **out, char *errmsg, size_t errlen)
{
	char why[600];
	int rc = secret_read(file, out, why, sizeof why);
	if (rc != 0)
		return errf(errmsg, errlen, rc, "scim: token file: %s", why);
	return 0;
}

/* Re-read token_file; keep the old token if it cannot be read. */
static void reread_token(struct scim_target *t)
{
	char *tok = NULL;
	if (t->token_file == NULL || read_token(t->token_file, &tok, NULL, 0) != 0)
		return;
	if (t->token != NULL && strcmp(tok, t->token) == 0) {
		wipe_free(tok);
		return;
	}
	wipe_free(t->token);
	t->token = tok;
}

/* "scimType: detail" from a SCIM error body (RFC 7644 §3.12), else a
 * printable prefix of the raw body. */
static void error_detail(const struct req *r, const struct reply *rep, char *out, size_t len)
{
	out[0] = '\0';
	if (rep->json != NULL) {
		const char *detail = json_string_value(json_object_get(rep->json, "detail"));
		const char *type = json_string_value(json_object_get(rep->json, "scimType"));
		if (detail != NULL || type != NULL) {
			snprintf(out, len, "%s%s%s", type != NULL ? type : "", type != NULL && detail != NULL ? ": " : "",
				 detail != NULL ? detail : "");
			return;
		}
	}
	size_t n = r->resp_len < 200 ? r->resp_len : 200, o = 0;
	for (size_t i = 0; i < n && o + 1 < len; i++) {
		char c = r->resp[i];
		out[o++] = (c >= 0x20 && c < 0x7f) ? c : ' ';
	}
	out[o] = '\0';
}

/* "METHOD PATH: HTTP 503: scimType: detail" or "METHOD PATH: <curl error>" */
static void describe(const struct req *r, const struct reply *rep, char *out, size_t len)
{
	char d[320];
	if (rep->rc != CURLE_OK) {
		char why[CURL_ERROR_SIZE + 600];
		http_tls_explain(r->t ? r->t->cfg.tls : NULL, r->t ? r->t->url : "", rep->rc, r->errbuf, why, sizeof why);
		snprintf(out, len, "%s %s: %s", r->method, r->path, why);
		return;
	}
	error_detail(r, rep, d, sizeof d);
	snprintf(out, len, "%s %s: HTTP %ld%s%s", r->method, r->path, rep->http, d[0] ? ": " : "", d);
}

static bool is2xx(long h)
{
	return h >= 200 && h < 300;
}

/* ------------------------------------------------------------------ forward */

static void pump(struct scim_target *t);
static void kick(struct scim_target *t);
static void start_step(struct sop *s);
static int req_start(struct scim_target *t, enum req_kind kind, const char *method, char *path, char *body, bool fresh,
		     struct req **out);
static void start_bulk(struct scim_target *t);
static bool bulkable(const struct sop *s);
static bool bulk_on(const struct scim_target *t);
static void req_detach(struct req *r);
static void req_free(struct req *r);
static void arm_retry(struct scim_target *t);
static void on_probe(uv_timer_t *h);

/* ------------------------------------------------------------------ completion */

static void finish(struct sop *s, int status)
{
	struct scim_target *t = s->t;
	struct scim_op *op = s->op;
	scim_done_cb cb = s->cb;

	op->status = status;
	op->duration_ms = (double)(uv_hrtime() - s->t0) / 1e6;
	if (status == 0)
		op->error[0] = '\0';
	else if (status != -ECANCELED)
		t->stats.failures++;
	t->n_pending--;
	op->priv = NULL;
	free(s->path);
	json_decref(s->eff_add);
	json_decref(s->eff_rm);
	free(s);
	cb(op); /* may free op, submit, cancel or stop: touch nothing after */
}

static void fail(struct sop *s, int status, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
static void fail(struct sop *s, int status, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(s->op->error, sizeof s->op->error, fmt, ap);
	va_end(ap);
	finish(s, status);
}

/* A 4xx the operation cannot get past: -EPROTO with method, path, status and
 * the SCIM error detail. */
static void fail_http(struct sop *s, const struct req *r, const struct reply *rep)
{
	char detail[1024];
	describe(r, rep, detail, sizeof detail);
	fail(s, -EPROTO, "%s", detail);
}

/* ------------------------------------------------------------------ queueing */

static void ready_push(struct scim_target *t, struct sop *s, bool head)
{
	s->where = W_READY;
	list_insert(head ? t->ready.next : &t->ready, &s->link);
}

/* Move to the next step right away (it goes first: it continues work that
 * already holds its place in line). */
static void next_step(struct sop *s, enum step step)
{
	if (++s->hops > MAX_HOPS) {
		fail(s, -ELOOP, "%s %s: no stable outcome after %u steps (objects changing under us?)",
		     op_name(s->op->action), s->op->anchor != NULL ? s->op->anchor : s->id, s->hops);
		return;
	}
	s->step = step;
	s->tries = 0;
	ready_push(s->t, s, true);
}

static void delay(struct sop *s, uint64_t ms)
{
	struct scim_target *t = s->t;
	s->where = W_DELAYED;
	s->due = uv_now(t->loop) + ms;
	/* keep `delayed` sorted by due time; scan from the tail (usually latest) */
	struct link *pos = t->delayed.prev;
	while (pos != &t->delayed && container_of(pos, struct sop, link)->due > s->due)
		pos = pos->prev;
	list_insert(pos->next, &s->link);
	arm_retry(t);
}

static void on_retry(uv_timer_t *h)
{
	struct scim_target *t = h->data;
	uint64_t now = uv_now(t->loop);
	while (!list_empty(&t->delayed)) {
		struct sop *s = container_of(t->delayed.next, struct sop, link);
		if (s->due > now)
			break;
		list_remove(&s->link);
		ready_push(t, s, false);
	}
	arm_retry(t);
	pump(t);
}

static void arm_retry(struct scim_target *t)
{
	if (list_empty(&t->delayed)) {
		uv_timer_stop(&t->retry_timer);
		return;
	}
	uint64_t due = container_of(t->delayed.next, struct sop, link)->due, now = uv_now(t->loop);
	uv_timer_start(&t->retry_timer, on_retry, due > now ? due - now : 0, 0);
}

/* Full jitter (uniform in [0, cap]) with cap = min doubling per attempt up to max. */
static uint64_t backoff_ms(struct scim_target *t, unsigned tries)
{
	uint64_t cap = t->cfg.backoff_min_ms;
	for (unsigned i = 1; i < tries && cap < t->cfg.backoff_max_ms; i++)
		cap *= 2;
	if (cap > t->cfg.backoff_max_ms)
		cap = t->cfg.backoff_max_ms;
	return rnd(t) % (cap + 1);
}

static void pump(struct scim_target *t)
{
	while (!t->stopping && !t->stats.quarantined && !t->auth_wait && t->n_wire < t->cfg.max_in_flight &&
	       !list_empty(&t->ready)) {
		struct sop *s = container_of(t->ready.next, struct sop, link);
		if (bulk_on(t) && bulkable(s)) {
			start_bulk(t); /* takes s and what can go with it */
			continue;
		}
		list_remove(&s->link);
		s->where = W_NONE;
		start_step(s); /* may complete s and run the user's callback */
	}
}

static void on_kick(uv_timer_t *h);

static void kick(struct scim_target *t)
{
	if (!uv_is_active((uv_handle_t *)&t->kick_timer))
		uv_timer_start(&t->kick_timer, on_kick, 0, 0);
}

/* ------------------------------------------------------------------ quarantine */

static void quarantine(struct scim_target *t, const char *reason, const char *detail)
{
	snprintf(t->stats.quarantine_reason, sizeof t->stats.quarantine_reason, "%s", reason);
	copy_str(t->stats.quarantine_detail, sizeof t->stats.quarantine_detail, detail);
	if (t->stats.quarantined)
		return;
	t->stats.quarantined = true;
	t->stats.quarantine_since_ms = uv_now(t->loop);
	if (!t->probe_on_wire)
		uv_timer_start(&t->probe_timer, on_probe, t->probe_ms, 0);
}

static void leave_quarantine(struct scim_target *t)
{
	t->stats.quarantined = false;
	t->stats.quarantine_reason[0] = '\0';
	t->stats.quarantine_detail[0] = '\0';
	t->stats.quarantine_since_ms = 0;
	t->health_n = t->health_i = 0; /* judge the target afresh */
	uv_timer_stop(&t->probe_timer);
	pump(t);
}

/* Record one completed request; quarantine when >= HEALTH_FAILURES of the
 * last HEALTH_WINDOW failed. */
static void health(struct scim_target *t, uint8_t what, const char *detail)
{
	t->health[t->health_i] = what;
	t->health_i = (t->health_i + 1) % HEALTH_WINDOW;
	if (t->health_n < HEALTH_WINDOW)
		t->health_n++;
	if (what == H_OK || t->stats.quarantined)
		return;
	unsigned net = 0, server = 0;
	for (unsigned i = 0; i < t->health_n; i++) {
		net += t->health[i] == H_NET;
		server += t->health[i] == H_SERVER;
	}
	if (net + server >= HEALTH_FAILURES)
		quarantine(t, net >= server ? "target_unreachable" : "server_errors", detail);
}

/* ------------------------------------------------------------------ OAuth2 */

static void fetch_spc(struct scim_target *t);
static void on_token(void *data, int status, char *token, uint64_t refresh_in_ms, const char *errmsg);

/* Ask for a token (sync/target/oauth2.h) unless a fetch is in flight.
 * reject: the token a 401 answered to (a new one is needed). after_401:
 * hold new requests until it is there. probe: a quarantine probe follows. */
static void auth_fetch(struct scim_target *t, const char *reject, bool after_401, bool probe)
{
	if (after_401) {
		t->auth_wait = true;
		t->auth_pending_401 = true;
	}
	if (probe)
		t->auth_pending_probe = true;
	if (t->auth_req != NULL || t->stopping)
		return;
	uv_timer_stop(&t->auth_timer);
	int rc = oauth2_token_async(t->auth, t->loop, reject, on_token, t, &t->auth_req);
	if (rc != 0) {
		char detail[128];
		snprintf(detail, sizeof detail, "token request to %s: %s", oauth2_token_url(t->auth),
			 rc == -ENOMEM ? "out of memory" : uv_strerror(rc));
		t->auth_wait = true;
		quarantine(t, "target_unreachable", detail);
	}
}

static void on_auth_timer(uv_timer_t *h)
{
	struct scim_target *t = h->data;
	auth_fetch(t, NULL, false, false); /* 80 % of the lifetime: a new one */
}

static void on_token(void *data, int status, char *token, uint64_t refresh_in_ms, const char *errmsg)
{
	struct scim_target *t = data;
	bool from_401 = t->auth_pending_401, probe = t->auth_pending_probe;

	t->auth_req = NULL;
	t->auth_pending_401 = t->auth_pending_probe = false;
	if (t->stopping) {
		secret_free(token);
		return;
	}
	if (status == 0) {
		wipe_free(t->token);
		t->token = token;
		t->auth_wait = false;
		t->auth_from_401 = from_401;
		t->auth_due = uv_hrtime() / 1000000 + refresh_in_ms;
		uv_timer_start(&t->auth_timer, on_auth_timer, refresh_in_ms > 50 ? refresh_in_ms : 50, 0);
		if (probe && t->stats.quarantined && !t->probe_on_wire) {
			char *path = strdup("/ServiceProviderConfig");
			struct req *r;
			if (path != NULL && req_start(t, R_PROBE, "GET", path, NULL, false, &r) == 0)
				t->probe_on_wire = true;
			else
				uv_timer_start(&t->probe_timer, on_probe, t->probe_ms, 0);
		}
		if (!t->spc_known && !t->spc_on_wire)
			fetch_spc(t);
		pump(t);
		return;
	}
	if (status == -EIO && !t->auth_wait && t->token != NULL && !probe) {
		/* the endpoint is out of reach but the token has a fifth of its
		 * life left: try again soon, keep working meanwhile */
		uv_timer_start(&t->auth_timer, on_auth_timer, 2000, 0);
		return;
	}
	/* No token to work with: stop until a probe gets one. */
	t->auth_wait = true;
	bool was = t->stats.quarantined;
	quarantine(t, status == -EACCES ? "unauthorized" : "target_unreachable", errmsg);
	if (was && !t->probe_on_wire) { /* quarantine() arms the probe only on entering */
		t->probe_ms = t->probe_ms >= t->cfg.probe_max_ms / 2 ? t->cfg.probe_max_ms : t->probe_ms * 2;
		uv_timer_start(&t->probe_timer, on_probe, t->probe_ms, 0);
	}
}

/* A 401/403 answer with OAuth2: the first to the current token gets a new
 * token (the request is re-sent with it); one to a token fetched that way
 * quarantines. Returns false without OAuth2 (the bearer token path). */
static bool auth_rejected(struct scim_target *t, const struct req *r, const char *detail)
{
	if (t->auth == NULL)
		return false;
	if (t->token == NULL || strcmp(r->token_used, t->token) != 0)
		return true; /* answered to an older token: a newer one is in use */
	/* a fresh token refused: the grant itself is not good enough (one that
	 * was near its end may just have expired on the way: renew it) */
	if (t->auth_from_401 && !t->auth_wait && uv_hrtime() / 1000000 < t->auth_due) {
		char d[1100];
		snprintf(d, sizeof d, "%s (with a token fetched after an earlier refusal)", detail);
		t->auth_wait = true;
		quarantine(t, "unauthorized", d);
		return true;
	}
	auth_fetch(t, r->token_used, true, false);
	return true;
}

static void on_probe(uv_timer_t *h)
{
	struct scim_target *t = h->data;
	if (t->stopping || !t->stats.quarantined || t->probe_on_wire)
		return;
	if (t->auth != NULL && (t->auth_wait || strcmp(t->stats.quarantine_reason, "unauthorized") == 0)) {
		/* a new token first (a fixed secret or grant takes effect); the
		 * probe request follows when it is there (on_token) */
		auth_fetch(t, t->token, false, true);
		return;
	}
	reread_token(t); /* so that fixing the token file recovers without a restart */
	char *path = strdup("/ServiceProviderConfig");
	struct req *r;
	if (path != NULL && req_start(t, R_PROBE, "GET", path, NULL, false, &r) == 0) {
		t->probe_on_wire = true;
		return;
	}
	uv_timer_start(&t->probe_timer, on_probe, t->probe_ms, 0);
}

/* RFC 7643 §5: ServiceProviderConfig "bulk": {"supported", "maxOperations",
 * "maxPayloadSize"} */
static void read_spc(struct scim_target *t, const struct reply *rep)
{
	json_t *bulk = json_object_get(rep->json, "bulk");
	if (!json_is_object(rep->json))
		return;
	t->spc_known = true;
	if (!json_is_object(bulk))
		return;
	t->stats.bulk_supported = json_is_true(json_object_get(bulk, "supported"));
	json_int_t ops = json_integer_value(json_object_get(bulk, "maxOperations"));
	json_int_t size = json_integer_value(json_object_get(bulk, "maxPayloadSize"));
	t->bulk_max_ops = ops > 0 && ops < 1000000 ? (unsigned)ops : 0;
	t->bulk_max_payload = size > 0 ? (size_t)size : 0;
}

static void probe_done(struct scim_target *t, const struct req *r, const struct reply *rep)
{
	t->probe_on_wire = false;
	/* The interval grows after every probe, a good one too: a target that
	 * answers probes but still refuses writes (e.g. ServiceProviderConfig
	 * served without authentication) must not make us flap fast. It drops
	 * back to probe_min_ms only when an operation's request succeeds. */
	t->probe_ms = t->probe_ms >= t->cfg.probe_max_ms / 2 ? t->cfg.probe_max_ms : t->probe_ms * 2;
	if (t->stopping || !t->stats.quarantined)
		return;
	if (rep->rc == CURLE_OK && is2xx(rep->http)) {
		read_spc(t, rep);
		leave_quarantine(t);
		return;
	}
	char detail[1024];
	describe(r, rep, detail, sizeof detail);
	if (rep->rc == CURLE_OK && (rep->http == 401 || rep->http == 403))
		snprintf(t->stats.quarantine_reason, sizeof t->stats.quarantine_reason, "unauthorized");
	copy_str(t->stats.quarantine_detail, sizeof t->stats.quarantine_detail, detail);
	uv_timer_start(&t->probe_timer, on_probe, t->probe_ms, 0);
}

/* RFC 7644 §4: learn what the target supports; asynchronously */
static void fetch_spc(struct scim_target *t)
{
	char *path = strdup("/ServiceProviderConfig");
	struct req *r;
	if (path != NULL && req_start(t, R_SPC, "GET", path, NULL, false, &r) == 0)
		t->spc_on_wire = true;
}

static void spc_done(struct scim_target *t, const struct req *r, const struct reply *rep)
{
	char detail[1024];
	t->spc_on_wire = false;
	describe(r, rep, detail, sizeof detail);
	if (rep->rc != CURLE_OK || rep->http >= 500) {
		health(t, rep->rc != CURLE_OK ? H_NET : H_SERVER, detail);
		return;
	}
	health(t, H_OK, NULL);
	if ((rep->http == 401 || rep->http == 403) && auth_rejected(t, r, detail))
		return;
	if (rep->http == 401 || rep->http == 403)
		quarantine(t, "unauthorized", detail);
	else if (is2xx(rep->http))
		read_spc(t, rep);
}

/* ------------------------------------------------------------------ request bodies */

/* The resource as written by PUT/POST: id and meta are the server's (RFC 7643
 * §3.1), externalId is the anchor (invariant 2). */
static json_t *resource_copy(const struct scim_op *op, bool keep_members)
{
	json_t *c = json_copy(op->resource); /* shallow: values shared, keys ours */
	if (c == NULL)
		return NULL;
	json_object_del(c, "id");
	json_object_del(c, "meta");
	if (!keep_members)
		json_object_del(c, "members");
	if (op->anchor != NULL)
		json_object_set_new(c, "externalId", json_string(op->anchor));
	return c;
}

static char *dump(json_t *j)
{
	char *s = j != NULL ? json_dumps(j, JSON_COMPACT) : NULL;
	json_decref(j);
	return s;
}

/* Group update: PATCH "replace" of every attribute but members (RFC 7644
 * §3.5.2.3), so that the membership, managed incrementally, is never wiped. */
static json_t *group_patch(const struct scim_op *op)
{
	json_t *res = resource_copy(op, false), *ops = json_array(), *body = NULL;
	const char *key;
	json_t *val;
	if (res == NULL || ops == NULL)
		goto out;
	json_object_foreach(res, key, val)
	{
		if (strcmp(key, "schemas") == 0)
			continue;
		json_array_append_new(ops, json_pack("{s:s, s:s, s:O}", "op", "replace", "path", key, "value", val));
	}
	body = json_pack("{s:[s], s:O}", "schemas", SCHEMA_PATCHOP, "Operations", ops);
out:
	json_decref(res);
	json_decref(ops);
	return body;
}

/* The member changes still to make: after a read-back, only those that had
 * not landed; before, the operation's own lists. */
static json_t *members_add(const struct sop *s)
{
	return s->eff_add != NULL ? s->eff_add : s->op->add;
}

static json_t *members_rm(const struct sop *s)
{
	return s->eff_rm != NULL ? s->eff_rm : s->op->remove;
}

/* Is `id` among a group's "members" ([{"value": id}, ...])? */
static bool has_member(json_t *members, json_t *id)
{
	json_t *m;
	size_t j;
	json_array_foreach(members, j, m)
		if (json_equal(json_object_get(m, "value"), id))
			return true;
	return false;
}

/*
 * Read-back (ST_READ_MEMBERS answered): keep only the adds that are not
 * members yet and the removes that still are. A PATCH "add" of a value that is
 * present already is not idempotent on every server (RFC 7644 §3.5.2.1 leaves
 * duplicates to the service provider; some append them), so a PATCH that may
 * have landed -- a retry after a lost answer, or a re-run the engine asks
 * for -- is never sent blind. Returns 0 or -ENOMEM.
 */
static int members_filter(struct sop *s, json_t *group)
{
	json_t *cur = json_object_get(group, "members"), *add = json_array(), *rm = json_array(), *v;
	size_t i;

	if (add == NULL || rm == NULL)
		goto nomem;
	json_array_foreach(s->op->add, i, v)
		if (!has_member(cur, v) && json_array_append(add, v) != 0)
			goto nomem;
	json_array_foreach(s->op->remove, i, v)
		if (has_member(cur, v) && json_array_append(rm, v) != 0)
			goto nomem;
	json_decref(s->eff_add);
	json_decref(s->eff_rm);
	s->eff_add = add;
	s->eff_rm = rm;
	s->add_pos = s->rm_pos = 0;
	return 0;
nomem:
	json_decref(add);
	json_decref(rm);
	return -ENOMEM;
}

/* One chunk of SCIM_MEMBERS (RFC 7644 §3.5.2.1 add, §3.5.2.2 remove with a
 * value filter): at most members_per_patch member changes. */
static json_t *members_patch(struct sop *s)
{
	size_t max = s->t->cfg.members_per_patch, n = 0;
	json_t *add = members_add(s), *remove = members_rm(s);
	size_t n_add = add != NULL ? json_array_size(add) : 0;
	size_t n_rm = remove != NULL ? json_array_size(remove) : 0;
	json_t *ops = json_array(), *vals = json_array(), *out = NULL;
	if (ops == NULL || vals == NULL)
		goto out;
	s->chunk_add = s->chunk_rm = 0;
	while (s->add_pos + s->chunk_add < n_add && n < max) {
		json_t *id = json_array_get(add, s->add_pos + s->chunk_add++);
		json_array_append_new(vals, json_pack("{s:O}", "value", id));
		n++;
	}
	if (json_array_size(vals) > 0)
		json_array_append_new(ops, json_pack("{s:s, s:s, s:O}", "op", "add", "path", "members", "value", vals));
	while (s->rm_pos + s->chunk_rm < n_rm && n < max) {
		const char *id = json_string_value(json_array_get(remove, s->rm_pos + s->chunk_rm++));
		char *fv = filter_value(id), *path = fv != NULL ? xasprintf("members[value eq %s]", fv) : NULL;
		free(fv);
		if (path == NULL)
			goto out;
		json_array_append_new(ops, json_pack("{s:s, s:s}", "op", "remove", "path", path));
		free(path);
		n++;
	}
	out = json_pack("{s:[s], s:O}", "schemas", SCHEMA_PATCHOP, "Operations", ops);
out:
	json_decref(ops);
	json_decref(vals);
	return out;
}

/* "/Users?filter=<attr eq "v">&attributes=id,externalId" (RFC 7644 §3.4.2.2,
 * §3.4.2.5: only what the match needs, never a big group's members). */
static char *filter_path(enum object_type type, const char *attr, const char *value)
{
	char *fv = filter_value(value), *f = fv != NULL ? xasprintf("%s eq %s", attr, fv) : NULL;
	char *enc = f != NULL ? url_encode(f) : NULL;
	char *path = enc != NULL ? xasprintf("%s?filter=%s&attributes=id,externalId", endpoint(type), enc) : NULL;
	free(fv);
	free(f);
	free(enc);
	return path;
}

static char *id_path(enum object_type type, const char *id)
{
	char *enc = url_encode(id);
	char *path = enc != NULL ? xasprintf("%s/%s", endpoint(type), enc) : NULL;
	free(enc);
	return path;
}

/* The request of s's current step: method, path below the base URL (owned)
 * and body (owned, or NULL). Returns 0; 1 when nothing is left to send
 * (SCIM_MEMBERS done); or a negative errno with op->error set. */
static int build(struct sop *s, const char **method, char **path, json_t **body)
{
	struct scim_op *op = s->op;
	*method = "GET";
	*path = NULL;
	*body = NULL;
	switch (s->step) {
	case ST_UPDATE:
		*path = id_path(op->type, s->id);
		*method = op->type == OBJECT_GROUP || op->patch ? "PATCH" : "PUT";
		*body = op->type == OBJECT_GROUP || op->patch ? group_patch(op) : resource_copy(op, false);
		break;
	case ST_CREATE:
		*method = "POST";
		*path = strdup(endpoint(op->type));
		*body = resource_copy(op, true); /* a group's initial members ride along */
		break;
	case ST_FIND_EXT:
		*path = filter_path(op->type, "externalId", op->anchor);
		break;
	case ST_FIND_NAME: {
		const char *attr = op->type == OBJECT_GROUP ? "displayName" : "userName";
		const char *name = json_string_value(json_object_get(op->resource, attr));
		if (name == NULL) {
			snprintf(op->error, sizeof op->error,
				 "upsert %s: the target reports a conflict, no object has this externalId, and the "
				 "resource has no %s to match on", op->anchor, attr);
			return -EPROTO;
		}
		*path = filter_path(op->type, attr, name);
		break;
	}
	case ST_DELETE:
		*method = "DELETE";
		*path = id_path(op->type, s->id);
		break;
	case ST_READ_MEMBERS: {
		char *base = id_path(op->type, s->id);
		*path = base != NULL ? xasprintf("%s?attributes=members", base) : NULL;
		free(base);
		break;
	}
	case ST_MEMBERS: {
		size_t n_add = members_add(s) != NULL ? json_array_size(members_add(s)) : 0;
		size_t n_rm = members_rm(s) != NULL ? json_array_size(members_rm(s)) : 0;
		if (s->add_pos >= n_add && s->rm_pos >= n_rm)
			return 1;
		*method = "PATCH";
		*path = id_path(op->type, s->id);
		*body = members_patch(s);
		break;
	}
	}
	bool needs_body = strcmp(*method, "GET") != 0 && strcmp(*method, "DELETE") != 0;
	if (*path == NULL || (needs_body && *body == NULL)) {
		free(*path);
		json_decref(*body);
		*path = NULL;
		*body = NULL;
		snprintf(op->error, sizeof op->error, "%s: cannot build the request (out of memory?)",
			 op_name(op->action));
		return -ENOMEM;
	}
	return 0;
}

/* s is about to go out with this request (path: owned copy kept for messages) */
static void sending(struct sop *s, const char *method, char *path)
{
	free(s->path);
	s->path = path;
	s->method = method;
	s->tries++;
	s->op->attempts++;
}

static void attach(struct req *r, struct sop *s)
{
	s->req = r;
	s->where = W_WIRE;
	r->t->n_ops_wire++;
}

static void detach(struct sop *s)
{
	s->req = NULL;
	s->where = W_NONE;
	s->t->n_ops_wire--;
}

/* Send the request of s's current step on its own. */
static void start_step(struct sop *s)
{
	struct scim_target *t = s->t;
	const char *method;
	char *path, *text = NULL, *mine;
	json_t *body;
	struct req *r;
	int rc = build(s, &method, &path, &body);
	if (rc == 1) {
		snprintf(s->op->result_id, sizeof s->op->result_id, "%s", s->id);
		finish(s, 0);
		return;
	}
	if (rc < 0) {
		finish(s, rc);
		return;
	}
	if ((body != NULL && (text = dump(body)) == NULL) || (mine = strdup(path)) == NULL) {
		free(path);
		free(text);
		fail(s, -ENOMEM, "%s: out of memory", op_name(s->op->action));
		return;
	}
	sending(s, method, mine);
	if ((rc = req_start(t, R_OP, method, path, text, s->step == ST_MEMBERS, &r)) != 0) {
		fail(s, rc, "%s %s: cannot start the request: %s", method, s->path, strerror(-rc));
		return;
	}
	r->sop = s;
	attach(r, s);
}

/* ------------------------------------------------------------------ bulk (RFC 7644 §3.7) */

static const char SCHEMA_BULKREQ[] = "urn:ietf:params:scim:api:messages:2.0:BulkRequest";

static bool bulkable(const struct sop *s)
{
	return s->step == ST_CREATE || s->step == ST_UPDATE || s->step == ST_DELETE;
}

static bool bulk_on(const struct scim_target *t)
{
	return t->cfg.bulk && t->stats.bulk_supported && !t->bulk_off;
}

/* s's current step as one BulkRequest operation; bulkId "op<i>" (required
 * for POST, §3.7) lets us find its result. */
static char *bulk_entry(struct sop *s, size_t i, const char **method, char **path)
{
	json_t *body, *e;
	if (build(s, method, path, &body) != 0)
		return NULL; /* the single path will report it */
	if ((e = json_pack("{s:s, s:s}", "method", *method, "path", *path)) == NULL) {
		json_decref(body);
		free(*path);
		return NULL;
	}
	if (strcmp(*method, "POST") == 0)
		json_object_set_new(e, "bulkId", json_sprintf("op%zu", i));
	if (body != NULL)
		json_object_set_new(e, "data", body);
	char *text = dump(e);
	if (text == NULL)
		free(*path);
	return text;
}

static char *bulk_body(char **parts, size_t n)
{
	size_t len = strlen(SCHEMA_BULKREQ) + 64;
	for (size_t i = 0; i < n; i++)
		len += strlen(parts[i]) + 1;
	char *body = malloc(len), *p = body;
	if (body == NULL)
		return NULL;
	p += sprintf(p, "{\"schemas\":[\"%s\"],\"Operations\":[", SCHEMA_BULKREQ);
	for (size_t i = 0; i < n; i++)
		p += sprintf(p, "%s%s", i ? "," : "", parts[i]);
	strcpy(p, "]}");
	return body;
}

/* Put the head of the ready queue, and whatever bulkable operations follow
 * it, into one POST /Bulk (within the target's maxOperations and
 * maxPayloadSize). A lone operation goes out on its own. */
static void start_bulk(struct scim_target *t)
{
	size_t max = t->cfg.bulk_max_operations, bytes = 128, n = 0;
	size_t limit = t->bulk_max_payload > 0 ? t->bulk_max_payload : 1048576;
	if (t->bulk_max_ops > 0 && t->bulk_max_ops < max)
		max = t->bulk_max_ops;
	struct sop **batch = calloc(max, sizeof *batch);
	char **parts = calloc(max, sizeof *parts);
	struct req *r = NULL;
	if (batch == NULL || parts == NULL)
		goto single;
	for (struct link *l = t->ready.next, *nx; l != &t->ready && n < max; l = nx) {
		nx = l->next;
		struct sop *s = container_of(l, struct sop, link);
		const char *method;
		char *path, *part;
		if (!bulkable(s) || (part = bulk_entry(s, n, &method, &path)) == NULL)
			continue;
		if (bytes + strlen(part) + 1 > limit && n > 0) {
			free(part);
			free(path);
			break;
		}
		bytes += strlen(part) + 1;
		list_remove(&s->link);
		s->where = W_NONE;
		s->method = method;
		free(s->path);
		s->path = path;
		batch[n] = s;
		parts[n++] = part;
	}
	if (n < 2)
		goto single;
	char *body = bulk_body(parts, n), *path = strdup("/Bulk");
	if (body == NULL || path == NULL) {
		free(body);
		free(path);
		goto single;
	}
	if (req_start(t, R_BULK, "POST", path, body, false, &r) != 0) /* frees path and body */
		goto single;
	r->batch = batch;
	r->n_batch = n;
	for (size_t i = 0; i < n; i++) {
		batch[i]->tries++;
		batch[i]->op->attempts++;
		attach(r, batch[i]);
		free(parts[i]);
	}
	free(parts);
	t->stats.bulk_requests++;
	return;
single:
	/* put them back in order and send the head by itself */
	while (n > 0) {
		free(parts[--n]);
		ready_push(t, batch[n], true);
	}
	free(parts);
	free(batch);
	struct sop *head = container_of(t->ready.next, struct sop, link);
	list_remove(&head->link);
	head->where = W_NONE;
	start_step(head);
}

/* ------------------------------------------------------------------ answers */

static int curl_errno(CURLcode rc)
{
	switch (rc) {
	case CURLE_OPERATION_TIMEDOUT:
		return -ETIMEDOUT;
	case CURLE_COULDNT_CONNECT:
		return -ECONNREFUSED;
	case CURLE_COULDNT_RESOLVE_HOST:
		return -EHOSTUNREACH;
	default:
		return -EIO;
	}
}

/* libcurl errors no retry can fix */
static bool curl_permanent(CURLcode rc)
{
	return rc == CURLE_URL_MALFORMAT || rc == CURLE_UNSUPPORTED_PROTOCOL || rc == CURLE_BAD_FUNCTION_ARGUMENT ||
	       rc == CURLE_OUT_OF_MEMORY || rc == CURLE_WRITE_ERROR;
}

/* Resources of a list response (RFC 7644 §3.4.2) whose externalId is `ext`
 * (exact: caseExact, RFC 7643 §3.1) -- or, with ext NULL, that have none. */
static json_t *pick(json_t *list, const char *ext, size_t *n_out, size_t *n_other)
{
	json_t *res = json_object_get(list, "Resources"), *v, *first = NULL;
	size_t i;
	*n_out = *n_other = 0;
	json_array_foreach(res, i, v)
	{
		if (json_string_value(json_object_get(v, "id")) == NULL)
			continue;
		const char *e = json_string_value(json_object_get(v, "externalId"));
		bool ok = ext != NULL ? (e != NULL && strcmp(e, ext) == 0) : (e == NULL || e[0] == '\0');
		if (!ok) {
			(*n_other)++;
			continue;
		}
		if ((*n_out)++ == 0)
			first = v;
	}
	return first;
}

static void adopt(struct sop *s, json_t *obj)
{
	snprintf(s->id, sizeof s->id, "%s", json_string_value(json_object_get(obj, "id")));
	s->found = true;
	next_step(s, s->op->action == SCIM_DELETE ? ST_DELETE : ST_UPDATE);
}

/* The answer to a step that was not a transient failure or 401/403. */
static void step_reply(struct sop *s, const struct req *r, const struct reply *rep)
{
	struct scim_op *op = s->op;
	long h = rep->http;
	size_t n, other;

	switch (s->step) {
	case ST_UPDATE:
		if (is2xx(h)) {
			snprintf(op->result_id, sizeof op->result_id, "%s", s->id);
			op->matched = s->found;
			finish(s, 0);
			return;
		}
		if (h == 404 && op->patch) { /* nothing left to patch (e.g. to disable) */
			finish(s, 0);
			return;
		}
		if (h == 404) { /* vanished in the target: create it again */
			s->id[0] = '\0';
			s->found = false;
			next_step(s, ST_CREATE);
			return;
		}
		break;
	case ST_CREATE:
		if (is2xx(h)) {
			const char *id = json_string_value(json_object_get(rep->json, "id"));
			if (id == NULL || strlen(id) >= sizeof op->result_id) {
				fail(s, -EPROTO, "%s %s: HTTP %ld without a usable \"id\" in the answer", r->method,
				     r->path, h);
				return;
			}
			snprintf(op->result_id, sizeof op->result_id, "%s", id);
			op->created = true;
			finish(s, 0);
			return;
		}
		if (h == 409) { /* RFC 7644 §3.3: uniqueness -- it exists: find it */
			next_step(s, op->anchor != NULL ? ST_FIND_EXT : ST_FIND_NAME);
			return;
		}
		break;
	case ST_FIND_EXT:
		if (is2xx(h)) {
			json_t *obj = pick(rep->json, op->anchor, &n, &other);
			if (obj != NULL)
				adopt(s, obj);
			else if (op->action == SCIM_DELETE)
				finish(s, 0); /* nothing carries this anchor: already gone */
			else
				next_step(s, ST_FIND_NAME);
			return;
		}
		break;
	case ST_FIND_NAME:
		if (is2xx(h)) {
			/* Soft match: adopt an object only if no other anchor owns it. */
			json_t *obj = pick(rep->json, NULL, &n, &other);
			if (n == 1) {
				adopt(s, obj);
			} else if (n > 1) {
				fail(s, -EPROTO, "upsert %s: %s: %zu objects without externalId match; refusing to "
						 "guess", op->anchor, r->path, n);
			} else if (other > 0) {
				fail(s, -EEXIST, "upsert %s: %s: the name is taken by an object with another "
						 "externalId", op->anchor, r->path);
			} else {
				fail(s, -EPROTO, "upsert %s: the target reports a conflict (409) but neither "
						 "externalId nor name finds the object", op->anchor);
			}
			return;
		}
		break;
	case ST_DELETE:
		if (is2xx(h) || h == 404) { /* 404: already gone -- the goal is reached */
			snprintf(op->result_id, sizeof op->result_id, "%s", s->id);
			finish(s, 0);
			return;
		}
		break;
	case ST_READ_MEMBERS:
		if (is2xx(h)) {
			if (members_filter(s, rep->json) != 0) {
				fail(s, -ENOMEM, "%s %s: out of memory", r->method, r->path);
				return;
			}
			next_step(s, ST_MEMBERS);
			return;
		}
		if (h == 404)
			goto group_gone;
		break;
	case ST_MEMBERS:
		if (is2xx(h)) {
			s->add_pos += s->chunk_add;
			s->rm_pos += s->chunk_rm;
			s->hops = 0; /* chunks are progress, not churn */
			next_step(s, ST_MEMBERS);
			return;
		}
		if (h == 404)
			goto group_gone;
		break;
	}
	fail_http(s, r, rep);
	return;
group_gone: { /* SCIM_MEMBERS on a group the target no longer has */
	char detail[1024];
	describe(r, rep, detail, sizeof detail);
	fail(s, -ENOENT, "%s", detail);
}
}

/*
 * Is this answer unusable for s's step? A 3xx (we never follow redirects:
 * a bearer token must not travel to another origin), or a 2xx whose body is
 * not what RFC 7644 promises: not JSON (an HTML error page of a proxy), not an
 * object, a create without a string "id" (§3.3), a list without a
 * "Resources" array (§3.4.2), an "id" of the wrong type. Fills why (if given).
 */
static bool unusable_answer(const struct sop *s, const struct req *r, const struct reply *rep, char *why,
			    size_t len)
{
	const char *problem = NULL;
	json_t *j = rep->json, *id;

	if (rep->rc != CURLE_OK)
		return false;
	if (rep->http >= 300 && rep->http < 400)
		problem = "a redirect (not followed)";
	else if (!is2xx(rep->http) || r->kind != R_OP)
		return false;
	else if (r->resp_len > 0 && j == NULL)
		problem = "the body is not JSON";
	else if (j != NULL && !json_is_object(j))
		problem = "the body is not a JSON object";
	else if (s->step == ST_CREATE && (!json_is_string(id = json_object_get(j, "id")) ||
					  json_string_length(id) == 0 || json_string_length(id) >= 128))
		problem = "a create answered without a usable \"id\"";
	else if ((s->step == ST_UPDATE || s->step == ST_CREATE) && j != NULL &&
		 (id = json_object_get(j, "id")) != NULL && !json_is_string(id))
		problem = "\"id\" is not a string";
	else if ((s->step == ST_FIND_EXT || s->step == ST_FIND_NAME) &&
		 (j == NULL || !json_is_array(json_object_get(j, "Resources"))) &&
		 json_integer_value(json_object_get(j, "totalResults")) != 0)
		problem = "a list answer without a \"Resources\" array";
	else if ((s->step == ST_FIND_EXT || s->step == ST_FIND_NAME) && j == NULL)
		problem = "a list answer without a body";
	else if (s->step == ST_READ_MEMBERS && (j == NULL || (json_object_get(j, "members") != NULL &&
							     !json_is_array(json_object_get(j, "members")))))
		problem = "a group without a \"members\" array";
	if (problem != NULL && why != NULL)
		snprintf(why, len, "%s", problem);
	return problem != NULL;
}

/* The answer to one operation's request (single, or its part of a bulk).
 * count: record it in the health window (a bulk request counts once). */
static void op_reply(struct req *r, const struct reply *rep, bool count)
{
	struct scim_target *t = r->t;
	struct sop *s = r->sop;
	struct scim_op *op = s->op;
	char detail[1024];

	op->http_status = rep->rc == CURLE_OK ? rep->http : 0;
	bool net = rep->rc != CURLE_OK, server = !net && rep->http >= 500;
	describe(r, rep, detail, sizeof detail);

	char bad[256];
	bool garbage = (net && rep->rc == CURLE_WRITE_ERROR && r->resp_too_big) ||
		       (!net && !server && unusable_answer(s, r, rep, bad, sizeof bad));
	if (garbage) {
		/* An answer we cannot use is the target's failure, not the object's:
		 * it counts against the target's health (quarantine) and is retried;
		 * the engine keeps the object in its retry set if it stays so. */
		if (net)
			snprintf(bad, sizeof bad, "the answer is larger than %u bytes", RESP_MAX);
		snprintf(detail, sizeof detail, "%s %s: HTTP %ld: unusable answer: %s", r->method, r->path, rep->http,
			 bad);
		net = false;
		server = true;
	}
	if (count)
		health(t, net ? H_NET : server ? H_SERVER : H_OK, detail);
	if (!net && !server && rep->http != 429 && rep->http != 401 && rep->http != 403) {
		t->probe_ms = t->cfg.probe_min_ms;
		if (!t->spc_known && !t->spc_on_wire && !t->stopping)
			fetch_spc(t); /* the fetch at start failed: the target answers now */
	}
	if (!garbage && net && curl_permanent(rep->rc)) {
		fail(s, -EIO, "%s", detail);
		return;
	}
	if (!net && (rep->http == 401 || rep->http == 403)) {
		/* Not the operation's fault: put it back, unpaid. If the token file
		 * has changed since this request left, just try again with it;
		 * otherwise stop everything until a probe gets through. */
		s->tries--;
		ready_push(t, s, true);
		if (auth_rejected(t, r, detail))
			return;
		reread_token(t);
		bool same = strcmp(r->token_used, t->token != NULL ? t->token : "") == 0;
		if (same)
			quarantine(t, "unauthorized", detail);
		return;
	}
	if (net || server || rep->http == 429) {
		if (s->tries >= t->cfg.max_attempts) {
			fail(s, garbage ? -EBADMSG : net ? curl_errno(rep->rc) : -EIO, "%s (after %u attempts)", detail,
			     s->tries);
			return;
		}
		/* A member PATCH whose answer was lost may have landed: read the
		 * group back before sending it again (members_filter). */
		if (s->step == ST_MEMBERS) {
			s->step = ST_READ_MEMBERS;
			s->tries = 0;
		}
		uint64_t ms = backoff_ms(t, s->tries);
		/* RFC 7231 §7.1.3 (RFC 6585 §4 for 429): honour Retry-After, capped */
		if ((rep->http == 429 || rep->http == 503) && rep->retry_after_s > 0) {
			ms = (uint64_t)rep->retry_after_s * 1000;
			if (ms > t->cfg.backoff_max_ms)
				ms = t->cfg.backoff_max_ms;
		}
		t->stats.retries++;
		copy_str(op->error, sizeof op->error, detail); /* what we are retrying, for the curious */
		delay(s, ms);
		return;
	}
	step_reply(s, r, rep);
}

/* The result of batch[i] in a BulkResponse (§3.7.3): same position when the
 * server answered every operation, else by bulkId (POST). */
static json_t *bulk_result(json_t *results, size_t i, size_t n, const struct sop *s)
{
	char want[32];
	json_t *res = json_array_size(results) == n ? json_array_get(results, i) : NULL;
	const char *m = json_string_value(json_object_get(res, "method"));
	if (res != NULL && m != NULL && strcasecmp(m, s->method) == 0)
		return res;
	if (strcmp(s->method, "POST") != 0)
		return NULL;
	snprintf(want, sizeof want, "op%zu", i);
	size_t k;
	json_array_foreach(results, k, res)
	{
		const char *b = json_string_value(json_object_get(res, "bulkId"));
		if (b != NULL && strcmp(b, want) == 0)
			return res;
	}
	return NULL;
}

/* One operation's result as if it had been answered on its own: status
 * (a string in RFC 7644's examples, a number elsewhere), the error
 * "response", or {"id": last segment of "location"} on success. */
static void bulk_one(const json_t *res, struct reply *one)
{
	json_t *st = json_object_get(res, "status");
	one->http = json_is_string(st) ? strtol(json_string_value(st), NULL, 10) : (long)json_integer_value(st);
	one->retry_after_s = 0;
	if (!is2xx(one->http)) {
		one->json = json_incref(json_object_get(res, "response"));
		return;
	}
	const char *loc = json_string_value(json_object_get(res, "location"));
	const char *slash = loc != NULL ? strrchr(loc, '/') : NULL;
	one->json = slash != NULL && slash[1] != '\0' ? json_pack("{s:s}", "id", slash + 1) : NULL;
}

static void bulk_done(struct req *r, const struct reply *rep)
{
	struct scim_target *t = r->t;
	size_t n = r->n_batch;
	char detail[1024];
	for (size_t i = 0; i < n; i++)
		detach(r->batch[i]);
	bool net = rep->rc != CURLE_OK, server = !net && rep->http >= 500;
	describe(r, rep, detail, sizeof detail);
	health(t, net ? H_NET : server ? H_SERVER : H_OK, detail);

	json_t *results = !net && is2xx(rep->http) ? json_object_get(rep->json, "Operations") : NULL;
	bool transient = net || server || rep->http == 429 || rep->http == 401 || rep->http == 403;
	if (rep->http == 501 || (!transient && !json_is_array(results))) {
		/* The target will not take this bulk (too large, not implemented,
		 * an answer we cannot read): from now on, one request each. */
		t->bulk_off = true;
		for (size_t i = n; i-- > 0;) {
			r->batch[i]->tries--;
			ready_push(t, r->batch[i], true);
		}
		return;
	}
	uint64_t gen = t->cancel_gen;
	for (size_t i = 0; i < n; i++) {
		struct sop *s = r->batch[i];
		if (t->stopping || t->cancel_gen != gen) { /* a callback cancelled */
			fail(s, -ECANCELED, "%s: cancelled", op_name(s->op->action));
			continue;
		}
		struct req sub = {.t = t, .kind = R_OP, .sop = s, .path = s->path, .token_used = r->token_used};
		struct reply one = *rep;
		snprintf(sub.method, sizeof sub.method, "%s", s->method);
		if (!json_is_array(results)) { /* the whole request failed */
			one.json = json_incref(rep->json);
			copy_str(sub.errbuf, sizeof sub.errbuf, r->errbuf);
		} else {
			json_t *res = bulk_result(results, i, n, s);
			if (res != NULL) {
				bulk_one(res, &one);
			} else { /* unanswered: retry it as if the connection had failed */
				one.rc = CURLE_GOT_NOTHING;
				one.json = NULL;
				snprintf(sub.errbuf, sizeof sub.errbuf, "no result for it in the bulk response");
			}
		}
		op_reply(&sub, &one, false);
		json_decref(one.json);
	}
}

/* ------------------------------------------------------------------ requests */

static size_t on_write(char *data, size_t size, size_t nmemb, void *userp)
{
	struct req *r = userp;
	size_t n = size * nmemb;
	if (r->resp_len + n > RESP_MAX) {
		r->resp_too_big = true;
		return 0; /* CURLE_WRITE_ERROR */
	}
	if (r->resp_len + n + 1 > r->resp_cap) {
		size_t cap = r->resp_cap ? r->resp_cap : 4096;
		while (cap < r->resp_len + n + 1)
			cap *= 2;
		char *p = realloc(r->resp, cap);
		if (p == NULL)
			return 0;
		r->resp = p;
		r->resp_cap = cap;
	}
	memcpy(r->resp + r->resp_len, data, n);
	r->resp_len += n;
	r->resp[r->resp_len] = '\0';
	return n;
}

static struct curl_slist *headers(struct scim_target *t)
{
	char node[64], term[64], cluster[96], *auth = NULL;
	struct curl_slist *h = NULL, *n;
	snprintf(node, sizeof node, "X-Canopy-Node: %llu", (unsigned long long)t->node_id);
	snprintf(term, sizeof term, "X-Canopy-Term: %llu", (unsigned long long)t->term);
	snprintf(cluster, sizeof cluster, "X-Canopy-Cluster: %s", t->cluster_id);
	if (t->token != NULL && (auth = concat("Authorization: Bearer ", t->token)) == NULL)
		return NULL;
	const char *all[] = {
		"Accept: application/scim+json",
		"Content-Type: application/scim+json", /* RFC 7644 §3.1 */
		"Expect:", /* no 100-continue round trip before large bodies */
		node,
		term,
		t->cluster_id[0] ? cluster : NULL,
		auth,
	};
	for (size_t i = 0; i < sizeof all / sizeof all[0]; i++) {
		if (all[i] == NULL)
			continue;
		if ((n = curl_slist_append(h, all[i])) == NULL) {
			curl_slist_free_all(h);
			h = NULL;
			break;
		}
		h = n;
	}
	wipe_free(auth);
	return h;
}

/* Put a request on the wire. Takes ownership of path and body (freed on
 * failure too). The caller attaches the operation(s). */
static int req_start(struct scim_target *t, enum req_kind kind, const char *method, char *path, char *body, bool fresh,
		     struct req **out)
{
	struct req *r = calloc(1, sizeof *r);
	*out = NULL;
	char *url = NULL;
	int rc = -ENOMEM;
	if (r == NULL) {
		free(path);
		free(body);
		return -ENOMEM;
	}
	r->t = t;
	r->kind = kind;
	r->path = path;
	r->body = body;
	list_init(&r->link);
	snprintf(r->method, sizeof r->method, "%s", method);
	if ((url = concat(t->url, path)) == NULL || (r->token_used = strdup(t->token != NULL ? t->token : "")) == NULL ||
	    (r->hdrs = headers(t)) == NULL || (r->easy = curl_easy_init()) == NULL)
		goto fail;

	CURL *e = r->easy;
	curl_easy_setopt(e, CURLOPT_URL, url);
	/* libcurl sends a request again by itself when a reused connection
	 * closes before any answer (lib/transfer.c, Curl_retry_request) -- for
	 * every method. A member PATCH "add" is not idempotent on every server,
	 * and that silent second send duplicated members (seen with the test
	 * server): such requests go on a connection of their own, and a lost
	 * answer is handled here (read back first, members_filter). */
	if (fresh)
		curl_easy_setopt(e, CURLOPT_FRESH_CONNECT, 1L);
	curl_easy_setopt(e, CURLOPT_PRIVATE, r);
	curl_easy_setopt(e, CURLOPT_ERRORBUFFER, r->errbuf);
	curl_easy_setopt(e, CURLOPT_NOSIGNAL, 1L);
	curl_easy_setopt(e, CURLOPT_WRITEFUNCTION, on_write);
	curl_easy_setopt(e, CURLOPT_WRITEDATA, r);
	curl_easy_setopt(e, CURLOPT_HTTPHEADER, r->hdrs);
	curl_easy_setopt(e, CURLOPT_TIMEOUT_MS, (long)t->cfg.timeout_ms);
	curl_easy_setopt(e, CURLOPT_CONNECTTIMEOUT_MS, (long)(t->cfg.timeout_ms < 10000 ? t->cfg.timeout_ms : 10000));
	curl_easy_setopt(e, CURLOPT_HTTP_VERSION, (long)CURL_HTTP_VERSION_2TLS);
	curl_easy_setopt(e, CURLOPT_PIPEWAIT, 1L); /* prefer a multiplexed h2 stream to a new connection */
	curl_easy_setopt(e, CURLOPT_TCP_KEEPALIVE, 1L);
	curl_easy_setopt(e, CURLOPT_USERAGENT, "canopy/" CANOPY_VERSION);
	curl_easy_setopt(e, CURLOPT_PROTOCOLS_STR, "http,https");
	if (http_tls_apply(t->cfg.tls, e) != CURLE_OK) {
		rc = -EIO;
		goto fail;
	}
	if (strcmp(method, "GET") == 0) {
		curl_easy_setopt(e, CURLOPT_HTTPGET, 1L);
	} else {
		curl_easy_setopt(e, CURLOPT_CUSTOMREQUEST, method);
		if (body != NULL) {
			curl_easy_setopt(e, CURLOPT_POSTFIELDS, body);
			curl_easy_setopt(e, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)strlen(body));
		}
	}
	if (curl_multi_add_handle(t->multi, e) != CURLM_OK) {
		rc = -EIO;
		goto fail;
	}
	free(url);
	list_insert(&t->wire, &r->link);
	t->n_wire++;
	if ((kind == R_OP || kind == R_BULK) && ++t->n_op_wire > t->stats.peak_requests_in_flight)
		t->stats.peak_requests_in_flight = t->n_op_wire;
	*out = r;
	return 0;
fail:
	free(url);
	req_free(r);
	return rc;
}

/* Take a request off the wire (its op, if any, is the caller's business). */
static void req_detach(struct req *r)
{
	struct scim_target *t = r->t;
	if (r->easy != NULL) {
		curl_multi_remove_handle(t->multi, r->easy);
		curl_easy_cleanup(r->easy);
		r->easy = NULL;
	}
	if (!list_empty(&r->link)) {
		list_remove(&r->link);
		t->n_wire--;
		if (r->kind == R_OP || r->kind == R_BULK)
			t->n_op_wire--;
	}
}

static void req_free(struct req *r)
{
	if (r == NULL)
		return;
	if (r->easy != NULL)
		curl_easy_cleanup(r->easy);
	curl_slist_free_all(r->hdrs);
	free(r->path);
	free(r->body);
	wipe_free(r->token_used);
	free(r->resp);
	free(r->batch);
	free(r);
}

static void req_done(struct req *r, CURLcode rc)
{
	struct scim_target *t = r->t;
	struct reply rep = {.rc = rc};
	curl_off_t ra = -1;

	long connects = 0;
	curl_easy_getinfo(r->easy, CURLINFO_RESPONSE_CODE, &rep.http);
	if (curl_easy_getinfo(r->easy, CURLINFO_NUM_CONNECTS, &connects) == CURLE_OK && connects > 0)
		t->stats.connects += (uint64_t)connects;
	/* parses delta-seconds and HTTP-dates (RFC 7231 §7.1.3) */
	if (curl_easy_getinfo(r->easy, CURLINFO_RETRY_AFTER, &ra) == CURLE_OK && ra > 0)
		rep.retry_after_s = ra > 86400 ? 86400 : (long)ra;
	if (rc == CURLE_OK && r->resp_len > 0)
		rep.json = json_loadb(r->resp, r->resp_len, 0, NULL);
	req_detach(r);
	t->stats.requests++;
	switch (r->kind) {
	case R_OP:
		detach(r->sop);
		op_reply(r, &rep, true);
		break;
	case R_BULK:
		bulk_done(r, &rep);
		break;
	case R_SPC:
		spc_done(t, r, &rep);
		break;
	case R_PROBE:
		probe_done(t, r, &rep);
		break;
	}
	json_decref(rep.json);
	req_free(r);
	pump(t);
}

/* ------------------------------------------------------------------ libcurl <-> libuv */

static void check_done(struct scim_target *t)
{
	CURLMsg *m;
	int left;
	/* A callback run from req_done may stop the target: the multi handle
	 * stays valid (it is cleaned up from the kick timer), but nothing more
	 * is to be processed. */
	while (!t->stopping && (m = curl_multi_info_read(t->multi, &left)) != NULL) {
		if (m->msg != CURLMSG_DONE)
			continue;
		struct req *r = NULL;
		CURLcode rc = m->data.result;
		curl_easy_getinfo(m->easy_handle, CURLINFO_PRIVATE, (char **)&r);
		req_done(r, rc);
	}
}

static void on_poll(uv_poll_t *h, int status, int events)
{
	struct sock *k = h->data;
	struct scim_target *t = k->t;
	int flags = 0, running;
	if (status < 0)
		flags = CURL_CSELECT_ERR;
	if (events & UV_READABLE)
		flags |= CURL_CSELECT_IN;
	if (events & UV_WRITABLE)
		flags |= CURL_CSELECT_OUT;
	curl_multi_socket_action(t->multi, k->fd, flags, &running); /* may close k */
	check_done(t);
}

static void on_closed(uv_handle_t *h);

static void close_handle(struct scim_target *t, uv_handle_t *h)
{
	t->closing++;
	uv_close(h, on_closed);
}

static void sock_close(struct sock *k)
{
	list_remove(&k->link);
	uv_poll_stop(&k->poll);
	close_handle(k->t, (uv_handle_t *)&k->poll);
}

static int on_curl_socket(CURL *e, curl_socket_t fd, int what, void *userp, void *socketp)
{
	struct scim_target *t = userp;
	struct sock *k = socketp;
	(void)e;
	if (what == CURL_POLL_REMOVE) {
		if (k != NULL) {
			curl_multi_assign(t->multi, fd, NULL);
			sock_close(k);
		}
		return 0;
	}
	if (k == NULL) {
		if ((k = calloc(1, sizeof *k)) == NULL)
			return -1;
		if (uv_poll_init_socket(t->loop, &k->poll, fd) != 0) {
			free(k);
			return -1;
		}
		k->t = t;
		k->fd = fd;
		k->poll.data = k;
		list_insert(&t->socks, &k->link);
		curl_multi_assign(t->multi, fd, k);
	}
	int ev = 0;
	if (what & CURL_POLL_IN)
		ev |= UV_READABLE;
	if (what & CURL_POLL_OUT)
		ev |= UV_WRITABLE;
	uv_poll_start(&k->poll, ev, on_poll);
	return 0;
}

static void on_curl_timeout(uv_timer_t *h)
{
	struct scim_target *t = h->data;
	int running;
	long ms = -1;
	curl_multi_socket_action(t->multi, CURL_SOCKET_TIMEOUT, 0, &running);
	/* libcurl calls the timer function only when its deadline *changes*.
	 * Before curl 8.4 (curl PR #11938) it rounds the remaining time down to
	 * whole ms, and uv timers count from the loop's cached time, so this
	 * timer can fire a little before libcurl's deadline: then libcurl does
	 * nothing and never asks again, and the transfer stalls until some
	 * other event. Re-arm from what libcurl still waits for. */
	if (!t->stopping && !uv_is_active((uv_handle_t *)&t->curl_timer) &&
	    curl_multi_timeout(t->multi, &ms) == CURLM_OK && ms >= 0)
		uv_timer_start(&t->curl_timer, on_curl_timeout, ms > 0 ? (uint64_t)ms : 1, 0);
	check_done(t);
}

static int on_curl_timer(CURLM *m, long timeout_ms, void *userp)
{
	struct scim_target *t = userp;
	(void)m;
	if (timeout_ms < 0)
		uv_timer_stop(&t->curl_timer);
	else /* 0: on the next loop iteration, never from inside libcurl */
		uv_timer_start(&t->curl_timer, on_curl_timeout, (uint64_t)timeout_ms, 0);
	return 0;
}

/* ------------------------------------------------------------------ lifecycle */

static void release(struct scim_target *t)
{
	void (*done)(void *) = t->done;
	void *data = t->done_data;
	free(t->url);
	free(t->token_file);
	wipe_free(t->token);
	free(t);
	curl_global_cleanup();
	if (done != NULL)
		done(data);
}

static void on_closed(uv_handle_t *h)
{
	struct scim_target *t;
	if (h->type == UV_POLL) {
		struct sock *k = h->data;
		t = k->t;
		free(k);
	} else {
		t = h->data;
	}
	if (--t->closing == 0 && t->finalized)
		release(t);
}

static void finalize(struct scim_target *t)
{
	t->finalized = true;
	/* libcurl must not call back into handles we are closing */
	curl_multi_setopt(t->multi, CURLMOPT_SOCKETFUNCTION, NULL);
	curl_multi_setopt(t->multi, CURLMOPT_TIMERFUNCTION, NULL);
	/* stop polling while the descriptors are still open, then let libcurl
	 * close its cached connections */
	while (!list_empty(&t->socks)) {
		struct sock *k = container_of(t->socks.next, struct sock, link);
		curl_multi_assign(t->multi, k->fd, NULL);
		sock_close(k);
	}
	curl_multi_cleanup(t->multi);
	t->multi = NULL;
	close_handle(t, (uv_handle_t *)&t->curl_timer);
	close_handle(t, (uv_handle_t *)&t->retry_timer);
	close_handle(t, (uv_handle_t *)&t->probe_timer);
	close_handle(t, (uv_handle_t *)&t->kick_timer);
	close_handle(t, (uv_handle_t *)&t->auth_timer);
}

static void on_kick(uv_timer_t *h)
{
	struct scim_target *t = h->data;
	if (t->stopping)
		finalize(t);
	else
		pump(t);
}

static void apply_defaults(struct scim_config *c)
{
	if (c->max_in_flight == 0)
		c->max_in_flight = 8;
	if (c->max_attempts == 0)
		c->max_attempts = 6;
	if (c->backoff_min_ms == 0)
		c->backoff_min_ms = 200;
	if (c->backoff_max_ms == 0)
		c->backoff_max_ms = 30000;
	if (c->backoff_max_ms < c->backoff_min_ms)
		c->backoff_max_ms = c->backoff_min_ms;
	if (c->timeout_ms == 0)
		c->timeout_ms = 30000;
	if (c->probe_min_ms == 0)
		c->probe_min_ms = 1000;
	if (c->probe_max_ms == 0)
		c->probe_max_ms = 60000;
	if (c->probe_max_ms < c->probe_min_ms)
		c->probe_max_ms = c->probe_min_ms;
	if (c->members_per_patch == 0)
		c->members_per_patch = 1000;
	if (c->bulk_max_operations == 0)
		c->bulk_max_operations = 100;
}

int scim_target_start(struct scim_target **out, uv_loop_t *loop, const struct scim_config *cfg, char *errmsg,
		      size_t errlen)
{
	*out = NULL;
	if (cfg == NULL || cfg->url == NULL || (strncmp(cfg->url, "http://", 7) != 0 && strncmp(cfg->url, "https://", 8) != 0))
		return errf(errmsg, errlen, -EINVAL, "scim: target url must start with http:// or https://");
	struct scim_target *t = calloc(1, sizeof *t);
	if (t == NULL)
		return errf(errmsg, errlen, -ENOMEM, "scim: out of memory");
	t->loop = loop;
	t->cfg = *cfg;
	apply_defaults(&t->cfg);
	t->probe_ms = t->cfg.probe_min_ms;
	t->rng = uv_hrtime() ^ ((uint64_t)getpid() << 32) ^ (uint64_t)(uintptr_t)t;
	if (t->rng == 0)
		t->rng = 0x9E3779B97F4A7C15ULL;
	list_init(&t->socks);
	list_init(&t->ready);
	list_init(&t->delayed);
	list_init(&t->wire);

	int rc = -ENOMEM;
	if ((t->url = strdup(cfg->url)) == NULL)
		goto fail;
	for (size_t n = strlen(t->url); n > 0 && t->url[n - 1] == '/'; n--)
		t->url[n - 1] = '\0';
	if (cfg->token_file != NULL && (t->token_file = strdup(cfg->token_file)) == NULL)
		goto fail;
	if (cfg->token != NULL) {
		if ((t->token = strdup(cfg->token)) == NULL)
			goto fail;
	} else if (t->token_file != NULL && (rc = read_token(t->token_file, &t->token, errmsg, errlen)) != 0) {
		goto fail_quiet;
	}
	t->cfg.url = t->url;
	t->cfg.token_file = t->token_file;
	t->cfg.token = NULL; /* ours lives in t->token and changes */

	if (curl_global_init(CURL_GLOBAL_DEFAULT) != CURLE_OK) {
		rc = -EIO;
		goto fail;
	}
	if ((t->multi = curl_multi_init()) == NULL) {
		curl_global_cleanup();
		goto fail;
	}
	curl_multi_setopt(t->multi, CURLMOPT_SOCKETFUNCTION, on_curl_socket);
	curl_multi_setopt(t->multi, CURLMOPT_SOCKETDATA, t);
	curl_multi_setopt(t->multi, CURLMOPT_TIMERFUNCTION, on_curl_timer);
	curl_multi_setopt(t->multi, CURLMOPT_TIMERDATA, t);
	/* keep-alive: enough cached connections for a full window of requests */
	curl_multi_setopt(t->multi, CURLMOPT_MAXCONNECTS, (long)t->cfg.max_in_flight + 2);
	curl_multi_setopt(t->multi, CURLMOPT_PIPELINING, (long)CURLPIPE_MULTIPLEX);

	uv_timer_t *timers[] = {&t->curl_timer, &t->retry_timer, &t->probe_timer, &t->kick_timer, &t->auth_timer};
	for (size_t i = 0; i < sizeof timers / sizeof timers[0]; i++) {
		uv_timer_init(loop, timers[i]);
		timers[i]->data = t;
	}
	t->auth = cfg->auth;
	if (t->auth != NULL) {
		t->auth_wait = true; /* nothing leaves without a token */
		auth_fetch(t, NULL, false, false);
	} else {
		fetch_spc(t);
	}
	*out = t;
	return 0;
fail:
	errf(errmsg, errlen, rc, "scim: cannot start: %s", strerror(-rc));
fail_quiet:
	free(t->url);
	free(t->token_file);
	wipe_free(t->token);
	free(t);
	return rc;
}

void scim_set_fence(struct scim_target *t, uint64_t node_id, uint64_t term)
{
	t->node_id = node_id;
	t->term = term;
}

void scim_set_cluster(struct scim_target *t, const char *cluster_id)
{
	snprintf(t->cluster_id, sizeof t->cluster_id, "%s", cluster_id ? cluster_id : "");
}

static bool all_strings(const json_t *a)
{
	size_t i;
	json_t *v;
	if (a == NULL)
		return true;
	if (!json_is_array(a))
		return false;
	json_array_foreach(a, i, v)
	{
		if (!json_is_string(v))
			return false;
	}
	return true;
}

int scim_submit(struct scim_target *t, struct scim_op *op, scim_done_cb cb)
{
	if (t == NULL || t->stopping)
		return -ESHUTDOWN;
	if (op == NULL || cb == NULL || (op->type != OBJECT_USER && op->type != OBJECT_GROUP))
		return -EINVAL;
	if (op->target_id != NULL && (op->target_id[0] == '\0' || strlen(op->target_id) >= sizeof op->result_id))
		return -EINVAL;
	enum step step;
	switch (op->action) {
	case SCIM_UPSERT:
		if (!json_is_object(op->resource))
			return -EINVAL;
		step = op->target_id != NULL ? ST_UPDATE : ST_CREATE;
		break;
	case SCIM_DELETE:
		if (op->target_id == NULL && op->anchor == NULL)
			return -EINVAL;
		step = op->target_id != NULL ? ST_DELETE : ST_FIND_EXT;
		break;
	case SCIM_MEMBERS:
		if (op->type != OBJECT_GROUP || op->target_id == NULL || !all_strings(op->add) ||
		    !all_strings(op->remove))
			return -EINVAL;
		step = op->verify ? ST_READ_MEMBERS : ST_MEMBERS;
		break;
	default:
		return -EINVAL;
	}
	struct sop *s = calloc(1, sizeof *s);
	if (s == NULL)
		return -ENOMEM;
	s->t = t;
	s->op = op;
	s->cb = cb;
	s->step = step;
	s->t0 = uv_hrtime();
	if (op->target_id != NULL)
		snprintf(s->id, sizeof s->id, "%s", op->target_id);
	op->status = 0;
	op->result_id[0] = '\0';
	op->http_status = 0;
	op->attempts = 0;
	op->matched = op->created = false;
	op->duration_ms = 0;
	op->error[0] = '\0';
	op->priv = s;
	t->n_pending++;
	ready_push(t, s, false);
	kick(t); /* never start (or complete) anything from inside submit */
	return 0;
}

void scim_cancel_all(struct scim_target *t)
{
	struct link doomed;
	list_init(&doomed);
	t->cancel_gen++;
	/* Collect first, complete after: callbacks may submit (those new
	 * operations are not cancelled) or cancel again. */
	for (struct link *l = t->wire.next, *nx; l != &t->wire; l = nx) {
		nx = l->next;
		struct req *r = container_of(l, struct req, link);
		if (r->kind != R_OP && r->kind != R_BULK)
			continue;
		req_detach(r);
		for (size_t i = 0; i < (r->kind == R_OP ? 1 : r->n_batch); i++) {
			struct sop *s = r->kind == R_OP ? r->sop : r->batch[i];
			detach(s);
			list_insert(&doomed, &s->link);
		}
		req_free(r);
	}
	list_splice(&t->ready, &doomed);
	list_splice(&t->delayed, &doomed);
	uv_timer_stop(&t->retry_timer);
	while (!list_empty(&doomed)) {
		struct sop *s = container_of(doomed.next, struct sop, link);
		list_remove(&s->link);
		s->where = W_NONE;
		fail(s, -ECANCELED, "%s: cancelled", op_name(s->op->action));
	}
	if (!t->stopping && !list_empty(&t->ready))
		kick(t);
}

unsigned scim_pending(const struct scim_target *t)
{
	return t->n_pending;
}

void scim_stats(const struct scim_target *t, struct scim_stats *out)
{
	*out = t->stats;
	out->in_flight = t->n_ops_wire;
	out->queued = t->n_pending - t->n_ops_wire;
}

void scim_target_stop(struct scim_target *t, void (*done)(void *data), void *data)
{
	if (t == NULL || t->stopping)
		return;
	t->done = done;
	t->done_data = data;
	t->stopping = true; /* submits from the callbacks below get -ESHUTDOWN */
	scim_cancel_all(t);
	while (!list_empty(&t->wire)) { /* the ServiceProviderConfig fetch, a probe */
		struct req *r = container_of(t->wire.next, struct req, link);
		req_detach(r);
		req_free(r);
	}
	uv_timer_stop(&t->curl_timer);
	uv_timer_stop(&t->retry_timer);
	uv_timer_stop(&t->probe_timer);
	uv_timer_stop(&t->auth_timer);
	oauth2_cancel(t->auth_req); /* its worker finishes on its own; no callback */
	t->auth_req = NULL;
	/* The rest (curl_multi_cleanup, closing handles) from a clean stack: we
	 * may be inside check_done() right now. */
	uv_timer_start(&t->kick_timer, on_kick, 0, 0);
}

/* ------------------------------------------------------------------ test hook (scim_test.h) */

int scim_test_answer(unsigned step, long http, const char *body, size_t len)
{
	struct scim_op op;
	struct sop s;
	struct req r;
	struct reply rep;
	char why[256], detail[1024], path[] = "/Users?filter=externalId%20eq%20%22x%22";
	size_t n, other;
	bool bad;

	memset(&op, 0, sizeof op);
	memset(&s, 0, sizeof s);
	memset(&r, 0, sizeof r);
	memset(&rep, 0, sizeof rep);
	op.add = json_pack("[s,s]", "a", "b");
	op.remove = json_pack("[s]", "c");
	s.op = &op;
	s.step = (enum step)(step % (ST_READ_MEMBERS + 1));
	r.kind = R_OP;
	r.sop = &s;
	snprintf(r.method, sizeof r.method, "GET");
	r.path = path;
	r.resp = (char *)body;
	r.resp_len = len;
	rep.rc = CURLE_OK;
	rep.http = http;
	rep.json = len > 0 ? json_loadb(body, len, 0, NULL) : NULL;
	bad = unusable_answer(&s, &r, &rep, why, sizeof why);
	describe(&r, &rep, detail, sizeof detail);
	if (!bad && is2xx(http)) {
		pick(rep.json, "x", &n, &other);
		pick(rep.json, NULL, &n, &other);
		if (s.step == ST_READ_MEMBERS)
			(void)members_filter(&s, rep.json);
	}
	json_decref(s.eff_add);
	json_decref(s.eff_rm);
	json_decref(rep.json);
	json_decref(op.add);
	json_decref(op.remove);
	return !bad;
}
