/*
 * tests/unit/test_http_multi.c -- the HTTP engine (sync/target/http_multi.h)
 * against a real local HTTP server: a libmicrohttpd daemon started by each
 * test (its own thread), and for "a server that does not answer" a
 * listening socket nobody accepts on (the kernel completes the connection,
 * the request is sent, no answer ever comes). Each test drives its own uv
 * loop until its callbacks have run (a watchdog turns a hang into a
 * failure), closes the engine and checks that the loop closes
 * (uv_loop_close == 0: every handle closed).
 */
#include <errno.h>
#include <netinet/in.h>
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>
#include <curl/curl.h>
#include <microhttpd.h>
#include <uv.h>

#include "sync/target/http_multi.h"

#define BIG_LEN 100000
#define WATCHDOG_MS 10000

/* ---- the server --------------------------------------------------------------- */

static enum MHD_Result answer(void *cls, struct MHD_Connection *c, const char *url, const char *method,
			      const char *version, const char *upload, size_t *upload_len, void **con_cls)
{
	static char big[BIG_LEN];
	struct MHD_Response *r;
	enum MHD_Result ret;
	unsigned status = MHD_HTTP_OK;

	(void)cls, (void)method, (void)version, (void)upload;
	if (*con_cls == NULL) { /* the headers: the body (if any) comes next */
		*con_cls = c;
		return MHD_YES;
	}
	if (*upload_len > 0) { /* swallow the request body */
		*upload_len = 0;
		return MHD_YES;
	}
	if (strcmp(url, "/big") == 0) {
		memset(big, 'x', sizeof big);
		r = MHD_create_response_from_buffer(sizeof big, big, MHD_RESPMEM_PERSISTENT);
	} else {
		r = MHD_create_response_from_buffer(5, (void *)"hello", MHD_RESPMEM_PERSISTENT);
	}
	if (strcmp(url, "/throttled") == 0) {
		status = 429;
		MHD_add_response_header(r, "Retry-After", "7");
		MHD_add_response_header(r, "Location", "http://example.test/logs?id=1");
	} else if (strcmp(url, "/throttled-long") == 0) {
		status = 503;
		MHD_add_response_header(r, "Retry-After", "99999");
	}
	ret = MHD_queue_response(c, status, r);
	MHD_destroy_response(r);
	return ret;
}

struct server {
	struct MHD_Daemon *d;
	char url[64];       /* http://127.0.0.1:PORT */
	int silent_fd;      /* listening, never accepting */
	char silent_url[64];
};

static int setup(void **state)
{
	struct server *s = calloc(1, sizeof *s);
	struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
	socklen_t alen = sizeof a;
	const union MHD_DaemonInfo *info;

	assert_non_null(s);
	s->d = MHD_start_daemon(MHD_USE_INTERNAL_POLLING_THREAD, 0, NULL, NULL, answer, NULL, MHD_OPTION_SOCK_ADDR,
				(struct sockaddr *)&a, MHD_OPTION_END);
	assert_non_null(s->d);
	info = MHD_get_daemon_info(s->d, MHD_DAEMON_INFO_BIND_PORT);
	assert_non_null(info);
	snprintf(s->url, sizeof s->url, "http://127.0.0.1:%u", (unsigned)info->port);

	s->silent_fd = socket(AF_INET, SOCK_STREAM, 0);
	assert_true(s->silent_fd >= 0);
	a.sin_port = 0;
	assert_int_equal(bind(s->silent_fd, (struct sockaddr *)&a, sizeof a), 0);
	assert_int_equal(listen(s->silent_fd, 16), 0);
	assert_int_equal(getsockname(s->silent_fd, (struct sockaddr *)&a, &alen), 0);
	snprintf(s->silent_url, sizeof s->silent_url, "http://127.0.0.1:%u/", (unsigned)ntohs(a.sin_port));
	*state = s;
	return 0;
}

static int teardown(void **state)
{
	struct server *s = *state;

	MHD_stop_daemon(s->d);
	close(s->silent_fd);
	free(s);
	return 0;
}

/* ---- the loop ------------------------------------------------------------------- */

