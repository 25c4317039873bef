/*
 * agent/agent.c -- start-up, signals and orderly shutdown (see agent.h).
 */
#include "agent/agent.h"

#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "agent/log.h"
#include "agent/sd_notify.h"
#include "common/xalloc.h"
#include "raft/transport_tls.h"
#include "sync/hash.h"
#include "sync/provlog.h"
#include "sync/replog/raft_replog.h"
#include "sync/state/cluster.h"
#include "sync/source/ad.h"
#include "sync/source/ldap_poll.h"
#include "sync/source/openldap.h"
#include "sync/target/entra.h"
#include "sync/target/entra_bulk.h"
#include "sync/target/http_tls.h"
#include "sync/target/oauth2.h"
#include "sync/target/scim.h"

static void engine_log_flush(bool all);

static void on_node_info_applied(void *arg, int status)
{
	(void)arg;
	if (status != 0)
		log_warn("could not record this node's control address", "error=\"%s\"",
			 raft_strerror(status));
}

/*
 * Record "n:<id>" -> control address in the replicated state, so that every
 * node can point an operator's mutation at the leader's control API.
 */
static void publish_control_address(struct agent *a)
{
	char key[32];
	const void *v;
	size_t vlen, klen, alen = strlen(a->cfg.node.control_address);
	struct state_batch b;
	struct raft_buffer buf;

	klen = (size_t)snprintf(key, sizeof key, "n:%llu", (unsigned long long)a->cfg.node.id);
	if (state_get(&a->state, key, klen, &v, &vlen) && vlen == alen &&
	    memcmp(v, a->cfg.node.control_address, alen) == 0)
		return;
	state_batch_init(&b);
	state_batch_put(&b, key, klen, a->cfg.node.control_address, alen);
	if (state_batch_encode(&b, &buf) == 0 &&
	    node_apply(&a->node, &buf, on_node_info_applied, a) != 0)
		raft_free(buf.base);
	state_batch_close(&b);
}

static unsigned barrier_ms(const struct node *n)
{
	struct node_stats ns;
	node_stats(n, &ns);
	return ns.last_barrier_ms;
}

static void on_leader_change(struct node *n, bool leading)
{
	struct agent *a = n->data;
	struct node_status st;

	node_status(n, &st);
	if (leading) {
		log_info("acting as leader", "term=%llu commit_index=%llu applied_index=%llu barrier_ms=%u",
			 (unsigned long long)st.term, (unsigned long long)st.commit_index,
			 (unsigned long long)st.applied_index, barrier_ms(n));
		publish_control_address(a);
		/* The engine starts once the cluster id is committed (identity.h). */
		identity_lead(a);
	} else {
		log_info("stopped acting as leader", "term=%llu state=%s",
			 (unsigned long long)st.term, node_state_name(st.state));
		if (a->engine)
			engine_follow(a->engine);
	}
}

static void on_node_closed(struct node *n)
{
	struct agent *a = n->data;
	uv_close((uv_handle_t *)&a->cursor_watch, NULL);
	uv_close((uv_handle_t *)&a->watchdog, NULL);
	identity_close(a);
	replconf_close(a);
	member_watch_close(a);
	leader_watch_close(a);
	versions_close(a);
	control_drill_close(a);
	loop_watch_close(&a->loop_watch);
	raft_story_close(&a->raft_story);
	engine_log_flush(true);
	uv_close((uv_handle_t *)&a->sigterm, NULL);
	uv_close((uv_handle_t *)&a->sigint, NULL);
	uv_close((uv_handle_t *)&a->sighup, NULL);
	log_info("stopped", NULL);
}

static void stop_after_engine(struct agent *a)
{
	raft_story_close(&a->raft_story); /* it reads the node: stop it first */
	node_close(&a->node, on_node_closed);
}

static void on_engine_closed(void *data)
{
	struct agent *a = data;
	a->engine = NULL;
	raft_story_close(&a->raft_story); /* it reads the node: stop it first */
	node_close(&a->node, on_node_closed);
}

static void on_http_closed(struct http_server *s)
{
	struct agent *a = s->data;
	if (a->rebuilding) { /* the old engine is closing: go on once it is released */
		a->close_after_rebuild = true;
		return;
	}
	if (a->engine)
		engine_close(a->engine, on_engine_closed, a);
	else {
		raft_story_close(&a->raft_story); /* it reads the node: stop it first */
		node_close(&a->node, on_node_closed);
	}
}

/* A notice to the service manager (agent/sd_notify.h); a failure is logged
 * once per kind of notice, not per watchdog ping. */
static void notify(const char *state)
{
	static char failed[64];
	char err[512], q[600];

	if (sdnotify_send(state, err, sizeof err) == 0)
		return;
	if (strncmp(failed, state, sizeof failed) == 0)
		return;
	snprintf(failed, sizeof failed, "%s", state);
	log_warn("cannot notify the service manager", "error=%s", log_quote(q, sizeof q, err));
}

static void on_watchdog(uv_timer_t *t)
{
	(void)t;
	notify("WATCHDOG=1");
}

static void shutdown_now(struct agent *a)
{
	notify("STOPPING=1"); /* again after a signal: harmless; first for agent_shutdown() */
	health_stop(a->health);
	a->health = NULL;
	member_view_stop(a->member_view);
	a->member_view = NULL;
	/* Followers read a refused leader watch as "the leader's process is
	 * gone" and elect at once (agent/leader_watch.h): no write after the
	 * listener closes. */
	node_stop_writing(&a->node);
	http_close(&a->http, on_http_closed);
}

static void on_transferred(struct node *n, bool transferred)
{
	struct agent *a = n->data;
	struct node_status st;

	node_status(n, &st);
	if (transferred)
		log_info("leadership handed over", "leader=%llu term=%llu",
			 (unsigned long long)st.leader_id, (unsigned long long)st.term);
	else
		log_warn("leadership hand-over did not complete; stopping anyway", NULL);
	shutdown_now(a);
}

