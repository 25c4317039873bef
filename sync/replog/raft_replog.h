/*
 * sync/replog/raft_replog.h -- the replicated-log port (replog.h) over this
 * node's libraft server (raft/node.h) and its leadership tracker
 * (raft/leader.h). The agent makes one and hands it to the engine.
 */
#ifndef CANOPY_SYNC_REPLOG_RAFT_REPLOG_H
#define CANOPY_SYNC_REPLOG_RAFT_REPLOG_H

#include "raft/node.h"
#include "sync/replog/replog.h"

/*
 * A new port over `node` and the state it applies (both borrowed: they must
 * outlive the port). Never fails (out of memory aborts, common/xalloc.h).
 *
 * propose() writes each entry in the newest format every member of the
 * current configuration supports (sync/state/format.h): format 1 while any
 * member has not advertised more, so a member still running an older build
 * never meets an entry it would refuse.
 */
struct replog *raft_replog_new(struct node *node, const struct state *state);

/* The format propose() writes now (the same rule, without proposing). */
uint16_t raft_replog_format(struct replog *l);

#endif /* CANOPY_SYNC_REPLOG_RAFT_REPLOG_H */
