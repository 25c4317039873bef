/*
 * sync/target/scim_auth.c -- credentials and the target's health: the bearer
 * token file, OAuth2 tokens (sync/target/oauth2.h), the quarantine probe and
 * ServiceProviderConfig (RFC 7643 §5).
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "sync/secret.h"
#include "sync/target/scim_internal.h"

#define SPC_PATH "/ServiceProviderConfig"
/* the quarantine probe of a target without SPC_PATH (scim__probe_done) */
#define USERS_PROBE_PATH "/Users?count=1&attributes=id"

static void on_token(void *data, int status, char *token, uint64_t refresh_in_ms, const char *errmsg);

/* Read a bearer token file: its content, surrounding whitespace trimmed.
 * A blocking read of a small local file on the loop thread: cheap, and rare
 * (start, a 401, a quarantine probe). */
int scim__read_token(const char *file, char **out, char *errmsg, size_t errlen)
{
	char why[600];
	int rc = secret_read(file, out, why, sizeof why);
	if (rc != 0)
		return scim__errf(errmsg, errlen, rc, "scim: token file: %s", why);
	return 0;
}

/* Re-read token_file; keep the old token if it cannot be read. */
void scim__reread_token(struct scim_target *t)
{
	char *tok = NULL;
	if (t->token_file == NULL || scim__read_token(t->token_file, &tok, NULL, 0) != 0)
		return;
	if (t->token != NULL && strcmp(tok, t->token) == 0) {
		scim__wipe_free(tok);
		return;
	}
	scim__wipe_free(t->token);
	t->token = tok;
}

/* Ask for a token (sync/target/oauth2.h) unless a fetch is in flight.
 * reject: the token a 401 answered to (a new one is needed). after_401:
 * hold new requests until it is there. probe: a quarantine probe follows. */
void scim__auth_fetch(struct scim_target *t, const char *reject, bool after_401, bool probe)
{
	if (after_401) {
		t->auth_wait = true;
		t->auth_pending_401 = true;
	}
	if (probe)
		t->auth_pending_probe = true;
	if (t->auth_req != NULL || t->stopping)
		return;
	uv_timer_stop(&t->auth_timer);
	int rc = oauth2_token_async(t->auth, t->loop, reject, on_token, t, &t->auth_req);
	if (rc != 0) {
		char detail[128];
		snprintf(detail, sizeof detail, "token request to %s: %s", oauth2_token_url(t->auth),
			 rc == -ENOMEM ? "out of memory" : uv_strerror(rc));
		t->auth_wait = true;
		scim__quarantine(t, "target_unreachable", detail);
	}
}

static void on_auth_timer(uv_timer_t *h)
{
	struct scim_target *t = h->data;
	scim__auth_fetch(t, NULL, false, false); /* 80 % of the lifetime: a new one */
}

static void on_token(void *data, int status, char *token, uint64_t refresh_in_ms, const char *errmsg)
{
	struct scim_target *t = data;
	bool from_401 = t->auth_pending_401, probe = t->auth_pending_probe;

	t->auth_req = NULL;
	t->auth_pending_401 = t->auth_pending_probe = false;
	if (t->stopping) {
		secret_free(token);
		return;
	}
	if (status == 0) {
		scim__wipe_free(t->token);
		t->token = token;
		t->auth_wait = false;
		t->auth_from_401 = from_401;
		t->auth_due = uv_hrtime() / 1000000 + refresh_in_ms;
		uv_timer_start(&t->auth_timer, on_auth_timer, refresh_in_ms > 50 ? refresh_in_ms : 50, 0);
		if (probe && t->stats.quarantined && !t->probe_on_wire) {
			struct req *r;
			if (scim__req_start(t, R_PROBE, "GET", xstrdup(SPC_PATH), NULL, false, &r) == 0)
				t->probe_on_wire = true;
			else
				uv_timer_start(&t->probe_timer, scim__on_probe, t->probe_ms, 0);
		}
		if (!t->spc_known && !t->spc_on_wire)
			scim__fetch_spc(t);
		scim__pump(t);
		return;
	}
	if (status == -EIO && !t->auth_wait && t->token != NULL && !probe) {
		/* the endpoint is out of reach but the token has a fifth of its
		 * life left: try again soon, keep working meanwhile */
		uv_timer_start(&t->auth_timer, on_auth_timer, 2000, 0);
		return;
	}
	/* No token to work with: stop until a probe gets one. */
	t->auth_wait = true;
	bool was = t->stats.quarantined;
	scim__quarantine(t, status == -EACCES ? "unauthorized" : "target_unreachable", errmsg);
	if (was && !t->probe_on_wire) { /* quarantine() arms the probe only on entering */
		t->probe_ms = t->probe_ms >= t->cfg.probe_max_ms / 2 ? t->cfg.probe_max_ms : t->probe_ms * 2;
		uv_timer_start(&t->probe_timer, scim__on_probe, t->probe_ms, 0);
	}
}

/* A 401/403 answer with OAuth2: the first to the current token gets a new
 * token (the request is re-sent with it); one to a token fetched that way
 * quarantines. Returns false without OAuth2 (the bearer token path). */
