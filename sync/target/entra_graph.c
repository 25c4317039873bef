/*
 * sync/target/entra_graph.c -- one operation's Microsoft Graph requests, run
 * blocking on one of the run's threads (entra.h, "Threads"): the request with its
 * retries and token, and the users / groups / members logic of entra.h's
 * wire format. Each request travels on the run's HTTP engine on the loop
 * (http_multi.h; entra_internal.h says why the thread waits for it).
 *
 * Microsoft's documents this follows (also listed in
 * tests/fixtures/graph/README.md): create / update / delete user and group,
 * add and remove members (members@odata.bind: 20 references a request), the
 * error format ({"error":{"code","message"}}), paging (@odata.nextLink,
 * followed as given), $filter string literals in single quotes with a quote
 * doubled (OData URL conventions §5.1.1.6.1), and the throttling guidance
 * (429 with Retry-After in seconds).
 */
#include <curl/curl.h>
#include <errno.h>
#include <openssl/rand.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "common/xalloc.h"
#include "sync/secret.h"
#include "sync/target/entra_internal.h"

/* One answer: status, its JSON (NULL: none or not JSON), Graph's error code
 * and message. */
struct answer {
	long status;
	json_t *body;
	char code[64];
	char message[256];
};

static void answer_clear(struct answer *a)
{
	json_decref(a->body);
	memset(a, 0, sizeof *a);
}

static void sleep_ms(struct entra_job *j, unsigned ms)
{
	/* in slices: a cancelled operation stops waiting */
	while (ms > 0 && !entra__cancelled(j)) {
		unsigned s = ms < 50 ? ms : 50;
		uv_sleep(s);
		ms -= s;
	}
}

static uint64_t now_ms(void)
{
	return uv_hrtime() / 1000000;
}

void entra__budget_init(struct entra_budget *b, double max_rate)
{
	b->max_rate = b->rate = max_rate > 0 ? max_rate : ENTRA_DEFAULT_RPS;
	b->burst = b->rate / 10 < 1 ? 1 : b->rate / 10;
	b->tokens = b->burst;
	b->at_ms = b->win_ms = now_ms();
}

void entra__budget_take(struct entra_job *j)
{
	struct entra_budget *b = j->budget;
	uint64_t now = now_ms(), wait = 0;

	pthread_mutex_lock(&b->mu);
	if (now - b->win_ms >= 1000) {
		b->win_rate = (double)b->win_n * 1000.0 / (double)(now - b->win_ms);
		b->win_ms = now;
		b->win_n = 0;
	}
	b->win_n++;
	if (now > b->at_ms) {
		b->tokens += (double)(now - b->at_ms) * b->rate / 1000.0;
		if (b->tokens > b->burst)
			b->tokens = b->burst;
		b->at_ms = now;
	}
	b->tokens -= 1;
	if (b->tokens < 0)
		wait = (uint64_t)(-b->tokens * 1000.0 / b->rate + 0.5);
	pthread_mutex_unlock(&b->mu);
	if (wait > 0)
		sleep_ms(j, (unsigned)wait);
}

void entra__budget_answer(struct entra_job *j, bool throttled)
{
	struct entra_budget *b = j->budget;
	uint64_t now = now_ms();

	pthread_mutex_lock(&b->mu);
	if (throttled)
		b->throttled++;
	if (throttled && now - b->last_cut_ms >= 1000) {
		/* what was being sent, not what was allowed: a quiet run's
		 * rate is its max_rate, far above what it sent */
		double cur = (double)b->win_n * 1000.0 / (double)(now - b->win_ms + 1);
		double sent = b->win_rate > cur ? b->win_rate : cur;
		double base = sent < b->rate ? sent : b->rate;
		b->rate = base * 0.7 < 1 ? 1 : base * 0.7;
		if (b->rate > b->max_rate)
			b->rate = b->max_rate;
		b->burst = b->rate / 10 < 1 ? 1 : b->rate / 10;
		if (b->tokens > b->burst)
			b->tokens = b->burst;
		b->last_cut_ms = now;
		b->cuts++;
	} else if (!throttled && b->rate < b->max_rate) {
		b->rate += 1.0 / b->rate;
		if (b->rate > b->max_rate)
			b->rate = b->max_rate;
		b->burst = b->rate / 10 < 1 ? 1 : b->rate / 10;
	}
	pthread_mutex_unlock(&b->mu);
}

static unsigned backoff(const struct entra_cfg *c, unsigned attempt)
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

/* Graph or its token endpoint refused the application itself: the run
 * quarantines (entra.h, "Quarantine"). status 0: the token endpoint. */
static void deny(struct entra_job *j, const char *method, const char *sp, long status)
{
	j->denied = true;
	j->http_status = status;
	snprintf(j->denied_method, sizeof j->denied_method, "%s", method);
	snprintf(j->denied_path, sizeof j->denied_path, "%s", sp);
}

static void set_error(struct entra_job *j, int status, bool permanent, const char *fmt, ...)
{
	va_list ap;

	j->status = status;
	j->permanent = permanent;
	va_start(ap, fmt);
	vsnprintf(j->error, sizeof j->error, fmt, ap);
	va_end(ap);
}

/* For messages: the path without its query. */
static const char *short_path(const struct entra_job *j, const char *path, char *out, size_t outlen)
{
	size_t ul = strlen(j->cfg->url), n;

	if (strncmp(path, j->cfg->url, ul) == 0)
		path += ul;
	n = strcspn(path, "?");
	snprintf(out, outlen, "%.*s", (int)(n < outlen ? n : outlen - 1), path);
	return out;
}

