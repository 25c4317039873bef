/*
 * tests/unit/test_ldap_source.c -- the OpenLDAP source (sync/source/openldap.c)
 * against a real private slapd from tests/fixtures/slapd.sh:
 *   - a full refresh delivers every user and group, anchors and attributes as
 *     the server has them, then REFRESH_END(present_phase) with a cursor;
 *   - add / modify / modrdn / delete / move out of scope while persisting;
 *   - a restart from a cursor reports exactly what changed while stopped;
 *   - a cursor that does not parse is a start error;
 *   - back-pressure: the queue never holds more than queue_max;
 *   - slapd killed and restarted: STATUS down, STATUS up, persisting goes on;
 *   - e-syncRefreshRequired (search base renamed): a full refresh follows;
 *   - stop during a refresh, and while the server hangs, is prompt;
 *   - the paged search (sync/source/ldap_paged.c, RFC 2696) lists a base in
 *     pages, stops on the callback's error, tells a missing base and a lost
 *     server apart.
 *
 * The fixture: a bash process that sources slapd.sh, starts slapd, prints
 * one "ready" line and then obeys commands on stdin (kill, start, sigstop).
 * It dies with this process (PR_SET_PDEATHSIG) and its EXIT trap stops slapd
 * and removes the temp dir; teardown checks that no slapd is left.
 *
 * Debugging: TEST_FILTER='persist*' runs matching tests only; SLAPD_DEBUG
 * (e.g. stats,sync) is passed to slapd, CANOPY_SLAPD_LOG=FILE keeps its log.
 */
#define _GNU_SOURCE /* memmem */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <errno.h>
#include <limits.h>
#include <poll.h>
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <ldap.h>
#include <uv.h>

#include "sync/source/ldap_paged.h"
#include "sync/source/openldap.h"

#define BASE "dc=example,dc=com"
#define PEOPLE "ou=people," BASE
#define GROUPS "ou=groups," BASE
#define ANY (-1) /* any object type in wait_event */
#define WAIT_MS 10000

/* ---- the slapd fixture process ------------------------------------------- */

struct slapd {
	pid_t pid;       /* the bash that holds the fixture */
	int to, from;    /* its stdin (commands) and stdout (replies) */
	char url[256];
	char pw[128];
	char dir[PATH_MAX];
	pid_t slapd_pid;
};

static const char FIXTURE_SCRIPT[] =
	". \"$1/tests/fixtures/slapd.sh\" || exit 1\n"
	"slapd_start \"$2\" \"$3\" >&2 || exit 1\n"
	"echo \"ready $SLAPD_URL $SLAPD_PW_FILE $SLAPD_PID $SLAPD_DIR\"\n"
	"while read -r cmd; do\n"
	"  case $cmd in\n"
	"  kill) kill -KILL \"$SLAPD_PID\"; wait \"$SLAPD_PID\" 2>/dev/null\n"
	"        forget_pid \"$SLAPD_PID\"; echo ok ;;\n"
	"  start) if _slapd_launch \"$SLAPD_PORT\" >&2; then echo \"ok $SLAPD_URL $SLAPD_PID\";\n"
	"         else echo fail; fi ;;\n"
	"  sigstop) kill -STOP \"$SLAPD_PID\"; echo ok ;;\n"
	"  *) echo unknown ;;\n"
	"  esac\n"
	"done\n"
	/* stdin closed: a stopped slapd could not act on the cleanup's TERM */
	"kill -CONT \"$SLAPD_PID\" 2>/dev/null\n"
	"exit 0\n";

static const char *source_dir(void)
{
	static char dir[PATH_MAX];
	const char *env = getenv("CANOPY_SOURCE_DIR");
	const char *suffix = "/tests/unit/test_ldap_source.c";
	size_t n = strlen(__FILE__), k = strlen(suffix);

	if (env != NULL && *env != '\0')
		return env;
	if (n > k && strcmp(__FILE__ + n - k, suffix) == 0) {
		snprintf(dir, sizeof dir, "%.*s", (int)(n - k), __FILE__);
		return dir;
	}
	return "../..";
}

static int64_t now_ms(void)
{
	struct timespec t;
	clock_gettime(CLOCK_MONOTONIC, &t);
	return (int64_t)t.tv_sec * 1000 + t.tv_nsec / 1000000;
}

/* One line from fd within timeout_ms (no newline kept); 0 or -1. */
static int read_line(int fd, char *buf, size_t len, int timeout_ms)
{
	int64_t end = now_ms() + timeout_ms;
	size_t n = 0;

	while (n + 1 < len) {
		struct pollfd p = {.fd = fd, .events = POLLIN};
		int left = (int)(end - now_ms());
		char ch;
		if (left <= 0 || poll(&p, 1, left) <= 0)
			return -1;
		if (read(fd, &ch, 1) != 1)
			return -1;
		if (ch == '\n') {
			buf[n] = '\0';
			return 0;
		}
		buf[n++] = ch;
	}
	return -1;
}

static int slapd_cmd(struct slapd *d, const char *cmd, char *reply, size_t len)
{
	char line[64];

	snprintf(line, sizeof line, "%s\n", cmd);
	if (write(d->to, line, strlen(line)) != (ssize_t)strlen(line))
		return -1;
	return read_line(d->from, reply, len, 20000);
}

