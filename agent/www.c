/*
 * agent/www.c -- the status page's files, served from the binary (see www.h).
 */
#include "agent/www.h"

#include <string.h>

#include "common/xalloc.h"

/*
 * default-src 'self': scripts, styles, images and fetch() only from this
 * agent, and no inline script or style (app.js builds the page with DOM
 * calls). frame-ancestors 'none' (CSP Level 2 §7.7.3): no other site may
 * frame the page; base-uri and form-action close the two ways around
 * default-src that it does not cover.
 */
static const char *const page_headers[] = {
	"Content-Security-Policy",
	"default-src 'self'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'",
	"X-Content-Type-Options", "nosniff",
	"Cache-Control", "no-store",
	"Referrer-Policy", "no-referrer",
	NULL,
};

const struct www_asset *www_find(const char *path)
{
	size_t i;

	for (i = 0; i < www_n_assets; i++)
		if (strcmp(www_assets[i].path, path) == 0)
			return &www_assets[i];
	return NULL;
}

bool www_handle(const struct http_request *req, struct http_reply *reply)
{
	const struct www_asset *f;

	if (strcmp(req->path, "/") != 0 && strncmp(req->path, "/assets/", 8) != 0)
		return false;
	if (strcmp(req->method, "GET") != 0 && strcmp(req->method, "HEAD") != 0) {
		http_reply_error(reply, 405, "%s %s: use GET", req->method, req->path);
	} else if ((f = www_find(req->path)) == NULL) {
		http_reply_error(reply, 404, "no such file: %s", req->path);
	} else {
		/* the server frees the body: a copy of the embedded bytes */
		reply->body = xmalloc(f->len + 1);
		memcpy(reply->body, f->data, f->len);
		reply->body_len = f->len;
		reply->status = 200;
		reply->content_type = f->content_type;
	}
	reply->headers = page_headers;
	return true;
}
