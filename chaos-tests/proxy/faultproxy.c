/* chaos-tests/proxy/faultproxy.c -- a TCP fault proxy for the chaos suite.
 *
 * Why it exists: the kernel our CI runs on has no netem (sch_netem), so
 * `tc qdisc ... netem delay/rate/loss` is not available. nftables (which we do
 * have) can drop packets but cannot delay, throttle or stall a stream, nor
 * reset one connection in the middle of a request. This proxy sits on the path
 * between an agent and slapd, the SCIM target or another agent's raft port and
 * adds those faults at the stream level, changeable while it runs, so a
 * scenario can turn a fault on, watch the cluster, and turn it off again.
 *
 *   faultproxy --listen HOST:PORT --to HOST:PORT [--control HOST:PORT]
 *
 * It prints "listening PORT control PORT" on stdout once both accept (PORT 0
 * picks a free port). The control port takes one command per line and answers
 * each with one line, "ok ..." or "error ...":
 *
 *   delay MS        every chunk read waits MS before it is forwarded (both ways)
 *   jitter MS       plus a uniform random 0..MS per chunk (order is kept)
 *   rate BYTES      at most BYTES per second per direction and connection (0: off)
 *   stall on|off    hold every byte: connections stay open, nothing moves
 *   reset           reset (RST) every open connection now
 *   reset_new PCT   reset PCT % of new connections right after they are accepted
 *   reset_mid PCT   reset the connection on PCT % of the chunks read (mid-request)
 *   clear           every fault off (a stall is released)
 *   stats           accepted=N active=N resets=N bytes_up=N bytes_down=N
 *
 * Buffering is bounded: a direction holding more than PROXY_QUEUE_CAP bytes
 * stops reading from its sender until half of it is written (TCP back-pressure
 * then reaches the sender, as a slow network would). */
#include <arpa/inet.h>
#include <errno.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <uv.h>

#define PROXY_QUEUE_CAP (1u << 20)
#define PROXY_READ_MAX 16384
#define PROXY_LINE_MAX 256

struct chunk {
	struct chunk *next;
	uint64_t due; /* uv_now() ms at which it may be written */
	size_t len;   /* 0 with eof: forward the end of stream */
	int eof;
	char data[];
};

struct conn;

/* One direction of a connection: bytes read from `from`, written to `to`. */
struct dir {
	struct conn *c;
	uv_tcp_t *from, *to;
	struct chunk *head, *tail;
	size_t queued;
	uint64_t last_due;  /* keeps chunks in order under jitter */
	uint64_t next_free; /* bandwidth: when the next chunk may leave */
	uv_timer_t timer;
	int reading, eof_seen, eof_done;
	uint64_t *bytes;
};

struct conn {
	uv_tcp_t client, upstream;
	uv_connect_t connect_req;
	struct dir up, down;
	int connected, closing, open_handles;
	struct conn *prev, *next;
};

struct proxy_write {
	uv_write_t req;
	struct dir *d;
	struct chunk *ch;
};

static struct {
	uv_loop_t *loop;
	struct sockaddr_storage to;
	unsigned delay_ms, jitter_ms, reset_new_pct, reset_mid_pct;
	uint64_t rate; /* bytes per second, 0: unlimited */
	int stalled;
	struct conn *conns;
	uint64_t accepted, active, resets, bytes_up, bytes_down;
} P;

static void dir_kick(struct dir *d);

static unsigned proxy_rand(unsigned n)
{
	return n ? (unsigned)(random() % n) : 0;
}

static void conn_handle_closed(uv_handle_t *h)
{
	struct conn *c = h->data ? ((struct dir *)h->data)->c : NULL;
	struct dir *dirs[2];
	int i;

	if (c == NULL || --c->open_handles > 0)
		return;
	dirs[0] = &c->up;
	dirs[1] = &c->down;
	for (i = 0; i < 2; i++) {
		while (dirs[i]->head) {
			struct chunk *n = dirs[i]->head->next;
			free(dirs[i]->head);
			dirs[i]->head = n;
		}
	}
	free(c);
}

/* Close every handle of the connection; with `reset`, the client and a
 * connected upstream get an RST instead of a FIN (uv_tcp_close_reset). */
