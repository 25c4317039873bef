/* sync/state/retry.c -- see retry.h. */
#include "sync/state/retry.h"

#include "common/xalloc.h"
#include "sync/text_json.h"

#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const char *const kind_names[] = {"", "upsert", "delete", "disable", "reread"};

const char *retry_kind_name(enum retry_kind k)
{
	return k >= RETRY_UPSERT && k <= RETRY_REREAD ? kind_names[k] : "unknown";
}

static enum retry_kind kind_of(const char *s)
{
	for (int k = RETRY_UPSERT; k <= RETRY_REREAD; k++)
		if (strcmp(s, kind_names[k]) == 0)
			return (enum retry_kind)k;
	return 0;
}

/*
 * DNs come from LDAP string syntaxes (UTF-8), so a NULL from jansson for them
 * is out of memory; the error text may be cut in the middle of a character
 * (it is copied into fixed buffers) and goes through text_json().
 */
int retry_record_encode(const struct retry_record *r, char **buf, size_t *len)
{
	char hash[17];
	json_t *o, *m;
	size_t i;

	snprintf(hash, sizeof hash, "%016" PRIx64, r->hash);
	o = xcheck(json_pack("{s:i,s:s,s:s,s:s?,s:s,s:I,s:I,s:I,s:I,s:o?}", "v", RETRY_RECORD_VERSION, "k",
			     retry_kind_name(r->kind), "t", object_type_name(r->type), "dn", r->dn, "h", hash,
			     "n", (json_int_t)r->attempts, "first", (json_int_t)r->first_at_ms, "next",
			     (json_int_t)r->next_at_ms, "http", (json_int_t)r->http_status, "err",
			     r->error != NULL ? text_json(r->error) : NULL));
	if (r->resource != NULL && json_object_set(o, "res", r->resource) != 0)
		xoom("json_object_set");
	if (r->manager_dn != NULL && json_object_set_new(o, "md", xcheck(json_string(r->manager_dn))) != 0)
		xoom("json_object_set_new");
	if (r->member_key != NULL && json_object_set_new(o, "mk", xcheck(json_string(r->member_key))) != 0)
		xoom("json_object_set_new");
	/* written only for a failed member: other records stay byte for byte
	 * what they were, and an older canopy ignores the fields */
	if (r->member != NULL &&
	    (json_object_set_new(o, "mem", xcheck(json_string(r->member))) != 0 ||
	     (r->member_dn != NULL && json_object_set_new(o, "mdn", xcheck(json_string(r->member_dn))) != 0) ||
	     json_object_set_new(o, "mrm", json_boolean(r->member_remove)) != 0))
		xoom("json_object_set_new");
	if (r->n_member_dns > 0) {
		m = xcheck(json_array());
		if (json_object_set_new(o, "m", m) != 0)
			xoom("json_object_set_new");
		for (i = 0; i < r->n_member_dns; i++)
			if (json_array_append_new(m, xcheck(json_string(r->member_dns[i]))) != 0)
				xoom("json_array_append_new");
	}
	*buf = xcheck(json_dumps(o, JSON_COMPACT));
	json_decref(o);
	*len = strlen(*buf);
	return 0;
}

