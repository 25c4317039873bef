/*
 * bench/fill_fsm.c -- the object table at 10k, 100k or 1M objects: memory,
 * snapshot and restart figures, without a directory or a SCIM server.
 *
 *   fill_fsm [--objects N] [--batch B] [--group-every K] [--members M]
 *            [--threshold E] [--trailing E] [--log-mib M] [--format F]
 *            [--dir DIR] [--check]
 *
 * Phase 1 (this process): a one-voter canopy cluster (raft/node.h: raft_uv
 * in DIR, the same node code as canopy-agent) proposes N objects through
 * node_apply() the way the sync engine writes them (sync/engine/commit.c):
 * per batch of B objects one intent entry ("i:" keys), then one commit entry
 * (the "o:" records, the intents removed, the cursor). Every entry goes
 * through libraft and raft/fsm.c into sync/state -- the apply path a
 * follower runs. The records are real object_record_encode() output of
 * realistic size: a 36-byte UUID anchor and target id, a DN of about 60
 * bytes, the content hash; one object in K is a group of M member anchors.
 * Then a snapshot is forced (threshold 1 for one more entry) and the node
 * closed.
 * Phase 2 (a fresh process, this binary re-executed with --restart): the
 * node restarts from DIR: libraft loads the snapshot and the trailing
 * entries, sync/state restores the table; it becomes leader again and
 * applies what followed the snapshot. With --check it then compares every
 * object with what phase 1 wrote (the generator is deterministic) and the
 * table's digest with phase 1's, and phase 1 checks that libraft's
 * in-memory log stayed within M MiB (raft/node.h, snapshot_log_bytes; half
 * again for the averaging); a difference exits 1.
 *
 * One JSON object on stdout: RSS after the fill and after the restart
 * (VmRSS, VmHWM), bytes of RSS per object, the snapshot's encode time and
 * size, the time to write it and close, the restart times, the data dir's
 * allocated bytes. Figures only: nothing here asserts speed or RSS
 * (bench/README.md); bench/run.sh prints them as rows.
 *
 * Entries are written in format F (1 or 2, sync/state/format.h; default the
 * newest, as a cluster of current members writes them).
 * Defaults: N 100000, B 256 (DEFAULT_BATCH_MAX of the engine), K 100, M 50,
 * threshold, trailing and M as canopy-agent's (cluster.snapshot_threshold,
 * _trailing and _log_mib: 1024 and 2048 entries, 32 MiB), DIR a fresh directory under $TMPDIR
 * (removed at exit unless given).
 */
#define _XOPEN_SOURCE 700 /* nftw */
#define _DEFAULT_SOURCE
#include "common/xalloc.h"
#include "raft/node.h"
#include "raft/peek.h"
#include "sync/hash.h"
#include "sync/state/object.h"
#include "sync/state/state.h"

#include <dirent.h>
#include <errno.h>
#include <ftw.h>
#include <stddef.h>
#include <inttypes.h>
#include <malloc.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#define IN_FLIGHT 4 /* entries proposed and not yet applied */

struct opts {
	uint64_t objects;
	unsigned batch, group_every, members, threshold, trailing, format, log_mib;
	const char *dir;
	bool check, restart, keep;
	uint64_t expect_digest;
	unsigned port;
};

enum phase { P_WAIT_LEADER, P_FILL, P_DRAIN, P_SNAPSHOT, P_CLOSING, P_DONE };

struct run {
	struct opts o;
	uv_loop_t loop;
	struct node node;
	struct state state;
	struct fsm_machine machine; /* state's, with the snapshot and restore timed */
	uv_timer_t tick;
	enum phase phase;
	uint64_t next;          /* next object to propose */
	unsigned in_flight;
	bool intent_sent;       /* the current batch's intent entry is proposed */
	int failed;
	double t0, t_leader, t_filled, t_snap_start, t_snap_done, t_closed;
	size_t log_entries, log_bytes; /* libraft's in-memory log after the fill */
	double snapshot_ms, restore_ms;
	double freeze_ms; /* the loop's share of the latest snapshot (the encode runs on a worker) */
	uint64_t snapshot_bytes, fill_rss_kb, fill_heap_bytes;
	unsigned snapshots, restores;
};

