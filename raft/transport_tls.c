/*
 * raft/transport_tls.c -- mutual-TLS transport for libraft (see transport_tls.h).
 *
 * OpenSSL runs over memory BIOs: ciphertext read from the TCP handle is
 * written into `rbio`, whatever OpenSSL wants to send is taken from `wbio` and
 * written to the TCP handle. Plaintext goes to / comes from our end of the
 * socketpair whose other end libraft owns.
 *
 * Memory handed to libraft follows its rules (uv_recv.c / uv_send.c free the
 * stream with raft_free after uv_close): the stream is a uv_pipe_t allocated
 * with raft_malloc.
 */
#define _GNU_SOURCE
#include "raft/transport_tls.h"
#include "raft/tcp_timeout.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <openssl/err.h>
#include <openssl/ssl.h>
#include <openssl/x509v3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include "common/xalloc.h"
#include "raft/wire_check.h"

#define HANDSHAKE_TIMEOUT_MS 10000
#define MAX_PENDING_INBOUND 64
#define READ_CHUNK (64 * 1024)
#define HIGH_WATER (8u * 1024 * 1024) /* stop reading the other side above this backlog */
#define LOW_WATER (1u * 1024 * 1024)
#define LOG_REPEAT_MS 60000
#define LOG_SLOTS 64
#define REASON_MAX 256

/* Verdict codes of the accepting side (step 3 in transport_tls.h). */
enum { VERDICT_OK = 0, VERDICT_REFUSED = 1 };

enum conn_state {
	C_TCP,      /* outbound: TCP connect in flight */
	C_TLS,      /* TLS handshake */
	C_RAFT,     /* inbound: waiting for the raft handshake; outbound: for the verdict */
	C_OPEN,     /* handed to libraft */
	C_CLOSING,
};

struct impl;

struct conn {
	struct impl *impl;
	struct conn *prev, *next;
	bool inbound;
	enum conn_state state;
	uv_tcp_t tcp;
	uv_connect_t connect;
	uv_timer_t timer;
	uv_pipe_t pipe;        /* our end of the socketpair */
	bool pipe_open;
	uv_pipe_t *raft_end;   /* libraft's end, until handed over */
	int handles;           /* our handles not yet closed */
	SSL *ssl;
	BIO *rbio, *wbio;
	char peer[80];         /* the remote's IP:PORT as seen */
	char host[64];         /* its IP, for log rate limiting */
	uint64_t id;           /* claimed (inbound) or wanted (outbound) server id */
	char address[256];     /* outbound: the address connected to */
	struct raft_uv_connect *req; /* outbound: libraft's request until answered */
	raft_uv_connect_cb cb;
	int status;            /* outbound: what to report if the connect fails */
	bool established;      /* handed to libraft */
	bool tcp_paused, pipe_paused;
	bool draining;         /* refused: letting the alert/verdict out, then closing */
	uv_shutdown_t shutdown;
	uint8_t *in;           /* plaintext from the peer not yet passed on */
	size_t in_len, in_cap, need;
};

struct log_slot {
	char key[320];
	uint64_t at;
};

struct impl {
	struct raft_uv_transport *t;
	uv_loop_t *loop;
	struct tls_transport_config cfg;
	char ca[1024], cert[1024], key[1024];
	SSL_CTX *ctx;
	raft_id id;
	char address[256];
	raft_uv_accept_cb accept_cb;
	uv_tcp_t listener;
	bool listener_init;
	struct conn *conns;
	unsigned pending_inbound;
	bool closing;
	raft_uv_transport_close_cb close_cb;
	int open_handles; /* listener + conns not yet freed */
	struct tls_transport_stats stats;
	struct log_slot slots[LOG_SLOTS];
};

/* ------------------------------------------------------------------ log */

static void tlog(struct impl *im, int level, const char *msg, const char *peer, const char *detail)
{
	if (im->cfg.log)
		im->cfg.log(im->cfg.log_arg, level, msg, peer, detail);
}

/* At most once per LOG_REPEAT_MS per (host, reason): a refused peer retries
 * every second and must not flood the log; another reason (another node on
 * the same host, another certificate) is logged at once. */
static bool log_due(struct impl *im, const char *host, const char *what)
{
	char key[320];
	uint64_t now = uv_now(im->loop);
	struct log_slot *oldest = &im->slots[0];

	snprintf(key, sizeof key, "%.200s|%.100s", host, what);
	for (unsigned i = 0; i < LOG_SLOTS; i++) {
		struct log_slot *s = &im->slots[i];
		if (strcmp(s->key, key) == 0) {
			if (now - s->at < LOG_REPEAT_MS)
				return false;
			s->at = now;
			return true;
		}
		if (s->at < oldest->at)
			oldest = s;
	}
	snprintf(oldest->key, sizeof oldest->key, "%s", key);
	oldest->at = now;
	return true;
}

/* The first OpenSSL error on this thread's queue, or `dflt`. */
static void ssl_reason(char *buf, size_t len, const char *dflt)
{
	unsigned long e = ERR_get_error();
	if (e == 0) {
		snprintf(buf, len, "%s", dflt);
		return;
	}
	ERR_error_string_n(e, buf, len);
	/* "error:0A000086:SSL routines::certificate verify failed" -> keep the
	 * human part after the last "::" or ":". */
	const char *p = strstr(buf, "::");
	if (p != NULL)
		memmove(buf, p + 2, strlen(p + 2) + 1);
	ERR_clear_error();
}

/* -------------------------------------------------------------- SSL_CTX */

