/*
 * tests/unit/test_scim_target.c -- sync/target/scim against the real SCIM
 * test server (tests/fixtures/scim/server.js: SCIMMY + express on Node).
 *
 * The group setup starts the server itself (fork/exec node, PR_SET_PDEATHSIG
 * so it never outlives this program), reads "listening PORT" from its
 * stdout, and the group teardown kills and reaps it. Each test resets the
 * server's store, audit and faults, drives its own uv loop until the
 * callbacks have run (a watchdog timer turns a hang into a failure) and
 * checks what really happened through /_test/store, /_test/audit and
 * /_test/stats, fetched with libcurl's easy interface.
 *
 * The server needs tests/fixtures/scim/node_modules (scripts/install-deps.sh).
 */
#define _GNU_SOURCE /* pipe2 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include <curl/curl.h>
#include <errno.h>
#include <fcntl.h>
#include <jansson.h>
#include <netinet/in.h>
#include <poll.h>
#include <signal.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>
#include <uv.h>

#include "sync/target/scim.h"

#define U_SCHEMA "urn:ietf:params:scim:schemas:core:2.0:User"
#define G_SCHEMA "urn:ietf:params:scim:schemas:core:2.0:Group"
#define MAX_OPS 64

/* ------------------------------------------------------------------ the server */

static struct {
	pid_t pid;
	int out_fd; /* read end of the server's stdout, kept open until teardown */
	int port;
	char dir[256];
	char server_token[320]; /* the token file the server checks */
	char client_token[320]; /* the token file the target reads */
	char audit[320];
	char log[320];
	char url[160];  /* .../scim/v2 */
	char base[128]; /* http://127.0.0.1:PORT */
} srv = {.pid = -1, .out_fd = -1};

static void source_dir(char *out, size_t len)
{
	const char *env = getenv("CANOPY_SOURCE_DIR");
	if (env != NULL && env[0] != '\0') {
		snprintf(out, len, "%s", env);
		return;
	}
	/* ctest does not set CANOPY_SOURCE_DIR for unit tests: cmake compiles
	 * us with an absolute path, so __FILE__ knows where the tree is. */
	snprintf(out, len, "%s", __FILE__);
	char *p = strstr(out, "/tests/unit/");
	if (p != NULL)
		*p = '\0';
	else
		snprintf(out, len, "%s", strncmp(__FILE__, "tests/unit/", 11) == 0 ? "." : "../..");
}

static int write_file(const char *path, const char *text)
{
	char tmp[400];
	snprintf(tmp, sizeof tmp, "%s.new", path);
	int fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
	if (fd < 0)
		return -errno;
	size_t n = strlen(text);
	ssize_t w = write(fd, text, n);
	close(fd);
	if (w != (ssize_t)n)
		return -EIO;
	return rename(tmp, path) == 0 ? 0 : -errno;
}

static void print_log(void)
{
	FILE *f = fopen(srv.log, "r");
	char line[512];
	if (f == NULL)
		return;
	while (fgets(line, sizeof line, f) != NULL)
		print_error("  server: %s", line);
	fclose(f);
}

static void server_kill(void)
{
	if (srv.pid > 0) {
		kill(srv.pid, SIGKILL);
		while (waitpid(srv.pid, NULL, 0) < 0 && errno == EINTR)
			;
		srv.pid = -1;
	}
	if (srv.out_fd >= 0) {
		close(srv.out_fd);
		srv.out_fd = -1;
	}
}

static int group_setup(void **state)
{
	char src[512], js[700], mod[800];
	(void)state;
	source_dir(src, sizeof src);
	snprintf(js, sizeof js, "%s/tests/fixtures/scim/server.js", src);
	const char *mods[] = {"scimmy", "scimmy-routers", "express"};
	for (size_t i = 0; i < 3; i++) {
		snprintf(mod, sizeof mod, "%s/tests/fixtures/scim/node_modules/%s/package.json", src, mods[i]);
		if (access(mod, R_OK) != 0) {
			print_error("SCIM fixture: %s is missing; run scripts/install-deps.sh (it runs npm ci in "
				    "tests/fixtures/scim)\n", mod);
			return -1;
		}
	}
	snprintf(srv.dir, sizeof srv.dir, "%s/canopy-scim-test.XXXXXX", getenv("TMPDIR") ? getenv("TMPDIR") : "/tmp");
	if (mkdtemp(srv.dir) == NULL) {
		print_error("mkdtemp: %s\n", strerror(errno));
		return -1;
	}
	snprintf(srv.server_token, sizeof srv.server_token, "%s/server.token", srv.dir);
	snprintf(srv.client_token, sizeof srv.client_token, "%s/client.token", srv.dir);
	snprintf(srv.audit, sizeof srv.audit, "%s/audit.jsonl", srv.dir);
	snprintf(srv.log, sizeof srv.log, "%s/server.log", srv.dir);
	if (write_file(srv.server_token, "tok-good\n") != 0 || write_file(srv.client_token, "tok-good\n") != 0)
		return -1;

	int pfd[2];
	if (pipe2(pfd, O_CLOEXEC) != 0)
		return -1;
	pid_t parent = getpid();
	pid_t pid = fork();
	if (pid < 0)
		return -1;
	if (pid == 0) {
		/* never outlive the test, even when it is SIGKILLed */
		prctl(PR_SET_PDEATHSIG, SIGKILL);
		if (getppid() != parent)
			_exit(1);
		int log = open(srv.log, O_WRONLY | O_CREAT | O_TRUNC, 0600);
		dup2(pfd[1], 1);
		if (log >= 0)
			dup2(log, 2);
		execlp("node", "node", js, "--port", "0", "--token-file", srv.server_token, "--audit", srv.audit,
		       (char *)NULL);
		fprintf(stderr, "exec node: %s (run scripts/install-deps.sh)\n", strerror(errno));
		_exit(127);
	}
	close(pfd[1]);
	srv.pid = pid;
	srv.out_fd = pfd[0];

	char buf[128] = "";
	size_t n = 0;
	uint64_t deadline = uv_hrtime() / 1000000 + 20000;
	while (strchr(buf, '\n') == NULL && n < sizeof buf - 1) {
		int64_t left = (int64_t)(deadline - uv_hrtime() / 1000000);
		struct pollfd p = {.fd = srv.out_fd, .events = POLLIN};
		if (left <= 0 || poll(&p, 1, (int)left) <= 0) {
			print_error("SCIM server did not say 'listening' within 20 s\n");
			goto fail;
		}
		ssize_t r = read(srv.out_fd, buf + n, sizeof buf - 1 - n);
		if (r <= 0) {
			print_error("SCIM server exited before it was ready\n");
			goto fail;
		}
		n += (size_t)r;
		buf[n] = '\0';
	}
	if (sscanf(buf, "listening %d", &srv.port) != 1 || srv.port <= 0) {
		print_error("SCIM server said: %s\n", buf);
		goto fail;
	}
	snprintf(srv.base, sizeof srv.base, "http://127.0.0.1:%d", srv.port);
	snprintf(srv.url, sizeof srv.url, "%s/scim/v2", srv.base);
	return 0;
fail:
	server_kill();
	print_log();
	return -1;
}

static int group_teardown(void **state)
{
	(void)state;
	server_kill();
	const char *files[] = {srv.server_token, srv.client_token, srv.audit, srv.log};
	for (size_t i = 0; i < 4; i++)
		if (files[i][0] != '\0')
			unlink(files[i]);
	if (srv.dir[0] != '\0')
		rmdir(srv.dir);
	return 0;
}

/* ------------------------------------------------------------------ blocking HTTP for checks */

struct buf {
	char *p;
	size_t n;
};

static size_t buf_write(char *d, size_t sz, size_t nm, void *u)
{
	struct buf *b = u;
	char *p = realloc(b->p, b->n + sz * nm + 1);
	if (p == NULL)
		return 0;
	memcpy(p + b->n, d, sz * nm);
	b->p = p;
	b->n += sz * nm;
	b->p[b->n] = '\0';
	return sz * nm;
}

/* METHOD base+path [JSON] -> parsed answer (json null when empty); *status */
static json_t *http(const char *method, const char *path, const char *body, bool auth, long *status)
{
	CURL *e = curl_easy_init();
	struct buf b = {0};
	struct curl_slist *h = curl_slist_append(NULL, "Content-Type: application/json");
	char url[512], tok[128];
	long code = 0;
	snprintf(url, sizeof url, "%s%s", srv.base, path);
	if (auth) {
		snprintf(tok, sizeof tok, "Authorization: Bearer tok-good");
		h = curl_slist_append(h, tok);
	}
	curl_easy_setopt(e, CURLOPT_URL, url);
	curl_easy_setopt(e, CURLOPT_CUSTOMREQUEST, method);
	curl_easy_setopt(e, CURLOPT_HTTPHEADER, h);
	curl_easy_setopt(e, CURLOPT_WRITEFUNCTION, buf_write);
	curl_easy_setopt(e, CURLOPT_WRITEDATA, &b);
	curl_easy_setopt(e, CURLOPT_TIMEOUT_MS, 10000L);
	curl_easy_setopt(e, CURLOPT_NOSIGNAL, 1L);
	if (body != NULL)
		curl_easy_setopt(e, CURLOPT_POSTFIELDS, body);
	CURLcode rc = curl_easy_perform(e);
	curl_easy_getinfo(e, CURLINFO_RESPONSE_CODE, &code);
	curl_slist_free_all(h);
	curl_easy_cleanup(e);
	if (status != NULL)
		*status = rc == CURLE_OK ? code : 0;
	json_t *j = b.n > 0 ? json_loadb(b.p, b.n, 0, NULL) : json_null();
	free(b.p);
	return j;
}

