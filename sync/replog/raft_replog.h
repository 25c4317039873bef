/*
 * sync/replog/raft_replog.h -- the replicated-log port (replog.h) over this
 * node's libraft server (raft/node.h) and its leadership tracker
 * (raft/leader.h). The agent makes one and hands it to the engine.
 */
#ifndef CANOPY_SYNC_REPLOG_RAFT_REPLOG_H
#define CANOPY_SYNC_REPLOG_RAFT_REPLOG_H

#include "raft/node.h"
#include "sync/replog/replog.h"

/* A new port over `node` (borrowed: it must outlive the port). Never fails
 * (out of memory aborts, common/xalloc.h). */
struct replog *raft_replog_new(struct node *node);

#endif /* CANOPY_SYNC_REPLOG_RAFT_REPLOG_H */
