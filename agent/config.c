/*
 * agent/config.c -- load and validate the agent's YAML configuration.
 *
 * The file is read with libyaml's document API so that every node carries
 * its position; every error names FILE:LINE and the key path. The whole file
 * is checked structurally first (types, unknown and duplicate keys, required
 * keys, ranges, cross-key rules); only then are the secret files read.
 */
#include "agent/config.h"
#include "common/xalloc.h"
#include "raft/transport_tls.h"
#include "sync/provlog.h"
#include "sync/secret.h"
#include "sync/target/entra.h"

#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <limits.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <unistd.h>

#include <arpa/inet.h>
#include <yaml.h>


/* Parsing context: where errors go and how relative paths resolve. */
struct cx {
	const char *file; /* as given by the caller; starts every error */
	yaml_document_t *doc;
	char *err;
	size_t errlen;
	char dir[PATH_MAX]; /* absolute directory of the config file */

	/* Remembered for the checks that run after the structure. */
	int password_line;
	int token_line;
	int control_token_line;
	int client_secret_line; /* target.auth.client_secret_file */
};

/* ---------------------------------------------------------------- errors */

static int vfail(struct cx *c, int rc, int line, const char *fmt, va_list ap)
{
	if (c->err != NULL && c->errlen > 0) {
		int n;
		if (line > 0)
			n = snprintf(c->err, c->errlen, "%s:%d: ", c->file, line);
		else
			n = snprintf(c->err, c->errlen, "%s: ", c->file);
		if (n >= 0 && (size_t)n < c->errlen)
			vsnprintf(c->err + n, c->errlen - (size_t)n, fmt, ap);
	}
	return rc;
}

__attribute__((format(printf, 3, 4))) static int fail(struct cx *c, int line, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	int rc = vfail(c, -EINVAL, line, fmt, ap);
	va_end(ap);
	return rc;
}

__attribute__((format(printf, 4, 5))) static int fail_rc(struct cx *c, int rc, int line, const char *fmt,
							   ...)
{
	va_list ap;
	va_start(ap, fmt);
	rc = vfail(c, rc, line, fmt, ap);
	va_end(ap);
	return rc;
}

/* The error is one line whatever the file contained. */
static void one_line(char *s)
{
	if (s == NULL)
		return;
	for (; *s; s++)
		if ((unsigned char)*s < 0x20 || *s == 0x7f)
			*s = '?';
}

__attribute__((format(printf, 3, 4))) static void set_err(char *err, size_t len, const char *fmt, ...)
{
	if (err == NULL || len == 0)
		return;
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(err, len, fmt, ap);
	va_end(ap);
}

/* Quote text for an error message: "...", escaped, shortened. */
static const char *quote(const char *s, size_t len, char *buf, size_t bufsz)
{
	const size_t show = 60;
	size_t o = 0;
	buf[o++] = '"';
	for (size_t i = 0; i < len && i < show && o + 6 < bufsz; i++) {
		unsigned char ch = (unsigned char)s[i];
		if (ch == '"' || ch == '\\') {
			buf[o++] = '\\';
			buf[o++] = (char)ch;
		} else if (ch < 0x20 || ch == 0x7f) {
			o += (size_t)snprintf(buf + o, bufsz - o, "\\x%02x", ch);
		} else {
			buf[o++] = (char)ch;
		}
	}
	if (len > show && o + 5 < bufsz) {
		memcpy(buf + o, "...", 3);
		o += 3;
	}
	buf[o++] = '"';
	buf[o] = '\0';
	return buf;
}

/* ------------------------------------------------------------ yaml nodes */

static int line_of(const yaml_node_t *n)
{
	return (int)n->start_mark.line + 1;
}

static const char *sval(const yaml_node_t *n)
{
	return (const char *)n->data.scalar.value;
}

static bool is_null(const yaml_node_t *n)
{
	if (n->type != YAML_SCALAR_NODE)
		return false;
	if (n->data.scalar.style != YAML_PLAIN_SCALAR_STYLE)
		return false;
	const char *v = sval(n);
	return strcmp(v, "") == 0 || strcmp(v, "~") == 0 || strcmp(v, "null") == 0 || strcmp(v, "Null") == 0 ||
	       strcmp(v, "NULL") == 0;
}

/* "a list", "a mapping", "an empty value" or the quoted scalar. */
static const char *describe(const yaml_node_t *n, char *buf, size_t bufsz)
{
	switch (n->type) {
	case YAML_SEQUENCE_NODE:
		return "a list";
	case YAML_MAPPING_NODE:
		return "a mapping";
	case YAML_SCALAR_NODE:
		if (is_null(n))
			return "an empty value";
		return quote(sval(n), n->data.scalar.length, buf, bufsz);
	default:
		return "nothing";
	}
}

static yaml_node_t *node_at(struct cx *c, int index)
{
	return yaml_document_get_node(c->doc, index);
}

/* A key path: "cluster" + "members" -> "cluster.members". */
static void join_key(char *out, size_t outsz, const char *parent, const char *name)
{
	int n;
	if (parent[0] != '\0')
		n = snprintf(out, outsz, "%s.%s", parent, name);
	else
		n = snprintf(out, outsz, "%s", name);
	if (n < 0 || (size_t)n >= outsz)
		out[outsz - 1] = '\0';
}

/* "path: " or "" for the top level. */
static void prefix(char *out, size_t outsz, const char *path)
{
	if (path[0] != '\0')
		snprintf(out, outsz, "%s: ", path);
	else
		out[0] = '\0';
}

/* ------------------------------------------------------------- mappings */

struct field {
	const char *name;
	yaml_node_t *val; /* NULL when the key is absent */
	int line;         /* the key's line */
};

static int expect_mapping(struct cx *c, yaml_node_t *n, const char *path)
{
	if (n->type == YAML_MAPPING_NODE)
		return 0;
	char d[96];
	return fail(c, line_of(n), "%s: expected a mapping, got %s", path, describe(n, d, sizeof d));
}

/*
 * Keys of a mapping must be non-empty strings, each present once. Returns the
 * key node of pair `i` or fails.
 */
static int check_key(struct cx *c, yaml_node_t *map, yaml_node_pair_t *pair, const char *path, yaml_node_t **out)
{
	char p[300], d[96];
	prefix(p, sizeof p, path);
	yaml_node_t *k = node_at(c, pair->key);
	if (k == NULL)
		return fail(c, line_of(map), "%sbroken mapping", p);
	if (k->type != YAML_SCALAR_NODE || is_null(k))
		return fail(c, line_of(k), "%skeys must be strings, got %s", p, describe(k, d, sizeof d));
	if (strlen(sval(k)) != k->data.scalar.length)
		return fail(c, line_of(k), "%skey %s contains a NUL character", p,
			    quote(sval(k), k->data.scalar.length, d, sizeof d));
	for (yaml_node_pair_t *q = map->data.mapping.pairs.start; q < pair; q++) {
		yaml_node_t *qk = node_at(c, q->key);
		if (qk != NULL && qk->type == YAML_SCALAR_NODE && strcmp(sval(qk), sval(k)) == 0)
			return fail(c, line_of(k), "%sduplicate key %s (first on line %d)", p,
				    quote(sval(k), k->data.scalar.length, d, sizeof d), line_of(qk));
	}
	*out = k;
	return 0;
}

/*
 * Match the keys of `map` against the allowed `fields`: unknown keys and
 * duplicates are refused, the value nodes are filled in.
 */
static int take_fields(struct cx *c, yaml_node_t *map, const char *path, struct field *f, size_t nf)
{
	int rc = expect_mapping(c, map, path[0] ? path : "the file");
	if (rc != 0)
		return rc;
	for (yaml_node_pair_t *pair = map->data.mapping.pairs.start; pair < map->data.mapping.pairs.top; pair++) {
		yaml_node_t *k;
		if ((rc = check_key(c, map, pair, path, &k)) != 0)
			return rc;
		size_t i;
		for (i = 0; i < nf; i++)
			if (strcmp(f[i].name, sval(k)) == 0)
				break;
		if (i == nf) {
			char list[400] = "", p[300], d[96];
			size_t o = 0;
			for (size_t j = 0; j < nf && o < sizeof list; j++)
				o += (size_t)snprintf(list + o, sizeof list - o, "%s%s", j ? ", " : "", f[j].name);
			prefix(p, sizeof p, path);
			return fail(c, line_of(k), "%sunknown key %s (%s keys: %s)", p,
				    quote(sval(k), k->data.scalar.length, d, sizeof d),
				    path[0] ? "allowed" : "top-level", list);
		}
		f[i].val = node_at(c, pair->value);
		f[i].line = line_of(k);
		if (f[i].val == NULL)
			return fail(c, line_of(k), "%s: broken value", f[i].name);
	}
	return 0;
}

static struct field *field(struct field *f, size_t nf, const char *name)
{
	for (size_t i = 0; i < nf; i++)
		if (strcmp(f[i].name, name) == 0)
			return &f[i];
	return NULL;
}

/* ------------------------------------------------------------- scalars */

static int get_string(struct cx *c, const yaml_node_t *v, const char *kp, char *out, size_t outsz)
{
	char d[96];
	if (v->type != YAML_SCALAR_NODE || is_null(v))
		return fail(c, line_of(v), "%s: expected a string, got %s", kp, describe(v, d, sizeof d));
	size_t len = v->data.scalar.length;
	if (strlen(sval(v)) != len)
		return fail(c, line_of(v), "%s: contains a NUL character", kp);
	if (len == 0)
		return fail(c, line_of(v), "%s: must not be empty", kp);
	if (len >= outsz)
		return fail(c, line_of(v), "%s: too long (%zu bytes, at most %zu)", kp, len, outsz - 1);
	memcpy(out, sval(v), len + 1);
	return 0;
}

/* ---- keys that take one of a few words (the enums of config.h) */

static const char *const source_kinds[] = {"openldap", "ad", "ldap-poll"};
static const char *const sasl_mechs[] = {"none", "GSSAPI"};
static const char *const target_kinds[] = {"scim", "entra"};
static const char *const target_modes[] = {"graph", "bulkupload"};
static const char *const auth_kinds[] = {"", "oauth2"};
static const char *const deprovisions[] = {"delete", "disable"};
static const char *const nested_groups_words[] = {"native", "flatten", "skip"};
static const char *const patch_style_words[] = {"auto", "standard", "value_remove", "members_replace", "put"};
static const char *const on_thresholds[] = {"stage_excess", "stop"};
static const char *const log_levels[] = {"debug", "info", "warn", "error"};
static const char *const log_formats[] = {"text", "json"};
#define N_OF(a) (sizeof(a) / sizeof((a)[0]))

static const char *word_of(const char *const *words, size_t n, int i)
{
	return i >= 0 && (size_t)i < n ? words[i] : "?";
}

const char *config_source_kind_name(enum config_source_kind k)
{
	return word_of(source_kinds, N_OF(source_kinds), (int)k);
}

const char *config_sasl_mech_name(enum config_sasl_mech m)
{
	return word_of(sasl_mechs, N_OF(sasl_mechs), (int)m);
}

const char *config_target_kind_name(enum config_target_kind k)
{
	return word_of(target_kinds, N_OF(target_kinds), (int)k);
}

const char *config_target_mode_name(enum config_target_mode m)
{
	return word_of(target_modes, N_OF(target_modes), (int)m);
}

const char *config_auth_kind_name(enum config_auth_kind k)
{
	return word_of(auth_kinds, N_OF(auth_kinds), (int)k);
}

const char *config_nested_groups_name(enum config_nested_groups n)
{
	return word_of(nested_groups_words, N_OF(nested_groups_words), (int)n);
}

const char *config_patch_style_name(enum config_patch_style p)
{
	return word_of(patch_style_words, N_OF(patch_style_words), (int)p);
}

const char *config_deprovision_name(enum config_deprovision d)
{
	return word_of(deprovisions, N_OF(deprovisions), (int)d);
}

const char *config_on_threshold_name(enum config_on_threshold t)
{
	return word_of(on_thresholds, N_OF(on_thresholds), (int)t);
}

/*
 * One of words[first..n-1] (the enum value is its index) into *out. The
 * string is read as get_string() reads it into a buffer of `size` bytes, so
 * its errors stay those of a string key; a word not in the list is "KEY:
 * expected A, B or C, got X". With `any_scalar`, a scalar that is not a
 * usable string (empty, too long) gets that message too.
 */
