/*
 * tests/unit/test_source_sasl.c -- the SASL GSSAPI bind's classification of
 * what fails before any directory answers (the integration tests
 * ad_gssapi_test and sync_source_gssapi_test bind against a real KDC, DC and
 * slapd):
 *   - a KDC nobody answers for is "unreachable" (source_unreachable), not a
 *     refusal of the credentials;
 *   - a keytab others may read, or none at all, is refused before any KDC is
 *     asked, with the file named;
 *   - the mechanism names.
 * The keytab is made with MIT krb5's own API (a random key: no KDC knows it).
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <arpa/inet.h>
#include <cmocka.h>
#include <krb5.h>
#include <ldap.h>
#include <netinet/in.h>
#include <sys/socket.h>

#include "sync/source/source_sasl.h"

#define PRINCIPAL "canopy@CANOPY.INVALID"

static char dir[64], keytab[128], conf[128];

/* A loopback port nobody listens on: bind one, then close it. */
static int closed_port(void)
{
	struct sockaddr_in sa;
	socklen_t len = sizeof sa;
	int fd = socket(AF_INET, SOCK_STREAM, 0), port;

	assert_true(fd >= 0);
	memset(&sa, 0, sizeof sa);
	sa.sin_family = AF_INET;
	sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	assert_int_equal(bind(fd, (struct sockaddr *)&sa, sizeof sa), 0);
	assert_int_equal(getsockname(fd, (struct sockaddr *)&sa, &len), 0);
	port = ntohs(sa.sin_port);
	close(fd);
	return port;
}

/* A keytab with one random AES key for PRINCIPAL. */
static void make_keytab(const char *path)
{
	char name[256];
	krb5_context ctx;
	krb5_keytab kt;
	krb5_keytab_entry e;

	memset(&e, 0, sizeof e);
	assert_int_equal(krb5_init_context(&ctx), 0);
	snprintf(name, sizeof name, "FILE:%s", path);
	assert_int_equal(krb5_kt_resolve(ctx, name, &kt), 0);
	assert_int_equal(krb5_parse_name(ctx, PRINCIPAL, &e.principal), 0);
	e.vno = 1;
	assert_int_equal(krb5_c_make_random_key(ctx, ENCTYPE_AES256_CTS_HMAC_SHA1_96, &e.key), 0);
	assert_int_equal(krb5_kt_add_entry(ctx, kt, &e), 0);
	krb5_free_keyblock_contents(ctx, &e.key);
	krb5_free_principal(ctx, e.principal);
	krb5_kt_close(ctx, kt);
	krb5_free_context(ctx);
	assert_int_equal(chmod(path, 0600), 0);
}

static int setup(void **state)
{
	FILE *f;

	(void)state;
	snprintf(dir, sizeof dir, "/tmp/canopy-sasl-test.XXXXXX");
	assert_non_null(mkdtemp(dir));
	snprintf(keytab, sizeof keytab, "%s/canopy.keytab", dir);
	snprintf(conf, sizeof conf, "%s/krb5.conf", dir);
	make_keytab(keytab);
	/* the realm's only KDC is a closed loopback port, over TCP: refused at once */
	f = fopen(conf, "w");
	assert_non_null(f);
	fprintf(f,
		"[libdefaults]\n default_realm = CANOPY.INVALID\n dns_lookup_kdc = false\n"
		" udp_preference_limit = 1\n kdc_timeout = 1s\n"
		"[realms]\n CANOPY.INVALID = {\n  kdc = tcp/127.0.0.1:%d\n }\n",
		closed_port());
	fclose(f);
	setenv("KRB5_CONFIG", conf, 1); /* this test process only */
	return 0;
}

static int teardown(void **state)
{
	char cmd[128];

	(void)state;
	snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
	return system(cmd) == 0 ? 0 : -1;
}

static enum source_sasl_result bind_with(const char *kt, char *msg, size_t len)
{
	const struct source_sasl_config cfg = {SOURCE_SASL_GSSAPI, kt, PRINCIPAL};
	LDAP *ld = NULL;
	enum source_sasl_result r;

	assert_int_equal(ldap_initialize(&ld, "ldap://127.0.0.1:1"), LDAP_SUCCESS); /* never connected */
	r = source_sasl_bind(ld, "ldap://dc1", &cfg, false, msg, len);
	ldap_unbind_ext_s(ld, NULL, NULL);
	return r;
}

static void unreachable_kdc_is_unreachable_not_refused(void **state)
{
	char msg[512];

	(void)state;
	assert_int_equal(bind_with(keytab, msg, sizeof msg), SOURCE_SASL_UNREACHABLE);
	assert_non_null(strstr(msg, "ldap://dc1: cannot bind as " PRINCIPAL ": no Kerberos ticket with keytab "));
	assert_non_null(strstr(msg, keytab));
	assert_non_null(strstr(msg, "contact")); /* MIT: "Cannot contact any KDC for realm ..." */
}

static void keytab_readable_by_others_is_refused_before_any_kdc(void **state)
{
	char msg[512], want[384];

	(void)state;
	assert_int_equal(chmod(keytab, 0644), 0);
	assert_int_equal(bind_with(keytab, msg, sizeof msg), SOURCE_SASL_REFUSED);
	assert_int_equal(chmod(keytab, 0600), 0);
	snprintf(want, sizeof want, "ldap://dc1: cannot bind as " PRINCIPAL ": keytab: %s is readable by group or others "
		 "(mode 0644); chmod 600 it", keytab);
	assert_string_equal(msg, want);
}

static void missing_keytab_is_refused(void **state)
{
	char msg[512], path[160], want[384];

	(void)state;
	snprintf(path, sizeof path, "%s/none.keytab", dir);
	assert_int_equal(bind_with(path, msg, sizeof msg), SOURCE_SASL_REFUSED);
	snprintf(want, sizeof want, "ldap://dc1: cannot bind as " PRINCIPAL ": keytab: cannot read %s: No such file or "
		 "directory", path);
	assert_string_equal(msg, want);
}

static void mechanism_names(void **state)
{
	(void)state;
	assert_string_equal(source_sasl_mech_name(SOURCE_SASL_GSSAPI), "GSSAPI");
	assert_string_equal(source_sasl_mech_name(SOURCE_SASL_NONE), "none");
	assert_string_equal(source_sasl_mech_name((enum source_sasl_mech)42), "unknown");
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(unreachable_kdc_is_unreachable_not_refused),
		cmocka_unit_test(keytab_readable_by_others_is_refused_before_any_kdc),
		cmocka_unit_test(missing_keytab_is_refused),
		cmocka_unit_test(mechanism_names),
	};

	return cmocka_run_group_tests(tests, setup, teardown);
}
