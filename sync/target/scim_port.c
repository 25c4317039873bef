/*
 * sync/target/scim_port.c -- the SCIM target behind the target port
 * (target.h): each run is one scim_target (scim.h), each operation one
 * scim_op. The engine's neutral data becomes SCIM here: the disable PATCH,
 * member id arrays, and which failures are a refusal of the object itself.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/xalloc.h"
#include "sync/target/scim.h"
#include "sync/target/target_metrics.h"

static const char SCHEMA_USER[] = "urn:ietf:params:scim:schemas:core:2.0:User"; /* RFC 7643 §4.1 */
/* RFC 7643 §4.3: the enterprise extension, whose `manager` is a complex
 * attribute: {"value": the manager's id, "$ref", "displayName"}. */
static const char SCHEMA_ENTERPRISE[] = "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User";
static const char PATH_MANAGER[] = "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User:manager";

/* One target_op on its way through scim.c. */
struct call {
	struct scim_op op;
	struct target_op *top;
	target_done_cb cb;
	json_t *resource; /* TARGET_DISABLE, TARGET_MANAGER, an UPSERT with a manager: owned */
	json_t *patch_ops; /* TARGET_MANAGER: owned */
	json_t *add, *remove;
};

static struct scim_target *run_of(struct target_run *run)
{
	return (struct scim_target *)run;
}

/*
 * Whose failure is it? Only a refusal of this one object may leave it behind
 * (recorded as failed): a 4xx about its content (RFC 7644 §3.12), or an
 * operation scim.c refused to build. Everything else -- network, timeouts,
 * 5xx, 429, 401/403 (credentials), 404 (gone), 408, 409 (a conflict that may
 * clear; but not a name held outside this agent's external_id_prefix:
 * op->refused), an unusable answer -- is the target's or the network's, and the
 * engine keeps the object in its retry set until it goes through.
 */
static bool permanent(const struct scim_op *op)
{
	long h = op->http_status;

	if (op->status == -EINVAL || op->refused) /* refused: another domain's name (scim.h) */
		return true;
	if (op->status != -EPROTO)
		return false;
	return h >= 400 && h < 500 && h != 401 && h != 403 && h != 404 && h != 408 && h != 409 && h != 429;
}

static void call_free(struct call *c)
{
	json_decref(c->resource);
	json_decref(c->patch_ops);
	json_decref(c->add);
	json_decref(c->remove);
	free(c);
}

static void on_done(struct scim_op *op)
{
	struct call *c = op->data;
	struct target_op *top = c->top;
	target_done_cb cb = c->cb;

	top->status = op->status;
	top->permanent = op->status != 0 && permanent(op);
	snprintf(top->result_id, sizeof top->result_id, "%s", op->result_id);
	top->created = op->created;
	top->matched = op->matched;
	top->http_status = op->http_status;
	top->attempts = op->attempts;
	top->duration_ms = op->duration_ms;
	snprintf(top->error, sizeof top->error, "%s", op->error);
	top->values_refused = top->permanent && op->values_refused;
	top->n_add_done = op->add_done;
	top->n_remove_done = op->rm_done;
	top->taken = op->taken;
	target_metrics_error(top->action, top->status);
	call_free(c);
	cb(top);
}

static json_t *id_array(const char *const *ids, size_t n)
{
	json_t *a = xcheck(json_array());

	for (size_t i = 0; i < n; i++)
		if (json_array_append_new(a, xcheck(json_string(ids[i]))) != 0)
			xoom("json_array_append_new");
	return a;
}

/* The user's resource with its manager: {"value": id} in the enterprise
 * extension (RFC 7643 §4.3), the extension's URN in `schemas`. A copy: the
 * engine's resource is shared and hashed without the manager. */
static json_t *with_manager(const json_t *attrs, const char *manager_id)
{
	json_t *r = xcheck(json_deep_copy(attrs)), *ext = json_object_get(r, SCHEMA_ENTERPRISE);
	json_t *schemas = json_object_get(r, "schemas"), *v;
	bool listed = false;
	size_t i;

	if (!json_is_object(ext)) {
		ext = xcheck(json_object());
		if (json_object_set_new(r, SCHEMA_ENTERPRISE, ext) != 0)
			xoom("json_object_set_new");
	}
	if (json_object_set_new(ext, "manager", xcheck(json_pack("{s:s}", "value", manager_id))) != 0)
		xoom("json_object_set_new");
	if (!json_is_array(schemas)) {
		schemas = xcheck(json_pack("[s]", SCHEMA_USER));
		if (json_object_set_new(r, "schemas", schemas) != 0)
			xoom("json_object_set_new");
	}
	json_array_foreach(schemas, i, v)
		if (json_is_string(v) && strcmp(json_string_value(v), SCHEMA_ENTERPRISE) == 0)
			listed = true;
	if (!listed && json_array_append_new(schemas, xcheck(json_string(SCHEMA_ENTERPRISE))) != 0)
		xoom("json_array_append_new");
	return r;
}

