/*
 * sync/source/ldap_read.c -- blocking reads on a connection of their own
 * (ldap_read.h).
 */
#include <ctype.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/xalloc.h"
#include "sync/source/ldap_paged.h"
#include "sync/source/ldap_read.h"
#include "sync/source/source_worker.h"

#define READ_PAGE 500         /* entries per page (RFC 2696) */
#define READ_TIMEOUT_S 30     /* one search request */
#define READ_DN_MAX 1024

int ldap_read_open(const char *const *urls, size_t n_urls, const struct ldap_conn_config *cfg, LDAP **out,
		   char *errmsg, size_t errlen)
{
	int rc = -EINVAL;

	snprintf(errmsg, errlen, "no LDAP URL configured");
	for (size_t i = 0; i < n_urls; i++) {
		LDAP *ld = NULL;
		rc = ldap_conn_open(NULL, 0, urls[i], cfg, &ld, errmsg, errlen);
		if (rc == 0) {
			*out = ld;
			return 0;
		}
		if (ld != NULL)
			ldap_unbind_ext(ld, NULL, NULL);
	}
	return rc;
}

char **ldap_read_attr_list(const char *const *attrs, size_t n_attrs, const char *extra)
{
	size_t n = attrs ? n_attrs : 1, k = 0;
	char **a = xcalloc(n + 2, sizeof *a);

	if (attrs == NULL)
		a[k++] = "*";
	else
		for (size_t i = 0; i < n_attrs; i++)
			a[k++] = (char *)attrs[i];
	if (extra != NULL)
		a[k++] = (char *)extra;
	return a;
}

static void attr_add(LDAP *ld, LDAPMessage *msg, const char *name, struct source_event *ev, size_t *cap)
{
	struct berval **vals = ldap_get_values_len(ld, msg, name);
	size_t n = vals ? (size_t)ldap_count_values_len(vals) : 0;
	struct object_attr *at;

	if (ev->n_attrs == *cap) {
		*cap = *cap ? *cap * 2 : 16;
		ev->attrs = xrealloc(ev->attrs, *cap * sizeof *ev->attrs);
	}
	at = &ev->attrs[ev->n_attrs++];
	memset(at, 0, sizeof *at);
	at->name = xstrdup(name);
	at->values = xcalloc(n ? n : 1, sizeof *at->values);
	for (size_t i = 0; i < n; i++) {
		/* binary values are not expected (object.h): NUL-terminated copies */
		at->values[i] = xstrndup(vals[i]->bv_val, vals[i]->bv_len);
		at->n_values++;
	}
	ldap_value_free_len(vals);
}

void ldap_read_attrs(LDAP *ld, LDAPMessage *msg, struct source_event *ev)
{
	BerElement *ber = NULL;
	size_t cap = 0;

	for (char *a = ldap_first_attribute(ld, msg, &ber); a != NULL; a = ldap_next_attribute(ld, msg, ber)) {
		attr_add(ld, msg, a, ev, &cap);
		ldap_memfree(a);
	}
	ber_free(ber, 0);
}

/* Lower case, no spaces around ',' and '=' (as the engine compares DNs). */
static void dn_norm(const char *dn, char *out, size_t size)
{
	size_t o = 0;

	for (const char *p = dn; *p && o + 1 < size; p++) {
		if (*p == ' ' && (o == 0 || out[o - 1] == ',' || out[o - 1] == '=' || p[1] == ',' || p[1] == '='))
			continue;
		out[o++] = (char)tolower((unsigned char)*p);
	}
	out[o] = '\0';
}

bool ldap_read_under(const char *dn, const char *base)
{
	char nd[READ_DN_MAX], nb[READ_DN_MAX];
	size_t dl, bl;

	if (dn == NULL || base == NULL || base[0] == '\0')
		return false;
	dn_norm(dn, nd, sizeof nd);
	dn_norm(base, nb, sizeof nb);
	dl = strlen(nd);
	bl = strlen(nb);
	return dl >= bl && strcmp(nd + dl - bl, nb) == 0 && (dl == bl || nd[dl - bl - 1] == ',');
}

