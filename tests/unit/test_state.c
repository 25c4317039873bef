/*
 * tests/unit/test_state.c -- the replicated state machine through the FSM
 * adapter: apply, snapshot round trip, refusal of unknown versions and of
 * malformed entries.
 */
#include <pthread.h>
#include <setjmp.h>
#include <errno.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "raft/fsm.h"
#include "sync/state/object.h"
#include "sync/state/retry.h"
#include "sync/state/state.h"

struct fixture {
	struct state s;
	struct fsm f;
};

static int setup(void **ctx)
{
	struct fixture *x = calloc(1, sizeof *x);
	state_init(&x->s);
	fsm_init(&x->f, state_machine(&x->s));
	assert_int_equal(fsm_snapshot_off_loop(&x->f), 0); /* as an agent's node does */
	*ctx = x;
	return 0;
}

static int teardown(void **ctx)
{
	struct fixture *x = *ctx;
	state_close(&x->s);
	free(x);
	return 0;
}

/* Apply a raft buffer the way libraft does, then free it (libraft owns it). */
static int apply_buf(struct fixture *x, struct raft_buffer *buf)
{
	void *result;
	int rv = x->f.raft.apply(&x->f.raft, buf, &result);
	raft_free(buf->base);
	return rv;
}

static int apply_batch(struct fixture *x, struct state_batch *b)
{
	struct raft_buffer buf;
	assert_int_equal(state_batch_encode(b, &buf), 0);
	state_batch_close(b);
	return apply_buf(x, &buf);
}

static void put(struct state_batch *b, const char *k, const char *v)
{
	state_batch_put(b, k, strlen(k), v, strlen(v));
}

static const char *get(struct fixture *x, const char *k, char *out, size_t size)
{
	const void *v;
	size_t n;
	if (!state_get(&x->s, k, strlen(k), &v, &n))
		return NULL;
	snprintf(out, size, "%.*s", (int)n, (const char *)v);
	return out;
}

static void batch_sets_cursor_and_objects_together(void **ctx)
{
	struct fixture *x = *ctx;
	struct state_batch b;
	char buf[64];

	state_batch_init(&b);
	put(&b, "uuid-1", "scim-1");
	put(&b, "uuid-2", "scim-2");
	state_batch_cursor(&b, "rid=000,csn=1", 13);
	assert_int_equal(apply_batch(x, &b), 0);

	assert_int_equal(x->s.count, 2);
	assert_string_equal(get(x, "uuid-1", buf, sizeof buf), "scim-1");
	assert_string_equal(get(x, "uuid-2", buf, sizeof buf), "scim-2");
	assert_int_equal(x->s.cursor_len, 13);
	assert_memory_equal(x->s.cursor, "rid=000,csn=1", 13);
	assert_int_equal(x->f.stats.applied, 1);
}

static void put_replaces_and_delete_removes(void **ctx)
{
	struct fixture *x = *ctx;
	struct state_batch b;
	char buf[64];

	state_batch_init(&b);
	put(&b, "a", "1");
	put(&b, "b", "2");
	assert_int_equal(apply_batch(x, &b), 0);
	state_batch_init(&b);
	put(&b, "a", "3");
	state_batch_del(&b, "b", 1);
	state_batch_del(&b, "never-there", 11); /* replayed deletes are no-ops */
	assert_int_equal(apply_batch(x, &b), 0);

	assert_int_equal(x->s.count, 1);
	assert_string_equal(get(x, "a", buf, sizeof buf), "3");
	assert_null(get(x, "b", buf, sizeof buf));
}

static void digest_depends_on_content_not_order(void **ctx)
{
	struct fixture *x = *ctx;
	struct state other;
	struct fsm of;
	struct state_batch b;
	struct raft_buffer buf;
	void *result;

	state_init(&other);
	fsm_init(&of, state_machine(&other));

	state_batch_init(&b);
	put(&b, "a", "1");
	put(&b, "b", "2");
	assert_int_equal(apply_batch(x, &b), 0);

	state_batch_init(&b);
	put(&b, "b", "2");
	put(&b, "a", "1");
	assert_int_equal(state_batch_encode(&b, &buf), 0);
	state_batch_close(&b);
	assert_int_equal(of.raft.apply(&of.raft, &buf, &result), 0);
	raft_free(buf.base);
	assert_true(state_digest(&x->s) == state_digest(&other));

	state_batch_init(&b);
	put(&b, "a", "changed");
	assert_int_equal(apply_batch(x, &b), 0);
	assert_true(state_digest(&x->s) != state_digest(&other));
	state_close(&other);
}

