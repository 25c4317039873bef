/*
 * agent/ctl_logs.c -- `canopyctl logs --cluster`: every member's provisioning
 * log, merged (see ctl.h).
 *
 * Each node's log holds the operations that node made while it led
 * (sync/provlog.h), so the cluster's history is the union of the members'
 * logs. The members and their control addresses come from GET /v1/status
 * (members[].control_address: published by every node that led, known to
 * the leader from health reports); a member whose address the node asked
 * does not know is looked up in the leader's status.
 */
#include "agent/ctl.h"
#include "agent/http_body.h"
#include "common/xalloc.h"
#include "sync/provlog.h"

#include <jansson.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#define MEMBERS_MAX 64 /* far more than a Raft group has; the list comes from the network */

struct member {
	long long id;
	char address[256]; /* "" unknown */
};

struct sorted {
	json_t *entry;
	int64_t us;
	long long node;
	size_t seq;
};

static long long num(json_t *o, const char *key)
{
	return json_integer_value(json_object_get(o, key));
}

/* GET `path` of `server` as JSON; NULL with errmsg when not a 200 with JSON. */
static json_t *get_json(const char *server, const char *path, char *errmsg, size_t errlen)
{
	struct http_body body = {0};
	json_error_t jerr;
	json_t *o = NULL;
	long status = ctl_request(server, "GET", path, NULL, NULL, &body, errmsg, errlen);

	if (status >= 0) {
		o = json_loadb(body.p ? body.p : "", body.len, 0, &jerr);
		if (o == NULL) {
			snprintf(errmsg, errlen, "%s answered HTTP %ld with a body that is not JSON: %s", server,
				 status, jerr.text);
		} else if (status != 200) {
			const char *e = json_string_value(json_object_get(o, "error"));
			snprintf(errmsg, errlen, "%s: HTTP %ld: %s", server, status, e ? e : "no error message");
			json_decref(o);
			o = NULL;
		}
	}
	free(body.p);
	return o;
}

/* Add members[] of `st` not yet in m[0..n), or fill in an unknown address. */
static unsigned learn(json_t *st, struct member *m, unsigned n)
{
	json_t *jm;
	size_t i;
	unsigned k;

	json_array_foreach(json_object_get(st, "members"), i, jm)
	{
		const char *a = json_string_value(json_object_get(jm, "control_address"));
		long long id = num(jm, "id");
		if (id <= 0)
			continue;
		for (k = 0; k < n && m[k].id != id; k++)
			;
		if (k == n) {
			if (n == MEMBERS_MAX)
				continue;
			m[n].id = id;
			m[n].address[0] = '\0';
			n++;
		}
		if (m[k].address[0] == '\0' && a != NULL && strlen(a) < sizeof m[k].address)
			snprintf(m[k].address, sizeof m[k].address, "%s", a);
	}
	return n;
}

static int cmp_sorted(const void *a, const void *b)
{
	const struct sorted *x = a, *y = b;

	if (x->us != y->us)
		return x->us < y->us ? -1 : 1;
	if (x->node != y->node)
		return x->node < y->node ? -1 : 1;
	return x->seq < y->seq ? -1 : x->seq > y->seq;
}

/* Entries without a readable time sort as newest, as provlog_read() keeps them. */
static int64_t time_of(json_t *e)
{
	int64_t us;
	const char *t = json_string_value(json_object_get(e, "time"));
	return t != NULL && provlog_parse_time(t, &us) == 0 ? us : INT64_MAX;
}

