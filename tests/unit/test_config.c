/*
 * tests/unit/test_config.c -- agent/config.c: loading, defaults, and the
 * exact error lines (FILE:LINE: KEY.PATH: cause).
 *
 * Every fixture is written into a private mkdtemp directory.
 */
#include <errno.h>
#include <limits.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cmocka.h>

#include "agent/config.h"

/* Short on purpose: every fixture path fits the message buffers below. */
#define PLEN 256

static char tmpdir[PLEN - 40];
static char errbuf[1024];
static struct config cfg;

#define MINIMAL_NODE                                                                                                   \
	"node:\n"                                                                                                      \
	"  id: 1\n"                                                                                                    \
	"  raft_address: 127.0.0.1:7001\n"                                                                             \
	"  control_address: 127.0.0.1:8001\n"                                                                          \
	"  data_dir: /tmp/canopy/1\n"

#define MINIMAL_CLUSTER                                                                                                \
	"cluster:\n"                                                                                                   \
	"  name: corp\n"                                                                                               \
	"  members: [\"1@127.0.0.1:7001\"]\n"

#define MINIMAL MINIMAL_NODE MINIMAL_CLUSTER

/* A node section with one key's value replaced: id on line 2, raft_address on 3, control_address on 4. */
#define NODE(id, raft, control)                                                                                        \
	"node:\n"                                                                                                      \
	"  id: " id "\n"                                                                                               \
	"  raft_address: " raft "\n"                                                                                   \
	"  control_address: " control "\n"                                                                             \
	"  data_dir: /tmp/canopy/1\n" MINIMAL_CLUSTER

/* ------------------------------------------------------------- helpers */

static void rm_rf(const char *dir)
{
	char cmd[PLEN + 32];
	snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
	if (system(cmd) != 0)
		fprintf(stderr, "could not remove %s\n", dir);
}

static int setup(void **state)
{
	(void)state;
	const char *base = getenv("TMPDIR");
	snprintf(tmpdir, sizeof tmpdir, "%s/canopy-config-test.XXXXXX", base && *base ? base : "/tmp");
	if (mkdtemp(tmpdir) == NULL)
		return -1;
	return 0;
}

static int teardown(void **state)
{
	(void)state;
	rm_rf(tmpdir);
	return 0;
}

/* Per test: a clean error buffer and config. */
static int before(void **state)
{
	(void)state;
	memset(errbuf, 0, sizeof errbuf);
	memset(&cfg, 0, sizeof cfg);
	return 0;
}

static int after(void **state)
{
	(void)state;
	config_free(&cfg);
	return 0;
}

/* Write `text` to tmpdir/name with `mode`; the full path goes to `out`. */
static void write_file(const char *name, const char *text, mode_t mode, char *out, size_t outsz)
{
	snprintf(out, outsz, "%s/%s", tmpdir, name);
	FILE *f = fopen(out, "w");
	assert_non_null(f);
	assert_int_equal(fputs(text, f) >= 0, 1);
	assert_int_equal(fclose(f), 0);
	assert_int_equal(chmod(out, mode), 0);
}

static char path[PLEN];

/* Write the config as tmpdir/node.yaml and load it; expect success. */
static void load_ok(const char *text)
{
	write_file("node.yaml", text, 0644, path, sizeof path);
	int rc = config_load(path, &cfg, errbuf, sizeof errbuf);
	if (rc != 0)
		fail_msg("config_load failed: %s", errbuf);
}

/* Load and expect the error line to be exactly "<path><suffix>". */
static void load_fails_with(const char *text, const char *suffix)
{
	write_file("node.yaml", text, 0644, path, sizeof path);
	int rc = config_load(path, &cfg, errbuf, sizeof errbuf);
	assert_true(rc < 0);
	char want[4096];
	snprintf(want, sizeof want, "%s%s", path, suffix);
	assert_string_equal(errbuf, want);
	assert_null(strchr(errbuf, '\n'));
	assert_null(cfg.source.password);
	assert_null(cfg.target.token);
}

/* ---------------------------------------------------------- successes */

static void test_snapshot_log_mib_given_or_off(void **state)
{
	(void)state;
	load_ok(MINIMAL "  snapshot_log_mib: 0\n");
	assert_int_equal(cfg.cluster.snapshot_log_mib, 0);
	config_free(&cfg);
	load_ok(MINIMAL "  snapshot_log_mib: 256\n");
	assert_int_equal(cfg.cluster.snapshot_log_mib, 256);
}

static void test_minimal_config_loads_with_defaults(void **state)
{
	(void)state;
	load_ok(MINIMAL);
	assert_string_equal(cfg.path, path);
	assert_int_equal(cfg.node.id, 1);
	assert_string_equal(cfg.node.raft_address, "127.0.0.1:7001");
	assert_string_equal(cfg.node.control_address, "127.0.0.1:8001");
	assert_string_equal(cfg.node.data_dir, "/tmp/canopy/1");
	assert_string_equal(cfg.cluster.name, "corp");
	assert_int_equal(cfg.cluster.n_members, 1);
	assert_int_equal(cfg.cluster.members[0].id, 1);
	assert_string_equal(cfg.cluster.members[0].address, "127.0.0.1:7001");
	assert_int_equal(cfg.cluster.election_timeout_ms, 1000);
	assert_int_equal(cfg.cluster.heartbeat_ms, 100);
	assert_true(cfg.cluster.pre_vote);
	assert_int_equal(cfg.cluster.snapshot_threshold, 1024);
	assert_int_equal(cfg.cluster.snapshot_log_mib, 32);
	assert_false(cfg.source.present);
	assert_false(cfg.target.present);
	assert_null(cfg.source.password);
	assert_null(cfg.target.token);
	assert_int_equal(cfg.target.max_in_flight, 8);
	assert_int_equal(cfg.mapping.n_user, 0);
	assert_int_equal(cfg.mapping.n_group, 0);
	assert_int_equal(cfg.safety.delete_threshold, 500);
	assert_int_equal(cfg.safety.delete_threshold_percent, 0);
	assert_int_equal(cfg.log.level, LOG_INFO);
	assert_string_equal(log_level_name(cfg.log.level), "info");
	assert_string_equal(errbuf, "");
}

static void test_full_config_loads_source_target_mapping(void **state)
{
	(void)state;
	char pw[PLEN], tok[PLEN], text[4096];
	write_file("ldap.secret", "s3cret\n", 0600, pw, sizeof pw);
	write_file("scim.token", "tok-123", 0400, tok, sizeof tok);
	snprintf(text, sizeof text,
		 MINIMAL_NODE                                                    /* lines 1-5 */
		 "cluster:\n"                                                    /* 6 */
		 "  name: corp\n"                                                /* 7 */
		 "  members: [\"1@127.0.0.1:7001\", \"2@127.0.0.1:7002\", \"3@127.0.0.1:7003\"]\n" /* 8 */
		 "  election_timeout_ms: 300\n"                                  /* 9 */
		 "  heartbeat_ms: 30\n"                                          /* 10 */
		 "  pre_vote: false\n"                                           /* 11 */
		 "  snapshot_threshold: 4096\n"                                  /* 12 */
		 "source:\n"                                                     /* 13 */
		 "  kind: openldap\n"                                            /* 14 */
		 "  url: ldap://127.0.0.1:3890\n"                                /* 15 */
		 "  bind_dn: cn=admin,dc=example,dc=com\n"                       /* 16 */
		 "  password_file: %s\n"                                         /* 17 */
		 "  users:  { base: \"ou=people,dc=example,dc=com\" }\n"         /* 18 */
		 "  groups: { base: \"ou=groups,dc=example,dc=com\", filter: \"(objectClass=posixGroup)\" }\n" /* 19 */
		 "target:\n"                                                     /* 20 */
		 "  kind: scim\n"                                                /* 21 */
		 "  url: https://scim.example.com/scim/v2\n"                     /* 22 */
		 "  token_file: %s\n"                                            /* 23 */
		 "  max_in_flight: 16\n"                                         /* 24 */
		 "mapping:\n"                                                    /* 25 */
		 "  user:\n"                                                     /* 26 */
		 "    userName: \"[uid]\"\n"                                     /* 27 */
		 "    displayName: \"Join(\\\" \\\", [givenName], [sn])\"\n"     /* 28 */
		 "    'emails[type eq \"work\"].value': \"[mail]\"\n"            /* 29 */
		 "  group:\n"                                                    /* 30 */
		 "    displayName: \"[cn]\"\n"                                   /* 31 */
		 "safety:\n"                                                     /* 32 */
		 "  delete_threshold: 50\n"                                      /* 33 */
		 "  delete_threshold_percent: 20\n"                              /* 34 */
		 "log:\n"                                                        /* 35 */
		 "  level: debug\n",                                             /* 36 */
		 pw, tok);
	load_ok(text);
	assert_int_equal(cfg.cluster.n_members, 3);
	assert_int_equal(cfg.cluster.members[2].id, 3);
	assert_string_equal(cfg.cluster.members[2].address, "127.0.0.1:7003");
	assert_int_equal(cfg.cluster.election_timeout_ms, 300);
	assert_int_equal(cfg.cluster.heartbeat_ms, 30);
	assert_false(cfg.cluster.pre_vote);
	assert_int_equal(cfg.cluster.snapshot_threshold, 4096);

	assert_true(cfg.source.present);
	assert_int_equal(cfg.source.kind, CONFIG_SOURCE_OPENLDAP);
	assert_string_equal(config_source_kind_name(cfg.source.kind), "openldap");
	assert_int_equal(cfg.source.n_urls, 1);
	assert_string_equal(cfg.source.urls[0], "ldap://127.0.0.1:3890");
	assert_string_equal(cfg.source.bind_dn, "cn=admin,dc=example,dc=com");
	assert_string_equal(cfg.source.password_file, pw);
	assert_string_equal(cfg.source.password, "s3cret");
	assert_string_equal(cfg.source.users.base, "ou=people,dc=example,dc=com");
	assert_string_equal(cfg.source.users.filter, "(objectClass=inetOrgPerson)");
	assert_string_equal(cfg.source.groups.base, "ou=groups,dc=example,dc=com");
	assert_string_equal(cfg.source.groups.filter, "(objectClass=posixGroup)");

	assert_true(cfg.target.present);
	assert_int_equal(cfg.target.kind, CONFIG_TARGET_SCIM);
	assert_string_equal(config_target_kind_name(cfg.target.kind), "scim");
	assert_string_equal(cfg.target.url, "https://scim.example.com/scim/v2");
	assert_string_equal(cfg.target.token, "tok-123");
	assert_int_equal(cfg.target.max_in_flight, 16);

	assert_int_equal(cfg.mapping.n_user, 3);
	assert_string_equal(cfg.mapping.user[0].attr, "userName");
	assert_string_equal(cfg.mapping.user[0].expr, "[uid]");
	assert_int_equal(cfg.mapping.user[0].line, 27);
	assert_string_equal(cfg.mapping.user[1].attr, "displayName");
	assert_string_equal(cfg.mapping.user[1].expr, "Join(\" \", [givenName], [sn])");
	assert_int_equal(cfg.mapping.user[1].line, 28);
	assert_string_equal(cfg.mapping.user[2].attr, "emails[type eq \"work\"].value");
	assert_string_equal(cfg.mapping.user[2].expr, "[mail]");
	assert_int_equal(cfg.mapping.user[2].line, 29);
	assert_int_equal(cfg.mapping.n_group, 1);
	assert_string_equal(cfg.mapping.group[0].attr, "displayName");
	assert_int_equal(cfg.mapping.group[0].line, 31);

	assert_int_equal(cfg.safety.delete_threshold, 50);
	assert_int_equal(cfg.safety.delete_threshold_percent, 20);
	assert_int_equal(cfg.log.level, LOG_DEBUG);
	assert_string_equal(log_level_name(cfg.log.level), "debug");
}

