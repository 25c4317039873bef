/*
 * sync/target/entra.h -- Microsoft Entra ID target: users, security groups
 * and memberships through Microsoft Graph v1.0, behind the target port
 * (target.h). docs/entra.md is the operator's page.
 *
 * Wire format, per action (paths below cfg.url, e.g.
 * https://graph.microsoft.com/v1.0):
 *   UPSERT user   with a target id: PATCH /users/{id} (204; mapped properties
 *                 without a value are sent as null: cleared); a 404 falls
 *                 through to create. Create: POST /users with what Graph
 *                 requires and the mapping does not give: accountEnabled
 *                 (from `active`, else true), passwordProfile (a random
 *                 password, never logged, forceChangePasswordNextSignIn true)
 *                 and the anchor property. 400 ObjectConflict (the
 *                 userPrincipalName exists) -> GET /users/{upn}: adopted
 *                 (PATCH) when it carries this anchor or none, refused for
 *                 good (-EEXIST, permanent) when it carries another.
 *   UPSERT group  with a target id: PATCH /groups/{id}. Without one, or on
 *                 404: the groups of that displayName carrying this anchor
 *                 (a create whose answer was lost) are adopted, else POST
 *                 /groups with mailEnabled false, securityEnabled true.
 *                 (Group names are not unique in Graph: a group of the same
 *                 name without our anchor is somebody else's.)
 *   DISABLE       PATCH /users/{id} {"accountEnabled": false}; 404 is done.
 *   DELETE        DELETE /users|groups/{id}; 404 is done.
 *   MEMBERS       adds: PATCH /groups/{id} with members@odata.bind, at most 20
 *                 references a request (Graph's limit); a chunk refused
 *                 because one reference already exists is re-sent one
 *                 member at a time as POST /groups/{id}/members/$ref, where
 *                 "already exist" counts as done. Removals: DELETE
 *                 /groups/{id}/members/{member}/$ref, 404 is done. With
 *                 verify, GET /groups/{id}/members/$ref first (all pages)
 *                 and only what is missing is sent; with exact, members not
 *                 listed are removed too. A group answering 404: -ENOENT.
 *                 Several chunks and removals of one group go as one
 *                 sequential POST /$batch (each dependsOn the one before;
 *                 entra_graph.c, steps_batch); a step that failed in it is
 *                 re-sent alone, with the handling above.
 *   MANAGER       not written yet: fails for good (-EOPNOTSUPP).
 *   TAKEN         GET /users|groups?$filter={attr} eq '{value}'&$select=id,
 *                 {anchor property}&$top=1 (the quote doubled, URL-encoded):
 *                 taken when the object found does not carry this anchor.
 * Without a target id, DISABLE and DELETE find the object by its anchor
 * first (users: $filter on the anchor property; groups: no such filter in
 * Graph for extension properties of groups in every tenant, so each group's
 * anchor is read and compared client-side); nothing found is done.
 *
 * The anchor: every object carries the source anchor in a directory
 * extension property, cfg.anchor_property (default
 * extension_{client id without dashes}_canopyAnchor). Why not
 * onPremisesImmutableId: Entra lets it be set only for users of federated
 * domains, and it is what Entra Connect matches on (docs/entra.md).
 *
 * Retries: 429 and 503 honour Retry-After (capped at backoff_max_ms);
 * network errors, 5xx and 429 are retried max_attempts times a request with
 * full-jitter exponential backoff -- except a group's POST after no answer
 * or a 5xx (it may have been carried out, and nothing makes a group unique):
 * the group is looked for by anchor first, and created again only when it is
 * not there. A Retry-After holds every request of the run (Graph throttles
 * per application and tenant), not just the one answered. Every request
 * (a retry too) first takes a token from the run's budget: a token bucket at
 * max_requests_per_s that adapts below it (struct entra_budget in
 * entra_internal.h: AIMD on 429s). A 401 fetches a new token once (the
 * rejected one is never used again) and re-sends.
 *
 * Batching: requests made by several operations at the same time travel in
 * one parallel POST /$batch (entra_batch.c); each answer inside it is handled
 * as if its request had gone alone.
 *
 * Quarantine: Graph refusing the application -- 401 after a new token, 403,
 * or the token endpoint refusing the client -- quarantines the run (reason
 * "unauthorized", TARGET_UNAUTHORIZED) instead of failing the operation: it
 * goes back to the head of the queue and nothing more is sent until a probe
 * (that operation, re-sent after 1 s, doubling up to 60 s; retry_now() at
 * once) gets through.
 *
 * Threads: each operation runs its requests one after the other, blocking,
 * on one of max_in_flight threads of the run's own (at most
 * ENTRA_MAX_WORKERS) -- not libuv's pool, which libraft's storage uses and
 * which must not wait behind a Retry-After. The operation's input is copied
 * at submit, so cancel_all() completes it at once with -ECANCELED while its
 * thread finishes the request on the wire and drops the result (a write may
 * still land: every write is keyed by the anchor, so the next leader's
 * repeat converges); stop() also cancels the requests on the wire. The
 * requests themselves travel on the run's HTTP engine on the loop
 * (http_multi.h; the thread waits for each answer), with the SCIM
 * target's transport. Callbacks run on the loop thread (uv_async_t).
 */