struct curl_slist *entra__headers(const char *token, const char *content_type, const char *node, const char *term,
				  const char *cluster)
{
	char line[160];
	struct curl_slist *h = NULL;
	char *auth = xmalloc(strlen(token) + 32);

	sprintf(auth, "Authorization: Bearer %s", token);
	h = xcheck(curl_slist_append(h, auth));
	secret_free(auth);
	h = xcheck(curl_slist_append(h, "Accept: application/json"));
	if (content_type != NULL) {
		snprintf(line, sizeof line, "Content-Type: %s", content_type);
		h = xcheck(curl_slist_append(h, line));
	}
	h = xcheck(curl_slist_append(h, "Expect:")); /* no 100-continue round trip before large bodies */
	snprintf(line, sizeof line, "X-Canopy-Node: %s", node);
	h = xcheck(curl_slist_append(h, line));
	snprintf(line, sizeof line, "X-Canopy-Term: %s", term);
	h = xcheck(curl_slist_append(h, line));
	if (cluster[0]) {
		snprintf(line, sizeof line, "X-Canopy-Cluster: %s", cluster);
		h = xcheck(curl_slist_append(h, line));
	}
	return h;
}

static void read_error(struct answer *a)
{
	entra__answer_error(a->body, a->code, sizeof a->code, a->message, sizeof a->message);
}

int entra__wire(struct entra_job *j, const char *token, const char *method, const char *url, const char *payload,
		struct entra_reply *out)
{
	const struct entra_cfg *c = j->cfg;
	struct http_answer a;
	struct http_request rq = {
		.method = method,
		.url = url,
		.headers = entra__headers(token, payload != NULL ? "application/json" : NULL, j->fence_node,
					  j->fence_term, j->cluster),
		.body = payload,
		.timeout_ms = c->timeout_ms,
		.tls = c->tls,
		.max_body = ENTRA_RESP_MAX,
		.retry_after_max_s = ENTRA_RETRY_AFTER_MAX_S,
	};

	memset(out, 0, sizeof *out);
	out->retry_after_s = -1;
	int rc = http_multi_call(j->http, &rq, &a);
	if (rc == -EINVAL) {
		free(a.body);
		return -EINVAL;
	}
	if (a.cc != CURLE_OK) {
		out->cc = (int)a.cc;
		out->too_big = a.too_big;
		if (a.too_big)
			snprintf(out->err, sizeof out->err, "answer over %u bytes", ENTRA_RESP_MAX);
		else
			snprintf(out->err, sizeof out->err, "%s", a.err);
		free(a.body);
		return 0;
	}
	out->status = a.status;
	out->body = a.len ? json_loadb(a.body, a.len, 0, NULL) : NULL;
	out->retry_after_s = a.retry_after_s;
	free(a.body);
	return 0;
}

/* A Retry-After of ms (capped at backoff_max_ms) holds every request of the
 * run: Graph throttles per application and tenant. Returns the wait. */
static unsigned hold_for(struct entra_job *j, uint64_t ms)
{
	unsigned wait = ms > j->cfg->backoff_max_ms ? j->cfg->backoff_max_ms : (unsigned)ms;
	uint64_t until = uv_hrtime() / 1000000 + wait, cur = __atomic_load_n(j->hold_until, __ATOMIC_ACQUIRE);

	while (cur < until &&
	       !__atomic_compare_exchange_n(j->hold_until, &cur, until, false, __ATOMIC_ACQ_REL, __ATOMIC_ACQUIRE))
		;
	return wait;
}

/*
 * One request, with its retries: network errors, 5xx and 429 wait (429 and
 * 503: Retry-After) and go again, max_attempts in all; a 401 fetches a new
 * token once. Returns 0 with the answer (any other status), or a negative
 * errno with j->error set: -ECANCELED, -EACCES (the token endpoint refused
 * the client), -EIO (still failing after max_attempts).
 * With `once`, a request that may have been carried out (no answer, 5xx) is
 * not sent again: -EIO at once (a 429 was refused unprocessed, and waits and
 * goes again as usual).
 */
static int http_send(struct entra_job *j, const char *method, const char *path, const json_t *body, bool once,
		     struct answer *a)
{
	const struct entra_cfg *c = j->cfg;
	char *url, *payload = NULL, *reject = NULL, sp[160];
	bool refreshed = false;
	int rc = -EIO;

	memset(a, 0, sizeof *a);
	short_path(j, path, sp, sizeof sp);
	if (strncmp(path, "http://", 7) == 0 || strncmp(path, "https://", 8) == 0) {
		/* an @odata.nextLink: followed only below our own base */
		if (strncmp(path, c->url, strlen(c->url)) != 0) {
			set_error(j, -EBADMSG, false, "%s %.200s: a next link outside %s", method, path, c->url);
			return -EBADMSG;
		}
		url = xstrdup(path);
	} else {
		url = xmalloc(strlen(c->url) + strlen(path) + 1);
		sprintf(url, "%s%s", c->url, path);
	}
	if (body != NULL)
		payload = xcheck(json_dumps(body, JSON_COMPACT));

