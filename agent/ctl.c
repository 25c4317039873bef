/*
 * agent/ctl.c -- canopyctl (see ctl.h).
 */
#include "agent/ctl.h"
#include "agent/http_body.h"
#include "agent/certs.h"
#include "agent/control.h"
#include "common/xalloc.h"
#include "sync/provlog.h"
#include "sync/secret.h"
#include "sync/text_json.h"

#include <curl/curl.h>
#include <jansson.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <sys/time.h>
#include <time.h>

#define DEFAULT_SERVER "127.0.0.1:8001"
/* The largest answer read: far more than the longest list an agent sends
 * (10000 entries, CONTROL_LOGS_MAX_LIMIT); the size comes from the network. */
#define ANSWER_MAX (256u * 1024 * 1024)


/*
 * One request to the control API. Returns the HTTP status (and the body in
 * *body), or -1 with a one-line cause in errmsg when the server could not be
 * reached.
 */
long ctl_request(const char *server, const char *method, const char *path,
		    const char *payload, const char *token, struct http_body *body, char *errmsg, size_t errlen)
{
	char url[2048], curlerr[CURL_ERROR_SIZE] = "";
	CURL *c;
	CURLcode rc;
	long status = -1;
	struct curl_slist *hdrs = NULL;

	if ((size_t)snprintf(url, sizeof url, "http://%s%s", server, path) >= sizeof url) {
		snprintf(errmsg, errlen, "request URL too long");
		return -1;
	}
	c = xcheck(curl_easy_init()); /* fails only for lack of memory */
	body->max = ANSWER_MAX;
	curl_easy_setopt(c, CURLOPT_URL, url);
	curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, http_body_write);
	curl_easy_setopt(c, CURLOPT_WRITEDATA, body);
	curl_easy_setopt(c, CURLOPT_ERRORBUFFER, curlerr);
	curl_easy_setopt(c, CURLOPT_CONNECTTIMEOUT_MS, 3000L);
	curl_easy_setopt(c, CURLOPT_TIMEOUT_MS, 30000L);
	curl_easy_setopt(c, CURLOPT_NOSIGNAL, 1L);
	curl_easy_setopt(c, CURLOPT_FOLLOWLOCATION, 1L); /* followers may redirect to the leader */
	curl_easy_setopt(c, CURLOPT_POSTREDIR, (long)CURL_REDIR_POST_ALL);
	curl_easy_setopt(c, CURLOPT_MAXREDIRS, 3L);
#if LIBCURL_VERSION_NUM >= 0x075500
	curl_easy_setopt(c, CURLOPT_REDIR_PROTOCOLS_STR, "http");
#else
	curl_easy_setopt(c, CURLOPT_REDIR_PROTOCOLS, (long)CURLPROTO_HTTP);
#endif
	if (strcmp(method, "POST") == 0) {
		hdrs = xcheck(curl_slist_append(hdrs, "Content-Type: application/json"));
		curl_easy_setopt(c, CURLOPT_POSTFIELDS, payload ? payload : "{}");
	}
	if (token != NULL) {
		/* libcurl drops a custom Authorization header when a redirect goes
		 * to another host:port; the 307 of a follower names the leader of
		 * the same cluster, which checks the same token: keep it. */
		size_t n = strlen(token) + 32;
		char *line = xmalloc(n);
		snprintf(line, n, "Authorization: Bearer %s", token);
		hdrs = xcheck(curl_slist_append(hdrs, line));
		explicit_bzero(line, n);
		free(line);
		curl_easy_setopt(c, CURLOPT_UNRESTRICTED_AUTH, 1L);
	}
	if (hdrs)
		curl_easy_setopt(c, CURLOPT_HTTPHEADER, hdrs);
	rc = curl_easy_perform(c);
	if (rc != CURLE_OK && body->too_large)
		snprintf(errmsg, errlen, "canopy agent at %s: the answer is larger than %u bytes", server,
			 ANSWER_MAX);
	else if (rc != CURLE_OK)
		snprintf(errmsg, errlen, "cannot reach canopy agent at %s: %s", server,
			 curlerr[0] ? curlerr : curl_easy_strerror(rc));
	else
		curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &status);
	/* the slist holds a copy of the token: wipe it before it is freed */
	for (struct curl_slist *h = hdrs; h != NULL; h = h->next)
		explicit_bzero(h->data, strlen(h->data));
	curl_slist_free_all(hdrs);
	curl_easy_cleanup(c);
	return status;
}

static const char *str(json_t *o, const char *key, const char *dflt)
{
	const char *s = json_string_value(json_object_get(o, key));
	return s ? s : dflt;
}

static long long num(json_t *o, const char *key)
{
	return json_integer_value(json_object_get(o, key));
}

/* One line: this node's own checks, then the cluster's verdict; the
 * detail of a failed check on the next line. */
static void print_health(FILE *out, json_t *h, json_t *cluster)
{
	json_t *src = json_object_get(h, "source"), *tgt = json_object_get(h, "target");

	if (h == NULL)
		return;
	fprintf(out, "health    source %s, target %s", str(src, "state", "?"), str(tgt, "state", "?"));
	if (cluster)
		fprintf(out, " (cluster: source %s, target %s)", str(cluster, "source", "?"),
			str(cluster, "target", "?"));
	fprintf(out, "\n");
	if (strcmp(str(src, "state", "ok"), "ok") != 0 && str(src, "detail", "")[0])
		fprintf(out, "          source: %s\n", str(src, "detail", ""));
	if (strcmp(str(tgt, "state", "ok"), "ok") != 0 && str(tgt, "detail", "")[0])
		fprintf(out, "          target: %s\n", str(tgt, "detail", ""));
	if (cluster && str(cluster, "detail", NULL))
		fprintf(out, "          cluster: %s\n", str(cluster, "detail", ""));
}

