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
#include "sync/state/cluster.h"
#include "sync/state/object.h"
#include "sync/state/retry.h"

#define KEY_MAX 600
#define OBJECT_KEY_WINDOW 'w'     /* "w:" deletes executed recently: "sec:count,..." */
#define OBJECT_KEY_QUARANTINE 'q' /* "q:" the leader's quarantine, for every node */
#define RETRY_TICK_MS 1000

enum { L_DEBUG, L_INFO, L_WARN, L_ERROR };

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
	bool failed;            /* its write did not happen (see retry/refused) or was not needed */
	bool retry;             /* the target or the network failed it: commit puts it in the retry set */
	bool refused;           /* refused for good (or unmappable): commit records it as failed */
	bool cancelled;
	uint64_t change;
	struct scim_op op;
	json_t *add, *remove;   /* IT_MEMBERS / group upserts: member target ids */
	char **add_anchors;     /* anchors matching `add`, for the record */
	size_t n_add_anchors;
	char **rm_anchors;      /* member anchors matching `remove` */
	size_t n_rm_anchors;
	char **held;            /* member removals staged ("m:" keys): put by a normal
				 * batch's commit, removed by a decision batch's */
	size_t n_held;
	bool member_decision;   /* a decision on staged member removals: add/remove preset */
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
	bool retry_batch;       /* made from the retry set */
	bool rerun;             /* runs again after a lease expiry: writes may have landed */
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
	uint64_t term;
	bool source_connected;
	bool source_reported;      /* the source has said whether it can read */
	enum source_problem source_problem;
	char source_message[256];
	char start_problem[256];   /* the source or target could not even start */
	struct strmap retry_due;   /* anchors in the retry set -> unix ms when due (uintptr_t) */
	uint64_t retry_next_at;    /* earliest of them (0: none) */
	bool retry_now;            /* the target came back: all of them are due */
	bool last_was_retry;       /* the previous batch came from the retry set */
	bool target_was_quarantined;
	uv_timer_t tick;           /* retry set and quarantine bookkeeping */
	bool q_committing;         /* a "q:" update is in flight */
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
	uv_timer_t relead;         /* restarts the session after a failed commit */
	unsigned relead_ms;
	uint64_t rng;
	char logged_reason[64];    /* the quarantine reason last logged */
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

static void engine_log(struct engine *e, int level, const char *msg, const char *detail)
{
	if (e->cfg.log != NULL)
		e->cfg.log(e->cfg.log_data, level, msg, detail);
}

static uint64_t unix_ms(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_REALTIME, &ts);
	return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

static uint64_t rnd(struct engine *e)
{
	/* xorshift64*: jitter only, no secrecy needed */
	e->rng ^= e->rng >> 12;
	e->rng ^= e->rng << 25;
	e->rng ^= e->rng >> 27;
	return e->rng * 2685821657736338717ULL;
}

static bool has_key(struct engine *e, char prefix, const char *anchor)
{
	char key[KEY_MAX];
	const void *v;
	size_t vlen, klen = object_key(prefix, anchor, key, sizeof key);
	return state_get(e->state, key, klen, &v, &vlen);
}

static bool get_retry(struct engine *e, char prefix, const char *anchor, struct retry_record *r)
{
	char key[KEY_MAX], err[128];
	const void *v;
	size_t vlen, klen = object_key(prefix, anchor, key, sizeof key);
	if (!state_get(e->state, key, klen, &v, &vlen))
		return false;
	return retry_record_decode(v, vlen, r, err, sizeof err) == 0;
}

/*
 * Whose failure is it? Only a refusal of this one object may leave it behind
 * (recorded as failed): a 4xx about its content (RFC 7644 §3.12), or an
 * operation the target module refused to build. Everything else -- network,
 * timeouts, 5xx, 429, 401/403 (credentials), 404 (gone), 408, 409 (a
 * conflict that may clear), an unusable answer -- is the target's or the
 * network's, and the object stays in the retry set until it goes through.
 */
static bool permanent_failure(const struct scim_op *op)
{
	long h = op->http_status;

	if (op->status == -EINVAL)
		return true;
	if (op->status != -EPROTO)
		return false;
	return h >= 400 && h < 500 && h != 401 && h != 403 && h != 404 && h != 408 && h != 409 && h != 429;
}

/* The target did not take an item's operation: mark it for the retry set or
 * the failed objects (commit records it), log it. */