int retry_record_decode(const void *buf, size_t len, struct retry_record *r, char *errmsg, size_t errlen)
{
	json_error_t jerr;
	json_t *o = json_loadb(buf, len, 0, &jerr), *res = NULL, *m = NULL, *v, *jdn = NULL, *jerrtext = NULL, *mk;
	const char *k, *t, *h, *dn = NULL, *err = NULL, *md = NULL, *mem = NULL, *mdn = NULL;
	int mrm = 0;
	json_int_t ver, n = 0, first = 0, next = 0, http = 0;
	size_t i;
	int rc = -EPROTO;

	memset(r, 0, sizeof *r);
	if (o == NULL) {
		snprintf(errmsg, errlen, "retry record: %s", jerr.text);
		return -EPROTO;
	}
	/* "dn" and "err" are null when absent (retry_record_encode packs them
	 * with "s?"/"o?"): a record without an error text must still decode,
	 * or its change would never be retried */
	if (json_unpack_ex(o, &jerr, 0, "{s:I,s:s,s:s,s:s,s?o,s?I,s?I,s?I,s?I,s?o,s?o,s?o,s?s,s?s,s?s,s?b}", "v", &ver,
			   "k", &k, "t", &t, "h", &h, "dn", &jdn, "n", &n, "first", &first, "next", &next, "http",
			   &http, "err", &jerrtext, "res", &res, "m", &m, "md", &md, "mem", &mem, "mdn", &mdn, "mrm",
			   &mrm) != 0) {
		snprintf(errmsg, errlen, "retry record: %s", jerr.text);
		goto out;
	}
	if ((jdn != NULL && !json_is_null(jdn) && !json_is_string(jdn)) ||
	    (jerrtext != NULL && !json_is_null(jerrtext) && !json_is_string(jerrtext))) {
		snprintf(errmsg, errlen, "retry record: dn or err is neither a string nor null");
		goto out;
	}
	dn = json_is_string(jdn) ? json_string_value(jdn) : NULL;
	err = json_is_string(jerrtext) ? json_string_value(jerrtext) : NULL;
	if (ver > RETRY_RECORD_VERSION) {
		snprintf(errmsg, errlen, "retry record version %lld is newer than this canopy (%d)", (long long)ver,
			 RETRY_RECORD_VERSION);
		rc = -ENOTSUP;
		goto out;
	}
	r->kind = kind_of(k);
	r->type = strcmp(t, "group") == 0 ? OBJECT_GROUP : strcmp(t, "user") == 0 ? OBJECT_USER : OBJECT_UNKNOWN;
	if (r->kind == 0 || (res != NULL && !json_is_object(res)) || (m != NULL && !json_is_array(m))) {
		snprintf(errmsg, errlen, "retry record: bad kind, resource or members");
		goto out;
	}
	r->hash = strtoull(h, NULL, 16);
	r->attempts = (unsigned)n;
	r->first_at_ms = (uint64_t)first;
	r->next_at_ms = (uint64_t)next;
	r->http_status = (long)http;
	r->dn = dn != NULL ? xstrdup(dn) : NULL;
	r->error = err != NULL ? xstrdup(err) : NULL;
	r->manager_dn = md != NULL ? xstrdup(md) : NULL;
	mk = json_object_get(o, "mk");
	r->member_key = json_is_string(mk) ? xstrdup(json_string_value(mk)) : NULL;
	r->member = mem != NULL ? xstrdup(mem) : NULL;
	r->member_dn = mdn != NULL ? xstrdup(mdn) : NULL;
	r->member_remove = mrm != 0;
	r->resource = json_incref(res);
	if (m != NULL) {
		r->member_dns = xcalloc(json_array_size(m) + 1, sizeof *r->member_dns);
		json_array_foreach(m, i, v)
		{
			if (!json_is_string(v)) {
				snprintf(errmsg, errlen, "retry record: a member DN is not a string");
				goto out;
			}
			r->member_dns[i] = xstrdup(json_string_value(v));
			r->n_member_dns++;
		}
	}
	rc = 0;
out:
	json_decref(o);
	if (rc != 0)
		retry_record_free(r);
	return rc;
}

void retry_record_free(struct retry_record *r)
{
	size_t i;

	free(r->dn);
	json_decref(r->resource);
	for (i = 0; i < r->n_member_dns; i++)
		free(r->member_dns[i]);
	free(r->member_dns);
	free(r->error);
	free(r->manager_dn);
	free(r->member_key);
	free(r->member);
	free(r->member_dn);
	memset(r, 0, sizeof *r);
}

uint64_t retry_backoff_ms(unsigned attempts, uint64_t max_ms, uint64_t rnd)
{
	uint64_t d = 1000;
	unsigned i;

	for (i = 1; i < attempts && d < max_ms; i++)
		d *= 2;
	if (d > max_ms)
		d = max_ms;
	/* +-20 %: d * (0.8 + 0.4 * u), u uniform in [0, 1) */
	return d * 8 / 10 + (d * 4 / 10 ? rnd % (d * 4 / 10 + 1) : 0);
}
