/*
 * agent/health.c -- probes, the cluster verdict, and hand-over (see health.h).
 *
 * Threads: everything here runs on the loop thread except job_run(), which
 * runs on a libuv worker thread and touches only its job and the (immutable
 * after start-up) configuration.
 */
#include "agent/health.h"
#include "agent/http_body.h"

#include <assert.h>
#include <errno.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <curl/curl.h>

#include "agent/agent.h"
#include "agent/health_pick.h"
#include "agent/log.h"
#include "common/xalloc.h"
#include "sync/secret.h"
#include "sync/text_json.h"
#include "sync/source/ldap_probe.h"
#include "sync/target/scim_probe.h"

#define LDAP_PROBE_TIMEOUT_MS 2000
#define SCIM_PROBE_TIMEOUT_MS 4000
#define REPORT_TIMEOUT_MS 2000
#define REPLY_MAX (64 * 1024)
#define DETAIL_MAX 512

enum side { SIDE_SOURCE, SIDE_TARGET, SIDE_N };

static const char *const side_names[SIDE_N] = {"source", "target"};

/* the same indexes as health_pick.h's */
_Static_assert(SIDE_SOURCE == (int)HEALTH_SIDE_SOURCE && SIDE_TARGET == (int)HEALTH_SIDE_TARGET &&
		       SIDE_N == (int)HEALTH_SIDES,
	       "enum side and enum health_side differ");

const char *health_state_name(enum health_state s)
{
	switch (s) {
	case HEALTH_OK:
		return "ok";
	case HEALTH_UNREACHABLE:
		return "unreachable";
	case HEALTH_UNAUTHORIZED:
		return "unauthorized";
	case HEALTH_ERROR:
		return "error";
	default:
		return "unknown";
	}
}

enum health_state health_state_parse(const char *name)
{
	static const enum health_state all[] = {HEALTH_OK, HEALTH_UNREACHABLE, HEALTH_UNAUTHORIZED,
						HEALTH_ERROR};
	size_t i;

	for (i = 0; name != NULL && i < sizeof all / sizeof all[0]; i++)
		if (strcmp(name, health_state_name(all[i])) == 0)
			return all[i];
	return HEALTH_UNKNOWN;
}

/* The latest probe of one side on this node. */
struct check {
	enum health_state state;
	char detail[DETAIL_MAX];
	time_t checked_at;   /* wall clock; 0: never */
	uint64_t checked_ms; /* loop time */
	unsigned bad_in_row; /* consecutive results other than ok */
	uint64_t bad_since_ms; /* loop time of the first of those (0: the latest was ok) */
};

/* A voter's latest report, as the leader received it. */
struct peer {
	uint64_t id;
	enum health_state state[SIDE_N];
	char detail[SIDE_N][256];
	uint64_t age_ms;      /* of its results when it sent them */
	uint64_t handed_over_at; /* loop time it last handed leadership over for health (0: never) */
	uint64_t received_ms; /* loop time */
	uint64_t checked_after_ms; /* loop time its latest checks began after (0: unknown; health.h) */
	char control_address[256]; /* as its latest report said ("" : none) */
	struct format_record version; /* as its latest report said (max_format 0: none, an older agent) */
	bool reported;                /* a report arrived (version may still be none) */
};

/* One probe (and, on a follower, its report to the leader) on a worker. */
struct job {
	uv_work_t req;
	struct health *h;
	struct config *cfg; /* a copy: what the engine runs (agent_sync_config), secrets left out */
	uint64_t node_id;
	char report_url[320]; /* "" when there is nobody to report to */
	int64_t handed_over_ago_ms; /* since this node last handed over for health; -1: never */
	/* the leader's answer this node had when the probes began (after_ms 0: none) */
	uint64_t after_leader, after_term, after_ms;
	enum health_state state[SIDE_N];
	char detail[SIDE_N][DETAIL_MAX];
	long report_status; /* HTTP status; 0 when it could not be sent */
	char *reply;        /* the leader's answer body */
};

/* The cluster's verdict on a side (status "cluster_health"). */
enum side_verdict { VERDICT_UNKNOWN, VERDICT_OK, VERDICT_UNAVAILABLE };

/* "unknown" | "ok" | "unavailable" */
static const char *side_verdict_name(enum side_verdict v)
{
	return v == VERDICT_OK ? "ok" : v == VERDICT_UNAVAILABLE ? "unavailable" : "unknown";
}

struct verdict {
	enum health_state self[SIDE_N]; /* this leader's own view of each side */
	enum side_verdict side[SIDE_N];
	char detail[512];
};

struct health {
	struct agent *a;
	uv_timer_t tick;
	bool stopping, tick_closed;
	struct job *job; /* in flight on a worker, or NULL */
	bool probe_wanted;
	uint64_t last_probe_ms;
	bool probed_once;
	struct check check[SIDE_N];

	/* follower: reporting to the leader */
	uint64_t leader_seen;   /* leader id at the last tick */
	uint64_t early_report;  /* leader id an early report was sent for */
	json_t *leader_verdict; /* the leader's latest answer (cluster_health) */
	uint64_t leader_verdict_ms, leader_verdict_from;
	/* the latest loop time of the leader this node heard (health.h,
	 * "checked_after"): from a report's answer or the member view */
	uint64_t heard_leader, heard_term, heard_ms;
	uint64_t probe_after_leader, probe_after_term, probe_after_ms; /* the latest probe's checked_after */
	uint64_t probe_asked_for; /* the leader's failing_since_ms a probe was started for */
	bool report_failing;

