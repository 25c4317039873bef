/*
 * sync/engine.h -- the sync engine: where source, transform, target and the
 * replicated state meet.
 *
 *   source -> transform (mapping) -> plan (diff against the object table)
 *          -> target -> commit through Raft -> state applied on every node
 *
 * The engine runs on the leader only. engine_lead() starts a session when the
 * node may act as leader (after its barrier, raft/leader.h); engine_follow()
 * ends it at once when leadership is lost: in-flight target requests are
 * cancelled, the source stream is dropped, and the next leader resumes from
 * the last committed cursor.
 *
 * Batches. Events are taken from the source in order, planned as one batch
 * (a later change of the same object in the batch supersedes the earlier
 * one), and executed in three steps: upserts, then group membership PATCHes
 * (which need the target ids of members created in the same batch), then
 * deletes. When every operation of the batch has an answer, one Raft entry
 * records the objects and advances the cursor (invariant 1: the cursor never
 * passes an unacknowledged change). Only then does the next batch start, so
 * planning always sees the committed state.
 *
 * Scope and deprovisioning. An entry under an excluded subtree is out of
 * scope: if it was exported it is deprovisioned, like a deleted entry.
 * Deprovisioning deletes the object in the target, or for users with
 * safety.deprovision = disable, PATCHes active=false (the record stays, so
 * the user comes back in full when back in scope).
 *
 * Group-based scoping (user_member_of): the set of user DNs in scope is
 * computed from the exported group records (members as exported plus
 * unresolved member DNs, nested groups followed). It is recomputed after
 * every batch that changed a group; when it changed, the users session
 * refreshes in full (ldap_source_refresh), so users that entered the scope
 * arrive with their attributes and users that left it are deprovisioned by
 * the present phase. On the very first start the users refresh runs before
 * the groups are known: the scope is then empty, and the first groups commit
 * triggers the refresh that provisions the users.
 *
 * Delete protection. Deletes found by a refresh are counted together when the
 * refresh ends; deletes streamed while persisting are counted over a rolling
 * window (safety.delete_window_s). Above safety.delete_threshold (or the
 * percentage threshold), the deletes are staged in the replicated state ("d:"
 * keys) and nothing is deleted until engine_deletes_decide(); while any
 * delete is staged, later deletes are staged too.
 */
#ifndef CANOPY_SYNC_ENGINE_H
#define CANOPY_SYNC_ENGINE_H

#include <stdbool.h>
#include <stdint.h>
#include <time.h>
#include <uv.h>

#include "raft/node.h"
#include "sync/provlog.h"
#include "sync/source/openldap.h"
#include "sync/state/state.h"
#include "sync/strmap.h"
#include "sync/target/scim.h"
#include "sync/transform/mapping.h"

struct engine_config {
	uint64_t node_id;
	const char *data_dir;              /* provisioning.log goes here */
	struct ldap_source_config source;  /* attrs are filled by the engine from the mappings */
	struct scim_config target;
	struct mapping *user_map, *group_map; /* owned by the caller */
	const char *member_attr;           /* default "member" */
	const char *const *user_exclude;   /* subtrees below the users base that are out of scope */
	size_t n_user_exclude;
	const char *const *group_exclude;
	size_t n_group_exclude;
	bool disable_users;                /* deprovision users with active=false, not DELETE */
	const char *user_member_of;        /* group-based scoping: users in scope only as nested
					    * members of this group DN; NULL = off */
	unsigned delete_threshold;         /* stage when more deletes than this (0: stage all) */
	unsigned delete_threshold_percent; /* 0: off */
	unsigned delete_window_s;          /* persist-mode window, default 300 */
	unsigned batch_max;                /* events per batch, default 256 */
};

struct engine_stats {
	const char *state;   /* disabled|standby|starting|refreshing|syncing|idle|quarantined|stopping */
	uint64_t exported_total, errors_total, skipped_total, batches_total;
	time_t last_export_at;
	uint64_t pending_deletes;
	bool source_connected;
	char source_message[256];
	struct scim_stats target;
	uint64_t cycle;      /* batches started in this leadership */
	uint64_t lease_cancels_total; /* batches whose requests were cancelled at lease expiry */
	uint64_t export_lag_ms;       /* latest batch: oldest event received -> committed */
};

struct engine;

/* Set up (nothing runs until engine_lead). Returns 0 or -errno with errmsg. */
int engine_init(struct engine **out, uv_loop_t *loop, struct node *node, struct state *state,
		const struct engine_config *cfg, char *errmsg, size_t errlen);

/* This node may now act as leader: start source and target from the cursor. */
void engine_lead(struct engine *e);

/* Leadership lost: cancel everything now. */
void engine_follow(struct engine *e);

/* Approve (delete in the target) or reject (keep) every staged delete. Leader
 * only: returns -EAGAIN when not leading, 0 when started. */
int engine_deletes_decide(struct engine *e, bool approve, char *errmsg, size_t errlen);

void engine_stats(struct engine *e, struct engine_stats *out);

/* Path of this node's provisioning log. */
const char *engine_provlog_path(struct engine *e);

/* Stop everything; `done` runs on the loop once all is released. */
void engine_close(struct engine *e, void (*done)(void *data), void *data);

#endif /* CANOPY_SYNC_ENGINE_H */
