/*
 * tests/tools/raft_wire_client.c -- replays crafted raft messages against a
 * member over the TLS transport (tests/integration/cluster_tls_test.sh).
 *
 *   raft_wire_client --ca CA [--cert PEM --key KEY] --id ID --address ADDR
 *                    --connect HOST:PORT --case NAME [--expect-refused]
 *
 * It speaks what raft/transport_tls.c speaks: TLS 1.3 with a client
 * certificate, libraft's handshake (uv_tcp_connect.c), the member's 8-byte
 * verdict, then raft messages (uv_encoding.c). Cases (the libraft 0.15
 * decoder findings, raft/wire_check.h):
 *   append-type0      a 96-byte AppendEntries carrying one entry of type 0
 *   oversized-count   an AppendEntries announcing 2^40 entries in a 64-byte header
 *   handshake-no-nul  a handshake whose 16-byte address has no NUL
 *   bad-length        a RequestVote with an 8-byte header
 *   forged-entry      a well-formed AppendEntries with one command entry
 *                     "d:forged-by-stranger" (term 1)
 * Exit 0 when the member dropped the connection after the case (or, with
 * --expect-refused, refused the client before any raft message was taken);
 * 1 otherwise, with the reason on stderr.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <openssl/err.h>
#include <openssl/ssl.h>
#include <poll.h>
#include <signal.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

static void put64(uint8_t *p, uint64_t v)
{
	for (int i = 0; i < 8; i++)
		p[i] = (uint8_t)(v >> (8 * i));
}

static void put32(uint8_t *p, uint32_t v)
{
	for (int i = 0; i < 4; i++)
		p[i] = (uint8_t)(v >> (8 * i));
}

static size_t handshake(uint8_t *b, uint64_t id, const char *address, bool nul)
{
	size_t alen = nul ? (strlen(address) + 1 + 7) / 8 * 8 : 16;
	put64(b, 1);
	put64(b + 8, id);
	put64(b + 16, alen);
	memset(b + 24, nul ? 0 : 'A', alen);
	if (nul)
		memcpy(b + 24, address, strlen(address));
	return 24 + alen;
}

/* AppendEntries (uv_encoding.c): preamble, header (term, prev index, prev
 * term, commit, n, n entry headers, 8 unused bytes), payload. */
static size_t append_entries(uint8_t *b, uint64_t announced, uint8_t type, const char *data,
			     size_t dlen)
{
	size_t hlen = 48 + 16;
	memset(b, 0, 16 + hlen + dlen);
	put64(b, 1);         /* RAFT_IO_APPEND_ENTRIES */
	put64(b + 8, hlen);
	put64(b + 16, 1);    /* term */
	put64(b + 24, 0);    /* prev log index */
	put64(b + 32, 0);    /* prev log term */
	put64(b + 40, 0);    /* leader commit */
	put64(b + 48, announced);
	put64(b + 56, 1);    /* entry term */
	b[64] = type;
	put32(b + 68, (uint32_t)dlen);
	memcpy(b + 16 + hlen, data, dlen); /* b + 72: 8 unused header bytes */
	return 16 + hlen + dlen;
}

static SSL_CTX *ctx;
static SSL *ssl;
static int fd = -1;

