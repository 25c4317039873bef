/*
 * sync/target/http_tls.c -- trust settings and TLS error messages for the
 * target side's HTTPS requests (see http_tls.h).
 */
#include "sync/target/http_tls.h"

#include "common/xalloc.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/err.h>
#include <openssl/pem.h>
#include <openssl/ssl.h>
#include <openssl/x509.h>

#define FALLBACK_CAINFO "/etc/ssl/certs/ca-certificates.crt"


struct http_tls {
	char *ca_file;
	STACK_OF(X509) *certs; /* from ca_file; NULL without one */
};

int http_tls_new(const char *ca_file, struct http_tls **out, char *errmsg, size_t errlen)
{
	struct http_tls *t = xcalloc(1, sizeof *t);
	FILE *f;
	X509 *x;
	int rc;

	*out = NULL;
	if (ca_file == NULL || ca_file[0] == '\0') {
		*out = t;
		return 0;
	}
	t->ca_file = xstrdup(ca_file);
	t->certs = xcheck(sk_X509_new_null());
	f = fopen(ca_file, "r");
	if (f == NULL) {
		rc = -errno;
		snprintf(errmsg, errlen, "target.tls.ca: cannot read %s: %s", ca_file, strerror(errno));
		http_tls_free(t);
		return rc;
	}
	while ((x = PEM_read_X509(f, NULL, NULL, NULL)) != NULL)
		if (!sk_X509_push(t->certs, x)) /* fails only for lack of memory */
			xoom("sk_X509_push");
	ERR_clear_error(); /* the read that ended the loop: end of file */
	fclose(f);
	if (sk_X509_num(t->certs) == 0) {
		snprintf(errmsg, errlen, "target.tls.ca: %s holds no PEM certificate", ca_file);
		http_tls_free(t);
		return -EINVAL;
	}
	*out = t;
	return 0;
}

void http_tls_free(struct http_tls *t)
{
	if (t == NULL)
		return;
	if (t->certs != NULL)
		sk_X509_pop_free(t->certs, X509_free);
	free(t->ca_file);
	free(t);
}

const char *http_tls_ca_file(const struct http_tls *t)
{
	return t != NULL ? t->ca_file : NULL;
}

/* libcurl has loaded the system bundle into this connection's store by now:
 * add ours next to it. */
static CURLcode on_ssl_ctx(CURL *e, void *sslctx, void *userp)
{
	const struct http_tls *t = userp;
	X509_STORE *store = SSL_CTX_get_cert_store((SSL_CTX *)sslctx);

	(void)e;
	for (int i = 0; i < sk_X509_num(t->certs); i++)
		X509_STORE_add_cert(store, sk_X509_value(t->certs, i)); /* a duplicate is fine */
	ERR_clear_error();
	return CURLE_OK;
}

CURLcode http_tls_apply(const struct http_tls *t, CURL *e)
{
	char *cainfo = NULL;
	CURLcode rc;

	/* libcurl's own default bundle, set explicitly: then nothing in the
	 * environment can point it elsewhere (or add to it) */
	curl_easy_getinfo(e, CURLINFO_CAINFO, &cainfo);
	if ((rc = curl_easy_setopt(e, CURLOPT_CAINFO, cainfo ? cainfo : FALLBACK_CAINFO)) != CURLE_OK)
		return rc;
	/* no CA directory: the bundle holds the same certificates, and libcurl
	 * caches a parsed bundle only without one (see http_tls.h) */
	if ((rc = curl_easy_setopt(e, CURLOPT_CAPATH, NULL)) != CURLE_OK)
		return rc;
	curl_easy_setopt(e, CURLOPT_SSL_VERIFYPEER, 1L);
	curl_easy_setopt(e, CURLOPT_SSL_VERIFYHOST, 2L);
	curl_easy_setopt(e, CURLOPT_SSLVERSION, (long)CURL_SSLVERSION_TLSv1_2);
	if (t == NULL || t->certs == NULL)
		return CURLE_OK;
	if ((rc = curl_easy_setopt(e, CURLOPT_SSL_CTX_FUNCTION, on_ssl_ctx)) != CURLE_OK)
		return rc;
	return curl_easy_setopt(e, CURLOPT_SSL_CTX_DATA, (void *)t);
}

static void host_of(const char *url, char *out, size_t len)
{
	CURLU *u = curl_url();
	char *host = NULL;

	snprintf(out, len, "%s", "the server");
	if (u != NULL && curl_url_set(u, CURLUPART_URL, url, 0) == CURLUE_OK &&
	    curl_url_get(u, CURLUPART_HOST, &host, 0) == CURLUE_OK)
		snprintf(out, len, "%s", host);
	curl_free(host);
	curl_url_cleanup(u);
}

void http_tls_explain(const struct http_tls *t, const char *url, CURLcode rc, const char *errbuf, char *out,
		      size_t len)
{
	const char *why = errbuf != NULL && errbuf[0] ? errbuf : curl_easy_strerror(rc);
	char host[256];

	switch (rc) {
	case CURLE_PEER_FAILED_VERIFICATION:
		host_of(url, host, sizeof host);
		if (t != NULL && t->ca_file != NULL)
			snprintf(out, len, "server certificate for %s not trusted by %s and the system store: %s", host,
				 t->ca_file, why);
		else
			snprintf(out, len, "server certificate for %s not trusted by the system store (set "
				 "target.tls.ca for a private CA): %s", host, why);
		return;
	case CURLE_SSL_CONNECT_ERROR:
	case CURLE_SSL_CERTPROBLEM:
	case CURLE_SSL_CIPHER:
	case CURLE_SSL_CACERT_BADFILE:
		host_of(url, host, sizeof host);
		snprintf(out, len, "TLS handshake with %s failed: %s", host, why);
		return;
	default:
		snprintf(out, len, "%s", why);
	}
}
