/*
 * agent/replconf.c -- the replicated sync configuration on this node, and
 * its control API (see replconf.h):
 *
 *   GET  /v1/config            the running replicated configuration
 *   GET  /v1/config/history    its versions
 *   POST /v1/config/apply      {"name", "dir", "yaml", "dry_run"} (leader)
 *   POST /v1/config/rollback   {"version", "dry_run"} (leader)
 */
#include "agent/replconf.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <libgen.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <jansson.h>

#include "agent/agent.h"
#include "agent/config_sync.h"
#include "agent/log.h"
#include "common/xalloc.h"
#include "sync/state/cluster.h"

#define KEY_CUR "g:cur"

/* ---- this node's file ----------------------------------------------------------- */

static int read_text(const char *path, char **out, size_t *outlen, char *errmsg, size_t errlen)
{
	struct stat st;
	char *buf;
	ssize_t n;
	size_t got = 0;
	int fd = open(path, O_RDONLY | O_CLOEXEC), rv;

	if (fd < 0 || fstat(fd, &st) != 0) {
		rv = -errno;
		snprintf(errmsg, errlen, "%s: %s", path, strerror(errno));
		if (fd >= 0)
			close(fd);
		return rv;
	}
	if (st.st_size > CONFIG_MAX_FILE_BYTES) {
		snprintf(errmsg, errlen, "%s: larger than %d bytes", path, CONFIG_MAX_FILE_BYTES);
		close(fd);
		return -EFBIG;
	}
	buf = xmalloc((size_t)st.st_size + 1);
	while (got < (size_t)st.st_size && (n = read(fd, buf + got, (size_t)st.st_size - got)) > 0)
		got += (size_t)n;
	close(fd);
	buf[got] = '\0';
	*out = buf;
	*outlen = got;
	return 0;
}

int replconf_load(struct agent *a, char *errmsg, size_t errlen)
{
	struct replconf *r = &a->replconf;
	char tmp[PATH_MAX], real[PATH_MAX], err[512];
	int rv;

	rv = read_text(a->cfg.path, &r->file_text, &r->file_len, errmsg, errlen);
	if (rv != 0)
		return rv;
	snprintf(tmp, sizeof tmp, "%s", a->cfg.path);
	if (realpath(dirname(tmp), real) == NULL) {
		rv = -errno;
		snprintf(errmsg, errlen, "%s: cannot resolve its directory: %s", a->cfg.path, strerror(errno));
		goto err_after_read;
	}
	snprintf(r->dir, sizeof r->dir, "%s", real);
	rv = config_sync_extract(r->file_text, r->file_len, &r->file_sync, NULL, err, sizeof err);
	if (rv != 0) {
		snprintf(errmsg, errlen, "%s: %s", a->cfg.path, err);
		goto err_after_read;
	}
	r->running = xstrdup(r->file_sync);
	r->seen = xstrdup("");
	return 0;

err_after_read:
	free(r->file_text);
	r->file_text = NULL;
	return rv;
}

void replconf_free(struct agent *a)
{
	struct replconf *r = &a->replconf;

	free(r->file_text);
	free(r->file_sync);
	free(r->seen);
	free(r->repl_yaml);
	free(r->running);
	memset(r, 0, sizeof *r);
}

/* ---- the replicated value -------------------------------------------------------- */

struct version {
	uint64_t version, origin;
	int64_t at;
	const char *summary, *yaml; /* borrowed from `o` */
	json_t *o;
};

/* Decode a g:cur / g:h: value; false when it is not one (a newer canopy's
 * shape is still read for the fields it has). */
static bool version_decode(const void *v, size_t len, struct version *out)
{
	json_error_t jerr;
	json_int_t ver = 0, origin = 0, at = 0;

	memset(out, 0, sizeof *out);
	out->o = json_loadb(v, len, 0, &jerr);
	if (out->o == NULL || json_unpack_ex(out->o, &jerr, 0, "{s:I,s?I,s?I,s?s,s:s}", "version", &ver, "origin",
					     &origin, "at", &at, "summary", &out->summary, "yaml", &out->yaml) != 0 ||
	    ver <= 0) {
		json_decref(out->o);
		out->o = NULL;
		return false;
	}
	out->version = (uint64_t)ver;
	out->origin = (uint64_t)origin;
	out->at = at;
	return true;
}