static void item_failed(struct session *s, struct item *it, const char *action)
{
	struct engine *e = s->e;
	char detail[700];

	e->st.errors_total++;
	if (permanent_failure(&it->op)) {
		it->refused = true;
		log_op(e, it, action, "error", it->op.error);
		snprintf(detail, sizeof detail, "%s %s: %s (canopyctl failed; canopyctl resync --failed)",
			 action, it->dn ? it->dn : it->anchor, it->op.error);
		engine_log(e, L_ERROR, "the target refused an object", detail);
	} else {
		it->retry = true;
		log_op(e, it, action, "retry", it->op.error);
	}
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
	strv_free(it->rm_anchors, it->n_rm_anchors);
	strv_free(it->held, it->n_held);
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
	strv_free(it->rm_anchors, it->n_rm_anchors);
	strv_free(it->held, it->n_held);
	it->dn = NULL;
	it->resource = it->add = it->remove = NULL;
	it->member_dns = it->add_anchors = it->rm_anchors = it->held = NULL;
	it->n_member_dns = it->n_add_anchors = it->n_rm_anchors = it->n_held = 0;
	it->write_rec = it->upsert_needed = it->failed = it->cancelled = false;
	it->retry = it->refused = false;
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

/* An upsert of mapped content (from a source entry or the retry set). */
static void plan_upsert(struct item *it, json_t *res, uint64_t hash)
{
	it->resource = res;
	it->hash = hash;
	it->upsert_needed = !it->has_old || it->old.hash != it->hash || it->old.target_id == NULL;
}

static void plan_entry(struct session *s, struct batch *b, struct source_event *ev)
{
	struct engine *e = s->e;
	const struct mapping *m = ev->type == OBJECT_GROUP ? e->cfg.group_map : e->cfg.user_map;
	struct item *it;
	json_t *res = NULL;
	size_t i, j;

	if (m == NULL)
		return;
	it = batch_add(s, b, IT_UPSERT, ev->type, ev->anchor);
	if (it == NULL)
		return;
	it->dn = ev->dn ? strdup(ev->dn) : NULL;
	if (mapping_apply(m, ev->anchor, ev->attrs, ev->n_attrs, &res, it->op.error, sizeof it->op.error) != 0) {
		/* An entry the mapping cannot map: recorded as a failed object
		 * (shown by status, retried on resync), never silently skipped. */
		it->failed = true;
		it->refused = true;
		e->st.errors_total++;
		e->st.skipped_total++;
		log_op(e, it, "skip", "error", it->op.error);
		return;
	}
	/* With deprovision=disable a user may have been disabled by canopy:
	 * bringing it back into scope must enable it again. */
	if (ev->type == OBJECT_USER && e->cfg.disable_users && json_object_get(res, "active") == NULL)
		json_object_set_new(res, "active", json_true());
	plan_upsert(it, res, mapping_hash(res));
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
static void plan_delete(struct session *s, struct batch *b, const char *anchor, enum object_type type)
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
	it = batch_add(s, b, IT_DELETE, OBJECT_UNKNOWN, anchor);
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
	bool stage;             /* plan_staged: approve (true) or reject */
	enum object_type type;
};

static int plan_one_delete(void *ctx, const char *anchor, void *v)
{
	struct plan_del_ctx *p = ctx;
	(void)v;
	plan_delete(p->s, p->b, anchor, p->type);
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
				plan_delete(s, b, ev->anchor, t);
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
			plan_delete(s, b, ev->anchor, t);
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
		break; /* noted when it arrived (on_source_event) */
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
				item_failed(s, it, it->has_old ? "update" : "create");
				continue;
			}
			it->rec.target_id = strdup(it->op.result_id);
			e->st.exported_total++;
			e->st.last_export_at = time(NULL);
			log_op(e, it, it->op.created ? "create" : "update", "ok", NULL);
		} else {
			it->rec.target_id = strdup(it->old.target_id);
		}
		if (it->type == OBJECT_GROUP && it->has_old && !(it->upsert_needed && it->op.created)) {
			/* members as exported so far; the members step updates them
			 * (a group created anew -- gone from the target -- has none) */
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
		if (id != NULL) {
			json_array_append_new(it->remove, json_string(id));
			strv_push(&it->rm_anchors, &it->n_rm_anchors, it->rec.members[i]);
			free(id);
		}
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

static void protect_members(struct session *s, struct batch *b);

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
		if (it->type != OBJECT_GROUP || it->failed || it->cancelled || it->member_decision)
			continue;
		if (it->kind == IT_UPSERT)
			plan_members(s, it, it->member_dns, it->n_member_dns, true);
		else if (it->kind == IT_MEMBERS)
			plan_members(s, it, it->rec.unresolved, it->rec.n_unresolved, false);
	}
	protect_members(s, b);
	for (i = 0; i < b->n; i++) {
		struct item *it = b->items[i];
		if (it->type != OBJECT_GROUP || it->failed || it->cancelled || it->add == NULL ||
		    (it->kind != IT_UPSERT && it->kind != IT_MEMBERS))
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
		/* a re-run may repeat a PATCH that landed: read back first */
		it->op.verify = b->retry_batch || b->rerun;
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
			/* Its members stay as recorded; the retry set redoes the
			 * difference. A group gone from the target (-ENOENT) is
			 * written again in full: forget its content hash. */
			item_failed(s, it, "members");
			if (it->op.status == -ENOENT) {
				it->rec.hash = 0;
				it->write_rec = true;
			}
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
			log_op(s->e, it, "staged-delete", "held",
			       "delete threshold: held until approved (canopyctl deletes list | approve | reject)");
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
			item_failed(s, it, it->kind == IT_DISABLE ? "disable" : "delete");
			continue;
		}
		e->st.exported_total++;
		e->st.last_export_at = time(NULL);
		log_op(e, it, it->kind == IT_DISABLE ? "disable" : "delete", "ok", NULL);
		if (it->kind == IT_DISABLE)
			continue; /* still exported: keep its DN */
		if (it->dn) {
			dn_norm(it->dn, norm, sizeof norm);
			strmap_del(&s->dn_index, norm);
		}
	}
}

/* ---- the commit: records, retry set, failed objects, delete window -------- */

static enum retry_kind retry_kind_of(const struct item *it)
{
	switch (it->kind) {
	case IT_DELETE:
		return RETRY_DELETE;
	case IT_DISABLE:
		return RETRY_DISABLE;
	case IT_UPSERT:
	case IT_MEMBERS:
		return it->kind == IT_UPSERT && it->resource == NULL ? RETRY_REREAD : RETRY_UPSERT;
	default:
		return RETRY_REREAD;
	}
}

/* Record what the item was to do under "r:" (retry set) or "f:" (failed). */
static void put_retry(struct session *s, struct state_batch *sb, struct item *it, char prefix)
{
	struct engine *e = s->e;
	struct retry_record r, prev;
	bool had = get_retry(e, prefix, it->anchor, &prev) || get_retry(e, OBJECT_KEY_RETRY, it->anchor, &prev);
	uint64_t now = unix_ms();
	char key[KEY_MAX], *val;
	size_t klen, vlen;

	memset(&r, 0, sizeof r);
	r.kind = retry_kind_of(it);
	r.type = it->type != OBJECT_UNKNOWN ? it->type : it->old.type;
	r.dn = it->dn ? it->dn : it->old.dn;
	r.resource = r.kind == RETRY_UPSERT && it->kind == IT_UPSERT ? it->resource : NULL;
	r.hash = it->hash;
	if (r.kind == RETRY_UPSERT && it->kind == IT_UPSERT) {
		r.member_dns = it->member_dns;
		r.n_member_dns = it->n_member_dns;
	}
	if (it->kind == IT_MEMBERS && had && prev.resource != NULL) {
		/* only the members failed again: keep the pending upsert */
		r.kind = prev.kind;
		r.resource = prev.resource;
		r.hash = prev.hash;
		r.member_dns = prev.member_dns;
		r.n_member_dns = prev.n_member_dns;
	}
	r.attempts = had ? prev.attempts + 1 : 1;
	r.first_at_ms = had && prev.first_at_ms ? prev.first_at_ms : now;
	r.next_at_ms = prefix == OBJECT_KEY_RETRY
			       ? now + retry_backoff_ms(r.attempts,
							(uint64_t)(e->cfg.retry_max_s ? e->cfg.retry_max_s : 300) * 1000,
							rnd(e))
			       : 0;
	r.http_status = it->op.http_status;
	r.error = it->op.error[0] ? it->op.error : NULL;
	klen = object_key(prefix, it->anchor, key, sizeof key);
	/* An encoding that fails (out of memory) must not let the cursor pass
	 * the change: abort() under the one OOM policy is better than a loss. */
	if (retry_record_encode(&r, &val, &vlen) != 0)
		abort();
	state_batch_put(sb, key, klen, val, vlen);
	free(val);
	if (had)
		retry_record_free(&prev);
	if (prefix == OBJECT_KEY_RETRY) {
		strmap_del(&s->retry_due, it->anchor);
		if (strmap_put(&s->retry_due, it->anchor, (void *)(uintptr_t)r.next_at_ms) != 0)
			abort();
	}
}