static void test_absent_groups_scope_keeps_empty_base_and_default_filter(void **state)
{
	(void)state;
	load_ok(MINIMAL "source:\n"
			"  kind: ad\n"
			"  url: ldaps://dc1.corp.example:636\n"
			"  users: { base: \"dc=corp,dc=example\" }\n");
	assert_true(cfg.source.present);
	assert_int_equal(cfg.source.kind, CONFIG_SOURCE_AD);
	assert_string_equal(config_source_kind_name(cfg.source.kind), "ad");
	assert_null(cfg.source.password);
	assert_string_equal(cfg.source.groups.base, "");
	/* kind ad: the AD default filters and poll interval */
	assert_string_equal(cfg.source.groups.filter, "(objectClass=group)");
	assert_string_equal(cfg.source.users.filter, "(&(objectClass=user)(!(objectClass=computer)))");
	assert_int_equal(cfg.source.poll_s, 30);
	assert_true(cfg.source.notify);
	assert_int_equal(cfg.source.reconcile_s, 3600);
}

static void test_ad_poll_s_and_filter_given(void **state)
{
	(void)state;
	load_ok(MINIMAL "source:\n"
			"  kind: ad\n"
			"  url: [ldaps://dc1.corp.example, ldaps://dc2.corp.example]\n"
			"  poll_s: 5\n"
			"  users: { base: \"ou=people,dc=corp,dc=example\", filter: \"(objectClass=person)\" }\n");
	assert_int_equal(cfg.source.poll_s, 5);
	assert_int_equal(cfg.source.n_urls, 2);
	assert_string_equal(cfg.source.users.filter, "(objectClass=person)");
	config_free(&cfg);
	load_fails_with(MINIMAL "source:\n"
				"  kind: openldap\n"
				"  url: ldap://h\n"
				"  poll_s: 5\n"
				"  users: { base: x }\n",
			":12: source.poll_s: only for source.kind ad");
	load_fails_with(MINIMAL "source:\n"
				"  kind: ad\n"
				"  url: ldaps://h\n"
				"  poll_ms: 5\n"
				"  users: { base: x }\n",
			":12: source: unknown key \"poll_ms\" (allowed keys: kind, url, bind_dn, password_file, users, groups, tls, poll_s, sasl, notify, reconcile_s, poll_interval_s, poll_full_every, anchor_attribute)");
}

/* kind ldap-poll (sync/source/ldap_poll.h): its keys, their defaults, and
 * refused for the other kinds */
static void test_ldap_poll_keys(void **state)
{
	(void)state;
	load_ok(MINIMAL "source:\n"
			"  kind: ldap-poll\n"
			"  url: ldap://h\n"
			"  users: { base: x }\n");
	assert_int_equal(cfg.source.kind, CONFIG_SOURCE_LDAP_POLL);
	assert_string_equal(config_source_kind_name(cfg.source.kind), "ldap-poll");
	assert_int_equal(cfg.source.poll_interval_s, 60);
	assert_int_equal(cfg.source.poll_full_every, 10);
	assert_string_equal(cfg.source.anchor_attribute, "entryUUID");
	assert_string_equal(cfg.source.users.filter, "(objectClass=inetOrgPerson)");
	config_free(&cfg);
	load_ok(MINIMAL "source:\n"
			"  kind: ldap-poll\n"
			"  url: ldap://h\n"
			"  poll_interval_s: 5\n"
			"  poll_full_every: 3\n"
			"  anchor_attribute: nsUniqueId\n"
			"  users: { base: x }\n");
	assert_int_equal(cfg.source.poll_interval_s, 5);
	assert_int_equal(cfg.source.poll_full_every, 3);
	assert_string_equal(cfg.source.anchor_attribute, "nsUniqueId");
	config_free(&cfg);
	load_fails_with(MINIMAL "source:\n"
				"  kind: openldap\n"
				"  url: ldap://h\n"
				"  poll_interval_s: 5\n"
				"  users: { base: x }\n",
			":12: source.poll_interval_s: only for source.kind ldap-poll");
	load_fails_with(MINIMAL "source:\n"
				"  kind: ldap-poll\n"
				"  url: ldap://h\n"
				"  poll_s: 5\n"
				"  users: { base: x }\n",
			":12: source.poll_s: only for source.kind ad");
	load_fails_with(MINIMAL "source:\n"
				"  kind: ldap-poll\n"
				"  url: ldap://h\n"
				"  anchor_attribute: \"entry UUID\"\n"
				"  users: { base: x }\n",
			":12: source.anchor_attribute: \"entry UUID\" is not an attribute name");
	load_fails_with(MINIMAL "source:\n"
				"  kind: ldap-poll\n"
				"  url: ldap://h\n"
				"  poll_full_every: 0\n"
				"  users: { base: x }\n",
			":12: source.poll_full_every: 0 is out of range (1..100000)");
}

/* source.sasl on an AD source: the Kerberos bind (sync/source/source_sasl.h) */
#define SASL_SOURCE(sasl)                                                                                              \
	MINIMAL "source:\n"                                                                                            \
		"  kind: ad\n"                                                                                         \
		"  url: ldap://dc1.corp.example\n"                                                                     \
		"  users: { base: \"dc=corp,dc=example\" }\n"                                                          \
		"  sasl: " sasl "\n"

static void test_source_sasl_gssapi_binds_with_a_keytab_instead_of_a_password(void **state)
{
	char keytab[PLEN], want[PLEN];

	(void)state;
	write_file("canopy.keytab", "keys", 0600, keytab, sizeof keytab);
	load_ok(SASL_SOURCE("{ mech: GSSAPI, keytab: canopy.keytab, principal: canopy@CORP.EXAMPLE.COM }"));
	assert_int_equal(cfg.source.sasl.mech, CONFIG_SASL_GSSAPI);
	assert_string_equal(config_sasl_mech_name(cfg.source.sasl.mech), "GSSAPI");
	snprintf(want, sizeof want, "%s/canopy.keytab", tmpdir); /* relative to the config file */
	assert_string_equal(cfg.source.sasl.keytab, want);
	assert_string_equal(cfg.source.sasl.principal, "canopy@CORP.EXAMPLE.COM");
	assert_string_equal(cfg.source.bind_dn, "");
	assert_null(cfg.source.password);
	config_free(&cfg);
	load_ok(MINIMAL "source:\n"
			"  kind: openldap\n"
			"  url: ldap://h\n"
			"  users: { base: x }\n");
	assert_int_equal(cfg.source.sasl.mech, CONFIG_SASL_NONE); /* absent: a simple bind, or anonymous */
	assert_string_equal(config_sasl_mech_name(cfg.source.sasl.mech), "none");
}

static void test_source_sasl_with_a_password_too_is_refused(void **state)
{
	char keytab[PLEN], pw[PLEN], text[2048];

	(void)state;
	write_file("canopy.keytab", "keys", 0600, keytab, sizeof keytab);
	write_file("bind.pw", "secret", 0600, pw, sizeof pw);
	snprintf(text, sizeof text,
		 SASL_SOURCE("{ mech: GSSAPI, keytab: canopy.keytab, principal: canopy@CORP }") "  bind_dn: cn=x\n"
		 "  password_file: %s\n", pw);
	load_fails_with(text, ":13: source.sasl: give source.sasl (a keytab) or source.bind_dn + "
			      "source.password_file (a password), not both");
	snprintf(text, sizeof text,
		 SASL_SOURCE("{ mech: GSSAPI, keytab: canopy.keytab, principal: canopy@CORP }") "  password_file: %s\n",
		 pw);
	load_fails_with(text, ":13: source.sasl: give source.sasl (a keytab) or source.bind_dn + "
			      "source.password_file (a password), not both");
}

