/*
 * sync/engine/bisect.c -- isolating the member values a target refuses.
 *
 * A group's member changes go out as one TARGET_MEMBERS operation (for SCIM,
 * one PATCH per members_per_patch values). A PATCH is atomic (RFC 7644
 * §3.5.2: "if any operation fails ... the entire request fails"), so a server
 * that refuses one value -- a nested group it does not take as a member, a
 * user it does not know -- refuses the whole change, and before this file one
 * nested reference cost a group all its user memberships.
 *
 * When the target says a refusal is about the values carried
 * (target_op.values_refused, target.h), the values not known to have landed
 * are bisected: each refused part is split in two and the halves are sent one
 * after the other, until every refused value stands alone; everything else is
 * applied. One part of a group is on the wire at a time (groups still run in
 * parallel), and a part whose sibling passed while their parent was refused
 * is known to hold a refused value: it is split without being sent.
 *
 * Cost: every request is a node of the bisection tree whose leaves are the k
 * refused values among n, and the tree has at most k * ceil(log2 n) refused
 * inner nodes, each with two children: at most 1 + 2 k ceil(log2 n) requests
 * for the group, about 2 log2 n per refused value. Bounded further by
 * BISECT_MAX_REFUSED per group and batch: a server that refuses every value
 * (a request it cannot take at all, misread as a value refusal) would else
 * cost 2n requests; past the cap, the values not sent yet are recorded as
 * failed without more requests ("not tried"), and a resync tries them again.
 *
 * A failure that is not about values (network, 5xx after retries, the group
 * gone) stops the bisection: what landed is recorded, the rest goes to the
 * retry set like any failed member change (exec.c, finish_members).
 *
 * What is recorded (commit.c calls bisect_commit): the group's record lists
 * the members actually in the target (a refused add is not a member, a
 * refused removal still is) and the refused anchors ("rf", object.h); each
 * refused value has a failed-member record "f:<group>#<member>" (retry.h)
 * naming the member, the target's status and detail, counted by status
 * (sync.failed) and listed by `canopyctl failed`. `canopyctl resync --failed`
 * drops it and re-reads the groups (repair.c), which sends the value again.
 */
#include <assert.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "sync/engine/internal.h"

enum bv_state {
	BV_PENDING,  /* not known yet */
	BV_APPLIED,  /* the target took it */
	BV_REFUSED,  /* the target refused it alone (or it is what a refused part had left) */
	BV_SKIPPED,  /* not tried: the cap of refused values was reached */
};

struct bvalue {
	const char *id;     /* borrowed from the item's add_ids / rm_ids */
	const char *anchor; /* borrowed from add_new / rm_anchors, or NULL */
	bool remove;
	enum bv_state st;
	long http;
	char *error;
};

struct brange {
	size_t lo, hi;  /* values [lo, hi) */
	bool known_bad; /* its parent was refused and its sibling passed */
	bool pair;      /* the left half: when it passes, its sibling is known bad */
};

struct bisect {
	struct bvalue *v;
	size_t n;
	struct brange *stack;
	size_t n_stack, cap;
	struct brange wire;  /* the part on the wire */
	const char **add, **rm; /* its values, for the op (borrowed strings) */
	size_t n_add, n_rm;
	unsigned requests, refused;
	bool verify;
	bool aborted;        /* a failure not about values: the retry set */
	long last_http;      /* the last refusal, for values refused without their own request */
	char last_error[512];
};

void bisect_free(struct item *it)
{
	struct bisect *bs = it->bis;

	if (bs == NULL)
		return;
	for (size_t i = 0; i < bs->n; i++)
		free(bs->v[i].error);
	free(bs->v);
	free(bs->stack);
	free(bs->add);
	free(bs->rm);
	free(bs);
	it->bis = NULL;
}

static void push(struct bisect *bs, struct brange r)
{
	if (bs->n_stack == bs->cap) {
		bs->cap = bs->cap ? 2 * bs->cap : 16;
		bs->stack = xrealloc(bs->stack, bs->cap * sizeof *bs->stack);
	}
	bs->stack[bs->n_stack++] = r;
}

static void refuse(struct bisect *bs, size_t i, long http, const char *error)
{
	bs->v[i].st = BV_REFUSED;
	bs->v[i].http = http;
	free(bs->v[i].error);
	bs->v[i].error = xstrdup(error);
	bs->refused++;
}

