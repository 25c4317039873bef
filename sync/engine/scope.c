/*
 * sync/engine/scope.c -- what is in scope: excluded subtrees and group-based
 * scoping (docs/architecture.md, "The engine": Scope). Part of the planner:
 * reads the replicated state, writes only the planner's own sets.
 */
#include <ctype.h>
#include <string.h>

#include "sync/engine/internal.h"
#include "sync/hash.h"

/* DNs compare case-insensitively and without spaces around separators
 * (RFC 4514 §2 allows both spellings of the same name). */
void scope_dn_norm(const char *dn, char *out, size_t size)
{
	size_t o = 0;

	for (const char *p = dn; *p && o + 1 < size; p++) {
		if (*p == ' ' && (o == 0 || out[o - 1] == ',' || out[o - 1] == '=' || p[1] == ',' ||
				  p[1] == '='))
			continue;
		out[o++] = (char)tolower((unsigned char)*p);
	}
	out[o] = '\0';
}

/* Is `dn` in an excluded subtree of its scope? */
static bool excluded(const struct engine_config *cfg, enum object_type type, const char *dn)
{
	const char *const *ex = type == OBJECT_GROUP ? cfg->group_exclude : cfg->user_exclude;
	size_t n = type == OBJECT_GROUP ? cfg->n_group_exclude : cfg->n_user_exclude, dl, sl;
	char nd[DN_MAX], ns[DN_MAX];

	if (dn == NULL || n == 0)
		return false;
	scope_dn_norm(dn, nd, sizeof nd);
	dl = strlen(nd);
	for (size_t i = 0; i < n; i++) {
		scope_dn_norm(ex[i], ns, sizeof ns);
		sl = strlen(ns);
		if (dl >= sl && strcmp(nd + dl - sl, ns) == 0 && (dl == sl || nd[dl - sl - 1] == ','))
			return true;
	}
	return false;
}

bool scope_has(const struct planner *p, enum object_type type, const char *dn)
{
	char norm[DN_MAX];

	if (excluded(p->cfg, type, dn))
		return false;
	if (type != OBJECT_USER || !p->scope_on)
		return true;
	if (dn == NULL)
		return false;
	scope_dn_norm(dn, norm, sizeof norm);
	return strmap_has(&p->scope, norm);
}

/* A user's member_key in the scope set: "=" + the normalized value, which no
 * normalized DN can be (a DN starts with an attribute type). */
static void key_entry(const struct planner *p, const char *key, char *out, size_t size)
{
	out[0] = '=';
	planner_member_norm(p, key, out + 1, size - 1);
}

bool scope_has_user(const struct planner *p, const char *dn, const char *key)
{
	char norm[DN_MAX + 1];

	if (scope_has(p, OBJECT_USER, dn))
		return true;
	/* a memberUid-style group names users by key: one not exported yet is
	 * in scope by its key alone (its DN is not known to the group) */
	if (!p->scope_on || !p->by_key || key == NULL || excluded(p->cfg, OBJECT_USER, dn))
		return false;
	key_entry(p, key, norm, sizeof norm);
	return strmap_has(&p->scope, norm);
}

static void scope_put(struct planner *p, const char *norm)
{
	if (!strmap_has(&p->scope, norm)) {
		engine_map_put(&p->scope, norm, (void *)1);
		p->scope_digest ^= hash_str(norm);
	}
}

static void scope_add_dn(struct planner *p, const char *dn)
{
	char norm[DN_MAX];

	scope_dn_norm(dn, norm, sizeof norm);
	scope_put(p, norm);
}

/* An unresolved member value: a DN, or with member_value by attribute a key. */
static void scope_add_value(struct planner *p, const char *value)
{
	char norm[DN_MAX + 1];

	if (!p->by_key) {
		scope_add_dn(p, value);
		return;
	}
	key_entry(p, value, norm, sizeof norm);
	scope_put(p, norm);
}

/* Walk a group's members (as exported + unresolved values), nested groups
 * followed once each, collecting user DNs (and, for memberUid-style groups,
 * the keys of users not exported yet). */
static void scope_walk(struct planner *p, const char *group_anchor, struct strmap *visited)
{
	struct object_record g, m;

	if (strmap_has(visited, group_anchor) || !engine_record(p->state, OBJECT_KEY_OBJECT, group_anchor, &g))
		return;
	engine_map_put(visited, group_anchor, (void *)1);
	for (size_t i = 0; i < g.n_members; i++) {
		if (!engine_record(p->state, OBJECT_KEY_OBJECT, g.members[i], &m))
			continue;
		if (m.type == OBJECT_GROUP)
			scope_walk(p, g.members[i], visited);
		else if (m.dn)
			scope_add_dn(p, m.dn);
		object_record_free(&m);
	}
	/* not exported: an out-of-scope user (or a group outside the groups scope) */
	for (size_t i = 0; i < g.n_unresolved; i++)
		scope_add_value(p, g.unresolved[i]);
	object_record_free(&g);
}

bool scope_compute(struct planner *p, struct strmap *was)
{
	uint64_t before = p->scope_digest;
	size_t n_before = p->scope.count;
	struct strmap visited;
	char norm[DN_MAX];
	const char *anchor;

	if (was != NULL) { /* hand the old set over instead of clearing it */
		*was = p->scope;
		strmap_init(&p->scope, NULL);
	} else {
		strmap_clear(&p->scope);
	}
	p->scope_digest = 0;
	scope_dn_norm(p->cfg->user_member_of, norm, sizeof norm);
	anchor = strmap_get(&p->dn_index, norm);
	if (anchor != NULL) {
		strmap_init(&visited, NULL);
		scope_walk(p, anchor, &visited);
		strmap_clear(&visited);
	}
	return p->scope_digest != before || p->scope.count != n_before;
}
