/*
 * sync/target/entra_bulk.c -- the bulkupload mode of the Entra ID target
 * (entra_bulk.h): operations gathered into SCIM BulkRequests for the
 * provisioning job's bulkUpload endpoint, sent by one thread of the run's
 * own at Microsoft's rate, and their verdicts read back from the
 * provisioning logs. The thread hands each request to the run's HTTP
 * engine on the loop (http_multi.h) and waits for its answer, as the Graph
 * mode's threads do (entra_internal.h says why).
 *
 * Microsoft's documents this follows (also listed in
 * tests/fixtures/graph/README.md): "Perform bulkUpload" (POST only, 50
 * operations, application/scim+json, 202 + Location, 40 requests a second,
 * SynchronizationData-User.Upload), the bulkUpload resource type, "API-driven
 * inbound provisioning concepts" (asynchronous processing, matching on
 * externalId), "List provisioningObjectSummary" (GET /auditLogs/provisioning,
 * AuditLog.Read.All), Graph's throttling guidance (429 + Retry-After).
 *
 * The request loop is written here rather than shared with entra_graph.c:
 * that one runs one operation's requests with the run's adaptive budget;
 * this one runs one request for up to 50 operations at a fixed documented
 * rate, and its answers mean different things (202 is the only success).
 */
#include <assert.h>
#include <curl/curl.h>
#include <errno.h>
#include <openssl/rand.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include "common/xalloc.h"
#include "sync/secret.h"
#include "sync/target/entra_bulk.h"
#include "sync/target/entra_internal.h"
#include "sync/target/target_metrics.h"

#define SCHEMA_BULK_REQUEST "urn:ietf:params:scim:api:messages:2.0:BulkRequest"
#define SCHEMA_USER "urn:ietf:params:scim:schemas:core:2.0:User"
/* Pages of provisioning logs read for one request at one poll, at most. */
#define LOG_PAGES_MAX 50
/* A Location header longer than this is not used (the filter is built instead). */
#define LOCATION_MAX HTTP_LOCATION_MAX

struct bulk_cfg {
	char *url, *sp, *job;
	struct oauth2 *auth;
	const struct http_tls *tls;
	unsigned results_wait_ms, poll_ms, max_attempts, backoff_min_ms, backoff_max_ms, timeout_ms;
};

struct bulk_target {
	struct target base;
	struct bulk_cfg cfg;
};

/* One target_op: inputs copied at submit; outputs copied back on the loop. */
struct bjob {
	struct bjob *next;          /* the thread's lists, the finished list */
	struct bjob *lprev, *lnext; /* the run's outstanding list (loop thread only) */
	struct target_op *top;      /* loop thread only; NULL once completed */
	target_done_cb cb;
	int cancelled;              /* __atomic: set by cancel_all */
	bool handed;                /* given to the thread (else finished at once) */

	enum target_action action;
	char *anchor, *target_id;
	json_t *attrs;
	char fence_node[32], fence_term[32], cluster[96];

	int status;
	bool permanent, created, decided;
	int64_t verdict_at_ms;      /* the activityDateTime of the verdict taken */
	char result_id[128];
	long http_status;
	unsigned attempts;
	uint64_t t0_ms;
	double duration_ms;
	char error[512];
};

/* A request answered 202 whose operations wait for their verdicts (the
 * thread's only). */
struct awaiting {
	struct awaiting *next;
	struct bjob **jobs;
	size_t n;
	char *logs_url;  /* the Location, or our own filter */
	bool by_time;    /* our filter: an entry counts only from sent_ms - 1 s on */
	int64_t sent_ms; /* wall clock */
	uint64_t deadline_ms, next_poll_ms;
};

struct bulk_run {
	uv_loop_t *loop;
	const struct bulk_cfg *cfg;
	struct bjob *out_head;      /* outstanding: submitted, not yet back (loop thread) */
	unsigned outstanding;
	uint64_t failures;
	char fence_node[32], fence_term[32], cluster[96];
	bool stopping;
	void (*done)(void *data);
	void *done_data;

	/* shared with the thread, under mu */
	pthread_mutex_t mu;
	pthread_cond_t cv;
	struct bjob *inbox_head, *inbox_tail;
	struct bjob *finished; /* LIFO */
	bool quit, exited, started;
	uint64_t requests, retries;
	unsigned waiting;      /* operations 202'd and waiting for a verdict */
	bool logs_off;         /* the logs cannot be read: accepted at the 202 (the health
				* check, which reads them too, shows why) */
	pthread_t thread;
	uv_async_t wake;

	struct http_multi *http; /* every request (http_multi_call from the thread) */

	/* the thread's own */
	struct awaiting *awaiting;
	uint64_t next_send_ms, hold_until_ms;
	unsigned seq;
};

static uint64_t now_ms(void)
{
	return uv_hrtime() / 1000000;
}

static int64_t wall_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_REALTIME, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static struct bulk_run *run_of(struct target_run *r)
{
	return (struct bulk_run *)r;
}

static void job_free(struct bjob *j)
{
	free(j->anchor);
	free(j->target_id);
	json_decref(j->attrs);
	free(j);
}