static void slapd_start(struct slapd *d, int users, int groups)
{
	int in[2], out[2];
	pid_t parent = getpid();
	char u[16], g[16], line[1024], pwfile[PATH_MAX];
	FILE *f;

	snprintf(u, sizeof u, "%d", users);
	snprintf(g, sizeof g, "%d", groups);
	assert_int_equal(pipe(in), 0);
	assert_int_equal(pipe(out), 0);
	d->pid = fork();
	assert_true(d->pid >= 0);
	if (d->pid == 0) {
		/* dies with the test even on SIGKILL; slapd dies with this bash */
		prctl(PR_SET_PDEATHSIG, SIGKILL);
		if (getppid() != parent)
			_exit(1);
		dup2(in[0], 0);
		dup2(out[1], 1);
		close(in[0]), close(in[1]), close(out[0]), close(out[1]);
		execlp("bash", "bash", "-c", FIXTURE_SCRIPT, "bash", source_dir(), u, g, (char *)NULL);
		_exit(127);
	}
	close(in[0]);
	close(out[1]);
	d->to = in[1];
	d->from = out[0];
	assert_int_equal(read_line(d->from, line, sizeof line, 30000), 0);
	assert_int_equal(sscanf(line, "ready %255s %4095s %d %4095s", d->url, pwfile, &d->slapd_pid, d->dir), 4);
	f = fopen(pwfile, "r");
	assert_non_null(f);
	assert_non_null(fgets(d->pw, sizeof d->pw, f));
	fclose(f);
}

/* Close the command pipe: the bash leaves its loop, its EXIT trap stops
 * slapd and removes the temp dir. TERM, then KILL, if it lingers. */
static void slapd_finish(struct slapd *d)
{
	int st, i;
	char tmp[PATH_MAX];
	struct stat sb;

	if (d->pid <= 0)
		return;
	if (getenv("CANOPY_SLAPD_LOG") != NULL) { /* debugging: with SLAPD_DEBUG=stats,sync */
		char cmd[2 * PATH_MAX];
		snprintf(cmd, sizeof cmd, "cp '%s/slapd.log' '%s'", d->dir, getenv("CANOPY_SLAPD_LOG"));
		if (system(cmd) != 0)
			print_message("could not copy slapd.log\n");
	}
	close(d->to);
	for (i = 0; i < 200 && waitpid(d->pid, &st, WNOHANG) == 0; i++)
		usleep(25000);
	if (i == 200) {
		kill(d->pid, SIGTERM);
		for (i = 0; i < 120 && waitpid(d->pid, &st, WNOHANG) == 0; i++)
			usleep(25000);
		if (i == 120) {
			kill(d->pid, SIGKILL);
			waitpid(d->pid, &st, 0);
		}
	}
	close(d->from);
	d->pid = 0;
	/* nothing left behind: no slapd, no temp dir */
	assert_int_equal(kill(d->slapd_pid, 0), -1);
	assert_int_equal(errno, ESRCH);
	snprintf(tmp, sizeof tmp, "%s", d->dir);
	*strrchr(tmp, '/') = '\0';
	assert_int_not_equal(stat(tmp, &sb), 0);
}

/* ---- test context -------------------------------------------------------- */

struct ctx {
	struct slapd d;
	uv_loop_t loop;
	uv_timer_t watchdog;
	bool fired;
	LDAP *ld; /* admin connection: reads and changes */
	struct ldap_source_config cfg;
	const char *urls[1];
	struct ldap_source *src;
	bool running; /* src started and its done not yet called */
	struct source_event **ev;
	size_t n, cap;
	unsigned slow_us;       /* consumer work per event */
	size_t stop_after;      /* stop_during_refresh: stop once this many events came */
	int64_t stop_ms, done_ms;
};

static void on_event(void *data, struct source_event *ev)
{
	struct ctx *c = data;

	if (c->n == c->cap) {
		c->cap = c->cap ? c->cap * 2 : 256;
		c->ev = realloc(c->ev, c->cap * sizeof *c->ev);
		assert_non_null(c->ev);
	}
	c->ev[c->n++] = ev;
	if (c->slow_us)
		usleep(c->slow_us);
}

static void on_done(void *data)
{
	struct ctx *c = data;
	c->running = false;
	c->done_ms = now_ms();
}

static void on_watchdog(uv_timer_t *t)
{
	struct ctx *c = t->data;
	c->fired = true;
}

static void admin_connect(struct ctx *c)
{
	const int v3 = LDAP_VERSION3;
	/* a server that stops answering (slapd's syncprov deadlock, see
	 * openldap_conn.c) fails the test here instead of hanging it */
	struct timeval op = {30, 0};
	struct berval pw = {strlen(c->d.pw), c->d.pw};

	if (c->ld != NULL)
		ldap_unbind_ext_s(c->ld, NULL, NULL);
	assert_int_equal(ldap_initialize(&c->ld, c->d.url), LDAP_SUCCESS);
	ldap_set_option(c->ld, LDAP_OPT_PROTOCOL_VERSION, &v3);
	ldap_set_option(c->ld, LDAP_OPT_TIMEOUT, &op);
	ldap_set_option(c->ld, LDAP_OPT_NETWORK_TIMEOUT, &op);
	assert_int_equal(ldap_sasl_bind_s(c->ld, "cn=admin," BASE, LDAP_SASL_SIMPLE, &pw, NULL, NULL, NULL),
			 LDAP_SUCCESS);
}

static struct ctx *ctx_new(int users, int groups)
{
	struct ctx *c = calloc(1, sizeof *c);

	assert_non_null(c);
	assert_int_equal(uv_loop_init(&c->loop), 0);
	uv_timer_init(&c->loop, &c->watchdog);
	c->watchdog.data = c;
	if (users >= 0) {
		slapd_start(&c->d, users, groups);
		admin_connect(c);
	} else {
		snprintf(c->d.url, sizeof c->d.url, "ldap://127.0.0.1:1/");
	}
	c->urls[0] = c->d.url;
	c->cfg = (struct ldap_source_config){
		.urls = c->urls, .n_urls = 1,
		.bind_dn = "cn=admin," BASE, .password = c->d.pw,
		.user_base = PEOPLE, .user_filter = "(objectClass=inetOrgPerson)",
		.group_base = GROUPS, .group_filter = "(objectClass=groupOfNames)",
		.backoff_min_ms = 50, .backoff_max_ms = 400,
	};
	return c;
}