static void test_source_sasl_needs_a_private_keytab_a_principal_and_gssapi(void **state)
{
	char keytab[PLEN], want[PLEN + 128];

	(void)state;
	snprintf(want, sizeof want, ":13: source.sasl.keytab: cannot read %s/missing.keytab: No such file or directory",
		 tmpdir);
	load_fails_with(SASL_SOURCE("{ mech: GSSAPI, keytab: missing.keytab, principal: canopy@CORP }"), want);
	write_file("open.keytab", "keys", 0644, keytab, sizeof keytab);
	snprintf(want, sizeof want,
		 ":13: source.sasl.keytab: %s/open.keytab is readable by group or others (mode 0644); chmod 600 it", tmpdir);
	load_fails_with(SASL_SOURCE("{ mech: GSSAPI, keytab: open.keytab, principal: canopy@CORP }"), want);
	write_file("canopy.keytab", "keys", 0600, keytab, sizeof keytab);
	load_fails_with(SASL_SOURCE("{ mech: GSSAPI, keytab: canopy.keytab }"),
			":13: missing required key source.sasl.principal");
	load_fails_with(SASL_SOURCE("{ mech: GSSAPI, principal: canopy@CORP }"),
			":13: missing required key source.sasl.keytab");
	load_fails_with(SASL_SOURCE("{ keytab: canopy.keytab, principal: canopy@CORP }"),
			":13: missing required key source.sasl.mech");
	load_fails_with(SASL_SOURCE("{ mech: PLAIN, keytab: canopy.keytab, principal: canopy@CORP }"),
			":13: source.sasl.mech: expected GSSAPI, got \"PLAIN\"");
	load_fails_with(SASL_SOURCE("{ mech: GSSAPI, keytab: canopy.keytab, principal: \"\" }"),
			":13: source.sasl.principal: must not be empty");
}

static void test_ad_notify_off_and_reconcile_s_given(void **state)
{
	(void)state;
	load_ok(MINIMAL "source:\n"
			"  kind: ad\n"
			"  url: ldaps://dc1.corp.example\n"
			"  notify: false\n"
			"  reconcile_s: 60\n"
			"  users: { base: \"ou=people,dc=corp,dc=example\" }\n");
	assert_false(cfg.source.notify);
	assert_int_equal(cfg.source.reconcile_s, 60);
	config_free(&cfg);
	load_ok(MINIMAL "source:\n"
			"  kind: ad\n"
			"  url: ldaps://dc1.corp.example\n"
			"  reconcile_s: 0\n"
			"  users: { base: \"ou=people,dc=corp,dc=example\" }\n");
	assert_true(cfg.source.notify);
	assert_int_equal(cfg.source.reconcile_s, 0); /* off */
	config_free(&cfg);
}

static void test_ad_notify_and_reconcile_s_refused_where_wrong(void **state)
{
	(void)state;
	load_fails_with(MINIMAL "source:\n"
				"  kind: openldap\n"
				"  url: ldap://h\n"
				"  notify: false\n"
				"  users: { base: x }\n",
			":12: source.notify: only for source.kind ad");
	load_fails_with(MINIMAL "source:\n"
				"  kind: openldap\n"
				"  url: ldap://h\n"
				"  reconcile_s: 60\n"
				"  users: { base: x }\n",
			":12: source.reconcile_s: only for source.kind ad");
	load_fails_with(MINIMAL "source:\n"
				"  kind: ad\n"
				"  url: ldaps://h\n"
				"  notify: maybe\n"
				"  users: { base: x }\n",
			":12: source.notify: expected true or false, got \"maybe\"");
	load_fails_with(MINIMAL "source:\n"
				"  kind: ad\n"
				"  url: ldaps://h\n"
				"  reconcile_s: 9999999\n"
				"  users: { base: x }\n",
			":12: source.reconcile_s: 9999999 is out of range (0..604800)");
}

static void test_node_not_in_members_is_allowed(void **state)
{
	(void)state;
	load_ok("node:\n"
		"  id: 4\n"
		"  raft_address: 127.0.0.1:7004\n"
		"  control_address: 127.0.0.1:8004\n"
		"  data_dir: /tmp/canopy/4\n" MINIMAL_CLUSTER);
	assert_int_equal(cfg.node.id, 4);
	assert_int_equal(cfg.cluster.n_members, 1);
}

static void test_url_list_with_two_entries(void **state)
{
	(void)state;
	load_ok(MINIMAL "source:\n"
			"  kind: openldap\n"
			"  url:\n"
			"    - ldap://ldap1.example.com:389\n"
			"    - ldaps://ldap2.example.com\n"
			"  users: { base: \"dc=example,dc=com\" }\n");
	assert_int_equal(cfg.source.n_urls, 2);
	assert_string_equal(cfg.source.urls[0], "ldap://ldap1.example.com:389");
	assert_string_equal(cfg.source.urls[1], "ldaps://ldap2.example.com");
}

/* Keys that take one of a few words are read once into enums; their names
 * give back the configuration's words. */
/* target.kind entra: what Microsoft Graph needs and canopy cannot make up is
 * refused at load, naming the key (sync/target/entra.h). */
static void test_entra_needs_what_graph_requires(void **state)
{
	(void)state;
	char sec[PLEN], text[4096];
	write_file("graph.secret", "s3cret\n", 0600, sec, sizeof sec);
	const char *good_id = "11111111-2222-3333-4444-555555555555";
	const char *fmt_text = MINIMAL "target:\n"
				       "  kind: entra\n"
				       "  url: https://graph.microsoft.com/v1.0\n"
				       "%s"
				       "mapping:\n"
				       "  user:\n"
				       "    userPrincipalName: \"[mail]\"\n"
				       "    displayName: \"[cn]\"\n"
				       "%s";
	char auth[1024];
	snprintf(auth, sizeof auth,
		 "  auth: { kind: oauth2, token_url: \"https://login.example/t/oauth2/v2.0/token\", client_id: %s, "
		 "client_secret_file: %s }\n",
		 good_id, sec);

	snprintf(text, sizeof text, fmt_text, auth, "    mailNickname: \"[uid]\"\n");
	load_ok(text);
	assert_int_equal(cfg.target.kind, CONFIG_TARGET_ENTRA);
	assert_string_equal(config_target_kind_name(cfg.target.kind), "entra");
	config_free(&cfg);

	snprintf(text, sizeof text, fmt_text, auth, "");
	write_file("node.yaml", text, 0644, path, sizeof path);
	assert_true(config_load(path, &cfg, errbuf, sizeof errbuf) < 0);
	assert_non_null(strstr(errbuf, "target.kind entra: mapping.user.mailNickname is missing"));

	snprintf(text, sizeof text, fmt_text, "", "    mailNickname: \"[uid]\"\n");
	write_file("node.yaml", text, 0644, path, sizeof path);
	assert_true(config_load(path, &cfg, errbuf, sizeof errbuf) < 0);
	assert_non_null(strstr(errbuf, "target.kind entra needs target.auth"));

	snprintf(auth, sizeof auth,
		 "  auth: { kind: oauth2, token_url: \"https://login.example/t/oauth2/v2.0/token\", client_id: "
		 "canopy-app, client_secret_file: %s }\n",
		 sec);
	snprintf(text, sizeof text, fmt_text, auth, "    mailNickname: \"[uid]\"\n");
	write_file("node.yaml", text, 0644, path, sizeof path);
	assert_true(config_load(path, &cfg, errbuf, sizeof errbuf) < 0);
	assert_non_null(strstr(errbuf, "target.auth.client_id canopy-app is not an application (client) id"));
}

/* target.max_requests_per_s: a number > 0 for kind entra (fractions too),
 * absent = 0 (the target's default); refused when not a positive number, and
 * for kind scim, which has no budget. */
static void test_entra_max_requests_per_s(void **state)
{
	(void)state;
	char sec[PLEN], text[4096];
	write_file("graph.secret", "s3cret\n", 0600, sec, sizeof sec);
	const char *fmt_text = MINIMAL "target:\n"
				       "  kind: %s\n"
				       "  url: https://graph.microsoft.com/v1.0\n"
				       "%s"
				       "  auth: { kind: oauth2, token_url: \"https://login.example/t/oauth2/v2.0/token\", "
				       "client_id: 11111111-2222-3333-4444-555555555555, client_secret_file: %s }\n"
				       "mapping:\n"
				       "  user:\n"
				       "    userPrincipalName: \"[mail]\"\n"
				       "    displayName: \"[cn]\"\n"
				       "    mailNickname: \"[uid]\"\n";

	snprintf(text, sizeof text, fmt_text, "entra", "", sec);
	load_ok(text);
	assert_true(cfg.target.max_requests_per_s == 0);
	assert_int_equal(cfg.target.max_in_flight, 16); /* entra's default, not 8 */
	config_free(&cfg);
	snprintf(text, sizeof text, fmt_text, "entra", "  max_requests_per_s: 12.5\n", sec);
	load_ok(text);
	assert_true(cfg.target.max_requests_per_s == 12.5);
	config_free(&cfg);

	const char *bad[] = {"0", "-3", "fast", "\"50\"", "1e9", "nan", "0x10"};
	for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
		char line[64];
		snprintf(line, sizeof line, "  max_requests_per_s: %s\n", bad[i]);
		snprintf(text, sizeof text, fmt_text, "entra", line, sec);
		write_file("node.yaml", text, 0644, path, sizeof path);
		assert_true(config_load(path, &cfg, errbuf, sizeof errbuf) < 0);
		assert_non_null(strstr(errbuf, "target.max_requests_per_s"));
	}
	snprintf(text, sizeof text, fmt_text, "scim", "  max_requests_per_s: 50\n", sec);
	write_file("node.yaml", text, 0644, path, sizeof path);
	assert_true(config_load(path, &cfg, errbuf, sizeof errbuf) < 0);
	assert_non_null(strstr(errbuf, "target.max_requests_per_s applies to target.kind entra only"));
}

/* target.mode bulkupload (sync/target/entra_bulk.h): the job it needs, and
 * what Microsoft's API-driven provisioning cannot do, refused at load. */
