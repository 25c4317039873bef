/*
 * tests/unit/test_probes.c -- the health probes' classification where no
 * server is needed (the integration tests ha_source_health_test and
 * ha_source_unavailable_test run them against real slapd and SCIM servers):
 *   - nothing listening is "unreachable", for the directory and the target;
 *   - a malformed URL is "error", never "ok";
 *   - state names round-trip; unknown names are "unknown".
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include <arpa/inet.h>
#include <cmocka.h>
#include <curl/curl.h>
#include <netinet/in.h>
#include <sys/socket.h>

#include "agent/health.h"
#include "sync/source/ldap_probe.h"
#include "sync/target/scim_probe.h"

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

static void ldap_nothing_listening_is_unreachable(void **state)
{
	char url[64], msg[512];
	const char *urls[] = {url};
	struct ldap_probe_config c = {urls, 1, "cn=admin,dc=example,dc=com", "pw",
				      "ou=people,dc=example,dc=com", 1000, {0}, {0}};

	(void)state;
	snprintf(url, sizeof url, "ldap://127.0.0.1:%d/", closed_port());
	assert_int_equal(ldap_probe_run(&c, msg, sizeof msg), LDAP_PROBE_UNREACHABLE);
	assert_non_null(strstr(msg, url));
	assert_null(strstr(msg, "pw")); /* the password is never in the message */
}

static void ldap_bad_url_is_error(void **state)
{
	char msg[512];
	const char *urls[] = {"ldapx://nowhere"};
	struct ldap_probe_config c = {urls, 1, NULL, NULL, "dc=example,dc=com", 1000, {0}, {0}};

	(void)state;
	assert_int_equal(ldap_probe_run(&c, msg, sizeof msg), LDAP_PROBE_ERROR);
	c.n_urls = 0;
	assert_int_equal(ldap_probe_run(&c, msg, sizeof msg), LDAP_PROBE_ERROR);
}

static void scim_nothing_listening_is_unreachable(void **state)
{
	char url[64], msg[512];
	struct scim_probe_config c = {url, "secret-token-value", 1, 1000, NULL, NULL, NULL};

	(void)state;
	snprintf(url, sizeof url, "http://127.0.0.1:%d/scim/v2/", closed_port());
	assert_int_equal(scim_probe_run(&c, msg, sizeof msg), SCIM_PROBE_UNREACHABLE);
	assert_non_null(strstr(msg, "/scim/v2/ServiceProviderConfig")); /* one slash */
	assert_null(strstr(msg, "secret-token-value"));
}

static void scim_bad_url_is_error(void **state)
{
	char msg[512];
	struct scim_probe_config c = {"nope://x", NULL, 0, 1000, NULL, NULL, NULL};

	(void)state;
	assert_int_equal(scim_probe_run(&c, msg, sizeof msg), SCIM_PROBE_ERROR);
	c.url = "";
	assert_int_equal(scim_probe_run(&c, msg, sizeof msg), SCIM_PROBE_ERROR);
}

static void state_names_round_trip(void **state)
{
	enum health_state s;

	(void)state;
	for (s = HEALTH_UNKNOWN; s <= HEALTH_ERROR; s++)
		assert_int_equal(health_state_parse(health_state_name(s)), s);
	assert_int_equal(health_state_parse("fine"), HEALTH_UNKNOWN);
	assert_int_equal(health_state_parse(NULL), HEALTH_UNKNOWN);
	assert_string_equal(ldap_probe_status_name(LDAP_PROBE_UNAUTHORIZED), "unauthorized");
	assert_string_equal(scim_probe_status_name(SCIM_PROBE_UNREACHABLE), "unreachable");
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(ldap_nothing_listening_is_unreachable),
		cmocka_unit_test(ldap_bad_url_is_error),
		cmocka_unit_test(scim_nothing_listening_is_unreachable),
		cmocka_unit_test(scim_bad_url_is_error),
		cmocka_unit_test(state_names_round_trip),
	};
	int rv;

	curl_global_init(CURL_GLOBAL_DEFAULT);
	rv = cmocka_run_group_tests(tests, NULL, NULL);
	curl_global_cleanup();
	return rv;
}