static bool current(struct agent *a, struct version *out)
{
	const void *v;
	size_t len;

	return state_get(&a->state, KEY_CUR, strlen(KEY_CUR), &v, &len) && version_decode(v, len, out);
}

static bool historic(struct agent *a, uint64_t n, struct version *out)
{
	char key[40];
	const void *v;
	size_t len, klen = (size_t)snprintf(key, sizeof key, "g:h:%" PRIu64, n);

	return state_get(&a->state, key, klen, &v, &len) && version_decode(v, len, out);
}

/* The keys of a diff, comma-separated, for a log line (malloc'd). */
static char *keys_of(const json_t *diff)
{
	size_t i, len = 0, cap = 64;
	char *s = xmalloc(cap);
	json_t *c;

	s[0] = '\0';
	json_array_foreach(diff, i, c) {
		const char *k = json_string_value(json_object_get(c, "key"));
		size_t n = strlen(k ? k : "");
		if (len + n + 2 > cap) {
			cap = (len + n + 2) * 2;
			s = xrealloc(s, cap);
		}
		len += (size_t)snprintf(s + len, cap - len, "%s%s", i ? "," : "", k ? k : "");
	}
	return s;
}

/* An entry setting g:cur and g:h:<version> (and resetting the cursor for a
 * resync), proposed through the node. */
static int propose(struct agent *a, uint64_t version, const char *yaml, const char *summary, bool resync,
		   node_apply_cb cb, void *arg)
{
	struct state_batch b;
	struct raft_buffer buf;
	char key[40];
	json_t *o = xcheck(json_pack("{s:I,s:I,s:I,s:s,s:s}", "version", (json_int_t)version, "at",
				     (json_int_t)time(NULL), "origin", (json_int_t)a->cfg.node.id, "summary", summary,
				     "yaml", yaml));
	char *text = xcheck(json_dumps(o, JSON_COMPACT));
	size_t klen;
	int rv;

	json_decref(o);
	state_batch_init(&b);
	state_batch_put(&b, KEY_CUR, strlen(KEY_CUR), text, strlen(text));
	klen = (size_t)snprintf(key, sizeof key, "g:h:%" PRIu64, version);
	state_batch_put(&b, key, klen, text, strlen(text));
	if (version > REPLCONF_HISTORY_MAX) {
		klen = (size_t)snprintf(key, sizeof key, "g:h:%" PRIu64, version - REPLCONF_HISTORY_MAX);
		state_batch_del(&b, key, klen);
	}
	if (resync)
		state_batch_cursor(&b, "", 0);
	free(text);
	rv = state_batch_encode(&b, &buf);
	state_batch_close(&b);
	if (rv != 0)
		return RAFT_INVALID;
	rv = node_apply(&a->node, &buf, cb, arg);
	if (rv != 0)
		raft_free(buf.base);
	return rv;
}

/* ---- taking a new version on this node ------------------------------------------- */

/* Build the engine from this node's file with the replicated sections `yaml`. */
static void reconfigure(struct agent *a, const char *yaml, uint64_t version)
{
	struct replconf *r = &a->replconf;
	struct config *cfg;
	char *merged = NULL, err[1024], q[1100];
	int rv;

	if (r->running != NULL && strcmp(r->running, yaml) == 0)
		return; /* the engine runs these sections already */
	rv = config_sync_merge(r->file_text, r->file_len, yaml, strlen(yaml), &merged, err, sizeof err);
	cfg = xcalloc(1, sizeof *cfg);
	if (rv == 0)
		rv = config_load_text(a->cfg.path, r->dir, merged, strlen(merged), cfg, err, sizeof err);
	free(merged);
	if (rv != 0) {
		free(cfg);
		log_error("cannot use the replicated configuration with this node's file; keeping the one it runs",
			  "version=%" PRIu64 " error=%s", version, log_quote(q, sizeof q, err));
		identity_resume(a); /* a leader stopped exporting for the change: go on with the old one */
		return;
	}
	rv = agent_engine_rebuild(a, cfg, err, sizeof err);
	if (rv != 0) {
		if (rv != -ECANCELED) {
			log_error("cannot use the replicated configuration; keeping the one it runs",
				  "version=%" PRIu64 " error=%s", version, log_quote(q, sizeof q, err));
			identity_resume(a);
		}
		return;
	}
	free(r->running);
	r->running = xstrdup(yaml);
	log_info("sync engine rebuilt with the replicated configuration", "version=%" PRIu64 " leading=%s",
		 version, node_state(&a->node) == NODE_LEADER ? "yes" : "no");
}