/* test control: must answer 2xx */
static json_t *ctl(const char *method, const char *what, const char *body)
{
	char path[256];
	long st;
	snprintf(path, sizeof path, "/_test/%s", what);
	json_t *j = http(method, path, body, false, &st);
	if (st < 200 || st >= 300)
		fail_msg("%s %s -> %ld", method, path, st);
	assert_non_null(j);
	return j;
}

static void fault(const char *json)
{
	json_decref(ctl("POST", "faults", json));
}

/* seed a resource directly (no audit, no auth); returns its id (static buffer) */
static const char *seed(const char *kind, json_t *res)
{
	static char id[8][128];
	static int next;
	json_t *body = json_pack("{s:[O]}", kind, res);
	char *s = json_dumps(body, JSON_COMPACT);
	json_t *ans = ctl("POST", "seed", s);
	const char *v = json_string_value(json_array_get(json_object_get(ans, kind), 0));
	assert_non_null(v);
	char *out = id[next++ % 8];
	snprintf(out, 128, "%s", v);
	free(s);
	json_decref(body);
	json_decref(ans);
	json_decref(res);
	return out;
}

static json_t *store(const char *kind) /* new reference to the array */
{
	json_t *all = ctl("GET", "store", NULL);
	json_t *a = json_incref(json_object_get(all, kind));
	json_decref(all);
	assert_true(json_is_array(a));
	return a;
}

static json_t *audit(void)
{
	json_t *a = ctl("GET", "audit", NULL);
	assert_true(json_is_array(a));
	return a;
}

static bool has_member(json_t *group, const char *id)
{
	size_t i;
	json_t *m;
	json_array_foreach(json_object_get(group, "members"), i, m)
	{
		if (strcmp(json_string_value(json_object_get(m, "value")), id) == 0)
			return true;
	}
	return false;
}

/* number of distinct member ids (the fixture may store a re-added member twice) */
static size_t n_members(json_t *group)
{
	size_t i, j, n = 0;
	json_t *m, *k;
	json_t *ms = json_object_get(group, "members");
	json_array_foreach(ms, i, m)
	{
		bool dup = false;
		for (j = 0; j < i && (k = json_array_get(ms, j)) != NULL; j++)
			dup = dup || json_equal(json_object_get(k, "value"), json_object_get(m, "value"));
		n += !dup;
	}
	return n;
}

static int64_t iso_ms(const char *s)
{
	struct tm tm = {0};
	int ms = 0;
	assert_int_equal(sscanf(s, "%d-%d-%dT%d:%d:%d.%dZ", &tm.tm_year, &tm.tm_mon, &tm.tm_mday, &tm.tm_hour,
				&tm.tm_min, &tm.tm_sec, &ms),
			 7);
	tm.tm_year -= 1900;
	tm.tm_mon -= 1;
	return (int64_t)timegm(&tm) * 1000 + ms;
}

/* ------------------------------------------------------------------ the loop */

struct tctx;

struct slot {
	struct scim_op op;
	struct tctx *x;
	bool done;
	int order;
	bool resubmit; /* on_done_resubmit: submit slot `next` from the callback */
	int next;
	int resubmit_rc;
};

struct tctx {
	uv_loop_t loop;
	uv_timer_t watchdog;
	uv_timer_t tick; /* bounds each UV_RUN_ONCE: see run_until */
	bool expired;
	struct scim_target *t;
	bool stopped;
	struct slot ops[MAX_OPS];
	json_t *keep[MAX_OPS * 2];
	int n_keep;
	int n_done;
};

static json_t *keep(struct tctx *x, json_t *j)
{
	assert_true(x->n_keep < MAX_OPS * 2);
	x->keep[x->n_keep++] = j;
	return j;
}

static void on_done(struct scim_op *op)
{
	struct slot *s = op->data;
	assert_false(s->done); /* exactly once */
	s->done = true;
	s->order = s->x->n_done++;
}

static void on_done_resubmit(struct scim_op *op)
{
	struct slot *s = op->data;
	on_done(op);
	if (s->resubmit)
		s->resubmit_rc = scim_submit(s->x->t, &s->x->ops[s->next].op, on_done);
}

static void on_watchdog(uv_timer_t *h)
{
	struct tctx *x = h->data;
	x->expired = true;
}

typedef bool (*cond_fn)(struct tctx *x, intptr_t arg);

static void on_tick(uv_timer_t *h)
{
	(void)h;
}

/* Run the loop until cond holds or ms pass; returns cond. UV_RUN_ONCE runs
 * due timers first and then blocks for I/O: when a timer callback makes cond
 * true, that block would last until the next event, so a 5 ms tick bounds it. */
static bool run_until(struct tctx *x, cond_fn cond, intptr_t arg, unsigned ms)
{
	x->expired = false;
	uv_timer_start(&x->watchdog, on_watchdog, ms, 0);
	uv_timer_start(&x->tick, on_tick, 5, 5);
	while (!cond(x, arg) && !x->expired)
		uv_run(&x->loop, UV_RUN_ONCE);
	uv_timer_stop(&x->watchdog);
	uv_timer_stop(&x->tick);
	return cond(x, arg);
}

static bool c_done(struct tctx *x, intptr_t n)
{
	return x->n_done >= n;
}

static bool c_never(struct tctx *x, intptr_t n)
{
	(void)x;
	(void)n;
	return false;
}

static bool c_stopped(struct tctx *x, intptr_t n)
{
	(void)n;
	return x->stopped;
}

static bool c_quarantined(struct tctx *x, intptr_t n)
{
	struct scim_stats st;
	scim_stats(x->t, &st);
	return st.quarantined == (n != 0);
}

static bool c_spc(struct tctx *x, intptr_t n)
{
	struct scim_stats st;
	(void)n;
	scim_stats(x->t, &st);
	return st.bulk_supported;
}

/* discovery over: /ServiceProviderConfig, /ResourceTypes and /Schemas read */
static bool c_discovered(struct tctx *x, intptr_t n)
{
	struct scim_stats st;
	(void)n;
	scim_stats(x->t, &st);
	return st.bulk_supported && st.discovered;
}

static bool c_in_flight(struct tctx *x, intptr_t n)
{
	struct scim_stats st;
	scim_stats(x->t, &st);
	return st.in_flight >= (unsigned)n;
}

static bool c_wire_empty(struct tctx *x, intptr_t n)
{
	struct scim_stats st;
	(void)n;
	scim_stats(x->t, &st);
	return st.in_flight == 0;
}

static void run_for(struct tctx *x, unsigned ms)
{
	run_until(x, c_never, 0, ms);
}

static void wait_done(struct tctx *x, int n)
{
	if (!run_until(x, c_done, n, 20000))
		fail_msg("only %d of %d operations completed within 20 s", x->n_done, n);
}

static struct scim_config test_config(void)
{
	struct scim_config c = {
		.url = srv.url,
		.token_file = srv.client_token,
		.max_in_flight = 8,
		.max_attempts = 6,
		.backoff_min_ms = 10,
		.backoff_max_ms = 2000,
		.timeout_ms = 10000,
		.probe_min_ms = 100,
		.probe_max_ms = 400,
	};
	return c;
}

static void start(struct tctx *x, const struct scim_config *cfg)
{
	struct scim_config c = cfg != NULL ? *cfg : test_config();
	char err[256] = "";
	int rc = scim_target_start(&x->t, &x->loop, &c, err, sizeof err);
	if (rc != 0)
		fail_msg("scim_target_start: %d %s", rc, err);
	/* let discovery (ServiceProviderConfig, ResourceTypes, Schemas) land, so
	 * it never mixes with faults */
	if (c.url == srv.url && !run_until(x, c_discovered, 0, 10000))
		fail_msg("discovery did not finish (bulk_supported or discovered still false)");
}

static int setup(void **state)
{
	struct tctx *x = calloc(1, sizeof *x);
	if (x == NULL)
		return -1;
	json_decref(ctl("POST", "reset", NULL));
	if (write_file(srv.server_token, "tok-good\n") != 0 || write_file(srv.client_token, "tok-good\n") != 0)
		return -1;
	uv_loop_init(&x->loop);
	uv_timer_init(&x->loop, &x->watchdog);
	uv_timer_init(&x->loop, &x->tick);
	x->watchdog.data = x;
	for (int i = 0; i < MAX_OPS; i++) {
		x->ops[i].x = x;
		x->ops[i].op.data = &x->ops[i];
	}
	*state = x;
	return 0;
}

static void on_stopped(void *data)
{
	struct tctx *x = data;
	x->stopped = true;
}

static int teardown(void **state)
{
	struct tctx *x = *state;
	int rc = 0;
	if (x->t != NULL && !x->stopped) {
		scim_target_stop(x->t, on_stopped, x);
		if (!run_until(x, c_stopped, 0, 10000)) {
			print_error("scim_target_stop: done never ran\n");
			rc = -1;
		}
	}
	uv_close((uv_handle_t *)&x->watchdog, NULL);
	uv_close((uv_handle_t *)&x->tick, NULL);
	uv_run(&x->loop, UV_RUN_NOWAIT);
	if (uv_loop_close(&x->loop) != 0) {
		print_error("uv handles left open after scim_target_stop\n");
		uv_print_all_handles(&x->loop, stderr);
		rc = -1;
	}
	for (int i = 0; i < x->n_keep; i++)
		json_decref(x->keep[i]);
	json_decref(ctl("POST", "faults", "{}"));
	free(x);
	return rc;
}

/* ------------------------------------------------------------------ op builders */

