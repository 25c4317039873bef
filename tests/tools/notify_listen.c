/*
 * tests/tools/notify_listen.c -- a service manager's end of sd_notify(3) for
 * tests: binds a unix datagram socket at PATH and prints every datagram it
 * receives on one line (newlines inside shown as '|'), flushed at once, until
 * it is killed.
 *
 *   notify_listen PATH
 */
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

int main(int argc, char **argv)
{
	struct sockaddr_un sa = {.sun_family = AF_UNIX};
	char buf[4096];
	ssize_t n;
	int fd;

	if (argc != 2 || strlen(argv[1]) >= sizeof sa.sun_path) {
		fprintf(stderr, "usage: notify_listen PATH (shorter than %zu bytes)\n", sizeof sa.sun_path);
		return 2;
	}
	strcpy(sa.sun_path, argv[1]);
	fd = socket(AF_UNIX, SOCK_DGRAM, 0);
	if (fd < 0 || bind(fd, (struct sockaddr *)&sa, sizeof sa) != 0) {
		perror(argv[1]);
		return 1;
	}
	printf("listening\n");
	fflush(stdout);
	while ((n = recv(fd, buf, sizeof buf - 1, 0)) >= 0) {
		buf[n] = '\0';
		for (ssize_t i = 0; i < n; i++)
			if (buf[i] == '\n')
				buf[i] = '|';
		printf("%s\n", buf);
		fflush(stdout);
	}
	perror("recv");
	return 1;
}
