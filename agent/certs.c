/*
 * agent/certs.c -- `canopyctl certs` (see certs.h), with the OpenSSL 3 API.
 */
#include "agent/certs.h"
#include "common/xalloc.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <openssl/bn.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/x509.h>
#include <openssl/x509v3.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#define CA_DAYS 3650
#define NODE_DAYS 825

static void ssl_err(char *buf, size_t len)
{
	unsigned long e = ERR_get_error();
	if (e == 0)
		snprintf(buf, len, "unknown OpenSSL error");
	else
		ERR_error_string_n(e, buf, len);
	ERR_clear_error();
}

/* Write `path` whole: PATH.tmp with `mode`, then rename. `what` 0: key, 1: cert. */
static int write_pem(const char *path, mode_t mode, EVP_PKEY *key, X509 *x, char *errmsg,
		     size_t errlen)
{
	char tmp[4096];
	FILE *f;
	int fd, ok;

	if ((size_t)snprintf(tmp, sizeof tmp, "%s.tmp", path) >= sizeof tmp) {
		snprintf(errmsg, errlen, "%s: path too long", path);
		return -ENAMETOOLONG;
	}
	unlink(tmp);
	fd = open(tmp, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, mode);
	if (fd < 0) {
		int e = errno;
		snprintf(errmsg, errlen, "%s: %s", tmp, strerror(e));
		return -e;
	}
	f = fdopen(fd, "w");
	if (f == NULL) {
		int e = errno;
		close(fd);
		unlink(tmp);
		snprintf(errmsg, errlen, "%s: %s", tmp, strerror(e));
		return -e;
	}
	ok = key ? PEM_write_PrivateKey(f, key, NULL, NULL, 0, NULL, NULL) : PEM_write_X509(f, x);
	if (fflush(f) != 0 || fsync(fileno(f)) != 0)
		ok = 0;
	if (fclose(f) != 0)
		ok = 0;
	if (!ok || rename(tmp, path) != 0) {
		int e = errno ? errno : EIO;
		unlink(tmp);
		snprintf(errmsg, errlen, "%s: cannot write: %s", path, strerror(e));
		return -e;
	}
	return 0;
}

static int add_ext(X509 *x, X509 *issuer, int nid, const char *value, char *errmsg, size_t errlen)
{
	X509V3_CTX ctx;
	X509_EXTENSION *ext;
	char why[256];

	X509V3_set_ctx_nodb(&ctx);
	X509V3_set_ctx(&ctx, issuer, x, NULL, NULL, 0);
	ext = X509V3_EXT_conf_nid(NULL, &ctx, nid, value);
	if (ext == NULL) {
		ssl_err(why, sizeof why);
		snprintf(errmsg, errlen, "extension %s=%s: %s", OBJ_nid2sn(nid), value, why);
		return -EINVAL;
	}
	X509_add_ext(x, ext, -1);
	X509_EXTENSION_free(ext);
	return 0;
}

/* A certificate for `key` named `cn`, valid `days` from now - `backdate` days,
 * signed by (issuer, issuer_key) or self-signed when issuer is NULL. */
static X509 *make_cert(EVP_PKEY *key, const char *cn, long days, long backdate, X509 *issuer,
		       EVP_PKEY *issuer_key, char *errmsg, size_t errlen)
{
	X509 *x = xcheck(X509_new());
	BIGNUM *bn = xcheck(BN_new());
	char why[256];

	X509_set_version(x, 2); /* v3 */
	/* A random 127-bit serial (RFC 5280 §4.1.2.2: positive, at most 20 bytes). */
	if (!BN_rand(bn, 127, BN_RAND_TOP_ANY, BN_RAND_BOTTOM_ANY) ||
	    !BN_to_ASN1_INTEGER(bn, X509_get_serialNumber(x)))
		goto err_after_alloc;
	X509_gmtime_adj(X509_getm_notBefore(x), -backdate * 86400L);
	X509_gmtime_adj(X509_getm_notAfter(x), (days - backdate) * 86400L);
	X509_set_pubkey(x, key);
	X509_NAME_add_entry_by_txt(X509_get_subject_name(x), "CN", MBSTRING_ASC,
				   (const unsigned char *)cn, -1, -1, 0);
	X509_set_issuer_name(x, issuer ? X509_get_subject_name(issuer) : X509_get_subject_name(x));
	BN_free(bn);
	return x;

err_after_alloc: /* no random bytes for the serial */
	ssl_err(why, sizeof why);
	snprintf(errmsg, errlen, "certificate: %s", why);
	BN_free(bn);
	X509_free(x);
	(void)issuer_key;
	return NULL;
}

static int sign(X509 *x, EVP_PKEY *key, char *errmsg, size_t errlen)
{
	char why[256];
	if (X509_sign(x, key, EVP_sha256()) <= 0) {
		ssl_err(why, sizeof why);
		snprintf(errmsg, errlen, "signing: %s", why);
		return -EINVAL;
	}
	return 0;
}