static int setup_small(void **state) { *state = ctx_new(200, 10); return 0; }
static int setup_none(void **state) { *state = ctx_new(-1, 0); return 0; }
static int setup_large(void **state) { *state = ctx_new(3000, 10); return 0; }

/* Run the loop until pred holds or timeout_ms passes. */
static bool run_until(struct ctx *c, bool (*pred)(struct ctx *, const void *), const void *arg, int timeout_ms)
{
	c->fired = false;
	uv_timer_start(&c->watchdog, on_watchdog, (uint64_t)timeout_ms, 0);
	while (!(pred && pred(c, arg)) && !c->fired)
		uv_run(&c->loop, UV_RUN_ONCE);
	uv_timer_stop(&c->watchdog);
	return pred && pred(c, arg);
}

static bool not_running(struct ctx *c, const void *arg) { return !c->running; }

static void start(struct ctx *c, const void *cursor, size_t len)
{
	char err[256] = "";
	int rc = ldap_source_start(&c->src, &c->loop, &c->cfg, cursor, len, on_event, c, err, sizeof err);
	if (rc != 0)
		fail_msg("ldap_source_start: %d %s", rc, err);
	c->running = true;
}

static void stop(struct ctx *c)
{
	if (!c->running)
		return;
	c->stop_ms = now_ms();
	ldap_source_stop(c->src, on_done, c);
	assert_true(run_until(c, not_running, NULL, WAIT_MS));
}

static int teardown(void **state)
{
	struct ctx *c = *state;

	stop(c);
	uv_close((uv_handle_t *)&c->watchdog, NULL);
	uv_run(&c->loop, UV_RUN_DEFAULT);
	assert_int_equal(uv_loop_close(&c->loop), 0);
	for (size_t i = 0; i < c->n; i++)
		source_event_free(c->ev[i]);
	free(c->ev);
	if (c->ld != NULL)
		ldap_unbind_ext_s(c->ld, NULL, NULL);
	slapd_finish(&c->d);
	free(c);
	return 0;
}

/* ---- event queries -------------------------------------------------------- */

struct want {
	size_t from;
	enum source_event_kind kind;
	int type;            /* ANY or an object_type */
	const char *anchor;  /* or NULL */
	const char *dn;      /* or NULL */
	long found;
};

static bool match(const struct source_event *ev, const struct want *w)
{
	return ev->kind == w->kind && (w->type == ANY || (int)ev->type == w->type) &&
	       (w->anchor == NULL || (ev->anchor && strcmp(ev->anchor, w->anchor) == 0)) &&
	       (w->dn == NULL || (ev->dn && strcasecmp(ev->dn, w->dn) == 0));
}

static bool has_event(struct ctx *c, const void *arg)
{
	struct want *w = (struct want *)arg;
	for (size_t i = w->from; i < c->n; i++)
		if (match(c->ev[i], w)) {
			w->found = (long)i;
			return true;
		}
	return false;
}

/* Wait for an event at index >= from; returns its index (fails the test on timeout). */
static size_t wait_event(struct ctx *c, size_t from, enum source_event_kind kind, int type, const char *anchor,
			 const char *dn)
{
	struct want w = {from, kind, type, anchor, dn, -1};
	if (!run_until(c, has_event, &w, WAIT_MS)) {
		for (size_t i = from; i < c->n; i++)
			print_message("  #%zu kind %d type %d anchor %s dn %s msg %s\n", i, c->ev[i]->kind,
				      c->ev[i]->type, c->ev[i]->anchor ? c->ev[i]->anchor : "-",
				      c->ev[i]->dn ? c->ev[i]->dn : "-", c->ev[i]->message ? c->ev[i]->message : "-");
		fail_msg("no event kind %d type %d anchor %s dn %s after #%zu (have %zu)", kind, type,
			 anchor ? anchor : "-", dn ? dn : "-", from, c->n);
	}
	return (size_t)w.found;
}

static size_t count(struct ctx *c, size_t from, size_t to, enum source_event_kind kind, int type)
{
	size_t k = 0;
	for (size_t i = from; i < to && i < c->n; i++)
		k += c->ev[i]->kind == kind && (type == ANY || (int)c->ev[i]->type == type);
	return k;
}

static const struct object_attr *attr(const struct source_event *ev, const char *name)
{
	for (size_t i = 0; i < ev->n_attrs; i++)
		if (strcasecmp(ev->attrs[i].name, name) == 0)
			return &ev->attrs[i];
	return NULL;
}

/* Both scopes refreshed: index of the second REFRESH_END after from. */
static size_t wait_refreshed(struct ctx *c, size_t from)
{
	size_t u = wait_event(c, from, SOURCE_REFRESH_END, OBJECT_USER, NULL, NULL);
	size_t g = wait_event(c, from, SOURCE_REFRESH_END, OBJECT_GROUP, NULL, NULL);
	return u > g ? u : g;
}

/* ---- directory helpers (admin connection) -------------------------------- */

static void uuid_of(struct ctx *c, const char *dn, char *out)
{
	char *attrs[] = {"entryUUID", NULL};
	LDAPMessage *res = NULL;
	struct berval **v;

	assert_int_equal(ldap_search_ext_s(c->ld, dn, LDAP_SCOPE_BASE, "(objectClass=*)", attrs, 0, NULL, NULL,
					   NULL, 0, &res), LDAP_SUCCESS);
	v = ldap_get_values_len(c->ld, ldap_first_entry(c->ld, res), "entryUUID");
	assert_non_null(v);
	snprintf(out, 37, "%.*s", (int)v[0]->bv_len, v[0]->bv_val);
	ldap_value_free_len(v);
	ldap_msgfree(res);
}