static double now_ms(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec * 1e3 + ts.tv_nsec / 1e6;
}

/* CPU time of this process so far: on a shared machine a steadier figure
 * than wall time. */
static double cpu_ms(void)
{
	struct rusage ru;
	getrusage(RUSAGE_SELF, &ru);
	return ru.ru_utime.tv_sec * 1e3 + ru.ru_utime.tv_usec / 1e3 + ru.ru_stime.tv_sec * 1e3 +
	       ru.ru_stime.tv_usec / 1e3;
}

static uint64_t vm_kb(const char *field)
{
	char line[256];
	size_t n = strlen(field);
	uint64_t v = 0;
	FILE *f = fopen("/proc/self/status", "r");
	if (f == NULL)
		return 0;
	while (fgets(line, sizeof line, f))
		if (strncmp(line, field, n) == 0 && line[n] == ':') {
			v = strtoull(line + n + 1, NULL, 10);
			break;
		}
	fclose(f);
	return v;
}

/* ---- the deterministic generator ---------------------------------------- */

static void uuid(uint64_t i, uint64_t salt, char out[37])
{
	uint64_t a = hash_bytes(HASH_SEED ^ salt, &i, sizeof i), b = hash_bytes(a, &salt, sizeof salt);
	snprintf(out, 37, "%08" PRIx32 "-%04" PRIx32 "-4%03" PRIx32 "-%04" PRIx32 "-%012" PRIx64,
		 (uint32_t)(a >> 32), (uint32_t)(a >> 16) & 0xffff, (uint32_t)a & 0xfff,
		 (uint32_t)(0x8000 | ((b >> 48) & 0x3fff)), (uint64_t)(b & 0xffffffffffffULL));
}

static bool is_group(const struct opts *o, uint64_t i)
{
	return o->group_every && i % o->group_every == o->group_every - 1;
}

/* Object i: its "o:" key and encoded record (malloc'd). */
static void object(const struct opts *o, uint64_t i, char key[64], size_t *klen, char **val,
		   size_t *vlen)
{
	struct object_record r = {0};
	char anchor[37], id[37], dn[128], *members[256];
	char member_buf[256][37];
	unsigned m, nm = 0;

	uuid(i, 1, anchor);
	uuid(i, 2, id);
	*klen = object_key(OBJECT_KEY_OBJECT, anchor, key, 64);
	r.target_id = id;
	r.hash = hash_bytes(HASH_SEED, anchor, 36);
	if (is_group(o, i)) {
		r.type = OBJECT_GROUP;
		snprintf(dn, sizeof dn, "cn=group%07" PRIu64 ",ou=groups,ou=emea,dc=corp,dc=example,dc=com", i);
		nm = o->members < 256 ? o->members : 256;
		for (m = 0; m < nm; m++) {
			/* members among the users before it */
			uint64_t u = i > nm ? (i * 7919 + m * 104729) % i : m;
			uuid(u, 1, member_buf[m]);
			members[m] = member_buf[m];
		}
		r.members = members;
		r.n_members = nm;
	} else {
		r.type = OBJECT_USER;
		snprintf(dn, sizeof dn, "uid=user%07" PRIu64 ",ou=people,ou=emea,dc=corp,dc=example,dc=com", i);
	}
	r.dn = dn;
	object_record_encode(&r, val, vlen);
}

/* ---- phase 1: fill ------------------------------------------------------- */

static int pass_apply(void *data, uint16_t type, uint16_t version, const void *payload, size_t len,
		      void **result, char *errmsg, size_t errlen)
{
	struct run *r = data;
	return r->state.machine.apply(&r->state, type, version, payload, len, result, errmsg, errlen);
}

