/*
 * sync/engine.c -- the sync engine (see engine.h for the flow and the rules).
 */
#include "sync/engine.h"

#include <assert.h>
#include <ctype.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "raft/peek.h"
#include "sync/hash.h"
#include "sync/state/object.h"

#define KEY_MAX 600

enum item_kind {
	IT_UPSERT,       /* create/update (users, groups); groups then check members */
	IT_MEMBERS,      /* a group not in the batch whose unresolved members may now resolve */
	IT_DELETE,       /* delete in the target, then forget */
	IT_DISABLE,      /* users with safety.deprovision=disable: PATCH active=false, keep the record */
	IT_STAGE,        /* record a staged delete ("d:" key), touch nothing */
	IT_UNSTAGE,      /* a rejected staged delete: drop the "d:" key, keep the object */
	IT_REPAIR,       /* in doubt after a failover: forget its content hash, so the full
			  * refresh that follows writes it again */
};

struct item {
	enum item_kind kind;
	enum object_type type;
	char *anchor, *dn;
	json_t *resource;       /* IT_UPSERT */
	uint64_t hash;
	char **member_dns;      /* IT_UPSERT of a group: the source's member DNs */
	size_t n_member_dns;
	bool has_old;
	struct object_record old;
	struct object_record rec; /* what to commit */
	bool write_rec;         /* commit rec under "o:" */
	bool upsert_needed;
	bool failed;            /* skip this object; cursor still advances */
	bool cancelled;
	uint64_t change;
	struct scim_op op;
	json_t *add, *remove;   /* IT_MEMBERS / group upserts: member target ids */
	char **add_anchors;     /* anchors matching `add`, for the record */
	size_t n_add_anchors;
	struct session *s;
};

enum phase { PH_PLAN, PH_INTENT, PH_UPSERT, PH_MEMBERS, PH_DELETE, PH_COMMIT };

struct batch {
	struct item **items;
	size_t n, cap;
	struct strmap by_anchor; /* anchor -> item (borrowed) */
	void *cursor;
	size_t cursor_len;
	enum phase phase;
	unsigned outstanding;
	uint64_t cycle;
	bool orphan;            /* its session ended while the commit was in flight */
	bool rewind;            /* the lease ran out mid-batch: redo it from the start */
	bool decision;          /* an approve/reject batch */
	bool repair;            /* the in-doubt repair batch */
	uint64_t first_event;   /* uv_now of its oldest event (export lag) */
};

struct qnode {
	struct source_event *ev;
	uint64_t received; /* uv_now when it reached the engine */
	struct qnode *next;
};

struct session {
	struct engine *e;
	struct ldap_source *src;
	struct scim_target *tgt;
	struct qnode *head, *tail;
	size_t queued;
	bool refreshing[3];
	struct strmap seen[3];     /* anchors reported during the refresh of each type */
	struct strmap refresh_deletes[3]; /* per type: anchors reported deleted in its refresh */
	struct strmap dn_index;    /* normalized DN -> strdup(anchor) */
	struct strmap unresolved;  /* normalized member DN -> strmap* of group anchors */
	struct batch *batch;
	uv_timer_t retry;
	uv_timer_t lease;          /* watches the write lease while requests are in flight */
	bool stopping;
	int open;                  /* things to wait for before freeing: src, tgt, timer */
	int pending_decision;      /* 0 none, 1 approve, 2 reject */
	time_t *delete_times;      /* ring of recent executed-delete times (window) */
	size_t n_delete_times, delete_times_head;
	uint64_t term;
	bool source_connected;
	char source_message[256];
	bool paused;               /* source paused: our own queue is full */
	struct strmap in_doubt;    /* anchors with an intent of an earlier leader, see engine_lead */
	uv_timer_t repair_timer;
	bool repair_due;
	struct strmap scope;       /* group-based scoping: normalized user DNs in scope */
	uint64_t scope_digest;     /* of `scope`, to notice changes */
	bool scope_on;
};

struct engine {
	uv_loop_t *loop;
	struct node *node;
	struct state *state;
	struct engine_config cfg;
	char **attrs;              /* source attributes requested */
	size_t n_attrs;
	struct provlog log;
	struct session *s;
	uint64_t change_seq, cycle_seq;
	struct engine_stats st;
	bool closing;
	void (*close_done)(void *);
	void *close_data;
	int sessions;   /* sessions alive, including ones still shutting down */
};

static void pump(struct session *s);
static void session_end(struct session *s);

/* ---- small helpers --------------------------------------------------------- */

/* DNs compare case-insensitively and without spaces around separators
 * (RFC 4514 §2 allows both spellings of the same name). */
static void dn_norm(const char *dn, char *out, size_t size)
{
	size_t o = 0;
	const char *p;
	for (p = dn; *p && o + 1 < size; p++) {
		if (*p == ' ' && (o == 0 || out[o - 1] == ',' || out[o - 1] == '=' || p[1] == ',' ||
				  p[1] == '='))
			continue;
		out[o++] = (char)tolower((unsigned char)*p);
	}
	out[o] = '\0';
}

/* Is `dn` in an excluded subtree of its scope? */
static bool excluded(const struct engine *e, enum object_type type, const char *dn)
{
	const char *const *ex = type == OBJECT_GROUP ? e->cfg.group_exclude : e->cfg.user_exclude;
	size_t n = type == OBJECT_GROUP ? e->cfg.n_group_exclude : e->cfg.n_user_exclude, i, dl, sl;
	char nd[1024], ns[1024];

	if (dn == NULL || n == 0)
		return false;
	dn_norm(dn, nd, sizeof nd);
	dl = strlen(nd);
	for (i = 0; i < n; i++) {
		dn_norm(ex[i], ns, sizeof ns);
		sl = strlen(ns);
		if (dl >= sl && strcmp(nd + dl - sl, ns) == 0 && (dl == sl || nd[dl - sl - 1] == ','))
			return true;
	}
	return false;
}

static bool get_record(struct engine *e, char prefix, const char *anchor,
		       struct object_record *r);


/* Walk a group's members (as exported + unresolved DNs), nested groups
 * followed once each, collecting user DNs. */
static void scope_walk(struct session *s, const char *group_anchor, struct strmap *visited)
{
	struct object_record g, m;
	char norm[1024];
	size_t i;

	if (strmap_has(visited, group_anchor) || !get_record(s->e, OBJECT_KEY_OBJECT, group_anchor, &g))
		return;
	strmap_put(visited, group_anchor, (void *)1);
	for (i = 0; i < g.n_members; i++) {
		if (!get_record(s->e, OBJECT_KEY_OBJECT, g.members[i], &m))
			continue;
		if (m.type == OBJECT_GROUP) {
			scope_walk(s, g.members[i], visited);
		} else if (m.dn) {
			dn_norm(m.dn, norm, sizeof norm);
			if (!strmap_has(&s->scope, norm)) {
				strmap_put(&s->scope, norm, (void *)1);
				s->scope_digest ^= hash_str(norm);
			}
		}
		object_record_free(&m);
	}
	for (i = 0; i < g.n_unresolved; i++) {
		/* not exported: an out-of-scope user (or a group outside the groups scope) */
		dn_norm(g.unresolved[i], norm, sizeof norm);
		if (!strmap_has(&s->scope, norm)) {
			strmap_put(&s->scope, norm, (void *)1);
			s->scope_digest ^= hash_str(norm);
		}
	}
	object_record_free(&g);
}

