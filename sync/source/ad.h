/*
 * sync/source/ad.h -- Active Directory source: DirSync (MS-ADTS 3.1.1.3.4.1.3,
 * LDAP_SERVER_DIRSYNC_OID 1.2.840.113556.1.4.841) woken by change
 * notifications (LDAP_SERVER_NOTIFICATION_OID 1.2.840.113556.1.4.528), behind
 * the source port (source.h). docs/active-directory.md describes what Samba's
 * DirSync returns; this source is built on those findings.
 *
 * One worker thread holds two connections to one DC of source.url:
 *  - the DirSync connection: a critical DirSync search from the naming
 *    context root (the only base a DC accepts), filter
 *    (|(objectClass=user)(objectClass=group)), flags INCREMENTAL_VALUES
 *    (0x80000000), plus OBJECT_SECURITY (0x1) when the account is refused
 *    without it (an account that is not an administrator);
 *  - the notification connection: a persistent search with the notification
 *    and show-deleted controls on the root, subtree, (objectClass=*) (the
 *    only filter a DC accepts with it), asking for no attribute. It is only a
 *    wake-up: each notification runs the next DirSync at once (after a short
 *    debounce). source.poll_s runs one anyway when nothing woke it, since
 *    notifications are lost while the connection is down. With
 *    source.notify false there is no such connection: the poll alone.
 *
 * Every source.reconcile_s (0: never) the DirSync connection also lists the
 * objectGUIDs under users.base and groups.base (RFC 2696 paged search) and
 * reports the objects the DC no longer has as SOURCE_DELETE: an account that
 * is not an administrator reads no tombstones (ad_reconcile.c). For such an
 * account a new run's first read of the domain is a refresh with
 * present_phase rather than silent, so what was deleted while no leader read
 * is deleted too. Outside DirSync (base reads) values cut at MaxValRange
 * ("member;range=0-1499") are read to the end (ad_range.c). What the
 * operator should know (an account's limits, what a reconcile found, changes
 * only a poll found) comes as SOURCE_NOTICE events for the log.
 *
 * DirSync answers with only the attributes that changed, so the source keeps
 * the last known attributes of every user and group of the domain in memory
 * (ad_cache.c) and reports whole entries: a missing attribute is unchanged,
 * an attribute with an empty value set was removed. Scoping happens here, on
 * the merged entry: users.base / groups.base (DN suffix) and users.filter /
 * groups.filter (an RFC 4515 filter evaluated by ad_filter.c), with the type
 * from objectClass (group; user but not computer). An object that leaves the
 * scope is a SOURCE_DELETE, one that enters it a SOURCE_ENTRY with all its
 * attributes.
 *
 * Anchor: mS-DS-ConsistencyGuid when set (16 bytes), else objectGUID, as the
 * canonical GUID string (ad_guid_format). Deleted objects come back as
 * tombstones (isDeleted TRUE) and become SOURCE_DELETE; the groups that had a
 * deleted object as a member are not reported by the DC, so the source drops
 * the member from its cached groups and reports those groups again.
 * member;range=1-1 / member;range=0-0 values (INCREMENTAL_VALUES) add and
 * remove single members of the cached set; `member` values are reported as
 * the members' current DNs, which the engine resolves to anchors.
 *
 * Cursor: "ad1\ncookie=<base64 DirSync cookie>\n". The cookie of a round goes
 * on the round's last event. A new run with a cursor first reads the whole
 * domain once with a DirSync without a cookie (the cache is empty on a new
 * leader) without reporting it, then continues from the cursor's cookie, so
 * nothing after the cookie is missed and replays are harmless (every report
 * is a whole entry). A cursor of another source (e.g. the OpenLDAP source) is
 * refused by start() with -EINVAL: a full refresh under other anchors would
 * delete every exported object.
 */
#ifndef CANOPY_SYNC_SOURCE_AD_H
#define CANOPY_SYNC_SOURCE_AD_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "sync/object.h"
#include "sync/source/ldap_tls.h"
#include "sync/source/source_sasl.h"
#include "sync/source/source.h"

#define AD_POLL_DEFAULT_S 30

struct ad_source_config {
	const char *const *urls;   /* DCs, tried in order; failover to the next */
	size_t n_urls;
	const char *bind_dn;       /* NULL: anonymous (a DC refuses DirSync then) */
	const char *password;
	const char *password_file; /* re-read before every bind (sync/secret.h) */
	struct source_sasl_config sasl; /* mech not NONE: a SASL bind instead (source_sasl.h) */
	const char *user_base, *user_filter;   /* filter NULL/"": every user */
	const char *group_base, *group_filter; /* base NULL/"": groups not synced */
	struct ldap_tls_config tls;
	unsigned poll_s;           /* DirSync at least this often; 0: AD_POLL_DEFAULT_S */
	bool no_notify;            /* no change-notification search: poll only */
	unsigned reconcile_s;      /* anchor comparison every this often; 0: never */
	size_t queue_max;          /* bounded event queue; 0: 1024 */
	unsigned backoff_min_ms, backoff_max_ms; /* 0: 100 / 30000 */
};

