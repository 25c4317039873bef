/*
 * agent/ctl.h -- canopyctl, the operator's command line.
 *
 *     canopyctl [--server HOST:PORT] COMMAND [--json]
 *
 * It talks to any agent's control API (node.control_address); the server
 * defaults to $CANOPY_SERVER, then 127.0.0.1:8001. Exit code 0 on success,
 * non-zero with a one-line error on stderr otherwise (docs/configuration.md and README.md: the CLI contract).
 */
#ifndef CANOPY_AGENT_CTL_H
#define CANOPY_AGENT_CTL_H

#include <stdio.h>

/* Run canopyctl with its argv; output to `out`, errors to `err`. Returns the
 * exit code. */
int ctl_main(int argc, char **argv, FILE *out, FILE *err);

/* ---- inside canopyctl (agent/ctl.c, agent/ctl_drill.c) ---------------- */

#include <stdbool.h>

struct http_body;

/*
 * One request to the control API at `server` (HOST:PORT), following a
 * follower's redirect to the leader. Returns the HTTP status (the body in
 * *body, which the caller frees), or -1 with a one-line cause in errmsg when
 * the server could not be reached.
 */
long ctl_request(const char *server, const char *method, const char *path, const char *payload,
		 const char *token, struct http_body *body, char *errmsg, size_t errlen);

/*
 * `canopyctl drill failover`: `count` drills of `mode` ("transfer" or
 * "crash"), each waiting until the new leader can export (and the old one
 * follows it) before the next; per drill and in summary, how long until a
 * follower noticed, a new leader was elected, and it could export. Returns
 * the exit code: 0, 1 (refused or failed: the cause on err).
 */
int ctl_drill(const char *server, const char *token, const char *mode, unsigned count, bool json, FILE *out,
	      FILE *err);

/*
 * `canopyctl config show|history|apply FILE|rollback N` (agent/ctl_config.c):
 * the replicated sync configuration (agent/replconf.h). `words` are the
 * command's words ("config", ...). apply and rollback show the diff, one
 * key per line, and commit unless dry_run; the token is read from
 * token_file for them. Returns the exit code: 0, 1 (refused: the cause on
 * err), 2 (usage).
 */
int ctl_config(const char *server, const char *token_file, int n_words, const char **words, bool dry_run,
	       bool json, FILE *out, FILE *err);

/*
 * `canopyctl expr EXPRESSION [--attr NAME=VALUE]... [--taken VALUE]...
 * [--now TIME] [--json]`, `canopyctl expr [EXPRESSION] --object DN --config
 * FILE`: evaluate a mapping expression locally (agent/ctl_expr.c). argv[0] is "expr". Returns the exit code: 0, 1 (the
 * expression does not parse or evaluate: "column N: ..." on err), 2 (usage).
 */
int ctl_expr(int argc, char **argv, FILE *out, FILE *err);

/*
 * `canopyctl resume` (agent/ctl_resume.c): POST /v1/sync/resume (the leader
 * checks a quarantined target or source now), then watch `server`'s status
 * until the quarantine is gone (exit 0: "sync resumed"), or a check answered
 * after the resume and it is still quarantined (exit 1, the reason, last
 * request and next retry on `err`), or 30 s passed (exit 1). Not quarantined:
 * says so, exit 0. Refused (delete_threshold, no leader): exit 1.
 */
int ctl_resume(const char *server, const char *token, bool json, FILE *out, FILE *err);

/*
 * `canopyctl logs --cluster` (agent/ctl_logs.c): GET `path` (/v1/logs with
 * its query) of every member listed in `server`'s status, merged: the newest
 * `limit` entries of the union, oldest first, each carrying the node whose
 * log holds it ("node"). Shape: {"cluster": true, "nodes": [{"node_id",
 * "address", "answered", "entries" | "error", "truncated"}], "entries",
 * "truncated" (any node's answer, or the merge, left older matches out),
 * "limit"}. A member that does not answer is named in a warning on `err`;
 * NULL (the cause on `err`) when none answers.
 */
#include <jansson.h>
json_t *ctl_logs_cluster(const char *server, const char *path, unsigned limit, FILE *err);

#endif /* CANOPY_AGENT_CTL_H */