int tls_transport_check_key_file(const char *path, char *errmsg, size_t errlen)
{
	struct stat st;
	int fd = open(path, O_RDONLY | O_NOFOLLOW | O_CLOEXEC);

	if (fd < 0) {
		int e = errno;
		snprintf(errmsg, errlen, "%s: %s", path, strerror(e));
		return -e;
	}
	if (fstat(fd, &st) != 0) {
		int e = errno;
		close(fd);
		snprintf(errmsg, errlen, "%s: %s", path, strerror(e));
		return -e;
	}
	close(fd);
	if (!S_ISREG(st.st_mode)) {
		snprintf(errmsg, errlen, "%s: not a regular file", path);
		return -EINVAL;
	}
	if (st.st_mode & 077) {
		snprintf(errmsg, errlen,
			 "%s: mode %03o lets group or others read the private key (chmod 600 it)", path,
			 (unsigned)(st.st_mode & 0777));
		return -EACCES;
	}
	return 0;
}

static int file_readable(const char *what, const char *path, char *errmsg, size_t errlen)
{
	if (access(path, R_OK) != 0) {
		int e = errno;
		snprintf(errmsg, errlen, "%s %s: %s", what, path, strerror(e));
		return -e;
	}
	return 0;
}

static SSL_CTX *ctx_load(struct impl *im, char *errmsg, size_t errlen, int *rvp)
{
	SSL_CTX *ctx;
	char why[256];
	int rv;

	*rvp = -EINVAL;
	if ((rv = file_readable("cluster.tls.ca", im->ca, errmsg, errlen)) != 0 ||
	    (rv = file_readable("cluster.tls.cert", im->cert, errmsg, errlen)) != 0) {
		*rvp = rv;
		return NULL;
	}
	rv = tls_transport_check_key_file(im->key, why, sizeof why);
	if (rv != 0) {
		snprintf(errmsg, errlen, "cluster.tls.key %s", why);
		*rvp = rv;
		return NULL;
	}
	ERR_clear_error();
	ctx = xcheck(SSL_CTX_new(TLS_method()));
	/* TLS 1.3 only (RFC 8446): forward secrecy and encrypted certificates,
	 * no legacy negotiation. Both ends are canopy agents. */
	SSL_CTX_set_min_proto_version(ctx, TLS1_3_VERSION);
	/* No session tickets or cache: every connection does a full
	 * handshake, so every peer certificate is verified against the
	 * current CA (a reload takes effect for each new connection). */
	SSL_CTX_set_session_cache_mode(ctx, SSL_SESS_CACHE_OFF);
	SSL_CTX_set_num_tickets(ctx, 0);
	SSL_CTX_set_options(ctx, SSL_OP_NO_TICKET);
	if (SSL_CTX_load_verify_locations(ctx, im->ca, NULL) != 1) {
		ssl_reason(why, sizeof why, "no certificate in it");
		snprintf(errmsg, errlen, "cluster.tls.ca %s: %s", im->ca, why);
		goto err_after_ctx;
	}
	/* Also the list sent in CertificateRequest (RFC 8446 §4.3.2
	 * certificate_authorities), so a peer can pick the right certificate. */
	STACK_OF(X509_NAME) *names = SSL_load_client_CA_file(im->ca);
	if (names != NULL)
		SSL_CTX_set_client_CA_list(ctx, names);
	if (SSL_CTX_use_certificate_chain_file(ctx, im->cert) != 1) {
		ssl_reason(why, sizeof why, "not a PEM certificate");
		snprintf(errmsg, errlen, "cluster.tls.cert %s: %s", im->cert, why);
		goto err_after_ctx;
	}
	if (SSL_CTX_use_PrivateKey_file(ctx, im->key, SSL_FILETYPE_PEM) != 1) {
		ssl_reason(why, sizeof why, "not a PEM private key");
		snprintf(errmsg, errlen, "cluster.tls.key %s: %s", im->key, why);
		goto err_after_ctx;
	}
	if (SSL_CTX_check_private_key(ctx) != 1) {
		ssl_reason(why, sizeof why, "mismatch");
		snprintf(errmsg, errlen, "cluster.tls.key %s does not belong to cluster.tls.cert %s: %s",
			 im->key, im->cert, why);
		goto err_after_ctx;
	}
	/* Mutual authentication: request and require the peer's certificate
	 * in both directions (RFC 8446 §4.3.2, §4.4.2.4). */
	SSL_CTX_set_verify(ctx, SSL_VERIFY_PEER | SSL_VERIFY_FAIL_IF_NO_PEER_CERT, NULL);
	SSL_CTX_set_verify_depth(ctx, 8);
	*rvp = 0;
	return ctx;

err_after_ctx:
	SSL_CTX_free(ctx);
	return NULL;
}

/* The certificate's one subject CN, or -1 when it has none or several. */
static int cert_cn(X509 *x, char *out, size_t outlen)
{
	X509_NAME *name = X509_get_subject_name(x);
	int i = X509_NAME_get_index_by_NID(name, NID_commonName, -1);
	const unsigned char *data;
	int n;

	if (i < 0 || X509_NAME_get_index_by_NID(name, NID_commonName, i) >= 0)
		return -1;
	ASN1_STRING *s = X509_NAME_ENTRY_get_data(X509_NAME_get_entry(name, i));
	data = ASN1_STRING_get0_data(s);
	n = ASN1_STRING_length(s);
	if (n <= 0 || (size_t)n >= outlen || memchr(data, 0, (size_t)n) != NULL)
		return -1;
	memcpy(out, data, (size_t)n);
	out[n] = '\0';
	return 0;
}

/* 0 when `x` names server `id` ("node-<id>", the certificate contract). */
static int cn_matches(X509 *x, uint64_t id, char *why, size_t whylen)
{
	char cn[128], want[32];

	snprintf(want, sizeof want, "node-%llu", (unsigned long long)id);
	if (cert_cn(x, cn, sizeof cn) != 0) {
		snprintf(why, whylen, "certificate has no single subject CN (expected CN %s)", want);
		return -1;
	}
	if (strcmp(cn, want) != 0) {
		snprintf(why, whylen, "certificate CN %s does not match server id %llu (expected CN %s)",
			 cn, (unsigned long long)id, want);
		return -1;
	}
	return 0;
}

