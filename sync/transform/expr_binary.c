/*
 * sync/transform/expr_binary.c -- the conversion functions of mapping
 * expressions: text to and from base64 and UTF-8 hex, and the binary
 * identifiers of Active Directory (security identifiers, GUIDs).
 *
 * A value is text, so a binary value is carried as its base64 text (RFC 4648
 * §4; sync/base64.h): that is how the AD source hands over objectSid and the
 * other binary attributes, what StringFromSid and StringFromGuid read and
 * what CGuid writes. docs/mapping-expressions.md, "Binary values", is the
 * user's side of this convention.
 *
 * ConvertToBase64 and ConvertFromBase64 work on text as Entra documents them:
 * "Unicode" is .NET's Encoding.Unicode, UTF-16 little-endian.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/random.h>

#include "sync/base64.h"
#include "sync/transform/expr_impl.h"

#define REPLACEMENT_CP 0xFFFD /* what .NET's decoders put for bytes they cannot read */

/* How much of a bad value an error message quotes. */
#define QUOTE 48

/* ---- ConvertToBase64, ConvertFromBase64 ---- */

static void put_u16le(struct sbuf *b, uint32_t u)
{
	char two[2] = {(char)(u & 0xff), (char)(u >> 8)};
	sb_addn(b, two, 2);
}

/* Each value as UTF-16LE, then base64. A byte that is not valid UTF-8 is
 * U+FFFD, as .NET's UTF-8 decoder reads it. */
static int x_tobase64(struct ectx *c, const struct node *n, const void *arg, const char *in, struct sbuf *b)
{
	(void)c, (void)n, (void)arg;
	struct sbuf u16 = {0};
	size_t len = strlen(in);

	for (size_t i = 0; i < len;) {
		uint32_t cp;
		i += ex_utf8_next(in + i, len - i, &cp);
		if (cp == BAD_CP)
			cp = REPLACEMENT_CP;
		if (cp >= 0x10000) { /* a surrogate pair */
			put_u16le(&u16, 0xD800 + ((cp - 0x10000) >> 10));
			put_u16le(&u16, 0xDC00 + ((cp - 0x10000) & 0x3ff));
		} else {
			put_u16le(&u16, cp);
		}
	}
	char *enc = base64_encode(u16.p ? u16.p : "", u16.len);
	sb_adds(b, enc);
	free(enc);
	sb_free(&u16);
	return 0;
}

static int f_converttobase64(struct ectx *c, const struct node *n, struct expr_value *out)
{
	return ex_map_arg(c, n, 0, x_tobase64, NULL, out);
}

enum encoding { ENC_UNICODE, ENC_ASCII, ENC_UTF8 };

static int encoding_parse(const char *s, enum encoding *e)
{
	if (strcasecmp(s, "Unicode") == 0)
		*e = ENC_UNICODE;
	else if (strcasecmp(s, "ASCII") == 0)
		*e = ENC_ASCII;
	else if (strcasecmp(s, "UTF8") == 0)
		*e = ENC_UTF8;
	else
		return -1;
	return 0;
}

/* A literal Encoding is checked when the configuration loads. */
static int check_frombase64(struct parser *p, struct node *n)
{
	enum encoding e;
	if (ex_given(n, 1) && ex_literal(n->args[1]) && encoding_parse(n->args[1]->text, &e) != 0)
		return ex_perr_col(p, n->args[1]->col, "%s: Encoding must be Unicode, ASCII or UTF8, got \"%s\"",
				   n->fn->name, n->args[1]->text);
	return 0;
}

/* Decoded text into b, as .NET's decoders read it: UTF-16LE with an
 * unpaired surrogate or a final odd byte as U+FFFD; ASCII with bytes above
 * 0x7F as '?'; UTF-8 with each byte that is not valid UTF-8 as U+FFFD. A NUL
 * character cannot be part of a value: 1. */