/* Since when, the last failing request, the next retry (canopyctl resume). */
static void print_quarantine(FILE *out, json_t *q)
{
	json_t *last = json_object_get(q, "last_request");

	if (str(q, "since", NULL))
		fprintf(out, "          since %s\n", str(q, "since", ""));
	if (json_is_object(last) && str(last, "method", NULL))
		fprintf(out, "          last request %s %s -> HTTP %lld at %s\n", str(last, "method", "?"),
			str(last, "path", ""), num(last, "status"), str(last, "time", "?"));
	else if (json_is_object(last) && str(last, "operation", NULL))
		fprintf(out, "          last request LDAP %s -> result code %lld at %s\n", str(last, "operation", "?"),
			num(last, "result_code"), str(last, "time", "?"));
	if (str(q, "next_retry_at", NULL))
		fprintf(out, "          next retry at %s (canopyctl resume: now)\n", str(q, "next_retry_at", ""));
}

static void print_status(FILE *out, json_t *st)
{
	json_t *leader = json_object_get(st, "leader"), *sync = json_object_get(st, "sync");
	json_t *members = json_object_get(st, "members"), *m, *cursor, *reach, *state;
	size_t i;

	fprintf(out, "cluster   %s (id %s)\n", str(st, "cluster", "?"), str(st, "cluster_id", "not yet committed"));
	if (strcmp(str(st, "bootstrap", ""), "implicit") == 0)
		fprintf(out, "bootstrap implicit: cluster.members lists only this node; set cluster.bootstrap\n");
	fprintf(out, "node      %lld (%s)\n", num(st, "node_id"), str(st, "role", "?"));
	fprintf(out, "term      %lld\n", num(st, "term"));
	if (json_integer_value(json_object_get(leader, "id")) != 0)
		fprintf(out, "leader    %lld at %s\n", num(leader, "id"), str(leader, "address", "?"));
	else
		fprintf(out, "leader    none known\n");
	fprintf(out, "index     commit %lld, applied %lld\n", num(st, "commit_index"),
		num(st, "applied_index"));
	if (json_object_get(st, "version")) { /* an agent from before versioned members has none */
		json_t *fmt = json_object_get(st, "format");
		fprintf(out, "version   %s; entry format %lld supported by every member",
			str(json_object_get(st, "version"), "text", "?"), num(fmt, "supported"));
		if (json_is_integer(json_object_get(fmt, "writing")))
			fprintf(out, ", writing %lld", num(fmt, "writing"));
		fputc('\n', out);
	}
	state = json_object_get(st, "state");
	if (state)
		fprintf(out, "objects   %lld (digest %s)\n", num(state, "objects"),
			str(state, "digest", "?"));
	print_health(out, json_object_get(st, "health"), json_object_get(st, "cluster_health"));
	fprintf(out, "\n%-6s %-24s %-8s %-10s %-13s %s\n", "ID", "ADDRESS", "ROLE", "REACHABLE", "LAST CONTACT",
		"LAG");
	json_array_foreach(members, i, m)
	{
		char contact[32] = "-", lag[32] = "-";
		reach = json_object_get(m, "reachable");
		if (json_is_integer(json_object_get(m, "last_contact_ms")))
			snprintf(contact, sizeof contact, "%lld ms ago", num(m, "last_contact_ms"));
		if (json_is_integer(json_object_get(m, "lag")))
			snprintf(lag, sizeof lag, "%lld", num(m, "lag"));
		fprintf(out, "%-6lld %-24s %-8s %-10s %-13s %s%s\n", num(m, "id"), str(m, "address", "?"),
			str(m, "role", "?"), json_is_true(reach) ? "yes" : json_is_false(reach) ? "no" : "unknown",
			json_is_true(json_object_get(m, "is_leader")) ? "leader"
			: num(m, "id") == num(st, "node_id")          ? "this node"
								      : contact,
			lag,
			strcmp(str(m, "view", ""), "leader") == 0 ? " (as the leader sees it)" : "");
	}
	/* members on another build than this node (a rolling upgrade) */
	json_array_foreach(members, i, m)
	{
		json_t *v = json_object_get(m, "version");
		if (json_object_get(st, "version") &&
		    !json_equal(v, json_object_get(json_object_get(st, "version"), "text")))
			fprintf(out, "member %lld runs %s (max entry format %lld)\n", num(m, "id"),
				json_is_string(v) ? json_string_value(v) : "an unrecorded version", num(m, "max_format"));
	}
	if (sync) {
		cursor = json_object_get(sync, "cursor");
		json_t *tgt = json_object_get(sync, "target"), *src = json_object_get(sync, "source");
		fprintf(out, "\nsync      %s", str(sync, "state", "?"));
		json_t *q = json_object_get(sync, "quarantine");
		if (q != NULL)
			fprintf(out, " (%s): %s", str(q, "reason", "?"), str(q, "detail", ""));
		fputc('\n', out);
		if (q != NULL)
			print_quarantine(out, q);
		if (json_is_true(json_object_get(tgt, "quarantined")))
			fprintf(out, "target    QUARANTINED (%s): %s\n",
				str(tgt, "quarantine_reason", "?"), str(tgt, "quarantine_detail", ""));
		if (src && !json_is_true(json_object_get(src, "connected")) &&
		    str(src, "message", "")[0])
			fprintf(out, "source    %s\n", str(src, "message", ""));
		char cur[1024];
		size_t k;
		/* the readable form; the raw cursor only with --json */
		json_t *readable = json_object_get(sync, "cursor_readable");
		snprintf(cur, sizeof cur, "%s",
			 json_is_string(readable) ? json_string_value(readable)
			 : json_is_string(cursor) ? "set (not readable; --json shows it)"
						  : "none");
		for (k = 0; cur[k]; k++) /* the cursor's lines, on one line */
			if (cur[k] == '\n')
				cur[k] = cur[k + 1] ? ' ' : '\0';
		fprintf(out, "cursor    %s%s%s%s\n", cur,
			str(sync, "cursor_updated_at", NULL) ? " (changed " : "",
			str(sync, "cursor_updated_at", ""), str(sync, "cursor_updated_at", NULL) ? ")" : "");
		fprintf(out, "exported  %lld, errors %lld, pending deletes %lld, last export %s\n",
			num(sync, "exported_total"), num(sync, "errors_total"),
			num(sync, "pending_deletes"), str(sync, "last_export_at", "never"));
		if (json_object_get(sync, "exported_objects"))
			fprintf(out, "written   %lld objects, %.2f/s over the last minute\n", num(sync, "exported_objects"),
				json_number_value(json_object_get(sync, "export_rate")));
		if (num(sync, "retrying") || num(sync, "failed"))
			fprintf(out, "held      %lld in the retry set, %lld failed (canopyctl failed)\n",
				num(sync, "retrying"), num(sync, "failed"));
	}
}