struct seen {
	int calls;
	bool on_loop_thread;
	struct http_answer a; /* a copy, body taken */
	bool freed_in_cb;
};

static pthread_t loop_thread;

static void on_done(struct http_req *r, void *data)
{
	struct seen *s = data;

	s->calls++;
	s->on_loop_thread = pthread_equal(pthread_self(), loop_thread);
	s->a = *http_req_answer(r);
	s->a.body = http_answer_take_body(r);
	if (s->freed_in_cb)
		http_req_free(r);
}

static void on_watchdog(uv_timer_t *h)
{
	bool *fired = h->data;
	*fired = true;
}

static void on_tick(uv_timer_t *h)
{
	(void)h; /* wakes the loop: the conditions below are looked at again */
}

/* Run loop until *flag is nonzero (set on the loop, or by another thread
 * with an atomic store); fails after WATCHDOG_MS. */
static void run_until(uv_loop_t *loop, const int *flag)
{
	uv_timer_t dog, tick;
	bool fired = false;

	uv_timer_init(loop, &dog);
	uv_timer_init(loop, &tick);
	dog.data = &fired;
	uv_timer_start(&dog, on_watchdog, WATCHDOG_MS, 0);
	uv_timer_start(&tick, on_tick, 10, 10);
	while (!__atomic_load_n(flag, __ATOMIC_ACQUIRE) && !fired)
		uv_run(loop, UV_RUN_ONCE);
	uv_close((uv_handle_t *)&dog, NULL);
	uv_close((uv_handle_t *)&tick, NULL);
	uv_run(loop, UV_RUN_NOWAIT);
	assert_false(fired);
}

static void on_closed(void *data)
{
	*(int *)data = 1;
}

/* Close m, wait for its done callback, and check that nothing is left. */
static void close_and_check(uv_loop_t *loop, struct http_multi *m)
{
	int closed = 0;

	http_multi_close(m, on_closed, &closed);
	run_until(loop, &closed);
	uv_run(loop, UV_RUN_DEFAULT);
	assert_int_equal(uv_loop_close(loop), 0);
}

static struct http_multi *engine(uv_loop_t *loop)
{
	struct http_multi *m = NULL;
	char err[256];

	loop_thread = pthread_self();
	assert_int_equal(uv_loop_init(loop), 0);
	assert_int_equal(http_multi_new(loop, 4, &m, err, sizeof err), 0);
	return m;
}

static struct http_req *start(struct http_multi *m, const char *method, const char *url, unsigned timeout_ms,
			      size_t max_body, struct seen *seen)
{
	struct http_request rq = {
		.method = method,
		.url = url,
		.headers = curl_slist_append(NULL, "Accept: text/plain"),
		.body = strcmp(method, "GET") == 0 ? NULL : "{\"a\":1}",
		.timeout_ms = timeout_ms,
		.max_body = max_body,
		.retry_after_max_s = 3600,
	};
	struct http_req *r = NULL;
	char err[256];

	assert_int_equal(http_multi_start(m, &rq, on_done, seen, &r, err, sizeof err), 0);
	assert_non_null(r);
	return r;
}

/* ---- the tests --------------------------------------------------------------------- */

static void answer_and_body_arrive_on_the_loop(void **state)
{
	struct server *s = *state;
	uv_loop_t loop;
	struct http_multi *m = engine(&loop);
	struct seen seen = {0}, again = {0};
	char url[128];

	snprintf(url, sizeof url, "%s/ok", s->url);
	struct http_req *r = start(m, "POST", url, 5000, 1024, &seen);
	assert_int_equal(seen.calls, 0); /* never from inside start */
	run_until(&loop, &seen.calls);
	assert_int_equal(seen.calls, 1);
	assert_true(seen.on_loop_thread);
	assert_int_equal(seen.a.cc, CURLE_OK);
	assert_int_equal(seen.a.status, 200);
	assert_int_equal(seen.a.len, 5);
	assert_string_equal(seen.a.body, "hello");
	assert_false(seen.a.too_big);
	assert_int_equal(seen.a.retry_after_s, -1);
	assert_string_equal(seen.a.location, "");
	assert_int_equal(seen.a.connects, 1);
	http_req_free(r);
	free(seen.a.body);

	/* the next request reuses the cached connection (keep-alive) */
	r = start(m, "GET", url, 5000, 1024, &again);
	run_until(&loop, &again.calls);
	assert_int_equal(again.a.status, 200);
	assert_int_equal(again.a.connects, 0);
	http_req_free(r);
	free(again.a.body);
	close_and_check(&loop, m);
}

