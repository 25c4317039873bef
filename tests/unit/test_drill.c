/*
 * tests/unit/test_drill.c -- the failover drill's two rules that need no
 * cluster: raft/isolation.h (the crash drill's cut, on a fake raft_io: what
 * passes, what is dropped and freed, when a dropped send is called back, and
 * that a message without an address never reaches the transport) and
 * control_drill_check() (when the leader refuses a drill).
 */
#include <errno.h>
#include <raft.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <uv.h>

#include <cmocka.h>

#include "agent/control.h"
#include "raft/isolation.h"
#include "raft/node.h"

/* ---- a fake raft_io: records what reaches it -------------------------- */

static struct {
	raft_io_recv_cb recv; /* what the io was started with */
	unsigned sends;       /* sends that reached the transport */
	unsigned received;    /* messages that reached libraft's callback */
	unsigned callbacks;
	int last_status;
} fake;

static int fake_start(struct raft_io *io, unsigned msecs, raft_io_tick_cb tick, raft_io_recv_cb recv)
{
	(void)io, (void)msecs, (void)tick;
	fake.recv = recv;
	return 0;
}

static int fake_send(struct raft_io *io, struct raft_io_send *req, const struct raft_message *m, raft_io_send_cb cb)
{
	(void)io, (void)req, (void)m, (void)cb;
	fake.sends++;
	return 0;
}

static void libraft_recv(struct raft_io *io, struct raft_message *m)
{
	(void)io, (void)m;
	fake.received++;
}

static void on_sent(struct raft_io_send *req, int status)
{
	(void)req;
	fake.callbacks++;
	fake.last_status = status;
}

static struct raft_io io;
static struct isolation iso;
static uv_loop_t loop;

static int setup(void **state)
{
	(void)state;
	memset(&fake, 0, sizeof fake);
	memset(&io, 0, sizeof io);
	io.start = fake_start;
	io.send = fake_send;
	uv_loop_init(&loop);
	isolation_wrap(&iso, &io, &loop);
	assert_int_equal(io.start(&io, 100, NULL, libraft_recv), 0);
	return 0;
}

static int teardown(void **state)
{
	(void)state;
	isolation_close(&iso);
	uv_run(&loop, UV_RUN_DEFAULT);
	assert_int_equal(uv_loop_close(&loop), 0);
	return 0;
}

/* An AppendEntries as raft_uv hands it over: two entries sharing one batch. */
static void append_entries(struct raft_message *m)
{
	memset(m, 0, sizeof *m);
	m->type = RAFT_IO_APPEND_ENTRIES;
	m->append_entries.n_entries = 2;
	m->append_entries.entries = raft_malloc(2 * sizeof(struct raft_entry));
	memset(m->append_entries.entries, 0, 2 * sizeof(struct raft_entry));
	m->append_entries.entries[0].batch = raft_malloc(64);
	m->append_entries.entries[1].batch = m->append_entries.entries[0].batch;
}

static void messages_pass_while_not_isolated(void **state)
{
	struct raft_message m;
	struct raft_io_send req;

	(void)state;
	memset(&m, 0, sizeof m);
	m.type = RAFT_IO_REQUEST_VOTE;
	m.server_address = "127.0.0.1:2";
	assert_ptr_not_equal(fake.recv, libraft_recv); /* the isolation sits in between */
	fake.recv(&io, &m);
	assert_int_equal(fake.received, 1);
	assert_int_equal(io.send(&io, &req, &m, on_sent), 0);
	assert_int_equal(fake.sends, 1);
	assert_int_equal(iso.dropped_in + iso.dropped_out, 0);
}

