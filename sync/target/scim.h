/*
 * sync/target/scim.h -- SCIM 2.0 target (RFC 7643 / RFC 7644) over libcurl's
 * multi interface on the agent's libuv loop.
 *
 * The engine submits operations; each completes once, on the loop thread,
 * through its callback. The target never sees the source or Raft.
 *
 * Idempotence (invariant 2, "no duplicate object"): every write is keyed by
 * externalId = the source anchor. An upsert without a known target id POSTs;
 * a 409 (or any sign that the object exists) turns into a lookup by
 * `externalId eq`, then `userName eq` / `displayName eq` (soft match), then a
 * user's first email (exact anchor only), and an update of what was found --
 * never a second object. A delete answered 404
 * counts as done.
 *
 * Failures: 5xx, 429 and network errors are retried with exponential backoff
 * and jitter (429 and 503 honour Retry-After). An operation that still fails
 * completes with an error (the engine logs it and goes on with the others).
 * When most recent requests fail, or the target answers 401/403, the target
 * enters quarantine with a reason code: new and queued operations wait, and a
 * probe (GET /ServiceProviderConfig; answered 404, GET /Users?count=1) is
 * retried at growing intervals; the
 * token file is re-read before each probe, so fixing the token recovers
 * without a restart.
 *
 * Fencing: every request carries X-Canopy-Node and X-Canopy-Term (set with
 * scim_set_fence). scim_cancel_all() aborts everything in flight at once when
 * leadership or the lease is lost.
 *
 * Threading: everything (submit, callbacks, timers) happens on the loop
 * thread given to scim_target_start; there are no threads of our own. A
 * callback never runs from inside scim_submit; it does run from inside
 * scim_cancel_all / scim_target_stop (-ECANCELED).
 *
 * Wire format, per action (paths below cfg.url):
 *   SCIM_UPSERT  users:  PUT /Users/{id} (the whole resource);
 *                groups: PATCH /Groups/{id} with one "replace" per attribute
 *                        except members/id/meta/schemas (RFC 7644 §3.5.2.3),
 *                        so membership is never wiped;
 *                without target_id, or when that answers 404: POST /Users or
 *                /Groups (a group's "members" in `resource` are sent on this
 *                create only); 409 -> GET ?filter=externalId eq "anchor",
 *                then userName / displayName eq (objects without an
 *                externalId are adopted: soft match; one carrying this
 *                anchor too), then for a user with emails `emails.value eq`
 *                its first email (only an object carrying this anchor is
 *                adopted: servers that key users by email and read every
 *                filter as one on it, docs/targets.md) -> update as above.
 *                id and meta are stripped; externalId is set to `anchor`
 *                (behind cfg.external_id_prefix, below).
 *   SCIM_DELETE  DELETE /{Users|Groups}/{id}; 2xx and 404 are success.
 *                Without target_id the object is found by externalId first;
 *                none found is success.
 *   SCIM_MEMBERS PATCH /Groups/{id}: {"op":"add","path":"members","value":[..]}
 *                and one {"op":"remove","path":"members[value eq \"id\"]"} per
 *                removed member (RFC 7644 §3.5.2.1/.2), in chunks of at most
 *                cfg.members_per_patch changes; never a full replace.
 *   SCIM_TAKEN   GET /{Users|Groups}?filter=<attr> eq "value"; every page is
 *                read until an object other than this anchor's holds it.
 *                Without filtering: every page of the collection, comparing
 *                <attr> (case-insensitively: userName is caseExact false,
 *                RFC 7643 §4.1.1) here.
 *   (That is patch_style "standard". The others, and what changes for a
 *   target without PATCH, filtering or with paging: "Discovery" below.)
 * Filter values are JSON-quoted (RFC 7644 §3.4.2.2) and URL-encoded.
 *
 * Several domains, one target (cfg.external_id_prefix): the externalId is
 * the provisioning client's identifier (RFC 7643 §3.1), so each domain's
 * agents give theirs a prefix: every externalId written and every `externalId
 * eq` filter is prefix + anchor (an object carrying it is adopted as above).
 * The soft match then adopts only what is this domain's: an object found by
 * userName / displayName whose externalId does not start with the prefix
 * (another domain's object, or one made by hand, without externalId) is left
 * untouched and the upsert fails with -EEXIST and `refused` set, naming both
 * objects. Without a prefix, objects without externalId are adopted as before.
 *
 * Retries: each request of an operation (a step: create, lookup, update, a
 * member chunk) gets max_attempts tries; delays are full-jitter exponential
 * (uniform in [0, min(backoff_max_ms, backoff_min_ms * 2^(n-1))]); a
 * Retry-After on 429/503 replaces that delay (capped at backoff_max_ms).
 * Other 4xx fail the operation with -EPROTO; `error` names method, path,
 * HTTP status, scimType and the SCIM error "detail" (RFC 7644 §3.12).
 *
 * Quarantine: 401/403 (when the token file has not changed since the request
 * left) -> "unauthorized", and the operation is requeued, not failed; >= 16
 * network/5xx failures among the last 20 completed requests ->
 * "target_unreachable" (mostly network) or "server_errors" (mostly 5xx). In
 * quarantine no new request starts; requests already on the wire finish
 * (their retries wait in the queue too). The probe interval starts at
 * probe_min_ms, doubles after every probe up to probe_max_ms, and returns to
 * probe_min_ms once an operation's request succeeds again. A 2xx probe ends
 * the quarantine and the queue resumes.
 *
 * OAuth2 (cfg.auth): no request leaves before the first access token is
 * there; the token is refreshed on a timer at 80 % of its lifetime, so
 * requests always carry a valid one. A 401/403 to the current token fetches a
 * new one once (requests wait meanwhile and are re-sent with it); a 401/403
 * to a token fetched that way, or a token endpoint that refuses the client,
 * quarantines the target as "unauthorized" with the endpoint's error and
 * error_description; a token endpoint out of reach while no valid token is
 * left quarantines as "target_unreachable". The quarantine probe fetches a
 * new token first.
 *
 * TLS: every request verifies the target against the system store plus
 * cfg.tls's CA (sync/target/http_tls.h); a certificate failure counts as a
 * network failure, and its message names the host and the CA file.
 *
 * Bulk (RFC 7644 §3.7), opt-in with cfg.bulk: once the ServiceProviderConfig
 * (fetched asynchronously at start -- again once the target answers if that
 * failed -- and by every probe) says bulk.supported,
 * the creates, updates and deletes waiting in the queue go out together as
 * one POST /Bulk (up to min(bulk_max_operations, the target's maxOperations)
 * and its maxPayloadSize; POSTs carry bulkIds). Each operation's result is
 * handled exactly as if it had been answered on its own (409 -> lookup, 404,
 * retries, ...); lookups and member PATCHes always go alone. A bulk request
 * counts as one request against max_in_flight. If the target refuses a bulk
 * request as a whole (4xx other than 401/403/429, or 501), the target stops
 * using Bulk and resends those operations one by one.
 *
 * Discovery (RFC 7644 §4; parsing in sync/target/scim_discovery.h): when a run
 * starts -- each time this agent becomes the leader -- the target reads
 * /ServiceProviderConfig, /ResourceTypes and /Schemas, in that order, before
 * any operation goes out. An endpoint that fails (404, 501, another 4xx, a
 * network error) leaves that part at its documented default; a network or
 * 5xx failure of /ServiceProviderConfig is tried again once the target
 * answers an operation. What is learnt, and how it is used:
 *   bulk.supported / maxOperations / maxPayloadSize: Bulk as above;
 *   patch.supported: with patch_style auto, false means "put": a group
 *     update, a member change, a disable or a manager change reads the
 *     resource (GET), changes it and PUTs the whole of it back; with
 *     etag.supported the PUT carries If-Match: the version read (meta.version,
 *     RFC 7644 §3.14), and a 412 reads again. A PATCH answered 501 switches
 *     an auto target to put on the spot;
 *   filter.supported: false means no lookup by filter: an externalId lookup
 *     (after a 409, or a delete without a target id) scans the listing
 *     page by page (attributes=id,externalId) and matches client-side;
 *     the soft match by userName / displayName is refused (the upsert fails
 *     naming the reason); creates work as before. Logged once per run;
 *   filter.maxResults: every list request pages with startIndex / count
 *     (RFC 7644 §3.4.2.4), count = maxResults (100 when not given), and
 *     reads further pages until the object is found or the list ends;
 *   /Schemas + /ResourceTypes: the mapping's target attributes (cfg
 *     user_attrs / group_attrs) are checked, case-insensitively (RFC 7643
 *     §2.1), against the type's core schema and its extensions: one the
 *     server lacks is logged once as a warning, or with strict_schema
 *     quarantines the target as "schema_mismatch" naming the attribute and
 *     the schema (the probe then re-reads /Schemas, and a fixed server ends
 *     the quarantine).
 * Removals from a group follow patch_style: a members[value eq "id"] path
 * (standard), or the value list in the body (value_remove; an auto target
 * switches to it when a removal path is answered 400 invalidPath or
 * invalidFilter, and re-sends the change).
 */
