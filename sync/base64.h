/*
 * sync/base64.h -- base64 (RFC 4648 §4: the standard alphabet, with '='
 * padding, no line breaks) for values that are bytes rather than text: the
 * Active Directory source hands binary attributes (objectSid, ...) to the
 * mappings in this form, and the expression functions that read or write
 * binary values (StringFromSid, ConvertToBase64, ...) use it
 * (docs/mapping-expressions.md, "Binary values").
 */
#ifndef CANOPY_SYNC_BASE64_H
#define CANOPY_SYNC_BASE64_H

#include <stddef.h>

/* The base64 text of n bytes, NUL-terminated, malloc'd (common/xalloc.h). */
char *base64_encode(const void *bytes, size_t n);

/*
 * Decode `len` characters of `text`. Strict: only the standard alphabet, a
 * length that is a multiple of 4, '=' only as the final padding, and no
 * stray bits in the last character (so every byte string has exactly one
 * encoding). Returns 0 with *out (malloc'd, NUL-terminated for convenience,
 * *out_len bytes not counting that NUL), or -EINVAL.
 */
int base64_decode(const char *text, size_t len, unsigned char **out, size_t *out_len);

#endif /* CANOPY_SYNC_BASE64_H */