static json_t *user_res(const char *userName, const char *displayName)
{
	json_t *r = json_pack("{s:[s], s:s}", "schemas", U_SCHEMA, "userName", userName);
	if (displayName != NULL)
		json_object_set_new(r, "displayName", json_string(displayName));
	return r;
}

static struct scim_op *op_at(struct tctx *x, int i, enum scim_action a, enum object_type type, const char *anchor,
			     const char *target_id)
{
	struct scim_op *op = &x->ops[i].op;
	op->action = a;
	op->type = type;
	op->anchor = anchor;
	op->target_id = target_id;
	return op;
}

static void submit(struct tctx *x, struct scim_op *op)
{
	int rc = scim_submit(x->t, op, on_done);
	assert_int_equal(rc, 0);
}

static void upsert_user(struct tctx *x, int i, const char *anchor, const char *target_id, json_t *res)
{
	struct scim_op *op = op_at(x, i, SCIM_UPSERT, OBJECT_USER, anchor, target_id);
	op->resource = keep(x, res);
	submit(x, op);
}

static void assert_ok(const struct scim_op *op)
{
	if (op->status != 0)
		fail_msg("operation failed: status %d (%s), http %ld: %s", op->status, strerror(-op->status),
			 op->http_status, op->error);
}

/* ------------------------------------------------------------------ tests */

/* Create, then upsert with the known id: one object, updated in place. */
static void upsert_create_then_update_by_id(void **state)
{
	struct tctx *x = *state;
	start(x, NULL);
	upsert_user(x, 0, "ext-alice", NULL, user_res("alice", "Alice"));
	wait_done(x, 1);
	struct scim_op *a = &x->ops[0].op;
	assert_ok(a);
	assert_true(a->created);
	assert_false(a->matched);
	assert_int_equal(a->http_status, 201);
	assert_int_equal(a->attempts, 1);
	assert_true(a->result_id[0] != '\0');

	upsert_user(x, 1, "ext-alice", a->result_id, user_res("alice", "Alice B."));
	wait_done(x, 2);
	struct scim_op *b = &x->ops[1].op;
	assert_ok(b);
	assert_false(b->created);
	assert_false(b->matched);
	assert_string_equal(b->result_id, a->result_id);

	json_t *users = store("Users");
	assert_int_equal(json_array_size(users), 1);
	json_t *u = json_array_get(users, 0);
	assert_string_equal(json_string_value(json_object_get(u, "displayName")), "Alice B.");
	assert_string_equal(json_string_value(json_object_get(u, "externalId")), "ext-alice");
	assert_string_equal(json_string_value(json_object_get(u, "id")), a->result_id);
	json_decref(users);

	json_t *au = audit();
	assert_int_equal(json_array_size(au), 2);
	assert_string_equal(json_string_value(json_object_get(json_array_get(au, 0), "method")), "POST");
	assert_string_equal(json_string_value(json_object_get(json_array_get(au, 1), "method")), "PUT");
	json_decref(au);
}

/* Upsert without target id of an object whose externalId exists: a hard
 * match (409 -> lookup by externalId -> PUT), never a duplicate. */
static void upsert_existing_external_id_matches(void **state)
{
	struct tctx *x = *state;
	const char *id = seed("Users", json_pack("{s:[s], s:s, s:s}", "schemas", U_SCHEMA, "userName", "bob-old",
						  "externalId", "ext-bob"));
	char want[128];
	snprintf(want, sizeof want, "%s", id);
	start(x, NULL);
	upsert_user(x, 0, "ext-bob", NULL, user_res("bob", "Bob"));
	wait_done(x, 1);
	struct scim_op *op = &x->ops[0].op;
	assert_ok(op);
	assert_true(op->matched);
	assert_false(op->created);
	assert_string_equal(op->result_id, want);
	assert_int_equal(op->attempts, 3); /* POST 409, GET, PUT */

	json_t *users = store("Users");
	assert_int_equal(json_array_size(users), 1);
	json_t *u = json_array_get(users, 0);
	assert_string_equal(json_string_value(json_object_get(u, "userName")), "bob");
	assert_string_equal(json_string_value(json_object_get(u, "externalId")), "ext-bob");
	json_decref(users);
}

/* An object created without externalId is adopted by userName (soft match)
 * and gets the anchor as externalId. */
static void upsert_soft_match_by_username(void **state)
{
	struct tctx *x = *state;
	char want[128];
	snprintf(want, sizeof want, "%s",
		 seed("Users", json_pack("{s:[s], s:s, s:s}", "schemas", U_SCHEMA, "userName", "carol", "title",
					 "old")));
	start(x, NULL);
	upsert_user(x, 0, "ext-carol", NULL, user_res("Carol", "Carol C."));
	wait_done(x, 1);
	struct scim_op *op = &x->ops[0].op;
	assert_ok(op);
	assert_true(op->matched);
	assert_false(op->created);
	assert_string_equal(op->result_id, want);
	assert_int_equal(op->attempts, 4); /* POST 409, GET externalId (none), GET userName, PUT */

	json_t *users = store("Users");
	assert_int_equal(json_array_size(users), 1);
	json_t *u = json_array_get(users, 0);
	assert_string_equal(json_string_value(json_object_get(u, "externalId")), "ext-carol");
	assert_string_equal(json_string_value(json_object_get(u, "displayName")), "Carol C.");
	assert_string_equal(json_string_value(json_object_get(u, "id")), want);
	json_decref(users);
}

/* SCIM_TAKEN (SelectUniqueValue): a value held by another object is taken
 * (whatever its case: userName is caseExact false), one held only by the
 * object carrying our own externalId is not, nor one nobody holds. */
static void taken_check(struct tctx *x, const char *caps)
{
	const char *values[] = {"held", "mine", "free", "HELD"};
	const bool want[] = {true, false, false, true};

	seed("Users", json_pack("{s:[s], s:s}", "schemas", U_SCHEMA, "userName", "held"));
	seed("Users", json_pack("{s:[s], s:s, s:s}", "schemas", U_SCHEMA, "userName", "mine", "externalId", "ext-me"));
	for (int i = 0; i < 5; i++) {
		char name[16];
		snprintf(name, sizeof name, "filler%d", i);
		seed("Users", json_pack("{s:[s], s:s}", "schemas", U_SCHEMA, "userName", name));
	}
	if (caps != NULL)
		json_decref(ctl("POST", "caps", caps));
	start(x, NULL);
	for (int i = 0; i < 4; i++) {
		struct scim_op *op = op_at(x, i, SCIM_TAKEN, OBJECT_USER, "ext-me", NULL);
		op->taken_attr = "userName";
		op->taken_value = values[i];
		submit(x, op);
	}
	wait_done(x, 4);
	for (int i = 0; i < 4; i++) {
		assert_ok(&x->ops[i].op);
		if (x->ops[i].op.taken != want[i])
			fail_msg("%s: taken %d", values[i], x->ops[i].op.taken);
	}
	json_t *users = store("Users");
	assert_int_equal(json_array_size(users), 7); /* asking wrote nothing */
	json_decref(users);
}

/* GET /Users?filter=userName eq "..." */
static void taken_asks_with_a_filter(void **state)
{
	taken_check(*state, NULL);
}

/* Without filtering, pages of 2: every page is read and compared here. */
static void taken_scans_a_target_without_filtering(void **state)
{
	struct tctx *x = *state;

	taken_check(x, "{\"filter\": false, \"maxResults\": 2}");
	assert_int_equal(x->ops[2].op.attempts, 4); /* "free": 7 users, 4 pages */
}

/* The filter value is escaped (RFC 7644 §3.4.2.2) and URL-encoded: a userName
 * with a quote, a backslash, a space and an ampersand still soft-matches. */
static void upsert_soft_match_escapes_filter(void **state)
{
	struct tctx *x = *state;
	const char *name = "o\"brien\\x & co";
	char want[128];
	snprintf(want, sizeof want, "%s",
		 seed("Users", json_pack("{s:[s], s:s}", "schemas", U_SCHEMA, "userName", name)));
	start(x, NULL);
	upsert_user(x, 0, "ext-obrien", NULL, user_res(name, NULL));
	wait_done(x, 1);
	assert_ok(&x->ops[0].op);
	assert_true(x->ops[0].op.matched);
	assert_string_equal(x->ops[0].op.result_id, want);
	json_t *users = store("Users");
	assert_int_equal(json_array_size(users), 1);
	assert_string_equal(json_string_value(json_object_get(json_array_get(users, 0), "externalId")), "ext-obrien");
	json_decref(users);
}

/* A name held by an object with another externalId is not taken over. */
static void upsert_soft_match_refuses_other_anchor(void **state)
{
	struct tctx *x = *state;
	seed("Users", json_pack("{s:[s], s:s, s:s}", "schemas", U_SCHEMA, "userName", "dave", "externalId",
				"ext-someone-else"));
	start(x, NULL);
	upsert_user(x, 0, "ext-dave", NULL, user_res("dave", NULL));
	wait_done(x, 1);
	struct scim_op *op = &x->ops[0].op;
	assert_int_equal(op->status, -EEXIST);
	assert_non_null(strstr(op->error, "another externalId"));
	json_t *users = store("Users");
	assert_int_equal(json_array_size(users), 1);
	assert_string_equal(json_string_value(json_object_get(json_array_get(users, 0), "externalId")),
			    "ext-someone-else");
	json_decref(users);
}

/* With external_id_prefix, every externalId written and looked up carries
 * it: an object holding the prefixed anchor is adopted (found by externalId:
 * its userName differs), a new one is created with the prefix. */
