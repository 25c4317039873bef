/*
 * sync/engine/exec.c -- running a planned batch against the target port.
 *
 * Phases (exec_run), each waiting for every answer of the one before:
 *   PH_PLAN     intents: one entry names every object the batch may write
 *               (commit.c), so that a new leader can repair a write that was
 *               on the wire when this one died (docs/architecture.md,
 *               "Intents");
 *   PH_UPSERT   creates and updates;
 *   PH_MEMBERS  group member changes -- planned only now (plan_members),
 *               since they need the target ids of members created above --
 *               after member removals were counted (protect_members);
 *   PH_DELETE   deletes and disables; then the commit (commit.c).
 * Fencing: session_pump() starts a batch only while the lease holds, and the lease
 * watchdog (exec_lease_check) cancels every request still out when it ends;
 * the batch then runs again from the start once the lease is back
 * (docs/architecture.md, "Write lease").
 */
#include <assert.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "sync/engine/internal.h"

void engine_log(struct engine *e, int level, const char *msg, const char *detail)
{
	if (e->cfg.log != NULL)
		e->cfg.log(e->cfg.log_data, level, msg, detail);
}

static void exec_log_op_with(struct session *s, const struct item *it, const char *action, const char *result,
			     const char *error, const json_t *modified)
{
	struct engine *e = s->e;
	struct provlog_entry le = {
		.cycle = e->st.cycle,
		.change = it->change,
		.node = e->cfg.node_id,
		.term = s->term,
		.anchor = it->anchor,
		.dn = it->dn,
		.type = object_type_name(it->type),
		.action = action,
		.result = result,
		.target_id = it->op.result_id[0] ? it->op.result_id : it->rec.target_id,
		.error = error,
		.http_status = it->op.http_status,
		.duration_ms = it->op.duration_ms,
		.modified = modified,
	};
	provlog_write(&e->provlog, &le);
}

void exec_log_op(struct session *s, const struct item *it, const char *action, const char *result,
		 const char *error)
{
	exec_log_op_with(s, it, action, result, error, NULL);
}

void exec_log_skips(struct session *s, struct batch *b)
{
	struct engine *e = s->e;

	for (size_t i = 0; i < b->n_skips; i++) {
		const struct skip *k = &b->skips[i];
		struct provlog_entry le = {
			.cycle = e->st.cycle, .change = k->change, .node = e->cfg.node_id, .term = s->term,
			.anchor = k->anchor, .dn = k->dn, .type = object_type_name(k->type),
			.action = "skip", .result = "error", .error = k->error,
		};
		e->st.errors_total++;
		e->st.skipped_total++;
		provlog_write(&e->provlog, &le);
	}
}

/* The target did not take an item's operation: mark it for the retry set or
 * the failed objects (commit.c records it), and log it. Only a refusal of
 * this one object (op.permanent, target.h) may leave it behind as failed;
 * everything else stays in the retry set until it goes through. */
void exec_item_failed(struct session *s, struct item *it, const char *action)
{
	struct engine *e = s->e;
	char detail[700];

	e->st.errors_total++;
	if (it->op.permanent) {
		it->refused = true;
		exec_log_op(s, it, action, "error", it->op.error);
		snprintf(detail, sizeof detail, "%s %s: %s (canopyctl failed; canopyctl resync --failed)",
			 action, it->dn ? it->dn : it->anchor, it->op.error);
		engine_log(e, L_ERROR, "the target refused an object", detail);
	} else {
		it->retry = true;
		exec_log_op(s, it, action, "retry", it->op.error);
	}
}

/*
 * An update's modified attributes, when this node knows what the object held
 * before: it wrote it itself, and the record it updates from still has the
 * hash of that write. NULL otherwise (first update after a failover or a
 * restart, or written longer ago than the ENGINE_ATTRS_MAX latest objects).
 */
static json_t *modified_of(struct engine *e, const struct item *it)
{
	const json_t *was;

	if (!it->has_old || it->attrs == NULL || it->anchor == NULL)
		return NULL;
	if ((was = lastwrite_get(&e->lastwrite, it->anchor, it->old.hash)) == NULL)
		return NULL;
	json_t *mod = provlog_modified(was, it->attrs);
	/* values wrapped in Redact() read "[Redact]" in the log (mapping.h) */
	mapping_redact_modified(it->type == OBJECT_GROUP ? e->cfg.group_map : e->cfg.user_map, mod);
	return mod;
}