/* The AD source behind the source port. `cfg` is copied; its strings are
 * borrowed and must outlive the source. A bad configuration (an unparsable
 * filter) is reported by start(). */
struct source *ad_source_new(const struct ad_source_config *cfg);

/* ---- pure pieces, shared with the tests and the fuzz targets ---------------- */

/*
 * A 16-byte GUID (objectGUID, mS-DS-ConsistencyGuid) as the canonical string
 * (MS-DTYP 2.3.4.3: Data1, Data2, Data3 little-endian, Data4 in order),
 * lowercase: bytes ff 19 96 6f 86 8b 11 d0 b4 2d 00 c0 4f c9 64 ff give
 * "6f9619ff-8b86-d011-b42d-00c04fc964ff". Returns 0, or -EINVAL when len != 16.
 */
int ad_guid_format(const void *bytes, size_t len, char out[37]);

/*
 * The DirSync response control value (MS-ADTS 3.1.1.3.4.1.3:
 * SEQUENCE { flag INTEGER, maxReturnLength INTEGER, cookie OCTET STRING }).
 * Returns 0 with *more (flag non-zero: more data) and a malloc'd cookie, or
 * -EPROTO for anything else. The cookie is capped at AD_COOKIE_MAX bytes.
 */
#define AD_COOKIE_MAX 65536
int ad_dirsync_response_parse(const void *val, size_t len, bool *more, void **cookie, size_t *cookie_len);

/*
 * Range retrieval (MS-ADTS 3.1.1.3.1.3.3): a DC that returns only part of a
 * multi-valued attribute names it "member;range=0-1499"; the last part ends
 * in "*" ("member;range=1500-*"). ad_range_parse returns 1 with the length
 * of the base name, the bounds and *last (the high bound is "*"), 0 when
 * desc has no range option, -EINVAL when the option is malformed (no
 * number, high below low, trailing bytes, more than 32 bits).
 * ad_range_next writes what to ask for after the answer `desc`
 * ("member;range=1500-*") and returns 1; 0 when desc was the last part (or
 * has no range); -EINVAL when malformed or it does not fit in len.
 */
int ad_range_parse(const char *desc, size_t *base_len, uint32_t *lo, uint32_t *hi, bool *last);
int ad_range_next(const char *desc, char *next, size_t len);

/* The cursor blob: encode a cookie (NULL/0: none yet), decode one. decode
 * returns 0 with a malloc'd cookie (NULL when the blob holds none), or -EINVAL
 * with errmsg naming the cause. */
void ad_cursor_encode(const void *cookie, size_t cookie_len, void **out, size_t *out_len);
int ad_cursor_decode(const void *blob, size_t len, void **cookie, size_t *cookie_len, char *errmsg, size_t errlen);

/* The cursor blob for people (status sync.cursor_readable): the DirSync
 * cookie's USN high-water mark, its time and the DC's invocation id, e.g.
 * "DirSync usn 41234 (2026-11-30T04:35:12Z, invocation 1b2c...)". Returns 0
 * with the text in out, or -EINVAL when the blob is not an AD cursor or its
 * cookie is not of the shape Windows and Samba write. */
int ad_cursor_describe(const void *blob, size_t len, char *out, size_t outlen);

/*
 * An RFC 4515 search filter, evaluated on a merged entry: & | ! = =* (present)
 * substrings >= <= ~= (as =), and the AD bit rules
 * attr:1.2.840.113556.1.4.803:=N (all bits) / ...804:=N (any bit). Values
 * compare case-insensitively (most AD attributes use a case-insensitive
 * syntax); >= <= compare as integers when both sides are integers.
 */
struct ad_filter;
int ad_filter_parse(const char *text, struct ad_filter **out, char *errmsg, size_t errlen);
bool ad_filter_match(const struct ad_filter *f, const struct object_attr *attrs, size_t n_attrs);
/* Call cb for every attribute the filter reads (to request it). */
void ad_filter_attributes(const struct ad_filter *f, void (*cb)(void *ctx, const char *name), void *ctx);
void ad_filter_free(struct ad_filter *f);

#endif /* CANOPY_SYNC_SOURCE_AD_H */