static bool job_cancelled(const struct bjob *j)
{
	return __atomic_load_n(&j->cancelled, __ATOMIC_ACQUIRE) != 0;
}

static void set_error(struct bjob *j, int status, bool permanent, const char *fmt, ...)
	__attribute__((format(printf, 4, 5)));
static void set_error(struct bjob *j, int status, bool permanent, const char *fmt, ...)
{
	va_list ap;

	j->status = status;
	j->permanent = permanent;
	va_start(ap, fmt);
	vsnprintf(j->error, sizeof j->error, fmt, ap);
	va_end(ap);
}

/* ---- the thread: finishing, HTTP */

/* Hand finished operations back to the loop (the thread). */
static void give_back(struct bulk_run *r, struct bjob **jobs, size_t n)
{
	uint64_t now = now_ms();

	pthread_mutex_lock(&r->mu);
	for (size_t i = 0; i < n; i++) {
		jobs[i]->duration_ms = (double)(now - jobs[i]->t0_ms);
		jobs[i]->next = r->finished;
		r->finished = jobs[i];
	}
	pthread_mutex_unlock(&r->mu);
	uv_async_send(&r->wake);
}

/* One answer of one request. */
struct answer {
	long status;      /* 0: none (see err) */
	json_t *body;     /* NULL: none, or not JSON */
	long retry_after_s;
	char location[LOCATION_MAX];
	char code[64], message[256];
};

/*
 * One request, once. Returns 0 with the answer, -EACCES when the token
 * endpoint refuses the client, -EIO with err when there was no answer (or no
 * token).
 */
static int http_once(struct bulk_run *r, const struct bjob *fence, const char *method, const char *url,
		     const char *payload, const char *reject, char **used_token, struct answer *a, char *err,
		     size_t errlen)
{
	const struct bulk_cfg *c = r->cfg;
	char *token = NULL, why[512];
	uint64_t refresh_in;
	struct curl_slist *h;
	int rc;

	memset(a, 0, sizeof *a);
	a->retry_after_s = -1;
	rc = oauth2_token(c->auth, reject, &token, &refresh_in, why, sizeof why);
	if (rc != 0) {
		snprintf(err, errlen, "%s: no token: %.300s", method, why);
		return rc == -EACCES ? -EACCES : -EIO;
	}
	/* bulkUpload: SCIM, not Graph's OData JSON (Microsoft requires it) */
	h = entra__headers(token, payload != NULL ? "application/scim+json" : NULL, fence->fence_node,
			   fence->fence_term, fence->cluster);
	struct http_request rq = {
		.method = method,
		.url = url,
		.headers = h,
		.body = payload,
		.timeout_ms = c->timeout_ms,
		.tls = c->tls,
		.max_body = ENTRA_RESP_MAX,
		.retry_after_max_s = ENTRA_RETRY_AFTER_MAX_S,
	};
	struct http_answer b;
	rc = http_multi_call(r->http, &rq, &b); /* takes h */
	if (rc == -EINVAL) {
		free(b.body);
		secret_free(token);
		snprintf(err, errlen, "%s: cannot set up TLS", method);
		return -EIO;
	}
	pthread_mutex_lock(&r->mu);
	r->requests++;
	pthread_mutex_unlock(&r->mu);
	if (b.cc != CURLE_OK) {
		if (b.too_big)
			snprintf(err, errlen, "%s: answer over %u bytes", method, ENTRA_RESP_MAX);
		else
			snprintf(err, errlen, "%s: %.300s", method, b.err);
		free(b.body);
		secret_free(token);
		return -EIO;
	}
	a->status = b.status;
	a->body = b.len ? json_loadb(b.body, b.len, 0, NULL) : NULL;
	a->retry_after_s = b.retry_after_s;
	memcpy(a->location, b.location, sizeof a->location);
	entra__answer_error(a->body, a->code, sizeof a->code, a->message, sizeof a->message);
	free(b.body);
	*used_token = token;
	return 0;
}

static unsigned backoff(const struct bulk_cfg *c, unsigned attempt)
{
	uint64_t cap = c->backoff_min_ms;
	uint32_t rnd = 0;

	for (unsigned i = 1; i < attempt && cap < c->backoff_max_ms; i++)
		cap *= 2;
	if (cap > c->backoff_max_ms)
		cap = c->backoff_max_ms;
	if (RAND_bytes((unsigned char *)&rnd, sizeof rnd) != 1)
		rnd = (uint32_t)attempt * 2654435761u;
	return (unsigned)(rnd % (cap + 1)); /* full jitter */
}

static bool all_cancelled(struct bjob **jobs, size_t n)
{
	for (size_t i = 0; i < n; i++)
		if (!job_cancelled(jobs[i]))
			return false;
	return true;
}

/* Wait ms, in slices: a run told to quit stops waiting. */
static bool nap(struct bulk_run *r, uint64_t ms)
{
	while (ms > 0) {
		pthread_mutex_lock(&r->mu);
		bool quit = r->quit;
		pthread_mutex_unlock(&r->mu);
		if (quit)
			return false;
		uint64_t s = ms < 50 ? ms : 50;
		uv_sleep((unsigned)s);
		ms -= s;
	}
	return true;
}

