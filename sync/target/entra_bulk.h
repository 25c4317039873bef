/*
 * sync/target/entra_bulk.h -- Microsoft Entra ID through API-driven inbound
 * provisioning (target.kind entra, target.mode bulkupload), behind the
 * target port (target.h). docs/entra.md, "API-driven provisioning
 * (bulkupload)", is the operator's page.
 *
 * Wire format (paths below cfg.url, e.g. https://graph.microsoft.com/v1.0):
 *   POST /servicePrincipals/{sp}/synchronization/jobs/{job}/bulkUpload
 *        Content-Type: application/scim+json, a SCIM BulkRequest (RFC 7644
 *        §3.7 shapes: schemas urn:ietf:params:scim:api:messages:2.0:
 *        BulkRequest, Operations) of at most ENTRA_BULK_MAX_OPS operations,
 *        each {method POST, bulkId, path /Users, data: the mapped SCIM user
 *        with externalId = the source anchor}. Microsoft's bulkUpload takes
 *        POST only: the provisioning service decides create / update /
 *        enable / disable from the app's attribute mapping, matching on
 *        externalId. So:
 *          UPSERT user    data = the mapped resource
 *          DISABLE user   data = {externalId, active: false}
 *          DELETE user    the same as DISABLE: there is no delete (the config
 *                         check refuses safety.deprovision delete; a DELETE
 *                         that comes anyway disables, never nothing)
 *          groups, MEMBERS, MANAGER, TAKEN
 *                         fail for good with -EOPNOTSUPP (users only, as
 *                         Microsoft documents; the config check refuses
 *                         groups before it comes to this)
 *        202 Accepted, no body, a Location header naming the provisioning
 *        logs of this request. The run sends at most ENTRA_BULK_RATE
 *        requests a second (Microsoft's limit for this API).
 *   GET  the Location (or, without one, /auditLogs/provisioning?$filter=
 *        jobId eq '{job}' and activityDateTime ge {sent - 1 s}), all pages:
 *        the provisioning service's verdict on each operation, found by
 *        sourceIdentity.id = externalId (the latest entry when there are
 *        several). success / skipped: done (result_id:
 *        targetIdentity.id); failure: done with a permanent error carrying
 *        errorInformation's errorCode and reason (the engine lists the
 *        object in `canopyctl failed`; `canopyctl resync --failed` sends it
 *        again).
 *
 * Why an operation waits for the logs: the result is asynchronous (the 202
 * only says the request was staged), and the port has one answer per
 * operation. An operation is completed when its verdict is read, or when
 * results_wait_ms passes without one -- then it counts as accepted (status
 * 0, as at the 202), as does everything when results_wait_ms is 0 or the
 * logs cannot be read (403 without AuditLog.Read.All, 404): the run stops
 * asking for the logs until it is started again.
 *
 * Nothing lost: a 429, a 5xx or no answer re-sends the whole request
 * (Retry-After honoured, full-jitter backoff, max_attempts in all); it is
 * idempotent, every operation being keyed by externalId. After the last
 * attempt each operation fails with -EIO (not permanent: the retry set). A
 * 400 or 413 for the request fails its operations for good (our payload).
 * A leader that dies after sending and before commit leaves the operations
 * in doubt; the next leader sends them again (docs/architecture.md,
 * "Intents"): again harmless.
 *
 * Threads: one thread of the run's own sends the requests and polls the
 * logs, blocking: each request goes through the run's HTTP engine on the
 * loop (http_multi.h, http_multi_call); callbacks run on the loop thread
 * (uv_async_t). cancel_all() completes every operation at once with
 * -ECANCELED; what the thread still has is dropped when it comes back.
 */
#ifndef CANOPY_SYNC_TARGET_ENTRA_BULK_H
#define CANOPY_SYNC_TARGET_ENTRA_BULK_H

#include <jansson.h>
#include <stdint.h>

#include "sync/target/http_tls.h"
#include "sync/target/oauth2.h"
#include "sync/target/target.h"

/* Operations in one bulkUpload request (Microsoft's limit). */
#define ENTRA_BULK_MAX_OPS 50
/* bulkUpload requests a second at most (Microsoft's limit). */
#define ENTRA_BULK_RATE 40

struct entra_bulk_config {
	const char *url;            /* Graph base with its version, no trailing / */
	struct oauth2 *auth;        /* required: client credentials; borrowed */
	const struct http_tls *tls; /* trust for https://; NULL: system store; borrowed */
	const char *service_principal_id; /* the provisioning app's service principal object id */
	const char *job_id;         /* its synchronization job id */
	unsigned results_wait_ms;   /* wait for the logs' verdict this long; 0: do not read them */
	unsigned poll_ms;           /* read the logs this often while waiting (default 1000; the
				     * first look after at most 250 ms) */
	unsigned max_attempts;      /* a request, including the first (default 6) */
	unsigned backoff_min_ms;    /* default 200 */
	unsigned backoff_max_ms;    /* default 30000; also caps Retry-After */
	unsigned timeout_ms;        /* one request (default 30000) */
};

/* cfg is copied (strings too; auth and tls are borrowed). Never fails (out
 * of memory aborts); a bad configuration is reported by start(). */
struct target *entra_bulk_target_new(const struct entra_bulk_config *cfg);

/* The provisioning logs' verdict on one operation. */
enum entra_bulk_verdict {
	ENTRA_BULK_SUCCESS = 1, /* success, warning */
	ENTRA_BULK_SKIPPED,     /* nothing to change, or out of the app's scope */
	ENTRA_BULK_FAILURE,
};
const char *entra_bulk_verdict_name(enum entra_bulk_verdict v);

/* One provisioningObjectSummary, as read from a page (pointers into it). */
struct entra_bulk_entry {
	const char *external_id;  /* sourceIdentity.id */
	const char *target_id;    /* targetIdentity.id, "" when none */
	int64_t at_ms;            /* activityDateTime, ms since the epoch; -1: unreadable */
	enum entra_bulk_verdict verdict;
	const char *error_code;   /* errorInformation.errorCode, "" when none */
	const char *reason;       /* errorInformation.reason, "" when none */
};

/*
 * Read a page of GET /auditLogs/provisioning (outside input, fuzzed):
 * calls cb for each entry that has a sourceIdentity.id and a status it
 * knows (provisioningStatusInfo, or the older statusInfo), skips the others,
 * and sets *next to the @odata.nextLink (NULL: the last page). Returns the
 * number of entries given to cb, or -EBADMSG when the page has no value
 * list.
 */
int entra_bulk_log_page(const json_t *page, void (*cb)(void *data, const struct entra_bulk_entry *e), void *data,
			const char **next);

/* An ISO 8601 UTC time such as 2026-11-30T07:31:11.123Z (fractions of any
 * length, Z or +00:00) in ms since the epoch, or -1. */
int64_t entra_bulk_time_ms(const char *s);

#endif /* CANOPY_SYNC_TARGET_ENTRA_BULK_H */
