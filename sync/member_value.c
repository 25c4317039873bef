/*
 * sync/member_value.c -- splitting member values (see member_value.h).
 */
#include <string.h>
#include <strings.h>

#include "sync/member_value.h"

/* RFC 4517 §3.3.21:
 *   NameAndOptionalUID = distinguishedName [ SHARP BitString ]
 *   BitString          = SQUOTE *binary-digit SQUOTE "B"
 * The RFC notes that a '#' inside the DN is not escaped further, so the
 * separator is the last '#' whose tail is a whole BitString. That '#' must
 * not itself be escaped: an odd run of backslashes before it makes it a
 * character of the last attribute value (RFC 4514 §2.4). */
size_t member_value_dn_len(const char *v)
{
	size_t n = strlen(v), i, bs;

	if (n < 4 || v[n - 1] != 'B' || v[n - 2] != '\'')
		return n;
	/* back over the binary digits to the opening quote */
	for (i = n - 2; i > 0 && (v[i - 1] == '0' || v[i - 1] == '1'); i--)
		;
	/* v[i - 1] must be the opening quote and v[i - 2] the '#' */
	if (i < 3 || v[i - 1] != '\'' || v[i - 2] != '#')
		return n;
	for (bs = 0; bs < i - 2 && v[i - 3 - bs] == '\\'; bs++)
		;
	if (bs % 2 == 1)
		return n; /* "\#": an escaped '#' of the DN */
	return i - 2;
}

bool member_value_is_unique_member(const char *attr)
{
	return attr != NULL && strcasecmp(attr, "uniqueMember") == 0;
}
