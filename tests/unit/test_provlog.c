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

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_times_compare_as_instants_with_fractions_and_offsets),
		cmocka_unit_test(test_times_refuse_anything_else),
		cmocka_unit_test(test_modified_lists_changed_members_and_masks_secrets),
		cmocka_unit_test(test_modified_is_bounded),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