	/* leader */
	struct peer peers[NODE_MAX_MEMBERS];
	unsigned n_peers;
	bool leading;
	uint64_t quarantined_since[SIDE_N]; /* engine seen quarantined for the side (0: not) */
	uint64_t failing_since[SIDE_N]; /* this leader's failure of the side first seen (0: works) */
	bool episode;           /* a side is bad: looking for someone to hand over to */
	uint64_t episode_since;
	bool told_no_candidate;
	bool transferring;
	uint64_t transfer_to, transfer_started_ms, next_attempt_ms;
	uint64_t handovers;
	uint64_t handed_over_ms; /* loop time of this node's latest health hand-over (0: never) */
	struct verdict verdict;
};

static uint64_t now_ms(struct health *h)
{
	return uv_now(&h->a->loop);
}

/* --------------------------------------------------------------- worker */

static void probe_source(struct job *j)
{
	const struct config *cfg = j->cfg;
	const char *urls[CONFIG_MAX_URLS];
	struct ldap_probe_config pc;
	char err[DETAIL_MAX - 64];
	char *password = NULL;
	unsigned i;
	int rv;

	if (!cfg->source.present) {
		j->state[SIDE_SOURCE] = HEALTH_UNKNOWN;
		snprintf(j->detail[SIDE_SOURCE], DETAIL_MAX, "no source configured");
		return;
	}
	/* Re-read every time, with the start-up checks: a fixed file is used
	 * at the next probe, and a file that became unsafe is noticed. */
	if (cfg->source.password_file[0] != '\0') {
		rv = secret_read(cfg->source.password_file, &password, err, sizeof err);
		if (rv != 0) {
			j->state[SIDE_SOURCE] = HEALTH_ERROR;
			snprintf(j->detail[SIDE_SOURCE], DETAIL_MAX, "source.password_file: %s", err);
			return;
		}
	}
	for (i = 0; i < cfg->source.n_urls && i < CONFIG_MAX_URLS; i++)
		urls[i] = cfg->source.urls[i];
	memset(&pc, 0, sizeof pc);
	pc.urls = urls;
	pc.n_urls = i;
	pc.bind_dn = cfg->source.bind_dn[0] ? cfg->source.bind_dn : NULL;
	pc.password = password;
	pc.base = cfg->source.users.base;
	pc.timeout_ms = LDAP_PROBE_TIMEOUT_MS;
	pc.tls.starttls = cfg->source.tls; /* the sync source's TLS settings */
	pc.tls.ca_file = cfg->source.tls_ca[0] ? cfg->source.tls_ca : NULL;
	pc.sasl.mech = cfg->source.sasl.mech == CONFIG_SASL_GSSAPI ? SOURCE_SASL_GSSAPI : SOURCE_SASL_NONE;
	pc.sasl.keytab = cfg->source.sasl.keytab; /* the sync source's bind */
	pc.sasl.principal = cfg->source.sasl.principal;
	switch (ldap_probe_run(&pc, j->detail[SIDE_SOURCE], DETAIL_MAX)) {
	case LDAP_PROBE_OK:
		j->state[SIDE_SOURCE] = HEALTH_OK;
		break;
	case LDAP_PROBE_UNREACHABLE:
		j->state[SIDE_SOURCE] = HEALTH_UNREACHABLE;
		break;
	case LDAP_PROBE_UNAUTHORIZED:
		j->state[SIDE_SOURCE] = HEALTH_UNAUTHORIZED;
		break;
	default:
		j->state[SIDE_SOURCE] = HEALTH_ERROR;
	}
	secret_free(password);
}

static void probe_target(struct job *j)
{
	const struct config *cfg = j->cfg;
	struct scim_probe_config pc;
	char err[DETAIL_MAX - 64];
	char *token = NULL;
	int rv;

	if (!cfg->target.present) {
		j->state[SIDE_TARGET] = HEALTH_UNKNOWN;
		snprintf(j->detail[SIDE_TARGET], DETAIL_MAX, "no target configured");
		return;
	}
	if (cfg->target.token_file[0] != '\0') {
		rv = secret_read(cfg->target.token_file, &token, err, sizeof err);
		if (rv != 0) {
			j->state[SIDE_TARGET] = HEALTH_ERROR;
			snprintf(j->detail[SIDE_TARGET], DETAIL_MAX, "target.token_file: %s", err);
			return;
		}
	}
	memset(&pc, 0, sizeof pc);
	pc.url = cfg->target.url;
	pc.token = token;
	pc.node_id = j->node_id;
	pc.timeout_ms = SCIM_PROBE_TIMEOUT_MS;
	pc.tls = j->h->a->target_tls;   /* the same trust and credentials as the target */
	pc.auth = j->h->a->target_auth;
	if (cfg->target.kind == CONFIG_TARGET_ENTRA)
		pc.path = "/users?$top=1&$select=id";
	/* bulkupload: the app reads no users, but it reads the provisioning
	 * logs (AuditLog.Read.All) for the results (sync/target/entra_bulk.h) */
	if (cfg->target.kind == CONFIG_TARGET_ENTRA && cfg->target.mode == CONFIG_MODE_BULKUPLOAD)
		pc.path = "/auditLogs/provisioning?$top=1";
	switch (scim_probe_run(&pc, j->detail[SIDE_TARGET], DETAIL_MAX)) {
	case SCIM_PROBE_OK:
		j->state[SIDE_TARGET] = HEALTH_OK;
		break;
	case SCIM_PROBE_UNREACHABLE:
		j->state[SIDE_TARGET] = HEALTH_UNREACHABLE;
		break;
	case SCIM_PROBE_UNAUTHORIZED:
		j->state[SIDE_TARGET] = HEALTH_UNAUTHORIZED;
		break;
	default:
		j->state[SIDE_TARGET] = HEALTH_ERROR;
	}
	secret_free(token);
}


