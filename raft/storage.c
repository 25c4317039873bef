/*
 * raft/storage.c -- data dir checks, the canopy-state marker, storage health.
 * See storage.h; every format rule below cites the libraft 0.15 source file
 * it comes from.
 */
#include "raft/storage.h"

#include "common/xalloc.h"
#include "raft/wire_check.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <unistd.h>

/* ---- libraft's primitives ------------------------------------------------ */

/* src/byte.c: byteCrc32, table from libiberty's crc32.c (poly 0x04c11db7). */
uint32_t storage_crc32(const void *buf, size_t len, uint32_t init)
{
	static uint32_t table[256];
	static int ready;
	const unsigned char *p = buf;
	uint32_t crc = init;
	unsigned i, j;

	if (!ready) {
		for (i = 0; i < 256; i++) {
			uint32_t c = (uint32_t)i << 24;
			for (j = 0; j < 8; j++)
				c = (c & 0x80000000u) ? (c << 1) ^ 0x04c11db7u : c << 1;
			table[i] = c;
		}
		ready = 1;
	}
	while (len--)
		crc = (crc << 8) ^ table[((crc >> 24) ^ *p++) & 255];
	return crc;
}

static uint64_t get64(const unsigned char *p)
{
	uint64_t v = 0;
	int i;
	for (i = 7; i >= 0; i--)
		v = v << 8 | p[i];
	return v;
}

static uint32_t get32(const unsigned char *p)
{
	return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}

/* src/uv.h: UV__DISK_FORMAT, the only segment/metadata/snapshot format of 0.15. */
#define DISK_FORMAT 1
/* src/uv_segment.c: uvLoadEntriesBatch's bound on a batch's entry count. */
#define MAX_BATCH_ENTRIES (STORAGE_SEGMENT_SIZE / (8 * 4))
/* src/uv_snapshot.c: UV__META_MAX_CONFIGURATION_SIZE. */
#define MAX_CONF_SIZE (1024 * 1024)

/* ---- files --------------------------------------------------------------- */

/*
 * The largest file the check reads into memory: a snapshot's data, which is
 * at most what a member may send (WIRE_CHECK_MAX_SNAPSHOT), plus room for
 * libraft's framing. Segments, metadata and the marker are far smaller. A
 * larger file was not written by this canopy: it is refused, not loaded.
 */
#define READ_MAX ((size_t)WIRE_CHECK_MAX_SNAPSHOT + 16 * 1024 * 1024)

static int read_all(const char *dir, const char *name, unsigned char **out, size_t *len,
		    char *errmsg, size_t errlen)
{
	char path[1300];
	struct stat st;
	unsigned char *buf;
	size_t got = 0;
	ssize_t n;
	int fd, rv;

	snprintf(path, sizeof path, "%s/%s", dir, name);
	fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0) {
		rv = -errno;
		snprintf(errmsg, errlen, "storage: cannot open %s: %s", path, strerror(errno));
		return rv;
	}
	if (fstat(fd, &st) != 0) {
		rv = -errno;
		snprintf(errmsg, errlen, "storage: cannot stat %s: %s", path, strerror(errno));
		close(fd);
		return rv;
	}
	if ((uint64_t)st.st_size > READ_MAX) {
		close(fd);
		snprintf(errmsg, errlen,
			 "storage: %s is %lld bytes, larger than any file this canopy writes (%zu): %s",
			 path, (long long)st.st_size, READ_MAX, STORAGE_REMEDY);
		return -EFBIG;
	}
	buf = xmalloc((size_t)st.st_size);
	while (got < (size_t)st.st_size) {
		n = read(fd, buf + got, (size_t)st.st_size - got);
		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0) {
			rv = n < 0 ? -errno : -EIO;
			snprintf(errmsg, errlen, "storage: cannot read %s: %s", path,
				 n < 0 ? strerror(errno) : "file shrank while reading");
			free(buf);
			close(fd);
			return rv;
		}
		got += (size_t)n;
	}
	close(fd);
	*out = buf;
	*len = got;
	return 0;
}

static bool all_zero(const unsigned char *p, size_t from, size_t to)
{
	size_t i;
	for (i = from; i < to; i++)
		if (p[i] != 0)
			return false;
	return true;
}

/* ---- the directory listing (src/uv_list.c, src/uv_segment.c, src/uv_snapshot.c) */

struct segment {
	bool open;
	unsigned long long first, end, counter;
	char name[256];
};

struct snapshot {
	unsigned long long term, index, timestamp;
	char meta[256], data[256];
};

struct listing {
	struct segment *segs;
	size_t n_segs, cap_segs;
	struct snapshot *snaps;
	size_t n_snaps, cap_snaps;
	bool metadata[2];
	bool marker;
	unsigned corrupt; /* "corrupt-*" files left by libraft's own recovery */
	char corrupt_name[256];
};

static void listing_free(struct listing *l)
{
	free(l->segs);
	free(l->snaps);
}

/* Room for one more element (a directory entry: bounded by the directory). */
static void push(void **arr, size_t *n, size_t *cap, size_t size)
{
	if (*n < *cap)
		return;
	*arr = xrealloc(*arr, (*cap ? *cap * 2 : 16) * size);
	*cap = *cap ? *cap * 2 : 16;
}

/* The filename templates of src/uv.h (UV__CLOSED_TEMPLATE "%016llu-%016llu",
 * UV__OPEN_TEMPLATE "open-%llu", UV__SNAPSHOT_TEMPLATE "snapshot-%llu-%llu-%llu",
 * UV__SNAPSHOT_META_TEMPLATE ...".meta"), matched as libraft does: sscanf and
 * the whole name consumed. */
