/*
 * sync/source/ldap_tls.c -- TLS set-up, StartTLS and clear certificate errors
 * for the directory connections (see ldap_tls.h).
 */
#include "sync/source/ldap_tls.h"
#include "common/xalloc.h"

#include <arpa/inet.h>
#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>
#include <sys/time.h>
#include <unistd.h>

#include <openssl/err.h>
#include <openssl/x509.h>
#include <openssl/x509_vfy.h>
#include <openssl/x509v3.h>

bool ldap_tls_is_ldaps(const char *url)
{
	return url != NULL && strncasecmp(url, "ldaps://", 8) == 0;
}

bool ldap_tls_used(const struct ldap_tls_config *cfg, const char *url)
{
	return ldap_tls_is_ldaps(url) || (cfg != NULL && cfg->starttls);
}

static const char *ca_of(const struct ldap_tls_config *cfg)
{
	if (cfg != NULL && cfg->ca_file != NULL && cfg->ca_file[0] != '\0')
		return cfg->ca_file;
	return access(LDAP_TLS_SYSTEM_CA, R_OK) == 0 ? LDAP_TLS_SYSTEM_CA : NULL;
}

static const char *ca_name(const struct ldap_tls_config *cfg)
{
	if (cfg != NULL && cfg->ca_file != NULL && cfg->ca_file[0] != '\0')
		return cfg->ca_file;
	return "the system store (" LDAP_TLS_SYSTEM_CA ")";
}

/* Options on the handle, then a context of its own built from them: the
 * global defaults (ldap.conf, LDAPTLS_*) are not consulted for this handle. */
static int set_tls(LDAP *ld, const struct ldap_tls_config *cfg, int require)
{
	const char *ca = ca_of(cfg);
	const int min = LDAP_OPT_X_TLS_PROTOCOL_TLS1_2, is_server = 0;
	int rc;

	if (ca != NULL && (rc = ldap_set_option(ld, LDAP_OPT_X_TLS_CACERTFILE, ca)) != LDAP_OPT_SUCCESS)
		return rc;
	/* an empty CA directory: only the file above is trusted */
	ldap_set_option(ld, LDAP_OPT_X_TLS_CACERTDIR, NULL);
	if ((rc = ldap_set_option(ld, LDAP_OPT_X_TLS_REQUIRE_CERT, &require)) != LDAP_OPT_SUCCESS)
		return rc;
	ldap_set_option(ld, LDAP_OPT_X_TLS_PROTOCOL_MIN, &min);
	return ldap_set_option(ld, LDAP_OPT_X_TLS_NEWCTX, &is_server);
}

int ldap_tls_prepare(LDAP *ld, const char *url, const struct ldap_tls_config *cfg, char *msg, size_t len)
{
	if (!ldap_tls_used(cfg, url))
		return 0;
	int rc = set_tls(ld, cfg, LDAP_OPT_X_TLS_DEMAND);
	if (rc != LDAP_OPT_SUCCESS) {
		snprintf(msg, len, "%s: cannot set up TLS with CA %s: %s", url, ca_name(cfg), ldap_err2string(rc));
		return -EIO;
	}
	return 0;
}

int ldap_tls_start(LDAP *ld, const char *url, const struct ldap_tls_config *cfg, char *msg, size_t len)
{
	if (cfg == NULL || !cfg->starttls || ldap_tls_is_ldaps(url))
		return LDAP_SUCCESS;
	/* RFC 4513 §3: StartTLS before the bind, so the password is encrypted;
	 * a refusal is an error, not a reason to go on in clear text. */
	int rc = ldap_start_tls_s(ld, NULL, NULL);
	if (rc == LDAP_SUCCESS)
		return rc;
	if (!ldap_tls_explain(url, cfg, 3000, msg, len)) {
		char *diag = NULL;
		int code = rc;
		if (rc < 0)
			ldap_get_option(ld, LDAP_OPT_RESULT_CODE, &code);
		ldap_get_option(ld, LDAP_OPT_DIAGNOSTIC_MESSAGE, &diag);
		snprintf(msg, len, "%s: StartTLS failed: %s%s%s", url, ldap_err2string(code),
			 diag && *diag ? ": " : "", diag ? diag : "");
		ldap_memfree(diag);
	}
	return rc;
}

