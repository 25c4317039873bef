/*
 * agent/sd_notify.c -- the sd_notify(3) datagram (see sd_notify.h).
 */
#include "agent/sd_notify.h"

#include <errno.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

int sdnotify_send(const char *state, char *errmsg, size_t errlen)
{
	const char *path = getenv("NOTIFY_SOCKET");
	struct sockaddr_un sa;
	socklen_t salen;
	size_t n;
	int fd, rv = 0;

	if (path == NULL || path[0] == '\0')
		return 0;
	n = strlen(path);
	/* a path or "@abstract"; sd_notify(3) allows nothing else */
	if ((path[0] != '/' && path[0] != '@') || n >= sizeof sa.sun_path) {
		snprintf(errmsg, errlen, "NOTIFY_SOCKET \"%s\": not an absolute path or @name that fits a unix socket",
			 path);
		return -EINVAL;
	}
	memset(&sa, 0, sizeof sa);
	sa.sun_family = AF_UNIX;
	memcpy(sa.sun_path, path, n);
	if (path[0] == '@')
		sa.sun_path[0] = '\0'; /* the abstract namespace: the name is not NUL-terminated */
	salen = (socklen_t)(offsetof(struct sockaddr_un, sun_path) + n + (path[0] == '/'));
	fd = socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0);
	if (fd < 0) {
		rv = -errno;
		snprintf(errmsg, errlen, "NOTIFY_SOCKET %s: socket: %s", path, strerror(errno));
		return rv;
	}
	/* MSG_DONTWAIT: this runs on the event loop; a service manager that does
	 * not read costs a lost notice, not a stalled agent */
	if (sendto(fd, state, strlen(state), MSG_DONTWAIT | MSG_NOSIGNAL, (struct sockaddr *)&sa, salen) < 0) {
		rv = -errno;
		snprintf(errmsg, errlen, "NOTIFY_SOCKET %s: sending \"%s\": %s", path, state, strerror(errno));
	}
	close(fd);
	return rv;
}

uint64_t sdnotify_watchdog_usec(void)
{
	const char *usec = getenv("WATCHDOG_USEC"), *pid = getenv("WATCHDOG_PID");
	unsigned long long v;
	char *end;

	if (usec == NULL || usec[0] == '\0')
		return 0;
	/* WATCHDOG_PID names the process the watchdog is for; a child that
	 * inherited the environment is not it (sd_watchdog_enabled(3)) */
	if (pid != NULL && pid[0] != '\0' && strtoll(pid, NULL, 10) != (long long)getpid())
		return 0;
	errno = 0;
	v = strtoull(usec, &end, 10);
	if (errno != 0 || *end != '\0')
		return 0;
	return v;
}