static void timed_snapshot(void *data, void **buf, size_t *len)
{
	struct run *r = data;
	double t = now_ms();
	r->state.machine.snapshot(&r->state, buf, len);
	r->snapshot_ms = now_ms() - t;
	r->snapshot_bytes = *len;
	r->snapshots++;
}

/* The snapshot off the loop (raft/fsm.h): the freeze on the loop, the
 * encode on a libuv worker (its time read by the loop only after the work
 * completed), the thaw on the loop. */
static void timed_freeze(void *data, size_t *len)
{
	struct run *r = data;
	double t = now_ms();
	r->state.machine.freeze(&r->state, len);
	r->freeze_ms = now_ms() - t;
	r->snapshot_bytes = *len;
	r->snapshots++;
}

static void timed_encode(void *data, void *buf, size_t len)
{
	struct run *r = data;
	double t = now_ms();
	r->state.machine.encode(&r->state, buf, len);
	r->snapshot_ms = now_ms() - t;
}

static void pass_thaw(void *data)
{
	struct run *r = data;
	r->state.machine.thaw(&r->state);
}

static int timed_restore(void *data, uint16_t version, const void *payload, size_t len, char *errmsg,
			 size_t errlen)
{
	struct run *r = data;
	double t = now_ms();
	int rv = r->state.machine.restore(&r->state, version, payload, len, errmsg, errlen);
	r->restore_ms = now_ms() - t;
	r->restores += rv == 0;
	return rv;
}

static void applied(void *arg, int status)
{
	struct run *r = arg;
	r->in_flight--;
	if (status != 0 && !r->failed) {
		fprintf(stderr, "fill_fsm: an entry failed: %s\n", raft_strerror(status));
		r->failed = 1;
	}
}

static void propose(struct run *r, struct state_batch *b)
{
	struct raft_buffer buf;
	int rv = state_batch_encode_version(b, (uint16_t)r->o.format, &buf);

	if (rv == 0 && (rv = node_apply(&r->node, &buf, applied, r)) != 0)
		raft_free(buf.base);
	if (rv != 0) {
		fprintf(stderr, "fill_fsm: cannot propose: %d\n", rv);
		r->failed = 1;
		return;
	}
	r->in_flight++;
}

/* One entry: the intents of the next batch, or its commit. */
static void propose_next(struct run *r)
{
	struct state_batch b;
	uint64_t i, end = r->next + r->o.batch;
	char key[64], cursor[64];
	size_t klen, vlen;
	char *val;

	if (end > r->o.objects)
		end = r->o.objects;
	state_batch_init(&b);
	if (!r->intent_sent) {
		for (i = r->next; i < end; i++) {
			char anchor[37];
			uuid(i, 1, anchor);
			klen = object_key(OBJECT_KEY_INTENT, anchor, key, sizeof key);
			state_batch_put(&b, key, klen, "7", 1);
		}
		r->intent_sent = true;
	} else {
		for (i = r->next; i < end; i++) {
			object(&r->o, i, key, &klen, &val, &vlen);
			state_batch_put(&b, key, klen, val, vlen);
			free(val);
			key[0] = OBJECT_KEY_INTENT;
			state_batch_del(&b, key, klen);
		}
		klen = (size_t)snprintf(cursor, sizeof cursor, "rid=001,csn=20261130000000.%06" PRIu64 "Z#000000#000#000000", end);
		state_batch_cursor(&b, cursor, klen);
		r->next = end;
		r->intent_sent = false;
	}
	propose(r, &b);
	state_batch_close(&b);
}

static void closed(struct node *n)
{
	struct run *r = (struct run *)(void *)((char *)n - offsetof(struct run, node));
	r->t_closed = now_ms();
	r->phase = P_DONE;
	uv_close((uv_handle_t *)&r->tick, NULL);
}