/* Recompute the users in scope; returns true when the set changed. */
static bool scope_compute(struct session *s)
{
	uint64_t before = s->scope_digest;
	size_t n_before = s->scope.count;
	struct strmap visited;
	char norm[1024];
	const char *anchor;

	strmap_clear(&s->scope);
	s->scope_digest = 0;
	dn_norm(s->e->cfg.user_member_of, norm, sizeof norm);
	anchor = strmap_get(&s->dn_index, norm);
	if (anchor != NULL) {
		strmap_init(&visited, NULL);
		scope_walk(s, anchor, &visited);
		strmap_clear(&visited);
	}
	return s->scope_digest != before || s->scope.count != n_before;
}

static bool in_scope(const struct session *s, enum object_type type, const char *dn)
{
	char norm[1024];
	if (excluded(s->e, type, dn))
		return false;
	if (type != OBJECT_USER || !s->scope_on)
		return true;
	if (dn == NULL)
		return false;
	dn_norm(dn, norm, sizeof norm);
	return strmap_has(&s->scope, norm);
}

static bool get_record(struct engine *e, char prefix, const char *anchor,
		       struct object_record *r)
{
	char key[KEY_MAX], err[128];
	const void *v;
	size_t klen = object_key(prefix, anchor, key, sizeof key), vlen;
	if (!state_get(e->state, key, klen, &v, &vlen))
		return false;
	return object_record_decode(v, vlen, r, err, sizeof err) == 0;
}

static char **strv_dup(char *const *v, size_t n)
{
	char **d = calloc(n + 1, sizeof *d);
	size_t i;
	if (d == NULL)
		return NULL;
	for (i = 0; i < n; i++)
		d[i] = strdup(v[i]);
	return d;
}

static void strv_free(char **v, size_t n)
{
	size_t i;
	if (v == NULL)
		return;
	for (i = 0; i < n; i++)
		free(v[i]);
	free(v);
}

static uint64_t term_of(struct engine *e)
{
	return peek_term(&e->node->raft);
}

static void log_op(struct engine *e, struct item *it, const char *action, const char *result,
		   const char *error)
{
	struct provlog_entry le = {
		.cycle = e->st.cycle,
		.change = it->change,
		.node = e->cfg.node_id,
		.term = it->s ? it->s->term : term_of(e),
		.anchor = it->anchor,
		.dn = it->dn,
		.type = object_type_name(it->type),
		.action = action,
		.result = result,
		.target_id = it->op.result_id[0] ? it->op.result_id : it->rec.target_id,
		.error = error,
		.http_status = it->op.http_status,
		.duration_ms = it->op.duration_ms,
	};
	provlog_write(&e->log, &le);
}

/* ---- items and batches ---------------------------------------------------- */

static void item_free(struct item *it)
{
	free(it->anchor);
	free(it->dn);
	json_decref(it->resource);
	strv_free(it->member_dns, it->n_member_dns);
	object_record_free(&it->old);
	object_record_free(&it->rec);
	json_decref(it->add);
	json_decref(it->remove);
	strv_free(it->add_anchors, it->n_add_anchors);
	free(it);
}

static struct batch *batch_new(uint64_t cycle)
{
	struct batch *b = calloc(1, sizeof *b);
	if (b == NULL)
		return NULL;
	strmap_init(&b->by_anchor, NULL);
	b->cycle = cycle;
	return b;
}

static void batch_free(struct batch *b)
{
	size_t i;
	if (b == NULL)
		return;
	for (i = 0; i < b->n; i++)
		item_free(b->items[i]);
	free(b->items);
	strmap_clear(&b->by_anchor);
	free(b->cursor);
	free(b);
}

/* Drop what an item planned, keeping its identity and the record it started from. */
static void item_reset(struct item *it)
{
	free(it->dn);
	json_decref(it->resource);
	strv_free(it->member_dns, it->n_member_dns);
	object_record_free(&it->rec);
	json_decref(it->add);
	json_decref(it->remove);
	strv_free(it->add_anchors, it->n_add_anchors);
	it->dn = NULL;
	it->resource = it->add = it->remove = NULL;
	it->member_dns = it->add_anchors = NULL;
	it->n_member_dns = it->n_add_anchors = 0;
	it->write_rec = it->upsert_needed = it->failed = it->cancelled = false;
	memset(&it->op, 0, sizeof it->op);
}

static struct item *batch_add(struct session *s, struct batch *b, enum item_kind kind,
			      enum object_type type, const char *anchor)
{
	struct item *it = strmap_get(&b->by_anchor, anchor);

	if (it != NULL) {
		/* A later event for the same object supersedes the earlier one. */
		item_reset(it);
	} else {
		if (b->n == b->cap) {
			size_t cap = b->cap ? b->cap * 2 : 64;
			struct item **items = realloc(b->items, cap * sizeof *items);
			if (items == NULL)
				return NULL;
			b->items = items;
			b->cap = cap;
		}
		it = calloc(1, sizeof *it);
		if (it == NULL || (it->anchor = strdup(anchor)) == NULL ||
		    strmap_put(&b->by_anchor, it->anchor, it) != 0) {
			if (it)
				free(it->anchor);
			free(it);
			return NULL;
		}
		b->items[b->n++] = it;
		it->has_old = get_record(s->e, OBJECT_KEY_OBJECT, anchor, &it->old);
	}
	it->kind = kind;
	it->type = type;
	it->s = s;
	it->change = ++s->e->change_seq;
	return it;
}

/* ---- planning ------------------------------------------------------------- */

static void plan_entry(struct session *s, struct batch *b, struct source_event *ev)
{
	struct engine *e = s->e;
	const struct mapping *m = ev->type == OBJECT_GROUP ? e->cfg.group_map : e->cfg.user_map;
	struct item *it;
	char err[512];
	json_t *res = NULL;
	size_t i, j;

	if (m == NULL)
		return;
	it = batch_add(s, b, IT_UPSERT, ev->type, ev->anchor);
	if (it == NULL)
		return;
	it->dn = ev->dn ? strdup(ev->dn) : NULL;
	if (mapping_apply(m, ev->anchor, ev->attrs, ev->n_attrs, &res, err, sizeof err) != 0) {
		/* Invalid entry: skip the object with a provisioning-log entry, go on. */
		it->failed = true;
		e->st.errors_total++;
		e->st.skipped_total++;
		log_op(e, it, "skip", "error", err);
		return;
	}
	/* With deprovision=disable a user may have been disabled by canopy:
	 * bringing it back into scope must enable it again. */
	if (ev->type == OBJECT_USER && e->cfg.disable_users && json_object_get(res, "active") == NULL)
		json_object_set_new(res, "active", json_true());
	it->resource = res;
	it->hash = mapping_hash(res);
	it->upsert_needed = !it->has_old || it->old.hash != it->hash || it->old.target_id == NULL;
	if (ev->type == OBJECT_GROUP) {
		const char *ma = e->cfg.member_attr ? e->cfg.member_attr : "member";
		for (i = 0; i < ev->n_attrs; i++)
			if (strcasecmp(ev->attrs[i].name, ma) == 0) {
				it->member_dns = calloc(ev->attrs[i].n_values + 1, sizeof(char *));
				for (j = 0; j < ev->attrs[i].n_values; j++)
					it->member_dns[j] = strdup(ev->attrs[i].values[j]);
				it->n_member_dns = ev->attrs[i].n_values;
			}
	}
}

/*
 * Deprovision `anchor`, reported gone by the session of `type`. Only an
 * object of that type is touched: slapd's session log reports, to each
 * session, every entry changed since its cookie that it no longer matches --
 * so the groups session names changed *users* as "deleted" (seen on resume
 * and on failover; before this check a new leader deleted users).
 */
static void plan_delete(struct session *s, struct batch *b, const char *anchor, bool stage,
			enum object_type type)
{
	struct item *it;
	struct object_record old;