static int p_submit(struct target_run *run, struct target_op *top, target_done_cb cb)
{
	struct call *c;
	int rv;

	if (run == NULL)
		return -ESHUTDOWN;
	c = xcalloc(1, sizeof *c);
	c->top = top;
	c->cb = cb;
	c->op.type = top->type;
	c->op.anchor = top->anchor;
	c->op.target_id = top->target_id;
	c->op.data = c;
	switch (top->action) {
	case TARGET_UPSERT:
		c->op.action = SCIM_UPSERT;
		c->op.resource = (json_t *)top->attrs; /* read only: scim.c copies what it sends */
		c->op.keep = top->keep && top->target_id != NULL;
		if (top->type == OBJECT_USER && top->manager_id != NULL && json_is_object(top->attrs)) {
			c->resource = with_manager(top->attrs, top->manager_id);
			c->op.resource = c->resource;
		}
		break;
	case TARGET_MANAGER:
		/* RFC 7644 §3.5.2.3 replace / §3.5.2.2 remove of the manager alone:
		 * the rest of the user is left as it is. A user gone counts as done. */
		if (top->type != OBJECT_USER || top->target_id == NULL) {
			call_free(c);
			return -EINVAL;
		}
		c->resource = xcheck(json_pack("{s:[s],s:s}", "schemas", SCHEMA_USER, "externalId", top->anchor));
		if (top->manager_id != NULL)
			c->patch_ops = xcheck(json_pack("[{s:s,s:s,s:{s:s}}]", "op", "replace", "path", PATH_MANAGER,
							"value", "value", top->manager_id));
		else
			c->patch_ops = xcheck(json_pack("[{s:s,s:s}]", "op", "remove", "path", PATH_MANAGER));
		c->op.action = SCIM_UPSERT;
		c->op.resource = c->resource;
		c->op.patch = true;
		c->op.patch_ops = c->patch_ops;
		break;
	case TARGET_DISABLE:
		/* RFC 7644 §3.5.2.3 replace of "active"; a user gone counts as done */
		c->resource = xcheck(json_pack("{s:[s],s:s,s:b}", "schemas", SCHEMA_USER, "externalId",
					       top->anchor, "active", 0));
		c->op.action = SCIM_UPSERT;
		c->op.resource = c->resource;
		c->op.patch = true;
		break;
	case TARGET_DELETE:
		c->op.action = SCIM_DELETE;
		break;
	case TARGET_TAKEN:
		c->op.action = SCIM_TAKEN;
		c->op.taken_attr = top->attr;
		c->op.taken_value = top->value;
		break;
	case TARGET_MEMBERS:
		c->add = id_array(top->add, top->n_add);
		c->remove = id_array(top->remove, top->n_remove);
		c->op.action = SCIM_MEMBERS;
		c->op.add = c->add;
		c->op.remove = c->remove;
		c->op.verify = top->verify || top->exact;
		c->op.exact = top->exact;
		break;
	default:
		call_free(c);
		return -EINVAL;
	}
	top->status = 0;
	top->permanent = top->created = top->matched = top->values_refused = top->taken = false;
	top->n_add_done = top->n_remove_done = 0;
	top->result_id[0] = top->error[0] = '\0';
	top->http_status = 0;
	top->attempts = 0;
	top->duration_ms = 0;
	rv = scim_submit(run_of(run), &c->op, on_done);
	if (rv != 0)
		call_free(c);
	return rv;
}

static int p_start(struct target *t, uv_loop_t *loop, struct target_run **out, char *errmsg, size_t errlen)
{
	struct scim_target *st = NULL;
	int rv = scim_target_start(&st, loop, t->impl, errmsg, errlen);

	*out = (struct target_run *)st;
	return rv;
}

static void p_set_fence(struct target_run *run, uint64_t node_id, uint64_t term, const char *cluster_id)
{
	scim_set_fence(run_of(run), node_id, term);
	scim_set_cluster(run_of(run), cluster_id);
}

