/*
 * raft/storage.h -- checks of the raft data directory before libraft reads it,
 * a small marker of committed progress, and the node's storage health.
 *
 * Why: libraft 0.15 recovers from damage by itself, silently and unsafely. A
 * closed segment whose checksum fails is renamed "corrupt-*" and the server
 * starts with the entries before it; a deleted segment or metadata file is
 * simply not there; a truncated LZ4 snapshot makes raft_start() spin forever
 * (src/compress.c: Decompress() loops while LZ4F_decompress() asks for more
 * input that never comes). A voter that forgot committed entries can break
 * Raft's safety for the whole cluster, so canopy reads the on-disk format
 * itself first and refuses to start, naming the file and the remedy.
 *
 * The format rules come from libraft 0.15's own source, cited where used:
 * src/uv_encoding.c, src/uv_segment.c, src/uv_metadata.c, src/uv_snapshot.c,
 * src/uv_list.c, src/byte.c, src/compress.c. All integers are little endian.
 *
 * Missing files cannot be seen from what is left, so canopy also keeps
 * <data_dir>/canopy-state: the highest index known committed *and* stored on
 * this node, and the term, rewritten atomically (tmp + fsync + rename) at most
 * once a second and at clean shutdown. A log that ends below it means
 * committed entries are gone. Its limit: a data dir wiped entirely, marker
 * included, looks like a new node; only the cluster can tell (docs).
 */
#ifndef CANOPY_RAFT_STORAGE_H
#define CANOPY_RAFT_STORAGE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <uv.h>

/* Name of canopy's marker file inside the data dir. */
#define STORAGE_MARKER_FILE "canopy-state"

/* What storage_inspect() found. */
struct storage_info {
	bool empty;              /* no raft file at all (a new node) */
	uint64_t term, voted_for; /* from metadata1/metadata2 (0: none) */
	uint64_t snapshot_index, snapshot_term; /* newest snapshot (0: none) */
	uint64_t first_index;    /* first entry in the segments (0: none) */
	uint64_t last_index;     /* last entry the log holds (segments or snapshot) */
	unsigned n_closed, n_open, n_snapshots;
	bool has_marker;
	uint64_t marker_commit, marker_term; /* from canopy-state */
	/* Something libraft tolerates and canopy accepts, worth a log line
	 * (a torn last batch in the newest open segment, "corrupt-*" files
	 * left by an earlier run); "" if none. */
	char warning[512];
};

/*
 * Read every raft file in data_dir and verify it the way libraft will load it
 * (metadata, every batch checksum of every segment, contiguity of the closed
 * segments, snapshot .meta checksum, snapshot data length/format), then compare
 * the log with the canopy-state marker. Returns 0, or a negative errno with a
 * one-line cause in errmsg that names the file and what to do:
 *   -EBADMSG  a file is damaged (checksum, format, truncation)
 *   -ENODATA  committed state is missing (deleted segment or metadata, wiped dir)
 *   -EFBIG    a file is larger than any file canopy writes (over a snapshot
 *             a member may send, raft/wire_check.h): refused before reading it
 *   -EIO etc. the directory or a file could not be read
 * `info` may be NULL.
 */
int storage_inspect(const char *data_dir, struct storage_info *info, char *errmsg,
		    size_t errlen);

/*
 * The latest configuration the data dir holds, as libraft will restore it at
 * start (src/raft.c: the last RAFT_CHANGE entry of the log, else the newest
 * snapshot's): `index` is the log index it comes from, `buf`/`len` its
 * encoding (src/configuration.c: configurationEncode; decode it with
 * recover_decode_configuration, raft/recover.h). Only meaningful on a data
 * dir storage_inspect() accepted: the files are walked, not re-checked (a torn
 * last batch ends the walk, as it ends libraft's load).
 */
struct storage_conf {
	uint64_t index;     /* 0: the data dir holds no configuration */
	unsigned char *buf; /* malloc'd; storage_conf_free() */
	size_t len;
};

/* Returns 0 (out->index 0 when there is none) or a negative errno with errmsg. */
int storage_last_configuration(const char *data_dir, struct storage_conf *out, char *errmsg,
			       size_t errlen);
void storage_conf_free(struct storage_conf *c);

