/*
 * sync/source/ldap_probe.c -- one blocking bind + read of the users base (see
 * ldap_probe.h).
 */
#include "sync/source/ldap_probe.h"

#include <stdio.h>
#include <string.h>
#include <sys/time.h>

#include <ldap.h>

#include "sync/source/ldap_conn.h"

#define DEFAULT_TIMEOUT_MS 3000

const char *ldap_probe_status_name(enum ldap_probe_status s)
{
	switch (s) {
	case LDAP_PROBE_OK:
		return "ok";
	case LDAP_PROBE_UNREACHABLE:
		return "unreachable";
	case LDAP_PROBE_UNAUTHORIZED:
		return "unauthorized";
	default:
		return "error";
	}
}

/* What a result code says about this agent's access to the directory. */
static enum ldap_probe_status classify(int code)
{
	switch (code) {
	case LDAP_SUCCESS:
		return LDAP_PROBE_OK;
	case LDAP_SERVER_DOWN:
	case LDAP_CONNECT_ERROR:
	case LDAP_TIMEOUT:
	case LDAP_TIMELIMIT_EXCEEDED:
	case LDAP_UNAVAILABLE:
	case LDAP_BUSY:
		return LDAP_PROBE_UNREACHABLE;
	case LDAP_INVALID_CREDENTIALS:
	case LDAP_INAPPROPRIATE_AUTH:
	case LDAP_INSUFFICIENT_ACCESS:
	case LDAP_STRONG_AUTH_REQUIRED:
	case LDAP_CONFIDENTIALITY_REQUIRED:
		return LDAP_PROBE_UNAUTHORIZED;
	default:
		return LDAP_PROBE_ERROR;
	}
}

static void describe(char *msg, size_t len, const char *url, const char *what, int code, LDAP *ld)
{
	char *diag = NULL;

	if (ld != NULL)
		ldap_get_option(ld, LDAP_OPT_DIAGNOSTIC_MESSAGE, &diag);
	snprintf(msg, len, "%s: %s: %s%s%s", url, what, ldap_err2string(code),
		 diag && *diag ? ": " : "", diag ? diag : "");
	ldap_memfree(diag);
}

