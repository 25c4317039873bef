/*
 * sync/engine/session.c -- one leadership's export: the source run and the
 * target run it opened, the queue of events between them, and session_pump(), which
 * turns what is waiting into the next batch.
 *
 * A session starts when this node may act as leader (engine_lead) and ends
 * at once when it may not (engine_follow): in-flight requests are cancelled,
 * the source run is dropped, and the next leader resumes from the committed
 * cursor. Its memory goes only once every part has stopped (s->open).
 */
#include <assert.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "sync/engine/internal.h"
#include "sync/state/cluster.h"

size_t session_batch_max(const struct engine *e)
{
	return e->cfg.batch_max ? e->cfg.batch_max : DEFAULT_BATCH_MAX;
}

static void on_pump_timer(uv_timer_t *t)
{
	session_pump(t->data);
}

/*
 * A batch's work grows with its groups' members, not with its events: the
 * member phase resolves every member value of every group of the batch, and
 * builds every group's request, in one turn of the loop. At 100,000 users a
 * batch of 351 groups of 250 members blocked the leader's loop for 350 to
 * 450 ms at a time, the write lease ran out with requests in flight and the
 * batch was rewound, again on every rerun (docs/benchmarks.md, "The whole
 * bench"). So a batch also stops taking events once its entries hold
 * BATCH_VALUES_MAX attribute values -- a few dozen big groups -- and always
 * takes at least one event, however big.
 */
#define BATCH_VALUES_MAX 16384

static size_t event_values(const struct source_event *ev)
{
	size_t n = 1;

	if (ev->kind == SOURCE_ENTRY)
		for (size_t i = 0; i < ev->n_attrs; i++)
			n += ev->attrs[i].n_values;
	return n;
}

/* Source events into the batch, in order, at most batch_max of them and
 * (after the first) at most BATCH_VALUES_MAX attribute values. */
static void take_events(struct session *s, struct batch *b)
{
	struct engine *e = s->e;
	size_t max = session_batch_max(e), values = 0;
	uint64_t now = uv_hrtime();

	for (size_t taken = 0; s->head && taken < max; taken++) {
		struct qnode *q = s->head;
		size_t v = event_values(q->ev);
		if (taken > 0 && values + v > BATCH_VALUES_MAX)
			break;
		values += v;
		s->head = q->next;
		if (s->head == NULL)
			s->tail = NULL;
		s->queued--;
		if (b->first_event == 0)
			b->first_event = q->received;
		if (q->pre_intended)
			engine_strv_push(&b->pre_intents, &b->n_pre_intents, q->ev->anchor);
		/* the stages count changes (stages.h): entries and deletes, not
		 * cookies or refresh markers */
		if (q->ev->kind == SOURCE_ENTRY || q->ev->kind == SOURCE_DELETE) {
			if (b->ev_received_ns == NULL)
				b->ev_received_ns = xmalloc(max * sizeof *b->ev_received_ns);
			b->ev_received_ns[b->n_ev++] = q->received_ns;
			export_stage_observe(EXPORT_STAGE_QUEUE, now > q->received_ns ? now - q->received_ns : 0, 1);
		}
		plan_event(&s->plan, b, q->ev);
		source_event_free(q->ev);
		free(q);
	}
	if (s->paused && s->queued < max && s->src) {
		s->paused = false;
		e->source->resume(s->src);
	}
}

/* The retry set's due objects (the target came back: all of them). */
static void take_retries(struct session *s, struct batch *b)
{
	char *stale[64];
	uint64_t now = s->retry_now ? UINT64_MAX : engine_unix_ms();
	size_t n;

	s->retry_now = false;
	s->last_was_retry = true;
	retryset_clamp(s); /* this clock may have stepped back since they were set */
	n = plan_retries(&s->plan, b, &s->retry_due, now, session_batch_max(s->e), stale,
			 sizeof stale / sizeof stale[0]);
	for (size_t i = 0; i < n; i++) {
		strmap_del(&s->retry_due, stale[i]);
		free(stale[i]);
	}
	retryset_recompute(s);
}

/*
 * Start the next batch, if one is due and none runs: the in-doubt repair
 * first, then an operator's decision, then the retry set and new changes by
 * turns (neither starves). Planning sees the committed state: a batch starts
 * only after the previous one's commit applied.
 */
