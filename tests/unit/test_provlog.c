/*
 * tests/unit/test_provlog.c -- sync/provlog.c: RFC 3339 times as instants,
 * and the modified attributes of an update (nested members, secrets masked,
 * bounded).
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>
#include <jansson.h>

#include "sync/provlog.h"

#include <sys/stat.h>
#include <unistd.h>

static void test_times_compare_as_instants_with_fractions_and_offsets(void **state)
{
	int64_t a, b, c, d;
	(void)state;
	assert_int_equal(provlog_parse_time("2026-11-24T12:00:05Z", &a), 0);
	assert_int_equal(provlog_parse_time("2026-11-24T12:00:05.250Z", &b), 0);
	assert_int_equal(provlog_parse_time("2026-11-24T13:00:05+01:00", &c), 0);
	assert_int_equal(provlog_parse_time("1970-01-01T00:00:00Z", &d), 0);
	assert_true(b - a == 250000);
	assert_true(a == c);
	assert_true(d == 0);
	assert_int_equal(provlog_parse_time("2026-11-24 12:00:05.25z", &b), 0);
	assert_true(b - a == 250000);
}

static void test_times_refuse_anything_else(void **state)
{
	static const char *const bad[] = {"", "garbage", "2026-11-24", "2026-11-24T12:00:05", "2026-11-24T12:00Z",
					  "2026-13-01T00:00:00Z", "2026-02-30T00:00:00Z", "2026-11-24T24:00:00Z",
					  "2026-11-24T12:00:05.Z", "2026-11-24T12:00:05Zjunk", "2026-11-24T12:00:05+0100",
					  "10m"};
	int64_t t;
	size_t i;
	(void)state;
	for (i = 0; i < sizeof bad / sizeof bad[0]; i++)
		assert_int_equal(provlog_parse_time(bad[i], &t), -22);
}

static void test_modified_lists_changed_members_and_masks_secrets(void **state)
{
	json_t *before = json_loads("{\"userName\":\"a\",\"name\":{\"givenName\":\"A\",\"familyName\":\"B\"},"
				    "\"password\":\"old-pw\",\"title\":\"t\"}", 0, NULL);
	json_t *now = json_loads("{\"userName\":\"a\",\"name\":{\"givenName\":\"A\",\"familyName\":\"C\"},"
				 "\"password\":\"new-pw\",\"mail\":\"m\"}", 0, NULL);
	json_t *m = provlog_modified(before, now);
	char *s = json_dumps(m, JSON_COMPACT);
	(void)state;
	assert_string_equal(s, "[{\"attr\":\"name.familyName\",\"old\":\"B\",\"new\":\"C\"},"
			       "{\"attr\":\"password\",\"old\":\"***\",\"new\":\"***\"},"
			       "{\"attr\":\"mail\",\"old\":null,\"new\":\"m\"},"
			       "{\"attr\":\"title\",\"old\":\"t\",\"new\":null}]");
	assert_null(strstr(s, "pw"));
	free(s);
	json_decref(m);
	m = provlog_modified(now, now);
	assert_int_equal(json_array_size(m), 0);
	json_decref(m);
	json_decref(before);
	json_decref(now);
}

static void test_modified_is_bounded(void **state)
{
	json_t *before = json_object(), *now = json_object(), *m, *last;
	char k[16], big[PROVLOG_VALUE_MAX + 10];
	int i;
	(void)state;
	for (i = 0; i < PROVLOG_MODIFIED_MAX + 5; i++) {
		snprintf(k, sizeof k, "a%d", i);
		json_object_set_new(now, k, json_integer(i));
	}
	memset(big, 'x', sizeof big - 1);
	big[sizeof big - 1] = '\0';
	json_object_set_new(before, "a0", json_string(big));
	m = provlog_modified(before, now);
	assert_int_equal(json_array_size(m), PROVLOG_MODIFIED_MAX + 1);
	last = json_array_get(m, PROVLOG_MODIFIED_MAX);
	assert_int_equal(json_integer_value(json_object_get(last, "more")), 5);
	assert_string_equal(json_string_value(json_object_get(json_array_get(m, 0), "old")), "(267 bytes)");
	json_decref(m);
	json_decref(before);
	json_decref(now);
}


/* Rotation: every line written is in exactly one file, whole; at most
 * keep + 1 files, each within max_bytes, 0600; a read walks them newest
 * first and stops at `limit`. */
static void test_rotation_keeps_every_line_whole_and_reads_across_files(void **state)
{
	char dir[] = "/tmp/provlog-rot-XXXXXX", name[1200], line[8192], anchor[32];
	struct provlog l;
	struct provlog_query q = {.limit = 10000};
	struct stat st;
	unsigned i, files = 0, lines = 0, next = 0;
	bool truncated;
	json_t *all, *e;
	size_t k;
	(void)state;

	assert_non_null(mkdtemp(dir));
	assert_int_equal(provlog_open(&l, dir, line, sizeof line), 0);
	provlog_set_rotation(&l, 4096, 3);
	for (i = 0; i < 200; i++) {
		struct provlog_entry en = {.cycle = 1, .change = i, .node = 1, .term = 1, .type = "user",
					   .action = "create", .result = "ok", .http_status = 201};
		snprintf(anchor, sizeof anchor, "a%05u", i);
		en.anchor = anchor;
		provlog_write(&l, &en);
	}
	provlog_close(&l);
	for (i = 0; i <= 5; i++) {
		FILE *f;
		if (i == 0)
			snprintf(name, sizeof name, "%s/provisioning.log", dir);
		else
			snprintf(name, sizeof name, "%s/provisioning.log.%u", dir, i);
		if (stat(name, &st) != 0)
			continue;
		files++;
		assert_true(i <= 3);
		assert_true(st.st_size <= 4096);
		assert_int_equal(st.st_mode & 0777, 0600);
		f = fopen(name, "r");
		assert_non_null(f);
		while (fgets(line, sizeof line, f) != NULL) {
			json_t *o = json_loads(line, 0, NULL);
			assert_non_null(o); /* whole lines only */
			lines++;
			json_decref(o);
		}
		fclose(f);
	}
	assert_int_equal(files, 4);
	snprintf(name, sizeof name, "%s/provisioning.log", dir);
	all = provlog_read(name, &q, &truncated);
	assert_false(truncated);
	assert_int_equal(json_array_size(all), lines);
	/* oldest first, consecutive up to the newest (nothing lost in the window) */
	json_array_foreach(all, k, e) {
		unsigned n = (unsigned)atoi(json_string_value(json_object_get(e, "anchor")) + 1);
		if (k > 0)
			assert_int_equal(n, next);
		next = n + 1;
	}
	assert_int_equal(next, 200);
	json_decref(all);
	q.limit = 5;
	all = provlog_read(name, &q, &truncated);
	assert_true(truncated);
	assert_int_equal(json_array_size(all), 5);
	json_decref(all);
	for (i = 0; i <= 3; i++) {
		if (i == 0)
			snprintf(name, sizeof name, "%s/provisioning.log", dir);
		else
			snprintf(name, sizeof name, "%s/provisioning.log.%u", dir, i);
		unlink(name);
	}
	rmdir(dir);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_times_compare_as_instants_with_fractions_and_offsets),
		cmocka_unit_test(test_times_refuse_anything_else),
		cmocka_unit_test(test_modified_lists_changed_members_and_masks_secrets),
		cmocka_unit_test(test_modified_is_bounded),
		cmocka_unit_test(test_rotation_keeps_every_line_whole_and_reads_across_files),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
