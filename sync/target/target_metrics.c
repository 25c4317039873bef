/*
 * sync/target/target_metrics.c -- the targets' request latency and error
 * counts for /metrics (target_metrics.h).
 */
#include <errno.h>

#include "sync/target/target_metrics.h"

const double target_latency_bounds[TARGET_LATENCY_BUCKETS] = {0.005, 0.01, 0.025, 0.05, 0.1, 0.25,
							      0.5,   1,    2.5,   5,    10};

/* One process has one target at a time, on one loop thread (the header). */
static struct target_metrics metrics;

const char *target_request_op_name(enum target_request_op op)
{
	switch (op) {
	case TARGET_REQ_CREATE:
		return "create";
	case TARGET_REQ_UPDATE:
		return "update";
	case TARGET_REQ_FIND:
		return "find";
	case TARGET_REQ_DELETE:
		return "delete";
	case TARGET_REQ_MEMBERS:
		return "members";
	case TARGET_REQ_READ_MEMBERS:
		return "read_members";
	case TARGET_REQ_BULK:
		return "bulk";
	case TARGET_REQ_CONFIG:
		return "config";
	case TARGET_REQ_PROBE:
		return "probe";
	case TARGET_REQ_OPS:
		break;
	}
	return "unknown";
}

const char *target_error_reason_name(enum target_error_reason r)
{
	switch (r) {
	case TARGET_ERR_TIMEOUT:
		return "timeout";
	case TARGET_ERR_UNREACHABLE:
		return "unreachable";
	case TARGET_ERR_IO:
		return "io";
	case TARGET_ERR_BAD_ANSWER:
		return "bad_answer";
	case TARGET_ERR_REFUSED:
		return "refused";
	case TARGET_ERR_CONFLICT:
		return "conflict";
	case TARGET_ERR_GONE:
		return "gone";
	case TARGET_ERR_INVALID:
		return "invalid";
	case TARGET_ERR_OTHER:
	case TARGET_ERR_REASONS:
		break;
	}
	return "other";
}

enum target_error_reason target_error_reason_of(int status)
{
	switch (status) {
	case -ETIMEDOUT:
		return TARGET_ERR_TIMEOUT;
	case -ECONNREFUSED:
	case -EHOSTUNREACH:
		return TARGET_ERR_UNREACHABLE;
	case -EIO:
		return TARGET_ERR_IO;
	case -EBADMSG:
		return TARGET_ERR_BAD_ANSWER;
	case -EPROTO:
		return TARGET_ERR_REFUSED;
	case -EEXIST:
		return TARGET_ERR_CONFLICT;
	case -ENOENT:
		return TARGET_ERR_GONE;
	case -EINVAL:
	case -ELOOP:
		return TARGET_ERR_INVALID;
	default:
		return TARGET_ERR_OTHER;
	}
}

void target_metrics_request(enum target_request_op op, double seconds)
{
	struct target_latency *l;
	unsigned i;

	if ((unsigned)op >= TARGET_REQ_OPS)
		return;
	l = &metrics.latency[op];
	for (i = 0; i < TARGET_LATENCY_BUCKETS && seconds > target_latency_bounds[i]; i++)
		;
	l->bucket[i]++;
	l->count++;
	l->sum += seconds;
}

void target_metrics_error(enum target_action action, int status)
{
	if (status == 0 || status == -ECANCELED || (unsigned)action >= TARGET_ACTIONS)
		return;
	metrics.errors[action][target_error_reason_of(status)]++;
}

const struct target_metrics *target_metrics_get(void)
{
	return &metrics;
}
