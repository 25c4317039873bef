/*
 * agent/control_drill.c -- failover drills (`canopyctl drill failover`):
 *
 *   POST /v1/drill/transfer   the leader hands leadership over (as `cluster
 *                             transfer`: it stops exporting, raft_transfer)
 *   POST /v1/drill/crash      the leader plays dead: every raft message in and
 *                             out is dropped (raft/isolation.h), its write
 *                             lease is suspended so it sends nothing more to
 *                             the target, and its leader watches are answered
 *                             409 as a crash would close them; after down_ms
 *                             (default 2 T) it rejoins as a follower
 *
 * Both answer 202 at once with what canopyctl measures from: the old leader,
 * its term, and the drill's start on this node's clock in epoch ms. They
 * refuse (409, naming the reason) when the cluster could not survive losing
 * its leader now (control_drill_check). Mutations: the control token is
 * checked by control_handle() before this runs; a follower redirects.
 *
 * Every node also notes, for status ("failover.last_first_export_at_ms"),
 * the first moment of its latest leadership at which it could export: the
 * barrier committed, the hold and the lease allow writes (raft/leader.h),
 * and the engine runs a source session (refreshing, syncing or idle). Its
 * first target request can go no earlier; with changes waiting, it goes then.
 */
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include <jansson.h>

#include "agent/agent.h"
#include "agent/control.h"
#include "agent/identity.h"
#include "agent/log.h"
#include "common/xalloc.h"

const char *control_drill_mode_name(enum control_drill_mode m)
{
	switch (m) {
	case CONTROL_DRILL_TRANSFER:
		return "transfer";
	case CONTROL_DRILL_CRASH:
		return "crash";
	}
	return "?";
}

bool control_drill_mode_parse(const char *name, enum control_drill_mode *out)
{
	if (strcmp(name, "transfer") == 0)
		*out = CONTROL_DRILL_TRANSFER;
	else if (strcmp(name, "crash") == 0)
		*out = CONTROL_DRILL_CRASH;
	else
		return false;
	return true;
}

static size_t appendf(char *buf, size_t size, size_t at, const char *fmt, ...)
	__attribute__((format(printf, 4, 5)));
static size_t appendf(char *buf, size_t size, size_t at, const char *fmt, ...)
{
	va_list ap;
	int n;

	if (at >= size)
		return at;
	va_start(ap, fmt);
	n = vsnprintf(buf + at, size - at, fmt, ap);
	va_end(ap);
	return n < 0 ? at : at + (size_t)n;
}

int control_drill_check(const struct node_status *st, uint64_t self, bool busy, const char *quarantine,
			char *errmsg, size_t errlen)
{
	unsigned i, voters = 0, healthy = 0, majority;
	char why[512] = "";
	size_t at = 0;

	if (st->state != NODE_LEADER || !st->ready) {
		snprintf(errmsg, errlen, "no ready leader: node %llu is %s%s", (unsigned long long)self,
			 node_state_name(st->state), st->state == NODE_LEADER ? " (its barrier is not committed yet)" : "");
		return -EAGAIN;
	}
	if (busy) {
		snprintf(errmsg, errlen, "a drill or a leadership transfer is already in progress on leader %llu",
			 (unsigned long long)self);
		return -EBUSY;
	}
	if (quarantine != NULL && quarantine[0] != '\0') {
		snprintf(errmsg, errlen, "sync is quarantined (%s): a new leader would meet the same problem; "
			 "fix it first (canopyctl status)", quarantine);
		return -EPERM;
	}
	for (i = 0; i < st->n_members; i++) {
		const struct node_member_status *m = &st->members[i];
		if (m->role != NODE_VOTER)
			continue;
		voters++;
		if (m->id == self) {
			healthy++;
		} else if (m->reachable != 1) {
			at = appendf(why, sizeof why, at, "; node %llu is not reachable", (unsigned long long)m->id);
		} else if (m->match_index + CONTROL_DRILL_LAG_MAX < st->commit_index) {
			at = appendf(why, sizeof why, at, "; node %llu lags (match index %llu, commit index %llu)",
				     (unsigned long long)m->id, (unsigned long long)m->match_index,
				     (unsigned long long)st->commit_index);
		} else {
			healthy++;
		}
	}
	majority = voters / 2 + 1;
	/* Three healthy voters: after the drill two remain, which is a
	 * majority of three -- and one spare failure short of none. */
	if (healthy < 3 || healthy - 1 < majority) {
		snprintf(errmsg, errlen, "the cluster could not survive losing its leader: %u of %u voters healthy "
			 "(a drill needs at least 3, and a majority of the voters without the leader)%s",
			 healthy, voters, why);
		return -EHOSTDOWN;
	}
	return 0;
}