/* ---- the thread: one bulkUpload */

/* The SCIM user an operation sends (entra_bulk.h, "Wire format"). */
static json_t *op_data(const struct bjob *j)
{
	json_t *d;

	if (j->action == TARGET_UPSERT) {
		d = xcheck(json_deep_copy(j->attrs));
		json_object_del(d, "id");
		json_object_del(d, "meta");
		/* a mapping may give active as "True" / "False" (IIF): SCIM's is boolean */
		json_t *act = json_object_get(d, "active");
		if (json_is_string(act))
			json_object_set_new(d, "active", json_boolean(strcasecmp(json_string_value(act), "false") != 0));
	} else {
		d = xcheck(json_pack("{s:[s],s:b}", "schemas", SCHEMA_USER, "active", 0));
	}
	if (!json_is_array(json_object_get(d, "schemas")))
		json_object_set_new(d, "schemas", xcheck(json_pack("[s]", SCHEMA_USER)));
	/* the anchor: the provisioning app's matching attribute */
	if (json_object_set_new(d, "externalId", xcheck(json_string(j->anchor))) != 0)
		xoom("json_object_set_new");
	return d;
}

static char *bulk_payload(struct bulk_run *r, struct bjob **jobs, size_t n)
{
	json_t *ops = xcheck(json_array());

	for (size_t i = 0; i < n; i++) {
		char bulk_id[32];
		snprintf(bulk_id, sizeof bulk_id, "canopy-%u", ++r->seq);
		json_t *op = xcheck(json_pack("{s:s,s:s,s:s,s:o}", "method", "POST", "bulkId", bulk_id, "path",
					      "/Users", "data", op_data(jobs[i])));
		if (json_array_append_new(ops, op) != 0)
			xoom("json_array_append_new");
	}
	json_t *req = xcheck(json_pack("{s:[s],s:o}", "schemas", SCHEMA_BULK_REQUEST, "Operations", ops));
	char *s = xcheck(json_dumps(req, JSON_COMPACT));
	json_decref(req);
	return s;
}

static void finish_all(struct bulk_run *r, struct bjob **jobs, size_t n, int status, bool permanent, long http,
		       const char *fmt, ...) __attribute__((format(printf, 7, 8)));
static void finish_all(struct bulk_run *r, struct bjob **jobs, size_t n, int status, bool permanent, long http,
		       const char *fmt, ...)
{
	char msg[512] = "";
	va_list ap;

	if (fmt != NULL) {
		va_start(ap, fmt);
		vsnprintf(msg, sizeof msg, fmt, ap);
		va_end(ap);
	}
	for (size_t i = 0; i < n; i++) {
		jobs[i]->http_status = http;
		if (status != 0) {
			set_error(jobs[i], status, permanent, "%s", msg);
		} else {
			jobs[i]->status = 0;
			jobs[i]->created = jobs[i]->action == TARGET_UPSERT && jobs[i]->target_id == NULL;
			if (!jobs[i]->result_id[0] && jobs[i]->target_id != NULL)
				snprintf(jobs[i]->result_id, sizeof jobs[i]->result_id, "%s", jobs[i]->target_id);
		}
	}
	give_back(r, jobs, n);
}

/* Where the verdicts of a request sent at sent_ms will be: the Location when
 * it is below our base (Microsoft: it names the provisioning logs of the
 * request), else the job's logs from a second before. */
static char *logs_url(struct bulk_run *r, const char *location, int64_t sent_ms, bool *by_time)
{
	const struct bulk_cfg *c = r->cfg;
	char when[40], clause[600];
	time_t t = (time_t)((sent_ms - 1000) / 1000);
	struct tm tm;

	*by_time = false;
	if (location[0] && strncmp(location, c->url, strlen(c->url)) == 0 && location[strlen(c->url)] == '/')
		return xstrdup(location);
	*by_time = true;
	gmtime_r(&t, &tm);
	strftime(when, sizeof when, "%Y-%m-%dT%H:%M:%SZ", &tm);
	snprintf(clause, sizeof clause, "jobId eq '%s' and activityDateTime ge %s", c->job, when);
	char *q = xcheck(curl_easy_escape(NULL, clause, 0));
	size_t len = strlen(c->url) + strlen(q) + 64;
	char *u = xmalloc(len);
	snprintf(u, len, "%s/auditLogs/provisioning?$filter=%s", c->url, q);
	curl_free(q);
	return u;
}

/* Send one BulkRequest of n operations (distinct externalIds) with its
 * retries; 202: to the awaiting list, or accepted. */
