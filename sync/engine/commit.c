/*
 * sync/engine/commit.c -- the entries a batch proposes: its intents before
 * any request leaves, and its commit once every operation has an answer.
 *
 * No lost change (docs/architecture.md, "No lost change: when the cursor may
 * move"): the cursor moves past a change only in the entry that records the
 * change as done in the target ("o:"), or as held where operators see it and
 * where the next leader finds it -- the retry set ("r:"), the failed objects
 * ("f:"), a staged delete ("d:", "m:"). A cancelled operation is neither, and
 * the cursor then stays where it was.
 */
#include <assert.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "sync/engine/internal.h"
#include "sync/state/figures.h"

/* ---- encoding records into an entry ---------------------------------------------- */

static void put_object(struct state_batch *sb, char prefix, const char *anchor, const struct object_record *r)
{
	char key[KEY_MAX], *val;
	size_t vlen, klen = object_key(prefix, anchor, key, sizeof key);

	/* A record that cannot be encoded must not let the cursor pass the
	 * change: out of memory aborts (common/xalloc.h) rather than lose it. */
	if (object_record_encode(r, &val, &vlen) != 0)
		xoom("object_record_encode");
	state_batch_put(sb, key, klen, val, vlen);
	free(val);
}

static void put_retry_record(struct state_batch *sb, const char *key, size_t klen, const struct retry_record *r)
{
	char *val;
	size_t vlen;

	if (retry_record_encode(r, &val, &vlen) != 0)
		xoom("retry_record_encode");
	state_batch_put(sb, key, klen, val, vlen);
	free(val);
}

static void del_key(struct state_batch *sb, char prefix, const char *anchor)
{
	char key[KEY_MAX];
	size_t klen = object_key(prefix, anchor, key, sizeof key);

	state_batch_del(sb, key, klen);
}

/* Delete only what is there: keeps the entry small. */
static void del_existing(struct engine *e, struct state_batch *sb, char prefix, const char *anchor)
{
	if (engine_has_key(e->state, prefix, anchor))
		del_key(sb, prefix, anchor);
}

/* ---- intents ------------------------------------------------------------------------ */

/* A log answer for a batch whose session ended meanwhile: free the batch
 * (and the session, if it was only waiting for this). True when so. */
static bool batch_orphaned(struct session *s, struct batch *b)
{
	if (b != NULL && !b->orphan)
		return false;
	batch_free(b);
	if (s->stopping)
		session_release(s);
	return true;
}

static void on_intents(void *arg, int status)
{
	struct session *s = arg;
	struct batch *b = s->batch;

	if (batch_orphaned(s, b))
		return;
	assert(b->phase == PH_INTENT);
	if (status != 0) { /* its events are consumed: start over (or the next leader) */
		s->e->st.errors_total++;
		batch_free(b);
		s->batch = NULL;
		session_restart(s->e, "the batch's intent could not be committed");
		return;
	}
	b->phase = PH_UPSERT;
	b->t_target = batch_stage_done(b, EXPORT_STAGE_INTENT, b->t_intent);
	exec_upserts(s);
	if (b->outstanding == 0)
		exec_run(s);
}

/*
 * The type an intent names: the item's own, or -- for an item that does not
 * know it (a delete of an object without a record) -- the type an earlier
 * leader's intent for the same object named. Overwriting "6 user" with
 * "7 unknown" would make the next leader's repair skip a create that term
 * 6 may have landed (repair.c only looks up typed intents).
 */
static enum object_type intent_type(const struct session *s, const struct item *it)
{
	void *doubt;

	if (it->type == OBJECT_USER || it->type == OBJECT_GROUP)
		return it->type;
	doubt = strmap_get(&s->in_doubt, it->anchor); /* 1 + type, repair.c */
	return doubt != NULL ? (enum object_type)((uintptr_t)doubt - 1) : it->type;
}

static int intent_value(const struct session *s, const struct item *it, char *val, size_t len)
{
	enum object_type t = intent_type(s, it);

	return snprintf(val, len, "%llu %s", (unsigned long long)s->term,
			t == OBJECT_GROUP ? "group" : t == OBJECT_USER ? "user" : "unknown");
}

