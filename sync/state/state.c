/*
 * sync/state/state.c -- the replicated state machine (see state.h).
 *
 * The object table is a chained hash table: a million objects per domain is
 * the target, and the standard C library has no map that supports deletion
 * (hsearch does not), so this is written here; it is small.
 */
#include "sync/state/state.h"
#include "common/xalloc.h"
#include "sync/hash.h"

#include <assert.h>
#include <errno.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <zlib.h>

/*
 * One key and its value in one allocation, with 18 bytes of header: at a
 * million objects every byte here is a megabyte (docs/benchmarks.md). The
 * slot keeps the low 32 bits of the key's hash -- enough to pick a bucket
 * (n_buckets stays far below 2^32) and to skip most memcmp()s in a chain --
 * and not its digest: that is recomputed from the bytes when the slot is
 * replaced or removed, which costs one hash of a ~200-byte record per
 * write instead of 8 bytes per object held.
 */
struct state_slot {
	struct state_slot *next;
	uint32_t hash; /* low 32 bits of the key's hash */
	uint32_t vlen;
	uint16_t klen;
	unsigned char data[]; /* key, then value */
};

#define SLOT_HEADER offsetof(struct state_slot, data)

#define fnv hash_bytes
#define FNV_SEED HASH_SEED

/* A final mix so that XOR-combining slot digests does not cancel structure. */
static uint64_t mix(uint64_t x)
{
	x ^= x >> 33;
	x *= 0xff51afd7ed558ccdULL;
	x ^= x >> 33;
	x *= 0xc4ceb9fe1a85ec53ULL;
	x ^= x >> 33;
	return x;
}

static uint64_t slot_digest(const void *key, size_t klen, const void *val, size_t vlen)
{
	/* The key length goes in too, so ("ab","c") and ("a","bc") differ. */
	unsigned char sep[4] = {(unsigned char)klen, (unsigned char)(klen >> 8), 0xff, 0};
	uint64_t h = fnv(FNV_SEED, key, klen);
	h = fnv(h, sep, sizeof sep);
	h = fnv(h, val, vlen);
	return mix(h);
}

void state_init(struct state *s)
{
	memset(s, 0, sizeof *s);
	s->n_buckets = 1024;
	s->buckets = xcalloc(s->n_buckets, sizeof *s->buckets);
}

uint64_t state_count(const struct state *s, enum state_ns ns)
{
	return s->by_prefix[(unsigned char)ns];
}

size_t state_keys(const struct state *s)
{
	return s->count;
}

const void *state_cursor(const struct state *s, size_t *len)
{
	*len = s->cursor ? s->cursor_len : 0;
	return s->cursor;
}

static void release(struct state *s, struct state_slot *e);
static void thaw(struct state *s);

static void clear(struct state *s)
{
	size_t i;
	for (i = 0; i < s->n_buckets; i++) {
		struct state_slot *e = s->buckets[i], *next;
		for (; e; e = next) {
			next = e->next;
			release(s, e);
		}
		s->buckets[i] = NULL;
	}
	s->count = 0;
	s->snap_bytes = 0;
	s->digest = 0;
	memset(s->by_prefix, 0, sizeof s->by_prefix);
	free(s->cursor);
	s->cursor = NULL;
	s->cursor_len = 0;
}

void state_close(struct state *s)
{
	if (s->buckets)
		clear(s);
	free(s->buckets);
	s->buckets = NULL;
	thaw(s); /* no encoding outlives its raft (raft_uv's close waits for it) */
}

static struct state_slot **find(const struct state *s, const void *key, size_t klen, uint64_t h)
{
	struct state_slot **p = &s->buckets[h & (s->n_buckets - 1)];
	for (; *p; p = &(*p)->next)
		if ((*p)->hash == (uint32_t)h && (*p)->klen == klen && memcmp((*p)->data, key, klen) == 0)
			return p;
	return p;
}

static uint64_t digest_of(const struct state_slot *e)
{
	return slot_digest(e->data, e->klen, e->data + e->klen, e->vlen);
}

/* A slot leaves the table: freed, or kept until the thaw while a snapshot
 * is being encoded from it (state.h, `frozen`). */
