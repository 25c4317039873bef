/*
 * sync/source/source_sasl.c -- SASL GSSAPI binds with a client keytab
 * (source_sasl.h says what happens and why).
 */
#include <errno.h>
#include <stdio.h>
#include <string.h>

#include <gssapi/gssapi.h>
#include <gssapi/gssapi_krb5.h>
#include <krb5.h>

#include "sync/secret.h"
#include "sync/source/ldap_conn.h"
#include "sync/source/source_sasl.h"

const char *source_sasl_mech_name(enum source_sasl_mech m)
{
	switch (m) {
	case SOURCE_SASL_NONE:
		return "none";
	case SOURCE_SASL_GSSAPI:
		return "GSSAPI";
	}
	return "unknown";
}

/* A ticket-granting ticket from the keytab into a fresh MEMORY: cache. */
static krb5_error_code get_tgt(krb5_context ctx, const struct source_sasl_config *cfg, krb5_ccache *out,
			       const char **stage)
{
	char ktname[1024];
	krb5_principal client = NULL;
	krb5_keytab kt = NULL;
	krb5_creds creds;
	krb5_error_code code;

	memset(&creds, 0, sizeof creds);
	*out = NULL;
	*stage = "principal name";
	if ((code = krb5_parse_name(ctx, cfg->principal, &client)) != 0)
		return code;
	*stage = "keytab";
	snprintf(ktname, sizeof ktname, "FILE:%s", cfg->keytab);
	if ((code = krb5_kt_resolve(ctx, ktname, &kt)) != 0)
		goto out;
	*stage = "ticket";
	if ((code = krb5_get_init_creds_keytab(ctx, &creds, client, kt, 0, NULL, NULL)) != 0)
		goto out;
	*stage = "cache";
	if ((code = krb5_cc_new_unique(ctx, "MEMORY", NULL, out)) != 0)
		goto out;
	if ((code = krb5_cc_initialize(ctx, *out, client)) != 0 || (code = krb5_cc_store_cred(ctx, *out, &creds)) != 0) {
		krb5_cc_destroy(ctx, *out);
		*out = NULL;
	}
out:
	krb5_free_cred_contents(ctx, &creds);
	if (kt != NULL)
		krb5_kt_close(ctx, kt);
	krb5_free_principal(ctx, client);
	return code;
}

/* Whether a Kerberos failure means "nobody answered" rather than "no". */
static bool krb5_unreachable(krb5_error_code code)
{
	return code == KRB5_KDC_UNREACH || code == KRB5_REALM_CANT_RESOLVE || code == ETIMEDOUT ||
	       code == ECONNREFUSED;
}

/*
 * libldap hands the GSSAPI plugin the credential of LDAP_OPT_X_SASL_GSS_CREDS,
 * but the option sets a property of the SASL connection, which libldap makes
 * anew inside every ldap_sasl_interactive_bind_s: so it is set from the
 * interaction callback, which runs inside the bind once that connection
 * exists (the plugin asks for an authorization id first, RFC 4752 §3.1, and
 * reads the credential at its next step). Nothing else is answered: no
 * authorization id, we bind as ourselves.
 */
static int interact(LDAP *ld, unsigned flags, void *defaults, void *prompts)
{
	(void)flags;
	(void)prompts;
	ldap_set_option(ld, LDAP_OPT_X_SASL_GSS_CREDS, defaults);
	return LDAP_SUCCESS;
}