static void usage(FILE *f)
{
	fprintf(f,
		"usage: canopyctl [--server HOST:PORT] [--token-file FILE] COMMAND [--json]\n"
		"\n"
		"Ask a canopy agent about its cluster. Any node answers.\n"
		"\n"
		"commands:\n"
		"  status                  the cluster as this node sees it: role, term, leader,\n"
		"                          commit/applied index, members (reachable, last\n"
		"                          contact, lag, version), sync state and figures (the\n"
		"                          same on every node), the cursor decoded (raw with\n"
		"                          --json), and the members that run another build\n"
		"  cluster add ID@HOST:PORT   add a member (joins as spare, promoted to voter once\n"
		"                          it caught up); start its agent first, with the\n"
		"                          cluster's members list (it does not bootstrap); the\n"
		"                          leader first checks that it answers on HOST:PORT\n"
		"  cluster remove ID       remove a member (a member still being added: its add\n"
		"                          is aborted); the removed agent notices and exits 0\n"
		"  cluster abort           abort the add in progress (the new server is not\n"
		"                          promoted yet): the spare it added is removed again\n"
		"  cluster transfer [ID]   hand leadership to ID (default: an up-to-date voter)\n"
		"  deletes approve         delete in the target every delete staged by delete\n"
		"                          protection (safety.delete_threshold)\n"
		"  deletes reject          drop the staged deletes; the objects stay in the target\n"
		"  deletes list            the staged deletes (DN, type, target id)\n"
		"  failed                  objects the target has not taken: the retry set (retried\n"
		"                          with backoff) and the failed objects (refused for good)\n"
		"  resume                  quarantined: the leader checks the target (or source)\n"
		"                          now instead of at next_retry_at, and the retry set is\n"
		"                          due now; waits for the answer: exit 0 when the sync\n"
		"                          left the quarantine, 1 when it is still quarantined\n"
		"                          (reason, last request, next retry on stderr). Needs\n"
		"                          the control token when the agents have one\n"
		"  resync DN | --failed    retry now: the object with that DN (failed, retrying, or\n"
		"                          exported: written again from a fresh read), or every\n"
		"                          failed object\n"
		"  config show             the cluster's replicated sync configuration (YAML):\n"
		"                          source.users/groups, mapping, safety, target url/kind/\n"
		"                          timeouts; version, origin node, time\n"
		"  config history          its versions: time, origin node, what changed\n"
		"  config apply FILE [--dry-run]\n"
		"                          validate FILE (an agent configuration, or its sync\n"
		"                          sections alone) as canopy-agent --check-config would,\n"
		"                          print what changes (+ added, ~ changed, - removed, one\n"
		"                          key per line) and commit it as the next version: every\n"
		"                          agent switches at the same log index. Refused when\n"
		"                          nothing changes. --dry-run: validate and diff only.\n"
		"                          Needs the control token\n"
		"  config rollback N [--dry-run]\n"
		"                          apply version N again, as a new version\n"
		"  provision DN [--dry-run]\n"
		"                          run the pipeline for one object now, on the leader:\n"
		"                          read it from the source, decide its scope (and the\n"
		"                          rule), map it, match it with its replicated record,\n"
		"                          then create / update / delete it (or nothing) and\n"
		"                          print the target's answer; --dry-run stops before\n"
		"                          the write and says what it would do. A DN the\n"
		"                          directory lacks is deprovisioned when it was exported\n"
		"                          (else exit 1); deletes pass delete protection\n"
		"  plan [--details]        what a full sync would do now, writing nothing: how\n"
		"                          many objects it would create, update, delete, leave\n"
		"                          unchanged (and refuse: unmappable); --details lists\n"
		"                          each object and what changes. Reads the whole scope\n"
		"                          from the directory; any node answers\n"
		"  certs init-ca DIR       a CA for cluster.tls: DIR/ca.pem, DIR/ca.key (local)\n"
		"  certs issue --ca DIR --node ID --address IP --out PREFIX [--days N]\n"
		"                          a node certificate (CN node-ID): PREFIX.pem, PREFIX.key\n"
		"  drill failover [--mode transfer|crash] [--count N]\n"
		"                          a failover drill on the leader, N times (default:\n"
		"                          transfer, 1): transfer hands leadership over; crash\n"
		"                          makes the leader play dead (no raft message in or\n"
		"                          out, no export) for 2 election timeouts, then rejoin.\n"
		"                          Waits for the new leader to export; prints per drill\n"
		"                          and min/median/max: detected (a follower became\n"
		"                          candidate), elected, exporting (it could write), in\n"
		"                          ms after the drill started. Refused (exit 1, the\n"
		"                          reason on stderr) with no leader, fewer than 3\n"
		"                          healthy voters, a lagging voter or a quarantined sync.\n"
		"                          Needs the control token\n"
		"  expr EXPRESSION [--attr NAME=VALUE]... [--taken VALUE]... [--now TIME]\n"
		"                          evaluate a mapping expression here (no agent asked):\n"
		"                          --attr gives a source attribute (repeat the name for\n"
		"                          several values), --taken a value SelectUniqueValue\n"
		"                          finds held in the target, --now the time for Now()\n"
		"                          (RFC 3339). One value per line; --json:\n"
		"                          {\"value\": \"...\" | [...] | null}. Exit 1 with\n"
		"                          \"column N: ...\" when it does not parse or evaluate\n"
		"  expr [EXPRESSION] --object DN --config FILE\n"
		"                          read the entry DN with the source settings of the\n"
		"                          agent configuration FILE (binds itself; no agent\n"
		"                          needed) and evaluate EXPRESSION over it, or without\n"
		"                          one print the resource the configured mapping makes\n"
		"                          of it (--json: {\"dn\",\"type\",\"resource\"})\n"
		"  logs [--cluster] [--since TIME] [--object ANCHOR|DN] [--errors] [--limit N]\n"
		"                          this node's provisioning log (one line per target\n"
		"                          operation it made while leading); TIME is RFC 3339\n"
		"                          (2026-11-24T17:00:00Z, ...+01:00) or an age (30s, 10m,\n"
		"                          2h, 1d); entries of that second are kept. N: 1 to\n"
		"                          10000 (default 1000), newest first; stderr says when\n"
		"                          older matches were left out. --cluster: every\n"
		"                          member's log merged by time, each line labelled with\n"
		"                          its node (the cluster's history is the union); a\n"
		"                          member that does not answer is named on stderr, and\n"
		"                          the command fails only when none answers\n"
		"\n"
		"options:\n"
		"  -s, --server HOST:PORT  the agent's control_address (default: $CANOPY_SERVER,\n"
		"                          else " DEFAULT_SERVER ")\n"
		"  -t, --token-file FILE   the control token (control.token_file of the agents;\n"
		"                          default: $CANOPY_TOKEN_FILE); needed by every command\n"
		"                          that changes something when the agents have one\n"
		"  -j, --json              print the raw JSON answer\n"
		"      --dry-run           config apply/rollback: validate and diff, commit nothing\n"
		"  -h, --help              this help\n"
		"  -V, --version           print the version and the git commit of the build\n"
		"                          (with --json: {\"version\",\"commit\"})\n");
}

