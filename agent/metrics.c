/*
 * agent/metrics.c -- GET /metrics: this node's figures in the Prometheus
 * text exposition format (version 0.0.4), named after Prometheus's naming
 * practices: base units (seconds, bytes), counters ending in _total, a
 * `canopy_` prefix, and the standard process_* figures of the client
 * libraries, read from /proc/self (proc(5)).
 *
 * Names are a contract with dashboards and alerts (docs/operations.md,
 * "Metrics"): extend, never rename. The older names in milliseconds stay,
 * marked deprecated in their HELP, next to their replacement in seconds.
 */
#include <dirent.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <time.h>
#include <unistd.h>

#include "agent/agent.h"
#include "common/xalloc.h"
#include "sync/engine/stages.h"
#include "sync/provlog.h"
#include "sync/state/figures.h"
#include "sync/state/object.h"
#include "sync/target/target_metrics.h"

#ifndef CANOPY_COMMIT
#define CANOPY_COMMIT "unknown"
#endif

/* Append printf output to a growing buffer. */
struct text {
	char *buf;
	size_t len, cap;
};

static void put(struct text *t, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void put(struct text *t, const char *fmt, ...)
{
	va_list ap;
	int n;

	for (;;) {
		if (t->buf) {
			va_start(ap, fmt);
			n = vsnprintf(t->buf + t->len, t->cap - t->len, fmt, ap);
			va_end(ap);
			if (n >= 0 && (size_t)n < t->cap - t->len) {
				t->len += (size_t)n;
				return;
			}
		}
		t->cap = t->cap ? t->cap * 2 : 4096;
		t->buf = xrealloc(t->buf, t->cap);
	}
}

/* A family's HELP and TYPE lines; its samples follow. */
static void family(struct text *t, const char *name, const char *type, const char *help)
{
	put(t, "# HELP %s %s\n# TYPE %s %s\n", name, help, name, type);
}

static void metric(struct text *t, const char *name, const char *type, const char *help,
		   unsigned long long v)
{
	family(t, name, type, help);
	put(t, "%s %llu\n", name, v);
}

/* A figure in seconds or bytes (%.9g: nanoseconds for a few seconds). */
static void metric_s(struct text *t, const char *name, const char *type, const char *help, double v)
{
	family(t, name, type, help);
	put(t, "%s %.9g\n", name, v);
}

/* ---- process_*: what Prometheus's client libraries export ---------------- */

/* CPU seconds (user + system) and resident/virtual bytes: /proc/self/stat
 * fields 14, 15 (utime, stime in clock ticks) and 23, 24 (vsize in bytes,
 * rss in pages), proc(5). The name field (2) may hold spaces and
 * parentheses: the rest starts after its last ')'. */
static bool proc_stat(double *cpu_s, double *rss_bytes, double *vsize_bytes)
{
	char buf[1024], *p;
	unsigned long utime, stime, vsize;
	long rss, tick = sysconf(_SC_CLK_TCK), page = sysconf(_SC_PAGESIZE);
	FILE *f = fopen("/proc/self/stat", "re");
	size_t n;

	if (f == NULL)
		return false;
	n = fread(buf, 1, sizeof buf - 1, f);
	fclose(f);
	buf[n] = '\0';
	if ((p = strrchr(buf, ')')) == NULL || tick <= 0 || page <= 0)
		return false;
	/* from field 3 (state) on */
	if (sscanf(p + 2, "%*c %*d %*d %*d %*d %*d %*u %*u %*u %*u %*u %lu %lu %*d %*d %*d %*d %*d %*d %*u %lu %ld",
		   &utime, &stime, &vsize, &rss) != 4)
		return false;
	*cpu_s = (double)(utime + stime) / (double)tick;
	*vsize_bytes = (double)vsize;
	*rss_bytes = (double)rss * (double)page;
	return true;
}

static long open_fds(void)
{
	DIR *d = opendir("/proc/self/fd");
	struct dirent *e;
	long n = 0;

	if (d == NULL)
		return -1;
	while ((e = readdir(d)) != NULL)
		if (e->d_name[0] != '.')
			n++;
	closedir(d);
	return n - 1; /* the directory stream's own descriptor */
}

static void process_metrics(struct text *t, struct agent *a)
{
	double cpu, rss, vsize;
	struct rlimit rl;
	long fds = open_fds();

	metric(t, "process_start_time_seconds", "gauge", "Start time of the process since unix epoch in seconds.",
	       (unsigned long long)a->started_wall);
	if (proc_stat(&cpu, &rss, &vsize)) {
		metric_s(t, "process_cpu_seconds_total", "counter", "Total user and system CPU time spent in seconds.",
			 cpu);
		metric_s(t, "process_resident_memory_bytes", "gauge", "Resident memory size in bytes.", rss);
		metric_s(t, "process_virtual_memory_bytes", "gauge", "Virtual memory size in bytes.", vsize);
	}
	if (fds >= 0)
		metric(t, "process_open_fds", "gauge", "Number of open file descriptors.", (unsigned long long)fds);
	if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur != RLIM_INFINITY)
		metric(t, "process_max_fds", "gauge", "Maximum number of open file descriptors.",
		       (unsigned long long)rl.rlim_cur);
}

