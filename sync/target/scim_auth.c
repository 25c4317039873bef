/*
 * sync/target/scim_auth.c -- credentials and the target's health: the bearer
 * token file, OAuth2 tokens (sync/target/oauth2.h), the quarantine probe and
 * ServiceProviderConfig (RFC 7643 §5).
 */
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "sync/secret.h"
#include "sync/target/scim_internal.h"

#define SPC_PATH "/ServiceProviderConfig"
/* the quarantine probe of a target without SPC_PATH (scim__probe_done) */
#define USERS_PROBE_PATH "/Users?count=1&attributes=id"

static void on_token(void *data, int status, char *token, uint64_t refresh_in_ms, const char *errmsg);
static void fetch(struct scim_target *t, enum req_kind kind, const char *path);

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
				scim__arm_probe(t);
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
		scim__arm_probe(t);
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
		t->stats.next_probe_at_ms = 0; /* on the wire now */
		return;
	}
	scim__arm_probe(t);
}

/* RFC 7643 §5: what the ServiceProviderConfig says (scim_discovery.h). */
static void read_spc(struct scim_target *t, const struct reply *rep)
{
	struct scim_caps c;

	if (scim_caps_parse(&c, rep->json, NULL, 0) != 0)
		return;
	t->spc_known = true;
	t->caps = c;
	t->stats.bulk_supported = c.bulk;
	t->bulk_max_ops = c.bulk_max_operations;
	t->bulk_max_payload = c.bulk_max_payload;
	scim__choose_style(t);
}

void scim__probe_done(struct scim_target *t, const struct req *r, const struct reply *rep)
{
	t->probe_on_wire = false;
	t->stats.probed_at_ms = scim__wall_ms();
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
		if (strcmp(t->stats.quarantine_reason, "schema_mismatch") == 0) {
			/* the target answers; whether its schema is fixed is for a
			 * new read of /Schemas to say (disc_end) */
			t->rediscover = true;
			fetch(t, R_RTYPES, "/ResourceTypes");
			return;
		}
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
	scim__arm_probe(t);
}

void scim__log(struct scim_target *t, int level, const char *msg, const char *fmt, ...)
{
	char detail[1024];
	va_list ap;

	if (t->cfg.log == NULL)
		return;
	va_start(ap, fmt);
	vsnprintf(detail, sizeof detail, fmt, ap);
	va_end(ap);
	t->cfg.log(t->cfg.log_data, level, msg, detail);
}

void scim__choose_style(struct scim_target *t)
{
	enum scim_patch_style s = t->cfg.patch_style;

	if (s == SCIM_PATCH_AUTO)
		s = !t->caps.patch ? SCIM_PATCH_PUT : t->rm_values ? SCIM_PATCH_VALUE_REMOVE : SCIM_PATCH_STANDARD;
	t->style = s;
	t->stats.patch_style = s;
	t->stats.spc_known = t->caps.spc_known;
	t->stats.filter_supported = t->caps.filter;
	t->stats.max_results = t->caps.filter_max_results;
	t->stats.patch_supported = t->caps.patch;
	t->stats.etag_supported = t->caps.etag;
	t->stats.bulk_max_operations = t->caps.bulk_max_operations;
	t->stats.bulk_max_payload = t->caps.bulk_max_payload;
}

static void fetch(struct scim_target *t, enum req_kind kind, const char *path)
{
	struct req *r;

	if (scim__req_start(t, kind, "GET", xstrdup(path), NULL, false, &r) == 0) {
		if (kind == R_SPC)
			t->spc_on_wire = true;
		return;
	}
	/* cannot even start a request: go on with the defaults */
	if (kind == R_SPC)
		fetch(t, R_RTYPES, "/ResourceTypes");
	else if (kind == R_RTYPES)
		fetch(t, R_SCHEMAS, "/Schemas");
	else
		scim__disc_done(t, NULL, NULL);
}

/*
 * Check the mapping's target attributes against the schemas read: each one
 * the server lacks is an error with strict_schema (the target quarantines
 * as "schema_mismatch", naming the first one), else a warning, once per
 * run. Returns false when it quarantined.
 */
