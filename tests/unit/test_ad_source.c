/*
 * tests/unit/test_ad_source.c -- the Active Directory source's pure pieces:
 * GUID formatting, the DirSync response control, the cursor, RFC 4515
 * filters on merged entries, and the scope decisions (type and base).
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "sync/source/ad_internal.h"

static void guid_is_canonical_mixed_endian_lowercase(void **state)
{
	/* MS-DTYP 2.3.4.3's example GUID as stored in objectGUID */
	const unsigned char b[16] = {0xff, 0x19, 0x96, 0x6f, 0x86, 0x8b, 0x11, 0xd0,
				     0xb4, 0x2d, 0x00, 0xc0, 0x4f, 0xc9, 0x64, 0xff};
	/* docs/active-directory.md: objectGUID:: AGdiIMDeikydqTTsmSlnaw== is
	 * the GUID in the tombstone's DN, 20626700-dec0-4c8a-9da9-34ec9929676b */
	const unsigned char t[16] = {0x00, 0x67, 0x62, 0x20, 0xc0, 0xde, 0x8a, 0x4c,
				     0x9d, 0xa9, 0x34, 0xec, 0x99, 0x29, 0x67, 0x6b};
	char out[37];

	(void)state;
	assert_int_equal(ad_guid_format(b, 16, out), 0);
	assert_string_equal(out, "6f9619ff-8b86-d011-b42d-00c04fc964ff");
	assert_int_equal(ad_guid_format(t, 16, out), 0);
	assert_string_equal(out, "20626700-dec0-4c8a-9da9-34ec9929676b");
	assert_int_equal(ad_guid_format(b, 15, out), -EINVAL);
	assert_int_equal(ad_guid_format(NULL, 16, out), -EINVAL);
}

static void dirsync_response_control_parsed_and_garbage_refused(void **state)
{
	/* SEQUENCE { INTEGER 0, INTEGER 0, OCTET STRING "MSDS" } */
	const unsigned char ok[] = {0x30, 0x0c, 0x02, 0x01, 0x00, 0x02, 0x01, 0x00, 0x04, 0x04, 'M', 'S', 'D', 'S'};
	const unsigned char more[] = {0x30, 0x08, 0x02, 0x01, 0x01, 0x02, 0x01, 0x00, 0x04, 0x00};
	const unsigned char trailing[] = {0x30, 0x08, 0x02, 0x01, 0x01, 0x02, 0x01, 0x00, 0x04, 0x00, 0x00};
	const unsigned char bad[] = {0x30, 0x03, 0x02, 0x01};
	void *c;
	size_t n;
	bool m = true;

	(void)state;
	assert_int_equal(ad_dirsync_response_parse(ok, sizeof ok, &m, &c, &n), 0);
	assert_false(m);
	assert_int_equal(n, 4);
	assert_memory_equal(c, "MSDS", 4);
	free(c);
	assert_int_equal(ad_dirsync_response_parse(more, sizeof more, &m, &c, &n), 0);
	assert_true(m);
	assert_null(c);
	assert_int_equal(ad_dirsync_response_parse(trailing, sizeof trailing, &m, &c, &n), -EPROTO);
	assert_int_equal(ad_dirsync_response_parse(bad, sizeof bad, &m, &c, &n), -EPROTO);
	assert_int_equal(ad_dirsync_response_parse(NULL, 0, &m, &c, &n), -EPROTO);
}

static void cursor_round_trips_and_refuses_other_sources(void **state)
{
	const unsigned char cookie[] = {'M', 'S', 'D', 'S', 3, 0, 0, 0, 0xff};
	void *blob, *back;
	size_t len, blen;
	char err[256];

	(void)state;
	ad_cursor_encode(cookie, sizeof cookie, &blob, &len);
	assert_int_equal(ad_cursor_decode(blob, len, &back, &blen, err, sizeof err), 0);
	assert_int_equal(blen, sizeof cookie);
	assert_memory_equal(back, cookie, sizeof cookie);
	free(back);
	free(blob);
	assert_int_equal(ad_cursor_decode(NULL, 0, &back, &blen, err, sizeof err), 0);
	assert_null(back);
	/* the OpenLDAP source's cursor: a clear error, never a full sync */
	const char ol[] = "v1\nusers=AAAA\ngroups=\n";
	assert_int_equal(ad_cursor_decode(ol, strlen(ol), &back, &blen, err, sizeof err), -EINVAL);
	assert_non_null(strstr(err, "not an Active Directory source cursor"));
	const char garbage[] = "ad1\ncookie=A*==\n";
	assert_int_equal(ad_cursor_decode(garbage, strlen(garbage), &back, &blen, err, sizeof err), -EINVAL);
}