int tls_transport_check_identity(struct raft_uv_transport *t, uint64_t id, char *errmsg,
				 size_t errlen)
{
	struct impl *im = t->impl;
	X509 *x = SSL_CTX_get0_certificate(im->ctx);
	X509_STORE_CTX *vctx;
	char why[256];
	int ok;

	if (x == NULL) {
		snprintf(errmsg, errlen, "no certificate loaded");
		return -EKEYREJECTED;
	}
	if (cn_matches(x, id, why, sizeof why) != 0) {
		snprintf(errmsg, errlen, "cluster.tls.cert %s: %s", im->cert, why);
		return -EKEYREJECTED;
	}
	vctx = xcheck(X509_STORE_CTX_new());
	STACK_OF(X509) *chain = NULL;
	SSL_CTX_get0_chain_certs(im->ctx, &chain);
	X509_STORE_CTX_init(vctx, SSL_CTX_get_cert_store(im->ctx), x, chain);
	ok = X509_verify_cert(vctx);
	if (ok != 1)
		snprintf(errmsg, errlen, "cluster.tls.cert %s: %s (checked against cluster.tls.ca %s)",
			 im->cert, X509_verify_cert_error_string(X509_STORE_CTX_get_error(vctx)), im->ca);
	X509_STORE_CTX_free(vctx);
	return ok == 1 ? 0 : -EKEYREJECTED;
}

int tls_transport_reload(struct raft_uv_transport *t, char *errmsg, size_t errlen)
{
	struct impl *im = t->impl;
	int rv;
	SSL_CTX *ctx = ctx_load(im, errmsg, errlen, &rv);

	if (ctx == NULL)
		return rv;
	/* Connections hold their own reference (SSL_new), so the old context
	 * lives on as long as they do. */
	SSL_CTX_free(im->ctx);
	im->ctx = ctx;
	im->stats.reloads++;
	return 0;
}

void tls_transport_stats(struct raft_uv_transport *t, struct tls_transport_stats *out)
{
	struct impl *im = t->impl;
	*out = im->stats;
}

/* --------------------------------------------------------- connections */

static void maybe_fire_close(struct impl *im)
{
	if (im->closing && im->open_handles == 0 && im->close_cb) {
		raft_uv_transport_close_cb cb = im->close_cb;
		im->close_cb = NULL;
		cb(im->t);
	}
}

static void conn_free(struct conn *c)
{
	struct impl *im = c->impl;

	/* libraft's connect request gets its answer. Once the transport is
	 * closing it must be RAFT_CANCELED whatever happened before: uv_send.c
	 * (connectCb) expects exactly that from a closing transport. */
	if (c->req != NULL)
		c->cb(c->req, NULL, im->closing ? RAFT_CANCELED
					      : c->status ? c->status : RAFT_NOCONNECTION);
	if (c->prev)
		c->prev->next = c->next;
	else
		im->conns = c->next;
	if (c->next)
		c->next->prev = c->prev;
	SSL_free(c->ssl); /* frees the BIOs too */
	free(c->in);
	free(c);
	im->open_handles--;
	maybe_fire_close(im);
}

static void on_conn_handle_closed(uv_handle_t *h)
{
	struct conn *c = h->data;
	if (--c->handles == 0)
		conn_free(c);
}

static void conn_close(struct conn *c)
{
	struct impl *im = c->impl;

	if (c->state == C_CLOSING)
		return;
	if (c->inbound && c->state != C_OPEN)
		im->pending_inbound--;
	if (c->established) {
		im->stats.open--;
		if (!im->closing && im->cfg.on_peer_closed)
			im->cfg.on_peer_closed(im->cfg.on_peer_closed_arg, c->id, c->inbound);
	}
	if (c->req != NULL && c->status == 0)
		c->status = im->closing ? RAFT_CANCELED : RAFT_NOCONNECTION;
	c->state = C_CLOSING;
	if (c->raft_end != NULL) { /* made but never handed over */
		uv_close((uv_handle_t *)c->raft_end, (uv_close_cb)raft_free);
		c->raft_end = NULL;
	}
	c->handles = 2 + (c->pipe_open ? 1 : 0);
	uv_close((uv_handle_t *)&c->timer, on_conn_handle_closed);
	uv_close((uv_handle_t *)&c->tcp, on_conn_handle_closed);
	if (c->pipe_open)
		uv_close((uv_handle_t *)&c->pipe, on_conn_handle_closed);
}

static void on_drain_timeout(uv_timer_t *t)
{
	conn_close(t->data);
}

static void on_drained(uv_shutdown_t *req, int status)
{
	(void)status;
	conn_close(req->data);
}

/*
 * Close once what is queued for the peer has left: a TLS alert or our
 * verdict tells the refused side why (uv_close would cancel those writes).
 * Bounded by a short timer in case the peer does not read.
 */
static void conn_drain(struct conn *c)
{
	if (c->state == C_CLOSING || c->draining)
		return;
	c->draining = true;
	if (c->pipe_open)
		uv_read_stop((uv_stream_t *)&c->pipe);
	uv_read_stop((uv_stream_t *)&c->tcp);
	uv_timer_start(&c->timer, on_drain_timeout, 2000, 0);
	c->shutdown.data = c;
	if (uv_shutdown(&c->shutdown, (uv_stream_t *)&c->tcp, on_drained) != 0)
		conn_close(c);
}

/* Log a refusal/failure of connection c, rate limited, then close it. */
static void conn_fail(struct conn *c, int level, const char *msg, const char *reason)
{
	struct impl *im = c->impl;
	char detail[REASON_MAX + 64];
	const char *peer = c->inbound ? c->peer : c->address;

	if (c->id != 0)
		snprintf(detail, sizeof detail, c->inbound ? "%s (peer claims server id %llu)"
							   : "%s (connecting to server %llu)",
			 reason, (unsigned long long)c->id);
	else
		snprintf(detail, sizeof detail, "%s", reason);
	if (log_due(im, c->inbound ? c->host : c->address, detail))
		tlog(im, level, msg, peer, detail);
	if (c->state == C_TLS || c->state == C_RAFT)
		conn_drain(c);
	else
		conn_close(c);
}