/* Split a refused part: the left half goes first. */
static void split(struct bisect *bs, struct brange r)
{
	size_t mid = r.lo + (r.hi - r.lo) / 2;

	push(bs, (struct brange){.lo = mid, .hi = r.hi});
	push(bs, (struct brange){.lo = r.lo, .hi = mid, .pair = true});
}

/* Send the next part that needs a request; false when none is left. */
static bool next(struct session *s, struct item *it)
{
	struct bisect *bs = it->bis;
	char why[160];

	while (bs->n_stack > 0) {
		struct brange r = bs->stack[--bs->n_stack];
		if (bs->refused >= BISECT_MAX_REFUSED) {
			snprintf(why, sizeof why,
				 "not tried: the target refused %u values of this group in this batch, the most canopy "
				 "isolates (canopyctl resync --failed sends them again)",
				 bs->refused);
			for (size_t i = r.lo; i < r.hi; i++) {
				bs->v[i].st = BV_SKIPPED;
				bs->v[i].error = xstrdup(why);
			}
			continue;
		}
		if (r.known_bad) {
			if (r.hi - r.lo == 1)
				refuse(bs, r.lo, bs->last_http, bs->last_error);
			else
				split(bs, r);
			continue;
		}
		bs->wire = r;
		bs->n_add = bs->n_rm = 0;
		for (size_t i = r.lo; i < r.hi; i++) {
			if (bs->v[i].remove)
				bs->rm[bs->n_rm++] = bs->v[i].id;
			else
				bs->add[bs->n_add++] = bs->v[i].id;
		}
		memset(&it->op, 0, sizeof it->op);
		it->op.target_id = it->rec.target_id;
		it->op.add = bs->add;
		it->op.n_add = bs->n_add;
		it->op.remove = bs->rm;
		it->op.n_remove = bs->n_rm;
		it->op.verify = bs->verify;
		bs->requests++;
		exec_submit(s, it, TARGET_MEMBERS);
		/* not taken (stopping): the item is cancelled, the batch redone */
		return !it->cancelled;
	}
	return false;
}

/* The first refusal: the values not known to have landed are bisected. */
static void start(struct item *it)
{
	const struct target_op *op = &it->op;
	struct bisect *bs = xcalloc(1, sizeof *bs);
	bool add_anchors = it->n_add_new == it->n_add_ids, rm_anchors = it->n_rm_anchors == it->n_rm_ids;
	size_t add_done = op->n_add_done <= it->n_add_ids ? op->n_add_done : 0;
	size_t rm_done = op->n_remove_done <= it->n_rm_ids ? op->n_remove_done : 0;
	size_t first = 0;

	bs->n = it->n_add_ids + it->n_rm_ids;
	bs->v = xcalloc(bs->n, sizeof *bs->v);
	bs->add = xcalloc(it->n_add_ids + 1, sizeof *bs->add);
	bs->rm = xcalloc(it->n_rm_ids + 1, sizeof *bs->rm);
	bs->verify = op->verify;
	bs->last_http = op->http_status;
	snprintf(bs->last_error, sizeof bs->last_error, "%s", op->error);
	/* landed first (earlier chunks): at the front, out of the bisection */
	for (size_t i = 0; i < add_done; i++)
		bs->v[first++] = (struct bvalue){.id = it->add_ids[i], .anchor = add_anchors ? it->add_new[i] : NULL,
						 .st = BV_APPLIED};
	for (size_t i = 0; i < rm_done; i++)
		bs->v[first++] = (struct bvalue){.id = it->rm_ids[i], .anchor = rm_anchors ? it->rm_anchors[i] : NULL,
						 .remove = true, .st = BV_APPLIED};
	size_t k = first;
	for (size_t i = add_done; i < it->n_add_ids; i++)
		bs->v[k++] = (struct bvalue){.id = it->add_ids[i], .anchor = add_anchors ? it->add_new[i] : NULL};
	for (size_t i = rm_done; i < it->n_rm_ids; i++)
		bs->v[k++] = (struct bvalue){.id = it->rm_ids[i], .anchor = rm_anchors ? it->rm_anchors[i] : NULL,
					     .remove = true};
	assert(k == bs->n);
	it->bis = bs;
	if (first < bs->n)
		push(bs, (struct brange){.lo = first, .hi = bs->n, .known_bad = true});
}

