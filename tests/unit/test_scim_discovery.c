/*
 * tests/unit/test_scim_discovery.c -- reading what a SCIM server says it
 * supports (sync/target/scim_discovery.h): ServiceProviderConfig members and
 * their defaults, the attributes of /Schemas (sub-attributes, multi-valued,
 * case-insensitive names, RFC 7643 §2.1), resource types with extensions, and
 * the check of mapping paths against them.
 */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include <cmocka.h>

#include "sync/target/scim_discovery.h"
#include "sync/target/scim_internal.h"

#define CORE_USER "urn:ietf:params:scim:schemas:core:2.0:User"
#define CORE_GROUP "urn:ietf:params:scim:schemas:core:2.0:Group"
#define ENTERPRISE "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User"

static json_t *parse(const char *text)
{
	json_error_t e;
	json_t *j = json_loads(text, 0, &e);
	if (j == NULL)
		fail_msg("test JSON: %s", e.text);
	return j;
}

static void spc_members_are_read(void **state)
{
	struct scim_caps c;
	json_t *doc = parse("{\"patch\":{\"supported\":false},\"bulk\":{\"supported\":true,\"maxOperations\":50,"
			    "\"maxPayloadSize\":1048576},\"filter\":{\"supported\":true,\"maxResults\":100},"
			    "\"etag\":{\"supported\":true},\"changePassword\":{\"supported\":true}}");
	(void)state;
	assert_int_equal(scim_caps_parse(&c, doc, NULL, 0), 0);
	assert_true(c.spc_known);
	assert_false(c.patch);
	assert_true(c.bulk);
	assert_int_equal(c.bulk_max_operations, 50);
	assert_int_equal(c.bulk_max_payload, 1048576);
	assert_true(c.filter);
	assert_int_equal(c.filter_max_results, 100);
	assert_true(c.etag);
	json_decref(doc);
}

/* A server silent about a feature keeps the documented default; a value of
 * the wrong type or sign is no value. */
static void spc_defaults_for_what_is_missing_or_malformed(void **state)
{
	struct scim_caps c;
	char err[128] = "";
	json_t *doc = parse("{\"patch\":{\"supported\":\"no\"},\"bulk\":{\"maxOperations\":-4},"
			    "\"filter\":{\"maxResults\":1e30},\"etag\":7}");
	(void)state;
	assert_int_equal(scim_caps_parse(&c, doc, err, sizeof err), 0);
	assert_true(c.patch);
	assert_false(c.bulk);
	assert_int_equal(c.bulk_max_operations, 0);
	assert_true(c.filter);
	assert_int_equal(c.filter_max_results, 0);
	assert_false(c.etag);
	json_decref(doc);

	doc = parse("[1,2]");
	assert_int_equal(scim_caps_parse(&c, doc, err, sizeof err), -EINVAL);
	assert_non_null(strstr(err, "not a JSON object"));
	assert_false(c.spc_known);
	assert_true(c.patch && c.filter && !c.bulk && !c.etag);
	json_decref(doc);
}

static const char SCHEMAS[] =
	"{\"schemas\":[\"urn:ietf:params:scim:api:messages:2.0:ListResponse\"],\"totalResults\":3,\"Resources\":["
	"{\"id\":\"" CORE_USER "\",\"attributes\":["
	"{\"name\":\"userName\",\"type\":\"string\"},"
	"{\"name\":\"name\",\"type\":\"complex\",\"subAttributes\":[{\"name\":\"givenName\"},{\"name\":\"familyName\"}]},"
	"{\"name\":\"emails\",\"type\":\"complex\",\"multiValued\":true,\"subAttributes\":[{\"name\":\"value\"},{\"name\":\"type\"}]},"
	"{\"name\":\"active\",\"type\":\"boolean\"}]},"
	"{\"id\":\"" CORE_GROUP "\",\"attributes\":[{\"name\":\"displayName\"},{\"name\":\"members\",\"multiValued\":true}]},"
	"{\"id\":\"" ENTERPRISE "\",\"attributes\":[{\"name\":\"department\"},{\"name\":\"manager\",\"type\":\"complex\"}]}]}";

static void schema_attributes_and_paths(void **state)
{
	struct scim_schemas *s = scim_schemas_new();
	json_t *doc = parse(SCHEMAS);
	char schema[256];
	(void)state;

	assert_int_equal(scim_schemas_add(s, doc, NULL, 0), 3);
	assert_true(scim_schemas_known(s));
	/* user: core 4 + name.* 2 + emails.* 2 = 8, enterprise 2; group 2 */
	assert_int_equal(scim_schemas_attr_count(s), 12);
	assert_int_equal(scim_schemas_check(s, OBJECT_USER, "userName", NULL, 0), 1);
	assert_int_equal(scim_schemas_check(s, OBJECT_USER, "USERNAME", NULL, 0), 1); /* RFC 7643 §2.1 */
	assert_int_equal(scim_schemas_check(s, OBJECT_USER, "name.givenName", NULL, 0), 1);
	assert_int_equal(scim_schemas_check(s, OBJECT_USER, "emails[type eq \"work\"].value", NULL, 0), 1);
	assert_int_equal(scim_schemas_check(s, OBJECT_USER, "externalId", NULL, 0), 1); /* common, §3.1 */
	assert_int_equal(scim_schemas_check(s, OBJECT_USER, "name.middleName", schema, sizeof schema), 0);
	assert_string_equal(schema, CORE_USER);
	assert_int_equal(scim_schemas_check(s, OBJECT_USER, "title", schema, sizeof schema), 0);
	assert_string_equal(schema, CORE_USER);
	/* an extension attribute, behind its URN; manager lists no sub-attributes: any passes */
	assert_int_equal(scim_schemas_check(s, OBJECT_USER, ENTERPRISE ":department", NULL, 0), 1);
	assert_int_equal(scim_schemas_check(s, OBJECT_USER, ENTERPRISE ":manager.value", NULL, 0), 1);
	assert_int_equal(scim_schemas_check(s, OBJECT_USER, ENTERPRISE ":costCenter", schema, sizeof schema), 0);
	assert_string_equal(schema, ENTERPRISE);
	/* a URN the User type does not list */
	assert_int_equal(scim_schemas_check(s, OBJECT_USER, "urn:example:ext:1.0:User:badge", schema, sizeof schema),
			 -ENOENT);
	assert_string_equal(schema, "urn:example:ext:1.0:User");
	assert_int_equal(scim_schemas_check(s, OBJECT_GROUP, "displayname", NULL, 0), 1);
	assert_int_equal(scim_schemas_check(s, OBJECT_GROUP, "userName", NULL, 0), 0);
	json_decref(doc);
	scim_schemas_free(s);
}

