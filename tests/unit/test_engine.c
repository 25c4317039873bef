/*
 * tests/unit/test_engine.c -- the sync engine (sync/engine/) against fake
 * ports: a source the test feeds events to, a target that answers as each
 * test says, and a replicated log that applies entries to a bare struct
 * state. The planner is also driven directly: it is pure (plan.c), so a test
 * needs no loop for it.
 *
 * The rules shown here (docs/architecture.md, "No lost change"): the cursor
 * never passes an item that was not committed as done or recorded; a failed
 * target write is recorded in the retry set, not left behind the cursor; a
 * cancelled one keeps the cursor where it was; and an allocation failure
 * aborts rather than plans a delete or drops a record.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>
#include <uv.h>

#include "common/xalloc.h"
#include "raft/fsm.h"
#include "sync/engine.h"
#include "sync/engine/internal.h"
#include "sync/member_value.h"
#include "sync/replog/replog.h"
#include "sync/source/source.h"
#include "sync/state/figures.h"
#include "sync/state/object.h"
#include "sync/state/retry.h"
#include "sync/state/state.h"
#include "sync/target/target.h"
#include "sync/transform/mapping.h"

#define MAX_OPS 256

/* ---- the fixture ------------------------------------------------------------ */

struct deferred {
	void (*fn)(void *);
	void *arg;
};

struct proposal {
	struct raft_buffer buf;
	replog_done_cb cb;
	void *arg;
};

struct seen_op {
	enum target_action action;
	char anchor[64];
	char target_id[64];
	char manager_id[64]; /* UPSERT / MANAGER: the manager's id ("": none, remove) */
	size_t n_add, n_remove;
	bool exact; /* MEMBERS: the target keeps only `add` (target.h) */
	char value[64]; /* TAKEN: the value asked about; UPSERT: the userName written */
	bool keep;      /* UPSERT: the target keeps what attrs leaves out */
};

struct fx {
	uv_loop_t loop;
	char dir[64];
	struct state st;
	struct fsm fsm;
	struct mapping *user_map, *group_map;
	struct engine_config cfg;
	struct engine *e;
	bool closed;

	uv_timer_t defer_timer;
	struct deferred deferred[16];
	size_t n_deferred;

	/* replicated log */
	struct replog log;
	uv_timer_t commit_timer;
	struct proposal proposals[64];
	size_t n_proposals;
	bool may_write;
	int fail_commit; /* status of the next commits (0: they go through) */
	unsigned entries;

	/* source */
	struct source source;
	source_event_cb src_cb;
	void *src_data;
	bool src_running;
	char start_cursor[64];
	unsigned refreshes[3];

	/* target */
	struct target target;
	uv_timer_t answer_timer;
	struct target_op *pending[MAX_OPS];
	target_done_cb pending_cb[MAX_OPS];
	size_t n_pending;
	struct seen_op seen[MAX_OPS];
	size_t n_seen;
	const char *recreate_anchor; /* its update finds it gone: created anew, id "new-<anchor>" */
	const char *fail_anchor;   /* its operations fail with fail_status ... */
	int fail_status;
	bool fail_permanent;
	enum target_action hold;   /* operations of this action wait (0: none) */
	const char *refuse_ids[4]; /* MEMBERS carrying one of these ids: 400 invalidValue */
	bool refuse_every_member;  /* ... or any id at all */
	unsigned manager_warnings; /* "a manager is not exported" lines logged */
	const char *taken[4];      /* TAKEN: values another object holds */

	/* provision: what the fake source's read_entry finds (NULL: nothing) */
	const char *read_anchor, *read_uid;
	int read_gate;             /* __atomic: while 1, read_entry waits (the worker) */
	int report_status;
	json_t *report;
	bool reported;
};

static struct fx *fx_of(void *impl)
{
	return impl;
}

static void defer(struct fx *f, void (*fn)(void *), void *arg);

/* the log: entries apply to f->st on the next loop iteration */

static uint64_t l_term(struct replog *l)
{
	(void)l;
	return 7;
}

static bool l_ready(struct replog *l)
{
	(void)l;
	return true;
}

static bool l_may_write(struct replog *l)
{
	return fx_of(l->impl)->may_write;
}

static void on_commit_timer(uv_timer_t *t)
{
	struct fx *f = t->data;

	while (f->n_proposals > 0) {
		struct proposal p = f->proposals[0];
		void *result;
		memmove(f->proposals, f->proposals + 1, --f->n_proposals * sizeof p);
		if (f->fail_commit == 0) {
			assert_int_equal(f->fsm.raft.apply(&f->fsm.raft, &p.buf, &result), 0);
			f->entries++;
		}
		raft_free(p.buf.base);
		p.cb(p.arg, f->fail_commit);
	}
}

static int l_propose(struct replog *l, struct state_batch *b, replog_done_cb cb, void *arg)
{
	struct fx *f = fx_of(l->impl);
	struct proposal *p = &f->proposals[f->n_proposals++];

	assert_true(f->n_proposals <= 64);
	assert_int_equal(state_batch_encode(b, &p->buf), 0);
	p->cb = cb;
	p->arg = arg;
	uv_timer_start(&f->commit_timer, on_commit_timer, 0, 0);
	return 0;
}

static unsigned l_failover_ms(struct replog *l)
{
	(void)l;
	return 20;
}

static unsigned l_lease_check_ms(struct replog *l)
{
	(void)l;
	return 5;
}

static void nothing_to_close_log(struct replog *l)
{
	(void)l;
}

/* the source: the test emits events itself */

static int s_start(struct source *src, uv_loop_t *loop, const void *cursor, size_t cursor_len,
		   const char *const *attrs, size_t n_attrs, source_event_cb cb, void *data, struct source_run **out,
		   char *errmsg, size_t errlen)
{
	struct fx *f = fx_of(src->impl);

	(void)loop, (void)attrs, (void)n_attrs, (void)errmsg, (void)errlen;
	f->src_cb = cb;
	f->src_data = data;
	f->src_running = true;
	snprintf(f->start_cursor, sizeof f->start_cursor, "%.*s", (int)cursor_len, cursor ? (const char *)cursor : "");
	*out = (struct source_run *)f;
	return 0;
}

static void s_refresh(struct source_run *run, enum object_type type)
{
	fx_of(run)->refreshes[type]++;
}

static void s_pause(struct source_run *run)
{
	(void)run;
}

static void s_status(struct source_run *run, struct source_status *out)
{
	(void)run;
	memset(out, 0, sizeof *out);
	out->reported = out->connected = true;
	snprintf(out->message, sizeof out->message, "fake: connected");
}

static void s_stop(struct source_run *run, void (*done)(void *), void *data)
{
	struct fx *f = fx_of(run);

	f->src_running = false;
	defer(f, done, data);
}

static void nothing_to_close_source(struct source *s)
{
	(void)s;
}

/* the target: answers on the next loop iteration, as the test says */

static int t_start(struct target *t, uv_loop_t *loop, struct target_run **out, char *errmsg, size_t errlen)
{
	(void)loop, (void)errmsg, (void)errlen;
	*out = (struct target_run *)t->impl;
	return 0;
}

static void t_set_fence(struct target_run *run, uint64_t node_id, uint64_t term, const char *cluster_id)
{
	(void)run, (void)node_id, (void)term, (void)cluster_id;
}

static void answer(struct fx *f, size_t i, int status)
{
	struct target_op *op = f->pending[i];
	target_done_cb cb = f->pending_cb[i];

	memmove(f->pending + i, f->pending + i + 1, (f->n_pending - i - 1) * sizeof *f->pending);
	memmove(f->pending_cb + i, f->pending_cb + i + 1, (f->n_pending - i - 1) * sizeof *f->pending_cb);
	f->n_pending--;
	op->status = status;
	if (status == 0 && op->action == TARGET_UPSERT) {
		op->created = op->target_id == NULL;
		snprintf(op->result_id, sizeof op->result_id, "%s", op->target_id ? op->target_id : "");
		if (op->target_id == NULL)
			snprintf(op->result_id, sizeof op->result_id, "id-%s", op->anchor);
		if (f->recreate_anchor && strcmp(op->anchor, f->recreate_anchor) == 0 && op->target_id != NULL) {
			op->created = true; /* 404 on the update, created again (scim_answer.c) */
			snprintf(op->result_id, sizeof op->result_id, "new-%s", op->anchor);
		}
	} else if (status != 0 && status != -ECANCELED) {
		op->permanent = f->fail_permanent;
		op->http_status = f->fail_permanent ? 400 : 503;
		snprintf(op->error, sizeof op->error, "fake: %s failed", target_action_name(op->action));
	}
	cb(op);
}

/* Does a MEMBERS operation carry a value the fake refuses (as a SCIM server
 * refuses a whole PATCH for one bad value, RFC 7644 §3.5.2)? */
static bool refused_values(const struct fx *f, const struct target_op *op)
{
	if (op->action != TARGET_MEMBERS)
		return false;
	if (f->refuse_every_member && op->n_add + op->n_remove > 0)
		return true;
	for (size_t k = 0; k < 4 && f->refuse_ids[k] != NULL; k++) {
		for (size_t i = 0; i < op->n_add; i++)
			if (strcmp(op->add[i], f->refuse_ids[k]) == 0)
				return true;
		for (size_t i = 0; i < op->n_remove; i++)
			if (strcmp(op->remove[i], f->refuse_ids[k]) == 0)
				return true;
	}
	return false;
}

static void on_answer_timer(uv_timer_t *t)
{
	struct fx *f = t->data;

	for (size_t i = 0; i < f->n_pending;) {
		struct target_op *op = f->pending[i];
		if (op->action == f->hold) {
			i++;
			continue;
		}
		if (refused_values(f, op)) {
			target_done_cb cb = f->pending_cb[i];
			memmove(f->pending + i, f->pending + i + 1, (f->n_pending - i - 1) * sizeof *f->pending);
			memmove(f->pending_cb + i, f->pending_cb + i + 1, (f->n_pending - i - 1) * sizeof *f->pending_cb);
			f->n_pending--;
			op->status = -EPROTO;
			op->permanent = op->values_refused = true;
			op->http_status = 400;
			snprintf(op->error, sizeof op->error, "fake: invalidValue: One or more Group members are invalid");
			cb(op);
			continue;
		}
		answer(f, i, f->fail_anchor && strcmp(op->anchor, f->fail_anchor) == 0 ? f->fail_status : 0);
	}
}

static int t_submit(struct target_run *run, struct target_op *op, target_done_cb cb)
{
	struct fx *f = fx_of(run);
	struct seen_op *s = &f->seen[f->n_seen++];

	assert_true(f->n_seen <= MAX_OPS && f->n_pending < MAX_OPS);
	s->action = op->action;
	snprintf(s->anchor, sizeof s->anchor, "%s", op->anchor);
	snprintf(s->target_id, sizeof s->target_id, "%s", op->target_id ? op->target_id : "");
	snprintf(s->manager_id, sizeof s->manager_id, "%s", op->manager_id ? op->manager_id : "");
	s->n_add = op->n_add;
	s->exact = op->exact;
	s->n_remove = op->n_remove;
	s->keep = op->keep;
	if (op->action == TARGET_TAKEN)
		snprintf(s->value, sizeof s->value, "%s", op->value);
	else if (op->action == TARGET_UPSERT)
		snprintf(s->value, sizeof s->value, "%s",
			 json_string_value(json_object_get(op->attrs, "userName")) ?: "");
	op->status = 0;
	op->taken = false;
	for (size_t k = 0; op->action == TARGET_TAKEN && k < 4 && f->taken[k] != NULL; k++)
		op->taken = op->taken || strcmp(f->taken[k], op->value) == 0;
	/* ... and the userNames of the users created before (another anchor's) */
	for (size_t k = 0; op->action == TARGET_TAKEN && k + 1 < f->n_seen; k++)
		op->taken = op->taken || (f->seen[k].action == TARGET_UPSERT && strcmp(f->seen[k].value, op->value) == 0 &&
					  strcmp(f->seen[k].anchor, op->anchor) != 0);
	op->permanent = op->created = op->values_refused = false;
	op->n_add_done = op->n_remove_done = 0;
	op->result_id[0] = op->error[0] = '\0';
	f->pending[f->n_pending] = op;
	f->pending_cb[f->n_pending++] = cb;
	uv_timer_start(&f->answer_timer, on_answer_timer, 0, 0);
	return 0;
}

static void t_cancel_all(struct target_run *run)
{
	struct fx *f = fx_of(run);
	size_t n = f->n_pending; /* operations submitted from the callbacks stay */

	while (n-- > 0)
		answer(f, 0, -ECANCELED);
}

static void t_stats(struct target_run *run, struct target_stats *out)
{
	(void)run;
	memset(out, 0, sizeof *out);
}

static void t_stop(struct target_run *run, void (*done)(void *), void *data)
{
	t_cancel_all(run);
	defer(fx_of(run), done, data);
}

static void nothing_to_close_target(struct target *t)
{
	(void)t;
}

static void on_defer_timer(uv_timer_t *t)
{
	struct fx *f = t->data;

	while (f->n_deferred > 0) {
		struct deferred d = f->deferred[0];
		memmove(f->deferred, f->deferred + 1, --f->n_deferred * sizeof d);
		d.fn(d.arg);
	}
}

