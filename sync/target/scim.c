/*
 * sync/target/scim.c -- SCIM 2.0 target: operations (see scim.h for the
 * contract and scim_internal.h for how the files divide the work).
 *
 * This file: submit, the ready queue and the delayed list, retries with
 * backoff, the health window and quarantine, start and stop. Retries wait on
 * one shared uv_timer_t armed for the earliest due sop, so no per-operation
 * uv handle has to be closed (asynchronously) before a sop can be freed.
 */
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "sync/target/scim_internal.h"

static void arm_retry(struct scim_target *t);
static void on_kick(uv_timer_t *h);
static void free_attrs(struct scim_target *t);

int scim__errf(char *buf, size_t len, int rc, const char *fmt, ...)
{
	if (buf != NULL && len > 0) {
		va_list ap;
		va_start(ap, fmt);
		vsnprintf(buf, len, fmt, ap);
		va_end(ap);
	}
	return rc;
}

/* strlcpy: truncating copy, always terminated */
void scim__copy_str(char *dst, size_t size, const char *src)
{
	size_t n = strnlen(src, size - 1);
	memcpy(dst, src, n);
	dst[n] = '\0';
}

void scim__wipe_free(char *s)
{
	if (s == NULL)
		return;
	volatile char *p = s;
	while (*p != '\0')
		*p++ = '\0';
	free(s);
}

char *scim__concat(const char *a, const char *b)
{
	size_t la = strlen(a), lb = strlen(b);
	char *s = xmalloc(la + lb + 1);

	memcpy(s, a, la);
	memcpy(s + la, b, lb + 1);
	return s;
}

char *scim__asprintf(const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	int n = vsnprintf(NULL, 0, fmt, ap);
	va_end(ap);
	if (n < 0)
		xoom("vsnprintf"); /* only a format this file never passes fails */
	char *s = xmalloc((size_t)n + 1);
	va_start(ap, fmt);
	vsnprintf(s, (size_t)n + 1, fmt, ap);
	va_end(ap);
	return s;
}

static uint64_t rnd(struct scim_target *t)
{
	/* xorshift64*: jitter only, no need for anything stronger */
	uint64_t x = t->rng;
	x ^= x >> 12;
	x ^= x << 25;
	x ^= x >> 27;
	t->rng = x;
	return x * 0x2545F4914F6CDD1DULL;
}

const char *scim__op_name(enum scim_action a)
{
	return a == SCIM_UPSERT ? "upsert" : a == SCIM_DELETE ? "delete" : a == SCIM_TAKEN ? "taken" : "members";
}

void scim__finish(struct sop *s, int status)
{
	struct scim_target *t = s->t;
	struct scim_op *op = s->op;
	scim_done_cb cb = s->cb;

	op->status = status;
	op->duration_ms = (double)(uv_hrtime() - s->t0) / 1e6;
	if (status == 0)
		op->error[0] = '\0';
	else if (status != -ECANCELED)
		t->stats.failures++;
	t->n_pending--;
	op->priv = NULL;
	free(s->path);
	free(s->ext);
	json_decref(s->obj);
	json_decref(s->eff_add);
	json_decref(s->eff_rm);
	free(s);
	cb(op); /* may free op, submit, cancel or stop: touch nothing after */
}

void scim__fail(struct sop *s, int status, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(s->op->error, sizeof s->op->error, fmt, ap);
	va_end(ap);
	scim__finish(s, status);
}

/* A 4xx the operation cannot get past: -EPROTO with method, path, status and
 * the SCIM error detail. */
void scim__fail_http(struct sop *s, const struct req *r, const struct reply *rep)
{
	char detail[1024];
	scim__describe(r, rep, detail, sizeof detail);
	scim__fail(s, -EPROTO, "%s", detail);
}

void scim__ready_push(struct scim_target *t, struct sop *s, bool head)
{
	s->where = W_READY;
	list_insert(head ? t->ready.next : &t->ready, &s->link);
}

/* Move to the next step right away (it goes first: it continues work that
 * already holds its place in line). */
