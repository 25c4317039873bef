/*
 * raft/backup.c -- copy a stopped node's data dir. See backup.h.
 */
#include "raft/backup.h"

#include "raft/lock.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

static int copy_file(const char *from_dir, const char *to_dir, const char *name, char *errmsg,
		     size_t errlen)
{
	char from[1300], to[1300], buf[65536];
	int in, out, err = 0;
	ssize_t n;

	snprintf(from, sizeof from, "%s/%s", from_dir, name);
	snprintf(to, sizeof to, "%s/%s", to_dir, name);
	in = open(from, O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
	if (in < 0) {
		err = errno;
		snprintf(errmsg, errlen, "backup: cannot read %s: %s", from, strerror(err));
		return -err;
	}
	out = open(to, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
	if (out < 0) {
		err = errno;
		snprintf(errmsg, errlen, "backup: cannot create %s: %s", to, strerror(err));
		close(in);
		return -err;
	}
	while ((n = read(in, buf, sizeof buf)) != 0) {
		ssize_t off = 0;
		if (n < 0) {
			if (errno == EINTR)
				continue;
			err = errno;
			snprintf(errmsg, errlen, "backup: reading %s: %s", from, strerror(err));
			goto out;
		}
		while (off < n) {
			ssize_t w = write(out, buf + off, (size_t)(n - off));
			if (w < 0) {
				if (errno == EINTR)
					continue;
				err = errno;
				snprintf(errmsg, errlen, "backup: writing %s: %s", to, strerror(err));
				goto out;
			}
			off += w;
		}
	}
	if (fsync(out) != 0) {
		err = errno;
		snprintf(errmsg, errlen, "backup: fsync %s: %s", to, strerror(err));
	}
out:
	close(in);
	if (close(out) != 0 && err == 0) {
		err = errno;
		snprintf(errmsg, errlen, "backup: writing %s: %s", to, strerror(err));
	}
	return -err;
}

/* dest: created 0700, or an existing empty directory. */
static int prepare_dest(const char *dest, char *errmsg, size_t errlen)
{
	DIR *d;
	struct dirent *e;
	int err;

	if (mkdir(dest, 0700) == 0)
		return 0;
	if (errno != EEXIST) {
		err = errno;
		snprintf(errmsg, errlen, "backup: cannot create %s: %s", dest, strerror(err));
		return -err;
	}
	d = opendir(dest);
	if (d == NULL) {
		err = errno;
		snprintf(errmsg, errlen, "backup: %s: %s", dest, strerror(err));
		return -err;
	}
	while ((e = readdir(d)) != NULL) {
		if (strcmp(e->d_name, ".") != 0 && strcmp(e->d_name, "..") != 0) {
			snprintf(errmsg, errlen,
				 "backup: %s is not empty (it holds %s): back up into a new directory",
				 dest, e->d_name);
			closedir(d);
			return -ENOTEMPTY;
		}
	}
	closedir(d);
	return 0;
}

static int sync_dir(const char *dir, char *errmsg, size_t errlen)
{
	int fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC), err = 0;
	if (fd < 0 || fsync(fd) != 0) {
		err = errno;
		snprintf(errmsg, errlen, "backup: fsync %s: %s", dir, strerror(err));
	}
	if (fd >= 0)
		close(fd);
	return -err;
}

int backup_copy(const char *data_dir, const char *dest, struct storage_info *info, char *errmsg,
		size_t errlen)
{
	struct storage_info src;
	DIR *d;
	struct dirent *e;
	size_t len;
	int rv;

	rv = storage_inspect(data_dir, &src, errmsg, errlen);
	if (rv != 0)
		return rv;
	if (src.empty) {
		snprintf(errmsg, errlen, "backup: data dir %s holds no raft log: nothing to back up",
			 data_dir);
		return -ENOENT;
	}
	rv = prepare_dest(dest, errmsg, errlen);
	if (rv != 0)
		return rv;
	d = opendir(data_dir);
	if (d == NULL) {
		rv = -errno;
		snprintf(errmsg, errlen, "backup: cannot list %s: %s", data_dir, strerror(errno));
		return rv;
	}
	while ((e = readdir(d)) != NULL) {
		char path[1300];
		struct stat st;
		len = strlen(e->d_name);
		if (strcmp(e->d_name, LOCK_FILE) == 0 || (len > 4 && strcmp(e->d_name + len - 4, ".tmp") == 0))
			continue; /* the lock is per process; .tmp files are unfinished writes */
		snprintf(path, sizeof path, "%s/%s", data_dir, e->d_name);
		if (lstat(path, &st) != 0 || !S_ISREG(st.st_mode))
			continue;
		rv = copy_file(data_dir, dest, e->d_name, errmsg, errlen);
		if (rv != 0)
			break;
	}
	closedir(d);
	if (rv == 0)
		rv = sync_dir(dest, errmsg, errlen);
	if (rv != 0)
		return rv;
	/* The copy must start exactly as the original would. */
	rv = storage_inspect(dest, info, errmsg, errlen);
	if (rv != 0)
		return rv;
	if (info->last_index != src.last_index || info->term != src.term) {
		snprintf(errmsg, errlen,
			 "backup: the copy in %s ends at index %llu term %llu, the data dir at %llu term %llu",
			 dest, (unsigned long long)info->last_index, (unsigned long long)info->term,
			 (unsigned long long)src.last_index, (unsigned long long)src.term);
		return -EIO;
	}
	return 0;
}