static void upsert_prefix_written_and_matched(void **state)
{
	struct tctx *x = *state;
	struct scim_config c = test_config();
	char want[128];
	c.external_id_prefix = "f1:";
	snprintf(want, sizeof want, "%s",
		 seed("Users", json_pack("{s:[s], s:s, s:s}", "schemas", U_SCHEMA, "userName", "pat-old", "externalId",
					 "f1:ext-pat")));
	start(x, &c);
	upsert_user(x, 0, "ext-pat", NULL, user_res("pat", "Pat"));
	upsert_user(x, 1, "ext-quinn", NULL, user_res("quinn", NULL));
	wait_done(x, 2);
	assert_ok(&x->ops[0].op);
	assert_ok(&x->ops[1].op);
	assert_true(x->ops[0].op.matched);
	assert_string_equal(x->ops[0].op.result_id, want);
	assert_true(x->ops[1].op.created);

	json_t *users = store("Users"), *u;
	size_t i;
	assert_int_equal(json_array_size(users), 2);
	json_array_foreach(users, i, u)
	{
		const char *name = json_string_value(json_object_get(u, "userName"));
		const char *ext = json_string_value(json_object_get(u, "externalId"));
		assert_string_equal(ext, strcmp(name, "pat") == 0 ? "f1:ext-pat" : "f1:ext-quinn");
	}
	json_decref(users);
}

/* With external_id_prefix, a name held by another domain's object (another
 * prefix) or by one without externalId is refused for good (op->refused),
 * the error names both objects, and the existing objects stay as they were. */
static void upsert_prefix_refuses_foreign_name(void **state)
{
	struct tctx *x = *state;
	struct scim_config c = test_config();
	char sam_id[128];
	c.external_id_prefix = "f2:";
	snprintf(sam_id, sizeof sam_id, "%s",
		 seed("Users", json_pack("{s:[s], s:s, s:s, s:s}", "schemas", U_SCHEMA, "userName", "sam", "externalId",
					 "f1:ext-sam", "title", "from f1")));
	seed("Users", json_pack("{s:[s], s:s}", "schemas", U_SCHEMA, "userName", "hand"));
	start(x, &c);
	upsert_user(x, 0, "ext-sam2", NULL, user_res("sam", "Sam of f2"));
	upsert_user(x, 1, "ext-hand", NULL, user_res("hand", NULL));
	wait_done(x, 2);
	struct scim_op *a = &x->ops[0].op, *b = &x->ops[1].op;
	assert_int_equal(a->status, -EEXIST);
	assert_true(a->refused);
	assert_false(a->matched);
	assert_non_null(strstr(a->error, "f2:ext-sam2"));
	assert_non_null(strstr(a->error, "\"f1:ext-sam\""));
	assert_non_null(strstr(a->error, sam_id));
	assert_non_null(strstr(a->error, "userName \"sam\""));
	assert_int_equal(b->status, -EEXIST);
	assert_true(b->refused);
	assert_non_null(strstr(b->error, "externalId none"));

	json_t *users = store("Users"), *u;
	size_t i;
	assert_int_equal(json_array_size(users), 2);
	json_array_foreach(users, i, u)
	{
		const char *name = json_string_value(json_object_get(u, "userName"));
		json_t *ext = json_object_get(u, "externalId");
		if (strcmp(name, "sam") == 0) {
			assert_string_equal(json_string_value(ext), "f1:ext-sam");
			assert_string_equal(json_string_value(json_object_get(u, "title")), "from f1");
			assert_null(json_object_get(u, "displayName"));
		} else {
			assert_string_equal(name, "hand");
			assert_true(ext == NULL || json_string_length(ext) == 0);
		}
	}
	json_decref(users);
	json_t *au = audit(); /* no write reached either existing object */
	json_array_foreach(au, i, u)
	{
		const char *m = json_string_value(json_object_get(u, "method"));
		assert_true(strcmp(m, "PUT") != 0 && strcmp(m, "PATCH") != 0);
	}
	json_decref(au);
}

/* A known target id that vanished (404) falls back to create. */
static void upsert_vanished_id_recreates(void **state)
{
	struct tctx *x = *state;
	start(x, NULL);
	upsert_user(x, 0, "ext-erin", "6d1f1c51-0000-4000-8000-000000000000", user_res("erin", NULL));
	wait_done(x, 1);
	struct scim_op *op = &x->ops[0].op;
	assert_ok(op);
	assert_true(op->created);
	assert_int_equal(op->attempts, 2);
	json_t *users = store("Users");
	assert_int_equal(json_array_size(users), 1);
	assert_string_equal(json_string_value(json_object_get(json_array_get(users, 0), "id")), op->result_id);
	json_decref(users);
}

/* Group created with initial members; SCIM_MEMBERS then adds and removes
 * exactly the given members. */
static void group_create_with_members_then_patch_members(void **state)
{
	struct tctx *x = *state;
	char u[4][128];
	const char *names[] = {"g1", "g2", "g3", "g4"};
	for (int i = 0; i < 4; i++)
		snprintf(u[i], sizeof u[i], "%s",
			 seed("Users", json_pack("{s:[s], s:s}", "schemas", U_SCHEMA, "userName", names[i])));
	start(x, NULL);
	struct scim_op *op = op_at(x, 0, SCIM_UPSERT, OBJECT_GROUP, "ext-staff", NULL);
	op->resource = keep(x, json_pack("{s:[s], s:s, s:[{s:s},{s:s}]}", "schemas", G_SCHEMA, "displayName", "Staff",
					 "members", "value", u[0], "value", u[1]));
	submit(x, op);
	wait_done(x, 1);
	assert_ok(op);
	assert_true(op->created);
	char gid[128];
	snprintf(gid, sizeof gid, "%s", op->result_id);

	json_t *groups = store("Groups");
	assert_int_equal(json_array_size(groups), 1);
	json_t *g = json_array_get(groups, 0);
	assert_int_equal(n_members(g), 2);
	assert_true(has_member(g, u[0]) && has_member(g, u[1]));
	json_decref(groups);

	struct scim_op *m = op_at(x, 1, SCIM_MEMBERS, OBJECT_GROUP, "ext-staff", gid);
	m->add = keep(x, json_pack("[s,s]", u[2], u[3]));
	m->remove = keep(x, json_pack("[s]", u[0]));
	submit(x, m);
	wait_done(x, 2);
	assert_ok(m);
	assert_int_equal(m->attempts, 1);

	groups = store("Groups");
	g = json_array_get(groups, 0);
	assert_int_equal(n_members(g), 3);
	assert_false(has_member(g, u[0]));
	assert_true(has_member(g, u[1]) && has_member(g, u[2]) && has_member(g, u[3]));
	json_decref(groups);

	json_t *au = audit();
	json_t *last = json_array_get(au, json_array_size(au) - 1);
	assert_string_equal(json_string_value(json_object_get(last, "method")), "PATCH");
	json_decref(au);
}

/* Updating a group (known id, or matched) PATCHes attributes and never
 * touches its members. */
static void group_update_keeps_members(void **state)
{
	struct tctx *x = *state;
	char u1[128];
	snprintf(u1, sizeof u1, "%s", seed("Users", json_pack("{s:[s], s:s}", "schemas", U_SCHEMA, "userName", "m1")));
	json_t *g0 = json_pack("{s:[s], s:s, s:s, s:[{s:s}]}", "schemas", G_SCHEMA, "displayName", "Ops", "externalId",
			       "ext-ops", "members", "value", u1);
	char gid[128];
	snprintf(gid, sizeof gid, "%s", seed("Groups", g0));
	start(x, NULL);

	/* known id: PATCH replace */
	struct scim_op *op = op_at(x, 0, SCIM_UPSERT, OBJECT_GROUP, "ext-ops", gid);
	op->resource = keep(x, json_pack("{s:[s], s:s}", "schemas", G_SCHEMA, "displayName", "Operations"));
	submit(x, op);
	/* unknown id: POST 409 -> lookup -> PATCH replace; members given on
	 * create only, so they must not replace the stored ones */
	struct scim_op *op2 = op_at(x, 1, SCIM_UPSERT, OBJECT_GROUP, "ext-ops", NULL);
	op2->resource = keep(x, json_pack("{s:[s], s:s, s:[]}", "schemas", G_SCHEMA, "displayName", "Operations 2",
					  "members"));
	wait_done(x, 1);
	submit(x, op2);
	wait_done(x, 2);
	assert_ok(op);
	assert_ok(op2);
	assert_true(op2->matched);
	assert_string_equal(op2->result_id, gid);

	json_t *groups = store("Groups");
	assert_int_equal(json_array_size(groups), 1);
	json_t *g = json_array_get(groups, 0);
	assert_string_equal(json_string_value(json_object_get(g, "displayName")), "Operations 2");
	assert_int_equal(n_members(g), 1);
	assert_true(has_member(g, u1));
	json_decref(groups);

	json_t *au = audit();
	size_t i;
	json_t *e;
	json_array_foreach(au, i, e)
	{
		if (json_integer_value(json_object_get(e, "status")) < 300)
			assert_string_equal(json_string_value(json_object_get(e, "method")), "PATCH");
	}
	json_decref(au);
}

/* An exact member write (a group in doubt after a failover): read the
 * group back, add what is missing, remove every member not listed -- the
 * one an earlier leader added without committing too. */