static void pipe_resume(struct conn *c);

struct wreq {
	uv_write_t req;
	struct conn *c;
	char data[];
};

static void on_tcp_written(uv_write_t *w, int status)
{
	struct wreq *r = w->data;
	struct conn *c = r->c;
	free(r);
	if (status != 0) {
		conn_close(c);
		return;
	}
	if (c->pipe_paused && c->state == C_OPEN &&
	    uv_stream_get_write_queue_size((uv_stream_t *)&c->tcp) < LOW_WATER) {
		c->pipe_paused = false;
		pipe_resume(c);
	}
}

/* Send whatever OpenSSL has queued for the network. */
static int flush_tls(struct conn *c)
{
	size_t n = (size_t)BIO_ctrl_pending(c->wbio);
	struct wreq *r;
	uv_buf_t b;

	if (n == 0 || c->state == C_CLOSING)
		return 0;
	r = xmalloc(sizeof *r + n); /* what OpenSSL made of at most one read or write */
	if (BIO_read(c->wbio, r->data, (int)n) != (int)n) {
		free(r);
		return -EIO;
	}
	r->c = c;
	r->req.data = r;
	b = uv_buf_init(r->data, (unsigned)n);
	if (uv_write(&r->req, (uv_stream_t *)&c->tcp, &b, 1, on_tcp_written) != 0) {
		free(r);
		return -EIO;
	}
	return 0;
}

static int tls_send(struct conn *c, const void *data, size_t len)
{
	char why[REASON_MAX];

	while (len > 0) {
		int n = SSL_write(c->ssl, data, len > INT32_MAX ? INT32_MAX : (int)len);
		if (n <= 0) {
			ssl_reason(why, sizeof why, "TLS write failed");
			conn_fail(c, TLS_TRANSPORT_WARN, "raft connection closed", why);
			return -EIO;
		}
		data = (const char *)data + n;
		len -= (size_t)n;
	}
	if (flush_tls(c) != 0) {
		conn_close(c);
		return -EIO;
	}
	return 0;
}

/* ---- the libraft side: our end of the socketpair */

static void on_pipe_alloc(uv_handle_t *h, size_t suggested, uv_buf_t *buf)
{
	(void)h;
	(void)suggested;
	buf->base = xmalloc(READ_CHUNK);
	buf->len = READ_CHUNK;
}

static void on_pipe_read(uv_stream_t *s, ssize_t n, const uv_buf_t *buf)
{
	struct conn *c = s->data;

	if (n > 0 && c->state == C_OPEN && !c->inbound) {
		/* libraft's messages to the peer: encrypt and send. */
		if (tls_send(c, buf->base, (size_t)n) == 0 &&
		    uv_stream_get_write_queue_size((uv_stream_t *)&c->tcp) > HIGH_WATER) {
			c->pipe_paused = true;
			uv_read_stop((uv_stream_t *)&c->pipe);
		}
	} else if (n < 0) {
		/* libraft closed its end (a decode error on its side, a
		 * configuration change, shutdown): close the TLS session. */
		conn_close(c);
	}
	free(buf->base);
}

static void pipe_resume(struct conn *c)
{
	uv_read_start((uv_stream_t *)&c->pipe, on_pipe_alloc, on_pipe_read);
}

struct pwreq {
	uv_write_t req;
	struct conn *c;
	char data[];
};

static void on_tcp_alloc(uv_handle_t *h, size_t suggested, uv_buf_t *buf);
static void on_tcp_read(uv_stream_t *s, ssize_t n, const uv_buf_t *buf);

static void on_pipe_written(uv_write_t *w, int status)
{
	struct pwreq *r = w->data;
	struct conn *c = r->c;
	free(r);
	if (status != 0) {
		conn_close(c);
		return;
	}
	if (c->tcp_paused && c->state == C_OPEN &&
	    uv_stream_get_write_queue_size((uv_stream_t *)&c->pipe) < LOW_WATER) {
		c->tcp_paused = false;
		uv_read_start((uv_stream_t *)&c->tcp, on_tcp_alloc, on_tcp_read);
	}
}

/* Hand one checked message to libraft (its size within wire_check's caps). */
static int pipe_send(struct conn *c, const uint8_t *data, size_t len)
{
	struct pwreq *r = xmalloc(sizeof *r + len);
	uv_buf_t b;

	memcpy(r->data, data, len);
	r->c = c;
	r->req.data = r;
	b = uv_buf_init(r->data, (unsigned)len);
	if (uv_write(&r->req, (uv_stream_t *)&c->pipe, &b, 1, on_pipe_written) != 0) {
		free(r);
		return -EIO;
	}
	if (uv_stream_get_write_queue_size((uv_stream_t *)&c->pipe) > HIGH_WATER) {
		c->tcp_paused = true;
		uv_read_stop((uv_stream_t *)&c->tcp);
	}
	return 0;
}

/* The socketpair: our end in c->pipe, libraft's in c->raft_end. */
static int make_pair(struct conn *c, char *why, size_t whylen)
{
	int fds[2];

	if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, fds) != 0) {
		snprintf(why, whylen, "socketpair: %s", strerror(errno));
		return -errno;
	}
	c->raft_end = xcheck(raft_malloc(sizeof *c->raft_end));
	uv_pipe_init(c->impl->loop, &c->pipe, 0);
	c->pipe.data = c;
	c->pipe_open = true;
	uv_pipe_init(c->impl->loop, c->raft_end, 0);
	/* uv_pipe_open takes the fd only when it succeeds. */
	if (uv_pipe_open(&c->pipe, fds[1]) != 0) {
		close(fds[0]);
		close(fds[1]);
		snprintf(why, whylen, "socketpair: cannot open");
		return -EIO;
	}
	if (uv_pipe_open(c->raft_end, fds[0]) != 0) {
		close(fds[0]);
		snprintf(why, whylen, "socketpair: cannot open");
		return -EIO;
	}
	uv_read_start((uv_stream_t *)&c->pipe, on_pipe_alloc, on_pipe_read);
	return 0;
}

