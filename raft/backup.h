/*
 * raft/backup.h -- a consistent copy of a stopped node's data dir.
 *
 * libraft writes its data dir from several places at once (segment appends
 * on the kernel AIO queue, snapshots from the thread pool, metadata in
 * place, segments removed after a snapshot: src/uv_append.c, src/uv_snapshot.c,
 * src/uv_metadata.c), so a file-by-file copy of a running node's data dir can
 * miss a segment a snapshot just replaced, or pair metadata with a log it was
 * never written with. The copy is therefore taken with the node stopped: the
 * caller holds the data dir lock (raft/lock.h), so no agent writes meanwhile.
 * The source is checked first and the copy after (storage_inspect), so a
 * backup that would not start is never left looking like a good one.
 */
#ifndef CANOPY_RAFT_BACKUP_H
#define CANOPY_RAFT_BACKUP_H

#include <stddef.h>

#include "raft/storage.h"

/*
 * Copy every regular file of data_dir -- libraft's segments, snapshots and
 * metadata, canopy's canopy-state marker, cluster-id and provisioning.log --
 * except the lock and temporary files, into `dest`, which must not exist or
 * be an empty directory (created 0700). Every file and the directory are
 * fsync'd. Fills `info` with what the copy holds (storage_inspect of dest).
 * Returns 0, or a negative errno with errmsg naming the file and the cause
 * (-ENOTEMPTY: dest holds files; -EBADMSG / -ENODATA: the source or the copy
 * fails the start-up check; -ENOENT: the data dir holds no raft log).
 */
int backup_copy(const char *data_dir, const char *dest, struct storage_info *info, char *errmsg,
		size_t errlen);

#endif /* CANOPY_RAFT_BACKUP_H */
