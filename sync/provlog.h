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
	uint64_t max_bytes;  /* rotate before a line would pass it (0: never) */
	unsigned keep;       /* rotated files kept: provisioning.log.1 ... .keep */
};

/*
 * Rotation (log.provisioning_max_bytes, log.provisioning_keep). The writer
 * rotates before an entry would make the file larger than max_bytes (a file
 * holds at least one entry, so a longer line is written alone): .keep is
 * removed, .N becomes .N+1, provisioning.log becomes .1, and the entry
 * starts a new provisioning.log (0600). A line is never split across files,
 * and every entry written is in exactly one of them. provlog_read() reads
 * across the rotated files, newest first.
 */
#define PROVLOG_DEFAULT_MAX_BYTES (64ull * 1024 * 1024)
#define PROVLOG_DEFAULT_KEEP 5
#define PROVLOG_MIN_MAX_BYTES 4096ull           /* smaller would rotate on every few entries */
#define PROVLOG_MAX_MAX_BYTES (1ull << 40)      /* 1 TiB */
#define PROVLOG_MAX_KEEP 100                    /* files a query may walk through */

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

/* Open (append) <dir>/provisioning.log, rotating at PROVLOG_DEFAULT_MAX_BYTES
 * with PROVLOG_DEFAULT_KEEP files kept. Returns 0 or -errno with errmsg. */
int provlog_open(struct provlog *l, const char *dir, char *errmsg, size_t errlen);

/* Change the rotation limits of an open log (max_bytes 0: never rotate;
 * keep at least 1). */
void provlog_set_rotation(struct provlog *l, uint64_t max_bytes, unsigned keep);
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

/* Read the log at `path`, then its rotated files `path`.1, .2, ... (up to
 * PROVLOG_MAX_KEEP, while they exist; a file met twice because a rotation
 * renamed it meanwhile is read once), and return the matching entries as a
 * JSON array, oldest first (empty when nothing can be read; never NULL).
 * Reading stops at `limit` matches or, with `since`, at the first older
 * entry. `*truncated` (if not NULL) tells whether older matches were left out
 * by the limit. */
json_t *provlog_read(const char *path, const struct provlog_query *q, bool *truncated);

#endif /* CANOPY_SYNC_PROVLOG_H */