static void set(json_t *o, const char *key, json_t *v)
{
	if (json_object_set_new(o, key, v) != 0)
		xoom("json_object_set_new");
}

/* Send this node's results to the leader; keep its answer. */
static void report(struct job *j)
{
	struct curl_slist *hdrs = NULL;
	struct http_body b = {NULL, 0, REPLY_MAX, false};
	json_t *o;
	char *body;
	CURL *c;
	int s;

	/* the details are probe messages (a directory's or a target's words,
	 * cut to DETAIL_MAX): text_json */
	o = xcheck(json_pack("{s:I,s:s}", "id", (json_int_t)j->node_id, "control_address",
			     j->cfg->node.control_address));
	/* what this build is, for the leader to record (agent/versions.h) */
	set(o, "version", xcheck(json_string(versions_text())));
	set(o, "max_format", xcheck(json_integer(STATE_VERSION)));
	for (s = 0; s < SIDE_N; s++)
		set(o, side_names[s],
		    xcheck(json_pack("{s:s,s:o,s:i}", "state", health_state_name(j->state[s]), "detail",
				     text_json(j->detail[s]), "age_ms", 0)));
	if (j->handed_over_ago_ms >= 0)
		set(o, "handed_over_ms_ago", xcheck(json_integer(j->handed_over_ago_ms)));
	/* these probes began after this node read that answer (health.h) */
	if (j->after_ms != 0)
		set(o, "checked_after",
		    xcheck(json_pack("{s:I,s:I,s:I}", "leader", (json_int_t)j->after_leader, "term",
				     (json_int_t)j->after_term, "leader_ms", (json_int_t)j->after_ms)));
	body = xcheck(json_dumps(o, JSON_COMPACT));
	json_decref(o);
	c = xcheck(curl_easy_init());
	hdrs = xcheck(curl_slist_append(hdrs, "Content-Type: application/json"));
	/* The leader's control API takes POSTs only with the control token when
	 * one is configured; read it like every secret, each time. */
	if (j->cfg->control.token_file[0] != '\0') {
		char *token = NULL, err[256], *line;
		size_t n;
		if (secret_read(j->cfg->control.token_file, &token, err, sizeof err) == 0) {
			line = xmalloc(n = strlen(token) + 32);
			snprintf(line, n, "Authorization: Bearer %s", token);
			hdrs = xcheck(curl_slist_append(hdrs, line));
			explicit_bzero(line, strlen(line));
			free(line);
		}
		secret_free(token);
	}
	curl_easy_setopt(c, CURLOPT_URL, j->report_url);
	curl_easy_setopt(c, CURLOPT_HTTPHEADER, hdrs);
	curl_easy_setopt(c, CURLOPT_POSTFIELDS, body);
	curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, http_body_write);
	curl_easy_setopt(c, CURLOPT_WRITEDATA, &b);
	curl_easy_setopt(c, CURLOPT_NOSIGNAL, 1L);
	curl_easy_setopt(c, CURLOPT_CONNECTTIMEOUT_MS, (long)REPORT_TIMEOUT_MS / 2);
	curl_easy_setopt(c, CURLOPT_TIMEOUT_MS, (long)REPORT_TIMEOUT_MS);
	if (curl_easy_perform(c) == CURLE_OK) {
		curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &j->report_status);
		j->reply = b.p;
		b.p = NULL;
	}
	free(b.p);
	/* the slist holds a copy of the token: wipe it before it is freed */
	for (struct curl_slist *h = hdrs; h != NULL; h = h->next)
		explicit_bzero(h->data, strlen(h->data));
	curl_slist_free_all(hdrs);
	curl_easy_cleanup(c);
	free(body);
}

static void job_run(uv_work_t *req)
{
	struct job *j = req->data;

	probe_source(j);
	probe_target(j);
	if (j->report_url[0] != '\0')
		report(j);
}

/* ------------------------------------------------------------ loop side */

static void maybe_free(struct health *h)
{
	if (!h->stopping || !h->tick_closed || h->job != NULL)
		return;
	json_decref(h->leader_verdict);
	free(h);
	curl_global_cleanup();
}

static bool fresh(uint64_t at_ms, uint64_t age_ms, uint64_t now)
{
	return at_ms != 0 && age_ms + (now - at_ms) <= HEALTH_FRESH_MS;
}

/* This node's latest probe of a side, or unknown when too old. */
static enum health_state own_state(struct health *h, enum side s, uint64_t now)
{
	const struct check *c = &h->check[s];
	return fresh(c->checked_ms, 0, now) ? c->state : HEALTH_UNKNOWN;
}

static void take_result(struct health *h, struct job *j, enum side s)
{
	struct check *c = &h->check[s];
	enum health_state was = c->state;
	char q[DETAIL_MAX + 16];

	c->state = j->state[s];
	snprintf(c->detail, sizeof c->detail, "%s", j->detail[s]);
	c->checked_at = time(NULL);
	c->checked_ms = now_ms(h);
	c->bad_in_row = c->state == HEALTH_OK || c->state == HEALTH_UNKNOWN ? 0 : c->bad_in_row + 1;
	/* checked_ms is taken after the worker returned: the fault was there
	 * by then, which is what a peer's later check is compared with */
	c->bad_since_ms = c->bad_in_row == 0 ? 0 : c->bad_in_row == 1 ? c->checked_ms : c->bad_since_ms;
	if (c->state == was)
		return;
	/* Logged on change only: a broken credential is one line, not one per probe. */
	if (c->state == HEALTH_OK)
		log_info(s == SIDE_SOURCE ? "source check ok" : "target check ok", "was=%s detail=%s",
			 health_state_name(was), log_quote(q, sizeof q, c->detail));
	else if (c->state != HEALTH_UNKNOWN)
		log_warn(s == SIDE_SOURCE ? "source check failed" : "target check failed",
			 "state=%s detail=%s", health_state_name(c->state),
			 log_quote(q, sizeof q, c->detail));
}