	if (get_record(s->e, OBJECT_KEY_OBJECT, anchor, &old)) {
		bool other = old.type != type;
		object_record_free(&old);
		if (other)
			return;
	} else {
		/* Not exported (never in scope, or already gone): nothing to do,
		 * unless an upsert earlier in this batch created it. */
		it = strmap_get(&b->by_anchor, anchor);
		if (it == NULL || it->type != type)
			return;
	}
	it = batch_add(s, b, stage ? IT_STAGE : IT_DELETE, OBJECT_UNKNOWN, anchor);
	if (it == NULL)
		return;
	if (it->has_old) {
		it->type = it->old.type;
		it->dn = it->old.dn ? strdup(it->old.dn) : NULL;
		if (it->kind == IT_DELETE && it->type == OBJECT_USER && s->e->cfg.disable_users)
			it->kind = IT_DISABLE;
		if (it->kind == IT_DISABLE && it->old.hash == 0)
			it->failed = true; /* disabled already: nothing to do, nothing to commit */
	}
}

static size_t recent_deletes(struct session *s)
{
	time_t now = time(NULL);
	size_t i, n = 0;
	unsigned window = s->e->cfg.delete_window_s ? s->e->cfg.delete_window_s : 300;
	for (i = 0; i < s->n_delete_times; i++)
		if (s->delete_times[i] && now - s->delete_times[i] < (time_t)window)
			n++;
	return n;
}

/* Should `n` more deletes be staged rather than executed? */
static bool must_stage(struct session *s, size_t n)
{
	struct engine *e = s->e;
	uint64_t objects = e->state->by_prefix[(unsigned char)OBJECT_KEY_OBJECT];

	if (n == 0)
		return false;
	if (e->state->by_prefix[(unsigned char)OBJECT_KEY_STAGED] > 0)
		return true; /* once staging, stay staging: keep deletes in order */
	if (recent_deletes(s) + n > e->cfg.delete_threshold)
		return true;
	if (e->cfg.delete_threshold_percent > 0 && objects > 0 &&
	    (recent_deletes(s) + n) * 100 > (uint64_t)e->cfg.delete_threshold_percent * objects)
		return true;
	return false;
}

struct absent_ctx {
	struct session *s;
	enum object_type type;
	struct strmap *out;
};

static int find_absent(void *ctx, const void *key, size_t klen, const void *val, size_t vlen)
{
	struct absent_ctx *a = ctx;
	struct object_record r;
	char anchor[KEY_MAX], err[64];

	if (klen < 3 || klen >= sizeof anchor || ((const char *)key)[0] != OBJECT_KEY_OBJECT)
		return 0;
	memcpy(anchor, (const char *)key + 2, klen - 2);
	anchor[klen - 2] = '\0';
	if (strmap_has(&a->s->seen[a->type], anchor))
		return 0;
	if (object_record_decode(val, vlen, &r, err, sizeof err) != 0)
		return 0;
	if (r.type == a->type)
		strmap_put(a->out, anchor, (void *)1);
	object_record_free(&r);
	return 0;
}

struct plan_del_ctx {
	struct session *s;
	struct batch *b;
	bool stage;
	enum object_type type;
};

static int plan_one_delete(void *ctx, const char *anchor, void *v)
{
	struct plan_del_ctx *p = ctx;
	(void)v;
	plan_delete(p->s, p->b, anchor, p->stage, p->type);
	return 0;
}

/* End of a refresh: explicit deletes plus, after a present phase, every
 * exported object of that type the refresh did not mention (RFC 4533 §3.4). */
static void plan_refresh_end(struct session *s, struct batch *b, struct source_event *ev)
{
	struct strmap *gone = &s->refresh_deletes[ev->type];
	struct absent_ctx a = {s, ev->type, gone};
	struct plan_del_ctx p = {s, b, false, ev->type};

	if (ev->present_phase)
		state_foreach(s->e->state, find_absent, &a);
	p.stage = must_stage(s, gone->count);
	strmap_foreach(gone, plan_one_delete, &p);
	strmap_clear(gone);
	strmap_clear(&s->seen[ev->type]);
	s->refreshing[ev->type] = false;
}

static void take_cursor(struct batch *b, struct source_event *ev)
{
	if (ev->cursor == NULL)
		return;
	free(b->cursor);
	b->cursor = ev->cursor;
	b->cursor_len = ev->cursor_len;
	ev->cursor = NULL;
}

/* Plan one event into the batch. Returns false when the event must wait for
 * the next batch (a refresh end needs everything before it committed). */
static void plan_event(struct session *s, struct batch *b, struct source_event *ev)
{
	enum object_type t = ev->type == OBJECT_GROUP ? OBJECT_GROUP : OBJECT_USER;

	switch (ev->kind) {
	case SOURCE_ENTRY:
		if (!in_scope(s, t, ev->dn)) { /* out of scope: deprovision if exported */
			if (s->refreshing[t])
				strmap_put(&s->refresh_deletes[t], ev->anchor, (void *)1);
			else
				plan_delete(s, b, ev->anchor, must_stage(s, 1), t);
			break;
		}
		if (s->refreshing[t])
			strmap_put(&s->seen[t], ev->anchor, (void *)1);
		plan_entry(s, b, ev);
		break;
	case SOURCE_PRESENT:
		if (s->refreshing[t]) {
			struct object_record r;
			bool out = false;
			/* unchanged, but the scope may have changed under it */
			if ((s->e->cfg.n_user_exclude + s->e->cfg.n_group_exclude > 0 || s->scope_on) &&
			    get_record(s->e, OBJECT_KEY_OBJECT, ev->anchor, &r)) {
				out = !in_scope(s, t, r.dn);
				object_record_free(&r);
			}
			strmap_put(out ? &s->refresh_deletes[t] : &s->seen[t], ev->anchor, (void *)1);
		}
		break;
	case SOURCE_DELETE:
		if (s->refreshing[t])
			strmap_put(&s->refresh_deletes[t], ev->anchor, (void *)1);
		else
			plan_delete(s, b, ev->anchor, must_stage(s, 1), t);
		break;
	case SOURCE_REFRESH_BEGIN:
		/* A new refresh abandons an unfinished one (openldap.h). */
		s->refreshing[t] = true;
		strmap_clear(&s->seen[t]);
		strmap_clear(&s->refresh_deletes[t]);
		break;
	case SOURCE_REFRESH_END:
		plan_refresh_end(s, b, ev);
		break;
	case SOURCE_CURSOR:
		break;
	case SOURCE_STATUS:
		s->source_connected = ev->connected;
		snprintf(s->source_message, sizeof s->source_message, "%s",
			 ev->message ? ev->message : "");
		break;
	}
	take_cursor(b, ev);
}

/* ---- execution ------------------------------------------------------------ */

static void run_phase(struct session *s);
static void batch_rewind(struct session *s);
static int commit_intents(struct session *s);

static void op_done(struct scim_op *op)
{
	struct item *it = op->data;
	struct session *s = it->s;
	struct batch *b = s->batch;

	if (op->status == -ECANCELED)
		it->cancelled = true;
	assert(b->outstanding > 0);
	b->outstanding--;
	if (b->outstanding == 0 && !s->stopping) {
		if (b->rewind)
			batch_rewind(s);
		else
			run_phase(s);
	}
}

static void submit(struct session *s, struct item *it, enum scim_action action)
{
	it->op.action = action;
	it->op.type = it->type;
	it->op.anchor = it->anchor;
	it->op.data = it;
	s->batch->outstanding++;
	if (scim_submit(s->tgt, &it->op, op_done) != 0) {
		it->op.status = -ESHUTDOWN;
		it->cancelled = true;
		s->batch->outstanding--;
	}
}