static void exact_members_remove_the_unlisted(void **state)
{
	struct tctx *x = *state;
	char u[3][128];
	const char *names[] = {"x1", "x2", "x3"};
	for (int i = 0; i < 3; i++)
		snprintf(u[i], sizeof u[i], "%s",
			 seed("Users", json_pack("{s:[s], s:s}", "schemas", U_SCHEMA, "userName", names[i])));
	char gid[128];
	snprintf(gid, sizeof gid, "%s",
		 seed("Groups", json_pack("{s:[s], s:s, s:s, s:[{s:s},{s:s}]}", "schemas", G_SCHEMA, "displayName",
					  "Doubt", "externalId", "ext-doubt", "members", "value", u[0], "value", u[1])));
	start(x, NULL);
	struct scim_op *m = op_at(x, 0, SCIM_MEMBERS, OBJECT_GROUP, "ext-doubt", gid);
	m->add = keep(x, json_pack("[s,s]", u[0], u[2])); /* u[1] is not wanted */
	m->remove = keep(x, json_pack("[]"));
	m->verify = true;
	m->exact = true;
	submit(x, m);
	wait_done(x, 1);
	assert_ok(m);
	json_t *groups = store("Groups");
	json_t *g = json_array_get(groups, 0);
	assert_int_equal(n_members(g), 2);
	assert_true(has_member(g, u[0]) && has_member(g, u[2]));
	assert_false(has_member(g, u[1]));
	json_decref(groups);
}

/* A group of x1, x2 and a member change "add x3, remove x1", run against a
 * target set up by `caps` (the fixture's POST /_test/caps) with `style`.
 * Returns the group's id; the op is x->ops[0]. */
static void member_change(struct tctx *x, const char *caps, enum scim_patch_style style, char u[3][128], char *gid)
{
	const char *names[] = {"x1", "x2", "x3"};
	for (int i = 0; i < 3; i++)
		snprintf(u[i], 128, "%s", seed("Users", json_pack("{s:[s], s:s}", "schemas", U_SCHEMA, "userName", names[i])));
	snprintf(gid, 128, "%s",
		 seed("Groups", json_pack("{s:[s], s:s, s:s, s:[{s:s},{s:s}]}", "schemas", G_SCHEMA, "displayName",
					  "Styled", "externalId", "ext-styled", "members", "value", u[0], "value", u[1])));
	if (caps != NULL)
		json_decref(ctl("POST", "caps", caps));
	struct scim_config c = test_config();
	c.patch_style = style;
	start(x, &c);
	struct scim_op *m = op_at(x, 0, SCIM_MEMBERS, OBJECT_GROUP, "ext-styled", gid);
	m->add = keep(x, json_pack("[s]", u[2]));
	m->remove = keep(x, json_pack("[s]", u[0]));
	submit(x, m);
	wait_done(x, 1);
	assert_ok(m);
	json_t *groups = store("Groups");
	json_t *g = json_array_get(groups, 0);
	assert_int_equal(n_members(g), 2);
	assert_true(has_member(g, u[1]) && has_member(g, u[2]));
	assert_false(has_member(g, u[0]));
	json_decref(groups);
}

/* The methods of the successful writes since the start, "PATCH PUT ..." */
static void write_methods(char *out, size_t len)
{
	json_t *au = audit(), *e;
	size_t i, o = 0;
	out[0] = '\0';
	json_array_foreach(au, i, e)
		if (json_integer_value(json_object_get(e, "status")) < 300 && o + 8 < len)
			o += (size_t)snprintf(out + o, len - o, "%s%s", o ? " " : "",
					      json_string_value(json_object_get(e, "method")));
	json_decref(au);
}

/* A server without PATCH (its ServiceProviderConfig says so): patch_style
 * auto writes the member change as GET + PUT of the group, with If-Match
 * when it offers ETags; a 412 (changed in between) reads it again. */
static void no_patch_puts_the_group_with_if_match(void **state)
{
	struct tctx *x = *state;
	char u[3][128], gid[128], methods[256];
	fault("{\"status\":412,\"count\":1,\"methods\":[\"PUT\"]}");
	member_change(x, "{\"patch\": false, \"etag\": true}", SCIM_PATCH_AUTO, u, gid);
	struct scim_stats st;
	scim_stats(x->t, &st);
	assert_false(st.patch_supported);
	assert_true(st.etag_supported);
	assert_int_equal(st.patch_style, SCIM_PATCH_PUT);
	assert_int_equal(x->ops[0].op.attempts, 4); /* GET, PUT (412), GET, PUT */
	write_methods(methods, sizeof methods);
	assert_string_equal(methods, "PUT");
	json_t *stats = ctl("GET", "stats", NULL);
	assert_int_equal(json_integer_value(json_object_get(stats, "ifMatch")), 1); /* the fault answered the first */
	json_decref(stats);
}

/* members_replace: one PATCH "replace" of the whole members list. */
static void members_replace_style_replaces_the_list(void **state)
{
	struct tctx *x = *state;
	char u[3][128], gid[128], methods[256];
	member_change(x, NULL, SCIM_PATCH_MEMBERS_REPLACE, u, gid);
	write_methods(methods, sizeof methods);
	assert_string_equal(methods, "PATCH");
	struct scim_stats st;
	scim_stats(x->t, &st);
	assert_int_equal(st.patch_style, SCIM_PATCH_MEMBERS_REPLACE);
}

/* A server that refuses value filters in removal paths (400 invalidPath):
 * an auto target switches to removals by value and sends the change again. */
static void removal_path_refused_switches_to_values(void **state)
{
	struct tctx *x = *state;
	char u[3][128], gid[128], methods[256];
	member_change(x, "{\"removePaths\": false}", SCIM_PATCH_AUTO, u, gid);
	write_methods(methods, sizeof methods);
	assert_string_equal(methods, "PATCH");
	struct scim_stats st;
	scim_stats(x->t, &st);
	assert_int_equal(st.patch_style, SCIM_PATCH_VALUE_REMOVE);
	assert_int_equal(x->ops[0].op.attempts, 2);
}

/* Large member lists are cut into PATCHes of members_per_patch changes. */
static void members_are_chunked(void **state)
{
	struct tctx *x = *state;
	char u[5][128];
	char name[16];
	for (int i = 0; i < 5; i++) {
		snprintf(name, sizeof name, "c%d", i);
		snprintf(u[i], sizeof u[i], "%s",
			 seed("Users", json_pack("{s:[s], s:s}", "schemas", U_SCHEMA, "userName", name)));
	}
	char gid[128];
	snprintf(gid, sizeof gid, "%s",
		 seed("Groups", json_pack("{s:[s], s:s, s:[{s:s}]}", "schemas", G_SCHEMA, "displayName", "Big",
					  "members", "value", u[0])));
	struct scim_config c = test_config();
	c.members_per_patch = 2;
	start(x, &c);
	struct scim_op *m = op_at(x, 0, SCIM_MEMBERS, OBJECT_GROUP, "ext-big", gid);
	m->add = keep(x, json_pack("[s,s,s,s]", u[1], u[2], u[3], u[4]));
	m->remove = keep(x, json_pack("[s]", u[0]));
	submit(x, m);
	wait_done(x, 1);
	assert_ok(m);
	assert_int_equal(m->attempts, 3); /* 2 adds, 2 adds, 1 remove */

	json_t *groups = store("Groups");
	json_t *g = json_array_get(groups, 0);
	assert_int_equal(n_members(g), 4);
	assert_false(has_member(g, u[0]));
	for (int i = 1; i < 5; i++)
		assert_true(has_member(g, u[i]));
	json_decref(groups);
	json_t *au = audit();
	assert_int_equal(json_array_size(au), 3);
	json_decref(au);
}

/* Delete by id, then again: 204 then 404, both success. */
static void delete_then_delete_again(void **state)
{
	struct tctx *x = *state;
	char id[128];
	snprintf(id, sizeof id, "%s",
		 seed("Users", json_pack("{s:[s], s:s, s:s}", "schemas", U_SCHEMA, "userName", "frank", "externalId",
					 "ext-frank")));
	start(x, NULL);
	struct scim_op *d1 = op_at(x, 0, SCIM_DELETE, OBJECT_USER, "ext-frank", id);
	submit(x, d1);
	wait_done(x, 1);
	assert_ok(d1);
	assert_int_equal(d1->http_status, 204);
	struct scim_op *d2 = op_at(x, 1, SCIM_DELETE, OBJECT_USER, "ext-frank", id);
	submit(x, d2);
	wait_done(x, 2);
	assert_ok(d2);
	assert_int_equal(d2->http_status, 404);
	assert_int_equal(d2->attempts, 1);
	json_t *users = store("Users");
	assert_int_equal(json_array_size(users), 0);
	json_decref(users);
}

/* Delete without a target id finds the object by externalId; nothing found
 * is success too. */
static void delete_by_anchor(void **state)
{
	struct tctx *x = *state;
	seed("Users", json_pack("{s:[s], s:s, s:s}", "schemas", U_SCHEMA, "userName", "gina", "externalId", "ext-gina"));
	seed("Users", json_pack("{s:[s], s:s, s:s}", "schemas", U_SCHEMA, "userName", "hank", "externalId", "ext-hank"));
	start(x, NULL);
	struct scim_op *d1 = op_at(x, 0, SCIM_DELETE, OBJECT_USER, "ext-gina", NULL);
	submit(x, d1);
	wait_done(x, 1);
	assert_ok(d1);
	assert_true(d1->result_id[0] != '\0');
	struct scim_op *d2 = op_at(x, 1, SCIM_DELETE, OBJECT_USER, "ext-gina", NULL);
	submit(x, d2);
	wait_done(x, 2);
	assert_ok(d2);
	assert_string_equal(d2->result_id, "");
	json_t *users = store("Users");
	assert_int_equal(json_array_size(users), 1);
	assert_string_equal(json_string_value(json_object_get(json_array_get(users, 0), "userName")), "hank");
	json_decref(users);
}