static void del_key(struct engine *e, struct state_batch *sb, char prefix, const char *anchor)
{
	char key[KEY_MAX];
	size_t klen;
	if (!has_key(e, prefix, anchor))
		return; /* nothing to delete: keep the entry small */
	klen = object_key(prefix, anchor, key, sizeof key);
	state_batch_del(sb, key, klen);
}

/* The retry set and failed objects after this item's outcome. */
static void settle(struct session *s, struct state_batch *sb, struct item *it)
{
	struct engine *e = s->e;

	if (it->retry) {
		put_retry(s, sb, it, OBJECT_KEY_RETRY);
		del_key(e, sb, OBJECT_KEY_FAILED, it->anchor);
		return;
	}
	if (it->refused) {
		put_retry(s, sb, it, OBJECT_KEY_FAILED);
	} else if (it->kind == IT_MEMBERS) {
		/* members reconciled; an upsert still pending stays pending */
		struct retry_record r;
		bool keep = false;
		if (get_retry(e, OBJECT_KEY_RETRY, it->anchor, &r)) {
			keep = r.resource != NULL;
			retry_record_free(&r);
		}
		if (keep)
			return;
	} else {
		del_key(e, sb, OBJECT_KEY_FAILED, it->anchor);
	}
	del_key(e, sb, OBJECT_KEY_RETRY, it->anchor);
	strmap_del(&s->retry_due, it->anchor);
}

static void retry_recompute_next(struct session *s);

/* "m:<group>#<member>" */
static size_t held_key(const char *group, const char *member, char *key, size_t size)
{
	char both[KEY_MAX];
	snprintf(both, sizeof both, "%s#%s", group, member);
	return object_key(OBJECT_KEY_STAGED_MEMBER, both, key, size);
}

/* Staged member removals: a normal batch records them (value: the member's
 * record, for `deletes list`); a decision batch drops them once decided --
 * an approval only when its PATCH went through (else they stay staged). */
static void settle_held(struct session *s, struct state_batch *sb, struct item *it, bool decision)
{
	char key[KEY_MAX], *val;
	size_t i, klen, vlen;

	if (decision && (it->retry || it->refused))
		return;
	for (i = 0; i < it->n_held; i++) {
		struct object_record m;
		klen = held_key(it->anchor, it->held[i], key, sizeof key);
		if (decision) {
			state_batch_del(sb, key, klen);
			continue;
		}
		if (!get_record(s->e, OBJECT_KEY_OBJECT, it->held[i], &m))
			continue;
		if (object_record_encode(&m, &val, &vlen) != 0)
			abort();
		state_batch_put(sb, key, klen, val, vlen);
		free(val);
		object_record_free(&m);
	}
}

/* Deletes executed within the window, from the replicated "w:" record
 * ("sec:count,..."); with add > 0, also the new record with `add` deletes
 * now (older seconds dropped) in *rec (malloc'd). */
static size_t window_count(struct engine *e, size_t add, char **rec)
{
	static const char key[] = {OBJECT_KEY_WINDOW, ':'};
	unsigned window = e->cfg.delete_window_s ? e->cfg.delete_window_s : 300;
	time_t now = time(NULL);
	const void *v;
	size_t vlen, n = 0, len = 0, cap = 0;
	char buf[64], *out = NULL;

	if (state_get(e->state, key, sizeof key, &v, &vlen)) {
		const char *p = v, *end = p + vlen;
		while (p < end) {
			unsigned long long t = 0, c = 0;
			int used = 0;
			char tmp[48];
			size_t l = (size_t)(end - p) < sizeof tmp - 1 ? (size_t)(end - p) : sizeof tmp - 1;
			memcpy(tmp, p, l);
			tmp[l] = '\0';
			if (sscanf(tmp, "%llu:%llu%n", &t, &c, &used) != 2 || used <= 0)
				break;
			p += used;
			if (p < end && *p == ',')
				p++;
			if (now - (time_t)t >= (time_t)window)
				continue;
			n += c;
			if (add > 0) {
				int w = snprintf(buf, sizeof buf, "%llu:%llu,", t, c);
				if (len + (size_t)w + 1 > cap) {
					cap = (cap + (size_t)w + 1) * 2;
					if ((out = realloc(out, cap)) == NULL)
						abort();
				}
				memcpy(out + len, buf, (size_t)w + 1);
				len += (size_t)w;
			}
		}
	}
	if (add > 0) {
		int w = snprintf(buf, sizeof buf, "%llu:%zu", (unsigned long long)now, add);
		if ((out = realloc(out, len + (size_t)w + 1)) == NULL)
			abort();
		memcpy(out + len, buf, (size_t)w + 1);
		*rec = out;
	}
	return n;
}

static void on_committed(void *arg, int status);
static void session_restart(struct engine *e, const char *why);

