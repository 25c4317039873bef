/*
 * agent/ctl_drill.c -- `canopyctl drill failover [--mode transfer|crash]
 * [--count N] [--json]` (see ctl.h; the leader's side is
 * agent/control_drill.c).
 *
 * Each drill: POST /v1/drill/MODE to the leader, which answers with the
 * drill's start on its clock (started_at_ms, epoch ms); then every other
 * member's status is read until one leads a newer term and says it could
 * export in it (failover.last_first_export_term). The three figures are
 * that new leader's own times, in epoch ms, minus the start:
 *
 *   detected_ms      it became candidate (pre-vote included): it noticed
 *   elected_ms       it won the election: a new leader is known
 *   first_export_ms  barrier committed, hold and lease allow writes, and its
 *                    engine runs a source session: its first write can go
 *
 * so they do not depend on how often canopyctl polls, only on the two
 * nodes' clocks agreeing (one host, or NTP). Before the next drill it waits
 * until the old leader follows the new one and every voter is reachable and
 * caught up again -- the leader then checks that itself before it starts.
 */
#include <errno.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <jansson.h>

#include "agent/ctl.h"
#include "agent/http_body.h"
#include "common/xalloc.h"

#define POLL_MS 10
#define MEMBERS_MAX 32

struct drill_result {
	long long old_leader, new_leader, old_term, term;
	long long started_at_ms, down_ms;
	long long detected_ms, elected_ms, first_export_ms;
};