/*
 * First signal: a leader hands leadership to an up-to-date voter first, so a
 * planned restart costs the cluster no election timeout; then stop. A second
 * signal stops at once.
 */
static void on_signal(uv_signal_t *h, int signum)
{
	struct agent *a = h->data;
	int rv;

	if (a->stopping) {
		log_warn("second signal: stopping without hand-over", "signal=%d", signum);
		if (node_transferring(&a->node)) {
			node_transfer_cancel_cb(&a->node);
			shutdown_now(a);
		}
		return;
	}
	a->stopping = true;
	log_info("stopping", "signal=%s", signum == SIGTERM ? "SIGTERM" : "SIGINT");
	notify("STOPPING=1"); /* the hand-over may take an election timeout */
	/* Stop exporting before handing over: the next leader resumes from the
	 * last committed cursor, and no two nodes write at once. */
	if (a->engine)
		engine_follow(a->engine);
	if (node_state(&a->node) == NODE_LEADER) {
		rv = node_transfer(&a->node, 0, on_transferred);
		if (rv == 0) {
			log_info("handing leadership over before exit", NULL);
			return;
		}
		if (rv != RAFT_NOTFOUND) /* NOTFOUND: no other voter to hand over to */
			log_warn("cannot hand leadership over", "error=\"%s\"", raft_strerror(rv));
	}
	shutdown_now(a);
}

/*
 * SIGHUP: re-read cluster.tls's CA, certificate and key for new raft
 * connections (certificate rotation). Established connections keep their
 * session; a file that does not load leaves the old ones in use.
 */
static void on_sighup(uv_signal_t *h, int signum)
{
	struct agent *a = h->data;
	char err[768], warn[768], q[800];
	(void)signum;

	if (!node_tls(&a->node))
		return;
	if (node_tls_reload(&a->node, err, sizeof err, warn, sizeof warn) != 0) {
		log_error("cluster TLS files not reloaded: keeping the previous ones", "error=%s",
			  log_quote(q, sizeof q, err));
		return;
	}
	log_info("cluster TLS files reloaded: new raft connections use them", "cert=%s ca=%s",
		 a->cfg.cluster.tls_cert, a->cfg.cluster.tls_ca);
	if (warn[0])
		log_warn("this node's certificate will be refused by its peers", "reason=%s",
			 log_quote(q, sizeof q, warn));
}

/* The raft transport's lines (raft/transport_tls.h): refusals name the peer
 * and the reason. */
static void on_transport_log(void *arg, int level, const char *msg, const char *peer,
			     const char *detail)
{
	char q[600];
	(void)arg;
	log_write(level <= 0 ? LOG_DEBUG : level == 1 ? LOG_INFO : level == 2 ? LOG_WARN : LOG_ERROR, msg,
		  "peer=%s reason=%s", peer ? peer : "-", log_quote(q, sizeof q, detail ? detail : ""));
}

/* A connection with an authenticated peer closed. Only a hint (libraft
 * reconnects); kept as a debug line for now -- a dropped leader connection is
 * an early sign of a crashed leader. */
static void on_peer_closed(void *arg, uint64_t id, bool inbound)
{
	(void)arg;
	log_debug("raft connection closed", "peer_id=%llu direction=%s", (unsigned long long)id,
		  inbound ? "in" : "out");
}

void agent_shutdown(struct agent *a, int exit_code, const char *reason)
{
	if (a->stopping)
		return;
	a->stopping = true;
	a->exit_code = exit_code;
	snprintf(a->exit_reason, sizeof a->exit_reason, "%s", reason ? reason : "");
	if (a->engine)
		engine_follow(a->engine);
	shutdown_now(a);
}

const char *agent_bootstrap_name(enum agent_bootstrap m)
{
	switch (m) {
	case AGENT_BOOTSTRAP_MEMBERS:
		return "members";
	case AGENT_BOOTSTRAP_IMPLICIT:
		return "implicit";
	case AGENT_BOOTSTRAP_EXPLICIT:
		return "explicit";
	case AGENT_BOOTSTRAP_NEVER:
		return "never";
	default:
		return "join";
	}
}

enum agent_bootstrap agent_bootstrap_mode(const struct agent *a)
{
	const struct config *c = &a->cfg;
	bool listed = false;
	unsigned i;

	for (i = 0; i < c->cluster.n_members; i++)
		if (c->cluster.members[i].id == c->node.id)
			listed = true;
	if (!listed)
		return AGENT_BOOTSTRAP_JOIN;
	if (c->cluster.bootstrap == CONFIG_BOOTSTRAP_NO)
		return AGENT_BOOTSTRAP_NEVER;
	if (c->cluster.bootstrap == CONFIG_BOOTSTRAP_YES)
		return AGENT_BOOTSTRAP_EXPLICIT;
	/* A node of a longer list cannot win an election alone, so bootstrapping
	 * it from the list is harmless; a list of only this node makes it a
	 * writer on its own. */
	return c->cluster.n_members == 1 ? AGENT_BOOTSTRAP_IMPLICIT : AGENT_BOOTSTRAP_MEMBERS;
}

/* Log the raft storage state once when it changes (raft/storage.h). */
static void watch_storage(struct agent *a)
{
	const struct storage_health *h = node_storage(&a->node);
	char q[600];

	if ((int)h->state == a->storage_logged)
		return;
	a->storage_logged = (int)h->state;
	if (h->state == STORAGE_OK)
		log_info("storage ok again", "data_dir=%s", a->cfg.node.data_dir);
	else
		log_error("storage cannot be written", "state=%s detail=%s",
			  storage_state_name(h->state), log_quote(q, sizeof q, h->detail));
}