static int list_dir(const char *dir, struct listing *l, char *errmsg, size_t errlen)
{
	DIR *d = opendir(dir);
	struct dirent *e;
	int consumed, rv;

	memset(l, 0, sizeof *l);
	if (d == NULL) {
		rv = -errno;
		snprintf(errmsg, errlen, "storage: cannot list data dir %s: %s", dir,
			 strerror(errno));
		return rv;
	}
	while ((e = readdir(d)) != NULL) {
		const char *name = e->d_name;
		size_t len = strlen(name);
		struct segment s;
		struct snapshot sn;

		if (len >= 250)
			continue;
		memset(&s, 0, sizeof s);
		if (strcmp(name, "metadata1") == 0 || strcmp(name, "metadata2") == 0) {
			l->metadata[name[8] - '1'] = true;
			continue;
		}
		if (strcmp(name, STORAGE_MARKER_FILE) == 0) {
			l->marker = true;
			continue;
		}
		if (strncmp(name, "corrupt-", 8) == 0) {
			if (l->corrupt++ == 0)
				snprintf(l->corrupt_name, sizeof l->corrupt_name, "%s", name);
			continue;
		}
		consumed = 0;
		if (sscanf(name, "%016llu-%016llu%n", &s.first, &s.end, &consumed) == 2 &&
		    consumed == (int)len) {
			s.open = false;
		} else if (consumed = 0, sscanf(name, "open-%llu%n", &s.counter, &consumed) == 1 &&
						 consumed == (int)len) {
			s.open = true;
		} else {
			memset(&sn, 0, sizeof sn);
			consumed = 0;
			if (len > 5 && strcmp(name + len - 5, ".meta") == 0 &&
			    sscanf(name, "snapshot-%llu-%llu-%llu.meta%n", &sn.term, &sn.index,
				   &sn.timestamp, &consumed) == 3 &&
			    consumed == (int)len) {
				snprintf(sn.meta, sizeof sn.meta, "%s", name);
				snprintf(sn.data, sizeof sn.data, "%.*s", (int)(len - 5), name);
				push((void **)&l->snaps, &l->n_snaps, &l->cap_snaps, sizeof sn);
				l->snaps[l->n_snaps++] = sn;
			}
			continue;
		}
		snprintf(s.name, sizeof s.name, "%s", name);
		push((void **)&l->segs, &l->n_segs, &l->cap_segs, sizeof s);
		l->segs[l->n_segs++] = s;
	}
	closedir(d);
	return 0;
}

/* src/uv_segment.c: uvSegmentInfoCompare -- closed before open; closed by
 * first index, open by counter. */
static int segment_cmp(const void *a, const void *b)
{
	const struct segment *x = a, *y = b;
	if (x->open != y->open)
		return x->open ? 1 : -1;
	if (x->open)
		return x->counter < y->counter ? -1 : x->counter > y->counter;
	return x->first < y->first ? -1 : x->first > y->first;
}

/* src/uv_snapshot.c: uvSnapshotCompare -- by term, index, timestamp. */
static int snapshot_cmp(const void *a, const void *b)
{
	const struct snapshot *x = a, *y = b;
	if (x->term != y->term)
		return x->term < y->term ? -1 : 1;
	if (x->index != y->index)
		return x->index < y->index ? -1 : 1;
	return x->timestamp < y->timestamp ? -1 : x->timestamp > y->timestamp;
}

/* ---- metadata (src/uv_metadata.c) ------------------------------------------ */

struct metadata {
	bool valid;
	uint64_t version, term, voted_for;
};

/* 32 bytes: format, version, term, voted_for. A file shorter than that is
 * taken by libraft as "crashed while writing" and ignored (loadFile, ENODATA);
 * a wrong format or version 0 makes raft_start fail. */
static int load_metadata(const char *dir, int n, struct metadata *m, char *errmsg,
			 size_t errlen)
{
	char name[16];
	unsigned char *buf;
	size_t len;
	int rv;

	memset(m, 0, sizeof *m);
	snprintf(name, sizeof name, "metadata%d", n);
	rv = read_all(dir, name, &buf, &len, errmsg, errlen);
	if (rv != 0)
		return rv;
	if (len < 32) {
		free(buf);
		return 0;
	}
	if (get64(buf) != DISK_FORMAT || get64(buf + 8) == 0) {
		snprintf(errmsg, errlen,
			 "storage: %s/%s is damaged (format %" PRIu64 ", version %" PRIu64
			 "); %s",
			 dir, name, get64(buf), get64(buf + 8), STORAGE_REMEDY);
		free(buf);
		return -EBADMSG;
	}
	m->valid = true;
	m->version = get64(buf + 8);
	m->term = get64(buf + 16);
	m->voted_for = get64(buf + 24);
	free(buf);
	return 0;
}

/* ---- segments (src/uv_segment.c, src/uv_encoding.c) ------------------------- */

enum batch_result { BATCH_OK, BATCH_END, BATCH_BAD, BATCH_SHORT };

/*
 * One batch at *off (src/uv_segment.c: uvLoadEntriesBatch): 4-byte header
 * crc, 4-byte data crc, then the header (8-byte entry count + 16 bytes per
 * entry: term, type, 3 unused, 4-byte length; src/uv_encoding.c:
 * uvEncodeBatchHeader), then the data. The header crc covers count + entry
 * headers, the data crc covers the sum of the declared lengths (canopy pads
 * every entry to 8 bytes, raft/fsm.c, so that is also what was written).
 * A zero count is how the preallocated, unwritten tail of an open segment
 * reads (BATCH_END). `*end` is set to where the batch ends when its header
 * is intact, else 0.
 */
