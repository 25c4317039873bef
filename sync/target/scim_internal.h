/*
 * sync/target/scim_internal.h -- the SCIM target's private types, shared by
 * its files (scim.h is the contract; this is how it is built).
 *
 * The transport is the target side's one HTTP engine (http_multi.h): a
 * libcurl multi handle per target driven by the loop, with the connection
 * cache that reuses connections across requests (keep-alive; HTTP/2
 * multiplexing when the server offers h2). A struct req wraps one of its
 * requests; its answer arrives on the loop thread.
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
 * The files, in the order a request lives:
 *   scim.c          operations: submit, queue, retries, quarantine, lifecycle
 *   scim_request.c  building each step's request (bodies, paths, filters, bulk)
 *   scim_http.c     the transport: each request on the target's http_multi
 *   scim_answer.c   reading answers: what each step's answer means
 *   scim_auth.c     credentials (token file, OAuth2), the quarantine probe,
 *                   discovery (ServiceProviderConfig, ResourceTypes, Schemas;
 *                   parsed by scim_discovery.c) and the schema check
 * Names shared between them carry the scim__ prefix.
 */
#ifndef CANOPY_SYNC_TARGET_SCIM_INTERNAL_H
#define CANOPY_SYNC_TARGET_SCIM_INTERNAL_H

#include <curl/curl.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>
#include <strings.h>
#include <uv.h>

#include "common/xalloc.h"
#include "sync/target/http_multi.h"
#include "sync/target/scim.h"
#include "sync/target/scim_discovery.h"

#ifndef CANOPY_VERSION
#define CANOPY_VERSION "dev"
#endif

#define HEALTH_WINDOW 20      /* last completed requests looked at ... */
#define HEALTH_FAILURES 16    /* ... and how many failures quarantine */
#define MAX_HOPS 8            /* step changes per operation before giving up */
#define RESP_MAX (256u << 20) /* a response larger than this is refused */

/* ---- lists --------------------------------------------------------------- */

struct link {
	struct link *prev, *next;
};

#define container_of(p, T, m) ((T *)(void *)((char *)(p)-offsetof(T, m)))

static inline void list_init(struct link *h)
{
	h->prev = h->next = h;
}

static inline bool list_empty(const struct link *h)
{
	return h->next == h;
}

/* Insert n before pos (pos == head: at the tail). */
static inline void list_insert(struct link *pos, struct link *n)
{
	n->next = pos;
	n->prev = pos->prev;
	pos->prev->next = n;
	pos->prev = n;
}

static inline void list_remove(struct link *n)
{
	n->prev->next = n->next;
	n->next->prev = n->prev;
	n->prev = n->next = n;
}

/* Append all of `from` to the tail of `to`; `from` is left empty. */
static inline void list_splice(struct link *from, struct link *to)
{
	if (list_empty(from))
		return;
	from->next->prev = to->prev;
	to->prev->next = from->next;
	from->prev->next = to;
	to->prev = from->prev;
	list_init(from);
}

/* ---- types ------------------------------------------------------------------ */

enum step {
	ST_UPDATE,    /* users: PUT /Users/{id}; groups: PATCH replace (members untouched) */
	ST_CREATE,    /* POST /Users | /Groups */
	ST_FIND_EXT,  /* GET ?filter=externalId eq "anchor" */
	ST_FIND_NAME, /* GET ?filter=userName eq / displayName eq (soft match) */
	ST_FIND_EMAIL, /* users: GET ?filter=emails.value eq (adopts only our externalId) */
	ST_DELETE,    /* DELETE /{ep}/{id} */
	ST_MEMBERS,   /* PATCH /Groups/{id}: one chunk of member adds/removes */
	ST_READ_MEMBERS, /* GET /Groups/{id}?attributes=members: what landed already */
	ST_READ_OBJ,  /* GET /{ep}/{id}: the whole resource, to change and write back */
	ST_WRITE_OBJ, /* PUT /{ep}/{id} of what ST_READ_OBJ read, changed (If-Match with ETags);
		       * members_replace: PATCH "replace" of the whole members list */
	ST_FIND_TAKEN, /* SCIM_TAKEN: GET ?filter=<attr> eq "value" (or every page); last, so
			* the fuzz corpus keeps its step numbers */
};

enum where { W_NONE, W_READY, W_DELAYED, W_WIRE };

