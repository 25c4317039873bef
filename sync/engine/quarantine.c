/*
 * sync/engine/quarantine.c -- why this leader cannot export, said once.
 *
 * docs/architecture.md, "The engine": a leader that cannot read its source,
 * whose target refuses its credentials or fails, or that holds staged
 * deletes, reports state quarantined with a reason code; it logs the reason
 * once when it starts and once when it clears, and replicates it ("q:") so
 * that every node's status says it, not only the leader's.
 */
#include <stdio.h>
#include <string.h>

#include "sync/engine/internal.h"

const char *engine_quarantine_name(enum engine_quarantine q)
{
	switch (q) {
	case ENGINE_Q_NONE:
		return "";
	case ENGINE_Q_SOURCE_UNREACHABLE:
		return "source_unreachable";
	case ENGINE_Q_SOURCE_UNAUTHORIZED:
		return "source_unauthorized";
	case ENGINE_Q_SOURCE_ERROR:
		return "source_error";
	case ENGINE_Q_TARGET_UNREACHABLE:
		return "target_unreachable";
	case ENGINE_Q_TARGET_UNAUTHORIZED:
		return "target_unauthorized";
	case ENGINE_Q_TARGET_SERVER_ERRORS:
		return "target_server_errors";
	case ENGINE_Q_TARGET_ERROR:
		return "target_error";
	case ENGINE_Q_DELETE_THRESHOLD:
		return "delete_threshold";
	case ENGINE_Q_TARGET_SCHEMA_MISMATCH:
		return "target_schema_mismatch";
	}
	return "";
}

static enum engine_quarantine of_source(enum source_problem p)
{
	switch (p) {
	case SOURCE_UNAUTHORIZED:
		return ENGINE_Q_SOURCE_UNAUTHORIZED;
	case SOURCE_FAILING:
		return ENGINE_Q_SOURCE_ERROR;
	case SOURCE_PROBLEM_NONE: /* disconnected without a reason: unreachable */
	case SOURCE_UNREACHABLE:
		break;
	}
	return ENGINE_Q_SOURCE_UNREACHABLE;
}

static enum engine_quarantine of_target(enum target_problem p)
{
	switch (p) {
	case TARGET_UNAUTHORIZED:
		return ENGINE_Q_TARGET_UNAUTHORIZED;
	case TARGET_SERVER_ERRORS:
		return ENGINE_Q_TARGET_SERVER_ERRORS;
	case TARGET_SCHEMA_MISMATCH: /* a configuration matter: no other node would do better */
		return ENGINE_Q_TARGET_SCHEMA_MISMATCH;
	case TARGET_PROBLEM_NONE:
	case TARGET_UNREACHABLE:
		break;
	}
	return ENGINE_Q_TARGET_UNREACHABLE;
}

enum engine_quarantine quarantine_of(struct session *s, char *detail, size_t len)
{
	struct engine *e = s->e;
	struct source_status ss;
	struct target_stats ts;

	detail[0] = '\0';
	if (s->start_problem != ENGINE_Q_NONE) {
		snprintf(detail, len, "%s", s->start_detail);
		return s->start_problem;
	}
	if (s->src != NULL) {
		e->source->status(s->src, &ss);
		if (ss.reported && !ss.connected) {
			snprintf(detail, len, "%s", ss.message);
			return of_source(ss.problem);
		}
	}
	if (s->tgt != NULL) {
		e->target->stats(s->tgt, &ts);
		if (ts.quarantined) {
			snprintf(detail, len, "%s", ts.quarantine_detail);
			return of_target(ts.problem);
		}
	}
	if (engine_staged_count(e->state) > 0) {
		snprintf(detail, len, "%llu deletes staged: canopyctl deletes list, then approve or reject",
			 (unsigned long long)engine_staged_count(e->state));
		return ENGINE_Q_DELETE_THRESHOLD;
	}
	return ENGINE_Q_NONE;
}