/* Keep the newest time of the leader `leader` heard in `term`. */
static void heard(struct health *h, uint64_t leader, uint64_t term, uint64_t ms)
{
	if (leader == 0 || term == 0 || ms == 0)
		return;
	if (leader == h->heard_leader && term == h->heard_term && ms <= h->heard_ms)
		return; /* an answer overtaken by a newer one */
	h->heard_leader = leader;
	h->heard_term = term;
	h->heard_ms = ms;
}

static void job_done(uv_work_t *req, int status)
{
	struct job *j = req->data;
	struct health *h = j->h;
	json_t *o, *v;

	h->job = NULL;
	if (h->stopping || status != 0) {
		free(j->reply);
		free(j->cfg);
		free(j);
		maybe_free(h);
		return;
	}
	take_result(h, j, SIDE_SOURCE);
	take_result(h, j, SIDE_TARGET);
	h->probed_once = true;
	/* A leader's first failed probe is confirmed after HEALTH_CONFIRM_MS,
	 * not a whole period later: the hand-over waits for two in a row. */
	if (h->leading && now_ms(h) > HEALTH_PROBE_MS &&
	    (h->check[SIDE_SOURCE].bad_in_row == 1 || h->check[SIDE_TARGET].bad_in_row == 1))
		h->last_probe_ms = now_ms(h) - (HEALTH_PROBE_MS - HEALTH_CONFIRM_MS);
	if (j->report_url[0] != '\0') {
		o = j->reply && j->report_status == 200 ? json_loads(j->reply, 0, NULL) : NULL;
		v = json_object_get(o, "cluster_health");
		if (json_is_object(v)) {
			json_decref(h->leader_verdict);
			h->leader_verdict = json_incref(v);
			h->leader_verdict_ms = now_ms(h);
			h->leader_verdict_from = (uint64_t)json_integer_value(json_object_get(v, "leader"));
			h->report_failing = false;
			/* an older leader sends neither */
			if (json_is_integer(json_object_get(o, "term")) &&
			    json_is_integer(json_object_get(o, "leader_ms")) &&
			    json_integer_value(json_object_get(o, "term")) > 0 &&
			    json_integer_value(json_object_get(o, "leader_ms")) > 0)
				heard(h, h->leader_verdict_from,
				      (uint64_t)json_integer_value(json_object_get(o, "term")),
				      (uint64_t)json_integer_value(json_object_get(o, "leader_ms")));
		} else if (!h->report_failing) {
			/* debug: a leader that just lost leadership answers 409 */
			log_debug("health report to the leader not taken", "url=%s status=%ld",
				  j->report_url, j->report_status);
			h->report_failing = true;
		}
		json_decref(o);
	}
	free(j->reply);
	free(j->cfg);
	free(j);
}

/* The leader's control address from the replicated "n:<id>" record. */
static bool control_address_of(struct health *h, uint64_t id, char *out, size_t len)
{
	char key[32];
	const void *v;
	size_t vlen, klen;

	klen = (size_t)snprintf(key, sizeof key, "n:%llu", (unsigned long long)id);
	if (!state_get(&h->a->state, key, klen, &v, &vlen) || vlen == 0 || vlen >= len)
		return false;
	memcpy(out, v, vlen);
	out[vlen] = '\0';
	return true;
}

static void start_probe(struct health *h, const struct node_status *st)
{
	struct job *j;
	char addr[256];
	int rv;

	j = xcalloc(1, sizeof *j);
	j->h = h;
	/* A copy taken on the loop: the replicated configuration can replace
	 * the engine's while the probe runs (agent/replconf.h). The probe reads
	 * the secret files itself, so the copy holds no secret. */
	j->cfg = xmalloc(sizeof *j->cfg);
	*j->cfg = *agent_sync_config(h->a);
	j->cfg->source.password = j->cfg->target.token = j->cfg->target.auth.client_secret = NULL;
	j->cfg->control.token = NULL;
	j->node_id = h->a->cfg.node.id;
	j->req.data = j;
	j->handed_over_ago_ms = h->handed_over_ms ? (int64_t)(now_ms(h) - h->handed_over_ms) : -1;
	if (h->heard_ms != 0 && h->heard_leader == st->leader_id) {
		j->after_leader = h->heard_leader;
		j->after_term = h->heard_term;
		j->after_ms = h->heard_ms;
	}
	h->probe_after_leader = j->after_leader;
	h->probe_after_term = j->after_term;
	h->probe_after_ms = j->after_ms;
	/* nothing to report without a source or target (a bare Raft group) */
	if ((h->a->cfg.source.present || h->a->cfg.target.present) && st->leader_id != 0 &&
	    st->leader_id != j->node_id && control_address_of(h, st->leader_id, addr, sizeof addr))
		snprintf(j->report_url, sizeof j->report_url, "http://%s/v1/health/report", addr);
	rv = uv_queue_work(&h->a->loop, &j->req, job_run, job_done);
	if (rv != 0) {
		log_warn("cannot start a health probe", "error=%s", uv_err_name(rv));
		free(j->cfg);
		free(j);
		return;
	}
	h->job = j;
	h->probe_wanted = false;
	h->last_probe_ms = now_ms(h);
}

/* ---------------------------------------------------------------- leader */

static struct peer *peer_of(struct health *h, uint64_t id, bool add)
{
	unsigned i;

