/* sync/state/object.c -- see object.h. */
#include "sync/state/object.h"

#include "common/xalloc.h"

#include <errno.h>
#include <inttypes.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

uint64_t object_staged_count(const struct state *s)
{
	return state_count(s, STATE_NS_STAGED) + state_count(s, STATE_NS_STAGED_MEMBER);
}

size_t object_key(char prefix, const char *anchor, char *buf, size_t size)
{
	int n = snprintf(buf, size, "%c:%s", prefix, anchor);
	return n < 0 ? 0 : (size_t)n < size ? (size_t)n : size - 1;
}

/*
 * The strings of a record are UTF-8 whatever happens: anchors and DNs come
 * from LDAP string syntaxes, the target id from a parsed JSON answer, and a
 * record read back was JSON. So a NULL from jansson here is out of memory.
 */
static json_t *strings(char **v, size_t n)
{
	json_t *a = xcheck(json_array());
	size_t i;
	for (i = 0; i < n; i++)
		if (json_array_append_new(a, xcheck(json_string(v[i]))) != 0)
			xoom("json_array_append_new");
	return a;
}

int object_record_encode(const struct object_record *r, char **buf, size_t *len)
{
	char hash[17];
	json_t *o;

	snprintf(hash, sizeof hash, "%016" PRIx64, r->hash);
	o = xcheck(json_pack("{s:i,s:s,s:s?,s:s,s:s?}", "v", OBJECT_RECORD_VERSION, "t",
			     object_type_name(r->type), "id", r->target_id, "h", hash, "dn", r->dn));
	if (r->type == OBJECT_GROUP) {
		if (json_object_set_new(o, "m", strings(r->members, r->n_members)) != 0 ||
		    (r->n_unresolved &&
		     json_object_set_new(o, "u", strings(r->unresolved, r->n_unresolved)) != 0) ||
		    (r->n_refused && json_object_set_new(o, "rf", strings(r->refused, r->n_refused)) != 0) ||
		    (r->flat && json_object_set_new(o, "du", strings(r->direct_users, r->n_direct_users)) != 0) ||
		    (r->flat && json_object_set_new(o, "ng", strings(r->nested, r->n_nested)) != 0))
			xoom("json_object_set_new");
	}
	/* Written only when set: records without a manager stay byte for byte
	 * what they were, and an older canopy ignores the fields. */
	if ((r->manager_dn && json_object_set_new(o, "md", xcheck(json_string(r->manager_dn))) != 0) ||
	    (r->manager && json_object_set_new(o, "ma", xcheck(json_string(r->manager))) != 0) ||
	    (r->member_key && json_object_set_new(o, "mk", xcheck(json_string(r->member_key))) != 0) ||
	    (r->members_in_doubt && json_object_set_new(o, "mu", json_true()) != 0))
		xoom("json_object_set_new");
	*buf = xcheck(json_dumps(o, JSON_COMPACT));
	json_decref(o);
	*len = strlen(*buf);
	return 0;
}

static int take_strings(json_t *a, char ***out, size_t *n)
{
	size_t i;
	json_t *v;

	*out = NULL;
	*n = 0;
	if (a == NULL)
		return 0;
	if (!json_is_array(a))
		return -EPROTO;
	*out = xcalloc(json_array_size(a) + 1, sizeof **out);
	json_array_foreach(a, i, v)
	{
		if (!json_is_string(v))
			return -EPROTO;
		(*out)[i] = xstrdup(json_string_value(v));
		(*n)++;
	}
	return 0;
}

int object_record_decode(const void *buf, size_t len, struct object_record *r, char *errmsg,
			 size_t errlen)
{
	json_error_t jerr;
	json_t *o = json_loadb(buf, len, 0, &jerr);
	const char *t, *id = NULL, *h, *dn = NULL, *md = NULL, *ma = NULL, *mk = NULL;
	json_t *jid = NULL, *jdn = NULL;
	int v, rv = -EPROTO;

	memset(r, 0, sizeof *r);
	if (o == NULL) {
		snprintf(errmsg, errlen, "object record is not JSON: %s", jerr.text);
		return -EPROTO;
	}
	/* "id" and "dn" are packed with "s?": null when unset, which "s?s"
	 * would refuse (a record that cannot be read is an object lost) */
	if (json_unpack(o, "{s:i,s:s,s?o,s:s,s?o,s?s,s?s,s?s}", "v", &v, "t", &t, "id", &jid, "h", &h, "dn",
			&jdn, "md", &md, "ma", &ma, "mk", &mk) != 0) {
		snprintf(errmsg, errlen, "object record lacks v/t/h");
		goto out;
	}
	if ((jid != NULL && !json_is_null(jid) && !json_is_string(jid)) ||
	    (jdn != NULL && !json_is_null(jdn) && !json_is_string(jdn))) {
		snprintf(errmsg, errlen, "object record: id or dn is neither a string nor null");
		goto out;
	}
	id = json_is_string(jid) ? json_string_value(jid) : NULL;
	dn = json_is_string(jdn) ? json_string_value(jdn) : NULL;
	if (v < 1 || v > OBJECT_RECORD_VERSION) {
		snprintf(errmsg, errlen, "object record version %d not understood", v);
		goto out;
	}
	r->type = strcmp(t, "user") == 0 ? OBJECT_USER
		  : strcmp(t, "group") == 0 ? OBJECT_GROUP
					     : OBJECT_UNKNOWN;
	r->hash = strtoull(h, NULL, 16);
	r->target_id = id ? xstrdup(id) : NULL;
	r->dn = dn ? xstrdup(dn) : NULL;
	r->manager_dn = md ? xstrdup(md) : NULL;
	r->manager = ma ? xstrdup(ma) : NULL;
	r->member_key = mk ? xstrdup(mk) : NULL;
	r->members_in_doubt = json_is_true(json_object_get(o, "mu"));
	rv = take_strings(json_object_get(o, "m"), &r->members, &r->n_members);
	if (rv == 0)
		rv = take_strings(json_object_get(o, "u"), &r->unresolved, &r->n_unresolved);
	if (rv == 0)
		rv = take_strings(json_object_get(o, "rf"), &r->refused, &r->n_refused);
	r->flat = json_object_get(o, "du") != NULL;
	if (rv == 0)
		rv = take_strings(json_object_get(o, "du"), &r->direct_users, &r->n_direct_users);
	if (rv == 0)
		rv = take_strings(json_object_get(o, "ng"), &r->nested, &r->n_nested);
	if (rv != 0)
		snprintf(errmsg, errlen, "object record member lists malformed");
out:
	json_decref(o);
	if (rv != 0)
		object_record_free(r);
	return rv;
}

