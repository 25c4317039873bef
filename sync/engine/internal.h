/*
 * sync/engine/internal.h -- the engine's private types, shared by its files.
 *
 * One change, in the order the files handle it (docs/architecture.md, "One
 * change through the files"):
 *
 *   session.c     the source run's events arrive (on_source_event), wait in
 *                 the session's queue, and session_pump() takes up to batch_max of
 *                 them into a batch -- or the retry set, a decision on
 *                 staged deletes, the in-doubt repair;
 *   plan.c        the planner, pure: events + the replicated state in, items
 *                 out. It maps entries (sync/transform), diffs them against
 *                 the object table, turns refresh ends into deletes; scope.c
 *                 decides what is in scope; manager.c resolves users'
 *                 managers (DN -> exported user -> target id);
 *   protect.c     delete protection stages what would cross the threshold;
 *   nested.c      target.nested_groups flatten: a group's transitive users,
 *                 and every group above a changed one planned again;
 *   exec.c        runs the batch against the target port: intents first
 *                 (commit.c), then upserts, member changes, deletes;
 *   bisect.c      a member change refused for some of its values: the refused
 *                 ones isolated, the rest applied;
 *   commit.c      one entry records every outcome and moves the cursor;
 *   retryset.c    the retry set's due times on this leader;
 *   repair.c      in-doubt repair after a failover, and resync;
 *   provision.c   canopyctl provision: one object read now, planned and run
 *                 as a batch of its own through the same steps;
 *   preview.c     canopyctl plan: the whole scope read and compared with the
 *                 object table, nothing written;
 *   quarantine.c  why this leader cannot export, said once and replicated;
 *   engine.c      the public API (sync/engine.h).
 *
 * Ownership: an engine has at most one live session (engine->s); a session
 * has at most one batch; a batch owns its items. Everything runs on the loop
 * thread.
 */
#ifndef CANOPY_SYNC_ENGINE_INTERNAL_H
#define CANOPY_SYNC_ENGINE_INTERNAL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <uv.h>

#include "common/xalloc.h"
#include "sync/engine.h"
#include "sync/engine/lastwrite.h"
#include "sync/engine/stages.h"
#include "sync/provlog.h"
#include "sync/replog/replog.h"
#include "sync/source/source.h"
#include "sync/state/object.h"
#include "sync/state/retry.h"
#include "sync/state/state.h"
#include "sync/strmap.h"
#include "sync/target/target.h"
#include "sync/transform/mapping.h"

#define KEY_MAX 600               /* a state key: prefix, ':' and an anchor (or group#member) */
#define DN_MAX 1024               /* a normalized DN */
#define OBJECT_KEY_WINDOW 'w'     /* "w:" deletes executed recently: "sec:count,..." */
#define OBJECT_KEY_QUARANTINE 'q' /* "q:" the leader's quarantine, for every node */
#define RETRY_TICK_MS 1000        /* retry set and quarantine bookkeeping */
#define DEFAULT_BATCH_MAX 256
#define DEFAULT_DELETE_WINDOW_S 300
#define DEFAULT_RETRY_MAX_S 300
#define DEFAULT_REQUEST_TIMEOUT_MS 30000

/* Levels of the operator log (engine_config.log). */
enum log_level { L_DEBUG, L_INFO, L_WARN, L_ERROR };

enum item_kind {
	IT_UPSERT,  /* create/update (users, groups); groups then check members */
	IT_MEMBERS, /* a group not in the batch whose unresolved members may now resolve */
	IT_DELETE,  /* delete in the target, then forget */
	IT_DISABLE, /* users with safety.deprovision=disable: disable, keep the record */
	IT_STAGE,   /* record a staged delete ("d:" key), touch nothing */
	IT_UNSTAGE, /* a rejected staged delete: drop the "d:" key, keep the object */
	IT_REPAIR,  /* in doubt after a failover: forget its content hash, so the full
		     * refresh that follows writes it again */
};

/* One object's change in a batch. Outcome flags, set by exec.c: exactly one
 * of "done" (none set), cancelled, or failed -- and a failed item is
 * retry, refused or noop (nothing to do). commit.c records each. */