enum req_kind { R_OP, R_BULK, R_SPC, R_PROBE, R_RTYPES, R_SCHEMAS };

/* health window entries */
enum { H_OK = 0, H_NET = 1, H_SERVER = 2 };

struct sop {
	struct link link; /* in ready or delayed */
	struct scim_target *t;
	struct scim_op *op;
	scim_done_cb cb;
	enum where where;
	enum step step;
	char id[128];      /* target id the current step works on */
	char *ext;         /* the externalId: cfg.external_id_prefix + op->anchor (owned; NULL
			    * without anchor) */
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
	json_t *obj;        /* ST_WRITE_OBJ: the resource ST_READ_OBJ read (owned) */
	char etag[128];     /* ... and its version (meta.version, RFC 7644 §3.14); "" none */
	size_t page;        /* lookups: startIndex of the next page (0: the first) */
	size_t name_n, name_other; /* ST_FIND_NAME over pages: matches without externalId,
				    * with another one */
	char name_id[128];  /* the first match without externalId */
};

struct req {
	struct link link; /* in t->wire */
	struct scim_target *t;
	struct sop *sop; /* R_OP */
	struct sop **batch; /* R_BULK: the operations, in request order */
	size_t n_batch;
	enum req_kind kind;
	struct http_req *http; /* on the wire; NULL once answered or detached */
	char method[8];
	char *path; /* below the base URL, for messages */
	char *body;
	char *token_used;
	char *resp;        /* the answer's body, taken from http (owned) */
	size_t resp_len;
	bool resp_too_big;
	char errbuf[CURL_ERROR_SIZE]; /* libcurl's error text of the answer */
	uint64_t t0; /* uv_hrtime() when sent (target_metrics.h) */
};

