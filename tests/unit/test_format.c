/*
 * tests/unit/test_format.c -- rolling upgrades in the state machine: two
 * builds of it (a machine that applies format 1 only, as the previous release
 * does, and the current one), the "v:" records members advertise, and the
 * gate that keeps a leader writing format 1 while any member could not apply
 * format 2 (sync/state/format.h).
 */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "raft/fsm.h"
#include "sync/state/format.h"
#include "sync/state/state.h"

/* One node: its state and the FSM adapter libraft would call. */
struct machine {
	struct state s;
	struct fsm f;
};

/* max_version 1 is the previous release's build: it applies format 1 only. */
static struct machine *machine_new(uint16_t max_version)
{
	struct machine *m = calloc(1, sizeof *m);
	state_init(&m->s);
	fsm_init(&m->f, state_machine(&m->s));
	m->s.machine.max_version = max_version;
	return m;
}

static void machine_free(struct machine *m)
{
	state_close(&m->s);
	free(m);
}

/* Apply a copy of buf the way libraft does (it owns what it applies). */
static int apply(struct machine *m, const struct raft_buffer *buf)
{
	struct raft_buffer copy = {raft_malloc(buf->len), buf->len};
	void *result;
	int rv;

	memcpy(copy.base, buf->base, buf->len);
	rv = m->f.raft.apply(&m->f.raft, &copy, &result);
	raft_free(copy.base);
	return rv;
}

/* A batch of `n` object puts, large enough to be deflated when n >= 10. */
static void objects(struct state_batch *b, unsigned from, unsigned n)
{
	char k[64], v[128];
	unsigned i;

	for (i = from; i < from + n; i++) {
		int kl = snprintf(k, sizeof k, "o:anchor-%08u", i);
		int vl = snprintf(v, sizeof v, "{\"id\":\"target-%08u\",\"hash\":\"0123456789abcdef\",\"dn\":\"uid=u%u\"}", i, i);
		state_batch_put(b, k, (size_t)kl, v, (size_t)vl);
	}
}

static void record(struct state_batch *b, uint64_t id, uint16_t max_format)
{
	struct format_record r = {.max_format = max_format};
	snprintf(r.text, sizeof r.text, "canopy-agent test (format %u)", max_format);
	format_record_put(b, id, &r);
}

/* The previous release refuses a format 2 entry, whole, and applies format 1. */
static void old_machine_refuses_format_2(void **ctx)
{
	struct machine *old = machine_new(1);
	struct state_batch b;
	struct raft_buffer buf;
	uint64_t digest;
	(void)ctx;

	state_batch_init(&b);
	objects(&b, 0, 3);
	assert_int_equal(state_batch_encode(&b, &buf), 0);
	assert_int_equal(apply(old, &buf), 0);
	raft_free(buf.base);
	digest = state_digest(&old->s);

	assert_int_equal(state_batch_encode_version(&b, 2, &buf), 0);
	assert_int_equal(apply(old, &buf), RAFT_MALFORMED);
	raft_free(buf.base);
	assert_int_equal(old->f.stats.refused, 1);
	assert_non_null(strstr(old->f.stats.last_error, "upgrade this node"));
	assert_true(state_digest(&old->s) == digest);
	state_batch_close(&b);
	machine_free(old);
}

/* Format 2, plain or deflated, reaches the same state as format 1. */
static void format_2_applies_like_format_1(void **ctx)
{
	struct machine *a = machine_new(STATE_VERSION), *c = machine_new(STATE_VERSION);
	struct state_batch small, big;
	struct raft_buffer buf1, buf2;
	(void)ctx;

	state_batch_init(&small);
	objects(&small, 0, 1);
	state_batch_init(&big);
	objects(&big, 1, 200);
	state_batch_cursor(&big, "cookie", 6);

	assert_int_equal(state_batch_encode(&small, &buf1), 0);
	assert_int_equal(apply(a, &buf1), 0);
	raft_free(buf1.base);
	assert_int_equal(state_batch_encode(&big, &buf1), 0);
	assert_int_equal(apply(a, &buf1), 0);

	assert_int_equal(state_batch_encode_version(&small, 2, &buf2), 0);
	assert_int_equal(apply(c, &buf2), 0);
	raft_free(buf2.base);
	assert_int_equal(state_batch_encode_version(&big, 2, &buf2), 0);
	/* deflated: the big batch is much smaller in format 2 */
	assert_true(buf2.len < buf1.len / 2);
	assert_int_equal(apply(c, &buf2), 0);
	raft_free(buf1.base);
	raft_free(buf2.base);

	assert_true(state_digest(&a->s) == state_digest(&c->s));
	assert_int_equal(state_keys(&c->s), 201);
	assert_int_equal(c->s.applied_by_version[2], 2);
	assert_int_equal(c->s.applied_deflated, 1);
	assert_int_equal(a->s.applied_by_version[1], 2);
	assert_int_equal(state_batch_encode_version(&small, 3, &buf2), -EINVAL);
	state_batch_close(&small);
	state_batch_close(&big);
	machine_free(a);
	machine_free(c);
}