/* ---- histograms: where a change's export time goes (sync/engine/stages.h),
 * the target's requests (sync/target/target_metrics.h) ---------------------- */

/* One labelled series of histogram `name`: `bucket` per bucket (not
 * cumulative) for the `n` upper `bounds`, then +Inf from `count`. */
static void histogram_series(struct text *t, const char *name, const char *label, const char *value,
			     const double *bounds, unsigned n, const uint64_t *bucket, uint64_t count, double sum)
{
	uint64_t cum = 0;

	for (unsigned i = 0; i < n; i++) {
		cum += bucket[i];
		put(t, "%s_bucket{%s=\"%s\",le=\"%g\"} %llu\n", name, label, value, bounds[i], (unsigned long long)cum);
	}
	put(t, "%s_bucket{%s=\"%s\",le=\"+Inf\"} %llu\n", name, label, value, (unsigned long long)count);
	put(t, "%s_sum{%s=\"%s\"} %.9g\n", name, label, value, sum);
	put(t, "%s_count{%s=\"%s\"} %llu\n", name, label, value, (unsigned long long)count);
}

static void export_stages_text(struct text *t)
{
	const struct export_stages *m = export_stages_get();

	family(t, "canopy_export_stage_seconds", "histogram",
	       "Time each change from the source spent in each stage of the export on this leader: queue, plan, "
	       "intent, target, commit, and total (received -> committed).");
	for (unsigned s = 0; s < EXPORT_STAGES; s++)
		histogram_series(t, "canopy_export_stage_seconds", "stage", export_stage_name(s), export_stage_bounds,
				 EXPORT_STAGE_BUCKETS, m->stage[s].bucket, m->stage[s].count, m->stage[s].sum);
}

static void target_metrics_text(struct text *t)
{
	const struct target_metrics *m = target_metrics_get();
	unsigned op, act, r;

	family(t, "canopy_target_request_duration_seconds", "histogram",
	       "Time from sending a request to the target to its answer (or transport error), by kind of request.");
	for (op = 0; op < TARGET_REQ_OPS; op++)
		histogram_series(t, "canopy_target_request_duration_seconds", "op", target_request_op_name(op),
				 target_latency_bounds, TARGET_LATENCY_BUCKETS, m->latency[op].bucket,
				 m->latency[op].count, m->latency[op].sum);
	family(t, "canopy_target_errors_total", "counter",
	       "Target operations that failed, by the engine's action and the reason (series appear at the first one).");
	for (act = TARGET_UPSERT; act < TARGET_ACTIONS; act++)
		for (r = 0; r < TARGET_ERR_REASONS; r++)
			if (m->errors[act][r])
				put(t, "canopy_target_errors_total{op=\"%s\",reason=\"%s\"} %llu\n",
				    target_action_name(act), target_error_reason_name(r),
				    (unsigned long long)m->errors[act][r]);
}

/* ---- the leader's view of its peers --------------------------------------- */

static void peer_metrics(struct text *t, struct agent *a, const struct node_status *st)
{
	unsigned i;

	family(t, "canopy_peer_reachable", "gauge",
	       "Leader only: 1 when the peer was heard from within the election timeout plus two heartbeats, else 0.");
	for (i = 0; st->state == NODE_LEADER && i < st->n_members; i++) {
		const struct node_member_status *m = &st->members[i];
		if (m->id != a->cfg.node.id && m->reachable >= 0)
			put(t, "canopy_peer_reachable{peer=\"%llu\"} %d\n", (unsigned long long)m->id, m->reachable);
	}
	family(t, "canopy_peer_lag_entries", "gauge",
	       "Leader only: log entries the peer has yet to store (the leader's last index minus the peer's match index).");
	for (i = 0; st->state == NODE_LEADER && i < st->n_members; i++) {
		const struct node_member_status *m = &st->members[i];
		if (m->id != a->cfg.node.id)
			put(t, "canopy_peer_lag_entries{peer=\"%llu\"} %llu\n", (unsigned long long)m->id,
			    (unsigned long long)(st->last_index > m->match_index ? st->last_index - m->match_index : 0));
	}
}

#define DEPRECATED(what) "Deprecated: use " what ". "