static enum batch_result load_batch(const unsigned char *buf, size_t len, size_t *off,
				    uint64_t *n_entries, size_t *end, const char **why)
{
	size_t o = *off, hdr, data = 0;
	uint64_t n, i;

	*end = 0;
	if (o + 16 > len) {
		*why = "short read: batch preamble past the end of the file";
		return BATCH_SHORT;
	}
	n = get64(buf + o + 8);
	if (n == 0) {
		*why = "entries count in preamble is zero";
		return BATCH_END;
	}
	if (n > MAX_BATCH_ENTRIES) {
		*why = "entries count in preamble is too high";
		return BATCH_BAD;
	}
	hdr = 8 + 16 * (size_t)n;
	if (o + 8 + hdr > len) {
		*why = "short read: batch header past the end of the file";
		return BATCH_SHORT;
	}
	if (storage_crc32(buf + o + 8, hdr, 0) != get32(buf + o)) {
		*why = "header checksum mismatch";
		return BATCH_BAD;
	}
	for (i = 0; i < n; i++) {
		const unsigned char *h = buf + o + 16 + 16 * i;
		uint8_t type = h[8];
		/* src/uv_encoding.c: uvDecodeBatchHeader accepts these types only */
		if (type != 1 && type != 2 && type != 3) {
			*why = "unknown entry type";
			return BATCH_BAD;
		}
		data += get32(h + 12);
	}
	*end = o + 8 + hdr + data;
	if (o + 8 + hdr + data > len) {
		*why = "short read: batch data past the end of the file";
		return BATCH_SHORT;
	}
	if (storage_crc32(buf + o + 8 + hdr, data, 0) != get32(buf + o + 4)) {
		*why = "data checksum mismatch";
		return BATCH_BAD;
	}
	*off = o + 8 + hdr + data;
	*n_entries = n;
	return BATCH_OK;
}

/* A closed segment (src/uv_segment.c: uvSegmentLoadClosed): non-empty, format
 * 1, batches back to back up to the exact end of the file, holding exactly
 * end - first + 1 entries. Anything else makes libraft move it aside. */
static int check_closed(const char *dir, const struct segment *s, char *errmsg, size_t errlen)
{
	unsigned char *buf;
	size_t len, off = 8, end;
	uint64_t n, total = 0, expected = s->end - s->first + 1;
	const char *why = NULL;
	unsigned batch = 0;
	int rv;

	if (s->end < s->first) {
		snprintf(errmsg, errlen, "storage: %s/%s: end index below first index; %s", dir,
			 s->name, STORAGE_REMEDY);
		return -EBADMSG;
	}
	rv = read_all(dir, s->name, &buf, &len, errmsg, errlen);
	if (rv != 0)
		return rv;
	if (len < 8 || get64(buf) != DISK_FORMAT) {
		snprintf(errmsg, errlen,
			 "storage: %s/%s is damaged (%s); libraft would move it aside and start "
			 "without entries %llu..%llu; %s",
			 dir, s->name, len < 8 ? "file too short" : "bad format version", s->first,
			 s->end, STORAGE_REMEDY);
		free(buf);
		return -EBADMSG;
	}
	while (off < len) {
		enum batch_result r;
		batch++;
		r = load_batch(buf, len, &off, &n, &end, &why);
		if (r != BATCH_OK) {
			snprintf(errmsg, errlen,
				 "storage: %s/%s is damaged (batch %u at byte %zu: %s); libraft would "
				 "move it aside and start without entries %llu..%llu; %s",
				 dir, s->name, batch, off, why, s->first, s->end, STORAGE_REMEDY);
			free(buf);
			return -EBADMSG;
		}
		total += n;
	}
	free(buf);
	if (total != expected) {
		snprintf(errmsg, errlen,
			 "storage: %s/%s is damaged (found %" PRIu64 " entries, name says %" PRIu64
			 "); %s",
			 dir, s->name, total, expected, STORAGE_REMEDY);
		return -EBADMSG;
	}
	return 0;
}

/*
 * Whether an intact batch starts anywhere after the damaged one at `off`.
 * Batches are 8-byte aligned (every part of one is a multiple of 8 bytes), so
 * try each aligned offset up to the last non-zero byte: a torn write leaves
 * partial data and zeros, never a whole batch with matching checksums after
 * the tear.
 */
static bool batch_follows(const unsigned char *buf, size_t len, size_t off)
{
	size_t last = len, o, end;
	uint64_t n;
	const char *why;

	while (last > off && buf[last - 1] == 0)
		last--;
	for (o = off + 8; o + 16 <= last; o += 8) {
		size_t at = o;
		if (get64(buf + o + 8) == 0)
			continue;
		if (load_batch(buf, len, &at, &n, &end, &why) == BATCH_OK)
			return true;
	}
	return false;
}

/*
 * An open segment (src/uv_segment.c: uvSegmentLoadOpen). Empty or all-zero
 * files are removed by libraft (never written). Otherwise format 1, then
 * batches until the zero tail. libraft truncates an open segment at the first
 * batch that does not decode (RAFT_CORRUPT), assuming a crash mid-write; canopy
 * accepts that only for a torn *last* write: in the newest open segment that
 * holds data (`newest`), with no intact batch anywhere after the damaged one.
 * Any other damage would silently drop later entries: refuse.
 * `*entries` receives the number of intact entries, `*torn` the torn bytes.
 */