/* A deflated batch whose stream does not inflate to its stated length, or
 * states one over the cap, is refused whole. */
static void deflated_batch_that_lies_is_refused(void **ctx)
{
	struct machine *m = machine_new(STATE_VERSION);
	struct state_batch b;
	struct raft_buffer buf;
	unsigned char *payload;
	(void)ctx;

	state_batch_init(&b);
	objects(&b, 0, 50);
	assert_int_equal(state_batch_encode_version(&b, 2, &buf), 0);
	payload = (unsigned char *)buf.base + FSM_HEADER_SIZE;
	assert_int_equal(payload[0], STATE_ENCODING_DEFLATE);
	payload[1] ^= 1; /* the stated length, one off */
	assert_int_equal(apply(m, &buf), RAFT_MALFORMED);
	payload[1] ^= 1;
	payload[4] = 0xff; /* ~4 GB: over STATE_BATCH_RAW_MAX */
	assert_int_equal(apply(m, &buf), RAFT_MALFORMED);
	assert_non_null(strstr(m->f.stats.last_error, "over"));
	assert_int_equal(state_keys(&m->s), 0);
	raft_free(buf.base);
	state_batch_close(&b);
	machine_free(m);
}

static void records_parse_and_malformed_ones_count_as_format_1(void **ctx)
{
	struct format_record r;
	char err[128], longer[FORMAT_TEXT_MAX + 8];
	static const char *const bad[] = {"", " x", "0 x", "70000 x", "2x", "x 2", "2 a\nb"};
	unsigned i;
	(void)ctx;

	assert_int_equal(format_record_parse("2 canopy-agent 0.1.0 (commit abc)", 33, &r, err, sizeof err), 0);
	assert_int_equal(r.max_format, 2);
	assert_string_equal(r.text, "canopy-agent 0.1.0 (commit abc)");
	assert_int_equal(format_record_parse("3", 1, &r, err, sizeof err), 0);
	assert_int_equal(r.max_format, 3);
	assert_string_equal(r.text, "");
	for (i = 0; i < sizeof bad / sizeof bad[0]; i++)
		assert_int_equal(format_record_parse(bad[i], strlen(bad[i]), &r, err, sizeof err), -EINVAL);
	memset(longer, 'x', sizeof longer);
	longer[0] = '2';
	longer[1] = ' ';
	assert_int_equal(format_record_parse(longer, sizeof longer, &r, err, sizeof err), -EINVAL);
	assert_non_null(strstr(err, "over"));
}

static void gate_needs_every_member(void **ctx)
{
	struct machine *m = machine_new(STATE_VERSION);
	const uint64_t ids[] = {1, 2, 3};
	struct state_batch b;
	struct raft_buffer buf;
	(void)ctx;

	/* no record: format 1 */
	assert_true(state_format_supported(&m->s, ids, 3, 1));
	assert_false(state_format_supported(&m->s, ids, 3, 2));
	assert_int_equal(state_format_writable(&m->s, ids, 3, STATE_VERSION), 1);
	state_batch_init(&b);
	record(&b, 1, 2);
	record(&b, 2, 2);
	record(&b, 3, 1);
	assert_int_equal(state_batch_encode(&b, &buf), 0);
	assert_int_equal(apply(m, &buf), 0);
	raft_free(buf.base);
	state_batch_close(&b);
	assert_false(state_format_supported(&m->s, ids, 3, 2));
	assert_true(state_format_supported(&m->s, ids, 2, 2)); /* 1 and 2 alone */
	assert_int_equal(format_member_max(&m->s, 3), 1);
	assert_int_equal(format_member_max(&m->s, 9), 1);
	/* a member whose build knows more than this one: the leader's own max caps it */
	state_batch_init(&b);
	record(&b, 3, 7);
	assert_int_equal(state_batch_encode(&b, &buf), 0);
	assert_int_equal(apply(m, &buf), 0);
	raft_free(buf.base);
	state_batch_close(&b);
	assert_int_equal(state_format_writable(&m->s, ids, 3, STATE_VERSION), 2);
	assert_int_equal(state_format_writable(&m->s, ids, 3, 1), 1);
	machine_free(m);
}