	for (i = 0; i < h->n_peers; i++)
		if (h->peers[i].id == id)
			return &h->peers[i];
	if (!add || h->n_peers == NODE_MAX_MEMBERS)
		return NULL;
	memset(&h->peers[h->n_peers], 0, sizeof h->peers[0]);
	h->peers[h->n_peers].id = id;
	return &h->peers[h->n_peers++];
}

int health_peer_version(struct health *h, uint64_t id, struct format_record *out)
{
	struct peer *p = peer_of(h, id, false);

	if (p == NULL || !p->reported)
		return -1;
	if (p->version.max_format == 0)
		return 0;
	*out = p->version;
	return 1;
}

bool health_peer_address(struct health *h, uint64_t id, char *out, size_t len)
{
	struct peer *p = peer_of(h, id, false);

	if (p == NULL || p->control_address[0] == '\0' || strlen(p->control_address) >= len)
		return false;
	snprintf(out, len, "%s", p->control_address);
	return true;
}

static enum health_state peer_state(struct health *h, uint64_t id, enum side s, uint64_t now)
{
	struct peer *p = peer_of(h, id, false);
	return p && fresh(p->received_ms, p->age_ms, now) ? p->state[s] : HEALTH_UNKNOWN;
}

json_t *health_member_json(struct health *h, uint64_t id)
{
	uint64_t now = now_ms(h);
	bool self = id == h->a->cfg.node.id;
	enum health_state st[SIDE_N];
	int s;

	if (!self && !h->leading)
		return json_null();
	for (s = 0; s < SIDE_N; s++)
		st[s] = self ? own_state(h, (enum side)s, now) : peer_state(h, id, (enum side)s, now);
	return xcheck(json_pack("{s:s,s:s}", side_names[SIDE_SOURCE], health_state_name(st[SIDE_SOURCE]),
				side_names[SIDE_TARGET], health_state_name(st[SIDE_TARGET])));
}

/* Which side an engine quarantine reason blames, and how. */
static bool reason_side(const char *reason, enum side *s, enum health_state *how)
{
	if (strcmp(reason, "source_unauthorized") == 0 || strcmp(reason, "source_unreachable") == 0) {
		*s = SIDE_SOURCE;
	} else if (strcmp(reason, "target_unauthorized") == 0 || strcmp(reason, "unauthorized") == 0 ||
		   strcmp(reason, "target_unreachable") == 0) {
		*s = SIDE_TARGET;
	} else {
		return false; /* server_errors, delete_threshold: another node would not do better */
	}
	*how = strstr(reason, "unreachable") ? HEALTH_UNREACHABLE : HEALTH_UNAUTHORIZED;
	return true;
}

/*
 * Which sides this leader cannot use: the engine quarantined for it for the
 * grace period (the engine knows first), or two failed probes in a row (so
 * that a hand-over does not wait for the engine to notice, and one lost
 * probe is not enough).
 */
static void bad_sides(struct health *h, uint64_t now, bool bad[SIDE_N])
{
	struct engine_stats es;
	bool q[SIDE_N] = {false, false};
	enum health_state how[SIDE_N] = {HEALTH_UNKNOWN, HEALTH_UNKNOWN};
	enum side s;
	enum health_state st;
	int i;

	memset(&es, 0, sizeof es);
	if (h->a->engine != NULL)
		engine_stats(h->a->engine, &es);
	if (es.state == ENGINE_QUARANTINED && reason_side(es.quarantine_reason, &s, &st)) {
		q[s] = true;
		how[s] = st;
	}
	if (es.target.quarantined && reason_side(es.target.quarantine_reason, &s, &st) &&
	    s == SIDE_TARGET) {
		q[s] = true;
		how[s] = st;
	}
	for (i = 0; i < SIDE_N; i++) {
		if (!q[i]) {
			h->quarantined_since[i] = 0;
		} else if (h->quarantined_since[i] == 0) {
			h->quarantined_since[i] = now;
			h->probe_wanted = true; /* fresh evidence for the verdict */
		}
		bad[i] = (q[i] && now - h->quarantined_since[i] >= HEALTH_QUARANTINE_GRACE_MS) ||
			 (h->check[i].bad_in_row >= 2 && own_state(h, (enum side)i, now) != HEALTH_OK &&
			  own_state(h, (enum side)i, now) != HEALTH_UNKNOWN);
		/* Since when this leader has seen the side fail: the later start
		 * of the two signs, so that a peer's check counts only when it is
		 * newer than both (health_pick.h). */
		h->failing_since[i] = q[i] ? h->quarantined_since[i] : 0;
		if (h->check[i].bad_in_row >= 1 && own_state(h, (enum side)i, now) != HEALTH_OK &&
		    own_state(h, (enum side)i, now) != HEALTH_UNKNOWN &&
		    h->check[i].bad_since_ms > h->failing_since[i])
			h->failing_since[i] = h->check[i].bad_since_ms;
		assert(!bad[i] || h->failing_since[i] != 0);
		/* for the verdict: what the engine met beats what the probe saw */
		h->verdict.self[i] = q[i] ? how[i] : own_state(h, (enum side)i, now);
	}
}