/* "CN=x" of a name, in OpenSSL's one-line RFC 2253 form. */
static void name_of(X509_NAME *n, char *out, size_t len)
{
	BIO *b = xcheck(BIO_new(BIO_s_mem()));
	out[0] = '\0';
	if (X509_NAME_print_ex(b, n, 0, XN_FLAG_RFC2253) >= 0) {
		int k = BIO_read(b, out, (int)len - 1);
		out[k > 0 ? k : 0] = '\0';
	}
	BIO_free(b);
}

/* The names and addresses a certificate is for (subjectAltName), as
 * "DNS:dc1.corp.example, IP:10.0.0.5", or "no subjectAltName". */
static void san_list(X509 *cert, char *out, size_t len)
{
	GENERAL_NAMES *names = X509_get_ext_d2i(cert, NID_subject_alt_name, NULL, NULL);
	size_t o = 0;

	out[0] = '\0';
	for (int i = 0; names != NULL && i < sk_GENERAL_NAME_num(names) && o + 1 < len; i++) {
		const GENERAL_NAME *g = sk_GENERAL_NAME_value(names, i);
		const char *sep = o ? ", " : "";
		int k = 0;
		if (g->type == GEN_DNS) {
			k = snprintf(out + o, len - o, "%sDNS:%.*s", sep, ASN1_STRING_length(g->d.dNSName),
				     (const char *)ASN1_STRING_get0_data(g->d.dNSName));
		} else if (g->type == GEN_IPADD) {
			char a[INET6_ADDRSTRLEN] = "?";
			int n = ASN1_STRING_length(g->d.iPAddress);
			const unsigned char *b = ASN1_STRING_get0_data(g->d.iPAddress);
			if (n == 4 || n == 16)
				inet_ntop(n == 4 ? AF_INET : AF_INET6, b, a, sizeof a);
			k = snprintf(out + o, len - o, "%sIP:%s", sep, a);
		}
		if (k > 0)
			o = o + (size_t)k < len ? o + (size_t)k : len - 1;
	}
	GENERAL_NAMES_free(names);
	if (o == 0)
		snprintf(out, len, "no subjectAltName");
}

/* Verify the leaf `der` against the CA file and the host. Returns true with
 * msg filled when something is wrong with it. */
static bool judge(const char *url, const char *host, const struct ldap_tls_config *cfg, const struct berval *der,
		  char *msg, size_t len)
{
	const unsigned char *p = (const unsigned char *)der->bv_val;
	X509 *cert = d2i_X509(NULL, &p, (long)der->bv_len);
	X509_STORE *store = xcheck(X509_STORE_new());
	X509_STORE_CTX *ctx = xcheck(X509_STORE_CTX_new());
	const char *ca = ca_of(cfg);
	char subject[160], issuer[160];
	bool bad = false;

	if (cert == NULL) /* not a certificate: nothing to say about it */
		goto out;
	name_of(X509_get_subject_name(cert), subject, sizeof subject);
	name_of(X509_get_issuer_name(cert), issuer, sizeof issuer);
	if (ca == NULL || X509_STORE_load_file(store, ca) != 1) {
		snprintf(msg, len, "%s: server certificate for %s (%s, issued by %s) cannot be checked: CA file %s is "
			 "unreadable or holds no certificate", url, host, subject, issuer, ca_name(cfg));
		bad = true;
		goto out;
	}
	if (X509_STORE_CTX_init(ctx, store, cert, NULL) != 1)
		goto out;
	if (X509_verify_cert(ctx) != 1) {
		snprintf(msg, len, "%s: server certificate for %s (%s, issued by %s) not trusted by %s: %s", url, host,
			 subject, issuer, ca_name(cfg), X509_verify_cert_error_string(X509_STORE_CTX_get_error(ctx)));
		bad = true;
		goto out;
	}
	struct in6_addr a;
	bool ip = inet_pton(AF_INET, host, &a) == 1 || inet_pton(AF_INET6, host, &a) == 1;
	int match = ip ? X509_check_ip_asc(cert, host, 0) : X509_check_host(cert, host, 0, 0, NULL);
	if (match != 1) {
		/* RFC 6125 §6: the name the client asked for must be one the
		 * certificate names (no fall-back to the CN when it has SANs) */
		char sans[256];
		san_list(cert, sans, sizeof sans);
		snprintf(msg, len, "%s: %s %s does not match the server certificate (%s, issued by %s; it is for %s)",
			 url, ip ? "the address" : "the host", host, subject, issuer, sans);
		bad = true;
	}
out:
	X509_STORE_CTX_free(ctx);
	X509_STORE_free(store);
	X509_free(cert);
	ERR_clear_error();
	return bad;
}

