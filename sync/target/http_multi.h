/*
 * sync/target/http_multi.h -- the one HTTP engine of the target side: a
 * libcurl multi handle driven by a libuv loop. The SCIM target
 * (scim_http.c), the Entra Graph target (entra_graph.c, entra_batch.c) and
 * the Entra bulkUpload target (entra_bulk.c) send every request through it,
 * and so does the blocking health probe (scim_probe.c, http_perform); only
 * the OAuth2 token fetch (oauth2.c, on a libuv worker by design: oauth2.h)
 * uses libcurl's easy interface directly.
 *
 * How it runs (the pattern of curl's docs/examples/multi-uv.c):
 * CURLMOPT_SOCKETFUNCTION maps every socket libcurl wants watched onto a
 * uv_poll_t, CURLMOPT_TIMERFUNCTION onto one uv_timer_t; both call
 * curl_multi_socket_action() and then drain CURLMSG_DONE messages, calling
 * each finished request's callback. Connections stay in the multi handle's
 * cache, so they are reused across requests (keep-alive; HTTP/2
 * multiplexing over TLS when the server offers h2: CURLOPT_PIPEWAIT prefers
 * a stream on an open connection to a new one).
 *
 * Threads: everything runs on the loop thread, except http_multi_call(),
 * which another thread uses to hand one request to the loop and wait for
 * its answer (a queue under a mutex and a uv_async_t).
 *
 * Callbacks (http_done_cb) run on the loop thread, never from inside a
 * libcurl callback and never from inside http_multi_start(): from a poll or
 * timer callback, from the engine's 0 ms timer (a cancelled request), or
 * from http_multi_close() (the requests still in flight). Each started
 * request's callback runs exactly once, unless the request is freed first.
 */
#ifndef CANOPY_SYNC_TARGET_HTTP_MULTI_H
#define CANOPY_SYNC_TARGET_HTTP_MULTI_H

#include <stdbool.h>
#include <stddef.h>

#include <curl/curl.h>
#include <uv.h>

#include "sync/target/http_tls.h"

/* A Location header longer than this is not kept (bulkUpload's 202 names
 * its provisioning logs there; a URL of a few hundred bytes). */
#define HTTP_LOCATION_MAX 2048

struct http_multi; /* the engine: one per target run */
struct http_req;   /* one request on it */

/* What a request sends. Read by http_multi_start(); see each field for who
 * owns what. */
struct http_request {
	const char *method;         /* "GET", "POST", "PUT", "PATCH", "DELETE" */
	const char *url;            /* copied */
	struct curl_slist *headers; /* taken over: wiped (they may carry a token) and freed with
				     * the request, on failure too */
	const char *body;           /* borrowed: valid until the request is freed; NULL: none */
	unsigned timeout_ms;        /* the whole exchange (0: none) */
	unsigned connect_timeout_ms; /* connecting (0: timeout_ms, at most 10 s) */
	const struct http_tls *tls; /* trust for https:// (NULL: system store); every request
				     * of one engine must use the same (http_tls.h: the CA cache
				     * is per multi handle) */
	size_t max_body;            /* an answer body above this is refused (too_big) */
	long retry_after_max_s;     /* Retry-After is capped at this */
	bool fresh;                 /* on a connection of its own (CURLOPT_FRESH_CONNECT): libcurl
				     * re-sends a request by itself when a reused connection closes
				     * before any answer (lib/transfer.c, Curl_retry_request);
				     * a request that must not go twice asks for this */
};

/* What came back, filled before the callback runs. */
struct http_answer {
	CURLcode cc;         /* CURLE_OK: answered (status); else no answer, err says why */
	long status;         /* the HTTP status; 0 without an answer */
	char *body;          /* NUL-terminated, owned by the request (http_answer_take_body);
			      * NULL when empty */
	size_t len;
	bool too_big;        /* the body passed max_body: cc is CURLE_WRITE_ERROR */
	bool cancelled;      /* http_req_cancel() or http_multi_close(): cc is
			      * CURLE_ABORTED_BY_CALLBACK */
	long retry_after_s;  /* Retry-After in seconds (capped); -1: none */
	char location[HTTP_LOCATION_MAX]; /* the Location header; "" none or too long */
	char err[CURL_ERROR_SIZE]; /* libcurl's error text ("" when answered) */
	long connects;       /* new connections this request opened (CURLINFO_NUM_CONNECTS) */
};

