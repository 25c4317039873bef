/*
 * sync/engine/provision.c -- canopyctl provision DN [--dry-run]: one object
 * read from the source now, planned, and (unless a dry run) written through
 * the same steps as every batch (sync/engine.h, engine_provision).
 *
 * Why a batch of its own in the session's queue, not a write on the side:
 * the session runs one batch at a time, so the object is never written by
 * two batches at once; the batch's intents, delete protection and commit
 * are the ones every change goes through (docs/architecture.md, "No lost
 * change", "Intents"), so the replicated record, the retry set and a new
 * leader's repair all see it. It carries no cursor.
 *
 * The read happens outside the source run, so an event of the same object
 * may still be on its way through the run's queue, older than the read. It
 * cannot win for good: a change newer than that event, which the read saw,
 * made a later event of its own (RFC 4533 §3.4: changes are sent in order
 * per session), so the object ends with the directory's newest content.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "sync/engine/internal.h"

struct provision {
	struct engine *e;
	char *dn;
	bool dry_run;
	engine_report_cb cb;
	void *data;
	uv_work_t work;
	/* worker thread: the read */
	struct source_event *read; /* the entry, or NULL: not found */
	int rv;
	char rule[1200], err[512];
	/* loop */
	json_t *report;            /* {"dn", "steps"} */
	struct source_event *ev;   /* what the batch plans: an entry or a delete */
	struct provision *next;    /* in the session's queue */
	const char *action;        /* as planned in its own batch (static) */
};

static void report_step(struct provision *p, json_t *step)
{
	if (json_array_append_new(json_object_get(p->report, "steps"), xcheck(step)) != 0)
		xoom("json_array_append_new");
}

static void set(json_t *o, const char *key, json_t *v)
{
	if (json_object_set_new(o, key, xcheck(v)) != 0)
		xoom("json_object_set_new");
}

static void provision_free(struct provision *p)
{
	source_event_free(p->read);
	source_event_free(p->ev);
	json_decref(p->report);
	free(p->dn);
	free(p);
}

/* Answer the caller and forget the provision. */
static void finish(struct provision *p, int status, const char *errmsg)
{
	struct engine *e = p->e;

	if (status == 0) {
		p->cb(p->data, 0, p->report, NULL);
		p->report = NULL;
	} else {
		p->cb(p->data, status, NULL, errmsg);
	}
	provision_free(p);
	e->jobs--;
	engine_release_if_idle(e);
}

static void on_read(uv_work_t *w)
{
	struct provision *p = w->data;
	struct engine *e = p->e;

	p->rv = e->source->read_entry(e->source, p->dn, (const char *const *)e->attrs, e->n_attrs, &p->read, p->rule,
				      sizeof p->rule, p->err, sizeof p->err);
}

static json_t *attrs_json(const struct source_event *ev)
{
	json_t *o = xcheck(json_object());

	for (size_t i = 0; i < ev->n_attrs; i++) {
		json_t *vals = xcheck(json_array());
		for (size_t j = 0; j < ev->attrs[i].n_values; j++)
			json_array_append_new(vals, engine_json_text(ev->attrs[i].values[j]));
		json_object_set_new(o, ev->attrs[i].name, vals);
	}
	return o;
}

/* The engine's own scope rules, after the source's base and filter. */
static bool engine_scope(struct session *s, enum object_type t, const char *dn, char *rule, size_t len)
{
	const struct engine_config *cfg = &s->e->cfg;

	if (scope_has(&s->plan, t, dn))
		return true;
	if (t == OBJECT_USER && s->plan.scope_on) {
		/* scope_has checks the excluded subtrees first: a member of the
		 * group that is out of scope is excluded */
		char norm[DN_MAX];
		scope_dn_norm(dn, norm, sizeof norm);
		if (strmap_has(&s->plan.scope, norm))
			snprintf(rule, len, "under source.users.exclude");
		else
			snprintf(rule, len, "not a member (nested) of source.users.member_of %s", cfg->user_member_of);
		return false;
	}
	snprintf(rule, len, "under source.%s.exclude", t == OBJECT_GROUP ? "groups" : "users");
	return false;
}