static void release(struct state *s, struct state_slot *e)
{
	if (!s->frozen) {
		free(e);
		return;
	}
	if (s->n_graveyard == s->cap_graveyard) {
		s->cap_graveyard = s->cap_graveyard ? 2 * s->cap_graveyard : 256;
		s->graveyard = xrealloc(s->graveyard, s->cap_graveyard * sizeof *s->graveyard);
	}
	s->graveyard[s->n_graveyard++] = e;
}

/* What a slot adds to the snapshot: u16 klen, key, u32 vlen, value. */
static size_t snap_size(size_t klen, size_t vlen)
{
	return 2 + klen + 4 + vlen;
}

static void grow(struct state *s)
{
	size_t n = s->n_buckets * 2, i;
	struct state_slot **b = xcalloc(n, sizeof *b);
	for (i = 0; i < s->n_buckets; i++) {
		struct state_slot *e = s->buckets[i], *next;
		for (; e; e = next) {
			next = e->next;
			e->next = b[e->hash & (n - 1)];
			b[e->hash & (n - 1)] = e;
		}
	}
	free(s->buckets);
	s->buckets = b;
	s->n_buckets = n;
}

/* Buckets for n keys (an empty table only): what grow() would reach. */
static void presize(struct state *s, size_t n)
{
	size_t b = s->n_buckets;

	assert(s->count == 0);
	while (b < n)
		b *= 2;
	if (b == s->n_buckets)
		return;
	free(s->buckets);
	s->buckets = xcalloc(b, sizeof *s->buckets);
	s->n_buckets = b;
}

/* Out of memory aborts (common/xalloc.h): an apply never half-fails, so every
 * node that applied an entry holds the same table. */
static void put(struct state *s, const void *key, size_t klen, const void *val, size_t vlen)
{
	uint64_t h = fnv(FNV_SEED, key, klen);
	struct state_slot **p, *e;

	if (s->count >= s->n_buckets)
		grow(s);
	e = xmalloc(SLOT_HEADER + klen + vlen);
	e->hash = (uint32_t)h;
	e->klen = (uint16_t)klen;
	e->vlen = (uint32_t)vlen;
	memcpy(e->data, key, klen);
	if (vlen)
		memcpy(e->data + klen, val, vlen);
	p = find(s, key, klen, h);
	s->snap_bytes += snap_size(klen, vlen);
	if (*p) { /* replace */
		e->next = (*p)->next;
		s->digest ^= digest_of(*p);
		s->snap_bytes -= snap_size((*p)->klen, (*p)->vlen);
		release(s, *p);
	} else {
		e->next = NULL;
		s->count++;
		if (klen)
			s->by_prefix[*(const unsigned char *)key]++;
	}
	*p = e;
	s->digest ^= slot_digest(key, klen, val, vlen);
}

static void del(struct state *s, const void *key, size_t klen)
{
	struct state_slot **p = find(s, key, klen, fnv(FNV_SEED, key, klen)), *e = *p;
	if (e == NULL)
		return; /* deleting a missing key is a no-op: entries may be replayed */
	*p = e->next;
	s->digest ^= digest_of(e);
	s->snap_bytes -= snap_size(e->klen, e->vlen);
	s->count--;
	if (klen)
		s->by_prefix[*(const unsigned char *)key]--;
	release(s, e);
}

static void set_cursor(struct state *s, const void *c, size_t len)
{
	void *copy = xmalloc(len);
	memcpy(copy, c, len);
	free(s->cursor);
	s->cursor = copy;
	s->cursor_len = len;
}

bool state_get(const struct state *s, const void *key, size_t klen, const void **val, size_t *vlen)
{
	struct state_slot *e = *find(s, key, klen, fnv(FNV_SEED, key, klen));
	if (e == NULL)
		return false;
	*val = e->data + e->klen;
	*vlen = e->vlen;
	return true;
}

int state_foreach(const struct state *s,
		  int (*cb)(void *ctx, const void *key, size_t klen, const void *val, size_t vlen),
		  void *ctx)
{
	size_t i;
	int rv;
	for (i = 0; i < s->n_buckets; i++) {
		struct state_slot *e;
		for (e = s->buckets[i]; e; e = e->next)
			if ((rv = cb(ctx, e->data, e->klen, e->data + e->klen, e->vlen)) != 0)
				return rv;
	}
	return 0;
}