static void defer(struct fx *f, void (*fn)(void *), void *arg)
{
	assert_true(f->n_deferred < 16);
	f->deferred[f->n_deferred++] = (struct deferred){fn, arg};
	uv_timer_start(&f->defer_timer, on_defer_timer, 0, 0);
}

static struct mapping *compile(enum object_type type, const struct mapping_rule_text *rules, size_t n)
{
	struct mapping *m;
	char err[256];

	assert_int_equal(mapping_compile(&m, type, type == OBJECT_GROUP ? "mapping.group" : "mapping.user", rules, n,
					 err, sizeof err), 0);
	return m;
}

static int setup(void **state)
{
	static const struct mapping_rule_text users[] = {{"userName", "[uid]", 1}, {"displayName", "[cn]", 2}};
	static const struct mapping_rule_text groups[] = {{"displayName", "[cn]", 1}};
	struct fx *f = calloc(1, sizeof *f);

	assert_non_null(f);
	assert_int_equal(uv_loop_init(&f->loop), 0);
	snprintf(f->dir, sizeof f->dir, "/tmp/canopy-test-engine-XXXXXX");
	assert_non_null(mkdtemp(f->dir));
	state_init(&f->st);
	fsm_init(&f->fsm, state_machine(&f->st));
	f->user_map = compile(OBJECT_USER, users, 2);
	f->group_map = compile(OBJECT_GROUP, groups, 1);
	f->cfg.node_id = 1;
	f->cfg.data_dir = f->dir;
	f->cfg.user_map = f->user_map;
	f->cfg.group_map = f->group_map;
	f->cfg.delete_threshold = 100;
	f->may_write = true;
	uv_timer_init(&f->loop, &f->defer_timer);
	uv_timer_init(&f->loop, &f->commit_timer);
	uv_timer_init(&f->loop, &f->answer_timer);
	f->defer_timer.data = f->commit_timer.data = f->answer_timer.data = f;
	f->log = (struct replog){.impl = f, .term = l_term, .ready = l_ready, .may_write = l_may_write,
				 .propose = l_propose, .failover_ms = l_failover_ms,
				 .lease_check_ms = l_lease_check_ms, .close = nothing_to_close_log};
	f->source = (struct source){.impl = f, .name = "fake", .start = s_start, .refresh = s_refresh,
				    .pause = s_pause, .resume = s_pause, .status = s_status, .stop = s_stop,
				    .close = nothing_to_close_source};
	f->target = (struct target){.impl = f, .name = "fake", .request_timeout_ms = 10, .start = t_start,
				    .set_fence = t_set_fence, .submit = t_submit, .cancel_all = t_cancel_all,
				    .stats = t_stats, .stop = t_stop, .close = nothing_to_close_target};
	*state = f;
	return 0;
}

static struct source_event *user(const char *anchor, const char *uid, const char *cn, const char *cursor);

/* read_entry runs on a uv worker thread: it only reads f->read_* */
static int s_read_entry(struct source *src, const char *dn, const char *const *attrs, size_t n_attrs,
			struct source_event **out, char *rule, size_t rule_len, char *errmsg, size_t errlen)
{
	struct fx *f = fx_of(src->impl);

	(void)dn, (void)attrs, (void)n_attrs, (void)errmsg, (void)errlen;
	while (__atomic_load_n(&f->read_gate, __ATOMIC_ACQUIRE))
		uv_sleep(1);
	*out = f->read_anchor ? user(f->read_anchor, f->read_uid, "Read Now", NULL) : NULL;
	snprintf(rule, rule_len, "users: fake");
	return 0;
}

static void on_report(void *data, int status, json_t *report, const char *errmsg)
{
	struct fx *f = data;

	(void)errmsg;
	f->reported = true;
	f->report_status = status;
	f->report = report;
}

/* Run the loop until the provision has answered. */
static void wait_report(struct fx *f)
{
	uint64_t until = uv_hrtime() + 5000000000ull;

	while (!f->reported) {
		uv_run(&f->loop, UV_RUN_NOWAIT);
		assert_true(uv_hrtime() < until);
		usleep(500);
	}
}

static const char *report_str(struct fx *f, const char *key)
{
	return json_string_value(json_object_get(f->report, key));
}

static const char *last_step(struct fx *f)
{
	json_t *steps = json_object_get(f->report, "steps");
	return json_string_value(json_object_get(json_array_get(steps, json_array_size(steps) - 1), "result"));
}

static void on_engine_closed(void *data)
{
	((struct fx *)data)->closed = true;
}

static void close_walk(uv_handle_t *h, void *arg)
{
	(void)arg;
	if (!uv_is_closing(h))
		uv_close(h, NULL);
}

static int teardown(void **state)
{
	struct fx *f = *state;
	char cmd[128];

	if (f->e != NULL) {
		engine_close(f->e, on_engine_closed, f);
		while (!f->closed)
			uv_run(&f->loop, UV_RUN_ONCE);
	}
	uv_walk(&f->loop, close_walk, NULL);
	uv_run(&f->loop, UV_RUN_DEFAULT);
	assert_int_equal(uv_loop_close(&f->loop), 0);
	for (size_t i = 0; i < f->n_proposals; i++)
		raft_free(f->proposals[i].buf.base);
	state_close(&f->st);
	mapping_free(f->user_map);
	mapping_free(f->group_map);
	snprintf(cmd, sizeof cmd, "rm -rf %s", f->dir);
	if (system(cmd) != 0)
		print_error("could not remove %s\n", f->dir);
	free(f);
	return 0;
}

/* ---- helpers ------------------------------------------------------------------- */

static void start(struct fx *f)
{
	struct engine_ports ports = {&f->source, &f->target, &f->log};
	char err[256];

	assert_int_equal(engine_init(&f->e, &f->loop, &ports, &f->st, &f->cfg, err, sizeof err), 0);
	engine_lead(f->e);
	assert_true(f->src_running);
}

static bool all_held(struct fx *f)
{
	for (size_t i = 0; i < f->n_pending; i++)
		if (f->pending[i]->action != f->hold)
			return false;
	return true;
}

/* Run the loop until every event, answer and entry is through (or only
 * held operations are left). */
static void settle(struct fx *f)
{
	struct engine_stats es;
	uint64_t until = uv_hrtime() + 5000000000ull;

	for (;;) {
		uv_run(&f->loop, UV_RUN_NOWAIT);
		engine_stats(f->e, &es);
		if (es.state != ENGINE_SYNCING && es.state != ENGINE_REFRESHING && f->n_pending == 0 &&
		    f->n_proposals == 0 && f->n_deferred == 0)
			return;
		if (f->n_pending > 0 && all_held(f))
			return; /* waiting for held operations, as the test asked */
		assert_true(uv_hrtime() < until);
		usleep(500);
	}
}

/* Run the loop for about `ms`. */
static void spin(struct fx *f, unsigned ms)
{
	uint64_t until = uv_hrtime() + (uint64_t)ms * 1000000;

	while (uv_hrtime() < until) {
		uv_run(&f->loop, UV_RUN_NOWAIT);
		usleep(500);
	}
}

static struct source_event *event(enum source_event_kind kind, enum object_type type, const char *anchor,
				  const char *cursor)
{
	struct source_event *ev = xcalloc(1, sizeof *ev);

	ev->kind = kind;
	ev->type = type;
	ev->anchor = anchor ? xstrdup(anchor) : NULL;
	if (cursor) {
		ev->cursor = xstrdup(cursor);
		ev->cursor_len = strlen(cursor);
	}
	return ev;
}

/* A user entry: uid and cn, DN uid=<uid>,ou=people. */
static struct source_event *user(const char *anchor, const char *uid, const char *cn, const char *cursor)
{
	struct source_event *ev = event(SOURCE_ENTRY, OBJECT_USER, anchor, cursor);
	char dn[128];

	snprintf(dn, sizeof dn, "uid=%s,ou=people,dc=example", uid);
	ev->dn = xstrdup(dn);
	ev->attrs = xcalloc(2, sizeof *ev->attrs);
	ev->n_attrs = 2;
	ev->attrs[0].name = xstrdup("uid");
	ev->attrs[0].values = xcalloc(1, sizeof(char *));
	ev->attrs[0].values[0] = xstrdup(uid);
	ev->attrs[0].n_values = 1;
	ev->attrs[1].name = xstrdup("cn");
	ev->attrs[1].values = xcalloc(1, sizeof(char *));
	ev->attrs[1].values[0] = xstrdup(cn);
	ev->attrs[1].n_values = 1;
	return ev;
}

static void emit(struct fx *f, struct source_event *ev)
{
	f->src_cb(f->src_data, ev);
}

/* Apply one entry to the state directly (what an earlier leader committed). */
static void apply(struct fx *f, struct state_batch *b)
{
	struct raft_buffer buf;
	void *result;

	assert_int_equal(state_batch_encode(b, &buf), 0);
	state_batch_close(b);
	assert_int_equal(f->fsm.raft.apply(&f->fsm.raft, &buf, &result), 0);
	raft_free(buf.base);
}

static void put_record(struct state_batch *b, char prefix, const char *anchor, enum object_type type,
		       const char *dn, const char *target_id, uint64_t hash)
{
	struct object_record r = {.type = type, .target_id = (char *)target_id, .hash = hash, .dn = (char *)dn};
	char key[KEY_MAX], *val;
	size_t vlen, klen = object_key(prefix, anchor, key, sizeof key);

	assert_int_equal(object_record_encode(&r, &val, &vlen), 0);
	state_batch_put(b, key, klen, val, vlen);
	free(val);
}

/* Exported users u1..un (anchors "a1".."an"). */
static void exported_users(struct fx *f, int n)
{
	struct state_batch b;
	char anchor[16], dn[64], id[16];

	state_batch_init(&b);
	for (int i = 1; i <= n; i++) {
		snprintf(anchor, sizeof anchor, "a%d", i);
		snprintf(dn, sizeof dn, "uid=u%d,ou=people,dc=example", i);
		snprintf(id, sizeof id, "id-a%d", i);
		put_record(&b, OBJECT_KEY_OBJECT, anchor, OBJECT_USER, dn, id, 1000 + (uint64_t)i);
	}
	apply(f, &b);
}

static bool has(struct fx *f, char prefix, const char *anchor)
{
	char key[KEY_MAX];
	const void *v;
	size_t vlen, klen = object_key(prefix, anchor, key, sizeof key);

	return state_get(&f->st, key, klen, &v, &vlen);
}

static struct object_record record(struct fx *f, const char *anchor)
{
	struct object_record r;

	assert_true(engine_record(&f->st, OBJECT_KEY_OBJECT, anchor, &r));
	return r;
}

static void assert_cursor(struct fx *f, const char *want)
{
	size_t n;
	const void *cursor = state_cursor(&f->st, &n);

	if (want == NULL) {
		assert_null(cursor);
		return;
	}
	assert_non_null(cursor);
	assert_int_equal(n, strlen(want));
	assert_memory_equal(cursor, want, strlen(want));
}

static size_t count_seen(struct fx *f, enum target_action a)
{
	size_t n = 0;

	for (size_t i = 0; i < f->n_seen; i++)
		n += f->seen[i].action == a;
	return n;
}

/* ---- batching and planning --------------------------------------------------------- */

static void a_batch_takes_at_most_batch_max_events(void **state)
{
	struct fx *f = *state;
	struct engine_stats es;
	char anchor[8], uid[8], cursor[8];

	f->cfg.batch_max = 2;
	start(f);
	f->may_write = false; /* the events queue up while no batch may start */
	for (int i = 1; i <= 5; i++) {
		snprintf(anchor, sizeof anchor, "a%d", i);
		snprintf(uid, sizeof uid, "u%d", i);
		snprintf(cursor, sizeof cursor, "c%d", i);
		emit(f, user(anchor, uid, "User", cursor));
	}
	f->may_write = true;
	settle(f);
	engine_stats(f->e, &es);
	assert_int_equal(es.batches_total, 3); /* 2 + 2 + 1 */
	assert_int_equal(count_seen(f, TARGET_UPSERT), 5);
	assert_cursor(f, "c5");
}

static struct source_event *group_with(const char *anchor, const char *cn, const char *const *dns, size_t n,
				       const char *cursor);

/* Big groups fill a batch before batch_max does (session.c,
 * BATCH_VALUES_MAX): three groups of 6,000 members are two batches, not one;
 * the member phase of a batch must not block the loop for long. */
static void a_batch_of_big_groups_is_bounded_by_its_member_values(void **state)
{
	struct fx *f = *state;
	struct engine_stats es;
	enum { MEMBERS = 6000 };
	char **dns = xcalloc(MEMBERS, sizeof *dns), dn[64];
	const char *anchors[] = {"g1", "g2", "g3"}, *cursors[] = {"c1", "c2", "c3"};

	for (size_t i = 0; i < MEMBERS; i++) {
		snprintf(dn, sizeof dn, "uid=u%zu,ou=people,dc=example", i);
		dns[i] = xstrdup(dn);
	}
	start(f);
	f->may_write = false; /* the events queue up while no batch may start */
	for (size_t g = 0; g < 3; g++)
		emit(f, group_with(anchors[g], anchors[g], (const char *const *)dns, MEMBERS, cursors[g]));
	f->may_write = true;
	settle(f);
	engine_stats(f->e, &es);
	assert_int_equal(es.batches_total, 2); /* g1 and g2 (12,006 values), then g3 */
	assert_int_equal(count_seen(f, TARGET_UPSERT), 3);
	assert_cursor(f, "c3");
	engine_strv_free(dns, MEMBERS);
}