/* ---- plaintext from the peer */

/*
 * The buffer holds at most one message and the read after it: every read is
 * checked (wire_check_message) before the next, and a message whose header
 * claims more than the caps of raft/wire_check.h (WIRE_CHECK_MAX_*) drops the
 * connection, so what a peer sends cannot make it grow past them.
 */
static void in_append(struct conn *c, const void *data, size_t n)
{
	if (c->in_len + n > c->in_cap) {
		size_t cap = c->in_cap ? c->in_cap : 4096;
		while (cap < c->in_len + n)
			cap *= 2;
		c->in = xrealloc(c->in, cap);
		c->in_cap = cap;
	}
	memcpy(c->in + c->in_len, data, n);
	c->in_len += n;
}

static void in_consume(struct conn *c, size_t n)
{
	memmove(c->in, c->in + n, c->in_len - n);
	c->in_len -= n;
	c->need = 0;
	/* Give back the memory of a large message once it has passed. */
	if (c->in_cap > 1024 * 1024 && c->in_len < c->in_cap / 4) {
		c->in = xrealloc(c->in, c->in_len > 4096 ? c->in_len : 4096);
		c->in_cap = c->in_len > 4096 ? c->in_len : 4096;
	}
}

static void send_verdict(struct conn *c, int code, const char *reason)
{
	uint8_t msg[16 + REASON_MAX];
	size_t rl = reason ? strlen(reason) : 0;
	uint64_t v = (uint64_t)code;

	if (rl > REASON_MAX)
		rl = REASON_MAX;
	for (int i = 0; i < 8; i++)
		msg[i] = (uint8_t)(v >> (8 * i));
	if (code == VERDICT_OK) {
		tls_send(c, msg, 8);
		return;
	}
	for (int i = 0; i < 8; i++)
		msg[8 + i] = (uint8_t)((uint64_t)rl >> (8 * i));
	memcpy(msg + 16, reason, rl);
	tls_send(c, msg, 16 + rl);
}

/* Inbound, C_RAFT: the raft handshake arrived (or part of it). */
static void inbound_handshake(struct conn *c)
{
	struct impl *im = c->impl;
	size_t len;
	uint64_t id;
	const char *address;
	char why[REASON_MAX];
	X509 *x;
	int rv;

	rv = wire_check_handshake(c->in, c->in_len, &len, &id, &address, why, sizeof why);
	if (rv == WIRE_CHECK_MORE)
		return;
	im->stats.refused += rv < 0;
	if (rv < 0) {
		conn_fail(c, TLS_TRANSPORT_WARN, "raft connection refused: malformed handshake", why);
		return;
	}
	c->id = id;
	x = SSL_get1_peer_certificate(c->ssl);
	rv = x ? cn_matches(x, id, why, sizeof why) : -1;
	if (x == NULL)
		snprintf(why, sizeof why, "no peer certificate");
	X509_free(x);
	if (rv != 0) {
		im->stats.refused++;
		send_verdict(c, VERDICT_REFUSED, why);
		conn_fail(c, TLS_TRANSPORT_WARN, "raft connection refused", why);
		return;
	}
	if (im->cfg.peer_allowed && !im->cfg.peer_allowed(im->cfg.peer_allowed_arg, id)) {
		snprintf(why, sizeof why, "server %llu is not in the cluster configuration",
			 (unsigned long long)id);
		im->stats.refused++;
		send_verdict(c, VERDICT_REFUSED, why);
		conn_fail(c, TLS_TRANSPORT_WARN, "raft connection refused", why);
		return;
	}
	char addr[WIRE_CHECK_MAX_ADDRESS];
	snprintf(addr, sizeof addr, "%s", address);
	in_consume(c, len);
	rv = make_pair(c, why, sizeof why);
	if (rv != 0) {
		conn_fail(c, TLS_TRANSPORT_ERROR, "raft connection closed", why);
		return;
	}
	send_verdict(c, VERDICT_OK, NULL);
	if (c->state == C_CLOSING || c->draining)
		return;
	uv_timer_stop(&c->timer);
	im->pending_inbound--;
	c->state = C_OPEN;
	c->established = true;
	im->stats.accepted++;
	im->stats.open++;
	uv_stream_t *s = (uv_stream_t *)c->raft_end;
	c->raft_end = NULL;
	im->accept_cb(im->t, id, addr, s);
}

/* Inbound, C_OPEN: pass on every complete message that passes the checks. */
static void inbound_messages(struct conn *c)
{
	struct impl *im = c->impl;
	char why[REASON_MAX];
	size_t len;
	int rv;

	while (c->state == C_OPEN && c->in_len > 0) {
		if (c->need > c->in_len)
			return; /* the header/payload is not all there yet: no need to re-check */
		rv = wire_check_message(c->in, c->in_len, &len, why, sizeof why);
		if (rv == WIRE_CHECK_MORE) {
			c->need = len;
			return;
		}
		if (rv < 0) {
			im->stats.malformed++;
			conn_fail(c, TLS_TRANSPORT_ERROR,
				  "raft message failed the checks: connection dropped", why);
			return;
		}
		if (pipe_send(c, c->in, len) != 0) {
			conn_close(c);
			return;
		}
		in_consume(c, len);
	}
}

static void outbound_open(struct conn *c);