static void on_provlog_health(void *data, const struct provlog_health *h)
{
	(void)data;
	if (h->failing)
		log_error("provisioning log cannot be written", "state=%s file=%s error=\"%s\" "
			  "write_errors=%llu", storage_state_name(h->last_errno == ENOSPC ? STORAGE_FULL : STORAGE_ERROR),
			  h->path, strerror(h->last_errno), (unsigned long long)h->write_errors);
	else
		log_info("provisioning log written again", "file=%s lost_entries=%llu", h->path,
			 (unsigned long long)h->write_errors);
}

/* Notice when the replicated cursor changes, for its age in /v1/status. */
static void on_cursor_watch(uv_timer_t *t)
{
	struct agent *a = t->data;
	size_t len;
	const void *c = state_cursor(&a->state, &len);
	uint64_t h = c ? hash_bytes(HASH_SEED, c, len) : 0;

	if (c && h != a->cursor_digest) {
		a->cursor_digest = h;
		a->cursor_seen_at = time(NULL);
	}
	watch_storage(a);
	engine_log_flush(false);
}

/*
 * Every start says how members talk: without cluster.tls anyone who can reach
 * the raft port can join the conversation (forge entries, votes, a leader
 * change), so plain TCP is a warning each time, not once.
 */
static void log_cluster_transport(struct agent *a)
{
	char warn[768], q[800];

	if (!node_tls(&a->node)) {
		log_warn("raft transport is plain TCP: cluster.tls is not set, so anyone who can reach "
			 "raft_address can take part in the cluster; set cluster.tls {ca, cert, key} "
			 "(canopyctl certs)",
			 "transport=plain raft_address=%s", a->cfg.node.raft_address);
		return;
	}
	log_info("raft transport is mutual TLS", "transport=tls ca=%s cert=%s", a->cfg.cluster.tls_ca,
		 a->cfg.cluster.tls_cert);
	if (node_tls_check_identity(&a->node, warn, sizeof warn) != 0)
		log_warn("this node's certificate will be refused by its peers", "reason=%s",
			 log_quote(q, sizeof q, warn));
}

/* Compile one mapping section; errors name the config file, line, rule and column. */
static int compile_one(const struct config *c, const struct config_mapping *m, unsigned n,
		       enum object_type type, const char *what, struct mapping **out, char *errmsg,
		       size_t errlen)
{
	struct mapping_rule_text rules[CONFIG_MAX_MAPPINGS];
	char err[768];
	unsigned i;
	int rv;

	bool active = false;
	for (i = 0; i < n; i++) {
		rules[i].path = m[i].attr;
		rules[i].expr = m[i].expr;
		rules[i].line = m[i].line;
		active |= strcasecmp(m[i].attr, "active") == 0;
	}
	/* kind ad: a user is active unless userAccountControl has ACCOUNTDISABLE
	 * (0x2, MS-ADTS 2.2.16), unless the mapping says otherwise */
	if (type == OBJECT_USER && !active && n < CONFIG_MAX_MAPPINGS && c->source.kind == CONFIG_SOURCE_AD)
		rules[n++] = (struct mapping_rule_text){"active", "Not(CBool(BitAnd([userAccountControl], 2)))", 0};
	rv = mapping_compile(out, type, what, rules, n, err, sizeof err);
	if (rv != 0)
		snprintf(errmsg, errlen, "%s: %s", c->path, err);
	/* SelectUniqueValue asks the target which candidates are taken
	 * (target.h, checks_taken): the SCIM and Entra targets can answer */
	if (rv == 0 && mapping_has_unique(*out) && c->target.kind != CONFIG_TARGET_SCIM &&
	    c->target.kind != CONFIG_TARGET_ENTRA) {
		snprintf(errmsg, errlen, "%s: %s: SelectUniqueValue is not supported with target.kind %s: it must "
			 "ask the target which candidates are taken, which this target cannot answer",
			 c->path, what, config_target_kind_name(c->target.kind));
		mapping_free(*out);
		*out = NULL;
		rv = -EINVAL;
	}
	return rv;
}

/* The mappings of configuration `c` into *user, *group. */
static int compile_config_mappings(const struct config *c, struct mapping **user, struct mapping **group,
				   char *errmsg, size_t errlen)
{
	int rv = compile_one(c, c->mapping.user, c->mapping.n_user, OBJECT_USER, "mapping.user", user, errmsg,
			     errlen);
	if (rv != 0)
		return rv;
	rv = compile_one(c, c->mapping.group, c->mapping.n_group, OBJECT_GROUP, "mapping.group", group, errmsg,
			 errlen);
	if (rv != 0) {
		mapping_free(*user);
		*user = NULL;
	}
	return rv;
}

static int compile_mappings(struct agent *a, char *errmsg, size_t errlen)
{
	return compile_config_mappings(&a->cfg, &a->user_map, &a->group_map, errmsg, errlen);
}

/* The engine's operator-facing lines (quarantine, staged deletes, refused
 * objects, session restarts) go to the agent's log. */
/*
 * Target errors come per object, session restarts per retry: the first of each
 * kind is logged at once, the rest of ENGINE_LOG_WINDOW_S only counted and
 * summed up in one line ("N more in the last M s") when the window ends
 * (on_cursor_watch flushes it). State changes (quarantine, staged deletes)
 * are once each by construction and never held back; so are the source's
 * notices, each of which says something different under one msg.
 */
#define ENGINE_LOG_WINDOW_S 60
static const char *const limited_msgs[] = {"the target refused an object", "export session restarts",
					   "the target refused a group member (the group's other members went through)"};
static struct {
	struct log_limit lim;
	enum log_level level;
} engine_limits[sizeof limited_msgs / sizeof limited_msgs[0]];