/* Two 503s, then success on the third attempt. */
static void retry_503_then_success(void **state)
{
	struct tctx *x = *state;
	start(x, NULL);
	fault("{\"status\":503,\"count\":2}");
	upsert_user(x, 0, "ext-ivy", NULL, user_res("ivy", NULL));
	wait_done(x, 1);
	struct scim_op *op = &x->ops[0].op;
	assert_ok(op);
	assert_int_equal(op->attempts, 3);
	assert_int_equal(op->http_status, 201);
	struct scim_stats st;
	scim_stats(x->t, &st);
	assert_int_equal(st.retries, 2);
	assert_int_equal(st.failures, 0);
	json_t *users = store("Users");
	assert_int_equal(json_array_size(users), 1);
	json_decref(users);
}

/* 429 with Retry-After: 1 waits about a second before the retry. */
static void retry_after_429_is_honoured(void **state)
{
	struct tctx *x = *state;
	start(x, NULL);
	fault("{\"status\":429,\"retryAfter\":1,\"count\":1}");
	upsert_user(x, 0, "ext-jack", NULL, user_res("jack", NULL));
	wait_done(x, 1);
	struct scim_op *op = &x->ops[0].op;
	assert_ok(op);
	assert_int_equal(op->attempts, 2);
	if (op->duration_ms < 950)
		fail_msg("Retry-After: 1 not honoured: done after %.0f ms", op->duration_ms);
	if (op->duration_ms > 1900)
		fail_msg("Retry-After: 1 took %.0f ms", op->duration_ms);
}

/* A 4xx that is no conflict fails at once with a useful message. */
static void permanent_400_fails(void **state)
{
	struct tctx *x = *state;
	start(x, NULL);
	struct scim_op *op = op_at(x, 0, SCIM_UPSERT, OBJECT_USER, "ext-nameless", NULL);
	op->resource = keep(x, json_pack("{s:[s], s:s}", "schemas", U_SCHEMA, "displayName", "No Name"));
	submit(x, op);
	wait_done(x, 1);
	assert_int_equal(op->status, -EPROTO);
	assert_int_equal(op->http_status, 400);
	assert_int_equal(op->attempts, 1);
	if (strstr(op->error, "POST /Users") == NULL || strstr(op->error, "400") == NULL ||
	    strstr(op->error, "userName") == NULL)
		fail_msg("error text lacks method, path, status or detail: %s", op->error);
	struct scim_stats st;
	scim_stats(x->t, &st);
	assert_int_equal(st.failures, 1);
	assert_false(st.quarantined);
}

/* A wrong token quarantines the target ("unauthorized") without failing the
 * operation; fixing the token file recovers and the same operation completes. */
static void unauthorized_quarantine_then_recovery(void **state)
{
	struct tctx *x = *state;
	start(x, NULL); /* token good: ServiceProviderConfig read */
	assert_int_equal(write_file(srv.server_token, "tok-rotated\n"), 0);
	upsert_user(x, 0, "ext-kim", NULL, user_res("kim", NULL));
	assert_true(run_until(x, c_quarantined, 1, 5000));
	struct scim_stats st;
	scim_stats(x->t, &st);
	assert_string_equal(st.quarantine_reason, "unauthorized");
	assert_non_null(strstr(st.quarantine_detail, "401"));
	run_for(x, 500); /* a few probes, still the old token */
	assert_false(x->ops[0].done);
	assert_int_equal(scim_pending(x->t), 1);
	scim_stats(x->t, &st);
	assert_true(st.quarantined);
	assert_int_equal(st.queued, 1);

	assert_int_equal(write_file(srv.client_token, "tok-rotated\n"), 0);
	wait_done(x, 1);
	struct scim_op *op = &x->ops[0].op;
	assert_ok(op);
	assert_true(op->created);
	scim_stats(x->t, &st);
	assert_false(st.quarantined);
	json_t *users = store("Users");
	assert_int_equal(json_array_size(users), 1);
	json_decref(users);
	json_t *stats = ctl("GET", "stats", NULL);
	assert_true(json_integer_value(json_object_get(stats, "unauthorized")) >= 2);
	json_decref(stats);
}

/* Every write carries X-Canopy-Node / X-Canopy-Term (audited by the server). */
static void fence_headers_on_every_write(void **state)
{
	struct tctx *x = *state;
	start(x, NULL);
	scim_set_fence(x->t, 3, 42);
	upsert_user(x, 0, "ext-lee", NULL, user_res("lee", NULL));
	wait_done(x, 1);
	assert_ok(&x->ops[0].op);
	scim_set_fence(x->t, 3, 43);
	struct scim_op *d = op_at(x, 1, SCIM_DELETE, OBJECT_USER, "ext-lee", x->ops[0].op.result_id);
	submit(x, d);
	wait_done(x, 2);
	assert_ok(d);
	json_t *au = audit();
	assert_int_equal(json_array_size(au), 2);
	for (size_t i = 0; i < 2; i++) {
		json_t *e = json_array_get(au, i);
		assert_string_equal(json_string_value(json_object_get(e, "node")), "3");
		assert_int_equal(json_integer_value(json_object_get(e, "term")), 42 + (int)i);
	}
	json_decref(au);
}

/* cancel_all completes in-flight operations with -ECANCELED at once; an
 * operation submitted from such a callback is not cancelled and runs. */
static void cancel_all_completes_in_flight(void **state)
{
	struct tctx *x = *state;
	start(x, NULL);
	/* held 3 s, then dropped unprocessed: no late write lands in a later test */
	fault("{\"delayMs\":3000,\"drop\":true,\"count\":3}");
	for (int i = 0; i < 3; i++) {
		char name[32];
		snprintf(name, sizeof name, "slow%d", i);
		json_t *anchor = keep(x, json_sprintf("ext-slow-%d", i));
		struct scim_op *op = op_at(x, i, SCIM_UPSERT, OBJECT_USER, json_string_value(anchor), NULL);
		op->resource = keep(x, user_res(name, NULL));
		assert_int_equal(scim_submit(x->t, op, on_done_resubmit), 0);
	}
	x->ops[0].resubmit = true;
	x->ops[0].next = 3;
	struct scim_op *again = op_at(x, 3, SCIM_UPSERT, OBJECT_USER, "ext-fast", NULL);
	again->resource = keep(x, user_res("fast", NULL));

	assert_true(run_until(x, c_in_flight, 3, 5000));
	run_for(x, 200); /* the requests reach the server */
	json_t *stats = ctl("GET", "stats", NULL);
	assert_int_equal(json_integer_value(json_object_get(stats, "faulted")), 3);
	json_decref(stats);

	uint64_t t0 = uv_hrtime();
	scim_cancel_all(x->t);
	assert_true(uv_hrtime() - t0 < 100 * 1000000ULL);
	assert_int_equal(x->n_done, 3);
	for (int i = 0; i < 3; i++) {
		assert_true(x->ops[i].done);
		assert_int_equal(x->ops[i].op.status, -ECANCELED);
	}
	assert_int_equal(x->ops[0].resubmit_rc, 0);
	assert_int_equal(scim_pending(x->t), 1);
	wait_done(x, 4);
	assert_ok(again);
	assert_true(again->created);
	struct scim_stats st;
	scim_stats(x->t, &st);
	assert_int_equal(st.failures, 0);
}

/* At most max_in_flight requests overlap: checked on the server's side from
 * the audit's completion times (with every request taking >= 300 ms and at
 * most 4 at once, any 5 consecutive completions span >= 300 ms). */
static void max_in_flight_is_respected(void **state)
{
	struct tctx *x = *state;
	struct scim_config c = test_config();
	c.max_in_flight = 4;
	start(x, &c);
	fault("{\"delayMs\":300}");
	uint64_t t0 = uv_hrtime();
	for (int i = 0; i < 16; i++) {
		char name[32];
		snprintf(name, sizeof name, "p%02d", i);
		json_t *anchor = keep(x, json_sprintf("ext-p%02d", i));
		upsert_user(x, i, json_string_value(anchor), NULL, user_res(name, NULL));
	}
	wait_done(x, 16);
	double ms = (double)(uv_hrtime() - t0) / 1e6;
	for (int i = 0; i < 16; i++)
		assert_ok(&x->ops[i].op);
	if (ms < 4 * 300 - 20)
		fail_msg("16 requests of 300 ms with max 4 in flight took only %.0f ms", ms);
	if (ms > 8 * 300)
		fail_msg("16 requests of 300 ms with max 4 in flight took %.0f ms: not concurrent?", ms);
	struct scim_stats st;
	scim_stats(x->t, &st);
	assert_int_equal(st.peak_requests_in_flight, 4);

	json_t *au = audit();
	assert_int_equal(json_array_size(au), 16);
	int64_t tm[16];
	for (size_t i = 0; i < 16; i++)
		tm[i] = iso_ms(json_string_value(json_object_get(json_array_get(au, i), "time")));
	for (size_t i = 0; i + 4 < 16; i++) {
		if (tm[i + 4] - tm[i] < 290)
			fail_msg("completions %zu..%zu within %lld ms: more than 4 requests overlapped", i, i + 4,
				 (long long)(tm[i + 4] - tm[i]));
	}
	json_decref(au);
}

/* Connection failures: most of the last 20 requests failed -> quarantine
 * "target_unreachable"; queued operations then wait instead of failing. */