struct scim_target {
	uv_loop_t *loop;
	struct http_multi *http; /* the transport (http_multi.h) */
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
	struct link ready, delayed, wire;
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
	char *ext_prefix; /* cfg.external_id_prefix (owned; "" for none) */
	uint64_t node_id, term;
	char cluster_id[64]; /* X-Canopy-Cluster; "" until scim_set_cluster */
	uint64_t rng;
	uint8_t health[HEALTH_WINDOW];
	unsigned health_n, health_i;
	unsigned probe_ms;
	bool probe_on_wire;
	bool spc_known, spc_on_wire; /* ServiceProviderConfig read / being fetched */
	bool discovering;    /* discovery of this run not finished: operations wait */
	bool rediscover;     /* schema_mismatch probe: discovery runs again */
	struct scim_caps caps;        /* from /ServiceProviderConfig (or the defaults) */
	struct scim_schemas *schemas; /* from /Schemas + /ResourceTypes (owned) */
	enum scim_patch_style style;  /* in use: cfg.patch_style, or what discovery chose */
	bool rm_values;      /* removals as a value list (value_remove, or learnt) */
	bool logged_filter, logged_schema; /* said once per run */
	const char *if_match; /* If-Match of the request being started (scim__req_start) */
	char **attrs[2];      /* cfg.user_attrs / group_attrs, copied */
	size_t n_attrs[2];
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

/* An attribute of a SCIM answer by name, ignoring case (RFC 7643 §2.1:
 * attribute names are case-insensitive; some servers answer "Members" or
 * "ID"): the exact spelling first, then any other. */
static inline json_t *scim__attr(const json_t *o, const char *name)
{
	json_t *v = json_object_get(o, name), *x;
	const char *k;

	if (v != NULL || !json_is_object(o))
		return v;
	json_object_foreach((json_t *)o, k, x)
		if (strcasecmp(k, name) == 0)
			return x;
	return NULL;
}

static inline bool is2xx(long h)
{
	return h >= 200 && h < 300;
}

/* ---- scim.c: helpers, completion, queueing, quarantine ---------------------- */

int scim__errf(char *buf, size_t len, int rc, const char *fmt, ...) __attribute__((format(printf, 4, 5)));
/* strlcpy: truncating copy, always terminated */
void scim__copy_str(char *dst, size_t size, const char *src);
/* free() a secret, zeroed first */
void scim__wipe_free(char *s);
char *scim__concat(const char *a, const char *b);
char *scim__asprintf(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
const char *scim__op_name(enum scim_action a);

/* Complete s's operation (status 0 or a negative errno) and free s. */
void scim__finish(struct sop *s, int status);
void scim__fail(struct sop *s, int status, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
/* A 4xx the operation cannot get past: -EPROTO with the answer described. */
void scim__fail_http(struct sop *s, const struct req *r, const struct reply *rep);
void scim__ready_push(struct scim_target *t, struct sop *s, bool head);
void scim__next_step(struct sop *s, enum step step);
void scim__delay(struct sop *s, uint64_t ms);
uint64_t scim__backoff_ms(struct scim_target *t, unsigned tries);
/* Start what the ready queue holds, within max_in_flight. */
void scim__pump(struct scim_target *t);
void scim__quarantine(struct scim_target *t, const char *reason, const char *detail);
void scim__leave_quarantine(struct scim_target *t);
/* Start the probe timer for t->probe_ms and say when it fires (stats). */
void scim__arm_probe(struct scim_target *t);
/* Wall clock, ms since the epoch. */
int64_t scim__wall_ms(void);
/* Record one completed request in the health window. */
void scim__health(struct scim_target *t, uint8_t what, const char *detail);
/* The last handle is closed: free t and call `done`. */
void scim__release(struct scim_target *t);

/* ---- scim_request.c: requests ------------------------------------------------ */

/* Send the request of s's current step on its own. */
void scim__start_step(struct sop *s);
/* The head of the ready queue and what can go with it, as one POST /Bulk. */
void scim__start_bulk(struct scim_target *t);
bool scim__bulkable(const struct sop *s);
bool scim__bulk_on(const struct scim_target *t);
void scim__detach(struct sop *s);
/* Does s's step go through ST_READ_OBJ / ST_WRITE_OBJ (patch_style put or
 * members_replace)? */
bool scim__rmw(const struct sop *s);
/* Read-back answered: keep only the member changes that have not landed. */
void scim__members_filter(struct sop *s, json_t *group);

/* ---- scim_http.c: the transport ---------------------------------------------------- */

/* The target's HTTP engine. Returns 0 or a negative errno. */
int scim__transport_init(struct scim_target *t);
/* Put a request on the wire. Takes ownership of path and body (freed on
 * failure too). The caller attaches the operation(s). Returns 0 or -EIO. */
int scim__req_start(struct scim_target *t, enum req_kind kind, const char *method, char *path, char *body,
		    bool fresh, struct req **out);
void scim__req_detach(struct req *r);
void scim__req_free(struct req *r);
/* Close the HTTP engine and every uv handle; scim__release follows. */
void scim__finalize(struct scim_target *t);

/* ---- scim_answer.c: answers --------------------------------------------------------- */

/* "METHOD PATH: HTTP 503: scimType: detail" or "METHOD PATH: <curl error>" */
void scim__describe(const struct req *r, const struct reply *rep, char *out, size_t len);
/* The answer to one operation's request (count: into the health window). */
void scim__op_reply(struct req *r, const struct reply *rep, bool count);
void scim__bulk_done(struct req *r, const struct reply *rep);

/* ---- scim_auth.c: credentials, probe, ServiceProviderConfig ----------------------------- */

int scim__read_token(const char *file, char **out, char *errmsg, size_t errlen);
void scim__reread_token(struct scim_target *t);
void scim__auth_fetch(struct scim_target *t, const char *reject, bool after_401, bool probe);
/* A 401/403 with OAuth2: returns false without OAuth2. */
bool scim__auth_rejected(struct scim_target *t, const struct req *r, const char *detail);
void scim__on_probe(uv_timer_t *h);
void scim__probe_done(struct scim_target *t, const struct req *r, const struct reply *rep);
void scim__fetch_spc(struct scim_target *t);
void scim__spc_done(struct scim_target *t, const struct req *r, const struct reply *rep);
/* /ResourceTypes and /Schemas answered (discovery goes on or ends) */
void scim__disc_done(struct scim_target *t, const struct req *r, const struct reply *rep);
/* The patch style to use now, from cfg.patch_style and what was learnt. */
void scim__choose_style(struct scim_target *t);
void scim__log(struct scim_target *t, int level, const char *msg, const char *fmt, ...)
	__attribute__((format(printf, 4, 5)));

#endif /* CANOPY_SYNC_TARGET_SCIM_INTERNAL_H */