static struct object_attr attr(const char *name, char **v, size_t n)
{
	return (struct object_attr){(char *)name, v, n};
}

static void filters_match_merged_entries(void **state)
{
	char *oc[] = {"top", "person", "organizationalPerson", "user"}, *uac[] = {"514"}, *mail[] = {"a.b@Corp.Example"};
	struct object_attr a[] = {attr("objectClass", oc, 4), attr("userAccountControl", uac, 1), attr("mail", mail, 1)};
	struct ad_filter *f;
	char err[128];
	struct {
		const char *f;
		bool want;
	} cases[] = {
		{"(objectClass=user)", true},
		{"(&(objectClass=user)(!(objectClass=computer)))", true},
		{"(OBJECTCLASS=USER)", true},
		{"(userAccountControl:1.2.840.113556.1.4.803:=2)", true},
		{"(!(userAccountControl:1.2.840.113556.1.4.803:=2))", false},
		{"(userAccountControl:1.2.840.113556.1.4.804:=3)", true},
		{"(userAccountControl>=600)", false},
		{"(userAccountControl<=600)", true},
		{"(mail=*@corp.example)", true},
		{"(mail=a*b*example)", true},
		{"(mail=b*)", false},
		{"(telephoneNumber=*)", false},
		{"(|(telephoneNumber=*)(mail=*))", true},
		{"(mail=a.b\\40corp.example)", true},
	};

	(void)state;
	for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
		assert_int_equal(ad_filter_parse(cases[i].f, &f, err, sizeof err), 0);
		if (ad_filter_match(f, a, 3) != cases[i].want)
			fail_msg("%s: want %d", cases[i].f, cases[i].want);
		ad_filter_free(f);
	}
	const char *bad[] = {"", "objectClass=user", "(objectClass=user", "(&)", "(a:1.2.3:=1)", "(x=\\zz)", "(a=b))"};
	for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
		if (ad_filter_parse(bad[i], &f, err, sizeof err) != -EINVAL)
			fail_msg("%s was accepted", bad[i]);
		assert_null(f);
	}
}

static void scope_type_and_base(void **state)
{
	char *user[] = {"top", "user"}, *comp[] = {"top", "user", "computer"}, *grp[] = {"top", "group"};
	struct object_attr u = attr("objectClass", user, 2), c = attr("objectClass", comp, 3), g = attr("objectClass", grp, 2);
	char *n = ad__dn_norm("CN=A,OU=People, DC=Canopy,DC=Test");

	(void)state;
	assert_int_equal(ad__obj_kind(&u, 1), OBJECT_USER);
	assert_int_equal(ad__obj_kind(&c, 1), OBJECT_UNKNOWN);
	assert_int_equal(ad__obj_kind(&g, 1), OBJECT_GROUP);
	assert_int_equal(ad__obj_kind(NULL, 0), OBJECT_UNKNOWN);
	assert_string_equal(n, "cn=a,ou=people,dc=canopy,dc=test");
	assert_true(ad__dn_under(n, "ou=people,dc=canopy,dc=test"));
	assert_true(ad__dn_under("ou=people,dc=canopy,dc=test", "ou=people,dc=canopy,dc=test"));
	assert_false(ad__dn_under(n, "ople,dc=canopy,dc=test"));
	assert_false(ad__dn_under("cn=a,ou=moved,dc=canopy,dc=test", "ou=people,dc=canopy,dc=test"));
	free(n);
}