	for (unsigned attempt = 1;; attempt++) {
		char *token = NULL, why[512];
		uint64_t refresh_in;
		unsigned wait;

		/* Graph throttles per application and tenant: a Retry-After
		 * holds every request of the run, not just the one answered */
		uint64_t now = uv_hrtime() / 1000000, hold = __atomic_load_n(j->hold_until, __ATOMIC_ACQUIRE);
		if (hold > now)
			sleep_ms(j, (unsigned)(hold - now));
		entra__budget_take(j);
		if (entra__cancelled(j)) {
			rc = -ECANCELED;
			set_error(j, rc, false, "cancelled");
			break;
		}
		int trc = oauth2_token(c->auth, reject, &token, &refresh_in, why, sizeof why);
		if (trc == -EACCES) {
			rc = -EACCES;
			set_error(j, rc, false, "%s %s: no token: %.300s", method, sp, why);
			deny(j, method, sp, 0);
			break;
		}
		if (trc != 0) {
			snprintf(j->error, sizeof j->error, "%s %s: no token: %.300s", method, sp, why);
			goto transient;
		}
		struct entra_reply w;
		int wrc = j->batcher != NULL ? entra__batch_exchange(j, token, method, url, payload, &w)
					     : entra__wire(j, token, method, url, payload, &w);
		secret_free(token);
		if (wrc != 0) {
			rc = wrc;
			set_error(j, rc, false, "%s %s: cannot set up TLS", method, sp);
			break;
		}
		j->attempts++;
		if (w.cc != 0) {
			snprintf(j->error, sizeof j->error, "%s %s: %.300s", method, sp, w.err);
			j->http_status = 0;
			goto transient;
		}
		a->status = w.status;
		entra__budget_answer(j, a->status == 429);
		j->http_status = a->status;
		a->body = w.body;
		read_error(a);
		if (a->status == 401 && !refreshed) {
			/* the token was refused: never send it again (oauth2.h, reject) */
			refreshed = true;
			secret_free(reject);
			reject = NULL;
			char *again = NULL;
			if (oauth2_token(c->auth, NULL, &again, &refresh_in, why, sizeof why) == 0)
				reject = again;
			answer_clear(a);
			attempt--; /* a refresh is not a failure of the target */
			continue;
		}
		if (a->status != 429 && a->status < 500) {
			rc = 0;
			break;
		}
		snprintf(j->error, sizeof j->error, "%s %s: %ld %s%s%s", method, sp, a->status, a->code,
			 a->message[0] ? ": " : "", a->message);
		long a_status = a->status;
		wait = backoff(c, attempt);
		if ((a->status == 429 || a->status == 503) && w.retry_after_s >= 0)
			wait = hold_for(j, (uint64_t)w.retry_after_s * 1000);
		answer_clear(a);
		if (attempt >= c->max_attempts || (once && a_status != 429)) {
			rc = -EIO;
			j->status = rc;
			j->permanent = false;
			break;
		}
		j->retries++;
		sleep_ms(j, wait);
		continue;
	transient:
		if (attempt >= c->max_attempts || once) {
			rc = -EIO;
			j->status = rc;
			j->permanent = false;
			break;
		}
		j->retries++;
		sleep_ms(j, backoff(c, attempt));
	}
	secret_free(reject);
	free(payload);
	free(url);
	return rc;
}

static int http(struct entra_job *j, const char *method, const char *path, const json_t *body, struct answer *a)
{
	return http_send(j, method, path, body, false, a);
}

/* A refusal: whose is it (target.h, `permanent`)? A 4xx about this object's
 * content is; credentials, gone, conflicts that may clear are not. */
static int refuse(struct entra_job *j, const char *method, const char *path, const struct answer *a)
{
	long s = a->status;
	bool perm = s >= 400 && s < 500 && s != 401 && s != 403 && s != 404 && s != 408 && s != 409;
	char sp[160];
	int st = s == 401 || s == 403 ? -EACCES : s >= 400 && s < 500 ? -EPROTO : -EBADMSG;

	set_error(j, st, perm, "%s %s: %ld %s%s%s", method, short_path(j, path, sp, sizeof sp), s, a->code,
		  a->message[0] ? ": " : "", a->message);
	/* 401 here is the second, after a new token (http_send); 403 is a
	 * permission the application lacks (Authorization_RequestDenied):
	 * neither is about this object, and every other write would meet it */
	if (s == 401 || s == 403)
		deny(j, method, sp, s);
	return st;
}

static char *esc(const char *s)
{
	char *e = xcheck(curl_easy_escape(NULL, s, 0));
	char *out = xstrdup(e);

	curl_free(e);
	return out;
}

static char *fmt(const char *f, ...)
{
	va_list ap;
	int n;
	char *out;

	va_start(ap, f);
	n = vsnprintf(NULL, 0, f, ap);
	va_end(ap);
	out = xmalloc((size_t)n + 1);
	va_start(ap, f);
	vsnprintf(out, (size_t)n + 1, f, ap);
	va_end(ap);
	return out;
}

/* `prop eq 'value'`, URL-encoded: a quote inside an OData string literal is
 * doubled (OData URL conventions §5.1.1.6.1). */
static char *eq_filter(const char *prop, const char *value)
{
	size_t n = strlen(value), k = 0;
	char *q = xmalloc(2 * n + 1), *clause, *out;

	for (size_t i = 0; i < n; i++) {
		if (value[i] == '\'')
			q[k++] = '\'';
		q[k++] = value[i];
	}
	q[k] = '\0';
	clause = fmt("%s eq '%s'", prop, q);
	out = esc(clause);
	free(clause);
	free(q);
	return out;
}

static const char *coll(const struct entra_job *j)
{
	return j->type == OBJECT_GROUP ? "groups" : "users";
}

/* Graph's password complexity: three of upper, lower, digit, symbol; 8..256
 * characters. 24 random characters with one of each class for certain. */
static void random_password(char *out, size_t outlen)
{
	static const char *const classes[] = {"ABCDEFGHJKLMNPQRSTUVWXYZ", "abcdefghijkmnopqrstuvwxyz",
					       "23456789", "!#%+-.:=?@_"};
	static const char all[] = "ABCDEFGHJKLMNPQRSTUVWXYZabcdefghijkmnopqrstuvwxyz23456789!#%+-.:=?@_";
	unsigned char r[24];
	size_t n = outlen - 1 < sizeof r ? outlen - 1 : sizeof r;

	if (RAND_bytes(r, sizeof r) != 1)
		xoom("RAND_bytes"); /* no randomness: nothing safe to send */
	for (size_t i = 0; i < n; i++) {
		const char *set = i < 4 ? classes[i] : all;
		out[i] = set[r[i] % strlen(set)];
	}
	out[n] = '\0';
	OPENSSL_cleanse(r, sizeof r);
}