/* Pipelining the fence (commit.c, pre_intend): the intents of the changes
 * queued behind a batch ride in that batch's commit, so the next batch's
 * writes go out without an intent entry of their own -- and an intent whose
 * change plans no write is removed by the commit of the batch that took it. */
static void changes_queued_behind_a_batch_need_no_intent_entry_of_their_own(void **state)
{
	struct fx *f = *state;
	struct engine_stats es;
	char anchor[8], uid[8], cursor[8];
	unsigned entries;

	f->cfg.batch_max = 2;
	start(f);
	settle(f);
	entries = f->entries;
	f->may_write = false; /* the events queue up while no batch may start */
	for (int i = 1; i <= 5; i++) {
		snprintf(anchor, sizeof anchor, "a%d", i);
		snprintf(uid, sizeof uid, "u%d", i);
		snprintf(cursor, sizeof cursor, "c%d", i);
		emit(f, user(anchor, uid, "User", cursor));
	}
	emit(f, event(SOURCE_DELETE, OBJECT_USER, "gone", "c6")); /* never exported: nothing to write */
	f->may_write = true;
	settle(f);
	engine_stats(f->e, &es);
	assert_int_equal(es.batches_total, 3); /* 2 + 2 + 2 */
	assert_int_equal(count_seen(f, TARGET_UPSERT), 5);
	/* the first batch: its intent, then its commit carrying the second's
	 * intents; the second and the third: their commits only */
	assert_int_equal(f->entries - entries, 4);
	for (int i = 1; i <= 5; i++) {
		snprintf(anchor, sizeof anchor, "a%d", i);
		assert_false(has(f, OBJECT_KEY_INTENT, anchor));
	}
	assert_false(has(f, OBJECT_KEY_INTENT, "gone"));
	assert_cursor(f, "c6");
}

static void a_later_change_supersedes_an_earlier_one_in_the_batch(void **state)
{
	struct fx *f = *state;
	struct planner p;
	struct batch *b = batch_new(BATCH_CHANGES, 1);
	uint64_t seq = 0;
	struct source_event *ev;

	planner_init(&p, &f->cfg, &f->st, &seq);
	ev = user("a1", "u1", "First", "c1");
	plan_event(&p, b, ev);
	source_event_free(ev);
	ev = user("a1", "u1", "Second", "c2");
	plan_event(&p, b, ev);
	source_event_free(ev);
	assert_int_equal(b->n, 1);
	assert_int_equal(b->items[0]->kind, IT_UPSERT);
	assert_string_equal(json_string_value(json_object_get(b->items[0]->attrs, "displayName")), "Second");
	assert_int_equal(b->cursor_len, 2);
	assert_memory_equal(b->cursor, "c2", 2);
	batch_free(b);
	planner_clear(&p);
}

static void an_unchanged_object_costs_no_request(void **state)
{
	struct fx *f = *state;

	start(f);
	emit(f, user("a1", "u1", "User", "c1"));
	settle(f);
	assert_int_equal(count_seen(f, TARGET_UPSERT), 1);
	emit(f, user("a1", "u1", "User", "c2"));
	settle(f);
	assert_int_equal(count_seen(f, TARGET_UPSERT), 1);
	assert_cursor(f, "c2");
}

static void a_present_phase_deletes_what_the_refresh_did_not_report(void **state)
{
	struct fx *f = *state;
	struct planner p;
	struct batch *b = batch_new(BATCH_CHANGES, 1);
	uint64_t seq = 0;
	struct source_event *evs[] = {
		event(SOURCE_REFRESH_BEGIN, OBJECT_USER, NULL, NULL),
		event(SOURCE_PRESENT, OBJECT_USER, "a1", NULL),
		event(SOURCE_REFRESH_END, OBJECT_USER, NULL, "c1"),
	};

	exported_users(f, 2);
	evs[2]->present_phase = true;
	planner_init(&p, &f->cfg, &f->st, &seq);
	for (size_t i = 0; i < 3; i++) {
		plan_event(&p, b, evs[i]);
		source_event_free(evs[i]);
	}
	assert_int_equal(b->n, 1);
	assert_string_equal(b->items[0]->anchor, "a2");
	assert_int_equal(b->items[0]->kind, IT_DELETE);
	batch_free(b);
	planner_clear(&p);
}

/* The end of a present phase finds what the refresh did not report without
 * decoding every record (plan.c find_absent): a users' refresh deletes the
 * unreported users and no group, a groups' refresh the unreported groups
 * and no user. */
static void a_present_phase_deletes_only_the_unreported_objects_of_its_type(void **state)
{
	struct fx *f = *state;
	struct state_batch sb;
	uint64_t seq = 0;

	exported_users(f, 3);
	state_batch_init(&sb);
	put_record(&sb, OBJECT_KEY_OBJECT, "g1", OBJECT_GROUP, "cn=g1,ou=groups,dc=example", "id-g1", 0);
	put_record(&sb, OBJECT_KEY_OBJECT, "g2", OBJECT_GROUP, "cn=g2,ou=groups,dc=example", "id-g2", 0);
	apply(f, &sb);
	for (int t = 0; t < 2; t++) {
		enum object_type type = t == 0 ? OBJECT_USER : OBJECT_GROUP;
		const char *reported = t == 0 ? "a2" : "g1";
		struct planner p;
		struct batch *b = batch_new(BATCH_CHANGES, 1);
		struct source_event *evs[] = {
			event(SOURCE_REFRESH_BEGIN, type, NULL, NULL),
			event(SOURCE_PRESENT, type, reported, NULL),
			event(SOURCE_REFRESH_END, type, NULL, "c1"),
		};
		char got[64] = "";

		evs[2]->present_phase = true;
		planner_init(&p, &f->cfg, &f->st, &seq);
		planner_load(&p); /* as a session does */
		for (size_t i = 0; i < 3; i++) {
			plan_event(&p, b, evs[i]);
			source_event_free(evs[i]);
		}
		for (size_t i = 0; i < b->n; i++) {
			assert_int_equal(b->items[i]->kind, IT_DELETE);
			assert_int_equal(b->items[i]->type, type);
			strcat(got, b->items[i]->anchor);
			strcat(got, " ");
		}
		if (t == 0)
			assert_true(strcmp(got, "a1 a3 ") == 0 || strcmp(got, "a3 a1 ") == 0);
		else
			assert_string_equal(got, "g2 ");
		batch_free(b);
		planner_clear(&p);
	}
}

static void a_delete_from_the_other_scope_is_ignored(void **state)
{
	struct fx *f = *state;
	struct planner p;
	struct batch *b = batch_new(BATCH_CHANGES, 1);
	uint64_t seq = 0;
	struct source_event *ev = event(SOURCE_DELETE, OBJECT_GROUP, "a1", NULL);

	exported_users(f, 1);
	planner_init(&p, &f->cfg, &f->st, &seq);
	plan_event(&p, b, ev); /* slapd's groups session names a changed user */
	source_event_free(ev);
	assert_int_equal(b->n, 0);
	batch_free(b);
	planner_clear(&p);
}

/* ---- delete protection -------------------------------------------------------------- */

static void deletes_over_the_threshold_are_staged_not_sent(void **state)
{
	struct fx *f = *state;
	struct engine_stats es;

	f->cfg.delete_threshold = 1;
	exported_users(f, 3);
	start(f);
	f->may_write = false;
	emit(f, event(SOURCE_DELETE, OBJECT_USER, "a1", NULL));
	emit(f, event(SOURCE_DELETE, OBJECT_USER, "a2", NULL));
	emit(f, event(SOURCE_DELETE, OBJECT_USER, "a3", "c1"));
	f->may_write = true;
	settle(f);
	assert_int_equal(count_seen(f, TARGET_DELETE), 1);
	assert_false(has(f, OBJECT_KEY_OBJECT, "a1"));
	assert_true(has(f, OBJECT_KEY_STAGED, "a2") && has(f, OBJECT_KEY_STAGED, "a3"));
	assert_true(has(f, OBJECT_KEY_OBJECT, "a2") && has(f, OBJECT_KEY_OBJECT, "a3"));
	assert_cursor(f, "c1"); /* staged is recorded: the cursor may pass */
	engine_stats(f->e, &es);
	assert_int_equal(es.state, ENGINE_QUARANTINED);
	assert_string_equal(es.quarantine_reason, "delete_threshold");
	assert_int_equal(es.pending_deletes, 2);
}

static void an_approved_staged_delete_is_deleted(void **state)
{
	struct fx *f = *state;
	char err[128];

	f->cfg.delete_threshold = 0; /* stage every delete */
	exported_users(f, 1);
	start(f);
	emit(f, event(SOURCE_DELETE, OBJECT_USER, "a1", "c1"));
	settle(f);
	assert_int_equal(count_seen(f, TARGET_DELETE), 0);
	assert_true(has(f, OBJECT_KEY_STAGED, "a1"));
	assert_int_equal(engine_deletes_decide(f->e, true, err, sizeof err), 0);
	settle(f);
	assert_int_equal(count_seen(f, TARGET_DELETE), 1);
	assert_string_equal(f->seen[0].target_id, "id-a1");
	assert_false(has(f, OBJECT_KEY_STAGED, "a1"));
	assert_false(has(f, OBJECT_KEY_OBJECT, "a1"));
}

static void member_removals_count_against_the_delete_threshold(void **state)
{
	struct fx *f = *state;
	struct state_batch b;
	char *members[] = {"a1", "a2"};
	struct object_record g = {.type = OBJECT_GROUP, .target_id = "id-g1", .hash = 1,
				  .dn = "cn=g1,ou=groups,dc=example", .members = members, .n_members = 2};
	struct source_event *ev;
	char key[KEY_MAX], *val;
	size_t vlen, klen;

	f->cfg.delete_threshold = 1;
	exported_users(f, 2);
	state_batch_init(&b);
	klen = object_key(OBJECT_KEY_OBJECT, "g1", key, sizeof key);
	assert_int_equal(object_record_encode(&g, &val, &vlen), 0);
	state_batch_put(&b, key, klen, val, vlen);
	free(val);
	apply(f, &b);
	start(f);
	/* the group now has no member attribute: both members leave it */
	ev = event(SOURCE_ENTRY, OBJECT_GROUP, "g1", "c1");
	ev->dn = xstrdup("cn=g1,ou=groups,dc=example");
	emit(f, ev);
	settle(f);
	assert_int_equal(count_seen(f, TARGET_MEMBERS), 1);
	for (size_t i = 0; i < f->n_seen; i++)
		if (f->seen[i].action == TARGET_MEMBERS)
			assert_int_equal(f->seen[i].n_remove, 1); /* the threshold's one */
	assert_int_equal(state_count(&f->st, STATE_NS_STAGED_MEMBER), 1);
	g = record(f, "g1");
	assert_int_equal(g.n_members, 1); /* the held one is still a member */
	object_record_free(&g);
	assert_cursor(f, "c1");
}

/* ---- refused member values (bisect.c) ------------------------------------------------------ */

/* Group g1 (exported, id "id-g1", no members) with users a1..an as members. */
static struct source_event *group_of(int n, const char *cursor)
{
	struct source_event *ev = event(SOURCE_ENTRY, OBJECT_GROUP, "g1", cursor);
	char dn[64];

	ev->dn = xstrdup("cn=g1,ou=groups,dc=example");
	ev->attrs = xcalloc(2, sizeof *ev->attrs);
	ev->n_attrs = 2;
	ev->attrs[0].name = xstrdup("cn");
	ev->attrs[0].values = xcalloc(1, sizeof(char *));
	ev->attrs[0].values[0] = xstrdup("g1");
	ev->attrs[0].n_values = 1;
	ev->attrs[1].name = xstrdup("member");
	ev->attrs[1].values = xcalloc((size_t)n + 1, sizeof(char *));
	for (int i = 1; i <= n; i++) {
		snprintf(dn, sizeof dn, "uid=u%d,ou=people,dc=example", i);
		ev->attrs[1].values[ev->attrs[1].n_values++] = xstrdup(dn);
	}
	return ev;
}

static void exported_group(struct fx *f)
{
	struct state_batch b;

	state_batch_init(&b);
	put_record(&b, OBJECT_KEY_OBJECT, "g1", OBJECT_GROUP, "cn=g1,ou=groups,dc=example", "id-g1", 0);
	apply(f, &b);
}

static bool lists(const struct object_record *r, const char *anchor)
{
	for (size_t i = 0; i < r->n_members; i++)
		if (strcmp(r->members[i], anchor) == 0)
			return true;
	return false;
}

