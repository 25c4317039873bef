/*
 * sync/engine/retryset.c -- the retry set as this leader schedules it.
 *
 * The set itself is replicated ("r:" records, sync/state/retry.h): a change
 * the target has not taken yet, with its next try. This file keeps an
 * in-memory index of when each is due, loaded when a session starts and kept
 * current by every commit, so that session_pump() knows without scanning the state
 * whether a retry batch is due. Retry batches and new changes take turns.
 */
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

void retryset_recompute(struct session *s)
{
	s->retry_next_at = 0;
	strmap_foreach(&s->retry_due, min_due, &s->retry_next_at);
	if (s->retry_next_at == 0 && s->retry_due.count > 0)
		s->retry_next_at = 1; /* due at once */
}

bool retryset_due_now(const struct session *s)
{
	return s->retry_due.count > 0 && (s->retry_now || s->retry_next_at <= engine_unix_ms());
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
	state_foreach(s->e->state, collect_retry, s);
	retryset_recompute(s);
}