static void test_entra_bulkupload_needs_a_job_and_refuses_groups_and_deletes(void **state)
{
	(void)state;
	char sec[PLEN], text[4096], auth[1024];
	write_file("graph.secret", "s3cret\n", 0600, sec, sizeof sec);
	snprintf(auth, sizeof auth,
		 "  auth: { kind: oauth2, token_url: \"https://login.example/t/oauth2/v2.0/token\", client_id: app, "
		 "client_secret_file: %s }\n",
		 sec);
	/* target lines, mapping.group lines, safety lines */
	const char *fmt_text = MINIMAL "target:\n"
				       "  kind: %s\n"
				       "  url: https://graph.microsoft.com/v1.0\n"
				       "%s%s"
				       "mapping:\n"
				       "  user:\n"
				       "    userName: \"[mail]\"\n"
				       "%s"
				       "safety:\n"
				       "%s";
	const char *ids = "  mode: bulkupload\n  service_principal_id: 5b1e0c2a-0000-4000-8000-00000000b01c\n"
			  "  job_id: API2AAD.0c2a5b1e.00000000-0000-0000-0000-000000000000\n";
	const char *disable = "  deprovision: disable\n";

	snprintf(text, sizeof text, fmt_text, "entra", auth, ids, "", disable);
	load_ok(text);
	assert_int_equal(cfg.target.mode, CONFIG_MODE_BULKUPLOAD);
	assert_string_equal(config_target_mode_name(cfg.target.mode), "bulkupload");
	assert_string_equal(cfg.target.job_id, "API2AAD.0c2a5b1e.00000000-0000-0000-0000-000000000000");
	assert_int_equal(cfg.target.results_wait_ms, 60000);
	config_free(&cfg);

	struct {
		const char *kind, *target, *group, *safety, *want;
	} bad[] = {
		{"entra", ids, "  group:\n    displayName: \"[cn]\"\n", disable, "provisions users only"},
		{"entra", ids, "", "  delete_threshold: 5\n", "cannot delete users"},
		{"entra", "  mode: bulkupload\n  service_principal_id: sp\n", "", disable, "needs target.job_id"},
		{"entra", "  mode: bulkupload\n  service_principal_id: sp\n  job_id: a/b\n", "", disable,
		 "target.job_id: letters, digits"},
		{"entra", "  job_id: j\n", "", disable, "target.job_id is for target.mode bulkupload only"},
		{"entra", "  mode: batch\n", "", disable, "target.mode: expected graph or bulkupload"},
		{"scim", "  mode: bulkupload\n", "", disable, "target.mode is for target.kind entra only"},
	};
	for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
		char lines[1024];
		snprintf(lines, sizeof lines, "%s", bad[i].target);
		snprintf(text, sizeof text, fmt_text, bad[i].kind, strcmp(bad[i].kind, "entra") == 0 ? auth : "",
			 lines, bad[i].group, bad[i].safety);
		write_file("node.yaml", text, 0644, path, sizeof path);
		if (config_load(path, &cfg, errbuf, sizeof errbuf) == 0)
			fail_msg("case %zu loaded", i);
		if (strstr(errbuf, bad[i].want) == NULL)
			fail_msg("case %zu: %s", i, errbuf);
	}
}

static void test_word_keys_parse_once(void **state)
{
	(void)state;
	load_ok(MINIMAL);
	assert_int_equal(cfg.safety.deprovision, CONFIG_DEPROVISION_DELETE);
	assert_int_equal(cfg.safety.on_threshold, CONFIG_ON_THRESHOLD_STAGE_EXCESS);
	assert_int_equal(cfg.target.auth.kind, CONFIG_AUTH_NONE);
	assert_int_equal(cfg.cluster.bootstrap, CONFIG_BOOTSTRAP_UNSET);
	assert_string_equal(config_on_threshold_name(cfg.safety.on_threshold), "stage_excess");
	assert_string_equal(config_deprovision_name(cfg.safety.deprovision), "delete");
	config_free(&cfg);
	load_ok(MINIMAL "safety:\n"
			"  on_threshold: stop\n"
			"log:\n"
			"  level: error\n");
	assert_int_equal(cfg.safety.on_threshold, CONFIG_ON_THRESHOLD_STOP);
	assert_string_equal(config_on_threshold_name(cfg.safety.on_threshold), "stop");
	assert_int_equal(cfg.log.level, LOG_ERROR);
	config_free(&cfg);
	load_fails_with(MINIMAL "safety:\n"
				"  on_threshold: go\n",
			":10: safety.on_threshold: expected stage_excess or stop, got \"go\"");
	load_fails_with(MINIMAL "target:\n"
				"  kind: rest\n"
				"  url: http://t/scim/v2\n",
			":10: target.kind: expected scim or entra, got \"rest\"");
	load_fails_with(MINIMAL "log:\n"
				"  level: \"\"\n",
			":10: log.level: expected debug, info, warn or error, got \"\"");
	load_fails_with(MINIMAL "safety:\n"
				"  deprovision: \"\"\n",
			":10: safety.deprovision: must not be empty");
}

static void test_target_nested_groups_is_native_flatten_or_skip(void **state)
{
	(void)state;
	load_ok(MINIMAL "target:\n"
			"  kind: scim\n"
			"  url: http://t/scim/v2\n");
	assert_int_equal(cfg.target.nested_groups, CONFIG_NESTED_NATIVE);
	assert_string_equal(config_nested_groups_name(cfg.target.nested_groups), "native");
	config_free(&cfg);
	load_ok(MINIMAL "target:\n"
			"  kind: scim\n"
			"  url: http://t/scim/v2\n"
			"  nested_groups: flatten\n");
	assert_int_equal(cfg.target.nested_groups, CONFIG_NESTED_FLATTEN);
	config_free(&cfg);
	load_ok(MINIMAL "target:\n"
			"  kind: scim\n"
			"  url: http://t/scim/v2\n"
			"  nested_groups: skip\n");
	assert_string_equal(config_nested_groups_name(cfg.target.nested_groups), "skip");
	config_free(&cfg);
	load_fails_with(MINIMAL "target:\n"
				"  kind: scim\n"
				"  url: http://t/scim/v2\n"
				"  nested_groups: expand\n",
			":12: target.nested_groups: expected native, flatten or skip, got \"expand\"");
}

static void test_scope_exclude_bulk_and_deprovision(void **state)
{
	(void)state;
	load_ok(MINIMAL "source:\n"
			"  kind: openldap\n"
			"  url: ldap://h\n"
			"  users: { base: \"dc=example,dc=com\", exclude: [\"ou=contractors,dc=example,dc=com\"],\n"
			"           member_of: \"cn=staff,dc=example,dc=com\" }\n"
			"target:\n"
			"  kind: scim\n"
			"  url: http://t/scim/v2\n"
			"  bulk: true\n"
			"safety:\n"
			"  deprovision: disable\n");
	assert_int_equal(cfg.source.users.n_exclude, 1);
	assert_string_equal(cfg.source.users.exclude[0], "ou=contractors,dc=example,dc=com");
	assert_string_equal(cfg.source.users.member_of, "cn=staff,dc=example,dc=com");
	assert_true(cfg.target.bulk);
	assert_int_equal(cfg.safety.deprovision, CONFIG_DEPROVISION_DISABLE);
	assert_string_equal(config_deprovision_name(cfg.safety.deprovision), "disable");
	config_free(&cfg);
	load_fails_with(MINIMAL "safety:\n"
				"  deprovision: archive\n",
			":10: safety.deprovision: expected delete or disable, got \"archive\"");
	load_fails_with(MINIMAL "source:\n"
				"  kind: openldap\n"
				"  url: ldap://h\n"
				"  users: { base: x }\n"
				"  groups: { base: y, member_of: \"cn=a\" }\n",
			":13: source.groups: unknown key \"member_of\" (allowed keys: base, filter, exclude, member_attribute, member_value)");
	load_fails_with(MINIMAL "source:\n"
				"  kind: openldap\n"
				"  url: ldap://h\n"
				"  users: { base: x, exclude: \"ou=a\" }\n",
			":12: source.users.exclude: expected a list of DNs, got \"ou=a\"");
}

#define GROUPS_SOURCE(kind, groups)                                                                                    \
	MINIMAL "source:\n"                                                                                            \
		"  kind: " kind "\n"                                                                                   \
		"  url: ldap://h\n"                                                                                    \
		"  users: { base: x }\n"                                                                               \
		"  groups: " groups "\n"

static void test_groups_member_attribute_and_value(void **state)
{
	(void)state;
	load_ok(GROUPS_SOURCE("openldap", "{ base: y, filter: \"(objectClass=posixGroup)\", member_attribute: memberUid, "
					  "member_value: uid }"));
	assert_string_equal(cfg.source.groups.member_attribute, "memberUid");
	assert_string_equal(cfg.source.groups.member_value, "uid");
	config_free(&cfg);
	load_ok(GROUPS_SOURCE("openldap", "{ base: y, member_attribute: uniqueMember }"));
	assert_string_equal(cfg.source.groups.member_attribute, "uniqueMember");
	assert_string_equal(cfg.source.groups.member_value, "");
	config_free(&cfg);
	load_ok(GROUPS_SOURCE("openldap", "{ base: y }"));
	assert_string_equal(cfg.source.groups.member_attribute, "");
	config_free(&cfg);
	load_fails_with(GROUPS_SOURCE("openldap", "{ base: y, member_attribute: memberUid }"),
			":13: source.groups.member_attribute memberUid holds user names, not DNs: add member_value: uid "
			"(the user attribute its values name)");
	load_fails_with(GROUPS_SOURCE("openldap", "{ base: y, member_attribute: \"member;range=0-*\" }"),
			":13: source.groups.member_attribute: expected an attribute name like member, uniqueMember or "
			"memberUid, got \"member;range=0-*\"");
	load_fails_with(GROUPS_SOURCE("openldap", "{ base: y, member_value: \"(uid)\" }"),
			":13: source.groups.member_value: expected dn or a user attribute name like uid, got \"(uid)\"");
	load_fails_with(GROUPS_SOURCE("ad", "{ base: y, member_attribute: uniqueMember }"),
			":13: source.groups: kind ad reads members from member as DNs; member_attribute must be member "
			"and member_value dn (or leave both out)");
	load_fails_with(MINIMAL "source:\n"
				"  kind: openldap\n"
				"  url: ldap://h\n"
				"  users: { base: x, member_value: uid }\n",
			":12: source.users: unknown key \"member_value\" (allowed keys: base, filter, exclude, member_of)");
}