/* The table must survive growth (rehash) with every key still found. */
static void table_grows_past_initial_buckets(void **ctx)
{
	struct fixture *x = *ctx;
	struct state_batch b;
	char k[32], v[32], buf[64];
	int i;

	state_batch_init(&b);
	for (i = 0; i < 10000; i++) {
		snprintf(k, sizeof k, "key-%d", i);
		snprintf(v, sizeof v, "val-%d", i);
		put(&b, k, v);
	}
	assert_int_equal(apply_batch(x, &b), 0);
	assert_int_equal(x->s.count, 10000);
	for (i = 0; i < 10000; i += 997) {
		snprintf(k, sizeof k, "key-%d", i);
		snprintf(v, sizeof v, "val-%d", i);
		assert_string_equal(get(x, k, buf, sizeof buf), v);
	}
}

static void snapshot_restore_rebuilds_state_exactly(void **ctx)
{
	struct fixture *x = *ctx;
	struct state copy;
	struct fsm cf;
	struct state_batch b;
	struct raft_buffer one;
	unsigned i;
	char k[32], v[32], buf[64];

	state_batch_init(&b);
	for (i = 0; i < 3000; i++) {
		snprintf(k, sizeof k, "uuid-%u", i);
		snprintf(v, sizeof v, "target-%u", i * 7);
		put(&b, k, v);
	}
	state_batch_cursor(&b, "\x01\x02cookie", 8);
	assert_int_equal(apply_batch(x, &b), 0);

	fsm_snapshot_now(&x->f, &one);

	state_init(&copy);
	fsm_init(&cf, state_machine(&copy));
	/* Some junk that the restore must replace entirely. */
	state_batch_init(&b);
	put(&b, "stale", "x");
	{
		struct raft_buffer jb;
		void *r;
		assert_int_equal(state_batch_encode(&b, &jb), 0);
		assert_int_equal(cf.raft.apply(&cf.raft, &jb, &r), 0);
		raft_free(jb.base);
	}
	state_batch_close(&b);
	assert_int_equal(cf.raft.restore(&cf.raft, &one), 0); /* takes one.base */

	assert_int_equal(copy.count, 3000);
	assert_true(state_digest(&copy) == state_digest(&x->s));
	assert_int_equal(copy.cursor_len, 8);
	assert_memory_equal(copy.cursor, "\x01\x02cookie", 8);
	assert_false(state_get(&copy, "stale", 5, &(const void *){NULL}, &(size_t){0}));
	for (i = 0; i < 3000; i += 101) {
		const void *val;
		size_t len;
		snprintf(k, sizeof k, "uuid-%u", i);
		snprintf(v, sizeof v, "target-%u", i * 7);
		assert_true(state_get(&copy, k, strlen(k), &val, &len));
		snprintf(buf, sizeof buf, "%.*s", (int)len, (const char *)val);
		assert_string_equal(buf, v);
	}
	state_close(&copy);
}

struct encode_job {
	struct fixture *x;
	struct raft_buffer *bufs;
	unsigned n;
	int rv;
};

static void *encode_thread(void *arg)
{
	struct encode_job *j = arg;

	j->rv = j->x->f.raft.snapshot_async(&j->x->f.raft, &j->bufs, &j->n);
	return NULL;
}

/* libraft takes a snapshot in three steps (raft_fsm version 3): freeze on
 * the loop, encode on a worker while the loop applies more entries, then
 * finalize. The snapshot must be the state at the freeze, and the applies
 * must not free what the worker reads (ASan: a replaced or deleted slot
 * stays until the thaw) -- replaces, deletes, a new cursor and a table that
 * grows its buckets meanwhile. */