/*
 * The Graph body from the mapped attributes: SCIM's bookkeeping (schemas,
 * externalId, active, id, meta, members) left out; `active` becomes
 * accountEnabled unless the mapping gives it; "True"/"False" strings become
 * booleans for Graph's boolean properties; the anchor property set. Create
 * adds what Graph requires (entra.h).
 */
static json_t *graph_body(const struct entra_job *j, bool create)
{
	static const char *const skip[] = {"schemas", "externalId", "active", "id", "meta", "members"};
	static const char *const bools[] = {"accountEnabled", "mailEnabled", "securityEnabled"};
	json_t *b = xcheck(json_object()), *v;
	const char *k;

	json_object_foreach(j->attrs, k, v) {
		bool skipped = false;
		for (size_t i = 0; i < sizeof skip / sizeof skip[0]; i++)
			skipped |= strcmp(k, skip[i]) == 0;
		if (skipped)
			continue;
		json_t *val = json_incref(v);
		for (size_t i = 0; i < sizeof bools / sizeof bools[0]; i++)
			if (strcmp(k, bools[i]) == 0 && json_is_string(v)) {
				json_decref(val);
				val = json_boolean(strcasecmp(json_string_value(v), "true") == 0);
			}
		if (json_object_set_new(b, k, val) != 0)
			xoom("json_object_set_new");
	}
	if (j->type == OBJECT_USER && json_object_get(b, "accountEnabled") == NULL) {
		json_t *act = json_object_get(j->attrs, "active");
		if (json_is_boolean(act) || create)
			json_object_set_new(b, "accountEnabled", json_boolean(!json_is_false(act)));
	}
	if (json_object_set_new(b, j->cfg->anchor_property, xcheck(json_string(j->anchor))) != 0)
		xoom("json_object_set_new");
	if (!create) {
		/* PATCH changes only what it names: a mapped property without a
		 * value now is cleared with null (Graph "Update user"), except
		 * those Graph requires, which the config check makes sure are
		 * mapped and which an empty value could not clear anyway. */
		static const char *const keep[] = {"userPrincipalName", "displayName", "mailNickname",
						   "accountEnabled", "mailEnabled", "securityEnabled"};
		char *const *names = j->type == OBJECT_USER ? j->cfg->user_attrs : j->cfg->group_attrs;
		size_t n = j->type == OBJECT_USER ? j->cfg->n_user_attrs : j->cfg->n_group_attrs;
		for (size_t i = 0; i < n; i++) {
			bool kept = strchr(names[i], '.') != NULL || strchr(names[i], '[') != NULL;
			for (size_t k = 0; k < sizeof keep / sizeof keep[0]; k++)
				kept |= strcmp(names[i], keep[k]) == 0;
			if (!kept && json_object_get(b, names[i]) == NULL)
				json_object_set_new(b, names[i], json_null());
		}
		return b;
	}
	if (j->type == OBJECT_USER) {
		char pw[32];
		random_password(pw, sizeof pw);
		json_t *pp = xcheck(json_pack("{s:s,s:b}", "password", pw, "forceChangePasswordNextSignIn", 1));
		OPENSSL_cleanse(pw, sizeof pw);
		json_object_set_new(b, "passwordProfile", pp);
	} else {
		if (json_object_get(b, "mailEnabled") == NULL)
			json_object_set_new(b, "mailEnabled", json_false());
		if (json_object_get(b, "securityEnabled") == NULL)
			json_object_set_new(b, "securityEnabled", json_true());
	}
	return b;
}

/* json_dumps of a body with a password: wiped when freed. */
static void body_free(json_t *b)
{
	json_t *pp = json_object_get(b, "passwordProfile");
	json_t *pw = json_object_get(pp, "password");

	if (json_is_string(pw)) {
		/* jansson owns the buffer; overwrite it through a same-length value */
		size_t n = json_string_length(pw);
		char *z = xcalloc(1, n + 1);
		memset(z, 'x', n);
		json_string_setn_nocheck(pw, z, n);
		free(z);
	}
	json_decref(b);
}

/* The id of the object carrying our anchor: 1 found (id), 0 none, < 0 error. */
static int find_by_anchor(struct entra_job *j, char *id, size_t idlen)
{
	const char *prop = j->cfg->anchor_property;
	const char *name = json_string_value(json_object_get(j->attrs, "displayName"));
	char *path;
	int rc, found = 0;

	if (j->type == OBJECT_USER) {
		char *f = eq_filter(prop, j->anchor);
		path = fmt("/users?$filter=%s&$select=id,%s", f, prop);
		free(f);
	} else if (name != NULL) {
		/* Groups: the anchor compared here (entra.h: not every tenant
		 * filters groups by extension properties); by name first. */
		char *f = eq_filter("displayName", name);
		path = fmt("/groups?$filter=%s&$select=id,%s", f, prop);
		free(f);
	} else {
		path = fmt("/groups?$select=id,%s&$top=999", prop);
	}
	for (unsigned pages = 0; path != NULL && !found; pages++) {
		struct answer a;

		if (pages == 10000) {
			set_error(j, -ELOOP, false, "GET /%s: more than 10000 pages looking for anchor %s", coll(j),
				  j->anchor);
			free(path);
			return -ELOOP;
		}
		if ((rc = http(j, "GET", path, NULL, &a)) != 0) {
			free(path);
			return rc;
		}
		const char *next = NULL;
		int pf = a.status == 200 ? entra__page_find(a.body, prop, j->anchor, id, idlen, &next) : 0;
		if (a.status != 200 || pf < 0) {
			rc = a.status == 200 ? -EBADMSG : refuse(j, "GET", path, &a);
			if (a.status == 200)
				set_error(j, rc, false, "GET /%s: 200 without a value list", coll(j));
			answer_clear(&a);
			free(path);
			return rc;
		}
		free(path);
		path = NULL;
		found = pf;
		if (!found && next != NULL)
			path = xstrdup(next);
		answer_clear(&a);
	}
	free(path);
	return found;
}