json_t *ctl_logs_cluster(const char *server, const char *path, unsigned limit, FILE *err)
{
	struct member m[MEMBERS_MAX];
	struct sorted *all = NULL;
	json_t *st, *nodes, *entries, *e, *o;
	char errmsg[600];
	unsigned n = 0, k, answered = 0;
	size_t n_all = 0, i, from;
	bool truncated = false, missing = false;

	st = get_json(server, "/v1/status", errmsg, sizeof errmsg);
	if (st == NULL) {
		fprintf(err, "canopyctl: logs --cluster: %s\n", errmsg);
		return NULL;
	}
	m[0].id = num(st, "node_id");
	snprintf(m[0].address, sizeof m[0].address, "%s", server); /* the node asked: as reached */
	n = learn(st, m, 1);
	for (k = 0; k < n; k++)
		missing |= m[k].address[0] == '\0';
	/* a follower knows the addresses of the members that led; the leader
	 * knows every member's from its health reports */
	if (missing) {
		long long lid = num(json_object_get(st, "leader"), "id");
		for (k = 0; k < n && m[k].id != lid; k++)
			;
		if (k < n && k > 0 && m[k].address[0] != '\0') {
			json_t *lst = get_json(m[k].address, "/v1/status", errmsg, sizeof errmsg);
			if (lst != NULL)
				n = learn(lst, m, n);
			json_decref(lst);
		}
	}
	json_decref(st);

	nodes = xcheck(json_array());
	for (k = 0; k < n; k++) {
		json_t *one = NULL, *jn;
		bool tr = false;

		if (m[k].address[0] == '\0')
			snprintf(errmsg, sizeof errmsg, "its control address is not known (it has not led, and the "
				 "leader has no health report from it)");
		else
			one = get_json(m[k].address, path, errmsg, sizeof errmsg);
		if (one == NULL) {
			fprintf(err, "canopyctl: logs --cluster: warning: node %lld%s%s did not answer, its entries "
				     "are missing: %s\n", m[k].id, m[k].address[0] ? " at " : "", m[k].address, errmsg);
			jn = json_pack("{s:I,s:s?,s:b,s:s}", "node_id", (json_int_t)m[k].id, "address",
				       m[k].address[0] ? m[k].address : NULL, "answered", 0, "error", errmsg);
		} else {
			entries = json_object_get(one, "entries");
			tr = json_is_true(json_object_get(one, "truncated"));
			truncated |= tr;
			answered++;
			all = xrealloc(all, (n_all + json_array_size(entries) + 1) * sizeof *all);
			json_array_foreach(entries, i, e)
			{
				if (!json_is_object(e))
					continue;
				all[n_all].entry = json_incref(e);
				all[n_all].us = time_of(e);
				/* the log's owner wrote every entry in it */
				all[n_all].node = m[k].id;
				all[n_all].seq = n_all;
				n_all++;
			}
			jn = json_pack("{s:I,s:s,s:b,s:I,s:b}", "node_id", (json_int_t)m[k].id, "address",
				       m[k].address, "answered", 1, "entries", (json_int_t)json_array_size(entries),
				       "truncated", tr);
			json_decref(one);
		}
		if (json_array_append_new(nodes, xcheck(jn)) != 0)
			xoom("json_array_append_new");
	}
	if (answered == 0) {
		fprintf(err, "canopyctl: logs --cluster: no member answered\n");
		json_decref(nodes);
		free(all);
		return NULL;
	}
	if (n_all > 0)
		qsort(all, n_all, sizeof *all, cmp_sorted);
	/* the newest `limit` of the union, oldest first like one node's answer */
	from = n_all > limit ? n_all - limit : 0;
	truncated |= from > 0;
	entries = xcheck(json_array());
	for (i = 0; i < n_all; i++) {
		if (i >= from) {
			if (json_object_get(all[i].entry, "node") == NULL &&
			    json_object_set_new(all[i].entry, "node", json_integer((json_int_t)all[i].node)) != 0)
				xoom("json_object_set_new");
			if (json_array_append(entries, all[i].entry) != 0)
				xoom("json_array_append");
		}
		json_decref(all[i].entry);
	}
	free(all);
	o = xcheck(json_pack("{s:b,s:o,s:o,s:b,s:I}", "cluster", 1, "nodes", nodes, "entries", entries, "truncated",
			     truncated, "limit", (json_int_t)limit));
	return o;
}
