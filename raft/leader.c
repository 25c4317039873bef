/*
 * raft/leader.c -- barrier-before-leading and the write lease (see leader.h).
 */
#include "raft/leader.h"
#include "raft/peek.h"

#include "common/xalloc.h"

#include <assert.h>
#include <stdlib.h>
#include <string.h>

struct leader_barrier {
	struct raft_barrier req;
	struct leader *l;   /* NULL once the tracker forgot this request */
	raft_term term;
	raft_time started;
	uint64_t epoch;     /* l->epoch when started (leader_suspend) */
	bool establishing;  /* the first barrier of a term, not a renewal */
};

static raft_time now(const struct leader *l)
{
	return peek_now(l->raft);
}

static void set_phase(struct leader *l, enum leader_phase phase)
{
	enum leader_phase old = l->phase;
	l->phase = phase;
	if (old == LEADER_READY && phase != LEADER_READY) {
		l->lost_leadership++;
		if (l->on_change)
			l->on_change(l, false);
	} else if (old != LEADER_READY && phase == LEADER_READY) {
		l->became_leader++;
		if (l->on_change)
			l->on_change(l, true);
	}
}

static bool still_leader(const struct leader *l, raft_term term)
{
	return raft_state(l->raft) == RAFT_LEADER && peek_term(l->raft) == term;
}

static void barrier_cb(struct raft_barrier *req, int status)
{
	struct leader_barrier *b = req->data;
	struct leader *l = b->l;

	if (l != NULL) {
		assert(l->pending == b);
		l->pending = NULL;
		if (status != 0) {
			l->barrier_failures++;
		} else if (l->term == b->term && still_leader(l, b->term)) {
			if (b->epoch == l->epoch &&
			    (b->started > l->lease_start || l->lease_epoch != l->epoch)) {
				l->lease_start = b->started;
				l->lease_epoch = l->epoch;
			}
			if (b->establishing) {
				l->last_barrier_ms = (unsigned)(now(l) - b->started);
				set_phase(l, LEADER_READY);
			}
		}
	}
	free(b);
}

static int start_barrier(struct leader *l, bool establishing)
{
	struct leader_barrier *b;
	int rv;

	assert(l->pending == NULL);
	b = xcalloc(1, sizeof *b);
	b->l = l;
	b->term = l->term;
	b->started = now(l);
	b->epoch = l->epoch;
	b->establishing = establishing;
	b->req.data = b;
	rv = raft_barrier(l->raft, &b->req, barrier_cb);
	if (rv != 0) {
		free(b);
		l->barrier_failures++;
		return rv;
	}
	l->pending = b;
	l->last_renew = b->started;
	return 0;
}

void leader_init(struct leader *l, struct raft *r)
{
	memset(l, 0, sizeof *l);
	l->raft = r;
	l->margin_pct = 20;
}

void leader_close(struct leader *l)
{
	if (l->pending != NULL) {
		l->pending->l = NULL;
		l->pending = NULL;
	}
	l->phase = LEADER_NONE;
}

void leader_tick(struct leader *l)
{
	struct raft *r = l->raft;
	bool leader = raft_state(r) == RAFT_LEADER;

	/* Lost leadership, or won a later term in between two ticks. */
	if (l->phase != LEADER_NONE && (!leader || peek_term(r) != l->term)) {
		if (l->pending != NULL) { /* its callback must not act on a new term */
			l->pending->l = NULL;
			l->pending = NULL;
		}
		set_phase(l, LEADER_NONE);
		l->lease_start = 0;
	}
	if (!leader)
		return;

	if (l->phase == LEADER_NONE) {
		l->term = peek_term(r);
		l->won_at = now(l);
		l->phase = LEADER_BARRIER;
		if (start_barrier(l, true) != 0)
			l->phase = LEADER_NONE; /* retried on the next tick */
		return;
	}
	if (l->phase == LEADER_READY && l->pending == NULL && !l->stopped &&
	    (now(l) - l->last_renew >= peek_election_timeout(r) / 3 || l->lease_epoch != l->epoch))
		start_barrier(l, false); /* a failure is retried on the next tick */
}

bool leader_ready(struct leader *l)
{
	return l->phase == LEADER_READY && still_leader(l, l->term);
}

raft_time leader_lease_deadline(const struct leader *l)
{
	if (l->phase != LEADER_READY || l->lease_start == 0 || l->stopped ||
	    l->lease_epoch != l->epoch)
		return 0;
	return l->lease_start + leader_lease_length(l);
}

raft_time leader_lease_length(const struct leader *l)
{
	return (raft_time)peek_election_timeout(l->raft) * (100 - l->margin_pct) / 100;
}

bool leader_may_write(struct leader *l)
{
	raft_time t = now(l);
	return leader_ready(l) && t >= l->not_before && t < leader_lease_deadline(l);
}

void leader_hold(struct leader *l, raft_time until)
{
	l->not_before = until;
}

void leader_note_commit(struct leader *l, raft_term term, raft_time started)
{
	/* After a suspension only an entry started after it renews (strictly
	 * later: one started in the same millisecond may predate it). */
	if (l->phase == LEADER_READY && term == l->term && !l->stopped &&
	    started > l->lease_start &&
	    (l->lease_epoch == l->epoch || started > l->suspended_at)) {
		l->lease_start = started;
		l->lease_epoch = l->epoch;
	}
}

void leader_suspend(struct leader *l)
{
	if (l->phase != LEADER_READY)
		return;
	l->epoch++;
	l->suspended_at = now(l);
	/* A barrier started before the suspension cannot renew (its epoch is
	 * old); leader_tick() starts a fresh one as soon as it completes. */
}

void leader_stop(struct leader *l)
{
	l->stopped = true;
}