static void range_options_parsed_and_malformed_refused(void **state)
{
	size_t blen;
	uint32_t lo, hi;
	bool last;
	char next[64];

	(void)state;
	assert_int_equal(ad_range_parse("member;range=0-1499", &blen, &lo, &hi, &last), 1);
	assert_int_equal(blen, 6);
	assert_int_equal(lo, 0);
	assert_int_equal(hi, 1499);
	assert_false(last);
	assert_int_equal(ad_range_parse("member;Range=1500-*", &blen, &lo, &hi, &last), 1);
	assert_int_equal(lo, 1500);
	assert_true(last);
	assert_int_equal(ad_range_parse("proxyAddresses;binary;range=3-4", &blen, &lo, &hi, &last), 1);
	assert_int_equal(blen, 14);
	assert_int_equal(ad_range_parse("member", &blen, &lo, &hi, &last), 0);
	assert_int_equal(ad_range_parse("member;binary", &blen, &lo, &hi, &last), 0);
	const char *bad[] = {"member;range=", "member;range=-5", "member;range=5-", "member;range=9-3",
			     "member;range=1-2x", "member;range=x-*", "member;range=0-99999999999", ";range=0-1",
			     "member;range=0-*x"};
	for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++)
		assert_int_equal(ad_range_parse(bad[i], &blen, &lo, &hi, &last), -EINVAL);

	assert_int_equal(ad_range_next("member;range=0-1499", next, sizeof next), 1);
	assert_string_equal(next, "member;range=1500-*");
	assert_int_equal(ad_range_next("member;range=1500-*", next, sizeof next), 0);
	assert_int_equal(ad_range_next("member", next, sizeof next), 0);
	assert_int_equal(ad_range_next("member;range=0-4294967295", next, sizeof next), -EINVAL);
	assert_int_equal(ad_range_next("member;range=0-1499", next, 8), -EINVAL);
}

/* A fake DC holding `total` values of member, answering at most `max` per
 * read the way a Windows DC does (MaxValRange): "member;range=LO-HI", the
 * last part "member;range=LO-*". `skew` shifts the low bound it answers. */
struct fake_dc {
	unsigned total, max, reads;
	int skew;
	char asked[8][64];
};

static int fake_fetch(void *ctx, const char *dn, const char *want, char **got, char ***values, size_t *n_values,
		      char *msg, size_t len)
{
	struct fake_dc *dc = ctx;
	size_t blen;
	uint32_t lo, hi;
	bool last;
	char d[64];

	(void)dn;
	(void)msg;
	(void)len;
	if (dc->reads < 8)
		snprintf(dc->asked[dc->reads], sizeof dc->asked[0], "%s", want);
	dc->reads++;
	assert_int_equal(ad_range_parse(want, &blen, &lo, &hi, &last), 1);
	assert_true(last); /* the source asks for "the rest" */
	lo = (uint32_t)((int)lo + dc->skew);
	unsigned end = lo + dc->max < dc->total ? lo + dc->max : dc->total;
	if (end == dc->total)
		snprintf(d, sizeof d, "member;range=%u-*", lo);
	else
		snprintf(d, sizeof d, "member;range=%u-%u", lo, end - 1);
	*got = strdup(d);
	*values = calloc(end - lo + 1, sizeof **values);
	for (unsigned i = lo; i < end; i++) {
		char v[64];
		snprintf(v, sizeof v, "CN=u%05u,OU=Bulk,DC=x", i);
		(*values)[i - lo] = strdup(v);
	}
	*n_values = end - lo;
	return 0;
}

/* The base read's first answer: member;range=0-(max-1) with the first values. */
static void first_part(struct ad_entry *e, unsigned max)
{
	char d[64];

	memset(e, 0, sizeof *e);
	e->dn = strdup("CN=big,OU=Groups,DC=x");
	e->member_full = true;
	e->member_set = calloc(max + 1, sizeof *e->member_set);
	for (unsigned i = 0; i < max; i++) {
		snprintf(d, sizeof d, "CN=u%05u,OU=Bulk,DC=x", i);
		e->member_set[e->n_set++] = strdup(d);
	}
	snprintf(d, sizeof d, "member;range=0-%u", max - 1);
	e->partial = calloc(1, sizeof *e->partial);
	e->partial[e->n_partial++] = strdup(d);
}

static void ranged_members_are_read_to_the_end(void **state)
{
	struct fake_dc dc = {.total = 4000, .max = 1500};
	struct ad_entry e;
	char msg[256], want[64];

	(void)state;
	first_part(&e, 1500);
	assert_int_equal(ad__ranges_follow(&e, e.dn, fake_fetch, &dc, msg, sizeof msg), 0);
	assert_int_equal(dc.reads, 2);
	assert_string_equal(dc.asked[0], "member;range=1500-*");
	assert_string_equal(dc.asked[1], "member;range=3000-*");
	assert_int_equal(e.n_set, 4000);
	for (unsigned i = 0; i < 4000; i++) { /* every value once, in order */
		snprintf(want, sizeof want, "CN=u%05u,OU=Bulk,DC=x", i);
		assert_string_equal(e.member_set[i], want);
	}
	ad__entry_free(&e);
}

