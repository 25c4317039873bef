/*
 * tests/unit/test_cursor_readable.c -- the committed cursor for people
 * (status sync.cursor_readable): the OpenLDAP source's RFC 4533 cookies with
 * their CSNs decoded (openldap_cursor_describe), the AD source's DirSync
 * cookie's USN high-water mark (ad_cursor_describe); and the replicated sync
 * figures behind the rest of status "sync" (sync/state/figures.h).
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "sync/source/ad.h"
#include "sync/source/openldap.h"
#include "sync/state/figures.h"

#define S(lit) (lit), (sizeof(lit) - 1)

static void openldap_cookies_show_each_csn_with_its_time_and_server_id(void **state)
{
	char out[512];

	(void)state;
	/* users: "rid=000,sid=001,csn=20261130043512.123456Z#000000#001#000000"; groups: none yet */
	assert_int_equal(openldap_cursor_describe(
				 S("v1\nusers=cmlkPTAwMCxzaWQ9MDAxLGNzbj0yMDI2MTEzMDA0MzUxMi4xMjM0NTZaIzAwMDAwMCMwMDEjMDAwMDAw\n"
				   "groups=\n"),
				 out, sizeof out),
			 0);
	assert_string_equal(out, "users: csn 20261130043512.123456Z#000000#001#000000 (2026-11-30T04:35:12Z, sid 001); "
				 "groups: none yet");
	/* two servers' CSNs in one cookie (multi-provider: "csn=A;B") */
	assert_int_equal(
		openldap_cursor_describe(
			S("v1\nusers=cmlkPTAwMCxjc249MjAyNjExMzAwNDM1MTIuMTIzNDU2WiMwMDAwMDAjMDAxIzAwMDAwMDsyMDI2MTEyOTEy"
			  "MDAwMC4wMDAwMDFaIzAwMDAwMiMwMDIjMDAwMDAw\n"),
			out, sizeof out),
		0);
	assert_string_equal(out, "users: csn 20261130043512.123456Z#000000#001#000000 (2026-11-30T04:35:12Z, sid 001), "
				 "csn 20261129120000.000001Z#000002#002#000000 (2026-11-29T12:00:00Z, sid 002)");
	/* a cookie without a CSN says so */
	assert_int_equal(openldap_cursor_describe(S("v1\nusers=cmlkPTAwMA==\n"), out, sizeof out), 0);
	assert_string_equal(out, "users: no csn (7 bytes)");
	/* cut to the buffer, still a string */
	assert_int_equal(openldap_cursor_describe(S("v1\nusers=cmlkPTAwMA==\n"), out, 8), 0);
	assert_string_equal(out, "users: ");
}

static void what_is_not_an_openldap_cursor_is_not_described(void **state)
{
	char out[128];

	(void)state;
	assert_int_equal(openldap_cursor_describe(S("ad1\ncookie=\n"), out, sizeof out), -EINVAL);
	assert_string_equal(out, "");
	assert_int_equal(openldap_cursor_describe(S("v1\nusers=!!!!\n"), out, sizeof out), -EINVAL);
	assert_int_equal(openldap_cursor_describe(S("v1\nusers=cmlkPTAwMA=="), out, sizeof out), -EINVAL);
	assert_int_equal(openldap_cursor_describe(S("v1\n=cmlkPTAwMA==\n"), out, sizeof out), -EINVAL);
	assert_int_equal(openldap_cursor_describe(NULL, 0, out, sizeof out), -EINVAL);
}

