/*
 * agent/health_pick.h -- whom a leader that cannot use its source or target
 * hands leadership to (agent/health.h, "Hand-over"): a pure function of the
 * voters' latest health reports, so that the rule is tested on its own
 * (tests/unit/test_health_pick.c).
 *
 * A voter is chosen only when, for every side the leader cannot use, its
 * latest report says ok AND the check behind that report began after this
 * leader's failure of that side was first seen. A report made before the
 * fault says nothing about the fault: when every node shares the broken
 * credential or the unreachable server, a voter that simply has not checked
 * since would be handed a leadership it cannot use, and the leader, which
 * would have gone to quarantine, lets the sync run a while longer on the
 * wrong node. With no such voter the leader stays.
 *
 * Times are the leader's own loop (monotonic) milliseconds. A peer's clock
 * is never compared with the leader's: how the leader knows that a peer's
 * check began after a moment of its own is in health.h ("checked_after").
 */
#ifndef CANOPY_AGENT_HEALTH_PICK_H
#define CANOPY_AGENT_HEALTH_PICK_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <jansson.h>

#include "agent/health.h"

/* The two sides a node checks; indexes into the arrays below. */
enum health_side { HEALTH_SIDE_SOURCE, HEALTH_SIDE_TARGET, HEALTH_SIDES };

/* "source" | "target" */
const char *health_side_name(enum health_side s);

/* One voter other than the leader, as the leader knows it. */
struct health_candidate {
	uint64_t id;
	int reachable;                        /* 1: Raft hears it now (preferred) */
	enum health_state state[HEALTH_SIDES]; /* its latest report */
	uint64_t received_ms;                 /* when that report arrived (0: none) */
	uint64_t age_ms;                      /* its results' age when it sent them */
	/* The leader time the checks of that report are known to have begun
	 * after (0: not known, e.g. the report answers an older leader). */
	uint64_t checked_after_ms;
	uint64_t handed_over_at; /* when it last handed leadership over for health (0: never) */
};

/*
 * The voter to hand over to, or 0 when none fits. failing_since[s] is the
 * leader time this leader's failure of side s was first seen, 0 when the
 * side works (is not a reason to hand over). A voter fits when its report is
 * at most HEALTH_FRESH_MS old, it did not hand over for health in the last
 * HEALTH_RECENT_HANDOVER_MS, and for every failing side its report says ok
 * with checked_after_ms >= failing_since[s]. Among those, one with both
 * sides ok is preferred, then one Raft hears; ties go to the first.
 */
uint64_t health_pick(const struct health_candidate *c, size_t n,
		     const uint64_t failing_since[HEALTH_SIDES], uint64_t now);

/* Whether candidate `c` fits for side `s` failing since `since` (0: the
 * side works): the per-side part of health_pick's rule. */
bool health_pick_side_fits(const struct health_candidate *c, enum health_side s, uint64_t since);

/*
 * A follower's report may carry "checked_after": {"leader": ID, "term": T,
 * "leader_ms": MS}, the answer of the leader it last heard when its probes
 * began (health.h). The leader time those probes are known to have begun
 * after: MS when ID is this leader (`self`), T its current `term` and MS not
 * after `now` -- else 0 (unknown: an older leader's answer, another term,
 * an older follower that sends none, or garbage). The term check keeps a
 * restarted node's loop clock, which starts again, from meeting a time its
 * previous process gave out.
 */
uint64_t health_checked_after(const json_t *after, uint64_t self, uint64_t term, uint64_t now);

/*
 * The "health" object of a leader's GET /v1/members answer (agent/
 * member_view.h), {"leader_ms": MS, "failing_since_ms": F}: the leader's loop
 * time when it answered, and since when it has seen a side fail (absent:
 * nothing fails). 0 with *leader_ms > 0 and *failing_since_ms (0: absent),
 * or -EPROTO (not an object, MS missing or not positive, F not a positive
 * integer, F after MS).
 */
int health_view_parse(const json_t *o, uint64_t *leader_ms, uint64_t *failing_since_ms);

#endif /* CANOPY_AGENT_HEALTH_PICK_H */