static void send_bulk(struct bulk_run *r, struct bjob **jobs, size_t n)
{
	const struct bulk_cfg *c = r->cfg;
	char *payload = bulk_payload(r, jobs, n), *reject = NULL, err[400] = "";
	char path[512];
	bool refreshed = false;

	snprintf(path, sizeof path, "%s/servicePrincipals/%s/synchronization/jobs/%s/bulkUpload", c->url, c->sp,
		 c->job);
	for (unsigned attempt = 1;; attempt++) {
		struct answer a;
		char *token = NULL;
		uint64_t now = now_ms(), wait;

		/* Microsoft's rate for this API, and a Retry-After for the run */
		wait = r->next_send_ms > now ? r->next_send_ms - now : 0;
		if (r->hold_until_ms > now + wait)
			wait = r->hold_until_ms - now;
		if (wait > 0 && !nap(r, wait)) {
			finish_all(r, jobs, n, -ECANCELED, false, 0, "cancelled (stopping)");
			break;
		}
		if (all_cancelled(jobs, n)) {
			finish_all(r, jobs, n, -ECANCELED, false, 0, "cancelled");
			break;
		}
		r->next_send_ms = now_ms() + 1000 / ENTRA_BULK_RATE;
		int64_t sent_ms = wall_ms();
		for (size_t i = 0; i < n; i++)
			jobs[i]->attempts++;
		int rc = http_once(r, jobs[0], "POST", path, payload, reject, &token, &a, err, sizeof err);
		if (rc == -EACCES) {
			finish_all(r, jobs, n, -EACCES, false, 0, "POST bulkUpload: %s", err);
			break;
		}
		if (rc == 0 && a.status == 401 && !refreshed) {
			/* the token was refused: never send it again (oauth2.h, reject) */
			refreshed = true;
			secret_free(reject);
			reject = token;
			json_decref(a.body);
			attempt--;
			continue;
		}
		secret_free(token);
		if (rc == 0 && a.status >= 200 && a.status < 300) {
			json_decref(a.body);
			pthread_mutex_lock(&r->mu);
			bool off = r->logs_off;
			pthread_mutex_unlock(&r->mu);
			if (c->results_wait_ms == 0 || off) {
				finish_all(r, jobs, n, 0, false, a.status, NULL);
				break;
			}
			struct awaiting *w = xcalloc(1, sizeof *w);
			w->jobs = xmalloc(n * sizeof *w->jobs);
			memcpy(w->jobs, jobs, n * sizeof *jobs);
			w->n = n;
			w->sent_ms = sent_ms;
			w->logs_url = logs_url(r, a.location, sent_ms, &w->by_time);
			w->deadline_ms = now_ms() + c->results_wait_ms;
			/* a first look soon (a quiet tenant processes in well under a
			 * second), then every poll_ms */
			w->next_poll_ms = now_ms() + (c->poll_ms < 250 ? c->poll_ms : 250);
			for (size_t i = 0; i < n; i++)
				jobs[i]->http_status = a.status;
			w->next = r->awaiting;
			r->awaiting = w;
			pthread_mutex_lock(&r->mu);
			r->waiting += (unsigned)n;
			pthread_mutex_unlock(&r->mu);
			break;
		}
		if (rc == 0 && a.status != 429 && a.status < 500) {
			/* 400 / 413: our payload, for every operation in it; 403: the
			 * app lacks SynchronizationData-User.Upload (not permanent:
			 * granting it fixes every object at once) */
			bool permanent = a.status == 400 || a.status == 413 || a.status == 422;
			finish_all(r, jobs, n, permanent ? -EINVAL : -EACCES, permanent, a.status,
				   "POST bulkUpload (%zu users): %ld %s%s%.300s", n, a.status, a.code,
				   a.message[0] ? ": " : "", a.message);
			json_decref(a.body);
			break;
		}
		/* no answer, 5xx, 429: the whole request again (idempotent by externalId) */
		wait = backoff(c, attempt);
		if (rc == 0) {
			snprintf(err, sizeof err, "POST bulkUpload: %ld %s%s%.300s", a.status, a.code,
				 a.message[0] ? ": " : "", a.message);
			if ((a.status == 429 || a.status == 503) && a.retry_after_s >= 0) {
				uint64_t ra = (uint64_t)a.retry_after_s * 1000;
				wait = ra > c->backoff_max_ms ? c->backoff_max_ms : ra;
				r->hold_until_ms = now_ms() + wait;
			}
			json_decref(a.body);
		}
		if (attempt >= c->max_attempts) {
			finish_all(r, jobs, n, -EIO, false, rc == 0 ? a.status : 0, "%s (after %u attempts)", err,
				   attempt);
			break;
		}
		pthread_mutex_lock(&r->mu);
		r->retries++;
		pthread_mutex_unlock(&r->mu);
		if (!nap(r, wait)) {
			finish_all(r, jobs, n, -ECANCELED, false, 0, "cancelled (stopping)");
			break;
		}
	}
	secret_free(reject);
	free(payload);
}

/* ---- the thread: verdicts from the provisioning logs */

struct verdicts {
	struct awaiting *w;
};

