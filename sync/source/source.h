/*
 * sync/source/source.h -- what a directory source delivers to the engine.
 *
 * A source reads users and groups from an on-premises directory and pushes
 * events to the loop thread in order. It never sees the target or Raft: it
 * only produces events and resumes from a cursor the engine hands back.
 *
 * Cursor: an opaque blob owned by the source (for OpenLDAP, the RFC 4533
 * cookies of its sessions). An event may carry `cursor`: the complete cursor
 * that is valid once this event *and every event before it* has been handled.
 * The engine commits that blob through Raft only after the target
 * acknowledged all those events (invariant 1), and passes the last committed
 * blob to source_start on the next leader.
 *
 * Refresh: every session starts with a refresh phase (RFC 4533 §3.4). Between
 * SOURCE_REFRESH_BEGIN and SOURCE_REFRESH_END of one object type, the source
 * reports each in-scope entry as SOURCE_ENTRY (changed) or SOURCE_PRESENT
 * (unchanged since the cursor). When SOURCE_REFRESH_END has `present_phase`
 * set, every object of that type that was *not* reported in between has been
 * deleted or has left the scope (a full refresh, or the server chose the
 * present phase); otherwise deletes come as explicit SOURCE_DELETE events.
 * A new SOURCE_REFRESH_BEGIN for a type whose refresh has not ended (the
 * connection was lost mid-refresh, the cursor was too old) abandons that
 * refresh: what it reported must not count towards present_phase.
 * SOURCE_DELETE may name an anchor the consumer never saw, or one of the
 * other type (a directory's change log need not be filtered by scope
 * exactly): the consumer ignores those.
 */
#ifndef CANOPY_SYNC_SOURCE_H
#define CANOPY_SYNC_SOURCE_H

#include <stdbool.h>
#include <stddef.h>
#include <uv.h>

#include "sync/object.h"

enum source_event_kind {
	SOURCE_ENTRY = 1,      /* added or modified: anchor, dn, attrs */
	SOURCE_DELETE,         /* deleted or out of scope: anchor (dn if known) */
	SOURCE_PRESENT,        /* unchanged and still present (refresh only): anchor */
	SOURCE_REFRESH_BEGIN,  /* a refresh of `type` starts */
	SOURCE_REFRESH_END,    /* that refresh is complete; persist phase follows */
	SOURCE_CURSOR,         /* only a new cursor (e.g. syncInfo newcookie) */
	SOURCE_STATUS,         /* connection state changed: message says how */
	SOURCE_NOTICE,         /* not a change: a message for the operator's log
				* (message; warning: log it as a warning), e.g. a
				* limit of the bind account, what a reconcile found */
};

/* Why a source cannot read the directory (SOURCE_STATUS with connected false). */
enum source_problem {
	SOURCE_PROBLEM_NONE = 0,
	SOURCE_UNREACHABLE,    /* connect, TLS or network failure, server down */
	SOURCE_UNAUTHORIZED,   /* bind refused, or the secret cannot be read */
	SOURCE_FAILING,        /* connected, but the search fails (bad base, refused control) */
};

/* "none" / "source_unreachable" / "source_unauthorized" / "source_error":
 * the quarantine reason codes shown in status. */
const char *source_problem_name(enum source_problem p);

struct source_event {
	enum source_event_kind kind;
	enum object_type type;     /* the scope (users or groups) it came from */
	char *anchor;              /* entryUUID as text (36 chars), or NULL */
	char *dn;                  /* or NULL */
	struct object_attr *attrs; /* SOURCE_ENTRY only */
	size_t n_attrs;
	bool present_phase;        /* SOURCE_REFRESH_END only, see above */
	void *cursor;              /* or NULL; see above */
	size_t cursor_len;
	bool connected;            /* SOURCE_STATUS: true once (re)connected */
	enum source_problem problem; /* SOURCE_STATUS with connected false: why */
	char *message;             /* SOURCE_STATUS: "ldap://h:389: Can't contact LDAP server"; SOURCE_NOTICE */
	bool warning;              /* SOURCE_NOTICE: log as a warning, not as information */
};

/* Free an event and everything it owns. */
void source_event_free(struct source_event *ev);

/* ---- the source port: what the engine calls ------------------------------
 *
 * A `struct source` is a configured directory source (sync/source/openldap.c
 * is one; an Active Directory source would be another file behind the same
 * table). The engine never sees its configuration: the agent builds it and
 * hands it over (sync/engine.h, struct engine_ports). The operations table
 * follows libraft's struct raft_io: function pointers plus `impl`.
 *
 * One leadership reads the directory through one *run*: start() begins it
 * from a cursor, stop() ends it. Runs may overlap briefly: a new one can start
 * while the previous one is still shutting down (stop is asynchronous).
 * Every call happens on the loop thread given to start().
 */

/* One run of a source, from start() to stop(): opaque, the implementation's
 * own object behind a cast. */
struct source_run;

/* Called on the loop thread for every event, in order. The callee owns `ev`
 * (free with source_event_free). Never called from inside a source call. */
typedef void (*source_event_cb)(void *data, struct source_event *ev);

