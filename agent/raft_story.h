/*
 * agent/raft_story.h -- one log line per cluster state change this node sees.
 *
 * After every loop iteration (a uv_check, like raft/node.c's own poll) the
 * node's status is compared with what was last logged, so each transition is
 * logged once, on every node that sees it, and nothing is logged while
 * nothing changes:
 *   info "election started: this node is a candidate"   term
 *   info "leader known"                                 leader term (a new leader or a new term)
 *   warn "leader lost"                                  was term (no leader known any more)
 *   info "member added"                                 member address role
 *   info "member removed"                               member
 *   info "member promoted" / "member role changed"      member from to
 * Leadership gained and lost are logged by agent/agent.c ("acting as
 * leader", "stopped acting as leader") after the barrier (raft/leader.h).
 */
#ifndef CANOPY_AGENT_RAFT_STORY_H
#define CANOPY_AGENT_RAFT_STORY_H

#include <stdbool.h>
#include <stdint.h>
#include <uv.h>

#include "raft/node.h"

struct raft_story {
	uv_check_t check;
	struct node *node;
	bool seen;              /* a first status was taken (nothing logged for it) */
	enum node_state state;
	uint64_t leader_id, leader_term;
	unsigned n_members;     /* 0: no configuration known yet */
	struct {
		uint64_t id;
		int role;
	} members[NODE_MAX_MEMBERS];
};

void raft_story_start(struct raft_story *s, uv_loop_t *loop, struct node *n);
void raft_story_close(struct raft_story *s);

#endif /* CANOPY_AGENT_RAFT_STORY_H */