static int decode_text(const unsigned char *d, size_t len, enum encoding e, struct sbuf *b)
{
	switch (e) {
	case ENC_UNICODE:
		for (size_t i = 0; i < len; i += 2) {
			uint32_t u = i + 1 < len ? (uint32_t)(d[i] | d[i + 1] << 8) : REPLACEMENT_CP;
			if (u >= 0xD800 && u <= 0xDBFF && i + 3 < len) {
				uint32_t lo = (uint32_t)(d[i + 2] | d[i + 3] << 8);
				if (lo >= 0xDC00 && lo <= 0xDFFF) {
					u = 0x10000 + ((u - 0xD800) << 10) + (lo - 0xDC00);
					i += 2;
				}
			}
			if (u >= 0xD800 && u <= 0xDFFF)
				u = REPLACEMENT_CP;
			if (u == 0)
				return 1;
			ex_utf8_put(b, u);
		}
		return 0;
	case ENC_ASCII:
		for (size_t i = 0; i < len; i++) {
			if (d[i] == 0)
				return 1;
			sb_addc(b, d[i] < 0x80 ? (char)d[i] : '?');
		}
		return 0;
	case ENC_UTF8:
		for (size_t i = 0; i < len;) {
			uint32_t cp;
			size_t k = ex_utf8_next((const char *)d + i, len - i, &cp);
			if (cp == 0)
				return 1;
			if (cp == BAD_CP)
				ex_utf8_put(b, REPLACEMENT_CP);
			else
				sb_addn(b, (const char *)d + i, k);
			i += k;
		}
		return 0;
	}
	return 0;
}

static int x_frombase64(struct ectx *c, const struct node *n, const void *arg, const char *in, struct sbuf *b)
{
	unsigned char *d;
	size_t len;
	if (base64_decode(in, strlen(in), &d, &len) != 0)
		return ex_efail(c, n, "not base64: \"%.*s\"%s", QUOTE, in, strlen(in) > QUOTE ? "..." : "");
	int nul = decode_text(d, len, *(const enum encoding *)arg, b);
	free(d);
	if (nul)
		return ex_efail(c, n, "\"%.*s\"%s decodes to text with a NUL character, which a value cannot hold",
				QUOTE, in, strlen(in) > QUOTE ? "..." : "");
	return 0;
}

static int f_convertfrombase64(struct ectx *c, const struct node *n, struct expr_value *out)
{
	enum encoding e = ENC_UNICODE; /* Entra: "assumes Unicode for encoding" */
	if (ex_given(n, 1)) {
		char *s;
		int rc = ex_arg_str(c, n, 1, &s);
		if (rc)
			return rc;
		if (s && encoding_parse(s, &e) != 0)
			rc = ex_efail(c, n, "Encoding must be Unicode, ASCII or UTF8, got \"%s\"", s);
		free(s);
		if (rc)
			return rc;
	}
	return ex_map_arg(c, n, 0, x_frombase64, &e, out);
}

/* ---- ConvertToUTF8Hex, ConvertFromUTF8Hex ---- */

static int x_toutf8hex(struct ectx *c, const struct node *n, const void *arg, const char *in, struct sbuf *b)
{
	(void)c, (void)n, (void)arg;
	static const char hex[] = "0123456789ABCDEF";
	for (const unsigned char *p = (const unsigned char *)in; *p; p++) {
		sb_addc(b, hex[*p >> 4]);
		sb_addc(b, hex[*p & 15]);
	}
	return 0;
}

static int f_converttoutf8hex(struct ectx *c, const struct node *n, struct expr_value *out)
{
	return ex_map_arg(c, n, 0, x_toutf8hex, NULL, out);
}

static int x_fromutf8hex(struct ectx *c, const struct node *n, const void *arg, const char *in, struct sbuf *b)
{
	(void)arg;
	size_t len = strlen(in);
	unsigned char *d = xmalloc(len / 2 + 1);
	int rc = 0;

	if (len % 2)
		rc = ex_efail(c, n, "an odd number of hex digits: \"%.*s\"%s", QUOTE, in, len > QUOTE ? "..." : "");
	for (size_t i = 0; i + 1 < len && !rc; i += 2) {
		int hi = ex_hexval(in[i]), lo = ex_hexval(in[i + 1]);
		if (hi < 0 || lo < 0)
			rc = ex_efail(c, n, "not hex digits: \"%.*s\"%s", QUOTE, in, len > QUOTE ? "..." : "");
		else
			d[i / 2] = (unsigned char)(hi << 4 | lo);
	}
	if (!rc && decode_text(d, len / 2, ENC_UTF8, b))
		rc = ex_efail(c, n, "\"%.*s\"%s decodes to text with a NUL character, which a value cannot hold",
			      QUOTE, in, len > QUOTE ? "..." : "");
	free(d);
	return rc;
}

static int f_convertfromutf8hex(struct ectx *c, const struct node *n, struct expr_value *out)
{
	return ex_map_arg(c, n, 0, x_fromutf8hex, NULL, out);
}

/* ---- StringFromSid ---- */

