/*
 * sync/target/http_tls.h -- how every HTTPS request of the agent to the target
 * side verifies its peer: the HTTP engine of the SCIM and Entra targets
 * (sync/target/http_multi.c), the SCIM health probe (sync/target/scim_probe.c)
 * and the OAuth2 token endpoint (sync/target/oauth2.c) all go through
 * http_tls_apply, so they trust the same certificates.
 *
 * Trusted: the system store (libcurl's built-in CA bundle,
 * /etc/ssl/certs/ca-certificates.crt on Debian) plus, when target.tls.ca is
 * set, the certificates in that file. Both are set explicitly on every handle
 * (CURLOPT_CAINFO to libcurl's own default, CURLOPT_CAPATH to none, the extra
 * CA added to the connection's OpenSSL store from CURLOPT_SSL_CTX_FUNCTION),
 * so the CA environment variables (CURL_CA_BUNDLE, SSL_CERT_FILE,
 * SSL_CERT_DIR) have no effect. Peer and host verification stay on
 * (libcurl's defaults; never turned off), TLS 1.2 at least.
 *
 * No CAPATH, so that libcurl keeps the parsed bundle in its CA cache (per
 * multi handle, 24 h): parsing ~150 certificates for every new connection
 * cost enough loop time to stall the export under load. The cached store is
 * shared by the handles of one multi handle, and gets the extra CA added:
 * every handle of a multi handle must use the same struct http_tls (each
 * target run's engine serves one target; the probe and the token fetch use
 * their own handles).
 *
 * Why CURLOPT_SSL_CTX_FUNCTION and not CURLOPT_CAINFO_BLOB or a combined
 * bundle file: CAINFO_BLOB replaces the bundle file in some libcurl versions,
 * and a combined file would have to be rewritten whenever the system store
 * changes. Adding to the store keeps the system store exactly as the system
 * maintains it. It needs libcurl built with OpenSSL (Debian's libcurl4-openssl).
 */
#ifndef CANOPY_SYNC_TARGET_HTTP_TLS_H
#define CANOPY_SYNC_TARGET_HTTP_TLS_H

#include <stddef.h>

#include <curl/curl.h>

struct http_tls; /* opaque; read-only once made, may be shared between threads */

/*
 * Load the extra CA file (PEM, one or more certificates). ca_file NULL or ""
 * makes an object that trusts the system store only. Returns 0, or -ENOENT /
 * -EACCES (unreadable) or -EINVAL (no certificate in it), with errmsg naming
 * the file.
 */
int http_tls_new(const char *ca_file, struct http_tls **out, char *errmsg, size_t errlen);

void http_tls_free(struct http_tls *tls);

/* The extra CA file, or NULL. */
const char *http_tls_ca_file(const struct http_tls *tls);

/*
 * Set the trust options on a handle (tls NULL: system store only, still
 * explicitly). Returns CURLE_OK, or the libcurl error (e.g. a libcurl without
 * OpenSSL when an extra CA is set).
 */
CURLcode http_tls_apply(const struct http_tls *tls, CURL *e);

/*
 * Explain a failed transfer to `url` in one line (no trailing newline):
 * for a certificate failure "server certificate for HOST not trusted by
 * CAFILE and the system store: <libcurl's error>", for another TLS failure
 * "TLS handshake with HOST failed: ...", else libcurl's error buffer (or
 * curl_easy_strerror when it is empty).
 */
void http_tls_explain(const struct http_tls *tls, const char *url, CURLcode rc, const char *errbuf, char *out,
		      size_t len);

#endif /* CANOPY_SYNC_TARGET_HTTP_TLS_H */
