/*
 * agent/member_watch.h -- a node that was removed from the cluster notices.
 *
 * libraft 0.15 stops replicating to a server as soon as the leader appends
 * the configuration without it (Raft dissertation §4.2.2: the removed server
 * is simply no longer sent entries), so the removed node usually never
 * applies that configuration: it times out, campaigns as candidate with its
 * old configuration, and is ignored forever. Two ways out, both checked here:
 *   - it applied a configuration that does not list it (it did receive it);
 *   - it has known no leader for MEMBER_WATCH_LEADERLESS election timeouts:
 *     it asks the control API of the members it knows (the "n:<id>" control
 *     addresses in the replicated state) for their status; when a ready
 *     leader, or a follower that has a leader, answers with a members list
 *     without this node, it was removed.
 * Either way it logs that at warn and stops with exit code 0.
 */
#ifndef CANOPY_AGENT_MEMBER_WATCH_H
#define CANOPY_AGENT_MEMBER_WATCH_H

#include <stdbool.h>
#include <stdint.h>
#include <uv.h>

#define MEMBER_WATCH_LEADERLESS 3 /* election timeouts without a leader before asking */
#define MEMBER_WATCH_MAX_ASK 8    /* control addresses asked per round */

struct agent;

struct member_watch {
	uv_timer_t timer;
	bool asking;       /* a round of status queries runs on the thread pool */
	uv_work_t work;
	uint64_t last_ask; /* raft time of the last round */
	/* the round's input and output (owned by the worker while asking) */
	uint64_t self;
	unsigned n_addr;
	char addr[MEMBER_WATCH_MAX_ASK][256];
	int verdict;       /* 1 listed, -1 not listed by a ready leader, 0 no answer */
	uint64_t leader_id;
	char leader_addr[256];
};

void member_watch_start(struct agent *a);
void member_watch_close(struct agent *a);

#endif /* CANOPY_AGENT_MEMBER_WATCH_H */
