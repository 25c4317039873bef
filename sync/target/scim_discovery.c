/*
 * sync/target/scim_discovery.c -- parsing /ServiceProviderConfig,
 * /ResourceTypes and /Schemas (see scim_discovery.h).
 */
#include "sync/target/scim_discovery.h"

#include <ctype.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "common/xalloc.h"

static const char CORE_USER[] = "urn:ietf:params:scim:schemas:core:2.0:User";
static const char CORE_GROUP[] = "urn:ietf:params:scim:schemas:core:2.0:Group";
static const char ENTERPRISE[] = "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User";

static int errf(char *buf, size_t len, int rc, const char *msg)
{
	if (buf != NULL && len > 0)
		snprintf(buf, len, "%s", msg);
	return rc;
}

static char *lower_dup(const char *s)
{
	char *d = xstrdup(s);
	for (char *p = d; *p != '\0'; p++)
		*p = (char)tolower((unsigned char)*p);
	return d;
}

/* ---- ServiceProviderConfig (RFC 7643 §5) ------------------------------------ */

void scim_caps_defaults(struct scim_caps *c)
{
	memset(c, 0, sizeof *c);
	c->filter = true;
	c->patch = true;
}

/* `supported` of a complex capability; a missing or non-boolean value keeps
 * the default (a server saying nothing about a feature is read as silent,
 * not as "no"). */
static bool supported(const json_t *doc, const char *name, bool dflt)
{
	const json_t *v = json_object_get(json_object_get(doc, name), "supported");
	return json_is_boolean(v) ? json_is_true(v) : dflt;
}

/* A positive integer member of doc[name], capped at max; 0 when absent or
 * not a positive integer. */
static unsigned long long positive(const json_t *doc, const char *name, const char *member,
				   unsigned long long max)
{
	const json_t *v = json_object_get(json_object_get(doc, name), member);
	json_int_t n;

	if (!json_is_integer(v) || (n = json_integer_value(v)) <= 0)
		return 0;
	return (unsigned long long)n > max ? max : (unsigned long long)n;
}

int scim_caps_parse(struct scim_caps *c, const json_t *doc, char *errmsg, size_t errlen)
{
	scim_caps_defaults(c);
	if (!json_is_object(doc))
		return errf(errmsg, errlen, -EINVAL, "ServiceProviderConfig: not a JSON object");
	c->spc_known = true;
	c->bulk = supported(doc, "bulk", false);
	c->bulk_max_operations = (unsigned)positive(doc, "bulk", "maxOperations", 1000000);
	c->bulk_max_payload = (size_t)positive(doc, "bulk", "maxPayloadSize", (unsigned long long)1 << 40);
	c->filter = supported(doc, "filter", true);
	c->filter_max_results = (unsigned)positive(doc, "filter", "maxResults", 1000000);
	c->patch = supported(doc, "patch", true);
	c->etag = supported(doc, "etag", false);
	return 0;
}

/* ---- Schemas (RFC 7643 §7) --------------------------------------------------- */

struct scim_schemas *scim_schemas_new(void)
{
	return xcalloc(1, sizeof(struct scim_schemas));
}

static void schema_clear(struct scim_schema *sc)
{
	for (size_t i = 0; i < sc->n_attrs; i++)
		free(sc->attrs[i].path);
	free(sc->attrs);
	free(sc->id);
	memset(sc, 0, sizeof *sc);
}

static void types_clear(struct scim_schemas *s)
{
	for (int t = 0; t < 2; t++) {
		free(s->core[t]);
		s->core[t] = NULL;
		for (size_t i = 0; i < s->n_ext[t]; i++)
			free(s->ext[t][i]);
		s->n_ext[t] = 0;
	}
}

void scim_schemas_free(struct scim_schemas *s)
{
	if (s == NULL)
		return;
	for (size_t i = 0; i < s->n_schemas; i++)
		schema_clear(&s->schemas[i]);
	free(s->schemas);
	types_clear(s);
	free(s);
}

/* Attributes of one level (RFC 7643 §7 "attributes", §2.3 "subAttributes"),
 * with their path below the schema: "name", then "name.givenname". One level
 * of sub-attributes is all RFC 7643 allows (§2.3.8: a complex attribute MUST
 * NOT contain sub-attributes that have sub-attributes). */
static void add_attrs(struct scim_schema *sc, const json_t *attrs, const char *parent)
{
	const json_t *a;
	size_t i;

	json_array_foreach(attrs, i, a)
	{
		const char *name = json_string_value(json_object_get(a, "name"));
		char path[SCIM_DISC_NAME_MAX * 2 + 2];

		if (name == NULL || name[0] == '\0' || strlen(name) >= SCIM_DISC_NAME_MAX)
			continue;
		if (sc->n_attrs >= SCIM_DISC_MAX_ATTRS)
			return;
		snprintf(path, sizeof path, "%s%s%s", parent != NULL ? parent : "", parent != NULL ? "." : "", name);
		struct scim_attr *at = &sc->attrs[sc->n_attrs++];
		at->path = lower_dup(path);
		at->multi = json_is_true(json_object_get(a, "multiValued"));
		const char *type = json_string_value(json_object_get(a, "type"));
		at->complex = type != NULL && strcasecmp(type, "complex") == 0;
		if (parent == NULL && json_is_array(json_object_get(a, "subAttributes")))
			add_attrs(sc, json_object_get(a, "subAttributes"), path);
	}
}

