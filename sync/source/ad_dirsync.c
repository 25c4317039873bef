/*
 * sync/source/ad_dirsync.c -- the DirSync control (MS-ADTS 3.1.1.3.4.1.3),
 * the cursor blob, and reading an answer's entries into struct ad_entry
 * (worker thread, except the pure parsers at the top).
 */
#include <ctype.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include "sync/base64.h"
#include "sync/source/ad_internal.h"
#include "sync/source/ldap_paged.h"

#define CURSOR_HEAD "ad1\ncookie="
#define DIRSYNC_MAX_BYTES 0x100000 /* maxReturnLength: Windows honours it, Samba ignores it */
#define DIRSYNC_PAGES_MAX 100000   /* a DC that always says "more" is a broken DC */

static const char B64[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

int ad_guid_format(const void *bytes, size_t len, char out[37])
{
	const unsigned char *b = bytes;

	if (bytes == NULL || len != 16)
		return -EINVAL;
	/* MS-DTYP 2.3.4: Data1 (4 bytes), Data2, Data3 (2 each) little-endian */
	snprintf(out, 37, "%02x%02x%02x%02x-%02x%02x-%02x%02x-%02x%02x-%02x%02x%02x%02x%02x%02x", b[3], b[2], b[1],
		 b[0], b[5], b[4], b[7], b[6], b[8], b[9], b[10], b[11], b[12], b[13], b[14], b[15]);
	return 0;
}

int ad_dirsync_response_parse(const void *val, size_t len, bool *more, void **cookie, size_t *cookie_len)
{
	struct berval in = {(ber_len_t)len, (char *)val}, c = {0, NULL};
	BerElement *ber;
	ber_int_t flag = 0, maxlen = 0;
	ber_tag_t tag;
	ber_len_t rest;

	*cookie = NULL;
	*cookie_len = 0;
	if (val == NULL || len == 0)
		return -EPROTO;
	ber = ber_init(&in);
	if (ber == NULL)
		return -EPROTO;
	tag = ber_scanf(ber, "{iim}", &flag, &maxlen, &c);
	if (tag == LBER_ERROR || c.bv_len > AD_COOKIE_MAX || ber_get_option(ber, LBER_OPT_REMAINING_BYTES, &rest) != 0 ||
	    rest != 0) {
		ber_free(ber, 1);
		return -EPROTO;
	}
	*more = flag != 0;
	if (c.bv_len > 0) {
		*cookie = xmalloc(c.bv_len);
		memcpy(*cookie, c.bv_val, c.bv_len);
		*cookie_len = c.bv_len;
	}
	ber_free(ber, 1);
	return 0;
}

void ad_cursor_encode(const void *cookie, size_t cookie_len, void **out, size_t *out_len)
{
	const unsigned char *in = cookie;
	size_t hl = strlen(CURSOR_HEAD), o = hl;
	char *buf = xmalloc(hl + (cookie_len + 2) / 3 * 4 + 2);

	memcpy(buf, CURSOR_HEAD, hl);
	for (size_t i = 0; i < cookie_len; i += 3) {
		uint32_t t = (uint32_t)in[i] << 16;
		if (i + 1 < cookie_len)
			t |= (uint32_t)in[i + 1] << 8;
		if (i + 2 < cookie_len)
			t |= in[i + 2];
		buf[o++] = B64[t >> 18];
		buf[o++] = B64[(t >> 12) & 63];
		buf[o++] = i + 1 < cookie_len ? B64[(t >> 6) & 63] : '=';
		buf[o++] = i + 2 < cookie_len ? B64[t & 63] : '=';
	}
	buf[o++] = '\n';
	*out = buf;
	*out_len = o;
}

static int b64v(char c)
{
	const char *p = c ? strchr(B64, c) : NULL;
	return p ? (int)(p - B64) : -1;
}

int ad_cursor_decode(const void *blob, size_t len, void **cookie, size_t *cookie_len, char *errmsg, size_t errlen)
{
	const char *p = blob;
	size_t hl = strlen(CURSOR_HEAD), n;
	unsigned char *out;
	size_t o = 0;

	*cookie = NULL;
	*cookie_len = 0;
	if (blob == NULL || len == 0)
		return 0; /* from scratch */
	if (len < hl + 1 || memcmp(p, CURSOR_HEAD, hl) != 0)
		return ad__fail(errmsg, errlen, -EINVAL,
				"cursor: not an Active Directory source cursor (no \"ad1\" header): it was written by "
				"another source kind; a full sync under other anchors would delete every exported object");
	if (p[len - 1] != '\n')
		return ad__fail(errmsg, errlen, -EINVAL, "cursor: malformed (no final newline)");
	p += hl;
	n = len - hl - 1;
	if (n % 4 != 0 || n / 4 * 3 > AD_COOKIE_MAX)
		return ad__fail(errmsg, errlen, -EINVAL, "cursor: the DirSync cookie is not base64 or too long");
	if (n == 0)
		return 0;
	out = xmalloc(n / 4 * 3);
	for (size_t i = 0; i < n; i += 4) {
		int v[4], pad = 0;
		for (int k = 0; k < 4; k++) {
			v[k] = b64v(p[i + k]);
			if (p[i + k] == '=' && i + 4 == n && k >= 2 && (k == 3 || p[i + 3] == '='))
				pad++, v[k] = 0;
			else if (v[k] < 0 || pad) {
				free(out);
				return ad__fail(errmsg, errlen, -EINVAL, "cursor: the DirSync cookie is not base64");
			}
		}
		uint32_t t = (uint32_t)v[0] << 18 | (uint32_t)v[1] << 12 | (uint32_t)v[2] << 6 | (uint32_t)v[3];
		out[o++] = (unsigned char)(t >> 16);
		if (pad < 2)
			out[o++] = (unsigned char)(t >> 8);
		if (pad < 1)
			out[o++] = (unsigned char)t;
	}
	*cookie = out;
	*cookie_len = o;
	return 0;
}

char *ad__dn_norm(const char *dn)
{
	char *n = xmalloc(strlen(dn) + 1), *o = n;

	/* lowercase, no blanks after separators: DCs return one spelling, the
	 * configuration may use another ("OU=People, DC=x") */
	for (const char *p = dn; *p; p++) {
		if ((*p == ' ') && o > n && (o[-1] == ',' || o[-1] == '='))
			continue;
		*o++ = (char)tolower((unsigned char)*p);
	}
	*o = '\0';
	return n;
}

void ad__entry_free(struct ad_entry *e)
{
	free(e->dn);
	for (size_t i = 0; i < e->n_attrs; i++) {
		for (size_t k = 0; k < e->attrs[i].n_values; k++)
			free(e->attrs[i].values[k]);
		free(e->attrs[i].values);
		free(e->attrs[i].name);
	}
	free(e->attrs);
	for (size_t i = 0; i < e->n_add; i++)
		free(e->member_add[i]);
	for (size_t i = 0; i < e->n_del; i++)
		free(e->member_del[i]);
	for (size_t i = 0; i < e->n_set; i++)
		free(e->member_set[i]);
	free(e->member_add);
	free(e->member_del);
	free(e->member_set);
	for (size_t i = 0; i < e->n_partial; i++)
		free(e->partial[i]);
	free(e->partial);
	memset(e, 0, sizeof *e);
}

static void strv_add_vals(char ***v, size_t *n, struct berval **vals)
{
	size_t k = vals ? (size_t)ldap_count_values_len(vals) : 0;

	*v = xrealloc(*v, (*n + k + 1) * sizeof **v);
	for (size_t i = 0; i < k; i++)
		(*v)[(*n)++] = xstrndup(vals[i]->bv_val, vals[i]->bv_len);
}

/*
 * Binary values reach the mappings as base64 text (docs/active-directory.md,
 * "Binary attributes"; the expression functions StringFromSid and
 * StringFromGuid read that form): the attributes below always, any other
 * attribute when one of its values is not text (a NUL byte or invalid UTF-8),
 * which would otherwise be cut short. These are the binary attributes of
 * users and groups in the AD schema that a mapping may want (syntax 2.5.5.10
 * Octet String and 2.5.5.17 SID, MS-ADA1..3); objectGUID and
 * mS-DS-ConsistencyGuid are GUIDs and come as GUID text (ad_guid_format).
 */
static bool binary_name(const char *name, size_t len)
{
	static const char *const names[] = {
		"objectSid", "sIDHistory", "tokenGroups", "mS-DS-CreatorSID", "msExchMasterAccountSid",
		"msExchMailboxGuid", "thumbnailPhoto", "jpegPhoto", "userCertificate", "userSMIMECertificate",
		"logonHours", "msDS-GenerationId",
	};
	for (size_t i = 0; i < sizeof names / sizeof names[0]; i++)
		if (strlen(names[i]) == len && strncasecmp(names[i], name, len) == 0)
			return true;
	return false;
}

/* Is v text: no NUL, well-formed UTF-8 (RFC 3629 §4: no overlong forms, no
 * surrogates, nothing above U+10FFFF)? */
static bool is_text(const struct berval *v)
{
	const unsigned char *p = (const unsigned char *)v->bv_val, *end = p + v->bv_len;

	while (p < end) {
		unsigned c = *p++, need, min;
		uint32_t cp;
		if (c == 0)
			return false;
		if (c < 0x80)
			continue;
		if (c >= 0xc2 && c <= 0xdf)
			need = 1, min = 0x80, cp = c & 0x1f;
		else if (c >= 0xe0 && c <= 0xef)
			need = 2, min = 0x800, cp = c & 0x0f;
		else if (c >= 0xf0 && c <= 0xf4)
			need = 3, min = 0x10000, cp = c & 0x07;
		else
			return false;
		if ((size_t)(end - p) < need)
			return false;
		for (unsigned k = 0; k < need; k++, p++) {
			if ((*p & 0xc0) != 0x80)
				return false;
			cp = cp << 6 | (*p & 0x3f);
		}
		if (cp < min || cp > 0x10ffff || (cp >= 0xd800 && cp <= 0xdfff))
			return false;
	}
	return true;
}

char **ad__attr_values(const char *name, size_t name_len, struct berval **vals, size_t nv)
{
	bool guid = name_len == strlen("mS-DS-ConsistencyGuid") &&
		    strncasecmp(name, "mS-DS-ConsistencyGuid", name_len) == 0;
	bool b64 = binary_name(name, name_len);
	char **out = xcalloc(nv ? nv : 1, sizeof *out);

	for (size_t i = 0; !guid && !b64 && i < nv; i++)
		b64 = !is_text(vals[i]);
	for (size_t i = 0; i < nv; i++) {
		char g[37];
		if (guid && ad_guid_format(vals[i]->bv_val, vals[i]->bv_len, g) == 0)
			out[i] = xstrdup(g);
		else if (guid || b64)
			out[i] = base64_encode(vals[i]->bv_val, vals[i]->bv_len);
		else
			out[i] = xstrndup(vals[i]->bv_val, vals[i]->bv_len);
	}
	return out;
}

/* An attribute of `nv` values into e->attrs (nv == 0: removed). */
static void entry_attr_add(struct ad_entry *e, const char *desc, size_t blen, struct berval **vals, size_t nv)
{
	struct object_attr *a;

	e->attrs = xrealloc(e->attrs, (e->n_attrs + 1) * sizeof *e->attrs);
	a = &e->attrs[e->n_attrs++];
	a->name = xstrndup(desc, blen);
	a->values = ad__attr_values(desc, blen, vals, nv);
	a->n_values = nv;
}

/* One attribute description of an answer into e. In a DirSync answer
 * "member;range=1-1" / "member;range=0-0" are the values added / removed
 * since the cookie (LDAP_DIRSYNC_INCREMENTAL_VALUES, docs/active-directory.md)
 * and a plain "member" is the whole set. In a base read (`plain`) a range
 * option means the DC sent only part of the values (MaxValRange): they are
 * the first part of the whole set, and ad_range.c reads the rest. */
static void entry_attr(struct ad_entry *e, const char *desc, struct berval **vals, bool plain)
{
	const char *semi = strchr(desc, ';');
	size_t blen = semi ? (size_t)(semi - desc) : strlen(desc);
	size_t nv = vals ? (size_t)ldap_count_values_len(vals) : 0;
	size_t rlen;
	uint32_t lo, hi;
	bool last;

	if (plain && semi != NULL && ad_range_parse(desc, &rlen, &lo, &hi, &last) == 1) {
		if (!last) {
			e->partial = xrealloc(e->partial, (e->n_partial + 1) * sizeof *e->partial);
			e->partial[e->n_partial++] = xstrdup(desc);
		}
		semi = NULL; /* the whole set, as far as the rest of this function is concerned */
	}

#define IS(n) (blen == strlen(n) && strncasecmp(desc, n, blen) == 0)
	if (IS("objectGUID")) {
		if (nv == 1)
			ad_guid_format(vals[0]->bv_val, vals[0]->bv_len, e->guid);
	} else if (IS("mS-DS-ConsistencyGuid")) {
		if (nv == 1 && ad_guid_format(vals[0]->bv_val, vals[0]->bv_len, e->cguid) != 0)
			e->cguid[0] = '\0';
		entry_attr_add(e, desc, blen, vals, nv);
	} else if (IS("isDeleted")) {
		e->deleted = nv == 1 && vals[0]->bv_len == 4 && strncasecmp(vals[0]->bv_val, "TRUE", 4) == 0;
	} else if (IS("parentGUID") || IS("instanceType") || IS("nTSecurityDescriptor")) {
		/* binary or bookkeeping: no use to a mapping */
	} else if (IS("member")) {
		if (semi != NULL && strcasecmp(semi, ";range=1-1") == 0) {
			strv_add_vals(&e->member_add, &e->n_add, vals);
		} else if (semi != NULL && strcasecmp(semi, ";range=0-0") == 0) {
			strv_add_vals(&e->member_del, &e->n_del, vals);
		} else {
			e->member_full = true;
			strv_add_vals(&e->member_set, &e->n_set, vals);
		}
	} else {
		entry_attr_add(e, desc, blen, vals, nv);
	}
#undef IS
}

static void entry_read(LDAP *ld, LDAPMessage *m, struct ad_entry *e, bool plain)
{
	BerElement *ber = NULL;
	char *dn = ldap_get_dn(ld, m);

	memset(e, 0, sizeof *e);
	e->dn = xstrdup(dn ? dn : "");
	ldap_memfree(dn);
	for (char *a = ldap_first_attribute(ld, m, &ber); a != NULL; a = ldap_next_attribute(ld, m, ber)) {
		/* an attribute with an empty value set: ldap_get_values_len gives
		 * NULL, and that means "removed" (docs/active-directory.md) */
		struct berval **vals = ldap_get_values_len(ld, m, a);
		entry_attr(e, a, vals, plain);
		ldap_value_free_len(vals);
		ldap_memfree(a);
	}
	ber_free(ber, 0);
}

static void entries_take(LDAP *ld, LDAPMessage *res, struct ad_entry **out, size_t *n, bool plain)
{
	for (LDAPMessage *m = ldap_first_entry(ld, res); m != NULL; m = ldap_next_entry(ld, m)) {
		struct ad_entry e;
		entry_read(ld, m, &e, plain);
		if (e.guid[0] == '\0') { /* every DirSync entry has objectGUID */
			ad__entry_free(&e);
			continue;
		}
		*out = xrealloc(*out, (*n + 1) * sizeof **out);
		(*out)[(*n)++] = e;
	}
}

static void classify(struct ad_source *s, int code, int rc)
{
	s->w.problem = rc < 0 || code == LDAP_SERVER_DOWN || code == LDAP_TIMEOUT || code == LDAP_CONNECT_ERROR
			     ? SOURCE_UNREACHABLE
		     : code == LDAP_INSUFFICIENT_ACCESS || code == LDAP_INVALID_CREDENTIALS ? SOURCE_UNAUTHORIZED
											     : SOURCE_FAILING;
}

/* One request with the control; the answer's entries and response control. */
static int dirsync_page(struct ad_source *s, const struct berval *cookie, struct ad_entry **out, size_t *n,
			bool *more, struct berval *next, int *code)
{
	static const char filter[] = "(|(objectClass=user)(objectClass=group))";
	BerElement *ber = ber_alloc_t(LBER_USE_DER);
	struct berval empty = {0, ""}, *val = NULL;
	LDAPControl ctrl = {AD_OID_DIRSYNC, {0, NULL}, 1}, *ctrls[] = {&ctrl, NULL}, **rctrls = NULL;
	LDAPMessage *res = NULL;
	struct timeval tv = {600, 0};
	int rc, err = 0;

	xcheck(ber);
	/* MS-ADTS 3.1.1.3.4.1.3: SEQUENCE { Flags, MaxBytes, Cookie }; the
	 * control must be critical (a DC refuses it otherwise) */
	if (ber_printf(ber, "{iiO}", (ber_int_t)(int32_t)s->flags, (ber_int_t)DIRSYNC_MAX_BYTES,
		       cookie && cookie->bv_val ? cookie : &empty) < 0 ||
	    ber_flatten(ber, &val) < 0)
		xoom("ber_printf");
	ber_free(ber, 1);
	ctrl.ldctl_value = *val;
	rc = ldap_search_ext_s(s->ld, s->nc_root, LDAP_SCOPE_SUBTREE, filter, s->attrs, 0, ctrls, NULL, &tv,
			       LDAP_NO_LIMIT, &res);
	ber_bvfree(val);
	if (res != NULL) {
		int prc = ldap_parse_result(s->ld, res, &err, NULL, NULL, NULL, &rctrls, 0);
		if (prc != LDAP_SUCCESS)
			err = prc;
	}
	if (rc != LDAP_SUCCESS || err != LDAP_SUCCESS) {
		*code = rc != LDAP_SUCCESS ? ad__ldap_code(s->ld, rc) : err;
		ldap_controls_free(rctrls);
		ldap_msgfree(res);
		return rc < 0 ? -ECONNRESET : -EIO;
	}
	entries_take(s->ld, res, out, n, false);
	LDAPControl *c = rctrls ? ldap_control_find(AD_OID_DIRSYNC, rctrls, NULL) : NULL;
	void *ck = NULL;
	size_t cklen = 0;
	if (c == NULL || ad_dirsync_response_parse(c->ldctl_value.bv_val, c->ldctl_value.bv_len, more, &ck, &cklen) != 0) {
		*code = LDAP_PROTOCOL_ERROR;
		ldap_controls_free(rctrls);
		ldap_msgfree(res);
		return -EPROTO;
	}
	free(next->bv_val);
	next->bv_val = ck;
	next->bv_len = cklen;
	ldap_controls_free(rctrls);
	ldap_msgfree(res);
	return 0;
}

int ad__dirsync(struct ad_source *s, const struct berval *cookie, struct ad_entry **out, size_t *n_out,
		struct berval *new_cookie, const char *url, char *msg, size_t len)
{
	struct berval cur = {0, NULL};
	bool more = true;
	int rc = 0, code = 0;

	*out = NULL;
	*n_out = 0;
	if (cookie != NULL && cookie->bv_val != NULL) {
		cur.bv_val = xmalloc(cookie->bv_len);
		memcpy(cur.bv_val, cookie->bv_val, cookie->bv_len);
		cur.bv_len = cookie->bv_len;
	}
	/* Windows pages a large answer (flag non-zero: ask again with the new
	 * cookie); Samba answers in one go (docs/active-directory.md) */
	for (size_t page = 0; more && page < DIRSYNC_PAGES_MAX; page++) {
		if (ad__is_stopping(s)) {
			rc = -ECANCELED;
			break;
		}
		more = false;
		rc = dirsync_page(s, &cur, out, n_out, &more, &cur, &code);
		if (rc == -EIO && code == LDAP_INSUFFICIENT_ACCESS && !(s->flags & AD_DIRSYNC_OBJECT_SECURITY)) {
			/* an account that is not an administrator may DirSync
			 * only with OBJECT_SECURITY (docs/active-directory.md, "Bind rights") */
			s->flags |= AD_DIRSYNC_OBJECT_SECURITY;
			more = true;
			page--;
			rc = 0;
			continue;
		}
		if (rc != 0)
			break;
	}
	if (rc != 0) {
		if (rc != -ECANCELED) {
			ad__status_fmt(msg, len, url, code, s->ld, "DirSync search");
			classify(s, code, rc == -ECONNRESET ? -1 : 0);
		}
		for (size_t i = 0; i < *n_out; i++)
			ad__entry_free(&(*out)[i]);
		free(*out);
		*out = NULL;
		*n_out = 0;
		free(cur.bv_val);
		return rc;
	}
	free(new_cookie->bv_val);
	*new_cookie = cur;
	return 0;
}

int ad__read_object(struct ad_source *s, const char *dn, struct ad_entry **out, const char *url, char *msg,
		    size_t len)
{
	LDAPMessage *res = NULL;
	struct timeval tv = {AD_OP_TIMEOUT_S, 0};
	struct ad_entry *e = NULL;
	size_t n = 0;
	int rc;

	*out = NULL;
	rc = ldap_search_ext_s(s->ld, dn, LDAP_SCOPE_BASE, "(objectClass=*)", s->attrs, 0, NULL, NULL, &tv, 1, &res);
	if (rc == LDAP_NO_SUCH_OBJECT) {
		ldap_msgfree(res);
		return 0;
	}
	if (rc != LDAP_SUCCESS) {
		int code = ad__ldap_code(s->ld, rc);
		ad__status_fmt(msg, len, url, code, s->ld, dn);
		classify(s, code, rc);
		ldap_msgfree(res);
		return rc < 0 ? -ECONNRESET : -EIO;
	}
	entries_take(s->ld, res, &e, &n, true);
	ldap_msgfree(res);
	for (size_t i = 1; i < n; i++)
		ad__entry_free(&e[i]);
	if (n > 0) {
		*out = xrealloc(e, sizeof *e);
		/* a Windows DC stops a multi-valued attribute at MaxValRange */
		if ((rc = ad__read_ranges(s, dn, *out, url, msg, len)) != 0) {
			ad__entry_free(*out);
			free(*out);
			*out = NULL;
		}
		return rc;
	}
	free(e);
	return 0;
}

static uint64_t le64(const unsigned char *p)
{
	uint64_t v = 0;
	for (int i = 7; i >= 0; i--)
		v = v << 8 | p[i];
	return v;
}

/*
 * The DirSync cookie as Windows and Samba write it (the control's value is
 * opaque to clients, MS-ADTS 3.1.1.3.4.1.3; the layout below is the one
 * Samba reads and writes, librpc/idl/drsblobs.idl ldapControlDirSyncCookie):
 *   "MSDS", u32 3, NTTIME, u32, u32, u32 extra length,
 *   highwatermark {u64 tmp_highest_usn, u64 reserved_usn, u64 highest_usn},
 *   GUID of the DC's invocation, extra...
 * all little-endian. A cookie of another shape is not described.
 */
#define DIRSYNC_COOKIE_MIN 68

int ad_cursor_describe(const void *blob, size_t len, char *out, size_t outlen)
{
	void *cookie;
	size_t n;
	char err[256], guid[37];
	const unsigned char *c;
	uint64_t nt, usn;
	int rv;

	if (outlen == 0)
		return -EINVAL;
	out[0] = '\0';
	rv = ad_cursor_decode(blob, len, &cookie, &n, err, sizeof err);
	if (rv != 0 || blob == NULL || len == 0)
		return -EINVAL;
	if (cookie == NULL) {
		snprintf(out, outlen, "no DirSync cookie yet");
		return 0;
	}
	c = cookie;
	if (n < DIRSYNC_COOKIE_MIN || memcmp(c, "MSDS", 4) != 0) {
		free(cookie);
		return -EINVAL;
	}
	nt = le64(c + 8);
	usn = le64(c + 44);
	(void)ad_guid_format(c + 52, 16, guid);
	if (nt >= 116444736000000000ULL) {
		time_t t = (time_t)((nt - 116444736000000000ULL) / 10000000ULL);
		struct tm tm;
		char when[32] = "?";
		if (gmtime_r(&t, &tm) != NULL)
			strftime(when, sizeof when, "%Y-%m-%dT%H:%M:%SZ", &tm);
		snprintf(out, outlen, "DirSync usn %llu (%s, invocation %s)", (unsigned long long)usn, when, guid);
	} else {
		snprintf(out, outlen, "DirSync usn %llu (invocation %s)", (unsigned long long)usn, guid);
	}
	free(cookie);
	return 0;
}

struct paged_read {
	struct ad_source *s;
	struct ad_entry **out;
	size_t *n, max;
	const char *base, *url;
	char *msg;
	size_t len;
};

static int paged_read_page(void *ctx, LDAP *ld, LDAPMessage *res, bool more)
{
	struct paged_read *r = ctx;
	size_t first = *r->n;
	int rc = 0;

	(void)more;
	entries_take(ld, res, r->out, r->n, true);
	/* a Windows DC stops a multi-valued attribute at MaxValRange */
	for (size_t i = first; i < *r->n && rc == 0; i++)
		if ((*r->out)[i].n_partial > 0)
			rc = ad__read_ranges(r->s, (*r->out)[i].dn, &(*r->out)[i], r->url, r->msg, r->len);
	if (rc == 0 && *r->n > r->max)
		rc = ad__fail(r->msg, r->len, -EFBIG, "%s: more than %zu entries", r->base, r->max);
	return rc;
}

int ad__read_paged(struct ad_source *s, const char *base, struct ad_entry **out, size_t *n, size_t max,
		   const char *url, char *msg, size_t len)
{
	const struct ldap_paged_query q = {base, "(|(objectClass=user)(objectClass=group))", s->attrs, 500,
					   AD_OP_TIMEOUT_S};
	struct paged_read r = {s, out, n, max, base, url, msg, len};
	struct ldap_paged_failure why;
	int rc = ldap_paged_search(s->ld, &q, paged_read_page, &r, &why);

	if (rc == LDAP_PAGED_NO_BASE) /* a base that does not exist is empty */
		return 0;
	if (why.search_rc != LDAP_SUCCESS || why.result != LDAP_SUCCESS) { /* the request failed */
		int code = why.search_rc != LDAP_SUCCESS ? ad__ldap_code(s->ld, why.search_rc) : why.result;
		ad__status_fmt(msg, len, url, code, s->ld, base);
		classify(s, code, why.search_rc);
	}
	return rc;
}
