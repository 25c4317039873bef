/*
 * tests/unit/test_mapping.c -- SCIM paths filled from expressions; content
 * hashes; errors that name the rule.
 */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "sync/transform/mapping.h"

static char *given[] = {"Zoë"}, *sn[] = {"Müller"}, *mail[] = {"zoe@example.com"},
	    *uid[] = {"zmuller"}, *dept[] = {"R&D"}, *phones[] = {"+1 555", "+1 556"};
static struct object_attr attrs[] = {
	{"givenName", given, 1}, {"sn", sn, 1},       {"mail", mail, 1},
	{"uid", uid, 1},         {"ou", dept, 1},     {"telephoneNumber", phones, 2},
};

static json_t *map(const struct mapping_rule_text *rules, size_t n)
{
	struct mapping *m;
	json_t *res;
	char err[256];
	assert_int_equal(mapping_compile(&m, OBJECT_USER, "mapping.user", rules, n, err, sizeof err), 0);
	assert_int_equal(mapping_apply(m, "uuid-1", attrs, 6, &res, err, sizeof err), 0);
	mapping_free(m);
	return res;
}

static void paths_place_values_where_scim_expects_them(void **state)
{
	const struct mapping_rule_text rules[] = {
		{"userName", "[uid]", 1},
		{"displayName", "Join(\" \", [givenName], [sn])", 2},
		{"name.givenName", "[givenName]", 3},
		{"emails[type eq \"work\"].value", "[mail]", 4},
		{"urn:ietf:params:scim:schemas:extension:enterprise:2.0:User:department", "[ou]", 5},
		{"active", "\"True\"", 6},
	};
	json_t *r = map(rules, 6), *work;
	(void)state;

	assert_string_equal(json_string_value(json_object_get(r, "externalId")), "uuid-1");
	assert_string_equal(json_string_value(json_object_get(r, "userName")), "zmuller");
	assert_string_equal(json_string_value(json_object_get(r, "displayName")), "Zoë Müller");
	assert_string_equal(json_string_value(json_object_get(json_object_get(r, "name"), "givenName")), "Zoë");
	work = json_array_get(json_object_get(r, "emails"), 0);
	assert_string_equal(json_string_value(json_object_get(work, "type")), "work");
	assert_string_equal(json_string_value(json_object_get(work, "value")), "zoe@example.com");
	assert_true(json_is_true(json_object_get(work, "primary")));
	assert_string_equal(json_string_value(json_object_get(json_object_get(r, SCIM_SCHEMA_ENTERPRISE), "department")), "R&D");
	assert_true(json_is_true(json_object_get(r, "active")));
	/* both schemas announced */
	assert_int_equal(json_array_size(json_object_get(r, "schemas")), 2);
	json_decref(r);
}

static void multi_valued_source_keeps_all_values(void **state)
{
	const struct mapping_rule_text rules[] = {{"x-phones", "[telephoneNumber]", 1}};
	json_t *r = map(rules, 1), *a = json_object_get(r, "x-phones");
	(void)state;
	assert_int_equal(json_array_size(a), 2);
	assert_string_equal(json_string_value(json_array_get(a, 1)), "+1 556");
	json_decref(r);
}

static void absent_attribute_is_left_out(void **state)
{
	const struct mapping_rule_text rules[] = {{"title", "[title]", 1}};
	json_t *r = map(rules, 1);
	(void)state;
	assert_null(json_object_get(r, "title"));
	json_decref(r);
}

static void hash_ignores_key_order_and_sees_changes(void **state)
{
	json_t *a = json_pack("{s:s,s:s}", "a", "1", "b", "2");
	json_t *b = json_pack("{s:s,s:s}", "b", "2", "a", "1");
	json_t *c = json_pack("{s:s,s:s}", "a", "1", "b", "3");
	(void)state;
	assert_true(mapping_hash(a) == mapping_hash(b));
	assert_true(mapping_hash(a) != mapping_hash(c));
	json_decref(a);
	json_decref(b);
	json_decref(c);
}