#ifndef CANOPY_SYNC_TARGET_SCIM_H
#define CANOPY_SYNC_TARGET_SCIM_H

#include <jansson.h>
#include <stdbool.h>
#include <stdint.h>
#include <uv.h>

#include "sync/object.h"
#include "sync/target/http_tls.h"
#include "sync/target/oauth2.h"
#include "sync/target/target.h"

/* How group changes and partial updates are written (target.patch_style). */
enum scim_patch_style {
	SCIM_PATCH_AUTO = 0,        /* from discovery: standard when patch.supported, else put */
	SCIM_PATCH_STANDARD,        /* PATCH add/replace; removals by a members[value eq "id"] path */
	SCIM_PATCH_VALUE_REMOVE,    /* standard, but removals as {"op":"remove","path":"members",
				     * "value":[{"value":id}]} (servers without value filters in paths) */
	SCIM_PATCH_MEMBERS_REPLACE, /* member changes as one PATCH "replace" of the whole members list
				     * (read first): servers without add/remove on members */
	SCIM_PATCH_PUT,             /* no PATCH at all: GET the resource, change it, PUT it back
				     * (If-Match when the target offers ETags; a 412 reads again) */
};
/* "auto" | "standard" | "value_remove" | "members_replace" | "put" */
const char *scim_patch_style_name(enum scim_patch_style s);

