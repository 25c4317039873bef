/*
 * sync/target/entra_batch.c -- parallel JSON batching: the requests the
 * run's threads make at the same time travel together in one POST /$batch
 * (entra_internal.h, struct entra_batcher).
 *
 * Microsoft Graph "JSON batching": at most 20 requests, `url` relative to
 * the version root, a request with a body carries its Content-Type, the
 * answer is 200 with one response per request (any order, matched by id),
 * each with its own status, headers and body. Each request is evaluated
 * against the throttling limits on its own: one may be answered 429 with
 * its own Retry-After while the others succeed -- so each request has taken
 * its own token from the run's budget before it got here, and each answer
 * goes back to its own thread, whose retry loop (http_send) treats it as if
 * it had been sent alone: a 429 retries only that request.
 *
 * Why not dependsOn here: Graph runs a batch either fully in parallel or
 * fully in sequence (a known limitation of JSON batching: when one request
 * names a dependency, all must), and these requests are independent. The
 * two writes that do depend on each other -- a user's create and adding it
 * to a group -- never meet in a batch: the add needs the id the create
 * answers (members@odata.bind names directoryObjects/{id}), JSON batching
 * has no way to put one answer's value into a later request, and the engine
 * plans member changes only once the creates are answered
 * (sync/engine/exec.c, PH_MEMBERS). Requests for one object never meet in
 * a batch either: an operation's requests go one after the other, and the
 * engine has one operation an object out at a time.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "common/xalloc.h"
#include "sync/target/entra_internal.h"

struct entra_breq {
	const char *method, *url, *payload; /* the caller's */
	struct entra_reply *out;
	bool done;
	struct entra_breq *next;
};

static void deadline_in(struct timespec *ts, unsigned ms)
{
	clock_gettime(CLOCK_REALTIME, ts);
	ts->tv_nsec += (long)ms * 1000000L;
	while (ts->tv_nsec >= 1000000000L) {
		ts->tv_nsec -= 1000000000L;
		ts->tv_sec++;
	}
}

/* The body of POST /$batch for the n requests (ids "1".."n"). */
static char *envelope(const struct entra_cfg *c, struct entra_breq **q, unsigned n)
{
	json_t *reqs = xcheck(json_array()), *env;
	size_t ul = strlen(c->url);
	char *text;

	for (unsigned i = 0; i < n; i++) {
		char id[12];
		/* below the version root: our base (an @odata.nextLink starts
		 * with it too, http_send checked) */
		const char *rel = strncmp(q[i]->url, c->url, ul) == 0 ? q[i]->url + ul : q[i]->url;
		json_t *r;
		snprintf(id, sizeof id, "%u", i + 1);
		r = xcheck(json_pack("{s:s,s:s,s:s}", "id", id, "method", q[i]->method, "url", rel));
		if (q[i]->payload != NULL) {
			json_t *b = json_loads(q[i]->payload, 0, NULL);
			if (b == NULL) /* we wrote it: a bug, not input */
				xoom("json_loads of our own payload");
			json_object_set_new(r, "body", b);
			json_object_set_new(r, "headers", xcheck(json_pack("{s:s}", "Content-Type", "application/json")));
		}
		json_array_append_new(reqs, r);
	}
	env = xcheck(json_pack("{s:o}", "requests", reqs));
	text = xcheck(json_dumps(env, JSON_COMPACT));
	json_decref(env);
	return text;
}

/* Send q[0..n) (n >= 2) as one $batch and fill each answer. */
static void send_batch(struct entra_job *j, const char *token, struct entra_breq **q, unsigned n)
{
	const struct entra_cfg *c = j->cfg;
	char *payload = envelope(c, q, n);
	char *url = xmalloc(strlen(c->url) + sizeof "/$batch");
	struct entra_reply env;

	sprintf(url, "%s/$batch", c->url);
	int rc = entra__wire(j, token, "POST", url, payload, &env);
	for (unsigned i = 0; i < n; i++) {
		struct entra_reply *o = q[i]->out;
		char id[12];
		long st, ra;
		const json_t *body;

		memset(o, 0, sizeof *o);
		o->retry_after_s = -1;
		snprintf(id, sizeof id, "%u", i + 1);
		if (rc != 0 || env.cc != 0) {
			/* no answer to the envelope: none to any request in it */
			o->cc = rc != 0 ? -1 : env.cc;
			snprintf(o->err, sizeof o->err, "POST /$batch: %.200s",
				 rc != 0 ? "cannot set up TLS" : env.err);
		} else if (env.status != 200) {
			/* refused as a whole (401, 429, 5xx): each request was
			 * refused so, Retry-After included */
			o->status = env.status;
			o->retry_after_s = env.retry_after_s;
			o->body = json_incref(env.body);
		} else if (entra__batch_response(env.body, id, &st, &ra, &body) == 0) {
			o->status = st;
			o->retry_after_s = ra;
			o->body = body != NULL ? json_deep_copy(body) : NULL;
		} else {
			o->cc = -1;
			snprintf(o->err, sizeof o->err, "POST /$batch: 200 without a response to request %s", id);
		}
	}
	json_decref(env.body);
	free(url);
	free(payload);
}

int entra__batch_exchange(struct entra_job *j, const char *token, const char *method, const char *url,
			  const char *payload, struct entra_reply *out)
{
	struct entra_batcher *b = j->batcher;
	struct entra_breq me = {.method = method, .url = url, .payload = payload, .out = out};

	pthread_mutex_lock(&b->mu);
	if (b->tail)
		b->tail->next = &me;
	else
		b->head = &me;
	b->tail = &me;
	b->n++;
	pthread_cond_broadcast(&b->cv); /* a gathering sender counts us */
	while (!me.done) {
		if (b->sending || b->head == NULL) {
			pthread_cond_wait(&b->cv, &b->mu);
			continue;
		}
		/* nobody sends: gather, then send what waits (ours among it,
		 * or before it) */
		struct entra_breq *q[ENTRA_BATCH_MAX];
		struct timespec until;
		unsigned n = 0;

		b->sending = true;
		deadline_in(&until, ENTRA_BATCH_GATHER_MS);
		while (b->n < ENTRA_BATCH_MAX && b->n < b->active) {
			if (pthread_cond_timedwait(&b->cv, &b->mu, &until) == ETIMEDOUT)
				break;
		}
		while (n < ENTRA_BATCH_MAX && b->head != NULL) {
			q[n++] = b->head;
			b->head = b->head->next;
			b->n--;
		}
		if (b->head == NULL)
			b->tail = NULL;
		if (n >= 2) {
			b->batches++;
			b->batched += n;
		}
		pthread_mutex_unlock(&b->mu);
		int rc = 0;
		if (n == 1) /* alone: no envelope to pay for */
			rc = entra__wire(j, token, q[0]->method, q[0]->url, q[0]->payload, q[0]->out);
		else
			send_batch(j, token, q, n);
		pthread_mutex_lock(&b->mu);
		for (unsigned i = 0; i < n; i++)
			q[i]->done = true;
		b->sending = false;
		pthread_cond_broadcast(&b->cv);
		if (rc != 0 && q[0] == &me) {
			pthread_mutex_unlock(&b->mu);
			return rc;
		}
		if (rc != 0) { /* someone else's, sent by us: no TLS for them either */
			q[0]->out->cc = -1;
			snprintf(q[0]->out->err, sizeof q[0]->out->err, "cannot set up TLS");
		}
	}
	pthread_mutex_unlock(&b->mu);
	return 0;
}