static bool check_schema(struct scim_target *t)
{
	static const char *const what[2] = {"mapping.user", "mapping.group"};
	char schema[SCIM_DISC_NAME_MAX];

	if (!scim_schemas_known(t->schemas)) {
		if (t->cfg.strict_schema && (t->n_attrs[0] + t->n_attrs[1]) > 0 && !t->logged_schema) {
			t->logged_schema = true;
			scim__log(t, 2, "the target publishes no schema: target.strict_schema cannot check the mapping",
				  "GET %s/Schemas gave no usable schema; attributes are not checked", t->url);
		}
		return true;
	}
	for (int k = 0; k < 2; k++) {
		for (size_t i = 0; i < t->n_attrs[k]; i++) {
			const char *path = t->attrs[k][i];
			int rc = scim_schemas_check(t->schemas, k == 0 ? OBJECT_USER : OBJECT_GROUP, path, schema,
						    sizeof schema);
			if (rc == 1)
				continue;
			char d[1024];
			snprintf(d, sizeof d, "%s attribute \"%s\" is not in the target's schema %s%s", what[k], path,
				 schema, rc == -ENOENT ? " (a schema the target does not publish for this type)" : "");
			if (t->cfg.strict_schema) {
				bool was = t->stats.quarantined;
				if (strcmp(t->stats.quarantine_reason, "schema_mismatch") != 0) /* once, not per probe */
					scim__log(t, 3, "the target's schema lacks a mapped attribute: target quarantined",
						  "%s (target.strict_schema: true)", d);
				scim__quarantine(t, "schema_mismatch", d);
				if (was && !t->probe_on_wire) /* quarantine() arms the probe only on entering */
					uv_timer_start(&t->probe_timer, scim__on_probe, t->probe_ms, 0);
				return false;
			}
			if (!t->logged_schema)
				scim__log(t, 2, "the target's schema lacks a mapped attribute",
					  "%s; the target may drop or refuse it (target.strict_schema: false)", d);
		}
	}
	t->logged_schema = true;
	return true;
}

/* Discovery over (rep NULL: the last request could not start or failed):
 * operations may go. */
static void disc_end(struct scim_target *t)
{
	bool was_discovering = t->discovering;

	t->discovering = false;
	t->stats.discovered = true;
	t->stats.schema_attrs = scim_schemas_attr_count(t->schemas);
	scim__choose_style(t);
	if (!t->caps.filter && !t->logged_filter) {
		t->logged_filter = true;
		scim__log(t, 2, "the target does not support filtering",
			  "%s/ServiceProviderConfig: filter.supported is false: lookups by externalId scan the "
			  "listing page by page; matching existing objects by userName/displayName (soft match) is "
			  "refused; creates work", t->url);
	}
	bool ok = check_schema(t);
	if (t->rediscover) {
		t->rediscover = false;
		if (ok && strcmp(t->stats.quarantine_reason, "schema_mismatch") == 0)
			scim__leave_quarantine(t);
		else if (!ok || t->stats.quarantined)
			uv_timer_start(&t->probe_timer, scim__on_probe, t->probe_ms, 0);
	}
	if (was_discovering)
		scim__pump(t);
}

/* /ResourceTypes, then /Schemas answered. Anything but a usable 2xx leaves
 * that part at its default (scim_discovery.h); a 401/403 is the operations'
 * business (they will meet it, and quarantine). */
void scim__disc_done(struct scim_target *t, const struct req *r, const struct reply *rep)
{
	bool ok = rep != NULL && rep->rc == CURLE_OK && is2xx(rep->http);
	char err[256];

	if (rep != NULL) {
		char detail[1024];
		scim__describe(r, rep, detail, sizeof detail);
		scim__health(t, rep->rc != CURLE_OK ? H_NET : rep->http >= 500 ? H_SERVER : H_OK, detail);
	}
	if (t->stopping)
		return;
	if (r != NULL && r->kind == R_RTYPES) {
		if (ok && scim_schemas_set_types(t->schemas, rep->json, err, sizeof err) != 0)
			scim__log(t, 1, "target discovery", "GET %s/ResourceTypes: %s; using the default types", t->url,
				  err);
		fetch(t, R_SCHEMAS, "/Schemas");
		return;
	}
	if (r != NULL && ok && scim_schemas_add(t->schemas, rep->json, err, sizeof err) < 0)
		scim__log(t, 1, "target discovery", "GET %s/Schemas: %s; attributes are not checked", t->url, err);
	disc_end(t);
}

/* RFC 7644 §4: learn what the target supports, before any operation */
void scim__fetch_spc(struct scim_target *t)
{
	fetch(t, R_SPC, "/ServiceProviderConfig");
}

void scim__spc_done(struct scim_target *t, const struct req *r, const struct reply *rep)
{
	char detail[1024];
	t->spc_on_wire = false;
	scim__describe(r, rep, detail, sizeof detail);
	if (rep->rc != CURLE_OK || rep->http >= 500)
		scim__health(t, rep->rc != CURLE_OK ? H_NET : H_SERVER, detail);
	else
		scim__health(t, H_OK, NULL);
	if (rep->rc == CURLE_OK && (rep->http == 401 || rep->http == 403)) {
		if (!scim__auth_rejected(t, r, detail))
			scim__quarantine(t, "unauthorized", detail);
	} else if (rep->rc == CURLE_OK && is2xx(rep->http)) {
		read_spc(t, rep);
	} else if (rep->rc == CURLE_OK && rep->http < 500) {
		/* 404, 501, ...: the server has none; the defaults are final
		 * (scim_discovery.h), do not ask again after every operation */
		t->spc_known = true;
	}
	if (t->stopping)
		return;
	if (!t->discovering) {
		/* a late answer (the fetch at start had failed): the rest of the
		 * discovery failed then too, most likely */
		scim__choose_style(t);
		if (t->spc_known && !scim_schemas_known(t->schemas))
			fetch(t, R_RTYPES, "/ResourceTypes");
		return;
	}
	fetch(t, R_RTYPES, "/ResourceTypes");
}
