/*
 * tests/fuzz/fuzz_control.c -- the control API's request checks (agent/http.c
 * http_check_head: Origin, Content-Type, Content-Length/Transfer-Encoding
 * framing, body size; agent/control.c: the bearer token comparison, the
 * /v1/logs limit and since (sync/provlog.c provlog_parse_time), the bodies of POST /v1/cluster/..., /v1/resync,
 * /v1/provision and /v1/drill/crash, /v1/config/apply and /v1/config/rollback (agent/replconf.c), and the
 * ID@HOST:PORT of cluster add).
 * Input: NUL-separated fields: method, Origin, Content-Type, Content-Length,
 * Transfer-Encoding, Authorization, limit, then the body (the rest). An empty
 * field is an absent header; byte 0's low bits say how often the framing
 * headers were repeated.
 */
#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "agent/config.h"
#include "agent/control.h"
#include "agent/http.h"
#include "agent/replconf.h"

#include <jansson.h>
#include "sync/provlog.h"

#define NFIELDS 7

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	char *copy, *f[NFIELDS] = {NULL}, *p, *end, member[300], dn[2048], err[512];
	struct http_head h;
	struct http_reply reply;
	struct config_member m;
	int64_t id;
	unsigned limit, i;
	int64_t since_us;
	bool failed;
	size_t body_len;

	if (size < 1)
		return 0;
	copy = malloc(size + 1);
	if (copy == NULL)
		return 0;
	memcpy(copy, data + 1, size - 1);
	copy[size - 1] = '\0';
	p = copy;
	end = copy + size - 1;
	for (i = 0; i < NFIELDS && p <= end; i++) {
		f[i] = p;
		p += strlen(p) + 1;
	}
	body_len = p <= end ? (size_t)(end - p) : 0;

	memset(&h, 0, sizeof h);
	h.method = f[0] && f[0][0] ? f[0] : "POST";
	h.origin = f[1] && f[1][0] ? f[1] : NULL;
	h.content_type = f[2] && f[2][0] ? f[2] : NULL;
	h.content_length = f[3] && f[3][0] ? f[3] : NULL;
	h.transfer_encoding = f[4] && f[4][0] ? f[4] : NULL;
	h.n_content_length = h.content_length ? 1 + (data[0] & 1) : 0;
	h.n_transfer_encoding = h.transfer_encoding ? 1 + ((data[0] >> 1) & 1) : 0;
	memset(&reply, 0, sizeof reply);
	if (http_check_head(&h, &reply) != 0 && reply.body == NULL)
		__builtin_trap(); /* a refusal always says why */
	free(reply.body);

	(void)control_token_ok("s3cr3t-token", f[5] && f[5][0] ? f[5] : NULL);
	if (f[5] && control_token_ok("s3cr3t-token", f[5]) && strstr(f[5], "s3cr3t-token") == NULL)
		__builtin_trap(); /* accepted without the token */
	/* the same field as a since: an RFC 3339 time (years 0000..9999, an
	 * offset of at most a day) lands between those years' ends */
	if (f[6] && provlog_parse_time(f[6], &since_us) == 0 &&
	    (since_us < (-62167219200LL - 86400) * 1000000 || since_us > (253402300800LL + 86400) * 1000000))
		__builtin_trap();
	if (control_parse_limit(f[6] && f[6][0] ? f[6] : NULL, &limit) == 0 &&
	    (limit == 0 || limit > CONTROL_LOGS_MAX_LIMIT))
		__builtin_trap();
	if (p <= end) {
		if (control_parse_cluster_body(p, body_len, &id, member, sizeof member, err, sizeof err) == 0 &&
		    member[0])
			(void)config_parse_member(member, &m, err, sizeof err);
		(void)control_parse_resync_body(p, body_len, dn, sizeof dn, &failed, err, sizeof err);
		if (control_parse_provision_body(p, body_len, dn, sizeof dn, &failed, err, sizeof err) == 0 &&
		    (dn[0] == '\0' || strlen(dn) >= sizeof dn))
			__builtin_trap(); /* an accepted body names a DN that fits */
		if (control_parse_drill_body(p, body_len, &id, err, sizeof err) == 0 && id < 0)
			__builtin_trap(); /* a negative down_ms is refused */
		{
			struct replconf_apply_body ab;
			uint64_t version = 0;
			if (replconf_parse_apply_body(p, body_len, &ab, err, sizeof err) == 0) {
				if (ab.name == NULL || ab.dir == NULL || ab.yaml == NULL)
					__builtin_trap();
				json_decref(ab.o);
			}
			if (replconf_parse_rollback_body(p, body_len, &version, &failed, err, sizeof err) == 0 &&
			    version == 0)
				__builtin_trap(); /* version 0 is refused */
		}
	}
	free(copy);
	return 0;
}