static int get_word(struct cx *c, const yaml_node_t *v, const char *kp, const char *const *words, size_t first,
		    size_t n, size_t size, bool any_scalar, int *out)
{
	char buf[64], expected[160], d[96];
	size_t i, len = 0;
	int rc;

	*out = 0; /* defined on every path: callers read it only on success */
	if (size > sizeof buf)
		size = sizeof buf;
	expected[0] = '\0';
	for (i = first; i < n; i++)
		len += (size_t)snprintf(expected + len, sizeof expected - len, "%s%s",
					i == first ? "" : i + 1 == n ? " or " : ", ", words[i]);
	rc = get_string(c, v, kp, buf, size);
	if (rc != 0) {
		if (any_scalar && v->type == YAML_SCALAR_NODE && !is_null(v))
			return fail(c, line_of(v), "%s: expected %s, got %s", kp, expected, describe(v, d, sizeof d));
		return rc;
	}
	for (i = first; i < n; i++)
		if (strcmp(buf, words[i]) == 0) {
			*out = (int)i;
			return 0;
		}
	return fail(c, line_of(v), "%s: expected %s, got %s", kp, expected, describe(v, d, sizeof d));
}

/*
 * A decimal integer in [min, max]. When max is UINT64_MAX or UINT_MAX the
 * range is open ended and the message says "a positive integer" (min 1) or
 * "a non-negative integer" (min 0).
 */
static int get_uint(struct cx *c, const yaml_node_t *v, const char *kp, uint64_t min, uint64_t max,
		    uint64_t *out)
{
	char d[96];
	bool bounded = !(max == UINT64_MAX || max == UINT_MAX);
	const char *what = bounded ? "an integer" : (min >= 1 ? "a positive integer" : "a non-negative integer");
	if (v->type != YAML_SCALAR_NODE || is_null(v))
		return fail(c, line_of(v), "%s: expected %s, got %s", kp, what, describe(v, d, sizeof d));
	const char *s = sval(v);
	size_t len = v->data.scalar.length;
	if (v->data.scalar.style != YAML_PLAIN_SCALAR_STYLE)
		return fail(c, line_of(v), "%s: expected %s, got %s (a quoted string; write the number without quotes)",
			    kp, what, describe(v, d, sizeof d));
	bool neg = s[0] == '-';
	const char *digits = s + (neg ? 1 : 0);
	size_t nd = len - (neg ? 1 : 0);
	if (nd == 0 || strlen(s) != len || strspn(digits, "0123456789") != nd)
		return fail(c, line_of(v), "%s: expected %s, got %s", kp, what, describe(v, d, sizeof d));
	if (neg) {
		if (bounded)
			return fail(c, line_of(v), "%s: %.40s is out of range (%" PRIu64 "..%" PRIu64 ")", kp, s, min,
				    max);
		return fail(c, line_of(v), "%s: expected %s, got %s", kp, what, describe(v, d, sizeof d));
	}
	errno = 0;
	char *end = NULL;
	unsigned long long x = strtoull(digits, &end, 10);
	if (errno == ERANGE || end != digits + nd || x > max) {
		if (bounded)
			return fail(c, line_of(v), "%s: %.40s is out of range (%" PRIu64 "..%" PRIu64 ")", kp, s, min,
				    max);
		return fail(c, line_of(v), "%s: %.40s is too large (at most %" PRIu64 ")", kp, s, max);
	}
	if (x < min) {
		if (bounded)
			return fail(c, line_of(v), "%s: %.40s is out of range (%" PRIu64 "..%" PRIu64 ")", kp, s, min,
				    max);
		return fail(c, line_of(v), "%s: expected %s, got %s", kp, what, describe(v, d, sizeof d));
	}
	*out = (uint64_t)x;
	return 0;
}

static int get_unsigned(struct cx *c, const yaml_node_t *v, const char *kp, unsigned min, unsigned max,
			unsigned *out)
{
	uint64_t x;
	int rc = get_uint(c, v, kp, min, max, &x);
	if (rc == 0)
		*out = (unsigned)x;
	return rc;
}

static int get_bool(struct cx *c, const yaml_node_t *v, const char *kp, bool *out)
{
	char d[96];
	if (v->type == YAML_SCALAR_NODE && v->data.scalar.style == YAML_PLAIN_SCALAR_STYLE) {
		const char *s = sval(v);
		if (strcmp(s, "true") == 0 || strcmp(s, "True") == 0 || strcmp(s, "TRUE") == 0) {
			*out = true;
			return 0;
		}
		if (strcmp(s, "false") == 0 || strcmp(s, "False") == 0 || strcmp(s, "FALSE") == 0) {
			*out = false;
			return 0;
		}
	}
	return fail(c, line_of(v), "%s: expected true or false, got %s", kp, describe(v, d, sizeof d));
}

/* ----------------------------------------------------------- addresses */

/* HOST:PORT or [IPV6]:PORT. On error, `why` says what is wrong. */
static int check_hostport(const char *s, char *why, size_t whylen)
{
	const char *host = s, *colon;
	size_t hl;
	bool v6 = false;
	if (s[0] == '[') {
		const char *rb = strchr(s, ']');
		if (rb == NULL) {
			set_err(why, whylen, "missing \"]\" after an IPv6 address");
			return -EINVAL;
		}
		if (rb[1] != ':') {
			set_err(why, whylen, "missing \":PORT\"");
			return -EINVAL;
		}
		host = s + 1;
		hl = (size_t)(rb - host);
		colon = rb + 1;
		v6 = true;
	} else {
		colon = strrchr(s, ':');
		if (colon == NULL) {
			set_err(why, whylen, "missing \":PORT\"");
			return -EINVAL;
		}
		hl = (size_t)(colon - s);
		if (memchr(s, ':', hl) != NULL) {
			set_err(why, whylen, "write an IPv6 address as [ADDRESS]:PORT");
			return -EINVAL;
		}
	}
	if (hl == 0) {
		set_err(why, whylen, "missing host");
		return -EINVAL;
	}
	for (size_t i = 0; i < hl; i++) {
		unsigned char ch = (unsigned char)host[i];
		bool ok = isalnum(ch) || ch == '.' || ch == '-' || ch == '_' || (v6 && (ch == ':' || ch == '%'));
		if (!ok) {
			set_err(why, whylen, "invalid character '%c' in host", isprint(ch) ? ch : '?');
			return -EINVAL;
		}
	}
	const char *port = colon + 1;
	size_t pl = strlen(port);
	if (pl == 0) {
		set_err(why, whylen, "missing port after \":\"");
		return -EINVAL;
	}
	if (strspn(port, "0123456789") != pl) {
		set_err(why, whylen, "port is not a number");
		return -EINVAL;
	}
	unsigned long p = pl > 5 ? 99999UL : strtoul(port, NULL, 10);
	if (p < 1 || p > 65535) {
		set_err(why, whylen, "port %.10s%s is out of range (1..65535)", port, pl > 10 ? "..." : "");
		return -EINVAL;
	}
	return 0;
}

/*
 * Raft addresses: libraft 0.15's TCP transport parses them with
 * uv_ip4_addr(), so only A.B.C.D:PORT works (no host names, no IPv6).
 */
static int check_raft_hostport(const char *s, char *why, size_t whylen)
{
	int rc = check_hostport(s, why, whylen);
	if (rc != 0)
		return rc;
	const char *colon = strrchr(s, ':');
	char host[64];
	struct in_addr a;
	size_t hl = (size_t)(colon - s);
	if (s[0] == '[' || hl >= sizeof host) {
		set_err(why, whylen, "libraft 0.15 takes an IPv4 address A.B.C.D:PORT, no host name or IPv6");
		return -EINVAL;
	}
	memcpy(host, s, hl);
	host[hl] = '\0';
	if (inet_pton(AF_INET, host, &a) != 1) {
		set_err(why, whylen, "libraft 0.15 takes an IPv4 address A.B.C.D:PORT, no host name or IPv6");
		return -EINVAL;
	}
	return 0;
}

static int get_hostport(struct cx *c, const yaml_node_t *v, const char *kp, char *out, size_t outsz, bool raft)
{
	int rc = get_string(c, v, kp, out, outsz);
	if (rc != 0)
		return rc;
	char why[128], d[96];
	if ((raft ? check_raft_hostport(out, why, sizeof why) : check_hostport(out, why, sizeof why)) != 0)
		return fail(c, line_of(v), "%s: expected HOST:PORT, got %s (%s)", kp, describe(v, d, sizeof d), why);
	return 0;
}

int config_parse_member(const char *text, struct config_member *m, char *errmsg, size_t errlen)
{
	char d[96], why[128];
	memset(m, 0, sizeof *m);
	if (text == NULL) {
		set_err(errmsg, errlen, "no member given (expected ID@HOST:PORT)");
		return -EINVAL;
	}
	quote(text, strlen(text), d, sizeof d);
	const char *at = strchr(text, '@');
	if (at == NULL) {
		set_err(errmsg, errlen, "bad member %s: missing \"@\" (expected ID@HOST:PORT)", d);
		return -EINVAL;
	}
	size_t il = (size_t)(at - text);
	if (il == 0) {
		set_err(errmsg, errlen, "bad member %s: missing ID before \"@\" (expected ID@HOST:PORT)", d);
		return -EINVAL;
	}
	if (strspn(text, "0123456789") != il) {
		set_err(errmsg, errlen, "bad member %s: ID must be a positive integer", d);
		return -EINVAL;
	}
	char idbuf[32];
	if (il >= sizeof idbuf) {
		set_err(errmsg, errlen, "bad member %s: ID is too large", d);
		return -EINVAL;
	}
	memcpy(idbuf, text, il);
	idbuf[il] = '\0';
	errno = 0;
	unsigned long long id = strtoull(idbuf, NULL, 10);
	if (errno == ERANGE || id > UINT64_MAX) {
		set_err(errmsg, errlen, "bad member %s: ID is too large", d);
		return -EINVAL;
	}
	if (id == 0) {
		set_err(errmsg, errlen, "bad member %s: ID must be a positive integer", d);
		return -EINVAL;
	}
	const char *addr = at + 1;
	if (check_raft_hostport(addr, why, sizeof why) != 0) {
		set_err(errmsg, errlen, "bad member %s: address: %s (expected ID@HOST:PORT)", d, why);
		return -EINVAL;
	}
	if (strlen(addr) >= sizeof m->address) {
		set_err(errmsg, errlen, "bad member %s: address is too long (at most %zu bytes)", d,
			sizeof m->address - 1);
		return -EINVAL;
	}
	m->id = (uint64_t)id;
	strcpy(m->address, addr);
	return 0;
}

/* ---------------------------------------------------------------- paths */

static int config_dir(const char *path, char *out, size_t outsz)
{
	char dir[PATH_MAX];
	const char *slash = strrchr(path, '/');
	if (slash == path) {
		strcpy(dir, "/");
	} else if (slash != NULL) {
		size_t n = (size_t)(slash - path);
		if (n >= sizeof dir)
			return -ENAMETOOLONG;
		memcpy(dir, path, n);
		dir[n] = '\0';
	} else {
		strcpy(dir, ".");
	}
	if (dir[0] == '/') {
		if (strlen(dir) >= outsz)
			return -ENAMETOOLONG;
		strcpy(out, dir);
		return 0;
	}
	char cwd[PATH_MAX];
	if (getcwd(cwd, sizeof cwd) == NULL)
		return -errno;
	const char *rel = dir;
	while (rel[0] == '.' && rel[1] == '/')
		rel += 2;
	int n;
	if (strcmp(rel, ".") == 0 || rel[0] == '\0')
		n = snprintf(out, outsz, "%s", cwd);
	else
		n = snprintf(out, outsz, "%s%s%s", cwd, strcmp(cwd, "/") == 0 ? "" : "/", rel);
	if (n < 0 || (size_t)n >= outsz)
		return -ENAMETOOLONG;
	return 0;
}

