/* sync/provlog.c -- see provlog.h. */
#include "sync/provlog.h"

#include "common/xalloc.h"
#include "sync/text_json.h"

#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <sys/time.h>
#include <time.h>
#include <unistd.h>

static struct provlog_health health;
static void (*health_cb)(void *data, const struct provlog_health *h);
static void *health_cb_data;

void provlog_health(struct provlog_health *out)
{
	*out = health;
}

void provlog_on_health_change(void (*cb)(void *data, const struct provlog_health *h), void *data)
{
	health_cb = cb;
	health_cb_data = data;
}

static void set_failing(bool failing, int err)
{
	bool changed = failing != health.failing;
	health.failing = failing;
	if (failing)
		health.last_errno = err;
	if (changed && health_cb)
		health_cb(health_cb_data, &health);
}

/* (Re)open for appending; cut off a torn tail a failed write left behind. */
static int open_file(struct provlog *l)
{
	struct stat st;

	l->fd = open(l->path, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0600);
	if (l->fd < 0)
		return -errno;
	/* O_CREAT's mode applies to a new file only: one left by a copy or a
	 * rotation tool with 0644 would show DNs and errors to local users */
	if (fstat(l->fd, &st) == 0 && (st.st_mode & 077) != 0 && fchmod(l->fd, st.st_mode & 0700) != 0) {
		int err = errno;
		close(l->fd);
		l->fd = -1;
		return -err;
	}
	if (l->cut_at >= 0) {
		if (fstat(l->fd, &st) == 0 && st.st_size > l->cut_at &&
		    ftruncate(l->fd, (off_t)l->cut_at) != 0) {
			int err = errno;
			close(l->fd);
			l->fd = -1;
			return -err;
		}
		l->cut_at = -1;
	}
	return 0;
}

int provlog_open(struct provlog *l, const char *dir, char *errmsg, size_t errlen)
{
	int rv, n = snprintf(l->path, sizeof l->path, "%s/provisioning.log", dir);
	if (n < 0 || (size_t)n >= sizeof l->path) {
		snprintf(errmsg, errlen, "provisioning log: data_dir path too long");
		return -ENAMETOOLONG;
	}
	l->cut_at = -1;
	l->max_bytes = PROVLOG_DEFAULT_MAX_BYTES;
	l->keep = PROVLOG_DEFAULT_KEEP;
	rv = open_file(l);
	if (rv != 0) {
		snprintf(errmsg, errlen, "provisioning log %s: %s", l->path, strerror(-rv));
		return rv;
	}
	snprintf(health.path, sizeof health.path, "%s", l->path);
	return 0;
}

void provlog_set_rotation(struct provlog *l, uint64_t max_bytes, unsigned keep)
{
	l->max_bytes = max_bytes;
	l->keep = keep < 1 ? 1 : keep > PROVLOG_MAX_KEEP ? PROVLOG_MAX_KEEP : keep;
}

static void rotated_name(char *out, size_t size, const char *path, unsigned i)
{
	snprintf(out, size, "%s.%u", path, i);
}

/*
 * provisioning.log -> .1 -> ... -> .keep (the old .keep is replaced: rename(2)
 * replaces its target atomically), from the oldest down, so a reader walking
 * the names newest first meets at most one missing name at a time. Files
 * beyond keep (keep was lowered) are removed. Then a new provisioning.log is
 * opened. A rename that fails (the directory turned read-only) leaves the
 * entries in the current file: a file larger than max_bytes loses nothing,
 * a failed rotation must not either.
 */
static int rotate(struct provlog *l)
{
	char from[1100], to[1100];
	unsigned i;

	close(l->fd);
	l->fd = -1;
	for (i = PROVLOG_MAX_KEEP; i > l->keep; i--) {
		rotated_name(to, sizeof to, l->path, i);
		(void)unlink(to);
	}
	for (i = l->keep; i > 1; i--) {
		rotated_name(from, sizeof from, l->path, i - 1);
		rotated_name(to, sizeof to, l->path, i);
		(void)rename(from, to); /* ENOENT: fewer rotated files so far */
	}
	rotated_name(to, sizeof to, l->path, 1);
	(void)rename(l->path, to);
	return open_file(l);
}

