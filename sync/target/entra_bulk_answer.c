/*
 * sync/target/entra_bulk_answer.c -- reading the provisioning logs
 * (GET /auditLogs/provisioning: a page of provisioningObjectSummary
 * entries) for the bulkupload mode (entra_bulk.h). Outside input: every
 * field is checked for its type, nothing is trusted to be there
 * (tests/fuzz/fuzz_entra_bulk_answer.c).
 *
 * Microsoft's provisioningObjectSummary (Graph v1.0) carries the result in
 * provisioningStatusInfo {status, errorInformation}; statusInfo is the
 * older (beta) name of the same thing, read when the new one is absent.
 * status: success | warning | failure | skipped | unknownFutureValue.
 */
#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include "sync/target/entra_bulk.h"

const char *entra_bulk_verdict_name(enum entra_bulk_verdict v)
{
	switch (v) {
	case ENTRA_BULK_SUCCESS:
		return "success";
	case ENTRA_BULK_SKIPPED:
		return "skipped";
	case ENTRA_BULK_FAILURE:
		return "failure";
	}
	return "?";
}

int64_t entra_bulk_time_ms(const char *s)
{
	int y, mo, d, h, mi, sec, n = 0;
	int64_t ms = 0;
	struct tm tm;

	if (s == NULL || sscanf(s, "%4d-%2d-%2dT%2d:%2d:%2d%n", &y, &mo, &d, &h, &mi, &sec, &n) != 6 || n == 0)
		return -1;
	if (y < 1970 || y > 9999 || mo < 1 || mo > 12 || d < 1 || d > 31 || h > 23 || mi > 59 || sec > 60 || h < 0 ||
	    mi < 0 || sec < 0)
		return -1;
	s += n;
	if (*s == '.') {
		int digits = 0;
		for (s++; *s >= '0' && *s <= '9'; s++, digits++)
			if (digits < 3)
				ms = ms * 10 + (*s - '0');
		if (digits == 0)
			return -1;
		for (; digits < 3; digits++)
			ms *= 10;
	}
	if (strcmp(s, "Z") != 0 && strcmp(s, "+00:00") != 0)
		return -1;
	memset(&tm, 0, sizeof tm);
	tm.tm_year = y - 1900;
	tm.tm_mon = mo - 1;
	tm.tm_mday = d;
	tm.tm_hour = h;
	tm.tm_min = mi;
	tm.tm_sec = sec;
	time_t t = timegm(&tm);
	if (t == (time_t)-1)
		return -1;
	return (int64_t)t * 1000 + ms;
}

static const char *str_at(const json_t *o, const char *key)
{
	const json_t *v = json_is_object(o) ? json_object_get(o, key) : NULL;
	return json_is_string(v) ? json_string_value(v) : NULL;
}

int entra_bulk_log_page(const json_t *page, void (*cb)(void *data, const struct entra_bulk_entry *e), void *data,
			const char **next)
{
	const json_t *list = json_is_object(page) ? json_object_get(page, "value") : NULL;
	const json_t *item;
	size_t i;
	int n = 0;

	*next = NULL;
	if (!json_is_array(list))
		return -EBADMSG;
	json_array_foreach(list, i, item) {
		struct entra_bulk_entry e = {.target_id = "", .error_code = "", .reason = ""};
		const json_t *info = json_object_get(item, "provisioningStatusInfo");
		const char *status, *s;

		if (!json_is_object(info))
			info = json_object_get(item, "statusInfo");
		status = str_at(info, "status");
		e.external_id = str_at(json_object_get(item, "sourceIdentity"), "id");
		if (status == NULL || e.external_id == NULL || e.external_id[0] == '\0')
			continue;
		if (strcasecmp(status, "success") == 0 || strcasecmp(status, "warning") == 0)
			e.verdict = ENTRA_BULK_SUCCESS;
		else if (strcasecmp(status, "skipped") == 0)
			e.verdict = ENTRA_BULK_SKIPPED;
		else if (strcasecmp(status, "failure") == 0)
			e.verdict = ENTRA_BULK_FAILURE;
		else
			continue; /* unknownFutureValue: not a verdict we can act on */
		if ((s = str_at(json_object_get(item, "targetIdentity"), "id")) != NULL)
			e.target_id = s;
		e.at_ms = entra_bulk_time_ms(str_at(item, "activityDateTime"));
		const json_t *err = json_object_get(info, "errorInformation");
		if ((s = str_at(err, "errorCode")) != NULL)
			e.error_code = s;
		if ((s = str_at(err, "reason")) != NULL)
			e.reason = s;
		cb(data, &e);
		n++;
	}
	*next = str_at(page, "@odata.nextLink");
	return n;
}
