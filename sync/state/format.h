/*
 * sync/state/format.h -- which entry format versions the cluster can apply:
 * the version every member advertised, and the gate a leader writes through.
 *
 * Key namespace 'v' (see state.h for the others):
 *   "v:<id>"  member <id>'s advertised version, as the leader last recorded
 *             it from the member's own report (agent/versions.h):
 *             "<max_format> <version text>", e.g.
 *             "2 canopy-agent 0.1.0 (commit 1a2b3c4)". Text, so that an
 *             operator reading the state (and an older canopy, which keeps
 *             it as an opaque key) sees what it is.
 *
 * Why a gate (docs/architecture.md, "Rolling upgrades: formats and gating"):
 * every node applies every entry (Raft dissertation §3.5: the log is the
 * same on all of them), and a node refuses an entry whose version is newer
 * than its build understands (raft/fsm.h), stalling until it is upgraded. So
 * a leader may write format N only when every member of the configuration --
 * voters, standbys and spares alike, since all of them apply the log -- runs
 * a build that understands N. A member without a record is taken to be an
 * old build: format 1.
 */
#ifndef CANOPY_SYNC_STATE_FORMAT_H
#define CANOPY_SYNC_STATE_FORMAT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "sync/state/state.h"

#define FORMAT_KEY_PREFIX ((char)STATE_NS_VERSION)
#define FORMAT_TEXT_MAX 200 /* characters of a version text kept (reports are capped to it) */

/* A member's advertised version. */
struct format_record {
	uint16_t max_format;               /* newest entry format its build applies (>= 1) */
	char text[FORMAT_TEXT_MAX + 1];    /* what its `canopy-agent --version` prints */
};

/* "v:<id>" into out (at least 32 bytes); returns the key length. */
size_t format_key(uint64_t id, char *out, size_t len);

/* Parse a "v:" value. Returns 0, or -EINVAL with errmsg filled: no format
 * number, a format of 0 or over 65535, a text over FORMAT_TEXT_MAX or with
 * a control character. */
int format_record_parse(const void *val, size_t vlen, struct format_record *out, char *errmsg,
			size_t errlen);

/* Member `id`'s record from the state: true and *out filled, or false when
 * it has none (or a malformed one, which counts as none). */
bool format_record_get(const struct state *s, uint64_t id, struct format_record *out);

/* Whether the state already holds exactly this record for `id`. */
bool format_record_equal(const struct state *s, uint64_t id, const struct format_record *r);

/* Add "v:<id>" = r to a batch. */
void format_record_put(struct state_batch *b, uint64_t id, const struct format_record *r);

/* The newest format member `id` applies as the state knows it: its record's
 * max_format, or 1 without one. */
uint16_t format_member_max(const struct state *s, uint64_t id);

/*
 * True when every member in ids[0..n) advertised max_format >= `format`
 * (format 1 is always supported: every canopy applies it).
 */
bool state_format_supported(const struct state *s, const uint64_t *ids, unsigned n,
			    uint16_t format);

/*
 * The format a leader writes: the newest version up to `own_max` (its own
 * build's STATE_VERSION) that every member in ids[0..n) supports.
 */
uint16_t state_format_writable(const struct state *s, const uint64_t *ids, unsigned n,
			       uint16_t own_max);

#endif /* CANOPY_SYNC_STATE_FORMAT_H */
