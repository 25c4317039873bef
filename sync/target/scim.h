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
 * `externalId eq`, then `userName eq` / `displayName eq` (soft match), and an
 * update of what was found -- never a second object. A delete answered 404
 * counts as done.
 *
 * Failures: 5xx, 429 and network errors are retried with exponential backoff
 * and jitter (429 and 503 honour Retry-After). An operation that still fails
 * completes with an error (the engine logs it and goes on with the others).
 * When most recent requests fail, or the target answers 401/403, the target
 * enters quarantine with a reason code: new and queued operations wait, and a
 * probe (GET /ServiceProviderConfig) is retried at growing intervals; the
 * token file is re-read before each probe, so fixing the token recovers
 * without a restart.
 *
 * Fencing: every request carries X-Canopy-Node and X-Canopy-Term (set with
 * scim_set_fence). scim_cancel_all() aborts everything in flight at once when
 * leadership or the lease is lost.
 */
#ifndef CANOPY_SYNC_TARGET_SCIM_H
#define CANOPY_SYNC_TARGET_SCIM_H

#include <jansson.h>
#include <stdbool.h>
#include <stdint.h>
#include <uv.h>

#include "sync/object.h"

struct scim_config {
	const char *url;          /* base, e.g. http://127.0.0.1:8080/scim/v2 (no trailing /) */
	const char *token_file;   /* bearer token file, re-read on 401 and before probes; NULL: none */
	const char *token;        /* initial token (already read by config); NULL: none */
	unsigned max_in_flight;   /* concurrent requests (default 8) */
	unsigned max_attempts;    /* per operation, including the first (default 6) */
	unsigned backoff_min_ms;  /* default 200 */
	unsigned backoff_max_ms;  /* default 30000 */
	unsigned timeout_ms;      /* per request (default 30000) */
};

enum scim_action {
	SCIM_UPSERT = 1,   /* create or update `resource`; groups: without members */
	SCIM_DELETE,       /* delete by target_id (or found by externalId) */
	SCIM_MEMBERS,      /* group: PATCH add/remove of member target ids */
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
	void *data;                /* the caller's */
	/* out, valid in the callback */
	int status;                /* 0 ok; negative: -ECANCELED, -ETIMEDOUT, -EIO, -EPROTO, ... */
	char result_id[128];       /* the object's target id after UPSERT */
	long http_status;          /* last HTTP status (0: no answer) */
	unsigned attempts;
	bool matched;              /* UPSERT found an existing object (soft or hard match) */
	bool created;              /* UPSERT created a new object */
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
};

struct scim_target; /* opaque */

int scim_target_start(struct scim_target **out, uv_loop_t *loop, const struct scim_config *cfg,
		      char *errmsg, size_t errlen);

/* The headers sent with every request from now on. */
void scim_set_fence(struct scim_target *t, uint64_t node_id, uint64_t term);

/* Queue an operation. Returns 0 (cb will run exactly once) or -ESHUTDOWN. */
int scim_submit(struct scim_target *t, struct scim_op *op, scim_done_cb cb);

/* Abort every queued and in-flight operation: each completes with -ECANCELED. */
void scim_cancel_all(struct scim_target *t);

/* Operations queued or in flight. */
unsigned scim_pending(const struct scim_target *t);

void scim_stats(const struct scim_target *t, struct scim_stats *out);

/* Cancel everything, close handles; `done` runs on the loop when all is released. */
void scim_target_stop(struct scim_target *t, void (*done)(void *data), void *data);

#endif /* CANOPY_SYNC_TARGET_SCIM_H */