static void refused_member_values_are_isolated_and_the_rest_applied(void **state)
{
	struct fx *f = *state;
	struct object_record g;
	struct retry_record r;

	exported_users(f, 16);
	exported_group(f);
	f->refuse_ids[0] = "id-a5";
	f->refuse_ids[1] = "id-a11";
	start(f);
	emit(f, group_of(16, "c1"));
	settle(f);
	g = record(f, "g1");
	assert_int_equal(g.n_members, 14);
	assert_false(lists(&g, "a5"));
	assert_false(lists(&g, "a11"));
	assert_true(lists(&g, "a1") && lists(&g, "a16"));
	assert_int_equal(g.n_refused, 2);
	object_record_free(&g);
	/* 1 + 2 k ceil(log2 n) requests at most: 17 for 2 of 16 */
	assert_in_range(count_seen(f, TARGET_MEMBERS), 3, 17);
	assert_int_equal(state_count(&f->st, STATE_NS_FAILED), 2);
	assert_true(engine_retry_record(&f->st, OBJECT_KEY_FAILED, "g1#a5", &r));
	assert_string_equal(r.member, "a5");
	assert_string_equal(r.member_dn, "uid=u5,ou=people,dc=example");
	assert_string_equal(r.dn, "cn=g1,ou=groups,dc=example");
	assert_false(r.member_remove);
	assert_int_equal(r.http_status, 400);
	assert_non_null(strstr(r.error, "invalidValue"));
	retry_record_free(&r);
	assert_true(has(f, OBJECT_KEY_FAILED, "g1#a11"));
	assert_false(has(f, OBJECT_KEY_FAILED, "g1"));
	assert_false(has(f, OBJECT_KEY_RETRY, "g1"));
	assert_cursor(f, "c1");
}

static void a_value_taken_later_clears_its_failed_member_record(void **state)
{
	struct fx *f = *state;
	struct object_record g;

	exported_users(f, 8);
	exported_group(f);
	f->refuse_ids[0] = "id-a3";
	start(f);
	emit(f, group_of(8, "c1"));
	settle(f);
	assert_true(has(f, OBJECT_KEY_FAILED, "g1#a3"));
	f->refuse_ids[0] = NULL;
	emit(f, group_of(8, "c2")); /* the group again: its whole membership planned */
	settle(f);
	g = record(f, "g1");
	assert_int_equal(g.n_members, 8);
	assert_int_equal(g.n_refused, 0);
	object_record_free(&g);
	assert_false(has(f, OBJECT_KEY_FAILED, "g1#a3"));
	assert_int_equal(state_count(&f->st, STATE_NS_FAILED), 0);
	assert_cursor(f, "c2");
}

static void refusals_past_the_cap_are_recorded_without_more_requests(void **state)
{
	struct fx *f = *state;
	struct object_record g;

	exported_users(f, 40);
	exported_group(f);
	f->refuse_every_member = true; /* a request refused whatever it holds */
	start(f);
	emit(f, group_of(40, "c1"));
	settle(f);
	g = record(f, "g1");
	assert_int_equal(g.n_members, 0);
	assert_int_equal(g.n_refused, 40);
	object_record_free(&g);
	assert_int_equal(state_count(&f->st, STATE_NS_FAILED), 40);
	/* 16 values isolated, then no more requests: far fewer than 2 per value */
	assert_true(count_seen(f, TARGET_MEMBERS) < 40);
	assert_cursor(f, "c1");
}

/* A group entry cn=<cn>,ou=groups with these member DNs. */
static struct source_event *group_with(const char *anchor, const char *cn, const char *const *dns, size_t n,
				       const char *cursor)
{
	struct source_event *ev = event(SOURCE_ENTRY, OBJECT_GROUP, anchor, cursor);
	char dn[64];

	snprintf(dn, sizeof dn, "cn=%s,ou=groups,dc=example", cn);
	ev->dn = xstrdup(dn);
	ev->attrs = xcalloc(2, sizeof *ev->attrs);
	ev->n_attrs = 2;
	ev->attrs[0].name = xstrdup("cn");
	ev->attrs[0].values = xcalloc(1, sizeof(char *));
	ev->attrs[0].values[0] = xstrdup(cn);
	ev->attrs[0].n_values = 1;
	ev->attrs[1].name = xstrdup("member");
	ev->attrs[1].values = xcalloc(n + 1, sizeof(char *));
	for (size_t i = 0; i < n; i++)
		ev->attrs[1].values[ev->attrs[1].n_values++] = xstrdup(dns[i]);
	return ev;
}

static void flatten_sends_transitive_users_and_ends_cycles(void **state)
{
	struct fx *f = *state;
	static const char *const g1[] = {"uid=u1,ou=people,dc=example", "uid=u2,ou=people,dc=example",
					 "cn=g2,ou=groups,dc=example"};
	static const char *const g2[] = {"uid=u3,ou=people,dc=example", "cn=g1,ou=groups,dc=example"};
	static const char *const g2_less[] = {"cn=g1,ou=groups,dc=example"};
	struct state_batch b;
	struct object_record r;

	f->cfg.nested_groups = ENGINE_NESTED_FLATTEN;
	exported_users(f, 3);
	state_batch_init(&b);
	put_record(&b, OBJECT_KEY_OBJECT, "g1", OBJECT_GROUP, "cn=g1,ou=groups,dc=example", "id-g1", 0);
	put_record(&b, OBJECT_KEY_OBJECT, "g2", OBJECT_GROUP, "cn=g2,ou=groups,dc=example", "id-g2", 0);
	apply(f, &b);
	start(f);
	/* g1 holds g2 and g2 holds g1: each one's users are all three */
	emit(f, group_with("g1", "g1", g1, 3, "c1"));
	emit(f, group_with("g2", "g2", g2, 2, "c2"));
	settle(f);
	for (int k = 1; k <= 2; k++) {
		r = record(f, k == 1 ? "g1" : "g2");
		assert_int_equal(r.n_members, 3);
		assert_true(lists(&r, "a1") && lists(&r, "a2") && lists(&r, "a3"));
		assert_true(r.flat);
		assert_int_equal(r.n_nested, 1);
		object_record_free(&r);
	}
	/* u3 leaves g2: g1, above it (and below it), loses u3 too */
	emit(f, group_with("g2", "g2", g2_less, 1, "c3"));
	settle(f);
	r = record(f, "g1");
	assert_int_equal(r.n_members, 2);
	assert_false(lists(&r, "a3"));
	object_record_free(&r);
	r = record(f, "g2");
	assert_int_equal(r.n_members, 2);
	object_record_free(&r);
	assert_cursor(f, "c3");
}

static void a_change_below_replans_a_group_written_before_flatten(void **state)
{
	struct fx *f = *state;
	static const char *const g2[] = {"uid=u2,ou=people,dc=example", "uid=u3,ou=people,dc=example"};
	char *g1_members[] = {"a1", "g2", NULL}, *g2_members[] = {"a2", NULL};
	struct object_record g1 = {.type = OBJECT_GROUP, .target_id = "id-g1", .hash = 1,
				   .dn = "cn=g1,ou=groups,dc=example", .members = g1_members, .n_members = 2};
	struct object_record g2r = {.type = OBJECT_GROUP, .target_id = "id-g2", .hash = 1,
				    .dn = "cn=g2,ou=groups,dc=example", .members = g2_members, .n_members = 1};
	struct state_batch b;
	struct object_record r;
	char key[KEY_MAX], *val;
	size_t vlen, klen;

	f->cfg.nested_groups = ENGINE_NESTED_FLATTEN;
	exported_users(f, 3);
	state_batch_init(&b);
	klen = object_key(OBJECT_KEY_OBJECT, "g1", key, sizeof key);
	assert_int_equal(object_record_encode(&g1, &val, &vlen), 0);
	state_batch_put(&b, key, klen, val, vlen);
	free(val);
	klen = object_key(OBJECT_KEY_OBJECT, "g2", key, sizeof key);
	assert_int_equal(object_record_encode(&g2r, &val, &vlen), 0);
	state_batch_put(&b, key, klen, val, vlen);
	free(val);
	apply(f, &b);
	start(f);
	/* native records (g1 holds g2 as a member); g2 changes: g1, above it,
	 * is planned again from its users and g2's */
	emit(f, group_with("g2", "g2", g2, 2, "c1"));
	settle(f);
	r = record(f, "g1");
	assert_int_equal(r.n_members, 3);
	assert_true(lists(&r, "a1") && lists(&r, "a2") && lists(&r, "a3"));
	assert_false(lists(&r, "g2")); /* no group members in the target any more */
	assert_true(r.flat);
	assert_int_equal(r.n_nested, 1);
	assert_string_equal(r.nested[0], "g2");
	object_record_free(&r);
	assert_cursor(f, "c1");
}

/* ---- in-doubt repair ---------------------------------------------------------------------- */

static void in_doubt_objects_are_rewritten_after_the_old_leases_end(void **state)
{
	struct fx *f = *state;
	struct state_batch b;
	struct object_record r;

	exported_users(f, 1);
	state_batch_init(&b);
	state_batch_put(&b, "i:a1", 4, "6", 1); /* an intent of term 6's leader */
	apply(f, &b);
	start(f);
	settle(f);
	assert_true(has(f, OBJECT_KEY_INTENT, "a1")); /* not before its requests surely ended */
	spin(f, 60); /* request timeout 10 ms + T 20 ms, at least 2 T */
	settle(f);
	assert_false(has(f, OBJECT_KEY_INTENT, "a1"));
	r = record(f, "a1");
	assert_int_equal(r.hash, 0); /* forgotten: the refresh writes it again */
	object_record_free(&r);
	assert_int_equal(f->refreshes[OBJECT_USER], 1);
	assert_int_equal(f->refreshes[OBJECT_GROUP], 1);
}

/* When the source can read one entry and every object in doubt has a record
 * with a DN, the repair reads those objects by DN -- no full refresh, whose
 * cost grows with the directory -- and writes them in full. */
static void in_doubt_objects_are_read_again_by_dn(void **state)
{
	struct fx *f = *state;
	struct state_batch b;
	struct object_record r;
	uint64_t until;

	f->source.read_entry = s_read_entry;
	f->read_anchor = "a1";
	f->read_uid = "u1";
	exported_users(f, 1);
	state_batch_init(&b);
	state_batch_put(&b, "i:a1", 4, "6 user", 6);
	apply(f, &b);
	start(f);
	settle(f);
	until = uv_hrtime() + 5000000000ull;
	while (count_seen(f, TARGET_UPSERT) == 0 && uv_hrtime() < until) { /* the read is on a worker */
		spin(f, 10);
		settle(f);
	}
	assert_int_equal(count_seen(f, TARGET_UPSERT), 1);
	assert_string_equal(f->seen[0].anchor, "a1");
	assert_int_equal(f->refreshes[OBJECT_USER], 0);
	assert_int_equal(f->refreshes[OBJECT_GROUP], 0);
	assert_false(has(f, OBJECT_KEY_INTENT, "a1"));
	r = record(f, "a1");
	assert_int_not_equal(r.hash, 0); /* written in full again */
	object_record_free(&r);
}

/* A read's result is older than a change the source delivers after it: an
 * object written again between the read and its planning keeps that newer
 * write (the read is dropped, not planned over it). */
static void a_read_again_object_changed_meanwhile_keeps_the_change(void **state)
{
	struct fx *f = *state;
	struct state_batch b;
	uint64_t until;

	f->source.read_entry = s_read_entry;
	f->read_anchor = "a1";
	f->read_uid = "u1";
	__atomic_store_n(&f->read_gate, 1, __ATOMIC_RELEASE);
	exported_users(f, 1);
	state_batch_init(&b);
	state_batch_put(&b, "i:a1", 4, "6 user", 6);
	apply(f, &b);
	start(f);
	settle(f);
	spin(f, 60); /* the repair batch commits; the read waits at the gate */
	settle(f);
	assert_false(has(f, OBJECT_KEY_INTENT, "a1"));
	emit(f, user("a1", "u1", "Changed Since", "c2"));
	settle(f);
	assert_int_equal(count_seen(f, TARGET_UPSERT), 1);
	__atomic_store_n(&f->read_gate, 0, __ATOMIC_RELEASE);
	until = uv_hrtime() + 300000000ull; /* let the read come back and be planned, or not */
	while (uv_hrtime() < until) {
		spin(f, 10);
		settle(f);
	}
	assert_int_equal(count_seen(f, TARGET_UPSERT), 1); /* the stale read was not written */
	assert_int_equal(f->refreshes[OBJECT_USER], 0);
	assert_cursor(f, "c2");
}

/* An object in doubt that the directory no longer has under its DN (deleted,
 * renamed, moved): only a full read of its scope can tell which. */
static void an_in_doubt_object_missing_by_dn_falls_back_to_a_full_read(void **state)
{
	struct fx *f = *state;
	struct state_batch b;
	uint64_t until;

	f->source.read_entry = s_read_entry; /* read_anchor NULL: no such entry */
	exported_users(f, 1);
	state_batch_init(&b);
	state_batch_put(&b, "i:a1", 4, "6 user", 6);
	apply(f, &b);
	start(f);
	settle(f);
	until = uv_hrtime() + 5000000000ull;
	while (f->refreshes[OBJECT_USER] == 0 && uv_hrtime() < until) {
		spin(f, 10);
		settle(f);
	}
	assert_int_equal(f->refreshes[OBJECT_USER], 1);
	assert_int_equal(f->refreshes[OBJECT_GROUP], 0); /* only its scope */
	assert_int_equal(count_seen(f, TARGET_UPSERT), 0);
}

/* An intent ANCHOR = VALUE of an earlier leader; start, and wait until the
 * in-doubt repair has run (request timeout 10 ms + T 20 ms, at least 2 T). */
static void after_in_doubt_repair(struct fx *f, const char *anchor, const char *value)
{
	struct state_batch b;
	char key[KEY_MAX];
	size_t klen = object_key(OBJECT_KEY_INTENT, anchor, key, sizeof key);

	state_batch_init(&b);
	state_batch_put(&b, key, klen, value, strlen(value));
	apply(f, &b);
	start(f);
	settle(f);
	spin(f, 60);
	settle(f);
}

