/*
 * tests/unit/test_lastwrite.c -- what a node last wrote per object
 * (sync/engine/lastwrite.h): a full cache forgets one object per write, the
 * one written longest ago, never all of them at once; an entry is trusted
 * only under the hash it was written with; clearing frees everything (ASan
 * checks it).
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>

#include <cmocka.h>

#include "sync/engine/lastwrite.h"

static void put(struct lastwrite *w, const char *anchor, uint64_t hash, const char *value)
{
	json_t *attrs = json_pack("{s:s}", "displayName", value);

	lastwrite_put(w, anchor, hash, attrs);
	json_decref(attrs); /* the cache holds its own copy */
}

static const char *value_of(const struct lastwrite *w, const char *anchor, uint64_t hash)
{
	const json_t *a = lastwrite_get(w, anchor, hash);

	return a ? json_string_value(json_object_get(a, "displayName")) : NULL;
}

static void a_full_cache_forgets_only_the_object_written_longest_ago(void **state)
{
	struct lastwrite w;
	char anchor[32];

	(void)state;
	lastwrite_init(&w, 1000);
	for (int i = 0; i <= 1000; i++) { /* one more than it holds */
		snprintf(anchor, sizeof anchor, "u%d", i);
		put(&w, anchor, (uint64_t)i, anchor);
	}
	assert_int_equal(lastwrite_count(&w), 1000);
	assert_null(value_of(&w, "u0", 0));
	for (int i = 1; i <= 1000; i++) { /* emptied when full, these were gone */
		snprintf(anchor, sizeof anchor, "u%d", i);
		assert_string_equal(value_of(&w, anchor, (uint64_t)i), anchor);
	}
	lastwrite_close(&w);
}

static void a_rewritten_object_counts_from_its_latest_write(void **state)
{
	struct lastwrite w;

	(void)state;
	lastwrite_init(&w, 3);
	put(&w, "a", 1, "a1");
	put(&w, "b", 1, "b1");
	put(&w, "c", 1, "c1");
	put(&w, "a", 2, "a2"); /* a is now the newest: b goes next */
	assert_string_equal(value_of(&w, "a", 2), "a2");
	assert_null(value_of(&w, "a", 1)); /* written since with another hash */
	put(&w, "d", 1, "d1");
	assert_null(value_of(&w, "b", 1));
	assert_string_equal(value_of(&w, "a", 2), "a2");
	assert_string_equal(value_of(&w, "c", 1), "c1");
	assert_string_equal(value_of(&w, "d", 1), "d1");
	assert_int_equal(lastwrite_count(&w), 3);
	lastwrite_close(&w);
}

static void a_forgotten_object_leaves_room_and_can_come_back(void **state)
{
	struct lastwrite w;

	(void)state;
	lastwrite_init(&w, 2);
	put(&w, "a", 1, "a1");
	lastwrite_del(&w, "a");
	assert_null(value_of(&w, "a", 1));
	lastwrite_del(&w, "never"); /* harmless */
	put(&w, "b", 1, "b1");
	put(&w, "a", 3, "a3"); /* drops a's stale slot, not the new a */
	assert_string_equal(value_of(&w, "a", 3), "a3");
	assert_string_equal(value_of(&w, "b", 1), "b1");
	put(&w, "c", 1, "c1");
	assert_null(value_of(&w, "b", 1));
	assert_string_equal(value_of(&w, "a", 3), "a3");
	lastwrite_close(&w);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(a_full_cache_forgets_only_the_object_written_longest_ago),
		cmocka_unit_test(a_rewritten_object_counts_from_its_latest_write),
		cmocka_unit_test(a_forgotten_object_leaves_room_and_can_come_back),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