static void remember_attrs(struct engine *e, const struct item *it, bool written)
{
	if (it->anchor == NULL)
		return;
	if (!written || it->attrs == NULL)
		lastwrite_del(&e->lastwrite, it->anchor);
	else
		lastwrite_put(&e->lastwrite, it->anchor, it->hash, it->attrs);
}

static void exported(struct session *s, struct item *it, const char *action)
{
	struct engine *e = s->e;
	bool upsert = strcmp(action, "create") == 0 || strcmp(action, "update") == 0;
	json_t *mod = strcmp(action, "update") == 0 ? modified_of(e, it) : NULL;

	e->st.exported_total++;
	e->st.last_export_at = time(NULL);
	e->last_write_ms = engine_unix_ms();
	it->written = true;
	exec_log_op_with(s, it, action, "ok", NULL, mod);
	json_decref(mod);
	if (upsert)
		remember_attrs(e, it, true);
	else if (strcmp(action, "delete") == 0 || strcmp(action, "disable") == 0)
		remember_attrs(e, it, false);
}

static void batch_rewind(struct session *s);

static void op_done(struct target_op *op)
{
	struct item *it = op->data;
	struct session *s = it->s;
	struct batch *b = s->batch;

	if (op->status == -ECANCELED)
		it->cancelled = true;
	assert(b != NULL && b->outstanding > 0);
	b->outstanding--;
	/* a refusal of some member values: the next part goes out (bisect.c) */
	if (!s->stopping && !b->rewind && bisect_on_answer(s, it))
		return;
	if (b->outstanding == 0 && !s->stopping) {
		if (b->rewind)
			batch_rewind(s);
		else
			exec_run(s);
	}
}

/* it->op's action-specific fields are set by the caller. */
void exec_submit(struct session *s, struct item *it, enum target_action action)
{
	struct engine *e = s->e;

	it->op.action = action;
	it->op.type = it->type;
	it->op.anchor = it->anchor;
	it->op.data = it;
	it->s = s;
	s->batch->outstanding++;
	if (s->tgt == NULL || e->target->submit(s->tgt, &it->op, op_done) != 0) {
		/* not taken: neither done nor recorded, so the cursor stays */
		it->op.status = -ESHUTDOWN;
		it->cancelled = true;
		s->batch->outstanding--;
	}
}

void exec_upserts(struct session *s)
{
	struct batch *b = s->batch;

	/* SelectUniqueValue: reads first, in rounds, until every creation
	 * has its values (unique.c) */
	if (unique_round(s))
		return;
	for (size_t i = 0; i < b->n; i++) {
		struct item *it = b->items[i];
		if (it->kind != IT_UPSERT || it->failed || it->cancelled || !it->upsert_needed)
			continue;
		memset(&it->op, 0, sizeof it->op);
		it->op.target_id = it->has_old ? it->old.target_id : NULL;
		it->op.attrs = it->attrs;
		/* an update leaves out what SelectUniqueValue chose at creation:
		 * the target keeps it (target.h) */
		it->op.keep = it->op.target_id != NULL &&
			      mapping_has_unique(it->type == OBJECT_GROUP ? s->e->cfg.group_map : s->e->cfg.user_map);
		if (it->type == OBJECT_USER) {
			/* the whole user is written (PUT): with its manager when the
			 * manager's id is known now, else without -- plan_managers
			 * fills it in after the upserts (manager.c) */
			free(it->put_manager);
			free(it->put_manager_id);
			it->put_manager = manager_resolve(&s->plan, b, it, it->manager_dn, &it->put_manager_id);
			it->op.manager_id = it->put_manager_id;
		}
		exec_submit(s, it, TARGET_UPSERT);
	}
}

static bool same_str(const char *a, const char *b)
{
	return a == b || (a && b && strcmp(a, b) == 0);
}

