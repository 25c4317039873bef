/*
 * tests/unit/test_election.c -- split-vote retry (raft/peek.h,
 * peek_candidate_retry) on libraft's deterministic in-memory cluster
 * (raft/fixture.h): network latency 15 ms, disk 10 ms, ticks every 100 ms.
 *
 * Both followers of a killed leader are given the same election timeout, so
 * both pass pre-vote, bump the term, vote for themselves and split.
 *   - libraft 0.15 alone: the next try comes a whole randomized timeout later
 *     (here 1000 ms), with real votes;
 *   - with peek_candidate_retry: the candidate whose retry is due first
 *     retries through pre-vote and wins one term later, in about its retry
 *     time;
 *   - a leadership transferee and a node without pre-vote are left alone.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>
#include <raft.h>
#include <raft/fixture.h>

#include "raft/peek.h"

#define N 3
#define TIMEOUT 1000 /* every randomized election timeout, once the leader is killed */

static int apply(struct raft_fsm *fsm, const struct raft_buffer *buf, void **result)
{
	(void)fsm;
	(void)buf;
	*result = NULL;
	return 0;
}

struct cluster {
	struct raft_fixture f;
	struct raft_fsm fsms[N];
};

static int setup(void **ctx)
{
	struct cluster *c = calloc(1, sizeof *c);
	struct raft_configuration conf;
	unsigned i;

	assert_non_null(c);
	assert_int_equal(raft_fixture_initialize(&c->f), 0);
	for (i = 0; i < N; i++) {
		c->fsms[i].version = 1;
		c->fsms[i].apply = apply;
		assert_int_equal(raft_fixture_grow(&c->f, &c->fsms[i]), 0);
		raft_set_pre_vote(raft_fixture_get(&c->f, i), true);
	}
	assert_int_equal(raft_fixture_configuration(&c->f, N, &conf), 0);
	assert_int_equal(raft_fixture_bootstrap(&c->f, &conf), 0);
	raft_configuration_close(&conf);
	assert_int_equal(raft_fixture_start(&c->f), 0);
	raft_fixture_elect(&c->f, 0);
	assert_int_equal(raft_fixture_leader_index(&c->f), 0);
	*ctx = c;
	return 0;
}

static int teardown(void **ctx)
{
	struct cluster *c = *ctx;
	raft_fixture_close(&c->f);
	free(c);
	return 0;
}

static raft_time now(struct cluster *c)
{
	struct raft *r = raft_fixture_get(&c->f, 1);
	return r->io->time(r->io);
}

/* Kill the leader and step until servers 1 and 2 are both candidates in
 * their real-vote round of the same term (a split vote). Returns the time. */
static raft_time split(struct cluster *c)
{
	struct raft *a = raft_fixture_get(&c->f, 1), *b = raft_fixture_get(&c->f, 2);
	int i;

	raft_fixture_kill(&c->f, 0);
	raft_fixture_set_randomized_election_timeout(&c->f, 1, TIMEOUT);
	raft_fixture_set_randomized_election_timeout(&c->f, 2, TIMEOUT);
	for (i = 0; i < 10000; i++) {
		raft_fixture_step(&c->f);
		raft_term ta, tb;
		peek_candidate_round(a, &ta);
		peek_candidate_round(b, &tb);
		if (ta != 0 && ta == tb)
			return now(c);
		assert_true(raft_fixture_leader_index(&c->f) == N);
	}
	fail_msg("no split vote");
	return 0;
}

/* Step until a leader exists; `retry_ms[i]` (0: none) is what server i's
 * node would pass to peek_candidate_retry after every loop iteration. */
static unsigned elect(struct cluster *c, const unsigned retry_ms[N], unsigned *retries)
{
	unsigned i;
	int s;

	for (s = 0; s < 100000; s++) {
		raft_fixture_step(&c->f);
		for (i = 1; i < N; i++)
			if (retry_ms[i] != 0 &&
			    peek_candidate_retry(raft_fixture_get(&c->f, i), NULL, retry_ms[i]) == 0)
				(*retries)++;
		if (raft_fixture_leader_index(&c->f) < N)
			return raft_fixture_leader_index(&c->f);
	}
	fail_msg("no leader");
	return N;
}

/* The baseline this works around: libraft 0.15 retries a split vote only
 * after a whole new randomized timeout, and with real votes. */
static void test_split_vote_without_retry_waits_a_whole_timeout(void **ctx)
{
	struct cluster *c = *ctx;
	unsigned none[N] = {0, 0, 0}, retries = 0;
	raft_time at = split(c);

	/* let one of them win the next round */
	raft_fixture_set_randomized_election_timeout(&c->f, 2, TIMEOUT + 300);
	elect(c, none, &retries);
	assert_true(now(c) - at >= TIMEOUT);
	assert_int_equal(retries, 0);
}