uint64_t state_digest(const struct state *s)
{
	uint64_t c = s->cursor ? fnv(FNV_SEED ^ 1, s->cursor, s->cursor_len) : 0;
	return mix(s->digest ^ c ^ (uint64_t)s->count);
}

/* ---- decoding helpers: a bounds-checked reader -------------------------- */

struct reader {
	const unsigned char *p, *end;
};

static bool rd(struct reader *r, void *out, size_t n)
{
	if ((size_t)(r->end - r->p) < n)
		return false;
	if (out)
		memcpy(out, r->p, n);
	r->p += n;
	return true;
}

static bool rd_uint(struct reader *r, uint64_t *v, size_t n)
{
	unsigned char b[8];
	size_t i;
	if (!rd(r, b, n))
		return false;
	for (*v = 0, i = 0; i < n; i++)
		*v |= (uint64_t)b[i] << (8 * i);
	return true;
}

/* Borrow `n` bytes at the current position. */
static bool rd_bytes(struct reader *r, const void **p, uint64_t n)
{
	if ((uint64_t)(r->end - r->p) < n)
		return false;
	*p = r->p;
	r->p += n;
	return true;
}

/*
 * Apply one batch. It is checked in full before anything is changed, so a
 * malformed entry is refused as a whole and never half-applied.
 */
static int apply_batch(struct state *s, const void *payload, size_t len, char *errmsg,
		       size_t errlen)
{
	struct reader r;
	int pass;

	for (pass = 0; pass < 2; pass++) {
		r.p = payload;
		r.end = r.p + len;
		while (r.p < r.end) {
			uint64_t op, klen, vlen;
			const void *k, *v;
			if (!rd_uint(&r, &op, 1))
				goto bad;
			switch (op) {
			case STATE_OP_CURSOR:
				if (!rd_uint(&r, &vlen, 4) || !rd_bytes(&r, &v, vlen))
					goto bad;
				if (pass)
					set_cursor(s, v, vlen);
				break;
			case STATE_OP_PUT:
				if (!rd_uint(&r, &klen, 2) || !rd_bytes(&r, &k, klen) ||
				    !rd_uint(&r, &vlen, 4) || !rd_bytes(&r, &v, vlen))
					goto bad;
				if (pass)
					put(s, k, klen, v, vlen);
				break;
			case STATE_OP_DEL:
				if (!rd_uint(&r, &klen, 2) || !rd_bytes(&r, &k, klen))
					goto bad;
				if (pass)
					del(s, k, klen);
				break;
			default:
				snprintf(errmsg, errlen, "unknown batch operation %u at offset %zu",
					 (unsigned)op, (size_t)(r.p - (const unsigned char *)payload - 1));
				return -EPROTO;
			}
		}
	}
	return 0;
bad:
	snprintf(errmsg, errlen, "batch truncated at offset %zu of %zu",
		 (size_t)(r.p - (const unsigned char *)payload), len);
	return -EPROTO;
}

/*
 * A version 2 batch: its encoding byte, then the ops plain or deflated. The
 * announced length is input: capped before anything is allocated, and the
 * stream must inflate to exactly that length.
 */
static int apply_batch_v2(struct state *s, const void *payload, size_t len, char *errmsg,
			  size_t errlen)
{
	struct reader r = {payload, (const unsigned char *)payload + len};
	uint64_t enc, raw_len;
	unsigned char *raw;
	uLongf out_len;
	int rv;

	if (!rd_uint(&r, &enc, 1)) {
		snprintf(errmsg, errlen, "version 2 batch without its encoding byte");
		return -EPROTO;
	}
	if (enc == STATE_ENCODING_PLAIN)
		return apply_batch(s, r.p, (size_t)(r.end - r.p), errmsg, errlen);
	if (enc != STATE_ENCODING_DEFLATE) {
		snprintf(errmsg, errlen, "version 2 batch: unknown encoding %u", (unsigned)enc);
		return -EPROTO;
	}
	if (!rd_uint(&r, &raw_len, 4) || raw_len == 0 || raw_len > STATE_BATCH_RAW_MAX) {
		snprintf(errmsg, errlen, "deflated batch: length missing or over %u bytes",
			 STATE_BATCH_RAW_MAX);
		return -EPROTO;
	}
	raw = xmalloc((size_t)raw_len);
	out_len = (uLongf)raw_len;
	rv = uncompress(raw, &out_len, r.p, (uLong)(r.end - r.p));
	if (rv != Z_OK || out_len != raw_len) {
		snprintf(errmsg, errlen, "deflated batch does not inflate to its %llu bytes: %s",
			 (unsigned long long)raw_len, rv == Z_OK ? "length differs" : zError(rv));
		free(raw);
		return -EPROTO;
	}
	rv = apply_batch(s, raw, (size_t)raw_len, errmsg, errlen);
	free(raw);
	if (rv == 0)
		s->applied_deflated++;
	return rv;
}

