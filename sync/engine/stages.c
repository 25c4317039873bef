/*
 * sync/engine/stages.c -- the export's per-stage histograms (stages.h).
 */
#include "sync/engine/stages.h"

const double export_stage_bounds[EXPORT_STAGE_BUCKETS] = {
	0.0005, 0.001, 0.002, 0.005, 0.01, 0.015, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30,
};

static struct export_stages figures;

const char *export_stage_name(enum export_stage s)
{
	switch (s) {
	case EXPORT_STAGE_QUEUE:
		return "queue";
	case EXPORT_STAGE_PLAN:
		return "plan";
	case EXPORT_STAGE_INTENT:
		return "intent";
	case EXPORT_STAGE_TARGET:
		return "target";
	case EXPORT_STAGE_COMMIT:
		return "commit";
	case EXPORT_STAGE_TOTAL:
		return "total";
	case EXPORT_STAGES:
		break;
	}
	return "unknown";
}

const struct export_stages *export_stages_get(void)
{
	return &figures;
}

void export_stage_observe(enum export_stage s, uint64_t ns, uint64_t n)
{
	struct export_stage_hist *h;
	double sec = (double)ns / 1e9;
	unsigned i;

	if (s >= EXPORT_STAGES || n == 0)
		return;
	h = &figures.stage[s];
	for (i = 0; i < EXPORT_STAGE_BUCKETS && sec > export_stage_bounds[i]; i++)
		;
	h->bucket[i] += n;
	h->count += n;
	h->sum += sec * (double)n;
}