static void on_entry(void *data, const struct entra_bulk_entry *e)
{
	struct verdicts *v = data;
	struct awaiting *w = v->w;

	if (w->by_time && (e->at_ms < 0 || e->at_ms < w->sent_ms - 1000))
		return; /* an earlier request's */
	for (size_t i = 0; i < w->n; i++) {
		struct bjob *j = w->jobs[i];
		if (strcmp(j->anchor, e->external_id) != 0)
			continue;
		/* two entries for one user (a page order we do not rely on): the
		 * later one is the service's last word */
		if (j->decided && e->at_ms <= j->verdict_at_ms)
			return;
		j->decided = true;
		j->verdict_at_ms = e->at_ms;
		j->result_id[0] = '\0';
		if (e->verdict == ENTRA_BULK_FAILURE) {
			/* the provisioning service refused this user: its content
			 * (or the app's mapping), not the target's health */
			set_error(j, -EREMOTEIO, true, "bulkUpload: the provisioning service refused user %.128s: %.64s%s%.250s",
				  j->anchor, e->error_code[0] ? e->error_code : "failure", e->reason[0] ? ": " : "",
				  e->reason);
		} else {
			j->status = 0;
			j->permanent = false;
			j->error[0] = '\0';
			j->created = j->action == TARGET_UPSERT && j->target_id == NULL;
			if (e->target_id[0])
				snprintf(j->result_id, sizeof j->result_id, "%s", e->target_id);
			else if (j->target_id != NULL)
				snprintf(j->result_id, sizeof j->result_id, "%s", j->target_id);
		}
		return;
	}
}

/* Read w's logs once. Returns 0, or -EACCES when they cannot be read at all
 * (403, 404, 401 after a new token, a token endpoint refusing the client):
 * the run stops asking. */
static int poll_one(struct bulk_run *r, struct awaiting *w)
{
	char *url = xstrdup(w->logs_url), err[400], *reject = NULL;
	struct verdicts v = {.w = w};
	int rc = 0;

	for (unsigned page = 0; page < LOG_PAGES_MAX && url != NULL; page++) {
		struct answer a;
		char *token = NULL;
		const char *next = NULL;
		int hr = http_once(r, w->jobs[0], "GET", url, NULL, reject, &token, &a, err, sizeof err);
		if (hr != 0) {
			if (hr == -EACCES)
				rc = -EACCES;
			break; /* no answer: the next poll tries again */
		}
		if (a.status == 401 && reject == NULL) {
			reject = token;
			json_decref(a.body);
			page--;
			continue;
		}
		secret_free(token);
		if (a.status == 401 || a.status == 403 || a.status == 404) {
			json_decref(a.body);
			rc = -EACCES;
			break;
		}
		if (a.status != 200 || entra_bulk_log_page(a.body, on_entry, &v, &next) < 0) {
			json_decref(a.body);
			break; /* 429, 5xx, garbage: the next poll */
		}
		free(url);
		url = NULL;
		/* a next link is followed only below our own base */
		if (next != NULL && strncmp(next, r->cfg->url, strlen(r->cfg->url)) == 0)
			url = xstrdup(next);
		json_decref(a.body);
	}
	secret_free(reject);
	free(url);
	return rc;
}

/* Give back what w decided (or all of it, as accepted, when `all`);
 * returns true when nothing of w is left. */
static bool settle(struct bulk_run *r, struct awaiting *w, bool all)
{
	struct bjob *back[ENTRA_BULK_MAX_OPS];
	size_t nb = 0, keep = 0;

	for (size_t i = 0; i < w->n; i++) {
		struct bjob *j = w->jobs[i];
		if (j->decided || all || job_cancelled(j)) {
			if (!j->decided && !job_cancelled(j)) { /* no verdict in time: accepted */
				j->status = 0;
				j->created = j->action == TARGET_UPSERT && j->target_id == NULL;
				if (j->target_id != NULL)
					snprintf(j->result_id, sizeof j->result_id, "%s", j->target_id);
			}
			back[nb++] = j;
		} else {
			w->jobs[keep++] = j;
		}
	}
	w->n = keep;
	pthread_mutex_lock(&r->mu);
	r->waiting -= (unsigned)nb;
	pthread_mutex_unlock(&r->mu);
	if (nb > 0)
		give_back(r, back, nb);
	return keep == 0;
}

static void poll_due(struct bulk_run *r, bool quitting)
{
	struct awaiting **pp = &r->awaiting;

	while (*pp != NULL) {
		struct awaiting *w = *pp;
		uint64_t now = now_ms();
		bool off;
		pthread_mutex_lock(&r->mu);
		off = r->logs_off;
		pthread_mutex_unlock(&r->mu);
		bool all = quitting || off || now >= w->deadline_ms;
		if (!all && now >= w->next_poll_ms && !all_cancelled(w->jobs, w->n)) {
			if (poll_one(r, w) == -EACCES) {
				pthread_mutex_lock(&r->mu);
				r->logs_off = true;
				pthread_mutex_unlock(&r->mu);
				all = true;
			}
			w->next_poll_ms = now_ms() + r->cfg->poll_ms;
		}
		if (settle(r, w, all)) {
			*pp = w->next;
			free(w->jobs);
			free(w->logs_url);
			free(w);
		} else {
			pp = &w->next;
		}
	}
}

/* Cut the operations taken into requests: at most ENTRA_BULK_MAX_OPS, no
 * externalId twice in one (the service would apply them in no set order). */
