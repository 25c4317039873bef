/*
 * sync/engine/stages.h -- where a change's export time goes, stage by stage,
 * for /metrics (canopy_export_stage_seconds) and bench/run.sh's "latency by
 * stage" rows.
 *
 * Every change taken from the source (an entry or a delete; not a cookie or
 * a refresh marker) is observed once per stage it went
 * through, with the time its batch spent there (a batch's stage is shared by
 * all of its changes, so the figures weigh a batch by its size, as a reader
 * of per-change latency does):
 *
 *   queue    received from the source -> taken into a batch (waiting for the
 *            batch before it)
 *   plan     taken -> the batch's intent proposed (mapping, diff, protection)
 *   intent   intent proposed -> committed (one Raft round: the leader's and
 *            a majority's disk writes)
 *   target   intent committed -> the batch's last answer (upserts, members,
 *            deletes)
 *   commit   the batch's entry proposed -> applied on the leader
 *   total    received -> applied
 *
 * Process-wide figures, like sync/target/target_metrics.h: every leadership
 * adds to the same counters. Loop thread only, no lock.
 */
#ifndef CANOPY_SYNC_ENGINE_STAGES_H
#define CANOPY_SYNC_ENGINE_STAGES_H

#include <stdint.h>

enum export_stage {
	EXPORT_STAGE_QUEUE,
	EXPORT_STAGE_PLAN,
	EXPORT_STAGE_INTENT,
	EXPORT_STAGE_TARGET,
	EXPORT_STAGE_COMMIT,
	EXPORT_STAGE_TOTAL,
	EXPORT_STAGES
};

/* "queue", "plan", "intent", "target", "commit", "total" */
const char *export_stage_name(enum export_stage s);

/* Upper bounds of the buckets in seconds, finer than Prometheus's defaults
 * at the low end: the floor of a change is a few milliseconds. */
#define EXPORT_STAGE_BUCKETS 16
extern const double export_stage_bounds[EXPORT_STAGE_BUCKETS];

struct export_stage_hist {
	uint64_t bucket[EXPORT_STAGE_BUCKETS + 1]; /* per bucket, not cumulative; the last: +Inf */
	uint64_t count;
	double sum; /* seconds */
};

struct export_stages {
	struct export_stage_hist stage[EXPORT_STAGES];
};

const struct export_stages *export_stages_get(void);

/* `n` changes spent `ns` nanoseconds in stage `s`. */
void export_stage_observe(enum export_stage s, uint64_t ns, uint64_t n);

#endif /* CANOPY_SYNC_ENGINE_STAGES_H */
