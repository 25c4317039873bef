/*
 * tests/unit/test_ldap_poll_cursor.c -- the polling source's cursor
 * (sync/source/ldap_poll.h): GeneralizedTime, the same-second rule
 * (ldap_poll_take), and the text form, encoded and decoded strictly.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "sync/source/ldap_poll.h"

#define S(lit) (lit), (sizeof(lit) - 1)

static int64_t t(const char *s)
{
	int64_t v = 0;

	assert_int_equal(ldap_poll_time_parse(s, strlen(s), &v), 0);
	return v;
}

static void generalized_time_parses_every_form_rfc4517_allows(void **state)
{
	int64_t v;
	char out[16];

	(void)state;
	assert_int_equal(t("19700101000000Z"), 0);
	assert_int_equal(t("20261130054400Z"), 1796017440);
	assert_int_equal(t("20261130054400.123456Z"), 1796017440); /* the fraction dropped */
	assert_int_equal(t("20261130054400,5Z"), 1796017440);
	assert_int_equal(t("20261130054400.0Z"), 1796017440);      /* Active Directory's form */
	assert_int_equal(t("2026113005Z"), 1796014800);            /* minutes and seconds optional */
	assert_int_equal(t("20261130074400+0200"), 1796017440);    /* an offset is moved to UTC */
	assert_int_equal(t("20261130034400-02"), 1796017440);
	assert_int_equal(t("20240229000000Z"), 1709164800);        /* a leap day */
	ldap_poll_time_format(1796017440, out);
	assert_string_equal(out, "20261130054400Z");
	ldap_poll_time_format(0, out);
	assert_string_equal(out, "19700101000000Z");
	/* refused: local time, bad dates, junk */
	assert_int_equal(ldap_poll_time_parse(S("20261130054400"), &v), -EINVAL);
	assert_int_equal(ldap_poll_time_parse(S("20250229000000Z"), &v), -EINVAL);
	assert_int_equal(ldap_poll_time_parse(S("20261331000000Z"), &v), -EINVAL);
	assert_int_equal(ldap_poll_time_parse(S("20261130246000Z"), &v), -EINVAL);
	assert_int_equal(ldap_poll_time_parse(S("20261130054400.Z"), &v), -EINVAL);
	assert_int_equal(ldap_poll_time_parse(S("20261130054400Zx"), &v), -EINVAL);
	assert_int_equal(ldap_poll_time_parse(S("2026113005440aZ"), &v), -EINVAL);
	assert_int_equal(ldap_poll_time_parse(S(""), &v), -EINVAL);
}

static void same_second_entries_are_delivered_once_and_a_second_change_again(void **state)
{
	struct ldap_poll_cursor c;
	struct ldap_poll_scope_cursor *u;

	(void)state;
	ldap_poll_cursor_init(&c);
	u = &c.scope[0];
	/* a poll reads a and b, both changed at second 100 */
	assert_true(ldap_poll_take(u, 100, "a", 1));
	assert_true(ldap_poll_take(u, 100, "b", 2));
	assert_int_equal(u->ts, 100);
	assert_int_equal(u->n_seen, 2);
	/* the next poll's >= 100 reads them again, unchanged: nothing delivered */
	assert_false(ldap_poll_take(u, 100, "a", 1));
	assert_false(ldap_poll_take(u, 100, "b", 2));
	/* c changed later within second 100, after the first poll: delivered */
	assert_true(ldap_poll_take(u, 100, "c", 3));
	/* a changed a second time within second 100: its hash differs, delivered */
	assert_true(ldap_poll_take(u, 100, "a", 11));
	assert_false(ldap_poll_take(u, 100, "a", 11));
	assert_int_equal(u->n_seen, 3);
	/* a later second replaces the set */
	assert_true(ldap_poll_take(u, 101, "b", 4));
	assert_int_equal(u->ts, 101);
	assert_int_equal(u->n_seen, 1);
	assert_string_equal(u->seen[0].anchor, "b");
	/* an earlier second (a full read is unsorted): delivered, cursor unmoved */
	assert_true(ldap_poll_take(u, 50, "z", 9));
	assert_int_equal(u->ts, 101);
	assert_int_equal(u->n_seen, 1);
	/* the other scope is apart */
	assert_int_equal(c.scope[1].ts, -1);
	ldap_poll_cursor_free(&c);
}

