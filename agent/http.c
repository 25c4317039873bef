/*
 * agent/http.c -- libmicrohttpd on libuv (see http.h).
 */
#include "agent/http.h"

#include <errno.h>
#include <microhttpd.h>
#include <netdb.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <jansson.h>

#include "agent/log.h"

#define MAX_BODY (1024 * 1024) /* control requests are small; refuse more */

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

static enum MHD_Result send_reply(struct MHD_Connection *c, struct http_reply *r)
{
	struct MHD_Response *resp;
	enum MHD_Result ret;

	resp = MHD_create_response_from_buffer(r->body_len, r->body, MHD_RESPMEM_MUST_FREE);
	if (resp == NULL) {
		free(r->body);
		return MHD_NO;
	}
	MHD_add_response_header(resp, "Content-Type",
				r->content_type ? r->content_type : "application/json");
	if (r->location[0])
		MHD_add_response_header(resp, "Location", r->location);
	ret = MHD_queue_response(c, r->status, resp);
	MHD_destroy_response(resp);
	return ret;
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
		p = calloc(1, sizeof *p);
		if (p == NULL)
			return MHD_NO;
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
		} else {
			char *b = realloc(u->buf, u->len + *upload_size + 1);
			if (b == NULL)
				return MHD_NO;
			memcpy(b + u->len, upload_data, *upload_size);
			u->buf = b;
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
				     MHD_OPTION_CONNECTION_TIMEOUT, 30u,
				     MHD_OPTION_CONNECTION_LIMIT, 64u, MHD_OPTION_END);
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
	struct http_pending *t = calloc(1, sizeof *t);

	if (t == NULL)
		return NULL; /* the handler sees NULL and answers at once */
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
	o = json_pack("{s:s}", "error", msg);
	reply->status = status;
	reply->content_type = "application/json";
	reply->body = o ? json_dumps(o, JSON_COMPACT) : NULL;
	if (reply->body == NULL)
		reply->body = strdup("{\"error\":\"out of memory\"}");
	reply->body_len = reply->body ? strlen(reply->body) : 0;
	json_decref(o);
}
