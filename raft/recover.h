/*
 * raft/recover.h -- bringing a node back as a new cluster after its cluster
 * lost its majority for good (`canopy-agent --recover-members`).
 *
 * A Raft group of 2f+1 voters needs f+1 of them to elect or commit (Raft
 * dissertation §3.4, §3.5); when 2 of 3 hosts are gone for good, the
 * survivor can never again be elected by the old configuration. libraft 0.15
 * offers raft_recover() (include/raft.h; src/uv.c: uvRecover): with the node
 * stopped, it loads the log, closes any open segment and writes one closed
 * segment holding a single RAFT_CHANGE entry with the new configuration at
 * the index after the last one (src/uv_segment.c:
 * uvSegmentCreateClosedWithConfiguration). libraft gives that entry term 1
 * whatever terms the entries before it have, and that is not harmless: a
 * snapshot taken at that index is then named with term 1, and libraft ranks
 * snapshots by term before index (src/uv_snapshot.c: uvSnapshotCompare), so
 * it takes the older snapshot of a higher term for the newest one -- it sends
 * that one to a node that joins (which then waits out libraft's 30 s install
 * timeout, the log entries after it being gone) and would restore it at the
 * next start. recover_write therefore gives the entry the node's current
 * term (storage_restamp_entry, raft/storage.h). On the next start libraft restores that configuration as the latest one
 * (src/raft.c: the last RAFT_CHANGE entry wins), and a one-voter
 * configuration elects itself at once. Every entry the survivor holds --
 * the replicated cursor and object table included -- stays in its log and is
 * committed by the new leader's first entry of its own term (dissertation
 * §3.6.2), so nothing it had is lost.
 *
 * What raft_recover does not know and callers must make sure of: no other
 * member of the old configuration still runs (two clusters would then write
 * to the same target), and the node recovered is the survivor with the
 * highest term and the longest log. The data dir lock (raft/lock.h) keeps
 * this node's own agent out while it runs.
 */
#ifndef CANOPY_RAFT_RECOVER_H
#define CANOPY_RAFT_RECOVER_H

#include <raft.h>
#include <stddef.h>
#include <stdint.h>

#include "raft/storage.h"

/* What the data dir holds now. */
struct recover_state {
	struct storage_info storage;          /* storage_inspect(): term, indexes, marker */
	uint64_t conf_index;                  /* where the latest configuration is (0: none) */
	struct raft_configuration conf;       /* that configuration (empty when none) */
};

/*
 * Read data_dir without writing anything: storage_inspect() (a damaged data
 * dir is refused as at start, with the same -EBADMSG / -ENODATA), then the
 * latest configuration (storage_last_configuration). -ENOENT when the data
 * dir holds no raft log at all: there is nothing to recover. The caller holds
 * the data dir lock. recover_state_close() releases `st` on success.
 */
int recover_read(const char *data_dir, struct recover_state *st, char *errmsg, size_t errlen);
void recover_state_close(struct recover_state *st);

/*
 * Decode a configuration libraft encoded (src/configuration.c:
 * configurationEncode) after wire_check_configuration() accepted it. Returns
 * 0 (`out` initialized; raft_configuration_close it) or -EBADMSG with why.
 */
int recover_decode_configuration(const void *buf, size_t len, struct raft_configuration *out,
				 char *why, size_t whylen);

/*
 * Write `conf` as the new configuration of the node `id` at `address` whose
 * data is in data_dir: raft_init on a raft_uv io (no transport is started,
 * nothing listens) and raft_recover, then raft_close. The caller holds the
 * data dir lock and has checked that `conf` lists `id` as a voter at
 * `address`; then storage_restamp_entry() gives the new entry the node's
 * current term. Returns 0, -EIO with libraft's cause in errmsg, or the
 * restamp's error.
 */
int recover_write(const char *data_dir, uint64_t id, const char *address,
		  const struct raft_configuration *conf, char *errmsg, size_t errlen);

/* "voter" | "standby" | "spare" for a libraft role (RAFT_VOTER, ...). */
const char *recover_role_name(int role);

#endif /* CANOPY_RAFT_RECOVER_H */