/* After upserts: the new target ids and DNs are known to this session. */
static void finish_upserts(struct session *s)
{
	struct planner *p = &s->plan;
	struct batch *b = s->batch;
	char norm[DN_MAX];

	for (size_t i = 0; i < b->n; i++) {
		struct item *it = b->items[i];
		if (it->kind != IT_UPSERT || it->failed || it->cancelled)
			continue;
		object_record_free(&it->rec);
		it->rec.type = it->type;
		it->rec.hash = it->hash;
		it->rec.dn = it->dn ? xstrdup(it->dn) : NULL;
		it->rec.member_key = it->member_key ? xstrdup(it->member_key) : NULL;
		if (it->upsert_needed) {
			if (it->op.status != 0) {
				it->failed = true;
				exec_item_failed(s, it, it->has_old ? "update" : "create");
				continue;
			}
			it->rec.target_id = xstrdup(it->op.result_id);
			exported(s, it, it->op.created ? "create" : "update");
			/* the user as written: with the manager it carried, or none */
			it->rec.manager = it->put_manager ? xstrdup(it->put_manager) : NULL;
		} else {
			it->rec.target_id = xstrdup(it->old.target_id);
			it->rec.manager = it->old.manager ? xstrdup(it->old.manager) : NULL;
		}
		/* plan_managers compares the source's DN with this one */
		it->rec.manager_dn = it->has_old && it->old.manager_dn ? xstrdup(it->old.manager_dn) : NULL;
		if (it->type == OBJECT_GROUP && it->has_old && !(it->upsert_needed && it->op.created)) {
			/* members as exported so far; the members step updates them
			 * (a group created anew -- gone from the target -- has none) */
			it->rec.members = engine_strv_dup(it->old.members, it->old.n_members);
			it->rec.n_members = it->old.n_members;
			/* still in doubt until a member write makes them exact */
			it->rec.members_in_doubt = it->old.members_in_doubt;
			it->rec.refused = engine_strv_dup(it->old.refused, it->old.n_refused);
			it->rec.n_refused = it->old.n_refused;
		}
		it->write_rec = it->upsert_needed || !it->has_old ||
				(it->dn && (!it->old.dn || strcmp(it->dn, it->old.dn) != 0)) ||
				!same_str(it->member_key, it->old.member_key);
		if (it->has_old && it->old.dn) {
			scope_dn_norm(it->old.dn, norm, sizeof norm);
			strmap_del(&p->dn_index, norm);
		}
		if (it->dn) {
			scope_dn_norm(it->dn, norm, sizeof norm);
			engine_map_put(&p->dn_index, norm, xstrdup(it->anchor));
		}
		if (it->type == OBJECT_USER) /* memberUid-style groups name it by this */
			planner_index_key(p, it->anchor, it->has_old ? it->old.member_key : NULL, it->member_key);
		if (it->type == OBJECT_GROUP && !strmap_has(&p->groups, it->anchor))
			engine_map_put(&p->groups, it->anchor, (void *)1);
	}
}

/* The record lists the members planned (add_anchors) once the change is
 * done. A copy: a decision's plan must survive a rewind (batch_rewind). */
static void take_members(struct item *it)
{
	engine_strv_free(it->rec.members, it->rec.n_members);
	it->rec.members = engine_strv_dup(it->add_anchors, it->n_add_anchors);
	it->rec.n_members = it->n_add_anchors;
	/* The members the target refused (bisect.c): an upsert planned the
	 * whole membership, so every one still wanted was tried again now;
	 * a members-only change keeps those it did not try. */
	engine_strv_free(it->rec.refused, it->rec.n_refused);
	it->rec.refused = NULL;
	it->rec.n_refused = 0;
	if (it->kind != IT_UPSERT && !it->flat)
		for (size_t i = 0; i < it->old.n_refused; i++) {
			const char *a = it->old.refused[i];
			if (!engine_strv_has(it->add_new, it->n_add_new, a) &&
			    !engine_strv_has(it->rm_anchors, it->n_rm_anchors, a) &&
			    !engine_strv_has(it->refused_now, it->n_refused_now, a))
				engine_strv_push(&it->rec.refused, &it->rec.n_refused, a);
		}
	for (size_t i = 0; i < it->n_refused_now; i++)
		if (!engine_strv_has(it->rec.refused, it->rec.n_refused, it->refused_now[i]))
			engine_strv_push(&it->rec.refused, &it->rec.n_refused, it->refused_now[i]);
	if (it->members_exact && it->bis == NULL)
		/* the target now holds exactly these (a bisected write sent
		 * parts, none exact: still in doubt) */
		it->rec.members_in_doubt = false;
	it->write_rec = true;
}