static void commit(struct session *s)
{
	struct engine *e = s->e;
	struct batch *b = s->batch;
	struct state_batch sb;
	struct raft_buffer buf;
	char key[KEY_MAX], *val;
	size_t i, klen, vlen, deleted = 0;
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
			if (object_record_encode(&it->old, &val, &vlen) != 0)
				abort();
			state_batch_put(&sb, key, klen, val, vlen);
			free(val);
			continue;
		}
		if (it->cancelled) {
			cancelled = true;
			continue;
		}
		if (it->n_held > 0)
			settle_held(s, &sb, it, b->decision);
		if (it->kind == IT_STAGE) {
			/* the newest intent for the object is a delete, held: an
			 * older retry must not write it again */
			del_key(e, &sb, OBJECT_KEY_RETRY, it->anchor);
			strmap_del(&s->retry_due, it->anchor);
		} else if (it->kind != IT_UNSTAGE && it->kind != IT_REPAIR) {
			settle(s, &sb, it);
		}
		if (it->failed)
			continue;
		switch (it->kind) {
		case IT_UPSERT:
		case IT_MEMBERS:
			if (it->op.action == SCIM_MEMBERS && it->op.status == 0 && !b->decision)
				deleted += json_array_size(it->remove); /* member removals count too */
			if (!it->write_rec)
				break;
			klen = object_key(OBJECT_KEY_OBJECT, it->anchor, key, sizeof key);
			if (object_record_encode(&it->rec, &val, &vlen) != 0)
				abort();
			state_batch_put(&sb, key, klen, val, vlen);
			free(val);
			break;
		case IT_DELETE:
			if (!b->decision)
				deleted++;
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
			if (!b->decision)
				deleted++;
			/* Keep the record with a hash no mapping produces: when the
			 * user is back in scope it is written again in full. */
			it->old.hash = 0;
			klen = object_key(OBJECT_KEY_OBJECT, it->anchor, key, sizeof key);
			if (object_record_encode(&it->old, &val, &vlen) != 0)
				abort();
			state_batch_put(&sb, key, klen, val, vlen);
			free(val);
			klen = object_key(OBJECT_KEY_STAGED, it->anchor, key, sizeof key);
			state_batch_del(&sb, key, klen);
			break;
		case IT_STAGE:
			if (!it->has_old)
				break;
			klen = object_key(OBJECT_KEY_STAGED, it->anchor, key, sizeof key);
			if (object_record_encode(&it->old, &val, &vlen) != 0)
				abort();
			state_batch_put(&sb, key, klen, val, vlen);
			free(val);
			break;
		}
	}
	/* Deletes executed outside an operator's approval count against the
	 * threshold over the window, on whichever node leads next too. */
	if (deleted > 0) {
		static const char wkey[] = {OBJECT_KEY_WINDOW, ':'};
		char *rec = NULL;
		window_count(e, deleted, &rec);
		state_batch_put(&sb, wkey, sizeof wkey, rec, strlen(rec));
		free(rec);
	}
	retry_recompute_next(s);
	/* Invariant 1: the cursor moves only when every change before it was
	 * answered by the target or recorded above (retry set, failed objects);
	 * a cancelled operation was neither. */
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
	if (status == 0) {
		e->relead_ms = 0; /* commits go through again */
		pump(s);
	} else {
		/* The batch's events are consumed but not committed: never go on
		 * past them (the cursor would skip them). */
		session_restart(e, "the batch's commit failed");
	}
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
	if (status != 0) { /* its events are consumed: start over (or the next leader) */
		s->e->st.errors_total++;
		batch_free(b);
		s->batch = NULL;
		session_restart(s->e, "the batch's intent could not be committed");
		return;
	}
	b->phase = PH_UPSERT;
	start_upserts(s);
	if (b->outstanding == 0)
		run_phase(s);
}

/*
 * Fencing, last step (docs/architecture.md, one exporter at a time): before any request of the
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
			case -1: /* its events are consumed: start over (or the next leader) */
				s->e->st.errors_total++;
				batch_free(b);
				s->batch = NULL;
				session_restart(s->e, "the batch's intent could not be proposed");
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
		it->retry = it->refused = false;
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
	b->rerun = true;
	b->phase = PH_PLAN;
	s->e->st.errors_total++;
	uv_timer_start(&s->retry, on_rewind_retry, 10, 0);
}

/* Fencing (docs/architecture.md, one exporter at a time): no request may be on the wire after the
 * lease deadline. Checked every T'/10 (T' = T/3) while a batch has requests out. */
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

/* A staged member removal ("m:<group>#<member>"): approve removes the member
 * from the group in the target; reject keeps it. One item per group. */
static void plan_staged_member(struct plan_del_ctx *p, const char *both)
{
	char group[KEY_MAX], *member, *id;
	struct item *it;
	size_t i;

	snprintf(group, sizeof group, "%s", both);
	member = strchr(group, '#');
	if (member == NULL)
		return;
	*member++ = '\0';
	it = strmap_get(&p->b->by_anchor, group);
	if (it == NULL) {
		it = batch_add(p->s, p->b, IT_MEMBERS, OBJECT_GROUP, group);
		if (it == NULL)
			abort();
		it->member_decision = true;
		if (!it->has_old) {
			it->failed = true; /* the group is gone: only the key is dropped */
		} else {
			it->dn = it->old.dn ? strdup(it->old.dn) : NULL;
			object_record_copy(&it->rec, &it->old);
			it->add = json_array();
			it->remove = json_array();
			for (i = 0; i < it->rec.n_members; i++)
				strv_push(&it->add_anchors, &it->n_add_anchors, it->rec.members[i]);
		}
	}
	strv_push(&it->held, &it->n_held, member);
	if (!p->stage || it->failed || !it->member_decision)
		return; /* reject: it stays a member */
	id = target_id_of(p->s, member);
	if (id != NULL)
		json_array_append_new(it->remove, json_string(id));
	free(id);
	for (i = 0; i < it->n_add_anchors; i++)
		if (strcmp(it->add_anchors[i], member) == 0) {
			free(it->add_anchors[i]);
			it->add_anchors[i] = it->add_anchors[--it->n_add_anchors];
			it->add_anchors[it->n_add_anchors] = NULL;
			break;
		}
}

