/*
 * agent/control.h -- the control API's request checks, without an agent:
 * pure functions used by agent/control.c and driven by tests/fuzz/fuzz_control.c.
 */
#ifndef CANOPY_AGENT_CONTROL_H
#define CANOPY_AGENT_CONTROL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* GET /v1/logs?limit=N: default and ceiling (larger asks are refused, 400). */
#define CONTROL_LOGS_DEFAULT_LIMIT 1000u
#define CONTROL_LOGS_MAX_LIMIT 10000u

/*
 * Whether `authorization` (the Authorization header, NULL when absent) is
 * "Bearer <token>" for `token` (RFC 6750 §2.1; the scheme is
 * case-insensitive, RFC 9110 §11.1). The comparison takes the same time
 * wherever the first difference is (CRYPTO_memcmp), so the token cannot be
 * guessed byte by byte from response times.
 */
bool control_token_ok(const char *token, const char *authorization);

/* "limit" of /v1/logs: NULL gives the default; 1..CONTROL_LOGS_MAX_LIMIT in
 * decimal, else -EINVAL. */
int control_parse_limit(const char *text, unsigned *out);

/* The body of POST /v1/cluster/{add,remove,transfer,abort}: {"id": N} and/or
 * {"member": "ID@HOST:PORT"}; an empty body is {}. member is copied into
 * `member` ("" when absent). Returns 0 or -EINVAL with errmsg. */
int control_parse_cluster_body(const char *body, size_t len, int64_t *id, char *member, size_t member_len,
			       char *errmsg, size_t errlen);

/* The body of POST /v1/resync: {"dn": "..."} or {"failed": true}, exactly one.
 * dn is copied into `dn` ("" when absent). Returns 0 or -EINVAL with errmsg. */
int control_parse_resync_body(const char *body, size_t len, char *dn, size_t dn_len, bool *failed,
			      char *errmsg, size_t errlen);

/* The body of POST /v1/provision: {"dn": "...", "dry_run": bool} (dry_run
 * optional, false). dn is copied into `dn`. Returns 0 or -EINVAL with errmsg. */
int control_parse_provision_body(const char *body, size_t len, char *dn, size_t dn_len, bool *dry_run,
				 char *errmsg, size_t errlen);

/* ---- failover drills (agent/control_drill.c) -------------------------- */

struct node_status;

/* What a drill does to the leader: `canopyctl drill failover --mode NAME`. */
enum control_drill_mode {
	CONTROL_DRILL_TRANSFER, /* "transfer": hand leadership over (raft_transfer) */
	CONTROL_DRILL_CRASH,    /* "crash": play dead: raft cut off, no export, then rejoin */
};
const char *control_drill_mode_name(enum control_drill_mode m);
/* "transfer" | "crash" into *out; false for anything else. */
bool control_drill_mode_parse(const char *name, enum control_drill_mode *out);

/* A voter lags when the leader's match index for it is more than this many
 * entries behind the commit index (a few are always in flight under load). */
#define CONTROL_DRILL_LAG_MAX 64u

/*
 * Whether the cluster can survive losing its leader now, as the leader sees
 * it (`st` from node_status() on the leader, `self` its id): it must be a
 * ready leader; no drill or leadership transfer may be running (`busy`); the
 * sync must not be quarantined (`quarantine`: the reason, "" when none: a
 * drill then only moves the problem); and at least 3 voters, this one
 * included, must be healthy -- reachable (answered within T') and not
 * lagging (CONTROL_DRILL_LAG_MAX) -- with the healthy ones other than the
 * leader still a majority of the voters. Returns 0, or a negative errno with
 * errmsg naming the reason and the nodes concerned: -EAGAIN (no ready
 * leader), -EBUSY, -EPERM (quarantined), -EHOSTDOWN (not enough healthy
 * voters).
 */
int control_drill_check(const struct node_status *st, uint64_t self, bool busy, const char *quarantine,
			char *errmsg, size_t errlen);

/* The body of POST /v1/drill/crash: {} or {"down_ms": N}, how long the
 * leader stays cut off; 0 (absent) means 2 T. Returns 0 or -EINVAL. */
int control_parse_drill_body(const char *body, size_t len, int64_t *down_ms, char *errmsg, size_t errlen);

#endif /* CANOPY_AGENT_CONTROL_H */