/* Outbound, C_RAFT: the accepting side's verdict. */
static void outbound_verdict(struct conn *c)
{
	uint64_t code = 0, rl = 0;
	char reason[REASON_MAX + 1];

	if (c->in_len < 8)
		return;
	for (int i = 7; i >= 0; i--)
		code = code << 8 | c->in[i];
	if (code == VERDICT_OK) {
		in_consume(c, 8);
		if (c->in_len > 0) {
			conn_fail(c, TLS_TRANSPORT_WARN, "raft connection closed",
				  "peer sent data on an outgoing connection");
			return;
		}
		outbound_open(c);
		return;
	}
	if (c->in_len < 16)
		return;
	for (int i = 15; i >= 8; i--)
		rl = rl << 8 | c->in[i];
	if (code != VERDICT_REFUSED || rl > REASON_MAX) {
		conn_fail(c, TLS_TRANSPORT_WARN, "raft connection failed", "peer sent a malformed verdict");
		return;
	}
	if (c->in_len < 16 + rl)
		return;
	for (uint64_t i = 0; i < rl; i++) /* printable only: it goes to our log */
		reason[i] = c->in[16 + i] >= 0x20 && c->in[16 + i] < 0x7f ? (char)c->in[16 + i] : '?';
	reason[rl] = '\0';
	c->impl->stats.refused++;
	conn_fail(c, TLS_TRANSPORT_WARN, "raft connection refused by peer", reason);
}

static void on_plaintext(struct conn *c)
{
	if (c->inbound) {
		if (c->state == C_RAFT)
			inbound_handshake(c);
		if (c->state == C_OPEN)
			inbound_messages(c);
	} else if (c->state == C_RAFT) {
		outbound_verdict(c);
	} else if (c->state == C_OPEN && c->in_len > 0) {
		c->impl->stats.malformed++;
		conn_fail(c, TLS_TRANSPORT_WARN, "raft connection closed",
			  "peer sent data on an outgoing connection");
	}
}

/* ---- TLS */

static void tls_established(struct conn *c)
{
	char why[REASON_MAX];
	X509 *x;
	int rv;

	if (c->inbound) {
		c->state = C_RAFT; /* the raft handshake comes next */
		return;
	}
	/* Step 4: the server must be the node we meant to reach. */
	x = SSL_get1_peer_certificate(c->ssl);
	rv = x ? cn_matches(x, c->id, why, sizeof why) : -1;
	if (x == NULL)
		snprintf(why, sizeof why, "no peer certificate");
	X509_free(x);
	if (rv != 0) {
		c->impl->stats.refused++;
		conn_fail(c, TLS_TRANSPORT_WARN, "raft connection failed: wrong peer", why);
		return;
	}
	/* Step 3: libraft's own handshake (uv_tcp_connect.c: encodeHandshake):
	 * protocol, id, address length padded to 8, address + NUL + padding. */
	struct impl *im = c->impl;
	size_t alen = strlen(im->address) + 1;
	size_t padded = (alen + 7) / 8 * 8;
	uint8_t hs[24 + sizeof im->address + 8];
	uint64_t v[3] = {WIRE_CHECK_PROTOCOL, im->id, padded};
	memset(hs, 0, sizeof hs);
	for (int k = 0; k < 3; k++)
		for (int i = 0; i < 8; i++)
			hs[8 * k + i] = (uint8_t)(v[k] >> (8 * i));
	memcpy(hs + 24, im->address, alen);
	c->state = C_RAFT;
	tls_send(c, hs, 24 + padded);
}

static void tls_progress(struct conn *c)
{
	char why[REASON_MAX], buf[16384];
	int n, err;

	if (c->state == C_TLS) {
		ERR_clear_error();
		n = SSL_do_handshake(c->ssl);
		if (n != 1) {
			err = SSL_get_error(c->ssl, n);
			if (err == SSL_ERROR_WANT_READ) {
				if (flush_tls(c) != 0)
					conn_close(c);
				return;
			}
			long vr = SSL_get_verify_result(c->ssl);
			if (vr != X509_V_OK)
				snprintf(why, sizeof why, "peer certificate not accepted: %s%s",
					 X509_verify_cert_error_string(vr),
					 vr == X509_V_ERR_UNABLE_TO_GET_ISSUER_CERT_LOCALLY ||
							 vr == X509_V_ERR_DEPTH_ZERO_SELF_SIGNED_CERT ||
							 vr == X509_V_ERR_SELF_SIGNED_CERT_IN_CHAIN ||
							 vr == X509_V_ERR_UNABLE_TO_GET_ISSUER_CERT
						 ? " (not issued by cluster.tls.ca)"
						 : "");
			else
				ssl_reason(why, sizeof why, "TLS handshake failed");
			flush_tls(c); /* the alert tells the peer why */
			c->impl->stats.refused++;
			conn_fail(c, TLS_TRANSPORT_WARN,
				  c->inbound ? "raft connection refused" : "raft connection failed", why);
			return;
		}
		if (flush_tls(c) != 0) {
			conn_close(c);
			return;
		}
		tls_established(c);
	}
	while ((c->state == C_RAFT || c->state == C_OPEN) && !c->draining) {
		ERR_clear_error();
		n = SSL_read(c->ssl, buf, sizeof buf);
		if (n <= 0) {
			err = SSL_get_error(c->ssl, n);
			if (err == SSL_ERROR_WANT_READ) {
				if (flush_tls(c) != 0)
					conn_close(c);
				return;
			}
			if (err == SSL_ERROR_ZERO_RETURN) { /* close_notify */
				conn_close(c);
				return;
			}
			/* In TLS 1.3 a client learns that the server refused its
			 * certificate only now (RFC 8446 §4.4.2.4: the alert
			 * follows the client's Finished). */
			ssl_reason(why, sizeof why, "TLS error");
			if (c->state == C_RAFT)
				c->impl->stats.refused++;
			conn_fail(c, TLS_TRANSPORT_WARN,
				  c->state == C_RAFT && !c->inbound ? "raft connection refused by peer"
								    : "raft connection closed",
				  why);
			return;
		}
		in_append(c, buf, (size_t)n);
		on_plaintext(c);
	}
}

