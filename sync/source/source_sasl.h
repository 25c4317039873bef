/*
 * sync/source/source_sasl.h -- SASL binds of the LDAP sources (RFC 4513
 * §5.2): GSSAPI (Kerberos V5, RFC 4752) with the agent's own keytab, for
 * directories that give the agent a keytab instead of a password. Used by
 * the worker's connections (ldap_conn.c) and the health probe (ldap_probe.c).
 *
 * What happens at every bind, so a replaced keytab takes effect without a
 * restart (as source.password_file is re-read):
 *  1. MIT krb5 gets a ticket-granting ticket for `principal` with the key in
 *     `keytab` (krb5_get_init_creds_keytab) into a MEMORY: credential cache
 *     of this bind alone. Not KRB5_CLIENT_KTNAME or KRB5CCNAME: those are
 *     process-wide environment, shared with every thread and library of the
 *     agent; a private cache touches nothing outside this bind. Failures here
 *     are precise (wrong key, unknown principal, KDC unreachable) and are
 *     reported as such.
 *  2. The cache becomes a GSS-API credential (gss_krb5_import_cred) that
 *     libldap hands to Cyrus SASL's GSSAPI plugin (LDAP_OPT_X_SASL_GSS_CREDS)
 *     instead of the default credentials of the process.
 *  3. ldap_sasl_interactive_bind_s with mechanism GSSAPI. The service
 *     principal is ldap/<host of the URL>@REALM exactly as written in
 *     source.url (LDAP_OPT_X_SASL_NOCANON: libldap would otherwise replace
 *     the host with a reverse-DNS name of the address it connected to). The
 *     directory's account must have that SPN (docs/active-directory.md).
 *     Over TLS (ldaps://, StartTLS) no SASL security layer is negotiated
 *     (maxssf=0): Active Directory refuses sign or seal on a TLS connection
 *     ("Sign or Seal are not allowed if TLS is used"); over ldap:// the
 *     layer (integrity and confidentiality) is what satisfies a DC's
 *     "require signing" policy.
 * The Kerberos configuration (realm -> KDC) is MIT's: /etc/krb5.conf, or the
 * file KRB5_CONFIG names in the agent's environment.
 *
 * Step 1 talks to the KDC, not over the LDAP socket, so stop() (which shuts
 * that socket down, source_worker.h) cannot cut it short: an unreachable KDC
 * holds a stopping worker for MIT's own timeouts (krb5.conf kdc_timeout,
 * 1 s a try by default), like connect() does for NETWORK_TIMEOUT.
 */
#ifndef CANOPY_SYNC_SOURCE_SOURCE_SASL_H
#define CANOPY_SYNC_SOURCE_SOURCE_SASL_H

#include <stdbool.h>
#include <stddef.h>

#include <ldap.h>

enum source_sasl_mech {
	SOURCE_SASL_NONE = 0, /* no SASL: a simple bind (bind_dn + password), or anonymous */
	SOURCE_SASL_GSSAPI,   /* Kerberos V5 with a client keytab */
};

/* "none", "GSSAPI" (the SASL mechanism name, RFC 4752 §1) */
const char *source_sasl_mech_name(enum source_sasl_mech m);

struct source_sasl_config {
	enum source_sasl_mech mech;
	const char *keytab;    /* the client keytab (a path), read at every bind */
	const char *principal; /* whom to bind as: name@REALM, with keys in keytab */
};

enum source_sasl_result {
	SOURCE_SASL_BOUND,
	SOURCE_SASL_REFUSED,     /* these credentials do not work: keytab, principal, SPN, the server said no */
	SOURCE_SASL_UNREACHABLE, /* the KDC or the server could not be reached */
};

/*
 * Bind `ld` (connected; `tls` when TLS is in effect on it) with cfg (mech
 * not NONE). On failure msg says "URL: <what> as PRINCIPAL: <cause>".
 */
enum source_sasl_result source_sasl_bind(LDAP *ld, const char *url, const struct source_sasl_config *cfg, bool tls,
					 char *msg, size_t len);

#endif /* CANOPY_SYNC_SOURCE_SOURCE_SASL_H */