char *metrics_text(struct agent *a, size_t *len)
{
	struct node_status st;
	struct node_stats ns;
	struct provlog_health ph;
	struct engine_stats es;
	struct sync_figures f;
	struct text t = {0};
	static const enum node_state roles[NODE_STATES] = {NODE_LEADER, NODE_FOLLOWER, NODE_CANDIDATE,
							   NODE_UNAVAILABLE};
	unsigned i;

	es = control_sync_stats(a);
	node_status(&a->node, &st);
	node_stats(&a->node, &ns);
	provlog_health(&ph);
	family(&t, "canopy_build_info", "gauge", "Always 1; the labels say which build runs.");
	put(&t, "canopy_build_info{version=\"%s\",commit=\"%s\"} 1\n", CANOPY_VERSION, CANOPY_COMMIT);
	process_metrics(&t, a);
	put(&t, "# HELP canopy_role 1 for the role this node has now.\n# TYPE canopy_role gauge\n");
	for (i = 0; i < NODE_STATES; i++)
		put(&t, "canopy_role{role=\"%s\"} %d\n", node_state_name(roles[i]), st.state == roles[i]);
	metric(&t, "canopy_term", "gauge", "Current Raft term.", st.term);
	metric(&t, "canopy_commit_index", "gauge", "Highest log index known committed.",
	       st.commit_index);
	metric(&t, "canopy_applied_index", "gauge", "Highest log index applied to the state.",
	       st.applied_index);
	metric(&t, "canopy_leader_ready", "gauge",
	       "1 when this node is leader and its post-election barrier committed.", st.ready);
	peer_metrics(&t, a, &st);
	metric(&t, "canopy_storage_ok", "gauge",
	       "1 when the data dir and the provisioning log can be written (status: storage).",
	       control_storage_overall(&st, &ph) == STORAGE_OK);
	metric(&t, "canopy_provlog_write_errors_total", "counter",
	       "Provisioning log entries that could not be written.", ph.write_errors);
	metric(&t, "canopy_uptime_seconds", "gauge",
	       DEPRECATED("time() - process_start_time_seconds") "Seconds since the agent started.",
	       (unsigned long long)(time(NULL) - a->started_wall));
	metric(&t, "canopy_elections_total", "counter", "Times this node became candidate.",
	       ns.elections);
	metric(&t, "canopy_vote_retries_total", "counter",
	       "Candidate rounds (split votes, lost pre-votes) this node retried early, through pre-vote.", ns.vote_retries);
	metric(&t, "canopy_early_elections_total", "counter",
	       "Elections this node started at once: its leader watch was refused, or the leader said it no longer leads.",
	       a->leader_watch.early_elections);
	metric(&t, "canopy_leader_watch_drops_total", "counter",
	       "Leader watch connections that dropped (each is re-asked before any election).",
	       a->leader_watch.drops_seen);
	metric(&t, "canopy_lease_suspensions_total", "counter",
	       "Times this leader suspended its write lease because a follower's watch closed.",
	       a->leader_watch.suspensions);
	metric(&t, "canopy_spurious_elections_total", "counter",
	       "Times this node lost leadership while alive and not handing over.", ns.spurious_elections);
	metric_s(&t, "canopy_loop_lag_max_seconds", "gauge",
		 "Longest the event loop was late since start (heartbeats and votes wait that long).",
		 a->loop_watch.lag_max_ms / 1e3);
	metric(&t, "canopy_loop_lag_max_ms", "gauge",
	       DEPRECATED("canopy_loop_lag_max_seconds") "Longest the event loop was late since start (heartbeats and votes wait that long).",
	       a->loop_watch.lag_max_ms);
	metric(&t, "canopy_loop_stalls_total", "counter",
	       "Times the event loop was late by more than a quarter of the election timeout.",
	       a->loop_watch.stalls);
	metric_s(&t, "canopy_failover_bound_seconds", "gauge",
		 "cluster.election_timeout_ms in seconds: a stopped leader is replaced, and exporting, within it.",
		 a->cfg.cluster.election_timeout_ms / 1e3);
	metric(&t, "canopy_failover_bound_ms", "gauge",
	       DEPRECATED("canopy_failover_bound_seconds") "cluster.election_timeout_ms: a stopped leader is replaced, and exporting, within it.",
	       a->cfg.cluster.election_timeout_ms);
	metric(&t, "canopy_leader_changes_total", "counter", "Times the known leader changed.",
	       ns.leader_changes);
	metric(&t, "canopy_became_leader_total", "counter",
	       "Times this node became leader (barrier committed).", ns.became_leader);
	metric_s(&t, "canopy_barrier_latency_seconds", "gauge",
		 "Latency of the latest post-election barrier.", ns.last_barrier_ms / 1e3);
	metric(&t, "canopy_barrier_latency_ms", "gauge",
	       DEPRECATED("canopy_barrier_latency_seconds") "Latency of the latest post-election barrier.",
	       ns.last_barrier_ms);
	metric(&t, "canopy_lease_heartbeat_renewals_total", "counter",
	       "Write lease renewals by heartbeat answers (no log entry).", ns.lease_heartbeat_renewals);
	metric(&t, "canopy_lease_renewal_barriers_total", "counter",
	       "Barrier entries appended to renew the write lease.", ns.lease_renewal_barriers);
	metric(&t, "canopy_fsm_applied_total", "counter", "Entries applied to the state machine.",
	       ns.fsm_applied);
	metric(&t, "canopy_fsm_refused_total", "counter",
	       "Entries refused (unknown version or malformed).", ns.fsm_refused);
	metric(&t, "canopy_objects", "gauge", "Objects in the replicated object table.",
	       state_count(&a->state, STATE_NS_OBJECT));
	control_sync_figures(a, &f);
	metric(&t, "canopy_exported_total", "counter",
	       "Target writes acknowledged, cluster-wide (replicated: the same on every node).", es.exported_total);
	metric(&t, "canopy_exported_objects_total", "counter",
	       "Objects written to the target, cluster-wide (replicated: the same on every node).", f.objects);
	metric_s(&t, "canopy_export_rate", "gauge",
		 "Objects written per second over the last minute (replicated figures).",
		 figures_rate(&f, (uint64_t)node_wall_ms()));
	metric(&t, "canopy_last_export_timestamp_seconds", "gauge",
	       "When the cluster last had a target write acknowledged, since unix epoch, by the leader's clock "
	       "(replicated; 0: never).",
	       (unsigned long long)es.last_export_at);
	family(&t, "canopy_cursor_age_seconds", "gauge",
	       "Since the replicated source cursor last moved (its time by the leader's clock); no sample before it moved.");
	if (f.cursor_at_ms != 0) {
		uint64_t now = (uint64_t)node_wall_ms();
		put(&t, "canopy_cursor_age_seconds %.9g\n", (double)(now > f.cursor_at_ms ? now - f.cursor_at_ms : 0) / 1e3);
	}
	metric(&t, "canopy_errors_total", "counter",
	       "Target operations that failed, entries that could not be mapped and batches that started over, "
	       "cluster-wide (replicated; canopy_target_errors_total has this node's by action and reason).",
	       es.errors_total);
	metric(&t, "canopy_pending_deletes", "gauge", "Deletes staged awaiting approval.",
	       es.pending_deletes);
	metric(&t, "canopy_target_quarantined", "gauge", "1 while the target is quarantined.",
	       es.target.quarantined);
	metric(&t, "canopy_sync_quarantined", "gauge",
	       "1 while the sync is quarantined (any reason: source, target, delete threshold).",
	       es.quarantine_reason[0] != '\0');
	if (es.quarantine_reason[0]) {
		put(&t, "# HELP canopy_sync_quarantine_reason The reason of the current quarantine.\n"
			"# TYPE canopy_sync_quarantine_reason gauge\n"
			"canopy_sync_quarantine_reason{reason=\"%s\"} 1\n", es.quarantine_reason);
	}
	metric(&t, "canopy_retry_set_objects", "gauge",
	       "Objects whose change the target has not taken yet; retried with backoff (replicated).",
	       state_count(&a->state, STATE_NS_RETRY));
	metric(&t, "canopy_failed_objects", "gauge",
	       "Objects the target refused for good; retried on canopyctl resync (replicated).",
	       state_count(&a->state, STATE_NS_FAILED));
	metric_s(&t, "canopy_export_lag_seconds", "gauge",
		 "Latest batch: from its oldest source event reaching the leader's engine to its commit (replicated).",
		 es.export_lag_ms / 1e3);
	metric(&t, "canopy_export_lag_ms", "gauge",
	       DEPRECATED("canopy_export_lag_seconds") "Latest batch: from its oldest source event reaching the engine to its commit.",
	       es.export_lag_ms);
	metric(&t, "canopy_lease_cancels_total", "counter",
	       "Batches whose in-flight requests were cancelled when the write lease ran out.",
	       es.lease_cancels_total);
	metric(&t, "canopy_control_requests_total", "counter", "Control API requests served.",
	       a->http_requests);
	if (a->health) {
		struct health_metrics hm;
		health_metrics(a->health, &hm);
		metric(&t, "canopy_source_up", "gauge",
		       "1 when this node's latest source check (bind + read of the users base) worked.",
		       (unsigned long long)hm.source_up);
		metric(&t, "canopy_target_up", "gauge",
		       "1 when this node's latest target check (GET ServiceProviderConfig) worked.",
		       (unsigned long long)hm.target_up);
		metric(&t, "canopy_health_handovers_total", "counter",
		       "Leadership transfers made because this leader could not use its source or target.",
		       hm.handovers);
	}
	export_stages_text(&t);
	target_metrics_text(&t);
	*len = t.len;
	return t.buf;
}