/* An intent without an object record: the old leader's create may have
 * landed after it lost its lease. The repair records the object under an
 * unknown id; the refresh that follows does not report it (it left the
 * directory), so it is deleted in the target -- by its anchor, since nobody
 * knows its id (the chaos scenario late-create showed it staying for good). */
static void an_in_doubt_create_gone_from_the_source_is_deleted_by_anchor(void **state)
{
	struct fx *f = *state;
	struct object_record r;
	size_t deletes = 0;

	after_in_doubt_repair(f, "a9", "6 user"); /* term 6's leader was creating a9 */
	assert_false(has(f, OBJECT_KEY_INTENT, "a9"));
	r = record(f, "a9");
	assert_int_equal(r.type, OBJECT_USER);
	assert_null(r.target_id); /* exported under an unknown id */
	object_record_free(&r);
	assert_int_equal(f->refreshes[OBJECT_USER], 1);
	/* the full refresh (present phase) does not report a9 */
	emit(f, event(SOURCE_REFRESH_BEGIN, OBJECT_USER, NULL, NULL));
	struct source_event *end = event(SOURCE_REFRESH_END, OBJECT_USER, NULL, "c2");
	end->present_phase = true;
	emit(f, end);
	settle(f);
	for (size_t i = 0; i < f->n_seen; i++)
		if (f->seen[i].action == TARGET_DELETE && strcmp(f->seen[i].anchor, "a9") == 0) {
			assert_string_equal(f->seen[i].target_id, ""); /* looked up by anchor */
			deletes++;
		}
	assert_int_equal(deletes, 1);
	assert_false(has(f, OBJECT_KEY_OBJECT, "a9"));
	assert_cursor(f, "c2");
}

/* The same, when the refresh does report it: written in full (the target
 * finds a landed create by its externalId), under the id it answers. */
static void an_in_doubt_create_still_in_the_source_is_written(void **state)
{
	struct fx *f = *state;
	struct object_record r;

	after_in_doubt_repair(f, "a9", "6 user");
	emit(f, event(SOURCE_REFRESH_BEGIN, OBJECT_USER, NULL, NULL));
	emit(f, user("a9", "u9", "Nine", NULL));
	struct source_event *end = event(SOURCE_REFRESH_END, OBJECT_USER, NULL, "c2");
	end->present_phase = true;
	emit(f, end);
	settle(f);
	assert_int_equal(count_seen(f, TARGET_UPSERT), 1);
	assert_int_equal(count_seen(f, TARGET_DELETE), 0);
	r = record(f, "a9");
	assert_string_equal(r.target_id, "id-a9");
	assert_int_not_equal(r.hash, 0);
	object_record_free(&r);
}

/* A new leader's batch that touches an object an earlier leader's intent
 * names -- here a create and a delete of it, superseded into a delete of an
 * object without a record, so nothing is sent -- must not settle that intent:
 * term 6's create may have landed, and if this leader loses its lease before
 * its repair runs, the next one must still find it, typed (the chaos scenario
 * `loss` left a user in the target for good this way). */
static void a_batch_keeps_an_earlier_leaders_intent_for_the_repair(void **state)
{
	struct fx *f = *state;
	struct state_batch b;
	const void *v;
	size_t vlen;

	state_batch_init(&b);
	state_batch_put(&b, "i:a9", 4, "6 user", 6); /* term 6's leader was creating a9 */
	apply(f, &b);
	start(f);
	f->may_write = false; /* no lease yet: both events go into one batch */
	emit(f, user("a9", "u9", "Nine", NULL));
	emit(f, event(SOURCE_DELETE, OBJECT_USER, "a9", "c1"));
	f->may_write = true;
	settle(f);
	assert_cursor(f, "c1");
	/* deleted by its anchor (typed: the target must know where to look);
	 * a create of term 6 still on the wire could land after it */
	assert_int_equal(count_seen(f, TARGET_DELETE), 1);
	assert_int_equal(f->seen[f->n_seen - 1].action, TARGET_DELETE);
	assert_string_equal(f->seen[f->n_seen - 1].target_id, "");
	assert_true(state_get(&f->st, "i:a9", 4, &v, &vlen));
	assert_true(vlen > 5 && memcmp((const char *)v + vlen - 5, " user", 5) == 0);
	engine_follow(f->e); /* leadership lost before the repair was due */
	spin(f, 10);
	assert_true(has(f, OBJECT_KEY_INTENT, "a9"));
	/* leading again (as the next leader would): repair, then the full
	 * refresh does not report a9 */
	engine_lead(f->e);
	settle(f);
	spin(f, 60);
	settle(f);
	emit(f, event(SOURCE_REFRESH_BEGIN, OBJECT_USER, NULL, NULL));
	struct source_event *end = event(SOURCE_REFRESH_END, OBJECT_USER, NULL, "c2");
	end->present_phase = true;
	emit(f, end);
	settle(f);
	/* by anchor again, after every write of term 6 surely ended */
	assert_int_equal(count_seen(f, TARGET_DELETE), 2);
	assert_string_equal(f->seen[f->n_seen - 1].target_id, "");
	assert_false(has(f, OBJECT_KEY_INTENT, "a9"));
	assert_false(has(f, OBJECT_KEY_OBJECT, "a9"));
}

/* A group in doubt: its old leader may have changed its members in the
 * target after its last commit (the chaos scenario `loss` left a member the
 * workload had removed: term 16 added it, did not commit, and term 17's
 * diff against the record never removed it). After the repair the next
 * member write sends every member, exact: the target drops the others. */
static void an_in_doubt_groups_members_are_written_exact(void **state)
{
	struct fx *f = *state;
	struct state_batch b;
	char *members[] = {"a1"};
	struct object_record g = {.type = OBJECT_GROUP, .target_id = "id-g1", .hash = 1,
				  .dn = "cn=g1,ou=groups,dc=example", .members = members, .n_members = 1};
	char key[KEY_MAX], *val;
	size_t vlen, klen, found = 0;
	struct source_event *ev;

	exported_users(f, 2);
	state_batch_init(&b);
	klen = object_key(OBJECT_KEY_OBJECT, "g1", key, sizeof key);
	assert_int_equal(object_record_encode(&g, &val, &vlen), 0);
	state_batch_put(&b, key, klen, val, vlen);
	free(val);
	apply(f, &b);
	after_in_doubt_repair(f, "g1", "16 group");
	struct object_record r = record(f, "g1");
	assert_true(r.members_in_doubt);
	object_record_free(&r);
	/* the refresh reports g1 with its one member, unchanged */
	emit(f, event(SOURCE_REFRESH_BEGIN, OBJECT_GROUP, NULL, NULL));
	ev = event(SOURCE_ENTRY, OBJECT_GROUP, "g1", NULL);
	ev->dn = xstrdup("cn=g1,ou=groups,dc=example");
	ev->attrs = xcalloc(1, sizeof *ev->attrs);
	ev->n_attrs = 1;
	ev->attrs[0].name = xstrdup("member");
	ev->attrs[0].values = xcalloc(1, sizeof(char *));
	ev->attrs[0].values[0] = xstrdup("uid=u1,ou=people,dc=example");
	ev->attrs[0].n_values = 1;
	emit(f, ev);
	ev = event(SOURCE_REFRESH_END, OBJECT_GROUP, NULL, "c2");
	ev->present_phase = true;
	emit(f, ev);
	settle(f);
	for (size_t i = 0; i < f->n_seen; i++)
		if (f->seen[i].action == TARGET_MEMBERS) {
			assert_string_equal(f->seen[i].anchor, "g1");
			assert_true(f->seen[i].exact);
			assert_int_equal(f->seen[i].n_add, 1); /* a1, although the record had it */
			found++;
		}
	assert_int_equal(found, 1);
	r = record(f, "g1");
	assert_false(r.members_in_doubt); /* exact now */
	assert_int_equal(r.n_members, 1);
	object_record_free(&r);
	assert_cursor(f, "c2");
}

/* A member the target created anew (its update found it gone: e.g. a DELETE
 * that landed while its batch never committed) is added back to the groups
 * whose records list it: the target dropped it from them when it went. */
static void a_member_created_anew_is_added_back_to_its_groups(void **state)
{
	struct fx *f = *state;
	struct state_batch b;
	char *members[] = {"a1", "a2"};
	struct object_record g = {.type = OBJECT_GROUP, .target_id = "id-g1", .hash = 1,
				  .dn = "cn=g1,ou=groups,dc=example", .members = members, .n_members = 2};
	char key[KEY_MAX], *val;
	size_t vlen, klen, found = 0;

	exported_users(f, 2);
	state_batch_init(&b);
	klen = object_key(OBJECT_KEY_OBJECT, "g1", key, sizeof key);
	assert_int_equal(object_record_encode(&g, &val, &vlen), 0);
	state_batch_put(&b, key, klen, val, vlen);
	free(val);
	apply(f, &b);
	start(f);
	f->recreate_anchor = "a1";
	emit(f, user("a1", "u1", "Changed", "c1"));
	settle(f);
	for (size_t i = 0; i < f->n_seen; i++)
		if (f->seen[i].action == TARGET_MEMBERS) {
			assert_string_equal(f->seen[i].anchor, "g1");
			assert_int_equal(f->seen[i].n_add, 1);
			assert_int_equal(f->seen[i].n_remove, 0);
			found++;
		}
	assert_int_equal(found, 1);
	struct object_record r = record(f, "a1");
	assert_string_equal(r.target_id, "new-a1");
	object_record_free(&r);
	r = record(f, "g1");
	assert_int_equal(r.n_members, 2); /* both still members */
	object_record_free(&r);
	assert_cursor(f, "c1");
}

/* ---- member shapes (docs/sources.md) ------------------------------------------------ */

/* A group entry cn=<cn>,ou=groups whose member attribute is `attr`. */
static struct source_event *group_attr(const char *anchor, const char *cn, const char *attr,
				       const char *const *values, size_t n, const char *cursor)
{
	struct source_event *ev = group_with(anchor, cn, values, n, cursor);

	free(ev->attrs[1].name);
	ev->attrs[1].name = xstrdup(attr);
	return ev;
}

/* Exported users u1..un as with memberUid groups: their records carry the uid. */
static void exported_users_with_uid(struct fx *f, int n)
{
	struct state_batch b;
	char anchor[16], dn[64], id[16], uid[16], key[KEY_MAX], *val;
	size_t vlen, klen;

	state_batch_init(&b);
	for (int i = 1; i <= n; i++) {
		snprintf(anchor, sizeof anchor, "a%d", i);
		snprintf(dn, sizeof dn, "uid=u%d,ou=people,dc=example", i);
		snprintf(id, sizeof id, "id-a%d", i);
		snprintf(uid, sizeof uid, "u%d", i);
		struct object_record r = {.type = OBJECT_USER, .target_id = id, .hash = 1000 + (uint64_t)i,
					  .dn = dn, .member_key = uid};
		klen = object_key(OBJECT_KEY_OBJECT, anchor, key, sizeof key);
		assert_int_equal(object_record_encode(&r, &val, &vlen), 0);
		state_batch_put(&b, key, klen, val, vlen);
		free(val);
	}
	apply(f, &b);
}

static bool waits_for(const struct object_record *r, const char *value)
{
	for (size_t i = 0; i < r->n_unresolved; i++)
		if (strcmp(r->unresolved[i], value) == 0)
			return true;
	return false;
}

static void memberuid_values_resolve_through_the_uid_index(void **state)
{
	struct fx *f = *state;
	/* "U2": memberUid and uid compare without case */
	static const char *const uids[] = {"u1", "U2", "u9"};
	struct object_record r;

	f->cfg.member_attr = "memberUid";
	f->cfg.member_value = "uid";
	exported_users_with_uid(f, 3); /* the index is rebuilt from these records */
	exported_group(f);
	start(f);
	emit(f, group_attr("g1", "g1", "memberUid", uids, 3, "c1"));
	settle(f);
	r = record(f, "g1");
	assert_int_equal(r.n_members, 2);
	assert_true(lists(&r, "a1") && lists(&r, "a2"));
	assert_false(lists(&r, "a3"));
	assert_int_equal(r.n_unresolved, 1);
	assert_true(waits_for(&r, "u9"));
	object_record_free(&r);
	/* the user u9 names appears: its record keeps its uid, the group gets it */
	emit(f, user("a9", "u9", "Nine", "c2"));
	settle(f);
	r = record(f, "a9");
	assert_string_equal(r.member_key, "u9");
	object_record_free(&r);
	r = record(f, "g1");
	assert_int_equal(r.n_members, 3);
	assert_true(lists(&r, "a9"));
	assert_int_equal(r.n_unresolved, 0);
	object_record_free(&r);
	assert_cursor(f, "c2");
}

