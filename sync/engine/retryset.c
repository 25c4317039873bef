/*
 * sync/engine/retryset.c -- the retry set as this leader schedules it.
 *
 * The set itself is replicated ("r:" records, sync/state/retry.h): a change
 * the target has not taken yet, with its next try. This file keeps an
 * in-memory index of when each is due, loaded when a session starts and kept
 * current by every commit, so that session_pump() knows without scanning the state
 * whether a retry batch is due. Retry batches and new changes take turns.
 */
#include <stdio.h>
#include <time.h>

#include "sync/engine/internal.h"

uint64_t engine_unix_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_REALTIME, &ts);
	return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

uint64_t engine_rnd(struct engine *e)
{
	/* xorshift64*: jitter only, no secrecy needed */
	e->rng ^= e->rng >> 12;
	e->rng ^= e->rng << 25;
	e->rng ^= e->rng >> 27;
	return e->rng * 2685821657736338717ULL;
}

static int min_due(void *ctx, const char *anchor, void *v)
{
	uint64_t *min = ctx, at = (uint64_t)(uintptr_t)v;

	(void)anchor;
	if (*min == 0 || at < *min)
		*min = at;
	return 0;
}

/* Next tries are wall-clock times of the leader that wrote them (they are
 * replicated, and a new leader keeps the schedule). Agents' clocks disagree,
 * and a clock can jump: a next try further away than twice the longest
 * backoff (a backoff is at most 1.2 times it, sync/state/retry.c) was set by
 * a clock ahead of this one (another leader's, or this leader's before its
 * clock stepped back). Waiting for it would hold a change for as long as the
 * clocks disagree -- an hour for a wrong time zone -- so such a try is due
 * now; the replicated record keeps the writer's time, only this leader's
 * index is corrected. */
static uint64_t latest_sane(const struct session *s, uint64_t now)
{
	unsigned max_s = s->e->cfg.retry_max_s ? s->e->cfg.retry_max_s : DEFAULT_RETRY_MAX_S;

	return now + 2 * (uint64_t)max_s * 1000;
}

struct clamp_ctx {
	uint64_t latest;
	char **fix;
	size_t n;
};

static int find_insane(void *ctx, const char *anchor, void *v)
{
	struct clamp_ctx *c = ctx;

	if ((uint64_t)(uintptr_t)v > c->latest)
		c->fix[c->n++] = xstrdup(anchor);
	return 0;
}

size_t retryset_clamp(struct session *s)
{
	uint64_t now = engine_unix_ms();
	struct clamp_ctx c = {latest_sane(s, now), xcalloc(s->retry_due.count + 1, sizeof(char *)), 0};

	strmap_foreach(&s->retry_due, find_insane, &c);
	for (size_t i = 0; i < c.n; i++) {
		engine_map_put(&s->retry_due, c.fix[i], (void *)(uintptr_t)1); /* long due */
		free(c.fix[i]);
	}
	free(c.fix);
	return c.n;
}

void retryset_recompute(struct session *s)
{
	s->retry_next_at = 0;
	strmap_foreach(&s->retry_due, min_due, &s->retry_next_at);
	if (s->retry_next_at == 0 && s->retry_due.count > 0)
		s->retry_next_at = 1; /* due at once */
}

bool retryset_due_now(const struct session *s)
{
	uint64_t now = engine_unix_ms();

	/* (beyond latest_sane: this clock stepped back since it was computed) */
	return s->retry_due.count > 0 &&
	       (s->retry_now || s->retry_next_at <= now || s->retry_next_at > latest_sane(s, now));
}

static int collect_retry(void *ctx, const void *key, size_t klen, const void *val, size_t vlen)
{
	struct session *s = ctx;
	struct retry_record r;
	char anchor[KEY_MAX], err[128];

	if (!engine_key_anchor(key, klen, OBJECT_KEY_RETRY, anchor, sizeof anchor))
		return 0;
	if (retry_record_decode(val, vlen, &r, err, sizeof err) != 0)
		return 0;
	engine_map_put(&s->retry_due, anchor, (void *)(uintptr_t)r.next_at_ms);
	retry_record_free(&r);
	return 0;
}

void retryset_load(struct session *s)
{
	size_t n;

	state_foreach(s->e->state, collect_retry, s);
	if ((n = retryset_clamp(s)) > 0) {
		char detail[64];
		snprintf(detail, sizeof detail, "count=%zu", n);
		engine_log(s->e, L_WARN,
			   "retries scheduled further ahead than twice the longest backoff are due now "
			   "(the clock of the leader that scheduled them was ahead of this one)", detail);
	}
	retryset_recompute(s);
}