/* A path value: relative ones are resolved against the config's directory. */
static int get_path(struct cx *c, const yaml_node_t *v, const char *kp, char *out, size_t outsz)
{
	char raw[PATH_MAX];
	int rc = get_string(c, v, kp, raw, sizeof raw);
	if (rc != 0)
		return rc;
	int n;
	if (raw[0] == '/') {
		n = snprintf(out, outsz, "%s", raw);
	} else {
		const char *rel = raw;
		while (rel[0] == '.' && rel[1] == '/')
			rel += 2;
		if (strcmp(rel, ".") == 0 || rel[0] == '\0')
			n = snprintf(out, outsz, "%s", c->dir);
		else
			n = snprintf(out, outsz, "%s%s%s", c->dir, strcmp(c->dir, "/") == 0 ? "" : "/", rel);
	}
	if (n < 0 || (size_t)n >= outsz)
		return fail(c, line_of(v), "%s: too long once resolved against %s (%d bytes, at most %zu)", kp, c->dir,
			    n, outsz - 1);
	return 0;
}

/* ------------------------------------------------------------- sections */

static int parse_node(struct cx *c, struct field *sec, struct config *cfg)
{
	struct field f[] = {{"id", NULL, 0}, {"raft_address", NULL, 0}, {"control_address", NULL, 0},
			    {"data_dir", NULL, 0}};
	const size_t nf = sizeof f / sizeof f[0];
	int rc = take_fields(c, sec->val, "node", f, nf);
	if (rc != 0)
		return rc;
	/* What is written is checked first, then what is missing. */
	if (f[0].val != NULL && (rc = get_uint(c, f[0].val, "node.id", 1, UINT64_MAX, &cfg->node.id)) != 0)
		return rc;
	if (f[1].val != NULL && (rc = get_hostport(c, f[1].val, "node.raft_address", cfg->node.raft_address,
						   sizeof cfg->node.raft_address, true)) != 0)
		return rc;
	if (f[2].val != NULL && (rc = get_hostport(c, f[2].val, "node.control_address", cfg->node.control_address,
						   sizeof cfg->node.control_address, false)) != 0)
		return rc;
	if (f[3].val != NULL &&
	    (rc = get_path(c, f[3].val, "node.data_dir", cfg->node.data_dir, sizeof cfg->node.data_dir)) != 0)
		return rc;
	for (size_t i = 0; i < nf; i++)
		if (f[i].val == NULL)
			return fail(c, sec->line, "missing required key node.%s", f[i].name);
	if (strcmp(cfg->node.raft_address, cfg->node.control_address) == 0)
		return fail(c, line_of(f[2].val), "node.control_address: must differ from node.raft_address (%s)",
			    cfg->node.raft_address);
	return 0;
}

static int parse_members(struct cx *c, struct field *fm, struct config *cfg)
{
	char d[96];
	yaml_node_t *seq = fm->val;
	if (seq->type != YAML_SEQUENCE_NODE)
		return fail(c, line_of(seq), "cluster.members: expected a list of \"ID@HOST:PORT\", got %s",
			    describe(seq, d, sizeof d));
	size_t n = (size_t)(seq->data.sequence.items.top - seq->data.sequence.items.start);
	if (n == 0)
		return fail(c, line_of(seq), "cluster.members: the list is empty (list at least this node)");
	if (n > CONFIG_MAX_MEMBERS)
		return fail(c, line_of(seq), "cluster.members: too many members (%zu, at most %d)", n,
			    CONFIG_MAX_MEMBERS);
	for (size_t i = 0; i < n; i++) {
		yaml_node_t *it = node_at(c, seq->data.sequence.items.start[i]);
		char kp[64], text[512], why[400];
		snprintf(kp, sizeof kp, "cluster.members[%zu]", i);
		int rc = get_string(c, it, kp, text, sizeof text);
		if (rc != 0)
			return rc;
		struct config_member *m = &cfg->cluster.members[i];
		if (config_parse_member(text, m, why, sizeof why) != 0)
			return fail(c, line_of(it), "%s: %s", kp, why);
		for (size_t j = 0; j < i; j++) {
			if (cfg->cluster.members[j].id == m->id)
				return fail(c, line_of(it), "%s: duplicate member id %" PRIu64 " (also cluster.members[%zu])",
					    kp, m->id, j);
			if (strcmp(cfg->cluster.members[j].address, m->address) == 0)
				return fail(c, line_of(it), "%s: duplicate member address %s (also cluster.members[%zu])",
					    kp, m->address, j);
		}
		if (m->id == cfg->node.id && strcmp(m->address, cfg->node.raft_address) != 0)
			return fail(c, line_of(it), "%s: this node (id %" PRIu64 ") is listed at %s but node.raft_address is %s",
				    kp, m->id, m->address, cfg->node.raft_address);
		cfg->cluster.n_members = (unsigned)(i + 1);
	}
	return 0;
}

/*
 * cluster.tls: {ca, cert, key}, all three or none. The files must be readable
 * now, and the key file follow the rule for secrets (no access for group or
 * others; raft/transport_tls.h: tls_transport_check_key_file), so a mistake
 * fails at start with the key named, not at the first connection.
 */
static int parse_cluster_tls(struct cx *c, struct field *sec, struct config *cfg)
{
	struct field f[] = {{"ca", NULL, 0}, {"cert", NULL, 0}, {"key", NULL, 0}};
	char *out[] = {cfg->cluster.tls_ca, cfg->cluster.tls_cert, cfg->cluster.tls_key};
	size_t sz[] = {sizeof cfg->cluster.tls_ca, sizeof cfg->cluster.tls_cert, sizeof cfg->cluster.tls_key};
	char kp[64], why[600];
	int rc = take_fields(c, sec->val, "cluster.tls", f, 3);
	if (rc != 0)
		return rc;
	for (size_t i = 0; i < 3; i++)
		if (f[i].val == NULL)
			return fail(c, sec->line,
				    "cluster.tls: missing key %s (ca, cert and key are required together)",
				    f[i].name);
	for (size_t i = 0; i < 3; i++) {
		snprintf(kp, sizeof kp, "cluster.tls.%s", f[i].name);
		if ((rc = get_path(c, f[i].val, kp, out[i], sz[i])) != 0)
			return rc;
		if (access(out[i], R_OK) != 0) {
			int e = errno;
			return fail_rc(c, -e, line_of(f[i].val), "%s: cannot read %s: %s", kp, out[i], strerror(e));
		}
	}
	if ((rc = tls_transport_check_key_file(cfg->cluster.tls_key, why, sizeof why)) != 0)
		return fail_rc(c, rc, line_of(f[2].val), "cluster.tls.key: %s", why);
	return 0;
}

static int parse_cluster(struct cx *c, struct field *sec, struct config *cfg)
{
	struct field f[] = {{"name", NULL, 0},		    {"members", NULL, 0}, {"election_timeout_ms", NULL, 0},
			    {"heartbeat_ms", NULL, 0},	    {"pre_vote", NULL, 0},
			    {"snapshot_threshold", NULL, 0}, {"snapshot_trailing", NULL, 0},
			    {"snapshot_log_mib", NULL, 0},
			    {"bootstrap", NULL, 0},	    {"tls", NULL, 0},
			    {"early_election", NULL, 0}};
	const size_t nf = sizeof f / sizeof f[0];
	int rc = take_fields(c, sec->val, "cluster", f, nf);
	if (rc != 0)
		return rc;
	struct field *name = field(f, nf, "name"), *members = field(f, nf, "members");
	struct field *et = field(f, nf, "election_timeout_ms"), *hb = field(f, nf, "heartbeat_ms");
	struct field *pv = field(f, nf, "pre_vote"), *st = field(f, nf, "snapshot_threshold");
	if (name->val != NULL &&
	    (rc = get_string(c, name->val, "cluster.name", cfg->cluster.name, sizeof cfg->cluster.name)) != 0)
		return rc;
	if (members->val != NULL && (rc = parse_members(c, members, cfg)) != 0)
		return rc;
	if (et->val != NULL &&
	    (rc = get_unsigned(c, et->val, "cluster.election_timeout_ms", 100, 60000, &cfg->cluster.election_timeout_ms)) !=
		    0)
		return rc;
	if (hb->val != NULL &&
	    (rc = get_unsigned(c, hb->val, "cluster.heartbeat_ms", 1, 60000, &cfg->cluster.heartbeat_ms)) != 0)
		return rc;
	if (pv->val != NULL && (rc = get_bool(c, pv->val, "cluster.pre_vote", &cfg->cluster.pre_vote)) != 0)
		return rc;
	struct field *ee = field(f, nf, "early_election");
	if (ee->val != NULL &&
	    (rc = get_bool(c, ee->val, "cluster.early_election", &cfg->cluster.early_election)) != 0)
		return rc;
	if (st->val != NULL &&
	    (rc = get_unsigned(c, st->val, "cluster.snapshot_threshold", 1, UINT_MAX, &cfg->cluster.snapshot_threshold)) !=
		    0)
		return rc;
	struct field *tr = field(f, nf, "snapshot_trailing");
	if (tr->val != NULL &&
	    (rc = get_unsigned(c, tr->val, "cluster.snapshot_trailing", 1, UINT_MAX, &cfg->cluster.snapshot_trailing)) !=
		    0)
		return rc;
	struct field *lm = field(f, nf, "snapshot_log_mib");
	if (lm->val != NULL &&
	    (rc = get_unsigned(c, lm->val, "cluster.snapshot_log_mib", 0, CONFIG_MAX_SNAPSHOT_LOG_MIB,
			       &cfg->cluster.snapshot_log_mib)) != 0)
		return rc;
	struct field *bs = field(f, nf, "bootstrap");
	if (bs->val != NULL) {
		bool yes;
		if ((rc = get_bool(c, bs->val, "cluster.bootstrap", &yes)) != 0)
			return rc;
		cfg->cluster.bootstrap = yes ? CONFIG_BOOTSTRAP_YES : CONFIG_BOOTSTRAP_NO;
	}
	struct field *tls = field(f, nf, "tls");
	if (tls->val != NULL && (rc = parse_cluster_tls(c, tls, cfg)) != 0)
		return rc;
	if (name->val == NULL)
		return fail(c, sec->line, "missing required key cluster.name");
	if (members->val == NULL)
		return fail(c, sec->line, "missing required key cluster.members");
	if (cfg->cluster.heartbeat_ms >= cfg->cluster.election_timeout_ms) {
		if (hb->val != NULL)
			return fail(c, line_of(hb->val),
				    "cluster.heartbeat_ms: must be less than cluster.election_timeout_ms (%u), got %u",
				    cfg->cluster.election_timeout_ms, cfg->cluster.heartbeat_ms);
		return fail(c, line_of(et->val),
			    "cluster.election_timeout_ms: must be greater than cluster.heartbeat_ms (default %u); "
			    "set cluster.heartbeat_ms lower",
			    cfg->cluster.heartbeat_ms);
	}
	return 0;
}

/* An LDAP filter: "(...)", parentheses balanced, one filter. */
static int check_filter(const char *s, char *why, size_t whylen)
{
	size_t n = strlen(s);
	if (n < 2 || s[0] != '(' || s[n - 1] != ')') {
		set_err(why, whylen, "must be enclosed in parentheses");
		return -EINVAL;
	}
	int depth = 0;
	for (size_t i = 0; i < n; i++) {
		if (s[i] == '(')
			depth++;
		else if (s[i] == ')')
			depth--;
		if (depth < 0 || (depth == 0 && i != n - 1)) {
			set_err(why, whylen, "unbalanced parentheses (escape literal ones as \\28 and \\29)");
			return -EINVAL;
		}
	}
	if (depth != 0) {
		set_err(why, whylen, "unbalanced parentheses (escape literal ones as \\28 and \\29)");
		return -EINVAL;
	}
	return 0;
}

/* An attribute description as LDAP names it (RFC 4512 §1.4): a descr
 * (a letter, then letters, digits and '-') or a numeric OID. */
static bool attribute_name_ok(const char *s)
{
	bool oid = isdigit((unsigned char)s[0]);

	if (!isalpha((unsigned char)s[0]) && !oid)
		return false;
	for (const char *p = s + 1; *p; p++)
		if (oid ? !(isdigit((unsigned char)*p) || (*p == '.' && p[1] != '.' && p[1] != '\0'))
			: !(isalnum((unsigned char)*p) || *p == '-'))
			return false;
	return true;
}