void session_pump(struct session *s)
{
	struct engine *e = s->e;
	struct batch *b;

	if (s->stopping || s->batch != NULL)
		return;
	if (s->head == NULL && s->pending_decision == DECISION_NONE && !s->repair_due && !retryset_due_now(s) &&
	    s->prov_head == NULL && s->n_reread == 0 && s->n_leaving == 0)
		return;
	/* Fencing (docs/architecture.md, "Write lease"): no batch without a live lease. */
	if (!e->log->may_write(e->log)) {
		uv_timer_start(&s->retry, on_pump_timer, 10, 0);
		return;
	}
	b = batch_new(BATCH_CHANGES, ++e->cycle_seq);
	b->t_taken = uv_hrtime();
	e->st.cycle = b->cycle;
	s->batch = b;
	if (s->repair_due) {
		s->repair_due = false;
		b->kind = BATCH_REPAIR;
		plan_repair(&s->plan, b, &s->in_doubt);
	} else if (s->pending_decision != DECISION_NONE) {
		b->kind = BATCH_DECISION;
		plan_decision(&s->plan, b, s->pending_decision == DECISION_APPROVE);
		s->pending_decision = DECISION_NONE;
	} else if (provision_take(s, b)) {
		/* an operator waits for it: before the retry set and new changes */
	} else if ((s->n_reread > 0 || s->n_leaving > 0) && reread_take(s, b)) {
		/* objects read again by DN, users out of the scope (reread.c) */
	} else if (retryset_due_now(s) && (s->head == NULL || !s->last_was_retry)) {
		b->kind = BATCH_RETRY;
		take_retries(s, b);
	} else {
		s->last_was_retry = false;
		take_events(s, b);
	}
	exec_log_skips(s, b);
	protect_deletes(e, b);
	exec_run(s);
}

static void on_source_event(void *data, struct source_event *ev)
{
	struct session *s = data;
	struct engine *e = s->e;
	struct qnode *q;

	if (s->stopping) {
		source_event_free(ev);
		return;
	}
	if (ev->kind == SOURCE_NOTICE) {
		/* not a change: nothing to plan, and no cursor (source.h) */
		engine_log(e, ev->warning ? L_WARN : L_INFO, "source", ev->message ? ev->message : "");
		source_event_free(ev);
		return;
	}
	if (ev->kind == SOURCE_STATUS)
		quarantine_update(s); /* the source's status() says it now */
	/* dropping an event would lose a change: out of memory aborts */
	q = xmalloc(sizeof *q);
	q->ev = ev;
	q->received = uv_now(e->loop);
	q->received_ns = uv_hrtime();
	q->pre_intended = false;
	q->next = NULL;
	if (s->tail)
		s->tail->next = q;
	else
		s->head = q;
	s->tail = q;
	s->queued++;
	/* Back-pressure: beyond two batches of our own, pause the source; its
	 * bounded queue then fills and it stops reading the directory. */
	if (!s->paused && s->queued >= 2 * session_batch_max(e) && s->src) {
		s->paused = true;
		e->source->pause(s->src);
	}
	session_pump(s);
}

/* ---- start and stop ------------------------------------------------------------ */

static void session_end(struct session *s)
{
	struct engine *e = s->e;
	struct qnode *q;

	while ((q = s->head) != NULL) {
		s->head = q->next;
		source_event_free(q->ev);
		free(q);
	}
	reread_clear(s);
	planner_clear(&s->plan);
	strmap_clear(&s->in_doubt);
	strmap_clear(&s->retry_due);
	free(s);
	e->sessions--;
	engine_release_if_idle(e);
}

void session_release(struct session *s)
{
	assert(s->open > 0);
	if (--s->open == 0)
		session_end(s);
}

static void on_part_stopped(void *data)
{
	session_release(data);
}

static void on_timer_closed(uv_handle_t *h)
{
	session_release(h->data);
}

static void timer_init(struct session *s, uv_timer_t *t)
{
	uv_timer_init(s->e->loop, t);
	t->data = s;
	s->open++;
}

/* The source or the target could not start: the session stays, quarantined
 * with the reason, until leadership moves or the agent stops. */
