/* agent/ctl_main.c -- canopyctl's entry point (the work is in ctl.c). */
#include <stdio.h>
#include <string.h>

#include "agent/ctl.h"
#include <canopy_commit.h> /* CANOPY_COMMIT, generated in the build tree (cmake/git_commit.cmake) */

/*
 * --version answers here, before ctl_main(), because the commit is known to
 * the executable's build only (the library is shared with the tests).
 * `canopyctl --version [--json]`: the text line, or {"version","commit"}.
 */
static int print_version(int argc, char **argv)
{
	int i, version = 0, json = 0;

	for (i = 1; i < argc; i++) {
		if (strcmp(argv[i], "--version") == 0 || strcmp(argv[i], "-V") == 0)
			version = 1;
		else if (strcmp(argv[i], "--json") == 0 || strcmp(argv[i], "-j") == 0)
			json = 1;
		else
			return -1; /* anything else: ctl_main() judges it */
	}
	if (!version)
		return -1;
	if (json)
		printf("{\"version\":\"%s\",\"commit\":\"%s\"}\n", CANOPY_VERSION, CANOPY_COMMIT);
	else
		printf("canopyctl %s (commit %s)\n", CANOPY_VERSION, CANOPY_COMMIT);
	return 0;
}

int main(int argc, char **argv)
{
	if (print_version(argc, argv) == 0)
		return 0;
	return ctl_main(argc, argv, stdout, stderr);
}