static void take(struct agent *a, const struct version *v)
{
	struct replconf *r = &a->replconf;
	const char *before = r->repl_yaml ? r->repl_yaml : r->running;
	char err[512], q[1100], *keys;
	json_t *diff;

	diff = config_sync_diff(before, strlen(before), v->yaml, strlen(v->yaml), err, sizeof err);
	keys = diff ? keys_of(diff) : xstrdup("?");
	log_info("configuration applied", "version=%" PRIu64 " origin=%" PRIu64 " changed_keys=%s", v->version,
		 v->origin, log_quote(q, sizeof q, keys));
	free(keys);
	json_decref(diff);
	diff = config_sync_diff(r->file_sync, strlen(r->file_sync), v->yaml, strlen(v->yaml), err, sizeof err);
	if (diff != NULL && json_array_size(diff) > 0) {
		keys = keys_of(diff);
		log_warn("this node's file differs from the replicated configuration in its sync sections; using "
			 "the replicated one (canopyctl config show)",
			 "version=%" PRIu64 " keys=%s", v->version, log_quote(q, sizeof q, keys));
		free(keys);
		r->warned_file = true;
	} else {
		r->warned_file = false;
	}
	json_decref(diff);
	free(r->repl_yaml);
	r->repl_yaml = xstrdup(v->yaml);
	r->version = v->version;
	reconfigure(a, v->yaml, v->version);
}

static void on_seeded(void *arg, int status)
{
	struct agent *a = arg;

	a->replconf.seeding = false;
	if (status != 0) {
		a->replconf.seed_after = uv_now(&a->loop) + 1000;
		if (status != RAFT_LEADERSHIPLOST && status != RAFT_NOTLEADER)
			log_warn("could not seed the replicated configuration", "error=\"%s\"", raft_strerror(status));
	}
}

/* A leader of a cluster without g:cur seeds it from its own file. */
static void maybe_seed(struct agent *a)
{
	struct replconf *r = &a->replconf;
	int rv;

	if (r->seeding || a->stopping || !a->cfg.source.present || !a->cfg.target.present ||
	    node_state(&a->node) != NODE_LEADER || !node_leader_ready(&a->node) ||
	    cluster_id_get(&a->state) == NULL || uv_now(&a->loop) < r->seed_after)
		return;
	log_info("seeding the replicated configuration from this node's file", "version=1 file=%s", a->cfg.path);
	rv = propose(a, 1, r->file_sync, "seeded from this node's file", false, on_seeded, a);
	if (rv != 0) {
		r->seed_after = uv_now(&a->loop) + 1000;
		log_warn("could not seed the replicated configuration", "error=\"%s\"", raft_strerror(rv));
		return;
	}
	r->seeding = true;
}

/* After every loop iteration: entries are applied in libuv callbacks, so a
 * new g:cur is taken before anything else runs on its account. */
