/*
 * agent/config_sync.c -- selecting and combining the replicated keys of a
 * configuration (see config_sync.h).
 *
 * Works on libyaml documents: the input is loaded with yaml_parser_load(),
 * the chosen nodes are copied into a new document with their styles, and
 * libyaml's emitter writes it out, so quoting is libyaml's (a scalar written
 * plain is read back plain, a quoted one quoted).
 */
#include "agent/config_sync.h"
#include "agent/config.h"
#include "common/xalloc.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <yaml.h>

/* How a key is shared: not at all, as a whole subtree, or key by key. */
enum share { SHARE_NONE, SHARE_WHOLE, SHARE_PARTIAL };

static const char *const source_keys[] = {"users", "groups"};
static const char *const target_keys[] = {"kind",          "url",  "timeout_ms",         "max_attempts",
					  "max_in_flight", "bulk", "external_id_prefix", "patch_style",
					  "strict_schema", "nested_groups", "max_requests_per_s",
					  /* target.mode bulkupload: which provisioning job gets the users */
					  "mode", "service_principal_id", "job_id", "results_wait_ms"};

static bool listed(const char *const *keys, size_t n, const char *k)
{
	for (size_t i = 0; i < n; i++)
		if (strcmp(keys[i], k) == 0)
			return true;
	return false;
}

/* The rule for key `k` under the top-level section `section` ("" at the top). */
static enum share share_of(const char *section, const char *k)
{
	if (section[0] == '\0') {
		if (strcmp(k, "mapping") == 0 || strcmp(k, "safety") == 0)
			return SHARE_WHOLE;
		if (strcmp(k, "source") == 0 || strcmp(k, "target") == 0)
			return SHARE_PARTIAL;
		return SHARE_NONE;
	}
	if (strcmp(section, "source") == 0)
		return listed(source_keys, sizeof source_keys / sizeof source_keys[0], k) ? SHARE_WHOLE : SHARE_NONE;
	if (strcmp(section, "target") == 0)
		return listed(target_keys, sizeof target_keys / sizeof target_keys[0], k) ? SHARE_WHOLE : SHARE_NONE;
	return SHARE_NONE;
}

/* ---- loading and emitting ---------------------------------------------------- */

static int load(const char *what, const char *buf, size_t len, yaml_document_t *doc, char *errmsg, size_t errlen)
{
	yaml_parser_t p;
	yaml_node_t *root;

	/* depth, aliases and tags first: libyaml's scanner costs the square
	 * of the nesting depth (agent/config.c, check_events) */
	if (config_check_yaml(what, buf, len, errmsg, errlen) != 0)
		return -EINVAL;
	if (!yaml_parser_initialize(&p))
		xoom("yaml_parser_initialize");
	yaml_parser_set_input_string(&p, (const unsigned char *)buf, len);
	if (!yaml_parser_load(&p, doc)) {
		snprintf(errmsg, errlen, "%s: not YAML: %s at line %zu", what, p.problem ? p.problem : "error",
			 p.problem_mark.line + 1);
		yaml_parser_delete(&p);
		return -EINVAL;
	}
	yaml_parser_delete(&p);
	root = yaml_document_get_root_node(doc);
	if (root != NULL && root->type != YAML_MAPPING_NODE) {
		snprintf(errmsg, errlen, "%s: expected a mapping of sections at the top", what);
		yaml_document_delete(doc);
		return -EINVAL;
	}
	return 0;
}

struct outbuf {
	char *p;
	size_t len, cap;
};

static int write_out(void *data, unsigned char *buffer, size_t size)
{
	struct outbuf *o = data;

	if (o->len + size + 1 > o->cap) {
		o->cap = (o->len + size + 1) * 2;
		o->p = xrealloc(o->p, o->cap);
	}
	memcpy(o->p + o->len, buffer, size);
	o->len += size;
	o->p[o->len] = '\0';
	return 1;
}

