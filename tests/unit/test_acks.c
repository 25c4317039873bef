/*
 * tests/unit/test_acks.c -- raft/acks.h: what a follower's answers prove
 * about when it last reset its election timer (the lease renewed by
 * heartbeats, raft/leader.h). Every rule errs early, never late.
 */
#include <raft.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "raft/acks.h"

static void send_ae(struct acks *a, uint64_t id, raft_term term, raft_time now)
{
	struct raft_message m;

	memset(&m, 0, sizeof m);
	m.type = RAFT_IO_APPEND_ENTRIES;
	m.server_id = id;
	m.append_entries.term = term;
	acks_sent(a, &m, now);
}

static void answer(struct acks *a, uint64_t id, raft_term term)
{
	struct raft_message m;

	memset(&m, 0, sizeof m);
	m.type = RAFT_IO_APPEND_ENTRIES_RESULT;
	m.server_id = id;
	m.append_entries_result.term = term;
	acks_received(a, &m);
}

static void an_answer_proves_the_send_time_of_its_request(void **state)
{
	struct acks a;

	(void)state;
	acks_init(&a);
	assert_int_equal(acks_at(&a, 2, 5), 0);
	send_ae(&a, 2, 5, 100);
	assert_int_equal(acks_at(&a, 2, 5), 0); /* sent, not answered: nothing */
	answer(&a, 2, 5);
	assert_int_equal(acks_at(&a, 2, 5), 100);
	send_ae(&a, 2, 5, 180);
	answer(&a, 2, 5);
	assert_int_equal(acks_at(&a, 2, 5), 180);
	assert_int_equal(acks_at(&a, 3, 5), 0); /* another follower: nothing */
}

static void answers_count_in_order_so_a_lost_request_makes_it_earlier(void **state)
{
	struct acks a;

	(void)state;
	acks_init(&a);
	send_ae(&a, 2, 5, 100); /* lost on the way: never answered */
	send_ae(&a, 2, 5, 200);
	answer(&a, 2, 5);       /* answers the 200 one, counted as the 100 one */
	assert_int_equal(acks_at(&a, 2, 5), 100);
	send_ae(&a, 2, 5, 300);
	answer(&a, 2, 5);       /* the second answer: at least the second request */
	assert_int_equal(acks_at(&a, 2, 5), 200);
}

static void answers_of_another_term_prove_nothing(void **state)
{
	struct acks a;

	(void)state;
	acks_init(&a);
	send_ae(&a, 2, 5, 100);
	answer(&a, 2, 6); /* the follower moved to a later term */
	assert_int_equal(acks_at(&a, 2, 5), 0);
	answer(&a, 2, 4); /* an answer to an older leader's request */
	assert_int_equal(acks_at(&a, 2, 5), 0);
	answer(&a, 2, 5);
	assert_int_equal(acks_at(&a, 2, 5), 100);
	assert_int_equal(acks_at(&a, 2, 6), 0);
	/* a new term starts the count again */
	send_ae(&a, 2, 7, 400);
	assert_int_equal(acks_at(&a, 2, 5), 0);
	answer(&a, 2, 7);
	assert_int_equal(acks_at(&a, 2, 7), 400);
}

static void more_answers_than_requests_count_once_each(void **state)
{
	struct acks a;

	(void)state;
	acks_init(&a);
	send_ae(&a, 2, 5, 100);
	answer(&a, 2, 5);
	answer(&a, 2, 5); /* a duplicate: no request left for it */
	send_ae(&a, 2, 5, 200);
	assert_int_equal(acks_at(&a, 2, 5), 100);
	answer(&a, 2, 5);
	assert_int_equal(acks_at(&a, 2, 5), 200);
}

static void beyond_the_window_an_answer_proves_nothing_new(void **state)
{
	struct acks a;
	unsigned i;

	(void)state;
	acks_init(&a);
	for (i = 0; i < ACKS_WINDOW + 10; i++)
		send_ae(&a, 2, 5, 100 + i);
	answer(&a, 2, 5); /* the first request's time is gone from the window */
	assert_int_equal(acks_at(&a, 2, 5), 0);
	for (i = 1; i < 10; i++)
		answer(&a, 2, 5);
	assert_int_equal(acks_at(&a, 2, 5), 0);
	answer(&a, 2, 5); /* the 11th: request 10 is the oldest in the window */
	assert_int_equal(acks_at(&a, 2, 5), 110);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(an_answer_proves_the_send_time_of_its_request),
		cmocka_unit_test(answers_count_in_order_so_a_lost_request_makes_it_earlier),
		cmocka_unit_test(answers_of_another_term_prove_nothing),
		cmocka_unit_test(more_answers_than_requests_count_once_each),
		cmocka_unit_test(beyond_the_window_an_answer_proves_nothing_new),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
