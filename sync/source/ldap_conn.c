/*
 * sync/source/ldap_conn.c -- connect, publish and bind one connection of a
 * source's worker (ldap_conn.h).
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/xalloc.h"
#include "sync/secret.h"
#include "sync/source/ldap_conn.h"

void ldap_conn_status_fmt(char *msg, size_t len, const char *url, int err, LDAP *ld, const char *what)
{
	char *diag = NULL;

	if (ld != NULL)
		ldap_get_option(ld, LDAP_OPT_DIAGNOSTIC_MESSAGE, &diag);
	snprintf(msg, len, "%s: %s (%s%s%s)", url, ldap_err2string(err), what, diag && *diag ? ": " : "",
		 diag ? diag : "");
	ldap_memfree(diag);
}

int ldap_conn_code(LDAP *ld, int rc)
{
	int err = rc;

	if (rc < 0 && ld != NULL)
		ldap_get_option(ld, LDAP_OPT_RESULT_CODE, &err);
	return err;
}

static char *dup_or_null(const char *v)
{
	return v != NULL && v[0] != '\0' ? xstrdup(v) : NULL;
}

void ldap_conn_config_copy(struct ldap_conn_config *dst, const char *bind_dn, const char *password,
			   const char *password_file, const struct ldap_tls_config *tls, unsigned op_timeout_s,
			   const struct source_sasl_config *sasl)
{
	memset(dst, 0, sizeof *dst);
	dst->bind_dn = bind_dn ? xstrdup(bind_dn) : NULL;
	dst->password = password ? xstrdup(password) : NULL;
	dst->password_file = password_file ? xstrdup(password_file) : NULL;
	dst->tls.starttls = tls->starttls;
	dst->tls.ca_file = dup_or_null(tls->ca_file);
	dst->op_timeout_s = op_timeout_s;
	if (sasl != NULL && sasl->mech != SOURCE_SASL_NONE) {
		dst->sasl.mech = sasl->mech;
		dst->sasl.keytab = dup_or_null(sasl->keytab);
		dst->sasl.principal = dup_or_null(sasl->principal);
	}
}

void ldap_conn_config_free(struct ldap_conn_config *c)
{
	/* the strings of a copy are ours (ldap_conn_config_copy) */
	free((char *)c->bind_dn);
	if (c->password != NULL)
		explicit_bzero((char *)c->password, strlen(c->password));
	free((char *)c->password);
	free((char *)c->password_file);
	free((char *)c->tls.ca_file);
	free((char *)c->sasl.keytab);
	free((char *)c->sasl.principal);
	memset(c, 0, sizeof *c);
}

static void set_options(LDAP *ld, unsigned op_timeout_s)
{
	const int v3 = LDAP_VERSION3, idle = 60, probes = 3, interval = 10;
	struct timeval net = {LDAP_CONN_NETWORK_TIMEOUT_S, 0}, op = {op_timeout_s, 0};

	ldap_set_option(ld, LDAP_OPT_PROTOCOL_VERSION, &v3); /* libldap defaults to v2 */
	/* a subtree search from an AD domain root returns continuation
	 * references (CN=Configuration): never chase them */
	ldap_set_option(ld, LDAP_OPT_REFERRALS, LDAP_OPT_OFF);
	ldap_set_option(ld, LDAP_OPT_NETWORK_TIMEOUT, &net);
	ldap_set_option(ld, LDAP_OPT_TIMEOUT, &op);
	/* a persist phase or a notification search is silent for hours:
	 * notice a peer that vanished */
	ldap_set_option(ld, LDAP_OPT_X_KEEPALIVE_IDLE, &idle);
	ldap_set_option(ld, LDAP_OPT_X_KEEPALIVE_PROBES, &probes);
	ldap_set_option(ld, LDAP_OPT_X_KEEPALIVE_INTERVAL, &interval);
}

/* w NULL: a connection of its own, outside any worker (ldap_read.h). */
static void set_problem(struct source_worker *w, enum source_problem p)
{
	if (w != NULL)
		w->problem = p;
}

