/*
 * raft/acks.c -- answers to a leader's requests, counted per follower and term
 * (see acks.h for why counting is enough).
 */
#include "raft/acks.h"

#include <string.h>

void acks_init(struct acks *a)
{
	memset(a, 0, sizeof *a);
}

static struct acks_peer *slot(struct acks *a, uint64_t id, raft_term term)
{
	unsigned i, oldest = 0;
	struct acks_peer *p;

	for (i = 0; i < ACKS_PEERS; i++) {
		if (a->peer[i].id == id || a->peer[i].id == 0)
			break;
		if (a->peer[i].acked < a->peer[oldest].acked)
			oldest = i;
	}
	if (i == ACKS_PEERS)
		i = oldest;
	p = &a->peer[i];
	if (p->id != id || p->term != term) {
		memset(p, 0, sizeof *p);
		p->id = id;
		p->term = term;
	}
	return p;
}

void acks_sent(struct acks *a, const struct raft_message *m, raft_time now)
{
	struct acks_peer *p;
	raft_term term;

	switch (m->type) {
	case RAFT_IO_APPEND_ENTRIES:
		term = m->append_entries.term;
		break;
	case RAFT_IO_INSTALL_SNAPSHOT:
		term = m->install_snapshot.term;
		break;
	default:
		return;
	}
	if (m->server_id == 0)
		return;
	p = slot(a, m->server_id, term);
	p->send_at[p->sent % ACKS_WINDOW] = now;
	p->sent++;
}

void acks_received(struct acks *a, const struct raft_message *m)
{
	struct acks_peer *p = NULL;
	unsigned i;

	if (m->type != RAFT_IO_APPEND_ENTRIES_RESULT || m->server_id == 0)
		return;
	for (i = 0; i < ACKS_PEERS; i++)
		if (a->peer[i].id == m->server_id) {
			p = &a->peer[i];
			break;
		}
	/* An answer in another term (a higher one: that follower moved on, and
	 * libraft steps this leader down) or to requests never counted proves
	 * nothing about this term. */
	if (p == NULL || m->append_entries_result.term != p->term || p->answered >= p->sent)
		return;
	p->answered++;
	/* The answered-th request: its send time is still in the window unless
	 * more than ACKS_WINDOW requests are out (then: no proof this time). */
	if (p->sent - (p->answered - 1) <= ACKS_WINDOW) {
		raft_time t = p->send_at[(p->answered - 1) % ACKS_WINDOW];
		if (t > p->acked)
			p->acked = t;
	}
}

raft_time acks_at(const struct acks *a, uint64_t id, raft_term term)
{
	for (unsigned i = 0; i < ACKS_PEERS; i++)
		if (a->peer[i].id == id)
			return a->peer[i].term == term ? a->peer[i].acked : 0;
	return 0;
}
