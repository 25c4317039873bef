/*
 * agent/replconf.h -- the replicated sync configuration.
 *
 * The keys that must mean the same on every node (agent/config_sync.h lists
 * them: the source's scope, the mapping, the target's cluster-wide settings,
 * safety) live in the replicated state, so that whoever leads exports with
 * the same configuration, and a change takes effect on every node at the
 * same log index. Keys (namespace 'g', sync/state/state.h):
 *
 *   g:cur      {"version": N, "at": UNIX, "origin": NODE, "summary": "...",
 *               "yaml": "<the sync sections>"}: the running configuration
 *   g:h:<N>    the same for version N: the history (the latest
 *              REPLCONF_HISTORY_MAX versions are kept)
 *
 * An older canopy stores these as opaque keys and ignores them.
 *
 * Bootstrapping: a cluster without g:cur runs each node's file as before.
 * The first leader that exports seeds version 1 from its own file's sync
 * sections (logged). From then on every node builds its engine from its own
 * file with the replicated keys replaced by g:cur's (config_sync_merge());
 * a node whose file says otherwise logs a warning naming the keys, and uses
 * the replicated ones.
 *
 * A change (`canopyctl config apply|rollback`, POST /v1/config/apply and
 * /v1/config/rollback on the leader) is validated by the very parser and
 * checks of start-up (agent_check_config_text()), shown as a diff against
 * g:cur, and committed as one entry. Every node notices the new g:cur after
 * that entry is applied (a uv_check after every loop iteration, like
 * agent/identity.c), logs "configuration applied" and rebuilds its engine
 * (agent_engine_rebuild()); the leader then exports with it. A change of
 * anything but safety.* can change the scope or what is written, so its
 * entry also resets the replicated cursor: whichever node leads reads the
 * source in full (RFC 4533 §3.4 present phase; DirSync without a cookie),
 * which writes objects whose mapped content changed, creates those that
 * entered the scope and deprovisions those that left it -- every such
 * delete counted by delete protection (sync/engine/protect.c). Before
 * proposing it the leader stops exporting, so that no batch of the old
 * configuration commits a cursor after the reset.
 */
#ifndef CANOPY_AGENT_REPLCONF_H
#define CANOPY_AGENT_REPLCONF_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <uv.h>

struct agent;
struct http_pending;

#define REPLCONF_HISTORY_MAX 100

struct replconf {
	uv_check_t watch;    /* after every loop iteration: has g:cur changed? */
	bool started;
	char *file_text;     /* this node's file as read at start */
	size_t file_len;
	char dir[4096];      /* its directory (absolute) */
	char *file_sync;     /* its sync sections (config_sync_extract()) */
	char *seen;          /* the g:cur value last taken ("" none yet) */
	size_t seen_len;
	uint64_t version;    /* its version; 0: none (the file's sections run) */
	char *repl_yaml;     /* its sync sections; NULL while there is none */
	char *running;       /* the sync sections the engine runs */
	bool warned_file;    /* this node's file differs: said once per version */
	bool seeding;        /* the seed's entry is in flight */
	uint64_t seed_after; /* loop time before which no new seed is tried */
	bool proposing;      /* an apply's entry is in flight */
};

/* At start, after the configuration is loaded: keep this node's file and its
 * sync sections. Returns 0 or a negative errno with errmsg. */
int replconf_load(struct agent *a, char *errmsg, size_t errlen);

/* Start and stop watching the replicated state (with the node). */
void replconf_start(struct agent *a);
void replconf_close(struct agent *a);

/* Release what replconf_load() kept. */
void replconf_free(struct agent *a);

/* {"version": N, "file_differs": bool} for /v1/status: the replicated
 * configuration version this node runs (0: none yet, its file's). */
struct json_t;
struct json_t *replconf_status_json(struct agent *a);

/* The body of POST /v1/config/apply: {"name": FILE as the operator gave
 * it, "dir": its absolute directory, "yaml": its text, "dry_run": bool}.
 * The strings are borrowed from `o` (json_decref it). */
struct replconf_apply_body {
	struct json_t *o;
	const char *name, *dir, *yaml;
	size_t yaml_len;
	bool dry_run;
};

/* Parse it; 0, or -EINVAL with the cause in errmsg (nothing to release). */
int replconf_parse_apply_body(const char *body, size_t len, struct replconf_apply_body *out, char *errmsg,
			      size_t errlen);

/* The body of POST /v1/config/rollback: {"version": N (>= 1), "dry_run": bool}. */
int replconf_parse_rollback_body(const char *body, size_t len, uint64_t *version, bool *dry_run, char *errmsg,
				 size_t errlen);

#endif /* CANOPY_AGENT_REPLCONF_H */
