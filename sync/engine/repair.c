/*
 * sync/engine/repair.c -- putting the target right when the engine cannot
 * know what it holds: the in-doubt repair after a failover, and resync.
 *
 * In-doubt repair (docs/architecture.md, "Intents"): a batch commits an
 * intent ("i:<anchor>" = term) for every object before its requests leave,
 * and its own commit removes them. A new leader that finds intents of an
 * earlier leader cannot tell whether that leader's last requests landed --
 * or will still land: a request on the wire cannot be recalled. So it waits
 * until every such request has surely timed out, then forgets those
 * objects' content hashes and reads them from the source again (by DN, or
 * in full: repair_read); the objects are written again, overwriting any
 * late write.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "sync/engine/internal.h"

/* The in-doubt set: anchor -> (void *)(1 + its object type), the type from
 * the intent's "<term> <type>" (OBJECT_UNKNOWN for an intent of an older
 * canopy: the term alone). */
static int collect_in_doubt(void *ctx, const void *key, size_t klen, const void *val, size_t vlen)
{
	struct session *s = ctx;
	char anchor[KEY_MAX];
	const char *v = val, *sp = memchr(v, ' ', vlen);
	enum object_type t = OBJECT_UNKNOWN;

	if (!engine_key_anchor(key, klen, OBJECT_KEY_INTENT, anchor, sizeof anchor))
		return 0;
	if (sp != NULL) {
		size_t n = vlen - (size_t)(sp + 1 - v);
		if (n == 4 && memcmp(sp + 1, "user", 4) == 0)
			t = OBJECT_USER;
		else if (n == 5 && memcmp(sp + 1, "group", 5) == 0)
			t = OBJECT_GROUP;
	}
	engine_map_put(&s->in_doubt, anchor, (void *)(uintptr_t)(1 + (unsigned)t));
	return 0;
}

/* The old leader's lease has surely ended, and with it any write it had on
 * the wire: rewrite what it may have written (session_pump plans the repair batch). */
static void on_repair_due(uv_timer_t *t)
{
	struct session *s = t->data;

	if (s->stopping)
		return;
	s->repair_due = true;
	session_pump(s);
}

void repair_schedule(struct session *s)
{
	struct engine *e = s->e;
	uint64_t timeout, t, wait;

	state_foreach(e->state, collect_in_doubt, s);
	if (s->in_doubt.count == 0)
		return;
	/* The old leader's lease ended before we could write (docs/
	 * architecture.md, "Write lease"), but a request it had on the wire
	 * may still land: no later than its own timeout after it left. Repair
	 * once that has passed, plus T of slack -- earlier, a late write could
	 * land after the repair (seen once failovers became fast). */
	timeout = e->target->request_timeout_ms ? e->target->request_timeout_ms : DEFAULT_REQUEST_TIMEOUT_MS;
	t = e->log->failover_ms(e->log);
	wait = timeout + t;
	if (wait < 2 * t)
		wait = 2 * t;
	uv_timer_start(&s->repair_timer, on_repair_due, wait, 0);
}

/* ---- reading the repaired objects ------------------------------------------------ */

void repair_read(struct session *s, const struct batch *b)
{
	const char **dns, **anchors;
	enum object_type *types;
	size_t n = 0, k = 0;
	char why[200];

	for (size_t i = 0; i < b->n; i++)
		if (b->items[i]->kind == IT_REPAIR)
			n++;
	if (n == 0)
		return;
	dns = xcalloc(n, sizeof *dns);
	anchors = xcalloc(n, sizeof *anchors);
	types = xcalloc(n, sizeof *types);
	for (size_t i = 0; i < b->n; i++) {
		const struct item *it = b->items[i];
		if (it->kind != IT_REPAIR)
			continue;
		/* no record (a create that may have landed: a ghost record now,
		 * commit.c) or no DN: only a full read finds out */
		if (!it->has_old || it->old.dn == NULL ||
		    (it->old.type != OBJECT_USER && it->old.type != OBJECT_GROUP)) {
			snprintf(why, sizeof why, "%zu objects in doubt; full read: users and groups (one has no record "
				 "or DN: a create that may have landed)", n);
			engine_log(s->e, L_INFO, "in-doubt repair", why);
			reread_full(s, true, true);
			goto out;
		}
		dns[k] = it->old.dn;
		anchors[k] = it->anchor;
		types[k] = it->old.type;
		k++;
	}
	reread_start(s, REREAD_REPAIR, dns, anchors, types, k);
out:
	free(dns);
	free(anchors);
	free(types);
}