static int check_open(const char *dir, const struct segment *s, bool newest, uint64_t *entries,
		      bool *has_data, size_t *torn_at, char *errmsg, size_t errlen)
{
	unsigned char *buf;
	size_t len, off = 8, end;
	uint64_t n;
	const char *why = NULL;
	unsigned batch = 0;
	int rv;

	*entries = 0;
	*has_data = false;
	*torn_at = 0;
	rv = read_all(dir, s->name, &buf, &len, errmsg, errlen);
	if (rv != 0)
		return rv;
	if (len == 0 || all_zero(buf, 0, len)) {
		free(buf);
		return 0;
	}
	*has_data = true;
	if (len < 8 || get64(buf) != DISK_FORMAT) {
		snprintf(errmsg, errlen, "storage: %s/%s is damaged (bad format version); %s", dir,
			 s->name, STORAGE_REMEDY);
		free(buf);
		return -EBADMSG;
	}
	for (;;) {
		enum batch_result r;
		batch++;
		r = load_batch(buf, len, &off, &n, &end, &why);
		if (r == BATCH_OK) {
			*entries += n;
			if (off == len)
				break;
			continue;
		}
		if (r == BATCH_END && all_zero(buf, off, len))
			break; /* the preallocated tail */
		if (r != BATCH_SHORT && newest && !batch_follows(buf, len, off)) {
			*torn_at = off; /* a torn last write: libraft drops it, so do we */
			break;
		}
		snprintf(errmsg, errlen,
			 "storage: %s/%s is damaged (batch %u at byte %zu: %s, %s); libraft would drop "
			 "every entry from there on; %s",
			 dir, s->name, batch, off, why,
			 r == BATCH_SHORT ? "the file ends inside it: truncated" : "and data follows it",
			 STORAGE_REMEDY);
		free(buf);
		return -EBADMSG;
	}
	free(buf);
	return 0;
}

/* ---- snapshots (src/uv_snapshot.c, src/compress.c) --------------------------- */

/*
 * The .meta file (uvSnapshotLoadMeta): format, crc, configuration index,
 * configuration length (all 8 bytes), then the configuration; the crc (low 32
 * bits of its field) covers configuration index + length + configuration.
 */
static int check_snapshot_meta(const char *dir, const struct snapshot *sn, char *errmsg,
			       size_t errlen)
{
	unsigned char *buf;
	size_t len;
	uint64_t clen;
	const char *why = NULL;
	int rv;

	rv = read_all(dir, sn->meta, &buf, &len, errmsg, errlen);
	if (rv != 0)
		return rv;
	if (len < 32)
		why = "shorter than its header";
	else if (get64(buf) != DISK_FORMAT)
		why = "bad format version";
	else if ((clen = get64(buf + 24)) == 0 || clen > MAX_CONF_SIZE)
		why = "bad configuration length";
	else if (32 + clen > len)
		why = "truncated configuration";
	else if (storage_crc32(buf + 16, 16 + clen, 0) != (uint32_t)get64(buf + 8))
		why = "checksum mismatch";
	free(buf);
	if (why) {
		snprintf(errmsg, errlen, "storage: %s/%s is damaged (%s); %s", dir, sn->meta, why,
			 STORAGE_REMEDY);
		return -EBADMSG;
	}
	return 0;
}

/*
 * The data file. libraft decompresses it when it starts with the LZ4 frame
 * magic (src/compress.c: IsCompressed, Decompress); Decompress() loops for as
 * long as LZ4F_decompress() wants more input, so a frame cut short spins
 * forever. Walk the frame (LZ4 frame format 1.6.x: magic, FLG, BD, optional
 * content size and dictionary id, header checksum; blocks of 4-byte size,
 * high bit = stored uncompressed, optional block checksum; a zero end mark;
 * optional content checksum) and require it to end exactly at the end of the
 * file. libraft always writes a content size (it allocates the output from
 * it) and a content checksum. An uncompressed file must hold a whole canopy
 * entry (raft/fsm.h: 16-byte header starting "CNPY", payload length at 8).
 */
static const char *snapshot_data_problem(const unsigned char *p, size_t len)
{
	size_t o;
	uint8_t flg;

	if (len < 4)
		return "shorter than any snapshot";
	if (get32(p) != 0x184D2204u) {
		if (len < 16 || memcmp(p, "CNPY", 4) != 0)
			return "neither an LZ4 frame nor a canopy snapshot";
		if ((uint64_t)get32(p + 8) > len - 16)
			return "truncated (shorter than its header says)";
		return NULL;
	}
	if (len < 7)
		return "LZ4 frame header truncated";
	flg = p[4];
	if ((flg >> 6) != 1 || (flg & 0x02))
		return "LZ4 frame header damaged";
	if (!(flg & 0x08))
		return "LZ4 frame without content size (libraft would not decode it)";
	o = 6 + 8 + ((flg & 0x01) ? 4 : 0);
	if (o + 1 > len)
		return "LZ4 frame header truncated";
	if (get64(p + 6) == 0)
		return "LZ4 frame content size is zero";
	o += 1; /* header checksum */
	for (;;) {
		uint32_t bs;
		if (o + 4 > len)
			return "truncated (LZ4 frame cut short; libraft would spin forever)";
		bs = get32(p + o);
		o += 4;
		if (bs == 0)
			break;
		bs &= 0x7fffffffu;
		if (bs > (4u << 20))
			return "LZ4 block size damaged";
		o += bs + ((flg & 0x10) ? 4 : 0);
		if (o > len)
			return "truncated (LZ4 frame cut short; libraft would spin forever)";
	}
	o += (flg & 0x04) ? 4 : 0;
	if (o > len)
		return "truncated (LZ4 content checksum missing)";
	if (o < len)
		return "trailing bytes after the LZ4 frame";
	return NULL;
}

static int check_snapshot_data(const char *dir, const struct snapshot *sn, char *errmsg,
			       size_t errlen)
{
	unsigned char *buf;
	size_t len;
	const char *why;
	int rv;

	rv = read_all(dir, sn->data, &buf, &len, errmsg, errlen);
	if (rv != 0)
		return rv;
	why = snapshot_data_problem(buf, len);
	free(buf);
	if (why) {
		snprintf(errmsg, errlen, "storage: %s/%s is damaged (%s); %s", dir, sn->data, why,
			 STORAGE_REMEDY);
		return -EBADMSG;
	}
	return 0;
}

/* ---- the marker ---------------------------------------------------------- */

/* "canopy-state 1 commit=N term=T crc=X\n"; the crc (storage_crc32) covers
 * everything before " crc=". */