static void fill_tick(uv_timer_t *t)
{
	struct run *r = t->data;
	struct state_batch b;

	if (r->failed && r->phase < P_CLOSING) {
		r->phase = P_CLOSING;
		node_close(&r->node, closed);
		return;
	}
	switch (r->phase) {
	case P_WAIT_LEADER:
		if (!node_leader_ready(&r->node))
			return;
		r->t_leader = now_ms();
		r->phase = P_FILL;
		/* fall through */
	case P_FILL:
		while (r->in_flight < IN_FLIGHT && r->next < r->o.objects && !r->failed)
			propose_next(r);
		if (r->next >= r->o.objects)
			r->phase = P_DRAIN;
		return;
	case P_DRAIN:
		/* a snapshot libraft took during the fill may still be being
		 * written: its buffers are not the table's */
		if (r->in_flight || peek_snapshot_pending(&r->node.raft))
			return;
		r->t_filled = now_ms();
		r->fill_rss_kb = vm_kb("VmRSS"); /* before the snapshot's buffers */
		{
			/* what malloc hands out (glibc): RSS above it is freed
			 * memory the heap holds on to */
			struct mallinfo2 mi = mallinfo2();
			r->fill_heap_bytes = mi.uordblks + mi.hblkhd;
		}
		peek_log_cache(&r->node.raft, &r->log_entries, &r->log_bytes);
		/* libraft 0.15 snapshots after an apply once threshold entries
		 * followed the last snapshot (replication.c, takeSnapshot):
		 * threshold 1 and one more entry take one now. */
		raft_set_snapshot_threshold(&r->node.raft, 1);
		r->snapshots = 0;
		r->t_snap_start = now_ms();
		state_batch_init(&b);
		state_batch_cursor(&b, "end", 3);
		propose(r, &b);
		state_batch_close(&b);
		r->phase = P_SNAPSHOT;
		return;
	case P_SNAPSHOT:
		if (r->in_flight || r->snapshots == 0 || peek_snapshot_pending(&r->node.raft) ||
		    peek_snapshot_index(&r->node.raft) == 0)
			return;
		r->t_snap_done = now_ms();
		/* raft_close waits for the snapshot being written (uv_snapshot.c) */
		r->phase = P_CLOSING;
		node_close(&r->node, closed);
		return;
	default:
		return;
	}
}

static int start_node(struct run *r, char *errmsg, size_t errlen)
{
	char addr[64];
	struct node_member self;
	struct node_config cfg = {0};

	snprintf(addr, sizeof addr, "127.0.0.1:%u", r->o.port);
	self.id = 1;
	self.address = addr;
	cfg.id = 1;
	cfg.address = addr;
	cfg.data_dir = r->o.dir;
	cfg.members = &self;
	cfg.n_members = 1;
	cfg.election_timeout_ms = 200;
	cfg.heartbeat_ms = 20;
	cfg.snapshot_threshold = r->o.threshold;
	cfg.snapshot_trailing = r->o.trailing;
	cfg.snapshot_log_bytes = (size_t)r->o.log_mib << 20;
	r->machine = *state_machine(&r->state);
	r->machine.data = r;
	r->machine.apply = pass_apply;
	r->machine.snapshot = timed_snapshot;
	r->machine.restore = timed_restore;
	r->machine.freeze = timed_freeze;
	r->machine.encode = timed_encode;
	r->machine.thaw = pass_thaw;
	r->node.data = r;
	return node_start(&r->node, &r->loop, &cfg, &r->machine, errmsg, errlen);
}

static uint64_t dir_bytes;
static int add_blocks(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
	(void)path, (void)ftw;
	if (flag == FTW_F)
		dir_bytes += (uint64_t)st->st_blocks * 512;
	return 0;
}

static int rm_one(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
	(void)st, (void)flag, (void)ftw;
	return remove(path);
}

static unsigned free_port(void)
{
	struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
	socklen_t len = sizeof a;
	int fd = socket(AF_INET, SOCK_STREAM, 0);
	unsigned port = 0;
	if (fd >= 0 && bind(fd, (struct sockaddr *)&a, sizeof a) == 0 &&
	    getsockname(fd, (struct sockaddr *)&a, &len) == 0)
		port = ntohs(a.sin_port);
	if (fd >= 0)
		close(fd);
	return port;
}

