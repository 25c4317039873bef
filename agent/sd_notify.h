/*
 * agent/sd_notify.h -- readiness, watchdog and stopping notices to the
 * service manager (systemd's Type=notify, sd_notify(3) protocol).
 *
 * The protocol is one datagram of "KEY=VALUE\n" lines to the AF_UNIX socket
 * named by $NOTIFY_SOCKET (a path, or "@name" for the abstract namespace).
 * It is written here rather than taken from libsystemd: the whole protocol
 * is a sendto(), and linking libsystemd would bring a library (and its
 * dependencies) into every build, including the non-systemd hosts and the
 * containers the agent also runs in, for one system call.
 *
 * Without $NOTIFY_SOCKET (not started by systemd with Type=notify) every
 * call does nothing and succeeds.
 */
#ifndef CANOPY_AGENT_SD_NOTIFY_H
#define CANOPY_AGENT_SD_NOTIFY_H

#include <stddef.h>
#include <stdint.h>

/*
 * Send `state` ("READY=1", "WATCHDOG=1", "STOPPING=1", "STATUS=...", several
 * separated by newlines) to $NOTIFY_SOCKET. Never blocks (a full receive
 * queue is an error, not a wait). Returns 0 (also when $NOTIFY_SOCKET is
 * unset) or a negative errno with the socket and the cause in errmsg.
 */
int sdnotify_send(const char *state, char *errmsg, size_t errlen);

/*
 * The watchdog interval the service manager expects pings within
 * ($WATCHDOG_USEC, for this process: $WATCHDOG_PID unset or ours), in
 * microseconds; 0 when there is no watchdog.
 */
uint64_t sdnotify_watchdog_usec(void);

#endif
