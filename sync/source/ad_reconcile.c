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

#define RECONCILE_PAGE 500
#define RECONCILE_PAGES_MAX 100000
#define RECONCILE_SHOW_MAX 5 /* DNs named in the log line */

/* Add the objectGUIDs under `base` to `seen`. Returns 0, 1 when the base does
 * not exist, or a negative errno with msg set. */
static int list_guids(struct ad_source *s, const char *base, struct strmap *seen, const char *url, char *msg,
		      size_t len)
{
	static const char filter[] = "(|(objectClass=user)(objectClass=group))";
	char *attrs[] = {"objectGUID", NULL};
	struct berval cookie = {0, NULL};
	int rc = 0;

	for (size_t page = 0;; page++) {
		LDAPControl *pc = NULL, *ctrls[2] = {NULL, NULL}, **rctrls = NULL;
		LDAPMessage *res = NULL;
		struct timeval tv = {AD_OP_TIMEOUT_S, 0};
		ber_int_t estimate = 0;
		int err = 0;

		if (page >= RECONCILE_PAGES_MAX || ad__is_stopping(s)) {
			rc = ad__is_stopping(s) ? -ECANCELED : ad__fail(msg, len, -EPROTO, "%s: reconcile of %s: "
									"more than %d pages", url, base,
									RECONCILE_PAGES_MAX);
			break;
		}
		if (ldap_create_page_control(s->ld, RECONCILE_PAGE, &cookie, 1, &pc) != LDAP_SUCCESS)
			xoom("ldap_create_page_control");
		ctrls[0] = pc;
		rc = ldap_search_ext_s(s->ld, base, LDAP_SCOPE_SUBTREE, filter, attrs, 0, ctrls, NULL, &tv, LDAP_NO_LIMIT,
				       &res);
		ldap_control_free(pc);
		if (res != NULL && ldap_parse_result(s->ld, res, &err, NULL, NULL, NULL, &rctrls, 0) != LDAP_SUCCESS)
			err = LDAP_PROTOCOL_ERROR;
		if (rc == LDAP_NO_SUCH_OBJECT || err == LDAP_NO_SUCH_OBJECT) {
			ldap_controls_free(rctrls);
			ldap_msgfree(res);
			rc = 1;
			break;
		}
		if (rc != LDAP_SUCCESS || err != LDAP_SUCCESS) {
			int code = rc != LDAP_SUCCESS ? ad__ldap_code(s->ld, rc) : err;
			char what[600];
			snprintf(what, sizeof what, "reconcile: paged search of %s", base);
			ad__status_fmt(msg, len, url, code, s->ld, what);
			s->w.problem = rc < 0 ? SOURCE_UNREACHABLE : SOURCE_FAILING;
			ldap_controls_free(rctrls);
			ldap_msgfree(res);
			rc = rc < 0 ? -ECONNRESET : -EIO;
			break;
		}
		for (LDAPMessage *m = ldap_first_entry(s->ld, res); m != NULL; m = ldap_next_entry(s->ld, m)) {
			struct berval **v = ldap_get_values_len(s->ld, m, "objectGUID");
			char guid[37];
			if (v != NULL && v[0] != NULL && ad_guid_format(v[0]->bv_val, v[0]->bv_len, guid) == 0 &&
			    strmap_put(seen, guid, NULL) != 0)
				xoom("strmap_put");
			ldap_value_free_len(v);
		}
		/* RFC 2696 §3: an empty cookie in the answer ends the search */
		free(cookie.bv_val);
		cookie.bv_val = NULL;
		cookie.bv_len = 0;
		LDAPControl *rc_page = rctrls ? ldap_control_find(LDAP_CONTROL_PAGEDRESULTS, rctrls, NULL) : NULL;
		struct berval next = {0, NULL};
		if (rc_page != NULL && ldap_parse_pageresponse_control(s->ld, rc_page, &estimate, &next) == LDAP_SUCCESS &&
		    next.bv_len > 0) {
			cookie.bv_val = xmalloc(next.bv_len);
			memcpy(cookie.bv_val, next.bv_val, next.bv_len);
			cookie.bv_len = next.bv_len;
		}
		ber_memfree(next.bv_val);
		ldap_controls_free(rctrls);
		ldap_msgfree(res);
		rc = 0;
		if (cookie.bv_len == 0)
			break;
	}
	free(cookie.bv_val);
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
