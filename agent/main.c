/*
 * agent/main.c -- canopy-agent: the daemon.
 */
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "agent/agent.h"

static void usage(FILE *f)
{
	fprintf(f,
		"usage: canopy-agent --config FILE\n"
		"\n"
		"Run one canopy agent: a member of the cluster's Raft group that, while it\n"
		"leads, reads the source directory and provisions it into the SCIM target.\n"
		"Logs go to stderr, one key=value line per event.\n"
		"\n"
		"  -c, --config FILE   the agent's YAML configuration (docs/configuration.md)\n"
		"  -h, --help          this help\n"
		"  -V, --version       print the version\n"
		"\n"
		"SIGTERM or SIGINT stop the agent; a leader first hands leadership to\n"
		"another voter. A second signal stops at once.\n");
}

int main(int argc, char **argv)
{
	static const struct option opts[] = {
		{"config", required_argument, NULL, 'c'},
		{"help", no_argument, NULL, 'h'},
		{"version", no_argument, NULL, 'V'},
		{NULL, 0, NULL, 0},
	};
	const char *config = NULL;
	char errmsg[1024] = "";
	int c, rv;

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
		case 'h':
			usage(stdout);
			return 0;
		case 'V':
			printf("canopy-agent %s\n", CANOPY_VERSION);
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
	rv = agent_run(config, errmsg, sizeof errmsg);
	if (rv != 0)
		fprintf(stderr, "canopy-agent: %s\n", errmsg);
	return rv;
}