static void conn_close(struct conn *c, int reset)
{
	if (c->closing)
		return;
	c->closing = 1;
	P.active--;
	if (reset)
		P.resets++;
	if (c->prev)
		c->prev->next = c->next;
	else
		P.conns = c->next;
	if (c->next)
		c->next->prev = c->prev;
	uv_timer_stop(&c->up.timer);
	uv_timer_stop(&c->down.timer);
	uv_close((uv_handle_t *)&c->up.timer, conn_handle_closed);
	uv_close((uv_handle_t *)&c->down.timer, conn_handle_closed);
	if (!reset || uv_tcp_close_reset(&c->client, conn_handle_closed) != 0)
		uv_close((uv_handle_t *)&c->client, conn_handle_closed);
	if (!reset || !c->connected || uv_tcp_close_reset(&c->upstream, conn_handle_closed) != 0)
		uv_close((uv_handle_t *)&c->upstream, conn_handle_closed);
}

static void on_alloc(uv_handle_t *h, size_t suggested, uv_buf_t *buf)
{
	struct chunk *ch = malloc(sizeof *ch + PROXY_READ_MAX);

	(void)h;
	(void)suggested;
	if (ch == NULL) {
		*buf = uv_buf_init(NULL, 0);
		return;
	}
	*buf = uv_buf_init(ch->data, PROXY_READ_MAX);
}

static void dir_push(struct dir *d, struct chunk *ch)
{
	uint64_t due = uv_now(P.loop) + P.delay_ms + proxy_rand(P.jitter_ms + 1);

	if (due < d->last_due)
		due = d->last_due;
	d->last_due = due;
	ch->due = due;
	ch->next = NULL;
	if (d->tail)
		d->tail->next = ch;
	else
		d->head = ch;
	d->tail = ch;
	d->queued += ch->len;
}

static void on_read(uv_stream_t *s, ssize_t nread, const uv_buf_t *buf)
{
	struct dir *d = s->data;
	struct conn *c = d->c;
	struct chunk *ch = buf->base ? (struct chunk *)(buf->base - offsetof(struct chunk, data)) : NULL;

	if (nread == 0 || c->closing) {
		free(ch);
		return;
	}
	if (nread < 0) {
		free(ch);
		if (nread != UV_EOF) {
			conn_close(c, 1);
			return;
		}
		uv_read_stop(s);
		d->reading = 0;
		d->eof_seen = 1;
		ch = calloc(1, sizeof *ch);
		if (ch == NULL) {
			conn_close(c, 1);
			return;
		}
		ch->eof = 1;
		dir_push(d, ch);
		dir_kick(d);
		return;
	}
	ch->len = (size_t)nread;
	ch->eof = 0;
	if (P.reset_mid_pct && proxy_rand(100) < P.reset_mid_pct) {
		free(ch);
		conn_close(c, 1);
		return;
	}
	dir_push(d, ch);
	if (d->queued > PROXY_QUEUE_CAP && d->reading) {
		uv_read_stop(s);
		d->reading = 0;
	}
	dir_kick(d);
}

static void on_shutdown(uv_shutdown_t *req, int status)
{
	struct dir *d = req->data;

	free(req);
	if (status == UV_ECANCELED)
		return;
	d->eof_done = 1;
	if (d->c->up.eof_done && d->c->down.eof_done)
		conn_close(d->c, 0);
}

static void on_write(uv_write_t *req, int status)
{
	struct proxy_write *w = (struct proxy_write *)req;
	struct dir *d = w->d;

	d->queued -= w->ch->len;
	free(w->ch);
	free(w);
	if (status == UV_ECANCELED || d->c->closing)
		return;
	if (status < 0) {
		conn_close(d->c, 1);
		return;
	}
	if (!d->reading && !d->eof_seen && d->queued < PROXY_QUEUE_CAP / 2) {
		d->reading = 1;
		uv_read_start((uv_stream_t *)d->from, on_alloc, on_read);
	}
}

static void on_dir_timer(uv_timer_t *t)
{
	dir_kick(t->data);
}

/* Write every chunk that is due, within the bandwidth; arm the timer for the
 * next one. Nothing moves while stalled or before the upstream connected. */
