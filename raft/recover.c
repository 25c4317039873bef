/*
 * raft/recover.c -- a new configuration for a cluster that lost its majority.
 * See recover.h.
 */
#include "raft/recover.h"

#include "raft/wire_check.h"

#include <errno.h>
#include <raft/uv.h>
#include <stdio.h>
#include <string.h>
#include <uv.h>

const char *recover_role_name(int role)
{
	switch (role) {
	case RAFT_VOTER:
		return "voter";
	case RAFT_STANDBY:
		return "standby";
	case RAFT_SPARE:
		return "spare";
	}
	return "unknown";
}

static uint64_t get64(const unsigned char *p)
{
	uint64_t v = 0;
	int i;
	for (i = 7; i >= 0; i--)
		v = v << 8 | p[i];
	return v;
}

int recover_decode_configuration(const void *buf, size_t len, struct raft_configuration *out,
				 char *why, size_t whylen)
{
	const unsigned char *p = buf;
	uint64_t count, i;
	size_t off = 9;
	int rv;

	raft_configuration_init(out);
	/* Everything below relies on this: count, NULs and roles are checked. */
	if (wire_check_configuration(buf, len, why, whylen) != 0)
		return -EBADMSG;
	count = get64(p + 1);
	for (i = 0; i < count; i++) {
		uint64_t id = get64(p + off);
		const char *address = (const char *)p + off + 8;
		size_t alen = strlen(address);
		int role = p[off + 8 + alen + 1];
		rv = raft_configuration_add(out, id, address, role);
		if (rv != 0) {
			snprintf(why, whylen, "configuration server %llu: %s", (unsigned long long)id,
				 raft_strerror(rv));
			raft_configuration_close(out);
			raft_configuration_init(out);
			return -EBADMSG;
		}
		off += 8 + alen + 1 + 1;
	}
	return 0;
}

int recover_read(const char *data_dir, struct recover_state *st, char *errmsg, size_t errlen)
{
	struct storage_conf sc;
	char why[256];
	int rv;

	memset(st, 0, sizeof *st);
	raft_configuration_init(&st->conf);
	rv = storage_inspect(data_dir, &st->storage, errmsg, errlen);
	if (rv != 0)
		return rv;
	if (st->storage.empty || st->storage.last_index == 0) {
		snprintf(errmsg, errlen,
			 "data dir %s holds no raft log: there is nothing to recover (a new node "
			 "joins with `canopyctl cluster add`)",
			 data_dir);
		return -ENOENT;
	}
	rv = storage_last_configuration(data_dir, &sc, errmsg, errlen);
	if (rv != 0)
		return rv;
	if (sc.index != 0) {
		rv = recover_decode_configuration(sc.buf, sc.len, &st->conf, why, sizeof why);
		if (rv != 0) {
			snprintf(errmsg, errlen, "data dir %s: the configuration at index %llu: %s",
				 data_dir, (unsigned long long)sc.index, why);
			storage_conf_free(&sc);
			return rv;
		}
		st->conf_index = sc.index;
	}
	storage_conf_free(&sc);
	return 0;
}

void recover_state_close(struct recover_state *st)
{
	raft_configuration_close(&st->conf);
}

static void on_closed(struct raft *r)
{
	(void)r;
}

/*
 * The entry raft_recover wrote is the last one of the log; give it the
 * node's current term (metadata): no entry of a node's log has a term above
 * its current term (Raft dissertation §3.3), so the log's terms stay
 * non-decreasing, and a snapshot taken at that index is named with a term
 * no older snapshot exceeds (raft/recover.h says why that matters).
 */
static int restamp(const char *data_dir, char *errmsg, size_t errlen)
{
	struct storage_info info;
	int rv;

	rv = storage_inspect(data_dir, &info, errmsg, errlen);
	if (rv != 0)
		return rv;
	return storage_restamp_entry(data_dir, info.last_index, info.term ? info.term : 1, errmsg,
				     errlen);
}

int recover_write(const char *data_dir, uint64_t id, const char *address,
		  const struct raft_configuration *conf, char *errmsg, size_t errlen)
{
	uv_loop_t loop;
	struct raft_uv_transport transport;
	struct raft_io io;
	struct raft_fsm fsm;
	struct raft r;
	int rv;

	rv = uv_loop_init(&loop);
	if (rv != 0) {
		snprintf(errmsg, errlen, "event loop: %s", uv_strerror(rv));
		return -EIO;
	}
	/* raft_uv_init wants a transport; it is never started (raft_start is
	 * never called), so nothing listens or connects. */
	rv = raft_uv_tcp_init(&transport, &loop);
	if (rv != 0) {
		snprintf(errmsg, errlen, "raft transport: %s", raft_strerror(rv));
		goto err_after_loop;
	}
	memset(&io, 0, sizeof io);
	rv = raft_uv_init(&io, &loop, data_dir, &transport);
	if (rv != 0) {
		snprintf(errmsg, errlen, "raft storage in %s: %s", data_dir, io.errmsg);
		goto err_after_transport;
	}
	/* No entry is applied: libraft only needs an fsm to be given. */
	memset(&fsm, 0, sizeof fsm);
	rv = raft_init(&r, &io, &fsm, id, address);
	if (rv != 0) {
		snprintf(errmsg, errlen, "raft init in %s: %s", data_dir, raft_errmsg(&r));
		raft_uv_close(&io);
		goto err_after_transport;
	}
	rv = raft_recover(&r, conf);
	if (rv != 0) {
		const char *cause = io.errmsg[0] ? io.errmsg : raft_errmsg(&r);
		snprintf(errmsg, errlen, "raft_recover in %s: %s%s%s", data_dir, raft_strerror(rv),
			 cause && cause[0] ? ": " : "", cause ? cause : "");
		rv = -EIO;
	}
	/* raft_close completes on the loop (src/raft.c), as in node.c. */
	raft_close(&r, on_closed);
	uv_run(&loop, UV_RUN_DEFAULT);
	raft_uv_close(&io);
	raft_uv_tcp_close(&transport);
	uv_run(&loop, UV_RUN_DEFAULT);
	uv_loop_close(&loop);
	if (rv == 0)
		rv = restamp(data_dir, errmsg, errlen);
	return rv;

err_after_transport:
	raft_uv_tcp_close(&transport);
	uv_run(&loop, UV_RUN_DEFAULT);
err_after_loop:
	uv_loop_close(&loop);
	return -EIO;
}
