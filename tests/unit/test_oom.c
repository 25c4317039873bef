/*
 * tests/unit/test_oom.c -- the one out-of-memory policy (common/xalloc.h):
 * an allocation that fails aborts the process with one line naming the call
 * site, instead of going on with a value that reads as "absent" or "empty".
 * Each case runs in a child process with a failure injected
 * (xalloc_fail_after) and must die of SIGABRT having said "out of memory":
 *   - xmalloc and xcheck themselves;
 *   - strmap_put (the engine's maps: a failed insert must never read as
 *     "not there");
 *   - applying a batch to the replicated state (never half-applied);
 *   - encoding a record for the replicated state (never dropped).
 * And text_json (sync/text_json.h): free text that is not valid UTF-8
 * becomes a JSON string (U+FFFD for each bad byte), never NULL, so that
 * jansson's NULL can be taken for out of memory everywhere else.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "common/xalloc.h"
#include "raft/fsm.h"
#include "sync/state/object.h"
#include "sync/state/state.h"
#include "sync/strmap.h"
#include "sync/text_json.h"

/* Run fn in a child whose stderr is captured; expect SIGABRT and the line. */
static void expect_oom_abort(void (*fn)(void), const char *where)
{
	int fds[2], status;
	char out[2048];
	ssize_t n, got = 0;
	pid_t pid;

	assert_int_equal(pipe(fds), 0);
	pid = fork();
	assert_true(pid >= 0);
	if (pid == 0) {
		close(fds[0]);
		dup2(fds[1], 2);
		signal(SIGABRT, SIG_DFL);
		fn();
		_exit(0); /* went on: the test fails below */
	}
	close(fds[1]);
	while ((n = read(fds[0], out + got, sizeof out - 1 - (size_t)got)) > 0)
		got += n;
	out[got] = '\0';
	close(fds[0]);
	assert_int_equal(waitpid(pid, &status, 0), pid);
	if (!WIFSIGNALED(status) || WTERMSIG(status) != SIGABRT)
		fail_msg("%s: expected an abort, the child %s %d; it said: %s", where,
			 WIFEXITED(status) ? "exited" : "died of signal",
			 WIFEXITED(status) ? WEXITSTATUS(status) : WTERMSIG(status), out);
	if (strstr(out, "canopy: out of memory") == NULL || strstr(out, where) == NULL)
		fail_msg("%s: the abort does not say where memory ran out: %s", where, out);
}

static void do_xmalloc(void)
{
	xalloc_fail_after(1);
	free(xmalloc(16));
}

static void do_xcheck(void)
{
	xalloc_fail_after(1);
	json_decref(xcheck(json_object()));
}

static void do_strmap(void)
{
	struct strmap m;
	char key[32];
	int i;

	strmap_init(&m, NULL);
	/* The 70th insert grows the table (64 buckets): make that fail. */
	for (i = 0; i < 64; i++) {
		snprintf(key, sizeof key, "anchor-%d", i);
		if (strmap_put(&m, key, (void *)1) != 0)
			_exit(3);
	}
	xalloc_fail_after(1);
	if (strmap_put(&m, "one-more", (void *)1) != 0)
		_exit(2); /* reported instead of aborting: the old behaviour */
	strmap_clear(&m);
}

static void do_apply(void)
{
	struct state s;
	struct state_batch b;
	struct raft_buffer buf;
	struct fsm_machine *m;
	const void *payload;
	size_t len;
	uint16_t type, version;
	void *result = NULL;
	char err[200];

	state_init(&s);
	m = state_machine(&s);
	state_batch_init(&b);
	state_batch_cursor(&b, "cookie", 6);
	state_batch_put(&b, "o:a", 3, "{}", 2);
	if (state_batch_encode(&b, &buf) != 0)
		_exit(3);
	state_batch_close(&b);
	if (fsm_decode(&buf, m->max_version, &type, &version, &payload, &len) != 0)
		_exit(3);
	xalloc_fail_after(1);
	if (m->apply(m->data, type, version, payload, len, &result, err, sizeof err) != 0)
		_exit(2);
	_exit(0);
}

static void do_encode(void)
{
	struct object_record r = {.type = OBJECT_USER, .target_id = "id-1", .dn = "uid=a,dc=example,dc=com"};
	char *buf;
	size_t len;

	xalloc_fail_after(1);
	if (object_record_encode(&r, &buf, &len) != 0)
		_exit(2);
	free(buf);
}

static void test_xmalloc_aborts(void **state)
{
	(void)state;
	expect_oom_abort(do_xmalloc, "test_oom.c");
}

static void test_xcheck_aborts(void **state)
{
	(void)state;
	expect_oom_abort(do_xcheck, "json_object()");
}

static void test_strmap_put_aborts_never_reports(void **state)
{
	struct strmap m;
	char key[32];
	int i;

	(void)state;
	/* without a failure it always says 0 */
	strmap_init(&m, NULL);
	for (i = 0; i < 1000; i++) {
		snprintf(key, sizeof key, "k%d", i);
		assert_int_equal(strmap_put(&m, key, (void *)1), 0);
	}
	assert_int_equal(m.count, 1000);
	strmap_clear(&m);
	expect_oom_abort(do_strmap, "strmap.c");
}

static void test_state_apply_aborts(void **state)
{
	(void)state;
	expect_oom_abort(do_apply, "state.c");
}

static void test_record_encode_aborts(void **state)
{
	(void)state;
	expect_oom_abort(do_encode, "object.c");
}

static void test_text_json(void **state)
{
	json_t *j;

	(void)state;
	j = text_json("plain ascii");
	assert_string_equal(json_string_value(j), "plain ascii");
	json_decref(j);
	j = text_json("caf\xc3\xa9"); /* valid: unchanged */
	assert_string_equal(json_string_value(j), "caf\xc3\xa9");
	json_decref(j);
	j = text_json("cut \xc3"); /* a character cut at a buffer's end */
	assert_non_null(j);
	assert_string_equal(json_string_value(j), "cut \xef\xbf\xbd");
	json_decref(j);
	j = text_json("a\xff" "b\xed\xa0\x80" "c"); /* a bad byte, a surrogate */
	assert_string_equal(json_string_value(j), "a\xef\xbf\xbd" "b\xef\xbf\xbd\xef\xbf\xbd\xef\xbf\xbd" "c");
	json_decref(j);
	j = text_json_or_null(NULL);
	assert_true(json_is_null(j));
	assert_true(text_is_utf8("\xf0\x9f\x8c\xb2", 4));
	assert_false(text_is_utf8("\xc0\xaf", 2)); /* overlong */
	assert_false(text_is_utf8("\xf4\x90\x80\x80", 4)); /* above U+10FFFF */
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_xmalloc_aborts),
		cmocka_unit_test(test_xcheck_aborts),
		cmocka_unit_test(test_strmap_put_aborts_never_reports),
		cmocka_unit_test(test_state_apply_aborts),
		cmocka_unit_test(test_record_encode_aborts),
		cmocka_unit_test(test_text_json),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