static void on_watch(uv_check_t *h)
{
	struct agent *a = h->data;
	struct replconf *r = &a->replconf;
	struct version v;
	const void *val;
	size_t len;

	if (!state_get(&a->state, KEY_CUR, strlen(KEY_CUR), &val, &len)) {
		maybe_seed(a);
		return;
	}
	if (len == r->seen_len && memcmp(val, r->seen, len) == 0)
		return;
	free(r->seen);
	r->seen = xmalloc(len + 1);
	memcpy(r->seen, val, len);
	r->seen[len] = '\0';
	r->seen_len = len;
	if (!version_decode(val, len, &v)) {
		log_warn("the replicated configuration is not readable by this canopy; keeping the one it runs",
			 NULL);
		return;
	}
	/* a different text under the same version: two seeds raced (a leader
	 * that lost its term had one in flight); the state's text is the one */
	if (v.version != r->version || r->repl_yaml == NULL || strcmp(v.yaml, r->repl_yaml) != 0)
		take(a, &v);
	json_decref(v.o);
}

void replconf_start(struct agent *a)
{
	uv_check_init(&a->loop, &a->replconf.watch);
	a->replconf.watch.data = a;
	uv_check_start(&a->replconf.watch, on_watch);
	a->replconf.started = true;
}

void replconf_close(struct agent *a)
{
	if (a->replconf.started)
		uv_close((uv_handle_t *)&a->replconf.watch, NULL);
	a->replconf.started = false;
}

json_t *replconf_status_json(struct agent *a)
{
	return xcheck(json_pack("{s:I,s:b}", "version", (json_int_t)a->replconf.version, "file_differs",
				a->replconf.warned_file));
}

/* ---- the control API ------------------------------------------------------------- */

static json_t *time_json(int64_t at)
{
	return control_time_or_null((time_t)at);
}

static void handle_show(struct agent *a, struct http_reply *reply)
{
	struct version v;

	if (!current(a, &v)) {
		http_reply_error(reply, 404, "no replicated configuration yet: each node runs its own file (the "
					     "first leader that exports seeds it)");
		return;
	}
	control_reply_json(reply, 200,
			   json_pack("{s:I,s:o,s:I,s:s,s:s}", "version", (json_int_t)v.version, "at", time_json(v.at),
				     "origin", (json_int_t)v.origin, "summary", v.summary ? v.summary : "", "yaml",
				     v.yaml));
	json_decref(v.o);
}

static void handle_history(struct agent *a, struct http_reply *reply)
{
	struct version cur, v;
	json_t *list = xcheck(json_array());
	uint64_t n;

	if (current(a, &cur)) {
		for (n = cur.version > REPLCONF_HISTORY_MAX ? cur.version - REPLCONF_HISTORY_MAX + 1 : 1;
		     n <= cur.version; n++) {
			if (!historic(a, n, &v))
				continue;
			if (json_array_append_new(list, xcheck(json_pack("{s:I,s:o,s:I,s:s}", "version",
									(json_int_t)v.version, "at", time_json(v.at),
									"origin", (json_int_t)v.origin, "summary",
									v.summary ? v.summary : ""))) != 0)
				xoom("json_array_append_new");
			json_decref(v.o);
		}
		json_decref(cur.o);
	}
	control_reply_json(reply, 200, json_pack("{s:o}", "versions", list));
}

/* An apply waiting for its entry. */
struct apply_wait {
	struct agent *a;
	struct http_pending *p;
	json_t *answer;
	bool resync;
};

static void on_applied(void *arg, int status)
{
	struct apply_wait *w = arg;
	struct agent *a = w->a;
	struct http_reply reply = {0};

	a->replconf.proposing = false;
	if (status == 0) {
		json_object_set_new(w->answer, "result", xcheck(json_string("committed")));
		control_reply_json(&reply, 200, w->answer);
	} else {
		json_decref(w->answer);
		http_reply_error(&reply, 503, "the configuration was not committed: %s (nothing changed; retry)",
				 raft_strerror(status));
		if (w->resync)
			identity_resume(a); /* it stopped exporting for the change */
	}
	http_finish(w->p, &reply);
	free(w);
}

/*
 * Validate, diff and (unless dry_run) commit the sync sections `sync` as the
 * next version. `label` names where they came from in errors.
 */