static void start_upserts(struct session *s)
{
	struct batch *b = s->batch;
	size_t i;

	for (i = 0; i < b->n; i++) {
		struct item *it = b->items[i];
		if (it->kind != IT_UPSERT || it->failed)
			continue;
		if (!it->upsert_needed)
			continue;
		memset(&it->op, 0, sizeof it->op);
		it->op.target_id = it->has_old ? it->old.target_id : NULL;
		it->op.resource = it->resource;
		submit(s, it, SCIM_UPSERT);
	}
}

/* After upserts: the new target ids and DNs are known to this session. */
static void finish_upserts(struct session *s)
{
	struct engine *e = s->e;
	struct batch *b = s->batch;
	char norm[1024];
	size_t i;

	for (i = 0; i < b->n; i++) {
		struct item *it = b->items[i];
		if (it->kind != IT_UPSERT || it->failed || it->cancelled)
			continue;
		object_record_free(&it->rec);
		it->rec.type = it->type;
		it->rec.hash = it->hash;
		it->rec.dn = it->dn ? strdup(it->dn) : NULL;
		if (it->upsert_needed) {
			if (it->op.status != 0) {
				it->failed = true;
				e->st.errors_total++;
				log_op(e, it, it->has_old ? "update" : "create", "error", it->op.error);
				continue;
			}
			it->rec.target_id = strdup(it->op.result_id);
			e->st.exported_total++;
			e->st.last_export_at = time(NULL);
			log_op(e, it, it->op.created ? "create" : "update", "ok", NULL);
		} else {
			it->rec.target_id = strdup(it->old.target_id);
		}
		if (it->type == OBJECT_GROUP && it->has_old) {
			/* members as exported so far; the members step updates them */
			it->rec.members = strv_dup(it->old.members, it->old.n_members);
			it->rec.n_members = it->old.n_members;
		}
		it->write_rec = it->upsert_needed || !it->has_old ||
				(it->dn && (!it->old.dn || strcmp(it->dn, it->old.dn) != 0));
		if (it->has_old && it->old.dn) {
			dn_norm(it->old.dn, norm, sizeof norm);
			strmap_del(&s->dn_index, norm);
		}
		if (it->dn) {
			dn_norm(it->dn, norm, sizeof norm);
			strmap_put(&s->dn_index, norm, strdup(it->anchor));
		}
	}
}

/* The target id of an exported object: from this batch, else the state. */
static char *target_id_of(struct session *s, const char *anchor)
{
	struct item *it = strmap_get(&s->batch->by_anchor, anchor);
	struct object_record r;
	char *id;

	if (it && it->kind == IT_UPSERT && !it->failed && it->rec.target_id)
		return strdup(it->rec.target_id);
	if (it && (it->kind == IT_DELETE || it->kind == IT_STAGE))
		return NULL;
	if (!get_record(s->e, OBJECT_KEY_OBJECT, anchor, &r))
		return NULL;
	id = r.target_id ? strdup(r.target_id) : NULL;
	object_record_free(&r);
	return id;
}

static bool strv_has(char **v, size_t n, const char *s)
{
	size_t i;
	for (i = 0; i < n; i++)
		if (strcmp(v[i], s) == 0)
			return true;
	return false;
}

static void strv_push(char ***v, size_t *n, const char *s)
{
	char **nv = realloc(*v, (*n + 2) * sizeof **v);
	if (nv == NULL)
		return;
	nv[*n] = strdup(s);
	nv[*n + 1] = NULL;
	*v = nv;
	(*n)++;
}

/* Compute desired members of a group item and the PATCH add/remove lists. */
static void plan_members(struct session *s, struct item *it, char **dns, size_t n_dns,
			 bool replace)
{
	char norm[1024], **desired = NULL, **unresolved = NULL;
	size_t n_desired = 0, n_unres = 0, i;

	for (i = 0; i < n_dns; i++) {
		const char *anchor;
		dn_norm(dns[i], norm, sizeof norm);
		anchor = strmap_get(&s->dn_index, norm);
		if (anchor && strcmp(anchor, it->anchor) != 0 && !strv_has(desired, n_desired, anchor))
			strv_push(&desired, &n_desired, anchor);
		else if (anchor == NULL)
			strv_push(&unresolved, &n_unres, dns[i]);
	}
	if (!replace) /* IT_MEMBERS: keep what is exported, add what resolved now */
		for (i = 0; i < it->rec.n_members; i++)
			if (!strv_has(desired, n_desired, it->rec.members[i]))
				strv_push(&desired, &n_desired, it->rec.members[i]);

	it->add = json_array();
	it->remove = json_array();
	for (i = 0; i < n_desired; i++) {
		if (strv_has(it->rec.members, it->rec.n_members, desired[i]))
			continue;
		char *id = target_id_of(s, desired[i]);
		if (id == NULL) { /* not exported (failed or out of scope): not a member yet */
			continue;
		}
		json_array_append_new(it->add, json_string(id));
		strv_push(&it->add_anchors, &it->n_add_anchors, desired[i]);
		free(id);
	}
	for (i = 0; i < it->rec.n_members; i++) {
		if (strv_has(desired, n_desired, it->rec.members[i]))
			continue;
		char *id = target_id_of(s, it->rec.members[i]);
		if (id != NULL)
			json_array_append_new(it->remove, json_string(id));
		/* no id: the member object is gone from the target, and with it
		 * its membership */
	}
	/* The record after a successful PATCH: desired members that have ids. */
	{
		char **keep = NULL;
		size_t n_keep = 0;
		for (i = 0; i < it->rec.n_members; i++)
			if (strv_has(desired, n_desired, it->rec.members[i]))
				strv_push(&keep, &n_keep, it->rec.members[i]);
		for (i = 0; i < it->n_add_anchors; i++)
			strv_push(&keep, &n_keep, it->add_anchors[i]);
		strv_free(it->add_anchors, it->n_add_anchors);
		it->add_anchors = keep;
		it->n_add_anchors = n_keep;
	}
	strv_free(it->rec.unresolved, it->rec.n_unresolved);
	it->rec.unresolved = unresolved;
	it->rec.n_unresolved = n_unres;
	strv_free(desired, n_desired);
}

static void index_unresolved(struct session *s, const char *group, char **dns, size_t n)
{
	char norm[1024];
	size_t i;
	for (i = 0; i < n; i++) {
		struct strmap *g;
		dn_norm(dns[i], norm, sizeof norm);
		g = strmap_get(&s->unresolved, norm);
		if (g == NULL) {
			g = malloc(sizeof *g);
			strmap_init(g, NULL);
			strmap_put(&s->unresolved, norm, g);
		}
		strmap_put(g, group, (void *)1);
	}
}

struct add_groups_ctx {
	struct session *s;
	struct batch *b;
};

static int add_group_for_members(void *ctx, const char *group, void *v)
{
	struct add_groups_ctx *a = ctx;
	struct item *it;
	(void)v;
	if (strmap_has(&a->b->by_anchor, group))
		return 0; /* in the batch already: handled with its own members */
	it = batch_add(a->s, a->b, IT_MEMBERS, OBJECT_GROUP, group);
	if (it == NULL || !it->has_old) {
		if (it)
			it->failed = true;
		return 0;
	}
	it->dn = it->old.dn ? strdup(it->old.dn) : NULL;
	object_record_copy(&it->rec, &it->old);
	return 0;
}