static void parse_error_names_line_rule_and_column(void **state)
{
	const struct mapping_rule_text rules[] = {{"displayName", "Joinn(\" \", [sn])", 17}};
	struct mapping *m = NULL;
	char err[256];
	(void)state;
	assert_int_equal(mapping_compile(&m, OBJECT_USER, "mapping.user", rules, 1, err, sizeof err), -22);
	assert_null(m);
	assert_non_null(strstr(err, "line 17"));
	assert_non_null(strstr(err, "mapping.user.displayName"));
	assert_non_null(strstr(err, "column 1"));
	assert_non_null(strstr(err, "Joinn"));
}

static void bad_path_is_refused(void **state)
{
	const struct mapping_rule_text rules[] = {{"emails[type eq \"work\"]", "[mail]", 3}};
	struct mapping *m = NULL;
	char err[256];
	(void)state;
	assert_int_equal(mapping_compile(&m, OBJECT_USER, "mapping.user", rules, 1, err, sizeof err), -22);
	assert_non_null(strstr(err, "sub-attribute"));
}

#define MANAGER_PATH "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User:manager"

/* The manager is a reference: the rule yields a DN the engine resolves, and
 * the resource itself does not carry it. */
static void the_manager_rule_yields_a_dn_not_a_resource_value(void **state)
{
	char *mgr[] = {"uid=boss,ou=people,dc=example"};
	struct object_attr with[] = {{"uid", uid, 1}, {"manager", mgr, 1}};
	const struct mapping_rule_text rules[] = {{"userName", "[uid]", 1}, {MANAGER_PATH, "[manager]", 2}};
	struct mapping *m;
	json_t *res;
	char err[256], *dn;
	(void)state;

	assert_int_equal(mapping_compile(&m, OBJECT_USER, "mapping.user", rules, 2, err, sizeof err), 0);
	assert_true(mapping_has_manager(m));
	assert_int_equal(mapping_apply(m, "uuid-1", with, 2, &res, err, sizeof err), 0);
	assert_null(json_object_get(res, SCIM_SCHEMA_ENTERPRISE));
	assert_int_equal(json_array_size(json_object_get(res, "schemas")), 1);
	json_decref(res);
	assert_int_equal(mapping_manager(m, with, 2, &dn, err, sizeof err), 0);
	assert_string_equal(dn, "uid=boss,ou=people,dc=example");
	free(dn);
	assert_int_equal(mapping_manager(m, attrs, 6, &dn, err, sizeof err), 0); /* no manager */
	assert_null(dn);
	mapping_free(m);
}

static void the_manager_is_refused_where_it_cannot_be_a_reference(void **state)
{
	const struct mapping_rule_text sub[] = {{MANAGER_PATH ".displayName", "[cn]", 4}};
	const struct mapping_rule_text twice[] = {{MANAGER_PATH, "[manager]", 1}, {MANAGER_PATH ".value", "[x]", 2}};
	const struct mapping_rule_text group[] = {{MANAGER_PATH, "[manager]", 3}};
	struct mapping *m = NULL;
	char err[256];
	(void)state;

	assert_int_equal(mapping_compile(&m, OBJECT_USER, "mapping.user", sub, 1, err, sizeof err), -22);
	assert_non_null(strstr(err, "reference"));
	assert_int_equal(mapping_compile(&m, OBJECT_USER, "mapping.user", twice, 2, err, sizeof err), -22);
	assert_non_null(strstr(err, "twice"));
	assert_int_equal(mapping_compile(&m, OBJECT_GROUP, "mapping.group", group, 1, err, sizeof err), -22);
	assert_non_null(strstr(err, "only users"));
	assert_null(m);
}


/* Now() and RandomString() rules: left out of mapping_apply (so of the hash),
 * added by mapping_apply_creation. */
