/*
 * tests/unit/test_tcp_timeout.c -- raft/tcp_timeout.h: every raft connection,
 * connected or accepted, carries TCP_USER_TIMEOUT (docs/known-issues.md: after
 * heavy loss libraft's connections sat in retransmission backoff for 20 s).
 * Runs libraft's real TCP transport on loopback.
 */
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cmocka.h>

#include "raft/tcp_timeout.h"

struct fx {
	uv_loop_t loop;
	struct raft_uv_transport inner, outer;
	struct raft_uv_connect req;
	uv_stream_t *accepted, *connected;
	raft_id accepted_id;
	int connect_status;
	bool closed;
};

static unsigned user_timeout(uv_stream_t *s)
{
	uv_os_fd_t fd;
	unsigned v = 0;
	socklen_t len = sizeof v;

	assert_int_equal(uv_fileno((uv_handle_t *)s, &fd), 0);
	assert_int_equal(getsockopt(fd, IPPROTO_TCP, TCP_USER_TIMEOUT, &v, &len), 0);
	return v;
}

static void on_accept(struct raft_uv_transport *t, raft_id id, const char *address, uv_stream_t *stream)
{
	struct fx *f = t->data;

	(void)address;
	f->accepted = stream;
	f->accepted_id = id;
}

static void on_connect(struct raft_uv_connect *req, uv_stream_t *stream, int status)
{
	struct fx *f = req->data;

	f->connected = stream;
	f->connect_status = status;
}

static void on_stream_closed(uv_handle_t *h)
{
	free(h);
}

static void on_transport_closed(struct raft_uv_transport *t)
{
	struct fx *f = t->data;
	f->closed = true;
}

static int free_port(void)
{
	struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
	socklen_t len = sizeof a;
	int fd = socket(AF_INET, SOCK_STREAM, 0);

	assert_true(fd >= 0);
	assert_int_equal(bind(fd, (struct sockaddr *)&a, sizeof a), 0);
	assert_int_equal(getsockname(fd, (struct sockaddr *)&a, &len), 0);
	close(fd);
	return ntohs(a.sin_port);
}

static void both_ends_of_a_raft_connection_carry_the_user_timeout(void **state)
{
	struct fx f;
	char address[64];
	uint64_t until;

	(void)state;
	memset(&f, 0, sizeof f);
	snprintf(address, sizeof address, "127.0.0.1:%d", free_port());
	assert_int_equal(uv_loop_init(&f.loop), 0);
	assert_int_equal(raft_uv_tcp_init(&f.inner, &f.loop), 0);
	tcp_timeout_wrap(&f.outer, &f.inner, 1234);
	f.outer.data = &f; /* what raft_uv does with its transport */
	assert_int_equal(f.outer.init(&f.outer, 1, address), 0);
	assert_int_equal(f.outer.listen(&f.outer, on_accept), 0);
	f.req.data = &f;
	f.connect_status = -1;
	assert_int_equal(f.outer.connect(&f.outer, &f.req, 2, address, on_connect), 0);
	until = uv_hrtime() + 5000000000ull;
	while ((f.connected == NULL || f.accepted == NULL) && uv_hrtime() < until)
		uv_run(&f.loop, UV_RUN_ONCE);
	assert_int_equal(f.connect_status, 0);
	assert_non_null(f.connected);
	assert_non_null(f.accepted);
	assert_int_equal(f.accepted_id, 1); /* the connecting server (this one) said who it is */
	assert_int_equal(user_timeout(f.connected), 1234);
	assert_int_equal(user_timeout(f.accepted), 1234);
	assert_int_equal(tcp_timeout_failures(&f.outer), 0);

	uv_close((uv_handle_t *)f.connected, on_stream_closed);
	uv_close((uv_handle_t *)f.accepted, on_stream_closed);
	f.outer.close(&f.outer, on_transport_closed);
	while (!f.closed)
		uv_run(&f.loop, UV_RUN_ONCE);
	uv_run(&f.loop, UV_RUN_DEFAULT);
	tcp_timeout_close(&f.outer);
	raft_uv_tcp_close(&f.inner);
	assert_int_equal(uv_loop_close(&f.loop), 0);
}

static void a_stream_that_is_not_tcp_is_left_alone(void **state)
{
	uv_loop_t loop;
	uv_pipe_t p;

	(void)state;
	assert_int_equal(uv_loop_init(&loop), 0);
	assert_int_equal(uv_pipe_init(&loop, &p, 0), 0);
	assert_int_not_equal(tcp_timeout_apply((uv_stream_t *)&p, 1000), 0);
	uv_close((uv_handle_t *)&p, NULL);
	uv_run(&loop, UV_RUN_DEFAULT);
	assert_int_equal(uv_loop_close(&loop), 0);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(both_ends_of_a_raft_connection_carry_the_user_timeout),
		cmocka_unit_test(a_stream_that_is_not_tcp_is_left_alone),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