#ifndef CANOPY_SYNC_TARGET_ENTRA_H
#define CANOPY_SYNC_TARGET_ENTRA_H

#include "sync/target/http_tls.h"
#include "sync/target/oauth2.h"
#include "sync/target/target.h"

/* Concurrent operations at most (a thread each): as many as one $batch
 * carries (ENTRA_BATCH_MAX in entra_internal.h). */
#define ENTRA_MAX_WORKERS 20
/* References in one members@odata.bind (Graph's documented limit). */
#define ENTRA_BIND_MAX 20
/*
 * Requests a second when target.max_requests_per_s is not given. Graph's
 * identity limits per application and tenant (docs/entra.md, "Throttling"):
 * 3,000 writes per 2 minutes 30 seconds -- 20 writes a second -- and 3,500
 * to 8,000 resource units per 10 seconds depending on the tenant's size.
 * canopy sends about one read (a lookup by anchor) per write, so 40 requests
 * a second keep the writes at the write quota and the reads far below the
 * smallest tenant's resource-unit quota.
 */
#define ENTRA_DEFAULT_RPS 40.0

struct entra_config {
	const char *url;            /* Graph base with its version, no trailing / */
	struct oauth2 *auth;        /* required: client credentials; borrowed */
	const struct http_tls *tls; /* trust for https://; NULL: system store; borrowed */
	const char *anchor_property; /* extension_<appid>_<name>; NULL: from client_id */
	const char *client_id;      /* for the default anchor property */
	unsigned max_in_flight;     /* 0: 16 (the agent's default for entra), capped at ENTRA_MAX_WORKERS */
	unsigned max_attempts;      /* a request, including the first (default 6) */
	unsigned backoff_min_ms;    /* default 200 */
	unsigned backoff_max_ms;    /* default 30000; also caps Retry-After */
	unsigned timeout_ms;        /* one request (default 30000) */
	double max_requests_per_s;  /* the request budget's rate (> 0; 0: ENTRA_DEFAULT_RPS) */
	/* The mapping's target property names (mapping.user / mapping.group),
	 * copied: an update sends null for one the mapped attributes lack, so a
	 * value gone from the source is cleared in Graph too (PATCH only
	 * changes what it names). The properties Graph requires are never
	 * cleared; the caller leaves out those set at creation only
	 * (mapping_creation_only: SelectUniqueValue, Guid(), RandomString(),
	 * Now()), so they keep the value the create wrote. */
	const char *const *user_attrs;
	size_t n_user_attrs;
	const char *const *group_attrs;
	size_t n_group_attrs;
};

/*
 * The default anchor property for an application (client) id:
 * extension_{id without dashes, lower case}_canopyAnchor. Returns 0, or
 * -EINVAL when the id is not 32 hex digits once the dashes are gone.
 */
int entra_anchor_property(const char *client_id, char *out, size_t outlen);

/* cfg is copied (strings too; auth and tls are borrowed). Never fails (out
 * of memory aborts); a bad configuration is reported by start(). */
struct target *entra_target_new(const struct entra_config *cfg);

#endif /* CANOPY_SYNC_TARGET_ENTRA_H */
