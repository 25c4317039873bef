/*
 * sync/secret.c -- read a secret from a file (see secret.h for the rules).
 */
#include "sync/secret.h"

#include "common/xalloc.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

void secret_free(char *secret)
{
	if (secret == NULL)
		return;
	explicit_bzero(secret, strlen(secret));
	free(secret);
}

static int refuse(char *buf, size_t cap, int rc)
{
	explicit_bzero(buf, cap);
	free(buf);
	return rc;
}

/* Open `file` for reading and check it as a secret file: regular, not
 * readable by group or others. Returns the descriptor, or a negative errno
 * with errmsg filled. */
static int open_checked(const char *file, struct stat *st, char *errmsg, size_t errlen)
{
	int fd, e;

	/* O_NONBLOCK: a FIFO must not block the caller; it is refused below. */
	fd = open(file, O_RDONLY | O_CLOEXEC | O_NOCTTY | O_NONBLOCK);
	if (fd < 0) {
		e = errno;
		snprintf(errmsg, errlen, "cannot read %s: %s", file, strerror(e));
		return -e;
	}
	if (fstat(fd, st) != 0) {
		e = errno;
		close(fd);
		snprintf(errmsg, errlen, "cannot read %s: %s", file, strerror(e));
		return -e;
	}
	if (!S_ISREG(st->st_mode)) {
		close(fd);
		snprintf(errmsg, errlen, "%s is not a regular file", file);
		return -EINVAL;
	}
	if ((st->st_mode & 077) != 0) {
		close(fd);
		snprintf(errmsg, errlen, "%s is readable by group or others (mode %04o); chmod 600 it", file,
			 (unsigned)(st->st_mode & 07777));
		return -EACCES;
	}
	return fd;
}

int secret_check(const char *file, char *errmsg, size_t errlen)
{
	struct stat st;
	int fd = open_checked(file, &st, errmsg, errlen);

	if (fd < 0)
		return fd;
	close(fd);
	return 0;
}

int secret_read(const char *file, char **out, char *errmsg, size_t errlen)
{
	struct stat st;
	size_t n = 0, cap, i;
	char *buf;
	int fd, e;

	fd = open_checked(file, &st, errmsg, errlen);
	if (fd < 0)
		return fd;
	if (st.st_size > SECRET_MAX) {
		close(fd);
		snprintf(errmsg, errlen, "%s is too large (%lld bytes, at most %d)", file, (long long)st.st_size,
			 SECRET_MAX);
		return -EFBIG;
	}
	cap = (size_t)st.st_size; /* at most SECRET_MAX, checked above */
	buf = xmalloc(cap + 1);
	for (;;) {
		ssize_t r = read(fd, buf + n, cap + 1 - n);
		if (r < 0 && errno == EINTR)
			continue;
		if (r < 0) {
			e = errno;
			close(fd);
			snprintf(errmsg, errlen, "cannot read %s: %s", file, strerror(e));
			return refuse(buf, cap + 1, -e);
		}
		if (r == 0)
			break;
		n += (size_t)r;
		if (n > cap) {
			close(fd);
			snprintf(errmsg, errlen, "%s changed while being read", file);
			return refuse(buf, cap + 1, -EAGAIN);
		}
	}
	close(fd);
	buf[n] = '\0';
	if (n > 0 && buf[n - 1] == '\n')
		buf[--n] = '\0';
	if (n > 0 && buf[n - 1] == '\r')
		buf[--n] = '\0';
	if (n == 0) {
		snprintf(errmsg, errlen, "%s is empty", file);
		return refuse(buf, cap + 1, -EINVAL);
	}
	for (i = 0; i < n; i++) {
		unsigned char ch = (unsigned char)buf[i];
		if (ch < 0x20 || ch == 0x7f) {
			snprintf(errmsg, errlen, "%s contains a control character (byte %zu, 0x%02x): "
				 "a secret is one line without CR, LF or NUL", file, i + 1, ch);
			return refuse(buf, cap + 1, -EINVAL);
		}
	}
	*out = buf;
	return 0;
}
