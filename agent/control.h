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

#endif /* CANOPY_AGENT_CONTROL_H */