/* /ResourceTypes decides which schemas a type has: without the enterprise
 * extension listed, its attributes are not the User's. */
static void resource_types_choose_the_schemas(void **state)
{
	struct scim_schemas *s = scim_schemas_new();
	json_t *doc = parse(SCHEMAS);
	json_t *rt = parse("{\"Resources\":[{\"name\":\"User\",\"endpoint\":\"/Users\",\"schema\":\"" CORE_USER
			   "\",\"schemaExtensions\":[]},{\"name\":\"Group\",\"endpoint\":\"/Groups\",\"schema\":\"" CORE_GROUP
			   "\"}]}");
	char err[128] = "";
	(void)state;

	assert_int_equal(scim_schemas_add(s, doc, NULL, 0), 3);
	assert_int_equal(scim_schemas_check(s, OBJECT_USER, ENTERPRISE ":department", NULL, 0), 1); /* default types */
	assert_int_equal(scim_schemas_set_types(s, rt, err, sizeof err), 0);
	assert_true(s->types_known);
	assert_int_equal(scim_schemas_check(s, OBJECT_USER, ENTERPRISE ":department", NULL, 0), -ENOENT);
	assert_int_equal(scim_schemas_attr_count(s), 10);
	json_decref(rt);
	rt = parse("{\"Resources\":[{\"name\":\"Device\",\"schema\":\"urn:x\"}]}");
	assert_int_equal(scim_schemas_set_types(s, rt, err, sizeof err), -EINVAL);
	assert_non_null(strstr(err, "neither a User nor a Group"));
	assert_true(s->types_known); /* the earlier answer stays */
	json_decref(rt);
	json_decref(doc);
	scim_schemas_free(s);
}

/* No schema known: nothing can be checked (-ENOENT), never "missing". */
static void unknown_schemas_check_nothing(void **state)
{
	struct scim_schemas *s = scim_schemas_new();
	json_t *doc = parse("{\"Resources\":[{\"id\":\"x\"}]}");
	char err[128] = "";
	(void)state;

	assert_false(scim_schemas_known(s));
	assert_int_equal(scim_schemas_check(s, OBJECT_USER, "userName", NULL, 0), -ENOENT);
	assert_int_equal(scim_schemas_add(s, doc, err, sizeof err), -EINVAL);
	assert_non_null(strstr(err, "no schema"));
	assert_int_equal(scim_schemas_attr_count(s), 0);
	json_decref(doc);
	scim_schemas_free(s);
}

/* Sizes from the server are capped: a schema with more attributes than
 * SCIM_DISC_MAX_ATTRS keeps the first ones, no more. */
static void attribute_count_is_capped(void **state)
{
	struct scim_schemas *s = scim_schemas_new();
	json_t *attrs = json_array(), *doc;
	(void)state;

	for (int i = 0; i < SCIM_DISC_MAX_ATTRS + 50; i++) {
		char name[32];
		snprintf(name, sizeof name, "a%d", i);
		json_array_append_new(attrs, json_pack("{s:s}", "name", name));
	}
	doc = json_pack("{s:s, s:o}", "id", CORE_USER, "attributes", attrs);
	assert_int_equal(scim_schemas_add(s, doc, NULL, 0), 1);
	assert_int_equal(s->schemas[0].n_attrs, SCIM_DISC_MAX_ATTRS);
	json_decref(doc);
	scim_schemas_free(s);
}

/* Answers are read ignoring the case of attribute names (RFC 7643 §2.1):
 * the exact spelling wins when both are there. */
static void answer_attributes_ignore_case(void **state)
{
	json_t *g = parse("{\"ID\":\"g1\",\"Members\":[{\"Value\":\"u1\"}],\"id\":\"exact\"}");
	(void)state;
	assert_string_equal(json_string_value(scim__attr(g, "id")), "exact");
	json_t *m = scim__attr(g, "members");
	assert_true(json_is_array(m));
	assert_string_equal(json_string_value(scim__attr(json_array_get(m, 0), "value")), "u1");
	assert_null(scim__attr(g, "externalId"));
	assert_null(scim__attr(m, "value")); /* not an object */
	json_decref(g);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(spc_members_are_read),
		cmocka_unit_test(spc_defaults_for_what_is_missing_or_malformed),
		cmocka_unit_test(schema_attributes_and_paths),
		cmocka_unit_test(resource_types_choose_the_schemas),
		cmocka_unit_test(unknown_schemas_check_nothing),
		cmocka_unit_test(attribute_count_is_capped),
		cmocka_unit_test(answer_attributes_ignore_case),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