static int m_apply(void *data, uint16_t type, uint16_t version, const void *payload, size_t len,
		   void **result, char *errmsg, size_t errlen)
{
	struct state *s = data;
	int rv;

	*result = NULL;
	if (type != STATE_ENTRY_BATCH) {
		snprintf(errmsg, errlen, "unknown entry type %u", type);
		return -EPROTO;
	}
	/* raft/fsm.c refuses versions above max_version already; this also
	 * covers a caller that applies a payload without the framing. */
	if (version < 1 || version > STATE_VERSION) {
		snprintf(errmsg, errlen, "unknown format version %u", version);
		return -EPROTO;
	}
	rv = version == 1 ? apply_batch(s, payload, len, errmsg, errlen)
			  : apply_batch_v2(s, payload, len, errmsg, errlen);
	if (rv == 0)
		s->applied_by_version[version]++;
	return rv;
}

/* ---- snapshot ------------------------------------------------------------ */

struct writer {
	unsigned char *buf;
	size_t len, cap;
};

static void wr(struct writer *w, const void *p, size_t n)
{
	if (w->len + n > w->cap) {
		size_t cap = w->cap ? w->cap : 256;
		while (cap < w->len + n)
			cap *= 2;
		w->buf = xrealloc(w->buf, cap);
		w->cap = cap;
	}
	if (n)
		memcpy(w->buf + w->len, p, n);
	w->len += n;
}

static void wr_uint(struct writer *w, uint64_t v, size_t n)
{
	unsigned char b[8];
	size_t i;
	for (i = 0; i < n; i++)
		b[i] = (unsigned char)(v >> (8 * i));
	wr(w, b, n);
}

static int snap_one(void *ctx, const void *key, size_t klen, const void *val, size_t vlen)
{
	struct writer *w = ctx;
	wr_uint(w, klen, 2);
	wr(w, key, klen);
	wr_uint(w, vlen, 4);
	wr(w, val, vlen);
	return 0;
}

static void m_snapshot(void *data, void **buf, size_t *len)
{
	struct state *s = data;
	struct writer w = {0};

	/* sized exactly up front: no realloc copies of a table-sized buffer */
	w.cap = 4 + s->cursor_len + 8 + s->snap_bytes;
	w.buf = xmalloc(w.cap);
	wr_uint(&w, s->cursor_len, 4);
	wr(&w, s->cursor, s->cursor_len);
	wr_uint(&w, s->count, 8);
	state_foreach(s, snap_one, &w);
	assert(w.len == w.cap);
	*buf = w.buf;
	*len = w.len;
}

/*
 * The same snapshot in three steps, off the loop (raft/fsm.h). freeze walks
 * the chains once to list the slots (8 bytes per key: 8 MB at a million,
 * tens of milliseconds) and copies the cursor; encode writes exactly what
 * m_snapshot writes, in the same order, from that list: a slot's key and
 * value never change after put() made it (a replace makes a new slot), and
 * a slot that leaves the table meanwhile waits in the graveyard. Only
 * `next` changes under the worker, and encode never reads it.
 */