static void dir_kick(struct dir *d)
{
	struct conn *c = d->c;
	uint64_t now = uv_now(P.loop);

	if (c->closing || P.stalled || !c->connected)
		return;
	while (d->head) {
		struct chunk *ch = d->head;
		uint64_t at = ch->due > d->next_free ? ch->due : d->next_free;

		if (at > now) {
			uv_timer_start(&d->timer, on_dir_timer, at - now, 0);
			return;
		}
		d->head = ch->next;
		if (d->head == NULL)
			d->tail = NULL;
		if (ch->eof) {
			uv_shutdown_t *sr = malloc(sizeof *sr);

			free(ch);
			if (sr == NULL || uv_shutdown(sr, (uv_stream_t *)d->to, on_shutdown) != 0) {
				free(sr);
				conn_close(c, 1);
				return;
			}
			sr->data = d;
			continue;
		}
		if (P.rate)
			d->next_free = (d->next_free > now ? d->next_free : now) + ch->len * 1000 / P.rate;
		*d->bytes += ch->len;
		struct proxy_write *w = malloc(sizeof *w);
		uv_buf_t b = uv_buf_init(ch->data, (unsigned)ch->len);
		if (w == NULL) {
			d->queued -= ch->len;
			free(ch);
			conn_close(c, 1);
			return;
		}
		w->d = d;
		w->ch = ch;
		if (uv_write(&w->req, (uv_stream_t *)d->to, &b, 1, on_write) != 0) {
			d->queued -= ch->len;
			free(ch);
			free(w);
			conn_close(c, 1);
			return;
		}
	}
}

static void kick_all(void)
{
	struct conn *c;

	for (c = P.conns; c; c = c->next) {
		dir_kick(&c->up);
		dir_kick(&c->down);
	}
}

static void on_upstream_connect(uv_connect_t *req, int status)
{
	struct conn *c = req->data;

	if (c->closing)
		return;
	if (status < 0) {
		/* The real server refuses: the client sees a reset, as it would
		 * connecting to the server itself. */
		conn_close(c, 1);
		return;
	}
	c->connected = 1;
	c->down.reading = 1;
	uv_read_start((uv_stream_t *)&c->upstream, on_alloc, on_read);
	dir_kick(&c->up);
}

static void dir_init(struct dir *d, struct conn *c, uv_tcp_t *from, uv_tcp_t *to, uint64_t *bytes)
{
	d->c = c;
	d->from = from;
	d->to = to;
	d->bytes = bytes;
	uv_timer_init(P.loop, &d->timer);
	d->timer.data = d;
}

static void on_accept(uv_stream_t *server, int status)
{
	struct conn *c;

	if (status < 0)
		return;
	c = calloc(1, sizeof *c);
	if (c == NULL)
		return;
	uv_tcp_init(P.loop, &c->client);
	if (uv_accept(server, (uv_stream_t *)&c->client) != 0) {
		c->client.data = NULL;
		uv_close((uv_handle_t *)&c->client, NULL);
		free(c);
		return;
	}
	uv_tcp_init(P.loop, &c->upstream);
	dir_init(&c->up, c, &c->client, &c->upstream, &P.bytes_up);
	dir_init(&c->down, c, &c->upstream, &c->client, &P.bytes_down);
	c->client.data = &c->up;
	c->upstream.data = &c->down;
	c->open_handles = 4;
	c->next = P.conns;
	if (P.conns)
		P.conns->prev = c;
	P.conns = c;
	P.accepted++;
	P.active++;
	uv_tcp_nodelay(&c->client, 1);
	uv_tcp_nodelay(&c->upstream, 1);
	if (P.reset_new_pct && proxy_rand(100) < P.reset_new_pct) {
		conn_close(c, 1);
		return;
	}
	c->connect_req.data = c;
	if (uv_tcp_connect(&c->connect_req, &c->upstream, (struct sockaddr *)&P.to, on_upstream_connect) != 0) {
		conn_close(c, 1);
		return;
	}
	c->up.reading = 1;
	uv_read_start((uv_stream_t *)&c->client, on_alloc, on_read);
}

/* ---------------------------------------------------------------- control */

struct ctl {
	uv_tcp_t tcp;
	size_t n;
	char line[PROXY_LINE_MAX];
};

static void ctl_closed(uv_handle_t *h)
{
	free(h->data);
}

static void ctl_written(uv_write_t *req, int status)
{
	(void)status;
	free(req);
}