/* The DN's exported object, by the DN index (a DN the directory no longer has). */
static bool record_by_dn(struct session *s, const char *dn, char *anchor, size_t len, struct object_record *r)
{
	char norm[DN_MAX];
	const char *a;

	scope_dn_norm(dn, norm, sizeof norm);
	a = strmap_get(&s->plan.dn_index, norm);
	if (a == NULL || !engine_record(s->e->state, OBJECT_KEY_OBJECT, a, r))
		return false;
	snprintf(anchor, len, "%s", a);
	return true;
}

static struct source_event *delete_event(enum object_type type, const char *anchor, const char *dn)
{
	struct source_event *ev = xcalloc(1, sizeof *ev);

	ev->kind = SOURCE_DELETE;
	ev->type = type;
	ev->anchor = xstrdup(anchor);
	ev->dn = dn ? xstrdup(dn) : NULL;
	return ev;
}

static const char *item_action(struct planner *pl, const struct item *it)
{
	switch (it->kind) {
	case IT_UPSERT:
		if (it->failed)
			return "none";
		if (!it->has_old || it->old.target_id == NULL)
			return "create";
		if (it->upsert_needed || plan_members_differ(pl, it))
			return "update";
		if ((it->manager_dn == NULL) != (it->old.manager_dn == NULL) ||
		    (it->manager_dn && strcmp(it->manager_dn, it->old.manager_dn) != 0))
			return "update";
		return "none";
	case IT_DELETE:
		return "delete";
	case IT_DISABLE:
		return it->noop ? "none" : "disable";
	default:
		return "none";
	}
}

/*
 * Read, scope, map, match and decide, as steps of the report; p->ev is what
 * a real run plans (NULL: nothing to do). Returns the action.
 */
static const char *describe(struct provision *p, struct session *s)
{
	struct source_event *rd = p->read;
	struct object_record rec;
	char anchor[KEY_MAX] = "", rule[256];
	enum object_type type = OBJECT_UNKNOWN;
	bool has_rec = false, in_scope = false;
	const char *action;

	report_step(p, rd ? json_pack("{s:s,s:s,s:o,s:o}", "step", "read", "result", "found", "anchor",
				      engine_json_text(rd->anchor), "attributes", attrs_json(rd))
			  : json_pack("{s:s,s:s,s:o}", "step", "read", "result", "not_found", "detail",
				      engine_json_text(p->rule)));
	if (rd != NULL) {
		snprintf(anchor, sizeof anchor, "%s", rd->anchor);
		has_rec = engine_record(s->e->state, OBJECT_KEY_OBJECT, anchor, &rec);
		type = rd->type;
		if (type == OBJECT_UNKNOWN) {
			report_step(p, json_pack("{s:s,s:s,s:o}", "step", "scope", "result", "out_of_scope", "rule",
						 engine_json_text(p->rule)));
		} else if (!engine_scope(s, type, rd->dn, rule, sizeof rule)) {
			report_step(p, json_pack("{s:s,s:s,s:s,s:o}", "step", "scope", "result", "out_of_scope", "type",
						 object_type_name(type), "rule", engine_json_text(rule)));
		} else {
			in_scope = true;
			report_step(p, json_pack("{s:s,s:s,s:s,s:o}", "step", "scope", "result", "in_scope", "type",
						 object_type_name(type), "rule", engine_json_text(p->rule)));
		}
		if (in_scope) {
			p->ev = rd;
			p->read = NULL;
		} else if (has_rec) {
			p->ev = delete_event(rec.type, anchor, rd->dn);
		}
	} else {
		has_rec = record_by_dn(s, p->dn, anchor, sizeof anchor, &rec);
		if (has_rec)
			p->ev = delete_event(rec.type, anchor, p->dn);
	}

	/* what the batch would plan, on a scratch batch (the planner is pure) */
	struct batch *b = batch_new(BATCH_PROVISION, 0);
	struct item *it = NULL;
	if (p->ev != NULL) {
		plan_provision(&s->plan, b, p->ev, true);
		it = strmap_get(&b->by_anchor, p->ev->anchor);
	}
	if (in_scope && it != NULL && it->kind == IT_UPSERT) {
		if (it->refused)
			report_step(p, json_pack("{s:s,s:s,s:o}", "step", "map", "result", "refused", "error",
						 engine_json_text(it->op.error)));
		else
			report_step(p, json_pack("{s:s,s:s,s:O}", "step", "map", "result", "mapped", "object",
						 it->attrs));
	}
	if (has_rec) {
		json_t *m = xcheck(json_pack("{s:s,s:s,s:s,s:s,s:o,s:o}", "step", "match", "result", "record", "by",
					     "object record", "anchor", anchor, "target_id", engine_json_text(rec.target_id), "dn",
					     engine_json_text(rec.dn)));
		if (it != NULL && it->kind == IT_UPSERT && !it->failed)
			set(m, "content", json_string(it->upsert_needed ? "changed" : "unchanged"));
		report_step(p, m);
	} else {
		report_step(p, json_pack("{s:s,s:s,s:s}", "step", "match", "result", "none", "detail",
					 in_scope ? "no replicated record: when written, the target is searched by "
						    "externalId and name and an object found there is adopted"
						  : "not exported"));
	}
	action = it != NULL ? item_action(&s->plan, it) : "none";
	json_t *st = xcheck(json_pack("{s:s,s:s}", "step", "action", "result", action));
	if (strcmp(action, "delete") == 0 || strcmp(action, "disable") == 0)
		set(st, "detail", json_string("subject to delete protection (safety.delete_threshold)"));
	else if (it != NULL && it->refused)
		set(st, "detail", json_string("the mapping refused it: recorded as a failed object"));
	report_step(p, st);
	batch_free(b);
	if (has_rec)
		object_record_free(&rec);
	if (it == NULL) { /* nothing to plan: not exported and not in scope */
		source_event_free(p->ev);
		p->ev = NULL;
	}
	return action;
}

