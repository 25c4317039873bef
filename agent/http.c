/*
 * agent/http.c -- libmicrohttpd on libuv (see http.h).
 */
#include "agent/http.h"

#include <errno.h>
#include <microhttpd.h>
#include <netdb.h>
#include <sys/socket.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

#include <jansson.h>

#include "agent/log.h"
#include "common/xalloc.h"
#include "sync/text_json.h"

#define MAX_BODY HTTP_MAX_BODY /* control requests are small; refuse more */

/*
 * Connection limits (the issue: 70 slow-header connections took the API down
 * for 40 s). A client gets at most PER_IP_LIMIT connections, so one host
 * cannot fill the daemon's CONN_LIMIT; a connection idle for IDLE_TIMEOUT_S
 * (headers that stopped coming, an abandoned keep-alive) is dropped.
 */
#define CONN_LIMIT 256u
#define PER_IP_LIMIT 16u
#define IDLE_TIMEOUT_S 10u

/* Per-request state: the upload buffer and, when deferred, the answer. */
struct upload {
	char *buf;
	size_t len;
	int too_large;
};

struct conn_state {
	struct upload u;
	struct http_server *s;
	struct MHD_Connection *conn;
	struct http_pending *ticket; /* when deferred */
	bool deferred, answered;
	struct http_reply reply;
};

/*
 * The handle a deferring handler keeps. It outlives the connection: if the
 * server closes first (shutdown), http_finish() on it just frees it, so a
 * late Raft callback never touches a stopped daemon.
 */
struct http_pending {
	struct conn_state *c;       /* NULL once the connection is gone */
	struct http_server *s;
	struct http_pending *next;  /* in s->pending */
};

static void schedule(struct http_server *s);

static void run(struct http_server *s)
{
	MHD_run(s->daemon);
	schedule(s);
}

static void on_poll(uv_poll_t *p, int status, int events)
{
	(void)status;
	(void)events;
	run(p->data);
}

static void on_timer(uv_timer_t *t)
{
	run(t->data);
}

/* Arm the timer for MHD's next timeout (connection expiry, pending sends). */
static void schedule(struct http_server *s)
{
	MHD_UNSIGNED_LONG_LONG ms;
	if (MHD_get_timeout(s->daemon, &ms) == MHD_YES)
		uv_timer_start(&s->timer, on_timer, ms, 0);
	else
		uv_timer_stop(&s->timer);
}

static enum MHD_Result send_reply_ex(struct MHD_Connection *c, struct http_reply *r, bool close_after)
{
	struct MHD_Response *resp;
	enum MHD_Result ret;

	resp = xcheck(MHD_create_response_from_buffer(r->body_len, r->body, MHD_RESPMEM_MUST_FREE));
	MHD_add_response_header(resp, "Content-Type",
				r->content_type ? r->content_type : "application/json");
	if (r->location[0])
		MHD_add_response_header(resp, "Location", r->location);
	if (r->www_authenticate)
		MHD_add_response_header(resp, MHD_HTTP_HEADER_WWW_AUTHENTICATE, r->www_authenticate);
	for (const char *const *h = r->headers; h != NULL && h[0] != NULL && h[1] != NULL; h += 2)
		MHD_add_response_header(resp, h[0], h[1]);
	/* Refused before its body was read: where the next request would start
	 * is not known, so nothing more is read from this connection. */
	if (close_after)
		MHD_add_response_header(resp, MHD_HTTP_HEADER_CONNECTION, "close");
	ret = MHD_queue_response(c, r->status, resp);
	MHD_destroy_response(resp);
	return ret;
}

static enum MHD_Result send_reply(struct MHD_Connection *c, struct http_reply *r)
{
	return send_reply_ex(c, r, false);
}

static bool token_eq(const char *a, const char *b)
{
	return a != NULL && strcasecmp(a, b) == 0;
}

