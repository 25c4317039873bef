/*
 * sync/provlog.h -- the provisioning log: one JSON line per target operation.
 *
 * Each node appends what it exported while it led to <data_dir>/provisioning.log
 * (so after a failover the history is spread over the nodes that led; each
 * line carries node and term). Fields: time, cycle, change, node, term,
 * anchor, dn, type, action (create|update|delete|skip|staged-delete|
 * members), result (ok|error|cancelled), target_id, http_status,
 * duration_ms, error.
 */
#ifndef CANOPY_SYNC_PROVLOG_H
#define CANOPY_SYNC_PROVLOG_H

#include <jansson.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>

struct provlog {
	FILE *f;
	char path[1024];
};

struct provlog_entry {
	uint64_t cycle, change, node, term;
	const char *anchor, *dn, *type, *action, *result, *target_id, *error;
	long http_status;
	double duration_ms;
};

/* Open (append) <dir>/provisioning.log. Returns 0 or -errno with errmsg. */
int provlog_open(struct provlog *l, const char *dir, char *errmsg, size_t errlen);
void provlog_close(struct provlog *l);
void provlog_write(struct provlog *l, const struct provlog_entry *e);

struct provlog_query {
	const char *since;  /* ISO 8601 time; entries at or after it; NULL: all */
	const char *object; /* anchor or DN (case-insensitive); NULL: all */
	bool errors_only;
	unsigned limit;     /* newest `limit` matches (default 1000) */
};

/* Read the log at `path` and return the matching entries as a JSON array. */
json_t *provlog_read(const char *path, const struct provlog_query *q);

#endif /* CANOPY_SYNC_PROVLOG_H */