static void engine_log_flush(bool all)
{
	struct timespec t;
	int64_t now;
	size_t i;

	clock_gettime(CLOCK_MONOTONIC, &t);
	now = (int64_t)t.tv_sec * 1000 + t.tv_nsec / 1000000;
	for (i = 0; i < sizeof limited_msgs / sizeof limited_msgs[0]; i++) {
		struct log_limit *l = &engine_limits[i].lim;
		if (l->window_start_ms != 0 && l->suppressed > 0 &&
		    (all || now - l->window_start_ms >= (int64_t)l->window_s * 1000))
			log_limit_flush(l, engine_limits[i].level, limited_msgs[i]);
	}
}

static void on_engine_log(void *data, int level, const char *msg, const char *detail)
{
	enum log_level lv = level <= 0 ? LOG_DEBUG : level == 1 ? LOG_INFO : level == 2 ? LOG_WARN : LOG_ERROR;
	char q[1024];
	size_t i;
	(void)data;
	for (i = 0; lv >= LOG_WARN && i < sizeof limited_msgs / sizeof limited_msgs[0]; i++)
		if (strcmp(msg, limited_msgs[i]) == 0) {
			engine_limits[i].lim.window_s = ENGINE_LOG_WINDOW_S;
			engine_limits[i].level = lv;
			log_limited(&engine_limits[i].lim, lv, msg, "detail=%s",
				    log_quote(q, sizeof q, detail ? detail : ""));
			return;
		}
	log_write(lv, msg, "detail=%s", log_quote(q, sizeof q, detail ? detail : ""));
}

/* target.tls and target.auth, for the SCIM target and the health probe. */
static int outbound_init(struct agent *a, char *errmsg, size_t errlen)
{
	const struct config_oauth2 *au = &a->cfg.target.auth;
	char why[512];
	int rv;

	if (!a->cfg.target.present)
		return 0;
	rv = http_tls_new(a->cfg.target.tls_ca, &a->target_tls, why, sizeof why);
	if (rv != 0) {
		snprintf(errmsg, errlen, "%s: %s", a->cfg.path, why);
		return rv;
	}
	if (au->kind == CONFIG_AUTH_NONE)
		return 0;
	struct oauth2_config oc = {
		.token_url = au->token_url,
		.client_id = au->client_id,
		.client_secret_file = au->client_secret_file[0] ? au->client_secret_file : NULL,
		.scope = au->scope[0] ? au->scope : NULL,
		.client_cert = au->client_cert[0] ? au->client_cert : NULL,
		.client_key = au->client_key[0] ? au->client_key : NULL,
		.tls = a->target_tls,
		.timeout_ms = a->cfg.target.timeout_ms < 10000 ? a->cfg.target.timeout_ms : 10000,
	};
	rv = oauth2_new(&oc, &a->target_auth, why, sizeof why);
	if (rv != 0) {
		snprintf(errmsg, errlen, "%s: %s", a->cfg.path, why);
		http_tls_free(a->target_tls);
		a->target_tls = NULL;
	}
	return rv;
}

static void outbound_free(struct agent *a)
{
	oauth2_free(a->target_auth); /* fetches still running keep their reference */
	a->target_auth = NULL;
	http_tls_free(a->target_tls);
	a->target_tls = NULL;
}

/* Credentials that would cross the network in clear text: allowed (a lab,
 * a TLS-terminating sidecar), but said at every start. */
static void outbound_warn(struct agent *a)
{
	const struct config *c = &a->cfg;

	if (c->target.present && strncasecmp(c->target.url, "http://", 7) == 0 &&
	    (c->target.token != NULL || c->target.auth.kind != CONFIG_AUTH_NONE))
		log_warn("target.url is http:// and requests carry a bearer token: anyone on the path can read "
			 "and reuse it; use https://", "url=%s", c->target.url);
	if (c->target.present && c->target.auth.kind != CONFIG_AUTH_NONE &&
	    strncasecmp(c->target.auth.token_url, "http://", 7) == 0)
		log_warn("target.auth.token_url is http://: the client credentials and the tokens travel in "
			 "clear text; use https://", "url=%s", c->target.auth.token_url);
	if (!c->source.present || c->source.password_file[0] == '\0' || c->source.tls)
		return;
	for (unsigned i = 0; i < c->source.n_urls; i++)
		if (strncasecmp(c->source.urls[i], "ldap://", 7) == 0)
			log_warn("source.url is ldap:// without source.tls: the bind password travels in clear "
				 "text; use ldaps:// or set source.tls (StartTLS)", "url=%s", c->source.urls[i]);
}

/* The source port: the OpenLDAP source (sync/source/openldap.h) or, for kind
 * ad, the Active Directory source (sync/source/ad.h) from source.*. */
static struct source *make_source(struct agent *a)
{
	const struct config *c = agent_sync_config(a);
	struct ldap_source_config lc;
	unsigned i;