/* Emit `doc` (destroyed by libyaml) as block-style YAML. */
static int emit(yaml_document_t *doc, char **out, char *errmsg, size_t errlen)
{
	yaml_emitter_t e;
	struct outbuf o = {0};
	int ok;

	if (!yaml_emitter_initialize(&e))
		xoom("yaml_emitter_initialize");
	yaml_emitter_set_output(&e, write_out, &o);
	yaml_emitter_set_unicode(&e, 1);
	yaml_emitter_set_width(&e, -1);
	ok = yaml_emitter_open(&e) && yaml_emitter_dump(&e, doc) && yaml_emitter_close(&e);
	if (!ok) {
		snprintf(errmsg, errlen, "cannot write YAML: %s", e.problem ? e.problem : "error");
		yaml_emitter_delete(&e);
		yaml_document_delete(doc);
		free(o.p);
		return -EINVAL;
	}
	yaml_emitter_delete(&e);
	*out = o.p ? o.p : xstrdup("");
	return 0;
}

/* ---- copying nodes ----------------------------------------------------------- */

struct copy {
	yaml_document_t *from, *to;
	size_t nodes;
	bool too_many;
};

static yaml_node_t *node(yaml_document_t *d, int i)
{
	return yaml_document_get_node(d, i);
}

/* Copy node `i` of c->from into c->to; its index there, or 0. */
static int copy_node(struct copy *c, int i, int depth)
{
	yaml_node_t *n = node(c->from, i);
	int id = 0;

	if (n == NULL || depth > CONFIG_MAX_DEPTH || ++c->nodes > CONFIG_SYNC_MAX_NODES) {
		c->too_many = true;
		return 0;
	}
	switch (n->type) {
	case YAML_SCALAR_NODE:
		id = yaml_document_add_scalar(c->to, NULL, n->data.scalar.value, (int)n->data.scalar.length,
					      n->data.scalar.style);
		break;
	case YAML_SEQUENCE_NODE:
		id = yaml_document_add_sequence(c->to, NULL, YAML_BLOCK_SEQUENCE_STYLE);
		for (yaml_node_item_t *it = n->data.sequence.items.start; id && it < n->data.sequence.items.top; it++) {
			int v = copy_node(c, *it, depth + 1);
			if (v == 0 || !yaml_document_append_sequence_item(c->to, id, v))
				return 0;
		}
		break;
	case YAML_MAPPING_NODE:
		id = yaml_document_add_mapping(c->to, NULL, YAML_BLOCK_MAPPING_STYLE);
		for (yaml_node_pair_t *p = n->data.mapping.pairs.start; id && p < n->data.mapping.pairs.top; p++) {
			int k = copy_node(c, p->key, depth + 1), v = k ? copy_node(c, p->value, depth + 1) : 0;
			if (v == 0 || !yaml_document_append_mapping_pair(c->to, id, k, v))
				return 0;
		}
		break;
	default:
		break;
	}
	if (id == 0 && !c->too_many)
		xoom("yaml_document_add"); /* libyaml fails here only for lack of memory */
	return id;
}

/* The key text of a pair, or NULL when the key is not a scalar. */
static const char *key_text(yaml_document_t *d, const yaml_node_pair_t *p)
{
	yaml_node_t *k = node(d, p->key);
	return k != NULL && k->type == YAML_SCALAR_NODE ? (const char *)k->data.scalar.value : NULL;
}

/* The value of `key` in mapping `map` of `d`, or NULL. */
static yaml_node_t *lookup(yaml_document_t *d, yaml_node_t *map, const char *key, int *index)
{
	if (map == NULL || map->type != YAML_MAPPING_NODE)
		return NULL;
	for (yaml_node_pair_t *p = map->data.mapping.pairs.start; p < map->data.mapping.pairs.top; p++) {
		const char *k = key_text(d, p);
		if (k != NULL && strcmp(k, key) == 0) {
			if (index)
				*index = p->value;
			return node(d, p->value);
		}
	}
	return NULL;
}

