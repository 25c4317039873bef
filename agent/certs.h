/*
 * agent/certs.h -- `canopyctl certs`: a small CA for the cluster's mutual TLS.
 *
 *     canopyctl certs init-ca DIR
 *         DIR/ca.pem (certificate, CN "canopy cluster CA", 10 years) and
 *         DIR/ca.key (EC P-256, mode 0600). DIR is created 0700; an existing
 *         ca.key is never overwritten.
 *     canopyctl certs issue --ca DIR --node ID --address IP|HOST --out PREFIX
 *                           [--days N] [--backdate DAYS]
 *         PREFIX.pem: a certificate for server ID, subject CN "node-<ID>" (the
 *         contract the raft transport checks, raft/transport_tls.h), SAN
 *         IP:ADDRESS (or DNS:HOST), extended key usage serverAuth + clientAuth
 *         (every member is both), signed by DIR's CA, valid N days (default
 *         825) from now - DAYS (default 0; for clock skew, or to make an
 *         expired certificate for a test). PREFIX.key: its EC P-256 key, mode
 *         0600. Both files are written whole (temporary file + rename), so an
 *         agent reloading on SIGHUP never reads half a file.
 *
 * The agent's configuration then names them:
 *     cluster: { tls: { ca: DIR/ca.pem, cert: PREFIX.pem, key: PREFIX.key } }
 * Any other CA works as well, as long as each node's certificate has subject
 * CN "node-<id>" and is usable for TLS client and server authentication.
 */
#ifndef CANOPY_AGENT_CERTS_H
#define CANOPY_AGENT_CERTS_H

#include <stdio.h>

/* argv[0] is "certs". Returns the exit code (0, 1 on failure, 2 on usage);
 * one line on `err` says what failed. */
int certs_main(int argc, char **argv, FILE *out, FILE *err);

#endif /* CANOPY_AGENT_CERTS_H */