static void start_failed(struct session *s, enum engine_quarantine q, const char *side, const char *err)
{
	s->start_problem = q;
	snprintf(s->start_detail, sizeof s->start_detail, "%s: %.200s", side, err);
	quarantine_update(s);
}

void session_start(struct engine *e)
{
	struct session *s = xcalloc(1, sizeof *s);
	char err[512];

	s->e = e;
	s->term = e->log->term(e->log);
	planner_init(&s->plan, &e->cfg, e->state, &e->change_seq);
	s->plan.member_links = e->source->member_links;
	planner_load(&s->plan);
	strmap_init(&s->retry_due, NULL);
	retryset_load(s);
	strmap_init(&s->in_doubt, NULL);
	timer_init(s, &s->retry);
	timer_init(s, &s->lease);
	timer_init(s, &s->tick);
	timer_init(s, &s->repair_timer);
	uv_timer_start(&s->lease, exec_lease_check, 1, e->log->lease_check_ms(e->log));
	uv_timer_start(&s->tick, quarantine_tick, RETRY_TICK_MS, RETRY_TICK_MS);
	repair_schedule(s);
	e->s = s;
	e->sessions++;

	if (e->target->start(e->target, e->loop, &s->tgt, err, sizeof err) != 0) {
		s->tgt = NULL;
		start_failed(s, ENGINE_Q_TARGET_ERROR, "target", err);
		return;
	}
	s->open++;
	/* the cluster id is committed before engine_lead (agent/identity.h) */
	e->target->set_fence(s->tgt, e->cfg.node_id, s->term, cluster_id_get(e->state));
	size_t cursor_len;
	const void *cursor = state_cursor(e->state, &cursor_len);

	if (e->source->start(e->source, e->loop, cursor, cursor_len,
			     (const char *const *)e->attrs, e->n_attrs, on_source_event, s, &s->src, err,
			     sizeof err) != 0) {
		s->src = NULL;
		start_failed(s, ENGINE_Q_SOURCE_ERROR, "source", err);
		return;
	}
	s->open++;
}

void session_stop(struct engine *e)
{
	struct session *s = e->s;

	if (s == NULL)
		return;
	e->s = NULL;
	s->stopping = true;
	provision_drop(s);
	if (s->tgt)
		e->target->cancel_all(s->tgt); /* op callbacks see `stopping` */
	if (s->batch) {
		if (s->batch->phase == PH_COMMIT || s->batch->phase == PH_INTENT) {
			s->batch->orphan = true; /* its entry's callback frees it */
			s->open++;
		} else {
			batch_free(s->batch);
			s->batch = NULL;
		}
	}
	uv_timer_stop(&s->retry);
	uv_close((uv_handle_t *)&s->retry, on_timer_closed);
	uv_timer_stop(&s->lease);
	uv_close((uv_handle_t *)&s->lease, on_timer_closed);
	uv_timer_stop(&s->repair_timer);
	uv_close((uv_handle_t *)&s->repair_timer, on_timer_closed);
	uv_timer_stop(&s->tick);
	uv_close((uv_handle_t *)&s->tick, on_timer_closed);
	if (s->src)
		e->source->stop(s->src, on_part_stopped, s);
	if (s->tgt)
		e->target->stop(s->tgt, on_part_stopped, s);
}

/* ---- restarting a session --------------------------------------------------------- */

static void on_relead(uv_timer_t *t)
{
	struct engine *e = t->data;

	if (e->closing || e->s != NULL)
		return;
	if (!e->log->ready(e->log))
		return; /* not leading: the agent starts the next session when it is */
	engine_lead(e);
}

/*
 * A batch's events were taken but its commit did not go through while this
 * node may still lead. Going on would let a later commit carry the cursor
 * past them, so the session ends and a new one starts from the committed
 * cursor, after a delay that grows while commits keep failing (a full disk).
 */
void session_restart(struct engine *e, const char *why)
{
	char detail[200];

	e->relead_ms = e->relead_ms ? e->relead_ms * 2 : 200;
	if (e->relead_ms > 30000)
		e->relead_ms = 30000;
	snprintf(detail, sizeof detail, "%s; restarting from the committed cursor in %u ms", why, e->relead_ms);
	engine_log(e, L_WARN, "export session restarts", detail);
	engine_follow(e);
	uv_timer_start(&e->relead, on_relead, e->relead_ms, 0);
}
