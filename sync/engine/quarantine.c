/*
 * sync/engine/quarantine.c -- why this leader cannot export, said once.
 *
 * docs/architecture.md, "The engine": a leader that cannot read its source,
 * whose target refuses its credentials or fails, or that holds staged
 * deletes, reports state quarantined with a reason code; it logs the reason
 * once when it starts and once when it clears, and replicates it ("q:") so
 * that every node's status says it, not only the leader's -- with the
 * details an operator acts on ("q:info"): since when, the last failing
 * request, when the leader checks again. engine_resume() checks now.
 */
#include <errno.h>
#include <jansson.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

#include "common/xalloc.h"
#include "sync/engine/internal.h"
#include "sync/text_json.h"

/*
 * "q:info": the details, as JSON, under a key of their own next to "q:". An
 * older node reads "q:" as "reason\ndetail" (quarantine_replicated) and knows
 * no other "q" key, so it keeps reading "q:" unchanged and ignores this one.
 * Written with "q:" and whenever the details move (a check, a failing
 * request: at most one entry per check of the target), removed with it.
 */
static const char qkey[] = {OBJECT_KEY_QUARANTINE, ':'};
static const char qinfo_key[] = {OBJECT_KEY_QUARANTINE, ':', 'i', 'n', 'f', 'o'};
#define QINFO_MAX ENGINE_QUARANTINE_INFO_MAX /* what we write is far smaller */

