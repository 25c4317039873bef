/*
 * agent/raft_story.c -- see raft_story.h.
 */
#include "agent/raft_story.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "agent/log.h"
#include "common/xalloc.h"

static const char *role_name(int role)
{
	return role == NODE_VOTER ? "voter" : role == NODE_STANDBY ? "standby" : "spare";
}

static int find(const struct raft_story *s, uint64_t id)
{
	unsigned i;
	for (i = 0; i < s->n_members; i++)
		if (s->members[i].id == id)
			return (int)i;
	return -1;
}

static void members_changed(struct raft_story *s, const struct node_status *st)
{
	unsigned i;
	int k;

	for (i = 0; i < st->n_members; i++) {
		const struct node_member_status *m = &st->members[i];
		char q[300];
		k = find(s, m->id);
		if (k < 0)
			log_info("member added", "member=%llu address=%s role=%s", (unsigned long long)m->id,
				 log_quote(q, sizeof q, m->address), role_name(m->role));
		else if (s->members[k].role != m->role)
			log_info(m->role == NODE_VOTER ? "member promoted" : "member role changed",
				 "member=%llu from=%s to=%s", (unsigned long long)m->id,
				 role_name(s->members[k].role), role_name(m->role));
	}
	for (i = 0; i < s->n_members; i++) {
		bool still = false;
		unsigned j;
		for (j = 0; j < st->n_members; j++)
			still = still || st->members[j].id == s->members[i].id;
		if (!still)
			log_info("member removed", "member=%llu", (unsigned long long)s->members[i].id);
	}
}

static void on_check(uv_check_t *h)
{
	struct raft_story *s = h->data;
	struct node_status *st = xmalloc(sizeof *st);
	unsigned i;

	node_status(s->node, st);
	if (s->seen) {
		if (st->state == NODE_CANDIDATE && s->state != NODE_CANDIDATE)
			log_info("election started: this node is a candidate", "term=%llu",
				 (unsigned long long)st->term);
		if (st->leader_id != 0 && (st->leader_id != s->leader_id || st->term != s->leader_term))
			log_info("leader known", "leader=%llu term=%llu", (unsigned long long)st->leader_id,
				 (unsigned long long)st->term);
		else if (st->leader_id == 0 && s->leader_id != 0)
			log_warn("leader lost", "was=%llu term=%llu", (unsigned long long)s->leader_id,
				 (unsigned long long)st->term);
		/* A node that knew no configuration yet (joining) only learns it. */
		if (s->n_members > 0 && st->n_members > 0)
			members_changed(s, st);
	} else if (st->leader_id != 0) {
		log_info("leader known", "leader=%llu term=%llu", (unsigned long long)st->leader_id,
			 (unsigned long long)st->term);
	}
	s->seen = true;
	s->state = st->state;
	if (st->leader_id != 0)
		s->leader_term = st->term;
	s->leader_id = st->leader_id;
	if (st->n_members > 0) {
		s->n_members = st->n_members;
		for (i = 0; i < st->n_members; i++) {
			s->members[i].id = st->members[i].id;
			s->members[i].role = st->members[i].role;
		}
	}
	free(st);
}

void raft_story_start(struct raft_story *s, uv_loop_t *loop, struct node *n)
{
	memset(s, 0, sizeof *s);
	s->node = n;
	uv_check_init(loop, &s->check);
	s->check.data = s;
	uv_check_start(&s->check, on_check);
}

void raft_story_close(struct raft_story *s)
{
	if (s->node == NULL)
		return;
	uv_check_stop(&s->check);
	uv_close((uv_handle_t *)&s->check, NULL);
	s->node = NULL;
}