/* ---- phase 2: restart ------------------------------------------------------ */

static void restart_tick(uv_timer_t *t)
{
	struct run *r = t->data;
	if (r->phase == P_WAIT_LEADER && node_leader_ready(&r->node)) {
		r->t_leader = now_ms();
		r->phase = P_CLOSING;
		uv_stop(&r->loop);
	}
}

/* Every object phase 1 wrote, byte for byte; returns the differences. */
static uint64_t check_objects(struct run *r)
{
	uint64_t i, bad = 0;
	char key[64];
	size_t klen, vlen, glen;
	char *val;
	const void *got;

	for (i = 0; i < r->o.objects; i++) {
		object(&r->o, i, key, &klen, &val, &vlen);
		if (!state_get(&r->state, key, klen, &got, &glen) || glen != vlen ||
		    memcmp(got, val, vlen) != 0) {
			if (bad < 5)
				fprintf(stderr, "fill_fsm: object %" PRIu64 " (%.*s) differs after the restart\n",
					i, (int)klen, key);
			bad++;
		}
		key[0] = OBJECT_KEY_INTENT;
		if (state_get(&r->state, key, klen, &got, &glen)) {
			if (bad < 5)
				fprintf(stderr, "fill_fsm: intent of object %" PRIu64 " survived\n", i);
			bad++;
		}
		free(val);
	}
	if (state_count(&r->state, STATE_NS_OBJECT) != r->o.objects) {
		fprintf(stderr, "fill_fsm: %" PRIu64 " objects after the restart, %" PRIu64 " written\n",
			state_count(&r->state, STATE_NS_OBJECT), r->o.objects);
		bad++;
	}
	return bad;
}

static int restart(struct run *r)
{
	char err[512];
	double t0 = now_ms(), t_started, c_started;
	uint64_t bad = 0;
	int rv;

	if ((rv = start_node(r, err, sizeof err)) != 0) {
		fprintf(stderr, "fill_fsm: restart: %s\n", err);
		return 1;
	}
	t_started = now_ms();
	c_started = cpu_ms();
	uv_timer_init(&r->loop, &r->tick);
	r->tick.data = r;
	uv_timer_start(&r->tick, restart_tick, 1, 1);
	uv_run(&r->loop, UV_RUN_DEFAULT);
	if (r->o.check)
		bad = check_objects(r);
	if (r->o.check && r->restores != 1) {
		/* the objects would also be there from the log alone: the
		 * round trip is through the snapshot only if one was restored */
		fprintf(stderr, "fill_fsm: the restart restored %u snapshots, not 1\n", r->restores);
		bad++;
	}
	if (r->o.check && state_digest(&r->state) != r->o.expect_digest) {
		fprintf(stderr, "fill_fsm: digest %016" PRIx64 " after the restart, %016" PRIx64 " before\n",
			state_digest(&r->state), r->o.expect_digest);
		bad++;
	}
	printf("{\"restart_start_ms\":%.1f,\"restart_start_cpu_ms\":%.1f,\"restart_restore_ms\":%.1f,\"restart_ready_ms\":%.1f,"
	       "\"restart_rss_kb\":%" PRIu64 ",\"restart_hwm_kb\":%" PRIu64 ",\"restart_objects\":%" PRIu64
	       ",\"restart_digest\":\"%016" PRIx64 "\",\"check\":\"%s\"}\n",
	       t_started - t0, c_started, r->restore_ms, r->t_leader - t0, vm_kb("VmRSS"), vm_kb("VmHWM"),
	       state_count(&r->state, STATE_NS_OBJECT), state_digest(&r->state),
	       !r->o.check ? "skipped" : bad ? "FAILED" : "ok");
	fflush(stdout);
	uv_timer_stop(&r->tick);
	uv_close((uv_handle_t *)&r->tick, NULL);
	r->phase = P_CLOSING;
	node_close(&r->node, NULL);
	uv_run(&r->loop, UV_RUN_DEFAULT);
	return bad ? 1 : 0;
}

