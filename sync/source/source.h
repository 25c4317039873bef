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
 */
#ifndef CANOPY_SYNC_SOURCE_H
#define CANOPY_SYNC_SOURCE_H

#include <stdbool.h>
#include <stddef.h>

#include "sync/object.h"

enum source_event_kind {
	SOURCE_ENTRY = 1,      /* added or modified: anchor, dn, attrs */
	SOURCE_DELETE,         /* deleted or out of scope: anchor (dn if known) */
	SOURCE_PRESENT,        /* unchanged and still present (refresh only): anchor */
	SOURCE_REFRESH_BEGIN,  /* a refresh of `type` starts */
	SOURCE_REFRESH_END,    /* that refresh is complete; persist phase follows */
	SOURCE_CURSOR,         /* only a new cursor (e.g. syncInfo newcookie) */
	SOURCE_STATUS,         /* connection state changed: message says how */
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
	char *message;             /* SOURCE_STATUS: "ldap://h:389: Can't contact LDAP server" */
};

/* Free an event and everything it owns. */
void source_event_free(struct source_event *ev);

#endif /* CANOPY_SYNC_SOURCE_H */
