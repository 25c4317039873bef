/*
 * raft/transport_tls.h -- mutual-TLS transport for libraft 0.15.
 *
 * A `struct raft_uv_transport` (include/raft/uv.h) that libraft's raft_uv uses
 * instead of raft_uv_tcp. libraft itself is unchanged: for every connection
 * the transport completes TCP, TLS 1.3 (OpenSSL, RFC 8446) and the raft
 * handshake itself, then hands libraft one end of a socketpair and pumps
 * bytes between the TLS session and the other end on the libuv loop.
 *
 * Per connection:
 *  1. TCP connect / accept.
 *  2. TLS 1.3 only, both sides present a certificate and verify the other's
 *     against `ca_file` (RFC 8446 §4.4.2: a client certificate is requested
 *     with CertificateRequest; without one the server fails the handshake).
 *     Expired, not-yet-valid, other-CA and missing certificates fail here.
 *  3. The connecting side sends libraft's own handshake (uv_tcp_connect.c:
 *     protocol 1, its server id, its address) inside TLS. The accepting side
 *     checks it (raft/wire_check.h), then that the certificate's subject CN is
 *     exactly "node-<id>" for the id claimed, and that `peer_allowed(id)` says
 *     yes (the id is in the configuration, or being added). It answers with an
 *     8-byte verdict: 0 accepted, or a refusal code followed by a length and
 *     the reason, so the refused side logs why. (This verdict is between two
 *     canopy transports only; libraft never sees it.)
 *  4. The connecting side checks the accepting side's CN is "node-<id>" for
 *     the id it meant to reach, before sending anything of raft's.
 *  5. Accepted: libraft gets its socketpair end (through raft_uv_accept_cb,
 *     or the connect callback). From then on every byte from the network is
 *     run through wire_check_message() and only whole, valid messages are
 *     written to libraft; a malformed one closes the connection, logged once.
 *     Data on an outgoing connection (libraft never expects any) closes it too.
 *
 * Every refusal is logged with the peer's address and the reason, at most
 * once a minute per peer host and reason (a refused peer retries every
 * second). Unfinished handshakes time out after 10 s, and at most 64 inbound
 * connections may be in their handshake at once.
 *
 * Everything runs on the loop thread. Addresses are IPv4 "A.B.C.D:PORT" (as
 * raft_uv_tcp accepts) or "[IPv6]:PORT".
 */
#ifndef CANOPY_RAFT_TRANSPORT_TLS_H
#define CANOPY_RAFT_TRANSPORT_TLS_H

#include <raft.h>
#include <raft/uv.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <uv.h>

/* Log levels passed to tls_transport_config.log (same scale as the engine's). */
enum { TLS_TRANSPORT_DEBUG, TLS_TRANSPORT_INFO, TLS_TRANSPORT_WARN, TLS_TRANSPORT_ERROR };

struct tls_transport_config {
	const char *ca_file;   /* PEM: the CA(s) every peer's certificate must chain to */
	const char *cert_file; /* PEM: this node's certificate (+ intermediates), CN "node-<id>" */
	const char *key_file;  /* PEM: its private key; refused if group/others may read it */

	/* May server `id` talk raft to this node? Asked for every inbound
	 * connection after its certificate matched its claimed id. NULL: yes. */
	bool (*peer_allowed)(void *arg, uint64_t id);
	void *peer_allowed_arg;

	/*
	 * An established connection with a known peer closed (the peer went
	 * away, the network broke, or a message failed the checks): `id` is
	 * the authenticated peer id, `inbound` tells whether the peer had
	 * connected to us (the peer's sending direction: its heartbeats to a
	 * follower arrive on such a connection). Not called for connections
	 * refused during their handshake, nor while the transport is closing.
	 * Called on the loop; may be called several times for one peer (one
	 * per connection). A closed connection to a live peer is reopened by
	 * libraft, so this is a hint for fast failure detection, not a verdict.
	 */
	void (*on_peer_closed)(void *arg, uint64_t id, bool inbound);
	void *on_peer_closed_arg;

	/* TCP_USER_TIMEOUT for every peer connection, ms (raft/tcp_timeout.h);
	 * 0: the kernel's default. */
	unsigned tcp_user_timeout_ms;

	/* Where the transport's lines go (refusals, dropped messages, reloads).
	 * `peer` is "HOST:PORT" or NULL, `detail` the reason or NULL. */
	void (*log)(void *arg, int level, const char *msg, const char *peer, const char *detail);
	void *log_arg;
};

/* Counters, for status and /metrics. */
struct tls_transport_stats {
	uint64_t accepted;     /* inbound connections handed to libraft */
	uint64_t connected;    /* outbound connections handed to libraft */
	uint64_t refused;      /* handshakes refused (TLS, certificate, id, membership) */
	uint64_t malformed;    /* connections dropped by the message checks */
	uint64_t reloads;      /* successful certificate reloads */
	unsigned open;         /* connections currently handed to libraft */
};

/*
 * Set up `t` (then give it to raft_uv_init). The CA, certificate and key are
 * loaded now: a missing or unreadable file, a key not matching the
 * certificate or readable by group/others fails with -EINVAL/-EACCES/-ENOENT
 * and errmsg naming the file. A certificate that will be refused by peers
 * (not signed by the CA, expired, CN not "node-<id>") does not fail here --
 * the id is not known yet -- see tls_transport_check_identity().
 * The strings and callbacks in cfg are copied/kept. Returns 0 or a negative errno.
 */
int tls_transport_init(struct raft_uv_transport *t, uv_loop_t *loop,
		       const struct tls_transport_config *cfg, char *errmsg, size_t errlen);

/*
 * Whether this node's own certificate will be accepted by peers as server
 * `id`: chains to the CA, is within its validity period, and has CN
 * "node-<id>". Returns 0, or -EKEYREJECTED with the reason in errmsg (the
 * agent logs it as a warning at start and after a reload: peers will refuse).
 */
int tls_transport_check_identity(struct raft_uv_transport *t, uint64_t id, char *errmsg,
				 size_t errlen);

/*
 * Re-read the CA, certificate and key files (SIGHUP). On success new
 * connections use them; established connections keep their session. On
 * failure nothing changes and errmsg says why. Returns 0 or a negative errno.
 */
int tls_transport_reload(struct raft_uv_transport *t, char *errmsg, size_t errlen);

void tls_transport_stats(struct raft_uv_transport *t, struct tls_transport_stats *out);

/* Release the transport once raft_uv has closed it (after raft_uv_close), as
 * raft_uv_tcp_close does for raft_uv_tcp. */
void tls_transport_free(struct raft_uv_transport *t);

/*
 * The rule for private key files, shared with the configuration check:
 * a regular file that group and others cannot read or write. Returns 0, or
 * -EACCES / -EINVAL / -errno with errmsg naming the file.
 */
int tls_transport_check_key_file(const char *path, char *errmsg, size_t errlen);

#endif /* CANOPY_RAFT_TRANSPORT_TLS_H */