static void send_all(struct bulk_run *r, struct bjob *list)
{
	struct bjob *batch[ENTRA_BULK_MAX_OPS];
	size_t n = 0;

	while (list != NULL) {
		struct bjob *j = list;
		bool dup = false;
		list = j->next;
		j->next = NULL;
		for (size_t i = 0; i < n && !dup; i++)
			dup = strcmp(batch[i]->anchor, j->anchor) == 0;
		if (dup || n == ENTRA_BULK_MAX_OPS) {
			send_bulk(r, batch, n);
			n = 0;
		}
		if (job_cancelled(j)) {
			finish_all(r, &j, 1, -ECANCELED, false, 0, "cancelled");
			continue;
		}
		batch[n++] = j;
	}
	if (n > 0)
		send_bulk(r, batch, n);
}

static void *thread_main(void *arg)
{
	struct bulk_run *r = arg;

	pthread_mutex_lock(&r->mu);
	for (;;) {
		while (r->inbox_head == NULL && !r->quit) {
			if (r->awaiting == NULL) {
				pthread_cond_wait(&r->cv, &r->mu);
				continue;
			}
			struct timespec ts;
			clock_gettime(CLOCK_MONOTONIC, &ts);
			uint64_t ns = (uint64_t)ts.tv_nsec + (uint64_t)r->cfg->poll_ms * 1000000 / 4;
			ts.tv_sec += (time_t)(ns / 1000000000);
			ts.tv_nsec = (long)(ns % 1000000000);
			pthread_cond_timedwait(&r->cv, &r->mu, &ts);
			break; /* poll what is due */
		}
		struct bjob *list = r->inbox_head;
		bool quit = r->quit;
		r->inbox_head = r->inbox_tail = NULL;
		pthread_mutex_unlock(&r->mu);
		if (quit) {
			/* everything was completed by cancel_all: give it back to be freed */
			while (list != NULL) {
				struct bjob *j = list;
				list = j->next;
				give_back(r, &j, 1);
			}
			poll_due(r, true);
			pthread_mutex_lock(&r->mu);
			break;
		}
		send_all(r, list);
		poll_due(r, false);
		pthread_mutex_lock(&r->mu);
	}
	r->exited = true;
	pthread_mutex_unlock(&r->mu);
	uv_async_send(&r->wake);
	return NULL;
}

/* ---- the loop side */

static void unlink_out(struct bulk_run *r, struct bjob *j)
{
	if (j->lprev != NULL)
		j->lprev->lnext = j->lnext;
	else if (r->out_head == j)
		r->out_head = j->lnext;
	if (j->lnext != NULL)
		j->lnext->lprev = j->lprev;
	j->lprev = j->lnext = NULL;
	r->outstanding--;
}

/* Hand the result to the engine (loop thread). */
static void complete(struct bulk_run *r, struct bjob *j, int status)
{
	struct target_op *top = j->top;
	target_done_cb cb = j->cb;

	j->top = NULL;
	if (status != 0) {
		j->status = status;
		j->permanent = false;
		snprintf(j->error, sizeof j->error, "cancelled (leadership or lease lost, or stopping)");
	}
	top->status = j->status;
	top->permanent = j->status != 0 && j->permanent;
	snprintf(top->result_id, sizeof top->result_id, "%s", j->result_id);
	top->created = j->status == 0 && j->created;
	top->matched = false;
	top->http_status = j->http_status;
	top->attempts = j->attempts;
	top->duration_ms = j->duration_ms;
	snprintf(top->error, sizeof top->error, "%s", j->status != 0 ? j->error : "");
	if (j->status != 0 && j->status != -ECANCELED)
		r->failures++;
	target_metrics_error(top->action, top->status);
	cb(top);
}

static void on_thread_closed(uv_handle_t *h)
{
	struct bulk_run *r = h->data;
	void (*done)(void *) = r->done;
	void *data = r->done_data;

	pthread_cond_destroy(&r->cv);
	pthread_mutex_destroy(&r->mu);
	free(r);
	if (done != NULL)
		done(data);
}

static void on_http_closed(void *data)
{
	struct bulk_run *r = data;

	uv_close((uv_handle_t *)&r->wake, on_thread_closed);
}

static void on_wake(uv_async_t *h)
{
	struct bulk_run *r = h->data;
	struct bjob *list, *rev = NULL;
	bool exited;

	pthread_mutex_lock(&r->mu);
	list = r->finished;
	r->finished = NULL;
	exited = r->exited;
	pthread_mutex_unlock(&r->mu);
	while (list != NULL) { /* back to completion order */
		struct bjob *next = list->next;
		list->next = rev;
		rev = list;
		list = next;
	}
	while (rev != NULL) {
		struct bjob *next = rev->next;
		unlink_out(r, rev);
		if (rev->top != NULL)
			complete(r, rev, 0);
		job_free(rev);
		rev = next;
	}
	if (r->stopping && exited && r->outstanding == 0) {
		if (r->started)
			pthread_join(r->thread, NULL);
		r->started = false;
		/* no thread is left to call into the engine */
		http_multi_close(r->http, on_http_closed, r);
	}
}