	memset(&lc, 0, sizeof lc);
	for (i = 0; i < c->source.n_urls; i++)
		a->urls[i] = c->source.urls[i];
	lc.urls = a->urls;
	lc.n_urls = c->source.n_urls;
	lc.bind_dn = c->source.bind_dn[0] ? c->source.bind_dn : NULL;
	lc.password = c->source.password;
	lc.password_file = c->source.password_file[0] ? c->source.password_file : NULL;
	lc.user_base = c->source.users.base;
	lc.user_filter = c->source.users.filter;
	lc.group_base = c->source.groups.base[0] ? c->source.groups.base : NULL;
	lc.group_filter = c->source.groups.filter;
	lc.tls.starttls = c->source.tls;
	lc.tls.ca_file = c->source.tls_ca[0] ? c->source.tls_ca : NULL;
	lc.sasl.mech = c->source.sasl.mech == CONFIG_SASL_GSSAPI ? SOURCE_SASL_GSSAPI : SOURCE_SASL_NONE;
	lc.sasl.keytab = c->source.sasl.keytab;
	lc.sasl.principal = c->source.sasl.principal;
	if (c->source.kind == CONFIG_SOURCE_AD) {
		struct ad_source_config ac = {
			.urls = lc.urls, .n_urls = lc.n_urls, .bind_dn = lc.bind_dn, .password = lc.password,
			.password_file = lc.password_file, .user_base = lc.user_base, .user_filter = lc.user_filter,
			.group_base = lc.group_base, .group_filter = lc.group_filter, .tls = lc.tls,
			.poll_s = c->source.poll_s, .sasl = lc.sasl, .no_notify = !c->source.notify,
			.reconcile_s = c->source.reconcile_s,
		};
		return ad_source_new(&ac);
	}
	if (c->source.kind == CONFIG_SOURCE_LDAP_POLL) {
		struct ldap_poll_config pc = {
			.urls = lc.urls, .n_urls = lc.n_urls, .bind_dn = lc.bind_dn, .password = lc.password,
			.password_file = lc.password_file, .sasl = lc.sasl, .tls = lc.tls, .user_base = lc.user_base,
			.user_filter = lc.user_filter, .group_base = lc.group_base, .group_filter = lc.group_filter,
			.anchor_attribute = c->source.anchor_attribute, .poll_interval_s = c->source.poll_interval_s,
			.full_every = c->source.poll_full_every,
		};
		return ldap_poll_source_new(&pc);
	}
	return openldap_source_new(&lc);
}

/* The target port: the SCIM target from target.* (sync/target/scim.h), or
 * for kind entra the Microsoft Graph target (sync/target/entra.h), or in
 * mode bulkupload API-driven inbound provisioning (sync/target/entra_bulk.h). */
static struct target *make_target(struct agent *a)
{
	const struct config *c = agent_sync_config(a);
	struct scim_config sc;

	const char *user_attrs[CONFIG_MAX_MAPPINGS], *group_attrs[CONFIG_MAX_MAPPINGS];
	for (unsigned i = 0; i < c->mapping.n_user; i++)
		user_attrs[i] = c->mapping.user[i].attr;
	for (unsigned i = 0; i < c->mapping.n_group; i++)
		group_attrs[i] = c->mapping.group[i].attr;
	if (c->target.kind == CONFIG_TARGET_ENTRA && c->target.mode == CONFIG_MODE_BULKUPLOAD) {
		struct entra_bulk_config bc = {
			.url = c->target.url,
			.auth = a->target_auth,
			.tls = a->target_tls,
			.service_principal_id = c->target.service_principal_id,
			.job_id = c->target.job_id,
			.results_wait_ms = c->target.results_wait_ms,
			.max_attempts = c->target.max_attempts,
			.timeout_ms = c->target.timeout_ms,
		};
		return entra_bulk_target_new(&bc);
	}
	if (c->target.kind == CONFIG_TARGET_ENTRA) {
		/* the properties an update clears when they have no value: not
		 * those set at creation only, which updates leave out (entra.h) */
		const char *eu[CONFIG_MAX_MAPPINGS], *eg[CONFIG_MAX_MAPPINGS];
		size_t n_eu = 0, n_eg = 0;
		for (unsigned i = 0; i < c->mapping.n_user; i++)
			if (!mapping_creation_only(a->user_map, user_attrs[i]))
				eu[n_eu++] = user_attrs[i];
		for (unsigned i = 0; i < c->mapping.n_group; i++)
			if (!mapping_creation_only(a->group_map, group_attrs[i]))
				eg[n_eg++] = group_attrs[i];
		struct entra_config ec = {
			.url = c->target.url,
			.auth = a->target_auth,
			.tls = a->target_tls,
			.client_id = c->target.auth.client_id,
			.max_in_flight = c->target.max_in_flight,
			.max_attempts = c->target.max_attempts,
			.timeout_ms = c->target.timeout_ms,
			.max_requests_per_s = c->target.max_requests_per_s,
			.user_attrs = eu, /* copied */
			.n_user_attrs = n_eu,
			.group_attrs = eg,
			.n_group_attrs = n_eg,
		};
		return entra_target_new(&ec);
	}

	memset(&sc, 0, sizeof sc);
	sc.url = c->target.url;
	sc.token_file = c->target.token_file[0] ? c->target.token_file : NULL;
	sc.token = c->target.token;
	sc.max_in_flight = c->target.max_in_flight;
	sc.bulk = c->target.bulk;
	sc.timeout_ms = c->target.timeout_ms;
	sc.max_attempts = c->target.max_attempts;
	sc.tls = a->target_tls;
	sc.auth = a->target_auth;
	sc.external_id_prefix = c->target.external_id_prefix;
	/* same order as enum scim_patch_style (agent/config.h) */
	sc.patch_style = (enum scim_patch_style)c->target.patch_style;
	sc.strict_schema = c->target.strict_schema;
	sc.user_attrs = user_attrs; /* copied by scim_target_new */
	sc.n_user_attrs = c->mapping.n_user;
	sc.group_attrs = group_attrs;
	sc.n_group_attrs = c->mapping.n_group;
	sc.log = on_engine_log;
	sc.log_data = a;
	return scim_target_new(&sc);
}