static void body_over_the_cap_sets_too_big(void **state)
{
	struct server *s = *state;
	uv_loop_t loop;
	struct http_multi *m = engine(&loop);
	struct seen seen = {.freed_in_cb = true}, whole = {.freed_in_cb = true};
	char url[128];

	snprintf(url, sizeof url, "%s/big", s->url);
	start(m, "GET", url, 5000, BIG_LEN - 1, &seen);
	start(m, "GET", url, 5000, BIG_LEN, &whole);
	run_until(&loop, &seen.calls);
	run_until(&loop, &whole.calls);
	assert_true(seen.a.too_big);
	assert_int_equal(seen.a.cc, CURLE_WRITE_ERROR);
	assert_true(seen.a.len < BIG_LEN);
	assert_string_not_equal(seen.a.err, "");
	/* exactly at the cap is still taken */
	assert_false(whole.a.too_big);
	assert_int_equal(whole.a.cc, CURLE_OK);
	assert_int_equal(whole.a.len, BIG_LEN);
	free(seen.a.body);
	free(whole.a.body);
	close_and_check(&loop, m);
}

static void retry_after_and_location_are_read(void **state)
{
	struct server *s = *state;
	uv_loop_t loop;
	struct http_multi *m = engine(&loop);
	struct seen seen = {.freed_in_cb = true}, capped = {.freed_in_cb = true};
	char url[128];

	snprintf(url, sizeof url, "%s/throttled", s->url);
	start(m, "GET", url, 5000, 1024, &seen);
	snprintf(url, sizeof url, "%s/throttled-long", s->url);
	start(m, "DELETE", url, 5000, 1024, &capped);
	run_until(&loop, &seen.calls);
	run_until(&loop, &capped.calls);
	assert_int_equal(seen.a.status, 429);
	assert_int_equal(seen.a.retry_after_s, 7);
	assert_string_equal(seen.a.location, "http://example.test/logs?id=1");
	assert_int_equal(capped.a.status, 503);
	assert_int_equal(capped.a.retry_after_s, 3600); /* retry_after_max_s */
	free(seen.a.body);
	free(capped.a.body);
	close_and_check(&loop, m);
}

static void retry_after_line_forms(void **state)
{
	char line[96];
	struct tm tm;
	time_t later = time(NULL) + 120;

	(void)state;
	assert_int_equal(http_retry_after("Retry-After: 5\r\n", 16, 3600), 5);
	assert_int_equal(http_retry_after("retry-after:12", 14, 3600), 12);
	assert_int_equal(http_retry_after("Retry-After: 7200\r\n", 19, 3600), 3600);
	assert_int_equal(http_retry_after("Retry-After: -3\r\n", 17, 3600), -1);
	assert_int_equal(http_retry_after("Retry-After: soon\r\n", 19, 3600), -1);
	assert_int_equal(http_retry_after("Retry-After: \r\n", 15, 3600), -1);
	assert_int_equal(http_retry_after("Location: 5\r\n", 13, 3600), -1);
	/* an HTTP-date (RFC 9110 §5.6.7): two minutes ahead, and one in the past */
	gmtime_r(&later, &tm);
	size_t n = strftime(line, sizeof line, "Retry-After: %a, %d %b %Y %H:%M:%S GMT\r\n", &tm);
	long v = http_retry_after(line, n, 3600);
	assert_true(v >= 115 && v <= 120);
	assert_int_equal(http_retry_after(line, n, 60), 60);
	const char *past = "Retry-After: Wed, 21 Oct 2015 07:28:00 GMT\r\n";
	assert_int_equal(http_retry_after(past, strlen(past), 3600), 0);
}