/* PATCH /{coll}/{id} with body: 1 done, 0 gone (404), < 0 error. */
static int patch(struct entra_job *j, const char *id, const json_t *body)
{
	char *eid = esc(id), *path = fmt("/%s/%s", coll(j), eid);
	struct answer a;
	int rc = http(j, "PATCH", path, body, &a);

	if (rc == 0) {
		if (a.status >= 200 && a.status < 300)
			rc = 1;
		else if (a.status != 404)
			rc = refuse(j, "PATCH", path, &a);
	}
	answer_clear(&a);
	free(path);
	free(eid);
	return rc;
}

static int update(struct entra_job *j, const char *id, bool matched)
{
	json_t *b = graph_body(j, false);
	int rc = patch(j, id, b);

	json_decref(b);
	if (rc == 1) {
		snprintf(j->result_id, sizeof j->result_id, "%s", id);
		j->matched = matched;
	}
	return rc;
}

/* 400 ObjectConflict on userPrincipalName: adopt the holder when it carries
 * our anchor or none (entra.h). */
static int adopt_by_upn(struct entra_job *j)
{
	const char *upn = json_string_value(json_object_get(j->attrs, "userPrincipalName"));
	const char *prop = j->cfg->anchor_property;
	char *eu, *path, id[128];
	struct answer a;
	int rc;

	if (upn == NULL) {
		set_error(j, -EPROTO, true, "POST /users: conflict without a userPrincipalName to look up");
		return -EPROTO;
	}
	eu = esc(upn);
	path = fmt("/users/%s?$select=id,%s", eu, prop);
	free(eu);
	rc = http(j, "GET", path, NULL, &a);
	if (rc == 0 && a.status != 200) {
		/* 404: deleted since the conflict; the engine's retry creates it */
		rc = a.status == 404 ? -EAGAIN : refuse(j, "GET", path, &a);
		if (a.status == 404)
			set_error(j, rc, false, "user %s: conflict on create, then gone", upn);
	}
	if (rc == 0) {
		const char *other = json_string_value(json_object_get(a.body, prop));
		const char *oid = json_string_value(json_object_get(a.body, "id"));
		if (oid == NULL) {
			rc = -EBADMSG;
			set_error(j, rc, false, "GET /users/%s: 200 without an id", upn);
		} else if (other != NULL && strcmp(other, j->anchor) != 0) {
			rc = -EEXIST;
			set_error(j, rc, true,
				  "user %s: userPrincipalName %s belongs to object %s, which carries anchor %s: "
				  "not adopted",
				  j->anchor, upn, oid, other);
		} else {
			snprintf(id, sizeof id, "%s", oid);
		}
	}
	answer_clear(&a);
	free(path);
	if (rc != 0)
		return rc;
	rc = update(j, id, true);
	if (rc == 0) {
		rc = -EAGAIN;
		set_error(j, rc, false, "user %s: adopted object %s is gone", upn, id);
	}
	return rc < 0 ? rc : 0;
}

static int create(struct entra_job *j)
{
	json_t *b = graph_body(j, true);
	char *path = fmt("/%s", coll(j));
	struct answer a;
	int rc;

	/* A user's create may go again: a second POST of the same
	 * userPrincipalName is refused (400 ObjectConflict) and adopted below.
	 * Nothing makes a group unique, so a group's POST whose answer was lost
	 * is never re-sent blindly: look for our anchor first (entra.h). */
	for (unsigned round = 1;; round++) {
		char id[128];
		rc = http_send(j, "POST", path, b, j->type == OBJECT_GROUP, &a);
		if (rc != -EIO || j->type != OBJECT_GROUP || round >= j->cfg->max_attempts)
			break;
		int found = find_by_anchor(j, id, sizeof id);
		if (found < 0) {
			rc = found;
			break;
		}
		if (found == 1) {
			body_free(b);
			free(path);
			rc = update(j, id, true);
			if (rc == 0) {
				rc = -EAGAIN;
				set_error(j, rc, false, "group %s: created, then gone", j->anchor);
			}
			return rc < 0 ? rc : 0;
		}
		j->retries++;
		sleep_ms(j, backoff(j->cfg, round));
	}
	body_free(b);
	if (rc == 0) {
		const char *id = json_string_value(json_object_get(a.body, "id"));
		bool conflict = a.status == 400 && (strstr(a.message, "already exists") != NULL ||
						    strstr(a.message, "ObjectConflict") != NULL);
		if (a.status >= 200 && a.status < 300 && id != NULL) {
			snprintf(j->result_id, sizeof j->result_id, "%s", id);
			j->created = true;
		} else if (a.status >= 200 && a.status < 300) {
			rc = -EBADMSG;
			set_error(j, rc, false, "POST %s: %ld without an id", path, a.status);
		} else if (conflict && j->type == OBJECT_USER) {
			answer_clear(&a);
			free(path);
			return adopt_by_upn(j);
		} else {
			rc = refuse(j, "POST", path, &a);
		}
	}
	answer_clear(&a);
	free(path);
	return rc;
}

static int upsert(struct entra_job *j)
{
	char id[128];
	int rc;

	if (j->target_id != NULL) {
		rc = update(j, j->target_id, false);
		if (rc != 0)
			return rc < 0 ? rc : 0;
		/* 404: gone from the target; made again below */
	}
	/* Graph keeps no uniqueness on our anchor, so look before creating: a
	 * create whose answer was lost must not make a second object. */
	rc = find_by_anchor(j, id, sizeof id);
	if (rc < 0)
		return rc;
	if (rc == 1) {
		rc = update(j, id, true);
		if (rc != 0)
			return rc < 0 ? rc : 0;
	}
	return create(j);
}

