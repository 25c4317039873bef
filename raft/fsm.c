/*
 * raft/fsm.c -- adapter from libraft's raft_fsm to a canopy fsm_machine.
 * See fsm.h for the entry framing and why every entry is versioned.
 */
#include "raft/fsm.h"

#include "common/xalloc.h"

#include <assert.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <uv.h>

static const unsigned char magic[4] = {'C', 'N', 'P', 'Y'};

static void put16(unsigned char *p, uint16_t v)
{
	p[0] = (unsigned char)v;
	p[1] = (unsigned char)(v >> 8);
}

static void put32(unsigned char *p, uint32_t v)
{
	put16(p, (uint16_t)v);
	put16(p + 2, (uint16_t)(v >> 16));
}

static uint16_t get16(const unsigned char *p)
{
	return (uint16_t)(p[0] | p[1] << 8);
}

static uint32_t get32(const unsigned char *p)
{
	return (uint32_t)get16(p) | (uint32_t)get16(p + 2) << 16;
}

static void header(unsigned char *p, uint16_t type, uint16_t version, size_t len)
{
	memcpy(p, magic, 4);
	put16(p + 4, version);
	put16(p + 6, type);
	put32(p + 8, (uint32_t)len);
	put32(p + 12, 0);
}

int fsm_encode(uint16_t type, uint16_t version, const void *payload, size_t len,
	       struct raft_buffer *out)
{
	unsigned char *p;
	size_t total;

	if (len > UINT32_MAX - FSM_HEADER_SIZE - 8)
		return -EFBIG;
	/* With libraft 0.15 an entry whose length is not a multiple of 8 was
	 * stored with a checksum that did not match (seen with a 41-byte entry):
	 * on restart the loader moved the segment aside as "corrupt-*" --
	 * committed entries lost -- and a joining server rejected it as
	 * malformed. Our reading: the checksum covers the 8-byte padding taken
	 * from past our buffer, the file gets zeros. So allocate the padding
	 * ourselves, zeroed. (The payload length in our header stays exact.) */
	total = (FSM_HEADER_SIZE + len + 7) & ~(size_t)7;
	p = xcheck(raft_calloc(1, total));
	header(p, type, version, len);
	if (len > 0)
		memcpy(p + FSM_HEADER_SIZE, payload, len);
	out->base = p;
	out->len = total;
	return 0;
}

int fsm_decode(const struct raft_buffer *buf, uint16_t max_version, uint16_t *type,
	       uint16_t *version, const void **payload, size_t *len)
{
	const unsigned char *p = buf->base;
	uint32_t n;

	if (buf->len < FSM_HEADER_SIZE || memcmp(p, magic, 4) != 0)
		return FSM_EBADMAGIC;
	n = get32(p + 8);
	/* libraft pads entries to 8 bytes, so the buffer may be longer. */
	if ((size_t)n > buf->len - FSM_HEADER_SIZE)
		return FSM_ETRUNCATED;
	*version = get16(p + 4);
	*type = get16(p + 6);
	if (*version == 0 || *version > max_version)
		return FSM_EVERSION;
	if (get32(p + 12) != 0)
		return FSM_ERESERVED;
	*payload = p + FSM_HEADER_SIZE;
	*len = n;
	return 0;
}

void fsm_snapshot_join(struct raft_buffer *bufs, unsigned n, struct raft_buffer *out)
{
	size_t len = 0, off = 0;
	unsigned i;

	for (i = 0; i < n; i++)
		len += bufs[i].len;
	out->base = xcheck(raft_malloc(len ? len : 1));
	out->len = len;
	for (i = 0; i < n; i++) {
		if (bufs[i].len)
			memcpy((char *)out->base + off, bufs[i].base, bufs[i].len);
		off += bufs[i].len;
		raft_free(bufs[i].base);
	}
	raft_free(bufs);
}

const char *fsm_strerror(int rv)
{
	switch (rv) {
	case FSM_EBADMAGIC:
		return "not a canopy entry (bad magic)";
	case FSM_ETRUNCATED:
		return "entry shorter than its header says";
	case FSM_ERESERVED:
		return "reserved header bits set (written by a newer canopy?)";
	case FSM_EVERSION:
		return "entry format version not understood by this canopy (upgrade this node)";
	default:
		return rv < 0 ? strerror(-rv) : "unknown error";
	}
}

