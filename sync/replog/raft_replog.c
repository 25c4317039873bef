/*
 * sync/replog/raft_replog.c -- replog.h over raft/node.h and raft/leader.h.
 * The only sync/ file that knows Raft; raft/peek.h is read here, never by the
 * engine (its reads are tied to libraft 0.15).
 */
#include "sync/replog/raft_replog.h"

#include <errno.h>
#include <stdlib.h>

#include "common/xalloc.h"
#include "raft/peek.h"
#include "sync/state/format.h"

struct impl {
	struct node *node;
	const struct state *state;
};

static struct node *node_of(struct replog *l)
{
	return ((struct impl *)l->impl)->node;
}

uint16_t raft_replog_format(struct replog *l)
{
	struct impl *im = l->impl;
	struct node_status st;
	uint64_t ids[NODE_MAX_MEMBERS];
	unsigned i;

	/* The configuration as this node knows it; on a leader that is the
	 * latest one, committed or not (libraft applies a configuration as soon
	 * as it is appended, Raft dissertation §4.1), so a member being added
	 * counts from the moment it may receive entries. */
	node_status(im->node, &st);
	for (i = 0; i < st.n_members; i++)
		ids[i] = st.members[i].id;
	return state_format_writable(im->state, ids, st.n_members, STATE_VERSION);
}

static uint64_t r_term(struct replog *l)
{
	return peek_term(&node_of(l)->raft);
}

static bool r_ready(struct replog *l)
{
	return leader_ready(&node_of(l)->leader);
}

static bool r_may_write(struct replog *l)
{
	return leader_may_write(&node_of(l)->leader);
}

static int r_propose(struct replog *l, struct state_batch *b, replog_done_cb cb, void *arg)
{
	struct raft_buffer buf;
	int rv = state_batch_encode_version(b, raft_replog_format(l), &buf);

	if (rv == -ENOMEM)
		xoom("state_batch_encode");
	if (rv != 0)
		return rv;
	rv = node_apply(node_of(l), &buf, cb, arg);
	if (rv != 0)
		raft_free(buf.base); /* not taken: still ours */
	return rv;
}

static unsigned r_failover_ms(struct replog *l)
{
	return node_of(l)->election_timeout_ms;
}

/* Every T'/10 (T' = T/3, libraft's own timeout): the lease ends 0.2 T' before
 * any other leader can exist (docs/architecture.md, "Write lease"), so a
 * check this often cancels in-flight requests well inside that margin. */
static unsigned r_lease_check_ms(struct replog *l)
{
	unsigned t = node_raft_timeout_ms(node_of(l)->election_timeout_ms) / 10;
	return t ? t : 2;
}

static void r_close(struct replog *l)
{
	free(l->impl);
	free(l);
}

struct replog *raft_replog_new(struct node *node, const struct state *state)
{
	struct replog *l = xcalloc(1, sizeof *l);
	struct impl *im = xmalloc(sizeof *im);

	im->node = node;
	im->state = state;
	l->impl = im;
	l->term = r_term;
	l->ready = r_ready;
	l->may_write = r_may_write;
	l->propose = r_propose;
	l->failover_ms = r_failover_ms;
	l->lease_check_ms = r_lease_check_ms;
	l->close = r_close;
	return l;
}