/* ---- resync ---------------------------------------------------------------------- */

struct resync_ctx {
	const char *dn;
	bool failed;
	struct state_batch *sb;
	size_t n;
	bool reread[3];
};

/* A failed or retrying object: back into the retry set, due now. */
static void resync_retry(struct resync_ctx *c, const void *key, size_t klen, char prefix, struct retry_record *r)
{
	char rk[KEY_MAX], *enc;
	size_t rklen, enclen;

	if (r->kind == RETRY_REREAD) {
		/* nothing to write from here: read it again */
		c->reread[r->type == OBJECT_GROUP ? OBJECT_GROUP : OBJECT_USER] = true;
		state_batch_del(c->sb, key, klen);
		return;
	}
	rklen = (size_t)snprintf(rk, sizeof rk, "%c%.*s", OBJECT_KEY_RETRY, (int)(klen - 1), (const char *)key + 1);
	r->next_at_ms = 0;
	r->attempts = 0;
	if (retry_record_encode(r, &enc, &enclen) != 0)
		xoom("retry_record_encode");
	state_batch_put(c->sb, rk, rklen, enc, enclen);
	free(enc);
	if (prefix == OBJECT_KEY_FAILED)
		state_batch_del(c->sb, key, klen);
}

static int resync_one(void *ctx, const void *key, size_t klen, const void *val, size_t vlen)
{
	struct resync_ctx *c = ctx;
	char prefix = klen > 2 ? ((const char *)key)[0] : 0, *enc, err[128];
	size_t enclen;

	if (prefix == OBJECT_KEY_FAILED || prefix == OBJECT_KEY_RETRY) {
		struct retry_record r;
		if (retry_record_decode(val, vlen, &r, err, sizeof err) != 0)
			return 0;
		if (r.member != NULL && prefix == OBJECT_KEY_FAILED) {
			/* a failed member (bisect.c): re-reading the groups plans
			 * each one's whole membership, so the value is sent again
			 * (and recorded again if it is still refused) */
			if ((c->dn == NULL && c->failed) ||
			    (c->dn != NULL && ((r.dn != NULL && strcasecmp(r.dn, c->dn) == 0) ||
					       (r.member_dn != NULL && strcasecmp(r.member_dn, c->dn) == 0)))) {
				state_batch_del(c->sb, key, klen);
				c->reread[OBJECT_GROUP] = true;
				c->n++;
			}
			retry_record_free(&r);
			return 0;
		}
		if ((c->dn == NULL && prefix == OBJECT_KEY_FAILED && c->failed) ||
		    (c->dn != NULL && r.dn != NULL && strcasecmp(r.dn, c->dn) == 0)) {
			resync_retry(c, key, klen, prefix, &r);
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
				xoom("object_record_encode");
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
	struct engine *e = d->e;
	struct session *s = e->s;

	if (status == 0 && s != NULL && !s->stopping) {
		retryset_load(s);
		s->retry_now = true;
		if (s->src && d->reread[OBJECT_USER])
			e->source->refresh(s->src, OBJECT_USER);
		if (s->src && d->reread[OBJECT_GROUP])
			e->source->refresh(s->src, OBJECT_GROUP);
		session_pump(s);
	}
	free(d);
}

int engine_resync(struct engine *e, const char *dn, bool failed, size_t *n_out, char *errmsg, size_t errlen)
{
	struct state_batch sb;
	struct resync_ctx c = {.dn = dn, .failed = failed, .sb = &sb};
	struct resync_done *d;
	int rv;

	*n_out = 0;
	if (e->s == NULL || !e->log->ready(e->log)) {
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
	d = xcalloc(1, sizeof *d);
	d->e = e;
	memcpy(d->reread, c.reread, sizeof d->reread);
	rv = e->log->propose(e->log, &sb, on_resync_committed, d);
	state_batch_close(&sb);
	if (rv != 0) {
		free(d);
		snprintf(errmsg, errlen, "could not commit the resync (raft error %d)", rv);
		return -EAGAIN;
	}
	*n_out = c.n;
	return 0;
}
