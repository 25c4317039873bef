/*
 * tests/unit/test_outbound_config.c -- source.tls, target.tls and target.auth
 * (agent/config.c) and the CA loader of sync/target/http_tls.c.
 */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cmocka.h>

#include "agent/config.h"
#include "sync/target/http_tls.h"

static char dir[] = "/tmp/canopy-outbound-XXXXXX";


static void put(const char *name, const char *text, mode_t mode, char *out, size_t n)
{
	snprintf(out, n, "%s/%s", dir, name);
	FILE *f = fopen(out, "w");
	assert_non_null(f);
	fputs(text, f);
	fclose(f);
	chmod(out, mode);
}

#define BASE                                                                                        \
	"node: {id: 1, raft_address: 127.0.0.1:7001, control_address: 127.0.0.1:8001, data_dir: d}\n" \
	"cluster: {name: c, members: [\"1@127.0.0.1:7001\"]}\n"

static int load(const char *yaml, struct config *cfg, char *err, size_t errlen)
{
	char path[256];
	put("node.yaml", yaml, 0600, path, sizeof path);
	return config_load(path, cfg, err, errlen);
}

static void keys_are_read(void **state)
{
	char ca[256], sec[256], yaml[2048], err[512];
	struct config cfg;
	(void)state;
	put("ca.pem", "x", 0644, ca, sizeof ca);
	put("client.secret", "s3cret\n", 0600, sec, sizeof sec);
	snprintf(yaml, sizeof yaml,
		 BASE "source: {kind: openldap, url: ldap://h, users: {base: \"dc=x\"}, tls: {ca: ca.pem}}\n"
		      "target: {kind: scim, url: https://t/scim/v2, tls: {ca: %s},\n"
		      "  auth: {kind: oauth2, token_url: \"https://idp/token\", client_id: app, "
		      "client_secret_file: client.secret, scope: \"s/.default\"}}\n",
		 ca);
	assert_int_equal(load(yaml, &cfg, err, sizeof err), 0);
	assert_true(cfg.source.tls);
	assert_string_equal(cfg.source.tls_ca, ca); /* resolved against the config's directory */
	assert_string_equal(cfg.target.tls_ca, ca);
	assert_int_equal(cfg.target.auth.kind, CONFIG_AUTH_OAUTH2);
	assert_string_equal(config_auth_kind_name(cfg.target.auth.kind), "oauth2");
	assert_string_equal(cfg.target.auth.client_secret_file, sec);
	assert_string_equal(cfg.target.auth.client_secret, "s3cret");
	assert_string_equal(cfg.target.auth.scope, "s/.default");
	config_free(&cfg);
}

static void expect_error(const char *tail, const char *want)
{
	char yaml[2048], err[512];
	struct config cfg;
	snprintf(yaml, sizeof yaml, BASE "%s", tail);
	assert_int_not_equal(load(yaml, &cfg, err, sizeof err), 0);
	if (strstr(err, want) == NULL)
		fail_msg("error \"%s\" lacks \"%s\"", err, want);
}

static void bad_keys_are_refused(void **state)
{
	char tok[256], sec[256], wide[256];
	(void)state;
	put("tok", "t", 0600, tok, sizeof tok);
	put("client.secret", "s", 0600, sec, sizeof sec);
	put("wide.secret", "s", 0644, wide, sizeof wide);
	expect_error("target: {kind: scim, url: https://t, tls: {ca: missing.pem}}\n",
		     "target.tls.ca: cannot read");
	expect_error("target: {kind: scim, url: https://t, tls: {cafile: x}}\n", "unknown key \"cafile\"");
	expect_error("target: {kind: scim, url: https://t, token_file: tok, auth: {kind: oauth2, token_url: "
		     "\"https://i\", client_id: a, client_secret_file: client.secret}}\n",
		     "not both");
	expect_error("target: {kind: scim, url: https://t, auth: {kind: saml, token_url: \"https://i\", "
		     "client_id: a, client_secret_file: client.secret}}\n",
		     "expected oauth2");
	expect_error("target: {kind: scim, url: https://t, auth: {kind: oauth2, token_url: \"https://i\", "
		     "client_id: a}}\n",
		     "needs client_secret_file, or client_cert + client_key");
	expect_error("target: {kind: scim, url: https://t, auth: {kind: oauth2, token_url: \"https://i\", "
		     "client_id: a, client_cert: c.pem}}\n",
		     "client_cert and client_key go together");
	expect_error("target: {kind: scim, url: https://t, auth: {kind: oauth2, token_url: \"ftp://i\", "
		     "client_id: a, client_secret_file: client.secret}}\n",
		     "target.auth.token_url");
	expect_error("target: {kind: scim, url: https://t, auth: {kind: oauth2, token_url: \"https://i\", "
		     "client_id: a, client_secret_file: wide.secret}}\n",
		     "readable by group or others");
	expect_error("source: {kind: openldap, url: ldap://h, users: {base: \"dc=x\"}, tls: {ca: nope.pem}}\n",
		     "source.tls.ca: cannot read");
}

static void http_tls_loads_pem(void **state)
{
	char empty[256], err[256];
	struct http_tls *t = NULL;
	(void)state;
	assert_int_equal(http_tls_new(NULL, &t, err, sizeof err), 0);
	assert_null(http_tls_ca_file(t));
	http_tls_free(t);
	put("empty.pem", "not a certificate\n", 0644, empty, sizeof empty);
	assert_int_equal(http_tls_new(empty, &t, err, sizeof err), -EINVAL);
	assert_non_null(strstr(err, "holds no PEM certificate"));
	assert_int_equal(http_tls_new("/nonexistent/ca.pem", &t, err, sizeof err), -ENOENT);
	assert_non_null(strstr(err, "/nonexistent/ca.pem"));
}

static void explain_names_host_and_ca(void **state)
{
	char out[512];
	(void)state;
	http_tls_explain(NULL, "https://scim.example.com:8443/scim/v2", CURLE_PEER_FAILED_VERIFICATION,
			 "SSL certificate problem: unable to get local issuer certificate", out, sizeof out);
	assert_non_null(strstr(out, "server certificate for scim.example.com not trusted by the system store"));
	http_tls_explain(NULL, "https://h/x", CURLE_COULDNT_CONNECT, "", out, sizeof out);
	assert_string_equal(out, curl_easy_strerror(CURLE_COULDNT_CONNECT));
}

static int setup(void **state)
{
	(void)state;
	return mkdtemp(dir) == NULL ? -1 : 0;
}

static int teardown(void **state)
{
	char cmd[128];
	(void)state;
	snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
	return system(cmd) == 0 ? 0 : -1;
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(keys_are_read),
		cmocka_unit_test(bad_keys_are_refused),
		cmocka_unit_test(http_tls_loads_pem),
		cmocka_unit_test(explain_names_host_and_ca),
	};
	return cmocka_run_group_tests(tests, setup, teardown);
}