static void a_dirsync_cookie_shows_its_usn_high_water_mark(void **state)
{
	char out[256];

	(void)state;
	/* "MSDS", 3, NTTIME of 2026-11-30T04:35:12Z, 0, 0, 0, {41234, 0, 41234}, GUID 00..0f */
	assert_int_equal(ad_cursor_describe(S("ad1\ncookie=TVNEUwMAAAAAAPsvhIDdAQAAAAAAAAAAAAAAABKhAAAAAAAAAAAAAAAAAAA"
					      "SoQAAAAAAAAABAgMEBQYHCAkKCwwNDg8=\n"),
					    out, sizeof out),
			 0);
	assert_string_equal(out,
			    "DirSync usn 41234 (2026-11-30T04:35:12Z, invocation 03020100-0504-0706-0809-0a0b0c0d0e0f)");
	assert_int_equal(ad_cursor_describe(S("ad1\ncookie=\n"), out, sizeof out), 0);
	assert_string_equal(out, "no DirSync cookie yet");
	/* a cookie of another shape (here "MSDS" alone), another source's cursor */
	assert_int_equal(ad_cursor_describe(S("ad1\ncookie=TVNEUw==\n"), out, sizeof out), -EINVAL);
	assert_int_equal(ad_cursor_describe(S("v1\nusers=\n"), out, sizeof out), -EINVAL);
}

static void figures_round_trip_and_count_the_rate_over_the_last_minute(void **state)
{
	struct sync_figures f, g;
	uint64_t t = 1796013312000ULL; /* a multiple of the bucket */
	char *buf, err[128];
	size_t len;

	(void)state;
	memset(&f, 0, sizeof f);
	figures_add(&f, t, 30, 40, 1, true);
	figures_add(&f, t + 25000, 30, 30, 0, false);
	assert_int_equal(f.objects, 60);
	assert_int_equal(f.ops, 70);
	assert_int_equal(f.errors, 1);
	assert_int_equal(f.batches, 2);
	assert_int_equal(f.last_export_ms, t + 25000);
	assert_int_equal(f.cursor_at_ms, t);
	assert_true(figures_rate(&f, t + 30000) == 1.0); /* 60 objects in the last 60 s */
	assert_true(figures_rate(&f, t + 65000) == 0.5); /* the first bucket left the window */
	assert_true(figures_rate(&f, t + 200000) == 0.0);
	/* a batch a minute later drops the old buckets from the record */
	figures_add(&f, t + 120000, 6, 6, 0, true);
	assert_int_equal(f.n_recent, 1);
	assert_true(figures_rate(&f, t + 120000) == 0.1);

	figures_encode(&f, &buf, &len);
	assert_int_equal(figures_decode(buf, len, &g, err, sizeof err), 0);
	assert_memory_equal(&f, &g, sizeof f);
	free(buf);
}

static void figures_of_a_newer_version_or_the_wrong_shape_are_not_read(void **state)
{
	struct sync_figures g;
	char err[128];

	(void)state;
	assert_int_equal(figures_decode(S("{\"v\":2,\"objects\":1}"), &g, err, sizeof err), -EPROTO);
	assert_non_null(strstr(err, "version 2"));
	assert_int_equal(figures_decode(S("{\"v\":1,\"objects\":-1}"), &g, err, sizeof err), -EPROTO);
	assert_int_equal(figures_decode(S("{\"v\":1,\"recent\":[[1]]}"), &g, err, sizeof err), -EPROTO);
	assert_int_equal(figures_decode(S("[1]"), &g, err, sizeof err), -EPROTO);
	assert_int_equal(g.objects, 0);
	/* unknown fields are a newer canopy's additions: ignored */
	assert_int_equal(figures_decode(S("{\"v\":1,\"objects\":3,\"later\":true}"), &g, err, sizeof err), 0);
	assert_int_equal(g.objects, 3);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(openldap_cookies_show_each_csn_with_its_time_and_server_id),
		cmocka_unit_test(what_is_not_an_openldap_cursor_is_not_described),
		cmocka_unit_test(a_dirsync_cookie_shows_its_usn_high_water_mark),
		cmocka_unit_test(figures_round_trip_and_count_the_rate_over_the_last_minute),
		cmocka_unit_test(figures_of_a_newer_version_or_the_wrong_shape_are_not_read),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