/*
 * A rolling upgrade of three nodes, 1 and 2 already on the current build, 3
 * still on the previous one. The leader writes through the gate: format 1
 * while 3 has no record, so 3 applies everything; 3 is upgraded (its state
 * carried over by a snapshot, which the older build must read too) and
 * advertises format 2; from then on the leader writes format 2, which the
 * previous build would have refused.
 */
static void leader_writes_format_2_only_after_last_member_upgraded(void **ctx)
{
	struct machine *n[4] = {NULL, machine_new(STATE_VERSION), machine_new(STATE_VERSION), machine_new(1)};
	struct machine *spare_old = machine_new(1);
	const uint64_t ids[] = {1, 2, 3};
	struct state_batch b;
	struct raft_buffer buf, one;
	unsigned i, round;
	uint16_t f;
	(void)ctx;

	/* the leader (node 1) records what 1 and 2 reported; 3 sends nothing */
	state_batch_init(&b);
	record(&b, 1, STATE_VERSION);
	record(&b, 2, STATE_VERSION);
	assert_int_equal(state_batch_encode(&b, &buf), 0);
	for (i = 1; i <= 3; i++)
		assert_int_equal(apply(n[i], &buf), 0);
	raft_free(buf.base);
	state_batch_close(&b);

	for (round = 0; round < 5; round++) {
		f = state_format_writable(&n[1]->s, ids, 3, STATE_VERSION);
		assert_int_equal(f, 1);
		state_batch_init(&b);
		objects(&b, round * 20, 20);
		assert_int_equal(state_batch_encode_version(&b, f, &buf), 0);
		for (i = 1; i <= 3; i++)
			assert_int_equal(apply(n[i], &buf), 0);
		raft_free(buf.base);
		state_batch_close(&b);
	}
	assert_int_equal(n[3]->f.stats.refused, 0);
	assert_true(state_digest(&n[3]->s) == state_digest(&n[1]->s));

	/* a snapshot taken by a current node installs on the previous build */
	fsm_snapshot_now(&n[1]->f, &one);
	assert_int_equal(spare_old->f.raft.restore(&spare_old->f.raft, &one), 0);
	assert_true(state_digest(&spare_old->s) == state_digest(&n[1]->s));

	/* upgrade node 3: same data, current build */
	{
		struct machine *up = machine_new(STATE_VERSION);
		fsm_snapshot_now(&n[3]->f, &one);
		assert_int_equal(up->f.raft.restore(&up->f.raft, &one), 0);
		machine_free(n[3]);
		n[3] = up;
	}
	/* until its report is recorded, still format 1 */
	assert_int_equal(state_format_writable(&n[1]->s, ids, 3, STATE_VERSION), 1);
	state_batch_init(&b);
	record(&b, 3, STATE_VERSION);
	assert_int_equal(state_batch_encode(&b, &buf), 0);
	for (i = 1; i <= 3; i++)
		assert_int_equal(apply(n[i], &buf), 0);
	assert_int_equal(apply(spare_old, &buf), 0);
	raft_free(buf.base);
	state_batch_close(&b);

	f = state_format_writable(&n[1]->s, ids, 3, STATE_VERSION);
	assert_int_equal(f, 2);
	state_batch_init(&b);
	objects(&b, 1000, 20);
	assert_int_equal(state_batch_encode_version(&b, f, &buf), 0);
	for (i = 1; i <= 3; i++)
		assert_int_equal(apply(n[i], &buf), 0);
	/* the previous build would have stalled on it */
	assert_int_equal(apply(spare_old, &buf), RAFT_MALFORMED);
	raft_free(buf.base);
	state_batch_close(&b);
	for (i = 1; i <= 3; i++) {
		assert_int_equal(n[i]->s.applied_by_version[2], 1);
		assert_true(state_digest(&n[i]->s) == state_digest(&n[1]->s));
	}
	for (i = 1; i <= 3; i++)
		machine_free(n[i]);
	machine_free(spare_old);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(old_machine_refuses_format_2),
		cmocka_unit_test(format_2_applies_like_format_1),
		cmocka_unit_test(deflated_batch_that_lies_is_refused),
		cmocka_unit_test(records_parse_and_malformed_ones_count_as_format_1),
		cmocka_unit_test(gate_needs_every_member),
		cmocka_unit_test(leader_writes_format_2_only_after_last_member_upgraded),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
