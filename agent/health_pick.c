/*
 * agent/health_pick.c -- whom a leader hands over to for health (see
 * health_pick.h).
 */
#include "agent/health_pick.h"

#include <errno.h>

const char *health_side_name(enum health_side s)
{
	return s == HEALTH_SIDE_SOURCE ? "source" : "target";
}

static bool fresh(const struct health_candidate *c, uint64_t now)
{
	return c->received_ms != 0 && now >= c->received_ms &&
	       c->age_ms + (now - c->received_ms) <= HEALTH_FRESH_MS;
}

bool health_pick_side_fits(const struct health_candidate *c, enum health_side s, uint64_t since)
{
	if (since == 0)
		return true; /* this side works here: not a reason to move */
	/* The check must be newer than the fault, not just recent: a check
	 * made before the leader's failure began cannot have met the fault.
	 * checked_after_ms == 0 (unknown) never passes, since is never 0 here. */
	return c->state[s] == HEALTH_OK && c->checked_after_ms >= since;
}

uint64_t health_pick(const struct health_candidate *c, size_t n,
		     const uint64_t failing_since[HEALTH_SIDES], uint64_t now)
{
	uint64_t best = 0;
	int best_score = -1;
	size_t i;
	int s;

	for (i = 0; i < n; i++) {
		int score = 0;
		bool fit = true;
		if (!fresh(&c[i], now))
			continue;
		/* A voter that itself handed over for health a short while ago
		 * probes ok but failed as leader (e.g. the sync's own search is
		 * refused where the probe's read is not): choosing it again would
		 * make two such nodes pass leadership back and forth. */
		if (c[i].handed_over_at != 0 && now - c[i].handed_over_at < HEALTH_RECENT_HANDOVER_MS)
			continue;
		for (s = 0; s < HEALTH_SIDES; s++) {
			if (!health_pick_side_fits(&c[i], (enum health_side)s, failing_since[s]))
				fit = false;
			if (c[i].state[s] == HEALTH_OK)
				score += 2;
		}
		if (!fit)
			continue;
		if (c[i].reachable == 1)
			score += 1;
		if (score > best_score) {
			best_score = score;
			best = c[i].id;
		}
	}
	return best;
}

uint64_t health_checked_after(const json_t *after, uint64_t self, uint64_t term, uint64_t now)
{
	json_t *leader, *t, *ms;

	if (!json_is_object(after))
		return 0;
	leader = json_object_get(after, "leader");
	t = json_object_get(after, "term");
	ms = json_object_get(after, "leader_ms");
	if (!json_is_integer(leader) || !json_is_integer(t) || !json_is_integer(ms))
		return 0;
	if (json_integer_value(leader) <= 0 || (uint64_t)json_integer_value(leader) != self ||
	    json_integer_value(t) <= 0 || (uint64_t)json_integer_value(t) != term ||
	    json_integer_value(ms) <= 0 || (uint64_t)json_integer_value(ms) > now)
		return 0;
	return (uint64_t)json_integer_value(ms);
}

int health_view_parse(const json_t *o, uint64_t *leader_ms, uint64_t *failing_since_ms)
{
	json_t *ms, *f;

	*leader_ms = *failing_since_ms = 0;
	if (!json_is_object(o))
		return -EPROTO;
	ms = json_object_get(o, "leader_ms");
	f = json_object_get(o, "failing_since_ms");
	if (!json_is_integer(ms) || json_integer_value(ms) <= 0)
		return -EPROTO;
	if (f != NULL && (!json_is_integer(f) || json_integer_value(f) <= 0 ||
			  json_integer_value(f) > json_integer_value(ms)))
		return -EPROTO;
	*leader_ms = (uint64_t)json_integer_value(ms);
	*failing_since_ms = f != NULL ? (uint64_t)json_integer_value(f) : 0;
	return 0;
}