static void test_relative_data_dir_resolved_against_config_dir(void **state)
{
	(void)state;
	load_ok(MINIMAL_NODE MINIMAL_CLUSTER);
	config_free(&cfg);

	char text[1024], want[PLEN];
	snprintf(text, sizeof text,
		 "node:\n"
		 "  id: 1\n"
		 "  raft_address: 127.0.0.1:7001\n"
		 "  control_address: 127.0.0.1:8001\n"
		 "  data_dir: ./data/1\n" MINIMAL_CLUSTER);
	load_ok(text);
	snprintf(want, sizeof want, "%s/data/1", tmpdir);
	assert_string_equal(cfg.node.data_dir, want);
	config_free(&cfg);

	/* Loaded through a relative path: still an absolute result. */
	char cwd[PATH_MAX];
	assert_non_null(getcwd(cwd, sizeof cwd));
	assert_int_equal(chdir(tmpdir), 0);
	int rc = config_load("./node.yaml", &cfg, errbuf, sizeof errbuf);
	assert_int_equal(chdir(cwd), 0);
	if (rc != 0)
		fail_msg("config_load failed: %s", errbuf);
	assert_string_equal(cfg.node.data_dir, want);
}

static void test_relative_secret_paths_resolved_against_config_dir(void **state)
{
	(void)state;
	char pw[PLEN], tok[PLEN];
	write_file("rel.secret", "pw", 0600, pw, sizeof pw);
	write_file("rel.token", "tk", 0600, tok, sizeof tok);
	load_ok(MINIMAL "source:\n"
			"  kind: openldap\n"
			"  url: ldap://127.0.0.1:389\n"
			"  bind_dn: cn=admin\n"
			"  password_file: rel.secret\n"
			"  users: { base: \"dc=example\" }\n"
			"target:\n"
			"  kind: scim\n"
			"  url: http://127.0.0.1:8080/scim/v2\n"
			"  token_file: ./rel.token\n");
	assert_string_equal(cfg.source.password_file, pw);
	assert_string_equal(cfg.target.token_file, tok);
	assert_string_equal(cfg.source.password, "pw");
	assert_string_equal(cfg.target.token, "tk");
}

static void test_secret_read_and_trailing_newline_stripped(void **state)
{
	(void)state;
	char pw[PLEN], text[2048];
	write_file("nl.secret", "pa ss\r\n", 0600, pw, sizeof pw);
	snprintf(text, sizeof text,
		 MINIMAL "source:\n"
			 "  kind: openldap\n"
			 "  url: ldap://127.0.0.1:389\n"
			 "  bind_dn: cn=admin\n"
			 "  password_file: %s\n"
			 "  users: { base: \"dc=example\" }\n",
		 pw);
	load_ok(text);
	assert_string_equal(cfg.source.password, "pa ss");
	config_free(&cfg);
	assert_null(cfg.source.password);
	config_free(&cfg); /* twice is harmless */
}

static void test_error_uses_path_as_given(void **state)
{
	(void)state;
	write_file("node.yaml",
		   "node:\n"
		   "  id: abc\n",
		   0644, path, sizeof path);
	char cwd[PATH_MAX];
	assert_non_null(getcwd(cwd, sizeof cwd));
	assert_int_equal(chdir(tmpdir), 0);
	int rc = config_load("node.yaml", &cfg, errbuf, sizeof errbuf);
	assert_int_equal(chdir(cwd), 0);
	assert_int_equal(rc, -EINVAL);
	assert_string_equal(errbuf, "node.yaml:2: node.id: expected a positive integer, got \"abc\"");
}

/* ------------------------------------------------------------- errors */

static void test_missing_required_key_names_file_line_and_key(void **state)
{
	(void)state;
	load_fails_with("node:\n"
			"  id: 1\n"
			"  raft_address: 127.0.0.1:7001\n"
			"  control_address: 127.0.0.1:8001\n" MINIMAL_CLUSTER,
			":1: missing required key node.data_dir");
}

static void test_missing_required_section_refused(void **state)
{
	(void)state;
	load_fails_with(MINIMAL_NODE, ":1: missing required key cluster");
}

static void test_missing_source_keys_refused(void **state)
{
	(void)state;
	load_fails_with(MINIMAL "source:\n"
				"  kind: openldap\n"
				"  users: { base: \"dc=example\" }\n",
			":9: missing required key source.url");
	load_fails_with(MINIMAL "source:\n"
				"  kind: openldap\n"
				"  url: ldap://h\n",
			":9: missing required key source.users");
	load_fails_with(MINIMAL "source:\n"
				"  url: ldap://h\n"
				"  users: { base: \"dc=example\" }\n",
			":9: missing required key source.kind");
	load_fails_with(MINIMAL "source:\n"
				"  kind: openldap\n"
				"  url: ldap://h\n"
				"  users: { filter: \"(uid=*)\" }\n",
			":12: missing required key source.users.base");
}

static void test_missing_target_keys_refused(void **state)
{
	(void)state;
	load_fails_with(MINIMAL "target:\n"
				"  kind: scim\n",
			":9: missing required key target.url");
}

static void test_string_for_integer_refused(void **state)
{
	(void)state;
	load_fails_with("node:\n"
			"  id: 1\n"
			"  raft_address: 127.0.0.1:7001\n"
			"  control_address: 127.0.0.1:8001\n"
			"  data_dir: /tmp/canopy/1\n"
			"cluster:\n"
			"  name: corp\n"
			"  members: [\"1@127.0.0.1:7001\"]\n"
			"  election_timeout_ms: fast\n",
			":9: cluster.election_timeout_ms: expected an integer, got \"fast\"");
	load_fails_with(NODE("abc", "127.0.0.1:7001", "127.0.0.1:8001"),
			":2: node.id: expected a positive integer, got \"abc\"");
}

static void test_quoted_integer_refused(void **state)
{
	(void)state;
	load_fails_with(NODE("\"1\"", "127.0.0.1:7001", "127.0.0.1:8001"),
			":2: node.id: expected a positive integer, got \"1\" (a quoted string; write the number "
			"without quotes)");
}

static void test_zero_and_negative_id_refused(void **state)
{
	(void)state;
	load_fails_with(NODE("0", "127.0.0.1:7001", "127.0.0.1:8001"),
			":2: node.id: expected a positive integer, got \"0\"");
	load_fails_with(NODE("-3", "127.0.0.1:7001", "127.0.0.1:8001"),
			":2: node.id: expected a positive integer, got \"-3\"");
}

static void test_integer_overflow_refused(void **state)
{
	(void)state;
	load_fails_with(NODE("18446744073709551616", "127.0.0.1:7001", "127.0.0.1:8001"),
			":2: node.id: 18446744073709551616 is too large (at most 18446744073709551615)");
	load_fails_with(MINIMAL "safety:\n"
				"  delete_threshold: 4294967296\n",
			":10: safety.delete_threshold: 4294967296 is too large (at most 4294967295)");
}

static void test_max_uint64_id_accepted(void **state)
{
	(void)state;
	load_ok("node:\n"
		"  id: 18446744073709551615\n"
		"  raft_address: 127.0.0.1:7001\n"
		"  control_address: 127.0.0.1:8001\n"
		"  data_dir: /tmp/canopy/1\n" MINIMAL_CLUSTER);
	assert_true(cfg.node.id == UINT64_MAX);
}

static void test_sequence_for_scalar_refused(void **state)
{
	(void)state;
	load_fails_with(NODE("[1, 2]", "127.0.0.1:7001", "127.0.0.1:8001"),
			":2: node.id: expected a positive integer, got a list");
	load_fails_with(MINIMAL_NODE "cluster:\n"
				     "  name: [corp]\n",
			":7: cluster.name: expected a string, got a list");
	load_fails_with("node: 5\n", ":1: node: expected a mapping, got \"5\"");
}

static void test_empty_value_refused(void **state)
{
	(void)state;
	load_fails_with("node:\n"
			"  id: 1\n"
			"  raft_address: 127.0.0.1:7001\n"
			"  control_address: 127.0.0.1:8001\n"
			"  data_dir:\n" MINIMAL_CLUSTER,
			":5: node.data_dir: expected a string, got an empty value");
	load_fails_with("node:\n"
			"  id: 1\n"
			"  raft_address: 127.0.0.1:7001\n"
			"  control_address: 127.0.0.1:8001\n"
			"  data_dir: \"\"\n" MINIMAL_CLUSTER,
			":5: node.data_dir: must not be empty");
}

static void test_string_too_long_refused(void **state)
{
	(void)state;
	char text[2048], name[200];
	memset(name, 'x', 150);
	name[150] = '\0';
	snprintf(text, sizeof text, MINIMAL_NODE "cluster:\n  name: %s\n  members: [\"1@127.0.0.1:7001\"]\n", name);
	load_fails_with(text, ":7: cluster.name: too long (150 bytes, at most 127)");
}

static void test_bool_must_be_true_or_false(void **state)
{
	(void)state;
	load_fails_with(MINIMAL "  pre_vote: maybe\n", ":9: cluster.pre_vote: expected true or false, got \"maybe\"");
}

static void test_unknown_top_level_key_refused(void **state)
{
	(void)state;
	load_fails_with(MINIMAL "sorce:\n"
				"  kind: openldap\n",
			":9: unknown key \"sorce\" (top-level keys: node, cluster, source, target, mapping, safety, "
			"log, control)");
}

static void test_unknown_nested_key_refused(void **state)
{
	(void)state;
	load_fails_with("node:\n"
			"  id: 1\n"
			"  raft_adress: 127.0.0.1:7001\n",
			":3: node: unknown key \"raft_adress\" (allowed keys: id, raft_address, control_address, "
			"data_dir)");
	load_fails_with(MINIMAL "source:\n"
				"  kind: openldap\n"
				"  url: ldap://h\n"
				"  users: { base: x, filtre: \"(a=b)\" }\n",
			":12: source.users: unknown key \"filtre\" (allowed keys: base, filter, exclude, member_of)");
}

