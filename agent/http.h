/*
 * agent/http.h -- the control API's HTTP server, on the agent's libuv loop.
 *
 * libmicrohttpd does the HTTP protocol work (parsing, keep-alive, limits); it
 * runs without threads of its own, in "external epoll" mode: its epoll
 * descriptor is watched with uv_poll and MHD_run() is called when it is
 * readable, plus a uv_timer for MHD's own timeouts. So every handler runs on
 * the loop thread and may read agent and raft state without locks.
 */
#ifndef CANOPY_AGENT_HTTP_H
#define CANOPY_AGENT_HTTP_H

#include <stdbool.h>
#include <stddef.h>
#include <uv.h>

struct http_request {
	const char *method; /* "GET", "POST", ... */
	const char *path;   /* without the query string */
	const char *body;   /* NUL-terminated request body ("" when none) */
	size_t body_len;
	void *conn;         /* for http_request_arg() */
	void *priv;         /* for http_defer() */
	/* Headers the handlers decide on (NULL when absent). */
	const char *authorization;
	const char *content_type;
};

struct http_reply {
	unsigned status;          /* HTTP status code */
	const char *content_type; /* static string */
	char *body;               /* malloc'd; freed by the server */
	size_t body_len;
	char location[256];       /* optional Location header (redirects) */
	const char *www_authenticate; /* static; the WWW-Authenticate header of a 401 */
	/* More headers, static: name, value, name, value, ..., NULL (or NULL
	 * for none), e.g. the status page's security headers (agent/www.h). */
	const char *const *headers;
};

/* Handle one complete request on the loop thread; fill `reply`. */
typedef void (*http_handler_fn)(void *data, const struct http_request *req,
				struct http_reply *reply);

struct http_pending; /* a request whose answer comes later */

struct http_server {
	void *daemon; /* struct MHD_Daemon */
	struct http_pending *pending; /* deferred requests, answered 503 on close */
	uv_poll_t poll;
	uv_timer_t timer;
	http_handler_fn handler;
	void *data;
	int open_handles;
	void (*close_cb)(struct http_server *s);
};

/*
 * Listen on `address` ("HOST:PORT", "[V6]:PORT"). Returns 0, or a negative
 * code with the cause (e.g. "127.0.0.1:8001: Address already in use").
 */
int http_start(struct http_server *s, uv_loop_t *loop, const char *address,
	       http_handler_fn handler, void *data, char *errmsg, size_t errlen);

/* Stop listening, drop connections; `cb` runs when the loop handles are closed. */
void http_close(struct http_server *s, void (*cb)(struct http_server *s));

/*
 * Called from a handler: the answer will come later (e.g. after a Raft
 * membership change commits). Leave `reply` untouched and call http_finish()
 * exactly once, on the loop thread. The connection is suspended meanwhile.
 */
struct http_pending *http_defer(const struct http_request *req);

/* Take a deferral back before the handler returns (the handler then fills
 * `reply` as usual), e.g. when the work it waited for could not start. */
void http_undefer(const struct http_request *req);

/*
 * Whether the client of a deferred request has closed its end (or the
 * connection is already gone). libmicrohttpd does not watch a suspended
 * connection at all (no read, no timeout), so a long-lived deferred request
 * (agent/leader_watch.h) is checked with a non-blocking MSG_PEEK on its
 * socket: 0 bytes is the peer's FIN, an error its RST.
 */
bool http_pending_peer_closed(const struct http_pending *p);

/* Send the answer of a deferred request; takes reply->body. */
void http_finish(struct http_pending *p, struct http_reply *reply);

/*
 * What every request must pass before a handler sees it (RFC 9110, RFC 9112),
 * from its method and headers (NULL when absent) and whether it carried more
 * than one Content-Length or Transfer-Encoding field. Returns 0 when it may
 * go on, else the status to answer with (reply filled; the connection is
 * then closed, since the body's end is not known for sure):
 *   403 an Origin header: a browser sends it, canopyctl and curl do not, so
 *       a page an operator visits cannot drive the API (CSRF);
 *   400 both Content-Length and Transfer-Encoding (RFC 9112 §6.3: the
 *       message framing is ambiguous, a request smuggling vector), or one of
 *       them repeated;
 *   501 a Transfer-Encoding other than "chunked" (RFC 9112 §6.1);
 *   413 a Content-Length over HTTP_MAX_BODY;
 *   415 a POST whose Content-Type is not application/json (RFC 9110 §15.5.16):
 *       an HTML form cannot send JSON without a CORS preflight.
 * Pure, so that tests/fuzz/fuzz_control.c can drive it.
 */
#define HTTP_MAX_BODY (64 * 1024)

struct http_head {
	const char *method, *origin, *content_type, *content_length, *transfer_encoding;
	unsigned n_content_length, n_transfer_encoding;
};

unsigned http_check_head(const struct http_head *h, struct http_reply *reply);

/* A query-string argument of the request, or NULL. */
const char *http_request_arg(const struct http_request *req, const char *name);

/* Fill `reply` with a JSON error body {"error": msg} and `status`. */
void http_reply_error(struct http_reply *reply, unsigned status, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));

#endif /* CANOPY_AGENT_HTTP_H */
