/*
 * sync/engine.h -- the sync engine: where source, transform, target and the
 * replicated state meet.
 *
 *   source -> transform (mapping) -> plan (diff against the object table)
 *          -> target -> commit through the replicated log -> state applied
 *             on every node
 *
 * The engine knows no directory, no target protocol and no Raft: it talks to
 * three ports, each an operations table the agent builds and hands over --
 * sync/source/source.h (OpenLDAP today), sync/target/target.h (SCIM today)
 * and sync/replog/replog.h (libraft). docs/architecture.md, "One change
 * through the files", follows a change through sync/engine/.
 *
 * The engine runs on the leader only. engine_lead() starts a session when the
 * node may act as leader (after its barrier); engine_follow() ends it at once
 * when leadership is lost: in-flight target requests are cancelled, the
 * source run is dropped, and the next leader resumes from the last committed
 * cursor.
 *
 * Batches. Events are taken from the source in order, planned as one batch
 * (a later change of the same object in the batch supersedes the earlier
 * one), and executed in three steps: upserts, then group membership changes
 * (which need the target ids of members created in the same batch), then
 * deletes. When every operation of the batch has an answer, one entry
 * records the objects and advances the cursor (invariant 1: the cursor never
 * passes an unacknowledged change). Only then does the next batch start, so
 * planning always sees the committed state.
 *
 * Scope and deprovisioning. An entry under an excluded subtree is out of
 * scope: if it was exported it is deprovisioned, like a deleted entry.
 * Deprovisioning deletes the object in the target, or for users with
 * safety.deprovision = disable, disables it (the record stays, so the user
 * comes back in full when back in scope).
 *
 * Group-based scoping (user_member_of): the set of user DNs in scope is
 * computed from the exported group records (members as exported plus
 * unresolved member DNs, nested groups followed). It is recomputed after
 * every batch that changed a group; when it changed, the users scope is read
 * again in full (source refresh), so users that entered the scope arrive
 * with their attributes and users that left it are deprovisioned by the
 * present phase. On the very first start the users refresh runs before the
 * groups are known: the scope is then empty, and the first groups commit
 * triggers the refresh that provisions the users.
 *
 * Delete protection, in one place (sync/engine/protect.c) after a batch is
 * planned and before any of its requests leave: every delete and
 * deprovisioning of the batch is counted together with the deletes executed
 * in the sliding window safety.delete_window_s (replicated, "w:" key, so a
 * new leader counts what the old one did). What would cross
 * safety.delete_threshold (or the percentage) is staged in the replicated
 * state ("d:" keys) -- the excess, or with safety.on_threshold: stop every
 * delete of the batch -- and nothing staged is deleted until
 * engine_deletes_decide(); while any delete is staged, later deletes are
 * staged too, and the state reads quarantined (delete_threshold).
 *
 * No lost change (docs/architecture.md): an operation the target did not
 * take is recorded in the batch's commit, in the retry set ("r:") when the
 * failure is the target's or the network's, or in the failed objects ("f:")
 * when the target refused that one object for good -- the cursor never moves
 * past a change that is neither done nor recorded. The retry set is retried
 * with backoff by whichever node leads (sync/state/retry.h).
 */
#ifndef CANOPY_SYNC_ENGINE_H
#define CANOPY_SYNC_ENGINE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <time.h>
#include <uv.h>

#include "sync/state/state.h"
#include "sync/target/target.h"

struct mapping;
struct source;
struct replog;

/* The ports the engine works through; the engine owns them from
 * engine_init() on (it closes them in engine_close(), or in engine_init()
 * when that fails). */
struct engine_ports {
	struct source *source; /* sync/source/source.h */
	struct target *target; /* sync/target/target.h */
	struct replog *log;    /* sync/replog/replog.h */
};

/* What a group's members in the target are when some are groups
 * (target.nested_groups, docs/targets.md). */
