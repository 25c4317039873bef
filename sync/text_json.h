/*
 * sync/text_json.h -- free text (error messages, an answer's detail, a log
 * line's fields) as a JSON string.
 *
 * jansson's json_string() returns NULL for text that is not valid UTF-8 as
 * well as when memory runs out, so its NULL cannot simply go to xcheck():
 * an error text cut at a byte limit in the middle of a character, or bytes a
 * server sent, would abort the agent. text_json() replaces every byte that
 * does not start a valid UTF-8 sequence with U+FFFD and never returns NULL
 * (out of memory aborts, common/xalloc.h). For identifiers (DNs, anchors,
 * target ids), which must not be altered, callers keep json_string(): they
 * come from sources that guarantee UTF-8 (LDAP string syntaxes, parsed JSON).
 */
#ifndef CANOPY_SYNC_TEXT_JSON_H
#define CANOPY_SYNC_TEXT_JSON_H

#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>

/* A new JSON string holding `s`, invalid UTF-8 replaced by U+FFFD. */
json_t *text_json(const char *s);

/* The same, or JSON null for s == NULL. */
json_t *text_json_or_null(const char *s);

/* Whether the `len` bytes at `s` are valid UTF-8 (no NUL allowed). */
bool text_is_utf8(const char *s, size_t len);

#endif /* CANOPY_SYNC_TEXT_JSON_H */