static void a_renamed_uid_is_found_under_its_new_value_only(void **state)
{
	struct fx *f = *state;
	static const char *const old_uid[] = {"u1"};
	static const char *const new_uid[] = {"renamed"};
	struct object_record r;

	f->cfg.member_attr = "memberUid";
	f->cfg.member_value = "uid";
	exported_users_with_uid(f, 1);
	exported_group(f);
	start(f);
	emit(f, user("a1", "renamed", "One", "c1")); /* uid u1 -> renamed, same anchor */
	settle(f);
	r = record(f, "a1");
	assert_string_equal(r.member_key, "renamed");
	object_record_free(&r);
	emit(f, group_attr("g1", "g1", "memberUid", old_uid, 1, "c2"));
	settle(f);
	r = record(f, "g1");
	assert_int_equal(r.n_members, 0); /* the old uid names nobody now */
	assert_true(waits_for(&r, "u1"));
	object_record_free(&r);
	emit(f, group_attr("g1", "g1", "memberUid", new_uid, 1, "c3"));
	settle(f);
	r = record(f, "g1");
	assert_int_equal(r.n_members, 1);
	assert_true(lists(&r, "a1"));
	assert_int_equal(r.n_unresolved, 0);
	object_record_free(&r);
}

static void a_retried_user_keeps_its_uid_for_memberuid_groups(void **state)
{
	struct fx *f = *state;
	static const char *const uids[] = {"u1"};
	struct retry_record rr;
	struct object_record r;
	size_t n;
	char err[128];

	f->cfg.member_attr = "memberUid";
	f->cfg.member_value = "uid";
	exported_group(f);
	start(f);
	f->fail_anchor = "a1";
	f->fail_status = -EIO;
	emit(f, user("a1", "u1", "User", "c1"));
	settle(f);
	assert_true(engine_retry_record(&f->st, OBJECT_KEY_RETRY, "a1", &rr));
	assert_string_equal(rr.member_key, "u1");
	retry_record_free(&rr);
	/* taken from the retry set, not the source: the uid comes with it */
	f->fail_anchor = NULL;
	assert_int_equal(engine_resync(f->e, "uid=u1,ou=people,dc=example", false, &n, err, sizeof err), 0);
	settle(f);
	r = record(f, "a1");
	assert_string_equal(r.member_key, "u1");
	object_record_free(&r);
	emit(f, group_attr("g1", "g1", "memberUid", uids, 1, "c2"));
	settle(f);
	r = record(f, "g1");
	assert_true(lists(&r, "a1"));
	object_record_free(&r);
}

static void unique_member_values_lose_their_uid_suffix(void **state)
{
	struct fx *f = *state;
	static const char *const values[] = {"uid=u1,ou=people,dc=example#'0101'B",
					     "uid=u2,ou=people,dc=example",
					     "uid=u2,ou=people,dc=example#''B"};
	struct object_record r;

	f->cfg.member_attr = "uniqueMember";
	exported_users(f, 2);
	exported_group(f);
	start(f);
	emit(f, group_attr("g1", "g1", "uniqueMember", values, 3, "c1"));
	settle(f);
	r = record(f, "g1");
	assert_int_equal(r.n_members, 2);
	assert_true(lists(&r, "a1") && lists(&r, "a2"));
	assert_int_equal(r.n_unresolved, 0);
	object_record_free(&r);
}

static void member_value_dn_len_splits_name_and_optional_uid(void **state)
{
	static const struct {
		const char *v;
		size_t dn;
	} cases[] = {
		{"cn=a,dc=x#'0101'B", 9},     /* the suffix */
		{"cn=a,dc=x#''B", 9},         /* an empty BitString is one */
		{"cn=a,dc=x", 9},             /* none */
		{"cn=a,dc=x\\#'01'B", 16},    /* "\#": escaped, part of the DN */
		{"cn=a,dc=x\\\\#'01'B", 11},  /* "\\" then '#': the suffix */
		{"cn=a,dc=x#'0121'B", 17},    /* not binary digits */
		{"cn=a,dc=x#'01'b", 15},      /* "B" only (RFC 4517 §3.3.2) */
		{"cn=a,dc=x'01'B", 14},       /* no '#' */
		{"#'01'B", 6},                /* no DN before it: all DN */
		{"'B", 2},
		{"", 0},
	};
	(void)state;

	for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++)
		assert_int_equal(member_value_dn_len(cases[i].v), cases[i].dn);
	assert_true(member_value_is_unique_member("UNIQUEMEMBER"));
	assert_false(member_value_is_unique_member("member"));
}

/* ---- the cursor ----------------------------------------------------------------------------- */

static void the_cursor_moves_with_a_batch_whose_writes_are_done(void **state)
{
	struct fx *f = *state;
	struct object_record r;

	start(f);
	emit(f, user("a1", "u1", "User", "c1"));
	settle(f);
	assert_cursor(f, "c1");
	r = record(f, "a1");
	assert_string_equal(r.target_id, "id-a1");
	object_record_free(&r);
	assert_false(has(f, OBJECT_KEY_INTENT, "a1")); /* settled in the same entry */
}

static void every_commit_carries_the_cluster_figures_and_a_new_leader_continues_them(void **state)
{
	struct fx *f = *state;
	struct sync_figures fig;
	uint64_t before = (uint64_t)time(NULL) * 1000;

	start(f);
	f->fail_anchor = "a2";
	f->fail_status = -EIO;
	emit(f, user("a1", "u1", "User", "c1"));
	emit(f, user("a2", "u2", "User", "c2"));
	settle(f);
	assert_cursor(f, "c2");
	/* in the state, so every node that applied the entry reads them */
	assert_true(figures_get(&f->st, &fig));
	assert_int_equal(fig.objects, 1); /* a2 went to the retry set */
	assert_int_equal(fig.ops, 1);
	assert_int_equal(fig.errors, 1);
	assert_true(fig.last_export_ms >= before && fig.cursor_at_ms >= before);
	assert_true(figures_rate(&fig, fig.last_export_ms) > 0);

	/* another engine (the next leader) on the same state continues them */
	engine_close(f->e, on_engine_closed, f);
	while (!f->closed)
		uv_run(&f->loop, UV_RUN_ONCE);
	f->e = NULL;
	f->closed = false;
	f->fail_anchor = NULL;
	start(f);
	emit(f, user("a3", "u3", "User", "c3"));
	settle(f);
	assert_true(figures_get(&f->st, &fig));
	assert_int_equal(fig.objects, 2);
	assert_int_equal(fig.ops, 2);
	assert_int_equal(fig.errors, 1);
}

static void a_failed_target_write_goes_to_the_retry_set_not_behind_the_cursor(void **state)
{
	struct fx *f = *state;
	size_t n;
	char err[128];

	start(f);
	f->fail_anchor = "a1";
	f->fail_status = -EIO;
	emit(f, user("a1", "u1", "User", "c1"));
	settle(f);
	assert_cursor(f, "c1");
	assert_true(has(f, OBJECT_KEY_RETRY, "a1"));
	assert_false(has(f, OBJECT_KEY_OBJECT, "a1"));
	/* the target takes it now: retried from the retry set, not the source */
	f->fail_anchor = NULL;
	assert_int_equal(engine_resync(f->e, "uid=u1,ou=people,dc=example", false, &n, err, sizeof err), 0);
	settle(f);
	assert_false(has(f, OBJECT_KEY_RETRY, "a1"));
	assert_true(has(f, OBJECT_KEY_OBJECT, "a1"));
	assert_int_equal(count_seen(f, TARGET_UPSERT), 2);
}

static void a_refused_object_is_recorded_as_failed(void **state)
{
	struct fx *f = *state;

	start(f);
	f->fail_anchor = "a1";
	f->fail_status = -EPROTO;
	f->fail_permanent = true;
	emit(f, user("a1", "u1", "User", "c1"));
	settle(f);
	assert_cursor(f, "c1");
	assert_true(has(f, OBJECT_KEY_FAILED, "a1"));
	assert_false(has(f, OBJECT_KEY_RETRY, "a1"));
}

static void an_unmappable_entry_is_recorded_as_failed_not_skipped(void **state)
{
	static const struct mapping_rule_text bad[] = {{"userName", "Mid([uid], 0, 1)", 1}};
	struct fx *f = *state;
	struct engine_stats es;

	mapping_free(f->user_map);
	f->cfg.user_map = f->user_map = compile(OBJECT_USER, bad, 1);
	start(f);
	emit(f, user("a1", "u1", "User", "c1"));
	settle(f);
	assert_int_equal(count_seen(f, TARGET_UPSERT), 0);
	assert_true(has(f, OBJECT_KEY_FAILED, "a1"));
	assert_cursor(f, "c1");
	engine_stats(f->e, &es);
	assert_int_equal(es.skipped_total, 1);
}

/* canopyctl provision waits for the batch in progress (one write per object
 * at a time), then runs as a batch of its own: intents, target, one entry
 * with the record -- and no cursor. */
static void a_provision_runs_after_the_batch_in_progress_and_moves_no_cursor(void **state)
{
	struct fx *f = *state;
	char err[256];

	f->source.read_entry = s_read_entry;
	f->read_anchor = "a2";
	f->read_uid = "u2";
	start(f);
	f->hold = TARGET_UPSERT;
	emit(f, user("a1", "u1", "User", "c1"));
	settle(f); /* a1's upsert is on the wire, held */
	assert_int_equal(engine_provision(f->e, "uid=u2,ou=people,dc=example", false, on_report, f, err, sizeof err),
			 0);
	spin(f, 50); /* the read is done: the provision waits for a1's batch */
	assert_false(f->reported);
	assert_int_equal(count_seen(f, TARGET_UPSERT), 1);
	f->hold = 0;
	uv_timer_start(&f->answer_timer, on_answer_timer, 0, 0);
	wait_report(f);
	assert_int_equal(f->report_status, 0);
	assert_string_equal(report_str(f, "action"), "create");
	assert_string_equal(last_step(f), "done");
	assert_int_equal(count_seen(f, TARGET_UPSERT), 2);
	assert_string_equal(f->seen[1].anchor, "a2");
	assert_true(has(f, OBJECT_KEY_OBJECT, "a2"));
	assert_false(has(f, OBJECT_KEY_INTENT, "a2"));
	assert_cursor(f, "c1"); /* a1's batch moved it; the provision did not */
	json_decref(f->report);
}

static void a_dry_run_provision_writes_nothing(void **state)
{
	struct fx *f = *state;
	char err[256];
	unsigned entries;

	f->source.read_entry = s_read_entry;
	f->read_anchor = "a1";
	f->read_uid = "u1";
	start(f);
	emit(f, user("a1", "u1", "User", "c1"));
	settle(f);
	entries = f->entries;
	assert_int_equal(engine_provision(f->e, "uid=u1,ou=people,dc=example", true, on_report, f, err, sizeof err),
			 0);
	wait_report(f);
	assert_int_equal(f->report_status, 0);
	/* the directory says "Read Now" where the record has "User": an update */
	assert_string_equal(report_str(f, "action"), "update");
	assert_string_equal(last_step(f), "dry_run");
	settle(f);
	assert_int_equal(count_seen(f, TARGET_UPSERT), 1);
	assert_int_equal(f->entries, entries);
	json_decref(f->report);
}

static void a_cancelled_write_leaves_the_cursor_where_it_was(void **state)
{
	struct fx *f = *state;

	start(f);
	f->hold = TARGET_UPSERT;
	emit(f, user("a1", "u1", "User", "c1"));
	settle(f);
	assert_int_equal(f->n_pending, 1);
	engine_follow(f->e); /* leadership lost with the request out */
	spin(f, 10);
	assert_cursor(f, NULL);
	assert_false(has(f, OBJECT_KEY_OBJECT, "a1"));
	assert_false(has(f, OBJECT_KEY_RETRY, "a1"));
	assert_true(has(f, OBJECT_KEY_INTENT, "a1")); /* the next leader repairs it */
}

static void a_lease_rewind_keeps_an_earlier_failure_in_the_retry_set(void **state)
{
	struct fx *f = *state;

	exported_users(f, 2);
	start(f);
	/* one batch: a3's upsert fails, then a2's delete is on the wire when
	 * the lease ends */
	f->fail_anchor = "a3";
	f->fail_status = -EIO;
	f->hold = TARGET_DELETE;
	f->may_write = false;
	emit(f, user("a3", "u3", "User", NULL));
	emit(f, event(SOURCE_DELETE, OBJECT_USER, "a2", "c1"));
	f->may_write = true;
	settle(f);
	assert_int_equal(f->n_pending, 1);
	f->may_write = false; /* the watchdog cancels the delete: the batch rewinds */
	spin(f, 30);
	assert_int_equal(f->n_pending, 0);
	assert_cursor(f, NULL);
	f->hold = 0;
	f->may_write = true; /* the lease is back: the whole batch runs again */
	settle(f);
	assert_cursor(f, "c1");
	assert_false(has(f, OBJECT_KEY_OBJECT, "a2"));
	/* a3 failed again: recorded, not forgotten because it failed before */
	assert_true(has(f, OBJECT_KEY_RETRY, "a3"));
	assert_int_equal(count_seen(f, TARGET_UPSERT), 2);
}

/* A retry scheduled by a leader whose clock ran an hour ahead (replicated
 * with its wall-clock next try) is due now on a leader with a right clock,
 * not in an hour (sync/engine/retryset.c). */
