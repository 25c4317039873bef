/*
 * sync/target/target.h -- the target port: what the engine asks of an
 * identity target.
 *
 * A `struct target` is a configured target (sync/target/scim.c is one; an
 * Entra ID target speaking Microsoft Graph would be another file behind the
 * same table). The engine never sees its configuration or its wire format:
 * the agent builds the target and hands it over (sync/engine.h, struct
 * engine_ports), and the engine passes neutral data -- an object's anchor,
 * its known target id, the attributes the mapping produced, member target
 * ids. Building requests (JSON, paths, filters) is the target's business.
 * The table follows libraft's struct raft_io: function pointers plus `impl`.
 *
 * One leadership writes through one *run*: start() opens it, stop() closes
 * it. Runs may overlap briefly (stop is asynchronous). Every call and every
 * callback happens on the loop thread given to start(); a callback never runs
 * from inside submit(), but does from inside cancel_all() and stop().
 *
 * Idempotence (docs/architecture.md, "No lost change"): every write is keyed
 * by the anchor, so repeating an operation -- after a lost answer, a lease
 * expiry, a failover -- converges on one object in the target, never two.
 */
#ifndef CANOPY_SYNC_TARGET_TARGET_H
#define CANOPY_SYNC_TARGET_TARGET_H

#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <uv.h>

#include "sync/object.h"

enum target_action {
	TARGET_UPSERT = 1, /* create, or update the object known as target_id, from `attrs` */
	TARGET_DISABLE,    /* users: mark target_id disabled, keep it; gone counts as done */
	TARGET_DELETE,     /* delete target_id (or the object carrying `anchor`); gone is done */
	TARGET_MEMBERS,    /* group target_id: add the `add` ids, remove the `remove` ids */
	TARGET_MANAGER,    /* user target_id: set its manager to `manager_id`, or remove it
			    * (NULL); gone counts as done */
	TARGET_TAKEN,      /* a read, no write: is `value` of attribute `attr` held by an
			    * object of `type` other than the one carrying `anchor`?
			    * Answer in `taken` (SelectUniqueValue, at creation only;
			    * only when struct target's checks_taken is set) */
};

/* "upsert" / "disable" / "delete" / "members" / "manager" / "taken" */
const char *target_action_name(enum target_action a);

struct target_op;
typedef void (*target_done_cb)(struct target_op *op);

struct target_op {
	/* in: borrowed, must live until the callback */
	enum target_action action;
	enum object_type type;
	const char *anchor;          /* the source anchor: the key of every write */
	const char *target_id;       /* the object's id in the target, or NULL when unknown */
	const json_t *attrs;         /* UPSERT: the mapped attributes (sync/transform/mapping.h);
				      * a group's members are never in it */
	const char *manager_id;      /* UPSERT of a user: its manager's target id, written with the
				      * resource (NULL: no manager -- an update clears it);
				      * MANAGER: the id to set (NULL: remove) */
	bool keep;                   /* UPSERT of a known target_id: attributes `attrs` leaves out
				      * keep their value in the target (those a SelectUniqueValue
				      * rule chose at creation, which updates never re-evaluate) */
	const char *const *add;      /* MEMBERS: target ids to add ... */
	size_t n_add;
	const char *const *remove;   /* ... and to remove */
	size_t n_remove;
	bool verify;                 /* MEMBERS: a re-run of changes that may have landed: read
				      * the group back first and send only what is missing */
	bool exact;                  /* MEMBERS, with verify: `add` is every member the group
				      * must have; read it back, add what is missing and remove
				      * every other member (an earlier leader's uncommitted
				      * writes may have left members nobody recorded) */
	const char *attr;            /* TAKEN: the target attribute path (mapping_unique_attr(),
				      * e.g. "userName", "emails.value") ... */
	const char *value;           /* ... and the candidate value */
	void *data;                  /* the caller's */

	/* out: valid in the callback */
	int status;                  /* 0 done; -ECANCELED (cancel_all, stop); -ENOENT (MEMBERS:
				      * the group is gone from the target); another negative
				      * errno: not done (network, server, refusal) */
	bool permanent;              /* status != 0 and the target refused this one object for
				      * good (its content, not the target's health): retrying
				      * cannot help until the object changes */
	char result_id[128];         /* the object's target id after UPSERT; DELETE / DISABLE /
				      * MEMBERS: the id worked on (empty: nothing was found) */
	bool created;                /* UPSERT made a new object */
	bool matched;                /* UPSERT adopted an existing object (found by anchor or name) */
	long http_status;            /* the last answer's status, for the provisioning log (0: none) */
	unsigned attempts;           /* requests sent for it */
	double duration_ms;
	char error[512];             /* status != 0: what failed and why, for operators */
	bool values_refused;         /* MEMBERS, permanent: the refusal is about one or more of
				      * the values carried (RFC 7644 §3.12: invalidValue,
				      * noTarget, invalidSyntax), not the request: a subset may
				      * pass, so the engine isolates the refused ones
				      * (sync/engine/bisect.c) */
	size_t n_add_done;           /* MEMBERS, failed: leading `add` / `remove` values known
				      * to have landed before the refusal (the target may send
				      * them in several requests); 0 when unknown */
	size_t n_remove_done;
	bool taken;                  /* TAKEN, status 0: another object holds the value */