static void test_duplicate_key_refused(void **state)
{
	(void)state;
	load_fails_with("node:\n"
			"  id: 1\n"
			"  id: 2\n",
			":3: node: duplicate key \"id\" (first on line 2)");
	load_fails_with(MINIMAL "node:\n"
				"  id: 2\n",
			":9: duplicate key \"node\" (first on line 1)");
}

static void test_duplicate_mapping_attribute_refused(void **state)
{
	(void)state;
	load_fails_with(MINIMAL "mapping:\n"
				"  user:\n"
				"    userName: \"[uid]\"\n"
				"    \"userName\": \"[mail]\"\n",
			":12: mapping.user: duplicate key \"userName\" (first on line 11)");
}

static void test_mapping_expression_must_be_string(void **state)
{
	(void)state;
	load_fails_with(MINIMAL "mapping:\n"
				"  user:\n"
				"    userName: [uid]\n",
			":11: mapping.user.userName: expected an expression string, got a list");
}

static void test_yaml_syntax_error_has_line(void **state)
{
	(void)state;
	load_fails_with("node:\n"
			"  id: 1\n"
			"  raft_address: [127.0.0.1:7001\n"
			"cluster:\n",
			":4: YAML syntax error at column 8: did not find expected ',' or ']' (while parsing a flow "
			"sequence at line 3)");
	load_fails_with("node:\n"
			"  id: 1\n"
			"   bad: 2\n",
			":3: YAML syntax error at column 7: mapping values are not allowed in this context");
}

static void test_second_yaml_document_refused(void **state)
{
	(void)state;
	load_fails_with(MINIMAL "---\n"
				"node: {}\n",
			":9: only one YAML document is allowed in the file (found a second one)");
}

static void test_empty_file_refused(void **state)
{
	(void)state;
	load_fails_with("# nothing here\n", ":1: the configuration is empty (required sections: node, cluster)");
}

static void test_missing_config_file_refused(void **state)
{
	(void)state;
	char p[PLEN];
	snprintf(p, sizeof p, "%s/absent.yaml", tmpdir);
	int rc = config_load(p, &cfg, errbuf, sizeof errbuf);
	assert_int_equal(rc, -ENOENT);
	char want[2048];
	snprintf(want, sizeof want, "%s: cannot read configuration: No such file or directory", p);
	assert_string_equal(errbuf, want);
}

static void test_bad_address_refused(void **state)
{
	(void)state;
	load_fails_with(NODE("1", "127.0.0.1", "127.0.0.1:8001"),
			":3: node.raft_address: expected HOST:PORT, got \"127.0.0.1\" (missing \":PORT\")");
	load_fails_with(NODE("1", "127.0.0.1:70000", "127.0.0.1:8001"),
			":3: node.raft_address: expected HOST:PORT, got \"127.0.0.1:70000\" (port 70000 is out of "
			"range (1..65535))");
	load_fails_with(NODE("1", "127.0.0.1:7001", "127.0.0.1:7001"),
			":4: node.control_address: must differ from node.raft_address (127.0.0.1:7001)");
}

static void test_control_address_may_be_host_name_or_ipv6(void **state)
{
	(void)state;
	load_ok(NODE("1", "127.0.0.1:7001", "\"[::1]:8001\""));
	assert_string_equal(cfg.node.control_address, "[::1]:8001");
	config_free(&cfg);
	load_ok(NODE("1", "127.0.0.1:7001", "localhost:8001"));
	assert_string_equal(cfg.node.control_address, "localhost:8001");
}

static void test_raft_address_must_be_ipv4(void **state)
{
	(void)state;
	load_fails_with(NODE("1", "localhost:7001", "127.0.0.1:8001"),
			":3: node.raft_address: expected HOST:PORT, got \"localhost:7001\" (libraft 0.15 takes an IPv4 "
			"address A.B.C.D:PORT, no host name or IPv6)");
	load_fails_with(NODE("1", "\"[::1]:7001\"", "127.0.0.1:8001"),
			":3: node.raft_address: expected HOST:PORT, got \"[::1]:7001\" (libraft 0.15 takes an IPv4 "
			"address A.B.C.D:PORT, no host name or IPv6)");
}

static void test_bad_member_syntax_refused(void **state)
{
	(void)state;
	load_fails_with(MINIMAL_NODE "cluster:\n"
				     "  name: corp\n"
				     "  members:\n"
				     "    - 1@127.0.0.1:7001\n"
				     "    - 2-127.0.0.1:7002\n",
			":10: cluster.members[1]: bad member \"2-127.0.0.1:7002\": missing \"@\" (expected "
			"ID@HOST:PORT)");
}

static void test_parse_member_valid(void **state)
{
	(void)state;
	struct config_member m;
	assert_int_equal(config_parse_member("2@127.0.0.1:7002", &m, errbuf, sizeof errbuf), 0);
	assert_int_equal(m.id, 2);
	assert_string_equal(m.address, "127.0.0.1:7002");
	assert_int_equal(config_parse_member("12@10.0.0.3:7003", &m, errbuf, sizeof errbuf), 0);
	assert_int_equal(m.id, 12);
	assert_string_equal(m.address, "10.0.0.3:7003");
}

static void test_parse_member_errors_name_the_problem(void **state)
{
	(void)state;
	struct config_member m;
	assert_int_equal(config_parse_member("127.0.0.1:7002", &m, errbuf, sizeof errbuf), -EINVAL);
	assert_string_equal(errbuf, "bad member \"127.0.0.1:7002\": missing \"@\" (expected ID@HOST:PORT)");
	assert_int_equal(config_parse_member("@127.0.0.1:7002", &m, errbuf, sizeof errbuf), -EINVAL);
	assert_string_equal(errbuf, "bad member \"@127.0.0.1:7002\": missing ID before \"@\" (expected ID@HOST:PORT)");
	assert_int_equal(config_parse_member("x@127.0.0.1:7002", &m, errbuf, sizeof errbuf), -EINVAL);
	assert_string_equal(errbuf, "bad member \"x@127.0.0.1:7002\": ID must be a positive integer");
	assert_int_equal(config_parse_member("0@127.0.0.1:7002", &m, errbuf, sizeof errbuf), -EINVAL);
	assert_string_equal(errbuf, "bad member \"0@127.0.0.1:7002\": ID must be a positive integer");
	assert_int_equal(config_parse_member("99999999999999999999@1.2.3.4:1", &m, errbuf, sizeof errbuf), -EINVAL);
	assert_string_equal(errbuf, "bad member \"99999999999999999999@1.2.3.4:1\": ID is too large");
	assert_int_equal(config_parse_member("2@127.0.0.1", &m, errbuf, sizeof errbuf), -EINVAL);
	assert_string_equal(errbuf, "bad member \"2@127.0.0.1\": address: missing \":PORT\" (expected ID@HOST:PORT)");
	assert_int_equal(config_parse_member("2@:7002", &m, errbuf, sizeof errbuf), -EINVAL);
	assert_string_equal(errbuf, "bad member \"2@:7002\": address: missing host (expected ID@HOST:PORT)");
	assert_int_equal(config_parse_member("2@h:x", &m, errbuf, sizeof errbuf), -EINVAL);
	assert_string_equal(errbuf, "bad member \"2@h:x\": address: port is not a number (expected ID@HOST:PORT)");
	assert_int_equal(config_parse_member("2@node2.corp:7002", &m, errbuf, sizeof errbuf), -EINVAL);
	assert_string_equal(errbuf, "bad member \"2@node2.corp:7002\": address: libraft 0.15 takes an IPv4 address "
				    "A.B.C.D:PORT, no host name or IPv6 (expected ID@HOST:PORT)");
}

static void test_duplicate_member_id_refused(void **state)
{
	(void)state;
	load_fails_with(MINIMAL_NODE "cluster:\n"
				     "  name: corp\n"
				     "  members: [\"1@127.0.0.1:7001\", \"1@127.0.0.1:7002\"]\n",
			":8: cluster.members[1]: duplicate member id 1 (also cluster.members[0])");
}

static void test_empty_members_refused(void **state)
{
	(void)state;
	load_fails_with(MINIMAL_NODE "cluster:\n"
				     "  name: corp\n"
				     "  members: []\n",
			":8: cluster.members: the list is empty (list at least this node)");
}

static void test_member_address_must_match_raft_address(void **state)
{
	(void)state;
	load_fails_with(MINIMAL_NODE "cluster:\n"
				     "  name: corp\n"
				     "  members: [\"1@127.0.0.1:7009\"]\n",
			":8: cluster.members[0]: this node (id 1) is listed at 127.0.0.1:7009 but node.raft_address is "
			"127.0.0.1:7001");
}

static void test_heartbeat_not_below_election_timeout_refused(void **state)
{
	(void)state;
	load_fails_with(MINIMAL "  election_timeout_ms: 500\n"
				"  heartbeat_ms: 500\n",
			":10: cluster.heartbeat_ms: must be less than cluster.election_timeout_ms (500), got 500");
	load_fails_with(MINIMAL "  election_timeout_ms: 100\n",
			":9: cluster.election_timeout_ms: must be greater than cluster.heartbeat_ms (default 100); "
			"set cluster.heartbeat_ms lower");
}

static void test_election_timeout_out_of_range_refused(void **state)
{
	(void)state;
	load_fails_with(MINIMAL "  election_timeout_ms: 50\n",
			":9: cluster.election_timeout_ms: 50 is out of range (100..60000)");
	load_fails_with(MINIMAL "  election_timeout_ms: -1000\n",
			":9: cluster.election_timeout_ms: -1000 is out of range (100..60000)");
}

static void test_source_url_scheme_checked(void **state)
{
	(void)state;
	load_fails_with(MINIMAL "source:\n"
				"  kind: openldap\n"
				"  url: [ldap://a, http://b]\n"
				"  users: { base: x }\n",
			":11: source.url[1]: expected an ldap:// or ldaps:// URL, got \"http://b\"");
	load_fails_with(MINIMAL "source:\n"
				"  kind: openldap\n"
				"  url: ldap://a ldap://b\n"
				"  users: { base: x }\n",
			":11: source.url: URL contains whitespace, got \"ldap://a ldap://b\" (list several URLs as a YAML "
			"list)");
	load_fails_with(MINIMAL "source:\n"
				"  kind: openldap\n"
				"  url: []\n"
				"  users: { base: x }\n",
			":11: source.url: the list is empty");
}

