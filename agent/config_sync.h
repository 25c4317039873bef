/*
 * agent/config_sync.h -- the sync sections of a configuration: which keys
 * the cluster shares, and how a node's own file and the shared text combine.
 *
 * The replicated configuration (agent/replconf.h) holds only what must be
 * the same on every node for the export to mean the same thing whoever
 * leads (docs/configuration.md, "Replicated configuration"):
 *
 *   source.users, source.groups     the scope (base, filter, exclude,
 *                                   member_of, member_attribute, ...)
 *   target.kind, target.url, target.timeout_ms, target.max_attempts,
 *   target.max_in_flight, target.bulk, target.external_id_prefix
 *   mapping                         the whole section
 *   safety                          the whole section
 *
 * Everything else stays in each node's file: node.*, cluster.*, control.*,
 * log.*, how to reach and authenticate to the source (source.kind, url,
 * bind_dn, password_file, tls, sasl, poll_s, notify, reconcile_s) and the
 * target's credentials and trust (target.token_file, target.tls,
 * target.auth). Secret values are never replicated, and neither are the
 * paths of secret files: each host keeps its own.
 *
 * Texts are YAML as agent/config.c reads it. The functions here only select
 * and combine keys; whether the result is a valid configuration is for
 * config_load_text() to say. Scalars keep their style (plain or quoted),
 * since config.c reads integers, booleans and null only from plain scalars.
 */
#ifndef CANOPY_AGENT_CONFIG_SYNC_H
#define CANOPY_AGENT_CONFIG_SYNC_H

#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>

/* Nodes copied from one text at most (aliases can make a small text stand
 * for a large tree: refused past this). */
#define CONFIG_SYNC_MAX_NODES 20000

/*
 * The replicated keys of the configuration text `buf`, as canonical YAML
 * (block style, keys in the order of the text): *out is malloc'd and
 * NUL-terminated ("{}\n" when it has none). *has_node (may be NULL) says
 * whether the text has a top-level `node` key, i.e. is a whole agent
 * configuration rather than its sync sections alone. Returns 0, or -EINVAL
 * with the cause (not YAML, not a mapping, too large) in errmsg.
 */
int config_sync_extract(const char *buf, size_t len, char **out, bool *has_node, char *errmsg, size_t errlen);

/*
 * A node's configuration with its replicated keys replaced by `repl`'s: the
 * keys of `local` that are not replicated, plus every replicated key of
 * `repl` (a replicated key `repl` lacks is absent, i.e. defaulted). *out is
 * malloc'd YAML. Returns 0, or -EINVAL with the cause in errmsg.
 */
int config_sync_merge(const char *local, size_t llen, const char *repl, size_t rlen, char **out, char *errmsg,
		      size_t errlen);

/*
 * What changes from `old` to `new` (both YAML): a JSON array of
 * {"key": "mapping.user.displayName", "change": "added|changed|removed",
 * "old": "...", "new": "..."} (old/new absent where they do not apply),
 * one per leaf in the order of the texts: removed and changed first as in
 * `old`, then added as in `new`. A sequence item's key ends in "[i]". NULL
 * with errmsg when either text is not YAML.
 */
json_t *config_sync_diff(const char *old, size_t olen, const char *new, size_t nlen, char *errmsg, size_t errlen);

/* Whether a change of `diff` can change which objects are in scope or what
 * is written for them (anything outside safety.*): the change is then
 * applied as a full resync. */
bool config_sync_needs_resync(const json_t *diff);

/* A one-line summary of `diff` for history and logs: up to three keys with
 * their change, then "and N more" (malloc'd). */
char *config_sync_summary(const json_t *diff);

#endif /* CANOPY_AGENT_CONFIG_SYNC_H */