/* Append key `key` -> copy of node `vi` of c->from to mapping `map` of c->to. */
static bool add_pair(struct copy *c, int map, int key_index, int vi)
{
	int k = copy_node(c, key_index, 1), v = k ? copy_node(c, vi, 1) : 0;
	return v != 0 && yaml_document_append_mapping_pair(c->to, map, k, v);
}

/* The shared keys of the section mapping `sec` of c->from, appended to `map`. */
static bool add_shared(struct copy *c, const char *section, yaml_node_t *sec, int map)
{
	for (yaml_node_pair_t *p = sec->data.mapping.pairs.start; p < sec->data.mapping.pairs.top; p++) {
		const char *k = key_text(c->from, p);
		if (k != NULL && share_of(section, k) == SHARE_WHOLE && !add_pair(c, map, p->key, p->value))
			return false;
	}
	return true;
}

static int new_doc(yaml_document_t *d)
{
	if (!yaml_document_initialize(d, NULL, NULL, NULL, 1, 1))
		xoom("yaml_document_initialize");
	int root = yaml_document_add_mapping(d, NULL, YAML_BLOCK_MAPPING_STYLE);
	if (root == 0)
		xoom("yaml_document_add_mapping");
	return root;
}

/* ---- extract ------------------------------------------------------------------ */

/* The shared keys of `from`'s root into mapping `root` of `to`. */
static bool extract_into(struct copy *c, int root)
{
	yaml_node_t *r = yaml_document_get_root_node(c->from);

	if (r == NULL)
		return true;
	for (yaml_node_pair_t *p = r->data.mapping.pairs.start; p < r->data.mapping.pairs.top; p++) {
		const char *k = key_text(c->from, p);
		yaml_node_t *v = node(c->from, p->value);
		enum share s = k ? share_of("", k) : SHARE_NONE;

		if (s == SHARE_WHOLE && !add_pair(c, root, p->key, p->value))
			return false;
		if (s == SHARE_PARTIAL && v != NULL && v->type == YAML_MAPPING_NODE) {
			int kk = copy_node(c, p->key, 1);
			int sec = yaml_document_add_mapping(c->to, NULL, YAML_BLOCK_MAPPING_STYLE);
			if (kk == 0 || sec == 0 || !add_shared(c, k, v, sec))
				return false;
			if (node(c->to, sec)->data.mapping.pairs.top != node(c->to, sec)->data.mapping.pairs.start &&
			    !yaml_document_append_mapping_pair(c->to, root, kk, sec))
				return false;
		}
	}
	return true;
}

int config_sync_extract(const char *buf, size_t len, char **out, bool *has_node, char *errmsg, size_t errlen)
{
	yaml_document_t in, res;
	struct copy c = {.from = &in, .to = &res};
	int root, rv;

	*out = NULL;
	if ((rv = load("configuration", buf, len, &in, errmsg, errlen)) != 0)
		return rv;
	if (has_node)
		*has_node = lookup(&in, yaml_document_get_root_node(&in), "node", NULL) != NULL;
	root = new_doc(&res);
	if (!extract_into(&c, root)) {
		snprintf(errmsg, errlen, "configuration: more than %d YAML nodes, or nested too deep",
			 CONFIG_SYNC_MAX_NODES);
		yaml_document_delete(&res);
		yaml_document_delete(&in);
		return -EINVAL;
	}
	yaml_document_delete(&in);
	return emit(&res, out, errmsg, errlen);
}

/* ---- merge -------------------------------------------------------------------- */

