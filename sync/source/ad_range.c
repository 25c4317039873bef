/*
 * sync/source/ad_range.c -- ranged retrieval of multi-valued attributes.
 *
 * A Windows DC returns at most MaxValRange values (1,500 by default; the LDAP
 * policies of MS-ADTS 3.1.1.3.4.6) of one attribute on an ordinary search.
 * The rest is left out and the attribute comes back under a range option,
 * "member;range=0-1499"; the client asks again for "member;range=1500-*" and
 * so on until an answer's range ends in "*" (MS-ADTS 3.1.1.3.1.3.3, range
 * retrieval). DirSync is not affected: with INCREMENTAL_VALUES it gives
 * "member;range=1-1" / ";range=0-0" for added / removed values, which
 * ad_dirsync.c reads. Samba answers in full unless a range is asked for
 * (docs/active-directory.md), so the loop below is tested with fake answers
 * (tests/unit/test_ad_source.c) and the parser is fuzzed
 * (tests/fuzz/fuzz_ad_range.c).
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "sync/source/ad_internal.h"

/* A group of a million members needs 667 follow-up reads at 1,500 a read:
 * more than this many is a DC that does not make progress. */
#define AD_RANGE_READS_MAX 100000

static int number(const char *p, const char **end, uint32_t *out)
{
	uint64_t v = 0;
	const char *q = p;

	while (*q >= '0' && *q <= '9') {
		v = v * 10 + (uint64_t)(*q - '0');
		if (v > UINT32_MAX)
			return -EINVAL;
		q++;
	}
	if (q == p)
		return -EINVAL;
	*out = (uint32_t)v;
	*end = q;
	return 0;
}

int ad_range_parse(const char *desc, size_t *base_len, uint32_t *lo, uint32_t *hi, bool *last)
{
	static const char opt[] = "range=";
	const char *semi, *p, *end;

	if (desc == NULL)
		return -EINVAL;
	semi = strchr(desc, ';');
	*base_len = semi ? (size_t)(semi - desc) : strlen(desc);
	/* options are ";"-separated (RFC 4512 §2.5): find the range one */
	for (p = semi; p != NULL; p = strchr(p + 1, ';'))
		if (strncasecmp(p + 1, opt, sizeof opt - 1) == 0)
			break;
	if (p == NULL)
		return 0;
	if (*base_len == 0)
		return -EINVAL;
	p += sizeof opt;
	if (number(p, &end, lo) != 0 || *end != '-')
		return -EINVAL;
	p = end + 1;
	if (*p == '*') {
		*last = true;
		*hi = UINT32_MAX;
		end = p + 1;
	} else {
		*last = false;
		if (number(p, &end, hi) != 0 || *hi < *lo)
			return -EINVAL;
	}
	if (*end != '\0' && *end != ';')
		return -EINVAL;
	return 1;
}

int ad_range_next(const char *desc, char *next, size_t len)
{
	size_t blen;
	uint32_t lo, hi;
	bool last;
	int rc = ad_range_parse(desc, &blen, &lo, &hi, &last);

	if (rc <= 0)
		return rc < 0 ? rc : 0;
	if (last)
		return 0;
	if (hi == UINT32_MAX || blen > 256)
		return -EINVAL;
	if ((size_t)snprintf(next, len, "%.*s;range=%u-*", (int)blen, desc, hi + 1) >= len)
		return -EINVAL;
	return 1;
}

struct ldap_fetch {
	struct ad_source *s;
	const char *url;
};

/* The next range of one attribute by a base read: *got is the answer's
 * attribute description (NULL: the DC sent no such attribute). */
static int ldap_fetch(void *ctx, const char *dn, const char *want, char **got, char ***values, size_t *n_values,
		      char *msg, size_t len)
{
	struct ldap_fetch *f = ctx;
	struct ad_source *s = f->s;
	char *attrs[] = {(char *)want, NULL};
	LDAPMessage *res = NULL, *m;
	struct timeval tv = {AD_OP_TIMEOUT_S, 0};
	BerElement *ber = NULL;
	int rc;

	if (ad__is_stopping(s))
		return -ECANCELED;
	rc = ldap_search_ext_s(s->ld, dn, LDAP_SCOPE_BASE, "(objectClass=*)", attrs, 0, NULL, NULL, &tv, 1, &res);
	if (rc != LDAP_SUCCESS) {
		int code = ad__ldap_code(s->ld, rc);
		ad__status_fmt(msg, len, f->url, code, s->ld, want);
		s->w.problem = rc < 0 ? SOURCE_UNREACHABLE : SOURCE_FAILING;
		ldap_msgfree(res);
		return rc < 0 ? -ECONNRESET : -EIO;
	}
	m = ldap_first_entry(s->ld, res);
	char *a = m ? ldap_first_attribute(s->ld, m, &ber) : NULL;
	if (a != NULL) {
		struct berval **v = ldap_get_values_len(s->ld, m, a);
		size_t k = v ? (size_t)ldap_count_values_len(v) : 0;
		*got = xstrdup(a);
		*values = xcalloc(k + 1, sizeof **values);
		for (size_t i = 0; i < k; i++)
			(*values)[i] = xstrndup(v[i]->bv_val, v[i]->bv_len);
		*n_values = k;
		ldap_value_free_len(v);
		ldap_memfree(a);
	}
	ber_free(ber, 0);
	ldap_msgfree(res);
	return 0;
}