/* The sync engine runs only when both a source and a target are configured. */
static int start_engine(struct agent *a, char *errmsg, size_t errlen)
{
	struct engine_config ec;
	struct engine_ports ports;
	const struct config *c = agent_sync_config(a);
	unsigned i;

	if (!c->source.present || !c->target.present)
		return 0;
	memset(&ec, 0, sizeof ec);
	ec.node_id = c->node.id;
	ec.data_dir = c->node.data_dir;
	for (i = 0; i < c->source.users.n_exclude; i++)
		a->user_exclude[i] = c->source.users.exclude[i];
	for (i = 0; i < c->source.groups.n_exclude; i++)
		a->group_exclude[i] = c->source.groups.exclude[i];
	ec.user_exclude = a->user_exclude;
	ec.n_user_exclude = c->source.users.n_exclude;
	ec.group_exclude = a->group_exclude;
	ec.n_group_exclude = c->source.groups.n_exclude;
	ec.disable_users = c->safety.deprovision == CONFIG_DEPROVISION_DISABLE;
	ec.nested_groups = c->target.nested_groups == CONFIG_NESTED_FLATTEN ? ENGINE_NESTED_FLATTEN
			   : c->target.nested_groups == CONFIG_NESTED_SKIP  ? ENGINE_NESTED_SKIP
									 : ENGINE_NESTED_NATIVE;
	ec.user_member_of = c->source.users.member_of[0] ? c->source.users.member_of : NULL;
	ec.member_attr = c->source.groups.member_attribute[0] ? c->source.groups.member_attribute : NULL;
	ec.member_value = c->source.groups.member_value[0] ? c->source.groups.member_value : NULL;
	ec.user_map = a->user_map;
	ec.group_map = a->group_map;
	ec.delete_threshold = c->safety.delete_threshold;
	ec.delete_threshold_percent = c->safety.delete_threshold_percent;
	ec.delete_window_s = c->safety.delete_window_s;
	ec.delete_stop = c->safety.on_threshold == CONFIG_ON_THRESHOLD_STOP;
	ec.provlog_max_bytes = c->log.provisioning_max_bytes;
	ec.provlog_keep = c->log.provisioning_keep;
	ec.log = on_engine_log;
	ec.log_data = a;
	ports.source = make_source(a);
	ports.target = make_target(a);
	ports.log = raft_replog_new(&a->node, &a->state);
	return engine_init(&a->engine, &a->loop, &ports, &a->state, &ec, errmsg, errlen);
}

/*
 * What start-up checks of the configuration beyond config_load(): the
 * target's CA file and OAuth2 credentials (outbound_init), the source kind
 * and the mapping expressions. Shared by start() and agent_check_config()
 * so that --check-config refuses exactly what a start would. On success the
 * outbound state and the mappings are held by `a`.
 */
/*
 * cluster.tls: the CA, certificate and key loaded into a TLS context and
 * checked against each other the way node_start() will load them
 * (raft/transport_tls.h), then released. config_load() checks only that they
 * are readable and the key's mode; a certificate that is not PEM or a key of
 * another certificate would otherwise pass --check-config and fail the start.
 */
static int check_cluster_tls(struct agent *a, char *errmsg, size_t errlen)
{
	struct tls_transport_config tc;
	struct raft_uv_transport t;
	char why[512];
	int rv;

	if (!a->cfg.cluster.tls_ca[0])
		return 0;
	memset(&tc, 0, sizeof tc);
	tc.ca_file = a->cfg.cluster.tls_ca;
	tc.cert_file = a->cfg.cluster.tls_cert;
	tc.key_file = a->cfg.cluster.tls_key;
	/* the loop is kept, not used, until libraft calls the transport's init */
	rv = tls_transport_init(&t, NULL, &tc, why, sizeof why);
	if (rv != 0) {
		snprintf(errmsg, errlen, "%s: %s", a->cfg.path, why);
		return rv;
	}
	tls_transport_free(&t);
	return 0;
}

static int check_config(struct agent *a, char *errmsg, size_t errlen)
{
	int rv = check_cluster_tls(a, errmsg, errlen);
	if (rv != 0)
		return rv;
	rv = outbound_init(a, errmsg, errlen);
	if (rv != 0)
		return rv;
	if (!a->cfg.source.present || !a->cfg.target.present)
		return 0;
	if (a->cfg.source.kind != CONFIG_SOURCE_OPENLDAP && a->cfg.source.kind != CONFIG_SOURCE_AD &&
	    a->cfg.source.kind != CONFIG_SOURCE_LDAP_POLL) {
		snprintf(errmsg, errlen, "%s: source.kind %s: this canopy has no such source (openldap, ad or ldap-poll)",
			 a->cfg.path, config_source_kind_name(a->cfg.source.kind));
		rv = -ENOTSUP;
		goto err_after_outbound;
	}
	rv = compile_mappings(a, errmsg, errlen);
	if (rv != 0)
		goto err_after_outbound;
	return 0;

err_after_outbound:
	outbound_free(a);
	return rv;
}

static void checked_config_free(struct agent *a)
{
	mapping_free(a->user_map);
	mapping_free(a->group_map);
	a->user_map = a->group_map = NULL;
	outbound_free(a);
	config_free(&a->cfg);
}

/* The checks after config_load*() returned `rv` into a->cfg; releases a. */
static int check_loaded(struct agent *a, int rv, char *errmsg, size_t errlen)
{
	if (rv == 0) {
		rv = check_config(a, errmsg, errlen);
		if (rv == 0)
			checked_config_free(a);
		else
			config_free(&a->cfg);
	}
	free(a);
	return rv;
}

int agent_check_config(const char *config_path, char *errmsg, size_t errlen)
{
	struct agent *a = xcalloc(1, sizeof *a);
	return check_loaded(a, config_load(config_path, &a->cfg, errmsg, errlen), errmsg, errlen);
}

int agent_check_config_text(const char *name, const char *dir, const char *text, size_t len, char *errmsg,
			    size_t errlen)
{
	struct agent *a = xcalloc(1, sizeof *a);
	return check_loaded(a, config_load_text(name, dir, text, len, &a->cfg, errmsg, errlen), errmsg, errlen);
}

const struct config *agent_sync_config(const struct agent *a)
{
	return a->sync_cfg ? a->sync_cfg : &a->cfg;
}