static int format_marker(char *buf, size_t size, uint64_t commit, uint64_t term)
{
	int n = snprintf(buf, size, "canopy-state 1 commit=%" PRIu64 " term=%" PRIu64, commit,
			 term);
	uint32_t crc = storage_crc32(buf, (size_t)n, 0);
	return n + snprintf(buf + n, size - (size_t)n, " crc=%08x\n", crc);
}

static int read_marker(const char *dir, uint64_t *commit, uint64_t *term, char *errmsg,
		       size_t errlen)
{
	unsigned char *buf;
	char text[128], check[128];
	size_t len;
	unsigned long long c, t;
	unsigned crc;
	int rv, n = 0;

	rv = read_all(dir, STORAGE_MARKER_FILE, &buf, &len, errmsg, errlen);
	if (rv != 0)
		return rv;
	snprintf(text, sizeof text, "%.*s", (int)(len < sizeof text ? len : sizeof text - 1),
		 (const char *)buf);
	free(buf);
	if (sscanf(text, "canopy-state 1 commit=%llu term=%llu crc=%x\n%n", &c, &t, &crc, &n) != 3 ||
	    (size_t)n != len || format_marker(check, sizeof check, c, t) != n ||
	    strcmp(check, text) != 0) {
		snprintf(errmsg, errlen,
			 "storage: %s/%s is damaged (it records the committed index this node "
			 "reached); if the raft files are known good, delete it; otherwise %s",
			 dir, STORAGE_MARKER_FILE, STORAGE_REMEDY);
		return -EBADMSG;
	}
	*commit = c;
	*term = t;
	return 0;
}

/* Replace dir/path by `len` bytes through tmp: write, fsync, rename, fsync
 * the directory. A crash leaves the old file or the new one, never a mix. */
static int write_file_atomic(const char *path, const char *tmp, const char *dir,
			     const void *buf, size_t len)
{
	int fd, rv = 0;
	ssize_t n;

	fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
	if (fd < 0)
		return -errno;
	n = write(fd, buf, len);
	if (n < 0 || (size_t)n != len)
		rv = n < 0 ? -errno : -ENOSPC; /* a short write of a small file: out of space */
	if (rv == 0 && fsync(fd) != 0)
		rv = -errno;
	if (close(fd) != 0 && rv == 0)
		rv = -errno;
	if (rv == 0 && rename(tmp, path) != 0)
		rv = -errno;
	if (rv != 0) {
		unlink(tmp);
		return rv;
	}
	/* Make the rename durable. */
	fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (fd >= 0) {
		fsync(fd);
		close(fd);
	}
	return 0;
}

static int write_marker_file(const char *path, const char *tmp, const char *dir,
			     uint64_t commit, uint64_t term)
{
	char text[128];
	int len = format_marker(text, sizeof text, commit, term);

	return write_file_atomic(path, tmp, dir, text, (size_t)len);
}

int storage_marker_write(const char *data_dir, uint64_t commit, uint64_t term)
{
	char path[1100], tmp[1100];
	snprintf(path, sizeof path, "%s/%s", data_dir, STORAGE_MARKER_FILE);
	snprintf(tmp, sizeof tmp, "%s/%s.tmp", data_dir, STORAGE_MARKER_FILE);
	return write_marker_file(path, tmp, data_dir, commit, term);
}

/* ---- the whole check ----------------------------------------------------- */