bool scim__auth_rejected(struct scim_target *t, const struct req *r, const char *detail)
{
	if (t->auth == NULL)
		return false;
	if (t->token == NULL || strcmp(r->token_used, t->token) != 0)
		return true; /* answered to an older token: a newer one is in use */
	/* a fresh token refused: the grant itself is not good enough (one that
	 * was near its end may just have expired on the way: renew it) */
	if (t->auth_from_401 && !t->auth_wait && uv_hrtime() / 1000000 < t->auth_due) {
		char d[1100];
		snprintf(d, sizeof d, "%s (with a token fetched after an earlier refusal)", detail);
		t->auth_wait = true;
		scim__quarantine(t, "unauthorized", d);
		return true;
	}
	scim__auth_fetch(t, r->token_used, true, false);
	return true;
}

void scim__on_probe(uv_timer_t *h)
{
	struct scim_target *t = h->data;
	if (t->stopping || !t->stats.quarantined || t->probe_on_wire)
		return;
	if (t->auth != NULL && (t->auth_wait || strcmp(t->stats.quarantine_reason, "unauthorized") == 0)) {
		/* a new token first (a fixed secret or grant takes effect); the
		 * probe request follows when it is there (on_token) */
		scim__auth_fetch(t, t->token, false, true);
		return;
	}
	scim__reread_token(t); /* so that fixing the token file recovers without a restart */
	struct req *r;
	if (scim__req_start(t, R_PROBE, "GET", xstrdup(SPC_PATH), NULL, false, &r) == 0) {
		t->probe_on_wire = true;
		return;
	}
	uv_timer_start(&t->probe_timer, scim__on_probe, t->probe_ms, 0);
}

/* RFC 7643 §5: ServiceProviderConfig "bulk": {"supported", "maxOperations",
 * "maxPayloadSize"} */
static void read_spc(struct scim_target *t, const struct reply *rep)
{
	json_t *bulk = json_object_get(rep->json, "bulk");
	if (!json_is_object(rep->json))
		return;
	t->spc_known = true;
	if (!json_is_object(bulk))
		return;
	t->stats.bulk_supported = json_is_true(json_object_get(bulk, "supported"));
	json_int_t ops = json_integer_value(json_object_get(bulk, "maxOperations"));
	json_int_t size = json_integer_value(json_object_get(bulk, "maxPayloadSize"));
	t->bulk_max_ops = ops > 0 && ops < 1000000 ? (unsigned)ops : 0;
	t->bulk_max_payload = size > 0 ? (size_t)size : 0;
}

void scim__probe_done(struct scim_target *t, const struct req *r, const struct reply *rep)
{
	t->probe_on_wire = false;
	/* The interval grows after every probe, a good one too: a target that
	 * answers probes but still refuses writes (e.g. ServiceProviderConfig
	 * served without authentication) must not make us flap fast. It drops
	 * back to probe_min_ms only when an operation's request succeeds. */
	t->probe_ms = t->probe_ms >= t->cfg.probe_max_ms / 2 ? t->cfg.probe_max_ms : t->probe_ms * 2;
	if (t->stopping || !t->stats.quarantined)
		return;
	if (rep->rc == CURLE_OK && is2xx(rep->http)) {
		if (strcmp(r->path, SPC_PATH) == 0)
			read_spc(t, rep);
		scim__leave_quarantine(t);
		return;
	}
	/* No ServiceProviderConfig (404; RFC 7644 §4 requires it, BoxyHQ Polis
	 * has none: docs/targets.md, "Interop matrix"): probe with a one-user
	 * list instead, which every SCIM server serves and authenticates
	 * (§3.4.2.4), or such a target would never leave quarantine. */
	if (rep->rc == CURLE_OK && rep->http == 404 && strcmp(r->path, SPC_PATH) == 0) {
		struct req *nr;
		if (scim__req_start(t, R_PROBE, "GET", xstrdup(USERS_PROBE_PATH), NULL, false, &nr) == 0) {
			t->probe_on_wire = true;
			return;
		}
	}
	char detail[1024];
	scim__describe(r, rep, detail, sizeof detail);
	if (rep->rc == CURLE_OK && (rep->http == 401 || rep->http == 403))
		snprintf(t->stats.quarantine_reason, sizeof t->stats.quarantine_reason, "unauthorized");
	scim__copy_str(t->stats.quarantine_detail, sizeof t->stats.quarantine_detail, detail);
	uv_timer_start(&t->probe_timer, scim__on_probe, t->probe_ms, 0);
}

/* RFC 7644 §4: learn what the target supports; asynchronously */
void scim__fetch_spc(struct scim_target *t)
{
	struct req *r;
	if (scim__req_start(t, R_SPC, "GET", xstrdup(SPC_PATH), NULL, false, &r) == 0)
		t->spc_on_wire = true;
}

void scim__spc_done(struct scim_target *t, const struct req *r, const struct reply *rep)
{
	char detail[1024];
	t->spc_on_wire = false;
	scim__describe(r, rep, detail, sizeof detail);
	if (rep->rc != CURLE_OK || rep->http >= 500) {
		scim__health(t, rep->rc != CURLE_OK ? H_NET : H_SERVER, detail);
		return;
	}
	scim__health(t, H_OK, NULL);
	if ((rep->http == 401 || rep->http == 403) && scim__auth_rejected(t, r, detail))
		return;
	if (rep->http == 401 || rep->http == 403)
		scim__quarantine(t, "unauthorized", detail);
	else if (is2xx(rep->http))
		read_spc(t, rep);
}