struct item {
	enum item_kind kind;
	enum object_type type;
	char *anchor, *dn;
	json_t *attrs;          /* IT_UPSERT: the mapped attributes */
	uint64_t hash;          /* their content hash */
	char **member_dns;      /* IT_UPSERT of a group: the source's member DNs */
	size_t n_member_dns;
	bool has_old;
	struct object_record old; /* the record before this batch */
	struct object_record rec; /* what to commit */
	bool write_rec;         /* commit rec under "o:" */
	bool upsert_needed;     /* the content changed (or no target id yet) */
	bool failed;            /* its write did not happen: see retry / refused / noop */
	bool retry;             /* the target or the network failed it: the retry set */
	bool refused;           /* refused for good (or unmappable): the failed objects */
	bool noop;              /* nothing to do (already disabled, nothing exported) */
	bool cancelled;         /* cancelled (lease or leadership lost): not settled */
	bool written;           /* the target acknowledged a write of it (figures: objects) */
	uint64_t change;        /* the engine's change number, for the provisioning log */
	struct target_op op;
	bool members_planned;   /* add_ids / rm_ids are this batch's member changes */
	bool members_exact;     /* the record's members were in doubt (object.h): add_ids is
				 * every member, and the target removes all others */
	char **add_ids;         /* member target ids to add ... */
	size_t n_add_ids;
	char **rm_ids;          /* ... and to remove */
	size_t n_rm_ids;
	char **add_anchors;     /* anchors matching add_ids; after planning, the members the
				 * record will list once the change is done */
	size_t n_add_anchors;
	char **rm_anchors;      /* member anchors matching rm_ids */
	size_t n_rm_anchors;
	char **add_new;         /* member anchors matching add_ids (add_anchors becomes the
				 * whole membership once planned) */
	size_t n_add_new;
	struct bisect *bis;     /* the target refused some values: isolating them (bisect.c) */
	char **refused_now;     /* member anchors refused in this batch (bisect.c) */
	size_t n_refused_now;
	char **drop;            /* IT_MEMBERS: member anchors the group named by a reference
				 * (DN or member_value) that no longer names them -- renamed or
				 * moved while the group kept the old value (plan.c) */
	size_t n_drop;
	char **nested_skipped;  /* target.nested_groups: skip -- nested group DNs left out */
	size_t n_nested_skipped;
	char **held;            /* member removals staged ("m:" keys): put by a normal
				 * batch's commit, removed by a decision batch's */
	size_t n_held;
	bool member_decision;   /* a decision on staged member removals: ids preset */
	bool flat;              /* target.nested_groups flatten: members planned from the
				 * transitive users (nested.c), the whole membership */
	char *manager_dn;       /* IT_UPSERT of a user: its manager's DN from the source */
	char *member_key;       /* IT_UPSERT of a user, member_value by attribute: its value
				 * (object_record.member_key), or NULL */
	char *put_manager;      /* the manager anchor (and id) its upsert carried */
	char *put_manager_id;
	bool manager_planned;   /* a TARGET_MANAGER: set manager_set (NULL: remove it) */
	char *manager_set;
	char *manager_id;
	bool manager_waiting;   /* its manager's DN newly names no exported user: log it */
	struct mapping_unique *uniq; /* IT_UPSERT creating it: the SelectUniqueValue rules'
				 * candidates (mapping.h), asked about in turn (unique.c) */
	size_t n_uniq;
	size_t *uniq_pick;      /* per rule: the candidate chosen, or SIZE_MAX */
	size_t uniq_at, uniq_cand; /* the rule and candidate being settled */
	bool uniq_asking;       /* a TARGET_TAKEN about uniq[uniq_at].cand[uniq_cand] is out */
	bool uniq_done;         /* every rule's value is in attrs */
	struct session *s;      /* set when submitted: op callbacks find the session */
};

enum phase { PH_PLAN, PH_INTENT, PH_UPSERT, PH_MEMBERS, PH_DELETE, PH_COMMIT };

enum batch_kind {
	BATCH_CHANGES,  /* source events */
	BATCH_RETRY,    /* made from the retry set */
	BATCH_DECISION, /* an approve/reject of staged deletes */
	BATCH_REPAIR,   /* the in-doubt repair */
	BATCH_PROVISION, /* one object read now (provision.c): like changes, no cursor */
};

enum decision { DECISION_NONE, DECISION_APPROVE, DECISION_REJECT };

/* A source entry the mapping refused: logged once the batch is planned. */
struct skip {
	char *anchor, *dn, *error;
	enum object_type type;
	uint64_t change;
};

