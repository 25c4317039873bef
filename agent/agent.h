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

#include <jansson.h>
#include <stdbool.h>
#include <stdint.h>
#include <time.h>
#include <uv.h>

#include "agent/config.h"
#include "agent/health.h"
#include "agent/http.h"
#include "agent/identity.h"
#include "agent/loop_watch.h"
#include "agent/member_watch.h"
#include "agent/raft_story.h"
#include "agent/replconf.h"
#include "agent/leader_watch.h"
#include "agent/member_view.h"
#include "agent/versions.h"
#include "raft/node.h"
#include "sync/engine.h"
#include "sync/state/state.h"
#include "sync/transform/mapping.h"

/*
 * Failover drills (agent/control_drill.c): POST /v1/drill/{transfer,crash}
 * on the leader, and what every node notes for `canopyctl drill failover`:
 * the first moment it could export in its latest leadership.
 */
struct drill {
	uv_check_t check;       /* every loop iteration: notes export_at */
	uv_timer_t rejoin;      /* ends a crash drill's isolation */
	bool started;
	bool crashed;           /* a crash drill runs on this node: raft cut off, lease suspended */
	uint64_t crash_until;   /* raft time the cut ends */
	uint64_t started_total; /* drills this node started as leader */
	uint64_t lead_term;     /* the term of this node's latest ready leadership (0: none) */
	uint64_t export_at;     /* raft time it could first export in lead_term (0: not yet) */
	uint64_t export_wall_ms;/* the same moment, epoch ms (node_wall_ms) */
};

struct agent {
	uv_loop_t loop;
	struct config cfg;
	struct state state;
	struct node node;
	struct http_server http;
	uv_signal_t sigterm, sigint;
	uv_signal_t sighup; /* reloads the cluster TLS files (raft/transport_tls.h) */
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
	struct identity identity;         /* the cluster id (agent/identity.h) */
	struct member_watch member_watch; /* notices removal (agent/member_watch.h) */
	struct leader_watch leader_watch; /* a crashed leader in milliseconds (agent/leader_watch.h) */
	struct drill drill;               /* failover drills (agent/control_drill.c) */
	struct loop_watch loop_watch;     /* a blocked event loop is seen (agent/loop_watch.h) */
	struct raft_story raft_story;     /* elections, leaders, members: one line each (agent/raft_story.h) */
	struct versions versions;         /* members' versions, the format written (agent/versions.h) */
	char exit_reason[512];            /* why agent_shutdown() stopped with a non-zero code */
	/* When this node last saw the replicated cursor change (the cursor's age
	 * in status); polled on the loop, local to this node. */
	time_t cursor_seen_at;
	uint64_t cursor_digest;
	uv_timer_t cursor_watch;
	/* WATCHDOG=1 to the service manager at half $WATCHDOG_USEC, from the
	 * loop itself: a blocked loop stops the pings (agent/sd_notify.h) */
	uv_timer_t watchdog;
	int storage_logged; /* the storage state last logged (raft/storage.h), polled with the cursor */
	/* This node's source/target health and the health hand-over
	 * (agent/health.h); NULL once stopped. */
	struct health *health;
	struct member_view *member_view; /* followers: the leader's member view (agent/member_view.h) */
	/* Outbound trust and credentials of the target side, shared by the SCIM
	 * target and the health probe: target.tls (sync/target/http_tls.h;
	 * NULL without a target) and target.auth (sync/target/oauth2.h; NULL
	 * without it). Made at start, read-only, released after the loop ends. */
	struct http_tls *target_tls;
	struct oauth2 *target_auth;
	/* The replicated sync configuration (agent/replconf.h). The engine is
	 * built from agent_sync_config(): this node's file until the cluster's
	 * configuration replaces it (sync_cfg, owned), then that. */
	struct replconf replconf;
	struct config *sync_cfg;
	bool rebuilding;           /* the old engine is closing for a rebuild */
	bool close_after_rebuild;  /* the agent stops once it has closed */
	struct config *rebuild_cfg; /* what the rebuild starts the new engine with */
	struct mapping *rebuild_user, *rebuild_group;
};

/*
 * The exit code of a start refused for its configuration: a key, a file the
 * configuration names (CA, certificate, key), a secret file (missing, empty,
 * readable by others), a mapping expression. EX_CONFIG of sysexits(3): a
 * service manager can tell it from a crash and not restart in a loop
 * (deploy/systemd/canopy-agent.service, RestartPreventExitStatus=).
 */
#define AGENT_EXIT_CONFIG 78

/*
 * Run the agent described by the configuration file until SIGTERM/SIGINT.
 * Returns the process exit code: 0 after a clean stop, AGENT_EXIT_CONFIG
 * with the cause in errmsg when the configuration was refused, 1 with the
 * cause in errmsg when start-up failed otherwise (data dir, ports).
 */
int agent_run(const char *config_path, char *errmsg, size_t errlen);

/*
 * canopy-agent --check-config: load and validate the configuration with the
 * very checks agent_run() makes before it starts anything (the same code and
 * messages), then release it. Touches no data dir, port or server. Returns 0,
 * or a negative errno-style code with the cause in errmsg.
 */
int agent_check_config(const char *config_path, char *errmsg, size_t errlen);

/*
 * The same for a configuration sent to the control API: `text` read as the
 * file `name` in the absolute directory `dir` would be (config_load_text()),
 * with the same checks and messages as agent_check_config().
 */
int agent_check_config_text(const char *name, const char *dir, const char *text, size_t len, char *errmsg,
			    size_t errlen);

/* The configuration the sync engine is built from (see sync_cfg). */
const struct config *agent_sync_config(const struct agent *a);