static void isolated_node_drops_received_messages_and_frees_them(void **state)
{
	struct raft_message m;

	(void)state;
	isolation_set(&iso, true);
	append_entries(&m); /* freed by the drop: ASan's leak check sees it */
	fake.recv(&io, &m);
	memset(&m, 0, sizeof m);
	m.type = RAFT_IO_INSTALL_SNAPSHOT;
	raft_configuration_init(&m.install_snapshot.conf);
	assert_int_equal(raft_configuration_add(&m.install_snapshot.conf, 1, "127.0.0.1:1", RAFT_VOTER), 0);
	m.install_snapshot.data.base = raft_malloc(32);
	fake.recv(&io, &m);
	memset(&m, 0, sizeof m);
	m.type = RAFT_IO_APPEND_ENTRIES; /* a heartbeat: no entries */
	fake.recv(&io, &m);
	assert_int_equal(fake.received, 0);
	assert_int_equal(iso.dropped_in, 3);

	isolation_set(&iso, false); /* the cut ends: messages pass again */
	m.type = RAFT_IO_REQUEST_VOTE_RESULT;
	fake.recv(&io, &m);
	assert_int_equal(fake.received, 1);
}

static void isolated_node_sends_nothing_and_is_called_back_later(void **state)
{
	struct raft_message m;
	struct raft_io_send a, b;

	(void)state;
	memset(&m, 0, sizeof m);
	m.type = RAFT_IO_APPEND_ENTRIES;
	m.server_address = "127.0.0.1:2";
	isolation_set(&iso, true);
	assert_int_equal(io.send(&io, &a, &m, on_sent), 0);
	assert_int_equal(io.send(&io, &b, &m, on_sent), 0);
	assert_int_equal(fake.sends, 0);
	assert_int_equal(fake.callbacks, 0); /* never from inside libraft's own call */
	uv_run(&loop, UV_RUN_NOWAIT);
	assert_int_equal(fake.callbacks, 2);
	assert_int_equal(fake.last_status, 0); /* lost on the way, as a blackholed peer looks */
	assert_int_equal(iso.dropped_out, 2);
}

static void closing_calls_back_dropped_sends_as_cancelled(void **state)
{
	struct raft_message m;
	struct raft_io_send a;

	(void)state;
	memset(&m, 0, sizeof m);
	m.server_address = "127.0.0.1:2";
	isolation_set(&iso, true);
	assert_int_equal(io.send(&io, &a, &m, on_sent), 0);
	isolation_close(&iso); /* before raft_close: nothing left to call back later */
	assert_int_equal(fake.callbacks, 1);
	assert_int_equal(fake.last_status, RAFT_CANCELED);
	assert_false(isolation_on(&iso));
	assert_int_equal(io.send(&io, &a, &m, on_sent), 0); /* passes through after close */
	assert_int_equal(fake.sends, 1);
}

/* libraft 0.15 answers an append that completes after the follower was a
 * candidate and turned follower again without a leader to
 * current_leader.address, NULL then; raft_uv would strlen it. */
static void messages_without_an_address_are_not_sent(void **state)
{
	struct raft_message m;
	struct raft_io_send a;

	(void)state;
	memset(&m, 0, sizeof m);
	m.type = RAFT_IO_APPEND_ENTRIES_RESULT;
	m.server_id = 0;
	m.server_address = NULL;
	assert_int_equal(io.send(&io, &a, &m, on_sent), 0);
	assert_int_equal(fake.sends, 0);
	assert_int_equal(fake.callbacks, 0);
	uv_run(&loop, UV_RUN_NOWAIT);
	assert_int_equal(fake.callbacks, 1);
	assert_int_equal(fake.last_status, RAFT_NOCONNECTION);
	assert_int_equal(iso.unaddressed, 1);
	m.server_id = 2;
	m.server_address = "127.0.0.1:2";
	assert_int_equal(io.send(&io, &a, &m, on_sent), 0); /* an addressed one passes */
	assert_int_equal(fake.sends, 1);
}

/* ---- control_drill_check ---------------------------------------------- */

/* A ready leader (node 1) with n voters, all reachable and caught up. */
static struct node_status cluster(unsigned n)
{
	struct node_status st;
	unsigned i;

	memset(&st, 0, sizeof st);
	st.state = NODE_LEADER;
	st.ready = true;
	st.term = 4;
	st.leader_id = 1;
	st.commit_index = 1000;
	st.n_members = n;
	for (i = 0; i < n; i++) {
		st.members[i].id = i + 1;
		st.members[i].role = NODE_VOTER;
		st.members[i].reachable = 1;
		st.members[i].match_index = 1000;
	}
	return st;
}

