/*
 * raft/peek.h -- reads of libraft 0.15's public-but-internal struct raft.
 *
 * libraft 0.15 exposes `struct raft` but offers no getters for the current
 * term, the commit index or a leader's view of follower reachability. Every
 * such read lives here, in one small file, because it is tied to this
 * library version (DESIGN.md): a libraft upgrade is checked against this
 * file alone.
 */
#ifndef CANOPY_RAFT_PEEK_H
#define CANOPY_RAFT_PEEK_H

#include <raft.h>
#include <stdbool.h>

raft_term peek_term(const struct raft *r);
raft_index peek_commit_index(const struct raft *r);

/* Highest log index persisted on this node's disk. */
raft_index peek_last_stored(const struct raft *r);

/* The latest configuration (committed or not) this node knows. */
const struct raft_configuration *peek_configuration(const struct raft *r);

/*
 * For server i of r->configuration, as seen by this node: 1 reachable,
 * 0 not, -1 unknown (a follower does not track its peers). The leader uses
 * progress[i].recent_recv: a message received within the election timeout.
 */
int peek_reachable(const struct raft *r, unsigned i, raft_index *match_index);

#endif /* CANOPY_RAFT_PEEK_H */