unsigned http_check_head(const struct http_head *h, struct http_reply *reply)
{
	if (h->origin != NULL) {
		http_reply_error(reply, 403, "requests from a web browser (Origin: header) are refused; "
					     "use canopyctl or curl");
		return 403;
	}
	if (h->n_content_length > 1 || h->n_transfer_encoding > 1) {
		http_reply_error(reply, 400, "repeated Content-Length or Transfer-Encoding header");
		return 400;
	}
	if (h->content_length != NULL && h->transfer_encoding != NULL) {
		http_reply_error(reply, 400, "both Content-Length and Transfer-Encoding (RFC 9112 section 6.3)");
		return 400;
	}
	if (h->transfer_encoding != NULL && !token_eq(h->transfer_encoding, "chunked")) {
		http_reply_error(reply, 501, "Transfer-Encoding %.40s is not supported (only chunked)",
				 h->transfer_encoding);
		return 501;
	}
	if (h->content_length != NULL) {
		const char *p = h->content_length;
		unsigned long long n = 0;
		if (*p == '\0') {
			http_reply_error(reply, 400, "empty Content-Length");
			return 400;
		}
		for (; *p; p++) {
			if (*p < '0' || *p > '9') {
				http_reply_error(reply, 400, "Content-Length is not a number");
				return 400;
			}
			n = n * 10 + (unsigned)(*p - '0');
			if (n > MAX_BODY)
				break;
		}
		if (n > MAX_BODY) {
			http_reply_error(reply, 413, "request body larger than %d bytes", MAX_BODY);
			return 413;
		}
	}
	if (h->method != NULL && strcmp(h->method, "POST") == 0) {
		const char *ct = h->content_type;
		size_t n = ct ? strcspn(ct, ";") : 0;
		while (n > 0 && (ct[n - 1] == ' ' || ct[n - 1] == '\t'))
			n--;
		if (ct == NULL || n != strlen("application/json") || strncasecmp(ct, "application/json", n) != 0) {
			http_reply_error(reply, 415, "a POST must have Content-Type: application/json");
			return 415;
		}
	}
	return 0;
}

static enum MHD_Result count_framing(void *cls, enum MHD_ValueKind kind, const char *key, const char *value)
{
	struct http_head *h = cls;
	(void)kind;
	(void)value;
	if (strcasecmp(key, MHD_HTTP_HEADER_CONTENT_LENGTH) == 0)
		h->n_content_length++;
	else if (strcasecmp(key, MHD_HTTP_HEADER_TRANSFER_ENCODING) == 0)
		h->n_transfer_encoding++;
	return MHD_YES;
}

/* Headers are complete: refuse what must not reach a handler (see http.h). */
static unsigned check_head(struct MHD_Connection *c, const char *method, struct http_reply *reply)
{
	struct http_head h;

	memset(&h, 0, sizeof h);
	h.method = method;
	h.origin = MHD_lookup_connection_value(c, MHD_HEADER_KIND, "Origin");
	h.content_type = MHD_lookup_connection_value(c, MHD_HEADER_KIND, MHD_HTTP_HEADER_CONTENT_TYPE);
	h.content_length = MHD_lookup_connection_value(c, MHD_HEADER_KIND, MHD_HTTP_HEADER_CONTENT_LENGTH);
	h.transfer_encoding = MHD_lookup_connection_value(c, MHD_HEADER_KIND, MHD_HTTP_HEADER_TRANSFER_ENCODING);
	MHD_get_connection_values(c, MHD_HEADER_KIND, count_framing, &h);
	return http_check_head(&h, reply);
}

static enum MHD_Result on_request(void *cls, struct MHD_Connection *c, const char *url,
				  const char *method, const char *version,
				  const char *upload_data, size_t *upload_size, void **con_cls)
{
	struct http_server *s = cls;
	struct conn_state *p = *con_cls;
	struct upload *u = p ? &p->u : NULL;
	struct http_request req;
	struct http_reply reply;

	(void)version;
	if (p == NULL) { /* first call: headers only */
		memset(&reply, 0, sizeof reply);
		if (check_head(c, method, &reply) != 0)
			return send_reply_ex(c, &reply, true);
		p = xcalloc(1, sizeof *p);
		p->s = s;
		p->conn = c;
		*con_cls = p;
		return MHD_YES;
	}
	if (p->answered) { /* resumed after http_finish() */
		enum MHD_Result r;
		p->answered = false;
		r = send_reply(c, &p->reply);
		p->reply.body = NULL; /* MHD owns it now */
		return r;
	}
	if (*upload_size > 0) {
		if (u->len + *upload_size > MAX_BODY) {
			u->too_large = 1;
		} else { /* at most MAX_BODY: checked above */
			u->buf = xrealloc(u->buf, u->len + *upload_size + 1);
			memcpy(u->buf + u->len, upload_data, *upload_size);
			u->len += *upload_size;
			u->buf[u->len] = '\0';
		}
		*upload_size = 0;
		return MHD_YES;
	}

	memset(&reply, 0, sizeof reply);
	if (u->too_large) {
		http_reply_error(&reply, 413, "request body larger than %d bytes", MAX_BODY);
	} else {
		req.method = method;
		req.path = url;
		req.body = u->buf ? u->buf : "";
		req.body_len = u->len;
		req.conn = c;
		req.priv = p;
		req.authorization = MHD_lookup_connection_value(c, MHD_HEADER_KIND, MHD_HTTP_HEADER_AUTHORIZATION);
		req.content_type = MHD_lookup_connection_value(c, MHD_HEADER_KIND, MHD_HTTP_HEADER_CONTENT_TYPE);
		s->handler(s->data, &req, &reply);
		if (p->deferred) {
			MHD_suspend_connection(c);
			p->ticket->next = s->pending;
			s->pending = p->ticket;
			return MHD_YES;
		}
	}
	return send_reply(c, &reply);
}

