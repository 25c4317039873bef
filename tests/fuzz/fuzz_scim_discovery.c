/*
 * tests/fuzz/fuzz_scim_discovery.c -- the discovery parser
 * (sync/target/scim_discovery.h) on what a SCIM server sends as
 * /ServiceProviderConfig, /ResourceTypes and /Schemas, then mapping paths
 * checked against the result. Input: byte 0 picks which parsers see the
 * body (the rest of the input, as JSON).
 */
#include <stdint.h>

#include "sync/target/scim_discovery.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static const char *const paths[] = {"userName", "name.givenName", "emails[type eq \"work\"].value",
					    "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User:manager.value",
					    "urn:x:y", "[", "a]b.c", ""};
	struct scim_caps caps;
	struct scim_schemas *s;
	char err[128], schema[SCIM_DISC_NAME_MAX];
	json_t *doc;

	if (size < 1)
		return 0;
	doc = json_loadb((const char *)data + 1, size - 1, JSON_DECODE_ANY, NULL);
	if (doc == NULL)
		return 0;
	s = scim_schemas_new();
	scim_caps_parse(&caps, doc, err, sizeof err);
	if (data[0] & 1)
		scim_schemas_set_types(s, doc, err, sizeof err);
	scim_schemas_add(s, doc, err, sizeof err);
	if (data[0] & 2) /* twice: ids already known are replaced */
		scim_schemas_add(s, doc, err, sizeof err);
	for (size_t i = 0; i < sizeof paths / sizeof paths[0]; i++) {
		scim_schemas_check(s, OBJECT_USER, paths[i], schema, sizeof schema);
		scim_schemas_check(s, OBJECT_GROUP, paths[i], schema, sizeof schema);
	}
	scim_schemas_attr_count(s);
	scim_schemas_free(s);
	json_decref(doc);
	return 0;
}