/*
 * Fencing, last step (docs/architecture.md, "Intents"): before any request of
 * the batch goes out, commit an intent for each object it may write. A
 * request already on the wire cannot be recalled; if this leader dies or is
 * cut off before the batch's own commit, the next leader finds the intents
 * and, once a late write has surely landed, rewrites those objects
 * (repair.c).
 */
int commit_intents(struct session *s)
{
	struct engine *e = s->e;
	struct batch *b = s->batch;
	struct state_batch sb;
	char key[KEY_MAX], val[40];
	size_t klen;
	int rv;

	if (b->kind == BATCH_REPAIR || b->kind == BATCH_DECISION)
		return 1;
	state_batch_init(&sb);
	for (size_t i = 0; i < b->n; i++) {
		struct item *it = b->items[i];
		if (it->kind == IT_STAGE || it->kind == IT_UNSTAGE || it->failed)
			continue;
		if (it->kind == IT_UPSERT && !it->upsert_needed && it->type != OBJECT_GROUP &&
		    (!it->has_old || it->manager_dn == it->old.manager_dn ||
		     (it->manager_dn && it->old.manager_dn && strcmp(it->manager_dn, it->old.manager_dn) == 0)))
			continue; /* nothing will be written for it (a new manager DN may be: manager.c) */
		/* "<term> <type>": the type lets a new leader that finds this
		 * intent without an object record look for a create that may
		 * have landed (repair.c); an intent of an older canopy is the
		 * term alone */
		int vl = intent_value(s, it, val, sizeof val);
		const void *have;
		size_t have_len;
		klen = object_key(OBJECT_KEY_INTENT, it->anchor, key, sizeof key);
		/* Committed already, by this term: the entry of the batch before
		 * carried it (pre_intend) -- the fence holds, no round needed. */
		if (state_get(e->state, key, klen, &have, &have_len) && have_len == (size_t)vl &&
		    memcmp(have, val, have_len) == 0)
			continue;
		state_batch_put(&sb, key, klen, val, (size_t)vl);
	}
	if (sb.n_ops == 0) {
		state_batch_close(&sb);
		return 1;
	}
	rv = e->log->propose(e->log, &sb, on_intents, s);
	state_batch_close(&sb);
	return rv == 0 ? 0 : -1;
}

/* ---- the retry set and failed objects ------------------------------------------------ */

static enum retry_kind retry_kind_of(const struct item *it)
{
	switch (it->kind) {
	case IT_DELETE:
		return RETRY_DELETE;
	case IT_DISABLE:
		return RETRY_DISABLE;
	case IT_UPSERT:
		/* no attrs: not mappable; SelectUniqueValue not settled: its
		 * resource lacks the value, chosen anew from a re-read */
		return it->attrs == NULL || unique_unsettled(it) ? RETRY_REREAD : RETRY_UPSERT;
	case IT_MEMBERS:
		return RETRY_UPSERT; /* no resource: members only */
	default:
		return RETRY_REREAD;
	}
}