static void describe(char *errmsg, size_t errlen, LDAP *ld, int rc, const char *what, const char *dn)
{
	char *diag = NULL;
	int code = ldap_conn_code(ld, rc);

	ldap_get_option(ld, LDAP_OPT_DIAGNOSTIC_MESSAGE, &diag);
	snprintf(errmsg, errlen, "%s of %s: %s%s%s", what, dn, ldap_err2string(code), diag && *diag ? ": " : "",
		 diag ? diag : "");
	ldap_memfree(diag);
}

int ldap_read_one(LDAP *ld, const char *dn, const char *filter, char **attrs, enum object_type type,
		  ldap_read_entry_fn make, void *ctx, struct source_event **out, bool *exists, char *errmsg,
		  size_t errlen)
{
	struct timeval tv = {READ_TIMEOUT_S, 0};
	LDAPMessage *res = NULL, *m;
	int rc;

	*out = NULL;
	*exists = true;
	rc = ldap_search_ext_s(ld, dn, LDAP_SCOPE_BASE, filter && *filter ? filter : "(objectClass=*)", attrs, 0,
			       NULL, NULL, &tv, 1, &res);
	if (rc == LDAP_NO_SUCH_OBJECT || rc == LDAP_INVALID_DN_SYNTAX) {
		ldap_msgfree(res);
		*exists = false;
		return 0;
	}
	if (rc != LDAP_SUCCESS) {
		describe(errmsg, errlen, ld, rc, "read", dn);
		ldap_msgfree(res);
		return rc < 0 ? -ECONNRESET : -EIO;
	}
	m = ldap_first_entry(ld, res);
	if (m != NULL)
		*out = make(ctx, ld, m, type);
	ldap_msgfree(res);
	if (m != NULL && *out == NULL) {
		snprintf(errmsg, errlen, "read of %s: the entry has no anchor", dn);
		return -EPROTO;
	}
	return *out != NULL;
}

static void push(struct source_event ***out, size_t *n, size_t *cap, struct source_event *ev)
{
	if (*n == *cap) {
		*cap = *cap ? *cap * 2 : 256;
		*out = xrealloc(*out, *cap * sizeof **out);
	}
	(*out)[(*n)++] = ev;
}

struct scope_read {
	const char *base;
	enum object_type type;
	ldap_read_entry_fn make;
	void *ctx;
	struct source_event ***out;
	size_t *n, cap;
	char *errmsg;
	size_t errlen;
};

static int scope_page(void *ctx, LDAP *ld, LDAPMessage *res, bool more)
{
	struct scope_read *r = ctx;

	(void)more;
	for (LDAPMessage *m = ldap_first_entry(ld, res); m != NULL; m = ldap_next_entry(ld, m)) {
		struct source_event *ev;
		if (*r->n >= SOURCE_READ_SCOPE_MAX)
			return source_worker_fail(r->errmsg, r->errlen, -EFBIG, "%s: more than %d entries", r->base,
						  SOURCE_READ_SCOPE_MAX);
		ev = r->make(r->ctx, ld, m, r->type);
		if (ev != NULL) /* no anchor: the sync path cannot take it either */
			push(r->out, r->n, &r->cap, ev);
	}
	return 0;
}

int ldap_read_scope(LDAP *ld, const char *base, const char *filter, char **attrs, enum object_type type,
		    ldap_read_entry_fn make, void *ctx, struct source_event ***out, size_t *n, char *errmsg,
		    size_t errlen)
{
	const struct ldap_paged_query q = {base, filter, attrs, READ_PAGE, READ_TIMEOUT_S};
	struct scope_read r = {base, type, make, ctx, out, n, *n, errmsg, errlen};
	struct ldap_paged_failure why;
	int rc = ldap_paged_search(ld, &q, scope_page, &r, &why);

	if (rc == LDAP_PAGED_NO_BASE) /* a base that does not exist is empty */
		return 0;
	if (why.search_rc != LDAP_SUCCESS || why.result != LDAP_SUCCESS) /* the request failed */
		describe(errmsg, errlen, ld, why.search_rc != LDAP_SUCCESS ? why.search_rc : why.result, "paged search",
			 base);
	return rc;
}
