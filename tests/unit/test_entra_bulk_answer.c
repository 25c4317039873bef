/*
 * tests/unit/test_entra_bulk_answer.c -- reading the provisioning logs for
 * target.mode bulkupload (sync/target/entra_bulk_answer.c): Graph v1.0's
 * provisioningStatusInfo and the older statusInfo both give the verdict;
 * errorInformation's errorCode and reason travel with a failure; entries
 * without a source id or with a status we cannot act on are skipped; a page
 * without a value list is refused; activityDateTime reads with any number of
 * fraction digits, Z or +00:00, and nothing else.
 */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "sync/target/entra_bulk.h"

struct seen {
	int n;
	char ids[8][64], targets[8][64], codes[8][64], reasons[8][128];
	enum entra_bulk_verdict verdicts[8];
	int64_t at[8];
};

static void on_entry(void *data, const struct entra_bulk_entry *e)
{
	struct seen *s = data;

	assert_true(s->n < 8);
	snprintf(s->ids[s->n], sizeof s->ids[0], "%s", e->external_id);
	snprintf(s->targets[s->n], sizeof s->targets[0], "%s", e->target_id);
	snprintf(s->codes[s->n], sizeof s->codes[0], "%s", e->error_code);
	snprintf(s->reasons[s->n], sizeof s->reasons[0], "%s", e->reason);
	s->verdicts[s->n] = e->verdict;
	s->at[s->n] = e->at_ms;
	s->n++;
}

static int read_page(const char *text, struct seen *s, const char **next, json_t **keep)
{
	json_error_t err;
	*keep = json_loads(text, 0, &err);
	assert_non_null(*keep);
	memset(s, 0, sizeof *s);
	return entra_bulk_log_page(*keep, on_entry, s, next);
}

static void verdicts_from_either_status_field(void **state)
{
	struct seen s;
	const char *next;
	json_t *page;
	(void)state;

	int n = read_page(
		"{\"value\":["
		"{\"activityDateTime\":\"2026-11-30T07:31:11.1234567Z\",\"provisioningStatusInfo\":{\"status\":\"success\"},"
		" \"sourceIdentity\":{\"id\":\"a\"},\"targetIdentity\":{\"id\":\"t-a\"}},"
		"{\"statusInfo\":{\"status\":\"failure\",\"errorInformation\":{\"errorCode\":\"AzureActiveDirectoryInvalidValue\","
		" \"reason\":\"bad department\"}},\"sourceIdentity\":{\"id\":\"b\"}},"
		"{\"provisioningStatusInfo\":{\"status\":\"skipped\"},\"sourceIdentity\":{\"id\":\"c\"}},"
		"{\"provisioningStatusInfo\":{\"status\":\"warning\"},\"sourceIdentity\":{\"id\":\"d\"}}"
		"],\"@odata.nextLink\":\"https://graph.microsoft.com/v1.0/auditLogs/provisioning?$skiptoken=x\"}",
		&s, &next, &page);
	assert_int_equal(n, 4);
	assert_string_equal(s.ids[0], "a");
	assert_int_equal(s.verdicts[0], ENTRA_BULK_SUCCESS);
	assert_string_equal(s.targets[0], "t-a");
	assert_true(s.at[0] == INT64_C(1796023871123));
	assert_string_equal(s.ids[1], "b");
	assert_int_equal(s.verdicts[1], ENTRA_BULK_FAILURE);
	assert_string_equal(s.codes[1], "AzureActiveDirectoryInvalidValue");
	assert_string_equal(s.reasons[1], "bad department");
	assert_string_equal(s.targets[1], "");
	assert_true(s.at[1] == -1);
	assert_int_equal(s.verdicts[2], ENTRA_BULK_SKIPPED);
	assert_int_equal(s.verdicts[3], ENTRA_BULK_SUCCESS);
	assert_string_equal(next, "https://graph.microsoft.com/v1.0/auditLogs/provisioning?$skiptoken=x");
	assert_string_equal(entra_bulk_verdict_name(ENTRA_BULK_FAILURE), "failure");
	json_decref(page);
}

static void unusable_entries_are_skipped_and_a_page_without_value_refused(void **state)
{
	struct seen s;
	const char *next = "x";
	json_t *page;
	(void)state;

	int n = read_page("{\"value\":[1, null, {}, {\"provisioningStatusInfo\":{\"status\":\"success\"}},"
			  "{\"provisioningStatusInfo\":{\"status\":\"success\"},\"sourceIdentity\":{\"id\":\"\"}},"
			  "{\"provisioningStatusInfo\":{\"status\":\"unknownFutureValue\"},\"sourceIdentity\":{\"id\":\"z\"}},"
			  "{\"provisioningStatusInfo\":{\"status\":7},\"sourceIdentity\":{\"id\":\"z\"}},"
			  "{\"provisioningStatusInfo\":{\"status\":\"failure\",\"errorInformation\":{\"errorCode\":5}},"
			  " \"sourceIdentity\":{\"id\":\"y\"},\"targetIdentity\":{\"id\":null}}]}",
			  &s, &next, &page);
	assert_int_equal(n, 1);
	assert_string_equal(s.ids[0], "y");
	assert_string_equal(s.codes[0], "");
	assert_null(next);
	json_decref(page);
	n = read_page("{\"error\":{\"code\":\"Authorization_RequestDenied\"}}", &s, &next, &page);
	assert_int_equal(n, -EBADMSG);
	json_decref(page);
	n = read_page("[]", &s, &next, &page);
	assert_int_equal(n, -EBADMSG);
	json_decref(page);
}

static void times_in_utc_only(void **state)
{
	(void)state;
	assert_true(entra_bulk_time_ms("1970-01-01T00:00:00Z") == 0);
	assert_true(entra_bulk_time_ms("1970-01-01T00:00:01.5Z") == 1500);
	assert_true(entra_bulk_time_ms("1970-01-01T00:00:01.25+00:00") == 1250);
	assert_true(entra_bulk_time_ms("1970-01-01T00:00:01.999999999Z") == 1999);
	assert_true(entra_bulk_time_ms("2026-11-30T07:31:11+02:00") == -1);
	assert_true(entra_bulk_time_ms("2026-11-30T07:31:11") == -1);
	assert_true(entra_bulk_time_ms("2026-11-30T07:31:11.Z") == -1);
	assert_true(entra_bulk_time_ms("2026-13-30T07:31:11Z") == -1);
	assert_true(entra_bulk_time_ms("yesterday") == -1);
	assert_true(entra_bulk_time_ms(NULL) == -1);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(verdicts_from_either_status_field),
		cmocka_unit_test(unusable_entries_are_skipped_and_a_page_without_value_refused),
		cmocka_unit_test(times_in_utc_only),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
