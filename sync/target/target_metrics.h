/*
 * sync/target/target_metrics.h -- what a target counts for /metrics, over
 * the whole life of the process (every run of every leadership adds to the
 * same figures, so Prometheus sees counters that only reset at a restart).
 *
 * A target records each HTTP request it completes (how long it took, which
 * kind it was) and each operation that failed (the engine's action and why);
 * agent/metrics.c prints them. Everything runs on the loop thread: the
 * target's callbacks and the control API's handler alike, so no lock.
 */
#ifndef CANOPY_SYNC_TARGET_TARGET_METRICS_H
#define CANOPY_SYNC_TARGET_TARGET_METRICS_H

#include <stdint.h>

#include "sync/target/target.h"

/* The kinds of request a target sends, as the `op` label shows them. */
enum target_request_op {
	TARGET_REQ_CREATE,       /* POST of a new object */
	TARGET_REQ_UPDATE,       /* PUT / PATCH of an object's attributes */
	TARGET_REQ_FIND,         /* GET with a filter: by externalId, or by name */
	TARGET_REQ_DELETE,       /* DELETE */
	TARGET_REQ_MEMBERS,      /* PATCH of a group's members */
	TARGET_REQ_READ_MEMBERS, /* GET of a group's members before a re-run */
	TARGET_REQ_BULK,         /* one POST /Bulk carrying several operations */
	TARGET_REQ_CONFIG,       /* GET of the server's capabilities */
	TARGET_REQ_PROBE,        /* a quarantine probe */
	TARGET_REQ_OPS
};

/* "create", "update", "find", "delete", "members", "read_members", "bulk",
 * "config", "probe" */
const char *target_request_op_name(enum target_request_op op);

/* Why an operation failed, from its status (target.h, struct target_op). */
enum target_error_reason {
	TARGET_ERR_TIMEOUT,     /* -ETIMEDOUT */
	TARGET_ERR_UNREACHABLE, /* -ECONNREFUSED, -EHOSTUNREACH */
	TARGET_ERR_IO,          /* -EIO: network or server errors after every attempt */
	TARGET_ERR_BAD_ANSWER,  /* -EBADMSG: answers that could not be used */
	TARGET_ERR_REFUSED,     /* -EPROTO: a 4xx refusal */
	TARGET_ERR_CONFLICT,    /* -EEXIST: the name belongs to another object */
	TARGET_ERR_GONE,        /* -ENOENT: the group is gone */
	TARGET_ERR_INVALID,     /* -EINVAL, -ELOOP: an operation that could not be built */
	TARGET_ERR_OTHER,
	TARGET_ERR_REASONS
};

/* "timeout", "unreachable", "io", "bad_answer", "refused", "conflict",
 * "gone", "invalid", "other" */
const char *target_error_reason_name(enum target_error_reason r);
enum target_error_reason target_error_reason_of(int status);

/* Upper bounds of the latency buckets, in seconds (Prometheus's default
 * buckets); a last bucket, +Inf, is implied. */
#define TARGET_LATENCY_BUCKETS 11
extern const double target_latency_bounds[TARGET_LATENCY_BUCKETS];

struct target_latency {
	uint64_t bucket[TARGET_LATENCY_BUCKETS + 1]; /* per bucket, not cumulative; the last: +Inf */
	uint64_t count;
	double sum; /* seconds */
};

/* The number of enum target_action values (target.h), which start at 1. */
#define TARGET_ACTIONS (TARGET_MANAGER + 1)

struct target_metrics {
	struct target_latency latency[TARGET_REQ_OPS];
	uint64_t errors[TARGET_ACTIONS][TARGET_ERR_REASONS];
};

/* A request of kind `op` completed (an answer, or a transport error) after
 * `seconds` on the wire. Cancelled requests are not recorded. */
void target_metrics_request(enum target_request_op op, double seconds);

/* An operation completed with `status` != 0 (-ECANCELED is not counted). */
void target_metrics_error(enum target_action action, int status);

/* The figures so far (the process's own; valid until the next record). */
const struct target_metrics *target_metrics_get(void);

#endif /* CANOPY_SYNC_TARGET_TARGET_METRICS_H */