void scim__next_step(struct sop *s, enum step step)
{
	if (++s->hops > MAX_HOPS) {
		scim__fail(s, -ELOOP, "%s %s: no stable outcome after %u steps (objects changing under us?)",
			   scim__op_name(s->op->action), s->op->anchor != NULL ? s->op->anchor : s->id, s->hops);
		return;
	}
	s->step = step;
	s->tries = 0;
	scim__ready_push(s->t, s, true);
}

void scim__delay(struct sop *s, uint64_t ms)
{
	struct scim_target *t = s->t;
	s->where = W_DELAYED;
	s->due = uv_now(t->loop) + ms;
	/* keep `delayed` sorted by due time; scan from the tail (usually latest) */
	struct link *pos = t->delayed.prev;
	while (pos != &t->delayed && container_of(pos, struct sop, link)->due > s->due)
		pos = pos->prev;
	list_insert(pos->next, &s->link);
	arm_retry(t);
}

static void on_retry(uv_timer_t *h)
{
	struct scim_target *t = h->data;
	uint64_t now = uv_now(t->loop);
	while (!list_empty(&t->delayed)) {
		struct sop *s = container_of(t->delayed.next, struct sop, link);
		if (s->due > now)
			break;
		list_remove(&s->link);
		scim__ready_push(t, s, false);
	}
	arm_retry(t);
	scim__pump(t);
}

static void arm_retry(struct scim_target *t)
{
	if (list_empty(&t->delayed)) {
		uv_timer_stop(&t->retry_timer);
		return;
	}
	uint64_t due = container_of(t->delayed.next, struct sop, link)->due, now = uv_now(t->loop);
	uv_timer_start(&t->retry_timer, on_retry, due > now ? due - now : 0, 0);
}

/* Full jitter (uniform in [0, cap]) with cap = min doubling per attempt up to max. */
uint64_t scim__backoff_ms(struct scim_target *t, unsigned tries)
{
	uint64_t cap = t->cfg.backoff_min_ms;
	for (unsigned i = 1; i < tries && cap < t->cfg.backoff_max_ms; i++)
		cap *= 2;
	if (cap > t->cfg.backoff_max_ms)
		cap = t->cfg.backoff_max_ms;
	return rnd(t) % (cap + 1);
}

void scim__pump(struct scim_target *t)
{
	while (!t->stopping && !t->stats.quarantined && !t->auth_wait && !t->discovering &&
	       t->n_wire < t->cfg.max_in_flight &&
	       !list_empty(&t->ready)) {
		struct sop *s = container_of(t->ready.next, struct sop, link);
		if (scim__bulk_on(t) && scim__bulkable(s)) {
			scim__start_bulk(t); /* takes s and what can go with it */
			continue;
		}
		list_remove(&s->link);
		s->where = W_NONE;
		scim__start_step(s); /* may complete s and run the user's callback */
	}
}

static void kick(struct scim_target *t)
{
	if (!uv_is_active((uv_handle_t *)&t->kick_timer))
		uv_timer_start(&t->kick_timer, on_kick, 0, 0);
}

void scim__quarantine(struct scim_target *t, const char *reason, const char *detail)
{
	snprintf(t->stats.quarantine_reason, sizeof t->stats.quarantine_reason, "%s", reason);
	scim__copy_str(t->stats.quarantine_detail, sizeof t->stats.quarantine_detail, detail);
	if (t->stats.quarantined)
		return;
	t->stats.quarantined = true;
	t->stats.quarantine_since_ms = uv_now(t->loop);
	if (!t->probe_on_wire)
		scim__arm_probe(t);
}