bool ldap_conn_refused(int code)
{
	return code == LDAP_INVALID_CREDENTIALS || code == LDAP_INAPPROPRIATE_AUTH ||
	       code == LDAP_INSUFFICIENT_ACCESS || code == LDAP_UNWILLING_TO_PERFORM ||
	       code == LDAP_STRONG_AUTH_REQUIRED || code == LDAP_CONFIDENTIALITY_REQUIRED;
}

static int bind_simple(struct source_worker *w, const char *url, const struct ldap_conn_config *cfg, LDAP *ld,
		       char *msg, size_t len)
{
	char *fresh = NULL, why[256];
	int rc;

	if (cfg->password_file != NULL) {
		/* Re-read on every bind: fixing the file takes effect without a
		 * restart, under the same checks as at start-up. */
		rc = secret_read(cfg->password_file, &fresh, why, sizeof why);
		if (rc != 0) {
			snprintf(msg, len, "%s: cannot bind as %s: bind password: %s", url, cfg->bind_dn, why);
			set_problem(w, SOURCE_UNAUTHORIZED);
			return -EACCES;
		}
	}
	const char *pw = fresh != NULL ? fresh : cfg->password;
	struct berval cred = {pw ? strlen(pw) : 0, (char *)pw};
	rc = ldap_sasl_bind_s(ld, cfg->bind_dn, LDAP_SASL_SIMPLE, &cred, NULL, NULL, NULL);
	secret_free(fresh);
	if (rc != LDAP_SUCCESS) {
		int code = ldap_conn_code(ld, rc);
		ldap_conn_status_fmt(msg, len, url, code, ld, "bind");
		source_worker_note(w, "bind", code);
		if (ldap_conn_refused(code))
			set_problem(w, SOURCE_UNAUTHORIZED);
		return -EACCES;
	}
	return 0;
}

int ldap_conn_open(struct source_worker *w, int slot, const char *url, const struct ldap_conn_config *cfg, LDAP **out,
		   char *msg, size_t len)
{
	int rc = ldap_initialize(out, url), fd = -1;

	set_problem(w, SOURCE_UNREACHABLE);
	if (rc != LDAP_SUCCESS) {
		ldap_conn_status_fmt(msg, len, url, rc, NULL, "initialize");
		source_worker_note(w, "initialize", rc);
		return -EINVAL;
	}
	set_options(*out, cfg->op_timeout_s);
	if (ldap_tls_prepare(*out, url, &cfg->tls, msg, len) != 0)
		return -EIO;
	rc = ldap_connect(*out);
	if (rc != LDAP_SUCCESS) {
		source_worker_note(w, "connect", rc);
		/* an ldaps:// certificate failure reads "Can't contact LDAP
		 * server" here: look at the certificate and say what is wrong
		 * with it (name or IP mismatch, CA) */
		if (!ldap_tls_explain(url, &cfg->tls, LDAP_CONN_NETWORK_TIMEOUT_S * 1000, msg, len))
			ldap_conn_status_fmt(msg, len, url, rc, *out, "connect");
		return -ECONNREFUSED;
	}
	if (ldap_tls_start(*out, url, &cfg->tls, msg, len) != LDAP_SUCCESS)
		return -ECONNREFUSED;
	ldap_get_option(*out, LDAP_OPT_DESC, &fd);
	rc = w != NULL ? source_worker_publish_fd(w, slot, fd) : 0;
	if (rc != 0)
		return rc;
	if (cfg->sasl.mech != SOURCE_SASL_NONE) {
		enum source_sasl_result r = source_sasl_bind(*out, url, &cfg->sasl, ldap_tls_used(&cfg->tls, url), msg, len);
		if (r == SOURCE_SASL_BOUND)
			return 0;
		if (r == SOURCE_SASL_REFUSED)
			set_problem(w, SOURCE_UNAUTHORIZED);
		return -EACCES;
	}
	if (cfg->bind_dn == NULL)
		return 0; /* no bind_dn: anonymous */
	return bind_simple(w, url, cfg, *out, msg, len);
}
