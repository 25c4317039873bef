/*
 * tests/unit/test_config_sync.c -- which keys of a configuration are
 * replicated, and how a node's file and the replicated text combine
 * (agent/config_sync.h).
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "agent/config_sync.h"

static const char *const FILE_TEXT =
	"node: { id: 1, raft_address: 127.0.0.1:7001, control_address: 127.0.0.1:8001, data_dir: /tmp/x }\n"
	"cluster:\n"
	"  members: [\"1@127.0.0.1:7001\"]\n"
	"source:\n"
	"  kind: openldap\n"
	"  url: ldap://127.0.0.1:389\n"
	"  password_file: /etc/canopy/ldap.secret\n"
	"  users:  { base: \"ou=people,dc=x\", filter: \"(objectClass=inetOrgPerson)\" }\n"
	"target:\n"
	"  kind: scim\n"
	"  url: http://127.0.0.1:8080/scim/v2\n"
	"  token_file: /etc/canopy/scim.token\n"
	"  timeout_ms: 5000\n"
	"mapping:\n"
	"  user:\n"
	"    userName: \"[uid]\"\n"
	"    'emails[type eq \"work\"].value': \"[mail]\"\n"
	"safety:\n"
	"  delete_threshold: 10\n";

static void only_the_sync_keys_are_extracted(void **state)
{
	char *out = NULL, err[256];
	bool has_node = false;
	(void)state;

	assert_int_equal(config_sync_extract(FILE_TEXT, strlen(FILE_TEXT), &out, &has_node, err, sizeof err), 0);
	assert_true(has_node);
	assert_non_null(strstr(out, "ou=people,dc=x"));
	assert_non_null(strstr(out, "timeout_ms: 5000"));
	assert_non_null(strstr(out, "delete_threshold: 10"));
	assert_non_null(strstr(out, "emails[type eq \"work\"].value"));
	/* node-local: addresses, the data dir, secret file paths, the source URL */
	assert_null(strstr(out, "password_file"));
	assert_null(strstr(out, "token_file"));
	assert_null(strstr(out, "data_dir"));
	assert_null(strstr(out, "ldap://"));
	assert_null(strstr(out, "members"));
	free(out);
}

static void the_extract_of_an_extract_is_the_same(void **state)
{
	char *a = NULL, *b = NULL, err[256];
	bool has_node = true;
	(void)state;

	assert_int_equal(config_sync_extract(FILE_TEXT, strlen(FILE_TEXT), &a, NULL, err, sizeof err), 0);
	assert_int_equal(config_sync_extract(a, strlen(a), &b, &has_node, err, sizeof err), 0);
	assert_false(has_node);
	assert_string_equal(a, b);
	free(a);
	free(b);
}

static void a_merge_keeps_local_keys_and_takes_replicated_ones(void **state)
{
	const char *repl = "source:\n  users: { base: \"ou=staff,dc=x\" }\n"
			   "target:\n  url: http://127.0.0.1:9090/scim/v2\n"
			   "mapping:\n  user:\n    userName: \"[mail]\"\n";
	char *out = NULL, *sync = NULL, err[256];
	(void)state;

	assert_int_equal(config_sync_merge(FILE_TEXT, strlen(FILE_TEXT), repl, strlen(repl), &out, err, sizeof err), 0);
	assert_non_null(strstr(out, "password_file: /etc/canopy/ldap.secret"));
	assert_non_null(strstr(out, "token_file: /etc/canopy/scim.token"));
	assert_non_null(strstr(out, "ldap://127.0.0.1:389"));
	assert_non_null(strstr(out, "ou=staff,dc=x"));
	assert_null(strstr(out, "ou=people,dc=x"));
	assert_non_null(strstr(out, "127.0.0.1:9090"));
	/* replicated keys the replicated text lacks are gone (defaulted) */
	assert_null(strstr(out, "timeout_ms"));
	assert_null(strstr(out, "delete_threshold"));
	/* and the merge's sync sections are the replicated text's */
	assert_int_equal(config_sync_extract(out, strlen(out), &sync, NULL, err, sizeof err), 0);
	free(out);
	assert_int_equal(config_sync_extract(repl, strlen(repl), &out, NULL, err, sizeof err), 0);
	assert_string_equal(sync, out);
	free(sync);
	free(out);
}

static void plain_and_quoted_scalars_keep_their_style(void **state)
{
	const char *text = "safety:\n  delete_threshold: 10\n  deprovision: \"disable\"\n";
	char *out = NULL, err[256];
	(void)state;

	assert_int_equal(config_sync_extract(text, strlen(text), &out, NULL, err, sizeof err), 0);
	assert_non_null(strstr(out, "delete_threshold: 10\n"));
	assert_non_null(strstr(out, "deprovision: \"disable\""));
	free(out);
}