static char *urlencode(const char *v)
{
	CURL *c = xcheck(curl_easy_init());
	char *e = xcheck(curl_easy_escape(c, v, 0)), *d = xstrdup(e);
	curl_free(e);
	curl_easy_cleanup(c);
	return d;
}

static void append_arg(char *path, size_t size, const char *name, const char *value)
{
	char *e = urlencode(value);
	size_t n = strlen(path);
	snprintf(path + n, size - n, "%s%s=%s", strchr(path, '?') ? "&" : "?", name, e);
	free(e);
}

/*
 * --since: an RFC 3339 time, or an age ("30s", "10m", "2h", "1d") counted
 * back from now. Writes the RFC 3339 UTC time (milliseconds) to send into
 * `buf`; returns 0 or -1 when `text` is neither.
 */
static int since_arg(const char *text, char *buf, size_t size)
{
	static const struct {
		char unit;
		long long s;
	} units[] = {{'s', 1}, {'m', 60}, {'h', 3600}, {'d', 86400}};
	unsigned long long n = 0;
	const char *p = text;
	struct timeval now;
	struct tm tm;
	long long at_ms, secs;
	size_t i, k;
	int64_t us;

	if (provlog_parse_time(text, &us) == 0) {
		snprintf(buf, size, "%s", text);
		return 0;
	}
	if (*p < '0' || *p > '9')
		return -1;
	for (; *p >= '0' && *p <= '9'; p++) {
		n = n * 10 + (unsigned)(*p - '0');
		if (n > 100000000ull) /* about 3 years in seconds: plenty, and no overflow */
			return -1;
	}
	for (i = 0; i < sizeof units / sizeof units[0]; i++)
		if (p[0] == units[i].unit && p[1] == '\0')
			break;
	if (i == sizeof units / sizeof units[0])
		return -1;
	gettimeofday(&now, NULL);
	at_ms = (long long)now.tv_sec * 1000 + now.tv_usec / 1000 - (long long)n * units[i].s * 1000;
	secs = at_ms >= 0 ? at_ms / 1000 : 0;
	{
		time_t t = (time_t)secs;
		gmtime_r(&t, &tm);
	}
	k = strftime(buf, size, "%Y-%m-%dT%H:%M:%S", &tm);
	snprintf(buf + k, size - k, ".%03lldZ", at_ms >= 0 ? at_ms % 1000 : 0);
	return 0;
}