static void volatile_rules_are_applied_at_creation_only(void **state)
{
	const struct mapping_rule_text rules[] = {
		{"userName", "[uid]", 1},
		{"nickName", "RandomString(8,2,2,2,2)", 2},
		{"urn:ietf:params:scim:schemas:extension:enterprise:2.0:User:employeeNumber", "Now()", 3},
	};
	struct mapping *m;
	json_t *a, *b;
	char err[256];
	(void)state;
	assert_int_equal(mapping_compile(&m, OBJECT_USER, "mapping.user", rules, 3, err, sizeof err), 0);
	assert_int_equal(mapping_apply(m, "uuid-1", attrs, 6, &a, err, sizeof err), 0);
	assert_int_equal(mapping_apply(m, "uuid-1", attrs, 6, &b, err, sizeof err), 0);
	assert_null(json_object_get(a, "nickName"));
	assert_true(mapping_hash(a) == mapping_hash(b));
	assert_int_equal(json_array_size(json_object_get(a, "schemas")), 1);
	assert_int_equal(mapping_apply_creation(m, attrs, 6, a, err, sizeof err), 0);
	assert_int_equal(strlen(json_string_value(json_object_get(a, "nickName"))), 8);
	assert_non_null(json_object_get(json_object_get(a, SCIM_SCHEMA_ENTERPRISE), "employeeNumber"));
	assert_int_equal(json_array_size(json_object_get(a, "schemas")), 2); /* the extension announced */
	json_decref(a);
	json_decref(b);
	mapping_free(m);
}

static void redacted_attributes_show_as_redact_in_modified(void **state)
{
	const struct mapping_rule_text rules[] = {
		{"userName", "[uid]", 1},
		{"name.givenName", "Redact([givenName])", 2},
		{"title", "Redact([sn])", 3},
	};
	struct mapping *m;
	char err[256];
	(void)state;
	assert_int_equal(mapping_compile(&m, OBJECT_USER, "mapping.user", rules, 3, err, sizeof err), 0);
	json_t *mod = json_pack("[{s:s,s:s,s:s},{s:s,s:s,s:n},{s:s,s:n,s:{s:s}},{s:s,s:s,s:s}]",
				"attr", "title", "old", "Muller", "new", "Müller",
				"attr", "name.givenName", "old", "Zoe", "new",
				"attr", "name", "old", "new", "givenName", "Zoë",
				"attr", "userName", "old", "a", "new", "b");
	mapping_redact_modified(m, mod);
	assert_string_equal(json_string_value(json_object_get(json_array_get(mod, 0), "old")), "[Redact]");
	assert_string_equal(json_string_value(json_object_get(json_array_get(mod, 0), "new")), "[Redact]");
	assert_string_equal(json_string_value(json_object_get(json_array_get(mod, 1), "old")), "[Redact]");
	assert_true(json_is_null(json_object_get(json_array_get(mod, 1), "new"))); /* removed stays null */
	assert_string_equal(json_string_value(json_object_get(json_array_get(mod, 2), "new")), "[Redact]");
	assert_string_equal(json_string_value(json_object_get(json_array_get(mod, 3), "new")), "b");
	json_decref(mod);
	mapping_free(m);
}

/* an evaluation error of a redacted rule does not quote the value */
static void redacted_rule_errors_do_not_show_the_value(void **state)
{
	const struct mapping_rule_text rules[] = {{"title", "Redact(CDate([sn]))", 4},
						  {"nickName", "CDate([givenName])", 5}};
	struct mapping *m;
	json_t *res = NULL;
	char err[512];
	(void)state;
	assert_int_equal(mapping_compile(&m, OBJECT_USER, "mapping.user", rules, 1, err, sizeof err), 0);
	assert_int_equal(mapping_apply(m, "uuid-1", attrs, 6, &res, err, sizeof err), -EINVAL);
	assert_null(strstr(err, "Müller"));
	assert_non_null(strstr(err, "mapping title (line 4): column 8: CDate: [Redact]"));
	mapping_free(m);
	assert_int_equal(mapping_compile(&m, OBJECT_USER, "mapping.user", rules + 1, 1, err, sizeof err), 0);
	assert_int_equal(mapping_apply(m, "uuid-1", attrs, 6, &res, err, sizeof err), -EINVAL);
	assert_non_null(strstr(err, "Zoë")); /* without Redact the value helps */
	mapping_free(m);
}

/* SelectUniqueValue is left out of the mapped content (creation only); its
 * candidates come out in order, empty ones skipped, and the chosen one is
 * placed at the rule's path. */