/* Record what the item was to do under "r:" (retry set) or "f:" (failed). */
static void put_retry(struct session *s, struct state_batch *sb, struct item *it, char prefix)
{
	struct engine *e = s->e;
	struct retry_record r, prev;
	bool had = engine_retry_record(e->state, prefix, it->anchor, &prev) ||
		   engine_retry_record(e->state, OBJECT_KEY_RETRY, it->anchor, &prev);
	uint64_t now = engine_unix_ms(), max_ms;
	char key[KEY_MAX];
	size_t klen;

	memset(&r, 0, sizeof r);
	r.kind = retry_kind_of(it);
	r.type = it->type != OBJECT_UNKNOWN ? it->type : it->old.type;
	r.dn = it->dn ? it->dn : it->old.dn;
	r.resource = r.kind == RETRY_UPSERT && it->kind == IT_UPSERT ? it->attrs : NULL;
	r.hash = it->hash;
	if (r.kind == RETRY_UPSERT && it->kind == IT_UPSERT) {
		r.member_dns = it->member_dns;
		r.n_member_dns = it->n_member_dns;
		r.manager_dn = it->manager_dn;
		r.member_key = it->member_key;
	}
	if (it->kind == IT_MEMBERS && had && prev.resource != NULL) {
		/* only the members failed again: keep the pending upsert */
		r.kind = prev.kind;
		r.resource = prev.resource;
		r.hash = prev.hash;
		r.member_dns = prev.member_dns;
		r.n_member_dns = prev.n_member_dns;
		r.manager_dn = prev.manager_dn;
		r.member_key = prev.member_key;
	}
	r.attempts = had ? prev.attempts + 1 : 1;
	r.first_at_ms = had && prev.first_at_ms ? prev.first_at_ms : now;
	max_ms = (uint64_t)(e->cfg.retry_max_s ? e->cfg.retry_max_s : DEFAULT_RETRY_MAX_S) * 1000;
	r.next_at_ms = prefix == OBJECT_KEY_RETRY ? now + retry_backoff_ms(r.attempts, max_ms, engine_rnd(e)) : 0;
	r.http_status = it->op.http_status;
	r.error = it->op.error[0] ? it->op.error : NULL;
	klen = object_key(prefix, it->anchor, key, sizeof key);
	put_retry_record(sb, key, klen, &r);
	if (had)
		retry_record_free(&prev);
	if (prefix == OBJECT_KEY_RETRY)
		engine_map_put(&s->retry_due, it->anchor, (void *)(uintptr_t)r.next_at_ms);
}

/* The retry set and failed objects after this item's outcome. */
static void settle(struct session *s, struct state_batch *sb, struct item *it)
{
	struct engine *e = s->e;

	if (it->retry) {
		put_retry(s, sb, it, OBJECT_KEY_RETRY);
		del_existing(e, sb, OBJECT_KEY_FAILED, it->anchor);
		return;
	}
	if (it->refused) {
		put_retry(s, sb, it, OBJECT_KEY_FAILED);
	} else if (it->kind == IT_MEMBERS) {
		/* members reconciled; an upsert still pending stays pending */
		struct retry_record r;
		bool keep = false;
		if (engine_retry_record(e->state, OBJECT_KEY_RETRY, it->anchor, &r)) {
			keep = r.resource != NULL;
			retry_record_free(&r);
		}
		if (keep)
			return;
	} else {
		del_existing(e, sb, OBJECT_KEY_FAILED, it->anchor);
	}
	del_existing(e, sb, OBJECT_KEY_RETRY, it->anchor);
	strmap_del(&s->retry_due, it->anchor);
}

/* "m:<group>#<member>" */
static size_t held_key(const char *group, const char *member, char *key, size_t size)
{
	char both[KEY_MAX];

	snprintf(both, sizeof both, "%s#%s", group, member);
	return object_key(OBJECT_KEY_STAGED_MEMBER, both, key, size);
}

/* Staged member removals: a normal batch records them (value: the member's
 * record, for `deletes list`); a decision batch drops them once decided --
 * an approval only when its change went through (else they stay staged). */
static void settle_held(struct session *s, struct state_batch *sb, struct item *it, bool decision)
{
	char key[KEY_MAX], *val;
	size_t klen, vlen;

	if (decision && (it->retry || it->refused))
		return;
	for (size_t i = 0; i < it->n_held; i++) {
		struct object_record m;
		klen = held_key(it->anchor, it->held[i], key, sizeof key);
		if (decision) {
			state_batch_del(sb, key, klen);
			continue;
		}
		if (!engine_record(s->e->state, OBJECT_KEY_OBJECT, it->held[i], &m))
			continue;
		if (object_record_encode(&m, &val, &vlen) != 0)
			xoom("object_record_encode");
		state_batch_put(sb, key, klen, val, vlen);
		free(val);
		object_record_free(&m);
	}
}

/* ---- the commit ---------------------------------------------------------------------------- */

/* Done, or recorded: the cursor may pass it. */
static bool item_settled(const struct item *it)
{
	if (it->cancelled)
		return false;
	return !it->failed || it->retry || it->refused || it->noop;
}

