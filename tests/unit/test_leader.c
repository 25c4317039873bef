/*
 * tests/unit/test_leader.c -- leadership rules on libraft's deterministic
 * in-memory cluster (raft/fixture.h):
 *   - a new leader acts as leader only after its barrier committed;
 *   - losing leadership fails pending applies and stops acting as leader;
 *   - the write lease ends before a partitioned leader steps down.
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

#include "raft/fsm.h"
#include "raft/leader.h"
#include "sync/state/state.h"

#define N 3

struct cluster {
	struct raft_fixture f;
	struct state states[N];
	struct fsm fsms[N];
	struct leader leaders[N];
	int changes[N];   /* on_change(true) count */
	int losses[N];    /* on_change(false) count */
};

static void on_change(struct leader *l, bool leading)
{
	struct cluster *c = l->data;
	unsigned i = (unsigned)(l - c->leaders);
	if (leading)
		c->changes[i]++;
	else
		c->losses[i]++;
}

static int setup(void **ctx)
{
	struct cluster *c = calloc(1, sizeof *c);
	struct raft_configuration conf;
	unsigned i;

	assert_int_equal(raft_fixture_initialize(&c->f), 0);
	for (i = 0; i < N; i++) {
		state_init(&c->states[i]);
		fsm_init(&c->fsms[i], state_machine(&c->states[i]));
		assert_int_equal(raft_fixture_grow(&c->f, &c->fsms[i].raft), 0);
	}
	assert_int_equal(raft_fixture_configuration(&c->f, N, &conf), 0);
	assert_int_equal(raft_fixture_bootstrap(&c->f, &conf), 0);
	raft_configuration_close(&conf);
	assert_int_equal(raft_fixture_start(&c->f), 0);
	for (i = 0; i < N; i++) {
		leader_init(&c->leaders[i], raft_fixture_get(&c->f, i));
		c->leaders[i].data = c;
		c->leaders[i].on_change = on_change;
	}
	*ctx = c;
	return 0;
}

static int teardown(void **ctx)
{
	struct cluster *c = *ctx;
	unsigned i;
	for (i = 0; i < N; i++)
		leader_close(&c->leaders[i]);
	raft_fixture_close(&c->f);
	for (i = 0; i < N; i++)
		state_close(&c->states[i]);
	free(c);
	return 0;
}

/* One fixture step, then poll every tracker as the loop's check handle would. */
static void step(struct cluster *c)
{
	unsigned i;
	raft_fixture_step(&c->f);
	for (i = 0; i < N; i++)
		leader_tick(&c->leaders[i]);
}

static void tick_all(struct cluster *c)
{
	unsigned i;
	for (i = 0; i < N; i++)
		leader_tick(&c->leaders[i]);
}

static bool step_until_ready(struct cluster *c, unsigned i, unsigned max_steps)
{
	while (max_steps-- > 0) {
		if (leader_ready(&c->leaders[i]))
			return true;
		step(c);
	}
	return leader_ready(&c->leaders[i]);
}

static void new_leader_acts_only_after_its_barrier_commits(void **ctx)
{
	struct cluster *c = *ctx;
	struct raft *r0 = raft_fixture_get(&c->f, 0);
	raft_index last_at_election;

	raft_fixture_elect(&c->f, 0);
	assert_int_equal(raft_state(r0), RAFT_LEADER);
	last_at_election = raft_last_index(r0);

	tick_all(c);
	/* Raft says leader, but the barrier has not committed: not acting yet. */
	assert_int_equal(c->leaders[0].phase, LEADER_BARRIER);
	assert_false(leader_ready(&c->leaders[0]));
	assert_false(leader_may_write(&c->leaders[0]));
	assert_int_equal(c->changes[0], 0);

	assert_true(step_until_ready(c, 0, 1000));
	assert_int_equal(c->changes[0], 1);
	/* Everything in the log when it won, and the barrier itself, is applied. */
	assert_true(raft_last_applied(r0) > last_at_election);
	assert_true(leader_may_write(&c->leaders[0]));
	/* Followers never act as leader. */
	assert_int_equal(c->changes[1] + c->changes[2], 0);
}

/* leader_hold(): a leader elected early writes only once any earlier
 * leader's lease has surely ended, even with its barrier committed. */
static void held_leader_writes_only_after_the_hold(void **ctx)
{
	struct cluster *c = *ctx;
	struct raft *r0 = raft_fixture_get(&c->f, 0);
	raft_time until;

	raft_fixture_elect(&c->f, 0);
	until = r0->io->time(r0->io) + leader_lease_length(&c->leaders[0]);
	leader_hold(&c->leaders[0], until);
	assert_true(step_until_ready(c, 0, 1000));
	assert_true(r0->io->time(r0->io) < until);
	assert_false(leader_may_write(&c->leaders[0]));
	while (r0->io->time(r0->io) < until) {
		assert_false(leader_may_write(&c->leaders[0]));
		step(c);
	}
	assert_true(leader_ready(&c->leaders[0]));
	assert_true(leader_may_write(&c->leaders[0]));
}