enum source_sasl_result source_sasl_bind(LDAP *ld, const char *url, const struct source_sasl_config *cfg, bool tls,
					 char *msg, size_t len)
{
	krb5_context ctx = NULL;
	krb5_ccache cc = NULL;
	gss_cred_id_t cred = GSS_C_NO_CREDENTIAL;
	OM_uint32 major, minor;
	const char *stage = "";
	enum source_sasl_result res;
	krb5_error_code code;
	int rc;

	if (cfg->mech != SOURCE_SASL_GSSAPI) {
		snprintf(msg, len, "%s: SASL mechanism %s is not supported", url, source_sasl_mech_name(cfg->mech));
		return SOURCE_SASL_REFUSED;
	}
	/* the keytab under the checks of a password file, every time (sync/secret.h) */
	char why[384];
	if (secret_check(cfg->keytab, why, sizeof why) != 0) {
		snprintf(msg, len, "%s: cannot bind as %s: keytab: %s", url, cfg->principal, why);
		return SOURCE_SASL_REFUSED;
	}
	/* krb5_init_context reads /etc/krb5.conf or KRB5_CONFIG (a context
	 * per bind: a fixed configuration takes effect without a restart) */
	if ((code = krb5_init_context(&ctx)) != 0) {
		const char *kmsg = krb5_get_error_message(NULL, code); /* MIT: a NULL context is allowed */
		snprintf(msg, len, "%s: cannot bind as %s: Kerberos configuration: %s", url, cfg->principal, kmsg);
		krb5_free_error_message(NULL, kmsg);
		return SOURCE_SASL_REFUSED;
	}
	code = get_tgt(ctx, cfg, &cc, &stage);
	if (code != 0) {
		const char *kmsg = krb5_get_error_message(ctx, code);
		if (strcmp(stage, "ticket") == 0)
			snprintf(msg, len, "%s: cannot bind as %s: no Kerberos ticket with keytab %s: %s", url,
				 cfg->principal, cfg->keytab, kmsg);
		else if (strcmp(stage, "keytab") == 0)
			snprintf(msg, len, "%s: cannot bind as %s: keytab %s: %s", url, cfg->principal, cfg->keytab, kmsg);
		else
			snprintf(msg, len, "%s: cannot bind as %s: %s: %s", url, cfg->principal, stage, kmsg);
		krb5_free_error_message(ctx, kmsg);
		res = krb5_unreachable(code) ? SOURCE_SASL_UNREACHABLE : SOURCE_SASL_REFUSED;
		goto out;
	}
	major = gss_krb5_import_cred(&minor, cc, NULL, NULL, &cred);
	if (GSS_ERROR(major)) {
		snprintf(msg, len, "%s: cannot bind as %s: GSS-API credential: major %u minor %u", url, cfg->principal,
			 (unsigned)major, (unsigned)minor);
		res = SOURCE_SASL_REFUSED;
		goto out;
	}
	ldap_set_option(ld, LDAP_OPT_X_SASL_NOCANON, LDAP_OPT_ON);
	if (tls)
		ldap_set_option(ld, LDAP_OPT_X_SASL_SECPROPS, "maxssf=0");
	rc = ldap_sasl_interactive_bind_s(ld, NULL, "GSSAPI", NULL, NULL, LDAP_SASL_QUIET, interact, cred);
	if (rc == LDAP_SUCCESS) {
		res = SOURCE_SASL_BOUND;
		goto out;
	}
	{
		int err = rc;
		char *diag = NULL;

		if (rc < 0)
			ldap_get_option(ld, LDAP_OPT_RESULT_CODE, &err);
		ldap_get_option(ld, LDAP_OPT_DIAGNOSTIC_MESSAGE, &diag);
		snprintf(msg, len, "%s: SASL GSSAPI bind as %s: %s%s%s%s", url, cfg->principal, ldap_err2string(err),
			 diag && *diag ? " (" : "", diag ? diag : "", diag && *diag ? ")" : "");
		ldap_memfree(diag);
		/* a local SASL failure (-2: e.g. the DC's SPN is unknown to
		 * the KDC; -6: no GSSAPI plugin installed) is ours to fix,
		 * like a refusal; anything else counts as unreachable, as
		 * for a simple bind (ldap_conn.c) */
		res = ldap_conn_refused(err) || err == LDAP_LOCAL_ERROR || err == LDAP_AUTH_UNKNOWN
			      ? SOURCE_SASL_REFUSED
			      : SOURCE_SASL_UNREACHABLE;
	}
out:
	if (cred != GSS_C_NO_CREDENTIAL)
		gss_release_cred(&minor, &cred);
	if (cc != NULL)
		krb5_cc_destroy(ctx, cc);
	krb5_free_context(ctx);
	return res;
}
