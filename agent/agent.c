/*
 * agent/agent.c -- start-up, signals and orderly shutdown (see agent.h).
 */
#include "agent/agent.h"

#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "agent/log.h"

static void on_leader_change(struct node *n, bool leading)
{
	struct agent *a = n->data;
	struct node_status st;

	node_status(n, &st);
	if (leading) {
		log_info("acting as leader", "term=%llu commit_index=%llu applied_index=%llu barrier_ms=%u",
			 (unsigned long long)st.term, (unsigned long long)st.commit_index,
			 (unsigned long long)st.applied_index, n->leader.last_barrier_ms);
		a->sync.state = (a->cfg.source.present && a->cfg.target.present) ? "idle" : "disabled";
	} else {
		log_info("stopped acting as leader", "term=%llu state=%s",
			 (unsigned long long)st.term, st.state);
		a->sync.state = (a->cfg.source.present && a->cfg.target.present) ? "standby" : "disabled";
	}
}

static void on_node_closed(struct node *n)
{
	struct agent *a = n->data;
	uv_close((uv_handle_t *)&a->sigterm, NULL);
	uv_close((uv_handle_t *)&a->sigint, NULL);
	log_info("stopped", NULL);
}

static void on_http_closed(struct http_server *s)
{
	struct agent *a = s->data;
	node_close(&a->node, on_node_closed);
}

static void shutdown_now(struct agent *a)
{
	http_close(&a->http, on_http_closed);
}

static void on_transferred(struct node *n, bool transferred)
{
	struct agent *a = n->data;
	struct node_status st;

	node_status(n, &st);
	if (transferred)
		log_info("leadership handed over", "leader=%llu term=%llu",
			 (unsigned long long)st.leader_id, (unsigned long long)st.term);
	else
		log_warn("leadership hand-over did not complete; stopping anyway", NULL);
	shutdown_now(a);
}

/*
 * First signal: a leader hands leadership to an up-to-date voter first, so a
 * planned restart costs the cluster no election timeout; then stop. A second
 * signal stops at once.
 */
static void on_signal(uv_signal_t *h, int signum)
{
	struct agent *a = h->data;
	int rv;

	if (a->stopping) {
		log_warn("second signal: stopping without hand-over", "signal=%d", signum);
		if (a->node.transferring) {
			a->node.transfer_cb = NULL;
			shutdown_now(a);
		}
		return;
	}
	a->stopping = true;
	log_info("stopping", "signal=%s", signum == SIGTERM ? "SIGTERM" : "SIGINT");
	if (raft_state(&a->node.raft) == RAFT_LEADER) {
		rv = node_transfer(&a->node, 0, on_transferred);
		if (rv == 0) {
			log_info("handing leadership over before exit", NULL);
			return;
		}
		if (rv != RAFT_NOTFOUND) /* NOTFOUND: no other voter to hand over to */
			log_warn("cannot hand leadership over", "error=\"%s\"", raft_strerror(rv));
	}
	shutdown_now(a);
}

static int start(struct agent *a, const char *path, char *errmsg, size_t errlen)
{
	struct node_member members[CONFIG_MAX_MEMBERS];
	struct node_config nc;
	unsigned i;
	int rv;

	rv = config_load(path, &a->cfg, errmsg, errlen);
	if (rv != 0)
		return rv;
	log_setup(a->cfg.node.id, (enum log_level)log_level_parse(a->cfg.log.level));

	rv = uv_loop_init(&a->loop);
	if (rv != 0) {
		snprintf(errmsg, errlen, "event loop: %s", uv_strerror(rv));
		goto err_after_config;
	}
	rv = state_init(&a->state);
	if (rv != 0) {
		snprintf(errmsg, errlen, "state: %s", strerror(-rv));
		goto err_after_loop;
	}

	for (i = 0; i < a->cfg.cluster.n_members; i++) {
		members[i].id = a->cfg.cluster.members[i].id;
		members[i].address = a->cfg.cluster.members[i].address;
	}
	memset(&nc, 0, sizeof nc);
	nc.id = a->cfg.node.id;
	nc.address = a->cfg.node.raft_address;
	nc.data_dir = a->cfg.node.data_dir;
	nc.members = members;
	nc.n_members = a->cfg.cluster.n_members;
	nc.election_timeout_ms = a->cfg.cluster.election_timeout_ms;
	nc.heartbeat_ms = a->cfg.cluster.heartbeat_ms;
	nc.pre_vote = a->cfg.cluster.pre_vote;
	rv = node_start(&a->node, &a->loop, &nc, state_machine(&a->state), errmsg, errlen);
	if (rv != 0)
		goto err_after_state;
	a->node.data = a;
	a->node.on_leader_change = on_leader_change;

	rv = http_start(&a->http, &a->loop, a->cfg.node.control_address, control_handle, a,
			errmsg, errlen);
	if (rv != 0)
		goto err_after_node;

	uv_signal_init(&a->loop, &a->sigterm);
	uv_signal_init(&a->loop, &a->sigint);
	a->sigterm.data = a->sigint.data = a;
	uv_signal_start(&a->sigterm, on_signal, SIGTERM);
	uv_signal_start(&a->sigint, on_signal, SIGINT);
	return 0;

err_after_node:
	node_close(&a->node, NULL);
	uv_run(&a->loop, UV_RUN_DEFAULT);
err_after_state:
	state_close(&a->state);
err_after_loop:
	uv_loop_close(&a->loop);
err_after_config:
	config_free(&a->cfg);
	return rv;
}

int agent_run(const char *config_path, char *errmsg, size_t errlen)
{
	struct agent *a;
	struct node_status st;
	int rv;

	signal(SIGPIPE, SIG_IGN); /* a peer closing a socket is an error code, not a death */
	a = calloc(1, sizeof *a);
	if (a == NULL) {
		snprintf(errmsg, errlen, "out of memory");
		return 1;
	}
	a->started_wall = time(NULL);
	rv = start(a, config_path, errmsg, errlen);
	if (rv != 0) {
		free(a);
		return 1;
	}
	a->sync.state = (a->cfg.source.present && a->cfg.target.present) ? "standby" : "disabled";
	node_status(&a->node, &st);
	log_info("started", "cluster=%s raft_address=%s control_address=%s data_dir=%s term=%llu "
			    "last_index=%llu bootstrapped=%s",
		 a->cfg.cluster.name, a->cfg.node.raft_address, a->cfg.node.control_address,
		 a->cfg.node.data_dir, (unsigned long long)st.term,
		 (unsigned long long)st.last_index, a->node.bootstrapped ? "yes" : "no");

	uv_run(&a->loop, UV_RUN_DEFAULT);

	rv = uv_loop_close(&a->loop);
	if (rv != 0)
		log_warn("event loop closed with handles open", "error=%s", uv_err_name(rv));
	state_close(&a->state);
	config_free(&a->cfg);
	rv = a->exit_code;
	free(a);
	return rv;
}