/* source.groups.member_attribute and member_value (docs/sources.md). */
static int parse_member_shape(struct cx *c, struct field *attr, struct field *value, struct config_scope *scope)
{
	char d[96];
	int rc;

	if (attr->val != NULL) {
		if ((rc = get_string(c, attr->val, "source.groups.member_attribute", scope->member_attribute,
				     sizeof scope->member_attribute)) != 0)
			return rc;
		if (!attribute_name_ok(scope->member_attribute))
			return fail(c, line_of(attr->val),
				    "source.groups.member_attribute: expected an attribute name like member, "
				    "uniqueMember or memberUid, got %s",
				    describe(attr->val, d, sizeof d));
	}
	if (value->val != NULL) {
		if ((rc = get_string(c, value->val, "source.groups.member_value", scope->member_value,
				     sizeof scope->member_value)) != 0)
			return rc;
		if (!attribute_name_ok(scope->member_value))
			return fail(c, line_of(value->val),
				    "source.groups.member_value: expected dn or a user attribute name like uid, got %s",
				    describe(value->val, d, sizeof d));
	}
	return 0;
}

static int parse_scope(struct cx *c, struct field *sec, const char *path, struct config_scope *scope)
{
	/* member_of scopes users by group membership; member_attribute and
	 * member_value say how groups name their members: each only where it
	 * has a meaning */
	struct field uf[] = {{"base", NULL, 0}, {"filter", NULL, 0}, {"exclude", NULL, 0}, {"member_of", NULL, 0}};
	struct field gf[] = {{"base", NULL, 0},
			     {"filter", NULL, 0},
			     {"exclude", NULL, 0},
			     {"member_attribute", NULL, 0},
			     {"member_value", NULL, 0}};
	char kp[64], why[128], d[96];
	bool users = strcmp(path, "source.users") == 0;
	struct field *f = users ? uf : gf;
	int rc = take_fields(c, sec->val, path, f, users ? N_OF(uf) : N_OF(gf));
	if (rc != 0)
		return rc;
	if (!users && (rc = parse_member_shape(c, &gf[3], &gf[4], scope)) != 0)
		return rc;
	join_key(kp, sizeof kp, path, "base");
	if (f[0].val != NULL && (rc = get_string(c, f[0].val, kp, scope->base, sizeof scope->base)) != 0)
		return rc;
	if (f[1].val != NULL) {
		join_key(kp, sizeof kp, path, "filter");
		if ((rc = get_string(c, f[1].val, kp, scope->filter, sizeof scope->filter)) != 0)
			return rc;
		if (check_filter(scope->filter, why, sizeof why) != 0)
			return fail(c, line_of(f[1].val), "%s: %s, got %s", kp, why, describe(f[1].val, d, sizeof d));
	}
	if (f[2].val != NULL) { /* subtrees below base that are out of scope */
		yaml_node_t *v = f[2].val;
		if (v->type != YAML_SEQUENCE_NODE)
			return fail(c, line_of(v), "%s.exclude: expected a list of DNs, got %s", path,
				    describe(v, d, sizeof d));
		size_t n = (size_t)(v->data.sequence.items.top - v->data.sequence.items.start);
		if (n > CONFIG_MAX_EXCLUDES)
			return fail(c, line_of(v), "%s.exclude: too many subtrees (%zu, at most %d)", path, n,
				    CONFIG_MAX_EXCLUDES);
		for (size_t i = 0; i < n; i++) {
			yaml_node_t *it = node_at(c, v->data.sequence.items.start[i]);
			snprintf(kp, sizeof kp, "%s.exclude[%zu]", path, i);
			if ((rc = get_string(c, it, kp, scope->exclude[i], sizeof scope->exclude[i])) != 0)
				return rc;
			if (strchr(scope->exclude[i], '=') == NULL)
				return fail(c, line_of(it), "%s: expected a DN like ou=contractors,dc=example,dc=com, got %s",
					    kp, describe(it, d, sizeof d));
			scope->n_exclude = (unsigned)(i + 1);
		}
	}
	if (users && f[3].val != NULL) {
		join_key(kp, sizeof kp, path, "member_of");
		if ((rc = get_string(c, f[3].val, kp, scope->member_of, sizeof scope->member_of)) != 0)
			return rc;
		if (strchr(scope->member_of, '=') == NULL)
			return fail(c, line_of(f[3].val), "%s: expected a group DN like cn=staff,ou=groups,dc=example,dc=com, got %s",
				    kp, describe(f[3].val, d, sizeof d));
	}
	if (f[0].val == NULL)
		return fail(c, sec->line, "missing required key %s.base", path);
	return 0;
}

static bool has_prefix_ci(const char *s, const char *p)
{
	return strncasecmp(s, p, strlen(p)) == 0;
}

/* One URL: a known scheme, something after it, no whitespace. */
static int check_url(struct cx *c, const yaml_node_t *v, const char *kp, const char *url, const char *const *schemes,
		     const char *expect, const char *ws_hint)
{
	char d[96];
	size_t i;
	for (i = 0; schemes[i] != NULL; i++)
		if (has_prefix_ci(url, schemes[i]))
			break;
	if (schemes[i] == NULL)
		return fail(c, line_of(v), "%s: expected %s, got %s", kp, expect, describe(v, d, sizeof d));
	if (url[strlen(schemes[i])] == '\0')
		return fail(c, line_of(v), "%s: missing host after %s", kp, schemes[i]);
	for (const char *p = url; *p; p++)
		if (isspace((unsigned char)*p))
			return fail(c, line_of(v), "%s: URL contains whitespace, got %s%s", kp, describe(v, d, sizeof d),
				    ws_hint);
	return 0;
}

static int parse_source_urls(struct cx *c, struct field *fu, struct config *cfg)
{
	static const char *const schemes[] = {"ldap://", "ldaps://", NULL};
	const char *expect = "an ldap:// or ldaps:// URL";
	const char *hint = " (list several URLs as a YAML list)";
	char d[96], kp[64];
	yaml_node_t *v = fu->val;
	int rc;
	if (v->type == YAML_SCALAR_NODE) {
		if ((rc = get_string(c, v, "source.url", cfg->source.urls[0], sizeof cfg->source.urls[0])) != 0)
			return rc;
		if ((rc = check_url(c, v, "source.url", cfg->source.urls[0], schemes, expect, hint)) != 0)
			return rc;
		cfg->source.n_urls = 1;
		return 0;
	}
	if (v->type != YAML_SEQUENCE_NODE)
		return fail(c, line_of(v), "source.url: expected a URL or a list of URLs, got %s",
			    describe(v, d, sizeof d));
	size_t n = (size_t)(v->data.sequence.items.top - v->data.sequence.items.start);
	if (n == 0)
		return fail(c, line_of(v), "source.url: the list is empty");
	if (n > CONFIG_MAX_URLS)
		return fail(c, line_of(v), "source.url: too many URLs (%zu, at most %d)", n, CONFIG_MAX_URLS);
	for (size_t i = 0; i < n; i++) {
		yaml_node_t *it = node_at(c, v->data.sequence.items.start[i]);
		snprintf(kp, sizeof kp, "source.url[%zu]", i);
		if ((rc = get_string(c, it, kp, cfg->source.urls[i], sizeof cfg->source.urls[i])) != 0)
			return rc;
		if ((rc = check_url(c, it, kp, cfg->source.urls[i], schemes, expect, hint)) != 0)
			return rc;
		for (size_t j = 0; j < i; j++)
			if (strcasecmp(cfg->source.urls[j], cfg->source.urls[i]) == 0)
				return fail(c, line_of(it), "%s: duplicate of source.url[%zu]", kp, j);
		cfg->source.n_urls = (unsigned)(i + 1);
	}
	return 0;
}

/* `tls: {ca: FILE}` (source.tls, target.tls). The CA file must be readable
 * now, so a typo fails at start and not at the first connection. */
static int parse_tls(struct cx *c, struct field *sec, const char *path, char *ca, size_t casz)
{
	struct field f[] = {{"ca", NULL, 0}};
	char kp[64];
	int rc = take_fields(c, sec->val, path, f, 1);
	if (rc != 0 || f[0].val == NULL)
		return rc;
	snprintf(kp, sizeof kp, "%s.ca", path);
	if ((rc = get_path(c, f[0].val, kp, ca, casz)) != 0)
		return rc;
	if (access(ca, R_OK) != 0) {
		int e = errno;
		return fail_rc(c, -e, line_of(f[0].val), "%s: cannot read %s: %s", kp, ca, strerror(e));
	}
	return 0;
}

/* target.auth: OAuth2 client credentials (RFC 6749 §4.4), with a client
 * secret or a certificate (RFC 7523 client assertion). */
static int parse_auth(struct cx *c, struct field *sec, struct config *cfg)
{
	static const char *const schemes[] = {"http://", "https://", NULL};
	struct field f[] = {{"kind", NULL, 0},	      {"token_url", NULL, 0},  {"client_id", NULL, 0},
			    {"client_secret_file", NULL, 0}, {"scope", NULL, 0}, {"client_cert", NULL, 0},
			    {"client_key", NULL, 0}};
	const size_t nf = sizeof f / sizeof f[0];
	struct config_oauth2 *a = &cfg->target.auth;
	int rc = take_fields(c, sec->val, "target.auth", f, nf);
	if (rc != 0)
		return rc;
	if (f[0].val != NULL) {
		int k = 0; /* set by get_word on success; 0 keeps gcc -O2 quiet */
		if ((rc = get_word(c, f[0].val, "target.auth.kind", auth_kinds, 1, N_OF(auth_kinds), 16, false, &k)) != 0)
			return rc;
		a->kind = (enum config_auth_kind)k;
	}
	if (f[1].val != NULL) {
		if ((rc = get_string(c, f[1].val, "target.auth.token_url", a->token_url, sizeof a->token_url)) != 0)
			return rc;
		if ((rc = check_url(c, f[1].val, "target.auth.token_url", a->token_url, schemes,
				    "an http:// or https:// URL", "")) != 0)
			return rc;
	}
	if (f[2].val != NULL &&
	    (rc = get_string(c, f[2].val, "target.auth.client_id", a->client_id, sizeof a->client_id)) != 0)
		return rc;
	if (f[3].val != NULL) {
		if ((rc = get_path(c, f[3].val, "target.auth.client_secret_file", a->client_secret_file,
				   sizeof a->client_secret_file)) != 0)
			return rc;
		c->client_secret_line = f[3].line;
	}
	if (f[4].val != NULL && (rc = get_string(c, f[4].val, "target.auth.scope", a->scope, sizeof a->scope)) != 0)
		return rc;
	if (f[5].val != NULL && (rc = get_path(c, f[5].val, "target.auth.client_cert", a->client_cert,
					       sizeof a->client_cert)) != 0)
		return rc;
	if (f[6].val != NULL && (rc = get_path(c, f[6].val, "target.auth.client_key", a->client_key,
					       sizeof a->client_key)) != 0)
		return rc;
	if (f[0].val == NULL)
		return fail(c, sec->line, "missing required key target.auth.kind");
	if (f[1].val == NULL)
		return fail(c, sec->line, "missing required key target.auth.token_url");
	if (f[2].val == NULL)
		return fail(c, sec->line, "missing required key target.auth.client_id");
	if ((f[5].val == NULL) != (f[6].val == NULL))
		return fail(c, f[5].val != NULL ? f[5].line : f[6].line,
			    "target.auth: client_cert and client_key go together");
	if (f[3].val != NULL && f[5].val != NULL)
		return fail(c, f[3].line, "target.auth: give client_secret_file or client_cert + client_key, not both");
	if (f[3].val == NULL && f[5].val == NULL)
		return fail(c, sec->line, "target.auth: needs client_secret_file, or client_cert + client_key");
	return 0;
}

/* source.sasl: {mech: GSSAPI, keytab: FILE, principal: name@REALM}, a
 * Kerberos bind with the agent's keytab instead of a password. The keytab
 * must be readable now, so a typo fails at start and not at the first bind,
 * and kept like a password file (sync/secret.h): its keys are the password. */
