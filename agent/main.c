/*
 * agent/main.c -- canopy-agent: the daemon.
 */
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "agent/agent.h"
#include <canopy_commit.h> /* CANOPY_COMMIT, generated in the build tree (cmake/git_commit.cmake) */

static void usage(FILE *f)
{
	fprintf(f,
		"usage: canopy-agent --config FILE [--check-config]\n"
		"\n"
		"Run one canopy agent: a member of the cluster's Raft group that, while it\n"
		"leads, reads the source directory and provisions it into the SCIM target.\n"
		"Logs go to stderr, one key=value line per event.\n"
		"\n"
		"  -c, --config FILE   the agent's YAML configuration (canopy.yaml(5))\n"
		"      --check-config  load and validate the configuration as a start would\n"
		"                      (keys, the files it names, secret files' modes,\n"
		"                      mappings), print \"config OK\" or the error, and exit;\n"
		"                      starts nothing\n"
		"  -h, --help          this help\n"
		"  -V, --version       print the version and the git commit of the build\n"
		"\n"
		"SIGTERM or SIGINT stop the agent; a leader first hands leadership to\n"
		"another voter. A second signal stops at once. SIGHUP re-reads the\n"
		"cluster.tls files.\n"
		"\n"
		"Exit status: 0 after a clean stop (or a config that checks OK), 78 when\n"
		"the configuration is refused, 1 when start-up fails otherwise or the\n"
		"agent stops on an error, 2 for a usage error.\n");
}

int main(int argc, char **argv)
{
	enum { OPT_CHECK_CONFIG = 256 };
	static const struct option opts[] = {
		{"config", required_argument, NULL, 'c'},
		{"check-config", no_argument, NULL, OPT_CHECK_CONFIG},
		{"help", no_argument, NULL, 'h'},
		{"version", no_argument, NULL, 'V'},
		{NULL, 0, NULL, 0},
	};
	const char *config = NULL;
	char errmsg[1024] = "";
	int c, rv, check = 0;

	/* libldap reads ldap.conf, ~/.ldaprc and the LDAP* / LDAPTLS_* variables
	 * (LDAPTLS_REQCERT=never, say) once, at its first call; LDAPNOINIT
	 * turns that off, so only the configuration decides how the directory
	 * is verified (sync/source/ldap_tls.h sets every TLS option per handle
	 * too). Before any thread or libldap call. */
	setenv("LDAPNOINIT", "1", 1);

	while ((c = getopt_long(argc, argv, "c:hV", opts, NULL)) != -1) {
		switch (c) {
		case 'c':
			config = optarg;
			break;
		case OPT_CHECK_CONFIG:
			check = 1;
			break;
		case 'h':
			usage(stdout);
			return 0;
		case 'V':
			printf("%s\n", versions_text()); /* the text status "version" shows */
			return 0;
		default:
			usage(stderr);
			return 2;
		}
	}
	if (config == NULL || optind != argc) {
		fprintf(stderr, "canopy-agent: %s\n",
			config == NULL ? "--config FILE is required" : "unexpected argument");
		usage(stderr);
		return 2;
	}
	if (check) {
		if (agent_check_config(config, errmsg, sizeof errmsg) != 0) {
			fprintf(stderr, "canopy-agent: %s\n", errmsg);
			return AGENT_EXIT_CONFIG;
		}
		printf("config OK\n");
		return 0;
	}
	rv = agent_run(config, errmsg, sizeof errmsg);
	if (rv != 0)
		fprintf(stderr, "canopy-agent: %s\n", errmsg);
	return rv;
}