static bool has_member_change(const struct item *it)
{
	return it->type == OBJECT_GROUP && !it->failed && !it->cancelled && it->members_planned &&
	       (it->kind == IT_UPSERT || it->kind == IT_MEMBERS);
}

/* Said once per user and DN (manager.c decides when): the user is written
 * without a manager, and waits for the DN. Not an error: no retry. */
static void log_manager_waiting(struct session *s, const struct item *it)
{
	struct engine *e = s->e;
	char detail[DN_MAX + 200];
	const char *why = "the manager's DN names no exported user (outside the users' scope, not created yet, "
			  "or not a user): left out until it does";
	struct provlog_entry le = {
		.cycle = e->st.cycle, .change = it->change, .node = e->cfg.node_id, .term = s->term,
		.anchor = it->anchor, .dn = it->dn, .type = object_type_name(it->type),
		.action = "manager", .result = "waiting", .target_id = it->rec.target_id, .error = detail,
	};

	snprintf(detail, sizeof detail, "manager %s of %s: %s", it->rec.manager_dn, it->dn ? it->dn : it->anchor,
		 why);
	engine_log(e, L_WARN, "a manager is not exported", detail);
	provlog_write(&e->provlog, &le); /* no request was made: no status, no duration */
}

/* A user's manager set or removed (manager.c planned it). */
static void submit_manager(struct session *s, struct item *it)
{
	if (it->manager_waiting)
		log_manager_waiting(s, it);
	if (!it->manager_planned)
		return;
	memset(&it->op, 0, sizeof it->op);
	it->op.target_id = it->rec.target_id;
	it->op.manager_id = it->manager_id;
	exec_submit(s, it, TARGET_MANAGER);
}

/* target.nested_groups: skip -- the nested groups left out of a group, said
 * once per group while this agent runs (they are not errors: nothing is
 * recorded as failed). */
static void log_nested_skipped(struct session *s, const struct item *it)
{
	struct engine *e = s->e;
	char detail[1500];
	size_t o;

	if (it->n_nested_skipped == 0 || strmap_has(&e->nested_told, it->anchor))
		return;
	engine_map_put(&e->nested_told, it->anchor, (void *)1);
	o = (size_t)snprintf(detail, sizeof detail, "group %s: %zu nested group(s) not sent as members "
			     "(target.nested_groups: skip; only its own users are): ",
			     it->dn ? it->dn : it->anchor, it->n_nested_skipped);
	for (size_t i = 0; i < it->n_nested_skipped && o < sizeof detail; i++)
		o += (size_t)snprintf(detail + o, sizeof detail - o, "%s%s", i ? "; " : "", it->nested_skipped[i]);
	engine_log(e, L_INFO, "nested groups left out", detail);
	exec_log_op(s, it, "nested-skip", "skipped", detail);
}

static void start_members(struct session *s)
{
	struct batch *b = s->batch;

	plan_members(&s->plan, b);
	protect_members(s, b);
	for (size_t i = 0; i < b->n; i++) {
		struct item *it = b->items[i];
		if (it->type == OBJECT_USER && !it->failed && !it->cancelled) {
			submit_manager(s, it);
			continue;
		}
		if (!has_member_change(it))
			continue;
		log_nested_skipped(s, it);
		if (it->n_add_ids == 0 && it->n_rm_ids == 0 && !it->members_exact) {
			take_members(it); /* nothing to send; the record changes if unresolved did */
			continue;
		}
		memset(&it->op, 0, sizeof it->op);
		it->op.target_id = it->rec.target_id;
		it->op.add = (const char *const *)it->add_ids;
		it->op.n_add = it->n_add_ids;
		it->op.remove = (const char *const *)it->rm_ids;
		it->op.n_remove = it->n_rm_ids;
		/* a re-run may repeat a change that landed: read back first */
		it->op.verify = b->kind == BATCH_RETRY || b->rerun;
		it->op.exact = it->members_exact;
		exec_submit(s, it, TARGET_MEMBERS);
	}
}