static void start_members(struct session *s)
{
	struct batch *b = s->batch;
	struct add_groups_ctx ctx = {s, b};
	char norm[1024];
	size_t i, n = b->n;

	/* Groups outside the batch waiting for a member that exists now. */
	for (i = 0; i < n; i++) {
		struct item *it = b->items[i];
		struct strmap *g;
		if (it->kind != IT_UPSERT || it->failed || it->cancelled || !it->dn)
			continue;
		dn_norm(it->dn, norm, sizeof norm);
		g = strmap_get(&s->unresolved, norm);
		if (g)
			strmap_foreach(g, add_group_for_members, &ctx);
	}
	for (i = 0; i < b->n; i++) {
		struct item *it = b->items[i];
		if (it->type != OBJECT_GROUP || it->failed || it->cancelled)
			continue;
		if (it->kind == IT_UPSERT)
			plan_members(s, it, it->member_dns, it->n_member_dns, true);
		else if (it->kind == IT_MEMBERS)
			plan_members(s, it, it->rec.unresolved, it->rec.n_unresolved, false);
		else
			continue;
		if (json_array_size(it->add) == 0 && json_array_size(it->remove) == 0) {
			/* nothing to PATCH; the record still changes if unresolved did */
			strv_free(it->rec.members, it->rec.n_members);
			it->rec.members = it->add_anchors;
			it->rec.n_members = it->n_add_anchors;
			it->add_anchors = NULL;
			it->n_add_anchors = 0;
			it->write_rec = true;
			continue;
		}
		memset(&it->op, 0, sizeof it->op);
		it->op.target_id = it->rec.target_id;
		it->op.add = it->add;
		it->op.remove = it->remove;
		submit(s, it, SCIM_MEMBERS);
	}
}

static void finish_members(struct session *s)
{
	struct engine *e = s->e;
	struct batch *b = s->batch;
	size_t i;

	for (i = 0; i < b->n; i++) {
		struct item *it = b->items[i];
		if (it->type != OBJECT_GROUP || it->failed || it->cancelled || it->add == NULL ||
		    it->op.action != SCIM_MEMBERS)
			continue;
		if (it->op.status != 0) {
			/* The group exists; its members stay as recorded, so the next
			 * change of the group retries the difference. */
			e->st.errors_total++;
			log_op(e, it, "members", "error", it->op.error);
			continue;
		}
		strv_free(it->rec.members, it->rec.n_members);
		it->rec.members = it->add_anchors;
		it->rec.n_members = it->n_add_anchors;
		it->add_anchors = NULL;
		it->n_add_anchors = 0;
		it->write_rec = true;
		e->st.exported_total++;
		e->st.last_export_at = time(NULL);
		log_op(e, it, "members", "ok", NULL);
	}
}

static void start_deletes(struct session *s)
{
	struct batch *b = s->batch;
	size_t i;

	for (i = 0; i < b->n; i++) {
		struct item *it = b->items[i];
		if (it->kind == IT_STAGE) {
			log_op(s->e, it, "staged-delete", "ok", NULL);
			continue;
		}
		if (it->kind == IT_DISABLE && !it->failed && it->has_old && it->old.target_id) {
			memset(&it->op, 0, sizeof it->op);
			json_decref(it->resource);
			it->resource = json_pack("{s:[s],s:s,s:b}", "schemas", SCIM_SCHEMA_USER,
						 "externalId", it->anchor, "active", 0);
			it->op.target_id = it->old.target_id;
			it->op.resource = it->resource;
			it->op.patch = true;
			submit(s, it, SCIM_UPSERT);
			continue;
		}
		if (it->kind != IT_DELETE || it->failed)
			continue;
		memset(&it->op, 0, sizeof it->op);
		it->op.target_id = it->has_old ? it->old.target_id : NULL;
		submit(s, it, SCIM_DELETE);
	}
}

static void finish_deletes(struct session *s)
{
	struct engine *e = s->e;
	struct batch *b = s->batch;
	char norm[1024];
	size_t i;

	for (i = 0; i < b->n; i++) {
		struct item *it = b->items[i];
		if ((it->kind != IT_DELETE && it->kind != IT_DISABLE) || it->failed || it->cancelled)
			continue;
		if (it->kind == IT_DISABLE && it->op.action != SCIM_UPSERT)
			continue; /* nothing was sent (no target id) */
		if (it->op.status != 0) {
			it->failed = true;
			e->st.errors_total++;
			log_op(e, it, it->kind == IT_DISABLE ? "disable" : "delete", "error", it->op.error);
			continue;
		}
		e->st.exported_total++;
		e->st.last_export_at = time(NULL);
		/* Deletes an operator approved do not count against the threshold. */
		if (s->delete_times && !b->decision) {
			s->delete_times[s->delete_times_head] = time(NULL);
			s->delete_times_head = (s->delete_times_head + 1) % s->n_delete_times;
		}
		log_op(e, it, it->kind == IT_DISABLE ? "disable" : "delete", "ok", NULL);
		if (it->kind == IT_DISABLE)
			continue; /* still exported: keep its DN */
		if (it->dn) {
			dn_norm(it->dn, norm, sizeof norm);
			strmap_del(&s->dn_index, norm);
		}
	}
}

static void on_committed(void *arg, int status);

static void commit(struct session *s)
{
	struct engine *e = s->e;
	struct batch *b = s->batch;
	struct state_batch sb;
	struct raft_buffer buf;
	char key[KEY_MAX], *val;
	size_t i, klen, vlen;
	bool cancelled = false;
	int rv;

	state_batch_init(&sb);
	for (i = 0; i < b->n; i++) {
		struct item *it = b->items[i];
		if (it->kind != IT_STAGE && it->kind != IT_UNSTAGE) {
			/* the intent is settled: written, refused, or (cancelled)
			 * left to the cursor, which does not move past it */
			klen = object_key(OBJECT_KEY_INTENT, it->anchor, key, sizeof key);
			state_batch_del(&sb, key, klen);
		}
		if (it->kind == IT_REPAIR && it->has_old) {
			it->old.hash = 0;
			klen = object_key(OBJECT_KEY_OBJECT, it->anchor, key, sizeof key);
			if (object_record_encode(&it->old, &val, &vlen) == 0) {
				state_batch_put(&sb, key, klen, val, vlen);
				free(val);
			}
			continue;
		}
		if (it->cancelled) {
			cancelled = true;
			continue;
		}
		if (it->failed)
			continue;
		switch (it->kind) {
		case IT_UPSERT:
		case IT_MEMBERS:
			if (!it->write_rec)
				break;
			klen = object_key(OBJECT_KEY_OBJECT, it->anchor, key, sizeof key);
			if (object_record_encode(&it->rec, &val, &vlen) == 0) {
				state_batch_put(&sb, key, klen, val, vlen);
				free(val);
			}
			break;
		case IT_DELETE:
			klen = object_key(OBJECT_KEY_OBJECT, it->anchor, key, sizeof key);
			state_batch_del(&sb, key, klen);
			/* fall through - an approved staged delete drops its "d:" key */
		case IT_UNSTAGE:
			klen = object_key(OBJECT_KEY_STAGED, it->anchor, key, sizeof key);
			state_batch_del(&sb, key, klen);
			break;
		case IT_REPAIR:
			break;
		case IT_DISABLE:
			if (it->op.action != SCIM_UPSERT)
				break;
			/* Keep the record with a hash no mapping produces: when the
			 * user is back in scope it is written again in full. */
			it->old.hash = 0;
			klen = object_key(OBJECT_KEY_OBJECT, it->anchor, key, sizeof key);
			if (object_record_encode(&it->old, &val, &vlen) == 0) {
				state_batch_put(&sb, key, klen, val, vlen);
				free(val);
			}
			klen = object_key(OBJECT_KEY_STAGED, it->anchor, key, sizeof key);
			state_batch_del(&sb, key, klen);
			break;
		case IT_STAGE:
			if (!it->has_old)
				break;
			klen = object_key(OBJECT_KEY_STAGED, it->anchor, key, sizeof key);
			if (object_record_encode(&it->old, &val, &vlen) == 0) {
				state_batch_put(&sb, key, klen, val, vlen);
				free(val);
			}
			break;
		}
	}
	/* Invariant 1: the cursor moves only when every change before it was
	 * answered by the target (a cancelled operation was not). */
	if (!cancelled && b->cursor)
		state_batch_cursor(&sb, b->cursor, b->cursor_len);
	if (sb.n_ops == 0) {
		state_batch_close(&sb);
		batch_free(b);
		s->batch = NULL;
		pump(s);
		return;
	}
	rv = state_batch_encode(&sb, &buf);
	state_batch_close(&sb);
	if (rv == 0) {
		b->phase = PH_COMMIT;
		rv = node_apply(e->node, &buf, on_committed, s);
		if (rv != 0)
			raft_free(buf.base);
	}
	if (rv != 0) {
		/* Not leader any more, or out of memory: the batch is re-done by
		 * whoever leads next, from the last committed cursor. */
		e->st.errors_total++;
		batch_free(b);
		s->batch = NULL;
	}
}

