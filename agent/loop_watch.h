/*
 * agent/loop_watch.h -- notices when the event loop was blocked.
 *
 * Everything a node does for Raft runs on one libuv loop: heartbeats,
 * AppendEntries answers, votes, and the engine's planning. When one callback
 * holds the loop for a large part of the election timeout, the followers stop
 * hearing the leader and elect another one, with no crash anywhere: a stalled
 * loop looks exactly like a dead leader from outside (Raft dissertation §3.4:
 * a follower that hears nothing for an election timeout campaigns). This
 * watch makes such stalls visible instead of leaving only "elections
 * happened": a repeating timer measures how late it fires; a lateness over
 * the stall threshold is counted, logged at warn (at most once per
 * LOOP_WATCH_WARN_EVERY_MS, with how many were seen since) and exported as
 * metrics (canopy_loop_lag_max_ms, canopy_loop_stalls_total).
 *
 * A SIGSTOP of the process, or a host too busy to schedule it, shows the same
 * way: the watch cannot tell them apart, and does not need to.
 */
#ifndef CANOPY_AGENT_LOOP_WATCH_H
#define CANOPY_AGENT_LOOP_WATCH_H

#include <stdint.h>
#include <uv.h>

#define LOOP_WATCH_PERIOD_MS 50
#define LOOP_WATCH_WARN_EVERY_MS 10000

struct loop_watch {
	uv_timer_t timer;
	uint64_t stall_ms;      /* lateness counted as a stall */
	uint64_t due_ns;        /* when the next tick should come (uv_hrtime) */
	uint64_t lag_max_ms;    /* largest lateness since start */
	uint64_t stalls;        /* ticks later than stall_ms */
	uint64_t warned_stalls; /* stalls already logged */
	uint64_t last_warn_ns;
	uint64_t last_lag_ms;   /* lateness of the most recent stall */
};

/* Starts the watch on `loop`; a tick later than `stall_ms` is a stall.
 * Returns 0 or a negative libuv error. */
int loop_watch_start(struct loop_watch *w, uv_loop_t *loop, uint64_t stall_ms);
/* Stops it; the timer handle is closed (no callback). */
void loop_watch_close(struct loop_watch *w);

#endif /* CANOPY_AGENT_LOOP_WATCH_H */
