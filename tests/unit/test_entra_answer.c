/*
 * tests/unit/test_entra_answer.c -- reading Graph's answers
 * (sync/target/entra_answer.c): SelectUniqueValue's "is it taken" page.
 */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>
#include <jansson.h>

#include "sync/target/entra_internal.h"

#define PROP "extension_0123456789abcdef0123456789abcdef_canopyAnchor"

static int taken(const char *page, const char *anchor)
{
	json_t *j = json_loads(page, 0, NULL);
	assert_non_null(j);
	int rc = entra__page_taken(j, PROP, anchor);
	json_decref(j);
	return rc;
}

static void test_page_taken_when_another_object_holds_the_value(void **state)
{
	(void)state;
	/* another anchor, or none (made by hand) */
	assert_int_equal(taken("{\"value\":[{\"id\":\"u1\",\"" PROP "\":\"other\"}]}", "mine"), 1);
	assert_int_equal(taken("{\"value\":[{\"id\":\"u1\"}]}", "mine"), 1);
	assert_int_equal(taken("{\"value\":[{\"id\":\"u1\",\"" PROP "\":42}]}", "mine"), 1);
}

static void test_page_not_taken_when_empty_or_held_by_our_own_object(void **state)
{
	(void)state;
	assert_int_equal(taken("{\"value\":[]}", "mine"), 0);
	/* a creation whose answer was lost, asked again: its own value is free */
	assert_int_equal(taken("{\"value\":[{\"id\":\"u1\",\"" PROP "\":\"mine\"}]}", "mine"), 0);
}

static void test_page_taken_refuses_an_answer_without_a_value_list(void **state)
{
	(void)state;
	assert_int_equal(taken("{}", "mine"), -EBADMSG);
	assert_int_equal(taken("{\"value\":{}}", "mine"), -EBADMSG);
	assert_int_equal(taken("[]", "mine"), -EBADMSG);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_page_taken_when_another_object_holds_the_value),
		cmocka_unit_test(test_page_not_taken_when_empty_or_held_by_our_own_object),
		cmocka_unit_test(test_page_taken_refuses_an_answer_without_a_value_list),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
