/*
 * raft/lock.c -- the data dir lock. See lock.h.
 */
#include "raft/lock.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <sys/file.h>
#include <unistd.h>

int lock_acquire(const char *data_dir, char *errmsg, size_t errlen)
{
	char path[1100], pid[32] = "";
	ssize_t n;
	int fd, len, err;

	snprintf(path, sizeof path, "%s/%s", data_dir, LOCK_FILE);
	fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC | O_NOFOLLOW, 0600);
	if (fd < 0) {
		err = errno;
		snprintf(errmsg, errlen, "data dir %s: cannot open %s: %s", data_dir, LOCK_FILE,
			 strerror(err));
		return -err;
	}
	if (flock(fd, LOCK_EX | LOCK_NB) != 0) {
		err = errno;
		if (err == EWOULDBLOCK) {
			n = pread(fd, pid, sizeof pid - 1, 0);
			pid[n > 0 ? n : 0] = '\0';
			pid[strcspn(pid, "\n")] = '\0';
			snprintf(errmsg, errlen,
				 "data dir %s is in use by a running canopy-agent%s%s%s: stop it first",
				 data_dir, pid[0] ? " (pid " : "", pid, pid[0] ? ")" : "");
			close(fd);
			return -EBUSY;
		}
		snprintf(errmsg, errlen, "data dir %s: cannot lock %s: %s", data_dir, LOCK_FILE,
			 strerror(err));
		close(fd);
		return -err;
	}
	/* The pid is only for the message above: a failed write changes nothing. */
	len = snprintf(pid, sizeof pid, "%ld\n", (long)getpid());
	if (ftruncate(fd, 0) == 0 && pwrite(fd, pid, (size_t)len, 0) < 0)
		(void)0;
	return fd;
}

void lock_release(int fd)
{
	if (fd < 0)
		return;
	/* closing the last descriptor of the open file description drops the flock */
	close(fd);
}