/* A value of a modified attribute: strings as they are, the rest as JSON. */
static void print_value(FILE *out, json_t *v)
{
	char *d;
	if (v == NULL || json_is_null(v)) {
		fputs("(none)", out);
		return;
	}
	if (json_is_string(v)) {
		fprintf(out, "\"%s\"", json_string_value(v));
		return;
	}
	d = xcheck(json_dumps(v, JSON_COMPACT | JSON_ENCODE_ANY));
	fputs(d, out);
	free(d);
}

/* One indented line per modified attribute of an update: attr: old -> new. */
static void print_modified(FILE *out, json_t *mod)
{
	json_t *m;
	size_t i;

	json_array_foreach(mod, i, m)
	{
		if (json_object_get(m, "more")) {
			fprintf(out, "    ... %lld more attributes\n", num(m, "more"));
			continue;
		}
		fprintf(out, "    %s: ", str(m, "attr", "?"));
		print_value(out, json_object_get(m, "old"));
		fputs(" -> ", out);
		print_value(out, json_object_get(m, "new"));
		fputc('\n', out);
	}
}

static void print_logs(FILE *out, json_t *o)
{
	json_t *entries = json_object_get(o, "entries"), *e;
	bool cluster = json_is_true(json_object_get(o, "cluster"));
	size_t i;

	if (json_array_size(entries) == 0) {
		if (cluster)
			fprintf(out, "no matching provisioning log entries on the nodes that answered\n");
		else
			fprintf(out, "no matching provisioning log entries on node %lld\n", num(o, "node_id"));
		return;
	}
	json_array_foreach(entries, i, e)
	{
		const char *err = str(e, "error", NULL);
		if (cluster) /* the node whose log holds it: it made the operation while leading */
			fprintf(out, "node %-3lld ", num(e, "node"));
		fprintf(out, "%s term %-3lld %-13s %-6s %-5s %s %s", str(e, "time", "?"), num(e, "term"),
			str(e, "action", "?"), str(e, "type", "?"), str(e, "result", "?"),
			str(e, "anchor", "-"), str(e, "dn", ""));
		if (num(e, "http_status"))
			fprintf(out, " http=%lld", num(e, "http_status"));
		if (err)
			fprintf(out, " error=\"%s\"", err);
		fputc('\n', out);
		print_modified(out, json_object_get(e, "modified"));
	}
}

/* On stderr, so that --json output stays one document. */
static void logs_notice(FILE *err, json_t *o)
{
	if (json_is_true(json_object_get(o, "truncated")))
		fprintf(err, "canopyctl: logs: showing the newest %zu matching entries; older ones were "
			     "left out by the limit (--limit N, up to %u, or a later --since)\n",
			json_array_size(json_object_get(o, "entries")), CONTROL_LOGS_MAX_LIMIT);
}

/* One line per staged delete, failed or retrying object. */
/* One line per step: "read    found ...". */
static void print_provision(FILE *out, json_t *o)
{
	json_t *steps = json_object_get(o, "steps"), *st;
	size_t i;

	fprintf(out, "provision %s\n", str(o, "dn", ""));
	json_array_foreach(steps, i, st) {
		const char *step = str(st, "step", "?");
		fprintf(out, "  %-7s %s", step, str(st, "result", "?"));
		if (strcmp(step, "read") == 0 && json_object_get(st, "attributes")) {
			const char *k;
			json_t *v;
			fprintf(out, " anchor=%s attributes:", str(st, "anchor", "?"));
			json_object_foreach(json_object_get(st, "attributes"), k, v) {
				fprintf(out, " %s", k);
			}
		}
		if (json_object_get(st, "type"))
			fprintf(out, " (%s)", str(st, "type", ""));
		if (json_object_get(st, "rule"))
			fprintf(out, ": %s", str(st, "rule", ""));
		if (json_is_object(json_object_get(st, "object"))) {
			char *m = json_dumps(json_object_get(st, "object"), JSON_COMPACT | JSON_SORT_KEYS);
			fprintf(out, " %s", m ? m : "");
			free(m);
		}
		if (strcmp(step, "match") == 0 && json_object_get(st, "target_id"))
			fprintf(out, " by %s, target id %s, content %s", str(st, "by", "?"), str(st, "target_id", "?"),
				str(st, "content", "?"));
		if (json_object_get(st, "http_status"))
			fprintf(out, " HTTP %lld", num(st, "http_status"));
		if (json_object_get(st, "target_id") && strcmp(step, "write") == 0)
			fprintf(out, " id %s", str(st, "target_id", ""));
		if (json_object_get(st, "detail"))
			fprintf(out, " (%s)", str(st, "detail", ""));
		if (json_object_get(st, "error"))
			fprintf(out, ": %s", str(st, "error", ""));
		fputc('\n', out);
	}
}

