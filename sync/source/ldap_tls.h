/*
 * sync/source/ldap_tls.h -- TLS for the directory connections: one place that
 * sets up, starts and explains TLS, used by the sync source
 * (sync/source/openldap.c) and the health probe (sync/source/ldap_probe.c), so
 * both verify the directory the same way.
 *
 * What is verified: the server's certificate chain against source.tls.ca when
 * it is set, otherwise against the system store (/etc/ssl/certs), and the
 * host name or IP address of the URL against the certificate
 * (LDAP_OPT_X_TLS_REQUIRE_CERT = DEMAND). These options are set on each
 * handle and a new TLS context is built from them (LDAP_OPT_X_TLS_NEWCTX), so
 * the process-wide defaults libldap takes from ldap.conf, ~/.ldaprc and the
 * LDAP* / LDAPTLS_* environment variables cannot weaken verification. The
 * agent also sets LDAPNOINIT=1 before its first libldap call (agent/main.c),
 * so those files and variables are not read at all.
 *
 * ldaps:// is TLS from the first byte. ldap:// with source.tls set runs the
 * StartTLS extended operation (RFC 4513 §3) right after connecting, before
 * any bind: the bind password never travels in clear text, and a server that
 * refuses StartTLS is an error, never a silent fall-back to clear text.
 *
 * libldap (GnuTLS build on Debian) reports a refused certificate as
 * "Connect error ((unknown error code))". ldap_tls_explain() then looks at the
 * certificate itself on a separate diagnostic connection (handshake only, no
 * bind, closed at once) and says why with OpenSSL's words:
 *   server certificate for 127.0.0.1 (CN=server, issued by CN=canopy test x)
 *   not trusted by /etc/canopy/ca.pem: unable to get local issuer certificate
 */
#ifndef CANOPY_SYNC_SOURCE_LDAP_TLS_H
#define CANOPY_SYNC_SOURCE_LDAP_TLS_H

#include <stdbool.h>
#include <stddef.h>

#include <ldap.h>

/* The system CA bundle used when no CA is configured. */
#define LDAP_TLS_SYSTEM_CA "/etc/ssl/certs/ca-certificates.crt"

struct ldap_tls_config {
	bool starttls;       /* source.tls present: StartTLS on ldap:// URLs */
	const char *ca_file; /* source.tls.ca; NULL or "": the system store */
};

/* Whether `url` is ldaps:// (case-insensitive). */
bool ldap_tls_is_ldaps(const char *url);

/* Whether a connection to `url` is encrypted under `cfg`. */
bool ldap_tls_used(const struct ldap_tls_config *cfg, const char *url);

/*
 * Set this handle's TLS options (CA, DEMAND, minimum TLS 1.2) and build its
 * own TLS context. Call after ldap_initialize and before the first operation.
 * Returns 0, or -EIO with msg naming the URL and the cause (e.g. an
 * unreadable CA file).
 */
int ldap_tls_prepare(LDAP *ld, const char *url, const struct ldap_tls_config *cfg, char *msg, size_t len);

/*
 * StartTLS (RFC 4513 §3) when the URL is ldap:// and cfg->starttls is set;
 * nothing otherwise. Returns LDAP_SUCCESS or the libldap result code; on
 * failure msg is filled (through ldap_tls_explain).
 */
int ldap_tls_start(LDAP *ld, const char *url, const struct ldap_tls_config *cfg, char *msg, size_t len);

/*
 * After a failed connect, StartTLS or first operation on a TLS connection:
 * if the failure was the server's certificate (or the TLS handshake), write
 * a clear message into msg and return true: "URL: server certificate for
 * HOST (...) not trusted by CAFILE: REASON" / "URL: the address HOST does
 * not match the server certificate (...; it is for IP:..., DNS:...)" /
 * "URL: TLS handshake failed: ...". Returns false (msg untouched) when the
 * certificate checks out or the URL does not use TLS, so the caller describes
 * the failure as before. Blocks for at most about 2 x timeout_ms.
 */
bool ldap_tls_explain(const char *url, const struct ldap_tls_config *cfg, unsigned timeout_ms, char *msg,
		      size_t len);

#endif /* CANOPY_SYNC_SOURCE_LDAP_TLS_H */