static void m_freeze(void *data, size_t *len)
{
	struct state *s = data;
	size_t i, n = 0;

	assert(!s->frozen);
	s->frozen_slots = xmalloc((s->count ? s->count : 1) * sizeof *s->frozen_slots);
	for (i = 0; i < s->n_buckets; i++)
		for (struct state_slot *e = s->buckets[i]; e; e = e->next)
			s->frozen_slots[n++] = e;
	assert(n == s->count);
	s->n_frozen = n;
	s->frozen_cursor_len = s->cursor ? s->cursor_len : 0;
	s->frozen_cursor = NULL;
	if (s->frozen_cursor_len) {
		s->frozen_cursor = xmalloc(s->frozen_cursor_len);
		memcpy(s->frozen_cursor, s->cursor, s->frozen_cursor_len);
	}
	s->frozen = true;
	*len = 4 + s->frozen_cursor_len + 8 + s->snap_bytes;
}

static void m_encode(void *data, void *buf, size_t len)
{
	const struct state *s = data;
	struct writer w = {.buf = buf, .cap = len};

	wr_uint(&w, s->frozen_cursor_len, 4);
	wr(&w, s->frozen_cursor, s->frozen_cursor_len);
	wr_uint(&w, s->n_frozen, 8);
	for (size_t i = 0; i < s->n_frozen; i++) {
		const struct state_slot *e = s->frozen_slots[i];
		snap_one(&w, e->data, e->klen, e->data + e->klen, e->vlen);
	}
	assert(w.len == w.cap && w.buf == buf); /* sized by freeze: never grown */
}

static void thaw(struct state *s)
{
	for (size_t i = 0; i < s->n_graveyard; i++)
		free(s->graveyard[i]);
	free(s->graveyard);
	free(s->frozen_slots);
	free(s->frozen_cursor);
	s->graveyard = NULL;
	s->n_graveyard = s->cap_graveyard = 0;
	s->frozen_slots = NULL;
	s->n_frozen = 0;
	s->frozen_cursor = NULL;
	s->frozen_cursor_len = 0;
	s->frozen = false;
}

static void m_thaw(void *data)
{
	thaw(data);
}

/* Restore into a fresh table first, so a bad snapshot leaves the state intact. */
static int m_restore(void *data, uint16_t version, const void *payload, size_t len, char *errmsg,
		     size_t errlen)
{
	struct state *s = data, fresh;
	struct reader r = {payload, (const unsigned char *)payload + len};
	uint64_t clen, count, i, klen, vlen;
	const void *c, *k, *v;

	(void)version;
	state_init(&fresh);
	if (!rd_uint(&r, &clen, 4) || !rd_bytes(&r, &c, clen) || !rd_uint(&r, &count, 8))
		goto bad;
	if (clen)
		set_cursor(&fresh, c, clen);
	/* Size the table for `count` at once instead of doubling ten times on
	 * the way to a million. `count` is input: every slot takes at least 6
	 * bytes of the payload, so a count the payload cannot hold is refused
	 * before anything is allocated for it. */
	if (count > (uint64_t)(r.end - r.p) / 6)
		goto bad;
	presize(&fresh, (size_t)count);
	for (i = 0; i < count; i++) {
		if (!rd_uint(&r, &klen, 2) || !rd_bytes(&r, &k, klen) || !rd_uint(&r, &vlen, 4) ||
		    !rd_bytes(&r, &v, vlen))
			goto bad;
		put(&fresh, k, klen, v, vlen);
	}
	if (r.p != r.end || fresh.count != count)
		goto bad;
	fresh.machine = s->machine;
	memcpy(fresh.applied_by_version, s->applied_by_version, sizeof fresh.applied_by_version);
	fresh.applied_deflated = s->applied_deflated;
	/* libraft installs no snapshot while it takes one, but should it: the
	 * slots being encoded go to the graveyard, and the freeze carries over */
	clear(s);
	free(s->buckets);
	fresh.frozen = s->frozen;
	fresh.frozen_slots = s->frozen_slots;
	fresh.n_frozen = s->n_frozen;
	fresh.frozen_cursor = s->frozen_cursor;
	fresh.frozen_cursor_len = s->frozen_cursor_len;
	fresh.graveyard = s->graveyard;
	fresh.n_graveyard = s->n_graveyard;
	fresh.cap_graveyard = s->cap_graveyard;
	*s = fresh;
	return 0;
bad:
	snprintf(errmsg, errlen, "snapshot malformed at offset %zu of %zu",
		 (size_t)(r.p - (const unsigned char *)payload), len);
	state_close(&fresh);
	return -EPROTO;
}