struct batch {
	enum batch_kind kind;
	struct item **items;
	size_t n, cap;
	struct strmap by_anchor; /* anchor -> item (borrowed) */
	struct skip *skips;
	size_t n_skips;
	void *cursor;            /* the cursor once every item is settled, or NULL */
	size_t cursor_len;
	enum phase phase;
	unsigned outstanding;    /* target operations not answered yet */
	uint64_t cycle;
	bool orphan;             /* its session ended while an entry was in flight */
	bool rewind;             /* the lease ran out mid-batch: redo it from the start */
	bool rerun;              /* runs again after a lease expiry: writes may have landed */
	bool asking;             /* PH_UPSERT: SelectUniqueValue questions are out, not writes */
	uint64_t first_event;    /* uv_now of its oldest event (export lag) */
	uint64_t fig_ops, fig_errors, fig_skipped; /* counted into its commit's "s:sync" (engine.figures_*) */
	struct provision *prov;  /* BATCH_PROVISION: told when the batch is freed */
	bool committed;          /* its entry committed (or it had nothing to record) */
	/* Per-stage times (stages.h), uv_hrtime() ns: when each of its source
	 * events was received, and when the batch entered each stage. */
	uint64_t *ev_received_ns;
	size_t n_ev;
	uint64_t t_taken, t_intent, t_target, t_commit;
	/* anchors of its events whose intents an earlier batch's entry carried
	 * (commit.c, pre_intend): settled by its commit even without an item */
	char **pre_intents;
	size_t n_pre_intents;
};

/* What the planner reads and keeps between the batches of one session. */
struct planner {
	const struct engine_config *cfg;
	const struct state *state;
	uint64_t *change_seq;        /* the engine's: every planned change takes the next */
	bool refreshing[3];          /* per object type: between refresh begin and end */
	struct strmap seen[3];       /* anchors reported during the refresh of each type */
	struct strmap refresh_deletes[3]; /* per type: anchors reported gone in its refresh */
	struct strmap dn_index;      /* normalized DN -> xstrdup(anchor) of exported objects */
	struct strmap groups;        /* anchors of exported groups */
	struct strmap parents;       /* target.nested_groups flatten: group anchor -> strmap* of
				      * the groups it is a direct member of (a superset: only
				      * added to while the session lives) */
	struct strmap unresolved;    /* normalized member value (a DN, or with member_value by
				      * attribute a user's value) -> strmap* of group anchors */
	struct strmap key_index;     /* member_value by attribute: normalized member_key ->
				      * xstrdup(anchor) of exported users */
	bool by_key;                 /* member values name users by an attribute, not a DN */
	bool member_links;           /* the source's member values follow renames (source.h) */
	struct strmap mgr_waiting;   /* normalized manager DN -> strmap* of users waiting for it */
	struct strmap reports;       /* manager anchor -> strmap* of users whose manager it is */
	struct strmap scope;         /* group-based scoping: normalized user DNs in scope */
	uint64_t scope_digest;       /* of `scope`, to notice changes */
	bool scope_on;
};

struct qnode {
	struct source_event *ev;
	uint64_t received; /* uv_now when it reached the engine */
	uint64_t received_ns; /* uv_hrtime then (stages.h) */
	bool pre_intended; /* its intent rode in the entry of the batch before (commit.c) */
	struct qnode *next;
};

/* reread.c: why objects are read again by DN. */
enum reread_why {
	REREAD_REPAIR = 1, /* the in-doubt repair (repair.c) */
	REREAD_SCOPE,      /* users entering group-based scoping */
};

struct reread {
	struct source_event *ev;
	enum reread_why why;
};