int storage_inspect(const char *data_dir, struct storage_info *out, char *errmsg, size_t errlen)
{
	struct storage_info info;
	struct listing l;
	struct metadata md[2];
	const struct metadata *cur = NULL;
	size_t i, newest_open = (size_t)-1;
	uint64_t next = 0;
	bool raft_files;
	int rv;

	memset(&info, 0, sizeof info);
	rv = list_dir(data_dir, &l, errmsg, errlen);
	if (rv != 0)
		return rv;
	if (l.n_segs > 1) /* qsort's base must not be NULL, even for 0 items */
		qsort(l.segs, l.n_segs, sizeof *l.segs, segment_cmp);
	if (l.n_snaps > 1)
		qsort(l.snaps, l.n_snaps, sizeof *l.snaps, snapshot_cmp);
	raft_files = l.n_segs > 0 || l.n_snaps > 0 || l.metadata[0] || l.metadata[1];
	info.empty = !raft_files;
	info.has_marker = l.marker;

	if (l.marker) {
		rv = read_marker(data_dir, &info.marker_commit, &info.marker_term, errmsg, errlen);
		if (rv != 0)
			goto out;
	}
	if (!raft_files) {
		if (l.marker && info.marker_commit > 0) {
			snprintf(errmsg, errlen,
				 "storage: data dir %s has no raft files (metadata, segments, "
				 "snapshots) but %s records that this node had committed up to index "
				 "%" PRIu64 " in term %" PRIu64
				 ": its raft state was deleted and it would start empty; %s",
				 data_dir, STORAGE_MARKER_FILE, info.marker_commit, info.marker_term,
				 STORAGE_REMEDY);
			rv = -ENODATA;
		}
		goto out;
	}

	/* Metadata: the higher version wins; both at one version is corrupt
	 * (src/uv_metadata.c: uvMetadataLoad). */
	for (i = 0; i < 2; i++) {
		if (!l.metadata[i]) {
			md[i].valid = false;
			continue;
		}
		rv = load_metadata(data_dir, (int)i + 1, &md[i], errmsg, errlen);
		if (rv != 0)
			goto out;
	}
	if (md[0].valid && md[1].valid && md[0].version == md[1].version) {
		snprintf(errmsg, errlen,
			 "storage: %s/metadata1 and metadata2 are both at version %" PRIu64 "; %s",
			 data_dir, md[0].version, STORAGE_REMEDY);
		rv = -EBADMSG;
		goto out;
	}
	if (md[0].valid && (!md[1].valid || md[0].version > md[1].version))
		cur = &md[0];
	else if (md[1].valid)
		cur = &md[1];
	if (cur) {
		info.term = cur->term;
		info.voted_for = cur->voted_for;
	}

	/* Snapshots: libraft skips a .meta whose data file is missing or empty
	 * (an unfinished snapshot, src/uv_snapshot.c: UvSnapshotInfoAppendIfMatch).
	 * Every other one must be whole; the newest is the one loaded. */
	for (i = 0; i < l.n_snaps; i++) {
		const struct snapshot *sn = &l.snaps[i];
		char path[1300];
		struct stat st;
		snprintf(path, sizeof path, "%s/%s", data_dir, sn->data);
		if (stat(path, &st) != 0 || st.st_size == 0)
			continue;
		rv = check_snapshot_meta(data_dir, sn, errmsg, errlen);
		if (rv == 0)
			rv = check_snapshot_data(data_dir, sn, errmsg, errlen);
		if (rv != 0)
			goto out;
		info.n_snapshots++;
		info.snapshot_index = sn->index;
		info.snapshot_term = sn->term;
	}

	/* Closed segments: each whole, and together one contiguous range that
	 * starts at 1 or within the snapshot (src/uv_segment.c: uvSegmentFilter
	 * would otherwise drop older non-contiguous ones without a word). */
	for (i = 0; i < l.n_segs && !l.segs[i].open; i++) {
		const struct segment *s = &l.segs[i];
		if (i == 0) {
			uint64_t want = info.snapshot_index + 1;
			if (s->first > want) {
				snprintf(errmsg, errlen,
					 "storage: entries %" PRIu64 "..%llu are missing from %s: the "
					 "oldest segment is %s and %s; %s",
					 want, s->first - 1, data_dir, s->name,
					 info.snapshot_index ? "the newest snapshot ends before it"
							     : "there is no snapshot",
					 STORAGE_REMEDY);
				rv = -ENODATA;
				goto out;
			}
			info.first_index = s->first;
		} else if (s->first != next) {
			snprintf(errmsg, errlen,
				 "storage: segments in %s are not contiguous: %s follows %s (%s "
				 "%" PRIu64 "); %s",
				 data_dir, s->name, l.segs[i - 1].name,
				 s->first > next ? "a segment is missing from index" : "overlap at",
				 next, STORAGE_REMEDY);
			rv = s->first > next ? -ENODATA : -EBADMSG;
			goto out;
		}
		rv = check_closed(data_dir, s, errmsg, errlen);
		if (rv != 0)
			goto out;
		next = s->end + 1;
		info.n_closed++;
	}

	/* Open segments: find the newest one with data first, since only there
	 * may a torn last write be accepted. */
	for (i = l.n_segs; i > 0 && l.segs[i - 1].open; i--) {
		char path[1300];
		struct stat st;
		snprintf(path, sizeof path, "%s/%s", data_dir, l.segs[i - 1].name);
		if (newest_open == (size_t)-1 && stat(path, &st) == 0 && st.st_size > 0) {
			/* all-zero files are skipped by check_open; find the last
			 * one that is not all zero */
			unsigned char *buf;
			size_t len;
			if (read_all(data_dir, l.segs[i - 1].name, &buf, &len, errmsg, errlen) == 0) {
				if (!all_zero(buf, 0, len))
					newest_open = i - 1;
				free(buf);
			}
		}
	}
	if (next == 0)
		next = info.snapshot_index + 1;
	for (i = 0; i < l.n_segs; i++) {
		const struct segment *s = &l.segs[i];
		uint64_t n;
		bool data;
		size_t torn;
		if (!s->open)
			continue;
		rv = check_open(data_dir, s, i == newest_open, &n, &data, &torn, errmsg, errlen);
		if (rv != 0)
			goto out;
		info.n_open++;
		if (data && info.first_index == 0)
			info.first_index = next;
		next += n;
		if (torn)
			snprintf(info.warning, sizeof info.warning,
				 "%s ends with a torn write at byte %zu (a crash while appending); "
				 "libraft drops it",
				 s->name, torn);
	}
	info.last_index = next - 1 > info.snapshot_index ? next - 1 : info.snapshot_index;

	if (cur == NULL) {
		/* raft_bootstrap writes metadata before any segment, and a term is
		 * always stored before entries of that term: log without metadata
		 * means it was lost, and libraft would restart at term 0 with no
		 * vote -- free to vote twice in a term. */
		snprintf(errmsg, errlen,
			 "storage: %s/metadata1 and metadata2 are missing or unreadable but the "
			 "data dir holds a raft log up to index %" PRIu64
			 ": term and vote would reset to 0; %s",
			 data_dir, info.last_index, STORAGE_REMEDY);
		rv = -ENODATA;
		goto out;
	}
	if (info.has_marker && info.last_index < info.marker_commit) {
		snprintf(errmsg, errlen,
			 "storage: %s holds raft entries only up to index %" PRIu64
			 " but this node had committed up to %" PRIu64 " (%s): entries %" PRIu64
			 "..%" PRIu64 " are missing (a deleted or lost segment); %s",
			 data_dir, info.last_index, info.marker_commit, STORAGE_MARKER_FILE,
			 info.last_index + 1, info.marker_commit, STORAGE_REMEDY);
		rv = -ENODATA;
		goto out;
	}
	if (info.has_marker && info.term < info.marker_term) {
		snprintf(errmsg, errlen,
			 "storage: %s/metadata%d records term %" PRIu64 " but this node had reached "
			 "term %" PRIu64 " (%s): the metadata went back in time (replaced or "
			 "restored alone); %s",
			 data_dir, cur == &md[0] ? 1 : 2, info.term, info.marker_term,
			 STORAGE_MARKER_FILE, STORAGE_REMEDY);
		rv = -ENODATA;
		goto out;
	}
	if (l.corrupt && info.warning[0] == '\0')
		snprintf(info.warning, sizeof info.warning,
			 "%u file(s) named corrupt-* (e.g. %s) were moved aside by libraft in an "
			 "earlier run; they are not read",
			 l.corrupt, l.corrupt_name);
	rv = 0;
out:
	listing_free(&l);
	if (out)
		*out = info;
	return rv;
}