static void test_source_kind_checked(void **state)
{
	(void)state;
	load_fails_with(MINIMAL "source:\n"
				"  kind: ldap\n"
				"  url: ldap://a\n"
				"  users: { base: x }\n",
			":10: source.kind: expected openldap, ad or ldap-poll, got \"ldap\"");
}

static void test_target_url_scheme_checked(void **state)
{
	(void)state;
	load_fails_with(MINIMAL "target:\n"
				"  kind: scim\n"
				"  url: ftp://x/scim\n",
			":11: target.url: expected an http:// or https:// URL, got \"ftp://x/scim\"");
}

/* target.external_id_prefix: absent is "" (the anchor alone, as before the
 * key); a short printable tag is taken; a space or a quote is refused. */
static void test_target_external_id_prefix(void **state)
{
	(void)state;
	load_ok(MINIMAL "target:\n"
			"  kind: scim\n"
			"  url: http://x/scim\n");
	assert_string_equal(cfg.target.external_id_prefix, "");
	config_free(&cfg);
	load_ok(MINIMAL "target:\n"
			"  kind: scim\n"
			"  url: http://x/scim\n"
			"  external_id_prefix: \"corp:\"\n");
	assert_string_equal(cfg.target.external_id_prefix, "corp:");
	config_free(&cfg);
	load_fails_with(MINIMAL "target:\n"
				"  kind: scim\n"
				"  url: http://x/scim\n"
				"  external_id_prefix: \"a b\"\n",
			":12: target.external_id_prefix: printable ASCII without space, quote or backslash");
}

static void test_filter_must_be_parenthesised(void **state)
{
	(void)state;
	load_fails_with(MINIMAL "source:\n"
				"  kind: openldap\n"
				"  url: ldap://a\n"
				"  users: { base: x, filter: \"objectClass=person\" }\n",
			":12: source.users.filter: must be enclosed in parentheses, got \"objectClass=person\"");
	load_fails_with(MINIMAL "source:\n"
				"  kind: openldap\n"
				"  url: ldap://a\n"
				"  users: { base: x, filter: \"(a=b)(c=d)\" }\n",
			":12: source.users.filter: unbalanced parentheses (escape literal ones as \\28 and \\29), got "
			"\"(a=b)(c=d)\"");
}

static void test_bind_dn_and_password_file_go_together(void **state)
{
	(void)state;
	load_fails_with(MINIMAL "source:\n"
				"  kind: openldap\n"
				"  url: ldap://a\n"
				"  bind_dn: cn=admin\n"
				"  users: { base: x }\n",
			":12: source.bind_dn: needs source.password_file (the bind password)");
}

static void test_log_level_checked(void **state)
{
	(void)state;
	load_fails_with(MINIMAL "log:\n"
				"  level: verbose\n",
			":10: log.level: expected debug, info, warn or error, got \"verbose\"");
}

static void test_log_format_text_by_default_json_when_set(void **state)
{
	(void)state;
	load_ok(MINIMAL);
	assert_int_equal(cfg.log.format, LOG_FORMAT_TEXT);
	assert_string_equal(log_format_name(cfg.log.format), "text");
	config_free(&cfg);
	load_ok(MINIMAL "log:\n"
			"  format: json\n");
	assert_int_equal(cfg.log.format, LOG_FORMAT_JSON);
	assert_string_equal(log_format_name(cfg.log.format), "json");
	assert_int_equal(cfg.log.level, LOG_INFO);
	config_free(&cfg);
}

static void test_log_format_checked(void **state)
{
	(void)state;
	load_fails_with(MINIMAL "log:\n"
				"  format: xml\n",
			":10: log.format: expected text or json, got \"xml\"");
}

static void test_log_provisioning_rotation_defaults_and_ranges(void **state)
{
	(void)state;
	load_ok(MINIMAL);
	assert_true(cfg.log.provisioning_max_bytes == 64ull * 1024 * 1024);
	assert_int_equal(cfg.log.provisioning_keep, 5);
	config_free(&cfg);
	load_ok(MINIMAL "log:\n"
			"  provisioning_max_bytes: 4096\n"
			"  provisioning_keep: 100\n");
	assert_true(cfg.log.provisioning_max_bytes == 4096);
	assert_int_equal(cfg.log.provisioning_keep, 100);
	config_free(&cfg);
	load_fails_with(MINIMAL "log:\n"
				"  provisioning_max_bytes: 4095\n",
			":10: log.provisioning_max_bytes: 4095 is out of range (4096..1099511627776)");
	load_fails_with(MINIMAL "log:\n"
				"  provisioning_keep: 0\n",
			":10: log.provisioning_keep: 0 is out of range (1..100)");
}

static void test_delete_threshold_percent_range(void **state)
{
	(void)state;
	load_fails_with(MINIMAL "safety:\n"
				"  delete_threshold_percent: 101\n",
			":10: safety.delete_threshold_percent: 101 is out of range (0..100)");
}

static void source_with_secret(char *text, size_t len, const char *secret_path)
{
	snprintf(text, len,
		 MINIMAL "source:\n"           /* 9 */
			 "  kind: openldap\n"  /* 10 */
			 "  url: ldap://a\n"   /* 11 */
			 "  bind_dn: cn=admin\n" /* 12 */
			 "  password_file: %s\n" /* 13 */
			 "  users: { base: x }\n",
		 secret_path);
}

static void test_world_readable_secret_refused(void **state)
{
	(void)state;
	char pw[PLEN], text[2048], want[2048];
	write_file("open.secret", "pw\n", 0644, pw, sizeof pw);
	source_with_secret(text, sizeof text, pw);
	write_file("node.yaml", text, 0644, path, sizeof path);
	assert_int_equal(config_load(path, &cfg, errbuf, sizeof errbuf), -EACCES);
	snprintf(want, sizeof want,
		 "%s:13: source.password_file: %s is readable by group or others (mode 0644); chmod 600 it", path, pw);
	assert_string_equal(errbuf, want);
	assert_null(cfg.source.password);
}

static void test_group_readable_token_refused(void **state)
{
	(void)state;
	char tok[PLEN], text[2048], want[2048];
	write_file("group.token", "t", 0640, tok, sizeof tok);
	snprintf(text, sizeof text,
		 MINIMAL "target:\n"
			 "  kind: scim\n"
			 "  url: http://127.0.0.1:8080/scim/v2\n"
			 "  token_file: %s\n",
		 tok);
	write_file("node.yaml", text, 0644, path, sizeof path);
	assert_int_equal(config_load(path, &cfg, errbuf, sizeof errbuf), -EACCES);
	snprintf(want, sizeof want,
		 "%s:12: target.token_file: %s is readable by group or others (mode 0640); chmod 600 it", path, tok);
	assert_string_equal(errbuf, want);
	assert_null(cfg.target.token);
}

static void test_missing_secret_file_refused(void **state)
{
	(void)state;
	char pw[PLEN], text[2048], want[2048];
	snprintf(pw, sizeof pw, "%s/nonexistent.secret", tmpdir);
	source_with_secret(text, sizeof text, pw);
	write_file("node.yaml", text, 0644, path, sizeof path);
	assert_int_equal(config_load(path, &cfg, errbuf, sizeof errbuf), -ENOENT);
	snprintf(want, sizeof want, "%s:13: source.password_file: cannot read %s: No such file or directory", path, pw);
	assert_string_equal(errbuf, want);
}

static void test_empty_secret_refused(void **state)
{
	(void)state;
	char pw[PLEN], text[2048], want[2048];
	write_file("empty.secret", "\n", 0600, pw, sizeof pw);
	source_with_secret(text, sizeof text, pw);
	write_file("node.yaml", text, 0644, path, sizeof path);
	assert_int_equal(config_load(path, &cfg, errbuf, sizeof errbuf), -EINVAL);
	snprintf(want, sizeof want, "%s:13: source.password_file: %s is empty", path, pw);
	assert_string_equal(errbuf, want);
}

static void test_secret_not_read_when_structure_is_wrong(void **state)
{
	(void)state;
	char pw[PLEN], text[2048];
	write_file("ok.secret", "pw", 0600, pw, sizeof pw);
	source_with_secret(text, sizeof text, pw);
	strcat(text, "log: { level: loud }\n");
	load_fails_with(text, ":15: log.level: expected debug, info, warn or error, got \"loud\"");
}

/* ------------------------------------------------- the shipped examples */

/* deploy/examples/... relative to this source file; skip if not found. */
static void example_path(const char *rel, char *out, size_t outsz)
{
	const char *me = __FILE__;
	const char *cut = strstr(me, "tests/unit/test_config.c");
	int n = (int)(cut ? cut - me : 0);
	snprintf(out, outsz, "%.*s%s", n, me, rel);
	if (access(out, R_OK) != 0)
		skip();
}

static void test_example_single_yaml_loads(void **state)
{
	(void)state;
	char p[PATH_MAX];
	example_path("deploy/examples/single.yaml", p, sizeof p);
	int rc = config_load(p, &cfg, errbuf, sizeof errbuf);
	if (rc != 0)
		fail_msg("%s", errbuf);
	assert_int_equal(cfg.node.id, 1);
	assert_string_equal(cfg.node.raft_address, "127.0.0.1:7001");
	assert_string_equal(cfg.node.control_address, "127.0.0.1:8001");
	assert_string_equal(cfg.node.data_dir, "/tmp/canopy/1");
	assert_string_equal(cfg.cluster.name, "corp");
	assert_int_equal(cfg.cluster.n_members, 1);
	assert_false(cfg.source.present);
	assert_false(cfg.target.present);
}