bool quarantine_replicated(struct engine *e, char *reason, size_t rlen, char *detail, size_t dlen)
{
	static const char qkey[] = {OBJECT_KEY_QUARANTINE, ':'};
	const void *q;
	size_t qlen;

	if (!state_get(e->state, qkey, sizeof qkey, &q, &qlen) || qlen == 0)
		return false;
	const char *nl = memchr(q, '\n', qlen);
	size_t rl = nl ? (size_t)(nl - (const char *)q) : qlen;
	snprintf(reason, rlen, "%.*s", (int)rl, (const char *)q);
	if (nl)
		snprintf(detail, dlen, "%.*s", (int)(qlen - rl - 1), nl + 1);
	return true;
}

static void on_q_committed(void *arg, int status)
{
	struct session *s = arg;

	(void)status;
	s->q_committing = false;
	session_release(s); /* only the last while stopping: the timers hold it open until then */
}

/*
 * The cluster's quarantine changes here, and only here: when a leader writes
 * or removes the replicated reason. So each entry and end (and a change of
 * reason) is one line for the whole cluster, whichever node leads, and the
 * log says what status shows. The entry names the reason and the detail.
 */
static void log_transition(struct engine *e, enum engine_quarantine q, const char *reason, const char *detail,
			   const void *cur, size_t curlen)
{
	char line[360];

	if (q != ENGINE_Q_NONE) {
		snprintf(line, sizeof line, "%s%s%s", reason, detail[0] ? ": " : "", detail);
		engine_log(e, L_WARN, "sync quarantined", line);
	} else {
		const char *nl = cur ? memchr(cur, '\n', curlen) : NULL;
		size_t wl = cur ? (nl ? (size_t)(nl - (const char *)cur) : curlen) : 0;
		snprintf(line, sizeof line, "%.*s", (int)(wl < sizeof line ? wl : sizeof line - 1),
			 cur ? (const char *)cur : "");
		engine_log(e, L_INFO, "sync quarantine cleared", line);
	}
	e->logged_reason = q;
}

/*
 * Say it once: log entering and leaving quarantine, and replicate the reason
 * ("q:" = "reason\ndetail") so that every node's status shows it.
 */
void quarantine_update(struct session *s)
{
	static const char qkey[] = {OBJECT_KEY_QUARANTINE, ':'};
	struct engine *e = s->e;
	char detail[300], val[400];
	enum engine_quarantine q = quarantine_of(s, detail, sizeof detail);
	const char *reason = engine_quarantine_name(q);
	size_t rl = strlen(reason), curlen;
	const void *cur;
	bool have = state_get(e->state, qkey, sizeof qkey, &cur, &curlen);
	struct state_batch sb;
	int n;

	if (s->q_committing || !e->log->may_write(e->log))
		return;
	n = q != ENGINE_Q_NONE ? snprintf(val, sizeof val, "%s\n%s", reason, detail) : 0;
	if (n < 0 || (size_t)n >= sizeof val)
		n = (int)sizeof val - 1;
	if (q != ENGINE_Q_NONE ? have && curlen >= rl + 1 && memcmp(cur, reason, rl) == 0 &&
					 ((const char *)cur)[rl] == '\n'
			       : !have)
		return; /* the replicated reason is current (the detail may drift) */
	/* before proposing: the replicated value may be applied at once */
	log_transition(e, q, reason, detail, have ? cur : NULL, curlen);
	state_batch_init(&sb);
	if (q != ENGINE_Q_NONE)
		state_batch_put(&sb, qkey, sizeof qkey, val, (size_t)n);
	else
		state_batch_del(&sb, qkey, sizeof qkey);
	if (e->log->propose(e->log, &sb, on_q_committed, s) == 0) {
		s->q_committing = true;
		s->open++;
	}
	state_batch_close(&sb);
}

/* Every RETRY_TICK_MS: notice the target's return, keep the quarantine
 * current, and let session_pump() see retries that came due. */
void quarantine_tick(uv_timer_t *t)
{
	struct session *s = t->data;
	struct engine *e = s->e;
	struct target_stats ts;

	if (s->stopping)
		return;
	if (s->tgt != NULL) {
		e->target->stats(s->tgt, &ts);
		if (s->target_was_quarantined && !ts.quarantined)
			s->retry_now = s->retry_due.count > 0; /* the target is back: all of it is due */
		s->target_was_quarantined = ts.quarantined;
	}
	quarantine_update(s);
	session_pump(s);
}