static bool batch_settled(const struct batch *b)
{
	for (size_t i = 0; i < b->n; i++)
		if (b->items[i]->kind != IT_REPAIR && !item_settled(b->items[i]))
			return false;
	return true;
}

/* One item's outcome into the entry; returns the deletes it executed (they
 * count against the threshold's window). */
static size_t commit_item(struct session *s, struct state_batch *sb, struct item *it, bool decision)
{
	size_t deleted = 0;

	if (it->n_held > 0)
		settle_held(s, sb, it, decision);
	if (it->kind == IT_STAGE) {
		/* the newest intent for the object is a delete, held: an older
		 * retry must not write it again */
		del_existing(s->e, sb, OBJECT_KEY_RETRY, it->anchor);
		strmap_del(&s->retry_due, it->anchor);
	} else if (it->kind != IT_UNSTAGE) {
		settle(s, sb, it);
	}
	if (it->type == OBJECT_GROUP)
		bisect_commit(s, sb, it); /* its failed members ("f:<group>#<member>") */
	if (it->failed)
		return 0;
	switch (it->kind) {
	case IT_UPSERT:
	case IT_MEMBERS:
		if (it->op.action == TARGET_MEMBERS && it->op.status == 0 && !decision)
			deleted += it->n_rm_ids; /* member removals count too */
		if (it->write_rec)
			put_object(sb, OBJECT_KEY_OBJECT, it->anchor, &it->rec);
		break;
	case IT_DELETE:
		if (!decision)
			deleted++;
		del_key(sb, OBJECT_KEY_OBJECT, it->anchor);
		del_key(sb, OBJECT_KEY_STAGED, it->anchor); /* an approved staged delete */
		break;
	case IT_UNSTAGE:
		del_key(sb, OBJECT_KEY_STAGED, it->anchor);
		break;
	case IT_DISABLE:
		if (it->op.action != TARGET_DISABLE)
			break;
		if (!decision)
			deleted++;
		/* Keep the record with a hash no mapping produces: when the
		 * user is back in scope it is written again in full. */
		it->old.hash = 0;
		put_object(sb, OBJECT_KEY_OBJECT, it->anchor, &it->old);
		del_key(sb, OBJECT_KEY_STAGED, it->anchor);
		break;
	case IT_STAGE:
		if (it->has_old)
			put_object(sb, OBJECT_KEY_STAGED, it->anchor, &it->old);
		break;
	case IT_REPAIR:
		break;
	}
	return deleted;
}

static void on_committed(void *arg, int status);

/*
 * Pipelining the fence (docs/architecture.md, "Intents"): the intents of the
 * changes already queued behind this batch -- the ones the next batch takes,
 * at most batch_max -- ride in this batch's own entry, after its own intents
 * are removed. When the next batch is planned (after this entry applied),
 * commit_intents() finds them committed and its requests go out without an
 * intent round of their own: one Raft entry per batch instead of two while
 * changes keep coming. Only entries and deletes outside a refresh, whose
 * anchor and type are known before planning (each becomes an item of the
 * next batch, or its intent is removed by that batch's commit: settle_pre_
 * intents); an earlier leader's in-doubt objects keep their own intent
 * (intent_type). An intent whose change is never planned (the session ends
 * first) is what an intent of a batch that never committed is: the next
 * leader repairs the object (repair.c).
 */
static void pre_intend(struct session *s, struct state_batch *sb)
{
	bool refreshing[3] = {s->plan.refreshing[0], s->plan.refreshing[1], s->plan.refreshing[2]};
	size_t max = session_batch_max(s->e), n = 0;
	char key[KEY_MAX], val[40];

	for (struct qnode *q = s->head; q != NULL && n < max; q = q->next, n++) {
		const struct source_event *ev = q->ev;
		enum object_type t = ev->type == OBJECT_GROUP ? OBJECT_GROUP : OBJECT_USER;
		size_t klen;
		int vl;

		if (ev->kind == SOURCE_REFRESH_BEGIN)
			refreshing[t] = true;
		else if (ev->kind == SOURCE_REFRESH_END)
			refreshing[t] = false;
		if ((ev->kind != SOURCE_ENTRY && ev->kind != SOURCE_DELETE) || ev->anchor == NULL || refreshing[t] ||
		    strmap_has(&s->in_doubt, ev->anchor))
			continue;
		vl = snprintf(val, sizeof val, "%llu %s", (unsigned long long)s->term,
			      t == OBJECT_GROUP ? "group" : "user");
		klen = object_key(OBJECT_KEY_INTENT, ev->anchor, key, sizeof key);
		state_batch_put(sb, key, klen, val, (size_t)vl);
		q->pre_intended = true;
	}
}