struct session {
	struct engine *e;
	struct planner plan;
	struct source_run *src;    /* NULL when the source could not start */
	struct target_run *tgt;    /* NULL when the target could not start */
	struct qnode *head, *tail; /* events not planned yet */
	size_t queued;
	bool paused;               /* source paused: our own queue is full */
	struct batch *batch;
	uv_timer_t retry;          /* session_pump again shortly (no lease, a rewind) */
	uv_timer_t lease;          /* watches the write lease while requests are in flight */
	uv_timer_t tick;           /* retry set and quarantine bookkeeping */
	uv_timer_t repair_timer;
	bool stopping;
	int open;                  /* things to wait for before freeing: runs, timers, entries */
	enum decision pending_decision;
	uint64_t term;
	enum engine_quarantine start_problem; /* the source or target could not even start */
	char start_detail[256];
	struct strmap retry_due;   /* anchors in the retry set -> unix ms when due (uintptr_t) */
	uint64_t retry_next_at;    /* earliest of them (0: none) */
	bool retry_now;            /* the target came back: all of them are due */
	bool last_was_retry;       /* the previous batch came from the retry set */
	bool target_was_quarantined;
	bool q_committing;         /* a "q:" update is in flight */
	struct strmap in_doubt;    /* anchors with an intent of an earlier leader (repair.c) */
	bool repair_due;
	struct provision *prov_head, *prov_tail; /* provisions waiting for their batch */
	struct reread *reread;     /* objects read again by DN, to plan (reread.c) */
	size_t n_reread;
	char **leaving;            /* anchors of users a scope change took out, to plan (reread.c) */
	size_t n_leaving;
};

struct engine {
	uv_loop_t *loop;
	struct state *state;
	struct source *source;
	struct target *target;
	struct replog *log;
	struct engine_config cfg;
	char **attrs;              /* source attributes requested: what the mappings read */
	size_t n_attrs;
	struct provlog provlog;
	struct session *s;         /* the live session, or NULL */
	int sessions;              /* sessions alive, including ones still shutting down */
	uint64_t change_seq, cycle_seq;
	struct engine_stats st;
	/* The replicated figures ("s:sync", sync/state/figures.h): how much of
	 * st.exported_total / st.errors_total is in a committed record already
	 * (the rest goes into the next commit), and the unix ms of the latest
	 * acknowledged write. */
	uint64_t figures_ops, figures_errors, figures_skipped;
	uint64_t last_write_ms;
	bool closing;
	uv_timer_t relead;         /* restarts the session after a failed commit */
	unsigned relead_ms;
	uint64_t rng;
	enum engine_quarantine logged_reason; /* the quarantine last logged */
	enum engine_quarantine since_reason;  /* the quarantine since_ms belongs to */
	int64_t since_ms;                     /* when the cluster entered it (wall clock) */
	/* what this node last wrote for an object, so that the provisioning
	 * log can name an update's modified attributes (lastwrite.h): local,
	 * the ENGINE_ATTRS_MAX objects written most recently */
	struct lastwrite lastwrite;
	struct strmap nested_told; /* groups whose refused or skipped nested groups were
				    * logged (once per group while this agent runs) */
	void (*close_done)(void *);
	void *close_data;
	int jobs;                  /* provisions and plans on a worker thread or in slices */
	struct preview *preview;   /* the plan running (preview.c), or NULL */
};

/* ---- batch.c: items, batches, small helpers ------------------------------ */

/* The batch's changes spent the time since `since` (ns) in stage `s`; returns
 * now (uv_hrtime). Per change: batches without source events count nothing. */
uint64_t batch_stage_done(struct batch *b, enum export_stage s, uint64_t since);

/* The state's records, decoded (false: none, or undecodable). */
bool engine_record(const struct state *st, char prefix, const char *anchor, struct object_record *r);
bool engine_retry_record(const struct state *st, char prefix, const char *anchor, struct retry_record *r);
bool engine_has_key(const struct state *st, char prefix, const char *anchor);
/* The anchor of a key "<prefix>:<anchor>" into buf (false: another prefix or
 * too long). */
bool engine_key_anchor(const void *key, size_t klen, char prefix, char *buf, size_t size);
/* Deletes and member removals staged, from the state's key counts. */
uint64_t engine_staged_count(const struct state *st);
/* Exported objects. */
uint64_t engine_object_count(const struct state *st);

/* strmap_put under the out-of-memory policy: a failed insert must never read
 * as "absent" (that plans deletes). */
void engine_map_put(struct strmap *m, const char *key, void *value);

char **engine_strv_dup(char *const *v, size_t n);
void engine_strv_free(char **v, size_t n);
void engine_strv_push(char ***v, size_t *n, const char *s);
/* Remove the first `s` (order not kept). */
void engine_strv_remove(char **v, size_t *n, const char *s);
bool engine_strv_has(char *const *v, size_t n, const char *s);
void object_record_copy(struct object_record *dst, const struct object_record *src);
/* A JSON string of text from the directory or the mapping, or JSON null when
 * it is NULL or not UTF-8 (jansson refuses it): shown, never an abort. */