static int parse_sasl(struct cx *c, struct field *sec, struct config *cfg)
{
	struct field f[] = {{"mech", NULL, 0}, {"keytab", NULL, 0}, {"principal", NULL, 0}};
	int rc = take_fields(c, sec->val, "source.sasl", f, N_OF(f));
	int m;

	if (rc != 0)
		return rc;
	if (f[0].val == NULL)
		return fail(c, sec->line, "missing required key source.sasl.mech");
	if ((rc = get_word(c, f[0].val, "source.sasl.mech", sasl_mechs, 1, N_OF(sasl_mechs), 16, false, &m)) != 0)
		return rc;
	if (f[1].val == NULL)
		return fail(c, sec->line, "missing required key source.sasl.keytab");
	if (f[2].val == NULL)
		return fail(c, sec->line, "missing required key source.sasl.principal");
	if ((rc = get_path(c, f[1].val, "source.sasl.keytab", cfg->source.sasl.keytab,
			   sizeof cfg->source.sasl.keytab)) != 0)
		return rc;
	char why[512];
	if ((rc = secret_check(cfg->source.sasl.keytab, why, sizeof why)) != 0)
		return fail_rc(c, rc, line_of(f[1].val), "source.sasl.keytab: %s", why);
	if ((rc = get_string(c, f[2].val, "source.sasl.principal", cfg->source.sasl.principal,
			     sizeof cfg->source.sasl.principal)) != 0)
		return rc;
	cfg->source.sasl.mech = (enum config_sasl_mech)m;
	return 0;
}

/* kind ad: source.poll_s (DirSync at least this often), source.notify (the
 * change-notification wake-up, on by default), source.reconcile_s (the
 * periodic anchor comparison that finds deletions a non-admin account cannot
 * see as tombstones; 0 = off) and the AD default filters when none is given
 * (docs/active-directory.md). */
static int parse_source_ad(struct cx *c, struct field *poll, struct field *notify, struct field *reconcile,
			   struct config *cfg)
{
	bool ad = cfg->source.kind == CONFIG_SOURCE_AD;
	int rc;

	if (poll->val != NULL && !ad)
		return fail(c, poll->line, "source.poll_s: only for source.kind ad");
	if (notify->val != NULL && !ad)
		return fail(c, notify->line, "source.notify: only for source.kind ad");
	if (reconcile->val != NULL && !ad)
		return fail(c, reconcile->line, "source.reconcile_s: only for source.kind ad");
	if (!ad)
		return 0;
	if (strcmp(cfg->source.users.filter, CONFIG_DEFAULT_USER_FILTER) == 0)
		strcpy(cfg->source.users.filter, CONFIG_DEFAULT_AD_USER_FILTER);
	if (strcmp(cfg->source.groups.filter, CONFIG_DEFAULT_GROUP_FILTER) == 0)
		strcpy(cfg->source.groups.filter, CONFIG_DEFAULT_AD_GROUP_FILTER);
	cfg->source.poll_s = CONFIG_DEFAULT_AD_POLL_S;
	cfg->source.notify = true;
	cfg->source.reconcile_s = CONFIG_DEFAULT_AD_RECONCILE_S;
	if (poll->val != NULL &&
	    (rc = get_unsigned(c, poll->val, "source.poll_s", 1, 86400, &cfg->source.poll_s)) != 0)
		return rc;
	if (notify->val != NULL && (rc = get_bool(c, notify->val, "source.notify", &cfg->source.notify)) != 0)
		return rc;
	if (reconcile->val != NULL &&
	    (rc = get_unsigned(c, reconcile->val, "source.reconcile_s", 0, 7 * 86400, &cfg->source.reconcile_s)) != 0)
		return rc;
	return 0;
}

/* kind ldap-poll: source.poll_interval_s, source.poll_full_every and
 * source.anchor_attribute (sync/source/ldap_poll.h, docs/sources.md). An
 * attribute description is a keystring (RFC 4512 §1.4) or an OID. */
static int parse_source_poll(struct cx *c, struct field *interval, struct field *every, struct field *anchor,
			     struct config *cfg)
{
	bool poll = cfg->source.kind == CONFIG_SOURCE_LDAP_POLL;
	char *a = cfg->source.anchor_attribute;
	int rc;

	if (interval->val != NULL && !poll)
		return fail(c, interval->line, "source.poll_interval_s: only for source.kind ldap-poll");
	if (every->val != NULL && !poll)
		return fail(c, every->line, "source.poll_full_every: only for source.kind ldap-poll");
	if (anchor->val != NULL && !poll)
		return fail(c, anchor->line, "source.anchor_attribute: only for source.kind ldap-poll");
	if (!poll)
		return 0;
	cfg->source.poll_interval_s = CONFIG_DEFAULT_POLL_INTERVAL_S;
	cfg->source.poll_full_every = CONFIG_DEFAULT_POLL_FULL_EVERY;
	strcpy(a, "entryUUID");
	if (interval->val != NULL && (rc = get_unsigned(c, interval->val, "source.poll_interval_s", 1, 86400,
							&cfg->source.poll_interval_s)) != 0)
		return rc;
	if (every->val != NULL && (rc = get_unsigned(c, every->val, "source.poll_full_every", 1, 100000,
						     &cfg->source.poll_full_every)) != 0)
		return rc;
	if (anchor->val != NULL) {
		if ((rc = get_string(c, anchor->val, "source.anchor_attribute", a, sizeof cfg->source.anchor_attribute)) !=
		    0)
			return rc;
		bool ok = a[0] != '\0';
		for (const char *p = a; *p && ok; p++)
			ok = (*p >= 'a' && *p <= 'z') || (*p >= 'A' && *p <= 'Z') || (*p >= '0' && *p <= '9') ||
			     (p != a && (*p == '-' || *p == '.'));
		if (!ok)
			return fail(c, anchor->line, "source.anchor_attribute: \"%s\" is not an attribute name", a);
	}
	return 0;
}

/* The member shape against the source kind: AD groups always list members
 * as DNs in `member` (its DirSync and range retrieval read that attribute,
 * docs/active-directory.md), and RFC 2307 memberUid values are user names,
 * never DNs (docs/sources.md). */
static int check_member_shape(struct cx *c, struct field *groups, const struct config *cfg)
{
	const struct config_scope *g = &cfg->source.groups;
	bool by_dn = g->member_value[0] == '\0' || strcasecmp(g->member_value, "dn") == 0;

	if (groups->val == NULL)
		return 0;
	if (cfg->source.kind == CONFIG_SOURCE_AD &&
	    ((g->member_attribute[0] && strcasecmp(g->member_attribute, "member") != 0) || !by_dn))
		return fail(c, groups->line,
			    "source.groups: kind ad reads members from member as DNs; member_attribute must be member "
			    "and member_value dn (or leave both out)");
	if (by_dn && strcasecmp(g->member_attribute, "memberUid") == 0)
		return fail(c, groups->line,
			    "source.groups.member_attribute memberUid holds user names, not DNs: add member_value: uid "
			    "(the user attribute its values name)");
	return 0;
}

static int parse_source(struct cx *c, struct field *sec, struct config *cfg)
{
	struct field f[] = {{"kind", NULL, 0},		{"url", NULL, 0},   {"bind_dn", NULL, 0},
			    {"password_file", NULL, 0}, {"users", NULL, 0}, {"groups", NULL, 0},
			    {"tls", NULL, 0},		{"poll_s", NULL, 0}, {"sasl", NULL, 0},
			    {"notify", NULL, 0},	{"reconcile_s", NULL, 0},
			    {"poll_interval_s", NULL, 0}, {"poll_full_every", NULL, 0}, {"anchor_attribute", NULL, 0}};
	const size_t nf = sizeof f / sizeof f[0];
	int rc = take_fields(c, sec->val, "source", f, nf);
	if (rc != 0)
		return rc;
	struct field *kind = field(f, nf, "kind"), *url = field(f, nf, "url"), *bind = field(f, nf, "bind_dn");
	struct field *pw = field(f, nf, "password_file"), *users = field(f, nf, "users");
	struct field *groups = field(f, nf, "groups");
	cfg->source.present = true;
	if (kind->val != NULL) {
		int k = 0; /* set by get_word on success; 0 keeps gcc -O2 quiet */
		if ((rc = get_word(c, kind->val, "source.kind", source_kinds, 0, N_OF(source_kinds), 32, false, &k)) != 0)
			return rc;
		cfg->source.kind = (enum config_source_kind)k;
	}
	if (url->val != NULL && (rc = parse_source_urls(c, url, cfg)) != 0)
		return rc;
	if (bind->val != NULL &&
	    (rc = get_string(c, bind->val, "source.bind_dn", cfg->source.bind_dn, sizeof cfg->source.bind_dn)) != 0)
		return rc;
	if (pw->val != NULL) {
		if ((rc = get_path(c, pw->val, "source.password_file", cfg->source.password_file,
				   sizeof cfg->source.password_file)) != 0)
			return rc;
		c->password_line = pw->line;
	}
	if (users->val != NULL && (rc = parse_scope(c, users, "source.users", &cfg->source.users)) != 0)
		return rc;
	if (groups->val != NULL && (rc = parse_scope(c, groups, "source.groups", &cfg->source.groups)) != 0)
		return rc;
	struct field *tls = field(f, nf, "tls");
	if (tls->val != NULL) {
		if ((rc = parse_tls(c, tls, "source.tls", cfg->source.tls_ca, sizeof cfg->source.tls_ca)) != 0)
			return rc;
		cfg->source.tls = true;
	}
	if (kind->val == NULL)
		return fail(c, sec->line, "missing required key source.kind");
	if (url->val == NULL)
		return fail(c, sec->line, "missing required key source.url");
	if (users->val == NULL)
		return fail(c, sec->line, "missing required key source.users");
	if (bind->val != NULL && pw->val == NULL)
		return fail(c, bind->line, "source.bind_dn: needs source.password_file (the bind password)");
	struct field *sasl = field(f, nf, "sasl");
	if (sasl->val != NULL && (bind->val != NULL || pw->val != NULL))
		return fail(c, sasl->line, "source.sasl: give source.sasl (a keytab) or source.bind_dn + "
			    "source.password_file (a password), not both");
	if (bind->val != NULL && pw->val == NULL)
		return fail(c, bind->line, "source.bind_dn: needs source.password_file (the bind password)");
	if (pw->val != NULL && bind->val == NULL)
		return fail(c, pw->line, "source.password_file: needs source.bind_dn (whom to bind as)");
	if (sasl->val != NULL && (rc = parse_sasl(c, sasl, cfg)) != 0)
		return rc;
	if ((rc = check_member_shape(c, groups, cfg)) != 0)
		return rc;
	if ((rc = parse_source_poll(c, field(f, nf, "poll_interval_s"), field(f, nf, "poll_full_every"),
				    field(f, nf, "anchor_attribute"), cfg)) != 0)
		return rc;
	return parse_source_ad(c, field(f, nf, "poll_s"), field(f, nf, "notify"), field(f, nf, "reconcile_s"), cfg);
}

/* target.mode and what bulkupload needs (f: the fields mode,
 * service_principal_id, job_id, results_wait_ms of the target section). */
static int parse_target_mode(struct cx *c, struct field *sec, struct field *f, struct config *cfg)
{
	static const char *const ids[] = {"target.service_principal_id", "target.job_id"};
	char *const out[] = {cfg->target.service_principal_id, cfg->target.job_id};
	const size_t outsz[] = {sizeof cfg->target.service_principal_id, sizeof cfg->target.job_id};
	int rc;

	if (f[0].val != NULL) {
		int k = 0; /* set by get_word on success; 0 keeps gcc -O2 quiet */
		if ((rc = get_word(c, f[0].val, "target.mode", target_modes, 0, N_OF(target_modes), 16, false, &k)) != 0)
			return rc;
		cfg->target.mode = (enum config_target_mode)k;
		if (cfg->target.kind != CONFIG_TARGET_ENTRA)
			return fail(c, f[0].line, "target.mode is for target.kind entra only");
	}
	for (size_t i = 0; i < 2; i++) {
		if (f[1 + i].val == NULL)
			continue;
		if ((rc = get_string(c, f[1 + i].val, ids[i], out[i], outsz[i])) != 0)
			return rc;
		/* a path segment of the bulkUpload URL: Graph's ids are GUIDs and
		 * job ids such as API2AAD.{hex}.{guid} */
		for (const char *p = out[i]; *p; p++)
			if (!isalnum((unsigned char)*p) && *p != '-' && *p != '.' && *p != '_')
				return fail(c, f[1 + i].line, "%s: letters, digits, '-', '.' and '_' only", ids[i]);
	}
	if (f[3].val != NULL &&
	    (rc = get_unsigned(c, f[3].val, "target.results_wait_ms", 0, 3600000, &cfg->target.results_wait_ms)) != 0)
		return rc;
	if (cfg->target.mode != CONFIG_MODE_BULKUPLOAD) {
		for (size_t i = 1; i < 4; i++)
			if (f[i].val != NULL)
				return fail(c, f[i].line, "target.%s is for target.mode bulkupload only", f[i].name);
		return 0;
	}
	for (size_t i = 0; i < 2; i++)
		if (out[i][0] == '\0')
			return fail(c, sec->line,
				    "target.mode bulkupload needs %s (the API-driven provisioning app's %s)", ids[i],
				    i == 0 ? "service principal object id" : "provisioning job id");
	return 0;
}