static void unreachable_target_quarantines(void **state)
{
	struct tctx *x = *state;
	/* a port nobody listens on: bind, read the port, close */
	int fd = socket(AF_INET, SOCK_STREAM, 0);
	struct sockaddr_in sa = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
	socklen_t len = sizeof sa;
	assert_int_equal(bind(fd, (struct sockaddr *)&sa, sizeof sa), 0);
	assert_int_equal(getsockname(fd, (struct sockaddr *)&sa, &len), 0);
	close(fd);
	char url[128];
	snprintf(url, sizeof url, "http://127.0.0.1:%d/scim/v2", ntohs(sa.sin_port));
	struct scim_config c = test_config();
	c.url = url;
	c.max_attempts = 1;
	c.max_in_flight = 4;
	start(x, &c);
	for (int i = 0; i < 30; i++) {
		json_t *a = keep(x, json_sprintf("ext-u%02d", i));
		upsert_user(x, i, json_string_value(a), NULL, user_res(json_string_value(a), NULL));
	}
	assert_true(run_until(x, c_quarantined, 1, 10000));
	/* requests already on the wire finish (and fail: max_attempts 1) */
	assert_true(run_until(x, c_wire_empty, 0, 5000));
	struct scim_stats st;
	scim_stats(x->t, &st);
	assert_string_equal(st.quarantine_reason, "target_unreachable");
	int failed = x->n_done;
	assert_true(failed >= 14 && failed < 30);
	for (int i = 0; i < MAX_OPS; i++)
		if (x->ops[i].done)
			assert_int_equal(x->ops[i].op.status, -ECONNREFUSED);
	run_for(x, 600); /* probes fail; nothing queued fails meanwhile */
	assert_int_equal(x->n_done, failed);
	assert_int_equal(scim_pending(x->t), (unsigned)(30 - failed));
	scim_stats(x->t, &st);
	assert_true(st.quarantined);
	assert_true(st.requests > (uint64_t)failed); /* probes went out */
	scim_cancel_all(x->t);
	assert_int_equal(x->n_done, 30);
	assert_int_equal(scim_pending(x->t), 0);
}

/* stop cancels what is in flight, refuses new work, and releases everything
 * (teardown checks uv_loop_close). */
static void stop_with_operations_in_flight(void **state)
{
	struct tctx *x = *state;
	start(x, NULL);
	fault("{\"delayMs\":3000,\"drop\":true,\"count\":3}");
	upsert_user(x, 0, "ext-m0", NULL, user_res("m0", NULL));
	upsert_user(x, 1, "ext-m1", NULL, user_res("m1", NULL));
	upsert_user(x, 2, "ext-m2", NULL, user_res("m2", NULL));
	assert_true(run_until(x, c_in_flight, 2, 5000));
	scim_target_stop(x->t, on_stopped, x);
	assert_int_equal(x->n_done, 3);
	for (int i = 0; i < 3; i++)
		assert_int_equal(x->ops[i].op.status, -ECANCELED);
	struct scim_op *late = op_at(x, 3, SCIM_UPSERT, OBJECT_USER, "ext-late", NULL);
	late->resource = keep(x, user_res("late", NULL));
	assert_int_equal(scim_submit(x->t, late, on_done), -ESHUTDOWN);
	assert_false(x->stopped); /* done runs on the loop, later */
	assert_true(run_until(x, c_stopped, 0, 5000));
}

/* Malformed operations are refused at submit, without a callback. */
static void submit_rejects_malformed(void **state)
{
	struct tctx *x = *state;
	start(x, NULL);
	struct scim_op *op = op_at(x, 0, SCIM_UPSERT, OBJECT_USER, "ext-x", NULL);
	op->resource = NULL;
	assert_int_equal(scim_submit(x->t, op, on_done), -EINVAL);
	op = op_at(x, 1, SCIM_DELETE, OBJECT_USER, NULL, NULL);
	assert_int_equal(scim_submit(x->t, op, on_done), -EINVAL);
	op = op_at(x, 2, SCIM_MEMBERS, OBJECT_GROUP, "ext-g", NULL);
	assert_int_equal(scim_submit(x->t, op, on_done), -EINVAL);
	op = op_at(x, 3, SCIM_MEMBERS, OBJECT_GROUP, "ext-g", "gid");
	op->add = keep(x, json_pack("[i]", 7));
	assert_int_equal(scim_submit(x->t, op, on_done), -EINVAL);
	run_for(x, 50);
	assert_int_equal(x->n_done, 0);
	assert_int_equal(scim_pending(x->t), 0);
}

/* Keep-alive: sequential requests reuse one connection. */
static void connections_are_reused(void **state)
{
	struct tctx *x = *state;
	start(x, NULL);
	for (int i = 0; i < 10; i++) {
		json_t *a = keep(x, json_sprintf("ext-k%02d", i));
		upsert_user(x, i, json_string_value(a), NULL, user_res(json_string_value(a), NULL));
		wait_done(x, i + 1);
		assert_ok(&x->ops[i].op);
	}
	struct scim_stats st;
	scim_stats(x->t, &st);
	assert_int_equal(st.requests, 13); /* discovery (3 GETs) + 10 POSTs */
	if (st.connects > 1)
		fail_msg("13 sequential requests opened %llu connections", (unsigned long long)st.connects);
}

static long server_count(json_t *stats, const char *what, const char *key)
{
	return (long)json_integer_value(json_object_get(json_object_get(stats, what), key));
}

/* With cfg.bulk, waiting creates go out as one POST /Bulk; a 409 inside it
 * still turns into a match; deletes by id are batched as well. */
static void bulk_batches_upserts_and_deletes(void **state)
{
	struct tctx *x = *state;
	char b3[128];
	snprintf(b3, sizeof b3, "%s",
		 seed("Users", json_pack("{s:[s], s:s, s:s}", "schemas", U_SCHEMA, "userName", "b3-old", "externalId",
					 "ext-b3")));
	struct scim_config c = test_config();
	c.bulk = true;
	start(x, &c);
	scim_set_fence(x->t, 9, 5);
	for (int i = 0; i < 5; i++) {
		json_t *a = keep(x, json_sprintf("ext-b%d", i));
		json_t *n = keep(x, json_sprintf("b%d", i));
		upsert_user(x, i, json_string_value(a), NULL, user_res(json_string_value(n), NULL));
	}
	wait_done(x, 5);
	for (int i = 0; i < 5; i++) {
		assert_ok(&x->ops[i].op);
		assert_true(x->ops[i].op.created == (i != 3));
	}
	assert_true(x->ops[3].op.matched);
	assert_string_equal(x->ops[3].op.result_id, b3);
	assert_int_equal(x->ops[3].op.attempts, 3); /* bulk POST (409), GET, PUT */
	json_t *stats = ctl("GET", "stats", NULL);
	assert_int_equal(server_count(stats, "byMethod", "POST"), 1);
	assert_int_equal(server_count(stats, "byMethod", "PUT"), 1);
	json_decref(stats);

	struct scim_op *d0 = op_at(x, 5, SCIM_DELETE, OBJECT_USER, "ext-b0", x->ops[0].op.result_id);
	struct scim_op *d1 = op_at(x, 6, SCIM_DELETE, OBJECT_USER, "ext-b1", x->ops[1].op.result_id);
	struct scim_op *d2 = op_at(x, 7, SCIM_DELETE, OBJECT_USER, "ext-b2", NULL); /* lookup first */
	submit(x, d0);
	submit(x, d2);
	submit(x, d1);
	wait_done(x, 8);
	assert_ok(d0);
	assert_ok(d1);
	assert_ok(d2);
	assert_string_equal(d2->result_id, x->ops[2].op.result_id);
	struct scim_stats st;
	scim_stats(x->t, &st);
	assert_int_equal(st.bulk_requests, 2);

	json_t *users = store("Users");
	assert_int_equal(json_array_size(users), 2);
	json_decref(users);
	json_t *au = audit();
	size_t i, n_bulk = 0;
	json_t *e;
	json_array_foreach(au, i, e)
	{
		assert_string_equal(json_string_value(json_object_get(e, "node")), "9");
		assert_int_equal(json_integer_value(json_object_get(e, "term")), 5);
		n_bulk += json_is_true(json_object_get(e, "bulk"));
	}
	assert_int_equal(n_bulk, 7); /* 5 POSTs, 2 DELETEs */
	json_decref(au);
}

/* One bad operation in a bulk fails alone, with the SCIM detail. */
static void bulk_operation_error_fails_alone(void **state)
{
	struct tctx *x = *state;
	struct scim_config c = test_config();
	c.bulk = true;
	start(x, &c);
	upsert_user(x, 0, "ext-ok1", NULL, user_res("ok1", NULL));
	struct scim_op *bad = op_at(x, 1, SCIM_UPSERT, OBJECT_USER, "ext-bad", NULL);
	bad->resource = keep(x, json_pack("{s:[s], s:s}", "schemas", U_SCHEMA, "displayName", "nameless"));
	submit(x, bad);
	upsert_user(x, 2, "ext-ok2", NULL, user_res("ok2", NULL));
	wait_done(x, 3);
	assert_ok(&x->ops[0].op);
	assert_ok(&x->ops[2].op);
	assert_int_equal(bad->status, -EPROTO);
	assert_int_equal(bad->http_status, 400);
	if (strstr(bad->error, "400") == NULL || strstr(bad->error, "userName") == NULL)
		fail_msg("error text: %s", bad->error);
	struct scim_stats st;
	scim_stats(x->t, &st);
	assert_int_equal(st.bulk_requests, 1);
	json_t *users = store("Users");
	assert_int_equal(json_array_size(users), 2);
	json_decref(users);
}

