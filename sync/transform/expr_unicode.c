/*
 * sync/transform/expr_unicode.c -- UTF-8, case mapping, white space and
 * diacritics for mapping expressions, from libunistring's Unicode tables.
 *
 * A "character" is a code point; a byte that is not valid UTF-8 (including
 * encoded surrogates and overlong forms) counts as one character and is
 * copied through unchanged, so that bad input degrades instead of failing.
 */
#include <stdlib.h>
#include <string.h>

#include <unicase.h>
#include <unictype.h>
#include <uninorm.h>
#include <unistr.h>

#include "sync/transform/expr_impl.h"

size_t ex_utf8_next(const char *str, size_t left, uint32_t *cp)
{
	ucs4_t uc;
	int n = u8_mbtoucr(&uc, (const uint8_t *)str, left);
	if (n <= 0) { /* -1 invalid, -2 incomplete (0 only when left == 0) */
		*cp = BAD_CP;
		return 1;
	}
	*cp = uc;
	return (size_t)n;
}

void ex_utf8_put(struct sbuf *b, uint32_t c)
{
	uint8_t o[6];
	int n = u8_uctomb(o, c, sizeof o);
	if (n > 0)
		sb_addn(b, (const char *)o, (size_t)n);
}

size_t ex_utf8_skip(const char *s, size_t len, long long k)
{
	size_t i = 0;
	uint32_t cp;
	for (; i < len && k > 0; k--)
		i += ex_utf8_next(s + i, len - i, &cp);
	return i;
}

size_t ex_utf8_count(const char *s, size_t len)
{
	size_t i = 0, n = 0;
	uint32_t cp;
	for (; i < len; n++)
		i += ex_utf8_next(s + i, len - i, &cp);
	return n;
}

/*
 * .NET's invariant culture (ToLowerInvariant, ToUpperInvariant) uses the
 * simple, one-to-one mappings of UnicodeData.txt -- ß stays ß, final sigma
 * is not contextual -- and leaves the Turkish İ (U+0130) and ı (U+0131)
 * alone. libunistring's uc_tolower/uc_toupper are those simple mappings
 * (u8_toupper would apply SpecialCasing: ß -> SS). One code point for one
 * keeps character positions, which InStr's text compare relies on.
 */
void ex_case_map(const char *s, bool upper, struct sbuf *b)
{
	size_t len = strlen(s);
	for (size_t i = 0; i < len;) {
		uint32_t cp;
		size_t k = ex_utf8_next(s + i, len - i, &cp);
		if (cp == BAD_CP || cp == 0x130 || cp == 0x131)
			sb_addn(b, s + i, k);
		else
			ex_utf8_put(b, upper ? uc_toupper(cp) : uc_tolower(cp));
		i += k;
	}
}

/* White space as .NET's String.Trim() sees it (Unicode White_Space). */
bool ex_is_space(uint32_t c)
{
	return c != BAD_CP && uc_is_property_white_space(c);
}

/*
 * Letters with no canonical decomposition that NormalizeDiacritics still
 * spells in ASCII. Microsoft documents æ Æ ø Ø ł Ł ß ı (ø as "oe"); the
 * others are canopy's, for the same purpose. Decomposable letters (é, ş,
 * İ, ễ, ...) need no entry: NFD and the dropped marks handle them.
 */
static const struct {
	uint32_t cp;
	const char *ascii;
} fold_special[] = {
	{0x00C6, "AE"}, {0x00D0, "D"}, {0x00D8, "OE"}, {0x00DE, "TH"}, {0x00DF, "ss"},
	{0x00E6, "ae"}, {0x00F0, "d"}, {0x00F8, "oe"}, {0x00FE, "th"}, {0x0110, "D"},
	{0x0111, "d"}, {0x0126, "H"}, {0x0127, "h"}, {0x0131, "i"}, {0x0132, "IJ"},
	{0x0133, "ij"}, {0x0138, "k"}, {0x013F, "L"}, {0x0140, "l"}, {0x0141, "L"},
	{0x0142, "l"}, {0x0149, "n"}, {0x0152, "OE"}, {0x0153, "oe"}, {0x0166, "T"},
	{0x0167, "t"}, {0x017F, "s"}, {0x1E9E, "SS"},
};

static const char *fold_lookup(uint32_t cp)
{
	size_t lo = 0, hi = sizeof fold_special / sizeof fold_special[0];
	while (lo < hi) { /* the table is sorted */
		size_t mid = (lo + hi) / 2;
		if (fold_special[mid].cp == cp)
			return fold_special[mid].ascii;
		if (fold_special[mid].cp < cp)
			lo = mid + 1;
		else
			hi = mid;
	}
	return NULL;
}