int control_parse_drill_body(const char *body, size_t len, int64_t *down_ms, char *errmsg, size_t errlen)
{
	json_error_t jerr;
	json_t *o;
	json_int_t v = 0;
	int rc = 0;

	*down_ms = 0;
	o = json_loadb(len ? body : "{}", len ? len : 2, 0, &jerr);
	if (o == NULL || json_unpack_ex(o, &jerr, 0, "{s?I}", "down_ms", &v) != 0) {
		snprintf(errmsg, errlen, "%s", jerr.text);
		rc = -EINVAL;
	} else if (v < 0) {
		snprintf(errmsg, errlen, "\"down_ms\" must not be negative");
		rc = -EINVAL;
	} else {
		*down_ms = (int64_t)v;
	}
	json_decref(o);
	return rc;
}

/* Every loop iteration: the first moment of this leadership at which the
 * engine could send its first request (see the top of this file). */
static void on_check(uv_check_t *h)
{
	struct agent *a = h->data;
	struct drill *d = &a->drill;
	struct engine_stats es;
	uint64_t term;

	if (a->stopping || !node_leader_ready(&a->node))
		return;
	term = node_term(&a->node);
	if (term != d->lead_term) {
		d->lead_term = term;
		d->export_at = 0;
	}
	if (d->export_at != 0 || !node_may_write(&a->node))
		return;
	if (a->engine != NULL) {
		memset(&es, 0, sizeof es);
		engine_stats(a->engine, &es);
		if (es.state != ENGINE_REFRESHING && es.state != ENGINE_SYNCING && es.state != ENGINE_IDLE)
			return;
	}
	d->export_at = node_now(&a->node);
	d->export_wall_ms = node_wall_ms();
}

static void on_rejoin(uv_timer_t *t)
{
	struct agent *a = t->data;
	struct drill *d = &a->drill;
	uint64_t in, out;

	node_isolate(&a->node, false);
	d->crashed = false;
	node_isolation_stats(&a->node, &in, &out);
	log_warn("failover drill: rejoining the cluster", "role=%s term=%llu leader=%llu dropped_in=%llu dropped_out=%llu",
		 node_state_name(node_state(&a->node)), (unsigned long long)node_term(&a->node),
		 (unsigned long long)node_leader_id(&a->node), (unsigned long long)in, (unsigned long long)out);
}

void control_drill_start(struct agent *a)
{
	struct drill *d = &a->drill;

	memset(d, 0, sizeof *d);
	uv_check_init(&a->loop, &d->check);
	d->check.data = a;
	uv_check_start(&d->check, on_check);
	uv_timer_init(&a->loop, &d->rejoin);
	d->rejoin.data = a;
	d->started = true;
}

void control_drill_close(struct agent *a)
{
	struct drill *d = &a->drill;

	if (!d->started)
		return;
	d->started = false;
	uv_close((uv_handle_t *)&d->check, NULL);
	uv_close((uv_handle_t *)&d->rejoin, NULL);
}

json_t *control_drill_json(struct agent *a)
{
	struct drill *d = &a->drill;
	uint64_t in, out, now = node_now(&a->node);

	node_isolation_stats(&a->node, &in, &out);
	return xcheck(json_pack("{s:b,s:o,s:I,s:I,s:I}", "crashed", d->crashed, "rejoin_in_ms",
				d->crashed ? xcheck(json_integer((json_int_t)(d->crash_until > now ? d->crash_until - now : 0)))
					   : json_null(),
				"started_total", (json_int_t)d->started_total, "raft_dropped_in", (json_int_t)in,
				"raft_dropped_out", (json_int_t)out));
}

static void on_drill_transfer(struct node *n, bool transferred)
{
	struct agent *a = n->data;

	if (node_state(n) != NODE_LEADER)
		transferred = true; /* stepped down: leadership moved (as on_transfer_done) */
	if (transferred) {
		log_info("failover drill: leadership handed over", "leader=%llu term=%llu",
			 (unsigned long long)node_leader_id(n), (unsigned long long)node_term(n));
		return;
	}
	log_warn("failover drill: the transfer did not complete; still leading", "term=%llu",
		 (unsigned long long)node_term(n));
	if (a->engine && node_leader_ready(n))
		identity_resume(a); /* still leading: resume exporting */
}