static struct scim_schema *find_schema(const struct scim_schemas *s, const char *id)
{
	for (size_t i = 0; i < s->n_schemas; i++)
		if (strcasecmp(s->schemas[i].id, id) == 0)
			return &s->schemas[i];
	return NULL;
}

/* One schema object; returns 1 if taken, 0 if it was not a schema. */
static int add_schema(struct scim_schemas *s, const json_t *obj)
{
	const char *id = json_string_value(json_object_get(obj, "id"));
	const json_t *attrs = json_object_get(obj, "attributes");
	struct scim_schema *sc;

	if (id == NULL || id[0] == '\0' || strlen(id) >= SCIM_DISC_NAME_MAX || !json_is_array(attrs))
		return 0;
	sc = find_schema(s, id);
	if (sc != NULL) {
		schema_clear(sc);
	} else {
		if (s->n_schemas >= SCIM_DISC_MAX_SCHEMAS)
			return 0;
		s->schemas = xrealloc(s->schemas, (s->n_schemas + 1) * sizeof *s->schemas);
		sc = &s->schemas[s->n_schemas++];
		memset(sc, 0, sizeof *sc);
	}
	sc->id = xstrdup(id); /* as the server spells it, for messages; compared ignoring case */
	sc->attrs = xcalloc(SCIM_DISC_MAX_ATTRS, sizeof *sc->attrs);
	add_attrs(sc, attrs, NULL);
	return 1;
}

/* The objects of an answer: ListResponse "Resources", a bare array, or one
 * object. */
static const json_t *items(const json_t *doc, bool *single)
{
	*single = false;
	if (json_is_array(doc))
		return doc;
	if (json_is_array(json_object_get(doc, "Resources")))
		return json_object_get(doc, "Resources");
	*single = json_is_object(doc);
	return doc;
}

int scim_schemas_add(struct scim_schemas *s, const json_t *doc, char *errmsg, size_t errlen)
{
	bool single;
	const json_t *list = items(doc, &single), *v;
	int n = 0;
	size_t i;

	if (single)
		n = add_schema(s, list);
	else if (json_is_array(list))
		json_array_foreach(list, i, v)
			n += add_schema(s, v);
	if (n == 0)
		return errf(errmsg, errlen, -EINVAL, "Schemas: no schema (an object with \"id\" and \"attributes\")");
	return n;
}

/* ---- ResourceTypes (RFC 7643 §6) -------------------------------------------------- */

static int type_index(const json_t *rt)
{
	const char *name = json_string_value(json_object_get(rt, "name"));
	const char *ep = json_string_value(json_object_get(rt, "endpoint"));

	if ((name != NULL && strcasecmp(name, "User") == 0) || (ep != NULL && strcasecmp(ep, "/Users") == 0))
		return 0;
	if ((name != NULL && strcasecmp(name, "Group") == 0) || (ep != NULL && strcasecmp(ep, "/Groups") == 0))
		return 1;
	return -1;
}

int scim_schemas_set_types(struct scim_schemas *s, const json_t *doc, char *errmsg, size_t errlen)
{
	bool single, seen[2] = {false, false};
	const json_t *list = items(doc, &single), *v;
	struct scim_schemas fresh;
	size_t i, n;

	memset(&fresh, 0, sizeof fresh);
	n = single ? 1 : json_is_array(list) ? json_array_size(list) : 0;
	for (i = 0; i < n; i++) {
		v = single ? list : json_array_get(list, i);
		int t = type_index(v);
		const char *core = json_string_value(json_object_get(v, "schema"));
		const json_t *e;
		size_t j;

		if (t < 0 || seen[t] || core == NULL || strlen(core) >= SCIM_DISC_NAME_MAX)
			continue;
		seen[t] = true;
		fresh.core[t] = xstrdup(core);
		json_array_foreach(json_object_get(v, "schemaExtensions"), j, e)
		{
			const char *id = json_string_value(json_object_get(e, "schema"));
			if (id != NULL && strlen(id) < SCIM_DISC_NAME_MAX && fresh.n_ext[t] < SCIM_DISC_MAX_EXTENSIONS)
				fresh.ext[t][fresh.n_ext[t]++] = xstrdup(id);
		}
	}
	if (!seen[0] && !seen[1]) {
		types_clear(&fresh);
		return errf(errmsg, errlen, -EINVAL, "ResourceTypes: neither a User nor a Group resource type");
	}
	types_clear(s);
	for (int t = 0; t < 2; t++) {
		s->core[t] = fresh.core[t];
		s->n_ext[t] = fresh.n_ext[t];
		memcpy(s->ext[t], fresh.ext[t], sizeof s->ext[t]);
	}
	s->types_known = true;
	return 0;
}