enum engine_nested_groups {
	ENGINE_NESTED_NATIVE = 0, /* "native": as in the source, groups included */
	ENGINE_NESTED_FLATTEN,    /* "flatten": the group's users, nested ones included */
	ENGINE_NESTED_SKIP,       /* "skip": the group's direct users only */
};

const char *engine_nested_groups_name(enum engine_nested_groups n);

struct engine_config {
	uint64_t node_id;
	const char *data_dir;              /* provisioning.log goes here */
	struct mapping *user_map, *group_map; /* owned by the caller */
	const char *member_attr;           /* the groups' member attribute, default "member"
					    * (source.groups.member_attribute); uniqueMember values
					    * lose their optional #'..'B suffix (RFC 4517 §3.3.21) */
	const char *member_value;          /* what its values name (source.groups.member_value):
					    * NULL or "dn" -- the member's DN; else a user attribute
					    * (memberUid -> "uid"): a value names the exported user
					    * whose first value of that attribute it equals, compared
					    * case-insensitively (docs/sources.md) */
	const char *const *user_exclude;   /* subtrees below the users base that are out of scope */
	size_t n_user_exclude;
	const char *const *group_exclude;
	size_t n_group_exclude;
	bool disable_users;                /* deprovision users by disabling them, not deleting */
	const char *user_member_of;        /* group-based scoping: users in scope only as nested
					    * members of this group DN; NULL = off */
	unsigned delete_threshold;         /* stage when more deletes than this (0: stage all) */
	unsigned delete_threshold_percent; /* 0: off */
	unsigned delete_window_s;          /* sliding window of executed deletes, default 300 */
	bool delete_stop;                  /* safety.on_threshold: stop -- stage every delete of a
					    * batch that would cross the threshold, not only the excess */
	unsigned batch_max;                /* events per batch, default 256 */
	unsigned retry_max_s;              /* longest backoff of the retry set, default 300 */
	enum engine_nested_groups nested_groups; /* groups that are members of groups */
	uint64_t provlog_max_bytes;        /* provisioning.log rotation (sync/provlog.h); 0: the
					    * defaults, PROVLOG_DEFAULT_MAX_BYTES ... */
	unsigned provlog_keep;             /* ... and PROVLOG_DEFAULT_KEEP */
	/* Operator-facing log lines (state changes, quarantine, staged deletes,
	 * refused objects); level 0 debug, 1 info, 2 warn, 3 error. NULL: none. */
	void (*log)(void *log_data, int level, const char *msg, const char *detail);
	void *log_data;
};

/* The sync state shown as "sync.state" by status (a public contract: the
 * names below are what GET /v1/status and canopyctl print). */
enum engine_state {
	ENGINE_DISABLED = 0, /* "disabled": no engine (no source or no target configured) */
	ENGINE_STANDBY,      /* "standby": not leading */
	ENGINE_STARTING,     /* "starting": leading, the source has not reported yet */
	ENGINE_REFRESHING,   /* "refreshing": a refresh phase is running */
	ENGINE_SYNCING,      /* "syncing": changes are being exported */
	ENGINE_IDLE,         /* "idle": nothing to do */
	ENGINE_QUARANTINED,  /* "quarantined": cannot export, see quarantine_reason */
	ENGINE_STOPPING,     /* "stopping": shutting down */
};

const char *engine_state_name(enum engine_state s);

/* Why a leader cannot export (status "sync.quarantine.reason"). */
enum engine_quarantine {
	ENGINE_Q_NONE = 0,
	ENGINE_Q_SOURCE_UNREACHABLE,   /* "source_unreachable" */
	ENGINE_Q_SOURCE_UNAUTHORIZED,  /* "source_unauthorized" */
	ENGINE_Q_SOURCE_ERROR,         /* "source_error": searches fail, or the source cannot start */
	ENGINE_Q_TARGET_UNREACHABLE,   /* "target_unreachable" */
	ENGINE_Q_TARGET_UNAUTHORIZED,  /* "target_unauthorized" */
	ENGINE_Q_TARGET_SERVER_ERRORS, /* "target_server_errors" */
	ENGINE_Q_TARGET_ERROR,         /* "target_error": the target cannot start */
	ENGINE_Q_DELETE_THRESHOLD,     /* "delete_threshold": deletes are staged */
	ENGINE_Q_TARGET_SCHEMA_MISMATCH, /* "target_schema_mismatch": a mapped attribute the
					  * target's schema lacks (target.strict_schema) */
};

