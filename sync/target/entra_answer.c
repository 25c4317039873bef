/*
 * sync/target/entra_answer.c -- reading Microsoft Graph's answers: the error
 * object, a $batch response's Retry-After, list pages (value + @odata.nextLink), member
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

int entra__batch_response(const json_t *answer, const char *id, long *status, long *retry_after_s,
			  const json_t **body)
{
	/* JSON batching: one response per request, in any order, matched by
	 * id (ids are not case-sensitive); each has its own status, headers
	 * and body, and a 429 among them carries its own Retry-After. */
	const json_t *list = json_object_get(answer, "responses"), *r;
	size_t i;

	*status = 0;
	*retry_after_s = -1;
	*body = NULL;
	if (!json_is_array(list))
		return -EBADMSG;
	json_array_foreach(list, i, r) {
		const char *rid = json_string_value(json_object_get(r, "id"));
		const json_t *st = json_object_get(r, "status"), *h, *v;
		const char *k;

		if (rid == NULL || strcasecmp(rid, id) != 0)
			continue;
		if (!json_is_integer(st) || json_integer_value(st) < 100 || json_integer_value(st) > 599)
			return -EBADMSG;
		*status = (long)json_integer_value(st);
		h = json_object_get(r, "headers");
		json_object_foreach((json_t *)h, k, v) {
			if (strcasecmp(k, "Retry-After") != 0)
				continue;
			if (json_is_integer(v) && json_integer_value(v) >= 0)
				*retry_after_s = json_integer_value(v) > ENTRA_RETRY_AFTER_MAX_S
							 ? ENTRA_RETRY_AFTER_MAX_S
							 : (long)json_integer_value(v);
			else if (json_is_string(v)) {
				char line[48];
				int n = snprintf(line, sizeof line, "Retry-After:%.32s", json_string_value(v));
				*retry_after_s = http_retry_after(line, (size_t)n, ENTRA_RETRY_AFTER_MAX_S);
			}
		}
		*body = json_object_get(r, "body");
		return 0;
	}
	return -ENOENT;
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