struct fsm_machine *state_machine(struct state *s)
{
	s->machine.data = s;
	s->machine.max_version = STATE_VERSION;
	s->machine.snapshot_version = STATE_SNAPSHOT_VERSION;
	s->machine.apply = m_apply;
	s->machine.snapshot = m_snapshot;
	s->machine.restore = m_restore;
	s->machine.freeze = m_freeze;
	s->machine.encode = m_encode;
	s->machine.thaw = m_thaw;
	return &s->machine;
}

/* ---- batch builder -------------------------------------------------------- */

void state_batch_init(struct state_batch *b)
{
	memset(b, 0, sizeof *b);
}

static void bw(struct state_batch *b, const void *p, size_t n)
{
	struct writer w = {b->buf, b->len, b->cap};
	wr(&w, p, n);
	b->buf = w.buf;
	b->len = w.len;
	b->cap = w.cap;
}

static void bw_uint(struct state_batch *b, uint64_t v, size_t n)
{
	unsigned char x[8];
	size_t i;
	for (i = 0; i < n; i++)
		x[i] = (unsigned char)(v >> (8 * i));
	bw(b, x, n);
}

void state_batch_cursor(struct state_batch *b, const void *cursor, size_t len)
{
	if (len > UINT32_MAX && !b->error)
		b->error = -EINVAL;
	bw_uint(b, STATE_OP_CURSOR, 1);
	bw_uint(b, len, 4);
	bw(b, cursor, len);
	b->n_ops++;
}

void state_batch_put(struct state_batch *b, const void *key, size_t klen, const void *val,
		     size_t vlen)
{
	if ((klen > STATE_KEY_MAX || vlen > UINT32_MAX) && !b->error)
		b->error = -EINVAL;
	bw_uint(b, STATE_OP_PUT, 1);
	bw_uint(b, klen, 2);
	bw(b, key, klen);
	bw_uint(b, vlen, 4);
	bw(b, val, vlen);
	b->n_ops++;
}

void state_batch_del(struct state_batch *b, const void *key, size_t klen)
{
	if (klen > STATE_KEY_MAX && !b->error)
		b->error = -EINVAL;
	bw_uint(b, STATE_OP_DEL, 1);
	bw_uint(b, klen, 2);
	bw(b, key, klen);
	b->n_ops++;
}

int state_batch_encode(struct state_batch *b, struct raft_buffer *out)
{
	return state_batch_encode_version(b, 1, out);
}

int state_batch_encode_version(struct state_batch *b, uint16_t version, struct raft_buffer *out)
{
	struct writer w = {0};
	uLongf zlen;
	int rv;

	if (b->error)
		return b->error;
	if (version == 1)
		return fsm_encode(STATE_ENTRY_BATCH, 1, b->buf, b->len, out);
	if (version != 2)
		return -EINVAL;
	if (b->len >= STATE_DEFLATE_MIN && b->len <= STATE_BATCH_RAW_MAX) {
		zlen = compressBound((uLong)b->len);
		w.buf = xmalloc(5 + (size_t)zlen);
		w.cap = 5 + (size_t)zlen;
		w.buf[0] = STATE_ENCODING_DEFLATE;
		w.len = 1;
		wr_uint(&w, b->len, 4);
		/* Z_MEM_ERROR is out of memory (abort, common/xalloc.h); with
		 * compressBound's room no other error is possible. */
		rv = compress2(w.buf + 5, &zlen, b->buf, (uLong)b->len, Z_BEST_SPEED);
		if (rv == Z_MEM_ERROR)
			xoom("compress2");
		assert(rv == Z_OK);
		if (5 + (size_t)zlen < 1 + b->len) {
			w.len = 5 + (size_t)zlen;
			rv = fsm_encode(STATE_ENTRY_BATCH, 2, w.buf, w.len, out);
			free(w.buf);
			return rv;
		}
		free(w.buf);
		w = (struct writer){0};
	}
	wr_uint(&w, STATE_ENCODING_PLAIN, 1);
	wr(&w, b->buf, b->len);
	rv = fsm_encode(STATE_ENTRY_BATCH, 2, w.buf, w.len, out);
	free(w.buf);
	return rv;
}

void state_batch_close(struct state_batch *b)
{
	free(b->buf);
	memset(b, 0, sizeof *b);
}
