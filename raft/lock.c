/*
 * raft/lock.c -- the data dir lock. See lock.h.
 */
#include "raft/lock.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <pwd.h>
#include <sys/file.h>
#include <sys/stat.h>
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

int lock_check_owner(const char *data_dir, char *errmsg, size_t errlen)
{
	struct stat st;
	struct passwd *pw;
	int err;

	if (stat(data_dir, &st) != 0) {
		err = errno;
		snprintf(errmsg, errlen, "data dir %s: %s", data_dir, strerror(err));
		return -err;
	}
	if (st.st_uid == geteuid())
		return 0;
	pw = getpwuid(st.st_uid);
	snprintf(errmsg, errlen,
		 "data dir %s belongs to %s%s(uid %lu), not to this user: run this as that user "
		 "(e.g. runuser -u %s -- canopy-agent ...), so that what it writes stays readable "
		 "by the agent",
		 data_dir, pw ? pw->pw_name : "", pw ? " " : "", (unsigned long)st.st_uid,
		 pw ? pw->pw_name : "OWNER");
	return -EPERM;
}

void lock_release(int fd)
{
	if (fd < 0)
		return;
	/* closing the last descriptor of the open file description drops the flock */
	close(fd);
}
