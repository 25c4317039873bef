/*
 * raft/tcp_timeout.c -- TCP_USER_TIMEOUT on every raft connection
 * (tcp_timeout.h says why).
 */
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

#include "common/xalloc.h"
#include "raft/tcp_timeout.h"

struct wrap {
	struct raft_uv_transport *outer, *inner;
	unsigned ms;
	unsigned long failures;
	raft_uv_accept_cb accept_cb;
	raft_uv_transport_close_cb close_cb;
};

/* One connect in flight: libraft's request, and ours to the inner transport. */
struct wconnect {
	struct raft_uv_connect req; /* given to the inner transport */
	struct raft_uv_connect *orig;
	raft_uv_connect_cb cb;
	struct wrap *w;
};

int tcp_timeout_apply(uv_stream_t *stream, unsigned ms)
{
	uv_os_fd_t fd;
	unsigned int v = ms;

	if (stream == NULL || stream->type != UV_TCP)
		return -ENOTSOCK;
	if (uv_fileno((uv_handle_t *)stream, &fd) != 0)
		return -EBADF;
	if (setsockopt(fd, IPPROTO_TCP, TCP_USER_TIMEOUT, &v, sizeof v) != 0)
		return -errno;
	return 0;
}

static void apply(struct wrap *w, uv_stream_t *stream)
{
	if (tcp_timeout_apply(stream, w->ms) != 0)
		w->failures++;
}

static int w_init(struct raft_uv_transport *t, raft_id id, const char *address)
{
	struct wrap *w = t->impl;
	int rv = w->inner->init(w->inner, id, address);

	if (rv != 0)
		memcpy(t->errmsg, w->inner->errmsg, sizeof t->errmsg);
	return rv;
}

/* raft_uv finds itself in the transport's `data`: hand it the outer one. */
static void on_accept(struct raft_uv_transport *inner, raft_id id, const char *address, uv_stream_t *stream)
{
	struct wrap *w = inner->data;

	apply(w, stream);
	w->accept_cb(w->outer, id, address, stream);
}

static int w_listen(struct raft_uv_transport *t, raft_uv_accept_cb cb)
{
	struct wrap *w = t->impl;
	int rv;

	w->accept_cb = cb;
	w->inner->data = w;
	rv = w->inner->listen(w->inner, on_accept);
	if (rv != 0)
		memcpy(t->errmsg, w->inner->errmsg, sizeof t->errmsg);
	return rv;
}

static void on_connect(struct raft_uv_connect *req, uv_stream_t *stream, int status)
{
	struct wconnect *c = req->data;
	struct raft_uv_connect *orig = c->orig;
	raft_uv_connect_cb cb = c->cb;

	if (status == 0)
		apply(c->w, stream);
	free(c);
	cb(orig, stream, status);
}

static int w_connect(struct raft_uv_transport *t, struct raft_uv_connect *req, raft_id id, const char *address,
		     raft_uv_connect_cb cb)
{
	struct wrap *w = t->impl;
	struct wconnect *c = xcalloc(1, sizeof *c);
	int rv;

	c->req.data = c;
	c->orig = req;
	c->cb = cb;
	c->w = w;
	rv = w->inner->connect(w->inner, &c->req, id, address, on_connect);
	if (rv != 0) {
		memcpy(t->errmsg, w->inner->errmsg, sizeof t->errmsg);
		free(c);
	}
	return rv;
}

static void on_inner_closed(struct raft_uv_transport *inner)
{
	struct wrap *w = inner->data;

	if (w->close_cb != NULL)
		w->close_cb(w->outer);
}

static void w_close(struct raft_uv_transport *t, raft_uv_transport_close_cb cb)
{
	struct wrap *w = t->impl;

	w->close_cb = cb;
	w->inner->data = w;
	w->inner->close(w->inner, on_inner_closed);
}

void tcp_timeout_wrap(struct raft_uv_transport *outer, struct raft_uv_transport *inner, unsigned ms)
{
	struct wrap *w = xcalloc(1, sizeof *w);

	w->outer = outer;
	w->inner = inner;
	w->ms = ms;
	memset(outer, 0, sizeof *outer);
	outer->impl = w;
	outer->init = w_init;
	outer->listen = w_listen;
	outer->connect = w_connect;
	outer->close = w_close;
}

void tcp_timeout_close(struct raft_uv_transport *outer)
{
	free(outer->impl);
	outer->impl = NULL;
}

unsigned long tcp_timeout_failures(const struct raft_uv_transport *outer)
{
	const struct wrap *w = outer->impl;

	return w != NULL ? w->failures : 0;
}
