/*
 * sync/engine/unique.c -- SelectUniqueValue at creation: which candidate the
 * target does not hold yet (docs/mapping-expressions.md, "SelectUniqueValue").
 *
 * Entra's rule: the function is evaluated when the object is created only;
 * its candidates are tried in order and the first one no object in the
 * target holds is written; when every one is held the object is not created
 * and an error is reported. The planner (plan.c) evaluates the candidates
 * from the source entry (mapping_unique_candidates); here, in PH_UPSERT and
 * before any write of the batch, the target is asked about them
 * (TARGET_TAKEN: a read, which needs no intent) in rounds -- one question per
 * creation and round, the next candidate only once the previous one is known
 * to be held -- and the first free one is placed in the resource. Every
 * candidate held: the object is refused (the failed objects, the provisioning
 * log) with the attribute and the candidates named; `canopyctl resync`
 * (or the entry's next change) re-reads it and asks again. So is one whose
 * question the target did not answer: the retry set replays a resource, and
 * this one has no value to replay.
 *
 * Two creations of one batch may want the same value: the later one waits
 * for the earlier one's answer and never takes a value the earlier one
 * chose, so one batch never writes a value twice.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "sync/engine/internal.h"

void unique_free(struct item *it)
{
	mapping_unique_free(it->uniq, it->n_uniq);
	free(it->uniq_pick);
	it->uniq = NULL;
	it->uniq_pick = NULL;
	it->n_uniq = 0;
	unique_reset(it);
}

void unique_reset(struct item *it)
{
	for (size_t i = 0; i < it->n_uniq; i++)
		it->uniq_pick[i] = SIZE_MAX;
	it->uniq_at = it->uniq_cand = 0;
	it->uniq_asking = it->uniq_done = false;
}

bool unique_unsettled(const struct item *it)
{
	return it->n_uniq > 0 && !it->uniq_done;
}

static bool wants(const struct item *it)
{
	return it->kind == IT_UPSERT && it->upsert_needed && !it->failed && !it->cancelled && it->n_uniq > 0 &&
	       !it->uniq_done;
}

/* The value `it` asks about or chose for rule `attr`, if it is `v`. */
static bool claims(const struct item *it, const char *attr, const char *v, bool *pending)
{
	for (size_t r = 0; r < it->n_uniq; r++) {
		const struct mapping_unique *u = &it->uniq[r];
		if (strcasecmp(u->attr, attr) != 0)
			continue;
		if (it->uniq_pick[r] != SIZE_MAX && strcasecmp(u->cand[it->uniq_pick[r]], v) == 0)
			return true;
		if (it->uniq_asking && it->uniq_at == r && strcasecmp(u->cand[it->uniq_cand], v) == 0) {
			*pending = true;
			return true;
		}
	}
	return false;
}

/* Held or being asked about by an item before `self` in the batch. */
static bool claimed_before(const struct batch *b, const struct item *self, const char *attr, const char *v,
			   bool *pending)
{
	*pending = false;
	for (size_t i = 0; i < b->n && b->items[i] != self; i++)
		if (b->items[i]->type == self->type && b->items[i]->n_uniq > 0 && claims(b->items[i], attr, v, pending))
			return true;
	return false;
}

/* Every candidate of the current rule is held: refused for good, until the
 * target or the entry changes (canopyctl resync asks again). */
static void all_taken(struct session *s, struct item *it)
{
	const struct mapping_unique *u = &it->uniq[it->uniq_at];
	char list[200]; /* the message must fit op.error: a long list is cut */
	size_t o = 0;

	list[0] = '\0';
	for (size_t i = 0; i < u->n_cand && o < sizeof list; i++)
		o += (size_t)snprintf(list + o, sizeof list - o, "%s\"%s\"", i ? ", " : "", u->cand[i]);
	if (u->n_cand == 0)
		snprintf(list, sizeof list, "(no candidate had a value)");
	else if (u->redact) /* failed objects and the provisioning log show it */
		snprintf(list, sizeof list, "%zu candidate(s), %s (the rule calls Redact(): values not shown)", u->n_cand,
			 MAPPING_REDACTED);
	memset(&it->op, 0, sizeof it->op);
	it->op.action = TARGET_TAKEN; /* the answers decided it: a rewind asks again */
	it->op.permanent = true;
	snprintf(it->op.error, sizeof it->op.error,
		 "%.120s: SelectUniqueValue: every candidate for %.60s is taken in the target: %s; not created "
		 "(canopyctl resync asks again)", u->where, u->attr, list);
	it->failed = true;
	exec_item_failed(s, it, "create");
}

/* The answer to it's question, if one was out. */
static void take_answer(struct session *s, struct item *it, const struct mapping *m)
{
	if (!it->uniq_asking)
		return;
	it->uniq_asking = false;
	if (it->cancelled)
		return;
	if (it->op.status != 0) {
		/* Not answered (the target retried it already, scim.h
		 * max_attempts). The retry set replays a resource, and this one
		 * lacks the value: the object is a failed one instead, to be read
		 * again from the source (RETRY_REREAD) by a resync or by its
		 * next change. */
		char why[sizeof it->op.error];
		snprintf(why, sizeof why, "%s", it->op.error);
		snprintf(it->op.error, sizeof it->op.error,
			 "%s: SelectUniqueValue: asking the target whether %.60s \"%.60s\" is taken failed: %.120s "
			 "(canopyctl resync asks again)", it->uniq[it->uniq_at].where, it->uniq[it->uniq_at].attr,
			 it->uniq[it->uniq_at].redact ? MAPPING_REDACTED : it->uniq[it->uniq_at].cand[it->uniq_cand], why);
		it->op.permanent = true;
		it->failed = true;
		exec_item_failed(s, it, "create");
		return;
	}
	if (it->op.taken) {
		it->uniq_cand++;
		return;
	}
	it->uniq_pick[it->uniq_at] = it->uniq_cand;
	mapping_unique_place(m, &it->uniq[it->uniq_at], it->uniq[it->uniq_at].cand[it->uniq_cand], it->attrs);
	it->uniq_at++;
	it->uniq_cand = 0;
}

bool unique_round(struct session *s)
{
	struct batch *b = s->batch;
	bool waiting = false;

	for (size_t i = 0; i < b->n; i++) {
		struct item *it = b->items[i];
		const struct mapping *m = it->type == OBJECT_GROUP ? s->e->cfg.group_map : s->e->cfg.user_map;
		if (it->n_uniq == 0 || it->kind != IT_UPSERT)
			continue;
		take_answer(s, it, m);
		while (wants(it)) {
			bool pending;
			if (it->uniq_at == it->n_uniq) {
				it->uniq_done = true;
				break;
			}
			const struct mapping_unique *u = &it->uniq[it->uniq_at];
			if (it->uniq_cand >= u->n_cand) {
				all_taken(s, it);
				break;
			}
			const char *v = u->cand[it->uniq_cand];
			if (claimed_before(b, it, u->attr, v, &pending)) {
				if (pending) {
					waiting = true; /* its answer decides: next round */
					break;
				}
				it->uniq_cand++; /* chosen by an earlier creation */
				continue;
			}
			memset(&it->op, 0, sizeof it->op);
			it->op.target_id = NULL;
			it->op.attr = u->attr;
			it->op.value = v;
			it->uniq_asking = true;
			exec_submit(s, it, TARGET_TAKEN);
			if (it->cancelled)
				it->uniq_asking = false;
			break;
		}
	}
	b->asking = b->outstanding > 0 || (waiting && b->outstanding > 0);
	return b->asking;
}
