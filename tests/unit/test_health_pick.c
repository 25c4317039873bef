/*
 * tests/unit/test_health_pick.c -- whom a leader that cannot use its source
 * or target hands over to (agent/health_pick.h); the integration test
 * health_handover_stale_peer_check_test runs the same rule in real agents.
 *   - a peer whose ok check predates the leader's failure is not chosen
 *     (the quarantine_resume_test flake: a check 2.5 s old, made before the
 *     token broke);
 *   - a peer whose ok check began after the failure is;
 *   - a check of unknown time (no or a foreign "checked_after") is not;
 *   - only the failing sides need a newer check; freshness, recent
 *     hand-overs and the preference for both sides ok still hold;
 *   - "checked_after" counts only for this leader in this term, never in
 *     its future;
 *   - the leader's view ("leader_ms", "failing_since_ms") is read strictly.
 */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>
#include <jansson.h>

#include "agent/health_pick.h"

#define NOW 100000 /* the leader's loop time in these tests */

static struct health_candidate peer(uint64_t id, enum health_state source, enum health_state target,
				    uint64_t checked_after_ms)
{
	struct health_candidate c = {
		.id = id,
		.reachable = 1,
		.state = {source, target},
		.received_ms = NOW - 500,
		.age_ms = 0,
		.checked_after_ms = checked_after_ms,
		.handed_over_at = 0,
	};
	return c;
}

/* The flake: the target broke; the leader's failure was first seen at
 * NOW - 2000; node 2's latest ok report came from a check that began after
 * an answer the leader gave at NOW - 2500, i.e. possibly before the fault. */
static void a_peer_checked_before_the_failure_is_not_chosen(void **state)
{
	struct health_candidate c[] = {peer(2, HEALTH_OK, HEALTH_OK, NOW - 2500)};
	uint64_t since[HEALTH_SIDES] = {0, NOW - 2000};

	(void)state;
	assert_int_equal(health_pick(c, 1, since, NOW), 0);
	assert_false(health_pick_side_fits(&c[0], HEALTH_SIDE_TARGET, NOW - 2000));
}

static void a_peer_checked_after_the_failure_is_chosen(void **state)
{
	struct health_candidate c[] = {peer(2, HEALTH_OK, HEALTH_OK, NOW - 2500),
				       peer(3, HEALTH_OK, HEALTH_OK, NOW - 1900)};
	uint64_t since[HEALTH_SIDES] = {0, NOW - 2000};

	(void)state;
	assert_int_equal(health_pick(c, 2, since, NOW), 3);
	/* the answer given at the very moment the failure was seen counts:
	 * the check began after the follower read it (health_pick.h) */
	c[0].checked_after_ms = NOW - 2000;
	assert_int_equal(health_pick(c, 1, since, NOW), 2);
}

static void a_check_of_unknown_time_is_not_trusted(void **state)
{
	struct health_candidate c[] = {peer(2, HEALTH_OK, HEALTH_OK, 0)};
	uint64_t since[HEALTH_SIDES] = {NOW - 2000, 0};

	(void)state;
	assert_int_equal(health_pick(c, 1, since, NOW), 0);
}

/* A newer check that failed is no candidate either: the fault is shared. */
static void a_newer_check_that_failed_is_not_chosen(void **state)
{
	struct health_candidate c[] = {peer(2, HEALTH_OK, HEALTH_UNAUTHORIZED, NOW - 100)};
	uint64_t since[HEALTH_SIDES] = {0, NOW - 2000};

	(void)state;
	assert_int_equal(health_pick(c, 1, since, NOW), 0);
}

/* Only a failing side asks for a newer check; the other side's state only
 * ranks the candidates (both ok preferred, then reachable). */
static void only_failing_sides_need_a_newer_check(void **state)
{
	struct health_candidate c[] = {peer(2, HEALTH_UNAUTHORIZED, HEALTH_OK, NOW - 2500),
				       peer(3, HEALTH_OK, HEALTH_OK, NOW - 1000),
				       peer(4, HEALTH_OK, HEALTH_OK, NOW - 1000)};
	uint64_t since[HEALTH_SIDES] = {0, NOW - 2000};

	(void)state;
	c[1].reachable = 0;
	assert_int_equal(health_pick(c, 3, since, NOW), 4); /* both ok and reachable */
	c[2].state[HEALTH_SIDE_SOURCE] = HEALTH_UNREACHABLE;
	assert_int_equal(health_pick(c, 3, since, NOW), 3); /* both ok beats reachable */
	assert_int_equal(health_pick(c, 1, since, NOW), 0);
	c[0].checked_after_ms = NOW - 1500;
	assert_int_equal(health_pick(c, 1, since, NOW), 2); /* the target side is what matters */
}