/* Intents an earlier batch's entry carried for this batch's events that
 * planned no write (an unmappable entry, a delete of an object never
 * exported, a delete staged over the threshold): the loop over the items in
 * commit_batch() does not remove those, so remove them here. */
static void settle_pre_intents(struct session *s, struct state_batch *sb)
{
	struct batch *b = s->batch;

	for (size_t i = 0; i < b->n_pre_intents; i++) {
		const char *a = b->pre_intents[i];
		const struct item *it = strmap_get(&b->by_anchor, a);
		if ((it == NULL || it->kind == IT_STAGE || it->kind == IT_UNSTAGE) && !strmap_has(&s->in_doubt, a))
			del_existing(s->e, sb, OBJECT_KEY_INTENT, a);
	}
}

/*
 * The cluster-wide figures ("s:sync", sync/state/figures.h) continued from
 * the committed record with this batch's outcome, in the same entry: every
 * node applies the same totals and timestamps (this leader's clock), and the
 * next leader continues from them. Objects are the items the target
 * acknowledged a write of; target writes and errors are what this engine
 * counted since its last committed record (errors include batches that had to
 * start over, which commit nothing themselves).
 */
static void put_figures(struct session *s, struct state_batch *sb, bool sets_cursor)
{
	struct engine *e = s->e;
	struct batch *b = s->batch;
	struct sync_figures f;
	uint64_t objects = 0, now = engine_unix_ms();
	const void *cur;
	size_t cur_len;
	bool moved = false;

	for (size_t i = 0; i < b->n; i++)
		if (b->items[i]->written && !b->items[i]->cancelled && b->items[i]->kind != IT_REPAIR)
			objects++;
	if (sets_cursor) {
		cur = state_cursor(e->state, &cur_len);
		moved = cur == NULL || cur_len != b->cursor_len || memcmp(cur, b->cursor, cur_len) != 0;
	}
	b->fig_ops = e->st.exported_total - e->figures_ops;
	b->fig_errors = e->st.errors_total - e->figures_errors;
	b->fig_skipped = e->st.skipped_total - e->figures_skipped;
	(void)figures_get(e->state, &f); /* none yet (or unreadable): start from zero */
	figures_add(&f, now, objects, b->fig_ops, b->fig_errors, moved);
	f.skipped += b->fig_skipped;
	if (b->first_event)
		f.lag_ms = uv_now(e->loop) - b->first_event;
	if (b->fig_ops > 0 && e->last_write_ms != 0)
		f.last_export_ms = e->last_write_ms;
	figures_put(sb, &f);
}