static void p_cancel_all(struct target_run *run)
{
	scim_cancel_all(run_of(run));
}

static enum target_problem problem_of(const struct scim_stats *st)
{
	if (!st->quarantined)
		return TARGET_PROBLEM_NONE;
	if (strcmp(st->quarantine_reason, "unauthorized") == 0)
		return TARGET_UNAUTHORIZED;
	if (strcmp(st->quarantine_reason, "server_errors") == 0)
		return TARGET_SERVER_ERRORS;
	if (strcmp(st->quarantine_reason, "schema_mismatch") == 0)
		return TARGET_SCHEMA_MISMATCH;
	return TARGET_UNREACHABLE;
}

static void p_stats(struct target_run *run, struct target_stats *out)
{
	struct scim_stats st;

	scim_stats(run_of(run), &st);
	memset(out, 0, sizeof *out);
	out->requests = st.requests;
	out->retries = st.retries;
	out->failures = st.failures;
	out->quarantined = st.quarantined;
	out->problem = problem_of(&st);
	snprintf(out->quarantine_reason, sizeof out->quarantine_reason, "%s", st.quarantine_reason);
	snprintf(out->quarantine_detail, sizeof out->quarantine_detail, "%s", st.quarantine_detail);
	out->in_flight = st.in_flight;
	out->queued = st.queued;
	out->caps.known = st.discovered;
	out->caps.config_read = st.spc_known;
	out->caps.bulk = st.bulk_supported;
	out->caps.max_operations = st.bulk_max_operations;
	out->caps.max_payload = st.bulk_max_payload;
	out->caps.filter = st.filter_supported;
	out->caps.max_results = st.max_results;
	out->caps.patch = st.patch_supported;
	out->caps.etag = st.etag_supported;
	snprintf(out->caps.patch_style, sizeof out->caps.patch_style, "%s", scim_patch_style_name(st.patch_style));
	out->caps.schema_attributes = st.schema_attrs;
	snprintf(out->last_fail_method, sizeof out->last_fail_method, "%s", st.last_fail_method);
	snprintf(out->last_fail_path, sizeof out->last_fail_path, "%s", st.last_fail_path);
	out->last_fail_status = st.last_fail_status;
	out->last_fail_at_ms = st.last_fail_at_ms;
	out->next_retry_at_ms = st.quarantined ? st.next_probe_at_ms : 0;
	out->checked_at_ms = st.quarantined ? st.probed_at_ms : 0;
}

static bool p_retry_now(struct target_run *run)
{
	return scim_retry_now(run_of(run));
}

static void p_stop(struct target_run *run, void (*done)(void *data), void *data)
{
	scim_target_stop(run_of(run), done, data);
}

static char **dup_list(const char *const *src, size_t n)
{
	char **out = n > 0 ? xcalloc(n, sizeof *out) : NULL;

	for (size_t i = 0; i < n; i++)
		out[i] = xstrdup(src[i]);
	return out;
}

static void free_list(const char *const *l, size_t n)
{
	for (size_t i = 0; i < n; i++)
		free((char *)l[i]);
	free((void *)l);
}

static void p_close(struct target *t)
{
	struct scim_config *c = t->impl;

	free_list(c->user_attrs, c->n_user_attrs);
	free_list(c->group_attrs, c->n_group_attrs);
	free(t->impl);
	free(t);
}

struct target *scim_target_new(const struct scim_config *cfg)
{
	struct target *t = xcalloc(1, sizeof *t);
	struct scim_config *copy = xmalloc(sizeof *copy);

	*copy = *cfg;
	/* the attribute lists are the caller's: keep copies (freed by p_close) */
	copy->user_attrs = (const char *const *)dup_list(cfg->user_attrs, cfg->n_user_attrs);
	copy->group_attrs = (const char *const *)dup_list(cfg->group_attrs, cfg->n_group_attrs);
	t->impl = copy;
	t->name = "scim";
	t->request_timeout_ms = cfg->timeout_ms ? cfg->timeout_ms : 30000;
	t->checks_taken = true; /* SCIM_TAKEN: a filtered GET, or a scan */
	t->start = p_start;
	t->set_fence = p_set_fence;
	t->submit = p_submit;
	t->cancel_all = p_cancel_all;
	t->stats = p_stats;
	t->retry_now = p_retry_now;
	t->stop = p_stop;
	t->close = p_close;
	return t;
}
