/*
 * sync/target/oauth2.h -- OAuth2 client credentials grant (RFC 6749 §4.4) for
 * the target: an access token fetched from target.auth.token_url, cached and
 * refreshed before it expires.
 *
 * Client authentication, one of:
 *   - a client secret (client_secret_file): sent as client_id/client_secret in
 *     the request body (RFC 6749 §2.3.1; what Entra ID and most providers
 *     take). The file is re-read before every fetch with the start-up checks
 *     (sync/secret.h), so a rotated secret needs no restart;
 *   - a certificate (client_cert + client_key): a JWT client assertion
 *     (RFC 7523 §2.2, client_assertion_type ...:jwt-bearer) signed RS256 with
 *     OpenSSL, its header naming the certificate by "x5t#S256" (the SHA-256
 *     thumbprint, RFC 7515 §4.1.8); claims iss = sub = client_id, aud =
 *     token_url, a random jti, iat/nbf now and exp in 5 minutes. What
 *     Microsoft recommends over secrets.
 *
 * Token lifetime: a token is used until 80 % of its expires_in has passed
 * (for tokens shorter than 5 minutes: until a minute, at most half its
 * lifetime, is left), then the next request for a token fetches a new one (a
 * token without expires_in counts as one hour). So requests always leave
 * with a token that has a good part of its life left, and none fails for an
 * expired token.
 *
 * Threads: one struct oauth2 is shared by the SCIM target (through
 * oauth2_token_async, on the loop) and the health probe (oauth2_token, on a
 * worker); it is thread-safe. Fetches are serialised, so several callers
 * that need a new token at once cause one request. The fetch runs on a
 * libuv worker thread, not on the loop with curl multi: it is rare (once per
 * token lifetime), it reads a secret file and may sign with an RSA key (both
 * blocking), the health probe needs the same code blocking anyway, and it
 * stays out of the target's request window, quarantine and fencing.
 *
 * Never logged: the secret, the assertion, the access token. Errors carry
 * the endpoint's "error" and "error_description" (RFC 6749 §5.2).
 */
#ifndef CANOPY_SYNC_TARGET_OAUTH2_H
#define CANOPY_SYNC_TARGET_OAUTH2_H

#include <stddef.h>
#include <stdint.h>
#include <uv.h>

#include "sync/target/http_tls.h"

struct oauth2_config {
	const char *token_url;          /* http:// or https:// */
	const char *client_id;
	const char *client_secret_file; /* or NULL with client_cert + client_key */
	const char *scope;              /* NULL or "": not sent */
	const char *client_cert;        /* PEM certificate (RFC 7523 assertion) */
	const char *client_key;         /* its PEM private key; must not be readable by others */
	const struct http_tls *tls;     /* trust for token_url (target.tls); borrowed, outlives this */
	unsigned timeout_ms;            /* one fetch; 0: 10000 */
};

struct oauth2; /* opaque, reference counted */

/*
 * Copy cfg (strings too); with a certificate, load it and the key now (a
 * key readable by group or others is refused). Returns 0, or a negative
 * errno with errmsg naming the key and the problem.
 */
int oauth2_new(const struct oauth2_config *cfg, struct oauth2 **out, char *errmsg, size_t errlen);

/* Drop the caller's reference; released when asynchronous fetches are done. */
void oauth2_free(struct oauth2 *o);

/*
 * A token, blocking (never on the loop thread). The cached one when it has
 * more than 20 % of its lifetime left and is not `reject` (the token a 401
 * was answered to; NULL: none); otherwise a new one from the endpoint.
 * On success returns 0, *token (malloc'd; release with secret_free) and
 * *refresh_in_ms: when to ask again. On failure: -EACCES when the endpoint
 * refused (a 4xx, e.g. invalid_client), -EIO when it could not be asked or
 * answered something unusable (network, TLS, 5xx, no access_token); errmsg
 * says which and why. Out of memory aborts (common/xalloc.h).
 */
int oauth2_token(struct oauth2 *o, const char *reject, char **token, uint64_t *refresh_in_ms, char *errmsg,
		 size_t errlen);

/*
 * The same on a libuv worker; cb runs on `loop` with the result (token owned
 * by the callee, NULL on failure). Returns 0 or a libuv error (the callback
 * then does not run).
 */
typedef void (*oauth2_cb)(void *data, int status, char *token, uint64_t refresh_in_ms, const char *errmsg);
struct oauth2_req;
int oauth2_token_async(struct oauth2 *o, uv_loop_t *loop, const char *reject, oauth2_cb cb, void *data,
		       struct oauth2_req **out);

/* The callback of `r` will not run (loop thread; before it ran). */
void oauth2_cancel(struct oauth2_req *r);

/* The token endpoint, for messages. */
const char *oauth2_token_url(const struct oauth2 *o);

#endif /* CANOPY_SYNC_TARGET_OAUTH2_H */
