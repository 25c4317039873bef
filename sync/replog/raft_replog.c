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

static struct node *node_of(struct replog *l)
{
	return l->impl;
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
	int rv = state_batch_encode(b, &buf);

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
	free(l);
}

struct replog *raft_replog_new(struct node *node)
{
	struct replog *l = xcalloc(1, sizeof *l);

	l->impl = node;
	l->term = r_term;
	l->ready = r_ready;
	l->may_write = r_may_write;
	l->propose = r_propose;
	l->failover_ms = r_failover_ms;
	l->lease_check_ms = r_lease_check_ms;
	l->close = r_close;
	return l;
}
