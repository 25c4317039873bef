/*
 * sync/state/cluster.h -- the cluster's identity in the replicated state.
 *
 * Key namespace 'c' (see object.h for the others):
 *   "c:id"   the cluster id: 32 lowercase hex digits (128 random bits), with
 *            a terminating NUL stored in the value so that a node can read it
 *            in place as a C string.
 *
 * The first ready leader of a cluster that has none commits it (agent/
 * identity.c); every target request then carries it as X-Canopy-Cluster, so
 * two clusters writing to one target are told apart in its audit.
 */
#ifndef CANOPY_SYNC_STATE_CLUSTER_H
#define CANOPY_SYNC_STATE_CLUSTER_H

#include <stdbool.h>
#include <stddef.h>

#include "sync/state/state.h"

#define CLUSTER_KEY_PREFIX ((char)STATE_NS_CLUSTER)
#define CLUSTER_ID_KEY "c:id"
#define CLUSTER_ID_HEX 32 /* characters, without the NUL */

/* The committed cluster id, borrowed from the state (valid until the next
 * apply changes it), or NULL when none was committed yet. */
const char *cluster_id_get(const struct state *s);

/* Whether `id` is a well-formed cluster id (CLUSTER_ID_HEX lowercase hex). */
bool cluster_id_valid(const char *id);

/* Add "c:id" = id to a batch. */
void cluster_id_put(struct state_batch *b, const char *id);

/* A new random id (OpenSSL RAND_bytes) into out[CLUSTER_ID_HEX + 1].
 * Returns 0, or -EIO with errmsg filled when no randomness is available. */
int cluster_id_generate(char *out, char *errmsg, size_t errlen);

#endif /* CANOPY_SYNC_STATE_CLUSTER_H */