static void add_user(struct ctx *c, const char *uid, const char *title)
{
	char dn[256];
	char *oc[] = {"inetOrgPerson", NULL}, *u[] = {(char *)uid, NULL}, *cn[] = {"Test User", NULL},
	     *sn[] = {"User", NULL}, *t[] = {(char *)title, NULL};
	LDAPMod m[] = {{LDAP_MOD_ADD, "objectClass", {oc}}, {LDAP_MOD_ADD, "uid", {u}},
		       {LDAP_MOD_ADD, "cn", {cn}}, {LDAP_MOD_ADD, "sn", {sn}}, {LDAP_MOD_ADD, "title", {t}}};
	LDAPMod *mods[] = {&m[0], &m[1], &m[2], &m[3], &m[4], NULL};

	snprintf(dn, sizeof dn, "uid=%s," PEOPLE, uid);
	assert_int_equal(ldap_add_ext_s(c->ld, dn, mods, NULL, NULL), LDAP_SUCCESS);
}

static void modify(struct ctx *c, const char *dn, int op, const char *name, const char *value)
{
	char *v[] = {(char *)value, NULL};
	LDAPMod m = {op, (char *)name, {v}};
	LDAPMod *mods[] = {&m, NULL};

	assert_int_equal(ldap_modify_ext_s(c->ld, dn, mods, NULL, NULL), LDAP_SUCCESS);
}

static void rename_entry(struct ctx *c, const char *dn, const char *rdn, const char *parent)
{
	assert_int_equal(ldap_rename_s(c->ld, dn, rdn, parent, 1, NULL, NULL), LDAP_SUCCESS);
}

static void delete_entry(struct ctx *c, const char *dn)
{
	assert_int_equal(ldap_delete_ext_s(c->ld, dn, NULL, NULL), LDAP_SUCCESS);
}

/* ---- tests ---------------------------------------------------------------- */

/* Every attribute the server has for the entry arrived, values in order. */
static void check_entry_matches(struct ctx *c, LDAPMessage *e, const struct source_event *ev)
{
	BerElement *ber = NULL;
	char *dn = ldap_get_dn(c->ld, e);

	assert_string_equal(ev->dn, dn);
	ldap_memfree(dn);
	for (char *a = ldap_first_attribute(c->ld, e, &ber); a; a = ldap_next_attribute(c->ld, e, ber)) {
		struct berval **v = ldap_get_values_len(c->ld, e, a);
		const struct object_attr *got = attr(ev, a);
		if (strcasecmp(a, "entryUUID") != 0) {
			assert_non_null(got);
			assert_int_equal(got->n_values, ldap_count_values_len(v));
			for (size_t i = 0; i < got->n_values; i++)
				assert_memory_equal(got->values[i], v[i]->bv_val, v[i]->bv_len);
		}
		ldap_value_free_len(v);
		ldap_memfree(a);
	}
	ber_free(ber, 0);
}

/* Compare every in-scope entry of base with the ENTRY events of `type`. */
static size_t check_scope(struct ctx *c, const char *base, const char *filter, int type, size_t from, size_t to)
{
	char *attrs[] = {"*", "entryUUID", NULL};
	LDAPMessage *res = NULL;
	size_t n = 0;

	assert_int_equal(ldap_search_ext_s(c->ld, base, LDAP_SCOPE_SUBTREE, filter, attrs, 0, NULL, NULL, NULL,
					   0, &res), LDAP_SUCCESS);
	for (LDAPMessage *e = ldap_first_entry(c->ld, res); e; e = ldap_next_entry(c->ld, e), n++) {
		struct berval **u = ldap_get_values_len(c->ld, e, "entryUUID");
		char uuid[37];
		size_t i;
		snprintf(uuid, sizeof uuid, "%.*s", (int)u[0]->bv_len, u[0]->bv_val);
		ldap_value_free_len(u);
		for (i = from; i < to; i++)
			if (c->ev[i]->kind == SOURCE_ENTRY && (int)c->ev[i]->type == type &&
			    strcmp(c->ev[i]->anchor, uuid) == 0)
				break;
		if (i == to)
			fail_msg("no SOURCE_ENTRY with anchor %s", uuid);
		check_entry_matches(c, e, c->ev[i]);
	}
	ldap_msgfree(res);
	return n;
}