static void test_split_vote_retried_through_prevote(void **ctx)
{
	struct cluster *c = *ctx;
	/* the fixture has no loop to re-arm: a due retry waits for the next
	 * 100 ms tick, so the two draws are a tick apart here */
	unsigned retry[N] = {0, 60, 250}, retries = 0, leader;
	raft_time at = split(c);
	raft_term split_term;

	peek_candidate_round(raft_fixture_get(&c->f, 1), &split_term);

	leader = elect(c, retry, &retries);
	/* server 1's retry is due first: pre-vote, then one real vote */
	assert_int_equal(leader, 1);
	assert_int_equal(retries, 1);
	/* due after 60 ms, acted on at the next tick (<= 100 ms later), then
	 * two round trips of 15 ms plus disk writes: far below the 1000 ms */
	print_message("split at %llu ms, leader after %llu ms\n", (unsigned long long)at,
		      (unsigned long long)(now(c) - at));
	assert_true(now(c) - at < 60 + 100 + 100);
	/* pre-vote bumps no term: the winner is one term past the split */
	assert_int_equal(raft_fixture_get(&c->f, 1)->current_term, split_term + 1);
}

/*
 * A lost pre-vote (raft_uv's cached connection to a peer that restarted is
 * dead: the first message on it vanishes). Server 2's log is behind and it
 * has timed out first, so it cannot win and has no leader; server 1's
 * pre-vote to it is dropped. libraft alone: server 1 waits a whole new
 * timeout; with the retry it asks again within its retry time and wins.
 */
static unsigned lost_prevote(struct cluster *c, const unsigned retry_ms[N], unsigned *retries)
{
	struct raft *r1 = raft_fixture_get(&c->f, 1), *r2 = raft_fixture_get(&c->f, 2);
	struct raft_buffer buf;
	struct raft_apply *req = calloc(1, sizeof *req);
	raft_time at;
	int i;

	/* an entry server 2 does not get: its log is behind server 1's */
	raft_fixture_saturate(&c->f, 0, 2);
	buf.len = 8;
	buf.base = raft_malloc(buf.len);
	memset(buf.base, 0, buf.len);
	assert_int_equal(raft_apply(raft_fixture_get(&c->f, 0), req, &buf, 1, NULL), 0);
	for (i = 0; i < 1000 && raft_last_index(r1) <= raft_last_index(r2); i++)
		raft_fixture_step(&c->f);
	assert_true(raft_last_index(r1) > raft_last_index(r2));

	raft_fixture_kill(&c->f, 0);
	raft_fixture_set_randomized_election_timeout(&c->f, 2, TIMEOUT);
	raft_fixture_set_randomized_election_timeout(&c->f, 1, TIMEOUT + 200);
	/* server 2 times out first; server 1 (a leader, a longer log) refuses */
	assert_true(raft_fixture_step_until_state_is(&c->f, 2, RAFT_CANDIDATE, 5000));
	raft_fixture_saturate(&c->f, 1, 2);
	assert_true(raft_fixture_step_until_state_is(&c->f, 1, RAFT_CANDIDATE, 5000));
	at = now(c);
	raft_fixture_step_until_elapsed(&c->f, 20); /* the pre-vote is dropped */
	raft_fixture_desaturate(&c->f, 1, 2);
	assert_int_equal(elect(c, retry_ms, retries), 1);
	free(req);
	return (unsigned)(now(c) - at);
}

static void test_lost_prevote_without_retry_waits_a_whole_timeout(void **ctx)
{
	unsigned none[N] = {0, 0, 0}, retries = 0;
	assert_true(lost_prevote(*ctx, none, &retries) >= TIMEOUT);
}

static void test_lost_prevote_retried(void **ctx)
{
	unsigned retry[N] = {0, 60, 250}, retries = 0, ms = lost_prevote(*ctx, retry, &retries);

	print_message("server 1 candidate -> leader: %u ms, %u retries\n", ms, retries);
	assert_true(retries >= 1);
	/* due 60 ms into the round; the fixture has no loop to re-arm, so the
	 * flag is seen at the step after the tick and the new round starts at
	 * the tick after (<= 2 x 100 ms), then two round trips: well under the
	 * TIMEOUT + 200 ms that libraft alone takes */
	assert_true(ms < 60 + 200 + 100);
}

static void test_retry_leaves_other_candidates_alone(void **ctx)
{
	struct cluster *c = *ctx;
	struct raft *r = raft_fixture_get(&c->f, 1);

	/* a follower */
	assert_int_equal(peek_candidate_retry(r, NULL, 0), -EAGAIN);
	split(c);
	/* not yet due */
	assert_int_equal(peek_candidate_retry(r, NULL, 60000), -EAGAIN);
	/* a leadership transferee keeps its disrupt-leader real vote */
	r->candidate_state.disrupt_leader = true;
	assert_int_equal(peek_candidate_retry(r, NULL, 0), -EAGAIN);
	r->candidate_state.disrupt_leader = false;
	/* without pre-vote a fast real-vote retry could livelock: left alone */
	raft_set_pre_vote(r, false);
	assert_int_equal(peek_candidate_retry(r, NULL, 0), -EAGAIN);
	raft_set_pre_vote(r, true);
	assert_int_equal(peek_candidate_retry(r, NULL, 0), 0);
	assert_true(r->candidate_state.in_pre_vote);
	/* already due: not counted twice before the tick starts the round */
	assert_int_equal(peek_candidate_retry(r, NULL, 0), -EAGAIN);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test_setup_teardown(test_split_vote_without_retry_waits_a_whole_timeout, setup,
					    teardown),
	    cmocka_unit_test_setup_teardown(test_split_vote_retried_through_prevote, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_lost_prevote_without_retry_waits_a_whole_timeout,
					    setup, teardown),
	    cmocka_unit_test_setup_teardown(test_lost_prevote_retried, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_retry_leaves_other_candidates_alone, setup, teardown),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