static void a_snapshot_is_the_state_at_its_freeze_while_entries_apply(void **ctx)
{
	struct fixture *x = *ctx;
	struct state copy;
	struct fsm cf;
	struct state_batch b;
	struct raft_buffer one, *joined;
	struct encode_job job = {.x = x};
	pthread_t th;
	uint64_t at_freeze;
	unsigned i;
	char k[32], v[48];

	assert_int_equal(x->f.raft.version, 3);
	state_batch_init(&b);
	for (i = 0; i < 3000; i++) {
		snprintf(k, sizeof k, "uuid-%u", i);
		snprintf(v, sizeof v, "target-%u", i);
		put(&b, k, v);
	}
	state_batch_cursor(&b, "cursor-1", 8);
	assert_int_equal(apply_batch(x, &b), 0);
	at_freeze = state_digest(&x->s);

	assert_int_equal(x->f.raft.snapshot(&x->f.raft, &job.bufs, &job.n), 0);
	/* half the rounds before the worker starts (so that it surely reads a
	 * table changed since the freeze), half while it runs */
	for (unsigned round = 0; round < 20; round++) {
		if (round == 10)
			assert_int_equal(pthread_create(&th, NULL, encode_thread, &job), 0);
		state_batch_init(&b);
		for (i = round * 150; i < (round + 1) * 150; i++) {
			snprintf(k, sizeof k, "uuid-%u", i);
			if (i % 3 == 0) {
				state_batch_del(&b, k, strlen(k));
			} else {
				snprintf(v, sizeof v, "changed-%u-%u", i, round);
				put(&b, k, v);
			}
			snprintf(k, sizeof k, "new-%u", i);
			put(&b, k, "fresh");
		}
		state_batch_cursor(&b, "cursor-2", 8);
		assert_int_equal(apply_batch(x, &b), 0);
	}
	assert_int_equal(pthread_join(th, NULL), 0);
	assert_int_equal(job.rv, 0);
	assert_true(state_digest(&x->s) != at_freeze);

	/* what libraft writes: the buffers in turn (copied: finalize frees them) */
	joined = raft_calloc(job.n, sizeof *joined);
	for (i = 0; i < job.n; i++) {
		joined[i].len = job.bufs[i].len;
		joined[i].base = raft_malloc(job.bufs[i].len);
		memcpy(joined[i].base, job.bufs[i].base, job.bufs[i].len);
	}
	fsm_snapshot_join(joined, job.n, &one);
	assert_int_equal(x->f.raft.snapshot_finalize(&x->f.raft, &job.bufs, &job.n), 0);
	assert_false(x->s.frozen);
	assert_int_equal(x->s.n_graveyard, 0);

	state_init(&copy);
	fsm_init(&cf, state_machine(&copy));
	assert_int_equal(cf.raft.restore(&cf.raft, &one), 0);
	assert_true(state_digest(&copy) == at_freeze);
	assert_int_equal(copy.count, 3000);
	assert_memory_equal(copy.cursor, "cursor-1", 8);
	state_close(&copy);
}

/* A user's manager (its DN and the anchor set in the target) is part of its
 * record: it survives a snapshot on another node, and the digest agrees. A
 * record without a manager is written as before (no new fields). */