static void full_refresh_delivers_everything(void **state)
{
	struct ctx *c = *state;
	size_t ub, ue, gb, ge;
	const struct object_attr *a;

	start(c, NULL, 0);
	wait_refreshed(c, 0);

	/* STATUS up, then users and groups, each bracketed by BEGIN / END */
	assert_int_equal(c->ev[0]->kind, SOURCE_STATUS);
	assert_true(c->ev[0]->connected);
	ub = wait_event(c, 0, SOURCE_REFRESH_BEGIN, OBJECT_USER, NULL, NULL);
	ue = wait_event(c, 0, SOURCE_REFRESH_END, OBJECT_USER, NULL, NULL);
	gb = wait_event(c, 0, SOURCE_REFRESH_BEGIN, OBJECT_GROUP, NULL, NULL);
	ge = wait_event(c, 0, SOURCE_REFRESH_END, OBJECT_GROUP, NULL, NULL);
	assert_true(ub < ue && ue < gb && gb < ge);
	assert_int_equal(ue - ub - 1, 200);
	assert_int_equal(count(c, ub, ue, SOURCE_ENTRY, OBJECT_USER), 200);
	assert_int_equal(ge - gb - 1, 10);
	assert_int_equal(count(c, gb, ge, SOURCE_ENTRY, OBJECT_GROUP), 10);
	/* a refresh from scratch is a present phase: no PRESENT / DELETE needed */
	assert_int_equal(count(c, 0, c->n, SOURCE_PRESENT, ANY) + count(c, 0, c->n, SOURCE_DELETE, ANY), 0);
	assert_true(c->ev[ue]->present_phase);
	assert_true(c->ev[ge]->present_phase);
	assert_non_null(c->ev[ue]->cursor);
	assert_non_null(c->ev[ge]->cursor);
	/* no cursor inside a refresh: only a complete one may be committed */
	for (size_t i = ub + 1; i < ue; i++)
		assert_null(c->ev[i]->cursor);

	/* anchors are the server's entryUUIDs; all attributes, all values */
	assert_int_equal(check_scope(c, PEOPLE, "(objectClass=inetOrgPerson)", OBJECT_USER, ub, ue), 200);
	assert_int_equal(check_scope(c, GROUPS, "(objectClass=groupOfNames)", OBJECT_GROUP, gb, ge), 10);
	for (size_t i = ub + 1; i < ue; i++) {
		assert_int_equal(strlen(c->ev[i]->anchor), 36);
		if (strcmp(c->ev[i]->dn, "uid=user00003," PEOPLE) == 0) {
			a = attr(c->ev[i], "givenName");
			assert_non_null(a);
			assert_string_equal(a->values[0], "Zo\xc3\xab");
		}
	}
	for (size_t i = gb + 1; i < ge; i++)
		if (strcmp(c->ev[i]->dn, "cn=group0001," GROUPS) == 0) {
			a = attr(c->ev[i], "member");
			assert_non_null(a);
			assert_int_equal(a->n_values, 200);
			assert_string_equal(a->values[199], "uid=user00200," PEOPLE);
		}
}

static void expect_cursor_advanced(struct ctx *c, size_t i, const void **last, size_t *last_len)
{
	const struct source_event *ev = c->ev[i];
	assert_non_null(ev->cursor);
	assert_false(ev->cursor_len == *last_len && memcmp(ev->cursor, *last, *last_len) == 0);
	*last = ev->cursor;
	*last_len = ev->cursor_len;
}

static void persist_delivers_changes(void **state)
{
	struct ctx *c = *state;
	char uuid[37], gone[37];
	const void *cur;
	size_t cur_len, i, end;
	const struct object_attr *a;

	start(c, NULL, 0);
	end = wait_refreshed(c, 0);
	cur = c->ev[end]->cursor;
	cur_len = c->ev[end]->cursor_len;

	add_user(c, "persist1", "Engineer");
	uuid_of(c, "uid=persist1," PEOPLE, uuid);
	i = wait_event(c, end, SOURCE_ENTRY, OBJECT_USER, uuid, "uid=persist1," PEOPLE);
	assert_string_equal(attr(c->ev[i], "title")->values[0], "Engineer");
	expect_cursor_advanced(c, i, &cur, &cur_len);

	modify(c, "uid=persist1," PEOPLE, LDAP_MOD_REPLACE, "title", "Director");
	i = wait_event(c, i + 1, SOURCE_ENTRY, OBJECT_USER, uuid, NULL);
	assert_string_equal(attr(c->ev[i], "title")->values[0], "Director");
	expect_cursor_advanced(c, i, &cur, &cur_len);

	/* modrdn: same anchor, new DN */
	rename_entry(c, "uid=persist1," PEOPLE, "uid=persist2", NULL);
	i = wait_event(c, i + 1, SOURCE_ENTRY, OBJECT_USER, uuid, "uid=persist2," PEOPLE);
	assert_string_equal(attr(c->ev[i], "uid")->values[0], "persist2");
	expect_cursor_advanced(c, i, &cur, &cur_len);

	/* a group gains a member: the whole multi-valued attribute comes */
	modify(c, "cn=group0002," GROUPS, LDAP_MOD_ADD, "member", "uid=persist2," PEOPLE);
	uuid_of(c, "cn=group0002," GROUPS, gone);
	i = wait_event(c, i + 1, SOURCE_ENTRY, OBJECT_GROUP, gone, NULL);
	a = attr(c->ev[i], "member");
	assert_non_null(a);
	assert_int_equal(a->n_values, 24); /* users 1, 10, .. 199 and persist2 */
	assert_string_equal(a->values[23], "uid=persist2," PEOPLE);
	expect_cursor_advanced(c, i, &cur, &cur_len);

	delete_entry(c, "uid=persist2," PEOPLE);
	i = wait_event(c, i + 1, SOURCE_DELETE, OBJECT_USER, uuid, NULL);
	expect_cursor_advanced(c, i, &cur, &cur_len);

	/* moved out of the scope: a delete for the consumer */
	uuid_of(c, "uid=user00010," PEOPLE, gone);
	rename_entry(c, "uid=user00010," PEOPLE, "uid=user00010", "ou=disabled," BASE);
	i = wait_event(c, i + 1, SOURCE_DELETE, OBJECT_USER, gone, NULL);
	expect_cursor_advanced(c, i, &cur, &cur_len);
}

static bool in_list(char (*list)[37], size_t n, const char *s)
{
	for (size_t i = 0; i < n; i++)
		if (strcmp(list[i], s) == 0)
			return true;
	return false;
}