static int64_t wall_ms(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_REALTIME, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

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

static bool target_reason(enum engine_quarantine q)
{
	return q == ENGINE_Q_TARGET_UNREACHABLE || q == ENGINE_Q_TARGET_UNAUTHORIZED ||
	       q == ENGINE_Q_TARGET_SERVER_ERRORS;
}

static bool source_reason(enum engine_quarantine q)
{
	return q == ENGINE_Q_SOURCE_UNREACHABLE || q == ENGINE_Q_SOURCE_UNAUTHORIZED || q == ENGINE_Q_SOURCE_ERROR;
}

static void note_since(struct engine *e, enum engine_quarantine q, const char *reason, const void *cur,
		       size_t curlen);

void quarantine_info(struct session *s, enum engine_quarantine q, struct engine_quarantine_info *qi)
{
	struct engine *e = s->e;
	struct target_stats ts;

	const void *cur;
	size_t curlen;
	bool have = state_get(e->state, qkey, sizeof qkey, &cur, &curlen);

	memset(qi, 0, sizeof *qi);
	/* status may ask before the tick noticed a new reason */
	note_since(e, q, engine_quarantine_name(q), have ? cur : NULL, have ? curlen : 0);
	qi->since_ms = e->since_ms;
	if (target_reason(q) && s->start_problem == ENGINE_Q_NONE && s->tgt != NULL) {
		e->target->stats(s->tgt, &ts);
		qi->next_retry_at_ms = ts.next_retry_at_ms;
		qi->checked_at_ms = ts.checked_at_ms;
		if (ts.last_fail_method[0]) {
			snprintf(qi->side, sizeof qi->side, "target");
			snprintf(qi->method, sizeof qi->method, "%s", ts.last_fail_method);
			snprintf(qi->path, sizeof qi->path, "%s", ts.last_fail_path);
			qi->status = ts.last_fail_status;
			qi->at_ms = ts.last_fail_at_ms;
		}
	}
	if (source_reason(q) && s->start_problem == ENGINE_Q_NONE && s->src != NULL) {
		struct source_status ss;
		e->source->status(s->src, &ss);
		qi->next_retry_at_ms = ss.next_retry_at_ms;
		qi->checked_at_ms = ss.checked_at_ms;
		if (ss.last_op[0]) {
			snprintf(qi->side, sizeof qi->side, "source");
			snprintf(qi->method, sizeof qi->method, "%s", ss.last_op);
			qi->status = ss.last_code;
			qi->at_ms = ss.checked_at_ms;
		}
	}
}

/* The details as "q:info" holds them. Returns the length (< size). The path
 * comes from the target's requests, so it goes through text_json(). */
static size_t info_encode(const struct engine_quarantine_info *qi, char *buf, size_t size)
{
	json_t *o = xcheck(json_pack("{s:I,s:I,s:I,s:s,s:s,s:o,s:I,s:I}", "since", (json_int_t)qi->since_ms,
				     "next_retry_at", (json_int_t)qi->next_retry_at_ms, "checked_at",
				     (json_int_t)qi->checked_at_ms, "side", qi->side, "method", qi->method, "path",
				     text_json(qi->path), "status", (json_int_t)qi->status, "at",
				     (json_int_t)qi->at_ms));
	char *d = xcheck(json_dumps(o, JSON_COMPACT));
	size_t n = strlen(d);

	json_decref(o);
	if (n >= size)
		n = 0; /* cannot happen with the fields' bounds: write nothing rather than a cut value */
	memcpy(buf, d, n);
	buf[n] = '\0';
	free(d);
	return n;
}

int engine_quarantine_info_decode(const void *v, size_t len, struct engine_quarantine_info *qi)
{
	json_int_t since = 0, next = 0, checked = 0, status = 0, at = 0;
	const char *side = NULL, *method = NULL, *path = NULL;
	json_t *o;
	int rc = -EINVAL;

	memset(qi, 0, sizeof *qi);
	if (len == 0 || len > ENGINE_QUARANTINE_INFO_MAX)
		return -EINVAL;
	o = json_loadb(v, len, 0, NULL);
	if (o != NULL && json_unpack(o, "{s?I,s?I,s?I,s?s,s?s,s?s,s?I,s?I}", "since", &since, "next_retry_at", &next,
				     "checked_at", &checked, "side", &side, "method", &method, "path", &path,
				     "status", &status, "at", &at) == 0) {
		qi->since_ms = since;
		qi->next_retry_at_ms = next;
		qi->checked_at_ms = checked;
		snprintf(qi->side, sizeof qi->side, "%s", side ? side : "");
		snprintf(qi->method, sizeof qi->method, "%s", method ? method : "");
		snprintf(qi->path, sizeof qi->path, "%s", path ? path : "");
		qi->status = (long)status;
		qi->at_ms = at;
		rc = 0;
	}
	json_decref(o);
	return rc;
}

bool quarantine_replicated_info(struct engine *e, struct engine_quarantine_info *qi)
{
	const void *v;
	size_t vlen;

	memset(qi, 0, sizeof *qi);
	return state_get(e->state, qinfo_key, sizeof qinfo_key, &v, &vlen) &&
	       engine_quarantine_info_decode(v, vlen, qi) == 0;
}

/* since_ms follows the reason. The replicated one wins while it names the
 * same reason: a new leader (or this node leading again after another did)
 * shows the cluster's "since", not when it noticed. */
static void note_since(struct engine *e, enum engine_quarantine q, const char *reason, const void *cur,
		       size_t curlen)
{
	struct engine_quarantine_info old;
	size_t rl = strlen(reason);

	if (q != ENGINE_Q_NONE && cur != NULL && curlen >= rl + 1 && memcmp(cur, reason, rl) == 0 &&
	    ((const char *)cur)[rl] == '\n' && quarantine_replicated_info(e, &old) && old.since_ms > 0) {
		e->since_reason = q;
		e->since_ms = old.since_ms;
		return;
	}
	if (q == e->since_reason)
		return;
	e->since_reason = q;
	e->since_ms = q != ENGINE_Q_NONE ? wall_ms() : 0;
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
/*
 * A leader that has not heard from its target (or source) yet reads "no
 * quarantine" from quarantine_of(): nothing failed because nothing was
 * tried. Clearing the replicated reason then would make every change of
 * leader end the quarantine for a moment -- a cleared line, a new entry, a
 * new "since" -- while the cause is the same. So a replicated target_* or
 * source_* reason is cleared only on evidence: the target answered a
 * request (the ServiceProviderConfig fetch at start is one), or the source
 * reported that it reads.
 */
static bool clear_on_evidence(struct session *s, const void *cur, size_t curlen)
{
	struct engine *e = s->e;

	if (curlen >= 7 && memcmp(cur, "target_", 7) == 0 && s->tgt != NULL) {
		struct target_stats ts;
		e->target->stats(s->tgt, &ts);
		return ts.requests > 0;
	}
	if (curlen >= 7 && memcmp(cur, "source_", 7) == 0 && s->src != NULL) {
		struct source_status ss;
		e->source->status(s->src, &ss);
		return ss.reported && ss.connected;
	}
	return true;
}

void quarantine_update(struct session *s)
{
	struct engine *e = s->e;
	char detail[300], val[400], info[QINFO_MAX];
	enum engine_quarantine q = quarantine_of(s, detail, sizeof detail);
	const char *reason = engine_quarantine_name(q);
	size_t rl = strlen(reason), curlen, ilen = 0, oldlen;
	const void *cur, *oldinfo;
	bool have = state_get(e->state, qkey, sizeof qkey, &cur, &curlen);
	bool have_info = state_get(e->state, qinfo_key, sizeof qinfo_key, &oldinfo, &oldlen);
	bool reason_current, info_current;
	struct engine_quarantine_info qi;
	struct state_batch sb;
	int n;

	note_since(e, q, reason, have ? cur : NULL, have ? curlen : 0);
	if (s->q_committing || !e->log->may_write(e->log))
		return;
	if (q == ENGINE_Q_NONE && have && !clear_on_evidence(s, cur, curlen))
		return;
	n = q != ENGINE_Q_NONE ? snprintf(val, sizeof val, "%s\n%s", reason, detail) : 0;
	if (n < 0 || (size_t)n >= sizeof val)
		n = (int)sizeof val - 1;
	/* the replicated reason is current (the detail may drift) */
	reason_current = q != ENGINE_Q_NONE ? have && curlen >= rl + 1 && memcmp(cur, reason, rl) == 0 &&
						      ((const char *)cur)[rl] == '\n'
					    : !have;
	if (q != ENGINE_Q_NONE) {
		quarantine_info(s, q, &qi);
		ilen = info_encode(&qi, info, sizeof info);
		info_current = have_info && oldlen == ilen && memcmp(oldinfo, info, ilen) == 0;
	} else {
		info_current = !have_info;
	}
	if (reason_current && info_current)
		return;
	/* before proposing: the replicated value may be applied at once */
	if (!reason_current)
		log_transition(e, q, reason, detail, have ? cur : NULL, curlen);
	state_batch_init(&sb);
	if (!reason_current && q != ENGINE_Q_NONE)
		state_batch_put(&sb, qkey, sizeof qkey, val, (size_t)n);
	else if (!reason_current)
		state_batch_del(&sb, qkey, sizeof qkey);
	if (!info_current && q != ENGINE_Q_NONE)
		state_batch_put(&sb, qinfo_key, sizeof qinfo_key, info, ilen);
	else if (!info_current)
		state_batch_del(&sb, qinfo_key, sizeof qinfo_key);
	if (e->log->propose(e->log, &sb, on_q_committed, s) == 0) {
		s->q_committing = true;
		s->open++;
	}
	state_batch_close(&sb);
}

int engine_resume(struct engine *e, char *reason, size_t rlen, char *errmsg, size_t errlen)
{
	struct session *s = e->s;
	char detail[300];
	enum engine_quarantine q;

	reason[0] = '\0';
	if (s == NULL || s->stopping || !e->log->ready(e->log)) {
		snprintf(errmsg, errlen, "this node is not exporting (not the leader)");
		return -EAGAIN;
	}
	q = quarantine_of(s, detail, sizeof detail);
	snprintf(reason, rlen, "%s", engine_quarantine_name(q));
	if (q == ENGINE_Q_NONE) {
		snprintf(errmsg, errlen, "sync is not quarantined: nothing to resume");
		return -EALREADY;
	}
	if (q == ENGINE_Q_DELETE_THRESHOLD) {
		snprintf(errmsg, errlen, "sync is quarantined for delete_threshold: only an operator ends it "
			 "(canopyctl deletes list, then approve or reject)");
		return -EPERM;
	}
	if (s->start_problem != ENGINE_Q_NONE) {
		snprintf(errmsg, errlen, "sync is quarantined for %s: %s; fix the configuration, then restart the "
			 "leader's agent (or move leadership: canopyctl cluster transfer)", reason, detail);
		return -EPERM;
	}
	/* the backoff of the retry set goes too: all of it is due now */
	s->retry_now = s->retry_due.count > 0;
	if (target_reason(q) && s->tgt != NULL && e->target->retry_now != NULL)
		e->target->retry_now(s->tgt);
	if (source_reason(q) && s->src != NULL && e->source->retry_now != NULL)
		e->source->retry_now(s->src);
	engine_log(e, L_INFO, "sync resume asked by an operator", reason);
	session_pump(s);
	return 0;
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