static void select_unique_value_yields_candidates_at_creation_only(void **state)
{
	const struct mapping_rule_text rules[] = {
		{"userName", "SelectUniqueValue([missing], [mail], Join(\".\", [givenName], [sn]))", 7},
		{"displayName", "[sn]", 8}};
	const struct mapping_rule_text manager[] = {
		{"urn:ietf:params:scim:schemas:extension:enterprise:2.0:User:manager",
		 "SelectUniqueValue([uid], [mail])", 9}};
	struct mapping *m = NULL;
	struct mapping_unique *u = NULL;
	size_t n = 0;
	json_t *res = NULL;
	char err[512];
	(void)state;
	assert_int_equal(mapping_compile(&m, OBJECT_USER, "mapping.user", rules, 2, err, sizeof err), 0);
	assert_true(mapping_has_unique(m));
	assert_int_equal(mapping_apply(m, "uuid-1", attrs, 6, &res, err, sizeof err), 0);
	assert_null(json_object_get(res, "userName"));
	assert_int_equal(mapping_unique_candidates(m, attrs, 6, &u, &n, err, sizeof err), 0);
	assert_int_equal(n, 1);
	assert_string_equal(u[0].attr, "userName");
	assert_int_equal(u[0].n_cand, 2);
	assert_string_equal(u[0].cand[0], "zoe@example.com");
	assert_string_equal(u[0].cand[1], "Zoë.Müller");
	assert_string_equal(u[0].where, "mapping userName (line 7)");
	mapping_unique_place(m, &u[0], u[0].cand[1], res);
	assert_string_equal(json_string_value(json_object_get(res, "userName")), "Zoë.Müller");
	mapping_unique_free(u, n);
	json_decref(res);
	mapping_free(m);
	assert_int_equal(mapping_compile(&m, OBJECT_USER, "mapping.user", manager, 1, err, sizeof err), -EINVAL);
	assert_non_null(strstr(err, "line 9: mapping.user.urn:ietf:params:scim:schemas:extension:enterprise:2.0:User:"
				    "manager: the manager cannot use SelectUniqueValue"));
}

static void creation_only_names_the_volatile_and_unique_rules(void **state)
{
	const struct mapping_rule_text rules[] = {
		{"userName", "SelectUniqueValue([uid], Join(\".\", [uid], \"2\"))", 1},
		{"displayName", "[sn]", 2},
		{"employeeId", "Guid()", 3},
		{"nickName", "RandomString(8,1,1,1,1)", 4},
		{"title", "Now()", 5},
	};
	struct mapping *m;
	char err[256];
	(void)state;
	assert_int_equal(mapping_compile(&m, OBJECT_USER, "mapping.user", rules, 5, err, sizeof err), 0);
	assert_true(mapping_creation_only(m, "userName"));
	assert_false(mapping_creation_only(m, "displayName"));
	assert_true(mapping_creation_only(m, "employeeId"));
	assert_true(mapping_creation_only(m, "nickName"));
	assert_true(mapping_creation_only(m, "title"));
	assert_false(mapping_creation_only(m, "mail"));
	assert_false(mapping_creation_only(NULL, "userName"));
	mapping_free(m);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(paths_place_values_where_scim_expects_them),
		cmocka_unit_test(multi_valued_source_keeps_all_values),
		cmocka_unit_test(absent_attribute_is_left_out),
		cmocka_unit_test(hash_ignores_key_order_and_sees_changes),
		cmocka_unit_test(parse_error_names_line_rule_and_column),
		cmocka_unit_test(bad_path_is_refused),
		cmocka_unit_test(the_manager_rule_yields_a_dn_not_a_resource_value),
		cmocka_unit_test(the_manager_is_refused_where_it_cannot_be_a_reference),
		cmocka_unit_test(volatile_rules_are_applied_at_creation_only),
		cmocka_unit_test(redacted_attributes_show_as_redact_in_modified),
		cmocka_unit_test(redacted_rule_errors_do_not_show_the_value),
		cmocka_unit_test(select_unique_value_yields_candidates_at_creation_only),
		cmocka_unit_test(creation_only_names_the_volatile_and_unique_rules),
	};
	return cmocka_run_group_tests_name("mapping", tests, NULL, NULL);
}