bool ldap_tls_explain(const char *url, const struct ldap_tls_config *cfg, unsigned timeout_ms, char *msg,
		      size_t len)
{
	LDAPURLDesc *lud = NULL;
	LDAP *ld = NULL;
	struct berval der = {0, NULL};
	struct timeval tv = {timeout_ms / 1000, (timeout_ms % 1000) * 1000};
	const int v3 = LDAP_VERSION3;
	bool told = false;
	int rc;

	if (!ldap_tls_used(cfg, url) || ldap_url_parse(url, &lud) != LDAP_URL_SUCCESS)
		return false;
	const char *host = lud->lud_host && lud->lud_host[0] ? lud->lud_host : "localhost";
	if (ldap_initialize(&ld, url) != LDAP_SUCCESS)
		goto out;
	ldap_set_option(ld, LDAP_OPT_PROTOCOL_VERSION, &v3);
	ldap_set_option(ld, LDAP_OPT_NETWORK_TIMEOUT, &tv);
	ldap_set_option(ld, LDAP_OPT_TIMEOUT, &tv);
	/* A look at the certificate only: the handshake completes whatever the
	 * certificate, nothing is sent on this connection (no bind) and it is
	 * closed at once; the verdict is ours, below. */
	if (set_tls(ld, cfg, LDAP_OPT_X_TLS_ALLOW) != LDAP_OPT_SUCCESS)
		goto out;
	rc = ldap_tls_is_ldaps(url) ? ldap_connect(ld) : ldap_start_tls_s(ld, NULL, NULL);
	if (rc != LDAP_SUCCESS) {
		int code = rc;
		char *diag = NULL;
		if (rc < 0)
			ldap_get_option(ld, LDAP_OPT_RESULT_CODE, &code);
		/* TCP works (the caller got this far) but TLS does not even
		 * start: protocol versions, ciphers, not a TLS server */
		if (code == LDAP_CONNECT_ERROR) {
			ldap_get_option(ld, LDAP_OPT_DIAGNOSTIC_MESSAGE, &diag);
			snprintf(msg, len, "%s: TLS handshake with %s failed: %s%s%s", url, host, ldap_err2string(code),
				 diag && *diag ? ": " : "", diag ? diag : "");
			told = true;
		}
		ldap_memfree(diag);
		goto out;
	}
	if (ldap_get_option(ld, LDAP_OPT_X_TLS_PEERCERT, &der) != LDAP_OPT_SUCCESS || der.bv_val == NULL) {
		snprintf(msg, len, "%s: TLS with %s: the server sent no certificate", url, host);
		told = true;
		goto out;
	}
	told = judge(url, host, cfg, &der, msg, len);
out:
	ber_memfree(der.bv_val);
	if (ld != NULL)
		ldap_unbind_ext_s(ld, NULL, NULL);
	ldap_free_urldesc(lud);
	return told;
}