static void on_tcp_alloc(uv_handle_t *h, size_t suggested, uv_buf_t *buf)
{
	(void)h;
	(void)suggested;
	buf->base = xmalloc(READ_CHUNK);
	buf->len = READ_CHUNK;
}

static void on_tcp_read(uv_stream_t *s, ssize_t n, const uv_buf_t *buf)
{
	struct conn *c = s->data;

	if (n > 0 && c->state != C_CLOSING && !c->draining) {
		if (BIO_write(c->rbio, buf->base, (int)n) != (int)n)
			conn_close(c);
		else
			tls_progress(c);
	} else if (n < 0 && !c->draining) {
		if (c->state == C_TLS || c->state == C_RAFT)
			conn_fail(c, TLS_TRANSPORT_WARN,
				  c->inbound ? "raft connection refused" : "raft connection failed",
				  "peer closed the connection during the handshake");
		else
			conn_close(c);
	}
	free(buf->base);
}

static void on_handshake_timeout(uv_timer_t *t)
{
	struct conn *c = t->data;
	conn_fail(c, TLS_TRANSPORT_WARN, c->inbound ? "raft connection refused" : "raft connection failed",
		  "handshake not completed within 10 s");
}

static void conn_tls_start(struct conn *c)
{
	struct impl *im = c->impl;

	c->ssl = xcheck(SSL_new(im->ctx));
	c->rbio = xcheck(BIO_new(BIO_s_mem()));
	c->wbio = xcheck(BIO_new(BIO_s_mem()));
	SSL_set_bio(c->ssl, c->rbio, c->wbio);
	if (c->inbound)
		SSL_set_accept_state(c->ssl);
	else
		SSL_set_connect_state(c->ssl);
	c->state = C_TLS;
	uv_read_start((uv_stream_t *)&c->tcp, on_tcp_alloc, on_tcp_read);
	tls_progress(c);
}

static struct conn *conn_new(struct impl *im, bool inbound)
{
	struct conn *c = xcalloc(1, sizeof *c);
	c->impl = im;
	c->inbound = inbound;
	uv_tcp_init(im->loop, &c->tcp);
	c->tcp.data = c;
	uv_tcp_nodelay(&c->tcp, 1); /* heartbeats are small and latency-bound */
	uv_timer_init(im->loop, &c->timer);
	c->timer.data = c;
	uv_timer_start(&c->timer, on_handshake_timeout, HANDSHAKE_TIMEOUT_MS, 0);
	c->next = im->conns;
	if (im->conns)
		im->conns->prev = c;
	im->conns = c;
	im->open_handles++;
	return c;
}

static void outbound_open(struct conn *c)
{
	struct impl *im = c->impl;
	char why[REASON_MAX];
	struct raft_uv_connect *req = c->req;

	if (make_pair(c, why, sizeof why) != 0) {
		conn_fail(c, TLS_TRANSPORT_ERROR, "raft connection failed", why);
		return;
	}
	uv_timer_stop(&c->timer);
	c->state = C_OPEN;
	c->established = true;
	im->stats.connected++;
	im->stats.open++;
	uv_stream_t *s = (uv_stream_t *)c->raft_end;
	c->raft_end = NULL;
	c->req = NULL;
	c->cb(req, s, 0);
}

static void peer_name(struct conn *c)
{
	struct sockaddr_storage ss;
	int len = sizeof ss;
	char ip[INET6_ADDRSTRLEN] = "?";
	unsigned port = 0;

	if (uv_tcp_getpeername(&c->tcp, (struct sockaddr *)&ss, &len) == 0) {
		if (ss.ss_family == AF_INET) {
			struct sockaddr_in *a = (struct sockaddr_in *)&ss;
			uv_ip4_name(a, ip, sizeof ip);
			port = ntohs(a->sin_port);
		} else if (ss.ss_family == AF_INET6) {
			struct sockaddr_in6 *a = (struct sockaddr_in6 *)&ss;
			uv_ip6_name(a, ip, sizeof ip);
			port = ntohs(a->sin6_port);
		}
	}
	snprintf(c->host, sizeof c->host, "%s", ip);
	snprintf(c->peer, sizeof c->peer, strchr(ip, ':') ? "[%s]:%u" : "%s:%u", ip, port);
}

static void on_listen(uv_stream_t *l, int status)
{
	struct impl *im = l->data;
	struct conn *c;

	if (status != 0 || im->closing)
		return;
	c = conn_new(im, true);
	im->pending_inbound++;
	c->state = C_TLS;
	if (uv_accept(l, (uv_stream_t *)&c->tcp) != 0) {
		conn_close(c);
		return;
	}
	if (im->cfg.tcp_user_timeout_ms) /* raft/tcp_timeout.h */
		(void)tcp_timeout_apply((uv_stream_t *)&c->tcp, im->cfg.tcp_user_timeout_ms);
	peer_name(c);
	if (im->pending_inbound > MAX_PENDING_INBOUND) {
		conn_fail(c, TLS_TRANSPORT_WARN, "raft connection refused",
			  "too many connections in their handshake");
		return;
	}
	conn_tls_start(c);
}

/* "A.B.C.D:PORT" or "[V6]:PORT" */
static int parse_address(const char *address, struct sockaddr_storage *ss)
{
	char host[256];
	const char *colon;
	unsigned long port;
	char *end;

	if (address[0] == '[') {
		const char *rb = strchr(address, ']');
		if (rb == NULL || rb[1] != ':' || (size_t)(rb - address - 1) >= sizeof host)
			return -EINVAL;
		memcpy(host, address + 1, (size_t)(rb - address - 1));
		host[rb - address - 1] = '\0';
		colon = rb + 1;
	} else {
		colon = strrchr(address, ':');
		if (colon == NULL || (size_t)(colon - address) >= sizeof host)
			return -EINVAL;
		memcpy(host, address, (size_t)(colon - address));
		host[colon - address] = '\0';
	}
	port = strtoul(colon + 1, &end, 10);
	if (*end != '\0' || port == 0 || port > 65535)
		return -EINVAL;
	if (uv_ip4_addr(host, (int)port, (struct sockaddr_in *)ss) == 0)
		return 0;
	if (uv_ip6_addr(host, (int)port, (struct sockaddr_in6 *)ss) == 0)
		return 0;
	return -EINVAL;
}