/* The export may start: leading, after the barrier, with the cluster id
 * committed (agent/identity.h). */
static void resume_export(struct agent *a)
{
	if (a->engine && !a->stopping && !a->identity.failed && node_leader_ready(&a->node) &&
	    cluster_id_get(&a->state) != NULL)
		engine_lead(a->engine);
}

static void stop_after_engine(struct agent *a);

/* The old engine is released: build the new one from the waiting
 * configuration, and resume exporting when this node leads. */
static void on_rebuild_closed(void *data)
{
	struct agent *a = data;
	char err[1024], q[1100];

	a->rebuilding = false;
	mapping_free(a->user_map);
	mapping_free(a->group_map);
	a->user_map = a->rebuild_user;
	a->group_map = a->rebuild_group;
	a->rebuild_user = a->rebuild_group = NULL;
	if (a->sync_cfg) {
		config_free(a->sync_cfg);
		free(a->sync_cfg);
	}
	a->sync_cfg = a->rebuild_cfg;
	a->rebuild_cfg = NULL;
	if (a->stopping) {
		if (a->close_after_rebuild)
			stop_after_engine(a);
		return;
	}
	if (start_engine(a, err, sizeof err) != 0) {
		log_error("cannot start the sync engine with the new configuration; not exporting", "error=%s",
			  log_quote(q, sizeof q, err));
		return;
	}
	resume_export(a);
}

int agent_engine_rebuild(struct agent *a, struct config *cfg, char *errmsg, size_t errlen)
{
	struct mapping *user = NULL, *group = NULL;
	struct engine *old = a->engine;
	int rv = 0;

	if (cfg->source.present && cfg->target.present)
		rv = compile_config_mappings(cfg, &user, &group, errmsg, errlen);
	if (rv != 0 || a->stopping) {
		config_free(cfg);
		free(cfg);
		return rv != 0 ? rv : -ECANCELED;
	}
	/* A rebuild already waiting for the old engine: this one replaces it. */
	mapping_free(a->rebuild_user);
	mapping_free(a->rebuild_group);
	if (a->rebuild_cfg) {
		config_free(a->rebuild_cfg);
		free(a->rebuild_cfg);
	}
	a->rebuild_cfg = cfg;
	a->rebuild_user = user;
	a->rebuild_group = group;
	if (a->rebuilding)
		return 0;
	a->engine = NULL; /* nothing else may use or close it now */
	if (old == NULL) {
		on_rebuild_closed(a);
		return 0;
	}
	a->rebuilding = true;
	engine_close(old, on_rebuild_closed, a);
	return 0;
}

/* *config_error: the configuration was refused (AGENT_EXIT_CONFIG). */
static int start(struct agent *a, const char *path, bool *config_error, char *errmsg, size_t errlen)
{
	struct node_member members[CONFIG_MAX_MEMBERS];
	struct node_config nc;
	unsigned i;
	int rv;

	*config_error = true;
	rv = config_load(path, &a->cfg, errmsg, errlen);
	if (rv != 0)
		return rv;
	log_setup(a->cfg.node.id, a->cfg.log.level);
	log_set_format(a->cfg.log.format);
	rv = check_config(a, errmsg, errlen);
	if (rv != 0)
		goto err_after_load;
	*config_error = false;
	rv = identity_load(a, errmsg, errlen);
	if (rv != 0)
		goto err_after_config;
	rv = replconf_load(a, errmsg, errlen);
	if (rv != 0)
		goto err_after_config;

	rv = uv_loop_init(&a->loop);
	if (rv != 0) {
		snprintf(errmsg, errlen, "event loop: %s", uv_strerror(rv));
		goto err_after_config;
	}
	state_init(&a->state);

	for (i = 0; i < a->cfg.cluster.n_members; i++) {
		members[i].id = a->cfg.cluster.members[i].id;
		members[i].address = a->cfg.cluster.members[i].address;
	}
	memset(&nc, 0, sizeof nc);
	nc.id = a->cfg.node.id;
	nc.address = a->cfg.node.raft_address;
	nc.data_dir = a->cfg.node.data_dir;
	nc.members = members;
	nc.n_members = a->cfg.cluster.n_members;
	nc.election_timeout_ms = a->cfg.cluster.election_timeout_ms;
	nc.heartbeat_ms = a->cfg.cluster.heartbeat_ms;
	nc.pre_vote = a->cfg.cluster.pre_vote;
	nc.snapshot_threshold = a->cfg.cluster.snapshot_threshold;
	nc.snapshot_trailing = a->cfg.cluster.snapshot_trailing;
	nc.snapshot_log_bytes = (size_t)a->cfg.cluster.snapshot_log_mib << 20;
	nc.never_bootstrap = a->cfg.cluster.bootstrap == CONFIG_BOOTSTRAP_NO;
	if (a->cfg.cluster.tls_ca[0]) {
		nc.tls_ca = a->cfg.cluster.tls_ca;
		nc.tls_cert = a->cfg.cluster.tls_cert;
		nc.tls_key = a->cfg.cluster.tls_key;
	}
	nc.transport_log = on_transport_log;
	nc.on_peer_closed = on_peer_closed;
	nc.transport_arg = a;
	rv = node_start(&a->node, &a->loop, &nc, state_machine(&a->state), errmsg, errlen);
	if (rv != 0)
		goto err_after_state;
	a->node.data = a;
	a->node.on_leader_change = on_leader_change;

	rv = start_engine(a, errmsg, errlen);
	if (rv != 0)
		goto err_after_node;

	rv = http_start(&a->http, &a->loop, a->cfg.node.control_address, control_handle, a,
			errmsg, errlen);
	if (rv != 0)
		goto err_after_engine;

	rv = health_start(&a->health, a, errmsg, errlen);
	if (rv != 0)
		goto err_after_http;
	rv = member_view_start(&a->member_view, a, errmsg, errlen);
	if (rv != 0)
		goto err_after_health;

	uv_timer_init(&a->loop, &a->cursor_watch);
	a->cursor_watch.data = a;
	uv_timer_start(&a->cursor_watch, on_cursor_watch, 0, 250);
	uv_timer_init(&a->loop, &a->watchdog);
	uv_signal_init(&a->loop, &a->sigterm);
	uv_signal_init(&a->loop, &a->sigint);
	a->sigterm.data = a->sigint.data = a;
	uv_signal_start(&a->sigterm, on_signal, SIGTERM);
	uv_signal_start(&a->sigint, on_signal, SIGINT);
	uv_signal_init(&a->loop, &a->sighup);
	a->sighup.data = a;
	uv_signal_start(&a->sighup, on_sighup, SIGHUP);
	identity_start(a);
	replconf_start(a);
	member_watch_start(a);
	leader_watch_start(a);
	versions_start(a);
	control_drill_start(a);
	/* a quarter of the election timeout: well before followers give up on
	 * this node (loop_watch.h) */
	loop_watch_start(&a->loop_watch, &a->loop, a->cfg.cluster.election_timeout_ms / 4);
	raft_story_start(&a->raft_story, &a->loop, &a->node);
	return 0;

err_after_health:
	health_stop(a->health);
	a->health = NULL;
err_after_http:
	http_close(&a->http, NULL);
err_after_engine:
	if (a->engine)
		engine_close(a->engine, NULL, NULL);
	a->engine = NULL;
err_after_node:
	node_close(&a->node, NULL);
	uv_run(&a->loop, UV_RUN_DEFAULT);
err_after_state:
	state_close(&a->state);
	uv_loop_close(&a->loop);
err_after_config:
	replconf_free(a);
	checked_config_free(a);
	return rv;
err_after_load:
	config_free(&a->cfg);
	return rv;
}

