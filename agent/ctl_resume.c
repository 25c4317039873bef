/*
 * agent/ctl_resume.c -- `canopyctl resume` (see ctl.h).
 *
 * POST /v1/sync/resume asks the leader to check the target now; the check is
 * asynchronous, so the answer only says it started (with "resumed_at", the
 * leader's clock). Then the node's status tells how it ended: no
 * sync.quarantine (it left), or sync.quarantine.checked_at at or after
 * resumed_at (a check answered after the resume, and it is still
 * quarantined). Any node shows both: the leader replicates them.
 */
#include "agent/ctl.h"
#include "agent/http_body.h"
#include "common/xalloc.h"
#include "sync/provlog.h"

#include <jansson.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define RESUME_WAIT_MS 30000 /* longer than a check takes (target.timeout_ms defaults to 30 s) */
#define RESUME_POLL_MS 100

static const char *str(json_t *o, const char *key, const char *dflt)
{
	const char *s = json_string_value(json_object_get(o, key));
	return s ? s : dflt;
}

static int64_t mono_ms(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static int64_t time_us(const char *t)
{
	int64_t us;
	return t != NULL && provlog_parse_time(t, &us) == 0 ? us : 0;
}

static json_t *parse(const struct http_body *body)
{
	return json_loadb(body->p ? body->p : "", body->len, 0, NULL);
}

/* The quarantine as one line: reason, detail, since, last request, next retry. */
static void describe(FILE *f, json_t *q)
{
	json_t *last = json_object_get(q, "last_request");

	fprintf(f, "%s: %s", str(q, "reason", "?"), str(q, "detail", ""));
	if (str(q, "since", NULL))
		fprintf(f, "; since %s", str(q, "since", ""));
	if (json_is_object(last) && str(last, "method", NULL))
		fprintf(f, "; last request %s %s -> %lld", str(last, "method", "?"), str(last, "path", ""),
			(long long)json_integer_value(json_object_get(last, "status")));
	if (str(q, "next_retry_at", NULL))
		fprintf(f, "; next retry at %s", str(q, "next_retry_at", ""));
}

int ctl_resume(const char *server, const char *token, bool json, FILE *out, FILE *err)
{
	struct http_body body = {0};
	char errmsg[600];
	json_t *o, *st = NULL, *q = NULL;
	int64_t resumed_us, deadline;
	long status;
	int rc = 1;

	status = ctl_request(server, "POST", "/v1/sync/resume", NULL, token, &body, errmsg, sizeof errmsg);
	if (status < 0) {
		fprintf(err, "canopyctl: %s\n", errmsg);
		free(body.p);
		return 1;
	}
	o = parse(&body);
	free(body.p);
	if (o == NULL) {
		fprintf(err, "canopyctl: %s answered HTTP %ld with a body that is not JSON\n", server, status);
		return 1;
	}
	if (status == 200) { /* not quarantined */
		if (json)
			fprintf(out, "{\"result\":\"not quarantined\"}\n");
		else
			fprintf(out, "sync is not quarantined: nothing to resume\n");
		json_decref(o);
		return 0;
	}
	if (status != 202) {
		fprintf(err, "canopyctl: resume: %s: HTTP %ld: %s\n", server, status, str(o, "error", "no error message"));
		json_decref(o);
		return 1;
	}
	resumed_us = time_us(str(o, "resumed_at", NULL));
	deadline = mono_ms() + RESUME_WAIT_MS;
	for (;;) {
		struct http_body b = {0};
		json_decref(st);
		st = NULL;
		status = ctl_request(server, "GET", "/v1/status", NULL, NULL, &b, errmsg, sizeof errmsg);
		if (status == 200)
			st = parse(&b);
		free(b.p);
		q = st ? json_object_get(json_object_get(st, "sync"), "quarantine") : NULL;
		if (st != NULL && q == NULL) {
			rc = 0;
			break;
		}
		if (q != NULL && time_us(str(q, "checked_at", NULL)) >= resumed_us)
			break;
		if (mono_ms() >= deadline) {
			q = NULL;
			break;
		}
		struct timespec ts = {0, RESUME_POLL_MS * 1000000L};
		nanosleep(&ts, NULL);
	}
	if (json) {
		json_t *r = xcheck(json_pack("{s:s,s:s,s:O?}", "result",
					     rc == 0 ? "resumed" : q != NULL ? "still quarantined" : "no answer yet",
					     "reason", str(o, "reason", ""), "quarantine", q));
		char *d = xcheck(json_dumps(r, JSON_COMPACT));
		fprintf(out, "%s\n", d);
		free(d);
		json_decref(r);
	} else if (rc == 0) {
		fprintf(out, "sync resumed: it left the quarantine (%s)\n", str(o, "reason", "?"));
	}
	if (rc != 0 && q != NULL) {
		fprintf(err, "canopyctl: resume: the target was checked again and the sync is still quarantined (");
		describe(err, q);
		fprintf(err, ")\n");
	} else if (rc != 0) {
		fprintf(err, "canopyctl: resume: no answer from the check within %d s (%s); see canopyctl status\n",
			RESUME_WAIT_MS / 1000, st == NULL ? errmsg : "still quarantined");
	}
	json_decref(st);
	json_decref(o);
	return rc;
}