/* DISABLE / DELETE: the id to work on; 0 with id "" when nothing is there. */
static int target_of(struct entra_job *j, char *id, size_t idlen)
{
	id[0] = '\0';
	if (j->target_id != NULL) {
		snprintf(id, idlen, "%s", j->target_id);
		return 0;
	}
	int rc = find_by_anchor(j, id, idlen);
	if (rc == 0)
		id[0] = '\0';
	return rc < 0 ? rc : 0;
}

static int disable(struct entra_job *j)
{
	char id[128];
	int rc = target_of(j, id, sizeof id);

	if (rc != 0 || id[0] == '\0')
		return rc;
	json_t *b = xcheck(json_pack("{s:b}", "accountEnabled", 0));
	rc = patch(j, id, b);
	json_decref(b);
	if (rc < 0)
		return rc;
	snprintf(j->result_id, sizeof j->result_id, "%s", id);
	return 0;
}

static int delete_object(struct entra_job *j)
{
	char id[128], *eid, *path;
	struct answer a;
	int rc = target_of(j, id, sizeof id);

	if (rc != 0 || id[0] == '\0')
		return rc;
	eid = esc(id);
	path = fmt("/%s/%s", coll(j), eid);
	rc = http(j, "DELETE", path, NULL, &a);
	if (rc == 0 && !(a.status >= 200 && a.status < 300) && a.status != 404)
		rc = refuse(j, "DELETE", path, &a);
	if (rc == 0)
		snprintf(j->result_id, sizeof j->result_id, "%s", id);
	answer_clear(&a);
	free(path);
	free(eid);
	return rc;
}

/* The group's member ids, every page; -ENOENT when the group is gone. */
static int read_members(struct entra_job *j, const char *eid, json_t **out)
{
	char *path = fmt("/groups/%s/members/$ref?$top=999", eid);
	json_t *ids = xcheck(json_object());
	int rc = 0;

	for (unsigned pages = 0; path != NULL; pages++) {
		struct answer a;

		if (pages == 10000) {
			rc = -ELOOP;
			set_error(j, rc, false, "group %s: more than 10000 pages of members", j->target_id);
			break;
		}
		if ((rc = http(j, "GET", path, NULL, &a)) != 0)
			break;
		if (a.status == 404) {
			rc = -ENOENT;
			set_error(j, rc, false, "group %s: gone from the target (GET members: 404)", j->target_id);
			answer_clear(&a);
			break;
		}
		const char *next = NULL;
		int pm = a.status == 200 ? entra__page_members(a.body, ids, &next) : 0;
		if (a.status != 200 || pm < 0) {
			rc = a.status == 200 ? -EBADMSG : refuse(j, "GET", path, &a);
			if (a.status == 200)
				set_error(j, rc, false, "group %s: members answer without a value list", j->target_id);
			answer_clear(&a);
			break;
		}
		free(path);
		path = NULL;
		if (next != NULL)
			path = xstrdup(next);
		answer_clear(&a);
	}
	free(path);
	if (rc != 0) {
		json_decref(ids);
		return rc;
	}
	*out = ids;
	return 0;
}

/* Is the group there? 1 yes, 0 gone, < 0 error. */
static int group_exists(struct entra_job *j, const char *eid)
{
	char *path = fmt("/groups/%s?$select=id", eid);
	struct answer a;
	int rc = http(j, "GET", path, NULL, &a);

	if (rc == 0)
		rc = a.status == 200 ? 1 : a.status == 404 ? 0 : refuse(j, "GET", path, &a);
	answer_clear(&a);
	free(path);
	return rc;
}

static bool already_member(const struct answer *a)
{
	return a->status == 400 && strstr(a->message, "already exist") != NULL;
}

/* One member through POST .../members/$ref (the fallback for a refused
 * bind chunk): 0 added or already there, < 0 error. */
static int add_one(struct entra_job *j, const char *eid, const char *member)
{
	char *path = fmt("/groups/%s/members/$ref", eid);
	char *ref = fmt("%s/directoryObjects/%s", j->cfg->url, member);
	json_t *b = xcheck(json_pack("{s:s}", "@odata.id", ref));
	struct answer a;
	int rc = http(j, "POST", path, b, &a);

	if (rc == 0 && !(a.status >= 200 && a.status < 300) && !already_member(&a)) {
		if (a.status == 404 && group_exists(j, eid) == 0) {
			rc = -ENOENT;
			set_error(j, rc, false, "group %s: gone from the target", j->target_id);
		} else {
			rc = refuse(j, "POST", path, &a);
			if (rc == -EPROTO || a.status == 404) {
				/* a member Graph does not know: that value, not the group */
				j->status = rc = -EPROTO;
				j->permanent = j->values_refused = true;
			}
		}
	}
	answer_clear(&a);
	json_decref(b);
	free(ref);
	free(path);
	return rc;
}

/* {"members@odata.bind": [".../directoryObjects/{id}", ...]} */
static json_t *bind_body(const struct entra_job *j, char *const *ids, size_t n)
{
	json_t *refs = xcheck(json_array());

	for (size_t i = 0; i < n; i++) {
		char *ref = fmt("%s/directoryObjects/%s", j->cfg->url, ids[i]);
		json_array_append_new(refs, xcheck(json_string(ref)));
		free(ref);
	}
	return xcheck(json_pack("{s:o}", "members@odata.bind", refs));
}