static void log_scope_change(struct engine *e, struct session *s)
{
	struct provlog_entry le = {
		.cycle = e->st.cycle, .node = e->cfg.node_id, .term = s->term, .type = "user",
		.action = "scope-change", .result = "ok", .dn = e->cfg.user_member_of,
	};
	provlog_write(&e->log, &le);
}

static void on_committed(void *arg, int status)
{
	struct session *s = arg;
	struct engine *e = s->e;
	struct batch *b = s->batch;
	size_t i;

	if (b == NULL || b->orphan) { /* the session ended meanwhile */
		batch_free(b);
		if (s->stopping && --s->open == 0)
			session_end(s);
		return;
	}
	s->batch = NULL;
	if (status == 0 && s->scope_on) {
		bool groups_changed = false;
		for (i = 0; i < b->n; i++)
			if (b->items[i]->type == OBJECT_GROUP && b->items[i]->write_rec)
				groups_changed = true;
		if (groups_changed && scope_compute(s) && s->src) {
			log_scope_change(e, s);
			ldap_source_refresh(s->src, OBJECT_USER);
		}
	}
	if (status == 0 && b->repair && s->src) {
		struct provlog_entry le = {
			.cycle = b->cycle, .node = e->cfg.node_id, .term = s->term,
			.action = "in-doubt-repair", .result = "ok",
			.error = "objects an earlier leader may have written after its last commit: "
				 "rewriting them from a full refresh",
			.http_status = (long)b->n,
		};
		provlog_write(&e->log, &le);
		strmap_clear(&s->in_doubt);
		ldap_source_refresh(s->src, OBJECT_USER);
		ldap_source_refresh(s->src, OBJECT_GROUP);
	}
	if (status == 0) {
		e->st.batches_total++;
		if (b->first_event)
			e->st.export_lag_ms = uv_now(e->loop) - b->first_event;
		/* Groups that still wait for members: index them. */
		for (i = 0; i < b->n; i++) {
			struct item *it = b->items[i];
			if (it->type == OBJECT_GROUP && !it->failed && !it->cancelled &&
			    it->rec.n_unresolved)
				index_unresolved(s, it->anchor, it->rec.unresolved,
						 it->rec.n_unresolved);
		}
	}
	batch_free(b);
	if (status == 0)
		pump(s);
}

static void on_intents(void *arg, int status)
{
	struct session *s = arg;
	struct batch *b = s->batch;

	if (b == NULL || b->orphan) { /* the session ended meanwhile */
		batch_free(b);
		if (s->stopping && --s->open == 0)
			session_end(s);
		return;
	}
	if (status != 0) { /* not leader any more: the next leader redoes it */
		s->e->st.errors_total++;
		batch_free(b);
		s->batch = NULL;
		return;
	}
	b->phase = PH_UPSERT;
	start_upserts(s);
	if (b->outstanding == 0)
		run_phase(s);
}

/*
 * Fencing, last step (DESIGN.md invariant 3): before any request of the
 * batch goes out, commit an intent for each object it may write. A request
 * already on the wire cannot be recalled; if this leader dies or is cut off
 * before the batch's own commit, the next leader finds the intents and, once
 * a late write has surely landed, rewrites those objects (engine_lead).
 * Returns 0 when an intent entry was proposed, 1 when none is needed, or a
 * raft error.
 */
static int commit_intents(struct session *s)
{
	struct batch *b = s->batch;
	struct state_batch sb;
	struct raft_buffer buf;
	char key[KEY_MAX], term[24];
	size_t i, klen;
	int rv, tl = snprintf(term, sizeof term, "%llu", (unsigned long long)s->term);

	if (b->repair || b->decision)
		return 1;
	state_batch_init(&sb);
	for (i = 0; i < b->n; i++) {
		struct item *it = b->items[i];
		if (it->kind == IT_STAGE || it->kind == IT_UNSTAGE || it->failed)
			continue;
		if (it->kind == IT_UPSERT && !it->upsert_needed && it->type != OBJECT_GROUP)
			continue; /* nothing will be written for it */
		klen = object_key(OBJECT_KEY_INTENT, it->anchor, key, sizeof key);
		state_batch_put(&sb, key, klen, term, (size_t)tl);
	}
	if (sb.n_ops == 0) {
		state_batch_close(&sb);
		return 1;
	}
	rv = state_batch_encode(&sb, &buf);
	state_batch_close(&sb);
	if (rv != 0)
		return -1;
	rv = node_apply(s->e->node, &buf, on_intents, s);
	if (rv != 0) {
		raft_free(buf.base);
		return -1;
	}
	return 0;
}

