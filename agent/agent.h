/*
 * agent/agent.h -- one canopy agent: the libuv loop and what runs on it.
 *
 * The agent owns the single loop thread and wires the modules together:
 * configuration -> replicated state (sync/state) -> raft node (raft/) ->
 * control API (agent/http.c, agent/control.c). It is the only module that
 * knows all the others; they do not know each other.
 */
#ifndef CANOPY_AGENT_AGENT_H
#define CANOPY_AGENT_AGENT_H

#include <stdbool.h>
#include <stdint.h>
#include <time.h>
#include <uv.h>

#include "agent/config.h"
#include "agent/http.h"
#include "raft/node.h"
#include "sync/engine.h"
#include "sync/state/state.h"
#include "sync/transform/mapping.h"

struct agent {
	uv_loop_t loop;
	struct config cfg;
	struct state state;
	struct node node;
	struct http_server http;
	uv_signal_t sigterm, sigint;
	bool stopping;
	int exit_code;
	time_t started_wall;
	uint64_t http_requests;
	/* The sync engine; NULL when source or target is not configured. */
	struct engine *engine;
	struct mapping *user_map, *group_map;
	const char *urls[CONFIG_MAX_URLS];
	const char *user_exclude[CONFIG_MAX_EXCLUDES], *group_exclude[CONFIG_MAX_EXCLUDES];
	struct http_pending *transfer_pending; /* a `cluster transfer` awaiting its result */
	/* When this node last saw the replicated cursor change (the cursor's age
	 * in status); polled on the loop, local to this node. */
	time_t cursor_seen_at;
	uint64_t cursor_digest;
	uv_timer_t cursor_watch;
};

/*
 * Run the agent described by the configuration file until SIGTERM/SIGINT.
 * Returns the process exit code: 0 after a clean stop, 1 with the cause in
 * errmsg when start-up failed.
 */
int agent_run(const char *config_path, char *errmsg, size_t errlen);

/* The control API's request handler (agent/control.c). */
void control_handle(void *data, const struct http_request *req, struct http_reply *reply);

#endif /* CANOPY_AGENT_AGENT_H */
