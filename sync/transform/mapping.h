/*
 * sync/transform/mapping.h -- from a source entry to a SCIM resource.
 *
 * A mapping is a list of (SCIM attribute path, expression) pairs from the
 * configuration (mapping.user / mapping.group). Paths follow RFC 7644 §3.10
 * attribute notation, with the value filter form Entra uses:
 *     userName                       top-level attribute
 *     name.givenName                 sub-attribute of a complex attribute
 *     emails[type eq "work"].value   the element of a multi-valued attribute
 *                                    whose `type` is "work"
 *     urn:ietf:params:scim:schemas:extension:enterprise:2.0:User:department
 *                                    an extension attribute (schema URN prefix)
 * An expression yielding no value leaves the attribute out; several values
 * become a JSON array (filtered paths take the first value). The strings
 * "True"/"False" become JSON booleans for `active`.
 */
#ifndef CANOPY_SYNC_TRANSFORM_MAPPING_H
#define CANOPY_SYNC_TRANSFORM_MAPPING_H

#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "sync/object.h"

#define SCIM_SCHEMA_USER "urn:ietf:params:scim:schemas:core:2.0:User"
#define SCIM_SCHEMA_GROUP "urn:ietf:params:scim:schemas:core:2.0:Group"
#define SCIM_SCHEMA_ENTERPRISE "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User"

struct mapping; /* opaque: the compiled rules of one object type */

struct mapping_rule_text {
	const char *path; /* SCIM attribute path */
	const char *expr; /* expression text */
	int line;         /* line in the config file, for errors */
};

/*
 * Compile the rules. Errors name the rule and the column:
 *   "line 12: mapping.user.displayName: column 6: unknown function 'Joinn'"
 * `what` is "mapping.user" or "mapping.group".
 */
int mapping_compile(struct mapping **out, enum object_type type, const char *what,
		    const struct mapping_rule_text *rules, size_t n, char *errmsg, size_t errlen);
void mapping_free(struct mapping *m);

/* Every source attribute the rules read, for the source's attribute list. */
void mapping_attributes(const struct mapping *m, void (*cb)(void *ctx, const char *name),
			void *ctx);

/*
 * Map one entry to a SCIM resource (schemas + externalId = anchor + mapped
 * attributes; no id, no members). Returns 0 and a new reference in *out, or
 * -EINVAL with the rule and the cause in errmsg (the caller skips the object
 * and logs it).
 */
int mapping_apply(const struct mapping *m, const char *anchor, const struct object_attr *attrs,
		  size_t n_attrs, json_t **out, char *errmsg, size_t errlen);

/*
 * Rules whose expression changes at every evaluation -- Now(), RandomString(),
 * Guid() (expr_traits: EXPR_VOLATILE) -- are applied at creation only: mapping_apply
 * leaves them out, so the content hash (mapping_hash) of an unchanged
 * object stays the same and nothing is rewritten on every pass; the engine
 * calls this for an object it is about to create in the target, after
 * hashing, to add them to `resource`. Later updates leave those attributes
 * out of the request (docs/mapping-expressions.md, "Values that change at
 * every evaluation"). Returns 0, or -EINVAL with the rule and the cause.
 */
int mapping_apply_creation(const struct mapping *m, const struct object_attr *attrs, size_t n_attrs,
			   json_t *resource, char *errmsg, size_t errlen);

/* Is the rule for target attribute `path` (as written in the configuration)
 * applied at creation only -- Now(), RandomString(), Guid() (above) or
 * SelectUniqueValue (below)? Updates leave such an attribute out, so a
 * target whose updates clear what they leave out (the entra target's PATCH
 * with null) must not treat it as cleared. False for an unknown path. */
bool mapping_creation_only(const struct mapping *m, const char *path);

/*
 * SelectUniqueValue (docs/mapping-expressions.md): a rule whose expression is
 * SelectUniqueValue(rule1, rule2, ...) is evaluated when the object is
 * created only, and its value is the first candidate the target does not
 * hold yet. mapping_apply and mapping_apply_creation leave such rules out
 * (updates never re-evaluate them); the engine asks the target about the
 * candidates (target.h, TARGET_TAKEN) and places the first free one.
 */
bool mapping_has_unique(const struct mapping *m);

struct mapping_unique {
	size_t rule;      /* the rule's index, for mapping_unique_place */
	char *attr;       /* the target attribute path asked about: [urn:]attr[.sub] */
	char **cand;      /* the non-empty candidates, in order (may be none) */
	size_t n_cand;
	char where[160];  /* "mapping userName (line 12)", for messages */
	bool redact;      /* a candidate calls Redact(): messages must not show them */
};

/* The candidates of every SelectUniqueValue rule for one entry, in rule
 * order: *out (n_out entries, mapping_unique_free) -- NULL, 0 when there is
 * none. Returns 0, or -EINVAL when a candidate rule fails to evaluate. */
int mapping_unique_candidates(const struct mapping *m, const struct object_attr *attrs, size_t n_attrs,
			      struct mapping_unique **out, size_t *n_out, char *errmsg, size_t errlen);
/* Add `value` to `resource` at u's attribute. */
void mapping_unique_place(const struct mapping *m, const struct mapping_unique *u, const char *value,
			  json_t *resource);
void mapping_unique_free(struct mapping_unique *u, size_t n);

/* What a value wrapped in Redact() shows in logs and status (Entra's text). */
#define MAPPING_REDACTED "[Redact]"

/*
 * In a provisioning log's list of modified attributes (provlog_modified(),
 * sync/provlog.h), replace the old and new values of every attribute whose
 * rule calls Redact() -- or of an object that contains one -- with
 * MAPPING_REDACTED: the change is still listed, its values are not. `m` may
 * be NULL (nothing to do).
 */
void mapping_redact_modified(const struct mapping *m, json_t *modified);

/*
 * Reference-valued attributes. The enterprise extension's manager (RFC 7643
 * §4.3) is a reference to another user: its value in the target is that
 * user's target id, which only the engine knows. A rule with the path
 *     urn:ietf:params:scim:schemas:extension:enterprise:2.0:User:manager
 * (or ...:manager.value) therefore yields the manager's *DN*; mapping_apply()
 * leaves it out of the resource, and the engine resolves the DN to the
 * exported user with that DN and writes its target id (docs/configuration.md,
 * "The manager"). At most one such rule, in mapping.user only.
 */
bool mapping_has_manager(const struct mapping *m);
/* The manager's DN for one entry: *dn xstrdup'd, or NULL (no rule, no value,
 * an empty value). Returns 0, or -EINVAL with the rule and the cause. */
int mapping_manager(const struct mapping *m, const struct object_attr *attrs, size_t n_attrs, char **dn,
		    char *errmsg, size_t errlen);

/* With safety.deprovision: disable, canopy may have disabled a user: its
 * mapped content says active = true unless the mapping says otherwise, so a
 * user back in scope is enabled again. */
void mapping_default_active(json_t *resource);

/* Content hash of a resource: equal resources hash equal (key order does not
 * matter). An unchanged object costs no request. */
uint64_t mapping_hash(const json_t *resource);

#endif /* CANOPY_SYNC_TRANSFORM_MAPPING_H */
