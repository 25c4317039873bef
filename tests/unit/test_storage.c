/*
 * tests/unit/test_storage.c -- storage_inspect() on crafted data dirs in
 * libraft 0.15's on-disk format: intact files pass; byte flips, missing
 * segments, missing metadata, damaged or truncated snapshots and a log below
 * the canopy-state marker are refused with the file named; a torn last write
 * in the newest open segment is accepted (as libraft does).
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include <errno.h>

#include <cmocka.h>

#include "raft/storage.h"

struct buf {
	unsigned char *p;
	size_t len, cap;
};

static void put(struct buf *b, const void *p, size_t n)
{
	if (b->len + n > b->cap) {
		b->cap = (b->len + n) * 2 + 64;
		b->p = realloc(b->p, b->cap);
	}
	memcpy(b->p + b->len, p, n);
	b->len += n;
}

static void put64(struct buf *b, uint64_t v)
{
	unsigned char x[8];
	int i;
	for (i = 0; i < 8; i++)
		x[i] = (unsigned char)(v >> (8 * i));
	put(b, x, 8);
}

static void put32at(unsigned char *p, uint32_t v)
{
	int i;
	for (i = 0; i < 4; i++)
		p[i] = (unsigned char)(v >> (8 * i));
}

static void put32(struct buf *b, uint32_t v)
{
	unsigned char x[4];
	put32at(x, v);
	put(b, x, 4);
}

/* One batch of n command entries of 8 bytes each (src/uv_segment.c layout). */
static void batch(struct buf *b, uint64_t term, unsigned n, unsigned char fill)
{
	struct buf h = {0}, d = {0};
	unsigned i;
	unsigned char e[8];

	put64(&h, n);
	for (i = 0; i < n; i++) {
		unsigned char eh[8] = {1, 0, 0, 0, 8, 0, 0, 0}; /* type command, len 8 */
		put64(&h, term);
		put(&h, eh, 8);
		memset(e, fill + i, sizeof e);
		put(&d, e, 8);
	}
	put32(b, storage_crc32(h.p, h.len, 0));
	put32(b, storage_crc32(d.p, d.len, 0));
	put(b, h.p, h.len);
	put(b, d.p, d.len);
	free(h.p);
	free(d.p);
}

static char dir[256];

static void write_file(const char *name, const void *p, size_t n)
{
	char path[512];
	FILE *f;
	snprintf(path, sizeof path, "%s/%s", dir, name);
	f = fopen(path, "wb");
	assert_non_null(f);
	if (n)
		assert_int_equal(fwrite(p, 1, n, f), n);
	fclose(f);
}

static void remove_file(const char *name)
{
	char path[512];
	snprintf(path, sizeof path, "%s/%s", dir, name);
	assert_int_equal(unlink(path), 0);
}

static void flip(const char *name, long at)
{
	char path[512];
	FILE *f;
	int c;
	snprintf(path, sizeof path, "%s/%s", dir, name);
	f = fopen(path, "r+b");
	assert_non_null(f);
	fseek(f, at, SEEK_SET);
	c = fgetc(f);
	fseek(f, at, SEEK_SET);
	fputc(c ^ 0x01, f);
	fclose(f);
}

static void write_metadata(const char *name, uint64_t version, uint64_t term)
{
	struct buf b = {0};
	put64(&b, 1);
	put64(&b, version);
	put64(&b, term);
	put64(&b, 1);
	write_file(name, b.p, b.len);
	free(b.p);
}

/* closed segment FIRST-END holding END-FIRST+1 entries in one batch each */
static void write_closed(uint64_t first, uint64_t end)
{
	struct buf b = {0};
	char name[64];
	uint64_t i;
	put64(&b, 1);
	for (i = first; i <= end; i++)
		batch(&b, 1, 1, (unsigned char)i);
	snprintf(name, sizeof name, "%016llu-%016llu", (unsigned long long)first,
		 (unsigned long long)end);
	write_file(name, b.p, b.len);
	free(b.p);
}