static void restart_from_cursor_reports_only_changes(void **state)
{
	struct ctx *c = *state;
	char added[37], deleted[37], changed[37], (*current)[37] = NULL;
	char *attrs[] = {"entryUUID", NULL};
	LDAPMessage *res = NULL;
	size_t end, from, ub, ue, ncur = 0;
	void *cursor;
	size_t cursor_len;

	start(c, NULL, 0);
	end = wait_refreshed(c, 0);
	cursor_len = c->ev[end]->cursor_len;
	cursor = malloc(cursor_len);
	memcpy(cursor, c->ev[end]->cursor, cursor_len);
	stop(c);

	/* while stopped */
	add_user(c, "while1", "Intern");
	uuid_of(c, "uid=while1," PEOPLE, added);
	uuid_of(c, "uid=user00020," PEOPLE, deleted);
	delete_entry(c, "uid=user00020," PEOPLE);
	uuid_of(c, "uid=user00021," PEOPLE, changed);
	modify(c, "uid=user00021," PEOPLE, LDAP_MOD_REPLACE, "title", "Boss");

	from = c->n;
	start(c, cursor, cursor_len);
	free(cursor);
	wait_refreshed(c, from);
	ub = wait_event(c, from, SOURCE_REFRESH_BEGIN, OBJECT_USER, NULL, NULL);
	ue = wait_event(c, from, SOURCE_REFRESH_END, OBJECT_USER, NULL, NULL);

	/* only the changed entries come in full */
	assert_int_equal(count(c, from, c->n, SOURCE_ENTRY, OBJECT_USER), 2);
	assert_int_equal(count(c, from, c->n, SOURCE_ENTRY, OBJECT_GROUP), 0);
	wait_event(c, ub, SOURCE_ENTRY, OBJECT_USER, added, "uid=while1," PEOPLE);
	wait_event(c, ub, SOURCE_ENTRY, OBJECT_USER, changed, NULL);

	/* ...and the consumer can tell exactly which one is gone */
	assert_int_equal(ldap_search_ext_s(c->ld, PEOPLE, LDAP_SCOPE_SUBTREE, "(objectClass=inetOrgPerson)", attrs,
					   0, NULL, NULL, NULL, 0, &res), LDAP_SUCCESS);
	current = calloc((size_t)ldap_count_entries(c->ld, res), sizeof *current);
	for (LDAPMessage *e = ldap_first_entry(c->ld, res); e; e = ldap_next_entry(c->ld, e)) {
		struct berval **v = ldap_get_values_len(c->ld, e, "entryUUID");
		snprintf(current[ncur++], 37, "%.*s", (int)v[0]->bv_len, v[0]->bv_val);
		ldap_value_free_len(v);
	}
	ldap_msgfree(res);
	if (c->ev[ue]->present_phase) {
		/* present phase: every current entry reported, the deleted one not */
		print_message("slapd used the present phase\n");
		for (size_t i = 0; i < ncur; i++) {
			struct want w = {ub, SOURCE_PRESENT, OBJECT_USER, current[i], NULL, -1};
			struct want e = {ub, SOURCE_ENTRY, OBJECT_USER, current[i], NULL, -1};
			assert_true(has_event(c, &w) || has_event(c, &e));
		}
		for (size_t i = ub; i < ue; i++)
			assert_string_not_equal(c->ev[i]->anchor ? c->ev[i]->anchor : "", deleted);
	} else {
		/* delete phase: exactly the deleted entry as SOURCE_DELETE */
		print_message("slapd used the delete phase\n");
		assert_int_equal(count(c, ub, ue, SOURCE_DELETE, OBJECT_USER), 1);
		assert_int_equal(count(c, ub, ue, SOURCE_PRESENT, OBJECT_USER), 0);
		wait_event(c, ub, SOURCE_DELETE, OBJECT_USER, deleted, NULL);
	}
	assert_false(in_list(current, ncur, deleted));
	free(current);
	assert_non_null(c->ev[ue]->cursor);
}

static void garbage_cursor_is_start_error(void **state)
{
	struct ctx *c = *state;
	static const char *const bad[] = {
		"garbage", "v2\nusers=\n", "v1\nusers=!!!!\n", "v1\nusers=\nusers=\n", "v1\ncolour=YQ==\n",
		"v1\nusers=YQ==", "v1\nusers",
	};
	char err[256];
	struct ldap_source *s = NULL;

	for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
		err[0] = '\0';
		assert_int_equal(ldap_source_start(&s, &c->loop, &c->cfg, bad[i], strlen(bad[i]), on_event, c, err,
						   sizeof err), -EINVAL);
		assert_non_null(strstr(err, "cursor"));
		assert_null(s);
		assert_int_equal(uv_loop_alive(&c->loop), 0); /* nothing left running */
	}

	/* a well-formed one starts; an unreachable server is a STATUS, not an error */
	start(c, "v1\nusers=\ngroups=\n", 18);
	size_t i = wait_event(c, 0, SOURCE_STATUS, ANY, NULL, NULL);
	assert_false(c->ev[i]->connected);
	assert_non_null(strstr(c->ev[i]->message, "ldap://127.0.0.1:1/"));
	assert_non_null(strstr(c->ev[i]->message, "Can't contact LDAP server"));
}

static bool got_n(struct ctx *c, const void *arg) { return c->n >= *(const size_t *)arg; }

struct since {
	size_t from, n;
};

static bool got_users_since(struct ctx *c, const void *arg)
{
	const struct since *w = arg;
	return count(c, w->from, c->n, SOURCE_ENTRY, OBJECT_USER) >= w->n;
}

static void back_pressure_bounds_the_queue(void **state)
{
	struct ctx *c = *state;
	size_t end, before, want;

	c->cfg.queue_max = 4;
	c->slow_us = 300; /* a consumer slower than the directory */
	start(c, NULL, 0);
	end = wait_refreshed(c, 0);
	assert_int_equal(ldap_source_queue_peak(c->src), 4); /* it filled, never beyond */
	assert_int_equal(count(c, 0, end, SOURCE_ENTRY, OBJECT_USER), 200);
	assert_int_equal(count(c, 0, end, SOURCE_ENTRY, OBJECT_GROUP), 10);

	/* paused consumer: 4 queued, the rest waits in the directory */
	c->slow_us = 0;
	ldap_source_pause(c->src);
	before = c->n;
	for (int k = 0; k < 12; k++) {
		char uid[16];
		snprintf(uid, sizeof uid, "bp%02d", k);
		add_user(c, uid, "Tester");
	}
	want = before + 1;
	assert_false(run_until(c, got_n, &want, 500));
	assert_int_equal(c->n, before);
	assert_int_equal(ldap_source_queue_peak(c->src), 4);
	ldap_source_resume(c->src);
	assert_true(run_until(c, got_users_since, &(struct since){before, 12}, WAIT_MS));
	assert_int_equal(ldap_source_queue_peak(c->src), 4);
}