/* NFD, drop every non-spacing mark (general category Mn), spell the letters
 * of fold_special in ASCII, NFC again (so that what had no mark to lose,
 * Hangul syllables say, comes back composed). `s` is valid UTF-8. */
static void fold_run(const char *s, size_t n, struct sbuf *b)
{
	size_t dn = 0, cn = 0;
	uint8_t *d = xcheck(u8_normalize(UNINORM_NFD, (const uint8_t *)s, n, NULL, &dn));
	struct sbuf t = {0};
	for (size_t i = 0; i < dn;) {
		ucs4_t uc;
		int k = u8_mbtoucr(&uc, d + i, dn - i);
		if (k <= 0) { /* cannot happen: the library wrote it */
			sb_addc(&t, (char)d[i]);
			k = 1;
		} else if (!uc_is_general_category(uc, UC_CATEGORY_Mn)) {
			const char *ascii = fold_lookup(uc);
			if (ascii)
				sb_adds(&t, ascii);
			else
				sb_addn(&t, (const char *)d + i, (size_t)k);
		}
		i += (size_t)k;
	}
	free(d);
	if (t.len) {
		uint8_t *c = xcheck(u8_normalize(UNINORM_NFC, (const uint8_t *)t.p, t.len, NULL, &cn));
		sb_addn(b, (const char *)c, cn);
		free(c);
	}
	sb_free(&t);
}

void ex_strip_diacritics(const char *s, struct sbuf *b)
{
	size_t len = strlen(s);
	for (size_t i = 0; i < len;) {
		size_t j = i;
		uint32_t cp = 0;
		while (j < len) { /* the longest valid run from i */
			size_t k = ex_utf8_next(s + j, len - j, &cp);
			if (cp == BAD_CP)
				break;
			j += k;
		}
		if (j > i)
			fold_run(s + i, j - i, b);
		if (j < len) /* a byte that is not UTF-8: kept */
			sb_addc(b, s[j++]);
		i = j;
	}
}

/* .NET's TextInfo.IsWordSeparator: the general categories Microsoft's PCase
 * reference lists (spaces and line/paragraph separators, control and format
 * characters, all punctuation, all symbols). Letters, marks and digits are
 * part of a word. */
static bool title_separator(uint32_t cp)
{
	if (cp == BAD_CP)
		return false;
	return uc_is_general_category(cp, UC_CATEGORY_Z) || uc_is_general_category(cp, UC_CATEGORY_Cc) ||
	       uc_is_general_category(cp, UC_CATEGORY_Cf) || uc_is_general_category(cp, UC_CATEGORY_P) ||
	       uc_is_general_category(cp, UC_CATEGORY_S);
}

static bool title_letter(uint32_t cp)
{
	return cp != BAD_CP && uc_is_general_category(cp, UC_CATEGORY_L);
}

/*
 * Without `seps`, the loop of .NET's TextInfo.ToTitleCase: a word starts at
 * a letter, which is title-cased; it runs on over letters, marks, digits and
 * the apostrophe (so "o'neil" is "O'neil", "3rd" is "3Rd") and ends at a
 * separator. .NET leaves an all-capitals word alone (an acronym); Entra's
 * PCase does not (Microsoft's example turns "PABLO" into "Pablo"), so the
 * string is lower-cased first. With `seps`, a word is a run of characters
 * not in `seps`, and its first character is title-cased.
 */
void ex_title_case(const char *s, const char *seps, struct sbuf *b)
{
	struct sbuf low = {0};
	ex_case_map(s, false, &low);
	const char *p = low.p ? low.p : "";
	size_t len = low.len, seplen = seps ? strlen(seps) : 0;
	bool inword = false;
	for (size_t i = 0; i < len;) {
		uint32_t cp;
		size_t k = ex_utf8_next(p + i, len - i, &cp);
		bool start = false;
		if (seps) {
			bool sep = false;
			for (size_t j = 0; j < seplen && !sep;) {
				uint32_t sc;
				size_t m = ex_utf8_next(seps + j, seplen - j, &sc);
				sep = m == k && memcmp(seps + j, p + i, k) == 0;
				j += m;
			}
			start = !sep && !inword;
			inword = !sep;
		} else if (inword) {
			inword = title_letter(cp) || cp == '\'' || !title_separator(cp);
		} else if (title_letter(cp)) {
			start = inword = true;
		}
		if (start && cp != BAD_CP)
			ex_utf8_put(b, uc_totitle(cp));
		else
			sb_addn(b, p + i, k);
		i += k;
	}
	sb_free(&low);
}
