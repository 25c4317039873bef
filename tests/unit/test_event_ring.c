/*
 * tests/unit/test_event_ring.c -- the worker -> loop event ring shared by the
 * sources (sync/source/event_ring.h): order across the wrap-around, the
 * bound, the peak, and that clearing frees what is left (ASan checks it).
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>

#include <cmocka.h>

#include "common/xalloc.h"
#include "sync/source/event_ring.h"

static struct source_event *ev(const char *anchor)
{
	struct source_event *e = xcalloc(1, sizeof *e);
	e->kind = SOURCE_ENTRY;
	e->anchor = xstrdup(anchor);
	return e;
}

static void ring_keeps_order_across_the_wrap(void **state)
{
	struct source_ring r;
	char name[2] = "a";
	(void)state;

	source_ring_init(&r, 3);
	for (int round = 0; round < 5; round++) {
		for (int i = 0; i < 3; i++) {
			assert_false(source_ring_full(&r));
			name[0] = (char)('a' + i);
			source_ring_put(&r, ev(name));
		}
		assert_true(source_ring_full(&r));
		for (int i = 0; i < 3; i++) {
			struct source_event *e = source_ring_take(&r);
			assert_non_null(e);
			assert_int_equal(e->anchor[0], 'a' + i);
			source_event_free(e);
		}
		assert_null(source_ring_take(&r));
		/* shift the head so the next round wraps */
		source_ring_put(&r, ev("x"));
		source_event_free(source_ring_take(&r));
	}
	assert_int_equal(r.peak, 3);
	source_ring_free(&r);
}

static void ring_clear_and_free_release_what_is_left(void **state)
{
	struct source_ring r;
	(void)state;

	source_ring_init(&r, 4);
	source_ring_put(&r, ev("a"));
	source_ring_put(&r, ev("b"));
	source_ring_clear(&r);
	assert_null(source_ring_take(&r));
	source_ring_put(&r, ev("c"));
	assert_int_equal(r.peak, 2);
	source_ring_free(&r); /* frees "c" */
	source_ring_free(&r); /* twice is harmless */
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(ring_keeps_order_across_the_wrap),
		cmocka_unit_test(ring_clear_and_free_release_what_is_left),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