static void on_connected(uv_connect_t *req, int status)
{
	struct conn *c = req->data;

	if (c->state == C_CLOSING)
		return;
	if (status != 0) {
		/* Not worth a line: libraft retries every second and logs
		 * itself after 10 attempts. */
		c->status = RAFT_NOCONNECTION;
		conn_close(c);
		return;
	}
	if (c->impl->cfg.tcp_user_timeout_ms) /* raft/tcp_timeout.h */
		(void)tcp_timeout_apply((uv_stream_t *)&c->tcp, c->impl->cfg.tcp_user_timeout_ms);
	snprintf(c->peer, sizeof c->peer, "%.79s", c->address);
	conn_tls_start(c);
}

/* -------------------------------------------------- raft_uv_transport */

/* libraft lets these callbacks report RAFT_NOMEM; canopy's allocations abort
 * instead (common/xalloc.h), so they never do. */

static int t_init(struct raft_uv_transport *t, raft_id id, const char *address)
{
	struct impl *im = t->impl;
	im->id = id;
	snprintf(im->address, sizeof im->address, "%s", address);
	return 0;
}

static int t_listen(struct raft_uv_transport *t, raft_uv_accept_cb cb)
{
	struct impl *im = t->impl;
	struct sockaddr_storage ss;
	int rv;

	im->accept_cb = cb;
	if (parse_address(im->address, &ss) != 0) {
		snprintf(t->errmsg, sizeof t->errmsg, "invalid address %.200s", im->address);
		return RAFT_INVALID;
	}
	uv_tcp_init(im->loop, &im->listener);
	im->listener.data = im;
	im->listener_init = true;
	im->open_handles++;
	rv = uv_tcp_bind(&im->listener, (struct sockaddr *)&ss, 0);
	if (rv == 0)
		rv = uv_listen((uv_stream_t *)&im->listener, 128, on_listen);
	if (rv != 0) {
		snprintf(t->errmsg, sizeof t->errmsg, "listen on %.180s: %s", im->address, uv_strerror(rv));
		return RAFT_IOERR;
	}
	return 0;
}

static int t_connect(struct raft_uv_transport *t, struct raft_uv_connect *req, raft_id id,
		     const char *address, raft_uv_connect_cb cb)
{
	struct impl *im = t->impl;
	struct sockaddr_storage ss;
	struct conn *c;

	if (im->closing)
		return RAFT_CANCELED;
	if (parse_address(address, &ss) != 0)
		return RAFT_NOCONNECTION;
	c = conn_new(im, false);
	c->id = id;
	snprintf(c->address, sizeof c->address, "%s", address);
	c->state = C_TCP;
	c->connect.data = c;
	if (uv_tcp_connect(&c->connect, &c->tcp, (struct sockaddr *)&ss, on_connected) != 0) {
		conn_close(c); /* no request yet: nothing is reported */
		return RAFT_NOCONNECTION;
	}
	c->req = req;
	c->cb = cb;
	req->cb = cb;
	return 0;
}

static void on_listener_closed(uv_handle_t *h)
{
	struct impl *im = h->data;
	im->open_handles--;
	maybe_fire_close(im);
}

static void t_close(struct raft_uv_transport *t, raft_uv_transport_close_cb cb)
{
	struct impl *im = t->impl;
	struct conn *c, *next;

	im->closing = true;
	im->close_cb = cb;
	if (im->listener_init)
		uv_close((uv_handle_t *)&im->listener, on_listener_closed);
	for (c = im->conns; c != NULL; c = next) {
		next = c->next;
		conn_close(c);
	}
	maybe_fire_close(im);
}

int tls_transport_init(struct raft_uv_transport *t, uv_loop_t *loop,
		       const struct tls_transport_config *cfg, char *errmsg, size_t errlen)
{
	struct impl *im;
	int rv;

	if (cfg->ca_file == NULL || cfg->cert_file == NULL || cfg->key_file == NULL) {
		snprintf(errmsg, errlen, "cluster.tls needs ca, cert and key");
		return -EINVAL;
	}
	im = xcalloc(1, sizeof *im);
	im->t = t;
	im->loop = loop;
	im->cfg = *cfg;
	if ((size_t)snprintf(im->ca, sizeof im->ca, "%s", cfg->ca_file) >= sizeof im->ca ||
	    (size_t)snprintf(im->cert, sizeof im->cert, "%s", cfg->cert_file) >= sizeof im->cert ||
	    (size_t)snprintf(im->key, sizeof im->key, "%s", cfg->key_file) >= sizeof im->key) {
		snprintf(errmsg, errlen, "cluster.tls: path too long");
		rv = -ENAMETOOLONG;
		goto err_after_alloc;
	}
	im->cfg.ca_file = im->ca;
	im->cfg.cert_file = im->cert;
	im->cfg.key_file = im->key;
	im->ctx = ctx_load(im, errmsg, errlen, &rv);
	if (im->ctx == NULL)
		goto err_after_alloc;

	memset(t, 0, sizeof *t);
	t->impl = im;
	t->init = t_init;
	t->listen = t_listen;
	t->connect = t_connect;
	t->close = t_close;
	return 0;

err_after_alloc:
	free(im);
	return rv;
}

void tls_transport_free(struct raft_uv_transport *t)
{
	struct impl *im = t->impl;
	if (im == NULL)
		return;
	SSL_CTX_free(im->ctx);
	free(im);
	t->impl = NULL;
}