static void cursor_round_trips_and_describes_itself(void **state)
{
	struct ldap_poll_cursor c, d;
	void *blob;
	size_t len;
	char out[200];

	(void)state;
	ldap_poll_cursor_init(&c);
	ldap_poll_take(&c.scope[0], t("20261130054400Z"), "5c8a1f5e-0f7e-4c8e-9b1d-3b4a2f6e7d10", 0xabcdef);
	ldap_poll_take(&c.scope[0], t("20261130054400Z"), "x", 0xffffffffffffffffULL);
	ldap_poll_take(&c.scope[0], t("20261130054400Z"), "y", 0);
	ldap_poll_cursor_encode(&c, &blob, &len);
	assert_memory_equal(blob,
			    "v1\nusers 20261130054400Z 3\n0000000000abcdef 5c8a1f5e-0f7e-4c8e-9b1d-3b4a2f6e7d10\n"
			    "ffffffffffffffff x\n0000000000000000 y\ngroups - 0\n",
			    len);
	assert_int_equal(ldap_poll_cursor_decode(&d, blob, len, NULL, 0), 0);
	assert_int_equal(d.scope[0].ts, c.scope[0].ts);
	assert_int_equal(d.scope[0].n_seen, 3);
	assert_int_equal(d.scope[1].ts, -1);
	/* decoded, the same-second rule goes on where it stopped */
	assert_false(ldap_poll_take(&d.scope[0], c.scope[0].ts, "x", 0xffffffffffffffffULL));
	assert_true(ldap_poll_take(&d.scope[0], c.scope[0].ts, "x", 1));
	assert_int_equal(ldap_poll_cursor_describe(blob, len, out, sizeof out), 0);
	assert_string_equal(out, "users: modifyTimestamp 20261130054400Z (+3 entries at that second); groups: not read yet");
	free(blob);
	ldap_poll_cursor_free(&c);
	ldap_poll_cursor_free(&d);
	/* empty: no cursor, both scopes read in full */
	assert_int_equal(ldap_poll_cursor_decode(&d, NULL, 0, NULL, 0), 0);
	assert_int_equal(d.scope[0].ts, -1);
}

static void decode_refuses_anything_but_the_format(void **state)
{
	static const char *const bad[] = {
		"",                                                        /* (length 0 is "no cursor"; see below) */
		"v2\nusers - 0\ngroups - 0\n",                             /* another version */
		"v1\nusers - 0\n",                                         /* groups missing */
		"v1\nusers - 0\ngroups - 0",                               /* no final newline */
		"v1\nusers - 0\ngroups - 0\nx\n",                          /* trailing */
		"v1\ngroups - 0\nusers - 0\n",                             /* order */
		"v1\nusers - 1\n0000000000000000 a\ngroups - 0\n",         /* a set without a second */
		"v1\nusers 20261130054400Z 2\n0000000000000000 a\ngroups - 0\n",      /* fewer entries */
		"v1\nusers 20261130054400Z 2\n0000000000000000 a\n0000000000000001 a\ngroups - 0\n", /* twice */
		"v1\nusers 20261130054400Z 1\n000000000000000A a\ngroups - 0\n",      /* upper-case hex */
		"v1\nusers 20261130054400Z 1\n000000000000000 a\ngroups - 0\n",       /* short hash */
		"v1\nusers 20261130054400Z 1\n0000000000000000 a b\ngroups - 0\n",    /* space in anchor */
		"v1\nusers 20261130054400Z 01\n0000000000000000 a\ngroups - 0\n",     /* leading zero */
		"v1\nusers 20261130054400.5Z 0\ngroups - 0\n",             /* not the canonical second */
		"v1\nusers 20261130054400+0000 0\ngroups - 0\n",
		"v1\nusers 20250229000000Z 0\ngroups - 0\n",               /* no such date */
		"v1\nusers 20261130235960Z 0\ngroups - 0\n",               /* a leap second: not canonical */
		"v1\nusers 2026113005.123Z 0\ngroups - 0\n",               /* an hour with a fraction */
		"v1\nusers 20261130054400Z 99999999999999999999\ngroups - 0\n",       /* huge count */
		"v1\nusers 20261130054400Z \ngroups - 0\n",
	};
	struct ldap_poll_cursor c;
	char err[200], out[64];

	(void)state;
	for (size_t i = 1; i < sizeof bad / sizeof bad[0]; i++) {
		err[0] = '\0';
		assert_int_equal(ldap_poll_cursor_decode(&c, bad[i], strlen(bad[i]), err, sizeof err), -EINVAL);
		assert_true(strncmp(err, "ldap-poll cursor: ", 18) == 0);
		assert_int_equal(c.scope[0].n_seen, 0);
		assert_int_equal(ldap_poll_cursor_describe(bad[i], strlen(bad[i]), out, sizeof out), -EINVAL);
	}
	/* an OpenLDAP source's cursor is not this source's */
	assert_int_equal(ldap_poll_cursor_decode(&c, S("v1\nusers=\ngroups=\n"), err, sizeof err), -EINVAL);
	assert_int_equal(ldap_poll_cursor_decode(&c, S("v1\nusers - 0\ngroups - 0\n"), err, sizeof err), 0);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(generalized_time_parses_every_form_rfc4517_allows),
		cmocka_unit_test(same_second_entries_are_delivered_once_and_a_second_change_again),
		cmocka_unit_test(cursor_round_trips_and_describes_itself),
		cmocka_unit_test(decode_refuses_anything_but_the_format),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
