/*
 * tests/unit/test_secret.c -- sync/secret.c: the rules every secret file
 * meets (regular file, not group/world readable, size, one line without
 * control characters, one trailing LF or CRLF dropped).
 */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cmocka.h>

#include "sync/secret.h"

static char dir[64], file[128], err[512];

static int setup(void **state)
{
	(void)state;
	snprintf(dir, sizeof dir, "/tmp/canopy-secret.XXXXXX");
	return mkdtemp(dir) ? 0 : -1;
}

static int teardown(void **state)
{
	char cmd[128];
	(void)state;
	snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
	return system(cmd) == 0 ? 0 : -1;
}

static void put(const char *data, size_t len, mode_t mode)
{
	FILE *f;
	snprintf(file, sizeof file, "%s/s", dir);
	unlink(file);
	f = fopen(file, "w");
	assert_non_null(f);
	assert_int_equal(fwrite(data, 1, len, f), len);
	assert_int_equal(fclose(f), 0);
	assert_int_equal(chmod(file, mode), 0);
}

static int rd(char **out)
{
	*out = NULL;
	return secret_read(file, out, err, sizeof err);
}

static void test_reads_and_strips_one_newline(void **state)
{
	char *s;
	(void)state;
	put("tok en\n", 7, 0600);
	assert_int_equal(rd(&s), 0);
	assert_string_equal(s, "tok en");
	secret_free(s);
	put("tok\r\n", 5, 0400);
	assert_int_equal(rd(&s), 0);
	assert_string_equal(s, "tok");
	secret_free(s);
	put("tok", 3, 0600);
	assert_int_equal(rd(&s), 0);
	assert_string_equal(s, "tok");
	secret_free(s);
}

static void test_refuses_control_characters(void **state)
{
	static const char *const bad[] = {"a\r\nX-Injected: 1", "a\nb", "a\rb", "a\tb", "a\x7f", "\n\n", "a\n\n"};
	char *s;
	size_t i;
	(void)state;
	for (i = 0; i < sizeof bad / sizeof bad[0]; i++) {
		put(bad[i], strlen(bad[i]), 0600);
		assert_int_equal(rd(&s), -EINVAL);
		assert_null(s);
		assert_null(strstr(err, bad[i])); /* never the secret itself */
	}
	put("a\0b", 3, 0600);
	assert_int_equal(rd(&s), -EINVAL);
	assert_non_null(strstr(err, "control character"));
}

static void test_refuses_empty_open_large_and_odd_files(void **state)
{
	char *s, *big, fifo[160];
	(void)state;
	put("", 0, 0600);
	assert_int_equal(rd(&s), -EINVAL);
	assert_non_null(strstr(err, "is empty"));
	put("\n", 1, 0600);
	assert_int_equal(rd(&s), -EINVAL);
	put("secret-value", 12, 0640);
	assert_int_equal(rd(&s), -EACCES);
	assert_non_null(strstr(err, "chmod 600"));
	assert_null(strstr(err, "secret-value"));
	put("secret-value", 12, 0604);
	assert_int_equal(rd(&s), -EACCES);
	big = malloc(SECRET_MAX + 1);
	assert_non_null(big);
	memset(big, 'x', SECRET_MAX + 1);
	put(big, SECRET_MAX + 1, 0600);
	free(big);
	assert_int_equal(rd(&s), -EFBIG);
	snprintf(fifo, sizeof fifo, "%s/fifo", dir);
	assert_int_equal(mkfifo(fifo, 0600), 0);
	assert_int_equal(secret_read(fifo, &s, err, sizeof err), -EINVAL); /* and does not block */
	assert_non_null(strstr(err, "not a regular file"));
	assert_int_equal(secret_read(dir, &s, err, sizeof err), -EINVAL);
	snprintf(fifo, sizeof fifo, "%s/none", dir);
	assert_int_equal(secret_read(fifo, &s, err, sizeof err), -ENOENT);
	assert_non_null(strstr(err, fifo));
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_reads_and_strips_one_newline),
		cmocka_unit_test(test_refuses_control_characters),
		cmocka_unit_test(test_refuses_empty_open_large_and_odd_files),
	};
	return cmocka_run_group_tests(tests, setup, teardown);
}