static void server_restart_reconnects_and_persists(void **state)
{
	struct ctx *c = *state;
	char reply[512], url[300], uuid[37];
	size_t end, down, up, i;

	start(c, NULL, 0);
	end = wait_refreshed(c, 0);
	assert_int_equal(slapd_cmd(&c->d, "kill", reply, sizeof reply), 0);
	assert_string_equal(reply, "ok");

	down = wait_event(c, end, SOURCE_STATUS, ANY, NULL, NULL);
	assert_false(c->ev[down]->connected);
	assert_non_null(strstr(c->ev[down]->message, c->d.url));

	assert_int_equal(slapd_cmd(&c->d, "start", reply, sizeof reply), 0);
	assert_int_equal(sscanf(reply, "ok %299s %d", url, &c->d.slapd_pid), 2);
	assert_string_equal(url, c->d.url); /* same port */
	admin_connect(c);
	/* a write after the restart: slapd only checkpoints contextCSN every 100
	 * writes, so until one happens it may refuse our newer cookie (53) */
	add_user(c, "after1", "Survivor");
	uuid_of(c, "uid=after1," PEOPLE, uuid);

	up = down;
	do { /* connected again (possibly after a refused attempt or two) */
		up = wait_event(c, up + 1, SOURCE_STATUS, ANY, NULL, NULL);
	} while (!c->ev[up]->connected);
	wait_event(c, up, SOURCE_REFRESH_END, OBJECT_USER, NULL, NULL);
	wait_event(c, up, SOURCE_REFRESH_END, OBJECT_GROUP, NULL, NULL);
	i = wait_event(c, down, SOURCE_ENTRY, OBJECT_USER, uuid, NULL);

	/* and persisting goes on */
	modify(c, "uid=after1," PEOPLE, LDAP_MOD_REPLACE, "title", "Phoenix");
	i = wait_event(c, i + 1, SOURCE_ENTRY, OBJECT_USER, uuid, NULL);
	assert_string_equal(attr(c->ev[i], "title")->values[0], "Phoenix");
	assert_non_null(c->ev[i]->cursor);
}

static void add_ou(struct ctx *c, const char *dn, const char *ou)
{
	char *oc[] = {"organizationalUnit", NULL}, *v[] = {(char *)ou, NULL};
	LDAPMod m[] = {{LDAP_MOD_ADD, "objectClass", {oc}}, {LDAP_MOD_ADD, "ou", {v}}};
	LDAPMod *mods[] = {&m[0], &m[1], NULL};
	assert_int_equal(ldap_add_ext_s(c->ld, dn, mods, NULL, NULL), LDAP_SUCCESS);
}

static void add_group(struct ctx *c, const char *dn, const char *cn, const char *member)
{
	char *oc[] = {"groupOfNames", NULL}, *v[] = {(char *)cn, NULL}, *m1[] = {(char *)member, NULL};
	LDAPMod m[] = {{LDAP_MOD_ADD, "objectClass", {oc}}, {LDAP_MOD_ADD, "cn", {v}},
		       {LDAP_MOD_ADD, "member", {m1}}};
	LDAPMod *mods[] = {&m[0], &m[1], &m[2], NULL};
	assert_int_equal(ldap_add_ext_s(c->ld, dn, mods, NULL, NULL), LDAP_SUCCESS);
}

static void refresh_required_restarts_full(void **state)
{
	struct ctx *c = *state;
	char uuid[37];
	size_t end, down, begin, i, e;

	add_ou(c, "ou=rr," BASE, "rr");
	add_group(c, "cn=rrg,ou=rr," BASE, "rrg", "uid=user00001," PEOPLE);
	uuid_of(c, "cn=rrg,ou=rr," BASE, uuid);
	c->cfg.group_base = "ou=rr," BASE;
	start(c, NULL, 0);
	end = wait_refreshed(c, 0);
	wait_event(c, 0, SOURCE_ENTRY, OBJECT_GROUP, uuid, NULL);

	/* the search base goes away: syncprov notices at the next write and
	 * sends e-syncRefreshRequired; the full refresh that follows finds no
	 * base (noSuchObject) and is retried with backoff */
	rename_entry(c, "ou=rr," BASE, "ou=rr2", NULL);
	modify(c, "uid=user00002," PEOPLE, LDAP_MOD_REPLACE, "title", "Witness");
	down = wait_event(c, end, SOURCE_STATUS, ANY, NULL, NULL);
	assert_false(c->ev[down]->connected);
	assert_non_null(strstr(c->ev[down]->message, "No such object"));
	rename_entry(c, "ou=rr2," BASE, "ou=rr", NULL);

	/* the cookie was dropped: a full refresh with present_phase, which
	 * reports the unchanged group again */
	e = wait_event(c, down, SOURCE_REFRESH_END, OBJECT_GROUP, NULL, NULL);
	assert_true(c->ev[e]->present_phase);
	begin = e;
	while (c->ev[begin]->kind != SOURCE_REFRESH_BEGIN || c->ev[begin]->type != OBJECT_GROUP)
		begin--;
	i = wait_event(c, begin, SOURCE_ENTRY, OBJECT_GROUP, uuid, "cn=rrg,ou=rr," BASE);
	assert_true(i < e);
	assert_non_null(c->ev[e]->cursor);
	assert_non_null(memmem(c->ev[e]->cursor, c->ev[e]->cursor_len, "groups=", 7));
}