struct scim_config {
	const char *url;          /* base, e.g. http://127.0.0.1:8080/scim/v2 (no trailing /) */
	const char *token_file;   /* bearer token file, re-read on 401 and before probes; NULL: none */
	const char *token;        /* initial token (already read by config); NULL: none */
	unsigned max_in_flight;   /* concurrent requests (default 8) */
	unsigned max_attempts;    /* per operation, including the first (default 6) */
	unsigned backoff_min_ms;  /* default 200 */
	unsigned backoff_max_ms;  /* default 30000 */
	unsigned timeout_ms;      /* per request (default 30000) */
	/* additions */
	unsigned probe_min_ms;      /* first quarantine probe after this (default 1000) */
	unsigned probe_max_ms;      /* probe interval cap (default 60000) */
	unsigned members_per_patch; /* SCIM_MEMBERS: member changes per PATCH (default 1000) */
	bool bulk;                  /* batch upserts/deletes into POST /Bulk when supported */
	unsigned bulk_max_operations; /* per bulk request (default 100; the target's limit wins) */
	const struct http_tls *tls; /* trust for https:// (target.tls; sync/target/http_tls.h); NULL:
				     * the system store. Borrowed: must outlive the target */
	struct oauth2 *auth;        /* target.auth (sync/target/oauth2.h), instead of token/token_file;
				     * borrowed like tls. See "OAuth2" above */
	const char *external_id_prefix; /* target.external_id_prefix: prepended to every externalId
					 * written and looked up; NULL or "": none. See "Several
					 * domains" above */
	enum scim_patch_style patch_style; /* target.patch_style; see "Discovery" above */
	bool strict_schema;         /* target.strict_schema: a mapped attribute the target's schema
				     * lacks quarantines ("schema_mismatch") instead of a warning */
	const char *const *user_attrs;  /* the mapping's target attribute paths (mapping.user) ... */
	size_t n_user_attrs;
	const char *const *group_attrs; /* ... and mapping.group, checked against /Schemas; copied */
	size_t n_group_attrs;
	/* What discovery found worth an operator's attention (level 1 info, 2
	 * warning, 3 error), once per run; NULL: not logged */
	void (*log)(void *data, int level, const char *msg, const char *detail);
	void *log_data;
};

enum scim_action {
	SCIM_UPSERT = 1,   /* create or update `resource`; groups: without members */
	SCIM_DELETE,       /* delete by target_id (or found by externalId) */
	SCIM_MEMBERS,      /* group: PATCH add/remove of member target ids */
	SCIM_TAKEN,        /* a read: does an object other than the one carrying `anchor`
			    * hold `taken_value` in `taken_attr`? GET ?filter=attr eq
			    * "value" (RFC 7644 §3.4.2.2), or, without filtering, a scan
			    * of every page comparing the attribute; answer in `taken` */
};