/* The cluster verdict from this leader's view and every voter's report. */
static void compute_verdict(struct health *h, const struct node_status *st, uint64_t now)
{
	struct verdict *v = &h->verdict;
	size_t n = 0;
	unsigned i;
	int s;

	v->detail[0] = '\0';
	for (s = 0; s < SIDE_N; s++) {
		bool any_ok = false, all_known = true;
		for (i = 0; i < st->n_members; i++) {
			const struct node_member_status *m = &st->members[i];
			enum health_state hs;
			if (m->role != NODE_VOTER)
				continue;
			hs = m->id == h->a->cfg.node.id ? v->self[s] : peer_state(h, m->id, (enum side)s, now);
			if (hs == HEALTH_OK)
				any_ok = true;
			else if (hs == HEALTH_UNKNOWN)
				all_known = false;
		}
		v->side[s] = any_ok ? VERDICT_OK : all_known ? VERDICT_UNAVAILABLE : VERDICT_UNKNOWN;
		if (!any_ok && all_known && n < sizeof v->detail)
			n += (size_t)snprintf(v->detail + n, sizeof v->detail - n, "%sno voter can %s",
					      n ? "; " : "",
					      s == SIDE_SOURCE ? "read the source" : "use the target");
	}
}

/* A voter whose latest report, made after this leader's failure began, says
 * every bad side works; 0 when none (health_pick.h). */
static uint64_t pick_voter(struct health *h, const struct node_status *st, const bool bad[SIDE_N],
			   uint64_t now)
{
	struct health_candidate c[NODE_MAX_MEMBERS];
	uint64_t since[HEALTH_SIDES];
	size_t n = 0;
	unsigned i;
	int s;

	for (s = 0; s < SIDE_N; s++)
		since[s] = bad[s] ? h->failing_since[s] : 0;
	for (i = 0; i < st->n_members && n < NODE_MAX_MEMBERS; i++) {
		const struct node_member_status *m = &st->members[i];
		struct peer *p;
		if (m->role != NODE_VOTER || m->id == h->a->cfg.node.id)
			continue;
		p = peer_of(h, m->id, false);
		if (p == NULL)
			continue;
		c[n].id = m->id;
		c[n].reachable = m->reachable;
		for (s = 0; s < SIDE_N; s++)
			c[n].state[s] = p->state[s];
		c[n].received_ms = p->received_ms;
		c[n].age_ms = p->age_ms;
		c[n].checked_after_ms = p->checked_after_ms;
		c[n].handed_over_at = p->handed_over_at;
		n++;
	}
	return health_pick(c, n, since, now);
}

static void on_handed_over(struct node *n, bool transferred)
{
	struct agent *a = n->data;
	struct health *h = a->health;
	struct node_status st;
	uint64_t now;

	if (h == NULL || h->stopping)
		return;
	now = now_ms(h);
	h->transferring = false;
	node_status(n, &st);
	if (st.state != NODE_LEADER)
		transferred = true; /* stepped down before the new leader is known here */
	if (transferred) {
		h->handovers++;
		h->handed_over_ms = now;
		log_warn("leadership handed over to a voter whose source and target work",
			 "to=%llu leader=%llu term=%llu bad_for_ms=%llu transfer_ms=%llu",
			 (unsigned long long)h->transfer_to, (unsigned long long)st.leader_id,
			 (unsigned long long)st.term, (unsigned long long)(now - h->episode_since),
			 (unsigned long long)(now - h->transfer_started_ms));
		h->episode = false;
		return;
	}
	log_warn("health hand-over did not complete; staying leader for now", "to=%llu",
		 (unsigned long long)h->transfer_to);
	h->next_attempt_ms = now + HEALTH_PROBE_MS;
	if (a->engine && node_leader_ready(n))
		identity_resume(a); /* still leading: resume exporting */
}

static void handover_tick(struct health *h, const struct node_status *st, uint64_t now)
{
	struct agent *a = h->a;
	bool bad[SIDE_N];
	uint64_t to;
	int rv;

	if (!st->ready || a->stopping) {
		if (h->leading && h->episode && !h->transferring)
			log_info("no longer leading; health hand-over not needed", NULL);
		h->leading = h->episode = false;
		h->quarantined_since[SIDE_SOURCE] = h->quarantined_since[SIDE_TARGET] = 0;
		h->failing_since[SIDE_SOURCE] = h->failing_since[SIDE_TARGET] = 0;
		return;
	}
	if (!h->leading) {
		h->leading = true;
		h->episode = false;
		h->next_attempt_ms = 0;
	}
	bad_sides(h, now, bad);
	compute_verdict(h, st, now);
	if (a->engine == NULL)
		return; /* no sync here: nothing to hand over */
	if (!bad[SIDE_SOURCE] && !bad[SIDE_TARGET]) {
		if (h->episode && !h->transferring)
			log_info("this leader's source and target work again; no hand-over", NULL);
		h->episode = false;
		return;
	}
	if (!h->episode) {
		h->episode = true;
		h->episode_since = now;
		h->told_no_candidate = false;
		log_warn("this leader cannot use its source or target; handing leadership to a voter whose "
			 "own check works",
			 "source=%s target=%s", bad[SIDE_SOURCE] ? health_state_name(h->verdict.self[SIDE_SOURCE]) : "ok",
			 bad[SIDE_TARGET] ? health_state_name(h->verdict.self[SIDE_TARGET]) : "ok");
	}
	if (h->transferring || node_transferring(&a->node) || a->transfer_pending || now < h->next_attempt_ms)
		return;
	to = pick_voter(h, st, bad, now);
	if (to == 0) {
		/* say it once, and only when the others had time to report: right
		 * after an election the new leader has heard from nobody yet */
		if (!h->told_no_candidate && (now - h->episode_since >= HEALTH_PROBE_MS + 1000 ||
					      (bad[SIDE_SOURCE] && h->verdict.side[SIDE_SOURCE] == VERDICT_UNAVAILABLE) ||
					      (bad[SIDE_TARGET] && h->verdict.side[SIDE_TARGET] == VERDICT_UNAVAILABLE))) {
			char q[600];
			log_warn("no other voter reports a working source and target; staying leader",
				 "cluster=%s", log_quote(q, sizeof q, h->verdict.detail[0] ? h->verdict.detail : "some voters not heard from"));
			h->told_no_candidate = true;
		}
		return;
	}
	/* Stop exporting before handing over: the next leader resumes from the
	 * last committed cursor, and no two nodes write at once. */
	engine_follow(a->engine);
	rv = node_transfer(&a->node, to, on_handed_over);
	if (rv != 0) {
		log_warn("cannot hand leadership over", "to=%llu error=\"%s\"", (unsigned long long)to,
			 raft_strerror(rv));
		h->next_attempt_ms = now + HEALTH_PROBE_MS;
		if (node_leader_ready(&a->node))
			identity_resume(a);
		return;
	}
	h->transferring = true;
	h->transfer_to = to;
	h->transfer_started_ms = now;
	log_info("handing leadership over", "to=%llu bad_for_ms=%llu", (unsigned long long)to,
		 (unsigned long long)(now - h->episode_since));
}