json_t *engine_json_text(const char *s);

struct batch *batch_new(enum batch_kind kind, uint64_t cycle);
void batch_free(struct batch *b);
/* The item of `anchor`, new or reset (a later change supersedes an earlier
 * one), with its committed record in ->old. */
struct item *batch_add(struct planner *p, struct batch *b, enum item_kind kind, enum object_type type,
		       const char *anchor);
/* Mark an item that needs no write. */
void batch_item_noop(struct item *it);
/* Drop the member changes planned for an item. */
void batch_item_clear_members(struct item *it);

/* ---- scope.c: what is in scope -------------------------------------------- */

/* DNs compare case-insensitively and without spaces around separators. */
void scope_dn_norm(const char *dn, char *out, size_t size);
bool scope_has(const struct planner *p, enum object_type type, const char *dn);
/* The same, for a user that groups may name by its member_key (NULL: none). */
bool scope_has_user(const struct planner *p, const char *dn, const char *key);
/* Recompute the users in scope (group-based scoping); true when it changed.
 * `was` (or NULL) receives the set before (initialized; the caller clears it). */
bool scope_compute(struct planner *p, struct strmap *was);

/* ---- plan.c: the planner (pure: no I/O, no target, no log) ---------------- */

void planner_init(struct planner *p, const struct engine_config *cfg, const struct state *st,
		  uint64_t *change_seq);
/* Index the exported objects (DNs, groups waiting for members) and, with
 * group-based scoping, compute the scope. */
void planner_load(struct planner *p);
void planner_clear(struct planner *p);
/* Groups waiting for members that are not exported yet. */
void planner_index_unresolved(struct planner *p, const char *group, char *const *dns, size_t n);
/* A member value normalized for the indexes: a DN as scope_dn_norm, a
 * member_key lower-cased. */
void planner_member_norm(const struct planner *p, const char *value, char *out, size_t size);
/* What groups' member values call an object: its DN, or with member_value by
 * attribute a user's member_key (NULL: nothing names it). */
const char *planner_member_ref(const struct planner *p, enum object_type type, const char *dn, const char *key);
/* Keep the member_key index current: `old_key` (may be NULL) of `anchor` is
 * replaced by `key` (may be NULL). */
void planner_index_key(struct planner *p, const char *anchor, const char *old_key, const char *key);

/* Plan one source event into the batch (takes its cursor). */
void plan_event(struct planner *p, struct batch *b, struct source_event *ev);
/* Deprovision `anchor`, gone from (or out of) the scope of `type`: a delete,
 * or a disable with safety.deprovision disable. */
void plan_delete(struct planner *p, struct batch *b, const char *anchor, enum object_type type);
/* The retry set's due objects, up to `max` items. Anchors whose record is
 * gone are returned in stale (xstrdup'd, at most max_stale). */
size_t plan_retries(struct planner *p, struct batch *b, const struct strmap *due, uint64_t now, size_t max,
		    char **stale, size_t max_stale);
/* Every staged delete and member removal, approved or rejected. */
void plan_decision(struct planner *p, struct batch *b, bool approve);
/* Objects an earlier leader may have written after its last commit. */
void plan_repair(struct planner *p, struct batch *b, const struct strmap *in_doubt);
/* After the upserts: groups whose members changed, or that wait for members
 * that exist now -- the member ids to add and remove. */
void plan_members(struct planner *p, struct batch *b);

/* A group's member values, resolved through the DN index (or, with member_value
 * by attribute, the member_key index). */
struct plan_direct {
	char **users, **groups; /* anchors */
	size_t n_users, n_groups;
	char **group_dns;       /* matching groups (until they are taken away) */
	size_t n_group_dns;
	char **unresolved;      /* values no exported object has */
	size_t n_unresolved;
};
void plan_resolve(struct planner *p, struct batch *b, const struct item *it, char *const *dns, size_t n_dns,
		  struct plan_direct *d);
void plan_direct_free(struct plan_direct *d);
bool plan_is_group(const struct planner *p, const struct batch *b, const char *anchor);
/* The changes that make the group's members in the target `desired` (a set
 * in `want`), against it->rec.members. */
void plan_member_diff(struct planner *p, struct batch *b, struct item *it, char **desired, size_t n_desired,
		      const struct strmap *want);

