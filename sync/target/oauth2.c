/*
 * sync/target/oauth2.c -- OAuth2 client credentials (RFC 6749 §4.4) with a
 * client secret or an RFC 7523 JWT client assertion (see oauth2.h).
 */
#include "sync/target/oauth2.h"

#include <errno.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <time.h>

#include <curl/curl.h>
#include <jansson.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/rand.h>
#include <openssl/x509.h>

#include "common/xalloc.h"
#include "sync/secret.h"

#define DEFAULT_TIMEOUT_MS 10000
#define DEFAULT_LIFETIME_S 3600 /* a token without expires_in */
#define REFRESH_PERCENT 80
#define SHORT_MARGIN_MS 60000 /* see refresh_at() */
#define ASSERTION_LIFETIME_S 300
#define RESP_MAX (64 * 1024)

struct oauth2 {
	pthread_mutex_t lock;       /* the fields below, briefly */
	pthread_mutex_t fetch_lock; /* one fetch at a time */
	unsigned refs;
	char *token;          /* cached access token, or NULL */
	uint64_t due_ms;      /* monotonic: refresh from then on */

	/* configuration, read-only after oauth2_new */
	char *token_url, *client_id, *secret_file, *scope;
	EVP_PKEY *key;        /* with a certificate */
	char x5t_s256[64];    /* base64url SHA-256 of the certificate's DER */
	const struct http_tls *tls;
	unsigned timeout_ms;
};

