/* sync/provlog.c -- see provlog.h. */
#include "sync/provlog.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/time.h>
#include <time.h>

int provlog_open(struct provlog *l, const char *dir, char *errmsg, size_t errlen)
{
	int n = snprintf(l->path, sizeof l->path, "%s/provisioning.log", dir);
	if (n < 0 || (size_t)n >= sizeof l->path) {
		snprintf(errmsg, errlen, "provisioning log: data_dir path too long");
		return -ENAMETOOLONG;
	}
	l->f = fopen(l->path, "a");
	if (l->f == NULL) {
		snprintf(errmsg, errlen, "provisioning log %s: %s", l->path, strerror(errno));
		return -errno;
	}
	setvbuf(l->f, NULL, _IOLBF, 0); /* a line at a time: readable while running */
	return 0;
}

void provlog_close(struct provlog *l)
{
	if (l->f)
		fclose(l->f);
	l->f = NULL;
}

static void now_iso(char *buf, size_t size)
{
	struct timeval tv;
	struct tm tm;
	size_t n;
	gettimeofday(&tv, NULL);
	gmtime_r(&tv.tv_sec, &tm);
	n = strftime(buf, size, "%Y-%m-%dT%H:%M:%S", &tm);
	snprintf(buf + n, size - n, ".%03uZ", (unsigned)(tv.tv_usec / 1000) % 1000u);
}

void provlog_write(struct provlog *l, const struct provlog_entry *e)
{
	char ts[40], *line;
	json_t *o;

	if (l->f == NULL)
		return;
	now_iso(ts, sizeof ts);
	o = json_pack("{s:s,s:I,s:I,s:I,s:I,s:s?,s:s?,s:s?,s:s,s:s,s:s?,s:I,s:f,s:s?}", "time", ts,
		      "cycle", (json_int_t)e->cycle, "change", (json_int_t)e->change, "node",
		      (json_int_t)e->node, "term", (json_int_t)e->term, "anchor", e->anchor, "dn",
		      e->dn, "type", e->type, "action", e->action, "result", e->result,
		      "target_id", e->target_id, "http_status", (json_int_t)e->http_status,
		      "duration_ms", e->duration_ms, "error", e->error);
	if (o == NULL)
		return;
	line = json_dumps(o, JSON_COMPACT);
	if (line) {
		fprintf(l->f, "%s\n", line);
		free(line);
	}
	json_decref(o);
}

static bool matches(json_t *o, const struct provlog_query *q)
{
	const char *t = json_string_value(json_object_get(o, "time"));
	const char *a = json_string_value(json_object_get(o, "anchor"));
	const char *dn = json_string_value(json_object_get(o, "dn"));
	const char *r = json_string_value(json_object_get(o, "result"));

	/* ISO 8601 UTC strings of one format compare as times. */
	if (q->since && (t == NULL || strcmp(t, q->since) < 0))
		return false;
	if (q->object && !((a && strcasecmp(a, q->object) == 0) ||
			   (dn && strcasecmp(dn, q->object) == 0)))
		return false;
	if (q->errors_only && (r == NULL || strcmp(r, "error") != 0))
		return false;
	return true;
}

json_t *provlog_read(const char *path, const struct provlog_query *q)
{
	json_t *out = json_array(), *o;
	FILE *f = fopen(path, "r");
	char *line = NULL;
	size_t cap = 0, limit = q->limit ? q->limit : 1000;

	if (f == NULL)
		return out;
	while (getline(&line, &cap, f) > 0) {
		o = json_loads(line, 0, NULL);
		if (o == NULL)
			continue; /* a torn last line after a crash */
		if (matches(o, q)) {
			json_array_append_new(out, o);
			if (json_array_size(out) > limit)
				json_array_remove(out, 0);
		} else {
			json_decref(o);
		}
	}
	free(line);
	fclose(f);
	return out;
}