static void object_records_carry_the_manager_through_a_snapshot(void **ctx)
{
	struct fixture *x = *ctx;
	struct object_record w = {.type = OBJECT_USER, .target_id = "id-w", .hash = 7, .dn = "uid=w,dc=example",
				  .manager_dn = "uid=boss,dc=example", .manager = "anchor-boss"};
	struct object_record plain = {.type = OBJECT_USER, .target_id = "id-p", .hash = 8, .dn = "uid=p,dc=example"};
	struct retry_record rr = {.kind = RETRY_UPSERT, .type = OBJECT_USER, .dn = "uid=w,dc=example",
				  .manager_dn = "uid=boss,dc=example", .error = "manager: 503"};
	struct object_record got;
	struct retry_record rgot;
	struct state copy;
	struct fsm cf;
	struct state_batch b;
	struct raft_buffer one;
	char *val, err[128];
	const void *v;
	size_t vlen;

	state_batch_init(&b);
	assert_int_equal(object_record_encode(&w, &val, &vlen), 0);
	state_batch_put(&b, "o:w", 3, val, vlen);
	free(val);
	assert_int_equal(object_record_encode(&plain, &val, &vlen), 0);
	assert_null(strstr(val, "\"md\""));
	assert_null(strstr(val, "\"ma\""));
	state_batch_put(&b, "o:p", 3, val, vlen);
	free(val);
	assert_int_equal(retry_record_encode(&rr, &val, &vlen), 0);
	state_batch_put(&b, "r:w", 3, val, vlen);
	free(val);
	assert_int_equal(apply_batch(x, &b), 0);

	fsm_snapshot_now(&x->f, &one);
	state_init(&copy);
	fsm_init(&cf, state_machine(&copy));
	assert_int_equal(cf.raft.restore(&cf.raft, &one), 0);
	assert_true(state_digest(&copy) == state_digest(&x->s));

	assert_true(state_get(&copy, "o:w", 3, &v, &vlen));
	assert_int_equal(object_record_decode(v, vlen, &got, err, sizeof err), 0);
	assert_string_equal(got.manager_dn, "uid=boss,dc=example");
	assert_string_equal(got.manager, "anchor-boss");
	object_record_free(&got);
	assert_true(state_get(&copy, "o:p", 3, &v, &vlen));
	assert_int_equal(object_record_decode(v, vlen, &got, err, sizeof err), 0);
	assert_null(got.manager_dn);
	assert_null(got.manager);
	object_record_free(&got);
	assert_true(state_get(&copy, "r:w", 3, &v, &vlen));
	if (retry_record_decode(v, vlen, &rgot, err, sizeof err) != 0)
		fail_msg("%s: %.*s", err, (int)vlen, (const char *)v);
	assert_string_equal(rgot.manager_dn, "uid=boss,dc=example");
	retry_record_free(&rgot);
	state_close(&copy);
}

/* A newer canopy's entry must be refused, not misapplied (rolling upgrades). */
static void entry_of_unknown_version_is_refused(void **ctx)
{
	struct fixture *x = *ctx;
	struct raft_buffer buf;
	uint64_t before = state_digest(&x->s);

	assert_int_equal(fsm_encode(STATE_ENTRY_BATCH, STATE_VERSION + 1, "\x02\x01\x00k\x00\x00\x00\x00", 8, &buf), 0);
	assert_int_equal(apply_buf(x, &buf), RAFT_MALFORMED);
	assert_int_equal(x->f.stats.refused, 1);
	assert_non_null(strstr(x->f.stats.last_error, "version"));
	assert_true(state_digest(&x->s) == before);
}

static void truncated_batch_is_refused_whole(void **ctx)
{
	struct fixture *x = *ctx;
	struct state_batch b;
	struct raft_buffer buf;

	state_batch_init(&b);
	put(&b, "good", "1");
	put(&b, "cut", "2");
	/* Drop the last byte of the payload: the second op is truncated. */
	b.len -= 1;
	assert_int_equal(state_batch_encode(&b, &buf), 0);
	state_batch_close(&b);
	assert_int_equal(apply_buf(x, &buf), RAFT_MALFORMED);
	/* Nothing of the batch was applied, not even the first, valid op. */
	assert_int_equal(x->s.count, 0);
	assert_non_null(strstr(x->f.stats.last_error, "truncated"));
}

static void foreign_bytes_are_refused(void **ctx)
{
	struct fixture *x = *ctx;
	struct raft_buffer buf;

	buf.len = 24;
	buf.base = raft_calloc(1, buf.len);
	memcpy(buf.base, "JUNKJUNK", 8);
	assert_int_equal(apply_buf(x, &buf), RAFT_MALFORMED);
	assert_non_null(strstr(x->f.stats.last_error, "magic"));
}