static void on_tick(uv_timer_t *t)
{
	struct health *h = t->data;
	struct node_status st;
	uint64_t now = now_ms(h), self = h->a->cfg.node.id;
	char addr[256];

	if (h->stopping)
		return;
	node_status(&h->a->node, &st);
	if (st.leader_id != h->leader_seen) {
		h->leader_seen = st.leader_id;
		h->report_failing = false;
	}
	/* A new leader knows nothing of this node yet: report as soon as its
	 * control address is known, not at the next period. */
	if (st.leader_id != 0 && st.leader_id != self && st.leader_id != h->early_report &&
	    control_address_of(h, st.leader_id, addr, sizeof addr)) {
		h->early_report = st.leader_id;
		h->probe_wanted = true;
	}
	if (h->job == NULL && (h->probe_wanted || !h->probed_once ||
			       now - h->last_probe_ms >= HEALTH_PROBE_MS))
		start_probe(h, &st);
	handover_tick(h, &st, now);
}

int health_start(struct health **out, struct agent *a, char *errmsg, size_t errlen)
{
	struct health *h;
	int rv;

	if (curl_global_init(CURL_GLOBAL_DEFAULT) != CURLE_OK) {
		snprintf(errmsg, errlen, "health: cannot initialise libcurl");
		return -EIO;
	}
	h = xcalloc(1, sizeof *h);
	h->a = a;
	rv = uv_timer_init(&a->loop, &h->tick);
	if (rv != 0) {
		snprintf(errmsg, errlen, "health: timer: %s", uv_strerror(rv));
		goto err_after_alloc;
	}
	h->tick.data = h;
	uv_timer_start(&h->tick, on_tick, 0, HEALTH_TICK_MS);
	*out = h;
	return 0;

err_after_alloc:
	free(h);
	curl_global_cleanup();
	return rv;
}

void health_probe_now(struct health *h)
{
	if (h != NULL)
		h->probe_wanted = true;
}

static void on_tick_closed(uv_handle_t *handle)
{
	struct health *h = handle->data;
	h->tick_closed = true;
	maybe_free(h);
}

void health_stop(struct health *h)
{
	if (h == NULL || h->stopping)
		return;
	h->stopping = true;
	uv_close((uv_handle_t *)&h->tick, on_tick_closed);
}

/* ---------------------------------------------------------------- views */


json_t *health_json(struct health *h)
{
	uint64_t now = now_ms(h);
	json_t *o = xcheck(json_object());
	int s;

	for (s = 0; s < SIDE_N; s++) {
		const struct check *c = &h->check[s];
		set(o, side_names[s],
		    xcheck(json_pack("{s:s,s:o,s:o,s:o}", "state", health_state_name(own_state(h, (enum side)s, now)),
				     "detail", text_json(c->detail), "checked_at", control_time_or_null(c->checked_at),
				     "age_ms",
				     c->checked_ms ? xcheck(json_integer((json_int_t)(now - c->checked_ms))) : json_null())));
	}
	return o;
}

json_t *health_cluster_json(struct health *h)
{
	uint64_t now = now_ms(h), self = h->a->cfg.node.id;
	struct node_status st;
	json_t *o, *voters;
	unsigned i;
	int s;

	node_status(&h->a->node, &st);
	if (!h->leading) {
		/* the leader's answer to our latest report, while it is recent */
		if (h->leader_verdict && st.leader_id != 0 && h->leader_verdict_from == st.leader_id &&
		    now - h->leader_verdict_ms <= HEALTH_FRESH_MS) {
			o = xcheck(json_deep_copy(h->leader_verdict));
			set(o, "age_ms", xcheck(json_integer((json_int_t)(now - h->leader_verdict_ms))));
			return o;
		}
		return xcheck(json_pack("{s:s,s:s,s:o,s:s}", "source", "unknown", "target", "unknown", "leader",
					st.leader_id ? xcheck(json_integer((json_int_t)st.leader_id)) : json_null(),
					"detail", st.leader_id ? "no recent answer from the leader" : "no leader"));
	}
	voters = xcheck(json_array());
	for (i = 0; i < st.n_members; i++) {
		const struct node_member_status *m = &st.members[i];
		json_t *v;
		if (m->role != NODE_VOTER)
			continue;
		v = xcheck(json_pack("{s:I}", "id", (json_int_t)m->id));
		for (s = 0; s < SIDE_N; s++)
			set(v, side_names[s],
			    xcheck(json_string(health_state_name(m->id == self ? h->verdict.self[s]
									      : peer_state(h, m->id, (enum side)s, now)))));
		if (json_array_append_new(voters, v) != 0)
			xoom("json_array_append_new");
	}
	o = xcheck(json_pack("{s:s,s:s,s:I,s:i,s:o}", "source", side_verdict_name(h->verdict.side[SIDE_SOURCE]),
			     "target", side_verdict_name(h->verdict.side[SIDE_TARGET]), "leader", (json_int_t)self,
			     "age_ms", 0, "voters", voters));
	if (h->verdict.detail[0])
		set(o, "detail", xcheck(json_string(h->verdict.detail)));
	return o;
}