int agent_run(const char *config_path, char *errmsg, size_t errlen)
{
	struct agent *a;
	struct node_status st;
	bool config_error;
	uint64_t wd;
	int rv;

	signal(SIGPIPE, SIG_IGN); /* a peer closing a socket is an error code, not a death */
	a = xcalloc(1, sizeof *a);
	a->started_wall = time(NULL);
	rv = start(a, config_path, &config_error, errmsg, errlen);
	if (rv != 0) {
		free(a);
		return config_error ? AGENT_EXIT_CONFIG : 1;
	}
	node_status(&a->node, &st);
	log_info("started", "cluster=%s raft_address=%s control_address=%s data_dir=%s term=%llu "
			    "last_index=%llu bootstrapped=%s",
		 a->cfg.cluster.name, a->cfg.node.raft_address, a->cfg.node.control_address,
		 a->cfg.node.data_dir, (unsigned long long)st.term,
		 (unsigned long long)st.last_index, node_bootstrapped(&a->node) ? "yes" : "no");
	if (node_storage_warning(&a->node)[0]) {
		char q[600];
		log_warn("storage", "data_dir=%s detail=%s", a->cfg.node.data_dir,
			 log_quote(q, sizeof q, node_storage_warning(&a->node)));
	}
	if (a->cfg.control.token == NULL)
		log_warn("the control API takes mutations (deletes approve, cluster add/remove/transfer, "
			 "resync) from anyone who can connect to it: set control.token_file",
			 "control_address=%s", a->cfg.node.control_address);
	outbound_warn(a);
	agent_recover_announce(a->cfg.node.data_dir);
	provlog_on_health_change(on_provlog_health, a);
	log_cluster_transport(a);
	if (agent_bootstrap_mode(a) == AGENT_BOOTSTRAP_IMPLICIT)
		log_warn("cluster.members lists only this node and cluster.bootstrap is not set: with an "
			 "empty data dir this node creates a new one-node cluster of its own and writes "
			 "to the target; set cluster.bootstrap: true to confirm, or false to wait for "
			 "canopyctl cluster add",
			 "bootstrapped=%s data_dir=%s", node_bootstrapped(&a->node) ? "yes" : "no",
			 a->cfg.node.data_dir);
	else if (agent_bootstrap_mode(a) == AGENT_BOOTSTRAP_NEVER && st.last_index == 0)
		log_info("not bootstrapping (cluster.bootstrap: false): waiting to be added with "
			 "canopyctl cluster add", NULL);

	/* Ready: the node runs and the control API listens (both in start()).
	 * Type=notify units are "started" from here, so `systemctl start`
	 * returns once canopyctl can reach this node. */
	notify("READY=1\nSTATUS=running: control API on the control_address");
	wd = sdnotify_watchdog_usec();
	if (wd > 0) {
		/* half the interval, as sd_watchdog_enabled(3) advises: one late
		 * ping is not yet a missed deadline */
		uint64_t ms = wd / 2000 > 0 ? wd / 2000 : 1;
		uv_timer_start(&a->watchdog, on_watchdog, 0, ms);
		log_info("service manager watchdog", "interval_ms=%llu ping_ms=%llu",
			 (unsigned long long)(wd / 1000), (unsigned long long)ms);
	}

	uv_run(&a->loop, UV_RUN_DEFAULT);

	rv = uv_loop_close(&a->loop);
	if (rv != 0)
		log_warn("event loop closed with handles open", "error=%s", uv_err_name(rv));
	state_close(&a->state);
	replconf_free(a);
	if (a->sync_cfg) {
		config_free(a->sync_cfg);
		free(a->sync_cfg);
	}
	checked_config_free(a);
	rv = a->exit_code;
	if (rv != 0)
		snprintf(errmsg, errlen, "%s", a->exit_reason);
	free(a);
	return rv;
}
