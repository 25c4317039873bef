/*
 * agent/identity.h -- this node's cluster id: DATA_DIR/cluster-id and the
 * replicated "c:id" (sync/state/cluster.h).
 *
 * - The first ready leader of a cluster whose state has no id commits a new
 *   random one before the engine starts (so every target request carries
 *   it); later leaders re-commit it once per leadership, which costs one
 *   small entry and makes a node holding a foreign log meet the id of the
 *   cluster it is in even where the two logs agree on index and term.
 * - Every node writes the id to DATA_DIR/cluster-id (0600) when it first
 *   applies it. A node whose file names another cluster than the state it
 *   applies logs why, never exports, and exits non-zero.
 */
#ifndef CANOPY_AGENT_IDENTITY_H
#define CANOPY_AGENT_IDENTITY_H

#include <stdbool.h>
#include <stddef.h>
#include <uv.h>

#include "sync/state/cluster.h"

struct agent;

struct identity {
	char file_id[CLUSTER_ID_HEX + 1]; /* DATA_DIR/cluster-id; "" when none */
	bool write_failed;  /* writing the file failed once: said so, not retried */
	bool failed;        /* the data dir belongs to another cluster: never export */
	bool committing;    /* a new id's entry is in flight */
	uv_check_t watch;   /* compares state and file after every loop iteration */
};

/* Read DATA_DIR/cluster-id (absent is fine). Returns 0, or a negative errno
 * with errmsg filled (unreadable or malformed file). */
int identity_load(struct agent *a, char *errmsg, size_t errlen);
/* Start comparing state and file on the loop; identity_close() stops it. */
void identity_start(struct agent *a);
void identity_close(struct agent *a);

/*
 * This node became a ready leader: commit the cluster id when the state has
 * none, then start the engine (engine_lead) once it is committed; with an id
 * already there, re-commit it and start the engine at once. Never starts the
 * engine for a node whose data dir belongs to another cluster.
 */
void identity_lead(struct agent *a);

/* Resume exporting on this leader after a pause (e.g. a transfer that did not
 * happen), under the same checks as identity_lead, without a new commit. */
void identity_resume(struct agent *a);

/* The committed cluster id, or NULL. */
const char *identity_cluster_id(struct agent *a);

#endif /* CANOPY_AGENT_IDENTITY_H */