/* The reason code ("" for ENGINE_Q_NONE). */
const char *engine_quarantine_name(enum engine_quarantine q);

/*
 * A quarantine in detail (status "sync.quarantine"): on the leader from its
 * live source and target, on every other node as the leader replicated it.
 * Times are wall clock, ms since the epoch; 0: not known / none.
 */
struct engine_quarantine_info {
	int64_t since_ms;         /* when the cluster entered it with this reason (kept across a
				   * change of leader) */
	int64_t next_retry_at_ms; /* when the leader checks again by itself (0: a check is under
				   * way, or none is planned: delete_threshold waits for an operator) */
	int64_t checked_at_ms;    /* the answer to the last check (0: none yet) */
	/* the last failing request: for the target an HTTP method, path and
	 * status (0: no answer); for the source the LDAP operation and result
	 * code. side "" when none is known. */
	char side[8];             /* "target" | "source" | "" */
	char method[16];
	char path[256];
	long status;
	int64_t at_ms;
};

/*
 * The details as the leader replicates them ("q:info", sync/engine/quarantine.c):
 * decode `len` bytes of replicated state (input: another node wrote them, a
 * newer one may add members, which are skipped). Returns 0, or -EINVAL
 * (too long, not JSON, a member of the wrong type) with *qi zeroed.
 */
#define ENGINE_QUARANTINE_INFO_MAX 2048
int engine_quarantine_info_decode(const void *v, size_t len, struct engine_quarantine_info *qi);

struct engine_stats {
	enum engine_state state;
	uint64_t exported_total, errors_total, skipped_total, batches_total;
	time_t last_export_at;
	uint64_t pending_deletes;
	bool source_connected;
	char source_message[256];
	struct target_stats target;
	uint64_t cycle;      /* batches started in this leadership */
	uint64_t lease_cancels_total; /* batches whose requests were cancelled at lease expiry */
	uint64_t export_lag_ms;       /* latest batch: oldest event received -> committed */
	/* on the leader: objects an earlier leader may have written after its
	 * last commit, whose in-doubt repair is still to run (0 once it ran) */
	uint64_t repair_pending;
	/* state ENGINE_QUARANTINED: why, as a reason code (engine_quarantine_name;
	 * on a follower the leader's, as replicated), and the detail; "" otherwise */
	char quarantine_reason[64];
	char quarantine_detail[256];
	struct engine_quarantine_info quarantine; /* state ENGINE_QUARANTINED: the details */
};

struct engine;

/* Set up (nothing runs until engine_lead). Takes the ports (see struct
 * engine_ports). Returns 0 or -errno with errmsg. */
int engine_init(struct engine **out, uv_loop_t *loop, const struct engine_ports *ports, struct state *state,
		const struct engine_config *cfg, char *errmsg, size_t errlen);

/* This node may now act as leader: start source and target from the cursor. */
void engine_lead(struct engine *e);

/* Leadership lost: cancel everything now. */
void engine_follow(struct engine *e);

/* Approve (delete in the target) or reject (keep) every staged delete. Leader
 * only: returns -EAGAIN when not leading, -ENOENT when nothing is staged, 0
 * when started. */
int engine_deletes_decide(struct engine *e, bool approve, char *errmsg, size_t errlen);

void engine_stats(struct engine *e, struct engine_stats *out);

/* The committed cursor for people, as the source describes it (source.h,
 * describe_cursor): 0 with the text in out, -ENOENT when no cursor is
 * committed yet, -EINVAL when the source cannot describe it. Any node. */
int engine_describe_cursor(struct engine *e, char *out, size_t outlen);