bool control_drill_handle(struct agent *a, const struct http_request *req, struct http_reply *reply)
{
	struct drill *d = &a->drill;
	enum control_drill_mode mode;
	struct node_status st;
	struct engine_stats es;
	char err[768];
	int64_t down_ms = 0;
	uint64_t term, started_ms;
	unsigned t = a->cfg.cluster.election_timeout_ms;
	bool busy;
	int rv;

	if (strncmp(req->path, "/v1/drill/", 10) != 0)
		return false;
	if (!control_drill_mode_parse(req->path + 10, &mode)) {
		http_reply_error(reply, 404, "no such drill: %s (transfer or crash)", req->path + 10);
		return true;
	}
	if (strcmp(req->method, "POST") != 0) {
		http_reply_error(reply, 405, "%s %s: use POST", req->method, req->path);
		return true;
	}
	if (control_parse_drill_body(req->body, req->body_len, &down_ms, err, sizeof err) != 0) {
		http_reply_error(reply, 400, "bad request body: %s", err);
		return true;
	}
	/* Longer than the election timeout, or the followers would not even
	 * notice; at most a minute. */
	if (down_ms == 0)
		down_ms = 2 * (int64_t)t;
	if (down_ms < (int64_t)t || down_ms > 60000) {
		http_reply_error(reply, 400, "down_ms: from %u (cluster.election_timeout_ms) to 60000", t);
		return true;
	}
	if (control_redirect_to_leader(a, req, reply))
		return true;
	node_status(&a->node, &st);
	memset(&es, 0, sizeof es);
	if (a->engine)
		engine_stats(a->engine, &es);
	busy = d->crashed || node_transferring(&a->node) || a->transfer_pending != NULL;
	rv = control_drill_check(&st, a->cfg.node.id, busy, es.quarantine_reason, err, sizeof err);
	if (rv != 0) {
		log_warn("failover drill refused", "mode=%s reason=\"%s\"", control_drill_mode_name(mode), err);
		http_reply_error(reply, 409, "drill refused: %s", err);
		return true;
	}
	term = st.term;
	started_ms = node_wall_ms();
	if (mode == CONTROL_DRILL_TRANSFER) {
		if (a->engine)
			engine_follow(a->engine); /* stop exporting before handing over */
		rv = node_transfer(&a->node, 0, on_drill_transfer);
		if (rv != 0) {
			if (a->engine && node_leader_ready(&a->node))
				identity_resume(a); /* nothing changed: keep exporting */
			http_reply_error(reply, 409, "drill transfer: %s", raft_strerror(rv));
			return true;
		}
	} else {
		/* Play dead. The lease ends now (leader_suspend) and its renewal
		 * cannot commit while cut off: the engine's watchdog cancels what
		 * is in flight and nothing more goes to the target -- the lease
		 * logic itself keeps this node from writing, as it would keep a
		 * partitioned one. The cut stops heartbeats; the watches answered
		 * 409 (agent/leader_watch.c) make followers elect at once, as a
		 * crash's refused connection does, and the winner's hold
		 * (leader_hold) still waits out a lease this node no longer has. */
		node_lease_suspend(&a->node);
		node_isolate(&a->node, true);
		d->crashed = true;
		d->crash_until = node_now(&a->node) + (uint64_t)down_ms;
		uv_timer_start(&d->rejoin, on_rejoin, (uint64_t)down_ms, 0);
	}
	d->started_total++;
	log_warn("failover drill started", "mode=%s term=%llu down_ms=%lld", control_drill_mode_name(mode),
		 (unsigned long long)term, mode == CONTROL_DRILL_CRASH ? (long long)down_ms : 0LL);
	control_reply_json(reply, 202,
			   json_pack("{s:s,s:I,s:I,s:I,s:I,s:I}", "mode", control_drill_mode_name(mode), "old_leader",
				     (json_int_t)a->cfg.node.id, "term", (json_int_t)term, "started_at_ms",
				     (json_int_t)started_ms, "down_ms",
				     (json_int_t)(mode == CONTROL_DRILL_CRASH ? down_ms : 0), "election_timeout_ms",
				     (json_int_t)t));
	return true;
}