static int init_ca(const char *dir, FILE *out, char *errmsg, size_t errlen)
{
	char key_path[4096], cert_path[4096];
	EVP_PKEY *key;
	X509 *x;
	int rv;

	if (mkdir(dir, 0700) != 0 && errno != EEXIST) {
		snprintf(errmsg, errlen, "%s: %s", dir, strerror(errno));
		return -errno;
	}
	snprintf(key_path, sizeof key_path, "%s/ca.key", dir);
	snprintf(cert_path, sizeof cert_path, "%s/ca.pem", dir);
	if (access(key_path, F_OK) == 0) {
		snprintf(errmsg, errlen, "%s exists: not overwriting a CA key (remove it first)", key_path);
		return -EEXIST;
	}
	key = EVP_EC_gen("P-256");
	if (key == NULL) {
		snprintf(errmsg, errlen, "cannot generate an EC P-256 key");
		return -EIO;
	}
	x = make_cert(key, "canopy cluster CA", CA_DAYS, 0, NULL, NULL, errmsg, errlen);
	if (x == NULL) {
		rv = -EIO;
		goto err_after_key;
	}
	if ((rv = add_ext(x, x, NID_basic_constraints, "critical,CA:TRUE,pathlen:0", errmsg, errlen)) != 0 ||
	    (rv = add_ext(x, x, NID_key_usage, "critical,keyCertSign,cRLSign", errmsg, errlen)) != 0 ||
	    (rv = add_ext(x, x, NID_subject_key_identifier, "hash", errmsg, errlen)) != 0 ||
	    (rv = sign(x, key, errmsg, errlen)) != 0)
		goto err_after_cert;
	if ((rv = write_pem(key_path, 0600, key, NULL, errmsg, errlen)) != 0 ||
	    (rv = write_pem(cert_path, 0644, NULL, x, errmsg, errlen)) != 0)
		goto err_after_cert;
	fprintf(out, "CA certificate: %s\nCA key: %s (keep it offline once the nodes have theirs)\n",
		cert_path, key_path);
	rv = 0;
err_after_cert:
	X509_free(x);
err_after_key:
	EVP_PKEY_free(key);
	return rv;
}

static int load_ca(const char *dir, X509 **x, EVP_PKEY **key, char *errmsg, size_t errlen)
{
	char path[4096], why[256];
	FILE *f;

	snprintf(path, sizeof path, "%s/ca.pem", dir);
	f = fopen(path, "r");
	if (f == NULL) {
		snprintf(errmsg, errlen, "%s: %s (run canopyctl certs init-ca %s first)", path,
			 strerror(errno), dir);
		return -ENOENT;
	}
	*x = PEM_read_X509(f, NULL, NULL, NULL);
	fclose(f);
	if (*x == NULL) {
		ssl_err(why, sizeof why);
		snprintf(errmsg, errlen, "%s: %s", path, why);
		return -EINVAL;
	}
	snprintf(path, sizeof path, "%s/ca.key", dir);
	f = fopen(path, "r");
	if (f == NULL) {
		snprintf(errmsg, errlen, "%s: %s", path, strerror(errno));
		X509_free(*x);
		return -ENOENT;
	}
	*key = PEM_read_PrivateKey(f, NULL, NULL, NULL);
	fclose(f);
	if (*key == NULL) {
		ssl_err(why, sizeof why);
		snprintf(errmsg, errlen, "%s: %s", path, why);
		X509_free(*x);
		return -EINVAL;
	}
	return 0;
}