static uint64_t mono_ms(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

static void sleep_ms(unsigned ms)
{
	struct timespec ts = {.tv_sec = ms / 1000, .tv_nsec = (long)(ms % 1000) * 1000000L};
	nanosleep(&ts, NULL);
}

static long long num(json_t *o, const char *key)
{
	return json_integer_value(json_object_get(o, key));
}

/* GET /v1/status of `server`: the parsed answer, or NULL (errmsg says why). */
static json_t *get_status(const char *server, char *errmsg, size_t errlen)
{
	struct http_body body = {0};
	json_error_t jerr;
	json_t *o = NULL;
	long status = ctl_request(server, "GET", "/v1/status", NULL, NULL, &body, errmsg, errlen);

	if (status == 200) {
		o = json_loadb(body.p ? body.p : "", body.len, 0, &jerr);
		if (o == NULL)
			snprintf(errmsg, errlen, "%s: status is not JSON: %s", server, jerr.text);
	} else if (status >= 0) {
		snprintf(errmsg, errlen, "%s: GET /v1/status: HTTP %ld", server, status);
	}
	free(body.p);
	return o;
}

/* The control address `id` published (status members[].control_address). */
static const char *member_address(json_t *st, long long id)
{
	json_t *m;
	size_t i;

	json_array_foreach(json_object_get(st, "members"), i, m)
		if (num(m, "id") == id)
			return json_string_value(json_object_get(m, "control_address"));
	return NULL;
}

/* The leader's control address as `st` (any node's status) knows it, into
 * addr; false (errmsg says why) when there is none. */
static bool leader_address(const char *server, json_t *st, char *addr, size_t size, char *errmsg, size_t errlen)
{
	long long id = num(json_object_get(st, "leader"), "id");
	const char *role = json_string_value(json_object_get(st, "role"));
	const char *a;

	if (role && strcmp(role, "leader") == 0) {
		snprintf(addr, size, "%s", server);
		return true;
	}
	if (id == 0) {
		snprintf(errmsg, errlen, "drill refused: no leader: node %lld (%s) knows none; retry when "
			 "canopyctl status shows one", num(st, "node_id"), role ? role : "?");
		return false;
	}
	a = member_address(st, id);
	if (a == NULL) {
		snprintf(errmsg, errlen, "drill refused: the leader, node %lld, has not published its control "
			 "address yet", id);
		return false;
	}
	snprintf(addr, size, "%s", a);
	return true;
}

/* Add the control addresses `st` knows of members not in ids[0..n). */
static unsigned learn_addresses(json_t *st, long long ids[], char addrs[][256], unsigned n, unsigned max)
{
	json_t *m;
	size_t i;
	unsigned k;

	json_array_foreach(json_object_get(st, "members"), i, m)
	{
		const char *a = json_string_value(json_object_get(m, "control_address"));
		if (a == NULL || strlen(a) >= 256 || n == max)
			continue;
		for (k = 0; k < n; k++)
			if (ids[k] == num(m, "id"))
				break;
		if (k < n)
			continue;
		ids[n] = num(m, "id");
		snprintf(addrs[n], 256, "%s", a);
		n++;
	}
	return n;
}

/* The cluster is back to what a drill needs (the leader re-checks it). */
static bool settled(json_t *st)
{
	json_t *m, *drill = json_object_get(st, "drill");
	size_t i;
	long long commit = num(st, "commit_index");

	if (!json_is_true(json_object_get(st, "leader_ready")) || json_is_true(json_object_get(drill, "crashed")))
		return false;
	json_array_foreach(json_object_get(st, "members"), i, m)
	{
		const char *role = json_string_value(json_object_get(m, "role"));
		if (role == NULL || strcmp(role, "voter") != 0 || num(m, "id") == num(st, "node_id"))
			continue;
		if (!json_is_true(json_object_get(m, "reachable")) || num(m, "match_index") + 64 < commit)
			return false;
	}
	return true;
}

static int cmp_ll(const void *a, const void *b)
{
	long long x = *(const long long *)a, y = *(const long long *)b;
	return x < y ? -1 : x > y;
}

struct stats {
	long long min, median, max;
};

static struct stats figures(const struct drill_result *r, unsigned n, size_t offset)
{
	long long *v = xcalloc(n, sizeof *v);
	struct stats s;
	unsigned i;

	for (i = 0; i < n; i++)
		v[i] = *(const long long *)((const char *)&r[i] + offset);
	qsort(v, n, sizeof *v, cmp_ll);
	s.min = v[0];
	s.max = v[n - 1];
	s.median = n % 2 ? v[n / 2] : (v[n / 2 - 1] + v[n / 2]) / 2;
	free(v);
	return s;
}

static json_t *stats_json(struct stats s)
{
	return xcheck(json_pack("{s:I,s:I,s:I}", "min", (json_int_t)s.min, "median", (json_int_t)s.median, "max",
				(json_int_t)s.max));
}

static void print_report(FILE *out, const char *mode, const struct drill_result *r, unsigned n, long long t,
			 bool json)
{
	struct stats det, ele, exp;
	unsigned i;

	if (n == 0)
		return;
	det = figures(r, n, offsetof(struct drill_result, detected_ms));
	ele = figures(r, n, offsetof(struct drill_result, elected_ms));
	exp = figures(r, n, offsetof(struct drill_result, first_export_ms));
	if (json) {
		json_t *drills = xcheck(json_array()), *o;
		char *text;
		for (i = 0; i < n; i++) {
			json_t *d = xcheck(json_pack(
				"{s:s,s:I,s:I,s:I,s:I,s:I,s:I,s:I,s:I}", "mode", mode, "old_leader",
				(json_int_t)r[i].old_leader, "new_leader", (json_int_t)r[i].new_leader, "old_term",
				(json_int_t)r[i].old_term, "term", (json_int_t)r[i].term, "started_at_ms",
				(json_int_t)r[i].started_at_ms, "detected_ms", (json_int_t)r[i].detected_ms,
				"elected_ms", (json_int_t)r[i].elected_ms, "first_export_ms",
				(json_int_t)r[i].first_export_ms));
			if (r[i].down_ms)
				json_object_set_new(d, "down_ms", xcheck(json_integer(r[i].down_ms)));
			if (json_array_append_new(drills, d) != 0)
				xoom("json_array_append_new");
		}
		o = xcheck(json_pack("{s:o,s:{s:s,s:I,s:I,s:o,s:o,s:o}}", "drills", drills, "summary", "mode", mode,
				     "count", (json_int_t)n, "election_timeout_ms", (json_int_t)t, "detected_ms",
				     stats_json(det), "elected_ms", stats_json(ele), "first_export_ms",
				     stats_json(exp)));
		text = xcheck(json_dumps(o, JSON_COMPACT));
		fprintf(out, "%s\n", text);
		free(text);
		json_decref(o);
		return;
	}
	fprintf(out, "\n%u %s drill%s, election timeout %lld ms (ms after the drill started):\n", n, mode,
		n == 1 ? "" : "s", t);
	fprintf(out, "  %-10s %6s %6s %6s\n", "", "min", "median", "max");
	fprintf(out, "  %-10s %6lld %6lld %6lld\n", "detected", det.min, det.median, det.max);
	fprintf(out, "  %-10s %6lld %6lld %6lld\n", "elected", ele.min, ele.median, ele.max);
	fprintf(out, "  %-10s %6lld %6lld %6lld\n", "exporting", exp.min, exp.median, exp.max);
}

/* POST the drill to the leader at addr; fills r's start. */
static int start_drill(const char *addr, const char *mode, const char *token, struct drill_result *r, long long *t,
		       char *errmsg, size_t errlen)
{
	struct http_body body = {0};
	char path[64], e[512];
	json_error_t jerr;
	json_t *o;
	long status;
	int rc = -EIO;

	snprintf(path, sizeof path, "/v1/drill/%s", mode);
	status = ctl_request(addr, "POST", path, NULL, token, &body, e, sizeof e);
	if (status < 0) {
		snprintf(errmsg, errlen, "%s", e);
		goto out;
	}
	o = json_loadb(body.p ? body.p : "", body.len, 0, &jerr);
	if (status != 202) {
		const char *why = json_string_value(json_object_get(o, "error"));
		if (why == NULL)
			why = "no error message";
		if (strncmp(why, "drill refused: ", 15) == 0)
			why += 15;
		snprintf(errmsg, errlen, "drill refused: %s (HTTP %ld from %s)", why, status, addr);
		json_decref(o);
		goto out;
	}
	r->old_leader = num(o, "old_leader");
	r->old_term = num(o, "term");
	r->started_at_ms = num(o, "started_at_ms");
	r->down_ms = num(o, "down_ms");
	*t = num(o, "election_timeout_ms");
	json_decref(o);
	rc = 0;
out:
	free(body.p);
	return rc;
}

int ctl_drill(const char *server, const char *token, const char *mode, unsigned count, bool json, FILE *out,
	      FILE *err)
{
	struct drill_result *r = xcalloc(count, sizeof *r);
	char leader[256], errmsg[1024], addrs[MEMBERS_MAX][256], old_addr[256] = "";
	long long ids[MEMBERS_MAX], t = 1000;
	unsigned i, j, n_members, done = 0;
	json_t *st;
	int rc = 1;

	st = get_status(server, errmsg, sizeof errmsg);
	if (st == NULL) {
		fprintf(err, "canopyctl: %s\n", errmsg);
		goto out;
	}
	if (!leader_address(server, st, leader, sizeof leader, errmsg, sizeof errmsg)) {
		fprintf(err, "canopyctl: %s\n", errmsg);
		json_decref(st);
		goto out;
	}
	json_decref(st);

	for (i = 0; i < count; i++) {
		struct drill_result *d = &r[i];
		uint64_t deadline, limit;
		bool found = false;

		/* Between drills: let the cluster settle (the leader refuses
		 * otherwise, and says why). */
		deadline = mono_ms() + 15000 + 10 * (uint64_t)t;
		for (;;) {
			st = get_status(leader, errmsg, sizeof errmsg);
			if (i == 0 || (st && settled(st)) || mono_ms() > deadline)
				break;
			json_decref(st);
			sleep_ms(POLL_MS * 5);
		}
		if (st == NULL) {
			fprintf(err, "canopyctl: %s\n", errmsg);
			goto out;
		}
		n_members = learn_addresses(st, ids, addrs, 0, MEMBERS_MAX);
		json_decref(st);
		if (start_drill(leader, mode, token, d, &t, errmsg, sizeof errmsg) != 0) {
			fprintf(err, "canopyctl: %s\n", errmsg);
			goto out;
		}
		for (j = 0; j < n_members; j++)
			if (ids[j] == d->old_leader)
				memcpy(old_addr, addrs[j], sizeof old_addr);

		/* The new leader: a newer term, and it could export in it. */
		limit = (uint64_t)d->down_ms + (30000 > 20 * t ? 30000 : 20 * (uint64_t)t);
		deadline = mono_ms() + limit;
		while (!found && mono_ms() < deadline) {
			for (j = 0; j < n_members && !found; j++) {
				json_t *f;
				const char *role;
				st = get_status(addrs[j], errmsg, sizeof errmsg);
				if (st == NULL)
					continue;
				/* a member not known before (it published its
				 * address since, e.g. as the new leader) */
				n_members = learn_addresses(st, ids, addrs, n_members, MEMBERS_MAX);
				role = json_string_value(json_object_get(st, "role"));
				f = json_object_get(st, "failover");
				if (num(st, "node_id") != d->old_leader && role && strcmp(role, "leader") == 0 &&
				    num(st, "term") > d->old_term &&
				    num(f, "last_first_export_term") == num(st, "term") &&
				    json_is_integer(json_object_get(f, "last_elected_at_ms"))) {
					d->new_leader = num(st, "node_id");
					d->term = num(st, "term");
					d->detected_ms = num(f, "last_candidate_at_ms") - d->started_at_ms;
					d->elected_ms = num(f, "last_elected_at_ms") - d->started_at_ms;
					d->first_export_ms = num(f, "last_first_export_at_ms") - d->started_at_ms;
					memcpy(leader, addrs[j], sizeof leader);
					found = true;
				}
				json_decref(st);
			}
			if (!found)
				sleep_ms(POLL_MS);
		}
		if (!found) {
			fprintf(err, "canopyctl: drill %u (%s): no new leader could export within %llu ms of the drill's "
				"start; see canopyctl status on every node\n", i + 1, mode, (unsigned long long)limit);
			goto out;
		}
		done++;
		if (!json)
			fprintf(out, "drill %u/%u %s: leader %lld -> %lld (term %lld -> %lld): detected %lld ms, "
				"elected %lld ms, exporting %lld ms\n", i + 1, count, mode, d->old_leader,
				d->new_leader, d->old_term, d->term, d->detected_ms, d->elected_ms,
				d->first_export_ms);

		/* The old leader follows the new one (after a crash drill: it
		 * rejoined) before the next drill or the end. */
		deadline = mono_ms() + (uint64_t)d->down_ms + 15000 + 10 * (uint64_t)t;
		for (;;) {
			bool back = false;
			st = old_addr[0] ? get_status(old_addr, errmsg, sizeof errmsg) : NULL;
			if (st != NULL) {
				back = !json_is_true(json_object_get(json_object_get(st, "drill"), "crashed")) &&
				       num(json_object_get(st, "leader"), "id") == d->new_leader;
				json_decref(st);
			}
			if (back || old_addr[0] == '\0')
				break;
			if (mono_ms() > deadline) {
				fprintf(err, "canopyctl: drill %u (%s): the old leader, node %lld, does not follow node "
					"%lld yet; see canopyctl status on it\n", i + 1, mode, d->old_leader,
					d->new_leader);
				goto out;
			}
			sleep_ms(POLL_MS * 5);
		}
	}
	rc = 0;
out:
	if (rc != 0 && done > 0 && !json)
		fprintf(err, "canopyctl: %u of %u drills completed\n", done, count);
	if (rc == 0)
		print_report(out, mode, r, done, t, json);
	free(r);
	return rc;
}