int config_sync_merge(const char *local, size_t llen, const char *repl, size_t rlen, char **out, char *errmsg,
		      size_t errlen)
{
	yaml_document_t l, r, res;
	struct copy cl = {.from = &l, .to = &res}, cr = {.from = &r, .to = &res};
	yaml_node_t *lroot, *rroot;
	int root, rv;
	bool ok = true;

	*out = NULL;
	if ((rv = load("this node's configuration", local, llen, &l, errmsg, errlen)) != 0)
		return rv;
	if ((rv = load("replicated configuration", repl, rlen, &r, errmsg, errlen)) != 0) {
		yaml_document_delete(&l);
		return rv;
	}
	root = new_doc(&res);
	lroot = yaml_document_get_root_node(&l);
	rroot = yaml_document_get_root_node(&r);
	/* The local sections in their order; a shared section takes the
	 * replicated text's place there. */
	for (yaml_node_pair_t *p = lroot ? lroot->data.mapping.pairs.start : NULL;
	     ok && lroot && p < lroot->data.mapping.pairs.top; p++) {
		const char *k = key_text(&l, p);
		yaml_node_t *lv = node(&l, p->value), *rv_node;
		enum share s = k ? share_of("", k) : SHARE_NONE;
		int ri = 0;

		if (s == SHARE_PARTIAL && (lv == NULL || lv->type != YAML_MAPPING_NODE))
			s = SHARE_NONE; /* not a section: config_load_text() says what is wrong */
		rv_node = k ? lookup(&r, rroot, k, &ri) : NULL;
		if (s == SHARE_NONE) {
			ok = add_pair(&cl, root, p->key, p->value);
		} else if (s == SHARE_WHOLE) {
			if (rv_node != NULL) {
				int kk = copy_node(&cl, p->key, 1), v = kk ? copy_node(&cr, ri, 1) : 0;
				ok = v != 0 && yaml_document_append_mapping_pair(&res, root, kk, v);
			}
		} else {
			int kk = copy_node(&cl, p->key, 1);
			int sec = yaml_document_add_mapping(&res, NULL, YAML_BLOCK_MAPPING_STYLE);
			ok = kk != 0 && sec != 0;
			for (yaml_node_pair_t *q = lv->data.mapping.pairs.start; ok && q < lv->data.mapping.pairs.top; q++) {
				const char *sk = key_text(&l, q);
				if (sk == NULL || share_of(k, sk) == SHARE_NONE)
					ok = add_pair(&cl, sec, q->key, q->value);
			}
			if (ok && rv_node != NULL && rv_node->type == YAML_MAPPING_NODE)
				ok = add_shared(&cr, k, rv_node, sec);
			ok = ok && yaml_document_append_mapping_pair(&res, root, kk, sec);
		}
	}
	/* Shared sections the local file lacks. */
	for (yaml_node_pair_t *p = rroot ? rroot->data.mapping.pairs.start : NULL;
	     ok && rroot && p < rroot->data.mapping.pairs.top; p++) {
		const char *k = key_text(&r, p);
		yaml_node_t *v = node(&r, p->value);
		if (k == NULL || share_of("", k) == SHARE_NONE || lookup(&l, lroot, k, NULL) != NULL)
			continue;
		if (share_of("", k) == SHARE_WHOLE) {
			ok = add_pair(&cr, root, p->key, p->value);
		} else if (v != NULL && v->type == YAML_MAPPING_NODE) {
			int kk = copy_node(&cr, p->key, 1);
			int sec = yaml_document_add_mapping(&res, NULL, YAML_BLOCK_MAPPING_STYLE);
			ok = kk != 0 && sec != 0 && add_shared(&cr, k, v, sec) &&
			     yaml_document_append_mapping_pair(&res, root, kk, sec);
		}
	}
	yaml_document_delete(&l);
	yaml_document_delete(&r);
	if (!ok) {
		snprintf(errmsg, errlen, "configuration: more than %d YAML nodes, or nested too deep",
			 CONFIG_SYNC_MAX_NODES);
		yaml_document_delete(&res);
		return -EINVAL;
	}
	return emit(&res, out, errmsg, errlen);
}

/* ---- diff --------------------------------------------------------------------- */