int64_t scim__wall_ms(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_REALTIME, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

void scim__arm_probe(struct scim_target *t)
{
	uv_timer_start(&t->probe_timer, scim__on_probe, t->probe_ms, 0);
	t->stats.next_probe_at_ms = scim__wall_ms() + (int64_t)t->probe_ms;
}

bool scim_retry_now(struct scim_target *t)
{
	if (t->stopping || !t->stats.quarantined)
		return false;
	if (t->probe_on_wire)
		return true; /* its answer decides */
	uv_timer_stop(&t->probe_timer);
	t->probe_ms = t->cfg.probe_min_ms;
	scim__on_probe(&t->probe_timer); /* re-reads the token file, or fetches an OAuth2 token first */
	return true;
}

void scim__leave_quarantine(struct scim_target *t)
{
	t->stats.quarantined = false;
	t->stats.quarantine_reason[0] = '\0';
	t->stats.quarantine_detail[0] = '\0';
	t->stats.quarantine_since_ms = 0;
	t->stats.next_probe_at_ms = 0;
	t->health_n = t->health_i = 0; /* judge the target afresh */
	uv_timer_stop(&t->probe_timer);
	scim__pump(t);
}

/* Record one completed request; quarantine when >= HEALTH_FAILURES of the
 * last HEALTH_WINDOW failed. */
void scim__health(struct scim_target *t, uint8_t what, const char *detail)
{
	t->health[t->health_i] = what;
	t->health_i = (t->health_i + 1) % HEALTH_WINDOW;
	if (t->health_n < HEALTH_WINDOW)
		t->health_n++;
	if (what == H_OK || t->stats.quarantined)
		return;
	unsigned net = 0, server = 0;
	for (unsigned i = 0; i < t->health_n; i++) {
		net += t->health[i] == H_NET;
		server += t->health[i] == H_SERVER;
	}
	if (net + server >= HEALTH_FAILURES)
		scim__quarantine(t, net >= server ? "target_unreachable" : "server_errors", detail);
}

void scim__release(struct scim_target *t)
{
	void (*done)(void *) = t->done;
	void *data = t->done_data;
	free(t->url);
	free(t->token_file);
	free(t->ext_prefix);
	scim__wipe_free(t->token);
	free_attrs(t);
	free(t);
	if (done != NULL)
		done(data);
}

static void free_attrs(struct scim_target *t)
{
	for (int k = 0; k < 2; k++) {
		for (size_t i = 0; i < t->n_attrs[k]; i++)
			free(t->attrs[k][i]);
		free(t->attrs[k]);
		t->attrs[k] = NULL;
		t->n_attrs[k] = 0;
	}
	scim_schemas_free(t->schemas);
	t->schemas = NULL;
}

static void copy_attrs(struct scim_target *t, int k, const char *const *src, size_t n)
{
	t->attrs[k] = n > 0 ? xcalloc(n, sizeof *t->attrs[k]) : NULL;
	for (size_t i = 0; i < n; i++)
		t->attrs[k][t->n_attrs[k]++] = xstrdup(src[i]);
}

const char *scim_patch_style_name(enum scim_patch_style s)
{
	switch (s) {
	case SCIM_PATCH_STANDARD:
		return "standard";
	case SCIM_PATCH_VALUE_REMOVE:
		return "value_remove";
	case SCIM_PATCH_MEMBERS_REPLACE:
		return "members_replace";
	case SCIM_PATCH_PUT:
		return "put";
	default:
		return "auto";
	}
}

static void on_kick(uv_timer_t *h)
{
	struct scim_target *t = h->data;
	if (t->stopping)
		scim__finalize(t);
	else
		scim__pump(t);
}

static void apply_defaults(struct scim_config *c)
{
	if (c->max_in_flight == 0)
		c->max_in_flight = 8;
	if (c->max_attempts == 0)
		c->max_attempts = 6;
	if (c->backoff_min_ms == 0)
		c->backoff_min_ms = 200;
	if (c->backoff_max_ms == 0)
		c->backoff_max_ms = 30000;
	if (c->backoff_max_ms < c->backoff_min_ms)
		c->backoff_max_ms = c->backoff_min_ms;
	if (c->timeout_ms == 0)
		c->timeout_ms = 30000;
	if (c->probe_min_ms == 0)
		c->probe_min_ms = 1000;
	if (c->probe_max_ms == 0)
		c->probe_max_ms = 60000;
	if (c->probe_max_ms < c->probe_min_ms)
		c->probe_max_ms = c->probe_min_ms;
	if (c->members_per_patch == 0)
		c->members_per_patch = 1000;
	if (c->bulk_max_operations == 0)
		c->bulk_max_operations = 100;
}

int scim_target_start(struct scim_target **out, uv_loop_t *loop, const struct scim_config *cfg, char *errmsg,
		      size_t errlen)
{
	struct scim_target *t;
	int rc;

	*out = NULL;
	if (cfg == NULL || cfg->url == NULL || (strncmp(cfg->url, "http://", 7) != 0 && strncmp(cfg->url, "https://", 8) != 0))
		return scim__errf(errmsg, errlen, -EINVAL, "scim: target url must start with http:// or https://");
	t = xcalloc(1, sizeof *t);
	t->loop = loop;
	t->cfg = *cfg;
	apply_defaults(&t->cfg);
	t->probe_ms = t->cfg.probe_min_ms;
	t->rng = uv_hrtime() ^ ((uint64_t)getpid() << 32) ^ (uint64_t)(uintptr_t)t;
	if (t->rng == 0)
		t->rng = 0x9E3779B97F4A7C15ULL;
	list_init(&t->ready);
	list_init(&t->delayed);
	list_init(&t->wire);

	t->url = xstrdup(cfg->url);
	for (size_t n = strlen(t->url); n > 0 && t->url[n - 1] == '/'; n--)
		t->url[n - 1] = '\0';
	if (cfg->token_file != NULL)
		t->token_file = xstrdup(cfg->token_file);
	if (cfg->token != NULL) {
		t->token = xstrdup(cfg->token);
	} else if (t->token_file != NULL && (rc = scim__read_token(t->token_file, &t->token, errmsg, errlen)) != 0) {
		goto err_after_alloc;
	}
	t->ext_prefix = xstrdup(cfg->external_id_prefix != NULL ? cfg->external_id_prefix : "");
	t->cfg.url = t->url;
	t->cfg.token_file = t->token_file;
	t->cfg.external_id_prefix = t->ext_prefix;
	t->cfg.token = NULL; /* ours lives in t->token and changes */
	copy_attrs(t, 0, cfg->user_attrs, cfg->n_user_attrs);
	copy_attrs(t, 1, cfg->group_attrs, cfg->n_group_attrs);
	t->cfg.user_attrs = t->cfg.group_attrs = NULL;
	t->schemas = scim_schemas_new();
	scim_caps_defaults(&t->caps);
	scim__choose_style(t);
	t->discovering = true; /* operations wait for discovery (scim_auth.c) */

	rc = scim__transport_init(t);
	if (rc != 0) {
		scim__errf(errmsg, errlen, rc, "scim: cannot start: %s", strerror(-rc));
		goto err_after_alloc;
	}
	uv_timer_t *timers[] = {&t->retry_timer, &t->probe_timer, &t->kick_timer, &t->auth_timer};
	for (size_t i = 0; i < sizeof timers / sizeof timers[0]; i++) {
		uv_timer_init(loop, timers[i]);
		timers[i]->data = t;
	}
	t->auth = cfg->auth;
	if (t->auth != NULL) {
		t->auth_wait = true; /* nothing leaves without a token */
		scim__auth_fetch(t, NULL, false, false);
	} else {
		scim__fetch_spc(t);
	}
	*out = t;
	return 0;

err_after_alloc:
	free(t->url);
	free(t->token_file);
	free(t->ext_prefix);
	scim__wipe_free(t->token);
	free_attrs(t);
	free(t);
	return rc;
}

void scim_set_fence(struct scim_target *t, uint64_t node_id, uint64_t term)
{
	t->node_id = node_id;
	t->term = term;
}

void scim_set_cluster(struct scim_target *t, const char *cluster_id)
{
	snprintf(t->cluster_id, sizeof t->cluster_id, "%s", cluster_id ? cluster_id : "");
}

static bool all_strings(const json_t *a)
{
	size_t i;
	json_t *v;
	if (a == NULL)
		return true;
	if (!json_is_array(a))
		return false;
	json_array_foreach(a, i, v)
	{
		if (!json_is_string(v))
			return false;
	}
	return true;
}

int scim_submit(struct scim_target *t, struct scim_op *op, scim_done_cb cb)
{
	if (t == NULL || t->stopping)
		return -ESHUTDOWN;
	if (op == NULL || cb == NULL || (op->type != OBJECT_USER && op->type != OBJECT_GROUP))
		return -EINVAL;
	if (op->target_id != NULL && (op->target_id[0] == '\0' || strlen(op->target_id) >= sizeof op->result_id))
		return -EINVAL;
	enum step step;
	switch (op->action) {
	case SCIM_UPSERT:
		if (!json_is_object(op->resource))
			return -EINVAL;
		step = op->target_id != NULL ? ST_UPDATE : ST_CREATE;
		break;
	case SCIM_DELETE:
		if (op->target_id == NULL && op->anchor == NULL)
			return -EINVAL;
		step = op->target_id != NULL ? ST_DELETE : ST_FIND_EXT;
		break;
	case SCIM_MEMBERS:
		if (op->type != OBJECT_GROUP || op->target_id == NULL || !all_strings(op->add) ||
		    !all_strings(op->remove))
			return -EINVAL;
		step = op->verify ? ST_READ_MEMBERS : ST_MEMBERS;
		break;
	case SCIM_TAKEN:
		if (op->taken_attr == NULL || op->taken_attr[0] == '\0' || op->taken_value == NULL)
			return -EINVAL;
		step = ST_FIND_TAKEN;
		break;
	default:
		return -EINVAL;
	}
	struct sop *s = xcalloc(1, sizeof *s);
	s->t = t;
	s->op = op;
	s->cb = cb;
	s->step = step;
	s->t0 = uv_hrtime();
	if (op->anchor != NULL)
		s->ext = scim__concat(t->ext_prefix, op->anchor);
	if (op->target_id != NULL)
		snprintf(s->id, sizeof s->id, "%s", op->target_id);
	op->status = 0;
	op->result_id[0] = '\0';
	op->http_status = 0;
	op->attempts = 0;
	op->matched = op->created = op->refused = op->values_refused = op->taken = false;
	op->add_done = op->rm_done = 0;
	op->duration_ms = 0;
	op->error[0] = '\0';
	op->priv = s;
	t->n_pending++;
	scim__ready_push(t, s, false);
	kick(t); /* never start (or complete) anything from inside submit */
	return 0;
}

void scim_cancel_all(struct scim_target *t)
{
	struct link doomed;
	list_init(&doomed);
	t->cancel_gen++;
	/* Collect first, complete after: callbacks may submit (those new
	 * operations are not cancelled) or cancel again. */
	for (struct link *l = t->wire.next, *nx; l != &t->wire; l = nx) {
		nx = l->next;
		struct req *r = container_of(l, struct req, link);
		if (r->kind != R_OP && r->kind != R_BULK)
			continue;
		scim__req_detach(r);
		for (size_t i = 0; i < (r->kind == R_OP ? 1 : r->n_batch); i++) {
			struct sop *s = r->kind == R_OP ? r->sop : r->batch[i];
			scim__detach(s);
			list_insert(&doomed, &s->link);
		}
		scim__req_free(r);
	}
	list_splice(&t->ready, &doomed);
	list_splice(&t->delayed, &doomed);
	uv_timer_stop(&t->retry_timer);
	while (!list_empty(&doomed)) {
		struct sop *s = container_of(doomed.next, struct sop, link);
		list_remove(&s->link);
		s->where = W_NONE;
		scim__fail(s, -ECANCELED, "%s: cancelled", scim__op_name(s->op->action));
	}
	if (!t->stopping && !list_empty(&t->ready))
		kick(t);
}

unsigned scim_pending(const struct scim_target *t)
{
	return t->n_pending;
}

void scim_stats(const struct scim_target *t, struct scim_stats *out)
{
	*out = t->stats;
	out->in_flight = t->n_ops_wire;
	out->queued = t->n_pending - t->n_ops_wire;
}

void scim_target_stop(struct scim_target *t, void (*done)(void *data), void *data)
{
	if (t == NULL || t->stopping)
		return;
	t->done = done;
	t->done_data = data;
	t->stopping = true; /* submits from the callbacks below get -ESHUTDOWN */
	scim_cancel_all(t);
	while (!list_empty(&t->wire)) { /* the ServiceProviderConfig fetch, a probe */
		struct req *r = container_of(t->wire.next, struct req, link);
		scim__req_detach(r);
		scim__req_free(r);
	}
	uv_timer_stop(&t->retry_timer);
	uv_timer_stop(&t->probe_timer);
	uv_timer_stop(&t->auth_timer);
	oauth2_cancel(t->auth_req); /* its worker finishes on its own; no callback */
	t->auth_req = NULL;
	/* The rest (closing the HTTP engine and the handles) from a clean stack: we
	 * may be inside check_done() right now. */
	uv_timer_start(&t->kick_timer, on_kick, 0, 0);
}
