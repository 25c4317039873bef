/*
 * tests/unit/test_log.c -- agent/log.c: the text (logfmt) and json line
 * formats, and the rate limit for streams of like errors (the first line at
 * once, then one summary of what was held back).
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>
#include <jansson.h>

#include "agent/log.h"

static char path[64];
static int saved_fd = -1;

/* stderr goes to a temporary file for the test; lines() reads it back. */
static int setup(void **state)
{
	int fd;
	(void)state;
	snprintf(path, sizeof path, "/tmp/canopy-log.XXXXXX");
	fd = mkstemp(path);
	if (fd < 0)
		return -1;
	fflush(stderr);
	saved_fd = dup(2);
	dup2(fd, 2);
	close(fd);
	log_setup(7, LOG_DEBUG);
	return 0;
}

static int teardown(void **state)
{
	(void)state;
	fflush(stderr);
	dup2(saved_fd, 2);
	close(saved_fd);
	unlink(path);
	log_set_format(LOG_FORMAT_TEXT);
	return 0;
}

/* Everything written so far; clears the file. */
static char *take(void)
{
	FILE *f;
	long n;
	char *b;

	fflush(stderr);
	f = fopen(path, "r");
	assert_non_null(f);
	fseek(f, 0, SEEK_END);
	n = ftell(f);
	rewind(f);
	b = calloc(1, (size_t)n + 1);
	assert_int_equal(fread(b, 1, (size_t)n, f), (size_t)n);
	fclose(f);
	assert_int_equal(ftruncate(2, 0), 0);
	lseek(2, 0, SEEK_SET);
	return b;
}

static int count_lines(const char *s)
{
	int n = 0;
	for (; *s; s++)
		n += *s == '\n';
	return n;
}

static void test_text_format_is_logfmt(void **state)
{
	char q[64], *out;
	(void)state;
	log_set_format(LOG_FORMAT_TEXT);
	log_info("leader known", "leader=%d term=%d why=%s", 2, 5, log_quote(q, sizeof q, "a \"b\""));
	out = take();
	assert_int_equal(count_lines(out), 1);
	assert_memory_equal(out, "time=", 5);
	assert_non_null(strstr(out, " level=info node=7 msg=\"leader known\" leader=2 term=5 why=\"a \\\"b\\\"\"\n"));
	free(out);
}

static void test_json_format_is_one_object_per_line_with_the_fields(void **state)
{
	char q[64], *out;
	json_t *o;
	(void)state;
	log_set_format(LOG_FORMAT_JSON);
	log_warn("leader lost", "was=%d term=%d detail=%s state=%s", 3, 12, log_quote(q, sizeof q, "x = \"y\" \\ z"),
		 "ok");
	log_info("stopped", NULL);
	out = take();
	assert_int_equal(count_lines(out), 2);
	o = json_loadb(out, (size_t)(strchr(out, '\n') - out), 0, NULL);
	assert_non_null(o);
	assert_string_equal(json_string_value(json_object_get(o, "level")), "warn");
	assert_int_equal(json_integer_value(json_object_get(o, "node")), 7);
	assert_string_equal(json_string_value(json_object_get(o, "msg")), "leader lost");
	assert_int_equal(json_integer_value(json_object_get(o, "was")), 3);
	assert_int_equal(json_integer_value(json_object_get(o, "term")), 12);
	assert_string_equal(json_string_value(json_object_get(o, "detail")), "x = \"y\" \\ z");
	assert_string_equal(json_string_value(json_object_get(o, "state")), "ok");
	assert_true(json_is_string(json_object_get(o, "time")));
	json_decref(o);
	o = json_loads(strchr(out, '\n') + 1, 0, NULL);
	assert_non_null(o);
	assert_string_equal(json_string_value(json_object_get(o, "msg")), "stopped");
	json_decref(o);
	free(out);
}

static void test_limited_lines_first_at_once_then_one_summary(void **state)
{
	struct log_limit lim = {.window_s = 60};
	char *out;
	int i;
	(void)state;
	log_set_format(LOG_FORMAT_TEXT);
	for (i = 0; i < 5; i++)
		log_limited(&lim, LOG_ERROR, "the target refused an object", "n=%d", i);
	out = take();
	assert_int_equal(count_lines(out), 1);
	assert_non_null(strstr(out, "level=error node=7 msg=\"the target refused an object\" n=0\n"));
	free(out);
	log_limit_flush(&lim, LOG_ERROR, "the target refused an object");
	out = take();
	assert_int_equal(count_lines(out), 1);
	assert_non_null(strstr(out, "suppressed=4 window_s=60 summary=\"4 more in the last 60 s\""));
	free(out);
	/* the window is closed: the next one is written at once, nothing to sum up */
	log_limited(&lim, LOG_ERROR, "the target refused an object", "n=%d", 5);
	log_limit_flush(&lim, LOG_ERROR, "the target refused an object");
	out = take();
	assert_int_equal(count_lines(out), 1);
	assert_non_null(strstr(out, " n=5\n"));
	free(out);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_text_format_is_logfmt, setup, teardown),
		cmocka_unit_test_setup_teardown(test_json_format_is_one_object_per_line_with_the_fields, setup,
						teardown),
		cmocka_unit_test_setup_teardown(test_limited_lines_first_at_once_then_one_summary, setup, teardown),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