/*
 * A binary SID (MS-DTYP 2.4.2.2): Revision (1), SubAuthorityCount (at most
 * 15), IdentifierAuthority (6 bytes, big-endian), then SubAuthorityCount
 * 32-bit little-endian sub-authorities. Written as MS-DTYP 2.4.2.1 says (and
 * ConvertSidToStringSid, .NET's SecurityIdentifier.ToString do):
 * S-1-<authority>-<sub>-..., the authority in decimal below 2^32, else as
 * 0x and 12 hex digits.
 */
static int x_sid(struct ectx *c, const struct node *n, const void *arg, const char *in, struct sbuf *b)
{
	(void)arg;
	unsigned char *d;
	size_t len;
	char num[32];
	int rc = 0;

	if (base64_decode(in, strlen(in), &d, &len) != 0)
		return ex_efail(c, n, "not a binary SID in base64: \"%.*s\"%s", QUOTE, in,
				strlen(in) > QUOTE ? "..." : "");
	if (len < 8)
		rc = ex_efail(c, n, "not a SID: %zu bytes, a SID has at least 8", len);
	else if (d[0] != 1)
		rc = ex_efail(c, n, "not a SID: revision %u, only revision 1 exists", d[0]);
	else if (d[1] > 15)
		rc = ex_efail(c, n, "not a SID: %u sub-authorities, at most 15", d[1]);
	else if (len != 8 + 4 * (size_t)d[1])
		rc = ex_efail(c, n, "not a SID: %zu bytes, but a SID with %u sub-authorities has %zu", len, d[1],
			      8 + 4 * (size_t)d[1]);
	if (rc) {
		free(d);
		return rc;
	}
	unsigned long long auth = 0;
	for (int i = 2; i < 8; i++)
		auth = auth << 8 | d[i];
	if (auth < (1ULL << 32))
		snprintf(num, sizeof num, "S-1-%llu", auth);
	else
		snprintf(num, sizeof num, "S-1-0x%012llX", auth);
	sb_adds(b, num);
	for (size_t k = 0; k < d[1]; k++) {
		const unsigned char *s = d + 8 + 4 * k;
		unsigned long sub = (unsigned long)s[0] | (unsigned long)s[1] << 8 | (unsigned long)s[2] << 16 |
				    (unsigned long)s[3] << 24;
		snprintf(num, sizeof num, "-%lu", sub);
		sb_adds(b, num);
	}
	free(d);
	return 0;
}

static int f_stringfromsid(struct ectx *c, const struct node *n, struct expr_value *out)
{
	return ex_map_arg(c, n, 0, x_sid, NULL, out);
}

/* ---- GUIDs: StringFromGuid, CGuid ---- */

/* MS-DTYP 2.3.4: Data1 (4 bytes), Data2, Data3 (2 each) little-endian, then
 * Data4 (8 bytes) in order; the text form is .NET's Guid.ToString("D"). */
static const int guid_order[16] = {3, 2, 1, 0, 5, 4, 7, 6, 8, 9, 10, 11, 12, 13, 14, 15};

static void guid_text(const unsigned char g[16], struct sbuf *b)
{
	static const char hex[] = "0123456789abcdef";
	for (int i = 0; i < 16; i++) {
		if (i == 4 || i == 6 || i == 8 || i == 10)
			sb_addc(b, '-');
		sb_addc(b, hex[g[guid_order[i]] >> 4]);
		sb_addc(b, hex[g[guid_order[i]] & 15]);
	}
}

/* "xxxxxxxx-xxxx-xxxx-xxxx-xxxxxxxxxxxx", or in braces, any case, into its
 * 16 bytes. Returns 0 or -1. */
static int guid_parse(const char *s, unsigned char g[16])
{
	size_t len = strlen(s);
	if (len == 38 && s[0] == '{' && s[37] == '}')
		s++, len = 36;
	if (len != 36)
		return -1;
	for (int i = 0, k = 0; i < 16; i++) {
		if (k == 8 || k == 13 || k == 18 || k == 23) {
			if (s[k] != '-')
				return -1;
			k++;
		}
		int hi = ex_hexval(s[k]), lo = ex_hexval(s[k + 1]);
		if (hi < 0 || lo < 0)
			return -1;
		g[guid_order[i]] = (unsigned char)(hi << 4 | lo);
		k += 2;
	}
	return 0;
}

/* The binary GUID (base64 of 16 bytes) as text. A value that already is a
 * GUID's text -- how the AD source gives objectGUID and
 * mS-DS-ConsistencyGuid -- is returned in the same canonical form. */
