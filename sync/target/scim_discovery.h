/*
 * sync/target/scim_discovery.h -- what a SCIM service provider says it
 * supports (RFC 7644 §4): /ServiceProviderConfig (RFC 7643 §5),
 * /ResourceTypes (§6) and /Schemas (§7), read into plain C.
 *
 * This module only parses (it never sends a request: sync/target/scim_auth.c
 * fetches the three endpoints when a target run starts, i.e. on each
 * leadership). Input is the target's: every count and size is capped before
 * anything is allocated, unknown shapes are ignored rather than refused, and
 * attribute names are compared case-insensitively (RFC 7643 §2.1).
 *
 * Defaults, for a server that does not answer an endpoint (404, 501) or
 * answers something unusable (scim_caps_defaults):
 *   /ServiceProviderConfig: patch supported, filter supported without a
 *     known maxResults, no Bulk, no ETags -- what canopy assumed before it
 *     read the document, and what most servers do;
 *   /ResourceTypes: User = core User + the enterprise extension, Group =
 *     core Group (RFC 7643 §4, §8.6);
 *   /Schemas: unknown -- no attribute check is possible (strict_schema then
 *     warns once that it cannot check, and does not quarantine).
 */
#ifndef CANOPY_SYNC_TARGET_SCIM_DISCOVERY_H
#define CANOPY_SYNC_TARGET_SCIM_DISCOVERY_H

#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>

#include "sync/object.h"

#define SCIM_DISC_MAX_SCHEMAS 32      /* schemas kept from /Schemas; more are ignored */
#define SCIM_DISC_MAX_ATTRS 512       /* attributes (sub-attributes included) per schema */
#define SCIM_DISC_MAX_EXTENSIONS 8    /* schemaExtensions kept per resource type */
#define SCIM_DISC_NAME_MAX 256        /* a schema URN or attribute path longer than this is skipped */

/* RFC 7643 §5 "ServiceProviderConfig", the parts canopy acts on. */
struct scim_caps {
	bool spc_known;              /* /ServiceProviderConfig answered and was read */
	bool bulk;                   /* bulk.supported */
	unsigned bulk_max_operations; /* bulk.maxOperations (0: not given) */
	size_t bulk_max_payload;     /* bulk.maxPayloadSize in bytes (0: not given) */
	bool filter;                 /* filter.supported */
	unsigned filter_max_results; /* filter.maxResults (0: not given) */
	bool patch;                  /* patch.supported */
	bool etag;                   /* etag.supported */
};

/* The defaults above for a server that says nothing. */
void scim_caps_defaults(struct scim_caps *c);

/* Read a ServiceProviderConfig document into *c (starting from the
 * defaults; a missing or malformed member keeps its default). Returns 0, or
 * -EINVAL when `doc` is not a JSON object (errmsg says so; *c holds the
 * defaults). */
int scim_caps_parse(struct scim_caps *c, const json_t *doc, char *errmsg, size_t errlen);

/* One attribute of a schema, by its path below the schema: "userName",
 * "name.givenName", "emails.value" -- lower-cased. */
struct scim_attr {
	char *path;
	bool multi;   /* multiValued */
	bool complex; /* type "complex" (has sub-attributes) */
};

struct scim_schema {
	char *id; /* the schema URN as the server spells it (compared ignoring case) */
	struct scim_attr *attrs;
	size_t n_attrs;
};

/* What /Schemas and /ResourceTypes said, for the User and Group types. */
struct scim_schemas {
	struct scim_schema *schemas;
	size_t n_schemas;
	bool types_known; /* /ResourceTypes answered; else the defaults above */
	/* per type (OBJECT_USER, OBJECT_GROUP): the core schema URN and its
	 * extensions, as the server spells them */
	char *core[2];
	char *ext[2][SCIM_DISC_MAX_EXTENSIONS];
	size_t n_ext[2];
};

/* A new, empty set (no schema known, resource types = the defaults). */
struct scim_schemas *scim_schemas_new(void);
void scim_schemas_free(struct scim_schemas *s);

/* Add the schemas of a /Schemas answer: a ListResponse (RFC 7644 §3.4.2,
 * "Resources"), a bare array, or one schema object. Returns the number of
 * schemas added (>= 0), or -EINVAL when nothing in `doc` looks like a schema
 * (errmsg says why). A schema id already known is replaced. */
int scim_schemas_add(struct scim_schemas *s, const json_t *doc, char *errmsg, size_t errlen);

/* Read a /ResourceTypes answer (a ListResponse, an array, or one object): the
 * "User" and "Group" types' "schema" and "schemaExtensions". Returns 0 (types
 * known from now on), or -EINVAL when neither type is in it. */
int scim_schemas_set_types(struct scim_schemas *s, const json_t *doc, char *errmsg, size_t errlen);

/* Whether any schema was read. */
bool scim_schemas_known(const struct scim_schemas *s);

/* Attributes counted over the User and Group types' schemas (for status). */
size_t scim_schemas_attr_count(const struct scim_schemas *s);

/*
 * Does the server's schema for `type` have the attribute a mapping path
 * names? Paths as sync/transform/mapping.h writes them: "userName",
 * "name.givenName", "emails[type eq \"work\"].value" (the value filter is
 * dropped), or an extension attribute behind its schema URN
 * ("urn:...:enterprise:2.0:User:department"). Returns 1 (it has), 0 (it
 * does not: `schema_out` names the schema looked in), or -ENOENT (the schema
 * the path names is not known for this type, or no schema is known at all;
 * `schema_out` names it too).
 */
int scim_schemas_check(const struct scim_schemas *s, enum object_type type, const char *path, char *schema_out,
		       size_t schema_len);

#endif /* CANOPY_SYNC_TARGET_SCIM_DISCOVERY_H */