/* open-N with `n` single-entry batches then zeros up to 64 KiB */
static size_t write_open(unsigned counter, unsigned n)
{
	struct buf b = {0};
	char name[32];
	unsigned i;
	size_t used;
	put64(&b, 1);
	for (i = 0; i < n; i++)
		batch(&b, 1, 1, (unsigned char)(0x40 + i));
	used = b.len;
	while (b.len < 65536) {
		unsigned char z[512] = {0};
		put(&b, z, sizeof z);
	}
	snprintf(name, sizeof name, "open-%u", counter);
	write_file(name, b.p, b.len);
	free(b.p);
	return used;
}

static void write_snapshot(uint64_t term, uint64_t index, size_t cut)
{
	struct buf m = {0}, d = {0}, conf = {0};
	char name[96];
	unsigned char payload[24] = "CNPY\x01\x00\x00\x00\x08\x00\x00\x00";
	uint32_t crc;

	/* configuration: anything non-empty (its decoding is libraft's business) */
	put64(&conf, 1);
	put64(&conf, 0x0102030405060708ull);
	put64(&m, 1);
	put64(&m, 0); /* crc, patched below */
	put64(&m, 1);
	put64(&m, conf.len);
	put(&m, conf.p, conf.len);
	crc = storage_crc32(m.p + 16, 16 + conf.len, 0);
	put32at(m.p + 8, crc);
	snprintf(name, sizeof name, "snapshot-%llu-%llu-100.meta", (unsigned long long)term,
		 (unsigned long long)index);
	write_file(name, m.p, m.len);

	/* LZ4 frame: magic, FLG (v01, independent, content size, content
	 * checksum), BD, content size, HC, one stored block, end mark, checksum */
	put32(&d, 0x184D2204u);
	put(&d, "\x6c\x40", 2);
	put64(&d, sizeof payload);
	put(&d, "\x00", 1);
	put32(&d, 0x80000000u | (uint32_t)sizeof payload);
	put(&d, payload, sizeof payload);
	put32(&d, 0);
	put32(&d, 0xdeadbeef);
	snprintf(name, sizeof name, "snapshot-%llu-%llu-100", (unsigned long long)term,
		 (unsigned long long)index);
	write_file(name, d.p, d.len - cut);
	free(m.p);
	free(d.p);
	free(conf.p);
}

static int setup(void **state)
{
	(void)state;
	snprintf(dir, sizeof dir, "/tmp/canopy-test-storage.XXXXXX");
	assert_non_null(mkdtemp(dir));
	return 0;
}

static int teardown(void **state)
{
	char cmd[300];
	(void)state;
	snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
	return system(cmd);
}

static int inspect(struct storage_info *info, char *err)
{
	err[0] = '\0';
	return storage_inspect(dir, info, err, 1024);
}

static void healthy_log(void)
{
	write_metadata("metadata1", 1, 3);
	write_closed(1, 1);
	write_closed(2, 4);
	write_open(1, 2); /* entries 5, 6 */
	write_open(2, 0); /* preallocated, never written */
}

static void empty_dir_is_a_new_node(void **state)
{
	struct storage_info info;
	char err[1024];
	(void)state;
	assert_int_equal(inspect(&info, err), 0);
	assert_true(info.empty);
}

static void intact_log_passes(void **state)
{
	struct storage_info info;
	char err[1024];
	(void)state;
	healthy_log();
	assert_int_equal(inspect(&info, err), 0);
	assert_int_equal(info.last_index, 6);
	assert_int_equal(info.first_index, 1);
	assert_int_equal(info.term, 3);
	assert_int_equal(info.n_closed, 2);
	assert_string_equal(info.warning, "");
}

static void flipped_byte_in_closed_segment_is_refused(void **state)
{
	struct storage_info info;
	char err[1024];
	(void)state;
	healthy_log();
	flip("0000000000000002-0000000000000004", 48 + 16 + 2); /* batch 2's entry term */
	assert_int_equal(inspect(&info, err), -EBADMSG);
	assert_non_null(strstr(err, "0000000000000002-0000000000000004"));
	assert_non_null(strstr(err, "checksum mismatch"));
	assert_non_null(strstr(err, "canopyctl cluster remove"));
}