bool scim_schemas_known(const struct scim_schemas *s)
{
	return s != NULL && s->n_schemas > 0;
}

/* The schema URNs of a type: the resource type's, or the defaults. */
static size_t type_schemas(const struct scim_schemas *s, int t, const char **out, size_t max)
{
	size_t n = 0;

	if (s->types_known && s->core[t] != NULL) {
		out[n++] = s->core[t];
		for (size_t i = 0; i < s->n_ext[t] && n < max; i++)
			out[n++] = s->ext[t][i];
		return n;
	}
	out[n++] = t == 0 ? CORE_USER : CORE_GROUP;
	if (t == 0)
		out[n++] = ENTERPRISE;
	return n;
}

size_t scim_schemas_attr_count(const struct scim_schemas *s)
{
	const char *ids[SCIM_DISC_MAX_EXTENSIONS + 1];
	size_t total = 0;

	if (s == NULL)
		return 0;
	for (int t = 0; t < 2; t++) {
		size_t n = type_schemas(s, t, ids, sizeof ids / sizeof ids[0]);
		for (size_t i = 0; i < n; i++) {
			const struct scim_schema *sc = find_schema(s, ids[i]);
			total += sc != NULL ? sc->n_attrs : 0;
		}
	}
	return total;
}

static bool has_attr(const struct scim_schema *sc, const char *path)
{
	for (size_t i = 0; i < sc->n_attrs; i++)
		if (strcmp(sc->attrs[i].path, path) == 0)
			return true;
	return false;
}

/* The attribute part of a mapping path, lower-cased, value filters dropped:
 * `emails[type eq "work"].value` -> "emails.value". */
static void attr_part(const char *in, char *out, size_t len)
{
	size_t o = 0;
	int depth = 0;

	for (const char *p = in; *p != '\0' && o + 1 < len; p++) {
		if (*p == '[') {
			depth++;
			continue;
		}
		if (*p == ']') {
			if (depth > 0)
				depth--;
			continue;
		}
		if (depth == 0)
			out[o++] = (char)tolower((unsigned char)*p);
	}
	out[o] = '\0';
}

int scim_schemas_check(const struct scim_schemas *s, enum object_type type, const char *path, char *schema_out,
		       size_t schema_len)
{
	const char *ids[SCIM_DISC_MAX_EXTENSIONS + 1];
	int t = type == OBJECT_GROUP ? 1 : 0;
	size_t n = type_schemas(s, t, ids, sizeof ids / sizeof ids[0]);
	const char *schema = ids[0], *rest = path;
	char attr[SCIM_DISC_NAME_MAX * 2], top[SCIM_DISC_NAME_MAX * 2];
	const struct scim_schema *sc;

	/* An extension attribute (RFC 7644 §3.10): "<schema URN>:<attribute>";
	 * the longest URN that prefixes the path wins. */
	if (strncasecmp(path, "urn:", 4) == 0) {
		size_t best = 0;
		for (size_t i = 0; i < n; i++) {
			size_t l = strlen(ids[i]);
			if (l > best && strncasecmp(path, ids[i], l) == 0 && path[l] == ':') {
				best = l;
				schema = ids[i];
			}
		}
		if (best == 0) {
			/* a URN the resource type does not list: name the URN part */
			const char *colon = strrchr(path, ':');
			size_t l = colon != NULL ? (size_t)(colon - path) : strlen(path);
			if (schema_out != NULL && schema_len > 0)
				snprintf(schema_out, schema_len, "%.*s", (int)l, path);
			return -ENOENT;
		}
		rest = path + best + 1;
	}
	if (schema_out != NULL && schema_len > 0)
		snprintf(schema_out, schema_len, "%s", schema);
	sc = find_schema(s, schema);
	if (sc == NULL)
		return -ENOENT;
	attr_part(rest, attr, sizeof attr);
	if (attr[0] == '\0')
		return 0;
	snprintf(top, sizeof top, "%s", attr);
	char *dot = strchr(top, '.');
	if (dot != NULL)
		*dot = '\0';
	/* RFC 7643 §3.1: id, externalId and meta are common to every resource
	 * and in no schema's "attributes"; "schemas" is §3 itself */
	if (rest == path && (strcmp(top, "id") == 0 || strcmp(top, "externalid") == 0 || strcmp(top, "meta") == 0 ||
			     strcmp(top, "schemas") == 0))
		return 1;
	if (!has_attr(sc, top))
		return 0;
	if (dot == NULL)
		return 1;
	/* a sub-attribute: only checked when the schema lists sub-attributes
	 * for its parent (some servers list the complex attribute alone) */
	for (size_t i = 0; i < sc->n_attrs; i++) {
		size_t tl = strlen(top);
		if (strncmp(sc->attrs[i].path, top, tl) == 0 && sc->attrs[i].path[tl] == '.')
			return has_attr(sc, attr) ? 1 : 0;
	}
	return 1;
}