struct scim_op;
typedef void (*scim_done_cb)(struct scim_op *op);

struct scim_op {
	/* in */
	enum scim_action action;
	enum object_type type;
	const char *anchor;        /* externalId */
	const char *target_id;     /* known target id, or NULL */
	json_t *resource;          /* SCIM_UPSERT: full resource incl. schemas + externalId; borrowed */
	json_t *add, *remove;      /* SCIM_MEMBERS: arrays of target id strings; borrowed */
	bool patch;                /* SCIM_UPSERT with target_id: PATCH "replace" only the attributes
				    * in `resource` (e.g. {"active": false} to disable a user) instead of
				    * PUT; an object gone from the target (404) then counts as done */
	bool keep;                 /* SCIM_UPSERT of a known id, without patch: the attributes
				    * `resource` leaves out keep their value in the target (a
				    * SelectUniqueValue rule's, chosen at creation): the object is
				    * read (GET) and `resource` written over it (PUT) */
	json_t *patch_ops;         /* SCIM_UPSERT with patch: these PATCH operations (RFC 7644
				    * §3.5.2) as given, instead of a "replace" per attribute of
				    * `resource`; borrowed */
	bool verify;               /* SCIM_MEMBERS: read the group's members back first and send
				    * only the changes that have not landed (a re-run of a PATCH
				    * that may have been applied) */
	bool exact;                /* SCIM_MEMBERS with verify: `add` is the whole member list;
				    * members read back that are not in it are removed too */
	const char *taken_attr;    /* SCIM_TAKEN: attribute path ("userName", "emails.value",
				    * "urn:...:User:employeeNumber") ... */
	const char *taken_value;   /* ... and the value asked about; borrowed */
	void *data;                /* the caller's */
	/* out, valid in the callback */
	int status;                /* 0 ok; negative: -ECANCELED (cancel/stop), -ETIMEDOUT,
				    * -ECONNREFUSED, -EHOSTUNREACH, -EIO (network or 5xx/429
				    * after max_attempts), -EBADMSG (2xx/3xx answers we cannot
				    * use, after max_attempts), -EPROTO (a 4xx refusal),
				    * -EEXIST (the name belongs to another externalId),
				    * -ENOENT (MEMBERS: group gone), -ELOOP, -EINVAL (a value
				    * that is not UTF-8) */
	char result_id[128];       /* the object's target id after UPSERT (DELETE/MEMBERS: the id
				    * worked on; empty when DELETE found nothing) */
	long http_status;          /* last HTTP status (0: no answer) */
	unsigned attempts;         /* HTTP requests sent for this operation, all steps */
	bool matched;              /* UPSERT found an existing object (soft or hard match) */
	bool created;              /* UPSERT created a new object (neither flag: updated the known id) */
	bool refused;              /* -EEXIST: the name belongs to an object outside this agent's
				    * external_id_prefix: not adopted, for good (until either changes) */
	bool values_refused;       /* SCIM_MEMBERS -EPROTO: a 400 whose scimType (RFC 7644 §3.12)
				    * is invalidValue, noTarget or invalidSyntax, or none: about a
				    * value carried, so a subset of them may pass */
	bool taken;                /* SCIM_TAKEN, status 0: another object holds the value */
	size_t add_done, rm_done;  /* SCIM_MEMBERS failed: leading add / remove values of earlier
				    * PATCH chunks that landed (0 after a read-back: unknown) */
	double duration_ms;
	char error[512];           /* when status != 0: what failed and why (incl. SCIM detail) */
	/* private */
	void *priv;
};