	void *priv;                  /* the target's */
};

/* Why a target holds every request back (quarantine). */
enum target_problem {
	TARGET_PROBLEM_NONE = 0,
	TARGET_UNAUTHORIZED,   /* credentials refused */
	TARGET_UNREACHABLE,    /* network failures */
	TARGET_SERVER_ERRORS,  /* the server keeps failing (5xx, unusable answers) */
	TARGET_SCHEMA_MISMATCH, /* the target's schema lacks what the mapping writes */
};

/* What the target said it supports (SCIM: RFC 7644 §4 discovery), and how
 * the run adapts; for status. */
struct target_caps {
	bool known;               /* discovery finished (answered or defaulted) */
	bool config_read;         /* the target answered its capability document */
	bool bulk;
	unsigned max_operations;  /* per bulk request (0: not given) */
	uint64_t max_payload;     /* bytes per bulk request (0: not given) */
	bool filter;
	unsigned max_results;     /* per list page (0: not given) */
	bool patch;
	bool etag;
	char patch_style[24];     /* in use: "standard", "value_remove", "members_replace", "put" */
	size_t schema_attributes; /* attributes of the user and group schemas read (0: none) */
};

struct target_stats {
	uint64_t requests, retries, failures; /* requests completed; re-sent; operations failed */
	bool quarantined;
	enum target_problem problem;
	char quarantine_reason[64];  /* the target's own word for it, as status shows it */
	char quarantine_detail[256];
	unsigned in_flight, queued;  /* operations on the wire / waiting */
	struct target_caps caps;
	/* The last request that failed in a way that counts against the target
	 * (no answer, 5xx, 401/403, 429): method "" when none yet. */
	char last_fail_method[8];
	char last_fail_path[256];
	long last_fail_status;       /* 0: no answer */
	int64_t last_fail_at_ms;     /* wall clock, ms since the epoch */
	int64_t next_retry_at_ms;    /* quarantined: when it checks the target again (0: a check is
				      * under way, or not quarantined) */
	int64_t checked_at_ms;       /* quarantined: the last check's answer (0: none yet) */
};

/* One run of a target, from start() to stop(): opaque, the implementation's
 * own object behind a cast. */
struct target_run;

struct target {
	void *impl;       /* the implementation's configuration */
	const char *name; /* "scim": for messages */
	/* The longest one request may stay on the wire. A new leader's in-doubt
	 * repair waits this long for an old leader's late write to land. */
	unsigned request_timeout_ms;
	/* submit() answers TARGET_TAKEN: a mapping may use SelectUniqueValue
	 * (docs/mapping-expressions.md). False: such a mapping is refused when
	 * the configuration loads. */
	bool checks_taken;

	/* Open a run. Returns 0 and *out, or a negative errno with errmsg
	 * (bad configuration, an unreadable credential). */
	int (*start)(struct target *t, uv_loop_t *loop, struct target_run **out, char *errmsg,
		     size_t errlen);

	/* Fencing: who writes, in which term, for which cluster (NULL: none).
	 * Every request from now on carries them. */
	void (*set_fence)(struct target_run *run, uint64_t node_id, uint64_t term, const char *cluster_id);

	/* Queue an operation; cb runs exactly once, never from inside this
	 * call. Returns 0, or -ESHUTDOWN (stopping) / -EINVAL (malformed) and
	 * cb does not run. op's out fields are reset here. */
	int (*submit)(struct target_run *run, struct target_op *op, target_done_cb cb);

	/* Complete every queued and in-flight operation with -ECANCELED before
	 * returning (leadership or lease lost). */
	void (*cancel_all)(struct target_run *run);

	/* Counters and quarantine (see struct target_stats). */
	void (*stats)(struct target_run *run, struct target_stats *out);

	/* Quarantined: check the target now instead of at the next backoff
	 * step (re-reading credentials); the answer ends the quarantine or keeps
	 * it, and moves checked_at_ms. Returns false when not quarantined. NULL:
	 * the target cannot (the engine waits for its own schedule). */
	bool (*retry_now)(struct target_run *run);

	/* Cancel everything and release the run; `done` runs on the loop when
	 * all is released. */
	void (*stop)(struct target_run *run, void (*done)(void *data), void *data);

	/* Release the target itself (no run may be left). */
	void (*close)(struct target *t);
};

#endif /* CANOPY_SYNC_TARGET_TARGET_H */