/* target.external_id_prefix: a short tag such as "corp:" that keeps each
 * domain's externalIds apart in a shared target (docs/configuration.md).
 * Printable ASCII without space, quote or backslash, so it reads the same in
 * the log, in JSON and in a filter. */
static int parse_external_id_prefix(struct cx *c, struct field *f, struct config *cfg)
{
	char *p = cfg->target.external_id_prefix;
	int rc = get_string(c, f->val, "target.external_id_prefix", p, sizeof cfg->target.external_id_prefix);

	if (rc != 0)
		return rc;
	for (const char *q = p; *q != '\0'; q++)
		if (*q <= ' ' || *q > '~' || *q == '"' || *q == '\\')
			return fail(c, f->line,
				    "target.external_id_prefix: printable ASCII without space, quote or backslash");
	return 0;
}

/* target.max_requests_per_s: a number > 0 (fractions allowed: 0.5 is one
 * request every two seconds), for kind entra (sync/target/entra.h,
 * ENTRA_DEFAULT_RPS for why its default). */
static int parse_max_requests_per_s(struct cx *c, struct field *f, struct config *cfg)
{
	const char *kp = "target.max_requests_per_s";
	const yaml_node_t *v = f->val;
	char d[96], *end = NULL;
	double x;

	if (v->type != YAML_SCALAR_NODE || is_null(v) || v->data.scalar.style != YAML_PLAIN_SCALAR_STYLE)
		return fail(c, f->line, "%s: expected a number > 0, got %s", kp, describe(v, d, sizeof d));
	const char *s = sval(v);
	errno = 0;
	x = strtod(s, &end);
	if (end == s || *end != '\0' || errno != 0 || strspn(s, "0123456789.") != strlen(s))
		return fail(c, f->line, "%s: expected a number > 0, got %s", kp, describe(v, d, sizeof d));
	if (!(x > 0) || x > 100000)
		return fail(c, f->line, "%s: %.40s is out of range (a number > 0, at most 100000)", kp, s);
	cfg->target.max_requests_per_s = x;
	return 0;
}

static int parse_target(struct cx *c, struct field *sec, struct config *cfg)
{
	static const char *const schemes[] = {"http://", "https://", NULL};
	struct field f[] = {{"kind", NULL, 0},
			    {"url", NULL, 0},
			    {"token_file", NULL, 0},
			    {"max_in_flight", NULL, 0},
			    {"bulk", NULL, 0},
			    {"timeout_ms", NULL, 0},
			    {"max_attempts", NULL, 0},
			    {"tls", NULL, 0},
			    {"auth", NULL, 0},
			    {"external_id_prefix", NULL, 0},
			    {"nested_groups", NULL, 0},
			    {"patch_style", NULL, 0},
			    {"strict_schema", NULL, 0},
			    {"max_requests_per_s", NULL, 0},
			    {"mode", NULL, 0},
			    {"service_principal_id", NULL, 0},
			    {"job_id", NULL, 0},
			    {"results_wait_ms", NULL, 0}};
	const size_t nf = sizeof f / sizeof f[0];
	int rc = take_fields(c, sec->val, "target", f, nf);
	if (rc != 0)
		return rc;
	cfg->target.present = true;
	if (f[4].val != NULL && (rc = get_bool(c, f[4].val, "target.bulk", &cfg->target.bulk)) != 0)
		return rc;
	if (f[0].val != NULL) {
		int k = 0; /* set by get_word on success; 0 keeps gcc -O2 quiet */
		if ((rc = get_word(c, f[0].val, "target.kind", target_kinds, 0, N_OF(target_kinds), 32, false, &k)) != 0)
			return rc;
		cfg->target.kind = (enum config_target_kind)k;
	}
	if (f[1].val != NULL) {
		if ((rc = get_string(c, f[1].val, "target.url", cfg->target.url, sizeof cfg->target.url)) != 0)
			return rc;
		if ((rc = check_url(c, f[1].val, "target.url", cfg->target.url, schemes, "an http:// or https:// URL",
				    "")) != 0)
			return rc;
	}
	if (f[2].val != NULL) {
		if ((rc = get_path(c, f[2].val, "target.token_file", cfg->target.token_file,
				   sizeof cfg->target.token_file)) != 0)
			return rc;
		c->token_line = f[2].line;
	}
	if (f[3].val != NULL &&
	    (rc = get_unsigned(c, f[3].val, "target.max_in_flight", 1, 1024, &cfg->target.max_in_flight)) != 0)
		return rc;
	/* Graph answers in 100-200 ms: 8 operations in flight reach ~45 of the
	 * default 40-50 requests a second only on a quiet path; the budget
	 * (max_requests_per_s), not the concurrency, is what bounds the rate. */
	if (f[3].val == NULL && cfg->target.kind == CONFIG_TARGET_ENTRA)
		cfg->target.max_in_flight = CONFIG_DEFAULT_MAX_IN_FLIGHT_ENTRA;
	if (f[5].val != NULL &&
	    (rc = get_unsigned(c, f[5].val, "target.timeout_ms", 100, 600000, &cfg->target.timeout_ms)) != 0)
		return rc;
	if (f[6].val != NULL &&
	    (rc = get_unsigned(c, f[6].val, "target.max_attempts", 1, 100, &cfg->target.max_attempts)) != 0)
		return rc;
	if (f[7].val != NULL &&
	    (rc = parse_tls(c, &f[7], "target.tls", cfg->target.tls_ca, sizeof cfg->target.tls_ca)) != 0)
		return rc;
	if (f[8].val != NULL && (rc = parse_auth(c, &f[8], cfg)) != 0)
		return rc;
	if (f[8].val != NULL && f[2].val != NULL)
		return fail(c, f[8].line, "target.auth: give target.token_file or target.auth, not both");
	if (f[9].val != NULL && (rc = parse_external_id_prefix(c, &f[9], cfg)) != 0)
		return rc;
	if (f[10].val != NULL) {
		int k = 0; /* set by get_word on success; 0 keeps gcc -O2 quiet */
		if ((rc = get_word(c, f[10].val, "target.nested_groups", nested_groups_words, 0,
				   N_OF(nested_groups_words), 16, false, &k)) != 0)
			return rc;
		cfg->target.nested_groups = (enum config_nested_groups)k;
	}
	if (f[11].val != NULL) {
		int k = 0; /* set by get_word on success; 0 keeps gcc -O2 quiet */
		if ((rc = get_word(c, f[11].val, "target.patch_style", patch_style_words, 0, N_OF(patch_style_words),
				   24, false, &k)) != 0)
			return rc;
		cfg->target.patch_style = (enum config_patch_style)k;
	}
	if (f[12].val != NULL && (rc = get_bool(c, f[12].val, "target.strict_schema", &cfg->target.strict_schema)) != 0)
		return rc;
	if (f[13].val != NULL && (rc = parse_max_requests_per_s(c, &f[13], cfg)) != 0)
		return rc;
	if (f[13].val != NULL && cfg->target.kind != CONFIG_TARGET_ENTRA)
		return fail(c, f[13].line, "target.max_requests_per_s applies to target.kind entra only");
	if (f[0].val == NULL)
		return fail(c, sec->line, "missing required key target.kind");
	if (f[1].val == NULL)
		return fail(c, sec->line, "missing required key target.url");
	return parse_target_mode(c, sec, &f[14], cfg);
}

static int parse_mapping_list(struct cx *c, struct field *sec, const char *path, struct config_mapping *out,
			      unsigned *n_out)
{
	yaml_node_t *map = sec->val;
	int rc = expect_mapping(c, map, path);
	if (rc != 0)
		return rc;
	size_t n = (size_t)(map->data.mapping.pairs.top - map->data.mapping.pairs.start);
	if (n > CONFIG_MAX_MAPPINGS)
		return fail(c, line_of(map), "%s: too many attributes (%zu, at most %d)", path, n, CONFIG_MAX_MAPPINGS);
	for (size_t i = 0; i < n; i++) {
		yaml_node_pair_t *pair = &map->data.mapping.pairs.start[i];
		yaml_node_t *k, *v;
		char kp[400], d[96];
		if ((rc = check_key(c, map, pair, path, &k)) != 0)
			return rc;
		v = node_at(c, pair->value);
		if (v == NULL)
			return fail(c, line_of(k), "%s: broken value", path);
		if (k->data.scalar.length >= sizeof out[i].attr)
			return fail(c, line_of(k), "%s: attribute %s is too long (%zu bytes, at most %zu)", path,
				    quote(sval(k), k->data.scalar.length, d, sizeof d), k->data.scalar.length,
				    sizeof out[i].attr - 1);
		snprintf(kp, sizeof kp, "%s.%s", path, sval(k));
		if (v->type != YAML_SCALAR_NODE || is_null(v))
			return fail(c, line_of(v), "%s: expected an expression string, got %s", kp,
				    describe(v, d, sizeof d));
		if ((rc = get_string(c, v, kp, out[i].expr, sizeof out[i].expr)) != 0)
			return rc;
		memcpy(out[i].attr, sval(k), k->data.scalar.length + 1);
		out[i].line = line_of(k);
		*n_out = (unsigned)(i + 1);
	}
	return 0;
}

static int parse_mapping(struct cx *c, struct field *sec, struct config *cfg)
{
	struct field f[] = {{"user", NULL, 0}, {"group", NULL, 0}};
	int rc = take_fields(c, sec->val, "mapping", f, 2);
	if (rc != 0)
		return rc;
	if (f[0].val != NULL &&
	    (rc = parse_mapping_list(c, &f[0], "mapping.user", cfg->mapping.user, &cfg->mapping.n_user)) != 0)
		return rc;
	if (f[1].val != NULL &&
	    (rc = parse_mapping_list(c, &f[1], "mapping.group", cfg->mapping.group, &cfg->mapping.n_group)) != 0)
		return rc;
	return 0;
}

static int parse_safety(struct cx *c, struct field *sec, struct config *cfg)
{
	struct field f[] = {{"delete_threshold", NULL, 0}, {"delete_threshold_percent", NULL, 0},
			    {"deprovision", NULL, 0}, {"delete_window_s", NULL, 0},
			    {"on_threshold", NULL, 0}};
	int rc = take_fields(c, sec->val, "safety", f, 5);
	if (rc != 0)
		return rc;
	if (f[2].val != NULL) {
		int k = 0; /* set by get_word on success; 0 keeps gcc -O2 quiet */
		if ((rc = get_word(c, f[2].val, "safety.deprovision", deprovisions, 0, N_OF(deprovisions), 16, false,
				   &k)) != 0)
			return rc;
		cfg->safety.deprovision = (enum config_deprovision)k;
	}
	if (f[0].val != NULL &&
	    (rc = get_unsigned(c, f[0].val, "safety.delete_threshold", 0, UINT_MAX, &cfg->safety.delete_threshold)) != 0)
		return rc;
	if (f[1].val != NULL && (rc = get_unsigned(c, f[1].val, "safety.delete_threshold_percent", 0, 100,
						   &cfg->safety.delete_threshold_percent)) != 0)
		return rc;
	if (f[3].val != NULL && (rc = get_unsigned(c, f[3].val, "safety.delete_window_s", 1, 30 * 86400,
						   &cfg->safety.delete_window_s)) != 0)
		return rc;
	if (f[4].val != NULL) {
		int k = 0; /* set by get_word on success; 0 keeps gcc -O2 quiet */
		if ((rc = get_word(c, f[4].val, "safety.on_threshold", on_thresholds, 0, N_OF(on_thresholds), 16,
				   false, &k)) != 0)
			return rc;
		cfg->safety.on_threshold = (enum config_on_threshold)k;
	}
	return 0;
}