/*
 * Set the term of the single entry in the closed segment "index-index" of
 * data_dir (the file libraft's raft_recover writes: src/uv_segment.c,
 * uvSegmentCreateClosedWithConfiguration) to `term`, and its header checksum
 * with it; the file is replaced atomically (write, fsync, rename, fsync the
 * directory). Why: libraft writes that entry with term 1 whatever the log
 * holds (raft/recover.h says what that breaks). -EBADMSG when the file is
 * not exactly one RAFT_CHANGE entry; other negative errnos from the file
 * system. The caller holds the data dir lock and no libraft instance has
 * the data dir open.
 */
int storage_restamp_entry(const char *data_dir, uint64_t index, uint64_t term, char *errmsg,
			  size_t errlen);

/* storage_inspect() without the details. */
int storage_check(const char *data_dir, char *errmsg, size_t errlen);

/* The remedy text every refusal ends with. */
#define STORAGE_REMEDY                                                                      \
	"move this data dir aside and rejoin this node as a new member: `canopyctl cluster "   \
	"remove ID` then `canopyctl cluster add ID@RAFT_ADDRESS` from a healthy node; never "  \
	"restore an old backup of it as a member (docs/operations.md, Storage damage)"

/*
 * libraft's CRC32 (src/byte.c: byteCrc32): polynomial 0x04c11db7, MSB first,
 * no reflection, no final xor; `init` chains calls.
 */
uint32_t storage_crc32(const void *buf, size_t len, uint32_t init);

/* ---- storage health (for /v1/status and the log) ------------------------ */

struct storage_marker;

enum storage_state { STORAGE_OK, STORAGE_FULL, STORAGE_ERROR };

struct storage_health {
	enum storage_state state;
	char detail[512];
};

const char *storage_state_name(enum storage_state s); /* "ok" | "storage_full" | "error" */

/*
 * Re-evaluate `h` (cheap; call it every loop iteration, it looks at the disk
 * at most once a second). storage_full: the file system of data_dir has less
 * free space than one libraft open segment (libraft then cannot prepare its
 * next segment and appends stall: a leader's barrier never commits), or the
 * marker write failed with ENOSPC. error: appends have not been stored for
 * `stuck_ms` >= 1 s for another reason (io_errmsg, libraft's last I/O error,
 * is quoted), or the marker write failed otherwise. Returns true when the
 * state changed (log it).
 */
bool storage_health_update(struct storage_health *h, const char *data_dir,
			   const struct storage_marker *m, uint64_t stuck_ms,
			   const char *io_errmsg, uint64_t now_ms, uint64_t *checked_ms);

/* ---- the canopy-state marker --------------------------------------------- */

struct storage_marker {
	uv_loop_t *loop;
	char path[1024], tmp_path[1040];
	uint64_t commit, term;       /* last values handed to storage_marker_note */
	uint64_t written_commit, written_term;
	uint64_t last_write_ms;
	bool busy;                   /* a write is running on the thread pool */
	uv_work_t work;
	uint64_t work_commit, work_term;
	int work_errno;              /* result of the last write: 0 or errno */
	int last_errno;              /* the last write's errno, as seen on the loop */
	uint64_t errors;             /* failed writes */
};

/* Set up the marker for data_dir (nothing is written yet). Returns 0 or -errno. */
int storage_marker_init(struct storage_marker *m, uv_loop_t *loop, const char *data_dir,
			char *errmsg, size_t errlen);

/*
 * Note the current commit index (already stored on this node) and term; call
 * it as often as you like from the loop: the file is rewritten on the thread
 * pool when a value changed and the last write is at least 1 s old.
 */
void storage_marker_note(struct storage_marker *m, uint64_t commit, uint64_t term,
			 uint64_t now_ms);

/* Write the noted values now, synchronously (clean shutdown). Returns 0 or -errno. */
int storage_marker_flush(struct storage_marker *m);

/* Write a marker file directly (start-up and tests). Returns 0 or -errno. */
int storage_marker_write(const char *data_dir, uint64_t commit, uint64_t term);

/*
 * Free bytes for an unprivileged writer on the file system of `dir`, or -errno.
 * libraft preallocates each open segment to 8 MiB (src/uv.h:
 * UV__MAX_SEGMENT_SIZE), so less than that means its next segment fails.
 */
int64_t storage_free_bytes(const char *dir);

#define STORAGE_SEGMENT_SIZE (8u * 1024u * 1024u)

#endif /* CANOPY_RAFT_STORAGE_H */
