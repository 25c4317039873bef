/*
 * sync/source/ldap_paged.h -- one subtree search in pages: the simple paged
 * results control (RFC 2696), the loop every LDAP source runs to list a base
 * (ldap_read.c's read_scope, ad_dirsync.c's ad__read_paged, ad_reconcile.c's
 * anchor listing). Directories cap an unpaged search (a Windows DC stops at
 * MaxPageSize, 1,000; OpenLDAP at its sizelimit), so a listing is only
 * complete when it is paged.
 *
 * Blocking: each page is one synchronous request on `ld`, waiting at most
 * timeout_s. Any thread that owns `ld`.
 */
#ifndef CANOPY_SYNC_SOURCE_LDAP_PAGED_H
#define CANOPY_SYNC_SOURCE_LDAP_PAGED_H

#include <stdbool.h>

#include <ldap.h>

/* ldap_paged_search's answer when the base does not exist (noSuchObject):
 * the callers decide whether that is an empty scope or a notice. */
#define LDAP_PAGED_NO_BASE 1

struct ldap_paged_query {
	const char *base;
	const char *filter; /* NULL or "": (objectClass=*) */
	char **attrs;       /* NULL-terminated, as ldap_search_ext_s takes them */
	int page_size;      /* entries per page asked for (RFC 2696 §2, "size") */
	int timeout_s;      /* per page */
};

/* The result of one page. `res` belongs to ldap_paged_search (freed after
 * the call); `more` says whether the server handed back a cookie, i.e.
 * whether another page follows. Return 0 to go on, or a negative errno to
 * stop: ldap_paged_search returns it as is. */
typedef int (*ldap_paged_page_fn)(void *ctx, LDAP *ld, LDAPMessage *res, bool more);

/* Why a search failed, for the caller's message and classification:
 * search_rc is ldap_search_ext_s's return (negative: the client lost the
 * server, e.g. LDAP_SERVER_DOWN, LDAP_TIMEOUT), result the server's
 * resultCode when the request itself went through. */
struct ldap_paged_failure {
	int search_rc;
	int result;
};

/*
 * Search `q->base` page by page, calling `page` for each page's answer until
 * the server returns an empty cookie (RFC 2696 §3: the end of the result
 * set). Returns 0 after the last page, LDAP_PAGED_NO_BASE when the base does
 * not exist (at any page: entries already handed to `page` stay handed), the
 * callback's negative errno when it stopped the search, or, when a request
 * fails, -ECONNRESET (search_rc < 0: the connection is gone) or -EIO (the
 * server refused) with *why filled; the caller writes the message (it knows
 * the URL and which listing it was).
 */
int ldap_paged_search(LDAP *ld, const struct ldap_paged_query *q, ldap_paged_page_fn page, void *ctx,
		      struct ldap_paged_failure *why);

#endif