/* Up to ENTRA_BIND_MAX members in one PATCH members@odata.bind. */
static int add_chunk(struct entra_job *j, const char *eid, char *const *ids, size_t n)
{
	char *path = fmt("/groups/%s", eid);
	json_t *b = bind_body(j, ids, n);
	struct answer a;
	int rc;

	rc = http(j, "PATCH", path, b, &a);
	json_decref(b);
	if (rc == 0 && !(a.status >= 200 && a.status < 300)) {
		if (a.status == 404 && group_exists(j, eid) == 0) {
			rc = -ENOENT;
			set_error(j, rc, false, "group %s: gone from the target", j->target_id);
		} else if (a.status == 400 || a.status == 404) {
			/* All or none (Graph): one reference already there or unknown
			 * refuses the chunk; one at a time tells which. */
			for (size_t i = 0; i < n && rc == 0; i++)
				rc = add_one(j, eid, ids[i]);
		} else {
			rc = refuse(j, "PATCH", path, &a);
		}
	}
	answer_clear(&a);
	free(path);
	return rc;
}

/* One member removed: DELETE .../members/{id}/$ref; 0 done (404: was not
 * a member), < 0 error. */
static int remove_one(struct entra_job *j, const char *eid, const char *member)
{
	char *em = esc(member), *path = fmt("/groups/%s/members/%s/$ref", eid, em);
	struct answer a;
	int rc = http(j, "DELETE", path, NULL, &a);

	/* 404: not a member (done) -- or the group is gone */
	if (rc == 0 && a.status == 404 && group_exists(j, eid) == 0) {
		rc = -ENOENT;
		set_error(j, rc, false, "group %s: gone from the target", j->target_id);
	} else if (rc == 0 && !(a.status >= 200 && a.status < 300) && a.status != 404) {
		rc = refuse(j, "DELETE", path, &a);
	}
	answer_clear(&a);
	free(path);
	free(em);
	return rc;
}

/* One step of a group's member changes: a chunk of adds or one removal. */
struct step {
	bool add;
	size_t off, n; /* add: add[off .. off + n); removal: rm[off] */
};

/* What the engine learns of a failed operation: the leading values that
 * landed (target.h, n_add_done); unknown with verify. */
static void step_done(struct entra_job *j, const struct step *st)
{
	if (j->verify)
		return;
	if (st->add)
		j->n_add_done = st->off + st->n;
	else
		j->n_remove_done = st->off + 1;
}

static int step_alone(struct entra_job *j, const char *eid, const struct step *st, char **add, char **rm)
{
	return st->add ? add_chunk(j, eid, add + st->off, st->n) : remove_one(j, eid, rm[st->off]);
}

/*
 * Steps st[0..n) (2..ENTRA_BATCH_MAX) of one group in one sequential
 * $batch: each request dependsOn the one before, because they all write
 * the same group -- Graph runs them in order and answers 424 for those after
 * one that failed. *done: how many leading steps succeeded (2xx); the
 * caller runs the first that did not alone (its fallbacks, its retries) and
 * batches the rest again. Each request is charged to the budget, as Graph
 * charges it (the envelope takes one token, the others one each here).
 * Returns 0, or < 0 when the envelope itself failed for good.
 */
static int steps_batch(struct entra_job *j, const char *eid, const struct step *st, size_t n, char **add,
		       char **rm, size_t *done)
{
	json_t *reqs = xcheck(json_array()), *env;
	struct entra_batcher *batcher = j->batcher;
	struct answer a;
	int rc;

	*done = 0;
	for (size_t i = 0; i < n; i++) {
		char id[24], dep[24];
		json_t *r;
		snprintf(id, sizeof id, "%zu", i + 1);
		snprintf(dep, sizeof dep, "%zu", i);
		if (st[i].add) {
			char *url = fmt("/groups/%s", eid);
			r = xcheck(json_pack("{s:s,s:s,s:s,s:o,s:{s:s}}", "id", id, "method", "PATCH", "url", url, "body",
					     bind_body(j, add + st[i].off, st[i].n), "headers", "Content-Type",
					     "application/json"));
			free(url);
		} else {
			char *em = esc(rm[st[i].off]), *url = fmt("/groups/%s/members/%s/$ref", eid, em);
			r = xcheck(json_pack("{s:s,s:s,s:s}", "id", id, "method", "DELETE", "url", url));
			free(url);
			free(em);
		}
		if (i > 0)
			json_object_set_new(r, "dependsOn", xcheck(json_pack("[s]", dep)));
		json_array_append_new(reqs, r);
	}
	env = xcheck(json_pack("{s:o}", "requests", reqs));
	for (size_t i = 1; i < n; i++)
		entra__budget_take(j);
	/* a batch of its own, not one request of a parallel batch (Graph does
	 * not nest batches, nor mix sequential and parallel requests) */
	j->batcher = NULL;
	rc = http(j, "POST", "/$batch", env, &a);
	j->batcher = batcher;
	json_decref(env);
	if (rc != 0)
		return rc;
	for (size_t i = 0; a.status == 200 && i < n; i++) {
		char id[24];
		long status, ra;
		const json_t *body;
		snprintf(id, sizeof id, "%zu", i + 1);
		if (entra__batch_response(a.body, id, &status, &ra, &body) != 0)
			break;
		entra__budget_answer(j, status == 429);
		if (status == 429 && ra >= 0)
			hold_for(j, ra * 1000); /* the step re-sent alone waits for it */
		/* a removal's 404 is done (not a member), unless the group is
		 * gone: the step run alone tells */
		if (!(status >= 200 && status < 300))
			break;
		(*done)++;
	}
	/* anything else (a refused envelope, a step that failed): the first
	 * step not done runs alone and meets the same answer with its own
	 * handling -- the envelope's 429 or 5xx was waited for by http() */
	answer_clear(&a);
	return 0;
}