static void flipped_byte_in_entry_data_is_refused(void **state)
{
	char err[1024];
	(void)state;
	healthy_log();
	flip("0000000000000001-0000000000000001", 8 + 8 + 24 + 3); /* entry data */
	assert_int_equal(inspect(NULL, err), -EBADMSG);
	assert_non_null(strstr(err, "data checksum mismatch"));
}

static void missing_segment_is_refused(void **state)
{
	char err[1024];
	(void)state;
	healthy_log();
	write_closed(7, 8);
	remove_file("open-1");
	remove_file("open-2");
	remove_file("0000000000000002-0000000000000004");
	assert_int_equal(inspect(NULL, err), -ENODATA);
	assert_non_null(strstr(err, "0000000000000007-0000000000000008"));
}

static void missing_last_segment_is_refused_through_the_marker(void **state)
{
	char err[1024];
	(void)state;
	healthy_log();
	assert_int_equal(storage_marker_write(dir, 5, 3), 0);
	assert_int_equal(inspect(NULL, err), 0);
	remove_file("open-1");
	assert_int_equal(inspect(NULL, err), -ENODATA);
	assert_non_null(strstr(err, "up to index 4"));
	assert_non_null(strstr(err, "committed up to 5"));
}

static void missing_metadata_is_refused(void **state)
{
	char err[1024];
	(void)state;
	healthy_log();
	write_snapshot(1, 4, 0);
	remove_file("metadata1");
	assert_int_equal(inspect(NULL, err), -ENODATA);
	assert_non_null(strstr(err, "metadata1 and metadata2 are missing"));
}

static void metadata_older_than_marker_is_refused(void **state)
{
	char err[1024];
	(void)state;
	healthy_log();
	assert_int_equal(storage_marker_write(dir, 4, 5), 0);
	assert_int_equal(inspect(NULL, err), -ENODATA);
	assert_non_null(strstr(err, "term 3"));
}

static void wiped_dir_with_marker_is_refused(void **state)
{
	char err[1024];
	(void)state;
	assert_int_equal(storage_marker_write(dir, 42, 2), 0);
	assert_int_equal(inspect(NULL, err), -ENODATA);
	assert_non_null(strstr(err, "no raft files"));
}

static void damaged_marker_is_refused(void **state)
{
	char err[1024];
	(void)state;
	healthy_log();
	assert_int_equal(storage_marker_write(dir, 4, 3), 0);
	flip(STORAGE_MARKER_FILE, 22);
	assert_int_equal(inspect(NULL, err), -EBADMSG);
	assert_non_null(strstr(err, STORAGE_MARKER_FILE));
}

static void snapshot_checks(void **state)
{
	struct storage_info info;
	char err[1024];
	(void)state;
	healthy_log();
	write_snapshot(1, 4, 0);
	assert_int_equal(inspect(&info, err), 0);
	assert_int_equal(info.snapshot_index, 4);
	assert_int_equal(info.n_snapshots, 1);

	write_snapshot(1, 4, 6); /* cut into the content checksum and end mark */
	assert_int_equal(inspect(NULL, err), -EBADMSG);
	assert_non_null(strstr(err, "snapshot-1-4-100"));
	assert_non_null(strstr(err, "truncated"));

	write_snapshot(1, 4, 20); /* cut into the block */
	assert_int_equal(inspect(NULL, err), -EBADMSG);

	write_snapshot(1, 4, 0);
	flip("snapshot-1-4-100.meta", 20); /* configuration index */
	assert_int_equal(inspect(NULL, err), -EBADMSG);
	assert_non_null(strstr(err, "snapshot-1-4-100.meta"));
	assert_non_null(strstr(err, "checksum mismatch"));
}

