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

/* Extend the lease to `started` (a commit's or a heartbeat's start). After a
 * suspension only evidence from strictly later renews (one started in the
 * same millisecond may predate it). */
static bool renew(struct leader *l, raft_time started)
{
	if (started > l->lease_start && (l->lease_epoch == l->epoch || started > l->suspended_at)) {
		l->lease_start = started;
		l->lease_epoch = l->epoch;
		return true;
	}
	return false;
}

/*
 * The latest s such that a majority of the voters reset their election timers
 * at or after s in this term, from heartbeat answers (raft/acks.h); 0 when
 * there is none. This node counts as one of them with s = now: while it leads
 * it refuses every vote (src/recv_request_vote.c), as in the commit argument,
 * where it is one of the majority that stored the entry. Quorum over the
 * latest configuration, as libraft counts commits (src/replication.c).
 */
static raft_time heartbeat_lease_start(const struct leader *l)
{
	const struct raft_configuration *c = peek_configuration(l->raft);
	raft_id self = peek_id(l->raft);
	raft_time t[ACKS_PEERS], v;
	unsigned voters = 0, n = 0, need, i, j;
	bool self_voter = false;

	for (i = 0; i < c->n; i++) {
		if (c->servers[i].role != RAFT_VOTER)
			continue;
		voters++;
		if (c->servers[i].id == self) {
			self_voter = true;
			continue;
		}
		v = acks_at(l->acks, c->servers[i].id, l->term);
		if (v == 0 || n == ACKS_PEERS)
			continue;
		for (j = n++; j > 0 && t[j - 1] < v; j--) /* descending */
			t[j] = t[j - 1];
		t[j] = v;
	}
	if (!self_voter || voters == 0)
		return 0;
	need = voters / 2 + 1 - 1; /* followers besides this node */
	if (need == 0)
		return now(l);
	return n >= need ? t[need - 1] : 0;
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
	if (l->phase != LEADER_READY || l->stopped)
		return;
	if (l->acks != NULL && !peek_transferring(r)) {
		raft_time s = heartbeat_lease_start(l);
		if (s != 0 && renew(l, s))
			l->heartbeat_renewals++;
	}
	if (l->pending != NULL)
		return;
	/* With heartbeat answers, a barrier only when they did not renew the
	 * lease for 0.6 T' (it then still has 0.2 T' to commit before the lease
	 * ends); without, every T'/3. After a suspension, at once. */
	if (l->lease_epoch != l->epoch ||
	    (now(l) - l->last_renew >= peek_election_timeout(r) / 3 &&
	     (l->acks == NULL || now(l) - l->lease_start >= peek_election_timeout(r) * 3 / 5))) {
		if (start_barrier(l, false) == 0) /* a failure is retried on the next tick */
			l->renewal_barriers++;
	}
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
	if (l->phase == LEADER_READY && term == l->term && !l->stopped)
		(void)renew(l, started);
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