static int parse_log(struct cx *c, struct field *sec, struct config *cfg)
{
	struct field f[] = {{"level", NULL, 0},
			    {"format", NULL, 0},
			    {"provisioning_max_bytes", NULL, 0},
			    {"provisioning_keep", NULL, 0}};
	int k = 0, rc = take_fields(c, sec->val, "log", f, 4);
	if (rc != 0)
		return rc;
	/* log_levels is in the order of enum log_level (agent/log.h) */
	if (f[0].val != NULL) {
		if ((rc = get_word(c, f[0].val, "log.level", log_levels, 0, N_OF(log_levels), 16, true, &k)) != 0)
			return rc;
		cfg->log.level = (enum log_level)k;
	}
	/* log_formats is in the order of enum log_format (agent/log.h) */
	if (f[1].val != NULL) {
		if ((rc = get_word(c, f[1].val, "log.format", log_formats, 0, N_OF(log_formats), 16, true, &k)) != 0)
			return rc;
		cfg->log.format = (enum log_format)k;
	}
	if (f[2].val != NULL &&
	    (rc = get_uint(c, f[2].val, "log.provisioning_max_bytes", PROVLOG_MIN_MAX_BYTES, PROVLOG_MAX_MAX_BYTES,
			   &cfg->log.provisioning_max_bytes)) != 0)
		return rc;
	if (f[3].val != NULL && (rc = get_unsigned(c, f[3].val, "log.provisioning_keep", 1, PROVLOG_MAX_KEEP,
						   &cfg->log.provisioning_keep)) != 0)
		return rc;
	return 0;
}

bool config_is_loopback(const char *address)
{
	char host[256];
	const char *h = address, *colon = strrchr(address, ':');
	size_t hl;
	struct in_addr a4;
	struct in6_addr a6;

	if (colon == NULL)
		return false;
	hl = (size_t)(colon - address);
	if (hl >= 2 && address[0] == '[' && address[hl - 1] == ']') {
		h++;
		hl -= 2;
	}
	if (hl == 0 || hl >= sizeof host)
		return false;
	memcpy(host, h, hl);
	host[hl] = '\0';
	if (strcasecmp(host, "localhost") == 0)
		return true;
	if (inet_pton(AF_INET, host, &a4) == 1)
		return (ntohl(a4.s_addr) >> 24) == 127;
	if (inet_pton(AF_INET6, host, &a6) == 1)
		return IN6_IS_ADDR_LOOPBACK(&a6);
	return false; /* another name: it may resolve to anything */
}

static int parse_control(struct cx *c, struct field *sec, struct config *cfg)
{
	struct field f[] = {{"token_file", NULL, 0}};
	int rc = take_fields(c, sec->val, "control", f, 1);
	if (rc != 0 || f[0].val == NULL)
		return rc;
	rc = get_path(c, f[0].val, "control.token_file", cfg->control.token_file, sizeof cfg->control.token_file);
	if (rc == 0)
		c->control_token_line = f[0].line;
	return rc;
}

static bool mapped(const struct config_mapping *m, unsigned n, const char *attr)
{
	for (unsigned i = 0; i < n; i++)
		if (strcmp(m[i].attr, attr) == 0)
			return true;
	return false;
}

/* target.kind entra: what Graph needs and canopy cannot make up
 * (sync/target/entra.h): credentials, an application id to name the
 * anchor property after, and the names Graph requires on create. */
static int check_entra(struct cx *c, int line, const struct config *cfg)
{
	static const char *const user_req[] = {"userPrincipalName", "displayName", "mailNickname"};
	static const char *const group_req[] = {"displayName", "mailNickname"};
	char prop[128];

	if (cfg->target.auth.kind != CONFIG_AUTH_OAUTH2)
		return fail(c, line,
			    "target.kind entra needs target.auth (kind oauth2, token_url, client_id, and "
			    "client_secret_file or client_cert + client_key)");
	if (cfg->target.mode == CONFIG_MODE_BULKUPLOAD) {
		/* API-driven inbound provisioning takes users only (Microsoft's
		 * bulkUpload: "user operations"); a group silently left out
		 * would look synced to whoever reads the config. */
		if (cfg->source.groups.base[0] != '\0' || cfg->mapping.n_group > 0)
			return fail(c, line,
				    "target.mode bulkupload provisions users only (API-driven inbound provisioning "
				    "has no groups): remove source.groups and mapping.group, or use target.mode graph");
		/* the engine writes a manager by the manager's target id, which
		 * API-driven provisioning does not give back (entra_bulk.h) */
		for (unsigned i = 0; i < cfg->mapping.n_user; i++) {
			const char *m = strrchr(cfg->mapping.user[i].attr, ':');
			if (m != NULL && (strcasecmp(m, ":manager") == 0 || strcasecmp(m, ":manager.value") == 0))
				return fail(c, line,
					    "target.mode bulkupload: mapping.user.%s: managers are not written in this "
					    "mode yet; remove the rule, or use target.mode graph",
					    cfg->mapping.user[i].attr);
		}
		/* the anchor travels as externalId, the app's matching attribute */
		if (mapped(cfg->mapping.user, cfg->mapping.n_user, "externalId"))
			return fail(c, line,
				    "target.mode bulkupload: mapping.user.externalId is canopy's (the source anchor, "
				    "the provisioning app's matching attribute); remove it");
		return 0;
	}
	if (entra_anchor_property(cfg->target.auth.client_id, prop, sizeof prop) != 0)
		return fail(c, line,
			    "target.auth.client_id %s is not an application (client) id (a GUID): the entra "
			    "target names its anchor property extension_{client id}_canopyAnchor",
			    cfg->target.auth.client_id);
	for (size_t i = 0; i < N_OF(user_req); i++)
		if (!mapped(cfg->mapping.user, cfg->mapping.n_user, user_req[i]))
			return fail(c, line,
				    "target.kind entra: mapping.user.%s is missing (Microsoft Graph requires it "
				    "to create a user)",
				    user_req[i]);
	if (cfg->source.groups.base[0] != '\0' || cfg->mapping.n_group > 0)
		for (size_t i = 0; i < N_OF(group_req); i++)
			if (!mapped(cfg->mapping.group, cfg->mapping.n_group, group_req[i]))
				return fail(c, line,
					    "target.kind entra: mapping.group.%s is missing (Microsoft Graph "
					    "requires it to create a group)",
					    group_req[i]);
	return 0;
}

static int parse_root(struct cx *c, yaml_node_t *root, struct config *cfg)
{
	struct field f[] = {{"node", NULL, 0},	 {"cluster", NULL, 0}, {"source", NULL, 0}, {"target", NULL, 0},
			    {"mapping", NULL, 0}, {"safety", NULL, 0},  {"log", NULL, 0}, {"control", NULL, 0}};
	const size_t nf = sizeof f / sizeof f[0];
	char d[96];
	if (root->type != YAML_MAPPING_NODE)
		return fail(c, line_of(root), "expected a mapping with the sections node, cluster, ..., got %s",
			    describe(root, d, sizeof d));
	int rc = take_fields(c, root, "", f, nf);
	if (rc != 0)
		return rc;
	/* The node first: the cluster's member check reads node.id. */
	if (f[0].val != NULL && (rc = parse_node(c, &f[0], cfg)) != 0)
		return rc;
	if (f[1].val != NULL && (rc = parse_cluster(c, &f[1], cfg)) != 0)
		return rc;
	if (f[2].val != NULL && (rc = parse_source(c, &f[2], cfg)) != 0)
		return rc;
	if (f[3].val != NULL && (rc = parse_target(c, &f[3], cfg)) != 0)
		return rc;
	if (f[4].val != NULL && (rc = parse_mapping(c, &f[4], cfg)) != 0)
		return rc;
	if (f[3].val != NULL && cfg->target.kind == CONFIG_TARGET_ENTRA &&
	    (rc = check_entra(c, f[3].line, cfg)) != 0)
		return rc;
	if (f[5].val != NULL && (rc = parse_safety(c, &f[5], cfg)) != 0)
		return rc;
	/* bulkUpload takes POST only: a user can be disabled (active false),
	 * never deleted, so deletes are refused rather than turned into
	 * something else behind the admin's back (docs/entra.md). */
	if (f[3].val != NULL && cfg->target.kind == CONFIG_TARGET_ENTRA && cfg->target.mode == CONFIG_MODE_BULKUPLOAD &&
	    cfg->safety.deprovision != CONFIG_DEPROVISION_DISABLE)
		return fail(c, f[5].val != NULL ? f[5].line : f[3].line,
			    "target.mode bulkupload cannot delete users (API-driven provisioning takes POST only): "
			    "set safety.deprovision: disable");
	if (f[6].val != NULL && (rc = parse_log(c, &f[6], cfg)) != 0)
		return rc;
	if (f[7].val != NULL && (rc = parse_control(c, &f[7], cfg)) != 0)
		return rc;
	if (f[0].val == NULL)
		return fail(c, line_of(root), "missing required key node");
	if (f[1].val == NULL)
		return fail(c, line_of(root), "missing required key cluster");
	/* Anyone who can reach a non-loopback control API could approve deletes
	 * or change membership: there it needs a token. On loopback it works
	 * without one, as it always did (the agent warns at start). */
	if (cfg->control.token_file[0] == '\0' && !config_is_loopback(cfg->node.control_address))
		return fail(c, line_of(f[0].val),
			    "node.control_address %s is not a loopback address: set control.token_file "
			    "(mutations then need \"Authorization: Bearer <token>\"), or listen on 127.0.0.1",
			    cfg->node.control_address);
	return 0;
}

/* -------------------------------------------------------------- secrets */

/* One reader for secrets at start-up and at every runtime re-read
 * (sync/secret.h), so the checks are the same each time. */
static int read_secret(struct cx *c, const char *kp, int line, const char *file, char **out)
{
	char msg[512];
	int rc = secret_read(file, out, msg, sizeof msg);
	if (rc != 0)
		return fail_rc(c, rc, line, "%s: %s", kp, msg);
	return 0;
}

/* ----------------------------------------------------------------- load */

static int syntax_error(struct cx *c, yaml_parser_t *p, const char *buf, size_t len)
{
	switch (p->error) {
	case YAML_MEMORY_ERROR: /* libyaml's out of memory, as a code */
		xoom("libyaml");
	case YAML_READER_ERROR: {
		/* The reader gives a byte offset; count the lines up to it. */
		int line = 1;
		for (size_t i = 0; i < p->problem_offset && i < len; i++)
			if (buf[i] == '\n')
				line++;
		return fail(c, line, "YAML syntax error: %s (byte offset %zu)",
			    p->problem ? p->problem : "unreadable input", p->problem_offset);
	}
	default: {
		int line = (int)p->problem_mark.line + 1;
		int col = (int)p->problem_mark.column + 1;
		if (p->context != NULL)
			return fail(c, line, "YAML syntax error at column %d: %s (%s at line %d)", col,
				    p->problem ? p->problem : "unknown problem", p->context,
				    (int)p->context_mark.line + 1);
		return fail(c, line, "YAML syntax error at column %d: %s", col,
			    p->problem ? p->problem : "unknown problem");
	}
	}
}