static void apply_sections(struct agent *a, const struct http_request *req, struct http_reply *reply,
			   const char *sync, bool dry_run, const char *what)
{
	struct replconf *r = &a->replconf;
	struct version cur;
	struct apply_wait *w;
	char *merged = NULL, err[1200], *summary;
	json_t *diff, *answer;
	bool resync;
	int rv;

	if (!current(a, &cur)) {
		http_reply_error(reply, 409, "no replicated configuration yet: the leader seeds it from its file once "
					     "it exports; retry then");
		return;
	}
	/* With this node's file, as every node will build it (a leader's file
	 * stands for the others': their node-local keys are their own). */
	rv = config_sync_merge(r->file_text, r->file_len, sync, strlen(sync), &merged, err, sizeof err);
	if (rv == 0)
		rv = agent_check_config_text(a->cfg.path, r->dir, merged, strlen(merged), err, sizeof err);
	free(merged);
	if (rv != 0) {
		http_reply_error(reply, 400, "%s: with node %" PRIu64 "'s file: %s", what, a->cfg.node.id, err);
		json_decref(cur.o);
		return;
	}
	diff = config_sync_diff(cur.yaml, strlen(cur.yaml), sync, strlen(sync), err, sizeof err);
	if (diff == NULL) {
		http_reply_error(reply, 500, "%s", err);
		json_decref(cur.o);
		return;
	}
	if (json_array_size(diff) == 0) {
		http_reply_error(reply, 409, "nothing changed: %s equals the running configuration (version %" PRIu64
					     "); nothing committed", what, cur.version);
		json_decref(diff);
		json_decref(cur.o);
		return;
	}
	resync = config_sync_needs_resync(diff);
	answer = xcheck(json_pack("{s:I,s:I,s:o,s:b,s:b}", "from_version", (json_int_t)cur.version, "version",
				  (json_int_t)(cur.version + 1), "changes", diff, "resync", resync, "dry_run", dry_run));
	if (dry_run) {
		json_object_set_new(answer, "result", xcheck(json_string("not committed (dry run)")));
		control_reply_json(reply, 200, answer);
		json_decref(cur.o);
		return;
	}
	if (r->proposing) {
		json_decref(answer);
		json_decref(cur.o);
		http_reply_error(reply, 409, "another configuration change is being committed; retry");
		return;
	}
	summary = config_sync_summary(diff);
	w = xcalloc(1, sizeof *w);
	w->a = a;
	w->answer = answer;
	w->resync = resync;
	/* No batch of the old configuration may commit a cursor after the
	 * reset: stop exporting first (its entries so far come before ours). */
	if (resync && a->engine)
		engine_follow(a->engine);
	w->p = http_defer(req);
	rv = propose(a, cur.version + 1, sync, summary, resync, on_applied, w);
	free(summary);
	json_decref(cur.o);
	if (rv != 0) {
		http_undefer(req);
		json_decref(answer);
		free(w);
		if (resync)
			identity_resume(a);
		http_reply_error(reply, 503, "the configuration was not committed: %s (nothing changed; retry)",
				 raft_strerror(rv));
		return;
	}
	r->proposing = true;
	log_info("configuration change proposed", "version=%" PRIu64 " resync=%s", cur.version + 1,
		 resync ? "yes" : "no");
}

int replconf_parse_apply_body(const char *body, size_t len, struct replconf_apply_body *out, char *errmsg,
			      size_t errlen)
{
	json_error_t jerr;
	json_t *y = NULL;
	int dry = 0;

	memset(out, 0, sizeof *out);
	out->o = json_loadb(body, len, 0, &jerr);
	if (out->o == NULL || json_unpack_ex(out->o, &jerr, JSON_STRICT, "{s:s,s:s,s:o,s?b}", "name", &out->name,
					     "dir", &out->dir, "yaml", &y, "dry_run", &dry) != 0 ||
	    (out->yaml = json_string_value(y)) == NULL) {
		snprintf(errmsg, errlen, "bad request body: %s (expected {\"name\", \"dir\", \"yaml\", \"dry_run\"})",
			 out->o != NULL && y != NULL ? "\"yaml\" is not a string" : jerr.text);
		json_decref(out->o);
		memset(out, 0, sizeof *out);
		return -EINVAL;
	}
	out->yaml_len = json_string_length(y);
	out->dry_run = dry != 0;
	return 0;
}