static void print_plan(FILE *out, json_t *o)
{
	json_t *d, *c;
	size_t i, j;

	fprintf(out, "create %lld, update %lld, delete %lld, unchanged %lld", num(o, "create"), num(o, "update"),
		num(o, "delete"), num(o, "unchanged"));
	if (num(o, "refused"))
		fprintf(out, ", refused %lld (the mapping cannot map them)", num(o, "refused"));
	fputc('\n', out);
	json_array_foreach(json_object_get(o, "details"), i, d) {
		fprintf(out, "  %-9s %-5s %s", str(d, "action", "?"), str(d, "type", "?"),
			str(d, "dn", str(d, "anchor", "?")));
		json_array_foreach(json_object_get(d, "changes"), j, c) {
			fprintf(out, "%s%s", j == 0 ? ": " : ", ", json_is_string(c) ? json_string_value(c) : "?");
		}
		fputc('\n', out);
	}
	if (json_is_true(json_object_get(o, "truncated")))
		fprintf(out, "  (list truncated)\n");
}

static void print_list(FILE *out, json_t *o, const char *key, const char *what)
{
	json_t *list = json_object_get(o, key), *e;
	size_t i;

	fprintf(out, "%zu %s%s\n", json_array_size(list), what,
		json_is_true(json_object_get(o, "truncated")) ? " (list truncated)" : "");
	json_array_foreach(list, i, e)
	{
		fprintf(out, "  %-5s %s", str(e, "type", "?"), str(e, "dn", str(e, "anchor", "?")));
		if (str(e, "group", NULL))
			fprintf(out, " from group %s", str(e, "group", ""));
		if (str(e, "kind", NULL))
			fprintf(out, " (%s, %lld attempts", str(e, "kind", ""), num(e, "attempts"));
		if (num(e, "http_status"))
			fprintf(out, ", http %lld", num(e, "http_status"));
		if (str(e, "kind", NULL))
			fputc(')', out);
		if (str(e, "target_id", NULL))
			fprintf(out, " target id %s", str(e, "target_id", ""));
		if (str(e, "error", NULL))
			fprintf(out, ": %s", str(e, "error", ""));
		fputc('\n', out);
	}
}

