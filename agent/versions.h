/*
 * agent/versions.h -- the version every member runs, as the cluster knows it,
 * and the entry format the leader may write (rolling upgrades).
 *
 * Each follower puts its version text and the newest entry format its build
 * applies (STATE_VERSION) in its health reports to the leader (agent/
 * health.c); the leader adds its own. The leader records each member's in
 * the replicated state ("v:<id>", sync/state/format.h) when it differs from
 * what is recorded, so every node shows every member's version (status
 * members[].version and .max_format), and the format gate reads committed
 * records only: the engine's entries go out in the newest format every
 * member of the configuration supports (sync/replog/raft_replog.h), and the
 * leader logs each change of that format. When the configuration changes the
 * leader deletes the records of ids no longer in it, so that an id removed
 * and added again on an older build is not taken for what it ran before.
 * An older leader applies "v:" keys
 * as opaque keys and never writes a newer format: a mixed cluster is safe in
 * both directions (docs/architecture.md, "Rolling upgrades: formats and
 * gating").
 */
#ifndef CANOPY_AGENT_VERSIONS_H
#define CANOPY_AGENT_VERSIONS_H

#include <jansson.h>
#include <stdbool.h>
#include <stdint.h>
#include <uv.h>

#define VERSIONS_TICK_MS 250

struct agent;

struct versions {
	uv_timer_t tick;
	bool started;
	bool in_flight;   /* a "v:" entry is being committed */
	uint16_t writing; /* the format this leader writes, as last logged (0: not leading) */
	uint64_t members_seen; /* digest of the member ids the records were last pruned for (0: none) */
};

/* What `canopy-agent --version` prints: "canopy-agent 0.1.0 (commit 1a2b3c)". */
const char *versions_text(void);

/* Whether a version text from a report may be recorded: printable, no
 * control characters (it is shown in status and logs). */
bool versions_text_ok(const char *text);

/* Start recording on the loop (a timer every VERSIONS_TICK_MS, acting only
 * on a ready leader); versions_close() stops it. */
void versions_start(struct agent *a);
void versions_close(struct agent *a);

/* Status "version": this node's {"text","version","commit","max_format"}. */
json_t *versions_json(void);

/* Status "format": {"supported","writing","applied_by_version","applied_deflated","records"}. */
json_t *versions_format_json(struct agent *a);

/* Add "version" (text or null) and "max_format" of member `id`, as the
 * replicated state records them, to its status entry `m`. */
void versions_member_json(struct agent *a, uint64_t id, json_t *m);

#endif /* CANOPY_AGENT_VERSIONS_H */