static void corrupt_snapshot_leaves_state_intact(void **ctx)
{
	struct fixture *x = *ctx;
	struct state_batch b;
	struct raft_buffer buf;
	uint64_t before;
	char payload[] = "\x00\x00\x00\x00\x05\x00\x00\x00\x00\x00\x00\x00"; /* claims 5 objects, has none */

	state_batch_init(&b);
	put(&b, "keep", "me");
	assert_int_equal(apply_batch(x, &b), 0);
	before = state_digest(&x->s);
	assert_int_equal(fsm_encode(0, STATE_VERSION, payload, 12, &buf), 0);
	assert_int_equal(x->f.raft.restore(&x->f.raft, &buf), RAFT_MALFORMED);
	raft_free(buf.base); /* on failure the buffer stays libraft's (here: ours) */
	assert_true(state_digest(&x->s) == before);
	assert_int_equal(x->s.count, 1);
}

/* libraft 0.15 checksums an entry over its padded length: the buffer must
 * carry its own zero padding (see fsm_encode), or restarts lose entries. */
static void entries_carry_their_own_zero_padding(void **ctx)
{
	struct raft_buffer buf;
	size_t len;
	(void)ctx;
	for (len = 0; len < 20; len++) {
		char payload[20];
		size_t i;
		memset(payload, 'x', sizeof payload);
		assert_int_equal(fsm_encode(STATE_ENTRY_BATCH, STATE_VERSION, payload, len, &buf), 0);
		assert_int_equal(buf.len % 8, 0);
		assert_true(buf.len >= FSM_HEADER_SIZE + len);
		for (i = FSM_HEADER_SIZE + len; i < buf.len; i++)
			assert_int_equal(((unsigned char *)buf.base)[i], 0);
		raft_free(buf.base);
	}
}

/* An object record without a target id or DN (packed as null) decodes. */
static void object_record_without_id_or_dn_decodes(void **state)
{
	struct object_record r = {.type = OBJECT_USER, .hash = 9}, out;
	char *buf, err[128];
	size_t len;

	(void)state;
	assert_int_equal(object_record_encode(&r, &buf, &len), 0);
	assert_non_null(strstr(buf, "\"id\":null"));
	assert_int_equal(object_record_decode(buf, len, &out, err, sizeof err), 0);
	assert_null(out.target_id);
	assert_null(out.dn);
	assert_int_equal(out.hash, 9);
	object_record_free(&out);
	free(buf);
}

/* The target id read without decoding the whole record (the member phase's
 * lookup) is the decoded one: plain ids by the fast path, escaped or
 * non-ASCII ids, records without an id and other key orders by the full
 * decode; what is not a record is refused. */
static void the_target_id_is_read_without_decoding_the_record(void **state)
{
	static const char *ids[] = {"2819c223-7f76-453a-919d-413861904646", "", "a\"b", "x\\y",
				    "caf\xc3\xa9", "tab\there"};
	char *members[] = {"m1", "m2", NULL};
	struct object_record r = {.type = OBJECT_GROUP, .hash = 7, .dn = "cn=g", .members = members,
				  .n_members = 2};
	char *buf, *id;
	size_t len;

	(void)state;
	for (size_t i = 0; i < sizeof ids / sizeof *ids; i++) {
		for (int t = 0; t < 2; t++) {
			r.type = t ? OBJECT_GROUP : OBJECT_USER;
			r.target_id = (char *)ids[i];
			assert_int_equal(object_record_encode(&r, &buf, &len), 0);
			assert_int_equal(object_record_target_id(buf, len, &id), 1);
			assert_string_equal(id, ids[i]);
			free(id);
			free(buf);
		}
	}
	r.target_id = NULL; /* "id":null */
	assert_int_equal(object_record_encode(&r, &buf, &len), 0);
	assert_int_equal(object_record_target_id(buf, len, &id), 0);
	assert_null(id);
	free(buf);
	/* the same record, keys in another order: read by the full decode */
	static const char other[] = "{\"h\":\"7\",\"id\":\"z9\",\"t\":\"user\",\"v\":1}";
	assert_int_equal(object_record_target_id(other, sizeof other - 1, &id), 1);
	assert_string_equal(id, "z9");
	free(id);
	/* not a record, or cut before the id's closing quote */
	static const char cut[] = "{\"v\":1,\"t\":\"user\",\"id\":\"abc";
	assert_int_equal(object_record_target_id(cut, sizeof cut - 1, &id), -EPROTO);
	assert_int_equal(object_record_target_id("[1]", 3, &id), -EPROTO);
	assert_null(id);
}

