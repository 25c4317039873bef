/*
 * sync/source/ldap_probe.h -- "can this agent bind to its directory and read
 * the users base?", asked once, blocking.
 *
 * Every agent asks this every few seconds, followers too (agent/health.c runs
 * it on a libuv worker thread), so that the cluster knows which voters could
 * take over the export when the leader's directory access breaks. It opens
 * its own connection each time: it shares nothing with the sync session of
 * sync/source/openldap.c, so a probe can never disturb a running export.
 *
 * The probe: ldap_initialize, LDAPv3, a network timeout, TLS as the sync
 * source does it (sync/source/ldap_tls.h: the same CA, DEMAND, StartTLS on
 * ldap:// with source.tls; a certificate failure is "unreachable" with the
 * reason), a simple bind (when
 * a bind DN is configured), then a base-scope search of the users base that
 * asks for no attributes ("1.1"). With several URLs they are tried in order
 * and the first that works wins.
 */
#ifndef CANOPY_SYNC_SOURCE_LDAP_PROBE_H
#define CANOPY_SYNC_SOURCE_LDAP_PROBE_H

#include <stddef.h>

#include <ldap.h>

#include "sync/source/ldap_tls.h"
#include "sync/source/source_sasl.h"

enum ldap_probe_status {
	LDAP_PROBE_OK,           /* bound and read the users base */
	LDAP_PROBE_UNREACHABLE,  /* no server answered (connect, timeout, server down/busy) */
	LDAP_PROBE_UNAUTHORIZED, /* the server refused the credentials or the read */
	LDAP_PROBE_ERROR,        /* anything else: bad URL, users base missing, ... */
};

/* "ok" | "unreachable" | "unauthorized" | "error" */
const char *ldap_probe_status_name(enum ldap_probe_status s);

struct ldap_probe_config {
	const char *const *urls; /* ldap:// or ldaps:// */
	size_t n_urls;
	const char *bind_dn;     /* NULL: anonymous */
	const char *password;    /* the caller re-reads it from its file before every probe */
	const char *base;        /* the users base */
	unsigned timeout_ms;     /* per URL: connect, and again for each operation; 0: 3000 */
	struct ldap_tls_config tls; /* the same TLS settings as the sync source (source.tls) */
	struct source_sasl_config sasl; /* mech not NONE: the source's SASL bind (source.sasl) */
};

/* ldap_probe_read: the entry to read instead of the users base, the
 * attributes to ask for (NULL-terminated), and what to do with the entry
 * (called once, on the connection that read it). */
struct ldap_probe_entry {
	const char *dn;
	char *const *attrs;
	void (*entry)(void *ctx, LDAP *ld, LDAPMessage *e);
	void *ctx;
};

/*
 * Run the probe. Blocks for at most about 3 x timeout_ms per URL. Returns the
 * classification and always fills `msg` (the URL and the server's words;
 * never the password).
 */
enum ldap_probe_status ldap_probe_run(const struct ldap_probe_config *cfg, char *msg, size_t len);

/*
 * The same connection and bind, then a base-scope read of r->dn with
 * r->attrs, handing the entry to r->entry (`canopyctl expr --object`: one
 * entry as the agent would read it). The classification is
 * the probe's; an entry that is missing or not visible is
 * LDAP_PROBE_ERROR with the DN in `msg`.
 */
enum ldap_probe_status ldap_probe_read(const struct ldap_probe_config *cfg, const struct ldap_probe_entry *r,
				       char *msg, size_t len);

#endif /* CANOPY_SYNC_SOURCE_LDAP_PROBE_H */
