/*
 * agent/ctl.h -- canopyctl, the operator's command line.
 *
 *     canopyctl [--server HOST:PORT] COMMAND [--json]
 *
 * It talks to any agent's control API (node.control_address); the server
 * defaults to $CANOPY_SERVER, then 127.0.0.1:8001. Exit code 0 on success,
 * non-zero with a one-line error on stderr otherwise (docs/configuration.md and README.md: the CLI contract).
 */
#ifndef CANOPY_AGENT_CTL_H
#define CANOPY_AGENT_CTL_H

#include <stdio.h>

/* Run canopyctl with its argv; output to `out`, errors to `err`. Returns the
 * exit code. */
int ctl_main(int argc, char **argv, FILE *out, FILE *err);

#endif /* CANOPY_AGENT_CTL_H */