static void ctl_reply(struct ctl *k, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void ctl_reply(struct ctl *k, const char *fmt, ...)
{
	uv_write_t *req = malloc(sizeof *req + 512);
	char *text;
	va_list ap;
	int n;

	if (req == NULL)
		return;
	text = (char *)(req + 1);
	va_start(ap, fmt);
	n = vsnprintf(text, 511, fmt, ap);
	va_end(ap);
	if (n < 0 || n > 510)
		n = 510;
	text[n++] = '\n';
	uv_buf_t b = uv_buf_init(text, (unsigned)n);
	if (uv_write(req, (uv_stream_t *)&k->tcp, &b, 1, ctl_written) != 0)
		free(req);
}

static int parse_uint(const char *s, unsigned long max, unsigned long *out)
{
	char *end;
	unsigned long v;

	if (s == NULL || *s == '\0')
		return -EINVAL;
	errno = 0;
	v = strtoul(s, &end, 10);
	if (errno || *end != '\0' || v > max)
		return -EINVAL;
	*out = v;
	return 0;
}

static void ctl_command(struct ctl *k, char *line)
{
	char *cmd = strtok(line, " \t\r");
	char *arg = strtok(NULL, " \t\r");
	unsigned long v = 0;

	if (cmd == NULL) {
		ctl_reply(k, "error empty command");
		return;
	}
	if (strcmp(cmd, "stats") == 0) {
		ctl_reply(k, "ok accepted=%llu active=%llu resets=%llu bytes_up=%llu bytes_down=%llu "
			     "delay=%u jitter=%u rate=%llu stalled=%d reset_new=%u reset_mid=%u",
			  (unsigned long long)P.accepted, (unsigned long long)P.active,
			  (unsigned long long)P.resets, (unsigned long long)P.bytes_up,
			  (unsigned long long)P.bytes_down, P.delay_ms, P.jitter_ms, (unsigned long long)P.rate,
			  P.stalled, P.reset_new_pct, P.reset_mid_pct);
		return;
	}
	if (strcmp(cmd, "clear") == 0) {
		P.delay_ms = P.jitter_ms = P.reset_new_pct = P.reset_mid_pct = 0;
		P.rate = 0;
		P.stalled = 0;
		kick_all();
		ctl_reply(k, "ok clear");
		return;
	}
	if (strcmp(cmd, "reset") == 0) {
		unsigned n = 0;
		while (P.conns) {
			conn_close(P.conns, 1);
			n++;
		}
		ctl_reply(k, "ok reset %u", n);
		return;
	}
	if (strcmp(cmd, "stall") == 0) {
		if (arg && strcmp(arg, "on") == 0) {
			P.stalled = 1;
		} else if (arg && strcmp(arg, "off") == 0) {
			P.stalled = 0;
			kick_all();
		} else {
			ctl_reply(k, "error stall on|off");
			return;
		}
		ctl_reply(k, "ok stall %s", arg);
		return;
	}
	if (strcmp(cmd, "delay") == 0 || strcmp(cmd, "jitter") == 0) {
		if (parse_uint(arg, 600000, &v) != 0) {
			ctl_reply(k, "error %s MS (0..600000)", cmd);
			return;
		}
		if (cmd[0] == 'd')
			P.delay_ms = (unsigned)v;
		else
			P.jitter_ms = (unsigned)v;
		ctl_reply(k, "ok %s %lu", cmd, v);
		return;
	}
	if (strcmp(cmd, "rate") == 0) {
		if (parse_uint(arg, 1ul << 40, &v) != 0) {
			ctl_reply(k, "error rate BYTES_PER_SECOND");
			return;
		}
		P.rate = v;
		ctl_reply(k, "ok rate %lu", v);
		return;
	}
	if (strcmp(cmd, "reset_new") == 0 || strcmp(cmd, "reset_mid") == 0) {
		if (parse_uint(arg, 100, &v) != 0) {
			ctl_reply(k, "error %s PERCENT (0..100)", cmd);
			return;
		}
		if (strcmp(cmd, "reset_new") == 0)
			P.reset_new_pct = (unsigned)v;
		else
			P.reset_mid_pct = (unsigned)v;
		ctl_reply(k, "ok %s %lu", cmd, v);
		return;
	}
	ctl_reply(k, "error unknown command %s", cmd);
}

static void ctl_alloc(uv_handle_t *h, size_t suggested, uv_buf_t *buf)
{
	static char b[PROXY_LINE_MAX];

	(void)h;
	(void)suggested;
	*buf = uv_buf_init(b, sizeof b);
}

static void ctl_read(uv_stream_t *s, ssize_t nread, const uv_buf_t *buf)
{
	struct ctl *k = s->data;
	ssize_t i;

	if (nread < 0) {
		uv_close((uv_handle_t *)s, ctl_closed);
		return;
	}
	for (i = 0; i < nread; i++) {
		char ch = buf->base[i];
		if (ch == '\n') {
			k->line[k->n] = '\0';
			ctl_command(k, k->line);
			k->n = 0;
		} else if (k->n < sizeof k->line - 1) {
			k->line[k->n++] = ch;
		}
	}
}

static void ctl_accept(uv_stream_t *server, int status)
{
	struct ctl *k;

	if (status < 0)
		return;
	k = calloc(1, sizeof *k);
	if (k == NULL)
		return;
	uv_tcp_init(P.loop, &k->tcp);
	k->tcp.data = k;
	if (uv_accept(server, (uv_stream_t *)&k->tcp) != 0) {
		uv_close((uv_handle_t *)&k->tcp, ctl_closed);
		return;
	}
	uv_read_start((uv_stream_t *)&k->tcp, ctl_alloc, ctl_read);
}

/* ---------------------------------------------------------------- main */

static int parse_addr(const char *s, struct sockaddr_storage *out, char *errmsg, size_t errlen)
{
	char host[64];
	const char *colon = strrchr(s, ':');
	unsigned long port;
	size_t hl;

	if (colon == NULL || (hl = (size_t)(colon - s)) == 0 || hl >= sizeof host ||
	    parse_uint(colon + 1, 65535, &port) != 0) {
		snprintf(errmsg, errlen, "%s: want HOST:PORT", s);
		return -EINVAL;
	}
	memcpy(host, s, hl);
	host[hl] = '\0';
	if (uv_ip4_addr(host, (int)port, (struct sockaddr_in *)out) != 0) {
		snprintf(errmsg, errlen, "%s: not an IPv4 address", s);
		return -EINVAL;
	}
	return 0;
}

static int bound_port(uv_tcp_t *t)
{
	struct sockaddr_storage ss;
	int len = sizeof ss;

	if (uv_tcp_getsockname(t, (struct sockaddr *)&ss, &len) != 0)
		return -1;
	return ntohs(((struct sockaddr_in *)&ss)->sin_port);
}

static int listen_on(uv_tcp_t *t, const char *addr, uv_connection_cb cb, char *errmsg, size_t errlen)
{
	struct sockaddr_storage ss;
	int rv;

	if ((rv = parse_addr(addr, &ss, errmsg, errlen)) != 0)
		return rv;
	uv_tcp_init(P.loop, t);
	if ((rv = uv_tcp_bind(t, (struct sockaddr *)&ss, 0)) != 0 || (rv = uv_listen((uv_stream_t *)t, 128, cb)) != 0) {
		snprintf(errmsg, errlen, "listen on %s: %s", addr, uv_strerror(rv));
		return rv;
	}
	return 0;
}

static void usage(void)
{
	fprintf(stderr, "usage: faultproxy --listen HOST:PORT --to HOST:PORT [--control HOST:PORT]\n");
	exit(2);
}

int main(int argc, char **argv)
{
	const char *listen_addr = NULL, *to_addr = NULL, *control_addr = "127.0.0.1:0";
	uv_tcp_t server, control;
	char errmsg[256];
	int i;

	for (i = 1; i < argc; i++) {
		if (i + 1 < argc && strcmp(argv[i], "--listen") == 0)
			listen_addr = argv[++i];
		else if (i + 1 < argc && strcmp(argv[i], "--to") == 0)
			to_addr = argv[++i];
		else if (i + 1 < argc && strcmp(argv[i], "--control") == 0)
			control_addr = argv[++i];
		else
			usage();
	}
	if (listen_addr == NULL || to_addr == NULL)
		usage();
	srandom((unsigned)uv_hrtime());
	P.loop = uv_default_loop();
	if (parse_addr(to_addr, &P.to, errmsg, sizeof errmsg) != 0 ||
	    listen_on(&server, listen_addr, on_accept, errmsg, sizeof errmsg) != 0 ||
	    listen_on(&control, control_addr, ctl_accept, errmsg, sizeof errmsg) != 0) {
		fprintf(stderr, "faultproxy: %s\n", errmsg);
		return 1;
	}
	/* The proxy's peer may vanish mid-write (that is the point): a write to it
	 * must fail with EPIPE, not kill the proxy. */
	signal(SIGPIPE, SIG_IGN);
	printf("listening %d control %d\n", bound_port(&server), bound_port(&control));
	fflush(stdout);
	return uv_run(P.loop, UV_RUN_DEFAULT);
}
