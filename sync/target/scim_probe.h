/*
 * sync/target/scim_probe.h -- "does the target accept this agent's
 * credentials?", asked once, blocking.
 *
 * Every agent asks this every few seconds, followers too (agent/health.c runs
 * it on a libuv worker thread), so that the cluster knows which voters could
 * take over the export when the leader's target access breaks. It is a plain
 * GET {url}/ServiceProviderConfig (RFC 7644 §4) with the bearer token, on an
 * HTTP engine of its own (http_multi.h, http_perform: a private loop on the
 * calling worker): it shares no connection with sync/target/scim.c's
 * requests on the agent's loop. A target that answers 404 there (it serves no
 * discovery endpoint) is asked GET {url}/Users?count=1&attributes=id instead,
 * and that answer is classified.
 *
 * RFC 7644 lets a service provider serve ServiceProviderConfig without
 * authentication; such a target answers 200 to any token, so "ok" means
 * "reachable, and the token was not refused", not a proof that writes work.
 */
#ifndef CANOPY_SYNC_TARGET_SCIM_PROBE_H
#define CANOPY_SYNC_TARGET_SCIM_PROBE_H

#include <stdint.h>
#include <stddef.h>

#include "sync/target/http_tls.h"
#include "sync/target/oauth2.h"

enum scim_probe_status {
	SCIM_PROBE_OK,           /* 2xx */
	SCIM_PROBE_UNREACHABLE,  /* no HTTP answer: DNS, connect, timeout, connection reset */
	SCIM_PROBE_UNAUTHORIZED, /* 401 or 403 */
	SCIM_PROBE_ERROR,        /* any other answer (5xx, 404, ...) or a TLS failure */
};

/* "ok" | "unreachable" | "unauthorized" | "error" */
const char *scim_probe_status_name(enum scim_probe_status s);

struct scim_probe_config {
	const char *url;     /* the SCIM base, e.g. https://host/scim/v2 */
	const char *token;   /* bearer token; the caller re-reads it before every probe; NULL: none */
	uint64_t node_id;    /* sent as X-Canopy-Node, as every request of this agent does; 0: none */
	unsigned timeout_ms; /* whole request; connect gets half of it; 0: 4000 */
	const struct http_tls *tls; /* trust, as the target's requests (target.tls); NULL: system store */
	struct oauth2 *auth; /* target.auth: the token comes from here (cached; a 401 gets one refresh)
			      * instead of `token`; NULL: none */
	const char *path;    /* below url: GET this instead of the SCIM endpoints (the entra
			      * target: "/users?$top=1&$select=id", a read its
			      * User.ReadWrite.All permission covers); NULL: SCIM */
};

/*
 * Run the probe (curl_global_init must have run). Blocks for at most timeout_ms. Returns the classification and
 * always fills `msg` (URL, status or curl error; never the token).
 */
enum scim_probe_status scim_probe_run(const struct scim_probe_config *cfg, char *msg, size_t len);

#endif /* CANOPY_SYNC_TARGET_SCIM_PROBE_H */