int storage_check(const char *data_dir, char *errmsg, size_t errlen)
{
	return storage_inspect(data_dir, NULL, errmsg, errlen);
}

/* ---- health -------------------------------------------------------------- */

const char *storage_state_name(enum storage_state s)
{
	switch (s) {
	case STORAGE_FULL:
		return "storage_full";
	case STORAGE_ERROR:
		return "error";
	default:
		return "ok";
	}
}

bool storage_health_update(struct storage_health *h, const char *data_dir,
			   const struct storage_marker *m, uint64_t stuck_ms,
			   const char *io_errmsg, uint64_t now_ms, uint64_t *checked_ms)
{
	enum storage_state before = h->state;
	int64_t free_bytes;

	if (*checked_ms != 0 && now_ms - *checked_ms < 1000)
		return false;
	*checked_ms = now_ms ? now_ms : 1;
	free_bytes = storage_free_bytes(data_dir);
	if (free_bytes >= 0 && free_bytes < (int64_t)STORAGE_SEGMENT_SIZE) {
		h->state = STORAGE_FULL;
		snprintf(h->detail, sizeof h->detail,
			 "%.200s: %lld bytes free, libraft needs %u for each new log segment%s", data_dir,
			 (long long)free_bytes, STORAGE_SEGMENT_SIZE,
			 stuck_ms >= 1000 ? "; appends are not being stored" : "");
	} else if (m && m->last_errno == ENOSPC) {
		h->state = STORAGE_FULL;
		snprintf(h->detail, sizeof h->detail, "%.200s: %s", m->path, strerror(ENOSPC));
	} else if (stuck_ms >= 1000) {
		h->state = STORAGE_ERROR;
		snprintf(h->detail, sizeof h->detail, "%.200s: appends not stored for %llu ms%s%.200s",
			 data_dir, (unsigned long long)stuck_ms,
			 io_errmsg && io_errmsg[0] ? ": " : "", io_errmsg ? io_errmsg : "");
	} else if (m && m->last_errno != 0) {
		h->state = STORAGE_ERROR;
		snprintf(h->detail, sizeof h->detail, "%.200s: %s", m->path, strerror(m->last_errno));
	} else {
		h->state = STORAGE_OK;
		h->detail[0] = '\0';
	}
	return h->state != before;
}

int64_t storage_free_bytes(const char *dir)
{
	struct statvfs sv;
	if (statvfs(dir, &sv) != 0)
		return -errno;
	return (int64_t)sv.f_bavail * (int64_t)sv.f_frsize;
}

/* ---- marker writes on the thread pool ------------------------------------ */

int storage_marker_init(struct storage_marker *m, uv_loop_t *loop, const char *data_dir,
			char *errmsg, size_t errlen)
{
	int n;

	memset(m, 0, sizeof *m);
	m->loop = loop;
	n = snprintf(m->path, sizeof m->path, "%s/%s", data_dir, STORAGE_MARKER_FILE);
	if (n < 0 || (size_t)n >= sizeof m->path) {
		snprintf(errmsg, errlen, "data_dir %s: path too long", data_dir);
		return -ENAMETOOLONG;
	}
	snprintf(m->tmp_path, sizeof m->tmp_path, "%s.tmp", m->path);
	m->work.data = m;
	return 0;
}

static void marker_dir(const struct storage_marker *m, char *dir, size_t size)
{
	size_t len = strlen(m->path) - strlen(STORAGE_MARKER_FILE) - 1;
	snprintf(dir, size, "%.*s", (int)len, m->path);
}

static void marker_work(uv_work_t *w)
{
	struct storage_marker *m = w->data;
	char dir[1024];
	marker_dir(m, dir, sizeof dir);
	m->work_errno = -write_marker_file(m->path, m->tmp_path, dir, m->work_commit, m->work_term);
}

static void marker_after(uv_work_t *w, int status)
{
	struct storage_marker *m = w->data;
	m->busy = false;
	if (status != 0)
		return;
	m->last_errno = m->work_errno;
	if (m->work_errno == 0) {
		m->written_commit = m->work_commit;
		m->written_term = m->work_term;
	} else {
		m->errors++;
	}
}

void storage_marker_note(struct storage_marker *m, uint64_t commit, uint64_t term,
			 uint64_t now_ms)
{
	if (commit > m->commit)
		m->commit = commit; /* never moves back */
	if (term > m->term)
		m->term = term;
	if (m->busy || m->loop == NULL)
		return;
	if (m->commit == m->written_commit && m->term == m->written_term && m->last_errno == 0)
		return;
	if (m->last_write_ms != 0 && now_ms - m->last_write_ms < 1000)
		return;
	m->last_write_ms = now_ms ? now_ms : 1;
	m->work_commit = m->commit;
	m->work_term = m->term;
	if (uv_queue_work(m->loop, &m->work, marker_work, marker_after) == 0)
		m->busy = true;
}

int storage_marker_flush(struct storage_marker *m)
{
	char dir[1024];
	int rv;

	if (m->loop == NULL || m->busy)
		return m->busy ? -EBUSY : 0;
	if (m->commit == m->written_commit && m->term == m->written_term)
		return 0;
	marker_dir(m, dir, sizeof dir);
	rv = write_marker_file(m->path, m->tmp_path, dir, m->commit, m->term);
	m->last_errno = -rv;
	if (rv == 0) {
		m->written_commit = m->commit;
		m->written_term = m->term;
	} else {
		m->errors++;
	}
	return rv;
}

/* ---- the recovery entry's term (for raft/recover.h) ----------------------- */