static void run_phase(struct session *s)
{
	struct batch *b = s->batch;

	for (;;) {
		switch (b->phase) {
		case PH_PLAN:
			switch (commit_intents(s)) {
			case 0:
				b->phase = PH_INTENT; /* on_intents continues */
				return;
			case -1: /* not leader any more: the next leader redoes it */
				s->e->st.errors_total++;
				batch_free(b);
				s->batch = NULL;
				return;
			}
			b->phase = PH_UPSERT;
			start_upserts(s);
			break;
		case PH_INTENT:
			return;
		case PH_UPSERT:
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
			commit(s);
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
	if (!leader_may_write(&s->e->node->leader)) {
		uv_timer_start(&s->retry, on_rewind_retry, 10, 0);
		return;
	}
	run_phase(s);
}

/*
 * The lease ran out while requests were on the wire; they were cancelled.
 * Nothing of this batch is committed: when the lease is back (or never, if a
 * new leader takes over -- then the session ends and the next leader redoes
 * it from the cursor), the whole batch runs again. Completed operations are
 * repeated, which is harmless: writes are idempotent upserts keyed by
 * externalId.
 */
static void batch_rewind(struct session *s)
{
	struct batch *b = s->batch;
	size_t i;

	for (i = 0; i < b->n; i++) {
		struct item *it = b->items[i];
		it->cancelled = false;
		json_decref(it->add);
		json_decref(it->remove);
		it->add = it->remove = NULL;
		strv_free(it->add_anchors, it->n_add_anchors);
		it->add_anchors = NULL;
		it->n_add_anchors = 0;
		memset(&it->op, 0, sizeof it->op);
		it->write_rec = false;
		if (it->kind == IT_MEMBERS) {
			object_record_free(&it->rec);
			object_record_copy(&it->rec, &it->old);
		} else if (it->kind == IT_UPSERT) {
			object_record_free(&it->rec);
		}
	}
	b->rewind = false;
	b->phase = PH_PLAN;
	s->e->st.errors_total++;
	uv_timer_start(&s->retry, on_rewind_retry, 10, 0);
}

/* Fencing (DESIGN.md invariant 3): no request may be on the wire after the
 * lease deadline. Checked every T/10 while a batch has requests out. */
static void on_lease_check(uv_timer_t *t)
{
	struct session *s = t->data;
	struct batch *b = s->batch;

	if (s->stopping || b == NULL || b->outstanding == 0 || b->rewind)
		return;
	if (leader_may_write(&s->e->node->leader))
		return;
	b->rewind = true;
	s->e->st.lease_cancels_total++;
	{
		struct provlog_entry le = {
			.cycle = b->cycle, .node = s->e->cfg.node_id, .term = s->term,
			.action = "lease-expired", .result = "cancelled",
			.error = "write lease ran out with requests in flight: cancelled them; the batch "
				 "runs again once the lease is renewed (or the next leader redoes it)",
		};
		provlog_write(&s->e->log, &le);
	}
	scim_cancel_all(s->tgt); /* op_done rewinds once the last one is back */
}

/* ---- decisions on staged deletes ----------------------------------------- */

static int plan_staged(void *ctx, const void *key, size_t klen, const void *val, size_t vlen)
{
	struct plan_del_ctx *p = ctx;
	char anchor[KEY_MAX], err[64];
	struct item *it;

	if (klen < 3 || klen >= sizeof anchor || ((const char *)key)[0] != OBJECT_KEY_STAGED)
		return 0;
	memcpy(anchor, (const char *)key + 2, klen - 2);
	anchor[klen - 2] = '\0';
	it = batch_add(p->s, p->b, p->stage ? IT_DELETE : IT_UNSTAGE, OBJECT_UNKNOWN, anchor);
	if (it == NULL)
		return 0;
	if (!it->has_old) /* the staged record carries what the object table had */
		it->has_old = object_record_decode(val, vlen, &it->old, err, sizeof err) == 0;
	if (it->has_old) {
		it->type = it->old.type;
		it->dn = it->old.dn ? strdup(it->old.dn) : NULL;
		if (it->kind == IT_DELETE && it->type == OBJECT_USER && p->s->e->cfg.disable_users)
			it->kind = IT_DISABLE;
	}
	return 0;
}

/* ---- the pump ------------------------------------------------------------- */

static int plan_repair(void *ctx, const char *anchor, void *v)
{
	struct batch *b = ctx;
	struct session *s = v;
	batch_add(s, b, IT_REPAIR, OBJECT_UNKNOWN, anchor);
	return 0;
}

/* The old leader's lease has surely ended, and with it any write it had on
 * the wire: rewrite what it may have written (see commit_intents). */
static void on_repair_due(uv_timer_t *t)
{
	struct session *s = t->data;
	if (s->stopping)
		return;
	s->repair_due = true;
	pump(s);
}

static size_t batch_max(const struct engine *e)
{
	return e->cfg.batch_max ? e->cfg.batch_max : 256;
}

static void on_retry(uv_timer_t *t)
{
	pump(t->data);
}

static void pump(struct session *s)
{
	struct engine *e = s->e;
	struct batch *b;
	size_t max = batch_max(e), taken = 0;

	if (s->stopping || s->batch != NULL)
		return;
	if (s->head == NULL && s->pending_decision == 0 && !s->repair_due)
		return;
	/* Fencing (DESIGN.md invariant 3): no batch without a live lease. */
	if (!leader_may_write(&e->node->leader)) {
		uv_timer_start(&s->retry, on_retry, 10, 0);
		return;
	}
	b = batch_new(++e->cycle_seq);
	if (b == NULL)
		return;
	e->st.cycle = b->cycle;
	s->batch = b;
	if (s->repair_due) {
		s->repair_due = false;
		b->repair = true;
		strmap_foreach(&s->in_doubt, plan_repair, b);
	} else if (s->pending_decision) {
		struct plan_del_ctx p = {s, b, s->pending_decision == 1, OBJECT_UNKNOWN};
		b->decision = true;
		s->pending_decision = 0;
		state_foreach(e->state, plan_staged, &p);
	} else {
		while (s->head && taken < max) {
			struct qnode *q = s->head;
			s->head = q->next;
			if (s->head == NULL)
				s->tail = NULL;
			s->queued--;
			if (b->first_event == 0)
				b->first_event = q->received;
			plan_event(s, b, q->ev);
			source_event_free(q->ev);
			free(q);
			taken++;
		}
		if (s->paused && s->queued < batch_max(e) && s->src) {
			s->paused = false;
			ldap_source_resume(s->src);
		}
	}
	run_phase(s);
}

static void on_source_event(void *data, struct source_event *ev)
{
	struct session *s = data;
	struct qnode *q;

	if (s->stopping) {
		source_event_free(ev);
		return;
	}
	if (ev->kind == SOURCE_STATUS) {
		s->source_connected = ev->connected;
		snprintf(s->source_message, sizeof s->source_message, "%s",
			 ev->message ? ev->message : "");
	}
	q = malloc(sizeof *q);
	if (q == NULL) {
		source_event_free(ev);
		return;
	}
	q->ev = ev;
	q->received = uv_now(s->e->loop);
	q->next = NULL;
	if (s->tail)
		s->tail->next = q;
	else
		s->head = q;
	s->tail = q;
	s->queued++;
	/* Back-pressure: beyond two batches of our own, stop the source; its
	 * bounded queue then fills and its worker stops reading the server. */
	if (!s->paused && s->queued >= 2 * batch_max(s->e) && s->src) {
		s->paused = true;
		ldap_source_pause(s->src);
	}
	pump(s);
}

/* ---- sessions ----------------------------------------------------------- */

struct index_ctx {
	struct session *s;
};

static int index_record(void *ctx, const void *key, size_t klen, const void *val, size_t vlen)
{
	struct session *s = ctx;
	struct object_record r;
	char anchor[KEY_MAX], norm[1024], err[64];

	if (klen < 3 || klen >= sizeof anchor || ((const char *)key)[0] != OBJECT_KEY_OBJECT)
		return 0;
	memcpy(anchor, (const char *)key + 2, klen - 2);
	anchor[klen - 2] = '\0';
	if (object_record_decode(val, vlen, &r, err, sizeof err) != 0)
		return 0;
	if (r.dn) {
		dn_norm(r.dn, norm, sizeof norm);
		strmap_put(&s->dn_index, norm, strdup(anchor));
	}
	if (r.type == OBJECT_GROUP && r.n_unresolved)
		index_unresolved(s, anchor, r.unresolved, r.n_unresolved);
	object_record_free(&r);
	return 0;
}

static int collect_in_doubt(void *ctx, const void *key, size_t klen, const void *val, size_t vlen)
{
	struct session *s = ctx;
	char anchor[KEY_MAX];
	(void)val;
	(void)vlen;
	if (klen < 3 || klen >= sizeof anchor || ((const char *)key)[0] != OBJECT_KEY_INTENT)
		return 0;
	memcpy(anchor, (const char *)key + 2, klen - 2);
	anchor[klen - 2] = '\0';
	strmap_put(&s->in_doubt, anchor, s);
	return 0;
}

static void free_groupset(void *v)
{
	struct strmap *m = v;
	strmap_clear(m);
	free(m);
}

static void engine_free(struct engine *e)
{
	void (*done)(void *) = e->close_done;
	void *data = e->close_data;
	provlog_close(&e->log);
	strv_free(e->attrs, e->n_attrs);
	free(e);
	if (done)
		done(data);
}

static void session_end(struct session *s)
{
	struct engine *e = s->e;
	struct qnode *q;
	int i;

	while ((q = s->head) != NULL) {
		s->head = q->next;
		source_event_free(q->ev);
		free(q);
	}
	for (i = 0; i < 3; i++) {
		strmap_clear(&s->seen[i]);
		strmap_clear(&s->refresh_deletes[i]);
	}
	strmap_clear(&s->dn_index);
	strmap_clear(&s->unresolved);
	strmap_clear(&s->scope);
	strmap_clear(&s->in_doubt);
	free(s->delete_times);
	free(s);
	if (--e->sessions == 0 && e->closing)
		engine_free(e);
}

static void on_part_stopped(void *data)
{
	struct session *s = data;
	if (--s->open == 0)
		session_end(s);
}

static void on_timer_closed(uv_handle_t *h)
{
	on_part_stopped(h->data);
}

void engine_lead(struct engine *e)
{
	struct session *s;
	char err[512];
	int i, rv;

	if (e->s != NULL || e->closing)
		return;
	s = calloc(1, sizeof *s);
	if (s == NULL)
		return;
	s->e = e;
	s->term = term_of(e);
	for (i = 0; i < 3; i++) {
		strmap_init(&s->seen[i], NULL);
		strmap_init(&s->refresh_deletes[i], NULL);
	}
	strmap_init(&s->dn_index, free);
	strmap_init(&s->unresolved, free_groupset);
	s->n_delete_times = (size_t)e->cfg.delete_threshold + 1;
	s->delete_times = calloc(s->n_delete_times, sizeof *s->delete_times);
	uv_timer_init(e->loop, &s->retry);
	s->retry.data = s;
	uv_timer_init(e->loop, &s->lease);
	s->lease.data = s;
	uv_timer_start(&s->lease, on_lease_check, 1,
		       e->node->election_timeout_ms / 10 ? e->node->election_timeout_ms / 10 : 10);
	s->open = 2; /* the timers */
	state_foreach(e->state, index_record, s);
	strmap_init(&s->in_doubt, NULL);
	state_foreach(e->state, collect_in_doubt, s);
	uv_timer_init(e->loop, &s->repair_timer);
	s->repair_timer.data = s;
	s->open++;
	if (s->in_doubt.count > 0)
		/* 2 T: the old leader's lease ended before we could win (leader.h);
		 * the rest is slack for a request still in the network. */
		uv_timer_start(&s->repair_timer, on_repair_due, 2 * (uint64_t)e->node->election_timeout_ms, 0);
	strmap_init(&s->scope, NULL);
	s->scope_on = e->cfg.user_member_of != NULL && e->cfg.user_member_of[0] != '\0';
	if (s->scope_on)
		scope_compute(s);
	e->s = s;
	e->sessions++;
	e->st.state = "starting";

	rv = scim_target_start(&s->tgt, e->loop, &e->cfg.target, err, sizeof err);
	if (rv != 0) {
		snprintf(s->source_message, sizeof s->source_message, "target: %.200s", err);
		e->st.state = "error";
		return;
	}
	s->open++;
	scim_set_fence(s->tgt, e->cfg.node_id, s->term);
	rv = ldap_source_start(&s->src, e->loop, &e->cfg.source, e->state->cursor,
			       e->state->cursor_len, on_source_event, s, err, sizeof err);
	if (rv != 0) {
		snprintf(s->source_message, sizeof s->source_message, "source: %.200s", err);
		e->st.state = "error";
		return;
	}
	s->open++;
}

void engine_follow(struct engine *e)
{
	struct session *s = e->s;

	if (s == NULL)
		return;
	e->s = NULL;
	s->stopping = true;
	e->st.state = "standby";
	if (s->tgt)
		scim_cancel_all(s->tgt); /* op callbacks see `stopping` */
	if (s->batch) {
		if (s->batch->phase == PH_COMMIT || s->batch->phase == PH_INTENT) {
			s->batch->orphan = true; /* on_committed frees it */
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
	if (s->src)
		ldap_source_stop(s->src, on_part_stopped, s);
	if (s->tgt)
		scim_target_stop(s->tgt, on_part_stopped, s);
}

int engine_deletes_decide(struct engine *e, bool approve, char *errmsg, size_t errlen)
{
	if (e->s == NULL) {
		snprintf(errmsg, errlen, "this node is not exporting (not the leader)");
		return -EAGAIN;
	}
	if (e->state->by_prefix[(unsigned char)OBJECT_KEY_STAGED] == 0) {
		snprintf(errmsg, errlen, "no staged deletes");
		return -ENOENT;
	}
	e->s->pending_decision = approve ? 1 : 2;
	pump(e->s);
	return 0;
}

void engine_stats(struct engine *e, struct engine_stats *out)
{
	struct session *s = e->s;
	*out = e->st;
	out->pending_deletes = e->state->by_prefix[(unsigned char)OBJECT_KEY_STAGED];
	if (s == NULL) {
		out->state = e->closing ? "stopping" : "standby";
		return;
	}
	out->source_connected = s->source_connected;
	snprintf(out->source_message, sizeof out->source_message, "%s", s->source_message);
	if (s->tgt)
		scim_stats(s->tgt, &out->target);
	if (strcmp(e->st.state, "error") == 0)
		out->state = "error";
	else if (out->target.quarantined)
		out->state = "quarantined";
	else if (s->refreshing[OBJECT_USER] || s->refreshing[OBJECT_GROUP])
		out->state = "refreshing";
	else if (s->batch || s->head)
		out->state = "syncing";
	else
		out->state = s->src ? "idle" : "starting";
}

const char *engine_provlog_path(struct engine *e)
{
	return e->log.path;
}

static void add_attr(void *ctx, const char *name)
{
	struct engine *e = ctx;
	size_t i;
	for (i = 0; i < e->n_attrs; i++)
		if (strcasecmp(e->attrs[i], name) == 0)
			return;
	e->attrs = realloc(e->attrs, (e->n_attrs + 2) * sizeof *e->attrs);
	e->attrs[e->n_attrs++] = strdup(name);
	e->attrs[e->n_attrs] = NULL;
}

int engine_init(struct engine **out, uv_loop_t *loop, struct node *node, struct state *state,
		const struct engine_config *cfg, char *errmsg, size_t errlen)
{
	struct engine *e = calloc(1, sizeof *e);
	int rv;

	if (e == NULL)
		return -ENOMEM;
	e->loop = loop;
	e->node = node;
	e->state = state;
	e->cfg = *cfg;
	e->st.state = "standby";
	rv = provlog_open(&e->log, cfg->data_dir, errmsg, errlen);
	if (rv != 0) {
		free(e);
		return rv;
	}
	/* Request only what the mappings read, plus the member attribute. */
	if (cfg->user_map)
		mapping_attributes(cfg->user_map, add_attr, e);
	if (cfg->group_map)
		mapping_attributes(cfg->group_map, add_attr, e);
	add_attr(e, cfg->member_attr ? cfg->member_attr : "member");
	e->cfg.source.attrs = (const char *const *)e->attrs;
	e->cfg.source.n_attrs = e->n_attrs;
	*out = e;
	return 0;
}

void engine_close(struct engine *e, void (*done)(void *data), void *data)
{
	e->closing = true;
	e->close_done = done;
	e->close_data = data;
	engine_follow(e);
	if (e->sessions == 0)
		engine_free(e);
}
