/*
 * agent/health.c -- this agent's source and target health, the cluster's
 * verdict, and the hand-over of a leader that cannot use its source or target.
 *
 * Every node, followers too, probes its own access every HEALTH_PROBE_MS (and
 * at once when asked): a bind + read of the users base (sync/source/
 * ldap_probe.h) and a GET of the target's ServiceProviderConfig
 * (sync/target/scim_probe.h), on a libuv worker thread, with the password
 * and token re-read from their files each time (fixing a file needs no
 * restart). The latest result is kept and shown in /v1/status ("health").
 *
 * Followers report each result to the leader (POST /v1/health/report at the
 * leader's control address, the "n:<id>" record), with their version and
 * the newest entry format they apply (agent/versions.h; a report without
 * them is an older agent's, taken as it is). Why push and not pull: a
 * node records its control address only when it leads, so a leader cannot
 * find a follower that never led; a follower always can find the leader. The
 * leader keeps the latest report of every voter in memory (nothing goes
 * through the Raft log) and answers with the cluster verdict, so followers
 * show it too ("cluster_health": source/target "ok" when a voter can use it,
 * "unavailable" when every voter reported that it cannot, else "unknown").
 *
 * Hand-over (leader only). A side (source or target) is bad when the engine
 * has been quarantined for it (source_*, target_unauthorized,
 * target_unreachable) for HEALTH_QUARANTINE_GRACE_MS, or when this node's own
 * probe failed twice in a row (on a leader the second probe follows the
 * first after HEALTH_CONFIRM_MS). Then leadership is transferred to a voter whose
 * latest report (at most HEALTH_FRESH_MS old) says that side is ok AND whose
 * check began after this leader first saw the side fail ("checked_after"
 * below; agent/health_pick.h), preferring one with both sides ok; with none,
 * the leader stays (and is quarantined as a lone agent would be) and says
 * so once. After
 * a transfer this node is a follower and the new leader decides on its own
 * reports, so there is no loop: a node is never chosen unless it reported ok.
 * A transfer that does not complete is tried again after HEALTH_PROBE_MS. A
 * voter that itself handed over for health less than HEALTH_RECENT_HANDOVER_MS
 * ago is not chosen (its probe may work where its sync did not).
 *
 * "checked_after": how the leader knows a peer's check is newer than its own
 * failure without comparing clocks. Peers' wall clocks differ, and a report's
 * age alone does not do either: it is pushed, so the leader cannot measure
 * its trip (a report delayed by a busy network or loop would look newer than
 * it is). Instead the leader stamps its answers with its own loop
 * (monotonic) time: "leader_ms" and "term" in the answer to a report, and
 * the "health" object of GET /v1/members ({"leader_ms", "failing_since_ms"}),
 * which every follower fetches every 250 ms (agent/member_view.h). A
 * follower's report carries "checked_after": {"leader", "term", "leader_ms"},
 * the newest such stamp it had read when its probes began. Those probes
 * began after the leader wrote that answer -- causality, no clock compared --
 * so the leader takes "leader_ms" as a lower bound of the check's time, in
 * its own clock (only its own stamps in its current term count: a restarted
 * process's clock starts again). When the leader's view says
 * "failing_since_ms" newer than the follower's latest probe, the follower
 * probes once at once, so that a voter that can do better is known within
 * one fetch and one probe, not one period later.
 */
#ifndef CANOPY_AGENT_HEALTH_H
#define CANOPY_AGENT_HEALTH_H

#include <stdint.h>
#include <time.h>

#include <jansson.h>

#include "agent/http.h"
#include "sync/state/format.h"

#define HEALTH_PROBE_MS 5000
#define HEALTH_TICK_MS 250
#define HEALTH_QUARANTINE_GRACE_MS 2000
#define HEALTH_FRESH_MS 15000
#define HEALTH_RECENT_HANDOVER_MS 60000
#define HEALTH_CONFIRM_MS 1000

enum health_state {
	HEALTH_UNKNOWN, /* not probed yet, not configured, or too old */
	HEALTH_OK,
	HEALTH_UNREACHABLE,
	HEALTH_UNAUTHORIZED,
	HEALTH_ERROR,
};

/* "unknown" | "ok" | "unreachable" | "unauthorized" | "error" */
const char *health_state_name(enum health_state s);

/* The inverse; anything else is HEALTH_UNKNOWN. */
enum health_state health_state_parse(const char *name);

struct agent;
struct health;

/* Start probing (first probe now). Returns 0 or a negative errno with errmsg. */
int health_start(struct health **out, struct agent *a, char *errmsg, size_t errlen);

/* Probe again as soon as possible (coalesced with a probe already running). */
void health_probe_now(struct health *h);

/* Stop: no new probe or hand-over starts. `h` frees itself once a probe on
 * a worker thread (bounded by the probes' timeouts) has returned. */
void health_stop(struct health *h);

/* For /v1/status: {"source": {"state","detail","checked_at","age_ms"}, "target": {...}} */
json_t *health_json(struct health *h);

/* For /v1/status: the cluster verdict (computed here when leading, else the
 * leader's latest answer). */
json_t *health_cluster_json(struct health *h);

/* For /v1/status members[].health: {"source": STATE, "target": STATE} of
 * member `id` -- this node's own latest probes, or on the leader that
 * member's latest report ("unknown" when none in HEALTH_FRESH_MS); null on a
 * follower for another member (only the leader hears the reports). */
json_t *health_member_json(struct health *h, uint64_t id);

/* For /metrics. */
struct health_metrics {
	int source_up, target_up; /* 1 when this node's latest probe said ok */
	uint64_t handovers;       /* leadership transfers made because of health */
};
void health_metrics(struct health *h, struct health_metrics *out);

/* Leader: the control address member `id` gave in its latest health report,
 * into out; false when it sent none (status members[].control_address). */
bool health_peer_address(struct health *h, uint64_t id, char *out, size_t len);

/* Leader: the version member `id` gave in its latest health report: 1 and
 * *out filled; 0 when that report had none (an older build); -1 when no
 * report came from it since this node leads. */
int health_peer_version(struct health *h, uint64_t id, struct format_record *out);

/* For GET /v1/members (leader): {"leader_ms": this node's loop time,
 * "failing_since_ms": since when it has seen a side fail (absent: none)}. */
json_t *health_view_json(struct health *h);

/* Follower: the "health" object of leader `leader`'s GET /v1/members
 * answer in `term` (agent/member_view.c): keeps its time for the next
 * report's "checked_after", and probes at once when the leader waits for a
 * check newer than its failure. Anything malformed is ignored. */
void health_leader_seen(struct health *h, uint64_t leader, uint64_t term, const json_t *view);

/* POST /v1/health/report: a follower's latest probe results (leader only). */
void health_handle_report(struct health *h, const struct http_request *req,
			  struct http_reply *reply);

#endif /* CANOPY_AGENT_HEALTH_H */