void commit_batch(struct session *s)
{
	struct engine *e = s->e;
	struct batch *b = s->batch;
	bool decision = b->kind == BATCH_DECISION, cancelled = false, settled = batch_settled(b);
	struct state_batch sb;
	size_t deleted = 0;
	int rv;

	assert(b->phase == PH_DELETE && b->outstanding == 0);
	b->t_commit = batch_stage_done(b, EXPORT_STAGE_TARGET, b->t_target);
	state_batch_init(&sb);
	for (size_t i = 0; i < b->n; i++) {
		struct item *it = b->items[i];
		if (it->kind != IT_STAGE && it->kind != IT_UNSTAGE && it->kind != IT_REPAIR &&
		    strmap_has(&s->in_doubt, it->anchor)) {
			/* An earlier leader's write of this object may still land
			 * (or landed after its last commit): only the in-doubt
			 * repair settles that, and it may be a later leader's if
			 * this one loses its lease first. Keep the intent, typed
			 * as the earlier one was. (The chaos scenario `loss` lost
			 * a delete this way: a create of term 2 landed, term 3
			 * planned the object's delete without a record -- nothing
			 * to send -- and committed the intent away.) */
			char val[40];
			int vl = intent_value(s, it, val, sizeof val);
			char key[KEY_MAX];
			size_t klen = object_key(OBJECT_KEY_INTENT, it->anchor, key, sizeof key);
			state_batch_put(&sb, key, klen, val, (size_t)vl);
		} else if (it->kind != IT_STAGE && it->kind != IT_UNSTAGE)
			/* the intent is settled: written, refused, or (cancelled)
			 * left to the cursor, which does not move past it */
			del_key(&sb, OBJECT_KEY_INTENT, it->anchor);
		if (it->kind == IT_REPAIR) {
			if (it->has_old) { /* forget its content: the refresh writes it again */
				it->old.hash = 0;
				/* and a group's members: the old leader may have
				 * changed them too; the next member write makes the
				 * target's list exact (plan_group_members) */
				if (it->old.type == OBJECT_GROUP)
					it->old.members_in_doubt = true;
				put_object(&sb, OBJECT_KEY_OBJECT, it->anchor, &it->old);
			} else if (it->type == OBJECT_USER || it->type == OBJECT_GROUP) {
				/* No record: its create may have landed after the old
				 * leader lost its lease. Record it as exported under an
				 * unknown id: the refresh that follows either reports
				 * it (an upsert, which finds it by externalId or
				 * creates it) or not (a delete, which looks it up by
				 * externalId and deletes what it finds). Without this,
				 * a late create of an object that left the directory
				 * stayed in the target for good. */
				struct object_record ghost = {.type = it->type,
							      .members_in_doubt = it->type == OBJECT_GROUP};
				put_object(&sb, OBJECT_KEY_OBJECT, it->anchor, &ghost);
			}
			continue;
		}
		if (it->cancelled) {
			cancelled = true;
			continue;
		}
		deleted += commit_item(s, &sb, it, decision);
	}
	/* Deletes executed outside an operator's approval count against the
	 * threshold over the window, on whichever node leads next too. */
	if (deleted > 0) {
		static const char wkey[] = {OBJECT_KEY_WINDOW, ':'};
		char *rec = NULL;
		protect_window(e, deleted, &rec);
		state_batch_put(&sb, wkey, sizeof wkey, rec, strlen(rec));
		free(rec);
	}
	retryset_recompute(s);
	/* Invariant 1: the cursor moves only when every change before it was
	 * answered by the target or recorded above (retry set, failed objects);
	 * a cancelled operation was neither. */
	assert(settled == !cancelled);
	(void)cancelled;
	if (settled && b->cursor)
		state_batch_cursor(&sb, b->cursor, b->cursor_len);
	settle_pre_intents(s, &sb);
	if (sb.n_ops > 0) {
		put_figures(s, &sb, settled && b->cursor);
		pre_intend(s, &sb); /* after this batch's own intents are removed */
	}
	if (sb.n_ops == 0) {
		uint64_t now = uv_hrtime();
		for (size_t i = 0; i < b->n_ev; i++)
			export_stage_observe(EXPORT_STAGE_TOTAL,
					     now > b->ev_received_ns[i] ? now - b->ev_received_ns[i] : 0, 1);
		state_batch_close(&sb);
		b->committed = true; /* nothing to record */
		batch_free(b);
		s->batch = NULL;
		session_pump(s);
		return;
	}
	b->phase = PH_COMMIT;
	rv = e->log->propose(e->log, &sb, on_committed, s);
	state_batch_close(&sb);
	if (rv != 0) {
		/* Not leader any more, or the entry could not be proposed: the
		 * events of this batch are consumed, so this session must not go
		 * on (a later commit would carry the cursor past them). Start over
		 * from the last committed cursor -- or let the next leader. */
		e->st.errors_total++;
		batch_free(b);
		s->batch = NULL;
		session_restart(e, "could not propose the batch's commit");
	}
}

