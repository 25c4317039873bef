/*
 * sync/source/ldap_read.h -- blocking reads on a connection of their own,
 * outside any worker: one entry by DN, a whole scope by pages (RFC 2696).
 * What the LDAP sources use for the source port's read_entry and read_scope
 * (source.h: canopyctl provision and plan). Any thread; every call blocks
 * for at most the connection's operation timeout per request.
 */
#ifndef CANOPY_SYNC_SOURCE_LDAP_READ_H
#define CANOPY_SYNC_SOURCE_LDAP_READ_H

#include <stdbool.h>
#include <stddef.h>

#include <ldap.h>

#include "sync/source/ldap_conn.h"
#include "sync/source/source.h"

/* Connect and bind to the first of `urls` that takes us (ldap_conn_open,
 * outside any worker). Returns 0 and *out, or a negative errno with errmsg
 * saying why the last one failed. */
int ldap_read_open(const char *const *urls, size_t n_urls, const struct ldap_conn_config *cfg, LDAP **out,
		   char *errmsg, size_t errlen);

/* The attribute list for a search: `attrs` (NULL: "*", all user
 * attributes) plus `extra` (an operational attribute such as entryUUID, or
 * NULL), NULL-terminated; free with free(). */
char **ldap_read_attr_list(const char *const *attrs, size_t n_attrs, const char *extra);

/* Every attribute of an entry into ev->attrs (values as NUL-terminated text;
 * binary values are not expected of these sources, object.h). */
void ldap_read_attrs(LDAP *ld, LDAPMessage *msg, struct source_event *ev);

/* Whether `dn` is `base` or below it (DNs compared case-insensitively,
 * without spaces around separators). */
bool ldap_read_under(const char *dn, const char *base);

/* Turns one entry into a SOURCE_ENTRY of `type`, or NULL when it has no
 * usable anchor (the value of `anchor_attr`, text). */
typedef struct source_event *(*ldap_read_entry_fn)(void *ctx, LDAP *ld, LDAPMessage *msg, enum object_type type);

/*
 * The entry `dn` if it matches `filter` (base-object search). Returns 1 with
 * *out, 0 when it does not match (*out NULL; *exists false when the
 * directory has no such DN at all), or a negative errno with errmsg.
 */
int ldap_read_one(LDAP *ld, const char *dn, const char *filter, char **attrs, enum object_type type,
		  ldap_read_entry_fn make, void *ctx, struct source_event **out, bool *exists, char *errmsg,
		  size_t errlen);

/*
 * Every entry under `base` matching `filter` (subtree, RFC 2696 pages),
 * appended to *out / *n (at most SOURCE_READ_SCOPE_MAX in all, else -EFBIG).
 * A base that does not exist is empty. Returns 0 or a negative errno with
 * errmsg.
 */
int ldap_read_scope(LDAP *ld, const char *base, const char *filter, char **attrs, enum object_type type,
		    ldap_read_entry_fn make, void *ctx, struct source_event ***out, size_t *n, char *errmsg,
		    size_t errlen);

#endif /* CANOPY_SYNC_SOURCE_LDAP_READ_H */
