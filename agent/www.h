/*
 * agent/www.h -- the status page: GET / on every agent's control address.
 *
 * A plain HTML page (agent/www/index.html, app.js, style.css) that fetches
 * GET /v1/status and GET /v1/logs from the agent that served it every ~2 s
 * and renders them; it computes nothing the API does not say, and shows
 * whatever keys an agent's status has (docs/operations.md, "The status
 * page"). The files are embedded in the binary at build time
 * (cmake/embed_www.cmake writes www_assets.c in the build tree), so an
 * installed agent needs nothing beside its executable.
 *
 * Reads are open, like GET /v1/status: no token. What the page shows comes
 * from the directory and the target (DNs, error messages); app.js only ever
 * sets it as text (textContent), never as HTML, and every answer carries a
 * Content-Security-Policy that allows no inline script and nothing from
 * elsewhere (default-src 'self'), so even a mistake there cannot run a
 * script a DN smuggled in.
 */
#ifndef CANOPY_AGENT_WWW_H
#define CANOPY_AGENT_WWW_H

#include <stdbool.h>
#include <stddef.h>

#include "agent/http.h"

/* One embedded file. */
struct www_asset {
	const char *path;         /* "/" or "/assets/NAME" */
	const char *content_type; /* static, with the charset */
	const unsigned char *data;
	size_t len;
};

/* The embedded files (generated www_assets.c), www_n_assets of them. */
extern const struct www_asset www_assets[];
extern const size_t www_n_assets;

/* The asset served at `path` (without the query string), or NULL. */
const struct www_asset *www_find(const char *path);

/*
 * Answer GET or HEAD of "/" and of "/assets/..." and return true; return
 * false for any other path, which is not the page's. A file that is not
 * embedded is 404, a method other than GET or HEAD 405. Every answer (errors
 * included) carries the page's security headers: Content-Security-Policy,
 * X-Content-Type-Options: nosniff, Cache-Control: no-store (the page shows
 * live figures; a cached copy after an upgrade would pair an old app.js
 * with a new status), Referrer-Policy: no-referrer. libmicrohttpd leaves the
 * body out of a HEAD answer itself and keeps its Content-Length.
 */
bool www_handle(const struct http_request *req, struct http_reply *reply);

#endif /* CANOPY_AGENT_WWW_H */