static void on_read_done(uv_work_t *w, int status)
{
	struct provision *p = w->data;
	struct engine *e = p->e;
	struct session *s = e->s;
	const char *action;
	char err[700];

	if (e->closing || status == UV_ECANCELED) {
		finish(p, -ECANCELED, "the agent is stopping");
		return;
	}
	if (p->rv < 0) {
		snprintf(err, sizeof err, "provision %s: reading the source: %s", p->dn, p->err);
		finish(p, p->rv, err);
		return;
	}
	if (s == NULL) {
		snprintf(err, sizeof err, "provision %s: this node stopped leading; ask the new leader", p->dn);
		finish(p, -EAGAIN, err);
		return;
	}
	action = describe(p, s);
	set(p->report, "action", json_string(action));
	set(p->report, "target_status", json_null());
	if (p->dry_run || p->ev == NULL) {
		report_step(p, json_pack("{s:s,s:s}", "step", "write", "result", p->dry_run ? "dry_run" : "none"));
		finish(p, 0, NULL);
		return;
	}
	/* run it as a batch of its own, in turn (session_pump) */
	if (s->prov_tail)
		s->prov_tail->next = p;
	else
		s->prov_head = p;
	s->prov_tail = p;
	session_pump(s);
}

int engine_provision(struct engine *e, const char *dn, bool dry_run, engine_report_cb cb, void *data, char *errmsg,
		     size_t errlen)
{
	struct provision *p;
	int rv;

	if (e->closing) {
		snprintf(errmsg, errlen, "the agent is stopping");
		return -ECANCELED;
	}
	if (e->s == NULL) {
		snprintf(errmsg, errlen, "this node is not exporting (not the leader)");
		return -EAGAIN;
	}
	if (e->source->read_entry == NULL) {
		snprintf(errmsg, errlen, "the %s source cannot read one entry: provision is not available",
			 e->source->name);
		return -ENOTSUP;
	}
	if (dn == NULL || dn[0] == '\0' || strlen(dn) >= DN_MAX) {
		snprintf(errmsg, errlen, "the DN is empty or longer than %d bytes", DN_MAX - 1);
		return -EINVAL;
	}
	p = xcalloc(1, sizeof *p);
	p->e = e;
	p->dn = xstrdup(dn);
	p->dry_run = dry_run;
	p->cb = cb;
	p->data = data;
	p->report = xcheck(json_pack("{s:s,s:[]}", "dn", dn, "steps"));
	p->work.data = p;
	rv = uv_queue_work(e->loop, &p->work, on_read, on_read_done);
	if (rv != 0) {
		snprintf(errmsg, errlen, "provision %s: cannot queue the read: %s", dn, uv_strerror(rv));
		provision_free(p);
		return -EIO;
	}
	e->jobs++;
	return 0;
}

