/*
 * raft/tcp_timeout.h -- a bound on how long a raft connection may sit
 * without progress.
 *
 * libraft 0.15's TCP transport (raft_uv_tcp_init) keeps a connection for as
 * long as the kernel does and queues every message behind it. After heavy
 * packet loss the kernel's retransmission timer has backed off to tens of
 * seconds (RFC 6298 §5.5: the RTO doubles on every expiry), so heartbeats,
 * votes and appends wait for the next retransmission long after the path is
 * back: the chaos scenario `loss --long` (40 % for 30 s) saw no ready leader
 * for 19-23 s on a healthy network (docs/known-issues.md).
 *
 * TCP_USER_TIMEOUT (RFC 5482; Linux tcp(7)) makes the kernel drop a
 * connection whose sent data stays unacknowledged for that long; libraft
 * then opens a new one on its next send, with a fresh RTO. This module
 * sets it on every raft socket: it wraps any raft_uv_transport (an
 * operation table like struct raft_io) and sets the option on each stream
 * the inner transport connects or accepts, and exports the setter for the
 * TLS transport, which owns its TCP sockets.
 */
#ifndef CANOPY_RAFT_TCP_TIMEOUT_H
#define CANOPY_RAFT_TCP_TIMEOUT_H

#include <raft.h>
#include <raft/uv.h>
#include <uv.h>

/*
 * Set TCP_USER_TIMEOUT to `ms` on a connected TCP stream. A stream that is
 * not TCP (a socketpair) or a kernel without the option: nothing happens,
 * and -errno is returned for the caller to count; 0 when set.
 */
int tcp_timeout_apply(uv_stream_t *stream, unsigned ms);

/*
 * Make `outer` a transport that behaves as `inner` (initialised already and
 * owned by the caller, who closes it after tcp_timeout_close) and sets
 * TCP_USER_TIMEOUT `ms` on every connection. Hand `outer` to raft_uv_init.
 * Out of memory aborts (common/xalloc.h).
 */
void tcp_timeout_wrap(struct raft_uv_transport *outer, struct raft_uv_transport *inner, unsigned ms);

/* Release what tcp_timeout_wrap allocated (after raft_uv closed `outer`). */
void tcp_timeout_close(struct raft_uv_transport *outer);

/* Connections on which the option could not be set (status, tests). */
unsigned long tcp_timeout_failures(const struct raft_uv_transport *outer);

#endif /* CANOPY_RAFT_TCP_TIMEOUT_H */
