/*
 * sync/source/ad_reconcile.c -- the anchor comparison (source.reconcile_s):
 * deletions the bind account cannot see.
 *
 * DirSync reports a deletion as a tombstone, and an account that is not an
 * administrator reads no tombstones (it may not list CN=Deleted Objects;
 * docs/active-directory.md, "Bind rights"): without this, such a deletion is
 * missed for as long as the agent runs. So every reconcile_s the source lists
 * the objectGUID of every user and group under users.base and groups.base
 * (a subtree search with the simple paged results control, RFC 2696: a
 * Windows DC stops an unpaged search at MaxPageSize, 1,000) and reports each
 * object it reported in scope that the DC no longer has, through the normal
 * delete path (SOURCE_DELETE, so delete protection counts it). The objects
 * were in the cache before the search started (the same worker thread reads
 * DirSync and runs this), so one missing from a complete listing was deleted
 * or moved out of both bases since; either way it leaves the scope. An object
 * created meanwhile is in the listing and not in the cache: the next DirSync
 * round reports it.
 *
 * Only a complete listing is compared: a failed page, a base that no longer
 * exists or a listing with no object at all while the cache holds some
 * (an account that lost its read right) report nothing and say why.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "sync/source/ad_internal.h"
#include "sync/source/ldap_paged.h"

#define RECONCILE_PAGE 500
#define RECONCILE_PAGES_MAX 100000
#define RECONCILE_SHOW_MAX 5 /* DNs named in the log line */

struct guid_listing {
	struct ad_source *s;
	struct strmap *seen;
	size_t pages;
	const char *base, *url;
	char *msg;
	size_t len;
};

static int list_guids_page(void *ctx, LDAP *ld, LDAPMessage *res, bool more)
{
	struct guid_listing *g = ctx;

	for (LDAPMessage *m = ldap_first_entry(ld, res); m != NULL; m = ldap_next_entry(ld, m)) {
		struct berval **v = ldap_get_values_len(ld, m, "objectGUID");
		char guid[37];
		if (v != NULL && v[0] != NULL && ad_guid_format(v[0]->bv_val, v[0]->bv_len, guid) == 0 &&
		    strmap_put(g->seen, guid, NULL) != 0)
			xoom("strmap_put");
		ldap_value_free_len(v);
	}
	if (!more)
		return 0;
	/* before asking for the next page: an agent that is stopping, or a
	 * server that never ends the listing */
	if (ad__is_stopping(g->s))
		return -ECANCELED;
	if (++g->pages >= RECONCILE_PAGES_MAX)
		return ad__fail(g->msg, g->len, -EPROTO, "%s: reconcile of %s: more than %d pages", g->url, g->base,
				RECONCILE_PAGES_MAX);
	return 0;
}

/* Add the objectGUIDs under `base` to `seen`. Returns 0, 1 when the base does
 * not exist, or a negative errno with msg set. */
static int list_guids(struct ad_source *s, const char *base, struct strmap *seen, const char *url, char *msg,
		      size_t len)
{
	char *attrs[] = {"objectGUID", NULL};
	const struct ldap_paged_query q = {base, "(|(objectClass=user)(objectClass=group))", attrs, RECONCILE_PAGE,
					   AD_OP_TIMEOUT_S};
	struct guid_listing g = {s, seen, 0, base, url, msg, len};
	struct ldap_paged_failure why;
	int rc;

	if (ad__is_stopping(s))
		return -ECANCELED;
	rc = ldap_paged_search(s->ld, &q, list_guids_page, &g, &why);
	if (rc == LDAP_PAGED_NO_BASE)
		return 1;
	if (why.search_rc != LDAP_SUCCESS || why.result != LDAP_SUCCESS) { /* the request failed */
		int code = why.search_rc != LDAP_SUCCESS ? ad__ldap_code(s->ld, why.search_rc) : why.result;
		char what[600];
		snprintf(what, sizeof what, "reconcile: paged search of %s", base);
		ad__status_fmt(msg, len, url, code, s->ld, what);
		s->w.problem = why.search_rc < 0 ? SOURCE_UNREACHABLE : SOURCE_FAILING;
	}
	return rc;
}

struct compare {
	struct ad_source *s;
	struct strmap *seen;
	char **gone;
	size_t n_gone, known;
	char shown[300];
};

static bool listed_base(const struct ad_source *s, const struct ad_obj *o)
{
	return (s->user_base && ad__dn_under(o->dn_norm, s->user_base)) ||
	       (s->group_base && ad__dn_under(o->dn_norm, s->group_base));
}

static int compare_one(void *ctx, const char *key, void *val)
{
	struct compare *x = ctx;
	struct ad_obj *o = val;

	if (!ad__obj_reported(o) || o->dn_norm == NULL || !listed_base(x->s, o))
		return 0;
	x->known++;
	if (strmap_has(x->seen, key))
		return 0;
	x->gone = xrealloc(x->gone, (x->n_gone + 1) * sizeof *x->gone);
	x->gone[x->n_gone++] = xstrdup(key);
	if (x->n_gone <= RECONCILE_SHOW_MAX) {
		size_t l = strlen(x->shown);
		snprintf(x->shown + l, sizeof x->shown - l, "%s%s", l ? "; " : "", o->dn);
	}
	return 0;
}

int ad__reconcile(struct ad_source *s, const char *url, char *msg, size_t len)
{
	struct strmap seen;
	struct compare x = {s, &seen, NULL, 0, 0, ""};
	const char *bases[2] = {s->user_base, s->group_base};
	uint64_t t0 = ad__now_ms();
	int rc = 0, missing = -1;

	strmap_init(&seen, NULL);
	for (int i = 0; i < 2 && rc == 0; i++) {
		if (bases[i] == NULL || (i == 1 && s->user_base && ad__dn_under(bases[1], s->user_base)))
			continue; /* listed already */
		rc = list_guids(s, bases[i], &seen, url, msg, len);
		if (rc == 1)
			missing = i;
	}
	if (rc < 0)
		goto out;
	strmap_foreach(&s->cache.by_guid, compare_one, &x);
	if (rc == 1) {
		rc = ad__notice(s, true, "%s: reconcile: %s does not exist on the DC: nothing compared, nothing deleted",
				url, bases[missing]);
	} else if (seen.count == 0 && x.known > 0) {
		rc = ad__notice(s, true, "%s: reconcile: the DC listed no user or group under the bases while %zu are "
			       "known (read rights lost?): nothing deleted", url, x.known);
	} else {
		rc = ad__notice(s, false, "%s: reconcile: %zu objects on the DC, %zu known, %zu no longer on the DC%s%s%s "
			       "(%llu ms)", url, seen.count, x.known, x.n_gone, x.n_gone ? ", reported deleted: " : "",
			       x.shown, x.n_gone > RECONCILE_SHOW_MAX ? "; ..." : "",
			       (unsigned long long)(ad__now_ms() - t0));
		if (rc == 0 && x.n_gone > 0)
			rc = ad__cache_gone(s, x.gone, x.n_gone);
	}
out:
	for (size_t i = 0; i < x.n_gone; i++)
		free(x.gone[i]);
	free(x.gone);
	strmap_clear(&seen);
	free(seen.buckets);
	return rc;
}