/* ---- main ---------------------------------------------------------------------- */

static void usage(void)
{
	fprintf(stderr, "usage: fill_fsm [--objects N] [--batch B] [--group-every K] [--members M]\n"
			"                [--threshold E] [--trailing E] [--log-mib M] [--format F]\n"
			"                [--dir DIR] [--check]\n");
	exit(2);
}

static uint64_t num(const char *s)
{
	char *end;
	unsigned long long v;
	if (s == NULL)
		usage();
	errno = 0;
	v = strtoull(s, &end, 10);
	if (errno || *end || end == s)
		usage();
	return v;
}

int main(int argc, char **argv)
{
	static struct run r; /* static: zeroed, and large */
	char tmpl[4096], err[512], child[512], exe[4096];
	uint64_t hwm, digest;
	bool log_over = false;
	int i, rv;
	FILE *p;
	ssize_t n;

	r.o = (struct opts){.objects = 100000, .batch = 256, .group_every = 100, .members = 50,
			    .threshold = 1024, .trailing = 2048, .format = STATE_VERSION,
			    .log_mib = 32};
	for (i = 1; i < argc; i++) {
		const char *a = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
		if (strcmp(a, "--objects") == 0)
			r.o.objects = num(v), i++;
		else if (strcmp(a, "--batch") == 0)
			r.o.batch = (unsigned)num(v), i++;
		else if (strcmp(a, "--group-every") == 0)
			r.o.group_every = (unsigned)num(v), i++;
		else if (strcmp(a, "--members") == 0)
			r.o.members = (unsigned)num(v), i++;
		else if (strcmp(a, "--threshold") == 0)
			r.o.threshold = (unsigned)num(v), i++;
		else if (strcmp(a, "--trailing") == 0)
			r.o.trailing = (unsigned)num(v), i++;
		else if (strcmp(a, "--dir") == 0 && v)
			r.o.dir = v, r.o.keep = true, i++;
		else if (strcmp(a, "--log-mib") == 0)
			r.o.log_mib = (unsigned)num(v), i++;
		else if (strcmp(a, "--format") == 0)
			r.o.format = (unsigned)num(v), i++;
		else if (strcmp(a, "--check") == 0)
			r.o.check = true;
		else if (strcmp(a, "--restart") == 0) /* phase 2, run by phase 1 */
			r.o.restart = true;
		else if (strcmp(a, "--port") == 0)
			r.o.port = (unsigned)num(v), i++;
		else if (strcmp(a, "--expect-digest") == 0 && v)
			r.o.expect_digest = strtoull(v, NULL, 16), i++;
		else
			usage();
	}
	if (r.o.batch == 0 || r.o.threshold == 0 || r.o.trailing == 0 || r.o.members > 256 || r.o.format < 1 ||
	    r.o.format > STATE_VERSION)
		usage();
	xalloc_setup(); /* as canopy-agent's main() */
	uv_loop_init(&r.loop);
	state_init(&r.state);
	if (r.o.restart)
		return restart(&r);

	if (r.o.dir == NULL) {
		snprintf(tmpl, sizeof tmpl, "%s/fill_fsm.XXXXXX", getenv("TMPDIR") ? getenv("TMPDIR") : "/tmp");
		if (mkdtemp(tmpl) == NULL) {
			perror("fill_fsm: mkdtemp");
			return 1;
		}
		r.o.dir = tmpl;
	}
	r.o.port = free_port();
	r.t0 = now_ms();
	if ((rv = start_node(&r, err, sizeof err)) != 0) {
		fprintf(stderr, "fill_fsm: %s\n", err);
		return 1;
	}
	uv_timer_init(&r.loop, &r.tick);
	r.tick.data = &r;
	uv_timer_start(&r.tick, fill_tick, 1, 1);
	uv_run(&r.loop, UV_RUN_DEFAULT);
	hwm = vm_kb("VmHWM");
	if (r.failed || r.phase != P_DONE) {
		if (!r.o.keep)
			nftw(r.o.dir, rm_one, 16, FTW_DEPTH | FTW_PHYS);
		return 1;
	}
	digest = state_digest(&r.state);
	if (r.o.check && r.o.log_mib && r.log_bytes > ((size_t)r.o.log_mib << 20) * 3 / 2) {
		fprintf(stderr, "fill_fsm: libraft kept %zu bytes of entries in memory (%zu entries), over the %u MiB budget\n",
			r.log_bytes, r.log_entries, r.o.log_mib);
		log_over = true;
	}

	dir_bytes = 0;
	nftw(r.o.dir, add_blocks, 16, FTW_PHYS);
	printf("{\"objects\":%" PRIu64 ",\"groups\":%" PRIu64 ",\"batch\":%u,\"snapshot_threshold\":%u,"
	       "\"snapshot_trailing\":%u,\"snapshot_log_mib\":%u,\"format\":%u,\"fill_ms\":%.1f,\"fill_rss_kb\":%" PRIu64
	       ",\"fill_heap_in_use_kb\":%" PRIu64 ",\"fill_hwm_kb\":%" PRIu64 ",\"rss_bytes_per_object\":%.1f,\"snapshot_encode_ms\":%.1f,"
	       "\"snapshot_freeze_ms\":%.1f,\"snapshot_bytes\":%" PRIu64 ",\"snapshot_taken_ms\":%.1f,\"close_ms\":%.1f,"
	       "\"log_cache_entries\":%zu,\"log_cache_bytes\":%zu,\"data_dir_bytes\":%" PRIu64
	       ",\"data_dir_bytes_per_object\":%.1f,\"digest\":\"%016" PRIx64 "\",",
	       r.o.objects, r.o.group_every ? r.o.objects / r.o.group_every : 0, r.o.batch, r.o.threshold,
	       r.o.trailing, r.o.log_mib, r.o.format, r.t_filled - r.t_leader, r.fill_rss_kb, r.fill_heap_bytes / 1024, hwm,
	       r.fill_rss_kb * 1024.0 / (double)(r.o.objects ? r.o.objects : 1), r.snapshot_ms,
	       r.freeze_ms, r.snapshot_bytes, r.t_snap_done - r.t_snap_start, r.t_closed - r.t_snap_done,
	       r.log_entries, r.log_bytes, dir_bytes,
	       dir_bytes / (double)(r.o.objects ? r.o.objects : 1), digest);
	fflush(stdout);
	state_close(&r.state);

	/* phase 2 in a fresh process: its RSS is the restart's alone */
	n = readlink("/proc/self/exe", exe, sizeof exe - 1);
	if (n <= 0) {
		perror("fill_fsm: /proc/self/exe");
		return 1;
	}
	exe[n] = '\0';
	snprintf(child, sizeof child, "--expect-digest %016" PRIx64, digest);
	{
		char cmd[8192];
		snprintf(cmd, sizeof cmd,
			 "'%s' --restart --dir '%s' --port %u --objects %" PRIu64
			 " --batch %u --group-every %u --members %u --threshold %u --trailing %u"
			 " --log-mib %u %s %s",
			 exe, r.o.dir, free_port(), r.o.objects, r.o.batch, r.o.group_every, r.o.members,
			 r.o.threshold, r.o.trailing, r.o.log_mib, r.o.check ? "--check" : "", child);
		p = popen(cmd, "r");
		rv = 1;
		if (p) {
			/* phase 2's fields complete phase 1's object */
			char line[4096];
			bool got = false;
			while (fgets(line, sizeof line, p))
				if (!got && line[0] == '{') {
					fputs(line + 1, stdout);
					got = true;
				}
			rv = pclose(p) == 0 && got ? 0 : 1;
			if (!got)
				printf("\"restart\":\"failed\"}\n");
		}
	}
	if (!r.o.keep)
		nftw(r.o.dir, rm_one, 16, FTW_DEPTH | FTW_PHYS);
	return rv || log_over ? 1 : 0;
}