static void a_retry_scheduled_by_a_clock_far_ahead_is_due_now(void **state)
{
	struct fx *f = *state;
	struct retry_record r;
	struct state_batch b;
	char key[KEY_MAX], *val;
	size_t vlen, klen;
	uint64_t t0;

	r = (struct retry_record){.kind = RETRY_UPSERT, .type = OBJECT_USER,
				  .dn = "uid=u1,ou=people,dc=example",
				  .resource = json_pack("{s:s,s:s}", "userName", "u1", "displayName", "User"),
				  .hash = 77, .attempts = 1};
	r.first_at_ms = engine_unix_ms() + 3600 * 1000;
	r.next_at_ms = r.first_at_ms + 1000; /* its first backoff, on its clock */
	klen = object_key(OBJECT_KEY_RETRY, "a1", key, sizeof key);
	assert_int_equal(retry_record_encode(&r, &val, &vlen), 0);
	json_decref(r.resource);
	state_batch_init(&b);
	state_batch_put(&b, key, klen, val, vlen);
	free(val);
	apply(f, &b);
	start(f);
	t0 = uv_hrtime();
	while (has(f, OBJECT_KEY_RETRY, "a1") && uv_hrtime() - t0 < 3000000000ull)
		spin(f, 10);
	assert_false(has(f, OBJECT_KEY_RETRY, "a1"));
	assert_true(has(f, OBJECT_KEY_OBJECT, "a1"));
	assert_int_equal(count_seen(f, TARGET_UPSERT), 1);
}

/* ---- out of memory --------------------------------------------------------------------------- */

/* In a child: plan a refresh that reports both exported users changed, with
 * the n-th allocation failing. Exits 0 when the plan is right (two upserts,
 * no delete), 1 when it is wrong; an allocation failure aborts. */
static void plan_refresh_in_child(struct fx *f, unsigned long n)
{
	struct planner p;
	uint64_t seq = 0;
	struct source_event *evs[] = {
		event(SOURCE_REFRESH_BEGIN, OBJECT_USER, NULL, NULL),
		user("a1", "u1", "One", NULL),
		user("a2", "u2", "Two", NULL),
		event(SOURCE_REFRESH_END, OBJECT_USER, NULL, "c1"),
	};
	struct rlimit no_core = {0, 0};
	struct batch *b;
	size_t upserts = 0, deletes = 0;

	setrlimit(RLIMIT_CORE, &no_core);
	evs[3]->present_phase = true;
	planner_init(&p, &f->cfg, &f->st, &seq);
	xalloc_fail_after(n);
	b = batch_new(BATCH_CHANGES, 1);
	for (size_t i = 0; i < 4; i++)
		plan_event(&p, b, evs[i]);
	xalloc_fail_after(0);
	for (size_t i = 0; i < b->n; i++) {
		upserts += b->items[i]->kind == IT_UPSERT;
		deletes += b->items[i]->kind == IT_DELETE;
	}
	_exit(upserts == 2 && deletes == 0 ? 0 : 1);
}

static void an_allocation_failure_while_planning_aborts_instead_of_planning_a_delete(void **state)
{
	struct fx *f = *state;
	unsigned long n;
	int aborted = 0, status;

	exported_users(f, 2);
	for (n = 1; n < 1000; n++) {
		pid_t pid;
		fflush(NULL);
		pid = fork();
		assert_true(pid >= 0);
		if (pid == 0) {
			int devnull = open("/dev/null", O_WRONLY);
			dup2(devnull, 2); /* the abort's own message */
			plan_refresh_in_child(f, n);
		}
		assert_int_equal(waitpid(pid, &status, 0), pid);
		if (WIFEXITED(status)) {
			assert_int_equal(WEXITSTATUS(status), 0); /* a plan made is the right plan */
			break; /* the n-th allocation comes after planning: done */
		}
		assert_true(WIFSIGNALED(status));
		assert_int_equal(WTERMSIG(status), SIGABRT);
		aborted++;
	}
	assert_true(n < 1000);
	assert_true(aborted >= 5); /* every allocation of the plan failed once */
}

/* ---- names ------------------------------------------------------------------------------------ */

/* ---- the manager reference -------------------------------------------------------------- */

static void on_log(void *data, int level, const char *msg, const char *detail)
{
	struct fx *f = data;

	(void)level, (void)detail;
	if (strcmp(msg, "a manager is not exported") == 0)
		f->manager_warnings++;
}

/* mapping.user with the enterprise manager mapped from the entry's `manager` */
static void map_manager(struct fx *f)
{
	static const struct mapping_rule_text users[] = {
		{"userName", "[uid]", 1},
		{"displayName", "[cn]", 2},
		{"urn:ietf:params:scim:schemas:extension:enterprise:2.0:User:manager", "[manager]", 3}};

	mapping_free(f->user_map);
	f->cfg.user_map = f->user_map = compile(OBJECT_USER, users, 3);
	f->cfg.log = on_log;
	f->cfg.log_data = f;
}

/* A user entry whose manager is `manager_dn` (NULL: none). */
static struct source_event *report(const char *anchor, const char *uid, const char *cn, const char *manager_dn,
				   const char *cursor)
{
	struct source_event *ev = user(anchor, uid, cn, cursor);

	if (manager_dn == NULL)
		return ev;
	ev->attrs = xrealloc(ev->attrs, 3 * sizeof *ev->attrs);
	ev->attrs[2].name = xstrdup("manager");
	ev->attrs[2].values = xcalloc(1, sizeof(char *));
	ev->attrs[2].values[0] = xstrdup(manager_dn);
	ev->attrs[2].n_values = 1;
	ev->n_attrs = 3;
	return ev;
}

static const struct seen_op *last_seen(struct fx *f, enum target_action a, const char *anchor)
{
	for (size_t i = f->n_seen; i-- > 0;)
		if (f->seen[i].action == a && strcmp(f->seen[i].anchor, anchor) == 0)
			return &f->seen[i];
	return NULL;
}

static void assert_manager(struct fx *f, const char *anchor, const char *manager, const char *manager_dn)
{
	struct object_record r = record(f, anchor);

	if (manager == NULL)
		assert_null(r.manager);
	else
		assert_string_equal(r.manager, manager);
	if (manager_dn == NULL)
		assert_null(r.manager_dn);
	else
		assert_string_equal(r.manager_dn, manager_dn);
	object_record_free(&r);
}

#define BOSS_DN "uid=u1,ou=people,dc=example"

static void a_known_manager_is_written_with_the_user(void **state)
{
	struct fx *f = *state;
	const struct seen_op *op;

	map_manager(f);
	start(f);
	emit(f, report("a1", "u1", "Boss", NULL, "c1"));
	settle(f);
	emit(f, report("a2", "u2", "Worker", BOSS_DN, "c2"));
	settle(f);
	op = last_seen(f, TARGET_UPSERT, "a2");
	assert_non_null(op);
	assert_string_equal(op->manager_id, "id-a1");
	assert_int_equal(count_seen(f, TARGET_MANAGER), 0); /* one request: the user with its manager */
	assert_manager(f, "a2", "a1", BOSS_DN);
	assert_cursor(f, "c2");
}

static void a_manager_later_in_the_batch_is_set_after_the_upserts(void **state)
{
	struct fx *f = *state;
	const struct seen_op *op;

	map_manager(f);
	start(f);
	f->may_write = false; /* one batch: the report first, its manager after */
	emit(f, report("a2", "u2", "Worker", BOSS_DN, "c1"));
	emit(f, report("a1", "u1", "Boss", NULL, "c2"));
	f->may_write = true;
	settle(f);
	op = last_seen(f, TARGET_UPSERT, "a2");
	assert_string_equal(op->manager_id, ""); /* not known when the user was written */
	op = last_seen(f, TARGET_MANAGER, "a2");
	assert_non_null(op);
	assert_string_equal(op->target_id, "id-a2");
	assert_string_equal(op->manager_id, "id-a1");
	assert_manager(f, "a2", "a1", BOSS_DN);
	assert_int_equal(f->manager_warnings, 0);
	assert_cursor(f, "c2");
}

static void a_report_waits_for_its_manager_and_gets_it_when_exported(void **state)
{
	struct fx *f = *state;
	const struct seen_op *op;

	map_manager(f);
	start(f);
	emit(f, report("a2", "u2", "Worker", BOSS_DN, "c1"));
	settle(f);
	assert_int_equal(count_seen(f, TARGET_MANAGER), 0);
	assert_manager(f, "a2", NULL, BOSS_DN); /* waiting: the DN is kept, nothing is lost */
	assert_cursor(f, "c1");
	emit(f, report("a1", "u1", "Boss", NULL, "c2"));
	settle(f);
	op = last_seen(f, TARGET_MANAGER, "a2");
	assert_non_null(op);
	assert_string_equal(op->manager_id, "id-a1");
	assert_manager(f, "a2", "a1", BOSS_DN);
	assert_cursor(f, "c2");
}

static void a_changed_manager_is_patched(void **state)
{
	struct fx *f = *state;
	const struct seen_op *op;

	map_manager(f);
	start(f);
	emit(f, report("a1", "u1", "Boss", NULL, "c1"));
	emit(f, report("a3", "u3", "Other boss", NULL, "c2"));
	settle(f);
	emit(f, report("a2", "u2", "Worker", BOSS_DN, "c3"));
	settle(f);
	emit(f, report("a2", "u2", "Worker", "uid=u3,ou=people,dc=example", "c4"));
	settle(f);
	op = last_seen(f, TARGET_MANAGER, "a2");
	assert_non_null(op); /* only the manager changed: a PATCH, no PUT */
	assert_string_equal(op->manager_id, "id-a3");
	assert_int_equal(count_seen(f, TARGET_UPSERT), 3);
	assert_manager(f, "a2", "a3", "uid=u3,ou=people,dc=example");
}

/* The reports are found through the index the planner builds from the
 * state: here the records were committed before this leader started. */
static void a_deleted_manager_is_removed_from_its_reports(void **state)
{
	struct fx *f = *state;
	struct state_batch b;
	struct object_record w = {.type = OBJECT_USER, .target_id = "id-a2", .hash = 2,
				  .dn = "uid=u2,ou=people,dc=example", .manager_dn = BOSS_DN, .manager = "a1"};
	char key[KEY_MAX], *val;
	size_t vlen, klen;
	const struct seen_op *op;

	map_manager(f);
	exported_users(f, 1);
	state_batch_init(&b);
	klen = object_key(OBJECT_KEY_OBJECT, "a2", key, sizeof key);
	assert_int_equal(object_record_encode(&w, &val, &vlen), 0);
	state_batch_put(&b, key, klen, val, vlen);
	free(val);
	apply(f, &b);
	start(f);
	emit(f, event(SOURCE_DELETE, OBJECT_USER, "a1", "c1"));
	settle(f);
	op = last_seen(f, TARGET_MANAGER, "a2");
	assert_non_null(op);
	assert_string_equal(op->target_id, "id-a2");
	assert_string_equal(op->manager_id, ""); /* remove */
	assert_int_equal(count_seen(f, TARGET_DELETE), 1);
	assert_false(has(f, OBJECT_KEY_OBJECT, "a1"));
	assert_manager(f, "a2", NULL, BOSS_DN); /* waits, should the DN come back */
	assert_int_equal(f->manager_warnings, 1);
	assert_cursor(f, "c1");
	/* a user with that DN again: the reference comes back */
	emit(f, report("a9", "u1", "New boss", NULL, "c2"));
	settle(f);
	op = last_seen(f, TARGET_MANAGER, "a2");
	assert_string_equal(op->manager_id, "id-a9");
	assert_manager(f, "a2", "a9", BOSS_DN);
}

static void a_renamed_manager_keeps_its_reports(void **state)
{
	struct fx *f = *state;
	size_t upserts;

	map_manager(f);
	start(f);
	emit(f, report("a1", "u1", "Boss", NULL, "c1"));
	settle(f);
	emit(f, report("a2", "u2", "Worker", BOSS_DN, "c2"));
	emit(f, report("a3", "u3", "Worker too", BOSS_DN, "c3"));
	settle(f);
	emit(f, report("a1", "u1b", "Boss", NULL, "c4")); /* renamed: same anchor, new DN */
	settle(f);
	upserts = count_seen(f, TARGET_UPSERT);
	/* a2 now carries the new DN, a3 still the old one: both mean a1 */
	emit(f, report("a2", "u2", "Worker", "uid=u1b,ou=people,dc=example", "c5"));
	emit(f, report("a3", "u3", "Worker too", BOSS_DN, "c6"));
	settle(f);
	assert_int_equal(count_seen(f, TARGET_MANAGER), 0);
	assert_int_equal(count_seen(f, TARGET_UPSERT), upserts);
	assert_manager(f, "a2", "a1", "uid=u1b,ou=people,dc=example");
	assert_manager(f, "a3", "a1", BOSS_DN);
	assert_int_equal(f->manager_warnings, 0);
	assert_cursor(f, "c6");
}

static void an_unknown_manager_is_left_out_and_logged_once(void **state)
{
	struct fx *f = *state;
	const struct seen_op *op;

	map_manager(f);
	start(f);
	emit(f, report("a2", "u2", "Worker", "cn=someone,ou=elsewhere,dc=other", "c1"));
	settle(f);
	emit(f, report("a2", "u2", "Worker renamed", "cn=someone,ou=elsewhere,dc=other", "c2"));
	settle(f);
	op = last_seen(f, TARGET_UPSERT, "a2");
	assert_string_equal(op->manager_id, "");
	assert_int_equal(count_seen(f, TARGET_UPSERT), 2);
	assert_int_equal(count_seen(f, TARGET_MANAGER), 0);
	assert_int_equal(f->manager_warnings, 1); /* once, not per change */
	assert_false(has(f, OBJECT_KEY_RETRY, "a2"));
	assert_false(has(f, OBJECT_KEY_FAILED, "a2"));
	assert_cursor(f, "c2");
}