static void a_range_answer_with_a_hole_is_refused(void **state)
{
	struct fake_dc dc = {.total = 4000, .max = 1500, .skew = 1};
	struct ad_entry e;
	char msg[256];

	(void)state;
	first_part(&e, 1500);
	assert_int_equal(ad__ranges_follow(&e, e.dn, fake_fetch, &dc, msg, sizeof msg), -EPROTO);
	assert_non_null(strstr(msg, "member;range=1500-* of CN=big,OU=Groups,DC=x: the DC answered member;range=1501-"));
	ad__entry_free(&e);
}

/* One attribute's values through ad__attr_values; checks them and frees. */
static void attr_is(const char *name, const char *bytes, size_t len, const char *want)
{
	struct berval bv = {len, (char *)bytes}, *vals[] = {&bv, NULL};
	char **v = ad__attr_values(name, strlen(name), vals, 1);
	assert_string_equal(v[0], want);
	free(v[0]);
	free(v);
}

static void binary_attributes_reach_mappings_as_base64(void **state)
{
	(void)state;
	/* S-1-5-32-544: a known binary attribute, base64 (RFC 4648 §4) */
	static const char sid[] = "\x01\x02\0\0\0\0\0\x05\x20\0\0\0\x20\x02\0\0";
	static const char guid[] = "\xff\x19\x96\x6f\x86\x8b\x11\xd0\xb4\x2d\x00\xc0\x4f\xc9\x64\xff";
	attr_is("objectSid", sid, 16, "AQIAAAAAAAUgAAAAIAIAAA==");
	attr_is("OBJECTSID", sid, 16, "AQIAAAAAAAUgAAAAIAIAAA==");
	attr_is("thumbnailPhoto", "abc", 3, "YWJj"); /* a known one: base64 even when it reads as text */
	/* a GUID as GUID text, like objectGUID; not 16 bytes: base64 */
	attr_is("mS-DS-ConsistencyGuid", guid, 16, "6f9619ff-8b86-d011-b42d-00c04fc964ff");
	attr_is("ms-ds-consistencyguid", "abc", 3, "YWJj");
	/* any other attribute: text as it is, a value that is not text in base64 */
	attr_is("mail", "a@b.c", 5, "a@b.c");
	attr_is("cn", "Zo\xc3\xab \xf0\x9f\x98\x80", 9, "Zo\xc3\xab \xf0\x9f\x98\x80");
	attr_is("extensionAttribute1", "a\0b", 3, "YQBi");
	attr_is("extensionAttribute1", "\xc0\x80", 2, "wIA=");         /* overlong NUL */
	attr_is("extensionAttribute1", "\xed\xa0\x80", 3, "7aCA");     /* a surrogate */
	attr_is("extensionAttribute1", "\xf4\x90\x80\x80", 4, "9JCAgA=="); /* above U+10FFFF */
	attr_is("extensionAttribute1", "\xc3", 1, "ww==");             /* cut short */
}

static void one_binary_value_makes_the_whole_attribute_base64(void **state)
{
	(void)state;
	struct berval a = {3, "abc"}, b = {2, "\xff\xfe"}, *vals[] = {&a, &b, NULL};
	char **v = ad__attr_values("otherBinary", 11, vals, 2);
	assert_string_equal(v[0], "YWJj");
	assert_string_equal(v[1], "//4=");
	free(v[0]);
	free(v[1]);
	free(v);
	v = ad__attr_values("objectSid", 9, NULL, 0); /* removed: no value */
	free(v);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(guid_is_canonical_mixed_endian_lowercase),
		cmocka_unit_test(dirsync_response_control_parsed_and_garbage_refused),
		cmocka_unit_test(cursor_round_trips_and_refuses_other_sources),
		cmocka_unit_test(filters_match_merged_entries),
		cmocka_unit_test(scope_type_and_base),
		cmocka_unit_test(range_options_parsed_and_malformed_refused),
		cmocka_unit_test(ranged_members_are_read_to_the_end),
		cmocka_unit_test(a_range_answer_with_a_hole_is_refused),
		cmocka_unit_test(binary_attributes_reach_mappings_as_base64),
		cmocka_unit_test(one_binary_value_makes_the_whole_attribute_base64),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