/* ---- in the session's pipeline ------------------------------------------------ */

bool provision_take(struct session *s, struct batch *b)
{
	struct provision *p = s->prov_head;

	if (p == NULL)
		return false;
	s->prov_head = p->next;
	if (s->prov_head == NULL)
		s->prov_tail = NULL;
	p->next = NULL;
	b->kind = BATCH_PROVISION;
	b->prov = p;
	plan_provision(&s->plan, b, p->ev, false);
	/* The batch before it may have written the object meanwhile: what
	 * this batch does is decided now, and reported as the action. */
	struct item *it = strmap_get(&b->by_anchor, p->ev->anchor);
	p->action = it != NULL ? item_action(&s->plan, it) : "none";
	set(p->report, "action", json_string(p->action));
	return true;
}

void provision_batch_done(struct batch *b)
{
	struct provision *p = b->prov;
	struct item *it = p->ev ? strmap_get(&b->by_anchor, p->ev->anchor) : NULL;
	const char *result;
	char err[700];

	b->prov = NULL;
	if (!b->committed) {
		snprintf(err, sizeof err,
			 "provision %s: leadership was lost (or the commit failed) before the outcome was recorded; "
			 "the next leader exports it from the source", p->dn);
		finish(p, -EAGAIN, err);
		return;
	}
	if (it != NULL && it->cancelled) {
		/* not taken by the target (it could not start, or the run
		 * stopped): neither done nor recorded */
		snprintf(err, sizeof err, "provision %s: the write was cancelled (%s); the export writes it later",
			 p->dn, it->op.error[0] ? it->op.error : "the target did not take it");
		finish(p, -EAGAIN, err);
		return;
	}
	if (it == NULL || (p->action != NULL && strcmp(p->action, "none") == 0 && !it->failed))
		result = "none";
	else if (it->kind == IT_STAGE)
		result = "staged"; /* delete protection: canopyctl deletes approve */
	else if (it->noop)
		result = "none";
	else if (it->retry)
		result = "retry";
	else if (it->refused)
		result = "failed";
	else
		result = "done";
	json_t *st = xcheck(json_pack("{s:s,s:s}", "step", "write", "result", result));
	if (it != NULL && it->op.http_status > 0) {
		set(st, "http_status", json_integer(it->op.http_status));
		set(p->report, "target_status", json_integer(it->op.http_status));
	}
	if (it != NULL && it->op.result_id[0])
		set(st, "target_id", json_string(it->op.result_id));
	if (it != NULL && it->kind == IT_UPSERT && !it->failed && it->op.action == TARGET_UPSERT)
		set(st, "adopted", json_boolean(it->op.matched));
	if (it != NULL && it->failed && it->op.error[0])
		set(st, "error", engine_json_text(it->op.error));
	report_step(p, st);
	finish(p, 0, NULL);
}

void provision_drop(struct session *s)
{
	struct provision *p;
	char err[700];

	while ((p = s->prov_head) != NULL) {
		s->prov_head = p->next;
		snprintf(err, sizeof err, "provision %s: leadership was lost before it ran; ask the new leader", p->dn);
		finish(p, -EAGAIN, err);
	}
	s->prov_tail = NULL;
}
