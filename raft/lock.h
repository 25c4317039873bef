/*
 * raft/lock.h -- one process at a time in a data dir.
 *
 * Why: libraft 0.15 takes no lock of its own on the directory it writes
 * (src/uv.c opens it and goes). Two processes in one data dir -- a second
 * agent started by mistake, or the offline `--recover-members` / `--backup`
 * run against a live agent -- would interleave segment writes and metadata
 * versions, which is exactly the storage damage raft/storage.h refuses to
 * start on, only found later. The agent holds an exclusive flock(2) on
 * <data_dir>/canopy.lock for as long as its raft node lives; the kernel
 * drops it when the process dies (SIGKILL included), so a crash never leaves
 * a stale lock behind. The file holds the holder's pid, for the message.
 */
#ifndef CANOPY_RAFT_LOCK_H
#define CANOPY_RAFT_LOCK_H

#include <stddef.h>

/* Name of the lock file inside the data dir (never part of a backup). */
#define LOCK_FILE "canopy.lock"

/*
 * Take the lock of data_dir (which must exist) without waiting. Returns an
 * open descriptor (>= 0) to hand to lock_release(), or -EBUSY when another
 * process holds it (errmsg names its pid when known and says to stop it),
 * or another negative errno when the file cannot be opened.
 */
int lock_acquire(const char *data_dir, char *errmsg, size_t errlen);

/*
 * For the offline modes that write into a data dir the agent owns
 * (--recover-members, --backup, which may create the lock file): 0 when this
 * process runs as the owner of data_dir, else -EPERM with errmsg naming the
 * owner -- a file root writes there (mode 0600) would be unreadable to an
 * agent running as `canopy`, which would then fail to start.
 */
int lock_check_owner(const char *data_dir, char *errmsg, size_t errlen);

/* Release a lock taken by lock_acquire (fd < 0: nothing to do). */
void lock_release(int fd);

#endif /* CANOPY_RAFT_LOCK_H */