void health_metrics(struct health *h, struct health_metrics *out)
{
	uint64_t now = now_ms(h);

	out->source_up = own_state(h, SIDE_SOURCE, now) == HEALTH_OK;
	out->target_up = own_state(h, SIDE_TARGET, now) == HEALTH_OK;
	out->handovers = h->handovers;
}

void health_handle_report(struct health *h, const struct http_request *req,
			  struct http_reply *reply)
{
	json_t *body, *side;
	json_error_t jerr;
	json_int_t id = 0;
	uint64_t term = node_term(&h->a->node);
	struct peer *p;
	int s;

	if (strcmp(req->method, "POST") != 0) {
		http_reply_error(reply, 405, "%s %s: use POST", req->method, req->path);
		return;
	}
	if (!h->leading) {
		http_reply_error(reply, 409, "not the leader");
		return;
	}
	body = json_loadb(req->body, req->body_len, 0, &jerr);
	if (body == NULL || json_unpack_ex(body, &jerr, 0, "{s:I}", "id", &id) != 0 || id <= 0 ||
	    (uint64_t)id == h->a->cfg.node.id) {
		http_reply_error(reply, 400, "bad health report: %s", body ? jerr.text : "not JSON");
		json_decref(body);
		return;
	}
	p = peer_of(h, (uint64_t)id, true);
	if (p == NULL) {
		http_reply_error(reply, 503, "too many reporting nodes");
		json_decref(body);
		return;
	}
	for (s = 0; s < SIDE_N; s++) {
		const char *d;
		side = json_object_get(body, side_names[s]);
		p->state[s] = health_state_parse(json_string_value(json_object_get(side, "state")));
		d = json_string_value(json_object_get(side, "detail"));
		snprintf(p->detail[s], sizeof p->detail[s], "%s", d ? d : "");
	}
	{
		const char *ca = json_string_value(json_object_get(body, "control_address"));
		if (ca != NULL && strlen(ca) < sizeof p->control_address)
			snprintf(p->control_address, sizeof p->control_address, "%s", ca);
	}
	{
		/* An older agent sends neither, and so does this member if it was
		 * just put back on an older build: forget what it said before, so
		 * that it counts as format 1 again (agent/versions.c). */
		const char *v = json_string_value(json_object_get(body, "version"));
		json_t *mf = json_object_get(body, "max_format");
		p->reported = true;
		p->version.max_format = 0;
		p->version.text[0] = '\0';
		if (v != NULL && json_is_integer(mf) && json_integer_value(mf) >= 1 &&
		    json_integer_value(mf) <= UINT16_MAX && strlen(v) <= FORMAT_TEXT_MAX &&
		    versions_text_ok(v)) {
			p->version.max_format = (uint16_t)json_integer_value(mf);
			snprintf(p->version.text, sizeof p->version.text, "%s", v);
		}
	}
	p->age_ms = (uint64_t)json_integer_value(json_object_get(json_object_get(body, "source"), "age_ms"));
	p->received_ms = now_ms(h);
	side = json_object_get(body, "handed_over_ms_ago");
	p->handed_over_at = json_is_integer(side) && (uint64_t)json_integer_value(side) < p->received_ms
				    ? p->received_ms - (uint64_t)json_integer_value(side)
				    : 0;
	p->checked_after_ms = health_checked_after(json_object_get(body, "checked_after"), h->a->cfg.node.id,
						   term, p->received_ms);
	json_decref(body);
	/* term and leader_ms: this leader's clock, for the next report's
	 * "checked_after" (health.h) */
	control_reply_json(reply, 200,
			   json_pack("{s:o,s:I,s:I}", "cluster_health", health_cluster_json(h), "term",
				     (json_int_t)term, "leader_ms", (json_int_t)p->received_ms));
}

static uint64_t failing_since(const struct health *h)
{
	return h->failing_since[SIDE_SOURCE] > h->failing_since[SIDE_TARGET] ? h->failing_since[SIDE_SOURCE]
									     : h->failing_since[SIDE_TARGET];
}

json_t *health_view_json(struct health *h)
{
	json_t *o = xcheck(json_pack("{s:I}", "leader_ms", (json_int_t)now_ms(h)));

	if (h->leading && failing_since(h) != 0)
		set(o, "failing_since_ms", xcheck(json_integer((json_int_t)failing_since(h))));
	return o;
}

void health_leader_seen(struct health *h, uint64_t leader, uint64_t term, const json_t *view)
{
	uint64_t ms, since;

	if (h->stopping || h->leading || health_view_parse(view, &ms, &since) != 0)
		return;
	heard(h, leader, term, ms);
	/* The leader has seen a side fail since `since` and hands over only
	 * to a voter whose check began after it: check once now, not at the
	 * next period, so that a voter that can do better is known at once.
	 * Once per failure: a probe started from now on carries ms >= since.
	 * The latest probe's stamp counts only if it is this leader's in this
	 * term: another leader's clock says nothing of this one's. */
	if (since != 0 && since != h->probe_asked_for &&
	    (h->probe_after_leader != leader || h->probe_after_term != term || h->probe_after_ms < since)) {
		h->probe_asked_for = since;
		h->probe_wanted = true;
	}
}