static void set_defaults(struct config *cfg)
{
	cfg->cluster.election_timeout_ms = CONFIG_DEFAULT_ELECTION_TIMEOUT_MS;
	cfg->cluster.heartbeat_ms = CONFIG_DEFAULT_HEARTBEAT_MS;
	cfg->cluster.pre_vote = true;
	cfg->cluster.early_election = true;
	cfg->cluster.snapshot_threshold = CONFIG_DEFAULT_SNAPSHOT_THRESHOLD;
	cfg->cluster.snapshot_trailing = CONFIG_DEFAULT_SNAPSHOT_TRAILING;
	cfg->cluster.snapshot_log_mib = CONFIG_DEFAULT_SNAPSHOT_LOG_MIB;
	cfg->cluster.bootstrap = CONFIG_BOOTSTRAP_UNSET;
	cfg->safety.deprovision = CONFIG_DEPROVISION_DELETE;
	cfg->safety.on_threshold = CONFIG_ON_THRESHOLD_STAGE_EXCESS;
	cfg->safety.delete_window_s = 300;
	strcpy(cfg->source.users.filter, CONFIG_DEFAULT_USER_FILTER);
	strcpy(cfg->source.groups.filter, CONFIG_DEFAULT_GROUP_FILTER);
	cfg->target.max_in_flight = CONFIG_DEFAULT_MAX_IN_FLIGHT;
	cfg->target.results_wait_ms = 60000;
	cfg->safety.delete_threshold = CONFIG_DEFAULT_DELETE_THRESHOLD;
	cfg->safety.delete_threshold_percent = 0;
	cfg->log.level = LOG_INFO;
	cfg->log.format = LOG_FORMAT_TEXT;
	cfg->log.provisioning_max_bytes = PROVLOG_DEFAULT_MAX_BYTES;
	cfg->log.provisioning_keep = PROVLOG_DEFAULT_KEEP;
}

/*
 * Read the whole file into memory, refusing what is not a regular file (a
 * FIFO or a device would block or never end: opened with O_NONBLOCK and
 * checked with fstat before any read) and anything over CONFIG_MAX_FILE_BYTES.
 */
static int read_file(struct cx *c, const char *path, char **out, size_t *outlen)
{
	struct stat st;
	size_t n = 0;
	char *buf;
	int fd, e;

	fd = open(path, O_RDONLY | O_CLOEXEC | O_NOCTTY | O_NONBLOCK);
	if (fd < 0) {
		e = errno;
		return fail_rc(c, -e, 0, "cannot read configuration: %s", strerror(e));
	}
	if (fstat(fd, &st) != 0) {
		e = errno;
		close(fd);
		return fail_rc(c, -e, 0, "cannot read configuration: %s", strerror(e));
	}
	if (!S_ISREG(st.st_mode)) {
		close(fd);
		return fail_rc(c, -EINVAL, 0, "the configuration is not a regular file");
	}
	if (st.st_size > CONFIG_MAX_FILE_BYTES) {
		close(fd);
		return fail_rc(c, -EFBIG, 0, "the configuration is too large (%lld bytes, at most %d)",
			       (long long)st.st_size, CONFIG_MAX_FILE_BYTES);
	}
	buf = xmalloc((size_t)st.st_size + 1); /* at most CONFIG_MAX_FILE_BYTES, checked above */
	for (;;) {
		ssize_t r = read(fd, buf + n, (size_t)st.st_size + 1 - n);
		if (r < 0 && errno == EINTR)
			continue;
		if (r < 0) {
			e = errno;
			free(buf);
			close(fd);
			return fail_rc(c, -e, 0, "cannot read configuration: %s", strerror(e));
		}
		if (r == 0)
			break;
		n += (size_t)r;
		if (n > (size_t)st.st_size) { /* grew while read: refuse rather than guess */
			free(buf);
			close(fd);
			return fail_rc(c, -EAGAIN, 0, "the configuration changed while being read");
		}
	}
	close(fd);
	buf[n] = '\0';
	*out = buf;
	*outlen = n;
	return 0;
}

/*
 * A first pass over libyaml's events, before any document is built: refuse
 * nesting deeper than CONFIG_MAX_DEPTH (libyaml's scanner costs the square of
 * the depth: 100k "[" took 44 s), more than CONFIG_MAX_ALIASES aliases (each
 * one may stand for a whole subtree), and explicit tags: `id: !!str 1` would
 * otherwise be read as the integer 1, as if the tag were not there.
 */
static int check_events(struct cx *c, const char *buf, size_t len)
{
	yaml_parser_t p;
	yaml_event_t ev;
	int depth = 0, aliases = 0, rc = 0;
	bool done = false;

	if (!yaml_parser_initialize(&p)) /* fails only for lack of memory */
		xoom("yaml_parser_initialize");
	yaml_parser_set_input_string(&p, (const unsigned char *)buf, len);
	while (!done && rc == 0) {
		if (!yaml_parser_parse(&p, &ev)) {
			rc = syntax_error(c, &p, buf, len);
			break;
		}
		int line = (int)ev.start_mark.line + 1;
		const yaml_char_t *tag = NULL;
		switch (ev.type) {
		case YAML_STREAM_END_EVENT:
			done = true;
			break;
		case YAML_DOCUMENT_START_EVENT:
			if (ev.data.document_start.tag_directives.start != ev.data.document_start.tag_directives.end)
				rc = fail(c, line, "YAML %%TAG directives are not allowed in the configuration");
			break;
		case YAML_MAPPING_START_EVENT:
		case YAML_SEQUENCE_START_EVENT:
			tag = ev.type == YAML_MAPPING_START_EVENT ? ev.data.mapping_start.tag
								   : ev.data.sequence_start.tag;
			if (++depth > CONFIG_MAX_DEPTH)
				rc = fail(c, line, "nested deeper than %d levels", CONFIG_MAX_DEPTH);
			break;
		case YAML_MAPPING_END_EVENT:
		case YAML_SEQUENCE_END_EVENT:
			depth--;
			break;
		case YAML_SCALAR_EVENT:
			tag = ev.data.scalar.tag;
			break;
		case YAML_ALIAS_EVENT:
			if (++aliases > CONFIG_MAX_ALIASES)
				rc = fail(c, line, "more than %d YAML aliases", CONFIG_MAX_ALIASES);
			break;
		default:
			break;
		}
		if (rc == 0 && tag != NULL) {
			char q[80];
			rc = fail(c, line, "YAML tags are not allowed (found %s): write the plain value",
				  quote((const char *)tag, strlen((const char *)tag), q, sizeof q));
		}
		yaml_event_delete(&ev);
	}
	yaml_parser_delete(&p);
	return rc;
}

static int load_buffer(struct cx *c, const char *buf, size_t len, struct config *cfg)
{
	yaml_parser_t parser;
	yaml_document_t doc, extra;
	yaml_node_t *root;
	int rc = check_events(c, buf, len);

	if (rc != 0)
		return rc;
	if (!yaml_parser_initialize(&parser)) /* fails only for lack of memory */
		xoom("yaml_parser_initialize");
	yaml_parser_set_input_string(&parser, (const unsigned char *)buf, len);
	if (!yaml_parser_load(&parser, &doc)) {
		rc = syntax_error(c, &parser, buf, len);
		yaml_parser_delete(&parser);
		return rc;
	}
	c->doc = &doc;
	root = yaml_document_get_root_node(&doc);
	if (root == NULL) {
		rc = fail(c, 1, "the configuration is empty (required sections: node, cluster)");
		goto out;
	}
	/* One document per file: a second one would be silently ignored. */
	if (!yaml_parser_load(&parser, &extra)) {
		rc = syntax_error(c, &parser, buf, len);
		goto out;
	}
	if (yaml_document_get_root_node(&extra) != NULL)
		rc = fail(c, (int)extra.start_mark.line + 1, "only one YAML document is allowed in the file (found a second one)");
	yaml_document_delete(&extra);
	if (rc != 0)
		goto out;

	rc = parse_root(c, root, cfg);
	if (rc == 0 && cfg->source.password_file[0] != '\0')
		rc = read_secret(c, "source.password_file", c->password_line, cfg->source.password_file,
				 &cfg->source.password);
	if (rc == 0 && cfg->target.token_file[0] != '\0')
		rc = read_secret(c, "target.token_file", c->token_line, cfg->target.token_file, &cfg->target.token);
	if (rc == 0 && cfg->target.auth.client_secret_file[0] != '\0')
		rc = read_secret(c, "target.auth.client_secret_file", c->client_secret_line,
				 cfg->target.auth.client_secret_file, &cfg->target.auth.client_secret);
	if (rc == 0 && cfg->control.token_file[0] != '\0')
		rc = read_secret(c, "control.token_file", c->control_token_line, cfg->control.token_file,
				 &cfg->control.token);
out:
	c->doc = NULL;
	yaml_document_delete(&doc);
	yaml_parser_delete(&parser);
	return rc;
}

static int load(struct cx *c, const char *path, struct config *cfg)
{
	char *buf = NULL;
	size_t len = 0;
	int rc = config_dir(path, c->dir, sizeof c->dir);
	if (rc != 0)
		return fail_rc(c, rc, 0, "cannot resolve the directory of the configuration: %s", strerror(-rc));
	rc = read_file(c, path, &buf, &len);
	if (rc != 0)
		return rc;
	rc = load_buffer(c, buf, len, cfg);
	free(buf);
	return rc;
}

int config_load_text(const char *name, const char *dir, const char *buf, size_t len, struct config *cfg,
		     char *errmsg, size_t errlen)
{
	struct cx c;
	int rc;

	memset(&c, 0, sizeof c);
	c.file = name != NULL ? name : "(memory)";
	c.err = errmsg;
	c.errlen = errlen;
	if (errmsg != NULL && errlen > 0)
		errmsg[0] = '\0';
	memset(cfg, 0, sizeof *cfg);
	snprintf(cfg->path, sizeof cfg->path, "%s", c.file);
	set_defaults(cfg);
	if (dir == NULL || dir[0] != '/' || strlen(dir) >= sizeof c.dir)
		rc = fail_rc(&c, -EINVAL, 0, "the directory of the configuration must be an absolute path");
	else if (len > CONFIG_MAX_FILE_BYTES)
		rc = fail_rc(&c, -EFBIG, 0, "the configuration is too large (%zu bytes, at most %d)", len,
			     CONFIG_MAX_FILE_BYTES);
	else {
		strcpy(c.dir, dir);
		rc = load_buffer(&c, buf, len, cfg);
	}
	if (rc != 0) {
		config_free(cfg);
		one_line(errmsg);
	}
	return rc;
}

int config_load_buffer(const char *name, const char *buf, size_t len, struct config *cfg, char *errmsg,
		       size_t errlen)
{
	char dir[PATH_MAX];

	if (getcwd(dir, sizeof dir) == NULL)
		strcpy(dir, "/");
	return config_load_text(name, dir, buf, len, cfg, errmsg, errlen);
}

int config_check_yaml(const char *name, const char *buf, size_t len, char *errmsg, size_t errlen)
{
	struct cx c;
	int rc;

	memset(&c, 0, sizeof c);
	c.file = name != NULL ? name : "(memory)";
	c.err = errmsg;
	c.errlen = errlen;
	if (len > CONFIG_MAX_FILE_BYTES)
		return fail_rc(&c, -EFBIG, 0, "the configuration is too large (%zu bytes, at most %d)", len,
			       CONFIG_MAX_FILE_BYTES);
	rc = check_events(&c, buf, len);
	if (rc != 0)
		one_line(errmsg);
	return rc;
}

int config_load(const char *path, struct config *cfg, char *errmsg, size_t errlen)
{
	struct cx c;
	memset(&c, 0, sizeof c);
	c.file = path != NULL ? path : "(null)";
	c.err = errmsg;
	c.errlen = errlen;
	if (errmsg != NULL && errlen > 0)
		errmsg[0] = '\0';
	memset(cfg, 0, sizeof *cfg);
	if (path == NULL || path[0] == '\0')
		return fail(&c, 0, "no configuration file given");
	if (strlen(path) >= sizeof cfg->path)
		return fail_rc(&c, -ENAMETOOLONG, 0, "path too long (at most %zu bytes)", sizeof cfg->path - 1);
	strcpy(cfg->path, path);
	set_defaults(cfg);
	int rc = load(&c, path, cfg);
	if (rc != 0) {
		config_free(cfg);
		one_line(errmsg);
	}
	return rc;
}

void config_free(struct config *cfg)
{
	if (cfg == NULL)
		return;
	secret_free(cfg->source.password);
	cfg->source.password = NULL;
	secret_free(cfg->target.token);
	cfg->target.token = NULL;
	secret_free(cfg->target.auth.client_secret);
	cfg->target.auth.client_secret = NULL;
	secret_free(cfg->control.token);
	cfg->control.token = NULL;
}