/*
 * Retry now. dn NULL and failed true: every failed object ("f:") goes back
 * into the retry set, due now. With a DN: that object -- failed, in the retry
 * set, or exported (its content is forgotten and its scope re-read from the
 * source, so it is written again). Leader only: -EAGAIN when not leading,
 * -ENOENT when nothing matches; 0 when started (n_out: how many objects).
 */
int engine_resync(struct engine *e, const char *dn, bool failed, size_t *n_out, char *errmsg, size_t errlen);

/*
 * What provision and plan hand back: status 0 and `report` (owned by the
 * callee), or a negative errno, errmsg naming the object and the cause, and
 * report NULL. Runs on the loop exactly once, never from inside the call
 * that started it -- at the latest when the engine closes (-ECANCELED).
 */
typedef void (*engine_report_cb)(void *data, int status, json_t *report, const char *errmsg);

/*
 * canopyctl provision DN [--dry-run] (docs/operations.md, "On-demand
 * provisioning and plans"). Leader only. Reads the entry `dn` from the
 * source now (its read_entry, on a worker thread), then reports each step as
 * {"dn", "steps": [{"step", "result", ...}], "action", "target_status"}:
 *   read   the attributes read ("not_found" when the directory has none);
 *   scope  in or out, and the rule that decided (the source's base and
 *          filter, source.*.exclude, source.users.member_of);
 *   map    the mapped target object (or the mapping's error);
 *   match  the object's replicated record (target id, content changed or
 *          not); without one the target is searched by its anchor
 *          (externalId) and name when written, and an object found adopted;
 *   action create / update / delete / disable / none;
 *   write  the target's answer (HTTP status), or "dry_run".
 * A real run is a batch of its own in the session's pipeline (after the
 * batch in progress, before the retry set and new changes): intents, the
 * target, delete protection, one committed entry -- so no change is lost
 * and none doubled; the cursor does not move. A DN the directory no longer
 * has, or that left the scope, is deprovisioned when it was exported.
 * Returns 0 when started, -EAGAIN (not leading), -ENOTSUP (this source
 * cannot read one entry), -EINVAL (dn).
 */
int engine_provision(struct engine *e, const char *dn, bool dry_run, engine_report_cb cb, void *data, char *errmsg,
		     size_t errlen);

/*
 * canopyctl plan [--details]: what a full sync would do now, writing
 * nothing (no request, no entry). Any node: reads the whole scope with the
 * source's read_scope on a worker thread, then maps and compares it with the
 * replicated object table on the loop in slices of at most ~2 ms, so raft
 * keeps its heartbeats. Reports {"create", "update", "delete", "unchanged",
 * "refused"} (refused: entries the mapping cannot map) and with `details`
 * "details": [{"action", "anchor", "dn", "type", "changes"}] for every
 * object that is not unchanged (at most ENGINE_PLAN_DETAILS_MAX, then
 * "truncated": true). Returns 0 when started, -ENOTSUP, -EBUSY (a plan runs).
 */
#define ENGINE_PLAN_DETAILS_MAX 10000
int engine_plan(struct engine *e, bool details, engine_report_cb cb, void *data, char *errmsg, size_t errlen);

/*
 * `canopyctl resume`: retry now. Clears the backoff: the retry set is due
 * at once, and a quarantined target is checked now (its credentials re-read)
 * instead of at next_retry_at. The check's answer ends the quarantine, or
 * keeps it with the same reason (checked_at_ms moves). Leader only: -EAGAIN
 * when not leading; -EALREADY when not quarantined; -EPERM when only an
 * operator can end it (delete_threshold: approve or reject the staged
 * deletes); 0 when started, the reason in `reason`.
 */
int engine_resume(struct engine *e, char *reason, size_t rlen, char *errmsg, size_t errlen);

/* Stop everything; `done` runs on the loop once all is released (the ports
 * are closed then). */
void engine_close(struct engine *e, void (*done)(void *data), void *data);

#endif /* CANOPY_SYNC_ENGINE_H */