/*
 * Replace the sync engine by one built from `cfg` (taken: heap-allocated,
 * loaded with config_load*): the running engine stops exporting and closes;
 * the new one starts from the replicated cursor, and exports at once when
 * this node leads. Returns 0, or a negative errno with errmsg when the
 * mappings of `cfg` do not compile (cfg is released, the engine untouched).
 */
int agent_engine_rebuild(struct agent *a, struct config *cfg, char *errmsg, size_t errlen);

/*
 * canopy-agent --recover-members LIST [--yes] (agent/recover.c): with the
 * agent stopped, show this node's data dir (term, last index, latest
 * configuration) and the configuration LIST ("ID@HOST:PORT,...", all voters,
 * this node included at its node.raft_address) would replace it with; with
 * `yes`, write it (raft/recover.h). Returns the exit code: 0 when written,
 * 1 when refused (the agent runs, damaged or empty data dir, no --yes),
 * 2 for a bad LIST, AGENT_EXIT_CONFIG for a refused configuration; the cause
 * is in errmsg.
 */
int agent_recover(const char *config_path, const char *members, bool yes, char *errmsg,
		  size_t errlen);

/* At start: when a recovery was written since the last start, log it (warn,
 * with the old and new members) and forget it. */
void agent_recover_announce(const char *data_dir);

/*
 * canopy-agent --backup DIR (agent/backup.c): with the agent stopped, copy
 * its data dir into DIR (new or empty) and check the copy (raft/backup.h).
 * Returns the exit code: 0 when the copy is complete and checked, 1 when
 * refused (the agent runs, DIR not empty, a damaged or empty data dir) or
 * failed, AGENT_EXIT_CONFIG for a refused configuration; cause in errmsg.
 */
int agent_backup(const char *config_path, const char *dest, char *errmsg, size_t errlen);

/*
 * Stop on the agent's own account (not a signal), without hand-over: a node
 * that was removed from the cluster (exit_code 0) or whose data dir belongs
 * to another cluster (1, `reason` is what agent_run reports).
 */
void agent_shutdown(struct agent *a, int exit_code, const char *reason);

/* How this node's start treats bootstrapping (status "bootstrap", the name
 * in quotes): */
enum agent_bootstrap {
	AGENT_BOOTSTRAP_MEMBERS,  /* "members": listed among several members, bootstraps from the list */
	AGENT_BOOTSTRAP_IMPLICIT, /* "implicit": the only member, cluster.bootstrap unset: bootstraps, warned */
	AGENT_BOOTSTRAP_EXPLICIT, /* "explicit": cluster.bootstrap: true */
	AGENT_BOOTSTRAP_NEVER,    /* "never": cluster.bootstrap: false */
	AGENT_BOOTSTRAP_JOIN,     /* "join": not listed, waits for `canopyctl cluster add` */
};
enum agent_bootstrap agent_bootstrap_mode(const struct agent *a);
const char *agent_bootstrap_name(enum agent_bootstrap m);

/* The control API's request handler (agent/control.c). */
void control_handle(void *data, const struct http_request *req, struct http_reply *reply);

/* A follower answers a mutation with a redirect to the leader (307, or 503
 * when no leader is known): returns true when it did, false on the leader. */
bool control_redirect_to_leader(struct agent *a, const struct http_request *req, struct http_reply *reply);

/* An ISO 8601 UTC time ("2026-11-29T21:40:41Z"), or JSON null for 0. */
json_t *control_time_or_null(time_t t);

/* Answer with `o` as JSON (takes the reference). */
void control_reply_json(struct http_reply *reply, unsigned status, json_t *o);

/* GET /v1/config, GET /v1/config/history, POST /v1/config/{apply,rollback}
 * (agent/replconf.c): returns false when the path is none of these. */
bool control_config_handle(struct agent *a, const struct http_request *req, struct http_reply *reply);

/* GET /v1/deletes, GET /v1/failed, POST /v1/resync, POST /v1/sync/resume
 * (agent/control_sync.c): returns false when the path is none of these. */
bool control_sync_handle(struct agent *a, const struct http_request *req, struct http_reply *reply);

/* Status "sync.quarantine" (agent/control_sync.c): reason, detail, since,
 * next_retry_at, checked_at, last_request; NULL when not quarantined. */
struct engine_stats;
json_t *control_quarantine_json(const struct engine_stats *es);

/* POST /v1/drill/{transfer,crash} (agent/control_drill.c): returns false
 * when the path is neither. */
bool control_drill_handle(struct agent *a, const struct http_request *req, struct http_reply *reply);

/* The drill's per-node bookkeeping: started with the node, closed with it. */
void control_drill_start(struct agent *a);
void control_drill_close(struct agent *a);

/* "drill": this node's drill state for /v1/status. */
json_t *control_drill_json(struct agent *a);

/* The engine's figures as status shows them (zero, state disabled, without
 * an engine): the totals, times and staged deletes from the replicated state
 * -- the same on every node -- and the leader's own connection and
 * quarantine figures. */
struct engine_stats control_sync_stats(struct agent *a);

/* The replicated sync figures ("s:sync", sync/state/figures.h); zeros when
 * no leader wrote them yet. */
struct sync_figures;
void control_sync_figures(struct agent *a, struct sync_figures *out);

/* The storage state status shows: the worse of the raft data dir's
 * (raft/storage.h) and the provisioning log's. */
struct provlog_health;
enum storage_state control_storage_overall(const struct node_status *st, const struct provlog_health *ph);

/* GET /metrics: the Prometheus text (agent/metrics.c); *len its length, the
 * buffer the caller's to free. */
char *metrics_text(struct agent *a, size_t *len);

#endif /* CANOPY_AGENT_AGENT_H */