/* What a run has said about its connection, for status and quarantine. */
struct source_status {
	bool reported;             /* a SOURCE_STATUS event was delivered */
	bool connected;            /* ... and said the source can read */
	enum source_problem problem; /* the last one's problem (connected false) */
	char message[256];         /* the last one's message */
	size_t queue_peak;         /* most events ever waiting for the consumer */
	/* After a failed attempt to connect and read (wall clock, ms since the
	 * epoch; 0: none yet): when it ended, when the next one starts, and the
	 * directory operation that failed with its LDAP result code (RFC 4511
	 * §4.1.9; last_op "" when the failure named none). */
	int64_t checked_at_ms, next_retry_at_ms;
	char last_op[16];
	int last_code;
};

struct source {
	void *impl;       /* the implementation's configuration */
	const char *name; /* "openldap": for messages */
	/* Group member values are links that follow a rename or move of the
	 * member without a change of the group (Active Directory's linked
	 * attributes): a group is never left naming a member's old DN, so the
	 * engine does not take a renamed member out of its groups. False for
	 * LDAP, where `member` holds plain DNs (refint rewrites the groups as a
	 * change of its own, when it is there at all). */
	bool member_links;

	/*
	 * Start reading from `cursor` (NULL / 0: from scratch, i.e. a full
	 * refresh of every scope), requesting `attrs` (the attributes the
	 * mappings read; NULL: all user attributes). Events go to cb(data, ev).
	 * Returns 0 and the run in *out, or a negative errno with errmsg filled
	 * (bad configuration, a cursor of another source, no thread). Failing to
	 * reach the directory is not a start error: it is retried and reported
	 * with SOURCE_STATUS events.
	 */
	int (*start)(struct source *src, uv_loop_t *loop, const void *cursor, size_t cursor_len,
		     const char *const *attrs, size_t n_attrs, source_event_cb cb, void *data,
		     struct source_run **out, char *errmsg, size_t errlen);

	/* Read every entry of `type`'s scope again: a refresh with present_phase
	 * for that scope only (the others keep their cursor). For scope changes
	 * the directory cannot tell (group-based scoping, in-doubt repair). */
	void (*refresh)(struct source_run *run, enum object_type type);

	/* Flow control: while paused no event is delivered and the source stops
	 * reading once its own bounded queue is full; resume delivers the rest
	 * from the next loop iteration on. Both idempotent. */
	void (*pause)(struct source_run *run);
	void (*resume)(struct source_run *run);

	/* What the run has reported so far (see struct source_status). */
	void (*status)(struct source_run *run, struct source_status *out);

	/* Disconnected: try again now instead of after the backoff (an
	 * operator fixed the cause). NULL: the source cannot. */
	void (*retry_now)(struct source_run *run);

	/* End the run at once: undelivered events are dropped without a
	 * callback; `done` runs on the loop once everything is released. */
	void (*stop)(struct source_run *run, void (*done)(void *data), void *data);

	/* Release the source itself (no run may be left). */
	void (*close)(struct source *src);

	/*
	 * Optional (NULL: the cursor is not described). The committed cursor
	 * for people -- what it says about how far the directory was read
	 * (status sync.cursor_readable): 0 with one line of text in out (cut to
	 * outlen), or -EINVAL when this source does not understand the blob.
	 * A pure function of the blob: any thread, no run needed.
	 */
	int (*describe_cursor)(const struct source *src, const void *cursor, size_t cursor_len, char *out,
			       size_t outlen);

	/*
	 * Optional (NULL: this source cannot; canopyctl provision and plan say
	 * so). Both block -- they open a connection of their own, outside any
	 * run, bind like the runs do and read -- so the engine calls them on a
	 * uv worker thread, never on the loop. They touch nothing a run uses
	 * and may be called while runs start and stop.
	 *
	 * read_entry: the entry `dn` now, requesting `attrs` (as start()).
	 * Returns 0 with *out a SOURCE_ENTRY (anchor, dn, attrs) whose `type`
	 * is the scope it is in by its base and filter (users first), or
	 * OBJECT_UNKNOWN when neither takes it; *out NULL when the directory
	 * has no such entry. `rule` says which base and filter took it, or why
	 * each scope left it out ("users: not under ou=people,...; groups: ...").
	 * The source's own rules only: excluded subtrees and group-based
	 * scoping are the engine's. A negative errno with errmsg when the
	 * directory cannot be read (connect, bind, search).
	 *
	 * read_scope: every entry of `type`'s scope (base, subtree, filter) now,
	 * as SOURCE_ENTRY events in *out (n_out of them; free each with
	 * source_event_free, then the array). A scope that is not configured
	 * (no groups base) is empty. At most SOURCE_READ_SCOPE_MAX entries:
	 * more is -EFBIG with errmsg, before anything is kept beyond it.
	 */
	int (*read_entry)(struct source *src, const char *dn, const char *const *attrs, size_t n_attrs,
			  struct source_event **out, char *rule, size_t rule_len, char *errmsg, size_t errlen);
	int (*read_scope)(struct source *src, enum object_type type, const char *const *attrs, size_t n_attrs,
			  struct source_event ***out, size_t *n_out, char *errmsg, size_t errlen);
};

/* The most entries read_scope returns (a plan of a larger scope is refused). */
#define SOURCE_READ_SCOPE_MAX 1000000

#endif /* CANOPY_SYNC_SOURCE_H */
