/*
 * agent/main.c -- canopy-agent: the daemon.
 */
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "agent/agent.h"
#include "common/xalloc.h"
#include <canopy_commit.h> /* CANOPY_COMMIT, generated in the build tree (cmake/git_commit.cmake) */

static void usage(FILE *f)
{
	fprintf(f,
		"usage: canopy-agent --config FILE [--check-config]\n"
		"       canopy-agent --config FILE --recover-members ID@HOST:PORT[,...] [--yes]\n"
		"       canopy-agent --config FILE --backup DIR\n"
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
		"      --recover-members ID@HOST:PORT[,...]\n"
		"                      with the agent stopped, after the cluster lost its\n"
		"                      majority for good: show this data dir's latest\n"
		"                      configuration and the new one (this node, at its\n"
		"                      node.raft_address, and any others listed, all\n"
		"                      voters), and exit; refuses while the agent runs\n"
		"                      (docs/operations.md)\n"
		"      --yes           with --recover-members: write the new configuration\n"
		"                      (libraft's raft_recover), then exit\n"
		"      --backup DIR    with the agent stopped: copy its data dir into DIR\n"
		"                      (new or empty), check the copy, and exit; refuses\n"
		"                      while the agent runs\n"
		"  -h, --help          this help\n"
		"  -V, --version       print the version and the git commit of the build\n"
		"\n"
		"SIGTERM or SIGINT stop the agent; a leader first hands leadership to\n"
		"another voter. A second signal stops at once. SIGHUP re-reads the\n"
		"cluster.tls files.\n"
		"\n"
		"Exit status: 0 after a clean stop (or a config that checks OK, or a\n"
		"recovery or backup written), 78 when the configuration is refused, 1 when\n"
		"start-up fails otherwise, the agent stops on an error, or a recovery or\n"
		"backup is refused (a recovery also when not confirmed with --yes), 2 for\n"
		"a usage error.\n");
}

int main(int argc, char **argv)
{
	enum { OPT_CHECK_CONFIG = 256, OPT_RECOVER_MEMBERS, OPT_YES, OPT_BACKUP };
	static const struct option opts[] = {
		{"config", required_argument, NULL, 'c'},
		{"check-config", no_argument, NULL, OPT_CHECK_CONFIG},
		{"recover-members", required_argument, NULL, OPT_RECOVER_MEMBERS},
		{"yes", no_argument, NULL, OPT_YES},
		{"backup", required_argument, NULL, OPT_BACKUP},
		{"help", no_argument, NULL, 'h'},
		{"version", no_argument, NULL, 'V'},
		{NULL, 0, NULL, 0},
	};
	const char *config = NULL, *recover = NULL, *backup = NULL;
	char errmsg[1024] = "";
	int c, rv, check = 0, yes = 0;

	/* libldap reads ldap.conf, ~/.ldaprc and the LDAP* / LDAPTLS_* variables
	 * (LDAPTLS_REQCERT=never, say) once, at its first call; LDAPNOINIT
	 * turns that off, so only the configuration decides how the directory
	 * is verified (sync/source/ldap_tls.h sets every TLS option per handle
	 * too). Before any thread or libldap call. */
	setenv("LDAPNOINIT", "1", 1);
	xalloc_setup(); /* large blocks back to the system when freed (common/xalloc.h) */

	while ((c = getopt_long(argc, argv, "c:hV", opts, NULL)) != -1) {
		switch (c) {
		case 'c':
			config = optarg;
			break;
		case OPT_CHECK_CONFIG:
			check = 1;
			break;
		case OPT_RECOVER_MEMBERS:
			recover = optarg;
			break;
		case OPT_YES:
			yes = 1;
			break;
		case OPT_BACKUP:
			backup = optarg;
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
	if ((yes && recover == NULL) || (recover != NULL) + (backup != NULL) + check > 1) {
		fprintf(stderr, "canopy-agent: %s\n",
			yes && recover == NULL ? "--yes goes with --recover-members"
					       : "--recover-members, --backup and --check-config exclude each other");
		usage(stderr);
		return 2;
	}
	if (backup != NULL) {
		rv = agent_backup(config, backup, errmsg, sizeof errmsg);
		if (rv != 0)
			fprintf(stderr, "canopy-agent: %s\n", errmsg);
		return rv;
	}
	if (recover != NULL) {
		rv = agent_recover(config, recover, yes, errmsg, sizeof errmsg);
		if (rv != 0)
			fprintf(stderr, "canopy-agent: %s\n", errmsg);
		return rv;
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