static void a_diff_lists_added_changed_and_removed_keys(void **state)
{
	const char *a = "mapping:\n  user:\n    userName: \"[uid]\"\n    title: \"[title]\"\nsafety:\n  delete_threshold: 10\n";
	const char *b = "mapping:\n  user:\n    userName: \"[mail]\"\n    nickName: \"[cn]\"\nsafety:\n  delete_threshold: 10\n";
	char err[256], *sum;
	json_t *d = config_sync_diff(a, strlen(a), b, strlen(b), err, sizeof err);
	(void)state;

	assert_non_null(d);
	assert_int_equal(json_array_size(d), 3);
	assert_string_equal(json_string_value(json_object_get(json_array_get(d, 0), "key")), "mapping.user.userName");
	assert_string_equal(json_string_value(json_object_get(json_array_get(d, 0), "change")), "changed");
	assert_string_equal(json_string_value(json_object_get(json_array_get(d, 1), "change")), "removed");
	assert_string_equal(json_string_value(json_object_get(json_array_get(d, 2), "key")), "mapping.user.nickName");
	assert_string_equal(json_string_value(json_object_get(json_array_get(d, 2), "change")), "added");
	assert_true(config_sync_needs_resync(d));
	sum = config_sync_summary(d);
	assert_string_equal(sum, "mapping.user.userName changed, mapping.user.title removed, mapping.user.nickName added");
	free(sum);
	json_decref(d);
	d = config_sync_diff(a, strlen(a), a, strlen(a), err, sizeof err);
	assert_int_equal(json_array_size(d), 0);
	json_decref(d);
}

static void a_safety_change_alone_needs_no_resync(void **state)
{
	const char *a = "safety:\n  delete_threshold: 10\n", *b = "safety:\n  delete_threshold: 20\n";
	char err[256];
	json_t *d = config_sync_diff(a, strlen(a), b, strlen(b), err, sizeof err);
	(void)state;

	assert_int_equal(json_array_size(d), 1);
	assert_false(config_sync_needs_resync(d));
	json_decref(d);
}

static void what_is_not_yaml_is_refused(void **state)
{
	char *out = NULL, err[256];
	(void)state;

	assert_int_not_equal(config_sync_extract("a: [", 4, &out, NULL, err, sizeof err), 0);
	assert_null(out);
	assert_true(err[0] != '\0');
	assert_int_not_equal(config_sync_extract("- a\n", 4, &out, NULL, err, sizeof err), 0);
	assert_null(config_sync_diff("a: [", 4, "a: 1", 4, err, sizeof err));
}

static void deep_nesting_is_refused_before_it_is_parsed(void **state)
{
	char text[2000], *out = NULL, err[256];
	(void)state;

	memset(text, '[', sizeof text);
	assert_int_not_equal(config_sync_extract(text, sizeof text, &out, NULL, err, sizeof err), 0);
	assert_non_null(strstr(err, "nested deeper"));
}

static void aliases_cannot_blow_up_a_copy(void **state)
{
	/* each level doubles the tree: 2^20 nodes from a few lines */
	char text[4096], *out = NULL, err[256];
	size_t n = 0;
	(void)state;

	n += (size_t)snprintf(text + n, sizeof text - n, "a0: &a0 [x, x]\n");
	for (int i = 1; i < 20; i++)
		n += (size_t)snprintf(text + n, sizeof text - n, "a%d: &a%d [*a%d, *a%d]\n", i, i, i - 1, i - 1);
	n += (size_t)snprintf(text + n, sizeof text - n, "mapping: { user: *a19 }\n");
	assert_int_not_equal(config_sync_extract(text, n, &out, NULL, err, sizeof err), 0);
	assert_null(out);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(only_the_sync_keys_are_extracted),
		cmocka_unit_test(the_extract_of_an_extract_is_the_same),
		cmocka_unit_test(a_merge_keeps_local_keys_and_takes_replicated_ones),
		cmocka_unit_test(plain_and_quoted_scalars_keep_their_style),
		cmocka_unit_test(a_diff_lists_added_changed_and_removed_keys),
		cmocka_unit_test(a_safety_change_alone_needs_no_resync),
		cmocka_unit_test(what_is_not_yaml_is_refused),
		cmocka_unit_test(deep_nesting_is_refused_before_it_is_parsed),
		cmocka_unit_test(aliases_cannot_blow_up_a_copy),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