static uint64_t now_ms(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

static void b64url(const unsigned char *in, size_t n, char *out)
{
	static const char A[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
	size_t o = 0;
	for (size_t i = 0; i < n; i += 3) {
		unsigned v = (unsigned)in[i] << 16 | (i + 1 < n ? (unsigned)in[i + 1] << 8 : 0) |
			     (i + 2 < n ? in[i + 2] : 0);
		out[o++] = A[v >> 18 & 63];
		out[o++] = A[v >> 12 & 63];
		if (i + 1 < n)
			out[o++] = A[v >> 6 & 63];
		if (i + 2 < n)
			out[o++] = A[v & 63];
	}
	out[o] = '\0';
}

static char *b64url_dup(const unsigned char *in, size_t n)
{
	char *out = xmalloc(n / 3 * 4 + 5);
	b64url(in, n, out);
	return out;
}

/* ------------------------------------------------------------ certificate */

static int load_cert(struct oauth2 *o, const char *cert, const char *key, char *errmsg, size_t errlen)
{
	struct stat st;
	unsigned char *der = NULL, md[32];
	unsigned mdlen = 0;
	X509 *x = NULL;
	FILE *f;
	int len, rc = -EINVAL;

	/* the private key is a credential like the secret files: owner only */
	if (stat(key, &st) != 0) {
		rc = -errno;
		snprintf(errmsg, errlen, "target.auth.client_key: cannot read %s: %s", key, strerror(errno));
		return rc;
	}
	if ((st.st_mode & 077) != 0) {
		snprintf(errmsg, errlen, "target.auth.client_key: %s is readable by group or others (mode %04o); "
			 "chmod 600 it", key, (unsigned)(st.st_mode & 07777));
		return -EACCES;
	}
	if ((f = fopen(key, "r")) == NULL) {
		rc = -errno;
		snprintf(errmsg, errlen, "target.auth.client_key: cannot read %s: %s", key, strerror(errno));
		return rc;
	}
	o->key = PEM_read_PrivateKey(f, NULL, NULL, NULL);
	fclose(f);
	if (o->key == NULL || EVP_PKEY_get_base_id(o->key) != EVP_PKEY_RSA) {
		snprintf(errmsg, errlen, "target.auth.client_key: %s holds no RSA private key in PEM (RS256 needs RSA)",
			 key);
		goto err;
	}
	if ((f = fopen(cert, "r")) == NULL) {
		rc = -errno;
		snprintf(errmsg, errlen, "target.auth.client_cert: cannot read %s: %s", cert, strerror(errno));
		goto err;
	}
	x = PEM_read_X509(f, NULL, NULL, NULL);
	fclose(f);
	if (x == NULL) {
		snprintf(errmsg, errlen, "target.auth.client_cert: %s holds no PEM certificate", cert);
		goto err;
	}
	if (X509_check_private_key(x, o->key) != 1) {
		snprintf(errmsg, errlen, "target.auth: client_key %s does not belong to client_cert %s", key, cert);
		goto err;
	}
	len = i2d_X509(x, &der);
	if (len <= 0 || !EVP_Digest(der, (size_t)len, md, &mdlen, EVP_sha256(), NULL)) {
		snprintf(errmsg, errlen, "target.auth.client_cert: %s: cannot encode the certificate", cert);
		goto err;
	}
	b64url(md, mdlen, o->x5t_s256);
	OPENSSL_free(der);
	X509_free(x);
	ERR_clear_error();
	return 0;
err:
	OPENSSL_free(der);
	X509_free(x);
	EVP_PKEY_free(o->key);
	o->key = NULL;
	ERR_clear_error();
	return rc;
}

/* RFC 7523 §2.2 / §3: a JWT signed RS256, naming the certificate (x5t#S256).
 * NULL when there are no random bytes or the key does not sign. The claims
 * are the configuration's strings (libyaml reads UTF-8 only): jansson's NULL
 * is out of memory. */
static char *assertion(struct oauth2 *o)
{
	unsigned char jti[16], *sig = NULL;
	char jti_hex[33], *h = NULL, *p = NULL, *hb = NULL, *pb = NULL, *input = NULL, *sb = NULL, *out = NULL;
	time_t now = time(NULL);
	EVP_MD_CTX *md = NULL;
	size_t siglen = 0;

	if (RAND_bytes(jti, sizeof jti) != 1)
		goto out;
	for (size_t i = 0; i < sizeof jti; i++)
		snprintf(jti_hex + 2 * i, 3, "%02x", jti[i]);
	json_t *hj = xcheck(json_pack("{s:s,s:s,s:s}", "alg", "RS256", "typ", "JWT", "x5t#S256", o->x5t_s256));
	json_t *pj = xcheck(json_pack("{s:s,s:s,s:s,s:s,s:I,s:I,s:I}", "aud", o->token_url, "iss", o->client_id,
				      "sub", o->client_id, "jti", jti_hex, "iat", (json_int_t)now, "nbf",
				      (json_int_t)now, "exp", (json_int_t)(now + ASSERTION_LIFETIME_S)));
	h = xcheck(json_dumps(hj, JSON_COMPACT));
	p = xcheck(json_dumps(pj, JSON_COMPACT));
	json_decref(hj);
	json_decref(pj);
	hb = b64url_dup((unsigned char *)h, strlen(h));
	pb = b64url_dup((unsigned char *)p, strlen(p));
	size_t n = strlen(hb) + 1 + strlen(pb);
	input = xmalloc(n + 1);
	snprintf(input, n + 1, "%s.%s", hb, pb);
	md = xcheck(EVP_MD_CTX_new());
	if (EVP_DigestSignInit(md, NULL, EVP_sha256(), NULL, o->key) != 1 ||
	    EVP_DigestSign(md, NULL, &siglen, (unsigned char *)input, n) != 1)
		goto out;
	sig = xmalloc(siglen);
	if (EVP_DigestSign(md, sig, &siglen, (unsigned char *)input, n) != 1)
		goto out;
	sb = b64url_dup(sig, siglen);
	size_t m = n + 1 + strlen(sb);
	out = xmalloc(m + 1);
	snprintf(out, m + 1, "%s.%s", input, sb);
out:
	EVP_MD_CTX_free(md);
	ERR_clear_error();
	free(h);
	free(p);
	free(hb);
	free(pb);
	free(input);
	free(sig);
	free(sb);
	return out;
}

/* ------------------------------------------------------------ the request */

struct buf {
	char *p;
	size_t n;
	bool too_big;
};

static size_t on_write(char *data, size_t size, size_t nmemb, void *userp)
{
	struct buf *b = userp;
	size_t n = size * nmemb;
	if (b->n + n > RESP_MAX) {
		b->too_big = true;
		return 0;
	}
	b->p = xrealloc(b->p, b->n + n + 1);
	memcpy(b->p + b->n, data, n);
	b->n += n;
	b->p[b->n] = '\0';
	return n;
}

/* Append "&name=value" (value URL-encoded) to *body. */
static void form_add(CURL *e, char **body, const char *name, const char *value)
{
	char *v = xcheck(curl_easy_escape(e, value, 0));
	size_t old = *body ? strlen(*body) : 0, n = old + strlen(name) + strlen(v) + 3;
	*body = xrealloc(*body, n);
	snprintf(*body + old, n - old, "%s%s=%s", old ? "&" : "", name, v);
	explicit_bzero(v, strlen(v));
	curl_free(v);
}

/* A printable copy of an endpoint's words (they end up in logs). */
static void clean(char *out, size_t len, const char *s)
{
	size_t o = 0;
	for (; s != NULL && *s && o + 1 < len; s++)
		out[o++] = (*s >= 0x20 && *s < 0x7f) ? *s : ' ';
	out[o] = '\0';
}

static bool token_ok(const char *t)
{
	if (t == NULL || *t == '\0' || strlen(t) > 16384)
		return false;
	for (; *t; t++)
		if ((unsigned char)*t < 0x21 || (unsigned char)*t > 0x7e)
			return false; /* it goes into a header: no CR/LF, no spaces */
	return true;
}

static int fetch(struct oauth2 *o, char **token, uint64_t *lifetime_ms, char *errmsg, size_t errlen)
{
	char curlerr[CURL_ERROR_SIZE] = "", why[600];
	char *secret = NULL, *jwt = NULL, *body = NULL;
	struct curl_slist *hdrs = NULL;
	struct buf resp = {0};
	json_t *j = NULL;
	long http = 0;
	int rc;
	CURL *e = xcheck(curl_easy_init()); /* fails only for lack of memory */

	if (o->key != NULL) {
		if ((jwt = assertion(o)) == NULL) {
			snprintf(errmsg, errlen, "token endpoint %s: cannot sign the client assertion", o->token_url);
			rc = -EIO;
			goto out;
		}
	} else if ((rc = secret_read(o->secret_file, &secret, why, sizeof why)) != 0) {
		snprintf(errmsg, errlen, "target.auth.client_secret_file: %s", why);
		rc = -EACCES;
		goto out;
	}
	form_add(e, &body, "grant_type", "client_credentials");
	form_add(e, &body, "client_id", o->client_id);
	if (secret != NULL)
		form_add(e, &body, "client_secret", secret);
	if (jwt != NULL) {
		form_add(e, &body, "client_assertion_type", "urn:ietf:params:oauth:client-assertion-type:jwt-bearer");
		form_add(e, &body, "client_assertion", jwt);
	}
	if (o->scope != NULL)
		form_add(e, &body, "scope", o->scope);
	hdrs = xcheck(curl_slist_append(NULL, "Accept: application/json"));
	hdrs = xcheck(curl_slist_append(hdrs, "Content-Type: application/x-www-form-urlencoded"));
	curl_easy_setopt(e, CURLOPT_URL, o->token_url);
	curl_easy_setopt(e, CURLOPT_POSTFIELDS, body);
	curl_easy_setopt(e, CURLOPT_HTTPHEADER, hdrs);
	curl_easy_setopt(e, CURLOPT_ERRORBUFFER, curlerr);
	curl_easy_setopt(e, CURLOPT_NOSIGNAL, 1L);
	curl_easy_setopt(e, CURLOPT_TIMEOUT_MS, (long)o->timeout_ms);
	curl_easy_setopt(e, CURLOPT_CONNECTTIMEOUT_MS, (long)o->timeout_ms);
	curl_easy_setopt(e, CURLOPT_PROTOCOLS_STR, "http,https");
	curl_easy_setopt(e, CURLOPT_USERAGENT, "canopy/" CANOPY_VERSION);
	curl_easy_setopt(e, CURLOPT_WRITEFUNCTION, on_write);
	curl_easy_setopt(e, CURLOPT_WRITEDATA, &resp);
	/* no redirects: the secret must not travel to another origin */
	curl_easy_setopt(e, CURLOPT_FOLLOWLOCATION, 0L);
	CURLcode cc = http_tls_apply(o->tls, e);
	if (cc == CURLE_OK)
		cc = curl_easy_perform(e);
	if (cc != CURLE_OK) {
		http_tls_explain(o->tls, o->token_url, cc, curlerr, why, sizeof why);
		snprintf(errmsg, errlen, "token endpoint %s: %s", o->token_url,
			 resp.too_big ? "the answer is too large" : why);
		rc = -EIO;
		goto out;
	}
	curl_easy_getinfo(e, CURLINFO_RESPONSE_CODE, &http);
	j = resp.p != NULL ? json_loadb(resp.p, resp.n, 0, NULL) : NULL;
	if (http < 200 || http >= 300) {
		/* RFC 6749 §5.2: {"error": ..., "error_description": ...} */
		char err[128], desc[300];
		clean(err, sizeof err, json_string_value(json_object_get(j, "error")));
		clean(desc, sizeof desc, json_string_value(json_object_get(j, "error_description")));
		snprintf(errmsg, errlen, "token endpoint %s refused client %s: HTTP %ld%s%s%s%s", o->token_url,
			 o->client_id, http, err[0] ? ": " : "", err, desc[0] ? ": " : "", desc);
		rc = http >= 400 && http < 500 ? -EACCES : -EIO;
		goto out;
	}
	const char *tok = json_string_value(json_object_get(j, "access_token"));
	const char *type = json_string_value(json_object_get(j, "token_type"));
	json_t *exp = json_object_get(j, "expires_in");
	if (!token_ok(tok) || (type != NULL && strcasecmp(type, "bearer") != 0)) {
		snprintf(errmsg, errlen, "token endpoint %s: HTTP %ld without a usable bearer access_token", o->token_url,
			 http);
		rc = -EIO;
		goto out;
	}
	json_int_t secs = json_is_integer(exp) ? json_integer_value(exp) : DEFAULT_LIFETIME_S;
	if (json_is_string(exp)) /* some providers quote it */
		secs = strtoll(json_string_value(exp), NULL, 10);
	if (secs <= 0 || secs > 366 * 86400)
		secs = DEFAULT_LIFETIME_S;
	*token = xstrdup(tok);
	*lifetime_ms = (uint64_t)secs * 1000;
	rc = 0;
out:
	if (resp.p != NULL)
		explicit_bzero(resp.p, resp.n);
	free(resp.p);
	json_decref(j); /* holds a copy of the token: jansson does not wipe it */
	if (body != NULL)
		explicit_bzero(body, strlen(body));
	free(body);
	secret_free(secret);
	secret_free(jwt);
	curl_slist_free_all(hdrs);
	curl_easy_cleanup(e);
	return rc;
}

/* ------------------------------------------------------------ the cache */

/* When a token obtained at t0 with this lifetime is renewed: at 80 % of it,
 * but for short-lived tokens (under 5 minutes) at least a minute -- or half
 * the lifetime -- before it expires, since 20 % of a few seconds is less than
 * a request may spend in queues on a busy machine. */
static uint64_t refresh_at(uint64_t t0, uint64_t life)
{
	uint64_t margin = life - life * REFRESH_PERCENT / 100;
	uint64_t floor = life / 2 < SHORT_MARGIN_MS ? life / 2 : SHORT_MARGIN_MS;
	return t0 + life - (margin > floor ? margin : floor);
}

/* Under o->lock: the cached token if usable (0), else -ENOENT. */
static int cached(struct oauth2 *o, const char *reject, char **token, uint64_t *refresh_in_ms)
{
	uint64_t now = now_ms();
	if (o->token == NULL || now >= o->due_ms || (reject != NULL && strcmp(reject, o->token) == 0))
		return -ENOENT;
	*token = xstrdup(o->token);
	*refresh_in_ms = o->due_ms - now;
	return 0;
}

int oauth2_token(struct oauth2 *o, const char *reject, char **token, uint64_t *refresh_in_ms, char *errmsg,
		 size_t errlen)
{
	uint64_t life = 0, t0;
	char *fresh = NULL;
	int rc;

	*token = NULL;
	pthread_mutex_lock(&o->lock);
	rc = cached(o, reject, token, refresh_in_ms);
	pthread_mutex_unlock(&o->lock);
	if (rc != -ENOENT)
		return rc;
	pthread_mutex_lock(&o->fetch_lock);
	pthread_mutex_lock(&o->lock); /* another caller may have fetched meanwhile */
	rc = cached(o, reject, token, refresh_in_ms);
	pthread_mutex_unlock(&o->lock);
	if (rc != -ENOENT) {
		pthread_mutex_unlock(&o->fetch_lock);
		return rc;
	}
	t0 = now_ms();
	rc = fetch(o, &fresh, &life, errmsg, errlen);
	if (rc == 0) {
		pthread_mutex_lock(&o->lock);
		secret_free(o->token);
		o->token = fresh;
		/* from when we asked: the lifetime started no later than that */
		o->due_ms = refresh_at(t0, life);
		rc = cached(o, NULL, token, refresh_in_ms);
		if (rc == -ENOENT) { /* the fetch took longer than 80 % of the lifetime */
			*token = xstrdup(fresh);
			*refresh_in_ms = 0;
			rc = 0;
		}
		pthread_mutex_unlock(&o->lock);
	} else if (reject != NULL) {
		/* the rejected token is no good to anyone */
		pthread_mutex_lock(&o->lock);
		if (o->token != NULL && strcmp(o->token, reject) == 0) {
			secret_free(o->token);
			o->token = NULL;
		}
		pthread_mutex_unlock(&o->lock);
	}
	pthread_mutex_unlock(&o->fetch_lock);
	return rc;
}

/* ------------------------------------------------------------ async */

struct oauth2_req {
	uv_work_t work;
	struct oauth2 *o;
	char *reject;
	oauth2_cb cb;
	void *data;
	bool cancelled;
	int status;
	char *token;
	uint64_t refresh_in_ms;
	char errmsg[768];
};

static void unref(struct oauth2 *o)
{
	pthread_mutex_lock(&o->lock);
	unsigned left = --o->refs;
	pthread_mutex_unlock(&o->lock);
	if (left > 0)
		return;
	secret_free(o->token);
	EVP_PKEY_free(o->key);
	free(o->token_url);
	free(o->client_id);
	free(o->secret_file);
	free(o->scope);
	pthread_mutex_destroy(&o->lock);
	pthread_mutex_destroy(&o->fetch_lock);
	free(o);
}

static void on_work(uv_work_t *w)
{
	struct oauth2_req *r = w->data;
	r->status = oauth2_token(r->o, r->reject, &r->token, &r->refresh_in_ms, r->errmsg, sizeof r->errmsg);
}

static void on_after_work(uv_work_t *w, int status)
{
	struct oauth2_req *r = w->data;
	if (status == UV_ECANCELED && r->status == 0 && r->token == NULL)
		r->status = -ECANCELED;
	if (!r->cancelled) {
		char *tok = r->token;
		r->token = NULL;
		r->cb(r->data, r->status, tok, r->refresh_in_ms, r->errmsg);
	}
	secret_free(r->token);
	secret_free(r->reject);
	unref(r->o);
	free(r);
}

int oauth2_token_async(struct oauth2 *o, uv_loop_t *loop, const char *reject, oauth2_cb cb, void *data,
		       struct oauth2_req **out)
{
	struct oauth2_req *r = xcalloc(1, sizeof *r);
	r->reject = reject != NULL ? xstrdup(reject) : NULL;
	r->o = o;
	r->cb = cb;
	r->data = data;
	r->work.data = r;
	pthread_mutex_lock(&o->lock);
	o->refs++;
	pthread_mutex_unlock(&o->lock);
	int rc = uv_queue_work(loop, &r->work, on_work, on_after_work);
	if (rc != 0) {
		secret_free(r->reject);
		free(r);
		unref(o);
		return rc;
	}
	*out = r;
	return 0;
}

void oauth2_cancel(struct oauth2_req *r)
{
	if (r != NULL)
		r->cancelled = true;
}

const char *oauth2_token_url(const struct oauth2 *o)
{
	return o->token_url;
}

int oauth2_new(const struct oauth2_config *cfg, struct oauth2 **out, char *errmsg, size_t errlen)
{
	struct oauth2 *o;
	int rc;

	*out = NULL;
	if (cfg->token_url == NULL || cfg->client_id == NULL ||
	    (cfg->client_secret_file == NULL && (cfg->client_cert == NULL || cfg->client_key == NULL))) {
		snprintf(errmsg, errlen, "target.auth: needs token_url, client_id and a secret or certificate");
		return -EINVAL;
	}
	o = xcalloc(1, sizeof *o);
	/* default attributes: glibc's pthread_mutex_init cannot fail */
	pthread_mutex_init(&o->lock, NULL);
	pthread_mutex_init(&o->fetch_lock, NULL);
	o->refs = 1;
	o->tls = cfg->tls;
	o->timeout_ms = cfg->timeout_ms ? cfg->timeout_ms : DEFAULT_TIMEOUT_MS;
	o->token_url = xstrdup(cfg->token_url);
	o->client_id = xstrdup(cfg->client_id);
	o->secret_file = cfg->client_secret_file ? xstrdup(cfg->client_secret_file) : NULL;
	o->scope = cfg->scope && cfg->scope[0] ? xstrdup(cfg->scope) : NULL;
	if (o->secret_file == NULL && (rc = load_cert(o, cfg->client_cert, cfg->client_key, errmsg, errlen)) != 0) {
		unref(o);
		return rc;
	}
	*out = o;
	return 0;
}

void oauth2_free(struct oauth2 *o)
{
	if (o != NULL)
		unref(o);
}