static void on_completed(void *cls, struct MHD_Connection *c, void **con_cls,
			 enum MHD_RequestTerminationCode toe)
{
	struct conn_state *p = *con_cls;
	(void)cls;
	(void)c;
	(void)toe;
	if (p) {
		if (p->ticket)
			p->ticket->c = NULL;
		free(p->reply.body);
		free(p->u.buf);
		free(p);
		*con_cls = NULL;
	}
}

static void on_mhd_log(void *cls, const char *fmt, va_list ap)
{
	char buf[512], q[600];
	size_t n;
	(void)cls;
	vsnprintf(buf, sizeof buf, fmt, ap);
	n = strlen(buf);
	while (n > 0 && buf[n - 1] == '\n')
		buf[--n] = '\0';
	log_warn("control API", "detail=%s", log_quote(q, sizeof q, buf));
}

/* Split "HOST:PORT" / "[V6]:PORT" and resolve it (numeric hosts or names). */
static int resolve(const char *address, struct sockaddr_storage *ss, socklen_t *len,
		   char *errmsg, size_t errlen)
{
	char host[256];
	const char *colon = strrchr(address, ':');
	const char *h = address;
	size_t hlen;
	struct addrinfo hints, *res = NULL;
	int rv;

	if (colon == NULL || colon[1] == '\0') {
		snprintf(errmsg, errlen, "%s: expected HOST:PORT", address);
		return -EINVAL;
	}
	hlen = (size_t)(colon - address);
	if (hlen >= 2 && address[0] == '[' && address[hlen - 1] == ']') {
		h++;
		hlen -= 2;
	}
	if (hlen == 0 || hlen >= sizeof host) {
		snprintf(errmsg, errlen, "%s: bad host", address);
		return -EINVAL;
	}
	memcpy(host, h, hlen);
	host[hlen] = '\0';
	memset(&hints, 0, sizeof hints);
	hints.ai_family = AF_UNSPEC;
	hints.ai_socktype = SOCK_STREAM;
	hints.ai_flags = AI_PASSIVE;
	rv = getaddrinfo(host, colon + 1, &hints, &res);
	if (rv != 0) {
		snprintf(errmsg, errlen, "%s: %s", address, gai_strerror(rv));
		return -EINVAL;
	}
	memcpy(ss, res->ai_addr, res->ai_addrlen);
	*len = res->ai_addrlen;
	freeaddrinfo(res);
	return 0;
}

int http_start(struct http_server *s, uv_loop_t *loop, const char *address,
	       http_handler_fn handler, void *data, char *errmsg, size_t errlen)
{
	struct sockaddr_storage ss;
	socklen_t sslen;
	const union MHD_DaemonInfo *info;
	unsigned flags = MHD_USE_EPOLL | MHD_USE_ERROR_LOG | MHD_ALLOW_SUSPEND_RESUME;
	int rv;

	memset(s, 0, sizeof *s);
	s->handler = handler;
	s->data = data;
	rv = resolve(address, &ss, &sslen, errmsg, errlen);
	if (rv != 0)
		return rv;
	if (ss.ss_family == AF_INET6)
		flags |= MHD_USE_IPv6;
	/* MHD reports bind errors only through its logger; check the port first
	 * so the error names the address and the cause. */
	{
		int fd = socket(ss.ss_family, SOCK_STREAM, 0), one = 1;
		if (fd >= 0) {
			setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
			if (bind(fd, (struct sockaddr *)&ss, sslen) != 0) {
				snprintf(errmsg, errlen, "control_address %s: %s", address,
					 strerror(errno));
				rv = -errno;
				close(fd);
				return rv;
			}
			close(fd);
		}
	}
	/* The logger must be the first option, or MHD logs the others' errors itself. */
	s->daemon = MHD_start_daemon(flags, 0, NULL, NULL, on_request, s,
				     MHD_OPTION_EXTERNAL_LOGGER, on_mhd_log, s,
				     MHD_OPTION_SOCK_ADDR, (struct sockaddr *)&ss,
				     MHD_OPTION_NOTIFY_COMPLETED, on_completed, s,
				     MHD_OPTION_CONNECTION_TIMEOUT, IDLE_TIMEOUT_S,
				     MHD_OPTION_CONNECTION_LIMIT, CONN_LIMIT,
				     MHD_OPTION_PER_IP_CONNECTION_LIMIT, PER_IP_LIMIT,
				     /* refuse malformed requests (bad header lines,
				      * whitespace before colons) instead of guessing */
				     MHD_OPTION_STRICT_FOR_CLIENT, (int)1, MHD_OPTION_END);
	if (s->daemon == NULL) {
		snprintf(errmsg, errlen, "control_address %s: cannot start HTTP server", address);
		return -EIO;
	}
	info = MHD_get_daemon_info(s->daemon, MHD_DAEMON_INFO_EPOLL_FD);
	if (info == NULL) {
		snprintf(errmsg, errlen, "control API: libmicrohttpd built without epoll");
		goto err_after_daemon;
	}
	uv_poll_init(loop, &s->poll, info->epoll_fd);
	s->poll.data = s;
	uv_poll_start(&s->poll, UV_READABLE, on_poll);
	uv_timer_init(loop, &s->timer);
	s->timer.data = s;
	s->open_handles = 2;
	schedule(s);
	return 0;

err_after_daemon:
	MHD_stop_daemon(s->daemon);
	s->daemon = NULL;
	return -EIO;
}