static int b_start(struct target *t, uv_loop_t *loop, struct target_run **out, char *errmsg, size_t errlen)
{
	struct bulk_target *bt = t->impl;
	struct bulk_run *r;
	int rc;

	if (bt->cfg.auth == NULL) {
		snprintf(errmsg, errlen, "entra bulkupload target %s: target.auth (OAuth2 client credentials) is required",
			 bt->cfg.url);
		return -EINVAL;
	}
	if (!bt->cfg.sp[0] || !bt->cfg.job[0]) {
		snprintf(errmsg, errlen,
			 "entra bulkupload target %s: target.service_principal_id and target.job_id are required",
			 bt->cfg.url);
		return -EINVAL;
	}
	if (strncasecmp(bt->cfg.url, "http://", 7) != 0 && strncasecmp(bt->cfg.url, "https://", 8) != 0) {
		snprintf(errmsg, errlen, "entra bulkupload target: url %s is not http:// or https://", bt->cfg.url);
		return -EINVAL;
	}
	r = xcalloc(1, sizeof *r);
	r->loop = loop;
	r->cfg = &bt->cfg;
	snprintf(r->fence_node, sizeof r->fence_node, "0");
	snprintf(r->fence_term, sizeof r->fence_term, "0");
	pthread_mutex_init(&r->mu, NULL);
	pthread_condattr_t ca;
	pthread_condattr_init(&ca);
	pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
	pthread_cond_init(&r->cv, &ca);
	pthread_condattr_destroy(&ca);
	char why[256];
	rc = http_multi_new(loop, 4, &r->http, why, sizeof why); /* one thread: a connection, spares */
	if (rc != 0) {
		snprintf(errmsg, errlen, "entra bulkupload target %s: %s", bt->cfg.url, why);
		goto err_after_alloc;
	}
	rc = uv_async_init(loop, &r->wake, on_wake);
	if (rc != 0) {
		snprintf(errmsg, errlen, "entra bulkupload target %s: %s", bt->cfg.url, uv_strerror(rc));
		goto err_after_http;
	}
	r->wake.data = r;
	rc = pthread_create(&r->thread, NULL, thread_main, r);
	if (rc != 0) {
		snprintf(errmsg, errlen, "entra bulkupload target %s: cannot start a thread: %s", bt->cfg.url,
			 strerror(rc));
		rc = -rc;
		goto err_after_async;
	}
	r->started = true;
	*out = (struct target_run *)r;
	return 0;

err_after_async:
	/* no thread: on_wake closes the handle and frees r at once */
	r->stopping = true;
	r->exited = true;
	uv_async_send(&r->wake);
	return rc;
err_after_http:
	http_multi_close(r->http, NULL, NULL); /* frees itself from the loop */
err_after_alloc:
	pthread_cond_destroy(&r->cv);
	pthread_mutex_destroy(&r->mu);
	free(r);
	return rc;
}

static void b_set_fence(struct target_run *run, uint64_t node_id, uint64_t term, const char *cluster_id)
{
	struct bulk_run *r = run_of(run);

	snprintf(r->fence_node, sizeof r->fence_node, "%llu", (unsigned long long)node_id);
	snprintf(r->fence_term, sizeof r->fence_term, "%llu", (unsigned long long)term);
	snprintf(r->cluster, sizeof r->cluster, "%s", cluster_id != NULL ? cluster_id : "");
}

static int b_submit(struct target_run *run, struct target_op *op, target_done_cb cb)
{
	struct bulk_run *r = run_of(run);
	struct bjob *j;

	if (r->stopping)
		return -ESHUTDOWN;
	if (op->type != OBJECT_USER && op->type != OBJECT_GROUP)
		return -EINVAL;
	if (op->action == TARGET_UPSERT && (!json_is_object(op->attrs) || op->anchor == NULL))
		return -EINVAL;
	op->status = 0;
	op->permanent = op->created = op->matched = op->values_refused = op->taken = false;
	op->result_id[0] = op->error[0] = '\0';
	op->http_status = 0;
	op->attempts = 0;
	op->duration_ms = 0;
	op->n_add_done = op->n_remove_done = 0;

	j = xcalloc(1, sizeof *j);
	j->top = op;
	j->cb = cb;
	j->action = op->action;
	j->t0_ms = now_ms();
	j->anchor = op->anchor ? xstrdup(op->anchor) : NULL;
	j->target_id = op->target_id ? xstrdup(op->target_id) : NULL;
	memcpy(j->fence_node, r->fence_node, sizeof j->fence_node);
	memcpy(j->fence_term, r->fence_term, sizeof j->fence_term);
	memcpy(j->cluster, r->cluster, sizeof j->cluster);
	j->lnext = r->out_head;
	if (r->out_head != NULL)
		r->out_head->lprev = j;
	r->out_head = j;
	r->outstanding++;

	bool users_write = op->type == OBJECT_USER && (op->action == TARGET_UPSERT || op->action == TARGET_DISABLE ||
						       op->action == TARGET_DELETE);
	if (!users_write || op->anchor == NULL) {
		/* API-driven provisioning takes users, keyed by externalId,
		 * and nothing else (entra_bulk.h) */
		set_error(j, -EOPNOTSUPP, true, "%s %s %.128s: target.mode bulkupload provisions users only "
			  "(Microsoft's API-driven provisioning has no groups, members, managers or reads)",
			  target_action_name(op->action), object_type_name(op->type),
			  op->anchor ? op->anchor : op->target_id ? op->target_id : "");
		pthread_mutex_lock(&r->mu);
		j->next = r->finished;
		r->finished = j;
		pthread_mutex_unlock(&r->mu);
		uv_async_send(&r->wake); /* never from inside submit */
		return 0;
	}
	/* a copy: the engine's resource is shared, and the thread runs off the loop */
	j->attrs = op->attrs ? xcheck(json_deep_copy(op->attrs)) : NULL;
	j->handed = true;
	pthread_mutex_lock(&r->mu);
	if (r->inbox_tail)
		r->inbox_tail->next = j;
	else
		r->inbox_head = j;
	r->inbox_tail = j;
	pthread_cond_signal(&r->cv);
	pthread_mutex_unlock(&r->mu);
	return 0;
}