static void snapshot_lets_older_segments_go(void **state)
{
	struct storage_info info;
	char err[1024];
	(void)state;
	write_metadata("metadata1", 1, 2);
	write_snapshot(1, 4, 0);
	write_closed(3, 6); /* trailing entries kept before the snapshot */
	assert_int_equal(inspect(&info, err), 0);
	assert_int_equal(info.last_index, 6);
	remove_file("0000000000000003-0000000000000006");
	write_closed(6, 7);
	assert_int_equal(inspect(&info, err), -ENODATA); /* entry 5 missing */
	assert_non_null(strstr(err, "entries 5..5"));
}

static void torn_last_write_is_accepted(void **state)
{
	struct storage_info info;
	char err[1024];
	size_t used;
	(void)state;
	write_metadata("metadata1", 1, 3);
	write_closed(1, 1);
	used = write_open(1, 3);
	/* tear the last batch: damage its data, zeros stay after it */
	flip("open-1", (long)used - 4);
	assert_int_equal(inspect(&info, err), 0);
	assert_int_equal(info.last_index, 3);
	assert_non_null(strstr(info.warning, "open-1"));
}

static void damage_before_more_data_is_refused(void **state)
{
	char err[1024];
	(void)state;
	write_metadata("metadata1", 1, 3);
	write_closed(1, 1);
	write_open(1, 3);
	flip("open-1", 8 + 24 + 2); /* the first batch's data: later batches follow */
	assert_int_equal(inspect(NULL, err), -EBADMSG);
	assert_non_null(strstr(err, "open-1"));
}

static void torn_write_in_older_open_segment_is_refused(void **state)
{
	char err[1024];
	size_t used;
	(void)state;
	write_metadata("metadata1", 1, 3);
	write_closed(1, 1);
	used = write_open(1, 2);
	write_open(2, 1);
	flip("open-1", (long)used - 4);
	assert_int_equal(inspect(NULL, err), -EBADMSG);
	assert_non_null(strstr(err, "open-1"));
}

static void crc_matches_libraft(void **state)
{
	/* A batch header from a segment written by libraft 0.15 here: one
	 * barrier entry of term 1, 8 bytes; its stored header crc. */
	static const unsigned char hdr[24] = {1, 0, 0, 0, 0, 0, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0,
					      2, 0, 0, 0, 8, 0, 0, 0};
	(void)state;
	assert_int_equal(storage_crc32(hdr, sizeof hdr, 0), 0x37b10316u);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(crc_matches_libraft),
		cmocka_unit_test_setup_teardown(empty_dir_is_a_new_node, setup, teardown),
		cmocka_unit_test_setup_teardown(intact_log_passes, setup, teardown),
		cmocka_unit_test_setup_teardown(flipped_byte_in_closed_segment_is_refused, setup, teardown),
		cmocka_unit_test_setup_teardown(flipped_byte_in_entry_data_is_refused, setup, teardown),
		cmocka_unit_test_setup_teardown(missing_segment_is_refused, setup, teardown),
		cmocka_unit_test_setup_teardown(missing_last_segment_is_refused_through_the_marker, setup, teardown),
		cmocka_unit_test_setup_teardown(missing_metadata_is_refused, setup, teardown),
		cmocka_unit_test_setup_teardown(metadata_older_than_marker_is_refused, setup, teardown),
		cmocka_unit_test_setup_teardown(wiped_dir_with_marker_is_refused, setup, teardown),
		cmocka_unit_test_setup_teardown(damaged_marker_is_refused, setup, teardown),
		cmocka_unit_test_setup_teardown(snapshot_checks, setup, teardown),
		cmocka_unit_test_setup_teardown(snapshot_lets_older_segments_go, setup, teardown),
		cmocka_unit_test_setup_teardown(torn_last_write_is_accepted, setup, teardown),
		cmocka_unit_test_setup_teardown(damage_before_more_data_is_refused, setup, teardown),
		cmocka_unit_test_setup_teardown(torn_write_in_older_open_segment_is_refused, setup, teardown),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