/* ---- nested.c: target.nested_groups flatten ------------------------------------ */

/* Index a group record's nested groups (parents). */
void nested_index(struct planner *p, const char *anchor, const struct object_record *r);
/* Plan every group of the batch, and every group above one, from the
 * transitive users (instead of plan_group_members). */
void nested_plan_flatten(struct planner *p, struct batch *b);

/* ---- manager.c: the manager reference (planner part: pure) ------------------ */

void manager_init(struct planner *p);
void manager_fini(struct planner *p);
/* Keep the indexes current: `old` is replaced by `rec` (either NULL). */
void manager_index(struct planner *p, const char *anchor, const struct object_record *old,
		   const struct object_record *rec);
/* The exported user `dn` names, for item `it`: its anchor and *id
 * (xstrdup'd), or NULL. */
char *manager_resolve(struct planner *p, struct batch *b, const struct item *it, const char *dn, char **id);
/* After the upserts: users whose manager must be set or removed in the target
 * (their own change, a manager exported or deleted now). */
void plan_managers(struct planner *p, struct batch *b);
/* Drop what plan_managers planned for an item. */
void manager_clear(struct item *it);

/* ---- protect.c: delete protection ------------------------------------------ */

/* Deletes executed in the window; with add > 0 also the new "w:" value in
 * *rec (xmalloc'd). */
size_t protect_window(struct engine *e, size_t add, char **rec);
void protect_deletes(struct engine *e, struct batch *b);
void protect_members(struct session *s, struct batch *b);

/* ---- bisect.c: isolating the member values a target refuses ----------------- */

/* Refused values isolated per group and batch; past it, the values not sent
 * yet are recorded as failed without more requests. */
#define BISECT_MAX_REFUSED 16

/* After each TARGET_MEMBERS answer (op_done): true when another part of the
 * bisection went out (the item's answer is not final yet). */
bool bisect_on_answer(struct session *s, struct item *it);
/* The bisection stopped on a failure not about values (retry set). */
bool bisect_aborted(const struct item *it);
/* Member PATCH requests the bisection sent for the item. */
unsigned bisect_requests(const struct item *it);
/* Aborted: the record lists the members that landed. */
void bisect_partial(struct item *it);
/* Done: refused values out of the planned membership (add_anchors), into
 * refused_now; each logged (provisioning log, operator log). */
void bisect_finish(struct session *s, struct item *it);
/* A group's failed-member records ("f:<group>#<member>") after its outcome. */
void bisect_commit(struct session *s, struct state_batch *sb, struct item *it);
void bisect_free(struct item *it);

/* ---- exec.c: the batch against the target ---------------------------------- */

#define ENGINE_ATTRS_MAX 20000

void engine_log(struct engine *e, int level, const char *msg, const char *detail);
void exec_log_op(struct session *s, const struct item *it, const char *action, const char *result,
		 const char *error);
/* Log the entries the mapping refused (after planning). */
void exec_log_skips(struct session *s, struct batch *b);
/* Submit it->op (action-specific fields set by the caller); a refusal to
 * take it marks the item cancelled. */
void exec_submit(struct session *s, struct item *it, enum target_action action);
/* Advance the batch through its phases until it waits for answers. */
void exec_run(struct session *s);
/* PH_UPSERT's requests (after the intents committed). */
void exec_upserts(struct session *s);
/* The target did not take it->op: the retry set, or the failed objects when
 * op.permanent; logged as `action`. */
void exec_item_failed(struct session *s, struct item *it, const char *action);
/* SelectUniqueValue (unique.c): take the answers of the last round and
 * ask the next questions. Returns true when questions are out (b->asking);
 * false when every creation's values are settled: the upserts may go. */
bool unique_round(struct session *s);
/* Forget what was asked (a rewind asks again) / release it. */
void unique_reset(struct item *it);
void unique_free(struct item *it);
/* The item was to choose values and has not: nothing to write from; its
 * failure is recorded for a re-read of the source (RETRY_REREAD). */
bool unique_unsettled(const struct item *it);
void exec_lease_check(uv_timer_t *t);

/* ---- commit.c: entries -------------------------------------------------------- */

/* Propose the intents of the batch: 0 when proposed (on_intents continues),
 * 1 when none is needed, -1 when it could not be proposed. */
int commit_intents(struct session *s);
/* Record every outcome (and the cursor when all are settled). */
void commit_batch(struct session *s);