static int run(int argc, char **argv)
{
	const char *ca = NULL, *cert = NULL, *key = NULL, *address = NULL, *connect_to = NULL, *kase = NULL;
	uint64_t id = 0;
	bool expect_refused = false;
	uint8_t buf[4096];
	size_t n = 0;

	for (int i = 1; i < argc; i++) {
		const char *a = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
		if (strcmp(a, "--expect-refused") == 0) {
			expect_refused = true;
			continue;
		}
		if (v == NULL) {
			fprintf(stderr, "%s needs a value\n", a);
			return 2;
		}
		i++;
		if (strcmp(a, "--ca") == 0)
			ca = v;
		else if (strcmp(a, "--cert") == 0)
			cert = v;
		else if (strcmp(a, "--key") == 0)
			key = v;
		else if (strcmp(a, "--id") == 0)
			id = strtoull(v, NULL, 10);
		else if (strcmp(a, "--address") == 0)
			address = v;
		else if (strcmp(a, "--connect") == 0)
			connect_to = v;
		else if (strcmp(a, "--case") == 0)
			kase = v;
		else {
			fprintf(stderr, "unknown option %s\n", a);
			return 2;
		}
	}
	/* A member that drops the connection may do so while we write:
	 * that is an answer (EPIPE), not a reason to die. */
	signal(SIGPIPE, SIG_IGN);
	if (!ca || !address || !connect_to || !kase || id == 0) {
		fprintf(stderr, "usage: see the comment at the top of raft_wire_client.c\n");
		return 2;
	}

	ctx = SSL_CTX_new(TLS_client_method());
	SSL_CTX_set_min_proto_version(ctx, TLS1_3_VERSION);
	SSL_CTX_load_verify_locations(ctx, ca, NULL);
	SSL_CTX_set_verify(ctx, SSL_VERIFY_PEER, NULL);
	if (cert && (SSL_CTX_use_certificate_chain_file(ctx, cert) != 1 ||
		     SSL_CTX_use_PrivateKey_file(ctx, key, SSL_FILETYPE_PEM) != 1)) {
		fprintf(stderr, "cannot load %s / %s\n", cert, key);
		return 1;
	}

	char host[64];
	const char *colon = strrchr(connect_to, ':');
	snprintf(host, sizeof host, "%.*s", (int)(colon - connect_to), connect_to);
	struct sockaddr_in sa = {.sin_family = AF_INET, .sin_port = htons((uint16_t)atoi(colon + 1))};
	inet_pton(AF_INET, host, &sa.sin_addr);
	fd = socket(AF_INET, SOCK_STREAM, 0);
	if (connect(fd, (struct sockaddr *)&sa, sizeof sa) != 0) {
		fprintf(stderr, "connect %s: %s\n", connect_to, strerror(errno));
		return 1;
	}
	struct timeval tv = {.tv_sec = 5};
	setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
	ssl = SSL_new(ctx);
	SSL_set_fd(ssl, fd);
	if (SSL_connect(ssl) != 1) {
		unsigned long e = ERR_get_error();
		fprintf(stderr, "TLS handshake failed: %s\n", ERR_reason_error_string(e));
		return expect_refused ? 0 : 1;
	}

	bool bad_handshake = strcmp(kase, "handshake-no-nul") == 0;
	n = handshake(buf, id, address, !bad_handshake);
	if (SSL_write(ssl, buf, (int)n) <= 0) {
		fprintf(stderr, "write failed\n");
		return expect_refused ? 0 : 1;
	}
	if (!bad_handshake) {
		uint8_t verdict[8];
		int r = SSL_read(ssl, verdict, sizeof verdict);
		if (r != 8) {
			unsigned long e = ERR_get_error();
			fprintf(stderr, "refused before the verdict: %s\n",
				e ? ERR_reason_error_string(e) : "connection closed");
			return expect_refused ? 0 : 1;
		}
		for (int i = 0; i < 8; i++)
			if (verdict[i] != 0) {
				fprintf(stderr, "refused by verdict\n");
				return expect_refused ? 0 : 1;
			}
		if (expect_refused) {
			fprintf(stderr, "accepted, but a refusal was expected\n");
			return 1;
		}

		char data[24] = "d:forged-by-stranger";
		if (strcmp(kase, "append-type0") == 0) {
			n = append_entries(buf, 1, 0, data, 16); /* 16 + 64 + 16 = 96 bytes */
		} else if (strcmp(kase, "oversized-count") == 0) {
			n = append_entries(buf, (uint64_t)1 << 40, 1, data, 16);
		} else if (strcmp(kase, "bad-length") == 0) {
			memset(buf, 0, 24);
			put64(buf, 3); /* RAFT_IO_REQUEST_VOTE */
			put64(buf + 8, 8);
			put64(buf + 16, 99);
			n = 24;
		} else if (strcmp(kase, "forged-entry") == 0) {
			n = append_entries(buf, 1, 1, data, 24);
		} else {
			fprintf(stderr, "unknown case %s\n", kase);
			return 2;
		}
		if (SSL_write(ssl, buf, (int)n) <= 0 && strcmp(kase, "forged-entry") == 0) {
			fprintf(stderr, "write of the case failed\n");
			return 1;
		}
		if (strcmp(kase, "forged-entry") == 0) {
			fprintf(stderr, "well-formed message sent\n");
			return 0;
		}
	}
	/* The member must close the connection: read until EOF or error. */
	for (;;) {
		errno = 0;
		int r = SSL_read(ssl, buf, sizeof buf);
		if (r > 0)
			continue;
		int err = SSL_get_error(ssl, r);
		if (err == SSL_ERROR_WANT_READ || errno == EAGAIN || errno == EWOULDBLOCK) {
			fprintf(stderr, "connection still open after 5 s: case %s was not dropped\n", kase);
			return 1;
		}
		printf("dropped: %s\n", kase);
		return 0;
	}
}

/* Everything freed on every path, so that a sanitizer build of this tool
 * exits with the code run() chose, not LeakSanitizer's. */
int main(int argc, char **argv)
{
	int rc = run(argc, argv);
	fflush(stdout);
	SSL_free(ssl);
	SSL_CTX_free(ctx);
	if (fd >= 0)
		close(fd);
	return rc;
}
