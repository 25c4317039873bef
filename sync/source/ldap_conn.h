/*
 * sync/source/ldap_conn.h -- one LDAP connection of a source's worker:
 * connect (TLS through ldap_tls.h), publish the socket so stop() can break a
 * blocked call (source_worker.h), and bind with the source's credentials (a
 * password file is re-read before every bind, sync/secret.h). Shared by the
 * OpenLDAP and the Active Directory sources.
 */
#ifndef CANOPY_SYNC_SOURCE_LDAP_CONN_H
#define CANOPY_SYNC_SOURCE_LDAP_CONN_H

#include <stdbool.h>
#include <stddef.h>

#include <ldap.h>

#include "sync/source/ldap_tls.h"
#include "sync/source/source_sasl.h"
#include "sync/source/source_worker.h"

#define LDAP_CONN_NETWORK_TIMEOUT_S 3 /* connect(); the one wait stop() cannot cut short */

struct ldap_conn_config {
	struct ldap_tls_config tls;
	const char *bind_dn;       /* NULL: anonymous (a password alone means nothing) */
	const char *password;      /* NULL: none */
	const char *password_file; /* re-read before every bind; wins over password */
	unsigned op_timeout_s;     /* synchronous operations (the bind, searches) */
	struct source_sasl_config sasl; /* mech not NONE: a SASL bind (source_sasl.h) instead */
};

/* dst := owned copies of the credentials and TLS settings (an empty CA file:
 * NULL, the system store), for a source to keep across runs of its worker. */
void ldap_conn_config_copy(struct ldap_conn_config *dst, const char *bind_dn, const char *password,
			   const char *password_file, const struct ldap_tls_config *tls, unsigned op_timeout_s,
			   const struct source_sasl_config *sasl);
/* Free a copy (the password is wiped first). */
void ldap_conn_config_free(struct ldap_conn_config *c);

/*
 * Connect `*out` to url and bind (SASL when cfg->sasl says so, else simple,
 * or anonymous without bind_dn); publish its socket in w's `slot` first
 * (w NULL: a connection outside any worker, nothing published or set).
 * Returns 0, -ECANCELED (stop() ran), or a negative errno with msg naming the
 * URL and the cause and w->problem set (SOURCE_UNREACHABLE, or
 * SOURCE_UNAUTHORIZED when the server refused the credentials or the
 * password file cannot be read). On failure *out may hold a handle for the
 * caller to unbind.
 */
int ldap_conn_open(struct source_worker *w, int slot, const char *url, const struct ldap_conn_config *cfg, LDAP **out,
		   char *msg, size_t len);

/* Whether a bind's result code says the server refused these credentials
 * (RFC 4511 §4.2.2 / appendix A; a simple bind without TLS is "strong auth
 * required" on a default DC): SOURCE_UNAUTHORIZED rather than unreachable. */
bool ldap_conn_refused(int code);
/* "URL: <ldap_err2string> (what: <diagnostic message>)" */
void ldap_conn_status_fmt(char *msg, size_t len, const char *url, int err, LDAP *ld, const char *what);
/* The result code behind a libldap failure: rc itself, or for -1 the
 * handle's own code (e.g. LDAP_SERVER_DOWN). */
int ldap_conn_code(LDAP *ld, int rc);

#endif /* CANOPY_SYNC_SOURCE_LDAP_CONN_H */