struct apply_req {
	struct raft_apply req;
	int status;
	bool done;
};

static void apply_cb(struct raft_apply *req, int status, void *result)
{
	struct apply_req *a = req->data;
	(void)result;
	a->status = status;
	a->done = true;
}

static void leadership_loss_fails_pending_applies(void **ctx)
{
	struct cluster *c = *ctx;
	struct raft *r0 = raft_fixture_get(&c->f, 0);
	struct apply_req a = {.status = 0};
	struct state_batch b;
	struct raft_buffer buf;
	const void *v;
	size_t vl;
	unsigned steps;

	raft_fixture_elect(&c->f, 0);
	assert_true(step_until_ready(c, 0, 1000));

	/* Cut the leader off, then propose: the entry can never commit. */
	raft_fixture_disconnect(&c->f, 0, 1);
	raft_fixture_disconnect(&c->f, 0, 2);
	state_batch_init(&b);
	state_batch_put(&b, "uuid-9", 6, "t", 1);
	assert_int_equal(state_batch_encode(&b, &buf), 0);
	state_batch_close(&b);
	a.req.data = &a;
	assert_int_equal(raft_apply(r0, &a.req, &buf, 1, apply_cb), 0);

	for (steps = 0; steps < 10000 && raft_state(r0) == RAFT_LEADER; steps++)
		step(c);
	assert_int_not_equal(raft_state(r0), RAFT_LEADER);
	assert_true(a.done);
	assert_int_equal(a.status, RAFT_LEADERSHIPLOST);
	assert_false(leader_ready(&c->leaders[0]));
	assert_int_equal(c->losses[0], 1);
	assert_false(state_get(&c->states[0], "uuid-9", 6, &v, &vl));

	/* The majority side elects a leader that becomes ready in turn. */
	for (steps = 0; steps < 20000; steps++) {
		if (leader_ready(&c->leaders[1]) || leader_ready(&c->leaders[2]))
			break;
		step(c);
	}
	assert_true(leader_ready(&c->leaders[1]) || leader_ready(&c->leaders[2]));
	assert_false(leader_ready(&c->leaders[0]));
}

/*
 * Fencing (Raft dissertation §6.4.1): a leader cut off from the majority
 * keeps believing it leads until check-quorum steps it down; its lease must
 * end before that, and before anyone else could lead.
 */
static void lease_ends_before_partitioned_leader_steps_down(void **ctx)
{
	struct cluster *c = *ctx;
	struct raft *r0 = raft_fixture_get(&c->f, 0);
	bool fenced_while_leader = false;
	raft_time deadline, now, lease_start;
	unsigned steps;

	raft_fixture_elect(&c->f, 0);
	assert_true(step_until_ready(c, 0, 1000));
	/* Idle renewals keep the lease alive while connected. */
	raft_fixture_step_until_elapsed(&c->f, 3000);
	tick_all(c);
	for (steps = 0; steps < 200; steps++)
		step(c);
	assert_true(leader_may_write(&c->leaders[0]));

	raft_fixture_disconnect(&c->f, 0, 1);
	raft_fixture_disconnect(&c->f, 0, 2);
	deadline = leader_lease_deadline(&c->leaders[0]);
	lease_start = c->leaders[0].lease_start;
	/* s + T x (1 - margin): strictly before any other node could win a vote. */
	assert_true(deadline == lease_start + r0->election_timeout * 80 / 100);
	for (steps = 0; steps < 20000 && raft_state(r0) == RAFT_LEADER; steps++) {
		step(c);
		now = raft_fixture_time(&c->f);
		if (now >= deadline)
			assert_false(leader_may_write(&c->leaders[0]));
		if (raft_state(r0) == RAFT_LEADER && !leader_may_write(&c->leaders[0]))
			fenced_while_leader = true;
		/* Renewal barriers cannot commit, so the deadline never moves. */
		if (leader_ready(&c->leaders[0]))
			assert_true(leader_lease_deadline(&c->leaders[0]) == deadline);
	}
	assert_true(fenced_while_leader);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(new_leader_acts_only_after_its_barrier_commits, setup, teardown),
		cmocka_unit_test_setup_teardown(held_leader_writes_only_after_the_hold, setup, teardown),
		cmocka_unit_test_setup_teardown(leadership_loss_fails_pending_applies, setup, teardown),
		cmocka_unit_test_setup_teardown(lease_ends_before_partitioned_leader_steps_down, setup, teardown),
	};
	return cmocka_run_group_tests_name("leader", tests, NULL, NULL);
}