static void a_failed_manager_patch_is_retried_from_the_retry_set(void **state)
{
	struct fx *f = *state;
	const struct seen_op *op;
	size_t n;
	char err[128];

	map_manager(f);
	start(f);
	emit(f, report("a2", "u2", "Worker", BOSS_DN, "c1"));
	settle(f);
	f->fail_anchor = "a2";
	f->fail_status = -EIO;
	emit(f, report("a1", "u1", "Boss", NULL, "c2"));
	settle(f);
	assert_cursor(f, "c2");
	assert_true(has(f, OBJECT_KEY_RETRY, "a2"));
	assert_manager(f, "a2", NULL, BOSS_DN);
	f->fail_anchor = NULL;
	assert_int_equal(engine_resync(f->e, "uid=u2,ou=people,dc=example", false, &n, err, sizeof err), 0);
	settle(f);
	op = last_seen(f, TARGET_MANAGER, "a2");
	assert_string_equal(op->manager_id, "id-a1");
	assert_false(has(f, OBJECT_KEY_RETRY, "a2"));
	assert_manager(f, "a2", "a1", BOSS_DN);
}

static void state_and_reason_names_are_the_public_strings(void **state)
{
	static const char *const states[] = {"disabled", "standby", "starting", "refreshing",
					     "syncing", "idle", "quarantined", "stopping"};
	static const char *const reasons[] = {"", "source_unreachable", "source_unauthorized", "source_error",
					      "target_unreachable", "target_unauthorized", "target_server_errors",
					      "target_error", "delete_threshold", "target_schema_mismatch"};
	(void)state;

	for (int i = ENGINE_DISABLED; i <= ENGINE_STOPPING; i++)
		assert_string_equal(engine_state_name((enum engine_state)i), states[i]);
	for (int i = ENGINE_Q_NONE; i <= ENGINE_Q_TARGET_SCHEMA_MISMATCH; i++)
		assert_string_equal(engine_quarantine_name((enum engine_quarantine)i), reasons[i]);
}

/* ---- SelectUniqueValue (unique.c) ---------------------------------------------- */

static void use_unique_user_map(struct fx *f)
{
	static const struct mapping_rule_text rules[] = {
		{"userName", "SelectUniqueValue([uid], Join(\".\", [uid], \"2\"), Join(\".\", [uid], \"3\"))", 1},
		{"displayName", "[cn]", 2}};

	mapping_free(f->user_map);
	f->cfg.user_map = f->user_map = compile(OBJECT_USER, rules, 2);
}

/* The target is asked about each candidate in order; the creation carries
 * the first one nobody holds, and the target is asked nothing else. Two
 * creations of one batch never take the same value. */
static void select_unique_value_creates_with_the_first_free_candidate(void **state)
{
	struct fx *f = *state;
	size_t upserts = 0;

	use_unique_user_map(f);
	f->taken[0] = "u1";
	start(f);
	f->hold = TARGET_TAKEN; /* a0's batch waits: a1 and a2 make the next one together */
	emit(f, user("a0", "z", "Other", "c0"));
	settle(f);
	emit(f, user("a1", "u1", "User", "c1"));
	emit(f, user("a2", "u1", "Twin", "c2")); /* same uid: must not get u1.2 too */
	f->hold = 0;
	uv_timer_start(&f->answer_timer, on_answer_timer, 0, 0);
	settle(f);
	assert_cursor(f, "c2");
	for (size_t i = 0; i < f->n_seen; i++) {
		const struct seen_op *s = &f->seen[i];
		if (s->action != TARGET_UPSERT || strcmp(s->anchor, "a0") == 0)
			continue;
		upserts++;
		assert_string_equal(s->value, strcmp(s->anchor, "a1") == 0 ? "u1.2" : "u1.3");
	}
	assert_int_equal(upserts, 2);
	/* a0 asked z; a1 u1 (taken), u1.2 (free); a2 waited for a1's answer
	 * about u1, asked it too, then u1.3 -- never u1.2, which a1 chose */
	assert_int_equal(count_seen(f, TARGET_TAKEN), 5);
	assert_false(has(f, OBJECT_KEY_FAILED, "a1"));
	assert_false(has(f, OBJECT_KEY_FAILED, "a2"));
	/* an update never asks again, and tells the target to keep the value */
	size_t before = count_seen(f, TARGET_TAKEN);
	emit(f, user("a1", "u1", "User Renamed", "c3"));
	settle(f);
	assert_int_equal(count_seen(f, TARGET_TAKEN), before);
	assert_int_equal(f->seen[f->n_seen - 1].action, TARGET_UPSERT);
	assert_true(f->seen[f->n_seen - 1].keep);
	assert_string_equal(f->seen[f->n_seen - 1].value, "");
}

/* Every candidate held: nothing is written, the object is recorded as failed
 * with the attribute and the candidates, for a re-read on resync. */
static void select_unique_value_all_taken_is_failed_with_the_reason(void **state)
{
	struct fx *f = *state;
	struct retry_record r;

	use_unique_user_map(f);
	f->taken[0] = "u1";
	f->taken[1] = "u1.2";
	f->taken[2] = "u1.3";
	start(f);
	emit(f, user("a1", "u1", "User", "c1"));
	settle(f);
	assert_cursor(f, "c1");
	assert_int_equal(count_seen(f, TARGET_UPSERT), 0);
	assert_int_equal(count_seen(f, TARGET_TAKEN), 3);
	assert_false(has(f, OBJECT_KEY_RETRY, "a1"));
	assert_true(engine_retry_record(&f->st, OBJECT_KEY_FAILED, "a1", &r));
	assert_int_equal(r.kind, RETRY_REREAD); /* the value is chosen anew from the source */
	assert_non_null(r.error);
	assert_non_null(strstr(r.error, "SelectUniqueValue: every candidate for userName is taken in the target: "
					"\"u1\", \"u1.2\", \"u1.3\""));
	assert_non_null(strstr(r.error, "mapping userName (line 1)"));
	retry_record_free(&r);
}

/* The target does not answer a question: nothing is written; the object is
 * a failed one to read again (the retry set would replay a resource that has
 * no value), never a creation without the value. */
static void select_unique_value_unanswered_is_failed_for_a_reread(void **state)
{
	struct fx *f = *state;
	struct retry_record r;

	use_unique_user_map(f);
	f->fail_anchor = "a1";
	f->fail_status = -EIO;
	start(f);
	emit(f, user("a1", "u1", "User", "c1"));
	settle(f);
	assert_cursor(f, "c1");
	assert_int_equal(count_seen(f, TARGET_UPSERT), 0);
	assert_false(has(f, OBJECT_KEY_RETRY, "a1"));
	assert_true(engine_retry_record(&f->st, OBJECT_KEY_FAILED, "a1", &r));
	assert_int_equal(r.kind, RETRY_REREAD);
	assert_non_null(strstr(r.error, "asking the target whether userName \"u1\" is taken failed: fake: taken failed"));
	retry_record_free(&r);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(a_batch_takes_at_most_batch_max_events, setup, teardown),
		cmocka_unit_test_setup_teardown(a_batch_of_big_groups_is_bounded_by_its_member_values, setup, teardown),
		cmocka_unit_test_setup_teardown(changes_queued_behind_a_batch_need_no_intent_entry_of_their_own, setup, teardown),
		cmocka_unit_test_setup_teardown(a_later_change_supersedes_an_earlier_one_in_the_batch, setup,
						teardown),
		cmocka_unit_test_setup_teardown(an_unchanged_object_costs_no_request, setup, teardown),
		cmocka_unit_test_setup_teardown(a_present_phase_deletes_only_the_unreported_objects_of_its_type,
						setup, teardown),
		cmocka_unit_test_setup_teardown(a_present_phase_deletes_what_the_refresh_did_not_report, setup,
						teardown),
		cmocka_unit_test_setup_teardown(a_delete_from_the_other_scope_is_ignored, setup, teardown),
		cmocka_unit_test_setup_teardown(deletes_over_the_threshold_are_staged_not_sent, setup, teardown),
		cmocka_unit_test_setup_teardown(an_approved_staged_delete_is_deleted, setup, teardown),
		cmocka_unit_test_setup_teardown(member_removals_count_against_the_delete_threshold, setup, teardown),
		cmocka_unit_test_setup_teardown(in_doubt_objects_are_rewritten_after_the_old_leases_end, setup,
						teardown),
		cmocka_unit_test_setup_teardown(in_doubt_objects_are_read_again_by_dn, setup, teardown),
		cmocka_unit_test_setup_teardown(an_in_doubt_object_missing_by_dn_falls_back_to_a_full_read, setup, teardown),
		cmocka_unit_test_setup_teardown(a_read_again_object_changed_meanwhile_keeps_the_change, setup, teardown),
		cmocka_unit_test_setup_teardown(an_in_doubt_create_gone_from_the_source_is_deleted_by_anchor, setup,
						teardown),
		cmocka_unit_test_setup_teardown(an_in_doubt_create_still_in_the_source_is_written, setup, teardown),
		cmocka_unit_test_setup_teardown(a_batch_keeps_an_earlier_leaders_intent_for_the_repair, setup,
						teardown),
		cmocka_unit_test_setup_teardown(an_in_doubt_groups_members_are_written_exact, setup, teardown),
		cmocka_unit_test_setup_teardown(a_member_created_anew_is_added_back_to_its_groups, setup, teardown),
		cmocka_unit_test_setup_teardown(the_cursor_moves_with_a_batch_whose_writes_are_done, setup, teardown),
		cmocka_unit_test_setup_teardown(every_commit_carries_the_cluster_figures_and_a_new_leader_continues_them,
						setup, teardown),
		cmocka_unit_test_setup_teardown(a_failed_target_write_goes_to_the_retry_set_not_behind_the_cursor,
						setup, teardown),
		cmocka_unit_test_setup_teardown(a_refused_object_is_recorded_as_failed, setup, teardown),
		cmocka_unit_test_setup_teardown(an_unmappable_entry_is_recorded_as_failed_not_skipped, setup,
						teardown),
		cmocka_unit_test_setup_teardown(a_cancelled_write_leaves_the_cursor_where_it_was, setup, teardown),
		cmocka_unit_test_setup_teardown(a_provision_runs_after_the_batch_in_progress_and_moves_no_cursor, setup,
						teardown),
		cmocka_unit_test_setup_teardown(a_dry_run_provision_writes_nothing, setup, teardown),
		cmocka_unit_test_setup_teardown(a_lease_rewind_keeps_an_earlier_failure_in_the_retry_set, setup,
						teardown),
		cmocka_unit_test_setup_teardown(a_retry_scheduled_by_a_clock_far_ahead_is_due_now, setup, teardown),
		cmocka_unit_test_setup_teardown(
			an_allocation_failure_while_planning_aborts_instead_of_planning_a_delete, setup, teardown),
		cmocka_unit_test_setup_teardown(a_known_manager_is_written_with_the_user, setup, teardown),
		cmocka_unit_test_setup_teardown(a_manager_later_in_the_batch_is_set_after_the_upserts, setup,
						teardown),
		cmocka_unit_test_setup_teardown(a_report_waits_for_its_manager_and_gets_it_when_exported, setup,
						teardown),
		cmocka_unit_test_setup_teardown(a_changed_manager_is_patched, setup, teardown),
		cmocka_unit_test_setup_teardown(a_deleted_manager_is_removed_from_its_reports, setup, teardown),
		cmocka_unit_test_setup_teardown(a_renamed_manager_keeps_its_reports, setup, teardown),
		cmocka_unit_test_setup_teardown(an_unknown_manager_is_left_out_and_logged_once, setup, teardown),
		cmocka_unit_test_setup_teardown(a_failed_manager_patch_is_retried_from_the_retry_set, setup,
						teardown),
		cmocka_unit_test_setup_teardown(refused_member_values_are_isolated_and_the_rest_applied, setup,
						teardown),
		cmocka_unit_test_setup_teardown(a_value_taken_later_clears_its_failed_member_record, setup, teardown),
		cmocka_unit_test_setup_teardown(refusals_past_the_cap_are_recorded_without_more_requests, setup,
						teardown),
		cmocka_unit_test_setup_teardown(flatten_sends_transitive_users_and_ends_cycles, setup, teardown),
		cmocka_unit_test_setup_teardown(a_change_below_replans_a_group_written_before_flatten, setup,
						teardown),
		cmocka_unit_test_setup_teardown(memberuid_values_resolve_through_the_uid_index, setup, teardown),
		cmocka_unit_test_setup_teardown(a_renamed_uid_is_found_under_its_new_value_only, setup, teardown),
		cmocka_unit_test_setup_teardown(a_retried_user_keeps_its_uid_for_memberuid_groups, setup, teardown),
		cmocka_unit_test_setup_teardown(unique_member_values_lose_their_uid_suffix, setup, teardown),
		cmocka_unit_test_setup_teardown(select_unique_value_creates_with_the_first_free_candidate, setup,
						teardown),
		cmocka_unit_test_setup_teardown(select_unique_value_all_taken_is_failed_with_the_reason, setup,
						teardown),
		cmocka_unit_test_setup_teardown(select_unique_value_unanswered_is_failed_for_a_reread, setup,
						teardown),
		cmocka_unit_test(member_value_dn_len_splits_name_and_optional_uid),
		cmocka_unit_test(state_and_reason_names_are_the_public_strings),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
