/*
 * tests/unit/test_recover.c -- raft/recover.h and raft/lock.h on real libraft
 * data dirs: a configuration decodes and refuses damage; a data dir
 * bootstrapped by libraft reads back its configuration; raft_recover writes
 * the new one after the last entry and a second read finds it, with the
 * node's current term (libraft's own is 1); an empty data
 * dir is refused; the data dir lock refuses a second holder, naming the pid,
 * and is free again once released.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <errno.h>

#include <cmocka.h>
#include <raft.h>
#include <raft/uv.h>
#include <uv.h>

#include "raft/lock.h"
#include "raft/recover.h"

static char *tmpdir(void)
{
	char tmpl[] = "/tmp/canopy-recover.XXXXXX";
	char *d = mkdtemp(tmpl);
	assert_non_null(d);
	return strdup(d);
}

static void rmdir_all(const char *dir)
{
	char cmd[600];
	snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
	assert_int_equal(system(cmd), 0);
}

static void conf3(struct raft_configuration *c)
{
	raft_configuration_init(c);
	assert_int_equal(raft_configuration_add(c, 1, "127.0.0.1:7001", RAFT_VOTER), 0);
	assert_int_equal(raft_configuration_add(c, 2, "127.0.0.1:7002", RAFT_VOTER), 0);
	assert_int_equal(raft_configuration_add(c, 3, "127.0.0.1:7003", RAFT_SPARE), 0);
}

static void on_closed(struct raft *r)
{
	(void)r;
}

/* A data dir as libraft's raft_bootstrap leaves it (node 1, three members). */
static void bootstrap(const char *dir)
{
	uv_loop_t loop;
	struct raft_uv_transport t;
	struct raft_io io;
	struct raft_fsm fsm;
	struct raft r;
	struct raft_configuration c;

	assert_int_equal(uv_loop_init(&loop), 0);
	assert_int_equal(raft_uv_tcp_init(&t, &loop), 0);
	memset(&io, 0, sizeof io);
	assert_int_equal(raft_uv_init(&io, &loop, dir, &t), 0);
	memset(&fsm, 0, sizeof fsm);
	assert_int_equal(raft_init(&r, &io, &fsm, 1, "127.0.0.1:7001"), 0);
	conf3(&c);
	assert_int_equal(raft_bootstrap(&r, &c), 0);
	raft_configuration_close(&c);
	raft_close(&r, on_closed);
	uv_run(&loop, UV_RUN_DEFAULT);
	raft_uv_close(&io);
	raft_uv_tcp_close(&t);
	uv_run(&loop, UV_RUN_DEFAULT);
	assert_int_equal(uv_loop_close(&loop), 0);
}

static void test_decode_round_trip_and_damage(void **state)
{
	struct raft_configuration c, d;
	struct raft_buffer buf;
	char why[256];
	unsigned char *p;

	(void)state;
	conf3(&c);
	assert_int_equal(raft_configuration_encode(&c, &buf), 0);
	assert_int_equal(recover_decode_configuration(buf.base, buf.len, &d, why, sizeof why), 0);
	assert_int_equal(d.n, 3);
	assert_int_equal(d.servers[2].id, 3);
	assert_string_equal(d.servers[2].address, "127.0.0.1:7003");
	assert_int_equal(d.servers[2].role, RAFT_SPARE);
	raft_configuration_close(&d);

	/* cut inside the last server */
	assert_int_equal(recover_decode_configuration(buf.base, 9 + 8 + 3, &d, why, sizeof why), -EBADMSG);
	assert_int_equal(d.n, 0);
	raft_configuration_close(&d);
	/* server 2 renamed server 1: a duplicate */
	p = buf.base;
	p[9 + 8 + strlen("127.0.0.1:7001") + 2] = 1;
	assert_int_equal(recover_decode_configuration(buf.base, buf.len, &d, why, sizeof why), -EBADMSG);
	assert_non_null(strstr(why, "twice"));
	raft_configuration_close(&d);
	/* an unknown format */
	p[0] = 2;
	assert_int_equal(recover_decode_configuration(buf.base, buf.len, &d, why, sizeof why), -EBADMSG);
	raft_configuration_close(&d);
	raft_free(buf.base);
	raft_configuration_close(&c);
}

static void test_read_recover_read(void **state)
{
	char *dir = tmpdir(), errmsg[512];
	struct recover_state st;
	struct raft_configuration one;

	(void)state;
	bootstrap(dir);
	assert_int_equal(recover_read(dir, &st, errmsg, sizeof errmsg), 0);
	assert_int_equal(st.conf_index, 1);
	assert_int_equal(st.conf.n, 3);
	assert_int_equal(st.storage.last_index, 1);
	recover_state_close(&st);

	raft_configuration_init(&one);
	assert_int_equal(raft_configuration_add(&one, 1, "127.0.0.1:7001", RAFT_VOTER), 0);
	assert_int_equal(recover_write(dir, 1, "127.0.0.1:7001", &one, errmsg, sizeof errmsg), 0);
	raft_configuration_close(&one);

	assert_int_equal(recover_read(dir, &st, errmsg, sizeof errmsg), 0);
	assert_int_equal(st.conf_index, 2); /* right after the last entry */
	assert_int_equal(st.storage.last_index, 2);
	assert_int_equal(st.conf.n, 1);
	assert_int_equal(st.conf.servers[0].id, 1);
	assert_int_equal(st.conf.servers[0].role, RAFT_VOTER);
	recover_state_close(&st);
	rmdir_all(dir);
	free(dir);
}

