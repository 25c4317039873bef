/*
 * sync/engine/engine.c -- the engine's public API (sync/engine.h): set-up and
 * shut-down, leadership, operator decisions, status.
 *
 * The rest of sync/engine/ follows one change through the data path
 * (internal.h lists the files in that order).
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "sync/engine/internal.h"

const char *engine_nested_groups_name(enum engine_nested_groups n)
{
	switch (n) {
	case ENGINE_NESTED_NATIVE:
		return "native";
	case ENGINE_NESTED_FLATTEN:
		return "flatten";
	case ENGINE_NESTED_SKIP:
		return "skip";
	}
	return "unknown";
}

const char *engine_state_name(enum engine_state s)
{
	switch (s) {
	case ENGINE_DISABLED:
		return "disabled";
	case ENGINE_STANDBY:
		return "standby";
	case ENGINE_STARTING:
		return "starting";
	case ENGINE_REFRESHING:
		return "refreshing";
	case ENGINE_SYNCING:
		return "syncing";
	case ENGINE_IDLE:
		return "idle";
	case ENGINE_QUARANTINED:
		return "quarantined";
	case ENGINE_STOPPING:
		return "stopping";
	}
	return "disabled";
}

static void ports_close(const struct engine_ports *p)
{
	p->source->close(p->source);
	p->target->close(p->target);
	p->log->close(p->log);
}

static void add_attr(void *ctx, const char *name)
{
	struct engine *e = ctx;

	for (size_t i = 0; i < e->n_attrs; i++)
		if (strcasecmp(e->attrs[i], name) == 0)
			return;
	engine_strv_push(&e->attrs, &e->n_attrs, name);
}

int engine_init(struct engine **out, uv_loop_t *loop, const struct engine_ports *ports, struct state *state,
		const struct engine_config *cfg, char *errmsg, size_t errlen)
{
	struct engine *e = xcalloc(1, sizeof *e);
	int rv;

	e->loop = loop;
	e->state = state;
	e->source = ports->source;
	e->target = ports->target;
	e->log = ports->log;
	e->cfg = *cfg;
	e->rng = uv_hrtime() ^ ((uint64_t)cfg->node_id << 32) ^ 0x9e3779b97f4a7c15ULL;
	rv = provlog_open(&e->provlog, cfg->data_dir, errmsg, errlen);
	if (rv != 0)
		goto err_after_alloc;
	if (cfg->provlog_max_bytes > 0)
		provlog_set_rotation(&e->provlog, cfg->provlog_max_bytes,
				     cfg->provlog_keep > 0 ? cfg->provlog_keep : PROVLOG_DEFAULT_KEEP);
	uv_timer_init(loop, &e->relead);
	e->relead.data = e;
	lastwrite_init(&e->lastwrite, ENGINE_ATTRS_MAX);
	strmap_init(&e->nested_told, NULL);
	/* Request only what the mappings read, plus the member attribute. */
	if (cfg->user_map)
		mapping_attributes(cfg->user_map, add_attr, e);
	if (cfg->group_map)
		mapping_attributes(cfg->group_map, add_attr, e);
	add_attr(e, cfg->member_attr ? cfg->member_attr : "member");
	/* memberUid-style groups: the user attribute their values name */
	if (cfg->member_value && cfg->member_value[0] && strcasecmp(cfg->member_value, "dn") != 0)
		add_attr(e, cfg->member_value);
	*out = e;
	return 0;

err_after_alloc:
	free(e);
	ports_close(ports);
	return rv;
}

static void on_relead_closed(uv_handle_t *h)
{
	struct engine *e = h->data;
	void (*done)(void *) = e->close_done;
	void *data = e->close_data;
	struct engine_ports ports = {e->source, e->target, e->log};

	provlog_close(&e->provlog);
	lastwrite_close(&e->lastwrite);
	strmap_clear(&e->nested_told);
	engine_strv_free(e->attrs, e->n_attrs);
	free(e);
	ports_close(&ports);
	if (done)
		done(data);
}

/* Every session is gone: release the rest. */
void engine_release(struct engine *e)
{
	uv_timer_stop(&e->relead);
	uv_close((uv_handle_t *)&e->relead, on_relead_closed);
}

void engine_release_if_idle(struct engine *e)
{
	if (e->closing && e->sessions == 0 && e->jobs == 0)
		engine_release(e);
}

void engine_close(struct engine *e, void (*done)(void *data), void *data)
{
	e->closing = true;
	e->close_done = done;
	e->close_data = data;
	engine_follow(e);
	engine_release_if_idle(e);
}

void engine_lead(struct engine *e)
{
	if (e->s != NULL || e->closing)
		return;
	session_start(e);
}

void engine_follow(struct engine *e)
{
	session_stop(e);
}

int engine_deletes_decide(struct engine *e, bool approve, char *errmsg, size_t errlen)
{
	if (e->s == NULL) {
		snprintf(errmsg, errlen, "this node is not exporting (not the leader)");
		return -EAGAIN;
	}
	if (engine_staged_count(e->state) == 0) {
		snprintf(errmsg, errlen, "no staged deletes");
		return -ENOENT;
	}
	e->s->pending_decision = approve ? DECISION_APPROVE : DECISION_REJECT;
	session_pump(e->s);
	return 0;
}

void engine_stats(struct engine *e, struct engine_stats *out)
{
	struct session *s = e->s;
	struct source_status ss;
	enum engine_quarantine q;

	*out = e->st;
	out->pending_deletes = engine_staged_count(e->state);
	out->quarantine_reason[0] = out->quarantine_detail[0] = '\0';
	out->repair_pending = s != NULL ? s->in_doubt.count : 0;
	if (s == NULL) {
		out->state = e->closing ? ENGINE_STOPPING : ENGINE_STANDBY;
		/* the leader's quarantine is replicated: every node says it */
		if (!e->closing && quarantine_replicated(e, out->quarantine_reason, sizeof out->quarantine_reason,
							 out->quarantine_detail, sizeof out->quarantine_detail)) {
			out->state = ENGINE_QUARANTINED;
			quarantine_replicated_info(e, &out->quarantine);
		}
		return;
	}
	memset(&ss, 0, sizeof ss);
	if (s->src)
		e->source->status(s->src, &ss);
	out->source_connected = ss.connected;
	snprintf(out->source_message, sizeof out->source_message, "%s", ss.message);
	if (s->tgt)
		e->target->stats(s->tgt, &out->target);
	q = quarantine_of(s, out->quarantine_detail, sizeof out->quarantine_detail);
	if (q != ENGINE_Q_NONE) {
		out->state = ENGINE_QUARANTINED;
		snprintf(out->quarantine_reason, sizeof out->quarantine_reason, "%s", engine_quarantine_name(q));
		quarantine_info(s, q, &out->quarantine);
	} else if (s->plan.refreshing[OBJECT_USER] || s->plan.refreshing[OBJECT_GROUP]) {
		out->state = ENGINE_REFRESHING;
	} else if (s->batch || s->head || retryset_due_now(s)) {
		out->state = ENGINE_SYNCING;
	} else {
		out->state = s->src && ss.reported ? ENGINE_IDLE : ENGINE_STARTING;
	}
}

int engine_describe_cursor(struct engine *e, char *out, size_t outlen)
{
	size_t len;
	const void *c = state_cursor(e->state, &len);

	if (outlen > 0)
		out[0] = '\0';
	if (c == NULL || len == 0)
		return -ENOENT;
	if (e->source->describe_cursor == NULL)
		return -EINVAL;
	return e->source->describe_cursor(e->source, c, len, out, outlen);
}
