/*
 * sync/target/scim_probe.c -- one blocking GET of ServiceProviderConfig, or of
 * /Users when a server has none (see scim_probe.h), on the HTTP engine
 * (http_multi.h, http_perform: a private loop on the calling worker).
 */
#include "sync/target/scim_probe.h"

#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <curl/curl.h>
#include <errno.h>

#include "common/xalloc.h"
#include "sync/secret.h"
#include "sync/target/http_multi.h"

#define DEFAULT_TIMEOUT_MS 4000
#define BODY_MAX (256 * 1024) /* a probe needs no body; bound what a broken target can send */

const char *scim_probe_status_name(enum scim_probe_status s)
{
	switch (s) {
	case SCIM_PROBE_OK:
		return "ok";
	case SCIM_PROBE_UNREACHABLE:
		return "unreachable";
	case SCIM_PROBE_UNAUTHORIZED:
		return "unauthorized";
	default:
		return "error";
	}
}

/* Failures where no HTTP answer came back: the target is out of reach from
 * this agent (another agent's network path may still work). */
static bool no_answer(CURLcode rc)
{
	switch (rc) {
	case CURLE_COULDNT_RESOLVE_HOST:
	case CURLE_COULDNT_RESOLVE_PROXY:
	case CURLE_COULDNT_CONNECT:
	case CURLE_OPERATION_TIMEDOUT:
	case CURLE_SEND_ERROR:
	case CURLE_RECV_ERROR:
	case CURLE_GOT_NOTHING:
		return true;
	default:
		return false;
	}
}

static void wipe(void *p, size_t n)
{
	explicit_bzero(p, n);
}

static enum scim_probe_status probe_path(const struct scim_probe_config *cfg, const char *path, const char *token,
					 long *http_out, char *msg, size_t len)
{
	unsigned ms = cfg->timeout_ms ? cfg->timeout_ms : DEFAULT_TIMEOUT_MS;
	char url[1100], auth[8192], node[64], why[CURL_ERROR_SIZE + 300];
	struct curl_slist *hdrs = NULL;
	struct http_answer a;
	enum scim_probe_status st;
	size_t ulen;
	long http = 0;
	CURLcode rc;

	if (cfg->url == NULL || cfg->url[0] == '\0') {
		snprintf(msg, len, "no target URL configured");
		return SCIM_PROBE_ERROR;
	}
	ulen = strlen(cfg->url);
	while (ulen > 0 && cfg->url[ulen - 1] == '/')
		ulen--;
	if ((size_t)snprintf(url, sizeof url, "%.*s%s", (int)ulen, cfg->url, path) >= sizeof url) {
		snprintf(msg, len, "target URL too long");
		return SCIM_PROBE_ERROR;
	}
	hdrs = xcheck(curl_slist_append(hdrs, "Accept: application/scim+json"));
	if (token != NULL && token[0] != '\0' &&
	    (size_t)snprintf(auth, sizeof auth, "Authorization: Bearer %s", token) < sizeof auth)
		hdrs = xcheck(curl_slist_append(hdrs, auth));
	wipe(auth, sizeof auth);
	if (cfg->node_id != 0) {
		snprintf(node, sizeof node, "X-Canopy-Node: %llu", (unsigned long long)cfg->node_id);
		hdrs = xcheck(curl_slist_append(hdrs, node));
	}
	struct http_request rq = {
		.method = "GET",
		.url = url,
		.headers = hdrs, /* the engine wipes (the token) and frees them */
		.timeout_ms = ms,
		.connect_timeout_ms = ms / 2 ? ms / 2 : 1,
		.tls = cfg->tls, /* the same trust as the target's own requests */
		.max_body = BODY_MAX,
		.retry_after_max_s = 0,
	};
	/* on an engine of its own: a libuv worker has no loop (http_multi.h) */
	if (http_perform(&rq, &a, why, sizeof why) != 0) {
		snprintf(msg, len, "GET %s: %s", url, why);
		st = SCIM_PROBE_ERROR;
		goto out;
	}
	rc = a.cc;
	if (rc == CURLE_WRITE_ERROR && a.too_big)
		rc = CURLE_OK; /* the status line is what counts */
	if (rc == CURLE_OK)
		http = a.status;
	*http_out = http;
	if (rc != CURLE_OK) {
		http_tls_explain(cfg->tls, url, rc, a.err, why, sizeof why);
		snprintf(msg, len, "GET %s: %s", url, why);
		st = no_answer(rc) ? SCIM_PROBE_UNREACHABLE : SCIM_PROBE_ERROR;
	} else if (http >= 200 && http < 300) {
		snprintf(msg, len, "GET %s: %ld", url, http);
		st = SCIM_PROBE_OK;
	} else if (http == 401 || http == 403) {
		snprintf(msg, len, "GET %s: %ld: the target refused the token", url, http);
		st = SCIM_PROBE_UNAUTHORIZED;
	} else {
		snprintf(msg, len, "GET %s: %ld", url, http);
		st = SCIM_PROBE_ERROR;
	}
out:
	free(a.body);
	return st;
}

/*
 * GET ServiceProviderConfig; answered 404, GET /Users?count=1 instead. RFC
 * 7644 §4 requires the discovery endpoint, but servers in use lack it (BoxyHQ
 * Polis Directory Sync answers 404: docs/targets.md, "Interop matrix"), while
 * every SCIM server lists users (§3.4.2, count §3.4.2.4) and checks the token
 * there. A wrong base URL answers 404 to both, and stays an error.
 */
static enum scim_probe_status probe_once(const struct scim_probe_config *cfg, const char *token, long *http_out,
					 char *msg, size_t len)
{
	enum scim_probe_status st;
	char first[512];
	size_t n;

	if (cfg->path != NULL) /* another API than SCIM (cfg->path) */
		return probe_path(cfg, cfg->path, token, http_out, msg, len);
	st = probe_path(cfg, "/ServiceProviderConfig", token, http_out, msg, len);
	if (st != SCIM_PROBE_ERROR || *http_out != 404)
		return st;
	snprintf(first, sizeof first, "%s", msg);
	st = probe_path(cfg, "/Users?count=1&attributes=id", token, http_out, msg, len);
	n = strlen(msg);
	if (n < len)
		snprintf(msg + n, len - n, " (%s: the target serves no ServiceProviderConfig)", first);
	return st;
}

enum scim_probe_status scim_probe_run(const struct scim_probe_config *cfg, char *msg, size_t len)
{
	enum scim_probe_status st;
	uint64_t refresh_in;
	char *token = NULL;
	long http = 0;
	int rc;

	if (cfg->auth == NULL)
		return probe_once(cfg, cfg->token, &http, msg, len);
	/* OAuth2: the cached token (shared with the target), and after a 401
	 * one new one, as the target's requests do */
	for (int round = 0; round < 2; round++) {
		char *old = token;
		rc = oauth2_token(cfg->auth, old, &token, &refresh_in, msg, len);
		secret_free(old);
		if (rc != 0)
			return rc == -EACCES ? SCIM_PROBE_UNAUTHORIZED : SCIM_PROBE_UNREACHABLE;
		st = probe_once(cfg, token, &http, msg, len);
		if (st != SCIM_PROBE_UNAUTHORIZED || http != 401)
			break;
	}
	secret_free(token);
	return st;
}