int replconf_parse_rollback_body(const char *body, size_t len, uint64_t *version, bool *dry_run, char *errmsg,
				 size_t errlen)
{
	json_error_t jerr;
	json_int_t n = 0;
	int dry = 0, rv = 0;
	json_t *o = json_loadb(body, len, 0, &jerr);

	if (o == NULL || json_unpack_ex(o, &jerr, JSON_STRICT, "{s:I,s?b}", "version", &n, "dry_run", &dry) != 0) {
		snprintf(errmsg, errlen, "bad request body: %s (expected {\"version\": N, \"dry_run\": false})",
			 jerr.text);
		rv = -EINVAL;
	} else if (n <= 0) {
		snprintf(errmsg, errlen, "bad request body: \"version\" must be 1 or more");
		rv = -EINVAL;
	} else {
		*version = (uint64_t)n;
		*dry_run = dry != 0;
	}
	json_decref(o);
	return rv;
}

static void handle_apply(struct agent *a, const struct http_request *req, struct http_reply *reply)
{
	struct replconf_apply_body b;
	bool has_node = false;
	char err[1200], *sync = NULL;

	if (replconf_parse_apply_body(req->body, req->body_len, &b, err, sizeof err) != 0) {
		http_reply_error(reply, 400, "%s", err);
		return;
	}
	if (control_redirect_to_leader(a, req, reply))
		goto out;
	/* A whole agent configuration is checked as canopy-agent --check-config
	 * checks that file: the same code, the same messages. */
	if (config_sync_extract(b.yaml, b.yaml_len, &sync, &has_node, err, sizeof err) != 0) {
		http_reply_error(reply, 400, "%s: %s", b.name, err);
		goto out;
	}
	if (has_node && agent_check_config_text(b.name, b.dir, b.yaml, b.yaml_len, err, sizeof err) != 0) {
		http_reply_error(reply, 400, "%s", err);
		goto out;
	}
	apply_sections(a, req, reply, sync, b.dry_run, b.name);
out:
	free(sync);
	json_decref(b.o);
}

static void handle_rollback(struct agent *a, const struct http_request *req, struct http_reply *reply)
{
	uint64_t n = 0;
	bool dry = false;
	struct version v;
	char what[64], err[512];

	if (replconf_parse_rollback_body(req->body, req->body_len, &n, &dry, err, sizeof err) != 0) {
		http_reply_error(reply, 400, "%s", err);
		return;
	}
	if (control_redirect_to_leader(a, req, reply))
		return;
	if (!historic(a, n, &v)) {
		http_reply_error(reply, 404, "no version %" PRIu64 " in the history (canopyctl config history)", n);
		return;
	}
	snprintf(what, sizeof what, "version %" PRIu64, n);
	apply_sections(a, req, reply, v.yaml, dry, what);
	json_decref(v.o);
}

bool control_config_handle(struct agent *a, const struct http_request *req, struct http_reply *reply)
{
	bool get = strcmp(req->method, "GET") == 0, post = strcmp(req->method, "POST") == 0;

	if (strcmp(req->path, "/v1/config") == 0 || strcmp(req->path, "/v1/config/history") == 0) {
		if (!get)
			http_reply_error(reply, 405, "%s %s: use GET", req->method, req->path);
		else if (strcmp(req->path, "/v1/config") == 0)
			handle_show(a, reply);
		else
			handle_history(a, reply);
		return true;
	}
	if (strcmp(req->path, "/v1/config/apply") == 0 || strcmp(req->path, "/v1/config/rollback") == 0) {
		if (!post)
			http_reply_error(reply, 405, "%s %s: use POST", req->method, req->path);
		else if (strcmp(req->path, "/v1/config/apply") == 0)
			handle_apply(a, req, reply);
		else
			handle_rollback(a, req, reply);
		return true;
	}
	return false;
}