/* Append values (taking them) to the attribute of e named `name` (member:
 * the set). */
static void append(struct ad_entry *e, const char *name, size_t nlen, char **vals, size_t k)
{
	char ***v;
	size_t *n;
	struct object_attr *a = NULL;

	if (nlen == 6 && strncasecmp(name, "member", 6) == 0) {
		v = &e->member_set;
		n = &e->n_set;
	} else {
		for (size_t i = 0; i < e->n_attrs && a == NULL; i++)
			if (strlen(e->attrs[i].name) == nlen && strncasecmp(e->attrs[i].name, name, nlen) == 0)
				a = &e->attrs[i];
		if (a == NULL) { /* ad_dirsync.c made it from the first range */
			for (size_t i = 0; i < k; i++)
				free(vals[i]);
			return;
		}
		v = &a->values;
		n = &a->n_values;
	}
	*v = xrealloc(*v, (*n + k + 1) * sizeof **v);
	for (size_t i = 0; i < k; i++)
		(*v)[(*n)++] = vals[i];
}

static void values_free(char **v, size_t n)
{
	for (size_t i = 0; v != NULL && i < n; i++)
		free(v[i]);
	free(v);
}

int ad__ranges_follow(struct ad_entry *e, const char *dn, ad__range_fetch_fn fetch, void *ctx, char *msg,
		      size_t len)
{
	for (size_t i = 0; i < e->n_partial; i++) {
		char want[300], *got = NULL, *base;
		const char *cur = e->partial[i];
		size_t blen, reads = 0;
		uint32_t lo, hi, expect;
		bool last;
		int rc;

		if (ad_range_parse(cur, &blen, &lo, &hi, &last) != 1)
			continue;
		base = xstrndup(cur, blen);
		while ((rc = ad_range_next(cur, want, sizeof want)) == 1) {
			char **vals = NULL;
			size_t nv = 0;
			expect = hi + 1;
			free(got);
			got = NULL;
			if (++reads > AD_RANGE_READS_MAX) {
				free(base);
				return ad__fail(msg, len, -EPROTO, "%s of %s: more than %d range reads", want, dn,
						AD_RANGE_READS_MAX);
			}
			if ((rc = fetch(ctx, dn, want, &got, &vals, &nv, msg, len)) != 0) {
				values_free(vals, nv);
				free(got);
				free(base);
				return rc;
			}
			/* the next range must start where we asked, or the
			 * values would have a hole or repeat */
			if (got == NULL || ad_range_parse(got, &blen, &lo, &hi, &last) != 1 || lo != expect ||
			    blen != strlen(base) || strncasecmp(got, base, blen) != 0) {
				snprintf(msg, len, "%s of %s: the DC answered %s", want, dn,
					 got ? got : "without the attribute");
				values_free(vals, nv);
				free(got);
				free(base);
				return -EPROTO;
			}
			append(e, base, blen, vals, nv);
			free(vals);
			cur = got;
		}
		if (rc < 0)
			rc = ad__fail(msg, len, -EPROTO, "%s of %s: malformed range", cur, dn);
		free(got);
		free(base);
		if (rc < 0)
			return rc;
	}
	return 0;
}

int ad__read_ranges(struct ad_source *s, const char *dn, struct ad_entry *e, const char *url, char *msg,
		    size_t len)
{
	struct ldap_fetch f = {s, url};
	char why[SOURCE_WORKER_MSG_MAX];
	int rc = ad__ranges_follow(e, dn, ldap_fetch, &f, why, sizeof why);

	if (rc == -EPROTO) {
		s->w.problem = SOURCE_FAILING;
		snprintf(msg, len, "%s: %s", url, why);
	} else if (rc != 0) {
		snprintf(msg, len, "%s", why);
	}
	return rc;
}