/* metadata1 as libraft writes it (src/uv_metadata.c: format, version, term,
 * voted_for; the higher version of the two files wins). */
static void set_term(const char *dir, uint64_t term)
{
	unsigned char buf[32];
	uint64_t v[4] = {1, 100, term, 1};
	char path[600];
	FILE *f;

	for (int i = 0; i < 4; i++)
		for (int b = 0; b < 8; b++)
			buf[8 * i + b] = (unsigned char)(v[i] >> (8 * b));
	snprintf(path, sizeof path, "%s/metadata1", dir);
	f = fopen(path, "wb");
	assert_non_null(f);
	assert_int_equal(fwrite(buf, 1, sizeof buf, f), sizeof buf);
	assert_int_equal(fclose(f), 0);
}

static void on_io_closed(struct raft_io *io)
{
	(void)io;
}

/* What libraft itself loads from dir: the current term and the last entry's. */
static void load_terms(const char *dir, raft_term *term, raft_term *last_term, raft_index *last)
{
	uv_loop_t loop;
	struct raft_uv_transport t;
	struct raft_io io;
	raft_id voted_for;
	struct raft_snapshot *snap = NULL;
	raft_index start;
	struct raft_entry *entries = NULL;
	size_t n = 0;

	assert_int_equal(uv_loop_init(&loop), 0);
	assert_int_equal(raft_uv_tcp_init(&t, &loop), 0);
	memset(&io, 0, sizeof io);
	assert_int_equal(raft_uv_init(&io, &loop, dir, &t), 0);
	assert_int_equal(io.init(&io, 1, "127.0.0.1:7001"), 0);
	assert_int_equal(io.load(&io, term, &voted_for, &snap, &start, &entries, &n), 0);
	assert_null(snap);
	assert_true(n > 0);
	*last_term = entries[n - 1].term;
	*last = start + n - 1;
	/* one batch per entry here: libraft frees a loaded batch by its first
	 * entry's batch pointer (src/entry.c: entryBatchesDestroy) */
	for (size_t i = 0; i < n; i++)
		if (entries[i].batch != NULL && (i == 0 || entries[i].batch != entries[i - 1].batch))
			raft_free(entries[i].batch);
	raft_free(entries);
	io.close(&io, on_io_closed);
	uv_run(&loop, UV_RUN_DEFAULT);
	raft_uv_close(&io);
	raft_uv_tcp_close(&t);
	uv_run(&loop, UV_RUN_DEFAULT);
	assert_int_equal(uv_loop_close(&loop), 0);
}

/*
 * raft_recover alone writes the new configuration with term 1 after entries
 * of higher terms; a snapshot at that index would then rank below older
 * ones. recover_write gives it the node's current term, and libraft loads
 * the rewritten file (its checksum holds).
 */
static void test_the_recovery_entry_has_the_current_term(void **state)
{
	char *dir = tmpdir(), errmsg[512];
	struct raft_configuration one;
	raft_term term, last_term;
	raft_index last;

	(void)state;
	bootstrap(dir);
	set_term(dir, 7);
	raft_configuration_init(&one);
	assert_int_equal(raft_configuration_add(&one, 1, "127.0.0.1:7001", RAFT_VOTER), 0);
	assert_int_equal(recover_write(dir, 1, "127.0.0.1:7001", &one, errmsg, sizeof errmsg), 0);
	raft_configuration_close(&one);
	load_terms(dir, &term, &last_term, &last);
	assert_int_equal(term, 7);
	assert_int_equal(last, 2);
	assert_int_equal(last_term, 7);
	assert_int_equal(storage_check(dir, errmsg, sizeof errmsg), 0);

	/* anything but one configuration entry is refused, unchanged */
	assert_int_equal(storage_restamp_entry(dir, 3, 7, errmsg, sizeof errmsg), -ENOENT);
	rmdir_all(dir);
	free(dir);
}

static void test_empty_data_dir_refused(void **state)
{
	char *dir = tmpdir(), errmsg[512];
	struct recover_state st;

	(void)state;
	assert_int_equal(recover_read(dir, &st, errmsg, sizeof errmsg), -ENOENT);
	assert_non_null(strstr(errmsg, "nothing to recover"));
	recover_state_close(&st);
	rmdir_all(dir);
	free(dir);
}

static void test_lock_one_holder(void **state)
{
	char *dir = tmpdir(), errmsg[512], pid[64];
	int a, b;

	(void)state;
	a = lock_acquire(dir, errmsg, sizeof errmsg);
	assert_true(a >= 0);
	/* a second open file description of the same file: as another process */
	b = lock_acquire(dir, errmsg, sizeof errmsg);
	assert_int_equal(b, -EBUSY);
	snprintf(pid, sizeof pid, "(pid %ld)", (long)getpid());
	assert_non_null(strstr(errmsg, pid));
	assert_non_null(strstr(errmsg, "stop it first"));
	lock_release(a);
	b = lock_acquire(dir, errmsg, sizeof errmsg);
	assert_true(b >= 0);
	lock_release(b);
	assert_int_equal(lock_check_owner(dir, errmsg, sizeof errmsg), 0);
	rmdir_all(dir);
	free(dir);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_decode_round_trip_and_damage),
		cmocka_unit_test(test_read_recover_read),
		cmocka_unit_test(test_the_recovery_entry_has_the_current_term),
		cmocka_unit_test(test_empty_data_dir_refused),
		cmocka_unit_test(test_lock_one_holder),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
