/* raft/peek.c -- see peek.h: the only reads of struct raft internals. */
#include "raft/peek.h"

raft_term peek_term(const struct raft *r)
{
	return r->current_term;
}

raft_id peek_id(const struct raft *r)
{
	return r->id;
}

raft_time peek_now(const struct raft *r)
{
	return r->io->time(r->io);
}

unsigned peek_election_timeout(const struct raft *r)
{
	return r->election_timeout;
}

bool peek_transferee(const struct raft *r)
{
	return r->state == RAFT_CANDIDATE && r->candidate_state.disrupt_leader;
}

bool peek_transferring(const struct raft *r)
{
	return r->state == RAFT_LEADER && r->transfer != NULL;
}

raft_index peek_commit_index(const struct raft *r)
{
	return r->commit_index;
}

int peek_reachable(const struct raft *r, unsigned i, raft_index *match_index)
{
	const struct raft_server *s = &r->configuration.servers[i];

	*match_index = 0;
	if (s->id == r->id)
		return 1;
	if (r->state == RAFT_LEADER && r->leader_state.progress != NULL) {
		*match_index = r->leader_state.progress[i].match_index;
		return r->leader_state.progress[i].recent_recv ? 1 : 0;
	}
	if (r->state == RAFT_FOLLOWER && s->id == r->follower_state.current_leader.id)
		return 1; /* we hear from it, or we would not call it leader */
	return -1;
}

const struct raft_configuration *peek_configuration(const struct raft *r)
{
	return &r->configuration;
}

raft_index peek_last_stored(const struct raft *r)
{
	return r->last_stored;
}

raft_id peek_promotee(const struct raft *r)
{
	return r->state == RAFT_LEADER ? r->leader_state.promotee_id : 0;
}

int peek_cancel_promotion(struct raft *r, const struct raft_change *req)
{
	if (r->state != RAFT_LEADER || r->leader_state.promotee_id == 0 ||
	    r->leader_state.change != req)
		return -ENOENT;
	r->leader_state.promotee_id = 0;
	r->leader_state.round_number = 0;
	r->leader_state.round_index = 0;
	r->leader_state.round_start = 0;
	r->leader_state.change = NULL;
	return 0;
}

raft_time peek_heard_at(const struct raft *r)
{
	return r->election_timer_start;
}

struct tick_find {
	void *impl;
	uv_timer_t *timer;
};

static void find_tick_timer(uv_handle_t *h, void *arg)
{
	struct tick_find *f = arg;
	if (h->type == UV_TIMER && h->data == f->impl && !uv_is_closing(h))
		f->timer = (uv_timer_t *)h;
}

static int rearm_tick(struct raft *r, uv_loop_t *loop, unsigned in_ms)
{
	struct tick_find f = {r->io->impl, NULL};

	uv_walk(loop, find_tick_timer, &f);
	if (f.timer == NULL)
		return -ENOENT;
	uv_timer_start(f.timer, f.timer->timer_cb, in_ms, uv_timer_get_repeat(f.timer));
	return 0;
}

raft_time peek_candidate_round(const struct raft *r, raft_term *vote_term)
{
	if (vote_term != NULL)
		*vote_term = r->state == RAFT_CANDIDATE && !r->candidate_state.in_pre_vote
				     ? r->current_term
				     : 0;
	return r->state == RAFT_CANDIDATE ? r->election_timer_start : 0;
}

int peek_candidate_retry(struct raft *r, uv_loop_t *loop, unsigned retry_ms)
{
	raft_time now = r->io->time(r->io);

	if (r->state != RAFT_CANDIDATE || !r->pre_vote || r->candidate_state.disrupt_leader)
		return -EAGAIN;
	if (now - r->election_timer_start < retry_ms ||
	    r->candidate_state.randomized_election_timeout == 0 /* already due */)
		return -EAGAIN;
	r->candidate_state.in_pre_vote = true;
	r->candidate_state.randomized_election_timeout = 0;
	if (loop != NULL)
		(void)rearm_tick(r, loop, 1); /* else: at the next regular tick */
	return 0;
}

int peek_early_election(struct raft *r, uv_loop_t *loop, unsigned stagger_ms)
{
	raft_time now = r->io->time(r->io);
	unsigned timeout = r->follower_state.randomized_election_timeout;

	if (r->state != RAFT_FOLLOWER || r->follower_state.current_leader.id == 0)
		return -EAGAIN;
	r->follower_state.current_leader.id = 0;
	if (r->follower_state.current_leader.address != NULL) {
		raft_free(r->follower_state.current_leader.address);
		r->follower_state.current_leader.address = NULL;
	}
	if (stagger_ms > timeout)
		stagger_ms = timeout;
	/* expires when now' - start >= timeout, i.e. at now + stagger_ms */
	if (now >= timeout - stagger_ms)
		r->election_timer_start = now - (timeout - stagger_ms);
	else
		r->election_timer_start = 0;
	return rearm_tick(r, loop, stagger_ms + 1);
}

raft_index peek_snapshot_index(const struct raft *r)
{
	return r->log.snapshot.last_index;
}

bool peek_snapshot_pending(const struct raft *r)
{
	return r->snapshot.pending.term != 0;
}

void peek_log_cache(const struct raft *r, size_t *n_entries, size_t *bytes)
{
	const struct raft_log *l = &r->log;
	size_t i, n = l->back >= l->front ? l->back - l->front : l->size - l->front + l->back;

	*n_entries = n;
	*bytes = 0;
	for (i = 0; i < n; i++)
		*bytes += l->entries[(l->front + i) % l->size].buf.len;
}