/* ---- retryset.c: the retry set on this leader ------------------------------------ */

void retryset_load(struct session *s);
void retryset_recompute(struct session *s);
bool retryset_due_now(const struct session *s);
/* Makes every next try further ahead than twice the longest backoff due now
 * (set by a clock ahead of this one: retryset.c); returns how many. */
size_t retryset_clamp(struct session *s);
uint64_t engine_unix_ms(void);
uint64_t engine_rnd(struct engine *e);

/* ---- repair.c: in-doubt repair ----------------------------------------------- */

/* Find an earlier leader's intents and schedule their repair. */
void repair_schedule(struct session *s);
/* After the repair batch committed: read its objects again -- by DN when it
 * can, else (and for what the reads cannot settle) a full refresh. */
void repair_read(struct session *s, const struct batch *b);

/* ---- reread.c: reading a few objects again by DN ---------------------------- */

/* Read the entries `dns` (n of them, of `types`; for the repair `anchors`
 * holds the anchor each DN must still name) on a worker and keep them for
 * reread_take; falls back to reread_full for what the reads cannot settle,
 * or for all when the source cannot read one entry or n > 256. */
void reread_start(struct session *s, enum reread_why why, const char *const *dns, const char *const *anchors,
		  const enum object_type *types, size_t n);
/* A full refresh of the users' and/or the groups' scope. */
void reread_full(struct session *s, bool users, bool groups);
/* A user that left the scope: its delete is planned by reread_take. */
void reread_leaving(struct session *s, const char *anchor);
/* Plan what was read (those not written since: reread.c says why) and the
 * deletes of users that left the scope into `b`; false when it planned
 * nothing. */
bool reread_take(struct session *s, struct batch *b);
/* Drop what is kept (the session ends). */
void reread_clear(struct session *s);
/* Group-based scoping changed from `before` (normalized DNs and "=" keys,
 * as planner.scope) to the planner's scope now: read the users that entered
 * by DN, plan the deletes of those that left. */
void reread_scope(struct session *s, const struct strmap *before);

/* ---- provision.c: canopyctl provision ------------------------------------------ */

/* Plan the object of a provision (a SOURCE_ENTRY of its scope, or a
 * SOURCE_DELETE of its record) into b, whether a refresh runs or not
 * (plan.c); dry_run: a scratch batch, the planner is left as it was. */
void plan_provision(struct planner *p, struct batch *b, struct source_event *ev, bool dry_run);
/* A group item whose member DNs resolve to other exported members than its
 * record lists (plan.c; for a dry run, before exec plans members). */
bool plan_members_differ(struct planner *p, const struct item *it);
/* session_pump: the next waiting provision into b (false: none). */
bool provision_take(struct session *s, struct batch *b);
/* batch_free of a BATCH_PROVISION: answer its caller. */
void provision_batch_done(struct batch *b);
/* The session ends: answer every provision still waiting. */
void provision_drop(struct session *s);

/* ---- quarantine.c ----------------------------------------------------------- */

enum engine_quarantine quarantine_of(struct session *s, char *detail, size_t len);
void quarantine_update(struct session *s);
void quarantine_tick(uv_timer_t *t);
/* A follower's view: the leader's replicated quarantine (false: none). */
bool quarantine_replicated(struct engine *e, char *reason, size_t rlen, char *detail, size_t dlen);
/* The details: live on the leader ... */
void quarantine_info(struct session *s, enum engine_quarantine q, struct engine_quarantine_info *qi);
/* ... and as replicated ("q:info"; false: none or undecodable). */
bool quarantine_replicated_info(struct engine *e, struct engine_quarantine_info *qi);

/* ---- session.c ----------------------------------------------------------------- */

void session_start(struct engine *e);
void session_stop(struct engine *e);
/* The session ends after a failed commit; a new one starts from the committed
 * cursor after a growing delay. */
void session_restart(struct engine *e, const char *why);
void session_release(struct session *s); /* one of s->open is done */
void session_pump(struct session *s);
size_t session_batch_max(const struct engine *e);

/* engine.c */
void engine_release(struct engine *e);
/* Release the engine if it is closing and nothing runs any more (sessions,
 * provisions, plans). */
void engine_release_if_idle(struct engine *e);

#endif /* CANOPY_SYNC_ENGINE_INTERNAL_H */
