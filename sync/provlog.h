/*
 * sync/provlog.h -- the provisioning log: one JSON line per target operation.
 *
 * Each node appends what it exported while it led to <data_dir>/provisioning.log
 * (so after a failover the history is spread over the nodes that led; each
 * line carries node and term). Fields: time, cycle, change, node, term,
 * anchor, dn, type, action (create | update | delete | disable | members |
 * manager | skip | staged-delete | staged-member-removal, and for a whole batch
 * scope-change | in-doubt-repair | lease-expired), result (ok | error: refused
 * for good | retry: in the retry set | held: staged for an operator |
 * waiting: a manager DN that names no exported user yet | cancelled),
 * target_id, http_status, duration_ms, error, and for an update whose
 * previous content this node knows, modified: [{"attr", "old", "new"}] (see
 * provlog_modified()).
 */
#ifndef CANOPY_SYNC_PROVLOG_H
#define CANOPY_SYNC_PROVLOG_H

#include <jansson.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>

/*
 * Write errors (ENOSPC, EIO, a short write) never leave a torn line: each
 * entry goes out in one write() of the whole line, and a partial one is cut
 * back off (ftruncate to the length before it; if even that fails, on the
 * next reopen). After an error the file is closed and reopened on the next
 * write, so entries resume once space returns. Entries written while it fails
 * are lost from the file and counted.
 */
struct provlog {
	int fd;              /* -1: closed (reopened by the next write) */
	char path[1024];
	long long cut_at;    /* a torn tail to cut off at reopen (-1: none) */
};

/* Process-wide health of the provisioning log (one per agent). */
struct provlog_health {
	uint64_t write_errors; /* entries that could not be written */
	uint64_t reopens;      /* times the file was reopened after an error */
	bool failing;          /* the last write failed */
	int last_errno;        /* errno of the last failure (ENOSPC for a short write) */
	char path[1024];
};

/* Copy of the current health. */
void provlog_health(struct provlog_health *out);

/*
 * Called on the writing thread when writes start failing (`h->failing`) and
 * when they work again: the owner logs it (once each way). NULL: none.
 */
void provlog_on_health_change(void (*cb)(void *data, const struct provlog_health *h), void *data);

struct provlog_entry {
	uint64_t cycle, change, node, term;
	const char *anchor, *dn, *type, *action, *result, *target_id, *error;
	long http_status;
	double duration_ms;
	const json_t *modified; /* provlog_modified(); NULL: not known */
};

#define PROVLOG_MODIFIED_MAX 32     /* attributes listed per entry ... */
#define PROVLOG_VALUE_MAX 256       /* ... and bytes of each value (as JSON) */

/*
 * The attributes that differ between two mapped resources (JSON objects of
 * attribute -> value), as a new array of {"attr", "old", "new"} in `now`'s
 * order (members of an object on both sides one by one: "name.familyName"),
 * then the removed ones ("new": null; an added one has "old": null).
 * Secrets are not written: the values of an attribute whose name contains
 * "password", "secret" or "pwd" (any case) read "***". Bounded: at most
 * PROVLOG_MODIFIED_MAX attributes (then one {"attr": "...", "more": N}), and
 * a value longer than PROVLOG_VALUE_MAX as JSON becomes the string
 * "(N bytes)". Empty array when nothing differs.
 */
json_t *provlog_modified(const json_t *before, const json_t *now);

/* Open (append) <dir>/provisioning.log. Returns 0 or -errno with errmsg. */
int provlog_open(struct provlog *l, const char *dir, char *errmsg, size_t errlen);
void provlog_close(struct provlog *l);
void provlog_write(struct provlog *l, const struct provlog_entry *e);

struct provlog_query {
	bool has_since;     /* false: all times */
	int64_t since_us;   /* entries at or after it (microseconds since the epoch): an
			     * entry written within the second `since` names is never dropped */
	const char *object; /* anchor or DN (case-insensitive); NULL: all */
	bool errors_only;
	unsigned limit;     /* newest `limit` matches (default 1000) */
};

/*
 * Parse an RFC 3339 time ("2026-11-24T17:13:03Z", "...03.123456+01:00"; "T"
 * or a space between date and time) into microseconds since the epoch.
 * Returns 0, or -EINVAL for anything else (no date alone, no junk after it).
 */
int provlog_parse_time(const char *text, int64_t *us);

/* Read the log at `path` and return the matching entries as a JSON array
 * (empty when the file cannot be read; never NULL). `*truncated` (if not
 * NULL) tells whether older matches were left out by the limit. */
json_t *provlog_read(const char *path, const struct provlog_query *q, bool *truncated);

#endif /* CANOPY_SYNC_PROVLOG_H */