/* The three-node examples are complete except for their secret files. */
static void test_example_three_node_configs_only_lack_secrets(void **state)
{
	(void)state;
	for (int i = 1; i <= 3; i++) {
		char rel[64], p[PATH_MAX];
		snprintf(rel, sizeof rel, "deploy/examples/three-node/node%d.yaml", i);
		example_path(rel, p, sizeof p);
		int rc = config_load(p, &cfg, errbuf, sizeof errbuf);
		if (rc == 0) { /* a machine that has the secrets */
			assert_int_equal(cfg.node.id, (uint64_t)i);
			config_free(&cfg);
			continue;
		}
		if (strstr(errbuf, ": source.password_file: ") == NULL || strstr(errbuf, "/etc/canopy/ldap.secret") == NULL)
			fail_msg("%s", errbuf);
	}
}

/* ------------------------------------------------ control API and limits */

static void test_control_token_file_read(void **state)
{
	(void)state;
	char tok[PLEN], text[1024];
	write_file("control.token", "ctl-tok\n", 0600, tok, sizeof tok);
	snprintf(text, sizeof text, MINIMAL "control:\n  token_file: %s\n", tok);
	load_ok(text);
	assert_string_equal(cfg.control.token_file, tok);
	assert_string_equal(cfg.control.token, "ctl-tok");
	config_free(&cfg);
	assert_null(cfg.control.token);
}

static void test_control_token_file_unsafe_refused(void **state)
{
	(void)state;
	char tok[PLEN], text[1024];
	write_file("open.token", "ctl-tok\n", 0644, tok, sizeof tok);
	snprintf(text, sizeof text, MINIMAL "control:\n  token_file: %s\n", tok);
	write_file("node.yaml", text, 0644, path, sizeof path);
	assert_int_equal(config_load(path, &cfg, errbuf, sizeof errbuf), -EACCES);
	assert_non_null(strstr(errbuf, ":10: control.token_file: "));
	assert_non_null(strstr(errbuf, "readable by group or others"));
}

static void test_non_loopback_control_needs_token(void **state)
{
	(void)state;
	load_fails_with(NODE("1", "127.0.0.1:7001", "0.0.0.0:8001"),
			":2: node.control_address 0.0.0.0:8001 is not a loopback address: set control.token_file "
			"(mutations then need \"Authorization: Bearer <token>\"), or listen on 127.0.0.1");
	load_ok(NODE("1", "127.0.0.1:7001", "127.0.0.5:8001"));
	load_ok(NODE("1", "127.0.0.1:7001", "localhost:8001"));
	load_ok(NODE("1", "127.0.0.1:7001", "\"[::1]:8001\""));
	assert_true(config_is_loopback("127.1.2.3:1"));
	assert_false(config_is_loopback("10.0.0.1:1"));
	assert_false(config_is_loopback("[::]:1"));
	assert_false(config_is_loopback("agent.example.com:1"));
}

static void test_yaml_tags_refused(void **state)
{
	(void)state;
	load_fails_with(NODE("!!str 1", "127.0.0.1:7001", "127.0.0.1:8001"),
			":2: YAML tags are not allowed (found \"tag:yaml.org,2002:str\"): write the plain value");
	load_fails_with("node: !!map\n  id: 1\n", ":1: YAML tags are not allowed (found \"tag:yaml.org,2002:map\"): "
						 "write the plain value");
}

static void test_yaml_depth_and_aliases_capped(void **state)
{
	(void)state;
	char *deep = malloc(200001);
	assert_non_null(deep);
	memset(deep, '[', 200000);
	deep[200000] = '\0';
	write_file("deep.yaml", deep, 0644, path, sizeof path);
	free(deep);
	assert_int_equal(config_load(path, &cfg, errbuf, sizeof errbuf), -EINVAL);
	assert_non_null(strstr(errbuf, "nested deeper than 32 levels"));

	char text[8192];
	size_t n = (size_t)snprintf(text, sizeof text, MINIMAL "safety:\n  x: &a 1\n");
	for (int i = 0; i < 70; i++)
		n += (size_t)snprintf(text + n, sizeof text - n, "  y%d: *a\n", i);
	write_file("alias.yaml", text, 0644, path, sizeof path);
	assert_int_equal(config_load(path, &cfg, errbuf, sizeof errbuf), -EINVAL);
	assert_non_null(strstr(errbuf, "more than 64 YAML aliases"));
}

static void test_config_file_size_and_type(void **state)
{
	(void)state;
	char fifo[PLEN];
	snprintf(fifo, sizeof fifo, "%s/fifo.yaml", tmpdir);
	assert_int_equal(mkfifo(fifo, 0600), 0);
	/* must not block: opened O_NONBLOCK and refused after fstat */
	assert_int_equal(config_load(fifo, &cfg, errbuf, sizeof errbuf), -EINVAL);
	assert_non_null(strstr(errbuf, "not a regular file"));
	assert_int_equal(config_load(tmpdir, &cfg, errbuf, sizeof errbuf), -EINVAL);

	char *big = malloc(CONFIG_MAX_FILE_BYTES + 2);
	assert_non_null(big);
	memset(big, '#', CONFIG_MAX_FILE_BYTES + 1);
	big[CONFIG_MAX_FILE_BYTES + 1] = '\0';
	write_file("big.yaml", big, 0644, path, sizeof path);
	free(big);
	assert_int_equal(config_load(path, &cfg, errbuf, sizeof errbuf), -EFBIG);
	assert_non_null(strstr(errbuf, "too large"));
}

static void test_config_load_buffer(void **state)
{
	(void)state;
	const char text[] = MINIMAL;
	assert_int_equal(config_load_buffer("mem.yaml", text, sizeof text - 1, &cfg, errbuf, sizeof errbuf), 0);
	assert_int_equal(cfg.node.id, 1);
	config_free(&cfg);
	assert_int_equal(config_load_buffer("mem.yaml", "node: [", 7, &cfg, errbuf, sizeof errbuf), -EINVAL);
	assert_non_null(strstr(errbuf, "mem.yaml:"));
}

int main(void)
{
	const struct CMUnitTest tests[] = {
#define T(f) cmocka_unit_test_setup_teardown(f, before, after)
		T(test_minimal_config_loads_with_defaults),
		T(test_full_config_loads_source_target_mapping),
		T(test_snapshot_log_mib_given_or_off),
		T(test_absent_groups_scope_keeps_empty_base_and_default_filter),
		T(test_ad_poll_s_and_filter_given),
		T(test_ldap_poll_keys),
		T(test_source_sasl_gssapi_binds_with_a_keytab_instead_of_a_password),
		T(test_source_sasl_with_a_password_too_is_refused),
		T(test_source_sasl_needs_a_private_keytab_a_principal_and_gssapi),
		T(test_ad_notify_off_and_reconcile_s_given),
		T(test_ad_notify_and_reconcile_s_refused_where_wrong),
		T(test_node_not_in_members_is_allowed),
		T(test_url_list_with_two_entries),
		T(test_word_keys_parse_once),
		T(test_entra_needs_what_graph_requires),
		T(test_entra_max_requests_per_s),
		T(test_entra_bulkupload_needs_a_job_and_refuses_groups_and_deletes),
		T(test_groups_member_attribute_and_value),
		T(test_scope_exclude_bulk_and_deprovision),
		T(test_target_nested_groups_is_native_flatten_or_skip),
		T(test_relative_data_dir_resolved_against_config_dir),
		T(test_relative_secret_paths_resolved_against_config_dir),
		T(test_secret_read_and_trailing_newline_stripped),
		T(test_error_uses_path_as_given),
		T(test_missing_required_key_names_file_line_and_key),
		T(test_missing_required_section_refused),
		T(test_missing_source_keys_refused),
		T(test_missing_target_keys_refused),
		T(test_string_for_integer_refused),
		T(test_quoted_integer_refused),
		T(test_zero_and_negative_id_refused),
		T(test_integer_overflow_refused),
		T(test_max_uint64_id_accepted),
		T(test_sequence_for_scalar_refused),
		T(test_empty_value_refused),
		T(test_string_too_long_refused),
		T(test_bool_must_be_true_or_false),
		T(test_unknown_top_level_key_refused),
		T(test_unknown_nested_key_refused),
		T(test_duplicate_key_refused),
		T(test_duplicate_mapping_attribute_refused),
		T(test_mapping_expression_must_be_string),
		T(test_yaml_syntax_error_has_line),
		T(test_second_yaml_document_refused),
		T(test_empty_file_refused),
		T(test_missing_config_file_refused),
		T(test_bad_address_refused),
		T(test_control_address_may_be_host_name_or_ipv6),
		T(test_raft_address_must_be_ipv4),
		T(test_bad_member_syntax_refused),
		T(test_parse_member_valid),
		T(test_parse_member_errors_name_the_problem),
		T(test_duplicate_member_id_refused),
		T(test_empty_members_refused),
		T(test_member_address_must_match_raft_address),
		T(test_heartbeat_not_below_election_timeout_refused),
		T(test_election_timeout_out_of_range_refused),
		T(test_source_url_scheme_checked),
		T(test_source_kind_checked),
		T(test_target_url_scheme_checked),
		T(test_target_external_id_prefix),
		T(test_filter_must_be_parenthesised),
		T(test_bind_dn_and_password_file_go_together),
		T(test_log_level_checked),
		T(test_log_format_text_by_default_json_when_set),
		T(test_log_format_checked),
		T(test_log_provisioning_rotation_defaults_and_ranges),
		T(test_delete_threshold_percent_range),
		T(test_world_readable_secret_refused),
		T(test_group_readable_token_refused),
		T(test_missing_secret_file_refused),
		T(test_empty_secret_refused),
		T(test_secret_not_read_when_structure_is_wrong),
		T(test_example_single_yaml_loads),
		T(test_example_three_node_configs_only_lack_secrets),
		T(test_control_token_file_read),
		T(test_control_token_file_unsafe_refused),
		T(test_non_loopback_control_needs_token),
		T(test_yaml_tags_refused),
		T(test_yaml_depth_and_aliases_capped),
		T(test_config_file_size_and_type),
		T(test_config_load_buffer),
#undef T
	};
	return cmocka_run_group_tests(tests, setup, teardown);
}