/*
 * jansson cannot read one member of an object without parsing all of it, so
 * the form object_record_encode() writes is matched here by hand: jansson
 * keeps insertion order, so a record starts {"v":1,"t":"<type>","id":"<id>"
 * (the id has no escapes: SCIM ids are opaque ASCII in practice). Anything
 * else -- an escaped id, no id, another version or writer -- goes through
 * object_record_decode(), so the answer never differs from it on a record it
 * accepts. The fast path trusts the bytes after the id: the state holds only
 * what canopy encoded, behind the log's checksums.
 */
int object_record_target_id(const void *buf, size_t len, char **id)
{
	static const char head[] = "{\"v\":1,\"t\":\"", key[] = "\",\"id\":\"";
	const char *p = buf, *end = p + len, *q;
	struct object_record r;
	char err[128];

	*id = NULL;
	if (len > sizeof head - 1 && memcmp(p, head, sizeof head - 1) == 0) {
		q = p + sizeof head - 1;
		while (q < end && *q >= 'a' && *q <= 'z')
			q++;
		if ((size_t)(end - q) > sizeof key - 1 && memcmp(q, key, sizeof key - 1) == 0) {
			const char *s = q + sizeof key - 1, *e = s;
			while (e < end && *e != '"' && *e != '\\' && (unsigned char)*e >= 0x20 &&
			       (unsigned char)*e < 0x80)
				e++;
			if (e < end && *e == '"') {
				*id = xstrndup(s, (size_t)(e - s));
				return 1;
			}
		}
	}
	if (object_record_decode(buf, len, &r, err, sizeof err) != 0)
		return -EPROTO;
	*id = r.target_id;
	r.target_id = NULL;
	object_record_free(&r);
	return *id != NULL;
}

static void free_strings(char **v, size_t n)
{
	size_t i;
	if (v == NULL)
		return;
	(void)n; /* lists are always NULL-terminated, even when partly filled */
	for (i = 0; v[i] != NULL; i++)
		free(v[i]);
	free(v);
}

void object_record_free(struct object_record *r)
{
	free(r->target_id);
	free(r->dn);
	free(r->manager_dn);
	free(r->manager);
	free(r->member_key);
	free_strings(r->members, r->n_members);
	free_strings(r->unresolved, r->n_unresolved);
	free_strings(r->refused, r->n_refused);
	free_strings(r->direct_users, r->n_direct_users);
	free_strings(r->nested, r->n_nested);
	memset(r, 0, sizeof *r);
}

static char **copy_strings(char *const *src, size_t n)
{
	char **dst = xcalloc(n + 1, sizeof *dst);
	size_t i;
	for (i = 0; i < n; i++)
		dst[i] = xstrdup(src[i]);
	return dst;
}

void object_record_copy(struct object_record *dst, const struct object_record *src)
{
	memset(dst, 0, sizeof *dst);
	dst->type = src->type;
	dst->hash = src->hash;
	dst->members_in_doubt = src->members_in_doubt;
	dst->n_members = src->n_members;
	dst->n_unresolved = src->n_unresolved;
	dst->target_id = src->target_id ? xstrdup(src->target_id) : NULL;
	dst->dn = src->dn ? xstrdup(src->dn) : NULL;
	dst->manager_dn = src->manager_dn ? xstrdup(src->manager_dn) : NULL;
	dst->manager = src->manager ? xstrdup(src->manager) : NULL;
	dst->member_key = src->member_key ? xstrdup(src->member_key) : NULL;
	dst->members = copy_strings(src->members, src->n_members);
	dst->unresolved = copy_strings(src->unresolved, src->n_unresolved);
	dst->n_refused = src->n_refused;
	dst->refused = src->n_refused ? copy_strings(src->refused, src->n_refused) : NULL;
	dst->flat = src->flat;
	dst->n_direct_users = src->n_direct_users;
	dst->direct_users = src->flat ? copy_strings(src->direct_users, src->n_direct_users) : NULL;
	dst->n_nested = src->n_nested;
	dst->nested = src->flat ? copy_strings(src->nested, src->n_nested) : NULL;
}