static void drill_runs_on_a_healthy_cluster(void **state)
{
	struct node_status st = cluster(3);
	char err[512] = "";

	(void)state;
	st.members[2].match_index = 1000 - CONTROL_DRILL_LAG_MAX; /* a few entries in flight */
	assert_int_equal(control_drill_check(&st, 1, false, "", err, sizeof err), 0);
	st = cluster(5);
	st.members[4].reachable = 0; /* one of five down: four remain, three after the drill */
	assert_int_equal(control_drill_check(&st, 1, false, "", err, sizeof err), 0);
}

static void drill_is_refused_without_a_ready_leader(void **state)
{
	struct node_status st = cluster(3);
	char err[512];

	(void)state;
	st.ready = false;
	assert_int_equal(control_drill_check(&st, 1, false, "", err, sizeof err), -EAGAIN);
	assert_non_null(strstr(err, "no ready leader"));
	st.state = NODE_FOLLOWER;
	assert_int_equal(control_drill_check(&st, 1, false, "", err, sizeof err), -EAGAIN);
	assert_non_null(strstr(err, "follower"));
}

static void drill_is_refused_with_a_voter_down(void **state)
{
	struct node_status st = cluster(3);
	char err[512];

	(void)state;
	st.members[1].reachable = 0;
	assert_int_equal(control_drill_check(&st, 1, false, "", err, sizeof err), -EHOSTDOWN);
	assert_non_null(strstr(err, "2 of 3 voters healthy"));
	assert_non_null(strstr(err, "node 2 is not reachable"));
	st = cluster(5); /* two of five down: the drill would leave two of five */
	st.members[3].reachable = 0;
	st.members[4].reachable = -1;
	assert_int_equal(control_drill_check(&st, 1, false, "", err, sizeof err), -EHOSTDOWN);
	assert_non_null(strstr(err, "node 4 is not reachable; node 5 is not reachable"));
}

static void drill_is_refused_with_a_lagging_voter(void **state)
{
	struct node_status st = cluster(3);
	char err[512];

	(void)state;
	st.members[2].match_index = 1000 - CONTROL_DRILL_LAG_MAX - 1;
	assert_int_equal(control_drill_check(&st, 1, false, "", err, sizeof err), -EHOSTDOWN);
	assert_non_null(strstr(err, "node 3 lags (match index 935, commit index 1000)"));
}

static void drill_is_refused_while_quarantined_or_busy(void **state)
{
	struct node_status st = cluster(3);
	char err[512];

	(void)state;
	assert_int_equal(control_drill_check(&st, 1, false, "target_unreachable", err, sizeof err), -EPERM);
	assert_non_null(strstr(err, "quarantined (target_unreachable)"));
	assert_int_equal(control_drill_check(&st, 1, true, "", err, sizeof err), -EBUSY);
	assert_non_null(strstr(err, "already in progress"));
}

static void spares_and_standbys_do_not_count(void **state)
{
	struct node_status st = cluster(4);
	char err[512];

	(void)state;
	st.members[3].role = NODE_SPARE; /* 3 voters + a spare */
	st.members[2].reachable = 0;
	assert_int_equal(control_drill_check(&st, 1, false, "", err, sizeof err), -EHOSTDOWN);
	assert_non_null(strstr(err, "2 of 3 voters"));
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(messages_pass_while_not_isolated, setup, teardown),
		cmocka_unit_test_setup_teardown(isolated_node_drops_received_messages_and_frees_them, setup, teardown),
		cmocka_unit_test_setup_teardown(isolated_node_sends_nothing_and_is_called_back_later, setup, teardown),
		cmocka_unit_test_setup_teardown(closing_calls_back_dropped_sends_as_cancelled, setup, teardown),
		cmocka_unit_test_setup_teardown(messages_without_an_address_are_not_sent, setup, teardown),
		cmocka_unit_test(drill_runs_on_a_healthy_cluster),
		cmocka_unit_test(drill_is_refused_without_a_ready_leader),
		cmocka_unit_test(drill_is_refused_with_a_voter_down),
		cmocka_unit_test(drill_is_refused_with_a_lagging_voter),
		cmocka_unit_test(drill_is_refused_while_quarantined_or_busy),
		cmocka_unit_test(spares_and_standbys_do_not_count),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
