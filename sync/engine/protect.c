/*
 * sync/engine/protect.c -- delete protection (docs/architecture.md, "The
 * engine": delete protection is counted after a batch is planned and before
 * any of its requests leave).
 *
 * Every delete and deprovisioning of a batch (refresh or persist phase, scope
 * changes, retries), and every group member removal, counts against one
 * allowance: safety.delete_threshold (and the percentage) over the sliding
 * window safety.delete_window_s, whose executed deletes are replicated ("w:")
 * so that any leader counts the same. What would cross it is staged ("d:",
 * "m:") until an operator decides; while anything is staged, later deletes
 * are staged too, so that deletes stay in order.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "sync/engine/internal.h"

static unsigned window_s(const struct engine *e)
{
	return e->cfg.delete_window_s ? e->cfg.delete_window_s : DEFAULT_DELETE_WINDOW_S;
}

size_t protect_window(struct engine *e, size_t add, char **rec)
{
	static const char key[] = {OBJECT_KEY_WINDOW, ':'};
	time_t now = time(NULL);
	const void *v;
	size_t vlen, n = 0, len = 0, cap = 0;
	char buf[64], *out = NULL;
	int w;

	if (state_get(e->state, key, sizeof key, &v, &vlen)) {
		const char *p = v, *end = p + vlen;
		while (p < end) {
			unsigned long long t = 0, c = 0;
			int used = 0;
			char tmp[48];
			size_t l = (size_t)(end - p) < sizeof tmp - 1 ? (size_t)(end - p) : sizeof tmp - 1;
			memcpy(tmp, p, l);
			tmp[l] = '\0';
			if (sscanf(tmp, "%llu:%llu%n", &t, &c, &used) != 2 || used <= 0)
				break;
			p += used;
			if (p < end && *p == ',')
				p++;
			if (now - (time_t)t >= (time_t)window_s(e))
				continue;
			n += c;
			if (add == 0)
				continue;
			w = snprintf(buf, sizeof buf, "%llu:%llu,", t, c);
			if (len + (size_t)w + 1 > cap) {
				cap = (cap + (size_t)w + 1) * 2;
				out = xrealloc(out, cap);
			}
			memcpy(out + len, buf, (size_t)w + 1);
			len += (size_t)w;
		}
	}
	if (add > 0) {
		w = snprintf(buf, sizeof buf, "%llu:%zu", (unsigned long long)now, add);
		out = xrealloc(out, len + (size_t)w + 1);
		memcpy(out + len, buf, (size_t)w + 1);
		*rec = out;
	}
	return n;
}

static bool is_delete(const struct item *it)
{
	return (it->kind == IT_DELETE || it->kind == IT_DISABLE) && !it->failed;
}

/*
 * How many of `n` more deletes may run now, `recent` having run in the window
 * (and in this batch): none while anything is staged (deletes stay in
 * order), else what the threshold and the percentage leave -- and with
 * safety.on_threshold: stop, all or none.
 */
static size_t allowance(struct engine *e, size_t recent, size_t n)
{
	uint64_t objects = engine_object_count(e->state);
	size_t allowed;

	if (engine_staged_count(e->state) > 0)
		return 0;
	allowed = e->cfg.delete_threshold > recent ? e->cfg.delete_threshold - recent : 0;
	if (e->cfg.delete_threshold_percent > 0 && objects > 0) {
		size_t cap = (size_t)(objects * e->cfg.delete_threshold_percent / 100);
		cap = cap > recent ? cap - recent : 0;
		if (cap < allowed)
			allowed = cap;
	}
	if (n > allowed && e->cfg.delete_stop)
		allowed = 0;
	return allowed;
}

/*
 * The one place deletes are counted (engine.h): before any request of the
 * batch leaves, its deletes plus those executed in the window must stay
 * within the threshold; what would cross it is staged.
 */
void protect_deletes(struct engine *e, struct batch *b)
{
	size_t n = 0, allowed, recent, k = 0;
	char detail[400];

	if (b->kind == BATCH_DECISION || b->kind == BATCH_REPAIR)
		return;
	for (size_t i = 0; i < b->n; i++)
		if (is_delete(b->items[i]))
			n++;
	if (n == 0)
		return;
	recent = protect_window(e, 0, NULL);
	allowed = allowance(e, recent, n);
	if (n <= allowed)
		return;
	for (size_t i = 0; i < b->n; i++) {
		struct item *it = b->items[i];
		if (is_delete(it) && k++ >= allowed)
			it->kind = IT_STAGE;
	}
	snprintf(detail, sizeof detail,
		 "staged=%zu executed_now=%zu executed_in_window=%zu threshold=%u percent=%u window_s=%u "
		 "(canopyctl deletes list, then approve or reject)",
		 n - allowed, allowed, recent, e->cfg.delete_threshold, e->cfg.delete_threshold_percent,
		 window_s(e));
	engine_log(e, L_WARN, "delete threshold reached: deletes staged until an operator decides", detail);
}

/*
 * Member removals count against the same threshold and window as deletes
 * (what protect_deletes let run in this batch, plus the window). What would
 * cross it is held: the member stays in the group (in the target and in the
 * record) and an "m:" key waits for the operator.
 */
void protect_members(struct session *s, struct batch *b)
{
	struct engine *e = s->e;
	size_t n = 0, deletes = 0, recent, allowed, k = 0, held = 0;
	char detail[300];

	if (b->kind == BATCH_DECISION || b->kind == BATCH_REPAIR)
		return;
	for (size_t i = 0; i < b->n; i++) {
		if (is_delete(b->items[i]))
			deletes++;
		if (b->items[i]->members_planned && !b->items[i]->member_decision)
			n += b->items[i]->n_rm_ids;
	}
	if (n == 0)
		return;
	recent = protect_window(e, 0, NULL) + deletes;
	allowed = allowance(e, recent, n);
	if (n <= allowed)
		return;
	for (size_t i = 0; i < b->n; i++) {
		struct item *it = b->items[i];
		char **keep = NULL;
		size_t n_keep = 0;
		if (!it->members_planned || it->member_decision || it->n_rm_ids == 0)
			continue;
		for (size_t j = 0; j < it->n_rm_ids; j++) {
			if (k++ < allowed) {
				engine_strv_push(&keep, &n_keep, it->rm_ids[j]);
				continue;
			}
			/* held: still a member, as far as the record knows (and
			 * for an exact write, one the target must keep) */
			engine_strv_push(&it->held, &it->n_held, it->rm_anchors[j]);
			if (it->members_exact)
				engine_strv_push(&it->add_ids, &it->n_add_ids, it->rm_ids[j]);
			engine_strv_push(&it->add_anchors, &it->n_add_anchors, it->rm_anchors[j]);
			exec_log_op(s, it, "staged-member-removal", "held",
				    "delete threshold: member removal held until approved (canopyctl deletes list)");
			held++;
		}
		engine_strv_free(it->rm_ids, it->n_rm_ids);
		it->rm_ids = keep;
		it->n_rm_ids = n_keep;
	}
	snprintf(detail, sizeof detail,
		 "member_removals_staged=%zu executed_now=%zu executed_in_window=%zu threshold=%u window_s=%u "
		 "(canopyctl deletes list, then approve or reject)",
		 held, allowed, recent, e->cfg.delete_threshold, window_s(e));
	engine_log(e, L_WARN, "delete threshold reached: group member removals staged until an operator decides",
		   detail);
}