static bool got_stop_point(struct ctx *c, const void *arg)
{
	if (c->n >= c->stop_after && c->running && c->stop_ms == 0) {
		c->stop_ms = now_ms();
		ldap_source_stop(c->src, on_done, c);
	}
	return !c->running;
}

static void stop_during_refresh_is_prompt(void **state)
{
	struct ctx *c = *state;
	size_t at;

	c->cfg.queue_max = 8;
	c->slow_us = 200;
	c->stop_after = 100; /* of 3000 users: the refresh is in full swing */
	start(c, NULL, 0);
	assert_true(run_until(c, got_stop_point, NULL, WAIT_MS));
	at = c->n;
	assert_true(at >= 100 && at < 400);
	assert_int_equal(count(c, 0, c->n, SOURCE_REFRESH_END, ANY), 0);
	assert_true(c->done_ms - c->stop_ms < 1000);
	/* nothing after stop: the loop has no handle of the source left */
	uv_run(&c->loop, UV_RUN_NOWAIT);
	assert_int_equal(c->n, at);
}

/* ---- ldap_paged.h: the RFC 2696 loop every LDAP source lists a base with -- */

struct pages {
	size_t entries, pages, more, stop_at;
};

static int count_page(void *ctx, LDAP *ld, LDAPMessage *res, bool more)
{
	struct pages *p = ctx;

	p->entries += (size_t)ldap_count_entries(ld, res);
	p->pages++;
	p->more += more;
	return p->pages == p->stop_at ? -ECANCELED : 0;
}

static void paged_search_lists_a_base_in_pages(void **state)
{
	struct ctx *c = *state;
	char *attrs[] = {"entryUUID", NULL};
	struct ldap_paged_query q = {PEOPLE, "(objectClass=inetOrgPerson)", attrs, 7, 10};
	struct ldap_paged_failure why;
	struct pages p = {0};
	LDAPMessage *res = NULL;
	char reply[64];
	size_t n;

	/* what an unpaged search of the rootdn sees (no size limit) */
	assert_int_equal(ldap_search_ext_s(c->ld, PEOPLE, LDAP_SCOPE_SUBTREE, q.filter, attrs, 0, NULL, NULL, NULL,
					   LDAP_NO_LIMIT, &res),
			 LDAP_SUCCESS);
	n = (size_t)ldap_count_entries(c->ld, res);
	ldap_msgfree(res);
	assert_true(n >= 200);

	/* pages of 7: every entry once, a cookie after every page but the last */
	assert_int_equal(ldap_paged_search(c->ld, &q, count_page, &p, &why), 0);
	assert_int_equal(p.entries, n);
	assert_int_equal(p.pages, (n + 6) / 7);
	assert_int_equal(p.more, p.pages - 1);

	/* the callback's error stops the search: no page after it */
	p = (struct pages){.stop_at = 3};
	assert_int_equal(ldap_paged_search(c->ld, &q, count_page, &p, &why), -ECANCELED);
	assert_int_equal(p.pages, 3);
	assert_int_equal(p.entries, 21);

	/* a base that does not exist: its own answer, no page */
	q.base = "ou=nowhere," BASE;
	p = (struct pages){0};
	assert_int_equal(ldap_paged_search(c->ld, &q, count_page, &p, &why), LDAP_PAGED_NO_BASE);
	assert_int_equal(p.pages, 0);

	/* the server gone: -ECONNRESET, and the client's code for the message */
	q.base = PEOPLE;
	assert_int_equal(slapd_cmd(&c->d, "kill", reply, sizeof reply), 0);
	assert_int_equal(ldap_paged_search(c->ld, &q, count_page, &p, &why), -ECONNRESET);
	assert_true(why.search_rc < 0);
	assert_int_equal(p.pages, 0);
}

static bool wait_ms(struct ctx *c, const void *arg) { return false; }

static void stop_while_server_hangs_is_prompt(void **state)
{
	struct ctx *c = *state;
	char reply[64];

	assert_int_equal(slapd_cmd(&c->d, "sigstop", reply, sizeof reply), 0);
	start(c, NULL, 0);
	run_until(c, wait_ms, NULL, 300); /* the worker is stuck in bind */
	assert_int_equal(count(c, 0, c->n, SOURCE_REFRESH_BEGIN, ANY), 0);
	stop(c);
	assert_true(c->done_ms - c->stop_ms < 1000);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(full_refresh_delivers_everything, setup_small, teardown),
		cmocka_unit_test_setup_teardown(persist_delivers_changes, setup_small, teardown),
		cmocka_unit_test_setup_teardown(restart_from_cursor_reports_only_changes, setup_small, teardown),
		cmocka_unit_test_setup_teardown(garbage_cursor_is_start_error, setup_none, teardown),
		cmocka_unit_test_setup_teardown(back_pressure_bounds_the_queue, setup_small, teardown),
		cmocka_unit_test_setup_teardown(server_restart_reconnects_and_persists, setup_small, teardown),
		cmocka_unit_test_setup_teardown(refresh_required_restarts_full, setup_small, teardown),
		cmocka_unit_test_setup_teardown(stop_during_refresh_is_prompt, setup_large, teardown),
		cmocka_unit_test_setup_teardown(stop_while_server_hangs_is_prompt, setup_small, teardown),
		cmocka_unit_test_setup_teardown(paged_search_lists_a_base_in_pages, setup_small, teardown),
	};

	signal(SIGPIPE, SIG_IGN);
	if (getenv("TEST_FILTER") != NULL) /* e.g. TEST_FILTER='persist*'; debugging */
		cmocka_set_test_filter(getenv("TEST_FILTER"));
	return cmocka_run_group_tests(tests, NULL, NULL);
}