bool bisect_on_answer(struct session *s, struct item *it)
{
	struct target_op *op = &it->op;
	struct bisect *bs = it->bis;

	if (op->action != TARGET_MEMBERS || op->status == -ECANCELED || it->cancelled)
		return false;
	if (bs == NULL) {
		if (op->status == 0 || !op->permanent || !op->values_refused)
			return false;
		start(it);
		return next(s, it);
	}
	if (bs->aborted)
		return false;
	if (op->status == 0) {
		for (size_t i = bs->wire.lo; i < bs->wire.hi; i++)
			bs->v[i].st = BV_APPLIED;
		if (bs->wire.pair && bs->n_stack > 0)
			bs->stack[bs->n_stack - 1].known_bad = true;
	} else if (op->permanent && op->values_refused) {
		bs->last_http = op->http_status;
		snprintf(bs->last_error, sizeof bs->last_error, "%s", op->error);
		if (bs->wire.hi - bs->wire.lo == 1)
			refuse(bs, bs->wire.lo, op->http_status, op->error);
		else
			split(bs, bs->wire);
	} else {
		bs->aborted = true; /* it->op keeps the failure for item_failed */
		return false;
	}
	if (next(s, it))
		return true;
	/* done: the item reads as answered (finish_members looks at it->bis) */
	if (!it->cancelled) {
		op->status = 0;
		op->permanent = op->values_refused = false;
	}
	return false;
}

bool bisect_aborted(const struct item *it)
{
	return it->bis != NULL && it->bis->aborted;
}

unsigned bisect_requests(const struct item *it)
{
	return it->bis != NULL ? it->bis->requests : 0;
}

/* ---- the outcome ------------------------------------------------------------ */

/* An anchor's type and DN: this batch's item, else its record. */
static enum object_type member_info(struct session *s, const char *anchor, char *dn, size_t dnlen)
{
	struct item *m = anchor ? strmap_get(&s->batch->by_anchor, anchor) : NULL;
	struct object_record r;
	enum object_type t = OBJECT_UNKNOWN;

	dn[0] = '\0';
	if (m != NULL && m->dn != NULL) {
		snprintf(dn, dnlen, "%s", m->dn);
		return m->type;
	}
	if (anchor != NULL && engine_record(s->e->state, OBJECT_KEY_OBJECT, anchor, &r)) {
		snprintf(dn, dnlen, "%s", r.dn ? r.dn : "");
		t = r.type;
		object_record_free(&r);
	}
	return t;
}

/* A bisection stopped by a failure that is not about values: the record
 * lists what landed (the retry set sends the rest with a read-back). */
void bisect_partial(struct item *it)
{
	struct bisect *bs = it->bis;

	for (size_t i = 0; i < bs->n; i++) {
		if (bs->v[i].st != BV_APPLIED || bs->v[i].anchor == NULL)
			continue;
		if (bs->v[i].remove)
			engine_strv_remove(it->rec.members, &it->rec.n_members, bs->v[i].anchor);
		else if (!engine_strv_has(it->rec.members, it->rec.n_members, bs->v[i].anchor))
			engine_strv_push(&it->rec.members, &it->rec.n_members, bs->v[i].anchor);
	}
	it->write_rec = true;
}