static void timeout_fires_against_a_server_that_does_not_answer(void **state)
{
	struct server *s = *state;
	uv_loop_t loop;
	struct http_multi *m = engine(&loop);
	struct seen seen = {.freed_in_cb = true};
	uint64_t t0 = uv_hrtime();

	start(m, "GET", s->silent_url, 300, 1024, &seen);
	run_until(&loop, &seen.calls);
	uint64_t ms = (uv_hrtime() - t0) / 1000000;
	assert_int_equal(seen.calls, 1);
	assert_int_equal(seen.a.cc, CURLE_OPERATION_TIMEDOUT);
	assert_int_equal(seen.a.status, 0);
	assert_false(seen.a.cancelled);
	assert_string_not_equal(seen.a.err, "");
	assert_true(ms >= 290); /* not before its time */
	free(seen.a.body);
	close_and_check(&loop, m);
}

static void cancel_completes_the_request_once(void **state)
{
	struct server *s = *state;
	uv_loop_t loop;
	struct http_multi *m = engine(&loop);
	struct seen seen = {0}, other = {.freed_in_cb = true};
	char url[128];

	struct http_req *r = start(m, "GET", s->silent_url, 0, 1024, &seen);
	snprintf(url, sizeof url, "%s/ok", s->url);
	start(m, "GET", url, 5000, 1024, &other);
	http_req_cancel(r);
	assert_int_equal(seen.calls, 0); /* from the loop, not from inside cancel */
	http_req_cancel(r);
	run_until(&loop, &seen.calls);
	run_until(&loop, &other.calls); /* the loop ran on: no second call */
	http_req_cancel(r);              /* finished: nothing */
	uv_run(&loop, UV_RUN_NOWAIT);
	assert_int_equal(seen.calls, 1);
	assert_true(seen.a.cancelled);
	assert_int_equal(seen.a.cc, CURLE_ABORTED_BY_CALLBACK);
	assert_int_equal(other.calls, 1);
	assert_int_equal(other.a.status, 200); /* the others go on */
	http_req_free(r);
	free(seen.a.body);
	free(other.a.body);
	close_and_check(&loop, m);
}

static void close_with_requests_in_flight_closes_every_handle(void **state)
{
	struct server *s = *state;
	uv_loop_t loop;
	struct http_multi *m = engine(&loop);
	struct seen seen[4] = {{.freed_in_cb = true}, {.freed_in_cb = true}, {.freed_in_cb = true}, {0}};
	struct http_req *kept;
	char url[128], err[256];
	int closed = 0;

	for (int i = 0; i < 3; i++)
		start(m, "GET", s->silent_url, 0, 1024, &seen[i]);
	snprintf(url, sizeof url, "%s/ok", s->url);
	kept = start(m, "GET", url, 5000, 1024, &seen[3]);
	/* let every request reach its connection, so that sockets are polled */
	for (int i = 0; i < 20; i++)
		uv_run(&loop, UV_RUN_NOWAIT);
	http_multi_close(m, on_closed, &closed);
	/* every request has completed once, from inside close: the silent
	 * ones cancelled, the other answered before or cancelled now */
	for (int i = 0; i < 4; i++) {
		assert_int_equal(seen[i].calls, 1);
		assert_true(i == 3 || seen[i].a.cancelled);
		free(seen[i].a.body);
	}
	/* closing: nothing new starts */
	struct http_request rq = {.method = "GET", .url = url, .headers = curl_slist_append(NULL, "X: y")};
	struct http_req *late = NULL;
	assert_int_equal(http_multi_start(m, &rq, on_done, &seen[3], &late, err, sizeof err), -ESHUTDOWN);
	assert_null(late);
	run_until(&loop, &closed);
	uv_run(&loop, UV_RUN_DEFAULT);
	assert_int_equal(uv_loop_close(&loop), 0);
	http_req_free(kept); /* valid after the engine is gone */
}

struct caller {
	struct http_multi *m;
	const char *url;
	struct http_answer a;
	int rc;
	int done; /* __atomic */
};