static int plan_staged(void *ctx, const void *key, size_t klen, const void *val, size_t vlen)
{
	struct plan_del_ctx *p = ctx;
	char anchor[KEY_MAX], err[64];
	struct item *it;

	if (klen >= 3 && klen < sizeof anchor && ((const char *)key)[0] == OBJECT_KEY_STAGED_MEMBER &&
	    ((const char *)key)[1] == ':') {
		memcpy(anchor, (const char *)key + 2, klen - 2);
		anchor[klen - 2] = '\0';
		plan_staged_member(p, anchor);
		return 0;
	}
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

/* ---- the retry set ---------------------------------------------------------- */

static int min_due(void *ctx, const char *anchor, void *v)
{
	uint64_t *min = ctx, at = (uint64_t)(uintptr_t)v;
	(void)anchor;
	if (*min == 0 || at < *min)
		*min = at;
	return 0;
}

static void retry_recompute_next(struct session *s)
{
	s->retry_next_at = 0;
	strmap_foreach(&s->retry_due, min_due, &s->retry_next_at);
	if (s->retry_next_at == 0 && s->retry_due.count > 0)
		s->retry_next_at = 1; /* due at once */
}

static bool retry_due_now(const struct session *s)
{
	return s->retry_due.count > 0 && (s->retry_now || s->retry_next_at <= unix_ms());
}

struct due_ctx {
	struct session *s;
	struct batch *b;
	uint64_t now;
	size_t max;
	char *stale[64];   /* anchors whose "r:" is gone (a resync, a newer change) */
	size_t n_stale;
};

/* Plan one object of the retry set back into a batch, as it was meant. */
static int plan_due(void *ctx, const char *anchor, void *v)
{
	struct due_ctx *d = ctx;
	struct session *s = d->s;
	struct retry_record r;
	struct item *it = NULL;

	if ((uint64_t)(uintptr_t)v > d->now || strmap_has(&d->b->by_anchor, anchor))
		return 0;
	if (d->b->n >= d->max)
		return 1;
	if (!get_retry(s->e, OBJECT_KEY_RETRY, anchor, &r)) {
		if (d->n_stale < sizeof d->stale / sizeof d->stale[0] && (d->stale[d->n_stale] = strdup(anchor)))
			d->n_stale++;
		return 0;
	}
	switch (r.kind) {
	case RETRY_UPSERT:
		if (r.resource == NULL) { /* a group's members only */
			it = batch_add(s, d->b, IT_MEMBERS, OBJECT_GROUP, anchor);
			if (it == NULL || !it->has_old) {
				if (it)
					it->failed = true; /* nothing exported to fix: drop it */
				break;
			}
			it->dn = it->old.dn ? strdup(it->old.dn) : NULL;
			object_record_copy(&it->rec, &it->old);
			break;
		}
		it = batch_add(s, d->b, IT_UPSERT, r.type, anchor);
		if (it == NULL)
			break;
		it->dn = r.dn ? strdup(r.dn) : NULL;
		plan_upsert(it, json_incref(r.resource), r.hash);
		it->member_dns = r.member_dns;
		it->n_member_dns = r.n_member_dns;
		r.member_dns = NULL;
		r.n_member_dns = 0;
		break;
	case RETRY_DELETE:
	case RETRY_DISABLE:
		it = batch_add(s, d->b, r.kind == RETRY_DELETE ? IT_DELETE : IT_DISABLE, r.type, anchor);
		if (it == NULL)
			break;
		if (!it->has_old) {
			it->failed = true; /* not exported any more: nothing to do */
			break;
		}
		it->type = it->old.type;
		it->dn = it->old.dn ? strdup(it->old.dn) : NULL;
		break;
	case RETRY_REREAD:
		break;
	}
	retry_record_free(&r);
	return 0;
}

/* ---- delete protection ------------------------------------------------------ */

static bool is_delete(const struct item *it)
{
	return (it->kind == IT_DELETE || it->kind == IT_DISABLE) && !it->failed;
}

/*
 * How many of `n` more deletes may run now, `recent` having run in the window
 * (and in this batch): none while anything is staged (deletes stay in
 * order), else what the threshold and the percentage leave -- and with
 * safety.on_threshold: stop, all or none.
 */
static size_t allowance(struct engine *e, size_t recent, size_t n)
{
	uint64_t objects = e->state->by_prefix[(unsigned char)OBJECT_KEY_OBJECT];
	size_t allowed;

	if (OBJECT_STAGED_COUNT(e->state->by_prefix) > 0)
		return 0;
	allowed = e->cfg.delete_threshold > recent ? e->cfg.delete_threshold - recent : 0;
	if (e->cfg.delete_threshold_percent > 0 && objects > 0) {
		size_t cap = (size_t)(objects * e->cfg.delete_threshold_percent / 100);
		cap = cap > recent ? cap - recent : 0;
		if (cap < allowed)
			allowed = cap;
	}
	if (n > allowed && e->cfg.delete_stop)
		allowed = 0;
	return allowed;
}

/*
 * The one place deletes are counted (engine.h): before any request of the
 * batch leaves, its deletes plus those executed in the window must stay
 * within the threshold; what would cross it is staged. While anything is
 * staged, every later delete is staged too, so that deletes stay in order.
 */
static void protect_deletes(struct session *s, struct batch *b)
{
	struct engine *e = s->e;
	size_t n = 0, allowed, recent, i, k = 0;
	char detail[400];

	if (b->decision || b->repair)
		return;
	for (i = 0; i < b->n; i++)
		if (is_delete(b->items[i]))
			n++;
	if (n == 0)
		return;
	recent = window_count(e, 0, NULL);
	allowed = allowance(e, recent, n);
	if (n <= allowed)
		return;
	for (i = 0; i < b->n; i++) {
		struct item *it = b->items[i];
		if (!is_delete(it) || k++ < allowed)
			continue;
		it->kind = IT_STAGE;
	}
	snprintf(detail, sizeof detail,
		 "staged=%zu executed_now=%zu executed_in_window=%zu threshold=%u percent=%u window_s=%u "
		 "(canopyctl deletes list, then approve or reject)",
		 n - allowed, allowed, recent, e->cfg.delete_threshold, e->cfg.delete_threshold_percent,
		 e->cfg.delete_window_s ? e->cfg.delete_window_s : 300);
	engine_log(e, L_WARN, "delete threshold reached: deletes staged until an operator decides", detail);
}

/*
 * Member removals count against the same threshold and window as deletes
 * (one place for both: what protect_deletes let run in this batch, plus the
 * window). What would cross it is held: the member stays in the group (in the
 * target and in the record) and an "m:" key waits for the operator.
 */
static void protect_members(struct session *s, struct batch *b)
{
	struct engine *e = s->e;
	size_t n = 0, deletes = 0, recent, allowed, i, j, k = 0, held = 0;
	char detail[300];

	if (b->decision || b->repair)
		return;
	for (i = 0; i < b->n; i++) {
		if (is_delete(b->items[i]))
			deletes++;
		if (b->items[i]->remove != NULL && !b->items[i]->member_decision)
			n += json_array_size(b->items[i]->remove);
	}
	if (n == 0)
		return;
	recent = window_count(e, 0, NULL) + deletes;
	allowed = allowance(e, recent, n);
	if (n <= allowed)
		return;
	for (i = 0; i < b->n; i++) {
		struct item *it = b->items[i];
		json_t *keep;
		if (it->remove == NULL || it->member_decision || json_array_size(it->remove) == 0)
			continue;
		if ((keep = json_array()) == NULL)
			abort();
		for (j = 0; j < json_array_size(it->remove); j++) {
			if (k++ < allowed) {
				json_array_append(keep, json_array_get(it->remove, j));
				continue;
			}
			/* held: still a member, as far as the record knows */
			strv_push(&it->held, &it->n_held, it->rm_anchors[j]);
			strv_push(&it->add_anchors, &it->n_add_anchors, it->rm_anchors[j]);
			log_op(e, it, "staged-member-removal", "held",
			       "delete threshold: member removal held until approved (canopyctl deletes list)");
			held++;
		}
		json_decref(it->remove);
		it->remove = keep;
	}
	snprintf(detail, sizeof detail,
		 "member_removals_staged=%zu executed_now=%zu executed_in_window=%zu threshold=%u window_s=%u "
		 "(canopyctl deletes list, then approve or reject)",
		 held, allowed, recent, e->cfg.delete_threshold,
		 e->cfg.delete_window_s ? e->cfg.delete_window_s : 300);
	engine_log(e, L_WARN, "delete threshold reached: group member removals staged until an operator decides",
		   detail);
}

/* ---- quarantine ------------------------------------------------------------- */

/* Why this leader cannot export right now (NULL: it can), with detail. */
static const char *quarantine_of(struct session *s, char *detail, size_t len)
{
	struct engine *e = s->e;
	struct scim_stats ts;

	detail[0] = '\0';
	if (s->start_problem[0]) {
		snprintf(detail, len, "%s", s->start_problem);
		return strncmp(s->start_problem, "target", 6) == 0 ? "target_error" : "source_error";
	}
	if (s->source_reported && !s->source_connected) {
		snprintf(detail, len, "%s", s->source_message);
		return source_problem_name(s->source_problem ? s->source_problem : SOURCE_UNREACHABLE);
	}
	if (s->tgt != NULL) {
		scim_stats(s->tgt, &ts);
		if (ts.quarantined) {
			snprintf(detail, len, "%s", ts.quarantine_detail);
			if (strcmp(ts.quarantine_reason, "unauthorized") == 0)
				return "target_unauthorized";
			if (strcmp(ts.quarantine_reason, "server_errors") == 0)
				return "target_server_errors";
			return "target_unreachable";
		}
	}
	if (OBJECT_STAGED_COUNT(e->state->by_prefix) > 0) {
		snprintf(detail, len, "%llu deletes staged: canopyctl deletes list, then approve or reject",
			 (unsigned long long)OBJECT_STAGED_COUNT(e->state->by_prefix));
		return "delete_threshold";
	}
	return NULL;
}

static void on_q_committed(void *arg, int status)
{
	struct session *s = arg;
	(void)status;
	s->q_committing = false;
	if (--s->open == 0) /* only once stopping: the timers hold it open until then */
		session_end(s);
}

/*
 * Say it once: log entering and leaving quarantine, and replicate the reason
 * ("q:") so that every node's status shows it, not only the leader's.
 */
static void quarantine_update(struct session *s)
{
	static const char qkey[] = {OBJECT_KEY_QUARANTINE, ':'};
	struct engine *e = s->e;
	char detail[300], val[400];
	const char *reason = quarantine_of(s, detail, sizeof detail);
	const void *cur;
	size_t curlen;
	bool have = state_get(e->state, qkey, sizeof qkey, &cur, &curlen);
	struct state_batch sb;
	struct raft_buffer buf;
	int n;

	if (strcmp(reason ? reason : "", e->logged_reason) != 0) {
		if (reason != NULL)
			engine_log(e, L_WARN, "sync quarantined", detail[0] ? detail : reason);
		else
			engine_log(e, L_INFO, "sync quarantine cleared", e->logged_reason);
		snprintf(e->logged_reason, sizeof e->logged_reason, "%s", reason ? reason : "");
	}
	if (s->q_committing || !leader_may_write(&e->node->leader))
		return;
	n = reason ? snprintf(val, sizeof val, "%s\n%s", reason, detail) : 0;
	if (n < 0 || (size_t)n >= sizeof val)
		n = (int)sizeof val - 1;
	if (reason ? have && curlen >= strlen(reason) + 1 && memcmp(cur, reason, strlen(reason)) == 0 &&
			     ((const char *)cur)[strlen(reason)] == '\n'
		   : !have)
		return; /* the replicated reason is current (the detail may drift) */
	state_batch_init(&sb);
	if (reason)
		state_batch_put(&sb, qkey, sizeof qkey, val, (size_t)n);
	else
		state_batch_del(&sb, qkey, sizeof qkey);
	if (state_batch_encode(&sb, &buf) == 0) {
		if (node_apply(e->node, &buf, on_q_committed, s) == 0) {
			s->q_committing = true;
			s->open++;
		} else {
			raft_free(buf.base);
		}
	}
	state_batch_close(&sb);
}

static void on_tick(uv_timer_t *t)
{
	struct session *s = t->data;
	struct scim_stats ts;

	if (s->stopping)
		return;
	if (s->tgt != NULL) {
		scim_stats(s->tgt, &ts);
		if (s->target_was_quarantined && !ts.quarantined) {
			/* the target is back: everything held is due now */
			s->retry_now = s->retry_due.count > 0;
		}
		s->target_was_quarantined = ts.quarantined;
	}
	quarantine_update(s);
	pump(s);
}

static void pump(struct session *s)
{
	struct engine *e = s->e;
	struct batch *b;
	size_t max = batch_max(e), taken = 0;

	if (s->stopping || s->batch != NULL)
		return;
	if (s->head == NULL && s->pending_decision == 0 && !s->repair_due && !retry_due_now(s))
		return;
	/* Fencing (docs/architecture.md, one exporter at a time): no batch without a live lease. */
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
	} else if (retry_due_now(s) && (s->head == NULL || !s->last_was_retry)) {
		/* the retry set and new changes take turns: neither starves */
		struct due_ctx d = {.s = s, .b = b, .now = s->retry_now ? UINT64_MAX : unix_ms(), .max = max};
		size_t i;
		b->retry_batch = true;
		s->retry_now = false;
		s->last_was_retry = true;
		strmap_foreach(&s->retry_due, plan_due, &d);
		for (i = 0; i < d.n_stale; i++) {
			strmap_del(&s->retry_due, d.stale[i]);
			free(d.stale[i]);
		}
		retry_recompute_next(s);
	} else {
		s->last_was_retry = false;
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
	protect_deletes(s, b);
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
		s->source_reported = true;
		s->source_problem = ev->problem;
		snprintf(s->source_message, sizeof s->source_message, "%s",
			 ev->message ? ev->message : "");
		quarantine_update(s);
	}
	q = malloc(sizeof *q);
	if (q == NULL)
		abort(); /* dropping an event would lose a change: the OOM policy is to stop */
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

static int collect_retry(void *ctx, const void *key, size_t klen, const void *val, size_t vlen)
{
	struct session *s = ctx;
	struct retry_record r;
	char anchor[KEY_MAX], err[128];

	if (klen < 3 || klen >= sizeof anchor || ((const char *)key)[0] != OBJECT_KEY_RETRY)
		return 0;
	memcpy(anchor, (const char *)key + 2, klen - 2);
	anchor[klen - 2] = '\0';
	if (retry_record_decode(val, vlen, &r, err, sizeof err) != 0)
		return 0;
	if (strmap_put(&s->retry_due, anchor, (void *)(uintptr_t)r.next_at_ms) != 0)
		abort();
	retry_record_free(&r);
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

static void on_relead_closed(uv_handle_t *h)
{
	struct engine *e = h->data;
	void (*done)(void *) = e->close_done;
	void *data = e->close_data;
	provlog_close(&e->log);
	strv_free(e->attrs, e->n_attrs);
	free(e);
	if (done)
		done(data);
}

static void engine_free(struct engine *e)
{
	uv_timer_stop(&e->relead);
	uv_close((uv_handle_t *)&e->relead, on_relead_closed);
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
	strmap_clear(&s->retry_due);
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
	strmap_init(&s->retry_due, NULL);
	state_foreach(e->state, collect_retry, s);
	retry_recompute_next(s);
	uv_timer_init(e->loop, &s->retry);
	s->retry.data = s;
	uv_timer_init(e->loop, &s->lease);
	s->lease.data = s;
	uv_timer_start(&s->lease, on_lease_check, 1,
		       /* well inside the lease's slack, 0.2 T' (docs/architecture.md) */
		       node_raft_timeout_ms(e->node->election_timeout_ms) / 10
			       ? node_raft_timeout_ms(e->node->election_timeout_ms) / 10
			       : 2);
	uv_timer_init(e->loop, &s->tick);
	s->tick.data = s;
	uv_timer_start(&s->tick, on_tick, RETRY_TICK_MS, RETRY_TICK_MS);
	s->open = 3; /* the timers */
	state_foreach(e->state, index_record, s);
	strmap_init(&s->in_doubt, NULL);
	state_foreach(e->state, collect_in_doubt, s);
	uv_timer_init(e->loop, &s->repair_timer);
	s->repair_timer.data = s;
	s->open++;
	if (s->in_doubt.count > 0) {
		/* The old leader's lease ended before we could win (leader.h),
		 * but a request it had on the wire may still land: no later than
		 * its own timeout (target.timeout_ms) after it left. Repair once
		 * that has passed, plus T of slack -- earlier, a late write
		 * could land after the repair (seen once failovers became fast). */
		uint64_t timeout = e->cfg.target.timeout_ms ? e->cfg.target.timeout_ms : 30000;
		uint64_t wait = timeout + e->node->election_timeout_ms;
		if (wait < 2 * (uint64_t)e->node->election_timeout_ms)
			wait = 2 * (uint64_t)e->node->election_timeout_ms;
		uv_timer_start(&s->repair_timer, on_repair_due, wait, 0);
	}
	strmap_init(&s->scope, NULL);
	s->scope_on = e->cfg.user_member_of != NULL && e->cfg.user_member_of[0] != '\0';
	if (s->scope_on)
		scope_compute(s);
	e->s = s;
	e->sessions++;
	e->st.state = "starting";

	rv = scim_target_start(&s->tgt, e->loop, &e->cfg.target, err, sizeof err);
	if (rv != 0) {
		snprintf(s->start_problem, sizeof s->start_problem, "target: %.200s", err);
		quarantine_update(s);
		return;
	}
	s->open++;
	scim_set_fence(s->tgt, e->cfg.node_id, s->term);
	scim_set_cluster(s->tgt, cluster_id_get(e->state)); /* committed before engine_lead */
	rv = ldap_source_start(&s->src, e->loop, &e->cfg.source, e->state->cursor,
			       e->state->cursor_len, on_source_event, s, err, sizeof err);
	if (rv != 0) {
		snprintf(s->start_problem, sizeof s->start_problem, "source: %.200s", err);
		quarantine_update(s);
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
	uv_timer_stop(&s->tick);
	uv_close((uv_handle_t *)&s->tick, on_timer_closed);
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
	if (OBJECT_STAGED_COUNT(e->state->by_prefix) == 0) {
		snprintf(errmsg, errlen, "no staged deletes");
		return -ENOENT;
	}
	e->s->pending_decision = approve ? 1 : 2;
	pump(e->s);
	return 0;
}

void engine_stats(struct engine *e, struct engine_stats *out)
{
	static const char qkey[] = {OBJECT_KEY_QUARANTINE, ':'};
	struct session *s = e->s;
	const char *reason;
	const void *q;
	size_t qlen;

	*out = e->st;
	out->pending_deletes = OBJECT_STAGED_COUNT(e->state->by_prefix);
	out->quarantine_reason[0] = out->quarantine_detail[0] = '\0';
	if (s == NULL) {
		out->state = e->closing ? "stopping" : "standby";
		/* the leader's quarantine is replicated: every node says it */
		if (!e->closing && state_get(e->state, qkey, sizeof qkey, &q, &qlen) && qlen > 0) {
			const char *nl = memchr(q, '\n', qlen);
			size_t rl = nl ? (size_t)(nl - (const char *)q) : qlen;
			out->state = "quarantined";
			snprintf(out->quarantine_reason, sizeof out->quarantine_reason, "%.*s", (int)rl,
				 (const char *)q);
			if (nl)
				snprintf(out->quarantine_detail, sizeof out->quarantine_detail, "%.*s",
					 (int)(qlen - rl - 1), nl + 1);
		}
		return;
	}
	out->source_connected = s->source_connected;
	snprintf(out->source_message, sizeof out->source_message, "%s", s->source_message);
	if (s->tgt)
		scim_stats(s->tgt, &out->target);
	reason = quarantine_of(s, out->quarantine_detail, sizeof out->quarantine_detail);
	if (reason != NULL) {
		out->state = "quarantined";
		snprintf(out->quarantine_reason, sizeof out->quarantine_reason, "%s", reason);
	} else if (s->refreshing[OBJECT_USER] || s->refreshing[OBJECT_GROUP]) {
		out->state = "refreshing";
	} else if (s->batch || s->head || retry_due_now(s)) {
		out->state = "syncing";
	} else {
		out->state = s->src && s->source_reported ? "idle" : "starting";
	}
}

/* ---- restarting a session -------------------------------------------------- */

static void on_relead(uv_timer_t *t)
{
	struct engine *e = t->data;

	if (e->closing || e->s != NULL)
		return;
	if (!leader_ready(&e->node->leader))
		return; /* not leading: the agent starts the next session when it is */
	engine_lead(e);
}

/*
 * A batch's events were taken but its commit did not go through while this
 * node may still lead. Going on would let a later commit carry the cursor
 * past them, so the session ends and a new one starts from the committed
 * cursor, after a delay that grows while commits keep failing (a full disk).
 */
static void session_restart(struct engine *e, const char *why)
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

/* ---- resync ------------------------------------------------------------------ */

struct resync_ctx {
	struct engine *e;
	const char *dn;
	bool failed;
	struct state_batch *sb;
	size_t n;
	bool reread[3];
};

static int resync_one(void *ctx, const void *key, size_t klen, const void *val, size_t vlen)
{
	struct resync_ctx *c = ctx;
	char prefix = klen > 2 ? ((const char *)key)[0] : 0, rk[KEY_MAX], *enc;
	size_t rklen, enclen;
	char err[128];

	if (prefix == OBJECT_KEY_FAILED || prefix == OBJECT_KEY_RETRY) {
		struct retry_record r;
		if (retry_record_decode(val, vlen, &r, err, sizeof err) != 0)
			return 0;
		if ((c->dn == NULL && prefix == OBJECT_KEY_FAILED && c->failed) ||
		    (c->dn != NULL && r.dn != NULL && strcasecmp(r.dn, c->dn) == 0)) {
			if (r.kind == RETRY_REREAD) {
				/* nothing to write from here: read it again */
				c->reread[r.type == OBJECT_GROUP ? OBJECT_GROUP : OBJECT_USER] = true;
				state_batch_del(c->sb, key, klen);
			} else {
				rklen = snprintf(rk, sizeof rk, "%c%.*s", OBJECT_KEY_RETRY, (int)(klen - 1),
						 (const char *)key + 1);
				r.next_at_ms = 0;
				r.attempts = 0;
				if (retry_record_encode(&r, &enc, &enclen) != 0)
					abort();
				state_batch_put(c->sb, rk, rklen, enc, enclen);
				free(enc);
				if (prefix == OBJECT_KEY_FAILED)
					state_batch_del(c->sb, key, klen);
			}
			c->n++;
		}
		retry_record_free(&r);
	} else if (prefix == OBJECT_KEY_OBJECT && c->dn != NULL) {
		struct object_record o;
		if (object_record_decode(val, vlen, &o, err, sizeof err) != 0)
			return 0;
		if (o.dn != NULL && strcasecmp(o.dn, c->dn) == 0) {
			/* forget its content: the re-read writes it in full */
			o.hash = 0;
			if (object_record_encode(&o, &enc, &enclen) != 0)
				abort();
			state_batch_put(c->sb, key, klen, enc, enclen);
			free(enc);
			c->reread[o.type == OBJECT_GROUP ? OBJECT_GROUP : OBJECT_USER] = true;
			c->n++;
		}
		object_record_free(&o);
	}
	return 0;
}

struct resync_done {
	struct engine *e;
	bool reread[3];
};

static void on_resync_committed(void *arg, int status)
{
	struct resync_done *d = arg;
	struct session *s = d->e->s;

	if (status == 0 && s != NULL && !s->stopping) {
		state_foreach(d->e->state, collect_retry, s);
		s->retry_now = true;
		retry_recompute_next(s);
		if (s->src && d->reread[OBJECT_USER])
			ldap_source_refresh(s->src, OBJECT_USER);
		if (s->src && d->reread[OBJECT_GROUP])
			ldap_source_refresh(s->src, OBJECT_GROUP);
		pump(s);
	}
	free(d);
}

int engine_resync(struct engine *e, const char *dn, bool failed, size_t *n_out, char *errmsg, size_t errlen)
{
	struct state_batch sb;
	struct resync_ctx c = {.e = e, .dn = dn, .failed = failed, .sb = &sb};
	struct resync_done *d;
	struct raft_buffer buf = {NULL, 0};
	int rv;

	*n_out = 0;
	if (e->s == NULL || !leader_ready(&e->node->leader)) {
		snprintf(errmsg, errlen, "this node is not exporting (not the leader)");
		return -EAGAIN;
	}
	state_batch_init(&sb);
	state_foreach(e->state, resync_one, &c);
	if (c.n == 0) {
		state_batch_close(&sb);
		if (dn != NULL)
			snprintf(errmsg, errlen, "no exported, retrying or failed object has the DN %s", dn);
		else
			snprintf(errmsg, errlen, "no failed objects");
		return -ENOENT;
	}
	d = calloc(1, sizeof *d);
	if (d == NULL)
		abort();
	d->e = e;
	memcpy(d->reread, c.reread, sizeof d->reread);
	rv = state_batch_encode(&sb, &buf);
	state_batch_close(&sb);
	if (rv != 0 || (rv = node_apply(e->node, &buf, on_resync_committed, d)) != 0) {
		if (buf.base != NULL)
			raft_free(buf.base);
		free(d);
		snprintf(errmsg, errlen, "could not commit the resync (raft error %d)", rv);
		return -EAGAIN;
	}
	*n_out = c.n;
	return 0;
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
	e->rng = uv_hrtime() ^ ((uint64_t)cfg->node_id << 32) ^ 0x9e3779b97f4a7c15ULL;
	rv = provlog_open(&e->log, cfg->data_dir, errmsg, errlen);
	if (rv != 0) {
		free(e);
		return rv;
	}
	uv_timer_init(loop, &e->relead);
	e->relead.data = e;
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