void provlog_close(struct provlog *l)
{
	/* path[0] == 0: never opened (a zeroed struct has fd 0: not ours) */
	if (l->path[0] != '\0' && l->fd >= 0)
		close(l->fd);
	l->fd = -1;
}

/*
 * One entry = one write() of the whole line, so readers never see half of one
 * from us. A short or failed write is undone (ftruncate back) and the file is
 * reopened on the next entry.
 */
static void write_line(struct provlog *l, const char *line, size_t len)
{
	struct stat st;
	off_t before = -1;
	ssize_t n;
	int err;

	if (l->fd < 0) {
		int rv = open_file(l);
		if (rv != 0) {
			health.write_errors++;
			set_failing(true, -rv);
			return;
		}
		health.reopens++;
	}
	if (fstat(l->fd, &st) == 0)
		before = st.st_size;
	/* rotate before the line would pass max_bytes; a file always takes its
	 * first line, however long, so a line is never split or refused */
	if (l->max_bytes > 0 && before > 0 && (uint64_t)before + len > l->max_bytes) {
		int rv = rotate(l);
		if (rv != 0) {
			health.write_errors++;
			set_failing(true, -rv);
			return;
		}
		before = fstat(l->fd, &st) == 0 ? st.st_size : -1;
	}
	do
		n = write(l->fd, line, len);
	while (n < 0 && errno == EINTR);
	if (n == (ssize_t)len) {
		if (health.failing)
			set_failing(false, 0);
		return;
	}
	err = n < 0 ? errno : ENOSPC; /* a short write: the disk filled up mid-line */
	if (n > 0 && before >= 0 && ftruncate(l->fd, before) != 0)
		l->cut_at = before;
	close(l->fd);
	l->fd = -1;
	health.write_errors++;
	set_failing(true, err);
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

/*
 * The identifiers (anchor, DN, target id) are UTF-8 from their sources
 * (LDAP string syntaxes, parsed JSON); the error is free text, possibly cut
 * in the middle of a character, and goes through text_json(). So a NULL
 * from jansson is out of memory.
 */
void provlog_write(struct provlog *l, const struct provlog_entry *e)
{
	char ts[40], *line;
	size_t len;
	json_t *o;

	if (l->path[0] == '\0')
		return;
	now_iso(ts, sizeof ts);
	o = xcheck(json_pack("{s:s,s:I,s:I,s:I,s:I,s:s?,s:s?,s:s?,s:s,s:s,s:s?,s:I,s:f,s:o?,s:O*}", "time", ts,
			     "cycle", (json_int_t)e->cycle, "change", (json_int_t)e->change, "node",
			     (json_int_t)e->node, "term", (json_int_t)e->term, "anchor", e->anchor, "dn",
			     e->dn, "type", e->type, "action", e->action, "result", e->result,
			     "target_id", e->target_id, "http_status", (json_int_t)e->http_status,
			     "duration_ms", e->duration_ms, "error",
			     e->error != NULL ? text_json(e->error) : NULL, "modified", e->modified));
	line = xcheck(json_dumps(o, JSON_COMPACT));
	json_decref(o);
	len = strlen(line);
	line = xrealloc(line, len + 2);
	line[len] = '\n';
	line[len + 1] = '\0';
	write_line(l, line, len + 1);
	free(line);
}

static bool secret_name(const char *k)
{
	static const char *const words[] = {"password", "secret", "pwd"};
	size_t i, j, n = strlen(k);

	for (i = 0; i < n; i++)
		for (j = 0; j < sizeof words / sizeof words[0]; j++)
			if (strncasecmp(k + i, words[j], strlen(words[j])) == 0)
				return true;
	return false;
}

static json_t *shown(const char *attr, const json_t *v)
{
	char *d;
	size_t n;

	if (v == NULL)
		return json_null();
	if (secret_name(attr))
		return xcheck(json_string("***"));
	d = xcheck(json_dumps(v, JSON_COMPACT | JSON_ENCODE_ANY));
	n = strlen(d);
	free(d);
	if (n > PROVLOG_VALUE_MAX) {
		char b[48];
		snprintf(b, sizeof b, "(%zu bytes)", n);
		return xcheck(json_string(b));
	}
	return xcheck(json_deep_copy(v));
}

static void add_change(json_t *out, size_t *more, const char *attr, const json_t *old, const json_t *now)
{
	if (json_array_size(out) >= PROVLOG_MODIFIED_MAX) {
		(*more)++;
		return;
	}
	if (json_array_append_new(out, xcheck(json_pack("{s:s,s:o,s:o}", "attr", attr, "old", shown(attr, old),
							  "new", shown(attr, now)))) != 0)
		xoom("json_array_append_new");
}

/* Objects on both sides are compared member by member ("name.familyName"). */
static void diff(json_t *out, size_t *more, const char *prefix, const json_t *before, const json_t *now)
{
	char path[512];
	json_t *v, *w;
	const char *k;

	json_object_foreach((json_t *)now, k, v) {
		snprintf(path, sizeof path, "%s%s%s", prefix, prefix[0] ? "." : "", k);
		w = json_object_get(before, k);
		if (w != NULL && json_is_object(w) && json_is_object(v))
			diff(out, more, path, w, v);
		else if (w == NULL || !json_equal(v, w))
			add_change(out, more, path, w, v);
	}
	json_object_foreach((json_t *)before, k, w) {
		snprintf(path, sizeof path, "%s%s%s", prefix, prefix[0] ? "." : "", k);
		if (json_object_get(now, k) == NULL && !json_is_null(w))
			add_change(out, more, path, w, NULL);
	}
}

json_t *provlog_modified(const json_t *before, const json_t *now)
{
	json_t *out = xcheck(json_array());
	size_t more = 0;

	diff(out, &more, "", before, now);
	if (more > 0 && json_array_append_new(out, xcheck(json_pack("{s:s,s:I}", "attr", "...", "more",
								    (json_int_t)more))) != 0)
		xoom("json_array_append_new");
	return out;
}

static int digits(const char **p, int n, int *out)
{
	int v = 0;
	for (; n > 0; n--, (*p)++) {
		if (**p < '0' || **p > '9')
			return -1;
		v = v * 10 + (**p - '0');
	}
	*out = v;
	return 0;
}

/* Days from 1970-01-01 to y-m-d of the proleptic Gregorian calendar. */
static int64_t days_from_civil(int y, int m, int d)
{
	int64_t era, yoe, doy, doe;
	y -= m <= 2;
	era = (y >= 0 ? y : y - 399) / 400;
	yoe = y - era * 400;
	doy = (153 * (m + (m > 2 ? -3 : 9)) + 2) / 5 + d - 1;
	doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
	return era * 146097 + doe - 719468;
}

/* RFC 3339 §5.6: date-time = full-date "T" full-time, time-offset = "Z" / ("+" / "-") hh ":" mm. */
int provlog_parse_time(const char *text, int64_t *us)
{
	static const int mdays[] = {31, 29, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31};
	const char *p = text;
	int y, mo, d, h, mi, se, oh = 0, om = 0, sign = 0;
	int64_t frac = 0, scale = 1000000, t;

	if (text == NULL || digits(&p, 4, &y) || *p++ != '-' || digits(&p, 2, &mo) || *p++ != '-' ||
	    digits(&p, 2, &d))
		return -EINVAL;
	if (*p != 'T' && *p != 't' && *p != ' ')
		return -EINVAL;
	p++;
	if (digits(&p, 2, &h) || *p++ != ':' || digits(&p, 2, &mi) || *p++ != ':' || digits(&p, 2, &se))
		return -EINVAL;
	if (mo < 1 || mo > 12 || d < 1 || d > mdays[mo - 1] || h > 23 || mi > 59 || se > 60)
		return -EINVAL;
	if (*p == '.') {
		p++;
		if (*p < '0' || *p > '9')
			return -EINVAL;
		for (; *p >= '0' && *p <= '9'; p++)
			if (scale > 1) {
				scale /= 10;
				frac += (*p - '0') * scale;
			}
	}
	if (*p == 'Z' || *p == 'z') {
		p++;
	} else if (*p == '+' || *p == '-') {
		sign = *p++ == '-' ? -1 : 1;
		if (digits(&p, 2, &oh) || *p++ != ':' || digits(&p, 2, &om) || oh > 23 || om > 59)
			return -EINVAL;
	} else {
		return -EINVAL;
	}
	if (*p != '\0')
		return -EINVAL;
	if (se == 60)
		se = 59; /* a leap second sorts with the second before it */
	t = ((days_from_civil(y, mo, d) * 24 + h) * 60 + mi) * 60 + se;
	t -= sign * ((int64_t)oh * 3600 + (int64_t)om * 60);
	*us = t * 1000000 + frac;
	return 0;
}

/* An entry's time; entries without a readable one are treated as newest. */
static bool before_since(json_t *o, const struct provlog_query *q)
{
	const char *t = json_string_value(json_object_get(o, "time"));
	int64_t us;
	return q->has_since && t != NULL && provlog_parse_time(t, &us) == 0 && us < q->since_us;
}

static bool matches(json_t *o, const struct provlog_query *q)
{
	const char *a = json_string_value(json_object_get(o, "anchor"));
	const char *dn = json_string_value(json_object_get(o, "dn"));
	const char *r = json_string_value(json_object_get(o, "result"));

	/* Times compare as instants with their fractions (the entries carry
	 * milliseconds): "since 12:00:05" keeps an entry of 12:00:05.250. */
	if (before_since(o, q))
		return false;
	if (q->object && !((a && strcasecmp(a, q->object) == 0) ||
			   (dn && strcasecmp(dn, q->object) == 0)))
		return false;
	/* errors: refused ("error"), waiting in the retry set ("retry"), held deletes ("held") */
	if (q->errors_only && (r == NULL || (strcmp(r, "error") != 0 && strcmp(r, "retry") != 0 && strcmp(r, "held") != 0)))
		return false;
	return true;
}

/*
 * Read from the file's end backwards, newest entry first, and stop after
 * `limit` matches (or, with `since`, at the first entry older than it: one
 * agent appends in time order). So the cost follows what is asked, not the
 * file's size; a line longer than PROVLOG_LINE_MAX is skipped.
 */
#define PROVLOG_CHUNK (64 * 1024)
#define PROVLOG_LINE_MAX (1024 * 1024)

/* One line, newest first: returns false when reading can stop. Takes up to
 * limit + 1 matches: the extra one only tells that the limit cut the answer. */
static bool take_line(json_t *rev, const char *line, size_t len, const struct provlog_query *q, size_t limit)
{
	json_t *o;

	if (len == 0)
		return true;
	o = json_loadb(line, len, 0, NULL);
	if (o == NULL)
		return true; /* a torn last line after a crash */
	if (before_since(o, q)) {
		json_decref(o);
		return false;
	}
	if (matches(o, q)) {
		if (json_array_append_new(rev, o) != 0)
			xoom("json_array_append_new");
	} else
		json_decref(o);
	return json_array_size(rev) < limit + 1;
}

/* One file, from its end backwards; returns false when reading can stop. */
static bool read_file(int fd, off_t size, const struct provlog_query *q, json_t *rev, size_t limit)
{
	char *carry = NULL; /* the start of the line that the previous chunk began in the middle of */
	bool more = true, skip_partial = false;
	size_t clen = 0, i;
	off_t pos = size;

	while (more && pos > 0) {
		size_t n = pos > PROVLOG_CHUNK ? PROVLOG_CHUNK : (size_t)pos, got = 0, len, end;
		/* at most PROVLOG_CHUNK + PROVLOG_LINE_MAX: a longer line is
		 * skipped, never carried */
		char *b = xmalloc(n + clen + 1);
		pos -= (off_t)n;
		while (got < n) {
			ssize_t r = pread(fd, b + got, n - got, pos + (off_t)got);
			if (r < 0 && errno == EINTR)
				continue;
			if (r <= 0)
				break;
			got += (size_t)r;
		}
		if (got < n) { /* truncated meanwhile or an I/O error: what was read stands */
			free(b);
			break;
		}
		if (clen)
			memcpy(b + n, carry, clen);
		len = n + clen;
		free(carry);
		carry = NULL;
		clen = 0;
		end = len;
		for (i = len; i > 0 && more; i--) {
			if (b[i - 1] != '\n')
				continue;
			if (skip_partial)
				skip_partial = false; /* the rest of a line that was too long */
			else
				more = take_line(rev, b + i, end - i, q, limit);
			end = i - 1;
		}
		if (more && pos == 0 && !skip_partial) {
			more = take_line(rev, b, end, q, limit);
		} else if (more && end > PROVLOG_LINE_MAX) {
			skip_partial = true;
		} else if (more && end > 0) {
			carry = xmalloc(end);
			memcpy(carry, b, end);
			clen = end;
		}
		free(b);
	}
	free(carry);
	return more;
}

json_t *provlog_read(const char *path, const struct provlog_query *q, bool *truncated)
{
	json_t *rev = xcheck(json_array()), *out = xcheck(json_array());
	size_t limit = q->limit ? q->limit : 1000, i;
	struct {
		dev_t dev;
		ino_t ino;
	} seen[PROVLOG_MAX_KEEP + 1];
	unsigned k, n_seen = 0, missing = 0;
	bool more = true;
	char name[1100];

	if (truncated)
		*truncated = false;
	for (k = 0; k <= PROVLOG_MAX_KEEP && more; k++) {
		struct stat st;
		unsigned j;
		int fd;

		if (k == 0)
			snprintf(name, sizeof name, "%s", path);
		else
			rotated_name(name, sizeof name, path, k);
		fd = open(name, O_RDONLY | O_CLOEXEC | O_NONBLOCK);
		if (fd < 0) {
			/* a rotation in progress leaves one name missing at a
			 * time (rotate()): two in a row is the end */
			if (++missing >= 2)
				break;
			continue;
		}
		missing = 0;
		if (fstat(fd, &st) != 0 || !S_ISREG(st.st_mode)) {
			close(fd);
			continue;
		}
		/* renamed under us by a rotation: already read under its old name */
		for (j = 0; j < n_seen; j++)
			if (seen[j].dev == st.st_dev && seen[j].ino == st.st_ino)
				break;
		if (j < n_seen) {
			close(fd);
			continue;
		}
		seen[n_seen].dev = st.st_dev;
		seen[n_seen].ino = st.st_ino;
		n_seen++;
		more = read_file(fd, st.st_size, q, rev, limit);
		close(fd);
	}
	if (truncated)
		*truncated = json_array_size(rev) > limit;
	if (json_array_size(rev) > limit)
		json_array_remove(rev, limit);
	for (i = json_array_size(rev); i > 0; i--)
		if (json_array_append(out, json_array_get(rev, i - 1)) != 0)
			xoom("json_array_append");
	json_decref(rev);
	return out;
}
