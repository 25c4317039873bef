/*
 * tests/unit/test_target_metrics.c -- the targets' figures for /metrics
 * (sync/target/target_metrics.h): a latency on a bucket's bound falls in
 * that bucket (Prometheus's `le`: less than or equal), one past the last
 * bound in +Inf; errors are counted by action and reason, cancellations and
 * successes not at all. The figures are the process's: each test reads the
 * difference it made.
 */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include "sync/target/target_metrics.h"

static void latency_on_a_bound_falls_in_that_bucket(void **state)
{
	struct target_latency before = target_metrics_get()->latency[TARGET_REQ_CREATE];
	const struct target_latency *l = &target_metrics_get()->latency[TARGET_REQ_CREATE];
	(void)state;

	target_metrics_request(TARGET_REQ_CREATE, 0.005); /* le="0.005" */
	target_metrics_request(TARGET_REQ_CREATE, 0.0051); /* le="0.01" */
	target_metrics_request(TARGET_REQ_CREATE, 10.5);  /* le="+Inf" only */
	assert_int_equal(l->bucket[0] - before.bucket[0], 1);
	assert_int_equal(l->bucket[1] - before.bucket[1], 1);
	assert_int_equal(l->bucket[TARGET_LATENCY_BUCKETS] - before.bucket[TARGET_LATENCY_BUCKETS], 1);
	assert_int_equal(l->count - before.count, 3);
	assert_true(l->sum - before.sum > 10.5101 - 1e-9 && l->sum - before.sum < 10.5101 + 1e-9);
	/* another kind is untouched */
	assert_int_equal(target_metrics_get()->latency[TARGET_REQ_DELETE].count, 0);
}

static void errors_count_by_action_and_reason_but_not_cancellations(void **state)
{
	const struct target_metrics *m = target_metrics_get();
	(void)state;

	target_metrics_error(TARGET_UPSERT, -EPROTO);
	target_metrics_error(TARGET_UPSERT, -EPROTO);
	target_metrics_error(TARGET_MEMBERS, -ETIMEDOUT);
	target_metrics_error(TARGET_DELETE, -ECANCELED);
	target_metrics_error(TARGET_DELETE, 0);
	assert_int_equal(m->errors[TARGET_UPSERT][TARGET_ERR_REFUSED], 2);
	assert_int_equal(m->errors[TARGET_MEMBERS][TARGET_ERR_TIMEOUT], 1);
	for (unsigned r = 0; r < TARGET_ERR_REASONS; r++)
		assert_int_equal(m->errors[TARGET_DELETE][r], 0);
	assert_string_equal(target_error_reason_name(target_error_reason_of(-EHOSTUNREACH)), "unreachable");
	assert_string_equal(target_error_reason_name(target_error_reason_of(-E2BIG)), "other");
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(latency_on_a_bound_falls_in_that_bucket),
		cmocka_unit_test(errors_count_by_action_and_reason_but_not_cancellations),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