void bisect_finish(struct session *s, struct item *it)
{
	struct engine *e = s->e;
	struct bisect *bs = it->bis;
	char dn[DN_MAX], detail[1600], nested[1024];
	size_t n_bad = 0, n_groups = 0, o = 0;

	nested[0] = '\0';
	for (size_t i = 0; i < bs->n; i++) {
		struct bvalue *v = &bs->v[i];
		if (v->st != BV_REFUSED && v->st != BV_SKIPPED)
			continue;
		n_bad++;
		enum object_type t = member_info(s, v->anchor, dn, sizeof dn);
		if (v->anchor != NULL) {
			/* the record says what the target has: a refused add is not
			 * a member, a refused removal still is */
			if (v->remove) {
				if (!engine_strv_has(it->add_anchors, it->n_add_anchors, v->anchor))
					engine_strv_push(&it->add_anchors, &it->n_add_anchors, v->anchor);
			} else {
				engine_strv_remove(it->add_anchors, &it->n_add_anchors, v->anchor);
			}
			engine_strv_push(&it->refused_now, &it->n_refused_now, v->anchor);
		}
		if (t == OBJECT_GROUP && !v->remove && v->st == BV_REFUSED) {
			n_groups++;
			if (o < sizeof nested)
				o += (size_t)snprintf(nested + o, sizeof nested - o, "%s%s", o ? "; " : "",
						      dn[0] ? dn : v->anchor);
		}
		snprintf(detail, sizeof detail, "member %s (%s, id %s) of group %s: %s: %s", dn[0] ? dn : "?",
			 v->anchor ? v->anchor : "?", v->id, it->dn ? it->dn : it->anchor,
			 v->remove ? "removal refused" : "add refused",
			 v->error ? v->error : "");
		struct provlog_entry le = {
			.cycle = e->st.cycle, .change = it->change, .node = e->cfg.node_id, .term = s->term,
			.anchor = it->anchor, .dn = it->dn, .type = object_type_name(it->type),
			.action = v->remove ? "member-remove" : "member-add",
			.result = v->st == BV_REFUSED ? "error" : "skipped", .target_id = it->rec.target_id,
			.error = detail, .http_status = v->st == BV_REFUSED ? v->http : 0,
		};
		provlog_write(&e->provlog, &le);
		e->st.errors_total++;
		engine_log(e, L_ERROR, "the target refused a group member (the group's other members went through)",
			   detail);
	}
	/* The values were refused, and all of them are groups: the server does
	 * not take nested groups. Said once per group while this agent runs;
	 * the provisioning log has every refusal. */
	if (n_groups > 0 && n_groups == n_bad && !strmap_has(&e->nested_told, it->anchor)) {
		engine_map_put(&e->nested_told, it->anchor, (void *)1);
		snprintf(detail, sizeof detail,
			 "group %s: the target refused %zu nested group(s) as members: %s. Their users are not "
			 "members of it in the target; target.nested_groups: flatten sends each group's users "
			 "instead, skip sends only user members (docs/targets.md)",
			 it->dn ? it->dn : it->anchor, n_groups, nested);
		engine_log(e, L_WARN, "the target does not take groups as group members", detail);
	}
}

/* The failed-member record of value v. */
static void put_failed(struct session *s, struct state_batch *sb, const struct item *it, const struct bvalue *v)
{
	struct retry_record r;
	char both[KEY_MAX], key[KEY_MAX], dn[DN_MAX], *enc;
	size_t klen, enclen;

	memset(&r, 0, sizeof r);
	r.kind = RETRY_REREAD; /* an older canopy's resync re-reads the groups: right for it too */
	r.type = OBJECT_GROUP;
	r.dn = it->dn;
	r.hash = it->hash;
	r.attempts = 1;
	r.first_at_ms = engine_unix_ms();
	r.http_status = v->st == BV_REFUSED ? v->http : 0;
	r.error = v->error;
	r.member = (char *)v->anchor;
	(void)member_info(s, v->anchor, dn, sizeof dn);
	r.member_dn = dn[0] ? dn : NULL;
	r.member_remove = v->remove;
	snprintf(both, sizeof both, "%s#%s", it->anchor, v->anchor);
	klen = object_key(OBJECT_KEY_FAILED, both, key, sizeof key);
	if (retry_record_encode(&r, &enc, &enclen) != 0)
		xoom("retry_record_encode");
	state_batch_put(sb, key, klen, enc, enclen);
	free(enc);
}

static void del_failed(struct session *s, struct state_batch *sb, const char *group, const char *member)
{
	char both[KEY_MAX], key[KEY_MAX];
	const void *v;
	size_t vlen, klen;

	snprintf(both, sizeof both, "%s#%s", group, member);
	klen = object_key(OBJECT_KEY_FAILED, both, key, sizeof key);
	if (state_get(s->e->state, key, klen, &v, &vlen))
		state_batch_del(sb, key, klen);
}

void bisect_commit(struct session *s, struct state_batch *sb, struct item *it)
{
	if (it->type != OBJECT_GROUP || !it->has_old)
		goto put;
	if (it->kind == IT_DELETE) {
		if (!it->failed)
			for (size_t i = 0; i < it->old.n_refused; i++)
				del_failed(s, sb, it->anchor, it->old.refused[i]);
		return;
	}
	if (it->failed || !it->write_rec)
		return;
	for (size_t i = 0; i < it->old.n_refused; i++)
		if (!engine_strv_has(it->rec.refused, it->rec.n_refused, it->old.refused[i]))
			del_failed(s, sb, it->anchor, it->old.refused[i]);
put:
	if (it->bis == NULL || it->bis->aborted || it->failed || !it->write_rec)
		return;
	for (size_t i = 0; i < it->bis->n; i++) {
		const struct bvalue *v = &it->bis->v[i];
		if ((v->st == BV_REFUSED || v->st == BV_SKIPPED) && v->anchor != NULL)
			put_failed(s, sb, it, v);
	}
}