/* A group whose members are in doubt says so ("mu"), and only then: other
 * records stay byte for byte what an older canopy wrote and reads. */
static void group_members_in_doubt_round_trip(void **state)
{
	struct object_record r = {.type = OBJECT_GROUP, .target_id = "g", .hash = 1, .members_in_doubt = true}, out;
	char *buf, err[128];
	size_t len;

	(void)state;
	assert_int_equal(object_record_encode(&r, &buf, &len), 0);
	assert_non_null(strstr(buf, "\"mu\":true"));
	assert_int_equal(object_record_decode(buf, len, &out, err, sizeof err), 0);
	assert_true(out.members_in_doubt);
	object_record_free(&out);
	free(buf);
	r.members_in_doubt = false;
	assert_int_equal(object_record_encode(&r, &buf, &len), 0);
	assert_null(strstr(buf, "mu"));
	assert_int_equal(object_record_decode(buf, len, &out, err, sizeof err), 0);
	assert_false(out.members_in_doubt);
	object_record_free(&out);
	free(buf);
}

/* A retry record written without a DN or an error text (both packed as null)
 * decodes: before, it did not, so its change was never retried. */
static void retry_record_without_dn_or_error_decodes(void **state)
{
	struct retry_record r = {.kind = RETRY_DELETE, .type = OBJECT_USER, .attempts = 2, .next_at_ms = 5}, out;
	char *buf, err[128];
	size_t len;

	(void)state;
	assert_int_equal(retry_record_encode(&r, &buf, &len), 0);
	assert_non_null(strstr(buf, "\"err\":null"));
	assert_int_equal(retry_record_decode(buf, len, &out, err, sizeof err), 0);
	assert_int_equal(out.kind, RETRY_DELETE);
	assert_null(out.dn);
	assert_null(out.error);
	assert_int_equal(out.attempts, 2);
	assert_int_equal(out.next_at_ms, 5);
	retry_record_free(&out);
	free(buf);
	/* a DN or an error of another JSON type is refused, not taken */
	assert_int_not_equal(retry_record_decode("{\"v\":1,\"k\":\"delete\",\"t\":\"user\",\"h\":\"0\",\"err\":5}", 47,
					     &out, err, sizeof err), 0);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(batch_sets_cursor_and_objects_together, setup, teardown),
		cmocka_unit_test_setup_teardown(put_replaces_and_delete_removes, setup, teardown),
		cmocka_unit_test_setup_teardown(digest_depends_on_content_not_order, setup, teardown),
		cmocka_unit_test_setup_teardown(table_grows_past_initial_buckets, setup, teardown),
		cmocka_unit_test_setup_teardown(snapshot_restore_rebuilds_state_exactly, setup, teardown),
		cmocka_unit_test_setup_teardown(a_snapshot_is_the_state_at_its_freeze_while_entries_apply, setup,
						teardown),
		cmocka_unit_test_setup_teardown(object_records_carry_the_manager_through_a_snapshot, setup, teardown),
		cmocka_unit_test_setup_teardown(entry_of_unknown_version_is_refused, setup, teardown),
		cmocka_unit_test_setup_teardown(truncated_batch_is_refused_whole, setup, teardown),
		cmocka_unit_test_setup_teardown(foreign_bytes_are_refused, setup, teardown),
		cmocka_unit_test_setup_teardown(corrupt_snapshot_leaves_state_intact, setup, teardown),
		cmocka_unit_test(entries_carry_their_own_zero_padding),
		cmocka_unit_test(retry_record_without_dn_or_error_decodes),
		cmocka_unit_test(object_record_without_id_or_dn_decodes),
		cmocka_unit_test(the_target_id_is_read_without_decoding_the_record),
		cmocka_unit_test(group_members_in_doubt_round_trip),
	};
	return cmocka_run_group_tests_name("state", tests, NULL, NULL);
}