static void refuse(struct fsm *f, const char *what, int rv, const char *detail)
{
	f->stats.refused++;
	snprintf(f->stats.last_error, sizeof f->stats.last_error, "%s: %s%s%s", what,
		 fsm_strerror(rv), detail[0] ? ": " : "", detail);
}

static int fsm_apply_cb(struct raft_fsm *rf, const struct raft_buffer *buf, void **result)
{
	struct fsm *f = rf->data;
	struct fsm_machine *m = f->machine;
	uint16_t type, version;
	const void *payload;
	size_t len;
	char err[200] = "";
	int rv;

	*result = NULL;
	rv = fsm_decode(buf, m->max_version, &type, &version, &payload, &len);
	if (rv != 0) {
		refuse(f, "apply", rv, "");
		return RAFT_MALFORMED;
	}
	rv = m->apply(m->data, type, version, payload, len, result, err, sizeof err);
	if (rv != 0) {
		refuse(f, "apply", rv, err);
		return RAFT_MALFORMED;
	}
	f->stats.applied++;
	f->stats.applied_bytes += buf->len;
	return 0;
}

/*
 * Out of memory aborts here as everywhere (common/xalloc.h); the one failure
 * left is a state too large for one framed buffer (over 4 GB): libraft then
 * skips this snapshot and keeps the log (RAFT_TOOBIG is the code libraft's
 * FSM callbacks may return for it).
 *
 * Two buffers, the header and the machine's own: libraft writes a
 * snapshot's buffers one after the other (src/uv_snapshot.c) and loads the
 * file back as one, so the bytes on disk and what restore sees are exactly
 * one framed buffer's -- without a copy of the whole state, which at a
 * million objects is a couple of hundred megabytes of peak RSS
 * (docs/benchmarks.md). The machine's buffer is malloc'd and libraft frees
 * it with raft_free(), which is free() with the default heap (canopy never
 * calls raft_heap_set).
 */
static int fsm_snapshot_cb(struct raft_fsm *rf, struct raft_buffer *bufs[], unsigned *n_bufs)
{
	struct fsm *f = rf->data;
	struct fsm_machine *m = f->machine;
	struct raft_buffer *out;
	void *data = NULL;
	size_t len = 0;

	m->snapshot(m->data, &data, &len);
	if (len > UINT32_MAX - FSM_HEADER_SIZE - 8) {
		free(data);
		return RAFT_TOOBIG;
	}
	out = xcheck(raft_calloc(2, sizeof *out));
	out[0].base = xcheck(raft_malloc(FSM_HEADER_SIZE));
	out[0].len = FSM_HEADER_SIZE;
	/* The snapshot carries the machine's snapshot format version. */
	header(out[0].base, 0, m->snapshot_version ? m->snapshot_version : m->max_version, len);
	out[1].base = data;
	out[1].len = len;
	*bufs = out;
	*n_bufs = 2;
	f->stats.snapshots++;
	return 0;
}

/* libraft hands over ownership of buf->base on success only. */
static int fsm_restore_cb(struct raft_fsm *rf, struct raft_buffer *buf)
{
	struct fsm *f = rf->data;
	struct fsm_machine *m = f->machine;
	uint16_t type, version;
	const void *payload;
	size_t len;
	char err[200] = "";
	int rv;

	rv = fsm_decode(buf, m->max_version, &type, &version, &payload, &len);
	if (rv != 0) {
		refuse(f, "restore", rv, "");
		return RAFT_MALFORMED;
	}
	rv = m->restore(m->data, version, payload, len, err, sizeof err);
	if (rv != 0) {
		refuse(f, "restore", rv, err);
		return RAFT_MALFORMED;
	}
	raft_free(buf->base);
	f->stats.restores++;
	return 0;
}

/*
 * Snapshots off the loop (raft_fsm version 3, see fsm.h): libraft calls
 * snapshot on the loop, snapshot_async through io->async_work on a libuv
 * worker, and snapshot_finalize on the loop once the snapshot is written or
 * abandoned -- in every case after a successful snapshot, so thaw always
 * runs (raft.h, "version 3"; src/replication.c takeSnapshot and
 * takeSnapshotClose). With snapshot_finalize set, libraft owns none of the
 * buffers: finalize frees them. The payload buffer is allocated here, on the
 * loop, at its exact size (malloc of a large block maps pages lazily: cheap);
 * the worker only fills it.
 */
