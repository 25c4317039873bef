/* agent/log.c -- see log.h. */
#include "agent/log.h"

#include <jansson.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "common/xalloc.h"
#include "sync/text_json.h"

static uint64_t log_node;
static enum log_level log_min = LOG_INFO;
static enum log_format log_fmt = LOG_FORMAT_TEXT;
static const char *const names[] = {"debug", "info", "warn", "error"};

void log_set_format(enum log_format format)
{
	log_fmt = format;
}

const char *log_format_name(enum log_format format)
{
	return format == LOG_FORMAT_JSON ? "json" : "text";
}

void log_setup(uint64_t node_id, enum log_level min)
{
	log_node = node_id;
	log_min = min;
}

int log_level_parse(const char *name)
{
	int i;
	for (i = 0; i < 4; i++)
		if (strcmp(name, names[i]) == 0)
			return i;
	return -1;
}

const char *log_level_name(enum log_level level)
{
	return (unsigned)level < sizeof names / sizeof names[0] ? names[level] : "info";
}

const char *log_quote(char *buf, unsigned size, const char *s)
{
	unsigned o = 0;
	const char *p;
	int plain = s[0] != '\0';

	for (p = s; *p; p++)
		if (*p == ' ' || *p == '"' || *p == '=' || *p == '\\' || (unsigned char)*p < 0x20)
			plain = 0;
	if (plain) {
		snprintf(buf, size, "%s", s);
		return buf;
	}
	if (size < 3) {
		buf[0] = '\0';
		return buf;
	}
	buf[o++] = '"';
	for (p = s; *p && o + 3 < size; p++) {
		if (*p == '"' || *p == '\\')
			buf[o++] = '\\';
		buf[o++] = (unsigned char)*p < 0x20 ? ' ' : *p;
	}
	buf[o++] = '"';
	buf[o] = '\0';
	return buf;
}

/*
 * Read the logfmt `fields` back into `o`: key=value pairs separated by
 * spaces, a value either bare or "quoted" with \" and \\ escapes (what
 * log_quote() writes). A bare value of digits only becomes a number.
 */
static void fields_to_json(json_t *o, const char *f)
{
	char key[128], *val = xmalloc(strlen(f) + 1);
	const char *p = f;

	while (*p) {
		size_t kl = 0, vl = 0;
		bool quoted = false, digits;
		while (*p == ' ')
			p++;
		if (*p == '\0')
			break;
		while (*p && *p != '=' && *p != ' ') {
			if (kl + 1 < sizeof key)
				key[kl++] = *p;
			p++;
		}
		key[kl] = '\0';
		if (*p != '=') { /* a bare word: keep it under its own name */
			json_object_set_new(o, key, json_true());
			continue;
		}
		p++;
		if (*p == '"') {
			quoted = true;
			for (p++; *p && *p != '"'; p++) {
				if (*p == '\\' && p[1])
					p++;
				val[vl++] = *p;
			}
			if (*p == '"')
				p++;
		} else {
			while (*p && *p != ' ')
				val[vl++] = *p++;
		}
		val[vl] = '\0';
		digits = !quoted && vl > 0 && vl < 19 && strspn(val, "0123456789") == vl;
		if (kl == 0 || strcmp(key, "time") == 0 || strcmp(key, "level") == 0 ||
		    strcmp(key, "msg") == 0)
			continue; /* never overwrite the fixed members */
		json_object_set_new(o, key, digits ? json_integer(strtoll(val, NULL, 10)) : text_json(val));
	}
	free(val);
}

static void write_json(const char *ts, enum log_level level, const char *msg, const char *fields)
{
	json_t *o = xcheck(json_object());
	char *line;

	json_object_set_new(o, "time", xcheck(json_string(ts)));
	json_object_set_new(o, "level", xcheck(json_string(names[level])));
	json_object_set_new(o, "node", xcheck(json_integer((json_int_t)log_node)));
	json_object_set_new(o, "msg", text_json(msg));
	if (fields)
		fields_to_json(o, fields);
	line = xcheck(json_dumps(o, JSON_COMPACT | JSON_PRESERVE_ORDER));
	json_decref(o);
	line = xrealloc(line, strlen(line) + 2);
	strcat(line, "\n");
	/* One write per line so lines from threads never interleave. */
	fputs(line, stderr);
	free(line);
}

static void vlog(enum log_level level, const char *msg, const char *fields, va_list ap)
{
	char line[4096], ts[40], q[1024], fb[4096];
	struct timespec now;
	struct tm tm;
	size_t n;
	int k;

	clock_gettime(CLOCK_REALTIME, &now);
	gmtime_r(&now.tv_sec, &tm);
	n = strftime(ts, sizeof ts, "%Y-%m-%dT%H:%M:%S", &tm);
	snprintf(ts + n, sizeof ts - n, ".%03ldZ", now.tv_nsec / 1000000);
	fb[0] = '\0';
	if (fields != NULL)
		vsnprintf(fb, sizeof fb, fields, ap);
	if (log_fmt == LOG_FORMAT_JSON) {
		write_json(ts, level, msg, fields ? fb : NULL);
		return;
	}
	k = snprintf(line, sizeof line, "time=%s level=%s node=%llu msg=%s%s%s", ts, names[level],
		     (unsigned long long)log_node, log_quote(q, sizeof q, msg), fb[0] ? " " : "", fb);
	n = k < 0 ? 0 : (size_t)k < sizeof line ? (size_t)k : sizeof line - 1;
	if (n < sizeof line - 1) {
		line[n++] = '\n';
		line[n] = '\0';
	}
	/* One write per line so lines from threads never interleave. */
	fputs(line, stderr);
}

void log_write(enum log_level level, const char *msg, const char *fields, ...)
{
	va_list ap;

	if (level < log_min)
		return;
	va_start(ap, fields);
	vlog(level, msg, fields, ap);
	va_end(ap);
}

static int64_t now_ms(void)
{
	struct timespec t;
	clock_gettime(CLOCK_MONOTONIC, &t);
	return (int64_t)t.tv_sec * 1000 + t.tv_nsec / 1000000;
}

void log_limit_flush(struct log_limit *lim, enum log_level level, const char *msg)
{
	if (lim->suppressed > 0)
		log_write(level, msg, "suppressed=%u window_s=%u summary=\"%u more in the last %u s\"",
			  lim->suppressed, lim->window_s, lim->suppressed, lim->window_s);
	lim->suppressed = 0;
	lim->window_start_ms = 0;
}

int log_limited(struct log_limit *lim, enum log_level level, const char *msg, const char *fields, ...)
{
	int64_t t = now_ms();
	va_list ap;

	if (lim->window_start_ms != 0 && t - lim->window_start_ms < (int64_t)lim->window_s * 1000) {
		lim->suppressed++;
		return 0;
	}
	if (lim->window_start_ms != 0)
		log_limit_flush(lim, level, msg);
	lim->window_start_ms = t ? t : 1;
	if (level < log_min)
		return 0;
	va_start(ap, fields);
	vlog(level, msg, fields, ap);
	va_end(ap);
	return 1;
}