static void b_cancel_all(struct target_run *run)
{
	struct bulk_run *r = run_of(run);
	struct bjob **todo;
	size_t n = 0;

	if (r->outstanding == 0)
		return;
	/* Collect first: what the callbacks submit is not cancelled. */
	todo = xmalloc(r->outstanding * sizeof *todo);
	for (struct bjob *j = r->out_head; j != NULL; j = j->lnext) {
		if (j->top == NULL)
			continue;
		__atomic_store_n(&j->cancelled, 1, __ATOMIC_RELEASE);
		todo[n++] = j;
	}
	for (size_t i = 0; i < n; i++)
		complete(r, todo[i], -ECANCELED); /* the thread's result is dropped */
	free(todo);
}

static void b_stats(struct target_run *run, struct target_stats *out)
{
	struct bulk_run *r = run_of(run);
	unsigned queued = 0;

	memset(out, 0, sizeof *out);
	pthread_mutex_lock(&r->mu);
	for (struct bjob *j = r->inbox_head; j != NULL; j = j->next)
		queued++;
	out->requests = r->requests;
	out->retries = r->retries;
	pthread_mutex_unlock(&r->mu);
	out->failures = r->failures;
	out->in_flight = r->outstanding > queued ? r->outstanding - queued : 0;
	out->queued = queued;
	out->caps.known = true;
	out->caps.bulk = true;
	out->caps.max_operations = ENTRA_BULK_MAX_OPS;
}

static void b_stop(struct target_run *run, void (*done)(void *data), void *data)
{
	struct bulk_run *r = run_of(run);

	b_cancel_all(run);
	r->stopping = true;
	r->done = done;
	r->done_data = data;
	/* The thread gives back what it holds and exits; on_wake ends the
	 * stop once it has, never from inside this call. */
	pthread_mutex_lock(&r->mu);
	r->quit = true;
	pthread_cond_broadcast(&r->cv);
	pthread_mutex_unlock(&r->mu);
	uv_async_send(&r->wake);
}

static void b_close(struct target *t)
{
	struct bulk_target *bt = t->impl;

	free(bt->cfg.url);
	free(bt->cfg.sp);
	free(bt->cfg.job);
	free(bt);
}

struct target *entra_bulk_target_new(const struct entra_bulk_config *cfg)
{
	struct bulk_target *bt = xcalloc(1, sizeof *bt);
	size_t n;

	bt->cfg.url = xstrdup(cfg->url != NULL ? cfg->url : "");
	n = strlen(bt->cfg.url);
	while (n > 0 && bt->cfg.url[n - 1] == '/')
		bt->cfg.url[--n] = '\0';
	bt->cfg.sp = xstrdup(cfg->service_principal_id != NULL ? cfg->service_principal_id : "");
	bt->cfg.job = xstrdup(cfg->job_id != NULL ? cfg->job_id : "");
	bt->cfg.auth = cfg->auth;
	bt->cfg.tls = cfg->tls;
	bt->cfg.results_wait_ms = cfg->results_wait_ms;
	bt->cfg.poll_ms = cfg->poll_ms ? cfg->poll_ms : 1000;
	bt->cfg.max_attempts = cfg->max_attempts ? cfg->max_attempts : 6;
	bt->cfg.backoff_min_ms = cfg->backoff_min_ms ? cfg->backoff_min_ms : 200;
	bt->cfg.backoff_max_ms = cfg->backoff_max_ms ? cfg->backoff_max_ms : 30000;
	bt->cfg.timeout_ms = cfg->timeout_ms ? cfg->timeout_ms : 30000;
	bt->base.impl = bt;
	bt->base.name = "entra-bulkupload";
	bt->base.request_timeout_ms = bt->cfg.timeout_ms;
	bt->base.checks_taken = false;
	bt->base.start = b_start;
	bt->base.set_fence = b_set_fence;
	bt->base.submit = b_submit;
	bt->base.cancel_all = b_cancel_all;
	bt->base.stats = b_stats;
	bt->base.retry_now = NULL;
	bt->base.stop = b_stop;
	bt->base.close = b_close;
	return &bt->base;
}