static void finish_members(struct session *s)
{
	struct batch *b = s->batch;

	for (size_t i = 0; i < b->n; i++) {
		struct item *it = b->items[i];
		if (it->type == OBJECT_USER && it->manager_planned && it->op.action == TARGET_MANAGER &&
		    !it->cancelled) {
			if (it->op.status != 0) {
				/* the record keeps the manager the target has and the
				 * DN wanted; the retry set sets it again */
				exec_item_failed(s, it, "manager");
				continue;
			}
			free(it->rec.manager);
			it->rec.manager = it->manager_set ? xstrdup(it->manager_set) : NULL;
			it->write_rec = true;
			exported(s, it, "manager");
			continue;
		}
		if (!has_member_change(it) || it->op.action != TARGET_MEMBERS)
			continue;
		if (bisect_aborted(it)) {
			/* what landed before the failure is in the target */
			bisect_partial(it);
		} else if (it->bis != NULL) {
			bisect_finish(s, it);
		}
		if (it->op.status != 0) {
			/* Its members stay as recorded; the retry set redoes the
			 * difference. A group gone from the target (-ENOENT) is
			 * written again in full: forget its content hash. */
			exec_item_failed(s, it, "members");
			if (it->op.status == -ENOENT) {
				it->rec.hash = 0;
				it->write_rec = true;
			}
			continue;
		}
		take_members(it);
		exported(s, it, "members");
	}
}

static void start_deletes(struct session *s)
{
	struct batch *b = s->batch;

	for (size_t i = 0; i < b->n; i++) {
		struct item *it = b->items[i];
		if (it->kind == IT_STAGE) {
			exec_log_op(s, it, "staged-delete", "held",
				    "delete threshold: held until approved "
				    "(canopyctl deletes list | approve | reject)");
			continue;
		}
		if (it->kind == IT_DISABLE && !it->failed && it->has_old && it->old.target_id) {
			memset(&it->op, 0, sizeof it->op);
			it->op.target_id = it->old.target_id;
			exec_submit(s, it, TARGET_DISABLE);
			continue;
		}
		if (it->kind != IT_DELETE || it->failed)
			continue;
		memset(&it->op, 0, sizeof it->op);
		it->op.target_id = it->has_old ? it->old.target_id : NULL;
		exec_submit(s, it, TARGET_DELETE);
	}
}

static void finish_deletes(struct session *s)
{
	struct batch *b = s->batch;
	char norm[DN_MAX];

	for (size_t i = 0; i < b->n; i++) {
		struct item *it = b->items[i];
		bool disable = it->kind == IT_DISABLE;
		if ((it->kind != IT_DELETE && !disable) || it->failed || it->cancelled)
			continue;
		if (disable && it->op.action != TARGET_DISABLE)
			continue; /* nothing was sent (no target id) */
		if (it->op.status != 0) {
			it->failed = true;
			exec_item_failed(s, it, disable ? "disable" : "delete");
			continue;
		}
		exported(s, it, disable ? "disable" : "delete");
		if (disable)
			continue; /* still exported: keep its DN */
		strmap_del(&s->plan.groups, it->anchor);
		if (it->dn) {
			scope_dn_norm(it->dn, norm, sizeof norm);
			strmap_del(&s->plan.dn_index, norm);
		}
		if (it->has_old)
			planner_index_key(&s->plan, it->anchor, it->old.member_key, NULL);
	}
}