typedef void (*http_done_cb)(struct http_req *req, void *data);

/*
 * A new engine on loop, keeping up to max_connects idle connections in its
 * cache. Returns 0, or -EIO (libcurl cannot be initialised) or a libuv
 * error, with errmsg saying so.
 */
int http_multi_new(uv_loop_t *loop, unsigned max_connects, struct http_multi **out, char *errmsg, size_t errlen);

/*
 * Put a request on the wire; cb(req, data) runs once when it is answered,
 * fails, times out or is cancelled. Returns 0 with *out, or -ESHUTDOWN
 * (closing), -EINVAL (the TLS options cannot be set) or -EIO (libcurl
 * refused the handle), with errmsg saying so and the headers freed.
 */
int http_multi_start(struct http_multi *m, const struct http_request *rq, http_done_cb cb, void *data,
		     struct http_req **out, char *errmsg, size_t errlen);

/* The answer of a finished request (valid until http_req_free). */
const struct http_answer *http_req_answer(const struct http_req *req);

/* Take the answer's body (the caller frees it; the answer keeps len). */
char *http_answer_take_body(struct http_req *req);

/*
 * Stop a request: its callback runs once, from the loop, with
 * answer->cancelled. A request already finished or cancelled is left as it
 * is (its callback has run or will run once).
 */
void http_req_cancel(struct http_req *req);

/* Free a request: one still in flight is taken off the wire and its
 * callback never runs. NULL is fine. */
void http_req_free(struct http_req *req);

/*
 * From a thread other than the loop's: send rq on the loop and block until
 * its answer, which is moved into *out (out->body is the caller's to
 * free). rq->body must stay valid until it returns. Returns 0, or
 * -ESHUTDOWN when the engine is closing (out says cancelled), or
 * http_multi_start's error. Never call it from the loop thread (it would
 * wait for itself), nor once http_multi_close() has been called.
 */
int http_multi_call(struct http_multi *m, const struct http_request *rq, struct http_answer *out);

/*
 * Send rq and block until its answer, on an engine of its own on a private
 * loop, closed before it returns: for a thread that has no loop (the health
 * probe, scim_probe.c, on a libuv worker). rq->timeout_ms bounds the wait.
 * Returns 0 with *out filled as http_multi_call() does (out->body is the
 * caller's), or http_multi_new/http_multi_start's error (the headers
 * freed, out says no answer).
 */
int http_perform(const struct http_request *rq, struct http_answer *out, char *errmsg, size_t errlen);

/* Cancel every request in flight, http_multi_call()s included. */
void http_multi_cancel_all(struct http_multi *m);

/*
 * Close the engine: every request still in flight is completed with
 * `cancelled` now (their callbacks run from inside this call and may free
 * their requests; starting new ones fails with -ESHUTDOWN), libcurl closes
 * its cached connections, every uv handle is closed, and done(data) runs
 * from the loop once the last one is. Requests not yet freed stay valid for
 * http_req_answer/http_req_free.
 */
void http_multi_close(struct http_multi *m, void (*done)(void *data), void *data);

/*
 * A Retry-After response header line (n bytes, not terminated, any case):
 * its delay in seconds, capped at cap, or -1 when the line is no
 * Retry-After or its value is neither delay-seconds nor an HTTP-date
 * (RFC 9110 §10.2.3; a date in the past is 0). Outside input: fuzzed
 * (tests/fuzz/fuzz_entra_answer.c).
 */
long http_retry_after(const char *line, size_t n, long cap);

/*
 * One response header line (n bytes, not terminated, as libcurl hands it
 * over) into a: a status line ("HTTP/...") starts a new response and clears
 * what an earlier one (a 100 Continue) said; Retry-After (capped at
 * retry_after_max_s) and Location are kept. Outside input: fuzzed
 * (tests/fuzz/fuzz_http_header.c).
 */
void http_answer_header(struct http_answer *a, const char *line, size_t n, long retry_after_max_s);

#endif /* CANOPY_SYNC_TARGET_HTTP_MULTI_H */