/* Every leaf of node `i` under `path` into `flat` (path -> scalar text). */
static void flatten(yaml_document_t *d, int i, const char *path, json_t *flat, int depth, size_t *count)
{
	yaml_node_t *n = node(d, i);
	char sub[1024];

	if (n == NULL || depth > CONFIG_MAX_DEPTH || ++*count > CONFIG_SYNC_MAX_NODES)
		return;
	switch (n->type) {
	case YAML_SCALAR_NODE:
		json_object_set_new(flat, path,
				    xcheck(json_stringn_nocheck((const char *)n->data.scalar.value, n->data.scalar.length)));
		break;
	case YAML_SEQUENCE_NODE:
		if (n->data.sequence.items.top == n->data.sequence.items.start)
			json_object_set_new(flat, path, xcheck(json_string("[]")));
		for (yaml_node_item_t *it = n->data.sequence.items.start; it < n->data.sequence.items.top; it++) {
			snprintf(sub, sizeof sub, "%s[%td]", path, it - n->data.sequence.items.start);
			flatten(d, *it, sub, flat, depth + 1, count);
		}
		break;
	case YAML_MAPPING_NODE:
		if (n->data.mapping.pairs.top == n->data.mapping.pairs.start && path[0])
			json_object_set_new(flat, path, xcheck(json_string("{}")));
		for (yaml_node_pair_t *p = n->data.mapping.pairs.start; p < n->data.mapping.pairs.top; p++) {
			const char *k = key_text(d, p);
			snprintf(sub, sizeof sub, "%s%s%s", path, path[0] ? "." : "", k ? k : "?");
			flatten(d, p->value, sub, flat, depth + 1, count);
		}
		break;
	default:
		break;
	}
}

static json_t *flat_of(const char *what, const char *buf, size_t len, char *errmsg, size_t errlen)
{
	yaml_document_t d;
	json_t *flat;
	size_t count = 0;

	if (load(what, buf, len, &d, errmsg, errlen) != 0)
		return NULL;
	flat = xcheck(json_object());
	if (yaml_document_get_root_node(&d) != NULL)
		flatten(&d, 1, "", flat, 0, &count);
	yaml_document_delete(&d);
	return flat;
}

static void change(json_t *out, const char *key, const char *what, json_t *old, json_t *new)
{
	json_t *o = xcheck(json_pack("{s:s,s:s}", "key", key, "change", what));
	if (old)
		json_object_set(o, "old", old);
	if (new)
		json_object_set(o, "new", new);
	if (json_array_append_new(out, o) != 0)
		xoom("json_array_append_new");
}

json_t *config_sync_diff(const char *old, size_t olen, const char *new, size_t nlen, char *errmsg, size_t errlen)
{
	json_t *a = flat_of("old configuration", old, olen, errmsg, errlen), *b, *out, *v;
	const char *k;

	if (a == NULL)
		return NULL;
	if ((b = flat_of("new configuration", new, nlen, errmsg, errlen)) == NULL) {
		json_decref(a);
		return NULL;
	}
	out = xcheck(json_array());
	json_object_foreach(a, k, v) {
		json_t *w = json_object_get(b, k);
		if (w == NULL)
			change(out, k, "removed", v, NULL);
		else if (!json_equal(v, w))
			change(out, k, "changed", v, w);
	}
	json_object_foreach(b, k, v) {
		if (json_object_get(a, k) == NULL)
			change(out, k, "added", NULL, v);
	}
	json_decref(a);
	json_decref(b);
	return out;
}

bool config_sync_needs_resync(const json_t *diff)
{
	size_t i;
	json_t *c;

	json_array_foreach(diff, i, c) {
		const char *k = json_string_value(json_object_get(c, "key"));
		if (k == NULL || strncmp(k, "safety.", 7) != 0)
			return true;
	}
	return false;
}

char *config_sync_summary(const json_t *diff)
{
	size_t i, n = json_array_size(diff), len = 0;
	char buf[1024];
	json_t *c;

	buf[0] = '\0';
	if (n == 0)
		return xstrdup("no change");
	json_array_foreach(diff, i, c) {
		if (i == 3)
			break;
		len += (size_t)snprintf(buf + len, sizeof buf - len, "%s%s %s", i ? ", " : "",
					json_string_value(json_object_get(c, "key")),
					json_string_value(json_object_get(c, "change")));
		if (len >= sizeof buf)
			len = sizeof buf - 1;
	}
	if (n > 3)
		snprintf(buf + len, sizeof buf - len, " and %zu more", n - 3);
	return xstrdup(buf);
}