void exec_run(struct session *s)
{
	struct batch *b = s->batch;

	for (;;) {
		assert(b->outstanding == 0);
		switch (b->phase) {
		case PH_PLAN:
			b->t_intent = batch_stage_done(b, EXPORT_STAGE_PLAN, b->t_taken);
			switch (commit_intents(s)) {
			case 0:
				b->phase = PH_INTENT; /* on_intents continues */
				return;
			case -1: /* its events are consumed: start over (or the next leader) */
				s->e->st.errors_total++;
				batch_free(b);
				s->batch = NULL;
				session_restart(s->e, "the batch's intent could not be proposed");
				return;
			}
			b->phase = PH_UPSERT; /* nothing to fence */
			b->t_target = b->t_intent;
			exec_upserts(s);
			break;
		case PH_INTENT:
			return; /* on_intents continues */
		case PH_UPSERT:
			if (b->asking) { /* the answers of a round of questions */
				b->asking = false;
				exec_upserts(s);
				break;
			}
			finish_upserts(s);
			b->phase = PH_MEMBERS;
			start_members(s);
			break;
		case PH_MEMBERS:
			finish_members(s);
			b->phase = PH_DELETE;
			start_deletes(s);
			break;
		case PH_DELETE:
			finish_deletes(s);
			commit_batch(s);
			return;
		case PH_COMMIT:
			return;
		}
		if (b->outstanding > 0)
			return; /* op_done calls back when the step is answered */
	}
}

static void on_rewind_retry(uv_timer_t *t)
{
	struct session *s = t->data;

	if (s->stopping || s->batch == NULL)
		return;
	if (!s->e->log->may_write(s->e->log)) {
		uv_timer_start(&s->retry, on_rewind_retry, 10, 0);
		return;
	}
	exec_run(s);
}

/*
 * The lease ran out while requests were on the wire; they were cancelled.
 * Nothing of this batch is committed: when the lease is back (or never, if a
 * new leader takes over -- then the session ends and the next leader redoes
 * it from the cursor), the whole batch runs again. Completed operations are
 * repeated, which is harmless: writes are idempotent, keyed by the anchor.
 * What the planner decided (an entry the mapping refused, nothing to do)
 * stands; what the target answered is forgotten -- a failure is retried too.
 */
static void batch_rewind(struct session *s)
{
	struct batch *b = s->batch;

	assert(b->outstanding == 0);
	for (size_t i = 0; i < b->n; i++) {
		struct item *it = b->items[i];
		if (it->op.action != 0 && (it->retry || it->refused || it->failed)) {
			it->failed = false; /* the target's answer, not the plan's */
			it->retry = it->refused = false;
		}
		it->cancelled = false;
		it->written = false;
		memset(&it->op, 0, sizeof it->op);
		it->write_rec = false;
		bisect_free(it); /* a decision keeps its plan, not its answers */
		it->flat = false;
		engine_strv_free(it->refused_now, it->n_refused_now);
		it->refused_now = NULL;
		it->n_refused_now = 0;
		if (!it->member_decision) /* planned again in PH_MEMBERS; a decision's are preset */
			batch_item_clear_members(it);
		manager_clear(it);
		unique_reset(it);
		if (it->kind == IT_MEMBERS) {
			object_record_free(&it->rec);
			object_record_copy(&it->rec, &it->old);
		} else if (it->kind == IT_UPSERT) {
			object_record_free(&it->rec);
		}
	}
	b->rewind = false;
	b->asking = false; /* the questions are asked again (unique_reset) */
	b->rerun = true;
	b->phase = PH_PLAN;
	s->e->st.errors_total++;
	uv_timer_start(&s->retry, on_rewind_retry, 10, 0);
}

/* Fencing (docs/architecture.md, "Write lease"): no request may be on the
 * wire after the lease deadline. Checked every lease_check_ms while a batch
 * has requests out. */
void exec_lease_check(uv_timer_t *t)
{
	struct session *s = t->data;
	struct engine *e = s->e;
	struct batch *b = s->batch;

	if (s->stopping || b == NULL || b->outstanding == 0 || b->rewind)
		return;
	if (e->log->may_write(e->log))
		return;
	b->rewind = true;
	e->st.lease_cancels_total++;
	struct provlog_entry le = {
		.cycle = b->cycle, .node = e->cfg.node_id, .term = s->term,
		.action = "lease-expired", .result = "cancelled",
		.error = "write lease ran out with requests in flight: cancelled them; the batch "
			 "runs again once the lease is renewed (or the next leader redoes it)",
	};
	provlog_write(&e->provlog, &le);
	e->target->cancel_all(s->tgt); /* op_done rewinds once the last one is back */
}