static void on_closed(uv_handle_t *h)
{
	struct http_server *s = h->data;
	if (--s->open_handles == 0 && s->close_cb)
		s->close_cb(s);
}

void http_close(struct http_server *s, void (*cb)(struct http_server *s))
{
	s->close_cb = cb;
	if (s->daemon == NULL) {
		if (cb)
			cb(s);
		return;
	}
	/* MHD refuses to stop with suspended connections: resume them, and
	 * detach their tickets, so that a late http_finish() only frees. */
	while (s->pending) {
		struct http_pending *t = s->pending;
		s->pending = t->next;
		t->next = NULL;
		if (t->c) {
			struct http_reply r;
			memset(&r, 0, sizeof r);
			http_reply_error(&r, 503, "the agent is stopping");
			t->c->reply = r;
			t->c->answered = true;
			t->c->deferred = false;
			t->c->ticket = NULL;
			MHD_resume_connection(t->c->conn);
			t->c = NULL;
		}
		t->s = NULL; /* http_finish must not touch the server */
	}
	MHD_run(s->daemon);
	/* Close the poll handle before MHD closes the epoll fd under it. */
	uv_poll_stop(&s->poll);
	uv_close((uv_handle_t *)&s->poll, on_closed);
	uv_close((uv_handle_t *)&s->timer, on_closed);
	MHD_stop_daemon(s->daemon);
	s->daemon = NULL;
}

struct http_pending *http_defer(const struct http_request *req)
{
	struct conn_state *p = req->priv;
	struct http_pending *t = xcalloc(1, sizeof *t);

	t->c = p;
	t->s = p->s;
	p->ticket = t;
	p->deferred = true;
	return t;
}

void http_undefer(const struct http_request *req)
{
	struct conn_state *p = req->priv;
	p->deferred = false;
	free(p->ticket);
	p->ticket = NULL;
}

bool http_pending_peer_closed(const struct http_pending *t)
{
	const union MHD_ConnectionInfo *ci;
	char b;
	ssize_t n;

	if (t->s == NULL || t->c == NULL)
		return true;
	ci = MHD_get_connection_info(t->c->conn, MHD_CONNECTION_INFO_CONNECTION_FD);
	if (ci == NULL)
		return false;
	n = recv(ci->connect_fd, &b, 1, MSG_PEEK | MSG_DONTWAIT);
	if (n == 0)
		return true;
	return n < 0 && errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR;
}

void http_finish(struct http_pending *t, struct http_reply *reply)
{
	struct http_server *s = t->s;
	struct conn_state *p = t->c;
	struct http_pending **pp;

	if (s == NULL) { /* detached when the server closed */
		free(t);
		free(reply->body);
		reply->body = NULL;
		return;
	}
	for (pp = &s->pending; *pp; pp = &(*pp)->next)
		if (*pp == t) {
			*pp = t->next;
			break;
		}
	free(t);
	if (p == NULL || s->daemon == NULL) { /* connection or server gone */
		free(reply->body);
		reply->body = NULL;
		return;
	}
	p->ticket = NULL;
	p->deferred = false;
	p->answered = true;
	p->reply = *reply;
	reply->body = NULL;
	MHD_resume_connection(p->conn);
	/* let MHD pick the connection up on the next iteration */
	uv_timer_start(&s->timer, on_timer, 0, 0);
}

const char *http_request_arg(const struct http_request *req, const char *name)
{
	return MHD_lookup_connection_value(req->conn, MHD_GET_ARGUMENT_KIND, name);
}

void http_reply_error(struct http_reply *reply, unsigned status, const char *fmt, ...)
{
	char msg[512];
	json_t *o;
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(msg, sizeof msg, fmt, ap);
	va_end(ap);
	/* the message may quote what a client sent, or be cut in the middle of
	 * a character: text_json */
	o = xcheck(json_pack("{s:o}", "error", text_json(msg)));
	reply->status = status;
	reply->content_type = "application/json";
	reply->body = xcheck(json_dumps(o, JSON_COMPACT));
	reply->body_len = strlen(reply->body);
	json_decref(o);
}