static int issue(const char *ca_dir, const char *node, const char *address, const char *prefix,
		 long days, long backdate, FILE *out, char *errmsg, size_t errlen)
{
	char cn[64], san[300], key_path[4096], cert_path[4096];
	unsigned char ipbuf[16];
	X509 *ca, *x;
	EVP_PKEY *ca_key, *key;
	char *end;
	unsigned long long id;
	int rv;

	errno = 0;
	id = strtoull(node, &end, 10);
	if (errno != 0 || *end != '\0' || id == 0 || node[0] == '-') {
		snprintf(errmsg, errlen, "--node %s: expected a positive integer (the node id)", node);
		return -EINVAL;
	}
	snprintf(cn, sizeof cn, "node-%llu", id);
	if (inet_pton(AF_INET, address, ipbuf) == 1 || inet_pton(AF_INET6, address, ipbuf) == 1)
		snprintf(san, sizeof san, "IP:%s", address);
	else if (strlen(address) < 256 && strspn(address, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789.-") ==
						  strlen(address) && address[0] != '\0')
		snprintf(san, sizeof san, "DNS:%s", address);
	else {
		snprintf(errmsg, errlen, "--address %s: expected an IP address or a host name (no port)", address);
		return -EINVAL;
	}
	if (days <= 0 || backdate < 0) {
		snprintf(errmsg, errlen, "--days must be positive and --backdate not negative");
		return -EINVAL;
	}
	snprintf(key_path, sizeof key_path, "%s.key", prefix);
	snprintf(cert_path, sizeof cert_path, "%s.pem", prefix);
	rv = load_ca(ca_dir, &ca, &ca_key, errmsg, errlen);
	if (rv != 0)
		return rv;
	key = EVP_EC_gen("P-256");
	if (key == NULL) {
		snprintf(errmsg, errlen, "cannot generate an EC P-256 key");
		rv = -EIO;
		goto err_after_ca;
	}
	x = make_cert(key, cn, days, backdate, ca, ca_key, errmsg, errlen);
	if (x == NULL) {
		rv = -EIO;
		goto err_after_key;
	}
	if ((rv = add_ext(x, ca, NID_basic_constraints, "critical,CA:FALSE", errmsg, errlen)) != 0 ||
	    (rv = add_ext(x, ca, NID_key_usage, "critical,digitalSignature", errmsg, errlen)) != 0 ||
	    (rv = add_ext(x, ca, NID_ext_key_usage, "serverAuth,clientAuth", errmsg, errlen)) != 0 ||
	    (rv = add_ext(x, ca, NID_subject_alt_name, san, errmsg, errlen)) != 0 ||
	    (rv = add_ext(x, ca, NID_subject_key_identifier, "hash", errmsg, errlen)) != 0 ||
	    (rv = add_ext(x, ca, NID_authority_key_identifier, "keyid:always", errmsg, errlen)) != 0 ||
	    (rv = sign(x, ca_key, errmsg, errlen)) != 0)
		goto err_after_cert;
	if ((rv = write_pem(key_path, 0600, key, NULL, errmsg, errlen)) != 0 ||
	    (rv = write_pem(cert_path, 0644, NULL, x, errmsg, errlen)) != 0)
		goto err_after_cert;
	fprintf(out, "certificate: %s (CN %s, %s, %ld days)\nkey: %s\n", cert_path, cn, san, days,
		key_path);
	rv = 0;
err_after_cert:
	X509_free(x);
err_after_key:
	EVP_PKEY_free(key);
err_after_ca:
	X509_free(ca);
	EVP_PKEY_free(ca_key);
	return rv;
}

static void usage(FILE *f)
{
	fprintf(f, "usage: canopyctl certs init-ca DIR\n"
		   "       canopyctl certs issue --ca DIR --node ID --address IP|HOST --out PREFIX\n"
		   "                             [--days N] [--backdate DAYS]\n");
}

int certs_main(int argc, char **argv, FILE *out, FILE *err)
{
	const char *ca = NULL, *node = NULL, *address = NULL, *prefix = NULL;
	long days = NODE_DAYS, backdate = 0;
	char errmsg[10240];
	int i, rv;

	if (argc >= 2 && (strcmp(argv[1], "--help") == 0 || strcmp(argv[1], "-h") == 0)) {
		usage(out);
		return 0;
	}
	if (argc == 3 && strcmp(argv[1], "init-ca") == 0) {
		rv = init_ca(argv[2], out, errmsg, sizeof errmsg);
		if (rv != 0)
			fprintf(err, "canopyctl certs init-ca: %s\n", errmsg);
		return rv ? 1 : 0;
	}
	if (argc < 2 || strcmp(argv[1], "issue") != 0) {
		usage(err);
		return 2;
	}
	for (i = 2; i < argc; i++) {
		const char **s = NULL;
		long *l = NULL;
		if (strcmp(argv[i], "--ca") == 0)
			s = &ca;
		else if (strcmp(argv[i], "--node") == 0)
			s = &node;
		else if (strcmp(argv[i], "--address") == 0)
			s = &address;
		else if (strcmp(argv[i], "--out") == 0)
			s = &prefix;
		else if (strcmp(argv[i], "--days") == 0)
			l = &days;
		else if (strcmp(argv[i], "--backdate") == 0)
			l = &backdate;
		else {
			fprintf(err, "canopyctl certs issue: unknown argument %s\n", argv[i]);
			return 2;
		}
		if (++i == argc) {
			fprintf(err, "canopyctl certs issue: %s needs a value\n", argv[i - 1]);
			return 2;
		}
		if (s)
			*s = argv[i];
		else {
			char *end;
			*l = strtol(argv[i], &end, 10);
			if (*end != '\0' || end == argv[i]) {
				fprintf(err, "canopyctl certs issue: %s %s: expected a number\n", argv[i - 1], argv[i]);
				return 2;
			}
		}
	}
	if (!ca || !node || !address || !prefix) {
		fprintf(err, "canopyctl certs issue: --ca, --node, --address and --out are required\n");
		return 2;
	}
	rv = issue(ca, node, address, prefix, days, backdate, out, errmsg, sizeof errmsg);
	if (rv != 0)
		fprintf(err, "canopyctl certs issue: %s\n", errmsg);
	return rv ? 1 : 0;
}