static void stale_reports_and_recent_handovers_are_not_chosen(void **state)
{
	struct health_candidate c[] = {peer(2, HEALTH_OK, HEALTH_OK, NOW - 1000)};
	uint64_t since[HEALTH_SIDES] = {0, NOW - 2000};

	(void)state;
	c[0].received_ms = NOW - HEALTH_FRESH_MS - 1;
	assert_int_equal(health_pick(c, 1, since, NOW), 0);
	c[0].received_ms = NOW - 500;
	c[0].age_ms = HEALTH_FRESH_MS;
	assert_int_equal(health_pick(c, 1, since, NOW), 0);
	c[0].age_ms = 0;
	c[0].handed_over_at = NOW - HEALTH_RECENT_HANDOVER_MS + 1;
	assert_int_equal(health_pick(c, 1, since, NOW), 0);
	c[0].handed_over_at = NOW - HEALTH_RECENT_HANDOVER_MS;
	assert_int_equal(health_pick(c, 1, since, NOW), 2);
	c[0].received_ms = 0; /* never reported */
	assert_int_equal(health_pick(c, 1, since, NOW), 0);
}

static uint64_t after_of(const char *text, uint64_t self, uint64_t term, uint64_t now)
{
	json_t *o = json_loads(text, 0, NULL);
	uint64_t v;

	assert_non_null(o);
	v = health_checked_after(o, self, term, now);
	json_decref(o);
	return v;
}

static void checked_after_counts_for_this_leader_and_term_only(void **state)
{
	(void)state;
	assert_int_equal(after_of("{\"leader\":1,\"term\":7,\"leader_ms\":5000}", 1, 7, NOW), 5000);
	assert_int_equal(after_of("{\"leader\":2,\"term\":7,\"leader_ms\":5000}", 1, 7, NOW), 0);
	assert_int_equal(after_of("{\"leader\":1,\"term\":6,\"leader_ms\":5000}", 1, 7, NOW), 0);
	/* a time this leader has not reached: from another process */
	assert_int_equal(after_of("{\"leader\":1,\"term\":7,\"leader_ms\":100001}", 1, 7, NOW), 0);
	assert_int_equal(after_of("{\"leader\":1,\"term\":7,\"leader_ms\":-5}", 1, 7, NOW), 0);
	assert_int_equal(after_of("{\"leader\":1,\"term\":7,\"leader_ms\":\"5000\"}", 1, 7, NOW), 0);
	assert_int_equal(after_of("{\"leader\":1,\"term\":7}", 1, 7, NOW), 0);
	assert_int_equal(after_of("[1,7,5000]", 1, 7, NOW), 0);
	assert_int_equal(health_checked_after(NULL, 1, 7, NOW), 0);
}

static int view_of(const char *text, uint64_t *ms, uint64_t *since)
{
	json_t *o = json_loads(text, 0, NULL);
	int rv;

	assert_non_null(o);
	rv = health_view_parse(o, ms, since);
	json_decref(o);
	return rv;
}

/* What a follower takes from the leader's GET /v1/members "health". */
static void the_leaders_view_gives_its_clock_and_failure_start(void **state)
{
	uint64_t ms, since;

	(void)state;
	assert_int_equal(view_of("{\"leader_ms\":5000,\"failing_since_ms\":3000}", &ms, &since), 0);
	assert_int_equal(ms, 5000);
	assert_int_equal(since, 3000);
	assert_int_equal(view_of("{\"leader_ms\":5000}", &ms, &since), 0);
	assert_int_equal(since, 0);
	assert_int_equal(view_of("{\"leader_ms\":5000,\"failing_since_ms\":5001}", &ms, &since), -EPROTO);
	assert_int_equal(view_of("{\"leader_ms\":5000,\"failing_since_ms\":0}", &ms, &since), -EPROTO);
	assert_int_equal(view_of("{\"failing_since_ms\":3000}", &ms, &since), -EPROTO);
	assert_int_equal(view_of("{\"leader_ms\":-1}", &ms, &since), -EPROTO);
	assert_int_equal(health_view_parse(NULL, &ms, &since), -EPROTO);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(a_peer_checked_before_the_failure_is_not_chosen),
		cmocka_unit_test(a_peer_checked_after_the_failure_is_chosen),
		cmocka_unit_test(a_check_of_unknown_time_is_not_trusted),
		cmocka_unit_test(a_newer_check_that_failed_is_not_chosen),
		cmocka_unit_test(only_failing_sides_need_a_newer_check),
		cmocka_unit_test(stale_reports_and_recent_handovers_are_not_chosen),
		cmocka_unit_test(checked_after_counts_for_this_leader_and_term_only),
		cmocka_unit_test(the_leaders_view_gives_its_clock_and_failure_start),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