static int x_guid(struct ectx *c, const struct node *n, const void *arg, const char *in, struct sbuf *b)
{
	(void)arg;
	unsigned char g[16], *d;
	size_t len;

	if (guid_parse(in, g) == 0) {
		guid_text(g, b);
		return 0;
	}
	if (base64_decode(in, strlen(in), &d, &len) != 0)
		return ex_efail(c, n, "not a GUID, as text or as 16 bytes in base64: \"%.*s\"%s", QUOTE, in,
				strlen(in) > QUOTE ? "..." : "");
	if (len != 16) {
		free(d);
		return ex_efail(c, n, "not a GUID: %zu bytes, a GUID has 16", len);
	}
	guid_text(d, b);
	free(d);
	return 0;
}

static int f_stringfromguid(struct ectx *c, const struct node *n, struct expr_value *out)
{
	return ex_map_arg(c, n, 0, x_guid, NULL, out);
}

/* The GUID's text as binary: base64 of its 16 bytes (for [objectGUID] that
 * is Entra's onPremisesImmutableId). */
static int x_cguid(struct ectx *c, const struct node *n, const void *arg, const char *in, struct sbuf *b)
{
	(void)arg;
	unsigned char g[16];
	if (guid_parse(in, g) != 0)
		return ex_efail(c, n, "not a GUID (xxxxxxxx-xxxx-xxxx-xxxx-xxxxxxxxxxxx): \"%.*s\"%s", QUOTE, in,
				strlen(in) > QUOTE ? "..." : "");
	char *enc = base64_encode(g, sizeof g);
	sb_adds(b, enc);
	free(enc);
	return 0;
}

static int f_cguid(struct ectx *c, const struct node *n, struct expr_value *out)
{
	return ex_map_arg(c, n, 0, x_cguid, NULL, out);
}

/* Guid(): a new random GUID (Microsoft's reference: "generates a new random
 * GUID"), a version 4 UUID (RFC 9562 §5.4: 122 random bits, the version
 * nibble 4 and the variant bits 10) written as .NET's Guid.ToString() --
 * lower case, 8-4-4-4-12. It changes at every evaluation, so like Now() and
 * RandomString() it is EXPR_VOLATILE: applied when the object is created
 * only and left out of the content hash (mapping.h), so reading the object
 * again does not rewrite it. The bytes come from the kernel's CSPRNG. */
static int f_guid(struct ectx *c, const struct node *n, struct expr_value *out)
{
	unsigned char g[16];
	size_t got = 0;
	char s[37];

	while (got < sizeof g) {
		ssize_t k = getrandom(g + got, sizeof g - got, 0);
		if (k < 0 && errno == EINTR)
			continue;
		if (k <= 0)
			return ex_efail(c, n, "the system's random number generator failed");
		got += (size_t)k;
	}
	g[6] = (unsigned char)((g[6] & 0x0f) | 0x40);
	g[8] = (unsigned char)((g[8] & 0x3f) | 0x80);
	snprintf(s, sizeof s,
		 "%02x%02x%02x%02x-%02x%02x-%02x%02x-%02x%02x-%02x%02x%02x%02x%02x%02x", g[0], g[1], g[2],
		 g[3], g[4], g[5], g[6], g[7], g[8], g[9], g[10], g[11], g[12], g[13], g[14], g[15]);
	ex_vpush_str(out, s);
	return 0;
}

/* ---- The table, appended to expr_funcs.c's ---- */

const struct func ex_binary_funcs[] = {
	{"CGuid", 1, 1, 0, NULL, f_cguid, 0},
	{"ConvertFromBase64", 1, 2, 0, check_frombase64, f_convertfrombase64, 0},
	{"ConvertFromUTF8Hex", 1, 1, 0, NULL, f_convertfromutf8hex, 0},
	{"ConvertToBase64", 1, 1, 0, NULL, f_converttobase64, 0},
	{"ConvertToUTF8Hex", 1, 1, 0, NULL, f_converttoutf8hex, 0},
	{"Guid", 0, 0, 0, NULL, f_guid, EXPR_VOLATILE},
	{"StringFromGuid", 1, 1, 0, NULL, f_stringfromguid, 0},
	{"StringFromSid", 1, 1, 0, NULL, f_stringfromsid, 0},
};
const size_t ex_n_binary_funcs = sizeof ex_binary_funcs / sizeof ex_binary_funcs[0];
