/*
 * tests/fuzz/fuzz_entra_answer.c -- what the entra target reads from
 * Microsoft Graph (sync/target/entra_answer.c): the error object, list pages
 * looked through for an anchor, member reference pages, $batch answers
 * (one request's response: status, Retry-After, body), SelectUniqueValue's
 * "is it taken" page, and Retry-After.
 * Input: any bytes, read as a JSON answer and as one header line.
 */
#include <jansson.h>
#include <stdint.h>

#include "sync/target/entra_internal.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	char code[64], msg[256], id[128];
	const char *next;
	const json_t *inner;
	long st, ra;
	json_t *body, *ids;

	(void)http_retry_after((const char *)data, size, ENTRA_RETRY_AFTER_MAX_S);
	body = json_loadb((const char *)data, size, 0, NULL);
	if (body == NULL)
		return 0;
	entra__answer_error(body, code, sizeof code, msg, sizeof msg);
	(void)entra__page_find(body, "extension_0123456789abcdef0123456789abcdef_canopyAnchor", "a-1", id, sizeof id,
			       &next);
	(void)entra__page_taken(body, "extension_0123456789abcdef0123456789abcdef_canopyAnchor", "a-1");
	ids = json_object();
	if (ids != NULL) {
		(void)entra__page_members(body, ids, &next);
		json_decref(ids);
	}
	(void)entra__batch_response(body, "1", &st, &ra, &inner);
	(void)entra__batch_response(body, "20", &st, &ra, &inner);
	json_decref(body);
	return 0;
}