/* A 503 for the bulk request as a whole retries every operation in it. */
static void bulk_request_503_is_retried(void **state)
{
	struct tctx *x = *state;
	struct scim_config c = test_config();
	c.bulk = true;
	start(x, &c);
	fault("{\"status\":503,\"count\":1,\"match\":\"/Bulk\"}");
	for (int i = 0; i < 3; i++) {
		json_t *a = keep(x, json_sprintf("ext-r%d", i));
		upsert_user(x, i, json_string_value(a), NULL, user_res(json_string_value(a), NULL));
	}
	wait_done(x, 3);
	for (int i = 0; i < 3; i++) {
		assert_ok(&x->ops[i].op);
		assert_true(x->ops[i].op.attempts >= 2);
	}
	json_t *users = store("Users");
	assert_int_equal(json_array_size(users), 3);
	json_decref(users);
}

/* A failed ServiceProviderConfig fetch at start is repeated once the target
 * answers an operation, so bulk_supported (and Bulk) do not stay off. */
static void service_provider_config_fetched_again(void **state)
{
	struct tctx *x = *state;
	fault("{\"status\":503,\"count\":1,\"match\":\"/ServiceProviderConfig\"}");
	struct scim_config c = test_config();
	char err[256] = "";
	assert_int_equal(scim_target_start(&x->t, &x->loop, &c, err, sizeof err), 0);
	struct scim_stats st;
	run_for(x, 200);
	scim_stats(x->t, &st);
	assert_int_equal(st.requests, 3); /* ServiceProviderConfig (503), ResourceTypes, Schemas */
	assert_true(st.discovered);     /* defaults: operations go on */
	assert_false(st.bulk_supported);
	upsert_user(x, 0, "ext-spc", NULL, user_res("spc", NULL));
	wait_done(x, 1);
	assert_ok(&x->ops[0].op);
	assert_true(run_until(x, c_spc, 0, 5000));
}

/* ---- through the target port (scim_port.c): the manager reference ---------- */

#define E_SCHEMA "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User"

static void on_top_done(struct target_op *op)
{
	struct tctx *x = op->data;
	x->n_done++;
}

static void port_submit(struct tctx *x, struct target *tp, struct target_run *run, struct target_op *op)
{
	int n = x->n_done;
	op->data = x;
	assert_int_equal(tp->submit(run, op, on_top_done), 0);
	wait_done(x, n + 1);
	if (op->status != 0)
		fail_msg("%s %s: %d %s", target_action_name(op->action), op->anchor, op->status, op->error);
}

/* The stored user whose externalId is `ext`. */
static json_t *stored_user(const char *ext)
{
	json_t *users = store("Users"), *u, *found = NULL;
	size_t i;
	json_array_foreach(users, i, u)
		if (strcmp(json_string_value(json_object_get(u, "externalId")), ext) == 0)
			found = json_incref(u);
	json_decref(users);
	assert_non_null(found);
	return found;
}

static const char *manager_of(json_t *u)
{
	return json_string_value(json_object_get(json_object_get(json_object_get(u, E_SCHEMA), "manager"), "value"));
}

/* The manager rides with the user's upsert (enterprise extension, RFC 7643
 * §4.3) and is then replaced or removed alone by TARGET_MANAGER's PATCH,
 * leaving the rest of the user -- the extension's other attributes too -- as
 * it is. */
static void port_writes_the_manager_with_the_user_and_patches_it_alone(void **state)
{
	struct tctx *x = *state;
	struct scim_config cfg = test_config();
	struct target *tp = scim_target_new(&cfg);
	struct target_run *run;
	json_t *boss = user_res("boss", NULL), *boss2 = user_res("boss2", NULL), *worker = user_res("worker", "W"), *u;
	struct target_op ob = {.action = TARGET_UPSERT, .type = OBJECT_USER, .anchor = "ext-boss", .attrs = boss};
	struct target_op ob2 = {.action = TARGET_UPSERT, .type = OBJECT_USER, .anchor = "ext-boss2", .attrs = boss2};
	struct target_op ow = {.action = TARGET_UPSERT, .type = OBJECT_USER, .anchor = "ext-worker", .attrs = worker};
	struct target_op om = {.action = TARGET_MANAGER, .type = OBJECT_USER, .anchor = "ext-worker"};
	char err[256], boss_id[128], boss2_id[128], worker_id[128];

	json_object_set_new(worker, E_SCHEMA, json_pack("{s:s}", "department", "R&D"));
	json_array_append_new(json_object_get(worker, "schemas"), json_string(E_SCHEMA));
	assert_int_equal(tp->start(tp, &x->loop, &run, err, sizeof err), 0);
	x->t = (struct scim_target *)run; /* teardown stops it */
	port_submit(x, tp, run, &ob);
	snprintf(boss_id, sizeof boss_id, "%s", ob.result_id);
	port_submit(x, tp, run, &ob2);
	snprintf(boss2_id, sizeof boss2_id, "%s", ob2.result_id);
	ow.manager_id = boss_id;
	port_submit(x, tp, run, &ow);
	snprintf(worker_id, sizeof worker_id, "%s", ow.result_id);
	u = stored_user("ext-worker");
	assert_string_equal(manager_of(u), boss_id);
	json_decref(u);
	assert_null(json_object_get(worker, E_SCHEMA) ? json_object_get(json_object_get(worker, E_SCHEMA), "manager")
						      : NULL); /* the engine's resource is not touched */

	om.target_id = worker_id;
	om.manager_id = boss2_id;
	port_submit(x, tp, run, &om);
	u = stored_user("ext-worker");
	assert_string_equal(manager_of(u), boss2_id);
	assert_string_equal(json_string_value(json_object_get(json_object_get(u, E_SCHEMA), "department")), "R&D");
	assert_string_equal(json_string_value(json_object_get(u, "displayName")), "W");
	json_decref(u);

	om.manager_id = NULL; /* remove */
	port_submit(x, tp, run, &om);
	u = stored_user("ext-worker");
	assert_null(manager_of(u));
	assert_string_equal(json_string_value(json_object_get(json_object_get(u, E_SCHEMA), "department")), "R&D");
	json_decref(u);

	u = audit();
	assert_string_equal(json_string_value(json_object_get(json_array_get(u, json_array_size(u) - 1), "method")),
			    "PATCH");
	json_decref(u);
	json_decref(boss);
	json_decref(boss2);
	json_decref(worker);
	tp->close(tp);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(upsert_create_then_update_by_id, setup, teardown),
		cmocka_unit_test_setup_teardown(upsert_existing_external_id_matches, setup, teardown),
		cmocka_unit_test_setup_teardown(upsert_soft_match_by_username, setup, teardown),
		cmocka_unit_test_setup_teardown(taken_asks_with_a_filter, setup, teardown),
		cmocka_unit_test_setup_teardown(taken_scans_a_target_without_filtering, setup, teardown),
		cmocka_unit_test_setup_teardown(upsert_soft_match_escapes_filter, setup, teardown),
		cmocka_unit_test_setup_teardown(upsert_soft_match_refuses_other_anchor, setup, teardown),
		cmocka_unit_test_setup_teardown(upsert_prefix_written_and_matched, setup, teardown),
		cmocka_unit_test_setup_teardown(upsert_prefix_refuses_foreign_name, setup, teardown),
		cmocka_unit_test_setup_teardown(upsert_vanished_id_recreates, setup, teardown),
		cmocka_unit_test_setup_teardown(group_create_with_members_then_patch_members, setup, teardown),
		cmocka_unit_test_setup_teardown(group_update_keeps_members, setup, teardown),
		cmocka_unit_test_setup_teardown(exact_members_remove_the_unlisted, setup, teardown),
		cmocka_unit_test_setup_teardown(no_patch_puts_the_group_with_if_match, setup, teardown),
		cmocka_unit_test_setup_teardown(members_replace_style_replaces_the_list, setup, teardown),
		cmocka_unit_test_setup_teardown(removal_path_refused_switches_to_values, setup, teardown),
		cmocka_unit_test_setup_teardown(members_are_chunked, setup, teardown),
		cmocka_unit_test_setup_teardown(delete_then_delete_again, setup, teardown),
		cmocka_unit_test_setup_teardown(delete_by_anchor, setup, teardown),
		cmocka_unit_test_setup_teardown(retry_503_then_success, setup, teardown),
		cmocka_unit_test_setup_teardown(retry_after_429_is_honoured, setup, teardown),
		cmocka_unit_test_setup_teardown(permanent_400_fails, setup, teardown),
		cmocka_unit_test_setup_teardown(unauthorized_quarantine_then_recovery, setup, teardown),
		cmocka_unit_test_setup_teardown(fence_headers_on_every_write, setup, teardown),
		cmocka_unit_test_setup_teardown(cancel_all_completes_in_flight, setup, teardown),
		cmocka_unit_test_setup_teardown(max_in_flight_is_respected, setup, teardown),
		cmocka_unit_test_setup_teardown(unreachable_target_quarantines, setup, teardown),
		cmocka_unit_test_setup_teardown(stop_with_operations_in_flight, setup, teardown),
		cmocka_unit_test_setup_teardown(submit_rejects_malformed, setup, teardown),
		cmocka_unit_test_setup_teardown(connections_are_reused, setup, teardown),
		cmocka_unit_test_setup_teardown(service_provider_config_fetched_again, setup, teardown),
		cmocka_unit_test_setup_teardown(bulk_batches_upserts_and_deletes, setup, teardown),
		cmocka_unit_test_setup_teardown(bulk_operation_error_fails_alone, setup, teardown),
		cmocka_unit_test_setup_teardown(bulk_request_503_is_retried, setup, teardown),
		cmocka_unit_test_setup_teardown(port_writes_the_manager_with_the_user_and_patches_it_alone, setup,
						teardown),
	};
	curl_global_init(CURL_GLOBAL_DEFAULT);
	int rc = cmocka_run_group_tests_name("scim_target", tests, group_setup, group_teardown);
	curl_global_cleanup();
	return rc;
}