static void *call_thread(void *arg)
{
	struct caller *c = arg;
	struct http_request rq = {
		.method = "POST",
		.url = c->url,
		.headers = curl_slist_append(NULL, "Content-Type: application/json"),
		.body = "{}",
		.timeout_ms = 5000,
		.max_body = 1024,
		.retry_after_max_s = 3600,
	};

	c->rc = http_multi_call(c->m, &rq, &c->a);
	__atomic_store_n(&c->done, 1, __ATOMIC_RELEASE);
	return NULL;
}

static void call_from_a_thread_waits_for_the_answer_on_the_loop(void **state)
{
	struct server *s = *state;
	uv_loop_t loop;
	struct http_multi *m = engine(&loop);
	char url[128];
	pthread_t th;

	snprintf(url, sizeof url, "%s/throttled", s->url);
	struct caller c = {.m = m, .url = url};
	assert_int_equal(pthread_create(&th, NULL, call_thread, &c), 0);
	run_until(&loop, &c.done);
	pthread_join(th, NULL);
	assert_int_equal(c.rc, 0);
	assert_int_equal(c.a.cc, CURLE_OK);
	assert_int_equal(c.a.status, 429);
	assert_int_equal(c.a.retry_after_s, 7);
	assert_string_equal(c.a.body, "hello");
	free(c.a.body);

	/* a call waiting for a silent server is released by cancel_all */
	struct caller w = {.m = m, .url = s->silent_url};
	assert_int_equal(pthread_create(&th, NULL, call_thread, &w), 0);
	for (int i = 0; i < 200 && !__atomic_load_n(&w.done, __ATOMIC_ACQUIRE); i++) /* until it is on the wire */
		uv_run(&loop, UV_RUN_NOWAIT), usleep(5000);
	http_multi_cancel_all(m);
	run_until(&loop, &w.done);
	pthread_join(th, NULL);
	assert_true(w.a.cancelled);
	assert_int_equal(w.a.cc, CURLE_ABORTED_BY_CALLBACK);
	free(w.a.body);
	close_and_check(&loop, m);
}

static void perform_blocks_until_the_answer_without_a_loop(void **state)
{
	struct server *s = *state;
	struct http_answer a;
	char url[128], err[256];

	snprintf(url, sizeof url, "%s/throttled", s->url);
	struct http_request rq = {.method = "GET", .url = url, .timeout_ms = 5000, .max_body = 1024,
				  .retry_after_max_s = 3600};
	assert_int_equal(http_perform(&rq, &a, err, sizeof err), 0);
	assert_int_equal(a.cc, CURLE_OK);
	assert_int_equal(a.status, 429);
	assert_int_equal(a.retry_after_s, 7);
	assert_string_equal(a.body, "hello");
	free(a.body);
	/* refused before any I/O (from libcurl's timer callback): it still
	 * returns, it does not wait in the loop's poll */
	rq.url = "nope://x";
	assert_int_equal(http_perform(&rq, &a, err, sizeof err), 0);
	assert_int_equal(a.cc, CURLE_UNSUPPORTED_PROTOCOL);
	assert_int_equal(a.status, 0);
	free(a.body);
	/* and a timeout, the same way */
	rq.url = s->silent_url;
	rq.timeout_ms = 200;
	assert_int_equal(http_perform(&rq, &a, err, sizeof err), 0);
	assert_int_equal(a.cc, CURLE_OPERATION_TIMEDOUT);
	free(a.body);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(answer_and_body_arrive_on_the_loop, setup, teardown),
		cmocka_unit_test_setup_teardown(body_over_the_cap_sets_too_big, setup, teardown),
		cmocka_unit_test_setup_teardown(retry_after_and_location_are_read, setup, teardown),
		cmocka_unit_test(retry_after_line_forms),
		cmocka_unit_test_setup_teardown(timeout_fires_against_a_server_that_does_not_answer, setup, teardown),
		cmocka_unit_test_setup_teardown(cancel_completes_the_request_once, setup, teardown),
		cmocka_unit_test_setup_teardown(close_with_requests_in_flight_closes_every_handle, setup, teardown),
		cmocka_unit_test_setup_teardown(call_from_a_thread_waits_for_the_answer_on_the_loop, setup, teardown),
		cmocka_unit_test_setup_teardown(perform_blocks_until_the_answer_without_a_loop, setup, teardown),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
