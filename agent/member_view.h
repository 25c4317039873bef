/*
 * agent/member_view.h -- a follower's copy of the leader's view of the
 * members, for /v1/status members[].
 *
 * Only the leader hears every member (each answers its heartbeats); a
 * follower hears the leader and, during an election, the candidates. So a
 * follower fetches the leader's view -- GET /v1/members at the leader's
 * control address ("n:<id>" in the replicated state) -- every
 * MEMBER_VIEW_PERIOD_MS, on a libuv worker thread with libcurl easy, and
 * shows it for the members other than itself and the leader (of the leader:
 * only its health, the rest this node hears itself) while it is fresh (no older than the unreachable threshold, raft/node.h
 * node_unreachable_after_ms): reachable, last_contact_ms (aged by the time
 * since the fetch), match_index, lag, health, with "view": "leader" and
 * "view_age_ms". Nothing goes through the Raft log: reachability changes
 * far more often than anything worth an entry.
 */
#ifndef CANOPY_AGENT_MEMBER_VIEW_H
#define CANOPY_AGENT_MEMBER_VIEW_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <jansson.h>

#include "agent/http.h"
#include "raft/node.h"

#define MEMBER_VIEW_PERIOD_MS 250
#define MEMBER_VIEW_MAX_BYTES (64 * 1024) /* a leader's answer larger than this is refused */

struct agent;
struct member_view;

/* Start fetching (on followers only; idle otherwise). Returns 0 or a
 * negative errno with errmsg. */
int member_view_start(struct member_view **out, struct agent *a, char *errmsg, size_t errlen);

/* Stop: no new fetch starts; `v` frees itself once a fetch on a worker
 * thread (bounded by its timeout) has returned. NULL is fine. */
void member_view_stop(struct member_view *v);

/* Member `m`'s figures from the leader's latest view into `jm` (a member
 * object of /v1/status), when that view is fresh and from the leader `st`
 * names; otherwise `jm` keeps this node's own. NULL `v` is fine. */
void member_view_apply(struct member_view *v, const struct node_status *st, const struct node_member_status *m,
		       json_t *jm);

/* Parse a GET /v1/members answer: 0 with the leader's id, term and members
 * array (a new reference) in *members, and when `health` is not NULL its
 * "health" object (a new reference; NULL when absent or not an object: an
 * older leader), or -EPROTO with errmsg. For the fetcher and its fuzz
 * target. The fetcher hands "health" to agent/health.h
 * (health_leader_seen): the leader's clock, for the health hand-over. */
int member_view_parse(const char *body, size_t len, uint64_t *leader, uint64_t *term, json_t **members,
		      json_t **health, char *errmsg, size_t errlen);

#endif /* CANOPY_AGENT_MEMBER_VIEW_H */