static enum ldap_probe_status probe_one(const struct ldap_probe_config *cfg, const struct ldap_probe_entry *r,
					const char *url, char *msg, size_t len)
{
	unsigned ms = cfg->timeout_ms ? cfg->timeout_ms : DEFAULT_TIMEOUT_MS;
	struct timeval tv = {ms / 1000, (ms % 1000) * 1000};
	const int v3 = LDAP_VERSION3;
	char *attrs[] = {LDAP_NO_ATTRS, NULL};
	LDAPMessage *res = NULL;
	LDAP *ld = NULL;
	int rc, code;
	enum ldap_probe_status st;

	rc = ldap_initialize(&ld, url);
	if (rc != LDAP_SUCCESS) {
		describe(msg, len, url, "initialize", rc, NULL);
		return LDAP_PROBE_ERROR;
	}
	ldap_set_option(ld, LDAP_OPT_PROTOCOL_VERSION, &v3); /* libldap defaults to v2 */
	ldap_set_option(ld, LDAP_OPT_REFERRALS, LDAP_OPT_OFF);
	ldap_set_option(ld, LDAP_OPT_NETWORK_TIMEOUT, &tv);
	ldap_set_option(ld, LDAP_OPT_TIMEOUT, &tv); /* bounds the synchronous calls below */
	if (ldap_tls_prepare(ld, url, &cfg->tls, msg, len) != 0) {
		st = LDAP_PROBE_ERROR;
		goto out;
	}
	rc = ldap_connect(ld);
	if (rc != LDAP_SUCCESS) {
		code = ldap_conn_code(ld, rc);
		if (ldap_tls_explain(url, &cfg->tls, ms, msg, len)) {
			st = LDAP_PROBE_UNREACHABLE;
			goto out;
		}
		describe(msg, len, url, "connect", code, ld);
		st = classify(code);
		goto out;
	}
	rc = ldap_tls_start(ld, url, &cfg->tls, msg, len);
	if (rc != LDAP_SUCCESS) {
		st = LDAP_PROBE_UNREACHABLE;
		goto out;
	}

	if (cfg->sasl.mech != SOURCE_SASL_NONE) {
		switch (source_sasl_bind(ld, url, &cfg->sasl, ldap_tls_used(&cfg->tls, url), msg, len)) {
		case SOURCE_SASL_BOUND:
			break;
		case SOURCE_SASL_REFUSED:
			st = LDAP_PROBE_UNAUTHORIZED;
			goto out;
		case SOURCE_SASL_UNREACHABLE:
			st = LDAP_PROBE_UNREACHABLE;
			goto out;
		}
	} else if (cfg->bind_dn != NULL && cfg->bind_dn[0] != '\0') {
		struct berval cred = {cfg->password ? strlen(cfg->password) : 0,
				      (char *)(cfg->password ? cfg->password : "")};
		rc = ldap_sasl_bind_s(ld, cfg->bind_dn, LDAP_SASL_SIMPLE, &cred, NULL, NULL, NULL);
		if (rc != LDAP_SUCCESS) {
			code = ldap_conn_code(ld, rc);
			describe(msg, len, url, "bind", code, ld);
			st = classify(code);
			goto out;
		}
	}
	const char *base = r ? r->dn : cfg->base;
	const char *what = r ? "read of the entry" : "read of the users base";
	rc = ldap_search_ext_s(ld, base, LDAP_SCOPE_BASE, "(objectClass=*)",
			       r && r->attrs ? (char **)r->attrs : attrs, 0, NULL,
			       NULL, &tv, r ? 0 : 1, &res);
	code = ldap_conn_code(ld, rc);
	if (code != LDAP_SUCCESS) {
		describe(msg, len, url, what, code, ld);
		/* slapd answers noSuchObject, not insufficientAccess, for an entry
		 * the bind DN may not see: say both, it cannot be told apart */
		if (code == LDAP_NO_SUCH_OBJECT) {
			size_t n = strlen(msg);
			snprintf(msg + n, len - n, " (%s missing, or not visible to the bind DN)", base);
		}
		st = r && code == LDAP_NO_SUCH_OBJECT ? LDAP_PROBE_ERROR : classify(code);
		goto out;
	}
	if (ldap_count_entries(ld, res) < 1) {
		snprintf(msg, len, "%s: %s: %s was not returned (not visible to the bind DN?)", url, what, base);
		st = r ? LDAP_PROBE_ERROR : LDAP_PROBE_UNAUTHORIZED;
		goto out;
	}
	if (r && r->entry)
		r->entry(r->ctx, ld, ldap_first_entry(ld, res));
	if (cfg->sasl.mech != SOURCE_SASL_NONE)
		snprintf(msg, len, "%s: bound as %s (SASL %s) and read %s", url, cfg->sasl.principal,
			 source_sasl_mech_name(cfg->sasl.mech), base);
	else
		snprintf(msg, len, "%s: bound%s and read %s", url, cfg->bind_dn && cfg->bind_dn[0] ? "" : " anonymously",
			 base);
	st = LDAP_PROBE_OK;
out:
	ldap_msgfree(res);
	ldap_unbind_ext_s(ld, NULL, NULL);
	return st;
}

/* Order of preference when no URL works: the most specific finding wins,
 * so that one refused bind is not hidden behind an unreachable replica. */
static int rank(enum ldap_probe_status s)
{
	switch (s) {
	case LDAP_PROBE_OK:
		return 3;
	case LDAP_PROBE_UNAUTHORIZED:
		return 2;
	case LDAP_PROBE_ERROR:
		return 1;
	default:
		return 0;
	}
}

static enum ldap_probe_status run(const struct ldap_probe_config *cfg, const struct ldap_probe_entry *r,
				  char *msg, size_t len)
{
	enum ldap_probe_status best = LDAP_PROBE_ERROR;
	char one[512];
	size_t i;

	if (cfg->n_urls == 0 || cfg->base == NULL) {
		snprintf(msg, len, "no source URL or users base configured");
		return LDAP_PROBE_ERROR;
	}
	for (i = 0; i < cfg->n_urls; i++) {
		enum ldap_probe_status st = probe_one(cfg, r, cfg->urls[i], one, sizeof one);
		if (i == 0 || rank(st) > rank(best)) {
			best = st;
			snprintf(msg, len, "%s", one);
		}
		if (st == LDAP_PROBE_OK)
			break;
	}
	return best;
}

enum ldap_probe_status ldap_probe_run(const struct ldap_probe_config *cfg, char *msg, size_t len)
{
	return run(cfg, NULL, msg, len);
}

enum ldap_probe_status ldap_probe_read(const struct ldap_probe_config *cfg, const struct ldap_probe_entry *r,
				       char *msg, size_t len)
{
	if (r == NULL || r->dn == NULL) {
		snprintf(msg, len, "no entry to read");
		return LDAP_PROBE_ERROR;
	}
	return run(cfg, r, msg, len);
}
