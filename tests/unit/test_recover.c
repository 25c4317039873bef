/*
 * tests/unit/test_recover.c -- raft/recover.h and raft/lock.h on real libraft
 * data dirs: a configuration decodes and refuses damage; a data dir
 * bootstrapped by libraft reads back its configuration; raft_recover writes
 * the new one after the last entry and a second read finds it; an empty data
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
		cmocka_unit_test(test_empty_data_dir_refused),
		cmocka_unit_test(test_lock_one_holder),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
