/*
 * sync/target/entra_answer.c -- reading Microsoft Graph's answers: the error
 * object, Retry-After, list pages (value + @odata.nextLink), member
 * references and SelectUniqueValue's "is it taken" page. Everything here is
 * outside input: any JSON, any header text. Fuzzed by
 * tests/fuzz/fuzz_entra_answer.c.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "common/xalloc.h"
#include "sync/target/entra_internal.h"

void entra__answer_error(const json_t *body, char *code, size_t codelen, char *msg, size_t msglen)
{
	/* {"error":{"code","message","innerError"}} (Graph "Error responses") */
	const json_t *e = json_object_get(body, "error");
	const char *c = json_string_value(json_object_get(e, "code"));
	const char *m = json_string_value(json_object_get(e, "message"));

	snprintf(code, codelen, "%s", c ? c : "");
	snprintf(msg, msglen, "%s", m ? m : "");
}

long entra__retry_after(const char *line, size_t n)
{
	char tmp[32], *end;
	size_t k;
	long v;

	/* RFC 9110 §10.2.3; Graph sends delay-seconds, never an HTTP date */
	if (n <= 12 || strncasecmp(line, "Retry-After:", 12) != 0)
		return -1;
	k = n - 12 < sizeof tmp - 1 ? n - 12 : sizeof tmp - 1;
	memcpy(tmp, line + 12, k);
	tmp[k] = '\0';
	errno = 0;
	v = strtol(tmp, &end, 10);
	if (end == tmp || v < 0 || errno != 0)
		return -1;
	return v > 3600 ? 3600 : v;
}

int entra__page_find(const json_t *page, const char *prop, const char *anchor, char *id, size_t idlen,
		     const char **next)
{
	const json_t *list = json_object_get(page, "value"), *v;
	size_t i;

	*next = NULL;
	if (!json_is_array(list))
		return -EBADMSG;
	json_array_foreach(list, i, v) {
		const char *anc = json_string_value(json_object_get(v, prop));
		const char *oid = json_string_value(json_object_get(v, "id"));
		if (oid != NULL && anc != NULL && strcmp(anc, anchor) == 0) {
			snprintf(id, idlen, "%s", oid);
			return 1;
		}
	}
	*next = json_string_value(json_object_get(page, "@odata.nextLink"));
	return 0;
}

const char *entra__ref_id(const char *ref)
{
	const char *s = ref != NULL ? strrchr(ref, '/') : NULL;
	return s != NULL && s[1] ? s + 1 : NULL;
}

int entra__page_members(const json_t *page, json_t *ids, const char **next)
{
	const json_t *list = json_object_get(page, "value"), *v;
	size_t i;

	*next = NULL;
	if (!json_is_array(list))
		return -EBADMSG;
	json_array_foreach(list, i, v) {
		const char *m = entra__ref_id(json_string_value(json_object_get(v, "@odata.id")));
		/* an id is a JSON object key here: only UTF-8 (json_object_set_new checks) */
		if (m != NULL && json_object_get(ids, m) == NULL)
			json_object_set_new(ids, m, json_true());
	}
	*next = json_string_value(json_object_get(page, "@odata.nextLink"));
	return 0;
}

int entra__page_taken(const json_t *page, const char *prop, const char *anchor)
{
	const json_t *list = json_object_get(page, "value"), *v;
	size_t i;

	if (!json_is_array(list))
		return -EBADMSG;
	json_array_foreach(list, i, v) {
		const char *anc = json_string_value(json_object_get(v, prop));
		/* ours (same anchor) does not count: a creation whose answer
		 * was lost, asked again, must find its own value free */
		if (anc == NULL || anchor == NULL || strcmp(anc, anchor) != 0)
			return 1;
	}
	return 0;
}