int ctl_main(int argc, char **argv, FILE *out, FILE *err)
{
	const char *server = getenv("CANOPY_SERVER");
	const char *token_file = getenv("CANOPY_TOKEN_FILE");
	char *token = NULL;
	const char *words[4] = {NULL};
	const char *since = NULL, *object = NULL, *limit = NULL, *mode = NULL, *count = NULL;
	bool json = false, errors = false, failed = false, dry_run = false, details = false, cluster = false;
	struct http_body body = {0};
	char errmsg[512], path[1024];
	const char *method = "GET";
	char payload[512] = "";
	json_t *o;
	json_error_t jerr;
	long status;
	int i, n_words = 0, rc = 1;

	if (server == NULL || server[0] == '\0')
		server = DEFAULT_SERVER;
	/* Local: certificates for cluster.tls (agent/certs.h), no server. */
	if (argc >= 2 && strcmp(argv[1], "certs") == 0)
		return certs_main(argc - 1, argv + 1, out, err);
	/* Local: a mapping expression, evaluated here (agent/ctl_expr.c). */
	if (argc >= 2 && strcmp(argv[1], "expr") == 0)
		return ctl_expr(argc - 1, argv + 1, out, err);
	for (i = 1; i < argc; i++) {
		const char *a = argv[i];
		const char **valopt = NULL;
		if (strcmp(a, "--json") == 0 || strcmp(a, "-j") == 0)
			json = true;
		else if (strcmp(a, "--errors") == 0)
			errors = true;
		else if (strcmp(a, "--failed") == 0)
			failed = true;
		else if (strcmp(a, "--dry-run") == 0)
			dry_run = true;
		else if (strcmp(a, "--details") == 0)
			details = true;
		else if (strcmp(a, "--cluster") == 0)
			cluster = true;
		else if (strcmp(a, "--help") == 0 || strcmp(a, "-h") == 0) {
			/* One write: the help is longer than stdio's 4 KiB buffer,
			 * and `canopyctl --help | grep -q X` under pipefail failed
			 * when grep had gone before the second write (SIGPIPE). */
			static char buf[16384];
			setvbuf(out, buf, _IOFBF, sizeof buf);
			usage(out);
			fflush(out);
			return 0;
		} else if (strcmp(a, "--server") == 0 || strcmp(a, "-s") == 0)
			valopt = &server;
		else if (strcmp(a, "--since") == 0)
			valopt = &since;
		else if (strcmp(a, "--object") == 0)
			valopt = &object;
		else if (strcmp(a, "--limit") == 0)
			valopt = &limit;
		else if (strcmp(a, "--mode") == 0)
			valopt = &mode;
		else if (strcmp(a, "--count") == 0)
			valopt = &count;
		else if (strcmp(a, "--token-file") == 0 || strcmp(a, "-t") == 0)
			valopt = &token_file;
		else if (strncmp(a, "--token-file=", 13) == 0)
			token_file = a + 13;
		else if (strncmp(a, "--server=", 9) == 0)
			server = a + 9;
		else if (a[0] == '-') {
			fprintf(err, "canopyctl: unknown option %s (see canopyctl --help)\n", a);
			return 2;
		} else if (n_words < 3) {
			words[n_words++] = a;
		} else {
			fprintf(err, "canopyctl: unexpected argument %s (see canopyctl --help)\n", a);
			return 2;
		}
		if (valopt) {
			if (++i == argc) {
				fprintf(err, "canopyctl: %s needs a value\n", a);
				return 2;
			}
			*valopt = argv[i];
		}
	}
	if (n_words == 0) {
		usage(err);
		return 2;
	}
	if (cluster && strcmp(words[0], "logs") != 0) {
		fprintf(err, "canopyctl: --cluster goes with logs only\n");
		return 2;
	}
	if (strcmp(words[0], "config") == 0)
		return ctl_config(server, token_file, n_words, words, dry_run, json, out, err);
	if (strcmp(words[0], "drill") == 0) {
		unsigned long n = 1;
		char *end = NULL;
		if (n_words != 2 || strcmp(words[1], "failover") != 0) {
			fprintf(err, "canopyctl: usage: drill failover [--mode transfer|crash] [--count N] [--json]\n");
			return 2;
		}
		if (mode == NULL)
			mode = "transfer";
		if (strcmp(mode, "transfer") != 0 && strcmp(mode, "crash") != 0) {
			fprintf(err, "canopyctl: drill failover: --mode is transfer or crash, not \"%s\"\n", mode);
			return 2;
		}
		if (count != NULL) {
			n = strtoul(count, &end, 10);
			if (*count == '\0' || *end != '\0' || n == 0 || n > 100) {
				fprintf(err, "canopyctl: drill failover: --count is a number from 1 to 100, not \"%s\"\n",
					count);
				return 2;
			}
		}
		if (token_file != NULL && token_file[0] != '\0' &&
		    secret_read(token_file, &token, errmsg, sizeof errmsg) != 0) {
			fprintf(err, "canopyctl: token file: %s\n", errmsg);
			return 2;
		}
		curl_global_init(CURL_GLOBAL_DEFAULT);
		rc = ctl_drill(server, token, mode, (unsigned)n, json, out, err);
		secret_free(token);
		curl_global_cleanup();
		return rc;
	}
	if (strcmp(words[0], "resume") == 0 && n_words == 1) {
		if (token_file != NULL && token_file[0] != '\0' &&
		    secret_read(token_file, &token, errmsg, sizeof errmsg) != 0) {
			fprintf(err, "canopyctl: token file: %s\n", errmsg);
			return 2;
		}
		curl_global_init(CURL_GLOBAL_DEFAULT);
		rc = ctl_resume(server, token, json, out, err);
		secret_free(token);
		curl_global_cleanup();
		return rc;
	}
	if (strcmp(words[0], "status") == 0 && n_words == 1) {
		snprintf(path, sizeof path, "/v1/status");
	} else if (strcmp(words[0], "deletes") == 0 && n_words == 2 && strcmp(words[1], "list") == 0) {
		snprintf(path, sizeof path, "/v1/deletes");
	} else if (strcmp(words[0], "failed") == 0 && n_words == 1) {
		snprintf(path, sizeof path, "/v1/failed");
	} else if (strcmp(words[0], "resync") == 0 && (n_words == 2) != failed && n_words <= 2) {
		if (n_words == 2 && !text_is_utf8(words[1], strlen(words[1]))) {
			fprintf(err, "canopyctl: resync: the DN is not valid UTF-8\n");
			return 2;
		}
		json_t *b = xcheck(n_words == 2 ? json_pack("{s:s}", "dn", words[1]) : json_pack("{s:b}", "failed", 1));
		char *d = xcheck(json_dumps(b, JSON_COMPACT));
		snprintf(path, sizeof path, "/v1/resync");
		method = "POST";
		if (strlen(d) >= sizeof payload) {
			fprintf(err, "canopyctl: resync: the DN is too long\n");
			free(d);
			json_decref(b);
			return 2;
		}
		snprintf(payload, sizeof payload, "%s", d);
		free(d);
		json_decref(b);
	} else if (strcmp(words[0], "provision") == 0 && n_words == 2) {
		if (!text_is_utf8(words[1], strlen(words[1]))) {
			fprintf(err, "canopyctl: provision: the DN is not valid UTF-8\n");
			return 2;
		}
		json_t *b = xcheck(json_pack("{s:s,s:b}", "dn", words[1], "dry_run", dry_run));
		char *d = xcheck(json_dumps(b, JSON_COMPACT));
		json_decref(b);
		if (strlen(d) >= sizeof payload) {
			fprintf(err, "canopyctl: provision: the DN is too long\n");
			free(d);
			return 2;
		}
		snprintf(payload, sizeof payload, "%s", d);
		free(d);
		snprintf(path, sizeof path, "/v1/provision");
		method = "POST";
	} else if (strcmp(words[0], "plan") == 0 && n_words == 1) {
		snprintf(path, sizeof path, "/v1/plan%s", details ? "?details=1" : "");
	} else if (strcmp(words[0], "provision") == 0 || strcmp(words[0], "plan") == 0) {
		fprintf(err, "canopyctl: usage: %s\n",
			strcmp(words[0], "plan") == 0 ? "plan [--details] [--json]" : "provision DN [--dry-run] [--json]");
		return 2;
	} else if (strcmp(words[0], "deletes") == 0 && n_words == 2 &&
		   (strcmp(words[1], "approve") == 0 || strcmp(words[1], "reject") == 0)) {
		snprintf(path, sizeof path, "/v1/deletes/%s", words[1]);
		method = "POST";
	} else if (strcmp(words[0], "cluster") == 0 && n_words >= 2 &&
		   ((strcmp(words[1], "add") == 0 && n_words == 3) ||
		    (strcmp(words[1], "remove") == 0 && n_words == 3) ||
		    (strcmp(words[1], "abort") == 0 && n_words == 2) ||
		    (strcmp(words[1], "transfer") == 0 && n_words <= 3))) {
		char *end = NULL;
		unsigned long long id = 0;
		snprintf(path, sizeof path, "/v1/cluster/%s", words[1]);
		method = "POST";
		if (strcmp(words[1], "add") == 0) {
			if (!text_is_utf8(words[2], strlen(words[2]))) {
				fprintf(err, "canopyctl: cluster add: \"%s\" is not ID@HOST:PORT\n", words[2]);
				return 2;
			}
			json_t *b = xcheck(json_pack("{s:s}", "member", words[2]));
			char *d = xcheck(json_dumps(b, JSON_COMPACT));
			snprintf(payload, sizeof payload, "%s", d);
			free(d);
			json_decref(b);
		} else if (n_words == 3) {
			id = strtoull(words[2], &end, 10);
			if (*words[2] == '\0' || *end != '\0' || id == 0) {
				fprintf(err, "canopyctl: cluster %s: \"%s\" is not a node id\n", words[1],
					words[2]);
				return 2;
			}
			snprintf(payload, sizeof payload, "{\"id\":%llu}", id);
		}
	} else if (strcmp(words[0], "logs") == 0 && n_words == 1) {
		char at[64];
		unsigned lim;
		if (limit != NULL && control_parse_limit(limit, &lim) != 0) {
			fprintf(err, "canopyctl: logs: --limit is a number from 1 to %u, not \"%s\"\n",
				CONTROL_LOGS_MAX_LIMIT, limit);
			return 2;
		}
		if (since != NULL && since_arg(since, at, sizeof at) != 0) {
			fprintf(err, "canopyctl: logs: --since is an RFC 3339 time (2026-11-24T17:13:03Z) or an "
				     "age (30s, 10m, 2h, 1d), not \"%s\"\n", since);
			return 2;
		}
		snprintf(path, sizeof path, "/v1/logs");
		if (since)
			append_arg(path, sizeof path, "since", at);
		if (object)
			append_arg(path, sizeof path, "object", object);
		if (limit)
			append_arg(path, sizeof path, "limit", limit);
		if (errors)
			append_arg(path, sizeof path, "errors", "1");
		if (cluster) {
			control_parse_limit(limit, &lim);
			curl_global_init(CURL_GLOBAL_DEFAULT);
			o = ctl_logs_cluster(server, path, lim, err);
			curl_global_cleanup();
			if (o == NULL)
				return 1;
			if (json) {
				char *d = xcheck(json_dumps(o, JSON_COMPACT));
				fprintf(out, "%s\n", d);
				free(d);
			} else {
				print_logs(out, o);
			}
			logs_notice(err, o);
			json_decref(o);
			return 0;
		}
	} else {
		fprintf(err, "canopyctl: unknown command \"%s%s%s\" (see canopyctl --help)\n", words[0],
			n_words > 1 ? " " : "", n_words > 1 ? words[1] : "");
		return 2;
	}

	/* Read the token only for a mutation: it is sent with POSTs alone. */
	if (token_file != NULL && token_file[0] != '\0' && strcmp(method, "POST") == 0 &&
	    secret_read(token_file, &token, errmsg, sizeof errmsg) != 0) {
		fprintf(err, "canopyctl: token file: %s\n", errmsg);
		return 2;
	}
	curl_global_init(CURL_GLOBAL_DEFAULT);
	status = ctl_request(server, method, path, payload[0] ? payload : NULL, token, &body, errmsg,
			 sizeof errmsg);
	secret_free(token);
	token = NULL;
	if (status < 0) {
		fprintf(err, "canopyctl: %s\n", errmsg);
		goto out;
	}
	o = json_loadb(body.p ? body.p : "", body.len, 0, &jerr);
	if (o == NULL) {
		fprintf(err, "canopyctl: %s answered HTTP %ld with a body that is not JSON: %s\n",
			server, status, jerr.text);
		goto out;
	}
	if (status < 200 || status >= 300) {
		fprintf(err, "canopyctl: %s: HTTP %ld: %s\n", server, status,
			str(o, "error", "no error message"));
	} else {
		if (json)
			fprintf(out, "%s\n", body.p);
		else if (strcmp(words[0], "status") == 0)
			print_status(out, o);
		else if (strcmp(words[0], "logs") == 0)
			print_logs(out, o);
		else if (strcmp(words[0], "deletes") == 0 && strcmp(words[1], "list") == 0)
			print_list(out, o, "deletes", "staged deletes");
		else if (strcmp(words[0], "failed") == 0) {
			print_list(out, o, "retrying", "in the retry set");
			print_list(out, o, "failed", "failed objects");
		} else if (strcmp(words[0], "provision") == 0)
			print_provision(out, o);
		else if (strcmp(words[0], "plan") == 0)
			print_plan(out, o);
		else if (strcmp(words[0], "resync") == 0)
			fprintf(out, "%s: %lld objects\n", str(o, "result", "done"), num(o, "objects"));
		else if (strcmp(words[0], "cluster") == 0 && num(o, "leader"))
			fprintf(out, "%s: node %lld leads term %lld\n", str(o, "result", "done"),
				num(o, "leader"), num(o, "term"));
		else if (strcmp(words[0], "cluster") == 0)
			fprintf(out, "%s\n", str(o, "result", "done"));
		else
			fprintf(out, "%s: %lld staged deletes\n", str(o, "result", "done"),
				num(o, "deletes"));
		if (strcmp(words[0], "logs") == 0)
			logs_notice(err, o);
		rc = 0;
	}
	json_decref(o);
out:
	free(body.p);
	curl_global_cleanup();
	return rc;
}