int storage_restamp_entry(const char *data_dir, uint64_t index, uint64_t term, char *errmsg,
			  size_t errlen)
{
	char name[64], path[1300], tmp[1300];
	unsigned char *buf;
	size_t len, off = 8, end;
	uint64_t n;
	const char *why = "";
	int rv;

	/* src/uv.h: UV__CLOSED_TEMPLATE "%016llu-%016llu" */
	snprintf(name, sizeof name, "%016llu-%016llu", (unsigned long long)index,
		 (unsigned long long)index);
	rv = read_all(data_dir, name, &buf, &len, errmsg, errlen);
	if (rv != 0)
		return rv;
	/* Exactly what uvSegmentCreateClosedWithConfiguration writes: format,
	 * one batch of one RAFT_CHANGE entry, nothing after it. */
	if (len < 8 || get64(buf) != DISK_FORMAT ||
	    load_batch(buf, len, &off, &n, &end, &why) != BATCH_OK || n != 1 || off != len ||
	    buf[8 + 16 + 8] != 3) {
		snprintf(errmsg, errlen,
			 "storage: %s/%s is not the single configuration entry libraft's recovery "
			 "writes%s%s",
			 data_dir, name, why[0] ? ": " : "", why);
		free(buf);
		return -EBADMSG;
	}
	/* The entry header starts after the two crcs and the count. */
	for (int i = 0; i < 8; i++)
		buf[8 + 16 + i] = (unsigned char)(term >> (8 * i));
	n = storage_crc32(buf + 8 + 8, 8 + 16, 0);
	for (int i = 0; i < 4; i++)
		buf[8 + i] = (unsigned char)(n >> (8 * i));
	snprintf(path, sizeof path, "%s/%s", data_dir, name);
	snprintf(tmp, sizeof tmp, "%s/canopy-restamp.tmp", data_dir);
	rv = write_file_atomic(path, tmp, data_dir, buf, len);
	free(buf);
	if (rv != 0)
		snprintf(errmsg, errlen, "storage: cannot rewrite %s: %s", path, strerror(-rv));
	return rv;
}

/* ---- the latest configuration (for raft/recover.h) ------------------------ */

/* Keep the configuration at `index` when it is the latest seen so far. */
static void conf_keep(struct storage_conf *c, uint64_t index, const unsigned char *p, size_t len)
{
	if (len == 0 || len > MAX_CONF_SIZE || index < c->index)
		return;
	free(c->buf);
	c->buf = xmalloc(len);
	memcpy(c->buf, p, len);
	c->len = len;
	c->index = index;
}

/* Walk one segment's batches from index `first`; *next receives the index
 * after its last intact entry. RAFT_CHANGE is entry type 3 (include/raft.h). */
static int conf_walk_segment(const char *dir, const struct segment *s, uint64_t first,
			     struct storage_conf *c, uint64_t *next, char *errmsg, size_t errlen)
{
	unsigned char *buf;
	size_t len, off = 8, end;
	uint64_t n, index = first, i;
	const char *why;
	int rv;

	rv = read_all(dir, s->name, &buf, &len, errmsg, errlen);
	if (rv != 0)
		return rv;
	while (len >= 8 && off < len) {
		size_t at = off, data;
		if (load_batch(buf, len, &off, &n, &end, &why) != BATCH_OK)
			break; /* the zero tail of an open segment, or a torn last write */
		data = at + 16 + 16 * (size_t)n;
		for (i = 0; i < n; i++, index++) {
			const unsigned char *h = buf + at + 16 + 16 * i;
			size_t elen = get32(h + 12);
			if (h[8] == 3)
				conf_keep(c, index, buf + data, elen);
			data += elen;
		}
	}
	free(buf);
	*next = index;
	return 0;
}

int storage_last_configuration(const char *data_dir, struct storage_conf *out, char *errmsg,
			       size_t errlen)
{
	struct listing l;
	uint64_t next = 0;
	size_t i;
	int rv;

	memset(out, 0, sizeof *out);
	rv = list_dir(data_dir, &l, errmsg, errlen);
	if (rv != 0)
		return rv;
	if (l.n_segs > 1)
		qsort(l.segs, l.n_segs, sizeof *l.segs, segment_cmp);
	if (l.n_snaps > 1)
		qsort(l.snaps, l.n_snaps, sizeof *l.snaps, snapshot_cmp);
	/* The newest whole snapshot: .meta = format, crc, configuration index,
	 * configuration length, configuration (src/uv_snapshot.c). */
	for (i = l.n_snaps; i > 0; i--) {
		const struct snapshot *sn = &l.snaps[i - 1];
		char path[1300];
		struct stat st;
		unsigned char *buf;
		size_t len;
		snprintf(path, sizeof path, "%s/%s", data_dir, sn->data);
		if (stat(path, &st) != 0 || st.st_size == 0)
			continue; /* unfinished: libraft skips it */
		rv = read_all(data_dir, sn->meta, &buf, &len, errmsg, errlen);
		if (rv != 0)
			goto out;
		if (len >= 32 && get64(buf + 24) <= len - 32)
			conf_keep(out, get64(buf + 16), buf + 32, (size_t)get64(buf + 24));
		free(buf);
		next = sn->index + 1;
		break;
	}
	/* Closed segments by first index, then open ones in counter order,
	 * which continue where the closed ones end (src/uv_segment.c). */
	for (i = 0; i < l.n_segs; i++) {
		const struct segment *s = &l.segs[i];
		uint64_t after;
		rv = conf_walk_segment(data_dir, s, s->open ? (next ? next : 1) : s->first, out,
				       &after, errmsg, errlen);
		if (rv != 0)
			goto out;
		if (s->open || after > next)
			next = after;
	}
	rv = 0;
out:
	if (rv != 0)
		storage_conf_free(out);
	listing_free(&l);
	return rv;
}

void storage_conf_free(struct storage_conf *c)
{
	free(c->buf);
	memset(c, 0, sizeof *c);
}
