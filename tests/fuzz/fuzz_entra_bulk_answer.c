/*
 * tests/fuzz/fuzz_entra_bulk_answer.c -- what the bulkupload mode reads
 * from the provisioning logs (sync/target/entra_bulk_answer.c): a page of
 * provisioningObjectSummary entries, and the activityDateTime of each.
 * Input: any bytes, read as a JSON page and as one time string.
 */
#include <jansson.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "sync/target/entra_bulk.h"

static void on_entry(void *data, const struct entra_bulk_entry *e)
{
	size_t *n = data;

	/* touch every field: a pointer into freed or foreign memory shows here */
	*n += strlen(e->external_id) + strlen(e->target_id) + strlen(e->error_code) + strlen(e->reason) +
	      (size_t)(e->at_ms & 1) + (size_t)e->verdict;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	const char *next;
	size_t n = 0;
	char *s = malloc(size + 1);
	json_t *page;

	if (s == NULL)
		return 0;
	memcpy(s, data, size);
	s[size] = '\0';
	(void)entra_bulk_time_ms(s);
	free(s);
	page = json_loadb((const char *)data, size, 0, NULL);
	if (page == NULL)
		return 0;
	(void)entra_bulk_log_page(page, on_entry, &n, &next);
	json_decref(page);
	return 0;
}