static int fsm_freeze_cb(struct raft_fsm *rf, struct raft_buffer *bufs[], unsigned *n_bufs)
{
	struct fsm *f = rf->data;
	struct fsm_machine *m = f->machine;
	struct raft_buffer *out;
	size_t len = 0;

	m->freeze(m->data, &len);
	if (len > UINT32_MAX - FSM_HEADER_SIZE - 8) {
		m->thaw(m->data);
		return RAFT_TOOBIG;
	}
	out = xcheck(raft_calloc(2, sizeof *out));
	out[0].base = xcheck(raft_malloc(FSM_HEADER_SIZE));
	out[0].len = FSM_HEADER_SIZE;
	header(out[0].base, 0, m->snapshot_version ? m->snapshot_version : m->max_version, len);
	out[1].base = xcheck(raft_malloc(len ? len : 1));
	out[1].len = len;
	*bufs = out;
	*n_bufs = 2;
	f->stats.snapshots++;
	return 0;
}

/* On a worker thread: reads only what freeze fixed (fsm.h). */
static int fsm_encode_cb(struct raft_fsm *rf, struct raft_buffer *bufs[], unsigned *n_bufs)
{
	struct fsm *f = rf->data;
	struct fsm_machine *m = f->machine;
	uint64_t t0 = uv_hrtime();

	assert(*n_bufs == 2);
	m->encode(m->data, (*bufs)[1].base, (*bufs)[1].len);
	/* read by finalize, on the loop, after this work completed */
	f->encode_ns = uv_hrtime() - t0;
	return 0;
}

static int fsm_finalize_cb(struct raft_fsm *rf, struct raft_buffer *bufs[], unsigned *n_bufs)
{
	struct fsm *f = rf->data;
	struct fsm_machine *m = f->machine;

	for (unsigned i = 0; i < *n_bufs; i++)
		raft_free((*bufs)[i].base);
	raft_free(*bufs);
	*bufs = NULL;
	*n_bufs = 0;
	f->stats.snapshot_encode_ms = f->encode_ns / 1000000;
	m->thaw(m->data);
	return 0;
}

void fsm_snapshot_now(struct fsm *f, struct raft_buffer *out)
{
	struct raft_buffer *bufs = NULL;
	unsigned n = 0;
	int rv;

	rv = f->raft.snapshot(&f->raft, &bufs, &n);
	assert(rv == 0); /* only a state over 4 GB fails */
	(void)rv;
	if (f->raft.version < 3 || f->raft.snapshot_async == NULL) {
		fsm_snapshot_join(bufs, n, out); /* frees them: version 1 */
		return;
	}
	f->raft.snapshot_async(&f->raft, &bufs, &n);
	/* join a copy: finalize frees the originals (and thaws) */
	struct raft_buffer *copy = xcheck(raft_calloc(n, sizeof *copy));
	for (unsigned i = 0; i < n; i++) {
		copy[i].base = xcheck(raft_malloc(bufs[i].len ? bufs[i].len : 1));
		copy[i].len = bufs[i].len;
		memcpy(copy[i].base, bufs[i].base, bufs[i].len);
	}
	fsm_snapshot_join(copy, n, out);
	f->raft.snapshot_finalize(&f->raft, &bufs, &n);
}

void fsm_init(struct fsm *f, struct fsm_machine *machine)
{
	memset(f, 0, sizeof *f);
	f->machine = machine;
	f->raft.version = 1;
	f->raft.data = f;
	f->raft.apply = fsm_apply_cb;
	f->raft.snapshot = fsm_snapshot_cb;
	f->raft.restore = fsm_restore_cb;
}

int fsm_snapshot_off_loop(struct fsm *f)
{
	struct fsm_machine *m = f->machine;

	if (m->freeze == NULL || m->encode == NULL || m->thaw == NULL)
		return -ENOTSUP;
	f->raft.version = 3;
	f->raft.snapshot = fsm_freeze_cb;
	f->raft.snapshot_async = fsm_encode_cb;
	f->raft.snapshot_finalize = fsm_finalize_cb;
	return 0;
}
