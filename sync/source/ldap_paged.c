/*
 * sync/source/ldap_paged.c -- a subtree search in RFC 2696 pages
 * (ldap_paged.h).
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "common/xalloc.h"
#include "sync/source/ldap_paged.h"

/* The cookie of the page control in `rctrls`, copied into *cookie (empty:
 * the last page, RFC 2696 §3). A server that sends no control at all ended
 * the search as well. */
static void next_cookie(LDAP *ld, LDAPControl **rctrls, struct berval *cookie)
{
	LDAPControl *pc = rctrls ? ldap_control_find(LDAP_CONTROL_PAGEDRESULTS, rctrls, NULL) : NULL;
	struct berval next = {0, NULL};
	ber_int_t estimate = 0;

	free(cookie->bv_val);
	*cookie = (struct berval){0, NULL};
	if (pc != NULL && ldap_parse_pageresponse_control(ld, pc, &estimate, &next) == LDAP_SUCCESS &&
	    next.bv_len > 0) {
		cookie->bv_val = xmalloc(next.bv_len);
		memcpy(cookie->bv_val, next.bv_val, next.bv_len);
		cookie->bv_len = next.bv_len;
	}
	ber_memfree(next.bv_val);
}

int ldap_paged_search(LDAP *ld, const struct ldap_paged_query *q, ldap_paged_page_fn page, void *ctx,
		      struct ldap_paged_failure *why)
{
	const char *filter = q->filter && *q->filter ? q->filter : "(objectClass=*)";
	struct berval cookie = {0, NULL};
	int rc = 0;

	*why = (struct ldap_paged_failure){LDAP_SUCCESS, LDAP_SUCCESS};
	for (;;) {
		LDAPControl *pc = NULL, *ctrls[2] = {NULL, NULL}, **rctrls = NULL;
		LDAPMessage *res = NULL;
		struct timeval tv = {q->timeout_s, 0};
		int err = 0;

		/* RFC 2696 §2: the same control, critical, with the cookie of
		 * the last answer (empty on the first request) */
		if (ldap_create_page_control(ld, q->page_size, &cookie, 1, &pc) != LDAP_SUCCESS)
			xoom("ldap_create_page_control");
		ctrls[0] = pc;
		rc = ldap_search_ext_s(ld, q->base, LDAP_SCOPE_SUBTREE, filter, q->attrs, 0, ctrls, NULL, &tv,
				       LDAP_NO_LIMIT, &res);
		ldap_control_free(pc);
		if (res != NULL && ldap_parse_result(ld, res, &err, NULL, NULL, NULL, &rctrls, 0) != LDAP_SUCCESS)
			err = LDAP_PROTOCOL_ERROR;
		if (rc == LDAP_NO_SUCH_OBJECT || err == LDAP_NO_SUCH_OBJECT) {
			rc = LDAP_PAGED_NO_BASE;
		} else if (rc != LDAP_SUCCESS || err != LDAP_SUCCESS) {
			*why = (struct ldap_paged_failure){rc, err};
			rc = rc < 0 ? -ECONNRESET : -EIO;
		} else {
			next_cookie(ld, rctrls, &cookie);
			rc = page(ctx, ld, res, cookie.bv_len > 0);
		}
		ldap_controls_free(rctrls);
		ldap_msgfree(res);
		if (rc != 0 || cookie.bv_len == 0)
			break;
	}
	free(cookie.bv_val);
	return rc;
}