struct scim_stats {
	uint64_t requests, retries, failures;
	bool quarantined;
	char quarantine_reason[64];   /* "unauthorized", "target_unreachable", "server_errors" */
	char quarantine_detail[256];
	uint64_t quarantine_since_ms; /* uv_now when entered */
	bool bulk_supported;          /* from /ServiceProviderConfig */
	/* additions */
	unsigned in_flight;           /* operations with a request on the wire now */
	unsigned queued;              /* operations waiting (ready, retry delay, quarantine) */
	unsigned peak_requests_in_flight; /* most concurrent requests for operations seen
					   * (<= max_in_flight; a bulk request counts once) */
	uint64_t bulk_requests;       /* POST /Bulk requests sent */
	uint64_t connects;            /* new connections opened (keep-alive reuses them) */
	/* discovery (see "Discovery" above) */
	bool discovered;              /* the run's discovery has finished (answered or defaulted) */
	bool spc_known;               /* /ServiceProviderConfig answered */
	bool filter_supported;        /* filter.supported (default true) */
	unsigned max_results;         /* filter.maxResults (0: not given) */
	bool patch_supported;         /* patch.supported (default true) */
	bool etag_supported;          /* etag.supported (default false) */
	unsigned bulk_max_operations; /* bulk.maxOperations (0: not given) */
	uint64_t bulk_max_payload;    /* bulk.maxPayloadSize (0: not given) */
	enum scim_patch_style patch_style; /* in use now (never SCIM_PATCH_AUTO once discovered) */
	size_t schema_attrs;          /* attributes of the User and Group schemas read (0: unknown) */
	uint64_t pages;               /* list pages read beyond the first (RFC 7644 §3.4.2.4) */
	/* The last request that failed in a way that counts against the
	 * target (no answer, 5xx, 401/403, 429, an unusable answer): what an
	 * operator needs to see while quarantined. */
	char last_fail_method[8];     /* "" none yet */
	char last_fail_path[256];     /* below the base URL */
	long last_fail_status;        /* HTTP status; 0: no answer (network) */
	int64_t last_fail_at_ms;      /* wall clock, ms since the epoch */
	int64_t next_probe_at_ms;     /* quarantined: when the next probe leaves (wall clock; 0: none
				       * planned, e.g. one is on the wire) */
	int64_t probed_at_ms;         /* wall clock of the last probe's answer (0: none yet) */
};
/* requests: HTTP requests completed (probes included); retries: requests
 * re-sent after a transient failure; failures: operations completed with an
 * error other than -ECANCELED. */

struct scim_target; /* opaque */

/* cfg is copied (strings too). Reads token_file when cfg->token is NULL.
 * Returns 0, or a negative errno with errmsg filled (bad url, unreadable
 * token file). Starts the discovery on the loop (see "Discovery"); operations
 * submitted meanwhile wait for it. */
int scim_target_start(struct scim_target **out, uv_loop_t *loop, const struct scim_config *cfg,
		      char *errmsg, size_t errlen);

/* The headers sent with every request from now on. */
void scim_set_fence(struct scim_target *t, uint64_t node_id, uint64_t term);
/* ... and X-Canopy-Cluster: the cluster id (NULL or "": not sent). */
void scim_set_cluster(struct scim_target *t, const char *cluster_id);

/* Queue an operation. Returns 0 (cb will run exactly once, never from inside
 * this call), -ESHUTDOWN (stopping) or -EINVAL (malformed op: bad type, UPSERT
 * without an object resource, DELETE with neither target_id nor anchor,
 * MEMBERS without target_id or with non-string ids); cb does not run then.
 * Out of memory aborts (common/xalloc.h). op, its strings and its json stay the caller's and must live until
 * cb; op's out fields are reset here. */
int scim_submit(struct scim_target *t, struct scim_op *op, scim_done_cb cb);

/* Abort every queued and in-flight operation: each completes with -ECANCELED,
 * before this returns. Operations submitted from those callbacks are not
 * cancelled. The quarantine state is kept. */
void scim_cancel_all(struct scim_target *t);

/* Quarantined: probe now instead of at the next backoff step (the probe
 * interval starts over from probe_min_ms, the token file is re-read).
 * Returns true when a probe left or is on the wire; false when not
 * quarantined. The answer leaves the quarantine or keeps it (probed_at_ms). */
bool scim_retry_now(struct scim_target *t);

/* Operations queued or in flight. */
unsigned scim_pending(const struct scim_target *t);

void scim_stats(const struct scim_target *t, struct scim_stats *out);

/* Cancel everything, close handles; `done` runs on the loop when all is released
 * (t is freed then). Call once; may be called from an operation's callback. */
void scim_target_stop(struct scim_target *t, void (*done)(void *data), void *data);

/*
 * The SCIM target behind the target port (target.h), for the engine. `cfg`
 * is copied; its strings, tls and auth are borrowed and must outlive the
 * target. Never fails (out of memory aborts, common/xalloc.h); a bad
 * configuration is reported by start(). The port's neutral operations map
 * onto the actions above: TARGET_DISABLE is an SCIM_UPSERT with `patch` of
 * {"active": false}; member ids become SCIM_MEMBERS arrays.
 */
struct target *scim_target_new(const struct scim_config *cfg);

#endif /* CANOPY_SYNC_TARGET_SCIM_H */