static bool in_list(char *const *ids, size_t n, const char *id)
{
	for (size_t i = 0; i < n; i++)
		if (strcmp(ids[i], id) == 0)
			return true;
	return false;
}

static int members(struct entra_job *j)
{
	char *eid = esc(j->target_id);
	json_t *have = NULL, *v;
	char **add = j->add, **rm = j->remove, **extra = NULL;
	size_t n_add = j->n_add, n_rm = j->n_remove, n_extra = 0;
	const char *k;
	int rc = 0;

	snprintf(j->result_id, sizeof j->result_id, "%s", j->target_id);
	if (j->verify) {
		if ((rc = read_members(j, eid, &have)) != 0)
			goto out;
		/* only what has not landed; indices then no longer match the
		 * engine's lists, so n_*_done stay 0 (unknown) */
		add = xcalloc(n_add + 1, sizeof *add);
		rm = xcalloc(n_rm + json_object_size(have) + 1, sizeof *rm);
		n_add = n_rm = 0;
		for (size_t i = 0; i < j->n_add; i++)
			if (json_object_get(have, j->add[i]) == NULL)
				add[n_add++] = j->add[i];
		for (size_t i = 0; i < j->n_remove; i++)
			if (json_object_get(have, j->remove[i]) != NULL)
				rm[n_rm++] = j->remove[i];
		if (j->exact)
			json_object_foreach(have, k, v) {
				if (!in_list(j->add, j->n_add, k) && !in_list(rm, n_rm, k)) {
					extra = xrealloc(extra, (n_extra + 1) * sizeof *extra);
					extra[n_extra++] = xstrdup(k);
				}
			}
		for (size_t i = 0; i < n_extra; i++)
			rm[n_rm++] = extra[i];
	}
	/* The steps in the engine's order: add chunks, then removals. Several
	 * go in one sequential $batch (steps_batch); one alone, or the first
	 * that failed in a batch, goes by itself. */
	size_t n_steps = (n_add + ENTRA_BIND_MAX - 1) / ENTRA_BIND_MAX + n_rm, s = 0;
	struct step *steps = xcalloc(n_steps + 1, sizeof *steps);
	for (size_t off = 0; off < n_add; off += ENTRA_BIND_MAX)
		steps[s++] = (struct step){true, off, n_add - off < ENTRA_BIND_MAX ? n_add - off : ENTRA_BIND_MAX};
	for (size_t i = 0; i < n_rm; i++)
		steps[s++] = (struct step){false, i, 1};
	for (size_t i = 0; i < n_steps && rc == 0;) {
		size_t n = n_steps - i < ENTRA_BATCH_MAX ? n_steps - i : ENTRA_BATCH_MAX, done = 0;
		if (n >= 2 && (rc = steps_batch(j, eid, steps + i, n, add, rm, &done)) != 0)
			break;
		for (size_t end = i + done; i < end; i++)
			step_done(j, &steps[i]);
		if (done < n) {
			if ((rc = step_alone(j, eid, &steps[i], add, rm)) == 0)
				step_done(j, &steps[i]);
			i++;
		}
	}
	free(steps);
	if (rc == 0)
		j->n_add_done = j->n_remove_done = 0;
	if (j->verify) {
		free(add);
		free(rm);
	}
	for (size_t i = 0; i < n_extra; i++)
		free(extra[i]);
	free(extra);
out:
	json_decref(have);
	free(eid);
	return rc;
}

/*
 * TARGET_TAKEN (SelectUniqueValue, sync/engine/unique.c): GET
 * /{users|groups}?$filter=<attr> eq '<value>'&$select=id,<anchor>&$top=1.
 * Taken when an object that does not carry our anchor holds the value: ours
 * holding it (a creation whose answer was lost, asked again) is not. How
 * the value compares (Graph's eq on userPrincipalName ignores case) is
 * Graph's business, as the uniqueness it enforces is.
 */
static int taken(struct entra_job *j)
{
	const char *prop = j->cfg->anchor_property;
	char *f = eq_filter(j->attr, j->value);
	char *path = fmt("/%s?$filter=%s&$select=id,%s&$top=1", coll(j), f, prop);
	struct answer a;
	int rc = http(j, "GET", path, NULL, &a);

	free(f);
	if (rc == 0 && a.status != 200)
		rc = refuse(j, "GET", path, &a);
	if (rc == 0) {
		int t = entra__page_taken(a.body, prop, j->anchor);
		if (t < 0) {
			rc = t;
			set_error(j, rc, false, "GET /%s: 200 without a value list", coll(j));
		}
		j->taken = t == 1;
	}
	answer_clear(&a);
	free(path);
	return rc;
}

void entra__exec(struct entra_job *j)
{
	uint64_t t0 = uv_hrtime();
	int rc;

	j->status = 0;
	j->error[0] = '\0';
	switch (j->action) {
	case TARGET_UPSERT:
		rc = upsert(j);
		break;
	case TARGET_DISABLE:
		rc = j->type == OBJECT_USER ? disable(j) : 0;
		break;
	case TARGET_DELETE:
		rc = delete_object(j);
		break;
	case TARGET_MEMBERS:
		rc = members(j);
		break;
	case TARGET_TAKEN:
		rc = taken(j);
		break;
	case TARGET_MANAGER:
	default:
		rc = -EOPNOTSUPP;
		set_error(j, rc, true, "user %s: the entra target does not write managers yet", j->anchor);
		break;
	}
	if (rc != 0 && j->status == 0) /* every path that fails says why; in case one does not */
		set_error(j, rc, false, "%s %s: failed (%d)", target_action_name(j->action), j->anchor, rc);
	j->status = rc;
	if (rc == 0)
		j->permanent = false;
	j->duration_ms = (double)(uv_hrtime() - t0) / 1e6;
}