/* ---- after the commit --------------------------------------------------------------------- */

static void log_scope_change(struct session *s)
{
	struct engine *e = s->e;
	struct provlog_entry le = {
		.cycle = e->st.cycle, .node = e->cfg.node_id, .term = s->term, .type = "user",
		.action = "scope-change", .result = "ok", .dn = e->cfg.user_member_of,
	};

	provlog_write(&e->provlog, &le);
}

static void log_repair(struct session *s, const struct batch *b)
{
	struct engine *e = s->e;
	struct provlog_entry le = {
		.cycle = b->cycle, .node = e->cfg.node_id, .term = s->term,
		.action = "in-doubt-repair", .result = "ok",
		.error = "objects an earlier leader may have written after its last commit: "
			 "reading them again from the source (by DN, else in full) and rewriting them",
		.http_status = (long)b->n,
	};

	provlog_write(&e->provlog, &le);
}

/* Group-based scoping: a committed change of a group may change the users in
 * scope; those that entered or left are then read or deleted. */
static void after_groups_changed(struct session *s, const struct batch *b)
{
	struct strmap before;
	bool groups_changed = false;

	for (size_t i = 0; i < b->n; i++)
		if (b->items[i]->type == OBJECT_GROUP && b->items[i]->write_rec)
			groups_changed = true;
	if (!groups_changed)
		return;
	if (scope_compute(&s->plan, &before) && s->src != NULL) {
		log_scope_change(s);
		/* the users that entered read by DN, those that left deleted
		 * from their records: not a full read of the users (reread.c) */
		reread_scope(s, &before);
	}
	strmap_clear(&before);
}

static void on_committed(void *arg, int status)
{
	struct session *s = arg;
	struct engine *e = s->e;
	struct batch *b = s->batch;

	if (batch_orphaned(s, b))
		return;
	assert(b->phase == PH_COMMIT);
	s->batch = NULL;
	if (status == 0 && s->plan.scope_on)
		after_groups_changed(s, b);
	if (status == 0 && b->kind == BATCH_REPAIR && s->src) {
		log_repair(s, b);
		strmap_clear(&s->in_doubt);
		repair_read(s, b);
	}
	if (status == 0) {
		uint64_t now = batch_stage_done(b, EXPORT_STAGE_COMMIT, b->t_commit);
		for (size_t i = 0; i < b->n_ev; i++)
			export_stage_observe(EXPORT_STAGE_TOTAL,
					     now > b->ev_received_ns[i] ? now - b->ev_received_ns[i] : 0, 1);
		e->st.batches_total++;
		e->figures_ops += b->fig_ops;
		e->figures_errors += b->fig_errors;
		e->figures_skipped += b->fig_skipped;
		if (b->first_event)
			e->st.export_lag_ms = uv_now(e->loop) - b->first_event;
		/* Groups that still wait for members: index them. */
		for (size_t i = 0; i < b->n; i++) {
			struct item *it = b->items[i];
			if (it->type == OBJECT_USER && !it->cancelled && it->kind != IT_REPAIR) {
				/* users' managers as committed (manager.c) */
				if (it->kind == IT_DELETE && !it->failed)
					manager_index(&s->plan, it->anchor, it->has_old ? &it->old : NULL, NULL);
				else if (!it->failed && it->write_rec)
					manager_index(&s->plan, it->anchor, it->has_old ? &it->old : NULL, &it->rec);
			}
			if (it->type == OBJECT_GROUP && !it->failed && !it->cancelled && it->rec.n_unresolved)
				planner_index_unresolved(&s->plan, it->anchor, it->rec.unresolved,
							 it->rec.n_unresolved);
		}
	}
	b->committed = status == 0;
	batch_free(b);
	if (status == 0) {
		e->relead_ms = 0; /* commits go through again */
		session_pump(s);
	} else {
		/* The batch's events are consumed but not committed: never go on
		 * past them (the cursor would skip them). */
		session_restart(e, "the batch's commit failed");
	}
}
